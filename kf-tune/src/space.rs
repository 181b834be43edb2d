//! Search spaces: the domain type every sampler works on.
//!
//! A [`SearchSpace`] is an ordered list of named [`Param`]s, each a [`Domain`]:
//! `double` and `int` ranges (optionally stepped, with a uniform, log-uniform,
//! normal or log-normal prior), `discrete` number lists and `categorical`
//! string lists — Katib's four parameter types. Constructors check the domain
//! (min ≤ max, step > 0, non-empty lists, positive bounds under a log prior), so a
//! space that exists is valid and samplers need not re-check it.
//!
//! An [`Assignment`] is one value per parameter, in the space's order. This
//! module owns the mapping from the unit interval to a parameter's values
//! ([`Param::from_unit`]), which random and quasi-random samplers share, and the
//! membership test ([`SearchSpace::contains`]) property tests rely on. It knows
//! nothing about Katib's wire format (see [`crate::katib`]).

use std::collections::BTreeSet;
use std::fmt;

use crate::{Error, Result, gauss};

/// The prior of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// Every value equally likely.
    #[default]
    Uniform,
    /// The logarithm uniform; needs a positive lower bound.
    LogUniform,
    /// A normal centred on the middle of the range with σ = range / 6, truncated to the range.
    Normal,
    /// As [`Distribution::Normal`] on the logarithm; needs a positive lower bound.
    LogNormal,
}

impl Distribution {
    /// Whether the prior works on the logarithm of the value.
    pub fn is_log(self) -> bool {
        matches!(self, Distribution::LogUniform | Distribution::LogNormal)
    }
}

/// The values one parameter may take.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Real numbers in `[low, high]`; with a step, only `low + k·step ≤ high`.
    Double {
        /// Lower bound, inclusive.
        low: f64,
        /// Upper bound, inclusive.
        high: f64,
        /// Grid spacing, if the range is stepped.
        step: Option<f64>,
        /// Prior over the range.
        distribution: Distribution,
    },
    /// Integers `low + k·step ≤ high`.
    Int {
        /// Lower bound, inclusive.
        low: i64,
        /// Upper bound, inclusive.
        high: i64,
        /// Spacing (1 when Katib gives none).
        step: i64,
        /// Prior over the range.
        distribution: Distribution,
    },
    /// One of a list of numbers.
    Discrete {
        /// The numbers, in the order given.
        values: Vec<f64>,
    },
    /// One of a list of strings.
    Categorical {
        /// The choices, in the order given.
        choices: Vec<String>,
    },
}

/// A parameter's value in an assignment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamValue {
    /// A `double` or `discrete` value.
    Float(f64),
    /// An `int` value.
    Int(i64),
    /// The index of a `categorical` choice.
    Category(usize),
}

/// One value per parameter, in the order of the space's parameters.
pub type Assignment = Vec<ParamValue>;

/// A named parameter with a checked domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    name: String,
    domain: Domain,
}

