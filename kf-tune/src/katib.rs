//! The Katib `Experiment` custom resource (kubeflow.org/v1beta1): the wire type,
//! its lossless conversion to and from a JSON/YAML value, and the checks Katib's
//! admission webhook makes before an experiment runs.
//!
//! The types follow `v1beta1.*` in Katib's swagger definitions
//! (`corpus/katib/schema/katib-v1beta1.swagger.json`): every field is optional on
//! the wire, and [`Experiment::validate`] says which ones an experiment needs.
//! Katib writes numbers in `feasibleSpace` and settings as strings; [`Scalar`]
//! accepts strings, numbers and booleans and writes back exactly what it read.
//! Fields kf does not model are kept in `extra` maps, and the trial template's
//! `trialSpec` (an arbitrary Kubernetes object) stays a `serde_json::Value`.
//!
//! This module owns the boundary type only: it converts parameters into a
//! [`SearchSpace`] and never runs a trial.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

use crate::space::{Distribution, Domain, Param, SearchSpace};
use crate::{Error, Result};

/// API group of the Experiment CRD.
pub const API_GROUP: &str = "kubeflow.org";
/// The one `apiVersion` Katib serves for experiments.
pub const API_VERSION: &str = "kubeflow.org/v1beta1";
/// Kind of the Experiment CRD.
pub const KIND: &str = "Experiment";

/// Hyperparameter and NAS algorithm names Katib ships, as `algorithmName` spells them.
pub const ALGORITHM_NAMES: [&str; 11] = [
    "random",
    "grid",
    "tpe",
    "multivariate-tpe",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "hyperband",
    "pbt",
    "enas",
    "darts",
];

/// Metrics-collector kinds Katib knows.
pub const COLLECTOR_KINDS: [&str; 7] =
    ["StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push"];

/// Fields a type does not model, written back as they were read.
pub type Extra = BTreeMap<String, Value>;

/// A scalar written either as a string or as a bare number (or boolean).
///
/// Katib's Go types declare `feasibleSpace.min` and friends as strings, and
/// upstream manifests quote them (`min: "0.01"`), but hand-written manifests often
/// do not. Both are accepted and written back in the form they were read, so a
/// round trip never turns `"1"` into `1` or back.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string, as Katib writes it.
    String(String),
    /// A bare JSON/YAML number.
    Number(Number),
    /// A bare boolean.
    Bool(bool),
}

impl Scalar {
    /// The text of the scalar: the string itself, or the number or boolean as written.
    pub fn text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    /// The scalar as a finite `f64`, parsing strings; `None` if it is not a number.
    pub fn as_f64(&self) -> Option<f64> {
        let x = match self {
            Scalar::String(s) => s.trim().parse::<f64>().ok()?,
            Scalar::Number(n) => n.as_f64()?,
            Scalar::Bool(_) => return None,
        };
        x.is_finite().then_some(x)
    }

    /// The scalar as an `i64`, parsing strings; integral floats such as `3.0` count.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::String(s) => {
                let s = s.trim();
                s.parse::<i64>().ok().or_else(|| integral(s.parse::<f64>().ok()?))
            }
            Scalar::Number(n) => n.as_i64().or_else(|| integral(n.as_f64()?)),
            Scalar::Bool(_) => None,
        }
    }
}

fn integral(x: f64) -> Option<i64> {
    // 2^63 bounds the range an i64 can hold exactly.
    (x.is_finite() && x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i64)
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::String(s.to_owned())
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Scalar::String(s) => serializer.serialize_str(s),
            Scalar::Number(n) => n.serialize(serializer),
            Scalar::Bool(b) => serializer.serialize_bool(*b),
        }
    }
}

/// Katib's CRD preserves unknown fields everywhere and its Go types say
/// string; a scalar is a string, a number or a boolean, so its schema leaves
/// the type open (an untyped, structural field) rather than claim one.
#[cfg(feature = "kube")]
impl schemars::JsonSchema for Scalar {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A string, a number or a boolean.",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Scalar::String(s)),
            Value::Number(n) => Ok(Scalar::Number(n)),
            Value::Bool(b) => Ok(Scalar::Bool(b)),
            other => Err(serde::de::Error::custom(format!("expected a string or a number, found {other}"))),
        }
    }
}

/// A Katib Experiment: a search space, an objective, an algorithm and a trial template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// Always `kubeflow.org/v1beta1`.
    pub api_version: String,
    /// Always `Experiment`.
    pub kind: String,
    /// Object metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The desired experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ExperimentSpec>,
    /// The observed state, written by the experiment controller (or by kf's runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExperimentStatus>,
    /// Top-level fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The part of Kubernetes `ObjectMeta` an experiment needs; the rest is kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Metadata fields kf does not model (`generateName`, `uid`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of an Experiment (`v1beta1.ExperimentSpec`).
