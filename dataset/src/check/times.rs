//! Request times, the clock, and the stability of queues.

use std::collections::{BTreeMap, BTreeSet};

use super::{Finding, Invariant, Problems, Tables};
use crate::rows::{RequestRow, TenantRow};
use crate::stability;

fn tenants(t: &Tables) -> BTreeMap<(&str, u16), &TenantRow> {
    t.tenants.iter().map(|r| ((r.run.as_str(), r.tenant), r)).collect()
}

/// Each completed request's parts in order and adding up; the SLO flag as its tenant's SLO
/// says; requests never served have no times after arrival.
pub fn request_times(t: &Tables) -> Finding {
    let by_tenant = tenants(t);
    let mut order = Problems::new("request(s) whose times are out of order or do not add up");
    let mut slo = Problems::new("request(s) whose slo_met disagrees with their latency and SLO");
    let mut unknown = Problems::new("request(s) of a tenant the tenants table does not have");
    for r in &t.requests {
        let Some(tenant) = by_tenant.get(&(r.run.as_str(), r.tenant)) else {
            unknown.push(|| format!("{} tenant {} request {}", r.run, r.tenant, r.request));
            continue;
        };
        if !times_add_up(r) {
            order.push(|| format!("{} tenant {} request {}: {r:?}", r.run, r.tenant, r.request));
        }
        let met = r.latency_ns.is_some_and(|l| l as f64 / 1e6 <= tenant.slo_ms);
        if met != r.slo_met {
            slo.push(|| format!("{} tenant {} request {}", r.run, r.tenant, r.request));
        }
    }
    let mut problems = Vec::new();
    for p in [order, slo, unknown] {
        p.into_lines(&mut problems);
    }
    Finding::new(Invariant::RequestTimes, t.requests.len(), problems)
}

/// Formed after arrival, end after start (both on the GPU's clock), the four parts as their
/// definitions say; a request never served has nothing after its arrival.
fn times_add_up(r: &RequestRow) -> bool {
    match (r.formed_ns, r.start_ns, r.end_ns, r.noticed_ns) {
        (Some(f), Some(s), Some(e), Some(_)) => {
            f >= r.arrival_ns
                && e >= s
                && r.batch.is_some()
                && r.queue_wait_ns == Some(f - r.arrival_ns)
                && r.dispatch_wait_ns == Some(s - f)
                && r.gpu_ns == Some(e - s)
                && r.latency_ns == Some(e - r.arrival_ns)
        }
        (None, None, None, None) => {
            r.batch.is_none()
                && r.queue_wait_ns.is_none()
                && r.dispatch_wait_ns.is_none()
                && r.gpu_ns.is_none()
                && r.latency_ns.is_none()
        }
        _ => false,
    }
}

/// No batch noticed by the host before its last kernel ended, and none started on the GPU
/// before the host formed it, beyond the uncertainty of the tenant's clock map.
pub fn clock(t: &Tables) -> Finding {
    let by_tenant = tenants(t);
    let mut early_notice =
        Problems::new("batch(es) noticed before their last kernel ended, beyond the clock's uncertainty");
    let mut early_start =
        Problems::new("batch(es) started on the GPU before they were formed, beyond the clock's uncertainty");
    let mut unknown = Problems::new("batch(es) of a tenant the tenants table does not have");
    for b in &t.batches {
        let Some(tenant) = by_tenant.get(&(b.run.as_str(), b.tenant)) else {
            unknown.push(|| format!("{} tenant {} batch {}", b.run, b.tenant, b.batch));
            continue;
        };
        let u = tenant.clock_uncertainty_ns;
        if b.noticed_ns < b.end_ns - u {
            early_notice.push(|| {
                format!(
                    "{} tenant {} batch {}: {:.2} us early (uncertainty {:.2} us)",
                    b.run,
                    b.tenant,
                    b.batch,
                    (b.end_ns - b.noticed_ns) as f64 / 1e3,
                    u as f64 / 1e3
                )
            });
        }
        if b.start_ns < b.formed_ns - u {
            early_start.push(|| {
                format!(
                    "{} tenant {} batch {}: {:.2} us early (uncertainty {:.2} us)",
                    b.run,
                    b.tenant,
                    b.batch,
                    (b.formed_ns - b.start_ns) as f64 / 1e3,
                    u as f64 / 1e3
                )
            });
        }
    }
    let mut problems = Vec::new();
    for p in [early_notice, early_start, unknown] {
        p.into_lines(&mut problems);
    }
    Finding::new(Invariant::Clock, t.batches.len(), problems)
}

/// Every VALID run's tenants judged again from their requests.
pub fn stable_queues(t: &Tables, dropping: &BTreeSet<&str>) -> Finding {
    let valid = t.valid_runs();
    // runs whose scheduler drops what it cannot serve in time: their unserved requests were
    // dropped, not left waiting
    let drops: BTreeSet<&str> =
        t.runs.iter().filter(|r| dropping.contains(r.scenario.as_str())).map(|r| r.run.as_str()).collect();
    let window: BTreeMap<&str, i64> = t.runs.iter().filter_map(|r| r.window_ns.map(|w| (r.run.as_str(), w))).collect();
    let mut per_tenant: BTreeMap<(&str, u16), Vec<stability::Wait>> = BTreeMap::new();
    for r in t.requests.iter().filter(|r| valid.contains(r.run.as_str()) && !r.warmup) {
        if r.start_ns.is_none() && drops.contains(r.run.as_str()) {
            continue;
        }
        per_tenant
            .entry((r.run.as_str(), r.tenant))
            .or_default()
            .push((r.arrival_ns, r.start_ns.map(|s| s - r.arrival_ns)));
    }
    let mut unstable = Problems::new("VALID tenant(s) whose queue was not stable");
    let mut checked = 0;
    for tenant in t.tenants.iter().filter(|x| valid.contains(x.run.as_str())) {
        let (Some(reqs), Some(&w)) =
            (per_tenant.get(&(tenant.run.as_str(), tenant.tenant)), window.get(tenant.run.as_str()))
        else {
            continue;
        };
        checked += 1;
        let waits = stability::sub_window_waits_ms(reqs, w, w);
        let scale = stability::wait_scale_ms(tenant.max_wait_ms, tenant.gpu_p50_ms, tenant.solo_share_gpu_ms);
        if let Some(why) = stability::judge(&waits, scale) {
            unstable.push(|| format!("{} tenant {}: {}", tenant.run, tenant.name, why.reason()));
        }
    }
    let mut problems = Vec::new();
    unstable.into_lines(&mut problems);
    Finding::new(Invariant::StableQueues, checked, problems)
}
