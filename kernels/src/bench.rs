//! `coloc kernels bench`: a solo table per operator and shape.
//!
//! Measurement: a batch of samples is queued behind a spinning blocker kernel, each sample
//! being [L2 flush] [event] [operator, stamped] [event], then released at once, so samples
//! time the GPU and not the CPU's launch rate. Every sample has two times: the CUDA event
//! interval and the %globaltimer stamp interval (first block in to last block out). Rates
//! are computed from the event median. Analysis (summaries, comparisons) is in
//! [`crate::stats`]; output (JSON beside raw samples as CSV) is in [`BenchReport::write`].

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::catalog::{self, BenchCase};
use crate::ceilings::Ceilings;
use crate::error::{Error, Result};
use crate::gpu::{Device, DeviceInfo, Event, ExecContext, Graph, KernelLibrary, KernelNodeInfo, StreamLibraries};
use crate::instance::{OpInstance, prepare};
use crate::nvml::{DeviceSample, NvmlDevice};
use crate::ops::{BiasAct, Cost, LaunchEnv, MAX_LAUNCHES_PER_OP, Op, OpSpec, StampSlots};
use crate::stats::{self, Comparison, Summary};
use crate::timing::{L2Flush, StampArena, StreamBlocker, fill_library_spans, span_of};
use crate::types::{Activation, DType};

/// Samples queued behind one hold of the blocker.
const BATCH: usize = 32;

#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    /// Samples per shape (fewer if `max_seconds` runs out first, but never fewer than 10).
    pub samples: usize,
    pub warmup: usize,
    pub max_seconds: f64,
    /// Evict the L2 before every sample (cold-cache timings, as a model's next layer sees).
    pub flush_l2: bool,
    pub seed: u64,
    /// Samples of each side of the instrumentation-overhead comparison.
    pub overhead_samples: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig { samples: 50, warmup: 5, max_seconds: 3.0, flush_l2: true, seed: 1, overhead_samples: 300 }
    }
}

/// Which samples carry stamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instrumentation {
    Stamped,
    Bare,
    /// Even samples bare, odd samples stamped, for an interleaved A/B comparison.
    Alternating,
}

/// Raw samples of one operator.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub event_us: Vec<f64>,
    pub stamp_us: Vec<Option<f64>>,
    pub stamped: Vec<bool>,
    /// Batches whose blocker gave up before release (the queue may have drained).
    pub blocker_timeouts: usize,
}

/// Reusable sampling machinery for one stream.
pub struct Sampler {
    blocker: StreamBlocker,
    arena: StampArena,
    flush: L2Flush,
    starts: Vec<Event>,
    ends: Vec<Event>,
}

impl Sampler {
    pub fn new(device: &Arc<Device>, ctx: &ExecContext) -> Result<Sampler> {
        Ok(Sampler {
            blocker: StreamBlocker::new(device)?,
            arena: StampArena::new(device, BATCH * MAX_LAUNCHES_PER_OP)?,
            flush: L2Flush::new(device)?,
            starts: (0..BATCH).map(|_| Event::new(ctx)).collect::<Result<_>>()?,
            ends: (0..BATCH).map(|_| Event::new(ctx)).collect::<Result<_>>()?,
        })
    }

