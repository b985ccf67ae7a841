//! Device samples every ~10 ms through NVML while a run is on: SM and memory clocks, power,
//! temperature, utilisation, and the reasons the clocks are held down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coloc_kernels::nvml::{DeviceSample, NvmlDevice};
use serde::{Deserialize, Serialize};

use crate::clock::mono_ns;

/// One NVML reading, stamped on the host clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSampleRow {
    /// Host clock, relative to the start of the measured window.
    pub t_ns: i64,
    #[serde(flatten)]
    pub sample: DeviceSample,
}

pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);

/// Samples until `stop` is set; `window` is the host time of the window start.
pub fn sample_until(nvml: Option<&NvmlDevice>, window: i64, stop: &Arc<AtomicBool>) -> Vec<DeviceSampleRow> {
    let mut rows = Vec::new();
    let Some(nvml) = nvml else { return rows };
    while !stop.load(Ordering::Relaxed) {
        let t = mono_ns();
        rows.push(DeviceSampleRow { t_ns: t - window, sample: nvml.sample() });
        std::thread::sleep(SAMPLE_PERIOD.saturating_sub(Duration::from_nanos((mono_ns() - t).max(0) as u64)));
    }
    rows
}
