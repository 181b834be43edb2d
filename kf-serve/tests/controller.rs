//! The InferenceService reconciler's API conversation (feature
//! `controller`), against kube's mock service: every request's method,
//! path and query (field manager `kf-serve`, `force`), content type and
//! JSON body is asserted, in order, and nothing else may be asked. What
//! the reconciler decides is unit-tested in `kf_serve::controller::plan`;
//! here only what it says to the API server. InferenceServices come from
//! ../shared/corpus/kserve; `kf serve` runs ONNX, so the rollout samples'
//! `tensorflow` predictors are read as `onnx` ones (same storage URIs).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kf_serve::Error;
use kf_serve::controller::plan::{self, RenderConfig, rollout};
use kf_serve::controller::{Config, Context, FIELD_MANAGER, InMemoryRecommendations, error_policy, reconcile};
use kf_serve::kserve::InferenceService;
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tower_test::mock;

const NOW: &str = "2026-12-07T12:00:00Z";
const UID: &str = "6c1f9a52-0d3e-4b8a-9f27-5e4d3c2b1a09";
/// The query kube writes for `PatchParams::apply("kf-serve").force()`.
const APPLY: &str = "?&force=true&fieldManager=kf-serve";
const NS: &str = "team-a";

fn corpus(name: &str) -> Value {
    let path = format!("{}/../../shared/corpus/kserve/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A corpus InferenceService as the API server returns it: namespaced,
/// with a uid and a generation.
fn stored(mut isvc: Value) -> Value {
    isvc["metadata"]["namespace"] = json!(NS);
    isvc["metadata"]["uid"] = json!(UID);
    isvc["metadata"]["resourceVersion"] = json!("100");
    isvc["metadata"]["generation"] = json!(1);
    isvc
}

/// The predictor's `tensorflow` spec as an `onnx` one.
fn as_onnx(mut isvc: Value) -> Value {
    let predictor = isvc["spec"]["predictor"].as_object_mut().unwrap();
    let model = predictor.remove("tensorflow").unwrap();
    predictor.insert("onnx".into(), model);
    isvc
}

/// rollout/default.yaml: `my-model` from gs://kfserving-examples/models/tensorflow/flowers.
fn default_isvc() -> Value {
    stored(as_onnx(corpus("docs__samples__v1beta1__rollout__default.yaml")))
}

/// rollout/canary.yaml: `my-model`, flowers-2 with 10 % of the traffic.
fn canary_isvc() -> Value {
    stored(as_onnx(corpus("docs__samples__v1beta1__rollout__canary.yaml")))
}

/// The children the plan renders for `isvc` with `rolled_out` as the
/// Deployment's rolled-out storage URI.
fn children(isvc: &Value, rolled_out: Option<&str>, replicas: u32) -> Vec<Value> {
    let typed = InferenceService::from_value(isvc.clone()).unwrap();
    let predictor = typed.predictor().unwrap();
    let uri = predictor.storage_uri().unwrap();
    let plan = rollout("my-model", uri, predictor.canary_traffic_percent, rolled_out);
    plan::desired_children(&typed, &plan, Some(replicas), &RenderConfig::default()).unwrap()
}

/// What the server answers for an apply or a GET of an applied object.
fn as_stored(mut object: Value, resource_version: &str) -> Value {
    let kind = object["kind"].as_str().unwrap().to_string();
    object["metadata"]["uid"] = json!(format!("{kind}-uid"));
    object["metadata"]["resourceVersion"] = json!(resource_version);
    object["metadata"]["creationTimestamp"] = json!("2026-12-07T11:59:00Z");
    object
}

/// A stored Deployment with server defaults and `available` replicas.
fn stored_deployment(deployment: Value, available: i64) -> Value {
    let mut d = as_stored(deployment, "5");
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    d["spec"]["revisionHistoryLimit"] = json!(10);
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    d["metadata"]["generation"] = json!(1);
    d["status"] = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": available});
    d
}

fn stored_service(service: Value) -> Value {
    let mut s = as_stored(service, "6");
    s["spec"]["clusterIP"] = json!("10.96.0.12");
    s["spec"]["type"] = json!("ClusterIP");
    s["spec"]["sessionAffinity"] = json!("None");
    s
}

fn not_found(what: &str) -> (u16, Value) {
    status_reply(404, "NotFound", &format!("{what} not found"))
}

fn status_reply(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// One exchange: the request the reconciler must send and the reply.
struct Call {
    method: &'static str,
    uri: String,
    body: Option<Value>,
    reply: (u16, Value),
}

fn get(uri: impl Into<String>, reply: (u16, Value)) -> Call {
    Call { method: "GET", uri: uri.into(), body: None, reply }
}

/// A server-side apply; the server echoes the object as stored.
fn apply(path: impl Into<String>, body: Value) -> Call {
    let reply = (200, as_stored(body.clone(), "2"));
    Call { method: "PATCH", uri: format!("{}{APPLY}", path.into()), body: Some(body), reply }
}

fn failing(mut call: Call, reply: (u16, Value)) -> Call {
    call.reply = reply;
    call
}

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// Answers the script in order, asserting each request, then asserts that
/// the client asks nothing more.
async fn serve(mut handle: Handle, script: Vec<Call>) {
    for (i, call) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let (request, respond) = next
            .unwrap_or_else(|_| panic!("request {i} ({} {}) never came", call.method, call.uri))
            .unwrap_or_else(|| panic!("the client hung up before request {i} ({} {})", call.method, call.uri));
        assert_eq!(request.method().as_str(), call.method, "request {i}: {}", request.uri());
        assert_eq!(request.uri().to_string(), call.uri, "request {i}");
        let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        match call.method {
            "PATCH" => assert_eq!(content_type.as_deref(), Some("application/apply-patch+yaml"), "request {i}: SSA"),
            "DELETE" => assert_eq!(content_type.as_deref(), Some("application/json"), "request {i}"),
            _ => {}
        }
        let bytes = request.into_body().collect_bytes().await.unwrap();
        match &call.body {
            Some(expected) => {
                let sent: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(&sent, expected, "request {i} ({} {}) body", call.method, call.uri);
            }
            None => assert!(bytes.is_empty(), "request {i}: a GET has no body"),
        }
        let (code, reply) = call.reply;
        let response = Response::builder().status(code).body(Body::from(serde_json::to_vec(&reply).unwrap()));
        respond.send_response(response.unwrap());
    }
    let more = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    if let Ok(Some((request, _))) = more {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

/// One reconcile against `script`: its result and, when it failed, the
/// error policy's first two requeues.
struct Outcome {
    result: Result<Action, Error>,
    retries: Vec<Action>,
}

async fn reconcile_with(isvc: &Value, config: Config, script: Vec<Call>) -> Outcome {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let ctx = Arc::new(Context::new(client, config).with_clock(|| NOW.to_string()));
    let server = tokio::spawn(serve(handle, script));
    let object = Arc::new(serde_json::from_value::<DynamicObject>(isvc.clone()).unwrap());
    let result = reconcile(object.clone(), ctx.clone()).await;
    let retries = match &result {
        Ok(_) => Vec::new(),
        Err(err) => (0..2).map(|_| error_policy(object.clone(), err, ctx.clone())).collect(),
    };
    // The context holds the last client: dropping it hangs up, which the
    // server sees after its script (or an extra request, which fails it).
    drop(ctx);
    server.await.unwrap();
    Outcome { result, retries }
}

fn deployment_path() -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/my-model-predictor")
}

fn service_path() -> String {
    format!("/api/v1/namespaces/{NS}/services/my-model-predictor")
}

fn traffic_path() -> String {
    format!("/api/v1/namespaces/{NS}/configmaps/my-model-predictor-traffic")
}

fn status_path() -> String {
    format!("/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices/my-model/status")
}

/// The three reads of every reconcile of a servable InferenceService.
fn reads(deployment: Option<Value>, service: Option<Value>, traffic: Option<Value>) -> Vec<Call> {
    let reply = |object: Option<Value>, what: &str| object.map_or_else(|| not_found(what), |o| (200, o));
    vec![
        get(deployment_path(), reply(deployment, "deployments.apps \"my-model-predictor\"")),
        get(service_path(), reply(service, "services \"my-model-predictor\"")),
        get(traffic_path(), reply(traffic, "configmaps \"my-model-predictor-traffic\"")),
    ]
}

fn status_body(status: Value) -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "my-model", "namespace": NS},
        "status": status,
    })
}

