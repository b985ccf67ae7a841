//! The committed H200 dataset (`data/h200/`, `coloc measure suites/default.toml`) is whole and
//! every invariant of `coloc dataset check` holds on it; and it shows what the harness claims:
//! every kernel launch timed, shares matched in SMs across mechanisms, solo profiles at every
//! share, fresh arrivals in every run, kernels of co-located tenants overlapping under green
//! contexts, MPS and streams, and never on one stream.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use coloc_dataset::Dataset;
use coloc_dataset::check::{Invariant, Tables, check, one_stream_tenants};
use coloc_dataset::overlap;
use coloc_dataset::rows::*;
use coloc_dataset::solo_rows::*;
use coloc_workloads::scenario::{PartitionKind, Role, SoloShare};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200")
}

/// Rows of `data/h200`'s launch and request tables, which its slim copy lacks
/// (`data/h200-subset/README.md`).
fn subset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200-subset")
}

/// Every invariant but one holds on a dataset measured before the state change of one-stream
/// runs was found; that one, `OneStreamAsProfiled`, fails only where the state changed: a
/// one-stream run right after a run in other processes (MPS clients or plain processes), or the
/// first run after solo profiles or hardware counters (ncu) measured in them. Returns the tenants off their profile (run
/// and tenant) and the count of one-stream tenants that agree with it.
fn holds_but_for_runs_after_other_processes(dir: &Path) -> (Vec<(String, u16)>, usize) {
    let r = check(dir).unwrap();
    for f in r.findings.iter().filter(|f| f.invariant != Invariant::OneStreamAsProfiled) {
        assert!(f.problems.is_empty(), "{}: {:?}: {:?}", dir.display(), f.invariant, f.problems);
    }
    let ds = Dataset::open(dir).unwrap();
    let t = Tables::load(&ds).unwrap();
    let by_position: BTreeMap<u32, &RunRow> = t.runs.iter().map(|r| (r.position, r)).collect();
    let profiled_elsewhere =
        t.solo_models.iter().any(|m| matches!(m.share, SoloShare::Mps { .. } | SoloShare::Process))
            || dir.join("solo_counters.parquet").exists();
    let tenants = one_stream_tenants(&t);
    let mut off = Vec::new();
    for x in tenants.iter().filter(|x| !x.agrees()) {
        let run = t.runs.iter().find(|r| r.run == x.run).unwrap();
        let after_other_processes = match run.position.checked_sub(1) {
            Some(p) => {
                by_position.get(&p).unwrap_or_else(|| panic!("no run at position {p}")).partition.uses_processes()
            }
            None => profiled_elsewhere,
        };
        assert!(after_other_processes, "{}: {x:?} is off its profile, and not after other processes", dir.display());
        off.push((x.run.clone(), x.tenant));
    }
    (off, tenants.iter().filter(|x| x.agrees()).count())
}

#[test]
fn every_invariant_holds_on_the_committed_dataset_but_runs_after_other_processes() {
    let r = check(&dir()).unwrap();
    for f in &r.findings {
        assert!(f.checked > 0 || f.skipped.is_some(), "{:?} checked nothing", f.invariant);
    }
    // committed slim: what can be checked holds (but for the runs below), the rest is skipped
    assert!(r.consolidated);
    // four for the tables a slim copy drops, one for the switch profile it predates
    assert_eq!(r.findings.iter().filter(|f| f.skipped.is_some()).count(), 5);
    let switch = r.findings.iter().find(|f| f.invariant == Invariant::SwitchAsProfiled).unwrap();
    assert!(switch.skipped.as_deref().unwrap().contains("no solo_switch table"), "{switch:?}");
    let (off, agree) = holds_but_for_runs_after_other_processes(&dir());
    assert_eq!((off.len(), agree), (18, 29), "{off:?}");
    let bytes: u64 = std::fs::read_dir(dir()).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    assert!(bytes < 16 << 20, "the dataset is {bytes} bytes");
}

