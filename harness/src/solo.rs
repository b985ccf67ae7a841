//! Solo profiles: every (model, batch) alone on the whole GPU, replayed as a CUDA graph. They
//! give the latency and capacity that relative loads and SLOs are scaled by, and per-operator
//! features for predictors: time, achieved rates against the device ceilings, and the launch
//! configuration of every kernel (read back from each operator captured alone).

use std::sync::Arc;

use coloc_kernels::ceilings::Ceilings;
use coloc_kernels::gpu::{Blas, Event, ExecContext, Graph, KernelLibrary};
use coloc_kernels::ops::{LaunchEnv, OpSpec};
use coloc_kernels::stats::{Summary, median_of};
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::ModelInstance;

/// Replays timed per (model, batch).
const REPLAYS: usize = 30;

/// One (model, batch) alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoloModel {
    pub model: String,
    pub batch: usize,
    pub seq: Option<usize>,
    pub context: Option<usize>,
    pub ops: usize,
    /// GPU time of one graph replay (events), microseconds.
    pub latency_us: Summary,
    /// The same operators launched one by one.
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub eager_us: f64,
    /// Requests per second at this batch, alone: batch / median latency.
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub capacity_rps: f64,
}

/// One operator of a (model, batch), alone (within its own model's sequence).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoloOp {
    pub model: String,
    pub batch: usize,
    pub op: usize,
    pub layer: String,
    pub kind: String,
    pub shape: String,
    pub kernels: String,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub flops: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub macs: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub dram_bytes: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub time_us: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub tflops: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub gbps: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub compute_fraction: f64,
    #[serde(deserialize_with = "crate::float::nan_if_null")]
    pub memory_fraction: f64,
    pub start_inferred: bool,
}

/// One kernel launched by an operator, as the driver reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoloLaunch {
    pub model: String,
    pub batch: usize,
    pub op: usize,
    pub node: usize,
    pub name: String,
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub registers: i32,
    pub smem_bytes: u32,
    pub blocks_per_sm: i32,
    pub occupancy: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SoloProfiles {
    pub models: Vec<SoloModel>,
    pub ops: Vec<SoloOp>,
    pub launches: Vec<SoloLaunch>,
    /// Hardware counters from the optional ncu pass.
    #[serde(default)]
    pub counters: Vec<crate::ncu::SoloCounter>,
}

impl SoloProfiles {
    pub fn find(&self, model: &str, batch: usize) -> Option<&SoloModel> {
        self.models.iter().find(|m| m.model == model && m.batch == batch)
    }
}

/// What to profile: a model at a batch size and shape.
#[derive(Clone, Debug)]
pub struct SoloTarget {
    pub spec: ModelSpec,
    pub options: BuildOptions,
}

/// Profiles one target on the whole device.
pub fn profile(lib: &Arc<KernelLibrary>, ceilings: &Ceilings, target: &SoloTarget) -> Result<SoloProfiles> {
    let device = lib.device().clone();
    let ctx = ExecContext::primary(&device);
    let stream = ctx.new_stream(0)?;
    let blas = Blas::new(&stream)?;
    let graph = ModelGraph::build(&target.spec, &target.options)?;
    let (name, batch) = (target.spec.name.clone(), target.options.batch);
    let context = format!("solo profile of {name} at batch {batch}");
    let mut out = SoloProfiles::default();

    let mut inst = ModelInstance::allocate(&device, graph)?;
    let env = LaunchEnv { lib, stream: &stream, blas: Some(&blas), bracket_library_calls: false };
    // launch configuration, operator by operator (captured, not run)
    for i in 0..inst.graph.ops.len() {
        let nodes = Graph::capture(&stream, |_| inst.launch_op(&env, i, false))?
            .kernel_nodes(device.info().max_threads_per_sm)?;
        for (n, k) in nodes.into_iter().enumerate() {
            out.launches.push(SoloLaunch {
                model: name.clone(),
                batch,
                op: i,
                node: n,
                name: k.name,
                grid: k.grid,
                block: k.block,
                registers: k.registers,
                smem_bytes: k.static_smem_bytes.max(0) as u32 + k.dynamic_smem_bytes,
                blocks_per_sm: k.max_blocks_per_sm,
                occupancy: k.theoretical_occupancy,
            });
        }
    }
    inst.initialize(&env, 1, 2)?;
    inst.capture(&env)?;
    let (start, end) = (Event::new(&ctx)?, Event::new(&ctx)?);
    let mut latency = Vec::with_capacity(REPLAYS);
    let mut per_op: Vec<Vec<f64>> = vec![Vec::new(); inst.graph.ops.len()];
    for i in 0..REPLAYS + 3 {
        start.record(&stream)?;
        inst.launch(&stream)?;
        end.record(&stream)?;
        end.synchronize()?;
        if i < 3 {
            continue; // warm-up
        }
        latency.push(end.elapsed_ms_since(&start)? as f64 * 1e3);
        for (op, s) in inst.op_stamps()?.iter().enumerate() {
            if let Some(d) = s.duration_ns() {
                per_op[op].push(d as f64 / 1e3);
            }
        }
    }
    start.record(&stream)?;
    for _ in 0..5 {
        inst.launch_eager(&env, false)?;
    }
    end.record(&stream)?;
    end.synchronize()?;
    let eager_us = end.elapsed_ms_since(&start)? as f64 * 1e3 / 5.0;
    let latency_us = Summary::of(&latency).ok_or_else(|| Error::invalid(&context, "no timed replays"))?;
    for (i, op) in inst.graph.ops.iter().enumerate() {
        let c = op.op.cost();
        let time_us = if per_op[i].is_empty() { f64::NAN } else { median_of(&per_op[i]) };
        let seconds = time_us * 1e-6;
        let mut kernels: Vec<String> = Vec::new();
        if op.op.uses_cublas() {
            kernels.push("cublas".into());
        }
        kernels.extend(op.op.kernels().iter().map(|k| k.c_name()));
        out.ops.push(SoloOp {
            model: name.clone(),
            batch,
            op: i,
            layer: op.name.clone(),
            kind: op.op.kind().to_string(),
            shape: op.op.shape(),
            kernels: kernels.join("+"),
            flops: c.flops,
            macs: c.macs,
            dram_bytes: c.dram_bytes,
            time_us,
            tflops: c.flops / seconds / 1e12,
            gbps: c.dram_bytes / seconds / 1e9,
            compute_fraction: c.flops / seconds / 1e12 / ceilings.compute_tflops(c.unit),
            memory_fraction: c.dram_bytes / seconds / 1e9 / ceilings.copy_gbps,
            start_inferred: op.op.starts_in_library(),
        });
    }
    out.models.push(SoloModel {
        model: name,
        batch,
        seq: inst.graph.seq,
        context: inst.graph.context,
        ops: inst.graph.ops.len(),
        capacity_rps: batch as f64 / (latency_us.median * 1e-6),
        latency_us,
        eager_us,
    });
    Ok(out)
}
