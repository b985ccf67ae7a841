//! `coloc evaluate DATASET`: the predictors' leaderboard on a measured dataset, split by split.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use coloc_dataset::Dataset;
use coloc_predictors::counters::Utilisations;
use coloc_predictors::evaluate::{Entry, Evaluation, Roster, evaluate};
use coloc_predictors::perkernel::KernelProfiles;
use coloc_predictors::query::{Example, Examples, examples};
use coloc_predictors::saved::{SavedPredictor, fit as fit_kind};
use coloc_predictors::split::Split;
use coloc_workloads::scenario::PartitionKind;

use super::write_json;
use crate::cli::{EvaluateArgs, FitArgs, SplitArg};
use crate::table::Table;

fn split_of(arg: SplitArg, seed: u64) -> Split {
    match arg {
        SplitArg::Random => Split::Random { seed },
        SplitArg::LeaveOneModelOut => Split::LeaveOneModelOut,
        SplitArg::LeaveOneMixOut => Split::LeaveOneMixOut,
        SplitArg::PairsToTriples => Split::PairsToTriples,
        SplitArg::GreenToMps => Split::Mechanism { train: PartitionKind::Green, test: PartitionKind::Mps },
        SplitArg::MpsToGreen => Split::Mechanism { train: PartitionKind::Mps, test: PartitionKind::Green },
        SplitArg::LowToHighLoad => Split::LowToHighLoad,
        SplitArg::Prequential => Split::Prequential,
        SplitArg::Aggressors => Split::Aggressors,
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn times(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("x{v:.2}"))
}

/// The leaderboard as CSV, one row per (split, predictor).
fn leaderboard_csv(entries: &[Entry]) -> String {
    let mut out = String::from(
        "split,predictor,folds,train,test,mape,median_ape,p95_ape,p99_ape,under_share,under_mean,r2,mape_over_floor,p95_over_floor\n",
    );
    for e in entries {
        let s = &e.scores;
        let floor = |f: fn(&coloc_predictors::evaluate::OverFloor) -> f64| {
            e.over_floor.as_ref().map_or(String::new(), |o| format!("{}", f(o)))
        };
        out.push_str(&format!(
            "{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{}\n",
            e.split.key(),
            e.predictor,
            e.folds,
            e.train,
            s.n,
            s.mape,
            s.median_ape,
            s.p95_ape,
            s.p99_ape,
            s.under_share,
            s.under_mean,
            s.r2,
            floor(|o| o.mape),
            floor(|o| o.p95_ape),
        ));
    }
    out
}

fn write_out(dir: &Path, eval: &Evaluation) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_json(&dir.join("leaderboard.json"), eval)?;
    let csv = dir.join("leaderboard.csv");
    std::fs::write(&csv, leaderboard_csv(&eval.entries)).with_context(|| format!("writing {}", csv.display()))?;
    coloc_dataset::store::save(dir, &eval.predictions)?;
    Ok(())
}

