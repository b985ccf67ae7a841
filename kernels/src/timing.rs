//! Device-side timing: %globaltimer stamp slots, the stream blocker and the L2 flush.
//!
//! Two independent clocks time every kernel. CUDA events give the interval between two
//! points of a stream as the GPU front end sees them. Stamps are read inside the kernel from
//! %globaltimer (nanoseconds on one clock for the whole GPU): the first block's entry and the
//! last block's exit, so the overlap of kernels on different streams, green contexts and
//! processes is known on one clock.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::gpu::memory::zero_words_async;
use crate::gpu::{
    Device, DeviceBuffer, Event, ExecContext, KernelArgs, KernelLibrary, LaunchConfig, PinnedBuffer, Stream,
};
use crate::id::{KernelId, KernelSymbol};

/// Bytes of one stamp slot (two u64).
pub const SLOT_BYTES: usize = 16;

/// [first block in, last block out] of one launch, in %globaltimer nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
}

impl Stamp {
    /// Decodes a slot: word 0 holds the complement of the earliest entry, word 1 the latest
    /// exit; zero means nothing was written.
    pub fn from_words(w0: u64, w1: u64) -> Stamp {
        Stamp { start_ns: (w0 != 0).then_some(!w0), end_ns: (w1 != 0).then_some(w1) }
    }

    pub fn duration_ns(&self) -> Option<u64> {
        match (self.start_ns, self.end_ns) {
            (Some(s), Some(e)) if e >= s => Some(e - s),
            _ => None,
        }
    }
}

/// Fills the bounds a library call could not stamp from its neighbours on the stream: a
/// missing start is the previous launch's end, a missing end the next launch's start (see
/// [`crate::ops`]). `stamps` are the slots of consecutive launches of one stream, in order.
/// Spans filled this way are upper bounds: they include the launch gaps on either side.
pub fn fill_library_spans(stamps: &mut [Stamp]) {
    for i in 1..stamps.len() {
        if stamps[i].start_ns.is_none() {
            stamps[i].start_ns = stamps[i - 1].end_ns;
        }
    }
    for i in (0..stamps.len().saturating_sub(1)).rev() {
        if stamps[i].end_ns.is_none() {
            stamps[i].end_ns = stamps[i + 1].start_ns;
        }
    }
}

/// The span of several launches: the earliest start to the latest end.
pub fn span_of(stamps: &[Stamp]) -> Stamp {
    Stamp {
        start_ns: stamps.iter().filter_map(|s| s.start_ns).min(),
        end_ns: stamps.iter().filter_map(|s| s.end_ns).max(),
    }
}

/// A device array of stamp slots.
pub struct StampArena {
    buf: DeviceBuffer,
    slots: usize,
}

impl StampArena {
    pub fn new(device: &Arc<Device>, slots: usize) -> Result<StampArena> {
        Ok(StampArena { buf: DeviceBuffer::alloc(device, slots * SLOT_BYTES, "timing stamp slots")?, slots })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Device address of slot `i`.
    pub fn slot(&self, i: usize) -> u64 {
        assert!(i < self.slots, "stamp slot {i} of {}", self.slots);
        self.buf.ptr() + (i * SLOT_BYTES) as u64
    }

    /// The slots of an operator whose first launch stamps into slot `first`.
    pub fn op_slots(&self, first: usize) -> crate::ops::StampSlots {
        crate::ops::StampSlots::at_address(self.slot(first))
    }

    /// Zeroes every slot, queued on `stream`.
    pub fn reset(&self, stream: &Stream) -> Result<()> {
        stream.context().bind()?;
        zero_words_async(self.buf.ptr(), self.slots * SLOT_BYTES / 4, stream)
    }

    /// Reads the first `n` slots (synchronous; the stream must have finished).
    pub fn read(&self, n: usize) -> Result<Vec<Stamp>> {
        let words: Vec<u64> = self.buf.download(2 * n.min(self.slots))?;
        Ok(words.chunks_exact(2).map(|w| Stamp::from_words(w[0], w[1])).collect())
    }
}

/// Holds a stream on a spinning kernel until the host releases it, so that a whole batch of
/// timed launches is queued before the GPU reaches the first: the samples then measure the
/// GPU, not the CPU's launch rate.
pub struct StreamBlocker {
    flags: PinnedBuffer,
}

/// How long the blocker spins before it gives up on its own.
const BLOCK_TIMEOUT_NS: u64 = 500_000_000;

impl StreamBlocker {
    pub fn new(device: &Arc<Device>) -> Result<StreamBlocker> {
        Ok(StreamBlocker { flags: PinnedBuffer::alloc(device, 8)? })
    }

