//! Errors of reading and writing a dataset: each keeps the file (and the column, or the row)
//! it is about, and its cause.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is printed with the path, once: it is kept as a field, not as a `source`
    // that error reporters would print a second time.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{}: {cause}", path.display())]
    Parquet { path: PathBuf, cause: polars::error::PolarsError },
    #[error("{}: {cause}", path.display())]
    Json { path: PathBuf, cause: serde_json::Error },
    /// A column missing, of the wrong type, or holding a value its row type cannot take.
    #[error("{table}.{column}: {message}")]
    Column { table: String, column: String, message: String },
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
}

impl Error {
    pub fn io(path: &Path, cause: std::io::Error) -> Error {
        Error::Io { path: path.to_path_buf(), cause }
    }
    pub fn column(table: &str, column: &str, message: impl Into<String>) -> Error {
        Error::Column { table: table.into(), column: column.into(), message: message.into() }
    }
    pub fn invalid(context: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid { context: context.into(), message: message.into() }
    }
}
