use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Dataset(#[from] coloc_dataset::error::Error),
    /// The data cannot give what a step needs (no examples, a missing solo profile).
    #[error("{what}: {reason}")]
    Data { what: String, reason: String },
}

impl Error {
    pub fn data(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Data { what: what.into(), reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
