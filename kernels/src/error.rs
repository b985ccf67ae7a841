//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong below the CLI: a missing driver or library, a failed driver,
/// NVRTC or cuBLAS call, a bad shape or partition request, a failed check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No NVIDIA driver (or CUDA library) could be loaded on this machine.
    #[error("{what} not found: {detail}")]
    MissingLibrary { what: &'static str, detail: String },

    /// The driver works but no usable device is visible.
    #[error("no CUDA device: {0}")]
    NoDevice(String),

    /// A CUDA driver API call returned an error.
    #[error("{call} failed: {name} ({message})")]
    Driver { call: &'static str, code: u32, name: String, message: String },

    /// NVRTC could not compile one of coloc's CUDA modules.
    #[error("NVRTC could not compile {module} for {arch}: {log}")]
    Compile { module: &'static str, arch: String, log: String },

    /// A cuBLAS call returned an error.
    #[error("{call} failed: {status}")]
    Cublas { call: &'static str, status: String },

    /// A cuDNN call failed.
    #[error("{call} failed: {status}")]
    Cudnn { call: &'static str, status: String },

    /// An operator was given a shape or parameter it cannot run with.
    #[error("invalid {op}: {reason}")]
    InvalidOp { op: String, reason: String },

    /// A partition request the device cannot satisfy.
    #[error("partition: {0}")]
    Partition(String),

    /// MPS could not be started, used or stopped.
    #[error("MPS: {0}")]
    Mps(String),

    /// The device ran out of memory for a named allocation.
    #[error("out of device memory allocating {bytes} bytes for {what}")]
    OutOfMemory { what: String, bytes: usize },

    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },

    /// A measurement could not be taken as asked (timeouts, invalid samples).
    #[error("measurement: {0}")]
    Measurement(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io { path: path.into(), error }
    }

    pub fn invalid(op: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidOp { op: op.into(), reason: reason.into() }
    }
}
