//! Quasi-random search on the Sobol low-discrepancy sequence.
//!
//! Points of the sequence cover [0, 1)^d far more evenly than random draws;
//! each coordinate is mapped to its parameter through the prior's inverse CDF
//! ([`Param::from_unit`](crate::space::Param::from_unit)). The sampler is a pure
//! function of the history's length: trial `i` (in any state) used point `i`,
//! so the next suggestions are points `H, H + 1, …` and a resumed experiment
//! continues the sequence.
//!
//! Construction: Bratley & Fox, "Algorithm 659: Implementing Sobol's
//! quasirandom sequence generator", ACM TOMS 14(1), 1988, with the primitive
//! polynomials and initial direction numbers of S. Joe and F. Y. Kuo,
//! "Constructing Sobol sequences with better two-dimensional projections",
//! SIAM J. Sci. Comput. 30(5), 2008 (the `new-joe-kuo-6.21201` table, first 128
//! dimensions; dimension 1 is the van der Corput sequence). Points are taken in
//! natural order (index bits, not Gray code), which visits the same set in every
//! prefix of length 2^k. An optional random digital shift (XOR of each
//! coordinate with a seeded 32-bit word) keeps every balance property of the
//! sequence while moving its first point away from the corner.
//!
//! Cost per suggestion: O(d · log₂ i) word operations for point i in d
//! dimensions, plus O(32 · d · s) once per call to build the direction numbers
//! (s ≤ 10 the polynomial degree).

use rand::{Rng, SeedableRng};

use crate::sampler::{History, Sampler};
use crate::space::{Assignment, SearchSpace};
use crate::{Error, Result};

