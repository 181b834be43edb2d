//! Metrics: reading a trial's observations out of the text it writes, and
//! summarising them the way Katib reports them.
//!
//! A [`MetricsCollector`] turns text (a line of a trial's output, a metrics
//! file) into `(metric name, value)` observations: [`TextMetrics`] with Katib's
//! default `name=value` pattern or custom regexes (Katib `filter.metricsFormat`),
//! and [`JsonLinesMetrics`] for Katib's JSON file format. [`MetricSeries`] holds
//! the values of one trial, in order, and applies a [`Strategy`] (Katib
//! `metricStrategies`: min, max, latest) to give the trial its objective value.
//!
//! This module parses text it is handed; where the text comes from (a
//! process's stdout, a file after the trial exits, a push through the API) is
//! the runner's business.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use crate::{Error, Result};

/// Katib's default metrics filter (`pkg/metricscollector/v1beta1/common`):
/// a name of word characters, `|` or `-`, `=`, and a number. It is extended
/// to read `nan` and `inf` so that a trial printing them fails with a clear
/// message rather than "no metric".
pub const DEFAULT_FILTER: &str =
    r"([\w|-]+)\s*=\s*([+-]?(?:[Nn][Aa][Nn]|[Ii]nf(?:inity)?|\d+\.?\d*(?:[Ee][+-]?\d+)?|\.\d+(?:[Ee][+-]?\d+)?))";

/// Turns text a trial wrote into observations.
///
/// Implementations return every `(name, value)` they find, in order; values
/// may be non-finite (the runner fails such a trial with a message naming the
/// metric). Cost: linear in the text.
pub trait MetricsCollector: Send + Sync {
    /// The observations in `text` (one line of output, or a whole file).
    fn collect(&self, text: &str) -> Vec<(String, f64)>;
}

/// `name=value` text, parsed with regexes of two capture groups (name, value).
///
/// ```
/// use kf_tune::metrics::{MetricsCollector, TextMetrics};
///
/// let katib = TextMetrics::katib_default();
/// assert_eq!(katib.collect("epoch 3: loss=0.25 accuracy = 9.1e-1"), [("loss".into(), 0.25), ("accuracy".into(), 0.91)]);
/// assert!(katib.collect("loss=nan")[0].1.is_nan());
/// let custom = TextMetrics::new(&[r"(\w+):\s+([\d.]+)"])?;
/// assert_eq!(custom.collect("loss: 1.5"), [("loss".into(), 1.5)]);
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TextMetrics {
    filters: Vec<Regex>,
}

impl TextMetrics {
    /// Katib's default filter ([`DEFAULT_FILTER`]).
    pub fn katib_default() -> Self {
        // The pattern is a constant known to compile; the fallback keeps this panic-free.
        TextMetrics { filters: Regex::new(DEFAULT_FILTER).into_iter().collect() }
    }

    /// Custom filters; each needs at least two capture groups (name, value).
    pub fn new(filters: &[&str]) -> Result<Self> {
        let mut out = Vec::with_capacity(filters.len());
        for (i, pattern) in filters.iter().enumerate() {
            let path = format!("spec.metricsCollectorSpec.source.filter.metricsFormat[{i}]");
            let regex =
                Regex::new(pattern).map_err(|err| Error::Invalid { path: path.clone(), message: err.to_string() })?;
            if regex.captures_len() < 3 {
                return Err(Error::Invalid {
                    path,
                    message: format!("expected a regex with two capture groups (name, value), found {pattern:?}"),
                });
            }
            out.push(regex);
        }
        Ok(TextMetrics { filters: out })
    }

