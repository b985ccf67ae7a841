//! Model graphs, arrival processes, co-location scenarios and suites, read from TOML files.

pub mod error;
pub mod graph;
pub mod model;
pub mod scenario;
pub mod suite;

pub use error::{Error, Result};
pub mod arrival;
