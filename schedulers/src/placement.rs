//! A planner's answer: per GPU, the mechanism and each tenant's batch size, share, batching wait
//! and request rate. It becomes one coloc scenario per GPU, to simulate or to measure (as a
//! suite file `coloc measure` runs).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use coloc_workloads::arrival::ArrivalProcess;
use coloc_workloads::scenario::{
    Batching, LoadOf, PartitionKind, Role, RuntimeScheduler, Scenario, Seeds, Slo, SoloShare, Tenant,
};
use serde::Serialize;

use crate::menu::Menu;
use crate::workload::Workload;

/// Launches of this fraction of a run's window are kept: planned runs are read for latency,
/// not for kernels.
const KERNEL_SAMPLE: f64 = 0.05;

/// Every tenant of a planned run completes at least this many requests.
const MIN_QUERIES: usize = 50;

/// One tenant of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placed {
    /// The tenant's name: the served model's, with `#k` for its k-th replica.
    pub name: String,
    /// The served model's place in the workload.
    pub served: usize,
    pub model: String,
    /// Requests per second this tenant receives.
    pub rate: f64,
    pub slo_ms: f64,
    pub batch: usize,
    /// `Device` under time-sharing.
    pub share: SoloShare,
    /// The longest a request waits for its batch to fill.
    pub max_wait_ms: f64,
    /// What the planner expects a batch's GPU time to be, us.
    pub planned_us: f64,
}

/// The tenants of one GPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuPlan {
    pub partition: PartitionKind,
    pub tenants: Vec<Placed>,
    /// Who launches their batches. Under Clockwork a tenant's `batch` is its largest, and its
    /// batches run at any profiled size up to it.
    pub scheduler: RuntimeScheduler,
    /// The predictor file the scheduler asks (least headroom), as given to the planner.
    pub scheduler_predictor: Option<PathBuf>,
}

impl Placed {
    /// The tenant's batching: fixed at its batch size, or, under Clockwork, every size up to it
    /// (the scheduler chooses; the wait is never consulted).
    fn batching(&self, scheduler: RuntimeScheduler) -> Batching {
        match scheduler {
            RuntimeScheduler::Independent | RuntimeScheduler::LeastHeadroom | RuntimeScheduler::SpaceTime => {
                Batching::Fixed { batch: self.batch, max_wait_ms: Some(self.max_wait_ms) }
            }
            RuntimeScheduler::Clockwork => Batching::Dynamic { max_batch: self.batch, timeout_ms: self.max_wait_ms },
        }
    }
}

/// A plan for a workload at one scale of its rates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placement {
    pub policy: String,
    pub scale: f64,
    pub gpus: Vec<GpuPlan>,
}

impl Placement {
    /// Its tenants ([`tenants_key`]).
    pub fn tenants_key(&self) -> String {
        tenants_key(self.gpus.iter().flat_map(|g| g.tenants.iter().map(|t| (t.name.as_str(), t.share, t.batch))))
    }

    /// The scenario of GPU `g`.
    fn scenario_name(&self, g: usize) -> String {
        format!("{}/x{:.4}/gpu{g}", self.policy, self.scale)
    }

    /// One scenario per GPU, as the harness and the simulator run them.
    pub fn scenarios(&self, workload: &Workload, menu: &Menu) -> Vec<Scenario> {
        self.gpus
            .iter()
            .enumerate()
            .map(|(g, gpu)| Scenario {
                name: self.scenario_name(g),
                partition: gpu.partition,
                tenants: gpu
                    .tenants
                    .iter()
                    .map(|t| Tenant {
                        name: t.name.clone(),
                        model: t.model.clone(),
                        seq: None,
                        context: None,
                        batching: t.batching(gpu.scheduler),
                        arrival: ArrivalProcess::Poisson { rate: t.rate },
                        load: None,
                        load_of: LoadOf::Partition,
                        slo: Slo::Ms(t.slo_ms),
                        share: menu.tenant_share(t.share),
                    })
                    .collect(),
                aggressors: Vec::new(),
                duration_s: workload.duration_s,
                min_queries: MIN_QUERIES,
                warmup_s: workload.warmup_s,
                repetitions: 1,
                seeds: Seeds { schedule: workload.seed, inputs: workload.seed ^ 0x5eed },
                kernel_sample: KERNEL_SAMPLE,
                role: Role::Measured,
                scheduler: gpu.scheduler,
                scheduler_predictor: gpu.scheduler_predictor.clone(),
            })
            .collect()
    }

    /// GPUs with at least one tenant.
    pub fn gpus_used(&self) -> usize {
        self.gpus.iter().filter(|g| !g.tenants.is_empty()).count()
    }
}

