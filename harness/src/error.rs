//! The one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kernels(#[from] coloc_kernels::Error),

    #[error(transparent)]
    Workloads(#[from] coloc_workloads::Error),

    #[error(transparent)]
    Dataset(#[from] coloc_dataset::Error),

    #[error(transparent)]
    Predictor(#[from] coloc_predictors::error::Error),

    /// Ctrl-C stopped the measurement; the run in flight was not recorded.
    #[error("interrupted")]
    Interrupted,

    /// A model, scenario or run that cannot go ahead as asked; `context` names it.
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { context: context.into(), message: message.into() }
    }

    /// A file that could not be read or written, named.
    pub fn io(path: impl Into<std::path::PathBuf>, error: std::io::Error) -> Self {
        Error::Kernels(coloc_kernels::Error::io(path, error))
    }
}
