//! The run tables: one row type each. Times are nanoseconds on one clock, the host's
//! CLOCK_MONOTONIC, relative to the start of the run's measured window (warm-up times are
//! negative); GPU %globaltimer stamps are mapped onto it by the run's clock map (offset and
//! rate, see [`crate::clock`]).

use coloc_workloads::batcher::Trigger;
use coloc_workloads::scenario::{LoadOf, PartitionKind, Role, SoloShare, StressorName};
use serde::{Deserialize, Serialize};

use crate::{named_enum_cell, table};

/// What a run came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Valid,
    /// Measured, but a check failed: the numbers do not describe the scenario as asked.
    Invalid,
    /// Could not be measured (out of memory, launch error, time-out): no tables.
    Failed,
}

/// How a tenant forms batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchingPolicy {
    /// One graph size; a batch goes when full or when its oldest request waited `max_wait_ms`.
    Fixed,
    /// Buckets of powers of two up to `max_batch`; a batch goes when full or after the timeout.
    Dynamic,
}

/// The shape of a tenant's arrival process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    Poisson,
    Uniform,
    Gamma,
    OnOff,
    ClosedLoop,
    Trace,
}

impl From<&coloc_workloads::arrival::ArrivalProcess> for ArrivalKind {
    fn from(a: &coloc_workloads::arrival::ArrivalProcess) -> Self {
        use coloc_workloads::arrival::ArrivalProcess as A;
        match a {
            A::Poisson { .. } => ArrivalKind::Poisson,
            A::Uniform { .. } => ArrivalKind::Uniform,
            A::Gamma { .. } => ArrivalKind::Gamma,
            A::OnOff { .. } => ArrivalKind::OnOff,
            A::ClosedLoop { .. } => ArrivalKind::ClosedLoop,
            A::Trace(_) => ArrivalKind::Trace,
        }
    }
}

/// Who ran a kernel launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchKind {
    /// A kernel of coloc's library: its span is its own stamps (first block in, last block out).
    Coloc,
    /// A cuBLAS call: its span is bracketed by the stamps of the launches before and after it
    /// on the stream, so it is an upper bound that includes those launch gaps.
    Cublas,
    /// A cuDNN call, bracketed the same way.
    Cudnn,
}

impl LaunchKind {
    /// Who runs `launcher`.
    pub fn of(launcher: coloc_kernels::ops::Launcher) -> LaunchKind {
        match launcher {
            coloc_kernels::ops::Launcher::Coloc(_) => LaunchKind::Coloc,
            coloc_kernels::ops::Launcher::Cublas => LaunchKind::Cublas,
            coloc_kernels::ops::Launcher::Cudnn => LaunchKind::Cudnn,
        }
    }
}

named_enum_cell!(Status, BatchingPolicy, ArrivalKind, LaunchKind, PartitionKind, Role, LoadOf, Trigger, StressorName);
named_enum_cell!(coloc_kernels::ops::ComputeUnit);

impl crate::cell::Cell for SoloShare {
    fn to_column(name: &str, values: Vec<Self>) -> polars::prelude::Column {
        String::to_column(name, values.into_iter().map(|s| s.label()).collect())
    }
    fn from_column(table: &str, name: &str, df: &polars::prelude::DataFrame) -> crate::error::Result<Vec<Self>> {
        String::from_column(table, name, df)?
            .into_iter()
            .enumerate()
            .map(|(row, s)| {
                SoloShare::parse(&s).ok_or_else(|| {
                    crate::error::Error::column(
                        table,
                        name,
                        format!("row {row}: `{s}` is not a share (device, green56, mps43)"),
                    )
                })
            })
            .collect()
    }
}

