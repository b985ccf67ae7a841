//! The dataset on disk. A run writes each repetition's tables into `parts/<run>/` as soon as it
//! finishes (through a temporary directory renamed into place, so a killed run never leaves
//! half a part), then appends a line to `progress.jsonl`; `--resume` skips every run listed
//! there. When the suite is done the parts are consolidated into one Parquet file per table.
//! The schema is in docs/dataset.md.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run::RunData;
use crate::sampler::DeviceSampleRow;
use crate::solo::SoloProfiles;
use crate::validity::Verdict;

/// Tables a run writes, and the consolidated dataset holds.
pub const RUN_TABLES: [&str; 6] = ["requests", "batches", "kernels", "device_samples", "tenants", "aggressors"];
pub const SOLO_TABLES: [&str; 4] = ["solo_models", "solo_ops", "solo_launches", "solo_counters"];

fn pe(path: &Path, e: PolarsError) -> Error {
    Error::invalid(path.display().to_string(), e.to_string())
}

/// One line of `progress.jsonl`: a finished repetition and its verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgressLine {
    pub run: String,
    pub scenario: String,
    pub rep: usize,
    pub partition: String,
    pub verdict: Verdict,
    pub started_unix_s: f64,
    pub wall_s: f64,
}

pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    ParquetWriter::new(file).with_compression(ParquetCompression::Zstd(None)).finish(df).map_err(|e| pe(path, e))?;
    Ok(())
}

pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(file).finish().map_err(|e| pe(path, e))
}

/// A JSON file of the dataset (manifest, scenarios, solo profiles).
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
}

fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.column(name).map_err(|e| Error::invalid(name, e.to_string()))
}

/// A column as integers (null: None).
pub fn opt_i64s(df: &DataFrame, name: &str) -> Result<Vec<Option<i64>>> {
    let c = column(df, name)?.cast(&DataType::Int64).map_err(|e| Error::invalid(name, e.to_string()))?;
    Ok(c.i64().map_err(|e| Error::invalid(name, e.to_string()))?.iter().collect())
}

/// A column as strings (null: empty).
pub fn strs(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let c = column(df, name)?.str().map_err(|e| Error::invalid(name, e.to_string()))?;
    Ok(c.iter().map(|v| v.unwrap_or("").to_string()).collect())
}

/// A column as booleans (null: false).
pub fn bools(df: &DataFrame, name: &str) -> Result<Vec<bool>> {
    let c = column(df, name)?.bool().map_err(|e| Error::invalid(name, e.to_string()))?;
    Ok(c.iter().map(|v| v.unwrap_or(false)).collect())
}

fn frame(path: &Path, columns: Vec<Column>) -> Result<DataFrame> {
    let height = columns.first().map_or(0, |c| c.len());
    DataFrame::new(height, columns).map_err(|e| pe(path, e))
}

fn col<T, P: ?Sized>(name: &str, values: T) -> Column
where
    Series: NamedFrom<T, P>,
{
    Series::new(name.into(), values).into_column()
}

/// Writes one repetition's tables into `parts/<run>` (atomically) and appends its progress line.
pub fn write_run(dir: &Path, line: &ProgressLine, data: Option<&RunData>) -> Result<()> {
    let parts = dir.join("parts");
    let tmp = parts.join(format!(".tmp-{}", line.run));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Some(data) = data {
        let run = line.run.as_str();
        for (name, mut df) in run_tables(run, data, &tmp)? {
            write_parquet(&tmp.join(format!("{name}.parquet")), &mut df)?;
        }
    }
    let target = parts.join(&line.run);
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
    let progress = dir.join("progress.jsonl");
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(&progress).map_err(|e| Error::io(&progress, e))?;
    writeln!(f, "{}", serde_json::to_string(line).expect("progress serialises"))
        .map_err(|e| Error::io(&progress, e))?;
    f.sync_all().map_err(|e| Error::io(&progress, e))?;
    Ok(())
}

/// Runs already finished, from `progress.jsonl` (a torn last line, from a kill mid-write, is
/// ignored: that run is redone).
pub fn read_progress(dir: &Path) -> Result<Vec<ProgressLine>> {
    let path = dir.join("progress.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str(l) {
            Ok(p) => out.push(p),
            Err(_) if i + 1 == lines.len() => {} // torn by a kill mid-write: that run is redone
            Err(e) => return Err(Error::invalid(format!("{}:{}", path.display(), i + 1), e.to_string())),
        }
    }
    Ok(out)
}

