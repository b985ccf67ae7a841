//! An online linear model of the slowdown over solo at the share, on coarse features of what
//! runs beside the batch (the "coarse features" variant of issue 9's online adaptive models),
//! learnt by recursive least squares with a forgetting factor, with or without Page-Hinkley drift
//! detection, or by SGD. The learning is shared with the per-kernel model ([`crate::perkernel`]).
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
use crate::sgd::Nlms;

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

/// How the weights of an online linear model are learnt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Recursive least squares: the forgetting factor, in (0, 1], and the initial uncertainty.
    Rls { forgetting: f64, delta: f64 },
    /// Stochastic gradient descent (normalised LMS): the step, in (0, 2).
    Nlms { step: f64 },
}

/// How an online linear model of the slowdown learns: its method, and drift detection on the
/// residual slowdown (an alarm resets RLS's uncertainty, so the model relearns fast after the
/// workload shifts). The coarse and the per-kernel models share it.
#[derive(Clone, Copy, Debug)]
pub struct OnlineLearning {
    pub method: Method,
    pub drift: Option<PageHinkleyParams>,
}

impl Default for OnlineLearning {
    /// RLS forgetting 0.9995 of the weight of the past per observation.
    fn default() -> Self {
        OnlineLearning::rls(0.9995, 1e3)
    }
}

impl OnlineLearning {
    /// RLS with forgetting factor `forgetting` and initial uncertainty `delta`, no drift detection.
    pub fn rls(forgetting: f64, delta: f64) -> Self {
        OnlineLearning { method: Method::Rls { forgetting, delta }, drift: None }
    }

    /// SGD (normalised LMS) with step 0.05.
    pub fn sgd() -> Self {
        OnlineLearning { method: Method::Nlms { step: 0.05 }, drift: None }
    }

    /// The default RLS with Page-Hinkley on the residual slowdown: shifts of more than 0.02 that
    /// add up to 5.
    pub fn with_drift_detection() -> Self {
        OnlineLearning { drift: Some(PageHinkleyParams { delta: 0.02, threshold: 5.0 }), ..Self::default() }
    }

    /// A model of `k` weights before any observation: no interference (slowdown 1 from the
    /// intercept, the first feature), what the floor says.
    pub fn start(&self, k: usize) -> Result<OnlineSlowdown> {
        let mut prior = vec![0.0; k];
        prior[0] = 1.0;
        // written so that NaN fails too
        let learner = match self.method {
            Method::Rls { forgetting, delta } if forgetting > 0.0 && forgetting <= 1.0 && delta > 0.0 => {
                Learner::Rls(Rls::new(k, delta, forgetting).with_weights(&prior))
            }
            Method::Nlms { step } if step > 0.0 && step < 2.0 && self.drift.is_none() => {
                Learner::Nlms(Nlms::new(&prior, step))
            }
            Method::Rls { forgetting, delta } => {
                return Err(Error::data(
                    "online predictor",
                    format!("forgetting {forgetting} must be in (0, 1] and delta {delta} positive"),
                ));
            }
            Method::Nlms { step } => {
                return Err(Error::data(
                    "online predictor",
                    format!(
                        "SGD's step {step} must be in (0, 2), and it takes no drift detection (an alarm resets \
                         RLS's uncertainty; SGD has none)"
                    ),
                ));
            }
        };
        Ok(OnlineSlowdown { learner, drift: self.drift.map(PageHinkley::new), resets: 0 })
    }
}

/// The weights and their learning state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Learner {
    Rls(Rls),
    Nlms(Nlms),
}

/// How a model learns, for its name on the leaderboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learnt {
    Rls,
    RlsPageHinkley,
    Sgd,
}

/// A linear model of the slowdown, learnt one observation at a time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OnlineSlowdown {
    learner: Learner,
    drift: Option<PageHinkley>,
    /// Alarms raised so far.
    pub resets: u64,
}

