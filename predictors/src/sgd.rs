//! The SGD counterpart of the online RLS model (issue 9's seventh predictor names both): the
//! same coarse features ([`crate::online::coarse_features`]), learnt by normalised least mean
//! squares, stochastic gradient descent on the squared error of the slowdown with the step
//! divided by the features' squared norm (so one step size suits features of any scale). O(k) per
//! update where RLS is O(k²), at the price of slower convergence.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::online::{COARSE_FEATURES, coarse_features};
use crate::predictor::{Fit, Online, Predictor, learn_in_order};
use crate::query::{Example, Query};

/// Parameters of [`OnlineSgd`]: the step, in (0, 2) for NLMS to converge.
#[derive(Clone, Copy, Debug)]
pub struct SgdParams {
    pub step: f64,
}

impl Default for SgdParams {
    fn default() -> Self {
        SgdParams { step: 0.05 }
    }
}

/// The weights, learnt one observation at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineSgd {
    w: Vec<f64>,
    step: f64,
}

impl SgdParams {
    /// Before any observation: slowdown 1 (the floor's answer).
    pub fn start(&self) -> Result<OnlineSgd> {
        if !(self.step > 0.0 && self.step < 2.0) {
            return Err(Error::data("online SGD", format!("step {} must be in (0, 2)", self.step)));
        }
        let mut w = vec![0.0; COARSE_FEATURES];
        w[0] = 1.0;
        Ok(OnlineSgd { w, step: self.step })
    }
}

impl OnlineSgd {
    fn slowdown(&self, x: &[f64]) -> f64 {
        self.w.iter().zip(x).map(|(w, x)| w * x).sum()
    }
}

impl Fit for SgdParams {
    type Fitted = OnlineSgd;
    /// Learns the training examples in their order.
    fn fit(&self, train: &[&Example]) -> Result<OnlineSgd> {
        learn_in_order(self.start()?, train)
    }
}

impl Online for OnlineSgd {
    fn update(&mut self, query: &Query, measured_us: f64) {
        let x = coarse_features(query);
        let error = measured_us / query.solo_us - self.slowdown(&x);
        let norm: f64 = x.iter().map(|v| v * v).sum();
        if error.is_finite() {
            let gain = self.step * error / (1e-6 + norm);
            for (w, v) in self.w.iter_mut().zip(&x) {
                *w += gain * v;
            }
        }
    }
}

impl Predictor for OnlineSgd {
    fn name(&self) -> &'static str {
        "online SGD (NLMS), coarse"
    }
    fn predict(&self, query: &Query) -> f64 {
        query.solo_us * self.slowdown(&coarse_features(query))
    }
}

#[cfg(test)]
mod tests {
    use coloc_workloads::scenario::PartitionKind;

    use super::*;
    use crate::query::test_query;

    #[test]
    fn it_converges_to_a_known_slowdown_and_learns_the_same_twice() {
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
        let model = SgdParams { step: 0.5 }.fit(&refs).unwrap();
        for q in [
            test_query(PartitionKind::Green, &[(700.0, 100.0)]),
            test_query(PartitionKind::Green, &[(400.0, 0.0), (700.0, 300.0)]),
        ] {
            let rel = (model.predict(&q) - truth(&q)).abs() / truth(&q);
            assert!(rel < 1e-3, "{} vs {}", model.predict(&q), truth(&q));
        }
        assert_eq!(SgdParams { step: 0.5 }.fit(&refs).unwrap(), model);
        assert!(SgdParams { step: 2.5 }.fit(&refs).is_err());
    }
}