/// Before resuming: cuts a torn last line (a kill mid-write) off `progress.jsonl`, so that
/// the next line appended starts on a line of its own, and returns the finished runs.
pub fn recover_progress(dir: &Path) -> Result<Vec<ProgressLine>> {
    let path = dir.join("progress.jsonl");
    match std::fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() && bytes.last() != Some(&b'\n') => {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
            f.set_len(keep as u64).map_err(|e| Error::io(&path, e))?;
            f.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    read_progress(dir)
}

/// Removes parts that have no progress line (a run killed between writing and recording).
pub fn remove_stale_parts(dir: &Path, done: &[ProgressLine]) -> Result<Vec<String>> {
    let parts = dir.join("parts");
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(&parts) else { return Ok(removed) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !done.iter().any(|d| d.run == name) {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

fn run_tables(run: &str, d: &RunData, path: &Path) -> Result<Vec<(&'static str, DataFrame)>> {
    let r = &d.records.requests;
    let slo = |tenant: u16| d.tenants.iter().find(|t| t.index == tenant).map_or(f64::INFINITY, |t| t.slo_ms);
    let requests = frame(
        path,
        vec![
            col("run", vec![run; r.len()]),
            col("tenant", r.iter().map(|x| x.tenant).collect::<Vec<_>>()),
            col("request", r.iter().map(|x| x.request).collect::<Vec<_>>()),
            col("batch", r.iter().map(|x| (x.batch != u32::MAX).then_some(x.batch)).collect::<Vec<_>>()),
            col("arrival_ns", r.iter().map(|x| x.arrival_ns).collect::<Vec<_>>()),
            col("formed_ns", r.iter().map(|x| x.formed_ns).collect::<Vec<_>>()),
            col("start_ns", r.iter().map(|x| x.start_ns).collect::<Vec<_>>()),
            col("end_ns", r.iter().map(|x| x.end_ns).collect::<Vec<_>>()),
            col("queue_ns", r.iter().map(|x| x.queue_ns()).collect::<Vec<_>>()),
            col("latency_ns", r.iter().map(|x| x.latency_ns()).collect::<Vec<_>>()),
            col(
                "slo_met",
                r.iter().map(|x| x.latency_ns().is_some_and(|l| l as f64 / 1e6 <= slo(x.tenant))).collect::<Vec<_>>(),
            ),
            col("warmup", r.iter().map(|x| x.warmup).collect::<Vec<_>>()),
            col("completed", r.iter().map(|x| x.end_ns.is_some()).collect::<Vec<_>>()),
        ],
    )?;
    let b = &d.records.batches;
    let batches = frame(
        path,
        vec![
            col("run", vec![run; b.len()]),
            col("tenant", b.iter().map(|x| x.tenant).collect::<Vec<_>>()),
            col("batch", b.iter().map(|x| x.batch).collect::<Vec<_>>()),
            col("size", b.iter().map(|x| x.size).collect::<Vec<_>>()),
            col("bucket", b.iter().map(|x| x.bucket).collect::<Vec<_>>()),
            col("formed_ns", b.iter().map(|x| x.formed_ns).collect::<Vec<_>>()),
            col("start_ns", b.iter().map(|x| x.start_ns).collect::<Vec<_>>()),
            col("end_ns", b.iter().map(|x| x.end_ns).collect::<Vec<_>>()),
            col("host_done_ns", b.iter().map(|x| x.host_done_ns).collect::<Vec<_>>()),
            col("sampled", b.iter().map(|x| x.sampled).collect::<Vec<_>>()),
        ],
    )?;
    let k = &d.records.kernels;
    let kernels = frame(
        path,
        vec![
            col("run", vec![run; k.len()]),
            col("tenant", k.iter().map(|x| x.tenant).collect::<Vec<_>>()),
            col("batch", k.iter().map(|x| x.batch).collect::<Vec<_>>()),
            col("op", k.iter().map(|x| x.op).collect::<Vec<_>>()),
            col("start_ns", k.iter().map(|x| x.start_ns).collect::<Vec<_>>()),
            col("end_ns", k.iter().map(|x| x.end_ns).collect::<Vec<_>>()),
            col("start_inferred", k.iter().map(|x| x.start_inferred).collect::<Vec<_>>()),
        ],
    )?;
    let s: &Vec<DeviceSampleRow> = &d.samples;
    let samples = frame(
        path,
        vec![
            col("run", vec![run; s.len()]),
            col("t_ns", s.iter().map(|x| x.t_ns).collect::<Vec<_>>()),
            col("sm_clock_mhz", s.iter().map(|x| x.sample.sm_clock_mhz).collect::<Vec<_>>()),
            col("mem_clock_mhz", s.iter().map(|x| x.sample.mem_clock_mhz).collect::<Vec<_>>()),
            col("power_w", s.iter().map(|x| x.sample.power_w).collect::<Vec<_>>()),
            col("temperature_c", s.iter().map(|x| x.sample.temperature_c).collect::<Vec<_>>()),
            col("gpu_util_pct", s.iter().map(|x| x.sample.gpu_util_pct).collect::<Vec<_>>()),
            col("mem_util_pct", s.iter().map(|x| x.sample.mem_util_pct).collect::<Vec<_>>()),
            col("throttle", s.iter().map(|x| x.sample.throttle_reasons.join(",")).collect::<Vec<_>>()),
        ],
    )?;
    let t = &d.tenants;
    let tenants = frame(
        path,
        vec![
            col("run", vec![run; t.len()]),
            col("tenant", t.iter().map(|x| x.index).collect::<Vec<_>>()),
            col("name", t.iter().map(|x| x.name.clone()).collect::<Vec<_>>()),
            col("model", t.iter().map(|x| x.model.clone()).collect::<Vec<_>>()),
            col("batching", t.iter().map(|x| x.batching.clone()).collect::<Vec<_>>()),
            col("max_batch", t.iter().map(|x| x.max_batch as u32).collect::<Vec<_>>()),
            col("arrival", t.iter().map(|x| x.arrival.clone()).collect::<Vec<_>>()),
            col("rate_rps", t.iter().map(|x| x.rate_rps).collect::<Vec<_>>()),
            col("load", t.iter().map(|x| x.load).collect::<Vec<_>>()),
            col("slo_ms", t.iter().map(|x| x.slo_ms).collect::<Vec<_>>()),
            col("solo_latency_ms", t.iter().map(|x| x.solo_latency_ms).collect::<Vec<_>>()),
            col("priority", t.iter().map(|x| x.priority).collect::<Vec<_>>()),
            col("sms", t.iter().map(|x| x.sms).collect::<Vec<_>>()),
            col("mps_percent", t.iter().map(|x| x.mps_percent).collect::<Vec<_>>()),
            col("granted_sms", t.iter().map(|x| x.granted_sms).collect::<Vec<_>>()),
            col("scheduled_requests", t.iter().map(|x| x.scheduled_requests as u32).collect::<Vec<_>>()),
        ],
    )?;
    let a = &d.aggressors;
    let aggressors = frame(
        path,
        vec![
            col("run", vec![run; a.len()]),
            col("aggressor", a.iter().map(|x| crate::record::AGGRESSOR_ID_BASE + x.index).collect::<Vec<_>>()),
            col("name", a.iter().map(|x| x.name.clone()).collect::<Vec<_>>()),
            col("work", a.iter().map(|x| x.work.clone()).collect::<Vec<_>>()),
            col("start_s", a.iter().map(|x| x.start_s).collect::<Vec<_>>()),
            col("stop_s", a.iter().map(|x| x.stop_s).collect::<Vec<_>>()),
            col("priority", a.iter().map(|x| x.priority).collect::<Vec<_>>()),
            col("sms", a.iter().map(|x| x.sms).collect::<Vec<_>>()),
            col("mps_percent", a.iter().map(|x| x.mps_percent).collect::<Vec<_>>()),
            col("granted_sms", a.iter().map(|x| x.granted_sms).collect::<Vec<_>>()),
        ],
    )?;
    Ok(vec![
        ("requests", requests),
        ("batches", batches),
        ("kernels", kernels),
        ("device_samples", samples),
        ("tenants", tenants),
        ("aggressors", aggressors),
    ])
}

/// The `runs` table, from the progress lines.
fn runs_table(path: &Path, lines: &[ProgressLine]) -> Result<DataFrame> {
    frame(
        path,
        vec![
            col("run", lines.iter().map(|l| l.run.clone()).collect::<Vec<_>>()),
            col("scenario", lines.iter().map(|l| l.scenario.clone()).collect::<Vec<_>>()),
            col("rep", lines.iter().map(|l| l.rep as u32).collect::<Vec<_>>()),
            col("partition", lines.iter().map(|l| l.partition.clone()).collect::<Vec<_>>()),
            col("status", lines.iter().map(|l| l.verdict.status.word().to_string()).collect::<Vec<_>>()),
            col("reasons", lines.iter().map(|l| l.verdict.reasons.join("; ")).collect::<Vec<_>>()),
            col("notes", lines.iter().map(|l| l.verdict.notes.join("; ")).collect::<Vec<_>>()),
            col("started_unix_s", lines.iter().map(|l| l.started_unix_s).collect::<Vec<_>>()),
            col("wall_s", lines.iter().map(|l| l.wall_s).collect::<Vec<_>>()),
        ],
    )
}

/// Writes the solo tables into `dir`.
pub fn write_solo(dir: &Path, solo: &SoloProfiles) -> Result<()> {
    let m = &solo.models;
    let path = dir.join("solo_models.parquet");
    let mut df = frame(
        &path,
        vec![
            col("model", m.iter().map(|x| x.model.clone()).collect::<Vec<_>>()),
            col("batch", m.iter().map(|x| x.batch as u32).collect::<Vec<_>>()),
            col("seq", m.iter().map(|x| x.seq.map(|v| v as u32)).collect::<Vec<_>>()),
            col("context", m.iter().map(|x| x.context.map(|v| v as u32)).collect::<Vec<_>>()),
            col("ops", m.iter().map(|x| x.ops as u32).collect::<Vec<_>>()),
            col("latency_p50_us", m.iter().map(|x| x.latency_us.median).collect::<Vec<_>>()),
            col("latency_p05_us", m.iter().map(|x| x.latency_us.p05).collect::<Vec<_>>()),
            col("latency_p95_us", m.iter().map(|x| x.latency_us.p95).collect::<Vec<_>>()),
            col("eager_us", m.iter().map(|x| x.eager_us).collect::<Vec<_>>()),
            col("capacity_rps", m.iter().map(|x| x.capacity_rps).collect::<Vec<_>>()),
        ],
    )?;
    write_parquet(&path, &mut df)?;
    let o = &solo.ops;
    let path = dir.join("solo_ops.parquet");
    let mut df = frame(
        &path,
        vec![
            col("model", o.iter().map(|x| x.model.clone()).collect::<Vec<_>>()),
            col("batch", o.iter().map(|x| x.batch as u32).collect::<Vec<_>>()),
            col("op", o.iter().map(|x| x.op as u16).collect::<Vec<_>>()),
            col("layer", o.iter().map(|x| x.layer.clone()).collect::<Vec<_>>()),
            col("kind", o.iter().map(|x| x.kind.clone()).collect::<Vec<_>>()),
            col("shape", o.iter().map(|x| x.shape.clone()).collect::<Vec<_>>()),
            col("kernels", o.iter().map(|x| x.kernels.clone()).collect::<Vec<_>>()),
            col("flops", o.iter().map(|x| x.flops).collect::<Vec<_>>()),
            col("macs", o.iter().map(|x| x.macs).collect::<Vec<_>>()),
            col("dram_bytes", o.iter().map(|x| x.dram_bytes).collect::<Vec<_>>()),
            col("time_us", o.iter().map(|x| x.time_us).collect::<Vec<_>>()),
            col("tflops", o.iter().map(|x| x.tflops).collect::<Vec<_>>()),
            col("gbps", o.iter().map(|x| x.gbps).collect::<Vec<_>>()),
            col("compute_fraction", o.iter().map(|x| x.compute_fraction).collect::<Vec<_>>()),
            col("memory_fraction", o.iter().map(|x| x.memory_fraction).collect::<Vec<_>>()),
            col("start_inferred", o.iter().map(|x| x.start_inferred).collect::<Vec<_>>()),
        ],
    )?;
    write_parquet(&path, &mut df)?;
    let l = &solo.launches;
    let path = dir.join("solo_launches.parquet");
    let mut df = frame(
        &path,
        vec![
            col("model", l.iter().map(|x| x.model.clone()).collect::<Vec<_>>()),
            col("batch", l.iter().map(|x| x.batch as u32).collect::<Vec<_>>()),
            col("op", l.iter().map(|x| x.op as u16).collect::<Vec<_>>()),
            col("node", l.iter().map(|x| x.node as u16).collect::<Vec<_>>()),
            col("kernel", l.iter().map(|x| x.name.clone()).collect::<Vec<_>>()),
            col("grid_blocks", l.iter().map(|x| x.grid.0 * x.grid.1 * x.grid.2).collect::<Vec<_>>()),
            col("block_threads", l.iter().map(|x| x.block.0 * x.block.1 * x.block.2).collect::<Vec<_>>()),
            col("registers", l.iter().map(|x| x.registers).collect::<Vec<_>>()),
            col("smem_bytes", l.iter().map(|x| x.smem_bytes).collect::<Vec<_>>()),
            col("blocks_per_sm", l.iter().map(|x| x.blocks_per_sm).collect::<Vec<_>>()),
            col("occupancy", l.iter().map(|x| x.occupancy).collect::<Vec<_>>()),
        ],
    )?;
    write_parquet(&path, &mut df)?;
    let c = &solo.counters;
    if c.is_empty() {
        return Ok(());
    }
    let path = dir.join("solo_counters.parquet");
    let mut df = frame(
        &path,
        vec![
            col("model", c.iter().map(|x| x.model.clone()).collect::<Vec<_>>()),
            col("batch", c.iter().map(|x| x.batch as u32).collect::<Vec<_>>()),
            col("op", c.iter().map(|x| x.op as u16).collect::<Vec<_>>()),
            col("node", c.iter().map(|x| x.node as u16).collect::<Vec<_>>()),
            col("kernel", c.iter().map(|x| x.kernel.clone()).collect::<Vec<_>>()),
            col("metric", c.iter().map(|x| x.metric.clone()).collect::<Vec<_>>()),
            col("unit", c.iter().map(|x| x.unit.clone()).collect::<Vec<_>>()),
            col("value", c.iter().map(|x| x.value).collect::<Vec<_>>()),
        ],
    )?;
    write_parquet(&path, &mut df)
}

/// Concatenates every part's tables into `dir/<table>.parquet`, writes `runs.parquet`, and
/// removes the parts.
pub fn consolidate(dir: &Path, lines: &[ProgressLine]) -> Result<()> {
    for table in RUN_TABLES {
        let mut all: Option<DataFrame> = None;
        for l in lines {
            let path = dir.join("parts").join(&l.run).join(format!("{table}.parquet"));
            if !path.exists() {
                continue; // a failed run writes no tables
            }
            let df = read_parquet(&path)?;
            match &mut all {
                None => all = Some(df),
                Some(acc) => {
                    acc.vstack_mut(&df).map_err(|e| pe(&path, e))?;
                }
            }
        }
        let target = dir.join(format!("{table}.parquet"));
        if let Some(mut df) = all {
            df.rechunk_mut();
            write_parquet(&target, &mut df)?;
        }
    }
    let path = dir.join("runs.parquet");
    write_parquet(&path, &mut runs_table(&path, lines)?)?;
    // Renamed first, in one step: a kill while deleting must not leave some parts behind for a
    // later --resume to consolidate again over the complete tables.
    let parts = dir.join("parts");
    let retired = dir.join(RETIRED_PARTS);
    if parts.exists() {
        let _ = std::fs::remove_dir_all(&retired);
        std::fs::rename(&parts, &retired).map_err(|e| Error::io(&parts, e))?;
    }
    remove_retired_parts(dir)
}

/// Where consolidated parts go before they are deleted.
const RETIRED_PARTS: &str = "parts.consolidated";

/// Deletes parts left by a consolidation that was killed while deleting them.
pub fn remove_retired_parts(dir: &Path) -> Result<()> {
    let retired = dir.join(RETIRED_PARTS);
    if retired.exists() {
        std::fs::remove_dir_all(&retired).map_err(|e| Error::io(&retired, e))?;
    }
    Ok(())
}

/// The part directory of a run (for tests and inspection).
pub fn part_dir(dir: &Path, run: &str) -> PathBuf {
    dir.join("parts").join(run)
}
