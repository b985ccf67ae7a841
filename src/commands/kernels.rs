//! `coloc kernels list | check | bench`

use std::process::ExitCode;

use coloc_kernels::bench::{self, BenchConfig, BenchEntry, BenchOptions, BenchReport};
use coloc_kernels::catalog;
use coloc_kernels::ceilings;
use coloc_kernels::check::{self, CheckResult};
use coloc_kernels::gpu::{DeviceInfo, ExecContext, StreamLibraries};
use coloc_kernels::id::KernelId;
use coloc_kernels::ops::{LaunchEnv, Launcher, OpSpec};

use super::{open_gpu, write_json};
use crate::cli::{BenchArgs, CheckArgs};
use crate::table::{Table, sig3};

pub fn list() -> anyhow::Result<ExitCode> {
    let mut t = Table::new(&["<kernel", "<module", "<instantiations"]);
    for id in KernelId::ALL {
        let syms: Vec<String> = id.symbols().iter().map(|s| s.c_name()).collect();
        t.row(vec![format!("{id:?}"), id.module().file_name().into(), syms.join(" ")]);
    }
    println!("{}\n", t.render());
    let mut t = Table::new(&["<check case", "MFLOP", "MB moved", "operand MB"]);
    for op in catalog::check_cases() {
        let c = op.cost();
        let bytes: usize = op.operands().iter().map(|o| o.bytes()).sum();
        t.row(vec![op.label(), sig3(c.flops / 1e6), sig3(c.dram_bytes / 1e6), sig3(bytes as f64 / 1e6)]);
    }
    println!("{}\n", t.render());
    // Bench shapes depend on the device only through SM count and L2 size: show them for an H200.
    let h200 = DeviceInfo {
        ordinal: 0,
        name: "NVIDIA H200 (nominal)".into(),
        uuid: String::new(),
        pci_bus_id: String::new(),
        compute_capability: (9, 0),
        sm_count: 132,
        l2_bytes: 60 << 20,
        total_memory_bytes: 0,
        memory_bus_width_bits: 0,
        max_threads_per_sm: 2048,
        max_shared_memory_per_block_optin: 0,
        max_shared_memory_per_sm: 0,
        registers_per_sm: 0,
        stream_priority_range: (0, 0),
        compute_mode: 0,
        mps_client: false,
        driver_api_version: 0,
    };
    let mut t = Table::new(&["<bench case (132 SMs, 60 MiB L2)", "GFLOP", "MB moved", "<note"]);
    for case in catalog::bench_cases(&h200) {
        let c = case.op.cost();
        t.row(vec![case.op.label(), sig3(c.flops / 1e9), sig3(c.dram_bytes / 1e6), case.note.into()]);
    }
    println!("{}", t.render());
    Ok(ExitCode::SUCCESS)
}

pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let gpu = open_gpu(&args.gpu)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    println!("coloc kernels check on {} (seed {seed}; replay with --seed {seed})", gpu.device.info().name);
    let ctx = ExecContext::primary(&gpu.device);
    let stream = ctx.new_stream(0)?;
    let libs = StreamLibraries::new(&stream)?;
    let env = LaunchEnv { lib: &gpu.lib, stream: &stream, libs: Some(&libs), bracket_library_calls: true };
    let mut t = Table::new(&["<", "<operator", "rel err", "tol", "event us", "stamp us", "<note"]);
    let mut results: Vec<CheckResult> = Vec::new();
    let mut errors = Vec::new();
    let mut not_run = Vec::new();
    let wanted = |label: &str| {
        args.only.is_empty() || args.only.iter().any(|p| label.to_lowercase().contains(&p.to_lowercase()))
    };
    for (i, op) in catalog::check_cases().into_iter().enumerate() {
        let label = op.label();
        if !wanted(&label) {
            continue;
        }
        let needs_cudnn = op.launches().iter().any(|l| l.launcher == Launcher::Cudnn);
        if let (true, Err(missing)) = (needs_cudnn, coloc_kernels::gpu::libs::require_cudnn()) {
            let why = missing.to_string();
            t.row(vec!["NOT RUN".into(), label.clone(), "-".into(), "-".into(), "-".into(), "-".into(), why.clone()]);
            not_run.push(format!("{label}: {why}"));
            continue;
        }
        match check::check_op(&gpu.device, &env, op, seed.wrapping_add(i as u64)) {
            Ok(r) => {
                let worst = r.outputs.iter().map(|o| o.rel_l2_error).fold(0.0, f64::max);
                t.row(vec![
                    if r.passed { "ok".into() } else { "FAIL".into() },
                    label,
                    format!("{worst:.1e}"),
                    format!("{:.0e}", r.tolerance),
                    sig3(r.event_us),
                    r.stamp_us.map_or("-".into(), sig3),
                    r.failure.clone().unwrap_or_default(),
                ]);
                results.push(r);
            }
            Err(e) => {
                t.row(vec![
                    "FAIL".into(),
                    label.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    e.to_string(),
                ]);
                errors.push(format!("{label}: {e}"));
            }
        }
    }
    println!("{}", t.render());
    let failed = results.iter().filter(|r| !r.passed).count() + errors.len();
    println!("{} operators checked, {failed} failed", results.len() + errors.len());
    if !not_run.is_empty() {
        println!("{} operators not run: they need cuDNN, which this machine lacks", not_run.len());
    }
    if let Some(path) = &args.json {
        write_json(
            path,
            &serde_json::json!({
                "device": gpu.device.info(),
                "seed": seed,
                "cudnn_version": coloc_kernels::gpu::Dnn::version().ok(),
                "results": results,
                "errors": errors,
                "not_run": not_run,
            }),
        )?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let gpu = open_gpu(&args.gpu)?;
    let ctx = ExecContext::primary(&gpu.device);
    println!("measuring ceilings on {} ...", gpu.device.info().name);
    let ceil = ceilings::measure(&gpu.lib, &ctx, args.quick)?;
    println!(
        "ceilings: copy {} GB/s, f32 FMA {} TFLOP/s, bf16 matrix {} TFLOP/s, tf32 matrix {} TFLOP/s",
        sig3(ceil.copy_gbps),
        sig3(ceil.fp32_fma_tflops),
        sig3(ceil.matrix_bf16_tflops()),
        sig3(ceil.matrix_tf32_tflops())
    );
    let opts = BenchOptions {
        config: BenchConfig {
            samples: args.samples,
            max_seconds: args.max_seconds,
            flush_l2: !args.warm_l2,
            ..BenchConfig::default()
        },
        only: args.only.clone(),
        skip_overhead: args.skip_overhead,
    };
    let mut shown = 0usize;
    let mut on_entry = |e: &BenchEntry| {
        if shown == 0 {
            println!("{}", header_line());
        }
        shown += 1;
        println!("{}", entry_line(e));
    };
    let report = bench::run(&gpu.lib, &ctx, ceil, &opts, &mut on_entry)?;
    print_report(&report, !args.no_targets);
    report.write(&args.out)?;
    println!("wrote {} and {}", args.out.join("bench.json").display(), args.out.join("samples.csv").display());
    let targets_ok = args.no_targets || report.all_targets_passed();
    Ok(if targets_ok && report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

const COLUMNS: [(&str, usize); 11] = [
    ("operator", 52),
    ("median us", 10),
    ("IQR%", 6),
    ("p95 us", 9),
    ("stamp us", 9),
    ("ev-st us", 8),
    ("TFLOP/s", 8),
    ("GB/s", 7),
    ("%comp", 6),
    ("%mem", 6),
    ("kernels", 7),
];

fn header_line() -> String {
    COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (h, w))| if i == 0 { format!("{h:<w$}") } else { format!("{h:>w$}") })
        .collect::<Vec<_>>()
        .join(" ")
}

