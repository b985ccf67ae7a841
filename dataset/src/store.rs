//! Typed persistence: a table's rows to and from its Parquet file, JSON files to and from
//! their types. Every error keeps the path and the cause. Writes go through a temporary file
//! renamed into place, so a killed writer never leaves half a file.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cell::Table;
use crate::error::{Error, Result};

/// `dir/<table>.parquet`.
pub fn table_path<T: Table>(dir: &Path) -> PathBuf {
    dir.join(format!("{}.parquet", T::NAME))
}

/// Writes `rows` as `dir/<table>.parquet`.
pub fn save<T: Table>(dir: &Path, rows: &[T]) -> Result<()> {
    let path = table_path::<T>(dir);
    let mut df = T::to_frame(rows).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
    save_frame(&path, &mut df)
}

/// Reads `dir/<table>.parquet` into rows.
pub fn load<T: Table>(dir: &Path) -> Result<Vec<T>> {
    let path = table_path::<T>(dir);
    let df = load_frame(&path)?;
    T::from_frame(&df).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
}

/// Like [`load`], but a table that is not there reads as none.
pub fn load_if_present<T: Table>(dir: &Path) -> Result<Option<Vec<T>>> {
    table_path::<T>(dir).exists().then(|| load(dir)).transpose()
}

/// Like [`load`], but a table that is not there reads as no rows.
pub fn load_or_empty<T: Table>(dir: &Path) -> Result<Vec<T>> {
    if table_path::<T>(dir).exists() { load(dir) } else { Ok(Vec::new()) }
}

pub fn save_frame(path: &Path, df: &mut DataFrame) -> Result<()> {
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)
        .map_err(|cause| Error::Parquet { path: path.to_path_buf(), cause })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

pub fn load_frame(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(file).finish().map_err(|cause| Error::Parquet { path: path.to_path_buf(), cause })
}

pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|cause| Error::Json { path: path.to_path_buf(), cause })
}

pub fn save_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|cause| Error::Json { path: path.to_path_buf(), cause })?;
    save_text(path, &text)
}

pub fn save_text(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
