//! gpulet's interference model (Choi et al., "Serving heterogeneous machine learning models on
//! multi-GPU servers with spatio-temporal sharing", USENIX ATC 2022), as its public code has it:
//! the slowdown of a model beside another is linear in the two models' solo L2 and DRAM
//! utilisations,
//!
//! `slowdown = c0 * L2_self + c1 * L2_other + c2 * DRAM_self + c3 * DRAM_other + c4`,
//!
//! fitted by least squares on measured pairs, clamped at 1, with the utilisations from solo
//! hardware counters scaled by each model's share ([`crate::counters`]). gpulet models pairs;
//! beside several co-runners the worst of the pairwise slowdowns is taken. It is static: a
//! co-runner counts the same whether it has just started or is about to finish.
//!
//! gpulet fits one model for its MPS partitions; coloc fits one per mechanism that has training
//! pairs, and a pooled one over all of them that answers for a mechanism it has no pairs of.
//!
//! [`GpuletEwma`] adds what issue 9 asks of its third predictor: the static prediction
//! corrected by an exponentially weighted mean of the recent ratios measured / predicted, one per
//! (model, mechanism).

use std::collections::BTreeMap;

use coloc_workloads::scenario::PartitionKind;
use serde::{Deserialize, Serialize};

use crate::counters::Utilisations;
use crate::error::{Error, Result};
use crate::predictor::{Fit, Online, Predictor};
use crate::query::{Example, Query};
use crate::rls::PerMechanism;

const FEATURES: usize = 5;

/// Parameters of [`Gpulet`]: the solo utilisations it is built on.
#[derive(Clone, Debug)]
pub struct GpuletParams {
    pub utilisations: Utilisations,
}

/// The fitted linear model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpulet {
    utilisations: Utilisations,
    /// Coefficients (c0..c4) per mechanism with training pairs.
    by_mechanism: BTreeMap<PartitionKind, [f64; FEATURES]>,
    /// Over every training pair.
    pooled: [f64; FEATURES],
}

/// The features of the target beside one co-runner.
fn features(u: &Utilisations, q: &Query, co: usize) -> Result<[f64; FEATURES]> {
    let me = u.get(&q.target.model, q.target.bucket, q.target.share)?;
    let c = &q.co_runners[co];
    let other = u.get(&c.model, c.bucket, c.share)?;
    Ok([me.l2, other.l2, me.dram, other.dram, 1.0])
}

fn dot(w: &[f64; FEATURES], x: &[f64; FEATURES]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

impl Fit for GpuletParams {
    type Fitted = Gpulet;
    /// Least squares on the training examples with exactly one co-runner (gpulet's pairs).
    fn fit(&self, train: &[&Example]) -> Result<Gpulet> {
        let mut lsq = PerMechanism::<FEATURES>::default();
        for e in train.iter().filter(|e| e.query.co_runners.len() == 1) {
            let x = features(&self.utilisations, &e.query, 0)?;
            lsq.add(e.query.target.partition, &x, e.measured_us / e.query.solo_us);
        }
        // a mechanism with few pairs cannot fix its five coefficients
        let (by_mechanism, pooled) = lsq
            .weights(10 * FEATURES)
            .ok_or_else(|| Error::data("gpulet", "no training batch with exactly one co-runner"))?;
        Ok(Gpulet { utilisations: self.utilisations.clone(), by_mechanism, pooled })
    }
}

impl Gpulet {
    /// The predicted slowdown; a batch without co-runners runs as alone. (A model without
    /// counters would count as no co-runner: [`Utilisations::cover`] refuses such examples
    /// before anything is scored.)
    fn slowdown(&self, q: &Query) -> f64 {
        let w = self.by_mechanism.get(&q.target.partition).unwrap_or(&self.pooled);
        (0..q.co_runners.len())
            .filter_map(|i| features(&self.utilisations, q, i).ok())
            .map(|x| dot(w, &x).max(1.0))
            .fold(1.0, f64::max)
    }
}

impl Gpulet {
    /// The solo counters it reads (a query of a model they lack gets no interference).
    pub fn utilisations(&self) -> &Utilisations {
        &self.utilisations
    }
}

impl Predictor for Gpulet {
    fn name(&self) -> &'static str {
        "gpulet linear (L2, DRAM)"
    }
    fn predict(&self, query: &Query) -> f64 {
        query.solo_us * self.slowdown(query)
    }
}

/// Parameters of [`GpuletEwma`]: gpulet's, and the weight of each new ratio.
#[derive(Clone, Debug)]
pub struct GpuletEwmaParams {
    pub gpulet: GpuletParams,
    pub alpha: f64,
}

/// gpulet's prediction times a running correction per (model, mechanism).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuletEwma {
    base: Gpulet,
    alpha: f64,
    /// By model, then mechanism (nested, so that it saves as JSON, whose keys are strings).
    correction: BTreeMap<String, BTreeMap<PartitionKind, f64>>,
}

impl Fit for GpuletEwmaParams {
    type Fitted = GpuletEwma;
    /// gpulet fitted on the training examples, then the correction run over them in order.
    fn fit(&self, train: &[&Example]) -> Result<GpuletEwma> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(Error::data("gpulet + EWMA", format!("alpha {} must be in (0, 1]", self.alpha)));
        }
        let mut model = GpuletEwma { base: self.gpulet.fit(train)?, alpha: self.alpha, correction: BTreeMap::new() };
        for e in train {
            model.update(&e.query, e.measured_us);
        }
        Ok(model)
    }
}

