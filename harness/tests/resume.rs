//! A measurement killed part-way and resumed keeps every finished run once and loses none:
//! the on-disk steps of `coloc measure` (parts, progress log, resume, consolidation) played out
//! on the CPU with the runs of a synthetic dataset, then judged by `coloc dataset check`.

#[path = "../../dataset/tests/common/mod.rs"]
mod common;

use std::path::Path;

use coloc_dataset::check::{Invariant, check};
use coloc_dataset::rows::*;
use coloc_dataset::{progress, store};
use coloc_harness::measure::pending;
use coloc_harness::parts;
use coloc_harness::record::TenantOutput;
use coloc_harness::run::RunData;
use coloc_workloads::order::{PlannedRun, plan_runs};
use coloc_workloads::scenario::Scenario;

/// The synthetic dataset taken apart: its scenarios, its run rows and each run's data.
struct Recorded {
    synthetic: common::Synthetic,
    scenarios: Vec<Scenario>,
    rows: Vec<RunRow>,
    data: Vec<RunData>,
    order_seed: u64,
    every: usize,
}

fn recorded(name: &str) -> Recorded {
    let s = common::build(name);
    let dir = &s.dir;
    let rows: Vec<RunRow> = store::load(dir).unwrap();
    let tenants: Vec<TenantRow> = store::load(dir).unwrap();
    let requests: Vec<RequestRow> = store::load(dir).unwrap();
    let batches: Vec<BatchRow> = store::load(dir).unwrap();
    let kernels: Vec<KernelRow> = store::load(dir).unwrap();
    let data = rows
        .iter()
        .map(|r| RunData {
            tenants: tenants.iter().filter(|t| t.run == r.run).cloned().collect(),
            aggressors: Vec::new(),
            records: TenantOutput {
                requests: requests.iter().filter(|x| x.run == r.run).cloned().collect(),
                batches: batches.iter().filter(|x| x.run == r.run).cloned().collect(),
                kernels: kernels.iter().filter(|x| x.run == r.run).cloned().collect(),
                ..TenantOutput::default()
            },
            samples: Vec::new(),
            notes: Vec::new(),
            window_ns: r.window_ns.unwrap(),
        })
        .collect();
    // back to the state before the first run: manifest, scenarios and solo tables only
    for t in parts::RUN_TABLES.iter().chain(&["runs"]) {
        std::fs::remove_file(dir.join(format!("{t}.parquet"))).unwrap();
    }
    std::fs::remove_file(dir.join(progress::FILE)).unwrap();
    let manifest = coloc_dataset::Dataset::open(dir).unwrap().manifest().unwrap();
    let scenarios = coloc_dataset::Dataset::open(dir).unwrap().scenarios().unwrap();
    Recorded {
        synthetic: s,
        scenarios,
        rows,
        data,
        order_seed: manifest.suite.order_seed,
        every: manifest.suite.reference_every,
    }
}

impl Recorded {
    fn dir(&self) -> &Path {
        &self.synthetic.dir
    }
    fn planned(&self) -> Vec<PlannedRun<'_>> {
        plan_runs(&self.scenarios, &[], self.order_seed, self.every)
    }
    /// The body of the measurement loop for one run: its part, then its progress line.
    fn finish(&self, key: &str) -> RunRow {
        let i = self.rows.iter().position(|r| r.run == key).unwrap();
        parts::write_run(self.dir(), &self.rows[i], Some(&self.data[i])).unwrap();
        self.rows[i].clone()
    }
}

