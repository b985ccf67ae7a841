//! Tenants, aggressors, solo profiles and the device's ceilings in processes of their own: MPS clients (under a
//! private MPS daemon) or plain processes (the driver time-slices their contexts). coloc runs
//! itself as each client (hidden command `__run-worker`) and talks to it over its standard
//! streams, one line per message:
//!
//! | from   | message                  | meaning                                            |
//! |--------|--------------------------|----------------------------------------------------|
//! | parent | a [`WorkerRequest`] JSON | the job, and the file to write its result to       |
//! | client | `ready <sms>`            | prepared (graphs captured, clock calibrated)       |
//! | parent | `go <host ns>`           | start at this CLOCK_MONOTONIC time                 |
//! | client | `reached`                | a closed loop has completed its minimum of queries |
//! | parent | `stop`                   | every closed loop of the run has                   |
//! | client | `done`                   | the result file is written                         |
//!
//! Each client maps its own GPU stamps onto the host clock (calibrations before and after its
//! run), so every row it returns is already on the run's one clock.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use coloc_kernels::gpu::{Device, ExecContext, KernelLibrary};
use coloc_kernels::partition::mps::MpsDaemon;
use coloc_kernels::partition::probe::{WorkerCommand, exec_affinity_sms};
use coloc_workloads::scenario::{PartitionKind, Scenario};
use serde::{Deserialize, Serialize};

use crate::aggressor::{AggressorPlan, AggressorRunner};
use crate::clock::{CALIBRATION_PINGS, calibrate, mono_ns};
use crate::control::Quorum;
use crate::error::{Error, Result};
use crate::plan::Plans;
use crate::record::TenantOutput;
use crate::run::{Outputs, RunEnv};
use crate::sampler::sample_until;
use crate::solo::{SoloProfiles, SoloTarget};
use crate::tenant::{Arrivals, TenantPlan, TenantRunner};

/// A job for one client process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WorkerJob {
    Tenant(TenantPlan),
    Aggressor(AggressorPlan),
    /// Solo profiles of these targets, alone in this client.
    Solo {
        targets: Vec<SoloTarget>,
        ceilings: Box<coloc_kernels::ceilings::Ceilings>,
    },
    /// The device's ceilings, measured where they cannot change the measuring process: a
    /// process that measured them replays the library kernels of its models 6-9% slower until
    /// it exits (`docs/h200.md`, "The reference's two speeds").
    Ceilings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerRequest {
    pub job: WorkerJob,
    pub output: PathBuf,
}

/// How clients are started: MPS clients of a daemon (with their active-thread percentages), or
/// plain processes.
pub enum Clients<'a> {
    Mps(&'a MpsDaemon),
    Plain,
}

impl Clients<'_> {
    fn command(&self, worker: &WorkerCommand, percent: Option<u32>) -> Command {
        match self {
            Clients::Mps(d) => d.client_command(worker, percent),
            Clients::Plain => coloc_kernels::partition::mps::child_command(worker),
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Clients::Mps(d) => format!("; MPS daemon log: {}", d.log_tail()),
            Clients::Plain => String::new(),
        }
    }
}

/// What the clients print: (client index, line).
type Lines = mpsc::Receiver<(usize, String)>;

/// One started client.
struct Client {
    name: String,
    child: Child,
    stdin: ChildStdin,
    output: PathBuf,
}

