//! The GPU side of a measured pipeline: green contexts as elements, one model instance per
//! batch in flight (a slot), stage graphs captured per (slot, element, operators) and kept, the
//! profiles, and the run loop that dispatches, watches and responds.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use coloc_harness::aggressor::{AggressorLoad, AggressorPlan, AggressorRunner};
use coloc_harness::clock::{CALIBRATION_PINGS, calibrate, mono_ns};
use coloc_harness::model::{ModelInstance, stamps_from};
use coloc_kernels::gpu::{Event, GraphExec, KernelLibrary, PinnedBuffer, Stream, StreamLibraries};
use coloc_kernels::ops::LaunchEnv;
use coloc_kernels::partition::{GreenPartition, SmSplit};
use coloc_kernels::stats::median_of;
use coloc_kernels::timing::{Stamp, span_of};
use coloc_workloads::arrival::{ArrivalProcess, Schedule};
use coloc_workloads::graph::{BuildOptions, ModelGraph};

use super::{
    BatchRow, LayoutRow, MeasurePlan, Measured, MeasuredPipeline, MeasuredRun, ParamsRow, Profile, ResponseRow,
    StageTiming,
};
use crate::error::{Error, Result};
use crate::pipeline::{Controller, Layout, Outcome, Policy, Split};

/// A processing element: a green context, its stage stream and the stream's library handles.
struct Element {
    stream: Arc<Stream>,
    libs: StreamLibraries,
    granted_sms: u32,
    _partition: GreenPartition,
}

/// Everything a run needs on the device, kept across the policies' runs.
/// Fields drop in order: the graphs and events made in the elements' contexts go before them.
struct Rig<'a> {
    lib: &'a Arc<KernelLibrary>,
    slots: Vec<ModelInstance>,
    /// Per slot and element: recorded after the slot's stage on that element (created in the
    /// element's context, where it is recorded).
    stage_done: Vec<Vec<Event>>,
    /// Stage graphs by (slot, element, first operator, end), captured once and kept: a batch in
    /// flight may still replay one the layout no longer uses.
    graphs: HashMap<(usize, usize, usize, usize), GraphExec>,
    readback: PinnedBuffer,
    stamp_bytes: usize,
    slot_launches: usize,
    elements: Vec<Element>,
}

