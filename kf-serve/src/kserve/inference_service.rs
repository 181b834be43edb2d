//! The `InferenceService` custom resource (serving.kserve.io/v1beta1): a
//! predictor with optional transformer and explainer, each a component with
//! exactly one implementation (a framework spec such as `sklearn`, the generic
//! `model` with a `modelFormat`, an `art` explainer, or custom `containers`)
//! plus its deployment settings (replicas, scaling, canary traffic, logger).
//!
//! What this module owns: the wire type, lossless conversion, and the checks
//! of KServe's validating webhook and of strict field validation. It does not
//! pick a runtime, split traffic or scale: those read these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Extra, ObjectMeta, check_container, check_containers, check_fields, check_metadata, check_resources, check_type,
    from_value, invalid, join, to_value,
};
use crate::Result;

/// Kind of the InferenceService CRD.
pub const KIND: &str = "InferenceService";
/// The only `apiVersion` the CRD serves.
pub const API_VERSION: &str = "serving.kserve.io/v1beta1";

/// The framework specs of a predictor, in the order KServe lists them; each
/// is a container plus a storage URI, and its key doubles as the model format.
pub const FRAMEWORKS: [&str; 10] =
    ["sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml", "lightgbm", "paddle"];

/// Pod-level and deployment fields every component accepts (from the CRD).
const COMPONENT_FIELDS: &[&str] = &[
    "activeDeadlineSeconds",
    "affinity",
    "annotations",
    "autoScaling",
    "automountServiceAccountToken",
    "batcher",
    "deploymentStrategy",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "hostAliases",
    "hostIPC",
    "hostNetwork",
    "hostPID",
    "hostUsers",
    "hostname",
    "hostnameOverride",
    "imagePullSecrets",
    "initContainers",
    "labels",
    "nodeName",
    "nodeSelector",
    "os",
    "overhead",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "readinessGates",
    "resourceClaims",
    "resources",
    "restartPolicy",
    "runtimeClassName",
    "scaleMetricType",
    "schedulerName",
    "schedulingGates",
    "securityContext",
    "serviceAccount",
    "serviceAccountName",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "storageUris",
    "subdomain",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
];
/// Fields only the predictor accepts, besides its implementations.
const PREDICTOR_ONLY_FIELDS: &[&str] = &["name", "storageContainerName", "workerSpec"];
/// Fields a framework or `model` spec accepts besides the container's and the typed ones.
const MODEL_EXTENSION_FIELDS: &[&str] = &["confidential", "storage"];
/// Fields an `art` explainer accepts besides the container's and the typed ones.
const ART_EXTENSION_FIELDS: &[&str] = &["runtimeVersion", "storage"];

/// An InferenceService: a model served behind one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct InferenceService {
    /// Always `serving.kserve.io/v1beta1`.
    pub api_version: String,
    /// Always `InferenceService`.
    pub kind: String,
    /// Object metadata; annotations carry deployment mode and autoscaler class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<InferenceServiceSpec>,
    /// The observed state, written by the controller; kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Top-level fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of an InferenceService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "controller", schemars(transform = require_predictor))]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceSpec {
    /// The model server (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<ComponentSpec>,
    /// Pre/post-processing in front of the predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer: Option<ComponentSpec>,
    /// Explanations of the predictor's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explainer: Option<ComponentSpec>,
    /// Spec fields kf does not model (`canary`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A predictor, transformer or explainer: its implementation and its
