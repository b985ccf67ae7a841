//! A leaderboard: every predictor fitted on each fold's training examples and scored on its
//! test examples (the folds' predictions pooled), or run test-then-train in measurement order;
//! errors also as multiples of the noise floor.

use std::collections::BTreeSet;

use coloc_workloads::scenario::PartitionKind;
use serde::Serialize;

use crate::abacus::AbacusParams;
use crate::counters::Utilisations;
use crate::error::{Error, Result};
use crate::gbt::GbtParams;
use crate::gpulet::{GpuletEwmaParams, GpuletParams};
use crate::igniter::IgniterParams;
use crate::metrics::{Scores, score};
use crate::noise::{NoiseFloor, noise_floor};
use crate::online::{OnlineCoarseParams, OnlineLearning};
use crate::perkernel::{KernelProfiles, PerKernelParams};
use crate::predictor::{Fit, Online, Predictor};
use crate::query::{Example, Examples};
use crate::solo::SoloAtShareParams;
use crate::split::{Fold, Split, folds};

coloc_dataset::table! {
    /// One prediction of one predictor on one split: what `coloc evaluate --out` writes.
    pub struct PredictionRow in "predictions" {
        pub split: String,
        pub predictor: String,
        /// The fold's held-out model or mix, or the split's label.
        pub fold: String,
        pub run: String,
        pub tenant: u16,
        pub batch: u32,
        pub predicted_us: f64,
        pub measured_us: f64,
    }
}

/// A predictor's errors over the noise floor's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverFloor {
    pub mape: f64,
    pub p95_ape: f64,
}

/// One predictor on one split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub predictor: String,
    pub split: Split,
    pub folds: usize,
    /// Training examples, summed over the folds.
    pub train: usize,
    pub scores: Scores,
    pub over_floor: Option<OverFloor>,
}

/// A split's noise floor: of the repeated scenarios under the mechanisms it tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SplitFloor {
    pub split: Split,
    pub floor: Option<NoiseFloor>,
}

/// Every split's leaderboard, with its noise floor and (if asked) every prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub examples: usize,
    pub floors: Vec<SplitFloor>,
    pub entries: Vec<Entry>,
    #[serde(skip)]
    pub predictions: Vec<PredictionRow>,
}

/// What a pass over a split gives before it is scored.
struct Pass {
    predictor: String,
    folds: usize,
    train: usize,
    /// (example, fold label, predicted)
    predicted: Vec<(usize, String, f64)>,
}

/// Each of `indices`, in measurement order, predicted by `model` and then learnt by it.
fn test_then_train<P: Online>(
    model: &mut P,
    examples: &Examples,
    indices: &[usize],
    label: &str,
    out: &mut Vec<(usize, String, f64)>,
) {
    let mut order = indices.to_vec();
    order.sort_by_key(|&i| (examples.items[i].position, examples.items[i].start_ns));
    for i in order {
        let e = &examples.items[i];
        out.push((i, label.to_string(), model.predict(&e.query)));
        model.update(&e.query, e.measured_us);
    }
}

/// `params` fitted on each fold's training examples, then scored on its test examples by `test`.
fn fold_by_fold<P: Fit>(
    params: &P,
    examples: &Examples,
    folds: &[Fold],
    test: impl Fn(&mut P::Fitted, &Fold, &mut Vec<(usize, String, f64)>),
) -> Result<Pass> {
    let mut pass = Pass { predictor: String::new(), folds: folds.len(), train: 0, predicted: Vec::new() };
    for fold in folds {
        let train: Vec<&Example> = fold.train.iter().map(|&i| &examples.items[i]).collect();
        let mut fitted = params.fit(&train)?;
        pass.predictor = fitted.name().to_string();
        pass.train += train.len();
        test(&mut fitted, fold, &mut pass.predicted);
    }
    Ok(pass)
}

/// A static predictor per fold: it predicts the test examples as it was fitted.
fn over_folds<P: Fit>(params: &P, examples: &Examples, folds: &[Fold]) -> Result<Pass> {
    fold_by_fold(params, examples, folds, |fitted, fold, out| {
        out.extend(fold.test.iter().map(|&i| (i, fold.held_out.clone(), fitted.predict(&examples.items[i].query))));
    })
}

