//! Reading the Prometheus text exposition format (version 0.0.4), the
//! `/metrics` of a `kf serve` pod, into samples.
//!
//! What this module owns: one line-oriented parser, IO-free. It reads
//! what [`crate::metrics::Metrics::render`] writes and what any Prometheus
//! client library writes (comments, `# HELP` / `# TYPE`, label escapes,
//! `+Inf` / `-Inf` / `NaN`, an optional timestamp) and nothing more: no
//! OpenMetrics `# EOF`, exemplars or units. A line it cannot read is an
//! [`Error::Invalid`] naming the line and what was expected; it never
//! panics on any input.

use crate::{Error, Result};

/// One sample: a metric name, its labels in the order written, a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, e.g. `kf_serve_autoscaler_stable_value`.
    pub name: String,
    /// `(label, value)` pairs, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (may be infinite or NaN, as the format allows).
    pub value: f64,
}

impl Sample {
    /// The value of `label`, if the sample has it.
    pub fn label(&self, label: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.as_str())
    }
}

/// Parses a text exposition into its samples, in order. O(length of `text`).
///
/// ```
/// use kf_serve::controller::exposition::parse;
/// let text = "# TYPE up gauge\nup{job=\"kf \\\"serve\\\"\"} 1\nkf_serve_requests_in_flight 3 1700000000000\n";
/// let samples = parse(text)?;
/// assert_eq!(samples[0].label("job"), Some("kf \"serve\""));
/// assert_eq!((samples[1].name.as_str(), samples[1].value), ("kf_serve_requests_in_flight", 3.0));
/// assert_eq!(parse("up{job=\"x} 1").unwrap_err().to_string(), "line 1: expected a closing '\"' in the value of label \"job\"");
/// # Ok::<(), kf_serve::Error>(())
/// ```
pub fn parse(text: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|message| Error::Invalid { path: format!("line {}", i + 1), message })?;
        samples.push(sample);
    }
    Ok(samples)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

/// Splits `s` after the longest prefix whose characters satisfy `ok`.
fn take_while(s: &str, ok: impl Fn(char) -> bool) -> (&str, &str) {
    let end = s.char_indices().find(|(_, c)| !ok(*c)).map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

fn parse_line(line: &str) -> std::result::Result<Sample, String> {
    if !line.starts_with(is_name_start) {
        return Err(format!("expected a metric name, found {:?}", excerpt(line)));
    }
    let (name, mut rest) = take_while(line, is_name_char);
    let mut labels = Vec::new();
    // Blanks may separate the name from its labels.
    if let Some(after) = rest.trim_start().strip_prefix('{') {
        rest = after.trim_start();
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = take_while(rest, |c| c.is_ascii_alphanumeric() || c == '_');
            if label.is_empty() || label.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("expected a label name or '}}' after {name}{{, found {:?}", excerpt(rest)));
            }
            let after =
                after.trim_start().strip_prefix('=').ok_or_else(|| format!("expected '=' after label {label:?}"))?;
            let after = after.trim_start().strip_prefix('"').ok_or_else(|| format!("expected '\"' after {label}="))?;
            let (value, after) =
                label_value(after).ok_or_else(|| format!("expected a closing '\"' in the value of label {label:?}"))?;
            labels.push((label.to_string(), value));
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' after label {label:?}, found {:?}", excerpt(rest)));
            }
        }
    }
    if !rest.starts_with([' ', '\t']) {
        return Err(format!("expected a space and a value after {name}, found {:?}", excerpt(rest)));
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or_else(|| format!("expected a value after {name}"))?;
    let value =
        number(value).ok_or_else(|| format!("expected a number as the value of {name}, found {:?}", excerpt(value)))?;
    if let Some(timestamp) = fields.next()
        && timestamp.parse::<i64>().is_err()
    {
        return Err(format!("expected a timestamp in milliseconds after the value of {name}, found {timestamp:?}"));
    }
    if let Some(extra) = fields.next() {
        return Err(format!("expected the end of the line after the value of {name}, found {extra:?}"));
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// The first 40 characters of `s`, so an error quoting an HTML page (a
/// proxy's error) stays one readable line.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A label value up to its closing quote, unescaped, and what follows the
/// quote; `None` when the quote is missing.
fn label_value(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

fn number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        // Rust also reads "inf" and "infinity"; the format never writes them.
        _ if s.chars().any(|c| c.is_ascii_alphabetic() && !matches!(c, 'e' | 'E')) => None,
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use proptest::prelude::*;

    #[test]
    fn reads_what_the_server_renders() {
        let metrics = Metrics::default();
        metrics.record("a\"b\\c\nd", 200, std::time::Duration::from_millis(2));
        let samples = parse(&metrics.render()).expect("the server's own output");
        let count = samples.iter().find(|s| s.name == "kf_serve_requests_total").expect("a request counter");
        assert_eq!(count.label("model"), Some("a\"b\\c\nd"));
        assert_eq!(count.label("code"), Some("200"));
        assert_eq!(count.value, 1.0);
        let inf = samples.iter().find(|s| s.label("le") == Some("+Inf")).expect("the +Inf bucket");
        assert_eq!(inf.value, 1.0);
        assert!(samples.iter().any(|s| s.name == "kf_serve_requests_in_flight" && s.labels.is_empty()));
    }

    #[test]
    fn special_values_and_spacing() {
        let samples = parse("a +Inf\nb{} -Inf\nc NaN\n d { x = \"1\" , } 2.5e-3 \n\n# comment\n").expect("valid");
        assert_eq!(samples[0].value, f64::INFINITY);
        assert_eq!(samples[1].value, f64::NEG_INFINITY);
        assert!(samples[2].value.is_nan());
        assert_eq!(samples[3].labels, vec![("x".to_string(), "1".to_string())]);
        assert_eq!(samples[3].value, 0.0025);
    }

    #[test]
    fn bad_lines_name_the_line_and_what_was_expected() {
        let cases = [
            ("ok 1\n{x=\"1\"} 2", "line 2: expected a metric name"),
            ("m{x=1} 2", "line 1: expected '\"' after x="),
            ("m{x=\"1\" y=\"2\"} 2", "line 1: expected ',' or '}' after label \"x\""),
            ("m{9x=\"1\"} 2", "line 1: expected a label name or '}'"),
            ("m", "line 1: expected a space and a value after m"),
            ("m two", "line 1: expected a number as the value of m, found \"two\""),
            ("m inf", "line 1: expected a number"),
            ("m 1 yesterday", "line 1: expected a timestamp"),
            ("m 1 2 3", "line 1: expected the end of the line"),
            ("<html>", "line 1: expected a metric name"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn errors_quote_at_most_an_excerpt() {
        let page = format!("<html>{}</html>", "é".repeat(10_000));
        let err = parse(&page).expect_err("not metrics").to_string();
        assert!(err.chars().count() < 100 && err.ends_with("…\""), "{err}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn label_values_round_trip(value in "\\PC*", v in -1e12f64..1e12) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let samples = parse(&format!("m{{k=\"{escaped}\"}} {v}")).expect("valid");
            prop_assert_eq!(samples[0].label("k"), Some(value.as_str()));
            prop_assert_eq!(samples[0].value, v);
        }
    }
}
