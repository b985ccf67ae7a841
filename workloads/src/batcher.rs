//! Batching and admission as a state machine driven by a clock value: requests are admitted
//! into a queue as they arrive, and whenever the tenant may start a batch the policy says
//! whether one goes now and which requests it takes. Nothing here touches a GPU or reads a
//! clock, so the harness's serving loop (on the host clock) and a simulator (on virtual time)
//! run the same policy.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::scenario::Batching;

/// A tenant's batching with every time resolved to nanoseconds (at plan time, when the solo
/// latency that defaults depend on is known).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchPolicy {
    /// Batch sizes with a graph of their own, ascending; a batch of n runs in the smallest
    /// that holds it.
    pub buckets: Vec<usize>,
    /// A batch goes as soon as this many requests wait.
    pub max_batch: usize,
    /// ...or as soon as the oldest has waited this long.
    pub max_wait_ns: i64,
}

impl BatchPolicy {
    /// The policy of `batching` for a model whose full batch takes `solo_latency_ms` alone on
    /// the whole GPU.
    pub fn new(batching: &Batching, solo_latency_ms: f64) -> BatchPolicy {
        BatchPolicy {
            buckets: batching.buckets(),
            max_batch: batching.max_batch(),
            max_wait_ns: (batching.max_wait_ms(solo_latency_ms) * 1e6).round() as i64,
        }
    }

    /// The graph size that runs a batch of `n` requests.
    pub fn bucket_for(&self, n: usize) -> usize {
        self.buckets.iter().copied().find(|b| *b >= n).unwrap_or(self.max_batch)
    }
}

/// One admitted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub request: u32,
    pub arrival_ns: i64,
    /// The closed-loop client that sent it (0 for open arrivals).
    pub client: u32,
}

/// Why a batch went when it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `max_batch` requests were waiting.
    Full,
    /// The oldest request had waited `max_wait_ns`.
    Waited,
    /// No more requests will arrive: what waits goes.
    Drain,
    /// A runtime scheduler chose the moment and the size (a simulated scheduler; the harness's
    /// own loop never does).
    Scheduled,
}

/// A batch to start now.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    pub requests: Vec<Queued>,
    /// The graph size it runs at.
    pub bucket: usize,
    pub trigger: Trigger,
}

/// The queue of one tenant and its batching policy.
#[derive(Clone, Debug)]
pub struct Batcher {
    policy: BatchPolicy,
    queue: VecDeque<Queued>,
}

impl Batcher {
    pub fn new(policy: BatchPolicy) -> Batcher {
        Batcher { policy, queue: VecDeque::new() }
    }

    /// Admits a request (arrivals come in time order).
    pub fn admit(&mut self, q: Queued) {
        debug_assert!(self.queue.back().is_none_or(|b| b.arrival_ns <= q.arrival_ns), "arrivals out of order");
        self.queue.push_back(q);
    }

    pub fn policy(&self) -> &BatchPolicy {
        &self.policy
    }

    /// The most requests a batch may hold.
    pub fn max_batch(&self) -> usize {
        self.policy.max_batch
    }

    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// When the oldest waiting request's wait runs out (a simulator's next event), if any waits.
    pub fn deadline_ns(&self) -> Option<i64> {
        self.queue.front().map(|q| q.arrival_ns + self.policy.max_wait_ns)
    }

    /// Called at `now_ns` when the tenant may start a batch (none of its own in flight):
    /// the batch to start, if one is due. `draining`: no request will arrive any more.
    pub fn poll(&mut self, now_ns: i64, draining: bool) -> Option<Dispatch> {
        let trigger = self.due(now_ns, draining)?;
        Some(self.take(self.policy.max_batch, trigger))
    }

    /// Why a batch is due at `now_ns`, if one is ([`Self::poll`] without starting it).
    pub fn due(&self, now_ns: i64, draining: bool) -> Option<Trigger> {
        let oldest = self.queue.front()?;
        if self.queue.len() >= self.policy.max_batch {
            Some(Trigger::Full)
        } else if now_ns - oldest.arrival_ns >= self.policy.max_wait_ns {
            Some(Trigger::Waited)
        } else if draining {
            Some(Trigger::Drain)
        } else {
            None
        }
    }

    /// Starts a batch of the oldest waiting requests, at most `n` and `max_batch`, in the
    /// bucket that holds them (a scheduler may run it in a larger one). Empty if none waits.
    pub fn take(&mut self, n: usize, trigger: Trigger) -> Dispatch {
        let n = self.queue.len().min(self.policy.max_batch).min(n);
        let requests: Vec<Queued> = self.queue.drain(..n).collect();
        Dispatch { bucket: self.policy.bucket_for(n), requests, trigger }
    }

