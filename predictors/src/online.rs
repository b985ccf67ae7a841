//! An online linear model of the slowdown over solo at the share, on coarse features of what
//! runs beside the batch, fitted by recursive least squares with a forgetting factor (the
//! "coarse features" variant of issue 9's online adaptive models; drift detection and the
//! per-kernel features are still to come).
//!
//! Features, per partition mechanism (interference differs by an order of magnitude between
//! streams and green contexts): the number of co-runners, and their remaining work relative to
//! the target's, `sum over co-runners of max(0, 1 - elapsed / solo) * solo / target solo`; plus an
//! intercept. The model predicts `measured / solo`; the prediction is solo times it.

use coloc_workloads::scenario::PartitionKind;

use crate::drift::{PageHinkley, PageHinkleyParams};
use crate::error::{Error, Result};
use crate::predictor::{Fit, Online, Predictor, learn_in_order};
use crate::query::{Example, Query};
use crate::rls::Rls;

const MECHANISMS: [PartitionKind; 5] = [
    PartitionKind::TimeSliced,
    PartitionKind::Streams,
    PartitionKind::Green,
    PartitionKind::Mps,
    PartitionKind::Processes,
];
/// Intercept, then (count, remaining work) per mechanism.
pub const COARSE_FEATURES: usize = 1 + 2 * MECHANISMS.len();

/// The coarse features of a query.
pub fn coarse_features(q: &Query) -> [f64; COARSE_FEATURES] {
    let mut x = [0.0; COARSE_FEATURES];
    x[0] = 1.0;
    let m = MECHANISMS.iter().position(|p| *p == q.target.partition).unwrap_or(0);
    let remaining: f64 =
        q.co_runners.iter().map(|c| (1.0 - c.elapsed_us / c.solo_us).max(0.0) * c.solo_us / q.solo_us).sum();
    x[1 + 2 * m] = q.co_runners.len() as f64;
    x[2 + 2 * m] = remaining;
    x
}

/// How an online linear model of the slowdown learns: the forgetting factor, the initial
/// uncertainty, and drift detection on the residual slowdown (an alarm resets the uncertainty, so
/// the model relearns fast after the workload shifts). The coarse and the per-kernel models share
/// it.
#[derive(Clone, Copy, Debug)]
pub struct OnlineLearning {
    pub forgetting: f64,
    pub delta: f64,
    pub drift: Option<PageHinkleyParams>,
}

impl Default for OnlineLearning {
    fn default() -> Self {
        OnlineLearning { forgetting: 0.9995, delta: 1e3, drift: None }
    }
}

impl OnlineLearning {
    /// With Page-Hinkley on the residual slowdown: shifts of more than 0.02 that add up to 5.
    pub fn with_drift_detection() -> Self {
        OnlineLearning { drift: Some(PageHinkleyParams { delta: 0.02, threshold: 5.0 }), ..Self::default() }
    }

    /// A model of `k` weights before any observation: no interference (slowdown 1 from the
    /// intercept, the first feature), what the floor says.
    pub fn start(&self, k: usize) -> Result<OnlineSlowdown> {
        // written so that NaN fails too
        let valid = self.forgetting > 0.0 && self.forgetting <= 1.0 && self.delta > 0.0;
        if !valid {
            return Err(Error::data(
                "online predictor",
                format!("forgetting {} must be in (0, 1] and delta {} positive", self.forgetting, self.delta),
            ));
        }
        let mut prior = vec![0.0; k];
        prior[0] = 1.0;
        Ok(OnlineSlowdown {
            rls: Rls::new(k, self.delta, self.forgetting).with_weights(&prior),
            drift: self.drift.map(PageHinkley::new),
            resets: 0,
        })
    }
}

/// A linear model of the slowdown, learnt one observation at a time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OnlineSlowdown {
    rls: Rls,
    drift: Option<PageHinkley>,
    /// Alarms raised so far.
    pub resets: u64,
}

impl OnlineSlowdown {
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.rls.predict(x)
    }

    /// Learns that the features `x` came with `slowdown`.
    pub fn learn(&mut self, x: &[f64], slowdown: f64) {
        if let Some(ph) = &mut self.drift
            && ph.observe(slowdown - self.rls.predict(x))
        {
            self.rls.reset_uncertainty();
            self.resets += 1;
        }
        self.rls.update(x, slowdown);
    }

    pub fn detects_drift(&self) -> bool {
        self.drift.is_some()
    }
}

/// Parameters of [`OnlineCoarse`].
pub type OnlineCoarseParams = OnlineLearning;

