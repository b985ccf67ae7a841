//! A discrete-event simulator of one run: the harness's plan (arrivals from the same seeds, the
//! same batching policy and SLO), the same batching state machine
//! ([`coloc_workloads::batcher`]), one batch in flight per tenant, and each batch's GPU time
//! from a predictor, asked with the same query a measured batch yields (what runs beside it at
//! dispatch and how far along). It writes the tables a measured run writes (requests and
//! batches, relative to the measured window) and fills each tenant's statistics with the same
//! code, so predicted and measured runs are read the same way, but as points: no bootstrap
//! interval (it would only measure the simulator's own sample, at twenty times its cost).
//!
//! What it does not model, by design: a batch's time is fixed when it is dispatched (a
//! co-runner that starts later does not lengthen it, as no query can know the future);
//! aggressors are invisible (no query describes them); under separate processes the wait for
//! the GPU before a batch's first kernel is not modelled, only the harness's measured dispatch
//! and notice overheads; closed loops stop sending at the end of the window. Under
//! time-slicing (one stream), batches run one after another in the order they were launched:
//! a batch queued behind another starts the harness's measured gap after it ends, and runs for
//! its solo time, times the profiles' switch factor if another tenant's batch ran before it:
//! nothing runs beside it, so no predictor is asked.

mod runtime;
mod tenant;

use coloc_dataset::clock::ClockMap;
use coloc_dataset::rows::{BatchRow, RequestRow, TenantRow};
pub use coloc_harness::gate::Costs;
use coloc_harness::plan::{PlanInputs, plan};
use coloc_harness::record::{RawBatch, RawTenant};
use coloc_harness::tenant::Arrivals;
use coloc_harness::validity::{Intervals, tenant_stats};
use coloc_predictors::predictor::Predictor;
use coloc_predictors::query::{Dispatch, RunTenant, SoloTimes, query_at};
use coloc_workloads::batcher::Queued;
use coloc_workloads::clockwork::ns;
use coloc_workloads::scenario::{PartitionKind, RuntimeScheduler, Scenario};
pub use runtime::Scheduler;
use runtime::{Moment, admits, candidates};
use tenant::SimTenant;

use crate::error::Result;

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

