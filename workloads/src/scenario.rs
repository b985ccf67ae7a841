//! A co-location scenario, fully concrete: who runs (tenants, each a model with a batching
//! policy, an arrival process and an SLO), how the GPU is shared (the partition and each
//! tenant's share), what else runs (aggressors that start and stop on schedule), for how long
//! and with which seeds. Suites ([`crate::suite`]) expand into scenarios; the harness runs them.

use std::collections::BTreeSet;
use std::path::Path;

use coloc_kernels::ops::{OpSpec, Stressor, StressorKind};
use serde::{Deserialize, Serialize};

use crate::arrival::ArrivalProcess;
use crate::error::{Error, Result};
use crate::graph::{BuildOptions, ModelGraph};
use crate::model::ModelSpec;

/// How tenants share the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// Every tenant on one stream: kernels of different tenants never overlap.
    TimeSliced,
    /// One stream per tenant in one context, with per-tenant priorities.
    Streams,
    /// One green context per tenant with its own SMs.
    Green,
    /// One MPS client process per tenant, limited by an active-thread percentage.
    Mps,
    /// One process per tenant without MPS: the driver time-slices the GPU between their
    /// contexts, as for two inference servers sharing a GPU.
    Processes,
}

impl PartitionKind {
    pub const ALL: [PartitionKind; 5] = [
        PartitionKind::TimeSliced,
        PartitionKind::Streams,
        PartitionKind::Green,
        PartitionKind::Mps,
        PartitionKind::Processes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::TimeSliced => "time_sliced",
            PartitionKind::Streams => "streams",
            PartitionKind::Green => "green",
            PartitionKind::Mps => "mps",
            PartitionKind::Processes => "processes",
        }
    }

    /// Tenants run in processes of their own (MPS clients, or plain processes).
    pub fn uses_processes(self) -> bool {
        matches!(self, PartitionKind::Mps | PartitionKind::Processes)
    }
}

/// A tenant's or aggressor's share under the scenario's partition; only the fields that the
/// partition uses may be set: `priority` for streams, `sms` for green, `mps_percent` for MPS
/// (with `sms`, the SM count that percentage is meant to grant, when the share was given in
/// SMs: the harness checks the driver's grant against it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub priority: Option<i32>,
    pub sms: Option<u32>,
    pub mps_percent: Option<u32>,
}

/// The SMs a tenant runs on alone: what solo profiles at a tenant's share are keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SoloShare {
    /// The whole device (time-sliced, streams, processes).
    Device,
    /// A green context of this many SMs.
    Green { sms: u32 },
    /// An MPS client at this active-thread percentage.
    Mps { percent: u32 },
    /// The whole device from a process of its own, beside this one's context (as tenants of
    /// the processes partition run).
    Process,
}

impl std::fmt::Display for SoloShare {
    /// Its [`label`](SoloShare::label).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SoloShare::Device => f.write_str("device"),
            SoloShare::Green { sms } => write!(f, "green{sms}"),
            SoloShare::Mps { percent } => write!(f, "mps{percent}"),
            SoloShare::Process => f.write_str("process"),
        }
    }
}

impl SoloShare {
    /// `device`, `green56`, `mps43`.
    pub fn label(self) -> String {
        self.to_string()
    }

    /// Parses a [`label`](Self::label).
    pub fn parse(label: &str) -> Option<SoloShare> {
        match label {
            "device" => return Some(SoloShare::Device),
            "process" => return Some(SoloShare::Process),
            _ => {}
        }
        if let Some(n) = label.strip_prefix("green") {
            return n.parse().ok().map(|sms| SoloShare::Green { sms });
        }
        label.strip_prefix("mps").and_then(|n| n.parse().ok()).map(|percent| SoloShare::Mps { percent })
    }
}

