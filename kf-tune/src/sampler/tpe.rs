//! The Tree-structured Parzen Estimator (independent TPE).
//!
//! Bergstra et al., "Algorithms for Hyper-Parameter Optimization" (NeurIPS
//! 2011), with the refinements Optuna's `TPESampler` uses: the completed trials
//! are split into the best γ(n) = min(⌈0.1·n⌉, 25) ("below") and the rest
//! ("above"); each parameter gets two Parzen estimators l(x) (below) and g(x)
//! (above), each a mixture of one truncated-normal kernel per observation plus
//! a prior kernel (centred on the range, σ = the range) of weight
//! `prior_weight`; older observations weigh less once there are more than 25.
//! `n_ei_candidates` draws from l are scored by log l(x) − log g(x) (the
//! expected-improvement ratio) and the best is suggested. Parameters are
//! independent: each is chosen on its own.
//!
//! Bandwidths: an observation's σ is the larger distance to its sorted
//! neighbours (the lowest and highest take their one neighbour's distance:
//! the bounds are not neighbours, Optuna's default `consider_endpoints =
//! False`), clipped to [range / min(100, n + 2), range] (Bergstra's "magic
//! clip", counting the prior kernel).
//! Log priors work on ln x. Integer and stepped ranges widen the range by half
//! a step on each side, draw continuously, round to the grid, and score the
//! probability mass of the grid point's bin rather than a density, so l/g
//! compare like with like. `categorical` and `discrete` parameters use a
//! mixture as Optuna 5 does: each observation's kernel gives its choice 1 and
//! every choice prior_weight/(n+1) (normalised), plus a uniform prior kernel.
//!
//! Pending trials (suggested, not finished) join the "above" group as if they
//! had the worst loss — the constant liar — so parallel workers are pushed
//! away from points already being tried; within one call each suggestion is a
//! pending trial for the next. Failed trials and non-finite objectives are
//! ignored. Until `n_startup_trials` trials have completed, suggestions are
//! drawn from the prior, as random search does.
//!
//! Cost per suggestion: O(d · (n log n + c · n)) for d parameters, n trials in
//! the history and c = `n_ei_candidates`. The c · n part (one kernel term per
//! candidate) dominates from a few hundred trials on; it runs as branch-free
//! loops with a polynomial exp (`log_sum_exp`) that the compiler
//! vectorises, and agrees with libm's sums to about 1e-15 (see
//! `benches/tpe_ask.rs` for the latency, and `tests/tpe_pinned.rs` for seeded
//! runs whose every suggestion stayed the same bits through that change).

use rand::{Rng, RngExt};

use crate::gauss;
use crate::sampler::{History, Sampler, TrialState, random};
use crate::space::{Assignment, Distribution, Domain, Param, ParamValue, SearchSpace};
use crate::{Error, Result};

/// Independent TPE (Katib `tpe`).
///
/// ```
/// use kf_tune::sampler::tpe::Tpe;
/// use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
/// use kf_tune::{Direction, History, Sampler, TrialState};
/// use rand::SeedableRng;
///
/// let space = SearchSpace::new(vec![Param::new(
///     "x",
///     Domain::Double { low: -5.0, high: 5.0, step: None, distribution: Distribution::Uniform },
/// )?])?;
/// let tpe = Tpe::default();
/// let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
/// let mut history = History::new(Direction::Minimize);
/// for _ in 0..40 {
///     let a = tpe.suggest(&space, &history, 1, &mut rng)?.remove(0);
///     let ParamValue::Float(x) = a[0] else { unreachable!() };
///     history.push(a, TrialState::Completed((x - 1.0).powi(2)));
/// }
/// let best = history.completed().map(|(_, loss)| loss).fold(f64::INFINITY, f64::min);
/// assert!(best < 0.05, "best loss {best}");
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tpe {
    /// Completed trials drawn from the prior before the model is used (default 10).
    pub n_startup_trials: usize,
    /// Candidates drawn from l(x) per parameter and suggestion (default 24).
    pub n_ei_candidates: usize,
    /// Weight of the prior kernel in every estimator (default 1.0).
    pub prior_weight: f64,
    /// Treat pending trials as the worst observations (default true).
    pub constant_liar: bool,
}

impl Default for Tpe {
    fn default() -> Self {
        Tpe { n_startup_trials: 10, n_ei_candidates: 24, prior_weight: 1.0, constant_liar: true }
    }
}

