//! Reading a measured dataset back: which kernels of different tenants ran at the same time,
//! and how much slower each kernel ran than alone. Kernels whose start was inferred (an
//! operator that begins in cuBLAS) are left out of overlap sums: their start is only a lower
//! bound (see docs/dataset.md).

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use serde::Serialize;

use crate::dataset::{bools, opt_i64s, read_parquet, strs};
use crate::error::{Error, Result};

/// One kernel record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    pub tenant: u16,
    pub batch: u32,
    pub op: u16,
    pub start_ns: i64,
    pub end_ns: i64,
}

/// Time during which kernels of two tenants (or aggressors) ran together.
#[derive(Clone, Debug, Serialize)]
pub struct PairOverlap {
    pub a: u16,
    pub b: u16,
    /// Length of the intersection of the two tenants' busy time, ns.
    pub overlap_ns: i64,
    pub busy_a_ns: i64,
    pub busy_b_ns: i64,
    /// The kernel pairs that overlapped longest: (a's span, b's span, overlap ns).
    pub top: Vec<(Span, Span, i64)>,
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

/// Overlap of every pair of tenants among `spans` (one run's kernels, inferred starts removed).
pub fn overlaps(spans: &[Span], top: usize) -> Vec<PairOverlap> {
    let mut by: BTreeMap<u16, Vec<&Span>> = BTreeMap::new();
    for s in spans {
        by.entry(s.tenant).or_default().push(s);
    }
    let ids: Vec<u16> = by.keys().copied().collect();
    let mut out = Vec::new();
    for (x, &a) in ids.iter().enumerate() {
        for &b in &ids[x + 1..] {
            let ua = union(by[&a].iter().map(|s| (s.start_ns, s.end_ns)).collect());
            let ub = union(by[&b].iter().map(|s| (s.start_ns, s.end_ns)).collect());
            let busy = |u: &[(i64, i64)]| u.iter().map(|(s, e)| e - s).sum::<i64>();
            let mut pairs: Vec<(Span, Span, i64)> = Vec::new();
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
                    if ov > 0 {
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

/// A column as integers, nulls as `i64::MIN` (only optional columns have them).
fn i64s(df: &DataFrame, name: &str) -> Result<Vec<i64>> {
    Ok(opt_i64s(df, name)?.into_iter().map(|v| v.unwrap_or(i64::MIN)).collect())
}

/// Every run's kernel spans (inferred starts left out), by run key.
pub fn kernel_spans(dir: &Path) -> Result<BTreeMap<String, Vec<Span>>> {
    let df = read_parquet(&dir.join("kernels.parquet"))?;
    let (run, tenant, batch, op, start, end, inferred) = (
        strs(&df, "run")?,
        i64s(&df, "tenant")?,
        i64s(&df, "batch")?,
        i64s(&df, "op")?,
        i64s(&df, "start_ns")?,
        i64s(&df, "end_ns")?,
        bools(&df, "start_inferred")?,
    );
    let mut out: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for i in 0..run.len() {
        if inferred[i] {
            continue;
        }
        out.entry(run[i].clone()).or_default().push(Span {
            tenant: tenant[i] as u16,
            batch: batch[i] as u32,
            op: op[i] as u16,
            start_ns: start[i],
            end_ns: end[i],
        });
    }
    Ok(out)
}

/// Names of tenants per run, and the model and solo per-op time of each (model, op) used.
pub struct Lookup {
    /// (run, tenant) -> (name, model or aggressor work, max batch)
    pub tenant_model: BTreeMap<(String, u16), (String, String, u32)>,
    /// (model, batch, op) -> (layer, kind, solo time in us)
    pub op_name: BTreeMap<(String, u32, u16), (String, String, f64)>,
    /// (run, tenant, batch) -> the batch size of the graph that ran it
    pub bucket: BTreeMap<(String, u16, u32), u32>,
    pub partition: BTreeMap<String, String>,
}

pub fn lookup(dir: &Path) -> Result<Lookup> {
    let t = read_parquet(&dir.join("tenants.parquet"))?;
    let (run, idx, name, model, mb) =
        (strs(&t, "run")?, i64s(&t, "tenant")?, strs(&t, "name")?, strs(&t, "model")?, i64s(&t, "max_batch")?);
    let mut tenant_model = BTreeMap::new();
    for i in 0..run.len() {
        tenant_model.insert((run[i].clone(), idx[i] as u16), (name[i].clone(), model[i].clone(), mb[i] as u32));
    }
    if let Ok(a) = read_parquet(&dir.join("aggressors.parquet")) {
        let (run, idx, name, work) = (strs(&a, "run")?, i64s(&a, "aggressor")?, strs(&a, "name")?, strs(&a, "work")?);
        for i in 0..run.len() {
            tenant_model.insert((run[i].clone(), idx[i] as u16), (name[i].clone(), work[i].clone(), 0));
        }
    }
    let o = read_parquet(&dir.join("solo_ops.parquet"))?;
    let (model, batch, op, layer, kind, time) =
        (strs(&o, "model")?, i64s(&o, "batch")?, i64s(&o, "op")?, strs(&o, "layer")?, strs(&o, "kind")?, {
            let c = o.column("time_us").map_err(|e| Error::invalid("time_us", e.to_string()))?;
            c.f64()
                .map_err(|e| Error::invalid("time_us", e.to_string()))?
                .iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect::<Vec<_>>()
        });
    let mut op_name = BTreeMap::new();
    for i in 0..model.len() {
        op_name.insert((model[i].clone(), batch[i] as u32, op[i] as u16), (layer[i].clone(), kind[i].clone(), time[i]));
    }
    let b = read_parquet(&dir.join("batches.parquet"))?;
    let (run, tenant, batch, size) = (strs(&b, "run")?, i64s(&b, "tenant")?, i64s(&b, "batch")?, i64s(&b, "bucket")?);
    let bucket =
        (0..run.len()).map(|i| ((run[i].clone(), tenant[i] as u16, batch[i] as u32), size[i] as u32)).collect();
    let r = read_parquet(&dir.join("runs.parquet"))?;
    let partition = strs(&r, "run")?.into_iter().zip(strs(&r, "partition")?).collect();
    Ok(Lookup { tenant_model, op_name, bucket, partition })
}

/// Median ratio of each tenant's kernel durations to the same operator alone at the same batch
/// size.
pub fn kernel_slowdown(run: &str, spans: &[Span], lk: &Lookup) -> BTreeMap<u16, f64> {
    let mut ratios: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
    for s in spans {
        let Some((_, model, _)) = lk.tenant_model.get(&(run.to_string(), s.tenant)) else { continue };
        let Some(bucket) = lk.bucket.get(&(run.to_string(), s.tenant, s.batch)) else { continue };
        let Some((_, _, solo_us)) = lk.op_name.get(&(model.clone(), *bucket, s.op)) else { continue };
        if *solo_us > 0.0 {
            ratios.entry(s.tenant).or_default().push((s.end_ns - s.start_ns) as f64 / 1e3 / solo_us);
        }
    }
    ratios.into_iter().map(|(t, v)| (t, coloc_kernels::stats::median_of(&v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(tenant: u16, op: u16, start_ns: i64, end_ns: i64) -> Span {
        Span { tenant, batch: 0, op, start_ns, end_ns }
    }

    #[test]
    fn union_merges_touching_and_nested_intervals() {
        assert_eq!(union(vec![(5, 7), (0, 2), (1, 3), (6, 6), (10, 12)]), vec![(0, 3), (5, 7), (10, 12)]);
    }

    #[test]
    fn overlap_of_two_tenants_is_the_intersection_of_their_busy_time() {
        let spans = [span(0, 0, 0, 10), span(0, 1, 20, 30), span(1, 0, 5, 25)];
        let o = overlaps(&spans, 3);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].overlap_ns, 10); // [5,10) and [20,25)
        assert_eq!((o[0].busy_a_ns, o[0].busy_b_ns), (20, 20));
        assert_eq!(o[0].top.len(), 2);
        assert_eq!(o[0].top[0].2, 5);
    }

    #[test]
    fn back_to_back_kernels_do_not_overlap() {
        let spans = [span(0, 0, 0, 10), span(1, 0, 10, 20), span(0, 1, 20, 30)];
        assert_eq!(overlaps(&spans, 3)[0].overlap_ns, 0);
    }
}
