//! Placements for the runtime schedulers ([`crate::sim::Scheduler`]): where each tenant runs
//! and its largest batch. When its batches launch, and (for Clockwork) how large, is the
//! scheduler's to decide as requests arrive.

use coloc_workloads::scenario::{PartitionKind, SoloShare};

use super::Layout;
use super::baseline::spread;
use crate::error::Result;
use crate::estimate::{Judge, Slot};

/// Clockwork: the tenants of each GPU on one stream, each allowed the workload's largest batch
/// (the scheduler runs smaller ones where a deadline needs it).
pub(super) fn clockwork(judge: &Judge, scale: f64) -> Result<Option<Vec<Layout>>> {
    let batch = *judge.workload.batches.last().expect("a batch size");
    Ok(Some(
        spread(judge, scale)?
            .into_iter()
            .map(|tenants| Layout {
                partition: PartitionKind::TimeSliced,
                slots: tenants
                    .iter()
                    .map(|&(served, rate, _)| Slot { served, rate, batch, share: SoloShare::Device })
                    .collect(),
            })
            .collect(),
    ))
}

/// First-come-first-served, Abacus and space-time: the tenants of each GPU each on a stream of the whole
/// GPU, at the batch sizes the judge (without interference) finds least busy.
pub(super) fn streams(judge: &Judge, scale: f64) -> Result<Option<Vec<Layout>>> {
    let mut out = Vec::new();
    for tenants in spread(judge, scale)? {
        let mut layout = Layout {
            partition: PartitionKind::Streams,
            slots: tenants
                .iter()
                .map(|&(served, rate, _)| Slot {
                    served,
                    rate,
                    batch: judge.workload.batches[0],
                    share: SoloShare::Device,
                })
                .collect(),
        };
        judge.choose_batches(layout.partition, &mut layout.slots)?;
        out.push(layout);
    }
    Ok(Some(out))
}
