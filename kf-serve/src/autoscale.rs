//! The Knative Pod Autoscaler (KPA) algorithm, as KServe's serverless mode
//! runs it: observed concurrency or requests per second, averaged over a
//! stable and a panic window, in; desired replicas out.
//!
//! What this module owns: the windows ([`MetricWindow`], [`ConcurrencyMeter`])
//! and the decision ([`Kpa::decide`]), all pure functions of the data and of
//! a caller-supplied clock (a [`Duration`] since any fixed origin). It must
//! not read clocks, sleep, spawn or scale anything: the server samples its
//! own traffic into these types and exposes the answer as a gauge, and an
//! operator would apply it to a Deployment.
//!
//! The decision follows Knative's `pkg/autoscaler/scaling` semantics:
//!
//! - per-replica target = `target × target_utilization` (70 % by default);
//! - stable and panic recommendations = ⌈window average ÷ target⌉, each
//!   clamped to the rate limits `[⌊ready ÷ max_scale_down_rate⌋,
//!   ⌈ready × max_scale_up_rate⌉]` (`ready` counts at least 1);
//! - panic starts when the panic recommendation (rounded up, before the
//!   rate limits) reaches `panic_threshold` × the ready replicas (200 %), is extended by every tick still over it,
//!   and ends only once a whole stable window has passed without one;
//! - while panicking the larger of the two recommendations is used and the
//!   count never goes down;
//! - the last replica goes only after zero has been recommended for the
//!   scale-to-zero grace period (and the stable window, whose average must
//!   itself have reached zero, has seen no traffic);
//! - finally `min_replicas` / `max_replicas` bound the answer.
//!
//! [`KpaConfig::for_predictor`] reads the settings an InferenceService asks
//! for (component fields and `autoscaling.knative.dev/*` annotations).

use std::collections::VecDeque;
use std::time::Duration;

use crate::{Error, Result};

/// What the autoscaler counts per replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleMetric {
    /// Requests being processed at once (Knative's default).
    Concurrency,
    /// Requests arriving per second.
    Rps,
}

/// The KPA's knobs, with Knative's defaults (`config-autoscaler`).
#[derive(Debug, Clone, PartialEq)]
pub struct KpaConfig {
    /// What [`KpaConfig::target`] counts.
    pub metric: ScaleMetric,
    /// Per-replica target of the metric: container concurrency (or the
    /// `autoscaling.knative.dev/target` annotation), or RPS. Default 100.
    pub target: f64,
    /// Share of the target to aim for, in (0, 1]. Default 0.7.
    pub target_utilization: f64,
    /// Window of the stable average. Default 60 s.
    pub stable_window: Duration,
    /// Window of the panic average. Default 6 s (10 % of the stable window).
    pub panic_window: Duration,
    /// Panic when the panic recommendation reaches this multiple of the ready
    /// replicas. Default 2.0 (200 %).
    pub panic_threshold: f64,
    /// At most this many times the ready replicas per decision. Default 1000.
    pub max_scale_up_rate: f64,
    /// At least the ready replicas divided by this per decision. Default 2.
    pub max_scale_down_rate: f64,
    /// Lower bound; 0 allows scale to zero. Default 0.
    pub min_replicas: u32,
    /// Upper bound; 0 means none. Default 0.
    pub max_replicas: u32,
    /// How long zero must have been recommended before the last replica
    /// goes. Default 30 s.
    pub scale_to_zero_grace: Duration,
}

impl Default for KpaConfig {
    fn default() -> Self {
        KpaConfig {
            metric: ScaleMetric::Concurrency,
            target: 100.0,
            target_utilization: 0.7,
            stable_window: Duration::from_secs(60),
            panic_window: Duration::from_secs(6),
            panic_threshold: 2.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            min_replicas: 0,
            max_replicas: 0,
            scale_to_zero_grace: Duration::from_secs(30),
        }
    }
}

fn bad(path: &str, message: String) -> Result<()> {
    Err(Error::Invalid { path: path.into(), message })
}

impl KpaConfig {
    /// The per-replica value the autoscaler aims for: `target ×
    /// target_utilization`, at least 0.01 as in Knative.
    pub fn target_per_replica(&self) -> f64 {
        (self.target * self.target_utilization).max(0.01)
    }

