//! A measurement killed part-way and resumed keeps every finished run once and loses none:
//! the on-disk steps of `coloc measure` (parts, progress log, resume, consolidation) played
//! out on the CPU with synthetic run data, then judged by the dataset integrity check.

use std::path::{Path, PathBuf};

use coloc_harness::dataset::{self, ProgressLine};
use coloc_harness::integrity;
use coloc_harness::measure::{pending, run_key, selected_runs};
use coloc_harness::record::{BatchRecord, KernelRecord, RequestRecord, TenantOutput};
use coloc_harness::run::{RunData, TenantInfo};
use coloc_harness::validity::{Status, Verdict};
use coloc_workloads::scenario::{DeviceLimits, Scenario};
use coloc_workloads::suite::Suite;

fn smoke() -> Vec<Scenario> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/smoke.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    Suite::parse(&text, &path, &DeviceLimits::h200()).unwrap().scenarios
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coloc-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `coloc measure` writes before the first run: the manifest and the expanded suite.
fn start(dir: &Path, scenarios: &[Scenario]) {
    let manifest = serde_json::json!({ "suite": { "name": "smoke", "only": [] } });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("scenarios.json"), serde_json::to_string(scenarios).unwrap()).unwrap();
}

/// Two requests served in one batch of one kernel, as a run of tenant 0.
fn data(seed: i64) -> RunData {
    let req = |i: u32| RequestRecord {
        tenant: 0,
        request: i,
        batch: 0,
        arrival_ns: seed + i as i64,
        formed_ns: Some(seed + 10),
        start_ns: Some(seed + 20),
        end_ns: Some(seed + 120),
        warmup: false,
    };
    let records = TenantOutput {
        requests: vec![req(0), req(1)],
        batches: vec![BatchRecord {
            tenant: 0,
            batch: 0,
            size: 2,
            bucket: 2,
            formed_ns: seed + 10,
            start_ns: seed + 20,
            end_ns: seed + 120,
            host_done_ns: seed + 125,
            sampled: true,
        }],
        kernels: vec![KernelRecord {
            tenant: 0,
            batch: 0,
            op: 0,
            start_ns: seed + 20,
            end_ns: seed + 120,
            start_inferred: false,
        }],
        granted_sms: 132,
        clock_uncertainty_ns: 1_000,
    };
    RunData {
        tenants: vec![TenantInfo {
            index: 0,
            name: "tiny".into(),
            model: "tiny".into(),
            batching: "fixed 2".into(),
            max_batch: 2,
            arrival: "poisson".into(),
            rate_rps: Some(100.0),
            load: Some(0.5),
            slo_ms: 1.0,
            solo_latency_ms: 0.1,
            priority: None,
            sms: None,
            mps_percent: None,
            granted_sms: 132,
            scheduled_requests: 2,
        }],
        aggressors: Vec::new(),
        records,
        samples: Vec::new(),
        clock_uncertainty_ns: 1_000,
    }
}

/// The body of the measurement loop for one run: its part, then its progress line.
fn finish(dir: &Path, index: usize, scenario: &Scenario, rep: usize) -> ProgressLine {
    let line = ProgressLine {
        run: run_key(index, scenario, rep),
        scenario: scenario.name.clone(),
        rep,
        partition: scenario.partition.name().to_string(),
        verdict: Verdict { status: Status::Valid, reasons: Vec::new(), notes: Vec::new(), tenants: Vec::new() },
        started_unix_s: 0.0,
        wall_s: 1.0,
    };
    dataset::write_run(dir, &line, Some(&data(index as i64 * 1_000_000))).unwrap();
    line
}

