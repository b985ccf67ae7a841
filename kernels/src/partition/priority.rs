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