table! {
    /// One run: a repetition of a scenario (or of the drift reference) and its verdict.
    pub struct RunRow in "runs" {
        pub run: String,
        pub scenario: String,
        /// Repetition, from 1.
        pub rep: u32,
        pub role: Role,
        pub partition: PartitionKind,
        /// Place in the measurement order (0: measured first).
        pub position: u32,
        pub status: Status,
        /// Every check that failed (INVALID) or what went wrong (FAILED), one sentence each.
        pub reasons: Vec<String>,
        /// For each reason, what to change.
        pub fixes: Vec<String>,
        /// What does not invalidate a run but is worth knowing (power capping).
        pub notes: Vec<String>,
        pub started_unix_s: f64,
        pub wall_s: f64,
        /// Length of the measured window (the scenario's duration, or longer where closed
        /// loops ran on until `min_queries`), ns; none for a failed run.
        pub window_ns: Option<i64>,
    }
}

table! {
    /// One tenant of a run: what it was asked to do, and what it got.
    pub struct TenantRow in "tenants" {
        pub run: String,
        pub tenant: u16,
        pub name: String,
        pub model: String,
        pub batching: BatchingPolicy,
        pub max_batch: u32,
        /// Once the tenant may start a batch, one goes as soon as its oldest request has waited
        /// this long, ms (requests also queue behind the tenant's batch in flight).
        pub max_wait_ms: f64,
        pub arrival: ArrivalKind,
        /// Mean offered rate, requests/s (none for closed loops).
        pub rate_rps: Option<f64>,
        /// Closed-loop clients.
        pub clients: Option<u32>,
        /// Offered rate over solo capacity (as the suite gave it), and what capacity it is of.
        pub load: Option<f64>,
        pub load_of: LoadOf,
        /// The latency objective, arrival to completion, ms.
        pub slo_ms: f64,
        /// Solo latency of a full batch on the whole GPU, ms: the median GPU time of a graph
        /// replay between CUDA events, which loads and SLOs are scaled by.
        pub solo_device_ms: f64,
        /// Solo GPU time of a full batch (first launch in to last launch out, stamps, as
        /// `gpu_p50_ms`) on the whole GPU and at the tenant's share, ms.
        pub solo_device_gpu_ms: f64,
        pub solo_share_gpu_ms: f64,
        /// The solo profile this tenant is compared with.
        pub share: SoloShare,
        /// The share asked for: stream priority, green SMs, MPS percentage.
        pub priority: Option<i32>,
        pub sms: Option<u32>,
        pub mps_percent: Option<u32>,
        /// SMs the driver granted (green context, MPS execution affinity, or the device).
        pub granted_sms: u32,
        /// How well this tenant's clock map is known, ns.
        pub clock_uncertainty_ns: i64,
        /// Arrivals scheduled (closed loops: think times drawn, an upper bound on requests).
        pub scheduled_requests: u32,
        /// Requests that arrived in the measured window, and of those completed.
        pub measured: u32,
        pub completed: u32,
        /// Latency percentiles over completed measured requests with 95% bootstrap intervals
        /// (resampling batches, the independent units), ms.
        pub p50_ms: Option<f64>,
        pub p50_lo_ms: Option<f64>,
        pub p50_hi_ms: Option<f64>,
        pub p99_ms: Option<f64>,
        pub p99_lo_ms: Option<f64>,
        pub p99_hi_ms: Option<f64>,
        /// Measured requests completed within the SLO over all measured requests.
        pub slo_attainment: f64,
        /// Completed measured requests per second of window.
        pub throughput_rps: f64,
        pub mean_batch_size: Option<f64>,
        /// Share of the window this tenant had a batch on the GPU (first kernel in to last out).
        pub busy_fraction: f64,
        /// Medians of the parts of latency, ms: waiting for the batch to form and from formed to
        /// the first kernel over requests; GPU execution over batches (any bucket).
        pub queue_wait_p50_ms: Option<f64>,
        pub dispatch_wait_p50_ms: Option<f64>,
        pub gpu_p50_ms: Option<f64>,
        /// Median over batches of each batch's GPU time over the solo GPU time of the same graph
        /// (bucket) at the same share, with a 95% bootstrap interval: interference alone,
        /// without the share.
        pub interference: Option<f64>,
        pub interference_lo: Option<f64>,
        pub interference_hi: Option<f64>,
        /// Solo GPU time at the share over solo GPU time on the whole GPU: what the smaller share
        /// costs by itself.
        pub share_effect: f64,
    }
}

