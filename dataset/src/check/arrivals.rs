//! No two tenants, in any runs, share an arrival sequence: every repetition draws fresh
//! arrivals, and so does every tenant of every scenario. Sequences are compared by the shape
//! of their first gaps (each over their sum), so that one sequence scaled to another rate is
//! still the same sequence.

use std::collections::BTreeMap;

use super::{Finding, Invariant, Problems, Tables};
use crate::rows::ArrivalKind;

/// Gaps compared per tenant.
const GAPS: usize = 16;

/// The shape of a sequence of arrival times: its first gaps over their sum, to 1e-4.
pub fn fingerprint(arrivals_ns: &[i64]) -> Option<Vec<i64>> {
    if arrivals_ns.len() <= GAPS {
        return None;
    }
    let gaps: Vec<i64> = arrivals_ns.windows(2).take(GAPS).map(|w| w[1] - w[0]).collect();
    let sum: i64 = gaps.iter().sum();
    (sum > 0).then(|| gaps.iter().map(|g| (*g as f64 / sum as f64 * 1e4).round() as i64).collect())
}

pub fn distinct(t: &Tables) -> Finding {
    let open: BTreeMap<(&str, u16), bool> = t
        .tenants
        .iter()
        .map(|x| ((x.run.as_str(), x.tenant), !matches!(x.arrival, ArrivalKind::ClosedLoop | ArrivalKind::Trace)))
        .collect();
    let mut arrivals: BTreeMap<(&str, u16), Vec<i64>> = BTreeMap::new();
    for r in &t.requests {
        if open.get(&(r.run.as_str(), r.tenant)) == Some(&true) {
            arrivals.entry((r.run.as_str(), r.tenant)).or_default().push(r.arrival_ns);
        }
    }
    let mut seen: BTreeMap<Vec<i64>, (&str, u16)> = BTreeMap::new();
    let mut shared = Problems::new("tenant(s) with the arrival sequence of another");
    let mut checked = 0;
    for ((run, tenant), mut times) in arrivals {
        times.sort_unstable();
        let Some(fp) = fingerprint(&times) else { continue };
        checked += 1;
        if let Some((other_run, other)) = seen.get(&fp) {
            shared.push(|| format!("{run} tenant {tenant} and {other_run} tenant {other}"));
        } else {
            seen.insert(fp, (run, tenant));
        }
    }
    let mut problems = Vec::new();
    shared.into_lines(&mut problems);
    Finding::new(Invariant::DistinctArrivals, checked, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_scaled_to_another_rate_has_the_same_fingerprint_and_a_new_one_does_not() {
        let a: Vec<i64> = (0..40).map(|i| i * i * 1000 + i * 7919).collect();
        let scaled: Vec<i64> = a.iter().map(|t| t * 3).collect();
        assert_eq!(fingerprint(&a), fingerprint(&scaled));
        let b: Vec<i64> = (0..40).map(|i| i * i * 1000 + i * 104_729).collect();
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a[..10]), None);
    }
}
