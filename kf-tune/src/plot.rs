//! Plots of an experiment as one SVG document: the optimisation history and
//! parallel coordinates (issue 8, part 7).
//!
//! [`render`] is a pure function of (search space, history, metric name) →
//! SVG text; it does no IO, keeps no state, and the same input gives the
//! same bytes. The document has two panels:
//!
//! - **Optimisation history** (`<g id="history">`): every completed trial's
//!   objective by trial number as a point (`<circle class="trial">`), failed
//!   trials (and trials killed when the experiment ended: no result either)
//!   as red crosses in a strip along the trial axis (`<path class="failed">`), and the
//!   best value so far as a step line (`<polyline id="best-so-far">`),
//!   following the history's [`Direction`].
//! - **Parallel coordinates** (`<g id="parallel-coordinates">`): one vertical
//!   axis per parameter — `double`/`int` ranges linear, or logarithmic under a
//!   log prior; `discrete` values (ascending) and `categorical` choices (as
//!   given) as evenly spaced labelled ticks — and one for the objective; one
//!   polyline per completed trial (`class="trial-line"`), coloured from blue
//!   (best) to orange (worst), the best trial(s) drawn last in red and thicker
//!   (`class="trial-line best"`).
//!
//! Tick values are "nice" numbers (1, 2 or 5 × 10ᵏ; powers of ten on log
//! axes). Every text that comes from the user (parameter names, categorical
//! labels, the metric name) is XML-escaped. Coordinates are always finite:
//! non-finite objectives count as failures (as in [`History::completed`]), and
//! a position that would not be finite is drawn at the middle of its axis.
//! An empty history, or one without a completed trial, gives a valid
//! document with a message in each panel.
//!
//! Cost: O(T·d) for T trials and d parameters (plus O(T log T) to rank the
//! objective values), and output of the same size.
//!
//! ```
//! use kf_tune::plot;
//! use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
//! use kf_tune::{Direction, History, TrialState};
//!
//! let space = SearchSpace::new(vec![Param::new(
//!     "lr",
//!     Domain::Double { low: 1e-4, high: 1e-1, step: None, distribution: Distribution::LogUniform },
//! )?])?;
//! let mut history = History::new(Direction::Minimize);
//! history.push(vec![ParamValue::Float(0.01)], TrialState::Completed(0.4));
//! history.push(vec![ParamValue::Float(0.001)], TrialState::Failed);
//! history.push(vec![ParamValue::Float(0.05)], TrialState::Completed(0.2));
//! let svg = plot::render(&space, &history, "loss");
//! assert!(svg.starts_with("<svg"));
//! assert_eq!(svg.matches("<circle class=\"trial\"").count(), 2);
//! assert_eq!(svg.matches("<path class=\"failed\"").count(), 1);
//! assert!(svg.contains("id=\"best-so-far\""));
//! # Ok::<(), kf_tune::Error>(())
//! ```

use std::fmt::Write as _;

use crate::experiment::ExperimentState;
use crate::sampler::{Direction, History, TrialState};
use crate::space::{Domain, Param, ParamValue, SearchSpace};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 900.0;
/// The plot area of the history panel.
const HIST_LEFT: f64 = 90.0;
const HIST_RIGHT: f64 = 930.0;
const HIST_TOP: f64 = 60.0;
const HIST_BOTTOM: f64 = 340.0;
/// The strip at the bottom of the history panel where failed trials are
/// marked, below every value, so crosses never hide points or the line.
const FAIL_BAND: f64 = 18.0;
/// The axes of the parallel-coordinates panel.
const PAR_LEFT: f64 = 90.0;
const PAR_RIGHT: f64 = 870.0;
const PAR_TOP: f64 = 490.0;
const PAR_BOTTOM: f64 = 820.0;
/// Ticks wanted on a numeric axis (the nice step may give a few more or fewer).
const TICKS: usize = 6;
/// Labels shown on a list axis before every k-th is skipped.
const MAX_LABELS: usize = 12;
/// Characters of a label shown before it is cut with an ellipsis.
const MAX_LABEL_CHARS: usize = 18;

/// The plot of an experiment's state: its space, history, direction and
/// objective metric. O(T·d).
pub fn render_state(state: &ExperimentState) -> String {
    render(&state.plan().space, &state.history(), &state.plan().objective_metric)
}

