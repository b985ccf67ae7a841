//! `summary.txt`, a pure function of the dataset: what was measured, each run's verdict with
//! every reason and what to change, each tenant's latency (with bootstrap intervals), its
//! parts, its interference against solo at the same share and the cost of the share itself;
//! then the noise floor (repetitions with fresh seeds) and the drift of the reference runs.

use std::collections::BTreeMap;
use std::fmt::Write;

use coloc_dataset::rows::{AggressorRow, BatchRow, RunRow, Status, TenantRow};
use coloc_dataset::solo_rows::SoloModelRow;
use coloc_dataset::{Dataset, Manifest};
use coloc_kernels::stats::median_of;
use coloc_workloads::scenario::Role;

use crate::error::Result;

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn interval(point: Option<f64>, lo: Option<f64>, hi: Option<f64>) -> String {
    match (point, lo, hi) {
        (Some(p), Some(l), Some(h)) => format!("{p:.2} [{l:.2}, {h:.2}]"),
        (p, _, _) => ms(p),
    }
}

fn tenant_line(t: &TenantRow) -> String {
    format!(
        "{} ({} b{} {}): p50 {} ms, p99 {} ms, SLO {:.1}% of {:.2} ms, {:.0} req/s; parts p50 queue {} + dispatch {} + GPU {} ms; interference x{}, share effect x{:.2}",
        t.name,
        t.model,
        t.max_batch,
        t.share.label(),
        interval(t.p50_ms, t.p50_lo_ms, t.p50_hi_ms),
        interval(t.p99_ms, t.p99_lo_ms, t.p99_hi_ms),
        100.0 * t.slo_attainment,
        t.slo_ms,
        t.throughput_rps,
        ms(t.queue_wait_p50_ms),
        ms(t.dispatch_wait_p50_ms),
        ms(t.gpu_p50_ms),
        interval(t.interference, t.interference_lo, t.interference_hi),
        t.share_effect,
    )
}

fn header(s: &mut String, m: &Manifest, runs: &[RunRow]) {
    let _ = writeln!(
        s,
        "coloc measure: suite `{}` ({} scenarios, {} runs) on {} ({}), coloc {} (commit {})",
        m.suite.name,
        m.suite.scenarios,
        runs.len(),
        m.device.name,
        m.device.uuid,
        m.tool.version,
        m.tool.git_commit
    );
    let _ =
        writeln!(s, "started {}; runs measured in an order shuffled with seed {}", m.started_utc, m.suite.order_seed);
    let o = &m.harness_overhead;
    let _ = writeln!(
        s,
        "harness overhead (null workload, {} requests at {} req/s): +{:.1} us request latency (arrival to kernel start {:.1} us, completion noticed {:.1} us after the kernel), kernel {:.2} us in the loop vs {:.2} us alone",
        o.requests,
        o.rate_rps,
        o.added_latency_us(),
        o.dispatch_us,
        o.notice_us,
        o.kernel_us,
        o.solo_kernel_us
    );
    if let Some(gap) = o.queued_gap_us {
        let _ =
            writeln!(s, "one stream shared: a graph queued behind another starts {gap:.1} us after it ends (median)");
    }
    let _ = writeln!(
        s,
        "host/GPU clock: offset and rate from calibrations before and after each run (null workload: drift {:.2} us/s), known within {:.2} us; {} of {} bracketed launches outside it (launch to stamp {:.1} us, stamp to return {:.1} us, tightest margin {:.2} us)",
        o.clock.drift_ns_per_s / 1e3,
        o.clock.uncertainty_ns as f64 / 1e3,
        o.clock_check.outside,
        o.clock_check.launches,
        o.clock_check.launch_to_stamp_us,
        o.clock_check.stamp_to_return_us,
        o.clock_check.tightest_margin_us
    );
    let count = |st: Status| runs.iter().filter(|r| r.status == st).count();
    let _ = writeln!(
        s,
        "runs: {} VALID, {} INVALID, {} FAILED\n",
        count(Status::Valid),
        count(Status::Invalid),
        count(Status::Failed)
    );
}

