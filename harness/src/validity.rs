//! Is a run valid? As MLPerf LoadGen judges it: the measured window was long enough and held
//! enough queries, the queue did not grow without bound, and the clocks were not throttled.
//! Warm-up requests never count. The verdict states every failed check and why, plus notes
//! that do not invalidate a run (power capping, a coarse clock calibration).

use coloc_kernels::stats::quantile_sorted;
use coloc_workloads::scenario::Scenario;
use serde::{Deserialize, Serialize};

use crate::record::{AGGRESSOR_ID_BASE, RequestRecord};
use crate::run::RunData;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Valid,
    Invalid,
    /// The run could not be completed (out of memory, launch error, time-out).
    Failed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Valid => "VALID",
            Status::Invalid => "INVALID",
            Status::Failed => "FAILED",
        }
    }
}

/// Latency and throughput of one tenant over the measured window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantStats {
    pub name: String,
    pub model: String,
    /// Requests that arrived in the measured window.
    pub measured: usize,
    pub completed: usize,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub p50_ms: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub p90_ms: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub p99_ms: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub slo_ms: f64,
    /// Measured requests that completed within the SLO, over all measured requests.
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub slo_attainment: f64,
    /// Completed measured requests per second of window.
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub throughput_rps: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub mean_batch: f64,
    /// Median GPU time of a full batch over the solo latency at that batch.
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub slowdown: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: Status,
    pub reasons: Vec<String>,
    pub notes: Vec<String>,
    pub tenants: Vec<TenantStats>,
}

impl Verdict {
    pub fn failed(reason: String) -> Verdict {
        Verdict { status: Status::Failed, reasons: vec![reason], notes: Vec::new(), tenants: Vec::new() }
    }
}

/// Throttle reasons that invalidate a run; others (power capping) are noted.
const INVALIDATING: [&str; 4] =
    ["HW_SLOWDOWN", "SW_THERMAL_SLOWDOWN", "HW_THERMAL_SLOWDOWN", "HW_POWER_BRAKE_SLOWDOWN"];

/// Clock calibrations coarser than this are noted.
const CLOCK_NOTE_NS: i64 = 10_000;

