//! What one run records. All times are nanoseconds on one clock: the host's CLOCK_MONOTONIC
//! (GPU %globaltimer values mapped onto it, see [`crate::clock`]), relative to the start of
//! the measured window (warm-up times are negative).

use serde::{Deserialize, Serialize};

/// One inference request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub tenant: u16,
    pub request: u32,
    /// The batch it ran in; `u32::MAX` if it never ran.
    pub batch: u32,
    pub arrival_ns: i64,
    /// When its batch was formed and sent (host).
    pub formed_ns: Option<i64>,
    /// GPU: first kernel of its batch in, last kernel out.
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// Arrived before the measured window: not counted.
    pub warmup: bool,
}

impl RequestRecord {
    pub fn latency_ns(&self) -> Option<i64> {
        self.end_ns.map(|e| e - self.arrival_ns)
    }
    /// Arrival to GPU start: batching delay, launch and waiting for the GPU.
    pub fn queue_ns(&self) -> Option<i64> {
        self.start_ns.map(|s| s - self.arrival_ns)
    }
}

/// One batch of requests, one replay of a model graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub tenant: u16,
    pub batch: u32,
    /// Requests in it, and the batch size of the graph that ran it (the next bucket up).
    pub size: u16,
    pub bucket: u16,
    pub formed_ns: i64,
    pub start_ns: i64,
    pub end_ns: i64,
    /// When the host saw it complete (event poll): a cross-check of `end_ns`.
    pub host_done_ns: i64,
    /// Its kernel records were kept.
    pub sampled: bool,
}

/// One operator of a sampled batch (or one launch of an aggressor's work).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelRecord {
    /// Tenant index, or `1000 + aggressor index` for aggressors.
    pub tenant: u16,
    pub batch: u32,
    /// Operator index in the model graph (0 for a stressor launch).
    pub op: u16,
    pub start_ns: i64,
    pub end_ns: i64,
    /// The operator starts in cuBLAS and has no entry stamp: its start is the previous
    /// operator's end.
    pub start_inferred: bool,
}

/// Offset of aggressor ids in the `tenant` column of kernel records.
pub const AGGRESSOR_ID_BASE: u16 = 1000;

/// Everything one tenant (or aggressor) of one run produced.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TenantOutput {
    pub requests: Vec<RequestRecord>,
    pub batches: Vec<BatchRecord>,
    pub kernels: Vec<KernelRecord>,
    /// SMs the tenant's context may use, as the driver reports (green, MPS) or the device's.
    pub granted_sms: u32,
    pub clock_uncertainty_ns: i64,
}

impl TenantOutput {
    pub fn append(&mut self, other: TenantOutput) {
        self.requests.extend(other.requests);
        self.batches.extend(other.batches);
        self.kernels.extend(other.kernels);
    }
}
