//! Goodput: the highest scale of a workload's rates at which a policy's plan keeps every
//! tenant's SLO attainment at or above the target (99%), found as gpulet's evaluation finds
//! it, by raising the rate until the SLO breaks, here then narrowed by bisection. A plan is
//! judged by simulating every GPU of it with the simulator's predictor (the "truth", which the
//! policy may or may not share); a scale the policy finds no plan for fails too.

use coloc_dataset::rows::TenantRow;
use coloc_harness::plan::PlanInputs;
use coloc_predictors::predictor::Predictor;
use serde::Serialize;

use crate::error::Result;
use crate::estimate::Judge;
use crate::placement::Placement;
use crate::policy::Policy;
use crate::sim::{Costs, Scheduler, simulate};

/// What a plan is simulated with.
#[derive(Clone, Copy)]
pub struct Simulator<'a> {
    pub inputs: &'a PlanInputs<'a>,
    pub truth: &'a dyn Predictor,
    pub overheads: Costs,
}

/// How a simulated plan fared.
#[derive(Clone, Debug, Serialize)]
pub struct Judged {
    pub placement: Placement,
    /// Every tenant of every GPU, as a measured run's tenant rows.
    pub tenants: Vec<TenantRow>,
    /// The lowest SLO attainment of any tenant.
    pub min_attainment: f64,
}

impl Simulator<'_> {
    /// Simulates every GPU of `placement`, its batches launched as `scheduler` decides.
    pub fn judge(&self, placement: Placement, judge: &Judge, scheduler: &Scheduler) -> Result<Judged> {
        let mut tenants = Vec::new();
        for scenario in placement.scenarios(judge.workload, judge.menu) {
            tenants.extend(simulate(&scenario, 1, self.inputs, self.truth, self.overheads, scheduler)?.tenants);
        }
        let min_attainment = tenants.iter().map(|t| t.slo_attainment).fold(f64::INFINITY, f64::min);
        Ok(Judged { placement, tenants, min_attainment })
    }
}

/// The search's settings.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    /// SLO attainment every tenant must reach.
    pub attainment: f64,
    /// The first scale tried.
    pub start: f64,
    /// Each step up multiplies the scale by this.
    pub factor: f64,
    /// Halvings of the last step.
    pub bisections: usize,
    /// The highest scale tried.
    pub max_scale: f64,
    /// Failures in a row that end the climb.
    pub give_up: usize,
}

impl Default for Search {
    /// 99% within the SLO; from 5% of the workload's rates up by 25% steps to 50 times them, the
    /// last step halved 6 times (to within 0.35%); the climb ends after 8 failures in a row (a
    /// factor of 6 above the last scale that held). Fewer were not enough: first come first
    /// served on `serving/mixed.toml` fails at low load (batches padded after their wait, slowed
    /// beside the others) and holds again from half the rates up, as measured.
    fn default() -> Self {
        Search { attainment: 0.99, start: 0.05, factor: 1.25, bisections: 6, max_scale: 50.0, give_up: 8 }
    }
}

/// A policy's goodput.
#[derive(Clone, Debug, Serialize)]
pub struct Goodput {
    pub policy: String,
    /// The highest scale that held; `None` if even the first failed.
    pub scale: Option<f64>,
    /// Requests per second of every model at that scale.
    pub rate: f64,
    /// The plan at that scale, simulated.
    pub best: Option<Judged>,
    /// Scales tried, in order, with whether each held.
    pub tried: Vec<(f64, bool)>,
}

/// The plan at `scale` and whether it holds.
fn attempt(policy: &Policy, judge: &Judge, sim: &Simulator, scale: f64, target: f64) -> Result<Option<Judged>> {
    let Some(placement) = policy.plan(judge, scale)? else { return Ok(None) };
    let judged = sim.judge(placement, judge, &policy.scheduler())?;
    Ok((judged.min_attainment >= target).then_some(judged))
}

/// The goodput of `policy` on `judge`'s workload: scales tried upwards until [`Search::give_up`]
/// in a row fail (a plan can fail at one scale and hold at the next: a planner's choice jumps
/// as the rate grows), then the step above the highest that held is halved.
pub fn search(policy: &Policy, judge: &Judge, sim: &Simulator, s: &Search) -> Result<Goodput> {
    let mut tried = Vec::new();
    let mut best: Option<(f64, Judged)> = None;
    // the first scale that failed above the highest that held
    let mut above: Option<f64> = None;
    let mut failures = 0;
    let mut scale = s.start;
    while scale <= s.max_scale && failures < s.give_up {
        let held = attempt(policy, judge, sim, scale, s.attainment)?;
        tried.push((scale, held.is_some()));
        match held {
            Some(j) => {
                best = Some((scale, j));
                above = None;
                failures = 0;
            }
            None => {
                above = above.or(Some(scale));
                failures += 1;
            }
        }
        scale *= s.factor;
    }
    if let (Some((lo, _)), Some(hi)) = (&best, above) {
        let (mut lo, mut hi) = (*lo, hi);
        for _ in 0..s.bisections {
            let mid = (lo * hi).sqrt();
            let held = attempt(policy, judge, sim, mid, s.attainment)?;
            tried.push((mid, held.is_some()));
            match held {
                Some(j) => {
                    lo = mid;
                    best = Some((mid, j));
                }
                None => hi = mid,
            }
        }
    }
    let total = judge.workload.total_rate();
    Ok(Goodput {
        policy: policy.name(),
        scale: best.as_ref().map(|b| b.0),
        rate: best.as_ref().map_or(0.0, |b| b.0 * total),
        best: best.map(|b| b.1),
        tried,
    })
}
