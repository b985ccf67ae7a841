//! `coloc`: measure GPU interference between co-located inference workloads.

mod cli;
mod commands;
mod table;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`coloc kernels list | head`), as Unix tools do.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    // Ctrl-C: a measurement drops the run in flight and stops, so that `--resume` measures it
    // again; anything else (or a second Ctrl-C) ends at once. No MPS daemon is left behind.
    let _ = ctrlc::set_handler(|| match coloc_harness::control::interrupt() {
        coloc_harness::control::OnInterrupt::Wait => {
            eprintln!("interrupted: stopping after dropping the run in flight (Ctrl-C again to quit at once)");
        }
        coloc_harness::control::OnInterrupt::Exit => {
            coloc_kernels::partition::mps::stop_all();
            eprintln!("interrupted");
            std::process::exit(130);
        }
    });
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
