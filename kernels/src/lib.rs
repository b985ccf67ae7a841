//! coloc's kernel library: real CUDA inference operators and synthetic stressors, compiled at
//! run time with NVRTC, each with analytic FLOPs and DRAM bytes and a CPU reference; the GPU
//! runtime that launches them (primary and green contexts, streams, MPS clients); and the
//! timing that places every kernel on the GPU's global clock.

pub mod error;
pub mod gpu;
pub mod id;
pub mod types;

pub use error::{Error, Result};
pub use id::{CudaModule, KernelId, KernelSymbol};
pub use types::{Activation, DType, ElemType};
pub mod bench;
pub mod catalog;
pub mod ceilings;
pub mod check;
pub mod instance;
pub mod inventory;
pub mod nvml;
pub mod ops;
pub mod partition;
pub mod stats;
pub mod timing;
