//! Is a run valid? As MLPerf LoadGen judges it: every tenant completed its minimum of queries,
//! its queue stayed stable over the whole window ([`coloc_dataset::stability`]), it got the
//! SMs it asked for, nothing was noticed before it happened, and the clocks were not
//! throttled. Each failed check comes with what to change. Warm-up requests never count.
//! The same pass fills each tenant's headline statistics, with bootstrap intervals over
//! batches ([`tenant_stats`], which a simulator also calls, without the intervals).

use std::collections::BTreeMap;

use coloc_dataset::rows::{BatchRow, RequestRow, Status, TenantRow};
use coloc_dataset::stability;
use coloc_kernels::stats::{cluster_bootstrap_ci, quantile_of};
use coloc_workloads::scenario::{RuntimeScheduler, Scenario};
use serde::{Deserialize, Serialize};

use crate::run::RunData;
use crate::solo::SoloProfiles;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: Status,
    pub reasons: Vec<String>,
    /// What to change, one per reason.
    pub fixes: Vec<String>,
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn failed(reason: String) -> Verdict {
        Verdict {
            status: Status::Failed,
            reasons: vec![reason],
            fixes: vec!["see the reason; the run is measured again by `coloc measure --resume --retry-failed`".into()],
            notes: Vec::new(),
        }
    }

    fn invalid(&mut self, reason: String, fix: &str) {
        self.reasons.push(reason);
        self.fixes.push(fix.to_string());
    }
}

/// Throttle reasons that invalidate a run; others (power capping) are noted.
const INVALIDATING: [&str; 4] =
    ["HW_SLOWDOWN", "SW_THERMAL_SLOWDOWN", "HW_THERMAL_SLOWDOWN", "HW_POWER_BRAKE_SLOWDOWN"];

/// Clock maps coarser than this are noted.
const CLOCK_NOTE_NS: i64 = 10_000;

/// Whether a tenant's statistics carry intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intervals {
    /// 95% cluster-bootstrap intervals over batches: a measured run's sampling uncertainty.
    Bootstrap,
    /// Points only. A simulator's search asks for these: the bootstrap costs twenty times the
    /// simulation, and only measures the simulator's own sample.
    None,
}

/// A quantile with its 95% bootstrap interval over batches, where asked.
fn quantile_ci(by_batch: &[Vec<f64>], q: f64, intervals: Intervals) -> Option<(f64, Option<f64>, Option<f64>)> {
    let mut all: Vec<f64> = by_batch.iter().flatten().copied().collect();
    if all.is_empty() {
        return None;
    }
    let point = quantile_of(&mut all, q);
    match intervals {
        Intervals::Bootstrap => {
            let (lo, hi) = cluster_bootstrap_ci(by_batch, 0.95, |v| quantile_of(v, q));
            Some((point, Some(lo), Some(hi)))
        }
        Intervals::None => Some((point, None, None)),
    }
}

/// Fills the statistics of `row` from its requests and batches over a window of `window_ns`;
/// `solo_gpu_ms` gives the solo GPU time at the tenant's share for each bucket.
pub fn tenant_stats(
    row: &mut TenantRow,
    requests: &[&RequestRow],
    batches: &[&BatchRow],
    window_ns: i64,
    solo_gpu_ms: &dyn Fn(u16) -> Option<f64>,
    intervals: Intervals,
) {
    let measured: Vec<&&RequestRow> = requests.iter().filter(|r| !r.warmup).collect();
    let done: Vec<&&&RequestRow> = measured.iter().filter(|r| r.latency_ns.is_some()).collect();
    let mut by_batch: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for r in &done {
        if let (Some(b), Some(l)) = (r.batch, r.latency_ns) {
            by_batch.entry(b).or_default().push(l as f64 / 1e6);
        }
    }
    let clusters: Vec<Vec<f64>> = by_batch.into_values().collect();
    let (p50, p99) = (quantile_ci(&clusters, 0.5, intervals), quantile_ci(&clusters, 0.99, intervals));
    row.measured = measured.len() as u32;
    row.completed = done.len() as u32;
    (row.p50_ms, row.p50_lo_ms, row.p50_hi_ms) = (p50.map(|q| q.0), p50.and_then(|q| q.1), p50.and_then(|q| q.2));
    (row.p99_ms, row.p99_lo_ms, row.p99_hi_ms) = (p99.map(|q| q.0), p99.and_then(|q| q.1), p99.and_then(|q| q.2));
    let within = done.iter().filter(|r| r.slo_met).count();
    row.slo_attainment = if measured.is_empty() { 0.0 } else { within as f64 / measured.len() as f64 };
    let window_s = window_ns as f64 / 1e9;
    row.throughput_rps = done.len() as f64 / window_s;
    let median = |mut v: Vec<f64>| (!v.is_empty()).then(|| quantile_of(&mut v, 0.5));
    row.queue_wait_p50_ms = median(done.iter().filter_map(|r| r.queue_wait_ns).map(|v| v as f64 / 1e6).collect());
    row.dispatch_wait_p50_ms = median(done.iter().filter_map(|r| r.dispatch_wait_ns).map(|v| v as f64 / 1e6).collect());
    let in_window: Vec<&&BatchRow> = batches.iter().filter(|b| b.start_ns >= 0 && b.start_ns < window_ns).collect();
    row.mean_batch_size =
        (!in_window.is_empty()).then(|| in_window.iter().map(|b| b.size as f64).sum::<f64>() / in_window.len() as f64);
    let busy: i64 = in_window.iter().map(|b| b.end_ns.min(window_ns) - b.start_ns).sum();
    row.busy_fraction = busy as f64 / window_ns as f64;
    let gpu: Vec<f64> = in_window.iter().map(|b| (b.end_ns - b.start_ns) as f64 / 1e6).collect();
    row.gpu_p50_ms = median(gpu);
    // each batch against the same graph alone at the same share
    let ratios: Vec<Vec<f64>> = in_window
        .iter()
        .filter_map(|b| solo_gpu_ms(b.bucket).map(|s| vec![(b.end_ns - b.start_ns) as f64 / 1e6 / s]))
        .collect();
    let interference = quantile_ci(&ratios, 0.5, intervals);
    (row.interference, row.interference_lo, row.interference_hi) =
        (interference.map(|g| g.0), interference.and_then(|g| g.1), interference.and_then(|g| g.2));
}

