//! One repetition of one scenario: plans built before timing (schedules from the schedule
//! seed, rates scaled from solo capacity, SLOs from solo latency), the partition set up, every
//! tenant and aggressor prepared (graphs captured), then all started together on one clock.
//! Time-sliced, multi-stream and green-context runs are threads of this process; MPS runs are
//! one client process per tenant and aggressor.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use coloc_kernels::gpu::{Device, ExecContext, KernelLibrary, Stream};
use coloc_kernels::instance::splitmix64;
use coloc_kernels::nvml::NvmlDevice;
use coloc_kernels::partition::SmSplit;
use coloc_kernels::partition::mps::MpsDaemon;
use coloc_kernels::partition::probe::WorkerCommand;
use coloc_workloads::arrival::Schedule;
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::{AggressorWork, DeviceLimits, PartitionKind, Scenario, Share, Slo};
use serde::{Deserialize, Serialize};

use crate::aggressor::{AggressorLoad, AggressorPlan, AggressorRunner};
use crate::clock::{CALIBRATION_PINGS, ClockMap, calibrate, mono_ns};
use crate::error::{Error, Result};
use crate::record::TenantOutput;
use crate::sampler::{DeviceSampleRow, sample_until};
use crate::solo::SoloProfiles;
use crate::tenant::{Arrivals, TenantPlan, TenantRunner};

/// Kernel records are kept for batches sent in this many windows of `SAMPLE_WINDOW_NS`, spread
/// evenly over the measured window (the same windows for every tenant of a run).
pub const SAMPLE_WINDOWS: usize = 8;
pub const SAMPLE_WINDOW_NS: i64 = 10_000_000;

/// The sampling windows of a run, ns from its start.
pub fn sample_windows(warmup_s: f64, duration_s: f64) -> Vec<(i64, i64)> {
    let (w, d) = ((warmup_s * 1e9) as i64, (duration_s * 1e9) as i64);
    (0..SAMPLE_WINDOWS as i64)
        .map(|k| {
            let mid = w + d * (2 * k + 1) / (2 * SAMPLE_WINDOWS as i64);
            (mid - SAMPLE_WINDOW_NS / 2, mid + SAMPLE_WINDOW_NS / 2)
        })
        .collect()
}

pub struct RunEnv<'a> {
    pub lib: &'a Arc<KernelLibrary>,
    pub limits: &'a DeviceLimits,
    pub solo: &'a SoloProfiles,
    pub base_dir: &'a Path,
    pub worker: Option<&'a WorkerCommand>,
    pub nvml: Option<&'a NvmlDevice>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantInfo {
    pub index: u16,
    pub name: String,
    pub model: String,
    pub batching: String,
    pub max_batch: usize,
    pub arrival: String,
    /// Mean offered rate, requests per second (None for closed loops).
    pub rate_rps: Option<f64>,
    pub load: Option<f64>,
    pub slo_ms: f64,
    pub solo_latency_ms: f64,
    pub priority: Option<i32>,
    pub sms: Option<u32>,
    pub mps_percent: Option<u32>,
    pub granted_sms: u32,
    pub scheduled_requests: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AggressorInfo {
    pub index: u16,
    pub name: String,
    pub work: String,
    pub start_s: f64,
    pub stop_s: f64,
    pub priority: Option<i32>,
    pub sms: Option<u32>,
    pub mps_percent: Option<u32>,
    pub granted_sms: u32,
}

/// Everything one repetition produced.
pub struct RunData {
    pub tenants: Vec<TenantInfo>,
    pub aggressors: Vec<AggressorInfo>,
    pub records: TenantOutput,
    pub samples: Vec<DeviceSampleRow>,
    pub clock_uncertainty_ns: i64,
}

fn model_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Plans (and descriptions) of a scenario's tenants and aggressors.
pub struct Plans {
    pub tenants: Vec<TenantPlan>,
    pub tenant_infos: Vec<TenantInfo>,
    pub aggressors: Vec<AggressorPlan>,
    pub aggressor_infos: Vec<AggressorInfo>,
}