impl Tpe {
    /// Checks the settings: at least one candidate, a positive finite prior weight.
    pub fn validate(&self) -> Result<()> {
        let fail = |setting: &str, message: String| {
            Err(Error::InvalidSetting { algorithm: "tpe".into(), setting: setting.into(), message })
        };
        if self.n_ei_candidates == 0 {
            return fail("n_ei_candidates", "expected at least 1, found 0".into());
        }
        if !(self.prior_weight.is_finite() && self.prior_weight > 0.0) {
            return fail("prior_weight", format!("expected a positive number, found {}", self.prior_weight));
        }
        Ok(())
    }
}

impl Sampler for Tpe {
    fn name(&self) -> &str {
        "tpe"
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        history: &History,
        count: usize,
        rng: &mut dyn Rng,
    ) -> Result<Vec<Assignment>> {
        self.validate()?;
        Ok(suggest_batch(history, count, |current| self.suggest_one(space, current, rng)))
    }
}

/// Suggests `count` points one at a time, each pending for the next (the
/// constant liar); the history is only cloned when there is a batch to
/// extend it with. Shared by the independent and multivariate TPE.
pub(crate) fn suggest_batch(
    history: &History,
    count: usize,
    mut suggest_one: impl FnMut(&History) -> Assignment,
) -> Vec<Assignment> {
    let mut out = Vec::with_capacity(count);
    let mut extended: Option<History> = None;
    for _ in 0..count {
        let next = suggest_one(extended.as_ref().unwrap_or(history));
        if count > 1 {
            extended.get_or_insert_with(|| history.clone()).push(next.clone(), TrialState::Pending);
        }
        out.push(next);
    }
    out
}

/// Splits the history's trial positions into the good (`below`) and the rest
/// (`above`, with pending trials under the constant liar), each oldest first
/// so recency weights favour recent trials. `None` while fewer than
/// `n_startup_trials` trials have completed. O(n): only the γ(n) ≤ 25 best
/// are selected (by loss, then position, a strict order, so the split is the
/// one a full sort would give) and sorted; the rest keep history order.
pub(crate) fn split_good_bad(
    history: &History,
    n_startup_trials: usize,
    constant_liar: bool,
) -> Option<(Vec<usize>, Vec<usize>)> {
    // (position in history, loss); position breaks ties and orders recency.
    let mut completed: Vec<(usize, f64)> = history
        .trials
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t.state {
            TrialState::Completed(v) if v.is_finite() => Some((i, history.direction.loss(v))),
            _ => None,
        })
        .collect();
    if completed.len() < n_startup_trials.max(1) {
        return None;
    }
    let n_below = gamma(completed.len());
    if n_below < completed.len() {
        completed.select_nth_unstable_by(n_below, |a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    }
    let mut below: Vec<usize> = completed[..n_below].iter().map(|c| c.0).collect();
    below.sort_unstable();
    // Everything else that counts, in history order: completed trials not in
    // `below` (a merge walk over the sorted `below`), and pending ones.
    let mut above = Vec::with_capacity(history.trials.len() - n_below);
    let mut next_below = below.iter().copied().peekable();
    for (i, t) in history.trials.iter().enumerate() {
        match t.state {
            TrialState::Completed(v) if v.is_finite() => {
                if next_below.peek() == Some(&i) {
                    next_below.next();
                } else {
                    above.push(i);
                }
            }
            TrialState::Pending if constant_liar => above.push(i),
            _ => {}
        }
    }
    Some((below, above))
}

impl Tpe {
    fn suggest_one(&self, space: &SearchSpace, history: &History, rng: &mut dyn Rng) -> Assignment {
        let Some((below, above)) = split_good_bad(history, self.n_startup_trials, self.constant_liar) else {
            return random::sample(space, rng);
        };

        // Every parameter's estimators share their groups' weights.
        let (mut below_weights, mut above_weights) = (LnWeights::default(), LnWeights::default());
        space
            .params()
            .iter()
            .enumerate()
            .map(|(d, param)| {
                let values = |group: &[usize]| -> Vec<ParamValue> {
                    group.iter().filter_map(|&i| history.trials[i].assignment.get(d).copied()).collect()
                };
                let groups = [(values(&below), &mut below_weights), (values(&above), &mut above_weights)];
                self.choose(param, groups, rng)
            })
            .collect()
    }