impl Param {
    /// A parameter, if `domain` is valid: bounds finite and `low ≤ high`, a step
    /// positive, a log prior over positive values, a list non-empty and finite.
    ///
    /// ```
    /// use kf_tune::space::{Distribution, Domain, Param};
    ///
    /// let lr = Param::new("lr", Domain::Double { low: 1e-4, high: 0.1, step: None, distribution: Distribution::LogUniform });
    /// assert!(lr.is_ok());
    /// let bad = Param::new("lr", Domain::Double { low: 0.0, high: 0.1, step: None, distribution: Distribution::LogUniform });
    /// assert_eq!(bad.unwrap_err().to_string(), "parameter \"lr\": a logUniform prior needs min > 0, found min 0");
    /// ```
    pub fn new(name: impl Into<String>, domain: Domain) -> Result<Self> {
        let name = name.into();
        let fail = |message: String| Err(Error::InvalidParameter { parameter: name.clone(), message });
        if name.is_empty() {
            return fail("a parameter needs a name".into());
        }
        match &domain {
            Domain::Double { low, high, step, distribution } => {
                if !low.is_finite() || !high.is_finite() {
                    return fail(format!("expected finite bounds, found min {low} and max {high}"));
                }
                if low > high {
                    return fail(format!("min {low} is greater than max {high}"));
                }
                if let Some(step) = step
                    && !(step.is_finite() && *step > 0.0)
                {
                    return fail(format!("expected a step > 0, found {step}"));
                }
                if distribution.is_log() && *low <= 0.0 {
                    return fail(format!(
                        "a {} prior needs min > 0, found min {low}",
                        distribution_name(*distribution)
                    ));
                }
            }
            Domain::Int { low, high, step, distribution } => {
                if low > high {
                    return fail(format!("min {low} is greater than max {high}"));
                }
                if *step <= 0 {
                    return fail(format!("expected a step > 0, found {step}"));
                }
                if distribution.is_log() && *low <= 0 {
                    return fail(format!(
                        "a {} prior needs min > 0, found min {low}",
                        distribution_name(*distribution)
                    ));
                }
            }
            Domain::Discrete { values } => {
                if values.is_empty() {
                    return fail("expected a non-empty list of values, found an empty list".into());
                }
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return fail(format!("expected finite values, found {v}"));
                }
            }
            Domain::Categorical { choices } => {
                if choices.is_empty() {
                    return fail("expected a non-empty list of choices, found an empty list".into());
                }
            }
        }
        Ok(Param { name, domain })
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter's domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// How many distinct values the parameter has, or `None` for a continuous range.
    /// Saturates at `u64::MAX` for absurd integer ranges.
    pub fn cardinality(&self) -> Option<u64> {
        match &self.domain {
            Domain::Double { step: None, low, high, .. } => (low == high).then_some(1),
            Domain::Double { low, high, step: Some(step), .. } => Some(grid_len(*low, *high, *step)),
            Domain::Int { low, high, step, .. } => {
                let span = (i128::from(*high) - i128::from(*low)) / i128::from(*step) + 1;
                Some(u64::try_from(span).unwrap_or(u64::MAX))
            }
            Domain::Discrete { values } => Some(values.len() as u64),
            Domain::Categorical { choices } => Some(choices.len() as u64),
        }
    }

    /// The `k`-th value in enumeration order (ranges ascending, lists as given),
    /// or `None` when `k` is out of range or the range is continuous. O(1).
    pub fn nth(&self, k: u64) -> Option<ParamValue> {
        if k >= self.cardinality()? {
            return None;
        }
        Some(match &self.domain {
            Domain::Double { low, step: None, .. } => ParamValue::Float(*low),
            Domain::Double { low, high, step: Some(step), .. } => ParamValue::Float(on_grid(*low, *high, *step, k)),
            Domain::Int { low, step, .. } => ParamValue::Int(low.saturating_add((k as i64).saturating_mul(*step))),
            Domain::Discrete { values } => ParamValue::Float(*values.get(k as usize)?),
            Domain::Categorical { .. } => ParamValue::Category(k as usize),
        })
    }

    /// Maps `u` ∈ [0, 1) to a value by the inverse CDF of the parameter's prior:
    /// uniform `u` gives a draw from the prior, a low-discrepancy `u` a
    /// well-spread point. Stepped ranges and lists are cut into equal bins, so
    /// every value of a uniform stepped range is equally likely. O(1).
    ///
    /// ```
    /// use kf_tune::space::{Distribution, Domain, Param, ParamValue};
    ///
    /// let epochs = Param::new("epochs", Domain::Int { low: 1, high: 3, step: 1, distribution: Distribution::Uniform })?;
    /// assert_eq!(epochs.from_unit(0.0), ParamValue::Int(1));
    /// assert_eq!(epochs.from_unit(0.5), ParamValue::Int(2));
    /// assert_eq!(epochs.from_unit(0.999), ParamValue::Int(3));
    /// # Ok::<(), kf_tune::Error>(())
    /// ```
    pub fn from_unit(&self, u: f64) -> ParamValue {
        let u = if u.is_finite() { u.clamp(0.0, 1.0 - f64::EPSILON) } else { 0.0 };
        match &self.domain {
            Domain::Double { low, high, step: None, distribution } => {
                ParamValue::Float(continuous(u, *low, *high, *distribution))
            }
            Domain::Double { low, high, step: Some(step), distribution } => {
                let n = grid_len(*low, *high, *step);
                let k = bin(u, *low, *high, *step, n, *distribution);
                ParamValue::Float(on_grid(*low, *high, *step, k))
            }
            Domain::Int { low, high, step, distribution } => {
                let n = self.cardinality().unwrap_or(1);
                let (lo, hi, st) = (*low as f64, *high as f64, *step as f64);
                let k = bin(u, lo, hi, st, n, *distribution);
                ParamValue::Int(low.saturating_add((k as i64).saturating_mul(*step)))
            }
            Domain::Discrete { values } => {
                let k = ((u * values.len() as f64) as usize).min(values.len() - 1);
                ParamValue::Float(values[k])
            }
            Domain::Categorical { choices } => {
                ParamValue::Category(((u * choices.len() as f64) as usize).min(choices.len() - 1))
            }
        }
    }

