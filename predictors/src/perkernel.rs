//! A per-kernel overlap model, learnt online (issue 9's sixth predictor and the per-kernel
//! variant of its seventh). The target batch is replayed on its solo timeline at its share,
//! kernel by kernel; each co-runner is placed on its own solo timeline from how far along it is at
//! the dispatch, so at every target kernel it is known which co-runner kernels run beside it. A
//! kernel's slowdown is linear in products of the two kernels' solo intensities, per mechanism:
//!
//! `t_k = solo_k * (1 + sum over co-runner kernels c beside k of w_m . phi(k, c))`,
//! `phi(k, c) = [1, dram_k dram_c, comp_k comp_c, dram_k comp_c + comp_k dram_c]`,
//!
//! with `dram` a kernel's DRAM traffic over its solo time as a fraction of the copy bandwidth and
//! `comp` its arithmetic rate as a fraction of its unit's ceiling (both from the analytic cost
//! and the solo stamps: no hardware counters needed). Summed over the target's kernels, the
//! batch's time is solo plus a linear function of `sum_k solo_k phi(k, c(k))`, so the weights
//! are learnt by recursive least squares with forgetting (and, optionally, Page-Hinkley drift
//! detection) or by SGD, exactly as the coarse online model learns its own.
//!
//! What it cannot know: a co-runner's batch after the one running at the dispatch (it is assumed
//! to end there), and how much the co-runner itself is slowed (its timeline is its solo one).

use std::collections::BTreeMap;

use coloc_dataset::Dataset;
use coloc_dataset::solo_rows::{SoloKernelRow, SoloModelRow};
use coloc_workloads::scenario::{PartitionKind, SoloShare};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::online::{Learnt, OnlineLearning, OnlineSlowdown};
use crate::predictor::{Fit, Online, Predictor, learn_in_order};
use crate::query::{Example, Query};

/// Features per mechanism, and the intercept.
const PER_MECHANISM: usize = 4;
pub const FEATURES: usize = 1 + PER_MECHANISM * PartitionKind::ALL.len();

/// One (model, batch, share)'s kernels on its solo timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Start of each kernel, us from the batch's start (kernel times scaled so that they add up
    /// to the stamped solo time, launch gaps spread over them).
    pub starts: Vec<f64>,
    pub durations: Vec<f64>,
    pub dram: Vec<f64>,
    pub comp: Vec<f64>,
    pub total: f64,
}

impl Timeline {
    /// The kernel running `at` us from the batch's start, if the batch is still running, found
    /// from `cursor` (a kernel at or before it) onwards; the cursor is left there, so a walk over
    /// increasing times costs one pass.
    fn kernel_at(&self, at: f64, cursor: &mut usize) -> Option<usize> {
        if !(0.0..self.total).contains(&at) {
            return None;
        }
        while *cursor + 1 < self.starts.len() && self.starts[*cursor + 1] <= at {
            *cursor += 1;
        }
        Some(*cursor)
    }
}

/// Solo kernel timelines of every (model, batch, share) of a dataset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelProfiles {
    /// By `model|batch|share`.
    timelines: BTreeMap<String, Timeline>,
}

fn key(model: &str, bucket: u32, share: SoloShare) -> String {
    format!("{model}|{bucket}|{share}")
}

/// [`key`] written on the stack, so that a prediction's lookups allocate nothing (they were a
/// fifth of its cost); `None` if it does not fit.
struct StackKey {
    bytes: [u8; 96],
    len: usize,
}

impl std::fmt::Write for StackKey {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl StackKey {
    fn of(model: &str, bucket: u32, share: SoloShare) -> Option<StackKey> {
        let mut k = StackKey { bytes: [0; 96], len: 0 };
        std::fmt::Write::write_fmt(&mut k, format_args!("{model}|{bucket}|{share}")).ok()?;
        Some(k)
    }