/// The SVG document of `history` over `space`, the objective named `metric`
/// (see the module documentation). Pending trials are left out; trials
/// whose assignment does not fit `space` are drawn at the middle of the
/// axes they do not fit. O(T·d).
pub fn render(space: &SearchSpace, history: &History, metric: &str) -> String {
    let mut svg = String::with_capacity(4096 + 200 * history.trials.len() * (space.params().len() + 1));
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n",
        w = WIDTH,
        h = HEIGHT
    );
    let completed: Vec<(usize, f64)> = history
        .trials
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t.state {
            TrialState::Completed(v) if v.is_finite() => Some((i, v)),
            _ => None,
        })
        .collect();
    let failed: Vec<usize> = history
        .trials
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            matches!(t.state, TrialState::Failed) || matches!(t.state, TrialState::Completed(v) if !v.is_finite())
        })
        .map(|(i, _)| i)
        .collect();
    let message = match (completed.is_empty(), failed.len(), history.trials.len()) {
        (false, _, _) => None,
        (true, 0, 0) => Some("no trials yet".to_owned()),
        (true, 0, n) => Some(format!("no completed trials yet ({n} running)")),
        (true, f, _) => Some(format!("no completed trials: all {f} finished trials failed")),
    };
    history_panel(&mut svg, history, metric, &completed, &failed, message.as_deref());
    parallel_panel(&mut svg, space, history, metric, &completed, message.as_deref());
    svg.push_str("</svg>\n");
    svg
}

fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Minimize => "minimize",
        Direction::Maximize => "maximize",
    }
}

fn history_panel(
    svg: &mut String,
    history: &History,
    metric: &str,
    completed: &[(usize, f64)],
    failed: &[usize],
    message: Option<&str>,
) {
    let direction = history.direction;
    let _ = writeln!(
        svg,
        "<g id=\"history\">\n<text x=\"{}\" y=\"30\" font-size=\"16\" font-weight=\"bold\">Optimisation history: {} ({})</text>",
        c(HIST_LEFT),
        escape(metric),
        direction_word(direction)
    );
    frame(svg, HIST_LEFT, HIST_TOP, HIST_RIGHT, HIST_BOTTOM);
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">trial number</text>",
        c((HIST_LEFT + HIST_RIGHT) / 2.0),
        c(HIST_BOTTOM + 40.0)
    );
    let _ = writeln!(
        svg,
        "<text x=\"20\" y=\"{y}\" text-anchor=\"middle\" transform=\"rotate(-90 20 {y})\">{}</text>",
        escape(metric),
        y = c((HIST_TOP + HIST_BOTTOM) / 2.0)
    );
    if let Some(message) = message {
        let _ = writeln!(
            svg,
            "<text class=\"message\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            c((HIST_LEFT + HIST_RIGHT) / 2.0),
            c((HIST_TOP + HIST_BOTTOM) / 2.0),
            escape(message)
        );
        if failed.is_empty() {
            svg.push_str("</g>\n");
            return;
        }
    }
    // x: trial numbers 0..n-1, half a trial of margin either side.
    let last = history.trials.len().saturating_sub(1) as f64;
    let x_scale = Linear::new(-0.5, last + 0.5);
    let x_at = |i: f64| HIST_LEFT + x_scale.unit(i) * (HIST_RIGHT - HIST_LEFT);
    let step = nice_step(last.max(1.0), TICKS).max(1.0);
    for t in ticks_in(0.0, last, step) {
        let x = x_at(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{x}\" y2=\"{y2}\" stroke=\"black\"/><text x=\"{x}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>",
            fmt_g(t),
            x = c(x),
            y = c(HIST_BOTTOM),
            y2 = c(HIST_BOTTOM + 5.0),
            ty = c(HIST_BOTTOM + 18.0)
        );
    }
    let values: Vec<f64> = completed.iter().map(|&(_, v)| v).collect();
    let (y_scale, mut y_ticks) = loose_axis(&values);
    if values.is_empty() {
        // Only failures: no value scale to show.
        y_ticks.clear();
    }
    let value_bottom = HIST_BOTTOM - FAIL_BAND;
    let y_at = |v: f64| value_bottom - y_scale.unit(v) * (value_bottom - HIST_TOP);
    for t in y_ticks {
        let y = y_at(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#ddd\"/><line x1=\"{x0}\" y1=\"{y}\" x2=\"{x1}\" y2=\"{y}\" stroke=\"black\"/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{}</text>",
            fmt_g(t),
            x0 = c(HIST_LEFT - 5.0),
            x1 = c(HIST_LEFT),
            x2 = c(HIST_RIGHT),
            y = c(y),
            tx = c(HIST_LEFT - 8.0),
            ty = c(y + 4.0)
        );
    }
    // The best value so far, as steps: flat until a trial improves on it.
    let mut best: Option<f64> = None;
    let mut points: Vec<(f64, f64)> = Vec::new();
    for &(i, v) in completed {
        let better = best.is_none_or(|b| direction.loss(v) < direction.loss(b));
        if better {
            if let Some(b) = best {
                points.push((x_at(i as f64), y_at(b)));
            }
            best = Some(v);
            points.push((x_at(i as f64), y_at(v)));
        }
    }
    if let (Some(b), Some(&(x, _))) = (best, points.last()) {
        let end = x_at(last).max(x);
        points.push((end, y_at(b)));
    }
    let polyline: Vec<String> = points.iter().map(|&(x, y)| format!("{},{}", c(x), c(y))).collect();
    if !polyline.is_empty() {
        let _ = writeln!(
            svg,
            "<polyline id=\"best-so-far\" points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>",
            polyline.join(" ")
        );
    }
    for &(i, v) in completed {
        let _ = writeln!(
            svg,
            "<circle class=\"trial\" data-trial=\"{i}\" cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#1f77b4\" fill-opacity=\"0.8\"><title>trial {i}: {}</title></circle>",
            c(x_at(i as f64)),
            c(y_at(v)),
            fmt_full(v)
        );
    }
    for &i in failed {
        let (x, y) = (x_at(i as f64), HIST_BOTTOM - FAIL_BAND / 2.0);
        let _ = writeln!(
            svg,
            "<path class=\"failed\" data-trial=\"{i}\" d=\"M{} {} L{} {} M{} {} L{} {}\" stroke=\"#d62728\" stroke-width=\"2\"><title>trial {i}: failed</title></path>",
            c(x - 4.0),
            c(y - 4.0),
            c(x + 4.0),
            c(y + 4.0),
            c(x - 4.0),
            c(y + 4.0),
            c(x + 4.0),
            c(y - 4.0)
        );
    }
    // Legend, top right.
    let lx = HIST_RIGHT - 250.0;
    let _ = writeln!(
        svg,
        "<circle cx=\"{}\" cy=\"45\" r=\"4\" fill=\"#1f77b4\"/><text x=\"{}\" y=\"49\">completed</text>\
         <path d=\"M{} 41 L{} 49 M{} 49 L{} 41\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"{}\" y=\"49\">failed</text>\
         <line x1=\"{}\" y1=\"45\" x2=\"{}\" y2=\"45\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"{}\" y=\"49\">best so far</text>\n</g>",
        c(lx),
        c(lx + 8.0),
        c(lx + 76.0),
        c(lx + 84.0),
        c(lx + 76.0),
        c(lx + 84.0),
        c(lx + 90.0),
        c(lx + 140.0),
        c(lx + 160.0),
        c(lx + 166.0)
    );
}

