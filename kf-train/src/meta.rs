//! Pieces every Trainer v2 wire type shares: object metadata, environment
//! variables, resource requirements, status conditions, and the small checks
//! (strict unknown-field detection, name formats) the validators build on.
//!
//! This module owns no kind of its own and reads no files; it is vocabulary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::quantity::parse_quantity;
use crate::{Error, Result};

/// Fields a type does not model, written back as they were read.
pub type Extra = BTreeMap<String, Value>;

/// The `ObjectMeta` fields kf reads; the rest is kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace (absent for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Metadata fields kf does not model (uid, resourceVersion, finalizers, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Metadata fields of a top-level object that kf keeps without modelling.
pub(crate) const OBJECT_META_EXTRA: &[&str] = &[
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "managedFields",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// Metadata fields an embedded template may carry besides name, namespace,
/// labels and annotations (the CRDs prune everything else).
pub(crate) const EMBEDDED_META_EXTRA: &[&str] = &["finalizers"];

/// A container environment variable (`core/v1` `EnvVar`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A reference to the value (field, secret, config map…), kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Value>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl EnvVar {
    /// A variable with a literal value.
    pub fn literal(name: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar { name: name.into(), value: Some(value.into()), value_from: None, extra: Extra::new() }
    }
}

/// Sets each variable of `updates` in `env`: replaces a variable of the same
/// name in place, appends new ones, keeps the order otherwise. This is the
/// upsert the Trainer plugins apply. O(n·m).
pub fn upsert_env(env: &mut Vec<EnvVar>, updates: impl IntoIterator<Item = EnvVar>) {
    for update in updates {
        match env.iter_mut().find(|e| e.name == update.name) {
            Some(existing) => *existing = update,
            None => env.push(update),
        }
    }
}

