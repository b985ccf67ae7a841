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
}

impl PartitionKind {
    pub const ALL: [PartitionKind; 4] =
        [PartitionKind::TimeSliced, PartitionKind::Streams, PartitionKind::Green, PartitionKind::Mps];

    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::TimeSliced => "time_sliced",
            PartitionKind::Streams => "streams",
            PartitionKind::Green => "green",
            PartitionKind::Mps => "mps",
        }
    }
}

/// A tenant's or aggressor's share under the scenario's partition; exactly the field that the
/// partition uses may be set (`priority` for streams, `sms` for green, `mps_percent` for MPS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub priority: Option<i32>,
    pub sms: Option<u32>,
    pub mps_percent: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Batching {
    /// Always batches of `batch` requests: a batch starts when that many are queued.
    Fixed { batch: usize },
    /// A batch starts when `max_batch` requests are queued or the oldest has waited
    /// `timeout_ms`, whichever comes first.
    Dynamic { max_batch: usize, timeout_ms: f64 },
}

impl Batching {
    pub fn max_batch(&self) -> usize {
        match self {
            Batching::Fixed { batch } => *batch,
            Batching::Dynamic { max_batch, .. } => *max_batch,
        }
    }

    /// Batch sizes with a graph of their own: the fixed size, or powers of two up to the dynamic
    /// maximum and the maximum itself (a partial batch runs in the next size up).
    pub fn buckets(&self) -> Vec<usize> {
        match self {
            Batching::Fixed { batch } => vec![*batch],
            Batching::Dynamic { max_batch, .. } => {
                let mut b: Vec<usize> = (0..).map(|i| 1usize << i).take_while(|s| s < max_batch).collect();
                b.push(*max_batch);
                b
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Batching::Fixed { batch } => format!("b{batch}"),
            Batching::Dynamic { max_batch, timeout_ms } => format!("dyn{max_batch}/{timeout_ms}ms"),
        }
    }
}

/// The latency objective of a tenant's requests, arrival to completion.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slo {
    Ms(f64),
    /// This many times the tenant's solo latency at its batch, measured before the scenario.
    SoloFactor(f64),
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
    /// tenant's solo capacity (requests per second at its batch size, alone on the GPU).
    pub load: Option<f64>,
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
    /// Independent runs of the whole scenario (their spread is the noise floor).
    pub repetitions: usize,
    pub seeds: Seeds,
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
}

/// What validation learned about a scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Footprint {
    /// Device memory of every tenant's and aggressor's model at its largest batch.
    pub memory_bytes: u64,
    /// Distinct (model, batch) pairs that need solo profiles (every bucket of dynamic batching).
    pub solo_profiles: BTreeSet<(String, usize)>,
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
                footprint.solo_profiles.insert((t.model.clone(), bucket));
            }
            if let Batching::Dynamic { timeout_ms, .. } = t.batching {
                if !(timeout_ms.is_finite() && timeout_ms >= 0.0) {
                    return Err(Error::invalid(tctx, format!("timeout_ms = {timeout_ms} must be >= 0")));
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
                PartitionKind::TimeSliced => {
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
                }
            }
            if self.partition != PartitionKind::Green && s.sms.is_some() {
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
            (_, Some(n), _) => format!(" {n} SMs"),
            (_, _, Some(pct)) => format!(" {pct}%"),
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