fn parallel_panel(
    svg: &mut String,
    space: &SearchSpace,
    history: &History,
    metric: &str,
    completed: &[(usize, f64)],
    message: Option<&str>,
) {
    let direction = history.direction;
    let _ = writeln!(
        svg,
        "<g id=\"parallel-coordinates\">\n<text x=\"{}\" y=\"420\" font-size=\"16\" font-weight=\"bold\">Parallel coordinates: {} completed trial{}, coloured by {}</text>",
        c(PAR_LEFT),
        completed.len(),
        if completed.len() == 1 { "" } else { "s" },
        escape(metric)
    );
    if let Some(message) = message {
        let _ = writeln!(
            svg,
            "<text class=\"message\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n</g>",
            c((PAR_LEFT + PAR_RIGHT) / 2.0),
            c((PAR_TOP + PAR_BOTTOM) / 2.0),
            escape(message)
        );
        return;
    }
    let values: Vec<f64> = completed.iter().map(|&(_, v)| v).collect();
    let mut axes: Vec<Axis> = space.params().iter().map(param_axis).collect();
    let (objective_scale, objective_ticks) = loose_axis(&values);
    axes.push(Axis {
        title: metric.to_owned(),
        ticks: objective_ticks.iter().map(|&t| (objective_scale.unit(t), fmt_g(t))).collect(),
        scale: Scale::Linear(objective_scale),
        log: false,
    });
    let n = axes.len();
    let x_of = |k: usize| {
        if n == 1 {
            (PAR_LEFT + PAR_RIGHT) / 2.0
        } else {
            PAR_LEFT + (PAR_RIGHT - PAR_LEFT) * k as f64 / (n - 1) as f64
        }
    };
    let y_of = |u: f64| PAR_BOTTOM - u * (PAR_BOTTOM - PAR_TOP);

    // Colour: 0 for the best loss, 1 for the worst.
    let losses: Vec<f64> = values.iter().map(|&v| direction.loss(v)).collect();
    let best = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let worst = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let rank = Linear::new(best, worst);
    let mut order: Vec<usize> = (0..completed.len()).collect();
    // Worst first, so better trials are drawn on top; ties by trial number.
    order.sort_by(|&a, &b| losses[b].total_cmp(&losses[a]).then(completed[a].0.cmp(&completed[b].0)));
    for k in order {
        let (index, value) = completed[k];
        let assignment = &history.trials[index].assignment;
        let mut points = Vec::with_capacity(n);
        for (j, axis) in axes.iter().enumerate() {
            let u = if j + 1 == n {
                axis.scale.unit_of(value)
            } else {
                assignment.get(j).map_or(0.5, |v| axis.scale.unit_of_param(v))
            };
            points.push(format!("{},{}", c(x_of(j)), c(y_of(u))));
        }
        let is_best = losses[k] == best;
        let (class, colour, width, opacity) = if is_best {
            ("trial-line best", "#d62728".to_owned(), 3.0, 1.0)
        } else {
            ("trial-line", ramp(rank.unit(losses[k])), 1.2, 0.7)
        };
        let _ = writeln!(
            svg,
            "<polyline class=\"{class}\" data-trial=\"{index}\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" stroke-opacity=\"{opacity}\"><title>trial {index}: {}</title></polyline>",
            points.join(" "),
            fmt_full(value)
        );
    }
    for (j, axis) in axes.iter().enumerate() {
        let x = x_of(j);
        let _ = writeln!(
            svg,
            "<line class=\"axis\" x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" y2=\"{bottom}\" stroke=\"black\"/>\
             <text x=\"{x}\" y=\"{ty}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
            escape(&truncate(&axis.title)),
            x = c(x),
            top = c(PAR_TOP),
            bottom = c(PAR_BOTTOM),
            ty = c(PAR_TOP - 14.0)
        );
        if axis.log {
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">(log)</text>",
                c(x),
                c(PAR_BOTTOM + 20.0)
            );
        }
        for (u, label) in &axis.ticks {
            let y = y_of(*u);
            let _ = writeln!(
                svg,
                "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{x}\" y2=\"{y}\" stroke=\"black\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
                escape(&truncate(label)),
                x0 = c(x - 4.0),
                x = c(x),
                y = c(y),
                tx = c(x - 6.0),
                ty = c(y + 4.0)
            );
        }
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\">colour: {} from blue (best) to orange (worst); the best trial in red</text>\n</g>",
        c(PAR_LEFT),
        c(HEIGHT - 30.0),
        escape(metric)
    );
}

