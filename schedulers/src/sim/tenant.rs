//! One simulated tenant: its arrivals, its batcher and its batches, on virtual time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use coloc_harness::record::RawBatch;
use coloc_harness::tenant::{Arrivals, TenantPlan};
use coloc_workloads::batcher::{Batcher, Queued};

/// One tenant's serving loop on virtual time.
pub(super) struct SimTenant<'a> {
    pub(super) plan: &'a TenantPlan,
    pub(super) batcher: Batcher,
    pub(super) next_open: usize,
    /// Closed loops: (next send time, client).
    pub(super) clients: BinaryHeap<Reverse<(i64, u32)>>,
    pub(super) think_index: Vec<usize>,
    pub(super) next_request: u32,
    pub(super) next_batch: u32,
    /// On virtual time, which is the host's and the GPU's clock at once (the identity map).
    pub(super) in_flight: Option<RawBatch>,
    pub(super) done: Vec<RawBatch>,
    /// Sending stopped (closed loops) or every open arrival admitted.
    pub(super) exhausted: bool,
    /// The SLO, ns.
    pub(super) slo_ns: i64,
    /// Requests a scheduler dropped (never served).
    pub(super) dropped: Vec<Queued>,
}

impl<'a> SimTenant<'a> {
    pub(super) fn new(plan: &'a TenantPlan) -> SimTenant<'a> {
        let mut clients = BinaryHeap::new();
        let mut think_index = Vec::new();
        if let Arrivals::Closed { think_ns, .. } = &plan.arrivals {
            for (c, thinks) in think_ns.iter().enumerate() {
                clients.push(Reverse((thinks.first().copied().unwrap_or(0) as i64, c as u32)));
            }
            think_index = vec![1; think_ns.len()];
        }
        SimTenant {
            plan,
            batcher: Batcher::new(plan.policy.clone()),
            next_open: 0,
            clients,
            think_index,
            next_request: 0,
            next_batch: 0,
            in_flight: None,
            done: Vec::new(),
            exhausted: false,
            slo_ns: (plan.slo_ms * 1e6).round() as i64,
            dropped: Vec::new(),
        }
    }

    /// The next time something happens to this tenant by itself (an arrival, its batch noticed,
    /// its oldest request's wait running out), if anything will.
    pub(super) fn next_event(&self) -> Option<i64> {
        let arrival = match &self.plan.arrivals {
            Arrivals::Open(times) => times.get(self.next_open).copied(),
            Arrivals::Closed { stop_ns, .. } => self.clients.peek().map(|Reverse((t, _))| *t).filter(|t| *t < *stop_ns),
        };
        let own = match &self.in_flight {
            Some(b) => Some(b.noticed_host),
            None => self.batcher.deadline_ns(),
        };
        [arrival, own].into_iter().flatten().filter(|t| *t <= self.plan.deadline_ns).min()
    }

    /// Notices a batch done by `now`, admits what has arrived by `now`. Returns the GPU time of
    /// the batch noticed done, if one was.
    pub(super) fn advance(&mut self, now: i64) -> Option<i64> {
        let mut noticed = None;
        if self.in_flight.as_ref().is_some_and(|b| b.noticed_host <= now) {
            let f = self.in_flight.take().expect("in flight");
            noticed = Some(f.end_gpu as i64 - f.start_gpu as i64);
            if let Arrivals::Closed { think_ns, .. } = &self.plan.arrivals {
                for q in &f.requests {
                    let c = q.client as usize;
                    let think = think_ns[c][self.think_index[c] % think_ns[c].len()] as i64;
                    self.think_index[c] += 1;
                    self.clients.push(Reverse((f.noticed_host + think, q.client)));
                }
            }
            self.done.push(f);
        }
        match &self.plan.arrivals {
            Arrivals::Open(times) => {
                while self.next_open < times.len() && times[self.next_open] <= now {
                    let q = Queued { request: self.next_request, arrival_ns: times[self.next_open], client: 0 };
                    self.batcher.admit(q);
                    self.next_request += 1;
                    self.next_open += 1;
                }
                self.exhausted = self.next_open == times.len();
            }
            Arrivals::Closed { stop_ns, .. } => {
                while let Some(Reverse((t, c))) = self.clients.peek().copied() {
                    if t > now || t >= *stop_ns {
                        break;
                    }
                    self.clients.pop();
                    self.batcher.admit(Queued { request: self.next_request, arrival_ns: t, client: c });
                    self.next_request += 1;
                }
                self.exhausted = now >= *stop_ns;
            }
        }
        noticed
    }
}
