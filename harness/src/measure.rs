//! `coloc measure SUITE --out DIR`: the whole measurement of a suite.
//!
//! 1. Manifest: device, driver, CUDA libraries, MPS/MIG state, clocks, ceilings, the suite
//!    (copied, with its expanded scenarios and seeds), the run order's seed, coloc's commit.
//! 2. Harness overhead, from a null workload; the host/GPU clock map checked.
//! 3. Solo profiles of every (model, batch) the scenarios use, on the whole GPU and at every
//!    share a tenant runs at.
//! 4. Every run, in an order shuffled by a recorded seed with the drift reference in between,
//!    each written out as it finishes; a failed run is recorded with its reason and the suite
//!    goes on; Ctrl-C stops after dropping the run in flight. `--resume` skips finished runs.
//! 5. Consolidation into one Parquet file per table, and `summary.txt`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use coloc_dataset::manifest::{CeilingsMeasured, Manifest, SuiteInfo, ToolInfo};
use coloc_dataset::rows::{RunRow, Status};
use coloc_dataset::{MANIFEST, SCENARIOS, SUITE, progress, store};
use coloc_kernels::ceilings::{self, Ceilings};
use coloc_kernels::gpu::{Blas, Device, ExecContext, KernelLibrary, nvrtc};
use coloc_kernels::nvml::NvmlDevice;
use coloc_kernels::partition::mps::MpsDaemon;
use coloc_kernels::partition::probe::WorkerCommand;
use coloc_kernels::partition::{SmSplit, green, mig, mps};
use coloc_workloads::graph::BuildOptions;
use coloc_workloads::model::ModelSpec;
use coloc_workloads::order::{PlannedRun, plan_runs};
use coloc_workloads::scenario::SoloShare;
use coloc_workloads::suite::Suite;

use crate::error::{Error, Result};
use crate::gate::Costs;
use crate::run::RunEnv;
use crate::solo::{SoloProfiles, SoloTarget};
use crate::validity::{self, Verdict};
use crate::worker::{Clients, solo_in_client};
use crate::{overhead, parts};

pub struct MeasureOptions {
    pub suite: PathBuf,
    pub out: PathBuf,
    pub resume: bool,
    /// With `resume`: measure FAILED runs again.
    pub retry_failed: bool,
    /// Case-insensitive substrings of scenario names to run (empty: all).
    pub only: Vec<String>,
    /// Add hardware counters of every solo kernel from ncu.
    pub ncu: bool,
    pub worker: Option<WorkerCommand>,
    pub tool: ToolInfo,
}