    /// One parameter: draw candidates from l, keep the best log l − log g.
    fn choose(
        &self,
        param: &Param,
        [(below, below_weights), (above, above_weights)]: [(Vec<ParamValue>, &mut LnWeights); 2],
        rng: &mut dyn Rng,
    ) -> ParamValue {
        let (below, above) = (below.as_slice(), above.as_slice());
        match Numeric::of(param) {
            Some(numeric) => {
                let l = numeric.estimator(below, self.prior_weight, below_weights);
                let g = numeric.estimator(above, self.prior_weight, above_weights);
                let mut best = (f64::NEG_INFINITY, None);
                // A grid has few points and candidates repeat them: score each once.
                let mut scored: Vec<(u64, f64)> = Vec::new();
                let mut terms = Vec::with_capacity(below.len().max(above.len()) + 1);
                for _ in 0..self.n_ei_candidates {
                    let (value, internal) = numeric.snap(l.sample(rng));
                    let score = match scored.iter().find(|(bits, _)| *bits == internal.to_bits()) {
                        Some(&(_, score)) => score,
                        None => {
                            let score =
                                numeric.log_mass(&l, internal, &mut terms) - numeric.log_mass(&g, internal, &mut terms);
                            if numeric.step.is_some() {
                                scored.push((internal.to_bits(), score));
                            }
                            score
                        }
                    };
                    if score > best.0 || best.1.is_none() {
                        best = (score, Some(value));
                    }
                }
                best.1.unwrap_or_else(|| param.from_unit(rng.random::<f64>()))
            }
            None => {
                let n = choices(param);
                let l = categorical_weights(param, n, below, self.prior_weight);
                let g = categorical_weights(param, n, above, self.prior_weight);
                let mut best = (f64::NEG_INFINITY, 0);
                for _ in 0..self.n_ei_candidates {
                    let c = pick(&l, rng.random::<f64>());
                    let score = l[c].ln() - g[c].ln();
                    if score > best.0 {
                        best = (score, c);
                    }
                }
                category_value(param, best.1)
            }
        }
    }
}

/// γ(n): how many of n completed trials are "good".
pub(super) fn gamma(n: usize) -> usize {
    n.div_ceil(10).clamp(1, 25)
}

/// Observation weights by recency (oldest first): flat up to 25, then a ramp
/// from 1/n to 1 on all but the newest 25 (Optuna's `default_weights`).
pub(super) fn recency_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

pub(super) fn choices(param: &Param) -> usize {
    match param.domain() {
        Domain::Discrete { values } => values.len(),
        Domain::Categorical { choices } => choices.len(),
        _ => 1,
    }
}

pub(super) fn category_index(param: &Param, value: &ParamValue) -> Option<usize> {
    match (param.domain(), value) {
        (Domain::Categorical { choices }, ParamValue::Category(i)) => (*i < choices.len()).then_some(*i),
        (Domain::Discrete { values }, ParamValue::Float(v)) => values.iter().position(|x| x.to_bits() == v.to_bits()),
        _ => None,
    }
}

pub(super) fn category_value(param: &Param, index: usize) -> ParamValue {
    match param.domain() {
        Domain::Discrete { values } => ParamValue::Float(values.get(index).copied().unwrap_or(values[0])),
        _ => ParamValue::Category(index),
    }
}

/// Normalised category probabilities: prior weight spread evenly, plus the
/// recency-weighted counts of the observations.
fn categorical_weights(param: &Param, n: usize, observed: &[ParamValue], prior_weight: f64) -> Vec<f64> {
    // Optuna 5's estimator: each observation's kernel puts prior_weight/(m+1)
    // on every choice besides 1 on its own (row-normalised), and the prior
    // kernel is uniform; the mixture weighs them by recency and prior_weight.
    let m = observed.len();
    let fill = prior_weight / (m + 1) as f64;
    let row_total = 1.0 + n as f64 * fill;
    let mut p = vec![prior_weight / n as f64; n];
    let mut total = prior_weight;
    for (value, w) in observed.iter().zip(recency_weights(m)) {
        if let Some(i) = category_index(param, value) {
            p.iter_mut().for_each(|x| *x += w * fill / row_total);
            p[i] += w / row_total;
            total += w;
        }
    }
    p.iter_mut().for_each(|x| *x /= total);
    p
}

