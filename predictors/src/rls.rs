//! Recursive least squares with a forgetting factor: the weights of a linear model updated one
//! observation at a time in O(k²), old observations discounted by `lambda` per step.
//!
//! With forgetting, directions the data leave unexcited for long (the features of a mechanism
//! that has not run for thousands of batches) see their uncertainty grow as lambda^-n until one
//! observation swings the weights wildly ("wind-up"). The uncertainty is therefore capped: when
//! the trace of P exceeds its starting value (k * delta), P is scaled back to it.

/// The state of a recursive least-squares fit of k weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rls {
    w: Vec<f64>,
    /// The inverse of the (discounted) information matrix, k x k, row-major.
    p: Vec<f64>,
    lambda: f64,
    /// The cap on the trace of P.
    max_trace: f64,
}

impl Rls {
    /// k weights at zero, `P = delta * I` (a large delta: little trust in the zeros), forgetting
    /// factor `lambda` in (0, 1] (1: nothing forgotten).
    pub fn new(k: usize, delta: f64, lambda: f64) -> Rls {
        let mut p = vec![0.0; k * k];
        for i in 0..k {
            p[i * k + i] = delta;
        }
        Rls { w: vec![0.0; k], p, lambda, max_trace: k as f64 * delta }
    }

    /// Starts from `w` instead of zeros (a prior the data then correct).
    pub fn with_weights(mut self, w: &[f64]) -> Rls {
        self.w.copy_from_slice(w);
        self
    }

    pub fn weights(&self) -> &[f64] {
        &self.w
    }

    /// Forgets the past: P back to its start, the weights kept (they are the best guess, but
    /// the next observations may move them as much as the first ones did).
    pub fn reset_uncertainty(&mut self) {
        let k = self.w.len();
        let delta = self.max_trace / k as f64;
        self.p.iter_mut().enumerate().for_each(|(i, v)| *v = if i % (k + 1) == 0 { delta } else { 0.0 });
    }

    /// The trace of P: how uncertain the weights still are.
    pub fn uncertainty(&self) -> f64 {
        let k = self.w.len();
        (0..k).map(|i| self.p[i * k + i]).sum()
    }

    pub fn predict(&self, x: &[f64]) -> f64 {
        self.w.iter().zip(x).map(|(w, x)| w * x).sum()
    }

    /// Takes one observation `y` at features `x`.
    pub fn update(&mut self, x: &[f64], y: f64) {
        let k = self.w.len();
        // px = P x, denominator lambda + x' P x, gain g = px / denominator
        let px: Vec<f64> = (0..k).map(|i| (0..k).map(|j| self.p[i * k + j] * x[j]).sum()).collect();
        let denom = self.lambda + x.iter().zip(&px).map(|(a, b)| a * b).sum::<f64>();
        let gain: Vec<f64> = px.iter().map(|v| v / denom).collect();
        let err = y - self.predict(x);
        for (w, g) in self.w.iter_mut().zip(&gain) {
            *w += g * err;
        }
        // P = (P - g px') / lambda (P stays symmetric: px is P x)
        for (row, g) in self.p.chunks_exact_mut(k).zip(&gain) {
            for (v, pxj) in row.iter_mut().zip(&px) {
                *v = (*v - g * pxj) / self.lambda;
            }
        }
        let trace = self.uncertainty();
        if trace > self.max_trace {
            let scale = self.max_trace / trace;
            self.p.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

/// Batch least squares of k weights per partition mechanism and over all of them (through RLS
/// with no forgetting and a vague prior), for the static models fitted per mechanism.
pub struct PerMechanism<const K: usize> {
    pooled: Rls,
    by_mechanism: std::collections::BTreeMap<coloc_workloads::scenario::PartitionKind, (Rls, usize)>,
    n: usize,
}

impl<const K: usize> Default for PerMechanism<K> {
    fn default() -> Self {
        PerMechanism { pooled: Rls::new(K, 1e6, 1.0), by_mechanism: Default::default(), n: 0 }
    }
}

/// Weights per mechanism with enough observations, and over all of them.
pub type MechanismWeights<const K: usize> =
    (std::collections::BTreeMap<coloc_workloads::scenario::PartitionKind, [f64; K]>, [f64; K]);

impl<const K: usize> PerMechanism<K> {
    pub fn add(&mut self, mechanism: coloc_workloads::scenario::PartitionKind, x: &[f64; K], y: f64) {
        self.pooled.update(x, y);
        let (rls, n) = self.by_mechanism.entry(mechanism).or_insert_with(|| (Rls::new(K, 1e6, 1.0), 0));
        rls.update(x, y);
        *n += 1;
        self.n += 1;
    }

    /// The weights of every mechanism with at least `min` observations, and the pooled ones;
    /// none without an observation.
    pub fn weights(self, min: usize) -> Option<MechanismWeights<K>> {
        if self.n == 0 {
            return None;
        }
        let w = |r: &Rls| -> [f64; K] { r.weights().try_into().expect("K weights") };
        let by = self.by_mechanism.iter().filter(|(_, (_, n))| *n >= min).map(|(m, (r, _))| (*m, w(r))).collect();
        Some((by, w(&self.pooled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_recovers_the_weights_of_a_noiseless_linear_relation() {
        let mut r = Rls::new(3, 1e6, 1.0);
        for i in 0..200 {
            let x = [1.0, (i % 7) as f64, ((i * 13) % 5) as f64 * 0.5];
            r.update(&x, 2.0 + 0.3 * x[1] - 1.5 * x[2]);
        }
        for (got, want) in r.weights().iter().zip([2.0, 0.3, -1.5]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn an_unexcited_direction_does_not_wind_up() {
        // feature 1 is zero for 20,000 steps under forgetting, then appears once
        let mut r = Rls::new(2, 10.0, 0.999);
        for _ in 0..20_000 {
            r.update(&[1.0, 0.0], 1.0);
        }
        // uncapped, P's second diagonal would be 10 * 0.999^-20000, about 5e9
        assert!(r.uncertainty() <= 20.0 + 1e-9, "{}", r.uncertainty());
        // a noisy first look at the direction moves its weight by a bounded step
        r.update(&[1.0, 1.0], 1.5 + 0.3);
        assert!(r.weights().iter().all(|w| w.is_finite() && w.abs() < 10.0), "{:?}", r.weights());
        for _ in 0..1000 {
            r.update(&[1.0, 1.0], 1.5);
            r.update(&[1.0, 0.0], 1.0);
        }
        assert!((r.weights()[1] - 0.5).abs() < 1e-3, "{:?}", r.weights());
    }

    #[test]
    fn with_forgetting_it_follows_a_relation_that_changes() {
        let (mut forgetful, mut steady) = (Rls::new(2, 1e6, 0.95), Rls::new(2, 1e6, 1.0));
        for i in 0..400 {
            let x = [1.0, (i % 5) as f64];
            let slope = if i < 200 { 0.1 } else { 0.6 };
            forgetful.update(&x, 1.0 + slope * x[1]);
            steady.update(&x, 1.0 + slope * x[1]);
        }
        assert!((forgetful.weights()[1] - 0.6).abs() < 1e-3, "{:?}", forgetful.weights());
        // without forgetting, the old relation still weighs on the fit
        assert!((steady.weights()[1] - 0.6).abs() > 0.1, "{:?}", steady.weights());
    }
}
