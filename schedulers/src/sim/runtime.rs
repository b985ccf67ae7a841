//! Runtime schedulers: per batch, when it launches, how large, and beside which others. The
//! harness's own serving loop is [`Scheduler::Independent`], under which every placement plan
//! is measured; the others run in the simulator only (`docs/schedulers.md` says why and what
//! each takes from its source).

use coloc_predictors::predictor::Predictor;
use coloc_workloads::batcher::Trigger;

use super::tenant::SimTenant;

/// A runtime scheduler.
#[derive(Clone, Copy)]
pub enum Scheduler<'a> {
    /// Each tenant's batch launches the moment its batcher says it is due, on the tenant's own
    /// partition: the harness's loop.
    Independent,
    /// Due batches launch at once, in the order their oldest requests arrived, with nothing
    /// held back: Abacus's first-come-first-served baseline.
    Fcfs,
    /// Abacus: due tenants in order of least headroom (the oldest request's deadline less the
    /// batch's solo time), each batch launched beside those in flight only if `predictor`
    /// expects it to end by that deadline, else held until one of them ends (a batch with
    /// nothing in flight always goes).
    LeastHeadroom { predictor: &'a dyn Predictor },
    /// Clockwork: one batch at a time on the GPU, issued so that it starts as the previous one
    /// ends; the tenant whose oldest request's deadline is earliest goes, at the profiled batch
    /// size that serves the most of its requests in time by the profiles; requests that size
    /// cannot serve in time are dropped (no later batch could serve them in time either).
    Clockwork,
}

impl Scheduler<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Scheduler::Independent => "independent",
            Scheduler::Fcfs => "fcfs",
            Scheduler::LeastHeadroom { .. } => "least-headroom",
            Scheduler::Clockwork => "clockwork",
        }
    }

    /// Whether the harness runs it, so that its plans can be measured for real.
    pub fn in_harness(&self) -> bool {
        matches!(self, Scheduler::Independent)
    }
}

/// A batch the scheduler would launch now: of tenant `index`, with at most `requests` of its
/// oldest waiting requests, in the graph `bucket`.
pub(super) struct Candidate {
    pub(super) index: usize,
    pub(super) trigger: Trigger,
    pub(super) requests: usize,
    pub(super) bucket: usize,
}

/// What the scheduler sees of the GPU at a decision.
pub(super) struct Moment {
    pub(super) now: i64,
    pub(super) dispatch_ns: i64,
    pub(super) notice_ns: i64,
    /// One stream: when it has run everything launched on it.
    pub(super) stream_free: Option<i64>,
}

impl Moment {
    /// When a batch formed now starts.
    pub(super) fn start(&self) -> i64 {
        let start = self.now + self.dispatch_ns;
        self.stream_free.map_or(start, |free| start.max(free))
    }
}

/// The tenants that may launch now, in the order the scheduler considers them, each with the
/// batch it would launch. Requests Clockwork drops move to the tenant's dropped list.
pub(super) fn candidates(scheduler: &Scheduler, at: &Moment, tenants: &mut [SimTenant]) -> Vec<Candidate> {
    let idle = |t: &SimTenant| t.in_flight.is_none() && at.now <= t.plan.deadline_ns;
    let mut order: Vec<usize> = (0..tenants.len()).filter(|&i| idle(&tenants[i])).collect();
    match scheduler {
        Scheduler::Independent | Scheduler::Fcfs | Scheduler::LeastHeadroom { .. } => {
            order.retain(|&i| tenants[i].batcher.due(at.now, tenants[i].exhausted).is_some());
            match scheduler {
                Scheduler::Fcfs => order.sort_by_key(|&i| (tenants[i].batcher.oldest_ns(), i)),
                Scheduler::LeastHeadroom { .. } => order.sort_by_key(|&i| (headroom(&tenants[i], at), i)),
                _ => {}
            }
            order
                .into_iter()
                .map(|i| {
                    let t = &tenants[i];
                    let trigger = t.batcher.due(at.now, t.exhausted).expect("due");
                    let requests = t.batcher.waiting().min(t.plan.policy.max_batch);
                    Candidate { index: i, trigger, requests, bucket: t.plan.policy.bucket_for(requests) }
                })
                .collect()
        }
        Scheduler::Clockwork => {
            if at.stream_free.is_some_and(|free| free > at.now + at.dispatch_ns) {
                return Vec::new();
            }
            let start = at.start();
            for &i in &order {
                let t = &mut tenants[i];
                // a request that a batch of one started now cannot end in time for
                let Some(&(_, alone_us)) = t.profile.first() else { continue };
                let ends = start + ns(alone_us) + at.notice_ns;
                let dropped = t.batcher.drop_before(ends - t.slo_ns);
                t.dropped.extend(dropped);
            }
            let earliest =
                order.iter().filter_map(|&i| tenants[i].batcher.oldest_ns().map(|a| (a + tenants[i].slo_ns, i))).min();
            let Some((_, i)) = earliest else { return Vec::new() };
            let t = &mut tenants[i];
            let waiting = t.batcher.waiting();
            // the size that serves the most requests in time (the smaller on a tie); those it
            // cannot serve in time go, as no later batch could serve them in time either
            let mut best: Option<(usize, usize, i64)> = None;
            for &(b, us) in t.profile.iter().filter(|(b, _)| *b <= t.plan.policy.max_batch) {
                let cutoff = start + ns(us) + at.notice_ns - t.slo_ns;
                let served = b.min(waiting - t.batcher.count_before(cutoff));
                if best.is_none_or(|(most, _, _)| served > most) {
                    best = Some((served, b, cutoff));
                }
            }
            let Some((served, bucket, cutoff)) = best.filter(|b| b.0 > 0) else { return Vec::new() };
            let dropped = t.batcher.drop_before(cutoff);
            t.dropped.extend(dropped);
            vec![Candidate { index: i, trigger: Trigger::Scheduled, requests: served, bucket }]
        }
    }
}

/// The oldest request's deadline less the solo time of the batch the tenant would launch.
fn headroom(t: &SimTenant, at: &Moment) -> i64 {
    let oldest = t.batcher.oldest_ns().unwrap_or(at.now);
    let bucket = t.plan.policy.bucket_for(t.batcher.waiting().min(t.plan.policy.max_batch));
    let solo_us = t.profile.iter().find(|(b, _)| *b == bucket).map_or(0.0, |p| p.1);
    oldest + t.slo_ns - at.now - ns(solo_us)
}

/// Whether `predicted_us`, the scheduler's expectation for a candidate, lets it launch beside
/// `in_flight` other batches.
pub(super) fn admits(
    scheduler: &Scheduler,
    at: &Moment,
    oldest_ns: i64,
    slo_ns: i64,
    predicted_us: f64,
    in_flight: usize,
) -> bool {
    match scheduler {
        Scheduler::LeastHeadroom { .. } => {
            in_flight == 0 || at.start() + ns(predicted_us) + at.notice_ns <= oldest_ns + slo_ns
        }
        _ => true,
    }
}

/// A time in us as whole ns, rounded as the simulator rounds a batch's GPU time.
pub(super) fn ns(us: f64) -> i64 {
    (us * 1e3).round() as i64
}
