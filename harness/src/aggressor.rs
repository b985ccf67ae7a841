//! An aggressor: work launched back to back on its own stream from `start` to `stop`, at most
//! two launches in flight so it stops promptly, every launch stamped (its kernels' overlap with
//! the tenants' is then known exactly).

use std::sync::Arc;

use coloc_kernels::gpu::{Event, KernelLibrary, PinnedBuffer, Stream};
use coloc_kernels::instance::OpInstance;
use coloc_kernels::ops::{LaunchEnv, Op, Stressor};
use coloc_kernels::timing::{SLOT_BYTES, StampArena};
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::clock::{ClockMap, mono_ns};
use crate::error::{Error, Result};
use crate::model::{ModelInstance, stamps_from};
use crate::record::{AGGRESSOR_ID_BASE, KernelRecord, TenantOutput};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AggressorLoad {
    Stressor(Stressor),
    Model { model: ModelSpec, batch: usize },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AggressorPlan {
    pub index: u16,
    pub name: String,
    pub load: AggressorLoad,
    /// On from `start_ns` to `stop_ns` after the start of the run (warm-up included).
    pub start_ns: i64,
    pub stop_ns: i64,
    pub warmup_ns: i64,
}

enum Work {
    Stressor {
        inst: OpInstance,
        arena: StampArena,
    },
    /// The captured graph keeps cuBLAS's kernels: the handle (and its workspace) must live as long.
    Model {
        inst: ModelInstance,
        _blas: coloc_kernels::gpu::Blas,
    },
}

pub struct AggressorRunner {
    plan: AggressorPlan,
    lib: Arc<KernelLibrary>,
    stream: Arc<Stream>,
    work: Work,
    readback: PinnedBuffer,
    events: [Event; 2],
    ops: usize,
    pub granted_sms: u32,
}

impl AggressorRunner {
    pub fn prepare(
        lib: &Arc<KernelLibrary>,
        stream: Arc<Stream>,
        plan: AggressorPlan,
        granted_sms: u32,
    ) -> Result<AggressorRunner> {
        let device = lib.device().clone();
        let env = LaunchEnv { lib, stream: &stream, blas: None, bracket_library_calls: false };
        let (work, ops) = match &plan.load {
            AggressorLoad::Stressor(s) => {
                let inst = OpInstance::allocate(&device, Op::Stressor(s.clone()))?;
                coloc_kernels::instance::prepare(&env, &inst.op)?;
                inst.fill(&env, 7)?;
                (Work::Stressor { inst, arena: StampArena::new(&device, 2)? }, 1)
            }
            AggressorLoad::Model { model, batch } => {
                let graph = ModelGraph::build(model, &BuildOptions { batch: *batch, ..Default::default() })?;
                let ops = graph.ops.len();
                let blas = coloc_kernels::gpu::Blas::new(&stream)?;
                let mut inst = ModelInstance::allocate(&device, graph)?;
                let env = LaunchEnv { lib, stream: &stream, blas: Some(&blas), bracket_library_calls: false };
                inst.initialize(&env, 7, 8)?;
                inst.capture(&env)?;
                (Work::Model { inst, _blas: blas }, ops)
            }
        };
        stream.synchronize()?;
        let readback = PinnedBuffer::alloc(&device, 2 * ops * SLOT_BYTES)?;
        let events = [Event::new(stream.context())?, Event::new(stream.context())?];
        Ok(AggressorRunner { plan, lib: lib.clone(), stream, work, readback, events, ops, granted_sms })
    }

    fn launch(&self, slot: usize) -> Result<()> {
        let offset = slot * self.ops * SLOT_BYTES;
        match &self.work {
            Work::Stressor { inst, arena } => {
                let env = LaunchEnv { lib: &self.lib, stream: &self.stream, blas: None, bracket_library_calls: false };
                coloc_kernels::gpu::memory::zero_words_async(arena.slot(slot), SLOT_BYTES / 4, &self.stream)?;
                inst.launch(&env, arena.slot(slot))?;
                coloc_kernels::gpu::memory::download_async(
                    &self.readback,
                    offset,
                    arena.slot(slot),
                    SLOT_BYTES,
                    &self.stream,
                )?;
            }
            Work::Model { inst, .. } => {
                inst.launch(&self.stream)?;
                inst.queue_stamp_readback(&self.stream, &self.readback, offset)?;
            }
        }
        self.events[slot].record(&self.stream)?;
        Ok(())
    }

    pub fn run(&mut self, run_start: i64, clock: &ClockMap) -> Result<TenantOutput> {
        let window = run_start + self.plan.warmup_ns;
        let (start, stop) = (run_start + self.plan.start_ns, run_start + self.plan.stop_ns);
        let mut out = TenantOutput {
            granted_sms: self.granted_sms,
            clock_uncertainty_ns: clock.uncertainty_ns,
            ..TenantOutput::default()
        };
        while mono_ns() < start {
            std::hint::spin_loop();
        }
        let mut inflight: [Option<u32>; 2] = [None, None];
        let mut launches = 0u32;
        loop {
            let now = mono_ns();
            for (slot, pending) in inflight.iter_mut().enumerate() {
                if let Some(n) = *pending {
                    if self.events[slot].is_complete()? {
                        let s = stamps_from(&self.readback, slot * self.ops * SLOT_BYTES, self.ops);
                        let first = s.iter().find_map(|x| x.start_ns);
                        let last = s.iter().filter_map(|x| x.end_ns).max();
                        let (Some(a), Some(b)) = (first, last) else {
                            return Err(Error::invalid(&self.plan.name, format!("launch {n} has no timing stamps")));
                        };
                        out.kernels.push(KernelRecord {
                            tenant: AGGRESSOR_ID_BASE + self.plan.index,
                            batch: n,
                            op: 0,
                            start_ns: clock.to_host(a) - window,
                            end_ns: clock.to_host(b) - window,
                            start_inferred: false,
                        });
                        *pending = None;
                    }
                }
                if pending.is_none() && now < stop {
                    self.launch(slot)?;
                    *pending = Some(launches);
                    launches += 1;
                }
            }
            if now >= stop && inflight.iter().all(|s| s.is_none()) {
                break;
            }
            if now > stop + 10_000_000_000 {
                return Err(Error::invalid(&self.plan.name, "launches did not finish within 10 s of the stop time"));
            }
            std::hint::spin_loop();
        }
        Ok(out)
    }
}
