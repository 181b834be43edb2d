//! Hyperband (Katib `hyperband`): successive halving over brackets of budgets.
//!
//! Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
//! Optimization" (JMLR 2018). With maximum resource R, minimum resource r and
//! reduction factor η, s_max = ⌊log_η(R/r)⌋; bracket s (from s_max down to 0)
//! starts n = ⌈(s_max + 1)·η^s / (s + 1)⌉ random configurations at budget
//! R·η^(−s), and its rung i keeps the best ⌊n·η^(−i)⌋ of rung i − 1 at budget
//! R·η^(i−s). For R = 81, η = 3 the first bracket runs 81, 27, 9, 3 and 1
//! trials at budgets 1, 3, 9, 27 and 81.
//!
//! The budget reaches the trial two ways: in [`Suggestion::budget`], and —
//! when `resource_name` names an `int` or `double` parameter, as Katib
//! does — as that parameter's value (rounded to its grid; r then defaults to
//! the parameter's minimum when positive, R to its maximum). A promoted trial
//! repeats its configuration at the larger budget (and names it as parent,
//! so a driver may resume from its checkpoint).
//!
//! **No state is kept.** The schedule is a fixed sequence of slots; trial k
//! of the history fills slot k, so the history must hold this sampler's
//! suggestions in order. A rung's promotions need every trial of the rung
//! before it to have finished: until then, suggestions stop short and
//! [`Sampler::shortfall`] says [`Shortfall::Waiting`]. Failed trials are
//! never promoted (a rung keeps fewer if too few completed). After the last
//! bracket the sampler is exhausted.
//!
//! Where this differs from Katib's `hyperband` service: rung sizes round
//! down as in the paper (Katib rounds up, so its brackets are not the
//! paper's); r is the resource parameter's minimum when positive (Katib
//! always uses 1, which can fall below the parameter's range); `r_l` and
//! `resource_name` have defaults (Katib requires both) and
//! `parallelTrialCount` is not required to hold a whole rung (a short batch
//! waits instead).
//!
//! Cost per suggestion: O(n log n + d) for n trials in the history (one pass
//! over the slots, one sort per rung) and d parameters.

use rand::Rng;

use crate::sampler::random;
use crate::sampler::{History, Sampler, Shortfall, Suggestion, TrialState};
use crate::space::{Assignment, Domain, ParamValue, SearchSpace};
use crate::{Error, Result};

/// Hyperband over a resource (Katib `hyperband`).
///
/// ```
/// use kf_tune::sampler::hyperband::Hyperband;
/// use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
/// use kf_tune::{Direction, History, Sampler, Shortfall, TrialState};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![
///     Param::new("lr", Domain::Double { low: 1e-4, high: 1.0, step: None, distribution: Distribution::LogUniform })?,
///     Param::new("epochs", Domain::Int { low: 1, high: 9, step: 1, distribution: Distribution::Uniform })?,
/// ])?;
/// let hb = Hyperband { resource_name: Some("epochs".into()), ..Hyperband::default() };
/// assert_eq!(hb.brackets(&space)?[0], vec![(9, 1.0), (3, 3.0), (1, 9.0)]);
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
/// let mut history = History::new(Direction::Minimize);
/// let first = hb.suggest_detailed(&space, &history, 20, &mut rng)?;
/// assert_eq!(first.len(), 9); // the first rung, then it waits for results
/// assert!(first.iter().all(|s| s.assignment[1] == ParamValue::Int(1) && s.budget == Some(1.0)));
/// for s in first {
///     history.push_suggestion(s, TrialState::Pending);
/// }
/// assert_eq!(hb.shortfall(&space, &history), Shortfall::Waiting);
/// for (i, t) in history.trials.iter_mut().enumerate() {
///     t.state = TrialState::Completed(i as f64);
/// }
/// let promoted = hb.suggest_detailed(&space, &history, 20, &mut rng)?;
/// assert_eq!(promoted.iter().map(|s| s.parent).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);
/// assert!(promoted.iter().all(|s| s.assignment[1] == ParamValue::Int(3)));
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperband {
    /// The parameter that carries the budget, if any (Katib `resource_name`).
    pub resource_name: Option<String>,
    /// Reduction factor η > 1 (Katib `eta`, default 3).
    pub eta: f64,
    /// Maximum resource R (Katib `r_l`); default the resource parameter's maximum, else 81.
    pub r_l: Option<f64>,
}

