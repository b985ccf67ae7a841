//! On one stream a batch right after another model's batch runs slower than its solo profile:
//! the model before it has evicted its weights from the L2 (mobilenet_v2 b1: 1.11-1.12x on four
//! H200s, 1.00x after its own batch; `docs/schedulers.md`). This estimates that factor per
//! (model, batch) from a measured dataset's one-stream runs, for the simulator. Like the
//! simulator it counts any other tenant's batch before it, as each tenant has its own weights.

use std::collections::BTreeMap;
use std::path::Path;

use coloc_dataset::Dataset;
use coloc_dataset::check::{Tables, one_stream_tenants};
use coloc_harness::solo::SwitchFactors;

use crate::error::Result;

/// Batches a (model, batch) needs after another model's before its factor is estimated.
pub const MIN_SWITCHED: usize = 50;

/// Per (model, batch): the median GPU time of its one-stream batches that ran right after
/// another tenant's batch, over its whole-GPU solo profile, at least 1 (nothing runs beside a
/// batch on one stream). Runs with an aggressor, and runs any of whose one-stream tenants
/// disagree with their profile (`coloc dataset check`'s state change), are left out.
pub fn from_dataset(dir: &Path) -> Result<SwitchFactors> {
    let ds = Dataset::open(dir)?;
    let t = Tables::load(&ds)?;
    let tenants = one_stream_tenants(&t);
    let mut profiled: BTreeMap<(&str, u16), f64> = BTreeMap::new();
    let mut clean: BTreeMap<&str, bool> = BTreeMap::new();
    for x in &tenants {
        profiled.insert((x.model.as_str(), x.bucket), x.profiled_us);
        *clean.entry(x.run.as_str()).or_insert(true) &= x.agrees();
    }
    let model: BTreeMap<(&str, u16), &str> =
        t.tenants.iter().map(|x| ((x.run.as_str(), x.tenant), x.model.as_str())).collect();
    let mut by_run: BTreeMap<&str, Vec<&coloc_dataset::rows::BatchRow>> = BTreeMap::new();
    for b in t.batches.iter().filter(|b| b.start_ns >= 0 && clean.get(b.run.as_str()) == Some(&true)) {
        by_run.entry(b.run.as_str()).or_default().push(b);
    }
    let mut switched: BTreeMap<(&str, u16), Vec<f64>> = BTreeMap::new();
    for batches in by_run.values_mut() {
        batches.sort_by_key(|b| b.start_ns);
        for w in batches.windows(2).filter(|w| w[0].tenant != w[1].tenant) {
            let Some(&m) = model.get(&(w[1].run.as_str(), w[1].tenant)) else { continue };
            switched.entry((m, w[1].bucket)).or_default().push((w[1].end_ns - w[1].start_ns) as f64 / 1e3);
        }
    }
    let mut factors = SwitchFactors::default();
    for ((m, bucket), mut us) in switched {
        let Some(&profile) = profiled.get(&(m, bucket)) else { continue };
        if us.len() < MIN_SWITCHED {
            continue;
        }
        let mid = us.len() / 2;
        let median = *us.select_nth_unstable_by(mid, f64::total_cmp).1;
        factors.insert(m, u32::from(bucket), (median / profile).max(1.0));
    }
    Ok(factors)
}
