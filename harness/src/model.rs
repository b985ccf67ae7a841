//! A model graph made real on the device: every tensor allocated, weights and KV caches filled
//! once, inputs from the request's input seed, and the operators captured as one CUDA graph
//! (replayed per request: launching operator by operator is CPU-bound, see docs/timing.md).
//! Every launch of every operator has a stamp slot of its own; a cuBLAS call takes its bounds
//! from the launches around it (see `coloc_kernels::ops`). A model whose first launch is a
//! cuBLAS call gets an entry stamp before it, so that its start is known too.

use std::ops::Range;
use std::sync::Arc;

use coloc_kernels::gpu::memory::download_async;
use coloc_kernels::gpu::{Device, DeviceBuffer, Graph, GraphExec, PinnedBuffer, Stream};
use coloc_kernels::instance::splitmix64;
use coloc_kernels::ops::{Bindings, Init, LaunchEnv, LaunchSpec, OpSpec, Operand, Role, StampSlots};
use coloc_kernels::timing::{SLOT_BYTES, Stamp, StampArena, fill_library_spans, span_of};
use coloc_workloads::graph::{ModelGraph, TensorKind};

use crate::error::{Error, Result};

pub struct ModelInstance {
    pub graph: ModelGraph,
    buffers: Vec<DeviceBuffer>,
    bindings: Vec<Bindings>,
    /// Every launch of every operator, in order: (operator, its launch).
    launches: Vec<(usize, LaunchSpec)>,
    /// Slot of each operator's first launch.
    first_slot: Vec<usize>,
    stamps: StampArena,
    exec: Option<GraphExec>,
}

impl ModelInstance {
    /// Allocates every tensor of `graph`; an allocation that fails names the tensor.
    pub fn allocate(device: &Arc<Device>, graph: ModelGraph) -> Result<ModelInstance> {
        let mut buffers = Vec::with_capacity(graph.tensors.len());
        for t in &graph.tensors {
            let what = format!("{} tensor `{}` of {} at batch {}", kind_name(t.kind), t.name, graph.model, graph.batch);
            buffers.push(DeviceBuffer::alloc(device, t.bytes(), &what)?);
        }
        let bindings = graph
            .ops
            .iter()
            .map(|op| {
                let mut b = Bindings::new();
                for (name, t) in &op.bindings {
                    b.bind(name, buffers[*t].ptr());
                }
                b
            })
            .collect();
        let mut launches = Vec::new();
        let mut first_slot = Vec::with_capacity(graph.ops.len());
        for (i, op) in graph.ops.iter().enumerate() {
            first_slot.push(launches.len());
            launches.extend(op.op.launches().into_iter().map(|l| (i, l)));
        }
        let stamps = StampArena::new(device, launches.len().max(1))?;
        Ok(ModelInstance { graph, buffers, bindings, launches, first_slot, stamps, exec: None })
    }

    /// Every launch of the model in order: (operator, launch spec).
    pub fn launches(&self) -> &[(usize, LaunchSpec)] {
        &self.launches
    }

    /// Fills weights and state from `weight_seed` and inputs from `input_seed`.
    pub fn initialize(&self, env: &LaunchEnv, weight_seed: u64, input_seed: u64) -> Result<()> {
        for (i, t) in self.graph.tensors.iter().enumerate() {
            let seed = match t.kind {
                TensorKind::Weight | TensorKind::State => splitmix64(weight_seed ^ i as u64),
                TensorKind::Input => splitmix64(input_seed ^ i as u64),
                TensorKind::Activation | TensorKind::Scratch => continue,
            };
            fill(env, &self.buffers[i], t.elem, &t.shape, t.init, seed)?;
        }
        env.stream.synchronize()?;
        Ok(())
    }

    /// New request data: refills the input tensors from `input_seed`.
    pub fn refill_inputs(&self, env: &LaunchEnv, input_seed: u64) -> Result<()> {
        for &i in &self.graph.inputs {
            let t = &self.graph.tensors[i];
            fill(env, &self.buffers[i], t.elem, &t.shape, t.init, splitmix64(input_seed ^ i as u64))?;
        }
        Ok(())
    }

    /// Launches every operator in order; `stamped` gives each its stamp slot.
    pub fn launch_eager(&self, env: &LaunchEnv, stamped: bool) -> Result<()> {
        for i in 0..self.graph.ops.len() {
            self.launch_op(env, i, stamped).map_err(|e| {
                Error::invalid(format!("{} op {}", self.graph.model, self.graph.ops[i].name), e.to_string())
            })?;
        }
        Ok(())
    }

    /// Launches operator `i` alone.
    pub fn launch_op(&self, env: &LaunchEnv, i: usize, stamped: bool) -> Result<(), coloc_kernels::Error> {
        let slots = if stamped { self.stamps.op_slots(self.first_slot[i]) } else { StampSlots::NONE };
        self.graph.ops[i].op.launch(env, &self.bindings[i], slots)
    }

    /// Captures the stamped operator sequence as a CUDA graph for replay on `env.stream`'s
    /// context.
    pub fn capture(&mut self, env: &LaunchEnv) -> Result<()> {
        self.exec = Some(self.capture_ops(env, 0..self.graph.ops.len())?);
        Ok(())
    }