/// Starts one client per job and sends each its job; lines the clients print arrive on the
/// returned channel as (client index, line).
fn start(
    clients: &Clients,
    worker: &WorkerCommand,
    jobs: Vec<(String, Option<u32>, WorkerJob)>,
    dir: &std::path::Path,
) -> Result<(Vec<Client>, Lines)> {
    let (tx, rx) = mpsc::channel();
    let mut started = Vec::new();
    for (i, (name, percent, job)) in jobs.into_iter().enumerate() {
        let output = dir.join(format!("{i}.json"));
        let mut child = clients
            .command(worker, percent)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::invalid(&name, format!("could not start a client process: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let request = serde_json::to_string(&WorkerRequest { job, output: output.clone() }).expect("a job serialises");
        writeln!(stdin, "{request}").map_err(|e| Error::invalid(&name, format!("could not send the job: {e}")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((i, line)).is_err() {
                    break;
                }
            }
            let _ = tx.send((i, "exited".into()));
        });
        started.push(Client { name, child, stdin, output });
    }
    Ok((started, rx))
}

fn failure(c: &mut Client, clients: &Clients, what: &str) -> Error {
    let _ = c.child.kill();
    let _ = c.child.wait();
    let mut err = String::new();
    if let Some(mut e) = c.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let last = err.lines().last().unwrap_or("no message").trim().to_string();
    Error::invalid(&c.name, format!("client process {what}: {last}{}", clients.log_tail()))
}

/// Waits for `want` from every client (in any order); a client that says anything else, or
/// exits, fails the run.
fn await_all(started: &mut [Client], rx: &Lines, clients: &Clients, want: &str) -> Result<Vec<String>> {
    let mut answers: Vec<Option<String>> = vec![None; started.len()];
    while answers.iter().any(Option::is_none) {
        if crate::control::interrupted() {
            return Err(Error::Interrupted);
        }
        let Ok((i, line)) = rx.recv_timeout(std::time::Duration::from_millis(200)) else { continue };
        match line.strip_prefix(want) {
            Some(rest) => answers[i] = Some(rest.trim().to_string()),
            None => return Err(failure(&mut started[i], clients, &format!("said {line:?} instead of `{want}`"))),
        }
    }
    Ok(answers.into_iter().map(|a| a.expect("all answered")).collect())
}

/// Runs a scenario's tenants and aggressors, one client each.
pub fn run(env: &RunEnv, scenario: &Scenario, plans: Plans) -> Result<Outputs> {
    let worker =
        env.worker.ok_or_else(|| Error::invalid(&scenario.name, "needs coloc's own executable for its clients"))?;
    let daemon = match scenario.partition {
        PartitionKind::Mps => Some(MpsDaemon::start()?),
        _ => None,
    };
    let clients = match &daemon {
        Some(d) => Clients::Mps(d),
        None => Clients::Plain,
    };
    let dir = std::env::temp_dir().join(format!("coloc-run-{}-{}", std::process::id(), mono_ns()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result = run_clients(env, scenario, plans, worker, &clients, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let stopped = daemon.map(|mut d| d.stop());
    let out = result?;
    if let Some(stopped) = stopped {
        stopped?;
    }
    Ok(out)
}

fn run_clients(
    env: &RunEnv,
    scenario: &Scenario,
    plans: Plans,
    worker: &WorkerCommand,
    clients: &Clients,
    dir: &std::path::Path,
) -> Result<Outputs> {
    let shares = scenario.shares();
    let closed = plans.tenants.iter().filter(|p| matches!(p.arrivals, Arrivals::Closed { .. })).count();
    let tenants = plans.tenants.len();
    let jobs: Vec<(String, Option<u32>, WorkerJob)> = plans
        .tenants
        .into_iter()
        .map(|p| (p.name.clone(), WorkerJob::Tenant(p)))
        .chain(plans.aggressors.into_iter().map(|a| (a.name.clone(), WorkerJob::Aggressor(a))))
        .zip(&shares)
        .map(|((name, job), (_, share))| (name, share.mps_percent, job))
        .collect();
    let (mut started, rx) = start(clients, worker, jobs, dir)?;
    await_all(&mut started, &rx, clients, "ready")?;
    let run_start = mono_ns() + 100_000_000;
    for c in started.iter_mut() {
        writeln!(c.stdin, "go {run_start}").map_err(|e| Error::invalid(&c.name, e.to_string()))?;
    }
    let window = run_start + (scenario.warmup_s * 1e9) as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let samples = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample_until(env.nvml, window, &stop));
        let result = follow(&mut started, &rx, clients, closed);
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().expect("sampler thread");
        result.map(|_| samples)
    })?;
    let mut outs = Vec::new();
    for c in started.iter_mut() {
        let _ = c.child.wait();
        let text = std::fs::read_to_string(&c.output).map_err(|_| failure(c, clients, "wrote no results"))?;
        let out: TenantOutput =
            serde_json::from_str(&text).map_err(|e| Error::invalid(&c.name, format!("bad results: {e}")))?;
        outs.push(out);
    }
    let aggressors = outs.split_off(tenants);
    Ok(Outputs { tenants: outs, aggressors, samples, notes: Vec::new() })
}

/// Relays the closed loops' quorum and waits until every client is done.
fn follow(started: &mut [Client], rx: &Lines, clients: &Clients, closed: usize) -> Result<()> {
    let mut reached = 0;
    let mut done = vec![false; started.len()];
    while !done.iter().all(|d| *d) {
        if crate::control::interrupted() {
            return Err(Error::Interrupted);
        }
        let Ok((i, line)) = rx.recv_timeout(std::time::Duration::from_millis(200)) else { continue };
        match line.as_str() {
            "reached" => {
                reached += 1;
                if reached == closed {
                    for c in started.iter_mut() {
                        let _ = writeln!(c.stdin, "stop");
                    }
                }
            }
            "done" => done[i] = true,
            "exited" if done[i] => {}
            other => return Err(failure(&mut started[i], clients, &format!("said {other:?}"))),
        }
    }
    Ok(())
}

/// Solo profiles in one client (an MPS client at `percent`): the SMs it was granted, and the
/// profiles.
pub fn solo_in_client(
    clients: &Clients,
    worker: &WorkerCommand,
    percent: Option<u32>,
    targets: Vec<SoloTarget>,
    ceilings: &coloc_kernels::ceilings::Ceilings,
) -> Result<SoloProfiles> {
    let job = WorkerJob::Solo { targets, ceilings: Box::new(ceilings.clone()) };
    one_job(clients, worker, percent, ("solo profile", "profiles"), job)
}

/// The device's ceilings, measured in a plain process of their own (see [`WorkerJob::Ceilings`]).
pub fn ceilings_in_client(worker: &WorkerCommand) -> Result<coloc_kernels::ceilings::Ceilings> {
    one_job(&Clients::Plain, worker, None, ("ceilings", "ceilings"), WorkerJob::Ceilings)
}

/// Runs `job` in one client and reads back what it wrote: (who it is, what it writes).
fn one_job<T: serde::de::DeserializeOwned>(
    clients: &Clients,
    worker: &WorkerCommand,
    percent: Option<u32>,
    (who, what): (&str, &str),
    job: WorkerJob,
) -> Result<T> {
    let dir =
        std::env::temp_dir().join(format!("coloc-{}-{}-{}", who.replace(' ', "-"), std::process::id(), mono_ns()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result = (|| {
        let (mut started, rx) = start(clients, worker, vec![(who.into(), percent, job)], &dir)?;
        await_all(&mut started, &rx, clients, "done")?;
        let c = &mut started[0];
        let _ = c.child.wait();
        let text = std::fs::read_to_string(&c.output).map_err(|_| failure(c, clients, &format!("wrote no {what}")))?;
        serde_json::from_str(&text).map_err(|e| Error::invalid(format!("{who} client"), format!("bad {what}: {e}")))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A quorum relayed through the parent: `reached` goes out on stdout, `stop` comes back.
struct RelayedQuorum {
    stop: Arc<AtomicBool>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Quorum for RelayedQuorum {
    fn reached(&self, _tenant: u16) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "reached").and_then(|_| out.flush());
    }
    fn reached_by_all(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn say(out: &mut dyn Write, line: &str) -> Result<()> {
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| Error::invalid("worker", e.to_string()))
}

/// The body of a client process (`coloc __run-worker`), as the module's protocol says.
pub fn worker_main(input: Box<dyn BufRead + Send>, output: Box<dyn Write + Send>) -> Result<()> {
    let mut input = input;
    let mut output = output;
    let mut line = String::new();
    input.read_line(&mut line).map_err(|e| Error::invalid("worker", e.to_string()))?;
    let request: WorkerRequest =
        serde_json::from_str(&line).map_err(|e| Error::invalid("worker", format!("bad job: {e}")))?;
    let device = Device::open(0)?;
    let lib = KernelLibrary::new(&device);
    let ctx = ExecContext::primary(&device);
    let sms = exec_affinity_sms(&ctx).unwrap_or(device.info().sm_count);
    if let WorkerJob::Solo { targets, ceilings } = &request.job {
        let mut all = SoloProfiles::default();
        for t in targets {
            all.extend(crate::solo::profile(&lib, &ctx, sms, ceilings, t)?);
        }
        write_result(&request.output, &all)?;
        return say(&mut *output, "done");
    }
    if let WorkerJob::Ceilings = &request.job {
        write_result(&request.output, &coloc_kernels::ceilings::measure(&lib, &ctx, false)?)?;
        return say(&mut *output, "done");
    }
    let stream = Arc::new(ctx.new_stream(0)?);
    enum Runner {
        T(Box<TenantRunner>),
        A(Box<AggressorRunner>),
    }
    let mut runner = match request.job.clone() {
        WorkerJob::Tenant(p) => Runner::T(Box::new(TenantRunner::prepare(&lib, stream.clone(), p, sms)?)),
        WorkerJob::Aggressor(p) => Runner::A(Box::new(AggressorRunner::prepare(&lib, stream.clone(), p, sms)?)),
        WorkerJob::Solo { .. } | WorkerJob::Ceilings => unreachable!("handled above"),
    };
    let before = calibrate(&lib, &stream, CALIBRATION_PINGS)?;
    say(&mut *output, &format!("ready {sms}"))?;
    line.clear();
    input.read_line(&mut line).map_err(|e| Error::invalid("worker", e.to_string()))?;
    let run_start: i64 = line
        .trim()
        .strip_prefix("go ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::invalid("worker", format!("expected `go <ns>`, got {line:?}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        for l in input.lines() {
            match l.as_deref() {
                Ok("stop") => flag.store(true, Ordering::Relaxed),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let quorum = RelayedQuorum { stop, out: Mutex::new(output) };
    let out = match &mut runner {
        Runner::T(r) => {
            let window = run_start + r.plan().warmup_ns;
            // a client process runs its own loop: Clockwork is for time-sliced runs in one process
            let raw = r.run(run_start, &quorum, None)?;
            let after = calibrate(&lib, &stream, CALIBRATION_PINGS)?;
            raw.into_output(&before.through(&after), window, sms)
        }
        Runner::A(r) => {
            let window = run_start + r.plan().warmup_ns;
            let raw = r.run(run_start)?;
            let after = calibrate(&lib, &stream, CALIBRATION_PINGS)?;
            raw.into_output(&before.through(&after), window, sms)
        }
    };
    write_result(&request.output, &out)?;
    let mut output = quorum.out.into_inner().unwrap_or_else(|p| p.into_inner());
    say(&mut *output, "done")
}

/// Writes a client's result where the parent reads it, complete or not at all.
fn write_result<T: Serialize>(path: &std::path::Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(value).expect("results serialise")).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
