//! The GPU runtime: device, contexts (primary and green), streams, memory, events, the
//! kernel library (NVRTC + context-independent loading), cuBLAS, cuDNN and CUDA graphs. It lives in
//! this crate because every kernel's timing stamps are part of its code, and the harness must
//! launch the same kernels in any partition without depending back on itself.

pub mod blas;
pub mod blas_lt;
pub mod context;
pub mod device;
pub mod dnn;
pub(crate) mod driver;
pub mod event;
pub mod graph;
pub mod libs;
pub mod memory;
pub mod module;
pub mod nvrtc;
mod plans;
pub mod stream_libs;

pub use blas::{Blas, GemmCall, GemmGroups, GemmPointers, GemmPrecision};
pub use blas_lt::{BlasLt, GemmEpilogue, LinearShape};
pub use context::{ExecContext, Stream};
pub use device::{Device, DeviceInfo};
pub use dnn::{ConvShape, Dnn, DnnType};
pub use event::Event;
pub use graph::{Graph, GraphExec, KernelNodeInfo};
pub use memory::{DeviceBuffer, PinnedBuffer};
pub use module::{Kernel, KernelArgs, KernelLibrary, LaunchConfig};
pub use stream_libs::StreamLibraries;
