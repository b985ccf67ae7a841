//! Which runs a suite measures and in what order. The suite's runs (every repetition of every
//! selected scenario) are shuffled with a recorded seed, so that the order of scenarios is not
//! confounded with anything that changes over a long measurement (clocks, temperature, the
//! state a previous mechanism left behind); the drift reference runs at the start, the end
//! and every `every` runs in between, so that such change is measured.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Role, Scenario};
use crate::suite::reference_runs;

/// One run: repetition `rep` (from 1) of scenario `index` of the suite.
#[derive(Clone, Copy, Debug)]
pub struct PlannedRun<'a> {
    pub index: usize,
    pub scenario: &'a Scenario,
    pub rep: usize,
}

impl PlannedRun<'_> {
    /// `<index>_<file-safe scenario name>__r<rep>`: a run's key in every table.
    pub fn key(&self) -> String {
        run_key(self.index, &self.scenario.name, self.rep)
    }
}

/// The key of repetition `rep` of scenario `index` named `name`.
pub fn run_key(index: usize, name: &str, rep: usize) -> String {
    let slug: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    format!("{index:03}_{slug}__r{rep}")
}

/// Whether `only` (case-insensitive substrings of scenario names; none: all) selects `scenario`.
pub fn selects(only: &[String], scenario: &Scenario) -> bool {
    only.is_empty() || only.iter().any(|p| scenario.name.to_lowercase().contains(&p.to_lowercase()))
}

/// Every run of `scenarios` that `only` selects ([`selects`]), in measurement order: shuffled by `order_seed`, with the reference
/// scenario's runs (if the suite has one) first, last and every `every` runs in between.
pub fn plan_runs<'a>(scenarios: &'a [Scenario], only: &[String], order_seed: u64, every: usize) -> Vec<PlannedRun<'a>> {
    let selected = |s: &Scenario| selects(only, s);
    let mut measured: Vec<PlannedRun> = scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| s.role == Role::Measured && selected(s))
        .flat_map(|(index, scenario)| (1..=scenario.repetitions).map(move |rep| PlannedRun { index, scenario, rep }))
        .collect();
    measured.shuffle(&mut ChaCha8Rng::seed_from_u64(order_seed));
    let reference = scenarios.iter().enumerate().find(|(_, s)| s.role == Role::Reference);
    let Some((index, scenario)) = reference.filter(|_| every > 0 && !measured.is_empty()) else {
        return measured;
    };
    let count = reference_runs(measured.len(), every);
    let mut refs = (1..=count).map(|rep| PlannedRun { index, scenario, rep });
    let mut out = Vec::with_capacity(measured.len() + count);
    for (i, run) in measured.into_iter().enumerate() {
        if i % every == 0 {
            out.extend(refs.next());
        }
        out.push(run);
    }
    out.extend(refs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::DeviceLimits;
    use crate::suite::Suite;

    fn suite(text: &str) -> Suite {
        Suite::parse(text, std::path::Path::new("t.toml"), &DeviceLimits::h200()).unwrap()
    }

    const TEXT: &str = r#"
name = "t"
[defaults]
repetitions = 2
[reference]
every = 3
[[sweep]]
name = "s"
models = ["tiny", "resnet50"]
batch = [1, 8]
partition = ["time_sliced", "green"]
load = [0.2]
"#;

    #[test]
    fn every_run_appears_once_shuffled_with_references_first_last_and_every_third() {
        let s = suite(TEXT);
        let runs = plan_runs(&s.scenarios, &[], s.order_seed, s.reference_every);
        let measured: Vec<&PlannedRun> = runs.iter().filter(|r| r.scenario.role == Role::Measured).collect();
        assert_eq!(measured.len(), 16);
        let keys: std::collections::BTreeSet<String> = runs.iter().map(|r| r.key()).collect();
        assert_eq!(keys.len(), runs.len(), "a run appears twice");
        // 16 runs, one reference every 3: before runs 0, 3, ..., 15, and one at the end
        let is_ref: Vec<bool> = runs.iter().map(|r| r.scenario.role == Role::Reference).collect();
        assert_eq!(is_ref.iter().filter(|r| **r).count(), 7);
        assert!(is_ref[0] && is_ref[runs.len() - 1]);
        assert!(is_ref[4] && !is_ref[3]);
        // shuffled: not the suite's order, and the same seed gives the same order
        let in_suite_order: Vec<String> = measured.iter().map(|r| r.key()).collect();
        let mut sorted = in_suite_order.clone();
        sorted.sort();
        assert_ne!(in_suite_order, sorted);
        let again: Vec<String> = plan_runs(&s.scenarios, &[], s.order_seed, 3).iter().map(|r| r.key()).collect();
        assert_eq!(again, runs.iter().map(|r| r.key()).collect::<Vec<_>>());
        let other: Vec<String> = plan_runs(&s.scenarios, &[], s.order_seed + 1, 3).iter().map(|r| r.key()).collect();
        assert_ne!(other, again);
    }

    #[test]
    fn a_selection_keeps_its_own_references_and_none_without_runs() {
        let s = suite(TEXT);
        let runs = plan_runs(&s.scenarios, &["green".into()], s.order_seed, s.reference_every);
        assert_eq!(runs.iter().filter(|r| r.scenario.role == Role::Measured).count(), 8);
        assert_eq!(runs.len(), 8 + reference_runs(8, 3));
        assert!(plan_runs(&s.scenarios, &["nothing".into()], s.order_seed, 3).is_empty());
    }

    #[test]
    fn run_keys_are_file_safe() {
        assert_eq!(
            run_key(7, "pairs/resnet50+bert_base/b8/green-56_56/load0.5", 2),
            "007_pairs_resnet50_bert_base_b8_green-56_56_load0.5__r2"
        );
    }
}
