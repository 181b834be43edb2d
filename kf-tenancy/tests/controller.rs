//! The Profile controller's conversation with the API server, against kube's
//! mock service: each test scripts a fake API server that asserts every
//! request's method, path and query, and body, in order, and then that no
//! further request came. What to apply is the pure planner's business (unit
//! tests in `controller::plan`); here only the requests are checked.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kf_tenancy::controller::{self, Context, ControllerConfig, FINALIZER, MANAGED_BY_LABEL, MANAGER};
use kf_tenancy::render::RenderConfig;
use kf_tenancy::{Error, MemoryPolicyStore, PolicyStore, Profile, Role, Subject};
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tower_test::mock;

const UID: &str = "5d1e3c9a-7b2f-4c61-9e0d-2a8b6f4c1d70";
const NS: &str = "kubeflow-user";
const APPLY: &str = "force=true&fieldManager=kf-tenancy";
const BOB_BINDING: &str = "user-bob-example-com-clusterrole-kubeflow-edit";

/// The corpus profile, as the API server would send it: with a uid.
fn corpus_profile() -> Value {
    let path = format!(
        "{}/../../shared/corpus/profiles/components__profile-controller__integration__resources__user-profile.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["metadata"]["uid"] = json!(UID);
    doc["metadata"]["resourceVersion"] = json!("100");
    doc
}

fn with_finalizer(mut doc: Value) -> Value {
    doc["metadata"]["finalizers"] = json!([FINALIZER]);
    doc
}

fn dynamic(doc: &Value) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(doc.clone()).unwrap())
}

fn bob() -> (Subject, Role) {
    (Subject::User("bob@example.com".into()), Role::Edit)
}

/// What the planner wants for the corpus profile with bob as editor.
fn desired(contributors: &[(Subject, Role)]) -> Vec<Value> {
    let profile = Profile::from_value(corpus_profile()).unwrap();
    controller::desired_children(&profile, contributors, &RenderConfig::default()).unwrap()
}

/// One expected request and the fake server's answer.
struct Exchange {
    method: &'static str,
    path: String,
    body: Option<Value>,
    status: StatusCode,
    response: Value,
}

fn exchange(method: &'static str, path: impl Into<String>, body: Option<Value>, response: Value) -> Exchange {
    Exchange { method, path: path.into(), body, status: StatusCode::OK, response }
}

fn failing(method: &'static str, path: impl Into<String>, status: StatusCode, reason: &str) -> Exchange {
    let response = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("scripted {reason}"), "reason": reason, "code": status.as_u16()});
    Exchange { method, path: path.into(), body: None, status, response }
}

fn status_path(kind_path: &str, name: &str) -> String {
    format!("{kind_path}/{name}")
}

fn child_path(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap();
    let name = object["metadata"]["name"].as_str().unwrap();
    let base = match kind {
        "Namespace" => return format!("/api/v1/namespaces/{name}"),
        "ServiceAccount" => format!("/api/v1/namespaces/{NS}/serviceaccounts"),
        "RoleBinding" => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings"),
        "ResourceQuota" => format!("/api/v1/namespaces/{NS}/resourcequotas"),
        "AuthorizationPolicy" => format!("/apis/security.istio.io/v1/namespaces/{NS}/authorizationpolicies"),
        other => panic!("unexpected kind {other}"),
    };
    status_path(&base, name)
}

/// The server-side apply of `object`, answered with the object itself.
fn apply(object: &Value) -> Exchange {
    exchange("PATCH", format!("{}?&{APPLY}", child_path(object)), Some(object.clone()), object.clone())
}

/// A delete, conditional on the uid observed.
fn delete(object: &Value) -> Exchange {
    let body = json!({"preconditions": {"uid": object["metadata"]["uid"]}});
    exchange("DELETE", format!("{}?", child_path(object)), Some(body), json!({"kind": "Status", "status": "Success"}))
}

const SELECTOR: &str = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkf-tenancy";

/// The reads of one reconcile: the namespace, then our objects of each kind.
fn observe(namespace: Option<&Value>, children: &[Value]) -> Vec<Exchange> {
    let Some(namespace) = namespace else {
        return vec![failing("GET", format!("/api/v1/namespaces/{NS}"), StatusCode::NOT_FOUND, "NotFound")];
    };
    let mut reads = vec![exchange("GET", format!("/api/v1/namespaces/{NS}"), None, namespace.clone())];
    for (kind, path) in [
        ("ServiceAccount", format!("/api/v1/namespaces/{NS}/serviceaccounts")),
        ("RoleBinding", format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings")),
        ("ResourceQuota", format!("/api/v1/namespaces/{NS}/resourcequotas")),
        ("AuthorizationPolicy", format!("/apis/security.istio.io/v1/namespaces/{NS}/authorizationpolicies")),
    ] {
        // list items come without apiVersion and kind, as from a real server
        let items: Vec<Value> = children
            .iter()
            .filter(|c| c["kind"] == kind)
            .map(|c| {
                let mut item = c.clone();
                let map = item.as_object_mut().unwrap();
                map.remove("apiVersion");
                map.remove("kind");
                item
            })
            .collect();
        let list = json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": "7"},
                          "items": items});
        reads.push(exchange("GET", format!("{path}?&{SELECTOR}"), None, list));
    }
    reads
}