    /// What Katib's `filter.metricsFormat` asks for: these regexes
    /// ([`TextMetrics::new`]), or Katib's default when there are none.
    ///
    /// ```
    /// use kf_tune::metrics::{MetricsCollector, TextMetrics};
    ///
    /// assert_eq!(TextMetrics::from_formats(&[])?.collect("loss=1"), [("loss".into(), 1.0)]);
    /// assert_eq!(TextMetrics::from_formats(&[r"(\w+): (\d+)".into()])?.collect("loss=1 loss: 2"), [("loss".into(), 2.0)]);
    /// # Ok::<(), kf_tune::Error>(())
    /// ```
    pub fn from_formats(formats: &[String]) -> Result<Self> {
        if formats.is_empty() {
            return Ok(TextMetrics::katib_default());
        }
        TextMetrics::new(&formats.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

impl MetricsCollector for TextMetrics {
    fn collect(&self, text: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for line in text.lines() {
            for filter in &self.filters {
                for caps in filter.captures_iter(line) {
                    let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else { continue };
                    if let Some(v) = parse_number(value.as_str()) {
                        out.push((name.as_str().to_owned(), v));
                    }
                }
            }
        }
        out
    }
}

/// Reads a number, including `nan`/`inf` spellings; `None` if it is not one.
fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    t.parse::<f64>().ok().or_else(|| match t.to_ascii_lowercase().trim_start_matches(['+', '-']) {
        "nan" => Some(f64::NAN),
        "inf" | "infinity" => Some(if t.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY }),
        _ => None,
    })
}

/// Katib's JSON metrics format: one JSON object per line, metric names as
/// keys, values numbers or numeric strings; `timestamp` is skipped, as are lines
/// that are not JSON objects.
///
/// ```
/// use kf_tune::metrics::{JsonLinesMetrics, MetricsCollector};
///
/// let got = JsonLinesMetrics.collect("{\"accuracy\": \"0.8\", \"timestamp\": 1}\nnoise\n{\"loss\": 0.3}");
/// assert_eq!(got, [("accuracy".into(), 0.8), ("loss".into(), 0.3)]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLinesMetrics;

impl MetricsCollector for JsonLinesMetrics {
    fn collect(&self, text: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for line in text.lines() {
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else { continue };
            for (name, value) in map {
                if name == "timestamp" {
                    continue;
                }
                let v = match &value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => parse_number(s),
                    _ => None,
                };
                if let Some(v) = v {
                    out.push((name, v));
                }
            }
        }
        out
    }
}

/// How a trial's series of one metric becomes one value (Katib `metricStrategies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The smallest value reported.
    Min,
    /// The largest value reported.
    Max,
    /// The last value reported.
    Latest,
}

impl Strategy {
    /// Reads Katib's `min`, `max` or `latest`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "min" => Some(Strategy::Min),
            "max" => Some(Strategy::Max),
            "latest" => Some(Strategy::Latest),
            _ => None,
        }
    }
}

/// The values one trial reported, per metric, in order.
///
/// ```
/// use kf_tune::metrics::{MetricSeries, Strategy};
///
/// let mut series = MetricSeries::default();
/// for (name, v) in [("loss", 0.9), ("loss", 0.4), ("loss", 0.5)] {
///     series.push(name, v);
/// }
/// assert_eq!(series.value("loss", Strategy::Min), Some(0.4));
/// assert_eq!(series.value("loss", Strategy::Latest), Some(0.5));
/// assert_eq!(series.value("accuracy", Strategy::Max), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSeries {
    values: BTreeMap<String, Vec<f64>>,
}

impl MetricSeries {
    /// Appends one observation. O(log metrics).
    pub fn push(&mut self, name: &str, value: f64) {
        self.values.entry(name.to_owned()).or_default().push(value);
    }

    /// Every value of `name`, in the order reported.
    pub fn get(&self, name: &str) -> &[f64] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// The observations of the metrics called `names` that `collector` finds
    /// in `text`, in order; any other name is dropped, as Katib's collectors
    /// report only the experiment's metrics (objective and additional).
    /// O(text · filters + observations · names).
    ///
    /// ```
    /// use kf_tune::metrics::{MetricSeries, TextMetrics};
    ///
    /// let log = "epoch 1 loss=0.9 lr=0.1\nsaving checkpoint\nepoch 2 loss=0.4 accuracy=0.8\n";
    /// let series = MetricSeries::collect(&TextMetrics::katib_default(), log, &["loss", "accuracy"]);
    /// assert_eq!(series.get("loss"), [0.9, 0.4]);
    /// assert_eq!(series.get("accuracy"), [0.8]);
    /// assert!(series.get("lr").is_empty());
    /// ```
    pub fn collect(collector: &dyn MetricsCollector, text: &str, names: &[&str]) -> MetricSeries {
        let mut series = MetricSeries::default();
        for (name, value) in collector.collect(text) {
            if names.contains(&name.as_str()) {
                series.push(&name, value);
            }
        }
        series
    }

    /// Metric names with at least one value, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The series of `name` reduced by `strategy`; `None` when nothing was
    /// reported. Non-finite values propagate (a NaN makes min/max NaN), so the
    /// caller can reject them. O(values).
    pub fn value(&self, name: &str, strategy: Strategy) -> Option<f64> {
        let values = self.values.get(name).filter(|v| !v.is_empty())?;
        if values.iter().any(|v| v.is_nan()) && strategy != Strategy::Latest {
            return Some(f64::NAN);
        }
        Some(match strategy {
            Strategy::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Strategy::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Strategy::Latest => *values.last()?,
        })
    }

