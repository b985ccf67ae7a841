//! Runs co-located inference on the GPU under a partition setting and records per-kernel and
//! per-request timings into Parquet datasets with a run manifest.

pub mod error;
pub mod limits;
pub mod model;

pub use error::{Error, Result};