/// Where a run reports progress (the CLI draws a bar).
pub trait Progress {
    fn phase(&self, message: &str);
    fn runs(&self, total: usize, done: usize, estimated_s: f64);
    fn run_done(&self, row: &RunRow);
}

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `YYYY-MM-DDThh:mm:ssZ` for a Unix time.
pub fn utc(unix_s: f64) -> String {
    let secs = unix_s.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (H. Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn fnv64(text: &str) -> String {
    format!("{:016x}", coloc_workloads::scenario::fnv64(text.as_bytes()))
}

/// The runs of `runs` that `done` does not list yet.
pub fn pending<'r, 's>(runs: &'r [PlannedRun<'s>], done: &[RunRow]) -> Vec<(usize, &'r PlannedRun<'s>)> {
    let finished: BTreeSet<&str> = done.iter().map(|d| d.run.as_str()).collect();
    runs.iter().enumerate().filter(|(_, r)| !finished.contains(r.key().as_str())).collect()
}

/// Checks that a run being resumed was started the same way.
fn check_resumable(m: &Manifest, opts: &MeasureOptions, device: &Device, suite_text: &str) -> Result<()> {
    let out = opts.out.display().to_string();
    if m.suite.fnv64 != fnv64(suite_text) {
        return Err(Error::invalid(
            opts.suite.display().to_string(),
            "the suite changed since this run started; resume with the same file",
        ));
    }
    if m.device.uuid != device.info().uuid {
        return Err(Error::invalid(
            out,
            format!("this run was started on GPU {}, this is {}", m.device.uuid, device.info().uuid),
        ));
    }
    if m.tool.git_commit != opts.tool.git_commit {
        return Err(Error::invalid(
            out,
            format!(
                "this run was started by coloc {}, this binary is {}; resume with the same build so one dataset has one provenance",
                m.tool.git_commit, opts.tool.git_commit
            ),
        ));
    }
    if m.suite.only != opts.only {
        return Err(Error::invalid(
            out,
            format!("this run was started with --only {:?}; resume with the same selection", m.suite.only),
        ));
    }
    Ok(())
}

/// Runs `opts.suite` on `device` into `opts.out`.
pub fn measure(
    device: &Arc<Device>,
    lib: &Arc<KernelLibrary>,
    opts: &MeasureOptions,
    progress: &dyn Progress,
) -> Result<Vec<RunRow>> {
    let out = &opts.out;
    let manifest_path = out.join(MANIFEST);
    if opts.resume && !manifest_path.exists() {
        return Err(Error::invalid(out.display().to_string(), "nothing to resume: no manifest.json there"));
    }
    if !opts.resume && manifest_path.exists() {
        return Err(Error::invalid(
            out.display().to_string(),
            "already holds a run; pass --resume to continue it, or choose another --out",
        ));
    }
    if opts.retry_failed && !opts.resume {
        return Err(Error::invalid("--retry-failed", "goes with --resume"));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let limits = crate::limits::of_device(device)?;
    let suite_text = std::fs::read_to_string(&opts.suite).map_err(|e| Error::io(&opts.suite, e))?;
    let suite = Suite::parse(&suite_text, &opts.suite, &limits)?;
    let check = suite.validate(&limits)?;
    let runs = plan_runs(&suite.scenarios, &opts.only, suite.order_seed, suite.reference_every);
    if runs.is_empty() {
        return Err(Error::invalid(
            opts.suite.display().to_string(),
            format!("--only {:?} selects no scenario", opts.only),
        ));
    }
    let nvml = NvmlDevice::open(&device.info().uuid).ok();

    let (solo, mut done, overhead) = if opts.resume {
        let m: Manifest = store::load_json(&manifest_path)?;
        check_resumable(&m, opts, device, &suite_text)?;
        let solo = SoloProfiles::load(out)?;
        let mut done = progress::recover(out)?;
        if opts.retry_failed {
            let failed: Vec<String> =
                done.iter().filter(|r| r.status == Status::Failed).map(|r| r.run.clone()).collect();
            done.retain(|r| r.status != Status::Failed);
            progress::rewrite(out, &done)?;
            progress.phase(&format!("measuring {} failed run(s) again", failed.len()));
        }
        parts::remove_retired(out)?;
        let stale = parts::remove_stale(out, &done)?;
        if !stale.is_empty() {
            progress.phase(&format!("removed {} unfinished part(s): {}", stale.len(), stale.join(", ")));
        }
        progress.phase(&format!("resuming: {} of {} runs already done", done.len(), runs.len()));
        (solo, done, m.harness_overhead)
    } else {
        let ctx = ExecContext::primary(device);
        // in a process of their own where coloc can start one: a process that measured them
        // replays library kernels 6-9% slower from then on (docs/h200.md)
        let (ceilings, ceilings_measured) = match opts.worker.as_ref() {
            Some(worker) => {
                progress.phase("measuring the device's ceilings (in a process of their own)");
                (crate::worker::ceilings_in_client(worker)?, CeilingsMeasured::InAProcessOfTheirOwn)
            }
            None => {
                progress.phase("measuring the device's ceilings (in this process: no worker executable)");
                (ceilings::measure(lib, &ctx, false)?, CeilingsMeasured::InTheMeasuringProcess)
            }
        };
        progress.phase("measuring the harness overhead (null workload) and checking the clock map");
        let overhead = overhead::measure(lib, &ceilings)?;
        let started = unix_now();
        let (major, minor) = nvrtc::version()?;
        let stream = ctx.new_stream(0)?;
        let manifest = Manifest {
            tool: opts.tool.clone(),
            started_unix_s: started,
            started_utc: utc(started),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string(),
            device: device.info().clone(),
            nvml_settings: nvml.as_ref().map(|n| n.settings()),
            nvml_at_start: nvml.as_ref().map(|n| n.sample()),
            nvrtc_version: format!("{major}.{minor}"),
            cublas_version: Blas::new(&stream)?.version()?,
            cudnn_version: coloc_kernels::gpu::Dnn::version().ok(),
            mps_control: mps::control_binary().map(|p| p.display().to_string()),
            mig: mig::status(nvml.as_ref()),
            green_contexts: green::support(device),
            limits: limits.clone(),
            ceilings: ceilings.clone(),
            ceilings_measured: Some(ceilings_measured),
            harness_overhead: overhead.clone(),
            suite: SuiteInfo {
                name: suite.name.clone(),
                path: opts.suite.display().to_string(),
                fnv64: fnv64(&suite_text),
                scenarios: check.scenarios,
                runs: runs.len(),
                only: opts.only.clone(),
                order_seed: suite.order_seed,
                reference_every: suite.reference_every,
            },
            dropped_tables: Vec::new(),
        };
        store::save_text(&out.join(SUITE), &suite_text)?;
        store::save_json(&out.join(SCENARIOS), &suite.scenarios)?;
        progress.phase(&format!("solo profiles of {} (model, batch, share)", check.solo_profiles.len()));
        let mut solo =
            profile_all(lib, &ceilings, &suite, &check.solo_profiles, opts.worker.as_ref(), nvml.as_ref(), progress)?;
        if opts.ncu {
            solo.counters = ncu_counters(&suite, &solo, opts, progress)?;
        }
        write_solo(out, &solo)?;
        // the manifest goes last: its presence marks a run that can be resumed
        store::save_json(&manifest_path, &manifest)?;
        (solo, Vec::new(), overhead)
    };

    let per_run_s: f64 = check.estimated_seconds / runs.len().max(1) as f64;
    let todo = pending(&runs, &done);
    progress.runs(runs.len(), runs.len() - todo.len(), todo.len() as f64 * per_run_s);
    let env = RunEnv {
        lib,
        limits: &limits,
        solo: &solo,
        base_dir: &suite.base_dir,
        worker: opts.worker.as_ref(),
        nvml: nvml.as_ref(),
        costs: Costs::of(&overhead),
    };
    let _listening = crate::control::listen();
    for (position, planned) in todo {
        let key = planned.key();
        let settled = crate::settle::settle(nvml.as_ref());
        let started = unix_now();
        let t0 = Instant::now();
        let result = crate::run::run(&env, planned.scenario, planned.rep);
        if crate::control::interrupted() {
            // whatever the run returned, it was cut short: it stays unfinished
            return Err(Error::Interrupted);
        }
        let (mut verdict, data) = match result {
            Ok(mut data) => {
                let mut verdict = validity::judge(planned.scenario, &mut data, &solo);
                verdict.notes.extend(data.notes.iter().cloned());
                (verdict, Some(data))
            }
            Err(e) => (Verdict::failed(e.to_string()), None),
        };
        verdict.notes.extend(settled.note());
        let row = RunRow {
            run: key,
            scenario: planned.scenario.name.clone(),
            rep: planned.rep as u32,
            role: planned.scenario.role,
            partition: planned.scenario.partition,
            position: position as u32,
            status: verdict.status,
            reasons: verdict.reasons,
            fixes: verdict.fixes,
            notes: verdict.notes,
            started_unix_s: started,
            wall_s: t0.elapsed().as_secs_f64(),
            window_ns: data.as_ref().map(|d| d.window_ns),
        };
        parts::write_run(out, &row, data.as_ref())?;
        progress.run_done(&row);
        done.push(row);
    }
    progress.phase("consolidating the tables");
    let order: BTreeMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.key(), i)).collect();
    done.sort_by_key(|r| order.get(&r.run).copied().unwrap_or(usize::MAX));
    parts::consolidate(out, &done)?;
    let text = crate::summary::text(&coloc_dataset::Dataset::open(out)?)?;
    store::save_text(&out.join(coloc_dataset::SUMMARY), &text)?;
    Ok(done)
}