    fn as_str(&self) -> &str {
        // whole `&str`s were copied in, so the bytes are UTF-8
        std::str::from_utf8(&self.bytes[..self.len]).expect("UTF-8")
    }
}

impl KernelProfiles {
    /// From a dataset's solo kernel and model tables and its ceilings.
    pub fn from_dataset(ds: &Dataset) -> Result<KernelProfiles> {
        let ceilings = ds.manifest()?.ceilings;
        let kernels: Vec<SoloKernelRow> = ds.load()?;
        let models: Vec<SoloModelRow> = ds.load()?;
        let mut grouped: BTreeMap<String, Vec<&SoloKernelRow>> = BTreeMap::new();
        for k in &kernels {
            grouped.entry(key(&k.model, k.batch, k.share)).or_default().push(k);
        }
        let mut timelines = BTreeMap::new();
        for m in &models {
            let name = key(&m.model, m.batch, m.share);
            let Some(mut ks) = grouped.remove(&name) else { continue };
            ks.sort_by_key(|k| (k.op, k.launch));
            let times: Vec<f64> = ks.iter().map(|k| k.time_us.unwrap_or(k.floor_us).max(1e-3)).collect();
            let scale = m.stamped_p50_us / times.iter().sum::<f64>();
            let mut t =
                Timeline { starts: Vec::new(), durations: Vec::new(), dram: Vec::new(), comp: Vec::new(), total: 0.0 };
            for (k, solo) in ks.iter().zip(&times) {
                let s = solo * 1e-6;
                let dram = if ceilings.copy_gbps > 0.0 { k.dram_bytes / s / (ceilings.copy_gbps * 1e9) } else { 0.0 };
                let peak = ceilings.compute_tflops(k.unit);
                let comp = if peak > 0.0 { k.flops / s / (peak * 1e12) } else { 0.0 };
                t.starts.push(t.total);
                t.durations.push(solo * scale);
                t.dram.push(dram.clamp(0.0, 1.5));
                t.comp.push(comp.clamp(0.0, 1.5));
                t.total += solo * scale;
            }
            timelines.insert(name, t);
        }
        if timelines.is_empty() {
            return Err(Error::data(ds.dir().display().to_string(), "no solo kernel times"));
        }
        Ok(KernelProfiles { timelines })
    }

    /// These timelines, and those of `other` that these lack (a dataset trained on, then the one
    /// tested on).
    pub fn merged(mut self, other: KernelProfiles) -> KernelProfiles {
        for (k, t) in other.timelines {
            self.timelines.entry(k).or_insert(t);
        }
        self
    }

    pub fn get(&self, model: &str, bucket: u32, share: SoloShare) -> Result<&Timeline> {
        self.find(model, bucket, share).ok_or_else(|| {
            Error::data("solo kernel profiles", format!("none for {model} at batch {bucket} on {share}"))
        })
    }

    fn find(&self, model: &str, bucket: u32, share: SoloShare) -> Option<&Timeline> {
        match StackKey::of(model, bucket, share) {
            Some(k) => self.timelines.get(k.as_str()),
            None => self.timelines.get(&key(model, bucket, share)),
        }
    }

    /// Every model of `examples`, target or co-runner, has a timeline.
    pub fn cover(&self, examples: &[Example]) -> Result<()> {
        crate::query::each_profile(examples, |m, b, s| self.get(m, b, s).map(|_| ()))
    }

