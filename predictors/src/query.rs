//! What a predictor may know when a batch is dispatched, and the examples a measured dataset
//! yields: a query and the batch's measured GPU time.
//!
//! A query is built from the batch's dispatch alone ([`Dispatch`]: its tenant, graph size and
//! start) and from the batches of the other tenants that are running at that moment (started,
//! not yet ended) with how far along they are. Nothing of the batch's own outcome enters it:
//! [`query_at`] never sees the batch's end or its kernels.

use std::collections::BTreeMap;

use coloc_dataset::Dataset;
use coloc_dataset::check::OneStreamTables;
use coloc_dataset::rows::{AggressorRow, BatchRow, RunRow, Status, TenantRow};
use coloc_dataset::solo_rows::SoloModelRow;
use coloc_workloads::scenario::{PartitionKind, SoloShare};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The batch a query is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub model: String,
    /// The graph that runs it (its batch size).
    pub bucket: u32,
    /// The SMs it runs on, as its solo profile is keyed.
    pub share: SoloShare,
    pub partition: PartitionKind,
}

/// A batch of another tenant running when the target is dispatched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoRunner {
    pub model: String,
    pub bucket: u32,
    pub share: SoloShare,
    /// Its solo GPU time at its share, us.
    pub solo_us: f64,
    /// How long it has been running at the target's dispatch, us.
    pub elapsed_us: f64,
}

/// Everything known when a batch is dispatched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub target: Target,
    /// The target's solo GPU time at its share (first kernel in to last out, stamps), us.
    pub solo_us: f64,
    pub co_runners: Vec<CoRunner>,
}

/// A query and what was measured: the batch's GPU time, first kernel in to last kernel out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub run: String,
    /// The run's place in the measurement order: examples sorted by (position, start) are in
    /// the order the GPU saw them.
    pub position: u32,
    pub start_ns: i64,
    pub tenant: u16,
    pub batch: u32,
    pub query: Query,
    pub measured_us: f64,
}

/// A query of model "m" (solo 1,000 us, batch 8, whole device) under `partition`, beside
/// co-runners of model "c" given as (solo us, elapsed us), for tests on hand-made data.
#[cfg(test)]
pub(crate) fn test_query(partition: PartitionKind, co: &[(f64, f64)]) -> Query {
    Query {
        target: Target { model: "m".into(), bucket: 8, share: SoloShare::Device, partition },
        solo_us: 1000.0,
        co_runners: co
            .iter()
            .map(|&(solo_us, elapsed_us)| CoRunner {
                model: "c".into(),
                bucket: 8,
                share: SoloShare::Device,
                solo_us,
                elapsed_us,
            })
            .collect(),
    }
}

#[cfg(test)]
impl Example {
    /// The `i`-th batch of a one-tenant run "r", for tests on hand-made data.
    pub(crate) fn nth(i: u32, query: Query, measured_us: f64) -> Example {
        Example { run: "r".into(), position: 0, start_ns: i.into(), tenant: 0, batch: i, query, measured_us }
    }
}

/// A batch as it stands when it is dispatched: nothing measured yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dispatch {
    pub tenant: u16,
    pub bucket: u32,
    pub start_ns: i64,
}

/// A tenant of a run, as a query needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunTenant {
    pub tenant: u16,
    pub model: String,
    pub share: SoloShare,
}

impl From<&TenantRow> for RunTenant {
    fn from(t: &TenantRow) -> RunTenant {
        RunTenant { tenant: t.tenant, model: t.model.clone(), share: t.share }
    }
}

/// Solo GPU times (stamps, median of the replays) by model, then (graph size, share), us: ordered
/// maps over a few keys, so that a lookup by `&str` allocates and hashes nothing (a simulator
/// asks for every batch it dispatches).
#[derive(Clone, Debug, Default)]
pub struct SoloTimes(BTreeMap<String, BTreeMap<(u32, SoloShare), f64>>);

