//! Request metrics in the Prometheus text format: request counts by model
//! and status, a latency histogram per model, requests in flight, and the
//! KPA autoscaler's recommendation per model.
//!
//! IO-free and lock-light: recording is a map lookup under a shared lock
//! plus a few relaxed atomic adds (and, for models the server knows, one
//! short per-model lock feeding the autoscaler's windows);
//! [`Metrics::render`] writes the text exposition format. Time comes from
//! the caller as [`Instant`]s; serving `/metrics` and ticking the autoscaler
//! are the server's job.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::autoscale::{ConcurrencyMeter, Decision, Kpa, KpaConfig, MetricWindow, Observation, ScaleMetric};

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
#[derive(Debug)]
pub struct Metrics {
    models: RwLock<BTreeMap<String, Arc<ModelStats>>>,
    in_flight: AtomicI64,
    autoscale: KpaConfig,
    /// The autoscaler's clock starts here; windows see time since `origin`.
    origin: Instant,
    loads: RwLock<BTreeMap<String, Arc<Mutex<ModelLoad>>>>,
    /// Per-model configurations replacing `autoscale`.
    configs: RwLock<BTreeMap<String, KpaConfig>>,
}

impl Default for Metrics {
    fn default() -> Self {
        // The default configuration is valid.
        Metrics::unchecked(KpaConfig::default())
    }
}

/// What the autoscaler keeps per model: its load windows, its KPA state and
/// its last decision.
#[derive(Debug)]
struct ModelLoad {
    concurrency: ConcurrencyMeter,
    requests: MetricWindow,
    kpa: Kpa,
    last: Option<(Observation, Decision)>,
}