///
/// With the `kube` feature it also derives `kube::CustomResource`, which
/// generates `ExperimentResource`, kube's typed object
/// (`Api::<ExperimentResource>`, `ExperimentResource::crd()`); [`Experiment`]
/// stays the lossless wire type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema, kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "kubeflow.org",
        version = "v1beta1",
        kind = "Experiment",
        root = "ExperimentResource",
        plural = "experiments",
        namespaced,
        status = "ExperimentStatus",
        doc = "A Katib Experiment as kube's typed API sees it (see [`ExperimentSpec`])."
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// The hyperparameters to search (absent for NAS experiments, which use `nasConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<ParameterSpec>>,
    /// What to optimise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// The suggestion algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmSpec>,
    /// The early-stopping algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// Template for each trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_template: Option<TrialTemplate>,
    /// How many trials run at once; Katib defaults it to 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_trial_count: Option<i64>,
    /// Completed trials after which the experiment succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trial_count: Option<i64>,
    /// Failed trials after which the experiment fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trial_count: Option<i64>,
    /// How trial metrics are collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_collector_spec: Option<MetricsCollectorSpec>,
    /// Neural-architecture-search configuration (ENAS, DARTS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas_config: Option<NasConfig>,
    /// `Never` (default), `LongRunning` or `FromVolume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<String>,
    /// Spec fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One hyperparameter (`v1beta1.ParameterSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    /// Parameter name, referenced by `trialTemplate.trialParameters[].reference`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `double`, `int`, `discrete` or `categorical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_type: Option<String>,
    /// The values the parameter may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feasible_space: Option<FeasibleSpace>,
    /// Parameter fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The values a parameter may take (`v1beta1.FeasibleSpace`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FeasibleSpace {
    /// Lower bound (`double`, `int`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Scalar>,
    /// Upper bound (`double`, `int`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Scalar>,
    /// Grid step (`double`, `int`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Scalar>,
    /// The values (`discrete`, `categorical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<Scalar>>,
    /// `uniform`, `logUniform`, `normal` or `logNormal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Feasible-space fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What to optimise (`v1beta1.ObjectiveSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveSpec {
    /// `minimize` or `maximize`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Reaching this value ends the experiment. Kept as the number written, so `1` stays `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Number>,
    /// The metric to optimise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_metric_name: Option<String>,
    /// Other metrics to collect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_metric_names: Option<Vec<String>>,
    /// How a metric's reported values reduce to one (`min`, `max`, `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_strategies: Option<Vec<MetricStrategy>>,
    /// Objective fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One metric strategy (`v1beta1.MetricStrategy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricStrategy {
    /// Metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `min`, `max` or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The suggestion algorithm (`v1beta1.AlgorithmSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AlgorithmSpec {
    /// One of [`ALGORITHM_NAMES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_name: Option<String>,
    /// Algorithm-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_settings: Option<Vec<Setting>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The early-stopping algorithm (`v1beta1.EarlyStoppingSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EarlyStoppingSpec {
    /// Katib ships one: `medianstop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_name: Option<String>,
    /// `min_trials_required`, `start_step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_settings: Option<Vec<Setting>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A name/value setting of an algorithm (`v1beta1.AlgorithmSetting`, `EarlyStoppingSetting`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    /// Setting name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Setting value, a string on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Scalar>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Template for each trial (`v1beta1.TrialTemplate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrialTemplate {
    /// Keep trial resources after completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    /// The trial's Kubernetes object, with `${trialParameters.x}` placeholders; kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_spec: Option<Value>,
    /// Or: a ConfigMap holding the trial spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    /// The placeholders and what they are replaced with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_parameters: Option<Vec<TrialParameterSpec>>,
    /// Labels of the pod that runs the training container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_pod_labels: Option<BTreeMap<String, String>>,
    /// The container whose output carries the metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_container_name: Option<String>,
    /// GJSON condition for a succeeded trial object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// GJSON condition for a failed trial object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A ConfigMap holding a trial template (`v1beta1.ConfigMapSource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// ConfigMap name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// ConfigMap namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_namespace: Option<String>,
    /// Key of the template inside the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_path: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One trial-template placeholder (`v1beta1.TrialParameterSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrialParameterSpec {
    /// Placeholder name: `${trialParameters.<name>}` in the trial spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A parameter name, or trial metadata such as `${trialSpec.Name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How metrics are collected (`v1beta1.MetricsCollectorSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricsCollectorSpec {
    /// Where the metrics come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Which collector reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where metrics come from (`v1beta1.SourceSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// A file or directory the trial writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_path: Option<FileSystemPath>,
    /// Regular expressions that pick metrics out of text output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
    /// A Kubernetes `HTTPGetAction` (Prometheus collector); kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<Value>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A metrics file or directory (`v1beta1.FileSystemPath`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FileSystemPath {
    /// Absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `File` or `Directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `TEXT` or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Metric filters (`v1beta1.FilterSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FilterSpec {
    /// Regular expressions with two groups: metric name and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_format: Option<Vec<String>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The collector (`v1beta1.CollectorSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CollectorSpec {
    /// One of [`COLLECTOR_KINDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A Kubernetes `Container` for the `Custom` kind; kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_collector: Option<Value>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Neural-architecture-search configuration (`v1beta1.NasConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct NasConfig {
    /// Shape of the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_config: Option<GraphConfig>,
    /// Candidate operations and their parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<Operation>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Network shape (`v1beta1.GraphConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GraphConfig {
    /// Number of layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<i64>,
    /// Input dimensions. Marked `listType=set` upstream, but `[32, 32, 3]` repeats
    /// an entry meaningfully, so duplicates are kept and accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sizes: Option<Vec<i64>>,
    /// Output dimensions (duplicates accepted, as for `input_sizes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sizes: Option<Vec<i64>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One NAS operation (`v1beta1.Operation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Operation type, e.g. `convolution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_type: Option<String>,
    /// The operation's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<ParameterSpec>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status` of an Experiment (`v1beta1.ExperimentStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// When the controller acknowledged the experiment (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the experiment completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// When the experiment was last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<String>,
    /// Conditions (`Created`, `Running`, `Succeeded`, `Failed`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The best trial so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_optimal_trial: Option<OptimalTrial>,
    /// Names of running trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_trial_list: Option<Vec<String>>,
    /// Names of pending trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_trial_list: Option<Vec<String>>,
    /// Names of failed trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_trial_list: Option<Vec<String>>,
    /// Names of succeeded trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_trial_list: Option<Vec<String>>,
    /// Names of killed trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_trial_list: Option<Vec<String>>,
    /// Names of early-stopped trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopped_trial_list: Option<Vec<String>>,
    /// Names of trials whose metrics were unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_unavailable_trial_list: Option<Vec<String>>,
    /// Total trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<i64>,
    /// Succeeded trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_succeeded: Option<i64>,
    /// Failed trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_failed: Option<i64>,
    /// Killed trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_killed: Option<i64>,
    /// Pending trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_pending: Option<i64>,
    /// Running trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_running: Option<i64>,
    /// Early-stopped trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_early_stopped: Option<i64>,
    /// Trials whose metrics were unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_metrics_unavailable: Option<i64>,
    /// Status fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One status condition (`v1beta1.ExperimentCondition`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Succeeded`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last update (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    /// Last transition (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The best trial so far (`v1beta1.OptimalTrial`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OptimalTrial {
    /// Name of the best trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_trial_name: Option<String>,
    /// Its parameter values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_assignments: Option<Vec<ParameterAssignment>>,
    /// Its metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A parameter's value in a trial (`v1beta1.ParameterAssignment`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ParameterAssignment {
    /// Parameter name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Value, a string on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Scalar>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A trial's metrics (`v1beta1.Observation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// One entry per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<Metric>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One metric's reduced values (`v1beta1.Metric`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Smallest reported value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Scalar>,
    /// Largest reported value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Scalar>,
    /// Last reported value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Scalar>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Experiment {
    /// Reads an experiment from a parsed JSON/YAML document. Type errors name the
    /// field path, e.g. `spec.maxTrialCount: invalid type: string "x", expected i64`.
    pub fn from_value(doc: Value) -> Result<Self> {
        serde_path_to_error::deserialize(doc)
            .map_err(|err| Error::Invalid { path: err.path().to_string(), message: err.inner().to_string() })
    }

    /// Writes the experiment back as a document: the fields read, no others.
    pub fn to_value(&self) -> Value {
        // Serialising plain structs, string maps, numbers and `Value`s cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The experiment's name.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    /// The search space of `spec.parameters`, checked as [`SearchSpace::new`]
    /// checks it; errors carry the path of the offending field. A NAS
    /// experiment (no `parameters`) has no hyperparameter space and is rejected.
    pub fn search_space(&self) -> Result<SearchSpace> {
        let params = self.spec.as_ref().and_then(|s| s.parameters.as_ref());
        let Some(params) = params.filter(|p| !p.is_empty()) else {
            return invalid("spec.parameters", "expected at least one hyperparameter, found none");
        };
        search_space("spec.parameters", params)
    }

    /// Checks what Katib's admission webhook would reject, returning the first
    /// problem with the dotted path of its field: apiVersion and kind; a name;
    /// an objective (type, metric, strategies); a known algorithm with unique
    /// settings; `medianstop` early stopping with its two settings; positive
    /// trial counts; the resume policy; parameters (each a valid domain, names
    /// unique) or a NAS config, not both; a trial template with exactly one
    /// source, unique trial parameters whose references exist, and no
    /// `${trialParameters.x}` placeholder without a declaration; and a
    /// metrics collector whose kind, source and format agree.
    ///
    /// Lists that the swagger marks `listType=set` are not checked for
    /// duplicates: the API server never enforces it (the CRD has no schema), and
    /// NAS input sizes such as `[32, 32, 3]` repeat entries meaningfully.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != API_VERSION {
            return invalid("apiVersion", format!("expected {API_VERSION:?}, found {:?}", self.api_version));
        }
        if self.kind != KIND {
            return invalid("kind", format!("expected {KIND:?}, found {:?}", self.kind));
        }
        let meta = self.metadata.as_ref();
        let has_name = meta.and_then(|m| m.name.as_deref()).is_some_and(|n| !n.is_empty())
            || meta.and_then(|m| m.extra.get("generateName")).and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        if !has_name {
            return invalid("metadata.name", "an Experiment needs a name");
        }
        let Some(spec) = &self.spec else {
            return invalid("spec", "an Experiment needs a spec");
        };
        spec.validate()
    }
}