    pub fn sample(
        &self,
        env: &LaunchEnv,
        inst: &OpInstance,
        cfg: &BenchConfig,
        samples: usize,
        mode: Instrumentation,
    ) -> Result<Samples> {
        for _ in 0..cfg.warmup {
            inst.launch(env, StampSlots::NONE)?;
        }
        env.stream.synchronize()?;
        let started = Instant::now();
        let mut out = Samples::default();
        while out.event_us.len() < samples
            && (out.event_us.len() < 10 || started.elapsed().as_secs_f64() < cfg.max_seconds)
        {
            let n = BATCH.min(samples - out.event_us.len());
            let first = out.event_us.len();
            let per_sample = inst.op.launches().len();
            if per_sample > MAX_LAUNCHES_PER_OP {
                return Err(Error::Measurement(format!(
                    "{} makes {per_sample} launches; the sampler stamps at most {MAX_LAUNCHES_PER_OP}",
                    inst.op.label()
                )));
            }
            self.arena.reset(env.stream)?;
            self.blocker.hold(env.lib, env.stream)?;
            let mut stamped = Vec::with_capacity(n);
            for i in 0..n {
                if cfg.flush_l2 {
                    self.flush.flush(env.stream)?;
                }
                let s = match mode {
                    Instrumentation::Stamped => true,
                    Instrumentation::Bare => false,
                    Instrumentation::Alternating => (first + i) % 2 == 1,
                };
                self.starts[i].record(env.stream)?;
                inst.launch(env, if s { self.arena.op_slots(i * per_sample) } else { StampSlots::NONE })?;
                self.ends[i].record(env.stream)?;
                stamped.push(s);
            }
            self.blocker.release();
            env.stream.synchronize()?;
            out.blocker_timeouts += self.blocker.timed_out() as usize;
            let stamps = self.arena.read(n * per_sample)?;
            for i in 0..n {
                out.event_us.push(self.ends[i].elapsed_ms_since(&self.starts[i])? as f64 * 1e3);
                let mut launches = stamps[i * per_sample..(i + 1) * per_sample].to_vec();
                fill_library_spans(&mut launches);
                let span = span_of(&launches);
                out.stamp_us.push(if stamped[i] { span.duration_ns().map(|ns| ns as f64 / 1e3) } else { None });
                out.stamped.push(stamped[i]);
            }
        }
        Ok(out)
    }
}

/// One row of the bench table.
#[derive(Clone, Debug, Serialize)]
pub struct BenchEntry {
    pub kind: String,
    pub shape: String,
    pub note: String,
    pub cost: Cost,
    /// Every kernel the operator launches (ours and cuBLAS's), as captured in a graph.
    pub launches: Vec<KernelNodeInfo>,
    pub event_us: Summary,
    pub stamp_us: Option<Summary>,
    /// Per sample: event interval minus stamp interval.
    pub event_minus_stamp_us: Option<Summary>,
    pub tflops: f64,
    pub gbps: f64,
    /// Achieved FLOP/s over the ceiling of the operator's compute unit.
    pub compute_fraction: f64,
    /// Achieved bytes/s over the copy bandwidth.
    pub memory_fraction: f64,
    pub blocker_timeouts: usize,
    #[serde(skip)]
    pub samples: Samples,
}

impl BenchEntry {
    pub fn label(&self) -> String {
        format!("{} {}", self.kind, self.shape)
    }
}

/// Instrumented against bare timings of one kernel, interleaved.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadEntry {
    pub label: String,
    pub bare_us: Summary,
    pub stamped_us: Summary,
    pub comparison: Comparison,
    pub overhead_pct: f64,
}

/// Launch costs, measured apart from kernel time.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchOverhead {
    pub kernel: String,
    pub launches: usize,
    /// Host time to queue one launch.
    pub cpu_enqueue_us: f64,
    /// GPU time per kernel when the CPU launches them one by one as fast as it can.
    pub eager_us_per_kernel: f64,
    /// GPU time per kernel when all launches were queued before the GPU started.
    pub queued_us_per_kernel: f64,
    /// GPU time per kernel replayed from a CUDA graph.
    pub graph_us_per_kernel: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub measured: f64,
    pub threshold: f64,
    /// `>=` or `<`
    pub relation: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub coloc_version: String,
    pub device: DeviceInfo,
    pub ceilings: Ceilings,
    pub config: BenchConfig,
    pub nvml_before: Option<DeviceSample>,
    pub nvml_after: Option<DeviceSample>,
    pub entries: Vec<BenchEntry>,
    pub overhead: Vec<OverheadEntry>,
    pub launch: Option<LaunchOverhead>,
    pub targets: Vec<Target>,
    /// Operators that could not be measured, with the reason; the rest of the run went on.
    pub errors: Vec<String>,
}