impl OnlineSlowdown {
    pub fn predict(&self, x: &[f64]) -> f64 {
        match &self.learner {
            Learner::Rls(r) => r.predict(x),
            Learner::Nlms(n) => n.predict(x),
        }
    }

    /// Learns that the features `x` came with `slowdown`.
    pub fn learn(&mut self, x: &[f64], slowdown: f64) {
        match &mut self.learner {
            Learner::Rls(r) => {
                if let Some(ph) = &mut self.drift
                    && ph.observe(slowdown - r.predict(x))
                {
                    r.reset_uncertainty();
                    self.resets += 1;
                }
                r.update(x, slowdown);
            }
            Learner::Nlms(n) => n.update(x, slowdown),
        }
    }

    pub fn learnt(&self) -> Learnt {
        match (&self.learner, &self.drift) {
            (Learner::Rls(_), None) => Learnt::Rls,
            (Learner::Rls(_), Some(_)) => Learnt::RlsPageHinkley,
            (Learner::Nlms(_), _) => Learnt::Sgd,
        }
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
        match self.model.learnt() {
            Learnt::Rls => "online RLS, coarse",
            Learnt::RlsPageHinkley => "online RLS, coarse, Page-Hinkley",
            Learnt::Sgd => "online SGD (NLMS), coarse",
        }
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
        let model = OnlineCoarseParams::rls(1.0, 1e4).fit(&train).unwrap();
        for q in [
            test_query(PartitionKind::Streams, &[(900.0, 100.0)]),
            test_query(PartitionKind::Green, &[(600.0, 0.0), (700.0, 200.0)]),
            test_query(PartitionKind::Green, &[]),
        ] {
            // the prior P = delta * I pulls the weights by about 1/delta: a relative 1e-5
            let rel = (model.predict(&q) - truth(&q)).abs() / truth(&q);
            assert!(rel < 1e-5, "{} vs {}", model.predict(&q), truth(&q));
        }
        assert!(OnlineCoarseParams::rls(1.5, 1.0).fit(&train).is_err());
    }

    #[test]
    fn sgd_converges_to_a_known_slowdown_and_learns_the_same_twice() {
        // green: +5% per co-runner and +30% per unit of remaining co-runner work
        let truth = |q: &Query| {
            let x = coarse_features(q);
            q.solo_us * (1.0 + 0.05 * x[5] + 0.3 * x[6])
        };
        let ex: Vec<Example> = (0..20_000u32)
            .map(|i| {
                let co: Vec<(f64, f64)> =
                    (0..(i % 3)).map(|j| (400.0 + 300.0 * f64::from(j), f64::from(i % 11) * 50.0)).collect();
                let q = test_query(PartitionKind::Green, &co);
                let measured = truth(&q);
                Example::nth(i, q, measured)
            })
            .collect();
        let refs: Vec<&Example> = ex.iter().collect();
        let sgd = OnlineLearning { method: Method::Nlms { step: 0.5 }, drift: None };
        let model = sgd.fit(&refs).unwrap();
        assert_eq!(model.name(), "online SGD (NLMS), coarse");
        for q in [
            test_query(PartitionKind::Green, &[(700.0, 100.0)]),
            test_query(PartitionKind::Green, &[(400.0, 0.0), (700.0, 300.0)]),
        ] {
            let rel = (model.predict(&q) - truth(&q)).abs() / truth(&q);
            assert!(rel < 1e-3, "{} vs {}", model.predict(&q), truth(&q));
        }
        assert_eq!(sgd.fit(&refs).unwrap(), model);
        assert!(OnlineLearning { method: Method::Nlms { step: 2.5 }, drift: None }.fit(&refs).is_err());
        // an alarm resets RLS's uncertainty; SGD has none, so it is refused drift detection
        let with_drift =
            OnlineLearning { method: Method::Nlms { step: 0.5 }, ..OnlineLearning::with_drift_detection() };
        assert!(with_drift.fit(&refs).is_err());
    }
}
