//! Who lets a tenant's batch go: its own batcher (each tenant's loop decides alone), or a
//! Clockwork scheduler the tenants of a time-sliced run share ([`RuntimeScheduler::Clockwork`]).
//! The shared one holds every tenant's queue; whichever tenant's thread asks takes Clockwork's
//! decision for all ([`coloc_workloads::clockwork::decide`]) and leaves a batch chosen for
//! another tenant with that tenant, whose thread launches it on its next turn. Batches are
//! issued as the one stream is about to be free, by the solo profiles' times.
//!
//! [`RuntimeScheduler::Clockwork`]: coloc_workloads::scenario::RuntimeScheduler::Clockwork

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use coloc_dataset::manifest::HarnessOverhead;
use coloc_workloads::batcher::{BatchPolicy, Batcher, Dispatch, Queued};
use coloc_workloads::clockwork::{Lane, decide, ns};

use crate::tenant::TenantPlan;

/// One tenant's queue in the shared scheduler.
struct Queue {
    batcher: Batcher,
    profile: Vec<(usize, f64)>,
    slo_ns: i64,
    /// A batch of this tenant in flight, or chosen and not yet launched.
    busy: bool,
    /// Chosen for this tenant by another tenant's thread.
    chosen: Option<Dispatch>,
    dropped: Vec<Queued>,
}

struct Shared {
    queues: Vec<Queue>,
    /// When the one stream will have run every batch issued (host clock, by the profiles).
    stream_free: i64,
    /// Batches issued and not yet noticed done, in issue order (the one stream runs them in
    /// that order): (lane, profiled time in ns).
    outstanding: VecDeque<(usize, i64)>,
}

/// The harness's own costs, from its null workload (medians): what a scheduler plans batches
/// ahead with, and what the simulator adds to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Costs {
    /// A batch formed to its first kernel's start, ns.
    pub dispatch_ns: i64,
    /// The last kernel's end to the host noticing it, ns.
    pub notice_ns: i64,
    /// On one stream, a batch's last kernel to the first kernel of the next batch queued behind
    /// it, ns; 0 where the manifest predates its measurement.
    pub queued_gap_ns: i64,
}

impl Costs {
    pub fn of(overhead: &HarnessOverhead) -> Costs {
        let ns = |us: f64| (us * 1e3).round() as i64;
        Costs {
            dispatch_ns: ns(overhead.dispatch_us),
            notice_ns: ns(overhead.notice_us),
            queued_gap_ns: overhead.queued_gap_us.map_or(0, ns),
        }
    }
}

/// Clockwork's scheduler shared by the tenants of one run.
pub struct ClockworkGate {
    shared: Mutex<Shared>,
    costs: Costs,
}

impl ClockworkGate {
    /// The scheduler of `tenants` (in plan order: tenant `i` asks as lane `i`).
    pub fn new(tenants: &[TenantPlan], costs: Costs) -> ClockworkGate {
        ClockworkGate::of(tenants.iter().map(|t| (t.policy.clone(), t.profile.clone(), t.slo_ms)), costs)
    }

