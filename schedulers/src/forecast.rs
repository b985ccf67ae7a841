//! What a suite will see before anything runs: every tenant of every measured scenario (each
//! repetition) simulated with a predictor, its p50 and p99 latency and SLO attainment, and,
//! once the suite has been measured, the same figures measured beside them.

use std::collections::BTreeMap;
use std::path::Path;

use coloc_dataset::Dataset;
use coloc_dataset::rows::{RunRow, Status, TenantRow};
use coloc_harness::plan::PlanInputs;
use coloc_predictors::predictor::Predictor;
use coloc_predictors::saved::SavedPredictor;
use coloc_workloads::scenario::Scenario;
use serde::Serialize;

use crate::error::Result;
use crate::sim::{Costs, Scheduler, simulate};

/// A tenant's latency figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Figures {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of the measured window's requests completed within the SLO.
    pub slo_attainment: f64,
    /// Median of each batch's GPU time over its solo time at its share.
    pub interference: Option<f64>,
}

impl From<&TenantRow> for Figures {
    fn from(t: &TenantRow) -> Figures {
        Figures { p50_ms: t.p50_ms, p99_ms: t.p99_ms, slo_attainment: t.slo_attainment, interference: t.interference }
    }
}

/// One tenant of one repetition of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TenantForecast {
    pub scenario: String,
    pub rep: u32,
    pub tenant: u16,
    pub name: String,
    pub slo_ms: f64,
    pub predicted: Figures,
    /// From a measured dataset of the same suite, where one is given and holds the run VALID.
    pub measured: Option<Figures>,
    /// Aggressors the simulation left out (no predictor knows of them).
    pub aggressors_ignored: usize,
}

/// Simulates every repetition of each of `scenarios` (measured scenarios of one suite).
pub fn forecast(
    scenarios: &[&Scenario],
    inputs: &PlanInputs,
    predictor: &dyn Predictor,
    overheads: Costs,
) -> Result<Vec<TenantForecast>> {
    // least headroom asks the scenario's own predictor, as the harness does: each file loaded once
    let mut asked: BTreeMap<&Path, SavedPredictor> = BTreeMap::new();
    for file in scenarios.iter().filter_map(|s| s.scheduler_predictor.as_deref()) {
        if !asked.contains_key(file) {
            asked.insert(file, SavedPredictor::load(&inputs.base_dir.join(file))?);
        }
    }
    let mut out = Vec::new();
    for &scenario in scenarios {
        let scheduler = match scenario.scheduler_predictor.as_deref().and_then(|f| asked.get(f)) {
            Some(saved) => Scheduler::LeastHeadroom { predictor: &saved.fitted },
            None => Scheduler::Harness,
        };
        for rep in 1..=scenario.repetitions {
            let run = simulate(scenario, rep, inputs, predictor, overheads, &scheduler)?;
            out.extend(run.tenants.iter().map(|t| TenantForecast {
                scenario: scenario.name.clone(),
                rep: rep as u32,
                tenant: t.tenant,
                name: t.name.clone(),
                slo_ms: t.slo_ms,
                predicted: Figures::from(t),
                measured: None,
                aggressors_ignored: run.aggressors_ignored,
            }));
        }
    }
    Ok(out)
}

/// Fills each forecast's measured figures from `ds` (VALID runs of the same scenario and
/// repetition); returns how many were found.
pub fn attach_measured(forecasts: &mut [TenantForecast], ds: &Dataset) -> Result<usize> {
    let runs: Vec<RunRow> = ds.load()?;
    let tenants: Vec<TenantRow> = ds.load()?;
    let by_run: BTreeMap<(&str, u16), &TenantRow> = tenants.iter().map(|t| ((t.run.as_str(), t.tenant), t)).collect();
    let run_of: BTreeMap<(&str, u32), &RunRow> =
        runs.iter().filter(|r| r.status == Status::Valid).map(|r| ((r.scenario.as_str(), r.rep), r)).collect();
    let mut found = 0;
    for f in forecasts.iter_mut() {
        let measured = run_of
            .get(&(f.scenario.as_str(), f.rep))
            .and_then(|r| by_run.get(&(r.run.as_str(), f.tenant)))
            .map(|t| Figures::from(*t));
        found += usize::from(measured.is_some());
        f.measured = measured;
    }
    Ok(found)
}

