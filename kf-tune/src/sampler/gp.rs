//! Gaussian-process Bayesian optimisation (Katib `bayesianoptimization`).
//!
//! The objective is modelled by a Gaussian process with a Matérn 5/2 kernel
//! with one length scale per parameter (ARD), a signal variance and a noise
//! variance. Those hyperparameters are fitted at every suggestion by
//! maximising the log marginal likelihood plus weak priors (the ones Optuna's
//! `GPSampler` uses: a symmetric prior on each inverse squared length scale,
//! Gamma priors on the signal and noise variances), by L-BFGS on their
//! logarithms (the noise as ln(σ² − 10⁻⁶)) with analytic gradients, from
//! Optuna's start, to Optuna's tolerance. The next point
//! maximises the logarithm of expected improvement: a random candidate set plus perturbations of the
//! best points, then a pattern search from the best few candidates down to a
//! step of 1e-7 of the range.
//!
//! Parameters are encoded in [0, 1]: `double` and `int` ranges linearly, or on
//! the logarithm under a log prior (the prior shape is otherwise not used);
//! `discrete` lists by the position of the value; `categorical` parameters by
//! the index of the choice, with a kernel distance of 0 for the same choice and
//! 1 otherwise. Decoding rounds to the step grid, so suggestions are always
//! inside the space. The acquisition is only scored where a trial can run:
//! grid coordinates (int, stepped, discrete) are snapped to grid values, and
//! grids of at most 16 values are searched value by value like categories.
//! Objectives are standardised before fitting.
//!
//! Pending trials (and earlier suggestions of the same call) enter the model
//! with the posterior mean as their value (the "kriging believer"), so their
//! neighbourhood loses its expected improvement and a batch spreads out.
//! Failed trials are ignored. Until `n_startup_trials` trials have completed,
//! suggestions are random.
//!
//! Cost per suggestion, for n trials in d dimensions: the fit is O(I·(n³ +
//! d·n²)) for I objective evaluations (at most 200 L-BFGS iterations, most
//! taking one evaluation); the acquisition search is O(c·(n² + d·n)) for
//! c ≈ 512 + 200·d + 20·v evaluations of the posterior, each a triangular
//! solve, where v counts the values of categorical and small-grid (≤ 16)
//! parameters (each tried in up to 4 rounds from 5 starts).

use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};

use crate::gauss;
use crate::sampler::{History, Sampler, TrialState, random};
use crate::space::{Assignment, Distribution, Domain, Param, ParamValue, SearchSpace};
use crate::{Error, Result};

/// Gaussian-process Bayesian optimisation with expected improvement.
///
/// ```
/// use kf_tune::sampler::gp::GaussianProcess;
/// use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
/// use kf_tune::{Direction, History, Sampler, TrialState};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![Param::new(
///     "x",
///     Domain::Double { low: -5.0, high: 5.0, step: None, distribution: Distribution::Uniform },
/// )?])?;
/// let gp = GaussianProcess::default();
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
/// let mut history = History::new(Direction::Minimize);
/// for _ in 0..20 {
///     let a = gp.suggest(&space, &history, 1, &mut rng)?.remove(0);
///     let ParamValue::Float(x) = a[0] else { unreachable!() };
///     history.push(a, TrialState::Completed((x - 1.0).powi(2)));
/// }
/// let best = history.completed().map(|(_, loss)| loss).fold(f64::INFINITY, f64::min);
/// assert!(best < 5e-3, "best loss {best}");
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianProcess {
    /// Completed trials drawn at random before the model is used (default 10).
    pub n_startup_trials: usize,
    /// Random candidates scored by expected improvement per suggestion (default 512).
    pub n_candidates: usize,
}

impl Default for GaussianProcess {
    fn default() -> Self {
        GaussianProcess { n_startup_trials: 10, n_candidates: 512 }
    }
}

impl GaussianProcess {
    /// Checks the settings: at least one candidate.
    pub fn validate(&self) -> Result<()> {
        if self.n_candidates == 0 {
            return Err(Error::InvalidSetting {
                algorithm: "bayesianoptimization".into(),
                setting: "n_candidates".into(),
                message: "expected at least 1, found 0".into(),
            });
        }
        Ok(())
    }
}

