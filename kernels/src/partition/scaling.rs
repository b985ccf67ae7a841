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
