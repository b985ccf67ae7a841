//! `coloc measure SUITE --out DIR`: the whole measurement of a suite.
//!
//! 1. Manifest: device, driver, CUDA libraries, MPS/MIG state, clocks, ceilings, the suite
//!    (copied, with its expanded scenarios), coloc's version and commit.
//! 2. Harness overhead, from a null workload.
//! 3. Solo profiles of every (model, batch) the scenarios use.
//! 4. Every repetition of every scenario, each written out as it finishes; a failed run is
//!    recorded with its reason and the suite goes on. `--resume` skips finished runs.
//! 5. Consolidation into one Parquet file per table, and `summary.txt`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use coloc_kernels::ceilings::{self, Ceilings};
use coloc_kernels::gpu::{Blas, Device, ExecContext, KernelLibrary, nvrtc};
use coloc_kernels::nvml::NvmlDevice;
use coloc_kernels::partition::probe::WorkerCommand;
use coloc_kernels::partition::{green, mig, mps};
use coloc_workloads::graph::BuildOptions;
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::{DeviceLimits, Scenario};
use coloc_workloads::suite::Suite;
use serde::Serialize;

use crate::dataset::{self, ProgressLine, read_json};
use crate::error::{Error, Result};
use crate::overhead::{self, HarnessOverhead};
use crate::run::{self, RunEnv};
use crate::solo::{self, SoloProfiles, SoloTarget};
use crate::validity::{self, Status, Verdict};

/// What built this binary, for the manifest.
#[derive(Clone, Debug, Serialize)]
pub struct ToolInfo {
    pub version: String,
    pub git_commit: String,
    pub command: String,
}

pub struct MeasureOptions {
    pub suite: PathBuf,
    pub out: PathBuf,
    pub resume: bool,
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
    fn run_done(&self, line: &ProgressLine);
}

#[derive(Serialize)]
struct Manifest<'a> {
    tool: &'a ToolInfo,
    started_unix_s: f64,
    started_utc: String,
    host: String,
    device: &'a coloc_kernels::gpu::DeviceInfo,
    nvml_settings: Option<coloc_kernels::nvml::DeviceSettings>,
    nvml_at_start: Option<coloc_kernels::nvml::DeviceSample>,
    nvrtc_version: String,
    cublas_version: i32,
    mps_control: Option<String>,
    mig: mig::MigStatus,
    green_contexts: green::GreenSupport,
    limits: &'a DeviceLimits,
    ceilings: &'a Ceilings,
    harness_overhead: &'a HarnessOverhead,
    suite: SuiteInfo,
    seeds_note: &'static str,
}

#[derive(Serialize)]
struct SuiteInfo {
    name: String,
    path: String,
    fnv64: String,
    scenarios: usize,
    runs: usize,
    /// `--only` patterns that chose the runs (none: every run of the suite).
    only: Vec<String>,
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
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    format!("{h:016x}")
}

/// The repetitions a run measures, in order: (scenario index, scenario, repetition), for the
/// scenarios whose name contains one of `only` (case-insensitive; none: all of them).
pub fn selected_runs<'a>(scenarios: &'a [Scenario], only: &[String]) -> Vec<(usize, &'a Scenario, usize)> {
    scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| only.is_empty() || only.iter().any(|p| s.name.to_lowercase().contains(&p.to_lowercase())))
        .flat_map(|(i, s)| (1..=s.repetitions).map(move |r| (i, s, r)))
        .collect()
}

/// The runs of `runs` that `done` (the progress log) does not list yet.
pub fn pending<'r, 's>(
    runs: &'r [(usize, &'s Scenario, usize)],
    done: &[ProgressLine],
) -> Vec<&'r (usize, &'s Scenario, usize)> {
    let finished: BTreeSet<&str> = done.iter().map(|d| d.run.as_str()).collect();
    runs.iter().filter(|(i, s, r)| !finished.contains(run_key(*i, s, *r).as_str())).collect()
}

