//! Zipfian key choice, by the method of Gray et al., "Quickly Generating
//! Billion-Record Synthetic Databases" (SIGMOD 1994), which YCSB also uses.
//!
//! Item `i` (0-based rank) is drawn with probability close to
//! `1 / ((i + 1)^theta * zeta(n, theta))`, where
//! `zeta(n, theta) = sum_{k=1..n} 1 / k^theta`. Ranks 0 and 1 are exact; the
//! tail follows a closed-form approximation, so that a draw costs one `powf`
//! instead of a search. Rank 0 is the most popular key.

use crate::rng::Rng;

/// Above this many items the zeta constant is computed from an integral
/// approximation of the rest of the sum instead of term by term.
const EXACT_ZETA_TERMS: u64 = 10_000_000;

/// A Zipfian distribution over `0..n`.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^theta`: the cumulative weight of the two most popular items.
    two_weight: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZipfError {
    #[error("a zipfian distribution needs at least one item")]
    Empty,
    #[error("zipf theta must be in [0, 1); got {0}")]
    BadTheta(f64),
}

impl Zipf {
    /// A distribution over `n` items with skew `theta` (`0 <= theta < 1`;
    /// 0 is uniform, 0.99 is YCSB's default).
    pub fn new(n: u64, theta: f64) -> Result<Zipf, ZipfError> {
        if n == 0 {
            return Err(ZipfError::Empty);
        }
        if !(0.0..1.0).contains(&theta) {
            return Err(ZipfError::BadTheta(theta));
        }
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2.min(n), theta);
        let eta = if n < 3 {
            // Never used: with one or two items the exact branches decide.
            0.0
        } else {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        };
        Ok(Zipf {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            two_weight: 1.0 + 0.5f64.powf(theta),
        })
    }

    pub fn items(&self) -> u64 {
        self.n
    }

    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// `zeta(n, theta)`, the normalising constant.
    pub fn zetan(&self) -> f64 {
        self.zetan
    }

    /// The exact probability of rank `i` under the ideal distribution.
    pub fn probability(&self, i: u64) -> f64 {
        1.0 / ((i + 1) as f64).powf(self.theta) / self.zetan
    }

    /// Draws a rank in `0..n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.two_weight {
            return 1.min(self.n - 1);
        }
        let x = self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (x as u64).min(self.n - 1)
    }
}

