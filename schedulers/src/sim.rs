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
//! aggressors are invisible (no query describes them); under separate processes the wait for
//! the GPU before a batch's first kernel is not modelled, only the harness's measured dispatch
//! and notice overheads; closed loops stop sending at the end of the window. Under
//! time-slicing (one stream), batches run one after another in the order they were launched:
//! a batch starts when the stream is free, and runs for the predictor's time with nothing
//! beside it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use coloc_dataset::clock::ClockMap;
use coloc_dataset::rows::{BatchRow, RequestRow, TenantRow};
use coloc_harness::plan::{PlanInputs, plan};
use coloc_harness::record::{RawBatch, RawTenant};
use coloc_harness::tenant::{Arrivals, TenantPlan};
use coloc_harness::validity::tenant_stats;
use coloc_predictors::predictor::Predictor;
use coloc_predictors::query::{Dispatch, RunTenant, SoloTimes, query_at};
use coloc_workloads::batcher::{Batcher, Queued};
use coloc_workloads::scenario::{PartitionKind, Scenario};

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

/// Virtual time is the host's clock and the GPU's at once: the identity map.
const VIRTUAL_TIME: ClockMap = ClockMap { anchor_host_ns: 0, offset_ns: 0, drift_ns_per_s: 0.0, uncertainty_ns: 0 };

/// A batch in flight as a query sees it (times on virtual time, not yet relative to the window).
fn in_flight_row(tenant: u16, b: &RawBatch) -> BatchRow {
    BatchRow {
        run: String::new(),
        tenant,
        batch: b.batch,
        size: b.requests.len() as u16,
        bucket: b.bucket as u16,
        trigger: b.trigger,
        formed_ns: b.formed_host,
        start_ns: b.start_gpu as i64,
        end_ns: b.end_gpu as i64,
        noticed_ns: b.noticed_host,
        sampled: false,
    }
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
    /// On virtual time, which is the host's and the GPU's clock at once (the identity map).
    in_flight: Option<RawBatch>,
    done: Vec<RawBatch>,
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
            Some(b) => Some(b.noticed_host),
            None => self.batcher.deadline_ns(),
        };
        [arrival, own].into_iter().flatten().filter(|t| *t <= self.plan.deadline_ns).min()
    }

    /// Notices a batch done by `now`, admits what has arrived by `now`.
    fn advance(&mut self, now: i64) {
        if self.in_flight.as_ref().is_some_and(|b| b.noticed_host <= now) {
            let f = self.in_flight.take().expect("in flight");
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
    let one_stream = scenario.partition == PartitionKind::TimeSliced;
    // when the one stream of a time-sliced scenario has run everything launched on it
    let mut stream_free = 0i64;
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
            let start =
                if one_stream { (now + overheads.dispatch_ns).max(stream_free) } else { now + overheads.dispatch_ns };
            let tenant = tenants[i].plan.index;
            // the batches in flight, as the rows a query is built from
            let others: Vec<BatchRow> =
                tenants.iter().filter_map(|t| t.in_flight.as_ref().map(|b| in_flight_row(t.plan.index, b))).collect();
            let others: Vec<&BatchRow> = others.iter().collect();
            let dispatch = Dispatch { tenant, bucket: d.bucket as u32, start_ns: start };
            let mut query = query_at(&dispatch, scenario.partition, &run_tenants, &others, &solo)?;
            if one_stream {
                // nothing runs beside a batch on the one stream
                query.co_runners.clear();
            }
            let gpu_ns = (predictor.predict(&query) * 1e3).round().max(1.0) as i64;
            if one_stream {
                stream_free = start + gpu_ns;
            }
            let me = &mut tenants[i];
            me.in_flight = Some(RawBatch {
                batch: me.next_batch,
                bucket: d.bucket,
                trigger: d.trigger,
                requests: d.requests,
                formed_host: now,
                noticed_host: start + gpu_ns + overheads.notice_ns,
                start_gpu: start as u64,
                end_gpu: (start + gpu_ns) as u64,
                launches: Vec::new(),
            });
            me.next_batch += 1;
        }
        match tenants.iter().filter_map(SimTenant::next_event).min() {
            Some(t) => now = t.max(now + 1),
            None => break,
        }
    }
    let mut out = SimulatedRun { aggressors_ignored: scenario.aggressors.len(), ..SimulatedRun::default() };
    for (t, mut row) in tenants.into_iter().zip(plans.tenant_rows) {
        // what was never admitted or never served, as the harness records it
        let mut unserved = t.batcher.into_waiting();
        if let Arrivals::Open(times) = &t.plan.arrivals {
            for (k, a) in times.iter().enumerate().skip(t.next_open) {
                unserved.push(Queued { request: t.next_request + (k - t.next_open) as u32, arrival_ns: *a, client: 0 });
            }
        }
        let raw = RawTenant {
            tenant: t.plan.index,
            slo_ms: t.plan.slo_ms,
            batches: t.done.into_iter().chain(t.in_flight).collect(),
            unserved,
            ..RawTenant::default()
        };
        let output = raw.into_output(&VIRTUAL_TIME, window, 0);
        let (first_request, first_batch) = (out.requests.len(), out.batches.len());
        out.requests.extend(output.requests);
        out.batches.extend(output.batches);
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
