//! What the scheduler tests share: hand-made solo profiles, a predictor whose answer is known,
//! the harness's costs, and suites parsed from text.

// each test file uses its own part of this module
#![allow(dead_code)]

use std::path::Path;

use coloc_dataset::solo_rows::SoloModelRow;
use coloc_harness::plan::PlanInputs;
use coloc_harness::solo::SoloProfiles;
use coloc_predictors::predictor::Predictor;
use coloc_predictors::query::Query;
use coloc_schedulers::Result;
use coloc_schedulers::sim::{Costs, Scheduler, SimulatedRun, simulate};
use coloc_workloads::scenario::{DeviceLimits, SoloShare};
use coloc_workloads::suite::Suite;

/// A solo profile of `model` at batch `batch` on `share`: `us` per batch, alone.
pub fn profile(model: &str, batch: u32, share: SoloShare, us: f64) -> SoloModelRow {
    SoloModelRow {
        model: model.into(),
        batch,
        share,
        granted_sms: 132,
        seq: None,
        context: None,
        ops: 1,
        launches: 1,
        latency_p50_us: us,
        latency_p05_us: us,
        latency_p95_us: us,
        latency_p50_lo_us: us,
        latency_p50_hi_us: us,
        stamped_p50_us: us,
        replays: 30,
        eager_us: us,
        capacity_rps: f64::from(batch) / us * 1e6,
    }
}

/// Each batch takes its solo time times (1 + `per_co_runner` x co-runners at dispatch).
pub struct Slowdown {
    pub per_co_runner: f64,
}

impl Predictor for Slowdown {
    fn name(&self) -> &'static str {
        "test"
    }
    fn predict(&self, q: &Query) -> f64 {
        q.solo_us * (1.0 + self.per_co_runner * q.co_runners.len() as f64)
    }
}

pub const OVERHEADS: Costs = Costs { dispatch_ns: 10_000, notice_ns: 5_000, queued_gap_ns: 0 };

pub fn suite(text: &str) -> Suite {
    Suite::parse(text, Path::new(env!("CARGO_MANIFEST_DIR")).join("t.toml").as_path(), &DeviceLimits::h200()).unwrap()
}

pub fn inputs<'a>(limits: &'a DeviceLimits, solo: &'a SoloProfiles, suite: &'a Suite) -> PlanInputs<'a> {
    PlanInputs { limits, solo, base_dir: &suite.base_dir }
}

/// The first scenario of `suite`, repetition 1, simulated under the harness's scheduler with
/// every batch slowed by `per_co_runner` of its solo time per co-runner.
pub fn slowed(suite: &Suite, solo: &SoloProfiles, per_co_runner: f64) -> Result<SimulatedRun> {
    let limits = DeviceLimits::h200();
    let slowdown = Slowdown { per_co_runner };
    simulate(&suite.scenarios[0], 1, &inputs(&limits, solo, suite), &slowdown, OVERHEADS, &Scheduler::Harness)
}