impl SoloTimes {
    pub fn from_rows(rows: &[SoloModelRow]) -> SoloTimes {
        let mut times = SoloTimes::default();
        for r in rows {
            times.insert(&r.model, r.batch, r.share, r.stamped_p50_us);
        }
        times
    }

    /// Sets the time of `model` at `bucket` on `share`, us.
    pub fn insert(&mut self, model: &str, bucket: u32, share: SoloShare, us: f64) {
        self.0.entry(model.to_string()).or_default().insert((bucket, share), us);
    }

    pub fn get(&self, model: &str, bucket: u32, share: SoloShare) -> Result<f64> {
        self.0.get(model).and_then(|m| m.get(&(bucket, share))).copied().ok_or_else(|| {
            Error::data("solo profiles", format!("none for {model} at batch {bucket} on {}", share.label()))
        })
    }
}

/// Calls `f` with the (model, graph size, share) of every target and co-runner of `examples`,
/// stopping at the first error (a profile a predictor lacks).
pub fn each_profile(examples: &[Example], mut f: impl FnMut(&str, u32, SoloShare) -> Result<()>) -> Result<()> {
    for e in examples {
        let q = &e.query;
        f(&q.target.model, q.target.bucket, q.target.share)?;
        for c in &q.co_runners {
            f(&c.model, c.bucket, c.share)?;
        }
    }
    Ok(())
}

/// The query for `dispatch`, a batch of one of `tenants` (the tenants of one run, under
/// `partition`), given batches of the run that started before it (`others`; the target's own
/// tenant's are ignored). A batch in `others` is a co-runner if it is still running at the
/// dispatch: started at or before it, ended after it.
pub fn query_at<'a>(
    dispatch: &Dispatch,
    partition: PartitionKind,
    tenants: &[RunTenant],
    others: impl IntoIterator<Item = &'a BatchRow>,
    solo: &SoloTimes,
) -> Result<Query> {
    let tenant_of = |id: u16| {
        tenants
            .iter()
            .find(|t| t.tenant == id)
            .ok_or_else(|| Error::data("tenants", format!("no tenant {id} in the run")))
    };
    let me = tenant_of(dispatch.tenant)?;
    let mut co_runners = Vec::new();
    for b in others {
        if b.tenant == dispatch.tenant || b.start_ns > dispatch.start_ns || b.end_ns <= dispatch.start_ns {
            continue;
        }
        let t = tenant_of(b.tenant)?;
        co_runners.push(CoRunner {
            model: t.model.clone(),
            bucket: u32::from(b.bucket),
            share: t.share,
            solo_us: solo.get(&t.model, u32::from(b.bucket), t.share)?,
            elapsed_us: (dispatch.start_ns - b.start_ns) as f64 / 1e3,
        });
    }
    Ok(Query {
        target: Target { model: me.model.clone(), bucket: dispatch.bucket, share: me.share, partition },
        solo_us: solo.get(&me.model, dispatch.bucket, me.share)?,
        co_runners,
    })
}

/// What a split needs to know of the run an example comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    pub run: String,
    pub scenario: String,
    /// Repetition of the scenario, from 1.
    pub rep: u32,
    pub partition: PartitionKind,
    /// The models of its tenants, sorted (a model twice is listed twice): the run's mix.
    pub models: Vec<String>,
    /// The load offered to its tenants together, each as a fraction of its solo capacity at
    /// its share; none where a tenant runs a closed loop (it has no offered load).
    pub offered_load: Option<f64>,
    /// From the dataset a predictor is tested on, where one dataset trains and another tests
    /// ([`Examples::across`]).
    pub tested: bool,
    /// Aggressors (stressors or models outside the tenants) that switch on and off during the
    /// run. No query describes them: they are the unannounced change an online predictor must
    /// follow, and only [`crate::split::Split::Aggressors`] tests these runs.
    pub aggressors: usize,
}

impl RunFacts {
    pub fn co_located(&self) -> bool {
        self.models.len() > 1
    }

    pub fn disturbed(&self) -> bool {
        self.aggressors > 0
    }

    /// The mix as one label: `bert_base+resnet50`.
    pub fn mix(&self) -> String {
        self.models.join("+")
    }
}