/// deployment settings. One type for the three because KServe's three specs
/// share everything but the implementations they allow, which
/// [`InferenceService::validate`] checks per role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// scikit-learn predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sklearn: Option<ModelSpec>,
    /// XGBoost predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xgboost: Option<ModelSpec>,
    /// TensorFlow Serving predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorflow: Option<ModelSpec>,
    /// TorchServe predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pytorch: Option<ModelSpec>,
    /// Triton predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triton: Option<ModelSpec>,
    /// ONNX Runtime predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<ModelSpec>,
    /// Hugging Face predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huggingface: Option<ModelSpec>,
    /// PMML predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmml: Option<ModelSpec>,
    /// LightGBM predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightgbm: Option<ModelSpec>,
    /// Paddle predictor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paddle: Option<ModelSpec>,
    /// The generic predictor: any format a serving runtime supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// The ART (adversarial robustness) explainer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub art: Option<ArtExplainerSpec>,
    /// Custom containers (Kubernetes `Container`s, kept verbatim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<Value>>,
    /// Minimum replicas; 0 enables scale to zero. KServe's default is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i64>,
    /// Maximum replicas; 0 means no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i64>,
    /// Target value of the scale metric, per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target: Option<i64>,
    /// `cpu`, `memory`, `concurrency` or `rps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_metric: Option<String>,
    /// Hard limit of concurrent requests per replica (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,
    /// Request timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Share of traffic (0–100) sent to the latest revision; the rest goes to
    /// the last ready one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_traffic_percent: Option<i64>,
    /// Request/response logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<LoggerSpec>,
    /// Component fields kf does not model (pod spec, batcher, autoScaling, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A framework spec (`sklearn`, `onnx`, …) or the generic `model` spec: a
/// container override plus where the model is and how to serve it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// The model's format; only under `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_format: Option<ModelFormat>,
    /// Name of the (Cluster)ServingRuntime to use; only under `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Where the model is (`gs://`, `s3://`, `pvc://`, `hf://`, `https://`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// Version of the runtime's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// `v1`, `v2`, `grpc-v1` or `grpc-v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// Container name. (Newer KServe webhooks forbid it on framework specs;
    /// the corpus's KServe does not, and samples set it.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Container fields (image, env, resources, …) and others kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `modelFormat` of a `model` spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
pub struct ModelFormat {
    /// Format name, e.g. `sklearn`, `onnx`, `huggingface`.
    pub name: String,
    /// Format version, e.g. `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The ART explainer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ArtExplainerSpec {
    /// Attack type, e.g. `SquareAttack`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Explainer options, string to string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
    /// Where the explainer's artefacts are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// Container fields and others kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `logger` of a component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
pub struct LoggerSpec {
    /// `all`, `request` or `response` (KServe defaults it to `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Where log events are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Logger fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The predictor is optional in the type so that [`InferenceService::validate`]
/// can name a missing one; the CRD requires it, as KServe's does.
#[cfg(feature = "controller")]
fn require_predictor(schema: &mut schemars::Schema) {
    if let Some(object) = schema.as_object_mut() {
        let required = object.entry("required").or_insert_with(|| Value::Array(Vec::new()));
        if let Some(required) = required.as_array_mut() {
            required.push("predictor".into());
        }
    }
}

/// The role of a component, which decides the implementations it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Predictor,
    Transformer,
    Explainer,
}

impl Role {
    fn field(self) -> &'static str {
        match self {
            Role::Predictor => "predictor",
            Role::Transformer => "transformer",
            Role::Explainer => "explainer",
        }
    }
}

impl InferenceService {
    /// Reads an InferenceService from a parsed JSON/YAML document. Type errors
    /// name the field path, e.g. `spec.predictor.minReplicas: invalid type: …`.
    pub fn from_value(doc: Value) -> Result<Self> {
        from_value(doc)
    }

    /// Writes the InferenceService back as a document: the fields read, no others.
    pub fn to_value(&self) -> Value {
        to_value(self)
    }

    /// The object's name.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    /// The predictor, if the document has one (a valid one always has).
    pub fn predictor(&self) -> Option<&ComponentSpec> {
        self.spec.as_ref()?.predictor.as_ref()
    }

    /// Whether a transformer sits in front of the predictor.
    pub fn has_transformer(&self) -> bool {
        self.spec.as_ref().is_some_and(|s| s.transformer.is_some())
    }

    /// Whether an explainer is deployed next to the predictor.
    pub fn has_explainer(&self) -> bool {
        self.spec.as_ref().is_some_and(|s| s.explainer.is_some())
    }

