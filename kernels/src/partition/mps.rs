//! MPS: a control daemon of our own, with a private pipe directory so it never meets another
//! user's daemon, always shut down (on drop, and by [`stop_all`] from a signal handler); one
//! client process per tenant, limited by `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::probe::WorkerCommand;
use crate::error::{Error, Result};

pub const CONTROL_BINARY: &str = "nvidia-cuda-mps-control";
const PIPE_ENV: &str = "CUDA_MPS_PIPE_DIRECTORY";
const LOG_ENV: &str = "CUDA_MPS_LOG_DIRECTORY";
pub const THREAD_PERCENTAGE_ENV: &str = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE";

/// Daemons started by this process and not yet stopped: (control binary, pipe dir, log dir).
static RUNNING: Mutex<Vec<(PathBuf, PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// Finds the MPS control binary on PATH or in the usual driver locations.
pub fn control_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/local/nvidia/bin", "/usr/local/cuda/bin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(CONTROL_BINARY)).find(|p| p.is_file())
}

/// A running MPS control daemon owned by this process.
pub struct MpsDaemon {
    bin: PathBuf,
    root: PathBuf,
    pipe: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl MpsDaemon {
    /// Starts a daemon with private pipe and log directories under the system temp dir, after
    /// quitting any that coloc processes killed outright left behind ([`reap_orphans`]).
    pub fn start() -> Result<MpsDaemon> {
        reap_orphans();
        let bin = control_binary().ok_or_else(|| {
            Error::Mps(format!(
                "{CONTROL_BINARY} not found on PATH, /usr/bin or /usr/local/nvidia/bin; MPS is not available"
            ))
        })?;
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let root = std::env::temp_dir().join(format!("{ROOT_PREFIX}{}-{stamp}", std::process::id()));
        let (pipe, log) = (root.join("pipe"), root.join("log"));
        for d in [&pipe, &log] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let status = Command::new(&bin)
            .arg("-d")
            .env(PIPE_ENV, &pipe)
            .env(LOG_ENV, &log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::Mps(format!("could not run {}: {e}", bin.display())))?;
        if !status.status.success() {
            let _ = std::fs::remove_dir_all(&root);
            return Err(Error::Mps(format!(
                "{CONTROL_BINARY} -d failed ({}): {}",
                status.status,
                String::from_utf8_lossy(&status.stderr).trim()
            )));
        }
        RUNNING.lock().unwrap_or_else(|p| p.into_inner()).push((bin.clone(), pipe.clone(), log.clone()));
        let daemon = MpsDaemon { bin, root, pipe, log, stopped: false };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !daemon.pipe.join("control").exists() {
            if Instant::now() > deadline {
                return Err(Error::Mps(format!(
                    "daemon started but no control pipe appeared; log: {}",
                    daemon.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// Environment for a client process, with an optional active-thread percentage.
    pub fn client_env(&self, active_thread_percentage: Option<u32>) -> Vec<(OsString, OsString)> {
        let mut env = vec![
            (PIPE_ENV.into(), self.pipe.clone().into_os_string()),
            (LOG_ENV.into(), self.log.clone().into_os_string()),
        ];
        if let Some(p) = active_thread_percentage {
            env.push((THREAD_PERCENTAGE_ENV.into(), p.to_string().into()));
        }
        env
    }

    /// A command for a client process of this daemon: its environment, and a parent-death
    /// signal, so that a client never outlives the coloc process that started it (not even one
    /// killed with SIGKILL). The client must be spawned and waited for on one thread: the
    /// signal follows the spawning thread.
    pub fn client_command(&self, worker: &WorkerCommand, active_thread_percentage: Option<u32>) -> Command {
        let mut cmd = child_command(worker);
        cmd.envs(self.client_env(active_thread_percentage));
        cmd
    }

    /// The last lines of the control and server logs, for error messages.
    pub fn log_tail(&self) -> String {
        tail_logs(&self.log)
    }

    /// Sends `quit` and waits for the daemon to go, then removes its directories.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        RUNNING.lock().unwrap_or_else(|p| p.into_inner()).retain(|(_, p, _)| *p != self.pipe);
        let result = quit(&self.bin, &self.pipe, &self.log);
        let _ = std::fs::remove_dir_all(&self.root);
        result
    }
}

impl Drop for MpsDaemon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn quit(bin: &Path, pipe: &Path, log: &Path) -> Result<()> {
    let pid = control_pid(log);
    let mut child = Command::new(bin)
        .env(PIPE_ENV, pipe)
        .env(LOG_ENV, log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Mps(format!("could not run {} to quit the daemon: {e}", bin.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"quit\n");
    }
    let _ = child.wait();
    // The daemon leaves its pipe files behind; it is gone when its process is.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = match pid {
            Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
            None => !std::fs::read_to_string(log.join("control.log")).unwrap_or_default().contains("Exit with status"),
        };
        if !alive {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Mps(format!("daemon did not exit within 10 s of quit; log: {}", tail_logs(log))));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The control daemon's process id, from the first line of its log (`[time Control PID] ...`).
fn control_pid(log: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(log.join("control.log")).ok()?;
    parse_control_pid(&text)
}

fn parse_control_pid(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.contains(" Control "))?;
    let after = line.split(" Control ").nth(1)?;
    after.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn tail_logs(log: &Path) -> String {
    let mut lines = Vec::new();
    for f in ["control.log", "server.log"] {
        if let Ok(text) = std::fs::read_to_string(log.join(f)) {
            lines.extend(text.lines().rev().take(3).map(|l| format!("{f}: {l}")));
        }
    }
    if lines.is_empty() { "(no log)".into() } else { lines.join(" | ") }
}

/// A command for a child process of coloc's own (an MPS client or a plain process) that dies
/// with the thread that spawned it, even if this process is killed with SIGKILL.
pub fn child_command(worker: &WorkerCommand) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&worker.program);
    cmd.args(&worker.args);
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Prefix of the directories daemons live in: `coloc-mps-<pid>-<nanos>` under the temp dir.
const ROOT_PREFIX: &str = "coloc-mps-";

/// The pid in a daemon root's name, if the name is one of ours.
fn root_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(ROOT_PREFIX)?;
    let (pid, stamp) = rest.split_once('-')?;
    if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Quits daemons left running by coloc processes that no longer exist (killed with SIGKILL,
/// which no handler sees), and removes their directories. Returns the directories reaped.
pub fn reap_orphans() -> Vec<PathBuf> {
    let mut reaped = Vec::new();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return reaped };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(owner) = root_owner(&name) else { continue };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue; // its process still runs (and owns the daemon)
        }
        let root = e.path();
        let (pipe, log) = (root.join("pipe"), root.join("log"));
        if pipe.join("control").exists()
            && let Some(bin) = control_binary()
        {
            let _ = quit(&bin, &pipe, &log);
        }
        let _ = std::fs::remove_dir_all(&root);
        reaped.push(root);
    }
    reaped
}

/// Quits every daemon this process started; for signal handlers, before exiting.
pub fn stop_all() {
    let running = std::mem::take(&mut *RUNNING.lock().unwrap_or_else(|p| p.into_inner()));
    for (bin, pipe, log) in running {
        let _ = quit(&bin, &pipe, &log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_daemon_directories_name_an_owner() {
        assert_eq!(root_owner("coloc-mps-4242-1795239709123456789"), Some(4242));
        assert_eq!(root_owner("coloc-mps-4242-"), None);
        assert_eq!(root_owner("coloc-mps-x-17"), None);
        assert_eq!(root_owner("coloc-mps-4242-17a"), None);
        assert_eq!(root_owner("other-4242-17"), None);
    }

    #[test]
    fn a_dead_owners_directory_is_reaped_and_a_live_ones_is_kept() {
        // pid 0 is never a process directory under /proc; ours is alive.
        let tmp = std::env::temp_dir();
        let dead = tmp.join(format!("{ROOT_PREFIX}0-{}", std::process::id()));
        let live = tmp.join(format!("{ROOT_PREFIX}{}-1", std::process::id()));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d.join("log")).unwrap();
        }
        let reaped = reap_orphans();
        assert!(reaped.contains(&dead) && !dead.exists());
        assert!(!reaped.contains(&live) && live.exists());
        std::fs::remove_dir_all(&live).unwrap();
    }

    #[test]
    fn control_pid_is_read_from_the_daemon_log() {
        let log = "[2026-11-21 05:02:46.100 Control   425] Starting control daemon using socket /tmp/x\n\
                   [2026-11-21 05:02:46.853 Control   425] Exit with status 0\n";
        assert_eq!(parse_control_pid(log), Some(425));
        assert_eq!(parse_control_pid("no daemon here"), None);
    }
}
