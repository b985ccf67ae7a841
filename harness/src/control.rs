//! How a run is told to stop. The interrupt: Ctrl-C asks a measurement to stop, and the run in
//! flight is then dropped (not recorded), so that `--resume` measures it again. The quorum:
//! closed-loop tenants keep sending past the scenario's duration until every closed loop of the
//! run has completed its minimum of queries.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static LISTENING: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// While this lives, an interrupt stops the measurement at the next safe point instead of
/// ending the process.
pub struct Listening(());

impl Drop for Listening {
    fn drop(&mut self) {
        LISTENING.store(false, Ordering::SeqCst);
    }
}

pub fn listen() -> Listening {
    LISTENING.store(true, Ordering::SeqCst);
    Listening(())
}

/// What a signal handler should do after [`interrupt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInterrupt {
    /// A measurement is listening and will stop on its own.
    Wait,
    /// Nothing listens (or this is the second interrupt): end the process.
    Exit,
}

/// Records an interrupt (from a signal handler: only atomics).
pub fn interrupt() -> OnInterrupt {
    let again = INTERRUPTED.swap(true, Ordering::SeqCst);
    if LISTENING.load(Ordering::SeqCst) && !again { OnInterrupt::Wait } else { OnInterrupt::Exit }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// The closed loops of a run agreeing that each has its minimum of queries.
pub trait Quorum: Sync {
    /// Tenant `tenant` has completed its minimum of measured queries.
    fn reached(&self, tenant: u16);
    /// Every closed loop of the run has.
    fn reached_by_all(&self) -> bool;
}

/// The quorum of tenants in one process.
pub struct LocalQuorum {
    waiting: Mutex<BTreeSet<u16>>,
}

impl LocalQuorum {
    /// A quorum of the closed-loop tenants `members`.
    pub fn of(members: impl IntoIterator<Item = u16>) -> LocalQuorum {
        LocalQuorum { waiting: Mutex::new(members.into_iter().collect()) }
    }
}

impl Quorum for LocalQuorum {
    fn reached(&self, tenant: u16) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&tenant);
    }
    fn reached_by_all(&self) -> bool {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_is_reached_when_every_member_has_reported() {
        let q = LocalQuorum::of([0, 2]);
        assert!(!q.reached_by_all());
        q.reached(2);
        q.reached(5);
        assert!(!q.reached_by_all());
        q.reached(0);
        assert!(q.reached_by_all());
        assert!(LocalQuorum::of([]).reached_by_all());
    }
}
