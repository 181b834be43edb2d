//! The KPA of one InferenceService, deciding from the loads its pods
//! report, as Knative's central autoscaler does.
//!
//! What this module owns: reading one pod's load from its `/metrics`
//! ([`PodLoad::from_exposition`]) and the decision over all of them
//! ([`ServiceScaler::decide`]). Pure: the clock and the scraped text come
//! from the caller ([`super::Scraper`] does the IO).
//!
//! **Why aggregate, not sum the pods' answers.** Every `kf serve` pod runs
//! the KPA on its own traffic as if it were the only replica and exposes
//! both its window averages (`kf_serve_autoscaler_stable_value`,
//! `kf_serve_autoscaler_panic_value`) and its answer
//! (`kf_serve_autoscaler_desired_replicas`). Summing the answers rounds up
//! once per pod: ten pods each at a tenth of one replica's target ask for
//! one replica each, ten in all, where the service needs one; and each pod
//! decides panic, rate limits and scale-to-zero against one ready replica,
//! not the service's. So the window averages are summed over the pods
//! (the KPA's input is the metric "summed over all replicas", see
//! [`Observation`]) and [`Kpa::decide`] runs once per service, with the
//! service's [`KpaConfig`] and ready count and its panic state kept
//! between rounds. The answer then depends only on the total load, not on
//! how the pods share it.
//!
//! **Pods that do not answer.** As Knative does when it scrapes a sample
//! of the pods, the loads of the pods that answered are averaged and
//! scaled to all ready pods. No answer at all is no decision: the caller
//! keeps the previous recommendation.
//!
//! **Limits.** The averages are over the pods' windows (`kf serve`'s
//! defaults, 60 s and 6 s), not the InferenceService's own windows if it
//! sets `autoscaling.knative.dev/window`; and a pod reports the metric it
//! measures, concurrency by default: a service scaled on `rps` needs
//! pods measuring RPS (pods reporting another metric have no load here).

use std::time::Duration;

use super::exposition::{self, Sample};
use crate::autoscale::{Decision, Kpa, KpaConfig, Observation, ScaleMetric};
use crate::{Error, Result};

/// The gauge every `kf serve` exposes: requests in flight.
pub const IN_FLIGHT: &str = "kf_serve_requests_in_flight";
/// The gauge with a pod's stable-window average of the scale metric.
pub const STABLE_VALUE: &str = "kf_serve_autoscaler_stable_value";
/// The gauge with a pod's panic-window average of the scale metric.
pub const PANIC_VALUE: &str = "kf_serve_autoscaler_panic_value";

/// What one pod reports: the scale metric averaged over its stable and
/// panic windows, summed over the models it serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodLoad {
    /// Stable-window average.
    pub stable: f64,
    /// Panic-window average.
    pub panic: f64,
}

/// The `metric` label value of `metric` on the autoscaler gauges.
pub fn metric_label(metric: ScaleMetric) -> &'static str {
    match metric {
        ScaleMetric::Concurrency => "concurrency",
        ScaleMetric::Rps => "rps",
    }
}

impl PodLoad {
    /// Reads the load in `metric` from a pod's `/metrics` text: the
    /// [`STABLE_VALUE`] and [`PANIC_VALUE`] series labelled with that
    /// metric, summed over models. A `kf serve` pod (it has [`IN_FLIGHT`])
    /// without any such series has had no request its autoscaler has
    /// ticked over yet: load 0, so an idle service can scale down.
    /// `Ok(None)` when the pod measures another metric, or the text is not
    /// `kf serve`'s. Malformed text, a series with only one of the two
    /// gauges, or a value that is negative or not finite is an error
    /// naming it. O(length of `text`).
    ///
    /// ```
    /// use kf_serve::autoscale::ScaleMetric;
    /// use kf_serve::controller::scaler::PodLoad;
    /// let text = r#"
    /// kf_serve_requests_in_flight 4
    /// kf_serve_autoscaler_stable_value{model="iris",metric="concurrency"} 3.5
    /// kf_serve_autoscaler_panic_value{model="iris",metric="concurrency"} 4
    /// "#;
    /// let load = PodLoad::from_exposition(text, ScaleMetric::Concurrency)?;
    /// assert_eq!(load, Some(PodLoad { stable: 3.5, panic: 4.0 }));
    /// assert_eq!(PodLoad::from_exposition(text, ScaleMetric::Rps)?, None);
    /// assert!(PodLoad::from_exposition("<html>", ScaleMetric::Rps).is_err());
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn from_exposition(text: &str, metric: ScaleMetric) -> Result<Option<PodLoad>> {
        PodLoad::from_samples(&exposition::parse(text)?, metric)
    }

