//! Stochastic gradient descent for the online linear models, as normalised least mean squares:
//! a step on the squared error of one observation, divided by the features' squared norm (so one
//! step size suits features of any scale). O(k) per update where RLS ([`crate::rls`]) is O(k²),
//! at the price of slower convergence; with a fixed step it forgets as fast as it learns, so it
//! tracks the run it is in. The coarse and the per-kernel models learn with either
//! ([`crate::online::Method`]).

use serde::{Deserialize, Serialize};

/// The weights of a linear model learnt by NLMS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nlms {
    w: Vec<f64>,
    /// In (0, 2): NLMS converges there.
    step: f64,
}

impl Nlms {
    /// Starts from the weights `w`.
    pub fn new(w: &[f64], step: f64) -> Nlms {
        Nlms { w: w.to_vec(), step }
    }

    pub fn weights(&self) -> &[f64] {
        &self.w
    }

    pub fn predict(&self, x: &[f64]) -> f64 {
        self.w.iter().zip(x).map(|(w, x)| w * x).sum()
    }

    /// Takes one observation `y` at features `x`; a non-finite one is ignored.
    pub fn update(&mut self, x: &[f64], y: f64) {
        let error = y - self.predict(x);
        if !error.is_finite() {
            return;
        }
        let norm: f64 = x.iter().map(|v| v * v).sum();
        let gain = self.step * error / (1e-6 + norm);
        for (w, v) in self.w.iter_mut().zip(x) {
            *w += gain * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_recovers_the_weights_of_a_noiseless_linear_relation() {
        let mut m = Nlms::new(&[0.0; 3], 0.5);
        for i in 0..20_000 {
            let x = [1.0, (i % 7) as f64, ((i * 13) % 5) as f64 * 0.5];
            m.update(&x, 2.0 + 0.3 * x[1] - 1.5 * x[2]);
        }
        for (got, want) in m.weights().iter().zip([2.0, 0.3, -1.5]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // a NaN observation leaves the weights as they were
        let before = m.clone();
        m.update(&[1.0, 1.0, 1.0], f64::NAN);
        assert_eq!(m, before);
    }

    #[test]
    fn one_step_moves_the_prediction_by_the_step_times_the_error() {
        // the normalised step: after one update the error at x shrinks by (1 - step)
        let mut m = Nlms::new(&[1.0, 0.0], 0.25);
        let x = [1.0, 3.0];
        m.update(&x, 5.0);
        let err = 5.0 - m.predict(&x);
        assert!((err - 0.75 * 4.0).abs() < 1e-5, "{err}");
    }
}
