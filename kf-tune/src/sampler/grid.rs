//! Grid search: every combination of parameter values, in a fixed order.
//!
//! The grid is the product of each parameter's values: stepped `double` and
//! `int` ranges ascending, `discrete` and `categorical` lists in the order
//! given; a `double` without a step has no grid and is rejected. Points are
//! enumerated lexicographically, the last parameter varying fastest, and a point
//! already in the history (in any state) is never suggested again, so the grid
//! knows when it is exhausted and resumes where it stopped.
//!
//! Cost per call: O(H·d) to index the history of H trials, then O(d) per grid
//! point scanned; when the history is the grid's own earlier suggestions that
//! is O((H + count)·d).

use std::collections::HashSet;

use rand::Rng;

use crate::sampler::{History, Sampler};
use crate::space::{Assignment, ParamValue, SearchSpace};
use crate::{Error, Result};

/// Grid search (Katib `grid`).
///
/// ```
/// use kf_tune::sampler::grid::Grid;
/// use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
/// use kf_tune::{History, Sampler, TrialState};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![
///     Param::new("layers", Domain::Int { low: 1, high: 2, step: 1, distribution: Distribution::Uniform })?,
///     Param::new("act", Domain::Categorical { choices: vec!["relu".into(), "tanh".into()] })?,
/// ])?;
/// assert_eq!(Grid::size(&space)?, 4);
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
/// let mut history = History::default();
/// let first = Grid.suggest(&space, &history, 3, &mut rng)?;
/// assert_eq!(first[1], vec![ParamValue::Int(1), ParamValue::Category(1)]);
/// for a in first {
///     history.push(a, TrialState::Completed(1.0));
/// }
/// assert_eq!(Grid.suggest(&space, &history, 3, &mut rng)?.len(), 1); // one point left
/// history.push(vec![ParamValue::Int(2), ParamValue::Category(1)], TrialState::Pending);
/// assert!(Grid.suggest(&space, &history, 1, &mut rng).is_err()); // exhausted
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Grid;

impl Grid {
    /// Number of grid points, or an error naming a parameter without a grid. O(d).
    pub fn size(space: &SearchSpace) -> Result<u128> {
        let mut total: u128 = 1;
        for n in cardinalities(space)? {
            total = total.saturating_mul(u128::from(n));
        }
        Ok(total)
    }

    /// The grid point at position `index` of the enumeration order, if any. O(d).
    pub fn point(space: &SearchSpace, index: u128) -> Result<Option<Assignment>> {
        let sizes = cardinalities(space)?;
        Ok(decode(space, &sizes, index))
    }
}

fn cardinalities(space: &SearchSpace) -> Result<Vec<u64>> {
    space
        .params()
        .iter()
        .map(|p| {
            p.cardinality().ok_or_else(|| Error::Unsupported {
                algorithm: "grid".into(),
                message: format!(
                    "parameter {:?} is a continuous range; give it a step to search it on a grid",
                    p.name()
                ),
            })
        })
        .collect()
}

fn decode(space: &SearchSpace, sizes: &[u64], mut index: u128) -> Option<Assignment> {
    let mut values = vec![ParamValue::Int(0); sizes.len()];
    for (i, &n) in sizes.iter().enumerate().rev() {
        let n = u128::from(n);
        values[i] = space.params()[i].nth((index % n) as u64)?;
        index /= n;
    }
    (index == 0).then_some(values)
}

/// A hashable identity of an assignment: the exact bits of each value.
pub(crate) fn key(assignment: &[ParamValue]) -> Vec<u64> {
    assignment
        .iter()
        .map(|v| match v {
            ParamValue::Float(x) => (x + 0.0).to_bits(), // + 0.0 folds -0.0 into 0.0
            ParamValue::Int(x) => *x as u64,
            ParamValue::Category(i) => *i as u64,
        })
        .collect()
}

impl Sampler for Grid {
    fn name(&self) -> &str {
        "grid"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        _rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>> {
        let sizes = cardinalities(space)?;
        let total = sizes.iter().fold(1u128, |acc, &n| acc.saturating_mul(u128::from(n)));
        let mut seen: HashSet<Vec<u64>> = history.trials.iter().map(|t| key(&t.assignment)).collect();
        let mut out = Vec::with_capacity(count.min(1024));
        let mut index = 0u128;
        while out.len() < count && index < total {
            if let Some(point) = decode(space, &sizes, index)
                && seen.insert(key(&point))
            {
                out.push(point);
            }
            index += 1;
        }
        if out.is_empty() && count > 0 {
            return Err(Error::Exhausted { algorithm: "grid".into() });
        }
        Ok(out)
    }
}