impl ExperimentSpec {
    fn validate(&self) -> Result<()> {
        validate_objective(self.objective.as_ref())?;
        validate_algorithm(self.algorithm.as_ref())?;
        if let Some(early) = &self.early_stopping {
            validate_early_stopping(early)?;
        }
        for (field, count, least) in [
            ("spec.parallelTrialCount", self.parallel_trial_count, 1),
            ("spec.maxTrialCount", self.max_trial_count, 1),
            ("spec.maxFailedTrialCount", self.max_failed_trial_count, 0),
        ] {
            if let Some(n) = count
                && (n < least || n > i64::from(i32::MAX))
            {
                return invalid(field, format!("expected an integer from {least} to {}, found {n}", i32::MAX));
            }
        }
        if let Some(policy) = &self.resume_policy
            && !["Never", "LongRunning", "FromVolume"].contains(&policy.as_str())
        {
            return invalid(
                "spec.resumePolicy",
                format!("expected Never, LongRunning or FromVolume, found {policy:?}"),
            );
        }
        let parameters = self.parameters.as_deref().unwrap_or_default();
        match (&self.nas_config, parameters.is_empty()) {
            (Some(_), false) => {
                return invalid("spec.nasConfig", "only one of spec.parameters and spec.nasConfig may be given");
            }
            (None, true) => {
                return invalid("spec.parameters", "expected at least one hyperparameter (or a nasConfig), found none");
            }
            (None, false) => {
                search_space("spec.parameters", parameters)?;
            }
            (Some(nas), true) => validate_nas(nas)?,
        }
        let Some(template) = &self.trial_template else {
            return invalid("spec.trialTemplate", "an Experiment needs a trial template");
        };
        validate_trial_template(template, parameters)?;
        if let Some(collector) = &self.metrics_collector_spec {
            validate_collector(collector)?;
        }
        Ok(())
    }
}