/// One vertical axis of the parallel-coordinates panel.
struct Axis {
    title: String,
    scale: Scale,
    /// (position in [0, 1] from the bottom, label).
    ticks: Vec<(f64, String)>,
    log: bool,
}

/// Where a value sits on an axis, in [0, 1].
enum Scale {
    Linear(Linear),
    /// On ln(value); bounds are positive.
    Log(Linear),
    /// Discrete values in ascending order, evenly spaced.
    Values(Vec<f64>),
    /// Categorical choices (`count`), evenly spaced in the order given.
    Choices(usize),
}

impl Scale {
    fn unit_of(&self, v: f64) -> f64 {
        match self {
            Scale::Linear(l) => l.unit(v),
            Scale::Log(l) => l.unit(if v > 0.0 { v.ln() } else { f64::NAN }),
            Scale::Values(values) => {
                // The nearest listed value's position.
                let k = values
                    .iter()
                    .enumerate()
                    .min_by(|a, b| (a.1 - v).abs().total_cmp(&(b.1 - v).abs()))
                    .map_or(0, |(k, _)| k);
                ordinal(k, values.len())
            }
            Scale::Choices(count) => ordinal(v as usize, *count),
        }
    }

    fn unit_of_param(&self, v: &ParamValue) -> f64 {
        match (self, v) {
            (Scale::Choices(count), ParamValue::Category(k)) => {
                if k < count {
                    ordinal(*k, *count)
                } else {
                    0.5
                }
            }
            (Scale::Choices(_), _) => 0.5,
            (_, ParamValue::Float(x)) => self.unit_of(*x),
            (_, ParamValue::Int(i)) => self.unit_of(*i as f64),
            (_, ParamValue::Category(_)) => 0.5,
        }
    }
}

