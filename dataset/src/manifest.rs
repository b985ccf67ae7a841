//! `manifest.json`: what was measured, on what, by what, and the facts every check of the
//! dataset needs (the ceilings, the harness's own cost, the suite's selection and order).

use coloc_kernels::ceilings::Ceilings;
use coloc_kernels::gpu::DeviceInfo;
use coloc_kernels::nvml::{DeviceSample, DeviceSettings};
use coloc_kernels::partition::green::GreenSupport;
use coloc_kernels::partition::mig::MigStatus;
use coloc_workloads::scenario::DeviceLimits;
use serde::{Deserialize, Serialize};

use crate::clock::{ClockCheck, ClockMap};

/// What built the binary that measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub version: String,
    pub git_commit: String,
    pub command: String,
}

/// The suite as run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteInfo {
    pub name: String,
    pub path: String,
    /// FNV-64 of the suite file's text: `--resume` needs the same file.
    pub fnv64: String,
    /// Scenarios of the suite, not counting the reference.
    pub scenarios: usize,
    /// Runs selected, the reference's included.
    pub runs: usize,
    /// `--only` patterns that chose the runs (none: every run).
    pub only: Vec<String>,
    /// Seed of the shuffled run order, and runs between two reference runs (0: none).
    pub order_seed: u64,
    pub reference_every: usize,
}

/// What the harness itself adds, from a null workload (one tiny kernel served at batch 1
/// through the same serving loop as every tenant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HarnessOverhead {
    pub requests: usize,
    pub rate_rps: f64,
    /// The null kernel alone, replayed as a graph (stamps), microseconds.
    pub solo_kernel_us: f64,
    /// Medians over the measured requests, microseconds:
    pub kernel_us: f64,
    pub latency_us: f64,
    /// Arrival to the kernel's start: dispatch in the loop, launch and GPU front end.
    pub dispatch_us: f64,
    /// Kernel end to the host noticing the completion.
    pub notice_us: f64,
    /// The clock map the loop ran with, and its check against bracketed launches.
    pub clock: ClockMap,
    pub clock_check: ClockCheck,
    /// A graph's last kernel to the first kernel of the next graph queued behind it on the same
    /// stream, median, microseconds (two null tenants sharing one stream). None where too few
    /// batches queued, or measured before coloc took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_gap_us: Option<f64>,
}

impl HarnessOverhead {
    /// Latency the harness adds beyond the kernel itself.
    pub fn added_latency_us(&self) -> f64 {
        self.latency_us - self.kernel_us
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub tool: ToolInfo,
    pub started_unix_s: f64,
    pub started_utc: String,
    pub host: String,
    pub device: DeviceInfo,
    pub nvml_settings: Option<DeviceSettings>,
    pub nvml_at_start: Option<DeviceSample>,
    pub nvrtc_version: String,
    pub cublas_version: i32,
    /// cuDNN's version where it loaded (convolutions then run in it); absent in datasets
    /// measured before cuDNN was used.
    #[serde(default)]
    pub cudnn_version: Option<usize>,
    pub mps_control: Option<String>,
    pub mig: MigStatus,
    pub green_contexts: GreenSupport,
    pub limits: DeviceLimits,
    pub ceilings: Ceilings,
    /// Where the ceilings were measured; none in datasets measured before this was recorded
    /// (812a8c3), all of which that were committed measured them in the measuring process.
    #[serde(default)]
    pub ceilings_measured: Option<CeilingsMeasured>,
    pub harness_overhead: HarnessOverhead,
    pub suite: SuiteInfo,
    /// Tables `coloc dataset slim` left out of this copy (none in a dataset as measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_tables: Vec<DroppedTable>,
}

/// Where a measurement took the device's ceilings. A process that measured them replays
/// library kernels 6-9% slower from then on (`docs/h200.md`), so in the measuring process its
/// solo profiles and one-stream runs ran in that state, but for the runs after other processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeilingsMeasured {
    InTheMeasuringProcess,
    InAProcessOfTheirOwn,
}

/// A table a slim copy of a dataset does not hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DroppedTable {
    pub table: String,
    /// Its rows in the dataset as measured.
    pub rows: usize,
}

impl Manifest {
    /// The table `name` was left out of this copy.
    pub fn dropped(&self, name: &str) -> bool {
        self.dropped_tables.iter().any(|d| d.table == name)
    }
}