fn status_write(status: Value) -> Exchange {
    let body = json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": NS}, "status": status});
    let mut response = with_finalizer(corpus_profile());
    response["status"] = body["status"].clone();
    exchange("PATCH", format!("/apis/kubeflow.org/v1/profiles/{NS}/status?&{APPLY}"), Some(body), response)
}

fn ready() -> Value {
    json!({"conditions": [{"type": "Ready", "status": "True",
        "message": format!("namespace {NS:?} and its objects match the Profile")}]})
}

/// As the API server would hold `object` after applying it.
fn stored(object: &Value) -> Value {
    let mut object = object.clone();
    object["metadata"]["uid"] = json!(format!("uid-{}", object["metadata"]["name"].as_str().unwrap()));
    object["metadata"]["resourceVersion"] = json!("8");
    object["metadata"]["managedFields"] = json!([{"manager": MANAGER, "operation": "Apply"}]);
    if object["kind"] == "Namespace" {
        object["status"] = json!({"phase": "Active"});
        object["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    object
}

/// Runs `reconcile` against a fake server playing `script`; returns the
/// reconcile's result once the server has checked that nothing else came.
/// The policy store holds `contributors` for the profile's namespace.
async fn converse(
    profile: &Value,
    contributors: &[(Subject, Role)],
    script: Vec<Exchange>,
) -> kf_tenancy::Result<Action> {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        for (i, expected) in script.into_iter().enumerate() {
            let (request, respond) = handle.next_request().await.unwrap_or_else(|| panic!("request {i} never came"));
            let (parts, body) = request.into_parts();
            let at = format!("request {i} ({} {})", parts.method, parts.uri);
            assert_eq!(parts.method.as_str(), expected.method, "{at}");
            assert_eq!(parts.uri.path_and_query().map(|p| p.as_str()), Some(expected.path.as_str()), "{at}");
            let bytes = body.collect_bytes().await.unwrap();
            let body: Option<Value> = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
            assert_eq!(body, expected.body, "{at}: body");
            if expected.method == "PATCH" {
                let content_type = parts.headers.get(http::header::CONTENT_TYPE).unwrap();
                let json_patch = !expected.path.contains("fieldManager");
                let wanted = if json_patch { "application/json-patch+json" } else { "application/apply-patch+yaml" };
                assert_eq!(content_type, wanted, "{at}");
            }
            let response = Response::builder()
                .status(expected.status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&expected.response).unwrap()))
                .unwrap();
            respond.send_response(response);
        }
        let extra = handle.next_request().await.map(|(r, _)| format!("{} {}", r.method(), r.uri()));
        assert_eq!(extra, None, "no request beyond the script");
    });
    let client = kube::Client::new(service, "default");
    let store = Arc::new(MemoryPolicyStore::new());
    store.put_namespace(NS, &Subject::User("user".into())).await.unwrap();
    for (subject, role) in contributors {
        store.put_binding(NS, subject, *role).await.unwrap();
    }
    let config = ControllerConfig { retry_base: Duration::from_secs(2), ..ControllerConfig::default() };
    let ctx = Arc::new(Context::new(client, config).with_contributors(store));
    let result = controller::reconcile(dynamic(profile), ctx).await;
    // the reconcile dropped the context and with it the client, so the
    // server's "nothing more" check ends
    server.await.unwrap();
    result
}

