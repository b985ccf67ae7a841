//! Solo profiles: every (model, batch) alone, replayed as a CUDA graph, on the whole GPU and
//! at every share a tenant of the suite runs at (a green context of its SMs, an MPS client at
//! its percentage). They give the latency and capacity that loads and SLOs are scaled by, the
//! solo time at the share that interference is measured against, and per-operator and
//! per-launch features for predictors, each held against the floor the ceilings set.

use std::sync::Arc;

use coloc_dataset::solo_rows::{SoloCounterRow, SoloKernelRow, SoloModelRow, SoloNodeRow, SoloOpRow, SoloSwitchRow};
use coloc_kernels::ceilings::Ceilings;
use coloc_kernels::gpu::{Event, ExecContext, Graph, KernelLibrary, StreamLibraries};
use coloc_kernels::ops::{LaunchEnv, LaunchSpec, Launcher, OpSpec};
use coloc_kernels::stats::{Summary, median_of};
use coloc_kernels::timing::span_of;
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;
use coloc_workloads::scenario::SoloShare;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::ModelInstance;

/// Replays timed per profile, after warm-up ones. Each is launched as the tenant loop launches
/// a batch (fresh inputs, stamps reset, graph) and waited for before the next, as a tenant
/// waits for its batch.
const REPLAYS: usize = 30;
const WARMUP_REPLAYS: usize = 3;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SoloProfiles {
    pub models: Vec<SoloModelRow>,
    pub ops: Vec<SoloOpRow>,
    pub kernels: Vec<SoloKernelRow>,
    pub nodes: Vec<SoloNodeRow>,
    /// Hardware counters from the optional ncu pass.
    #[serde(default)]
    pub counters: Vec<SoloCounterRow>,
    /// The switch profile (`crate::switch`): each whole-GPU (model, batch) right after its
    /// own replay and right after another model's.
    #[serde(default)]
    pub switches: Vec<SoloSwitchRow>,
    /// How much slower a one-stream batch runs right after another model's batch, as the
    /// simulator applies it: from the switch profile, or estimated from measured runs where
    /// asked (`coloc_schedulers::switch`), else none.
    #[serde(skip)]
    pub switch: SwitchFactors,
}

/// Per (model, batch): a one-stream batch's GPU time right after another model's batch, over
/// its solo time (1 where not known). Looked up by model name without allocating: the
/// simulator asks for every one-stream batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SwitchFactors(std::collections::BTreeMap<String, std::collections::BTreeMap<u32, f64>>);

impl SwitchFactors {
    pub fn insert(&mut self, model: &str, batch: u32, factor: f64) {
        self.0.entry(model.to_string()).or_default().insert(batch, factor);
    }

    pub fn factor(&self, model: &str, batch: u32) -> f64 {
        self.0.get(model).and_then(|by_batch| by_batch.get(&batch)).copied().unwrap_or(1.0)
    }

