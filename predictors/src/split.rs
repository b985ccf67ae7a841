//! Which examples train and which test: the random 75/25 split of the study the seeds cite, and
//! the workload shifts a deployed predictor meets (a model, a mix, a third tenant, another
//! mechanism, a higher load that it never saw). Every split is a pure function of the examples
//! and the seed, so it is the same bit for bit on every machine.

use std::collections::BTreeSet;

use coloc_workloads::scenario::PartitionKind;
use serde::Serialize;

use crate::query::{Examples, RunFacts};

/// A way to split the examples into folds of (train, test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "split")]
pub enum Split {
    /// Each example in the test set with probability 0.25, drawn from the seed.
    Random { seed: u64 },
    /// One fold per model that is co-located in some run: its co-located runs are tested, and
    /// training sees no run it is in (its solo profile stays known, as to any query).
    LeaveOneModelOut,
    /// One fold per mix of co-located models: its runs are tested, every other run trains.
    LeaveOneMixOut,
    /// Runs of one or two tenants train; runs of three or more test.
    PairsToTriples,
    /// Co-located runs under `train` (and every single-tenant run) train; co-located runs under
    /// `test` test.
    Mechanism { train: PartitionKind, test: PartitionKind },
    /// Co-located runs offered at most the median offered load of co-located runs (and every
    /// single-tenant run) train; those above it test. Runs of closed loops take no part.
    LowToHighLoad,
    /// Test then train: every example in the order the GPU saw them (runs by their place in the
    /// measurement, batches by start), predicted first and learnt after; no training set.
    Prequential,
    /// Runs without aggressors train; runs where aggressors switch on and off, unannounced to
    /// the predictors, test (online predictors test, then learn, through them in time order).
    Aggressors,
    /// One dataset trains, another tests ([`crate::query::Examples::across`]).
    Datasets,
}

impl Split {
    /// Every split `coloc evaluate` runs.
    pub fn all(seed: u64) -> Vec<Split> {
        vec![
            Split::Random { seed },
            Split::LeaveOneModelOut,
            Split::LeaveOneMixOut,
            Split::PairsToTriples,
            Split::Mechanism { train: PartitionKind::Green, test: PartitionKind::Mps },
            Split::Mechanism { train: PartitionKind::Mps, test: PartitionKind::Green },
            Split::LowToHighLoad,
            Split::Prequential,
            Split::Aggressors,
        ]
    }

    pub fn label(self) -> String {
        match self {
            Split::Random { seed } => format!("random 75/25 (seed {seed})"),
            Split::LeaveOneModelOut => "leave one model out".into(),
            Split::LeaveOneMixOut => "leave one mix out".into(),
            Split::PairsToTriples => "pairs -> triples".into(),
            Split::Mechanism { train, test } => format!("{} -> {}", train.name(), test.name()),
            Split::LowToHighLoad => "low load -> high load".into(),
            Split::Prequential => "prequential (test, then train, in measurement order)".into(),
            Split::Aggressors => "undisturbed -> aggressor steps (test, then train)".into(),
            Split::Datasets => "one dataset -> another".into(),
        }
    }

    /// A short name for files and the command line.
    pub fn key(self) -> String {
        match self {
            Split::Random { .. } => "random".into(),
            Split::LeaveOneModelOut => "leave-one-model-out".into(),
            Split::LeaveOneMixOut => "leave-one-mix-out".into(),
            Split::PairsToTriples => "pairs-to-triples".into(),
            Split::Mechanism { train, test } => format!("{}-to-{}", train.name(), test.name()),
            Split::LowToHighLoad => "low-to-high-load".into(),
            Split::Prequential => "prequential".into(),
            Split::Aggressors => "aggressors".into(),
            Split::Datasets => "datasets".into(),
        }
    }
}

