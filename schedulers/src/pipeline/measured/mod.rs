//! ODIN for real: a model's stages captured as CUDA graphs on green contexts of equal SMs (the
//! processing elements), batches flowing through them with events between stages, a stressor
//! switched on in one element's green context for an interval, and the same policies as the
//! simulator ([`Controller`](super::Controller)) watching the stages' stamped times and moving
//! layers (or stages) by capturing new stage graphs while the pipeline runs.
//!
//! This module holds what a measurement is asked ([`MeasureSpec`], checked into a
//! [`MeasurePlan`]), what it yields ([`MeasuredPipeline`]) and how that is judged against
//! physical limits and an independent timer ([`judge`]); the GPU side is `gpu.rs` (the
//! sequence), `rig.rs` (elements, slots, stage graphs) and `policy_run.rs` (one policy's loop).

mod gpu;
mod judge;
mod policy_run;
mod rig;

use std::str::FromStr;

use coloc_dataset::clock::ClockMap;
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::StressorName;
use serde::Serialize;

use super::{Outcome, Params, Policy};
use crate::error::{Error, Result};

pub use gpu::measure;
pub use judge::{Verdict, judge};

/// The stressor on one element from `from_s` to `to_s` of the measured window, written
/// `ELEMENT:FROM-TO` (seconds), e.g. `1:2-4`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StressEpisode {
    pub element: usize,
    pub from_s: f64,
    pub to_s: f64,
}

impl FromStr for StressEpisode {
    type Err = Error;

    fn from_str(s: &str) -> Result<StressEpisode> {
        let bad = |why: &str| {
            Error::invalid(format!("stress episode `{s}`"), format!("{why}; write ELEMENT:FROM-TO, e.g. 1:2-4"))
        };
        let (element, span) = s.split_once(':').ok_or_else(|| bad("two fields separated by `:`"))?;
        let element = element.trim().parse().map_err(|_| bad("the element is not a number"))?;
        let (from_s, to_s) = super::interval(span, &bad)?;
        Ok(StressEpisode { element, from_s, to_s })
    }
}

impl StressEpisode {
    /// Its start and end, ns from the window's start.
    pub fn from_ns(&self) -> i64 {
        (self.from_s * 1e9) as i64
    }

    pub fn to_ns(&self) -> i64 {
        (self.to_s * 1e9) as i64
    }

    /// Whether the stressor is on at `t_s` of the window.
    pub fn active(&self, element: usize, t_s: f64) -> bool {
        element == self.element && self.from_s <= t_s && t_s < self.to_s
    }
}

/// What a measured pipeline is asked; [`MeasureSpec::check`] turns it into a [`MeasurePlan`],
/// the only way in to [`measure`].
#[derive(Clone, Debug)]
pub struct MeasureSpec {
    pub model: ModelSpec,
    pub batch: usize,
    /// Processing elements (green contexts), one stage each to start with.
    pub elements: usize,
    /// SMs asked for each element (rounded up by the driver to whole groups).
    pub sms: u32,
    /// Requests per second; None: `load` x the balanced pipeline's measured capacity.
    pub rate_rps: Option<f64>,
    pub load: f64,
    pub duration_s: f64,
    pub slo_ms: f64,
    pub stress: StressEpisode,
    pub stressor: StressorName,
    /// Of a full-device stressor grid.
    pub intensity: f64,
    pub params: Params,
    /// Of the arrivals (every policy sees the same arrivals).
    pub seed: u64,
    pub policies: Vec<Policy>,
    /// Solo replays per element for the operator profile (and stressed replays).
    pub replays: usize,
}

/// A [`MeasureSpec`] whose inputs were checked.
#[derive(Clone, Debug)]
pub struct MeasurePlan(MeasureSpec);

impl MeasurePlan {
    pub fn spec(&self) -> &MeasureSpec {
        &self.0
    }
}

/// The longest measured window, s: the batch rows of every policy are kept in memory.
const MAX_DURATION_S: f64 = 60.0;