impl Default for Hyperband {
    fn default() -> Self {
        Hyperband { resource_name: None, eta: 3.0, r_l: None }
    }
}

/// Where budgets go and what range they span; shared with ASHA.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resource {
    /// Index of the resource parameter, if budgets are written into one.
    pub index: Option<usize>,
    /// Smallest budget r.
    pub min: f64,
    /// Largest budget R.
    pub max: f64,
}

/// Checks η and finds the resource parameter and the budget range.
pub(crate) fn resource(
    algorithm: &str,
    space: &SearchSpace,
    name: Option<&str>,
    eta: f64,
    r_l: Option<f64>,
) -> Result<Resource> {
    let fail = |setting: &str, message: String| Error::InvalidSetting {
        algorithm: algorithm.into(),
        setting: setting.into(),
        message,
    };
    check(algorithm, eta, r_l)?;
    let Some(name) = name else {
        return Ok(Resource { index: None, min: 1.0, max: r_l.unwrap_or(81.0).max(1.0) });
    };
    let Some(index) = space.index_of(name) else {
        let names: Vec<&str> = space.params().iter().map(|p| p.name()).collect();
        return Err(fail("resource_name", format!("no parameter named {name:?}; the space has {}", names.join(", "))));
    };
    let (low, high) = match space.params()[index].domain() {
        Domain::Int { low, high, .. } => (*low as f64, *high as f64),
        Domain::Double { low, high, .. } => (*low, *high),
        _ => return Err(fail("resource_name", format!("parameter {name:?} must be an int or double range"))),
    };
    let max = r_l.unwrap_or(high);
    if max > high || max <= 0.0 {
        return Err(fail("r_l", format!("expected a value in (0, {high}] (the range of {name:?}), found {max}")));
    }
    let min = if low > 0.0 { low.min(max) } else { max.min(1.0) };
    Ok(Resource { index: Some(index), min, max })
}

/// Checks the settings that do not depend on the space: η > 1, R > 0.
pub(crate) fn check(algorithm: &str, eta: f64, r_l: Option<f64>) -> Result<()> {
    let fail = |setting: &str, message: String| {
        Err(Error::InvalidSetting { algorithm: algorithm.into(), setting: setting.into(), message })
    };
    if !(eta.is_finite() && eta > 1.0) {
        return fail("eta", format!("expected a number > 1, found {eta}"));
    }
    if let Some(r) = r_l
        && !(r.is_finite() && r > 0.0)
    {
        return fail("r_l", format!("expected a positive number, found {r}"));
    }
    Ok(())
}

/// ⌊log_η(R/r)⌋, with a tolerance so that 81/1 at η = 3 gives 4.
pub(crate) fn s_max(resource: &Resource, eta: f64) -> usize {
    let s = ((resource.max / resource.min).ln() / eta.ln() + 1e-9).floor();
    if s.is_finite() && s > 0.0 { (s as usize).min(64) } else { 0 }
}

/// `assignment` with the resource parameter set to `budget` (rounded to the
/// parameter's grid and kept in range); returns the budget actually set.
pub(crate) fn with_budget(space: &SearchSpace, resource: &Resource, assignment: &mut Assignment, budget: f64) -> f64 {
    let Some(index) = resource.index else {
        return budget;
    };
    let param = &space.params()[index];
    let value = match param.domain() {
        Domain::Int { low, high, step, .. } => {
            let k = ((budget - *low as f64) / *step as f64).round().max(0.0) as i64;
            let last = (high - low) / step;
            ParamValue::Int(low + k.min(last) * step)
        }
        Domain::Double { low, high, step: None, .. } => ParamValue::Float(budget.clamp(*low, *high)),
        Domain::Double { low, step: Some(step), .. } => {
            let n = param.cardinality().unwrap_or(1).max(1);
            let k = ((budget - low) / step).round().max(0.0) as u64;
            param.nth(k.min(n - 1)).unwrap_or(ParamValue::Float(*low))
        }
        _ => return budget,
    };
    let set = match value {
        ParamValue::Int(v) => v as f64,
        ParamValue::Float(v) => v,
        ParamValue::Category(_) => budget,
    };
    if let Some(slot) = assignment.get_mut(index) {
        *slot = value;
    }
    set
}