    pub fn hold(&self, lib: &KernelLibrary, stream: &Stream) -> Result<()> {
        self.flags.write::<i32>(0, 0);
        self.flags.write::<i32>(1, 0);
        let base = self.flags.device_ptr()?;
        let mut args = KernelArgs::new().ptr(base).u64(BLOCK_TIMEOUT_NS).ptr(base + 4);
        let cfg = LaunchConfig::new((1, 1, 1), (32, 1, 1));
        lib.kernel(KernelSymbol::plain(KernelId::BlockUntil))?.launch(stream, cfg, &mut args)
    }

    pub fn release(&self) {
        self.flags.write::<i32>(0, 1);
    }

    /// True when the last hold ended by timeout rather than release.
    pub fn timed_out(&self) -> bool {
        self.flags.read::<i32>(1) != 0
    }
}

/// Evicts the L2 between samples by writing a buffer twice its size.
pub struct L2Flush {
    buf: DeviceBuffer,
}

impl L2Flush {
    pub fn new(device: &Arc<Device>) -> Result<L2Flush> {
        let bytes = (device.info().l2_bytes as usize * 2).max(1 << 20);
        Ok(L2Flush { buf: DeviceBuffer::alloc(device, bytes, "L2 flush buffer")? })
    }

    pub fn flush(&self, stream: &Stream) -> Result<()> {
        stream.context().bind()?;
        zero_words_async(self.buf.ptr(), self.buf.bytes() / 4, stream)
    }
}

/// Times `body` with a CUDA event pair around each of `reps` runs, after `warmup` untimed
/// runs; one run at a time (for work long enough that launch gaps do not matter).
pub fn event_times_ms(
    ctx: &ExecContext,
    stream: &Stream,
    warmup: usize,
    reps: usize,
    body: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    Ok(event_and_host_times_ms(ctx, stream, warmup, reps, body)?.0)
}

/// As [`event_times_ms`], with the host's wall time around each run too (from before its start
/// event is recorded to its end event waited for): an interval the events must fit in.
pub fn event_and_host_times_ms(
    ctx: &ExecContext,
    stream: &Stream,
    warmup: usize,
    reps: usize,
    mut body: impl FnMut() -> Result<()>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    for _ in 0..warmup {
        body()?;
    }
    stream.synchronize()?;
    let (start, end) = (Event::new(ctx)?, Event::new(ctx)?);
    let (mut gpu, mut host) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        start.record(stream)?;
        body()?;
        end.record(stream)?;
        end.synchronize()?;
        host.push(t0.elapsed().as_secs_f64() * 1e3);
        gpu.push(end.elapsed_ms_since(&start)? as f64);
    }
    Ok((gpu, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_words_decode_entry_complement_and_exit() {
        let s = Stamp::from_words(!1_000u64, 1_750);
        assert_eq!(s.start_ns, Some(1_000));
        assert_eq!(s.end_ns, Some(1_750));
        assert_eq!(s.duration_ns(), Some(750));
    }

    #[test]
    fn library_calls_take_their_bounds_from_the_launches_around_them() {
        let known = |a: u64, b: u64| Stamp { start_ns: Some(a), end_ns: Some(b) };
        let none = Stamp { start_ns: None, end_ns: None };
        let exit_only = Stamp { start_ns: None, end_ns: Some(95) };
        // im2col, GEMM, bias; then a GEMM that ends its operator (exit stamp after it)
        let mut s = vec![known(10, 20), none, known(50, 60), exit_only];
        fill_library_spans(&mut s);
        assert_eq!(s[1], known(20, 50));
        assert_eq!(s[3], known(60, 95));
        assert_eq!(span_of(&s[0..3]), known(10, 60));
        // a library call first on the stream with nothing before it keeps no start
        let mut first = vec![none, known(30, 40)];
        fill_library_spans(&mut first);
        assert_eq!(first[0], Stamp { start_ns: None, end_ns: Some(30) });
    }

    #[test]
    fn an_unwritten_slot_has_no_times() {
        let s = Stamp::from_words(0, 0);
        assert_eq!(s, Stamp { start_ns: None, end_ns: None });
        assert_eq!(s.duration_ns(), None);
        // exit before entry is not a duration either
        assert_eq!(Stamp::from_words(!2_000u64, 1_000).duration_ns(), None);
    }
}
