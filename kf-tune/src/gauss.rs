//! The standard normal distribution's CDF, inverse CDF and log-density, for
//! the `normal` parameter distributions and TPE's truncated Parzen kernels.
//!
//! Private numerics: no IO, no state. Accuracy is far below what sampling noise
//! can see (relative error < 1.2e-7 for Φ, < 1e-9 for Φ⁻¹ after refinement).

use std::f64::consts::{PI, SQRT_2};

/// Complementary error function, Chebyshev fit from Numerical Recipes (2nd ed.,
/// §6.2, `erfcc`): fractional error below 1.2e-7 everywhere, no table, no branches
/// on special ranges. O(1).
fn erfc(x: f64) -> f64 {
    erfc_with(x, f64::exp)
}

/// [`erfc`] with the exponential as a parameter, so the kernel-mass loops can
/// inline [`exp_nonpositive`] and vectorise.
#[inline(always)]
fn erfc_with(x: f64, exp: impl Fn(f64) -> f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * exp(poly);
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Φ(x), the standard normal CDF. O(1).
pub(crate) fn cdf(x: f64) -> f64 {
    0.5 * erfc(-x / SQRT_2)
}

/// Φ(b) − Φ(a), the mass of a standard normal on [a, b], with the same fit as
/// [`cdf`] but the inlined [`exp_nonpositive`] (the fit's exponent is at most
/// 3e-8 above zero, where that polynomial is as exact): no call and no data-
/// dependent branch, so TPE's loops over 1,000 kernels vectorise. Differs from
/// `cdf(b) - cdf(a)` by a few units in the last place, far inside the fit's own
/// 1.2e-7. O(1).
#[inline]
pub(crate) fn mass(a: f64, b: f64) -> f64 {
    0.5 * erfc_with(-b / SQRT_2, exp_nonpositive) - 0.5 * erfc_with(-a / SQRT_2, exp_nonpositive)
}

/// eˣ in straight-line arithmetic, for x ≤ 0 (log-sum-exp terms below their
/// maximum): Cody–Waite reduction x = k·ln 2 + r with |r| ≤ ½ ln 2, Taylor
/// series of eʳ to r¹³ (truncation < 5e-18), 2ᵏ built in the exponent bits.
/// Relative error within a few units in the last place of `f64::exp`; no call
/// and no branch, so a loop over kernels vectorises. Inputs below −700 are
/// raised to −700 (e⁻⁷⁰⁰ ≈ 1e-304: nothing next to the maximum's 1); NaN
/// stays NaN. O(1).
#[inline]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    // fdlibm's split of ln 2: k·LN2_HI is exact for |k| < 2¹¹.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // 1.5·2⁵²: adding it rounds to an integer kept in the low mantissa bits.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    const C: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let x = if x < -700.0 { -700.0 } else { x };
    let shifted = x * std::f64::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = C[13];
    for c in C[..13].iter().rev() {
        p = p * r + c;
    }
    // shifted's low bits hold k (two's complement); k + 1023 in the exponent field is 2ᵏ.
    p * f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52)
}

/// ln φ(x), the standard normal log-density. O(1).
pub(crate) fn ln_pdf(x: f64) -> f64 {
    -0.5 * x * x - 0.5 * (2.0 * PI).ln()
}

/// Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation (relative error
/// 1.15e-9) refined by one Halley step against [`cdf`], so `cdf(inv_cdf(p)) ≈ p`
/// holds to the accuracy of `cdf`. Clamps p into [1e-300, 1 − 1e-16]. O(1).
pub(crate) fn inv_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let p = if p.is_nan() { 0.5 } else { p.clamp(1e-300, 1.0 - 1e-16) };
    let low = 0.02425;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step; skipped in the far tails where the density underflows.
    let e = cdf(x) - p;
    let u = e * (2.0 * PI).sqrt() * (x * x / 2.0).exp();
    let refined = x - u / (1.0 + x * u / 2.0);
    if refined.is_finite() { refined } else { x }
}

/// A draw from N(mu, sigma²) truncated to [low, high], by inverting the CDF at
/// `u` ∈ [0, 1). Returns a value inside [low, high] even when the interval lies
/// far in a tail (it then clamps). O(1).
pub(crate) fn truncated_from_unit(u: f64, mu: f64, sigma: f64, low: f64, high: f64) -> f64 {
    let a = cdf((low - mu) / sigma);
    let b = cdf((high - mu) / sigma);
    let x = mu + sigma * inv_cdf(a + u * (b - a));
    if x.is_finite() { x.clamp(low, high) } else { low + u * (high - low) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_matches_known_values() {
        for (x, expected) in [(0.0, 0.5), (1.0, 0.841_344_746), (-1.959_963_985, 0.025), (3.0, 0.998_650_102)] {
            assert!((cdf(x) - expected).abs() < 1e-7, "Φ({x}) = {} ≠ {expected}", cdf(x));
        }
    }

    #[test]
    fn inverse_inverts() {
        for p in [1e-10, 1e-4, 0.01, 0.3, 0.5, 0.77, 0.99, 1.0 - 1e-9] {
            let x = inv_cdf(p);
            assert!((cdf(x) - p).abs() < 1e-7 * p.max(1e-3), "Φ(Φ⁻¹({p})) = {}", cdf(x));
        }
    }

    #[test]
    fn mass_matches_the_difference_of_cdfs() {
        let mut zs: Vec<f64> = (-1000..=1000).map(|i| f64::from(i) * 0.05).collect();
        zs.extend([f64::NEG_INFINITY, f64::INFINITY, -1e300, 1e300, 1e-300]);
        for &a in &zs {
            for &b in &zs {
                let (got, want) = (mass(a, b), cdf(b) - cdf(a));
                assert!((got - want).abs() <= 1e-15, "Φ({b}) − Φ({a}): {got} vs {want}");
            }
        }
        assert_eq!(mass(-13.0, 13.0), 1.0);
        assert!(mass(f64::NAN, 1.0).is_nan());
    }

    #[test]
    fn exp_nonpositive_matches_the_library_exp() {
        let mut worst = 0.0f64;
        for i in 0..=700_000 {
            let x = -f64::from(i) * 1e-3 - f64::from(i % 7) * 1.3e-4;
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e9) > 0.0 && exp_nonpositive(-1e9) < 1e-300);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }

    #[test]
    fn truncated_draws_stay_inside() {
        for i in 0..100 {
            let u = f64::from(i) / 100.0;
            let x = truncated_from_unit(u, 50.0, 0.01, 0.0, 1.0);
            assert!((0.0..=1.0).contains(&x));
        }
    }
}
