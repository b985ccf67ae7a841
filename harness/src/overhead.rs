//! What the harness itself adds, measured with a null workload: a model of a single tiny
//! kernel served at batch 1 through the same serving loop as every tenant. Its request latency
//! minus its kernel time is the harness's dispatch and completion cost; its kernel time in the
//! loop minus the same kernel's time alone is what the loop adds to kernel time.

use std::path::Path;
use std::sync::Arc;

use coloc_kernels::ceilings::Ceilings;
use coloc_kernels::gpu::{ExecContext, KernelLibrary};
use coloc_kernels::stats::median_of;
use coloc_workloads::arrival::{ArrivalProcess, Schedule};
use coloc_workloads::graph::BuildOptions;
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::Batching;
use serde::{Deserialize, Serialize};

use crate::clock::{self, CALIBRATION_PINGS, ClockCheck, ClockMap, calibrate, mono_ns};
use crate::error::{Error, Result};
use crate::solo::{self, SoloTarget};
use crate::tenant::{Arrivals, TenantPlan, TenantRunner};

/// One global-average-pool kernel over a 1x1x8 image: about as little work as a launch can do.
const NULL_MODEL: &str = r#"
name = "null"
description = "one tiny kernel (harness overhead)"
dtype = "f32"
input = { kind = "image", height = 1, width = 1, channels = 8 }
max_batch = 1
[[layer]]
type = "global_avg_pool"
"#;

/// Bracketed launches that check the clock calibration.
const CLOCK_CHECK_LAUNCHES: usize = 50;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HarnessOverhead {
    pub requests: usize,
    pub rate_rps: f64,
    /// The null kernel alone, replayed as a graph (stamps), microseconds.
    pub solo_kernel_us: f64,
    /// Medians over the measured requests, microseconds:
    pub kernel_us: f64,
    pub latency_us: f64,
    /// Arrival to the kernel's start: queueing in the loop, launch and GPU front end.
    pub dispatch_us: f64,
    /// Kernel end to the host noticing the completion.
    pub notice_us: f64,
    /// The calibration the loop ran with, and its check against bracketed launches.
    #[serde(default)]
    pub clock: Option<ClockMap>,
    #[serde(default)]
    pub clock_check: Option<ClockCheck>,
}

impl HarnessOverhead {
    /// Latency the harness adds beyond the kernel itself.
    pub fn added_latency_us(&self) -> f64 {
        self.latency_us - self.kernel_us
    }
    /// Kernel time added by running inside the loop (stamps included) over running alone.
    pub fn added_kernel_us(&self) -> f64 {
        self.kernel_us - self.solo_kernel_us
    }
}

pub fn measure(lib: &Arc<KernelLibrary>, ceilings: &Ceilings) -> Result<HarnessOverhead> {
    let spec = ModelSpec::parse(NULL_MODEL, Path::new("<null model>"))?;
    let solo = solo::profile(
        lib,
        ceilings,
        &SoloTarget { spec: spec.clone(), options: BuildOptions { batch: 1, ..Default::default() } },
    )?;
    let solo_kernel_us = solo.ops.first().map_or(f64::NAN, |o| o.time_us);
    let rate = 1000.0;
    let (warmup_s, duration_s) = (0.2, 2.0);
    let Schedule::Open { arrivals_ns } =
        ArrivalProcess::Poisson { rate }.schedule(warmup_s + duration_s, 100, 99, Path::new("."), "null workload")?
    else {
        return Err(Error::invalid("null workload", "expected an open schedule"));
    };
    let plan = TenantPlan {
        index: 0,
        name: "null".into(),
        model: spec,
        seq: None,
        context: None,
        batching: Batching::Fixed { batch: 1 },
        arrivals: Arrivals::Open(arrivals_ns.into_iter().map(|a| a as i64).collect()),
        warmup_ns: (warmup_s * 1e9) as i64,
        deadline_ns: ((warmup_s + duration_s + 2.0) * 1e9) as i64,
        sample_windows: vec![(0, i64::MAX)],
        weight_seed: 1,
        input_seed: 2,
    };
    let device = lib.device().clone();
    let stream = Arc::new(ExecContext::primary(&device).new_stream(0)?);
    let mut runner = TenantRunner::prepare(lib, stream.clone(), plan, device.info().sm_count)?;
    let clock = calibrate(lib, &stream, CALIBRATION_PINGS)?;
    let clock_check = clock::check(lib, &stream, &clock, CLOCK_CHECK_LAUNCHES)?;
    let out = runner.run(mono_ns() + 20_000_000, &clock)?;
    let measured: Vec<_> = out.requests.iter().filter(|r| !r.warmup && r.end_ns.is_some()).collect();
    if measured.is_empty() {
        return Err(Error::invalid("null workload", "no request completed"));
    }
    let med = |v: Vec<f64>| median_of(&v);
    let notice: Vec<f64> =
        out.batches.iter().filter(|b| b.start_ns >= 0).map(|b| (b.host_done_ns - b.end_ns) as f64 / 1e3).collect();
    Ok(HarnessOverhead {
        requests: measured.len(),
        rate_rps: rate,
        solo_kernel_us,
        kernel_us: med(measured.iter().map(|r| (r.end_ns.unwrap() - r.start_ns.unwrap()) as f64 / 1e3).collect()),
        latency_us: med(measured.iter().filter_map(|r| r.latency_ns()).map(|l| l as f64 / 1e3).collect()),
        dispatch_us: med(measured.iter().filter_map(|r| r.queue_ns()).map(|q| q as f64 / 1e3).collect()),
        notice_us: med(notice),
        clock: Some(clock),
        clock_check: Some(clock_check),
    })
}
