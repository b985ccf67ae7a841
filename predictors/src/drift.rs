//! Page-Hinkley change detection (Page 1954; Hinkley 1971) on a stream of values: it raises an
//! alarm when their running mean shifts, up or down, by more than `delta` for long enough that
//! the cumulative deviation passes `threshold`.

/// Tuning of the test: shifts smaller than `delta` are tolerated; `threshold` trades detection
/// delay against false alarms.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageHinkleyParams {
    pub delta: f64,
    pub threshold: f64,
}

/// The two-sided test's state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageHinkley {
    params: PageHinkleyParams,
    n: u64,
    mean: f64,
    /// Cumulative deviations for an upward and a downward shift, and their extremes so far.
    up: f64,
    up_min: f64,
    down: f64,
    down_max: f64,
}

impl PageHinkley {
    pub fn new(params: PageHinkleyParams) -> PageHinkley {
        PageHinkley { params, n: 0, mean: 0.0, up: 0.0, up_min: 0.0, down: 0.0, down_max: 0.0 }
    }

    /// Takes one value; true when a shift is detected (the test then starts afresh).
    pub fn observe(&mut self, x: f64) -> bool {
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        self.up += x - self.mean - self.params.delta;
        self.up_min = self.up_min.min(self.up);
        self.down += x - self.mean + self.params.delta;
        self.down_max = self.down_max.max(self.down);
        let alarm = self.up - self.up_min > self.params.threshold || self.down_max - self.down > self.params.threshold;
        if alarm {
            *self = PageHinkley::new(self.params);
        }
        alarm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, zero-mean wobble in [-0.05, 0.05].
    fn wobble(i: u64) -> f64 {
        ((i * 7919) % 101) as f64 / 1000.0 - 0.05
    }

    #[test]
    fn a_stationary_stream_raises_no_alarm_and_a_shift_either_way_is_caught_soon() {
        let params = PageHinkleyParams { delta: 0.02, threshold: 2.0 };
        let mut ph = PageHinkley::new(params);
        assert!((0..5000).all(|i| !ph.observe(1.0 + wobble(i))));
        for shift in [0.3, -0.3] {
            let mut ph = PageHinkley::new(params);
            (0..1000).for_each(|i| assert!(!ph.observe(1.0 + wobble(i))));
            let delay = (0..1000).position(|i| ph.observe(1.0 + shift + wobble(i))).unwrap();
            assert!(delay < 20, "shift {shift} caught after {delay}");
        }
    }
}
