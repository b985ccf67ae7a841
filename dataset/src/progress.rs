//! `progress.jsonl`: one line per finished run (its row of the runs table), appended as the
//! suite goes, flushed to disk before the next run starts. It is what `--resume` reads and
//! what `runs.parquet` is made of.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::rows::RunRow;

pub const FILE: &str = "progress.jsonl";

/// Appends `row` as a line and syncs it.
pub fn append(dir: &Path, row: &RunRow) -> Result<()> {
    let path = dir.join(FILE);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
    let line = serde_json::to_string(row).map_err(|cause| Error::Json { path: path.clone(), cause })?;
    writeln!(f, "{line}").map_err(|e| Error::io(&path, e))?;
    f.sync_all().map_err(|e| Error::io(&path, e))
}

/// The finished runs, in the order they finished. A torn last line (a kill mid-write) is
/// ignored: that run is measured again. A torn line elsewhere is an error naming its line.
pub fn read(dir: &Path) -> Result<Vec<RunRow>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str(l) {
            Ok(p) => out.push(p),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => return Err(Error::invalid(format!("{}:{}", path.display(), i + 1), e.to_string())),
        }
    }
    Ok(out)
}

/// Before resuming: cuts a torn last line off the log, so that the next line appended starts
/// on a line of its own, and returns the finished runs.
pub fn recover(dir: &Path) -> Result<Vec<RunRow>> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() && bytes.last() != Some(&b'\n') => {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
            f.set_len(keep as u64).map_err(|e| Error::io(&path, e))?;
            f.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    read(dir)
}

/// Rewrites the log with only `keep` (to measure the others again), atomically.
pub fn rewrite(dir: &Path, keep: &[RunRow]) -> Result<()> {
    let path = dir.join(FILE);
    let mut text = String::new();
    for row in keep {
        text.push_str(&serde_json::to_string(row).map_err(|cause| Error::Json { path: path.clone(), cause })?);
        text.push('\n');
    }
    crate::store::save_text(&path, &text)
}
