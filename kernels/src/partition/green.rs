//! Green contexts: the device's SMs split once into equal groups, handed out to partitions
//! as whole groups. Each partition is a green context whose streams run only on its SMs; it
//! is destroyed when dropped (RAII through [`ExecContext`]).

use std::sync::Arc;

use cudarc::driver::sys;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::driver::cu;
use crate::gpu::{Device, ExecContext};

/// One split of the device's SMs into groups of equal size (plus an unassignable remainder).
pub struct SmSplit {
    device: Arc<Device>,
    groups: Vec<sys::CUdevResource>,
    group_sms: u32,
    remainder_sms: u32,
    total_sms: u32,
    min_partition_sms: u32,
    alignment_sms: u32,
}

/// A created partition: its context and what the driver granted.
pub struct GreenPartition {
    pub label: String,
    pub requested_sms: u32,
    pub granted_sms: u32,
    pub context: ExecContext,
}

/// Green-context facts of a device, for the inventory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GreenSupport {
    pub usable: bool,
    pub total_sms: u32,
    pub min_partition_sms: u32,
    pub alignment_sms: u32,
    pub group_sms: u32,
    pub groups: u32,
    pub remainder_sms: u32,
    pub error: Option<String>,
}

fn sm_of(r: &sys::CUdevResource) -> sys::CUdevSmResource {
    // SAFETY: every resource here is of type SM, so the `sm` member is the live one.
    unsafe { r.__bindgen_anon_1.sm }
}

impl SmSplit {
    /// Splits all SMs into groups of `group_sms` (rounded up by the driver to what the chip
    /// allows; `None` asks for the smallest the chip allows).
    pub fn new(device: &Arc<Device>, group_sms: Option<u32>) -> Result<SmSplit> {
        device.bind()?;
        let mut input: sys::CUdevResource = unsafe { std::mem::zeroed() };
        cu!(cuDeviceGetDevResource(device.raw(), &mut input, sys::CUdevResourceType::CU_DEV_RESOURCE_TYPE_SM))?;
        let sm = sm_of(&input);
        let smallest = sm.minSmPartitionSize.max(sm.smCoscheduledAlignment).max(1);
        let want = group_sms.unwrap_or(smallest).max(1);
        if want > sm.smCount {
            return Err(Error::Partition(format!(
                "groups of {want} SMs asked for, but the device has {} SMs",
                sm.smCount
            )));
        }
        let mut n: u32 = 0;
        cu!(cuDevSmResourceSplitByCount(std::ptr::null_mut(), &mut n, &input, std::ptr::null_mut(), 0, want))?;
        let mut groups = vec![unsafe { std::mem::zeroed::<sys::CUdevResource>() }; n as usize];
        let mut remainder: sys::CUdevResource = unsafe { std::mem::zeroed() };
        cu!(cuDevSmResourceSplitByCount(groups.as_mut_ptr(), &mut n, &input, &mut remainder, 0, want))?;
        groups.truncate(n as usize);
        let group_sms = groups.first().map(|g| sm_of(g).smCount).unwrap_or(0);
        Ok(SmSplit {
            device: device.clone(),
            groups,
            group_sms,
            remainder_sms: sm_of(&remainder).smCount,
            total_sms: sm.smCount,
            min_partition_sms: sm.minSmPartitionSize,
            alignment_sms: sm.smCoscheduledAlignment,
        })
    }

    pub fn group_sms(&self) -> u32 {
        self.group_sms
    }

    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// SMs that the groups cover (the rest is the remainder no partition gets).
    pub fn assignable_sms(&self) -> u32 {
        self.group_sms * self.groups.len() as u32
    }

    pub fn support(&self) -> GreenSupport {
        GreenSupport {
            usable: true,
            total_sms: self.total_sms,
            min_partition_sms: self.min_partition_sms,
            alignment_sms: self.alignment_sms,
            group_sms: self.group_sms,
            groups: self.groups.len() as u32,
            remainder_sms: self.remainder_sms,
            error: None,
        }
    }

    /// Creates one green context per request, from disjoint groups. Each request is rounded
    /// up to whole groups; the granted count is read back from the created context.
    pub fn partition(&self, requests: &[(&str, u32)]) -> Result<Vec<GreenPartition>> {
        let mut needed = Vec::new();
        for (label, sms) in requests {
            if *sms == 0 {
                return Err(Error::Partition(format!("partition `{label}` asks for no SMs")));
            }
            if *sms > self.total_sms {
                return Err(Error::Partition(format!(
                    "partition `{label}` asks for {sms} SMs; the device has {}",
                    self.total_sms
                )));
            }
            needed.push(sms.div_ceil(self.group_sms.max(1)) as usize);
        }
        let total: usize = needed.iter().sum();
        if total > self.groups.len() {
            let asked: Vec<String> = requests.iter().map(|(l, s)| format!("{l}={s}")).collect();
            return Err(Error::Partition(format!(
                "SMs asked for ({}) need {total} groups of {} but the device splits into {} groups ({} SMs; {} SMs left over)",
                asked.join(", "),
                self.group_sms,
                self.groups.len(),
                self.assignable_sms(),
                self.remainder_sms
            )));
        }
        let mut next = 0;
        let mut out = Vec::new();
        for ((label, sms), k) in requests.iter().zip(needed) {
            let mut slice: Vec<sys::CUdevResource> = self.groups[next..next + k].to_vec();
            next += k;
            out.push(self.create(label, *sms, &mut slice)?);
        }
        Ok(out)
    }

    fn create(&self, label: &str, requested: u32, groups: &mut [sys::CUdevResource]) -> Result<GreenPartition> {
        self.device.bind()?;
        let mut desc = std::ptr::null_mut();
        cu!(cuDevResourceGenerateDesc(&mut desc, groups.as_mut_ptr(), groups.len() as u32))?;
        let mut green = std::ptr::null_mut();
        let flags = sys::CUgreenCtxCreate_flags::CU_GREEN_CTX_DEFAULT_STREAM as u32;
        cu!(cuGreenCtxCreate(&mut green, desc, self.device.raw(), flags))?;
        let mut granted: sys::CUdevResource = unsafe { std::mem::zeroed() };
        let read = cu!(cuGreenCtxGetDevResource(green, &mut granted, sys::CUdevResourceType::CU_DEV_RESOURCE_TYPE_SM));
        let granted_sms = sm_of(&granted).smCount;
        let context = ExecContext::from_green(&self.device, green, granted_sms, label.to_string())?;
        read?;
        Ok(GreenPartition { label: label.to_string(), requested_sms: requested, granted_sms, context })
    }
}

/// Whether green contexts work here, with the chip's partition granularity.
pub fn support(device: &Arc<Device>) -> GreenSupport {
    match SmSplit::new(device, None).and_then(|split| {
        // A trial partition proves creation works, not only the split.
        split.partition(&[("probe", split.group_sms())])?;
        Ok(split.support())
    }) {
        Ok(s) => s,
        Err(e) => GreenSupport {
            usable: false,
            total_sms: device.info().sm_count,
            min_partition_sms: 0,
            alignment_sms: 0,
            group_sms: 0,
            groups: 0,
            remainder_sms: 0,
            error: Some(e.to_string()),
        },
    }
}