/// Simulates repetition `rep` of `scenario`, planned from `inputs` as the harness plans it, with
/// each batch's GPU time from `truth` and launched as `scheduler` decides.
pub fn simulate(
    scenario: &Scenario,
    rep: usize,
    inputs: &PlanInputs,
    truth: &dyn Predictor,
    overheads: Costs,
    scheduler: &Scheduler,
) -> Result<SimulatedRun> {
    let asks = matches!(scheduler, Scheduler::LeastHeadroom { .. });
    if scenario.scheduler == RuntimeScheduler::LeastHeadroom && !asks {
        return Err(crate::error::Error::invalid(
            &scenario.name,
            "its scheduler asks a predictor at run time: simulate it with Scheduler::LeastHeadroom and that predictor",
        ));
    }
    if asks && matches!(scenario.scheduler, RuntimeScheduler::Clockwork | RuntimeScheduler::SpaceTime) {
        return Err(crate::error::Error::invalid(
            &scenario.name,
            "it names a runtime scheduler of its own: simulate it with Scheduler::Harness",
        ));
    }
    let plans = plan(inputs, scenario, rep)?;
    let solo = SoloTimes::from_rows(&inputs.solo.models);
    let run_tenants: Vec<RunTenant> = plans.tenant_rows.iter().map(RunTenant::from).collect();
    let mut tenants: Vec<SimTenant> = plans.tenants.iter().map(SimTenant::new).collect();
    // the space-time scheduler learns from each batch's GPU time as it is noticed
    let mut space_time = (scenario.scheduler == RuntimeScheduler::SpaceTime)
        .then(|| coloc_harness::space_time::scheduler_of(&plans.tenants));
    let window = tenants.first().map_or(0, |t| t.plan.warmup_ns);
    let one_stream = scenario.partition == PartitionKind::TimeSliced;
    // when the one stream of a time-sliced scenario has run everything launched on it
    let mut stream_free = 0i64;
    // the tenant whose batch went on the one stream last
    let mut last_on_stream: Option<u16> = None;
    let mut in_flight: Vec<BatchRow> = Vec::with_capacity(tenants.len());
    let mut now = 0i64;
    loop {
        for (lane, t) in tenants.iter_mut().enumerate() {
            if let (Some(gpu_ns), Some(s)) = (t.advance(now), space_time.as_mut()) {
                s.done(lane, gpu_ns);
            }
        }
        let at = Moment {
            now,
            dispatch_ns: overheads.dispatch_ns,
            notice_ns: overheads.notice_ns,
            stream_free: one_stream.then_some(stream_free),
            queued_gap_ns: overheads.queued_gap_ns,
            runtime: scenario.scheduler,
        };
        // in the scheduler's order: a batch launched now is a co-runner of the next one
        for c in candidates(scheduler, &at, &mut tenants) {
            if space_time.as_mut().is_some_and(|s| !s.admits(c.index, c.bucket)) {
                continue;
            }
            let at = Moment { stream_free: one_stream.then_some(stream_free), ..at };
            let start = at.gpu_start();
            let tenant = tenants[c.index].plan.index;
            // the batches in flight, as the rows a query is built from
            in_flight.clear();
            in_flight
                .extend(tenants.iter().filter_map(|t| t.in_flight.as_ref().map(|b| in_flight_row(t.plan.index, b))));
            let dispatch = Dispatch { tenant, bucket: c.bucket as u32, start_ns: start };
            let query = query_at(&dispatch, scenario.partition, &run_tenants, &in_flight, &solo)?;
            if let Scheduler::LeastHeadroom { predictor } = scheduler {
                let me = &tenants[c.index];
                let oldest = me.batcher.oldest_ns().expect("a waiting request");
                let running = in_flight.iter().filter(|b| b.end_ns > start).count();
                if !admits(scheduler, &at, oldest, me.slo_ns, predictor.predict(&query), query.solo_us, running) {
                    continue;
                }
            }
            // on the one stream nothing runs beside a batch: it takes its solo time, or longer
            // right after another tenant's batch (its weights evicted from the L2; each tenant has
            // its own, so this holds for two tenants of one model too)
            let gpu_us = if !one_stream {
                truth.predict(&query)
            } else if last_on_stream.is_some_and(|last| last != tenant) {
                let me = &tenants[c.index].plan;
                query.solo_us * inputs.solo.switch.factor(&me.model.name, c.bucket as u32)
            } else {
                query.solo_us
            };
            let gpu_ns = ns(gpu_us).max(1);
            if one_stream {
                stream_free = start + gpu_ns;
                last_on_stream = Some(tenant);
            }
            let me = &mut tenants[c.index];
            let requests = match c.taken {
                Some(taken) => taken,
                None => me.batcher.take(c.requests, c.trigger).requests,
            };
            me.in_flight = Some(RawBatch {
                batch: me.next_batch,
                bucket: c.bucket,
                trigger: c.trigger,
                requests,
                formed_host: now,
                noticed_host: start + gpu_ns + overheads.notice_ns,
                start_gpu: start as u64,
                end_gpu: (start + gpu_ns) as u64,
                launches: Vec::new(),
            });
            me.next_batch += 1;
        }
        // Clockwork issues the next batch as the stream frees, if anything waits
        let issue = (scenario.scheduler == RuntimeScheduler::Clockwork
            && tenants.iter().any(|t| t.batcher.waiting() > 0))
        .then_some(stream_free - overheads.dispatch_ns);
        match tenants.iter().filter_map(SimTenant::next_event).chain(issue).filter(|t| *t > now).min() {
            Some(t) => now = t,
            None => break,
        }
    }
    let mut out = SimulatedRun { aggressors_ignored: scenario.aggressors.len(), ..SimulatedRun::default() };
    out.requests.reserve(tenants.iter().map(|t| t.next_request as usize + t.batcher.waiting()).sum());
    out.batches.reserve(tenants.iter().map(|t| t.next_batch as usize).sum());
    for (t, mut row) in tenants.into_iter().zip(plans.tenant_rows) {
        // what was never admitted or never served, as the harness records it
        let mut unserved = t.dropped;
        unserved.extend(t.batcher.into_waiting());
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
        tenant_stats(&mut row, &requests, &batches, window_ns, &solo_gpu_ms, Intervals::None);
        out.tenants.push(row);
    }
    Ok(out)
}
