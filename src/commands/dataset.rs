//! `coloc dataset overlap DIR` and `coloc dataset check DIR`

use std::process::ExitCode;

use coloc_harness::analysis::{self, Span};
use coloc_harness::integrity;

use crate::cli::{DatasetCheckArgs, OverlapArgs};

pub fn overlap(args: &OverlapArgs) -> anyhow::Result<ExitCode> {
    let spans = analysis::kernel_spans(&args.dir)?;
    let lk = analysis::lookup(&args.dir)?;
    let name = |run: &str, t: u16| lk.tenant_model.get(&(run.to_string(), t)).map_or(format!("#{t}"), |m| m.0.clone());
    let kernel = |run: &str, s: &Span| {
        let Some((_, model, batch)) = lk.tenant_model.get(&(run.to_string(), s.tenant)) else {
            return format!("#{}", s.op);
        };
        lk.op_name
            .get(&(model.clone(), *batch, s.op))
            .map_or_else(|| model.clone(), |(layer, kind, _)| format!("{model}:{layer} ({kind})"))
    };
    for (run, sp) in &spans {
        if !args.only.is_empty() && !args.only.iter().any(|p| run.to_lowercase().contains(&p.to_lowercase())) {
            continue;
        }
        let pairs = analysis::overlaps(sp, args.top);
        if pairs.is_empty() {
            continue;
        }
        let part = lk.partition.get(run).cloned().unwrap_or_default();
        let slow = analysis::kernel_slowdown(run, sp, &lk);
        let slow: Vec<String> = slow.iter().map(|(t, v)| format!("{} x{v:.2}", name(run, *t))).collect();
        println!("{run} [{part}] kernel time vs solo (median): {}", slow.join(", "));
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
    let r = integrity::check(&args.dir)?;
    let verdict = if r.is_whole() {
        "whole"
    } else if r.consolidated {
        "NOT WHOLE"
    } else {
        "UNFINISHED (resume it with coloc measure --resume)"
    };
    println!("{}: {verdict}", args.dir.display());
    if r.consolidated {
        println!(
            "  runs: {} expected, {} in runs.parquet, {} lines in progress.jsonl",
            r.expected_runs, r.recorded_runs, r.progress_lines
        );
        let rows: Vec<String> = r.table_rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
        println!("  rows: {}", rows.join(", "));
        println!("  completed requests whose times were checked: {}", r.requests_checked);
    } else {
        println!("  runs: {} of {} finished (progress.jsonl)", r.progress_lines, r.expected_runs);
    }
    for p in &r.problems {
        println!("  problem: {p}");
    }
    Ok(if r.is_whole() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
