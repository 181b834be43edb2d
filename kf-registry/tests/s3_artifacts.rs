//! Model files in S3, against a real S3-compatible server: moto in server
//! mode (`moto[server]`, pinned in .ci/requirements-moto.txt), started here
//! on a free loopback port: the artifact store suite, then uploads through
//! the REST router, so the multipart upload, its abort on 413 and the
//! download all hit S3.
//!
//! `KF_MOTO_PYTHON` names a Python with moto (CI builds one). Without it
//! the test is skipped, unless `KF_REQUIRE_PEERS=1`, where it fails.
#![cfg(all(feature = "s3", feature = "server"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use kf_registry::artifact_store::ArtifactStore;
use kf_registry::server::{FILES_PREFIX, router_with_artifacts};
use kf_registry::{MemoryStore, Registry};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A moto server, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Option<Moto> {
    let required = std::env::var("KF_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    let Ok(python) = std::env::var("KF_MOTO_PYTHON") else {
        assert!(!required, "KF_REQUIRE_PEERS=1 but KF_MOTO_PYTHON (a Python with moto[server]) is not set");
        eprintln!("skipped: set KF_MOTO_PYTHON to a Python with moto[server] (or KF_REQUIRE_PEERS=1 to fail)");
        return None;
    };
    let mut child = Command::new(&python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} -m moto.server: {e}"));
    let stderr = child.stderr.take().expect("stderr");
    // Werkzeug says where it listens: " * Running on http://127.0.0.1:PORT".
    let mut endpoint = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("moto's stderr");
        if let Some(at) = line.find("http://127.0.0.1:") {
            endpoint = Some(line[at..].trim().to_owned());
            break;
        }
    }
    let endpoint = endpoint.unwrap_or_else(|| panic!("{python} -m moto.server ended before listening"));
    Some(Moto { child, endpoint })
}

/// Creates `bucket` with a plain (unsigned) PUT, which moto accepts.
fn create_bucket(endpoint: &str, bucket: &str) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to moto");
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {reply}");
}

async fn call(app: &Router, method: Method, uri: &str, body: Body) -> (StatusCode, Bytes) {
    let req = Request::builder().method(method).uri(uri).body(body).expect("request");
    let resp = app.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    (status, axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body"))
}

fn doc(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_files_round_trip_through_s3() {
    let Some(moto) = moto() else { return };
    create_bucket(&moto.endpoint, "models");
    let options = [
        ("aws_endpoint", moto.endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "kf-test"),
        ("aws_secret_access_key", "kf-test"),
        ("aws_region", "us-east-1"),
    ];
    let open = |url: &str| {
        ArtifactStore::from_url_with(url, options.map(|(k, v)| (k.to_owned(), v.to_owned()))).expect("s3 store")
    };
    kf_registry::testing::artifact_store_suite(&open("s3://models/suite"), 1).await;
    let store = open("s3://models/registry").with_max_file_bytes(16 << 20);
    assert_eq!(store.root_uri(), "s3://models/registry");
    let app = router_with_artifacts(Arc::new(Registry::new(MemoryStore::new())), Some(store));
    let (s, rm) =
        call(&app, Method::POST, "/api/model_registry/v1/registered_models", Body::from(r#"{"name":"iris"}"#)).await;
    assert_eq!(s, StatusCode::CREATED);
    let rm = doc(&rm)["id"].as_str().expect("id").to_owned();
    let (s, mv) = call(
        &app,
        Method::POST,
        "/api/model_registry/v1/model_versions",
        Body::from(json!({"name": "1", "registeredModelId": rm}).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let mv = doc(&mv)["id"].as_str().expect("id").to_owned();
    let files = format!("{FILES_PREFIX}/model_versions/{mv}/files");

    // 11 MiB in 1 MiB chunks, without Content-Length: a three-part S3 multipart upload
    let bytes: Vec<u8> = (0..11u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        bytes.chunks(1 << 20).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let (s, put) =
        call(&app, Method::PUT, &format!("{files}/model.onnx"), Body::from_stream(futures::stream::iter(chunks))).await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&put));
    let put = doc(&put);
    let uri = format!("s3://models/registry/models/{rm}/versions/{mv}/model.onnx");
    assert_eq!(put["artifact"]["uri"], uri);
    assert_eq!(put["file"]["size"], bytes.len());
    let (s, got) = call(&app, Method::GET, &format!("{files}/model.onnx"), Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(got[..] == bytes[..], "downloaded {} bytes, uploaded {}", got.len(), bytes.len());

    // over the limit while streaming: the multipart upload is aborted and leaves nothing
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..17).map(|_| Ok(Bytes::from(vec![7u8; 1 << 20]))).collect();
    let (s, _) =
        call(&app, Method::PUT, &format!("{files}/huge.bin"), Body::from_stream(futures::stream::iter(chunks))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, list) = call(&app, Method::GET, &files, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let list = doc(&list);
    assert_eq!(list["size"], 1, "{list}");
    assert_eq!(list["items"][0]["uri"], uri);

    // a traversal name is refused before S3 is asked, as on a directory
    let (s, _) = call(&app, Method::PUT, &format!("{files}/..%2F..%2F..%2Fescape"), Body::from("x")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