/// Position `k` of `count` evenly spaced values; a single value in the middle.
fn ordinal(k: usize, count: usize) -> f64 {
    if count <= 1 { 0.5 } else { (k.min(count - 1)) as f64 / (count - 1) as f64 }
}

/// A linear map of [lo, hi] onto [0, 1], clamped; a degenerate or
/// non-finite range maps everything to the middle.
#[derive(Clone, Copy)]
struct Linear {
    lo: f64,
    hi: f64,
}

impl Linear {
    fn new(lo: f64, hi: f64) -> Self {
        Linear { lo, hi }
    }

    fn unit(&self, v: f64) -> f64 {
        // Halves keep the span finite for bounds near ±f64::MAX.
        let span = self.hi / 2.0 - self.lo / 2.0;
        let u = (v / 2.0 - self.lo / 2.0) / span;
        if span > 0.0 && u.is_finite() { u.clamp(0.0, 1.0) } else { 0.5 }
    }
}

fn param_axis(param: &Param) -> Axis {
    let title = param.name().to_owned();
    match param.domain() {
        Domain::Double { low, high, distribution, .. } => {
            numeric_axis(title, *low, *high, distribution.is_log(), false)
        }
        Domain::Int { low, high, distribution, .. } => {
            numeric_axis(title, *low as f64, *high as f64, distribution.is_log(), true)
        }
        Domain::Discrete { values } => {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            sorted.dedup();
            let labels: Vec<String> = sorted.iter().map(|&v| fmt_g(v)).collect();
            Axis { title, ticks: list_ticks(&labels), scale: Scale::Values(sorted), log: false }
        }
        Domain::Categorical { choices } => {
            Axis { title, ticks: list_ticks(choices), scale: Scale::Choices(choices.len()), log: false }
        }
    }
}

/// Every label of a list, or every k-th when there are more than [`MAX_LABELS`].
fn list_ticks(labels: &[String]) -> Vec<(f64, String)> {
    let every = labels.len().div_ceil(MAX_LABELS).max(1);
    labels
        .iter()
        .enumerate()
        .filter(|(k, _)| k % every == 0)
        .map(|(k, label)| (ordinal(k, labels.len()), label.clone()))
        .collect()
}

fn numeric_axis(title: String, low: f64, high: f64, log: bool, integer: bool) -> Axis {
    if log && low > 0.0 && high > low {
        let scale = Linear::new(low.ln(), high.ln());
        let ticks = log_ticks(low, high).into_iter().map(|t| (scale.unit(t.ln()), fmt_g(t))).collect();
        return Axis { title, scale: Scale::Log(scale), ticks, log: true };
    }
    let scale = Linear::new(low, high);
    let ticks = if high > low {
        let mut step = nice_step(high - low, TICKS);
        if integer {
            step = step.max(1.0).round();
        }
        ticks_in(low, high, step).into_iter().map(|t| (scale.unit(t), fmt_g(t))).collect()
    } else {
        vec![(0.5, fmt_g(low))]
    };
    Axis { title, scale: Scale::Linear(scale), ticks, log: false }
}

/// Powers of ten in [low, high]; with fewer than two, also 2× and 5× them;
/// with still fewer, linear nice ticks. `0 < low < high`.
fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let (first, last) = (low.log10().floor() as i32, high.log10().ceil() as i32);
    let within = |t: &f64| *t >= low * (1.0 - 1e-9) && *t <= high * (1.0 + 1e-9);
    for multipliers in [&[1.0][..], &[1.0, 2.0, 5.0][..]] {
        let ticks: Vec<f64> =
            (first..=last).flat_map(|k| multipliers.iter().map(move |m| m * pow10(k))).filter(within).collect();
        if ticks.len() >= 2 {
            return thin(ticks);
        }
    }
    ticks_in(low, high, nice_step(high - low, TICKS))
}

/// At most about 2·[`TICKS`] ticks: every k-th.
fn thin(ticks: Vec<f64>) -> Vec<f64> {
    let every = ticks.len().div_ceil(2 * TICKS).max(1);
    ticks.into_iter().step_by(every).collect()
}