/// Plans for every tenant and aggressor of `scenario`.
pub fn plan(env: &RunEnv, scenario: &Scenario) -> Result<Plans> {
    let ctx = format!("scenario `{}`", scenario.name);
    let warmup_ns = (scenario.warmup_s * 1e9) as i64;
    let total_s = scenario.warmup_s + scenario.duration_s;
    let mut plans = Vec::new();
    let mut infos = Vec::new();
    for (i, t) in scenario.tenants.iter().enumerate() {
        let tctx = format!("{ctx}, tenant `{}`", t.name);
        let (spec, _) = ModelSpec::resolve(&t.model, env.base_dir)?;
        let max_batch = t.batching.max_batch();
        let solo = env
            .solo
            .find(&spec.name, max_batch)
            .ok_or_else(|| Error::invalid(&tctx, format!("no solo profile of {} at batch {max_batch}", spec.name)))?;
        let solo_ms = solo.latency_us.median / 1e3;
        let arrival = match t.load {
            Some(load) => t.arrival.with_rate(load * solo.capacity_rps, &tctx)?,
            None => t.arrival.clone(),
        };
        let rate = arrival.nominal_rate();
        let warm_queries = rate.map_or(0, |r| (r * scenario.warmup_s).ceil() as usize);
        let seed = splitmix64(scenario.seeds.schedule ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let schedule = arrival.schedule(total_s, scenario.min_queries + warm_queries + 1, seed, env.base_dir, &tctx)?;
        let slo_ms = match t.slo {
            Slo::Ms(ms) => ms,
            Slo::SoloFactor(f) => f * solo_ms,
        };
        let (arrivals, scheduled, span_ns) = match schedule {
            Schedule::Open { arrivals_ns } => {
                let span = arrivals_ns.last().copied().unwrap_or(0) as i64;
                let n = arrivals_ns.len();
                (Arrivals::Open(arrivals_ns.into_iter().map(|a| a as i64).collect()), n, span)
            }
            Schedule::Closed { think_ns, .. } => {
                let stop = (total_s * 1e9) as i64;
                let n = think_ns.iter().map(|c| c.len()).sum();
                (Arrivals::Closed { think_ns, stop_ns: stop }, n, stop)
            }
        };
        let drain_ns = ((20.0 * slo_ms).clamp(1_000.0, 10_000.0) * 1e6) as i64;
        plans.push(TenantPlan {
            index: i as u16,
            name: t.name.clone(),
            model: spec.clone(),
            seq: t.seq,
            context: t.context,
            batching: t.batching.clone(),
            arrivals,
            warmup_ns,
            deadline_ns: span_ns.max((total_s * 1e9) as i64) + drain_ns,
            sample_windows: sample_windows(scenario.warmup_s, scenario.duration_s),
            weight_seed: model_seed(&spec.name),
            input_seed: splitmix64(scenario.seeds.inputs ^ (i as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03)),
        });
        infos.push(TenantInfo {
            index: i as u16,
            name: t.name.clone(),
            model: spec.name.clone(),
            batching: t.batching.describe(),
            max_batch,
            arrival: arrival_kind(&arrival),
            rate_rps: rate,
            load: t.load,
            slo_ms,
            solo_latency_ms: solo_ms,
            priority: t.share.priority,
            sms: t.share.sms,
            mps_percent: t.share.mps_percent,
            granted_sms: 0,
            scheduled_requests: scheduled,
        });
    }
    let mut aplans = Vec::new();
    let mut ainfos = Vec::new();
    for (i, a) in scenario.aggressors.iter().enumerate() {
        let (load, work) = match &a.work {
            AggressorWork::Stressor { stressor, intensity } => {
                let s = stressor.stressor(*intensity, env.limits.sm_count, env.limits.l2_bytes);
                (AggressorLoad::Stressor(s), format!("{stressor:?} x{intensity}").to_lowercase())
            }
            AggressorWork::Model { model, batch } => {
                let (spec, _) = ModelSpec::resolve(model, env.base_dir)?;
                (AggressorLoad::Model { model: spec, batch: *batch }, format!("{model} b{batch}"))
            }
        };
        aplans.push(AggressorPlan {
            index: i as u16,
            name: a.name.clone(),
            load,
            start_ns: warmup_ns + (a.start_s * 1e9) as i64,
            stop_ns: warmup_ns + (a.stop_s * 1e9) as i64,
            warmup_ns,
        });
        ainfos.push(AggressorInfo {
            index: i as u16,
            name: a.name.clone(),
            work,
            start_s: a.start_s,
            stop_s: a.stop_s,
            priority: a.share.priority,
            sms: a.share.sms,
            mps_percent: a.share.mps_percent,
            granted_sms: 0,
        });
    }
    Ok(Plans { tenants: plans, tenant_infos: infos, aggressors: aplans, aggressor_infos: ainfos })
}

fn arrival_kind(a: &coloc_workloads::arrival::ArrivalProcess) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from))
        .unwrap_or_default()
}

