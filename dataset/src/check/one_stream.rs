//! On one stream a tenant's batch runs with nothing beside it, so its GPU time is the graph's
//! time alone: no faster than the whole-GPU solo profile of the same graph, measured in the same
//! process by the same clock (stamps), and, for a tenant alone in its run, no slower either.
//! (A tenant that shares the stream may run slower: the model before it leaves the L2 cold, and
//! its median, over batches after its own and after another model's, can then hide a fast
//! state: mobilenet_v2 b1 runs 1.12x after another model.)
//! When they disagree, the baseline every interference figure is divided by is not the state
//! the runs ran in.
//!
//! It catches a real state change: a one-stream run right after a run in other processes (MPS
//! clients, plain processes) replays resnet50 5-8% faster than its profile, and the run after it
//! does not (`docs/h200.md`, "The reference's two speeds").

use std::collections::{BTreeMap, BTreeSet};

use coloc_workloads::scenario::{PartitionKind, SoloShare};

use super::{Finding, Invariant, Problems, Tables};
use crate::manifest::CeilingsMeasured;
use crate::rows::{AggressorRow, BatchRow, RunRow, TenantRow};
use crate::solo_rows::SoloModelRow;

/// How far a one-stream tenant's median batch time may be from its solo profile: run to run on
/// one GPU a lone tenant and its profile agree within 1.1% (the H200 datasets without the state
/// change above).
pub const ONE_STREAM_TOLERANCE: f64 = 0.03;

/// Fewer batches than this at one graph size give no median worth comparing.
const MIN_BATCHES: usize = 20;

/// A tenant on one stream (no aggressor in its run) at one graph size, beside its solo profile
/// on the whole GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct OneStreamTenant {
    pub run: String,
    pub tenant: u16,
    pub model: String,
    pub bucket: u16,
    /// The only tenant of its run.
    pub alone: bool,
    pub batches: usize,
    pub median_us: f64,
    pub profiled_us: f64,
}

impl OneStreamTenant {
    /// Measured over profiled.
    pub fn ratio(&self) -> f64 {
        self.median_us / self.profiled_us
    }

    /// Not faster than its profile; if alone, not slower either (within the tolerance).
    pub fn agrees(&self) -> bool {
        let r = self.ratio();
        r >= 1.0 - ONE_STREAM_TOLERANCE && (!self.alone || r <= 1.0 + ONE_STREAM_TOLERANCE)
    }
}

/// Every tenant on one stream, per graph size it ran at least [`MIN_BATCHES`] times and that
/// has a whole-GPU profile.
pub fn one_stream_tenants(t: &Tables) -> Vec<OneStreamTenant> {
    OneStreamTables {
        runs: &t.runs,
        tenants: &t.tenants,
        aggressors: &t.aggressors,
        batches: &t.batches,
        solo_models: &t.solo_models,
    }
    .tenants()
}

/// The tables the one-stream judgement reads, borrowed: a reader that has not loaded every
/// table of a dataset (the predictors' examples) judges with what it has.
#[derive(Clone, Copy, Debug)]
pub struct OneStreamTables<'a> {
    pub runs: &'a [RunRow],
    pub tenants: &'a [TenantRow],
    pub aggressors: &'a [AggressorRow],
    pub batches: &'a [BatchRow],
    pub solo_models: &'a [SoloModelRow],
}