const URL: &str = "http://my-model-predictor.team-a.svc.cluster.local";

fn revision(uri: &str) -> String {
    rollout("my-model", uri, None, None).stable.name
}

const FLOWERS: &str = "gs://kfserving-examples/models/tensorflow/flowers";
const FLOWERS_2: &str = "gs://kfserving-examples/models/tensorflow/flowers-2";

fn not_ready(type_: &str, message: &str) -> Value {
    json!({"type": type_, "status": "False", "reason": "DeploymentUnavailable", "message": message,
           "lastTransitionTime": NOW})
}

/// The status of `my-model` serving FLOWERS alone, with `conditions`.
fn single_revision_status(conditions: Value) -> Value {
    let rev = revision(FLOWERS);
    json!({
        "url": URL, "address": {"url": URL}, "deploymentMode": "RawDeployment",
        "components": {"predictor": {
            "url": URL, "latestCreatedRevision": rev, "latestRolledoutRevision": rev,
            "traffic": [{"revisionName": rev, "percent": 100, "latestRevision": true}],
        }},
        "conditions": conditions,
        "observedGeneration": 1,
    })
}

fn unavailable_conditions(message: &str) -> Value {
    json!([not_ready("PredictorReady", message), not_ready("Ready", message)])
}

fn with_status(mut isvc: Value, status: Value) -> Value {
    isvc["status"] = status;
    isvc
}