/// The index whose cumulative probability first exceeds `u`.
pub(super) fn pick(p: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    for (i, x) in p.iter().enumerate() {
        acc += x;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

/// A numeric parameter seen in TPE's internal coordinates (ln x under a log prior).
pub(super) struct Numeric<'a> {
    param: &'a Param,
    pub(super) log: bool,
    low: f64,
    high: f64,
    pub(super) step: Option<f64>,
    /// Internal bounds, widened by half a step for grids.
    pub(super) lo: f64,
    pub(super) hi: f64,
}

/// A mixture of truncated normals on [lo, hi] in internal coordinates.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    weights: Vec<f64>,
    /// Φ((hi − μ)/σ) − Φ((lo − μ)/σ) per kernel.
    norms: Vec<f64>,
    /// ln w − ln σ − ln norm − ½ ln 2π per kernel, so a density costs one exp per kernel.
    log_consts: Vec<f64>,
    /// 1/σ per kernel.
    inv_sigmas: Vec<f64>,
    lo: f64,
    hi: f64,
}

impl<'a> Numeric<'a> {
    pub(super) fn of(param: &'a Param) -> Option<Self> {
        let (low, high, step, distribution) = match param.domain() {
            Domain::Double { low, high, step, distribution } => (*low, *high, *step, *distribution),
            Domain::Int { low, high, step, distribution } => {
                (*low as f64, *high as f64, Some(*step as f64), *distribution)
            }
            Domain::Discrete { .. } | Domain::Categorical { .. } => return None,
        };
        let log = matches!(distribution, Distribution::LogUniform | Distribution::LogNormal);
        let t = |x: f64| if log { x.ln() } else { x };
        let (lo, hi) = match step {
            Some(s) if !log || low - s / 2.0 > 0.0 => (t(low - s / 2.0), t(high + s / 2.0)),
            _ => (t(low), t(high)),
        };
        Some(Numeric { param, log, low, high, step, lo, hi })
    }

    pub(super) fn internal(&self, value: &ParamValue) -> Option<f64> {
        let x = match value {
            ParamValue::Float(x) => *x,
            ParamValue::Int(x) => *x as f64,
            ParamValue::Category(_) => return None,
        };
        let x = if self.log { x.ln() } else { x };
        x.is_finite().then_some(x)
    }

    fn estimator(&self, observed: &[ParamValue], prior_weight: f64, shared: &mut LnWeights) -> Parzen {
        let range = (self.hi - self.lo).max(f64::MIN_POSITIVE);
        let points: Vec<(f64, f64)> = observed
            .iter()
            .zip(recency_weights(observed.len()))
            .filter_map(|(v, w)| Some((self.internal(v)?.clamp(self.lo, self.hi), w)))
            .collect();
        let n = points.len();
        let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
        let mut sigmas = self.neighbour_sigmas(&xs);
        let mut mus: Vec<f64> = points.iter().map(|p| p.0).collect();
        let mut weights: Vec<f64> = points.iter().map(|p| p.1).collect();
        mus.push(0.5 * (self.lo + self.hi));
        sigmas.push(range);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let norms: Vec<f64> = mus
            .iter()
            .zip(&sigmas)
            .map(|(&mu, &s)| {
                let (a, b) = ((self.lo - mu) / s, (self.hi - mu) / s);
                // Kernels well inside the range (most of them) have mass 1 exactly.
                if a <= -12.0 && b >= 12.0 { 1.0 } else { gauss::mass(a, b).max(1e-300) }
            })
            .collect();
        let ln_pdf_0 = gauss::ln_pdf(0.0);
        // With no observation dropped, the weights are those of every other
        // parameter of this group: their ln is computed once per suggestion.
        if n == observed.len() {
            if shared.ln.len() != weights.len() || shared.total.to_bits() != total.to_bits() {
                shared.total = total;
                shared.ln = weights.iter().map(|w| w.ln()).collect();
            }
        } else {
            shared.ln.clear();
        }
        let mut ln_w = LnMemo::default();
        let (mut ln_s, mut ln_norm) = (LnMemo::default(), LnMemo::default());
        let log_consts = (0..mus.len())
            .map(|k| {
                let lw = shared.ln.get(k).copied().unwrap_or_else(|| ln_w.ln(weights[k]));
                lw - ln_s.ln(sigmas[k]) - ln_norm.ln(norms[k]) + ln_pdf_0
            })
            .collect();
        let inv_sigmas = sigmas.iter().map(|s| 1.0 / s).collect();
        Parzen { mus, sigmas, weights, norms, log_consts, inv_sigmas, lo: self.lo, hi: self.hi }
    }

