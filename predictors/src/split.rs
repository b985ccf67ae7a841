//! Splits of the examples. The random split (75/25, as in the study the seeds cite) draws each
//! example's side from its index and the seed alone, so it is the same bit for bit on every
//! machine.

/// SplitMix64: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Indices of `n` examples split into (train, test), each in the test set with probability
/// `test_fraction`.
pub fn random_split(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let threshold = (test_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    (0..n).partition(|&i| mix(seed ^ mix(i as u64)) >= threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_a_partition_of_about_the_asked_size_and_depends_on_the_seed() {
        let (train, test) = random_split(10_000, 0.25, 7);
        assert_eq!(train.len() + test.len(), 10_000);
        assert!(train.iter().all(|i| !test.contains(i)));
        assert!((test.len() as f64 / 10_000.0 - 0.25).abs() < 0.02, "{}", test.len());
        assert_eq!(random_split(10_000, 0.25, 7), (train.clone(), test.clone()));
        assert_ne!(random_split(10_000, 0.25, 8).1, test);
    }
}
