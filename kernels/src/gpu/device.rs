//! The CUDA device and its primary context.

use std::ffi::{CStr, c_char, c_int};
use std::sync::{Arc, OnceLock};

use cudarc::driver::sys::{self, CUdevice_attribute as Attr};
use serde::{Deserialize, Serialize};

use super::driver::cu;
use super::libs;
use crate::error::{Error, Result};

/// Static facts about a device, read from the driver once when it is opened.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub uuid: String,
    pub pci_bus_id: String,
    pub compute_capability: (u32, u32),
    pub sm_count: u32,
    pub l2_bytes: u64,
    pub total_memory_bytes: u64,
    pub memory_bus_width_bits: u32,
    pub max_threads_per_sm: u32,
    pub max_shared_memory_per_block_optin: u32,
    pub max_shared_memory_per_sm: u32,
    pub registers_per_sm: u32,
    /// Greatest and least stream priority (numerically lower is higher priority).
    pub stream_priority_range: (i32, i32),
    /// As the driver reports it: 0 default, 1 exclusive thread, 2 prohibited, 3 exclusive process.
    pub compute_mode: u32,
    /// True when this process's contexts are MPS clients.
    pub mps_client: bool,
    /// CUDA driver API version, e.g. 13000.
    pub driver_api_version: u32,
}

impl DeviceInfo {
    pub fn arch(&self) -> String {
        format!("sm_{}{}", self.compute_capability.0, self.compute_capability.1)
    }
}

/// An open device with its retained primary context. Green contexts and every allocation
/// share the primary context's memory.
pub struct Device {
    raw: sys::CUdevice,
    primary: sys::CUcontext,
    info: DeviceInfo,
}

// The driver API is thread-safe; the handles are plain identifiers.
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Device {
    /// Opens device `ordinal`: checks that a driver exists, initialises it and retains the
    /// primary context.
    pub fn open(ordinal: usize) -> Result<Arc<Device>> {
        libs::require_driver()?;
        static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
        INIT.get_or_init(|| cu!(cuInit(0)).map_err(|e| e.to_string()))
            .clone()
            .map_err(|detail| Error::MissingLibrary { what: "a working NVIDIA driver", detail })?;
        let mut count: c_int = 0;
        cu!(cuDeviceGetCount(&mut count))?;
        if count <= 0 {
            let visible = std::env::var("CUDA_VISIBLE_DEVICES").map(|v| format!(" (CUDA_VISIBLE_DEVICES={v:?})"));
            return Err(Error::NoDevice(format!("the driver sees no CUDA device{}", visible.unwrap_or_default())));
        }
        if ordinal >= count as usize {
            return Err(Error::NoDevice(format!("device {ordinal} requested but only {count} visible")));
        }
        let mut raw: sys::CUdevice = 0;
        cu!(cuDeviceGet(&mut raw, ordinal as c_int))?;
        let mut primary = std::ptr::null_mut();
        cu!(cuDevicePrimaryCtxRetain(&mut primary, raw))?;
        cu!(cuCtxSetCurrent(primary))?;
        let info = read_info(ordinal, raw)?;
        Ok(Arc::new(Device { raw, primary, info }))
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn raw(&self) -> sys::CUdevice {
        self.raw
    }

    pub fn primary_context(&self) -> sys::CUcontext {
        self.primary
    }

    /// Makes the primary context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        cu!(cuCtxSetCurrent(self.primary))
    }

    /// Free and total device memory, in bytes.
    pub fn memory_info(&self) -> Result<(u64, u64)> {
        self.bind()?;
        let (mut free, mut total) = (0usize, 0usize);
        cu!(cuMemGetInfo_v2(&mut free, &mut total))?;
        Ok((free as u64, total as u64))
    }

    /// Waits for all work on the device from this process.
    pub fn synchronize(&self) -> Result<()> {
        self.bind()?;
        cu!(cuCtxSynchronize())
    }

    pub fn attribute(&self, attr: Attr) -> Result<i32> {
        attribute(self.raw, attr)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        unsafe {
            sys::cuDevicePrimaryCtxRelease_v2(self.raw);
        }
    }
}

fn attribute(dev: sys::CUdevice, attr: Attr) -> Result<i32> {
    let mut v: c_int = 0;
    cu!(cuDeviceGetAttribute(&mut v, attr, dev))?;
    Ok(v)
}

fn read_info(ordinal: usize, dev: sys::CUdevice) -> Result<DeviceInfo> {
    let a = |attr| attribute(dev, attr);
    let mut name = [0 as c_char; 256];
    cu!(cuDeviceGetName(name.as_mut_ptr(), name.len() as c_int, dev))?;
    let name = unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
    let mut uuid = sys::CUuuid_st { bytes: [0; 16] };
    cu!(cuDeviceGetUuid_v2(&mut uuid, dev))?;
    let u: Vec<u8> = uuid.bytes.iter().map(|b| *b as u8).collect();
    let uuid =
        format!("GPU-{}-{}-{}-{}-{}", hex(&u[0..4]), hex(&u[4..6]), hex(&u[6..8]), hex(&u[8..10]), hex(&u[10..16]));
    let mut bus = [0 as c_char; 64];
    cu!(cuDeviceGetPCIBusId(bus.as_mut_ptr(), bus.len() as c_int, dev))?;
    let pci_bus_id = unsafe { CStr::from_ptr(bus.as_ptr()) }.to_string_lossy().into_owned();
    let mut total = 0usize;
    cu!(cuDeviceTotalMem_v2(&mut total, dev))?;
    let (mut least, mut greatest) = (0, 0);
    cu!(cuCtxGetStreamPriorityRange(&mut least, &mut greatest))?;
    let mut driver_api_version = 0;
    cu!(cuDriverGetVersion(&mut driver_api_version))?;
    Ok(DeviceInfo {
        ordinal,
        name,
        uuid,
        pci_bus_id,
        compute_capability: (
            a(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)? as u32,
            a(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)? as u32,
        ),
        sm_count: a(Attr::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
        l2_bytes: a(Attr::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as u64,
        total_memory_bytes: total as u64,
        memory_bus_width_bits: a(Attr::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)? as u32,
        max_threads_per_sm: a(Attr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR)? as u32,
        max_shared_memory_per_block_optin: a(Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)? as u32,
        max_shared_memory_per_sm: a(Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)? as u32,
        registers_per_sm: a(Attr::CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR)? as u32,
        stream_priority_range: (greatest, least),
        compute_mode: a(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_MODE)? as u32,
        mps_client: a(Attr::CU_DEVICE_ATTRIBUTE_MPS_ENABLED).unwrap_or(0) != 0,
        driver_api_version: driver_api_version as u32,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
