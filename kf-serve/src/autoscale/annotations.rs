//! The KPA settings an InferenceService asks for: KServe's component fields
//! (`minReplicas`, `maxReplicas`, `scaleMetric`, `scaleTarget`,
//! `containerConcurrency`) and the Knative annotations it passes on to the
//! revision (`autoscaling.knative.dev/*`), read into a [`KpaConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::{KpaConfig, ScaleMetric};
use crate::kserve::InferenceService;
use crate::kserve::inference_service::ComponentSpec;
use crate::{Error, Result};

const PREFIX: &str = "autoscaling.knative.dev/";

/// Knative's default per-replica targets when nothing sets one.
const DEFAULT_CONCURRENCY_TARGET: f64 = 100.0;
const DEFAULT_RPS_TARGET: f64 = 200.0;

fn invalid<T>(path: String, message: String) -> Result<T> {
    Err(Error::Invalid { path, message })
}

/// A Go duration as Knative writes them: `60s`, `1m30s`, `500ms`, `1h`.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(seconds).ok()?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

struct Annotations<'a>(&'a BTreeMap<String, String>);

impl Annotations<'_> {
    fn number(&self, key: &str) -> Result<Option<f64>> {
        let Some(raw) = self.0.get(&format!("{PREFIX}{key}")) else { return Ok(None) };
        match raw.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => invalid(format!("metadata.annotations.{PREFIX}{key}"), format!("expected a number, found {raw:?}")),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>> {
        let Some(raw) = self.0.get(&format!("{PREFIX}{key}")) else { return Ok(None) };
        match parse_duration(raw) {
            Some(d) => Ok(Some(d)),
            None => invalid(
                format!("metadata.annotations.{PREFIX}{key}"),
                format!("expected a duration such as 60s or 1m30s, found {raw:?}"),
            ),
        }
    }
}

fn replicas(value: i64, path: &str) -> Result<u32> {
    u32::try_from(value).or_else(|_| invalid(path.into(), format!("expected 0 or more replicas, found {value}")))
}

impl KpaConfig {
    /// The KPA configuration of `isvc`'s predictor, as KServe would hand it
    /// to Knative: component fields win over annotations, which win over
    /// Knative's defaults. The target is `scaleTarget`, else the
    /// `autoscaling.knative.dev/target` annotation, else a positive
    /// `containerConcurrency` (concurrency only), else 100 concurrent
    /// requests or 200 RPS; `minReplicas` defaults to 1, as in KServe.
    /// Errors name the field: a service the KPA does not scale (raw
    /// deployment, the HPA class), a metric other than concurrency/rps, an
    /// annotation that is not a number or duration, out-of-range values.
    ///
    /// ```
    /// use kf_serve::autoscale::{KpaConfig, ScaleMetric};
    /// use kf_serve::kserve::InferenceService;
    ///
    /// let isvc = InferenceService::from_value(serde_json::json!({
    ///     "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
    ///     "metadata": {"name": "flowers", "annotations": {"autoscaling.knative.dev/window": "2m"}},
    ///     "spec": {"predictor": {"containerConcurrency": 10, "maxReplicas": 5,
    ///                            "sklearn": {"storageUri": "gs://bucket/model"}}},
    /// }))?;
    /// let config = KpaConfig::for_predictor(&isvc)?;
    /// assert_eq!((config.metric, config.target, config.min_replicas, config.max_replicas), (ScaleMetric::Concurrency, 10.0, 1, 5));
    /// assert_eq!(config.stable_window.as_secs(), 120);
    /// assert_eq!(config.panic_window.as_secs(), 12, "10 % of the stable window");
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn for_predictor(isvc: &InferenceService) -> Result<KpaConfig> {
        let empty = BTreeMap::new();
        let annotations = isvc.metadata.as_ref().and_then(|m| m.annotations.as_ref()).unwrap_or(&empty);
        let Some(predictor) = isvc.predictor() else {
            return invalid("spec.predictor".into(), "an InferenceService needs a predictor".into());
        };
        KpaConfig::for_component(predictor, annotations, "spec.predictor")
    }

