//! MIG is detected and reported through NVML; coloc never changes it.

use serde::{Deserialize, Serialize};

use crate::nvml::NvmlDevice;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MigStatus {
    /// False when NVML says the device has no MIG support (or NVML is unavailable).
    pub supported: bool,
    pub current_enabled: Option<bool>,
    pub pending_enabled: Option<bool>,
    /// UUIDs of MIG devices that exist now.
    pub instances: Vec<String>,
    pub note: Option<String>,
}

pub fn status(dev: Option<&NvmlDevice>) -> MigStatus {
    let Some(dev) = dev else {
        return MigStatus {
            supported: false,
            current_enabled: None,
            pending_enabled: None,
            instances: Vec::new(),
            note: Some("NVML unavailable".into()),
        };
    };
    match dev.mig_mode() {
        Ok((current, pending)) => MigStatus {
            supported: true,
            current_enabled: Some(current),
            pending_enabled: Some(pending),
            instances: if current { dev.mig_instances() } else { Vec::new() },
            note: None,
        },
        Err(e) => MigStatus {
            supported: false,
            current_enabled: None,
            pending_enabled: None,
            instances: Vec::new(),
            note: Some(e),
        },
    }
}
