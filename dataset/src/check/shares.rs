//! Interference is measured against the tenant alone at its own share, so every co-located
//! tenant needs a solo profile at that share, and the profile must have been granted the SMs
//! the tenant was (else the comparison mixes two shares).

use std::collections::{BTreeMap, BTreeSet};

use coloc_workloads::scenario::SoloShare;

use super::{Finding, Invariant, Problems, Tables};

pub fn solo_at_share(t: &Tables) -> Finding {
    let solo: BTreeMap<(&str, u32, SoloShare), u32> =
        t.solo_models.iter().map(|m| ((m.model.as_str(), m.batch, m.share), m.granted_sms)).collect();
    let mut per_run: BTreeMap<&str, usize> = BTreeMap::new();
    for x in &t.tenants {
        *per_run.entry(x.run.as_str()).or_default() += 1;
    }
    let with_aggressors: BTreeSet<&str> = t.aggressors.iter().map(|a| a.run.as_str()).collect();
    let mut missing = Problems::new("co-located tenant(s) without a solo profile at their share");
    let mut granted = Problems::new("co-located tenant(s) granted other SMs than their solo profile");
    let mut asked = Problems::new("tenant(s) granted other SMs than their share asked for");
    let mut checked = 0;
    for x in &t.tenants {
        if let Some(sms) = x.sms.filter(|s| *s != x.granted_sms) {
            asked.push(|| format!("{} tenant {}: asked for {sms} SMs, granted {}", x.run, x.name, x.granted_sms));
        }
        let colocated =
            per_run.get(x.run.as_str()).copied().unwrap_or(0) > 1 || with_aggressors.contains(x.run.as_str());
        if !colocated {
            continue;
        }
        checked += 1;
        match solo.get(&(x.model.as_str(), x.max_batch, x.share)) {
            None => missing
                .push(|| format!("{} tenant {} ({} b{} {})", x.run, x.name, x.model, x.max_batch, x.share.label())),
            Some(g) if *g != x.granted_sms => {
                granted.push(|| format!("{} tenant {}: {} SMs, solo {g}", x.run, x.name, x.granted_sms))
            }
            Some(_) => {}
        }
    }
    let mut problems = Vec::new();
    for p in [missing, granted, asked] {
        p.into_lines(&mut problems);
    }
    Finding::new(Invariant::SoloAtShare, checked, problems)
}