    /// Whether `value` is a value of this parameter: right type, inside the
    /// bounds, on the step grid (to 1e-6 of a step), a list member. O(1), O(n) for lists.
    pub fn contains(&self, value: &ParamValue) -> bool {
        match (&self.domain, value) {
            (Domain::Double { low, high, step, .. }, ParamValue::Float(v)) => {
                v.is_finite()
                    && low <= v
                    && v <= high
                    && step.is_none_or(|s| {
                        let r = (v - low) / s;
                        (r - r.round()).abs() < 1e-6
                    })
            }
            (Domain::Int { low, high, step, .. }, ParamValue::Int(v)) => {
                low <= v && v <= high && (i128::from(*v) - i128::from(*low)) % i128::from(*step) == 0
            }
            (Domain::Discrete { values }, ParamValue::Float(v)) => values.iter().any(|x| x.to_bits() == v.to_bits()),
            (Domain::Categorical { choices }, ParamValue::Category(i)) => *i < choices.len(),
            _ => false,
        }
    }

    /// The value as Katib writes it in a `parameterAssignments` entry: numbers in
    /// shortest round-trip form, categories by their text.
    pub fn format(&self, value: &ParamValue) -> String {
        match (value, &self.domain) {
            (ParamValue::Category(i), Domain::Categorical { choices }) => choices.get(*i).cloned().unwrap_or_default(),
            (other, _) => other.to_string(),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Category(i) => write!(f, "#{i}"),
        }
    }
}

fn distribution_name(d: Distribution) -> &'static str {
    match d {
        Distribution::Uniform => "uniform",
        Distribution::LogUniform => "logUniform",
        Distribution::Normal => "normal",
        Distribution::LogNormal => "logNormal",
    }
}

/// Number of points `low + k·step ≤ high` (with a 1e-9 step tolerance so that
/// `0.1 + 4·0.1` counts `0.5`).
fn grid_len(low: f64, high: f64, step: f64) -> u64 {
    let n = ((high - low) / step + 1e-9).floor();
    if n.is_finite() && n >= 0.0 { (n as u64).saturating_add(1) } else { 1 }
}

/// The `k`-th grid point, rounded to well below the step's precision so that
/// `0.1 + 2·0.1` reads `0.3`, and kept inside the bounds.
fn on_grid(low: f64, high: f64, step: f64, k: u64) -> f64 {
    let raw = low + k as f64 * step;
    // Dividing by an exact power of ten (not multiplying by its inexact
    // reciprocal) gives the correctly rounded decimal.
    let scale = 10f64.powi(6 - step.log10().floor() as i32);
    let rounded = (raw * scale).round() / scale;
    let v = if rounded.is_finite() && ((rounded - raw) / step).abs() < 1e-6 { rounded } else { raw };
    v.clamp(low, high)
}

/// A continuous draw from the prior over [low, high] at quantile `u`.
fn continuous(u: f64, low: f64, high: f64, distribution: Distribution) -> f64 {
    if low == high {
        return low;
    }
    let x = match distribution {
        Distribution::Uniform => low + u * (high - low),
        Distribution::LogUniform => (low.ln() + u * (high.ln() - low.ln())).exp(),
        Distribution::Normal => gauss::truncated_from_unit(u, 0.5 * (low + high), (high - low) / 6.0, low, high),
        Distribution::LogNormal => {
            let (a, b) = (low.ln(), high.ln());
            gauss::truncated_from_unit(u, 0.5 * (a + b), (b - a) / 6.0, a, b).exp()
        }
    };
    x.clamp(low, high)
}

/// The grid index for quantile `u`: exact equal bins under a uniform prior; the
/// nearest grid point to a continuous draw otherwise.
fn bin(u: f64, low: f64, high: f64, step: f64, n: u64, distribution: Distribution) -> u64 {
    let k = if distribution == Distribution::Uniform {
        (u * n as f64).floor()
    } else {
        ((continuous(u, low, high, distribution) - low) / step).round()
    };
    (k.max(0.0) as u64).min(n.saturating_sub(1))
}

/// An ordered list of uniquely named parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    params: Vec<Param>,
}