impl GpuletEwma {
    pub fn base(&self) -> &Gpulet {
        &self.base
    }
}

impl Predictor for GpuletEwma {
    fn name(&self) -> &'static str {
        "gpulet linear + EWMA"
    }
    fn predict(&self, query: &Query) -> f64 {
        let t = &query.target;
        let c = self.correction.get(&t.model).and_then(|m| m.get(&t.partition)).copied();
        self.base.predict(query) * c.unwrap_or(1.0)
    }
}

impl Online for GpuletEwma {
    fn update(&mut self, query: &Query, measured_us: f64) {
        let ratio = measured_us / self.base.predict(query);
        if ratio.is_finite() {
            let t = &query.target;
            let c = self.correction.entry(t.model.clone()).or_default().entry(t.partition).or_insert(1.0);
            *c += self.alpha * (ratio - *c);
        }
    }
}

#[cfg(test)]
mod tests {
    use coloc_workloads::scenario::SoloShare;

    use super::*;
    use crate::counters::Utilisation;
    use crate::query::{CoRunner, Target};

    fn utilisations() -> Utilisations {
        let mut u = Utilisations { sm_count: 100, by_model: BTreeMap::new() };
        for (m, l2, dram) in [("a", 0.2, 0.1), ("b", 0.6, 0.5), ("c", 0.4, 0.8)] {
            u.by_model.entry(m.into()).or_default().insert(8, Utilisation { l2, dram });
        }
        u
    }

    fn query(me: &str, others: &[&str], partition: PartitionKind) -> Query {
        let share = SoloShare::Device;
        Query {
            target: Target { model: me.into(), bucket: 8, share, partition },
            solo_us: 1000.0,
            co_runners: others
                .iter()
                .map(|o| CoRunner { model: o.to_string(), bucket: 8, share, solo_us: 500.0, elapsed_us: 0.0 })
                .collect(),
        }
    }

    /// The truth the model must find: 1 + 0.5 L2_other + 0.3 DRAM_other + 0.1 DRAM_self.
    fn truth(u: &Utilisations, q: &Query) -> f64 {
        let me = u.get(&q.target.model, 8, SoloShare::Device).unwrap();
        let o = u.get(&q.co_runners[0].model, 8, SoloShare::Device).unwrap();
        1.0 + 0.5 * o.l2 + 0.3 * o.dram + 0.1 * me.dram + 0.02 * me.l2
    }

    fn train(u: &Utilisations) -> Vec<Example> {
        let names = ["a", "b", "c"];
        let mut out = Vec::new();
        for i in 0..300u32 {
            let (me, other) = (names[(i % 3) as usize], names[((i / 3) % 3) as usize]);
            let q = query(me, &[other], PartitionKind::Mps);
            let measured_us = q.solo_us * truth(u, &q);
            out.push(Example::nth(i, q, measured_us));
        }
        out
    }

    #[test]
    fn it_recovers_a_linear_slowdown_and_takes_the_worst_co_runner() {
        let u = utilisations();
        let ex = train(&u);
        let refs: Vec<&Example> = ex.iter().collect();
        let model = GpuletParams { utilisations: u.clone() }.fit(&refs).unwrap();
        let ab = query("a", &["b"], PartitionKind::Mps);
        assert!((model.predict(&ab) / 1000.0 - truth(&u, &ab)).abs() < 1e-4, "{}", model.predict(&ab));
        // beside b and c: the worse of the two pairs
        let abc = query("a", &["b", "c"], PartitionKind::Mps);
        let worst =
            truth(&u, &query("a", &["b"], PartitionKind::Mps)).max(truth(&u, &query("a", &["c"], PartitionKind::Mps)));
        assert!((model.predict(&abc) / 1000.0 - worst).abs() < 1e-4);
        // alone: solo; under a mechanism without pairs: the pooled model
        assert_eq!(model.predict(&query("a", &[], PartitionKind::Mps)), 1000.0);
        assert!((model.predict(&query("a", &["b"], PartitionKind::Green)) - model.predict(&ab)).abs() < 1e-9);
    }

    #[test]
    fn the_ewma_corrects_a_persistent_bias_of_the_static_model() {
        let u = utilisations();
        let ex = train(&u);
        let refs: Vec<&Example> = ex.iter().collect();
        let params = GpuletEwmaParams { gpulet: GpuletParams { utilisations: u.clone() }, alpha: 0.2 };
        let mut model = params.fit(&refs).unwrap();
        // the workload shifts: every batch of a under MPS now 30% slower than the linear model says
        let q = query("a", &["b"], PartitionKind::Mps);
        let shifted = 1.3 * 1000.0 * truth(&u, &q);
        for _ in 0..50 {
            model.update(&q, shifted);
        }
        assert!((model.predict(&q) - shifted).abs() / shifted < 1e-3, "{} vs {shifted}", model.predict(&q));
        assert!((model.base.predict(&q) - shifted).abs() / shifted > 0.2);
    }

    #[test]
    fn without_pairs_there_is_nothing_to_fit() {
        let u = utilisations();
        let alone = Example::nth(0, query("a", &[], PartitionKind::Mps), 1000.0);
        assert!(GpuletParams { utilisations: u }.fit(&[&alone]).is_err());
    }
}
