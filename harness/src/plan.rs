//! Plans of one repetition of a scenario, all built before anything is timed (as MLPerf
//! LoadGen builds its whole schedule first): each tenant's arrival schedule from its own seeds,
//! its rate scaled from solo capacity, its batching policy and SLO from solo latency; each
//! aggressor's work and window. The tenants' and aggressors' rows are started here too, with
//! what the plan knows.

use coloc_dataset::rows::{AggressorRow, ArrivalKind, BatchingPolicy, TenantRow};
use coloc_workloads::arrival::{ArrivalProcess, Schedule};
use coloc_workloads::batcher::BatchPolicy;
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::{AggressorWork, Batching, DeviceLimits, LoadOf, Scenario, SoloShare};
use std::path::Path;

use crate::aggressor::{AggressorLoad, AggressorPlan};
use crate::error::{Error, Result};
use crate::solo::SoloProfiles;
use crate::tenant::{Arrivals, TenantPlan};

/// Launches are kept for batches formed in this many windows, spread evenly over the measured
/// window and together covering the scenario's `kernel_sample` fraction of it (the same windows
/// for every tenant of a run, so every overlap between tenants inside them is in the data).
pub const SAMPLE_WINDOWS: usize = 8;

/// Closed loops may run on past their duration, to reach `min_queries`, until this many
/// durations have passed.
pub const CLOSED_LOOP_CAP: f64 = 5.0;

/// The sampling windows of a run, ns from its start.
pub fn sample_windows(warmup_s: f64, duration_s: f64, fraction: f64) -> Vec<(i64, i64)> {
    let (w, d) = ((warmup_s * 1e9) as i64, (duration_s * 1e9) as i64);
    let width = (duration_s * 1e9 * fraction / SAMPLE_WINDOWS as f64) as i64;
    (0..SAMPLE_WINDOWS as i64)
        .map(|k| {
            let mid = w + d * (2 * k + 1) / (2 * SAMPLE_WINDOWS as i64);
            (mid - width / 2, mid + width / 2)
        })
        .collect()
}

/// Plans and rows of a scenario's tenants and aggressors.
pub struct Plans {
    pub tenants: Vec<TenantPlan>,
    pub tenant_rows: Vec<TenantRow>,
    pub aggressors: Vec<AggressorPlan>,
    pub aggressor_rows: Vec<AggressorRow>,
}

fn model_seed(name: &str) -> u64 {
    coloc_workloads::scenario::fnv64(name.as_bytes())
}

/// What planning a run needs: no GPU, so that a simulator plans exactly as the harness does.
#[derive(Clone, Copy)]
pub struct PlanInputs<'a> {
    pub limits: &'a DeviceLimits,
    pub solo: &'a SoloProfiles,
    /// Model files and traces are relative to it.
    pub base_dir: &'a Path,
}

/// Plans repetition `rep` of `scenario`.
/// (batch size, solo GPU time in us) of every profile of `model` on `share` at one of `buckets`
/// (the sizes the tenant has a graph for), ascending.
fn profile(solo: &SoloProfiles, model: &str, share: SoloShare, buckets: &[usize]) -> Vec<(usize, f64)> {
    let mut sizes: Vec<(usize, f64)> = solo
        .models
        .iter()
        .filter(|r| r.model == model && r.share == share && buckets.contains(&(r.batch as usize)))
        .map(|r| (r.batch as usize, r.stamped_p50_us))
        .collect();
    sizes.sort_by_key(|s| s.0);
    sizes.dedup_by_key(|s| s.0);
    sizes
}

