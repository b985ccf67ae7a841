//! One clock for host and GPU. Request arrivals are host times (CLOCK_MONOTONIC, which every
//! process on the machine shares); kernel stamps are the GPU's %globaltimer. A run maps one
//! onto the other from two calibrations, one before and one after the run, each a set of
//! ping-pongs of which the shortest round trip bounds the offset best: offset and rate, since
//! the two clocks drift apart by microseconds per second. This module holds the map and its
//! fit; the calibration itself runs on the GPU (`coloc_harness::clock`).

use serde::{Deserialize, Serialize};

/// `gpu = host + offset_ns + drift_ns_per_s * (host - anchor_host_ns) / 1e9`, known to within
/// `uncertainty_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockMap {
    /// Host time of the first calibration.
    pub anchor_host_ns: i64,
    /// GPU minus host at the anchor.
    pub offset_ns: i64,
    /// How fast the GPU clock gains on the host's, ns per second (0 from one calibration).
    pub drift_ns_per_s: f64,
    pub uncertainty_ns: i64,
}

impl ClockMap {
    /// The host time of GPU time `gpu_ns`.
    pub fn to_host(&self, gpu_ns: u64) -> i64 {
        let rate = 1.0 + self.drift_ns_per_s * 1e-9;
        let since = gpu_ns as i64 - (self.anchor_host_ns + self.offset_ns);
        self.anchor_host_ns + (since as f64 / rate).round() as i64
    }

    /// The GPU time of host time `host_ns`.
    pub fn to_gpu(&self, host_ns: i64) -> u64 {
        let drift = self.drift_ns_per_s * 1e-9 * (host_ns - self.anchor_host_ns) as f64;
        (host_ns + self.offset_ns + drift.round() as i64) as u64
    }
}

/// One answered ping: host times around it and the GPU's stamp.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    pub host_before_ns: i64,
    pub host_after_ns: i64,
    pub gpu_ns: u64,
}

impl Ping {
    pub fn round_trip_ns(&self) -> i64 {
        self.host_after_ns - self.host_before_ns
    }
}

/// One calibration: the ping with the shortest round trip, its midpoint as the host time of
/// its stamp, within half the round trip.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub host_ns: i64,
    pub offset_ns: i64,
    pub uncertainty_ns: i64,
}

impl Calibration {
    pub fn of(pings: &[Ping]) -> Option<Calibration> {
        let best = pings.iter().min_by_key(|p| p.round_trip_ns())?;
        let mid = best.host_before_ns + best.round_trip_ns() / 2;
        Some(Calibration {
            host_ns: mid,
            offset_ns: best.gpu_ns as i64 - mid,
            uncertainty_ns: (best.round_trip_ns() + 1) / 2,
        })
    }

    /// The map from this calibration alone (no drift).
    pub fn map(&self) -> ClockMap {
        ClockMap {
            anchor_host_ns: self.host_ns,
            offset_ns: self.offset_ns,
            drift_ns_per_s: 0.0,
            uncertainty_ns: self.uncertainty_ns,
        }
    }

    /// The map through this calibration and a later one: offset and rate. Its uncertainty is
    /// the larger of the two (between them the line is within both).
    pub fn through(&self, later: &Calibration) -> ClockMap {
        let span_s = (later.host_ns - self.host_ns) as f64 * 1e-9;
        let drift = if span_s > 0.0 { (later.offset_ns - self.offset_ns) as f64 / span_s } else { 0.0 };
        ClockMap {
            anchor_host_ns: self.host_ns,
            offset_ns: self.offset_ns,
            drift_ns_per_s: drift,
            uncertainty_ns: self.uncertainty_ns.max(later.uncertainty_ns),
        }
    }
}

/// How ordinary launches agree with a clock map: an independent check of a calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockCheck {
    pub launches: usize,
    /// Launches whose mapped stamp fell outside their host bracket by more than the map's
    /// uncertainty.
    pub outside: usize,
    /// Medians, microseconds: host reading before the launch to the kernel's stamp, and the
    /// stamp to the host reading after the synchronisation returned.
    pub launch_to_stamp_us: f64,
    pub stamp_to_return_us: f64,
    /// The smallest of those two gaps over all launches (negative: outside the bracket).
    pub tightest_margin_us: f64,
}

