//! A discrete-event simulator of one run: the harness's plan (arrivals from the same seeds, the
//! same batching policy and SLO), the same batching state machine
//! ([`coloc_workloads::batcher`]), one batch in flight per tenant, and each batch's GPU time
//! from a predictor, asked with the same query a measured batch yields (what runs beside it at
//! dispatch and how far along). It writes the tables a measured run writes (requests and
//! batches, relative to the measured window) and fills each tenant's statistics with the same
//! code, so predicted and measured runs are read the same way.
//!
//! What it does not model, by design: a batch's time is fixed when it is dispatched (a
//! co-runner that starts later does not lengthen it, as no query can know the future);
//! aggressors are invisible (no query describes them); under time-slicing and separate
//! processes the wait for the GPU before a batch's first kernel is not modelled, only the
//! harness's measured dispatch and notice overheads; closed loops stop sending at the end of
//! the window.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use coloc_dataset::rows::{BatchRow, RequestRow, TenantRow};
use coloc_harness::plan::{PlanInputs, plan};
use coloc_harness::record::request_row;
use coloc_harness::tenant::{Arrivals, TenantPlan};
use coloc_harness::validity::tenant_stats;
use coloc_predictors::predictor::Predictor;
use coloc_predictors::query::{Dispatch, RunTenant, SoloTimes, query_at};
use coloc_workloads::batcher::{Batcher, Queued};
use coloc_workloads::scenario::Scenario;

use crate::error::Result;

/// The harness's own costs, from a dataset's manifest (its null-workload measurement).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Overheads {
    /// A batch formed to its first kernel's start, ns.
    pub dispatch_ns: i64,
    /// The last kernel's end to the host noticing it, ns.
    pub notice_ns: i64,
}

/// One simulated run: the rows a measured run has for its tenants.
#[derive(Clone, Debug, Default)]
pub struct SimulatedRun {
    pub tenants: Vec<TenantRow>,
    pub requests: Vec<RequestRow>,
    pub batches: Vec<BatchRow>,
    /// Aggressors of the scenario, which the simulation leaves out.
    pub aggressors_ignored: usize,
}

struct InFlight {
    row: BatchRow,
    requests: Vec<Queued>,
}

/// One tenant's serving loop on virtual time.
struct SimTenant<'a> {
    plan: &'a TenantPlan,
    batcher: Batcher,
    next_open: usize,
    /// Closed loops: (next send time, client).
    clients: BinaryHeap<Reverse<(i64, u32)>>,
    think_index: Vec<usize>,
    next_request: u32,
    next_batch: u32,
    in_flight: Option<InFlight>,
    done: Vec<InFlight>,
    /// Sending stopped (closed loops) or every open arrival admitted.
    exhausted: bool,
}

impl<'a> SimTenant<'a> {
    fn new(plan: &'a TenantPlan) -> SimTenant<'a> {
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
        }
    }

    /// The next time something happens to this tenant by itself (an arrival, its batch noticed,
    /// its oldest request's wait running out), if anything will.
    fn next_event(&self) -> Option<i64> {
        let arrival = match &self.plan.arrivals {
            Arrivals::Open(times) => times.get(self.next_open).copied(),
            Arrivals::Closed { stop_ns, .. } => self.clients.peek().map(|Reverse((t, _))| *t).filter(|t| *t < *stop_ns),
        };
        let own = match &self.in_flight {
            Some(f) => Some(f.row.noticed_ns),
            None => self.batcher.deadline_ns(),
        };
        [arrival, own].into_iter().flatten().filter(|t| *t <= self.plan.deadline_ns).min()
    }