/// Benchmarks one operator.
pub fn bench_op(
    device: &Arc<Device>,
    env: &LaunchEnv,
    sampler: &Sampler,
    case: &BenchCase,
    cfg: &BenchConfig,
    ceilings: &Ceilings,
) -> Result<BenchEntry> {
    prepare(env, &case.op)?;
    let inst = OpInstance::allocate(device, case.op.clone())?;
    inst.fill(env, cfg.seed)?;
    let launches = Graph::capture(env.stream, |_| inst.launch(env, sampler.arena.op_slots(0)))?
        .kernel_nodes(device.info().max_threads_per_sm)?;
    let samples = sampler.sample(env, &inst, cfg, cfg.samples, Instrumentation::Stamped)?;
    let event_us =
        Summary::of(&samples.event_us).ok_or_else(|| Error::Measurement(format!("{}: no samples", case.op.label())))?;
    let stamps: Vec<f64> = samples.stamp_us.iter().flatten().copied().collect();
    let diffs: Vec<f64> =
        samples.event_us.iter().zip(&samples.stamp_us).filter_map(|(e, s)| s.map(|s| e - s)).collect();
    let cost = case.op.cost();
    let seconds = event_us.median * 1e-6;
    let tflops = cost.flops / seconds / 1e12;
    let gbps = cost.dram_bytes / seconds / 1e9;
    Ok(BenchEntry {
        kind: case.op.kind().to_string(),
        shape: case.op.shape(),
        note: case.note.to_string(),
        cost,
        launches,
        event_us,
        stamp_us: Summary::of(&stamps),
        event_minus_stamp_us: Summary::of(&diffs),
        tflops,
        gbps,
        compute_fraction: tflops / ceilings.compute_tflops(cost.unit),
        memory_fraction: gbps / ceilings.copy_gbps,
        blocker_timeouts: samples.blocker_timeouts,
        samples,
    })
}

/// Interleaved bare/stamped samples of `op`; the overhead is the ratio of medians.
pub fn instrumentation_overhead(
    device: &Arc<Device>,
    env: &LaunchEnv,
    sampler: &Sampler,
    op: Op,
    cfg: &BenchConfig,
) -> Result<OverheadEntry> {
    prepare(env, &op)?;
    let label = op.label();
    let inst = OpInstance::allocate(device, op)?;
    inst.fill(env, cfg.seed)?;
    let long = BenchConfig { max_seconds: cfg.max_seconds * 4.0, ..cfg.clone() };
    let s = sampler.sample(env, &inst, &long, 2 * cfg.overhead_samples, Instrumentation::Alternating)?;
    let bare: Vec<f64> = s.event_us.iter().zip(&s.stamped).filter(|(_, st)| !**st).map(|(v, _)| *v).collect();
    let stamped: Vec<f64> = s.event_us.iter().zip(&s.stamped).filter(|(_, st)| **st).map(|(v, _)| *v).collect();
    let comparison = stats::compare(&bare, &stamped, 0.05, 0.0)
        .ok_or_else(|| Error::Measurement(format!("{label}: too few samples")))?;
    Ok(OverheadEntry {
        label,
        bare_us: Summary::of(&bare).expect("samples"),
        stamped_us: Summary::of(&stamped).expect("samples"),
        overhead_pct: (comparison.ratio - 1.0) * 100.0,
        comparison,
    })
}

/// Launch overhead of a tiny kernel, three ways: eager, queued ahead, and graph replay.
pub fn launch_overhead(device: &Arc<Device>, env: &LaunchEnv, sampler: &Sampler) -> Result<LaunchOverhead> {
    const N: usize = 200;
    let op = Op::BiasAct(BiasAct { rows: 1, channels: 256, act: Activation::Relu, bias: true, dtype: DType::F32 });
    prepare(env, &op)?;
    let label = op.label();
    let inst = OpInstance::allocate(device, op)?;
    inst.fill(env, 1)?;
    let ctx = env.stream.context();
    let (start, end) = (Event::new(ctx)?, Event::new(ctx)?);
    let run_all = || -> Result<()> {
        for _ in 0..N {
            inst.launch(env, StampSlots::NONE)?;
        }
        Ok(())
    };
    run_all()?;
    env.stream.synchronize()?;

    // Queued ahead: the blocker holds the stream while the CPU enqueues (and is timed).
    sampler.blocker.hold(env.lib, env.stream)?;
    start.record(env.stream)?;
    let t0 = Instant::now();
    run_all()?;
    let cpu_enqueue_us = t0.elapsed().as_secs_f64() * 1e6 / N as f64;
    end.record(env.stream)?;
    sampler.blocker.release();
    end.synchronize()?;
    let queued_us_per_kernel = end.elapsed_ms_since(&start)? as f64 * 1e3 / N as f64;

    // Eager: the GPU starts as soon as the first launch arrives.
    start.record(env.stream)?;
    run_all()?;
    end.record(env.stream)?;
    end.synchronize()?;
    let eager_us_per_kernel = end.elapsed_ms_since(&start)? as f64 * 1e3 / N as f64;

    let graph = Graph::capture(env.stream, |_| run_all())?.instantiate()?;
    graph.launch(env.stream)?;
    start.record(env.stream)?;
    graph.launch(env.stream)?;
    end.record(env.stream)?;
    end.synchronize()?;
    let graph_us_per_kernel = end.elapsed_ms_since(&start)? as f64 * 1e3 / N as f64;
    Ok(LaunchOverhead {
        kernel: label,
        launches: N,
        cpu_enqueue_us,
        eager_us_per_kernel,
        queued_us_per_kernel,
        graph_us_per_kernel,
    })
}