impl SearchSpace {
    /// A space over `params`, which must be non-empty and uniquely named.
    ///
    /// ```
    /// use kf_tune::space::{Distribution, Domain, Param, SearchSpace};
    ///
    /// let space = SearchSpace::new(vec![
    ///     Param::new("lr", Domain::Double { low: 0.01, high: 0.05, step: None, distribution: Distribution::Uniform })?,
    ///     Param::new("optimizer", Domain::Categorical { choices: vec!["sgd".into(), "adam".into()] })?,
    /// ])?;
    /// assert_eq!(space.len(), 2);
    /// assert_eq!(space.index_of("optimizer"), Some(1));
    /// # Ok::<(), kf_tune::Error>(())
    /// ```
    pub fn new(params: Vec<Param>) -> Result<Self> {
        if params.is_empty() {
            return Err(Error::InvalidParameter {
                parameter: String::new(),
                message: "a search space needs at least one parameter".into(),
            });
        }
        let mut seen = BTreeSet::new();
        for p in &params {
            if !seen.insert(p.name()) {
                return Err(Error::InvalidParameter {
                    parameter: p.name().to_owned(),
                    message: "the name is used by two parameters".into(),
                });
            }
        }
        Ok(SearchSpace { params })
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Number of parameters (the dimension of the space).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Always false: a space has at least one parameter.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Position of the parameter called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// Whether `assignment` has one value per parameter, each inside its domain.
    pub fn contains(&self, assignment: &[ParamValue]) -> bool {
        assignment.len() == self.params.len() && self.params.iter().zip(assignment).all(|(p, v)| p.contains(v))
    }

    /// The assignment as Katib `parameterAssignments`: (name, value text) pairs.
    pub fn format(&self, assignment: &[ParamValue]) -> Vec<(String, String)> {
        self.params.iter().zip(assignment).map(|(p, v)| (p.name.clone(), p.format(v))).collect()
    }

    /// The point of the space at unit coordinates `u` (one per parameter), by
    /// [`Param::from_unit`]. O(d).
    pub fn from_unit(&self, u: &[f64]) -> Assignment {
        self.params.iter().zip(u.iter().chain(std::iter::repeat(&0.0))).map(|(p, &x)| p.from_unit(x)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(low: f64, high: f64, step: Option<f64>, distribution: Distribution) -> Result<Param> {
        Param::new("x", Domain::Double { low, high, step, distribution })
    }

    #[test]
    fn invalid_domains_say_what_is_wrong() {
        let msg = |r: Result<Param>| r.unwrap_err().to_string();
        assert_eq!(msg(double(5.0, 1.0, None, Distribution::Uniform)), "parameter \"x\": min 5 is greater than max 1");
        assert!(msg(double(0.0, 1.0, Some(0.0), Distribution::Uniform)).contains("step > 0, found 0"));
        assert!(msg(double(-1.0, 1.0, None, Distribution::LogNormal)).contains("logNormal prior needs min > 0"));
        let int = Param::new("n", Domain::Int { low: 1, high: 4, step: -1, distribution: Distribution::Uniform });
        assert!(msg(int).contains("step > 0, found -1"));
        assert!(msg(Param::new("d", Domain::Discrete { values: vec![] })).contains("empty list"));
        assert!(msg(Param::new("c", Domain::Categorical { choices: vec![] })).contains("empty list"));
        let one = double(0.0, 1.0, None, Distribution::Uniform).unwrap();
        let dup = SearchSpace::new(vec![one.clone(), one]).unwrap_err().to_string();
        assert!(dup.contains("used by two parameters"), "{dup}");
    }

    #[test]
    fn stepped_doubles_enumerate_readable_grid_points() {
        let p = double(0.1, 0.5, Some(0.1), Distribution::Uniform).unwrap();
        assert_eq!(p.cardinality(), Some(5));
        let values: Vec<String> = (0..5).map(|k| p.nth(k).unwrap().to_string()).collect();
        assert_eq!(values, ["0.1", "0.2", "0.3", "0.4", "0.5"]);
        assert_eq!(p.nth(5), None);
    }

    #[test]
    fn uniform_int_bins_are_equal() {
        let p = Param::new("n", Domain::Int { low: 0, high: 9, step: 1, distribution: Distribution::Uniform }).unwrap();
        let mut counts = [0; 10];
        for i in 0..1000 {
            if let ParamValue::Int(v) = p.from_unit(f64::from(i) / 1000.0) {
                counts[v as usize] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c == 100), "{counts:?}");
    }
}