/// The whole summary.
pub fn text(ds: &Dataset) -> Result<String> {
    let m = ds.manifest()?;
    let runs: Vec<RunRow> = ds.load()?;
    let tenants: Vec<TenantRow> = ds.load_or_empty()?;
    let aggressors: Vec<AggressorRow> = ds.load_or_empty()?;
    let batches: Vec<BatchRow> = if aggressors.is_empty() { Vec::new() } else { ds.load()? };
    let solo: Vec<SoloModelRow> = ds.load_or_empty()?;
    let mut by_run: BTreeMap<&str, Vec<&TenantRow>> = BTreeMap::new();
    for t in &tenants {
        by_run.entry(t.run.as_str()).or_default().push(t);
    }
    let mut s = String::new();
    header(&mut s, &m, &runs);
    for r in runs.iter().filter(|r| r.role == Role::Measured) {
        let _ =
            writeln!(s, "{:<8} {} r{} [#{}]", format!("{:?}", r.status).to_uppercase(), r.scenario, r.rep, r.position);
        for t in by_run.get(r.run.as_str()).into_iter().flatten() {
            let _ = writeln!(s, "         {}", tenant_line(t));
        }
        for a in aggressors.iter().filter(|a| a.run == r.run) {
            for t in by_run.get(r.run.as_str()).into_iter().flatten() {
                let _ = writeln!(s, "         {}", aggressor_line(a, t, &batches, &solo));
            }
        }
        for (reason, fix) in r.reasons.iter().zip(r.fixes.iter().map(Some).chain(std::iter::repeat(None))) {
            let _ = writeln!(s, "         because {reason}");
            if let Some(f) = fix {
                let _ = writeln!(s, "           fix: {f}");
            }
        }
        for n in &r.notes {
            let _ = writeln!(s, "         note: {n}");
        }
    }
    noise_floor(&mut s, &runs, &by_run);
    drift(&mut s, &runs, &by_run);
    Ok(s)
}

/// A tenant's interference while an aggressor was on and while it was off: the medians of its
/// batches' GPU time over solo at the same share and graph, batches wholly inside or outside
/// the aggressor's window.
fn aggressor_line(a: &AggressorRow, t: &TenantRow, batches: &[BatchRow], solo: &[SoloModelRow]) -> String {
    let (on_ns, off_ns) = ((a.start_s * 1e9) as i64, (a.stop_s * 1e9) as i64);
    let solo_ms = |bucket: u16| {
        solo.iter()
            .find(|m| m.model == t.model && m.batch == bucket as u32 && m.share == t.share)
            .map(|m| m.stamped_p50_us / 1e3)
    };
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for b in batches.iter().filter(|b| b.run == t.run && b.tenant == t.tenant && b.start_ns >= 0) {
        let Some(alone) = solo_ms(b.bucket) else { continue };
        let x = (b.end_ns - b.start_ns) as f64 / 1e6 / alone;
        if b.start_ns >= on_ns && b.end_ns <= off_ns {
            on.push(x);
        } else if b.end_ns < on_ns || b.start_ns > off_ns {
            off.push(x);
        }
    }
    let med = |v: &[f64]| if v.is_empty() { "-".to_string() } else { format!("x{:.2}", median_of(v)) };
    format!(
        "{}: interference {} while `{}` was on ({}-{} s, {} batches), {} while it was off ({} batches)",
        t.name,
        med(&on),
        a.name,
        a.start_s,
        a.stop_s,
        on.len(),
        med(&off),
        off.len()
    )
}

