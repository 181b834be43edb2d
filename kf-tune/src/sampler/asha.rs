//! ASHA: asynchronous successive halving (kf-tune name `asha`).
//!
//! Li et al., "A System for Massively Parallel Hyperparameter Tuning"
//! (MLSys 2020), Algorithm 2. Rungs k = 0…K run at budget r·η^k up to the
//! maximum R (K = ⌊log_η(R/r)⌋). Whenever a worker asks, the highest rung k
//! (from the top down) whose completed trials hold a configuration in their
//! best ⌊|rung k|/η⌋ that is not yet at rung k + 1 promotes the best such
//! configuration; when none can, a new random configuration starts at rung
//! 0. ASHA never waits for a rung to fill and never runs out.
//!
//! Budgets travel as in [`hyperband`](super::hyperband): in
//! [`Suggestion::budget`] and, with `resource_name`, as that parameter's
//! value. A trial's rung is read from its recorded budget, else from the
//! resource parameter; a configuration is the assignment without the
//! resource parameter. Without `resource_name`, record suggestions with
//! [`History::push_suggestion`] so their budgets are kept: a trial with
//! neither reads as rung 0. Pending promotions count as being at their rung, so a
//! batch never promotes one configuration twice. Failed trials are never
//! promoted.
//!
//! Cost per suggestion: O(n·(d + log n)) for n trials and d parameters
//! (group the trials by rung, sort each rung, look up configurations).

use std::collections::BTreeSet;

use rand::Rng;

use crate::Result;
use crate::sampler::hyperband::{Resource, resource, s_max, with_budget};
use crate::sampler::{History, Sampler, Suggestion, TrialState, random};
use crate::space::{Assignment, ParamValue, SearchSpace};

/// Asynchronous successive halving.
///
/// ```
/// use kf_tune::sampler::asha::Asha;
/// use kf_tune::space::{Distribution, Domain, Param, SearchSpace};
/// use kf_tune::{Direction, History, Sampler, TrialState};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![Param::new(
///     "x",
///     Domain::Double { low: 0.0, high: 1.0, step: None, distribution: Distribution::Uniform },
/// )?])?;
/// let asha = Asha { r_l: Some(9.0), ..Asha::default() }; // rungs at budgets 1, 3, 9
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
/// let mut history = History::new(Direction::Minimize);
/// for _ in 0..3 {
///     let s = asha.suggest_detailed(&space, &history, 1, &mut rng)?.remove(0);
///     assert_eq!(s.budget, Some(1.0));
///     let kf_tune::ParamValue::Float(x) = s.assignment[0] else { unreachable!() };
///     history.push_suggestion(s, TrialState::Completed(x));
/// }
/// // Three results at rung 0: the best one (1 = ⌊3/3⌋) goes on to budget 3.
/// let next = asha.suggest_detailed(&space, &history, 1, &mut rng)?.remove(0);
/// assert_eq!(next.budget, Some(3.0));
/// assert!(next.parent.is_some());
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Asha {
    /// The parameter that carries the budget, if any (as Katib's hyperband `resource_name`).
    pub resource_name: Option<String>,
    /// Reduction factor η > 1 (default 3).
    pub eta: f64,
    /// Maximum resource R; default the resource parameter's maximum, else 81.
    pub r_l: Option<f64>,
}

impl Default for Asha {
    fn default() -> Self {
        Asha { resource_name: None, eta: 3.0, r_l: None }
    }
}

/// A configuration's identity: every value but the resource's, bit for bit.
fn key(assignment: &Assignment, resource: &Resource) -> Vec<(u8, u64)> {
    assignment
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != resource.index)
        .map(|(_, v)| match v {
            ParamValue::Float(x) => (0, x.to_bits()),
            ParamValue::Int(i) => (1, *i as u64),
            ParamValue::Category(c) => (2, *c as u64),
        })
        .collect()
}

impl Asha {
    /// Checks the settings that do not depend on the space: `eta` > 1, `r_l` > 0.
    pub fn validate(&self) -> Result<()> {
        crate::sampler::hyperband::check("asha", self.eta, self.r_l)
    }

    fn resource(&self, space: &SearchSpace) -> Result<Resource> {
        resource("asha", space, self.resource_name.as_deref(), self.eta, self.r_l)
    }

    /// The rung a trial ran at: from its budget, else its resource value, else 0.
    fn rung(&self, resource: &Resource, k_max: usize, t: &crate::Trial) -> usize {
        let budget = t.budget.or_else(|| {
            let v = t.assignment.get(resource.index?)?;
            match v {
                ParamValue::Int(i) => Some(*i as f64),
                ParamValue::Float(x) => Some(*x),
                ParamValue::Category(_) => None,
            }
        });
        match budget {
            Some(b) if b > 0.0 => {
                let k = ((b / resource.min).ln() / self.eta.ln()).round();
                if k.is_finite() && k > 0.0 { (k as usize).min(k_max) } else { 0 }
            }
            _ => 0,
        }
    }

