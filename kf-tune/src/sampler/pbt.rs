//! Population-based training (Katib `pbt`): exploit and explore across
//! generations, each trial starting from a parent's checkpoint.
//!
//! Jaderberg et al., "Population Based Training of Neural Networks" (2017),
//! in its synchronous form. A population of `n_population` members trains in
//! generations: generation 0 draws every member from the prior; in each later
//! generation, member m continues from the checkpoint of member m of the
//! generation before (its parent, same hyperparameters) — unless that member
//! ranked in the bottom q = clamp(round(`truncation_threshold`·N), 1, N/2):
//! then it **exploits** (its parent is a member drawn uniformly from the top
//! q, whose hyperparameters it copies) and **explores** (each hyperparameter
//! is redrawn from its prior with probability `resample_probability`, else
//! perturbed: log-prior ranges multiplied by 0.8 or 1.2, other ranges moved
//! by ±10 % of the range, both by at least one step for integers and stepped
//! values; `discrete` lists move to a neighbouring entry; `categorical`
//! parameters only change by resampling). Failed trials rank last.
//!
//! A suggestion's [`Suggestion::parent`] is the history index of the trial
//! whose checkpoint to start from; with `suggestion_trial_dir`, the
//! checkpoint of trial `id` is expected at `<suggestion_trial_dir>/<id>`
//! (see [`Pbt::checkpoint`]): the trial saves there and its children load
//! from there. The sampler does not copy files; `kf tune run`'s process
//! runner (`runner::process`) starts each trial with a copy of its parent's
//! checkpoint directory.
//!
//! **No state is kept:** trial k of the history is member k mod N of
//! generation ⌊k/N⌋, so the history must hold this sampler's suggestions in
//! order. A generation starts only when the one before has finished: until
//! then, suggestions stop short and [`Sampler::shortfall`] says
//! [`Shortfall::Waiting`]. PBT never runs out; the experiment's trial budget
//! ends it.
//!
//! Where this differs from Katib's `pbt` service (which requires
//! `suggestion_trial_dir`, `n_population` ≥ 5 and `truncation_threshold`, and
//! copies checkpoint directories itself): an exploiting member starts from the
//! *top* member's checkpoint, as in the paper (Katib keeps the bottom member's
//! checkpoint and copies only the hyperparameters), and exploring applies to
//! the exploiting members (Katib perturbs the others); a `resample_probability`
//! miss perturbs instead of keeping the value (as Ray Tune). Settings have
//! defaults here, so the ask/tell protocol can start PBT without them.
//!
//! Cost per suggestion: O(N log N + d) (rank the previous generation, copy
//! and perturb one assignment).

use rand::{Rng, RngExt};

use crate::sampler::{History, Sampler, Shortfall, Suggestion, TrialState, random};
use crate::space::{Domain, Param, ParamValue, SearchSpace};
use crate::{Error, Result};

/// Population-based training (Katib `pbt`).
///
/// ```
/// use kf_tune::sampler::pbt::Pbt;
/// use kf_tune::space::{Distribution, Domain, Param, SearchSpace};
/// use kf_tune::{Direction, History, Sampler, Shortfall, TrialState};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![Param::new(
///     "lr",
///     Domain::Double { low: 1e-5, high: 1e-1, step: None, distribution: Distribution::LogUniform },
/// )?])?;
/// let pbt = Pbt { n_population: 4, truncation_threshold: 0.25, ..Pbt::default() };
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
/// let mut history = History::new(Direction::Maximize);
/// for s in pbt.suggest_detailed(&space, &history, 10, &mut rng)? {
///     assert_eq!(s.parent, None); // generation 0 starts from scratch
///     history.push_suggestion(s, TrialState::Pending);
/// }
/// assert_eq!(history.trials.len(), 4);
/// assert_eq!(pbt.shortfall(&space, &history), Shortfall::Waiting);
/// for (i, t) in history.trials.iter_mut().enumerate() {
///     t.state = TrialState::Completed(i as f64); // member 3 is best, member 0 worst
/// }
/// let next = pbt.suggest_detailed(&space, &history, 4, &mut rng)?;
/// let parents: Vec<_> = next.iter().map(|s| s.parent).collect();
/// assert_eq!(parents, [Some(3), Some(1), Some(2), Some(3)]); // member 0 exploits member 3
/// assert_eq!(next[3].assignment, history.trials[3].assignment);
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Pbt {
    /// Members per generation (Katib `n_population`; default 40).
    pub n_population: usize,
    /// Fraction of the population replaced each generation (Katib `truncation_threshold`; default 0.4).
    pub truncation_threshold: f64,
    /// Probability of redrawing a hyperparameter from its prior when exploring,
    /// else it is perturbed (Katib `resample_probability`; default 0: perturb only).
    pub resample_probability: f64,
    /// Where checkpoints live: trial `id`'s at `<dir>/<id>` (Katib `suggestion_trial_dir`).
    pub suggestion_trial_dir: Option<String>,
}

