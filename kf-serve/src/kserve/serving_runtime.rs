//! The `ServingRuntime` and `ClusterServingRuntime` custom resources
//! (serving.kserve.io/v1alpha1): a model server image and the model formats
//! and protocols it serves. The two kinds share one spec; the cluster one is
//! not namespaced. One Rust type serves both, its `kind` tells which.
//!
//! What this module owns: the wire type, lossless conversion, the checks of
//! strict field validation and KServe's webhook that apply to one runtime on
//! its own, and format matching. It does not pick a runtime among many.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Extra, ObjectMeta, check_container, check_containers, check_fields, check_metadata, check_type, from_value,
    invalid, to_value,
};
use crate::Result;

/// Kind of the namespaced runtime.
pub const KIND: &str = "ServingRuntime";
/// Kind of the cluster-wide runtime.
pub const CLUSTER_KIND: &str = "ClusterServingRuntime";
/// The only `apiVersion` both CRDs serve.
pub const API_VERSION: &str = "serving.kserve.io/v1alpha1";
/// The inference protocols KServe knows.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["v1", "v2", "grpc-v1", "grpc-v2"];

/// `spec` fields besides the typed ones (from the CRD).
const SPEC_FIELDS: &[&str] = &[
    "affinity",
    "annotations",
    "builtInAdapter",
    "grpcDataEndpoint",
    "grpcEndpoint",
    "hostIPC",
    "httpDataEndpoint",
    "imagePullSecrets",
    "labels",
    "nodeSelector",
    "replicas",
    "resourceClaims",
    "schedulerName",
    "storageHelper",
    "tolerations",
    "volumes",
    "workerSpec",
];