/// Options of a whole bench run.
pub struct BenchOptions {
    pub config: BenchConfig,
    /// Case-insensitive substrings; a case runs when its label contains any (empty: all).
    pub only: Vec<String>,
    /// Skip the overhead and launch experiments.
    pub skip_overhead: bool,
}

/// Runs the catalog on `ctx`. `on_entry` sees each row as it is measured (for progress and
/// partial output).
pub fn run(
    lib: &KernelLibrary,
    ctx: &ExecContext,
    ceilings: Ceilings,
    opts: &BenchOptions,
    on_entry: &mut dyn FnMut(&BenchEntry),
) -> Result<BenchReport> {
    let device = ctx.device().clone();
    let stream = ctx.new_stream(0)?;
    let libs = StreamLibraries::new(&stream)?;
    let env = LaunchEnv { lib, stream: &stream, libs: Some(&libs), bracket_library_calls: true };
    let sampler = Sampler::new(&device, ctx)?;
    let nvml = NvmlDevice::open(&device.info().uuid).ok();
    let nvml_before = nvml.as_ref().map(|n| n.sample());
    let wanted = |label: &str| {
        opts.only.is_empty() || opts.only.iter().any(|p| label.to_lowercase().contains(&p.to_lowercase()))
    };
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for case in catalog::bench_cases(device.info()) {
        if !wanted(&case.op.label()) {
            continue;
        }
        match bench_op(&device, &env, &sampler, &case, &opts.config, &ceilings) {
            Ok(entry) => {
                on_entry(&entry);
                entries.push(entry);
            }
            // A sticky device error would fail every later operator too: stop there.
            Err(e @ Error::Driver { .. }) => return Err(e),
            Err(e) => errors.push(format!("{}: {e}", case.op.label())),
        }
    }
    let (overhead, launch) = if opts.skip_overhead {
        (Vec::new(), None)
    } else {
        let mut overhead = Vec::new();
        for op in catalog::overhead_cases(device.info(), &ceilings, 50.0) {
            overhead.push(instrumentation_overhead(&device, &env, &sampler, op, &opts.config)?);
        }
        (overhead, Some(launch_overhead(&device, &env, &sampler)?))
    };
    let nvml_after = nvml.as_ref().map(|n| n.sample());
    let targets = targets(&entries, &overhead, &ceilings);
    Ok(BenchReport {
        coloc_version: env!("CARGO_PKG_VERSION").to_string(),
        device: device.info().clone(),
        ceilings,
        config: opts.config.clone(),
        nvml_before,
        nvml_after,
        entries,
        overhead,
        launch,
        targets,
        errors,
    })
}

