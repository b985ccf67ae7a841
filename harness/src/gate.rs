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
use coloc_workloads::batcher::{Batcher, Dispatch, Queued};
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

/// The harness's own costs, from its null workload (medians).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Costs {
    /// A batch formed to its first kernel's start, ns.
    pub dispatch_ns: i64,
    /// The last kernel's end to the host noticing it, ns.
    pub notice_ns: i64,
}

impl Costs {
    pub fn of(overhead: &HarnessOverhead) -> Costs {
        Costs {
            dispatch_ns: (overhead.dispatch_us * 1e3).round() as i64,
            notice_ns: (overhead.notice_us * 1e3).round() as i64,
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
        let queues = tenants
            .iter()
            .map(|t| Queue {
                batcher: Batcher::new(t.policy.clone()),
                profile: t.profile.clone(),
                slo_ns: (t.slo_ms * 1e6).round() as i64,
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
