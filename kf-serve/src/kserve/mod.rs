//! KServe's serving manifests (`serving.kserve.io`): the wire types of
//! [`InferenceService`] (v1beta1), [`InferenceGraph`], [`ServingRuntime`] and
//! `ClusterServingRuntime` (v1alpha1), their lossless conversion to and from a
//! JSON/YAML value, and the checks KServe's API server (strict field
//! validation, quantities) and admission webhooks would apply.
//!
//! kf types what it reads (model formats, storage URIs, traffic, replicas,
//! scaling, graph routing, runtime formats and protocols); Kubernetes pod and
//! container specs stay `serde_json::Value` and fields kf does not model are
//! kept in `extra` maps, so `from_value` followed by `to_value` gives back the
//! same document. This module does not reconcile, route or serve anything.
//!
//! ```
//! use kf_serve::kserve::Manifest;
//!
//! let doc = serde_json::json!({
//!     "apiVersion": "serving.kserve.io/v1beta1",
//!     "kind": "InferenceService",
//!     "metadata": {"name": "iris"},
//!     "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": "gs://bucket/iris"}}},
//! });
//! let manifest = Manifest::from_value(doc.clone())?;
//! manifest.validate()?;
//! assert_eq!(manifest.to_value(), doc); // nothing lost, nothing invented
//! # Ok::<(), kf_serve::Error>(())
//! ```

pub mod inference_graph;
pub mod inference_service;
pub mod serving_runtime;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use inference_graph::InferenceGraph;
pub use inference_service::InferenceService;
pub use serving_runtime::ServingRuntime;

use crate::{Error, Result, is_quantity};

/// API group of every KServe kind.
pub const API_GROUP: &str = "serving.kserve.io";

/// Fields a type does not model, written back as they were read.
pub type Extra = BTreeMap<String, Value>;

/// The part of Kubernetes `ObjectMeta` kf reads; the rest is kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "controller", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace (absent for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations: KServe reads deployment mode and autoscaler settings here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Metadata fields kf does not model (uid, resourceVersion, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ObjectMeta` fields besides the typed ones; anything else is rejected by
/// the API server's strict field validation.
const OBJECT_META_FIELDS: &[&str] = &[
    "generateName",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Fields of a Kubernetes `Container` (core/v1, as embedded in the KServe CRDs).
pub(crate) const CONTAINER_FIELDS: &[&str] = &[
    "args",
    "command",
    "env",
    "envFrom",
    "image",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "name",
    "ports",
    "readinessProbe",
    "resizePolicy",
    "resources",
    "restartPolicy",
    "restartPolicyRules",
    "securityContext",
    "startupProbe",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
];

/// Any of the four KServe kinds, classified by `kind`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Manifest {
    /// `InferenceService` (serving.kserve.io/v1beta1); boxed, it is by far the
    /// largest type.
    InferenceService(Box<InferenceService>),
    /// `InferenceGraph` (serving.kserve.io/v1alpha1).
    InferenceGraph(InferenceGraph),
    /// `ServingRuntime` or `ClusterServingRuntime` (serving.kserve.io/v1alpha1):
    /// one type, the kind tells the scope.
    ServingRuntime(ServingRuntime),
}

impl Manifest {
    /// Reads a KServe document of any of the four kinds, chosen by its `kind`.
    pub fn from_value(doc: Value) -> Result<Self> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        match kind {
            inference_service::KIND => {
                InferenceService::from_value(doc).map(|m| Manifest::InferenceService(Box::new(m)))
            }
            inference_graph::KIND => InferenceGraph::from_value(doc).map(Manifest::InferenceGraph),
            serving_runtime::KIND | serving_runtime::CLUSTER_KIND => {
                ServingRuntime::from_value(doc).map(Manifest::ServingRuntime)
            }
            other => Err(Error::Invalid {
                path: "kind".into(),
                message: format!(
                    "expected InferenceService, InferenceGraph, ServingRuntime or ClusterServingRuntime, found {other:?}"
                ),
            }),
        }
    }

    /// Checks the document as the API server and KServe's webhooks would.
    pub fn validate(&self) -> Result<()> {
        match self {
            Manifest::InferenceService(m) => m.validate(),
            Manifest::InferenceGraph(m) => m.validate(),
            Manifest::ServingRuntime(m) => m.validate(),
        }
    }

    /// Writes the document back: the fields read, no others.
    pub fn to_value(&self) -> Value {
        match self {
            Manifest::InferenceService(m) => m.to_value(),
            Manifest::InferenceGraph(m) => m.to_value(),
            Manifest::ServingRuntime(m) => m.to_value(),
        }
    }
}

