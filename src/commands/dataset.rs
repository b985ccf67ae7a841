//! `coloc dataset overlap DIR` and `coloc dataset check DIR`

use std::collections::BTreeMap;
use std::process::ExitCode;

use coloc_dataset::Dataset;
use coloc_dataset::check;
use coloc_dataset::overlap;
use coloc_dataset::rows::{AggressorRow, BatchRow, KernelRow, Owner, RunRow, TenantRow};
use coloc_dataset::solo_rows::{SoloKernelRow, SoloOpRow};

use crate::cli::{DatasetCheckArgs, DatasetSlimArgs, OverlapArgs};

pub fn overlap(args: &OverlapArgs) -> anyhow::Result<ExitCode> {
    let ds = Dataset::open(&args.dir)?;
    let runs: Vec<RunRow> = ds.load()?;
    let tenants: Vec<TenantRow> = ds.load()?;
    let aggressors: Vec<AggressorRow> = ds.load_or_empty()?;
    let kernels: Vec<KernelRow> = ds.load_or_empty()?;
    let batches: Vec<BatchRow> = ds.load()?;
    let solo_ops: Vec<SoloOpRow> = ds.load()?;
    let solo = overlap::solo_launch_times(&ds.load::<SoloKernelRow>()?);
    let batch_of: BTreeMap<(String, u16, u32), &BatchRow> =
        batches.iter().map(|b| ((b.run.clone(), b.tenant, b.batch), b)).collect();
    let name = |run: &str, o: Owner| match o {
        Owner::Tenant(t) => {
            tenants.iter().find(|x| x.run == run && x.tenant == t).map_or(format!("tenant {t}"), |x| x.name.clone())
        }
        Owner::Aggressor(a) => aggressors
            .iter()
            .find(|x| x.run == run && x.aggressor == a)
            .map_or(format!("aggressor {a}"), |x| x.name.clone()),
    };
    let kernel = |run: &str, k: &KernelRow| match k.owner() {
        Some(Owner::Tenant(t)) => {
            let Some(x) = tenants.iter().find(|x| x.run == run && x.tenant == t) else { return format!("op {}", k.op) };
            let bucket = batch_of.get(&(run.to_string(), t, k.batch)).map_or(x.max_batch, |b| b.bucket as u32);
            let layer = solo_ops.iter().find(|o| o.model == x.model && o.batch == bucket && o.op == k.op);
            match layer {
                Some(o) => {
                    format!("{}:{} ({} launch {}, {:?})", x.model, o.layer, o.kind, k.launch, k.kind).to_lowercase()
                }
                None => format!("{}:op{}", x.model, k.op),
            }
        }
        Some(a @ Owner::Aggressor(_)) => format!("{} launch {}", name(run, a), k.batch),
        None => "a launch of no tenant".into(),
    };
    let mut by_run: BTreeMap<&str, Vec<&KernelRow>> = BTreeMap::new();
    for k in &kernels {
        by_run.entry(k.run.as_str()).or_default().push(k);
    }
    for r in &runs {
        let run = r.run.as_str();
        if !args.only.is_empty() && !args.only.iter().any(|p| run.to_lowercase().contains(&p.to_lowercase())) {
            continue;
        }
        let Some(ks) = by_run.get(run) else { continue };
        let pairs = overlap::overlaps(ks, args.top);
        if pairs.is_empty() {
            continue;
        }
        let slow = overlap::kernel_slowdown(run, ks, &tenants, &batch_of, &solo);
        let slow: Vec<String> = slow.iter().map(|(t, v)| format!("{} x{v:.2}", name(run, Owner::Tenant(*t)))).collect();
        println!("{run} [{}] launch time vs solo at the same share (median): {}", r.partition.name(), slow.join(", "));
        for p in pairs {
            let frac = p.overlap_ns as f64 / p.busy_a_ns.min(p.busy_b_ns).max(1) as f64;
            println!(
                "  {} & {}: overlap {:.3} ms = {:.1}% of the less busy one's kernel time",
                name(run, p.a),
                name(run, p.b),
                p.overlap_ns as f64 / 1e6,
                100.0 * frac
            );
            for (a, b, ov) in &p.top {
                println!("    {:.1} us: {} | {}", *ov as f64 / 1e3, kernel(run, a), kernel(run, b));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(args: &DatasetCheckArgs) -> anyhow::Result<ExitCode> {
    let r = check::check(&args.dir)?;
    let skipped = r.findings.iter().filter(|f| f.skipped.is_some()).count();
    let verdict = if r.is_whole() {
        "whole, every invariant holds".to_string()
    } else if r.holds() {
        format!("slim copy: every invariant it holds the tables for holds; {skipped} not checkable here")
    } else if r.consolidated {
        "NOT WHOLE".to_string()
    } else {
        "UNFINISHED (resume it with coloc measure --resume)".to_string()
    };
    println!("{}: {verdict}", args.dir.display());
    if r.consolidated {
        println!(
            "  runs: {} expected, {} in runs.parquet, {} lines in progress.jsonl",
            r.expected_runs, r.recorded_runs, r.progress_lines
        );
        let rows: Vec<String> = r.table_rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
        println!("  rows: {}", rows.join(", "));
        if !r.dropped.is_empty() {
            let dropped: Vec<String> =
                r.dropped.iter().map(|d| format!("{} ({} rows as measured)", d.table, d.rows)).collect();
            println!("  not in this slim copy: {}", dropped.join(", "));
        }
    } else {
        println!("  runs: {} of {} finished (progress.jsonl)", r.progress_lines, r.expected_runs);
    }
    for f in &r.findings {
        if let Some(why) = &f.skipped {
            println!("  skip {}: {why}", f.invariant.describe());
            continue;
        }
        let mark = if f.problems.is_empty() { "ok  " } else { "FAIL" };
        println!("  {mark} {} ({} checked)", f.invariant.describe(), f.checked);
        for p in &f.problems {
            println!("       {p}");
        }
    }
    Ok(if r.holds() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn slim(args: &DatasetSlimArgs) -> anyhow::Result<ExitCode> {
    let dropped = coloc_dataset::slim::slim(&args.dir, &args.out)?;
    let what: Vec<String> = dropped.iter().map(|d| format!("{} ({} rows)", d.table, d.rows)).collect();
    println!("{} -> {}: every file copied but {}", args.dir.display(), args.out.display(), what.join(", "));
    Ok(ExitCode::SUCCESS)
}

pub fn timing(args: &DatasetCheckArgs) -> anyhow::Result<ExitCode> {
    let ds = Dataset::open(&args.dir)?;
    let counters: Vec<coloc_dataset::solo_rows::SoloCounterRow> = ds.load_or_empty()?;
    if counters.is_empty() {
        anyhow::bail!("{}: no solo_counters table; measure with --ncu", args.dir.display());
    }
    let rows = coloc_dataset::timing::compare(&ds.load()?, &ds.load()?, &counters);
    let mut t =
        crate::table::Table::new(&["<model", "batch", "op", "launch", "<kernel", "coloc us", "ncu us", "coloc - ncu"]);
    for r in &rows {
        t.row(vec![
            r.model.clone(),
            r.batch.to_string(),
            r.op.to_string(),
            r.launch.to_string(),
            r.name.clone(),
            format!("{:.2}", r.coloc_us),
            format!("{:.2}", r.ncu_us),
            format!("{:+.2}", r.coloc_us - r.ncu_us),
        ]);
    }
    println!("{}", t.render());
    for kind in [
        coloc_dataset::rows::LaunchKind::Coloc,
        coloc_dataset::rows::LaunchKind::Cublas,
        coloc_dataset::rows::LaunchKind::Cudnn,
    ] {
        let diff: Vec<f64> = rows.iter().filter(|r| r.kind == kind).map(|r| r.coloc_us - r.ncu_us).collect();
        let ratio: Vec<f64> =
            rows.iter().filter(|r| r.kind == kind && r.ncu_us > 20.0).map(|r| r.coloc_us / r.ncu_us).collect();
        if diff.is_empty() {
            continue;
        }
        let med = |v: &[f64]| if v.is_empty() { f64::NAN } else { coloc_kernels::stats::median_of(v) };
        println!(
            "{kind:?}: {} launches; coloc - ncu median {:+.2} us (min {:+.2}, max {:+.2}); coloc / ncu for launches over 20 us: median {:.3} over {}",
            diff.len(),
            med(&diff),
            diff.iter().copied().fold(f64::INFINITY, f64::min),
            diff.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            med(&ratio),
            ratio.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn summary(args: &DatasetCheckArgs) -> anyhow::Result<ExitCode> {
    print!("{}", coloc_harness::summary::text(&Dataset::open(&args.dir)?)?);
    Ok(ExitCode::SUCCESS)
}
