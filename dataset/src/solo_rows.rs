//! The solo tables: every (model, batch) alone, on the whole GPU and at every share a tenant of
//! the suite runs at, replayed as a CUDA graph. Loads and SLOs are scaled by the solo profiles
//! on the whole GPU; interference is measured against those at the same share.

use coloc_kernels::ops::ComputeUnit;
use coloc_workloads::scenario::SoloShare;

use crate::rows::LaunchKind;
use crate::table;

table! {
    /// One (model, batch, share) alone.
    pub struct SoloModelRow in "solo_models" {
        pub model: String,
        pub batch: u32,
        pub share: SoloShare,
        /// SMs the driver granted to the context the profile ran in.
        pub granted_sms: u32,
        pub seq: Option<u32>,
        pub context: Option<u32>,
        pub ops: u32,
        pub launches: u32,
        /// GPU time of one graph replay (events), microseconds: median, 5th and 95th
        /// percentiles, and a 95% bootstrap interval of the median.
        pub latency_p50_us: f64,
        pub latency_p05_us: f64,
        pub latency_p95_us: f64,
        pub latency_p50_lo_us: f64,
        pub latency_p50_hi_us: f64,
        /// The same replays timed by the first and last stamps (an independent clock).
        pub stamped_p50_us: f64,
        pub replays: u32,
        /// The same operators launched one by one.
        pub eager_us: f64,
        /// Requests per second at this batch and share: batch over median latency.
        pub capacity_rps: f64,
    }
}

table! {
    /// One operator of a (model, batch, share): every launch it makes, first start to last end.
    pub struct SoloOpRow in "solo_ops" {
        pub model: String,
        pub batch: u32,
        pub share: SoloShare,
        pub op: u16,
        pub layer: String,
        pub kind: String,
        pub shape: String,
        pub launches: u8,
        pub flops: f64,
        pub macs: f64,
        pub dram_bytes: f64,
        pub unit: ComputeUnit,
        /// Median over replays, microseconds; none if no replay timed it.
        pub time_us: Option<f64>,
        /// The least time the device's measured ceilings allow for its cost.
        pub floor_us: f64,
        pub tflops: Option<f64>,
        pub gbps: Option<f64>,
        /// Of the ceiling of its compute unit, and of the copy bandwidth.
        pub compute_fraction: Option<f64>,
        pub memory_fraction: Option<f64>,
    }
}

table! {
    /// One launch of an operator of a (model, batch, share).
    pub struct SoloKernelRow in "solo_kernels" {
        pub model: String,
        pub batch: u32,
        pub share: SoloShare,
        pub op: u16,
        pub launch: u8,
        pub kind: LaunchKind,
        /// Ours (`bias_act_bf16`), or `cublas`.
        pub name: String,
        pub flops: f64,
        pub dram_bytes: f64,
        pub unit: ComputeUnit,
        pub time_us: Option<f64>,
        pub floor_us: f64,
    }
}

table! {
    /// One kernel node of an operator captured alone, as the driver reports it (cuBLAS's
    /// kernels by their own names).
    pub struct SoloNodeRow in "solo_nodes" {
        pub model: String,
        pub batch: u32,
        pub op: u16,
        pub node: u16,
        /// The launch of the operator this node belongs to (none: a stamp of coloc's own).
        pub launch: Option<u8>,
        pub kernel: String,
        pub grid_blocks: u32,
        pub block_threads: u32,
        pub registers: i32,
        pub smem_bytes: u32,
        pub blocks_per_sm: i32,
        pub occupancy: f64,
    }
}

table! {
    /// An Nsight Compute counter of one kernel node (only with `measure --ncu`).
    pub struct SoloCounterRow in "solo_counters" {
        pub model: String,
        pub batch: u32,
        pub op: u16,
        pub node: u16,
        pub kernel: String,
        pub metric: String,
        pub unit: String,
        pub value: f64,
    }
}

table! {
    /// One (model, batch) on one stream of the whole GPU, replayed right after its own replay
    /// and right after another model's, interleaved, each replay awaited as a tenant awaits its
    /// batch. Both times are stamped spans (first kernel in to last out), microseconds.
    pub struct SoloSwitchRow in "solo_switch" {
        pub model: String,
        pub batch: u32,
        /// The model replayed just before, at its batch.
        pub after_model: String,
        pub after_batch: u32,
        /// Timed replays of each kind.
        pub replays: u32,
        /// Median right after its own replay: the solo profile measured again.
        pub after_self_us: f64,
        /// Median right after `after_model`'s replay.
        pub after_other_us: f64,
    }
}

impl SoloSwitchRow {
    /// After the other model, over after its own.
    pub fn factor(&self) -> f64 {
        self.after_other_us / self.after_self_us
    }
}
