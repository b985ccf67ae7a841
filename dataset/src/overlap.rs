//! Which kernels of different tenants ran at the same time, and how much slower each ran than
//! alone at the same share. Every launch counts, cuBLAS's included (their spans are brackets:
//! see [`crate::rows::LaunchKind`]).

use std::collections::BTreeMap;

use coloc_workloads::scenario::SoloShare;
use serde::Serialize;

use crate::rows::{BatchRow, KernelRow, Owner, TenantRow};
use crate::solo_rows::SoloKernelRow;

/// Time during which kernels of two tenants (or aggressors) ran together.
#[derive(Clone, Debug, Serialize)]
pub struct PairOverlap {
    pub a: Owner,
    pub b: Owner,
    /// Length of the intersection of the two owners' busy time, ns.
    pub overlap_ns: i64,
    pub busy_a_ns: i64,
    pub busy_b_ns: i64,
    /// The launch pairs that overlapped longest: (a's, b's, overlap ns).
    pub top: Vec<(KernelRow, KernelRow, i64)>,
}

/// Disjoint, sorted union of intervals.
pub fn union(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.sort();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Length of the intersection of two disjoint sorted interval lists.
pub fn intersection(a: &[(i64, i64)], b: &[(i64, i64)]) -> i64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if hi > lo {
            total += hi - lo;
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    total
}

/// Overlap of every pair of owners among one run's kernel launches.
pub fn overlaps(kernels: &[&KernelRow], top: usize) -> Vec<PairOverlap> {
    let mut by: BTreeMap<Owner, Vec<&KernelRow>> = BTreeMap::new();
    for k in kernels {
        if let Some(o) = k.owner() {
            by.entry(o).or_default().push(k);
        }
    }
    let ids: Vec<Owner> = by.keys().copied().collect();
    let mut out = Vec::new();
    for (x, &a) in ids.iter().enumerate() {
        for &b in &ids[x + 1..] {
            let ua = union(by[&a].iter().map(|s| (s.start_ns, s.end_ns)).collect());
            let ub = union(by[&b].iter().map(|s| (s.start_ns, s.end_ns)).collect());
            let busy = |u: &[(i64, i64)]| u.iter().map(|(s, e)| e - s).sum::<i64>();
            let mut pairs: Vec<(KernelRow, KernelRow, i64)> = Vec::new();
            let (mut sa, mut sb) = (by[&a].clone(), by[&b].clone());
            sa.sort_by_key(|s| s.start_ns);
            sb.sort_by_key(|s| s.start_ns);
            let mut j0 = 0;
            for ka in &sa {
                while j0 < sb.len() && sb[j0].end_ns <= ka.start_ns {
                    j0 += 1;
                }
                for kb in sb[j0..].iter().take_while(|kb| kb.start_ns < ka.end_ns) {
                    let ov = ka.end_ns.min(kb.end_ns) - ka.start_ns.max(kb.start_ns);
                    if ov > 0 && top > 0 {
                        pairs.push(((*ka).clone(), (*kb).clone(), ov));
                    }
                }
            }
            pairs.sort_by_key(|p| std::cmp::Reverse(p.2));
            pairs.truncate(top);
            out.push(PairOverlap {
                a,
                b,
                overlap_ns: intersection(&ua, &ub),
                busy_a_ns: busy(&ua),
                busy_b_ns: busy(&ub),
                top: pairs,
            });
        }
    }
    out
}

/// Solo launch times by (model, batch, share, op, launch), microseconds.
pub fn solo_launch_times(solo: &[SoloKernelRow]) -> BTreeMap<(String, u32, SoloShare, u16, u8), f64> {
    solo.iter().filter_map(|k| k.time_us.map(|t| ((k.model.clone(), k.batch, k.share, k.op, k.launch), t))).collect()
}

/// Median ratio of each tenant's launch durations in `run` to the same launch alone at the
/// tenant's share and the batch's graph size: per-kernel interference.
pub fn kernel_slowdown(
    run: &str,
    kernels: &[&KernelRow],
    tenants: &[TenantRow],
    batches: &BTreeMap<(String, u16, u32), &BatchRow>,
    solo: &BTreeMap<(String, u32, SoloShare, u16, u8), f64>,
) -> BTreeMap<u16, f64> {
    let mut ratios: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
    for k in kernels {
        let Some(Owner::Tenant(t)) = k.owner() else { continue };
        let Some(info) = tenants.iter().find(|x| x.run == run && x.tenant == t) else { continue };
        let Some(b) = batches.get(&(run.to_string(), t, k.batch)) else { continue };
        let Some(alone) = solo.get(&(info.model.clone(), b.bucket as u32, info.share, k.op, k.launch)) else {
            continue;
        };
        if *alone > 0.0 {
            ratios.entry(t).or_default().push((k.end_ns - k.start_ns) as f64 / 1e3 / alone);
        }
    }
    ratios.into_iter().map(|(t, v)| (t, coloc_kernels::stats::median_of(&v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::LaunchKind;

    fn k(tenant: u16, op: u16, start_ns: i64, end_ns: i64) -> KernelRow {
        KernelRow {
            run: "r".into(),
            tenant: Some(tenant),
            aggressor: None,
            batch: 0,
            op,
            launch: 0,
            kind: LaunchKind::Coloc,
            start_ns,
            end_ns,
        }
    }

    #[test]
    fn union_merges_touching_and_nested_intervals() {
        assert_eq!(union(vec![(5, 7), (0, 2), (1, 3), (6, 6), (10, 12)]), vec![(0, 3), (5, 7), (10, 12)]);
    }

    #[test]
    fn overlap_of_two_tenants_is_the_intersection_of_their_busy_time() {
        let spans = [k(0, 0, 0, 10), k(0, 1, 20, 30), k(1, 0, 5, 25)];
        let refs: Vec<&KernelRow> = spans.iter().collect();
        let o = overlaps(&refs, 3);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].overlap_ns, 10); // [5,10) and [20,25)
        assert_eq!((o[0].busy_a_ns, o[0].busy_b_ns), (20, 20));
        assert_eq!(o[0].top.len(), 2);
        assert_eq!(o[0].top[0].2, 5);
    }

    #[test]
    fn back_to_back_kernels_do_not_overlap() {
        let spans = [k(0, 0, 0, 10), k(1, 0, 10, 20), k(0, 1, 20, 30)];
        let refs: Vec<&KernelRow> = spans.iter().collect();
        assert_eq!(overlaps(&refs, 3)[0].overlap_ns, 0);
    }
}
