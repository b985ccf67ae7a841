//! `coloc models list | show | run | compare`

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use coloc_harness::model::ModelInstance;
use coloc_kernels::gpu::{Event, ExecContext, StreamLibraries};
use coloc_kernels::ops::{LaunchEnv, Launcher, OpSpec, Role};
use coloc_kernels::stats::Summary;
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::{BUILTIN, ModelSpec};
use serde::Serialize;

use super::{open_gpu, write_json};
use crate::cli::{FirstStep, RunModelsArgs, ShapeArgs, ShowArgs};
use crate::table::{Table, sig3};

fn options(batch: usize, shape: &ShapeArgs) -> BuildOptions {
    BuildOptions { batch, seq: shape.seq, context: shape.context }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

pub fn list() -> anyhow::Result<ExitCode> {
    let mut t = Table::new(&["<model", "<input", "params M", "GMAC/sample", "published M / GMAC", "<description"]);
    for (name, _) in BUILTIN {
        let (spec, _) = ModelSpec::resolve(name, Path::new("."))?;
        let g = ModelGraph::build(&spec, &BuildOptions { batch: 1, ..Default::default() })?;
        let tot = g.totals();
        let published = spec.published.as_ref().map_or("-".to_string(), |p| {
            format!("{:.2} / {}", p.params as f64 / 1e6, p.macs.map_or("-".into(), |m| format!("{:.2}", m / 1e9)))
        });
        t.row(vec![
            name.to_string(),
            format!("{:?}", spec.input).to_lowercase(),
            format!("{:.2}", tot.params as f64 / 1e6),
            format!("{:.3}", tot.macs / 1e9),
            published,
            spec.description.clone(),
        ]);
    }
    println!("{}", t.render());
    Ok(ExitCode::SUCCESS)
}

pub fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let (spec, source) = ModelSpec::resolve(&args.model, Path::new("."))?;
    let g = ModelGraph::build(&spec, &options(args.batch, &args.shape))?;
    println!("{}: {} ({source:?})", spec.name, spec.description);
    let shape = match (g.seq, g.context) {
        (Some(s), _) => format!(", sequence {s}"),
        (_, Some(c)) => format!(", context {c}"),
        _ => String::new(),
    };
    println!("batch {}{shape}, {} operators, storage {}", g.batch, g.ops.len(), g.dtype);
    let params = g.params_per_op();
    let mut t = Table::new(&["#", "<layer", "<operator", "<kernels", "GFLOP", "MMAC", "params", "<output"]);
    for (i, op) in g.ops.iter().enumerate() {
        let mut kernels: Vec<String> = Vec::new();
        for (library, name) in [(Launcher::Cublas, "cuBLAS"), (Launcher::Cudnn, "cuDNN")] {
            if op.op.launches().iter().any(|l| l.launcher == library) {
                kernels.push(name.into());
            }
        }
        kernels.extend(op.op.kernels().iter().map(|k| k.c_name()));
        let output = op.op.operands().into_iter().find(|o| o.role == Role::Output).map(|o| o.name);
        let out = output
            .and_then(|name| op.bindings.iter().find(|(n, _)| *n == name))
            .map_or("-".to_string(), |(_, t)| format!("{:?}", g.tensors[*t].shape));
        let c = op.op.cost();
        t.row(vec![
            (i + 1).to_string(),
            op.name.clone(),
            op.op.label(),
            kernels.join(" + "),
            format!("{:.3}", c.flops / 1e9),
            format!("{:.1}", c.macs / 1e6),
            params[i].to_string(),
            out,
        ]);
    }
    println!("{}", t.render());
    let tot = g.totals();
    let per = g.batch as f64;
    println!(
        "totals: {:.3} M parameters, {:.3} GMAC ({:.3} per sample), {:.3} GFLOP, {} of analytic DRAM traffic",
        tot.params as f64 / 1e6,
        tot.macs / 1e9,
        tot.macs / 1e9 / per,
        tot.flops / 1e9,
        mib(tot.dram_bytes as u64)
    );
    if let Some(p) = &spec.published {
        println!(
            "published: {:.3} M parameters{} ({})",
            p.params as f64 / 1e6,
            p.macs.map_or(String::new(), |m| format!(", {:.3} GMAC per sample", m / 1e9)),
            p.source
        );
    }
    println!(
        "memory: weights {}, inputs {}, activations {} allocated ({} live at peak), KV cache {}, scratch {}: {} in all",
        mib(tot.weight_bytes),
        mib(tot.input_bytes),
        mib(tot.activation_bytes),
        mib(tot.peak_activation_bytes),
        mib(tot.state_bytes),
        mib(tot.scratch_bytes),
        mib(tot.allocated_bytes())
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
pub struct RunResult {
    model: String,
    batch: usize,
    ops: usize,
    device_mib: f64,
    graph_gpu_ms: Summary,
    graph_host_ms: Summary,
    eager_gpu_ms: Summary,
    /// First launch's entry to last launch's exit, from the stamps of the last replay.
    kernel_span_ms: f64,
    /// The last replay's time between its events, which its stamped span must fit in.
    last_replay_gpu_ms: f64,
    output_finite: bool,
    /// For a softmax output: the largest deviation of a row sum from 1.
    softmax_row_error: Option<f64>,
    /// Where the time goes: operator kinds, most time first.
    by_kind: Vec<KindTime>,
}

/// The operators of one kind in one model: their summed median time per replay.
#[derive(Serialize)]
pub struct KindTime {
    kind: String,
    ops: usize,
    launches: usize,
    /// Each operator's time is the median over replays of its stamp span (first launch in to
    /// last launch out); library calls are bracketed by the stamps around them.
    us: f64,
    /// Of the summed operator times (gaps between operators excluded).
    fraction: f64,
}

/// Replays read back for the per-operator breakdown.
const BREAKDOWN_REPLAYS: usize = 15;

/// Median time of each operator over `replays` graph replays, grouped by kind.
fn time_by_kind(
    inst: &ModelInstance,
    stream: &coloc_kernels::gpu::Stream,
    replays: usize,
) -> anyhow::Result<Vec<KindTime>> {
    let launches = inst.launches();
    let mut per_op: Vec<Vec<f64>> = vec![Vec::with_capacity(replays); inst.graph.ops.len()];
    for _ in 0..replays {
        inst.launch(stream)?;
        stream.synchronize()?;
        for (times, span) in per_op.iter_mut().zip(inst.op_spans_us(&inst.launch_stamps()?)) {
            times.extend(span);
        }
    }
    let mut kinds: Vec<KindTime> = Vec::new();
    for (i, times) in per_op.iter_mut().enumerate() {
        let Some(us) = coloc_kernels::stats::Summary::of(times).map(|s| s.median) else { continue };
        let op = &inst.graph.ops[i].op;
        let n_launches = launches.iter().filter(|(o, _)| *o == i).count();
        match kinds.iter_mut().find(|k| k.kind == op.kind()) {
            Some(k) => {
                k.ops += 1;
                k.launches += n_launches;
                k.us += us;
            }
            None => {
                kinds.push(KindTime { kind: op.kind().to_string(), ops: 1, launches: n_launches, us, fraction: 0.0 })
            }
        }
    }
    let total: f64 = kinds.iter().map(|k| k.us).sum();
    for k in &mut kinds {
        k.fraction = k.us / total;
    }
    kinds.sort_by(|a, b| b.us.total_cmp(&a.us));
    Ok(kinds)
}

fn print_breakdown(r: &RunResult) {
    let mut t = Table::new(&["<operator", "ops", "launches", "us", "share"]);
    for k in &r.by_kind {
        t.row(vec![
            k.kind.clone(),
            k.ops.to_string(),
            k.launches.to_string(),
            sig3(k.us),
            format!("{:.1}%", 100.0 * k.fraction),
        ]);
    }
    println!("{} at batch {}: where the time goes (median per operator, summed by kind)", r.model, r.batch);
    println!("{}", t.render());
}

/// Times models on one stream of the primary context: graph replay and eager launches.
struct Timer<'a> {
    gpu: &'a super::Gpu,
    stream: coloc_kernels::gpu::Stream,
    libs: StreamLibraries,
    events: (Event, Event),
}

impl<'a> Timer<'a> {
    fn new(gpu: &'a super::Gpu) -> anyhow::Result<Timer<'a>> {
        let ctx = ExecContext::primary(&gpu.device);
        let stream = ctx.new_stream(0)?;
        let libs = StreamLibraries::new(&stream)?;
        Ok(Timer { gpu, stream, libs, events: (Event::new(&ctx)?, Event::new(&ctx)?) })
    }

    /// Runs `f` `n` times, each between events and waited for: GPU and host times, ms.
    fn time(&self, f: &dyn Fn() -> anyhow::Result<()>, n: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let (start, end) = &self.events;
        let (mut gpu_ms, mut host_ms) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let t0 = Instant::now();
            start.record(&self.stream)?;
            f()?;
            end.record(&self.stream)?;
            end.synchronize()?;
            host_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            gpu_ms.push(end.elapsed_ms_since(start)? as f64);
        }
        Ok((gpu_ms, host_ms))
    }

    /// One model at one batch size: `reps` graph replays after 3 warm-ups, eager launches, and
    /// the output's sanity.
    fn model(&self, spec: &ModelSpec, options: &BuildOptions, reps: usize) -> anyhow::Result<RunResult> {
        let env = LaunchEnv {
            lib: &self.gpu.lib,
            stream: &self.stream,
            libs: Some(&self.libs),
            bracket_library_calls: false,
        };
        let batch = options.batch;
        let graph = ModelGraph::build(spec, options)?;
        let mut inst = ModelInstance::allocate(&self.gpu.device, graph)?;
        inst.initialize(&env, 1, 2)?;
        inst.launch_eager(&env, false)?;
        self.stream.synchronize().with_context(|| format!("{} at batch {batch}", spec.name))?;
        inst.capture(&env)?;
        let replay = || -> anyhow::Result<()> { Ok(inst.launch(&self.stream)?) };
        self.time(&replay, 3)?;
        let (graph_gpu, graph_host) = self.time(&replay, reps)?;
        let span =
            coloc_kernels::timing::span_of(&inst.launch_stamps()?).duration_ns().map_or(f64::NAN, |ns| ns as f64 / 1e6);
        let eager = || -> anyhow::Result<()> { Ok(inst.launch_eager(&env, false)?) };
        let (eager_gpu, _) = self.time(&eager, reps.div_ceil(3))?;
        let by_kind = time_by_kind(&inst, &self.stream, BREAKDOWN_REPLAYS)?;
        let out = inst.output()?;
        let softmax_row_error = (inst.graph.ops.last().map(|o| o.op.kind()) == Some("softmax")).then(|| {
            let width = *inst.graph.tensors[inst.graph.output].shape.last().unwrap_or(&1);
            out.chunks(width).map(|r| (r.iter().sum::<f64>() - 1.0).abs()).fold(0.0, f64::max)
        });
        Ok(RunResult {
            model: spec.name.clone(),
            batch,
            ops: inst.graph.ops.len(),
            device_mib: inst.device_bytes() as f64 / (1 << 20) as f64,
            graph_gpu_ms: Summary::of(&graph_gpu).context("no samples")?,
            graph_host_ms: Summary::of(&graph_host).context("no samples")?,
            eager_gpu_ms: Summary::of(&eager_gpu).context("no samples")?,
            kernel_span_ms: span,
            last_replay_gpu_ms: *graph_gpu.last().context("no samples")?,
            output_finite: out.iter().all(|v| v.is_finite()),
            softmax_row_error,
            by_kind,
        })
    }
}

/// How far a stamped span may exceed the events around it: the timers tick differently.
const STAMP_SLACK_MS: f64 = 0.002;

impl RunResult {
    /// What the clocks say cannot be: the stamped span of the last replay longer than its
    /// events, or a replay's median on the GPU longer than on the host around it.
    fn timing_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let within = self.kernel_span_ms.is_finite() && self.kernel_span_ms <= self.last_replay_gpu_ms + STAMP_SLACK_MS;
        if !within {
            out.push(format!(
                "stamped span {:.4} ms outside its replay's events, {:.4} ms",
                self.kernel_span_ms, self.last_replay_gpu_ms
            ));
        }
        let (gpu, host) = (self.graph_gpu_ms.median, self.graph_host_ms.median);
        if !(gpu.is_finite() && host.is_finite()) || gpu > host {
            out.push(format!(
                "replays {:.4} ms on the GPU but {:.4} ms on the host around them",
                self.graph_gpu_ms.median, self.graph_host_ms.median
            ));
        }
        out
    }

    fn output_ok(&self) -> bool {
        self.output_finite && self.softmax_row_error.is_none_or(|e| e < 0.02)
    }

    fn output_note(&self) -> String {
        match (self.output_finite, self.softmax_row_error) {
            (false, _) => "NOT FINITE".into(),
            (true, Some(e)) if e >= 0.02 => format!("softmax rows off by {e:.3}"),
            (true, Some(e)) => format!("ok (softmax rows within {e:.1e})"),
            (true, None) => "ok (finite)".into(),
        }
    }
}

