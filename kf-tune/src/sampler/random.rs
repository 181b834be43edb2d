//! Random search: every parameter drawn independently from its prior.
//!
//! Cost per suggestion: O(d) for d parameters (O(1) per parameter: one uniform
//! draw through [`Param::from_unit`](crate::space::Param::from_unit)). The
//! history is ignored, so suggestions may repeat on small discrete spaces.

use rand::{Rng, RngExt};

use crate::Result;
use crate::sampler::{History, Sampler};
use crate::space::{Assignment, SearchSpace};

/// Random search (Katib `random`).
///
/// ```
/// use kf_tune::sampler::random::Random;
/// use kf_tune::space::{Distribution, Domain, Param, SearchSpace};
/// use kf_tune::{History, Sampler};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![Param::new(
///     "lr",
///     Domain::Double { low: 1e-4, high: 1e-1, step: None, distribution: Distribution::LogUniform },
/// )?])?;
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(7);
/// let batch = Random.suggest(&space, &History::default(), 4, &mut rng)?;
/// assert_eq!(batch.len(), 4);
/// assert!(batch.iter().all(|a| space.contains(a)));
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Random;

impl Sampler for Random {
    fn name(&self) -> &str {
        "random"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        _history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>> {
        Ok((0..count).map(|_| sample(space, rng)).collect())
    }
}

/// One draw from the prior of every parameter. O(d).
pub(crate) fn sample(space: &SearchSpace, rng: &mut dyn Rng) -> Assignment {
    space.params().iter().map(|p| p.from_unit(rng.random::<f64>())).collect()
}
