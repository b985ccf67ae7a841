//! Calibrating the host/GPU clock map on the GPU (the map itself is
//! `coloc_dataset::clock`). A calibration is a ping-pong through host-mapped memory: the host
//! writes a ping, a resident one-thread kernel stamps %globaltimer and answers. Of many pings
//! the one with the shortest round trip bounds the offset best (its midpoint, within half the
//! round trip). Both legs of a ping are one PCIe crossing, so the midpoint is close to
//! unbiased; a launch-and-synchronise round trip is not (the launch leg is several
//! microseconds longer than the completion leg). A run calibrates before and after, which
//! gives offset and rate.
//!
//! [`check`] verifies a map with an independent method: stamps from ordinary kernel launches,
//! mapped to the host clock, must fall between the host readings taken before the launch and
//! after its completion.

use std::sync::atomic::{Ordering, fence};

use coloc_dataset::clock::{Calibration, ClockCheck, ClockMap, Ping, judge};
use coloc_kernels::gpu::{KernelArgs, KernelLibrary, LaunchConfig, PinnedBuffer, Stream};
use coloc_kernels::id::{KernelId, KernelSymbol};

use crate::error::{Error, Result};

/// Pings per calibration.
pub const CALIBRATION_PINGS: usize = 64;

/// How long the host waits for one answer; the first may wait for work already queued on the
/// stream, the kernel gives up on its own after the same time without a ping.
const PING_TIMEOUT_NS: i64 = 2_000_000_000;

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec and a clock every Linux has.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Calibrates on `stream` with `pings` ping-pongs (at least one).
pub fn calibrate(lib: &KernelLibrary, stream: &Stream, pings: usize) -> Result<Calibration> {
    let pings = pings.max(1);
    // Layout: ping (i32), pong (i32), then one u64 stamp per ping.
    let slots = PinnedBuffer::alloc(lib.device(), 8 + 8 * pings)?;
    let base = slots.device_ptr()?;
    let kernel = lib.kernel(KernelSymbol::plain(KernelId::ClockPing))?;
    kernel.launch(
        stream,
        LaunchConfig::new((1, 1, 1), (32, 1, 1)),
        &mut KernelArgs::new().ptr(base).ptr(base + 4).ptr(base + 8).i32(pings as i32).u64(PING_TIMEOUT_NS as u64),
    )?;
    let mut answered = Vec::with_capacity(pings);
    let mut failure = None;
    for round in 1..=pings as i32 {
        let host_before_ns = mono_ns();
        slots.write::<i32>(0, round);
        // Drain the store buffer so the ping leaves now, not whenever the core gets to it.
        fence(Ordering::SeqCst);
        let deadline = host_before_ns + PING_TIMEOUT_NS;
        let answered_in_time = loop {
            if slots.read::<i32>(1) == round {
                break true;
            }
            if mono_ns() > deadline {
                break false;
            }
            std::hint::spin_loop();
        };
        let host_after_ns = mono_ns();
        if !answered_in_time {
            failure = Some(round);
            break;
        }
        answered.push(Ping { host_before_ns, host_after_ns, gpu_ns: slots.read::<u64>(round as usize) });
    }
    // The kernel has answered every ping or will give up on its own.
    stream.synchronize()?;
    if let Some(round) = failure {
        return Err(Error::invalid(
            "clock calibration",
            format!(
                "the GPU did not answer ping {round} of {pings} within {} s (is the GPU held by other work?)",
                PING_TIMEOUT_NS / 1_000_000_000
            ),
        ));
    }
    Calibration::of(&answered).ok_or_else(|| Error::invalid("clock calibration", "no usable ping"))
}

/// Checks `map` with `launches` bracketed launches of a stamping kernel on `stream`.
pub fn check(lib: &KernelLibrary, stream: &Stream, map: &ClockMap, launches: usize) -> Result<ClockCheck> {
    let buf = coloc_kernels::gpu::DeviceBuffer::alloc(lib.device(), 16, "clock check slot")?;
    let kernel = lib.kernel(KernelSymbol::plain(KernelId::StampPoint))?;
    let mut brackets = Vec::with_capacity(launches);
    for _ in 0..launches.max(1) {
        coloc_kernels::gpu::memory::zero_words_async(buf.ptr(), 4, stream)?;
        stream.synchronize()?;
        let host_before_ns = mono_ns();
        kernel.launch(
            stream,
            LaunchConfig::new((1, 1, 1), (32, 1, 1)),
            &mut KernelArgs::new().ptr(buf.ptr()).i32(1),
        )?;
        stream.synchronize()?;
        let host_after_ns = mono_ns();
        let stamps: Vec<u64> = buf.download(2)?;
        brackets.push(Ping { host_before_ns, host_after_ns, gpu_ns: stamps[1] });
    }
    Ok(judge(map, &brackets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = mono_ns();
        assert!(b - a >= 2_000_000, "{a} -> {b}");
    }
}