    /// Checks the ranges Knative accepts, naming the field at fault.
    ///
    /// ```
    /// use kf_serve::autoscale::KpaConfig;
    /// assert!(KpaConfig::default().validate().is_ok());
    /// let bad = KpaConfig { target_utilization: 1.5, ..KpaConfig::default() };
    /// assert!(bad.validate().unwrap_err().to_string().starts_with("targetUtilization:"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.target) {
            return bad("target", format!("expected a positive number, found {}", self.target));
        }
        if !(positive(self.target_utilization) && self.target_utilization <= 1.0) {
            return bad("targetUtilization", format!("expected (0, 1], found {}", self.target_utilization));
        }
        if self.stable_window < Duration::from_secs(6) || self.stable_window > Duration::from_secs(3600) {
            return bad("stableWindow", format!("expected 6s to 1h, found {:?}", self.stable_window));
        }
        if self.panic_window < Duration::from_secs(1) || self.panic_window > self.stable_window {
            return bad("panicWindow", format!("expected 1s up to the stable window, found {:?}", self.panic_window));
        }
        if !(self.panic_threshold.is_finite() && self.panic_threshold >= 1.1) {
            return bad("panicThreshold", format!("expected at least 1.1 (110 %), found {}", self.panic_threshold));
        }
        if !(self.max_scale_up_rate.is_finite() && self.max_scale_up_rate > 1.0) {
            return bad("maxScaleUpRate", format!("expected more than 1, found {}", self.max_scale_up_rate));
        }
        if !(self.max_scale_down_rate.is_finite() && self.max_scale_down_rate > 1.0) {
            return bad("maxScaleDownRate", format!("expected more than 1, found {}", self.max_scale_down_rate));
        }
        if self.max_replicas != 0 && self.min_replicas > self.max_replicas {
            return bad(
                "minReplicas",
                format!("{} is greater than maxReplicas {}", self.min_replicas, self.max_replicas),
            );
        }
        Ok(())
    }
}

/// What the autoscaler sees at one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The decision's time, on the caller's clock.
    pub now: Duration,
    /// Replicas ready to serve now.
    pub ready_replicas: u32,
    /// The metric summed over all replicas, averaged over the stable window.
    pub stable: f64,
    /// The same over the panic window.
    pub panic: f64,
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Replicas to run.
    pub desired: u32,
    /// Whether the autoscaler is in panic mode after this decision.
    pub panicking: bool,
    /// The stable window's recommendation, rate-limited.
    pub stable_desired: u32,
    /// The panic window's recommendation, rate-limited.
    pub panic_desired: u32,
}

/// The KPA: configuration plus the little state the algorithm carries
/// between decisions (when panic was last justified, the most replicas
/// panic asked for, since when zero has been recommended).
///
/// ```
/// use std::time::Duration;
/// use kf_serve::autoscale::{Kpa, KpaConfig, Observation};
///
/// // 10 concurrent requests per replica at 70 %: 7 per replica.
/// let mut kpa = Kpa::new(KpaConfig { target: 10.0, ..KpaConfig::default() })?;
/// let d = kpa.decide(&Observation { now: Duration::from_secs(60), ready_replicas: 2, stable: 14.0, panic: 14.0 });
/// assert_eq!((d.desired, d.panicking), (2, false));
/// // A burst: the panic window sees 70, five times what 2 replicas serve.
/// let d = kpa.decide(&Observation { now: Duration::from_secs(62), ready_replicas: 2, stable: 18.0, panic: 70.0 });
/// assert_eq!((d.desired, d.panicking), (10, true));
/// // The burst ends, but panic never scales down.
/// let d = kpa.decide(&Observation { now: Duration::from_secs(64), ready_replicas: 10, stable: 18.0, panic: 14.0 });
/// assert_eq!((d.desired, d.panicking), (10, true));
/// # Ok::<(), kf_serve::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Kpa {
    config: KpaConfig,
    panic_since: Option<Duration>,
    max_panic_replicas: u32,
    zero_since: Option<Duration>,
}

/// `ceil(v)` as a replica count: negative and NaN are 0, huge saturates.
fn replicas(v: f64) -> u32 {
    // Float-to-int `as` saturates and maps NaN to 0, which is what we want.
    v.ceil().max(0.0) as u32
}