pub fn plan(env: &PlanInputs, scenario: &Scenario, rep: usize) -> Result<Plans> {
    let ctx = format!("scenario `{}`", scenario.name);
    let warmup_ns = (scenario.warmup_s * 1e9) as i64;
    let total_s = scenario.warmup_s + scenario.duration_s;
    let mut plans = Vec::new();
    let mut rows = Vec::new();
    for (i, t) in scenario.tenants.iter().enumerate() {
        let tctx = format!("{ctx}, tenant `{}`", t.name);
        let (spec, _) = ModelSpec::resolve(&t.model, env.base_dir)?;
        let max_batch = t.batching.max_batch();
        let share = t.share.solo(scenario.partition);
        let find = |share: SoloShare| {
            env.solo.find(&spec.name, max_batch, share).ok_or_else(|| {
                Error::invalid(
                    &tctx,
                    format!("no solo profile of {} at batch {max_batch} ({})", spec.name, share.label()),
                )
            })
        };
        let (device, at_share) = (find(SoloShare::Device)?, find(share)?);
        let solo_device_ms = device.latency_p50_us / 1e3;
        let capacity = match t.load_of {
            LoadOf::Partition => at_share.capacity_rps,
            LoadOf::Gpu => device.capacity_rps,
        };
        let arrival = match t.load {
            Some(load) => t.arrival.with_rate(load * capacity, &tctx)?,
            None => t.arrival.clone(),
        };
        let rate = arrival.nominal_rate();
        let warm_queries = rate.map_or(0, |r| (r * scenario.warmup_s).ceil() as usize);
        let seeds = scenario.seeds.for_tenant(&scenario.name, i, rep);
        let schedule =
            arrival.schedule(total_s, scenario.min_queries + warm_queries + 1, seeds.schedule, env.base_dir, &tctx)?;
        let policy = BatchPolicy::new(&t.batching, solo_device_ms);
        let profile = profile(env.solo, &spec.name, share, &policy.buckets);
        let max_wait_ms = policy.max_wait_ns as f64 / 1e6;
        let slo_ms = t.slo.ms(solo_device_ms, max_wait_ms);
        let drain_ns = ((20.0 * slo_ms).clamp(1_000.0, 10_000.0) * 1e6) as i64;
        let (arrivals, scheduled, span_ns) = match schedule {
            Schedule::Open { arrivals_ns } => {
                let span = arrivals_ns.last().copied().unwrap_or(0) as i64;
                let n = arrivals_ns.len();
                (Arrivals::Open(arrivals_ns.into_iter().map(|a| a as i64).collect()), n, span)
            }
            Schedule::Closed { think_ns, .. } => {
                let stop_ns = (total_s * 1e9) as i64;
                let cap_ns = ((scenario.warmup_s + CLOSED_LOOP_CAP * scenario.duration_s) * 1e9) as i64;
                let n = think_ns.iter().map(|c| c.len()).sum();
                (Arrivals::Closed { think_ns, stop_ns, cap_ns }, n, stop_ns)
            }
        };
        plans.push(TenantPlan {
            index: i as u16,
            name: t.name.clone(),
            model: spec.clone(),
            seq: t.seq,
            context: t.context,
            policy,
            arrivals,
            warmup_ns,
            deadline_ns: span_ns.max((total_s * 1e9) as i64) + drain_ns,
            sample_windows: sample_windows(scenario.warmup_s, scenario.duration_s, scenario.kernel_sample),
            weight_seed: model_seed(&spec.name),
            input_seed: seeds.inputs,
            slo_ms,
            min_queries: scenario.min_queries,
            profile,
        });
        rows.push(TenantRow {
            run: String::new(),
            tenant: i as u16,
            name: t.name.clone(),
            model: spec.name.clone(),
            batching: match t.batching {
                Batching::Fixed { .. } => BatchingPolicy::Fixed,
                Batching::Dynamic { .. } => BatchingPolicy::Dynamic,
            },
            max_batch: max_batch as u32,
            max_wait_ms,
            arrival: ArrivalKind::from(&arrival),
            rate_rps: rate,
            clients: match arrival {
                ArrivalProcess::ClosedLoop { clients, .. } => Some(clients as u32),
                _ => None,
            },
            load: t.load,
            load_of: t.load_of,
            slo_ms,
            solo_device_ms,
            solo_device_gpu_ms: device.stamped_p50_us / 1e3,
            solo_share_gpu_ms: at_share.stamped_p50_us / 1e3,
            share,
            priority: t.share.priority,
            sms: t.share.sms,
            mps_percent: t.share.mps_percent,
            granted_sms: 0,
            clock_uncertainty_ns: 0,
            scheduled_requests: scheduled as u32,
            measured: 0,
            completed: 0,
            p50_ms: None,
            p50_lo_ms: None,
            p50_hi_ms: None,
            p99_ms: None,
            p99_lo_ms: None,
            p99_hi_ms: None,
            slo_attainment: 0.0,
            throughput_rps: 0.0,
            mean_batch_size: None,
            busy_fraction: 0.0,
            queue_wait_p50_ms: None,
            dispatch_wait_p50_ms: None,
            gpu_p50_ms: None,
            interference: None,
            interference_lo: None,
            interference_hi: None,
            share_effect: at_share.stamped_p50_us / device.stamped_p50_us,
        });
    }
    let mut aplans = Vec::new();
    let mut arows = Vec::new();
    for (i, a) in scenario.aggressors.iter().enumerate() {
        let (load, stressor, intensity, model, batch) = match &a.work {
            AggressorWork::Stressor { stressor, intensity } => {
                let s = stressor.stressor(*intensity, env.limits.sm_count, env.limits.l2_bytes);
                (AggressorLoad::Stressor(s), Some(*stressor), Some(*intensity), None, None)
            }
            AggressorWork::Model { model, batch } => {
                let (spec, _) = ModelSpec::resolve(model, env.base_dir)?;
                let name = spec.name.clone();
                (AggressorLoad::Model { model: spec, batch: *batch }, None, None, Some(name), Some(*batch as u32))
            }
        };
        aplans.push(AggressorPlan {
            index: i as u16,
            name: a.name.clone(),
            load,
            start_ns: warmup_ns + (a.start_s * 1e9) as i64,
            stop_ns: warmup_ns + (a.stop_s * 1e9) as i64,
            warmup_ns,
        });
        arows.push(AggressorRow {
            run: String::new(),
            aggressor: i as u16,
            name: a.name.clone(),
            stressor,
            intensity,
            model,
            batch,
            start_s: a.start_s,
            stop_s: a.stop_s,
            priority: a.share.priority,
            sms: a.share.sms,
            mps_percent: a.share.mps_percent,
            granted_sms: 0,
        });
    }
    Ok(Plans { tenants: plans, tenant_rows: rows, aggressors: aplans, aggressor_rows: arows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_windows_lie_inside_the_measured_window_cover_the_fraction_and_do_not_overlap() {
        for fraction in [0.1, 0.3, 1.0] {
            let w = sample_windows(0.5, 4.0, fraction);
            assert_eq!(w.len(), SAMPLE_WINDOWS);
            assert!(w[0].0 >= 500_000_000 && w.last().unwrap().1 <= 4_500_000_000);
            assert!(w.windows(2).all(|p| p[0].1 <= p[1].0));
            let covered: i64 = w.iter().map(|(a, b)| b - a).sum();
            assert!((covered as f64 / 4e9 - fraction).abs() < 1e-6, "{fraction}: {covered}");
        }
    }
}