/// One fold: indices into the examples.
#[derive(Clone, Debug, PartialEq)]
pub struct Fold {
    /// What is held out (a model, a mix), or the split's label for a split of one fold.
    pub held_out: String,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// The folds of `split` (none for the prequential pass, which has no training set). A fold with
/// no training or no test example is left out. Runs with aggressors take part in
/// [`Split::Aggressors`] alone.
pub fn folds(examples: &Examples, split: Split) -> Vec<Fold> {
    let by_run = |train: &dyn Fn(&RunFacts) -> bool, test: &dyn Fn(&RunFacts) -> bool, held_out: String| {
        let mut fold = Fold { held_out, train: Vec::new(), test: Vec::new() };
        for (i, e) in examples.items.iter().enumerate() {
            let run = examples.run_of(e);
            if run.disturbed() && split != Split::Aggressors {
                continue;
            }
            if test(run) {
                fold.test.push(i);
            } else if train(run) {
                fold.train.push(i);
            }
        }
        fold
    };
    let co_located_models: BTreeSet<&String> =
        examples.runs.iter().filter(|r| r.co_located()).flat_map(|r| &r.models).collect();
    let mixes: BTreeSet<String> = examples.runs.iter().filter(|r| r.co_located()).map(RunFacts::mix).collect();
    let all: Vec<Fold> = match split {
        Split::Random { seed } => {
            let (train, test) = random_split(examples.len(), 0.25, seed);
            let calm = |i: &usize| !examples.run_of(&examples.items[*i]).disturbed();
            let (train, test) = (train.into_iter().filter(calm).collect(), test.into_iter().filter(calm).collect());
            vec![Fold { held_out: split.label(), train, test }]
        }
        Split::LeaveOneModelOut => co_located_models
            .into_iter()
            .map(|m| {
                let has = |r: &RunFacts| r.models.contains(m);
                by_run(&|r| !has(r), &|r| r.co_located() && has(r), m.clone())
            })
            .collect(),
        Split::LeaveOneMixOut => {
            mixes.into_iter().map(|mix| by_run(&|_| true, &|r| r.co_located() && r.mix() == mix, mix.clone())).collect()
        }
        Split::PairsToTriples => vec![by_run(&|r| r.models.len() <= 2, &|r| r.models.len() >= 3, split.label())],
        Split::Mechanism { train, test } => vec![by_run(
            &|r| !r.co_located() || r.partition == train,
            &|r| r.co_located() && r.partition == test,
            split.label(),
        )],
        Split::LowToHighLoad => {
            let mut loads: Vec<f64> =
                examples.runs.iter().filter(|r| r.co_located()).filter_map(|r| r.offered_load).collect();
            loads.sort_by(f64::total_cmp);
            match loads.get(loads.len().saturating_sub(1) / 2) {
                Some(&median) => vec![by_run(
                    &|r| !r.co_located() || r.offered_load.is_some_and(|l| l <= median),
                    &|r| r.co_located() && r.offered_load.is_some_and(|l| l > median),
                    format!("offered load <= {median:.2} -> above"),
                )],
                None => Vec::new(),
            }
        }
        Split::Prequential => Vec::new(),
        Split::Aggressors => vec![by_run(&|r| !r.disturbed(), &|r| r.disturbed(), split.label())],
        Split::Datasets => vec![by_run(&|r| !r.tested, &|r| r.tested, split.label())],
    };
    all.into_iter().filter(|f| !f.train.is_empty() && !f.test.is_empty()).collect()
}

/// SplitMix64: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Indices of `n` examples split into (train, test), each in the test set with probability
/// `test_fraction`.
pub fn random_split(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let threshold = (test_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    (0..n).partition(|&i| mix(seed ^ mix(i as u64)) >= threshold)
}

#[cfg(test)]
mod tests {
    use coloc_workloads::scenario::SoloShare;

    use super::*;
    use crate::query::{Example, Query, Target};

    #[test]
    fn the_split_is_a_partition_of_about_the_asked_size_and_depends_on_the_seed() {
        let (train, test) = random_split(10_000, 0.25, 7);
        assert_eq!(train.len() + test.len(), 10_000);
        assert!(train.iter().all(|i| !test.contains(i)));
        assert!((test.len() as f64 / 10_000.0 - 0.25).abs() < 0.02, "{}", test.len());
        assert_eq!(random_split(10_000, 0.25, 7), (train.clone(), test.clone()));
        assert_ne!(random_split(10_000, 0.25, 8).1, test);
    }

    /// Runs: (name, partition, models, load); two examples each.
    fn examples(runs: &[(&str, PartitionKind, &[&str], Option<f64>)]) -> Examples {
        let mut ex = Examples::default();
        let mut sorted = runs.to_vec();
        sorted.sort_by_key(|r| r.0);
        for &(name, partition, models, offered_load) in &sorted {
            let mut models: Vec<String> = models.iter().map(|m| m.to_string()).collect();
            models.sort();
            for i in 0..2 {
                ex.items.push(Example {
                    run: name.into(),
                    position: 0,
                    start_ns: i,
                    tenant: 0,
                    batch: i as u32,
                    query: Query {
                        target: Target { model: models[0].clone(), bucket: 8, share: SoloShare::Device, partition },
                        solo_us: 1.0,
                        co_runners: Vec::new(),
                    },
                    measured_us: 1.0,
                });
            }
            ex.runs.push(RunFacts {
                run: name.into(),
                scenario: name.into(),
                rep: 1,
                partition,
                models,
                offered_load,
                tested: false,
                aggressors: 0,
            });
        }
        ex
    }

    fn runs_of(ex: &Examples, idx: &[usize]) -> BTreeSet<String> {
        idx.iter().map(|&i| ex.items[i].run.clone()).collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runs_with_aggressors_are_tested_by_the_aggressor_split_alone() {
        use PartitionKind::{Green, Mps, TimeSliced};
        let mut ex = examples(&[
            ("a_solo", TimeSliced, &["a"], Some(0.5)),
            ("ab_green", Green, &["a", "b"], Some(0.6)),
            ("ab_mps", Mps, &["a", "b"], Some(0.9)),
            ("abc_mps", Mps, &["a", "b", "c"], Some(0.9)),
            ("ab_steps", Green, &["a", "b"], Some(0.6)),
        ]);
        ex.runs.iter_mut().find(|r| r.run == "ab_steps").unwrap().aggressors = 2;
        let steps = set(&["ab_steps"]);
        for split in Split::all(3).into_iter().filter(|s| *s != Split::Aggressors) {
            for f in folds(&ex, split) {
                assert!(runs_of(&ex, &f.train).is_disjoint(&steps), "{split:?} trains on aggressor steps");
                assert!(runs_of(&ex, &f.test).is_disjoint(&steps), "{split:?} tests aggressor steps");
            }
        }
        let f = folds(&ex, Split::Aggressors);
        assert_eq!(f.len(), 1);
        assert_eq!(runs_of(&ex, &f[0].test), steps);
        assert_eq!(runs_of(&ex, &f[0].train), set(&["a_solo", "ab_green", "ab_mps", "abc_mps"]));
    }

    #[test]
    fn shift_splits_hold_out_what_they_name_and_train_on_none_of_it() {
        use PartitionKind::{Green, Mps, TimeSliced};
        let ex = examples(&[
            ("a_solo", TimeSliced, &["a"], Some(0.5)),
            ("b_solo", TimeSliced, &["b"], Some(0.5)),
            ("ab_green", Green, &["a", "b"], Some(0.6)),
            ("ab_mps", Mps, &["b", "a"], Some(0.9)),
            ("bc_green", Green, &["b", "c"], Some(0.3)),
            ("abc_mps", Mps, &["a", "b", "c"], None),
        ]);
        let lomo = folds(&ex, Split::LeaveOneModelOut);
        assert_eq!(lomo.iter().map(|f| f.held_out.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        let a = &lomo[0];
        assert_eq!(runs_of(&ex, &a.test), set(&["ab_green", "ab_mps", "abc_mps"]));
        assert_eq!(runs_of(&ex, &a.train), set(&["b_solo", "bc_green"]));
        // leave one mix out: the mix is the set of models, whatever the mechanism
        let lomix = folds(&ex, Split::LeaveOneMixOut);
        assert_eq!(lomix.iter().map(|f| f.held_out.as_str()).collect::<Vec<_>>(), ["a+b", "a+b+c", "b+c"]);
        assert_eq!(runs_of(&ex, &lomix[0].test), set(&["ab_green", "ab_mps"]));
        assert_eq!(runs_of(&ex, &lomix[0].train), set(&["a_solo", "b_solo", "bc_green", "abc_mps"]));
        let p2t = &folds(&ex, Split::PairsToTriples)[0];
        assert_eq!(runs_of(&ex, &p2t.test), set(&["abc_mps"]));
        assert_eq!(p2t.train.len(), 10); // five runs of one or two tenants, two examples each
        let g2m = &folds(&ex, Split::Mechanism { train: Green, test: Mps })[0];
        assert_eq!(runs_of(&ex, &g2m.test), set(&["ab_mps", "abc_mps"]));
        assert_eq!(runs_of(&ex, &g2m.train), set(&["a_solo", "b_solo", "ab_green", "bc_green"]));
        // loads of co-located runs: 0.3, 0.6, 0.9 (the closed loop has none): median 0.6
        let load = &folds(&ex, Split::LowToHighLoad)[0];
        assert_eq!(runs_of(&ex, &load.test), set(&["ab_mps"]));
        assert_eq!(runs_of(&ex, &load.train), set(&["a_solo", "b_solo", "ab_green", "bc_green"]));
        for f in lomo.iter().chain(&lomix).chain([p2t, g2m, load]) {
            assert!(f.train.iter().all(|i| !f.test.contains(i)), "{}", f.held_out);
        }
        assert!(folds(&ex, Split::Prequential).is_empty());
    }
}
