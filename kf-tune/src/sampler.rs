//! The [`Sampler`] trait and the trial history it reads.
//!
//! A sampler is a pure function of (search space, trial history, random
//! generator) → suggestions: it keeps no state between calls, so an
//! experiment resumes by handing the same history back, and every algorithm
//! can be unit-tested alone with a seeded generator. One module per algorithm;
//! each states its cost per suggestion. This module does not run trials or
//! collect metrics.

pub mod asha;
pub mod cmaes;
pub mod gp;
pub mod grid;
pub mod hyperband;
pub mod mtpe;
pub mod nsga2;
pub mod pbt;
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
    /// The resource the trial was given (multi-fidelity algorithms), when its
    /// suggestion carried one.
    pub budget: Option<f64>,
    /// History index of the trial whose checkpoint it started from (PBT).
    pub parent: Option<usize>,
    /// Every objective's value, in the order of [`History::directions`], when
    /// the trial completed in a multi-objective search; empty otherwise
    /// (`state` then holds the first objective).
    pub values: Vec<f64>,
}

/// A suggestion with what multi-fidelity and population algorithms add to a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The parameter values, in the space's order.
    pub assignment: Assignment,
    /// The resource to train the trial to (Hyperband, ASHA), if the algorithm sets one.
    pub budget: Option<f64>,
    /// History index of the trial whose checkpoint to start from (PBT).
    pub parent: Option<usize>,
}

impl From<Assignment> for Suggestion {
    fn from(assignment: Assignment) -> Self {
        Suggestion { assignment, budget: None, parent: None }
    }
}

/// Why a sampler returned fewer suggestions than asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// It will never suggest another trial (grid done, Hyperband's brackets run).
    Exhausted,
    /// It needs results of pending trials first (a Hyperband rung, a PBT generation).
    Waiting,
}

/// Everything a sampler may know: the trials so far and the objective's direction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Whether smaller or larger objective values are better (the first objective's).
    pub direction: Direction,
    /// Trials in the order they were suggested.
    pub trials: Vec<Trial>,
    /// Every objective's direction in a multi-objective search; empty for one objective.
    pub directions: Vec<Direction>,
}

impl History {
    /// An empty history for `direction`.
    pub fn new(direction: Direction) -> Self {
        History { direction, trials: Vec::new(), directions: Vec::new() }
    }

    /// An empty history for several objectives (the first sets `direction`).
    pub fn multi(directions: Vec<Direction>) -> Self {
        History { direction: directions.first().copied().unwrap_or_default(), trials: Vec::new(), directions }
    }

    /// Appends a trial.
    pub fn push(&mut self, assignment: Assignment, state: TrialState) {
        self.push_suggestion(assignment.into(), state);
    }

    /// Appends a trial with the budget and parent its suggestion carried.
    pub fn push_suggestion(&mut self, suggestion: Suggestion, state: TrialState) {
        let Suggestion { assignment, budget, parent } = suggestion;
        self.trials.push(Trial { assignment, state, budget, parent, values: Vec::new() });
    }

    /// Appends a completed trial of a multi-objective search: `values` holds
    /// one value per objective; the state holds the first.
    pub fn push_values(&mut self, assignment: Assignment, values: Vec<f64>) {
        let state = values.first().map_or(TrialState::Failed, |&v| TrialState::Completed(v));
        self.push(assignment, state);
        if let Some(t) = self.trials.last_mut() {
            t.values = values;
        }
    }

    /// The objectives' directions: [`History::directions`], or the one `direction`.
    pub fn objective_directions(&self) -> Vec<Direction> {
        if self.directions.is_empty() { vec![self.direction] } else { self.directions.clone() }
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

    /// As [`Sampler::suggest`], with each suggestion's budget (multi-fidelity
    /// algorithms) and parent trial (PBT). The default adds neither; an
    /// algorithm that sets them overrides this, and drivers that can deliver
    /// budgets and checkpoints call it instead of `suggest`.
    fn suggest_detailed(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Suggestion>> {
        Ok(self.suggest(space, history, count, rng)?.into_iter().map(Suggestion::from).collect())
    }

    /// Why a call returned fewer suggestions than asked, given the history
    /// with that call's suggestions added as pending. The default, for
    /// algorithms that only fall short when they are finished, is
    /// [`Shortfall::Exhausted`].
    fn shortfall(&self, _space: &SearchSpace, _history: &History) -> Shortfall {
        Shortfall::Exhausted
    }
}
