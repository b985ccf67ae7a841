//! Dynamic space-time sharing in the harness ([`RuntimeScheduler::SpaceTime`]): the tenants of a
//! streams run keep their own batchers and ask one shared [`SpaceTime`] before a due batch
//! launches; each batch's GPU time, from its stamps, is what the scheduler learns stragglers
//! from. The simulator runs the same state machine.
//!
//! [`RuntimeScheduler::SpaceTime`]: coloc_workloads::scenario::RuntimeScheduler::SpaceTime

use std::sync::{Mutex, MutexGuard};

use coloc_workloads::space_time::{PARAMS, SpaceTime};

use crate::tenant::TenantPlan;

/// The space-time scheduler of `tenants` (tenant `i` as lane `i`), from what their plans know of
/// their models: the harness's gate and the simulator start from the same state.
pub fn scheduler_of(tenants: &[TenantPlan]) -> SpaceTime {
    SpaceTime::new(tenants.iter().map(|t| (t.profile.clone(), t.slo_ms)), PARAMS)
}

/// The space-time scheduler the tenants of one streams run share (tenant `i` asks as lane `i`).
pub struct SpaceTimeGate {
    state: Mutex<SpaceTime>,
}

impl SpaceTimeGate {
    pub fn new(tenants: &[TenantPlan]) -> SpaceTimeGate {
        SpaceTimeGate { state: Mutex::new(scheduler_of(tenants)) }
    }

    fn state(&self) -> MutexGuard<'_, SpaceTime> {
        self.state.lock().expect("space-time gate")
    }

    /// Whether `lane`'s due batch at `bucket` may launch now (if so, it is in flight).
    pub fn admits(&self, lane: usize, bucket: usize) -> bool {
        self.state().admits(lane, bucket)
    }

    /// `lane`'s batch in flight ended after `gpu_ns` on the GPU.
    pub fn done(&self, lane: usize, gpu_ns: i64) {
        self.state().done(lane, gpu_ns);
    }

    /// `lane`'s loop has ended.
    pub fn leave(&self, lane: usize) {
        self.state().leave(lane);
    }

    /// The run's note: who was evicted to run alone, and how often (`tenants` as given to
    /// [`SpaceTimeGate::new`]).
    pub fn note(&self, tenants: &[TenantPlan]) -> String {
        let s = self.state();
        let evicted: Vec<String> = tenants
            .iter()
            .enumerate()
            .filter(|(lane, _)| s.evictions(*lane) > 0)
            .map(|(lane, t)| format!("{} {}", t.name, s.evictions(lane)))
            .collect();
        let evicted = if evicted.is_empty() { "none".to_string() } else { evicted.join(", ") };
        format!("space-time: tenants evicted to run alone (times): {evicted}")
    }
}