/// Compute resources of a container (`core/v1` `ResourceRequirements`).
/// Quantities stay as written (`"4Gi"` or `1`), so round-trip keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    /// Upper bounds, resource name → quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Value>>,
    /// Requests, resource name → quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Value>>,
    /// Dynamic resource claims, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Vec<Value>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResourceRequirements {
    /// The amount of `resource` the node gets: its limit, else its request;
    /// `None` when neither is set or the quantity does not parse.
    pub fn amount(&self, resource: &str) -> Option<f64> {
        let from = |m: &Option<BTreeMap<String, Value>>| m.as_ref().and_then(|m| m.get(resource)).cloned();
        from(&self.limits).or_else(|| from(&self.requests)).as_ref().and_then(quantity_of)
    }

    /// The number of GPUs per node: the sum over resources whose name contains
    /// `gpu` (`nvidia.com/gpu`, `amd.com/gpu`), limits first, as upstream
    /// counts them. 0 when none.
    pub fn gpus(&self) -> u64 {
        let count = |m: &Option<BTreeMap<String, Value>>| -> Option<u64> {
            let m = m.as_ref()?;
            let gpus: Vec<f64> = m
                .iter()
                .filter(|(name, _)| name.to_ascii_lowercase().contains("gpu"))
                .filter_map(|(_, q)| quantity_of(q))
                .collect();
            if gpus.is_empty() { None } else { Some(gpus.iter().map(|g| g.max(0.0).ceil() as u64).sum()) }
        };
        count(&self.limits).or_else(|| count(&self.requests)).unwrap_or(0)
    }

    pub(crate) fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(path, &self.extra, &[], "claims, limits, requests")?;
        for (field, map) in [("limits", &self.limits), ("requests", &self.requests)] {
            for (name, q) in map.iter().flatten() {
                if quantity_of(q).is_none() {
                    return invalid(
                        format!("{path}.{field}.{name}"),
                        format!("expected a quantity such as \"2\", \"500m\" or \"4Gi\", found {q}"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// A quantity written as a string (`"500m"`) or a bare number.
pub(crate) fn quantity_of(q: &Value) -> Option<f64> {
    match q {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A status condition (`meta/v1` `Condition`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: `Suspended`, `Complete`, `Failed`, `Created`…
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Machine-readable reason in CamelCase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Condition {
    pub(crate) fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(
            path,
            &self.extra,
            &[],
            "lastTransitionTime, message, observedGeneration, reason, status, type",
        )?;
        let required = [
            ("type", self.type_.as_deref()),
            ("status", self.status.as_deref()),
            ("reason", self.reason.as_deref()),
            ("message", self.message.as_deref()),
            ("lastTransitionTime", self.last_transition_time.as_deref()),
        ];
        for (field, value) in required {
            if value.is_none() {
                return invalid(format!("{path}.{field}"), "required field is missing");
            }
        }
        if let Some(status) = self.status.as_deref()
            && !matches!(status, "True" | "False" | "Unknown")
        {
            return invalid(format!("{path}.status"), format!("expected True, False or Unknown, found {status:?}"));
        }
        if let Some(reason) = self.reason.as_deref()
            && !is_condition_reason(reason)
        {
            return invalid(
                format!("{path}.reason"),
                format!("expected a CamelCase reason (letters, digits, '_', ',', ':'), found {reason:?}"),
            );
        }
        if self.observed_generation.is_some_and(|g| g < 0) {
            return invalid(format!("{path}.observedGeneration"), "must be at least 0");
        }
        Ok(())
    }
}

/// `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`, at most 1024 characters.
pub(crate) fn is_condition_reason(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':');
    s.len() <= 1024
        && b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter().all(inner)
        && b.last().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// An RFC 1035 DNS label: `^[a-z]([-a-z0-9]*[a-z0-9])?$`, at most 63 characters.
pub fn is_rfc1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() <= 63
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// An RFC 1123 DNS subdomain (what Kubernetes requires of most object
/// names): dot-separated RFC 1123 labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !l.is_empty()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok)
}

pub(crate) fn invalid<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T> {
    Err(Error::Invalid { path: path.into(), message: message.into() })
}

/// Fails on the first key of `extra` that is not in `tolerated` (fields the
/// schema defines but kf keeps untyped). `known` lists every field the
/// schema defines there, for the message.
pub(crate) fn reject_unknown(path: &str, extra: &Extra, tolerated: &[&str], known: &str) -> Result<()> {
    match extra.keys().find(|k| !tolerated.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(Error::UnknownField { path: child(path, key), expected: known.to_string() }),
    }
}

/// `path.key`, or `key` at the root.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

pub(crate) fn check_max_len(path: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return invalid(path, format!("must be at most {max} characters, found {}", value.chars().count()));
    }
    Ok(())
}

pub(crate) fn validate_env(path: &str, env: &[EnvVar]) -> Result<()> {
    for (i, var) in env.iter().enumerate() {
        let here = format!("{path}[{i}]");
        reject_unknown(&here, &var.extra, &[], "name, value, valueFrom")?;
        if var.name.is_empty() {
            return invalid(format!("{here}.name"), "an environment variable needs a name");
        }
        if var.value_from.as_ref().is_some_and(|v| !v.is_object()) {
            return invalid(format!("{here}.valueFrom"), "expected an object (fieldRef, secretKeyRef, …)");
        }
    }
    Ok(())
}

pub(crate) fn validate_meta(path: &str, meta: &ObjectMeta, tolerated: &[&str]) -> Result<()> {
    reject_unknown(
        path,
        &meta.extra,
        tolerated,
        "name, namespace, labels, annotations and the standard ObjectMeta fields",
    )
}

/// Reads a wire type from a document; type errors name the field path.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(doc: Value) -> Result<T> {
    serde_path_to_error::deserialize(doc).map_err(|err| {
        let path = err.path().to_string();
        Error::Invalid { path: if path == "." { String::new() } else { path }, message: err.inner().to_string() }
    })
}

/// Writes a wire type back; plain structs, string maps and `Value`s cannot
/// fail to serialise.
pub(crate) fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn name_formats() {
        assert!(is_rfc1035_label("pytorch-simple"));
        assert!(!is_rfc1035_label("1abc"));
        assert!(!is_rfc1035_label("abc-"));
        assert!(!is_rfc1035_label("a.b"));
        assert!(!is_rfc1035_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("torchtune-llama3.2-3b"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("Upper"));
    }

    #[test]
    fn upsert_replaces_in_place_and_appends() {
        let mut env = vec![EnvVar::literal("A", "1"), EnvVar::literal("B", "2")];
        upsert_env(&mut env, [EnvVar::literal("A", "9"), EnvVar::literal("C", "3")]);
        let pairs: Vec<_> = env.iter().map(|e| (e.name.as_str(), e.value.as_deref())).collect();
        assert_eq!(pairs, [("A", Some("9")), ("B", Some("2")), ("C", Some("3"))]);
    }

    #[test]
    fn gpus_prefer_limits_and_sum_vendors() {
        let r: ResourceRequirements = serde_json::from_value(serde_json::json!({
            "limits": {"nvidia.com/gpu": 2, "cpu": "4"}, "requests": {"nvidia.com/gpu": "8"}
        }))
        .unwrap();
        assert_eq!(r.gpus(), 2);
        assert_eq!(r.amount("cpu"), Some(4.0));
        assert_eq!(ResourceRequirements::default().gpus(), 0);
    }

    proptest! {
        #[test]
        fn upsert_keeps_names_unique(names in proptest::collection::vec("[A-D]", 0..12)) {
            let mut env = Vec::new();
            upsert_env(&mut env, names.iter().map(|n| EnvVar::literal(n.clone(), "v")));
            let mut seen: Vec<_> = env.iter().map(|e| e.name.clone()).collect();
            let before = seen.len();
            seen.sort();
            seen.dedup();
            prop_assert_eq!(before, seen.len());
        }

        #[test]
        fn rfc1035_labels_never_exceed_63(s in "[a-z][-a-z0-9]{0,80}") {
            if is_rfc1035_label(&s) { prop_assert!(s.len() <= 63 && !s.ends_with('-')); }
        }
    }
}
