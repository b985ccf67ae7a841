//! The optional `--ncu` pass: hardware counters of every kernel of every solo profile, from
//! Nsight Compute. coloc re-runs itself under `ncu` (hidden command `__ncu-solo`), which fills
//! the model's buffers with profiling off, then launches the operators one by one between
//! `cuProfilerStart` and `cuProfilerStop`; the kernels ncu reports are matched to operators by
//! launch order, using the launch lists of the solo profile. Clocks are left alone
//! (`--clock-control none`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use coloc_dataset::solo_rows::{SoloCounterRow, SoloNodeRow};
use coloc_kernels::gpu::{Device, ExecContext, KernelLibrary, StreamLibraries};
use coloc_kernels::ops::LaunchEnv;
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;

use crate::error::{Error, Result};
use crate::model::ModelInstance;

/// Counters collected per kernel.
pub const METRICS: [&str; 8] = [
    "gpu__time_duration.sum",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "lts__throughput.avg.pct_of_peak_sustained_elapsed",
    "dram__bytes.sum",
    "lts__t_bytes.sum",
    "sm__warps_active.avg.pct_of_peak_sustained_active",
];

/// Finds `ncu` on PATH or in the toolkit's usual places.
pub fn ncu_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.push(PathBuf::from("/usr/local/cuda/bin"));
    if let Ok(entries) = std::fs::read_dir("/opt/nvidia/nsight-compute") {
        dirs.extend(entries.flatten().map(|e| e.path()));
    }
    dirs.into_iter().map(|d| d.join("ncu")).find(|p| p.is_file())
}

/// Profiles one (model, batch) under ncu; `exe` is coloc itself, `model` a shipped name or an
/// absolute model-file path, `nodes` the solo profile's kernel nodes of this (model, batch).
pub fn profile(
    exe: &Path,
    model: &str,
    batch: usize,
    nodes: &[SoloNodeRow],
    scratch: &Path,
) -> Result<Vec<SoloCounterRow>> {
    let ncu = ncu_binary()
        .ok_or_else(|| Error::invalid("--ncu", "ncu (Nsight Compute) is not on PATH nor in /usr/local/cuda/bin"))?;
    let name = Path::new(model).file_stem().and_then(|s| s.to_str()).unwrap_or(model).to_string();
    let log = scratch.join(format!("ncu-{name}-b{batch}.csv"));
    let out = Command::new(&ncu)
        .args([
            "--clock-control",
            "none",
            "--profile-from-start",
            "off",
            "--csv",
            "--metrics",
            &METRICS.join(","),
            "--log-file",
        ])
        .arg(&log)
        .arg(exe)
        .args(["__ncu-solo", model, &batch.to_string()])
        .output()
        .map_err(|e| Error::invalid("--ncu", format!("could not run {}: {e}", ncu.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::invalid(
            format!("ncu on {name} at batch {batch}"),
            err.lines().last().unwrap_or("failed").to_string(),
        ));
    }
    let text = std::fs::read_to_string(&log).map_err(|e| Error::io(&log, e))?;
    parse(&text, &name, batch, nodes)
}

/// Reads ncu's `--csv` output and attributes each profiled launch to an operator by order.
pub fn parse(text: &str, model: &str, batch: usize, nodes: &[SoloNodeRow]) -> Result<Vec<SoloCounterRow>> {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('"')).collect();
    let Some(header) = lines.first() else { return Ok(Vec::new()) };
    let fields = |l: &str| -> Vec<String> { split_csv(l) };
    let head = fields(header);
    let idx = |name: &str| {
        head.iter().position(|h| h == name).ok_or_else(|| Error::invalid("ncu csv", format!("no `{name}` column")))
    };
    let (id_c, name_c, metric_c, unit_c, value_c) =
        (idx("ID")?, idx("Kernel Name")?, idx("Metric Name")?, idx("Metric Unit")?, idx("Metric Value")?);
    let mut order: Vec<(u16, u16)> = nodes.iter().map(|l| (l.op, l.node)).collect();
    order.sort();
    let mut out = Vec::new();
    for l in &lines[1..] {
        let f = fields(l);
        let id: usize =
            f[id_c].parse().map_err(|_| Error::invalid("ncu csv", format!("bad launch id {:?}", f[id_c])))?;
        let Some(&(op, node)) = order.get(id) else {
            return Err(Error::invalid(
                "ncu csv",
                format!("{model} b{batch}: ncu reports launch {id} but the graph has {} kernels", order.len()),
            ));
        };
        out.push(SoloCounterRow {
            model: model.to_string(),
            batch: batch as u32,
            op,
            node,
            kernel: f[name_c].split('(').next().unwrap_or("").trim().to_string(),
            metric: f[metric_c].clone(),
            unit: f[unit_c].clone(),
            value: f[value_c].replace(',', "").parse().unwrap_or(f64::NAN),
        });
    }
    Ok(out)
}

/// Splits one line of ncu's CSV (every field quoted).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The body of `coloc __ncu-solo MODEL BATCH` (run under ncu).
pub fn solo_worker(model: &str, batch: usize) -> Result<()> {
    let (spec, _) = ModelSpec::resolve(model, Path::new("."))?;
    let device: Arc<Device> = Device::open(0)?;
    let lib = KernelLibrary::new(&device);
    let ctx = ExecContext::primary(&device);
    let stream = ctx.new_stream(0)?;
    let libs = StreamLibraries::new(&stream)?;
    let env = LaunchEnv { lib: &lib, stream: &stream, libs: Some(&libs), bracket_library_calls: false };
    let inst =
        ModelInstance::allocate(&device, ModelGraph::build(&spec, &BuildOptions { batch, ..Default::default() })?)?;
    inst.initialize(&env, 1, 2)?;
    // one unprofiled pass loads every kernel, so ncu sees only the pass below
    inst.launch_eager(&env, false)?;
    stream.synchronize()?;
    unsafe { cudarc::driver::sys::cuProfilerStart() };
    inst.launch_eager(&env, false)?;
    stream.synchronize()?;
    unsafe { cudarc::driver::sys::cuProfilerStop() };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(op: u16, node: u16) -> SoloNodeRow {
        SoloNodeRow {
            model: "m".into(),
            batch: 1,
            op,
            node,
            launch: None,
            kernel: String::new(),
            grid_blocks: 1,
            block_threads: 1,
            registers: 0,
            smem_bytes: 0,
            blocks_per_sm: 0,
            occupancy: 0.0,
        }
    }

    #[test]
    fn ncu_rows_are_attributed_to_operators_by_launch_order() {
        let csv = "==PROF== Connected\n\
\"ID\",\"Process ID\",\"Kernel Name\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n\
\"0\",\"7\",\"im2col_bf16(unsigned short*, int)\",\"gpu__time_duration.sum\",\"ns\",\"1,234\"\n\
\"1\",\"7\",\"nvjet_sm90(x)\",\"gpu__time_duration.sum\",\"us\",\"5.5\"\n\
\"2\",\"7\",\"layer_norm_bf16(y)\",\"dram__bytes.sum\",\"byte\",\"4096\"\n";
        let launches = [launch(1, 0), launch(0, 1), launch(0, 0)];
        let rows = parse(csv, "m", 1, &launches).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].op, rows[0].node, rows[0].kernel.as_str(), rows[0].value), (0, 0, "im2col_bf16", 1234.0));
        assert_eq!((rows[1].op, rows[1].node), (0, 1));
        assert_eq!((rows[2].op, rows[2].metric.as_str()), (1, "dram__bytes.sum"));
        let too_few = [launch(0, 0)];
        assert!(parse(csv, "m", 1, &too_few).is_err());
    }
}