/// How one parameter is encoded in [0, 1].
#[derive(Debug, Clone, PartialEq)]
enum Dim {
    /// A linear (or logarithmic) coordinate.
    Continuous,
    /// A finite grid (int, stepped double, discrete list) on a linear (or
    /// logarithmic) coordinate: the acquisition is only scored at the
    /// coordinates of grid values, where trials can run. `values` holds those
    /// coordinates, ascending, when there are at most [`EXHAUSTIVE_GRID`] of
    /// them (searched one by one); larger grids are snapped to the nearest value.
    Grid { values: Option<Vec<f64>> },
    /// A categorical parameter with this many choices; the coordinate is the index.
    Categorical(usize),
}

/// Grids up to this size are searched exhaustively, like categories.
const EXHAUSTIVE_GRID: u64 = 16;

fn dim(param: &Param) -> Dim {
    match param.domain() {
        Domain::Categorical { choices } => Dim::Categorical(choices.len()),
        Domain::Double { step: None, .. } => Dim::Continuous,
        _ => {
            let values = param.cardinality().filter(|&n| n <= EXHAUSTIVE_GRID).map(|n| {
                let mut v: Vec<f64> = (0..n).filter_map(|k| param.nth(k)).map(|v| encode(param, &v)).collect();
                v.sort_by(f64::total_cmp);
                v.dedup();
                v
            });
            Dim::Grid { values }
        }
    }
}

/// The coordinate of the space value nearest to `u`: decoding then encoding
/// again, so a grid coordinate is one a trial can run at. O(1).
fn snap(param: &Param, dim: &Dim, u: f64) -> f64 {
    match dim {
        Dim::Grid { .. } => encode(param, &decode(param, u)),
        Dim::Continuous | Dim::Categorical(_) => u,
    }
}

pub(crate) fn encode(param: &Param, value: &ParamValue) -> f64 {
    let unit = |v: f64, low: f64, high: f64, log: bool| {
        if high <= low {
            return 0.5;
        }
        let u = if log { (v.ln() - low.ln()) / (high.ln() - low.ln()) } else { (v - low) / (high - low) };
        if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.5 }
    };
    match (param.domain(), value) {
        (Domain::Double { low, high, distribution, .. }, ParamValue::Float(v)) => {
            unit(*v, *low, *high, distribution.is_log())
        }
        (Domain::Int { low, high, distribution, .. }, ParamValue::Int(v)) => {
            unit(*v as f64, *low as f64, *high as f64, distribution.is_log())
        }
        (Domain::Discrete { values }, ParamValue::Float(v)) => {
            let i = values.iter().position(|x| x.to_bits() == v.to_bits()).unwrap_or(0);
            if values.len() > 1 { i as f64 / (values.len() - 1) as f64 } else { 0.5 }
        }
        (Domain::Categorical { .. }, ParamValue::Category(i)) => *i as f64,
        _ => 0.5,
    }
}

pub(crate) fn decode(param: &Param, u: f64) -> ParamValue {
    // A categorical coordinate is the choice's index, not a point of [0, 1]:
    // it must be read before the clamp (which once sent every index above 1
    // to choice 1, so the model could never run choices 2, 3, …).
    if let Domain::Categorical { choices } = param.domain() {
        let i = if u.is_finite() { u.round().max(0.0) as usize } else { 0 };
        return ParamValue::Category(i.min(choices.len().saturating_sub(1)));
    }
    let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.5 };
    let from_unit = |low: f64, high: f64, distribution: Distribution| {
        if distribution.is_log() { (low.ln() + u * (high.ln() - low.ln())).exp() } else { low + u * (high - low) }
    };
    let on_grid = |v: f64, low: f64, step: f64| {
        let n = param.cardinality().unwrap_or(1).max(1);
        let k = ((v - low) / step).round().max(0.0) as u64;
        param.nth(k.min(n - 1))
    };
    let value = match param.domain() {
        Domain::Double { low, high, step: None, distribution } => {
            Some(ParamValue::Float(from_unit(*low, *high, *distribution).clamp(*low, *high)))
        }
        Domain::Double { low, high, step: Some(step), distribution } => {
            on_grid(from_unit(*low, *high, *distribution), *low, *step)
        }
        Domain::Int { low, high, step, distribution } => {
            on_grid(from_unit(*low as f64, *high as f64, *distribution), *low as f64, *step as f64)
        }
        Domain::Discrete { values } => {
            let i = (u * (values.len() - 1) as f64).round() as usize;
            values.get(i.min(values.len() - 1)).map(|v| ParamValue::Float(*v))
        }
        Domain::Categorical { .. } => None,
    };
    value.unwrap_or_else(|| param.from_unit(u))
}

