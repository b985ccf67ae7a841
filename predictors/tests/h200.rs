//! Examples and the leaderboard from the committed H200 dataset (`data/h200`).

use std::path::{Path, PathBuf};

use coloc_dataset::Dataset;
use coloc_predictors::evaluate::{Roster, evaluate, leaderboard};
use coloc_predictors::query::examples;
use coloc_predictors::split::Split;
use coloc_workloads::scenario::PartitionKind;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/h200")
}

#[test]
fn every_measured_batch_of_the_dataset_becomes_an_example_with_its_co_runners() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    assert!(ex.len() > 100_000, "{}", ex.len());
    assert!(ex.items.iter().all(|e| e.measured_us > 0.0 && e.query.solo_us > 0.0));
    // one stream: never a co-runner; green contexts and MPS: often
    let share_with_co = |p: PartitionKind| {
        let of: Vec<_> = ex.items.iter().filter(|e| e.query.target.partition == p).collect();
        of.iter().filter(|e| !e.query.co_runners.is_empty()).count() as f64 / of.len() as f64
    };
    assert_eq!(share_with_co(PartitionKind::TimeSliced), 0.0);
    assert!(share_with_co(PartitionKind::Green) > 0.3, "{}", share_with_co(PartitionKind::Green));
    assert!(share_with_co(PartitionKind::Mps) > 0.3);
    // a co-runner is always part-way through its batch
    assert!(ex.items.iter().flat_map(|e| &e.query.co_runners).all(|c| c.elapsed_us >= 0.0));
}

#[test]
fn the_evaluation_is_the_same_bit_for_bit_with_the_same_seed() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    // the examples too: co-runners listed in the same order every time they are built
    assert_eq!(examples(&ds).unwrap().items, ex.items);
    let splits = Split::all(3);
    let a = evaluate(&ex, &splits, true, &Roster::default()).unwrap();
    let b = evaluate(&ex, &splits, true, &Roster::default()).unwrap();
    assert_eq!(a, b);
    assert!(!a.predictions.is_empty());
    // the dataset's repeated pairs give a noise floor, and every split has its entries
    let floor = a.floors[0].floor.as_ref().unwrap();
    assert!(floor.scenarios >= 3 && floor.scores.mape > 0.0, "{floor:?}");
    // green -> mps is held to the floor of the repeated MPS pair alone
    let mps = a.floors.iter().find(|f| f.split.key() == "green-to-mps").unwrap().floor.as_ref().unwrap();
    assert_eq!((mps.scenarios, mps.mechanisms.as_slice()), (1, [PartitionKind::Mps].as_slice()));
    for split in &splits {
        assert!(a.entries.iter().any(|e| e.split == *split), "{split:?}");
    }
}

#[test]
fn on_a_random_split_learning_what_runs_beside_a_batch_beats_assuming_nothing_does() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    let (a, rows, _) = leaderboard(&ex, Split::Random { seed: 3 }, &Roster::default()).unwrap();
    let solo = a.iter().find(|e| e.predictor == "solo at share").unwrap();
    // interference slows batches down: predicting none under-predicts most of them
    assert!(solo.scores.under_share > 0.5, "{:?}", solo.scores);
    // every undisturbed example on one side; the runs with aggressors on neither
    let calm = ex.items.iter().filter(|e| !ex.run_of(e).disturbed()).count();
    assert!(calm < ex.len(), "data/h200 has runs with aggressors");
    assert!(solo.scores.mape > 0.0 && solo.scores.n + solo.train == calm);
    assert_eq!(rows.len(), a.iter().map(|e| e.scores.n).sum::<usize>());
    let online = a.iter().find(|e| e.predictor == "online RLS, coarse").unwrap();
    assert!(online.scores.mape < solo.scores.mape && online.scores.p95_ape < solo.scores.p95_ape, "{a:?}");
    assert!(online.scores.under_share < solo.scores.under_share);
}

#[test]
fn leaving_a_model_out_tests_each_co_located_model_on_runs_training_never_saw() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    let (a, rows, _) = leaderboard(&ex, Split::LeaveOneModelOut, &Roster::default()).unwrap();
    assert!(a.iter().all(|e| e.folds == 6), "{a:?}");
    // every prediction of a fold is of a run holding the fold's model
    for r in &rows {
        let run = ex.runs.iter().find(|f| f.run == r.run).unwrap();
        assert!(run.co_located() && run.models.contains(&r.fold), "{} in {}", r.fold, r.run);
    }
}

#[test]
fn runs_with_aggressors_are_predicted_in_time_order_after_training_on_the_rest() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    let (a, rows, _) = leaderboard(&ex, Split::Aggressors, &Roster::default()).unwrap();
    let disturbed = ex.items.iter().filter(|e| ex.run_of(e).disturbed()).count();
    assert!(disturbed > 1000, "{disturbed}");
    for e in &a {
        assert_eq!((e.scores.n, e.train), (disturbed, ex.len() - disturbed), "{}", e.predictor);
    }
    assert!(rows.iter().all(|r| ex.runs.iter().any(|f| f.run == r.run && f.disturbed())));
    // a step no query describes: the online model that follows it beats the one that cannot
    let get = |name: &str| a.iter().find(|e| e.predictor == name).unwrap().scores.clone();
    assert!(get("online RLS, coarse, Page-Hinkley").mape < get("solo at share").mape, "{a:?}");
}

#[test]
fn in_measurement_order_the_online_model_learns_as_it_goes_and_beats_the_floor() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    let (a, _, _) = leaderboard(&ex, Split::Prequential, &Roster::default()).unwrap();
    let get = |name: &str| a.iter().find(|e| e.predictor == name).unwrap().scores.clone();
    let (solo, online) = (get("solo at share"), get("online RLS, coarse"));
    // every undisturbed example is tested once, none trained on beforehand
    let calm = ex.items.iter().filter(|e| !ex.run_of(e).disturbed()).count();
    assert!(solo.n == calm && online.n == calm && a.iter().all(|e| e.train == 0));
    assert!(online.mape < solo.mape && online.p95_ape < solo.p95_ape, "{a:?}");
}

#[test]
fn runs_whose_one_stream_tenants_ran_off_their_profiles_give_no_examples() {
    let ds = Dataset::open(&dir()).unwrap();
    let ex = examples(&ds).unwrap();
    let t = coloc_dataset::check::Tables::load(&ds).unwrap();
    let off: std::collections::BTreeSet<String> =
        coloc_dataset::check::one_stream_tenants(&t).into_iter().filter(|x| !x.agrees()).map(|x| x.run).collect();
    // data/h200: 18 one-stream tenants off their profiles in 10 VALID runs (docs/predictors.md)
    assert_eq!(off.len(), 10, "{off:?}");
    assert_eq!(ex.runs.len(), 82);
    assert_eq!(ex.off_profile.iter().cloned().collect::<std::collections::BTreeSet<_>>(), off);
    assert!(ex.items.iter().all(|e| !off.contains(&e.run)));
    assert!(ex.runs.iter().all(|r| !off.contains(&r.run)));
    // what is left on one stream runs as profiled: alone, the median label is 1 within 3%
    let mut lone: Vec<f64> = ex
        .items
        .iter()
        .filter(|e| e.query.target.partition == PartitionKind::TimeSliced && !ex.run_of(e).co_located())
        .map(|e| e.measured_us / e.query.solo_us)
        .collect();
    assert!(lone.len() > 1000, "{}", lone.len());
    lone.sort_by(f64::total_cmp);
    let median = lone[lone.len() / 2];
    assert!((median - 1.0).abs() < 0.03, "{median}");
}
