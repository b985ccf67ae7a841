//! Did a tenant's queue stay stable over the whole measured window? A run whose queue grows
//! describes the length of its window, not the scenario: its latencies would be larger in a
//! longer run. The window is cut into sub-windows and the median wait (arrival to the batch's
//! first kernel) of the requests arriving in each is compared over all of them, not only the
//! first and last thirds: a steady rise (Kendall's tau over the sub-windows, and a last wait
//! well above the first) or a build-up anywhere in the window (one sub-window far above the
//! typical one) is unstable. The harness judges its runs with this, and `coloc dataset check`
//! judges every VALID run again from its requests.

use serde::{Deserialize, Serialize};

/// Sub-windows a measured window is cut into.
pub const SUB_WINDOWS: usize = 8;

/// Fewest requests a sub-window needs for its median to count.
const MIN_PER_SUB_WINDOW: usize = 5;

/// How strongly the sub-window waits must rise, in Kendall's tau, to be a trend.
const TREND_TAU: f64 = 0.7;

/// Why a queue was not stable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Instability {
    /// Waits rose steadily over the window.
    Growing { first_ms: f64, last_ms: f64, tau: f64 },
    /// Waits in one sub-window were far above the typical sub-window's.
    BuildUp { sub_window: usize, peak_ms: f64, typical_ms: f64 },
}

impl Instability {
    pub fn reason(&self) -> String {
        match self {
            Instability::Growing { first_ms, last_ms, tau } => format!(
                "the queue grew: the median wait rose from {first_ms:.2} ms in the first eighth of the window to {last_ms:.2} ms in the last (Kendall tau {tau:.2} over {SUB_WINDOWS} sub-windows)"
            ),
            Instability::BuildUp { sub_window, peak_ms, typical_ms } => format!(
                "the queue built up mid-run: the median wait reached {peak_ms:.2} ms in sub-window {} of {SUB_WINDOWS}, against {typical_ms:.2} ms typically",
                sub_window + 1
            ),
        }
    }

    pub fn fix(&self) -> &'static str {
        match self {
            Instability::Growing { .. } => {
                "the tenant is overloaded at this share: lower its load (or rate), give it a larger share, or co-locate fewer tenants"
            }
            Instability::BuildUp { .. } => {
                "a burst or an aggressor overloaded the tenant for part of the run: lower its load, the burstiness or the aggressor's intensity"
            }
        }
    }
}

/// The wait a stable tenant may have without any queue, ms: its longest batching wait plus
/// its batch's GPU time (measured co-located, or else alone at its share).
pub fn wait_scale_ms(max_wait_ms: f64, gpu_p50_ms: Option<f64>, solo_share_gpu_ms: f64) -> f64 {
    max_wait_ms + gpu_p50_ms.unwrap_or(solo_share_gpu_ms)
}

/// A request's arrival and its wait (arrival to its batch's first kernel), ns; no wait if it
/// was never served.
pub type Wait = (i64, Option<i64>);

/// Median wait of each sub-window (none where too few requests arrived), from (arrival, wait)
/// pairs in ns; a request that was never served counts as waiting until `never_served_ns`.
pub fn sub_window_waits_ms(requests: &[Wait], window_ns: i64, never_served_ns: i64) -> Vec<Option<f64>> {
    let width = (window_ns / SUB_WINDOWS as i64).max(1);
    let mut bins: Vec<Vec<f64>> = vec![Vec::new(); SUB_WINDOWS];
    for &(arrival, wait) in requests {
        if arrival < 0 || arrival >= window_ns {
            continue;
        }
        let k = ((arrival / width) as usize).min(SUB_WINDOWS - 1);
        let w = wait.unwrap_or(never_served_ns - arrival);
        bins[k].push(w as f64 / 1e6);
    }
    bins.into_iter()
        .map(|mut b| {
            (b.len() >= MIN_PER_SUB_WINDOW).then(|| {
                b.sort_by(f64::total_cmp);
                coloc_kernels::stats::quantile_sorted(&b, 0.5)
            })
        })
        .collect()
}

