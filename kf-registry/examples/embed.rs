//! kf-registry inside your own binary: a Model Registry on SQLite, used
//! directly from Rust, then served over the Kubeflow Model Registry REST API
//! on 127.0.0.1 and called once over HTTP.
//!
//! Run with `cargo run -p kf-registry --features server,sqlite --example embed`.
//! The guide that walks through it is docs/guides/kf-registry.md.

use std::sync::Arc;

use kf_registry::record::Kind;
use kf_registry::registry::{ListParams, Scope};
use kf_registry::sqlite::SqliteStore;
use kf_registry::{ModelVersion, RegisteredModel, Registry};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // guide: open
    // One SQLite file (created, migrated, WAL). `SqliteStore::open(":memory:")`
    // or `MemoryStore::new()` for tests; `PostgresStore` (feature postgres) for
    // a shared database. `Registry` applies the API's rules over any store.
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("registry.db").display().to_string()).await?;
    let registry = Arc::new(Registry::new(store));
    // guide: end

    // guide: register
    // Documents are the REST API's JSON bodies; customProperties are typed
    // MetadataValues, exactly as the upstream Python client sends them.
    let model: RegisteredModel = registry
        .create(
            json!({"name": "iris", "owner": "alice@example.com",
                   "customProperties": {"team": {"metadataType": "MetadataStringValue", "string_value": "ml-platform"}}}),
            None,
        )
        .await?;
    let model_id = model.id.clone().ok_or("the registry returns the new model's id")?;
    let mut last = None;
    for (name, accuracy) in [("v1", 0.81), ("v2", 0.93), ("v3", 0.95)] {
        let version: ModelVersion = registry
            .create(
                json!({"name": name, "registeredModelId": model_id, "author": "alice@example.com",
                       "customProperties": {"accuracy": {"metadataType": "MetadataDoubleValue", "double_value": accuracy}}}),
                None,
            )
            .await?;
        last = version.id;
    }
    // The model file of the latest version: a model-artifact with where it lives.
    let version_id = last.ok_or("the registry returns each version's id")?;
    let (artifact, created) = registry
        .upsert_artifact(
            Kind::ModelVersion,
            &version_id,
            json!({"artifactType": "model-artifact", "name": "iris-onnx", "uri": "s3://models/iris/v3/model.onnx",
                   "modelFormatName": "onnx", "modelFormatVersion": "1"}),
        )
        .await?;
    println!("registered model {model_id}, 3 versions, artifact created={created}: {}", json!(artifact)["uri"]);
    // guide: end

    // guide: list
    // filterQuery over columns and customProperties, one item per page; the
    // nextPageToken is signed, so a client cannot forge a cursor.
    let mut params = ListParams {
        filter_query: Some("accuracy > 0.9".into()),
        page_size: Some("1".into()),
        order_by: Some("ID".into()),
        ..ListParams::default()
    };
    loop {
        let page = registry.list::<ModelVersion>(&params, Scope::default()).await?;
        for version in &page.items {
            println!(
                "page: {} accuracy={}",
                version.name.as_deref().unwrap_or("?"),
                json!(version)["customProperties"]["accuracy"]["double_value"]
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        params.next_page_token = Some(page.next_page_token);
    }
    // guide: end

    // guide: serve
    // The REST API as an axum Router, under /api/model_registry/v1alpha3 and
    // /api/model_registry/v1 (the prefix the Python client calls). Port 0 picks
    // a free port; the oneshot stops the server gracefully.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kf_registry::server::serve(registry.clone(), listener, async {
        let _ = stopped.await;
    }));
    // guide: end

    // guide: http
    // Any HTTP client works; a bare HTTP/1.1 request keeps this example free of one.
    let path = "/api/model_registry/v1alpha3/registered_models?filterQuery=name%3D%27iris%27";
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("an HTTP response has a head and a body")?;
    println!("GET {path}\n{}\n{body}", head.lines().next().unwrap_or_default());
    let _ = stop.send(());
    server.await??;
    // guide: end
    Ok(())
}
