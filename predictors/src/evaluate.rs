//! A leaderboard: every predictor fitted on a split's training examples and scored on its test
//! examples.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::{Scores, score};
use crate::online::OnlineCoarseParams;
use crate::predictor::{Fit, Online, Predictor};
use crate::query::Example;
use crate::solo::SoloAtShareParams;
use crate::split::random_split;

/// Which examples train and which test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "split")]
pub enum Split {
    /// Each example in the test set with probability 0.25, drawn from the seed.
    Random { seed: u64 },
    /// Test then train: every example in the order the GPU saw them (runs by their place in the
    /// measurement, batches by start), predicted first and learnt after; no training set.
    Prequential,
}

impl Split {
    pub fn label(self) -> String {
        match self {
            Split::Random { seed } => format!("random 75/25 (seed {seed})"),
            Split::Prequential => "prequential (test, then train, in measurement order)".into(),
        }
    }
}

/// One predictor on one split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub predictor: String,
    pub split: Split,
    pub train: usize,
    pub scores: Scores,
}

fn entry<P: Fit>(params: &P, seed: u64, examples: &[Example]) -> Result<Entry> {
    let split = Split::Random { seed };
    let (train_idx, test_idx) = random_split(examples.len(), 0.25, seed);
    let train: Vec<Example> = train_idx.iter().map(|&i| examples[i].clone()).collect();
    let fitted = params.fit(&train)?;
    let pairs: Vec<(f64, f64)> =
        test_idx.iter().map(|&i| (fitted.predict(&examples[i].query), examples[i].measured_us)).collect();
    let scores =
        score(&pairs).ok_or_else(|| Error::data(split.label(), "no test example with a positive measured time"))?;
    Ok(Entry { predictor: fitted.name().to_string(), split, train: train.len(), scores })
}

/// One predictor, from its starting state, over every example in measurement order: each
/// predicted, then learnt.
fn prequential<P: Online>(mut model: P, examples: &[Example]) -> Result<Entry> {
    let mut order: Vec<&Example> = examples.iter().collect();
    order.sort_by_key(|e| (e.position, e.start_ns));
    let mut pairs = Vec::with_capacity(order.len());
    for e in order {
        pairs.push((model.predict(&e.query), e.measured_us));
        model.update(&e.query, e.measured_us);
    }
    let scores =
        score(&pairs).ok_or_else(|| Error::data("prequential pass", "no example with a positive measured time"))?;
    Ok(Entry { predictor: model.name().to_string(), split: Split::Prequential, train: 0, scores })
}

/// Every predictor built so far on `split`, best MAPE first.
pub fn leaderboard(examples: &[Example], split: Split) -> Result<Vec<Entry>> {
    let mut entries = match split {
        Split::Random { seed } => {
            vec![
                entry(&SoloAtShareParams, seed, examples)?,
                entry(&OnlineCoarseParams::default(), seed, examples)?,
                entry(&OnlineCoarseParams::with_drift_detection(), seed, examples)?,
            ]
        }
        Split::Prequential => vec![
            prequential(SoloAtShareParams.fit(examples)?, examples)?,
            prequential(OnlineCoarseParams::default().start()?, examples)?,
            prequential(OnlineCoarseParams::with_drift_detection().start()?, examples)?,
        ],
    };
    entries.sort_by(|a, b| a.scores.mape.total_cmp(&b.scores.mape));
    Ok(entries)
}
