//! kf's file endpoints (`/api/kf_registry/v1/model_versions/{id}/files/…`)
//! without sockets: uploads link the version's ModelArtifact, downloads give
//! the bytes back, limits answer 413, and no request reaches a path outside
//! the artifact root.
#![cfg(all(feature = "server", feature = "sqlite"))]
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns, may unwrap

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use kf_registry::artifact_store::ArtifactStore;
use kf_registry::server::{FILES_PREFIX, router, router_with_artifacts};
use kf_registry::sqlite::SqliteStore;
use kf_registry::{MemoryStore, Registry, RegistryStore};
use serde_json::{Value, json};
use tower::ServiceExt;

const V1: &str = "/api/model_registry/v1";

async fn send(app: &Router, method: Method, uri: &str, body: Body) -> (StatusCode, Bytes) {
    let req = Request::builder().method(method).uri(uri).body(body).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    (status, axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap())
}

async fn json_call(app: &Router, method: Method, uri: &str, body: Body) -> (StatusCode, Value) {
    let (status, bytes) = send(app, method, uri, body).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A registered model `name` with a version `1`; returns (model id, version id).
async fn model_with_version(app: &Router, name: &str) -> (String, String) {
    let (s, rm) =
        json_call(app, Method::POST, &format!("{V1}/registered_models"), Body::from(json!({"name": name}).to_string()))
            .await;
    assert_eq!(s, StatusCode::CREATED, "{rm}");
    let rm = rm["id"].as_str().unwrap().to_owned();
    let doc = json!({"name": "1", "registeredModelId": rm}).to_string();
    let (s, mv) = json_call(app, Method::POST, &format!("{V1}/model_versions"), Body::from(doc)).await;
    assert_eq!(s, StatusCode::CREATED, "{mv}");
    (rm, mv["id"].as_str().unwrap().to_owned())
}

fn files(version: &str) -> String {
    format!("{FILES_PREFIX}/model_versions/{version}/files")
}

fn app_with<S: RegistryStore + 'static>(store: S, artifacts: ArtifactStore) -> Router {
    router_with_artifacts(Arc::new(Registry::new(store)), Some(artifacts))
}

#[tokio::test]
async fn an_upload_links_the_model_artifact_and_downloads_give_it_back() {
    let app = app_with(MemoryStore::new(), ArtifactStore::in_memory());
    let (rm, mv) = model_with_version(&app, "iris").await;
    let put = format!("{}/model.onnx?modelFormatName=onnx&modelFormatVersion=1", files(&mv));
    let (s, doc) = json_call(&app, Method::PUT, &put, Body::from("first bytes")).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    let uri = format!("memory:///models/{rm}/versions/{mv}/model.onnx");
    assert_eq!(doc["file"]["uri"], uri);
    assert_eq!(doc["file"]["size"], 11);
    let artifact = &doc["artifact"];
    assert_eq!(artifact["name"], "iris", "named after the model, as the official client names it");
    assert_eq!(artifact["uri"], uri);
    assert_eq!(artifact["state"], "LIVE");
    assert_eq!(artifact["modelFormatName"], "onnx");
    assert_eq!(artifact["customProperties"]["kf.sha256"]["string_value"], doc["file"]["sha256"]);
    assert_eq!(artifact["customProperties"]["kf.size_bytes"]["double_value"], 11.0);
    // the official client finds it the way it finds its own artifacts
    let (s, found) =
        json_call(&app, Method::GET, &format!("{V1}/model_artifact?name=iris&parentResourceId={mv}"), Body::empty())
            .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["id"], artifact["id"]);

    // a second upload replaces the bytes and updates the same artifact
    let (s, again) = json_call(&app, Method::PUT, &format!("{}/model.onnx", files(&mv)), Body::from("second")).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["artifact"]["id"], artifact["id"]);
    assert_eq!(again["artifact"]["modelFormatName"], "onnx", "fields not given are kept");
    assert_eq!(again["artifact"]["customProperties"]["kf.size_bytes"]["double_value"], 6.0);
    let (s, bytes) = send(&app, Method::GET, &format!("{}/model.onnx", files(&mv)), Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&bytes[..], b"second");

    // another name under the same version is another artifact when asked
    let (s, doc) =
        json_call(&app, Method::PUT, &format!("{}/vocab.txt?artifactName=vocab", files(&mv)), Body::from("a b c"))
            .await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    let (s, list) = json_call(&app, Method::GET, &files(&mv), Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["size"], 2);
    assert_eq!(list["items"][0]["name"], "model.onnx");
    assert_eq!(list["items"][0]["size"], 6);
    assert_eq!(list["items"][1]["name"], "vocab.txt");

    // PATCHing the recorded uri does not redirect downloads: the key comes from the ids
    let patch = json!({"artifactType": "model-artifact", "uri": "file:///etc/passwd"}).to_string();
    let id = artifact["id"].as_str().unwrap();
    let (s, _) = json_call(&app, Method::PATCH, &format!("{V1}/model_artifacts/{id}"), Body::from(patch)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, bytes) = send(&app, Method::GET, &format!("{}/model.onnx", files(&mv)), Body::empty()).await;
    assert_eq!(&bytes[..], b"second");
}

