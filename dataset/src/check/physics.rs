//! What the device allows: no time below the floor the measured ceilings set for its cost,
//! and a batch's kernel launches all present, in order, covering its span.

use std::collections::BTreeMap;

use coloc_kernels::ceilings::Ceilings;
use coloc_kernels::ops::Cost;
use coloc_workloads::scenario::PartitionKind;

use super::{Finding, Invariant, Problems, Tables};
use crate::rows::{KernelRow, Owner};

/// A time may be this much below the floor the ceilings set (their own measurement error).
pub const CEILING_SLACK: f64 = 1.05;

/// The longest gap between consecutive launches of a batch whose tenant had its SMs to
/// itself (time-sliced, green contexts): graph replay leaves about a microsecond between
/// kernels; more means a launch is missing or the stamps are wrong.
pub const MAX_LAUNCH_GAP_NS: i64 = 20_000;

fn cost(flops: f64, dram_bytes: f64, unit: coloc_kernels::ops::ComputeUnit) -> Cost {
    Cost { flops, macs: 0.0, dram_bytes, unit }
}

/// Solo operators, solo launches and every co-located kernel launch against the floor.
pub fn ceilings(c: &Ceilings, t: &Tables) -> Finding {
    let mut ops = Problems::new("solo operator(s) faster than the ceilings allow");
    let mut solo = Problems::new("solo kernel launch(es) faster than the ceilings allow");
    let mut coloc = Problems::new("co-located kernel launch(es) faster than the ceilings allow");
    let mut unknown = Problems::new("kernel launch(es) with no solo launch to take their cost from");
    let too_fast = |time_us: f64, floor_s: f64| time_us * 1e-6 * CEILING_SLACK < floor_s;
    for o in &t.solo_ops {
        let floor = c.floor_s(&cost(o.flops, o.dram_bytes, o.unit));
        if let Some(us) = o.time_us.filter(|us| too_fast(*us, floor)) {
            ops.push(|| {
                format!(
                    "{} b{} {} op {} ({}): {us:.2} us, floor {:.2} us",
                    o.model,
                    o.batch,
                    o.share.label(),
                    o.op,
                    o.layer,
                    floor * 1e6
                )
            });
        }
    }
    let mut launch_cost: BTreeMap<(&str, u32, u16, u8), Cost> = BTreeMap::new();
    for k in &t.solo_kernels {
        let c0 = cost(k.flops, k.dram_bytes, k.unit);
        launch_cost.insert((k.model.as_str(), k.batch, k.op, k.launch), c0);
        let floor = c.floor_s(&c0);
        if let Some(us) = k.time_us.filter(|us| too_fast(*us, floor)) {
            solo.push(|| {
                format!(
                    "{} b{} {} op {} launch {} ({}): {us:.2} us, floor {:.2} us",
                    k.model,
                    k.batch,
                    k.share.label(),
                    k.op,
                    k.launch,
                    k.name,
                    floor * 1e6
                )
            });
        }
    }
    let model: BTreeMap<(&str, u16), &str> =
        t.tenants.iter().map(|x| ((x.run.as_str(), x.tenant), x.model.as_str())).collect();
    let bucket: BTreeMap<(&str, u16, u32), u32> =
        t.batches.iter().map(|b| ((b.run.as_str(), b.tenant, b.batch), b.bucket as u32)).collect();
    let mut checked = t.solo_ops.len() + t.solo_kernels.len();
    for k in &t.kernels {
        let Some(Owner::Tenant(tenant)) = k.owner() else { continue };
        checked += 1;
        let key = (k.run.as_str(), tenant);
        let found = model
            .get(&key)
            .zip(bucket.get(&(k.run.as_str(), tenant, k.batch)))
            .and_then(|(m, b)| launch_cost.get(&(*m, *b, k.op, k.launch)));
        let Some(c0) = found else {
            unknown.push(|| format!("{} tenant {tenant} batch {} op {} launch {}", k.run, k.batch, k.op, k.launch));
            continue;
        };
        let floor = c.floor_s(c0);
        let us = (k.end_ns - k.start_ns) as f64 / 1e3;
        if too_fast(us, floor) {
            coloc.push(|| {
                format!(
                    "{} tenant {tenant} batch {} op {} launch {}: {us:.2} us, floor {:.2} us",
                    k.run,
                    k.batch,
                    k.op,
                    k.launch,
                    floor * 1e6
                )
            });
        }
    }
    let mut problems = Vec::new();
    for p in [ops, solo, coloc, unknown] {
        p.into_lines(&mut problems);
    }
    Finding::new(Invariant::Ceilings, checked, problems)
}

