//! A measured pipeline's sequence: the rig built, each element's solo profile and the stressed
//! one, the unstressed pipeline that gives the policies their basis, then each policy's run on
//! the same arrivals (`policy_run.rs`) over the rig (`rig.rs`).

use std::path::Path;
use std::sync::Arc;

use std::collections::HashMap;

use coloc_harness::aggressor::{AggressorLoad, AggressorPlan, AggressorRunner};
use coloc_harness::clock::mono_ns;
use coloc_harness::model::ModelInstance;
use coloc_kernels::gpu::{Event, KernelLibrary, PinnedBuffer, StreamLibraries};
use coloc_kernels::ops::LaunchEnv;
use coloc_kernels::partition::SmSplit;
use coloc_kernels::stats::median_of;
use coloc_workloads::arrival::{ArrivalProcess, Schedule};
use coloc_workloads::graph::{BuildOptions, ModelGraph};

use super::policy_run::Run;
use super::rig::{Element, Rig};
use super::{MeasurePlan, Measured, MeasuredPipeline, MeasuredRun, ParamsRow, Profile};
use crate::error::{Error, Result};
use crate::pipeline::{Policy, Split};

fn profile(element: usize, granted_sms: u32, stressed: bool, runs: &[Vec<f64>]) -> Profile {
    let n = runs[0].len();
    let op_us = (0..n).map(|op| median_of(&runs.iter().map(|r| r[op]).collect::<Vec<_>>())).collect();
    let spans: Vec<f64> = runs.iter().map(|r| r.iter().sum()).collect();
    Profile { element, granted_sms, stressed, replays: runs.len(), op_us, span_us: median_of(&spans) }
}

