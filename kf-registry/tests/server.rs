//! The REST API without sockets (`Router::oneshot`): statuses, envelopes,
//! error bodies, both prefixes, limits.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns, may unwrap

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kf_registry::{MemoryStore, Registry};
use serde_json::{Value, json};
use tower::ServiceExt;

fn app() -> Router {
    kf_registry::server::router(Arc::new(Registry::new(MemoryStore::new())))
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Vec<u8>>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if body.is_none() {
        req = req.header("accept", "application/json");
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let doc = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !bytes.is_empty() {
        assert!(ct.starts_with("application/json"), "{uri}: content-type {ct}");
    }
    (status, doc)
}

async fn post(app: &Router, uri: &str, doc: Value) -> (StatusCode, Value) {
    call(app, Method::POST, uri, Some(doc.to_string().into_bytes())).await
}

const V: &str = "/api/model_registry/v1alpha3";
const V1: &str = "/api/model_registry/v1";

fn assert_error(status: StatusCode, doc: &Value, want: u16) {
    assert_eq!(status.as_u16(), want, "{doc}");
    assert!(doc["code"].as_str().is_some_and(|c| !c.is_empty()), "{doc}");
    assert!(doc["message"].as_str().is_some_and(|m| !m.is_empty()), "{doc}");
}

#[tokio::test]
async fn the_client_workflow_over_both_prefixes() {
    let app = app();
    let (s, doc) = call(&app, Method::GET, &format!("{V1}/registered_models?pageSize=1&sortOrder=ASC"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc, json!({"items": [], "size": 0, "pageSize": 1, "nextPageToken": ""}));
    let (s, doc) = call(&app, Method::GET, &format!("{V1}/registered_model?name=iris"), None).await;
    assert_error(s, &doc, 404);
    let (s, rm) =
        post(&app, &format!("{V1}/registered_models"), json!({"name": "iris", "owner": "o", "state": "LIVE"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let rm_id = rm["id"].as_str().unwrap().to_owned();
    let (s, mv) = post(
        &app,
        &format!("{V1}/model_versions"),
        json!({"name": "1", "registeredModelId": rm_id, "author": "a",
               "customProperties": {"n": {"metadataType": "MetadataIntValue", "int_value": "4"}}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{mv}");
    let mv_id = mv["id"].as_str().unwrap().to_owned();
    let (s, ma) = post(
        &app,
        &format!("{V1}/model_versions/{mv_id}/artifacts"),
        json!({"artifactType": "model-artifact", "name": "iris", "uri": "s3://b/iris.onnx", "state": "UNKNOWN"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(ma["artifactType"], "model-artifact");
    // the other prefix sees the same store
    let (s, got) = call(&app, Method::GET, &format!("{V}/model_versions/{mv_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, mv);
    assert_eq!(got["customProperties"]["n"], json!({"metadataType": "MetadataIntValue", "int_value": "4"}));
    let (s, found) =
        call(&app, Method::GET, &format!("{V}/model_artifact?name=iris&parentResourceId={mv_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["id"], ma["id"]);
    let (s, list) =
        call(&app, Method::GET, &format!("{V}/registered_models/{rm_id}/versions?sortOrder=ASC"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["size"], 1);
    let (s, patched) = call(
        &app,
        Method::PATCH,
        &format!("{V}/model_versions/{mv_id}"),
        Some(json!({"state": "ARCHIVED"}).to_string().into_bytes()),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(patched["state"], "ARCHIVED");
    assert_eq!(patched["customProperties"], mv["customProperties"]);
}

#[tokio::test]
async fn errors_have_the_right_status_and_body() {
    let app = app();
    let (s, d) = call(&app, Method::POST, &format!("{V}/registered_models"), Some(b"{\"name\": ".to_vec())).await;
    assert_error(s, &d, 400);
    let (s, d) = post(&app, &format!("{V}/registered_models"), json!({"name": 42})).await;
    assert_error(s, &d, 400);
    assert!(d["message"].as_str().unwrap().starts_with("name:"), "{d}");
    let (s, _) = post(&app, &format!("{V}/registered_models"), json!({"name": "a"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, d) = post(&app, &format!("{V}/registered_models"), json!({"name": "a"})).await;
    assert_error(s, &d, 409);
    let (s, d) = call(&app, Method::GET, &format!("{V}/registered_models/999999999"), None).await;
    assert_error(s, &d, 404);
    let (s, d) = call(&app, Method::GET, &format!("{V}/registered_models/not-a-number"), None).await;
    assert_error(s, &d, 400);
    for q in [
        "filterQuery=name%20%3D%20",
        "orderBy=NAME",
        "sortOrder=UP",
        "pageSize=0",
        "nextPageToken=%27%20OR%201%3D1%20--",
        "pageSize=abc",
    ] {
        let (s, d) = call(&app, Method::GET, &format!("{V}/registered_models?{q}"), None).await;
        assert_error(s, &d, 400);
    }
    let (s, d) = call(&app, Method::GET, &format!("{V}/artifacts?artifactType=bogus"), None).await;
    assert_error(s, &d, 400);
    let (s, d) = call(&app, Method::GET, "/api/model_registry/v2/registered_models", None).await;
    assert_error(s, &d, 404);
    let (s, d) = call(&app, Method::GET, &format!("{V}/model_versions/1/artifacts"), None).await;
    assert_error(s, &d, 404); // 1 is a registered model, not a version
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_parsing() {
    let app = app();
    let big =
        format!("{{\"name\": \"x\", \"description\": \"{}\"}}", "a".repeat(kf_registry::server::MAX_BODY_BYTES + 1));
    let (s, d) = call(&app, Method::POST, &format!("{V}/registered_models"), Some(big.into_bytes())).await;
    assert_error(s, &d, 400);
    let (_, list) = call(&app, Method::GET, &format!("{V}/registered_models"), None).await;
    assert_eq!(list["size"], 0);
}

#[tokio::test]
async fn every_kind_has_its_paths() {
    let app = app();
    let (_, rm) = post(&app, &format!("{V}/registered_models"), json!({"name": "m"})).await;
    let rm_id = rm["id"].as_str().unwrap();
    let (s, mv) = post(&app, &format!("{V}/registered_models/{rm_id}/versions"), json!({"name": "1"})).await;
    assert_eq!(s, StatusCode::CREATED, "{mv}");
    let mv_id = mv["id"].as_str().unwrap();
    let (s, env) = post(&app, &format!("{V}/serving_environments"), json!({"name": "prod"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let env_id = env["id"].as_str().unwrap();
    let (s, isvc) = post(
        &app,
        &format!("{V}/serving_environments/{env_id}/inference_services"),
        json!({"name": "svc", "registeredModelId": rm_id}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{isvc}");
    let is_id = isvc["id"].as_str().unwrap();
    let (s, m) = call(&app, Method::GET, &format!("{V}/inference_services/{is_id}/model"), None).await;
    assert_eq!((s, m["id"].clone()), (StatusCode::OK, rm["id"].clone()));
    let (s, v) = call(&app, Method::GET, &format!("{V}/inference_services/{is_id}/version"), None).await;
    assert_eq!((s, v["id"].clone()), (StatusCode::OK, mv["id"].clone()));
    let (s, serve) =
        post(&app, &format!("{V}/inference_services/{is_id}/serves"), json!({"modelVersionId": mv_id})).await;
    assert_eq!(s, StatusCode::CREATED, "{serve}");
    let (s, list) = call(&app, Method::GET, &format!("{V}/inference_services/{is_id}/serves"), None).await;
    assert_eq!((s, list["size"].clone()), (StatusCode::OK, json!(1)));
    let (s, exp) = post(&app, &format!("{V}/experiments"), json!({"name": "e"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let exp_id = exp["id"].as_str().unwrap();
    let (s, run) = post(&app, &format!("{V}/experiments/{exp_id}/experiment_runs"), json!({"name": "r"})).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    let run_id = run["id"].as_str().unwrap();
    let (s, metric) = post(
        &app,
        &format!("{V}/experiment_runs/{run_id}/artifacts"),
        json!({"artifactType": "metric", "name": "loss", "value": 0.5, "step": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{metric}");
    for uri in [
        format!("{V}/experiment_runs/{run_id}/metric_history?name=loss"),
        format!("{V}/experiment_runs/metric_history?stepIds=1"),
        format!("{V}/experiment_runs/{run_id}/artifacts?artifactType=metric"),
    ] {
        let (s, list) = call(&app, Method::GET, &uri, None).await;
        assert_eq!((s, list["size"].clone()), (StatusCode::OK, json!(1)), "{uri}: {list}");
    }
    for (find, name) in
        [("experiment", "e"), ("experiment_run", "r"), ("serving_environment", "prod"), ("inference_service", "svc")]
    {
        let (s, doc) = call(&app, Method::GET, &format!("{V}/{find}?name={name}"), None).await;
        assert_eq!(s, StatusCode::OK, "{find}: {doc}");
    }
    let (s, art) =
        post(&app, &format!("{V}/artifacts"), json!({"artifactType": "doc-artifact", "name": "readme"})).await;
    assert_eq!(s, StatusCode::CREATED, "{art}");
    let art_id = art["id"].as_str().unwrap();
    let (s, patched) = call(
        &app,
        Method::PATCH,
        &format!("{V}/artifacts/{art_id}"),
        Some(json!({"artifactType": "doc-artifact", "uri": "u"}).to_string().into_bytes()),
    )
    .await;
    assert_eq!((s, patched["uri"].clone()), (StatusCode::OK, json!("u")));
    let (s, _) = call(&app, Method::GET, &format!("{V}/model_artifacts/{art_id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a doc artifact is not a model artifact");
}

#[tokio::test]
async fn serve_shuts_down_gracefully() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let registry = Arc::new(Registry::new(MemoryStore::new()));
    let server = tokio::spawn(kf_registry::server::serve(registry, listener, async {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
}
