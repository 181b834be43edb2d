//! The `Profile` custom resource (kubeflow.org/v1, also served as v1beta1): the
//! wire type, its lossless conversion to and from a JSON/YAML value, and the
//! semantic checks the profile controller relies on.
//!
//! Fields kf does not model are kept in `extra` maps and written back unchanged,
//! so `from_value` followed by `to_value` gives back the same document. This
//! module does not reconcile anything: it is the boundary type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result, is_quantity};

/// API group of the Profile CRD.
pub const API_GROUP: &str = "kubeflow.org";
/// Kind of the Profile CRD.
pub const KIND: &str = "Profile";
/// The `apiVersion`s the CRD serves, storage version first.
pub const API_VERSIONS: [&str; 2] = ["kubeflow.org/v1", "kubeflow.org/v1beta1"];

/// Fields a type does not model, written back as they were read.
pub type Extra = BTreeMap<String, Value>;

/// A Kubeflow Profile: a tenant that owns the namespace of the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// `kubeflow.org/v1` or `kubeflow.org/v1beta1`.
    pub api_version: String,
    /// Always `Profile`.
    pub kind: String,
    /// Object metadata; the name is also the namespace the profile owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ProfileSpec>,
    /// The observed state, written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ProfileStatus>,
    /// Top-level fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The part of Kubernetes `ObjectMeta` a profile needs; the rest is kept in
