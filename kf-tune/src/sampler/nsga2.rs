//! NSGA-II: multi-objective search by non-dominated sorting (kf-tune name `nsga2`).
//!
//! Deb et al., "A Fast and Elitist Multiobjective Genetic Algorithm:
//! NSGA-II" (IEEE TEC 2002). Objectives are read as losses (each negated
//! when maximised). Completed trials, in the order they were suggested, form
//! generations of `population_size`; the parent population after a generation
//! is the best `population_size` of (parents ∪ generation) by Pareto rank,
//! ties within the last front broken by crowding distance. Until the first
//! generation is complete, suggestions are random. After that, each
//! suggestion is a child of two parents chosen by binary tournament (lower
//! rank, then larger crowding distance): simulated binary crossover
//! (probability `crossover_prob`, distribution index `crossover_eta`) and
//! polynomial mutation (per parameter with `mutation_prob`, default 1/d;
//! index `mutation_eta`) on the parameters mapped to [0, 1] (log ranges on
//! the logarithm, lists by position), rounded back to the grid;
//! `categorical` parameters take either parent's choice and mutate to a
//! uniformly drawn one.
//!
//! **No state is kept:** the populations are replayed from the history.
//! Failed trials and trials without one value per objective are skipped;
//! pending trials only count once they complete. With one objective NSGA-II
//! is an elitist genetic algorithm.
//!
//! [`pareto_front`] returns the non-dominated completed trials of a history.
//!
//! Cost per suggestion, for n trials, M objectives, population P and d
//! parameters: the replay is O(n·M·P) (a fast non-dominated sort of 2P points
//! per generation); a child is O(d).

use rand::{Rng, RngExt};

use crate::sampler::gp::{decode, encode};
use crate::sampler::{History, Sampler, TrialState, random};
use crate::space::{Assignment, Domain, ParamValue, SearchSpace};
use crate::{Error, Result};

/// NSGA-II.
///
/// ```
/// use kf_tune::sampler::nsga2::{Nsga2, pareto_front};
/// use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
/// use kf_tune::{Direction, History, Sampler};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![Param::new(
///     "x",
///     Domain::Double { low: 0.0, high: 2.0, step: None, distribution: Distribution::Uniform },
/// )?])?;
/// let nsga2 = Nsga2 { population_size: 10, ..Nsga2::default() };
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
/// let mut history = History::multi(vec![Direction::Minimize, Direction::Minimize]);
/// for _ in 0..10 {
///     for a in nsga2.suggest(&space, &history, 10, &mut rng)? {
///         let ParamValue::Float(x) = a[0] else { unreachable!() };
///         history.push_values(a, vec![x * x, (x - 2.0).powi(2)]);
///     }
/// }
/// // On this problem every x in [0, 2] is Pareto-optimal: the whole front is kept.
/// let front = pareto_front(&history);
/// assert!(front.len() > 10);
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nsga2 {
    /// Trials per generation and parents kept (default 50, as Optuna).
    pub population_size: usize,
    /// Probability that a child is a crossover of its parents (default 0.9).
    pub crossover_prob: f64,
    /// Per-parameter mutation probability; `None` for 1/d.
    pub mutation_prob: Option<f64>,
    /// SBX distribution index η_c (default 20): larger keeps children nearer their parents.
    pub crossover_eta: f64,
    /// Polynomial-mutation distribution index η_m (default 20).
    pub mutation_eta: f64,
}

impl Default for Nsga2 {
    fn default() -> Self {
        Nsga2 { population_size: 50, crossover_prob: 0.9, mutation_prob: None, crossover_eta: 20.0, mutation_eta: 20.0 }
    }
}

impl Nsga2 {
    /// Checks the settings: population ≥ 2, probabilities in [0, 1], indices ≥ 0.
    pub fn validate(&self) -> Result<()> {
        let fail = |setting: &str, message: String| {
            Err(Error::InvalidSetting { algorithm: "nsga2".into(), setting: setting.into(), message })
        };
        if self.population_size < 2 {
            return fail("population_size", format!("expected at least 2, found {}", self.population_size));
        }
        let probability = |p: f64| p.is_finite() && (0.0..=1.0).contains(&p);
        if !probability(self.crossover_prob) {
            return fail("crossover_prob", format!("expected a probability in [0, 1], found {}", self.crossover_prob));
        }
        if let Some(p) = self.mutation_prob
            && !probability(p)
        {
            return fail("mutation_prob", format!("expected a probability in [0, 1], found {p}"));
        }
        for (setting, eta) in [("crossover_eta", self.crossover_eta), ("mutation_eta", self.mutation_eta)] {
            if !(eta.is_finite() && eta >= 0.0) {
                return fail(setting, format!("expected a number ≥ 0, found {eta}"));
            }
        }
        Ok(())
    }