/// An online predictor fitted on each fold's training examples, then run over its test
/// examples in measurement order, each predicted before it is learnt: deployed, an online
/// predictor sees every batch it predicted measured.
fn over_folds_online<P>(params: &P, examples: &Examples, folds: &[Fold]) -> Result<Pass>
where
    P: Fit,
    P::Fitted: Online,
{
    fold_by_fold(params, examples, folds, |fitted, fold, out| {
        test_then_train(fitted, examples, &fold.test, &fold.held_out, out)
    })
}

/// One predictor, from its starting state, over every example in measurement order: each
/// predicted, then learnt.
fn prequential<P: Online>(mut model: P, examples: &Examples) -> Pass {
    let all: Vec<usize> = (0..examples.len()).filter(|&i| !examples.run_of(&examples.items[i]).disturbed()).collect();
    let mut predicted = Vec::with_capacity(all.len());
    test_then_train(&mut model, examples, &all, &Split::Prequential.label(), &mut predicted);
    Pass { predictor: model.name().to_string(), folds: 1, train: 0, predicted }
}

/// Which predictors a leaderboard holds beyond the floor and the online RLS models.
#[derive(Clone, Debug, Default)]
pub struct Roster {
    /// Solo counters: gpulet's two models and iGniter's run.
    pub counters: Option<Utilisations>,
    /// The Abacus-style MLP runs, trained so (minutes on a full dataset).
    pub abacus: Option<AbacusParams>,
    /// Gradient-boosted trees run, grown so.
    pub trees: Option<GbtParams>,
    /// Solo kernel timelines: the per-kernel overlap models run.
    pub kernels: Option<KernelProfiles>,
}

impl Roster {
    /// Every predictor; gpulet's and iGniter's with `counters`.
    pub fn full(counters: Option<Utilisations>, kernels: KernelProfiles) -> Roster {
        Roster {
            counters,
            abacus: Some(AbacusParams::default()),
            trees: Some(GbtParams::default()),
            kernels: Some(kernels),
        }
    }
}

/// Every predictor of `roster` on `split`, as passes over its folds.
fn passes(examples: &Examples, split: Split, roster: &Roster) -> Result<Vec<Pass>> {
    Ok(match split {
        // gpulet's models are fitted before they predict: they have no place in a pass with no
        // training set
        Split::Prequential => {
            let mut out = vec![
                prequential(SoloAtShareParams.start(), examples),
                prequential(OnlineCoarseParams::default().start_coarse()?, examples),
                prequential(OnlineCoarseParams::with_drift_detection().start_coarse()?, examples),
                prequential(OnlineCoarseParams::sgd().start_coarse()?, examples),
            ];
            if let Some(k) = &roster.kernels {
                out.push(prequential(PerKernelParams::new(k.clone()).start()?, examples));
                out.push(prequential(PerKernelParams::new(k.clone()).with_drift_detection().start()?, examples));
                out.push(prequential(
                    PerKernelParams::new(k.clone()).learnt_by(OnlineLearning::sgd()).start()?,
                    examples,
                ));
            }
            out
        }
        _ => {
            let folds = folds(examples, split);
            if folds.is_empty() {
                return Ok(Vec::new());
            }
            let mut out = vec![
                over_folds(&SoloAtShareParams, examples, &folds)?,
                over_folds_online(&OnlineCoarseParams::default(), examples, &folds)?,
                over_folds_online(&OnlineCoarseParams::with_drift_detection(), examples, &folds)?,
                over_folds_online(&OnlineCoarseParams::sgd(), examples, &folds)?,
            ];
            if let Some(k) = &roster.kernels {
                out.push(over_folds_online(&PerKernelParams::new(k.clone()), examples, &folds)?);
                out.push(over_folds_online(&PerKernelParams::new(k.clone()).with_drift_detection(), examples, &folds)?);
                let sgd = PerKernelParams::new(k.clone()).learnt_by(OnlineLearning::sgd());
                out.push(over_folds_online(&sgd, examples, &folds)?);
            }
            if let Some(params) = &roster.abacus {
                out.push(over_folds(params, examples, &folds)?);
            }
            if let Some(params) = &roster.trees {
                out.push(over_folds(params, examples, &folds)?);
            }
            if let Some(u) = &roster.counters {
                let gpulet = GpuletParams { utilisations: u.clone() };
                out.push(over_folds(&gpulet, examples, &folds)?);
                out.push(over_folds(&IgniterParams { utilisations: u.clone() }, examples, &folds)?);
                out.push(over_folds_online(&GpuletEwmaParams { gpulet, alpha: 0.05 }, examples, &folds)?);
            }
            out
        }
    })
}

