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
    let plan =
        null_plan(0, &spec, arrivals_ns.into_iter().map(|a| a as i64).collect(), warmup_s, warmup_s + duration_s + 2.0);
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
        queued_gap_us: queued_gap_us(lib, &ctx, &spec)?,
    })
}

/// A tenant serving the null model one request at a time as soon as it arrives.
fn null_plan(index: u16, spec: &ModelSpec, arrivals_ns: Vec<i64>, warmup_s: f64, deadline_s: f64) -> TenantPlan {
    TenantPlan {
        index,
        name: format!("null{index}"),
        model: spec.clone(),
        seq: None,
        context: None,
        // a batch goes as soon as its request arrives
        policy: BatchPolicy::new(&Batching::Fixed { batch: 1, max_wait_ms: Some(0.0) }, 0.0),
        arrivals: Arrivals::Open(arrivals_ns),
        warmup_ns: (warmup_s * 1e9) as i64,
        deadline_ns: (deadline_s * 1e9) as i64,
        sample_windows: vec![(0, i64::MAX)],
        weight_seed: 1,
        input_seed: 2,
        slo_ms: f64::INFINITY,
        min_queries: 0,
        // no scheduler asks
        profile: Vec::new(),
    }
}

/// Queued batches a gap is measured over; fewer, and none is reported.
const MIN_QUEUED: usize = 100;

/// The GPU's gap between a graph and the next one already queued behind it on the same stream
/// (the last kernel's end to the next graph's first kernel's start), median, us: what one
/// stream shared by tenants (time-slicing, Clockwork) loses per batch beyond the batches' own
/// time. Two tenants of the null model share one stream, each with a request always waiting,
/// so that each launches while the other's graph runs. None if too few batches queued.
///
/// A graph of a hundred kernels waits longer: in the same dataset the served models' queued
/// batches started 18-19 us after the batch before them, the null graph 13 us
/// (`docs/schedulers.md`). The null graph's is what the harness can measure before any model is
/// built; the simulator takes it as a floor.
fn queued_gap_us(lib: &Arc<KernelLibrary>, ctx: &ExecContext, spec: &ModelSpec) -> Result<Option<f64>> {
    let device = lib.device();
    let (warmup_s, duration_s) = (0.05, 0.25);
    // a request every 10 us: far more than the two can serve
    let arrivals: Vec<i64> = (0..((warmup_s + duration_s) * 1e5) as i64).map(|i| i * 10_000).collect();
    let stream = Arc::new(ctx.new_stream(0)?);
    let mut runners = (0..2u16)
        .map(|i| {
            let plan = null_plan(i, spec, arrivals.clone(), warmup_s, warmup_s + duration_s);
            TenantRunner::prepare(lib, stream.clone(), plan, device.info().sm_count)
        })
        .collect::<Result<Vec<_>>>()?;
    let before = calibrate(lib, &stream, CALIBRATION_PINGS)?;
    let run_start = mono_ns() + 20_000_000;
    let quorum = LocalQuorum::of([]);
    let raws = std::thread::scope(|s| {
        let handles: Vec<_> = runners.iter_mut().map(|r| s.spawn(|| r.run(run_start, &quorum, None))).collect();
        handles.into_iter().map(|h| h.join().expect("null tenant thread")).collect::<Vec<_>>()
    });
    let after = calibrate(lib, &stream, CALIBRATION_PINGS)?;
    let map = before.through(&after);
    let window = run_start + (warmup_s * 1e9) as i64;
    let mut batches = Vec::new();
    for raw in raws {
        batches.extend(raw?.into_output(&map, window, device.info().sm_count).batches);
    }
    Ok(queued_gap_of(batches))
}

/// The median gap, us, between a batch and the one before it on a stream, over batches formed
/// before the one before them ended (queued behind it), in the measured window.
fn queued_gap_of(mut batches: Vec<coloc_dataset::rows::BatchRow>) -> Option<f64> {
    batches.retain(|b| b.start_ns >= 0 && b.end_ns > b.start_ns);
    batches.sort_by_key(|b| b.start_ns);
    let gaps: Vec<f64> = batches
        .windows(2)
        .filter(|w| w[1].formed_ns < w[0].end_ns)
        .map(|w| (w[1].start_ns - w[0].end_ns) as f64 / 1e3)
        .collect();
    (gaps.len() >= MIN_QUEUED).then(|| median_of(&gaps))
}

#[cfg(test)]
mod tests {
    use coloc_dataset::rows::BatchRow;
    use coloc_workloads::batcher::Trigger;

    use super::*;

    fn batch(tenant: u16, formed: i64, start: i64, end: i64) -> BatchRow {
        BatchRow {
            run: String::new(),
            tenant,
            batch: 0,
            size: 1,
            bucket: 1,
            trigger: Trigger::Full,
            formed_ns: formed,
            start_ns: start,
            end_ns: end,
            noticed_ns: end + 5_000,
            sampled: false,
        }
    }

    #[test]
    fn the_gap_is_measured_only_behind_a_batch_that_was_still_running() {
        // two tenants alternating on one stream: each batch formed while the other ran, started
        // 19 us after it ended; every tenth formed after the stream went idle, 40 us later
        let mut batches = Vec::new();
        let mut t = 0i64;
        for i in 0..300 {
            let idle = i % 10 == 0;
            let formed = if idle { t + 30_000 } else { t - 5_000 };
            let start = if idle { formed + 40_000 } else { t + 19_000 };
            batches.push(batch((i % 2) as u16, formed, start, start + 1_000));
            t = start + 1_000;
        }
        batches.reverse();
        let gap = queued_gap_of(batches.clone()).unwrap();
        assert!((gap - 19.0).abs() < 1e-9, "{gap}");
        // batches before the window are left out; too few queued batches give none
        assert_eq!(queued_gap_of(batches[..100].to_vec()), None);
        let mut early = batches.clone();
        early.iter_mut().for_each(|b| b.start_ns -= 1_000_000_000);
        assert_eq!(queued_gap_of(early), None);
    }
}