#[test]
fn every_invariant_holds_on_a_whole_committed_dataset_but_the_run_after_mps_profiles() {
    // the serving workload's solo profiles, committed whole (requests and launches included)
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200-serve-profiles");
    let r = check(&profiles).unwrap();
    // its runs are solo, one tenant each: the co-located tenants' invariant has nothing to check
    let tenants: Vec<TenantRow> = Dataset::open(&profiles).unwrap().load().unwrap();
    let runs: BTreeSet<&str> = tenants.iter().map(|t| t.run.as_str()).collect();
    assert_eq!(runs.len(), tenants.len(), "a run of the solo profiles holds more than one tenant");
    assert!(r.consolidated);
    for f in &r.findings {
        // measured before the switch profile: not checked, and said so
        if f.invariant == Invariant::SwitchAsProfiled {
            assert!(f.checked == 0 && f.skipped.is_some(), "{f:?}");
            continue;
        }
        let co_located_only = f.invariant == Invariant::SoloAtShare;
        assert_eq!(f.checked == 0, co_located_only, "{:?} checked {}", f.invariant, f.checked);
        assert!(f.skipped.is_none());
    }
    // the first reference, measured right after the MPS profiles
    let (off, agree) = holds_but_for_runs_after_other_processes(&profiles);
    assert_eq!((off, agree), (vec![("224_reference_resnet50_b8__r1".to_string(), 0)], 2));
}

#[test]
fn in_every_committed_dataset_one_stream_tenants_are_off_their_profile_only_after_other_processes() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let mut judged = 0;
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        let dir = entry.path();
        if !dir.join("runs.parquet").exists() {
            continue;
        }
        let (off, agree) = holds_but_for_runs_after_other_processes(&dir);
        judged += off.len() + agree;
        // a dataset with nothing measured in other processes has no tenant off its profile
        let runs: Vec<RunRow> = Dataset::open(&dir).unwrap().load().unwrap();
        let solo: Vec<SoloModelRow> = Dataset::open(&dir).unwrap().load().unwrap();
        let elsewhere = runs.iter().any(|r| r.partition.uses_processes())
            || solo.iter().any(|m| matches!(m.share, SoloShare::Mps { .. } | SoloShare::Process))
            || dir.join("solo_counters.parquet").exists();
        assert!(elsewhere || off.is_empty(), "{}: {off:?}", dir.display());
    }
    assert!(judged > 500, "{judged} one-stream tenants judged");
}

#[test]
fn the_manifest_names_the_device_the_code_and_the_suite() {
    let m = Dataset::open(&dir()).unwrap().manifest().unwrap();
    assert!(m.device.name.contains("H200"));
    assert_eq!(m.suite.name, "default");
    assert!(m.tool.git_commit.len() >= 7 && !m.tool.git_commit.ends_with("dirty"), "{}", m.tool.git_commit);
    assert!(m.ceilings.copy_gbps > 1000.0 && m.ceilings.l2_gbps > m.ceilings.copy_gbps);
    assert_eq!(m.harness_overhead.clock_check.outside, 0);
    assert!(m.suite.reference_every > 0);
}

#[test]
fn gemms_are_timed_and_equal_shares_are_equal_in_sms() {
    let ds = Dataset::open(&dir()).unwrap();
    let kernels: Vec<SoloKernelRow> = ds.load().unwrap();
    let m = ds.manifest().unwrap();
    // BERT-base's fc2 at batch 8 on the whole GPU: a timed GEMM under the bf16 ceiling
    let fc2_ops: Vec<SoloOpRow> = ds.load().unwrap();
    let fc2 = fc2_ops
        .iter()
        .find(|o| o.model == "bert_base" && o.batch == 8 && o.share == SoloShare::Device && o.layer.ends_with("fc2"))
        .unwrap();
    let tflops = fc2.flops / (fc2.time_us.unwrap() * 1e-6) / 1e12;
    assert!(tflops > 50.0 && tflops < m.ceilings.matrix_bf16_tflops(), "{tflops} TFLOP/s");
    assert!(kernels.iter().any(|k| k.kind == LaunchKind::Cublas && k.time_us.is_some()));
    let tenants: Vec<TenantRow> = ds.load().unwrap();
    let runs: Vec<RunRow> = ds.load().unwrap();
    let partition: BTreeMap<&str, PartitionKind> = runs.iter().map(|r| (r.run.as_str(), r.partition)).collect();
    let granted = |p: PartitionKind, n: usize| -> BTreeSet<u32> {
        let per_run = |run: &str| tenants.iter().filter(|t| t.run == run).count();
        tenants
            .iter()
            .filter(|t| partition[t.run.as_str()] == p && per_run(&t.run) == n && t.sms.is_some())
            .map(|t| t.granted_sms)
            .collect()
    };
    assert!(granted(PartitionKind::Green, 2).contains(&56) && granted(PartitionKind::Mps, 2).contains(&56));
    assert!(granted(PartitionKind::Green, 3).contains(&40) && granted(PartitionKind::Mps, 3).contains(&40));
    for t in &tenants {
        if let Some(sms) = t.sms {
            assert_eq!(sms, t.granted_sms, "{} {}", t.run, t.name);
        }
    }
}