fn entry_line(e: &BenchEntry) -> String {
    let mut label = e.label();
    label.truncate(COLUMNS[0].1);
    let cells = [
        label,
        sig3(e.event_us.median),
        format!("{:.1}", 100.0 * e.event_us.relative_spread()),
        sig3(e.event_us.p95),
        e.stamp_us.as_ref().map_or("-".into(), |s| sig3(s.median)),
        e.event_minus_stamp_us.as_ref().map_or("-".into(), |s| sig3(s.median)),
        sig3(e.tflops),
        sig3(e.gbps),
        format!("{:.0}", 100.0 * e.compute_fraction),
        format!("{:.0}", 100.0 * e.memory_fraction),
        e.launches.len().to_string(),
    ];
    cells
        .iter()
        .zip(COLUMNS)
        .enumerate()
        .map(|(i, (c, (_, w)))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_report(r: &BenchReport, judge_targets: bool) {
    for err in &r.errors {
        println!("FAILED {err}");
    }
    println!("\nlaunch configuration (read back from each operator captured as a CUDA graph):");
    let mut t = Table::new(&["<operator", "<kernel", "<grid", "<block", "regs", "smem B", "blocks/SM", "occupancy"]);
    for e in &r.entries {
        for k in &e.launches {
            let mut name = k.name.clone();
            name.truncate(48);
            t.row(vec![
                format!("{} {}", e.kind, e.shape.split(' ').next().unwrap_or("")),
                name,
                format!("{}x{}x{}", k.grid.0, k.grid.1, k.grid.2),
                format!("{}x{}x{}", k.block.0, k.block.1, k.block.2),
                k.registers.to_string(),
                (k.static_smem_bytes as u32 + k.dynamic_smem_bytes).to_string(),
                k.max_blocks_per_sm.to_string(),
                format!("{:.0}%", 100.0 * k.theoretical_occupancy),
            ]);
        }
    }
    println!("{}", t.render());
    if let Some(l) = &r.launch {
        println!(
            "\nlaunch overhead ({} x {}): CPU enqueue {} us/launch; GPU per kernel: eager {} us, queued ahead {} us, graph replay {} us",
            l.launches,
            l.kernel,
            sig3(l.cpu_enqueue_us),
            sig3(l.eager_us_per_kernel),
            sig3(l.queued_us_per_kernel),
            sig3(l.graph_us_per_kernel)
        );
    }
    if !r.overhead.is_empty() {
        println!("\ninstrumentation overhead (interleaved bare / stamped samples):");
        let mut t = Table::new(&["<kernel", "bare us", "stamped us", "overhead", "95% CI of ratio", "p"]);
        for o in &r.overhead {
            t.row(vec![
                o.label.clone(),
                sig3(o.bare_us.median),
                sig3(o.stamped_us.median),
                format!("{:+.2}%", o.overhead_pct),
                format!("{:.4}..{:.4}", o.comparison.ratio_ci95.0, o.comparison.ratio_ci95.1),
                format!("{:.3}", o.comparison.p_value),
            ]);
        }
        println!("{}", t.render());
    }
    println!("{}", if judge_targets { "\ntargets:" } else { "\ntargets (not judged: --no-targets):" });
    for t in &r.targets {
        let verdict = match (judge_targets, t.passed) {
            (false, _) => "----",
            (true, true) => "PASS",
            (true, false) => "FAIL",
        };
        println!("  {} {}: {:.3} {} {} ({})", verdict, t.name, t.measured, t.relation, t.threshold, t.detail);
    }
}