/// Squared scaled distance per dimension: (Δ/ℓ)² for continuous, 1/ℓ² when categories differ.
fn scaled_sq(dims: &[Dim], a: &[f64], b: &[f64], inv_l2: &[f64], out: &mut [f64]) -> f64 {
    let mut r2 = 0.0;
    for i in 0..dims.len() {
        let d = match dims[i] {
            Dim::Continuous | Dim::Grid { .. } => (a[i] - b[i]).powi(2),
            Dim::Categorical(_) => f64::from(u8::from(a[i] != b[i])),
        };
        out[i] = d * inv_l2[i];
        r2 += out[i];
    }
    r2
}

const SQRT5: f64 = 2.236_067_977_499_79;

fn matern52(r2: f64) -> f64 {
    let r = r2.sqrt();
    (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r).exp()
}

/// Hyperparameters on the log scale: ln ℓ per dimension, ln signal variance, ln noise variance.
#[derive(Debug, Clone)]
struct Hyper {
    log_l: Vec<f64>,
    log_signal: f64,
    /// ln(σ² − MIN_NOISE).
    log_noise: f64,
}

impl Hyper {
    /// σ² = MIN_NOISE + e^(log_noise).
    fn noise(&self) -> f64 {
        MIN_NOISE + self.log_noise.exp()
    }

    fn inv_l2(&self) -> Vec<f64> {
        self.log_l.iter().map(|l| (-2.0 * l).exp()).collect()
    }
}

/// A fitted posterior: data, Cholesky factor and weights.
struct Posterior {
    dims: Vec<Dim>,
    x: Vec<Vec<f64>>,
    inv_l2: Vec<f64>,
    signal: f64,
    chol: nalgebra::Cholesky<f64, nalgebra::Dyn>,
    alpha: DVector<f64>,
}

fn kernel_matrix(dims: &[Dim], x: &[Vec<f64>], h: &Hyper) -> DMatrix<f64> {
    let n = x.len();
    let inv_l2 = h.inv_l2();
    let signal = h.log_signal.exp();
    let noise = h.noise();
    let mut scratch = vec![0.0; dims.len()];
    let mut k = DMatrix::zeros(n, n);
    for a in 0..n {
        k[(a, a)] = signal + noise;
        for b in 0..a {
            let v = signal * matern52(scaled_sq(dims, &x[a], &x[b], &inv_l2, &mut scratch));
            k[(a, b)] = v;
            k[(b, a)] = v;
        }
    }
    k
}

/// Log marginal likelihood + log prior, and its gradient in (ln ℓ…, ln s², ln σ²). `None` if K is not positive definite.
fn objective(dims: &[Dim], x: &[Vec<f64>], y: &DVector<f64>, h: &Hyper) -> Option<(f64, Vec<f64>)> {
    let n = x.len();
    let d = dims.len();
    let k = kernel_matrix(dims, x, h);
    let chol = k.cholesky()?;
    let alpha = chol.solve(y);
    let log_det: f64 = chol.l_dirty().diagonal().iter().take(n).map(|v| v.ln()).sum::<f64>() * 2.0;
    let mut value = -0.5 * y.dot(&alpha) - 0.5 * log_det;
    let k_inv = chol.inverse();
    // W = ααᵀ − K⁻¹; ∂L/∂θ = ½ tr(W ∂K/∂θ).
    let inv_l2 = h.inv_l2();
    let signal = h.log_signal.exp();
    let noise = h.noise();
    // ∂σ²/∂(log_noise): σ² = MIN_NOISE + e^(log_noise).
    let excess = h.log_noise.exp();
    let mut grad = vec![0.0; d + 2];
    let mut scratch = vec![0.0; d];
    for a in 0..n {
        let w_aa = alpha[a] * alpha[a] - k_inv[(a, a)];
        grad[d] += 0.5 * w_aa * signal;
        grad[d + 1] += 0.5 * w_aa * excess;
        for b in 0..a {
            let w = alpha[a] * alpha[b] - k_inv[(a, b)];
            let r2 = scaled_sq(dims, &x[a], &x[b], &inv_l2, &mut scratch);
            let r = r2.sqrt();
            let e = (-SQRT5 * r).exp();
            // Off-diagonal pairs count twice in the trace.
            grad[d] += w * signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
            let common = w * signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e;
            for i in 0..d {
                grad[i] += common * scratch[i];
            }
        }
    }
    // Priors (Optuna GPSampler's): on λ = 1/ℓ², −(0.1/λ + 0.1λ); Gamma(2, 1) on s²; Gamma(1.1, 30) on σ².
    for (g, log_l) in grad.iter_mut().zip(&h.log_l) {
        let t = 2.0 * log_l;
        value -= 0.1 * t.exp() + 0.1 * (-t).exp();
        *g -= 0.2 * t.exp() - 0.2 * (-t).exp();
    }
    value += h.log_signal - signal;
    grad[d] += 1.0 - signal;
    value += 0.1 * noise.ln() - 30.0 * noise;
    grad[d + 1] += (0.1 / noise - 30.0) * excess;
    value.is_finite().then_some((value, grad))
}

