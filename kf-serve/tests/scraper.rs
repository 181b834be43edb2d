//! The KPA scraper's API conversation (feature `controller`), against
//! kube's mock service: each round lists the InferenceServices, lists the
//! predictor pods of the KPA-scaled ones by label, and GETs the ready pods'
//! `/metrics` through the pod proxy. Every request's method and URI is
//! asserted (the pods' GETs in any order: they run concurrently) and
//! nothing else may be asked. What the scraper decides from the loads is
//! unit-tested in `kf_serve::controller::scaler`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kf_serve::controller::{
    InMemoryRecommendations, Recommendations, Scraper, ScraperConfig, ServiceRound, metrics_path, predictor_selector,
};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

const NS: &str = "team-a";

/// An InferenceService scaled by the KPA on concurrency: target 10 at
/// 70 %, 7 concurrent requests per replica, 1 to 10 replicas.
fn kpa_isvc() -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": NS, "uid": "uid-iris", "resourceVersion": "7",
                     "annotations": {"autoscaling.knative.dev/target": "10"}},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 10, "onnx": {"storageUri": "gs://m/iris"}}},
    })
}

/// One with a fixed replica count: never scraped.
fn fixed_isvc() -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "fixed", "namespace": NS, "uid": "uid-fixed", "resourceVersion": "8"},
        "spec": {"predictor": {"minReplicas": 2, "onnx": {"storageUri": "gs://m/fixed"}}},
    })
}

fn isvc_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceServiceList",
           "metadata": {"resourceVersion": "9"}, "items": items})
}

fn pod(name: &str, ready: bool, deleting: bool) -> Value {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"serving.kserve.io/inferenceservice": "iris", "component": "predictor"}},
        "status": {"phase": "Running", "podIP": "10.1.0.9",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    });
    if deleting {
        pod["metadata"]["deletionTimestamp"] = json!("2026-12-07T12:00:00Z");
    }
    pod
}

/// a, b and c are ready; d is not, e is being deleted.
fn pod_list() -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "10"}, "items": [
        pod("iris-predictor-a", true, false),
        pod("iris-predictor-b", true, false),
        pod("iris-predictor-c", true, false),
        pod("iris-predictor-d", false, false),
        pod("iris-predictor-e", true, true),
    ]})
}

/// What a `kf serve` pod at `load` concurrent requests exposes.
fn exposition(load: f64) -> String {
    format!(
        "# HELP kf_serve_requests_in_flight Inference requests being processed.\n\
         # TYPE kf_serve_requests_in_flight gauge\n\
         kf_serve_requests_in_flight 3\n\
         kf_serve_autoscaler_desired_replicas{{model=\"iris\",metric=\"concurrency\"}} 2\n\
         kf_serve_autoscaler_stable_value{{model=\"iris\",metric=\"concurrency\"}} {load}\n\
         kf_serve_autoscaler_panic_value{{model=\"iris\",metric=\"concurrency\"}} {load}\n"
    )
}

/// One exchange: the request the scraper must send and the reply.
struct Call {
    uri: String,
    reply: (u16, String),
}

fn get(uri: impl Into<String>, code: u16, body: impl Into<String>) -> Call {
    Call { uri: uri.into(), reply: (code, body.into()) }
}

fn isvcs_uri() -> String {
    format!("/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices?")
}

fn pods_uri() -> String {
    let selector = predictor_selector("iris").replace('/', "%2F").replace('=', "%3D").replace(',', "%2C");
    format!("/api/v1/namespaces/{NS}/pods?&labelSelector={selector}")
}