impl Share {
    /// The solo share of a tenant with this share under `partition`.
    pub fn solo(&self, partition: PartitionKind) -> SoloShare {
        match partition {
            PartitionKind::TimeSliced | PartitionKind::Streams => SoloShare::Device,
            PartitionKind::Processes => SoloShare::Process,
            PartitionKind::Green => SoloShare::Green { sms: self.sms.unwrap_or(0) },
            PartitionKind::Mps => SoloShare::Mps { percent: self.mps_percent.unwrap_or(100) },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Batching {
    /// Batches of `batch` requests, run by one graph of that size: a batch starts when that
    /// many are queued or the oldest has waited `max_wait_ms` (then it runs partly empty).
    /// Without `max_wait_ms`, the wait is [`DEFAULT_MAX_WAIT_FACTOR`] times the solo latency
    /// of the batch on the whole GPU.
    Fixed {
        batch: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_wait_ms: Option<f64>,
    },
    /// A batch starts when `max_batch` requests are queued or the oldest has waited
    /// `timeout_ms`, whichever comes first, and runs in the smallest bucket that holds it.
    Dynamic { max_batch: usize, timeout_ms: f64 },
}

/// Fixed batching waits at most this many solo latencies (whole GPU, full batch) for a batch
/// to fill, unless the suite says otherwise.
pub const DEFAULT_MAX_WAIT_FACTOR: f64 = 2.0;

impl Batching {
    pub fn fixed(batch: usize) -> Batching {
        Batching::Fixed { batch, max_wait_ms: None }
    }

    pub fn max_batch(&self) -> usize {
        match self {
            Batching::Fixed { batch, .. } => *batch,
            Batching::Dynamic { max_batch, .. } => *max_batch,
        }
    }

    /// The longest the oldest request waits for its batch to form, in ms, given the solo
    /// latency of a full batch on the whole GPU.
    pub fn max_wait_ms(&self, solo_latency_ms: f64) -> f64 {
        match self {
            Batching::Fixed { max_wait_ms: Some(w), .. } => *w,
            Batching::Fixed { max_wait_ms: None, .. } => DEFAULT_MAX_WAIT_FACTOR * solo_latency_ms,
            Batching::Dynamic { timeout_ms, .. } => *timeout_ms,
        }
    }

    /// Batch sizes with a graph of their own: the fixed size, or powers of two up to the dynamic
    /// maximum and the maximum itself (a partial batch runs in the next size up).
    pub fn buckets(&self) -> Vec<usize> {
        match self {
            Batching::Fixed { batch, .. } => vec![*batch],
            Batching::Dynamic { max_batch, .. } => {
                let mut b: Vec<usize> = (0..).map(|i| 1usize << i).take_while(|s| s < max_batch).collect();
                b.push(*max_batch);
                b
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Batching::Fixed { batch, max_wait_ms: None } => format!("b{batch}"),
            Batching::Fixed { batch, max_wait_ms: Some(w) } => format!("b{batch}/wait{w}ms"),
            Batching::Dynamic { max_batch, timeout_ms } => format!("dyn{max_batch}/{timeout_ms}ms"),
        }
    }
}

/// The latency objective of a tenant's requests, arrival to completion: the whole latency,
/// batching wait included.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slo {
    Ms(f64),
    /// The longest batching wait plus this many times the tenant's solo latency at its largest
    /// batch on the whole GPU (measured before the scenario): the same objective for a model
    /// under every partition, with room for the batch to form.
    SoloFactor(f64),
}

impl Slo {
    /// The objective in ms for a tenant whose full batch takes `solo_latency_ms` alone on the
    /// whole GPU and whose batching waits at most `max_wait_ms`.
    pub fn ms(self, solo_latency_ms: f64, max_wait_ms: f64) -> f64 {
        match self {
            Slo::Ms(ms) => ms,
            Slo::SoloFactor(f) => max_wait_ms + f * solo_latency_ms,
        }
    }
}

/// What a tenant's `load` is a fraction of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadOf {
    /// Its solo capacity at its own share (in its green context or MPS client, alone).
    #[default]
    Partition,
    /// Its solo capacity on the whole GPU.
    Gpu,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Unique within the scenario.
    pub name: String,
    /// A shipped model's name or a model file's path (relative to the suite file).
    pub model: String,
    pub seq: Option<usize>,
    pub context: Option<usize>,
    pub batching: Batching,
    pub arrival: ArrivalProcess,
    /// When set, the arrival process is rescaled so that its mean rate is `load` times the
    /// tenant's solo capacity (requests per second at its largest batch, alone), at its share
    /// or on the whole GPU as `load_of` says.
    pub load: Option<f64>,
    #[serde(default)]
    pub load_of: LoadOf,
    pub slo: Slo,
    pub share: Share,
}

/// What an aggressor runs, back to back, while it is on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AggressorWork {
    /// A stressor at `intensity` (fraction of a full-device grid) with per-launch work sized to
    /// about a millisecond on an H200.
    Stressor { stressor: StressorName, intensity: f64 },
    /// A model's forward pass at a batch size.
    Model { model: String, batch: usize },
}

/// The synthetic stressors by the resource they load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StressorName {
    Fma,
    Stream,
    L2,
    Smem,
    Chase,
}