/// Does one of the things `coloc measure` does in its process before its solo profiles, and
/// says what it did.
fn first_step(gpu: &super::Gpu, step: FirstStep, specs: &[ModelSpec], args: &RunModelsArgs) -> anyhow::Result<String> {
    use coloc_kernels::ceilings::{self, Ceilings, Part};
    let ctx = ExecContext::primary(&gpu.device);
    let part = |part: Part| -> anyhow::Result<String> {
        let rate = ceilings::measure_part(&gpu.lib, &ctx, part)?;
        Ok(format!("ceilings part {part:?}: {}", rate.map_or("not on this chip".into(), |r| format!("{r:.1}"))))
    };
    Ok(match step {
        FirstStep::GreenContext => {
            let support = coloc_kernels::partition::green::support(&gpu.device);
            format!("green contexts {}", if support.usable { "created" } else { "unusable" })
        }
        FirstStep::Ceilings => {
            ceilings::measure(&gpu.lib, &ctx, false)?;
            "ceilings measured".into()
        }
        FirstStep::CeilingsCopies => part(Part::Copies)?,
        FirstStep::CeilingsFma => part(Part::Fma)?,
        FirstStep::CeilingsTensorProbes => part(Part::TensorProbes)?,
        FirstStep::CeilingsGemms => part(Part::CublasGemms)?,
        FirstStep::CeilingsL2 => part(Part::L2)?,
        FirstStep::Nvml => {
            let nvml = coloc_kernels::nvml::NvmlDevice::open(&gpu.device.info().uuid).map_err(anyhow::Error::msg)?;
            let (_, sample) = (nvml.settings(), nvml.sample());
            let mig = coloc_kernels::partition::mig::status(Some(&nvml));
            format!("NVML opened ({sample:?}; MIG {mig:?})")
        }
        FirstStep::Libraries => {
            let stream = ctx.new_stream(0)?;
            let (major, minor) = coloc_kernels::gpu::nvrtc::version()?;
            let blas = coloc_kernels::gpu::Blas::new(&stream)?.version()?;
            let dnn = coloc_kernels::gpu::Dnn::version().ok();
            format!("library versions read (NVRTC {major}.{minor}, cuBLAS {blas}, cuDNN {dnn:?})")
        }
        FirstStep::Handles => {
            let stream = ctx.new_stream(0)?;
            let _libs = StreamLibraries::new(&stream)?;
            "cuBLAS, cuBLASLt and cuDNN handles created".into()
        }
        FirstStep::Limits => {
            let limits = coloc_harness::limits::of_device(&gpu.device)?;
            format!("device limits read ({limits:?})")
        }
        FirstStep::Overhead => {
            let o = coloc_harness::overhead::measure(&gpu.lib, &Ceilings::default())?;
            format!("harness overhead measured ({} requests, latency {:.1} us)", o.requests, o.latency_us)
        }
        FirstStep::Calibrate => {
            let stream = ctx.new_stream(0)?;
            coloc_harness::clock::calibrate(&gpu.lib, &stream, coloc_harness::clock::CALIBRATION_PINGS)?;
            "clock map calibrated".into()
        }
        FirstStep::Profile => {
            let mut said = Vec::new();
            for spec in specs {
                for &batch in &args.batch {
                    let target = coloc_harness::solo::SoloTarget {
                        spec: spec.clone(),
                        options: options(batch, &args.shape),
                        share: coloc_workloads::scenario::SoloShare::Device,
                    };
                    let sms = gpu.device.info().sm_count;
                    let p = coloc_harness::solo::profile(&gpu.lib, &ctx, sms, &Ceilings::default(), &target)?;
                    for m in &p.models {
                        said.push(format!(
                            "{} b{}: stamped {:.1} us, replay {:.1} us",
                            m.model, m.batch, m.stamped_p50_us, m.latency_p50_us
                        ));
                    }
                }
            }
            format!("solo profiles on the whole GPU: {}", said.join("; "))
        }
    })
}

