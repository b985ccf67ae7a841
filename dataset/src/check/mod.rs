//! `coloc dataset check DIR`: is the dataset whole, and does every number in it fit what the
//! device and the clocks allow? Each invariant is a function of typed rows, and each has a
//! test that feeds it broken data and sees it fail (`dataset/tests/check.rs`).
//!
//! - runs: every run the suite selected is recorded exactly once, in the progress log and in
//!   `runs.parquet`, and every row of every run table belongs to a recorded run;
//! - request times: each request's parts add up, in order, and its SLO flag is right;
//! - ceilings: no operator or kernel ran faster than the measured ceilings allow (by more than
//!   5%);
//! - coverage: a batch's kernel launches are all there and cover its span, with no gap longer
//!   than [`MAX_LAUNCH_GAP_NS`] where the tenant had its SMs to itself;
//! - clock: no completion was noticed before its kernel's end, and no batch started before it
//!   was formed, beyond the clock map's uncertainty;
//! - arrivals: no two tenants of any runs (repetitions included) share an arrival sequence;
//! - solo at share: every co-located tenant has a solo profile at its share, granted the same
//!   SMs;
//! - queues: no VALID run has a queue that grew or built up;
//! - one stream as profiled: no tenant on one stream runs its batches faster than its whole-GPU
//!   solo profile, and a lone one no slower (within 3%);
//! - switch as profiled: the switch profile's replays after their own agree with the solo
//!   profile, and none runs faster after another model (within 3%).

mod arrivals;
mod one_stream;
mod physics;
mod runs;
mod shares;
mod switch;
mod times;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use coloc_workloads::order::plan_runs;
use coloc_workloads::scenario::RuntimeScheduler;
use serde::Serialize;

use crate::error::Result;
use crate::rows::{AggressorRow, BatchRow, DeviceSampleRow, KernelRow, RequestRow, RunRow, Status, TenantRow};
use crate::solo_rows::{SoloKernelRow, SoloModelRow, SoloOpRow, SoloSwitchRow};
use crate::{Dataset, Table, progress};

pub use one_stream::{ONE_STREAM_TOLERANCE, OneStreamTables, OneStreamTenant, one_stream_tenants};
pub use physics::{CEILING_SLACK, MAX_LAUNCH_GAP_NS};
pub use switch::SWITCH_TOLERANCE;

/// One of the invariants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    RunsOnce,
    RequestTimes,
    Ceilings,
    Coverage,
    Clock,
    DistinctArrivals,
    SoloAtShare,
    StableQueues,
    OneStreamAsProfiled,
    SwitchAsProfiled,
}

impl Invariant {
    pub fn describe(self) -> &'static str {
        match self {
            Invariant::RunsOnce => "every run recorded once, no orphan rows",
            Invariant::RequestTimes => "request times add up and SLO flags agree",
            Invariant::Ceilings => "no operator or kernel above 1.05x a measured ceiling",
            Invariant::Coverage => "kernel launches cover each batch's span",
            Invariant::Clock => "nothing noticed before it happened, beyond the clock's uncertainty",
            Invariant::DistinctArrivals => "no two tenants share an arrival sequence",
            Invariant::SoloAtShare => "every co-located tenant has a solo profile at its share",
            Invariant::StableQueues => "no VALID run with a growing queue",
            Invariant::OneStreamAsProfiled => {
                "no one-stream tenant faster than its solo profile, no lone one slower (3%)"
            }
            Invariant::SwitchAsProfiled => {
                "switch profile: after its own as profiled, not faster after another model (3%)"
            }
        }
    }
}