/// The examples of a dataset and the runs they come from (`Example::run` names one of `runs`).
#[derive(Clone, Debug, Default)]
pub struct Examples {
    pub runs: Vec<RunFacts>,
    pub items: Vec<Example>,
    /// VALID runs left out because they ran in a state their solo profiles were not measured
    /// in (`coloc dataset check`'s one-stream invariant): every interference label of theirs
    /// would be divided by the wrong baseline.
    pub off_profile: Vec<String>,
}

impl Examples {
    /// The facts of the run `example` comes from.
    pub fn run_of(&self, example: &Example) -> &RunFacts {
        let i = self.runs.partition_point(|r| r.run.as_str() < example.run.as_str());
        &self.runs[i]
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A slice for a quick check of every predictor: every `k`-th run (in name order), and
    /// every run with aggressors and every repetition of a repeated co-located scenario (so
    /// that the aggressor split and the noise floor keep their runs).
    pub fn slice(self, k: usize) -> Examples {
        let k = k.max(1);
        let mut repeats: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &self.runs {
            *repeats.entry(r.scenario.as_str()).or_default() += 1;
        }
        let kept: std::collections::BTreeSet<String> = self
            .runs
            .iter()
            .enumerate()
            .filter(|(i, r)| i % k == 0 || r.disturbed() || (r.co_located() && repeats[r.scenario.as_str()] > 1))
            .map(|(_, r)| r.run.clone())
            .collect();
        Examples {
            items: self.items.into_iter().filter(|e| kept.contains(&e.run)).collect(),
            runs: self.runs.into_iter().filter(|r| kept.contains(&r.run)).collect(),
            off_profile: self.off_profile,
        }
    }

    /// The examples of `train` and of `test` together, to train on one and test on the other:
    /// runs renamed `train/...` and `test/...`, the test dataset's runs marked `tested` and placed
    /// after the training ones in measurement order.
    pub fn across(train: Examples, test: Examples) -> Examples {
        Examples::concat(vec![("train/".into(), false, train), ("test/".into(), true, test)])
    }

    /// The examples of several datasets as one training set: runs renamed `d1/...`, `d2/...`
    /// (run names repeat across datasets), each dataset after the one before in measurement
    /// order.
    pub fn join(parts: Vec<Examples>) -> Examples {
        Examples::concat(parts.into_iter().enumerate().map(|(i, ex)| (format!("d{}/", i + 1), false, ex)).collect())
    }

    fn concat(parts: Vec<(String, bool, Examples)>) -> Examples {
        let mut out = Examples::default();
        let mut shift = 0;
        for (prefix, tested, ex) in parts {
            let next = shift + ex.items.iter().map(|e| e.position).max().map_or(0, |p| p + 1);
            out.runs.extend(ex.runs.into_iter().map(|r| RunFacts { run: format!("{prefix}{}", r.run), tested, ..r }));
            out.off_profile.extend(ex.off_profile.into_iter().map(|r| format!("{prefix}{r}")));
            out.items.extend(ex.items.into_iter().map(|e| Example {
                run: format!("{prefix}{}", e.run),
                position: e.position + shift,
                ..e
            }));
            shift = next;
        }
        // `run_of` looks runs up by name
        out.runs.sort_by(|a, b| a.run.cmp(&b.run));
        out
    }
}

/// One example per measured batch (start in the measured window) of every VALID run whose
/// one-stream tenants ran as profiled ([`Examples::off_profile`]). The co-runners of a query
/// are the other tenants' batches; a run's aggressors are in no query (see
/// [`RunFacts::aggressors`]). Each tenant has at most one batch in flight, so a batch's
/// co-runners are among the latest batch each other tenant started before it.
pub fn examples(ds: &Dataset) -> Result<Examples> {
    let mut runs: Vec<RunRow> = ds.load()?;
    let tenants: Vec<TenantRow> = ds.load()?;
    let aggressors: Vec<AggressorRow> = ds.load_or_empty()?;
    let mut batches: Vec<BatchRow> = ds.load()?;
    let solo_rows: Vec<SoloModelRow> = ds.load()?;
    let solo = SoloTimes::from_rows(&solo_rows);
    let off_profile = OneStreamTables {
        runs: &runs,
        tenants: &tenants,
        aggressors: &aggressors,
        batches: &batches,
        solo_models: &solo_rows,
    }
    .off_profile_runs();
    runs.sort_by(|a, b| a.run.cmp(&b.run));
    batches.sort_by(|a, b| (a.run.as_str(), a.start_ns).cmp(&(b.run.as_str(), b.start_ns)));
    let valid_off = runs.iter().filter(|r| r.status == Status::Valid && off_profile.contains(&r.run));
    let mut out = Examples { off_profile: valid_off.map(|r| r.run.clone()).collect(), ..Examples::default() };
    for run in runs.iter().filter(|r| r.status == Status::Valid && !off_profile.contains(&r.run)) {
        let of_run: Vec<&TenantRow> = tenants.iter().filter(|t| t.run == run.run).collect();
        let mine: Vec<RunTenant> = of_run.iter().map(|t| RunTenant::from(*t)).collect();
        let mut models: Vec<String> = of_run.iter().map(|t| t.model.clone()).collect();
        models.sort();
        let offered_load = of_run.iter().map(|t| t.load).sum::<Option<f64>>();
        let first = batches.partition_point(|b| b.run.as_str() < run.run.as_str());
        let last = batches.partition_point(|b| b.run.as_str() <= run.run.as_str());
        // ordered by tenant, so that co-runners are listed the same way in every process (a
        // HashMap's order changes from process to process, and sums over co-runners with it)
        let mut latest: BTreeMap<u16, &BatchRow> = BTreeMap::new();
        let before = out.items.len();
        for b in &batches[first..last] {
            if b.start_ns >= 0 {
                let dispatch = Dispatch { tenant: b.tenant, bucket: u32::from(b.bucket), start_ns: b.start_ns };
                let others = latest.values().copied();
                out.items.push(Example {
                    run: run.run.clone(),
                    position: run.position,
                    start_ns: b.start_ns,
                    tenant: b.tenant,
                    batch: b.batch,
                    query: query_at(&dispatch, run.partition, &mine, others, &solo)?,
                    measured_us: (b.end_ns - b.start_ns) as f64 / 1e3,
                });
            }
            latest.insert(b.tenant, b);
        }
        if out.items.len() > before {
            out.runs.push(RunFacts {
                run: run.run.clone(),
                scenario: run.scenario.clone(),
                rep: run.rep,
                partition: run.partition,
                models,
                offered_load,
                tested: false,
                aggressors: aggressors.iter().filter(|a| a.run == run.run).count(),
            });
        }
    }
    if out.items.is_empty() {
        return Err(Error::data("dataset", "no VALID run has batches"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use coloc_workloads::batcher::Trigger;

    use super::*;

    fn batch(tenant: u16, bucket: u16, start_ns: i64, end_ns: i64) -> BatchRow {
        BatchRow {
            run: "r".into(),
            tenant,
            batch: 0,
            size: bucket,
            bucket,
            trigger: Trigger::Full,
            formed_ns: start_ns - 10_000,
            start_ns,
            end_ns,
            noticed_ns: end_ns + 5_000,
            sampled: false,
        }
    }

    fn setup() -> (Vec<RunTenant>, SoloTimes) {
        let green = SoloShare::Green { sms: 56 };
        let tenants = vec![
            RunTenant { tenant: 0, model: "resnet50".into(), share: green },
            RunTenant { tenant: 1, model: "bert_base".into(), share: green },
            RunTenant { tenant: 2, model: "vgg16".into(), share: green },
        ];
        let mut solo = SoloTimes::default();
        solo.insert("resnet50", 8, green, 1500.0);
        solo.insert("bert_base", 8, green, 1800.0);
        solo.insert("vgg16", 8, green, 2000.0);
        solo.insert("vgg16", 4, green, 1100.0);
        (tenants, solo)
    }

    #[test]
    fn co_runners_are_the_batches_running_at_dispatch_with_how_far_along_they_are() {
        let (tenants, solo) = setup();
        let d = Dispatch { tenant: 0, bucket: 8, start_ns: 1_000_000 };
        let running = batch(1, 8, 400_000, 2_000_000);
        let ended = batch(2, 8, 100_000, 1_000_000); // ends at the dispatch: not running
        let later = batch(2, 4, 1_000_001, 3_000_000); // starts after it: unknown then
        let q = query_at(&d, PartitionKind::Green, &tenants, [&running, &ended, &later], &solo).unwrap();
        assert_eq!(q.target.model, "resnet50");
        assert_eq!(q.solo_us, 1500.0);
        assert_eq!(q.co_runners.len(), 1);
        let c = &q.co_runners[0];
        assert_eq!((c.model.as_str(), c.bucket, c.solo_us, c.elapsed_us), ("bert_base", 8, 1800.0, 600.0));
    }

    #[test]
    fn nothing_of_the_batch_s_own_outcome_reaches_its_query() {
        let (tenants, solo) = setup();
        let d = Dispatch { tenant: 0, bucket: 8, start_ns: 1_000_000 };
        let other = batch(1, 8, 400_000, 2_000_000);
        // the target's own batch, with two different outcomes, among the batches handed in
        let fast = batch(0, 8, 1_000_000, 2_500_000);
        let slow = BatchRow { end_ns: 9_000_000, noticed_ns: 9_100_000, sampled: true, ..fast.clone() };
        let a = query_at(&d, PartitionKind::Green, &tenants, [&other, &fast], &solo).unwrap();
        let b = query_at(&d, PartitionKind::Green, &tenants, [&other, &slow], &solo).unwrap();
        assert_eq!(a, b);
        // and how long the co-runner will still run is not in it either
        let longer = BatchRow { end_ns: 7_000_000, ..other.clone() };
        let c = query_at(&d, PartitionKind::Green, &tenants, [&longer, &fast], &solo).unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn across_datasets_the_test_runs_come_after_and_are_the_only_ones_tested() {
        let one = |run: &str, position: u32| {
            let (tenants, solo) = setup();
            let d = Dispatch { tenant: 0, bucket: 8, start_ns: 0 };
            let query = query_at(&d, PartitionKind::Green, &tenants, [], &solo).unwrap();
            let mut ex = Examples::default();
            ex.items.push(Example {
                run: run.into(),
                position,
                start_ns: 0,
                tenant: 0,
                batch: 0,
                query,
                measured_us: 1.0,
            });
            ex.runs.push(RunFacts {
                run: run.into(),
                scenario: run.into(),
                rep: 1,
                partition: PartitionKind::Green,
                models: vec!["resnet50".into()],
                offered_load: Some(0.5),
                tested: false,
                aggressors: 0,
            });
            ex
        };
        // the same run name in both datasets stays two runs
        let ex = Examples::across(one("000_x", 7), one("000_x", 0));
        assert_eq!(
            ex.runs.iter().map(|r| (r.run.as_str(), r.tested)).collect::<Vec<_>>(),
            [("test/000_x", true), ("train/000_x", false)]
        );
        assert_eq!((ex.items[0].position, ex.items[1].position), (7, 8));
        assert!(ex.run_of(&ex.items[1]).tested && !ex.run_of(&ex.items[0]).tested);
        let folds = crate::split::folds(&ex, crate::split::Split::Datasets);
        assert_eq!((folds[0].train.as_slice(), folds[0].test.as_slice()), ([0].as_slice(), [1].as_slice()));
    }

    #[test]
    fn a_missing_solo_profile_is_named() {
        let (tenants, solo) = setup();
        let d = Dispatch { tenant: 0, bucket: 16, start_ns: 0 };
        let err = query_at(&d, PartitionKind::Green, &tenants, [], &solo).unwrap_err().to_string();
        assert!(err.contains("resnet50 at batch 16 on green56"), "{err}");
    }
}