impl Rig<'_> {
    fn env(&self, element: usize) -> LaunchEnv<'_> {
        let e = &self.elements[element];
        LaunchEnv { lib: self.lib, stream: &e.stream, libs: Some(&e.libs), bracket_library_calls: false }
    }

    /// Captures the graphs `layout` needs on every slot that are not captured yet; how many.
    fn ensure(&mut self, layout: &Layout) -> Result<usize> {
        let mut captured = 0;
        for slot in 0..self.slots.len() {
            for stage in 0..layout.split.stages() {
                let (e, r) = (layout.element_of[stage], layout.split.range(stage));
                let key = (slot, e, r.start, r.end);
                if !self.graphs.contains_key(&key) {
                    let exec = self.slots[slot].capture_ops(&self.env(e), r)?;
                    self.graphs.insert(key, exec);
                    captured += 1;
                }
            }
        }
        Ok(captured)
    }

    /// Captures one graph `layout` needs that is not captured yet; false when none is missing.
    fn capture_one(&mut self, layout: &Layout) -> Result<bool> {
        for slot in 0..self.slots.len() {
            for stage in 0..layout.split.stages() {
                let (e, r) = (layout.element_of[stage], layout.split.range(stage));
                let key = (slot, e, r.start, r.end);
                if !self.graphs.contains_key(&key) {
                    let exec = self.slots[slot].capture_ops(&self.env(e), r)?;
                    self.graphs.insert(key, exec);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Queues one batch on `slot` through `layout`'s stages; its stamps land in the slot's
    /// read-back region and its last element's event marks it done.
    fn dispatch(&self, slot: usize, layout: &Layout) -> Result<()> {
        let inst = &self.slots[slot];
        let last = layout.split.stages() - 1;
        for stage in 0..=last {
            let (e, r) = (layout.element_of[stage], layout.split.range(stage));
            let stream = &self.elements[e].stream;
            if stage == 0 {
                inst.reset_stamps(stream)?;
            } else if layout.element_of[stage - 1] != e {
                stream.wait_for(&self.stage_done[slot][layout.element_of[stage - 1]])?;
            }
            self.graphs[&(slot, e, r.start, r.end)].launch(stream)?;
            if stage == last {
                inst.queue_stamp_readback(stream, &self.readback, slot * self.stamp_bytes)?;
            }
            self.stage_done[slot][e].record(stream)?;
        }
        Ok(())
    }

    fn done(&self, slot: usize, layout: &Layout) -> Result<bool> {
        let last = *layout.element_of.last().expect("stages");
        Ok(self.stage_done[slot][last].is_complete()?)
    }

    fn stamps(&self, slot: usize) -> Vec<Stamp> {
        stamps_from(&self.readback, slot * self.stamp_bytes, self.slot_launches)
    }

    fn synchronize(&self) -> Result<()> {
        for e in &self.elements {
            e.stream.synchronize()?;
        }
        Ok(())
    }

    /// Whole-model replays of slot 0 on `element`, one at a time: each operator's time (its
    /// first launch's start to the next operator's; the last to its end), per replay.
    fn replays(&mut self, element: usize, replays: usize) -> Result<Vec<Vec<f64>>> {
        let n = self.slots[0].graph.ops.len();
        let whole = Layout { split: Split::from_starts(&[], n).expect("one stage"), element_of: vec![element] };
        self.ensure_one(&whole)?;
        let mut out = Vec::with_capacity(replays);
        for _ in 0..replays {
            self.dispatch(0, &whole)?;
            self.elements[element].stream.synchronize()?;
            let stamps = self.stamps(0);
            let starts: Option<Vec<u64>> =
                (0..n).map(|op| self.slots[0].ops_span(&stamps, op..op + 1).start_ns).collect();
            let end = self.slots[0].ops_span(&stamps, 0..n).end_ns;
            let (Some(starts), Some(end)) = (starts, end) else {
                return Err(Error::invalid(
                    format!("element {element}'s profile"),
                    "a replay left operators unstamped",
                ));
            };
            let times = (0..n).map(|op| (starts.get(op + 1).copied().unwrap_or(end) as f64 - starts[op] as f64) / 1e3);
            out.push(times.collect());
        }
        Ok(out)
    }

    /// Captures `layout`'s graphs on slot 0 only (the profiles replay slot 0).
    fn ensure_one(&mut self, layout: &Layout) -> Result<()> {
        let (e, r) = (layout.element_of[0], layout.split.range(0));
        let key = (0, e, r.start, r.end);
        if !self.graphs.contains_key(&key) {
            let exec = self.slots[0].capture_ops(&self.env(e), r)?;
            self.graphs.insert(key, exec);
        }
        Ok(())
    }
}

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
        basis,
        runs,
    };
    Ok(Measured { pipeline, stopped })
}

/// One policy's run over the rig.
struct Run<'r, 'a> {
    plan: &'r MeasurePlan,
    rig: &'r mut Rig<'a>,
    op_us: &'r [f64],
    per_element: &'r [&'r [f64]],
    stressed_slowdown: f64,
    /// Each element's time over solo in the unstressed pipeline (the policies' basis).
    basis: &'r [f64],
}

/// A response whose layout's graphs are still being captured.
struct Pending {
    at_ns: i64,
    from_layout: usize,
    estimates: Vec<f64>,
    layout: Layout,
    captured: usize,
    capture_ns: i64,
}

impl Pending {
    fn row(self, to_layout: usize, applied_ns: Option<i64>) -> ResponseRow {
        ResponseRow {
            at_ns: self.at_ns,
            from_layout: self.from_layout,
            to_layout,
            estimates: self.estimates,
            graphs_captured: self.captured,
            capture_ms: self.capture_ns as f64 / 1e6,
            applied_ns,
        }
    }
}

/// A batch on the GPU.
struct InFlight {
    batch: usize,
    slot: usize,
    layout: usize,
}

impl Run<'_, '_> {
    fn solo_us(&self, element: usize, ops: Range<usize>) -> f64 {
        self.per_element[element][ops].iter().sum()
    }