    /// Captures operators `ops` (stamped) as a graph of their own, for replay on `env.stream`'s
    /// context: a pipeline stage. A cuBLAS call first in the range is bracketed (it has no
    /// launch of its own before it); the instance's whole-model graph is untouched.
    pub fn capture_ops(&self, env: &LaunchEnv, ops: Range<usize>) -> Result<GraphExec> {
        let first_is_library = self.launches.get(self.first_slot[ops.start]).is_some_and(|(_, l)| l.is_library());
        let bracketed = LaunchEnv { bracket_library_calls: true, ..*env };
        let start = ops.start;
        let graph = Graph::capture(env.stream, |_| {
            ops.clone().try_for_each(|i| {
                let env = if i == start && first_is_library { &bracketed } else { env };
                self.launch_op(env, i, true)
            })
        })?;
        Ok(graph.instantiate()?)
    }

    /// Zeroes the stamp slots on `stream` (before a replay made of stage graphs).
    pub fn reset_stamps(&self, stream: &Stream) -> Result<()> {
        self.stamps.reset(stream)?;
        Ok(())
    }

    /// The span of operators `ops` in one replay's stamps: the first's first launch in to the
    /// last's last launch out.
    pub fn ops_span(&self, stamps: &[Stamp], ops: Range<usize>) -> Stamp {
        let end = self.first_slot.get(ops.end).copied().unwrap_or(self.launches.len());
        span_of(&stamps[self.first_slot[ops.start]..end])
    }

    /// Zeroes the stamp slots and replays the captured graph on `stream`.
    pub fn launch(&self, stream: &Stream) -> Result<()> {
        let exec = self.exec.as_ref().ok_or_else(|| Error::invalid(&self.graph.model, "launch before capture"))?;
        self.stamps.reset(stream)?;
        exec.launch(stream)?;
        Ok(())
    }

    /// Bytes of the stamp slots of one replay.
    pub fn stamp_bytes(&self) -> usize {
        self.launches.len() * SLOT_BYTES
    }

    /// Queues a copy of every launch's stamp slot into `pinned` (at byte `offset`) behind the
    /// last launch on `stream`; read it with [`stamps_from`] once the launch has completed.
    pub fn queue_stamp_readback(&self, stream: &Stream, pinned: &PinnedBuffer, offset: usize) -> Result<()> {
        download_async(pinned, offset, self.stamps.slot(0), self.stamp_bytes(), stream)?;
        Ok(())
    }

    /// Per-launch stamps of the last completed replay (synchronous read), library calls
    /// bracketed by their neighbours.
    pub fn launch_stamps(&self) -> Result<Vec<Stamp>> {
        let mut s = self.stamps.read(self.launches.len())?;
        fill_library_spans(&mut s);
        Ok(s)
    }

    /// Each operator's span in `stamps` (one replay's [`launch_stamps`](Self::launch_stamps)):
    /// its first launch in to its last launch out, us; none where a launch left no stamp.
    pub fn op_spans_us(&self, stamps: &[Stamp]) -> Vec<Option<f64>> {
        let mut first = 0;
        (0..self.graph.ops.len())
            .map(|op| {
                let n = self.launches[first..].iter().take_while(|(o, _)| *o == op).count();
                let span = span_of(&stamps[first..first + n]).duration_ns().map(|ns| ns as f64 / 1e3);
                first += n;
                span
            })
            .collect()
    }

    /// The output tensor, as f64 (synchronous).
    pub fn output(&self) -> Result<Vec<f64>> {
        let t = &self.graph.tensors[self.graph.output];
        let raw: Vec<u8> = self.buffers[self.graph.output].download(t.bytes())?;
        Ok(t.elem.decode(&raw))
    }

    pub fn device_bytes(&self) -> usize {
        self.buffers.iter().map(|b| b.bytes()).sum()
    }
}

fn kind_name(k: TensorKind) -> &'static str {
    match k {
        TensorKind::Input => "input",
        TensorKind::Weight => "weight",
        TensorKind::Activation => "activation",
        TensorKind::State => "state",
        TensorKind::Scratch => "scratch",
    }
}

/// Fills one tensor as an operand of that shape and init would be filled.
fn fill(
    env: &LaunchEnv,
    buf: &DeviceBuffer,
    elem: coloc_kernels::ElemType,
    shape: &[usize],
    init: Init,
    seed: u64,
) -> Result<()> {
    let operand = Operand::describe("tensor", Role::Input, elem, shape.to_vec(), init);
    coloc_kernels::instance::fill_operand(env, &operand, buf, seed)?;
    Ok(())
}

/// Decodes `slots` stamp slots from pinned memory at byte `offset` (see
/// [`ModelInstance::queue_stamp_readback`]), library calls bracketed by their neighbours.
pub fn stamps_from(pinned: &PinnedBuffer, offset: usize, slots: usize) -> Vec<Stamp> {
    let first = offset / 8;
    let mut s: Vec<Stamp> = (0..slots)
        .map(|i| Stamp::from_words(pinned.read::<u64>(first + 2 * i), pinned.read::<u64>(first + 2 * i + 1)))
        .collect();
    fill_library_spans(&mut s);
    s
}
