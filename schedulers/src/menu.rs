//! What a planner may choose from: the (batch, share) pairs at which every model of a workload
//! has a measured solo profile, with that profile's GPU time. A planner never places a tenant
//! where nothing was measured, so every plan can be simulated from measured solo times and
//! measured for real with solo profiles at exactly its shares.

use std::collections::BTreeMap;

use coloc_harness::solo::SoloProfiles;
use coloc_predictors::query::SoloTimes;
use coloc_workloads::scenario::{DeviceLimits, Share, SoloShare};

use crate::error::{Error, Result};
use crate::workload::{Mechanism, Workload};

/// The shares and solo times of a workload's models.
#[derive(Clone, Debug)]
pub struct Menu {
    times: SoloTimes,
    /// Per model: the shares of the workload's mechanism profiled at every batch size, smallest
    /// first.
    shares: BTreeMap<String, Vec<SoloShare>>,
    limits: DeviceLimits,
    mechanism: Mechanism,
}

impl Menu {
    /// Checks that `profiles` hold every model of `workload` on the whole GPU at every batch
    /// size, and collects the shares of its mechanism profiled at every batch size.
    pub fn new(profiles: &SoloProfiles, workload: &Workload, limits: &DeviceLimits) -> Result<Menu> {
        let times = SoloTimes::from_rows(&profiles.models);
        let mut shares = BTreeMap::new();
        for m in &workload.models {
            for &b in &workload.batches {
                times.get(&m.model, b as u32, SoloShare::Device).map_err(|_| {
                    Error::invalid(
                        format!("solo profiles for workload {}", workload.name),
                        format!(
                            "none for {} at batch {b} on the whole GPU: measure them (suites/serve-profiles.toml)",
                            m.model
                        ),
                    )
                })?;
            }
            let mut at: Vec<SoloShare> = profiles
                .models
                .iter()
                .filter(|r| r.model == m.model && is_mechanism(r.share, workload.mechanism))
                .map(|r| r.share)
                .filter(|s| workload.batches.iter().all(|&b| times.get(&m.model, b as u32, *s).is_ok()))
                .collect();
            at.sort_by_key(|s| fraction_key(*s));
            at.dedup();
            shares.insert(m.model.clone(), at);
        }
        Ok(Menu { times, shares, limits: limits.clone(), mechanism: workload.mechanism })
    }

    /// The solo GPU time of `model` at batch `batch` on `share`, us.
    pub fn solo_us(&self, model: &str, batch: usize, share: SoloShare) -> Result<f64> {
        Ok(self.times.get(model, batch as u32, share)?)
    }

    /// The shares `model` may get, smallest first.
    pub fn shares(&self, model: &str) -> &[SoloShare] {
        self.shares.get(model).map_or(&[], Vec::as_slice)
    }

    /// The fraction of a GPU that `share` takes: shares on one GPU must add up to at most 1.
    pub fn fraction(&self, share: SoloShare) -> f64 {
        match share {
            SoloShare::Mps { percent } => f64::from(percent) / 100.0,
            SoloShare::Green { sms } => f64::from(sms) / f64::from(self.limits.green_sms()),
            SoloShare::Device | SoloShare::Process => 1.0,
        }
    }

    /// The share as a scenario's tenant states it.
    pub fn tenant_share(&self, share: SoloShare) -> Share {
        match share {
            SoloShare::Mps { percent } => Share { mps_percent: Some(percent), ..Share::default() },
            SoloShare::Green { sms } => Share { sms: Some(sms), ..Share::default() },
            SoloShare::Device | SoloShare::Process => Share::default(),
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    pub fn limits(&self) -> &DeviceLimits {
        &self.limits
    }
}

fn is_mechanism(share: SoloShare, mechanism: Mechanism) -> bool {
    matches!((share, mechanism), (SoloShare::Mps { .. }, Mechanism::Mps) | (SoloShare::Green { .. }, Mechanism::Green))
}

/// Orders shares by size.
fn fraction_key(share: SoloShare) -> u32 {
    match share {
        SoloShare::Mps { percent } => percent,
        SoloShare::Green { sms } => sms,
        SoloShare::Device | SoloShare::Process => u32::MAX,
    }
}