/// The key of one repetition: its position in the suite, a file-safe name and the repetition.
pub fn run_key(index: usize, scenario: &Scenario, rep: usize) -> String {
    let slug: String = scenario
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    format!("{index:03}_{slug}__r{rep}")
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Runs `opts.suite` on GPU 0 into `opts.out`.
pub fn measure(
    device: &Arc<Device>,
    lib: &Arc<KernelLibrary>,
    opts: &MeasureOptions,
    progress: &dyn Progress,
) -> Result<Vec<ProgressLine>> {
    let out = &opts.out;
    let manifest_path = out.join("manifest.json");
    if opts.resume && !manifest_path.exists() {
        return Err(Error::invalid(out.display().to_string(), "nothing to resume: no manifest.json there"));
    }
    if !opts.resume && manifest_path.exists() {
        return Err(Error::invalid(
            out.display().to_string(),
            "already holds a run; pass --resume to continue it, or choose another --out",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let limits = crate::limits::of_device(device)?;
    let suite_text = std::fs::read_to_string(&opts.suite).map_err(|e| Error::io(&opts.suite, e))?;
    let suite = Suite::parse(&suite_text, &opts.suite, &limits)?;
    let check = suite.validate(&limits)?;
    let runs = selected_runs(&suite.scenarios, &opts.only);
    let nvml = NvmlDevice::open(&device.info().uuid).ok();

    let (solo, mut done) = if opts.resume {
        let m = read_json(&manifest_path)?;
        if m["suite"]["fnv64"].as_str() != Some(fnv64(&suite_text).as_str()) {
            return Err(Error::invalid(
                opts.suite.display().to_string(),
                "the suite changed since this run started; resume with the same file",
            ));
        }
        if m["device"]["uuid"].as_str() != Some(device.info().uuid.as_str()) {
            return Err(Error::invalid(out.display().to_string(), "this run was started on another GPU"));
        }
        if m["tool"]["git_commit"].as_str() != Some(opts.tool.git_commit.as_str()) {
            return Err(Error::invalid(
                out.display().to_string(),
                format!(
                    "this run was started by coloc {}, this binary is {}; resume with the same build so one dataset has one provenance",
                    m["tool"]["git_commit"].as_str().unwrap_or("?"),
                    opts.tool.git_commit
                ),
            ));
        }
        let recorded_only: Vec<String> = serde_json::from_value(m["suite"]["only"].clone()).unwrap_or_default();
        if recorded_only != opts.only {
            return Err(Error::invalid(
                out.display().to_string(),
                format!("this run was started with --only {recorded_only:?}; resume with the same selection"),
            ));
        }
        let solo: SoloProfiles = serde_json::from_value(read_json(&out.join("solo.json"))?)
            .map_err(|e| Error::invalid(out.join("solo.json").display().to_string(), e.to_string()))?;
        let done = dataset::recover_progress(out)?;
        dataset::remove_retired_parts(out)?;
        let stale = dataset::remove_stale_parts(out, &done)?;
        if !stale.is_empty() {
            progress.phase(&format!("removed {} unfinished part(s): {}", stale.len(), stale.join(", ")));
        }
        progress.phase(&format!("resuming: {} of {} runs already done", done.len(), runs.len()));
        (solo, done)
    } else {
        progress.phase("measuring the device's ceilings");
        let ctx = ExecContext::primary(device);
        let ceilings = ceilings::measure(lib, &ctx, false)?;
        progress.phase("measuring the harness overhead (null workload)");
        let overhead = overhead::measure(lib, &ceilings)?;
        let started = unix_now();
        let (major, minor) = nvrtc::version()?;
        let stream = ctx.new_stream(0)?;
        let manifest = Manifest {
            tool: &opts.tool,
            started_unix_s: started,
            started_utc: utc(started),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string(),
            device: device.info(),
            nvml_settings: nvml.as_ref().map(|n| n.settings()),
            nvml_at_start: nvml.as_ref().map(|n| n.sample()),
            nvrtc_version: format!("{major}.{minor}"),
            cublas_version: Blas::new(&stream)?.version()?,
            mps_control: mps::control_binary().map(|p| p.display().to_string()),
            mig: mig::status(nvml.as_ref()),
            green_contexts: green::support(device),
            limits: &limits,
            ceilings: &ceilings,
            harness_overhead: &overhead,
            suite: SuiteInfo {
                name: suite.name.clone(),
                path: opts.suite.display().to_string(),
                fnv64: fnv64(&suite_text),
                scenarios: suite.scenarios.len(),
                runs: runs.len(),
                only: opts.only.clone(),
            },
            seeds_note: "each scenario's seeds are in scenarios.json: `schedule` drives arrivals, `inputs` request data; repetitions reuse them",
        };
        write_text(&out.join("suite.toml"), &suite_text)?;
        write_text(
            &out.join("scenarios.json"),
            &serde_json::to_string_pretty(&suite.scenarios).expect("scenarios serialise"),
        )?;
        progress.phase(&format!("solo profiles of {} (model, batch) pairs", check.solo_profiles.len()));
        let mut solo = profile_all(lib, &ceilings, &suite, &check.solo_profiles)?;
        if opts.ncu {
            let exe = opts
                .worker
                .as_ref()
                .map(|w| w.program.clone())
                .ok_or_else(|| Error::invalid("--ncu", "needs coloc's own executable"))?;
            for (model, batch) in &check.solo_profiles {
                progress.phase(&format!("ncu counters of {model} at batch {batch}"));
                let target = if model.ends_with(".toml") || model.contains('/') {
                    suite.base_dir.join(model).display().to_string()
                } else {
                    model.clone()
                };
                let name = ModelSpec::resolve(model, &suite.base_dir)?.0.name;
                let launches: Vec<_> =
                    solo.launches.iter().filter(|l| l.model == name && l.batch == *batch).cloned().collect();
                solo.counters.extend(crate::ncu::profile(&exe, &target, *batch, &launches, out)?);
            }
        }
        write_text(&out.join("solo.json"), &serde_json::to_string(&solo).expect("solo serialises"))?;
        dataset::write_solo(out, &solo)?;
        // the manifest goes last: its presence marks a run that can be resumed
        write_text(&manifest_path, &serde_json::to_string_pretty(&manifest).expect("manifest serialises"))?;
        (solo, Vec::new())
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
    };
    for &&(i, scenario, rep) in &todo {
        let key = run_key(i, scenario, rep);
        let started = unix_now();
        let t0 = Instant::now();
        let (verdict, data) = match run::run(&env, scenario) {
            Ok(data) => (validity::judge(scenario, &data), Some(data)),
            Err(e) => (Verdict::failed(e.to_string()), None),
        };
        let line = ProgressLine {
            run: key,
            scenario: scenario.name.clone(),
            rep,
            partition: scenario.partition.name().to_string(),
            verdict,
            started_unix_s: started,
            wall_s: t0.elapsed().as_secs_f64(),
        };
        dataset::write_run(out, &line, data.as_ref())?;
        progress.run_done(&line);
        done.push(line);
    }
    progress.phase("consolidating the tables");
    let order: Vec<String> = runs.iter().map(|(i, s, r)| run_key(*i, s, *r)).collect();
    done.sort_by_key(|l| order.iter().position(|k| *k == l.run).unwrap_or(usize::MAX));
    dataset::consolidate(out, &done)?;
    let manifest = read_json(&manifest_path)?;
    write_text(&out.join("summary.txt"), &summary(&manifest, &suite, &done))?;
    Ok(done)
}

fn profile_all(
    lib: &Arc<KernelLibrary>,
    ceilings: &Ceilings,
    suite: &Suite,
    pairs: &BTreeSet<(String, usize)>,
) -> Result<SoloProfiles> {
    let mut all = SoloProfiles::default();
    for (model, batch) in pairs {
        let (spec, _) = ModelSpec::resolve(model, &suite.base_dir)?;
        let p = solo::profile(
            lib,
            ceilings,
            &SoloTarget { spec, options: BuildOptions { batch: *batch, ..Default::default() } },
        )?;
        all.models.extend(p.models);
        all.ops.extend(p.ops);
        all.launches.extend(p.launches);
    }
    Ok(all)
}

/// The human summary: one line per run with its verdict, then the noise floor.
pub fn summary(manifest: &serde_json::Value, suite: &Suite, lines: &[ProgressLine]) -> String {
    let mut s = String::new();
    let dev = &manifest["device"];
    s.push_str(&format!(
        "coloc measure: suite `{}` ({} scenarios, {} runs) on {} ({}), coloc {} (commit {})\n",
        suite.name,
        suite.scenarios.len(),
        lines.len(),
        dev["name"].as_str().unwrap_or("?"),
        dev["uuid"].as_str().unwrap_or("?"),
        manifest["tool"]["version"].as_str().unwrap_or("?"),
        manifest["tool"]["git_commit"].as_str().unwrap_or("?")
    ));
    s.push_str(&format!("started {}\n", manifest["started_utc"].as_str().unwrap_or("?")));
    let o = &manifest["harness_overhead"];
    s.push_str(&format!(
        "harness overhead (null workload, {} requests at {} req/s): +{:.1} us request latency (arrival to kernel start {:.1} us, completion noticed {:.1} us after the kernel), kernel {:.2} us in the loop vs {:.2} us alone\n",
        o["requests"], o["rate_rps"],
        o["latency_us"].as_f64().unwrap_or(f64::NAN) - o["kernel_us"].as_f64().unwrap_or(f64::NAN),
        o["dispatch_us"].as_f64().unwrap_or(f64::NAN),
        o["notice_us"].as_f64().unwrap_or(f64::NAN),
        o["kernel_us"].as_f64().unwrap_or(f64::NAN),
        o["solo_kernel_us"].as_f64().unwrap_or(f64::NAN),
    ));
    if let (Some(map), Some(check)) = (o["clock"].as_object(), o["clock_check"].as_object()) {
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        s.push_str(&format!(
            "host/GPU clock: offset known within {:.2} us; {} of {} bracketed launches outside it (launch to stamp {:.1} us, stamp to return {:.1} us, tightest margin {:.2} us)\n",
            f(&map["uncertainty_ns"]) / 1e3,
            check["outside"],
            check["launches"],
            f(&check["launch_to_stamp_us"]),
            f(&check["stamp_to_return_us"]),
            f(&check["tightest_margin_us"]),
        ));
    }
    let count = |st: Status| lines.iter().filter(|l| l.verdict.status == st).count();
    s.push_str(&format!(
        "runs: {} VALID, {} INVALID, {} FAILED\n\n",
        count(Status::Valid),
        count(Status::Invalid),
        count(Status::Failed)
    ));
    for l in lines {
        let tenants: Vec<String> = l
            .verdict
            .tenants
            .iter()
            .map(|t| {
                format!(
                    "{} p50 {:.2} ms p99 {:.2} ms slo {:.1}% ({:.2} ms) {:.0} req/s slowdown {:.2}",
                    t.name,
                    t.p50_ms,
                    t.p99_ms,
                    100.0 * t.slo_attainment,
                    t.slo_ms,
                    t.throughput_rps,
                    t.slowdown
                )
            })
            .collect();
        s.push_str(&format!("{:<8} {} r{}: {}\n", l.verdict.status.word(), l.scenario, l.rep, tenants.join(" | ")));
        for r in &l.verdict.reasons {
            s.push_str(&format!("         because {r}\n"));
        }
        for n in &l.verdict.notes {
            s.push_str(&format!("         note: {n}\n"));
        }
    }
    let repeated: Vec<&Scenario> = suite.scenarios.iter().filter(|sc| sc.repetitions > 1).collect();
    if !repeated.is_empty() {
        s.push_str(
            "\nnoise floor (the same scenario measured again; spread = (max - min) / median of the per-run medians):\n",
        );
        for sc in repeated {
            let reps: Vec<&ProgressLine> =
                lines.iter().filter(|l| l.scenario == sc.name && l.verdict.status != Status::Failed).collect();
            let mut parts = Vec::new();
            for t in &sc.tenants {
                let p50: Vec<f64> = reps
                    .iter()
                    .filter_map(|l| l.verdict.tenants.iter().find(|x| x.name == t.name))
                    .map(|x| x.p50_ms)
                    .collect();
                if p50.len() < 2 {
                    continue;
                }
                let med = coloc_kernels::stats::median_of(&p50);
                let spread =
                    (p50.iter().cloned().fold(f64::MIN, f64::max) - p50.iter().cloned().fold(f64::MAX, f64::min)) / med;
                let list: Vec<String> = p50.iter().map(|v| format!("{v:.3}")).collect();
                parts.push(format!("{} p50 {} ms (spread {:.1}%)", t.name, list.join("/"), 100.0 * spread));
            }
            s.push_str(&format!("  {}: {}\n", sc.name, parts.join(", ")));
        }
    }
    s
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

    #[test]
    fn run_keys_are_file_safe_and_ordered() {
        let s = Scenario {
            name: "pairs/resnet50+bert_base/b8/green-56_56/load0.5".into(),
            partition: coloc_workloads::scenario::PartitionKind::Green,
            tenants: vec![],
            aggressors: vec![],
            duration_s: 1.0,
            min_queries: 1,
            warmup_s: 0.0,
            repetitions: 1,
            seeds: Default::default(),
        };
        assert_eq!(run_key(7, &s, 2), "007_pairs_resnet50_bert_base_b8_green-56_56_load0.5__r2");
    }
}
