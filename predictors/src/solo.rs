//! The floor: the batch takes what it takes alone at its share. No interference, nothing to
//! learn; every other predictor must beat it.

use crate::error::{Error, Result};
use crate::predictor::{Fit, Online, Predictor};
use crate::query::{Example, Query};

/// Parameters of [`SoloAtShare`] (there are none).
#[derive(Clone, Copy, Debug, Default)]
pub struct SoloAtShareParams;

/// Predicts the solo GPU time at the batch's share.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SoloAtShare;

impl SoloAtShareParams {
    /// The predictor, which needs no training.
    pub fn start(&self) -> SoloAtShare {
        SoloAtShare
    }
}

impl Fit for SoloAtShareParams {
    type Fitted = SoloAtShare;
    fn fit(&self, train: &[&Example]) -> Result<SoloAtShare> {
        if train.is_empty() {
            return Err(Error::data("training examples", "none"));
        }
        Ok(SoloAtShare)
    }
}

/// Static: observations change nothing.
impl Online for SoloAtShare {
    fn update(&mut self, _query: &Query, _measured_us: f64) {}
}

impl Predictor for SoloAtShare {
    fn name(&self) -> &'static str {
        "solo at share"
    }
    fn predict(&self, query: &Query) -> f64 {
        query.solo_us
    }
}
