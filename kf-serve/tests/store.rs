//! A model repository read through object_store (feature `store`), with the
//! real ONNX runtime: the layout, `config.toml`, reloads through
//! `POST /v2/repository/models/{m}/load`, and what a bad file or config does.
//! The repository is a temp dir laid out from ../shared/models.
#![cfg(all(feature = "store", feature = "onnx", feature = "server"))]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kf_serve::metrics::Metrics;
use kf_serve::server::{ServerOptions, router};
use kf_serve::store::RepositoryStore;
use kf_serve::{Model, ModelRepository, OnnxModel};
use serde_json::{Value, json};
use tower::ServiceExt;

fn shared_model(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/models").join(file)
}

fn put(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn onnx(name: &str, bytes: &[u8]) -> kf_serve::Result<Arc<dyn Model>> {
    Ok(Arc::new(OnnxModel::from_bytes(name, bytes)?))
}

fn open(root: &Path) -> RepositoryStore {
    RepositoryStore::open(&root.display().to_string(), onnx).unwrap()
}

fn iris() -> Vec<u8> {
    std::fs::read(shared_model("iris-logreg.onnx")).unwrap()
}

fn states(repo: &ModelRepository) -> Vec<(String, String, String)> {
    repo.index().into_iter().map(|e| (e.name, e.version, e.state)).collect()
}

fn row(name: &str, version: &str, state: &str) -> (String, String, String) {
    (name.into(), version.into(), state.into())
}

async fn post(app: &axum::Router, path: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(path).header("content-type", "application/json").body(Body::from(body.to_string()));
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn iris_request() -> Value {
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]})
}

#[tokio::test]
async fn the_layout_loads_with_configs_and_one_bad_file_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "iris/1/model.onnx", &iris());
    put(dir.path(), "iris/config.toml", b"[batching]\nmax_batch_rows = 8\nmax_latency_ms = 1\n");
    put(dir.path(), "broken/1/model.onnx", b"not an onnx file");
    put(dir.path(), "pinned/3/model.onnx", &iris());
    put(dir.path(), "pinned/config.json", br#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4]}]}"#);
    put(dir.path(), "misconfigured/1/model.onnx", &iris());
    put(dir.path(), "misconfigured/config.toml", b"[batching]\nmax_batch_rows = 0\nmax_latency_ms = 1\n");
    put(dir.path(), "README.md", b"not a model");
    put(dir.path(), "iris/1/notes.txt", b"ignored");
    let store = open(dir.path());
    let repo = ModelRepository::new();
    let found = store.load_all(&repo).await.unwrap();
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(
        states(&repo),
        [
            row("broken", "1", "UNAVAILABLE"),
            row("iris", "1", "READY"),
            row("misconfigured", "1", "UNAVAILABLE"),
            row("pinned", "3", "READY"),
        ]
    );
    let index = repo.index();
    let reason = |name: &str| index.iter().find(|e| e.name == name).and_then(|e| e.reason.clone()).unwrap();
    assert!(reason("broken").contains("not an ONNX model"), "{}", reason("broken"));
    assert!(
        reason("misconfigured").contains("misconfigured/config.toml: batching.max_batch_rows"),
        "{}",
        reason("misconfigured")
    );
    // The batching model answers through the repository like any other.
    let app = router(Arc::new(repo), Arc::new(Metrics::default()), ServerOptions::default());
    let (status, body) = post(&app, "/v2/models/iris/infer", iris_request()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([2]));
    // The declared metadata is what is served, and what requests are checked against.
    let (status, body) = post(&app, "/v2/models/pinned/infer", iris_request()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let one_row =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]});
    let (status, body) = post(&app, "/v2/models/pinned/infer", one_row).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn load_reloads_one_model_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "iris/1/model.onnx", &iris());
    let store = Arc::new(open(dir.path()));
    let repo = Arc::new(ModelRepository::new());
    store.load_all(&repo).await.unwrap();
    let options = ServerOptions { loader: Some(store.clone()), ..ServerOptions::default() };
    let app = router(repo.clone(), Arc::new(Metrics::default()), options);

    // A new version appears, the old one goes: load picks up both changes.
    put(dir.path(), "iris/2/model.onnx", &iris());
    std::fs::remove_dir_all(dir.path().join("iris/1")).unwrap();
    let (status, body) = post(&app, "/v2/repository/models/iris/load", json!({})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(states(&repo), [row("iris", "2", "READY")]);

    // A broken new file for a serving version: the old model keeps serving,
    // and the load says which version failed.
    put(dir.path(), "iris/2/model.onnx", b"truncated");
    let (status, body) = post(&app, "/v2/repository/models/iris/load", json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["error"].as_str().unwrap().contains("version 2: "), "{body}");
    assert_eq!(states(&repo), [row("iris", "2", "READY")]);
    let (status, _) = post(&app, "/v2/models/iris/infer", iris_request()).await;
    assert_eq!(status, StatusCode::OK);

    // A model that is not in the repository: 404, and a served one that
    // left the repository is unloaded.
    let (status, body) = post(&app, "/v2/repository/models/nosuch/load", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    std::fs::remove_dir_all(dir.path().join("iris")).unwrap();
    let (status, _) = post(&app, "/v2/repository/models/iris/load", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(states(&repo).is_empty());

    // A model added after the start is loaded by name.
    put(dir.path(), "late/7/model.onnx", &iris());
    let (status, _) = post(&app, "/v2/repository/models/late/load", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(states(&repo), [row("late", "7", "READY")]);
}

#[tokio::test]
async fn a_server_without_a_repository_refuses_load() {
    let app = router(Arc::new(ModelRepository::new()), Arc::new(Metrics::default()), ServerOptions::default());
    let (status, body) = post(&app, "/v2/repository/models/iris/load", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("no model repository"), "{body}");
}

#[test]
fn locations_that_cannot_be_a_repository_fail_at_open() {
    let err = RepositoryStore::open("/nonexistent/kf-serve-models", onnx).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/kf-serve-models"), "{err}");
    let err = RepositoryStore::open("gopher://models", onnx).unwrap_err().to_string();
    assert!(err.contains("not a usable model repository"), "{err}");
}