/// Joe–Kuo rows for dimensions 2…128: (degree s, inner coefficients a, m_1…m_s).
const JOE_KUO: &[(u32, u32, &[u32])] = &[
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
    (6, 1, &[1, 3, 3, 9, 7, 49]),
    (6, 13, &[1, 1, 1, 15, 21, 21]),
    (6, 16, &[1, 3, 1, 13, 27, 49]),
    (6, 19, &[1, 1, 1, 15, 7, 5]),
    (6, 22, &[1, 3, 1, 15, 13, 25]),
    (6, 25, &[1, 1, 5, 5, 19, 61]),
    (7, 1, &[1, 3, 7, 11, 23, 15, 103]),
    (7, 4, &[1, 3, 7, 13, 13, 15, 69]),
    (7, 7, &[1, 1, 3, 13, 7, 35, 63]),
    (7, 8, &[1, 3, 5, 9, 1, 25, 53]),
    (7, 14, &[1, 3, 1, 13, 9, 35, 107]),
    (7, 19, &[1, 3, 1, 5, 27, 61, 31]),
    (7, 21, &[1, 1, 5, 11, 19, 41, 61]),
    (7, 28, &[1, 3, 5, 3, 3, 13, 69]),
    (7, 31, &[1, 1, 7, 13, 1, 19, 1]),
    (7, 32, &[1, 3, 7, 5, 13, 19, 59]),
    (7, 37, &[1, 1, 3, 9, 25, 29, 41]),
    (7, 41, &[1, 3, 5, 13, 23, 1, 55]),
    (7, 42, &[1, 3, 7, 3, 13, 59, 17]),
    (7, 50, &[1, 3, 1, 3, 5, 53, 69]),
    (7, 55, &[1, 1, 5, 5, 23, 33, 13]),
    (7, 56, &[1, 1, 7, 7, 1, 61, 123]),
    (7, 59, &[1, 1, 7, 9, 13, 61, 49]),
    (7, 62, &[1, 3, 3, 5, 3, 55, 33]),
    (8, 14, &[1, 3, 1, 15, 31, 13, 49, 245]),
    (8, 21, &[1, 3, 5, 15, 31, 59, 63, 97]),
    (8, 22, &[1, 3, 1, 11, 11, 11, 77, 249]),
    (8, 38, &[1, 3, 1, 11, 27, 43, 71, 9]),
    (8, 47, &[1, 1, 7, 15, 21, 11, 81, 45]),
    (8, 49, &[1, 3, 7, 3, 25, 31, 65, 79]),
    (8, 50, &[1, 3, 1, 1, 19, 11, 3, 205]),
    (8, 52, &[1, 1, 5, 9, 19, 21, 29, 157]),
    (8, 56, &[1, 3, 7, 11, 1, 33, 89, 185]),
    (8, 67, &[1, 3, 3, 3, 15, 9, 79, 71]),
    (8, 70, &[1, 3, 7, 11, 15, 39, 119, 27]),
    (8, 84, &[1, 1, 3, 1, 11, 31, 97, 225]),
    (8, 97, &[1, 1, 1, 3, 23, 43, 57, 177]),
    (8, 103, &[1, 3, 7, 7, 17, 17, 37, 71]),
    (8, 115, &[1, 3, 1, 5, 27, 63, 123, 213]),
    (8, 122, &[1, 1, 3, 5, 11, 43, 53, 133]),
    (9, 8, &[1, 3, 5, 5, 29, 17, 47, 173, 479]),
    (9, 13, &[1, 3, 3, 11, 3, 1, 109, 9, 69]),
    (9, 16, &[1, 1, 1, 5, 17, 39, 23, 5, 343]),
    (9, 22, &[1, 3, 1, 5, 25, 15, 31, 103, 499]),
    (9, 25, &[1, 1, 1, 11, 11, 17, 63, 105, 183]),
    (9, 44, &[1, 1, 5, 11, 9, 29, 97, 231, 363]),
    (9, 47, &[1, 1, 5, 15, 19, 45, 41, 7, 383]),
    (9, 52, &[1, 3, 7, 7, 31, 19, 83, 137, 221]),
    (9, 55, &[1, 1, 1, 3, 23, 15, 111, 223, 83]),
    (9, 59, &[1, 1, 5, 13, 31, 15, 55, 25, 161]),
    (9, 62, &[1, 1, 3, 13, 25, 47, 39, 87, 257]),
    (9, 67, &[1, 1, 1, 11, 21, 53, 125, 249, 293]),
    (9, 74, &[1, 1, 7, 11, 11, 7, 57, 79, 323]),
    (9, 81, &[1, 1, 5, 5, 17, 13, 81, 3, 131]),
    (9, 82, &[1, 1, 7, 13, 23, 7, 65, 251, 475]),
    (9, 87, &[1, 3, 5, 1, 9, 43, 3, 149, 11]),
    (9, 91, &[1, 1, 3, 13, 31, 13, 13, 255, 487]),
    (9, 94, &[1, 3, 3, 1, 5, 63, 89, 91, 127]),
    (9, 103, &[1, 1, 3, 3, 1, 19, 123, 127, 237]),
    (9, 104, &[1, 1, 5, 7, 23, 31, 37, 243, 289]),
    (9, 109, &[1, 1, 5, 11, 17, 53, 117, 183, 491]),
    (9, 122, &[1, 1, 1, 5, 1, 13, 13, 209, 345]),
    (9, 124, &[1, 1, 3, 15, 1, 57, 115, 7, 33]),
    (9, 137, &[1, 3, 1, 11, 7, 43, 81, 207, 175]),
    (9, 138, &[1, 3, 1, 1, 15, 27, 63, 255, 49]),
    (9, 143, &[1, 3, 5, 3, 27, 61, 105, 171, 305]),
    (9, 145, &[1, 1, 5, 3, 1, 3, 57, 249, 149]),
    (9, 152, &[1, 1, 3, 5, 5, 57, 15, 13, 159]),
    (9, 157, &[1, 1, 1, 11, 7, 11, 105, 141, 225]),
    (9, 167, &[1, 3, 3, 5, 27, 59, 121, 101, 271]),
    (9, 173, &[1, 3, 5, 9, 11, 49, 51, 59, 115]),
    (9, 176, &[1, 1, 7, 1, 23, 45, 125, 71, 419]),
    (9, 181, &[1, 1, 3, 5, 23, 5, 105, 109, 75]),
    (9, 182, &[1, 1, 7, 15, 7, 11, 67, 121, 453]),
    (9, 185, &[1, 3, 7, 3, 9, 13, 31, 27, 449]),
    (9, 191, &[1, 3, 1, 15, 19, 39, 39, 89, 15]),
    (9, 194, &[1, 1, 1, 1, 1, 33, 73, 145, 379]),
    (9, 199, &[1, 3, 1, 15, 15, 43, 29, 13, 483]),
    (9, 218, &[1, 1, 7, 3, 19, 27, 85, 131, 431]),
    (9, 220, &[1, 3, 3, 3, 5, 35, 23, 195, 349]),
    (9, 227, &[1, 3, 3, 7, 9, 27, 39, 59, 297]),
    (9, 229, &[1, 1, 3, 9, 11, 17, 13, 241, 157]),
    (9, 230, &[1, 3, 7, 15, 25, 57, 33, 189, 213]),
    (9, 234, &[1, 1, 7, 1, 9, 55, 73, 83, 217]),
    (9, 236, &[1, 3, 3, 13, 19, 27, 23, 113, 249]),
    (9, 241, &[1, 3, 5, 3, 23, 43, 3, 253, 479]),
    (9, 244, &[1, 1, 5, 5, 11, 5, 45, 117, 217]),
    (9, 253, &[1, 3, 3, 7, 29, 37, 33, 123, 147]),
    (10, 4, &[1, 3, 1, 15, 5, 5, 37, 227, 223, 459]),
    (10, 13, &[1, 1, 7, 5, 5, 39, 63, 255, 135, 487]),
    (10, 19, &[1, 3, 1, 7, 9, 7, 87, 249, 217, 599]),
    (10, 22, &[1, 1, 3, 13, 9, 47, 7, 225, 363, 247]),
    (10, 50, &[1, 3, 7, 13, 19, 13, 9, 67, 9, 737]),
    (10, 55, &[1, 3, 5, 5, 19, 59, 7, 41, 319, 677]),
    (10, 64, &[1, 1, 5, 3, 31, 63, 15, 43, 207, 789]),
    (10, 69, &[1, 1, 7, 9, 13, 39, 3, 47, 497, 169]),
    (10, 98, &[1, 3, 1, 7, 21, 17, 97, 19, 415, 905]),
    (10, 107, &[1, 3, 7, 1, 3, 31, 71, 111, 165, 127]),
    (10, 115, &[1, 1, 5, 11, 1, 61, 83, 119, 203, 847]),
    (10, 121, &[1, 3, 3, 13, 9, 61, 19, 97, 47, 35]),
    (10, 127, &[1, 1, 7, 7, 15, 29, 63, 95, 417, 469]),
    (10, 134, &[1, 3, 1, 9, 25, 9, 71, 57, 213, 385]),
    (10, 140, &[1, 3, 5, 13, 31, 47, 101, 57, 39, 341]),
    (10, 145, &[1, 1, 3, 3, 31, 57, 125, 173, 365, 551]),
    (10, 152, &[1, 3, 7, 1, 13, 57, 67, 157, 451, 707]),
    (10, 158, &[1, 1, 1, 7, 21, 13, 105, 89, 429, 965]),
    (10, 161, &[1, 1, 5, 9, 17, 51, 45, 119, 157, 141]),
    (10, 171, &[1, 3, 7, 7, 13, 45, 91, 9, 129, 741]),
    (10, 181, &[1, 3, 7, 1, 23, 57, 67, 141, 151, 571]),
    (10, 194, &[1, 1, 3, 11, 17, 47, 93, 107, 375, 157]),
    (10, 199, &[1, 3, 3, 5, 11, 21, 43, 51, 169, 915]),
    (10, 203, &[1, 1, 5, 3, 15, 55, 101, 67, 455, 625]),
    (10, 208, &[1, 3, 5, 9, 1, 23, 29, 47, 345, 595]),
    (10, 227, &[1, 3, 7, 7, 5, 49, 29, 155, 323, 589]),
    (10, 242, &[1, 3, 3, 7, 5, 41, 127, 61, 261, 717]),
];