/// Runs the measurement: profiles, then each policy on the same arrivals. A policy's run that
/// fails stops it; what was measured before is returned with the error.
pub fn measure(lib: &Arc<KernelLibrary>, plan: &MeasurePlan) -> Result<Measured> {
    let spec = plan.spec();
    let device = lib.device().clone();
    let info = device.info().clone();
    let split = SmSplit::new(&device, Some(spec.sms))?;
    let labels: Vec<String> = (0..spec.elements).map(|e| format!("element{e}")).collect();
    let requests: Vec<(&str, u32)> = labels.iter().map(|l| (l.as_str(), spec.sms)).collect();
    let mut elements = Vec::new();
    for p in split.partition(&requests)? {
        let stream = Arc::new(p.context.new_stream(0)?);
        let libs = StreamLibraries::new(&stream)?;
        elements.push(Element { stream, libs, granted_sms: p.granted_sms, _partition: p });
    }
    let graph = ModelGraph::build(&spec.model, &BuildOptions { batch: spec.batch, ..Default::default() })?;
    let slots_n = spec.elements + 1;
    let mut slots = Vec::with_capacity(slots_n);
    for slot in 0..slots_n {
        let inst = ModelInstance::allocate(&device, graph.clone())?;
        let e = &elements[0];
        let env = LaunchEnv { lib, stream: &e.stream, libs: Some(&e.libs), bracket_library_calls: false };
        inst.initialize(&env, 7, 1_000 + slot as u64)?;
        slots.push(inst);
    }
    let stage_done = (0..slots_n)
        .map(|_| elements.iter().map(|e| Event::new(e.stream.context())).collect::<std::result::Result<Vec<_>, _>>())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let stamp_bytes = slots[0].stamp_bytes();
    let slot_launches = slots[0].launches().len();
    let readback = PinnedBuffer::alloc(&device, stamp_bytes * slots_n)?;
    let mut rig =
        Rig { lib, elements, slots, stage_done, graphs: HashMap::new(), readback, stamp_bytes, slot_launches };

    // profiles: warm, then every element alone
    let mut profiles = Vec::new();
    for e in 0..spec.elements {
        rig.replays(e, 10)?;
        let runs = rig.replays(e, spec.replays)?;
        profiles.push(profile(e, rig.elements[e].granted_sms, false, &runs));
    }
    let n = graph.ops.len();
    let op_us: Vec<f64> =
        (0..n).map(|op| median_of(&profiles.iter().map(|p| p.op_us[op]).collect::<Vec<_>>())).collect();

    // the stressor, on its own stream in the stressed element's green context
    let stressed_element = spec.stress.element;
    let stressor = spec.stressor.stressor(spec.intensity, info.sm_count, info.l2_bytes);
    let agg_stream = Arc::new(rig.elements[stressed_element].stream.context().new_stream(0)?);
    let agg_plan = |start_ns: i64, stop_ns: i64| AggressorPlan {
        index: 0,
        name: format!("stressor on element {stressed_element}"),
        load: AggressorLoad::Stressor(stressor.clone()),
        start_ns,
        stop_ns,
        warmup_ns: 0,
    };
    let granted = rig.elements[stressed_element].granted_sms;
    let solo_span_ns = (profiles[stressed_element].span_us * 1e3) as i64;
    // long enough for every stressed replay at up to 30x its solo time
    let stress_for_ns = 200_000_000 + 30 * solo_span_ns * spec.replays as i64;
    let mut aggressor = AggressorRunner::prepare(lib, agg_stream.clone(), agg_plan(0, stress_for_ns), granted)?;
    let start = mono_ns() + 20_000_000;
    let (stressed_runs, agg_out) = std::thread::scope(|s| {
        let a = s.spawn(|| aggressor.run(start));
        let runs = (|| {
            while mono_ns() < start + 50_000_000 {
                std::hint::spin_loop();
            }
            let runs = rig.replays(stressed_element, spec.replays)?;
            if mono_ns() > start + stress_for_ns {
                return Err(Error::invalid(
                    "the stressed profile",
                    "its replays outlasted the stressor: the model ran more than 30x slower beside it",
                ));
            }
            Ok(runs)
        })();
        (runs, a.join().expect("stressor thread"))
    });
    agg_out?;
    let stressed = profile(stressed_element, granted, true, &stressed_runs?);
    let stressed_slowdown = stressed.span_us / profiles[stressed_element].span_us;

    let balanced = Split::balanced(&op_us, &vec![1.0; spec.elements]);
    let slowest = balanced.stage_us(&op_us).into_iter().fold(0.0, f64::max);
    let capacity_rps = spec.batch as f64 / (slowest * 1e-6);
    let rate_rps = spec.rate_rps.unwrap_or(spec.load * capacity_rps);
    let arrivals = match (ArrivalProcess::Poisson { rate: rate_rps / spec.batch as f64 }).schedule(
        spec.duration_s,
        1,
        spec.seed,
        Path::new("."),
        "pipeline arrivals",
    )? {
        Schedule::Open { arrivals_ns } => arrivals_ns,
        Schedule::Closed { .. } => unreachable!("a Poisson process is open"),
    };
    let per_element: Vec<&[f64]> = profiles.iter().map(|p| p.op_us.as_slice()).collect();
    // the unstressed pipeline at the same rate, on the arrivals before the episode: what each
    // element runs at beside busy neighbours, the basis the watching policies compare with
    let before_stress: Vec<u64> = arrivals.iter().copied().filter(|&a| (a as i64) < spec.stress.from_ns()).collect();
    let least = 2 * spec.params.window;
    if before_stress.len() < least {
        return Err(Error::invalid(
            format!("the stress episode {}:{}-{}", spec.stress.element, spec.stress.from_s, spec.stress.to_s),
            format!(
                "{} batches arrive before it; the unstressed pipeline needs at least {least} (twice the window) for the policies' basis: start it later or raise the rate",
                before_stress.len()
            ),
        ));
    }
    let ones = vec![1.0; spec.elements];
    let unstressed =
        Run { plan, rig: &mut rig, op_us: &op_us, per_element: &per_element, stressed_slowdown, basis: &ones }.go(
            Policy::Static,
            rate_rps,
            &before_stress,
            None,
        )?;
    let basis = super::basis_of(&unstressed, spec.elements)?;
    let mut runs = Vec::new();
    // a policy's run that fails ends the measurement but keeps the runs before it
    let mut stopped = None;
    for &policy in &spec.policies {
        let mut one = || -> Result<MeasuredRun> {
            let mut aggressor = AggressorRunner::prepare(
                lib,
                agg_stream.clone(),
                agg_plan(spec.stress.from_ns(), spec.stress.to_ns()),
                granted,
            )?;
            let run =
                Run { plan, rig: &mut rig, op_us: &op_us, per_element: &per_element, stressed_slowdown, basis: &basis };
            run.go(policy, rate_rps, &arrivals, Some(&mut aggressor))
        };
        match one() {
            Ok(run) => runs.push(run),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    let pipeline = MeasuredPipeline {
        model: spec.model.name.clone(),
        batch: spec.batch,
        elements: spec.elements,
        sms_asked: spec.sms,
        device: format!("{} ({})", info.name, info.uuid),
        slots: slots_n,
        stress: spec.stress,
        stressor: spec.stressor,
        intensity: spec.intensity,
        slo_ms: spec.slo_ms,
        duration_s: spec.duration_s,
        params: ParamsRow { window: spec.params.window, threshold: spec.params.threshold },
        seed: spec.seed,
        profiles,
        stressed,
        op_us,
        stressed_slowdown,
        capacity_rps,
        unstressed,
        runs,
    };
    Ok(Measured { pipeline, stopped })
}
