//! What a planner believes of the tenants of one GPU: each batch's GPU time (solo at its share,
//! or a predictor's answer with the GPU's other tenants running beside it), the latency bound
//! that time implies, the batching wait left within the SLO, and how busy the tenant (and,
//! under time-sharing, the GPU) would be. Every planner judges its candidates with this one
//! model; they differ in what they search over and in the predictor they ask.
//!
//! A request's worst case under fixed batching is: it waits for its batch to fill (at most the
//! batching wait), then for the tenant's batch in flight, then for its own batch, each batch
//! paying the harness's dispatch and notice costs; under time-sharing it also waits for one
//! batch of every other tenant of the GPU. The wait is what the SLO leaves of that, times
//! [`WAIT_MARGIN`]. A tenant busier than [`BUSY_MAX`] (batches padded when the wait runs out
//! included) is refused: queueing near saturation breaks any p99.

use coloc_predictors::predictor::Predictor;
use coloc_predictors::query::{CoRunner, Query, Target};
use coloc_workloads::scenario::{PartitionKind, SoloShare};

use crate::error::Result;
use crate::menu::Menu;
use crate::sim::Costs;
use crate::workload::Workload;

/// The busiest a tenant's serving loop (or a time-shared GPU) may be.
pub const BUSY_MAX: f64 = 0.8;

/// The share of the latency left over that goes to the batching wait.
pub const WAIT_MARGIN: f64 = 0.8;

/// A tenant as a planner places it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slot {
    /// The served model's place in the workload.
    pub served: usize,
    /// Requests per second.
    pub rate: f64,
    pub batch: usize,
    /// `Device` under time-sharing.
    pub share: SoloShare,
}

/// What the planner expects of a slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expected {
    /// A batch's GPU time, us.
    pub gpu_us: f64,
    /// The batching wait the SLO leaves (negative: the SLO cannot be met at any wait), ms.
    pub max_wait_ms: f64,
    /// Fraction of the time the tenant's loop is busy.
    pub busy: f64,
}

impl Expected {
    pub fn fits(&self) -> bool {
        self.max_wait_ms > 0.0 && self.busy <= BUSY_MAX
    }
}

/// The planner's view of the world: the workload, what was measured, what it costs to serve,
/// and the predictor it trusts (none: no interference beyond sharing).
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    pub workload: &'a Workload,
    pub menu: &'a Menu,
    pub overheads: Costs,
    pub predictor: Option<&'a dyn Predictor>,
}

impl<'a> Judge<'a> {
    /// The same judge trusting `predictor`.
    pub fn with(&self, predictor: Option<&'a dyn Predictor>) -> Judge<'a> {
        Judge { predictor, ..*self }
    }

    fn model(&self, slot: &Slot) -> &str {
        &self.workload.models[slot.served].model
    }

    /// The GPU time of `slots[i]`'s batch with the other slots running beside it, us.
    pub fn gpu_us(&self, partition: PartitionKind, slots: &[Slot], i: usize) -> Result<f64> {
        let me = &slots[i];
        let solo_us = self.menu.solo_us(self.model(me), me.batch, me.share)?;
        let Some(predictor) = self.predictor else { return Ok(solo_us) };
        if partition == PartitionKind::TimeSliced {
            // one stream: no kernel of another tenant runs beside it
            return Ok(solo_us);
        }
        let mut co_runners = Vec::with_capacity(slots.len());
        for (j, other) in slots.iter().enumerate() {
            if j != i {
                co_runners.push(CoRunner {
                    model: self.model(other).to_string(),
                    bucket: other.batch as u32,
                    share: other.share,
                    solo_us: self.menu.solo_us(self.model(other), other.batch, other.share)?,
                    // the worst case: every co-runner starting with it
                    elapsed_us: 0.0,
                });
            }
        }
        let target = Target { model: self.model(me).to_string(), bucket: me.batch as u32, share: me.share, partition };
        Ok(predictor.predict(&Query { target, solo_us, co_runners }).max(solo_us * 0.5))
    }

    /// What to expect of every slot of one GPU.
    pub fn expect(&self, partition: PartitionKind, slots: &[Slot]) -> Result<Vec<Expected>> {
        let gpu: Vec<f64> = (0..slots.len()).map(|i| self.gpu_us(partition, slots, i)).collect::<Result<_>>()?;
        let overhead_us = (self.overheads.dispatch_ns + self.overheads.notice_ns) as f64 / 1e3;
        let time_shared = partition == PartitionKind::TimeSliced;
        let total_gpu: f64 = gpu.iter().sum();
        Ok(slots
            .iter()
            .zip(&gpu)
            .map(|(s, &t)| {
                let blocked_us = if time_shared { total_gpu - t } else { 0.0 };
                let bound_us = 2.0 * (t + overhead_us) + blocked_us;
                let slo_us = self.workload.models[s.served].slo_ms * 1e3;
                let max_wait_ms = (slo_us - bound_us) * WAIT_MARGIN / 1e3;
                // a batch holds what arrives while the oldest waits, at most its size
                let fill = (1.0 + s.rate * max_wait_ms.max(0.0) / 1e3).min(s.batch as f64);
                let busy = s.rate * (t + overhead_us) / 1e6 / fill;
                Expected { gpu_us: t, max_wait_ms, busy }
            })
            .collect())
    }

    /// Whether every slot fits, and under time-sharing the GPU is not over-busy.
    pub fn fits(&self, partition: PartitionKind, slots: &[Slot]) -> Result<bool> {
        let e = self.expect(partition, slots)?;
        Ok(e.iter().all(Expected::fits) && gpu_busy(partition, slots, &e) <= BUSY_MAX)
    }

    /// Picks every slot's batch size: for each slot in turn, the size that fits with the least
    /// busy time (the smaller on a tie), the others held, twice over; shares stay as given.
    /// Returns whether the result fits.
    pub fn choose_batches(&self, partition: PartitionKind, slots: &mut [Slot]) -> Result<bool> {
        for _ in 0..2 {
            for i in 0..slots.len() {
                let mut best: Option<(bool, f64, usize)> = None;
                for &b in &self.workload.batches {
                    slots[i].batch = b;
                    let e = self.expect(partition, slots)?;
                    let ok = e[i].fits() && gpu_busy(partition, slots, &e) <= BUSY_MAX;
                    let score =
                        if partition == PartitionKind::TimeSliced { gpu_busy(partition, slots, &e) } else { e[i].busy };
                    let better = match best {
                        None => true,
                        Some((bok, bscore, _)) => (ok && !bok) || (ok == bok && score < bscore - 1e-12),
                    };
                    if better {
                        best = Some((ok, score, b));
                    }
                }
                slots[i].batch = best.map_or(self.workload.batches[0], |(_, _, b)| b);
            }
        }
        self.fits(partition, slots)
    }
}

/// How busy a time-shared GPU is (the sum of its tenants' GPU time per second); 0 otherwise.
fn gpu_busy(partition: PartitionKind, slots: &[Slot], e: &[Expected]) -> f64 {
    if partition != PartitionKind::TimeSliced {
        return 0.0;
    }
    slots
        .iter()
        .zip(e)
        .map(|(s, x)| {
            let fill = (1.0 + s.rate * x.max_wait_ms.max(0.0) / 1e3).min(s.batch as f64);
            s.rate * x.gpu_us / 1e6 / fill
        })
        .sum()
}