#[tokio::test]
async fn first_reconcile_adds_the_finalizer_then_applies_every_child_and_the_status() {
    // pass 1: no finalizer yet → only the finalizer is added
    let profile = corpus_profile();
    let finalizer_patch = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
    ]);
    let script = vec![exchange(
        "PATCH",
        format!("/apis/kubeflow.org/v1/profiles/{NS}?"),
        Some(finalizer_patch),
        with_finalizer(profile.clone()),
    )];
    let result = converse(&profile, &[bob()], script).await;
    assert_eq!(result.unwrap(), Action::await_change());

    // pass 2: the watch brings the Profile back with its finalizer
    let children = desired(&[bob()]);
    assert_eq!(children.len(), 9, "namespace, 2 accounts, 3+1 bindings, 1+1 policies");
    // the namespace body, spelled out: labels, owner reference to the Profile
    assert_eq!(
        children[0],
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NS, "annotations": {"owner": "user"},
                "labels": {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled",
                    "katib.kubeflow.org/metrics-collector-injection": "enabled",
                    "pipelines.kubeflow.org/enabled": "true", "pod-security.kubernetes.io/enforce": "restricted",
                    "serving.kubeflow.org/inferenceservice": "enabled", MANAGED_BY_LABEL: MANAGER},
                "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "Profile", "name": NS, "uid": UID,
                    "controller": true, "blockOwnerDeletion": true}]}})
    );
    let mut script = observe(None, &[]);
    script.extend(children.iter().map(apply));
    script.push(status_write(ready()));
    let result = converse(&with_finalizer(corpus_profile()), &[bob()], script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
}

/// The Profile and cluster after a successful first reconcile.
fn converged() -> (Value, Vec<Value>) {
    let mut profile = with_finalizer(corpus_profile());
    profile["status"] = ready();
    (profile, desired(&[bob()]).iter().map(stored).collect())
}

