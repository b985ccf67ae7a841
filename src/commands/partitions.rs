//! `coloc partitions scaling`

use std::process::ExitCode;

use coloc_kernels::gpu::ExecContext;
use coloc_kernels::ops::OpSpec;
use coloc_kernels::partition::{priority, scaling};

use super::{open_gpu, worker_command, write_json};
use crate::cli::{PriorityArgs, ScalingArgs};
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
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
    if let Some(path) = &args.json {
        write_json(path, &r)?;
    }
    Ok(ExitCode::SUCCESS)
}