    /// (model, batch, factor), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32, f64)> {
        self.0.iter().flat_map(|(m, by_batch)| by_batch.iter().map(move |(b, f)| (m.as_str(), *b, *f)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Per (model, batch) of a switch profile: the median over the (model, batch)s replayed
    /// before it of the time after that one over the time after its own, and no less than 1 (a batch does not
    /// gain from another model's running first; below 1 is noise).
    pub fn from_switch_profile(rows: &[SoloSwitchRow]) -> SwitchFactors {
        let mut by: std::collections::BTreeMap<(&str, u32), Vec<f64>> = std::collections::BTreeMap::new();
        for r in rows {
            by.entry((r.model.as_str(), r.batch)).or_default().push(r.factor());
        }
        let mut out = SwitchFactors::default();
        for ((model, batch), factors) in by {
            out.insert(model, batch, median_of(&factors).max(1.0));
        }
        out
    }
}

impl SoloProfiles {
    /// The solo tables of a measured dataset (or of a measurement being resumed).
    pub fn load(dir: &std::path::Path) -> Result<SoloProfiles> {
        use coloc_dataset::store;
        Ok(SoloProfiles {
            models: store::load(dir)?,
            ops: store::load(dir)?,
            kernels: store::load(dir)?,
            nodes: store::load(dir)?,
            counters: store::load_or_empty(dir)?,
            switches: store::load_or_empty(dir)?,
            switch: SwitchFactors::default(),
        }
        .with_measured_switches())
    }

    /// [`SoloProfiles::switch`] from the switch profile.
    pub fn with_measured_switches(mut self) -> SoloProfiles {
        self.switch = SwitchFactors::from_switch_profile(&self.switches);
        self
    }

    pub fn find(&self, model: &str, batch: usize, share: SoloShare) -> Option<&SoloModelRow> {
        self.models.iter().find(|m| m.model == model && m.batch as usize == batch && m.share == share)
    }

    pub fn extend(&mut self, other: SoloProfiles) {
        self.models.extend(other.models);
        self.ops.extend(other.ops);
        self.kernels.extend(other.kernels);
        self.nodes.extend(other.nodes);
        self.counters.extend(other.counters);
        self.switches.extend(other.switches);
    }
}

/// What to profile: a model at a batch size and shape, at a share.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoloTarget {
    pub spec: ModelSpec,
    pub options: BuildOptions,
    pub share: SoloShare,
}

/// Which launch of an operator each captured kernel node belongs to: nodes named as one of our
/// kernels are that launch, the others belong to the cuBLAS call they follow.
pub fn node_launches(launches: &[LaunchSpec], nodes: &[String]) -> Vec<Option<u8>> {
    let mut next = 0usize;
    let mut current: Option<u8> = None;
    nodes
        .iter()
        .map(|name| {
            let launcher = |j: Option<usize>| j.and_then(|j| launches.get(j)).map(|l| l.launcher);
            let ours = matches!(launcher(Some(next)), Some(Launcher::Coloc(s)) if s.c_name() == *name);
            let library = |j: Option<usize>| launcher(j).is_some_and(Launcher::is_library);
            if ours || library(Some(next)) {
                // the next launch starts here (a library call's first kernel has a name of its own)
                current = Some(next as u8);
                next += 1;
            } else if !library(current.map(usize::from)) {
                current = None;
            }
            current
        })
        .collect()
}

/// Profiles `target` on `ctx`, which was granted `granted_sms`.
pub fn profile(
    lib: &Arc<KernelLibrary>,
    ctx: &ExecContext,
    granted_sms: u32,
    ceilings: &Ceilings,
    target: &SoloTarget,
) -> Result<SoloProfiles> {
    let device = lib.device().clone();
    let stream = ctx.new_stream(0)?;
    let libs = StreamLibraries::new(&stream)?;
    let graph = ModelGraph::build(&target.spec, &target.options)?;
    let (name, batch, share) = (target.spec.name.clone(), target.options.batch, target.share);
    let context = format!("solo profile of {name} at batch {batch} ({})", share.label());
    let mut out = SoloProfiles::default();

    let mut inst = ModelInstance::allocate(&device, graph)?;
    let env = LaunchEnv { lib, stream: &stream, libs: Some(&libs), bracket_library_calls: false };
    if share == SoloShare::Device {
        // launch configuration, operator by operator (captured, not run)
        for i in 0..inst.graph.ops.len() {
            let nodes = Graph::capture(&stream, |_| inst.launch_op(&env, i, false))?
                .kernel_nodes(device.info().max_threads_per_sm)?;
            let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
            let owners = node_launches(&inst.graph.ops[i].op.launches(), &names);
            for (n, (k, launch)) in nodes.into_iter().zip(owners).enumerate() {
                out.nodes.push(SoloNodeRow {
                    model: name.clone(),
                    batch: batch as u32,
                    op: i as u16,
                    node: n as u16,
                    launch,
                    kernel: k.name,
                    grid_blocks: k.grid.0 * k.grid.1 * k.grid.2,
                    block_threads: k.block.0 * k.block.1 * k.block.2,
                    registers: k.registers,
                    smem_bytes: k.static_smem_bytes.max(0) as u32 + k.dynamic_smem_bytes,
                    blocks_per_sm: k.max_blocks_per_sm,
                    occupancy: k.theoretical_occupancy,
                });
            }
        }
    }
    inst.initialize(&env, 1, 2)?;
    inst.capture(&env)?;
    let (start, end) = (Event::new(ctx)?, Event::new(ctx)?);
    let launches = inst.launches().to_vec();
    let mut latency = Vec::with_capacity(REPLAYS);
    let mut stamped = Vec::with_capacity(REPLAYS);
    let mut per_launch: Vec<Vec<f64>> = vec![Vec::new(); launches.len()];
    let mut per_op: Vec<Vec<f64>> = vec![Vec::new(); inst.graph.ops.len()];
    for i in 0..REPLAYS + WARMUP_REPLAYS {
        // as a tenant launches a batch: fresh inputs, then the stamped graph
        inst.refill_inputs(&env, 2 ^ ((i as u64) << 20))?;
        start.record(&stream)?;
        inst.launch(&stream)?;
        end.record(&stream)?;
        end.synchronize()?;
        if i < WARMUP_REPLAYS {
            continue;
        }
        latency.push(end.elapsed_ms_since(&start)? as f64 * 1e3);
        let stamps = inst.launch_stamps()?;
        if let Some(d) = span_of(&stamps).duration_ns() {
            stamped.push(d as f64 / 1e3);
        }
        for (l, s) in stamps.iter().enumerate() {
            if let Some(d) = s.duration_ns() {
                per_launch[l].push(d as f64 / 1e3);
            }
        }
        for (times, span) in per_op.iter_mut().zip(inst.op_spans_us(&stamps)) {
            times.extend(span);
        }
    }
    start.record(&stream)?;
    for _ in 0..5 {
        inst.launch_eager(&env, false)?;
    }
    end.record(&stream)?;
    end.synchronize()?;
    let eager_us = end.elapsed_ms_since(&start)? as f64 * 1e3 / 5.0;
    let summary = Summary::of(&latency).ok_or_else(|| Error::invalid(&context, "no timed replays"))?;
    let median = |v: &[f64]| (!v.is_empty()).then(|| median_of(v));
    let ids = crate::record::launch_ids(&launches);
    for (l, (op, spec)) in launches.iter().enumerate() {
        out.kernels.push(SoloKernelRow {
            model: name.clone(),
            batch: batch as u32,
            share,
            op: *op as u16,
            launch: ids[l].launch,
            kind: ids[l].kind,
            name: spec.name(),
            flops: spec.cost.flops,
            dram_bytes: spec.cost.dram_bytes,
            unit: spec.cost.unit,
            time_us: median(&per_launch[l]),
            floor_us: ceilings.floor_s(&spec.cost) * 1e6,
        });
    }
    for (i, op) in inst.graph.ops.iter().enumerate() {
        let c = op.op.cost();
        let time_us = median(&per_op[i]);
        let rate = |work: f64, scale: f64| time_us.map(|t| work / (t * 1e-6) / scale);
        out.ops.push(SoloOpRow {
            model: name.clone(),
            batch: batch as u32,
            share,
            op: i as u16,
            layer: op.name.clone(),
            kind: op.op.kind().to_string(),
            shape: op.op.shape(),
            launches: op.op.launches().len() as u8,
            flops: c.flops,
            macs: c.macs,
            dram_bytes: c.dram_bytes,
            unit: c.unit,
            time_us,
            floor_us: ceilings.floor_s(&c) * 1e6,
            tflops: rate(c.flops, 1e12),
            gbps: rate(c.dram_bytes, 1e9),
            compute_fraction: rate(c.flops, 1e12 * ceilings.compute_tflops(c.unit)),
            memory_fraction: rate(c.dram_bytes, 1e9 * ceilings.copy_gbps),
        });
    }
    out.models.push(SoloModelRow {
        model: name,
        batch: batch as u32,
        share,
        granted_sms,
        seq: inst.graph.seq.map(|v| v as u32),
        context: inst.graph.context.map(|v| v as u32),
        ops: inst.graph.ops.len() as u32,
        launches: launches.len() as u32,
        latency_p50_us: summary.median,
        latency_p05_us: summary.p05,
        latency_p95_us: summary.p95,
        latency_p50_lo_us: summary.median_ci95.0,
        latency_p50_hi_us: summary.median_ci95.1,
        stamped_p50_us: median(&stamped).unwrap_or(f64::NAN),
        replays: latency.len() as u32,
        eager_us,
        capacity_rps: batch as f64 / (summary.median * 1e-6),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switched(model: &str, batch: u32, after: &str, factor: f64) -> SoloSwitchRow {
        SoloSwitchRow {
            model: model.into(),
            batch,
            after_model: after.into(),
            after_batch: 8,
            replays: 20,
            after_self_us: 100.0,
            after_other_us: 100.0 * factor,
        }
    }

    #[test]
    fn a_switch_factor_is_the_median_over_the_models_before_and_never_below_one() {
        let rows = [
            switched("mobilenet_v2", 1, "resnet50", 1.12),
            switched("mobilenet_v2", 1, "bert_base", 1.10),
            switched("mobilenet_v2", 1, "vgg16", 1.30),
            switched("mobilenet_v2", 2, "resnet50", 1.03),
            switched("resnet50", 8, "mobilenet_v2", 0.99),
        ];
        let f = SwitchFactors::from_switch_profile(&rows);
        assert!((f.factor("mobilenet_v2", 1) - 1.12).abs() < 1e-9, "{f:?}");
        assert!((f.factor("mobilenet_v2", 2) - 1.03).abs() < 1e-9);
        assert_eq!(f.factor("resnet50", 8), 1.0);
        assert_eq!(f.factor("bert_base", 1), 1.0, "not profiled: no factor");
        assert_eq!(f.iter().count(), 3);
    }

    #[test]
    fn profiles_loaded_from_a_dataset_carry_its_switch_profile_and_none_without_one() {
        use coloc_dataset::store;
        let dir = std::env::temp_dir().join(format!("coloc-switch-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        store::save::<SoloModelRow>(&dir, &[]).unwrap();
        store::save::<SoloOpRow>(&dir, &[]).unwrap();
        store::save::<SoloKernelRow>(&dir, &[]).unwrap();
        store::save::<SoloNodeRow>(&dir, &[]).unwrap();
        assert!(SoloProfiles::load(&dir).unwrap().switch.is_empty(), "measured before switch profiles");
        store::save(&dir, &[switched("mobilenet_v2", 1, "resnet50", 1.11)]).unwrap();
        let loaded = SoloProfiles::load(&dir).unwrap();
        assert_eq!(loaded.switches.len(), 1);
        assert!((loaded.switch.factor("mobilenet_v2", 1) - 1.11).abs() < 1e-9);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    use coloc_kernels::id::{KernelId, KernelSymbol};
    use coloc_kernels::ops::Cost;
    use coloc_kernels::types::DType;

    #[test]
    fn captured_nodes_are_attributed_to_the_launch_they_belong_to() {
        let im2col = KernelSymbol::typed(KernelId::Im2col, DType::Bf16);
        let bias = KernelSymbol::typed(KernelId::BiasAct, DType::Bf16);
        let launches = [
            LaunchSpec::coloc(im2col, Cost::default()),
            LaunchSpec::cublas(Cost::default()),
            LaunchSpec::coloc(bias, Cost::default()),
        ];
        // cuBLAS may run a split-K GEMM as two kernels
        let nodes: Vec<String> = vec![im2col.c_name(), "nvjet_sm90_tst".into(), "splitKreduce".into(), bias.c_name()];
        assert_eq!(node_launches(&launches, &nodes), vec![Some(0), Some(1), Some(1), Some(2)]);
        // a GEMM alone, then a stamp of ours that is no launch of the operator
        let gemm = [LaunchSpec::cublas(Cost::default())];
        assert_eq!(node_launches(&gemm, &["sm90_xmma".into()]), vec![Some(0)]);
    }
}