#[tokio::test]
async fn a_second_reconcile_that_changes_nothing_only_reads() {
    let (profile, cluster) = converged();
    let script = observe(Some(&cluster[0]), &cluster[1..]);
    let result = converse(&profile, &[bob()], script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_child_whose_status_changed_is_left_alone_and_a_drifted_one_is_reapplied() {
    let (profile, mut cluster) = converged();
    // the namespace controller wrote to its status, nothing else
    cluster[0]["status"] = json!({"phase": "Active", "conditions": [{"type": "NamespaceDeletionDiscoveryFailure"}]});
    // someone widened the editors' binding
    let drifted = cluster.iter_mut().find(|o| o["kind"] == "RoleBinding" && o["metadata"]["name"] == "default-editor");
    drifted.unwrap()["roleRef"]["name"] = json!("cluster-admin");
    let wanted =
        desired(&[bob()]).into_iter().find(|o| o["kind"] == "RoleBinding" && o["metadata"]["name"] == "default-editor");
    let mut script = observe(Some(&cluster[0]), &cluster[1..]);
    script.push(apply(&wanted.unwrap()));
    let result = converse(&profile, &[bob()], script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_removed_contributor_loses_binding_and_policy_but_foreign_objects_stay() {
    let (profile, mut cluster) = converged();
    // labelled as ours but owned by another Profile: never deleted
    let mut foreign = stored(&desired(&[bob()])[3]);
    foreign["metadata"]["name"] = json!("someone-elses");
    foreign["metadata"]["ownerReferences"][0]["uid"] = json!("another-uid");
    cluster.push(foreign);
    let gone: Vec<Value> = cluster.iter().filter(|o| o["metadata"]["name"] == BOB_BINDING).cloned().collect();
    assert_eq!(gone.len(), 2);
    let mut script = observe(Some(&cluster[0]), &cluster[1..]);
    script.extend(gone.iter().map(delete)); // RoleBinding (rbac group) before the policy (istio group)
    let result = converse(&profile, &[], script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn deletion_removes_only_our_children_then_the_finalizer() {
    let (mut profile, mut cluster) = converged();
    profile["metadata"]["deletionTimestamp"] = json!("2026-12-07T22:00:00Z");
    let mut foreign = stored(&desired(&[bob()])[1]);
    foreign["metadata"]["name"] = json!("someone-elses");
    foreign["metadata"]["ownerReferences"][0]["uid"] = json!("another-uid");
    cluster.push(foreign);
    let mut script = observe(Some(&cluster[0]), &cluster[1..]);
    // namespaced children in (group, kind, name) order, the namespace last
    let mut ours: Vec<&Value> = cluster[1..].iter().filter(|o| o["metadata"]["name"] != "someone-elses").collect();
    ours.sort_by_key(|o| {
        let group = o["apiVersion"].as_str().unwrap().rsplit_once('/').map_or("", |(g, _)| g).to_string();
        (group, o["kind"].as_str().unwrap().to_string(), o["metadata"]["name"].as_str().unwrap().to_string())
    });
    script.extend(ours.into_iter().map(delete));
    script.push(delete(&cluster[0]));
    let finalizer_patch = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]);
    script.push(exchange(
        "PATCH",
        format!("/apis/kubeflow.org/v1/profiles/{NS}?"),
        Some(finalizer_patch),
        profile.clone(),
    ));
    let result = converse(&profile, &[bob()], script).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn an_api_error_fails_the_reconcile_before_any_write_and_requeues_with_backoff() {
    let (profile, cluster) = converged();
    let mut script = observe(Some(&cluster[0]), &cluster[1..]);
    script.truncate(2); // namespace and service accounts read…
    script.push(failing(
        "GET",
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings?&{SELECTOR}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
    )); // …then the role bindings fail: nothing is written
    let result = converse(&profile, &[bob()], script).await;
    let error = result.unwrap_err();
    assert!(matches!(error, Error::Kubernetes { .. }), "{error}");
    assert!(error.to_string().contains("list RoleBinding"), "{error}");

    // a failed write ends the reconcile too: no later apply, delete or status
    let (profile, mut cluster) = converged();
    let sa = cluster.iter_mut().find(|o| o["kind"] == "ServiceAccount").unwrap();
    sa["metadata"]["ownerReferences"] = json!([]);
    let mut script = observe(Some(&cluster[0]), &cluster[1..]);
    let wanted = desired(&[bob()]).into_iter().find(|o| o["kind"] == "ServiceAccount").unwrap();
    let mut failed_apply = failing(
        "PATCH",
        format!("{}?&{APPLY}", child_path(&wanted)),
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
    );
    failed_apply.body = Some(wanted);
    script.push(failed_apply);
    let result = converse(&profile, &[bob()], script).await;
    let error = result.unwrap_err();
    assert!(error.to_string().contains("apply ServiceAccount"), "{error}");
}

#[tokio::test]
async fn the_error_policy_backs_off_per_profile_and_retries_conflicts_soon() {
    let (service, _handle) = mock::pair::<Request<Body>, Response<Body>>();
    let config = ControllerConfig {
        retry_base: Duration::from_secs(2),
        retry_max: Duration::from_secs(10),
        ..ControllerConfig::default()
    };
    let ctx = Arc::new(Context::new(kube::Client::new(service, "default"), config));
    let profile = dynamic(&corpus_profile());
    let storage = Error::Storage("down".into());
    let delays: Vec<Action> =
        (0..4).map(|_| controller::error_policy(profile.clone(), &storage, ctx.clone())).collect();
    let secs = |s| Action::requeue(Duration::from_secs(s));
    assert_eq!(delays, [secs(2), secs(4), secs(8), secs(10)]);
    let conflict = Error::Conflict { what: "apply".into() };
    assert_eq!(controller::error_policy(profile, &conflict, ctx), secs(2));
}

#[tokio::test]
async fn a_conflict_fails_the_reconcile_as_a_conflict_with_nothing_after_it() {
    let (profile, cluster) = converged();
    let mut namespace = cluster[0].clone();
    namespace["metadata"]["labels"]["istio-injection"] = json!("disabled");
    let mut script = observe(Some(&namespace), &cluster[1..]);
    let wanted = desired(&[bob()]).remove(0);
    let mut conflict = failing("PATCH", format!("/api/v1/namespaces/{NS}?&{APPLY}"), StatusCode::CONFLICT, "Conflict");
    conflict.body = Some(wanted);
    script.push(conflict);
    let result = converse(&profile, &[bob()], script).await;
    let error = result.unwrap_err();
    assert!(matches!(&error, Error::Conflict { what } if what.contains("apply Namespace")), "{error}");
}

#[tokio::test]
async fn an_invalid_profile_gets_a_condition_naming_the_field_and_costs_no_reads() {
    let mut profile = with_finalizer(corpus_profile());
    profile["spec"]["owner"]["kind"] = json!("Robot");
    let script = vec![status_write(json!({"conditions": [{"type": "Ready", "status": "False",
        "message": "spec.owner.kind: expected User, Group or ServiceAccount, found \"Robot\""}]}))];
    let result = converse(&profile, &[], script).await;
    assert_eq!(result.unwrap(), Action::await_change(), "no crash loop: wait for an edit");
}

#[tokio::test]
async fn a_namespace_someone_else_owns_is_a_condition_not_a_takeover() {
    let profile = with_finalizer(corpus_profile());
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "uid": "ns-uid"}});
    let mut script = observe(Some(&namespace), &[]);
    script.push(status_write(json!({"conditions": [{"type": "Ready", "status": "False",
        "message": format!("namespace {NS:?} exists and is not owned by this Profile; it is left alone \
                            (delete it or choose another Profile name)")}]})));
    let result = converse(&profile, &[], script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn an_unreadable_profile_gets_a_condition_without_reading_anything() {
    let mut profile = with_finalizer(corpus_profile());
    profile["spec"]["owner"]["name"] = json!(7);
    let script = vec![status_write(json!({"conditions": [{"type": "Ready", "status": "False",
        "message": "spec.owner.name: invalid type: integer `7`, expected a string"}]}))];
    let result = converse(&profile, &[], script).await;
    assert_eq!(result.unwrap(), Action::await_change());
}