    /// Notices a batch done by `now`, admits what has arrived by `now`.
    fn advance(&mut self, now: i64) {
        if self.in_flight.as_ref().is_some_and(|f| f.row.noticed_ns <= now) {
            let f = self.in_flight.take().expect("in flight");
            if let Arrivals::Closed { think_ns, .. } = &self.plan.arrivals {
                for q in &f.requests {
                    let c = q.client as usize;
                    let think = think_ns[c][self.think_index[c] % think_ns[c].len()] as i64;
                    self.think_index[c] += 1;
                    self.clients.push(Reverse((f.row.noticed_ns + think, q.client)));
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
    }
}

/// Simulates repetition `rep` of `scenario`, planned from `inputs` as the harness plans it, with
/// each batch's GPU time from `predictor`.
pub fn simulate(
    scenario: &Scenario,
    rep: usize,
    inputs: &PlanInputs,
    predictor: &dyn Predictor,
    overheads: Overheads,
) -> Result<SimulatedRun> {
    let plans = plan(inputs, scenario, rep)?;
    let solo = SoloTimes::from_rows(&inputs.solo.models);
    let run_tenants: Vec<RunTenant> = plans.tenant_rows.iter().map(RunTenant::from).collect();
    let mut tenants: Vec<SimTenant> = plans.tenants.iter().map(SimTenant::new).collect();
    let window = tenants.first().map_or(0, |t| t.plan.warmup_ns);
    let mut now = 0i64;
    loop {
        for t in tenants.iter_mut() {
            t.advance(now);
        }
        // dispatch in tenant order: a batch dispatched now is a co-runner of the next one
        for i in 0..tenants.len() {
            if tenants[i].in_flight.is_some() || now > tenants[i].plan.deadline_ns {
                continue;
            }
            let exhausted = tenants[i].exhausted;
            let Some(d) = tenants[i].batcher.poll(now, exhausted) else { continue };
            let start = now + overheads.dispatch_ns;
            let tenant = tenants[i].plan.index;
            let others: Vec<&BatchRow> = tenants.iter().filter_map(|t| t.in_flight.as_ref().map(|f| &f.row)).collect();
            let dispatch = Dispatch { tenant, bucket: d.bucket as u32, start_ns: start };
            let query = query_at(&dispatch, scenario.partition, &run_tenants, &others, &solo)?;
            let gpu_ns = (predictor.predict(&query) * 1e3).round().max(1.0) as i64;
            let me = &mut tenants[i];
            let row = BatchRow {
                run: String::new(),
                tenant,
                batch: me.next_batch,
                size: d.requests.len() as u16,
                bucket: d.bucket as u16,
                trigger: d.trigger,
                formed_ns: now,
                start_ns: start,
                end_ns: start + gpu_ns,
                noticed_ns: start + gpu_ns + overheads.notice_ns,
                sampled: false,
            };
            me.next_batch += 1;
            me.in_flight = Some(InFlight { row, requests: d.requests });
        }
        match tenants.iter().filter_map(SimTenant::next_event).min() {
            Some(t) => now = t.max(now + 1),
            None => break,
        }
    }
    let mut out = SimulatedRun { aggressors_ignored: scenario.aggressors.len(), ..SimulatedRun::default() };
    for (t, mut row) in tenants.into_iter().zip(plans.tenant_rows) {
        let first_request = out.requests.len();
        let first_batch = out.batches.len();
        let index = t.plan.index;
        for f in t.done.iter().chain(t.in_flight.iter()) {
            let b = &f.row;
            let rel = |v: i64| v - window;
            let times = (rel(b.formed_ns), rel(b.start_ns), rel(b.end_ns), rel(b.noticed_ns));
            for q in &f.requests {
                out.requests.push(request_row(index, q, Some(b.batch), Some(times), t.plan.slo_ms, window));
            }
            out.batches.push(BatchRow {
                formed_ns: times.0,
                start_ns: times.1,
                end_ns: times.2,
                noticed_ns: times.3,
                ..b.clone()
            });
        }
        let unserved = t.batcher.into_waiting();
        out.requests.extend(unserved.iter().map(|q| request_row(index, q, None, None, t.plan.slo_ms, window)));
        if let Arrivals::Open(times) = &t.plan.arrivals {
            for (k, a) in times.iter().enumerate().skip(t.next_open) {
                let q = Queued { request: t.next_request + (k - t.next_open) as u32, arrival_ns: *a, client: 0 };
                out.requests.push(request_row(index, &q, None, None, t.plan.slo_ms, window));
            }
        }
        let requests: Vec<&RequestRow> = out.requests[first_request..].iter().collect();
        let batches: Vec<&BatchRow> = out.batches[first_batch..].iter().collect();
        let window_ns = (scenario.duration_s * 1e9) as i64;
        let (model, share) = (row.model.clone(), row.share);
        let solo_gpu_ms = |bucket: u16| solo.get(&model, u32::from(bucket), share).ok().map(|us| us / 1e3);
        tenant_stats(&mut row, &requests, &batches, window_ns, &solo_gpu_ms);
        out.tenants.push(row);
    }
    Ok(out)
}
