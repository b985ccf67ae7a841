//! Runs co-located inference on the GPU under a partition setting and records per-kernel and
//! per-request timings into Parquet datasets with a run manifest.

pub mod aggressor;
pub mod analysis;
pub mod clock;
pub mod dataset;
pub mod error;
pub mod float;
pub mod integrity;
pub mod limits;
pub mod measure;
pub mod model;
pub mod ncu;
pub mod overhead;
pub mod record;
pub mod run;
pub mod sampler;
pub mod solo;
pub mod tenant;
pub mod validity;

pub use error::{Error, Result};
