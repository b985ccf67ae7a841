//! Is a dataset whole? Every run its suite selected is recorded exactly once, in the progress
//! log and in `runs.parquet`; every row of every run table belongs to a recorded run; request
//! times agree with each other. This is what a killed and resumed `coloc measure` must still
//! satisfy, and what a user checks before training on a dataset.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use coloc_workloads::scenario::Scenario;
use polars::prelude::*;
use serde::Serialize;

use crate::dataset::{self, RUN_TABLES, opt_i64s, read_json, read_parquet, strs};
use crate::error::{Error, Result};
use crate::measure::{run_key, selected_runs};

#[derive(Clone, Debug, Default, Serialize)]
pub struct IntegrityReport {
    /// Runs the suite (and the run's `--only`) selected.
    pub expected_runs: usize,
    /// Lines in `progress.jsonl`.
    pub progress_lines: usize,
    /// Rows of `runs.parquet` (none before the suite finished).
    pub recorded_runs: usize,
    /// False while `parts/` exists or `runs.parquet` is missing: the suite has not finished.
    pub consolidated: bool,
    /// Rows per run table.
    pub table_rows: BTreeMap<String, usize>,
    /// Completed requests whose start, end, queue and latency were checked against each other.
    pub requests_checked: usize,
    /// Everything found wrong, one sentence each.
    pub problems: Vec<String>,
}

impl IntegrityReport {
    pub fn is_whole(&self) -> bool {
        self.consolidated && self.problems.is_empty()
    }
}

fn duplicates(keys: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for k in keys {
        if !seen.insert(k) {
            dup.insert(k.clone());
        }
    }
    dup.into_iter().collect()
}

fn listed(v: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = v.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > SHOWN {
        s.push_str(&format!(" and {} more", v.len() - SHOWN));
    }
    s
}

/// Compares the keys found in `what` with the expected ones.
fn compare_keys(what: &str, found: &[String], expected: &BTreeSet<String>, problems: &mut Vec<String>) {
    let dup = duplicates(found);
    if !dup.is_empty() {
        problems.push(format!("{what}: {} run(s) recorded more than once: {}", dup.len(), listed(&dup)));
    }
    let found: BTreeSet<&String> = found.iter().collect();
    let missing: Vec<String> = expected.iter().filter(|k| !found.contains(k)).cloned().collect();
    if !missing.is_empty() {
        problems.push(format!("{what}: {} run(s) missing: {}", missing.len(), listed(&missing)));
    }
    let unknown: Vec<String> = found.iter().filter(|k| !expected.contains(**k)).map(|k| (*k).clone()).collect();
    if !unknown.is_empty() {
        problems.push(format!("{what}: {} run(s) the suite does not have: {}", unknown.len(), listed(&unknown)));
    }
}

/// Counts completed requests whose times disagree; returns (checked, inconsistent, first bad).
fn check_requests(df: &DataFrame) -> Result<(usize, usize, Option<String>)> {
    let arrival = opt_i64s(df, "arrival_ns")?;
    let start = opt_i64s(df, "start_ns")?;
    let end = opt_i64s(df, "end_ns")?;
    let queue = opt_i64s(df, "queue_ns")?;
    let latency = opt_i64s(df, "latency_ns")?;
    let runs = strs(df, "run")?;
    let (mut checked, mut bad, mut first) = (0, 0, None);
    for i in 0..arrival.len() {
        let (Some(a), Some(s), Some(e)) = (arrival[i], start[i], end[i]) else { continue };
        checked += 1;
        let ok = s <= e && latency[i] == Some(e - a) && queue[i] == Some(s - a);
        if !ok {
            bad += 1;
            first.get_or_insert_with(|| format!("{} row {i}", runs[i]));
        }
    }
    Ok((checked, bad, first))
}