#[test]
fn kernels_overlap_under_green_contexts_mps_and_streams_and_never_on_one_stream() {
    let ds = Dataset::open(&dir()).unwrap();
    let runs: Vec<RunRow> = ds.load().unwrap();
    let kernels: Vec<KernelRow> = coloc_dataset::store::load(&subset()).unwrap();
    let mut by_run: BTreeMap<&str, Vec<&KernelRow>> = BTreeMap::new();
    for k in &kernels {
        by_run.entry(k.run.as_str()).or_default().push(k);
    }
    let mut overlapping = BTreeMap::<PartitionKind, usize>::new();
    for r in runs.iter().filter(|r| r.role == Role::Measured) {
        let Some(ks) = by_run.get(r.run.as_str()) else { continue };
        let total: i64 = overlap::overlaps(ks, 0).iter().map(|p| p.overlap_ns).sum();
        if r.partition == PartitionKind::TimeSliced {
            assert_eq!(total, 0, "{}: launches on one stream overlapped by {total} ns", r.run);
        } else if total > 0 {
            *overlapping.entry(r.partition).or_default() += 1;
        }
    }
    for p in [PartitionKind::Green, PartitionKind::Mps, PartitionKind::Streams] {
        assert!(overlapping.get(&p).copied().unwrap_or(0) >= 3, "too few {p:?} runs overlap: {overlapping:?}");
    }
}

#[test]
fn a_quarter_of_batches_or_more_have_their_launches_recorded() {
    let batches: Vec<BatchRow> = Dataset::open(&dir()).unwrap().load().unwrap();
    let mut per: BTreeMap<(&str, u16), (usize, usize)> = BTreeMap::new();
    for b in batches.iter().filter(|b| b.start_ns >= 0) {
        let e = per.entry((b.run.as_str(), b.tenant)).or_default();
        e.0 += b.sampled as usize;
        e.1 += 1;
    }
    for ((run, t), (s, n)) in per {
        assert!(s * 4 >= n, "{run} tenant {t}: {s} of {n} batches sampled");
    }
}

#[test]
fn every_committed_serving_dataset_holds_what_its_slim_copy_can_check() {
    // the measured plans and runtime schedulers of serving/mixed.toml (data/h200-checks/schedulers)
    for name in ["plans", "plans-2", "clockwork", "clockwork-2", "fcfs", "fcfs-2", "runtime", "runtime-2", "abacus"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../data/h200-{name}"));
        let r = check(&dir).unwrap();
        assert!(r.consolidated && !r.is_whole(), "{name}");
        for f in &r.findings {
            assert!(f.checked > 0 || f.skipped.is_some(), "{name}: {:?} checked nothing", f.invariant);
        }
        let (off, agree) = holds_but_for_runs_after_other_processes(&dir);
        // only the suites with MPS runs have runs after other processes
        assert_eq!(off.is_empty(), !name.starts_with("plans"), "{name}: {off:?}");
        assert!(agree > 0 || name == "plans", "{name}: no lone run agrees with its profile");
    }
}