pub fn judge(scenario: &Scenario, data: &RunData) -> Verdict {
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    let window_ns = (scenario.duration_s * 1e9) as i64;
    let mut stats = Vec::new();
    for info in &data.tenants {
        let reqs: Vec<&RequestRecord> =
            data.records.requests.iter().filter(|r| r.tenant == info.index && !r.warmup).collect();
        let done: Vec<&&RequestRecord> = reqs.iter().filter(|r| r.end_ns.is_some()).collect();
        let mut lat: Vec<f64> = done.iter().filter_map(|r| r.latency_ns()).map(|l| l as f64 / 1e6).collect();
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| if lat.is_empty() { f64::NAN } else { quantile_sorted(&lat, p) };
        let within = lat.iter().filter(|l| **l <= info.slo_ms).count();
        let in_window = done.iter().filter(|r| r.end_ns.is_some_and(|e| e <= window_ns)).count();
        let batches: Vec<_> =
            data.records.batches.iter().filter(|b| b.tenant == info.index && b.start_ns >= 0).collect();
        let mean_batch = if batches.is_empty() {
            0.0
        } else {
            batches.iter().map(|b| b.size as f64).sum::<f64>() / batches.len() as f64
        };
        let mut full: Vec<f64> = batches
            .iter()
            .filter(|b| b.bucket as usize == info.max_batch)
            .map(|b| (b.end_ns - b.start_ns) as f64 / 1e6)
            .collect();
        full.sort_by(f64::total_cmp);
        let slowdown = if full.is_empty() { f64::NAN } else { quantile_sorted(&full, 0.5) / info.solo_latency_ms };
        stats.push(TenantStats {
            name: info.name.clone(),
            model: info.model.clone(),
            measured: reqs.len(),
            completed: done.len(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            slo_ms: info.slo_ms,
            slo_attainment: if reqs.is_empty() { 0.0 } else { within as f64 / reqs.len() as f64 },
            throughput_rps: in_window as f64 / scenario.duration_s,
            mean_batch,
            slowdown,
        });
        if done.len() < scenario.min_queries {
            reasons.push(format!(
                "`{}` completed {} measured queries, fewer than min_queries = {}",
                info.name,
                done.len(),
                scenario.min_queries
            ));
        }
        let unfinished = reqs.len() - done.len();
        if unfinished > 0 {
            reasons.push(format!("`{}`: {unfinished} of {} measured requests were still queued at the deadline (the queue grew without bound)", info.name, reqs.len()));
        } else if let Some(msg) = queue_trend(&reqs, window_ns, info.solo_latency_ms) {
            reasons.push(format!("`{}`: {msg}", info.name));
        }
    }
    let aggressor_launches = data.records.kernels.iter().filter(|k| k.tenant >= AGGRESSOR_ID_BASE).count();
    if !data.aggressors.is_empty() && aggressor_launches == 0 {
        reasons.push("no aggressor launch was recorded".into());
    }
    let window: Vec<_> = data.samples.iter().filter(|s| s.t_ns >= 0 && s.t_ns <= window_ns).collect();
    if window.is_empty() {
        notes.push("no device samples (NVML unavailable)".into());
    } else {
        for reason in INVALIDATING {
            let n = window.iter().filter(|s| s.sample.throttle_reasons.iter().any(|r| r == reason)).count();
            if n > 0 {
                reasons.push(format!("clocks throttled ({reason}) in {n} of {} device samples", window.len()));
            }
        }
        let capped = window.iter().filter(|s| s.sample.throttle_reasons.iter().any(|r| r == "SW_POWER_CAP")).count();
        if capped > 0 {
            let min_clock = window.iter().filter_map(|s| s.sample.sm_clock_mhz).min().unwrap_or(0);
            notes.push(format!(
                "power-capped in {capped} of {} device samples (lowest SM clock {min_clock} MHz)",
                window.len()
            ));
        }
    }
    if data.clock_uncertainty_ns > CLOCK_NOTE_NS {
        notes.push(format!("host/GPU clock calibration within {:.1} us", data.clock_uncertainty_ns as f64 / 1e3));
    }
    Verdict { status: if reasons.is_empty() { Status::Valid } else { Status::Invalid }, reasons, notes, tenants: stats }
}

/// The queue grows when waits keep lengthening: compares the median wait (arrival to GPU
/// start) of requests arriving in the last third of the window with the first third.
fn queue_trend(reqs: &[&RequestRecord], window_ns: i64, solo_ms: f64) -> Option<String> {
    let third = window_ns / 3;
    let waits = |lo: i64, hi: i64| {
        let mut w: Vec<f64> = reqs
            .iter()
            .filter(|r| r.arrival_ns >= lo && r.arrival_ns < hi)
            .filter_map(|r| r.queue_ns())
            .map(|q| q as f64 / 1e6)
            .collect();
        w.sort_by(f64::total_cmp);
        (!w.is_empty()).then(|| quantile_sorted(&w, 0.5))
    };
    let (first, last) = (waits(0, third)?, waits(2 * third, window_ns)?);
    (last > 2.0 * first + 10.0 * solo_ms).then(|| format!("median wait rose from {first:.2} ms in the first third of the window to {last:.2} ms in the last (the queue grew)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(arrival_ms: f64, wait_ms: f64) -> RequestRecord {
        let a = (arrival_ms * 1e6) as i64;
        let s = a + (wait_ms * 1e6) as i64;
        RequestRecord {
            tenant: 0,
            request: 0,
            batch: 0,
            arrival_ns: a,
            formed_ns: Some(s),
            start_ns: Some(s),
            end_ns: Some(s + 1_000_000),
            warmup: false,
        }
    }

    #[test]
    fn a_steady_queue_is_not_flagged_and_a_growing_one_is() {
        let steady: Vec<RequestRecord> = (0..300).map(|i| req(i as f64 * 10.0, 2.0)).collect();
        let refs: Vec<&RequestRecord> = steady.iter().collect();
        assert_eq!(queue_trend(&refs, 3_000_000_000, 1.0), None);
        let growing: Vec<RequestRecord> = (0..300).map(|i| req(i as f64 * 10.0, i as f64 * 2.0)).collect();
        let refs: Vec<&RequestRecord> = growing.iter().collect();
        assert!(queue_trend(&refs, 3_000_000_000, 1.0).unwrap().contains("queue grew"));
    }
}
