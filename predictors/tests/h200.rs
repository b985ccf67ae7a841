//! Examples and the leaderboard from the committed H200 dataset (`data/h200`).

use std::path::{Path, PathBuf};

use coloc_dataset::Dataset;
use coloc_predictors::evaluate::{Split, leaderboard};
use coloc_predictors::query::examples;
use coloc_workloads::scenario::PartitionKind;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200")
}

#[test]
fn every_measured_batch_of_the_dataset_becomes_an_example_with_its_co_runners() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    assert!(ex.len() > 100_000, "{}", ex.len());
    assert!(ex.iter().all(|e| e.measured_us > 0.0 && e.query.solo_us > 0.0));
    // one stream: never a co-runner; green contexts and MPS: often
    let share_with_co = |p: PartitionKind| {
        let of: Vec<_> = ex.iter().filter(|e| e.query.target.partition == p).collect();
        of.iter().filter(|e| !e.query.co_runners.is_empty()).count() as f64 / of.len() as f64
    };
    assert_eq!(share_with_co(PartitionKind::TimeSliced), 0.0);
    assert!(share_with_co(PartitionKind::Green) > 0.3, "{}", share_with_co(PartitionKind::Green));
    assert!(share_with_co(PartitionKind::Mps) > 0.3);
    // a co-runner is always part-way through its batch
    assert!(ex.iter().flat_map(|e| &e.query.co_runners).all(|c| c.elapsed_us >= 0.0));
}

#[test]
fn the_leaderboard_is_the_same_bit_for_bit_with_the_same_seed() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    let a = leaderboard(&ex, Split::Random { seed: 3 }).unwrap();
    let b = leaderboard(&ex, Split::Random { seed: 3 }).unwrap();
    assert_eq!(a, b);
    let solo = a.iter().find(|e| e.predictor == "solo at share").unwrap();
    // interference slows batches down: predicting none under-predicts most of them
    assert!(solo.scores.under_share > 0.5, "{:?}", solo.scores);
    assert!(solo.scores.mape > 0.0 && solo.scores.n + solo.train == ex.len());
    // learning what runs beside a batch beats assuming nothing does
    let online = a.iter().find(|e| e.predictor == "online RLS, coarse").unwrap();
    assert!(online.scores.mape < solo.scores.mape && online.scores.p95_ape < solo.scores.p95_ape, "{a:?}");
    assert!(online.scores.under_share < solo.scores.under_share);
}

#[test]
fn in_measurement_order_the_online_model_learns_as_it_goes_and_beats_the_floor() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    let a = leaderboard(&ex, Split::Prequential).unwrap();
    assert_eq!(a, leaderboard(&ex, Split::Prequential).unwrap());
    let get = |name: &str| a.iter().find(|e| e.predictor == name).unwrap().scores.clone();
    let (solo, online) = (get("solo at share"), get("online RLS, coarse"));
    // every example is tested once, none trained on beforehand
    assert!(solo.n == ex.len() && online.n == ex.len() && a.iter().all(|e| e.train == 0));
    assert!(online.mape < solo.mape && online.p95_ape < solo.p95_ape, "{a:?}");
}