/// The three targets of the kernel library, from what was measured (a target whose
/// measurement was filtered out with `--only` is not listed).
pub fn targets(entries: &[BenchEntry], overhead: &[OverheadEntry], ceilings: &Ceilings) -> Vec<Target> {
    let mut out = Vec::new();
    let gemm_shape = format!("bf16 m={0} n={0} k={0}", catalog::GEMM_TARGET_SIZE);
    if let Some(e) = entries.iter().find(|e| e.kind == "gemm" && e.shape == gemm_shape) {
        let frac = e.tflops / ceilings.matrix_bf16_tflops();
        out.push(Target {
            name: format!("cuBLAS bf16 GEMM {0}^3 vs the bf16 matrix ceiling", catalog::GEMM_TARGET_SIZE),
            measured: frac,
            threshold: 0.70,
            relation: ">=".into(),
            passed: frac >= 0.70,
            detail: format!("{:.0} of {:.0} TFLOP/s", e.tflops, ceilings.matrix_bf16_tflops()),
        });
    }
    if let Some(e) = entries
        .iter()
        .find(|e| e.kind == "stress_stream" && e.shape.starts_with(&format!("bytes={} ", catalog::STREAM_TARGET_BYTES)))
    {
        let frac = e.gbps / ceilings.copy_gbps;
        out.push(Target {
            name: "DRAM-streaming stressor vs the copy bandwidth".into(),
            measured: frac,
            threshold: 0.85,
            relation: ">=".into(),
            passed: frac >= 0.85,
            detail: format!("{:.0} of {:.0} GB/s", e.gbps, ceilings.copy_gbps),
        });
    }
    let attention: Vec<Op> =
        catalog::ATTENTION_TARGET_SHAPES.iter().map(|&(b, s)| catalog::attention_target_op(b, s)).collect();
    out.extend(worst_fraction_target(
        "tensor-core attention prefill, head 64, vs the bf16 matrix ceiling (worst shape)",
        0.35,
        entries,
        &attention,
        ceilings,
    ));
    let vgg: Vec<Op> = catalog::VGG_TARGET_LAYERS.iter().map(|&(hw, c)| catalog::vgg_target_op(hw, c)).collect();
    out.extend(worst_fraction_target(
        &format!(
            "VGG-16 3x3 convolutions at batch {}, vs the bf16 matrix ceiling (worst layer)",
            catalog::VGG_TARGET_BATCH
        ),
        0.45,
        entries,
        &vgg,
        ceilings,
    ));
    if let Some(worst) = overhead.iter().max_by(|a, b| a.overhead_pct.total_cmp(&b.overhead_pct)) {
        out.push(Target {
            name: "timing instrumentation overhead on ~50 us kernels (worst case)".into(),
            measured: worst.overhead_pct,
            threshold: 2.0,
            relation: "<".into(),
            passed: worst.overhead_pct < 2.0,
            detail: format!(
                "{}: {:.2} us bare vs {:.2} us stamped (p = {:.3})",
                worst.label, worst.bare_us.median, worst.stamped_us.median, worst.comparison.p_value
            ),
        });
    }
    out
}

/// A target over several shapes, held by the worst of them: listed only when every shape was
/// measured (a shape filtered out with `--only` or failed leaves no verdict to give).
fn worst_fraction_target(
    name: &str,
    threshold: f64,
    entries: &[BenchEntry],
    ops: &[Op],
    ceilings: &Ceilings,
) -> Option<Target> {
    let ceiling = ceilings.matrix_bf16_tflops();
    let measured: Vec<&BenchEntry> = ops
        .iter()
        .map(|op| entries.iter().find(|e| e.kind == op.kind() && e.shape == op.shape()))
        .collect::<Option<_>>()?;
    let worst = measured.iter().min_by(|a, b| a.tflops.total_cmp(&b.tflops))?;
    let frac = worst.tflops / ceiling;
    let all = measured.iter().map(|e| format!("{:.0}", e.tflops)).collect::<Vec<_>>().join(", ");
    Some(Target {
        name: name.to_string(),
        measured: frac,
        threshold,
        relation: ">=".into(),
        passed: frac >= threshold,
        detail: format!("worst {} at {:.0} of {ceiling:.0} TFLOP/s; all: {all}", worst.shape, worst.tflops),
    })
}

impl BenchReport {
    /// Writes `bench.json` (summaries) and `samples.csv` (every raw sample) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join("bench.json");
        let text = serde_json::to_string_pretty(self).expect("bench report serialises");
        std::fs::write(&json, text).map_err(|e| Error::io(&json, e))?;
        let csv = dir.join("samples.csv");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).map_err(|e| Error::io(&csv, e))?);
        let mut w = || -> std::io::Result<()> {
            writeln!(f, "kind,shape,sample,event_us,stamp_us")?;
            for e in &self.entries {
                for (i, (ev, st)) in e.samples.event_us.iter().zip(&e.samples.stamp_us).enumerate() {
                    let st = st.map(|v| format!("{v:.3}")).unwrap_or_default();
                    writeln!(f, "{},\"{}\",{i},{ev:.3},{st}", e.kind, e.shape)?;
                }
            }
            f.flush()
        };
        w().map_err(|e| Error::io(&csv, e))
    }

    pub fn all_targets_passed(&self) -> bool {
        self.targets.iter().all(|t| t.passed)
    }
}
