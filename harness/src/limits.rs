//! The limits a scenario must fit, read from the real device.

use std::sync::Arc;

use coloc_kernels::gpu::Device;
use coloc_kernels::partition::SmSplit;
use coloc_workloads::scenario::DeviceLimits;

use crate::error::Result;

pub fn of_device(device: &Arc<Device>) -> Result<DeviceLimits> {
    let info = device.info();
    let split = SmSplit::new(device, None)?;
    Ok(DeviceLimits {
        name: info.name.clone(),
        sm_count: info.sm_count,
        l2_bytes: info.l2_bytes,
        green_group_sms: split.group_sms(),
        green_groups: split.groups() as u32,
        priority_range: info.stream_priority_range,
        memory_bytes: info.total_memory_bytes,
    })
}