/// Solo profiles of every (model, batch, share): on the whole GPU in this process, in a green
/// context of each size, in an MPS client at each percentage (one daemon for all of them).
fn profile_all(
    lib: &Arc<KernelLibrary>,
    ceilings: &Ceilings,
    suite: &Suite,
    wanted: &BTreeSet<(String, usize, SoloShare)>,
    worker: Option<&WorkerCommand>,
    nvml: Option<&NvmlDevice>,
    progress: &dyn Progress,
) -> Result<SoloProfiles> {
    let device = lib.device().clone();
    let mut by_share: BTreeMap<SoloShare, Vec<SoloTarget>> = BTreeMap::new();
    for (model, batch, share) in wanted {
        let (spec, _) = ModelSpec::resolve(model, &suite.base_dir)?;
        let options = BuildOptions { batch: *batch, ..Default::default() };
        by_share.entry(*share).or_default().push(SoloTarget { spec, options, share: *share });
    }
    let mut all = SoloProfiles::default();
    let mut daemon: Option<MpsDaemon> = None;
    for (share, targets) in by_share {
        progress.phase(&format!("  {} profile(s) at {}", targets.len(), share.label()));
        match share {
            SoloShare::Device => {
                let ctx = ExecContext::primary(&device);
                for t in &targets {
                    all.extend(crate::solo::profile(lib, &ctx, device.info().sm_count, ceilings, t)?);
                }
                let pairs = targets.len() * targets.len().saturating_sub(1);
                progress.phase(&format!(
                    "  switch profile of {} whole-GPU profile(s): {pairs} ordered pairs, {} replays each",
                    targets.len(),
                    crate::switch::REPLAYS_PER_PAIR
                ));
                all.switches = crate::switch::profile(lib, &ctx, &targets)?;
                // as a resumed measurement loads them
                all = all.with_measured_switches();
            }
            SoloShare::Green { sms } => {
                let split = SmSplit::new(&device, None)?;
                let part = split.partition(&[("solo", sms)])?.remove(0);
                for t in &targets {
                    all.extend(crate::solo::profile(lib, &part.context, part.granted_sms, ceilings, t)?);
                }
            }
            SoloShare::Mps { percent } => {
                let worker =
                    worker.ok_or_else(|| Error::invalid("MPS solo profiles", "need coloc's own executable"))?;
                if daemon.is_none() {
                    daemon = Some(MpsDaemon::start()?);
                }
                let d = daemon.as_ref().expect("started");
                all.extend(solo_in_client(&Clients::Mps(d), worker, Some(percent), targets, ceilings)?);
            }
            SoloShare::Process => {
                // after the MPS ones (shares sort that way): no MPS server beside this client
                if let Some(mut d) = daemon.take() {
                    d.stop()?;
                }
                crate::settle::settle(nvml);
                let worker = worker
                    .ok_or_else(|| Error::invalid("solo profiles in a process", "need coloc's own executable"))?;
                all.extend(solo_in_client(&Clients::Plain, worker, None, targets, ceilings)?);
            }
        }
    }
    if let Some(mut d) = daemon {
        d.stop()?;
    }
    Ok(all)
}

