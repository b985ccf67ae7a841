//! NVML, for what the CUDA driver API does not tell: clocks, power, temperature, utilisation,
//! throttle reasons, persistence and MIG mode. Loaded at run time; absent NVML is reported,
//! never fatal. Read-only: coloc never changes a setting of the card.

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::{Device as RawDevice, Nvml};
use serde::{Deserialize, Serialize};

/// An NVML session with the device that matches a CUDA device (by UUID).
pub struct NvmlDevice {
    nvml: &'static Nvml,
    uuid: String,
}

/// One reading of the card's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceSample {
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub power_w: Option<f64>,
    pub temperature_c: Option<u32>,
    pub gpu_util_pct: Option<u32>,
    pub mem_util_pct: Option<u32>,
    /// Reasons the clocks are held below their maximum, by name (empty: none).
    pub throttle_reasons: Vec<String>,
}

/// Settings read once, for manifests and the inventory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeviceSettings {
    pub driver_version: Option<String>,
    pub cuda_driver_version: Option<i32>,
    pub max_sm_clock_mhz: Option<u32>,
    pub max_mem_clock_mhz: Option<u32>,
    pub power_limit_w: Option<f64>,
    pub persistence_mode: Option<bool>,
    pub compute_mode: Option<String>,
}

impl NvmlDevice {
    /// Opens NVML (once per process) and finds the device with this CUDA UUID.
    pub fn open(uuid: &str) -> Result<NvmlDevice, String> {
        static NVML: std::sync::OnceLock<Result<Nvml, String>> = std::sync::OnceLock::new();
        let nvml = NVML.get_or_init(|| Nvml::init().map_err(|e| format!("NVML unavailable: {e}")));
        let nvml = nvml.as_ref().map_err(|e| e.clone())?;
        nvml.device_by_uuid(uuid).map_err(|e| format!("NVML has no device {uuid}: {e}"))?;
        Ok(NvmlDevice { nvml, uuid: uuid.to_string() })
    }

    fn device(&self) -> Result<RawDevice<'static>, String> {
        self.nvml.device_by_uuid(self.uuid.as_str()).map_err(|e| e.to_string())
    }

    pub fn sample(&self) -> DeviceSample {
        let Ok(d) = self.device() else { return DeviceSample::default() };
        let util = d.utilization_rates().ok();
        DeviceSample {
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
            power_w: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            gpu_util_pct: util.as_ref().map(|u| u.gpu),
            mem_util_pct: util.as_ref().map(|u| u.memory),
            throttle_reasons: d
                .current_throttle_reasons()
                .map(|r| {
                    r.iter_names().map(|(n, _)| n.to_string()).filter(|n| n != "GPU_IDLE" && n != "NONE").collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn settings(&self) -> DeviceSettings {
        let Ok(d) = self.device() else { return DeviceSettings::default() };
        DeviceSettings {
            driver_version: self.nvml.sys_driver_version().ok(),
            cuda_driver_version: self.nvml.sys_cuda_driver_version().ok(),
            max_sm_clock_mhz: d.max_clock_info(Clock::SM).ok(),
            max_mem_clock_mhz: d.max_clock_info(Clock::Memory).ok(),
            power_limit_w: d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0),
            persistence_mode: d.is_in_persistent_mode().ok(),
            compute_mode: d.compute_mode().ok().map(|m| format!("{m:?}")),
        }
    }

    /// Process ids of every process with a compute context on the device (an MPS server
    /// included), or why NVML cannot tell.
    pub fn compute_pids(&self) -> Result<Vec<u32>, String> {
        let d = self.device()?;
        d.running_compute_processes().map(|v| v.into_iter().map(|p| p.pid).collect()).map_err(|e| e.to_string())
    }

    /// (current, pending) MIG mode.
    pub fn mig_mode(&self) -> Result<(bool, bool), String> {
        let d = self.device()?;
        d.mig_mode().map(|m| (m.current != 0, m.pending != 0)).map_err(|e| format!("MIG mode not available: {e}"))
    }

    pub fn mig_instances(&self) -> Vec<String> {
        let Ok(d) = self.device() else { return Vec::new() };
        let n = d.mig_device_count().unwrap_or(0);
        (0..n).filter_map(|i| d.mig_device_by_index(i).ok()).filter_map(|m| m.uuid().ok()).collect()
    }
}
