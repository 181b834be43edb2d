//! Katib's `Push` metrics collector: trials report their metrics themselves,
//! over HTTP, to the process running the experiment.
//!
//! This module is the IO-free core — the wire format, per-trial tokens and
//! the request checks; `runner::push` (feature `runner`) serves it on
//! 127.0.0.1 with hyper. It does not open sockets or record metrics.
//!
//! ## Wire format
//!
//! A trial started by `kf tune run` under `metricsCollectorSpec.collector.kind:
//! Push` finds two variables in its environment:
//!
//! - `KF_TUNE_PUSH_URL` — e.g. `http://127.0.0.1:40123/v1/metrics`;
//! - `KF_TUNE_PUSH_TOKEN` — a random token (64 hex digits) for this trial only,
//!   revoked when the trial ends.
//!
//! It reports with `POST $KF_TUNE_PUSH_URL`, header `Authorization: Bearer
//! $KF_TUNE_PUSH_TOKEN`, and a body of at most [`MAX_BODY_BYTES`] that is
//! either JSON (when its first non-blank character is `{`):
//!
//! ```text
//! {"metrics": {"loss": 0.3, "accuracy": 0.91}}
//! ```
//!
//! or text: `name=value` pairs separated by whitespace, commas or newlines
//! (`loss=0.3 accuracy=0.91`). Values are finite numbers; a body reports at
//! least one. The `Content-Type` header is not read. Each value is one
//! observation, in body order (JSON members in name order), exactly as a
//! `name=value` line on stdout would be under `StdOut`; several requests make
//! a series, reduced by the metric's strategy when the trial ends.
//!
//! Replies (JSON bodies):
//!
//! | status | when | body |
//! |---|---|---|
//! | 200 | recorded | `{"stop": false}`; `true` once the trial has been asked to stop (early stopping, experiment ended): it should exit |
//! | 400 | the body is not one of the two forms | `{"error": "..."}` |
//! | 401 | no `Bearer` token, or not the token of a running trial | `{"error": "..."}` |
//! | 404 | another path | `{"error": "..."}` |
//! | 405 | another method than `POST` | `{"error": "..."}` |
//! | 413 | the body is longer than [`MAX_BODY_BYTES`] | `{"error": "..."}` |
//!
//! ```
//! use kf_tune::push::{Grants, parse_metrics};
//!
//! assert_eq!(parse_metrics(br#"{"metrics": {"loss": 0.25}}"#)?, [("loss".to_owned(), 0.25)]);
//! assert_eq!(parse_metrics(b"loss=0.5, accuracy=0.8\n")?, [("loss".to_owned(), 0.5), ("accuracy".to_owned(), 0.8)]);
//! assert!(parse_metrics(b"loss=abc").is_err());
//!
//! let mut grants = Grants::new();
//! grants.grant("secret-of-trial-0".into(), 0);
//! assert_eq!(grants.authorize(Some("Bearer secret-of-trial-0")), Some(&0));
//! assert_eq!(grants.authorize(Some("Bearer secret-of-trial-1")), None);
//! # Ok::<(), String>(())
//! ```

use rand::Rng;
use serde_json::Value;

/// The environment variable holding the URL to push to.
pub const URL_ENV: &str = "KF_TUNE_PUSH_URL";
/// The environment variable holding the trial's token.
pub const TOKEN_ENV: &str = "KF_TUNE_PUSH_TOKEN";
/// The path metrics are pushed to.
pub const PATH: &str = "/v1/metrics";
/// The longest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An HTTP reply: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

impl Reply {
    /// 200: the metrics were recorded; `stop` says whether the trial should stop.
    pub fn recorded(stop: bool) -> Self {
        Reply { status: 200, body: serde_json::json!({ "stop": stop }).to_string() }
    }

    /// An error reply with `status` and a message.
    pub fn error(status: u16, message: &str) -> Self {
        Reply { status, body: serde_json::json!({ "error": message }).to_string() }
    }
}

/// Tokens granted to running trials, each mapped to what the trial reports
/// into. O(grants) per lookup, comparing every token in constant time, so a
/// reply's timing does not tell how much of a guess was right.
#[derive(Debug, Clone)]
pub struct Grants<T> {
    grants: Vec<(String, T)>,
}

impl<T> Default for Grants<T> {
    fn default() -> Self {
        Grants { grants: Vec::new() }
    }
}

impl<T> Grants<T> {
    /// No grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `token` report into `target`.
    pub fn grant(&mut self, token: String, target: T) {
        self.grants.push((token, target));
    }

    /// Withdraws `token`; reports with it are refused from now on.
    pub fn revoke(&mut self, token: &str) {
        self.grants.retain(|(t, _)| t != token);
    }

    /// How many tokens are granted.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no token is granted.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The target of the `Authorization` header's bearer token, if it is granted.
    pub fn authorize(&self, authorization: Option<&str>) -> Option<&T> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        if token.is_empty() {
            return None;
        }
        let mut found = None;
        for (t, target) in &self.grants {
            if constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(target);
            }
        }
        found
    }

    /// Checks a request before its body is read: the target it may report
    /// into, or the reply refusing it (404, 405, 401, in that order).
    pub fn check(&self, method: &str, path: &str, authorization: Option<&str>) -> Result<&T, Reply> {
        if path != PATH {
            return Err(Reply::error(404, &format!("expected POST {PATH}, found path {path:?}")));
        }
        if method != "POST" {
            return Err(Reply::error(405, &format!("expected POST {PATH}, found method {method}")));
        }
        self.authorize(authorization).ok_or_else(|| {
            Reply::error(401, &format!("expected Authorization: Bearer ${TOKEN_ENV} of a running trial"))
        })
    }
}

