//! Solo L2 and DRAM utilisations per (model, batch), from Nsight Compute counters: what
//! gpulet's interference model is built on. A model's utilisation is the time-weighted mean of
//! its kernels' `lts__throughput` and `dram__throughput` (percent of peak, sustained over the
//! kernel), so it is the share of the peak the model uses over its GPU time on the whole GPU.
//! Batch sizes between two profiled ones are interpolated linearly, beyond them the nearest
//! profiled one is taken; on a share the utilisation is scaled by the share's fraction of the SMs
//! (the same bytes spread over a longer time), as gpulet scales it by the partition.

use std::collections::BTreeMap;
use std::path::Path;

use coloc_dataset::Dataset;
use coloc_dataset::solo_rows::SoloCounterRow;
use coloc_workloads::scenario::SoloShare;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const DURATION: &str = "gpu__time_duration.sum";
const L2: &str = "lts__throughput.avg.pct_of_peak_sustained_elapsed";
const DRAM: &str = "dram__throughput.avg.pct_of_peak_sustained_elapsed";

/// Fractions of the peak, 0 to 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilisation {
    pub l2: f64,
    pub dram: f64,
}

/// Solo utilisations by model and profiled batch size, and the device's SM count (to scale
/// them by a share).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilisations {
    pub sm_count: u32,
    pub by_model: BTreeMap<String, BTreeMap<u32, Utilisation>>,
}

impl Utilisations {
    /// From counter rows: every kernel's L2 and DRAM throughput weighted by its duration.
    pub fn from_rows(rows: &[SoloCounterRow], sm_count: u32) -> Result<Utilisations> {
        // (model, batch, op, node) -> (duration, l2 %, dram %)
        let mut kernels: BTreeMap<(&str, u32, u16, u16), [Option<f64>; 3]> = BTreeMap::new();
        for r in rows {
            let slot = match r.metric.as_str() {
                DURATION => 0,
                L2 => 1,
                DRAM => 2,
                _ => continue,
            };
            kernels.entry((r.model.as_str(), r.batch, r.op, r.node)).or_default()[slot] = Some(r.value);
        }
        // (model, batch) -> (sum duration, sum duration * l2, sum duration * dram)
        let mut sums: BTreeMap<(&str, u32), [f64; 3]> = BTreeMap::new();
        for ((model, batch, op, node), [d, l2, dram]) in kernels {
            let (Some(d), Some(l2), Some(dram)) = (d, l2, dram) else {
                return Err(Error::data(
                    "solo counters",
                    format!(
                        "{model} at batch {batch}, op {op} node {node}: a duration, L2 or DRAM throughput is missing"
                    ),
                ));
            };
            let s = sums.entry((model, batch)).or_default();
            s[0] += d;
            s[1] += d * l2;
            s[2] += d * dram;
        }
        let mut out = Utilisations { sm_count, by_model: BTreeMap::new() };
        for ((model, batch), [d, l2, dram]) in sums {
            if d <= 0.0 {
                return Err(Error::data("solo counters", format!("{model} at batch {batch}: no kernel time")));
            }
            let u = Utilisation { l2: l2 / d / 100.0, dram: dram / d / 100.0 };
            out.by_model.entry(model.to_string()).or_default().insert(batch, u);
        }
        if out.by_model.is_empty() {
            return Err(Error::data("solo counters", "no counter rows"));
        }
        Ok(out)
    }

    /// The counters of a dataset measured with `--ncu` (as `data/h200-counters`).
    pub fn load(dir: &Path) -> Result<Utilisations> {
        Utilisations::load_all(&[dir])
    }

    /// The counters of several such datasets together (as `data/h200-counters` for batch 1 and
    /// 8 and `data/h200-counters-b16`): they must come from devices of one SM count, and no
    /// (model, batch) may be profiled in two of them.
    pub fn load_all<P: AsRef<Path>>(dirs: &[P]) -> Result<Utilisations> {
        let mut rows: Vec<SoloCounterRow> = Vec::new();
        let mut sm_count: Option<u32> = None;
        // (model, batch) -> the dataset that profiled it
        let mut profiled: BTreeMap<(String, u32), String> = BTreeMap::new();
        for dir in dirs {
            let dir = dir.as_ref();
            let name = dir.display().to_string();
            let ds = Dataset::open(dir)?;
            let mine: Vec<SoloCounterRow> = ds.load_or_empty()?;
            if mine.is_empty() {
                return Err(Error::data(name, "no solo counters: measure it with --ncu"));
            }
            let sms = ds.manifest()?.device.sm_count;
            if let Some(first) = sm_count.filter(|s| *s != sms) {
                return Err(Error::data(name, format!("a device of {sms} SMs, the others had {first}")));
            }
            sm_count = Some(sms);
            let keys: std::collections::BTreeSet<(String, u32)> =
                mine.iter().map(|r| (r.model.clone(), r.batch)).collect();
            for key in keys {
                if let Some(other) = profiled.insert(key.clone(), name.clone()) {
                    return Err(Error::data(name, format!("{} at batch {} is profiled in {other} too", key.0, key.1)));
                }
            }
            rows.extend(mine);
        }
        let Some(sm_count) = sm_count else { return Err(Error::data("solo counters", "no dataset given")) };
        Utilisations::from_rows(&rows, sm_count)
    }

