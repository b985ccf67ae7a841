//! Abacus's runtime scheduler in the harness ([`RuntimeScheduler::LeastHeadroom`]): the tenants
//! of a streams run keep their own batchers, and a due batch launches beside the batches in
//! flight only if the scenario's predictor expects it to end within its oldest request's
//! deadline; otherwise it waits in its batcher until one of them ends. A batch with nothing in
//! flight always goes, and so does one that would miss even alone
//! ([`coloc_workloads::headroom::admits`], the simulator's rule too). The query is the one a measured batch yields: the target at its bucket,
//! and each batch in flight with how long it has run, its start taken as its launch plus the
//! harness's dispatch time.
//!
//! The simulator's version also orders the due tenants by headroom at one instant; here each
//! tenant's thread asks as its batch falls due, so whoever asks first is answered first.
//!
//! [`RuntimeScheduler::LeastHeadroom`]: coloc_workloads::scenario::RuntimeScheduler::LeastHeadroom

use std::sync::Mutex;

use coloc_predictors::predictor::Predictor;
use coloc_predictors::query::{CoRunner, Query, Target};
use coloc_workloads::clockwork::ns;
use coloc_workloads::headroom::admits;
use coloc_workloads::scenario::{PartitionKind, SoloShare};

use crate::gate::Costs;
use crate::tenant::TenantPlan;

/// What the gate knows of a tenant.
struct Lane {
    model: String,
    /// (bucket, solo GPU time at the tenant's share in us), as the plan profiled it.
    profile: Vec<(usize, f64)>,
    slo_ns: i64,
}

impl Lane {
    fn solo_us(&self, bucket: usize) -> f64 {
        self.profile.iter().find(|(b, _)| *b == bucket).map_or(0.0, |p| p.1)
    }
}

/// A batch in flight: its bucket and when it started (host clock, estimated).
#[derive(Clone, Copy)]
struct Running {
    bucket: usize,
    start_ns: i64,
}

/// The admission test the tenants of one streams run share.
pub struct HeadroomGate {
    lanes: Vec<Lane>,
    running: Mutex<Vec<Option<Running>>>,
    predictor: Box<dyn Predictor + Send + Sync>,
    costs: Costs,
}

impl HeadroomGate {
    /// The gate of `tenants` (in plan order: tenant `i` asks as lane `i`), asking `predictor`.
    pub fn new(tenants: &[TenantPlan], predictor: Box<dyn Predictor + Send + Sync>, costs: Costs) -> HeadroomGate {
        let lanes = tenants
            .iter()
            .map(|t| Lane {
                model: t.model.name.clone(),
                profile: t.profile.clone(),
                slo_ns: (t.slo_ms * 1e6).round() as i64,
            })
            .collect::<Vec<_>>();
        HeadroomGate { running: Mutex::new(vec![None; lanes.len()]), lanes, predictor, costs }
    }

    /// The query a batch of `lane` at `bucket` formed at `now` yields.
    fn query(&self, lane: usize, bucket: usize, start_ns: i64, running: &[Option<Running>]) -> Query {
        let me = &self.lanes[lane];
        let co_runners = running
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != lane)
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .map(|(i, r)| CoRunner {
                model: self.lanes[i].model.clone(),
                bucket: r.bucket as u32,
                share: SoloShare::Device,
                solo_us: self.lanes[i].solo_us(r.bucket),
                elapsed_us: (start_ns - r.start_ns).max(0) as f64 / 1e3,
            })
            .collect();
        Query {
            target: Target {
                model: me.model.clone(),
                bucket: bucket as u32,
                share: SoloShare::Device,
                partition: PartitionKind::Streams,
            },
            solo_us: me.solo_us(bucket),
            co_runners,
        }
    }

    /// Whether a batch of `lane` at `bucket`, formed at `now` (host clock) with its oldest
    /// request arrived at `oldest_ns`, may launch; if it may, it counts as in flight from now.
    pub fn admits(&self, lane: usize, now: i64, bucket: usize, oldest_ns: i64) -> bool {
        let mut running = self.running.lock().expect("headroom gate");
        let start_ns = now + self.costs.dispatch_ns;
        let others = running.iter().enumerate().any(|(i, r)| i != lane && r.is_some());
        let go = !others || {
            let predicted_ns = ns(self.predictor.predict(&self.query(lane, bucket, start_ns, &running)));
            let solo_ns = ns(self.lanes[lane].solo_us(bucket));
            let deadline_ns = oldest_ns + self.lanes[lane].slo_ns;
            admits(others, start_ns, predicted_ns, solo_ns, self.costs.notice_ns, deadline_ns)
        };
        if go {
            running[lane] = Some(Running { bucket, start_ns });
        }
        go
    }

    /// `lane`'s batch in flight has been noticed done.
    pub fn done(&self, lane: usize) {
        self.running.lock().expect("headroom gate")[lane] = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each batch takes its solo time once more per co-runner.
    struct Doubling;

    impl Predictor for Doubling {
        fn name(&self) -> &'static str {
            "test"
        }
        fn predict(&self, q: &Query) -> f64 {
            q.solo_us * (1.0 + q.co_runners.len() as f64)
        }
    }

    fn gate() -> HeadroomGate {
        let lane =
            |model: &str| Lane { model: model.into(), profile: vec![(1, 1000.0), (4, 2500.0)], slo_ns: 3_000_000 };
        HeadroomGate {
            lanes: vec![lane("a"), lane("b")],
            running: Mutex::new(vec![None; 2]),
            predictor: Box::new(Doubling),
            costs: Costs { dispatch_ns: 10_000, notice_ns: 5_000, queued_gap_ns: 0 },
        }
    }

    #[test]
    fn a_batch_waits_while_waiting_can_save_it_and_goes_once_the_other_ends() {
        // b's batch of 1 takes 1 ms alone and 2 ms beside a's; SLO 3 ms from its oldest request
        let g = gate();
        // nothing in flight: a batch goes even if it cannot make it
        assert!(g.admits(0, 0, 4, -1_000_000));
        // formed 0.5 ms after its oldest request: 0.51 + 2 + 0.005 ms <= 3 ms beside a's, it goes
        assert!(g.admits(1, 500_000, 1, 0));
        g.done(1);
        // formed 1.5 ms after: 3.515 ms beside a's, 2.515 ms alone: it waits
        assert!(!g.admits(1, 1_500_000, 1, 0));
        // formed 2.5 ms after: it misses even alone, and waiting would only make it later
        assert!(g.admits(1, 2_500_000, 1, 0));
        g.done(1);
        // once a's batch is noticed done, the waiting one goes
        assert!(!g.admits(1, 1_500_000, 1, 0));
        g.done(0);
        assert!(g.admits(1, 1_500_000, 1, 0));
    }

    #[test]
    fn the_query_holds_what_runs_beside_the_batch_and_how_long_it_has_run() {
        let g = gate();
        assert!(g.admits(0, 0, 4, 0));
        let running = g.running.lock().unwrap().clone();
        let q = g.query(1, 1, 1_010_000, &running);
        assert_eq!((q.target.model.as_str(), q.target.bucket, q.solo_us), ("b", 1, 1000.0));
        assert_eq!(q.co_runners.len(), 1);
        let c = &q.co_runners[0];
        // a's batch started at 0 + 10 us of dispatch; b's would start at 1.01 ms
        assert_eq!((c.model.as_str(), c.bucket, c.solo_us, c.elapsed_us), ("a", 4, 2500.0, 1000.0));
        // a tenant is never its own co-runner
        assert!(g.query(0, 4, 1_010_000, &running).co_runners.is_empty());
    }
}