    /// Each observation's bandwidth in internal coordinates: the larger gap
    /// to its sorted neighbours; the lowest and the highest observation take
    /// the gap to their one neighbour (Optuna's default `consider_endpoints =
    /// False`: a bound is not a neighbour), a lone observation the distance to
    /// the farther bound. Clipped to [range / min(100, n + 2), range]
    /// (Bergstra's magic clip, counting the prior kernel as Optuna does).
    /// Ties keep observation order (the position breaks them), as a stable
    /// sort would. O(n log n).
    pub(super) fn neighbour_sigmas(&self, xs: &[f64]) -> Vec<f64> {
        let range = (self.hi - self.lo).max(f64::MIN_POSITIVE);
        let n = xs.len();
        // Integer keys in f64::total_cmp's order sort faster than the floats.
        let mut order: Vec<(u64, usize)> = xs.iter().enumerate().map(|(i, x)| (total_order_key(*x), i)).collect();
        order.sort_unstable();
        let min_sigma = range / (2.0 + n as f64).min(100.0);
        let mut sigmas = vec![range; n];
        for (rank, &(_, i)) in order.iter().enumerate() {
            let x = xs[i];
            let left = (rank > 0).then(|| xs[order[rank - 1].1]);
            let right = (rank + 1 < n).then(|| xs[order[rank + 1].1]);
            let gap = match (left, right) {
                (Some(l), Some(r)) => (x - l).max(r - x),
                (None, Some(r)) => r - x,
                (Some(l), None) => x - l,
                (None, None) => (x - self.lo).max(self.hi - x),
            };
            sigmas[i] = gap.clamp(min_sigma, range);
        }
        sigmas
    }

    /// A drawn internal value turned into a parameter value, and that value's internal coordinate.
    pub(super) fn snap(&self, internal: f64) -> (ParamValue, f64) {
        let x = if self.log { internal.exp() } else { internal };
        match self.step {
            Some(step) => {
                let n = self.param.cardinality().unwrap_or(1);
                let k = ((x - self.low) / step).round().clamp(0.0, n.saturating_sub(1) as f64) as u64;
                let value = self.param.nth(k).unwrap_or_else(|| self.param.from_unit(0.0));
                let at = self.internal(&value).unwrap_or(internal);
                (value, at)
            }
            None => {
                let x = x.clamp(self.low, self.high);
                (ParamValue::Float(x), if self.log { x.ln() } else { x })
            }
        }
    }

    /// ln of the estimator's density at `x` (continuous) or mass of x's grid bin (stepped).
    fn log_mass(&self, parzen: &Parzen, x: f64, terms: &mut Vec<f64>) -> f64 {
        match self.bin_range(x) {
            None => parzen.log_density(x, terms),
            Some((a, b)) => parzen.log_mass(a, b),
        }
    }

    /// For a stepped range, the internal interval of the grid bin around internal `x`.
    pub(super) fn bin_range(&self, x: f64) -> Option<(f64, f64)> {
        let step = self.step?;
        let orig = if self.log { x.exp() } else { x };
        let t = |v: f64| if self.log { v.ln() } else { v };
        let a = if !self.log || orig - step / 2.0 > 0.0 { t(orig - step / 2.0) } else { self.lo };
        let b = t(orig + step / 2.0);
        Some((a.max(self.lo), b.min(self.hi)))
    }
}

impl Parzen {
    fn sample(&self, rng: &mut dyn Rng) -> f64 {
        let k = pick(&self.weights, rng.random::<f64>());
        gauss::truncated_from_unit(rng.random::<f64>(), self.mus[k], self.sigmas[k], self.lo, self.hi)
    }

    /// O(kernels): one term per kernel from precomputed constants into
    /// `terms`, then [`log_sum_exp`]; both loops vectorise.
    fn log_density(&self, x: f64, terms: &mut Vec<f64>) -> f64 {
        terms.clear();
        terms.extend(self.mus.iter().zip(&self.inv_sigmas).zip(&self.log_consts).map(|((&mu, &inv_sigma), &c)| {
            let z = (x - mu) * inv_sigma;
            c - 0.5 * z * z
        }));
        log_sum_exp(terms)
    }

