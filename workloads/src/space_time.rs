//! Dynamic space-time sharing (after Jain et al., "Dynamic Space-Time Scheduling for GPU
//! Inference", 2018), one state machine for the harness's gate and the simulator alike: the
//! tenants of a streams run share the whole GPU (space) until one becomes a straggler, which is
//! then evicted to run alone (time), and rejoins once the load that made it straggle is gone.
//! It asks no predictor: it learns from the batches it sees.
//!
//! Per tenant it keeps two online estimates, each smoothed over about ten batches:
//! - its **slowdown per co-runner**, from each batch that ran beside others: (GPU time / solo
//!   time - 1) / the other batches that overlapped it (those in flight as it started and those
//!   started while it ran);
//! - its **load**: how many other tenants' batches were in flight as its batches formed.
//!
//! Its expected batch time in space is then solo × (1 + slowdown per co-runner × load). A tenant
//! whose expected time passes half its SLO is a straggler (a request may wait for the batch in
//! flight before riding its own, so two batches must fit in the SLO): it is evicted to time, where
//! its batch waits for the GPU to drain, holds it alone, and no other batch starts while it
//! waits or runs. It rejoins space when the expected time falls below 0.4 of its SLO (the
//! hysteresis keeps it from flapping). A tenant that would pass half its SLO even alone is never
//! evicted: running alone cannot save it and would only hold the others back.

/// The constants of the policy (`docs/schedulers.md` says why each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Weight of each new sample in the smoothed estimates.
    pub smoothing: f64,
    /// Evicted when the expected batch time in space passes this fraction of the SLO.
    pub straggle: f64,
    /// Back to space when it falls below this fraction.
    pub rejoin: f64,
}

pub const PARAMS: Params = Params { smoothing: 0.1, straggle: 0.5, rejoin: 0.4 };

/// How a tenant shares the GPU now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Beside the others, as they come.
    Space,
    /// Alone: its batch waits for the GPU to drain and holds it.
    Time,
}

#[derive(Clone, Copy, Debug)]
struct Running {
    bucket: usize,
    alone: bool,
    /// Other batches that overlapped it so far.
    co_runners: u32,
}

#[derive(Clone, Debug)]
struct Lane {
    /// (bucket, solo GPU time in ns), as profiled.
    profile: Vec<(usize, i64)>,
    slo_ns: i64,
    mode: Mode,
    per_co_runner: Option<f64>,
    load: Option<f64>,
    running: Option<Running>,
    /// Its due batch has asked and was held: its load was counted at the first ask.
    held: bool,
    /// The bucket of its latest batch, which the expected time is judged at.
    bucket: usize,
    evictions: u32,
}

impl Lane {
    fn solo_ns(&self, bucket: usize) -> i64 {
        self.profile.iter().find(|(b, _)| *b == bucket).map_or(0, |p| p.1)
    }

    /// Its batch's expected GPU time in space at its current load, ns.
    fn expected_ns(&self) -> f64 {
        self.solo_ns(self.bucket) as f64 * (1.0 + self.per_co_runner.unwrap_or(0.0) * self.load.unwrap_or(0.0))
    }
}

fn smooth(old: Option<f64>, sample: f64, weight: f64) -> f64 {
    old.map_or(sample, |o| o + weight * (sample - o))
}

/// The scheduler of one GPU's tenants.
#[derive(Clone, Debug)]
pub struct SpaceTime {
    lanes: Vec<Lane>,
    params: Params,
}

impl SpaceTime {
    /// Lanes given as (profile: (bucket, solo GPU time in us) ascending, SLO in ms), every one
    /// starting in space.
    pub fn new(lanes: impl IntoIterator<Item = (Vec<(usize, f64)>, f64)>, params: Params) -> SpaceTime {
        let lanes = lanes
            .into_iter()
            .map(|(profile, slo_ms)| Lane {
                bucket: profile.first().map_or(1, |p| p.0),
                profile: profile.into_iter().map(|(b, us)| (b, crate::clockwork::ns(us))).collect(),
                slo_ns: (slo_ms * 1e6).round() as i64,
                mode: Mode::Space,
                per_co_runner: None,
                load: None,
                running: None,
                held: false,
                evictions: 0,
            })
            .collect();
        SpaceTime { lanes, params }
    }

