//! Does a partition really give the SMs it says? A fixed amount of compute-bound work (many
//! waves of FMA blocks, so wave quantisation stays small) is timed on the whole device, in
//! green contexts of several sizes and in MPS clients at several active-thread percentages.
//! Time should grow as the SM count shrinks: speed relative to the whole device, over the
//! fraction of SMs granted, is the efficiency (1.0 = exactly proportional).

use std::sync::Arc;

use serde::Serialize;

use super::green::SmSplit;
use super::mps::MpsDaemon;
use super::probe::{self, ProbeJob, ProbeResult, WorkerCommand};
use crate::error::Result;
use crate::gpu::{Device, ExecContext, KernelLibrary};
use crate::ops::{Stressor, StressorKind};

#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    pub mechanism: String,
    pub requested: String,
    pub driver_sms: u32,
    pub census_sms: u32,
    pub median_ms: f64,
    pub times_ms: Vec<f64>,
    /// Whole-device time over this time.
    pub relative_speed: f64,
    /// SMs seen by the census over the device's SMs.
    pub sm_fraction: f64,
    pub efficiency: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScalingReport {
    pub device_sms: u32,
    pub work: Stressor,
    pub rows: Vec<ScalingRow>,
    /// Mechanisms that could not be measured, with the reason.
    pub errors: Vec<String>,
}

/// The timed work: 128 blocks of 256 threads per SM (16 full waves on the whole device).
pub fn work(sms: u32) -> Stressor {
    Stressor { kind: StressorKind::Fma { iters: 2000 }, blocks: sms * 128, threads: 256 }
}

pub fn run(
    device: &Arc<Device>,
    lib: &KernelLibrary,
    green_sms: &[u32],
    mps_percentages: &[u32],
    worker: Option<&WorkerCommand>,
    reps: usize,
) -> Result<ScalingReport> {
    let sms = device.info().sm_count;
    let job = |label: String| ProbeJob { label, work: work(sms), reps };
    let mut results: Vec<(String, String, ProbeResult)> = Vec::new();
    let mut errors = Vec::new();

    let whole = ExecContext::primary(device);
    let baseline = probe::run(lib, &whole, &job("device".into()), sms)?;
    results.push(("device".into(), format!("{sms} SMs"), baseline.clone()));

    if !green_sms.is_empty() {
        match SmSplit::new(device, None) {
            Ok(split) => {
                for &n in green_sms {
                    let r = split.partition(&[("scaling", n)]).and_then(|mut parts| {
                        let p = parts.remove(0);
                        probe::run(lib, &p.context, &job(format!("green {n}")), p.granted_sms)
                    });
                    match r {
                        Ok(r) => results.push(("green".into(), format!("{n} SMs"), r)),
                        Err(e) => errors.push(format!("green context of {n} SMs: {e}")),
                    }
                }
            }
            Err(e) => errors.push(format!("green contexts: {e}")),
        }
    }

    if !mps_percentages.is_empty() {
        match (worker, MpsDaemon::start()) {
            (None, _) => errors.push("MPS: no worker command to start clients with".into()),
            (_, Err(e)) => errors.push(e.to_string()),
            (Some(worker), Ok(mut daemon)) => {
                for &pct in mps_percentages {
                    match probe::run_in_mps_client(&daemon, Some(pct), &job(format!("mps {pct}%")), worker) {
                        Ok(r) => results.push(("mps".into(), format!("{pct}%"), r)),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                if let Err(e) = daemon.stop() {
                    errors.push(e.to_string());
                }
            }
        }
    }

    let rows = results
        .into_iter()
        .map(|(mechanism, requested, r)| {
            let relative_speed = baseline.median_ms / r.median_ms;
            let sm_fraction = r.census_sms as f64 / sms as f64;
            ScalingRow {
                mechanism,
                requested,
                driver_sms: r.driver_sms,
                census_sms: r.census_sms,
                median_ms: r.median_ms,
                times_ms: r.times_ms,
                relative_speed,
                sm_fraction,
                efficiency: relative_speed / sm_fraction,
            }
        })
        .collect();
    Ok(ScalingReport { device_sms: sms, work: work(sms), rows, errors })
}

/// Most a partition may exceed proportional speed (fewer busy SMs may clock a little higher,
/// and the last wave packs differently), and most any row may exceed the whole device's.
pub const EFFICIENCY_AT_MOST: f64 = 1.15;
pub const SPEED_AT_MOST: f64 = 1.05;

impl ScalingReport {
    /// What cannot be: SMs seen beyond those granted (a green context's, an MPS client's
    /// limit), compute-bound work faster than its share of SMs allows, or faster than on
    /// the whole device. Empty when the report can be believed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rows {
            let name = format!("{} {}", r.mechanism, r.requested);
            // a green context's SMs, an MPS client's limit, the device's own count
            let granted = r.driver_sms;
            if r.census_sms > granted || r.census_sms == 0 {
                out.push(format!("{name}: blocks ran on {} SMs, {granted} granted", r.census_sms));
            }
            if !r.efficiency.is_finite() || r.efficiency > EFFICIENCY_AT_MOST {
                out.push(format!(
                    "{name}: {:.2}x proportional speed on {:.3} of the SMs (at most {EFFICIENCY_AT_MOST})",
                    r.efficiency, r.sm_fraction
                ));
            }
            if !r.relative_speed.is_finite() || r.relative_speed > SPEED_AT_MOST {
                out.push(format!("{name}: {:.2}x the whole device's speed", r.relative_speed));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mechanism: &str, driver: u32, census: u32, speed: f64) -> ScalingRow {
        let sm_fraction = census as f64 / 132.0;
        ScalingRow {
            mechanism: mechanism.into(),
            requested: "x".into(),
            driver_sms: driver,
            census_sms: census,
            median_ms: 1.0 / speed,
            times_ms: vec![1.0 / speed],
            relative_speed: speed,
            sm_fraction,
            efficiency: speed / sm_fraction,
        }
    }

    fn report(rows: Vec<ScalingRow>) -> ScalingReport {
        ScalingReport { device_sms: 132, work: work(132), rows, errors: Vec::new() }
    }

    #[test]
    fn proportional_rows_are_believed_and_impossible_ones_are_named() {
        let good = report(vec![row("device", 132, 132, 1.0), row("green", 64, 64, 0.49), row("mps", 66, 66, 0.5)]);
        assert!(good.problems().is_empty(), "{:?}", good.problems());
        let p = report(vec![
            row("green", 64, 72, 0.55),
            row("mps", 33, 33, 0.5),
            row("green", 128, 128, 1.2),
            row("mps", 14, 20, 0.15),
            row("green", 8, 8, f64::NAN),
        ])
        .problems()
        .join("\n");
        assert!(p.contains("green x: blocks ran on 72 SMs, 64 granted"), "{p}");
        assert!(p.contains("mps x: 2.00x proportional speed on 0.250 of the SMs"), "{p}");
        assert!(p.contains("green x: 1.20x the whole device's speed"), "{p}");
        assert!(p.contains("mps x: blocks ran on 20 SMs, 14 granted"), "an MPS client beyond its limit: {p}");
        assert!(p.contains("green x: NaNx proportional speed"), "an untimed row: {p}");
    }
}