fn validate_objective(objective: Option<&ObjectiveSpec>) -> Result<()> {
    let Some(objective) = objective else {
        return invalid("spec.objective", "an Experiment needs an objective (type and objectiveMetricName)");
    };
    match objective.type_.as_deref() {
        Some("minimize" | "maximize") => {}
        Some(other) => {
            return invalid("spec.objective.type", format!("expected minimize or maximize, found {other:?}"));
        }
        None => return invalid("spec.objective.type", "expected minimize or maximize, found nothing"),
    }
    let metric = objective.objective_metric_name.as_deref().unwrap_or_default();
    if metric.is_empty() {
        return invalid("spec.objective.objectiveMetricName", "the metric to optimise is not named");
    }
    if let Some(goal) = &objective.goal
        && !goal.as_f64().is_some_and(f64::is_finite)
    {
        return invalid("spec.objective.goal", format!("expected a finite number, found {goal}"));
    }
    for (i, name) in objective.additional_metric_names.iter().flatten().enumerate() {
        if name == metric {
            return invalid(
                format!("spec.objective.additionalMetricNames[{i}]"),
                format!("{name:?} is already the objective metric"),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (i, strategy) in objective.metric_strategies.iter().flatten().enumerate() {
        let at = format!("spec.objective.metricStrategies[{i}]");
        let name = strategy.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            return invalid(format!("{at}.name"), "a metric strategy needs a metric name");
        }
        if !seen.insert(name) {
            return invalid(format!("{at}.name"), format!("metric {name:?} has a strategy already"));
        }
        match strategy.value.as_deref() {
            Some("min" | "max" | "latest") => {}
            other => return invalid(format!("{at}.value"), format!("expected min, max or latest, found {other:?}")),
        }
    }
    Ok(())
}

fn validate_algorithm(algorithm: Option<&AlgorithmSpec>) -> Result<()> {
    let Some(algorithm) = algorithm else {
        return invalid("spec.algorithm", "an Experiment needs an algorithm");
    };
    let name = algorithm.algorithm_name.as_deref().unwrap_or_default();
    if !ALGORITHM_NAMES.contains(&name) {
        return invalid(
            "spec.algorithm.algorithmName",
            format!("expected one of {}, found {name:?}", ALGORITHM_NAMES.join(", ")),
        );
    }
    unique_settings("spec.algorithm.algorithmSettings", algorithm.algorithm_settings.as_deref())?;
    Ok(())
}

fn unique_settings<'a>(at: &str, settings: Option<&'a [Setting]>) -> Result<BTreeMap<&'a str, &'a Setting>> {
    let mut seen = BTreeMap::new();
    for (i, setting) in settings.unwrap_or_default().iter().enumerate() {
        let name = setting.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            return Err(Error::Invalid { path: format!("{at}[{i}].name"), message: "a setting needs a name".into() });
        }
        if seen.insert(name, setting).is_some() {
            return Err(Error::Invalid {
                path: format!("{at}[{i}].name"),
                message: format!("setting {name:?} is given twice"),
            });
        }
    }
    Ok(seen)
}

fn validate_early_stopping(early: &EarlyStoppingSpec) -> Result<()> {
    let name = early.algorithm_name.as_deref().unwrap_or_default();
    if name != "medianstop" {
        return invalid("spec.earlyStopping.algorithmName", format!("expected medianstop, found {name:?}"));
    }
    let at = "spec.earlyStopping.algorithmSettings";
    unique_settings(at, early.algorithm_settings.as_deref())?;
    for (i, setting) in early.algorithm_settings.iter().flatten().enumerate() {
        let name = setting.name.as_deref().unwrap_or_default();
        let least = match name {
            "min_trials_required" | "start_step" => 1,
            other => {
                return invalid(
                    format!("{at}[{i}].name"),
                    format!("medianstop knows min_trials_required and start_step, found {other:?}"),
                );
            }
        };
        let value = setting.value.as_ref();
        if value.and_then(Scalar::as_i64).is_none_or(|v| v < least) {
            let found = value.map_or_else(|| "nothing".to_owned(), |v| format!("{:?}", v.text()));
            return invalid(format!("{at}[{i}].value"), format!("expected an integer ≥ {least}, found {found}"));
        }
    }
    Ok(())
}

fn validate_nas(nas: &NasConfig) -> Result<()> {
    if let Some(graph) = &nas.graph_config {
        if graph.num_layers.is_some_and(|n| n < 1) {
            return invalid("spec.nasConfig.graphConfig.numLayers", "expected at least one layer");
        }
        for (field, sizes) in [("inputSizes", &graph.input_sizes), ("outputSizes", &graph.output_sizes)] {
            if let Some(i) = sizes.iter().flatten().position(|&s| s < 1) {
                return invalid(format!("spec.nasConfig.graphConfig.{field}[{i}]"), "expected a positive size");
            }
        }
    }
    let operations = nas.operations.as_deref().unwrap_or_default();
    if operations.is_empty() {
        return invalid("spec.nasConfig.operations", "expected at least one operation, found none");
    }
    for (i, operation) in operations.iter().enumerate() {
        let at = format!("spec.nasConfig.operations[{i}]");
        if operation.operation_type.as_deref().unwrap_or_default().is_empty() {
            return invalid(format!("{at}.operationType"), "an operation needs a type");
        }
        let params = operation.parameters.as_deref().unwrap_or_default();
        if params.is_empty() {
            return invalid(format!("{at}.parameters"), "expected at least one parameter, found none");
        }
        search_space(&format!("{at}.parameters"), params)?;
    }
    Ok(())
}