/// The outcome of one invariant.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub invariant: Invariant,
    /// Items it examined (rows, batches, tenants).
    pub checked: usize,
    /// What is wrong, one sentence each (examples first, then a count).
    pub problems: Vec<String>,
    /// Not checked, and why (a slim copy lacks the table it needs): neither held nor broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Finding {
    pub(crate) fn new(invariant: Invariant, checked: usize, problems: Vec<String>) -> Finding {
        Finding { invariant, checked, problems, skipped: None }
    }

    /// Not checked, for this reason.
    pub(crate) fn skipped(invariant: Invariant, why: impl Into<String>) -> Finding {
        Finding { skipped: Some(why.into()), ..Finding::new(invariant, 0, Vec::new()) }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Runs the suite (and the run's `--only`) selected, the reference's included.
    pub expected_runs: usize,
    pub progress_lines: usize,
    /// Rows of `runs.parquet` (none before the suite finished).
    pub recorded_runs: usize,
    /// False while `parts/` exists or `runs.parquet` is missing: the suite has not finished.
    pub consolidated: bool,
    /// Rows of each table held (the tables a slim copy dropped are not listed).
    pub table_rows: BTreeMap<String, usize>,
    /// Tables a slim copy does not hold, with their rows as measured.
    pub dropped: Vec<crate::manifest::DroppedTable>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Finished, and every invariant checked and holding.
    pub fn is_whole(&self) -> bool {
        self.holds() && self.findings.iter().all(|f| f.skipped.is_none())
    }

    /// Finished, and every invariant that could be checked holds (a slim copy skips some).
    pub fn holds(&self) -> bool {
        self.consolidated && self.findings.iter().all(|f| f.problems.is_empty())
    }
}

/// Problems of one kind, counted, with the first few as examples.
pub(crate) struct Problems {
    examples: Vec<String>,
    count: usize,
    what: &'static str,
}

const EXAMPLES: usize = 5;

impl Problems {
    pub(crate) fn new(what: &'static str) -> Problems {
        Problems { examples: Vec::new(), count: 0, what }
    }
    pub(crate) fn count(&self) -> usize {
        self.count
    }
    pub(crate) fn push(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example());
        }
    }
    pub(crate) fn into_lines(self, out: &mut Vec<String>) {
        if self.count == 0 {
            return;
        }
        let more = if self.count > self.examples.len() {
            format!(" (and {} more)", self.count - self.examples.len())
        } else {
            String::new()
        };
        out.push(format!("{} {}{more}: {}", self.count, self.what, self.examples.join("; ")));
    }
}

/// Everything the checks read, loaded once.
pub struct Tables {
    pub runs: Vec<RunRow>,
    pub tenants: Vec<TenantRow>,
    pub aggressors: Vec<AggressorRow>,
    pub requests: Vec<RequestRow>,
    pub batches: Vec<BatchRow>,
    pub kernels: Vec<KernelRow>,
    pub device_samples: Vec<DeviceSampleRow>,
    pub solo_models: Vec<SoloModelRow>,
    pub solo_ops: Vec<SoloOpRow>,
    pub solo_kernels: Vec<SoloKernelRow>,
    /// None where the dataset was measured before the harness measured switches.
    pub solo_switch: Option<Vec<SoloSwitchRow>>,
}

impl Tables {
    /// The tables of `ds`; those a slim copy dropped read as none.
    pub fn load(ds: &Dataset) -> Result<Tables> {
        let manifest = ds.manifest()?;
        Ok(Tables {
            runs: ds.load()?,
            tenants: ds.load()?,
            aggressors: ds.load_or_empty()?,
            requests: if manifest.dropped(RequestRow::NAME) { Vec::new() } else { ds.load()? },
            batches: ds.load()?,
            kernels: if manifest.dropped(KernelRow::NAME) { Vec::new() } else { ds.load_or_empty()? },
            device_samples: ds.load_or_empty()?,
            solo_models: ds.load()?,
            solo_ops: ds.load()?,
            solo_kernels: ds.load()?,
            solo_switch: ds.load_if_present()?,
        })
    }