/// Checks the dataset in `dir`.
pub fn check(dir: &Path) -> Result<IntegrityReport> {
    let manifest_path = dir.join("manifest.json");
    let manifest: serde_json::Value = read_json(&manifest_path)?;
    let scenarios_path = dir.join("scenarios.json");
    let scenarios: Vec<Scenario> = serde_json::from_value(read_json(&scenarios_path)?)
        .map_err(|e| Error::invalid(scenarios_path.display().to_string(), e.to_string()))?;
    let only: Vec<String> = serde_json::from_value(manifest["suite"]["only"].clone()).unwrap_or_default();
    let expected: BTreeSet<String> =
        selected_runs(&scenarios, &only).into_iter().map(|(i, s, r)| run_key(i, s, r)).collect();

    let mut report = IntegrityReport { expected_runs: expected.len(), ..Default::default() };
    let progress = dataset::read_progress(dir)?;
    report.progress_lines = progress.len();
    let progress_keys: Vec<String> = progress.iter().map(|l| l.run.clone()).collect();

    let runs_path = dir.join("runs.parquet");
    report.consolidated = runs_path.exists() && !dir.join("parts").exists();
    if !report.consolidated {
        // Unfinished: only the progress log can be judged (no run twice, none unknown).
        let mut problems = Vec::new();
        compare_keys("progress.jsonl", &progress_keys, &expected, &mut problems);
        report.problems = problems.into_iter().filter(|p| !p.contains("missing")).collect();
        return Ok(report);
    }
    compare_keys("progress.jsonl", &progress_keys, &expected, &mut report.problems);
    let runs = read_parquet(&runs_path)?;
    let run_keys = strs(&runs, "run")?;
    report.recorded_runs = run_keys.len();
    compare_keys("runs.parquet", &run_keys, &expected, &mut report.problems);
    let recorded: BTreeSet<&String> = run_keys.iter().collect();

    for table in RUN_TABLES {
        let path = dir.join(format!("{table}.parquet"));
        if !path.exists() {
            report.problems.push(format!("{table}.parquet is missing"));
            continue;
        }
        let df = read_parquet(&path)?;
        report.table_rows.insert(table.to_string(), df.height());
        let keys = strs(&df, "run")?;
        let orphans: BTreeSet<String> = keys.iter().filter(|k| !recorded.contains(k)).cloned().collect();
        if !orphans.is_empty() {
            let rows = keys.iter().filter(|k| orphans.contains(*k)).count();
            let orphans: Vec<String> = orphans.into_iter().collect();
            report
                .problems
                .push(format!("{table}.parquet: {rows} row(s) of run(s) not in runs.parquet: {}", listed(&orphans)));
        }
        if table == "requests" {
            let (checked, bad, first) = check_requests(&df)?;
            report.requests_checked = checked;
            if bad > 0 {
                report.problems.push(format!(
                    "requests.parquet: {bad} completed request(s) whose start, end, queue and latency disagree (first: {})",
                    first.unwrap_or_default()
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_run_recorded_twice_is_a_duplicate() {
        assert_eq!(duplicates(&keys(&["a", "b", "a", "c", "b", "a"])), keys(&["a", "b"]));
        assert!(duplicates(&keys(&["a", "b"])).is_empty());
    }

    #[test]
    fn missing_duplicated_and_unknown_runs_are_each_reported() {
        let expected: BTreeSet<String> = keys(&["r1", "r2", "r3"]).into_iter().collect();
        let mut problems = Vec::new();
        compare_keys("runs", &keys(&["r1", "r1", "r2", "zz"]), &expected, &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("more than once: r1"));
        assert!(problems[1].contains("missing: r3"));
        assert!(problems[2].contains("does not have: zz"));
        let mut none = Vec::new();
        compare_keys("runs", &keys(&["r3", "r2", "r1"]), &expected, &mut none);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn long_lists_are_cut_short() {
        let v: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
        assert_eq!(listed(&v), "k0, k1, k2, k3, k4 and 3 more");
    }

    #[test]
    fn request_rows_whose_times_disagree_are_counted() {
        let df = df!(
            "run" => ["a", "a", "a"],
            "arrival_ns" => [0i64, 10, 20],
            "start_ns" => [Some(5i64), Some(15), None],
            "end_ns" => [Some(9i64), Some(30), None],
            "queue_ns" => [Some(5i64), Some(5), None],
            "latency_ns" => [Some(9i64), Some(21), None],
        )
        .unwrap();
        // Row 1: latency should be 30 - 10 = 20.
        let (checked, bad, first) = check_requests(&df).unwrap();
        assert_eq!((checked, bad), (2, 1));
        assert_eq!(first.as_deref(), Some("a row 1"));
    }
}
