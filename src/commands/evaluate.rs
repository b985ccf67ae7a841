//! `coloc evaluate DATASET`: the predictors' leaderboard on a measured dataset.

use std::process::ExitCode;

use coloc_dataset::Dataset;
use coloc_predictors::evaluate::{Split, leaderboard};
use coloc_predictors::query::examples;

use super::write_json;
use crate::cli::EvaluateArgs;
use crate::table::Table;

pub fn run(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    let ds = Dataset::open(&args.dataset)?;
    let ex = examples(&ds)?;
    println!("{}: {} batches of VALID runs without aggressors", args.dataset.display(), ex.len());
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    let mut all = Vec::new();
    for split in [Split::Random { seed: args.seed }, Split::Prequential] {
        let entries = leaderboard(&ex, split)?;
        let mut t =
            Table::new(&["<predictor", "train", "test", "MAPE", "median", "p95", "p99", "under", "under by", "R²"]);
        for e in &entries {
            let s = &e.scores;
            t.row(vec![
                e.predictor.clone(),
                e.train.to_string(),
                s.n.to_string(),
                pct(s.mape),
                pct(s.median_ape),
                pct(s.p95_ape),
                pct(s.p99_ape),
                pct(s.under_share),
                pct(s.under_mean),
                format!("{:.3}", s.r2),
            ]);
        }
        println!("\nsplit: {}", split.label());
        println!("{}", t.render());
        all.extend(entries);
    }
    println!(
        "errors are |predicted - measured| / measured of each batch's GPU time; under: predictions below the measurement and their mean shortfall (what breaks an SLO)"
    );
    if let Some(path) = &args.json {
        write_json(path, &serde_json::json!({ "examples": ex.len(), "entries": all }))?;
    }
    Ok(ExitCode::SUCCESS)
}
