//! Policies side by side: each one's goodput in the simulator, as a multiple of time-sharing's,
//! and the regret of predictor-driven plans (the goodput lost against the same search made
//! with the simulator's own predictor, the oracle); then, for plans measured for real, the
//! goodput the GPU allowed.

use std::collections::BTreeMap;

use coloc_dataset::Dataset;
use coloc_dataset::rows::{RunRow, Status, TenantRow};
use serde::Serialize;

use crate::error::Result;
use crate::estimate::Judge;
use crate::goodput::{Goodput, Search, Simulator, search};
use crate::placement::{Placement, tenants_key};
use crate::policy::Policy;

/// One policy's line of the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Standing {
    pub goodput: Goodput,
    /// Goodput over time-sharing's (none where time-sharing is absent or reached nothing).
    pub vs_time_sharing: Option<f64>,
    /// 1 - goodput / the oracle's, for the predictor-driven policies.
    pub regret: Option<f64>,
}

/// The name of the policy every other is compared with.
pub const BASELINE: &str = "time-sharing";

/// The goodput of every policy; `oracle` names the policy whose plans the regret of the
/// predictor-driven ones (`greedy+…`) is measured against.
pub fn compare(
    policies: &[Policy],
    judge: &Judge,
    sim: &Simulator,
    settings: &Search,
    oracle: Option<&str>,
) -> Result<Vec<Standing>> {
    let goodputs: Vec<Goodput> = policies.iter().map(|p| search(p, judge, sim, settings)).collect::<Result<_>>()?;
    let rate_of = |name: &str| goodputs.iter().find(|g| g.policy == name).map(|g| g.rate).filter(|r| *r > 0.0);
    let baseline = rate_of(BASELINE);
    let oracle_rate = oracle.and_then(rate_of);
    Ok(goodputs
        .iter()
        .map(|g| Standing {
            vs_time_sharing: baseline.map(|b| g.rate / b),
            regret: if g.policy.starts_with("greedy+") { oracle_rate.map(|o| 1.0 - g.rate / o) } else { None },
            goodput: g.clone(),
        })
        .collect())
}

/// The plans to measure: each policy's plan at each of `factors` times its goodput scale
/// (factors a policy finds no plan for are left out, and policies whose runtime scheduler the
/// harness does not run).
pub fn plans_to_measure(
    standings: &[Standing],
    policies: &[Policy],
    judge: &Judge,
    factors: &[f64],
) -> Result<Vec<Placement>> {
    let mut out = Vec::new();
    for (s, p) in standings.iter().zip(policies) {
        let Some(scale) = s.goodput.scale else { continue };
        for f in factors {
            if let Some(placement) = p.plan(judge, scale * f)? {
                out.push(placement);
            }
        }
    }
    Ok(out)
}

/// A plan measured for real.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeasuredPlan {
    pub policy: String,
    pub scale: f64,
    /// Requests per second of every tenant together.
    pub rate: f64,
    /// Runs of the plan's GPUs measured VALID, of those planned.
    pub valid_runs: usize,
    pub runs: usize,
    /// The lowest SLO attainment of any tenant (over VALID runs).
    pub min_attainment: f64,
    /// Every GPU VALID and every tenant at or above the target.
    pub holds: bool,
    /// Its tenants ([`crate::placement::tenants_key`]): a policy's plan at one rate changes when the simulator or
    /// the profiles it plans with do, and a measurement is of the plan it measured.
    pub tenants: String,
}

/// Reads back a dataset measured from plans' suite (scenarios named `policy/xSCALE/gpuG`):
/// per plan, whether it held at `attainment` in every repetition of every GPU. Its rate is that
/// of its GPUs together in one repetition.
pub fn measured_plans(ds: &Dataset, attainment: f64) -> Result<Vec<MeasuredPlan>> {
    let runs: Vec<RunRow> = ds.load()?;
    let tenants: Vec<TenantRow> = ds.load()?;
    let mut by_plan: BTreeMap<(String, String), MeasuredPlan> = BTreeMap::new();
    // the rate of each plan's GPUs in each repetition
    let mut rates: BTreeMap<(String, String), BTreeMap<u32, f64>> = BTreeMap::new();
    let mut members: BTreeMap<(String, String), Vec<&TenantRow>> = BTreeMap::new();
    for r in &runs {
        let mut parts = r.scenario.rsplitn(3, '/');
        let (Some(gpu), Some(scale), Some(policy)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Some(value) = scale.strip_prefix('x').and_then(|v| v.parse::<f64>().ok()) else { continue };
        if !gpu.starts_with("gpu") {
            continue;
        }
        let entry = by_plan.entry((policy.to_string(), scale.to_string())).or_insert(MeasuredPlan {
            policy: policy.to_string(),
            scale: value,
            rate: 0.0,
            valid_runs: 0,
            runs: 0,
            min_attainment: f64::INFINITY,
            holds: true,
            tenants: String::new(),
        });
        let plan_tenants = members.entry((policy.to_string(), scale.to_string())).or_default();
        plan_tenants.extend(tenants.iter().filter(|t| t.run == r.run));
        entry.runs += 1;
        if r.status != Status::Valid {
            entry.holds = false;
            continue;
        }
        entry.valid_runs += 1;
        let rate = rates.entry((policy.to_string(), scale.to_string())).or_default().entry(r.rep).or_default();
        for t in tenants.iter().filter(|t| t.run == r.run) {
            *rate += t.rate_rps.unwrap_or(0.0);
            entry.min_attainment = entry.min_attainment.min(t.slo_attainment);
        }
    }
    Ok(by_plan
        .into_iter()
        .map(|(key, mut p)| {
            p.holds &= p.min_attainment >= attainment;
            // planned rates are the same in every repetition
            p.rate = rates.get(&key).and_then(|r| r.values().copied().reduce(f64::max)).unwrap_or(0.0);
            let rows = members.get(&key).map(Vec::as_slice).unwrap_or_default();
            p.tenants = tenants_key(rows.iter().map(|t| (t.name.as_str(), t.share, t.max_batch as usize)));
            p
        })
        .collect())
}

/// What the GPU allowed a policy: the highest measured rate that held, and the lowest measured
/// rate above it that did not (the goodput lies between them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MeasuredGoodput {
    pub held: Option<f64>,
    pub failed_above: Option<f64>,
}

