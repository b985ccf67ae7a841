//! Suites: named sweeps over models x batch sizes x co-location degree x partition settings x
//! load, plus fully written scenarios, in one TOML file that expands into [`Scenario`]s.
//!
//! ```toml
//! name = "example"
//! [defaults]
//! duration_s = 5.0
//! slo_factor = 5.0            # SLO = 5 x solo latency (or slo_ms = 20.0)
//! kernel_sample = 0.3         # batches of this fraction of the window keep their launches
//!
//! [[sweep]]
//! name = "pairs"
//! models = ["resnet50", "bert_base", "vit_b16"]
//! degree = 2                  # every pair of the models (with_replacement = true adds a+a)
//! batch = [1, 8]
//! batch_mix = [[1, 16]]       # mixed sizes: one per tenant, in the group's order
//! partition = ["time_sliced", "streams", "green", "mps", "green:96,24"]
//! load = [0.3, 0.6]           # fraction of each tenant's solo capacity (or rate = [...] req/s)
//! arrival = "poisson"         # or a table without its rate: { kind = "gamma", cv = 2.0 }
//!
//! [[scenario]]
//! name = "dynamic/resnet50-vs-dram"
//! partition = "green"
//! [[scenario.tenant]]
//! model = "resnet50"
//! batch = 8
//! load = 0.5
//! sms = 64
//! [[scenario.aggressor]]
//! stressor = "stream"
//! start_s = 2.0
//! stop_s = 4.0
//! sms = 56
//! ```
//! A partition entry is a mechanism, optionally with one share per tenant after a colon:
//! `streams:0,-5` (priorities), `green:96,24` (SMs), `mps:75,25` (active-thread percent) or
//! `mps:96sm,24sm` (the percentages that grant those SMs), `processes` (no shares). Without
//! shares, tenants get equal ones: all priority 0, an equal number of green groups, and under
//! MPS the percentage that grants each tenant the same SMs as the equal green share (so that
//! equal shares of the two mechanisms are equal in SMs).
//!
//! The runs of a suite are measured in an order shuffled by `order_seed`, with a solo
//! `[reference]` run at its start, its end and every `every` runs in between, so that the
//! GPU's drift over the suite is measured rather than mixed up with the order of scenarios.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arrival::ArrivalProcess;
use crate::error::{Error, Result, from_toml};
use crate::scenario::{
    Aggressor, AggressorWork, Batching, DeviceLimits, Footprint, LoadOf, PartitionKind, Role, RuntimeScheduler,
    Scenario, Seeds, Share, Slo, SoloShare, StressorName, Tenant,
};

/// Settings a suite's `[defaults]`, a sweep or a scenario may set; the innermost wins.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    pub duration_s: Option<f64>,
    pub min_queries: Option<usize>,
    pub warmup_s: Option<f64>,
    pub repetitions: Option<usize>,
    pub seeds: Option<Seeds>,
    pub slo_ms: Option<f64>,
    pub slo_factor: Option<f64>,
    /// Fixed batching's longest wait for a batch to fill (default: twice the solo latency).
    pub max_wait_ms: Option<f64>,
    pub load_of: Option<LoadOf>,
    /// Fraction of the measured window whose batches keep every launch's stamps.
    pub kernel_sample: Option<f64>,
}

/// Defaults when nothing sets them.
const DURATION_S: f64 = 10.0;
const MIN_QUERIES: usize = 100;
const WARMUP_S: f64 = 1.0;
const SLO_FACTOR: f64 = 5.0;
pub use crate::scenario::KERNEL_SAMPLE;

impl RunSettings {
    fn over(&self, outer: &RunSettings) -> RunSettings {
        RunSettings {
            duration_s: self.duration_s.or(outer.duration_s),
            min_queries: self.min_queries.or(outer.min_queries),
            warmup_s: self.warmup_s.or(outer.warmup_s),
            repetitions: self.repetitions.or(outer.repetitions),
            seeds: self.seeds.or(outer.seeds),
            // an SLO set inside replaces one set outside, of either kind
            slo_ms: if self.slo_ms.is_some() || self.slo_factor.is_some() { self.slo_ms } else { outer.slo_ms },
            slo_factor: if self.slo_ms.is_some() || self.slo_factor.is_some() {
                self.slo_factor
            } else {
                outer.slo_factor
            },
            max_wait_ms: self.max_wait_ms.or(outer.max_wait_ms),
            load_of: self.load_of.or(outer.load_of),
            kernel_sample: self.kernel_sample.or(outer.kernel_sample),
        }
    }

    /// Fixed batching of `batch` with this setting's maximum wait.
    fn fixed(&self, batch: usize) -> Batching {
        Batching::Fixed { batch, max_wait_ms: self.max_wait_ms }
    }

