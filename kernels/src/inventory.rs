//! `coloc devices`: what the device is, which partition mechanisms work on it, how fine its
//! global timer is, and its measured ceilings.

use std::sync::Arc;

use serde::Serialize;

use crate::ceilings::{self, Ceilings};
use crate::error::Result;
use crate::gpu::module::ModuleLoad;
use crate::gpu::{Blas, Device, DeviceBuffer, DeviceInfo, ExecContext, KernelArgs, KernelLibrary, LaunchConfig, nvrtc};
use crate::id::{KernelId, KernelSymbol};
use crate::nvml::{DeviceSample, DeviceSettings, NvmlDevice};
use crate::ops::{Stressor, StressorKind};
use crate::partition::green::{self, GreenSupport};
use crate::partition::mig::{self, MigStatus};
use crate::partition::mps::{self, MpsDaemon};
use crate::partition::probe::{self, ProbeJob, WorkerCommand};

/// Steps of %globaltimer as one thread sees it.
#[derive(Clone, Debug, Serialize)]
pub struct TimerResolution {
    pub min_step_ns: u64,
    pub distinct_values: u64,
    pub span_ns: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MpsSupport {
    pub control_binary: Option<String>,
    pub usable: bool,
    /// SMs a client at 50% active threads was granted, and saw in the census.
    pub trial_driver_sms: Option<u32>,
    pub trial_census_sms: Option<u32>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Inventory {
    pub coloc_version: String,
    pub device: DeviceInfo,
    pub memory_free_bytes: u64,
    pub nvml_settings: Option<DeviceSettings>,
    pub nvml_sample: Option<DeviceSample>,
    pub nvml_error: Option<String>,
    pub nvrtc_version: String,
    pub cublas_version: i32,
    pub globaltimer: TimerResolution,
    pub green_contexts: GreenSupport,
    pub mps: MpsSupport,
    pub mig: MigStatus,
    pub ceilings: Option<Ceilings>,
    pub kernel_modules: Vec<ModuleLoad>,
}

pub struct InventoryOptions {
    pub measure_ceilings: bool,
    pub quick: bool,
    /// How to start an MPS client for the trial; `None` skips it.
    pub mps_worker: Option<WorkerCommand>,
}

pub fn collect(device: &Arc<Device>, lib: &KernelLibrary, opts: &InventoryOptions) -> Result<Inventory> {
    let ctx = ExecContext::primary(device);
    let (nvml_settings, nvml_sample, nvml_error) = match NvmlDevice::open(&device.info().uuid) {
        Ok(n) => (Some(n.settings()), Some(n.sample()), None),
        Err(e) => (None, None, Some(e)),
    };
    let mig = mig::status(NvmlDevice::open(&device.info().uuid).ok().as_ref());
    let (major, minor) = nvrtc::version()?;
    let stream = ctx.new_stream(0)?;
    let cublas_version = Blas::new(&stream)?.version()?;
    let globaltimer = timer_resolution(lib, device, &ctx)?;
    let green_contexts = green::support(device);
    let mps = mps_support(opts.mps_worker.as_ref(), device.info().sm_count);
    let ceilings = if opts.measure_ceilings { Some(ceilings::measure(lib, &ctx, opts.quick)?) } else { None };
    Ok(Inventory {
        coloc_version: env!("CARGO_PKG_VERSION").to_string(),
        device: device.info().clone(),
        memory_free_bytes: device.memory_info()?.0,
        nvml_settings,
        nvml_sample,
        nvml_error,
        nvrtc_version: format!("{major}.{minor}"),
        cublas_version,
        globaltimer,
        green_contexts,
        mps,
        mig,
        ceilings,
        kernel_modules: lib.loads(),
    })
}

fn timer_resolution(lib: &KernelLibrary, device: &Arc<Device>, ctx: &ExecContext) -> Result<TimerResolution> {
    let stream = ctx.new_stream(0)?;
    let out = DeviceBuffer::alloc(device, 24, "timer probe output")?;
    let mut args = KernelArgs::new().ptr(out.ptr()).i32(200_000);
    lib.kernel(KernelSymbol::plain(KernelId::TimerResolution))?.launch(
        &stream,
        LaunchConfig::new((1, 1, 1), (32, 1, 1)),
        &mut args,
    )?;
    stream.synchronize()?;
    let v: Vec<u64> = out.download(3)?;
    Ok(TimerResolution { min_step_ns: v[0], distinct_values: v[1], span_ns: v[2] })
}

/// Starts a private daemon, runs one client at 50% active threads, and shuts it down.
fn mps_support(worker: Option<&WorkerCommand>, sms: u32) -> MpsSupport {
    let control_binary = mps::control_binary().map(|p| p.display().to_string());
    let Some(worker) = worker else {
        return MpsSupport {
            control_binary,
            usable: false,
            trial_driver_sms: None,
            trial_census_sms: None,
            error: Some("trial skipped".into()),
        };
    };
    let job = ProbeJob {
        label: "mps trial".into(),
        work: Stressor::full_device(StressorKind::Fma { iters: 1000 }, sms),
        reps: 1,
    };
    let trial = MpsDaemon::start().and_then(|mut daemon| {
        let r = probe::run_in_mps_client(&daemon, Some(50), &job, worker);
        daemon.stop()?;
        r
    });
    match trial {
        Ok(r) => MpsSupport {
            control_binary,
            usable: true,
            trial_driver_sms: Some(r.driver_sms),
            trial_census_sms: Some(r.census_sms),
            error: None,
        },
        Err(e) => MpsSupport {
            control_binary,
            usable: false,
            trial_driver_sms: None,
            trial_census_sms: None,
            error: Some(e.to_string()),
        },
    }
}