pub fn run(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    let ds = Dataset::open(&args.dataset)?;
    let train_ds = args.train.as_deref().map(Dataset::open).transpose()?;
    let (ex, splits) = match &train_ds {
        Some(train) => {
            println!("training on {}, testing on {}", train.dir().display(), args.dataset.display());
            (Examples::across(examples(train)?, examples(&ds)?), vec![Split::Datasets])
        }
        None if args.split.is_empty() => (examples(&ds)?, Split::all(args.seed)),
        None => (examples(&ds)?, args.split.iter().map(|&s| split_of(s, args.seed)).collect()),
    };
    let ex = match args.slice {
        Some(k) => {
            let sliced = ex.slice(k as usize);
            println!("a slice: every {k}th run, with every run that has aggressors or repetitions");
            sliced
        }
        None => ex,
    };
    let counters = (!args.counters.is_empty()).then(|| Utilisations::load_all(&args.counters)).transpose()?;
    let roster = if args.quick {
        Roster { counters, ..Roster::default() }
    } else {
        // the timelines of the dataset trained on, and of the one tested on where it has more
        let tested = KernelProfiles::from_dataset(&ds)?;
        let kernels = match &train_ds {
            Some(train) => KernelProfiles::from_dataset(train)?.merged(tested),
            None => tested,
        };
        Roster::full(counters, kernels)
    };
    let eval = evaluate(&ex, &splits, args.out.is_some(), &roster)?;
    let disturbed = ex.runs.iter().filter(|r| r.disturbed()).count();
    println!(
        "{}: {} batches of {} VALID runs ({disturbed} with aggressors, tested by the aggressor split alone)",
        args.dataset.display(),
        ex.len(),
        ex.runs.len()
    );
    print_off_profile(&ex);
    for split in &splits {
        let entries: Vec<&Entry> = eval.entries.iter().filter(|e| e.split == *split).collect();
        println!("\nsplit: {}", split.label());
        match eval.floors.iter().find(|f| f.split == *split).and_then(|f| f.floor.as_ref()) {
            Some(f) => println!(
                "noise floor ({} scenarios under {} measured more than once, each repetition against the others' median): MAPE {}, p95 {}",
                f.scenarios,
                f.mechanisms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
                pct(f.scores.mape),
                pct(f.scores.p95_ape)
            ),
            None if !entries.is_empty() => {
                println!("noise floor: none (no scenario it tests was measured more than once)")
            }
            None => {}
        }
        if entries.is_empty() {
            println!("  nothing to split this way in this dataset");
            continue;
        }
        let mut t = Table::new(&[
            "<predictor",
            "folds",
            "train",
            "test",
            "MAPE",
            "median",
            "p95",
            "p99",
            "under",
            "under by",
            "R²",
            "MAPE/floor",
            "p95/floor",
        ]);
        for e in entries {
            let s = &e.scores;
            t.row(vec![
                e.predictor.clone(),
                e.folds.to_string(),
                e.train.to_string(),
                s.n.to_string(),
                pct(s.mape),
                pct(s.median_ape),
                pct(s.p95_ape),
                pct(s.p99_ape),
                pct(s.under_share),
                pct(s.under_mean),
                format!("{:.3}", s.r2),
                times(e.over_floor.as_ref().map(|o| o.mape)),
                times(e.over_floor.as_ref().map(|o| o.p95_ape)),
            ]);
        }
        println!("{}", t.render());
    }
    println!(
        "errors are |predicted - measured| / measured of each batch's GPU time; folds pooled; under: predictions below the measurement and their mean shortfall (what breaks an SLO)"
    );
    if let Some(path) = &args.json {
        write_json(path, &eval)?;
    }
    if let Some(dir) = &args.out {
        write_out(dir, &eval)?;
        println!("wrote leaderboard.json, leaderboard.csv and predictions.parquet to {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The runs the examples left out, and why.
fn print_off_profile(ex: &Examples) {
    if !ex.off_profile.is_empty() {
        println!(
            "left out {} VALID run(s) whose one-stream tenants ran off their solo profiles (`coloc dataset check`, one stream as profiled): {}",
            ex.off_profile.len(),
            ex.off_profile.join(", ")
        );
    }
}

/// `coloc fit`: one predictor fitted on every example of a dataset, saved as JSON.
pub fn fit(args: &FitArgs) -> anyhow::Result<ExitCode> {
    let ds = Dataset::open(&args.dataset)?;
    let more: Vec<Dataset> = args.with.iter().map(|d| Dataset::open(d)).collect::<Result<_, _>>()?;
    let ex = if more.is_empty() {
        examples(&ds)?
    } else {
        let mut parts = vec![examples(&ds)?];
        for d in &more {
            parts.push(examples(d)?);
        }
        Examples::join(parts)
    };
    let counters = (!args.counters.is_empty()).then(|| Utilisations::load_all(&args.counters)).transpose()?;
    // runs with aggressors disturb what no query describes: a planner's predictor learns without them
    let train: Vec<&Example> = ex.items.iter().filter(|e| !ex.run_of(e).disturbed()).collect();
    let kernels = KernelProfiles::from_dataset(&ds)?;
    let saved =
        SavedPredictor::new(fit_kind(args.predictor, &train, counters.as_ref(), Some(&kernels))?, &ds, train.len())?
            .with(&more.iter().collect::<Vec<_>>())?;
    saved.save(&args.out)?;
    println!(
        "{} fitted on {} batches of {}{} (manifest sha256 {}), saved to {}",
        saved.name,
        saved.examples,
        args.dataset.display(),
        args.with.iter().map(|d| format!(" and {}", d.display())).collect::<String>(),
        &saved.manifest_sha256[..12],
        args.out.display()
    );
    print_off_profile(&ex);
    Ok(ExitCode::SUCCESS)
}