/// How close forecasts came to what was measured, over the tenants measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    pub tenants: usize,
    /// Median and 90th percentile of |predicted / measured - 1|.
    pub p50_median_error: f64,
    pub p99_median_error: f64,
    pub p99_p90_error: f64,
    /// Share of tenants whose p99 is predicted within 10%.
    pub p99_within_10pct: f64,
    /// Mean |predicted - measured| SLO attainment, in points of attainment (0 to 1).
    pub slo_mean_abs_diff: f64,
    /// Median of predicted / measured interference (1 is unbiased).
    pub interference_median_ratio: f64,
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The agreement of `forecasts` with their measured figures (none measured: none).
pub fn agreement(forecasts: &[TenantForecast]) -> Option<Agreement> {
    let pairs: Vec<(&Figures, &Figures)> =
        forecasts.iter().filter_map(|f| f.measured.as_ref().map(|m| (&f.predicted, m))).collect();
    if pairs.is_empty() {
        return None;
    }
    let rel = |get: fn(&Figures) -> Option<f64>| -> Vec<f64> {
        pairs.iter().filter_map(|(p, m)| Some((get(p)? / get(m)? - 1.0).abs())).collect()
    };
    let p50 = rel(|f| f.p50_ms);
    let p99 = rel(|f| f.p99_ms);
    let within = p99.iter().filter(|e| **e <= 0.10).count() as f64 / p99.len().max(1) as f64;
    let ratios: Vec<f64> = pairs.iter().filter_map(|(p, m)| Some(p.interference? / m.interference?)).collect();
    Some(Agreement {
        tenants: pairs.len(),
        p50_median_error: quantile(p50, 0.5),
        p99_median_error: quantile(p99.clone(), 0.5),
        p99_p90_error: quantile(p99, 0.9),
        p99_within_10pct: within,
        slo_mean_abs_diff: pairs.iter().map(|(p, m)| (p.slo_attainment - m.slo_attainment).abs()).sum::<f64>()
            / pairs.len() as f64,
        interference_median_ratio: quantile(ratios, 0.5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecast(p99: f64, measured_p99: Option<f64>, slo: (f64, f64)) -> TenantForecast {
        let figures = |p99: f64, slo: f64| Figures {
            p50_ms: Some(p99 / 2.0),
            p99_ms: Some(p99),
            slo_attainment: slo,
            interference: Some(1.1),
        };
        TenantForecast {
            scenario: "s".into(),
            rep: 1,
            tenant: 0,
            name: "t".into(),
            slo_ms: 5.0,
            predicted: figures(p99, slo.0),
            measured: measured_p99.map(|m| figures(m, slo.1)),
            aggressors_ignored: 0,
        }
    }

    #[test]
    fn agreement_is_over_the_measured_tenants_only() {
        assert_eq!(agreement(&[forecast(1.0, None, (1.0, 1.0))]), None);
        let rows = [
            forecast(1.05, Some(1.0), (1.0, 1.0)), // 5% off
            forecast(1.2, Some(1.0), (0.9, 1.0)),  // 20% off, 10 points of attainment
            forecast(0.9, Some(1.0), (1.0, 1.0)),  // 10% off: within
            forecast(9.0, None, (0.0, 0.0)),       // not measured: not counted
        ];
        let a = agreement(&rows).unwrap();
        assert_eq!(a.tenants, 3);
        assert!((a.p99_median_error - 0.10).abs() < 1e-12, "{}", a.p99_median_error);
        assert!((a.p99_p90_error - 0.20).abs() < 1e-12, "{}", a.p99_p90_error);
        assert!((a.p99_within_10pct - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.slo_mean_abs_diff - 0.1 / 3.0).abs() < 1e-12);
        assert_eq!(a.interference_median_ratio, 1.0);
    }
}
