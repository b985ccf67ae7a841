//! `coloc partitions scaling | priority | fusion`

use std::process::ExitCode;

use coloc_kernels::gpu::ExecContext;
use coloc_kernels::gpu::GemmPrecision;
use coloc_kernels::ops::Gemm;
use coloc_kernels::ops::OpSpec;
use coloc_kernels::partition::fusion::{self, FusionReport};
use coloc_kernels::partition::{priority, scaling};

use super::{open_gpu, worker_command, write_json};
use crate::cli::{FusionArgs, PriorityArgs, ScalingArgs};
use crate::table::{Table, sig3};

pub fn scaling(args: &ScalingArgs) -> anyhow::Result<ExitCode> {
    let gpu = open_gpu(&args.gpu)?;
    let worker = worker_command();
    let report = scaling::run(&gpu.device, &gpu.lib, &args.green, &args.mps, worker.as_ref(), args.reps)?;
    println!(
        "fixed work: {} (compute-bound FMA, {:.1} GFLOP), {} reps per row",
        report.work.shape(),
        report.work.cost().flops / 1e9,
        args.reps
    );
    let mut t =
        Table::new(&["<mechanism", "<asked", "driver SMs", "SMs seen", "median ms", "speed", "SM share", "efficiency"]);
    for r in &report.rows {
        t.row(vec![
            r.mechanism.clone(),
            r.requested.clone(),
            r.driver_sms.to_string(),
            r.census_sms.to_string(),
            sig3(r.median_ms),
            sig3(r.relative_speed),
            format!("{:.3}", r.sm_fraction),
            sig3(r.efficiency),
        ]);
    }
    println!("{}", t.render());
    for e in &report.errors {
        println!("not measured: {e}");
    }
    let problems = report.problems();
    println!("{}", verdict(&problems));
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(if report.errors.is_empty() && problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn priority(args: &PriorityArgs) -> anyhow::Result<ExitCode> {
    let gpu = open_gpu(&args.gpu)?;
    let r = priority::run(&gpu.lib, &ExecContext::primary(&gpu.device), args.reps)?;
    println!(
        "background: {} ({} ms) on the lowest-priority stream ({}); probe: {}",
        r.background.shape(),
        sig3(r.background_ms),
        r.priority_range.1,
        r.probe.shape()
    );
    println!("probe latency, arrival to end, median of {}:", args.reps);
    println!("  alone                         {:>8} us", sig3(r.alone_us));
    println!("  behind it, equal priority     {:>8} us", sig3(r.equal_priority_us));
    println!("  behind it, priority {:>3}       {:>8} us", r.priority_range.0, sig3(r.high_priority_us));
    let problems = r.problems();
    println!("{}", verdict(&problems));
    if let Some(path) = &args.json {
        write_json(path, &r)?;
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// VALID, or INVALID with each problem.
fn verdict(problems: &[String]) -> String {
    if problems.is_empty() { "VALID".into() } else { format!("INVALID: {}", problems.join("; ")) }
}

/// `MxNxK` and a precision as a single GEMM.
fn parse_gemm(text: &str, precision: &str) -> anyhow::Result<Gemm> {
    let dims: Vec<usize> =
        text.split('x').map(|d| d.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| {
            anyhow::anyhow!("--gemm `{text}`: write MxNxK with positive whole numbers, e.g. 256x256x256")
        })?;
    let [m, n, k] = dims[..] else {
        anyhow::bail!("--gemm `{text}`: write three sizes MxNxK, e.g. 256x256x256");
    };
    if m == 0 || n == 0 || k == 0 {
        anyhow::bail!("--gemm `{text}`: every size must be at least 1");
    }
    let precision: GemmPrecision = serde_json::from_value(serde_json::Value::String(precision.to_lowercase()))
        .map_err(|_| anyhow::anyhow!("--precision `{precision}`: give f32, tf32 or bf16"))?;
    Ok(Gemm { m, n, k, batch: 1, precision, b_transposed: true })
}

pub fn fusion(args: &FusionArgs) -> anyhow::Result<ExitCode> {
    let experiments: Vec<Vec<Gemm>> = args
        .gemm
        .iter()
        .map(|shapes| shapes.split(',').map(|g| parse_gemm(g, &args.precision)).collect::<anyhow::Result<_>>())
        .collect::<anyhow::Result<_>>()?;
    let gpu = open_gpu(&args.gpu)?;
    let ctx = ExecContext::primary(&gpu.device);
    let reports: Vec<FusionReport> = experiments
        .iter()
        .map(|shapes| fusion::run(&gpu.lib, &ctx, shapes, &args.tenants, args.reps))
        .collect::<Result<_, _>>()?;
    // after every round (one precision: one ceiling)
    let ceiling = fusion::ceiling_tflops(&gpu.lib, &ctx, &experiments[0][0])?;
    let mut problems = Vec::new();
    for report in &reports {
        let labels: Vec<String> =
            report.shapes.iter().map(|g| coloc_kernels::ops::Op::Gemm(g.clone()).label()).collect();
        let label = labels.join(" / ");
        let alternating = if report.shapes.len() > 1 { ", tenants alternating" } else { "" };
        println!("{label}{alternating}; median of {} rounds, ms a round:", report.reps);
        let mut t = Table::new(&[
            "tenants",
            "<fused as",
            "time-only",
            "space-only",
            "fused",
            "fused x time-only",
            "fused x space-only",
            "fused TFLOP/s",
            "err vs unfused",
            "err vs reference",
        ]);
        for r in &report.rows {
            t.row(vec![
                r.tenants.to_string(),
                format!("{:?}", r.launch).to_lowercase(),
                sig3(r.time_only_ms),
                sig3(r.space_only_ms),
                sig3(r.fused_ms),
                format!("{:.2}", r.fused_over_time_only()),
                format!("{:.2}", r.fused_over_space_only()),
                format!("{:.1}", r.fused_tflops),
                format!("{:.1e}", r.fused_vs_unfused_error),
                format!("{:.1e}", r.fused_vs_reference_error),
            ]);
        }
        println!("{}", t.render());
        problems.extend(fusion::problems(report, ceiling).into_iter().map(|p| format!("{label}: {p}")));
    }
    println!("{}", verdict(&problems));
    if let Some(path) = &args.json {
        write_json(path, &reports)?;
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gemm_is_mxnxk_and_a_precision_and_anything_else_is_an_error_naming_it() {
        let g = parse_gemm("128x3072x768", "BF16").unwrap();
        assert_eq!(
            (g.m, g.n, g.k, g.batch, g.precision, g.b_transposed),
            (128, 3072, 768, 1, GemmPrecision::Bf16, true)
        );
        for (text, why) in [("256x256", "three sizes"), ("256x0x256", "at least 1"), ("2x2xq", "positive whole")] {
            let e = parse_gemm(text, "bf16").unwrap_err().to_string();
            assert!(e.contains(text) && e.contains(why), "{text}: {e}");
        }
        assert!(parse_gemm("2x2x2", "fp8").unwrap_err().to_string().contains("--precision `fp8`"));
    }
}
