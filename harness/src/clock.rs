//! One clock for host and GPU. Request arrivals are host times (CLOCK_MONOTONIC, which every
//! process on the machine shares, MPS clients included); kernel times are the GPU's
//! %globaltimer. A calibration maps one onto the other by ping-pong through host-mapped
//! memory: the host writes a ping, a resident one-thread kernel stamps %globaltimer and
//! answers. Of many pings the one with the shortest round trip bounds the offset best (its
//! midpoint, within half the round trip). Both legs of a ping are one PCIe crossing, so the
//! midpoint is close to unbiased; a launch-and-synchronise round trip is not (the launch leg
//! is several microseconds longer than the completion leg).
//!
//! [`check`] verifies a calibration with an independent method: stamps from ordinary kernel
//! launches, mapped to the host clock, must fall between the host readings taken before the
//! launch and after its completion.

use std::sync::atomic::{Ordering, fence};

use coloc_kernels::gpu::{KernelArgs, KernelLibrary, LaunchConfig, PinnedBuffer, Stream};
use coloc_kernels::id::{KernelId, KernelSymbol};
use coloc_kernels::stats::median_of;
use serde::{Deserialize, Serialize};

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

/// `gpu_ns = host_ns + offset_ns`, known to within `uncertainty_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockMap {
    pub offset_ns: i64,
    pub uncertainty_ns: i64,
}

impl ClockMap {
    pub fn to_host(&self, gpu_ns: u64) -> i64 {
        gpu_ns as i64 - self.offset_ns
    }
    pub fn to_gpu(&self, host_ns: i64) -> u64 {
        (host_ns + self.offset_ns) as u64
    }
}

/// One answered ping: host times around it and the GPU's stamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ping {
    pub host_before_ns: i64,
    pub host_after_ns: i64,
    pub gpu_ns: u64,
}

impl Ping {
    fn round_trip_ns(&self) -> i64 {
        self.host_after_ns - self.host_before_ns
    }
}

/// The map from the ping with the shortest round trip: its midpoint, within half of it.
pub fn fit(pings: &[Ping]) -> Option<ClockMap> {
    let best = pings.iter().min_by_key(|p| p.round_trip_ns())?;
    let mid = best.host_before_ns + best.round_trip_ns() / 2;
    Some(ClockMap { offset_ns: best.gpu_ns as i64 - mid, uncertainty_ns: (best.round_trip_ns() + 1) / 2 })
}

/// Calibrates on `stream` with `pings` ping-pongs (at least one).
pub fn calibrate(lib: &KernelLibrary, stream: &Stream, pings: usize) -> Result<ClockMap> {
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
    fit(&answered).ok_or_else(|| Error::invalid("clock calibration", "no usable ping"))
}

/// How ordinary launches agree with a clock map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockCheck {
    pub launches: usize,
    /// Launches whose mapped stamp fell outside their host bracket by more than the map's
    /// uncertainty.
    pub outside: usize,
    /// Medians, microseconds: host reading before the launch to the kernel's stamp, and the
    /// stamp to the host reading after the synchronisation returned.
    pub launch_to_stamp_us: f64,
    pub stamp_to_return_us: f64,
    /// The smallest of those two gaps over all launches (negative: outside the bracket).
    pub tightest_margin_us: f64,
}

/// Counts launches whose mapped stamps fall outside `[before, after]` (widened by the map's
/// uncertainty).
pub fn judge(map: &ClockMap, brackets: &[Ping]) -> ClockCheck {
    let lead: Vec<f64> = brackets.iter().map(|b| (map.to_host(b.gpu_ns) - b.host_before_ns) as f64 / 1e3).collect();
    let tail: Vec<f64> = brackets.iter().map(|b| (b.host_after_ns - map.to_host(b.gpu_ns)) as f64 / 1e3).collect();
    let slack = map.uncertainty_ns as f64 / 1e3;
    let outside = lead.iter().zip(&tail).filter(|(l, t)| **l < -slack || **t < -slack).count();
    ClockCheck {
        launches: brackets.len(),
        outside,
        launch_to_stamp_us: median_of(&lead),
        stamp_to_return_us: median_of(&tail),
        tightest_margin_us: lead.iter().chain(&tail).copied().fold(f64::INFINITY, f64::min),
    }
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

    fn ping(before: i64, after: i64, gpu: u64) -> Ping {
        Ping { host_before_ns: before, host_after_ns: after, gpu_ns: gpu }
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = mono_ns();
        assert!(b - a >= 2_000_000, "{a} -> {b}");
    }

    #[test]
    fn clock_map_round_trips() {
        let m = ClockMap { offset_ns: 1_700_000_000_000_000_000, uncertainty_ns: 5_000 };
        let host = 123_456_789;
        assert_eq!(m.to_host(m.to_gpu(host)), host);
    }

    #[test]
    fn the_fit_uses_the_shortest_round_trip_and_its_midpoint() {
        // GPU clock = host + 1000. The slow ping's stamp is off-centre; the fast one is exact.
        let pings =
            [ping(0, 10_000, 1_000 + 9_000), ping(20_000, 20_400, 1_000 + 20_200), ping(30_000, 31_000, 31_900)];
        let m = fit(&pings).unwrap();
        assert_eq!(m.offset_ns, 1_000);
        assert_eq!(m.uncertainty_ns, 200);
    }

    #[test]
    fn no_pings_give_no_fit() {
        assert!(fit(&[]).is_none());
    }

    #[test]
    fn the_check_counts_stamps_outside_their_bracket() {
        let m = ClockMap { offset_ns: 0, uncertainty_ns: 100 };
        // Inside; 50 ns early (within the uncertainty); 500 ns late (outside).
        let brackets = [ping(1_000, 5_000, 3_000), ping(1_000, 5_000, 950), ping(1_000, 5_000, 5_500)];
        let c = judge(&m, &brackets);
        assert_eq!(c.launches, 3);
        assert_eq!(c.outside, 1);
        assert!((c.tightest_margin_us - (-0.5)).abs() < 1e-9, "{c:?}");
        assert!((c.launch_to_stamp_us - 2.0).abs() < 1e-9, "{c:?}");
    }
}