fn kubernetes_status(result: &Result<Action, Error>) -> Option<u16> {
    match result {
        Err(Error::Kubernetes { status, .. }) => *status,
        other => panic!("expected a Kubernetes error, got {other:?}"),
    }
}

#[tokio::test]
async fn first_reconcile_applies_deployment_service_then_status() {
    let labels = json!({
        "serving.kserve.io/inferenceservice": "my-model", "component": "predictor",
        "app.kubernetes.io/managed-by": "kf-serve",
    });
    let owner = json!([{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": "my-model",
                        "uid": UID, "controller": true, "blockOwnerDeletion": true}]);
    let selector = json!({"serving.kserve.io/inferenceservice": "my-model", "component": "predictor"});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "my-model-predictor", "namespace": NS, "labels": labels, "ownerReferences": owner,
                     "annotations": {"serving.kf-rs.dev/rolled-out-storage-uri": FLOWERS}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "initContainers": [{
                        "name": "storage-initializer", "image": "kserve/storage-initializer:v0.15.2",
                        "args": [FLOWERS, "/mnt/models/my-model/1"],
                        "volumeMounts": [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}],
                    }],
                    "containers": [{
                        "name": "kserve-container", "image": "ghcr.io/kf-rs/kf:latest", "command": ["kf"],
                        "args": ["serve", "--model-repository", "/mnt/models", "--addr", "0.0.0.0:8080"],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8080}},
                        "volumeMounts": [{"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": true}],
                    }],
                    "volumes": [{"name": "kserve-provision-location", "emptyDir": {}}],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "my-model-predictor", "namespace": NS, "labels": labels, "ownerReferences": owner},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    });
    // Plus the digest of what is applied, on each.
    let (mut deployment, mut service) = (deployment, service);
    for child in [&mut deployment, &mut service] {
        let digest = plan::digest(child);
        child["metadata"]["annotations"]["serving.kf-rs.dev/applied-digest"] = json!(digest);
    }
    let message = "Deployment \"my-model-predictor\" does not exist yet";
    let mut script = reads(None, None, None);
    script.push(apply(deployment_path(), deployment));
    script.push(apply(service_path(), service));
    script.push(apply(status_path(), status_body(single_revision_status(unavailable_conditions(message)))));
    let outcome = reconcile_with(&default_isvc(), Config::default(), script).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    assert_eq!(FIELD_MANAGER, "kf-serve");
}