    /// The predictor's model format and version: `modelFormat` of a `model`
    /// spec, or the framework key (`sklearn`, `onnx`, …) with no version.
    /// `None` for custom containers.
    pub fn model_format(&self) -> Option<(&str, Option<&str>)> {
        let predictor = self.predictor()?;
        if let Some(format) = predictor.model.as_ref().and_then(|m| m.model_format.as_ref()) {
            return Some((format.name.as_str(), format.version.as_deref()));
        }
        predictor.model_implementations().into_iter().find(|(key, _)| *key != "model").map(|(key, _)| (key, None))
    }

    /// The annotations, or an empty map.
    fn annotations(&self) -> BTreeMap<String, String> {
        self.metadata.as_ref().and_then(|m| m.annotations.clone()).unwrap_or_default()
    }

    /// Checks what the API server (strict field validation, quantities) and
    /// KServe's validating webhook would reject, and returns the first problem
    /// with the dotted path of the field:
    ///
    /// - apiVersion, kind, a DNS-1035 name, no unknown fields at the levels kf
    ///   types (document, metadata, spec, components, implementations,
    ///   containers);
    /// - a predictor; in each component exactly one implementation (the
    ///   framework specs, `model`, `art` or custom `containers`, as KServe
    ///   counts them) of a kind its role allows;
    /// - resource requests and limits that are quantities (an integer or a
    ///   quantity string, never a bare float);
    /// - replicas (min ≥ 0, max ≥ 0, min ≤ max unless max is 0), container
    ///   concurrency ≥ 0, canary traffic 0–100, timeout ≥ 0, logger mode,
    ///   scale metric and target for the autoscaler in use (KPA: concurrency
    ///   or rps; HPA: cpu or memory, cpu target 1–100);
    /// - the autoscaler class annotation; `storageUri` and `storageUris` not
    ///   both; no `STORAGE_URI` in a collocated transformer container.
    ///
    /// Runs in time linear in the size of the typed part of the document.
    pub fn validate(&self) -> Result<()> {
        check_type(&self.api_version, &self.kind, API_VERSION, &[KIND])?;
        check_metadata(self.metadata.as_ref(), KIND, true)?;
        check_fields(self.extra.keys(), &[], "")?;
        let Some(spec) = &self.spec else {
            return invalid("spec", "an InferenceService needs a spec with a predictor");
        };
        check_fields(spec.extra.keys(), &["canary"], "spec")?;
        let Some(predictor) = &spec.predictor else {
            return invalid("spec.predictor", "an InferenceService needs a predictor");
        };
        let annotations = self.annotations();
        check_autoscaler_class(&annotations)?;
        let components = [
            (Role::Predictor, Some(predictor)),
            (Role::Transformer, spec.transformer.as_ref()),
            (Role::Explainer, spec.explainer.as_ref()),
        ];
        for (role, component) in components {
            if let Some(component) = component {
                component.validate(role, &annotations, &join("spec", role.field()))?;
            }
        }
        check_collocation(predictor)
    }
}

impl ComponentSpec {
    /// The model implementations present, keyed by their field name, in
    /// KServe's order (the framework specs, then `model`).
    pub fn model_implementations(&self) -> Vec<(&'static str, &ModelSpec)> {
        let all = [
            ("sklearn", &self.sklearn),
            ("xgboost", &self.xgboost),
            ("tensorflow", &self.tensorflow),
            ("pytorch", &self.pytorch),
            ("triton", &self.triton),
            ("onnx", &self.onnx),
            ("huggingface", &self.huggingface),
            ("pmml", &self.pmml),
            ("lightgbm", &self.lightgbm),
            ("paddle", &self.paddle),
            ("model", &self.model),
        ];
        all.into_iter().filter_map(|(key, spec)| spec.as_ref().map(|s| (key, s))).collect()
    }

