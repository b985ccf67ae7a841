//! An aggressor: work launched back to back on its own stream from `start` to `stop`, at most
//! two launches in flight so it stops promptly, every kernel launch stamped (its overlap with
//! the tenants' kernels is then known exactly).

use std::sync::Arc;

use coloc_kernels::gpu::{Event, KernelLibrary, PinnedBuffer, Stream};
use coloc_kernels::instance::OpInstance;
use coloc_kernels::ops::{LaunchEnv, Op, OpSpec, Stressor};
use coloc_kernels::timing::{SLOT_BYTES, StampArena, span_of};
use coloc_workloads::graph::{BuildOptions, ModelGraph};
use coloc_workloads::model::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::clock::mono_ns;
use crate::error::{Error, Result};
use crate::model::{ModelInstance, stamps_from};
use crate::record::{LaunchId, RawAggressor, RawAggressorLaunch, launch_ids};

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
    /// The captured graph keeps the libraries' kernels: their handles (and workspaces) must
    /// live as long.
    Model {
        inst: ModelInstance,
        _libs: Box<coloc_kernels::gpu::StreamLibraries>,
    },
}

pub struct AggressorRunner {
    plan: AggressorPlan,
    lib: Arc<KernelLibrary>,
    stream: Arc<Stream>,
    work: Work,
    readback: PinnedBuffer,
    events: [Event; 2],
    /// Stamp slots of one launch of the work.
    slots: usize,
    ids: Vec<LaunchId>,
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
        let env = LaunchEnv { lib, stream: &stream, libs: None, bracket_library_calls: false };
        let (work, ids) = match &plan.load {
            AggressorLoad::Stressor(s) => {
                let op = Op::Stressor(s.clone());
                let ids = launch_ids(&op.launches().into_iter().map(|l| (0, l)).collect::<Vec<_>>());
                let inst = OpInstance::allocate(&device, op)?;
                coloc_kernels::instance::prepare(&env, &inst.op)?;
                inst.fill(&env, 7)?;
                (Work::Stressor { inst, arena: StampArena::new(&device, 2 * ids.len())? }, ids)
            }
            AggressorLoad::Model { model, batch } => {
                let graph = ModelGraph::build(model, &BuildOptions { batch: *batch, ..Default::default() })?;
                let libs = coloc_kernels::gpu::StreamLibraries::new(&stream)?;
                let mut inst = ModelInstance::allocate(&device, graph)?;
                let env = LaunchEnv { libs: Some(&libs), ..env };
                inst.initialize(&env, 7, 8)?;
                inst.capture(&env)?;
                let ids = launch_ids(inst.launches());
                (Work::Model { inst, _libs: Box::new(libs) }, ids)
            }
        };
        stream.synchronize()?;
        let slots = ids.len();
        let readback = PinnedBuffer::alloc(&device, 2 * slots * SLOT_BYTES)?;
        let events = [Event::new(stream.context())?, Event::new(stream.context())?];
        Ok(AggressorRunner { plan, lib: lib.clone(), stream, work, readback, events, slots, ids, granted_sms })
    }

    pub fn plan(&self) -> &AggressorPlan {
        &self.plan
    }

    fn launch(&self, slot: usize) -> Result<()> {
        let offset = slot * self.slots * SLOT_BYTES;
        match &self.work {
            Work::Stressor { inst, arena } => {
                let env = LaunchEnv { lib: &self.lib, stream: &self.stream, libs: None, bracket_library_calls: false };
                let first = arena.slot(slot * self.slots);
                coloc_kernels::gpu::memory::zero_words_async(first, self.slots * SLOT_BYTES / 4, &self.stream)?;
                inst.launch(&env, arena.op_slots(slot * self.slots))?;
                coloc_kernels::gpu::memory::download_async(
                    &self.readback,
                    offset,
                    first,
                    self.slots * SLOT_BYTES,
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

    pub fn run(&mut self, run_start: i64) -> Result<RawAggressor> {
        let (start, stop) = (run_start + self.plan.start_ns, run_start + self.plan.stop_ns);
        let mut raw = RawAggressor { aggressor: self.plan.index, launch_ids: self.ids.clone(), launches: Vec::new() };
        while mono_ns() < start {
            if crate::control::interrupted() {
                return Err(Error::Interrupted);
            }
            std::hint::spin_loop();
        }
        let mut inflight: [Option<u32>; 2] = [None, None];
        let mut launches = 0u32;
        loop {
            if crate::control::interrupted() {
                return Err(Error::Interrupted);
            }
            let now = mono_ns();
            for (slot, pending) in inflight.iter_mut().enumerate() {
                if let Some(n) = *pending {
                    if self.events[slot].is_complete()? {
                        let stamps = stamps_from(&self.readback, slot * self.slots * SLOT_BYTES, self.slots);
                        if span_of(&stamps).duration_ns().is_none() {
                            return Err(Error::invalid(&self.plan.name, format!("launch {n} has no timing stamps")));
                        }
                        raw.launches.push(RawAggressorLaunch { number: n, launches: stamps });
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
        Ok(raw)
    }
}