fn validate_trial_template(template: &TrialTemplate, parameters: &[ParameterSpec]) -> Result<()> {
    let at = "spec.trialTemplate";
    match (&template.trial_spec, &template.config_map) {
        (Some(_), Some(_)) => return invalid(at, "only one of trialSpec and configMap may be given"),
        (None, None) => return invalid(at, "expected a trialSpec or a configMap, found neither"),
        (Some(spec), None) => {
            let Some(object) = spec.as_object() else {
                return invalid(format!("{at}.trialSpec"), "expected a Kubernetes object");
            };
            for field in ["apiVersion", "kind"] {
                if object.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                    return invalid(format!("{at}.trialSpec.{field}"), "the trial's Kubernetes object needs it");
                }
            }
        }
        (None, Some(map)) => {
            for (field, value) in [("configMapName", &map.config_map_name), ("templatePath", &map.template_path)] {
                if value.as_deref().unwrap_or_default().is_empty() {
                    return invalid(format!("{at}.configMap.{field}"), "a ConfigMap trial source needs it");
                }
            }
        }
    }
    let known: BTreeSet<&str> = parameters.iter().filter_map(|p| p.name.as_deref()).collect();
    let mut declared = BTreeSet::new();
    for (i, parameter) in template.trial_parameters.iter().flatten().enumerate() {
        let at = format!("{at}.trialParameters[{i}]");
        let name = parameter.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            return invalid(format!("{at}.name"), "a trial parameter needs a name");
        }
        if !declared.insert(name) {
            return invalid(format!("{at}.name"), format!("trial parameter {name:?} is declared twice"));
        }
        let reference = parameter.reference.as_deref().unwrap_or_default();
        if reference.is_empty() {
            return invalid(format!("{at}.reference"), "a trial parameter needs a reference");
        }
        // Metadata references (`${trialSpec.Name}`) are resolved from the trial
        // object; NAS experiments reference algorithm outputs, not parameters.
        let metadata = reference.starts_with("${trialSpec.") && reference.ends_with('}');
        if !metadata && !known.is_empty() && !known.contains(reference) {
            return invalid(
                format!("{at}.reference"),
                format!("{reference:?} is neither a parameter in spec.parameters nor ${{trialSpec.<field>}}"),
            );
        }
    }
    if let Some(spec) = &template.trial_spec {
        let mut placeholders = BTreeSet::new();
        collect_placeholders(spec, &mut placeholders);
        if let Some(missing) = placeholders.iter().find(|p| !declared.contains(p.as_str())) {
            return invalid(
                format!("{at}.trialSpec"),
                format!("placeholder ${{trialParameters.{missing}}} is not declared in trialTemplate.trialParameters"),
            );
        }
    }
    Ok(())
}

/// Collects the `x` of every `${trialParameters.x}` in the strings (and keys) of a value.
fn collect_placeholders(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => scan_placeholders(s, out),
        Value::Array(items) => items.iter().for_each(|v| collect_placeholders(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                scan_placeholders(key, out);
                collect_placeholders(v, out);
            }
        }
        _ => {}
    }
}

fn scan_placeholders(text: &str, out: &mut BTreeSet<String>) {
    const OPEN: &str = "${trialParameters.";
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        rest = &rest[start + OPEN.len()..];
        if let Some(end) = rest.find('}') {
            out.insert(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
}

fn validate_collector(spec: &MetricsCollectorSpec) -> Result<()> {
    let at = "spec.metricsCollectorSpec";
    let kind = spec.collector.as_ref().and_then(|c| c.kind.as_deref()).unwrap_or("StdOut");
    if !COLLECTOR_KINDS.contains(&kind) {
        return invalid(format!("{at}.collector.kind"), format!("expected one of {COLLECTOR_KINDS:?}, found {kind:?}"));
    }
    let source = spec.source.as_ref();
    let path = source.and_then(|s| s.file_system_path.as_ref());
    if let Some(path) = path {
        let where_ = format!("{at}.source.fileSystemPath");
        if let Some(k) = path.kind.as_deref()
            && !["File", "Directory"].contains(&k)
        {
            return invalid(format!("{where_}.kind"), format!("expected File or Directory, found {k:?}"));
        }
        if let Some(f) = path.format.as_deref()
            && !["TEXT", "JSON"].contains(&f)
        {
            return invalid(format!("{where_}.format"), format!("expected TEXT or JSON, found {f:?}"));
        }
        if !path.path.as_deref().is_some_and(|p| p.starts_with('/')) {
            return invalid(format!("{where_}.path"), format!("expected an absolute path, found {:?}", path.path));
        }
    }
    // Katib's defaulting webhook fills a missing file path (File, TensorFlowEvent)
    // and HTTP source (PrometheusMetric) before validation, so only a Custom
    // collector without its container is an error here.
    if kind == "Custom" && spec.collector.as_ref().and_then(|c| c.custom_collector.as_ref()).is_none() {
        return invalid(format!("{at}.collector.customCollector"), "the Custom collector needs a container");
    }
    let formats = source.and_then(|s| s.filter.as_ref()).and_then(|f| f.metrics_format.as_deref());
    if let Some(i) = formats.unwrap_or_default().iter().position(String::is_empty) {
        return invalid(format!("{at}.source.filter.metricsFormat[{i}]"), "expected a regular expression, found \"\"");
    }
    Ok(())
}

/// Converts Katib parameters into a search space; errors name `at[i].field`.
pub(crate) fn search_space(at: &str, params: &[ParameterSpec]) -> Result<SearchSpace> {
    let mut out = Vec::with_capacity(params.len());
    let mut seen = BTreeSet::new();
    for (i, spec) in params.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let name = spec.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            return Err(Error::Invalid { path: format!("{at}.name"), message: "a parameter needs a name".into() });
        }
        if !seen.insert(name) {
            return Err(Error::Invalid {
                path: format!("{at}.name"),
                message: format!("parameter {name:?} is declared twice"),
            });
        }
        let domain = domain(&at, name, spec)?;
        let param = Param::new(name, domain).map_err(|err| match err {
            Error::InvalidParameter { parameter, message } => Error::Invalid {
                path: format!("{at}.feasibleSpace"),
                message: format!("parameter {parameter:?}: {message}"),
            },
            other => other,
        })?;
        out.push(param);
    }
    SearchSpace::new(out)
}

