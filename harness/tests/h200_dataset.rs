//! The committed H200 dataset (`data/h200/`, written by `coloc measure suites/default.toml`)
//! is complete and self-consistent, and shows what the harness claims: kernels of co-located
//! tenants overlap under green contexts and MPS and never under time-slicing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use coloc_harness::analysis;
use coloc_harness::dataset::{RUN_TABLES, read_parquet};
use polars::prelude::*;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200")
}

fn json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn column<T>(df: &DataFrame, name: &str, f: impl Fn(&Column) -> Vec<T>) -> Vec<T> {
    f(df.column(name).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn i64s(df: &DataFrame, name: &str) -> Vec<Option<i64>> {
    column(df, name, |c| c.cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect())
}

fn strs(df: &DataFrame, name: &str) -> Vec<String> {
    column(df, name, |c| c.str().unwrap().iter().map(|v| v.unwrap_or("").to_string()).collect())
}

fn bools(df: &DataFrame, name: &str) -> Vec<bool> {
    column(df, name, |c| c.bool().unwrap().iter().map(|v| v.unwrap_or(false)).collect())
}

fn f64s(df: &DataFrame, name: &str) -> Vec<f64> {
    column(df, name, |c| {
        c.cast(&DataType::Float64).unwrap().f64().unwrap().iter().map(|v| v.unwrap_or(f64::NAN)).collect()
    })
}

#[test]
fn the_manifest_names_the_device_the_code_and_the_suite() {
    let m = json("manifest.json");
    assert!(m["device"]["name"].as_str().unwrap().contains("H200"));
    assert_eq!(m["suite"]["name"], "default");
    assert!(m["tool"]["git_commit"].as_str().unwrap().len() >= 7);
    assert!(m["ceilings"]["copy_gbps"].as_f64().unwrap() > 1000.0);
    assert!(m["nvml_settings"]["driver_version"].is_string());
    assert!(m["harness_overhead"]["requests"].as_u64().unwrap() > 100);
    for t in RUN_TABLES.iter().chain(&["runs", "solo_models", "solo_ops", "solo_launches"]) {
        assert!(dir().join(format!("{t}.parquet")).exists(), "{t}.parquet is missing");
    }
    let bytes: u64 = std::fs::read_dir(dir()).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    assert!(bytes < 64 << 20, "the dataset is {bytes} bytes");
}

#[test]
fn the_host_and_gpu_clocks_agree_within_the_calibration() {
    let o = &json("manifest.json")["harness_overhead"];
    let map = &o["clock"];
    let check = &o["clock_check"];
    // Ping-pong through mapped memory bounds the offset within a few microseconds.
    let uncertainty_us = map["uncertainty_ns"].as_f64().unwrap() / 1e3;
    assert!(uncertainty_us > 0.0 && uncertainty_us < 5.0, "{map}");
    // Every bracketed launch's stamp lies between its host readings.
    assert!(check["launches"].as_u64().unwrap() >= 20, "{check}");
    assert_eq!(check["outside"].as_u64(), Some(0), "{check}");
    assert!(check["launch_to_stamp_us"].as_f64().unwrap() > 0.0, "{check}");
    assert!(check["stamp_to_return_us"].as_f64().unwrap() > 0.0, "{check}");
    // So the null workload's completions are noticed after its kernels end, not before.
    assert!(o["notice_us"].as_f64().unwrap() > 0.0, "{o}");
}

#[test]
fn every_run_of_the_suite_is_there_once() {
    let scenarios = json("scenarios.json");
    let expected: usize =
        scenarios.as_array().unwrap().iter().map(|s| s["repetitions"].as_u64().unwrap() as usize).sum();
    let runs = read_parquet(&dir().join("runs.parquet")).unwrap();
    let keys = strs(&runs, "run");
    assert_eq!(keys.len(), expected, "runs recorded");
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), keys.len(), "a run is recorded twice");
    let summary = std::fs::read_to_string(dir().join("summary.txt")).unwrap();
    for (scenario, status) in strs(&runs, "scenario").iter().zip(strs(&runs, "status")) {
        assert!(["VALID", "INVALID", "FAILED"].contains(&status.as_str()));
        assert!(summary.contains(scenario.as_str()), "{scenario} is not in summary.txt");
    }
    let whole = coloc_harness::integrity::check(&dir()).unwrap();
    assert!(whole.is_whole(), "{:?}", whole.problems);
    assert_eq!(whole.recorded_runs, expected);
    let valid = strs(&runs, "status").iter().filter(|s| *s == "VALID").count();
    assert!(valid * 10 >= keys.len() * 9, "only {valid} of {} runs are valid", keys.len());
}

#[test]
fn request_times_are_consistent() {
    let r = read_parquet(&dir().join("requests.parquet")).unwrap();
    let (arrival, start, end, queue, latency) = (
        i64s(&r, "arrival_ns"),
        i64s(&r, "start_ns"),
        i64s(&r, "end_ns"),
        i64s(&r, "queue_ns"),
        i64s(&r, "latency_ns"),
    );
    let completed = bools(&r, "completed");
    let mut checked = 0;
    for i in 0..arrival.len() {
        let a = arrival[i].unwrap();
        match (start[i], end[i]) {
            (Some(s), Some(e)) => {
                assert!(completed[i]);
                assert!(s <= e, "row {i}: start {s} after end {e}");
                assert_eq!(latency[i], Some(e - a));
                assert_eq!(queue[i], Some(s - a));
                // a request never starts on the GPU before it arrives (host/GPU clocks agree to
                // within the calibration: allow 100 us)
                assert!(s - a > -100_000, "row {i}: started {} us before arriving", (a - s) / 1000);
                checked += 1;
            }
            _ => assert!(!completed[i]),
        }
    }
    assert!(checked > 100_000, "only {checked} completed requests");
}

