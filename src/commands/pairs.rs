//! `coloc models compare-pairs`: interference in coloc beside the same pairs in PyTorch.

use std::process::ExitCode;

use anyhow::Context;
use coloc_dataset::rows::{RunRow, Status, TenantRow};
use serde::{Deserialize, Serialize};

use super::write_json;
use crate::cli::ComparePairsArgs;
use crate::table::{Table, sig3};

/// One model of a PyTorch pair, as `ci/torch_pairs.py` wrote it.
#[derive(Deserialize)]
struct TorchTenant {
    model: String,
    median_ms: f64,
    solo_median_ms: f64,
    slowdown: f64,
    slowdown_p95: f64,
}

#[derive(Deserialize)]
struct TorchPair {
    models: Vec<String>,
    mps_percent: u32,
    tenants: Vec<TorchTenant>,
}

#[derive(Deserialize)]
struct TorchPairs {
    device: String,
    torch: String,
    batch: u32,
    pairs: Vec<TorchPair>,
}

#[derive(Serialize)]
struct PairRow {
    pair: String,
    mps_percent: u32,
    model: String,
    torch_alone_ms: f64,
    torch_pair_ms: f64,
    torch_slowdown: f64,
    torch_slowdown_p95: f64,
    coloc_run: String,
    coloc_alone_ms: f64,
    coloc_pair_ms: f64,
    coloc_slowdown: f64,
    /// coloc's slowdown over PyTorch's, minus one.
    difference: f64,
}

/// The VALID run of `dataset` whose tenants are exactly `models` at `percent` each, if any.
fn find_run<'a>(tenants: &[TenantRow], runs: &'a [RunRow], models: &[String], percent: u32) -> Option<&'a str> {
    runs.iter().filter(|r| r.status == Status::Valid).map(|r| r.run.as_str()).find(|run| {
        let mine: Vec<&TenantRow> = tenants.iter().filter(|t| t.run == *run).collect();
        let mut got: Vec<&str> = mine.iter().map(|t| t.model.as_str()).collect();
        let mut want: Vec<&str> = models.iter().map(String::as_str).collect();
        got.sort_unstable();
        want.sort_unstable();
        got == want && mine.iter().all(|t| t.mps_percent == Some(percent))
    })
}

pub fn compare(args: &ComparePairsArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let torch: TorchPairs = serde_json::from_str(&text)
        .with_context(|| format!("{}: not the JSON of ci/torch_pairs.py", args.file.display()))?;
    let tenants: Vec<TenantRow> = coloc_dataset::store::load(&args.dataset)?;
    let runs: Vec<RunRow> = coloc_dataset::store::load(&args.dataset)?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for pair in &torch.pairs {
        let label = pair.models.join(" + ");
        let Some(run) = find_run(&tenants, &runs, &pair.models, pair.mps_percent) else {
            missing.push(format!("{label} at MPS {0}/{0}", pair.mps_percent));
            continue;
        };
        for t in &pair.tenants {
            let mine = tenants
                .iter()
                .find(|r| r.run == run && r.model == t.model)
                .with_context(|| format!("run {run} has no tenant {}", t.model))?;
            let Some(gpu_ms) = mine.gpu_p50_ms else {
                missing.push(format!("{label} at MPS {0}/{0}: {1} completed no batch", pair.mps_percent, t.model));
                continue;
            };
            let coloc_slowdown = gpu_ms / mine.solo_device_gpu_ms;
            rows.push(PairRow {
                pair: label.clone(),
                mps_percent: pair.mps_percent,
                model: t.model.clone(),
                torch_alone_ms: t.solo_median_ms,
                torch_pair_ms: t.median_ms,
                torch_slowdown: t.slowdown,
                torch_slowdown_p95: t.slowdown_p95,
                coloc_run: run.to_string(),
                coloc_alone_ms: mine.solo_device_gpu_ms,
                coloc_pair_ms: gpu_ms,
                coloc_slowdown,
                difference: coloc_slowdown / t.slowdown - 1.0,
            });
        }
    }
    let mut t = Table::new(&[
        "<pair",
        "MPS",
        "<model",
        "PyTorch alone ms",
        "paired ms",
        "slowdown",
        "p95",
        "coloc alone ms",
        "paired ms",
        "slowdown",
        "coloc vs PyTorch",
    ]);
    let mut flagged = 0;
    for r in &rows {
        let flag = r.difference.abs() > args.flag;
        flagged += flag as usize;
        t.row(vec![
            r.pair.clone(),
            format!("{0}/{0}", r.mps_percent),
            r.model.clone(),
            sig3(r.torch_alone_ms),
            sig3(r.torch_pair_ms),
            format!("x{:.2}", r.torch_slowdown),
            format!("x{:.2}", r.torch_slowdown_p95),
            sig3(r.coloc_alone_ms),
            sig3(r.coloc_pair_ms),
            format!("x{:.2}", r.coloc_slowdown),
            format!("{:+.0}%{}", 100.0 * r.difference, if flag { " *" } else { "" }),
        ]);
    }
    println!(
        "pairs at batch {} back to back under MPS: coloc ({}) against PyTorch {} on {}",
        torch.batch,
        args.dataset.display(),
        torch.torch,
        torch.device
    );
    println!("{}", t.render());
    println!(
        "slowdown: median batch time beside the other model over the median alone on the whole GPU (PyTorch: CUDA events per graph replay; coloc: each batch's first kernel in to last kernel out)"
    );
    println!(
        "{flagged} of {} differ by more than {:.0}% (marked *): each needs explaining",
        rows.len(),
        100.0 * args.flag
    );
    for m in &missing {
        println!("not compared: {m} (no VALID run of it in the dataset)");
    }
    if let Some(path) = &args.json {
        write_json(
            path,
            &serde_json::json!({ "torch": torch.torch, "device": torch.device, "rows": rows, "missing": missing }),
        )?;
    }
    Ok(if missing.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The pairs dataset measured on the H200 beside `ci/torch_pairs.py` (docs/h200.md).
    fn measured() -> (Vec<TenantRow>, Vec<RunRow>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/h200-checks/issue8/6-pairs/dataset");
        (coloc_dataset::store::load(&dir).unwrap(), coloc_dataset::store::load(&dir).unwrap())
    }

    #[test]
    fn a_pair_is_found_by_its_models_in_any_order_and_its_mps_percentage() {
        let (tenants, runs) = measured();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let at_50 = find_run(&tenants, &runs, &names(&["bert_base", "resnet50"]), 50).unwrap();
        let at_100 = find_run(&tenants, &runs, &names(&["resnet50", "bert_base"]), 100).unwrap();
        assert_ne!(at_50, at_100);
        for run in [at_50, at_100] {
            let models: Vec<&str> = tenants.iter().filter(|t| t.run == run).map(|t| t.model.as_str()).collect();
            assert_eq!(models.len(), 2, "{run}: {models:?}");
        }
        // no such share, no such pair, a model alone
        assert!(find_run(&tenants, &runs, &names(&["resnet50", "bert_base"]), 75).is_none());
        assert!(find_run(&tenants, &runs, &names(&["resnet50", "vgg16"]), 50).is_none());
        assert!(find_run(&tenants, &runs, &names(&["resnet50"]), 50).is_none());
    }
}