    /// [`PodLoad::from_exposition`] over parsed samples.
    pub fn from_samples(samples: &[Sample], metric: ScaleMetric) -> Result<Option<PodLoad>> {
        let unit = metric_label(metric);
        let mut load = PodLoad { stable: 0.0, panic: 0.0 };
        let mut models: Vec<(&str, u8)> = Vec::new();
        let (mut kf_serve, mut other_metric) = (false, false);
        for sample in samples {
            let slot = match sample.name.as_str() {
                STABLE_VALUE => 0,
                PANIC_VALUE => 1,
                IN_FLIGHT => {
                    kf_serve = true;
                    continue;
                }
                _ => continue,
            };
            if sample.label("metric") != Some(unit) {
                other_metric = true;
                continue;
            }
            if !(sample.value.is_finite() && sample.value >= 0.0) {
                return Err(Error::Invalid {
                    path: format!("{}{{model={:?}}}", sample.name, sample.label("model").unwrap_or_default()),
                    message: format!("expected a finite number at least 0, found {}", sample.value),
                });
            }
            let model = sample.label("model").unwrap_or_default();
            match models.iter_mut().find(|(m, _)| *m == model) {
                Some((_, seen)) => *seen |= 1 << slot,
                None => models.push((model, 1 << slot)),
            }
            if slot == 0 {
                load.stable += sample.value;
            } else {
                load.panic += sample.value;
            }
        }
        if let Some((model, seen)) = models.iter().find(|(_, seen)| *seen != 0b11) {
            let (has, lacks) = if *seen == 1 { (STABLE_VALUE, PANIC_VALUE) } else { (PANIC_VALUE, STABLE_VALUE) };
            return Err(Error::Invalid {
                path: format!("{lacks}{{model={model:?},metric={unit:?}}}"),
                message: format!("expected with {has}, found only the latter"),
            });
        }
        Ok(if !models.is_empty() || (kf_serve && !other_metric) { Some(load) } else { None })
    }
}

/// The autoscaler of one InferenceService: its [`Kpa`] (configuration and
/// panic state) fed with the sum of its pods' loads.
///
/// ```
/// use std::time::Duration;
/// use kf_serve::autoscale::KpaConfig;
/// use kf_serve::controller::scaler::{PodLoad, ServiceScaler};
///
/// // Target 10 at 70 %: 7 concurrent requests per replica.
/// let config = KpaConfig { target: 10.0, ..KpaConfig::default() };
/// let mut scaler = ServiceScaler::new(config, 1, Duration::ZERO)?;
/// let pod = PodLoad { stable: 10.0, panic: 10.0 };
/// // Two pods at 10 each: 20 in all, three replicas (each pod alone would say two).
/// let d = scaler.decide(Duration::from_secs(2), 2, &[pod, pod]).expect("pods answered");
/// assert_eq!(d.desired, 3);
/// // One of two ready pods answered: its load stands for both.
/// assert_eq!(scaler.decide(Duration::from_secs(4), 2, &[pod]).map(|d| d.desired), Some(3));
/// assert_eq!(scaler.decide(Duration::from_secs(6), 2, &[]), None, "no answer, no decision");
/// # Ok::<(), kf_serve::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceScaler {
    kpa: Kpa,
}

impl ServiceScaler {
    /// A scaler with `config` taking over `ready` pods at `now` (see
    /// [`Kpa::resume`]: more than one ready pod starts in panic holding
    /// the count, so an operator restart never scales a loaded service
    /// down before a stable window of data). Fails on an invalid config.
    pub fn new(config: KpaConfig, ready: u32, now: Duration) -> Result<Self> {
        Ok(ServiceScaler { kpa: Kpa::resume(config, ready, now)? })
    }