/// The noise variance never goes below this (Optuna's `minimum_noise`): the
/// fitted parameter is ln(σ² − MIN_NOISE), so the floor needs no clamp.
const MIN_NOISE: f64 = 1e-6;

/// The hyperparameters of highest log marginal likelihood + log prior, by
/// L-BFGS on their logarithms from Optuna's start (ℓ = 1, s² = 1, σ² = 1),
/// until every gradient component is below 1e-2 (scipy's `gtol` as Optuna
/// sets it) or the value stops moving.
///
/// A fixed budget of Adam steps from one start (the earlier fit) stopped
/// wherever the budget ran out: the length scales of a smooth function and a
/// noise far below the start were still moving, so the model was blurred just
/// where the search needs it sharp.
fn fit(dims: &[Dim], x: &[Vec<f64>], y: &DVector<f64>) -> Hyper {
    let d = dims.len();
    let hyper = |p: &[f64]| Hyper { log_l: p[..d].to_vec(), log_signal: p[d], log_noise: p[d + 1] };
    let loss = |p: &[f64]| objective(dims, x, y, &hyper(p)).map(|(v, g)| (-v, g.into_iter().map(|g| -g).collect()));
    let start: Vec<f64> = vec![0.0; d].into_iter().chain([0.0, (1.0 - 0.99 * MIN_NOISE).ln()]).collect();
    let p = lbfgs_minimise(loss, start, FIT_MAX_ITERATIONS, 1e-2);
    hyper(&p)
}

/// Upper bound on L-BFGS iterations of one fit (converged fits take far fewer).
const FIT_MAX_ITERATIONS: usize = 200;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Minimises `f` (value and gradient; `None` where undefined) by L-BFGS with
/// a memory of 10 pairs and a backtracking (Armijo) line search, from `x0`,
/// until every gradient component is below `gtol`, the value stops moving
/// or `max_iter` iterations. O(max_iter · (cost of f + 10·len)).
fn lbfgs_minimise(f: impl Fn(&[f64]) -> Option<(f64, Vec<f64>)>, x0: Vec<f64>, max_iter: usize, gtol: f64) -> Vec<f64> {
    let Some((mut fx, mut g)) = f(&x0) else { return x0 };
    let mut x = x0;
    let mut memory: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = std::collections::VecDeque::new();
    for _ in 0..max_iter {
        if g.iter().all(|v| v.abs() < gtol) {
            break;
        }
        // Two-loop recursion: q ≈ H⁻¹ g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(memory.len());
        for (s, yv, rho) in memory.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(yv).for_each(|(q, y)| *q -= a * y);
            alphas.push(a);
        }
        let gamma = match memory.back() {
            Some((s, yv, _)) => dot(s, yv) / dot(yv, yv),
            // First step: at most 1 in the largest coordinate.
            None => 1.0 / g.iter().fold(1.0f64, |m, v| m.max(v.abs())),
        };
        q.iter_mut().for_each(|q| *q *= gamma);
        for ((s, yv, rho), a) in memory.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope.is_nan() || slope >= 0.0 {
            memory.clear();
            let scale = 1.0 / g.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            dir = g.iter().map(|v| -v * scale).collect();
            slope = dot(&g, &dir);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let xn: Vec<f64> = x.iter().zip(&dir).map(|(x, d)| x + step * d).collect();
            if let Some((fn_, gn)) = f(&xn)
                && fn_ <= fx + 1e-4 * step * slope
            {
                accepted = Some((xn, fn_, gn));
                break;
            }
            step *= 0.5;
        }
        let Some((xn, fn_, gn)) = accepted else { break };
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        if sy > 1e-12 {
            memory.push_back((s, yv, 1.0 / sy));
            if memory.len() > 10 {
                memory.pop_front();
            }
        }
        let moved = fx - fn_;
        (x, fx, g) = (xn, fn_, gn);
        if moved <= 1e-10 * fx.abs().max(1.0) {
            break;
        }
    }
    x
}

