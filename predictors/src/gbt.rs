//! Gradient-boosted regression trees of the slowdown over solo, on the same input as the
//! Abacus-style MLP ([`crate::abacus`]: the models, batch sizes, solo times, mechanism and the
//! spans of the co-runners' graphs the target overlaps). The trees are `forust-ml`'s
//! (XGBoost's histogram algorithm, squared error): linfa has no tree regressor, `perpetual` (its
//! successor) builds only on nightly Rust, and smartcore has forests but no boosting
//! (`docs/predictors.md`). Trained on one thread with a fixed seed, so a fit is the same bit for
//! bit on every machine.

use forust_ml::Matrix;
use forust_ml::gradientbooster::GradientBooster;
use forust_ml::objective::ObjectiveType;
use serde::{Deserialize, Serialize};

use crate::abacus::{MAX_EXAMPLES, features, vocabulary};
use crate::error::{Error, Result};
use crate::predictor::{Fit, Predictor, evenly};
use crate::query::{Example, Query};

/// Parameters of [`Gbt`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GbtParams {
    pub trees: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    pub seed: u64,
    /// Grown on at most this many training examples, evenly spaced.
    pub max_examples: usize,
}

impl Default for GbtParams {
    fn default() -> Self {
        GbtParams { trees: 300, learning_rate: 0.1, max_depth: 6, seed: 2026, max_examples: MAX_EXAMPLES }
    }
}

/// The fitted trees, with the models the input's one-hot columns stand for.
#[derive(Serialize, Deserialize)]
pub struct Gbt {
    models: Vec<String>,
    booster: GradientBooster,
}

impl Fit for GbtParams {
    type Fitted = Gbt;
    fn fit(&self, train: &[&Example]) -> Result<Gbt> {
        if train.is_empty() {
            return Err(Error::data("training examples", "none"));
        }
        if self.trees == 0 || self.max_depth == 0 || self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(Error::data("gradient-boosted trees", "trees, depth and learning rate must be positive"));
        }
        let train = evenly(train, self.max_examples);
        let models = vocabulary(&train);
        let rows: Vec<Vec<f64>> = train.iter().map(|e| features(&models, &e.query)).collect();
        let y: Vec<f64> = train.iter().map(|e| e.measured_us / e.query.solo_us).collect();
        let cols = rows[0].len();
        // forust takes columns one after the other
        let data: Vec<f64> = (0..cols).flat_map(|j| rows.iter().map(move |r| r[j])).collect();
        let matrix = Matrix::new(&data, rows.len(), cols);
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(self.trees)
            .set_learning_rate(self.learning_rate)
            .set_max_depth(self.max_depth)
            .set_parallel(false)
            .set_seed(self.seed);
        booster.fit_unweighted(&matrix, &y, None).map_err(|e| Error::data("gradient-boosted trees", e.to_string()))?;
        Ok(Gbt { models, booster })
    }
}

impl Predictor for Gbt {
    fn name(&self) -> &'static str {
        "gradient-boosted trees"
    }
    fn predict(&self, query: &Query) -> f64 {
        let x = features(&self.models, query);
        let slowdown = self.booster.predict(&Matrix::new(&x, 1, x.len()), false)[0];
        // a sum of leaves: within what training saw, bar the boosting's small overshoot
        query.solo_us * slowdown
    }
}

impl Gbt {
    fn json(&self) -> String {
        serde_json::to_string(self).expect("a fitted booster serialises")
    }
}

/// forust's booster is neither `Clone` nor `PartialEq`: both go through its JSON.
impl Clone for Gbt {
    fn clone(&self) -> Gbt {
        serde_json::from_str(&self.json()).expect("a booster's own JSON parses")
    }
}

impl PartialEq for Gbt {
    fn eq(&self, other: &Gbt) -> bool {
        self.json() == other.json()
    }
}

impl std::fmt::Debug for Gbt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gbt").field("models", &self.models).field("trees", &self.booster.iterations).finish()
    }
}

#[cfg(test)]
mod tests {
    use coloc_workloads::scenario::{PartitionKind, SoloShare};

    use super::*;
    use crate::query::{CoRunner, Target};

    #[test]
    fn the_trees_learn_a_slowdown_with_a_threshold_and_fit_the_same_twice() {
        // beside b: x1.5 while b has more than half its graph to run, x1.1 after; alone: x1
        let query = |elapsed: Option<f64>| Query {
            target: Target { model: "a".into(), bucket: 8, share: SoloShare::Device, partition: PartitionKind::Mps },
            solo_us: 1000.0,
            co_runners: elapsed
                .map(|elapsed_us| CoRunner {
                    model: "b".into(),
                    bucket: 8,
                    share: SoloShare::Device,
                    solo_us: 4000.0,
                    elapsed_us,
                })
                .into_iter()
                .collect(),
        };
        let truth = |e: Option<f64>| 1000.0 * e.map_or(1.0, |e| if e < 2000.0 { 1.5 } else { 1.1 });
        let mut ex = Vec::new();
        for i in 0..2000u32 {
            let e = (i % 5 != 0).then(|| f64::from(i % 97) * 41.0);
            ex.push(Example::nth(i, query(e), truth(e)));
        }
        let refs: Vec<&Example> = ex.iter().collect();
        let model = GbtParams::default().fit(&refs).unwrap();
        for e in [None, Some(100.0), Some(1900.0), Some(2100.0), Some(3900.0)] {
            let rel = (model.predict(&query(e)) - truth(e)).abs() / truth(e);
            assert!(rel < 0.01, "{e:?}: {} vs {}", model.predict(&query(e)), truth(e));
        }
        assert!(GbtParams::default().fit(&refs).unwrap() == model);
        assert!(GbtParams { trees: 0, ..GbtParams::default() }.fit(&refs).is_err());
    }
}
