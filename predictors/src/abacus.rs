//! An Abacus-style overlap model (Cui et al., "Enable Simultaneous DNN Services Based on
//! Deterministic Operator Overlap and Precise Latency Prediction", SC 2021). Abacus predicts the
//! latency of a group of co-located operators with an MLP (three hidden layers of 32) whose input
//! says which models overlap, which of their operators the overlap spans, and at what batch
//! size. Here the group is the target batch, and each co-runner's overlapping operators are the
//! span of its graph, as fractions of its solo time, that the target's solo time covers from the
//! co-runner's progress at dispatch: `[elapsed / solo, min(1, (elapsed + target solo) / solo)]`.
//!
//! Input per batch: the target's model (one-hot over the training models, a last slot for a model
//! it never saw), batch size (log2), solo time (log), mechanism (one-hot); for the two co-runners
//! with the most remaining work: present, model (one-hot), batch size (log2), solo time relative
//! to the target's (log), and the span; then the number of further co-runners. Output: the
//! slowdown over solo. Trained on every training batch.

use coloc_workloads::scenario::PartitionKind;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mlp::{Mlp, MlpParams};
use crate::predictor::{Fit, Predictor, evenly};
use crate::query::{CoRunner, Example, Query};

/// Co-runner slots in the input.
const SLOTS: usize = 2;

/// Parameters of [`Abacus`]: the network's training.
#[derive(Clone, Copy, Debug)]
pub struct AbacusParams {
    pub mlp: MlpParams,
    /// Trained on at most this many training examples, evenly spaced.
    pub max_examples: usize,
}

/// The most examples the batch-trained models (the MLP, the trees) learn from: more than any
/// published predictor of the field was trained on (Abacus: thousands of co-locations).
pub const MAX_EXAMPLES: usize = 40_000;

impl Default for AbacusParams {
    fn default() -> Self {
        AbacusParams { mlp: MlpParams::default(), max_examples: MAX_EXAMPLES }
    }
}

/// The fitted model: the models it knows, the network, and the range of the slowdowns it was
/// trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Abacus {
    models: Vec<String>,
    mlp: Mlp,
    slowdowns: (f64, f64),
}

/// Writes a one-hot of `model` over `models` (a last slot for a model it never saw) at `at`;
/// returns the position after it.
fn one_hot(models: &[String], model: &str, x: &mut [f64], at: usize) -> usize {
    let hot = models.iter().position(|m| m == model).unwrap_or(models.len());
    x[at..=at + models.len()].fill(0.0);
    x[at + hot] = 1.0;
    at + models.len() + 1
}

/// The length of an input row over `models`.
pub(crate) fn width(models: &[String]) -> usize {
    (models.len() + 1) + 2 + PartitionKind::ALL.len() + SLOTS * (1 + models.len() + 1 + 4) + 1
}

/// The co-runners in the slots: the `SLOTS` with the most remaining work (ties by model, then
/// in order), chosen without sorting or allocating.
fn slotted(q: &Query) -> [Option<&CoRunner>; SLOTS] {
    let remaining = |c: &CoRunner| (c.solo_us - c.elapsed_us).max(0.0);
    let before = |a: &CoRunner, b: &CoRunner| {
        remaining(b).total_cmp(&remaining(a)).then_with(|| a.model.cmp(&b.model)) == std::cmp::Ordering::Less
    };
    let mut slots: [Option<&CoRunner>; SLOTS] = [None; SLOTS];
    for c in &q.co_runners {
        // insertion into the sorted slots; an equal one stays behind those already there
        let mut carry = Some(c);
        for slot in slots.iter_mut() {
            match (*slot, carry) {
                (None, _) => {
                    *slot = carry.take();
                    break;
                }
                (Some(s), Some(new)) if before(new, s) => {
                    *slot = Some(new);
                    carry = Some(s);
                }
                _ => {}
            }
        }
    }
    slots
}