    fn log_mass(&self, a: f64, b: f64) -> f64 {
        let mass: f64 = (0..self.mus.len())
            .map(|k| {
                let (mu, s) = (self.mus[k], self.sigmas[k]);
                self.weights[k] * gauss::mass((a - mu) / s, (b - mu) / s).max(0.0) / self.norms[k]
            })
            .sum();
        mass.max(1e-300).ln()
    }
}

/// ln x for a handful of distinct arguments that recur in any order (a grid
/// column's kernel masses, whose centres sit on the grid points; a choice
/// column's probabilities); returns exactly `x.ln()`. Holds at most 16.
#[derive(Default)]
pub(super) struct LnTable {
    seen: Vec<(u64, f64)>,
}

impl LnTable {
    pub(super) fn ln(&mut self, x: f64) -> f64 {
        let bits = x.to_bits();
        if let Some(&(_, y)) = self.seen.iter().find(|(b, _)| *b == bits) {
            return y;
        }
        let y = x.ln();
        if self.seen.len() < 16 {
            self.seen.push((bits, y));
        }
        y
    }
}

/// ln of a group's normalised kernel weights (observations then prior), kept
/// across the parameters of one suggestion; `total` is the normaliser they
/// were made with, so a different group size or prior weight recomputes them.
#[derive(Default)]
struct LnWeights {
    total: f64,
    ln: Vec<f64>,
}

/// A key whose integer order is `f64::total_cmp`'s.
fn total_order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// ln x, remembering the last argument: a Parzen estimator's kernels repeat
/// their clipped bandwidths, flat recency weights and unit truncation masses,
/// so most calls are one comparison. Returns exactly `x.ln()`.
pub(super) struct LnMemo {
    bits: u64,
    ln: f64,
}

impl Default for LnMemo {
    fn default() -> Self {
        LnMemo { bits: 1.0f64.to_bits(), ln: 1.0f64.ln() }
    }
}

impl LnMemo {
    pub(super) fn ln(&mut self, x: f64) -> f64 {
        if x.to_bits() != self.bits {
            self.bits = x.to_bits();
            self.ln = x.ln();
        }
        self.ln
    }
}