/// Repetitions of one scenario, each with fresh seeds: the spread of their medians.
fn noise_floor(s: &mut String, runs: &[RunRow], by_run: &BTreeMap<&str, Vec<&TenantRow>>) {
    let mut reps: BTreeMap<&str, Vec<&RunRow>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.role == Role::Measured && r.status != Status::Failed) {
        reps.entry(r.scenario.as_str()).or_default().push(r);
    }
    reps.retain(|_, v| v.len() > 1);
    if reps.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nnoise floor (repetitions with fresh seeds; spread = (max - min) / median of the per-run values):"
    );
    for (scenario, rs) in reps {
        let mut parts = Vec::new();
        let mut names: Vec<&str> =
            by_run.get(rs[0].run.as_str()).into_iter().flatten().map(|t| t.name.as_str()).collect();
        names.dedup();
        for name in names {
            let of = |f: fn(&TenantRow) -> Option<f64>| -> Vec<f64> {
                rs.iter()
                    .filter_map(|r| by_run.get(r.run.as_str())?.iter().find(|t| t.name == name).and_then(|t| f(t)))
                    .collect()
            };
            let spread = |v: &[f64]| {
                let med = median_of(v);
                (v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min)) / med
            };
            let (p50, p99, gpu) = (of(|t| t.p50_ms), of(|t| t.p99_ms), of(|t| t.gpu_p50_ms));
            if p50.len() < 2 {
                continue;
            }
            let list: Vec<String> = p50.iter().map(|v| format!("{v:.3}")).collect();
            parts.push(format!(
                "{name} p50 {} ms (spread {:.1}%), p99 spread {:.1}%, GPU time spread {:.1}%",
                list.join("/"),
                100.0 * spread(&p50),
                100.0 * spread(&p99),
                if gpu.len() > 1 { 100.0 * spread(&gpu) } else { f64::NAN }
            ));
        }
        let _ = writeln!(s, "  {scenario}: {}", parts.join("; "));
    }
}

/// The reference runs in measurement order: how the same solo work's GPU time moved.
fn drift(s: &mut String, runs: &[RunRow], by_run: &BTreeMap<&str, Vec<&TenantRow>>) {
    let mut refs: Vec<(&RunRow, &TenantRow)> = runs
        .iter()
        .filter(|r| r.role == Role::Reference && r.status != Status::Failed)
        .filter_map(|r| by_run.get(r.run.as_str()).and_then(|t| t.first()).map(|t| (r, *t)))
        .collect();
    refs.sort_by_key(|(r, _)| r.position);
    let gpu: Vec<f64> = refs.iter().filter_map(|(_, t)| t.gpu_p50_ms).collect();
    if gpu.len() < 2 {
        return;
    }
    let med = median_of(&gpu);
    let (lo, hi) = (gpu.iter().copied().fold(f64::MAX, f64::min), gpu.iter().copied().fold(f64::MIN, f64::max));
    let first = refs[0].0.started_unix_s;
    let _ = writeln!(
        s,
        "\ndrift (the reference `{}`, {} runs through the suite): GPU time p50 {:.3} ms, range {:.3}-{:.3} ms ({:.2}% of the median)",
        refs[0].0.scenario,
        refs.len(),
        med,
        lo,
        hi,
        100.0 * (hi - lo) / med
    );
    let before: BTreeMap<u32, &RunRow> = runs.iter().map(|r| (r.position, r)).collect();
    let previous = |r: &RunRow| r.position.checked_sub(1).and_then(|p| before.get(&p)).map(|p| p.partition.name());
    let mut by_previous: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (r, t) in &refs {
        let after = previous(r).unwrap_or("the solo profiles");
        if let Some(g) = t.gpu_p50_ms {
            by_previous.entry(after).or_default().push(g);
        }
        let _ = writeln!(
            s,
            "  #{:<4} +{:>6.0} s  GPU p50 {} ms, latency p50 {} ms  {}, after {after}",
            r.position,
            r.started_unix_s - first,
            ms(t.gpu_p50_ms),
            ms(t.p50_ms),
            format!("{:?}", r.status).to_uppercase()
        );
    }
    let groups: Vec<String> = by_previous
        .iter()
        .map(|(after, g)| format!("after {after}: {:.3} ms ({} runs)", median_of(g), g.len()))
        .collect();
    let _ = writeln!(s, "  by the run before it: {}", groups.join("; "));
}