/// Runs one repetition.
pub fn run(env: &RunEnv, scenario: &Scenario) -> Result<RunData> {
    let Plans { tenants: plans, tenant_infos: mut infos, aggressors: aplans, aggressor_infos: mut ainfos } =
        plan(env, scenario)?;
    let window_offset = (scenario.warmup_s * 1e9) as i64;
    let (outputs, aggressor_outputs, samples, clock) = match scenario.partition {
        PartitionKind::Mps => run_mps(env, scenario, &plans, &aplans, window_offset)?,
        _ => run_in_process(env, scenario, plans, aplans, window_offset)?,
    };
    let mut records = TenantOutput::default();
    for (info, out) in infos.iter_mut().zip(outputs) {
        info.granted_sms = out.granted_sms;
        records.append(out);
    }
    for (info, out) in ainfos.iter_mut().zip(aggressor_outputs) {
        info.granted_sms = out.granted_sms;
        records.append(out);
    }
    Ok(RunData { tenants: infos, aggressors: ainfos, records, samples, clock_uncertainty_ns: clock.uncertainty_ns })
}

type Outputs = (Vec<TenantOutput>, Vec<TenantOutput>, Vec<DeviceSampleRow>, ClockMap);

/// Streams (and SM counts) for tenants then aggressors under the scenario's partition.
fn streams_for(device: &Arc<Device>, scenario: &Scenario) -> Result<Vec<(Arc<Stream>, u32)>> {
    let primary = ExecContext::primary(device);
    let shares: Vec<(&str, Share)> = scenario.shares();
    let all = device.info().sm_count;
    Ok(match scenario.partition {
        PartitionKind::TimeSliced => {
            let s = Arc::new(primary.new_stream(0)?);
            shares.iter().map(|_| (s.clone(), all)).collect()
        }
        PartitionKind::Streams => {
            let least = device.info().stream_priority_range.1;
            shares
                .iter()
                .map(|(_, sh)| Ok((Arc::new(primary.new_stream(sh.priority.unwrap_or(least))?), all)))
                .collect::<Result<_>>()?
        }
        PartitionKind::Green => {
            let split = SmSplit::new(device, None)?;
            let requests: Vec<(&str, u32)> = shares.iter().map(|(n, sh)| (*n, sh.sms.unwrap_or(0))).collect();
            split
                .partition(&requests)?
                .into_iter()
                .map(|p| Ok((Arc::new(p.context.new_stream(0)?), p.granted_sms)))
                .collect::<Result<_>>()?
        }
        PartitionKind::Mps => unreachable!("MPS runs in client processes"),
    })
}

