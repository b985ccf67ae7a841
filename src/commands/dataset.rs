//! `coloc dataset overlap DIR`

use std::process::ExitCode;

use coloc_harness::analysis::{self, Span};

use crate::cli::OverlapArgs;

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