/// ln Σₖ exp(tₖ): the maximum, then Σ exp(tₖ − max) with
/// [`gauss::exp_nonpositive`]. Both passes run in four independent lanes
/// without calls or branches, so they vectorise; this is where a 1,000-trial
/// ask spends its time (one term per kernel per candidate). The sum's order
/// (and the polynomial exp) differ from a sequential sum with `f64::exp` in
/// the last bits only. −∞ for no terms; NaN if a term is NaN. O(terms).
pub(super) fn log_sum_exp(terms: &[f64]) -> f64 {
    // Independent lanes hide the latency of the exp polynomial's Horner chain.
    const LANES: usize = 8;
    let chunks = terms.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lanes = [f64::NEG_INFINITY; LANES];
    for chunk in chunks.clone() {
        for (m, &t) in lanes.iter_mut().zip(chunk) {
            *m = if t > *m { t } else { *m };
        }
    }
    let max = lanes.iter().chain(rest).fold(f64::NEG_INFINITY, |m, &t| if t > m { t } else { m });
    if !max.is_finite() {
        return if terms.iter().any(|t| t.is_nan()) { f64::NAN } else { max };
    }
    let mut sums = [0.0f64; LANES];
    for chunk in chunks {
        for (s, &t) in sums.iter_mut().zip(chunk) {
            *s += gauss::exp_nonpositive(t - max);
        }
    }
    let sum = sums.iter().sum::<f64>() + rest.iter().map(|&t| gauss::exp_nonpositive(t - max)).sum::<f64>();
    max + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    proptest::proptest! {
        /// Category probabilities are a distribution, favour the observed
        /// choices, and keep every choice possible; the bandwidths stay in
        /// [range / min(100, n + 2), range].
        #[test]
        fn categorical_weights_and_bandwidths_are_sane(
            obs in proptest::collection::vec(0usize..4, 0..40),
            xs in proptest::collection::vec(-5.0..10.0f64, 0..40),
            prior_weight in 0.1..3.0f64,
        ) {
            let param = Param::new("c", Domain::Categorical { choices: vec!["a".into(), "b".into(), "c".into(), "d".into()] }).unwrap();
            let observed: Vec<ParamValue> = obs.iter().map(|&i| ParamValue::Category(i)).collect();
            let p = categorical_weights(&param, 4, &observed, prior_weight);
            proptest::prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            proptest::prop_assert!(p.iter().all(|&x| x > 0.0));
            // Below 25 observations every one weighs the same (recency ramps after).
            if obs.len() < 25 && let Some(&top) = obs.iter().max_by_key(|&&c| obs.iter().filter(|&&o| o == c).count()) {
                let least = (0..4).min_by_key(|&c| obs.iter().filter(|&&o| o == c).count()).unwrap_or(0);
                proptest::prop_assert!(p[top] >= p[least] - 1e-12);
            }
            let x = Param::new("x", Domain::Double { low: -5.0, high: 10.0, step: None, distribution: Distribution::Uniform }).unwrap();
            let numeric = Numeric::of(&x).unwrap();
            let sigmas = numeric.neighbour_sigmas(&xs);
            let min = 15.0 / (2.0 + xs.len() as f64).min(100.0);
            proptest::prop_assert!(sigmas.iter().all(|&s| s >= min - 1e-12 && s <= 15.0 + 1e-12), "{:?}", sigmas);
        }
    }

    #[test]
    fn gamma_and_weights_follow_optuna() {
        assert_eq!((gamma(1), gamma(10), gamma(11), gamma(300)), (1, 1, 2, 25));
        assert_eq!(recency_weights(3), vec![1.0; 3]);
        let w = recency_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12 && w[4] == 1.0 && w.windows(2).all(|p| p[0] <= p[1]));
    }

    #[test]
    fn log_sum_exp_agrees_with_the_plain_formula() {
        fn plain(ts: &[f64]) -> f64 {
            let max = ts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if max == f64::NEG_INFINITY {
                return max;
            }
            max + ts.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
        }
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        for case in 0..2000 {
            let n = 1 + case % 300;
            let spread = [1.0, 30.0, 45.0, 400.0, 2000.0][case % 5];
            let mut ts: Vec<f64> = (0..n).map(|_| spread * (rng.random::<f64>() - 0.9)).collect();
            if case % 7 == 0 {
                ts[0] = f64::NEG_INFINITY;
            }
            let (got, want) = (log_sum_exp(&ts), plain(&ts));
            assert!(got == want || (got - want).abs() <= 1e-13 * want.abs().max(1.0), "case {case}: {got} vs {want}");
        }
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 5]), f64::NEG_INFINITY);
        assert!(log_sum_exp(&[1.0, f64::NAN, 0.5, 2.0, 3.0]).is_nan());
        assert!(log_sum_exp(&[f64::NAN; 3]).is_nan());
        assert_eq!(log_sum_exp(&[0.0; 8]), 8f64.ln());
    }

    #[test]
    fn constant_liar_spreads_a_batch() {
        // One good region; without the liar every member of a batch would crowd it.
        let space = SearchSpace::new(vec![
            Param::new("n", Domain::Int { low: 0, high: 20, step: 1, distribution: Distribution::Uniform }).unwrap(),
        ])
        .unwrap();
        let mut history = History::new(Direction::Minimize);
        for n in 0..=20 {
            history.push(vec![ParamValue::Int(n)], TrialState::Completed(f64::from((n - 7).pow(2) as i32)));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let batch = Tpe::default().suggest(&space, &history, 4, &mut rng).unwrap();
        let distinct: std::collections::BTreeSet<_> = batch.iter().map(|a| format!("{a:?}")).collect();
        assert!(distinct.len() >= 2, "{batch:?}");
    }

    #[test]
    fn categorical_choices_follow_the_good_trials() {
        let space = SearchSpace::new(vec![
            Param::new("c", Domain::Categorical { choices: vec!["a".into(), "b".into(), "c".into()] }).unwrap(),
        ])
        .unwrap();
        let mut history = History::new(Direction::Maximize);
        for i in 0..30 {
            let c = i % 3;
            history.push(vec![ParamValue::Category(c)], TrialState::Completed(if c == 2 { 10.0 } else { 0.0 }));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let picks = Tpe::default().suggest(&space, &history, 20, &mut rng).unwrap();
        let twos = picks.iter().filter(|a| a[0] == ParamValue::Category(2)).count();
        assert!(twos >= 15, "{twos} of 20 picked the best category");
    }

    #[test]
    fn bad_settings_are_rejected() {
        let tpe = Tpe { n_ei_candidates: 0, ..Tpe::default() };
        let err = tpe.validate().unwrap_err().to_string();
        assert!(err.contains("n_ei_candidates"), "{err}");
    }
}