    /// The series as a JSON object of arrays (non-finite values as strings), for journals.
    pub fn to_json(&self) -> Value {
        let map = self
            .values
            .iter()
            .map(|(k, vs)| {
                let arr = vs
                    .iter()
                    .map(|v| {
                        serde_json::Number::from_f64(*v).map_or_else(|| Value::String(v.to_string()), Value::Number)
                    })
                    .collect();
                (k.clone(), Value::Array(arr))
            })
            .collect();
        Value::Object(map)
    }

    /// Reads what [`MetricSeries::to_json`] wrote; entries that are neither numbers nor numeric strings are skipped.
    pub fn from_json(value: &Value) -> Self {
        let mut series = MetricSeries::default();
        if let Value::Object(map) = value {
            for (name, values) in map {
                for v in values.as_array().into_iter().flatten() {
                    let x = match v {
                        Value::Number(n) => n.as_f64(),
                        Value::String(s) => parse_number(s),
                        _ => None,
                    };
                    if let Some(x) = x {
                        series.push(name, x);
                    }
                }
            }
        }
        series
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    #[test]
    fn katib_default_reads_what_trials_print() {
        let m = TextMetrics::katib_default();
        assert_eq!(m.collect("Validation-accuracy=0.97\n"), [("Validation-accuracy".into(), 0.97)]);
        assert_eq!(m.collect("loss = -1.5e-3, lr=1"), [("loss".into(), -1.5e-3), ("lr".into(), 1.0)]);
        assert_eq!(m.collect("loss=.5"), [("loss".into(), 0.5)]);
        assert!(m.collect("loss=inf")[0].1.is_infinite());
        assert!(m.collect("no metrics here").is_empty());
    }

    #[test]
    fn custom_filters_need_two_groups() {
        let err = TextMetrics::new(&[r"loss=\d+"]).unwrap_err().to_string();
        assert!(err.contains("two capture groups") && err.contains("metricsFormat[0]"), "{err}");
        assert!(TextMetrics::new(&["(unclosed"]).is_err());
    }

    proptest! {
        /// Whatever finite value is printed as `name=value` is read back exactly.
        #[test]
        fn printed_values_read_back(name in "[a-z][a-z_-]{0,10}", value in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
            let got = TextMetrics::katib_default().collect(&format!("{name}={value:?}"));
            prop_assert_eq!(got, vec![(name, value)]);
        }

        /// Any series of the experiment's metrics printed as `name=value`
        /// lines (after a prefix, as trials print them), among garbage lines
        /// and metrics the experiment does not name, reads back exactly.
        #[test]
        fn printed_series_read_back_among_noise(
            printed in proptest::collection::vec(
                (0usize..3, proptest::num::f64::NORMAL | proptest::num::f64::ZERO, "[a-z0-9 ]{0,8}"), 0..30),
            garbage in proptest::collection::vec("[^=\n]{0,40}", 0..30),
        ) {
            let names = ["loss", "val-acc", "top_1"];
            let mut text = String::new();
            let mut expected = MetricSeries::default();
            for (i, (metric, value, prefix)) in printed.iter().enumerate() {
                if let Some(line) = garbage.get(i) {
                    text.push_str(line);
                    text.push('\n');
                }
                text.push_str(&format!("{prefix}: {}={value:?} lr={value:?}\n", names[*metric]));
                expected.push(names[*metric], *value);
            }
            let got = MetricSeries::collect(&TextMetrics::katib_default(), &text, &names);
            prop_assert_eq!(got, expected);
        }

        /// Whatever a trial prints, reading it never panics, and only the
        /// metrics asked for come back.
        #[test]
        fn reading_arbitrary_text_never_panics(text in proptest::prelude::any::<String>()) {
            for collector in [TextMetrics::katib_default(), TextMetrics::new(&[r"(\w+):\s*(\S+)"]).unwrap()] {
                let got = MetricSeries::collect(&collector, &text, &["loss"]);
                prop_assert!(got.names().all(|n| n == "loss"));
            }
        }

        /// Strategies pick an element of the series: min ≤ latest ≤ max.
        #[test]
        fn strategies_bracket_the_latest(values in proptest::collection::vec(-1e6..1e6f64, 1..20)) {
            let mut s = MetricSeries::default();
            for v in &values { s.push("m", *v); }
            let (min, max, latest) = (s.value("m", Strategy::Min).unwrap(), s.value("m", Strategy::Max).unwrap(), s.value("m", Strategy::Latest).unwrap());
            prop_assert!(min <= latest && latest <= max);
            prop_assert!(values.contains(&min) && values.contains(&max));
            prop_assert_eq!(MetricSeries::from_json(&s.to_json()), s);
        }
    }
}
