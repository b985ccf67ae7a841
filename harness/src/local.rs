//! Runs whose tenants are threads of this process: one stream for all (time-sliced), a stream
//! each with its priority (streams), or a green context each (green). One clock map for all,
//! from calibrations before and after the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use coloc_kernels::gpu::{Device, ExecContext, Stream};
use coloc_kernels::partition::SmSplit;
use coloc_predictors::saved::SavedPredictor;
use coloc_workloads::scenario::{PartitionKind, RuntimeScheduler, Scenario, Share};

use crate::aggressor::AggressorRunner;
use crate::clock::{CALIBRATION_PINGS, calibrate, mono_ns};
use crate::control::LocalQuorum;
use crate::error::Result;
use crate::gate::ClockworkGate;
use crate::headroom::HeadroomGate;
use crate::plan::Plans;
use crate::record::TenantOutput;
use crate::run::{Outputs, RunEnv};
use crate::sampler::sample_until;
use crate::space_time::SpaceTimeGate;
use crate::tenant::{Arrivals, Gate, TenantPlan, TenantRunner};

/// Streams (and SM counts) for tenants then aggressors under the scenario's partition.
fn streams_for(device: &Arc<Device>, scenario: &Scenario) -> Result<Vec<(Arc<Stream>, u32)>> {
    let primary = ExecContext::primary(device);
    let shares: Vec<(&str, Share)> = scenario.shares();
    let all = device.info().sm_count;
    Ok(match scenario.partition {
        PartitionKind::TimeSliced => {
            let s = Arc::new(primary.new_stream(0)?);
            shares.iter().map(|_| (s.clone(), all)).collect()
        }
        PartitionKind::Streams => {
            let least = device.info().stream_priority_range.1;
            shares
                .iter()
                .map(|(_, sh)| Ok((Arc::new(primary.new_stream(sh.priority.unwrap_or(least))?), all)))
                .collect::<Result<_>>()?
        }
        PartitionKind::Green => {
            let split = SmSplit::new(device, None)?;
            let requests: Vec<(&str, u32)> = shares.iter().map(|(n, sh)| (*n, sh.sms.unwrap_or(0))).collect();
            split
                .partition(&requests)?
                .into_iter()
                .map(|p| Ok((Arc::new(p.context.new_stream(0)?), p.granted_sms)))
                .collect::<Result<_>>()?
        }
        PartitionKind::Mps | PartitionKind::Processes => unreachable!("tenants run in processes of their own"),
    })
}

pub fn run(env: &RunEnv, scenario: &Scenario, plans: Plans) -> Result<Outputs> {
    let device = env.lib.device().clone();
    let streams = streams_for(&device, scenario)?;
    let closed: Vec<u16> =
        plans.tenants.iter().filter(|p| matches!(p.arrivals, Arrivals::Closed { .. })).map(|p| p.index).collect();
    let mut runners = Vec::new();
    for (plan, (stream, sms)) in plans.tenants.into_iter().zip(&streams) {
        runners.push(TenantRunner::prepare(env.lib, stream.clone(), plan, *sms)?);
    }
    let mut aggressors = Vec::new();
    for (plan, (stream, sms)) in plans.aggressors.into_iter().zip(&streams[runners.len()..]) {
        aggressors.push(AggressorRunner::prepare(env.lib, stream.clone(), plan, *sms)?);
    }
    let clock_stream = &streams[0].0;
    let before = calibrate(env.lib, clock_stream, CALIBRATION_PINGS)?;
    let run_start = mono_ns() + 50_000_000;
    let window = run_start + (scenario.warmup_s * 1e9) as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let quorum = LocalQuorum::of(closed);
    let plans: Vec<TenantPlan> = runners.iter().map(|r| r.plan().clone()).collect();
    let clockwork = (scenario.scheduler == RuntimeScheduler::Clockwork).then(|| ClockworkGate::new(&plans, env.costs));
    let headroom = match (&scenario.scheduler, &scenario.scheduler_predictor) {
        (RuntimeScheduler::LeastHeadroom, Some(file)) => {
            let saved = SavedPredictor::load(&env.base_dir.join(file))?;
            Some(HeadroomGate::new(&plans, Box::new(saved.fitted), env.costs))
        }
        _ => None,
    };
    let space_time = (scenario.scheduler == RuntimeScheduler::SpaceTime).then(|| SpaceTimeGate::new(&plans));
    let gate = clockwork
        .as_ref()
        .map(Gate::Clockwork)
        .or(headroom.as_ref().map(Gate::Headroom))
        .or(space_time.as_ref().map(Gate::SpaceTime));
    let (touts, aouts, samples) = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample_until(env.nvml, window, &stop));
        let t: Vec<_> = runners.iter_mut().map(|r| s.spawn(|| r.run(run_start, &quorum, gate))).collect();
        let a: Vec<_> = aggressors.iter_mut().map(|r| s.spawn(|| r.run(run_start))).collect();
        let touts: Vec<Result<_>> = t.into_iter().map(|h| h.join().expect("tenant thread")).collect();
        let aouts: Vec<Result<_>> = a.into_iter().map(|h| h.join().expect("aggressor thread")).collect();
        stop.store(true, Ordering::Relaxed);
        (touts, aouts, sampler.join().expect("sampler thread"))
    });
    let after = calibrate(env.lib, clock_stream, CALIBRATION_PINGS)?;
    let map = before.through(&after);
    let tenants: Vec<TenantOutput> = touts
        .into_iter()
        .zip(&runners)
        .map(|(raw, r)| Ok(raw?.into_output(&map, window, r.granted_sms)))
        .collect::<Result<_>>()?;
    let aggressors: Vec<TenantOutput> = aouts
        .into_iter()
        .zip(&aggressors)
        .map(|(raw, r)| Ok(raw?.into_output(&map, window, r.granted_sms)))
        .collect::<Result<_>>()?;
    let notes = space_time.map(|g| g.note(&plans)).into_iter().collect();
    Ok(Outputs { tenants, aggressors, samples, notes })
}