fn domain(at: &str, name: &str, spec: &ParameterSpec) -> Result<Domain> {
    let fail = |field: &str, message: String| Error::Invalid {
        path: format!("{at}.{field}"),
        message: format!("parameter {name:?}: {message}"),
    };
    let kind = spec.parameter_type.as_deref().unwrap_or_default();
    let empty = FeasibleSpace::default();
    let space = spec.feasible_space.as_ref().unwrap_or(&empty);
    let distribution = match space.distribution.as_deref() {
        None | Some("" | "uniform") => Distribution::Uniform,
        Some("logUniform") => Distribution::LogUniform,
        Some("normal") => Distribution::Normal,
        Some("logNormal") => Distribution::LogNormal,
        Some(other) => {
            return Err(fail(
                "feasibleSpace.distribution",
                format!("expected uniform, logUniform, normal or logNormal, found {other:?}"),
            ));
        }
    };
    let bound = |field: &str, value: &Option<Scalar>, int: bool| -> Result<Option<f64>> {
        let Some(value) = value else { return Ok(None) };
        let parsed = if int { value.as_i64().map(|v| v as f64) } else { value.as_f64() };
        match parsed {
            Some(v) => Ok(Some(v)),
            None => Err(fail(
                &format!("feasibleSpace.{field}"),
                format!("expected {}, found {:?}", if int { "an integer" } else { "a finite number" }, value.text()),
            )),
        }
    };
    match kind {
        "double" | "int" => {
            let int = kind == "int";
            if space.list.as_ref().is_some_and(|l| !l.is_empty()) {
                return Err(fail("feasibleSpace.list", format!("a {kind} parameter takes min and max, not a list")));
            }
            let (Some(low), Some(high)) = (bound("min", &space.min, int)?, bound("max", &space.max, int)?) else {
                let field = if space.min.is_none() { "min" } else { "max" };
                return Err(fail(&format!("feasibleSpace.{field}"), format!("a {kind} parameter needs min and max")));
            };
            if int {
                // Re-read as integers: going through f64 would round values above 2^53.
                let exact = |value: &Option<Scalar>, fallback: f64| {
                    value.as_ref().and_then(Scalar::as_i64).unwrap_or(fallback as i64)
                };
                let step = bound("step", &space.step, true)?.map_or(1, |s| exact(&space.step, s));
                let (low, high) = (exact(&space.min, low), exact(&space.max, high));
                return Ok(Domain::Int { low, high, step, distribution });
            }
            let step = bound("step", &space.step, false)?;
            Ok(Domain::Double { low, high, step, distribution })
        }
        "discrete" | "categorical" => {
            if space.min.is_some() || space.max.is_some() {
                let field = if space.min.is_some() { "min" } else { "max" };
                return Err(fail(&format!("feasibleSpace.{field}"), format!("a {kind} parameter takes a list")));
            }
            let list = space.list.as_deref().unwrap_or_default();
            if kind == "categorical" {
                return Ok(Domain::Categorical { choices: list.iter().map(Scalar::text).collect() });
            }
            let mut values = Vec::with_capacity(list.len());
            for (j, item) in list.iter().enumerate() {
                values.push(bound(&format!("list[{j}]"), &Some(item.clone()), false)?.unwrap_or_default());
            }
            Ok(Domain::Discrete { values })
        }
        other => Err(fail("parameterType", format!("expected double, int, discrete or categorical, found {other:?}"))),
    }
}