impl Kpa {
    /// An autoscaler with a valid `config`, not panicking.
    pub fn new(config: KpaConfig) -> Result<Self> {
        config.validate()?;
        Ok(Kpa { config, panic_since: None, max_panic_replicas: 0, zero_since: None })
    }

    /// An autoscaler taking over `ready_replicas` at `now` with no history:
    /// it starts in panic holding that count, so a restart never scales a
    /// loaded service down before it has a stable window of data (Knative
    /// does the same for more than one replica).
    pub fn resume(config: KpaConfig, ready_replicas: u32, now: Duration) -> Result<Self> {
        let mut kpa = Kpa::new(config)?;
        if ready_replicas > 1 {
            kpa.panic_since = Some(now);
            kpa.max_panic_replicas = ready_replicas;
        }
        Ok(kpa)
    }

    /// The configuration.
    pub fn config(&self) -> &KpaConfig {
        &self.config
    }

    /// Whether the last decision left the autoscaler panicking.
    pub fn is_panicking(&self) -> bool {
        self.panic_since.is_some()
    }

    /// Decides the replicas for `observation`. Call it on a fixed tick
    /// (Knative: every 2 s) with a clock that never goes backwards. O(1).
    pub fn decide(&mut self, observation: &Observation) -> Decision {
        let c = &self.config;
        let now = observation.now;
        let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let (stable, panic) = (clean(observation.stable), clean(observation.panic));
        let ready = f64::from(observation.ready_replicas.max(1));
        let target = c.target_per_replica();

        let max_up = replicas(ready * c.max_scale_up_rate);
        let max_down = (ready / c.max_scale_down_rate).floor() as u32;
        let stable_desired = replicas(stable / target).clamp(max_down, max_up);
        let panic_desired = replicas(panic / target).clamp(max_down, max_up);

        // Knative compares the rounded-up, not yet rate-limited panic
        // recommendation with the ready count: one replica needing a second
        // is already 200 %.
        let over_threshold = (panic / target).ceil() / ready >= c.panic_threshold;
        match self.panic_since {
            _ if over_threshold => self.panic_since = Some(now),
            Some(since) if now.saturating_sub(since) > c.stable_window => {
                self.panic_since = None;
                self.max_panic_replicas = 0;
            }
            _ => {}
        }

        let mut desired = stable_desired;
        if self.panic_since.is_some() {
            // The stable average can exceed the panic one (a burst just left
            // the panic window): provision for whichever is larger.
            desired = desired.max(panic_desired);
            if desired > self.max_panic_replicas {
                self.max_panic_replicas = desired;
            } else {
                desired = self.max_panic_replicas;
            }
        }

        if desired == 0 && observation.ready_replicas > 0 {
            let since = *self.zero_since.get_or_insert(now);
            if now.saturating_sub(since) < c.scale_to_zero_grace {
                desired = 1;
            }
        } else if desired > 0 {
            self.zero_since = None;
        }

        desired = desired.max(c.min_replicas);
        if c.max_replicas > 0 {
            desired = desired.min(c.max_replicas);
        }
        Decision { desired, panicking: self.panic_since.is_some(), stable_desired, panic_desired }
    }
}

/// A time series in one-second buckets, averaged over trailing windows
/// (Knative's timed buckets without the weighting).
///
/// A bucket holds the sum of what was recorded in its second: for request
/// counts, the requests that second (so averages are RPS); for concurrency,
/// concurrency × seconds (so averages are mean concurrency, see
/// [`ConcurrencyMeter`]). Seconds with nothing recorded count as zero once
/// the series has started.
///
/// ```
/// use std::time::Duration;
/// use kf_serve::autoscale::MetricWindow;
///
/// let mut w = MetricWindow::new(Duration::from_secs(60));
/// for s in 0..10 {
///     w.record(Duration::from_secs(s), 5.0);          // 5 requests every second
/// }
/// assert_eq!(w.average(Duration::from_secs(9), Duration::from_secs(6)), 5.0);
/// assert_eq!(w.average(Duration::from_secs(12), Duration::from_secs(6)), 2.5); // 3 of 6 seconds empty
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricWindow {
    /// `(second, sum)`, seconds strictly increasing.
    buckets: VecDeque<(u64, f64)>,
    first: Option<u64>,
    keep: u64,
}

