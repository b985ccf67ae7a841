//! Interference predictors behind one interface, trained and scored on measured data under
//! workload-shift splits (issue 9; this crate holds its first part, see `docs/predictors.md`).
//!
//! - [`query`]: what is known when a batch is dispatched ([`query::Query`]), and the
//!   examples a dataset yields (a query and the batch's measured GPU time).
//! - [`predictor`]: the interface: params -> `fit(train)` -> a fitted predictor.
//! - [`solo`]: the floor every predictor must beat: solo time at the same share.
//! - [`online`]: an online linear model of the slowdown on coarse features, with
//!   optional drift detection ([`drift`]).
//! - [`metrics`]: the scores of a predictor on held-out examples.
//! - [`split`]: the random 75/25 split and the workload-shift splits, reproducible from a seed.
//! - [`noise`]: the noise floor, from scenarios measured more than once.
//! - [`evaluate`]: the leaderboard of every predictor on every split.
//! - [`counters`], [`gpulet`], [`igniter`]: gpulet's linear model on solo L2 and DRAM
//!   utilisations, static and with an EWMA correction; iGniter's analytic model.
//! - [`abacus`], [`mlp`]: an Abacus-style MLP over which parts of the co-located graphs overlap.
//! - [`gbt`]: gradient-boosted trees on the same input.
//! - [`perkernel`]: an online model of each kernel's slowdown from the co-runner kernels beside
//!   it, on the solo timelines.
//! - [`rls`], [`sgd`]: how the online models learn: recursive least squares, or SGD (normalised
//!   LMS).
//! - [`saved`]: fitted predictors as JSON, with the manifest hash of their training data.

pub mod abacus;
pub mod counters;
pub mod drift;
pub mod error;
pub mod evaluate;
pub mod gbt;
pub mod gpulet;
pub mod igniter;
pub mod metrics;
pub mod mlp;
pub mod noise;
pub mod online;
pub mod perkernel;
pub mod predictor;
pub mod query;
pub mod rls;
pub mod saved;
pub mod sgd;
pub mod solo;
pub mod split;

pub use error::{Error, Result};