    fn go(
        self,
        policy: Policy,
        rate_rps: f64,
        arrivals: &[u64],
        aggressor: Option<&mut AggressorRunner>,
    ) -> Result<MeasuredRun> {
        let spec = self.plan.spec();
        let stress = spec.stress;
        let mut control = Controller::new(policy, spec.params, self.op_us, self.basis);
        let mut layouts: Vec<Layout> = vec![control.layout().clone()];
        self.rig.ensure(&layouts[0])?;
        // warm: every slot through the first layout, twice
        for _ in 0..2 {
            for slot in 0..self.rig.slots.len() {
                self.rig.dispatch(slot, &layouts[0])?;
                self.rig.synchronize()?;
            }
        }
        let before = calibrate(self.rig.lib, &self.rig.elements[0].stream, CALIBRATION_PINGS)?;
        let window_start = mono_ns() + 50_000_000;
        let mut rows: Vec<BatchRow> = arrivals
            .iter()
            .enumerate()
            .map(|(batch, &a)| BatchRow {
                batch,
                arrival_ns: a as i64,
                dispatch_ns: None,
                noticed_ns: None,
                done_ns: None,
                layout: 0,
                stages: Vec::new(),
            })
            .collect();
        let mut gpu_end: Vec<Option<u64>> = vec![None; arrivals.len()];
        let mut responses: Vec<ResponseRow> = Vec::new();
        let mut pending: Option<Pending> = None;
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut free: Vec<usize> = (0..self.rig.slots.len()).rev().collect();
        let mut next = 0;
        // the oracle is told the episode's start and end
        let mut boundaries: VecDeque<(i64, bool)> = if policy == Policy::Oracle {
            VecDeque::from([(stress.from_ns(), true), (stress.to_ns(), false)])
        } else {
            VecDeque::new()
        };
        let deadline = (spec.duration_s * 1e9) as i64 + 10_000_000_000;
        let stressed_slowdown = self.stressed_slowdown;
        let agg = std::thread::scope(|s| -> Result<_> {
            let a = aggressor.map(|a| s.spawn(|| a.run(window_start)));
            let result = (|| -> Result<()> {
                loop {
                    let now = mono_ns() - window_start;
                    while next < arrivals.len() && arrivals[next] as i64 <= now {
                        queue.push_back(next);
                        next += 1;
                    }
                    let mut changed = None;
                    if pending.is_none() && boundaries.front().is_some_and(|(t, _)| *t <= now) {
                        let (_, on) = boundaries.pop_front().expect("front");
                        // what each element runs at: the unstressed pipeline's, times the
                        // stressor's slowdown on its element
                        let truth =
                            |e: usize| self.basis[e] * if on && e == stress.element { stressed_slowdown } else { 1.0 };
                        changed = control.resplit(truth).map(|b| (b, (0..spec.elements).map(truth).collect()));
                    }
                    while changed.is_none() {
                        let Some(f) = inflight.front() else { break };
                        if !self.rig.done(f.slot, &layouts[f.layout])? {
                            break;
                        }
                        let f = inflight.pop_front().expect("front");
                        let layout = &layouts[f.layout];
                        let noticed = mono_ns() - window_start;
                        let stamps = self.rig.stamps(f.slot);
                        let inst = &self.rig.slots[f.slot];
                        let t_s = now as f64 / 1e9;
                        let mut stages = Vec::with_capacity(layout.split.stages());
                        for stage in 0..layout.split.stages() {
                            let (e, r) = (layout.element_of[stage], layout.split.range(stage));
                            let span = inst.ops_span(&stamps, r.clone());
                            let solo_us = self.solo_us(e, r);
                            stages.push(StageTiming {
                                element: e,
                                start_gpu_ns: span.start_ns,
                                end_gpu_ns: span.end_ns,
                                solo_us,
                            });
                            // the policy watches services of its current layout only: a batch
                            // dispatched before a response ran the layout it replaced
                            let current = f.layout == layouts.len() - 1 && pending.is_none();
                            if let (Some(ns), true, None) = (span.duration_ns(), current, &changed) {
                                control.observe(e, ns as f64 / 1e3 / solo_us);
                                // an element that runs no stage is judged by its load as the
                                // system sees it: the stressor is known to the system
                                let idle = |x: usize| if stress.active(x, t_s) { stressed_slowdown } else { 1.0 };
                                changed = control.after_service(e, idle).map(|b| (b, control.estimates().to_vec()));
                            }
                        }
                        gpu_end[f.batch] = stages.last().and_then(|s| s.end_gpu_ns);
                        let row = &mut rows[f.batch];
                        row.noticed_ns = Some(noticed);
                        row.stages = stages;
                        free.push(f.slot);
                    }
                    if let Some((before, estimates)) = changed {
                        debug_assert!(layouts.last() == Some(&before), "a response changes the current layout");
                        pending = Some(Pending {
                            at_ns: now,
                            from_layout: layouts.len() - 1,
                            estimates,
                            layout: control.layout().clone(),
                            captured: 0,
                            capture_ns: 0,
                        });
                    }
                    while !queue.is_empty() && !free.is_empty() {
                        let (batch, slot) = (queue.pop_front().expect("queued"), free.pop().expect("free"));
                        let layout = layouts.len() - 1;
                        // before the launches: the first stage may start before they return
                        rows[batch].dispatch_ns = Some(mono_ns() - window_start);
                        self.rig.dispatch(slot, &layouts[layout])?;
                        rows[batch].layout = layout;
                        inflight.push_back(InFlight { batch, slot, layout });
                    }
                    // a new layout's graphs are captured one at a time while nothing can be
                    // dispatched, so that a capture delays no batch by more than itself
                    if let Some(p) = pending.as_mut().filter(|_| queue.is_empty() || free.is_empty()) {
                        let t0 = mono_ns();
                        if self.rig.capture_one(&p.layout)? {
                            p.captured += 1;
                            p.capture_ns += mono_ns() - t0;
                        } else {
                            let p = pending.take().expect("pending");
                            layouts.push(p.layout.clone());
                            responses.push(p.row(layouts.len() - 1, Some(mono_ns() - window_start)));
                        }
                    }
                    if (next == arrivals.len() && queue.is_empty() && inflight.is_empty()) || now > deadline {
                        if let Some(p) = pending.take() {
                            let to = layouts.len();
                            layouts.push(p.layout.clone());
                            responses.push(p.row(to, None));
                        }
                        return Ok(());
                    }
                    if coloc_harness::control::interrupted() {
                        return Err(coloc_harness::Error::Interrupted.into());
                    }
                    std::hint::spin_loop();
                }
            })();
            let agg = a.map(|a| a.join().expect("stressor thread"));
            result?;
            Ok(agg.transpose()?)
        })?;
        self.rig.synchronize()?;
        let after = calibrate(self.rig.lib, &self.rig.elements[0].stream, CALIBRATION_PINGS)?;
        let clock = before.through(&after);
        for (row, end) in rows.iter_mut().zip(&gpu_end) {
            row.done_ns = end.map(|g| clock.to_host(g) - window_start);
        }
        let latency_ms: Vec<Option<f64>> =
            rows.iter().map(|r| r.done_ns.map(|d| (d - r.arrival_ns) as f64 / 1e6)).collect();
        let last_done_s = rows.iter().filter_map(|r| r.done_ns).max().unwrap_or(1) as f64 / 1e9;
        let outcome = Outcome::of(
            policy,
            spec.batch,
            &latency_ms,
            last_done_s,
            spec.slo_ms,
            responses.len(),
            layouts.last().expect("a layout"),
        );
        let spans: Vec<Stamp> = agg.iter().flat_map(|a| &a.launches).map(|l| span_of(&l.launches)).collect();
        let stressor_first_start_ns =
            spans.iter().filter_map(|s| s.start_ns).min().map(|g| clock.to_host(g) - window_start);
        let stressor_last_end_ns = spans.iter().filter_map(|s| s.end_ns).max().map(|g| clock.to_host(g) - window_start);
        Ok(MeasuredRun {
            policy,
            rate_rps,
            outcome,
            layouts: layouts
                .iter()
                .map(|l| LayoutRow { starts: l.split.starts().to_vec(), elements: l.element_of.clone() })
                .collect(),
            responses,
            batches: rows,
            clock,
            window_start_host_ns: window_start,
            stressor_launches: spans.len(),
            stressor_first_start_ns,
            stressor_last_end_ns,
        })
    }
}
