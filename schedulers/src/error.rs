use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Harness(#[from] coloc_harness::Error),
    #[error(transparent)]
    Kernels(#[from] coloc_kernels::Error),
    #[error(transparent)]
    Predictors(#[from] coloc_predictors::Error),
    #[error(transparent)]
    Dataset(#[from] coloc_dataset::error::Error),
    #[error(transparent)]
    Workloads(#[from] coloc_workloads::error::Error),
    /// An input cannot be used as asked (names the input and why).
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl Error {
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid { what: what.into(), reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