#[test]
fn the_calibrated_gap_between_queued_graphs_is_a_floor_of_the_served_models_gap() {
    // data/h200-runtime-2: the null graph's gap behind a graph on the same stream, measured
    // before the runs, against the gap of every batch of a one-stream run that was formed while
    // the batch before it still ran (an independent measurement of the same thing, with
    // model-sized graphs)
    let ds = Dataset::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200-runtime-2")).unwrap();
    let calibrated = ds.manifest().unwrap().harness_overhead.queued_gap_us.expect("measured");
    let runs: Vec<RunRow> = ds.load().unwrap();
    let one_stream: BTreeSet<&str> = runs
        .iter()
        .filter(|r| r.partition == PartitionKind::TimeSliced && r.role != Role::Reference)
        .map(|r| r.run.as_str())
        .collect();
    let batches: Vec<BatchRow> = ds.load().unwrap();
    let mut by_run: BTreeMap<&str, Vec<&BatchRow>> = BTreeMap::new();
    for b in batches.iter().filter(|b| one_stream.contains(b.run.as_str())) {
        by_run.entry(b.run.as_str()).or_default().push(b);
    }
    let mut gaps: Vec<f64> = Vec::new();
    for bs in by_run.values_mut() {
        bs.sort_by_key(|b| b.start_ns);
        gaps.extend(
            bs.windows(2).filter(|w| w[1].formed_ns < w[0].end_ns).map(|w| (w[1].start_ns - w[0].end_ns) as f64 / 1e3),
        );
    }
    assert!(gaps.len() > 10_000, "{} queued batches", gaps.len());
    gaps.sort_by(f64::total_cmp);
    let served = gaps[gaps.len() / 2];
    // both are microseconds, not the hundreds a batch takes; the null graph's is the smaller
    assert!((5.0..40.0).contains(&calibrated) && (5.0..40.0).contains(&served), "{calibrated} {served}");
    assert!(calibrated <= served, "calibrated {calibrated} us, served models {served} us");
}

#[test]
fn on_one_stream_mobilenet_at_batch_1_runs_slower_after_another_model_than_after_itself() {
    // data/h200-clockwork (no runs in other processes, so no state change): the residual of the
    // time-sharing forecasts (docs/schedulers.md)
    let ds = Dataset::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200-clockwork")).unwrap();
    let runs: Vec<RunRow> = ds.load().unwrap();
    let tenants: Vec<TenantRow> = ds.load().unwrap();
    let solo: Vec<SoloModelRow> = ds.load().unwrap();
    let batches: Vec<BatchRow> = ds.load().unwrap();
    let one_stream: BTreeSet<&str> =
        runs.iter().filter(|r| r.partition == PartitionKind::TimeSliced).map(|r| r.run.as_str()).collect();
    let model: BTreeMap<(&str, u16), &str> =
        tenants.iter().map(|t| ((t.run.as_str(), t.tenant), t.model.as_str())).collect();
    let mut by_run: BTreeMap<&str, Vec<&BatchRow>> = BTreeMap::new();
    for b in batches.iter().filter(|b| b.start_ns >= 0 && one_stream.contains(b.run.as_str())) {
        by_run.entry(b.run.as_str()).or_default().push(b);
    }
    // (model, bucket, after another tenant's batch) -> GPU times, us
    let mut times: BTreeMap<(&str, u16, bool), Vec<f64>> = BTreeMap::new();
    for bs in by_run.values_mut() {
        bs.sort_by_key(|b| b.start_ns);
        for w in bs.windows(2) {
            let m = model[&(w[1].run.as_str(), w[1].tenant)];
            times
                .entry((m, w[1].bucket, w[0].tenant != w[1].tenant))
                .or_default()
                .push((w[1].end_ns - w[1].start_ns) as f64 / 1e3);
        }
    }
    let mut ratio = |m: &'static str, bucket: u16, after_other: bool| {
        let v = times.get_mut(&(m, bucket, after_other)).unwrap();
        assert!(v.len() >= 200, "{m} b{bucket} {after_other}: {} batches", v.len());
        let mid = v.len() / 2;
        let median = *v.select_nth_unstable_by(mid, f64::total_cmp).1;
        let profile =
            solo.iter().find(|s| s.model == m && s.batch == bucket as u32 && s.share == SoloShare::Device).unwrap();
        median / profile.stamped_p50_us
    };
    let (after_other, after_itself) = (ratio("mobilenet_v2", 1, true), ratio("mobilenet_v2", 1, false));
    assert!(after_other > 1.08 && (after_itself - 1.0).abs() < 0.02, "{after_other} {after_itself}");
    // resnet50 at batch 1 does not care
    assert!((ratio("resnet50", 1, true) - ratio("resnet50", 1, false)).abs() < 0.02);
}