#[test]
fn valid_runs_met_their_minimum_query_count_and_slo_flags_match() {
    let scenarios = json("scenarios.json");
    let min_q: BTreeMap<String, usize> = scenarios
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["min_queries"].as_u64().unwrap() as usize))
        .collect();
    let runs = read_parquet(&dir().join("runs.parquet")).unwrap();
    let status: BTreeMap<String, (String, String)> =
        strs(&runs, "run").into_iter().zip(strs(&runs, "scenario").into_iter().zip(strs(&runs, "status"))).collect();
    let tenants = read_parquet(&dir().join("tenants.parquet")).unwrap();
    let slo: BTreeMap<(String, i64), f64> = strs(&tenants, "run")
        .into_iter()
        .zip(i64s(&tenants, "tenant").into_iter().map(|t| t.unwrap()))
        .zip(f64s(&tenants, "slo_ms"))
        .collect();
    let r = read_parquet(&dir().join("requests.parquet")).unwrap();
    let (run, tenant, latency, met, warmup) =
        (strs(&r, "run"), i64s(&r, "tenant"), i64s(&r, "latency_ns"), bools(&r, "slo_met"), bools(&r, "warmup"));
    let mut completed: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for i in 0..run.len() {
        let t = tenant[i].unwrap();
        let s = slo[&(run[i].clone(), t)];
        assert_eq!(met[i], latency[i].is_some_and(|l| l as f64 / 1e6 <= s), "row {i}");
        if !warmup[i] && latency[i].is_some() {
            *completed.entry((run[i].clone(), t)).or_default() += 1;
        }
    }
    for ((run, t), n) in &completed {
        let (scenario, st) = &status[run];
        if st == "VALID" {
            assert!(*n >= min_q[scenario], "{run} tenant {t}: {n} queries < {}", min_q[scenario]);
        }
    }
}

#[test]
fn kernels_overlap_under_green_contexts_and_mps_and_never_when_time_sliced() {
    let spans = analysis::kernel_spans(&dir()).unwrap();
    let lk = analysis::lookup(&dir()).unwrap();
    let mut overlapping = BTreeMap::<String, usize>::new();
    for (run, sp) in &spans {
        let partition = lk.partition[run].as_str();
        let tenants: BTreeSet<u16> = sp.iter().map(|s| s.tenant).collect();
        if tenants.len() < 2 {
            continue;
        }
        let total: i64 = analysis::overlaps(sp, 0).iter().map(|p| p.overlap_ns).sum();
        if partition == "time_sliced" {
            assert_eq!(total, 0, "{run}: kernels on one stream overlapped by {total} ns");
        } else if total > 0 {
            *overlapping.entry(partition.to_string()).or_default() += 1;
        }
    }
    for p in ["green", "mps", "streams"] {
        assert!(
            overlapping.get(p).copied().unwrap_or(0) >= 3,
            "too few {p} runs show overlapping kernels: {overlapping:?}"
        );
    }
}

#[test]
fn the_dataset_covers_what_predictors_need() {
    let solo = read_parquet(&dir().join("solo_models.parquet")).unwrap();
    let mut batches: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (m, b) in strs(&solo, "model").into_iter().zip(i64s(&solo, "batch")) {
        batches.entry(m).or_default().insert(b.unwrap());
    }
    for m in ["resnet50", "mobilenet_v2", "vgg16", "bert_base", "vit_b16", "gpt2_decode"] {
        assert!(
            batches.get(m).is_some_and(|b| b.len() >= 2),
            "{m} lacks solo profiles at several batch sizes: {batches:?}"
        );
    }
    let tenants = read_parquet(&dir().join("tenants.parquet")).unwrap();
    let runs = read_parquet(&dir().join("runs.parquet")).unwrap();
    let partition: BTreeMap<String, String> = strs(&runs, "run").into_iter().zip(strs(&runs, "partition")).collect();
    let mut degree: BTreeMap<String, usize> = BTreeMap::new();
    for run in strs(&tenants, "run") {
        *degree.entry(run).or_default() += 1;
    }
    for p in ["time_sliced", "streams", "green", "mps"] {
        for d in [2, 3] {
            assert!(degree.iter().any(|(r, n)| *n == d && partition[r] == p), "no {d}-tenant run under {p}");
        }
    }
    let aggressors = read_parquet(&dir().join("aggressors.parquet")).unwrap();
    assert!(aggressors.height() >= 1, "no dynamic-interference run");
    let kernels = read_parquet(&dir().join("kernels.parquet")).unwrap();
    assert!(i64s(&kernels, "tenant").iter().any(|t| t.unwrap() >= 1000), "no aggressor kernel was recorded");
    let reps = strs(&runs, "run").iter().filter(|r| r.ends_with("__r3")).count();
    assert!(reps >= 4, "no repeated runs for the noise floor");
    let samples = read_parquet(&dir().join("device_samples.parquet")).unwrap();
    assert!(samples.height() > 1000, "too few device samples");
}