/// Deserialises with the failing field's path in the error.
pub(crate) fn from_value<T: DeserializeOwned>(doc: Value) -> Result<T> {
    serde_path_to_error::deserialize(doc)
        .map_err(|err| Error::Invalid { path: err.path().to_string(), message: err.inner().to_string() })
}

/// Serialises plain structs, string maps and `Value`s, which cannot fail.
pub(crate) fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(crate) fn invalid<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T> {
    Err(Error::Invalid { path: path.into(), message: message.into() })
}

/// Joins a parent path and a field name into a dotted path.
pub(crate) fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() { field.to_string() } else { format!("{parent}.{field}") }
}

/// Rejects any key of `extra` that is not in `allowed`, as Kubernetes strict
/// field validation does (the API server would otherwise drop it silently,
/// which hides typos such as `nodeName` one level too high).
pub(crate) fn check_fields<'a>(
    keys: impl IntoIterator<Item = &'a String>,
    allowed: &[&str],
    parent: &str,
) -> Result<()> {
    for key in keys {
        if !allowed.contains(&key.as_str()) {
            return invalid(join(parent, key), "unknown field (strict field validation rejects it)");
        }
    }
    Ok(())
}

/// Checks the apiVersion and kind of a document.
pub(crate) fn check_type(api_version: &str, kind: &str, expected_version: &str, kinds: &[&str]) -> Result<()> {
    if api_version != expected_version {
        return invalid("apiVersion", format!("expected {expected_version:?}, found {api_version:?}"));
    }
    if !kinds.contains(&kind) {
        return invalid("kind", format!("expected {}, found {kind:?}", kinds.join(" or ")));
    }
    Ok(())
}