/// 10ᵏ, exact for the powers f64 can hold exactly (parsing rounds once).
fn pow10(k: i32) -> f64 {
    format!("1e{k}").parse().unwrap_or(f64::NAN)
}

/// A nice step (1, 2 or 5 × 10ᵏ) giving about `count` ticks over `span`.
fn nice_step(span: f64, count: usize) -> f64 {
    let raw = span / count.max(2) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let exponent = raw.log10().floor() as i32;
    let base = pow10(exponent);
    let fraction = raw / base;
    let nice = if fraction < 1.5 {
        1.0
    } else if fraction < 3.0 {
        2.0
    } else if fraction < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * base
}

/// Multiples of `step` in [lo, hi] (at most 100).
fn ticks_in(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(step.is_finite() && step > 0.0 && lo.is_finite() && hi.is_finite()) || hi < lo {
        return Vec::new();
    }
    let first = (lo / step - 1e-9).ceil();
    let mut ticks = Vec::new();
    for k in 0..100 {
        let t = (first + k as f64) * step;
        if t > hi + step * 1e-9 || !t.is_finite() {
            break;
        }
        // -0 prints as "-0"; snap values within rounding of 0.
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
    }
    ticks
}

/// An axis over `values` widened to nice numbers, and its ticks. Values are finite.
fn loose_axis(values: &[f64]) -> (Linear, Vec<f64>) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return (Linear::new(0.0, 1.0), vec![0.0, 1.0]);
    }
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        // One value (or all equal): a range around it.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() / 10.0 };
        (lo - pad, hi + pad)
    };
    let step = nice_step(hi - lo, TICKS);
    let (nice_lo, nice_hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    if !(nice_lo.is_finite() && nice_hi.is_finite() && nice_hi > nice_lo) {
        return (Linear::new(lo, hi), vec![lo, hi]);
    }
    (Linear::new(nice_lo, nice_hi), ticks_in(nice_lo, nice_hi, step))
}

/// From blue (0, best) to orange (1, worst).
fn ramp(t: f64) -> String {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.5 };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(33.0, 244.0), mix(102.0, 165.0), mix(172.0, 50.0))
}

/// A coordinate with two decimals; a non-finite one (never expected) as 0.
fn c(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".into() } else { text.to_owned() }
}

/// A tick label: plain decimals for 1e-3 ≤ |v| < 1e6, else scientific; no trailing zeros.
fn fmt_g(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e6).contains(&a) {
        let text = format!("{v:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        let text = format!("{v:.3e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => {
                format!("{}e{exponent}", mantissa.trim_end_matches('0').trim_end_matches('.'))
            }
            None => text,
        }
    }
}

/// A value in full (shortest round-trip form), for tooltips.
fn fmt_full(v: f64) -> String {
    format!("{v}")
}

fn truncate(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

fn frame(svg: &mut String, left: f64, top: f64, right: f64, bottom: f64) {
    let _ = writeln!(
        svg,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>",
        c(left),
        c(top),
        c(right - left),
        c(bottom - top)
    );
}

/// `text` with XML's five special characters as entities, and characters
/// XML 1.0 forbids (controls other than tab and newlines) left out.
///
/// ```
/// assert_eq!(kf_tune::plot::escape("<script>a&'b\"</script>"), "&lt;script&gt;a&amp;&apos;b&quot;&lt;/script&gt;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(100.0, 5), 20.0);
        assert_eq!(nice_step(0.37, 6), 0.05);
        assert_eq!(
            ticks_in(0.0, 1.0, 0.2).iter().map(|&t| fmt_g(t)).collect::<Vec<_>>(),
            ["0", "0.2", "0.4", "0.6", "0.8", "1"]
        );
    }

    #[test]
    fn log_axes_tick_at_powers_of_ten() {
        let ticks: Vec<String> = log_ticks(1e-4, 0.1).into_iter().map(fmt_g).collect();
        assert_eq!(ticks, ["1e-4", "0.001", "0.01", "0.1"]);
        let narrow: Vec<String> = log_ticks(0.15, 0.9).into_iter().map(fmt_g).collect();
        assert_eq!(narrow, ["0.2", "0.5"]);
    }

    #[test]
    fn coordinates_are_trimmed_and_never_negative_zero() {
        assert_eq!(c(1.5), "1.5");
        assert_eq!(c(-0.001), "0");
        assert_eq!(c(f64::NAN), "0");
        assert_eq!(c(12.0), "12");
    }
}