impl StressorName {
    /// One launch of this stressor at `intensity` on a device of `sms` SMs and `l2_bytes` of L2.
    pub fn stressor(self, intensity: f64, sms: u32, l2_bytes: u64) -> Stressor {
        let kind = match self {
            StressorName::Fma => StressorKind::Fma { iters: 10_000 },
            StressorName::Stream => StressorKind::Stream { bytes: 1 << 30, passes: 1 },
            StressorName::L2 => StressorKind::L2 { bytes: (l2_bytes / 2) & !0xffff, passes: 100 },
            StressorName::Smem => StressorKind::Smem { iters: 4096, stride: 1 },
            StressorName::Chase => StressorKind::Chase { entries: 1 << 28, steps: 1000 },
        };
        let full = Stressor::full_device(kind, sms);
        let blocks = ((full.blocks as f64 * intensity).round() as u32).max(1);
        Stressor { blocks, ..full }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggressor {
    pub name: String,
    pub work: AggressorWork,
    /// On from `start_s` to `stop_s`, seconds from the start of the measured window.
    pub start_s: f64,
    pub stop_s: f64,
    pub share: Share,
}

/// Separate seeds for the arrival schedule and for request inputs (as MLPerf LoadGen keeps
/// its seeds apart): changing inputs never changes the timing of arrivals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeds {
    pub schedule: u64,
    pub inputs: u64,
}

impl Default for Seeds {
    fn default() -> Self {
        Seeds { schedule: 1, inputs: 2 }
    }
}

impl Seeds {
    /// The seeds of one tenant in one repetition of one scenario: the suite's seeds mixed with
    /// the scenario's name, the tenant's index and the repetition, so that no two tenants,
    /// scenarios or repetitions share an arrival sequence or request data, and the same run
    /// always gets the same ones (whatever else the suite holds, whatever order it runs in).
    pub fn for_tenant(&self, scenario: &str, tenant: usize, repetition: usize) -> Seeds {
        let key = mix(mix(fnv64(scenario.as_bytes()), tenant as u64 + 1), repetition as u64 + 1);
        Seeds { schedule: mix(self.schedule, key), inputs: mix(self.inputs, key ^ 0x5bd1_e995) }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Two words into one well-mixed word (splitmix64 of their combination).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_add(b.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a scenario is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One of the suite's scenarios.
    #[default]
    Measured,
    /// The suite's drift reference: one solo tenant run again and again through the suite, at
    /// fixed places in its run order, so that a change of the GPU over time shows.
    Reference,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Unique within its suite, e.g. `pairs/resnet50+bert_base/b8/green-64-56/load0.5`.
    pub name: String,
    pub partition: PartitionKind,
    pub tenants: Vec<Tenant>,
    pub aggressors: Vec<Aggressor>,
    /// Measured window, after the warm-up.
    pub duration_s: f64,
    /// The run goes on past `duration_s` until every tenant has completed this many requests.
    pub min_queries: usize,
    /// Requests before the measured window are not counted.
    pub warmup_s: f64,
    /// Independent runs of the whole scenario, each with its own seeds (their spread is the
    /// noise floor). For the reference, the number of runs comes from the suite's length.
    pub repetitions: usize,
    pub seeds: Seeds,
    /// Fraction of the measured window, in (0, 1], whose batches keep every launch's stamps
    /// (spread over windows the tenants share, so overlaps inside them are whole).
    #[serde(default = "kernel_sample")]
    pub kernel_sample: f64,
    #[serde(default)]
    pub role: Role,
    /// Who decides when each tenant's batches launch.
    #[serde(default)]
    pub scheduler: RuntimeScheduler,
    /// The fitted predictor (`coloc fit`'s JSON) [`RuntimeScheduler::LeastHeadroom`] asks, as
    /// the suite gives it: relative to the suite's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_predictor: Option<std::path::PathBuf>,
}

/// Who decides, as requests arrive, when each batch of a scenario launches and how large.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeScheduler {
    /// Each tenant's own loop: a batch goes as soon as its batching policy says it is due.
    #[default]
    Independent,
    /// Clockwork (Gujarati et al., OSDI 2020): one batch at a time on the one stream of a
    /// time-sliced scenario, the tenant with the earliest deadline first, at the profiled batch
    /// size that serves the most of its requests in time; what cannot be served in time is
    /// dropped ([`crate::clockwork`]).
    Clockwork,
    /// Abacus's runtime (Cui et al., SC 2021) on streams of the whole GPU: a tenant's due batch
    /// launches beside those in flight only if the scenario's predictor
    /// ([`Scenario::scheduler_predictor`]) expects it to end within its oldest request's
    /// deadline; otherwise it is held until one of them ends (a batch with nothing in flight
    /// always goes).
    LeastHeadroom,
    /// Dynamic space-time sharing (Jain et al., 2018) on streams of the whole GPU: tenants share
    /// the GPU until one straggles (its batches, slowed by the others, would take over half its
    /// SLO), which then runs alone until the load eases ([`crate::space_time`]). No predictor:
    /// it learns from the batches it measures.
    SpaceTime,
}

/// The default [`Scenario::kernel_sample`]: launches of 30% of the batches.
pub const KERNEL_SAMPLE: f64 = 0.3;

fn kernel_sample() -> f64 {
    KERNEL_SAMPLE
}

/// What a scenario must fit in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceLimits {
    pub name: String,
    pub sm_count: u32,
    pub l2_bytes: u64,
    /// Green contexts: SMs per group and groups available to partitions.
    pub green_group_sms: u32,
    pub green_groups: u32,
    /// (greatest, least) stream priority.
    pub priority_range: (i32, i32),
    pub memory_bytes: u64,
}

impl DeviceLimits {
    /// The lent NVIDIA H200, as `coloc devices` read it: 132 SMs split into 15 groups of 8,
    /// priorities -5..0, 139.8 GiB.
    pub fn h200() -> DeviceLimits {
        DeviceLimits {
            name: "NVIDIA H200".into(),
            sm_count: 132,
            l2_bytes: 60 << 20,
            green_group_sms: 8,
            green_groups: 15,
            priority_range: (-5, 0),
            memory_bytes: 150_099_263_488,
        }
    }