/// Checks `metadata`: known fields only, and a name KServe accepts
/// (`[a-z]([-a-z0-9]*[a-z0-9])?`) unless the object asks for a generated one.
pub(crate) fn check_metadata(metadata: Option<&ObjectMeta>, kind: &str, dns_1035_name: bool) -> Result<()> {
    let Some(meta) = metadata else {
        return invalid("metadata", format!("a {kind} needs metadata with a name"));
    };
    check_fields(meta.extra.keys(), OBJECT_META_FIELDS, "metadata")?;
    match meta.name.as_deref() {
        None | Some("") if meta.extra.contains_key("generateName") => Ok(()),
        None | Some("") => invalid("metadata.name", format!("a {kind} needs a name")),
        Some(name) if dns_1035_name && !is_dns_1035_label(name) => invalid(
            "metadata.name",
            format!(
                "{name:?} is not a valid {kind} name: lower case alphanumeric characters or '-', starting with a \
                 letter and ending with an alphanumeric character (regex '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ),
        ),
        Some(_) => Ok(()),
    }
}

/// Whether `s` matches `[a-z]([-a-z0-9]*[a-z0-9])?`. O(len).
pub(crate) fn is_dns_1035_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Checks one embedded container: known fields (plus `also_allowed`, for
/// KServe's container-shaped specs) and its resource quantities.
pub(crate) fn check_container(container: &Value, path: &str, also_allowed: &[&str]) -> Result<()> {
    let Some(fields) = container.as_object() else {
        return invalid(path, format!("expected a container object, found {container}"));
    };
    for key in fields.keys() {
        if !CONTAINER_FIELDS.contains(&key.as_str()) && !also_allowed.contains(&key.as_str()) {
            return invalid(join(path, key), "unknown field (strict field validation rejects it)");
        }
    }
    if let Some(resources) = fields.get("resources") {
        check_resources(resources, &join(path, "resources"))?;
    }
    Ok(())
}

/// Checks a list of containers (`containers`, `initContainers`).
pub(crate) fn check_containers(containers: Option<&Value>, path: &str) -> Result<()> {
    match containers {
        None => Ok(()),
        Some(Value::Array(items)) => {
            items.iter().enumerate().try_for_each(|(i, c)| check_container(c, &format!("{path}[{i}]"), &[]))
        }
        Some(other) => invalid(path, format!("expected a list of containers, found {other}")),
    }
}

/// Checks `ResourceRequirements`: every request and limit is a quantity, i.e.
/// an integer or a quantity string (`x-kubernetes-int-or-string`). A bare
/// float such as `0.1` is neither, and the API server rejects it.
pub(crate) fn check_resources(resources: &Value, path: &str) -> Result<()> {
    let Some(fields) = resources.as_object() else {
        return invalid(path, format!("expected resource requirements (requests, limits), found {resources}"));
    };
    for section in ["limits", "requests"] {
        let Some(section_value) = fields.get(section) else { continue };
        let section_path = join(path, section);
        let Some(quantities) = section_value.as_object() else {
            return invalid(
                section_path,
                format!("expected a map of resource name to quantity, found {section_value}"),
            );
        };
        for (name, quantity) in quantities {
            check_quantity(quantity, &join(&section_path, name))?;
        }
    }
    Ok(())
}

/// Checks one `x-kubernetes-int-or-string` quantity.
pub(crate) fn check_quantity(quantity: &Value, path: &str) -> Result<()> {
    match quantity {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
        Value::String(s) if is_quantity(s) => Ok(()),
        Value::String(s) => {
            invalid(path, format!("expected a quantity such as \"1\", \"500m\" or \"2Gi\", found {s:?}"))
        }
        Value::Number(n) => invalid(
            path,
            format!(
                "must be of type integer or string: found the bare number {n}; a quantity is an integer or a \
                 string such as \"{n}\" or \"100m\""
            ),
        ),
        other => invalid(path, format!("must be of type integer or string, found {other}")),
    }
}

#[cfg(test)]
pub(crate) mod corpus {
    //! Reading the shared KServe corpus in tests.
    use serde_json::Value;
    use std::path::PathBuf;

    pub(crate) const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/kserve");

    /// Every `*.yaml` document directly in `dir`, sorted by file name.
    pub(crate) fn documents(dir: &str) -> Vec<(PathBuf, Value)> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("corpus folder")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("readable");
                let doc: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (p, doc)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_public_corpus_document_parses_validates_and_round_trips() {
        let docs = corpus::documents(corpus::DIR);
        let mut kinds = BTreeMap::new();
        for (path, doc) in &docs {
            let manifest = Manifest::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            manifest.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(&manifest.to_value(), doc, "{} must round-trip", path.display());
            // typed → YAML → typed gives an equal value, as the corpus README asks.
            let yaml = serde_saphyr::to_string(&manifest.to_value()).expect("YAML");
            let again: Value = serde_saphyr::from_str(&yaml).expect("re-read");
            assert_eq!(Manifest::from_value(again).expect("re-parse"), manifest, "{}", path.display());
            *kinds.entry(doc["kind"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
        }
        // 62 public documents: 59 here and 3 in invalid/ (all InferenceServices).
        assert_eq!(docs.len(), 59, "the public corpus holds 59 valid documents");
        assert_eq!(kinds["InferenceService"], 52);
        assert_eq!(kinds["ClusterServingRuntime"], 6);
        assert_eq!(kinds["InferenceGraph"], 1);
    }

    #[test]
    fn every_invalid_corpus_document_is_rejected_naming_the_field() {
        let expected = [
            (
                "docs__samples__explanation__alibi__cifar10__cifar10.yaml",
                "spec.predictor.tensorflow.resources.requests.cpu",
            ),
            (
                "docs__samples__explanation__alibi__moviesentiment__moviesentiment.yaml",
                "spec.predictor.sklearn.resources.requests.cpu",
            ),
            ("docs__samples__v1beta1__torchserve__v1__bloom__bloom-560m.yaml", "spec.nodeName"),
        ];
        let docs = corpus::documents(&format!("{}/invalid", corpus::DIR));
        assert_eq!(docs.len(), expected.len());
        for (path, doc) in docs {
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            let (_, field) = expected.iter().find(|(f, _)| *f == file).expect("listed in invalid/README.md");
            // A lenient parse still reads them (the float stays 0.1); validation rejects them.
            let manifest = Manifest::from_value(doc.clone()).expect("parses");
            assert_eq!(manifest.to_value(), doc, "{file} round-trips even though it is invalid");
            match manifest.validate() {
                Err(Error::Invalid { path, message }) => assert_eq!(&path, field, "{file}: {message}"),
                other => panic!("{file}: expected rejection at {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn quantities_are_integers_or_quantity_strings() {
        assert!(check_quantity(&json!(1), "q").is_ok());
        assert!(check_quantity(&json!("100m"), "q").is_ok());
        assert!(check_quantity(&json!(0.1), "q").unwrap_err().to_string().contains("bare number 0.1"));
        assert!(check_quantity(&json!("1 core"), "q").is_err());
        assert!(check_quantity(&json!(true), "q").is_err());
    }

    #[test]
    fn dns_1035_labels() {
        for ok in ["a", "my-model", "abc-123", "x1"] {
            assert!(is_dns_1035_label(ok), "{ok}");
        }
        for bad in ["", "1abc", "-a", "a-", "My-model", "a_b", "a.b"] {
            assert!(!is_dns_1035_label(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_kinds_are_rejected_at_kind() {
        let err = Manifest::from_value(json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "Predictor"}))
            .expect_err("unknown kind");
        assert!(err.to_string().starts_with("kind: expected InferenceService"), "{err}");
    }
}
