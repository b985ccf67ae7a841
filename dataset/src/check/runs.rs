//! Every run once, and no row of a run that was not recorded.

use std::collections::BTreeSet;

use super::{Finding, Invariant, Problems, Tables};
use crate::rows::RunRow;

fn duplicates(keys: &[&str]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for k in keys {
        if !seen.insert(*k) {
            dup.insert(k.to_string());
        }
    }
    dup.into_iter().collect()
}

fn listed(v: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = v.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > SHOWN {
        s.push_str(&format!(" and {} more", v.len() - SHOWN));
    }
    s
}

/// Compares the keys found in `what` with the expected ones.
fn compare_keys(what: &str, found: &[&str], expected: &BTreeSet<&str>, problems: &mut Vec<String>) {
    let dup = duplicates(found);
    if !dup.is_empty() {
        problems.push(format!("{what}: {} run(s) recorded more than once: {}", dup.len(), listed(&dup)));
    }
    let found: BTreeSet<&str> = found.iter().copied().collect();
    let missing: Vec<String> = expected.iter().filter(|k| !found.contains(**k)).map(|k| k.to_string()).collect();
    if !missing.is_empty() {
        problems.push(format!("{what}: {} run(s) missing: {}", missing.len(), listed(&missing)));
    }
    let unknown: Vec<String> = found.iter().filter(|k| !expected.contains(**k)).map(|k| k.to_string()).collect();
    if !unknown.is_empty() {
        problems.push(format!("{what}: {} run(s) the suite does not have: {}", unknown.len(), listed(&unknown)));
    }
}

/// The progress log and (once consolidated) `runs.parquet` against the expected runs, and
/// every run table's rows against the recorded runs.
pub fn runs_once(expected: &[String], log: &[RunRow], tables: Option<&Tables>) -> Finding {
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    let logged: Vec<&str> = log.iter().map(|r| r.run.as_str()).collect();
    compare_keys("progress.jsonl", &logged, &expected, &mut problems);
    let Some(t) = tables else {
        return Finding::new(Invariant::RunsOnce, log.len(), problems);
    };
    let recorded: Vec<&str> = t.runs.iter().map(|r| r.run.as_str()).collect();
    compare_keys("runs.parquet", &recorded, &expected, &mut problems);
    let recorded: BTreeSet<&str> = recorded.into_iter().collect();
    let tables: [(&str, Vec<&str>); 6] = [
        ("tenants", t.tenants.iter().map(|r| r.run.as_str()).collect()),
        ("aggressors", t.aggressors.iter().map(|r| r.run.as_str()).collect()),
        ("requests", t.requests.iter().map(|r| r.run.as_str()).collect()),
        ("batches", t.batches.iter().map(|r| r.run.as_str()).collect()),
        ("kernels", t.kernels.iter().map(|r| r.run.as_str()).collect()),
        ("device_samples", t.device_samples.iter().map(|r| r.run.as_str()).collect()),
    ];
    let mut checked = 0;
    for (name, keys) in tables {
        checked += keys.len();
        let mut orphans = Problems::new("row(s) of runs not in runs.parquet");
        for k in keys.iter().filter(|k| !recorded.contains(*k)) {
            orphans.push(|| format!("{name}: {k}"));
        }
        orphans.into_lines(&mut problems);
    }
    Finding::new(Invariant::RunsOnce, checked, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_duplicated_and_unknown_runs_are_each_reported() {
        let expected: BTreeSet<&str> = ["r1", "r2", "r3"].into_iter().collect();
        let mut problems = Vec::new();
        compare_keys("runs", &["r1", "r1", "r2", "zz"], &expected, &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("more than once: r1"));
        assert!(problems[1].contains("missing: r3"));
        assert!(problems[2].contains("does not have: zz"));
        let mut none = Vec::new();
        compare_keys("runs", &["r3", "r2", "r1"], &expected, &mut none);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn long_lists_are_cut_short() {
        let v: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
        assert_eq!(listed(&v), "k0, k1, k2, k3, k4 and 3 more");
    }
}
