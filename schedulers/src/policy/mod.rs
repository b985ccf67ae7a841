//! Placement planners: given a workload at a scale of its rates and what was measured, where
//! each model runs, on how much of which GPU, at what batch size. Each is described with its
//! source in `docs/schedulers.md`; all judge their candidates with the same
//! [`Judge`](crate::estimate::Judge) and differ in what they search and which predictor they
//! trust.

mod baseline;
mod gpulet;
mod runtime;
mod search;

use coloc_predictors::predictor::Predictor;
use coloc_workloads::scenario::{PartitionKind, RuntimeScheduler, SoloShare};

use crate::error::Result;
use crate::estimate::{Judge, Slot};
use crate::placement::{GpuPlan, Placed, Placement};
use crate::sim::Scheduler;

/// A placement planner.
#[derive(Clone, Copy)]
pub enum Policy<'a> {
    /// One model at a time: every tenant of a GPU on one stream.
    TimeSharing,
    /// Equal spatial shares for the tenants of each GPU.
    SpaceOnly,
    /// Shares in proportion to each model's demand, without an interference model (gpulet's
    /// public code's greedy baseline).
    Proportional,
    /// gpulet: incremental scheduling by rate over its share set, elastic partitioning, at
    /// most two partitions a GPU where the workload allows, with or without an interference
    /// model.
    Gpulet { interference: Option<&'a dyn Predictor> },
    /// A greedy search over every measured share, placing each model where it adds least and
    /// growing co-runners' shares until the predictor says everyone fits: iGniter's search
    /// with iGniter's model, or any fitted predictor's.
    Greedy { predictor: &'a dyn Predictor, label: &'a str },
    /// Clockwork: each GPU's tenants on one stream, batches sized and ordered by deadline at
    /// run time ([`RuntimeScheduler::Clockwork`], which the harness runs).
    Clockwork,
    /// Each GPU's tenants on streams of the whole GPU, each batch launched as soon as it is due:
    /// first come first served, the harness's own loops on streams.
    Fcfs,
    /// Abacus: as [`Policy::Fcfs`], launched least headroom first and held back where
    /// `predictor` (saved in `file`) expects a batch to miss its deadline
    /// ([`Scheduler::LeastHeadroom`]; the harness runs it as [`RuntimeScheduler::LeastHeadroom`]).
    Abacus { predictor: &'a dyn Predictor, label: &'a str, file: &'a std::path::Path },
    /// Dynamic space-time sharing: as [`Policy::Fcfs`], with stragglers evicted to run alone
    /// while the load lasts ([`RuntimeScheduler::SpaceTime`], which the harness runs).
    SpaceTime,
}

impl Policy<'_> {
    pub fn name(&self) -> String {
        match self {
            Policy::TimeSharing => "time-sharing".into(),
            Policy::SpaceOnly => "space-only".into(),
            Policy::Proportional => "proportional".into(),
            Policy::Gpulet { interference: None } => "gpulet".into(),
            Policy::Gpulet { interference: Some(_) } => "gpulet+int".into(),
            Policy::Greedy { label, .. } => format!("greedy+{label}"),
            Policy::Clockwork => "clockwork".into(),
            Policy::Fcfs => "fcfs".into(),
            Policy::Abacus { label, .. } => format!("abacus+{label}"),
            Policy::SpaceTime => "space-time".into(),
        }
    }

    /// How its plans' batches launch at run time.
    pub fn scheduler(&self) -> Scheduler<'_> {
        match self {
            Policy::Abacus { predictor, .. } => Scheduler::LeastHeadroom { predictor: *predictor },
            _ => Scheduler::Harness,
        }
    }

    /// A plan for the workload's rates times `scale`, or `None` where the policy finds none
    /// within the workload's GPUs.
    pub fn plan(&self, judge: &Judge, scale: f64) -> Result<Option<Placement>> {
        let gpus = match self {
            Policy::TimeSharing => baseline::time_sharing(&judge.with(None), scale)?,
            Policy::SpaceOnly => baseline::space_only(&judge.with(None), scale)?,
            Policy::Proportional => baseline::proportional(&judge.with(None), scale)?,
            Policy::Gpulet { interference } => gpulet::plan(&judge.with(*interference), scale)?,
            Policy::Greedy { predictor, .. } => search::plan(&judge.with(Some(*predictor)), scale)?,
            Policy::Clockwork => runtime::clockwork(&judge.with(None), scale)?,
            Policy::Fcfs | Policy::Abacus { .. } | Policy::SpaceTime => runtime::streams(&judge.with(None), scale)?,
        };
        let Some(gpus) = gpus else { return Ok(None) };
        let mut gpus = placed(judge, gpus)?;
        for g in &mut gpus {
            match self {
                Policy::Clockwork => g.scheduler = RuntimeScheduler::Clockwork,
                Policy::SpaceTime => g.scheduler = RuntimeScheduler::SpaceTime,
                Policy::Abacus { file, .. } => {
                    g.scheduler = RuntimeScheduler::LeastHeadroom;
                    g.scheduler_predictor = Some(file.to_path_buf());
                }
                _ => {}
            }
        }
        Ok(Some(Placement { policy: self.name(), scale, gpus }))
    }
}