    fn for_component(
        component: &ComponentSpec,
        annotations: &BTreeMap<String, String>,
        path: &str,
    ) -> Result<KpaConfig> {
        let mode_key = "serving.kserve.io/deploymentMode";
        if let Some(mode) = annotations.get(mode_key).filter(|m| matches!(m.as_str(), "RawDeployment" | "Standard")) {
            return invalid(
                format!("metadata.annotations.{mode_key}"),
                format!("a {mode} service is scaled by the Kubernetes HPA, not the KPA"),
            );
        }
        let class_key = format!("{PREFIX}class");
        if let Some(class) = annotations.get(&class_key).filter(|c| c.as_str() != "kpa.autoscaling.knative.dev") {
            return invalid(
                format!("metadata.annotations.{class_key}"),
                format!("the autoscaler class is {class:?}, not the KPA"),
            );
        }
        let a = Annotations(annotations);
        let defaults = KpaConfig::default();

        let metric_name =
            component.scale_metric.clone().or_else(|| annotations.get(&format!("{PREFIX}metric")).cloned());
        let metric = match metric_name.as_deref().unwrap_or("concurrency") {
            "concurrency" => ScaleMetric::Concurrency,
            "rps" => ScaleMetric::Rps,
            other => {
                let field = if component.scale_metric.is_some() {
                    format!("{path}.scaleMetric")
                } else {
                    format!("metadata.annotations.{PREFIX}metric")
                };
                return invalid(field, format!("the KPA scales on concurrency or rps, found {other:?}"));
            }
        };
        let cc = component.container_concurrency.filter(|cc| *cc > 0).map(|cc| cc as f64);
        let default_target = match metric {
            ScaleMetric::Concurrency => cc.unwrap_or(DEFAULT_CONCURRENCY_TARGET),
            ScaleMetric::Rps => DEFAULT_RPS_TARGET,
        };
        let target = match component.scale_target {
            Some(t) if t < 1 => {
                return invalid(format!("{path}.scaleTarget"), format!("expected at least 1, found {t}"));
            }
            Some(t) => t as f64,
            None => a.number("target")?.unwrap_or(default_target),
        };

        let utilization = a.number("target-utilization-percentage")?.map_or(defaults.target_utilization, |p| p / 100.0);
        let stable_window = a.duration("window")?.unwrap_or(defaults.stable_window);
        let panic_percentage = a.number("panic-window-percentage")?.unwrap_or(10.0);
        let panic_window = Duration::try_from_secs_f64(stable_window.as_secs_f64() * panic_percentage / 100.0)
            .unwrap_or(defaults.panic_window)
            .max(Duration::from_secs(1));
        let panic_threshold = a.number("panic-threshold-percentage")?.map_or(defaults.panic_threshold, |p| p / 100.0);

        let min = match component.min_replicas {
            Some(m) => replicas(m, &format!("{path}.minReplicas"))?,
            None => match a.number("min-scale")? {
                Some(m) => replicas(m as i64, &format!("metadata.annotations.{PREFIX}min-scale"))?,
                None => 1,
            },
        };
        let max = match component.max_replicas {
            Some(m) => replicas(m, &format!("{path}.maxReplicas"))?,
            None => match a.number("max-scale")? {
                Some(m) => replicas(m as i64, &format!("metadata.annotations.{PREFIX}max-scale"))?,
                None => 0,
            },
        };

        let config = KpaConfig {
            metric,
            target,
            target_utilization: utilization,
            stable_window,
            panic_window,
            panic_threshold,
            min_replicas: min,
            max_replicas: max,
            ..defaults
        };
        // Re-point validation errors at the field the user wrote.
        config.validate().map_err(|e| match e {
            Error::Invalid { path: field, message } => {
                let written = match field.as_str() {
                    "target" if component.scale_target.is_some() => format!("{path}.scaleTarget"),
                    "target" => format!("metadata.annotations.{PREFIX}target"),
                    "targetUtilization" => format!("metadata.annotations.{PREFIX}target-utilization-percentage"),
                    "stableWindow" => format!("metadata.annotations.{PREFIX}window"),
                    "panicWindow" => format!("metadata.annotations.{PREFIX}panic-window-percentage"),
                    "panicThreshold" => format!("metadata.annotations.{PREFIX}panic-threshold-percentage"),
                    "minReplicas" => format!("{path}.minReplicas"),
                    other => other.to_string(),
                };
                Error::Invalid { path: written, message }
            }
            other => other,
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kserve::corpus;
    use serde_json::{Value, json};

    fn isvc(annotations: Value, predictor: Value) -> InferenceService {
        let mut p = predictor;
        p["sklearn"] = json!({"storageUri": "gs://b/m"});
        InferenceService::from_value(json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "m", "annotations": annotations}, "spec": {"predictor": p},
        }))
        .expect("parses")
    }

