//! `coloc measure SUITE --out DIR`

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coloc_dataset::manifest::ToolInfo;
use coloc_dataset::rows::{RunRow, Status};
use coloc_harness::measure::{self, MeasureOptions, Progress};
use coloc_kernels::partition::probe::WorkerCommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::open_gpu;
use crate::cli::{MeasureArgs, PredictArgs};

/// Progress on stderr: a bar with ETA on a terminal; otherwise (CI, `nohup`, a pipe) one plain
/// line per phase and per finished run, since a hidden bar would say nothing at all.
struct Bar {
    bar: ProgressBar,
    interactive: bool,
    state: Mutex<RunCount>,
}

#[derive(Default)]
struct RunCount {
    total: usize,
    done: usize,
    /// Runs finished by this process, and when the first of them started.
    finished_here: usize,
    since: Option<Instant>,
    estimated_per_run_s: f64,
}

impl Bar {
    fn new() -> Bar {
        let interactive = std::io::stderr().is_terminal();
        let bar = if interactive { ProgressBar::new(0) } else { ProgressBar::hidden() };
        Bar { bar, interactive, state: Mutex::new(RunCount::default()) }
    }

    fn say(&self, message: &str) {
        if self.interactive { self.bar.println(message) } else { eprintln!("{message}") }
    }
}

impl Progress for Bar {
    fn phase(&self, message: &str) {
        self.say(message);
    }

    fn runs(&self, total: usize, done: usize, estimated_s: f64) {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.total = total;
            st.done = done;
            st.since = Some(Instant::now());
            st.estimated_per_run_s = estimated_s / (total - done).max(1) as f64;
        }
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        self.bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, ETA {eta} {msg}")
                .expect("a valid template"),
        );
        self.say(&format!("{} runs to go, about {:.1} min", total - done, estimated_s / 60.0));
        if self.interactive {
            self.bar.enable_steady_tick(Duration::from_millis(500));
        }
    }

    fn run_done(&self, line: &RunRow) {
        self.bar.inc(1);
        let why = line.reasons.first().map(|r| format!(": {r}")).unwrap_or_default();
        let status = format!("{:?}", line.status).to_uppercase();
        if self.interactive {
            if line.status != Status::Valid {
                self.bar.println(format!("{status} {} r{}{why}", line.scenario, line.rep));
            }
            self.bar.set_message(line.scenario.clone());
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.done += 1;
        st.finished_here += 1;
        let per_run_s =
            st.since.map_or(st.estimated_per_run_s, |t| t.elapsed().as_secs_f64() / st.finished_here as f64);
        let left_s = per_run_s * st.total.saturating_sub(st.done) as f64;
        eprintln!(
            "[{}/{}] {} {} r{} ({:.1} s){why}; ETA {:.0} s",
            st.done, st.total, status, line.scenario, line.rep, line.wall_s, left_s
        );
    }
}

pub fn run(args: &MeasureArgs) -> anyhow::Result<ExitCode> {
    // a predictor that cannot be read is refused before anything is measured
    if let Some(p) = &args.predictor {
        coloc_predictors::saved::SavedPredictor::load(p)?;
    }
    let gpu = open_gpu(&args.gpu)?;
    let opts = MeasureOptions {
        suite: args.suite.clone(),
        out: args.out.clone(),
        resume: args.resume,
        retry_failed: args.retry_failed,
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
    let bar = Bar::new();
    let lines = match measure::measure(&gpu.device, &gpu.lib, &opts, &bar) {
        Err(coloc_harness::Error::Interrupted) => {
            bar.bar.finish_and_clear();
            let done = coloc_dataset::progress::read(&args.out).map(|l| l.len()).unwrap_or(0);
            eprintln!(
                "interrupted: {done} run(s) recorded in {}; the run in flight was dropped. Continue with: coloc measure {} --out {} --resume",
                args.out.display(),
                args.suite.display(),
                args.out.display()
            );
            return Ok(ExitCode::from(130));
        }
        other => other?,
    };
    bar.bar.finish_and_clear();
    let count = |s: Status| lines.iter().filter(|l| l.status == s).count();
    println!(
        "{} runs: {} VALID, {} INVALID, {} FAILED; dataset, manifest and summary.txt in {}",
        lines.len(),
        count(Status::Valid),
        count(Status::Invalid),
        count(Status::Failed),
        args.out.display()
    );
    if let Some(predictor) = &args.predictor {
        println!("\nthe forecast of {} beside this measurement:", predictor.display());
        super::predict::run(&PredictArgs {
            suite: args.suite.clone(),
            predictor: predictor.clone(),
            profiles: Some(args.out.clone()),
            against: Some(args.out.clone()),
            out: Some(args.out.join("forecast")),
            only: args.only.clone(),
            // not from this measurement's runs: the forecast would be told what it forecasts
            // (the switch profile, measured beside the solo profiles, it does use)
            switch_from: Vec::new(),
        })?;
    }
    Ok(ExitCode::SUCCESS)
}
