//! Statistics of timing samples: robust summaries, bootstrap confidence intervals and a
//! two-sample comparison (Mann-Whitney U plus a noise threshold), in the manner of criterion.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Resamples drawn for a bootstrap interval.
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Summary of one set of samples (any unit; coloc uses microseconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub stdev: f64,
    pub min: f64,
    pub p05: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p95: f64,
    pub max: f64,
    /// Median absolute deviation (unscaled).
    pub mad: f64,
    /// 95% bootstrap interval of the median.
    pub median_ci95: (f64, f64),
    /// Samples outside the Tukey fences (1.5 IQR beyond the quartiles).
    pub outliers: usize,
}

impl Summary {
    /// Summarises `samples` (at least one, all finite); the bootstrap is seeded so the same
    /// samples always give the same interval.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        let median = quantile_sorted(&s, 0.5);
        let mut dev: Vec<f64> = s.iter().map(|v| (v - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let (p25, p75) = (quantile_sorted(&s, 0.25), quantile_sorted(&s, 0.75));
        let iqr = p75 - p25;
        let outliers = s.iter().filter(|v| **v < p25 - 1.5 * iqr || **v > p75 + 1.5 * iqr).count();
        Some(Summary {
            n,
            mean,
            stdev: var.sqrt(),
            min: s[0],
            p05: quantile_sorted(&s, 0.05),
            p25,
            median,
            p75,
            p95: quantile_sorted(&s, 0.95),
            max: s[n - 1],
            mad: quantile_sorted(&dev, 0.5),
            median_ci95: bootstrap_ci(&s, 0.95, median_of),
            outliers,
        })
    }

    pub fn iqr(&self) -> f64 {
        self.p75 - self.p25
    }

    /// Interquartile range relative to the median: the spread shown in tables.
    pub fn relative_spread(&self) -> f64 {
        if self.median > 0.0 { self.iqr() / self.median } else { 0.0 }
    }
}

/// Linear-interpolation quantile of sorted data (R type 7).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty());
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn median_of(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    quantile_sorted(&s, 0.5)
}

/// Percentile bootstrap interval of `stat` at confidence `level`.
pub fn bootstrap_ci(samples: &[f64], level: f64, stat: impl Fn(&[f64]) -> f64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0063_6f6c_6f63);
    let n = samples.len();
    let mut buf = vec![0.0; n];
    let mut stats: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for slot in buf.iter_mut() {
                *slot = samples[rng.random_range(0..n)];
            }
            stat(&buf)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (quantile_sorted(&stats, tail), quantile_sorted(&stats, 1.0 - tail))
}

/// Percentile bootstrap interval of `stat` over `clusters` of samples, resampling whole
/// clusters (the independent units: the requests of one batch share its fate) and pooling
/// their samples.
pub fn cluster_bootstrap_ci(clusters: &[Vec<f64>], level: f64, stat: impl Fn(&mut [f64]) -> f64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0063_6f6c_6f63);
    let n = clusters.len();
    let total: usize = clusters.iter().map(Vec::len).sum();
    let mut buf = Vec::with_capacity(total + total / 4);
    let mut stats: Vec<f64> = (0..CLUSTER_RESAMPLES)
        .map(|_| {
            buf.clear();
            for _ in 0..n {
                buf.extend_from_slice(&clusters[rng.random_range(0..n)]);
            }
            stat(&mut buf)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (quantile_sorted(&stats, tail), quantile_sorted(&stats, 1.0 - tail))
}

/// Resamples of [`cluster_bootstrap_ci`]: fewer than for a plain sample, since each pools many.
const CLUSTER_RESAMPLES: usize = 400;

/// The `q` quantile of `v` (reordered in place), interpolated as [`quantile_sorted`] does and
/// equal to it, found by selection rather than a sort: the bootstrap asks it hundreds of times.
pub fn quantile_of(v: &mut [f64], q: f64) -> f64 {
    assert!(!v.is_empty());
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let (_, at, above) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let below = *at;
    // the next order statistic is the least of those above
    let next = if pos > lo as f64 { above.iter().copied().min_by(f64::total_cmp).unwrap_or(below) } else { below };
    below + (next - below) * (pos - lo as f64)
}

/// Verdict of a comparison of a new sample set against a base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Significantly slower by more than the noise threshold.
    Regressed,
    /// Significantly faster by more than the noise threshold.
    Improved,
    /// Not significant, or within the noise threshold.
    NoChange,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// median(new) / median(base)
    pub ratio: f64,
    /// 95% bootstrap interval of the ratio.
    pub ratio_ci95: (f64, f64),
    /// Two-sided Mann-Whitney U p-value (normal approximation with tie correction).
    pub p_value: f64,
    pub change: Change,
}