impl MeasureSpec {
    /// Checks every input, naming what is wrong.
    pub fn check(self) -> Result<MeasurePlan> {
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if self.batch == 0 {
            return Err(Error::invalid("batch", "0: give 1 or more"));
        }
        if self.elements < 2 {
            return Err(Error::invalid("elements", format!("{}: a pipeline needs 2 or more", self.elements)));
        }
        if self.sms == 0 {
            return Err(Error::invalid("sms", "0: give the SMs of each element"));
        }
        if self.stress.element >= self.elements {
            return Err(Error::invalid(
                "stress episode",
                format!("element {} of {} elements (they count from 0)", self.stress.element, self.elements),
            ));
        }
        if !(positive(self.duration_s) && self.duration_s <= MAX_DURATION_S) {
            return Err(Error::invalid(
                "duration_s",
                format!("{}: give more than 0, at most {MAX_DURATION_S}", self.duration_s),
            ));
        }
        if self.stress.to_s > self.duration_s {
            return Err(Error::invalid(
                "stress episode",
                format!("ends at {} s, after the window of {} s", self.stress.to_s, self.duration_s),
            ));
        }
        if !positive(self.slo_ms) {
            return Err(Error::invalid("slo_ms", format!("{}: give a positive number", self.slo_ms)));
        }
        if let Some(r) = self.rate_rps.filter(|r| !positive(*r)) {
            return Err(Error::invalid("rate", format!("{r}: give a positive rate")));
        }
        if !positive(self.load) {
            return Err(Error::invalid("load", format!("{}: give a positive fraction of capacity", self.load)));
        }
        if !(self.intensity > 0.0 && self.intensity <= 1.0) {
            return Err(Error::invalid("intensity", format!("{}: give more than 0, at most 1", self.intensity)));
        }
        if self.policies.is_empty() {
            return Err(Error::invalid("policies", "none given"));
        }
        if self.replays < 5 {
            return Err(Error::invalid("replays", format!("{}: give 5 or more", self.replays)));
        }
        self.params.check(self.duration_s)?;
        Ok(MeasurePlan(self))
    }
}

/// One element's operator profile: each operator's time in whole-model replays (its first
/// launch's start to the next operator's, so that a range sums to its span), median over the
/// replays.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub element: usize,
    pub granted_sms: u32,
    pub stressed: bool,
    pub replays: usize,
    pub op_us: Vec<f64>,
    /// Median whole-model span over the replays.
    pub span_us: f64,
}

/// One stage of one batch, GPU clock (ns): its first launch in to its last launch out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StageTiming {
    pub element: usize,
    pub start_gpu_ns: Option<u64>,
    pub end_gpu_ns: Option<u64>,
    /// The stage's solo time on its element (the profile), us.
    pub solo_us: f64,
}

/// One batch: host times in ns from the start of the measured window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchRow {
    pub batch: usize,
    pub arrival_ns: i64,
    /// Its stages queued on the elements' streams (None: never, the run ended first).
    pub dispatch_ns: Option<i64>,
    /// The host noticed its last stage's completion event.
    pub noticed_ns: Option<i64>,
    /// Its last stage's end on the GPU clock, mapped to the host's.
    pub done_ns: Option<i64>,
    /// The layout it ran with (index into the run's layouts).
    pub layout: usize,
    pub stages: Vec<StageTiming>,
}

/// A layout: each stage's first operator (after the first stage) and element.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayoutRow {
    pub starts: Vec<usize>,
    pub elements: Vec<usize>,
}

/// A policy's change of layout while the pipeline ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResponseRow {
    /// When the policy decided, ns from the window's start.
    pub at_ns: i64,
    pub from_layout: usize,
    pub to_layout: usize,
    /// The elements' estimated slowdowns it acted on (the oracle: the true ones).
    pub estimates: Vec<f64>,
    /// Stage graphs captured for it (those not captured before), one at a time while nothing
    /// could be dispatched, and the host time they took together.
    pub graphs_captured: usize,
    pub capture_ms: f64,
    /// When its layout took effect (its graphs all captured; the batches dispatched until then
    /// ran the layout before), ns from the window's start; `None`: the run ended first.
    pub applied_ns: Option<i64>,
}