    pub fn green_sms(&self) -> u32 {
        self.green_group_sms * self.green_groups
    }

    /// The SMs an MPS client at `percent` active threads is granted: whole pairs of SMs
    /// (TPCs), rounded down. Seen on the H200 (132 SMs): 12% gives 14, 25% 32, 50% 66, 75%
    /// 98. The harness reads the real grant back from every client and checks it.
    pub fn mps_granted_sms(&self, percent: u32) -> u32 {
        (percent * self.sm_count / 200) * 2
    }

    /// The smallest active-thread percentage whose grant is `sms` SMs, if one is.
    pub fn mps_percent_for_sms(&self, sms: u32) -> Option<u32> {
        (1..=100).find(|&p| self.mps_granted_sms(p) >= sms).filter(|&p| self.mps_granted_sms(p) == sms)
    }

    /// The SMs each of `n` tenants gets from equal green shares (whole groups).
    pub fn equal_green_sms(&self, n: usize) -> u32 {
        (self.green_groups / n.max(1) as u32) * self.green_group_sms
    }
}

/// What validation learned about a scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Footprint {
    /// Device memory of every tenant's and aggressor's model at its largest batch.
    pub memory_bytes: u64,
    /// Distinct (model, batch, share) that need solo profiles: every bucket of every tenant on
    /// the whole GPU (loads and SLOs are scaled by these) and at the tenant's own share
    /// (interference is measured against these).
    pub solo_profiles: BTreeSet<(String, usize, SoloShare)>,
}