impl Default for Pbt {
    fn default() -> Self {
        Pbt { n_population: 40, truncation_threshold: 0.4, resample_probability: 0.0, suggestion_trial_dir: None }
    }
}

/// What the next slot of the population is.
enum Next {
    /// Member `member` of a generation: new (no parent), continuing or exploiting.
    Slot {
        generation: usize,
        member: usize,
    },
    Waiting,
}

impl Pbt {
    /// Checks the settings: N ≥ 2, 0 < `truncation_threshold` < 1, 0 ≤ `resample_probability` ≤ 1.
    pub fn validate(&self) -> Result<()> {
        let fail = |setting: &str, message: String| {
            Err(Error::InvalidSetting { algorithm: "pbt".into(), setting: setting.into(), message })
        };
        if self.n_population < 2 {
            return fail("n_population", format!("expected at least 2, found {}", self.n_population));
        }
        let t = self.truncation_threshold;
        if !(t.is_finite() && t > 0.0 && t < 1.0) {
            return fail("truncation_threshold", format!("expected a number in (0, 1), found {t}"));
        }
        let r = self.resample_probability;
        if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
            return fail("resample_probability", format!("expected a probability in [0, 1], found {r}"));
        }
        Ok(())
    }

    /// Where the checkpoint of trial `id` lives, when `suggestion_trial_dir` is set.
    ///
    /// ```
    /// use kf_tune::sampler::pbt::Pbt;
    ///
    /// let pbt = Pbt { suggestion_trial_dir: Some("/var/log/katib/checkpoints/".into()), ..Pbt::default() };
    /// assert_eq!(pbt.checkpoint("7").as_deref(), Some("/var/log/katib/checkpoints/7"));
    /// ```
    pub fn checkpoint(&self, id: &str) -> Option<String> {
        self.suggestion_trial_dir.as_ref().map(|dir| format!("{}/{id}", dir.trim_end_matches('/')))
    }

    /// Bottom and top group size q.
    fn q(&self) -> usize {
        let n = self.n_population;
        ((self.truncation_threshold * n as f64).round() as usize).clamp(1, (n / 2).max(1))
    }

    fn next(&self, history: &History) -> Next {
        let n = self.n_population;
        let k = history.trials.len();
        let (generation, member) = (k / n, k % n);
        if generation > 0 {
            let previous = &history.trials[(generation - 1) * n..generation * n];
            if previous.iter().any(|t| t.state == TrialState::Pending) {
                return Next::Waiting;
            }
        }
        Next::Slot { generation, member }
    }

    /// Members of generation `generation` (≥ 1) ranked best first, as history indices.
    fn ranking(&self, history: &History, generation: usize) -> Vec<usize> {
        let n = self.n_population;
        let start = (generation - 1) * n;
        let mut ranked: Vec<(f64, usize)> = (start..start + n)
            .map(|i| {
                let loss = match history.trials[i].state {
                    TrialState::Completed(v) if v.is_finite() => history.direction.loss(v),
                    _ => f64::INFINITY,
                };
                (loss, i)
            })
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        ranked.into_iter().map(|(_, i)| i).collect()
    }

    fn explore(&self, space: &SearchSpace, assignment: &mut [ParamValue], rng: &mut dyn Rng) {
        for (param, value) in space.params().iter().zip(assignment.iter_mut()) {
            if rng.random::<f64>() < self.resample_probability {
                *value = param.from_unit(rng.random::<f64>());
            } else {
                *value = perturb(param, *value, rng.random::<bool>());
            }
        }
    }
}