/// Number of dimensions the embedded direction numbers cover.
pub const MAX_DIMENSIONS: usize = JOE_KUO.len() + 1;

/// Bits per coordinate; the sequence has 2^32 points.
const BITS: usize = 32;

/// The first `dims` dimensions of the Sobol sequence.
///
/// ```
/// use kf_tune::sampler::sobol::SobolSequence;
///
/// let seq = SobolSequence::new(2)?;
/// assert_eq!(seq.point(0), vec![0.0, 0.0]);
/// assert_eq!(seq.point(1), vec![0.5, 0.5]);
/// assert_eq!(seq.point(2), vec![0.25, 0.75]);
/// assert_eq!(seq.point(3), vec![0.75, 0.25]);
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SobolSequence {
    /// `directions[d][j]`: direction number j of dimension d, as a 32-bit binary fraction.
    directions: Vec<[u32; BITS]>,
    /// Per-dimension XOR applied to every point (all zero when unscrambled).
    shift: Vec<u32>,
}

impl SobolSequence {
    /// The unscrambled sequence in `dims` dimensions (1 ≤ dims ≤ [`MAX_DIMENSIONS`]). O(32 · d · s).
    pub fn new(dims: usize) -> Result<Self> {
        if dims == 0 || dims > MAX_DIMENSIONS {
            return Err(Error::Unsupported {
                algorithm: "sobol".into(),
                message: format!("the sequence has 1 to {MAX_DIMENSIONS} dimensions, {dims} were asked for"),
            });
        }
        let mut directions = Vec::with_capacity(dims);
        let mut first = [0u32; BITS];
        for (j, v) in first.iter_mut().enumerate() {
            *v = 1 << (31 - j);
        }
        directions.push(first);
        for &(s, a, m) in JOE_KUO.iter().take(dims - 1) {
            let s = s as usize;
            let mut v = [0u32; BITS];
            for j in 0..BITS {
                if j < s {
                    v[j] = m[j] << (31 - j);
                    continue;
                }
                // v_j = a_1 v_{j-1} ⊕ … ⊕ a_{s-1} v_{j-s+1} ⊕ v_{j-s} ⊕ (v_{j-s} >> s)
                let mut x = v[j - s] ^ (v[j - s] >> s);
                for k in 1..s {
                    if (a >> (s - 1 - k)) & 1 == 1 {
                        x ^= v[j - k];
                    }
                }
                v[j] = x;
            }
            directions.push(v);
        }
        Ok(SobolSequence { directions, shift: vec![0; dims] })
    }