    /// The implementations as KServe counts them for its exactly-one rule:
    /// the model specs, `art`, and the custom containers. Each container
    /// named `kserve-container` counts once; otherwise the containers count
    /// once when there is no model implementation (next to one, they are
    /// sidecars such as a collocated transformer).
    pub fn implementations(&self) -> Vec<&'static str> {
        let mut found: Vec<&'static str> = self.model_implementations().into_iter().map(|(key, _)| key).collect();
        if self.art.is_some() {
            found.push("art");
        }
        let containers = self.containers.as_deref().unwrap_or_default();
        for container in containers {
            if container.get("name").and_then(Value::as_str) == Some("kserve-container") {
                found.push("containers");
            }
        }
        // An explainer's containers are its custom implementation whatever
        // their names; `art` only ever appears in explainers.
        let counted = found.contains(&"containers");
        if !counted && !containers.is_empty() && (found.is_empty() || self.art.is_some()) {
            found.push("containers");
        }
        found
    }

    fn validate(&self, role: Role, annotations: &BTreeMap<String, String>, path: &str) -> Result<()> {
        let role_fields: &[&str] = if role == Role::Predictor { PREDICTOR_ONLY_FIELDS } else { &[] };
        for key in self.extra.keys() {
            if !COMPONENT_FIELDS.contains(&key.as_str()) && !role_fields.contains(&key.as_str()) {
                return invalid(join(path, key), "unknown field (strict field validation rejects it)");
            }
        }
        // Implementations the role does not have are unknown fields of that spec.
        for (key, _) in self.model_implementations() {
            if role != Role::Predictor {
                return invalid(join(path, key), "unknown field (strict field validation rejects it)");
            }
        }
        if self.art.is_some() && role != Role::Explainer {
            return invalid(join(path, "art"), "unknown field (strict field validation rejects it)");
        }
        let implementations = self.implementations();
        if implementations.len() != 1 {
            let allowed = match role {
                Role::Predictor => {
                    "sklearn, xgboost, tensorflow, pytorch, triton, onnx, huggingface, pmml, lightgbm, \
                                    paddle, model, containers"
                }
                Role::Transformer => "containers",
                Role::Explainer => "art, containers",
            };
            let found = if implementations.is_empty() { "none".to_string() } else { implementations.join(", ") };
            return invalid(path, format!("exactly one of [{allowed}] must be specified, found {found}"));
        }
        for (key, spec) in self.model_implementations() {
            spec.validate(key, &join(path, key))?;
        }
        if let Some(art) = &self.art {
            let art_path = join(path, "art");
            check_fields(
                art.extra.keys().filter(|k| !super::CONTAINER_FIELDS.contains(&k.as_str())),
                ART_EXTENSION_FIELDS,
                &art_path,
            )?;
            if let Some(resources) = art.extra.get("resources") {
                check_resources(resources, &join(&art_path, "resources"))?;
            }
        }
        if let Some(containers) = &self.containers {
            for (i, container) in containers.iter().enumerate() {
                check_container(container, &format!("{path}.containers[{i}]"), &[])?;
            }
        }
        check_containers(self.extra.get("initContainers"), &join(path, "initContainers"))?;
        if let Some(resources) = self.extra.get("resources") {
            check_resources(resources, &join(path, "resources"))?;
        }
        if let Some(worker) = self.extra.get("workerSpec") {
            check_containers(worker.get("containers"), &join(path, "workerSpec.containers"))?;
            check_containers(worker.get("initContainers"), &join(path, "workerSpec.initContainers"))?;
        }
        if self.storage_uri().is_some() && self.extra.contains_key("storageUris") {
            return invalid(join(path, "storageUris"), "setting both storageUri and storageUris is not supported");
        }
        self.validate_extension(annotations, path)
    }

    /// The storage URI of the implementation, if any.
    pub fn storage_uri(&self) -> Option<&str> {
        if let Some((_, spec)) = self.model_implementations().first() {
            return spec.storage_uri.as_deref();
        }
        self.art.as_ref().and_then(|a| a.storage_uri.as_deref())
    }

    /// KServe's `ComponentExtensionSpec` checks and the autoscaler's.
    fn validate_extension(&self, annotations: &BTreeMap<String, String>, path: &str) -> Result<()> {
        let min = self.min_replicas.unwrap_or(1);
        if min < 0 {
            return invalid(join(path, "minReplicas"), format!("cannot be less than 0, found {min}"));
        }
        let max = self.max_replicas.unwrap_or(0);
        if max < 0 {
            return invalid(join(path, "maxReplicas"), format!("cannot be less than 0, found {max}"));
        }
        if max != 0 && min > max {
            return invalid(join(path, "minReplicas"), format!("{min} is greater than maxReplicas {max}"));
        }
        if let Some(c) = self.container_concurrency.filter(|c| *c < 0) {
            return invalid(join(path, "containerConcurrency"), format!("cannot be less than 0, found {c}"));
        }
        if let Some(p) = self.canary_traffic_percent.filter(|p| !(0..=100).contains(p)) {
            return invalid(join(path, "canaryTrafficPercent"), format!("must be between 0 and 100, found {p}"));
        }
        if let Some(t) = self.timeout.filter(|t| *t < 0) {
            return invalid(join(path, "timeout"), format!("cannot be less than 0, found {t}"));
        }
        if let Some(mode) = self.logger.as_ref().and_then(|l| l.mode.as_deref())
            && !matches!(mode, "all" | "request" | "response")
        {
            return invalid(join(path, "logger.mode"), format!("expected all, request or response, found {mode:?}"));
        }
        if let Some(metric) = self.scale_metric.as_deref()
            && !matches!(metric, "cpu" | "memory" | "concurrency" | "rps")
        {
            return invalid(
                join(path, "scaleMetric"),
                format!("expected cpu, memory, concurrency or rps, found {metric:?}"),
            );
        }
        self.validate_autoscaling(annotations, path)
    }

    /// Scale metric and target as the autoscaler in use accepts them.
    fn validate_autoscaling(&self, annotations: &BTreeMap<String, String>, path: &str) -> Result<()> {
        let mode = annotations.get("serving.kserve.io/deploymentMode").map(String::as_str).unwrap_or_default();
        let raw = matches!(mode, "RawDeployment" | "Standard");
        let kserve_class = annotations.get("serving.kserve.io/autoscalerClass").map(String::as_str);
        let knative_class = annotations.get("autoscaling.knative.dev/class").map(String::as_str);
        let hpa = if raw { kserve_class == Some("hpa") } else { knative_class == Some("hpa.autoscaling.knative.dev") };
        let kpa = !raw && !hpa;
        let target = self.scale_target;
        if hpa {
            let metric = self.scale_metric.as_deref().unwrap_or("cpu");
            if !matches!(metric, "cpu" | "memory") {
                return invalid(
                    join(path, "scaleMetric"),
                    format!("the HPA scales on cpu or memory, found {metric:?}"),
                );
            }
            if let Some(t) = target {
                if metric == "cpu" && !(1..=100).contains(&t) {
                    return invalid(
                        join(path, "scaleTarget"),
                        format!("the cpu target utilization percentage must be 1-100, found {t}"),
                    );
                }
                if metric == "memory" && t < 1 {
                    return invalid(
                        join(path, "scaleTarget"),
                        format!("the memory target must be at least 1 MiB, found {t}"),
                    );
                }
            }
        } else if kpa {
            if self.extra.contains_key("deploymentStrategy") {
                return invalid(
                    join(path, "deploymentStrategy"),
                    "customizing deploymentStrategy is only supported in raw deployment mode",
                );
            }
            let metric = self.scale_metric.as_deref().unwrap_or("concurrency");
            if !matches!(metric, "concurrency" | "rps") {
                return invalid(
                    join(path, "scaleMetric"),
                    format!("the Knative autoscaler scales on concurrency or rps, found {metric:?}"),
                );
            }
            if let Some(t) = target.filter(|t| metric == "rps" && *t < 1) {
                return invalid(join(path, "scaleTarget"), format!("the rps target must be at least 1, found {t}"));
            }
        }
        Ok(())
    }
}