    /// The features of a query, relative to the target's solo time; none where a timeline is
    /// missing (refused before scoring by [`KernelProfiles::cover`]).
    pub fn features(&self, q: &Query) -> Option<[f64; FEATURES]> {
        let mut x = [0.0; FEATURES];
        x[0] = 1.0;
        if q.co_runners.is_empty() {
            return Some(x);
        }
        let me = self.find(&q.target.model, q.target.bucket, q.target.share)?;
        // (timeline, progress at dispatch, the kernel reached so far)
        let mut others: Vec<(&Timeline, f64, usize)> = q
            .co_runners
            .iter()
            .map(|c| self.find(&c.model, c.bucket, c.share).map(|t| (t, c.elapsed_us, 0)))
            .collect::<Option<_>>()?;
        let m = PartitionKind::ALL.iter().position(|p| *p == q.target.partition).unwrap_or(0);
        let block = &mut x[1 + PER_MECHANISM * m..1 + PER_MECHANISM * (m + 1)];
        for k in 0..me.starts.len() {
            let mid = me.starts[k] + me.durations[k] / 2.0;
            // a co-runner past its end stays past it for every later kernel: dropped, in order
            others.retain_mut(|(t, elapsed, cursor)| {
                let at = *elapsed + mid;
                if at >= t.total {
                    return false;
                }
                if let Some(c) = t.kernel_at(at, cursor) {
                    let w = me.durations[k];
                    let (dk, ck, dc, cc) = (me.dram[k], me.comp[k], t.dram[c], t.comp[c]);
                    block[0] += w;
                    block[1] += w * dk * dc;
                    block[2] += w * ck * cc;
                    block[3] += w * (dk * cc + ck * dc);
                }
                true
            });
            if others.is_empty() {
                break;
            }
        }
        for v in block.iter_mut() {
            *v /= me.total;
        }
        Some(x)
    }
}

/// Parameters of [`PerKernel`]: the timelines, and how it learns.
#[derive(Clone, Debug)]
pub struct PerKernelParams {
    pub profiles: KernelProfiles,
    pub learning: OnlineLearning,
}

impl PerKernelParams {
    pub fn new(profiles: KernelProfiles) -> PerKernelParams {
        PerKernelParams { profiles, learning: OnlineLearning::default() }
    }

    /// With Page-Hinkley on the residual slowdown, as the coarse model has it.
    pub fn with_drift_detection(self) -> PerKernelParams {
        self.learnt_by(OnlineLearning::with_drift_detection())
    }

    /// Learning so.
    pub fn learnt_by(self, learning: OnlineLearning) -> PerKernelParams {
        PerKernelParams { learning, ..self }
    }

    /// The model before any observation: slowdown 1.
    pub fn start(&self) -> Result<PerKernel> {
        Ok(PerKernel { profiles: self.profiles.clone(), model: self.learning.start(FEATURES)? })
    }
}

/// The fitted model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerKernel {
    profiles: KernelProfiles,
    pub model: OnlineSlowdown,
}

impl PerKernel {
    /// The solo kernel timelines it walks.
    pub fn profiles(&self) -> &KernelProfiles {
        &self.profiles
    }
}

impl Fit for PerKernelParams {
    type Fitted = PerKernel;
    /// Learns the training examples in their order.
    fn fit(&self, train: &[&Example]) -> Result<PerKernel> {
        learn_in_order(self.start()?, train)
    }
}

impl Online for PerKernel {
    fn update(&mut self, query: &Query, measured_us: f64) {
        if let Some(x) = self.profiles.features(query) {
            self.model.learn(&x, measured_us / query.solo_us);
        }
    }
}

