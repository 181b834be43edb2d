//! What a Profile reconciles into: snapshot tests of the rendered objects,
//! plus offline shape checks (core objects re-read as k8s-openapi types; Istio
//! policies against the fields of security.istio.io/v1beta1).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kf_tenancy::render::{RenderConfig, render};
use kf_tenancy::{Profile, Role, Subject};
use serde_json::Value;

fn corpus(name: &str) -> Profile {
    let path = format!("{}/../../shared/corpus/profiles/{name}", env!("CARGO_MANIFEST_DIR"));
    Profile::from_value(serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()).unwrap()
}

fn team_profile() -> Profile {
    Profile::from_value(serde_json::json!({
        "apiVersion": "kubeflow.org/v1", "kind": "Profile",
        "metadata": {"name": "team-a", "uid": "0b6a6c1e-1111-4222-8333-944455556666", "labels": {"cost-center": "ml"}},
        "spec": {
            "owner": {"kind": "User", "name": "alice@example.com"},
            "resourceQuotaSpec": {"hard": {"cpu": "8", "memory": "32Gi", "requests.nvidia.com/gpu": 2}},
        },
    }))
    .unwrap()
}

/// Compares with tests/snapshots/NAME.yaml; KF_UPDATE_SNAPSHOTS=1 rewrites it.
fn assert_snapshot(name: &str, objects: &[Value]) {
    let path = format!("{}/tests/snapshots/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let rendered = serde_saphyr::to_string_multiple(objects).unwrap();
    if std::env::var_os("KF_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let expected: Vec<Value> = serde_saphyr::from_multiple(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(objects, expected.as_slice(), "rendering changed; review and rerun with KF_UPDATE_SNAPSHOTS=1");
}

/// Core objects must read back as their k8s-openapi type and write out the same.
fn assert_core_shapes(objects: &[Value]) {
    for object in objects {
        let kind = object["kind"].as_str().unwrap();
        let mut reread = match kind {
            "Namespace" => serde_json::to_value(serde_json::from_value::<Namespace>(object.clone()).unwrap()).unwrap(),
            "ServiceAccount" => {
                serde_json::to_value(serde_json::from_value::<ServiceAccount>(object.clone()).unwrap()).unwrap()
            }
            "RoleBinding" => {
                serde_json::to_value(serde_json::from_value::<RoleBinding>(object.clone()).unwrap()).unwrap()
            }
            "ResourceQuota" => {
                serde_json::to_value(serde_json::from_value::<ResourceQuota>(object.clone()).unwrap()).unwrap()
            }
            "AuthorizationPolicy" => {
                assert_istio_policy(object);
                continue;
            }
            other => panic!("unexpected kind {other}"),
        };
        // k8s-openapi leaves apiVersion/kind to the client
        reread["apiVersion"] = object["apiVersion"].clone();
        reread["kind"] = object["kind"].clone();
        assert_eq!(&reread, object, "{kind} does not have the API's shape");
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn assert_istio_policy(policy: &Value) {
    assert_eq!(policy["apiVersion"], "security.istio.io/v1beta1");
    assert!(keys(&policy["spec"]).iter().all(|k| ["action", "rules", "selector"].contains(k)));
    for rule in policy["spec"]["rules"].as_array().unwrap() {
        assert!(keys(rule).iter().all(|k| ["from", "to", "when"].contains(k)), "{rule}");
        for condition in rule.get("when").and_then(Value::as_array).into_iter().flatten() {
            assert!(condition["key"].is_string() && condition["values"].is_array(), "{condition}");
        }
    }
}

#[test]
fn a_profile_with_quota_and_contributors() {
    let contributors =
        vec![(Subject::User("bob@example.com".into()), Role::Edit), (Subject::Group("ml-readers".into()), Role::View)];
    let objects = render(&team_profile(), &contributors, &RenderConfig::default()).unwrap();
    let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ServiceAccount",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "ResourceQuota",
            "AuthorizationPolicy",
            "RoleBinding",
            "AuthorizationPolicy",
            "RoleBinding",
        ]
    );
    let ns = &objects[0];
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(ns["metadata"]["labels"]["cost-center"], "ml", "profile labels reach the namespace");
    assert_eq!(ns["metadata"]["annotations"]["owner"], "alice@example.com");
    assert_eq!(ns["metadata"]["ownerReferences"][0]["uid"], "0b6a6c1e-1111-4222-8333-944455556666");
    assert_eq!(objects[6]["spec"]["hard"]["requests.nvidia.com/gpu"], "2");
    assert_core_shapes(&objects);
    assert_snapshot("team-a", &objects);
}

#[test]
fn an_empty_quota_renders_no_resource_quota() {
    let profile = corpus("components__profile-controller__integration__resources__user-profile.yaml");
    let objects = render(&profile, &[], &RenderConfig::default()).unwrap();
    assert!(objects.iter().all(|o| o["kind"] != "ResourceQuota"));
    assert!(
        objects.iter().all(|o| o["metadata"].get("ownerReferences").is_none()),
        "without the Profile's uid there can be no owner reference"
    );
    assert_core_shapes(&objects);
    assert_snapshot("kubeflow-user", &objects);
}

#[test]
fn the_identity_header_and_prefix_are_configurable() {
    let config = RenderConfig {
        user_header: "x-goog-authenticated-user-email".into(),
        user_prefix: "accounts.google.com:".into(),
        ..RenderConfig::default()
    };
    let objects = render(&team_profile(), &[], &config).unwrap();
    let policy = objects.iter().find(|o| o["kind"] == "AuthorizationPolicy").unwrap();
    let when = &policy["spec"]["rules"][0]["when"][0];
    assert_eq!(when["key"], "request.headers[x-goog-authenticated-user-email]");
    assert_eq!(when["values"][0], "accounts.google.com:alice@example.com");
}

#[test]
fn placeholder_names_cannot_become_namespaces() {
    let profile = corpus("components__profile-controller__integration__resources__profile-simple.yaml");
    let err = render(&profile, &[], &RenderConfig::default()).unwrap_err();
    assert!(err.to_string().starts_with("metadata.name:"), "{err}");
}

/// The typed Profile models every field of the upstream CRD with the CRD's
/// type: the schema derived from our types is compared, property by property,
/// with ../shared/corpus/profiles/schema.
#[test]
fn the_profile_type_matches_the_crd_schema() {
    let crd_path =
        format!("{}/../../shared/corpus/profiles/schema/kubeflow.org_profiles.yaml", env!("CARGO_MANIFEST_DIR"));
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(crd_path).unwrap()).unwrap();
    let ours = serde_json::to_value(schemars::schema_for!(Profile)).unwrap();
    for version in crd["spec"]["versions"].as_array().unwrap() {
        let upstream = &version["schema"]["openAPIV3Schema"];
        let mut checked = 0;
        compare(upstream, &ours, &ours, "", &mut checked);
        assert!(checked >= 15, "only {checked} properties compared");
    }
}

/// Follows `$ref` and unwraps `Option` (`anyOf [T, null]` / `type: [T, "null"]`).
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        return resolve(&root["$defs"][name], root);
    }
    if let Some(variants) = schema.get("anyOf").and_then(Value::as_array)
        && let Some(non_null) = variants.iter().find(|v| v.get("type") != Some(&Value::from("null")))
    {
        return resolve(non_null, root);
    }
    schema
}