/// Per policy, the measured goodput's bracket. A rate measured more than once (in several
/// datasets, on several GPUs; rates within 0.1% are one) held only if it held every time.
pub fn measured_goodput(plans: &[MeasuredPlan]) -> BTreeMap<String, MeasuredGoodput> {
    let mut merged: Vec<MeasuredPlan> = Vec::new();
    for p in plans {
        match merged.iter_mut().find(|m| m.policy == p.policy && (m.rate - p.rate).abs() <= 1e-3 * m.rate) {
            Some(m) => m.holds &= p.holds,
            None => merged.push(p.clone()),
        }
    }
    let plans = &merged;
    let mut out: BTreeMap<String, MeasuredGoodput> = BTreeMap::new();
    for p in plans.iter().filter(|p| p.holds) {
        let e = out.entry(p.policy.clone()).or_default();
        e.held = Some(e.held.map_or(p.rate, |r| r.max(p.rate)));
    }
    for p in plans.iter().filter(|p| !p.holds) {
        let e = out.entry(p.policy.clone()).or_default();
        if e.held.is_none_or(|h| p.rate > h) {
            e.failed_above = Some(e.failed_above.map_or(p.rate, |r| r.min(p.rate)));
        }
    }
    out
}

/// Measured plans as measurements of every policy's own plans ([`pooled`]).
#[derive(Clone, Debug, Default)]
pub struct Pooled {
    pub plans: Vec<MeasuredPlan>,
    /// Policies with a measured plan they would not make now at its rate (planned with an
    /// earlier simulator or other profiles).
    pub stale: Vec<String>,
}

/// A plan measured under one policy's name counts for another wherever that one makes exactly
/// the same plan at that rate (the same GPUs, partitions, tenants, shares, batches, waits and
/// runtime scheduler; identical plans run identically, whoever made them). A plan its policy
/// would not make now, or of a policy not in `policies`, counts only under its own name.
pub fn pooled(plans: &[MeasuredPlan], policies: &[Policy], judge: &Judge) -> Result<Pooled> {
    let mut out = Pooled { plans: plans.to_vec(), stale: Vec::new() };
    for m in plans {
        let Some(maker) = policies.iter().find(|p| p.name() == m.policy) else { continue };
        let made = maker.plan(judge, m.scale)?.filter(|made| made.tenants_key() == m.tenants);
        let Some(made) = made else {
            if !out.stale.contains(&m.policy) {
                out.stale.push(m.policy.clone());
            }
            continue;
        };
        for other in policies.iter().filter(|p| p.name() != m.policy) {
            if other.plan(judge, m.scale)?.is_some_and(|p| p.gpus == made.gpus) {
                out.plans.push(MeasuredPlan { policy: other.name(), ..m.clone() });
            }
        }
    }
    Ok(out)
}

/// A predictor's regret measured for real.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeasuredRegret {
    pub regret: f64,
    /// Its plans failed at every rate measured: the regret is at least this (its goodput lies
    /// below the lowest rate that failed).
    pub at_least: bool,
}

impl std::fmt::Display for MeasuredRegret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{:.1}%", if self.at_least { ">=" } else { "" }, 100.0 * self.regret)
    }
}

/// 1 - measured goodput / the oracle's, for the predictor-driven policies, where the oracle
/// held at some measured rate: the regret of each predictor measured for real, each goodput the
/// highest rate that held (the lower edge of its bracket); where a predictor's plans held at no
/// rate measured, a lower bound from the lowest that failed.
pub fn measured_regret(measured: &BTreeMap<String, MeasuredGoodput>, oracle: &str) -> BTreeMap<String, MeasuredRegret> {
    let Some(best) = measured.get(oracle).and_then(|m| m.held) else { return BTreeMap::new() };
    measured
        .iter()
        .filter(|(name, _)| name.starts_with("greedy+"))
        .filter_map(|(name, m)| {
            let regret = match (m.held, m.failed_above) {
                (Some(h), _) => MeasuredRegret { regret: 1.0 - h / best, at_least: false },
                (None, Some(f)) => MeasuredRegret { regret: 1.0 - f / best, at_least: true },
                (None, None) => return None,
            };
            Some((name.clone(), regret))
        })
        .collect()
}
