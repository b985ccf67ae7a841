//! Abacus's admission rule for a due batch (least headroom first), one decision for the
//! harness's gate and the simulator alike.

/// Whether a due batch launches now rather than waiting for a batch in flight to end: nothing
/// else runs; or the predictor expects it (`predicted_ns` from `start_ns`) to be noticed done by
/// its oldest request's deadline; or it would miss that deadline even alone (at its solo time),
/// where holding it back would only make it later.
pub fn admits(
    others_running: bool,
    start_ns: i64,
    predicted_ns: i64,
    solo_ns: i64,
    notice_ns: i64,
    deadline_ns: i64,
) -> bool {
    !others_running
        || start_ns + predicted_ns + notice_ns <= deadline_ns
        || start_ns + solo_ns + notice_ns > deadline_ns
}

#[cfg(test)]
mod tests {
    use super::admits;

    #[test]
    fn a_batch_waits_only_while_waiting_can_still_save_it() {
        // 1 ms alone, 2.5 ms beside the batch in flight, noticed 5 us after; deadline at 3 ms
        let go = |others, start, deadline| admits(others, start, 2_500_000, 1_000_000, 5_000, deadline);
        // nothing else runs: it goes
        assert!(go(false, 1_000_000, 3_000_000));
        // beside another it would end at 3.505 ms: it waits
        assert!(!go(true, 1_000_000, 3_000_000));
        // it would make it beside another: it goes
        assert!(go(true, 400_000, 3_000_000));
        // even alone it would end at 2.505 ms, past a 2.5 ms deadline: waiting cannot save it
        assert!(go(true, 1_500_000, 2_500_000));
    }
}
