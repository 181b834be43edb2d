//! The Kubernetes objects a Profile reconciles into (feature `kube`).
//!
//! The same objects the upstream profile controller and KFAM create: the
//! namespace, the `default-editor`/`default-viewer` service accounts, role
//! bindings for the owner, the service accounts and each contributor, the
//! resource quota, and Istio authorization policies keyed on the identity
//! header. Core objects are built as typed k8s-openapi values, so their shape
//! is the API's; the Istio policies (not in k8s-openapi) follow the
//! `security.istio.io/v1beta1` schema by hand. Pure: rendering applies nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ResourceQuotaSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject as RbacSubject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};

use crate::profile::Profile;
use crate::role::Role;
use crate::subject::Subject;
use crate::{Error, Result};

/// Settings the upstream controller reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// The identity header the gateway sets (Kubeflow manifests: `kubeflow-userid`).
    pub user_header: String,
    /// Prefix before the user name in that header (Kubeflow manifests: empty).
    pub user_prefix: String,
    /// Principals allowed to forward users: the ingress gateway and the pipelines UI.
    pub gateway_principals: Vec<String>,
    /// The notebook controller's principal (may probe kernels).
    pub notebook_controller_principal: String,
    /// Pod Security Admission level enforced in the namespace.
    pub pod_security: String,
    /// Labels every profile namespace gets (the controller's label file).
    pub namespace_labels: BTreeMap<String, String>,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            user_header: "kubeflow-userid".into(),
            user_prefix: String::new(),
            gateway_principals: vec![
                "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account".into(),
                "cluster.local/ns/kubeflow/sa/ml-pipeline-ui".into(),
            ],
            notebook_controller_principal: "cluster.local/ns/kubeflow/sa/notebook-controller-service-account".into(),
            pod_security: "restricted".into(),
            namespace_labels: BTreeMap::from([
                ("app.kubernetes.io/part-of".into(), "kubeflow-profile".into()),
                ("katib.kubeflow.org/metrics-collector-injection".into(), "enabled".into()),
                ("pipelines.kubeflow.org/enabled".into(), "true".into()),
                ("serving.kubeflow.org/inferenceservice".into(), "enabled".into()),
            ]),
        }
    }
}

fn to_value<T: serde::Serialize>(object: &T, kind_path: &str) -> Result<Value> {
    serde_json::to_value(object)
        .map_err(|e| Error::Invalid { path: kind_path.into(), message: format!("cannot render: {e}") })
}

/// Adds `apiVersion` and `kind`, which k8s-openapi leaves to the client.
fn with_type<T: k8s_openapi::Resource + serde::Serialize>(object: &T) -> Result<Value> {
    let mut value = to_value(object, T::KIND)?;
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(T::API_VERSION.into()));
        map.insert("kind".into(), Value::String(T::KIND.into()));
    }
    Ok(value)
}

/// The name KFAM gives a contributor's binding and policy: kind, name, role
/// kind and role name, lower-cased, every run of other characters as `-`.
pub fn contributor_binding_name(subject: &Subject, role: Role) -> String {
    let subject_name = match subject {
        Subject::ServiceAccount { namespace, name } => format!("{namespace}-{name}"),
        Subject::User(name) | Subject::Group(name) => name.clone(),
    };
    let raw = format!("{}-{}-ClusterRole-{}", subject.kind(), subject_name, role.cluster_role());
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn rbac_subject(subject: &Subject) -> RbacSubject {
    match subject {
        Subject::User(name) => RbacSubject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: name.clone(),
            namespace: None,
        },
        Subject::Group(name) => RbacSubject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: name.clone(),
            namespace: None,
        },
        Subject::ServiceAccount { namespace, name } => RbacSubject {
            api_group: None,
            kind: "ServiceAccount".into(),
            name: name.clone(),
            namespace: Some(namespace.clone()),
        },
    }
}