    /// Every model of `examples`, target or co-runner, has counters (or the error names the
    /// first that has none).
    pub fn cover(&self, examples: &[crate::query::Example]) -> Result<()> {
        crate::query::each_profile(examples, |m, b, s| self.get(m, b, s).map(|_| ()))
    }

    /// The fraction of the device's SMs a share runs on.
    pub fn fraction(&self, share: SoloShare) -> f64 {
        match share {
            SoloShare::Device | SoloShare::Process => 1.0,
            SoloShare::Green { sms } => (f64::from(sms) / f64::from(self.sm_count.max(1))).min(1.0),
            SoloShare::Mps { percent } => (f64::from(percent) / 100.0).min(1.0),
        }
    }

    /// The utilisation of `model` at batch `bucket` on `share`.
    pub fn get(&self, model: &str, bucket: u32, share: SoloShare) -> Result<Utilisation> {
        let known = self
            .by_model
            .get(model)
            .ok_or_else(|| Error::data("solo counters", format!("none for {model} (profile it with --ncu)")))?;
        let below = known.range(..=bucket).next_back();
        let above = known.range(bucket..).next();
        let u = match (below, above) {
            (Some((&b0, u0)), Some((&b1, u1))) if b1 > b0 => {
                let t = f64::from(bucket - b0) / f64::from(b1 - b0);
                Utilisation { l2: u0.l2 + t * (u1.l2 - u0.l2), dram: u0.dram + t * (u1.dram - u0.dram) }
            }
            (Some((_, u)), _) | (None, Some((_, u))) => *u,
            (None, None) => unreachable!("a model is listed only with a profiled batch"),
        };
        let f = self.fraction(share);
        Ok(Utilisation { l2: u.l2 * f, dram: u.dram * f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, batch: u32, node: u16, metric: &str, value: f64) -> SoloCounterRow {
        SoloCounterRow {
            model: model.into(),
            batch,
            op: 0,
            node,
            kernel: "k".into(),
            metric: metric.into(),
            unit: String::new(),
            value,
        }
    }

    #[test]
    fn utilisation_is_weighted_by_kernel_time_interpolated_and_scaled_by_the_share() {
        let rows = vec![
            // batch 1: a 3 us kernel at 80% L2 / 40% DRAM and a 1 us one at 0% / 80%
            row("m", 1, 0, DURATION, 3000.0),
            row("m", 1, 0, L2, 80.0),
            row("m", 1, 0, DRAM, 40.0),
            row("m", 1, 1, DURATION, 1000.0),
            row("m", 1, 1, L2, 0.0),
            row("m", 1, 1, DRAM, 80.0),
            row("m", 1, 1, "sm__throughput.avg.pct_of_peak_sustained_elapsed", 99.0),
            // batch 9: 20% / 10%
            row("m", 9, 0, DURATION, 5000.0),
            row("m", 9, 0, L2, 20.0),
            row("m", 9, 0, DRAM, 10.0),
        ];
        let u = Utilisations::from_rows(&rows, 100).unwrap();
        let at = |b, s| u.get("m", b, s).unwrap();
        let close = |a: Utilisation, l2: f64, dram: f64| (a.l2 - l2).abs() < 1e-12 && (a.dram - dram).abs() < 1e-12;
        assert!(close(at(1, SoloShare::Device), 0.6, 0.5), "{:?}", at(1, SoloShare::Device));
        assert!(close(at(5, SoloShare::Device), 0.4, 0.3), "{:?}", at(5, SoloShare::Device));
        assert!(close(at(32, SoloShare::Device), 0.2, 0.1));
        assert!(close(at(1, SoloShare::Green { sms: 50 }), 0.3, 0.25));
        assert!(close(at(9, SoloShare::Mps { percent: 25 }), 0.05, 0.025));
        assert!(u.get("other", 1, SoloShare::Device).unwrap_err().to_string().contains("none for other"));
    }

    #[test]
    fn a_kernel_without_its_duration_is_an_error_naming_it() {
        let rows = vec![row("m", 8, 3, L2, 10.0), row("m", 8, 3, DRAM, 10.0)];
        let err = Utilisations::from_rows(&rows, 132).unwrap_err().to_string();
        assert!(err.contains("m at batch 8, op 0 node 3"), "{err}");
    }
}