#[test]
fn on_the_h100_probe_the_state_change_follows_other_processes_and_a_cold_switch_profile_is_caught() {
    // data/h200-checks/harness/state-probe-h100: measured with the ceilings in the measuring
    // process (before 339daee) and the first switch profile (before cd91530)
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200-checks/harness/state-probe-h100");
    // the reference after every kind of run: off (0.90-0.91x) first, after the MPS pair and
    // after the processes pair; as profiled after the solo run, the green pair and the streams pair
    let (off, agree) = holds_but_for_runs_after_other_processes(&base.join("state-probe"));
    assert_eq!((off.len(), agree), (3, 4), "{off:?}");
    // the first switch profile timed "after its own" one replay after another model's: mobilenet_v2
    // b1 3.5% over its profile, which the invariant catches; the run itself agrees with the
    // profile after its own batches and with the switch profile after another model's
    let r = check(&base.join("switch-probe")).unwrap();
    let f = r.findings.iter().find(|f| f.invariant == Invariant::SwitchAsProfiled).unwrap();
    assert_eq!(f.checked, 6);
    assert!(
        f.problems.len() == 1 && f.problems[0].starts_with("2 switch-profile row(s) whose replays after their own")
    );
    assert!(f.problems[0].contains("mobilenet_v2 b1 after bert_base b1") && f.problems[0].contains("(1.035x)"));
}

#[test]
fn on_the_second_h100_probe_ceilings_apart_do_not_end_the_two_speeds_and_the_switch_profile_agrees() {
    // data/h200-checks/harness/state-probe-h100-2: coloc ae2dab3, the ceilings measured in a
    // process of their own (339daee) and two own replays before each switch-profile one (cd91530)
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200-checks/harness/state-probe-h100-2");
    let kinds = base.join("kinds");
    let m = Dataset::open(&kinds).unwrap().manifest().unwrap();
    assert_eq!(m.ceilings_measured, Some(coloc_dataset::manifest::CeilingsMeasured::InAProcessOfTheirOwn));
    // still: the reference off its profile (0.91x) first, after the MPS pair and after the
    // processes pair, and as profiled after the solo run, the green pair and the streams pair
    let (off, agree) = holds_but_for_runs_after_other_processes(&kinds);
    assert_eq!((off.len(), agree), (3, 4), "{off:?}");
    let off_runs: BTreeSet<&str> = off.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        off_runs,
        BTreeSet::from([
            "005_reference_resnet50_b1__r1",
            "005_reference_resnet50_b1__r4",
            "005_reference_resnet50_b1__r5"
        ])
    );
    // the switch profile after its own is the profile, and the whole switch probe holds
    let r = check(&base.join("switch")).unwrap();
    let f = r.findings.iter().find(|f| f.invariant == Invariant::SwitchAsProfiled).unwrap();
    assert_eq!((f.checked, f.problems.len()), (6, 0), "{:?}", f.problems);
    assert!(r.findings.iter().all(|f| f.problems.is_empty()), "{:?}", r.findings);
    let t = Tables::load(&Dataset::open(&base.join("switch")).unwrap()).unwrap();
    let switch = t.solo_switch.unwrap();
    let mobilenet: Vec<&SoloSwitchRow> = switch.iter().filter(|s| s.model == "mobilenet_v2").collect();
    assert_eq!(mobilenet.len(), 2);
    for s in mobilenet {
        let factor = s.after_other_us / s.after_self_us;
        assert!((1.08..1.12).contains(&factor), "{s:?}: {factor}");
    }
}
