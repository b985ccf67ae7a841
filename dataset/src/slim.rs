//! `coloc dataset slim SRC --out DST`: a copy of a dataset without its per-event tables (every
//! request, every sampled launch), for committing where space is short. Batches, tenants (with
//! the latency statistics computed from every request when it was measured), runs, solo
//! profiles and the manifest are kept whole; the manifest of the copy names each table it lacks
//! and its row count, and `coloc dataset check` then skips (and says so) the invariants that
//! need them. Nothing is recomputed or rounded: kept files are copied byte for byte.

use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::DroppedTable;
use crate::rows::{KernelRow, RequestRow};
use crate::{Dataset, MANIFEST, Manifest, Table, store};

/// The tables a slim copy leaves out.
pub const DROPPED: [&str; 2] = [RequestRow::NAME, KernelRow::NAME];

/// Copies the dataset in `src` to `dst` (which must not exist) without [`DROPPED`].
pub fn slim(src: &Path, dst: &Path) -> Result<Vec<DroppedTable>> {
    let ds = Dataset::open(src)?;
    let mut manifest: Manifest = ds.manifest()?;
    if src.join("parts").exists() || !src.join("runs.parquet").exists() {
        return Err(Error::invalid(src.display().to_string(), "the measurement has not finished: resume it first"));
    }
    if dst.exists() {
        return Err(Error::invalid(dst.display().to_string(), "already exists; slim into a new directory"));
    }
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let mut dropped = manifest.dropped_tables.clone();
    let entries = std::fs::read_dir(src).map_err(|e| Error::io(src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_file() || name == MANIFEST {
            continue;
        }
        if let Some(table) = DROPPED.iter().find(|t| name == format!("{t}.parquet")) {
            let rows = store::load_frame(&path)?.height();
            dropped.push(DroppedTable { table: table.to_string(), rows });
            continue;
        }
        std::fs::copy(&path, dst.join(&name)).map_err(|e| Error::io(&path, e))?;
    }
    manifest.dropped_tables = dropped.clone();
    store::save_json(&dst.join(MANIFEST), &manifest)?;
    Ok(dropped)
}