/// Judges `data` and fills its tenants' statistics (interference against `solo`).
pub fn judge(scenario: &Scenario, data: &mut RunData, solo: &SoloProfiles) -> Verdict {
    let mut v = Verdict { status: Status::Valid, reasons: Vec::new(), fixes: Vec::new(), notes: Vec::new() };
    let window_ns = data.window_ns;
    for row in data.tenants.iter_mut() {
        let requests: Vec<&RequestRow> = data.records.requests.iter().filter(|r| r.tenant == row.tenant).collect();
        let batches: Vec<&BatchRow> = data.records.batches.iter().filter(|b| b.tenant == row.tenant).collect();
        let (model, share) = (row.model.clone(), row.share);
        let solo_gpu_ms = |bucket: u16| solo.find(&model, bucket as usize, share).map(|m| m.stamped_p50_us / 1e3);
        tenant_stats(row, &requests, &batches, window_ns, &solo_gpu_ms, Intervals::Bootstrap);
        let name = &row.name;
        if (row.completed as usize) < scenario.min_queries {
            v.invalid(
                format!(
                    "`{name}` completed {} measured queries, fewer than min_queries = {}",
                    row.completed, scenario.min_queries
                ),
                "lengthen duration_s, raise the load, or give a closed loop more clients",
            );
        }
        let unfinished = row.measured - row.completed;
        // Clockwork drops what it cannot serve in time, by design: misses, not a stuck queue
        let dropping = scenario.scheduler == RuntimeScheduler::Clockwork;
        if unfinished > 0 && dropping {
            v.notes.push(format!(
                "`{name}`: Clockwork dropped {unfinished} of {} measured requests (counted as SLO misses)",
                row.measured
            ));
        }
        if unfinished > 0 && !dropping {
            v.invalid(
                format!(
                    "`{name}`: {unfinished} of {} measured requests were still queued at the deadline",
                    row.measured
                ),
                "the tenant is overloaded: lower its load, give it a larger share, or co-locate fewer tenants",
            );
        } else {
            // what Clockwork dropped never waited in its queue (as `coloc dataset check` reads it)
            let waits: Vec<(i64, Option<i64>)> = requests
                .iter()
                .filter(|r| !(r.warmup || dropping && r.start_ns.is_none()))
                .map(|r| (r.arrival_ns, r.start_ns.map(|s| s - r.arrival_ns)))
                .collect();
            let scale = stability::wait_scale_ms(row.max_wait_ms, row.gpu_p50_ms, row.solo_share_gpu_ms);
            if let Some(why) = stability::judge(&stability::sub_window_waits_ms(&waits, window_ns, window_ns), scale) {
                v.invalid(format!("`{name}`: {}", why.reason()), why.fix());
            }
        }
        if let Some(sms) = row.sms.filter(|s| *s != row.granted_sms) {
            v.invalid(
                format!("`{name}` asked for {sms} SMs and was granted {}", row.granted_sms),
                "give the share as SMs the mechanism grants exactly (green: whole groups; MPS: `mps:<n>sm` with an even n)",
            );
        }
        let early = batches.iter().filter(|b| b.noticed_ns < b.end_ns - row.clock_uncertainty_ns).count();
        if early > 0 {
            v.invalid(
                format!("`{name}`: {early} batches were noticed before their last kernel ended, beyond the clock map's {:.1} us", row.clock_uncertainty_ns as f64 / 1e3),
                "the host/GPU clock map is wrong for this run: measure it again, and report it if it repeats",
            );
        }
        if row.clock_uncertainty_ns > CLOCK_NOTE_NS {
            v.notes
                .push(format!("`{name}`: host/GPU clock map within {:.1} us", row.clock_uncertainty_ns as f64 / 1e3));
        }
    }
    for a in &data.aggressors {
        if !data.records.kernels.iter().any(|k| k.aggressor == Some(a.aggressor)) {
            v.invalid(
                format!("aggressor `{}` recorded no launch", a.name),
                "check that it fits in memory and its window in the run",
            );
        }
    }
    let window: Vec<_> = data.samples.iter().filter(|s| s.t_ns >= 0 && s.t_ns <= window_ns).collect();
    if window.is_empty() {
        v.notes.push("no device samples (NVML unavailable)".into());
    } else {
        for reason in INVALIDATING {
            let n = window.iter().filter(|s| s.throttle.iter().any(|r| r == reason)).count();
            if n > 0 {
                v.invalid(
                    format!("clocks throttled ({reason}) in {n} of {} device samples", window.len()),
                    "the GPU was too hot or hit a hardware limit: let it cool and measure again",
                );
            }
        }
        let capped = window.iter().filter(|s| s.throttle.iter().any(|r| r == "SW_POWER_CAP")).count();
        if capped > 0 {
            let min_clock = window.iter().filter_map(|s| s.sm_clock_mhz).min().unwrap_or(0);
            v.notes.push(format!(
                "power-capped in {capped} of {} device samples (lowest SM clock {min_clock} MHz)",
                window.len()
            ));
        }
    }
    if !v.reasons.is_empty() {
        v.status = Status::Invalid;
    }
    v
}