    /// The parent population after replaying `history`: (history index, rank,
    /// crowding distance) per member; empty until the first generation is complete.
    fn population(&self, space: &SearchSpace, history: &History) -> Vec<Member> {
        // Trials of another space (a changed experiment) cannot be parents: skip them.
        let points: Vec<(usize, Vec<f64>)> = completed_losses(history)
            .into_iter()
            .filter(|(i, _)| history.trials[*i].assignment.len() == space.len())
            .collect();
        let mut population: Vec<(usize, Vec<f64>)> = Vec::new();
        for generation in points.chunks(self.population_size) {
            if generation.len() < self.population_size {
                break;
            }
            population.extend(generation.iter().cloned());
            population = select(population, self.population_size).into_iter().map(|m| (m.index, m.loss)).collect();
        }
        if population.is_empty() {
            return Vec::new();
        }
        // Ranks and distances of the survivors among themselves, for the tournaments.
        select(population, self.population_size)
    }

    fn child(&self, space: &SearchSpace, history: &History, parents: &[Member], rng: &mut dyn Rng) -> Assignment {
        let tournament = |rng: &mut dyn Rng| {
            let a = &parents[rng.random_range(0..parents.len())];
            let b = &parents[rng.random_range(0..parents.len())];
            if (a.rank, -a.crowding) <= (b.rank, -b.crowding) { a.index } else { b.index }
        };
        let (p1, p2) = (tournament(rng), tournament(rng));
        let (x1, x2) = (&history.trials[p1].assignment, &history.trials[p2].assignment);
        let cross = rng.random::<f64>() < self.crossover_prob;
        let d = space.len() as f64;
        let mutation = self.mutation_prob.unwrap_or(1.0 / d);
        space
            .params()
            .iter()
            .enumerate()
            .map(|(i, param)| {
                if let Domain::Categorical { choices } = param.domain() {
                    let pick = if cross && rng.random::<bool>() { x2[i] } else { x1[i] };
                    return if rng.random::<f64>() < mutation {
                        ParamValue::Category(rng.random_range(0..choices.len()))
                    } else {
                        pick
                    };
                }
                let (u1, u2) = (encode(param, &x1[i]), encode(param, &x2[i]));
                let mut u = if cross { sbx(u1, u2, self.crossover_eta, rng) } else { u1 };
                if rng.random::<f64>() < mutation {
                    u = polynomial_mutation(u, self.mutation_eta, rng);
                }
                decode(param, u)
            })
            .collect()
    }
}

/// A member of a population.
#[derive(Debug, Clone)]
struct Member {
    index: usize,
    loss: Vec<f64>,
    rank: usize,
    crowding: f64,
}

/// (history index, loss vector) of every completed trial with one finite value per objective.
fn completed_losses(history: &History) -> Vec<(usize, Vec<f64>)> {
    let directions = history.objective_directions();
    history
        .trials
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let TrialState::Completed(first) = t.state else {
                return None;
            };
            let values = if t.values.is_empty() { vec![first] } else { t.values.clone() };
            (values.len() == directions.len() && values.iter().all(|v| v.is_finite()))
                .then(|| (i, values.iter().zip(&directions).map(|(v, d)| d.loss(*v)).collect()))
        })
        .collect()
}

/// The best `size` of `points` by rank, then crowding distance (larger first),
/// then history order; each with its rank and distance. O(M·N²).
fn select(points: Vec<(usize, Vec<f64>)>, size: usize) -> Vec<Member> {
    let losses: Vec<Vec<f64>> = points.iter().map(|(_, l)| l.clone()).collect();
    let mut members = Vec::with_capacity(points.len());
    for (rank, front) in non_dominated_sort(&losses).into_iter().enumerate() {
        let distances = crowding_distance(&losses, &front);
        for (&k, crowding) in front.iter().zip(distances) {
            members.push(Member { index: points[k].0, loss: points[k].1.clone(), rank, crowding });
        }
    }
    members.sort_by(|a, b| a.rank.cmp(&b.rank).then(b.crowding.total_cmp(&a.crowding)).then(a.index.cmp(&b.index)));
    members.truncate(size);
    members
}

