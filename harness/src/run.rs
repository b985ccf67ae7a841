//! One repetition of one scenario: its plans built before timing, then its tenants and
//! aggressors run together on one clock, as threads of this process (time-sliced, streams,
//! green contexts: [`crate::local`]) or as processes of their own (MPS clients, plain
//! processes: [`crate::worker`]).

use std::path::Path;

use coloc_dataset::rows::{AggressorRow, DeviceSampleRow, TenantRow};
use coloc_kernels::gpu::KernelLibrary;
use coloc_kernels::nvml::NvmlDevice;
use coloc_kernels::partition::probe::WorkerCommand;
use coloc_workloads::scenario::{DeviceLimits, Scenario};

use crate::error::Result;
use crate::record::TenantOutput;
use crate::solo::SoloProfiles;

pub struct RunEnv<'a> {
    pub lib: &'a std::sync::Arc<KernelLibrary>,
    pub limits: &'a DeviceLimits,
    pub solo: &'a SoloProfiles,
    pub base_dir: &'a Path,
    pub worker: Option<&'a WorkerCommand>,
    pub nvml: Option<&'a NvmlDevice>,
    /// The harness's own costs, for a scheduler that plans batches ahead.
    pub costs: crate::gate::Costs,
}

impl RunEnv<'_> {
    pub fn plan_inputs(&self) -> crate::plan::PlanInputs<'_> {
        crate::plan::PlanInputs { limits: self.limits, solo: self.solo, base_dir: self.base_dir }
    }
}

/// What the tenants and aggressors of a run returned, in plan order, and the device samples.
pub struct Outputs {
    pub tenants: Vec<TenantOutput>,
    pub aggressors: Vec<TenantOutput>,
    pub samples: Vec<DeviceSampleRow>,
    /// What the run's scheduler says of it, for the run's notes.
    pub notes: Vec<String>,
}

/// Everything one repetition produced; rows without their run key yet.
pub struct RunData {
    pub tenants: Vec<TenantRow>,
    pub aggressors: Vec<AggressorRow>,
    pub records: TenantOutput,
    pub samples: Vec<DeviceSampleRow>,
    /// What the run's scheduler says of it, for the run's notes.
    pub notes: Vec<String>,
    /// The measured window: the scenario's duration, or up to the last measured arrival or
    /// the moment the closed loops stopped sending, whichever is later.
    pub window_ns: i64,
}

/// Runs repetition `rep` of `scenario`.
pub fn run(env: &RunEnv, scenario: &Scenario, rep: usize) -> Result<RunData> {
    let plans = crate::plan::plan(&env.plan_inputs(), scenario, rep)?;
    let (mut tenants, mut aggressors) = (plans.tenant_rows.clone(), plans.aggressor_rows.clone());
    let outputs = if scenario.partition.uses_processes() {
        crate::worker::run(env, scenario, plans)?
    } else {
        crate::local::run(env, scenario, plans)?
    };
    let mut records = TenantOutput::default();
    let mut window_ns = (scenario.duration_s * 1e9) as i64;
    for (row, out) in tenants.iter_mut().zip(outputs.tenants) {
        row.granted_sms = out.granted_sms;
        row.clock_uncertainty_ns = out.clock.map_or(0, |c| c.uncertainty_ns);
        window_ns = window_ns.max(out.stopped_sending_ns.unwrap_or(0));
        window_ns = window_ns.max(out.requests.iter().map(|r| r.arrival_ns + 1).max().unwrap_or(0));
        records.append(out);
    }
    for (row, out) in aggressors.iter_mut().zip(outputs.aggressors) {
        row.granted_sms = out.granted_sms;
        records.append(out);
    }
    Ok(RunData { tenants, aggressors, records, samples: outputs.samples, notes: outputs.notes, window_ns })
}