    /// The scheduler of lanes given as (batching, profile, SLO in ms).
    fn of(lanes: impl Iterator<Item = (BatchPolicy, Vec<(usize, f64)>, f64)>, costs: Costs) -> ClockworkGate {
        let queues = lanes
            .map(|(policy, profile, slo_ms)| Queue {
                batcher: Batcher::new(policy),
                profile,
                slo_ns: (slo_ms * 1e6).round() as i64,
                busy: false,
                chosen: None,
                dropped: Vec::new(),
            })
            .collect();
        ClockworkGate { shared: Mutex::new(Shared { queues, stream_free: 0, outstanding: VecDeque::new() }), costs }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // a tenant thread that panicked holding it leaves the queues as they were
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn admit(&self, lane: usize, q: Queued) {
        self.lock().queues[lane].batcher.admit(q);
    }

    pub fn waiting(&self, lane: usize) -> usize {
        let s = self.lock();
        s.queues[lane].batcher.waiting() + s.queues[lane].chosen.as_ref().map_or(0, |d| d.requests.len())
    }

    /// The batch lane `lane` launches at `now` (host clock), if one is due: one chosen for it
    /// earlier, or the one Clockwork chooses now if that is its.
    pub fn next(&self, lane: usize, now: i64) -> Option<Dispatch> {
        let mut s = self.lock();
        if let Some(d) = s.queues[lane].chosen.take() {
            return Some(d);
        }
        if s.stream_free > now + self.costs.dispatch_ns {
            return None;
        }
        let start = (now + self.costs.dispatch_ns).max(s.stream_free);
        let Shared { queues, stream_free, outstanding } = &mut *s;
        let mut lanes: Vec<Lane> = queues
            .iter_mut()
            .map(|q| Lane {
                idle: !q.busy,
                batcher: &mut q.batcher,
                profile: &q.profile,
                slo_ns: q.slo_ns,
                dropped: &mut q.dropped,
            })
            .collect();
        let (chosen, d) = decide(&mut lanes, start, self.costs.notice_ns)?;
        let us = queues[chosen].profile.iter().find(|(b, _)| *b == d.bucket).map_or(0.0, |p| p.1);
        *stream_free = start + ns(us);
        outstanding.push_back((chosen, ns(us)));
        queues[chosen].busy = true;
        if chosen == lane {
            Some(d)
        } else {
            queues[chosen].chosen = Some(d);
            None
        }
    }

    /// Lane `lane`'s batch in flight has been noticed done at `noticed` (host clock). The stream
    /// is then known to have run it and every batch issued before it: when it will be free is
    /// predicted again from there, so that what the profiles leave out (each batch's input copy
    /// and stamp read-back, about 20 us on the H200) does not add up batch after batch.
    pub fn done(&self, lane: usize, noticed: i64) {
        let mut s = self.lock();
        s.queues[lane].busy = false;
        if let Some(k) = s.outstanding.iter().position(|(l, _)| *l == lane) {
            s.outstanding.drain(..=k);
            let after: i64 = s.outstanding.iter().map(|(_, d)| d).sum();
            s.stream_free = noticed - self.costs.notice_ns + after;
        }
    }

    /// What lane `lane` never served: requests dropped, then those still waiting.
    pub fn unserved(&self, lane: usize) -> Vec<Queued> {
        let mut s = self.lock();
        let q = &mut s.queues[lane];
        let mut out = std::mem::take(&mut q.dropped);
        if let Some(d) = q.chosen.take() {
            out.extend(d.requests);
        }
        out.extend(q.batcher.drop_before(i64::MAX));
        out
    }
}

#[cfg(test)]
mod tests {
    use coloc_workloads::scenario::Batching;

    use super::*;

    const MS: i64 = 1_000_000;

    /// Two lanes, batches of 1 or 4 taking 1 ms or 2 ms, SLO 10 ms; no harness costs.
    fn gate() -> ClockworkGate {
        let policy = BatchPolicy::new(&Batching::Dynamic { max_batch: 4, timeout_ms: 1.0 }, 1.0);
        let lane = (policy, vec![(1, 1000.0), (4, 2000.0)], 10.0);
        ClockworkGate::of([lane.clone(), lane].into_iter(), Costs::default())
    }

    fn q(request: u32, arrival_ns: i64) -> Queued {
        Queued { request, arrival_ns, client: 0 }
    }

    #[test]
    fn a_batch_chosen_for_another_lane_waits_for_it_and_the_stream_is_followed() {
        let g = gate();
        g.admit(1, q(0, 0));
        g.admit(0, q(0, MS));
        // lane 0 asks, lane 1's request is older: the batch goes to lane 1
        assert_eq!(g.next(0, 2 * MS), None);
        assert_eq!(g.waiting(1), 1);
        let d = g.next(1, 2 * MS).unwrap();
        assert_eq!((d.requests.len(), d.bucket), (1, 1));
        // by the profile the stream is busy until 3 ms: nothing goes before; then lane 0's
        let b = (g.next(0, 2_500_000), g.next(0, 3 * MS));
        assert!(b.0.is_none() && b.1.is_some());
        g.admit(1, q(1, 3_200_000));
        // lane 1's batch took longer than its profile, noticed done at 3.5 ms: lane 0's batch
        // behind it ends at 4.5 ms, not at 4 ms as the profiles alone would have it
        g.done(1, 3_500_000);
        assert_eq!(g.next(1, 4_200_000), None);
        assert!(g.next(1, 4_500_000).is_some());
    }

    #[test]
    fn what_is_dropped_or_left_comes_back_as_unserved() {
        let g = gate();
        g.admit(0, q(0, 0));
        g.admit(0, q(1, 5 * MS));
        // at 9.5 ms the first (due at 10 ms) cannot make it even alone: dropped
        let d = g.next(0, 9_500_000).unwrap();
        assert_eq!(d.requests.iter().map(|r| r.request).collect::<Vec<_>>(), vec![1]);
        g.admit(0, q(2, 9 * MS));
        let unserved: Vec<u32> = g.unserved(0).iter().map(|r| r.request).collect();
        assert_eq!(unserved, vec![0, 2]);
    }
}