/// Writes the input row of a query into `x` (of length [`width`]).
pub(crate) fn features_into(models: &[String], q: &Query, x: &mut [f64]) {
    let mut at = one_hot(models, &q.target.model, x, 0);
    x[at] = f64::from(q.target.bucket).log2();
    x[at + 1] = q.solo_us.max(1e-3).ln();
    at += 2;
    for p in PartitionKind::ALL {
        x[at] = if p == q.target.partition { 1.0 } else { 0.0 };
        at += 1;
    }
    for slot in slotted(q) {
        match slot {
            Some(c) => {
                let solo = c.solo_us.max(1e-3);
                x[at] = 1.0;
                at = one_hot(models, &c.model, x, at + 1);
                x[at] = f64::from(c.bucket).log2();
                x[at + 1] = (solo / q.solo_us.max(1e-3)).ln();
                x[at + 2] = (c.elapsed_us / solo).min(1.0);
                x[at + 3] = ((c.elapsed_us + q.solo_us) / solo).min(1.0);
                at += 4;
            }
            None => {
                let end = at + 1 + models.len() + 1 + 4;
                x[at..end].fill(0.0);
                at = end;
            }
        }
    }
    x[at] = q.co_runners.len().saturating_sub(SLOTS) as f64;
}

/// The input row of a query.
pub(crate) fn features(models: &[String], q: &Query) -> Vec<f64> {
    let mut x = vec![0.0; width(models)];
    features_into(models, q, &mut x);
    x
}

/// The models of the training examples, targets and co-runners, sorted.
pub(crate) fn vocabulary(train: &[&Example]) -> Vec<String> {
    let mut models: Vec<String> = train
        .iter()
        .flat_map(|e| std::iter::once(&e.query.target.model).chain(e.query.co_runners.iter().map(|c| &c.model)))
        .cloned()
        .collect();
    models.sort();
    models.dedup();
    models
}

impl Fit for AbacusParams {
    type Fitted = Abacus;
    fn fit(&self, train: &[&Example]) -> Result<Abacus> {
        if train.is_empty() {
            return Err(Error::data("training examples", "none"));
        }
        let train = evenly(train, self.max_examples);
        let models = vocabulary(&train);
        let x: Vec<Vec<f64>> = train.iter().map(|e| features(&models, &e.query)).collect();
        let y: Vec<f64> = train.iter().map(|e| e.measured_us / e.query.solo_us).collect();
        let slowdowns = y.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        Ok(Abacus { mlp: Mlp::fit(&self.mlp, &x, &y)?, models, slowdowns })
    }
}