/// Counts bracketed launches (host reading before the launch, after its completion, and the
/// kernel's stamp) whose mapped stamps fall outside `[before, after]` widened by the map's
/// uncertainty.
pub fn judge(map: &ClockMap, brackets: &[Ping]) -> ClockCheck {
    let lead: Vec<f64> = brackets.iter().map(|b| (map.to_host(b.gpu_ns) - b.host_before_ns) as f64 / 1e3).collect();
    let tail: Vec<f64> = brackets.iter().map(|b| (b.host_after_ns - map.to_host(b.gpu_ns)) as f64 / 1e3).collect();
    let slack = map.uncertainty_ns as f64 / 1e3;
    let outside = lead.iter().zip(&tail).filter(|(l, t)| **l < -slack || **t < -slack).count();
    ClockCheck {
        launches: brackets.len(),
        outside,
        launch_to_stamp_us: coloc_kernels::stats::median_of(&lead),
        stamp_to_return_us: coloc_kernels::stats::median_of(&tail),
        tightest_margin_us: lead.iter().chain(&tail).copied().fold(f64::INFINITY, f64::min),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(before: i64, after: i64, gpu: u64) -> Ping {
        Ping { host_before_ns: before, host_after_ns: after, gpu_ns: gpu }
    }

    #[test]
    fn a_calibration_uses_the_shortest_round_trip_and_its_midpoint() {
        // GPU clock = host + 1000. The slow ping's stamp is off-centre; the fast one is exact.
        let pings = [ping(0, 10_000, 10_000), ping(20_000, 20_400, 21_200), ping(30_000, 31_000, 31_900)];
        let c = Calibration::of(&pings).unwrap();
        assert_eq!((c.offset_ns, c.uncertainty_ns, c.host_ns), (1_000, 200, 20_200));
        assert!(Calibration::of(&[]).is_none());
    }

    #[test]
    fn two_calibrations_give_offset_and_rate() {
        // the GPU clock gains 4.5 us per second on the host's
        let before = Calibration { host_ns: 1_000_000_000, offset_ns: 500, uncertainty_ns: 300 };
        let after = Calibration { host_ns: 5_000_000_000, offset_ns: 500 + 18_000, uncertainty_ns: 700 };
        let m = before.through(&after);
        assert!((m.drift_ns_per_s - 4_500.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.uncertainty_ns, 700);
        // half way, the offset is half way
        let mid_host = 3_000_000_000;
        assert_eq!(m.to_gpu(mid_host) as i64 - mid_host, 500 + 9_000);
        for host in [0, mid_host, 5_000_000_000, 9_000_000_123] {
            assert!((m.to_host(m.to_gpu(host)) - host).abs() <= 1, "{host}");
        }
        // an offset-only map is 18 us wrong at the end of the run
        let stale = before.map();
        assert_eq!(stale.to_host(after.host_ns as u64 + after.offset_ns as u64) - after.host_ns, 18_000);
    }

    #[test]
    fn the_check_counts_stamps_outside_their_bracket() {
        let m = ClockMap { anchor_host_ns: 0, offset_ns: 0, drift_ns_per_s: 0.0, uncertainty_ns: 100 };
        // Inside; 50 ns early (within the uncertainty); 500 ns late (outside).
        let brackets = [ping(1_000, 5_000, 3_000), ping(1_000, 5_000, 950), ping(1_000, 5_000, 5_500)];
        let c = judge(&m, &brackets);
        assert_eq!((c.launches, c.outside), (3, 1));
        assert!((c.tightest_margin_us - (-0.5)).abs() < 1e-9, "{c:?}");
        assert!((c.launch_to_stamp_us - 2.0).abs() < 1e-9, "{c:?}");
    }
}