fn type_of(schema: &Value) -> Option<String> {
    match schema.get("type")? {
        Value::String(t) => Some(t.clone()),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").map(str::to_string),
        _ => None,
    }
}

fn compare(upstream: &Value, ours: &Value, root: &Value, path: &str, checked: &mut usize) {
    let ours = resolve(ours, root);
    if let (Some(expected), Some(found)) = (type_of(upstream), type_of(ours)) {
        assert_eq!(expected, found, "{path}: CRD type {expected}, ours {found}");
    }
    if upstream.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return; // free-form in the CRD; ours keeps it as data
    }
    if ours == &Value::Bool(true) || (type_of(ours).is_none() && ours.get("properties").is_none()) {
        *checked += 1;
        return; // ours keeps this Kubernetes sub-object whole, as data
    }
    if let Some(properties) = upstream.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let here = format!("{path}.{name}");
            let theirs = ours.get("properties").and_then(|p| p.get(name));
            let Some(theirs) = theirs else {
                // metadata is ObjectMeta upstream: ours models part and keeps the rest
                panic!("{here}: the CRD defines it, the typed Profile does not model it");
            };
            *checked += 1;
            compare(child, theirs, root, &here, checked);
        }
    }
    if let Some(items) = upstream.get("items") {
        compare(
            items,
            ours.get("items").unwrap_or_else(|| panic!("{path}: ours is not a list")),
            root,
            &format!("{path}[]"),
            checked,
        );
    }
}
