//! A library handle's plans (descriptors and the algorithm chosen for them), one per shape,
//! made on first use and kept for the handle's life.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use crate::error::Result;

pub(crate) struct Plans<K, P>(Mutex<HashMap<K, P>>);

impl<K: Hash + Eq + Copy, P> Plans<K, P> {
    pub(crate) fn new() -> Self {
        Plans(Mutex::new(HashMap::new()))
    }

    /// Runs `f` on the plan for `key`, made by `make` the first time; the lock is held
    /// throughout, so a plan is used by one call at a time.
    pub(crate) fn with<R>(
        &self,
        key: &K,
        make: impl FnOnce() -> Result<P>,
        f: impl FnOnce(&P) -> Result<R>,
    ) -> Result<R> {
        let mut plans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !plans.contains_key(key) {
            let plan = make()?;
            plans.insert(*key, plan);
        }
        f(&plans[key])
    }

    /// Drops every plan (before the handle they were made with).
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
