//! The baselines: time-sharing only, equal spatial shares, and shares in proportion to demand.
//! None of them asks a predictor; each picks batch sizes with the judge's solo model and
//! always returns a plan (they have no admission control: the simulator or the GPU says
//! whether it holds).

use coloc_workloads::scenario::{PartitionKind, SoloShare};

use super::{Layout, demands};
use crate::error::Result;
use crate::estimate::{BUSY_MAX, Judge, Slot};

/// Each model's replicas (as many as its demand needs at [`BUSY_MAX`], at most one per GPU, each
/// with an equal part of the rate), spread over the GPUs, heaviest first onto the least loaded.
pub(super) fn spread(judge: &Judge, scale: f64) -> Result<Vec<Vec<(usize, f64, f64)>>> {
    let gpus = judge.workload.gpus;
    let mut per_gpu: Vec<Vec<(usize, f64, f64)>> = vec![Vec::new(); gpus];
    let mut load = vec![0.0f64; gpus];
    let mut replicas: Vec<(usize, f64, f64)> = Vec::new();
    for (served, rate, demand) in demands(judge, scale)? {
        let k = ((demand / BUSY_MAX).ceil() as usize).clamp(1, gpus);
        replicas.extend(std::iter::repeat_n((served, rate / k as f64, demand / k as f64), k));
    }
    for r in replicas {
        let g = (0..gpus).min_by(|a, b| load[*a].total_cmp(&load[*b]).then(a.cmp(b))).expect("a GPU");
        load[g] += r.2;
        per_gpu[g].push(r);
    }
    Ok(per_gpu)
}

/// Every tenant of a GPU on one stream, each at the batch size that keeps the GPU least busy.
pub(super) fn time_sharing(judge: &Judge, scale: f64) -> Result<Option<Vec<Layout>>> {
    let mut out = Vec::new();
    for tenants in spread(judge, scale)? {
        let batch = *judge.workload.batches.last().expect("a batch size");
        let mut layout = Layout {
            partition: PartitionKind::TimeSliced,
            slots: tenants
                .iter()
                .map(|&(served, rate, _)| Slot { served, rate, batch, share: SoloShare::Device })
                .collect(),
        };
        judge.choose_batches(layout.partition, &mut layout.slots)?;
        out.push(layout);
    }
    Ok(Some(out))
}

/// Equal shares: the largest measured share no bigger than 1/n of the GPU for each of its n
/// tenants.
pub(super) fn space_only(judge: &Judge, scale: f64) -> Result<Option<Vec<Layout>>> {
    let mut out = Vec::new();
    for tenants in spread(judge, scale)? {
        let mut layout = Layout::spatial(judge);
        let equal = 1.0 / tenants.len().max(1) as f64;
        for &(served, rate, _) in &tenants {
            let Some(share) = largest_within(judge, served, equal) else { return Ok(None) };
            layout.slots.push(Slot { served, rate, batch: judge.workload.batches[0], share });
        }
        judge.choose_batches(layout.partition, &mut layout.slots)?;
        out.push(layout);
    }
    Ok(Some(out))
}

/// Shares in proportion to each tenant's demand on the whole GPU (the largest measured share
/// within its part, the smallest measured one where none is).
pub(super) fn proportional(judge: &Judge, scale: f64) -> Result<Option<Vec<Layout>>> {
    let mut out = Vec::new();
    for tenants in spread(judge, scale)? {
        let mut layout = Layout::spatial(judge);
        let total: f64 = tenants.iter().map(|t| t.2).sum::<f64>().max(1e-12);
        for &(served, rate, demand) in &tenants {
            let model = &judge.workload.models[served].model;
            let share =
                largest_within(judge, served, demand / total).or_else(|| judge.menu.shares(model).first().copied());
            let Some(share) = share else { return Ok(None) };
            layout.slots.push(Slot { served, rate, batch: judge.workload.batches[0], share });
        }
        if layout.used(judge) > 1.0 + 1e-9 {
            return Ok(None);
        }
        judge.choose_batches(layout.partition, &mut layout.slots)?;
        out.push(layout);
    }
    Ok(Some(out))
}

/// The largest measured share of `served`'s model that takes at most `fraction` of a GPU.
pub(super) fn largest_within(judge: &Judge, served: usize, fraction: f64) -> Option<SoloShare> {
    let model = &judge.workload.models[served].model;
    judge.menu.shares(model).iter().rev().find(|s| judge.menu.fraction(**s) <= fraction + 1e-9).copied()
}
