//! The probe every partition mechanism runs: which SMs does work land on, and how long does
//! a fixed amount of compute-bound work take there. The same code runs in-process (primary
//! and green contexts) and in MPS client processes (as `coloc`'s hidden worker command).

use std::sync::Arc;

use cudarc::driver::sys;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::driver::cu;
use crate::gpu::{Device, DeviceBuffer, ExecContext, KernelArgs, KernelLibrary, LaunchConfig};
use crate::id::{KernelId, KernelSymbol};
use crate::instance::OpInstance;
use crate::ops::{LaunchEnv, Op, StampSlots, Stressor};
use crate::timing::event_times_ms;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeJob {
    pub label: String,
    /// The timed work (a compute-bound stressor, sized for many waves).
    pub work: Stressor,
    pub reps: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeResult {
    pub label: String,
    /// SMs the mechanism says it grants (green context resource, MPS execution affinity,
    /// or the whole device).
    pub driver_sms: u32,
    /// Distinct SMs that blocks of a census kernel actually ran on.
    pub census_sms: u32,
    pub times_ms: Vec<f64>,
    pub median_ms: f64,
}

/// SMs the current context may use under MPS (its execution affinity), if the driver says.
pub fn exec_affinity_sms(ctx: &ExecContext) -> Option<u32> {
    ctx.bind().ok()?;
    let mut p: sys::CUexecAffinityParam = unsafe { std::mem::zeroed() };
    cu!(cuCtxGetExecAffinity(&mut p, sys::CUexecAffinityType::CU_EXEC_AFFINITY_TYPE_SM_COUNT)).ok()?;
    Some(unsafe { p.param.smCount.val })
}

/// Counts the distinct SMs that blocks launched in `ctx` run on.
pub fn sm_census(lib: &KernelLibrary, ctx: &ExecContext) -> Result<u32> {
    let device = ctx.device().clone();
    let stream = ctx.new_stream(0)?;
    let counts = DeviceBuffer::alloc(&device, 4096 * 4, "SM census counters")?;
    crate::gpu::memory::zero_words_async(counts.ptr(), 4096, &stream)?;
    // Four blocks per SM of the whole device, each holding its SM for 200 us: every SM the
    // context may use receives blocks.
    let blocks = device.info().sm_count * 4;
    let mut args = KernelArgs::new().ptr(counts.ptr()).u64(200_000).ptr(0);
    lib.kernel(KernelSymbol::plain(KernelId::SmCensus))?.launch(
        &stream,
        LaunchConfig::new((blocks, 1, 1), (32, 1, 1)),
        &mut args,
    )?;
    stream.synchronize()?;
    let host: Vec<u32> = counts.download(4096)?;
    Ok(host.iter().filter(|c| **c > 0).count() as u32)
}

/// Runs `job` in `ctx`: census, one warm-up, then `reps` timed runs.
pub fn run(lib: &KernelLibrary, ctx: &ExecContext, job: &ProbeJob, driver_sms: u32) -> Result<ProbeResult> {
    let device: Arc<Device> = ctx.device().clone();
    let census_sms = sm_census(lib, ctx)?;
    let stream = ctx.new_stream(0)?;
    let env = LaunchEnv { lib, stream: &stream, libs: None, bracket_library_calls: false };
    let inst = OpInstance::allocate(&device, Op::Stressor(job.work.clone()))?;
    inst.fill(&env, 1)?;
    inst.launch(&env, StampSlots::NONE)?;
    stream.synchronize()?;
    let times_ms = event_times_ms(ctx, &stream, 0, job.reps, || inst.launch(&env, StampSlots::NONE))?;
    let median_ms = crate::stats::median_of(&times_ms);
    Ok(ProbeResult { label: job.label.clone(), driver_sms, census_sms, times_ms, median_ms })
}

/// Entry point of an MPS client process: reads a [`ProbeJob`] as JSON, runs it on the device
/// as this process sees it (limited by MPS), returns a [`ProbeResult`] as JSON.
pub fn worker(job_json: &str) -> Result<String> {
    let job: ProbeJob = serde_json::from_str(job_json).map_err(|e| Error::Mps(format!("bad probe job: {e}")))?;
    let device = Device::open(0)?;
    let lib = KernelLibrary::new(&device);
    let ctx = ExecContext::primary(&device);
    let driver_sms = exec_affinity_sms(&ctx).unwrap_or(device.info().sm_count);
    let result = run(&lib, &ctx, &job, driver_sms)?;
    Ok(serde_json::to_string(&result).expect("probe result serialises"))
}

/// How to start a probe worker process: coloc passes its own executable and hidden command.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
}

/// Runs `job` in a fresh MPS client process of `daemon`, limited to `percentage` of the
/// device's threads (None: no limit).
pub fn run_in_mps_client(
    daemon: &super::MpsDaemon,
    percentage: Option<u32>,
    job: &ProbeJob,
    worker: &WorkerCommand,
) -> Result<ProbeResult> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = daemon
        .client_command(worker, percentage)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Mps(format!("could not start client {}: {e}", worker.program.display())))?;
    let job_json = serde_json::to_string(job).expect("probe job serialises");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(job_json.as_bytes()).map_err(|e| Error::Mps(format!("could not send the job: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Mps(format!("client did not finish: {e}")))?;
    let pct = percentage.map_or("unlimited".to_string(), |p| format!("{p}%"));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").trim().to_string();
        return Err(Error::Mps(format!(
            "client at {pct} failed ({}): {last}; daemon log: {}",
            out.status,
            daemon.log_tail()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).map_err(|e| Error::Mps(format!("client at {pct} answered {line:?}: {e}")))
}