/// What the schedule does next.
enum Next {
    /// Fill a slot at `budget`, promoting the history trial `promote` (or a new configuration).
    Slot {
        budget: f64,
        promote: Option<usize>,
    },
    Waiting,
    Exhausted,
}

impl Hyperband {
    /// Checks the settings that do not depend on the space: `eta` > 1, `r_l` > 0.
    /// The resource parameter is checked against the space at every suggestion.
    pub fn validate(&self) -> Result<()> {
        check("hyperband", self.eta, self.r_l)
    }

    fn resource(&self, space: &SearchSpace) -> Result<Resource> {
        resource("hyperband", space, self.resource_name.as_deref(), self.eta, self.r_l)
    }

    /// The brackets for `space`, most exploratory first: each a list of rungs
    /// (trials, raw budget). O(s_max²).
    pub fn brackets(&self, space: &SearchSpace) -> Result<Vec<Vec<(usize, f64)>>> {
        let resource = self.resource(space)?;
        let s_max = s_max(&resource, self.eta);
        let (eta, big_r) = (self.eta, resource.max);
        Ok((0..=s_max)
            .rev()
            .map(|s| {
                let n = ((s_max as f64 + 1.0) / (s as f64 + 1.0) * eta.powi(s as i32) - 1e-9).ceil();
                let r = big_r * eta.powi(-(s as i32));
                (0..=s)
                    .map(|i| {
                        let n_i = (n * eta.powi(-(i as i32)) + 1e-9).floor().max(1.0) as usize;
                        (n_i, r * eta.powi(i as i32))
                    })
                    .collect()
            })
            .collect())
    }

    fn next(brackets: &[Vec<(usize, f64)>], history: &History) -> Next {
        let trials = &history.trials;
        let mut cursor = 0usize;
        for rungs in brackets {
            let mut previous: Option<std::ops::Range<usize>> = None;
            for &(n_i, budget) in rungs {
                let (size, ranked) = match previous.clone() {
                    None => (n_i, Vec::new()),
                    Some(range) => {
                        let rung = &trials[range.start.min(trials.len())..range.end.min(trials.len())];
                        let unfinished =
                            rung.len() < range.len() || rung.iter().any(|t| t.state == TrialState::Pending);
                        if unfinished && cursor >= trials.len() {
                            return Next::Waiting;
                        }
                        let mut ranked: Vec<(f64, usize)> = range
                            .clone()
                            .filter_map(|i| match trials.get(i)?.state {
                                TrialState::Completed(v) if v.is_finite() => Some((history.direction.loss(v), i)),
                                _ => None,
                            })
                            .collect();
                        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                        (n_i.min(ranked.len()), ranked.into_iter().map(|(_, i)| i).collect())
                    }
                };
                let have = trials.len().saturating_sub(cursor).min(size);
                if have < size {
                    return Next::Slot { budget, promote: ranked.get(have).copied() };
                }
                previous = Some(cursor..cursor + size);
                cursor += size;
            }
        }
        Next::Exhausted
    }
}

