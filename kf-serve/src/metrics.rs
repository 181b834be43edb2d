//! Request metrics in the Prometheus text format: request counts by model
//! and status, a latency histogram per model, and requests in flight.
//!
//! IO-free and lock-light: recording is a map lookup under a shared lock
//! plus a few relaxed atomic adds; [`Metrics::render`] writes the text
//! exposition format. Serving `/metrics` is the server's job.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds: from 50 µs
/// (a small ONNX model answers in tens of microseconds) to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0];

/// The status codes counted separately; anything else counts as 500.
const STATUSES: [u16; 6] = [200, 400, 404, 413, 500, 503];

#[derive(Debug, Default)]
struct ModelStats {
    by_status: [AtomicU64; STATUSES.len()],
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// Counters and histograms for every model a server has answered for.
///
/// ```
/// use std::time::Duration;
/// use kf_serve::metrics::Metrics;
///
/// let metrics = Metrics::default();
/// metrics.record("iris", 200, Duration::from_micros(80));
/// metrics.record("iris", 400, Duration::from_micros(20));
/// let text = metrics.render();
/// assert!(text.contains(r#"kf_serve_requests_total{model="iris",code="200"} 1"#));
/// assert!(text.contains(r#"kf_serve_request_duration_seconds_bucket{model="iris",le="0.0001"} 2"#));
/// assert!(text.contains(r#"kf_serve_request_duration_seconds_count{model="iris"} 2"#));
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    models: RwLock<BTreeMap<String, Arc<ModelStats>>>,
    in_flight: AtomicI64,
}

/// Escapes a label value for the text format (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn stats(&self, model: &str) -> Arc<ModelStats> {
        if let Some(s) = self.models.read().unwrap_or_else(PoisonError::into_inner).get(model) {
            return Arc::clone(s);
        }
        let mut models = self.models.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(models.entry(model.to_string()).or_default())
    }

    /// Records one answered request for `model` (use `""` for requests that
    /// named no known model, so unknown names cannot grow the label set).
    /// O(log models).
    pub fn record(&self, model: &str, status: u16, elapsed: Duration) {
        let stats = self.stats(model);
        let slot = STATUSES.iter().position(|s| *s == status).unwrap_or(4);
        stats.by_status[slot].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        // Buckets are cumulative in the exposition; store them cumulative too.
        for (bucket, bound) in stats.buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        stats.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        stats.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Marks a request as started; the returned guard marks it finished when
    /// dropped, so the gauge stays right when a handler returns early.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric. O(models × buckets).
    pub fn render(&self) -> String {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(out, "# HELP kf_serve_requests_total Inference requests answered, by model and status code.");
        let _ = writeln!(out, "# TYPE kf_serve_requests_total counter");
        for (model, stats) in models.iter() {
            for (status, n) in STATUSES.iter().zip(&stats.by_status) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ =
                        writeln!(out, "kf_serve_requests_total{{model=\"{}\",code=\"{status}\"}} {n}", escape(model));
                }
            }
        }
        let _ = writeln!(out, "# HELP kf_serve_request_duration_seconds Inference request latency, by model.");
        let _ = writeln!(out, "# TYPE kf_serve_request_duration_seconds histogram");
        for (model, stats) in models.iter() {
            let m = escape(model);
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&stats.buckets) {
                let _ = writeln!(
                    out,
                    "kf_serve_request_duration_seconds_bucket{{model=\"{m}\",le=\"{bound}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
            let count = stats.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "kf_serve_request_duration_seconds_bucket{{model=\"{m}\",le=\"+Inf\"}} {count}");
            let sum = stats.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "kf_serve_request_duration_seconds_sum{{model=\"{m}\"}} {sum}");
            let _ = writeln!(out, "kf_serve_request_duration_seconds_count{{model=\"{m}\"}} {count}");
        }
        let _ = writeln!(out, "# HELP kf_serve_requests_in_flight Inference requests being processed.");
        let _ = writeln!(out, "# TYPE kf_serve_requests_in_flight gauge");
        let _ = writeln!(out, "kf_serve_requests_in_flight {}", self.in_flight());
        out
    }
}

/// A request in flight; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_flight_follows_guards_and_labels_are_escaped() {
        let m = Metrics::default();
        {
            let _a = m.start();
            let _b = m.start();
            assert_eq!(m.in_flight(), 2);
        }
        assert_eq!(m.in_flight(), 0);
        m.record("a\"b", 503, Duration::from_secs(20));
        let text = m.render();
        assert!(text.contains(r#"kf_serve_requests_total{model="a\"b",code="503"} 1"#), "{text}");
        assert!(text.contains(r#"kf_serve_request_duration_seconds_bucket{model="a\"b",le="10"} 0"#), "{text}");
        assert!(text.contains(r#"kf_serve_request_duration_seconds_bucket{model="a\"b",le="+Inf"} 1"#), "{text}");
    }

    proptest! {
        #[test]
        fn buckets_are_cumulative_and_end_at_the_count(micros in prop::collection::vec(0u64..2_000_000, 0..40)) {
            let m = Metrics::default();
            for us in &micros {
                m.record("m", 200, Duration::from_micros(*us));
            }
            if micros.is_empty() {
                prop_assert!(!m.render().contains("model=\"m\""));
                return Ok(());
            }
            let stats = m.stats("m");
            let counts: Vec<u64> = stats.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            prop_assert!(counts.windows(2).all(|w| w[0] <= w[1]));
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&counts) {
                let want = micros.iter().filter(|us| (**us as f64) / 1e6 <= *bound).count() as u64;
                prop_assert_eq!(*n, want);
            }
            prop_assert_eq!(stats.count.load(Ordering::Relaxed), micros.len() as u64);
        }
    }
}