    fn slo(&self, ctx: &str) -> Result<Slo> {
        match (self.slo_ms, self.slo_factor) {
            (Some(_), Some(_)) => Err(Error::invalid(ctx, "give slo_ms or slo_factor, not both")),
            (Some(ms), None) => Ok(Slo::Ms(ms)),
            (None, Some(f)) => Ok(Slo::SoloFactor(f)),
            (None, None) => Ok(Slo::SoloFactor(SLO_FACTOR)),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    #[serde(default)]
    description: String,
    /// Seed of the run order (default: derived from the default schedule seed).
    order_seed: Option<u64>,
    reference: Option<ReferenceSpec>,
    #[serde(default)]
    defaults: RunSettings,
    #[serde(default, rename = "sweep")]
    sweeps: Vec<SweepSpec>,
    #[serde(default, rename = "scenario")]
    scenarios: Vec<ScenarioSpec>,
}

/// The drift reference: one tenant alone on the whole GPU, measured at the start and the end
/// of the suite and every `every` runs in between.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceSpec {
    /// Default: the first tenant's model and largest batch of the suite's first scenario.
    model: Option<String>,
    batch: Option<usize>,
    #[serde(default = "reference_load")]
    load: f64,
    #[serde(default = "reference_duration")]
    duration_s: f64,
    /// Runs between two references; 0 turns the reference off.
    #[serde(default = "reference_every")]
    every: usize,
}

fn reference_load() -> f64 {
    0.5
}
fn reference_duration() -> f64 {
    1.0
}
fn reference_every() -> usize {
    10
}

impl Default for ReferenceSpec {
    fn default() -> Self {
        ReferenceSpec {
            model: None,
            batch: None,
            load: reference_load(),
            duration_s: reference_duration(),
            every: reference_every(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DynamicSpec {
    max_batch: usize,
    timeout_ms: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepSpec {
    name: String,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default = "one")]
    degree: usize,
    #[serde(default)]
    with_replacement: bool,
    /// Explicit tenant sets instead of combinations of `models`.
    #[serde(default)]
    groups: Vec<Vec<String>>,
    #[serde(default)]
    batch: Vec<usize>,
    /// Mixed batch sizes: each entry one fixed batch size per tenant, in the group's order.
    #[serde(default)]
    batch_mix: Vec<Vec<usize>>,
    #[serde(default)]
    dynamic: Vec<DynamicSpec>,
    partition: Vec<String>,
    #[serde(default)]
    load: Vec<f64>,
    #[serde(default)]
    rate: Vec<f64>,
    /// Closed-loop clients per tenant (each value a scenario); the arrival table gives
    /// `think_ms` (default 0).
    #[serde(default)]
    clients: Vec<usize>,
    arrival: Option<toml::Value>,
    seq: Option<usize>,
    context: Option<usize>,
    duration_s: Option<f64>,
    min_queries: Option<usize>,
    warmup_s: Option<f64>,
    repetitions: Option<usize>,
    seeds: Option<Seeds>,
    slo_ms: Option<f64>,
    slo_factor: Option<f64>,
    max_wait_ms: Option<f64>,
    load_of: Option<LoadOf>,
    kernel_sample: Option<f64>,
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: String,
    partition: PartitionKind,
    #[serde(rename = "tenant")]
    tenants: Vec<TenantSpec>,
    #[serde(default, rename = "aggressor")]
    aggressors: Vec<AggressorSpec>,
    duration_s: Option<f64>,
    min_queries: Option<usize>,
    warmup_s: Option<f64>,
    repetitions: Option<usize>,
    seeds: Option<Seeds>,
    slo_ms: Option<f64>,
    slo_factor: Option<f64>,
    max_wait_ms: Option<f64>,
    load_of: Option<LoadOf>,
    kernel_sample: Option<f64>,
    #[serde(default)]
    scheduler: RuntimeScheduler,
    scheduler_predictor: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSpec {
    model: String,
    name: Option<String>,
    batch: Option<usize>,
    batching: Option<Batching>,
    arrival: Option<toml::Value>,
    load: Option<f64>,
    rate: Option<f64>,
    slo_ms: Option<f64>,
    slo_factor: Option<f64>,
    max_wait_ms: Option<f64>,
    load_of: Option<LoadOf>,
    priority: Option<i32>,
    sms: Option<u32>,
    mps_percent: Option<u32>,
    seq: Option<usize>,
    context: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggressorSpec {
    name: Option<String>,
    stressor: Option<StressorName>,
    intensity: Option<f64>,
    model: Option<String>,
    batch: Option<usize>,
    start_s: f64,
    stop_s: f64,
    priority: Option<i32>,
    sms: Option<u32>,
    mps_percent: Option<u32>,
}

/// An expanded suite.
#[derive(Clone, Debug, Serialize)]
pub struct Suite {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    /// Model files and traces named in the suite are relative to this directory.
    pub base_dir: PathBuf,
    /// The suite's scenarios, then its drift reference (role [`Role::Reference`]) if it has one.
    pub scenarios: Vec<Scenario>,
    /// Seed of the shuffled run order.
    pub order_seed: u64,
    /// Runs between two reference runs (0: no reference).
    pub reference_every: usize,
}

/// What `validate` found, for `coloc suite validate`.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteCheck {
    /// Scenarios of the suite (the reference not counted).
    pub scenarios: usize,
    /// Runs of the reference among the suite's runs.
    pub reference_runs: usize,
    pub by_partition: Vec<(PartitionKind, usize)>,
    pub solo_profiles: BTreeSet<(String, usize, SoloShare)>,
    pub peak_memory_bytes: u64,
    /// Seconds of measured runs (warm-ups, windows, repetitions) plus set-up estimates.
    pub estimated_seconds: f64,
}

impl Suite {
    pub fn load(path: &Path, limits: &DeviceLimits) -> Result<Suite> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Suite::parse(&text, path, limits)
    }

    /// Parses and expands a suite. `limits` sets the default equal shares of green and MPS
    /// partitions.
    pub fn parse(text: &str, path: &Path, limits: &DeviceLimits) -> Result<Suite> {
        let file: SuiteFile = toml::from_str(text).map_err(|e| from_toml(path, text, &e))?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let ctx = path.display().to_string();
        let mut scenarios: Vec<Scenario> = Vec::new();
        for sweep in &file.sweeps {
            scenarios.extend(expand_sweep(sweep, &file.defaults, limits, &ctx)?);
        }
        for spec in &file.scenarios {
            scenarios.push(build_scenario(spec, &file.defaults, &ctx)?);
        }
        if scenarios.is_empty() {
            return Err(Error::invalid(ctx, "the suite has no [[sweep]] and no [[scenario]]"));
        }
        let reference = file.reference.clone().unwrap_or_default();
        if reference.every > 0 {
            let measured: usize = scenarios.iter().map(|s| s.repetitions).sum();
            scenarios.push(reference_scenario(&reference, &scenarios[0], &file.defaults, measured, &ctx)?);
        }
        let mut seen = BTreeSet::new();
        for s in &scenarios {
            if !seen.insert(s.name.clone()) {
                return Err(Error::invalid(ctx, format!("two scenarios are named `{}`", s.name)));
            }
        }
        let schedule_seed = file.defaults.seeds.unwrap_or_default().schedule;
        Ok(Suite {
            name: file.name,
            description: file.description,
            path: path.to_path_buf(),
            base_dir,
            scenarios,
            order_seed: file.order_seed.unwrap_or(schedule_seed ^ 0x6f72_6465_7273_6565),
            reference_every: reference.every,
        })
    }

    /// The suite's own scenarios (without the reference).
    pub fn measured(&self) -> impl Iterator<Item = &Scenario> {
        self.scenarios.iter().filter(|s| s.role == Role::Measured)
    }

    /// Validates every scenario against `limits` (stopping at the first problem, which names
    /// the file and the scenario).
    pub fn validate(&self, limits: &DeviceLimits) -> Result<SuiteCheck> {
        let mut solo_profiles = BTreeSet::new();
        let mut peak_memory_bytes = 0;
        let mut seconds = 0.0;
        let mut by_partition: Vec<(PartitionKind, usize)> = PartitionKind::ALL.iter().map(|p| (*p, 0)).collect();
        for s in &self.scenarios {
            let fp: Footprint = s.validate(limits, &self.base_dir).map_err(|e| match e {
                Error::Invalid { context, message } => {
                    Error::invalid(format!("{}: {context}", self.path.display()), message)
                }
                other => other,
            })?;
            solo_profiles.extend(fp.solo_profiles);
            peak_memory_bytes = peak_memory_bytes.max(fp.memory_bytes);
            // set-up per repetition: model graphs built and captured, partitions made, an MPS
            // daemon started and clients connected
            let setup = if s.partition.uses_processes() { 3.0 } else { 1.0 };
            seconds += s.run_seconds() + setup * s.repetitions as f64;
            if let Some(slot) = by_partition.iter_mut().find(|(p, _)| *p == s.partition) {
                slot.1 += 1;
            }
        }
        // a solo profile: capture plus about a second of timed replays (MPS ones in a client)
        seconds += solo_profiles
            .iter()
            .map(|(_, _, share)| if matches!(share, SoloShare::Mps { .. }) { 2.0 } else { 1.5 })
            .sum::<f64>();
        Ok(SuiteCheck {
            scenarios: self.measured().count(),
            reference_runs: self.scenarios.iter().filter(|s| s.role == Role::Reference).map(|s| s.repetitions).sum(),
            by_partition,
            solo_profiles,
            peak_memory_bytes,
            estimated_seconds: seconds,
        })
    }
}

/// One share as written in a partition entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareValue {
    /// A plain number: a priority, an SM count (green) or a percentage (MPS).
    Plain(i64),
    /// `96sm`: a number of SMs (MPS: the percentage that grants them).
    Sms(u32),
}

/// A partition entry of a sweep: mechanism and optional per-tenant shares.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionVariant {
    pub kind: PartitionKind,
    pub shares: Vec<ShareValue>,
}

/// The reference scenario: `spec`'s model (default: `first`'s first tenant at its largest
/// batch) alone on the whole GPU.
fn reference_scenario(
    spec: &ReferenceSpec,
    first: &Scenario,
    defaults: &RunSettings,
    measured_runs: usize,
    file: &str,
) -> Result<Scenario> {
    let ctx = format!("{file}, [reference]");
    let tenant = &first.tenants[0];
    let model = spec.model.clone().unwrap_or_else(|| tenant.model.clone());
    let batch = spec.batch.unwrap_or_else(|| tenant.batching.max_batch());
    if !(spec.load.is_finite() && spec.load > 0.0) {
        return Err(Error::invalid(ctx, format!("load = {} must be positive", spec.load)));
    }
    let run = RunSettings { duration_s: Some(spec.duration_s), repetitions: Some(1), ..RunSettings::default() }
        .over(defaults);
    let name = tenant_names(std::slice::from_ref(&model)).remove(0);
    let t = Tenant {
        name,
        model: model.clone(),
        seq: None,
        context: None,
        batching: run.fixed(batch),
        arrival: arrival_from(None, None, Some(spec.load), &ctx)?,
        load: Some(spec.load),
        load_of: LoadOf::Gpu,
        slo: run.slo(&ctx)?,
        share: Share::default(),
    };
    let mut s = finish(format!("reference/{model}/b{batch}"), PartitionKind::TimeSliced, vec![t], Vec::new(), &run);
    s.role = Role::Reference;
    s.repetitions = reference_runs(measured_runs, spec.every);
    Ok(s)
}

/// Reference runs among `measured` runs with one every `every`: at the start, the end and
/// every `every` runs in between.
pub fn reference_runs(measured: usize, every: usize) -> usize {
    if every == 0 { 0 } else { measured.div_ceil(every) + 1 }
}

impl PartitionVariant {
    pub fn parse(text: &str, ctx: &str) -> Result<PartitionVariant> {
        let (kind, shares) = match text.split_once(':') {
            Some((k, s)) => (k.trim(), Some(s)),
            None => (text.trim(), None),
        };
        let kind = match PartitionKind::ALL.iter().find(|p| p.name() == kind) {
            Some(p) => *p,
            None => return Err(Error::unknown("partition", kind, PartitionKind::ALL.iter().map(|p| p.name()))),
        };
        let shares = match shares {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|v| {
                    let v = v.trim();
                    let bad = || Error::invalid(ctx, format!("partition `{text}`: `{v}` is not a whole number"));
                    match v.strip_suffix("sm") {
                        Some(n) => n.parse::<u32>().map(ShareValue::Sms).map_err(|_| bad()),
                        None => v.parse::<i64>().map(ShareValue::Plain).map_err(|_| bad()),
                    }
                })
                .collect::<Result<_>>()?,
        };
        if matches!(kind, PartitionKind::TimeSliced | PartitionKind::Processes) && !shares.is_empty() {
            return Err(Error::invalid(ctx, format!("partition `{text}`: {} takes no shares", kind.name())));
        }
        if kind == PartitionKind::Streams && shares.iter().any(|s| matches!(s, ShareValue::Sms(_))) {
            return Err(Error::invalid(ctx, format!("partition `{text}`: stream shares are priorities, not SMs")));
        }
        Ok(PartitionVariant { kind, shares })
    }