/// Every sampled batch has every launch of its graph, in order, from its start to its end,
/// without overlap; where the tenant had its SMs to itself, no gap is longer than
/// [`MAX_LAUNCH_GAP_NS`]. Solo profiles: the launches' medians fit inside the replay.
pub fn coverage(t: &Tables) -> Finding {
    let partition: BTreeMap<&str, PartitionKind> = t.runs.iter().map(|r| (r.run.as_str(), r.partition)).collect();
    let model: BTreeMap<(&str, u16), &str> =
        t.tenants.iter().map(|x| ((x.run.as_str(), x.tenant), x.model.as_str())).collect();
    let mut launches_of: BTreeMap<(&str, u32), usize> = BTreeMap::new();
    for k in &t.solo_kernels {
        if k.share == coloc_workloads::scenario::SoloShare::Device {
            *launches_of.entry((k.model.as_str(), k.batch)).or_default() += 1;
        }
    }
    let mut by_batch: BTreeMap<(&str, u16, u32), Vec<&KernelRow>> = BTreeMap::new();
    for k in &t.kernels {
        if let Some(Owner::Tenant(tenant)) = k.owner() {
            by_batch.entry((k.run.as_str(), tenant, k.batch)).or_default().push(k);
        }
    }
    let mut missing = Problems::new("sampled batch(es) without every launch of their graph");
    let mut span = Problems::new("sampled batch(es) whose launches do not start and end with the batch");
    let mut overlap = Problems::new("sampled batch(es) with launches overlapping on one stream");
    let mut gaps = Problems::new("sampled batch(es) with a gap between launches above the limit");
    let mut checked = 0;
    for b in t.batches.iter().filter(|b| b.sampled) {
        checked += 1;
        let mut ks = by_batch.remove(&(b.run.as_str(), b.tenant, b.batch)).unwrap_or_default();
        ks.sort_by_key(|k| (k.op, k.launch));
        let expected = model.get(&(b.run.as_str(), b.tenant)).and_then(|m| launches_of.get(&(*m, b.bucket as u32)));
        if expected != Some(&ks.len()) {
            missing.push(|| {
                format!(
                    "{} tenant {} batch {}: {} launches, the graph has {expected:?}",
                    b.run,
                    b.tenant,
                    b.batch,
                    ks.len()
                )
            });
            continue;
        }
        let (first, last) = (ks[0], ks[ks.len() - 1]);
        if first.start_ns != b.start_ns || last.end_ns != b.end_ns {
            span.push(|| format!("{} tenant {} batch {}", b.run, b.tenant, b.batch));
        }
        let dedicated = matches!(partition.get(b.run.as_str()), Some(PartitionKind::TimeSliced | PartitionKind::Green));
        let mut widest = 0;
        for w in ks.windows(2) {
            let gap = w[1].start_ns - w[0].end_ns;
            if gap < 0 {
                overlap.push(|| {
                    format!("{} tenant {} batch {} op {} launch {}", b.run, b.tenant, b.batch, w[1].op, w[1].launch)
                });
                break;
            }
            widest = widest.max(gap);
        }
        if dedicated && widest > MAX_LAUNCH_GAP_NS {
            gaps.push(|| format!("{} tenant {} batch {}: {:.1} us", b.run, b.tenant, b.batch, widest as f64 / 1e3));
        }
    }
    let mut orphans = Problems::new("kernel launch(es) of a batch the batches table does not have as sampled");
    for ((run, tenant, batch), _) in by_batch {
        orphans.push(|| format!("{run} tenant {tenant} batch {batch}"));
    }
    let mut solo =
        Problems::new("solo profile(s) whose launches take longer than the replay, or leave too much of it uncovered");
    let mut launch_sum: BTreeMap<(&str, u32, coloc_workloads::scenario::SoloShare), (f64, usize)> = BTreeMap::new();
    for k in &t.solo_kernels {
        let e = launch_sum.entry((k.model.as_str(), k.batch, k.share)).or_default();
        e.0 += k.time_us.unwrap_or(f64::NAN);
        e.1 += 1;
    }
    for m in &t.solo_models {
        checked += 1;
        let Some(&(sum_us, n)) = launch_sum.get(&(m.model.as_str(), m.batch, m.share)) else {
            solo.push(|| format!("{} b{} {}: no launches", m.model, m.batch, m.share.label()));
            continue;
        };
        // medians of launches that ran back to back add up to about the median span; the
        // launches cannot take longer than the span, nor leave more than the gaps uncovered
        let fits = sum_us <= m.stamped_p50_us * 1.02 + 1.0
            && m.stamped_p50_us - sum_us <= n as f64 * MAX_LAUNCH_GAP_NS as f64 / 1e3
            && m.stamped_p50_us <= m.latency_p50_us + 2.0;
        if !fits {
            solo.push(|| {
                format!(
                    "{} b{} {}: launches {sum_us:.1} us, stamps {:.1} us, events {:.1} us",
                    m.model,
                    m.batch,
                    m.share.label(),
                    m.stamped_p50_us,
                    m.latency_p50_us
                )
            });
        }
    }
    let mut problems = Vec::new();
    for p in [missing, span, overlap, gaps, orphans, solo] {
        p.into_lines(&mut problems);
    }
    Finding::new(Invariant::Coverage, checked, problems)
}
