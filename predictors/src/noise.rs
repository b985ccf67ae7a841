//! The noise floor: how well a batch's GPU time can be told at all, measured from scenarios
//! run more than once with fresh seeds. Each batch of one repetition is "predicted" by the
//! median time of the same tenant's batches of the same size, dispatched beside as many
//! co-runners, in the other repetitions: an oracle that knows the scenario exactly and how many
//! batches run beside this one, but not how far along they are nor what the kernels do. Its
//! errors are the run-to-run and batch-to-batch variation a predictor of that coarse state
//! cannot remove; a predictor that models the co-runners' progress can go below it. Every
//! predictor's error is also given as a multiple of it.

use std::collections::{BTreeMap, BTreeSet};

use coloc_workloads::scenario::PartitionKind;

use serde::Serialize;

use crate::metrics::{Scores, score};
use crate::query::Examples;

/// The noise floor and what it was measured on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoiseFloor {
    /// Co-located scenarios measured more than once.
    pub scenarios: usize,
    /// The mechanisms they ran under.
    pub mechanisms: Vec<PartitionKind>,
    pub scores: Scores,
}

/// The noise floor from the co-located scenarios of `examples` with two or more repetitions,
/// under one of `mechanisms` (the floor differs by an order of magnitude between streams and
/// green contexts, so a split is held to the floor of the mechanisms it tests); none if there
/// are none.
pub fn noise_floor(examples: &Examples, mechanisms: &BTreeSet<PartitionKind>) -> Option<NoiseFloor> {
    // (scenario, tenant, bucket, co-runners) -> rep -> measured times
    type Key<'a> = (&'a str, u16, u32, usize);
    let mut times: BTreeMap<Key, BTreeMap<u32, Vec<f64>>> = BTreeMap::new();
    for e in &examples.items {
        let run = examples.run_of(e);
        if run.co_located() && !run.disturbed() && mechanisms.contains(&run.partition) {
            let key = (run.scenario.as_str(), e.tenant, e.query.target.bucket, e.query.co_runners.len());
            times.entry(key).or_default().entry(run.rep).or_default().push(e.measured_us);
        }
    }
    let mut pairs = Vec::new();
    let mut scenarios = BTreeSet::new();
    for ((scenario, _, _, _), reps) in &times {
        if reps.len() < 2 {
            continue;
        }
        scenarios.insert(*scenario);
        for (rep, mine) in reps {
            let mut others: Vec<f64> = reps.iter().filter(|(r, _)| *r != rep).flat_map(|(_, v)| v).copied().collect();
            others.sort_by(f64::total_cmp);
            let median = others[others.len() / 2];
            pairs.extend(mine.iter().map(|&m| (median, m)));
        }
    }
    let mechanisms: BTreeSet<PartitionKind> =
        examples.runs.iter().filter(|r| scenarios.contains(r.scenario.as_str())).map(|r| r.partition).collect();
    score(&pairs).map(|scores| NoiseFloor {
        scenarios: scenarios.len(),
        mechanisms: mechanisms.into_iter().collect(),
        scores,
    })
}

#[cfg(test)]
mod tests {
    use coloc_workloads::scenario::SoloShare;

    use super::*;
    use crate::query::{Example, Query, RunFacts, Target};

    fn run(ex: &mut Examples, name: &str, scenario: &str, rep: u32, models: &[&str], times: &[f64]) {
        for (i, &t) in times.iter().enumerate() {
            ex.items.push(Example {
                run: name.into(),
                position: 0,
                start_ns: i as i64,
                tenant: 0,
                batch: i as u32,
                query: Query {
                    target: Target {
                        model: models[0].into(),
                        bucket: 8,
                        share: SoloShare::Device,
                        partition: PartitionKind::Green,
                    },
                    solo_us: 1.0,
                    co_runners: Vec::new(),
                },
                measured_us: t,
            });
        }
        ex.runs.push(RunFacts {
            run: name.into(),
            scenario: scenario.into(),
            rep,
            partition: PartitionKind::Green,
            models: models.iter().map(|m| m.to_string()).collect(),
            offered_load: Some(0.6),
            tested: false,
            aggressors: 0,
        });
        ex.runs.sort_by(|a, b| a.run.cmp(&b.run));
    }

    #[test]
    fn the_floor_is_each_repetition_against_the_median_of_the_others() {
        let mut ex = Examples::default();
        // repetition 2 is 10% slower throughout; a solo run and an unrepeated pair do not count
        run(&mut ex, "a1", "pair", 1, &["a", "b"], &[100.0, 100.0]);
        run(&mut ex, "a2", "pair", 2, &["a", "b"], &[110.0, 110.0]);
        run(&mut ex, "b1", "solo", 1, &["a"], &[50.0]);
        run(&mut ex, "b2", "solo", 2, &["a"], &[70.0]);
        run(&mut ex, "c1", "other", 1, &["a", "c"], &[10.0]);
        ex.items.sort_by(|a, b| a.run.cmp(&b.run));
        let all: BTreeSet<PartitionKind> = PartitionKind::ALL.into_iter().collect();
        let floor = noise_floor(&ex, &all).unwrap();
        assert_eq!((floor.scenarios, floor.scores.n), (1, 4));
        assert_eq!(floor.mechanisms, [PartitionKind::Green]);
        // held to other mechanisms, the pair is not part of the floor
        assert!(noise_floor(&ex, &[PartitionKind::Mps].into_iter().collect()).is_none());
        // rep 1 predicted 110 (10% over), rep 2 predicted 100 (1/11 under)
        let expected = (0.1 + 1.0 / 11.0) / 2.0;
        assert!((floor.scores.mape - expected).abs() < 1e-12, "{}", floor.scores.mape);
        assert_eq!(floor.scores.under_share, 0.5);
    }

    #[test]
    fn without_repeated_co_located_scenarios_there_is_no_floor() {
        let mut ex = Examples::default();
        run(&mut ex, "c1", "other", 1, &["a", "c"], &[10.0]);
        assert!(noise_floor(&ex, &PartitionKind::ALL.into_iter().collect()).is_none());
    }
}