/// Compares timing samples `new` against `base`: a change counts when the rank test is
/// significant at `alpha` and the median moved by more than `noise` (relative).
pub fn compare(base: &[f64], new: &[f64], alpha: f64, noise: f64) -> Option<Comparison> {
    if base.len() < 2 || new.len() < 2 {
        return None;
    }
    let ratio = median_of(new) / median_of(base);
    let mut rng = ChaCha8Rng::seed_from_u64(0x0072_6174_696f);
    let mut ratios: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let b: Vec<f64> = (0..base.len()).map(|_| base[rng.random_range(0..base.len())]).collect();
            let n: Vec<f64> = (0..new.len()).map(|_| new[rng.random_range(0..new.len())]).collect();
            median_of(&n) / median_of(&b)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let p_value = mann_whitney_p(base, new);
    let change = if p_value >= alpha || (ratio - 1.0).abs() <= noise {
        Change::NoChange
    } else if ratio > 1.0 {
        Change::Regressed
    } else {
        Change::Improved
    };
    Some(Comparison {
        ratio,
        ratio_ci95: (quantile_sorted(&ratios, 0.025), quantile_sorted(&ratios, 0.975)),
        p_value,
        change,
    })
}

/// Two-sided p-value of the Mann-Whitney U test, normal approximation with tie correction.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, usize)> = a.iter().map(|v| (*v, 0)).chain(b.iter().map(|v| (*v, 1))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for rank in ranks.iter_mut().take(j + 1).skip(i) {
            *rank = r;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all.iter().zip(&ranks).filter(|(x, _)| x.1 == 0).map(|(_, r)| r).sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let mu = n1 * n2 / 2.0;
    let nn = n1 + n2;
    let sigma2 = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    if sigma2 <= 0.0 {
        return 1.0;
    }
    let z = ((u1 - mu).abs() - 0.5).max(0.0) / sigma2.sqrt();
    (2.0 * normal_sf(z)).min(1.0)
}

/// Upper tail of the standard normal distribution.
fn normal_sf(z: f64) -> f64 {
    0.5 * (1.0 - crate::types::erf(z / std::f64::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&s, 0.5), 2.5);
        assert_eq!(quantile_sorted(&s, 0.0), 1.0);
        assert_eq!(quantile_sorted(&s, 1.0), 4.0);
        assert!((quantile_sorted(&s, 0.25) - 1.75).abs() < 1e-12);
    }

    #[test]
    fn selected_quantiles_equal_sorted_ones_on_random_samples() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in [1usize, 2, 3, 10, 101, 1000] {
            // ties included: values on a coarse grid
            let v: Vec<f64> = (0..n).map(|_| f64::from(rng.random_range(0..50u32)) * 0.5).collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
                let mut w = v.clone();
                assert_eq!(quantile_of(&mut w, q), quantile_sorted(&sorted, q), "n {n}, q {q}");
            }
        }
    }

    #[test]
    fn summary_of_a_known_sample() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0, 100.0]).unwrap();
        assert_eq!(s.n, 6);
        assert_eq!(s.median, 3.5);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 100.0);
        assert_eq!(s.outliers, 1);
        assert!(s.median_ci95.0 <= s.median && s.median <= s.median_ci95.1);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn mann_whitney_separates_shifted_samples_and_not_equal_ones() {
        let a: Vec<f64> = (0..40).map(|i| 100.0 + (i % 7) as f64).collect();
        let shifted: Vec<f64> = a.iter().map(|v| v + 10.0).collect();
        assert!(mann_whitney_p(&a, &shifted) < 1e-6);
        assert!(mann_whitney_p(&a, &a) > 0.9);
    }

    #[test]
    fn comparison_respects_the_noise_threshold() {
        let base: Vec<f64> = (0..50).map(|i| 100.0 + (i % 5) as f64 * 0.1).collect();
        let slower: Vec<f64> = base.iter().map(|v| v * 1.10).collect();
        let slightly: Vec<f64> = base.iter().map(|v| v * 1.01).collect();
        assert_eq!(compare(&base, &slower, 0.05, 0.02).unwrap().change, Change::Regressed);
        assert_eq!(compare(&base, &slightly, 0.05, 0.02).unwrap().change, Change::NoChange);
        let faster: Vec<f64> = base.iter().map(|v| v * 0.8).collect();
        let c = compare(&base, &faster, 0.05, 0.02).unwrap();
        assert_eq!(c.change, Change::Improved);
        assert!((c.ratio - 0.8).abs() < 1e-9);
    }

    #[test]
    fn a_cluster_bootstrap_is_wider_than_one_that_ignores_the_clusters() {
        // 40 batches of 8 requests; requests of a batch share most of their latency
        let clusters: Vec<Vec<f64>> =
            (0..40).map(|b| (0..8).map(|r| 10.0 + ((b * 37) % 11) as f64 + 0.01 * r as f64).collect()).collect();
        let flat: Vec<f64> = clusters.iter().flatten().copied().collect();
        let (lo, hi) = cluster_bootstrap_ci(&clusters, 0.95, |v| quantile_of(v, 0.5));
        let (flo, fhi) = bootstrap_ci(&flat, 0.95, median_of);
        let m = median_of(&flat);
        assert!(lo <= m && m <= hi, "{lo} {m} {hi}");
        assert!(hi - lo > fhi - flo, "clusters {lo}..{hi}, flat {flo}..{fhi}");
    }
}