impl Scenario {
    /// Every check that needs no GPU: models resolve and expand at their batch sizes, arrival
    /// processes and SLOs are sane, every tenant and aggressor has the share its partition
    /// needs and the shares fit `limits`, aggressors run inside the measured window, and the
    /// models fit in device memory. `base_dir` resolves model files and traces.
    pub fn validate(&self, limits: &DeviceLimits, base_dir: &Path) -> Result<Footprint> {
        let ctx = format!("scenario `{}`", self.name);
        let bad = |m: String| Error::invalid(ctx.clone(), m);
        if self.tenants.is_empty() {
            return Err(bad("has no tenants".into()));
        }
        for (what, v) in [("duration_s", self.duration_s), ("warmup_s", self.warmup_s)] {
            if !v.is_finite() || v < 0.0 || (what == "duration_s" && v == 0.0) {
                return Err(bad(format!(
                    "{what} = {v} must be {}",
                    if what == "duration_s" { "positive" } else { ">= 0" }
                )));
            }
        }
        if self.min_queries == 0 || self.repetitions == 0 {
            return Err(bad("min_queries and repetitions must be at least 1".into()));
        }
        if !(self.kernel_sample > 0.0 && self.kernel_sample <= 1.0) {
            return Err(bad(format!("kernel_sample = {} must be in (0, 1]", self.kernel_sample)));
        }
        let mut names = BTreeSet::new();
        let mut footprint = Footprint::default();
        for t in &self.tenants {
            let tctx = format!("{ctx}, tenant `{}`", t.name);
            if !names.insert(t.name.clone()) {
                return Err(bad(format!("two tenants are named `{}`", t.name)));
            }
            let (spec, _) = ModelSpec::resolve(&t.model, base_dir).map_err(|e| in_context(&tctx, e))?;
            let max_batch = t.batching.max_batch();
            let graph = ModelGraph::build(&spec, &BuildOptions { batch: max_batch, seq: t.seq, context: t.context })
                .map_err(|e| in_context(&tctx, e))?;
            footprint.memory_bytes += graph.totals().allocated_bytes();
            for bucket in t.batching.buckets() {
                footprint.solo_profiles.insert((t.model.clone(), bucket, SoloShare::Device));
                footprint.solo_profiles.insert((t.model.clone(), bucket, t.share.solo(self.partition)));
            }
            let wait = match t.batching {
                Batching::Dynamic { timeout_ms, .. } => Some(("timeout_ms", timeout_ms)),
                Batching::Fixed { max_wait_ms, .. } => max_wait_ms.map(|w| ("max_wait_ms", w)),
            };
            if let Some((what, w)) = wait {
                if !(w.is_finite() && w >= 0.0) {
                    return Err(Error::invalid(tctx, format!("{what} = {w} must be >= 0")));
                }
            }
            t.arrival.validate(&tctx)?;
            if let Some(load) = t.load {
                if !(load.is_finite() && load > 0.0) {
                    return Err(Error::invalid(
                        tctx,
                        format!("load = {load} must be a positive fraction of solo capacity"),
                    ));
                }
                t.arrival.with_rate(1.0, &tctx)?;
            }
            match t.slo {
                Slo::Ms(v) | Slo::SoloFactor(v) if !(v.is_finite() && v > 0.0) => {
                    return Err(Error::invalid(tctx, format!("SLO {v} must be positive")));
                }
                _ => {}
            }
        }
        for a in &self.aggressors {
            let actx = format!("{ctx}, aggressor `{}`", a.name);
            if !names.insert(a.name.clone()) {
                return Err(bad(format!("the name `{}` is used twice", a.name)));
            }
            if !(a.start_s >= 0.0 && a.start_s < a.stop_s && a.stop_s <= self.duration_s) {
                return Err(Error::invalid(
                    actx,
                    format!(
                        "must run inside the measured window: 0 <= start_s ({}) < stop_s ({}) <= duration_s ({})",
                        a.start_s, a.stop_s, self.duration_s
                    ),
                ));
            }
            match &a.work {
                AggressorWork::Stressor { stressor, intensity } => {
                    if !(*intensity > 0.0 && *intensity <= 1.0) {
                        return Err(Error::invalid(actx, format!("intensity = {intensity} must be in (0, 1]")));
                    }
                    stressor.stressor(*intensity, limits.sm_count, limits.l2_bytes).validate()?;
                    footprint.memory_bytes += 2 << 30;
                }
                AggressorWork::Model { model, batch } => {
                    let (spec, _) = ModelSpec::resolve(model, base_dir).map_err(|e| in_context(&actx, e))?;
                    let graph = ModelGraph::build(&spec, &BuildOptions { batch: *batch, ..Default::default() })
                        .map_err(|e| in_context(&actx, e))?;
                    footprint.memory_bytes += graph.totals().allocated_bytes();
                }
            }
        }
        self.validate_shares(limits)?;
        // Leave a tenth of the device for contexts, cuBLAS workspaces and the allocator.
        if footprint.memory_bytes > limits.memory_bytes / 10 * 9 {
            return Err(bad(format!(
                "needs {:.1} GiB of device memory; {} has {:.1} GiB",
                footprint.memory_bytes as f64 / (1u64 << 30) as f64,
                limits.name,
                limits.memory_bytes as f64 / (1u64 << 30) as f64
            )));
        }
        Ok(footprint)
    }