    /// Shares for `n` tenants: as written, or equal ones.
    fn shares_for(&self, n: usize, limits: &DeviceLimits, ctx: &str) -> Result<Vec<Share>> {
        if !self.shares.is_empty() && self.shares.len() != n {
            return Err(Error::invalid(ctx, format!("{} shares given for {n} tenants", self.shares.len())));
        }
        let equal_sms = limits.equal_green_sms(n);
        if equal_sms == 0 && self.shares.is_empty() && matches!(self.kind, PartitionKind::Green | PartitionKind::Mps) {
            return Err(Error::invalid(
                ctx,
                format!("{n} tenants cannot each get a green group of {} SMs", limits.green_group_sms),
            ));
        }
        let pick = |i: usize, equal: ShareValue| if self.shares.is_empty() { equal } else { self.shares[i] };
        let to_u32 = |v: i64, what: &str| {
            u32::try_from(v).map_err(|_| Error::invalid(ctx, format!("{what} {v} must be a positive whole number")))
        };
        let mps_for = |sms: u32| {
            limits.mps_percent_for_sms(sms).ok_or_else(|| {
                Error::invalid(
                    ctx,
                    format!("no MPS percentage grants exactly {sms} SMs on {} (MPS grants pairs)", limits.name),
                )
            })
        };
        (0..n)
            .map(|i| {
                Ok(match self.kind {
                    PartitionKind::TimeSliced | PartitionKind::Processes => Share::default(),
                    PartitionKind::Streams => match pick(i, ShareValue::Plain(limits.priority_range.1 as i64)) {
                        ShareValue::Plain(p) => Share { priority: Some(p as i32), ..Share::default() },
                        ShareValue::Sms(_) => unreachable!("rejected by parse"),
                    },
                    PartitionKind::Green => match pick(i, ShareValue::Sms(equal_sms)) {
                        ShareValue::Plain(v) => Share { sms: Some(to_u32(v, "SMs")?), ..Share::default() },
                        ShareValue::Sms(v) => Share { sms: Some(v), ..Share::default() },
                    },
                    PartitionKind::Mps => match pick(i, ShareValue::Sms(equal_sms)) {
                        ShareValue::Plain(v) => {
                            Share { mps_percent: Some(to_u32(v, "mps percent")?), ..Share::default() }
                        }
                        ShareValue::Sms(sms) => {
                            Share { sms: Some(sms), mps_percent: Some(mps_for(sms)?), ..Share::default() }
                        }
                    },
                })
            })
            .collect()
    }