impl ModelSpec {
    /// Checks a framework (`key` ≠ `model`) or `model` spec at `path`.
    fn validate(&self, key: &str, path: &str) -> Result<()> {
        if key != "model" {
            if self.model_format.is_some() {
                return invalid(join(path, "modelFormat"), "unknown field (strict field validation rejects it)");
            }
            if self.runtime.is_some() {
                return invalid(join(path, "runtime"), "unknown field (strict field validation rejects it)");
            }
        } else if self.model_format.is_none() {
            return invalid(join(path, "modelFormat"), "a model spec needs a modelFormat with a name");
        }
        if let Some(format) = &self.model_format {
            check_fields(format.extra.keys(), &[], &join(path, "modelFormat"))?;
            if format.name.is_empty() {
                return invalid(join(path, "modelFormat.name"), "the model format needs a name");
            }
        }
        check_fields(
            self.extra.keys().filter(|k| !super::CONTAINER_FIELDS.contains(&k.as_str())),
            MODEL_EXTENSION_FIELDS,
            path,
        )?;
        if let Some(resources) = self.extra.get("resources") {
            check_resources(resources, &join(path, "resources"))?;
        }
        if let Some(p) = self.protocol_version.as_deref()
            && !matches!(p, "v1" | "v2" | "grpc-v1" | "grpc-v2")
        {
            return invalid(join(path, "protocolVersion"), format!("expected v1, v2, grpc-v1 or grpc-v2, found {p:?}"));
        }
        Ok(())
    }
}

