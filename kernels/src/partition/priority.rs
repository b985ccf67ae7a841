//! Do stream priorities work? A short kernel arrives while a long, low-priority kernel fills
//! every SM. The block scheduler never preempts a running block, but when blocks retire it
//! starts the waiting blocks of the higher-priority stream first; at equal priority the
//! short kernel waits behind the long kernel's remaining blocks. Latency is measured on the
//! short kernel's own stream, from its arrival (an event recorded as it is queued) to its end.

use serde::Serialize;

use crate::error::Result;
use crate::gpu::{Event, ExecContext, KernelLibrary, Stream};
use crate::instance::OpInstance;
use crate::ops::{LaunchEnv, Op, StampSlots, Stressor, StressorKind};
use crate::stats::median_of;

#[derive(Clone, Debug, Serialize)]
pub struct PriorityReport {
    /// (greatest, least) priority of the device.
    pub priority_range: (i32, i32),
    pub background: Stressor,
    pub probe: Stressor,
    /// Median latency of the short kernel alone, behind the background at equal priority,
    /// and behind it on a higher-priority stream.
    pub alone_us: f64,
    pub equal_priority_us: f64,
    pub high_priority_us: f64,
    pub background_ms: f64,
}

pub fn run(lib: &KernelLibrary, ctx: &ExecContext, reps: usize) -> Result<PriorityReport> {
    let device = ctx.device().clone();
    let sms = device.info().sm_count;
    let (greatest, least) = device.info().stream_priority_range;
    let low = ctx.new_stream(least)?;
    let equal = ctx.new_stream(least)?;
    let high = ctx.new_stream(greatest)?;
    let background = Stressor { kind: StressorKind::Fma { iters: 2000 }, blocks: sms * 128, threads: 256 };
    let probe = Stressor { kind: StressorKind::Fma { iters: 200 }, blocks: sms, threads: 256 };
    let bg = OpInstance::allocate(&device, Op::Stressor(background.clone()))?;
    let pr = OpInstance::allocate(&device, Op::Stressor(probe.clone()))?;
    bg.fill(&env(lib, &low), 1)?;
    pr.fill(&env(lib, &high), 1)?;
    low.synchronize()?;
    high.synchronize()?;
    let (start, end, bg_start, bg_end) = (Event::new(ctx)?, Event::new(ctx)?, Event::new(ctx)?, Event::new(ctx)?);

    // One measurement: optionally start the background, give it time to fill the SMs, then
    // queue the probe and time it on its own stream.
    let measure = |probe_stream: &Stream, with_background: bool| -> Result<(f64, f64)> {
        if with_background {
            bg_start.record(&low)?;
            bg.launch(&env(lib, &low), StampSlots::NONE)?;
            bg_end.record(&low)?;
            let t0 = std::time::Instant::now();
            while t0.elapsed().as_micros() < 300 {
                std::hint::spin_loop();
            }
        }
        start.record(probe_stream)?;
        pr.launch(&env(lib, probe_stream), StampSlots::NONE)?;
        end.record(probe_stream)?;
        end.synchronize()?;
        let probe_us = end.elapsed_ms_since(&start)? as f64 * 1e3;
        let bg_ms = if with_background {
            bg_end.synchronize()?;
            bg_end.elapsed_ms_since(&bg_start)? as f64
        } else {
            0.0
        };
        Ok((probe_us, bg_ms))
    };
    measure(&high, true)?; // warm-up
    let mut alone = Vec::new();
    let mut equal_us = Vec::new();
    let mut high_us = Vec::new();
    let mut bg_ms = Vec::new();
    for _ in 0..reps {
        alone.push(measure(&high, false)?.0);
        let (e, b) = measure(&equal, true)?;
        equal_us.push(e);
        bg_ms.push(b);
        high_us.push(measure(&high, true)?.0);
    }
    Ok(PriorityReport {
        priority_range: (greatest, least),
        background,
        probe,
        alone_us: median_of(&alone),
        equal_priority_us: median_of(&equal_us),
        high_priority_us: median_of(&high_us),
        background_ms: median_of(&bg_ms),
    })
}

fn env<'a>(lib: &'a KernelLibrary, stream: &'a Stream) -> LaunchEnv<'a> {
    LaunchEnv { lib, stream, libs: None, bracket_library_calls: false }
}

/// How much faster than alone a probe may read behind the background (timer noise).
pub const FASTER_THAN_ALONE_AT_MOST: f64 = 0.97;

impl PriorityReport {
    /// What cannot be: the probe faster behind the background than alone. Empty when it can
    /// be believed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, us) in [("equal priority", self.equal_priority_us), ("higher priority", self.high_priority_us)] {
            let possible = us.is_finite() && us >= FASTER_THAN_ALONE_AT_MOST * self.alone_us;
            if !possible {
                out.push(format!(
                    "behind the background at {name} the probe took {us:.1} us, alone {:.1} us",
                    self.alone_us
                ));
            }
        }
        let timed = self.alone_us > 0.0 && self.background_ms > 0.0;
        if !timed {
            out.push(format!(
                "probe alone {:.1} us, background {:.3} ms: both must be timed",
                self.alone_us, self.background_ms
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(alone: f64, equal: f64, high: f64) -> PriorityReport {
        let fma = |iters| Stressor { kind: StressorKind::Fma { iters }, blocks: 132, threads: 256 };
        PriorityReport {
            priority_range: (-5, 0),
            background: fma(2000),
            probe: fma(200),
            alone_us: alone,
            equal_priority_us: equal,
            high_priority_us: high,
            background_ms: 2.3,
        }
    }

    #[test]
    fn a_probe_faster_behind_the_background_than_alone_is_a_problem() {
        assert!(report(12.0, 2335.0, 147.0).problems().is_empty());
        let p = report(150.0, 2335.0, 100.0).problems().join("\n");
        assert!(p.contains("at higher priority the probe took 100.0 us, alone 150.0 us"), "{p}");
        assert!(!report(f64::NAN, 2335.0, 147.0).problems().is_empty());
    }
}