/// Equal bytes, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh token: 32 bytes from `rng` as 64 hex digits. Pass a
/// cryptographically secure generator (`rand::rng()`).
pub fn new_token(rng: &mut impl Rng) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The metrics in a push body (see the module documentation), in order.
/// Errors say what was expected and what was found. O(body length).
pub fn parse_metrics(body: &[u8]) -> Result<Vec<(String, f64)>, String> {
    if body.len() > MAX_BODY_BYTES {
        return Err(format!("expected at most {MAX_BODY_BYTES} bytes, found {}", body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| "expected UTF-8 text, found other bytes".to_owned())?;
    let metrics = if text.trim_start().starts_with('{') { parse_json(text)? } else { parse_text(text)? };
    if metrics.is_empty() {
        return Err("expected at least one metric, found none".into());
    }
    Ok(metrics)
}

fn parse_json(text: &str) -> Result<Vec<(String, f64)>, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("expected a JSON object, found invalid JSON: {e}"))?;
    let Some(metrics) = doc.get("metrics").and_then(Value::as_object) else {
        return Err("expected {\"metrics\": {\"<name>\": <number>, ...}}, found no \"metrics\" object".into());
    };
    metrics
        .iter()
        .map(|(name, value)| {
            let number = value.as_f64().filter(|v| v.is_finite());
            match number {
                Some(v) if !name.is_empty() => Ok((name.clone(), v)),
                Some(_) => Err("expected metric names, found an empty name".into()),
                None => Err(format!("metrics.{name}: expected a finite number, found {value}")),
            }
        })
        .collect()
}

fn parse_text(text: &str) -> Result<Vec<(String, f64)>, String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').ok_or_else(|| format!("expected name=value, found {pair:?}"))?;
            let v: f64 = value.parse().map_err(|_| format!("{name}: expected a number, found {value:?}"))?;
            if name.is_empty() {
                Err(format!("expected name=value, found {pair:?}"))
            } else if !v.is_finite() {
                Err(format!("{name}: expected a finite number, found {value}"))
            } else {
                Ok((name.to_owned(), v))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn bodies_parse_as_json_or_text_and_bad_ones_say_why() {
        assert_eq!(
            parse_metrics(b" {\"metrics\": {\"loss\": 1, \"acc\": 0.5}}").unwrap(),
            [("acc".to_owned(), 0.5), ("loss".to_owned(), 1.0)]
        );
        assert_eq!(parse_metrics(b"loss=1e-3\nacc=2").unwrap(), [("loss".to_owned(), 1e-3), ("acc".to_owned(), 2.0)]);
        for (body, expected) in [
            (&b"{\"metrics\": {\"loss\": \"x\"}}"[..], "metrics.loss: expected a finite number, found \"x\""),
            (b"{\"loss\": 1}", "no \"metrics\" object"),
            (b"{\"metrics\": {}}", "at least one metric"),
            (b"{nope", "invalid JSON"),
            (b"", "at least one metric"),
            (b"loss", "expected name=value, found \"loss\""),
            (b"=1", "expected name=value"),
            (b"loss=NaN", "finite"),
            (b"loss=inf", "finite"),
            (b"\xff\xfe", "UTF-8"),
        ] {
            let err = parse_metrics(body).unwrap_err();
            assert!(err.contains(expected), "{:?}: {err}", String::from_utf8_lossy(body));
        }
        let big = format!("loss=1 {}", " ".repeat(MAX_BODY_BYTES));
        assert!(parse_metrics(big.as_bytes()).unwrap_err().contains("at most"));
    }

    #[test]
    fn only_the_owner_of_a_token_reports_and_revoked_tokens_are_refused() {
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
        let (a, b) = (new_token(&mut rng), new_token(&mut rng));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let mut grants = Grants::new();
        grants.grant(a.clone(), "trial-0");
        grants.grant(b.clone(), "trial-1");
        assert_eq!(grants.check("POST", PATH, Some(&format!("Bearer {a}"))), Ok(&"trial-0"));
        assert_eq!(grants.check("POST", PATH, Some(&format!("Bearer {b}"))), Ok(&"trial-1"));
        let status = |r: Result<&&str, Reply>| r.unwrap_err().status;
        assert_eq!(status(grants.check("POST", PATH, None)), 401);
        assert_eq!(status(grants.check("POST", PATH, Some(&a))), 401, "the Bearer scheme is required");
        assert_eq!(status(grants.check("POST", PATH, Some("Bearer "))), 401);
        assert_eq!(status(grants.check("POST", PATH, Some(&format!("Bearer {}", &a[..63])))), 401);
        assert_eq!(status(grants.check("GET", PATH, Some(&format!("Bearer {a}")))), 405);
        assert_eq!(status(grants.check("POST", "/metrics", Some(&format!("Bearer {a}")))), 404);
        grants.revoke(&a);
        assert_eq!(status(grants.check("POST", PATH, Some(&format!("Bearer {a}")))), 401);
        assert_eq!(grants.len(), 1);
    }

    #[test]
    fn replies_are_json() {
        assert_eq!(Reply::recorded(true).body, "{\"stop\":true}");
        let err: Value = serde_json::from_str(&Reply::error(400, "bad \"x\"").body).unwrap();
        assert_eq!(err["error"], "bad \"x\"");
    }
}
