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
    // An interrupted run must not leave an MPS daemon behind.
    let _ = ctrlc::set_handler(|| {
        coloc_kernels::partition::mps::stop_all();
        eprintln!("interrupted");
        std::process::exit(130);
    });
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