    /// When the oldest waiting request arrived, if any waits.
    pub fn oldest_ns(&self) -> Option<i64> {
        self.queue.front().map(|q| q.arrival_ns)
    }

    /// How many waiting requests arrived before `arrival_ns`.
    pub fn count_before(&self, arrival_ns: i64) -> usize {
        self.queue.iter().take_while(|q| q.arrival_ns < arrival_ns).count()
    }

    /// Removes the waiting requests that arrived before `arrival_ns` (a scheduler that drops
    /// what can no longer meet its deadline), oldest first.
    pub fn drop_before(&mut self, arrival_ns: i64) -> Vec<Queued> {
        let n = self.count_before(arrival_ns);
        self.queue.drain(..n).collect()
    }

    /// Every request still waiting (at the end of a run: never served).
    pub fn into_waiting(self) -> Vec<Queued> {
        self.queue.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(request: u32, arrival_ns: i64) -> Queued {
        Queued { request, arrival_ns, client: 0 }
    }

    fn fixed(batch: usize, wait_ms: f64) -> Batcher {
        Batcher::new(BatchPolicy::new(&Batching::Fixed { batch, max_wait_ms: Some(wait_ms) }, 1.0))
    }

    #[test]
    fn a_fixed_batch_goes_when_full_and_runs_at_its_size() {
        let mut b = fixed(4, 10.0);
        for i in 0..5 {
            b.admit(q(i, i as i64 * 1_000));
        }
        let d = b.poll(5_000, false).unwrap();
        assert_eq!(d.trigger, Trigger::Full);
        assert_eq!(d.requests.iter().map(|r| r.request).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!((d.bucket, b.waiting()), (4, 1));
    }

    #[test]
    fn a_partial_fixed_batch_goes_after_the_maximum_wait_padded_to_its_size() {
        let mut b = fixed(8, 2.0);
        b.admit(q(0, 1_000_000));
        b.admit(q(1, 1_500_000));
        assert_eq!(b.poll(2_999_999, false), None);
        assert_eq!(b.deadline_ns(), Some(3_000_000));
        let d = b.poll(3_000_000, false).unwrap();
        assert_eq!((d.trigger, d.requests.len(), d.bucket), (Trigger::Waited, 2, 8));
        assert_eq!(b.poll(10_000_000, false), None);
    }

    #[test]
    fn the_default_wait_is_twice_the_solo_latency() {
        let p = BatchPolicy::new(&Batching::fixed(8), 1.5);
        assert_eq!(p.max_wait_ns, 3_000_000);
    }

    #[test]
    fn dynamic_batches_run_in_the_smallest_bucket_that_holds_them() {
        let mut b = Batcher::new(BatchPolicy::new(&Batching::Dynamic { max_batch: 16, timeout_ms: 1.0 }, 5.0));
        for i in 0..5 {
            b.admit(q(i, 0));
        }
        let d = b.poll(1_000_000, false).unwrap();
        assert_eq!((d.requests.len(), d.bucket, d.trigger), (5, 8, Trigger::Waited));
        for i in 0..20 {
            b.admit(q(i, 2_000_000));
        }
        let d = b.poll(2_000_000, false).unwrap();
        assert_eq!((d.requests.len(), d.bucket, d.trigger), (16, 16, Trigger::Full));
    }

    #[test]
    fn a_scheduler_takes_fewer_than_due_and_drops_the_oldest() {
        let mut b = fixed(8, 100.0);
        for i in 0..6 {
            b.admit(q(i, i as i64 * 10));
        }
        assert_eq!(b.due(20, false), None);
        assert_eq!(b.due(20, true), Some(Trigger::Drain));
        assert_eq!((b.count_before(15), b.count_before(0), b.count_before(1_000)), (2, 0, 6));
        assert_eq!(b.drop_before(15).iter().map(|r| r.request).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(b.oldest_ns(), Some(20));
        let d = b.take(3, Trigger::Scheduled);
        assert_eq!(d.requests.iter().map(|r| r.request).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!((d.bucket, d.trigger, b.waiting()), (8, Trigger::Scheduled, 1));
        assert_eq!(b.take(100, Trigger::Scheduled).requests.len(), 1);
        assert_eq!((b.oldest_ns(), b.drop_before(i64::MAX).len()), (None, 0));
    }

    #[test]
    fn draining_sends_what_waits_and_an_empty_queue_sends_nothing() {
        let mut b = fixed(8, 100.0);
        assert_eq!(b.poll(0, true), None);
        b.admit(q(0, 0));
        assert_eq!(b.poll(1, false), None);
        let d = b.poll(1, true).unwrap();
        assert_eq!((d.trigger, d.requests.len()), (Trigger::Drain, 1));
        b.admit(q(1, 5));
        assert_eq!(b.into_waiting(), vec![q(1, 5)]);
    }
}
