//! The statistics of the timing check: medians, a bootstrap confidence
//! interval for the ratio (and the difference) of two medians, and the
//! Mann–Whitney U rank test. Deterministic: the bootstrap draws from a
//! fixed-seed generator, so the same samples always give the same interval.
//!
//! ```
//! use resetkit_harness::http::stats::{Comparison, compare};
//!
//! let fast: Vec<f64> = (0..40).map(|i| 1.0 + f64::from(i % 5) * 0.01).collect();
//! let slow: Vec<f64> = fast.iter().map(|x| x + 40.0).collect();
//! let c: Comparison = compare(&slow, &fast);
//! assert!(c.ratio_low > 10.0);
//! assert!(c.p_value < 1e-6);
//! ```

/// Bootstrap resamples.
const RESAMPLES: usize = 2000;

/// Class `a` against class `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Median of `a` (ms).
    pub median_a: f64,
    /// Median of `b` (ms).
    pub median_b: f64,
    /// `median_a / median_b`.
    pub ratio: f64,
    /// 95 % bootstrap interval of the ratio: low end.
    pub ratio_low: f64,
    /// ... high end.
    pub ratio_high: f64,
    /// 95 % bootstrap interval of `median_a - median_b` (ms): low end.
    pub diff_low: f64,
    /// ... high end.
    pub diff_high: f64,
    /// Mann–Whitney U of `a` against `b`.
    pub u: f64,
    /// Its two-sided p-value (normal approximation with tie correction).
    pub p_value: f64,
    /// Samples of `a`.
    pub n_a: usize,
    /// Samples of `b`.
    pub n_b: usize,
}

/// Compares two samples (in ms).
pub fn compare(a: &[f64], b: &[f64]) -> Comparison {
    let median_a = median(a);
    let median_b = median(b);
    let mut rng = SplitMix(0x5eed_7157_u64 ^ ((a.len() as u64) << 32) ^ b.len() as u64);
    let mut ratios = Vec::with_capacity(RESAMPLES);
    let mut diffs = Vec::with_capacity(RESAMPLES);
    let mut ra = vec![0.0; a.len()];
    let mut rb = vec![0.0; b.len()];
    for _ in 0..RESAMPLES {
        for x in ra.iter_mut() {
            *x = a[rng.below(a.len())];
        }
        for x in rb.iter_mut() {
            *x = b[rng.below(b.len())];
        }
        let (ma, mb) = (median(&ra), median(&rb));
        ratios.push(ma / mb.max(1e-9));
        diffs.push(ma - mb);
    }
    let (u, p_value) = mann_whitney(a, b);
    Comparison {
        median_a,
        median_b,
        ratio: median_a / median_b.max(1e-9),
        ratio_low: quantile(&mut ratios, 0.025),
        ratio_high: quantile(&mut ratios, 0.975),
        diff_low: quantile(&mut diffs, 0.025),
        diff_high: quantile(&mut diffs, 0.975),
        u,
        p_value,
        n_a: a.len(),
        n_b: b.len(),
    }
}

/// The median (0 for no samples).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index.min(values.len() - 1)]
}

/// Mann–Whitney U of `a` (ranks with ties averaged) and its two-sided
/// p-value from the normal approximation with tie correction.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return (0.0, 1.0);
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|x| (*x, true))
        .chain(b.iter().map(|x| (*x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        for item in &all[i..=j] {
            if item.1 {
                rank_sum_a += rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let total = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if variance <= 0.0 {
        return (u, 1.0);
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    (u, erfc(z / std::f64::consts::SQRT_2))
}

/// The complementary error function (Numerical Recipes' `erfcc`,
/// fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// A small deterministic generator (SplitMix64) for the bootstrap.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn identical_distributions_give_an_interval_around_one() {
        let a: Vec<f64> = (0..60).map(|i| 1.0 + f64::from((i * 7) % 13) * 0.05).collect();
        let b: Vec<f64> = (0..60).map(|i| 1.0 + f64::from((i * 5) % 13) * 0.05).collect();
        let c = compare(&a, &b);
        assert!(c.ratio_low <= 1.0 && c.ratio_high >= 1.0, "{c:?}");
        assert!(c.p_value > 0.2, "{c:?}");
    }

    #[test]
    fn a_shift_is_found() {
        let b: Vec<f64> = (0..30).map(|i| 1.0 + f64::from(i % 7) * 0.1).collect();
        let a: Vec<f64> = b.iter().map(|x| x * 1.8).collect();
        let c = compare(&a, &b);
        assert!(c.ratio_low > 1.5, "{c:?}");
        assert!(c.p_value < 0.001, "{c:?}");
        assert_eq!(compare(&a, &b), c, "deterministic");
    }

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
    }
}