/// The tenants of one GPU while a planner works.
#[derive(Clone, Debug)]
struct Layout {
    partition: PartitionKind,
    slots: Vec<Slot>,
}

impl Layout {
    fn spatial(judge: &Judge) -> Layout {
        Layout { partition: judge.menu.mechanism().partition(), slots: Vec::new() }
    }

    /// The fraction of the GPU its slots' shares take.
    fn used(&self, judge: &Judge) -> f64 {
        self.slots.iter().map(|s| judge.menu.fraction(s.share)).sum()
    }
}

/// Gives out what a layout leaves of its GPU: one measured step at a time to the busiest tenant
/// that can grow within the GPU and still fit, until none can. A planner that sizes tenants
/// to their rate (gpulet, iGniter) would otherwise leave the rest of a fixed number of GPUs
/// idle, and its plans no headroom.
fn fill(judge: &Judge, layout: &mut Layout) -> Result<()> {
    let mut stuck = vec![false; layout.slots.len()];
    loop {
        let expected = judge.expect(layout.partition, &layout.slots)?;
        let used = layout.used(judge);
        let mut best: Option<(usize, SoloShare)> = None;
        for (i, (slot, e)) in layout.slots.iter().zip(&expected).enumerate() {
            if stuck[i] {
                continue;
            }
            let own = judge.menu.shares(&judge.workload.models[slot.served].model);
            let now = judge.menu.fraction(slot.share);
            let Some(next) = own.iter().find(|s| judge.menu.fraction(**s) > now + 1e-9) else { continue };
            if used - now + judge.menu.fraction(*next) > 1.0 + 1e-9 {
                continue;
            }
            if best.is_none_or(|(b, _)| e.busy > expected[b].busy) {
                best = Some((i, *next));
            }
        }
        let Some((i, next)) = best else { return Ok(()) };
        let before = layout.slots[i].share;
        layout.slots[i].share = next;
        if !judge.fits(layout.partition, &layout.slots)? {
            layout.slots[i].share = before;
            stuck[i] = true;
        }
    }
}

/// Rates of the workload times `scale`, each model's demand on the whole GPU at its best batch
/// (GPU time per second), largest first.
fn demands(judge: &Judge, scale: f64) -> Result<Vec<(usize, f64, f64)>> {
    let mut out = Vec::new();
    for (i, m) in judge.workload.models.iter().enumerate() {
        let rate = m.rate * scale;
        let mut best = f64::INFINITY;
        for &b in &judge.workload.batches {
            let t = judge.menu.solo_us(&m.model, b, SoloShare::Device)?;
            best = best.min(rate * t / 1e6 / b as f64);
        }
        out.push((i, rate, best));
    }
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// The layouts as placed tenants, with the batching wait and GPU time the judge expects.
fn placed(judge: &Judge, layouts: Vec<Layout>) -> Result<Vec<GpuPlan>> {
    let mut replicas = vec![0usize; judge.workload.models.len()];
    let mut out = Vec::new();
    for l in layouts {
        let expected = judge.expect(l.partition, &l.slots)?;
        let mut tenants = Vec::new();
        for (s, e) in l.slots.iter().zip(expected) {
            let served = &judge.workload.models[s.served];
            replicas[s.served] += 1;
            let name = match replicas[s.served] {
                1 => served.name.clone(),
                k => format!("{}#{k}", served.name),
            };
            tenants.push(Placed {
                name,
                served: s.served,
                model: served.model.clone(),
                rate: s.rate,
                slo_ms: served.slo_ms,
                batch: s.batch,
                share: s.share,
                // a wait the SLO does not allow still has to be a wait: the shortest the batcher
                // can honour, so that the plan is run (and fails) rather than refused
                max_wait_ms: e.max_wait_ms.max(0.01),
                planned_us: e.gpu_us,
            });
        }
        out.push(GpuPlan {
            partition: l.partition,
            tenants,
            scheduler: RuntimeScheduler::Independent,
            scheduler_predictor: None,
        });
    }
    Ok(out)
}