    /// The next promotion (history index, rung to go to), if any.
    fn promotion(&self, resource: &Resource, k_max: usize, history: &History) -> Option<(usize, usize)> {
        let mut rungs: Vec<Vec<usize>> = vec![Vec::new(); k_max + 1];
        for (i, t) in history.trials.iter().enumerate() {
            rungs[self.rung(resource, k_max, t)].push(i);
        }
        for k in (0..k_max).rev() {
            let above: BTreeSet<Vec<(u8, u64)>> =
                rungs[k + 1].iter().map(|&i| key(&history.trials[i].assignment, resource)).collect();
            let mut done: Vec<(f64, usize)> = rungs[k]
                .iter()
                .filter_map(|&i| match history.trials[i].state {
                    TrialState::Completed(v) if v.is_finite() => Some((history.direction.loss(v), i)),
                    _ => None,
                })
                .collect();
            done.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let top = (done.len() as f64 / self.eta + 1e-9).floor() as usize;
            if let Some(&(_, i)) =
                done.iter().take(top).find(|(_, i)| !above.contains(&key(&history.trials[*i].assignment, resource)))
            {
                return Some((i, k + 1));
            }
        }
        None
    }
}

impl Sampler for Asha {
    fn name(&self) -> &str {
        "asha"
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
        let k_max = s_max(&resource, self.eta);
        let mut current = history.clone();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let (mut assignment, parent, rung) = match self.promotion(&resource, k_max, &current) {
                Some((i, k)) if current.trials[i].assignment.len() == space.len() => {
                    (current.trials[i].assignment.clone(), Some(i), k)
                }
                _ => (random::sample(space, rng), None, 0),
            };
            let raw = resource.min * self.eta.powi(rung as i32);
            let budget = with_budget(space, &resource, &mut assignment, raw.min(resource.max));
            let suggestion = Suggestion { assignment, budget: Some(budget), parent };
            current.push_suggestion(suggestion.clone(), TrialState::Pending);
            out.push(suggestion);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use crate::sampler::random::Random;
    use crate::space::{Distribution, Domain, Param};
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    /// Noisy at small budgets: the loss at budget b is (x − 0.7)² + noise/b.
    fn loss(x: f64, budget: f64, rng: &mut ChaCha8Rng) -> f64 {
        use rand::RngExt;
        (x - 0.7).powi(2) + rng.random::<f64>() * 0.05 / budget
    }

    fn space() -> SearchSpace {
        let x = Domain::Double { low: 0.0, high: 1.0, step: None, distribution: Distribution::Uniform };
        let epochs = Domain::Int { low: 1, high: 27, step: 1, distribution: Distribution::Uniform };
        SearchSpace::new(vec![Param::new("x", x).unwrap(), Param::new("epochs", epochs).unwrap()]).unwrap()
    }

    #[test]
    fn spends_less_than_random_search_for_a_good_full_budget_result() {
        // Same total budget (sum of epochs) for ASHA and for random search at
        // full budget; ASHA's best full-budget result should be better on most seeds.
        let space = space();
        let asha = Asha { resource_name: Some("epochs".into()), ..Asha::default() };
        let mut wins = 0;
        for seed in 0..10 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut noise = ChaCha8Rng::seed_from_u64(seed + 100);
            let mut history = History::new(Direction::Minimize);
            let mut spent = 0.0;
            while spent < 27.0 * 12.0 {
                for s in asha.suggest_detailed(&space, &history, 4, &mut rng).unwrap() {
                    let ParamValue::Float(x) = s.assignment[0] else { panic!() };
                    let b = s.budget.unwrap();
                    spent += b;
                    history.push_suggestion(s, TrialState::Completed(loss(x, b, &mut noise)));
                }
            }
            let asha_best = history
                .trials
                .iter()
                .filter(|t| t.budget == Some(27.0))
                .map(|t| match t.assignment[0] {
                    ParamValue::Float(x) => (x - 0.7).powi(2),
                    _ => f64::INFINITY,
                })
                .fold(f64::INFINITY, f64::min);
            let random = Random.suggest(&space, &History::default(), 12, &mut rng).unwrap();
            let random_best = random
                .iter()
                .map(|a| match a[0] {
                    ParamValue::Float(x) => (x - 0.7).powi(2),
                    _ => f64::INFINITY,
                })
                .fold(f64::INFINITY, f64::min);
            wins += usize::from(asha_best < random_best);
        }
        assert!(wins >= 7, "ASHA found the better full-budget configuration in {wins} of 10 seeds");
    }

    #[test]
    fn promotes_only_the_top_third_and_never_twice() {
        let space = space();
        let asha = Asha { resource_name: Some("epochs".into()), ..Asha::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut history = History::new(Direction::Minimize);
        // Nine workers start at once: nothing is promotable yet.
        for (i, s) in asha.suggest_detailed(&space, &history, 9, &mut rng).unwrap().into_iter().enumerate() {
            assert_eq!((s.budget, s.parent), (Some(1.0), None));
            history.push_suggestion(s, TrialState::Completed(i as f64));
        }
        let batch = asha.suggest_detailed(&space, &history, 5, &mut rng).unwrap();
        let parents: Vec<Option<usize>> = batch.iter().map(|s| s.parent).collect();
        assert_eq!(parents, [Some(0), Some(1), Some(2), None, None]);
        assert_eq!(batch[0].assignment[1], ParamValue::Int(3));
        assert_eq!(batch[3].assignment[1], ParamValue::Int(1));
    }
}