    /// Every (name, share) of tenants then aggressors.
    pub fn shares(&self) -> Vec<(&str, Share)> {
        self.tenants
            .iter()
            .map(|t| (t.name.as_str(), t.share))
            .chain(self.aggressors.iter().map(|a| (a.name.as_str(), a.share)))
            .collect()
    }

    fn validate_shares(&self, limits: &DeviceLimits) -> Result<()> {
        let ctx = format!("scenario `{}`", self.name);
        let p = self.partition.name();
        let mut groups = 0u32;
        for (name, s) in self.shares() {
            let stray = |field: &str, uses: &str| {
                Error::invalid(
                    ctx.clone(),
                    format!("`{name}` sets `{field}`, which applies to partition = \"{uses}\", not \"{p}\""),
                )
            };
            let missing =
                |field: &str| Error::invalid(ctx.clone(), format!("`{name}` has no `{field}` for partition = \"{p}\""));
            match self.partition {
                PartitionKind::TimeSliced | PartitionKind::Processes => {
                    if s.priority.is_some() {
                        return Err(stray("priority", "streams"));
                    }
                }
                PartitionKind::Streams => {
                    let prio = s.priority.unwrap_or(limits.priority_range.1);
                    if prio < limits.priority_range.0 || prio > limits.priority_range.1 {
                        return Err(Error::invalid(
                            ctx.clone(),
                            format!(
                                "`{name}` has priority {prio}; {} allows {} (highest) to {}",
                                limits.name, limits.priority_range.0, limits.priority_range.1
                            ),
                        ));
                    }
                }
                PartitionKind::Green => {
                    let sms = s.sms.ok_or_else(|| missing("sms"))?;
                    if sms == 0 || sms > limits.green_sms() {
                        return Err(Error::invalid(
                            ctx.clone(),
                            format!(
                                "`{name}` asks for {sms} SMs; a green context on {} holds 1 to {} SMs",
                                limits.name,
                                limits.green_sms()
                            ),
                        ));
                    }
                    groups += sms.div_ceil(limits.green_group_sms);
                }
                PartitionKind::Mps => {
                    let pct = s.mps_percent.ok_or_else(|| missing("mps_percent"))?;
                    if pct == 0 || pct > 100 {
                        return Err(Error::invalid(
                            ctx.clone(),
                            format!("`{name}` has mps_percent = {pct}; it must be 1 to 100"),
                        ));
                    }
                    if let Some(sms) = s.sms {
                        if limits.mps_granted_sms(pct) != sms {
                            return Err(Error::invalid(
                                ctx.clone(),
                                format!(
                                    "`{name}` is meant to get {sms} SMs, but mps_percent = {pct} grants {} on {}",
                                    limits.mps_granted_sms(pct),
                                    limits.name
                                ),
                            ));
                        }
                    }
                }
            }
            if !matches!(self.partition, PartitionKind::Green | PartitionKind::Mps) && s.sms.is_some() {
                return Err(stray("sms", "green"));
            }
            if self.partition != PartitionKind::Mps && s.mps_percent.is_some() {
                return Err(stray("mps_percent", "mps"));
            }
            if !matches!(self.partition, PartitionKind::Streams | PartitionKind::TimeSliced) && s.priority.is_some() {
                return Err(stray("priority", "streams"));
            }
        }
        if groups > limits.green_groups {
            return Err(Error::invalid(
                ctx,
                format!(
                    "green shares need {groups} groups of {} SMs ({} SMs) but {} has {} groups ({} SMs)",
                    limits.green_group_sms,
                    groups * limits.green_group_sms,
                    limits.name,
                    limits.green_groups,
                    limits.green_sms()
                ),
            ));
        }
        Ok(())
    }