    /// The same sequence with a random digital shift drawn from `seed`.
    pub fn scrambled(dims: usize, seed: u64) -> Result<Self> {
        let mut seq = Self::new(dims)?;
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
        for s in &mut seq.shift {
            *s = rng.next_u32();
        }
        Ok(seq)
    }

    /// Number of dimensions.
    pub fn dims(&self) -> usize {
        self.directions.len()
    }

    /// Point `index` as 32-bit binary fractions. O(d · log₂ index).
    pub fn point_bits(&self, index: u32) -> Vec<u32> {
        self.directions
            .iter()
            .zip(&self.shift)
            .map(|(v, shift)| {
                let mut x = 0u32;
                let mut i = index;
                let mut j = 0;
                while i != 0 {
                    if i & 1 == 1 {
                        x ^= v[j];
                    }
                    i >>= 1;
                    j += 1;
                }
                x ^ shift
            })
            .collect()
    }

    /// Point `index` in [0, 1)^d. O(d · log₂ index).
    pub fn point(&self, index: u32) -> Vec<f64> {
        self.point_bits(index).into_iter().map(|x| f64::from(x) / 4_294_967_296.0).collect()
    }
}

/// Quasi-random search (Katib `sobol`).
///
/// ```
/// use kf_tune::sampler::sobol::Sobol;
/// use kf_tune::space::{Distribution, Domain, Param, SearchSpace};
/// use kf_tune::{History, Sampler, TrialState};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![
///     Param::new("x", Domain::Double { low: 0.0, high: 1.0, step: None, distribution: Distribution::Uniform })?,
///     Param::new("y", Domain::Double { low: -1.0, high: 1.0, step: None, distribution: Distribution::Uniform })?,
/// ])?;
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
/// let mut history = History::default();
/// for a in Sobol::default().suggest(&space, &history, 2, &mut rng)? {
///     history.push(a, TrialState::Pending);
/// }
/// let next = Sobol::default().suggest(&space, &history, 1, &mut rng)?;
/// assert_eq!(next[0], space.from_unit(&[0.25, 0.75])); // the third point of the sequence
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Sobol {
    /// Seed of the digital shift; `None` for the plain sequence.
    pub scramble_seed: Option<u64>,
}