table! {
    /// One aggressor of a run: work launched back to back while it is on.
    pub struct AggressorRow in "aggressors" {
        pub run: String,
        pub aggressor: u16,
        pub name: String,
        /// A stressor (with its intensity, a fraction of a full-device grid) or a model.
        pub stressor: Option<StressorName>,
        pub intensity: Option<f64>,
        pub model: Option<String>,
        pub batch: Option<u32>,
        /// On from `start_s` to `stop_s` of the measured window.
        pub start_s: f64,
        pub stop_s: f64,
        pub priority: Option<i32>,
        pub sms: Option<u32>,
        pub mps_percent: Option<u32>,
        pub granted_sms: u32,
    }
}

table! {
    /// One request, warm-up included.
    pub struct RequestRow in "requests" {
        pub run: String,
        pub tenant: u16,
        pub request: u32,
        /// The batch it ran in (none: never served).
        pub batch: Option<u32>,
        pub arrival_ns: i64,
        /// Its batch was formed and sent (host).
        pub formed_ns: Option<i64>,
        /// Its batch's first kernel in and last kernel out (GPU).
        pub start_ns: Option<i64>,
        pub end_ns: Option<i64>,
        /// The host saw the batch complete.
        pub noticed_ns: Option<i64>,
        /// The parts of its latency: arrival to formed, formed to first kernel, first kernel
        /// to last kernel out; and the whole, arrival to last kernel out.
        pub queue_wait_ns: Option<i64>,
        pub dispatch_wait_ns: Option<i64>,
        pub gpu_ns: Option<i64>,
        pub latency_ns: Option<i64>,
        pub slo_met: bool,
        /// Arrived before the measured window: not counted.
        pub warmup: bool,
    }
}

table! {
    /// One batch: one replay of a model graph.
    pub struct BatchRow in "batches" {
        pub run: String,
        pub tenant: u16,
        pub batch: u32,
        /// Requests in it, and the graph size that ran it.
        pub size: u16,
        pub bucket: u16,
        /// Why it went when it did.
        pub trigger: Trigger,
        pub formed_ns: i64,
        pub start_ns: i64,
        pub end_ns: i64,
        pub noticed_ns: i64,
        /// Its kernel launches are in the kernels table.
        pub sampled: bool,
    }
}

table! {
    /// One kernel launch: of a sampled batch of a tenant, or of an aggressor.
    pub struct KernelRow in "kernels" {
        pub run: String,
        /// Exactly one of these is set.
        pub tenant: Option<u16>,
        pub aggressor: Option<u16>,
        /// The tenant's batch, or the aggressor's launch number.
        pub batch: u32,
        /// Operator in the model graph, and launch within the operator (0 for a stressor).
        pub op: u16,
        pub launch: u8,
        pub kind: LaunchKind,
        pub start_ns: i64,
        pub end_ns: i64,
    }
}

table! {
    /// An NVML reading, about every 10 ms of a run.
    pub struct DeviceSampleRow in "device_samples" {
        pub run: String,
        pub t_ns: i64,
        pub sm_clock_mhz: Option<u32>,
        pub mem_clock_mhz: Option<u32>,
        pub power_w: Option<f64>,
        pub temperature_c: Option<u32>,
        pub gpu_util_pct: Option<u32>,
        pub mem_util_pct: Option<u32>,
        /// Reasons the clocks were held down, by NVML's names.
        pub throttle: Vec<String>,
    }
}

impl KernelRow {
    /// The tenant or aggressor that launched it (none if the row names neither or both).
    pub fn owner(&self) -> Option<Owner> {
        match (self.tenant, self.aggressor) {
            (Some(t), None) => Some(Owner::Tenant(t)),
            (None, Some(a)) => Some(Owner::Aggressor(a)),
            _ => None,
        }
    }
}

/// Who launched a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Owner {
    Tenant(u16),
    Aggressor(u16),
}
