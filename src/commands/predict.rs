//! `coloc predict`: a suite's latency forecast before it runs, and beside its measurement.

use std::process::ExitCode;

use anyhow::Context;
use coloc_dataset::Dataset;
use coloc_harness::plan::PlanInputs;
use coloc_harness::solo::SoloProfiles;
use coloc_predictors::saved::SavedPredictor;
use coloc_schedulers::forecast::{Agreement, Figures, TenantForecast, agreement, attach_measured, forecast};
use coloc_schedulers::sim::Costs;
use coloc_workloads::order::selects;
use coloc_workloads::scenario::Scenario;
use coloc_workloads::suite::Suite;

use crate::cli::PredictArgs;
use crate::table::Table;

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn cells(f: Option<&Figures>) -> [String; 3] {
    match f {
        Some(f) => [ms(f.p50_ms), ms(f.p99_ms), pct(f.slo_attainment)],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

/// A CSV field: quoted, quotes doubled, where it holds a comma, a quote or a line break
/// (scenario names do: `b1,b16`).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// One row per tenant forecast, as CSV.
fn forecast_csv(rows: &[TenantForecast]) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from(
        "scenario,rep,tenant,name,slo_ms,predicted_p50_ms,predicted_p99_ms,predicted_slo_attainment,predicted_interference,measured_p50_ms,measured_p99_ms,measured_slo_attainment,measured_interference,aggressors_ignored\n",
    );
    for r in rows {
        let m = r.measured.as_ref();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            field(&r.scenario),
            r.rep,
            r.tenant,
            field(&r.name),
            r.slo_ms,
            opt(r.predicted.p50_ms),
            opt(r.predicted.p99_ms),
            r.predicted.slo_attainment,
            opt(r.predicted.interference),
            opt(m.and_then(|m| m.p50_ms)),
            opt(m.and_then(|m| m.p99_ms)),
            m.map_or(String::new(), |m| format!("{}", m.slo_attainment)),
            opt(m.and_then(|m| m.interference)),
            r.aggressors_ignored,
        ));
    }
    out
}

#[derive(serde::Serialize)]
struct ForecastFile<'a> {
    suite: String,
    predictor: String,
    profiles: String,
    against: Option<String>,
    agreement: Option<&'a Agreement>,
    tenants: &'a [TenantForecast],
}

pub fn run(args: &PredictArgs) -> anyhow::Result<ExitCode> {
    let Some(profiles_dir) = args.profiles.as_ref().or(args.against.as_ref()) else {
        anyhow::bail!("--profiles DATASET (or --against DATASET): the forecast needs measured solo profiles");
    };
    let profiles = Dataset::open(profiles_dir)?;
    let manifest = profiles.manifest()?;
    let mut solo = SoloProfiles::load(profiles_dir)?;
    super::take_switch_factors(&mut solo, &args.switch_from)?;
    let suite = Suite::load(&args.suite, &manifest.limits)?;
    let saved = SavedPredictor::load(&args.predictor)?;
    let overheads = Costs::of(&manifest.harness_overhead);
    // refused up front, naming the tenant, rather than forecast as if it met no interference
    let scenarios: Vec<&Scenario> = suite.measured().filter(|s| selects(&args.only, s)).collect();
    for scenario in &scenarios {
        for t in &scenario.tenants {
            for bucket in t.batching.buckets() {
                saved.fitted.covers(&t.model, bucket as u32, t.share.solo(scenario.partition)).with_context(|| {
                    format!(
                        "{} cannot forecast scenario `{}`, tenant `{}`",
                        args.predictor.display(),
                        scenario.name,
                        t.name
                    )
                })?;
            }
        }
    }
    let inputs = PlanInputs { limits: &manifest.limits, solo: &solo, base_dir: &suite.base_dir };
    let mut rows = forecast(&scenarios, &inputs, &saved.fitted, overheads).with_context(|| {
        format!("forecasting {} from the profiles of {}", args.suite.display(), profiles_dir.display())
    })?;
    if let Some(dir) = &args.against {
        let found = attach_measured(&mut rows, &Dataset::open(dir)?)?;
        println!("{found} of {} tenant forecasts have a VALID measurement in {}", rows.len(), dir.display());
    }
    let agree = agreement(&rows);
    println!(
        "{}: {} tenants of {} scenarios, predicted with {} (fitted on {} batches of {}), solo profiles from {}",
        args.suite.display(),
        rows.len(),
        scenarios.len(),
        saved.name,
        saved.examples,
        saved.dataset.display(),
        profiles_dir.display()
    );
    let mut t = Table::new(&[
        "<scenario",
        "rep",
        "<tenant",
        "SLO ms",
        "p50 ms",
        "p99 ms",
        "SLO met",
        "measured p50",
        "p99",
        "SLO met",
    ]);
    for r in &rows {
        let [p50, p99, slo] = cells(Some(&r.predicted));
        let [m50, m99, mslo] = cells(r.measured.as_ref());
        t.row(vec![
            r.scenario.clone(),
            r.rep.to_string(),
            r.name.clone(),
            format!("{:.2}", r.slo_ms),
            p50,
            p99,
            slo,
            m50,
            m99,
            mslo,
        ]);
    }
    println!("{}", t.render());
    let ignored = rows.iter().filter(|r| r.aggressors_ignored > 0).count();
    if ignored > 0 {
        println!("{ignored} tenant forecasts leave out the aggressors of their scenario (no predictor knows of them)");
    }
    if let Some(a) = &agree {
        println!(
            "against the measurement ({} tenants): p50 median error {}, p99 median error {} (90th percentile {}), p99 within 10% for {}, SLO attainment off by {:.1} points on average, interference predicted/measured median {:.3}",
            a.tenants,
            pct(a.p50_median_error),
            pct(a.p99_median_error),
            pct(a.p99_p90_error),
            pct(a.p99_within_10pct),
            100.0 * a.slo_mean_abs_diff,
            a.interference_median_ratio
        );
    }
    if let Some(dir) = &args.out {
        let file = ForecastFile {
            suite: args.suite.display().to_string(),
            predictor: args.predictor.display().to_string(),
            profiles: profiles_dir.display().to_string(),
            against: args.against.as_ref().map(|d| d.display().to_string()),
            agreement: agree.as_ref(),
            tenants: &rows,
        };
        let outputs =
            [("forecast.json", serde_json::to_vec_pretty(&file)?), ("forecast.csv", forecast_csv(&rows).into_bytes())];
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, bytes) in outputs {
            let path = dir.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        println!("wrote forecast.json and forecast.csv to {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use coloc_schedulers::forecast::{Figures, TenantForecast};

    use super::*;

    #[test]
    fn a_scenario_name_with_a_comma_stays_one_csv_field() {
        let f = Figures { p50_ms: Some(1.0), p99_ms: Some(2.0), slo_attainment: 1.0, interference: None };
        let row = TenantForecast {
            scenario: "batches/a+b/b1,b16/green-56_56/load0.4".into(),
            rep: 1,
            tenant: 0,
            name: "say \"a\"".into(),
            slo_ms: 5.0,
            predicted: f,
            measured: None,
            aggressors_ignored: 0,
        };
        let csv = forecast_csv(&[row]);
        let line = csv.lines().nth(1).unwrap();
        assert!(line.starts_with("\"batches/a+b/b1,b16/green-56_56/load0.4\",1,0,\"say \"\"a\"\"\",5,"), "{line}");
        assert_eq!(csv.lines().next().unwrap().split(',').count(), 14);
    }
}