/// `sum_{k=1..n} 1 / k^theta`: exact up to [`EXACT_ZETA_TERMS`], then the
/// Euler–Maclaurin estimate of the remainder (error far below 1e-9 there).
pub fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(EXACT_ZETA_TERMS);
    let mut sum = 0.0;
    // Smallest terms first, for a more accurate floating-point sum.
    for k in (1..=exact).rev() {
        sum += 1.0 / (k as f64).powf(theta);
    }
    if n > exact {
        let m = exact as f64;
        let nf = n as f64;
        let integral = if (theta - 1.0).abs() < f64::EPSILON {
            (nf / m).ln()
        } else {
            (nf.powf(1.0 - theta) - m.powf(1.0 - theta)) / (1.0 - theta)
        };
        // Trapezoid correction: the integral from m counts f(m) half, the
        // sum from m+1 counts f(n) whole.
        sum += integral + (nf.powf(-theta) - m.powf(-theta)) / 2.0;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(z: &Zipf, samples: usize, seed: u64) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        let mut counts = vec![0u64; z.items() as usize];
        for _ in 0..samples {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(Zipf::new(0, 0.5).unwrap_err(), ZipfError::Empty);
        assert!(matches!(Zipf::new(10, 1.0), Err(ZipfError::BadTheta(_))));
        assert!(matches!(Zipf::new(10, -0.1), Err(ZipfError::BadTheta(_))));
        assert!(matches!(
            Zipf::new(10, f64::NAN),
            Err(ZipfError::BadTheta(_))
        ));
    }

    #[test]
    fn zeta_small_values() {
        assert!((zeta(1, 0.99) - 1.0).abs() < 1e-12);
        assert!((zeta(2, 0.0) - 2.0).abs() < 1e-12);
        assert!((zeta(3, 0.5) - (1.0 + 1.0 / 2f64.sqrt() + 1.0 / 3f64.sqrt())).abs() < 1e-12);
    }

    #[test]
    fn zeta_tail_estimate_is_close_to_the_exact_sum() {
        // Compare the estimate from 10M on with the exact sum to 12M.
        let n = 12_000_000;
        let mut exact = 0.0;
        for k in (1..=n).rev() {
            exact += 1.0 / (k as f64).powf(0.99);
        }
        let estimated = zeta(n, 0.99);
        assert!(
            ((estimated - exact) / exact).abs() < 1e-9,
            "{estimated} vs {exact}"
        );
    }

    #[test]
    fn most_popular_key_share_matches_theory_for_theta_099() {
        let z = Zipf::new(1000, 0.99).unwrap();
        let samples = 400_000;
        let counts = histogram(&z, samples, 11);
        // Theory: p(rank 0) = 1 / zeta(1000, 0.99), about 0.134.
        let expected0 = z.probability(0);
        assert!((0.12..0.15).contains(&expected0), "{expected0}");
        let share0 = counts[0] as f64 / samples as f64;
        assert!(
            (share0 - expected0).abs() / expected0 < 0.03,
            "rank 0: {share0} vs {expected0}"
        );
        let expected1 = z.probability(1);
        let share1 = counts[1] as f64 / samples as f64;
        assert!(
            (share1 - expected1).abs() / expected1 < 0.04,
            "rank 1: {share1} vs {expected1}"
        );
        // The ten most popular keys together, where the tail formula is in
        // play too, still match within a few percent.
        let expected10: f64 = (0..10).map(|i| z.probability(i)).sum();
        let share10 = counts[..10].iter().sum::<u64>() as f64 / samples as f64;
        assert!(
            (share10 - expected10).abs() / expected10 < 0.06,
            "top 10: {share10} vs {expected10}"
        );
        // Skewed: the head is far more popular than the tail.
        assert!(counts[0] > counts[1]);
        assert!(counts[1] > counts[9]);
        let tail: u64 = counts[500..].iter().sum();
        assert!(counts[0] > tail / 2, "head {} tail {tail}", counts[0]);
    }

    #[test]
    fn samples_stay_in_range() {
        for n in [1u64, 2, 3, 17, 1000] {
            let z = Zipf::new(n, 0.99).unwrap();
            let mut rng = Rng::new(n);
            for _ in 0..20_000 {
                assert!(z.sample(&mut rng) < n);
            }
        }
    }

    #[test]
    fn two_items_are_weighted_exactly() {
        let z = Zipf::new(2, 0.99).unwrap();
        let samples = 200_000;
        let counts = histogram(&z, samples, 5);
        let expected0 = 1.0 / (1.0 + 0.5f64.powf(0.99));
        let share0 = counts[0] as f64 / samples as f64;
        assert!((share0 - expected0).abs() < 0.01, "{share0} vs {expected0}");
    }

    #[test]
    fn theta_zero_is_uniform() {
        let z = Zipf::new(100, 0.0).unwrap();
        let samples = 200_000;
        let counts = histogram(&z, samples, 9);
        let mean = samples as f64 / 100.0;
        for (i, c) in counts.iter().enumerate() {
            assert!(
                (*c as f64 - mean).abs() < mean * 0.15,
                "item {i}: {c} vs {mean}"
            );
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let z = Zipf::new(100_000, 0.99).unwrap();
        let mut a = Rng::new(123);
        let mut b = Rng::new(123);
        let xs: Vec<u64> = (0..1000).map(|_| z.sample(&mut a)).collect();
        let ys: Vec<u64> = (0..1000).map(|_| z.sample(&mut b)).collect();
        assert_eq!(xs, ys);
    }
}