    pub fn mode(&self, lane: usize) -> Mode {
        self.lanes[lane].mode
    }

    /// Times the lane was evicted to time.
    pub fn evictions(&self, lane: usize) -> u32 {
        self.lanes[lane].evictions
    }

    /// Whether `lane`'s due batch at `bucket` may launch now; if it may, it counts as in flight.
    /// A batch held asks again until it goes.
    pub fn admits(&mut self, lane: usize, bucket: usize) -> bool {
        let others = self.lanes.iter().enumerate().filter(|(i, l)| *i != lane && l.running.is_some()).count();
        if !self.lanes[lane].held {
            let me = &mut self.lanes[lane];
            me.load = Some(smooth(me.load, others as f64, self.params.smoothing));
            me.bucket = bucket;
            self.judge(lane);
        }
        // a lane alone on the GPU, or waiting to be, keeps every other batch back
        let alone_elsewhere = self
            .lanes
            .iter()
            .enumerate()
            .any(|(i, l)| i != lane && (l.running.is_some_and(|r| r.alone) || (l.held && l.mode == Mode::Time)));
        let go = match self.lanes[lane].mode {
            Mode::Space => !alone_elsewhere,
            Mode::Time => others == 0,
        };
        let me = &mut self.lanes[lane];
        me.held = !go;
        if go {
            let alone = me.mode == Mode::Time;
            me.running = Some(Running { bucket, alone, co_runners: others as u32 });
            for (_, l) in self.lanes.iter_mut().enumerate().filter(|(i, _)| *i != lane) {
                if let Some(r) = l.running.as_mut() {
                    r.co_runners += 1;
                }
            }
        }
        go
    }

    /// `lane`'s batch in flight ended after `gpu_ns` on the GPU, as measured.
    pub fn done(&mut self, lane: usize, gpu_ns: i64) {
        let weight = self.params.smoothing;
        let me = &mut self.lanes[lane];
        let Some(r) = me.running.take() else { return };
        let solo = me.solo_ns(r.bucket);
        if !r.alone && r.co_runners > 0 && solo > 0 {
            let sample = (gpu_ns as f64 / solo as f64 - 1.0).max(0.0) / f64::from(r.co_runners);
            me.per_co_runner = Some(smooth(me.per_co_runner, sample, weight));
        }
        self.judge(lane);
    }

    /// `lane` serves no more (its loop ended): it holds nothing back.
    pub fn leave(&mut self, lane: usize) {
        let me = &mut self.lanes[lane];
        me.running = None;
        me.held = false;
    }

