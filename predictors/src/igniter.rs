//! iGniter's analytic model (Xu et al., "iGniter: Interference-Aware GPU Resource Provisioning
//! for Predictable DNN Inference in the Cloud", IEEE TPDS 2023). A model's GPU time beside others
//! is its solo active time at its batch size and share, inflated in proportion to the L2 demand of
//! every co-located model, plus a scheduling delay per co-located model:
//!
//! `t = t_solo(b, r) * (1 + alpha * sum over co-runners of L2_c) + k_sch * n_co-runners`,
//!
//! where the solo time at (batch, share) is the measured solo profile (iGniter fits it as a
//! function of batch and share from a few profiles; coloc has every one it needs measured), `L2_c`
//! a co-runner's solo L2 utilisation scaled by its share ([`crate::counters`]), and `alpha` and
//! `k_sch` are fitted by least squares, per mechanism where there are enough batches and pooled
//! over all of them otherwise. Unlike gpulet's, the inflation adds up over co-runners.
//!
//! iGniter also divides by the GPU's frequency when the co-located models' power exceeds the cap.
//! That term is left out here, with its reason: the query carries no clock, and on the H200
//! datasets the SM clock held at 1980 MHz in every NVML sample (`coloc dataset check`), so the
//! factor is 1 throughout the data it would be fitted on.

use std::collections::BTreeMap;

use coloc_workloads::scenario::PartitionKind;
use serde::{Deserialize, Serialize};

use crate::counters::Utilisations;
use crate::error::{Error, Result};
use crate::predictor::{Fit, Predictor};
use crate::query::{Example, Query};
use crate::rls::PerMechanism;

/// Parameters of [`Igniter`]: the solo utilisations it is built on.
#[derive(Clone, Debug)]
pub struct IgniterParams {
    pub utilisations: Utilisations,
}

/// The fitted model: (alpha, k_sch in us) per mechanism, and pooled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Igniter {
    utilisations: Utilisations,
    by_mechanism: BTreeMap<PartitionKind, [f64; 2]>,
    pooled: [f64; 2],
}

/// (solo time x the co-runners' L2 demand, number of co-runners): the extra time is linear in
/// them.
fn features(u: &Utilisations, q: &Query) -> Result<[f64; 2]> {
    let mut l2 = 0.0;
    for c in &q.co_runners {
        l2 += u.get(&c.model, c.bucket, c.share)?.l2;
    }
    Ok([q.solo_us * l2, q.co_runners.len() as f64])
}

impl Fit for IgniterParams {
    type Fitted = Igniter;
    /// Least squares of the extra time over solo on the training batches with co-runners.
    fn fit(&self, train: &[&Example]) -> Result<Igniter> {
        let mut lsq = PerMechanism::<2>::default();
        for e in train.iter().filter(|e| !e.query.co_runners.is_empty()) {
            lsq.add(
                e.query.target.partition,
                &features(&self.utilisations, &e.query)?,
                e.measured_us - e.query.solo_us,
            );
        }
        let (by_mechanism, pooled) =
            lsq.weights(20).ok_or_else(|| Error::data("iGniter", "no training batch with a co-runner"))?;
        Ok(Igniter { utilisations: self.utilisations.clone(), by_mechanism, pooled })
    }
}

impl Igniter {
    /// The solo counters it reads (a query of a model they lack gets no interference).
    pub fn utilisations(&self) -> &Utilisations {
        &self.utilisations
    }
}

impl Predictor for Igniter {
    fn name(&self) -> &'static str {
        "iGniter analytic (L2, scheduling)"
    }
    /// Never below solo: the model describes inflation, not speed-up.
    fn predict(&self, query: &Query) -> f64 {
        if query.co_runners.is_empty() {
            return query.solo_us;
        }
        let [alpha, k_sch] = self.by_mechanism.get(&query.target.partition).unwrap_or(&self.pooled);
        match features(&self.utilisations, query) {
            Ok([solo_l2, n]) => (query.solo_us + alpha * solo_l2 + k_sch * n).max(query.solo_us),
            // a co-runner without counters: refused before scoring (`Utilisations::cover`)
            Err(_) => query.solo_us,
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
        for (m, l2) in [("a", 0.2), ("b", 0.6), ("c", 0.4)] {
            u.by_model.entry(m.into()).or_default().insert(8, Utilisation { l2, dram: 0.1 });
        }
        u
    }

    fn query(solo_us: f64, others: &[&str]) -> Query {
        Query {
            target: Target { model: "a".into(), bucket: 8, share: SoloShare::Device, partition: PartitionKind::Mps },
            solo_us,
            co_runners: others
                .iter()
                .map(|o| CoRunner {
                    model: o.to_string(),
                    bucket: 8,
                    share: SoloShare::Mps { percent: 50 },
                    solo_us: 500.0,
                    elapsed_us: 0.0,
                })
                .collect(),
        }
    }

    #[test]
    fn it_recovers_l2_inflation_and_a_scheduling_delay_per_co_runner() {
        // truth: alpha 0.8, k_sch 15 us; co-runners on half the SMs (L2 demand halved)
        let truth = |q: &Query| {
            let l2: f64 = q.co_runners.iter().map(|c| if c.model == "b" { 0.3 } else { 0.2 }).sum();
            q.solo_us * (1.0 + 0.8 * l2) + 15.0 * q.co_runners.len() as f64
        };
        let mut ex = Vec::new();
        for i in 0..200u32 {
            let others: &[&str] = match i % 3 {
                0 => &["b"],
                1 => &["c"],
                _ => &["b", "c"],
            };
            let q = query(500.0 + f64::from(i % 7) * 100.0, others);
            let measured_us = truth(&q);
            ex.push(Example::nth(i, q, measured_us));
        }
        let refs: Vec<&Example> = ex.iter().collect();
        let model = IgniterParams { utilisations: utilisations() }.fit(&refs).unwrap();
        for q in [query(800.0, &["b", "c"]), query(2000.0, &["c"])] {
            assert!((model.predict(&q) - truth(&q)).abs() < 1e-3, "{} vs {}", model.predict(&q), truth(&q));
        }
        assert_eq!(model.predict(&query(800.0, &[])), 800.0);
    }
}