/// Whether loss vector `a` Pareto-dominates `b`: no worse in every
/// objective and better in at least one. O(M).
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Deb's fast non-dominated sort of loss vectors (smaller is better in every
/// objective): the fronts, best first, each a list of indices into `losses`
/// in ascending order. O(M·N²) for N points of M objectives.
///
/// ```
/// use kf_tune::sampler::nsga2::non_dominated_sort;
///
/// let losses = vec![vec![1.0, 4.0], vec![2.0, 2.0], vec![3.0, 3.0], vec![4.0, 1.0]];
/// assert_eq!(non_dominated_sort(&losses), vec![vec![0, 1, 3], vec![2]]);
/// ```
pub fn non_dominated_sort(losses: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let n = losses.len();
    let mut dominated_by_count = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if dominates(&losses[i], &losses[j]) {
                dominates_list[i].push(j);
                dominated_by_count[j] += 1;
            } else if dominates(&losses[j], &losses[i]) {
                dominates_list[j].push(i);
                dominated_by_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates_list[i] {
                dominated_by_count[j] -= 1;
                if dominated_by_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(std::mem::replace(&mut current, next));
    }
    fronts
}

/// Crowding distance of each member of `front` (indices into `losses`), in
/// the order of `front`: the sum over objectives of the normalised gap
/// between its neighbours; the extremes of every objective get infinity.
/// O(M·K log K) for a front of K points.
pub fn crowding_distance(losses: &[Vec<f64>], front: &[usize]) -> Vec<f64> {
    let k = front.len();
    let mut distance = vec![0.0; k];
    let objectives = front.first().map_or(0, |&i| losses[i].len());
    let columns: Vec<Vec<f64>> = (0..objectives)
        .map(|m| front.iter().map(|&i| losses[i].get(m).copied().unwrap_or(f64::NAN)).collect())
        .collect();
    for column in &columns {
        let value = |member: usize| column[member];
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
        let (lo, hi) = (value(order[0]), value(order[k - 1]));
        distance[order[0]] = f64::INFINITY;
        distance[order[k - 1]] = f64::INFINITY;
        let span = hi - lo;
        if span <= 0.0 || !span.is_finite() {
            continue;
        }
        for w in 1..k.saturating_sub(1) {
            let gap = value(order[w + 1]) - value(order[w - 1]);
            distance[order[w]] += gap / span;
        }
    }
    distance
}

/// History indices of the completed trials no other completed trial
/// dominates (over every objective of [`History::objective_directions`]), in
/// history order. Trials without one finite value per objective are left
/// out. O(M·N²).
pub fn pareto_front(history: &History) -> Vec<usize> {
    let points = completed_losses(history);
    points.iter().filter(|(_, a)| !points.iter().any(|(_, b)| dominates(b, a))).map(|(i, _)| *i).collect()
}

/// Simulated binary crossover of two coordinates in [0, 1]: one child, clamped.
fn sbx(x1: f64, x2: f64, eta: f64, rng: &mut dyn Rng) -> f64 {
    let u = rng.random::<f64>();
    let beta =
        if u <= 0.5 { (2.0 * u).powf(1.0 / (eta + 1.0)) } else { (1.0 / (2.0 * (1.0 - u))).powf(1.0 / (eta + 1.0)) };
    let child = if rng.random::<bool>() {
        0.5 * ((1.0 + beta) * x1 + (1.0 - beta) * x2)
    } else {
        0.5 * ((1.0 - beta) * x1 + (1.0 + beta) * x2)
    };
    if child.is_finite() { child.clamp(0.0, 1.0) } else { x1 }
}

/// Deb's bounded polynomial mutation of a coordinate in [0, 1].
fn polynomial_mutation(x: f64, eta: f64, rng: &mut dyn Rng) -> f64 {
    let r = rng.random::<f64>();
    let power = 1.0 / (eta + 1.0);
    let delta = if r < 0.5 {
        (2.0 * r + (1.0 - 2.0 * r) * (1.0 - x).powf(eta + 1.0)).powf(power) - 1.0
    } else {
        1.0 - (2.0 * (1.0 - r) + 2.0 * (r - 0.5) * x.powf(eta + 1.0)).powf(power)
    };
    let y = x + delta;
    if y.is_finite() { y.clamp(0.0, 1.0) } else { x }
}

impl Sampler for Nsga2 {
    fn name(&self) -> &str {
        "nsga2"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>> {
        self.validate()?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let parents = self.population(space, history);
        Ok((0..count)
            .map(|_| {
                if parents.is_empty() { random::sample(space, rng) } else { self.child(space, history, &parents, rng) }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use crate::sampler::random::Random;
    use crate::space::{Distribution, Param};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    fn zdt1(x: &[f64]) -> Vec<f64> {
        let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
        vec![x[0], g * (1.0 - (x[0] / g).sqrt())]
    }

    /// Hypervolume of a two-objective minimisation front against `reference`.
    fn hypervolume(points: &[Vec<f64>], reference: [f64; 2]) -> f64 {
        let mut front: Vec<&Vec<f64>> = points.iter().filter(|p| p[0] < reference[0] && p[1] < reference[1]).collect();
        front.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let (mut volume, mut ceiling) = (0.0, reference[1]);
        for p in front {
            if p[1] < ceiling {
                volume += (reference[0] - p[0]) * (ceiling - p[1]);
                ceiling = p[1];
            }
        }
        volume
    }

    fn run(sampler: &dyn Sampler, seed: u64) -> f64 {
        let params = (0..6)
            .map(|i| {
                let d = Domain::Double { low: 0.0, high: 1.0, step: None, distribution: Distribution::Uniform };
                Param::new(format!("x{i}"), d).unwrap()
            })
            .collect();
        let space = SearchSpace::new(params).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut history = History::multi(vec![Direction::Minimize; 2]);
        while history.trials.len() < 1200 {
            for a in sampler.suggest(&space, &history, 20, &mut rng).unwrap() {
                let x: Vec<f64> = a.iter().map(|v| if let ParamValue::Float(x) = v { *x } else { 0.0 }).collect();
                history.push_values(a, zdt1(&x));
            }
        }
        let front: Vec<Vec<f64>> = pareto_front(&history).iter().map(|&i| history.trials[i].values.clone()).collect();
        hypervolume(&front, [1.1, 1.1])
    }

    #[test]
    fn beats_random_search_on_zdt1() {
        for seed in 0..3 {
            let nsga2 = run(&Nsga2 { population_size: 40, ..Nsga2::default() }, seed);
            let random = run(&Random, seed);
            // The true front's hypervolume against (1.1, 1.1) is about 0.87.
            assert!(nsga2 > random + 0.1, "seed {seed}: nsga2 {nsga2:.3}, random {random:.3}");
            assert!(nsga2 > 0.75, "seed {seed}: nsga2 {nsga2:.3}");
        }
    }

    #[test]
    fn crowding_gives_extremes_infinity() {
        let losses = vec![vec![0.0, 3.0], vec![1.0, 2.0], vec![3.0, 0.0], vec![2.0, 1.5]];
        let d = crowding_distance(&losses, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[2].is_infinite());
        // Point 1: neighbours 0 and 3 → (2 − 0)/3 + (3 − 1.5)/3 = 1.1666…
        assert!((d[1] - 3.5 / 3.0).abs() < 1e-12, "{d:?}");
    }

    proptest! {
        /// Front members are mutually non-dominated; every completed trial
        /// left out is dominated by a front member.
        #[test]
        fn pareto_front_is_exactly_the_non_dominated_set(
            values in proptest::collection::vec(proptest::collection::vec(-5i32..5, 3), 0..40),
            maximize in proptest::collection::vec(any::<bool>(), 3),
        ) {
            let directions: Vec<Direction> =
                maximize.iter().map(|&m| if m { Direction::Maximize } else { Direction::Minimize }).collect();
            let mut history = History::multi(directions.clone());
            for v in &values {
                history.push_values(vec![ParamValue::Float(0.0)], v.iter().map(|&x| f64::from(x)).collect());
            }
            history.push(vec![ParamValue::Float(0.0)], TrialState::Failed);
            let front = pareto_front(&history);
            let loss = |i: usize| -> Vec<f64> {
                history.trials[i].values.iter().zip(&directions).map(|(v, d)| d.loss(*v)).collect()
            };
            for &a in &front {
                for &b in &front {
                    prop_assert!(!dominates(&loss(a), &loss(b)));
                }
            }
            for i in 0..values.len() {
                if !front.contains(&i) {
                    prop_assert!(front.iter().any(|&f| dominates(&loss(f), &loss(i))), "trial {} dropped undominated", i);
                }
            }
            prop_assert!(!front.contains(&values.len()), "a failed trial is on the front");
            // The sort's first front is the same set.
            let losses: Vec<Vec<f64>> = (0..values.len()).map(loss).collect();
            let first = non_dominated_sort(&losses).into_iter().next().unwrap_or_default();
            prop_assert_eq!(first, front);
        }
    }
}