    fn label(&self, shares: &[Share]) -> String {
        let parts: Vec<String> = shares
            .iter()
            .filter_map(|s| match (s.priority, s.sms, s.mps_percent) {
                (Some(p), _, _) => Some(p.to_string()),
                (_, Some(sms), Some(_)) => Some(format!("{sms}sm")),
                (_, Some(sms), None) => Some(sms.to_string()),
                (_, None, Some(pct)) => Some(pct.to_string()),
                _ => None,
            })
            .collect();
        if parts.is_empty() || (self.kind == PartitionKind::Streams && self.shares.is_empty()) {
            self.kind.name().to_string()
        } else {
            format!("{}-{}", self.kind.name(), parts.join("_"))
        }
    }
}

/// The arrival process for a tenant: `value` gives the shape (a kind name or a table), its
/// rate comes from the table, from `rate`, or (scaled later) from `load`.
fn arrival_from(
    value: Option<&toml::Value>,
    rate: Option<f64>,
    load: Option<f64>,
    ctx: &str,
) -> Result<ArrivalProcess> {
    let mut table = match value {
        None => toml::Table::from_iter([("kind".to_string(), toml::Value::String("poisson".into()))]),
        Some(toml::Value::String(kind)) => {
            toml::Table::from_iter([("kind".to_string(), toml::Value::String(kind.clone()))])
        }
        Some(toml::Value::Table(t)) => t.clone(),
        Some(other) => {
            return Err(Error::invalid(
                ctx,
                format!("arrival must be a kind name or a table, not {}", other.type_str()),
            ));
        }
    };
    let rate_key = if table.get("kind").and_then(|k| k.as_str()) == Some("on_off") { "rate_on" } else { "rate" };
    let has_rate = table.contains_key(rate_key);
    match (rate, load, has_rate) {
        (Some(_), Some(_), _) => return Err(Error::invalid(ctx, "give `rate` or `load`, not both")),
        (Some(_), None, true) | (None, Some(_), true) => {
            return Err(Error::invalid(
                ctx,
                format!("the arrival table sets `{rate_key}`; drop it when `rate` or `load` is given"),
            ));
        }
        (Some(_), None, false) | (None, Some(_), false) => {
            let kind = table.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            if matches!(kind, "poisson" | "uniform" | "gamma" | "on_off") {
                table.insert(rate_key.into(), toml::Value::Float(1.0));
            }
        }
        (None, None, _) => {}
    }
    let process: ArrivalProcess = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Error::invalid(ctx, format!("arrival: {}", e.message().trim())))?;
    match rate {
        Some(r) => process.with_rate(r, ctx),
        None => Ok(process),
    }
}