fn invalid<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T> {
    Err(Error::Invalid { path: path.into(), message: message.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn experiment() -> Value {
        json!({
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "e", "namespace": "kubeflow"},
            "spec": {
                "objective": {"type": "maximize", "goal": 0.99, "objectiveMetricName": "accuracy"},
                "algorithm": {"algorithmName": "random"},
                "parallelTrialCount": 3, "maxTrialCount": 12, "maxFailedTrialCount": 3,
                "parameters": [
                    {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
                    {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4", "step": "1"}},
                    {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
                ],
                "trialTemplate": {
                    "primaryContainerName": "main",
                    "trialParameters": [{"name": "learningRate", "reference": "lr"}, {"name": "name", "reference": "${trialSpec.Name}"}],
                    "trialSpec": {"apiVersion": "batch/v1", "kind": "Job",
                                  "spec": {"args": ["--lr=${trialParameters.learningRate}", "${trialParameters.name}"]}},
                },
            },
        })
    }

    /// The first problem `validate` reports after `change` is applied.
    fn problem(change: impl FnOnce(&mut Value)) -> String {
        let mut doc = experiment();
        change(&mut doc);
        Experiment::from_value(doc).and_then(|e| e.validate()).expect_err("should be rejected").to_string()
    }

    #[test]
    fn the_base_experiment_is_valid_and_round_trips() {
        let doc = experiment();
        let e = Experiment::from_value(doc.clone()).unwrap();
        e.validate().unwrap();
        assert_eq!(e.to_value(), doc);
    }

    #[test]
    fn unknown_fields_and_bare_numbers_survive_a_round_trip() {
        let mut doc = experiment();
        doc["futureField"] = json!({"x": 1});
        doc["spec"]["parameters"][0]["feasibleSpace"] = json!({"min": 0.01, "max": "0.05", "newKnob": true});
        doc["spec"]["objective"]["goal"] = json!(1);
        doc["status"] = json!({"trialsSucceeded": 2, "currentOptimalTrial": {"bestTrialName": "t1",
            "parameterAssignments": [{"name": "lr", "value": "0.02"}],
            "observation": {"metrics": [{"name": "accuracy", "min": "0.5", "max": "0.9", "latest": "0.9"}]}},
            "conditions": [{"type": "Succeeded", "status": "True", "extraField": 1}]});
        let e = Experiment::from_value(doc.clone()).unwrap();
        e.validate().unwrap();
        assert_eq!(e.to_value(), doc);
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut doc = experiment();
        doc["spec"]["maxTrialCount"] = json!("many");
        let err = Experiment::from_value(doc).unwrap_err().to_string();
        assert!(err.starts_with("spec.maxTrialCount: invalid type"), "{err}");
        let mut doc = experiment();
        doc["spec"]["parameters"][0]["feasibleSpace"]["min"] = json!([1]);
        let err = Experiment::from_value(doc).unwrap_err().to_string();
        assert!(err.starts_with("spec.parameters[0].feasibleSpace.min: expected a string or a number"), "{err}");
    }

    #[test]
    fn header_objective_and_algorithm_problems_name_the_field() {
        assert!(problem(|d| d["apiVersion"] = json!("kubeflow.org/v1")).starts_with("apiVersion:"));
        assert!(problem(|d| d["kind"] = json!("Trial")).starts_with("kind:"));
        assert!(problem(|d| d["metadata"] = json!({})).starts_with("metadata.name:"));
        assert!(problem(|d| d["spec"]["objective"]["type"] = json!("maximise")).starts_with("spec.objective.type:"));
        assert!(
            problem(|d| d["spec"]["objective"]["objectiveMetricName"] = json!(""))
                .starts_with("spec.objective.objectiveMetricName:")
        );
        assert!(
            problem(|d| d["spec"]["objective"]["additionalMetricNames"] = json!(["loss", "accuracy"]))
                .starts_with("spec.objective.additionalMetricNames[1]:")
        );
        assert!(
            problem(|d| d["spec"]["objective"]["metricStrategies"] = json!([{"name": "accuracy", "value": "avg"}]))
                .starts_with("spec.objective.metricStrategies[0].value:")
        );
        let msg = problem(|d| d["spec"]["algorithm"]["algorithmName"] = json!("annealing"));
        assert!(msg.starts_with("spec.algorithm.algorithmName: expected one of random, grid"), "{msg}");
        assert!(
            problem(|d| d["spec"]["algorithm"]["algorithmSettings"] =
                json!([{"name": "random_state", "value": "1"}, {"name": "random_state", "value": "2"}]))
            .starts_with("spec.algorithm.algorithmSettings[1].name:")
        );
        assert!(problem(|d| d["spec"]["maxTrialCount"] = json!(0)).starts_with("spec.maxTrialCount:"));
        assert!(problem(|d| d["spec"]["maxFailedTrialCount"] = json!(-1)).starts_with("spec.maxFailedTrialCount:"));
        assert!(problem(|d| d["spec"]["resumePolicy"] = json!("Always")).starts_with("spec.resumePolicy:"));
    }

    #[test]
    fn early_stopping_settings_are_checked() {
        let early = |settings: Value| {
            problem(move |d| {
                d["spec"]["earlyStopping"] = json!({"algorithmName": "medianstop", "algorithmSettings": settings})
            })
        };
        assert!(
            early(json!([{"name": "start_step", "value": "0"}]))
                .starts_with("spec.earlyStopping.algorithmSettings[0].value:")
        );
        assert!(
            early(json!([{"name": "patience", "value": "3"}]))
                .starts_with("spec.earlyStopping.algorithmSettings[0].name:")
        );
        assert!(
            problem(|d| d["spec"]["earlyStopping"] = json!({"algorithmName": "hyperband"}))
                .starts_with("spec.earlyStopping.algorithmName:")
        );
    }

    #[test]
    fn parameter_problems_name_the_parameter_and_field() {
        let fs = |i: usize, space: Value| move |d: &mut Value| d["spec"]["parameters"][i]["feasibleSpace"] = space;
        let msg = problem(fs(0, json!({"min": "5", "max": "1"})));
        assert_eq!(msg, "spec.parameters[0].feasibleSpace: parameter \"lr\": min 5 is greater than max 1");
        let msg = problem(fs(0, json!({"min": "0.1", "max": "1", "step": "0"})));
        assert!(msg.contains("\"lr\"") && msg.contains("step > 0, found 0"), "{msg}");
        let msg = problem(fs(0, json!({"min": "0", "max": "1", "distribution": "logUniform"})));
        assert!(msg.contains("\"lr\"") && msg.contains("logUniform prior needs min > 0"), "{msg}");
        let msg = problem(fs(0, json!({"min": "zero", "max": "1"})));
        assert_eq!(
            msg,
            "spec.parameters[0].feasibleSpace.min: parameter \"lr\": expected a finite number, found \"zero\""
        );
        let msg = problem(fs(1, json!({"min": "1.5", "max": "4"})));
        assert!(
            msg.starts_with("spec.parameters[1].feasibleSpace.min: parameter \"layers\": expected an integer"),
            "{msg}"
        );
        let msg = problem(fs(1, json!({"min": "1", "max": "4", "step": "0"})));
        assert!(msg.contains("\"layers\"") && msg.contains("step > 0, found 0"), "{msg}");
        let big = json!({"min": "9007199254740993", "max": "9007199254740995"});
        let mut doc = experiment();
        doc["spec"]["parameters"][1]["feasibleSpace"] = big;
        let space = Experiment::from_value(doc).unwrap().search_space().unwrap();
        assert_eq!(space.params()[1].cardinality(), Some(3), "integers above 2^53 are read exactly");
        let msg = problem(fs(2, json!({"list": []})));
        assert!(msg.contains("\"opt\"") && msg.contains("empty list"), "{msg}");
        let msg = problem(fs(0, json!({"min": "0.1", "max": "1", "distribution": "beta"})));
        assert!(msg.starts_with("spec.parameters[0].feasibleSpace.distribution:"), "{msg}");
        let msg = problem(|d| d["spec"]["parameters"][1]["parameterType"] = json!("float"));
        assert!(msg.starts_with("spec.parameters[1].parameterType:"), "{msg}");
        let msg = problem(|d| d["spec"]["parameters"][1]["name"] = json!("lr"));
        assert!(msg.starts_with("spec.parameters[1].name:") && msg.contains("twice"), "{msg}");
        let msg = problem(|d| d["spec"]["parameters"] = json!([]));
        assert!(msg.starts_with("spec.parameters:"), "{msg}");
        let msg = problem(|d| d["spec"]["nasConfig"] = json!({"operations": []}));
        assert!(msg.starts_with("spec.nasConfig:"), "{msg}");
    }

    #[test]
    fn trial_template_problems_name_the_field() {
        let msg = problem(|d| d["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = json!("momentum"));
        assert!(msg.starts_with("spec.trialTemplate.trialParameters[0].reference:"), "{msg}");
        let msg = problem(|d| d["spec"]["trialTemplate"]["trialParameters"][1]["name"] = json!("learningRate"));
        assert!(msg.starts_with("spec.trialTemplate.trialParameters[1].name:"), "{msg}");
        let msg =
            problem(|d| d["spec"]["trialTemplate"]["trialSpec"]["spec"]["env"] = json!("${trialParameters.batch}"));
        assert!(msg.starts_with("spec.trialTemplate.trialSpec:") && msg.contains("trialParameters.batch"), "{msg}");
        let msg =
            problem(|d| d["spec"]["trialTemplate"]["configMap"] = json!({"configMapName": "t", "templatePath": "p"}));
        assert!(msg.contains("only one of trialSpec and configMap"), "{msg}");
        let msg = problem(|d| {
            d["spec"]["trialTemplate"].as_object_mut().unwrap().remove("trialSpec");
        });
        assert!(msg.contains("expected a trialSpec or a configMap"), "{msg}");
        let msg = problem(|d| d["spec"]["trialTemplate"]["trialSpec"]["kind"] = json!(""));
        assert!(msg.starts_with("spec.trialTemplate.trialSpec.kind:"), "{msg}");
    }

    #[test]
    fn collector_problems_name_the_field() {
        let collector = |spec: Value| problem(move |d| d["spec"]["metricsCollectorSpec"] = spec);
        let msg = collector(json!({"collector": {"kind": "Stdout"}}));
        assert!(msg.starts_with("spec.metricsCollectorSpec.collector.kind:"), "{msg}");
        let msg = collector(json!({"collector": {"kind": "Custom"}}));
        assert!(msg.starts_with("spec.metricsCollectorSpec.collector.customCollector:"), "{msg}");
        let msg = collector(
            json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "rel.log", "kind": "File"}}}),
        );
        assert!(msg.starts_with("spec.metricsCollectorSpec.source.fileSystemPath.path:"), "{msg}");
        let msg = collector(
            json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/a", "format": "XML"}}}),
        );
        assert!(msg.starts_with("spec.metricsCollectorSpec.source.fileSystemPath.format:"), "{msg}");
    }

    fn scalar() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            (-1e6..1e6f64).prop_map(|x| json!(x)),
            any::<i32>().prop_map(|x| json!(x)),
            (-1e6..1e6f64).prop_map(|x| json!(x.to_string())),
            "[a-z0-9._-]{0,8}".prop_map(|s| json!(s)),
            any::<bool>().prop_map(|b| json!(b)),
        ]
    }

    proptest::proptest! {
        /// Whatever scalar forms a manifest uses, `to_value` writes back exactly what was read.
        #[test]
        fn scalars_round_trip_in_every_form(min in scalar(), max in scalar(), step in scalar(), item in scalar(), setting in scalar()) {
            let mut doc = experiment();
            doc["spec"]["parameters"][0]["feasibleSpace"] = json!({"min": min, "max": max, "step": step});
            doc["spec"]["parameters"][2]["feasibleSpace"] = json!({"list": [item, "x"]});
            doc["spec"]["algorithm"]["algorithmSettings"] = json!([{"name": "s", "value": setting}]);
            let e = Experiment::from_value(doc.clone()).unwrap();
            proptest::prop_assert_eq!(e.to_value(), doc);
            // Validation may reject the values, but never panics and always names a field.
            if let Err(err) = e.validate() {
                proptest::prop_assert!(matches!(err, Error::Invalid { .. }), "{}", err);
            }
        }
    }
}