#[tokio::test]
async fn missing_versions_files_and_stores_are_404s_with_a_message() {
    let app = app_with(MemoryStore::new(), ArtifactStore::in_memory());
    let (rm, mv) = model_with_version(&app, "iris").await;
    for (method, uri) in [
        (Method::GET, format!("{}/model.onnx", files(&mv))),
        (Method::GET, format!("{}/model.onnx", files("999"))),
        (Method::PUT, format!("{}/model.onnx", files("999"))),
        // a registered model's id is not a version's
        (Method::PUT, format!("{}/model.onnx", files(&rm))),
        (Method::GET, files(&rm)),
    ] {
        let (s, doc) = json_call(&app, method.clone(), &uri, Body::from("x")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {uri}: {doc}");
        assert!(doc["message"].as_str().is_some_and(|m| !m.is_empty()), "{doc}");
    }
    // the spec's paths are untouched: no files there
    let (s, _) = json_call(&app, Method::GET, &format!("{V1}/model_versions/{mv}/files"), Body::empty()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let bare = router(Arc::new(Registry::new(MemoryStore::new())));
    let (_, mv) = model_with_version(&bare, "iris").await;
    let (s, doc) = json_call(&bare, Method::PUT, &format!("{}/m", files(&mv)), Body::from("x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{doc}");
    assert!(doc["message"].as_str().unwrap().contains("--artifacts"), "{doc}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_change_nothing() {
    let app = app_with(MemoryStore::new(), ArtifactStore::in_memory().with_max_file_bytes(8));
    let (_, mv) = model_with_version(&app, "iris").await;
    let put = format!("{}/model.bin", files(&mv));
    let (s, _) = json_call(&app, Method::PUT, &put, Body::from("12345678")).await;
    assert_eq!(s, StatusCode::CREATED);
    // told up front by Content-Length
    let (s, doc) = json_call(&app, Method::PUT, &put, Body::from("123456789")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{doc}");
    assert_eq!(doc["code"], "payload_too_large");
    // found out while streaming (no Content-Length)
    let chunks = futures::stream::iter((0..5).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))));
    let (s, doc) = json_call(&app, Method::PUT, &put, Body::from_stream(chunks)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{doc}");
    let (_, bytes) = send(&app, Method::GET, &put, Body::empty()).await;
    assert_eq!(&bytes[..], b"12345678", "the stored file is the last accepted one");
    let (s, doc) = json_call(&app, Method::PUT, &format!("{}/other.bin", files(&mv)), Body::from(vec![0u8; 100])).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{doc}");
    let (_, list) = json_call(&app, Method::GET, &files(&mv), Body::empty()).await;
    assert_eq!(list["size"], 1, "a refused upload leaves no file: {list}");
}

fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn no_request_reaches_outside_the_artifact_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "do not serve").unwrap();
    let app = app_with(MemoryStore::new(), ArtifactStore::from_url(&root.display().to_string()).unwrap());
    let (_, mv) = model_with_version(&app, "iris").await;
    let secret_abs = secret.display().to_string().replace('/', "%2F");
    let names = [
        "..".to_owned(),
        "%2E%2E".to_owned(),
        "..%2Fsecret.txt".to_owned(),
        "..%2F..%2F..%2F..%2F..%2Fsecret.txt".to_owned(),
        "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt".to_owned(),
        "..%5C..%5Csecret.txt".to_owned(),
        secret_abs,
        "%2Fetc%2Fpasswd".to_owned(),
        ".secret".to_owned(),
        "a%00b".to_owned(),
        "%252e%252e".to_owned(),
        "x%231".to_owned(),
        "caf%C3%A9".to_owned(),
    ];
    for name in &names {
        let uri = format!("{}/{name}", files(&mv));
        let (s, doc) = json_call(&app, Method::PUT, &uri, Body::from("overwritten")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "PUT {uri}: {doc}");
        let (s, bytes) = send(&app, Method::GET, &uri, Body::empty()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "GET {uri}: {}", String::from_utf8_lossy(&bytes));
    }
    // traversal through the version id or extra segments never matches a route that writes
    for uri in [
        format!("{FILES_PREFIX}/model_versions/..%2F..%2F/files/x"),
        format!("{FILES_PREFIX}/model_versions/{mv}/files/../../../secret.txt"),
        format!("{FILES_PREFIX}/model_versions/{mv}/files/a/b"),
        format!("{FILES_PREFIX}/model_versions/-1/files/x"),
    ] {
        let (s, doc) = json_call(&app, Method::PUT, &uri, Body::from("overwritten")).await;
        assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND, "PUT {uri}: {s} {doc}");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not serve");
    assert_eq!(tree(dir.path()), ["root", "secret.txt"], "nothing was written anywhere");
}

#[cfg(unix)]
#[tokio::test]
async fn an_upload_replaces_a_planted_symlink_instead_of_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "untouched").unwrap();
    let app = app_with(MemoryStore::new(), ArtifactStore::from_url(&root.display().to_string()).unwrap());
    let (rm, mv) = model_with_version(&app, "iris").await;
    let version_dir = std::fs::canonicalize(&root).unwrap().join(format!("models/{rm}/versions/{mv}"));
    std::fs::create_dir_all(&version_dir).unwrap();
    std::os::unix::fs::symlink(&target, version_dir.join("model.bin")).unwrap();
    let (s, doc) = json_call(&app, Method::PUT, &format!("{}/model.bin", files(&mv)), Body::from("new")).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    assert!(!version_dir.join("model.bin").is_symlink(), "the link itself was replaced");
    assert_eq!(std::fs::read_to_string(version_dir.join("model.bin")).unwrap(), "new");
}

/// Uploads racing to create one version's artifact all succeed, on a store
/// whose unique index decides the race: one creates it, the rest update it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_create_one_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("r.db").display())).await.unwrap();
    let app = app_with(store, ArtifactStore::from_url(&dir.path().join("files").display().to_string()).unwrap());
    let (_, mv) = model_with_version(&app, "iris").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            let uri = format!("{}/part{i}.bin", files(&mv));
            tokio::spawn(async move { json_call(&app, Method::PUT, &uri, Body::from(vec![i as u8; 10])).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (s, doc) = task.await.unwrap();
        assert!(s.is_success(), "{s}: {doc}");
        created += usize::from(s == StatusCode::CREATED);
        ids.insert(doc["artifact"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!((created, ids.len()), (1, 1));
    let (_, list) = json_call(&app, Method::GET, &files(&mv), Body::empty()).await;
    assert_eq!(list["size"], 8);
}