/// `file` as a path from `dir` (both as this process sees them: relative to its directory or
/// absolute); absolute where either cannot be resolved.
fn relative_to(dir: &Path, file: &Path) -> PathBuf {
    let (Ok(dir), Ok(file)) = (std::fs::canonicalize(dir), std::fs::canonicalize(file)) else {
        return std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    };
    let common = dir.components().zip(file.components()).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in dir.components().skip(common) {
        out.push("..");
    }
    out.extend(file.components().skip(common));
    out
}

/// The scenarios of `placements` as a suite file for `coloc measure` written in `suite_dir`,
/// each scenario written out in full (what [`Placement::scenarios`] gives, read back the same: a
/// test checks it); a scheduler's predictor file is named from there.
pub fn suite_toml(
    name: &str,
    description: &str,
    placements: &[&Placement],
    workload: &Workload,
    suite_dir: &Path,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `coloc schedule` from the workload `{}`: one scenario per GPU of each plan.",
        workload.name
    );
    let _ = writeln!(s, "name = {}", quote(name));
    let _ = writeln!(s, "description = {}", quote(description));
    let _ = writeln!(s, "order_seed = {}", workload.seed);
    // the drift reference: the workload's first model alone, as every suite has
    let first = &workload.models[0];
    let _ = writeln!(
        s,
        "\n[reference]\nmodel = {}\nbatch = {}\nload = 0.5\nduration_s = 0.6\nevery = 10",
        quote(&first.model),
        workload.batches[0]
    );
    for p in placements {
        for (g, gpu) in p.gpus.iter().enumerate() {
            if gpu.tenants.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n[[scenario]]");
            let _ = writeln!(s, "name = {}", quote(&p.scenario_name(g)));
            let _ = writeln!(s, "partition = {}", quote(gpu.partition.name()));
            let _ = writeln!(
                s,
                "duration_s = {:?}\nwarmup_s = {:?}\nmin_queries = {MIN_QUERIES}",
                workload.duration_s, workload.warmup_s
            );
            let _ = writeln!(s, "kernel_sample = {KERNEL_SAMPLE:?}");
            match gpu.scheduler {
                RuntimeScheduler::Independent => {}
                RuntimeScheduler::Clockwork => {
                    let _ = writeln!(s, "scheduler = \"clockwork\"");
                }
                RuntimeScheduler::LeastHeadroom => {
                    let _ = writeln!(s, "scheduler = \"least_headroom\"");
                }
                RuntimeScheduler::SpaceTime => {
                    let _ = writeln!(s, "scheduler = \"space_time\"");
                }
            }
            if let Some(file) = &gpu.scheduler_predictor {
                let from_suite = relative_to(suite_dir, file);
                let _ = writeln!(s, "scheduler_predictor = {}", quote(&from_suite.display().to_string()));
            }
            let _ = writeln!(s, "seeds = {{ schedule = {}, inputs = {} }}", workload.seed, workload.seed ^ 0x5eed);
            for t in &gpu.tenants {
                let _ = writeln!(s, "[[scenario.tenant]]");
                let _ = writeln!(s, "name = {}\nmodel = {}", quote(&t.name), quote(&t.model));
                match t.batching(gpu.scheduler) {
                    Batching::Fixed { batch, max_wait_ms } => {
                        let _ =
                            writeln!(s, "batch = {batch}\nmax_wait_ms = {:?}", max_wait_ms.unwrap_or(t.max_wait_ms));
                    }
                    Batching::Dynamic { max_batch, timeout_ms } => {
                        let _ = writeln!(
                            s,
                            "batching = {{ policy = \"dynamic\", max_batch = {max_batch}, timeout_ms = {timeout_ms:?} }}"
                        );
                    }
                }
                let _ = writeln!(s, "rate = {:?}\nslo_ms = {:?}", t.rate, t.slo_ms);
                match t.share {
                    SoloShare::Mps { percent } => {
                        let _ = writeln!(s, "mps_percent = {percent}");
                    }
                    SoloShare::Green { sms } => {
                        let _ = writeln!(s, "sms = {sms}");
                    }
                    SoloShare::Device | SoloShare::Process => {}
                }
            }
        }
    }
    s
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// A plan's tenants, each as `name share bBATCH`, sorted and joined: what tells one plan of a
/// policy from another.
pub fn tenants_key<'a>(tenants: impl IntoIterator<Item = (&'a str, SoloShare, usize)>) -> String {
    let set: BTreeSet<String> =
        tenants.into_iter().map(|(name, share, batch)| format!("{name} {} b{batch}", share.label())).collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}