impl Sampler for Hyperband {
    fn name(&self) -> &str {
        "hyperband"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>> {
        Ok(self.suggest_detailed(space, history, count, rng)?.into_iter().map(|s| s.assignment).collect())
    }

    fn suggest_detailed(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Suggestion>> {
        let resource = self.resource(space)?;
        let brackets = self.brackets(space)?;
        let mut current = history.clone();
        let mut out = Vec::new();
        while out.len() < count {
            let Next::Slot { budget, promote } = Self::next(&brackets, &current) else {
                break;
            };
            // A trial of another space (a changed experiment) cannot be promoted; start afresh.
            let promote = promote.filter(|&i| current.trials[i].assignment.len() == space.len());
            let mut assignment = match promote {
                Some(i) => current.trials[i].assignment.clone(),
                None => random::sample(space, rng),
            };
            let budget = with_budget(space, &resource, &mut assignment, budget);
            let suggestion = Suggestion { assignment, budget: Some(budget), parent: promote };
            current.push_suggestion(suggestion.clone(), TrialState::Pending);
            out.push(suggestion);
        }
        Ok(out)
    }

    fn shortfall(&self, space: &SearchSpace, history: &History) -> Shortfall {
        match self.brackets(space) {
            Ok(brackets) => match Self::next(&brackets, history) {
                Next::Waiting => Shortfall::Waiting,
                _ => Shortfall::Exhausted,
            },
            Err(_) => Shortfall::Exhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use crate::space::{Distribution, Param};
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    fn space() -> SearchSpace {
        SearchSpace::new(vec![
            Param::new("x", Domain::Double { low: 0.0, high: 1.0, step: None, distribution: Distribution::Uniform })
                .unwrap(),
            Param::new("epochs", Domain::Int { low: 1, high: 81, step: 1, distribution: Distribution::Uniform })
                .unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn brackets_match_the_textbook_for_eta_3() {
        let hb = Hyperband { resource_name: Some("epochs".into()), ..Hyperband::default() };
        let rungs: Vec<Vec<(usize, u32)>> = hb
            .brackets(&space())
            .unwrap()
            .into_iter()
            .map(|b| b.into_iter().map(|(n, r)| (n, r.round() as u32)).collect())
            .collect();
        // Li et al. 2018, Table 1 (R = 81, η = 3).
        assert_eq!(
            rungs,
            vec![
                vec![(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
                vec![(34, 3), (11, 9), (3, 27), (1, 81)],
                vec![(15, 9), (5, 27), (1, 81)],
                vec![(8, 27), (2, 81)],
                vec![(5, 81)],
            ]
        );
    }

    /// Runs the whole schedule on f(x) = (x − 0.3)², where more epochs only
    /// remove noise; returns the history.
    fn run_all(hb: &Hyperband, batch: usize) -> History {
        let space = space();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut history = History::new(Direction::Minimize);
        loop {
            let batch = hb.suggest_detailed(&space, &history, batch, &mut rng).unwrap();
            if batch.is_empty() {
                assert_eq!(hb.shortfall(&space, &history), Shortfall::Exhausted);
                return history;
            }
            for s in batch {
                let (ParamValue::Float(x), ParamValue::Int(e)) = (s.assignment[0], s.assignment[1]) else {
                    panic!("types")
                };
                assert_eq!(Some(e as f64), s.budget);
                history.push_suggestion(s, TrialState::Completed((x - 0.3).powi(2) + 0.1 / e as f64));
            }
        }
    }

    #[test]
    fn the_whole_schedule_runs_and_promotes_the_best() {
        let hb = Hyperband { resource_name: Some("epochs".into()), ..Hyperband::default() };
        let history = run_all(&hb, 7);
        let total: usize = hb.brackets(&space()).unwrap().iter().flatten().map(|(n, _)| n).sum();
        assert_eq!(history.trials.len(), total);
        // Every promotion repeats its parent's x at a larger budget, and the
        // parent ranked in the top of its rung.
        for t in &history.trials {
            if let Some(p) = t.parent {
                let parent = &history.trials[p];
                assert_eq!(parent.assignment[0], t.assignment[0]);
                assert!(t.budget > parent.budget);
            }
        }
        // The single trial at the top of the first bracket is the best x of its 81 starters.
        let top = history.trials.iter().position(|t| t.budget == Some(81.0)).unwrap();
        let starters = &history.trials[..81];
        let best = starters
            .iter()
            .map(|t| match t.state {
                TrialState::Completed(v) => v,
                _ => f64::INFINITY,
            })
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        assert_eq!(history.trials[top].assignment[0], starters[best].assignment[0]);
        // Batch size does not change the schedule.
        assert_eq!(run_all(&hb, 1).trials.len(), total);
    }

    #[test]
    fn settings_name_the_problem() {
        let err = |hb: Hyperband| hb.brackets(&space()).unwrap_err().to_string();
        assert!(
            err(Hyperband { resource_name: Some("steps".into()), ..Hyperband::default() }).contains("no parameter")
        );
        assert!(err(Hyperband { eta: 1.0, ..Hyperband::default() }).contains("\"eta\""));
        let too_big = Hyperband { resource_name: Some("epochs".into()), r_l: Some(100.0), ..Hyperband::default() };
        assert!(err(too_big).contains("\"r_l\""));
    }
}
