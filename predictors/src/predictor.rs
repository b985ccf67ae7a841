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
