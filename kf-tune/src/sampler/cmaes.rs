//! CMA-ES: the covariance matrix adaptation evolution strategy (Katib `cmaes`).
//!
//! Hansen's (μ/μ_w, λ)-CMA-ES ("The CMA Evolution Strategy: A Tutorial",
//! 2016) with full covariance, cumulative step-size adaptation and rank-one +
//! rank-μ updates, on the numeric parameters mapped to the unit box [0, 1]^n:
//! `double` and `int` ranges linearly, or on the logarithm under a log prior
//! (normal priors are treated as their range: CMA-ES has its own search
//! distribution); `discrete` lists by the position of the value.
//!
//! **No state is kept.** The strategy is replayed from the history at every
//! call: completed trials, in the order they were suggested, form generations
//! of λ; each full generation updates mean, step size, evolution paths and
//! covariance. The points used are the ones actually evaluated (after
//! rounding), so a trial's Mahalanobis step is clipped to √n + 2n/(n+2), as
//! Hansen prescribes for injected solutions. Failed trials are skipped;
//! pending trials only matter once they complete. A batch is λ-parallel by
//! nature: every suggestion of a call is an independent draw from the current
//! distribution.
//!
//! Bounds: a draw outside the box is redrawn (up to 100 times), then clipped.
//! Integers and stepped values are rounded to the nearest grid point; so that
//! they keep moving, the variance of such a coordinate never falls below
//! (spacing / 3)² (a "margin" in the spirit of Hamano et al., GECCO 2022): a
//! neighbour stays within reach with probability ≥ 13 %.
//!
//! Restarts (IPOP, Auger & Hansen 2005): when the step size collapses
//! (σ·√C_ii < 1e-12 on every continuous coordinate), the covariance is
//! ill-conditioned (> 1e14), or the best value stagnates (over the last
//! 10 + ⌈30n/λ⌉ generations the best values, and the current generation's
//! values, span less than 1e-12), the strategy starts again from a point
//! drawn uniformly in the box with the population doubled. The restart point
//! comes from a generator seeded by the restart count and the trials seen, so
//! the replay stays a function of the history.
//!
//! `categorical` parameters do not enter the strategy: each is drawn
//! uniformly from its choices (as Optuna's `CmaEsSampler` falls back to an
//! independent sampler for them) and does not inform the search.
//!
//! Cost per suggestion, for n trials and d numeric parameters: the replay is
//! O(n·d² + (n/λ)·d³) (one symmetric eigendecomposition per generation, with
//! nalgebra); each draw is O(d²).

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt, SeedableRng};

use crate::gauss;
use crate::sampler::gp::{decode, encode};
use crate::sampler::{History, Sampler};
use crate::space::{Assignment, Domain, Param, SearchSpace};
use crate::{Error, Result};

/// CMA-ES with IPOP restarts.
///
/// ```
/// use kf_tune::sampler::cmaes::CmaEs;
/// use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
/// use kf_tune::{Direction, History, Sampler, TrialState};
/// use rand::SeedableRng;
///
/// let range = Domain::Double { low: -5.0, high: 5.0, step: None, distribution: Distribution::Uniform };
/// let space = SearchSpace::new(vec![Param::new("x", range.clone())?, Param::new("y", range)?])?;
/// let cma = CmaEs::default();
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
/// let mut history = History::new(Direction::Minimize);
/// for _ in 0..20 {
///     // One generation at a time, as parallel workers would run it.
///     for a in cma.suggest(&space, &history, 6, &mut rng)? {
///         let (ParamValue::Float(x), ParamValue::Float(y)) = (a[0], a[1]) else { unreachable!() };
///         history.push(a, TrialState::Completed((x - 1.0).powi(2) + (y + 2.0).powi(2)));
///     }
/// }
/// let best = history.completed().map(|(_, loss)| loss).fold(f64::INFINITY, f64::min);
/// assert!(best < 1e-3, "best loss {best}");
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CmaEs {
    /// Initial step size, as a fraction of the unit box (default 1/6, as Optuna: the box is ±3σ).
    pub sigma: f64,
    /// Population size λ of the first run; `None` for 4 + ⌊3 ln d⌋.
    pub popsize: Option<usize>,
    /// Restart with a doubled population when the search stalls (IPOP; default true).
    pub restart: bool,
}