/// One policy's measured run.
#[derive(Clone, Debug, Serialize)]
pub struct MeasuredRun {
    pub policy: Policy,
    pub rate_rps: f64,
    pub outcome: Outcome,
    pub layouts: Vec<LayoutRow>,
    pub responses: Vec<ResponseRow>,
    /// Written apart, as CSV ([`batches_csv`]).
    #[serde(skip)]
    pub batches: Vec<BatchRow>,
    /// Maps GPU stamps to host times; the window starts at `window_start_host_ns` on the
    /// host's clock (CLOCK_MONOTONIC).
    pub clock: ClockMap,
    pub window_start_host_ns: i64,
    /// The stressor's launches and their stamped span mapped to the host clock, ns from the
    /// window's start.
    pub stressor_launches: usize,
    pub stressor_first_start_ns: Option<i64>,
    pub stressor_last_end_ns: Option<i64>,
}

/// A whole measurement: profiles, then one run per policy on the same arrivals.
#[derive(Clone, Debug, Serialize)]
pub struct MeasuredPipeline {
    pub model: String,
    pub batch: usize,
    pub elements: usize,
    pub sms_asked: u32,
    pub device: String,
    pub slots: usize,
    pub stress: StressEpisode,
    pub stressor: StressorName,
    pub intensity: f64,
    pub slo_ms: f64,
    pub duration_s: f64,
    pub params: ParamsRow,
    pub seed: u64,
    /// Each element's solo profile, then the stressed element's profile under the stressor.
    pub profiles: Vec<Profile>,
    pub stressed: Profile,
    /// The operator times the policies decide on: per operator the median of the elements'.
    pub op_us: Vec<f64>,
    /// The stressed element's whole-model span under the stressor over its solo span.
    pub stressed_slowdown: f64,
    pub capacity_rps: f64,
    /// The balanced pipeline at the same rate without the stressor, on the arrivals before its
    /// episode, whose [`basis_of`] the watching policies compare with; its batches are written
    /// apart (`unstressed.csv`).
    pub unstressed: MeasuredRun,
    pub runs: Vec<MeasuredRun>,
}

impl MeasuredPipeline {
    /// Per element: what the watching policies expected of it without interference.
    pub fn basis(&self) -> Result<Vec<f64>> {
        basis_of(&self.unstressed, self.elements)
    }
}

/// Per element: the median of its stages' times over their solo times in `run`. Elements of
/// equal SMs still slow each other a little when all are busy (1.04-1.25x on an H100,
/// docs/schedulers.md); a policy that compared with solo times would take that for
/// interference.
pub fn basis_of(run: &MeasuredRun, elements: usize) -> Result<Vec<f64>> {
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); elements];
    for stage in run.batches.iter().flat_map(|b| &b.stages) {
        if let (Some(start), Some(end), Some(r)) = (stage.start_gpu_ns, stage.end_gpu_ns, ratios.get_mut(stage.element))
            && end >= start
        {
            r.push((end - start) as f64 / 1e3 / stage.solo_us);
        }
    }
    ratios
        .iter()
        .enumerate()
        .map(|(e, r)| {
            if r.is_empty() {
                return Err(Error::invalid(
                    "the unstressed pipeline",
                    format!("element {e} ran no stamped stage, so the policies have no basis for it"),
                ));
            }
            Ok(coloc_kernels::stats::median_of(r))
        })
        .collect()
}

/// A measurement and, if a policy's run failed, why it stopped there (the runs before it kept).
#[derive(Debug)]
pub struct Measured {
    pub pipeline: MeasuredPipeline,
    pub stopped: Option<Error>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct ParamsRow {
    pub window: usize,
    pub threshold: f64,
}

/// The batches of the runs as one CSV table (a row per run, batch and stage), for a reader
/// with polars.
pub fn batches_csv(runs: &[MeasuredRun]) -> String {
    let mut out = String::from(
        "policy,batch,arrival_ns,dispatch_ns,noticed_ns,done_ns,layout,stage,element,start_gpu_ns,end_gpu_ns,solo_us\n",
    );
    let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let optu = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for (run, b) in runs.iter().flat_map(|r| r.batches.iter().map(move |b| (r, b))) {
        for (j, s) in b.stages.iter().enumerate() {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{:.3}\n",
                run.policy.name(),
                b.batch,
                b.arrival_ns,
                opt(b.dispatch_ns),
                opt(b.noticed_ns),
                opt(b.done_ns),
                b.layout,
                j,
                s.element,
                optu(s.start_gpu_ns),
                optu(s.end_gpu_ns),
                s.solo_us
            ));
        }
    }
    out
}