impl Posterior {
    fn new(dims: &[Dim], x: Vec<Vec<f64>>, y: &DVector<f64>, h: &Hyper) -> Option<Self> {
        let mut h = h.clone();
        // Add jitter until the factorisation succeeds (duplicated points with tiny noise).
        for _ in 0..6 {
            if let Some(chol) = kernel_matrix(dims, &x, &h).cholesky() {
                let alpha = chol.solve(y);
                return Some(Posterior {
                    dims: dims.to_vec(),
                    inv_l2: h.inv_l2(),
                    signal: h.log_signal.exp(),
                    x,
                    chol,
                    alpha,
                });
            }
            h.log_noise = h.log_noise.max(MIN_NOISE.ln()) + 2.3;
        }
        None
    }

    /// Posterior mean and standard deviation at `p`. O(n² + n·d).
    fn predict(&self, p: &[f64], scratch: &mut [f64]) -> (f64, f64) {
        let n = self.x.len();
        let k = DVector::from_iterator(
            n,
            self.x.iter().map(|xi| self.signal * matern52(scaled_sq(&self.dims, p, xi, &self.inv_l2, scratch))),
        );
        let mean = k.dot(&self.alpha);
        let v = self.chol.l_dirty().solve_lower_triangular(&k).unwrap_or_else(|| DVector::zeros(n));
        let var = (self.signal - v.norm_squared()).max(1e-12);
        (mean, var.sqrt())
    }
}

/// ln EI for minimisation at mean `mu`, deviation `sigma`, incumbent `best`; finite even far in the tail.
fn log_ei(mu: f64, sigma: f64, best: f64) -> f64 {
    let z = (best - mu) / sigma;
    let h = if z > -6.0 {
        (z * gauss::cdf(z) + gauss::ln_pdf(z).exp()).max(1e-300).ln()
    } else {
        // EI ≈ φ(z)/z² (1 − 3/z²) in the far tail.
        gauss::ln_pdf(z) - 2.0 * z.abs().ln() + (1.0 - 3.0 / (z * z)).ln()
    };
    sigma.ln() + h
}

