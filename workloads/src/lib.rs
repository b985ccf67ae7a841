//! Model graphs, arrival processes, co-location scenarios and suites, read from TOML files,
//! and the batching policy that both the harness and a simulator run.

pub mod arrival;
pub mod batcher;
pub mod clockwork;
pub mod error;
pub mod fusion;
pub mod graph;
pub mod headroom;
pub mod model;
pub mod order;
pub mod scenario;
pub mod space_time;
pub mod suite;

pub use error::{Error, Result};