/// KServe's allowed values of `serving.kserve.io/autoscalerClass`.
fn check_autoscaler_class(annotations: &BTreeMap<String, String>) -> Result<()> {
    let key = "serving.kserve.io/autoscalerClass";
    match annotations.get(key).map(String::as_str) {
        None | Some("hpa" | "external" | "none" | "keda") => Ok(()),
        Some(other) => invalid(
            format!("metadata.annotations.{key}"),
            format!("expected hpa, external, none or keda, found {other:?}"),
        ),
    }
}

/// A transformer collocated in the predictor's pod must not download the model.
fn check_collocation(predictor: &ComponentSpec) -> Result<()> {
    let containers = predictor.containers.as_deref().unwrap_or_default();
    for (i, container) in containers.iter().enumerate() {
        if container.get("name").and_then(Value::as_str) != Some("transformer-container") {
            continue;
        }
        let env = container.get("env").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if let Some(j) = env.iter().position(|e| e.get("name").and_then(Value::as_str) == Some("STORAGE_URI")) {
            return invalid(
                format!("spec.predictor.containers[{i}].env[{j}]"),
                "storage uri should not be specified in the transformer container",
            );
        }
        break;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn isvc(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "iris"}, "spec": spec})
    }

    fn problem(doc: Value) -> String {
        let err = InferenceService::from_value(doc).and_then(|s| s.validate()).expect_err("should be rejected");
        err.to_string()
    }

    fn sklearn() -> Value {
        json!({"storageUri": "gs://b/m"})
    }

    #[test]
    fn reads_what_kf_needs() {
        let doc = isvc(json!({
            "predictor": {"canaryTrafficPercent": 10, "minReplicas": 0, "maxReplicas": 3, "scaleMetric": "rps",
                          "scaleTarget": 5, "model": {"modelFormat": {"name": "onnx", "version": "1"},
                          "runtime": "kf", "storageUri": "s3://m", "protocolVersion": "v2"}},
            "transformer": {"containers": [{"name": "t", "image": "i"}]},
        }));
        let svc = InferenceService::from_value(doc.clone()).expect("parses");
        svc.validate().expect("valid");
        assert_eq!(svc.to_value(), doc);
        assert_eq!(svc.model_format(), Some(("onnx", Some("1"))));
        let predictor = svc.predictor().expect("predictor");
        assert_eq!(predictor.canary_traffic_percent, Some(10));
        assert_eq!(predictor.storage_uri(), Some("s3://m"));
        assert_eq!(predictor.implementations(), vec!["model"]);
        assert!(svc.has_transformer() && !svc.has_explainer());
        let fw = InferenceService::from_value(isvc(json!({"predictor": {"sklearn": sklearn()}}))).expect("parses");
        assert_eq!(fw.model_format(), Some(("sklearn", None)));
    }

    #[test]
    fn exactly_one_implementation() {
        let none = problem(isvc(json!({"predictor": {"minReplicas": 1}})));
        assert!(none.starts_with("spec.predictor: exactly one of [") && none.ends_with("found none"), "{none}");
        let two = problem(isvc(json!({"predictor": {"sklearn": sklearn(), "xgboost": sklearn()}})));
        assert!(two.ends_with("found sklearn, xgboost"), "{two}");
        let with_custom = json!({"predictor": {"sklearn": sklearn(), "containers": [{"name": "kserve-container"}]}});
        assert!(problem(isvc(with_custom)).ends_with("found sklearn, containers"));
        // A sidecar next to a framework spec is not a second implementation.
        let sidecar =
            isvc(json!({"predictor": {"sklearn": sklearn(), "containers": [{"name": "side", "image": "x"}]}}));
        InferenceService::from_value(sidecar).expect("parses").validate().expect("sidecar is fine");
        assert!(
            problem(isvc(json!({"predictor": {"sklearn": sklearn()}, "transformer": {}})))
                .starts_with("spec.transformer: exactly one of [containers]")
        );
        let explainer = json!({"predictor": {"sklearn": sklearn()}, "explainer": {"art": {"type": "SquareAttack"}, "containers": [{"name": "c"}]}});
        assert!(problem(isvc(explainer)).starts_with("spec.explainer: exactly one of [art, containers]"));
    }

    #[test]
    fn implementations_belong_to_their_role() {
        let doc = isvc(json!({"predictor": {"sklearn": sklearn()}, "transformer": {"sklearn": sklearn()}}));
        assert!(problem(doc).starts_with("spec.transformer.sklearn: unknown field"));
        assert!(problem(isvc(json!({"predictor": {"art": {}}}))).starts_with("spec.predictor.art: unknown field"));
        let custom = isvc(json!({"predictor": {"sklearn": sklearn()}, "transformer": {"custom": {"container": {}}}}));
        assert!(problem(custom).starts_with("spec.transformer.custom: unknown field"));
        let fmt = isvc(json!({"predictor": {"sklearn": {"modelFormat": {"name": "x"}}}}));
        assert!(problem(fmt).starts_with("spec.predictor.sklearn.modelFormat: unknown field"));
        assert!(
            problem(isvc(json!({"predictor": {"model": {"storageUri": "s3://m"}}})))
                .starts_with("spec.predictor.model.modelFormat:")
        );
    }

    #[test]
    fn component_bounds() {
        let with = |extra: Value| {
            let mut p = json!({"sklearn": sklearn()});
            for (k, v) in extra.as_object().expect("object") {
                p[k] = v.clone();
            }
            problem(isvc(json!({"predictor": p})))
        };
        assert!(
            with(json!({"canaryTrafficPercent": 101}))
                .starts_with("spec.predictor.canaryTrafficPercent: must be between 0 and 100")
        );
        assert!(with(json!({"canaryTrafficPercent": -1})).starts_with("spec.predictor.canaryTrafficPercent:"));
        assert!(with(json!({"minReplicas": -1})).starts_with("spec.predictor.minReplicas: cannot be less than 0"));
        assert!(with(json!({"maxReplicas": -2})).starts_with("spec.predictor.maxReplicas:"));
        assert!(
            with(json!({"minReplicas": 3, "maxReplicas": 2})).starts_with("spec.predictor.minReplicas: 3 is greater")
        );
        assert!(with(json!({"containerConcurrency": -1})).starts_with("spec.predictor.containerConcurrency:"));
        assert!(with(json!({"logger": {"mode": "everything"}})).starts_with("spec.predictor.logger.mode:"));
        assert!(with(json!({"scaleMetric": "gpu"})).starts_with("spec.predictor.scaleMetric:"));
        assert!(with(json!({"scaleMetric": "cpu"})).contains("Knative autoscaler"));
        assert!(with(json!({"scaleMetric": "rps", "scaleTarget": 0})).starts_with("spec.predictor.scaleTarget:"));
        assert!(
            with(json!({"sklearn": {"storageUri": "s3://a"}, "storageUris": [{"uri": "s3://b"}]}))
                .starts_with("spec.predictor.storageUris:")
        );
        assert!(
            with(json!({"sklearn": {"protocolVersion": "v3"}})).starts_with("spec.predictor.sklearn.protocolVersion:")
        );
        assert!(
            with(json!({"sklearn": {"resources": {"limits": {"memory": 1.5}}}}))
                .starts_with("spec.predictor.sklearn.resources.limits.memory:")
        );
        assert!(with(json!({"containers": [{"name": "kserve-container", "resources": {"requests": {"cpu": 0.5}}}], "sklearn": null})).starts_with("spec.predictor.containers[0].resources.requests.cpu:"));
        assert!(
            with(json!({"sklearn": {"imagePullPolicy": "Always", "nodeName": "n"}}))
                .starts_with("spec.predictor.sklearn.nodeName: unknown field")
        );
    }

    #[test]
    fn hpa_metrics_in_raw_deployment_mode() {
        let doc = |metric: &str, target: i64| {
            json!({"apiVersion": API_VERSION, "kind": KIND,
                   "metadata": {"name": "iris", "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment",
                                                                "serving.kserve.io/autoscalerClass": "hpa"}},
                   "spec": {"predictor": {"sklearn": sklearn(), "scaleMetric": metric, "scaleTarget": target}}})
        };
        InferenceService::from_value(doc("cpu", 80)).expect("parses").validate().expect("cpu 80 is fine");
        assert!(problem(doc("cpu", 120)).starts_with("spec.predictor.scaleTarget: the cpu target"));
        assert!(problem(doc("rps", 1)).starts_with("spec.predictor.scaleMetric: the HPA"));
        let mut bad_class = doc("cpu", 80);
        bad_class["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] = json!("magic");
        assert!(problem(bad_class).starts_with("metadata.annotations.serving.kserve.io/autoscalerClass:"));
    }

    #[test]
    fn names_and_types() {
        let mut doc = isvc(json!({"predictor": {"sklearn": sklearn()}}));
        doc["metadata"]["name"] = json!("Iris_Model");
        assert!(problem(doc.clone()).starts_with("metadata.name: \"Iris_Model\" is not a valid InferenceService name"));
        doc["metadata"]["name"] = json!("iris");
        doc["apiVersion"] = json!("serving.kserve.io/v1alpha2");
        assert!(problem(doc.clone()).starts_with("apiVersion: expected \"serving.kserve.io/v1beta1\""));
        let err = InferenceService::from_value(isvc(json!({"predictor": {"minReplicas": "one"}}))).expect_err("type");
        assert!(err.to_string().starts_with("spec.predictor.minReplicas: invalid type"), "{err}");
        assert!(problem(isvc(json!({}))).starts_with("spec.predictor: an InferenceService needs a predictor"));
        assert!(
            problem(isvc(json!({"predictor": {"sklearn": sklearn()}, "router": {}})))
                .starts_with("spec.router: unknown field")
        );
    }

    #[test]
    fn collocated_transformer_must_not_download_the_model() {
        let doc = isvc(json!({"predictor": {"containers": [
            {"name": "kserve-container", "image": "p"},
            {"name": "transformer-container", "image": "t", "env": [{"name": "STORAGE_URI", "value": "gs://x"}]},
        ]}}));
        assert!(problem(doc).starts_with("spec.predictor.containers[1].env[0]: storage uri"));
    }
}