/// The fitted model; [`Online::update`] goes on learning from observations.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OnlineCoarse {
    pub model: OnlineSlowdown,
}

impl OnlineLearning {
    /// The coarse model before any observation.
    pub fn start_coarse(&self) -> Result<OnlineCoarse> {
        Ok(OnlineCoarse { model: self.start(COARSE_FEATURES)? })
    }
}

impl Online for OnlineCoarse {
    fn update(&mut self, query: &Query, measured_us: f64) {
        self.model.learn(&coarse_features(query), measured_us / query.solo_us);
    }
}

impl Fit for OnlineLearning {
    type Fitted = OnlineCoarse;
    /// Learns the training examples in their order (the dataset's: by run, then by time).
    fn fit(&self, train: &[&Example]) -> Result<OnlineCoarse> {
        learn_in_order(self.start_coarse()?, train)
    }
}

impl Predictor for OnlineCoarse {
    fn name(&self) -> &'static str {
        if self.model.detects_drift() { "online RLS, coarse, Page-Hinkley" } else { "online RLS, coarse" }
    }
    fn predict(&self, query: &Query) -> f64 {
        query.solo_us * self.model.predict(&coarse_features(query))
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::query::test_query;

    #[test]
    fn after_a_shift_drift_detection_relearns_faster() {
        // green: slowdown 1.05 per unit of remaining work, then 1.6 from batch 3000 on
        let q = |i: u64| test_query(PartitionKind::Green, &[(1000.0, (i % 10) as f64 * 50.0)]);
        let slowdown = |i: u64, q: &Query| 1.0 + if i < 3000 { 0.05 } else { 0.6 } * coarse_features(q)[6];
        let mut plain = OnlineCoarseParams::default().start_coarse().unwrap();
        let mut watched = OnlineCoarseParams::with_drift_detection().start_coarse().unwrap();
        let (mut err_plain, mut err_watched) = (0.0, 0.0);
        for i in 0..3200 {
            let q = q(i);
            let measured = q.solo_us * slowdown(i, &q);
            if i >= 3000 {
                err_plain += (plain.predict(&q) - measured).abs() / measured;
                err_watched += (watched.predict(&q) - measured).abs() / measured;
            }
            plain.update(&q, measured);
            watched.update(&q, measured);
        }
        assert!(watched.model.resets >= 1 && plain.model.resets == 0);
        assert!(err_watched < 0.5 * err_plain, "{err_watched} vs {err_plain}");
    }

    #[test]
    fn remaining_work_is_relative_to_the_target_and_never_negative() {
        let q = test_query(PartitionKind::Green, &[(2000.0, 500.0), (800.0, 900.0)]);
        let x = coarse_features(&q);
        assert_eq!(x[0], 1.0);
        assert_eq!((x[5], x[6]), (2.0, 1.5)); // green: 2 co-runners, 0.75 * 2000 / 1000 + 0
        assert_eq!(x.iter().filter(|v| **v != 0.0).count(), 3);
    }

    #[test]
    fn it_learns_a_known_slowdown_per_mechanism() {
        // streams: +40% per unit of remaining co-runner work; green: +5%
        let truth = |q: &Query| {
            let x = coarse_features(q);
            q.solo_us * (1.0 + 0.4 * x[4] + 0.05 * x[6])
        };
        let mut train = Vec::new();
        for i in 0..600 {
            let p = if i % 2 == 0 { PartitionKind::Streams } else { PartitionKind::Green };
            let co: Vec<(f64, f64)> = (0..(i % 3)).map(|j| (500.0 + 100.0 * j as f64, (i % 7) as f64 * 60.0)).collect();
            let q = test_query(p, &co);
            let measured_us = truth(&q);
            train.push(Example::nth(i, q, measured_us));
        }
        let train: Vec<&Example> = train.iter().collect();
        let model = OnlineCoarseParams { forgetting: 1.0, delta: 1e4, drift: None }.fit(&train).unwrap();
        for q in [
            test_query(PartitionKind::Streams, &[(900.0, 100.0)]),
            test_query(PartitionKind::Green, &[(600.0, 0.0), (700.0, 200.0)]),
            test_query(PartitionKind::Green, &[]),
        ] {
            // the prior P = delta * I pulls the weights by about 1/delta: a relative 1e-5
            let rel = (model.predict(&q) - truth(&q)).abs() / truth(&q);
            assert!(rel < 1e-5, "{} vs {}", model.predict(&q), truth(&q));
        }
        assert!(OnlineCoarseParams { forgetting: 1.5, delta: 1.0, drift: None }.fit(&train).is_err());
    }
}
