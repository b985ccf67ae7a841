//! gpulet (Choi et al., "Serving Heterogeneous Machine Learning Models on Multi-GPU Servers
//! with Spatio-Temporal Sharing", USENIX ATC 2022): elastic partitioning by rate. Models in
//! order of demand each get the smallest partition of gpulet's share set that serves their
//! rate within the SLO alone; a rate no partition serves is split into a whole-GPU gpulet at
//! the most it serves and a residue, placed the same way. Gpulets then go onto GPUs, largest
//! first, where they fit in the space left; with an interference model, a GPU whose tenants
//! would no longer meet their SLOs beside the newcomer makes it grow to the next size that does,
//! or go elsewhere. Unlike the paper's two gpulets per GPU, a GPU holds as many as fit: the
//! harness gives each GPU one mechanism, so gpulet's temporal sharing inside a gpulet is not
//! available, and a single-GPU workload of more than two models would otherwise have no plan.

use coloc_workloads::scenario::SoloShare;

use super::{Layout, demands};
use crate::error::Result;
use crate::estimate::{Judge, Slot};

/// gpulet's partition sizes, as fractions of a GPU.
const SHARE_SET: [f64; 6] = [0.2, 0.4, 0.5, 0.6, 0.8, 1.0];

/// The measured shares of `served`'s model nearest each size of the share set (within 5% of
/// the GPU), smallest first.
fn share_set(judge: &Judge, served: usize) -> Vec<SoloShare> {
    let shares = judge.menu.shares(&judge.workload.models[served].model);
    let mut out: Vec<SoloShare> = SHARE_SET
        .iter()
        .filter_map(|f| {
            shares
                .iter()
                .map(|s| (s, (judge.menu.fraction(*s) - f).abs()))
                .filter(|(_, d)| *d <= 0.05 + 1e-9)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(s, _)| *s)
        })
        .collect();
    out.dedup();
    out
}

/// A slot of `served` at `rate` on `share`, alone, at the batch size that fits with least busy
/// time, if one fits.
pub(super) fn alone(judge: &Judge, served: usize, rate: f64, share: SoloShare) -> Result<Option<Slot>> {
    let mut slots = [Slot { served, rate, batch: judge.workload.batches[0], share }];
    let fits = judge.choose_batches(judge.menu.mechanism().partition(), &mut slots)?;
    Ok(fits.then_some(slots[0]))
}

/// The highest rate `served` meets its SLO at alone on `share` (bisection), 0 if none.
pub(super) fn max_rate(judge: &Judge, served: usize, share: SoloShare) -> Result<f64> {
    let model = &judge.workload.models[served].model;
    let mut hi = 0.0f64;
    for &b in &judge.workload.batches {
        hi = hi.max(b as f64 * 1e6 / judge.menu.solo_us(model, b, share)?);
    }
    let mut lo = 0.0;
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if alone(judge, served, mid, share)?.is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

pub(super) fn plan(judge: &Judge, scale: f64) -> Result<Option<Vec<Layout>>> {
    // 1. gpulets sized alone, with the solo model: gpulet sizes first, then checks interference
    let solo = judge.with(None);
    let mut gpulets: Vec<Slot> = Vec::new();
    for (served, rate, _) in demands(judge, scale)? {
        let set = share_set(judge, served);
        let Some(&largest) = set.last() else { return Ok(None) };
        let mut remaining = rate;
        for _ in 0..=judge.workload.gpus {
            if let Some(slot) = first_fit(&solo, served, remaining, &set)? {
                gpulets.push(slot);
                remaining = 0.0;
                break;
            }
            let most = max_rate(&solo, served, largest)?;
            if most <= 0.0 {
                return Ok(None);
            }
            gpulets.push(alone(&solo, served, most, largest)?.expect("fits at its highest rate"));
            remaining -= most;
        }
        if remaining > 0.0 {
            return Ok(None);
        }
    }
    // 2. onto GPUs, largest first, growing where the interference model asks
    gpulets.sort_by(|a, b| {
        judge.menu.fraction(b.share).total_cmp(&judge.menu.fraction(a.share)).then(a.served.cmp(&b.served))
    });
    let mut gpus: Vec<Layout> = Vec::new();
    'gpulet: for g in gpulets {
        let set = share_set(judge, g.served);
        for gi in 0..(gpus.len() + 1).min(judge.workload.gpus) {
            let base = gpus.get(gi).cloned().unwrap_or_else(|| Layout::spatial(judge));
            for &share in set.iter().filter(|s| judge.menu.fraction(**s) >= judge.menu.fraction(g.share)) {
                if base.used(judge) + judge.menu.fraction(share) > 1.0 + 1e-9 {
                    break;
                }
                let mut candidate = base.clone();
                candidate.slots.push(Slot { share, ..g });
                if judge.choose_batches(candidate.partition, &mut candidate.slots)? {
                    match gpus.get_mut(gi) {
                        Some(l) => *l = candidate,
                        None => gpus.push(candidate),
                    }
                    continue 'gpulet;
                }
            }
        }
        return Ok(None);
    }
    for g in gpus.iter_mut() {
        super::fill(judge, g)?;
    }
    Ok(Some(gpus))
}

/// The smallest share of `set` at which `served` serves `rate` alone.
fn first_fit(judge: &Judge, served: usize, rate: f64, set: &[SoloShare]) -> Result<Option<Slot>> {
    for &share in set {
        if let Some(slot) = alone(judge, served, rate, share)? {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}