impl Predictor for Abacus {
    fn name(&self) -> &'static str {
        "Abacus-style MLP (operator overlap)"
    }
    /// Within the slowdowns it was trained on: a network fed what it never saw (a model or
    /// mechanism absent from training) can answer anything, a time below zero included.
    fn predict(&self, query: &Query) -> f64 {
        // the row on the stack where it fits: predicting allocates nothing
        const ON_STACK: usize = 256;
        let (lo, hi) = self.slowdowns;
        let n = width(&self.models);
        let slowdown = if n <= ON_STACK {
            let mut x = [0.0; ON_STACK];
            features_into(&self.models, query, &mut x[..n]);
            self.mlp.predict(&x[..n])
        } else {
            self.mlp.predict(&features(&self.models, query))
        };
        query.solo_us * slowdown.clamp(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use coloc_workloads::scenario::SoloShare;

    use super::*;
    use crate::query::Target;

    fn query(co: &[(&str, f64, f64)]) -> Query {
        Query {
            target: Target { model: "a".into(), bucket: 8, share: SoloShare::Device, partition: PartitionKind::Green },
            solo_us: 1000.0,
            co_runners: co
                .iter()
                .map(|&(m, solo_us, elapsed_us)| CoRunner {
                    model: m.into(),
                    bucket: 8,
                    share: SoloShare::Device,
                    solo_us,
                    elapsed_us,
                })
                .collect(),
        }
    }

    #[test]
    fn the_slots_hold_the_co_runners_with_most_remaining_work_as_a_sort_would_order_them() {
        // remaining: b 1500, c 1500 (ties broken by model), a 500, b 1500 again (stays behind)
        let q = query(&[("a", 1000.0, 500.0), ("c", 2000.0, 500.0), ("b", 2000.0, 500.0), ("b", 1600.0, 100.0)]);
        let remaining = |c: &CoRunner| (c.solo_us - c.elapsed_us).max(0.0);
        let mut sorted: Vec<&CoRunner> = q.co_runners.iter().collect();
        sorted.sort_by(|a, b| remaining(b).total_cmp(&remaining(a)).then_with(|| a.model.cmp(&b.model)));
        let slots = slotted(&q);
        for (slot, want) in slots.iter().zip(&sorted) {
            assert!(std::ptr::eq(slot.unwrap(), *want));
        }
        assert_eq!(slots[0].unwrap().solo_us, 2000.0);
        assert_eq!(slots[1].unwrap().solo_us, 1600.0);
        let models = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let x = features(&models, &q);
        assert_eq!(x.len(), width(&models));
        // the target a, then the slots' presence flags and models: b first, then the second b
        assert_eq!(&x[..4], &[1.0, 0.0, 0.0, 0.0]);
        let slot0 = 4 + 2 + PartitionKind::ALL.len();
        assert_eq!(&x[slot0..slot0 + 5], &[1.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(*x.last().unwrap(), 2.0);
    }

    #[test]
    fn it_learns_that_only_the_overlapping_part_of_a_co_runner_slows_the_target() {
        // truth: b slows a by 60% of the overlap of their spans; c by 20%
        let truth = |q: &Query| {
            let extra: f64 = q
                .co_runners
                .iter()
                .map(|c| {
                    let overlap = (c.solo_us - c.elapsed_us).clamp(0.0, q.solo_us) / q.solo_us;
                    overlap * if c.model == "b" { 0.6 } else { 0.2 }
                })
                .sum();
            q.solo_us * (1.0 + extra)
        };
        let mut ex = Vec::new();
        for i in 0..3000u32 {
            let elapsed = f64::from(i % 50) * 40.0;
            let co: Vec<(&str, f64, f64)> = match i % 4 {
                0 => vec![],
                1 => vec![("b", 2000.0, elapsed)],
                2 => vec![("c", 1500.0, elapsed)],
                _ => vec![("b", 2000.0, elapsed), ("c", 1500.0, f64::from(i % 30) * 50.0)],
            };
            let q = query(&co);
            let measured_us = truth(&q);
            ex.push(Example::nth(i, q, measured_us));
        }
        let refs: Vec<&Example> = ex.iter().collect();
        let params = AbacusParams {
            mlp: MlpParams { epochs: 40, batch: 32, learning_rate: 3e-3, ..MlpParams::default() },
            max_examples: MAX_EXAMPLES,
        };
        let model = params.fit(&refs).unwrap();
        let mape = ex.iter().map(|e| (model.predict(&e.query) - e.measured_us).abs() / e.measured_us).sum::<f64>()
            / ex.len() as f64;
        assert!(mape < 0.01, "MAPE {mape}");
        // a b about to finish barely slows a; one just started slows it by 60%
        let late = model.predict(&query(&[("b", 2000.0, 1990.0)]));
        // never outside what training saw: x1 to x1.8 here (b and c both overlapping whole)
        assert!(model.predict(&query(&[("b", 2000.0, 2000.0), ("c", 1e6, 0.0), ("c", 1e6, 0.0)])) <= 1800.0 + 1e-9);
        let early = model.predict(&query(&[("b", 2000.0, 0.0)]));
        assert!(late < 1030.0 && (early - 1600.0).abs() < 30.0, "{late} {early}");
    }
}