impl MetricWindow {
    /// An empty series keeping at least `keep` of history (the longest
    /// window it will be asked for).
    pub fn new(keep: Duration) -> Self {
        MetricWindow { buckets: VecDeque::new(), first: None, keep: keep.as_secs().max(1) }
    }

    /// Adds `value` to the bucket of second `at`. Values recorded out of
    /// order (older than the newest bucket) go to their own bucket if it is
    /// still kept. Amortised O(1) for in-order records.
    pub fn record(&mut self, at: Duration, value: f64) {
        if !value.is_finite() {
            return;
        }
        let second = at.as_secs();
        self.first = Some(self.first.map_or(second, |f| f.min(second)));
        match self.buckets.iter().rposition(|(s, _)| *s <= second) {
            Some(i) if self.buckets[i].0 == second => self.buckets[i].1 += value,
            Some(i) => self.buckets.insert(i + 1, (second, value)),
            None => self.buckets.push_front((second, value)),
        }
        let newest = self.buckets.back().map_or(second, |(s, _)| *s);
        while self.buckets.front().is_some_and(|(s, _)| s + self.keep < newest) {
            self.buckets.pop_front();
        }
    }

    /// The mean per second over the `window` ending with second `now`
    /// (inclusive), or over the whole history when it is shorter. 0 with no
    /// history. O(buckets in window).
    pub fn average(&self, now: Duration, window: Duration) -> f64 {
        let Some(first) = self.first else { return 0.0 };
        let now = now.as_secs();
        if now < first {
            return 0.0;
        }
        let window = window.as_secs().max(1);
        let span = window.min(now - first + 1);
        let start = now + 1 - span;
        let sum: f64 = self.buckets.iter().filter(|(s, _)| (start..=now).contains(s)).map(|(_, v)| v).sum();
        sum / span as f64
    }
}

/// Turns request starts and ends into time-weighted concurrency in a
/// [`MetricWindow`]: each second's bucket receives the integral of the
/// number of requests in flight over that second.
///
/// ```
/// use std::time::Duration;
/// use kf_serve::autoscale::ConcurrencyMeter;
///
/// let ms = Duration::from_millis;
/// let mut m = ConcurrencyMeter::new(Duration::from_secs(60));
/// m.start(ms(0));
/// m.start(ms(500));
/// m.end(ms(1000));
/// m.end(ms(2000));
/// // Second 0: 1 for 0.5 s + 2 for 0.5 s = 1.5; second 1: 1 for 1 s.
/// assert_eq!(m.average(ms(2000), Duration::from_secs(2)), 1.25);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConcurrencyMeter {
    window: MetricWindow,
    in_flight: u32,
    since: Duration,
}

impl ConcurrencyMeter {
    /// A meter keeping `keep` of history.
    pub fn new(keep: Duration) -> Self {
        ConcurrencyMeter { window: MetricWindow::new(keep), in_flight: 0, since: Duration::ZERO }
    }

    /// Credits the current concurrency up to `now`, split at second
    /// boundaries. A clock that went backwards credits nothing.
    fn advance(&mut self, now: Duration) {
        if now > self.since && self.in_flight > 0 {
            let mut t = self.since;
            while t < now {
                let next_second = Duration::from_secs(t.as_secs() + 1).min(now);
                self.window.record(t, f64::from(self.in_flight) * (next_second - t).as_secs_f64());
                t = next_second;
            }
        } else if now > self.since {
            // Idle time still counts as zero: make the series start.
            self.window.record(now, 0.0);
        }
        self.since = self.since.max(now);
    }

    /// A request started at `now`.
    pub fn start(&mut self, now: Duration) {
        self.advance(now);
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// A request ended at `now`.
    pub fn end(&mut self, now: Duration) {
        self.advance(now);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Mean concurrency over the `window` of whole seconds before the one
    /// `now` falls in, counting the requests still in flight up to `now`.
    /// The current second is left out because it is not over: counting it
    /// would read a steady load as a falling one.
    pub fn average(&mut self, now: Duration, window: Duration) -> f64 {
        self.advance(now);
        self.window.average(now.saturating_sub(Duration::from_secs(1)), window)
    }
}

mod annotations;
#[cfg(test)]
mod tests;