/// Renders every object `profile` reconciles into, with `contributors`' bindings
/// and policies, in apply order (namespace first).
pub fn render(profile: &Profile, contributors: &[(Subject, Role)], config: &RenderConfig) -> Result<Vec<Value>> {
    profile.validate()?;
    let ns = profile.namespace().unwrap_or_default().to_string();
    if !is_dns_label(&ns) {
        return Err(Error::Invalid {
            path: "metadata.name".into(),
            message: format!("{ns:?} cannot name a namespace (expected a DNS-1123 label)"),
        });
    }
    let owner = profile.owner_subject()?;
    let owner_name = match &owner {
        Subject::User(n) | Subject::Group(n) => n.clone(),
        Subject::ServiceAccount { name, .. } => name.clone(),
    };
    let meta = profile.metadata.clone().unwrap_or_default();
    // An owner reference needs the Profile's uid, which only a profile read
    // from the cluster has; rendered offline, the objects carry none.
    let owner_refs = meta.extra.get("uid").and_then(Value::as_str).filter(|u| !u.is_empty()).map(|uid| {
        vec![OwnerReference {
            api_version: profile.api_version.clone(),
            kind: "Profile".into(),
            name: ns.clone(),
            uid: uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    let object_meta = |name: &str, annotations: Option<BTreeMap<String, String>>| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.clone()),
        annotations,
        owner_references: owner_refs.clone(),
        ..ObjectMeta::default()
    };
    let admin_annotations = |user: &str, role: Role| {
        Some(BTreeMap::from([("user".to_string(), user.to_string()), ("role".to_string(), role.as_str().to_string())]))
    };

    let mut labels = config.namespace_labels.clone();
    labels.insert("istio-injection".into(), "enabled".into());
    labels.insert("pod-security.kubernetes.io/enforce".into(), config.pod_security.clone());
    labels.extend(meta.labels.clone().unwrap_or_default());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([("owner".to_string(), owner_name.clone())])),
            owner_references: owner_refs.clone(),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let mut objects = vec![with_type(&namespace)?];

    for sa in ["default-editor", "default-viewer"] {
        objects.push(with_type(&ServiceAccount { metadata: object_meta(sa, None), ..ServiceAccount::default() })?);
    }

    let binding = |name: &str, role: Role, subject: RbacSubject, annotations| RoleBinding {
        metadata: object_meta(name, annotations),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.cluster_role().into(),
        },
        subjects: Some(vec![subject]),
    };
    objects.push(with_type(&binding(
        "namespaceAdmin",
        Role::Admin,
        rbac_subject(&owner),
        admin_annotations(&owner_name, Role::Admin),
    ))?);
    for (sa, role) in [("default-editor", Role::Edit), ("default-viewer", Role::View)] {
        let subject = Subject::ServiceAccount { namespace: ns.clone(), name: sa.into() };
        objects.push(with_type(&binding(sa, role, rbac_subject(&subject), None))?);
    }

    // The quota spec is copied verbatim (hard, scopes, scopeSelector), as
    // the controller does, and only when `hard` is non-empty.
    let quota_spec = profile.spec.as_ref().and_then(|s| s.resource_quota_spec.as_ref());
    if let Some(spec) = quota_spec.filter(|q| q.hard.as_ref().is_some_and(|h| !h.is_empty())) {
        let mut spec_value = to_value(spec, "spec.resourceQuotaSpec")?;
        // quantities may be written as numbers in the Profile; the API wants strings
        if let Some(Value::Object(hard)) = spec_value.get_mut("hard") {
            for quantity in hard.values_mut() {
                if let Value::Number(n) = quantity {
                    *quantity = Value::String(n.to_string());
                }
            }
        }
        let spec: ResourceQuotaSpec = serde_json::from_value(spec_value).map_err(|e| Error::Invalid {
            path: "spec.resourceQuotaSpec".into(),
            message: format!("not a Kubernetes ResourceQuotaSpec: {e}"),
        })?;
        let quota = ResourceQuota {
            metadata: object_meta("kf-resource-quota", None),
            spec: Some(spec),
            ..ResourceQuota::default()
        };
        objects.push(with_type(&quota)?);
    }

    let header_rule = |user: &str| {
        json!({
            "from": [{"source": {"principals": config.gateway_principals}}],
            "when": [{"key": format!("request.headers[{}]", config.user_header),
                      "values": [format!("{}{user}", config.user_prefix)]}],
        })
    };
    let mut policy_meta = json!({
        "name": "ns-owner-access-istio", "namespace": ns,
        "annotations": {"user": owner_name, "role": "admin"},
    });
    if let Some(refs) = &owner_refs {
        policy_meta["ownerReferences"] = to_value(refs, "ownerReferences")?;
    }
    objects.push(json!({
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "AuthorizationPolicy",
        "metadata": policy_meta,
        "spec": {
            "action": "ALLOW",
            "rules": [
                header_rule(&owner_name),
                {"when": [{"key": "source.namespace", "values": [ns]}]},
                {"to": [{"operation": {"paths": ["/healthz", "/metrics", "/wait-for-drain"]}}]},
                {"from": [{"source": {"principals": [config.notebook_controller_principal]}}],
                 "to": [{"operation": {"methods": ["GET"], "paths": ["*/api/kernels"]}}]},
            ],
        },
    }));

    for (subject, role) in contributors {
        let name = contributor_binding_name(subject, *role);
        let who = match subject {
            Subject::User(n) | Subject::Group(n) => n.clone(),
            Subject::ServiceAccount { name, .. } => name.clone(),
        };
        let annotations = admin_annotations(&who, *role);
        let rb = RoleBinding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                annotations: annotations.clone(),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.cluster_role().into(),
            },
            subjects: Some(vec![rbac_subject(subject)]),
        };
        objects.push(with_type(&rb)?);
        // A gateway policy matches the one user in the identity header. Istio
        // cannot match a member of a comma-separated groups header (its
        // wildcards are prefix or suffix only), so groups get their RBAC
        // binding and reach the namespace through kf's own tenancy layer.
        if matches!(subject, Subject::Group(_)) {
            continue;
        }
        objects.push(json!({
            "apiVersion": "security.istio.io/v1beta1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"action": "ALLOW", "rules": [header_rule(&who)]},
        }));
    }
    Ok(objects)
}

/// A DNS-1123 label: what a namespace name must be.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributor_names_follow_kfam() {
        let bob = Subject::User("Bob.Smith@Example.com".into());
        assert_eq!(contributor_binding_name(&bob, Role::Edit), "user-bob-smith-example-com-clusterrole-kubeflow-edit");
        let g = Subject::Group("ml--team".into());
        assert_eq!(contributor_binding_name(&g, Role::View), "group-ml-team-clusterrole-kubeflow-view");
    }

    #[test]
    fn namespace_names_must_be_dns_labels() {
        assert!(is_dns_label("team-a1"));
        for bad in ["", "-a", "a-", "A", "a_b", "${PROFILE_NAME}", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
