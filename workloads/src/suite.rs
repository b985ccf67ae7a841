//! Suites: named sweeps over models x batch sizes x co-location degree x partition settings x
//! load, plus fully written scenarios, in one TOML file that expands into [`Scenario`]s.
//!
//! ```toml
//! name = "example"
//! [defaults]
//! duration_s = 5.0
//! slo_factor = 5.0            # SLO = 5 x solo latency (or slo_ms = 20.0)
//!
//! [[sweep]]
//! name = "pairs"
//! models = ["resnet50", "bert_base", "vit_b16"]
//! degree = 2                  # every pair of the models (with_replacement = true adds a+a)
//! batch = [1, 8]
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
//! `streams:0,-5` (priorities), `green:96,24` (SMs), `mps:75,25` (active-thread percent).
//! Without shares, tenants get equal ones: all priority 0, an equal number of green groups,
//! an equal percentage.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arrival::ArrivalProcess;
use crate::error::{Error, Result, from_toml};
use crate::scenario::{
    Aggressor, AggressorWork, Batching, DeviceLimits, Footprint, PartitionKind, Scenario, Seeds, Share, Slo,
    StressorName, Tenant,
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
}

/// Defaults when nothing sets them.
const DURATION_S: f64 = 10.0;
const MIN_QUERIES: usize = 100;
const WARMUP_S: f64 = 1.0;
const SLO_FACTOR: f64 = 5.0;

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
        }
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
    #[serde(default)]
    defaults: RunSettings,
    #[serde(default, rename = "sweep")]
    sweeps: Vec<SweepSpec>,
    #[serde(default, rename = "scenario")]
    scenarios: Vec<ScenarioSpec>,
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
    #[serde(default)]
    dynamic: Vec<DynamicSpec>,
    partition: Vec<String>,
    #[serde(default)]
    load: Vec<f64>,
    #[serde(default)]
    rate: Vec<f64>,
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
    pub scenarios: Vec<Scenario>,
}

/// What `validate` found, for `coloc suite validate`.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteCheck {
    pub scenarios: usize,
    pub by_partition: Vec<(PartitionKind, usize)>,
    pub solo_profiles: BTreeSet<(String, usize)>,
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
        let mut scenarios = Vec::new();
        for sweep in &file.sweeps {
            scenarios.extend(expand_sweep(sweep, &file.defaults, limits, &ctx)?);
        }
        for spec in &file.scenarios {
            scenarios.push(build_scenario(spec, &file.defaults, &ctx)?);
        }
        if scenarios.is_empty() {
            return Err(Error::invalid(ctx, "the suite has no [[sweep]] and no [[scenario]]"));
        }
        let mut seen = BTreeSet::new();
        for s in &scenarios {
            if !seen.insert(s.name.clone()) {
                return Err(Error::invalid(ctx, format!("two scenarios are named `{}`", s.name)));
            }
        }
        Ok(Suite { name: file.name, description: file.description, path: path.to_path_buf(), base_dir, scenarios })
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
            let setup = if s.partition == PartitionKind::Mps { 3.0 } else { 1.0 };
            seconds += s.run_seconds() + setup * s.repetitions as f64;
            if let Some(slot) = by_partition.iter_mut().find(|(p, _)| *p == s.partition) {
                slot.1 += 1;
            }
        }
        // a solo profile: capture plus about a second of timed replays
        seconds += 1.5 * solo_profiles.len() as f64;
        Ok(SuiteCheck {
            scenarios: self.scenarios.len(),
            by_partition,
            solo_profiles,
            peak_memory_bytes,
            estimated_seconds: seconds,
        })
    }
}