#[test]
fn a_run_killed_halfway_and_resumed_has_every_run_once() {
    let rec = recorded("halfway");
    let dir = rec.dir();
    let runs = rec.planned();
    assert!(runs.len() >= 4, "{} runs", runs.len());

    // First attempt: half the runs finish; the next one is killed after writing its part but
    // before its progress line; the line after that was torn mid-write.
    let half = runs.len() / 2;
    for r in &runs[..half] {
        rec.finish(&r.key());
    }
    let killed = runs[half].key();
    std::fs::create_dir_all(parts::part_dir(dir, &killed)).unwrap();
    std::fs::write(parts::part_dir(dir, &killed).join("requests.parquet"), b"half a file").unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(dir.join(progress::FILE)).unwrap();
    std::io::Write::write_all(&mut log, b"{\"run\":\"torn").unwrap();
    drop(log);

    let before = check(dir).unwrap();
    assert!(!before.consolidated && !before.is_whole());
    assert!(
        before.findings.iter().all(|f| f.problems.is_empty()),
        "an unfinished run is not broken: {:?}",
        before.findings
    );

    // --resume: what is done is kept, the killed run's part is dropped and the run redone.
    let mut done = progress::recover(dir).unwrap();
    assert_eq!(done.len(), half);
    let log = std::fs::read_to_string(dir.join(progress::FILE)).unwrap();
    assert!(log.ends_with('\n') && !log.contains("torn"), "the torn line is cut off");
    assert_eq!(parts::remove_stale(dir, &done).unwrap(), vec![killed.clone()]);
    let todo = pending(&runs, &done);
    assert_eq!(todo.len(), runs.len() - half);
    assert_eq!(todo[0].1.key(), killed);
    for (_, r) in &todo {
        done.push(rec.finish(&r.key()));
    }
    parts::consolidate(dir, &done).unwrap();

    let after = check(dir).unwrap();
    assert!(after.is_whole(), "{:?}", after.findings);
    assert_eq!(after.recorded_runs, runs.len());
    assert_eq!(after.table_rows["requests"], rec.data.iter().map(|d| d.records.requests.len()).sum::<usize>());
    assert!(!dir.join("parts").exists());
}

#[test]
fn a_run_recorded_twice_or_lost_is_caught() {
    let rec = recorded("twice");
    let runs = rec.planned();
    // The first run is measured twice, the last never.
    let mut done = vec![rec.finish(&runs[0].key())];
    for r in &runs[..runs.len() - 1] {
        done.push(rec.finish(&r.key()));
    }
    parts::consolidate(rec.dir(), &done).unwrap();
    let report = check(rec.dir()).unwrap();
    assert!(!report.is_whole());
    let runs_once = report.findings.iter().find(|f| f.invariant == Invariant::RunsOnce).unwrap();
    let text = runs_once.problems.join("\n");
    assert!(text.contains("runs.parquet: 1 run(s) recorded more than once"), "{text}");
    assert!(text.contains("runs.parquet: 1 run(s) missing"), "{text}");
}

#[test]
fn a_failed_run_is_measured_again_after_retry_failed_and_recorded_once() {
    let rec = recorded("retry");
    let dir = rec.dir();
    let runs = rec.planned();
    let mut done = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        if k == 1 {
            let mut failed = rec.rows.iter().find(|x| x.run == r.key()).unwrap().clone();
            failed.status = Status::Failed;
            failed.reasons = vec!["cublasCreate_v2 failed".into()];
            failed.window_ns = None;
            parts::write_run(dir, &failed, None).unwrap();
            done.push(failed);
        } else {
            done.push(rec.finish(&r.key()));
        }
    }
    // --resume --retry-failed: the failure leaves the log and is measured again
    let mut kept = progress::recover(dir).unwrap();
    kept.retain(|r| r.status != Status::Failed);
    progress::rewrite(dir, &kept).unwrap();
    parts::remove_stale(dir, &kept).unwrap();
    let todo = pending(&runs, &kept);
    assert_eq!(todo.len(), 1);
    kept.push(rec.finish(&todo[0].1.key()));
    parts::consolidate(dir, &kept).unwrap();
    let report = check(dir).unwrap();
    assert!(report.is_whole(), "{:?}", report.findings);
}

#[test]
fn a_consolidation_killed_while_deleting_parts_is_not_redone_over_the_tables() {
    let rec = recorded("retired");
    let dir = rec.dir();
    let done: Vec<RunRow> = rec.planned().iter().map(|r| rec.finish(&r.key())).collect();
    parts::consolidate(dir, &done).unwrap();
    // As if the kill came while the renamed parts were being deleted.
    std::fs::create_dir_all(dir.join("parts.consolidated").join("leftover")).unwrap();
    parts::remove_retired(dir).unwrap();
    // Resuming a finished run consolidates nothing and keeps the tables.
    parts::consolidate(dir, &done).unwrap();
    let report = check(dir).unwrap();
    assert!(report.is_whole(), "{:?}", report.findings);
    assert_eq!(report.table_rows["kernels"], rec.data.iter().map(|d| d.records.kernels.len()).sum::<usize>());
    assert!(!dir.join("parts.consolidated").exists());
}