fn tenant_names(models: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in models {
        let base = Path::new(m).file_stem().and_then(|s| s.to_str()).unwrap_or(m).to_string();
        let mut name = base.clone();
        let mut k = 2;
        while out.contains(&name) {
            name = format!("{base}#{k}");
            k += 1;
        }
        out.push(name);
    }
    out
}

/// Index combinations of `degree` out of `n`, in order (with replacement: non-decreasing).
fn combinations(n: usize, degree: usize, with_replacement: bool) -> Vec<Vec<usize>> {
    fn go(start: usize, n: usize, left: usize, rep: bool, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if left == 0 {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            go(if rep { i } else { i + 1 }, n, left - 1, rep, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    go(0, n, degree, with_replacement, &mut Vec::new(), &mut out);
    out
}

/// What a sweep offers each tenant: a load, a rate, or closed-loop clients.
enum Offered {
    Load(f64),
    Rate(f64),
    Clients(usize),
}

/// A closed loop of `clients`, with the think time (and its distribution) of the sweep's
/// arrival table, if it gives one.
fn closed_loop(value: Option<&toml::Value>, clients: usize, ctx: &str) -> Result<ArrivalProcess> {
    let mut table = match value {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t.clone(),
        Some(toml::Value::String(k)) if k == "closed_loop" => toml::Table::new(),
        Some(other) => {
            return Err(Error::invalid(
                ctx,
                format!("`clients` makes closed loops; `arrival` must be a closed_loop table, not {other}"),
            ));
        }
    };
    if table.get("kind").and_then(|k| k.as_str()).is_some_and(|k| k != "closed_loop") {
        return Err(Error::invalid(ctx, "`clients` makes closed loops; the arrival kind must be closed_loop"));
    }
    if table.contains_key("clients") {
        return Err(Error::invalid(ctx, "the arrival table sets `clients`; drop it when the sweep lists `clients`"));
    }
    table.insert("kind".into(), toml::Value::String("closed_loop".into()));
    table.insert("clients".into(), toml::Value::Integer(clients as i64));
    table.entry("think_ms").or_insert(toml::Value::Float(0.0));
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Error::invalid(ctx, format!("arrival: {}", e.message().trim())))
}

fn expand_sweep(sweep: &SweepSpec, defaults: &RunSettings, limits: &DeviceLimits, file: &str) -> Result<Vec<Scenario>> {
    let ctx = format!("{file}, sweep `{}`", sweep.name);
    let run = RunSettings {
        duration_s: sweep.duration_s,
        min_queries: sweep.min_queries,
        warmup_s: sweep.warmup_s,
        repetitions: sweep.repetitions,
        seeds: sweep.seeds,
        slo_ms: sweep.slo_ms,
        slo_factor: sweep.slo_factor,
        max_wait_ms: sweep.max_wait_ms,
        load_of: sweep.load_of,
        kernel_sample: sweep.kernel_sample,
    }
    .over(defaults);
    let sets: Vec<Vec<String>> = if !sweep.groups.is_empty() {
        if !sweep.models.is_empty() {
            return Err(Error::invalid(ctx, "give `models` (with `degree`) or `groups`, not both"));
        }
        sweep.groups.clone()
    } else {
        if sweep.models.is_empty() {
            return Err(Error::invalid(ctx, "needs `models` or `groups`"));
        }
        if sweep.degree == 0 || (!sweep.with_replacement && sweep.degree > sweep.models.len()) {
            return Err(Error::invalid(
                ctx,
                format!("degree {} does not fit {} models", sweep.degree, sweep.models.len()),
            ));
        }
        combinations(sweep.models.len(), sweep.degree, sweep.with_replacement)
            .into_iter()
            .map(|c| c.into_iter().map(|i| sweep.models[i].clone()).collect())
            .collect()
    };
    // each entry one batching per tenant
    let mut batchings: Vec<Vec<Batching>> = Vec::new();
    for set in &sets {
        if let Some(mix) = sweep.batch_mix.iter().find(|m| m.len() != set.len()) {
            return Err(Error::invalid(
                ctx,
                format!("batch_mix {mix:?} gives {} batch sizes for the {} tenants of {set:?}", mix.len(), set.len()),
            ));
        }
    }
    batchings.extend(sweep.batch.iter().map(|b| vec![run.fixed(*b)]));
    batchings.extend(sweep.batch_mix.iter().map(|m| m.iter().map(|b| run.fixed(*b)).collect()));
    batchings.extend(
        sweep.dynamic.iter().map(|d| vec![Batching::Dynamic { max_batch: d.max_batch, timeout_ms: d.timeout_ms }]),
    );
    if batchings.is_empty() {
        return Err(Error::invalid(ctx, "needs `batch` sizes, a `batch_mix` or `dynamic` batching"));
    }
    if sweep.partition.is_empty() {
        return Err(Error::invalid(ctx, "needs at least one `partition`"));
    }
    let partitions: Vec<PartitionVariant> =
        sweep.partition.iter().map(|p| PartitionVariant::parse(p, &ctx)).collect::<Result<_>>()?;
    let loads: Vec<Offered> = match (sweep.load.is_empty(), sweep.rate.is_empty(), sweep.clients.is_empty()) {
        (false, true, true) => sweep.load.iter().map(|l| Offered::Load(*l)).collect(),
        (true, false, true) => sweep.rate.iter().map(|r| Offered::Rate(*r)).collect(),
        (true, true, false) => sweep.clients.iter().map(|c| Offered::Clients(*c)).collect(),
        (true, true, true) => {
            return Err(Error::invalid(
                ctx,
                "needs `load` (fractions of solo capacity), `rate` (requests/s) or `clients` (closed loops)",
            ));
        }
        _ => return Err(Error::invalid(ctx, "give one of `load`, `rate` and `clients`")),
    };
    let slo = run.slo(&ctx)?;
    let mut out = Vec::new();
    for set in &sets {
        let names = tenant_names(set);
        for batching in &batchings {
            for partition in &partitions {
                let shares = partition.shares_for(set.len(), limits, &ctx)?;
                for offered in &loads {
                    let (load, rate) = match offered {
                        Offered::Load(l) => (Some(*l), None),
                        Offered::Rate(r) => (None, Some(*r)),
                        Offered::Clients(_) => (None, None),
                    };
                    let load_label = match offered {
                        Offered::Load(l) => format!("load{l}"),
                        Offered::Rate(r) => format!("rate{r}"),
                        Offered::Clients(c) => format!("clients{c}"),
                    };
                    let label = batching.iter().map(Batching::describe).collect::<Vec<_>>().join(",");
                    let name =
                        format!("{}/{}/{label}/{}/{load_label}", sweep.name, names.join("+"), partition.label(&shares));
                    let tenants = set
                        .iter()
                        .zip(&names)
                        .zip(&shares)
                        .enumerate()
                        .map(|(i, ((model, tname), share))| {
                            let batching = &batching[if batching.len() == 1 { 0 } else { i }];
                            Ok(Tenant {
                                name: tname.clone(),
                                model: model.clone(),
                                seq: sweep.seq,
                                context: sweep.context,
                                batching: batching.clone(),
                                arrival: match offered {
                                    Offered::Clients(c) => closed_loop(sweep.arrival.as_ref(), *c, &ctx)?,
                                    _ => arrival_from(sweep.arrival.as_ref(), rate, load, &ctx)?,
                                },
                                load,
                                load_of: run.load_of.unwrap_or_default(),
                                slo,
                                share: *share,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    out.push(finish(name, partition.kind, tenants, Vec::new(), &run));
                }
            }
        }
    }
    Ok(out)
}

fn finish(
    name: String,
    partition: PartitionKind,
    tenants: Vec<Tenant>,
    aggressors: Vec<Aggressor>,
    run: &RunSettings,
) -> Scenario {
    Scenario {
        name,
        partition,
        tenants,
        aggressors,
        duration_s: run.duration_s.unwrap_or(DURATION_S),
        min_queries: run.min_queries.unwrap_or(MIN_QUERIES),
        warmup_s: run.warmup_s.unwrap_or(WARMUP_S),
        repetitions: run.repetitions.unwrap_or(1),
        seeds: run.seeds.unwrap_or_default(),
        kernel_sample: run.kernel_sample.unwrap_or(KERNEL_SAMPLE),
        role: Role::Measured,
        scheduler: RuntimeScheduler::Independent,
        scheduler_predictor: None,
    }
}

fn build_scenario(spec: &ScenarioSpec, defaults: &RunSettings, file: &str) -> Result<Scenario> {
    let ctx = format!("{file}, scenario `{}`", spec.name);
    let run = RunSettings {
        duration_s: spec.duration_s,
        min_queries: spec.min_queries,
        warmup_s: spec.warmup_s,
        repetitions: spec.repetitions,
        seeds: spec.seeds,
        slo_ms: spec.slo_ms,
        slo_factor: spec.slo_factor,
        max_wait_ms: spec.max_wait_ms,
        load_of: spec.load_of,
        kernel_sample: spec.kernel_sample,
    }
    .over(defaults);
    if spec.tenants.is_empty() {
        return Err(Error::invalid(ctx, "needs at least one [[scenario.tenant]]"));
    }
    let default_names = tenant_names(&spec.tenants.iter().map(|t| t.model.clone()).collect::<Vec<_>>());
    let mut tenants = Vec::new();
    for (t, default_name) in spec.tenants.iter().zip(default_names) {
        let name = t.name.clone().unwrap_or(default_name);
        let tctx = format!("{ctx}, tenant `{name}`");
        let tset = RunSettings {
            slo_ms: t.slo_ms,
            slo_factor: t.slo_factor,
            max_wait_ms: t.max_wait_ms,
            load_of: t.load_of,
            ..RunSettings::default()
        }
        .over(&run);
        let batching = match (&t.batching, t.batch) {
            (Some(_), Some(_)) => return Err(Error::invalid(tctx, "give `batch` or `batching`, not both")),
            (Some(b), None) => b.clone(),
            (None, Some(b)) => tset.fixed(b),
            (None, None) => tset.fixed(1),
        };
        tenants.push(Tenant {
            arrival: arrival_from(t.arrival.as_ref(), t.rate, t.load, &tctx)?,
            name,
            model: t.model.clone(),
            seq: t.seq,
            context: t.context,
            batching,
            load: t.load,
            load_of: tset.load_of.unwrap_or_default(),
            slo: tset.slo(&tctx)?,
            share: Share { priority: t.priority, sms: t.sms, mps_percent: t.mps_percent },
        });
    }
    let mut aggressors = Vec::new();
    for (i, a) in spec.aggressors.iter().enumerate() {
        let name = a.name.clone().unwrap_or_else(|| format!("aggressor{}", i + 1));
        let actx = format!("{ctx}, aggressor `{name}`");
        let work = match (&a.stressor, &a.model) {
            (Some(s), None) => AggressorWork::Stressor { stressor: *s, intensity: a.intensity.unwrap_or(1.0) },
            (None, Some(m)) => {
                if a.intensity.is_some() {
                    return Err(Error::invalid(actx, "`intensity` applies to stressors, not models"));
                }
                AggressorWork::Model { model: m.clone(), batch: a.batch.unwrap_or(1) }
            }
            _ => {
                return Err(Error::invalid(
                    actx,
                    "give exactly one of `stressor` (fma, stream, l2, smem, chase) and `model`",
                ));
            }
        };
        aggressors.push(Aggressor {
            name,
            work,
            start_s: a.start_s,
            stop_s: a.stop_s,
            share: Share { priority: a.priority, sms: a.sms, mps_percent: a.mps_percent },
        });
    }
    if spec.scheduler == RuntimeScheduler::Clockwork && spec.partition != PartitionKind::TimeSliced {
        return Err(Error::invalid(
            ctx,
            format!(
                "scheduler = \"clockwork\" runs one batch at a time on one stream: give partition = \"time_sliced\", not \"{}\"",
                spec.partition.name()
            ),
        ));
    }
    let headroom = spec.scheduler == RuntimeScheduler::LeastHeadroom;
    let beside = match spec.scheduler {
        RuntimeScheduler::LeastHeadroom => Some("least_headroom"),
        RuntimeScheduler::SpaceTime => Some("space_time"),
        RuntimeScheduler::Independent | RuntimeScheduler::Clockwork => None,
    };
    if let Some(name) = beside.filter(|_| spec.partition != PartitionKind::Streams) {
        return Err(Error::invalid(
            ctx,
            format!(
                "scheduler = \"{name}\" launches batches beside each other on streams of the whole GPU: give partition = \"streams\", not \"{}\"",
                spec.partition.name()
            ),
        ));
    }
    if headroom != spec.scheduler_predictor.is_some() {
        return Err(Error::invalid(
            ctx,
            "scheduler = \"least_headroom\" asks a predictor whether a batch ends in time: give scheduler_predictor = \"FILE\" (saved by `coloc fit`) with it, and only with it",
        ));
    }
    Ok(Scenario {
        scheduler: spec.scheduler,
        scheduler_predictor: spec.scheduler_predictor.clone(),
        ..finish(spec.name.clone(), spec.partition, tenants, aggressors, &run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clockwork_runs_only_on_one_stream_and_says_so() {
        let text = |partition: &str| {
            format!(
                "name = \"t\"\n[[scenario]]\nname = \"cw\"\npartition = \"{partition}\"\nscheduler = \"clockwork\"\n[[scenario.tenant]]\nmodel = \"resnet50\"\nrate = 10.0\n"
            )
        };
        let limits = DeviceLimits::h200();
        let ok = Suite::parse(&text("time_sliced"), Path::new("t.toml"), &limits).unwrap();
        assert_eq!(ok.scenarios[0].scheduler, RuntimeScheduler::Clockwork);
        let err = Suite::parse(&text("green"), Path::new("t.toml"), &limits).unwrap_err().to_string();
        assert!(err.contains("t.toml") && err.contains("`cw`") && err.contains("time_sliced"), "{err}");
    }

    #[test]
    fn least_headroom_runs_on_streams_with_a_predictor_and_says_so() {
        let text = |partition: &str, predictor: &str| {
            format!(
                "name = \"t\"\n[[scenario]]\nname = \"lh\"\npartition = \"{partition}\"\nscheduler = \"least_headroom\"\n{predictor}[[scenario.tenant]]\nmodel = \"resnet50\"\nrate = 10.0\n"
            )
        };
        let limits = DeviceLimits::h200();
        let with = "scheduler_predictor = \"fitted/abacus.json\"\n";
        let ok = Suite::parse(&text("streams", with), Path::new("t.toml"), &limits).unwrap();
        assert_eq!(ok.scenarios[0].scheduler, RuntimeScheduler::LeastHeadroom);
        assert_eq!(ok.scenarios[0].scheduler_predictor.as_deref(), Some(Path::new("fitted/abacus.json")));
        let err = Suite::parse(&text("green", with), Path::new("t.toml"), &limits).unwrap_err().to_string();
        assert!(err.contains("`lh`") && err.contains("streams"), "{err}");
        let err = Suite::parse(&text("streams", ""), Path::new("t.toml"), &limits).unwrap_err().to_string();
        assert!(err.contains("`lh`") && err.contains("scheduler_predictor"), "{err}");
        // a predictor for a scheduler that asks none is refused too
        let stray = "name = \"t\"\n[[scenario]]\nname = \"s\"\npartition = \"streams\"\nscheduler_predictor = \"a.json\"\n[[scenario.tenant]]\nmodel = \"resnet50\"\nrate = 10.0\n";
        assert!(Suite::parse(stray, Path::new("t.toml"), &limits).is_err());
    }

    #[test]
    fn space_time_runs_on_streams_without_a_predictor_and_says_so() {
        let text = |partition: &str, predictor: &str| {
            format!(
                "name = \"t\"\n[[scenario]]\nname = \"st\"\npartition = \"{partition}\"\nscheduler = \"space_time\"\n{predictor}[[scenario.tenant]]\nmodel = \"resnet50\"\nrate = 10.0\n"
            )
        };
        let limits = DeviceLimits::h200();
        let ok = Suite::parse(&text("streams", ""), Path::new("t.toml"), &limits).unwrap();
        assert_eq!(ok.scenarios[0].scheduler, RuntimeScheduler::SpaceTime);
        let err = Suite::parse(&text("time_sliced", ""), Path::new("t.toml"), &limits).unwrap_err().to_string();
        assert!(err.contains("`st`") && err.contains("space_time") && err.contains("streams"), "{err}");
        let err = Suite::parse(&text("streams", "scheduler_predictor = \"a.json\"\n"), Path::new("t.toml"), &limits)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`st`") && err.contains("scheduler_predictor"), "{err}");
    }

    #[test]
    fn combinations_count_as_binomials() {
        assert_eq!(combinations(4, 2, false).len(), 6);
        assert_eq!(combinations(4, 2, true).len(), 10);
        assert_eq!(combinations(3, 3, false), vec![vec![0, 1, 2]]);
        assert_eq!(combinations(3, 1, false).len(), 3);
    }

    #[test]
    fn partition_variants_parse_with_and_without_shares() {
        assert_eq!(
            PartitionVariant::parse("green", "t").unwrap(),
            PartitionVariant { kind: PartitionKind::Green, shares: vec![] }
        );
        use ShareValue::{Plain, Sms};
        assert_eq!(PartitionVariant::parse("mps:75,25", "t").unwrap().shares, vec![Plain(75), Plain(25)]);
        assert_eq!(PartitionVariant::parse("mps:96sm,24sm", "t").unwrap().shares, vec![Sms(96), Sms(24)]);
        assert_eq!(PartitionVariant::parse("streams:0,-5", "t").unwrap().shares, vec![Plain(0), Plain(-5)]);
        assert!(PartitionVariant::parse("streams:0sm,1", "t").is_err());
        assert!(PartitionVariant::parse("processes:1,1", "t").unwrap_err().to_string().contains("no shares"));
        let err = PartitionVariant::parse("gren", "t").unwrap_err().to_string();
        assert!(err.contains("unknown partition `gren`") && err.contains("green"), "{err}");
        assert!(PartitionVariant::parse("time_sliced:1", "t").is_err());
        assert!(PartitionVariant::parse("mps:a,b", "t").unwrap_err().to_string().contains("`a`"));
    }

    #[test]
    fn equal_shares_split_the_device() {
        let h = DeviceLimits::h200();
        let green = PartitionVariant::parse("green", "t").unwrap().shares_for(2, &h, "t").unwrap();
        assert_eq!(green.iter().map(|s| s.sms.unwrap()).collect::<Vec<_>>(), vec![56, 56]);
        // equal MPS shares grant the SMs of equal green shares: 56 SMs is 43%, 40 SMs 31%
        let mps = PartitionVariant::parse("mps", "t").unwrap().shares_for(2, &h, "t").unwrap();
        assert_eq!(mps.iter().map(|s| (s.mps_percent.unwrap(), s.sms.unwrap())).collect::<Vec<_>>(), vec![(43, 56); 2]);
        let mps = PartitionVariant::parse("mps", "t").unwrap().shares_for(3, &h, "t").unwrap();
        assert_eq!(mps.iter().map(|s| (s.mps_percent.unwrap(), s.sms.unwrap())).collect::<Vec<_>>(), vec![(31, 40); 3]);
        let uneven = PartitionVariant::parse("mps:96sm,24sm", "t").unwrap().shares_for(2, &h, "t").unwrap();
        assert_eq!(uneven.iter().map(|s| s.mps_percent.unwrap()).collect::<Vec<_>>(), vec![73, 19]);
        assert!(PartitionVariant::parse("mps:95sm,24sm", "t").unwrap().shares_for(2, &h, "t").is_err());
        assert!(PartitionVariant::parse("green:64", "t").unwrap().shares_for(2, &h, "t").is_err());
    }

    #[test]
    fn arrival_shapes_take_their_rate_from_rate_or_load() {
        let gamma: toml::Value =
            toml::from_str::<toml::Table>("a = { kind = \"gamma\", cv = 2.0 }").unwrap()["a"].clone();
        assert_eq!(
            arrival_from(Some(&gamma), Some(40.0), None, "t").unwrap(),
            ArrivalProcess::Gamma { rate: 40.0, cv: 2.0 }
        );
        assert_eq!(arrival_from(None, None, Some(0.5), "t").unwrap().nominal_rate(), Some(1.0));
        let with_rate: toml::Value =
            toml::from_str::<toml::Table>("a = { kind = \"poisson\", rate = 5.0 }").unwrap()["a"].clone();
        assert_eq!(arrival_from(Some(&with_rate), None, None, "t").unwrap(), ArrivalProcess::Poisson { rate: 5.0 });
        assert!(arrival_from(Some(&with_rate), Some(3.0), None, "t").is_err());
        assert!(arrival_from(None, None, None, "t").unwrap_err().to_string().contains("rate"));
    }

    #[test]
    fn repeated_models_get_numbered_tenant_names() {
        let names = tenant_names(&["resnet50".into(), "resnet50".into(), "models/x.toml".into()]);
        assert_eq!(names, vec!["resnet50", "resnet50#2", "x"]);
    }
}