impl Default for CmaEs {
    fn default() -> Self {
        CmaEs { sigma: 1.0 / 6.0, popsize: None, restart: true }
    }
}

impl CmaEs {
    /// Checks the settings: 0 < `sigma` ≤ 1, `popsize` ≥ 2.
    pub fn validate(&self) -> Result<()> {
        let fail = |setting: &str, message: String| {
            Err(Error::InvalidSetting { algorithm: "cmaes".into(), setting: setting.into(), message })
        };
        if !(self.sigma.is_finite() && self.sigma > 0.0 && self.sigma <= 1.0) {
            return fail(
                "sigma",
                format!("expected a number in (0, 1] (a fraction of each range), found {}", self.sigma),
            );
        }
        if let Some(p) = self.popsize
            && p < 2
        {
            return fail("popsize", format!("expected at least 2, found {p}"));
        }
        Ok(())
    }

    /// The strategy after replaying `history`: (population size, restarts so
    /// far, generations of the current run). For tests and diagnostics. O(replay).
    pub fn progress(&self, space: &SearchSpace, history: &History) -> (usize, usize, usize) {
        let state = self.replay(space, history);
        (state.run.lambda, state.restarts, state.run.generation)
    }

    fn replay(&self, space: &SearchSpace, history: &History) -> Replay {
        let numeric: Vec<usize> =
            (0..space.len()).filter(|&i| !matches!(space.params()[i].domain(), Domain::Categorical { .. })).collect();
        let n = numeric.len();
        let margins: Vec<f64> = numeric.iter().map(|&i| spacing(&space.params()[i]) / 3.0).collect();
        let lambda0 = self.popsize.unwrap_or_else(|| default_popsize(n));
        let mut run = Run::new(n, lambda0, self.sigma, DVector::from_element(n, 0.5), &margins);
        let mut restarts = 0;
        if n == 0 {
            return Replay { numeric, run, restarts };
        }
        let mut generation: Vec<(DVector<f64>, f64)> = Vec::with_capacity(run.lambda);
        let mut seen = 0u64;
        // Trials of another space (a changed experiment) cannot be placed: skip them.
        for (assignment, loss) in history.completed().filter(|(a, _)| a.len() == space.len()) {
            seen += 1;
            let x = DVector::from_iterator(n, numeric.iter().map(|&i| encode(&space.params()[i], &assignment[i])));
            generation.push((x, loss));
            if generation.len() < run.lambda {
                continue;
            }
            run.tell(&mut generation, &margins);
            generation.clear();
            if self.restart && run.stalled(&margins) {
                restarts += 1;
                let mut rng = ChaCha8Rng::seed_from_u64((restarts as u64) << 32 ^ seen);
                let mean = DVector::from_fn(n, |_, _| rng.random::<f64>());
                let lambda = lambda0.saturating_mul(1 << restarts.min(16));
                run = Run::new(n, lambda, self.sigma, mean, &margins);
            }
        }
        Replay { numeric, run, restarts }
    }
}

struct Replay {
    /// Indices of the parameters the strategy searches (every non-categorical one).
    numeric: Vec<usize>,
    run: Run,
    restarts: usize,
}

/// λ = 4 + ⌊3 ln n⌋ (Hansen's default).
fn default_popsize(n: usize) -> usize {
    4 + (3.0 * (n.max(1) as f64).ln()).floor() as usize
}

/// Grid spacing of a parameter in unit coordinates (0 for continuous ranges).
fn spacing(param: &Param) -> f64 {
    let discrete = !matches!(param.domain(), Domain::Double { step: None, .. } | Domain::Categorical { .. });
    match param.cardinality() {
        Some(k) if discrete && k > 1 => 1.0 / (k - 1) as f64,
        _ => 0.0,
    }
}