    /// Seconds of GPU time the scenario takes (warm-up and window, every repetition).
    pub fn run_seconds(&self) -> f64 {
        (self.warmup_s + self.duration_s) * self.repetitions as f64
    }

    /// One line: tenants with batching, load and share; aggressors; window.
    pub fn summary(&self) -> String {
        let share = |s: &Share| match (s.priority, s.sms, s.mps_percent) {
            (Some(p), _, _) => format!(" prio {p}"),
            (_, Some(n), Some(pct)) => format!(" {pct}% = {n} SMs"),
            (_, Some(n), None) => format!(" {n} SMs"),
            (_, None, Some(pct)) => format!(" {pct}%"),
            _ => String::new(),
        };
        let tenants: Vec<String> = self
            .tenants
            .iter()
            .map(|t| {
                let load = match (t.load, t.arrival.nominal_rate()) {
                    (Some(l), _) => format!("load {l}"),
                    (None, Some(r)) => format!("{r} req/s"),
                    (None, None) => "closed loop / trace".into(),
                };
                format!("{} {} {}{}", t.model, t.batching.describe(), load, share(&t.share))
            })
            .collect();
        let aggressors: Vec<String> = self
            .aggressors
            .iter()
            .map(|a| {
                let what = match &a.work {
                    AggressorWork::Stressor { stressor, intensity } => {
                        format!("{stressor:?} x{intensity}").to_lowercase()
                    }
                    AggressorWork::Model { model, batch } => format!("{model} b{batch}"),
                };
                format!(" + aggressor {what} {}-{} s{}", a.start_s, a.stop_s, share(&a.share))
            })
            .collect();
        format!(
            "{} [{}] {}{} ({}+{} s x{})",
            self.name,
            self.partition.name(),
            tenants.join(" | "),
            aggressors.join(""),
            self.warmup_s,
            self.duration_s,
            self.repetitions
        )
    }
}

fn in_context(context: &str, e: Error) -> Error {
    match e {
        Error::Invalid { context: inner, message } => Error::invalid(format!("{context}: {inner}"), message),
        Error::Unknown { .. } | Error::Parse { .. } | Error::Io { .. } => Error::invalid(context, e.to_string()),
        other => other,
    }
}