fn run_in_process(
    env: &RunEnv,
    scenario: &Scenario,
    plans: Vec<TenantPlan>,
    aplans: Vec<AggressorPlan>,
    window_offset: i64,
) -> Result<Outputs> {
    let device = env.lib.device().clone();
    let streams = streams_for(&device, scenario)?;
    let mut runners = Vec::new();
    for (plan, (stream, sms)) in plans.into_iter().zip(&streams) {
        runners.push(TenantRunner::prepare(env.lib, stream.clone(), plan, *sms)?);
    }
    let mut aggressors = Vec::new();
    for (plan, (stream, sms)) in aplans.into_iter().zip(&streams[runners.len()..]) {
        aggressors.push(AggressorRunner::prepare(env.lib, stream.clone(), plan, *sms)?);
    }
    let clock = calibrate(env.lib, &streams[0].0, CALIBRATION_PINGS)?;
    let run_start = mono_ns() + 50_000_000;
    let stop = Arc::new(AtomicBool::new(false));
    let (touts, aouts, samples) = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample_until(env.nvml, run_start + window_offset, &stop));
        let t: Vec<_> = runners.iter_mut().map(|r| s.spawn(|| r.run(run_start, &clock))).collect();
        let a: Vec<_> = aggressors.iter_mut().map(|r| s.spawn(|| r.run(run_start, &clock))).collect();
        let touts: Vec<Result<TenantOutput>> = t.into_iter().map(|h| h.join().expect("tenant thread")).collect();
        let aouts: Vec<Result<TenantOutput>> = a.into_iter().map(|h| h.join().expect("aggressor thread")).collect();
        stop.store(true, Ordering::Relaxed);
        (touts, aouts, sampler.join().expect("sampler thread"))
    });
    Ok((touts.into_iter().collect::<Result<_>>()?, aouts.into_iter().collect::<Result<_>>()?, samples, clock))
}

/// A job for one MPS client process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WorkerJob {
    Tenant(TenantPlan),
    Aggressor(AggressorPlan),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerRequest {
    pub job: WorkerJob,
    pub output: PathBuf,
}

struct Client {
    name: String,
    child: Child,
    output: PathBuf,
    reader: BufReader<std::process::ChildStdout>,
}

