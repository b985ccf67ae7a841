//! `coloc devices`

use std::process::ExitCode;

use coloc_kernels::inventory::{self, Inventory, InventoryOptions};

use super::{gib, open_gpu, worker_command, write_json};
use crate::cli::DevicesArgs;
use crate::table::sig3;

pub fn run(args: &DevicesArgs) -> anyhow::Result<ExitCode> {
    let gpu = open_gpu(&args.gpu)?;
    let opts = InventoryOptions {
        measure_ceilings: !args.no_ceilings,
        quick: args.quick,
        mps_worker: if args.no_mps_trial { None } else { worker_command() },
    };
    let inv = inventory::collect(&gpu.device, &gpu.lib, &opts)?;
    print(&inv);
    if let Some(path) = &args.json {
        write_json(path, &inv)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print(inv: &Inventory) {
    let d = &inv.device;
    println!("device {}: {} ({}, PCI {})", d.ordinal, d.name, d.uuid, d.pci_bus_id);
    println!(
        "  compute capability {}.{}, {} SMs, L2 {:.1} MiB, memory {} ({} free), bus {} bits",
        d.compute_capability.0,
        d.compute_capability.1,
        d.sm_count,
        d.l2_bytes as f64 / (1 << 20) as f64,
        gib(d.total_memory_bytes),
        gib(inv.memory_free_bytes),
        d.memory_bus_width_bits
    );
    let driver = inv.nvml_settings.as_ref().and_then(|s| s.driver_version.clone()).unwrap_or_else(|| "?".into());
    println!(
        "  driver {driver} (CUDA API {}), NVRTC {}, cuBLAS {}",
        d.driver_api_version, inv.nvrtc_version, inv.cublas_version
    );
    match (&inv.nvml_settings, &inv.nvml_sample) {
        (Some(s), Some(now)) => {
            let o = |v: Option<u32>| v.map_or("?".to_string(), |v| v.to_string());
            println!(
                "  clocks: SM {} MHz now / {} max, memory {} / {} MHz; power {} W of {} W; {} C; throttle: {}",
                o(now.sm_clock_mhz),
                o(s.max_sm_clock_mhz),
                o(now.mem_clock_mhz),
                o(s.max_mem_clock_mhz),
                now.power_w.map_or("?".into(), |w| format!("{w:.0}")),
                s.power_limit_w.map_or("?".into(), |w| format!("{w:.0}")),
                o(now.temperature_c),
                if now.throttle_reasons.is_empty() { "none".into() } else { now.throttle_reasons.join(",") }
            );
            println!(
                "  compute mode {}, persistence {}",
                s.compute_mode.as_deref().unwrap_or("?"),
                s.persistence_mode.map_or("?", |p| if p { "on" } else { "off" })
            );
        }
        _ => println!("  NVML: {}", inv.nvml_error.as_deref().unwrap_or("unavailable")),
    }
    let mig = &inv.mig;
    match (mig.current_enabled, mig.pending_enabled) {
        (Some(c), Some(p)) => println!(
            "  MIG: {} (pending {}){}",
            if c { "enabled" } else { "disabled" },
            if p { "enabled" } else { "disabled" },
            if mig.instances.is_empty() { String::new() } else { format!(", instances {}", mig.instances.join(" ")) }
        ),
        _ => println!("  MIG: not supported ({})", mig.note.as_deref().unwrap_or("")),
    }
    println!(
        "  stream priorities: {} (lowest) to {} (highest); this process is {}an MPS client",
        d.stream_priority_range.1,
        d.stream_priority_range.0,
        if d.mps_client { "" } else { "not " }
    );
    let t = &inv.globaltimer;
    println!(
        "  %globaltimer: smallest step {} ns ({} distinct values over {:.1} us)",
        t.min_step_ns,
        t.distinct_values,
        t.span_ns as f64 / 1e3
    );
    let g = &inv.green_contexts;
    if g.usable {
        println!(
            "  green contexts: usable; groups of {} SMs (minimum partition {}, alignment {}): {} groups + {} SMs left over",
            g.group_sms, g.min_partition_sms, g.alignment_sms, g.groups, g.remainder_sms
        );
    } else {
        println!("  green contexts: not usable ({})", g.error.as_deref().unwrap_or("?"));
    }
    let m = &inv.mps;
    match (m.usable, m.trial_driver_sms) {
        (true, Some(sms)) => println!(
            "  MPS: usable ({}); a client at 50% active threads was granted {} SMs and ran on {}",
            m.control_binary.as_deref().unwrap_or("?"),
            sms,
            m.trial_census_sms.unwrap_or(0)
        ),
        _ => println!(
            "  MPS: {} ({})",
            if m.control_binary.is_some() { "not usable" } else { "not available" },
            m.error.as_deref().unwrap_or("?")
        ),
    }
    if let Some(c) = &inv.ceilings {
        println!("  measured ceilings:");
        println!("    device-to-device copy   {:>7} GB/s (read + write, {})", sig3(c.copy_gbps), gib(c.copy_bytes));
        println!(
            "    L2 read-modify-write    {:>7} GB/s (read + write, {} of L2)",
            sig3(c.l2_gbps),
            gib(c.l2_cache_bytes)
        );
        println!("    f32 FMA                 {:>7} TFLOP/s", sig3(c.fp32_fma_tflops));
        if let (Some(b), Some(t)) = (c.tensor_bf16_probe_tflops, c.tensor_tf32_probe_tflops) {
            println!("    bf16 tensor (wgmma)     {:>7} TFLOP/s", sig3(b));
            println!("    tf32 tensor (wgmma)     {:>7} TFLOP/s", sig3(t));
        }
        println!("    cuBLAS bf16 (best {:>5}) {:>7} TFLOP/s", c.cublas_bf16_best_size, sig3(c.cublas_bf16_tflops));
        println!("    cuBLAS tf32             {:>7} TFLOP/s", sig3(c.cublas_tf32_tflops));
        println!("    cuBLAS f32              {:>7} TFLOP/s", sig3(c.cublas_f32_tflops));
        println!(
            "    => matrix ceilings: bf16 {} TFLOP/s, tf32 {} TFLOP/s",
            sig3(c.matrix_bf16_tflops()),
            sig3(c.matrix_tf32_tflops())
        );
    }
    let loads: Vec<String> = inv
        .kernel_modules
        .iter()
        .map(|l| format!("{:?}/{}{}", l.module, l.arch, if l.from_cache { " (cached)" } else { "" }))
        .collect();
    println!("  kernel modules: {}", loads.join(", "));
}
