//! One clock for host and GPU. Request arrivals are host times (CLOCK_MONOTONIC, which every
//! process on the machine shares, MPS clients included); kernel times are the GPU's
//! %globaltimer. A calibration maps one onto the other: a one-thread kernel reads %globaltimer
//! between two host readings; of many tries, the one with the shortest round trip bounds the
//! offset best (its midpoint, within half the round trip).

use coloc_kernels::gpu::{DeviceBuffer, KernelArgs, KernelLibrary, LaunchConfig, Stream};
use coloc_kernels::id::{KernelId, KernelSymbol};
use serde::{Deserialize, Serialize};

use crate::error::Result;

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

/// Calibrates on `stream` with `tries` round trips.
pub fn calibrate(lib: &KernelLibrary, stream: &Stream, tries: usize) -> Result<ClockMap> {
    let buf = DeviceBuffer::alloc(lib.device(), 16, "clock calibration slot")?;
    let kernel = lib.kernel(KernelSymbol::plain(KernelId::StampPoint))?;
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..tries.max(1) {
        coloc_kernels::gpu::memory::zero_words_async(buf.ptr(), 4, stream)?;
        stream.synchronize()?;
        let before = mono_ns();
        kernel.launch(
            stream,
            LaunchConfig::new((1, 1, 1), (32, 1, 1)),
            &mut KernelArgs::new().ptr(buf.ptr()).i32(1),
        )?;
        stream.synchronize()?;
        let after = mono_ns();
        let gpu: Vec<u64> = buf.download(2)?;
        let rtt = after - before;
        let offset = gpu[1] as i64 - (before + after) / 2;
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    let (rtt, offset_ns) = best.expect("at least one try");
    Ok(ClockMap { offset_ns, uncertainty_ns: rtt / 2 })
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

    #[test]
    fn clock_map_round_trips() {
        let m = ClockMap { offset_ns: 1_700_000_000_000_000_000, uncertainty_ns: 5_000 };
        let host = 123_456_789;
        assert_eq!(m.to_host(m.to_gpu(host)), host);
    }
}
