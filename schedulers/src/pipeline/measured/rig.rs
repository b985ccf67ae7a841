//! The device side of a measured pipeline: green contexts as elements, one model instance per
//! batch in flight (a slot), stage graphs captured per (slot, element, operators) and kept,
//! dispatch with events between elements, and whole-model replays for the profiles.

use std::collections::HashMap;
use std::sync::Arc;

use coloc_harness::model::{ModelInstance, stamps_from};
use coloc_kernels::gpu::{Event, GraphExec, KernelLibrary, PinnedBuffer, Stream, StreamLibraries};
use coloc_kernels::ops::LaunchEnv;
use coloc_kernels::partition::GreenPartition;
use coloc_kernels::timing::Stamp;

use crate::error::{Error, Result};
use crate::pipeline::{Layout, Split};

/// A processing element: a green context, its stage stream and the stream's library handles.
pub(super) struct Element {
    pub(super) stream: Arc<Stream>,
    pub(super) libs: StreamLibraries,
    pub(super) granted_sms: u32,
    pub(super) _partition: GreenPartition,
}

/// Everything a run needs on the device, kept across the policies' runs.
/// Fields drop in order: the graphs and events made in the elements' contexts go before them.
pub(super) struct Rig<'a> {
    pub(super) lib: &'a Arc<KernelLibrary>,
    pub(super) slots: Vec<ModelInstance>,
    /// Per slot and element: recorded after the slot's stage on that element (created in the
    /// element's context, where it is recorded).
    pub(super) stage_done: Vec<Vec<Event>>,
    /// Stage graphs by (slot, element, first operator, end), captured once and kept: a batch in
    /// flight may still replay one the layout no longer uses.
    pub(super) graphs: HashMap<(usize, usize, usize, usize), GraphExec>,
    pub(super) readback: PinnedBuffer,
    pub(super) stamp_bytes: usize,
    pub(super) slot_launches: usize,
    pub(super) elements: Vec<Element>,
}

impl Rig<'_> {
    pub(super) fn env(&self, element: usize) -> LaunchEnv<'_> {
        let e = &self.elements[element];
        LaunchEnv { lib: self.lib, stream: &e.stream, libs: Some(&e.libs), bracket_library_calls: false }
    }

    /// Captures the graphs `layout` needs on every slot that are not captured yet; how many.
    pub(super) fn ensure(&mut self, layout: &Layout) -> Result<usize> {
        let mut captured = 0;
        while self.capture_one(layout)? {
            captured += 1;
        }
        Ok(captured)
    }

    /// Captures one graph `layout` needs that is not captured yet; false when none is missing.
    pub(super) fn capture_one(&mut self, layout: &Layout) -> Result<bool> {
        for slot in 0..self.slots.len() {
            for stage in 0..layout.split.stages() {
                let (e, r) = (layout.element_of[stage], layout.split.range(stage));
                let key = (slot, e, r.start, r.end);
                if !self.graphs.contains_key(&key) {
                    let exec = self.slots[slot].capture_ops(&self.env(e), r)?;
                    self.graphs.insert(key, exec);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Queues one batch on `slot` through `layout`'s stages; its stamps land in the slot's
    /// read-back region and its last element's event marks it done.
    pub(super) fn dispatch(&self, slot: usize, layout: &Layout) -> Result<()> {
        let inst = &self.slots[slot];
        let last = layout.split.stages() - 1;
        for stage in 0..=last {
            let (e, r) = (layout.element_of[stage], layout.split.range(stage));
            let stream = &self.elements[e].stream;
            if stage == 0 {
                inst.reset_stamps(stream)?;
            } else if layout.element_of[stage - 1] != e {
                stream.wait_for(&self.stage_done[slot][layout.element_of[stage - 1]])?;
            }
            self.graphs[&(slot, e, r.start, r.end)].launch(stream)?;
            if stage == last {
                inst.queue_stamp_readback(stream, &self.readback, slot * self.stamp_bytes)?;
            }
            self.stage_done[slot][e].record(stream)?;
        }
        Ok(())
    }

    pub(super) fn done(&self, slot: usize, layout: &Layout) -> Result<bool> {
        let last = *layout.element_of.last().expect("stages");
        Ok(self.stage_done[slot][last].is_complete()?)
    }

    pub(super) fn stamps(&self, slot: usize) -> Vec<Stamp> {
        stamps_from(&self.readback, slot * self.stamp_bytes, self.slot_launches)
    }

    pub(super) fn synchronize(&self) -> Result<()> {
        for e in &self.elements {
            e.stream.synchronize()?;
        }
        Ok(())
    }

    /// Whole-model replays of slot 0 on `element`, one at a time: each operator's time (its
    /// first launch's start to the next operator's; the last to its end), per replay.
    pub(super) fn replays(&mut self, element: usize, replays: usize) -> Result<Vec<Vec<f64>>> {
        let n = self.slots[0].graph.ops.len();
        let whole = Layout { split: Split::from_starts(&[], n).expect("one stage"), element_of: vec![element] };
        self.ensure_one(&whole)?;
        let mut out = Vec::with_capacity(replays);
        for _ in 0..replays {
            self.dispatch(0, &whole)?;
            self.elements[element].stream.synchronize()?;
            let stamps = self.stamps(0);
            let starts: Option<Vec<u64>> =
                (0..n).map(|op| self.slots[0].ops_span(&stamps, op..op + 1).start_ns).collect();
            let end = self.slots[0].ops_span(&stamps, 0..n).end_ns;
            let (Some(starts), Some(end)) = (starts, end) else {
                return Err(Error::invalid(
                    format!("element {element}'s profile"),
                    "a replay left operators unstamped",
                ));
            };
            let times = (0..n).map(|op| (starts.get(op + 1).copied().unwrap_or(end) as f64 - starts[op] as f64) / 1e3);
            out.push(times.collect());
        }
        Ok(out)
    }

    /// Captures `layout`'s graphs on slot 0 only (the profiles replay slot 0).
    pub(super) fn ensure_one(&mut self, layout: &Layout) -> Result<()> {
        let (e, r) = (layout.element_of[0], layout.split.range(0));
        let key = (0, e, r.start, r.end);
        if !self.graphs.contains_key(&key) {
            let exec = self.slots[0].capture_ops(&self.env(e), r)?;
            self.graphs.insert(key, exec);
        }
        Ok(())
    }
}