/// The leaderboard of `split`, best MAPE first, the predictions behind it and the noise floor
/// it is held to; empty where the examples hold nothing to split that way (no triples, no
/// second load).
pub fn leaderboard(
    examples: &Examples,
    split: Split,
    roster: &Roster,
) -> Result<(Vec<Entry>, Vec<PredictionRow>, Option<NoiseFloor>)> {
    let mut entries = Vec::new();
    let mut rows = Vec::new();
    let passes = passes(examples, split, roster)?;
    let tested: BTreeSet<PartitionKind> = passes
        .first()
        .map(|p| p.predicted.iter().map(|&(i, _, _)| examples.items[i].query.target.partition).collect())
        .unwrap_or_default();
    let floor = noise_floor(examples, &tested);
    for pass in passes {
        let pairs: Vec<(f64, f64)> =
            pass.predicted.iter().map(|&(i, _, p)| (p, examples.items[i].measured_us)).collect();
        let scores =
            score(&pairs).ok_or_else(|| Error::data(split.label(), "no test example with a positive measured time"))?;
        let over_floor = floor
            .as_ref()
            .map(|f| OverFloor { mape: scores.mape / f.scores.mape, p95_ape: scores.p95_ape / f.scores.p95_ape });
        rows.extend(pass.predicted.into_iter().map(|(i, fold, predicted_us)| {
            let e = &examples.items[i];
            PredictionRow {
                split: split.key(),
                predictor: pass.predictor.clone(),
                fold,
                run: e.run.clone(),
                tenant: e.tenant,
                batch: e.batch,
                predicted_us,
                measured_us: e.measured_us,
            }
        }));
        entries.push(Entry {
            predictor: pass.predictor,
            split,
            folds: pass.folds,
            train: pass.train,
            scores,
            over_floor,
        });
    }
    entries.sort_by(|a, b| a.scores.mape.total_cmp(&b.scores.mape));
    Ok((entries, rows, floor))
}

/// Every split in `splits`, with its noise floor; `keep_predictions` keeps
/// every prediction (millions of rows on a full dataset). With counters in the roster, every
/// model of the examples must have them.
pub fn evaluate(examples: &Examples, splits: &[Split], keep_predictions: bool, roster: &Roster) -> Result<Evaluation> {
    if let Some(u) = &roster.counters {
        u.cover(&examples.items)?;
    }
    if let Some(k) = &roster.kernels {
        k.cover(&examples.items)?;
    }
    let mut out =
        Evaluation { examples: examples.len(), floors: Vec::new(), entries: Vec::new(), predictions: Vec::new() };
    // splits are independent: workers (one per core) take the next split not yet taken, and
    // the results are read in the order of `splits`, so the output is the same on any machine
    type Board = Result<(Vec<Entry>, Vec<PredictionRow>, Option<NoiseFloor>)>;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Board>>> = splits.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(splits.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&split) = splits.get(i) else { break };
                    let board = leaderboard(examples, split, roster);
                    *results[i].lock().expect("no worker panics holding it") = Some(board);
                }
            });
        }
    });
    for (&split, result) in splits.iter().zip(results) {
        let (entries, rows, floor) =
            result.into_inner().expect("no worker panicked").expect("every split was taken")?;
        out.floors.push(SplitFloor { split, floor });
        out.entries.extend(entries);
        if keep_predictions {
            out.predictions.extend(rows);
        }
    }
    Ok(out)
}