/// A ServingRuntime or ClusterServingRuntime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServingRuntime {
    /// Always `serving.kserve.io/v1alpha1`.
    pub api_version: String,
    /// `ServingRuntime` or `ClusterServingRuntime`.
    pub kind: String,
    /// Object metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServingRuntimeSpec>,
    /// The observed state, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Top-level fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a serving runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServingRuntimeSpec {
    /// The model formats the runtime serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_model_formats: Option<Vec<SupportedModelFormat>>,
    /// The protocols it speaks: `v1`, `v2`, `grpc-v1`, `grpc-v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_versions: Option<Vec<String>>,
    /// The server containers (Kubernetes `Container`s, kept verbatim); required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<Value>>,
    /// Whether one server loads many models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_model: Option<bool>,
    /// A disabled runtime is never selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Spec fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One supported model format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedModelFormat {
    /// Format name, e.g. `sklearn`.
    pub name: String,
    /// Format version; a prefix match of the model's (`1` serves `1.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether the runtime may be chosen automatically for this format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_select: Option<bool>,
    /// Preference among runtimes that auto-select the format (higher wins; ≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ServingRuntime {
    /// Reads a ServingRuntime or ClusterServingRuntime from a parsed document.
    pub fn from_value(doc: Value) -> Result<Self> {
        from_value(doc)
    }

    /// Writes the runtime back as a document: the fields read, no others.
    pub fn to_value(&self) -> Value {
        to_value(self)
    }

    /// Whether this is a `ClusterServingRuntime`.
    pub fn is_cluster_scoped(&self) -> bool {
        self.kind == CLUSTER_KIND
    }

    /// The object's name.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    /// Whether the runtime serves `format` at `version`, as KServe matches
    /// them: same name, and a runtime version that is absent, or equal to
    /// the model's, or a prefix of it at a `.` boundary. A disabled runtime
    /// serves nothing. O(formats).
    ///
    /// ```
    /// use kf_serve::kserve::ServingRuntime;
    /// let runtime = ServingRuntime::from_value(serde_json::json!({
    ///     "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
    ///     "metadata": {"name": "kf-onnx"},
    ///     "spec": {"supportedModelFormats": [{"name": "onnx", "version": "1"}],
    ///              "containers": [{"name": "kserve-container", "image": "kf"}]},
    /// }))?;
    /// assert!(runtime.supports("onnx", Some("1.14")));
    /// assert!(runtime.supports("onnx", None));
    /// assert!(!runtime.supports("onnx", Some("10")));
    /// assert!(!runtime.supports("sklearn", None));
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn supports(&self, format: &str, version: Option<&str>) -> bool {
        let Some(spec) = &self.spec else { return false };
        if spec.disabled == Some(true) {
            return false;
        }
        spec.supported_model_formats.iter().flatten().any(|f| {
            f.name == format
                && match (f.version.as_deref(), version) {
                    (None, _) | (_, None) => true,
                    (Some(have), Some(want)) => {
                        want == have || want.strip_prefix(have).is_some_and(|rest| rest.starts_with('.'))
                    }
                }
        })
    }

    /// Checks what the API server and KServe's webhook would reject for this
    /// runtime on its own, returning the first problem with its dotted path:
    /// apiVersion and kind, a name, no unknown fields at the levels kf types,
    /// at least one container (with known fields and quantity resources),
    /// named model formats with priority ≥ 1 and one priority per format name,
    /// and known protocol versions. O(formats² + containers).
    pub fn validate(&self) -> Result<()> {
        check_type(&self.api_version, &self.kind, API_VERSION, &[KIND, CLUSTER_KIND])?;
        check_metadata(self.metadata.as_ref(), &self.kind, false)?;
        check_fields(self.extra.keys(), &[], "")?;
        let Some(spec) = &self.spec else {
            return invalid("spec", "a serving runtime needs a spec with containers");
        };
        check_fields(spec.extra.keys(), SPEC_FIELDS, "spec")?;
        let containers = spec.containers.as_deref().unwrap_or_default();
        if containers.is_empty() {
            return invalid("spec.containers", "a serving runtime needs at least one container");
        }
        for (i, container) in containers.iter().enumerate() {
            check_container(container, &format!("spec.containers[{i}]"), &[])?;
        }
        if let Some(worker) = spec.extra.get("workerSpec") {
            check_containers(worker.get("containers"), "spec.workerSpec.containers")?;
            for size in ["pipelineParallelSize", "tensorParallelSize"] {
                if let Some(n) = worker.get(size).and_then(Value::as_i64).filter(|n| *n < 1) {
                    return invalid(format!("spec.workerSpec.{size}"), format!("cannot be less than 1, found {n}"));
                }
            }
        }
        let formats = spec.supported_model_formats.as_deref().unwrap_or_default();
        for (i, format) in formats.iter().enumerate() {
            let path = format!("spec.supportedModelFormats[{i}]");
            check_fields(format.extra.keys(), &[], &path)?;
            if format.name.is_empty() {
                return invalid(format!("{path}.name"), "a model format needs a name");
            }
            if let Some(p) = format.priority.filter(|p| *p < 1) {
                return invalid(format!("{path}.priority"), format!("must be at least 1, found {p}"));
            }
            // KServe's webhook: one priority per format name within a runtime.
            let earlier = formats[..i].iter().find(|f| f.name == format.name && f.priority.is_some());
            if let (Some(earlier), Some(p)) = (earlier, format.priority)
                && earlier.priority != Some(p)
            {
                return invalid(
                    format!("{path}.priority"),
                    format!(
                        "model format {:?} already has priority {} in this runtime, found {p}",
                        format.name,
                        earlier.priority.unwrap_or_default()
                    ),
                );
            }
        }
        for (i, protocol) in spec.protocol_versions.iter().flatten().enumerate() {
            if !PROTOCOL_VERSIONS.contains(&protocol.as_str()) {
                return invalid(
                    format!("spec.protocolVersions[{i}]"),
                    format!("expected one of {PROTOCOL_VERSIONS:?}, found {protocol:?}"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn runtime(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": CLUSTER_KIND, "metadata": {"name": "rt"}, "spec": spec})
    }

    fn problem(doc: Value) -> String {
        ServingRuntime::from_value(doc).and_then(|r| r.validate()).expect_err("should be rejected").to_string()
    }

    fn container() -> Value {
        json!([{"name": "kserve-container", "image": "img"}])
    }

    #[test]
    fn both_kinds_parse_validate_and_round_trip() {
        for kind in [KIND, CLUSTER_KIND] {
            let mut doc =
                runtime(json!({"supportedModelFormats": [{"name": "onnx", "autoSelect": true, "priority": 1}],
                                          "protocolVersions": ["v2", "grpc-v2"], "containers": container(),
                                          "multiModel": false, "nodeSelector": {"gpu": "no"}}));
            doc["kind"] = json!(kind);
            let rt = ServingRuntime::from_value(doc.clone()).expect("parses");
            rt.validate().expect("valid");
            assert_eq!(rt.to_value(), doc);
            assert_eq!(rt.is_cluster_scoped(), kind == CLUSTER_KIND);
            assert_eq!(rt.name(), Some("rt"));
        }
    }

    #[test]
    fn rejections_name_the_field() {
        assert!(
            problem(runtime(json!({"supportedModelFormats": []})))
                .starts_with("spec.containers: a serving runtime needs")
        );
        let bad_protocol = runtime(json!({"containers": container(), "protocolVersions": ["v2", "v3"]}));
        assert!(problem(bad_protocol).starts_with("spec.protocolVersions[1]:"));
        let priority =
            runtime(json!({"containers": container(), "supportedModelFormats": [{"name": "x", "priority": 0}]}));
        assert!(problem(priority).starts_with("spec.supportedModelFormats[0].priority: must be at least 1"));
        let clash = runtime(json!({"containers": container(), "supportedModelFormats": [
            {"name": "x", "version": "1", "priority": 1}, {"name": "x", "version": "2", "priority": 2}]}));
        assert!(
            problem(clash)
                .starts_with("spec.supportedModelFormats[1].priority: model format \"x\" already has priority 1")
        );
        let unknown = runtime(json!({"containers": container(), "replicaCount": 2}));
        assert!(problem(unknown).starts_with("spec.replicaCount: unknown field"));
        let quantity = runtime(json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": 0.5}}}]}));
        assert!(problem(quantity).starts_with("spec.containers[0].resources.limits.cpu:"));
        let mut wrong_kind = runtime(json!({"containers": container()}));
        wrong_kind["kind"] = json!("Runtime");
        assert!(problem(wrong_kind).starts_with("kind:"));
        let err = ServingRuntime::from_value(runtime(json!({"supportedModelFormats": [{"version": "1"}]})))
            .expect_err("name");
        assert!(err.to_string().starts_with("spec.supportedModelFormats[0]: missing field `name`"), "{err}");
    }

    #[test]
    fn disabled_runtimes_serve_nothing() {
        let rt = ServingRuntime::from_value(runtime(json!({"containers": container(), "disabled": true,
                                                         "supportedModelFormats": [{"name": "onnx"}]})))
        .expect("parses");
        assert!(!rt.supports("onnx", None));
    }
}
