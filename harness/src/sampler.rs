//! Device samples every ~10 ms through NVML while a run is on: SM and memory clocks, power,
//! temperature, utilisation, and the reasons the clocks are held down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coloc_dataset::rows::DeviceSampleRow;
use coloc_kernels::nvml::NvmlDevice;

use crate::clock::mono_ns;

pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);

/// Samples until `stop` is set; `window` is the host time of the window start.
pub fn sample_until(nvml: Option<&NvmlDevice>, window: i64, stop: &Arc<AtomicBool>) -> Vec<DeviceSampleRow> {
    let mut rows = Vec::new();
    let Some(nvml) = nvml else { return rows };
    while !stop.load(Ordering::Relaxed) {
        let t = mono_ns();
        let s = nvml.sample();
        rows.push(DeviceSampleRow {
            run: String::new(),
            t_ns: t - window,
            sm_clock_mhz: s.sm_clock_mhz,
            mem_clock_mhz: s.mem_clock_mhz,
            power_w: s.power_w,
            temperature_c: s.temperature_c,
            gpu_util_pct: s.gpu_util_pct,
            mem_util_pct: s.mem_util_pct,
            throttle: s.throttle_reasons,
        });
        std::thread::sleep(SAMPLE_PERIOD.saturating_sub(Duration::from_nanos((mono_ns() - t).max(0) as u64)));
    }
    rows
}