#[test]
fn a_run_killed_halfway_and_resumed_has_every_run_once() {
    let scenarios = smoke();
    let runs = selected_runs(&scenarios, &[]);
    assert!(runs.len() >= 4, "the smoke suite has {} runs", runs.len());
    let dir = fresh_dir("halfway");
    start(&dir, &scenarios);

    // First attempt: half the runs finish; the next one is killed after writing its part but
    // before its progress line; the line after that was torn mid-write.
    let half = runs.len() / 2;
    for &(i, s, r) in &runs[..half] {
        finish(&dir, i, s, r);
    }
    let (ki, ks, kr) = runs[half];
    let killed = run_key(ki, ks, kr);
    std::fs::create_dir_all(dataset::part_dir(&dir, &killed)).unwrap();
    std::fs::write(dataset::part_dir(&dir, &killed).join("requests.parquet"), b"half a file").unwrap();
    let mut log = std::fs::OpenOptions::new().append(true).open(dir.join("progress.jsonl")).unwrap();
    std::io::Write::write_all(&mut log, b"{\"run\":\"torn").unwrap();
    drop(log);

    let before = integrity::check(&dir).unwrap();
    assert!(!before.consolidated && !before.is_whole(), "{before:?}");
    assert!(before.problems.is_empty(), "an unfinished run is not broken: {:?}", before.problems);

    // --resume: what is done is kept, the killed run's part is dropped and the run redone.
    let mut done = dataset::recover_progress(&dir).unwrap();
    assert_eq!(done.len(), half);
    let log = std::fs::read_to_string(dir.join("progress.jsonl")).unwrap();
    assert!(log.ends_with('\n') && !log.contains("torn"), "the torn line is cut off");
    assert_eq!(dataset::remove_stale_parts(&dir, &done).unwrap(), vec![killed.clone()]);
    let todo = pending(&runs, &done);
    assert_eq!(todo.len(), runs.len() - half);
    assert_eq!(run_key(todo[0].0, todo[0].1, todo[0].2), killed);
    for &&(i, s, r) in &todo {
        done.push(finish(&dir, i, s, r));
    }
    dataset::consolidate(&dir, &done).unwrap();

    let after = integrity::check(&dir).unwrap();
    assert!(after.is_whole(), "{:?}", after.problems);
    assert_eq!(after.recorded_runs, runs.len());
    assert_eq!(after.table_rows["requests"], 2 * runs.len());
    assert_eq!(after.requests_checked, 2 * runs.len());
    assert!(!dir.join("parts").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_recorded_twice_or_lost_is_caught() {
    let scenarios = smoke();
    let runs = selected_runs(&scenarios, &[]);
    let dir = fresh_dir("twice");
    start(&dir, &scenarios);
    // The first run is measured twice, the last never.
    let mut done = vec![finish(&dir, runs[0].0, runs[0].1, runs[0].2)];
    for &(i, s, r) in &runs[..runs.len() - 1] {
        done.push(finish(&dir, i, s, r));
    }
    dataset::consolidate(&dir, &done).unwrap();
    let report = integrity::check(&dir).unwrap();
    assert!(!report.is_whole());
    let text = report.problems.join("\n");
    assert!(text.contains("runs.parquet: 1 run(s) recorded more than once"), "{text}");
    assert!(text.contains("runs.parquet: 1 run(s) missing"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_consolidation_killed_while_deleting_parts_is_not_redone_over_the_tables() {
    let scenarios = smoke();
    let runs = selected_runs(&scenarios, &[]);
    let dir = fresh_dir("retired");
    start(&dir, &scenarios);
    let done: Vec<ProgressLine> = runs.iter().map(|&(i, s, r)| finish(&dir, i, s, r)).collect();
    dataset::consolidate(&dir, &done).unwrap();
    // As if the kill came while the renamed parts were being deleted.
    std::fs::create_dir_all(dir.join("parts.consolidated").join("leftover")).unwrap();
    dataset::remove_retired_parts(&dir).unwrap();
    // Resuming a finished run consolidates nothing and keeps the tables.
    dataset::consolidate(&dir, &done).unwrap();
    let report = integrity::check(&dir).unwrap();
    assert!(report.is_whole(), "{:?}", report.problems);
    assert_eq!(report.table_rows["kernels"], runs.len());
    assert!(!dir.join("parts.consolidated").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