/// `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Metadata fields kf does not model (uid, resourceVersion, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a Profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    /// The RBAC subject that owns the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Subject>,
    /// Cloud-identity plugins (`WorkloadIdentity`, `AwsIamForServiceAccount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<Plugin>>,
    /// The namespace's ResourceQuota spec; empty `hard` means no quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota_spec: Option<ResourceQuotaSpec>,
    /// Spec fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An RBAC subject (`rbac.authorization.k8s.io/v1` `Subject`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// User name (often an email), group name or service-account name.
    pub name: String,
    /// API group of the subject kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// Namespace, for service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Subject fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A profile plugin: a kind and a free-form spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Plugin {
    /// Plugin API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Plugin kind, e.g. `AwsIamForServiceAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Free-form plugin configuration, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Value>,
    /// Plugin fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Kubernetes `ResourceQuotaSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceQuotaSpec {
    /// Resource name → quantity (a string such as `2Gi`, or a plain number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard: Option<BTreeMap<String, Value>>,
    /// Quota scopes (`BestEffort`, `PriorityClass`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// A scope selector, kept as the Kubernetes object it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_selector: Option<Value>,
    /// Quota fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status` of a Profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProfileStatus {
    /// Conditions; upstream only ever appends `Failed` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Status fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One status condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Failed`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Condition fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Profile {
    /// Reads a profile from a parsed JSON/YAML document. Type errors name the
    /// field path, e.g. `spec.owner.name: invalid type: integer, expected a string`.
    pub fn from_value(doc: Value) -> Result<Self> {
        serde_path_to_error::deserialize(doc)
            .map_err(|err| Error::Invalid { path: err.path().to_string(), message: err.inner().to_string() })
    }

    /// Writes the profile back as a document: the fields read, no others.
    pub fn to_value(&self) -> Value {
        // Serialising plain structs, string maps and `Value`s cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The owner as an RBAC subject (validate first: this only reads).
    pub fn owner_subject(&self) -> Result<crate::Subject> {
        let owner = self.spec.as_ref().and_then(|s| s.owner.as_ref()).ok_or_else(|| Error::Invalid {
            path: "spec.owner".into(),
            message: "a Profile needs an owner (kind and name)".into(),
        })?;
        Ok(match owner.kind.as_str() {
            "Group" => crate::Subject::Group(owner.name.clone()),
            "ServiceAccount" => crate::Subject::ServiceAccount {
                namespace: owner.namespace.clone().unwrap_or_default(),
                name: owner.name.clone(),
            },
            _ => crate::Subject::User(owner.name.clone()),
        })
    }

    /// The namespace this profile owns: its name.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    /// Checks what the API server and the profile controller would reject:
    /// the apiVersion and kind, a usable object name, an owner with a known
    /// subject kind, plugins with a kind, and quota values that are
    /// quantities. Returns the first problem found.
    ///
    /// The name is checked as Kubernetes checks custom-resource names (a
    /// non-empty path segment), not as a namespace name: manifests with
    /// template placeholders such as `${PROFILE_NAME}` are valid documents.
    pub fn validate(&self) -> Result<()> {
        if !API_VERSIONS.contains(&self.api_version.as_str()) {
            return invalid("apiVersion", format!("expected one of {API_VERSIONS:?}, found {:?}", self.api_version));
        }
        if self.kind != KIND {
            return invalid("kind", format!("expected {KIND:?}, found {:?}", self.kind));
        }
        match self.namespace() {
            None | Some("") => return invalid("metadata.name", "a Profile needs a name (it is also its namespace)"),
            Some(name @ ("." | "..")) => {
                return invalid("metadata.name", format!("{name:?} may not be used as a name"));
            }
            Some(name) if name.contains(['/', '%']) => {
                return invalid("metadata.name", format!("{name:?} may not contain '/' or '%'"));
            }
            Some(_) => {}
        }
        let Some(spec) = &self.spec else {
            return invalid("spec", "a Profile needs a spec with an owner");
        };
        let Some(owner) = &spec.owner else {
            return invalid("spec.owner", "a Profile needs an owner (kind and name)");
        };
        if !matches!(owner.kind.as_str(), "User" | "Group" | "ServiceAccount") {
            return invalid(
                "spec.owner.kind",
                format!("expected User, Group or ServiceAccount, found {:?}", owner.kind),
            );
        }
        if owner.name.is_empty() {
            return invalid("spec.owner.name", "the owner's name is empty");
        }
        if owner.kind == "ServiceAccount" && owner.namespace.as_deref().unwrap_or("").is_empty() {
            return invalid("spec.owner.namespace", "a ServiceAccount owner needs a namespace");
        }
        for (i, plugin) in spec.plugins.iter().flatten().enumerate() {
            if plugin.kind.as_deref().unwrap_or("").is_empty() {
                return invalid(format!("spec.plugins[{i}].kind"), "a plugin needs a kind");
            }
        }
        let hard = spec.resource_quota_spec.as_ref().and_then(|q| q.hard.as_ref());
        for (resource, quantity) in hard.into_iter().flatten() {
            let ok = match quantity {
                Value::String(s) => is_quantity(s),
                Value::Number(_) => true,
                _ => false,
            };
            if !ok {
                return invalid(
                    format!("spec.resourceQuotaSpec.hard.{resource}"),
                    format!("expected a quantity such as \"2\", \"500m\" or \"2Gi\", found {quantity}"),
                );
            }
        }
        Ok(())
    }
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Result<()> {
    Err(Error::Invalid { path: path.into(), message: message.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(spec: Value) -> Value {
        json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "team-a"}, "spec": spec})
    }

    fn problem(doc: Value) -> String {
        let err = Profile::from_value(doc).and_then(|p| p.validate()).expect_err("should be rejected");
        err.to_string()
    }

    #[test]
    fn every_corpus_profile_parses_validates_and_round_trips() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/profiles");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("corpus folder") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let doc: Value = serde_saphyr::from_str(&text).expect("valid YAML");
            let profile = Profile::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            profile.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(profile.to_value(), doc, "{} must round-trip", path.display());
            seen += 1;
        }
        assert_eq!(seen, 7, "the corpus holds 7 profiles");
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let doc = json!({
            "apiVersion": "kubeflow.org/v1", "kind": "Profile", "futureTopLevel": 1,
            "metadata": {"name": "a", "uid": "123", "labels": {"x": "y"}},
            "spec": {"owner": {"kind": "User", "name": "u", "extraOwner": true}, "newField": [1, 2],
                     "plugins": [{"kind": "K", "apiVersion": "v1", "spec": {"deep": {"a": null}}}],
                     "resourceQuotaSpec": {"hard": {"cpu": 2}, "scopes": ["BestEffort"]}},
            "status": {"conditions": [{"type": "Failed", "message": "m", "lastTransitionTime": "t"}], "x": 1},
        });
        assert_eq!(Profile::from_value(doc.clone()).expect("parses").to_value(), doc);
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = Profile::from_value(profile(json!({"owner": {"kind": "User", "name": 7}}))).expect_err("bad type");
        assert!(err.to_string().starts_with("spec.owner.name: invalid type"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        assert!(problem(profile(json!({}))).starts_with("spec.owner:"));
        assert!(problem(profile(json!({"owner": {"kind": "Robot", "name": "r"}}))).starts_with("spec.owner.kind:"));
        assert!(problem(profile(json!({"owner": {"kind": "User", "name": ""}}))).starts_with("spec.owner.name:"));
        assert!(
            problem(profile(json!({"owner": {"kind": "ServiceAccount", "name": "sa"}})))
                .starts_with("spec.owner.namespace:")
        );
        assert!(
            problem(profile(json!({"owner": {"kind": "User", "name": "u"}, "plugins": [{"spec": {}}]})))
                .starts_with("spec.plugins[0].kind:")
        );
        let quota = json!({"owner": {"kind": "User", "name": "u"}, "resourceQuotaSpec": {"hard": {"cpu": "two"}}});
        assert!(problem(profile(quota)).starts_with("spec.resourceQuotaSpec.hard.cpu:"));
        let mut no_name = profile(json!({"owner": {"kind": "User", "name": "u"}}));
        no_name["metadata"] = json!({});
        assert!(problem(no_name).starts_with("metadata.name:"));
        let mut wrong_version = profile(json!({"owner": {"kind": "User", "name": "u"}}));
        wrong_version["apiVersion"] = json!("kubeflow.org/v2");
        assert!(problem(wrong_version).starts_with("apiVersion:"));
    }
}
