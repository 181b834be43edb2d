//! kf's own endpoints for model files, under [`FILES_PREFIX`] — apart from
//! the spec's paths, which stay exactly as `model-registry.yaml` has them.
//!
//! - `PUT /model_versions/{id}/files/{file}`: the body is the file's bytes,
//!   streamed into the [`ArtifactStore`] (never held whole in memory); then
//!   the version's `ModelArtifact` named `artifactName` (default: the
//!   registered model's name, as the official client names it) gets the
//!   file's `uri`, state `LIVE` and `customProperties` `kf.sha256` and
//!   `kf.size_bytes`; `modelFormatName` and `modelFormatVersion` parameters
//!   are copied onto it. Answers `{"file": …, "artifact": …}`, 201 when the
//!   artifact was created, 200 when it was updated. A body over the store's
//!   limit is 413 (at once when `Content-Length` says so).
//! - `GET /model_versions/{id}/files`: `{"items": [{name, uri, size}], "size": n}`.
//! - `GET /model_versions/{id}/files/{file}`: the bytes.
//!
//! The object key is made of the version's model id, its id and the checked
//! file name; a `uri` stored in the registry is never read back, so PATCHing
//! an artifact's `uri` cannot point a download elsewhere.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{Params, error, query, respond};
use crate::artifact_store::{ArtifactStore, FileKey, FileName};
use crate::registry::parse_id;
use crate::{Error, MetadataValue, Registry, RegistryStore, Result};

/// The path prefix of kf's file endpoints.
pub const FILES_PREFIX: &str = "/api/kf_registry/v1";

struct Files<S> {
    registry: Arc<Registry<S>>,
    artifacts: Option<ArtifactStore>,
}

impl<S: RegistryStore> Files<S> {
    fn artifacts(&self) -> Result<&ArtifactStore> {
        self.artifacts.as_ref().ok_or_else(|| Error::NotFound {
            kind: "artifact store",
            key: "on this server (start it with an artifact store, e.g. `kf registry serve --artifacts URL`)".into(),
        })
    }

    /// The key of `file` of model version `version`, once both are
    /// checked, and the name of the version's registered model.
    async fn key(&self, version: &str, file: &str) -> Result<(FileKey, String)> {
        let file = FileName::parse(file)?;
        let (model, version, name) = self.version_ids(version).await?;
        Ok((FileKey { model, version, file }, name))
    }

    /// The ids of a model version's registered model and of the version, and the model's name.
    async fn version_ids(&self, version: &str) -> Result<(i64, i64, String)> {
        let (version, model) = self.registry.version_and_model(version).await?;
        Ok((
            parse_id("registeredModelId", &model.id.unwrap_or_default())?,
            parse_id("id", &version.id.unwrap_or_default())?,
            model.name.unwrap_or_default(),
        ))
    }
}

type Shared<S> = Arc<Files<S>>;

/// The file routes under [`FILES_PREFIX`]; with `artifacts` `None` they
/// answer 404 naming the missing artifact store.
pub(super) fn routes<S: RegistryStore + 'static>(
    registry: Arc<Registry<S>>,
    artifacts: Option<ArtifactStore>,
) -> Router {
    let files = Router::new()
        .route("/model_versions/{id}/files", get(list::<S>))
        .route("/model_versions/{id}/files/{file}", get(download::<S>).put(upload::<S>))
        .with_state(Arc::new(Files { registry, artifacts }));
    Router::new().nest(FILES_PREFIX, files)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

async fn upload<S: RegistryStore + 'static>(
    State(files): State<Shared<S>>,
    Path((version, file)): Path<(String, String)>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let artifacts = files.artifacts()?;
        let q = query(params)?;
        let (key, model_name) = files.key(&version, &file).await?;
        if content_length(&headers).is_some_and(|n| n > artifacts.max_file_bytes()) {
            return Err(Error::TooLarge { what: format!("file {}", key.file), limit: artifacts.max_file_bytes() });
        }
        let stored = artifacts.put(&key, body.into_data_stream()).await?;
        let given = |name: &str| q.get(name).filter(|v| !v.is_empty()).cloned();
        let name = given("artifactName").unwrap_or(model_name);
        let mut fields = Map::new();
        fields.insert("uri".into(), Value::String(stored.uri.clone()));
        fields.insert("state".into(), Value::String("LIVE".into()));
        for field in ["modelFormatName", "modelFormatVersion"] {
            if let Some(value) = given(field) {
                fields.insert(field.into(), Value::String(value));
            }
        }
        let mut properties = crate::CustomProperties::new();
        properties.insert("kf.sha256".into(), MetadataValue::string(stored.sha256.clone().unwrap_or_default()));
        // a double holds every size up to 2^53 bytes exactly; an int32 would stop at 2 GiB
        properties.insert("kf.size_bytes".into(), MetadataValue::double(stored.size as f64));
        let (artifact, created) = files.registry.link_model_artifact(&version, &name, fields, properties).await?;
        Ok((created, json!({"file": stored, "artifact": artifact})))
    }
    .await;
    match result {
        Ok((true, doc)) => (StatusCode::CREATED, Json(doc)).into_response(),
        Ok((false, doc)) => (StatusCode::OK, Json(doc)).into_response(),
        Err(err) => error(&err),
    }
}

async fn download<S: RegistryStore + 'static>(
    State(files): State<Shared<S>>,
    Path((version, file)): Path<(String, String)>,
) -> Response {
    let result = async {
        let artifacts = files.artifacts()?;
        let (key, _) = files.key(&version, &file).await?;
        artifacts.get(&key).await
    }
    .await;
    match result {
        Ok(file) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_LENGTH, file.size.to_string()),
            ],
            Body::from_stream(file.bytes),
        )
            .into_response(),
        Err(err) => error(&err),
    }
}

async fn list<S: RegistryStore + 'static>(State(files): State<Shared<S>>, Path(version): Path<String>) -> Response {
    let result = async {
        let artifacts = files.artifacts()?;
        let (model, version, _) = files.version_ids(&version).await?;
        let items = artifacts.list(model, version).await?;
        Ok(json!({"size": items.len(), "items": items}))
    }
    .await;
    respond(result, StatusCode::OK)
}