/// The replicas this server stands for when the autoscaler asks how many
/// are ready: itself. The recommendation therefore reads "replicas of this
/// model needed for the traffic this server saw".
const SERVER_REPLICAS: u32 = 1;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update of a ModelLoad is a few field writes; a panic cannot leave
    // it in a state worse than a slightly stale window.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Escapes a label value for the text format (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Metrics whose autoscaler recommendations follow `config` (KPA over
    /// concurrency or RPS), with its clock starting now.
    pub fn with_autoscaler(config: KpaConfig) -> crate::Result<Self> {
        config.validate()?;
        Ok(Metrics::unchecked(config))
    }

    fn unchecked(config: KpaConfig) -> Self {
        Metrics {
            models: RwLock::default(),
            in_flight: AtomicI64::default(),
            autoscale: config,
            origin: Instant::now(),
            loads: RwLock::default(),
            configs: RwLock::default(),
        }
    }

    /// Scales `model` with `config` instead of the server-wide one (e.g.
    /// [`KpaConfig::for_predictor`] of its InferenceService). Restarts the
    /// model's KPA state; its load windows are kept.
    pub fn configure_model(&self, model: &str, config: KpaConfig) -> crate::Result<()> {
        let kpa = Kpa::new(config.clone())?;
        self.configs.write().unwrap_or_else(PoisonError::into_inner).insert(model.to_string(), config);
        if let Some(load) = self.loads.read().unwrap_or_else(PoisonError::into_inner).get(model) {
            let mut l = lock(load);
            l.kpa = kpa;
            l.last = None;
        }
        Ok(())
    }

    fn config_of(&self, model: &str) -> KpaConfig {
        let configs = self.configs.read().unwrap_or_else(PoisonError::into_inner);
        configs.get(model).cloned().unwrap_or_else(|| self.autoscale.clone())
    }

    fn since_origin(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }

    fn load(&self, model: &str) -> Option<Arc<Mutex<ModelLoad>>> {
        if let Some(l) = self.loads.read().unwrap_or_else(PoisonError::into_inner).get(model) {
            return Some(Arc::clone(l));
        }
        // Validated when set, so this cannot fail; if it did, the model
        // simply gets no recommendation.
        let config = self.config_of(model);
        let kpa = Kpa::new(config.clone()).ok()?;
        // Keep enough history for any configuration the model may get later.
        let keep = config.stable_window.max(Duration::from_secs(3600));
        let mut loads = self.loads.write().unwrap_or_else(PoisonError::into_inner);
        let entry = loads.entry(model.to_string()).or_insert_with(|| {
            Arc::new(Mutex::new(ModelLoad {
                concurrency: ConcurrencyMeter::new(keep),
                requests: MetricWindow::new(keep),
                kpa,
                last: None,
            }))
        });
        Some(Arc::clone(entry))
    }

    /// A request for `model`, a model the server serves, started at `at`:
    /// feeds the autoscaler's concurrency and request-rate windows. The
    /// returned guard ends the request (at the time it is dropped) so the
    /// concurrency stays right on every exit path. Only call this for known
    /// models: every name becomes a label.
    pub fn start_model(&self, model: &str, at: Instant) -> ModelInFlight<'_> {
        let load = self.load(model);
        if let Some(load) = &load {
            let now = self.since_origin(at);
            let mut l = lock(load);
            l.concurrency.start(now);
            l.requests.record(now, 1.0);
        }
        ModelInFlight { metrics: self, load }
    }

    /// Runs the autoscaler for every model at `at` (call it on a fixed
    /// period, Knative uses 2 s) and keeps the decisions for
    /// [`Metrics::render`]. Returns `(model, desired replicas)`.
    /// O(models × window).
    pub fn autoscale(&self, at: Instant) -> Vec<(String, u32)> {
        let now = self.since_origin(at);
        let loads: Vec<(String, Arc<Mutex<ModelLoad>>)> = self
            .loads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        loads
            .into_iter()
            .map(|(model, load)| {
                let mut l = lock(&load);
                let config = l.kpa.config().clone();
                let (stable_window, panic_window) = (config.stable_window, config.panic_window);
                let (stable, panic) = match config.metric {
                    ScaleMetric::Concurrency => {
                        (l.concurrency.average(now, stable_window), l.concurrency.average(now, panic_window))
                    }
                    // Whole seconds only: the current one is still filling.
                    ScaleMetric::Rps => {
                        let end = now.saturating_sub(Duration::from_secs(1));
                        (l.requests.average(end, stable_window), l.requests.average(end, panic_window))
                    }
                };
                let observation = Observation { now, ready_replicas: SERVER_REPLICAS, stable, panic };
                let decision = l.kpa.decide(&observation);
                l.last = Some((observation, decision));
                (model, decision.desired)
            })
            .collect()
    }

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

    /// Requests answered so far per model: (model, total, answered with a
    /// status other than 200), by model name. `""` gathers requests that
    /// named no known model. O(models).
    pub fn requests(&self) -> Vec<(String, u64, u64)> {
        let models = self.models.read().unwrap_or_else(PoisonError::into_inner);
        models
            .iter()
            .map(|(name, stats)| {
                let counts: Vec<u64> = stats.by_status.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                let total: u64 = counts.iter().sum();
                (name.clone(), total, total - counts[0])
            })
            .collect()
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
        drop(models);
        self.render_autoscaler(&mut out);
        out
    }

    fn render_autoscaler(&self, out: &mut String) {
        let loads = self.loads.read().unwrap_or_else(PoisonError::into_inner);
        let decided: Vec<(String, Observation, Decision)> = loads
            .iter()
            .filter_map(|(m, l)| {
                let l = lock(l);
                let unit = match l.kpa.config().metric {
                    ScaleMetric::Concurrency => "concurrency",
                    ScaleMetric::Rps => "rps",
                };
                l.last.map(|(o, d)| (format!("model=\"{}\",metric=\"{unit}\"", escape(m)), o, d))
            })
            .collect();
        drop(loads);
        let gauges: [(&str, &str, Gauge); 4] = [
            ("desired_replicas", "Replicas the KPA recommends for the traffic this server saw.", |_, d| {
                f64::from(d.desired)
            }),
            ("panic_mode", "1 while the KPA is in panic mode for the model.", |_, d| f64::from(u8::from(d.panicking))),
            ("stable_value", "The scale metric (concurrency or rps) over the stable window.", |o, _| o.stable),
            ("panic_value", "The scale metric (concurrency or rps) over the panic window.", |o, _| o.panic),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP kf_serve_autoscaler_{name} {help}");
            let _ = writeln!(out, "# TYPE kf_serve_autoscaler_{name} gauge");
            for (labels, o, d) in &decided {
                let _ = writeln!(out, "kf_serve_autoscaler_{name}{{{labels}}} {}", value(o, d));
            }
        }
    }
}

/// How one autoscaler gauge reads its value from a decision.
type Gauge = fn(&Observation, &Decision) -> f64;

/// A request of a known model in flight; dropping it ends the request in
/// the autoscaler's concurrency window.
#[derive(Debug)]
pub struct ModelInFlight<'a> {
    metrics: &'a Metrics,
    load: Option<Arc<Mutex<ModelLoad>>>,
}

impl ModelInFlight<'_> {
    /// Ends the request at `at` (dropping the guard ends it now).
    pub fn finish(mut self, at: Instant) {
        if let Some(load) = self.load.take() {
            lock(&load).concurrency.end(self.metrics.since_origin(at));
        }
    }
}