    /// Evicts a straggler, or lets an evicted lane rejoin.
    fn judge(&mut self, lane: usize) {
        let p = self.params;
        let me = &mut self.lanes[lane];
        let slo = me.slo_ns as f64;
        if me.solo_ns(me.bucket) as f64 > p.straggle * slo {
            me.mode = Mode::Space;
            return;
        }
        let expected = me.expected_ns();
        match me.mode {
            Mode::Space if expected > p.straggle * slo => {
                me.mode = Mode::Time;
                me.evictions += 1;
            }
            Mode::Time if expected < p.rejoin * slo => me.mode = Mode::Space,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two lanes: 1 ms alone at batch 1, SLO 3 ms (a straggler past 1.5 ms in space).
    fn two() -> SpaceTime {
        SpaceTime::new([(vec![(1, 1000.0)], 3.0), (vec![(1, 1000.0)], 3.0)], PARAMS)
    }

    /// [`two`] after one round of batches side by side, each 4 ms (3x slower per co-runner):
    /// lane 1, which formed beside lane 0's batch, is evicted.
    fn after_a_slow_round() -> SpaceTime {
        let mut s = two();
        assert!(s.admits(0, 1));
        // lane 1 forms beside lane 0's batch: both run in space
        assert!(s.admits(1, 1));
        s.done(0, 4_000_000);
        s.done(1, 4_000_000);
        s
    }

    #[test]
    fn a_tenant_slowed_past_half_its_slo_beside_others_is_evicted_and_then_runs_alone() {
        let mut s = after_a_slow_round();
        // lane 1 saw one co-runner at its batches: 1 ms x (1 + 3 x 1) > 1.5 ms; evicted
        assert_eq!(s.mode(1), Mode::Time);
        assert_eq!(s.evictions(1), 1);
        // lane 0 saw none as it formed: expected 1 ms, it stays in space
        assert_eq!(s.mode(0), Mode::Space);
        // lane 0 runs; lane 1 waits for the GPU to drain, and nothing else starts meanwhile
        assert!(s.admits(0, 1));
        assert!(!s.admits(1, 1));
        s.done(0, 1_000_000);
        assert!(!s.admits(0, 1), "a batch started while an evicted tenant waited for the GPU");
        assert!(s.admits(1, 1));
        assert!(!s.admits(0, 1), "a batch started beside an evicted tenant's");
        s.done(1, 1_000_000);
        assert!(s.admits(0, 1));
    }

    #[test]
    fn an_evicted_tenant_rejoins_space_once_the_load_is_gone() {
        let mut s = after_a_slow_round();
        assert_eq!(s.mode(1), Mode::Time);
        // from now on lane 1's batches form with nothing else in flight: its load decays from
        // 1 by a tenth a batch, and once 1 ms x (1 + 3 x load) < 1.2 ms (load < 0.0667) it rejoins
        let mut batches = 0;
        while s.mode(1) == Mode::Time {
            assert!(s.admits(1, 1));
            s.done(1, 1_000_000);
            batches += 1;
            assert!(batches < 100, "never rejoined");
        }
        // (1 - 0.1)^n < 0.0667: n = 26
        assert_eq!(batches, 26);
        // its slowdown is remembered: with a co-runner again at every batch it straggles again
        let mut rounds = 0;
        while s.mode(1) == Mode::Space {
            assert!(s.admits(0, 1));
            let beside = s.admits(1, 1);
            let (a, b) = if beside { (4_000_000, 4_000_000) } else { (1_000_000, 1_000_000) };
            s.done(0, a);
            if !beside {
                assert!(s.admits(1, 1));
            }
            s.done(1, b);
            rounds += 1;
            assert!(rounds < 10, "never evicted again");
        }
        // load 0.16 then 0.24: 1 ms x (1 + 3 x 0.24) > 1.5 ms at the second
        assert_eq!((rounds, s.evictions(1)), (2, 2));
    }

    #[test]
    fn a_tenant_that_misses_even_alone_is_never_evicted() {
        // 2 ms alone against a 3 ms SLO: alone it still passes half the SLO
        let mut s = SpaceTime::new([(vec![(1, 1000.0)], 3.0), (vec![(1, 2000.0)], 3.0)], PARAMS);
        for _ in 0..20 {
            assert!(s.admits(0, 1));
            assert!(s.admits(1, 1));
            s.done(0, 1_500_000);
            s.done(1, 8_000_000);
        }
        assert_eq!((s.mode(1), s.evictions(1)), (Mode::Space, 0));
    }

    #[test]
    fn a_lane_that_leaves_holds_nothing_back() {
        let mut s = after_a_slow_round();
        assert!(s.admits(0, 1));
        assert!(!s.admits(1, 1));
        s.done(0, 1_000_000);
        assert!(!s.admits(0, 1));
        s.leave(1);
        assert!(s.admits(0, 1));
    }
}
