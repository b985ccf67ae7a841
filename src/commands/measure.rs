//! `coloc measure SUITE --out DIR`

use std::process::ExitCode;
use std::time::Duration;

use coloc_harness::dataset::ProgressLine;
use coloc_harness::measure::{self, MeasureOptions, Progress, ToolInfo};
use coloc_harness::validity::Status;
use coloc_kernels::partition::probe::WorkerCommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::open_gpu;
use crate::cli::MeasureArgs;

struct Bar {
    bar: ProgressBar,
}

impl Progress for Bar {
    fn phase(&self, message: &str) {
        self.bar.println(message);
    }

    fn runs(&self, total: usize, done: usize, estimated_s: f64) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, ETA {eta} {msg}")
                .expect("a valid template"),
        );
        self.bar.println(format!("{} runs to go, about {:.1} min", total - done, estimated_s / 60.0));
        self.bar.enable_steady_tick(Duration::from_millis(500));
    }

    fn run_done(&self, line: &ProgressLine) {
        self.bar.inc(1);
        let why = line.verdict.reasons.first().map(|r| format!(": {r}")).unwrap_or_default();
        if line.verdict.status != Status::Valid {
            self.bar.println(format!("{} {} r{}{why}", line.verdict.status.word(), line.scenario, line.rep));
        }
        self.bar.set_message(line.scenario.clone());
    }
}

pub fn run(args: &MeasureArgs) -> anyhow::Result<ExitCode> {
    let gpu = open_gpu(&args.gpu)?;
    let opts = MeasureOptions {
        suite: args.suite.clone(),
        out: args.out.clone(),
        resume: args.resume,
        only: args.only.clone(),
        ncu: args.ncu,
        worker: std::env::current_exe()
            .ok()
            .map(|program| WorkerCommand { program, args: vec!["__run-worker".into()] }),
        tool: ToolInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: env!("COLOC_GIT_COMMIT").into(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        },
    };
    let bar = Bar { bar: ProgressBar::new(0) };
    let lines = measure::measure(&gpu.device, &gpu.lib, &opts, &bar)?;
    bar.bar.finish_and_clear();
    let count = |s: Status| lines.iter().filter(|l| l.verdict.status == s).count();
    println!(
        "{} runs: {} VALID, {} INVALID, {} FAILED; dataset, manifest and summary.txt in {}",
        lines.len(),
        count(Status::Valid),
        count(Status::Invalid),
        count(Status::Failed),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
