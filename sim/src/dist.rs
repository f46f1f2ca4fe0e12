//! Fixed, deterministic distributions (shifted log-normal) evaluated at Istio's histogram bounds.

/// Istio/Envoy's default histogram bucket bounds, used for duration (ms) and sizes (bytes) alike.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0,
    300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Number of finite bucket bounds.
pub const NB: usize = BUCKETS.len();

/// A distribution evaluated at [`BUCKETS`]: the fraction of observations `<= le`, and the mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketFracs {
    /// CDF at each bound, in [0, 1] and non-decreasing.
    pub fracs: [f64; NB],
    /// Mean observation.
    pub mean: f64,
}

impl BucketFracs {
    /// `shift + LogNormal(ln median, sigma)`.
    pub fn lognormal(median: f64, sigma: f64, shift: f64) -> Self {
        let median = median.max(1e-9);
        let mut fracs = [0.0; NB];
        for (f, &le) in fracs.iter_mut().zip(BUCKETS.iter()) {
            let x = le - shift;
            *f = if x <= 0.0 {
                0.0
            } else if sigma <= 0.0 {
                if x >= median { 1.0 } else { 0.0 }
            } else {
                norm_cdf((x.ln() - median.ln()) / sigma).clamp(0.0, 1.0)
            };
        }
        // Guard against rounding making the CDF dip.
        for i in 1..NB {
            if fracs[i] < fracs[i - 1] {
                fracs[i] = fracs[i - 1];
            }
        }
        Self {
            fracs,
            mean: shift + median * (sigma * sigma / 2.0).exp(),
        }
    }
}

/// Standard normal CDF.
pub fn norm_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_is_sane() {
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((norm_cdf(1.96) - 0.975).abs() < 1e-4);
        let d = BucketFracs::lognormal(10.0, 0.6, 0.0);
        assert!((d.fracs[3] - 0.5).abs() < 1e-6, "median sits at le=10");
        assert!(d.fracs.windows(2).all(|w| w[0] <= w[1]));
        let shifted = BucketFracs::lognormal(10.0, 0.6, 1000.0);
        assert_eq!(shifted.fracs[9], 0.0);
        assert!(shifted.mean > 1000.0);
    }
}
