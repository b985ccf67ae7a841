//! A model graph made real on the device: every tensor allocated, weights and KV caches filled
//! once, inputs from the request's input seed, and the operators captured as one CUDA graph
//! (replayed per request: launching operator by operator is CPU-bound, see docs/timing.md).
//! Each operator writes its own stamp slot; an operator that starts in cuBLAS has no entry
//! stamp and takes the previous operator's exit as its start.

use std::sync::Arc;

use coloc_kernels::gpu::memory::download_async;
use coloc_kernels::gpu::{Device, DeviceBuffer, Graph, GraphExec, PinnedBuffer, Stream};
use coloc_kernels::instance::splitmix64;
use coloc_kernels::ops::{Bindings, Init, LaunchEnv, OpSpec, Operand, Role};
use coloc_kernels::timing::{SLOT_BYTES, Stamp, StampArena};
use coloc_workloads::graph::{ModelGraph, TensorKind};

use crate::error::{Error, Result};

pub struct ModelInstance {
    pub graph: ModelGraph,
    buffers: Vec<DeviceBuffer>,
    bindings: Vec<Bindings>,
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
        let stamps = StampArena::new(device, graph.ops.len().max(1))?;
        Ok(ModelInstance { graph, buffers, bindings, stamps, exec: None })
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
        let slot = if stamped { self.stamps.slot(i) } else { 0 };
        self.graph.ops[i].op.launch(env, &self.bindings[i], slot)
    }

    /// Captures the stamped operator sequence as a CUDA graph for replay on `env.stream`'s
    /// context.
    pub fn capture(&mut self, env: &LaunchEnv) -> Result<()> {
        let graph =
            Graph::capture(env.stream, |_| (0..self.graph.ops.len()).try_for_each(|i| self.launch_op(env, i, true)))?;
        self.exec = Some(graph.instantiate()?);
        Ok(())
    }

    /// Zeroes the stamp slots and replays the captured graph on `stream`.
    pub fn launch(&self, stream: &Stream) -> Result<()> {
        let exec = self.exec.as_ref().ok_or_else(|| Error::invalid(&self.graph.model, "launch before capture"))?;
        self.stamps.reset(stream)?;
        exec.launch(stream)?;
        Ok(())
    }

    /// Queues a copy of every operator's stamp slot into `pinned` (at byte `offset`) behind the
    /// last launch on `stream`; read it with [`stamps_from`] once the launch has completed.
    pub fn queue_stamp_readback(&self, stream: &Stream, pinned: &PinnedBuffer, offset: usize) -> Result<()> {
        let bytes = self.graph.ops.len() * SLOT_BYTES;
        download_async(pinned, offset, self.stamps.slot(0), bytes, stream)?;
        Ok(())
    }

    /// Per-operator stamps of the last completed launch (synchronous read), starts filled in
    /// as [`fill_inferred_starts`] does.
    pub fn op_stamps(&self) -> Result<Vec<Stamp>> {
        let mut s = self.stamps.read(self.graph.ops.len())?;
        fill_inferred_starts(&mut s);
        Ok(s)
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

/// Decodes `ops` stamp slots from pinned memory at byte `offset` (see
/// [`ModelInstance::queue_stamp_readback`]), starts filled in as [`fill_inferred_starts`] does.
pub fn stamps_from(pinned: &PinnedBuffer, offset: usize, ops: usize) -> Vec<Stamp> {
    let first = offset / 8;
    let mut s: Vec<Stamp> = (0..ops)
        .map(|i| Stamp::from_words(pinned.read::<u64>(first + 2 * i), pinned.read::<u64>(first + 2 * i + 1)))
        .collect();
    fill_inferred_starts(&mut s);
    s
}

/// An operator that starts in cuBLAS has no entry stamp: its start is the previous operator's
/// exit (the stream runs them back to back).
pub fn fill_inferred_starts(stamps: &mut [Stamp]) {
    for i in 1..stamps.len() {
        if stamps[i].start_ns.is_none() {
            stamps[i].start_ns = stamps[i - 1].end_ns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_entry_stamp_takes_the_previous_exit() {
        let mut s = vec![
            Stamp { start_ns: Some(10), end_ns: Some(20) },
            Stamp { start_ns: None, end_ns: Some(35) },
            Stamp { start_ns: Some(36), end_ns: Some(40) },
        ];
        fill_inferred_starts(&mut s);
        assert_eq!(s[1].start_ns, Some(20));
        assert_eq!(s[2].start_ns, Some(36));
    }
}
