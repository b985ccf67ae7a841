//! A greedy search over every measured share, as iGniter does it (Xu et al., "iGniter:
//! Interference-Aware GPU Resource Provisioning for Predictable DNN Inference in the Cloud",
//! IEEE TPDS 2023): models in order of demand, each placed on the GPU where it adds the least
//! share, at the smallest share at which everyone on that GPU meets the SLO by the predictor;
//! tenants the newcomer breaks grow one measured step at a time until they fit again or the GPU
//! is full. iGniter steps by 2.5% of the GPU; here the steps are the measured shares (a share
//! without a solo profile can be neither simulated nor checked). A rate no GPU can take whole
//! opens a new GPU with as much of it as the largest share serves, and the rest goes on.

use super::gpulet::{alone, max_rate};
use super::{Layout, demands};
use crate::error::Result;
use crate::estimate::{Judge, Slot};

pub(super) fn plan(judge: &Judge, scale: f64) -> Result<Option<Vec<Layout>>> {
    let mut gpus: Vec<Layout> = Vec::new();
    for (served, rate, _) in demands(judge, scale)? {
        let mut remaining = rate;
        for _ in 0..=judge.workload.gpus {
            let mut best: Option<(usize, Layout, f64)> = None;
            for gi in 0..(gpus.len() + 1).min(judge.workload.gpus) {
                let base = gpus.get(gi).cloned().unwrap_or_else(|| Layout::spatial(judge));
                if let Some(l) = place_into(judge, &base, served, remaining)? {
                    let added = l.used(judge) - base.used(judge);
                    if best.as_ref().is_none_or(|b| added < b.2 - 1e-12) {
                        best = Some((gi, l, added));
                    }
                }
            }
            if let Some((gi, l, _)) = best {
                match gpus.get_mut(gi) {
                    Some(g) => *g = l,
                    None => gpus.push(l),
                }
                remaining = 0.0;
                break;
            }
            // nowhere whole: a new GPU with what its largest share serves
            let model = &judge.workload.models[served].model;
            let Some(&largest) = judge.menu.shares(model).last() else { return Ok(None) };
            if gpus.len() >= judge.workload.gpus {
                return Ok(None);
            }
            let most = max_rate(judge, served, largest)?;
            let Some(slot) = alone(judge, served, most, largest)?.filter(|_| most > 0.0) else { return Ok(None) };
            gpus.push(Layout { slots: vec![slot], ..Layout::spatial(judge) });
            remaining -= most;
        }
        if remaining > 0.0 {
            return Ok(None);
        }
    }
    for g in gpus.iter_mut() {
        super::fill(judge, g)?;
    }
    Ok(Some(gpus))
}

/// `base` with `served` added at the smallest share at which everyone fits, growing the shares
/// of those that stop fitting; `None` if no share does.
fn place_into(judge: &Judge, base: &Layout, served: usize, rate: f64) -> Result<Option<Layout>> {
    let shares = judge.menu.shares(&judge.workload.models[served].model);
    for &share in shares {
        if base.used(judge) + judge.menu.fraction(share) > 1.0 + 1e-9 {
            break;
        }
        let mut l = base.clone();
        l.slots.push(Slot { served, rate, batch: judge.workload.batches[0], share });
        loop {
            if judge.choose_batches(l.partition, &mut l.slots)? {
                return Ok(Some(l));
            }
            // grow every tenant that does not fit by one measured step
            let expected = judge.expect(l.partition, &l.slots)?;
            let mut grew = false;
            for (slot, e) in l.slots.iter_mut().zip(expected) {
                if e.fits() {
                    continue;
                }
                let own = judge.menu.shares(&judge.workload.models[slot.served].model);
                if let Some(next) = own.iter().find(|s| judge.menu.fraction(**s) > judge.menu.fraction(slot.share)) {
                    slot.share = *next;
                    grew = true;
                }
            }
            if !grew || l.used(judge) > 1.0 + 1e-9 {
                break;
            }
        }
    }
    Ok(None)
}
