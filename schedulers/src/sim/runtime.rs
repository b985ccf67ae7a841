//! Runtime schedulers: per batch, when it launches, how large, and beside which others: as the
//! scenario names it ([`Scheduler::Harness`]: each tenant's own loop, or Clockwork), or least
//! headroom first with a predictor. The harness runs each of them, so every plan can be measured
//! (`docs/schedulers.md` says what each takes from its source).

use coloc_predictors::predictor::Predictor;
use coloc_workloads::batcher::{Queued, Trigger};
use coloc_workloads::clockwork::{Lane, decide};
use coloc_workloads::scenario::RuntimeScheduler;

use super::tenant::SimTenant;

/// A runtime scheduler.
#[derive(Clone, Copy)]
pub enum Scheduler<'a> {
    /// As the harness runs the scenario ([`RuntimeScheduler`]): each tenant's batch launches the
    /// moment its batcher says it is due, on the tenant's own partition; or Clockwork.
    Harness,
    /// Abacus: due tenants in order of least headroom (the oldest request's deadline less the
    /// batch's solo time), each batch launched beside those in flight only if `predictor`
    /// expects it to end by that deadline, else held until one of them ends (a batch with
    /// nothing in flight always goes, and so does one that would miss even alone).
    LeastHeadroom { predictor: &'a dyn Predictor },
}

/// A batch the scheduler would launch now: of tenant `index`, with at most `requests` of its
/// oldest waiting requests (or those it already `taken`), in the graph `bucket`.
pub(super) struct Candidate {
    pub(super) index: usize,
    pub(super) trigger: Trigger,
    pub(super) requests: usize,
    pub(super) bucket: usize,
    pub(super) taken: Option<Vec<Queued>>,
}

/// What the scheduler sees of the GPU at a decision.
pub(super) struct Moment {
    pub(super) now: i64,
    pub(super) dispatch_ns: i64,
    pub(super) notice_ns: i64,
    /// One stream: when it has run everything launched on it.
    pub(super) stream_free: Option<i64>,
    /// One stream: the GPU's gap between a batch and the next queued behind it.
    pub(super) queued_gap_ns: i64,
    /// What the scenario asks the harness to run.
    pub(super) runtime: RuntimeScheduler,
}

impl Moment {
    /// When a scheduler expects a batch formed now to start: after the dispatch, and on one
    /// stream once it is free. The harness's Clockwork gate knows no more than this.
    pub(super) fn start(&self) -> i64 {
        let start = self.now + self.dispatch_ns;
        self.stream_free.map_or(start, |free| start.max(free))
    }

    /// When it does start: on one stream, the gap after the batch before it too.
    pub(super) fn gpu_start(&self) -> i64 {
        let start = self.now + self.dispatch_ns;
        self.stream_free.map_or(start, |free| start.max(free + self.queued_gap_ns))
    }
}

/// The tenants that may launch now, in the order the scheduler considers them, each with the
/// batch it would launch. Requests Clockwork drops move to the tenant's dropped list.
pub(super) fn candidates(scheduler: &Scheduler, at: &Moment, tenants: &mut [SimTenant]) -> Vec<Candidate> {
    let idle = |t: &SimTenant| t.in_flight.is_none() && at.now <= t.plan.deadline_ns;
    let mut order: Vec<usize> = (0..tenants.len()).filter(|&i| idle(&tenants[i])).collect();
    if matches!(scheduler, Scheduler::Harness) && at.runtime == RuntimeScheduler::Clockwork {
        return clockwork(at, tenants);
    }
    order.retain(|&i| tenants[i].batcher.due(at.now, tenants[i].exhausted).is_some());
    match scheduler {
        Scheduler::LeastHeadroom { .. } => order.sort_by_key(|&i| (headroom(&tenants[i], at), i)),
        Scheduler::Harness => {}
    }
    order
        .into_iter()
        .map(|i| {
            let t = &tenants[i];
            let trigger = t.batcher.due(at.now, t.exhausted).expect("due");
            let requests = t.batcher.waiting().min(t.plan.policy.max_batch);
            Candidate { index: i, trigger, requests, bucket: t.plan.policy.bucket_for(requests), taken: None }
        })
        .collect()
}

/// Clockwork's one batch, if the stream is about to be free and anything can be served in time
/// ([`coloc_workloads::clockwork::decide`]), its requests already taken from the batcher.
fn clockwork(at: &Moment, tenants: &mut [SimTenant]) -> Vec<Candidate> {
    if at.stream_free.is_some_and(|free| free > at.now + at.dispatch_ns) {
        return Vec::new();
    }
    let mut lanes: Vec<Lane> = tenants
        .iter_mut()
        .map(|t| Lane {
            idle: t.in_flight.is_none() && at.now <= t.plan.deadline_ns,
            batcher: &mut t.batcher,
            profile: &t.plan.profile,
            slo_ns: t.slo_ns,
            dropped: &mut t.dropped,
        })
        .collect();
    let Some((index, dispatch)) = decide(&mut lanes, at.start(), at.notice_ns) else { return Vec::new() };
    let requests = dispatch.requests.len();
    vec![Candidate {
        index,
        trigger: dispatch.trigger,
        requests,
        bucket: dispatch.bucket,
        taken: Some(dispatch.requests),
    }]
}

/// The oldest request's deadline less the solo time of the batch the tenant would launch.
fn headroom(t: &SimTenant, at: &Moment) -> i64 {
    let oldest = t.batcher.oldest_ns().unwrap_or(at.now);
    let bucket = t.plan.policy.bucket_for(t.batcher.waiting().min(t.plan.policy.max_batch));
    let solo_us = t.plan.profile.iter().find(|(b, _)| *b == bucket).map_or(0.0, |p| p.1);
    oldest + t.slo_ns - at.now - coloc_workloads::clockwork::ns(solo_us)
}

/// Whether `predicted_us`, the scheduler's expectation for a candidate that takes `solo_us`
/// alone, lets it launch beside `in_flight` other batches
/// ([`coloc_workloads::headroom::admits`], the harness's rule).
pub(super) fn admits(
    scheduler: &Scheduler,
    at: &Moment,
    oldest_ns: i64,
    slo_ns: i64,
    predicted_us: f64,
    solo_us: f64,
    in_flight: usize,
) -> bool {
    let ns = coloc_workloads::clockwork::ns;
    match scheduler {
        Scheduler::LeastHeadroom { .. } => coloc_workloads::headroom::admits(
            in_flight > 0,
            at.start(),
            ns(predicted_us),
            ns(solo_us),
            at.notice_ns,
            oldest_ns + slo_ns,
        ),
        Scheduler::Harness => true,
    }
}