pub fn run(args: &RunModelsArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<String> =
        if args.models.is_empty() { BUILTIN.iter().map(|(n, _)| n.to_string()).collect() } else { args.models.clone() };
    let specs: Vec<ModelSpec> =
        names.iter().map(|n| ModelSpec::resolve(n, Path::new(".")).map(|(s, _)| s)).collect::<Result<_, _>>()?;
    let gpu = open_gpu(&args.gpu)?;
    for step in &args.first {
        println!("first: {}", first_step(&gpu, *step, &specs, args)?);
    }
    let timer = Timer::new(&gpu)?;
    let mut results = Vec::new();
    let mut t =
        Table::new(&["<model", "batch", "ops", "MiB", "graph ms", "p95", "host ms", "eager ms", "span ms", "<output"]);
    let mut failed = false;
    for spec in &specs {
        for &batch in &args.batch {
            let r = timer.model(spec, &options(batch, &args.shape), args.reps)?;
            failed |= !r.output_ok();
            for p in r.timing_problems() {
                println!("INVALID timing of {} b{batch}: {p}", r.model);
                failed = true;
            }
            t.row(vec![
                r.model.clone(),
                batch.to_string(),
                r.ops.to_string(),
                format!("{:.0}", r.device_mib),
                sig3(r.graph_gpu_ms.median),
                sig3(r.graph_gpu_ms.p95),
                sig3(r.graph_host_ms.median),
                sig3(r.eager_gpu_ms.median),
                sig3(r.kernel_span_ms),
                r.output_note(),
            ]);
            results.push(r);
        }
    }
    println!("{}", t.render());
    if args.ops {
        results.iter().for_each(print_breakdown);
    }
    println!(
        "graph: median GPU time of a CUDA-graph replay (events); host: launch to completion on the host clock; eager: the same operators launched one by one; span: first kernel in to last kernel out (stamps)"
    );
    if let Some(path) = &args.json {
        write_json(path, &serde_json::json!({ "device": gpu.device.info(), "results": results }))?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// One (model, batch) as `ci/torch_reference.py` timed it in PyTorch.
#[derive(serde::Deserialize)]
struct TorchTiming {
    model: String,
    batch: usize,
    median_ms: f64,
}

#[derive(serde::Deserialize)]
struct TorchReference {
    device: String,
    torch: String,
    results: Vec<TorchTiming>,
}

#[derive(Serialize)]
struct Comparison {
    model: String,
    batch: usize,
    coloc_ms: f64,
    torch_ms: f64,
    ratio: f64,
    by_kind: Vec<KindTime>,
}

pub fn compare(args: &crate::cli::CompareModelsArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let reference: TorchReference = serde_json::from_str(&text)
        .with_context(|| format!("{}: not the JSON of ci/torch_reference.py", args.file.display()))?;
    let gpu = open_gpu(&args.gpu)?;
    if reference.device != gpu.device.info().name {
        eprintln!("note: the reference ran on {}, this is {}", reference.device, gpu.device.info().name);
    }
    let timer = Timer::new(&gpu)?;
    let mut rows = Vec::new();
    let mut t = Table::new(&["<model", "batch", "coloc ms", "PyTorch ms", "coloc / PyTorch", "<within"]);
    let mut over = 0;
    for r in &reference.results {
        let (spec, _) = ModelSpec::resolve(&r.model, Path::new("."))
            .with_context(|| format!("{}: model `{}`", args.file.display(), r.model))?;
        let mine = timer.model(&spec, &BuildOptions { batch: r.batch, ..Default::default() }, args.reps)?;
        let c = Comparison {
            model: r.model.clone(),
            batch: r.batch,
            coloc_ms: mine.graph_gpu_ms.median,
            torch_ms: r.median_ms,
            ratio: mine.graph_gpu_ms.median / r.median_ms,
            by_kind: mine.by_kind,
        };
        over += (c.ratio > args.target) as usize;
        t.row(vec![
            c.model.clone(),
            c.batch.to_string(),
            sig3(c.coloc_ms),
            sig3(c.torch_ms),
            format!("{:.2}", c.ratio),
            if c.ratio <= args.target { "yes".into() } else { format!("no (> {})", args.target) },
        ]);
        rows.push(c);
    }
    println!("coloc (CUDA-graph replay) against PyTorch {} on {}:", reference.torch, reference.device);
    println!("{}", t.render());
    println!("{over} of {} above {}x", rows.len(), args.target);
    if let Some(path) = &args.json {
        write_json(path, &serde_json::json!({ "device": gpu.device.info(), "torch": reference.torch, "rows": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(span_ms: f64, last_ms: f64, gpu_ms: f64, host_ms: f64) -> RunResult {
        let summary = |v: f64| Summary::of(&[v, v, v]).unwrap();
        RunResult {
            model: "resnet50".into(),
            batch: 8,
            ops: 73,
            device_mib: 100.0,
            graph_gpu_ms: summary(gpu_ms),
            graph_host_ms: summary(host_ms),
            eager_gpu_ms: summary(1.0),
            kernel_span_ms: span_ms,
            last_replay_gpu_ms: last_ms,
            output_finite: true,
            softmax_row_error: None,
            by_kind: Vec::new(),
        }
    }

    #[test]
    fn a_span_outside_its_events_or_a_gpu_time_above_the_hosts_is_a_timing_problem() {
        assert!(result(0.784, 0.790, 0.789, 0.800).timing_problems().is_empty());
        assert!(result(0.791, 0.790, 0.789, 0.800).timing_problems().is_empty(), "within the timers' slack");
        let p = result(0.800, 0.790, 0.789, 0.800).timing_problems().join("; ");
        assert!(p.contains("stamped span 0.8000 ms outside its replay's events, 0.7900 ms"), "{p}");
        let p = result(f64::NAN, 0.790, 0.789, 0.800).timing_problems().join("; ");
        assert!(p.contains("stamped span NaN"), "an unstamped replay is a problem: {p}");
        let p = result(0.784, 0.790, 0.789, 0.700).timing_problems().join("; ");
        assert!(p.contains("replays 0.7890 ms on the GPU but 0.7000 ms on the host"), "{p}");
    }
}
