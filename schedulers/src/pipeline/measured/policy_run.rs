//! One policy's run over the rig: arrivals dispatched through the current layout, completions
//! watched, the policy's responses captured and applied, latency mapped to the host clock.

use std::collections::VecDeque;
use std::ops::Range;

use coloc_harness::aggressor::AggressorRunner;
use coloc_harness::clock::{CALIBRATION_PINGS, calibrate, mono_ns};
use coloc_kernels::timing::{Stamp, span_of};

use super::rig::Rig;
use super::{BatchRow, LayoutRow, MeasurePlan, MeasuredRun, ResponseRow, StageTiming};
use crate::error::Result;
use crate::pipeline::{Controller, Layout, Outcome, Policy};

/// One policy's run over the rig.
pub(super) struct Run<'r, 'a> {
    pub(super) plan: &'r MeasurePlan,
    pub(super) rig: &'r mut Rig<'a>,
    pub(super) op_us: &'r [f64],
    pub(super) per_element: &'r [&'r [f64]],
    pub(super) stressed_slowdown: f64,
    /// Each element's time over solo in the unstressed pipeline (the policies' basis).
    pub(super) basis: &'r [f64],
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
    pub(super) fn solo_us(&self, element: usize, ops: Range<usize>) -> f64 {
        self.per_element[element][ops].iter().sum()
    }

    pub(super) fn go(
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
                                // system sees it (the stressor is known to the system), beside
                                // busy neighbours as a stage there would run
                                let idle = |x: usize| {
                                    self.basis[x] * if stress.active(x, t_s) { stressed_slowdown } else { 1.0 }
                                };
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