/// Moves `value` up or down as PBT's explore step does; stays inside the domain.
fn perturb(param: &Param, value: ParamValue, up: bool) -> ParamValue {
    let sign = if up { 1.0 } else { -1.0 };
    match (param.domain(), value) {
        (Domain::Double { low, high, step, distribution }, ParamValue::Float(v)) => {
            let raw =
                if distribution.is_log() { v * if up { 1.2 } else { 0.8 } } else { v + sign * 0.1 * (high - low) };
            let moved = match step {
                None => raw,
                Some(s) => {
                    let k = ((raw - low) / s).round();
                    let k0 = ((v - low) / s).round();
                    let k = if k == k0 { k0 + sign } else { k };
                    low + k * s
                }
            };
            let clamped = moved.clamp(*low, *high);
            match step {
                None => ParamValue::Float(clamped),
                Some(s) => {
                    let n = param.cardinality().unwrap_or(1).max(1);
                    let k = ((clamped - low) / s).round().max(0.0) as u64;
                    param.nth(k.min(n - 1)).unwrap_or(ParamValue::Float(*low))
                }
            }
        }
        (Domain::Int { low, high, step, distribution }, ParamValue::Int(v)) => {
            let raw = if distribution.is_log() {
                v as f64 * if up { 1.2 } else { 0.8 }
            } else {
                v as f64 + sign * 0.1 * (high - low) as f64
            };
            let k0 = (v - low) / step;
            let k = ((raw - *low as f64) / *step as f64).round() as i64;
            let k = if k == k0 { k0 + if up { 1 } else { -1 } } else { k };
            let last = (high - low) / step;
            ParamValue::Int(low + k.clamp(0, last) * step)
        }
        (Domain::Discrete { values }, ParamValue::Float(v)) => {
            let i = values.iter().position(|x| x.to_bits() == v.to_bits()).unwrap_or(0);
            let j = if up { (i + 1).min(values.len() - 1) } else { i.saturating_sub(1) };
            ParamValue::Float(values[j])
        }
        (_, other) => other,
    }
}

