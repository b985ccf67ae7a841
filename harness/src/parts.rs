//! A measurement on disk while it runs. Each finished run's tables go into `parts/<run>/`
//! (through a temporary directory renamed into place, so a killed run never leaves half a
//! part), then its row is appended to the progress log; `--resume` skips every run the log
//! lists. When the suite is done the parts are consolidated into one Parquet file per table,
//! the runs table is written from the log, and the parts are removed.

use std::path::{Path, PathBuf};

use coloc_dataset::cell::Table;
use coloc_dataset::rows::{AggressorRow, BatchRow, DeviceSampleRow, KernelRow, RequestRow, RunRow, TenantRow};
use coloc_dataset::{progress, store};
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::run::RunData;

/// The tables a run writes (the runs table comes from the progress log).
pub const RUN_TABLES: [&str; 6] =
    [TenantRow::NAME, AggressorRow::NAME, RequestRow::NAME, BatchRow::NAME, KernelRow::NAME, DeviceSampleRow::NAME];

fn keyed<T: Clone>(rows: &[T], run: &str, set: impl Fn(&mut T, String)) -> Vec<T> {
    rows.iter()
        .cloned()
        .map(|mut r| {
            set(&mut r, run.to_string());
            r
        })
        .collect()
}

/// Writes one run's tables into `parts/<run>` (atomically) and appends its row to the log.
pub fn write_run(dir: &Path, row: &RunRow, data: Option<&RunData>) -> Result<()> {
    let parts = dir.join("parts");
    let tmp = parts.join(format!(".tmp-{}", row.run));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Some(d) = data {
        let run = row.run.as_str();
        store::save(&tmp, &keyed(&d.tenants, run, |r, k| r.run = k))?;
        store::save(&tmp, &keyed(&d.aggressors, run, |r, k| r.run = k))?;
        store::save(&tmp, &keyed(&d.records.requests, run, |r, k| r.run = k))?;
        store::save(&tmp, &keyed(&d.records.batches, run, |r, k| r.run = k))?;
        store::save(&tmp, &keyed(&d.records.kernels, run, |r, k| r.run = k))?;
        store::save(&tmp, &keyed(&d.samples, run, |r, k| r.run = k))?;
    }
    let target = parts.join(&row.run);
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
    progress::append(dir, row)?;
    Ok(())
}

/// Removes parts that have no progress line (a run killed between writing and recording).
pub fn remove_stale(dir: &Path, done: &[RunRow]) -> Result<Vec<String>> {
    let parts = dir.join("parts");
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(&parts) else { return Ok(removed) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !done.iter().any(|d| d.run == name) {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Concatenates every part's tables into `dir/<table>.parquet`, writes `runs.parquet`, and
/// removes the parts.
pub fn consolidate(dir: &Path, runs: &[RunRow]) -> Result<()> {
    for table in RUN_TABLES {
        let mut all: Option<DataFrame> = None;
        for r in runs {
            let path = part_dir(dir, &r.run).join(format!("{table}.parquet"));
            if !path.exists() {
                continue; // a failed run writes no tables
            }
            let df = store::load_frame(&path)?;
            match &mut all {
                None => all = Some(df),
                Some(acc) => {
                    acc.vstack_mut(&df).map_err(|cause| coloc_dataset::Error::Parquet { path: path.clone(), cause })?;
                }
            }
        }
        if let Some(mut df) = all {
            df.rechunk_mut();
            store::save_frame(&dir.join(format!("{table}.parquet")), &mut df)?;
        }
    }
    store::save(dir, runs)?;
    // Renamed first, in one step: a kill while deleting must not leave some parts behind for a
    // later --resume to consolidate again over the complete tables.
    let parts = dir.join("parts");
    let retired = dir.join(RETIRED_PARTS);
    if parts.exists() {
        let _ = std::fs::remove_dir_all(&retired);
        std::fs::rename(&parts, &retired).map_err(|e| Error::io(&parts, e))?;
    }
    remove_retired(dir)
}

/// Where consolidated parts go before they are deleted.
const RETIRED_PARTS: &str = "parts.consolidated";

/// Deletes parts left by a consolidation that was killed while deleting them.
pub fn remove_retired(dir: &Path) -> Result<()> {
    let retired = dir.join(RETIRED_PARTS);
    if retired.exists() {
        std::fs::remove_dir_all(&retired).map_err(|e| Error::io(&retired, e))?;
    }
    Ok(())
}

/// The part directory of a run.
pub fn part_dir(dir: &Path, run: &str) -> PathBuf {
    dir.join("parts").join(run)
}