#[tokio::test]
async fn a_second_reconcile_that_changes_nothing_writes_nothing() {
    let message = "Deployment \"my-model-predictor\" has no available replica";
    let isvc = with_status(default_isvc(), single_revision_status(unavailable_conditions(message)));
    let kids = children(&isvc, None, 1);
    let script = reads(Some(stored_deployment(kids[0].clone(), 0)), Some(stored_service(kids[1].clone())), None);
    let outcome = reconcile_with(&isvc, Config::default(), script).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_deployment_that_became_available_updates_only_the_status() {
    let old = "Deployment \"my-model-predictor\" does not exist yet";
    let isvc = with_status(default_isvc(), single_revision_status(unavailable_conditions(old)));
    let kids = children(&isvc, None, 1);
    let mut script = reads(Some(stored_deployment(kids[0].clone(), 1)), Some(stored_service(kids[1].clone())), None);
    let ready = json!([
        {"type": "PredictorReady", "status": "True", "lastTransitionTime": NOW},
        {"type": "Ready", "status": "True", "lastTransitionTime": NOW},
    ]);
    let mut status = single_revision_status(ready);
    // The rollout is complete: the revision is the ready one now.
    status["components"]["predictor"]["latestReadyRevision"] = json!(revision(FLOWERS));
    script.push(apply(status_path(), status_body(status)));
    let outcome = reconcile_with(&isvc, Config::default(), script).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// No finalizer of ours: the children go with the InferenceService through
/// their owner references, so a deleting one is not even read, let alone
/// anything deleted — whoever else's finalizer holds it.
#[tokio::test]
async fn deletion_issues_no_requests_at_all() {
    let mut isvc = with_status(default_isvc(), single_revision_status(json!([])));
    isvc["metadata"]["deletionTimestamp"] = json!(NOW);
    isvc["metadata"]["finalizers"] = json!(["inferenceservice.finalizers"]);
    let outcome = reconcile_with(&isvc, Config::default(), vec![]).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// The Deployment apply fails: the Service is not applied, no status is
/// written, the reconcile fails and is requeued with growing backoff.
#[tokio::test]
async fn an_api_error_stops_the_reconcile_and_requeues_with_backoff() {
    let isvc = default_isvc();
    let kids = children(&isvc, None, 1);
    let mut script = reads(None, None, None);
    script.push(failing(
        apply(deployment_path(), kids[0].clone()),
        status_reply(500, "InternalError", "etcdserver: request timed out"),
    ));
    let outcome = reconcile_with(&isvc, Config::default(), script).await;
    assert_eq!(kubernetes_status(&outcome.result), Some(500));
    let message = outcome.result.unwrap_err().to_string();
    assert!(message.starts_with("apply Deployment team-a/my-model-predictor: etcdserver"), "{message}");
    assert_eq!(outcome.retries, [Action::requeue(Duration::from_secs(5)), Action::requeue(Duration::from_secs(10))]);
}

#[tokio::test]
async fn a_conflict_on_apply_is_an_error_and_no_status_is_written() {
    let isvc = default_isvc();
    let kids = children(&isvc, None, 1);
    let mut script = reads(Some(stored_deployment(kids[0].clone(), 1)), None, None);
    script.push(failing(
        apply(service_path(), kids[1].clone()),
        status_reply(409, "Conflict", "Operation cannot be fulfilled on services \"my-model-predictor\""),
    ));
    let outcome = reconcile_with(&isvc, Config::default(), script).await;
    assert_eq!(kubernetes_status(&outcome.result), Some(409));
    assert_eq!(outcome.retries[0], Action::requeue(Duration::from_secs(5)));
}

/// A failed read is an error before anything is written.
#[tokio::test]
async fn a_failed_read_writes_nothing() {
    let script = vec![get(deployment_path(), status_reply(403, "Forbidden", "deployments.apps is forbidden"))];
    let outcome = reconcile_with(&default_isvc(), Config::default(), script).await;
    assert_eq!(kubernetes_status(&outcome.result), Some(403));
}

/// A Service of the predictor's name that another owner holds is left
/// alone: nothing applied, a condition that says so, a retry with backoff.
#[tokio::test]
async fn a_child_name_held_by_a_foreign_object_is_a_condition_not_a_takeover() {
    let isvc = default_isvc();
    let kids = children(&isvc, None, 1);
    let mut foreign = stored_service(kids[1].clone());
    foreign["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "another-uid", "controller": true}]);
    let mut script = reads(None, Some(foreign), None);
    script.push(apply(
        status_path(),
        status_body(json!({
            "conditions": [{"type": "Ready", "status": "False", "reason": "ChildNotOwned",
                "message": "Service \"my-model-predictor\": exists and is not owned by this InferenceService; it is left alone",
                "lastTransitionTime": NOW}],
            "observedGeneration": 1,
        })),
    ));
    let outcome = reconcile_with(&isvc, Config::default(), script).await;
    assert_eq!(outcome.result.unwrap(), Action::requeue(Duration::from_secs(5)));
}

/// canary.yaml over a Deployment rolled out from default.yaml: the traffic
/// ConfigMap first, then the Deployment serving both revisions, then the
/// status with the 90/10 split. The Service does not change.
#[tokio::test]
async fn a_canary_applies_the_traffic_config_map_and_the_two_revision_deployment() {
    let before = children(&default_isvc(), None, 1);
    let isvc = with_status(
        canary_isvc(),
        single_revision_status(json!([
            {"type": "PredictorReady", "status": "True", "lastTransitionTime": "2026-12-07T11:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T11:00:00Z"},
        ])),
    );
    let kids = children(&isvc, Some(FLOWERS), 1);
    assert_eq!(
        kids.iter().map(|k| k["kind"].as_str().unwrap()).collect::<Vec<_>>(),
        ["ConfigMap", "Deployment", "Service"]
    );
    let traffic = json!({
        "model": "my-model",
        "stable": {"version": "1", "revision": revision(FLOWERS), "storageUri": FLOWERS},
        "canary": {"version": "2", "revision": revision(FLOWERS_2), "storageUri": FLOWERS_2},
        "canaryPercent": 10,
    });
    let sent: Value = serde_json::from_str(kids[0]["data"]["traffic.json"].as_str().unwrap()).unwrap();
    assert_eq!(sent, traffic);
    assert_eq!(
        kids[1]["spec"]["template"]["metadata"]["annotations"],
        json!({"serving.kf-rs.dev/canary-traffic-percent": "10"})
    );
    let mut script =
        reads(Some(stored_deployment(before[0].clone(), 1)), Some(stored_service(before[1].clone())), None);
    script.push(apply(traffic_path(), kids[0].clone()));
    script.push(apply(deployment_path(), kids[1].clone()));
    let mut status = single_revision_status(json!([
        {"type": "PredictorReady", "status": "True", "lastTransitionTime": "2026-12-07T11:00:00Z"},
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T11:00:00Z"},
    ]));
    status["components"]["predictor"]["latestCreatedRevision"] = json!(revision(FLOWERS_2));
    status["components"]["predictor"]["traffic"] = json!([
        {"tag": "prev", "revisionName": revision(FLOWERS), "percent": 90, "latestRevision": false},
        {"tag": "latest", "revisionName": revision(FLOWERS_2), "percent": 10, "latestRevision": true},
    ]);
    script.push(apply(status_path(), status_body(status)));
    let outcome = reconcile_with(&isvc, Config::default(), script).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// Promotion (the percent removed): the Deployment rolls out flowers-2
/// alone and our traffic ConfigMap is deleted, on the uid observed.
#[tokio::test]
async fn promoting_the_canary_deletes_only_our_traffic_config_map() {
    let during = children(&canary_isvc(), Some(FLOWERS), 1);
    let mut promoted = canary_isvc();
    promoted["spec"]["predictor"].as_object_mut().unwrap().remove("canaryTrafficPercent");
    let kids = children(&promoted, Some(FLOWERS), 1);
    assert_eq!(kids.len(), 2);
    let rev = revision(FLOWERS_2);
    let ready = json!([
        {"type": "PredictorReady", "status": "True", "lastTransitionTime": NOW},
        {"type": "Ready", "status": "True", "lastTransitionTime": NOW},
    ]);
    let status = json!({
        "url": URL, "address": {"url": URL}, "deploymentMode": "RawDeployment",
        "components": {"predictor": {"url": URL, "latestCreatedRevision": rev, "latestRolledoutRevision": rev,
                                     "traffic": [{"revisionName": rev, "percent": 100, "latestRevision": true}]}},
        "conditions": ready, "observedGeneration": 1,
    });
    let isvc = with_status(promoted, json!({"conditions": ready}));
    let mut script = reads(
        Some(stored_deployment(during[1].clone(), 1)),
        Some(stored_service(during[2].clone())),
        Some(as_stored(during[0].clone(), "4")),
    );
    script.push(apply(deployment_path(), kids[0].clone()));
    script.push(Call {
        method: "DELETE",
        uri: format!("{}?", traffic_path()),
        body: Some(json!({"preconditions": {"uid": "ConfigMap-uid"}})),
        reply: (200, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})),
    });
    script.push(apply(status_path(), status_body(status)));
    let outcome = reconcile_with(&isvc, Config::default(), script).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// autoscale.yaml asks for the KPA (a target annotation): the Deployment
/// gets the recommended replicas and the service is looked at again after
/// the autoscaling interval.
#[tokio::test]
async fn an_autoscaled_service_gets_the_recommended_replicas() {
    let isvc = stored(as_onnx(corpus("docs__samples__autoscaling__autoscale.yaml")));
    let typed = InferenceService::from_value(isvc.clone()).unwrap();
    let uri = typed.predictor().unwrap().storage_uri().unwrap().to_string();
    let plan = rollout("flowers-sample", &uri, None, None);
    let kids = plan::desired_children(&typed, &plan, Some(3), &RenderConfig::default()).unwrap();
    assert_eq!(kids[0]["spec"]["replicas"], 3);
    let recommendations = Arc::new(InMemoryRecommendations::default());
    recommendations.set(NS, "flowers-sample", 3);
    let config = Config { recommendations, autoscale_interval: Duration::from_secs(15), ..Config::default() };
    let path = |kind: &str, name: &str| format!("/api/v1/namespaces/{NS}/{kind}/{name}");
    let deployments = format!("/apis/apps/v1/namespaces/{NS}/deployments/flowers-sample-predictor");
    let kids_service = stored_service(kids[1].clone());
    let mut stale = stored_deployment(kids[0].clone(), 1);
    stale["spec"]["replicas"] = json!(1);
    let rev = plan.stable.name;
    let url = "http://flowers-sample-predictor.team-a.svc.cluster.local";
    let ready = json!([
        {"type": "PredictorReady", "status": "True", "lastTransitionTime": NOW},
        {"type": "Ready", "status": "True", "lastTransitionTime": NOW},
    ]);
    let status = json!({
        "url": url, "address": {"url": url}, "deploymentMode": "RawDeployment",
        "components": {"predictor": {"url": url, "latestCreatedRevision": rev, "latestRolledoutRevision": rev,
                                     "traffic": [{"revisionName": rev, "percent": 100, "latestRevision": true}]}},
        "conditions": ready, "observedGeneration": 1,
    });
    let script = vec![
        get(deployments.clone(), (200, stale)),
        get(path("services", "flowers-sample-predictor"), (200, kids_service)),
        get(path("configmaps", "flowers-sample-predictor-traffic"), not_found("configmaps")),
        apply(deployments, kids[0].clone()),
        apply(
            format!("/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices/flowers-sample/status"),
            json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                   "metadata": {"name": "flowers-sample", "namespace": NS}, "status": status}),
        ),
    ];
    let outcome = reconcile_with(&isvc, config, script).await;
    assert_eq!(outcome.result.unwrap(), Action::requeue(Duration::from_secs(15)));
}

/// InferenceServices that do not read (a string where a number belongs),
/// fail validation (the corpus's invalid sample: a bare float as a cpu
/// quantity) or ask for something `kf serve` cannot run (the corpus's
/// tensorflow predictor) get a condition naming the field, read nothing
/// else, and wait for an edit: no crash loop, no retry.
#[tokio::test]
async fn invalid_inference_services_get_a_condition_naming_the_field() {
    let mut unreadable = default_isvc();
    unreadable["spec"]["predictor"]["minReplicas"] = json!("one");
    let mut invalid = stored(corpus("invalid/docs__samples__explanation__alibi__moviesentiment__moviesentiment.yaml"));
    invalid["metadata"]["name"] = json!("my-model");
    let tensorflow = stored(corpus("docs__samples__v1beta1__rollout__default.yaml"));
    let cases = [
        (unreadable, "InvalidSpec", "spec.predictor.minReplicas: invalid type"),
        (invalid, "InvalidSpec", "spec.predictor.sklearn.resources.requests.cpu: "),
        (
            tensorflow,
            "NoSupportingRuntime",
            "spec.predictor.tensorflow: kf serve loads onnx models, not \"tensorflow\"",
        ),
    ];
    for (isvc, reason, prefix) in cases {
        let error = InferenceService::from_value(isvc.clone())
            .and_then(|i| i.validate().map(|()| i))
            .and_then(|i| plan::supported_storage_uri(&i, &RenderConfig::default()).map(str::to_string))
            .unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with(prefix), "{message}");
        let script = vec![apply(
            status_path(),
            status_body(json!({
                "conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": message,
                                "lastTransitionTime": NOW}],
                "observedGeneration": 1,
            })),
        )];
        let outcome = reconcile_with(&isvc, Config::default(), script).await;
        assert_eq!(outcome.result.unwrap(), Action::await_change());
    }
}