impl Sampler for Sobol {
    fn name(&self) -> &str {
        "sobol"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        _rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>> {
        let seq = match self.scramble_seed {
            Some(seed) => SobolSequence::scrambled(space.len(), seed)?,
            None => SobolSequence::new(space.len())?,
        };
        let start = history.trials.len();
        (start..start.saturating_add(count))
            .map(|i| {
                let index = u32::try_from(i).map_err(|_| Error::Exhausted { algorithm: "sobol".into() })?;
                Ok(space.from_unit(&seq.point(index)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether x^s + a_1 x^{s-1} + … + a_{s-1} x + 1 is primitive over GF(2):
    /// x has multiplicative order exactly 2^s − 1 modulo the polynomial.
    fn is_primitive(s: u32, a: u32) -> bool {
        let poly = (1u64 << s) | (u64::from(a) << 1) | 1;
        let mulmod = |mut x: u64, mut y: u64| {
            let mut r = 0;
            while y != 0 {
                if y & 1 == 1 {
                    r ^= x;
                }
                y >>= 1;
                x <<= 1;
                if (x >> s) & 1 == 1 {
                    x ^= poly;
                }
            }
            r
        };
        let pow = |mut e: u64| {
            let (mut r, mut b) = (1u64, if s == 1 { 1 } else { 2 });
            while e != 0 {
                if e & 1 == 1 {
                    r = mulmod(r, b);
                }
                b = mulmod(b, b);
                e >>= 1;
            }
            r
        };
        let order = (1u64 << s) - 1;
        let mut n = order;
        let mut factors = vec![];
        let mut d = 2;
        while d * d <= n {
            while n.is_multiple_of(d) {
                factors.push(d);
                n /= d;
            }
            d += 1;
        }
        if n > 1 {
            factors.push(n);
        }
        pow(order) == 1 && factors.iter().all(|p| pow(order / p) != 1)
    }

    #[test]
    fn table_rows_are_primitive_polynomials_with_valid_initial_numbers() {
        for (row, &(s, a, m)) in JOE_KUO.iter().enumerate() {
            assert_eq!(m.len(), s as usize, "row {row}");
            assert!(is_primitive(s, a), "row {row}: s={s} a={a} is not primitive");
            for (i, &mi) in m.iter().enumerate() {
                assert!(mi % 2 == 1 && mi < 1 << (i + 1), "row {row}: m_{} = {mi}", i + 1);
            }
        }
        assert_eq!(MAX_DIMENSIONS, 128);
    }

    #[test]
    fn matches_published_points() {
        // Third dimension (s = 2, a = 1, m = 1 3): v1 = 1/2, v2 = 3/4 and
        // v3 = v1 ⊕ (v1 >> 2) ⊕ v2 = 3/8; point i XORs v_j for the bits of i.
        // (SciPy lists the same set in Gray-code order: 0, .5, .25, .75, .625, .125, .875, .375.)
        let seq = SobolSequence::new(3).expect("3 dims");
        let third: Vec<f64> = (0..8).map(|i| seq.point(i)[2]).collect();
        assert_eq!(third, [0.0, 0.5, 0.75, 0.25, 0.375, 0.875, 0.625, 0.125]);
    }

    #[test]
    fn too_many_dimensions_are_rejected() {
        assert!(SobolSequence::new(MAX_DIMENSIONS).is_ok());
        let err = SobolSequence::new(MAX_DIMENSIONS + 1).unwrap_err().to_string();
        assert!(err.contains("1 to 128 dimensions, 129"), "{err}");
    }
}
