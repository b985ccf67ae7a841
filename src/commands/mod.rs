//! One module per command; each turns typed options into library calls and prints.

mod dataset;
mod devices;
mod evaluate;
mod fusable;
mod kernels;
mod measure;
mod models;
mod pairs;
mod partitions;
mod pipeline;
mod pipeline_measured;
mod predict;
mod schedule;
mod suite;

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use coloc_kernels::gpu::{Device, KernelLibrary, libs};
use coloc_kernels::partition::probe::{self, WorkerCommand};

use crate::cli::{
    Cli, Command, DatasetCommand, GpuArgs, KernelsCommand, ModelsCommand, PartitionsCommand, SuiteCommand,
};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Devices(a) => devices::run(&a),
        Command::Kernels(KernelsCommand::List) => kernels::list(),
        Command::Kernels(KernelsCommand::Check(a)) => kernels::check(&a),
        Command::Kernels(KernelsCommand::Bench(a)) => kernels::bench(&a),
        Command::Partitions(PartitionsCommand::Scaling(a)) => partitions::scaling(&a),
        Command::Partitions(PartitionsCommand::Priority(a)) => partitions::priority(&a),
        Command::Partitions(PartitionsCommand::Fusion(a)) => partitions::fusion(&a),
        Command::Models(ModelsCommand::List) => models::list(),
        Command::Models(ModelsCommand::Show(a)) => models::show(&a),
        Command::Models(ModelsCommand::Run(a)) => models::run(&a),
        Command::Models(ModelsCommand::Compare(a)) => models::compare(&a),
        Command::Models(ModelsCommand::ComparePairs(a)) => pairs::compare(&a),
        Command::Models(ModelsCommand::Fusable(a)) => fusable::run(&a),
        Command::Suite(SuiteCommand::Validate(a)) => suite::validate(&a),
        Command::Suite(SuiteCommand::Expand(a)) => suite::expand(&a),
        Command::Measure(a) => measure::run(&a),
        Command::Evaluate(a) => evaluate::run(&a),
        Command::Fit(a) => evaluate::fit(&a),
        Command::Predict(a) => predict::run(&a),
        Command::Schedule(a) => schedule::run(&a),
        Command::CompareSchedulers(a) => schedule::compare(&a),
        Command::Pipeline(a) => pipeline::run(&a),
        Command::Dataset(DatasetCommand::Overlap(a)) => dataset::overlap(&a),
        Command::Dataset(DatasetCommand::Check(a)) => dataset::check(&a),
        Command::Dataset(DatasetCommand::Timing(a)) => dataset::timing(&a),
        Command::Dataset(DatasetCommand::Summary(a)) => dataset::summary(&a),
        Command::Dataset(DatasetCommand::Slim(a)) => dataset::slim(&a),
        Command::NcuSolo { model, batch } => {
            coloc_harness::ncu::solo_worker(&model, batch)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RunWorker => {
            let stdin = std::io::BufReader::new(std::io::stdin());
            coloc_harness::worker::worker_main(Box::new(stdin), Box::new(std::io::stdout()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ProbeWorker => {
            let mut job = String::new();
            std::io::stdin().read_to_string(&mut job).context("reading the probe job from stdin")?;
            println!("{}", probe::worker(&job)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An opened GPU with its kernel library, after checking that every CUDA library a command
/// needs is present (so a missing one is reported before any work starts).
pub struct Gpu {
    pub device: Arc<Device>,
    pub lib: Arc<KernelLibrary>,
}

pub fn open_gpu(args: &GpuArgs) -> anyhow::Result<Gpu> {
    let device = Device::open(args.device)?;
    libs::require_nvrtc()?;
    libs::require_cublas()?;
    let lib = KernelLibrary::new(&device);
    Ok(Gpu { device, lib })
}

/// This executable's hidden worker command, for MPS client processes.
pub fn worker_command() -> Option<WorkerCommand> {
    std::env::current_exe().ok().map(|program| WorkerCommand { program, args: vec!["__probe-worker".into()] })
}

/// The simulator's one-stream switch factors: estimated from the runs of `datasets` where
/// given (later ones win), else the switch profile measured beside `solo`; printed.
pub fn take_switch_factors(
    solo: &mut coloc_harness::solo::SoloProfiles,
    datasets: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    if !datasets.is_empty() {
        solo.switch = switch_factors(datasets)?;
    } else if !solo.switch.is_empty() {
        let listed: Vec<String> = solo.switch.iter().map(|(m, b, f)| format!("{m} b{b} x{f:.3}")).collect();
        eprintln!("one-stream batches after another model's (the switch profile): {}", listed.join(", "));
    }
    Ok(())
}

/// The one-stream switch factors measured in `datasets` (later ones win), printed.
fn switch_factors(datasets: &[std::path::PathBuf]) -> anyhow::Result<coloc_harness::solo::SwitchFactors> {
    let mut all = coloc_harness::solo::SwitchFactors::default();
    for dir in datasets {
        let found = coloc_schedulers::switch::from_dataset(dir)
            .with_context(|| format!("one-stream switch factors from {}", dir.display()))?;
        if found.is_empty() {
            eprintln!(
                "warning: {} gives no one-stream switch factor (no one-stream run of several models with {} batches after another's, outside the state change of docs/h200.md)",
                dir.display(),
                coloc_schedulers::switch::MIN_SWITCHED
            );
        }
        for (model, batch, factor) in found.iter() {
            all.insert(model, batch, factor);
        }
    }
    if !all.is_empty() {
        let listed: Vec<String> = all.iter().map(|(m, b, f)| format!("{m} b{b} x{f:.3}")).collect();
        eprintln!("one-stream batches after another model's: {}", listed.join(", "));
    }
    Ok(all)
}

pub fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).context("serialising")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}
