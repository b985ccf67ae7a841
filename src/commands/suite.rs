//! `coloc suite validate | expand`

use std::process::ExitCode;

use coloc_harness::limits;
use coloc_workloads::scenario::DeviceLimits;
use coloc_workloads::suite::Suite;

use super::open_gpu;
use crate::cli::{GpuArgs, SuiteArgs};

fn device_limits(name: &str) -> anyhow::Result<DeviceLimits> {
    match name {
        "h200" => Ok(DeviceLimits::h200()),
        "current" => Ok(limits::of_device(&open_gpu(&GpuArgs { device: 0 })?.device)?),
        other => anyhow::bail!("unknown device profile `{other}`: use `h200` or `current`"),
    }
}

pub fn validate(args: &SuiteArgs) -> anyhow::Result<ExitCode> {
    let limits = device_limits(&args.device)?;
    let suite = Suite::load(&args.file, &limits)?;
    let check = suite.validate(&limits)?;
    let parts: Vec<String> =
        check.by_partition.iter().filter(|(_, n)| *n > 0).map(|(p, n)| format!("{} {n}", p.name())).collect();
    println!(
        "{}: OK, {} scenarios ({}), {} solo profiles, largest scenario {:.1} GiB of device memory, about {:.1} min on {}",
        args.file.display(),
        check.scenarios,
        parts.join(", "),
        check.solo_profiles.len(),
        check.peak_memory_bytes as f64 / (1u64 << 30) as f64,
        check.estimated_seconds / 60.0,
        limits.name
    );
    Ok(ExitCode::SUCCESS)
}

pub fn expand(args: &SuiteArgs) -> anyhow::Result<ExitCode> {
    let limits = device_limits(&args.device)?;
    let suite = Suite::load(&args.file, &limits)?;
    for s in &suite.scenarios {
        println!("{}", s.summary());
    }
    println!("{} scenarios", suite.scenarios.len());
    Ok(ExitCode::SUCCESS)
}
