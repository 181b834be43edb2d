//! The [`Sampler`] trait and the trial history it reads.
//!
//! A sampler is a pure function of (search space, trial history, random
//! generator) → suggestions: it keeps no state between calls, so an
//! experiment resumes by handing the same history back, and every algorithm
//! can be unit-tested alone with a seeded generator. One module per algorithm;
//! each states its cost per suggestion. This module does not run trials or
//! collect metrics.

pub mod cmaes;
pub mod gp;
pub mod grid;
pub mod mtpe;
pub mod random;
pub mod sobol;
pub mod tpe;

use rand::Rng;

use crate::Result;
use crate::space::{Assignment, SearchSpace};

/// Whether the objective is minimised or maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Smaller is better (Katib `minimize`).
    #[default]
    Minimize,
    /// Larger is better (Katib `maximize`).
    Maximize,
}

impl Direction {
    /// The value as a loss: itself when minimising, negated when maximising.
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrialState {
    /// Suggested and not finished yet (running or queued).
    Pending,
    /// Finished with an objective value. A non-finite value is treated as a failure.
    Completed(f64),
    /// Failed, or finished without a usable metric.
    Failed,
}

/// One trial: the assignment it ran with and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The parameter values, in the space's order.
    pub assignment: Assignment,
    /// Where the trial stands.
    pub state: TrialState,
}

/// Everything a sampler may know: the trials so far and the objective's direction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Whether smaller or larger objective values are better.
    pub direction: Direction,
    /// Trials in the order they were suggested.
    pub trials: Vec<Trial>,
}

impl History {
    /// An empty history for `direction`.
    pub fn new(direction: Direction) -> Self {
        History { direction, trials: Vec::new() }
    }

    /// Appends a trial.
    pub fn push(&mut self, assignment: Assignment, state: TrialState) {
        self.trials.push(Trial { assignment, state });
    }

    /// Completed trials with a finite objective, as (assignment, loss) where a
    /// smaller loss is better whatever the direction.
    pub fn completed(&self) -> impl Iterator<Item = (&Assignment, f64)> {
        self.trials.iter().filter_map(|t| match t.state {
            TrialState::Completed(v) if v.is_finite() => Some((&t.assignment, self.direction.loss(v))),
            _ => None,
        })
    }

    /// Pending trials' assignments.
    pub fn pending(&self) -> impl Iterator<Item = &Assignment> {
        self.trials.iter().filter(|t| t.state == TrialState::Pending).map(|t| &t.assignment)
    }
}

/// A suggestion algorithm.
///
/// `suggest` returns up to `count` new assignments, each inside `space`. It must
/// be a pure function of its arguments: the same space, history and generator
/// state give the same suggestions. Suggestions of one call are meant to run
/// in parallel, so algorithms that can should not repeat themselves within a
/// call. Errors: the space does not suit the algorithm
/// ([`Error::Unsupported`](crate::Error::Unsupported)), or a finite algorithm has
/// nothing left ([`Error::Exhausted`](crate::Error::Exhausted)).
pub trait Sampler {
    /// The algorithm's Katib name, e.g. `tpe`.
    fn name(&self) -> &str;

    /// Up to `count` new assignments for `space` given `history`.
    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>>;
}
