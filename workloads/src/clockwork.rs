//! Clockwork's decision (Gujarati et al., "Serving DNNs like Clockwork", OSDI 2020), as the
//! harness and the simulator both take it: whenever the one stream is about to be free, which
//! tenant's batch goes next, how large, and which requests can no longer be served in time.
//! Times come from solo profiles, as Clockwork's from its own profiling: a model alone on the
//! GPU takes what it took when profiled. Nothing here reads a clock or touches a GPU.

use crate::batcher::{Batcher, Dispatch, Queued, Trigger};

/// What the decision knows of one tenant.
pub struct Lane<'a> {
    pub batcher: &'a mut Batcher,
    /// (batch size, solo GPU time in us) of every profiled size, ascending.
    pub profile: &'a [(usize, f64)],
    pub slo_ns: i64,
    /// No batch of the tenant in flight: it may start one.
    pub idle: bool,
    /// Where dropped requests go.
    pub dropped: &'a mut Vec<Queued>,
}

/// A time in us as whole ns, rounded.
pub fn ns(us: f64) -> i64 {
    (us * 1e3).round() as i64
}

/// The batch to start at `start_ns` (the GPU's time its first kernel starts), with the host
/// noticing its end `notice_ns` after it: the lane whose oldest request's deadline is earliest,
/// at the profiled size that serves the most of its requests in time (the smaller on a tie).
/// Requests no batch starting then could serve in time are dropped first, from every idle lane;
/// then those the chosen size cannot serve in time, from the chosen lane (no later batch could
/// serve them in time either). `None` if no idle lane has a request it can serve in time.
pub fn decide(lanes: &mut [Lane], start_ns: i64, notice_ns: i64) -> Option<(usize, Dispatch)> {
    for lane in lanes.iter_mut().filter(|l| l.idle) {
        let Some(&(_, alone_us)) = lane.profile.first() else { continue };
        let dropped = lane.batcher.drop_before(start_ns + ns(alone_us) + notice_ns - lane.slo_ns);
        lane.dropped.extend(dropped);
    }
    let (_, chosen) = lanes
        .iter()
        .enumerate()
        .filter(|(_, l)| l.idle)
        .filter_map(|(i, l)| l.batcher.oldest_ns().map(|a| (a + l.slo_ns, i)))
        .min()?;
    let lane = &mut lanes[chosen];
    let waiting = lane.batcher.waiting();
    let mut best: Option<(usize, usize, i64)> = None;
    for &(size, us) in lane.profile.iter().filter(|(b, _)| *b <= lane.batcher.max_batch()) {
        let cutoff = start_ns + ns(us) + notice_ns - lane.slo_ns;
        let served = size.min(waiting - lane.batcher.count_before(cutoff));
        if best.is_none_or(|(most, _, _)| served > most) {
            best = Some((served, size, cutoff));
        }
    }
    let (served, size, cutoff) = best.filter(|b| b.0 > 0)?;
    let dropped = lane.batcher.drop_before(cutoff);
    lane.dropped.extend(dropped);
    let mut dispatch = lane.batcher.take(served, Trigger::Scheduled);
    dispatch.bucket = size;
    Some((chosen, dispatch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batcher::BatchPolicy;
    use crate::scenario::Batching;

    fn batcher(arrivals: &[i64]) -> Batcher {
        let mut b = Batcher::new(BatchPolicy::new(&Batching::Dynamic { max_batch: 8, timeout_ms: 1.0 }, 1.0));
        for (i, a) in arrivals.iter().enumerate() {
            b.admit(Queued { request: i as u32, arrival_ns: *a, client: 0 });
        }
        b
    }

    const MS: i64 = 1_000_000;

    #[test]
    fn the_earliest_deadline_goes_at_the_size_that_serves_most_in_time() {
        // a batch of 1 takes 1 ms, of 4 2 ms, of 8 3 ms; SLO 5 ms; start at 10 ms
        let profile = [(1, 1000.0), (4, 2000.0), (8, 3000.0)];
        // lane 0: requests at 6.5, 7.5, 8, 9 ms: a batch of 1 ends at 11 ms, in time for one; of 4
        // at 12 ms, in time for the last three (6.5 ms is due at 11.5); of 8 at 13 ms, the last two
        let (mut a, mut b) = (batcher(&[6_500_000, 7_500_000, 8 * MS, 9 * MS]), batcher(&[9 * MS]));
        let (mut da, mut db) = (Vec::new(), Vec::new());
        let mut lanes = [
            Lane { batcher: &mut a, profile: &profile, slo_ns: 5 * MS, idle: true, dropped: &mut da },
            Lane { batcher: &mut b, profile: &profile, slo_ns: 5 * MS, idle: true, dropped: &mut db },
        ];
        let (lane, d) = decide(&mut lanes, 10 * MS, 0).unwrap();
        assert_eq!((lane, d.bucket, d.trigger), (0, 4, Trigger::Scheduled));
        assert_eq!(d.requests.iter().map(|q| q.request).collect::<Vec<_>>(), vec![1, 2, 3]);
        // the one a batch of 4 cannot serve in time is dropped; lane 1 (due at 14 ms) waits
        assert_eq!(da.iter().map(|q| q.request).collect::<Vec<_>>(), vec![0]);
        assert!(db.is_empty());
    }

    #[test]
    fn what_cannot_be_served_in_time_is_dropped_and_a_busy_lane_waits() {
        let profile = [(1, 1000.0), (8, 3000.0)];
        // at 10 ms a batch of one ends at 11 ms: the request of 5.5 ms (deadline 10.5) cannot make it
        let (mut a, mut b) = (batcher(&[5_500_000, 7 * MS, 7 * MS, 7 * MS]), batcher(&[MS]));
        let (mut da, mut db) = (Vec::new(), Vec::new());
        let mut lanes = [
            Lane { batcher: &mut a, profile: &profile, slo_ns: 5 * MS, idle: true, dropped: &mut da },
            Lane { batcher: &mut b, profile: &profile, slo_ns: 5 * MS, idle: false, dropped: &mut db },
        ];
        let (lane, d) = decide(&mut lanes, 10 * MS, 0).unwrap();
        // three at 7 ms (deadline 12): a batch of 8 ends at 13 ms, too late; of one, at 11 ms
        assert_eq!((lane, d.bucket, d.requests.len()), (0, 1, 1));
        assert_eq!(da.iter().map(|q| q.request).collect::<Vec<_>>(), vec![0]);
        // the busy lane keeps its (late) request: it is not the decision's to drop
        assert!(db.is_empty());
        assert_eq!(b.waiting(), 1);
    }
}