impl Sampler for Pbt {
    fn name(&self) -> &str {
        "pbt"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<crate::Assignment>> {
        Ok(self.suggest_detailed(space, history, count, rng)?.into_iter().map(|s| s.assignment).collect())
    }

    fn suggest_detailed(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Suggestion>> {
        self.validate()?;
        let mut current = history.clone();
        let mut out = Vec::with_capacity(count);
        let mut ranking: Option<(usize, Vec<usize>)> = None;
        while out.len() < count {
            let Next::Slot { generation, member } = self.next(&current) else {
                break;
            };
            let fits = |i: usize| current.trials[i].assignment.len() == space.len();
            let suggestion = if generation == 0 {
                Suggestion { assignment: random::sample(space, rng), budget: None, parent: None }
            } else {
                if ranking.as_ref().is_none_or(|(g, _)| *g != generation) {
                    ranking = Some((generation, self.ranking(&current, generation)));
                }
                let ranked = ranking.as_ref().map(|(_, r)| r.as_slice()).unwrap_or_default();
                let own = (generation - 1) * self.n_population + member;
                let q = self.q();
                let bottom = ranked.len().saturating_sub(q);
                if !fits(own) {
                    // A trial of another space (a changed experiment) cannot be continued.
                    Suggestion { assignment: random::sample(space, rng), budget: None, parent: None }
                } else if ranked[bottom..].contains(&own) {
                    let parent = ranked[rng.random_range(0..q)];
                    let parent = if fits(parent) { parent } else { own };
                    let mut assignment = current.trials[parent].assignment.clone();
                    self.explore(space, &mut assignment, rng);
                    Suggestion { assignment, budget: None, parent: Some(parent) }
                } else {
                    Suggestion { assignment: current.trials[own].assignment.clone(), budget: None, parent: Some(own) }
                }
            };
            current.push_suggestion(suggestion.clone(), TrialState::Pending);
            out.push(suggestion);
        }
        Ok(out)
    }

    fn shortfall(&self, _space: &SearchSpace, history: &History) -> Shortfall {
        match self.next(history) {
            Next::Waiting => Shortfall::Waiting,
            Next::Slot { .. } => Shortfall::Exhausted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use crate::space::Distribution;
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    fn lr_space() -> SearchSpace {
        let lr = Domain::Double { low: 1e-5, high: 1e-1, step: None, distribution: Distribution::LogUniform };
        let width = Domain::Int { low: 1, high: 64, step: 1, distribution: Distribution::Uniform };
        SearchSpace::new(vec![Param::new("lr", lr).unwrap(), Param::new("width", width).unwrap()]).unwrap()
    }

    /// Training progress accumulates along a lineage: a trial's score is its
    /// parent's plus a gain that peaks at lr = 1e-3 and width = 32.
    fn gain(a: &[ParamValue]) -> f64 {
        let (ParamValue::Float(lr), ParamValue::Int(w)) = (a[0], a[1]) else { panic!("types") };
        1.0 - (lr.log10() + 3.0).powi(2) - ((w as f64 - 32.0) / 32.0).powi(2)
    }

    fn evolve(pbt: &Pbt, generations: usize, seed: u64) -> History {
        let space = lr_space();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut history = History::new(Direction::Maximize);
        for _ in 0..generations {
            let batch = pbt.suggest_detailed(&space, &history, pbt.n_population + 3, &mut rng).unwrap();
            assert_eq!(batch.len(), pbt.n_population, "one generation per call");
            let start = history.trials.len();
            for s in batch {
                history.push_suggestion(s, TrialState::Pending);
            }
            for i in start..history.trials.len() {
                let inherited = history.trials[i].parent.map_or(0.0, |p| match history.trials[p].state {
                    TrialState::Completed(v) => v,
                    _ => 0.0,
                });
                history.trials[i].state = TrialState::Completed(inherited + gain(&history.trials[i].assignment));
            }
        }
        history
    }

    #[test]
    fn exploit_and_explore_move_the_population_to_good_hyperparameters() {
        let pbt = Pbt { n_population: 10, truncation_threshold: 0.3, ..Pbt::default() };
        for seed in 0..6 {
            let history = evolve(&pbt, 40, seed);
            let distance = |range: std::ops::Range<usize>| {
                range
                    .map(|i| match history.trials[i].assignment[0] {
                        ParamValue::Float(lr) => (lr.log10() + 3.0).abs(),
                        _ => f64::INFINITY,
                    })
                    .sum::<f64>()
                    / 10.0
            };
            let (first, last) = (distance(0..10), distance(390..400));
            assert!(last < 0.2 && last < first / 4.0, "seed {seed}: mean |log10 lr + 3| {first:.2} → {last:.2}");
        }
    }

    #[test]
    fn parents_are_the_own_slot_or_a_top_member() {
        let pbt = Pbt { n_population: 8, truncation_threshold: 0.25, resample_probability: 0.5, ..Pbt::default() };
        let history = evolve(&pbt, 6, 9);
        for g in 1..6 {
            let ranked = pbt.ranking(&history, g);
            for m in 0..8 {
                let own = (g - 1) * 8 + m;
                let t = &history.trials[g * 8 + m];
                let parent = t.parent.unwrap();
                if ranked[6..].contains(&own) {
                    assert!(ranked[..2].contains(&parent), "generation {g} member {m} exploited {parent}");
                } else {
                    assert_eq!(parent, own);
                    assert_eq!(t.assignment, history.trials[own].assignment);
                }
            }
        }
    }

    #[test]
    fn perturbation_moves_integers_and_stays_in_range() {
        let p = Param::new("n", Domain::Int { low: 0, high: 3, step: 1, distribution: Distribution::Uniform }).unwrap();
        assert_eq!(perturb(&p, ParamValue::Int(1), true), ParamValue::Int(2));
        assert_eq!(perturb(&p, ParamValue::Int(0), false), ParamValue::Int(0));
        let d = Param::new("d", Domain::Discrete { values: vec![1.0, 2.0, 4.0] }).unwrap();
        assert_eq!(perturb(&d, ParamValue::Float(4.0), true), ParamValue::Float(4.0));
        assert_eq!(perturb(&d, ParamValue::Float(4.0), false), ParamValue::Float(2.0));
    }

    #[test]
    fn settings_are_checked() {
        let err = |p: Pbt| p.validate().unwrap_err().to_string();
        assert!(err(Pbt { n_population: 1, ..Pbt::default() }).contains("n_population"));
        assert!(err(Pbt { truncation_threshold: 1.0, ..Pbt::default() }).contains("truncation_threshold"));
        assert!(err(Pbt { resample_probability: -0.1, ..Pbt::default() }).contains("resample_probability"));
    }
}