fn proxy(pod: &str) -> String {
    metrics_path(NS, pod, 8080)
}

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// Answers the phases in order; the calls of one phase in any order. Each
/// request must be a GET without a body; afterwards nothing more may come.
async fn serve(mut handle: Handle, phases: Vec<Vec<Call>>) {
    for (p, mut phase) in phases.into_iter().enumerate() {
        while !phase.is_empty() {
            let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
            let waiting: Vec<&str> = phase.iter().map(|c| c.uri.as_str()).collect();
            let (request, respond) = next
                .unwrap_or_else(|_| panic!("phase {p}: {waiting:?} never came"))
                .unwrap_or_else(|| panic!("phase {p}: the client hung up before {waiting:?}"));
            assert_eq!(request.method().as_str(), "GET", "{}", request.uri());
            let uri = request.uri().to_string();
            let i = phase
                .iter()
                .position(|c| c.uri == uri)
                .unwrap_or_else(|| panic!("phase {p}: unexpected GET {uri}; expected one of {waiting:?}"));
            let call = phase.swap_remove(i);
            let bytes = request.into_body().collect_bytes().await.unwrap();
            assert!(bytes.is_empty(), "GET {uri} has no body");
            let (code, body) = call.reply;
            respond.send_response(Response::builder().status(code).body(Body::from(body.into_bytes())).unwrap());
        }
    }
    let more = tokio::time::timeout(Duration::from_secs(2), handle.next_request()).await;
    if let Ok(Some((request, _))) = more {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

fn scraper(
    recommendations: &Arc<InMemoryRecommendations>,
    phases: Vec<Vec<Call>>,
) -> (Scraper, tokio::task::JoinHandle<()>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config = ScraperConfig { namespace: Some(NS.into()), ..ScraperConfig::default() };
    let server = tokio::spawn(serve(handle, phases));
    (Scraper::new(client, config, recommendations.clone()), server)
}

fn one_round_of_iris(a: Call, b: Call, c: Call) -> Vec<Vec<Call>> {
    vec![
        vec![get(isvcs_uri(), 200, isvc_list(vec![kpa_isvc(), fixed_isvc()]).to_string())],
        vec![get(pods_uri(), 200, pod_list().to_string())],
        vec![a, b, c],
    ]
}

#[tokio::test]
async fn a_round_scrapes_the_ready_pods_and_recommends_from_their_summed_load() {
    let recommendations = Arc::new(InMemoryRecommendations::default());
    let mut phases = one_round_of_iris(
        get(proxy("iris-predictor-a"), 200, exposition(14.0)),
        get(proxy("iris-predictor-b"), 500, "boom"),
        get(proxy("iris-predictor-c"), 200, "<html><body>not metrics</body></html>"),
    );
    // Round 2: no pod answers; round 3: the InferenceService is gone.
    phases.extend(one_round_of_iris(
        get(proxy("iris-predictor-a"), 503, "unavailable"),
        get(proxy("iris-predictor-b"), 503, "unavailable"),
        get(proxy("iris-predictor-c"), 503, "unavailable"),
    ));
    phases.push(vec![get(isvcs_uri(), 200, isvc_list(vec![fixed_isvc()]).to_string())]);
    let (mut scraper, server) = scraper(&recommendations, phases);

    let round = scraper.round(Duration::from_secs(2)).await.unwrap();
    // a alone answered, for three ready pods: 14 × 3 = 42 concurrent
    // requests, ⌈42 ÷ 7⌉ = 6 replicas (each pod alone said 2).
    assert_eq!(
        round.services,
        vec![ServiceRound {
            namespace: NS.into(),
            name: "iris".into(),
            ready: 3,
            answered: 1,
            replicas: Some(6),
            panicking: true,
        }]
    );
    assert_eq!(recommendations.replicas(NS, "iris"), Some(6));
    assert_eq!(recommendations.replicas(NS, "fixed"), None, "not KPA-scaled, not scraped");
    let skipped: Vec<(&str, &str)> = round.skipped.iter().map(|s| (s.object.as_str(), s.reason.as_str())).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "team-a/iris-predictor-b");
    assert_eq!(skipped[0].1, format!("GET {}: HTTP 500: boom", proxy("iris-predictor-b")));
    assert_eq!(skipped[1].0, "team-a/iris-predictor-c");
    assert_eq!(
        skipped[1].1,
        "unreadable /metrics: line 1: expected a metric name, found \"<html><body>not metrics</body></html>\""
    );

    let round = scraper.round(Duration::from_secs(4)).await.unwrap();
    assert_eq!(round.services[0].replicas, None, "no pod answered: no decision");
    assert_eq!(round.skipped.len(), 3);
    assert_eq!(recommendations.replicas(NS, "iris"), Some(6), "the previous recommendation stays");

    let round = scraper.round(Duration::from_secs(6)).await.unwrap();
    assert!(round.services.is_empty() && round.skipped.is_empty(), "{round:?}");
    assert_eq!(recommendations.replicas(NS, "iris"), None, "a service gone loses its recommendation");

    drop(scraper);
    server.await.unwrap();
}

#[tokio::test]
async fn an_unlistable_cluster_fails_the_round_and_changes_nothing() {
    let recommendations = Arc::new(InMemoryRecommendations::default());
    recommendations.set(NS, "iris", 4);
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": "inferenceservices is forbidden", "reason": "Forbidden", "code": 403});
    let (mut scraper, server) = scraper(&recommendations, vec![vec![get(isvcs_uri(), 403, forbidden.to_string())]]);
    let err = scraper.round(Duration::from_secs(2)).await.unwrap_err();
    assert!(err.to_string().contains("list InferenceServices in team-a"), "{err}");
    assert_eq!(recommendations.replicas(NS, "iris"), Some(4));
    drop(scraper);
    server.await.unwrap();
}

#[tokio::test]
async fn pods_that_cannot_be_listed_skip_the_service_and_keep_its_recommendation() {
    let recommendations = Arc::new(InMemoryRecommendations::default());
    recommendations.set(NS, "iris", 4);
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": "pods is forbidden", "reason": "Forbidden", "code": 403});
    let phases = vec![
        vec![get(isvcs_uri(), 200, isvc_list(vec![kpa_isvc()]).to_string())],
        vec![get(pods_uri(), 403, forbidden.to_string())],
    ];
    let (mut scraper, server) = scraper(&recommendations, phases);
    let round = scraper.round(Duration::from_secs(2)).await.unwrap();
    assert!(round.services.is_empty(), "{round:?}");
    assert_eq!(round.skipped.len(), 1);
    assert_eq!(round.skipped[0].object, "team-a/iris");
    assert!(round.skipped[0].reason.starts_with("list pods of InferenceService team-a/iris: pods is forbidden"));
    assert_eq!(recommendations.replicas(NS, "iris"), Some(4), "kept: the service still exists");
    drop(scraper);
    server.await.unwrap();
}