/// One run of the strategy between restarts.
struct Run {
    n: usize,
    lambda: usize,
    weights: Vec<f64>,
    mu_eff: f64,
    c_sigma: f64,
    d_sigma: f64,
    c_c: f64,
    c_1: f64,
    c_mu: f64,
    chi_n: f64,
    mean: DVector<f64>,
    sigma: f64,
    cov: DMatrix<f64>,
    p_sigma: DVector<f64>,
    p_c: DVector<f64>,
    /// Eigenvectors of `cov` (columns) and the square roots of its eigenvalues.
    basis: DMatrix<f64>,
    scales: DVector<f64>,
    generation: usize,
    /// Best loss of each generation of this run.
    bests: Vec<f64>,
    /// Spread (max − min) of the last generation's losses.
    last_spread: f64,
}

impl Run {
    fn new(n: usize, lambda: usize, sigma: f64, mean: DVector<f64>, margins: &[f64]) -> Self {
        let mu = lambda / 2;
        let raw: Vec<f64> = (1..=mu).map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - (i as f64).ln()).collect();
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let mu_eff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let nf = n as f64;
        let c_sigma = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        let d_sigma = 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + c_sigma;
        let c_c = (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf);
        let c_1 = 2.0 / ((nf + 1.3).powi(2) + mu_eff);
        let c_mu = (1.0 - c_1).min(2.0 * (mu_eff - 2.0 + 1.0 / mu_eff) / ((nf + 2.0).powi(2) + mu_eff));
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let mut run = Run {
            n,
            lambda,
            weights,
            mu_eff,
            c_sigma,
            d_sigma,
            c_c,
            c_1,
            c_mu,
            chi_n,
            mean,
            sigma,
            cov: DMatrix::identity(n, n),
            p_sigma: DVector::zeros(n),
            p_c: DVector::zeros(n),
            basis: DMatrix::identity(n, n),
            scales: DVector::from_element(n, 1.0),
            generation: 0,
            bests: Vec::new(),
            last_spread: f64::INFINITY,
        };
        run.apply_margins(margins);
        run.decompose();
        run
    }

    /// Keeps the standard deviation of discrete coordinates at or above their margin.
    fn apply_margins(&mut self, margins: &[f64]) {
        for (i, &m) in margins.iter().enumerate() {
            let floor = (m / self.sigma).powi(2);
            if self.cov[(i, i)] < floor {
                self.cov[(i, i)] = floor;
            }
        }
    }

    fn decompose(&mut self) {
        if self.n == 0 {
            return;
        }
        let sym = (&self.cov + self.cov.transpose()) * 0.5;
        let eigen = SymmetricEigen::new(sym);
        self.basis = eigen.eigenvectors;
        self.scales = eigen.eigenvalues.map(|v| v.max(1e-300).sqrt());
    }

    /// C^{-1/2}·v.
    fn whiten(&self, v: &DVector<f64>) -> DVector<f64> {
        let t = self.basis.transpose() * v;
        let t = t.component_div(&self.scales);
        &self.basis * t
    }

    /// One generation's update from its evaluated points (sorted here by loss).
    fn tell(&mut self, generation: &mut [(DVector<f64>, f64)], margins: &[f64]) {
        generation.sort_by(|a, b| a.1.total_cmp(&b.1));
        let nf = self.n as f64;
        let clip = nf.sqrt() + 2.0 * nf / (nf + 2.0);
        let steps: Vec<DVector<f64>> = generation
            .iter()
            .take(self.weights.len())
            .map(|(x, _)| {
                let y = (x - &self.mean) / self.sigma;
                let norm = self.whiten(&y).norm();
                if norm > clip { y * (clip / norm) } else { y }
            })
            .collect();
        let mut y_w = DVector::zeros(self.n);
        for (w, y) in self.weights.iter().zip(&steps) {
            y_w += y * *w;
        }
        self.mean += &y_w * self.sigma;
        let cs = self.c_sigma;
        self.p_sigma = &self.p_sigma * (1.0 - cs) + self.whiten(&y_w) * (cs * (2.0 - cs) * self.mu_eff).sqrt();
        self.generation += 1;
        let ps_norm = self.p_sigma.norm();
        let correction = (1.0 - (1.0 - cs).powi(2 * self.generation as i32)).sqrt();
        let h_sigma = ps_norm / correction < (1.4 + 2.0 / (nf + 1.0)) * self.chi_n;
        let cc = self.c_c;
        self.p_c *= 1.0 - cc;
        if h_sigma {
            self.p_c += &y_w * (cc * (2.0 - cc) * self.mu_eff).sqrt();
        }
        let delta = if h_sigma { 0.0 } else { cc * (2.0 - cc) };
        let mut rank_mu = DMatrix::zeros(self.n, self.n);
        for (w, y) in self.weights.iter().zip(&steps) {
            rank_mu += (y * y.transpose()) * *w;
        }
        self.cov = &self.cov * (1.0 + self.c_1 * delta - self.c_1 - self.c_mu)
            + (&self.p_c * self.p_c.transpose()) * self.c_1
            + rank_mu * self.c_mu;
        self.sigma *= ((cs / self.d_sigma) * (ps_norm / self.chi_n - 1.0)).min(1.0).exp();
        self.apply_margins(margins);
        self.decompose();
        let losses = generation.iter().map(|(_, l)| *l);
        let (lo, hi) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| (lo.min(l), hi.max(l)));
        self.bests.push(lo);
        self.last_spread = hi - lo;
    }

    /// Whether this run should end: collapsed step size, ill-conditioned
    /// covariance, or stagnating values.
    fn stalled(&self, margins: &[f64]) -> bool {
        let continuous: Vec<usize> = (0..self.n).filter(|&i| margins[i] == 0.0).collect();
        let collapsed =
            !continuous.is_empty() && continuous.iter().all(|&i| self.sigma * self.cov[(i, i)].max(0.0).sqrt() < 1e-12);
        let (lo, hi) = self.scales.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        let ill = (hi / lo).powi(2) > 1e14;
        let window = 10 + (30.0 * self.n as f64 / self.lambda as f64).ceil() as usize;
        let flat = self.bests.len() >= window && {
            let recent = &self.bests[self.bests.len() - window..];
            let (lo, hi) =
                recent.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| (lo.min(l), hi.max(l)));
            hi - lo < 1e-12 && self.last_spread < 1e-12
        };
        collapsed || ill || flat || !self.sigma.is_finite()
    }

    /// One draw from N(mean, σ²C) inside the unit box.
    fn draw(&self, rng: &mut dyn Rng) -> DVector<f64> {
        let mut x = self.mean.clone();
        for _ in 0..100 {
            let z = DVector::from_fn(self.n, |_, _| gauss::inv_cdf(rng.random::<f64>()));
            x = &self.mean + &self.basis * z.component_mul(&self.scales) * self.sigma;
            if x.iter().all(|v| (0.0..=1.0).contains(v)) {
                return x;
            }
        }
        x.map(|v| if v.is_finite() { v.clamp(0.0, 1.0) } else { 0.5 })
    }
}