impl OneStreamTables<'_> {
    /// The runs in a state their solo profiles were not measured in: a one-stream tenant of
    /// theirs disagrees with its profile (see [`OneStreamTenant::agrees`]). The state is the
    /// process's, so every batch of such a run is in it.
    pub fn off_profile_runs(&self) -> BTreeSet<String> {
        self.tenants().into_iter().filter(|x| !x.agrees()).map(|x| x.run).collect()
    }

    /// Every tenant on one stream, as [`one_stream_tenants`].
    pub fn tenants(&self) -> Vec<OneStreamTenant> {
        let profile = whole_gpu_profiles(self.solo_models);
        let one_stream: BTreeSet<&str> =
            self.runs.iter().filter(|r| r.partition == PartitionKind::TimeSliced).map(|r| r.run.as_str()).collect();
        let with_aggressors: BTreeSet<&str> = self.aggressors.iter().map(|a| a.run.as_str()).collect();
        let mut tenants_of: BTreeMap<&str, Vec<&TenantRow>> = BTreeMap::new();
        for x in self.tenants {
            tenants_of.entry(x.run.as_str()).or_default().push(x);
        }
        // (run, tenant) -> (model, alone)
        let on_one_stream: BTreeMap<(&str, u16), (&str, bool)> = tenants_of
            .iter()
            .filter(|(run, _)| one_stream.contains(*run) && !with_aggressors.contains(*run))
            .flat_map(|(run, xs)| xs.iter().map(move |x| ((*run, x.tenant), (x.model.as_str(), xs.len() == 1))))
            .collect();
        let mut times: BTreeMap<(&str, u16, u16), Vec<i64>> = BTreeMap::new();
        for b in
            self.batches.iter().filter(|b| b.start_ns >= 0 && on_one_stream.contains_key(&(b.run.as_str(), b.tenant)))
        {
            times.entry((b.run.as_str(), b.tenant, b.bucket)).or_default().push(b.end_ns - b.start_ns);
        }
        let mut out = Vec::new();
        for ((run, tenant, bucket), mut ns) in times {
            let (model, alone) = on_one_stream[&(run, tenant)];
            let Some(&profiled_us) = profile.get(&(model, bucket as u32)) else { continue };
            if ns.len() < MIN_BATCHES {
                continue;
            }
            let mid = ns.len() / 2;
            let median_us = *ns.select_nth_unstable(mid).1 as f64 / 1e3;
            out.push(OneStreamTenant {
                run: run.to_string(),
                tenant,
                model: model.to_string(),
                bucket,
                alone,
                batches: ns.len(),
                median_us,
                profiled_us,
            });
        }
        out
    }
}

/// Per (model, batch), the stamped replay time of its one whole-GPU solo profile. A (model,
/// batch) profiled more than once on the whole GPU (other sequence lengths) is ambiguous and
/// left out: nothing is judged against it.
pub(super) fn whole_gpu_profiles(models: &[SoloModelRow]) -> BTreeMap<(&str, u32), f64> {
    let mut profiles: BTreeMap<(&str, u32), Vec<f64>> = BTreeMap::new();
    for m in models.iter().filter(|m| m.share == SoloShare::Device) {
        profiles.entry((m.model.as_str(), m.batch)).or_default().push(m.stamped_p50_us);
    }
    profiles.into_iter().filter(|(_, v)| v.len() == 1).map(|(k, v)| (k, v[0])).collect()
}

/// `ceilings`: where the dataset's ceilings were measured (none: before that was recorded, in
/// the measuring process); a failure of a dataset that measured them in its own process is
/// told the known cause, and what to do.
pub fn one_stream_as_profiled(t: &Tables, ceilings: Option<CeilingsMeasured>) -> Finding {
    let tenants = one_stream_tenants(t);
    let mut faster = Problems::new("one-stream tenant(s) faster than their solo profile by more than 3%");
    let mut slower = Problems::new("lone one-stream tenant(s) slower than their solo profile by more than 3%");
    debug_assert_eq!(ONE_STREAM_TOLERANCE, 0.03, "the problems above say 3%");
    for x in tenants.iter().filter(|x| !x.agrees()) {
        let line = || {
            format!(
                "{} tenant {} ({} b{}): median batch {:.1} us, solo profile {:.1} us ({:.3}x)",
                x.run,
                x.tenant,
                x.model,
                x.bucket,
                x.median_us,
                x.profiled_us,
                x.ratio()
            )
        };
        if x.ratio() < 1.0 { faster.push(line) } else { slower.push(line) }
    }
    let mut problems = Vec::new();
    // the known cause explains tenants faster than their profile, not slower ones
    let hint = (faster.count() > 0).then_some(ceilings).and_then(|where_| match where_ {
        None => Some(
            "this dataset predates the manifest's record of where the ceilings were measured (coloc 812a8c3); every such dataset measured them in the measuring process, one way into the state that leaves its profiles and one-stream runs slow but for the runs after other processes; measuring them apart does not end that state (docs/h200.md), so leave these runs out (the predictors do)",
        ),
        Some(CeilingsMeasured::InTheMeasuringProcess) => Some(
            "the ceilings were measured in the measuring process (it had no worker executable), one way into the state that leaves its profiles and one-stream runs slow but for the runs after other processes (docs/h200.md; measuring them apart does not end it): leave these runs out (the predictors do)",
        ),
        Some(CeilingsMeasured::InAProcessOfTheirOwn) => None,
    });
    faster.into_lines(&mut problems);
    slower.into_lines(&mut problems);
    problems.extend(hint.map(String::from));
    Finding::new(Invariant::OneStreamAsProfiled, tenants.len(), problems)
}
