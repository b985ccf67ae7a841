//! coloc's launch times against an independent clock: Nsight Compute's `gpu__time_duration` of
//! the same kernels (the solo counters of `coloc measure --ncu`). A launch of ours is timed by
//! its own stamps (first block in to last block out), which sit inside ncu's duration; a cuBLAS
//! call by the stamps around it, which hold ncu's duration of its kernels plus the launch gaps.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rows::LaunchKind;
use crate::solo_rows::{SoloCounterRow, SoloKernelRow, SoloNodeRow};
use coloc_workloads::scenario::SoloShare;

/// ncu's metric of a kernel's duration.
pub const DURATION_METRIC: &str = "gpu__time_duration.sum";

/// One launch timed both ways.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchTiming {
    pub model: String,
    pub batch: u32,
    pub op: u16,
    pub launch: u8,
    pub kind: LaunchKind,
    pub name: String,
    /// coloc's median, and ncu's duration summed over the launch's kernels, microseconds.
    pub coloc_us: f64,
    pub ncu_us: f64,
}

/// Every solo launch on the whole device that ncu timed too.
pub fn compare(kernels: &[SoloKernelRow], nodes: &[SoloNodeRow], counters: &[SoloCounterRow]) -> Vec<LaunchTiming> {
    let unit = |u: &str| match u {
        "ns" | "nsecond" => 1e-3,
        "us" | "usecond" => 1.0,
        "ms" | "msecond" => 1e3,
        _ => f64::NAN,
    };
    let node_us: BTreeMap<(&str, u32, u16, u16), f64> = counters
        .iter()
        .filter(|c| c.metric == DURATION_METRIC)
        .map(|c| ((c.model.as_str(), c.batch, c.op, c.node), c.value * unit(&c.unit)))
        .collect();
    let mut per_launch: BTreeMap<(&str, u32, u16, u8), f64> = BTreeMap::new();
    for n in nodes {
        let (Some(launch), Some(us)) = (n.launch, node_us.get(&(n.model.as_str(), n.batch, n.op, n.node))) else {
            continue;
        };
        *per_launch.entry((n.model.as_str(), n.batch, n.op, launch)).or_default() += us;
    }
    kernels
        .iter()
        .filter(|k| k.share == SoloShare::Device)
        .filter_map(|k| {
            let ncu = per_launch.get(&(k.model.as_str(), k.batch, k.op, k.launch))?;
            Some(LaunchTiming {
                model: k.model.clone(),
                batch: k.batch,
                op: k.op,
                launch: k.launch,
                kind: k.kind,
                name: k.name.clone(),
                coloc_us: k.time_us?,
                ncu_us: *ncu,
            })
        })
        .collect()
}