    fn rows(&self) -> BTreeMap<String, usize> {
        let mut rows = BTreeMap::from([
            ("runs".into(), self.runs.len()),
            ("tenants".into(), self.tenants.len()),
            ("aggressors".into(), self.aggressors.len()),
            ("requests".into(), self.requests.len()),
            ("batches".into(), self.batches.len()),
            ("kernels".into(), self.kernels.len()),
            ("device_samples".into(), self.device_samples.len()),
            ("solo_models".into(), self.solo_models.len()),
            ("solo_ops".into(), self.solo_ops.len()),
            ("solo_kernels".into(), self.solo_kernels.len()),
        ]);
        if let Some(switches) = &self.solo_switch {
            rows.insert("solo_switch".into(), switches.len());
        }
        rows
    }

    /// Runs judged VALID.
    pub fn valid_runs(&self) -> BTreeSet<&str> {
        self.runs.iter().filter(|r| r.status == Status::Valid).map(|r| r.run.as_str()).collect()
    }
}

/// Checks the dataset in `dir`.
pub fn check(dir: &Path) -> Result<Report> {
    let ds = Dataset::open(dir)?;
    let manifest = ds.manifest()?;
    let scenarios = ds.scenarios()?;
    let expected: Vec<String> =
        plan_runs(&scenarios, &manifest.suite.only, manifest.suite.order_seed, manifest.suite.reference_every)
            .iter()
            .map(|r| r.key())
            .collect();
    let log = progress::read(dir)?;
    let mut report = Report { expected_runs: expected.len(), progress_lines: log.len(), ..Report::default() };
    report.consolidated = dir.join("runs.parquet").exists() && !dir.join("parts").exists();
    if !report.consolidated {
        // Unfinished: only the progress log can be judged (no run twice, none unknown).
        let mut f = runs::runs_once(&expected, &log, None);
        f.problems.retain(|p| !p.contains("missing"));
        report.findings.push(f);
        return Ok(report);
    }
    let t = Tables::load(&ds)?;
    let dropping: BTreeSet<&str> =
        scenarios.iter().filter(|s| s.scheduler == RuntimeScheduler::Clockwork).map(|s| s.name.as_str()).collect();
    report.recorded_runs = t.runs.len();
    report.table_rows = t.rows();
    report.table_rows.retain(|name, _| !manifest.dropped(name));
    report.dropped = manifest.dropped_tables.clone();
    // what each invariant cannot do without (a slim copy drops these)
    let needs = |invariant: Invariant| match invariant {
        Invariant::RequestTimes | Invariant::DistinctArrivals | Invariant::StableQueues => Some(RequestRow::NAME),
        Invariant::Coverage => Some(KernelRow::NAME),
        _ => None,
    };
    let judge = |invariant: Invariant, run: &dyn Fn() -> Finding| match needs(invariant) {
        Some(table) if manifest.dropped(table) => {
            Finding::skipped(invariant, format!("needs the {table} table, which this slim copy does not hold"))
        }
        _ => run(),
    };
    report.findings = vec![
        judge(Invariant::RunsOnce, &|| runs::runs_once(&expected, &log, Some(&t))),
        judge(Invariant::RequestTimes, &|| times::request_times(&t)),
        judge(Invariant::Ceilings, &|| physics::ceilings(&manifest.ceilings, &t)),
        judge(Invariant::Coverage, &|| physics::coverage(&t)),
        judge(Invariant::Clock, &|| times::clock(&t)),
        judge(Invariant::DistinctArrivals, &|| arrivals::distinct(&t)),
        judge(Invariant::SoloAtShare, &|| shares::solo_at_share(&t)),
        judge(Invariant::StableQueues, &|| times::stable_queues(&t, &dropping)),
        judge(Invariant::OneStreamAsProfiled, &|| one_stream::one_stream_as_profiled(&t, manifest.ceilings_measured)),
        switch::switch_as_profiled(&t.solo_models, t.solo_switch.as_deref()),
    ];
    Ok(report)
}