/// Kendall's tau-a of a sequence against its index.
pub fn kendall_tau(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 2 {
        return 0.0;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += (v[j] - v[i]).partial_cmp(&0.0).map_or(0, |o| o as i64);
        }
    }
    s as f64 / (n * (n - 1) / 2) as f64
}

/// Judges one tenant's queue. `scale_ms` is the wait a stable tenant can have without a queue:
/// its batch's GPU time at its share plus its longest batching wait.
pub fn judge(waits_ms: &[Option<f64>], scale_ms: f64) -> Option<Instability> {
    let known: Vec<(usize, f64)> = waits_ms.iter().enumerate().filter_map(|(k, w)| w.map(|w| (k, w))).collect();
    if known.len() < 3 {
        return None;
    }
    let values: Vec<f64> = known.iter().map(|(_, w)| *w).collect();
    let (first, last) = (values[0], values[values.len() - 1]);
    let tau = kendall_tau(&values);
    if tau >= TREND_TAU && last > 2.0 * first + 2.0 * scale_ms {
        return Some(Instability::Growing { first_ms: first, last_ms: last, tau });
    }
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let typical = coloc_kernels::stats::quantile_sorted(&sorted, 0.5);
    let (k, peak) = known.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)).expect("at least three");
    if peak > 4.0 * typical + 10.0 * scale_ms {
        return Some(Instability::BuildUp { sub_window: k, peak_ms: peak, typical_ms: typical });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests every 1 ms over a 4 s window with the wait `f(arrival in s)` ms.
    fn requests(f: impl Fn(f64) -> f64) -> Vec<(i64, Option<i64>)> {
        (0..4000).map(|i| (i * 1_000_000, Some((f(i as f64 / 1000.0) * 1e6) as i64))).collect()
    }

    fn verdict(f: impl Fn(f64) -> f64, scale_ms: f64) -> Option<Instability> {
        let w = sub_window_waits_ms(&requests(f), 4_000_000_000, 4_000_000_000);
        judge(&w, scale_ms)
    }

    #[test]
    fn a_steady_queue_is_stable() {
        assert_eq!(verdict(|t| 3.0 + (t * 37.0).sin(), 2.0), None);
    }

    #[test]
    fn a_wait_climbing_from_8_to_30_ms_is_growing() {
        // the run the first dataset called VALID: 99% busy, median wait 7.7 ms -> 30 ms
        let v = verdict(|t| 7.7 + 5.6 * t, 3.0).unwrap();
        assert!(matches!(v, Instability::Growing { .. }), "{v:?}");
        assert!(v.reason().contains("queue grew"));
    }

    #[test]
    fn a_build_up_in_the_middle_of_the_run_is_caught() {
        // a queue of 331 ms mid-run that drains again: first and last thirds look alike
        let v = verdict(|t| if (1.5..2.5).contains(&t) { 331.0 } else { 4.0 }, 3.0).unwrap();
        assert!(matches!(v, Instability::BuildUp { .. }), "{v:?}");
        assert!(v.reason().contains("built up"));
    }

    #[test]
    fn requests_never_served_count_as_waiting_to_the_end() {
        let mut r = requests(|_| 2.0);
        for x in r.iter_mut().skip(3000) {
            x.1 = None;
        }
        let w = sub_window_waits_ms(&r, 4_000_000_000, 6_000_000_000);
        assert!(w[7].unwrap() > 1000.0, "{w:?}");
        assert!(judge(&w, 2.0).is_some());
    }

    #[test]
    fn kendall_tau_is_one_for_a_rising_sequence_and_minus_one_for_a_falling_one() {
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0, 4.0]), 1.0);
        assert_eq!(kendall_tau(&[4.0, 3.0, 2.0, 1.0]), -1.0);
        assert_eq!(kendall_tau(&[1.0, 1.0]), 0.0);
    }
}