impl Predictor for PerKernel {
    fn name(&self) -> &'static str {
        match self.model.learnt() {
            Learnt::Rls => "online RLS, per-kernel",
            Learnt::RlsPageHinkley => "online RLS, per-kernel, Page-Hinkley",
            Learnt::Sgd => "online SGD (NLMS), per-kernel",
        }
    }
    fn predict(&self, query: &Query) -> f64 {
        match self.profiles.features(query) {
            Some(x) => query.solo_us * self.model.predict(&x),
            None => query.solo_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{CoRunner, Target};

    /// Two kernels of 100 us each: `a` DRAM-bound then compute-bound; `b` DRAM-bound throughout.
    fn profiles() -> KernelProfiles {
        let line = |dram: [f64; 2], comp: [f64; 2]| Timeline {
            starts: vec![0.0, 100.0],
            durations: vec![100.0, 100.0],
            dram: dram.to_vec(),
            comp: comp.to_vec(),
            total: 200.0,
        };
        let mut p = KernelProfiles::default();
        p.timelines.insert(key("a", 8, SoloShare::Device), line([0.8, 0.1], [0.1, 0.9]));
        p.timelines.insert(key("b", 8, SoloShare::Device), line([0.9, 0.9], [0.05, 0.05]));
        p
    }

    fn query(elapsed: Option<f64>) -> Query {
        Query {
            target: Target { model: "a".into(), bucket: 8, share: SoloShare::Device, partition: PartitionKind::Green },
            solo_us: 200.0,
            co_runners: elapsed
                .map(|elapsed_us| CoRunner {
                    model: "b".into(),
                    bucket: 8,
                    share: SoloShare::Device,
                    solo_us: 200.0,
                    elapsed_us,
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn features_count_only_the_co_runner_kernels_that_run_beside_each_target_kernel() {
        let p = profiles();
        let green = 1 + PER_MECHANISM * 2;
        // b just started: both of a's kernels overlap b (midpoints at 50 and 150 us)
        let x = p.features(&query(Some(0.0))).unwrap();
        assert!((x[green] - 1.0).abs() < 1e-12);
        assert!((x[green + 1] - (100.0 * 0.8 * 0.9 + 100.0 * 0.1 * 0.9) / 200.0).abs() < 1e-12);
        // b 120 us in: only a's first kernel (midpoint 50 -> b at 170) overlaps it
        let x = p.features(&query(Some(120.0))).unwrap();
        assert!((x[green] - 0.5).abs() < 1e-12);
        assert!((x[green + 1] - 100.0 * 0.8 * 0.9 / 200.0).abs() < 1e-12);
        // b finished; or alone: the intercept only
        assert_eq!(p.features(&query(Some(250.0))).unwrap().iter().sum::<f64>(), 1.0);
        assert_eq!(p.features(&query(None)).unwrap().iter().sum::<f64>(), 1.0);
    }

    #[test]
    fn a_timeline_is_found_by_its_key_on_the_stack_or_past_its_room() {
        let mut p = profiles();
        let long = "m".repeat(200);
        let t = p.get("a", 8, SoloShare::Device).unwrap().clone();
        p.timelines.insert(key(&long, 16, SoloShare::Mps { percent: 43 }), t.clone());
        // the stack key is the key, and a name too long for it is still found
        let k = StackKey::of("a", 8, SoloShare::Green { sms: 56 }).unwrap();
        assert_eq!(k.as_str(), key("a", 8, SoloShare::Green { sms: 56 }));
        assert!(StackKey::of(&long, 16, SoloShare::Mps { percent: 43 }).is_none());
        assert_eq!(p.get(&long, 16, SoloShare::Mps { percent: 43 }).unwrap(), &t);
        let err = p.get("a", 16, SoloShare::Mps { percent: 43 }).unwrap_err().to_string();
        assert!(err.contains("a at batch 16 on mps43"), "{err}");
    }

    #[test]
    fn it_learns_a_slowdown_that_depends_on_which_kernels_overlap() {
        // truth: +50% per unit of DRAM x DRAM overlap
        let p = profiles();
        let truth = |q: &Query| q.solo_us * (1.0 + 0.5 * p.features(q).unwrap()[1 + PER_MECHANISM * 2 + 1]);
        let train: Vec<Example> = (0..400u32)
            .map(|i| {
                let q = query((i % 4 != 0).then(|| f64::from(i % 41) * 5.0));
                let measured_us = truth(&q);
                Example::nth(i, q, measured_us)
            })
            .collect();
        let refs: Vec<&Example> = train.iter().collect();
        let learning = OnlineLearning::rls(1.0, 1e4);
        let params = PerKernelParams { profiles: p.clone(), learning };
        let model = params.fit(&refs).unwrap();
        for e in [Some(0.0), Some(120.0), Some(190.0), None] {
            let q = query(e);
            assert!((model.predict(&q) - truth(&q)).abs() / truth(&q) < 1e-4, "{e:?}");
        }
        // an overlap early in b (both DRAM-bound kernels together) costs more than a late one
        assert!(model.predict(&query(Some(0.0))) > model.predict(&query(Some(120.0))));
        // SGD learns the same weights, slower: the training batches seen 50 times over
        let sgd = PerKernelParams::new(p.clone())
            .learnt_by(OnlineLearning { method: crate::online::Method::Nlms { step: 0.5 }, drift: None });
        let again: Vec<&Example> = refs.iter().copied().cycle().take(50 * refs.len()).collect();
        let model = sgd.fit(&again).unwrap();
        assert_eq!(model.name(), "online SGD (NLMS), per-kernel");
        for e in [Some(0.0), Some(120.0), Some(190.0), None] {
            let q = query(e);
            assert!((model.predict(&q) - truth(&q)).abs() / truth(&q) < 1e-3, "{e:?}: {}", model.predict(&q));
        }
    }
}
