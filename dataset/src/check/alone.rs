//! A tenant alone on one stream runs the same graph its whole-GPU solo profile timed: two
//! measurements of one thing, in one process, by one clock (stamps). When they disagree, the
//! baseline every interference figure is divided by is not the state the runs ran in.
//!
//! It catches a real state change: a one-stream run right after a run in other processes (MPS
//! clients, plain processes) replays resnet50 5-8% faster than its profile, and the run after it
//! does not (`docs/h200.md`, "The reference's two speeds").

use std::collections::{BTreeMap, BTreeSet};

use coloc_workloads::scenario::{PartitionKind, SoloShare};

use super::{Finding, Invariant, Problems, Tables};
use crate::rows::TenantRow;

/// How far a lone tenant's median batch time may be from its solo profile: run to run on one
/// GPU the two agree within 1.1% (the H200 datasets without the state change above).
pub const ALONE_TOLERANCE: f64 = 0.03;

/// Fewer batches than this at one graph size give no median worth comparing.
const MIN_BATCHES: usize = 20;

/// A tenant alone on one stream (no other tenant, no aggressor) at one graph size, beside its
/// solo profile on the whole GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct LoneTenant {
    pub run: String,
    pub model: String,
    pub bucket: u16,
    pub batches: usize,
    pub median_us: f64,
    pub profiled_us: f64,
}

impl LoneTenant {
    /// Measured over profiled.
    pub fn ratio(&self) -> f64 {
        self.median_us / self.profiled_us
    }

    pub fn agrees(&self) -> bool {
        (self.ratio() - 1.0).abs() <= ALONE_TOLERANCE
    }
}

/// Every lone tenant on one stream, per graph size it ran at least [`MIN_BATCHES`] times and
/// that has a whole-GPU profile.
pub fn lone_tenants(t: &Tables) -> Vec<LoneTenant> {
    let profile: BTreeMap<(&str, u32), f64> = t
        .solo_models
        .iter()
        .filter(|m| m.share == SoloShare::Device)
        .map(|m| ((m.model.as_str(), m.batch), m.stamped_p50_us))
        .collect();
    let one_stream: BTreeSet<&str> =
        t.runs.iter().filter(|r| r.partition == PartitionKind::TimeSliced).map(|r| r.run.as_str()).collect();
    let with_aggressors: BTreeSet<&str> = t.aggressors.iter().map(|a| a.run.as_str()).collect();
    let mut tenants_of: BTreeMap<&str, Vec<&TenantRow>> = BTreeMap::new();
    for x in &t.tenants {
        tenants_of.entry(x.run.as_str()).or_default().push(x);
    }
    let alone: BTreeMap<(&str, u16), &str> = tenants_of
        .iter()
        .filter(|(run, xs)| xs.len() == 1 && one_stream.contains(*run) && !with_aggressors.contains(*run))
        .map(|(run, xs)| ((*run, xs[0].tenant), xs[0].model.as_str()))
        .collect();
    let mut times: BTreeMap<(&str, u16, u16), Vec<i64>> = BTreeMap::new();
    for b in t.batches.iter().filter(|b| b.start_ns >= 0 && alone.contains_key(&(b.run.as_str(), b.tenant))) {
        times.entry((b.run.as_str(), b.tenant, b.bucket)).or_default().push(b.end_ns - b.start_ns);
    }
    let mut out = Vec::new();
    for ((run, tenant, bucket), mut ns) in times {
        let model = alone[&(run, tenant)];
        let Some(&profiled_us) = profile.get(&(model, bucket as u32)) else { continue };
        if ns.len() < MIN_BATCHES {
            continue;
        }
        let mid = ns.len() / 2;
        let median_us = *ns.select_nth_unstable(mid).1 as f64 / 1e3;
        out.push(LoneTenant {
            run: run.to_string(),
            model: model.to_string(),
            bucket,
            batches: ns.len(),
            median_us,
            profiled_us,
        });
    }
    out
}

pub fn alone_as_profiled(t: &Tables) -> Finding {
    let lone = lone_tenants(t);
    let mut off = Problems::new("lone tenant(s) on one stream off their solo profile by more than 3%");
    for x in lone.iter().filter(|x| !x.agrees()) {
        off.push(|| {
            format!(
                "{} {} b{}: median batch {:.1} us, solo profile {:.1} us ({:.3}x)",
                x.run,
                x.model,
                x.bucket,
                x.median_us,
                x.profiled_us,
                x.ratio()
            )
        });
    }
    let mut problems = Vec::new();
    off.into_lines(&mut problems);
    Finding::new(Invariant::AloneAsProfiled, lone.len(), problems)
}