/// Hardware counters of every solo (model, batch) on the whole GPU, from ncu.
fn ncu_counters(
    suite: &Suite,
    solo: &SoloProfiles,
    opts: &MeasureOptions,
    progress: &dyn Progress,
) -> Result<Vec<coloc_dataset::solo_rows::SoloCounterRow>> {
    let exe = opts
        .worker
        .as_ref()
        .map(|w| w.program.clone())
        .ok_or_else(|| Error::invalid("--ncu", "needs coloc's own executable"))?;
    let mut out = Vec::new();
    let pairs: BTreeSet<(String, u32)> = solo.nodes.iter().map(|n| (n.model.clone(), n.batch)).collect();
    for (name, batch) in pairs {
        progress.phase(&format!("ncu counters of {name} at batch {batch}"));
        let model = suite
            .scenarios
            .iter()
            .flat_map(|s| s.tenants.iter().map(|t| t.model.clone()))
            .find(|m| ModelSpec::resolve(m, &suite.base_dir).is_ok_and(|(s, _)| s.name == name))
            .unwrap_or(name.clone());
        let target = if model.ends_with(".toml") || model.contains('/') {
            suite.base_dir.join(&model).display().to_string()
        } else {
            model
        };
        let nodes: Vec<_> = solo.nodes.iter().filter(|n| n.model == name && n.batch == batch).cloned().collect();
        out.extend(crate::ncu::profile(&exe, &target, batch as usize, &nodes, &opts.out)?);
    }
    Ok(out)
}

/// Writes the solo tables into `dir`.
pub fn write_solo(dir: &std::path::Path, solo: &SoloProfiles) -> Result<()> {
    store::save(dir, &solo.models)?;
    store::save(dir, &solo.ops)?;
    store::save(dir, &solo.kernels)?;
    store::save(dir, &solo.nodes)?;
    // written even empty: a suite with one model on the whole GPU has no switch to profile,
    // which is not the same as a dataset measured before switch profiles
    store::save(dir, &solo.switches)?;
    if !solo.counters.is_empty() {
        store::save(dir, &solo.counters)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_237_379.9), "2026-11-21T05:02:59Z");
    }
}
