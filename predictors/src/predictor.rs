//! One interface for every predictor, as linfa has it: checked parameters are fitted to
//! training examples and give a fitted predictor, which answers queries.

use crate::error::Result;
use crate::query::{Example, Query};

/// A fitted predictor: the GPU time of the queried batch, us.
pub trait Predictor {
    /// Its name on the leaderboard.
    fn name(&self) -> &'static str;
    fn predict(&self, query: &Query) -> f64;
}

/// A predictor that goes on learning as batches are measured.
pub trait Online: Predictor {
    fn update(&mut self, query: &Query, measured_us: f64);
}

/// A predictor's parameters, which fitting turns into a [`Predictor`].
pub trait Fit {
    type Fitted: Predictor;
    fn fit(&self, train: &[&Example]) -> Result<Self::Fitted>;
}

/// An online predictor taught the training examples in their order, from `model`'s state (how
/// every online predictor fits).
pub fn learn_in_order<M: Online>(mut model: M, train: &[&Example]) -> Result<M> {
    if train.is_empty() {
        return Err(crate::error::Error::data("training examples", "none"));
    }
    for e in train {
        model.update(&e.query, e.measured_us);
    }
    Ok(model)
}

/// At most `max` of `train`, evenly spaced (every k-th, in order): batch-trained models learn
/// from a bounded set, so that their training time does not grow with the dataset and a
/// many-fold split stays minutes, not hours.
pub fn evenly<'a>(train: &[&'a Example], max: usize) -> Vec<&'a Example> {
    let step = train.len().div_ceil(max.max(1)).max(1);
    train.iter().step_by(step).copied().collect()
}