impl Sampler for GaussianProcess {
    fn name(&self) -> &str {
        "bayesianoptimization"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>> {
        self.validate()?;
        let params = space.params();
        let dims: Vec<Dim> = params.iter().map(dim).collect();
        let enc = |a: &Assignment| -> Vec<f64> { params.iter().zip(a).map(|(p, v)| encode(p, v)).collect() };
        let mut x: Vec<Vec<f64>> = Vec::new();
        let mut losses: Vec<f64> = Vec::new();
        let mut pending: Vec<Vec<f64>> = Vec::new();
        for t in &history.trials {
            match t.state {
                TrialState::Completed(v) if v.is_finite() => {
                    x.push(enc(&t.assignment));
                    losses.push(history.direction.loss(v));
                }
                TrialState::Pending => pending.push(enc(&t.assignment)),
                _ => {}
            }
        }
        if x.len() < self.n_startup_trials.max(2) {
            return Ok((0..count).map(|_| random::sample(space, rng)).collect());
        }
        let n = losses.len() as f64;
        let mean = losses.iter().sum::<f64>() / n;
        let sd = (losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt();
        let sd = if sd > 1e-12 { sd } else { 1.0 };
        let mut y: Vec<f64> = losses.iter().map(|l| (l - mean) / sd).collect();
        let best = y.iter().copied().fold(f64::INFINITY, f64::min);
        let hyper = fit(&dims, &x, &DVector::from_vec(y.clone()));

        let mut out = Vec::with_capacity(count);
        let mut scratch = vec![0.0; dims.len()];
        // Pending trials join with the posterior mean as their value (kriging believer).
        if !pending.is_empty()
            && let Some(post) = Posterior::new(&dims, x.clone(), &DVector::from_vec(y.clone()), &hyper)
        {
            for p in pending {
                let (mu, _) = post.predict(&p, &mut scratch);
                x.push(p);
                y.push(mu);
            }
        }
        for _ in 0..count {
            let Some(post) = Posterior::new(&dims, x.clone(), &DVector::from_vec(y.clone()), &hyper) else {
                out.push(random::sample(space, rng));
                continue;
            };
            let point = self.maximise(params, &post, best, &losses_order(&y, &x), rng, &mut scratch);
            let (mu, _) = post.predict(&point, &mut scratch);
            let assignment: Assignment = params.iter().zip(&point).map(|(p, u)| decode(p, *u)).collect();
            // Believe the decoded point, which is where the trial will actually run.
            x.push(enc(&assignment));
            y.push(mu);
            out.push(assignment);
        }
        Ok(out)
    }
}

/// The observed points, best first (at most 5).
fn losses_order(y: &[f64], x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut idx: Vec<usize> = (0..y.len()).collect();
    idx.sort_by(|&a, &b| y[a].total_cmp(&y[b]));
    idx.into_iter().take(5).map(|i| x[i].clone()).collect()
}

impl GaussianProcess {
    /// The point of highest ln EI among points a trial can run at: random
    /// candidates and jittered copies of the best points (grid coordinates
    /// snapped to grid values), then a pattern search from the 5 best
    /// candidates over the continuous and large-grid coordinates, alternating
    /// with an exhaustive pass over each categorical and small-grid coordinate.
    fn maximise(
        &self,
        params: &[Param],
        post: &Posterior,
        best: f64,
        elites: &[Vec<f64>],
        rng: &mut dyn Rng,
        scratch: &mut [f64],
    ) -> Vec<f64> {
        let dims = &post.dims;
        let d = dims.len();
        let score = |p: &[f64], scratch: &mut [f64]| {
            let (mu, sigma) = post.predict(p, scratch);
            log_ei(mu, sigma, best)
        };
        let random_point = |rng: &mut dyn Rng| -> Vec<f64> {
            dims.iter()
                .zip(params)
                .map(|(dim, param)| match dim {
                    Dim::Continuous => rng.random::<f64>(),
                    Dim::Grid { .. } => snap(param, dim, rng.random::<f64>()),
                    Dim::Categorical(k) => rng.random_range(0..*k) as f64,
                })
                .collect()
        };
        let mut candidates: Vec<(f64, Vec<f64>)> = Vec::with_capacity(self.n_candidates + 20 * elites.len());
        for _ in 0..self.n_candidates {
            let p = random_point(rng);
            candidates.push((score(&p, scratch), p));
        }
        for elite in elites {
            for scale in [0.1, 0.03, 0.01, 0.001] {
                for _ in 0..5 {
                    let p: Vec<f64> = elite
                        .iter()
                        .zip(dims)
                        .zip(params)
                        .map(|((v, dim), param)| match dim {
                            Dim::Continuous | Dim::Grid { .. } => {
                                let z = gauss::inv_cdf(rng.random::<f64>().clamp(1e-12, 1.0 - 1e-12));
                                snap(param, dim, (v + scale * z).clamp(0.0, 1.0))
                            }
                            Dim::Categorical(_) => *v,
                        })
                        .collect();
                    candidates.push((score(&p, scratch), p));
                }
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut best_point = candidates.first().cloned().unwrap_or_else(|| (f64::NEG_INFINITY, vec![0.5; d]));
        for (start_score, start) in candidates.into_iter().take(5) {
            let (mut value, mut p) = (start_score, start);
            // Alternate: refine the continuous coordinates (large grids move
            // and snap), then try every value of each category and small grid
            // at the refined point; repeat while one changes (a choice is only
            // as good as the point it is tried at).
            for _round in 0..4 {
                let mut step = 0.05;
                while step > 1e-7 {
                    let mut improved = false;
                    for i in 0..d {
                        let moves = match &dims[i] {
                            Dim::Continuous | Dim::Grid { values: None } => true,
                            Dim::Grid { values: Some(_) } | Dim::Categorical(_) => false,
                        };
                        if !moves {
                            continue;
                        }
                        for dir in [1.0, -1.0] {
                            let mut q = p.clone();
                            q[i] = snap(&params[i], &dims[i], (q[i] + dir * step).clamp(0.0, 1.0));
                            if q[i] == p[i] {
                                continue;
                            }
                            let s = score(&q, scratch);
                            if s > value {
                                (value, p) = (s, q);
                                improved = true;
                                break;
                            }
                        }
                    }
                    if !improved {
                        step *= 0.5;
                    }
                }
                let mut switched = false;
                for i in 0..d {
                    let options: Vec<f64> = match &dims[i] {
                        Dim::Categorical(k) => (0..*k).map(|c| c as f64).collect(),
                        Dim::Grid { values: Some(values) } => values.clone(),
                        Dim::Continuous | Dim::Grid { values: None } => continue,
                    };
                    for c in options {
                        if c == p[i] {
                            continue;
                        }
                        let mut q = p.clone();
                        q[i] = c;
                        let s = score(&q, scratch);
                        if s > value {
                            (value, p) = (s, q);
                            switched = true;
                        }
                    }
                }
                if !switched {
                    break;
                }
            }
            if value > best_point.0 {
                best_point = (value, p);
            }
        }
        best_point.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};
    use rand::SeedableRng;

    fn space() -> SearchSpace {
        SearchSpace::new(vec![
            Param::new(
                "lr",
                Domain::Double { low: 1e-4, high: 1.0, step: None, distribution: Distribution::LogUniform },
            )
            .unwrap(),
            Param::new(
                "drop",
                Domain::Double { low: 0.0, high: 0.5, step: Some(0.05), distribution: Distribution::Uniform },
            )
            .unwrap(),
            Param::new("n", Domain::Int { low: 2, high: 64, step: 2, distribution: Distribution::LogUniform }).unwrap(),
            Param::new("batch", Domain::Discrete { values: vec![16.0, 32.0, 64.0] }).unwrap(),
            Param::new("act", Domain::Categorical { choices: vec!["relu".into(), "tanh".into(), "gelu".into()] })
                .unwrap(),
        ])
        .unwrap()
    }

    fn f(a: &Assignment) -> f64 {
        let v = |i: usize| match a[i] {
            ParamValue::Float(x) => x,
            ParamValue::Int(n) => n as f64,
            ParamValue::Category(c) => c as f64,
        };
        (v(0).log10() + 2.0).powi(2)
            + (v(1) - 0.2).powi(2)
            + (v(2).ln() - 3.0).powi(2) / 4.0
            + 0.1 * f64::from(u8::from(v(4) != 2.0))
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let dims = vec![Dim::Continuous, Dim::Categorical(3)];
        let x = vec![vec![0.1, 0.0], vec![0.5, 1.0], vec![0.9, 2.0], vec![0.3, 1.0]];
        let y = DVector::from_vec(vec![1.0, -0.5, 0.3, 0.2]);
        let h = Hyper { log_l: vec![-0.7, 0.2], log_signal: 0.1, log_noise: -3.0 };
        let (_, grad) = objective(&dims, &x, &y, &h).unwrap();
        let eps = 1e-6;
        for i in 0..4 {
            let mut params = vec![h.log_l[0], h.log_l[1], h.log_signal, h.log_noise];
            let at = |params: &[f64]| {
                let h = Hyper { log_l: params[..2].to_vec(), log_signal: params[2], log_noise: params[3] };
                objective(&dims, &x, &y, &h).unwrap().0
            };
            params[i] += eps;
            let up = at(&params);
            params[i] -= 2.0 * eps;
            let down = at(&params);
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (numeric - grad[i]).abs() < 1e-4 * (1.0 + numeric.abs()),
                "θ{i}: analytic {} vs numeric {numeric}",
                grad[i]
            );
        }
    }

    #[test]
    fn lbfgs_finds_the_bottom_of_the_rosenbrock_valley() {
        // Rosenbrock in 2-D from the classic start; undefined (None) beyond x = 3.
        let f = |p: &[f64]| {
            let (x, y) = (p[0], p[1]);
            (x < 3.0).then(|| {
                let v = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
                (v, vec![-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])
            })
        };
        let p = lbfgs_minimise(f, vec![-1.2, 1.0], 200, 1e-6);
        assert!((p[0] - 1.0).abs() < 1e-3 && (p[1] - 1.0).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn the_fit_sharpens_on_a_smooth_noiseless_function() {
        // A deterministic smooth objective: the fitted noise must reach the
        // floor's order, not stop on the way down from its start.
        let dims = vec![Dim::Continuous, Dim::Continuous];
        let x: Vec<Vec<f64>> =
            (0..30).map(|i| vec![(i as f64 * 0.618) % 1.0, (i as f64 * 0.382 + 0.1) % 1.0]).collect();
        let raw: Vec<f64> = x.iter().map(|p| (p[0] - 0.3).powi(2) + 2.0 * (p[1] - 0.6).powi(2)).collect();
        let mean = raw.iter().sum::<f64>() / raw.len() as f64;
        let sd = (raw.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / raw.len() as f64).sqrt();
        let y = DVector::from_iterator(raw.len(), raw.iter().map(|v| (v - mean) / sd));
        let h = fit(&dims, &x, &y);
        assert!(h.noise() < 1e-4, "noise {}", h.noise());
    }

    #[test]
    fn finds_the_optimum_of_a_mixed_space_and_spreads_batches() {
        let space = space();
        let gp = GaussianProcess::default();
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(2);
        let mut history = History::new(crate::Direction::Minimize);
        while history.trials.len() < 40 {
            let batch = gp.suggest(&space, &history, 2, &mut rng).unwrap();
            assert_ne!(batch[0], batch[1]);
            for a in batch {
                assert!(space.contains(&a), "{a:?}");
                let v = f(&a);
                history.push(a, TrialState::Completed(v));
            }
        }
        let best = history.completed().map(|(_, l)| l).fold(f64::INFINITY, f64::min);
        // The continuous part is solved (the categorical term is 0 or 0.1).
        assert!(best < 0.15, "best {best}");
    }

    #[test]
    fn converges_where_random_search_would_need_thousands_of_trials() {
        let x = |name: &str| {
            Param::new(name, Domain::Double { low: -5.0, high: 5.0, step: None, distribution: Distribution::Uniform })
                .unwrap()
        };
        let space = SearchSpace::new(vec![x("x"), x("y")]).unwrap();
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(9);
        let mut history = History::new(crate::Direction::Maximize);
        for _ in 0..25 {
            let a = GaussianProcess::default().suggest(&space, &history, 1, &mut rng).unwrap().remove(0);
            let (ParamValue::Float(x), ParamValue::Float(y)) = (a[0], a[1]) else { unreachable!() };
            history.push(a, TrialState::Completed(-(x - 1.0).powi(2) - (y + 2.0).powi(2)));
        }
        // Random search reaches 0.01 in 25 trials about once in 130 runs.
        let best = history.completed().map(|(_, l)| l).fold(f64::INFINITY, f64::min);
        assert!(best < 0.01, "best {best}");
    }

    #[test]
    fn the_model_runs_every_category() {
        // Only the category matters and the last one is best: the model must
        // run it (decoding once sent every index above 1 to choice 1).
        let space = space();
        let gp = GaussianProcess::default();
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let mut history = History::new(crate::Direction::Minimize);
        let loss = |a: &Assignment| if a[4] == ParamValue::Category(2) { 0.0 } else { 1.0 };
        for c in [0, 1, 0, 1, 0, 1, 0, 1, 0, 1] {
            let mut a = random::sample(&space, &mut rng);
            a[4] = ParamValue::Category(c);
            let v = loss(&a);
            history.push(a, TrialState::Completed(v));
        }
        let mut runs = 0;
        for _ in 0..5 {
            let a = gp.suggest(&space, &history, 1, &mut rng).unwrap().remove(0);
            runs += usize::from(a[4] == ParamValue::Category(2));
            let v = loss(&a);
            history.push(a, TrialState::Completed(v));
        }
        assert!(runs > 0, "category 2 never suggested");
    }

    #[test]
    fn every_value_of_every_domain_round_trips() {
        for param in space().params() {
            let n = param.cardinality().unwrap_or(0);
            for k in 0..n.min(200) {
                let Some(v) = param.nth(k) else { continue };
                let u = encode(param, &v);
                assert_eq!(decode(param, u), v, "{} value {k}", param.name());
                let d = dim(param);
                assert_eq!(snap(param, &d, u), u, "{} value {k} is not a fixed point of snap", param.name());
            }
        }
    }

    proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Every suggestion of a fitted model is inside the space.
        #[test]
        fn suggestions_stay_inside_the_space(seed in 0u64..1000) {
            let space = space();
            let gp = GaussianProcess { n_startup_trials: 4, n_candidates: 32 };
            let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
            let mut history = History::new(crate::Direction::Minimize);
            while history.trials.len() < 10 {
                for a in gp.suggest(&space, &history, 2, &mut rng).unwrap() {
                    prop_assert!(space.contains(&a), "{:?}", a);
                    let v = f(&a);
                    history.push(a, TrialState::Completed(v));
                }
            }
        }

        /// Snapping any coordinate lands on a grid value and is idempotent.
        #[test]
        fn snap_is_idempotent(u in 0.0..1.0f64) {
            for param in space().params() {
                let d = dim(param);
                let s = snap(param, &d, u);
                prop_assert_eq!(snap(param, &d, s), s);
                prop_assert!(param.contains(&decode(param, s)));
            }
        }

        /// Decoding any coordinate gives a value of the space, and encoding a value decodes back to it.
        #[test]
        fn decode_stays_inside_and_inverts_encode(u in proptest::collection::vec(0.0..1.0f64, 5), c in 0usize..3) {
            let space = space();
            let mut u = u;
            u[4] = c as f64;
            let a: Assignment = space.params().iter().zip(&u).map(|(p, x)| decode(p, *x)).collect();
            prop_assert!(space.contains(&a), "{:?}", a);
            let again: Assignment = space.params().iter().zip(&a).map(|(p, v)| decode(p, encode(p, v))).collect();
            for (x, y) in a.iter().zip(&again) {
                match (x, y) {
                    (ParamValue::Float(x), ParamValue::Float(y)) => prop_assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0)),
                    _ => prop_assert!(x == y),
                }
            }
        }
    }
}
