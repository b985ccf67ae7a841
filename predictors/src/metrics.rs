//! Scores of predictions against measurements: relative errors (MAPE and its percentiles), how
//! often and by how much a predictor under-predicts (what breaks an SLO), and R².

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub n: usize,
    /// Mean absolute relative error.
    pub mape: f64,
    pub median_ape: f64,
    pub p95_ape: f64,
    pub p99_ape: f64,
    /// Share of predictions below the measurement, and their mean relative shortfall.
    pub under_share: f64,
    pub under_mean: f64,
    pub r2: f64,
}

/// Percentile of sorted values, linear between ranks.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Scores of `(predicted, measured)` pairs; none without pairs or with a measurement that is
/// not positive (a relative error needs one).
pub fn score(pairs: &[(f64, f64)]) -> Option<Scores> {
    if pairs.is_empty() || pairs.iter().any(|&(_, m)| m.is_nan() || m <= 0.0) {
        return None;
    }
    let n = pairs.len() as f64;
    let mut ape: Vec<f64> = pairs.iter().map(|&(p, m)| (p - m).abs() / m).collect();
    ape.sort_by(f64::total_cmp);
    let under: Vec<f64> = pairs.iter().filter(|&&(p, m)| p < m).map(|&(p, m)| (m - p) / m).collect();
    let mean = pairs.iter().map(|&(_, m)| m).sum::<f64>() / n;
    let ss_tot: f64 = pairs.iter().map(|&(_, m)| (m - mean).powi(2)).sum();
    let ss_res: f64 = pairs.iter().map(|&(p, m)| (m - p).powi(2)).sum();
    Some(Scores {
        n: pairs.len(),
        mape: ape.iter().sum::<f64>() / n,
        median_ape: percentile(&ape, 0.5),
        p95_ape: percentile(&ape, 0.95),
        p99_ape: percentile(&ape, 0.99),
        under_share: under.len() as f64 / n,
        under_mean: if under.is_empty() { 0.0 } else { under.iter().sum::<f64>() / under.len() as f64 },
        r2: if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { f64::NAN },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_predictions_score_zero_error_and_r2_of_one() {
        let s = score(&[(1.0, 1.0), (2.0, 2.0), (4.0, 4.0)]).unwrap();
        assert_eq!((s.mape, s.p99_ape, s.under_share, s.under_mean), (0.0, 0.0, 0.0, 0.0));
        assert_eq!(s.r2, 1.0);
    }

    #[test]
    fn errors_are_relative_and_under_predictions_counted() {
        // 10% over, 20% under, exact, 50% under
        let s = score(&[(110.0, 100.0), (80.0, 100.0), (50.0, 50.0), (1.0, 2.0)]).unwrap();
        assert!((s.mape - 0.8 / 4.0).abs() < 1e-12, "{}", s.mape);
        assert!((s.median_ape - 0.15).abs() < 1e-12, "{}", s.median_ape);
        assert_eq!(s.under_share, 0.5);
        assert!((s.under_mean - 0.35).abs() < 1e-12);
        // predicting the mean everywhere gives R² = 0
        let m = score(&[(2.0, 1.0), (2.0, 3.0)]).unwrap();
        assert_eq!(m.r2, 0.0);
    }

    #[test]
    fn no_pairs_or_a_non_positive_measurement_give_no_scores() {
        assert!(score(&[]).is_none());
        assert!(score(&[(1.0, 0.0)]).is_none());
    }
}
