//! Runs co-located inference on the GPU under a partition setting and records every kernel
//! launch and every request on one clock, into a dataset (`coloc-dataset`) with a manifest.

pub mod aggressor;
pub mod clock;
pub mod control;
pub mod error;
pub mod gate;
pub mod headroom;
pub mod limits;
pub mod local;
pub mod measure;
pub mod model;
pub mod ncu;
pub mod overhead;
pub mod parts;
pub mod plan;
pub mod record;
pub mod run;
pub mod sampler;
pub mod settle;
pub mod solo;
pub mod space_time;
pub mod summary;
pub mod switch;
pub mod tenant;
pub mod validity;
pub mod worker;

pub use error::{Error, Result};
