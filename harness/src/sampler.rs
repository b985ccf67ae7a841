//! Device samples every ~10 ms through NVML while a run is on: SM and memory clocks, power,
//! temperature, utilisation, and the reasons the clocks are held down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coloc_kernels::nvml::NvmlDevice;
use serde::{Deserialize, Serialize};

use crate::clock::mono_ns;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSampleRow {
    /// Host clock, relative to the start of the measured window.
    pub t_ns: i64,
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub power_w: Option<f64>,
    pub temperature_c: Option<u32>,
    pub gpu_util_pct: Option<u32>,
    pub mem_util_pct: Option<u32>,
    /// Throttle reasons, comma-separated (empty: none).
    pub throttle: String,
}

pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);

/// Samples until `stop` is set; `window` is the host time of the window start.
pub fn sample_until(nvml: Option<&NvmlDevice>, window: i64, stop: &Arc<AtomicBool>) -> Vec<DeviceSampleRow> {
    let mut rows = Vec::new();
    let Some(nvml) = nvml else { return rows };
    while !stop.load(Ordering::Relaxed) {
        let t = mono_ns();
        let s = nvml.sample();
        rows.push(DeviceSampleRow {
            t_ns: t - window,
            sm_clock_mhz: s.sm_clock_mhz,
            mem_clock_mhz: s.mem_clock_mhz,
            power_w: s.power_w,
            temperature_c: s.temperature_c,
            gpu_util_pct: s.gpu_util_pct,
            mem_util_pct: s.mem_util_pct,
            throttle: s.throttle_reasons.join(","),
        });
        std::thread::sleep(SAMPLE_PERIOD.saturating_sub(Duration::from_nanos((mono_ns() - t).max(0) as u64)));
    }
    rows
}