impl Drop for ModelInFlight<'_> {
    fn drop(&mut self) {
        if let Some(load) = &self.load {
            lock(load).concurrency.end(self.metrics.since_origin(Instant::now()));
        }
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

/// Appends the batch-size histogram (`kf_serve_batch_size`, rows per
/// batch) and queue depth (`kf_serve_batch_queue_depth`, requests waiting)
/// of every batching model version to `out`. O(models × buckets).
pub fn render_batching(out: &mut String, stats: &[(String, String, crate::router::batch::BatchStats)]) {
    use crate::router::batch::BATCH_BUCKETS;
    if stats.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP kf_serve_batch_size Rows per batch run by a batching model.");
    let _ = writeln!(out, "# TYPE kf_serve_batch_size histogram");
    for (model, version, s) in stats {
        let labels = format!("model=\"{}\",version=\"{}\"", escape(model), escape(version));
        for (bound, n) in BATCH_BUCKETS.iter().zip(&s.buckets) {
            let _ = writeln!(out, "kf_serve_batch_size_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "kf_serve_batch_size_bucket{{{labels},le=\"+Inf\"}} {}", s.batches);
        let _ = writeln!(out, "kf_serve_batch_size_sum{{{labels}}} {}", s.rows);
        let _ = writeln!(out, "kf_serve_batch_size_count{{{labels}}} {}", s.batches);
    }
    let _ = writeln!(out, "# HELP kf_serve_batch_queue_depth Requests waiting for a batch.");
    let _ = writeln!(out, "# TYPE kf_serve_batch_queue_depth gauge");
    for (model, version, s) in stats {
        let _ = writeln!(
            out,
            "kf_serve_batch_queue_depth{{model=\"{}\",version=\"{}\"}} {}",
            escape(model),
            escape(version),
            s.queued
        );
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
        m.record("iris", 200, Duration::from_millis(1));
        m.record("iris", 400, Duration::from_millis(1));
        m.record("iris", 200, Duration::from_millis(1));
        assert_eq!(m.requests(), vec![("a\"b".to_owned(), 1, 1), ("iris".to_owned(), 3, 1)]);
    }

    #[test]
    fn the_autoscaler_gauge_follows_observed_concurrency_and_rate() {
        let config = KpaConfig { target: 1.0, ..KpaConfig::default() };
        let m = Metrics::with_autoscaler(config).expect("valid");
        let t0 = m.origin;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Three requests in flight for ten seconds: 3 ÷ 0.7 → 5 replicas, and
        // panic, since one server is far from 5.
        let guards: Vec<_> = (0..3).map(|_| m.start_model("iris", at(0))).collect();
        for g in guards {
            g.finish(at(10_000));
        }
        assert_eq!(m.autoscale(at(10_000)), vec![("iris".to_string(), 5)]);
        let text = m.render();
        assert!(
            text.contains(r#"kf_serve_autoscaler_desired_replicas{model="iris",metric="concurrency"} 5"#),
            "{text}"
        );
        assert!(text.contains(r#"kf_serve_autoscaler_panic_mode{model="iris",metric="concurrency"} 1"#), "{text}");
        assert!(text.contains(r#"kf_serve_autoscaler_stable_value{model="iris",metric="concurrency"} 3"#), "{text}");
        // Idle: panic holds 5 for a stable window; then the average is zero
        // after another window and the grace period.
        assert_eq!(m.autoscale(at(60_000)), vec![("iris".to_string(), 5)]);
        assert_eq!(m.autoscale(at(140_000)), vec![("iris".to_string(), 1)], "grace period");
        assert_eq!(m.autoscale(at(172_000)), vec![("iris".to_string(), 0)]);
        assert!(m.render().contains(r#"kf_serve_autoscaler_panic_mode{model="iris",metric="concurrency"} 0"#));

        let rps =
            Metrics::with_autoscaler(KpaConfig { metric: ScaleMetric::Rps, target: 10.0, ..KpaConfig::default() })
                .expect("valid");
        let t0 = rps.origin;
        for i in 0..600u64 {
            // 20 requests a second for 30 s, each 1 ms long.
            rps.start_model("m", t0 + Duration::from_millis(i * 50)).finish(t0 + Duration::from_millis(i * 50 + 1));
        }
        assert_eq!(rps.autoscale(t0 + Duration::from_secs(30)), vec![("m".to_string(), 3)], "20 rps ÷ 7");
        assert!(rps.render().contains(r#"kf_serve_autoscaler_stable_value{model="m",metric="rps"} 20"#));
        // One model scaled on its own terms: RPS target 5 → 20 ÷ 3.5 = 6 replicas.
        let own = KpaConfig { metric: ScaleMetric::Rps, target: 5.0, ..KpaConfig::default() };
        rps.configure_model("m", own).expect("valid");
        assert_eq!(rps.autoscale(t0 + Duration::from_secs(30)), vec![("m".to_string(), 6)]);
        assert!(rps.configure_model("m", KpaConfig { target: 0.0, ..KpaConfig::default() }).is_err());
        assert!(Metrics::with_autoscaler(KpaConfig { target: -1.0, ..KpaConfig::default() }).is_err());
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