/// A partition entry of a sweep: mechanism and optional per-tenant shares.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionVariant {
    pub kind: PartitionKind,
    pub shares: Vec<i64>,
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
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| Error::invalid(ctx, format!("partition `{text}`: `{v}` is not a whole number")))
                })
                .collect::<Result<_>>()?,
        };
        if kind == PartitionKind::TimeSliced && !shares.is_empty() {
            return Err(Error::invalid(ctx, format!("partition `{text}`: time_sliced takes no shares")));
        }
        Ok(PartitionVariant { kind, shares })
    }

    /// Shares for `n` tenants: as written, or equal ones.
    fn shares_for(&self, n: usize, limits: &DeviceLimits, ctx: &str) -> Result<Vec<Share>> {
        if !self.shares.is_empty() && self.shares.len() != n {
            return Err(Error::invalid(ctx, format!("{} shares given for {n} tenants", self.shares.len())));
        }
        let pick = |i: usize, equal: i64| if self.shares.is_empty() { equal } else { self.shares[i] };
        let to_u32 = |v: i64, what: &str| {
            u32::try_from(v).map_err(|_| Error::invalid(ctx, format!("{what} {v} must be a positive whole number")))
        };
        (0..n)
            .map(|i| {
                Ok(match self.kind {
                    PartitionKind::TimeSliced => Share::default(),
                    PartitionKind::Streams => {
                        Share { priority: Some(pick(i, limits.priority_range.1 as i64) as i32), ..Share::default() }
                    }
                    PartitionKind::Green => {
                        let equal = (limits.green_groups as usize / n.max(1)) as i64 * limits.green_group_sms as i64;
                        if equal == 0 && self.shares.is_empty() {
                            return Err(Error::invalid(
                                ctx,
                                format!("{n} tenants cannot each get a green group of {} SMs", limits.green_group_sms),
                            ));
                        }
                        Share { sms: Some(to_u32(pick(i, equal), "SMs")?), ..Share::default() }
                    }
                    PartitionKind::Mps => Share {
                        mps_percent: Some(to_u32(pick(i, (100 / n.max(1)) as i64), "mps percent")?),
                        ..Share::default()
                    },
                })
            })
            .collect()
    }

    fn label(&self, shares: &[Share]) -> String {
        let parts: Vec<String> = shares
            .iter()
            .filter_map(|s| s.sms.or(s.mps_percent).map(|v| v.to_string()).or(s.priority.map(|p| p.to_string())))
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
    let mut batchings: Vec<Batching> = sweep.batch.iter().map(|b| Batching::Fixed { batch: *b }).collect();
    batchings
        .extend(sweep.dynamic.iter().map(|d| Batching::Dynamic { max_batch: d.max_batch, timeout_ms: d.timeout_ms }));
    if batchings.is_empty() {
        return Err(Error::invalid(ctx, "needs `batch` sizes or `dynamic` batching"));
    }
    if sweep.partition.is_empty() {
        return Err(Error::invalid(ctx, "needs at least one `partition`"));
    }
    let partitions: Vec<PartitionVariant> =
        sweep.partition.iter().map(|p| PartitionVariant::parse(p, &ctx)).collect::<Result<_>>()?;
    let loads: Vec<(Option<f64>, Option<f64>)> = match (sweep.load.is_empty(), sweep.rate.is_empty()) {
        (false, true) => sweep.load.iter().map(|l| (Some(*l), None)).collect(),
        (true, false) => sweep.rate.iter().map(|r| (None, Some(*r))).collect(),
        (true, true) => {
            return Err(Error::invalid(ctx, "needs `load` (fractions of solo capacity) or `rate` (requests/s)"));
        }
        (false, false) => return Err(Error::invalid(ctx, "give `load` or `rate`, not both")),
    };
    let slo = run.slo(&ctx)?;
    let mut out = Vec::new();
    for set in &sets {
        let names = tenant_names(set);
        for batching in &batchings {
            for partition in &partitions {
                let shares = partition.shares_for(set.len(), limits, &ctx)?;
                for (load, rate) in &loads {
                    let load_label = match (load, rate) {
                        (Some(l), _) => format!("load{l}"),
                        (_, Some(r)) => format!("rate{r}"),
                        _ => unreachable!("one of load and rate"),
                    };
                    let name = format!(
                        "{}/{}/{}/{}/{load_label}",
                        sweep.name,
                        names.join("+"),
                        batching.describe(),
                        partition.label(&shares)
                    );
                    let tenants = set
                        .iter()
                        .zip(&names)
                        .zip(&shares)
                        .map(|((model, tname), share)| {
                            Ok(Tenant {
                                name: tname.clone(),
                                model: model.clone(),
                                seq: sweep.seq,
                                context: sweep.context,
                                batching: batching.clone(),
                                arrival: arrival_from(sweep.arrival.as_ref(), *rate, *load, &ctx)?,
                                load: *load,
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
        let batching = match (&t.batching, t.batch) {
            (Some(_), Some(_)) => return Err(Error::invalid(tctx, "give `batch` or `batching`, not both")),
            (Some(b), None) => b.clone(),
            (None, Some(b)) => Batching::Fixed { batch: b },
            (None, None) => Batching::Fixed { batch: 1 },
        };
        let tslo = RunSettings { slo_ms: t.slo_ms, slo_factor: t.slo_factor, ..RunSettings::default() }.over(&run);
        tenants.push(Tenant {
            arrival: arrival_from(t.arrival.as_ref(), t.rate, t.load, &tctx)?,
            name,
            model: t.model.clone(),
            seq: t.seq,
            context: t.context,
            batching,
            load: t.load,
            slo: tslo.slo(&tctx)?,
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
    Ok(finish(spec.name.clone(), spec.partition, tenants, aggressors, &run))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(PartitionVariant::parse("mps:75,25", "t").unwrap().shares, vec![75, 25]);
        assert_eq!(PartitionVariant::parse("streams:0,-5", "t").unwrap().shares, vec![0, -5]);
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
        let mps = PartitionVariant::parse("mps", "t").unwrap().shares_for(3, &h, "t").unwrap();
        assert_eq!(mps.iter().map(|s| s.mps_percent.unwrap()).collect::<Vec<_>>(), vec![33, 33, 33]);
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
