//! What the harness itself adds, measured with a null workload: a model of a single tiny
//! kernel served at batch 1 through the same serving loop as every tenant. Its request latency
//! minus its kernel time is the harness's dispatch and completion cost; its kernel time in the
//! loop minus the same kernel's time alone is what the loop adds to kernel time. The clock map
//! of the loop is checked against bracketed launches, an independent method.

use std::path::Path;
use std::sync::Arc;

use coloc_dataset::manifest::HarnessOverhead;
use coloc_kernels::ceilings::Ceilings;
use coloc_kernels::gpu::{ExecContext, KernelLibrary};
use coloc_kernels::stats::median_of;
use coloc_workloads::arrival::{ArrivalProcess, Schedule};
use coloc_workloads::batcher::BatchPolicy;
use coloc_workloads::graph::BuildOptions;
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::{Batching, SoloShare};

use crate::clock::{self, CALIBRATION_PINGS, calibrate, mono_ns};
use crate::control::LocalQuorum;
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

/// Bracketed launches that check the clock map.
const CLOCK_CHECK_LAUNCHES: usize = 50;

pub fn measure(lib: &Arc<KernelLibrary>, ceilings: &Ceilings) -> Result<HarnessOverhead> {
    let spec = ModelSpec::parse(NULL_MODEL, Path::new("<null model>"))?;
    let device = lib.device().clone();
    let ctx = ExecContext::primary(&device);
    let target = SoloTarget {
        spec: spec.clone(),
        options: BuildOptions { batch: 1, ..Default::default() },
        share: SoloShare::Device,
    };
    let solo = solo::profile(lib, &ctx, device.info().sm_count, ceilings, &target)?;
    let solo_kernel_us = solo.kernels.first().and_then(|k| k.time_us).unwrap_or(f64::NAN);
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
        // a batch goes as soon as its request arrives
        policy: BatchPolicy::new(&Batching::Fixed { batch: 1, max_wait_ms: Some(0.0) }, 0.0),
        arrivals: Arrivals::Open(arrivals_ns.into_iter().map(|a| a as i64).collect()),
        warmup_ns: (warmup_s * 1e9) as i64,
        deadline_ns: ((warmup_s + duration_s + 2.0) * 1e9) as i64,
        sample_windows: vec![(0, i64::MAX)],
        weight_seed: 1,
        input_seed: 2,
        slo_ms: f64::INFINITY,
        min_queries: 0,
        // no scheduler asks
        profile: Vec::new(),
    };
    let stream = Arc::new(ctx.new_stream(0)?);
    let mut runner = TenantRunner::prepare(lib, stream.clone(), plan, device.info().sm_count)?;
    let before = calibrate(lib, &stream, CALIBRATION_PINGS)?;
    let run_start = mono_ns() + 20_000_000;
    let raw = runner.run(run_start, &LocalQuorum::of([]), None)?;
    let after = calibrate(lib, &stream, CALIBRATION_PINGS)?;
    let map = before.through(&after);
    let clock_check = clock::check(lib, &stream, &map, CLOCK_CHECK_LAUNCHES)?;
    let out = raw.into_output(&map, run_start + (warmup_s * 1e9) as i64, device.info().sm_count);
    let measured: Vec<_> = out.requests.iter().filter(|r| !r.warmup && r.latency_ns.is_some()).collect();
    if measured.is_empty() {
        return Err(Error::invalid("null workload", "no request completed"));
    }
    let med = |v: Vec<f64>| median_of(&v);
    let us = |v: Option<i64>| v.unwrap_or(0) as f64 / 1e3;
    Ok(HarnessOverhead {
        requests: measured.len(),
        rate_rps: rate,
        solo_kernel_us,
        kernel_us: med(measured.iter().map(|r| us(r.gpu_ns)).collect()),
        latency_us: med(measured.iter().map(|r| us(r.latency_ns)).collect()),
        dispatch_us: med(measured.iter().map(|r| us(r.start_ns.zip(Some(r.arrival_ns)).map(|(s, a)| s - a))).collect()),
        notice_us: med(out
            .batches
            .iter()
            .filter(|b| b.start_ns >= 0)
            .map(|b| (b.noticed_ns - b.end_ns) as f64 / 1e3)
            .collect()),
        clock: map,
        clock_check,
    })
}