fn run_mps(
    env: &RunEnv,
    scenario: &Scenario,
    plans: &[TenantPlan],
    aplans: &[AggressorPlan],
    window_offset: i64,
) -> Result<Outputs> {
    let worker = env.worker.ok_or_else(|| Error::invalid(&scenario.name, "MPS runs need a worker command"))?;
    let mut daemon = MpsDaemon::start()?;
    let dir = std::env::temp_dir().join(format!("coloc-run-{}-{}", std::process::id(), mono_ns()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result = (|| {
        let shares = scenario.shares();
        let jobs: Vec<(String, WorkerJob)> = plans
            .iter()
            .map(|p| (p.name.clone(), WorkerJob::Tenant(p.clone())))
            .chain(aplans.iter().map(|a| (a.name.clone(), WorkerJob::Aggressor(a.clone()))))
            .collect();
        let mut clients = Vec::new();
        for ((name, job), (_, share)) in jobs.into_iter().zip(&shares) {
            let output = dir.join(format!("{}.json", clients.len()));
            let mut child = daemon
                .client_command(worker, share.mps_percent)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| Error::invalid(&name, format!("could not start an MPS client: {e}")))?;
            let request =
                serde_json::to_string(&WorkerRequest { job, output: output.clone() }).expect("job serialises");
            let mut stdin = child.stdin.take().expect("piped stdin");
            writeln!(stdin, "{request}").map_err(|e| Error::invalid(&name, format!("could not send the job: {e}")))?;
            child.stdin = Some(stdin);
            let reader = BufReader::new(child.stdout.take().expect("piped stdout"));
            clients.push(Client { name, child, output, reader });
        }
        for c in clients.iter_mut() {
            let mut line = String::new();
            c.reader.read_line(&mut line).map_err(|e| Error::invalid(&c.name, e.to_string()))?;
            match line.trim().strip_prefix("ready ") {
                Some(_) => {}
                None => return Err(client_failure(c, &daemon, "did not get ready")),
            }
        }
        let run_start = mono_ns() + 100_000_000;
        for c in clients.iter_mut() {
            let stdin = c.child.stdin.as_mut().expect("piped stdin");
            writeln!(stdin, "go {run_start}").map_err(|e| Error::invalid(&c.name, e.to_string()))?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let samples = std::thread::scope(|s| {
            let sampler = s.spawn(|| sample_until(env.nvml, run_start + window_offset, &stop));
            for c in clients.iter_mut() {
                let _ = c.child.wait();
            }
            stop.store(true, Ordering::Relaxed);
            sampler.join().expect("sampler thread")
        });
        let mut outs = Vec::new();
        for c in clients.iter_mut() {
            let text =
                std::fs::read_to_string(&c.output).map_err(|_| client_failure(c, &daemon, "wrote no results"))?;
            let out: TenantOutput =
                serde_json::from_str(&text).map_err(|e| Error::invalid(&c.name, format!("bad results: {e}")))?;
            outs.push(out);
        }
        let clock =
            ClockMap { offset_ns: 0, uncertainty_ns: outs.iter().map(|o| o.clock_uncertainty_ns).max().unwrap_or(0) };
        let aouts = outs.split_off(plans.len());
        Ok((outs, aouts, samples, clock))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let stopped = daemon.stop();
    let out = result?;
    stopped?;
    Ok(out)
}

fn client_failure(c: &mut Client, daemon: &MpsDaemon, what: &str) -> Error {
    let _ = c.child.kill();
    let _ = c.child.wait();
    let mut err = String::new();
    if let Some(mut e) = c.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let last = err.lines().last().unwrap_or("no message").trim().to_string();
    Error::invalid(&c.name, format!("MPS client {what}: {last}; daemon log: {}", daemon.log_tail()))
}

/// The body of an MPS client process (`coloc __run-worker`): reads a [`WorkerRequest`] line,
/// prepares, answers `ready <sms>`, waits for `go <host ns>`, runs, writes its records as JSON
/// to the requested file, answers `done`.
pub fn worker_main(input: &mut dyn BufRead, output: &mut dyn Write) -> Result<()> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(|e| Error::invalid("worker", e.to_string()))?;
    let request: WorkerRequest =
        serde_json::from_str(&line).map_err(|e| Error::invalid("worker", format!("bad job: {e}")))?;
    let device = Device::open(0)?;
    let lib = KernelLibrary::new(&device);
    let ctx = ExecContext::primary(&device);
    let sms = coloc_kernels::partition::probe::exec_affinity_sms(&ctx).unwrap_or(device.info().sm_count);
    let stream = Arc::new(ctx.new_stream(0)?);
    enum Runner {
        T(TenantRunner),
        A(AggressorRunner),
    }
    let mut runner = match request.job {
        WorkerJob::Tenant(p) => Runner::T(TenantRunner::prepare(&lib, stream.clone(), p, sms)?),
        WorkerJob::Aggressor(p) => Runner::A(AggressorRunner::prepare(&lib, stream.clone(), p, sms)?),
    };
    let clock = calibrate(&lib, &stream, CALIBRATION_PINGS)?;
    writeln!(output, "ready {sms}")
        .and_then(|_| output.flush())
        .map_err(|e| Error::invalid("worker", e.to_string()))?;
    line.clear();
    input.read_line(&mut line).map_err(|e| Error::invalid("worker", e.to_string()))?;
    let run_start: i64 = line
        .trim()
        .strip_prefix("go ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::invalid("worker", format!("expected `go <ns>`, got {line:?}")))?;
    let out = match &mut runner {
        Runner::T(r) => r.run(run_start, &clock)?,
        Runner::A(r) => r.run(run_start, &clock)?,
    };
    let tmp = request.output.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&out).expect("records serialise")).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &request.output).map_err(|e| Error::io(&request.output, e))?;
    writeln!(output, "done").map_err(|e| Error::invalid("worker", e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_windows_lie_inside_the_measured_window_and_do_not_overlap() {
        let w = sample_windows(0.5, 4.0);
        assert_eq!(w.len(), SAMPLE_WINDOWS);
        assert!(w[0].0 >= 500_000_000 && w.last().unwrap().1 <= 4_500_000_000);
        assert!(w.windows(2).all(|p| p[0].1 <= p[1].0));
        assert!(w.iter().all(|(a, b)| b - a == SAMPLE_WINDOW_NS));
    }
}
