//! A leaderboard: every predictor fitted on a split's training examples and scored on its test
//! examples.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::{Scores, score};
use crate::online::OnlineCoarseParams;
use crate::predictor::{Fit, Predictor};
use crate::query::Example;
use crate::solo::SoloAtShareParams;
use crate::split::random_split;

/// Which examples train and which test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "split")]
pub enum Split {
    /// Each example in the test set with probability 0.25, drawn from the seed.
    Random { seed: u64 },
}

impl Split {
    pub fn label(self) -> String {
        match self {
            Split::Random { seed } => format!("random 75/25 (seed {seed})"),
        }
    }
    fn indices(self, n: usize) -> (Vec<usize>, Vec<usize>) {
        match self {
            Split::Random { seed } => random_split(n, 0.25, seed),
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

fn entry<P: Fit>(params: &P, split: Split, examples: &[Example]) -> Result<Entry> {
    let (train_idx, test_idx) = split.indices(examples.len());
    let train: Vec<Example> = train_idx.iter().map(|&i| examples[i].clone()).collect();
    let fitted = params.fit(&train)?;
    let pairs: Vec<(f64, f64)> =
        test_idx.iter().map(|&i| (fitted.predict(&examples[i].query), examples[i].measured_us)).collect();
    let scores =
        score(&pairs).ok_or_else(|| Error::data(split.label(), "no test example with a positive measured time"))?;
    Ok(Entry { predictor: fitted.name().to_string(), split, train: train.len(), scores })
}

/// Every predictor built so far on `split`, best MAPE first.
pub fn leaderboard(examples: &[Example], split: Split) -> Result<Vec<Entry>> {
    let mut entries =
        vec![entry(&SoloAtShareParams, split, examples)?, entry(&OnlineCoarseParams::default(), split, examples)?];
    entries.sort_by(|a, b| a.scores.mape.total_cmp(&b.scores.mape));
    Ok(entries)
}