    #[test]
    fn corpus_services_read_their_targets() {
        let mut read = BTreeMap::new();
        for (path, doc) in corpus::documents(corpus::DIR) {
            if doc.get("kind").and_then(Value::as_str) != Some("InferenceService") {
                continue;
            }
            let isvc = InferenceService::from_value(doc).expect("parses");
            match KpaConfig::for_predictor(&isvc) {
                Ok(config) => {
                    let name = path.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
                    read.insert(name, (config.metric, config.target, config.min_replicas));
                }
                Err(Error::Invalid { path: field, .. }) => assert!(field.starts_with("metadata.annotations")),
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        let c = ScaleMetric::Concurrency;
        assert_eq!(read["docs__samples__autoscaling__autoscale.yaml"], (c, 1.0, 1), "target annotation");
        assert_eq!(read["docs__samples__autoscaling__autoscale_custom.yaml"], (c, 10.0, 1), "containerConcurrency");
        assert_eq!(read["docs__samples__v1beta1__torchserve__autoscaling__autoscaling.yaml"], (c, 10.0, 1));
        assert_eq!(read["docs__samples__explanation__aif__germancredit__bias.yaml"], (c, 100.0, 1), "cc 0: default");
    }

    #[test]
    fn fields_beat_annotations_and_errors_name_what_was_written() {
        let both = isvc(
            json!({"autoscaling.knative.dev/target": "5", "autoscaling.knative.dev/metric": "rps"}),
            json!({"scaleTarget": 20, "scaleMetric": "concurrency", "minReplicas": 0}),
        );
        let config = KpaConfig::for_predictor(&both).expect("valid");
        assert_eq!((config.metric, config.target, config.min_replicas), (ScaleMetric::Concurrency, 20.0, 0));
        let rps = KpaConfig::for_predictor(&isvc(json!({"autoscaling.knative.dev/metric": "rps"}), json!({})));
        assert_eq!(rps.map(|c| (c.metric, c.target)).ok(), Some((ScaleMetric::Rps, 200.0)));
        let tuned = isvc(
            json!({"autoscaling.knative.dev/target-utilization-percentage": "50",
                   "autoscaling.knative.dev/panic-threshold-percentage": "300",
                   "autoscaling.knative.dev/window": "1m30s"}),
            json!({}),
        );
        let c = KpaConfig::for_predictor(&tuned).expect("valid");
        assert_eq!(
            (c.target_utilization, c.panic_threshold, c.stable_window.as_secs(), c.panic_window.as_secs()),
            (0.5, 3.0, 90, 9)
        );

        for (annotations, predictor, field) in [
            (
                json!({"autoscaling.knative.dev/window": "soon"}),
                json!({}),
                "metadata.annotations.autoscaling.knative.dev/window",
            ),
            (
                json!({"autoscaling.knative.dev/window": "2s"}),
                json!({}),
                "metadata.annotations.autoscaling.knative.dev/window",
            ),
            (
                json!({"autoscaling.knative.dev/target": "lots"}),
                json!({}),
                "metadata.annotations.autoscaling.knative.dev/target",
            ),
            (
                json!({"autoscaling.knative.dev/target-utilization-percentage": "150"}),
                json!({}),
                "metadata.annotations.autoscaling.knative.dev/target-utilization-percentage",
            ),
            (json!({}), json!({"scaleTarget": 0}), "spec.predictor.scaleTarget"),
            (json!({}), json!({"minReplicas": 4, "maxReplicas": 2}), "spec.predictor.minReplicas"),
            (
                json!({"serving.kserve.io/deploymentMode": "RawDeployment"}),
                json!({}),
                "metadata.annotations.serving.kserve.io/deploymentMode",
            ),
            (
                json!({"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}),
                json!({}),
                "metadata.annotations.autoscaling.knative.dev/class",
            ),
        ] {
            match KpaConfig::for_predictor(&isvc(annotations, predictor)) {
                Err(Error::Invalid { path, .. }) => assert_eq!(path, field),
                other => panic!("expected an error at {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("60s", Some(ms(60_000))),
            ("1m30s", Some(ms(90_000))),
            ("500ms", Some(ms(500))),
            ("1h", Some(ms(3_600_000))),
            ("1.5s", Some(ms(1500))),
            ("", None),
            ("10", None),
            ("5x", None),
        ] {
            assert_eq!(parse_duration(text), want, "{text:?}");
        }
    }
}