impl Sampler for CmaEs {
    fn name(&self) -> &str {
        "cmaes"
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
        let replay = self.replay(space, history);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let x = replay.run.draw(rng);
            let mut assignment: Assignment = Vec::with_capacity(space.len());
            let mut next = replay.numeric.iter().zip(x.iter()).peekable();
            for (i, param) in space.params().iter().enumerate() {
                let value = match next.peek() {
                    Some(&(&j, &u)) if j == i => {
                        next.next();
                        decode(param, u)
                    }
                    _ => param.from_unit(rng.random::<f64>()),
                };
                assignment.push(value);
            }
            out.push(assignment);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::TrialState;
    use crate::sampler::random::Random;
    use crate::space::{Distribution, ParamValue};
    use crate::{Direction, History};

    fn box_space(d: usize, low: f64, high: f64) -> SearchSpace {
        let params = (0..d)
            .map(|i| {
                Param::new(
                    format!("x{i}"),
                    Domain::Double { low, high, step: None, distribution: Distribution::Uniform },
                )
                .unwrap()
            })
            .collect();
        SearchSpace::new(params).unwrap()
    }

    fn floats(a: &[ParamValue]) -> Vec<f64> {
        a.iter()
            .map(|v| match v {
                ParamValue::Float(x) => *x,
                ParamValue::Int(i) => *i as f64,
                ParamValue::Category(c) => *c as f64,
            })
            .collect()
    }

    fn run(sampler: &dyn Sampler, space: &SearchSpace, f: impl Fn(&[f64]) -> f64, trials: usize, seed: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut history = History::new(Direction::Minimize);
        while history.trials.len() < trials {
            for a in sampler.suggest(space, &history, 4, &mut rng).unwrap() {
                let v = f(&floats(&a));
                history.push(a, TrialState::Completed(v));
            }
        }
        history.completed().map(|(_, l)| l).fold(f64::INFINITY, f64::min)
    }

    fn rosenbrock(x: &[f64]) -> f64 {
        x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum()
    }

    #[test]
    fn beats_random_search_on_sphere_and_rosenbrock() {
        let space = box_space(4, -5.0, 5.0);
        let sphere = |x: &[f64]| x.iter().map(|v| (v - 1.0).powi(2)).sum::<f64>();
        let mut wins = 0;
        for seed in 0..5 {
            let cma = run(&CmaEs::default(), &space, sphere, 400, seed);
            let random = run(&Random, &space, sphere, 400, seed);
            assert!(cma < 1e-4, "seed {seed}: cma-es sphere {cma}");
            assert!(random > 0.05, "seed {seed}: random sphere {random}");
            let cma_r = run(&CmaEs::default(), &space, rosenbrock, 800, seed);
            let random_r = run(&Random, &space, rosenbrock, 800, seed);
            wins += usize::from(cma_r < random_r / 10.0);
        }
        assert!(wins >= 4, "cma-es beat random search by 10× on rosenbrock in {wins} of 5 seeds");
    }

    #[test]
    fn a_flat_objective_triggers_ipop_restarts() {
        let space = box_space(2, 0.0, 1.0);
        let cma = CmaEs::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut history = History::new(Direction::Minimize);
        for _ in 0..400 {
            let a = cma.suggest(&space, &history, 1, &mut rng).unwrap().remove(0);
            history.push(a, TrialState::Completed(1.0));
        }
        let (lambda, restarts, _) = cma.progress(&space, &history);
        assert!(restarts >= 1, "no restart after 400 flat trials");
        assert_eq!(lambda, default_popsize(2) << restarts);
        let no_restart = CmaEs { restart: false, ..cma };
        assert_eq!(no_restart.progress(&space, &history).1, 0);
    }

    #[test]
    fn integers_keep_moving_and_reach_the_optimum() {
        let ints: Vec<Param> = (0..3)
            .map(|i| {
                Param::new(
                    format!("n{i}"),
                    Domain::Int { low: -20, high: 20, step: 1, distribution: Distribution::Uniform },
                )
                .unwrap()
            })
            .collect();
        let space = SearchSpace::new(ints).unwrap();
        let f = |x: &[f64]| x.iter().map(|v| (v - 3.0).powi(2)).sum::<f64>();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let cma = CmaEs::default();
        let mut history = History::new(Direction::Minimize);
        for _ in 0..60 {
            for a in cma.suggest(&space, &history, 7, &mut rng).unwrap() {
                let v = f(&floats(&a));
                history.push(a, TrialState::Completed(v));
            }
        }
        let best = history.completed().map(|(_, l)| l).fold(f64::INFINITY, f64::min);
        assert_eq!(best, 0.0);
        // Late generations still try more than one point.
        let tail: std::collections::BTreeSet<String> =
            history.trials[history.trials.len() - 21..].iter().map(|t| format!("{:?}", t.assignment)).collect();
        assert!(tail.len() > 1, "integers stopped moving");
    }

    #[test]
    fn settings_are_checked() {
        assert!(CmaEs { sigma: 0.0, ..CmaEs::default() }.validate().unwrap_err().to_string().contains("\"sigma\""));
        assert!(CmaEs { popsize: Some(1), ..CmaEs::default() }.validate().unwrap_err().to_string().contains("popsize"));
    }
}