    /// The configuration.
    pub fn config(&self) -> &KpaConfig {
        self.kpa.config()
    }

    /// The observation for `ready` pods of which `loads` answered: their
    /// loads summed and, when some ready pods did not answer, scaled by
    /// `ready ÷ answered`. `None` when no pod answered. O(pods).
    pub fn observe(now: Duration, ready: u32, loads: &[PodLoad]) -> Option<Observation> {
        let answered = u32::try_from(loads.len()).unwrap_or(u32::MAX);
        if answered == 0 {
            return None;
        }
        let ready = ready.max(answered);
        let scale = f64::from(ready) / f64::from(answered);
        let stable: f64 = loads.iter().map(|l| l.stable).sum();
        let panic: f64 = loads.iter().map(|l| l.panic).sum();
        Some(Observation { now, ready_replicas: ready, stable: stable * scale, panic: panic * scale })
    }

    /// Decides for `ready` pods of which `loads` answered (see
    /// [`ServiceScaler::observe`]); `None`, with the state untouched, when
    /// none answered. Call it once per scrape with a clock that never goes
    /// backwards. O(pods).
    pub fn decide(&mut self, now: Duration, ready: u32, loads: &[PodLoad]) -> Option<Decision> {
        ServiceScaler::observe(now, ready, loads).map(|o| self.kpa.decide(&o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(target: f64) -> KpaConfig {
        KpaConfig { target, ..KpaConfig::default() }
    }

    #[test]
    fn reads_the_load_the_server_exposes() {
        use crate::metrics::Metrics;
        use std::time::Instant;
        let metrics = Metrics::with_autoscaler(config(1.0)).expect("valid");
        let t0 = Instant::now();
        let guards: Vec<_> = (0..3).map(|_| metrics.start_model("iris", t0)).collect();
        for g in guards {
            g.finish(t0 + Duration::from_secs(10));
        }
        // Before the first tick: no autoscaler series, an idle pod.
        let idle = PodLoad::from_exposition(&metrics.render(), ScaleMetric::Concurrency).expect("valid");
        assert_eq!(idle, Some(PodLoad { stable: 0.0, panic: 0.0 }));
        assert_eq!(PodLoad::from_exposition("up 1\n", ScaleMetric::Concurrency).expect("valid"), None, "not kf serve");
        metrics.autoscale(t0 + Duration::from_secs(10));
        let load = PodLoad::from_exposition(&metrics.render(), ScaleMetric::Concurrency).expect("valid");
        let load = load.expect("the autoscaler ticked");
        assert!((load.stable - 3.0).abs() < 0.01 && (load.panic - 3.0).abs() < 0.01, "{load:?}");
    }

    #[test]
    fn models_add_up_and_other_metrics_are_ignored() {
        let text = "\
kf_serve_autoscaler_stable_value{model=\"a\",metric=\"rps\"} 1
kf_serve_autoscaler_panic_value{model=\"a\",metric=\"rps\"} 2
kf_serve_autoscaler_stable_value{model=\"b\",metric=\"rps\"} 3
kf_serve_autoscaler_panic_value{model=\"b\",metric=\"rps\"} 4
kf_serve_autoscaler_stable_value{model=\"c\",metric=\"concurrency\"} 100
kf_serve_autoscaler_panic_value{model=\"c\",metric=\"concurrency\"} 100
kf_serve_autoscaler_desired_replicas{model=\"a\",metric=\"rps\"} 9
";
        let load = PodLoad::from_exposition(text, ScaleMetric::Rps).expect("valid");
        assert_eq!(load, Some(PodLoad { stable: 4.0, panic: 6.0 }));
    }

    #[test]
    fn bad_pod_reports_are_errors_naming_the_series() {
        let half = "kf_serve_autoscaler_stable_value{model=\"a\",metric=\"concurrency\"} 1\n";
        let err = PodLoad::from_exposition(half, ScaleMetric::Concurrency).expect_err("no panic value");
        assert!(err.to_string().starts_with("kf_serve_autoscaler_panic_value{model=\"a\""), "{err}");
        let nan = format!("{half}kf_serve_autoscaler_panic_value{{model=\"a\",metric=\"concurrency\"}} NaN\n");
        let err = PodLoad::from_exposition(&nan, ScaleMetric::Concurrency).expect_err("NaN");
        assert!(err.to_string().contains("expected a finite number at least 0, found NaN"), "{err}");
        let err = PodLoad::from_exposition("Internal Server Error", ScaleMetric::Concurrency).expect_err("garbage");
        assert!(err.to_string().starts_with("line 1: expected a number as the value of Internal"), "{err}");
        let err = PodLoad::from_exposition("<html>oops</html>", ScaleMetric::Concurrency).expect_err("garbage");
        assert!(err.to_string().starts_with("line 1: expected a metric name"), "{err}");
    }

    #[test]
    fn summing_the_pods_answers_would_over_provision() {
        // Two pods at 3 concurrent requests each, target 10 (7 per replica).
        let pod = PodLoad { stable: 3.0, panic: 3.0 };
        let mut alone = ServiceScaler::new(config(10.0), 1, Duration::ZERO).expect("valid");
        let each = alone.decide(Duration::from_secs(2), 1, &[pod]).expect("answered").desired;
        assert_eq!(each * 2, 2, "what summing the pods' own answers would write");
        let mut service = ServiceScaler::new(config(10.0), 1, Duration::ZERO).expect("valid");
        let both = service.decide(Duration::from_secs(2), 2, &[pod, pod]).expect("answered");
        assert_eq!(both.desired, 1, "6 ÷ 7 rounds up once: one replica serves both pods' traffic");
    }

    #[test]
    fn no_answer_is_no_decision_and_leaves_the_state() {
        let mut scaler = ServiceScaler::new(config(10.0), 3, Duration::ZERO).expect("valid");
        let before = scaler.clone();
        assert_eq!(scaler.decide(Duration::from_secs(2), 3, &[]), None);
        assert_eq!(scaler, before);
    }

    proptest! {
        /// The decision depends on the total load, not on how the ready
        /// pods share it: one pod with everything and the others idle, or
        /// any split. Loads are multiples of 1/8 so the sums are exact.
        #[test]
        fn the_split_of_the_load_does_not_change_the_decision(
            weights in prop::collection::vec((0u32..4000, 0u32..4000), 1..12),
            ready_extra in 0u32..4,
            target in 1u32..200,
            rounds in 1u64..4,
        ) {
            let pods = weights.len();
            let ready = u32::try_from(pods).expect("small") + ready_extra;
            let split: Vec<PodLoad> = weights
                .iter()
                .map(|(s, p)| PodLoad { stable: f64::from(*s) / 8.0, panic: f64::from(*p) / 8.0 })
                .collect();
            let total = PodLoad {
                stable: split.iter().map(|l| l.stable).sum(),
                panic: split.iter().map(|l| l.panic).sum(),
            };
            let mut one = vec![PodLoad { stable: 0.0, panic: 0.0 }; pods];
            one[0] = total;
            let config = KpaConfig { target: f64::from(target), target_utilization: 0.5, ..KpaConfig::default() };
            let mut a = ServiceScaler::new(config.clone(), ready, Duration::ZERO).expect("valid");
            let mut b = ServiceScaler::new(config, ready, Duration::ZERO).expect("valid");
            for r in 1..=rounds {
                let now = Duration::from_secs(2 * r);
                prop_assert_eq!(a.decide(now, ready, &split), b.decide(now, ready, &one));
            }
        }

        /// Pods that did not answer are assumed to carry the average load
        /// of those that did.
        #[test]
        fn missing_pods_carry_the_average(loads in prop::collection::vec(0u32..1000, 1..10), missing in 0u32..5) {
            let answered: Vec<PodLoad> =
                loads.iter().map(|l| PodLoad { stable: f64::from(*l), panic: f64::from(*l) }).collect();
            let n = u32::try_from(loads.len()).expect("small");
            let o = ServiceScaler::observe(Duration::ZERO, n + missing, &answered).expect("answered");
            let mean = loads.iter().map(|l| f64::from(*l)).sum::<f64>() / f64::from(n);
            prop_assert!((o.stable - mean * f64::from(n + missing)).abs() < 1e-6 * (1.0 + o.stable));
            prop_assert_eq!(o.ready_replicas, n + missing);
        }
    }
}
