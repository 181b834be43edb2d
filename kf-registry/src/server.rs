//! The Model Registry REST API as an axum [`Router`]: every path of
//! `model-registry.yaml`, served under both `/api/model_registry/v1alpha3`
//! (the spec) and `/api/model_registry/v1` (the prefix the official Python
//! client calls), from one [`Registry`].
//!
//! Handlers are wiring only: they read the path, the query and the JSON body,
//! call the registry, and write the answer — `201` for creates, list
//! envelopes, and `{code, message}` errors with the status [`Error::status`]
//! gives (400 bad body, filter, token or parameter; 404 missing id; 409
//! taken name). Bodies larger than [`MAX_BODY_BYTES`] are refused with 400
//! before they are parsed. [`serve`] runs the router on a listener until a
//! shutdown future completes, finishing requests in flight.
//!
//! kf's own endpoints for uploading and downloading model files live apart,
//! under [`FILES_PREFIX`] (see the `files` module: [`router_with_artifacts`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::model::{ARTIFACT_TYPES, ErrorBody};
use crate::query::{Column, Filter, LeafOp};
use crate::record::{Kind, PropertyValue};
use crate::registry::{FindParams, ListParams, Scope};
mod files;

pub use files::FILES_PREFIX;

use crate::artifact_store::ArtifactStore;
use crate::{
    Artifact, Error, Experiment, ExperimentRun, InferenceService, ModelArtifact, ModelVersion, RegisteredModel,
    Registry, RegistryStore, Resource, Result, ServeModel, ServingEnvironment,
};

/// The path prefixes the API is served under.
pub const PREFIXES: [&str; 2] = ["/api/model_registry/v1alpha3", "/api/model_registry/v1"];
/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

type Shared<S> = Arc<Registry<S>>;
type Params = std::result::Result<Query<HashMap<String, String>>, QueryRejection>;
type Body = std::result::Result<Bytes, BytesRejection>;

/// The API under both prefixes, with the body limit and a JSON 404 for unknown paths.
///
/// ```
/// use std::sync::Arc;
/// use kf_registry::{MemoryStore, Registry};
///
/// let app = kf_registry::server::router(Arc::new(Registry::new(MemoryStore::new())));
/// # drop(app);
/// ```
pub fn router<S: RegistryStore + 'static>(registry: Shared<S>) -> Router {
    router_with_artifacts(registry, None)
}

/// [`router`] plus kf's file endpoints under [`FILES_PREFIX`], storing model
/// files in `artifacts` (without one they answer 404, naming what is missing).
/// Uploads stream past [`MAX_BODY_BYTES`]; their limit is the store's
/// [`ArtifactStore::max_file_bytes`].
///
/// ```
/// use std::sync::Arc;
/// use kf_registry::{MemoryStore, Registry};
/// use kf_registry::artifact_store::ArtifactStore;
///
/// let registry = Arc::new(Registry::new(MemoryStore::new()));
/// let app = kf_registry::server::router_with_artifacts(registry, Some(ArtifactStore::in_memory()));
/// # drop(app);
/// ```
pub fn router_with_artifacts<S: RegistryStore + 'static>(
    registry: Shared<S>,
    artifacts: Option<ArtifactStore>,
) -> Router {
    let api = api::<S>();
    let mut app = Router::new();
    for prefix in PREFIXES {
        app = app.nest(prefix, api.clone());
    }
    let app = app.layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(registry.clone());
    app.merge(files::routes(registry, artifacts))
        .fallback(|| async { error(&Error::NotFound { kind: "path", key: "for this method and URL".into() }) })
}

/// Serves `registry` on `listener` until `shutdown` completes, then stops
/// accepting connections and returns once requests in flight are answered.
pub async fn serve<S: RegistryStore + 'static>(
    registry: Shared<S>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(router(registry), listener, shutdown).await
}

/// Serves a router built by [`router`] or [`router_with_artifacts`], as [`serve`] does.
pub async fn serve_router(
    app: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

fn error(err: &Error) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(ErrorBody { code: err.code().to_owned(), message: err.to_string() })).into_response()
}

fn respond<T: Serialize>(result: Result<T>, ok: StatusCode) -> Response {
    match result {
        Ok(value) => (ok, Json(value)).into_response(),
        Err(err) => error(&err),
    }
}

fn json_body(body: Body) -> Result<Value> {
    let bytes = body.map_err(|e| {
        Error::invalid("body", format!("cannot read the request body (at most {MAX_BODY_BYTES} bytes): {e}"))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid("body", format!("expected a JSON document: {e}")))
}

fn query(params: Params) -> Result<HashMap<String, String>> {
    params.map(|Query(q)| q).map_err(|e| Error::invalid("query", e.body_text()))
}

fn list_params(q: &HashMap<String, String>) -> ListParams {
    ListParams {
        filter_query: q.get("filterQuery").cloned(),
        page_size: q.get("pageSize").cloned(),
        order_by: q.get("orderBy").cloned(),
        sort_order: q.get("sortOrder").cloned(),
        next_page_token: q.get("nextPageToken").cloned(),
    }
}

/// `artifactType`, `name` and `externalId` parameters of artifact lists.
fn artifact_scope(q: &HashMap<String, String>) -> Result<Scope> {
    let artifact_type = match q.get("artifactType").filter(|t| !t.is_empty()) {
        Some(t) if ARTIFACT_TYPES.contains(&t.as_str()) => Some(t.clone()),
        Some(t) => {
            return Err(Error::invalid("artifactType", format!("expected one of {ARTIFACT_TYPES:?}, found {t:?}")));
        }
        None => None,
    };
    let eq = |column, value: &String| Filter::Leaf {
        target: crate::query::Target::Column(column),
        op: LeafOp::Compare(crate::filter::CompareOp::Eq),
        values: vec![PropertyValue::String(value.clone())],
    };
    let name = q.get("name").filter(|n| !n.is_empty()).map(|n| eq(Column::Name, n));
    let external = q.get("externalId").filter(|n| !n.is_empty()).map(|n| eq(Column::ExternalId, n));
    let extra = match (name, external) {
        (Some(a), Some(b)) => Some(Filter::And(Box::new(a), Box::new(b))),
        (a, b) => a.or(b),
    };
    Ok(Scope { parent: None, artifact_type, extra })
}

async fn create<S: RegistryStore + 'static, T: Resource>(State(r): State<Shared<S>>, body: Body) -> Response {
    let result = async { r.create::<T>(json_body(body)?, None).await }.await;
    respond(result, StatusCode::CREATED)
}

async fn fetch<S: RegistryStore + 'static, T: Resource>(
    State(r): State<Shared<S>>,
    Path(id): Path<String>,
) -> Response {
    respond(r.get::<T>(&id).await, StatusCode::OK)
}

async fn update<S: RegistryStore + 'static, T: Resource>(
    State(r): State<Shared<S>>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let result = async { r.update::<T>(&id, json_body(body)?).await }.await;
    respond(result, StatusCode::OK)
}

async fn find<S: RegistryStore + 'static, T: Resource>(State(r): State<Shared<S>>, params: Params) -> Response {
    let result = async {
        let q = query(params)?;
        let find = FindParams {
            name: q.get("name").cloned(),
            external_id: q.get("externalId").cloned(),
            parent_resource_id: q.get("parentResourceId").cloned(),
        };
        r.find::<T>(&find).await
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn list<S: RegistryStore + 'static, T: Resource>(State(r): State<Shared<S>>, params: Params) -> Response {
    let result = async {
        let q = query(params)?;
        let scope = if T::KIND == Kind::Artifact { artifact_scope(&q)? } else { Scope::default() };
        r.list::<T>(&list_params(&q), scope).await
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn list_children<S: RegistryStore + 'static, T: Resource>(
    r: Shared<S>,
    parent_kind: Kind,
    id: String,
    params: Params,
) -> Response {
    let result = async {
        let q = query(params)?;
        let scope = if T::KIND == Kind::Artifact { artifact_scope(&q)? } else { Scope::default() };
        r.list_children::<T>(parent_kind, &id, &list_params(&q), scope).await
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn create_child<S: RegistryStore + 'static, T: Resource>(
    r: Shared<S>,
    parent_kind: Kind,
    id: String,
    body: Body,
) -> Response {
    let result = async {
        let doc = json_body(body)?;
        let parent = crate::registry::parse_id("id", &id)?;
        match r.store().get(parent).await? {
            Some(p) if p.kind == parent_kind => {}
            _ => return Err(Error::NotFound { kind: parent_kind.type_name(), key: format!("id {parent}") }),
        }
        r.create::<T>(doc, Some(parent)).await
    }
    .await;
    respond(result, StatusCode::CREATED)
}

async fn upsert_artifact<S: RegistryStore + 'static>(
    r: Shared<S>,
    parent_kind: Kind,
    id: String,
    body: Body,
) -> Response {
    let result = async { r.upsert_artifact(parent_kind, &id, json_body(body)?).await }.await;
    match result {
        Ok((artifact, true)) => (StatusCode::CREATED, Json(artifact)).into_response(),
        Ok((artifact, false)) => (StatusCode::OK, Json(artifact)).into_response(),
        Err(err) => error(&err),
    }
}

async fn metric_history<S: RegistryStore + 'static>(r: Shared<S>, run: Option<String>, params: Params) -> Response {
    let result = async {
        let q = query(params)?;
        let name = q.get("name").map(String::as_str);
        let steps = q.get("stepIds").map(String::as_str);
        r.metric_history(run.as_deref(), name, steps, &list_params(&q)).await
    }
    .await;
    respond(result, StatusCode::OK)
}

macro_rules! entity_routes {
    ($router:expr, $S:ty, $T:ty, $find:literal, $many:literal) => {
        $router
            .route($find, get(find::<$S, $T>))
            .route($many, get(list::<$S, $T>).post(create::<$S, $T>))
            .route(concat!($many, "/{id}"), get(fetch::<$S, $T>).patch(update::<$S, $T>))
    };
}

macro_rules! child_routes {
    ($router:expr, $S:ty, $T:ty, $path:literal, $parent:expr) => {
        $router.route(
            $path,
            get(|State(r): State<Shared<$S>>, Path(id): Path<String>, q: Params| {
                list_children::<$S, $T>(r, $parent, id, q)
            })
            .post(|State(r): State<Shared<$S>>, Path(id): Path<String>, body: Body| {
                create_child::<$S, $T>(r, $parent, id, body)
            }),
        )
    };
}

macro_rules! artifact_child_routes {
    ($router:expr, $S:ty, $path:literal, $parent:expr) => {
        $router.route(
            $path,
            get(|State(r): State<Shared<$S>>, Path(id): Path<String>, q: Params| {
                list_children::<$S, Artifact>(r, $parent, id, q)
            })
            .post(|State(r): State<Shared<$S>>, Path(id): Path<String>, body: Body| {
                upsert_artifact::<$S>(r, $parent, id, body)
            }),
        )
    };
}

fn api<S: RegistryStore + 'static>() -> Router<Shared<S>> {
    let app = Router::new();
    let app = entity_routes!(app, S, RegisteredModel, "/registered_model", "/registered_models");
    let app = entity_routes!(app, S, ModelVersion, "/model_version", "/model_versions");
    let app = entity_routes!(app, S, ModelArtifact, "/model_artifact", "/model_artifacts");
    let app = entity_routes!(app, S, Artifact, "/artifact", "/artifacts");
    let app = entity_routes!(app, S, ServingEnvironment, "/serving_environment", "/serving_environments");
    let app = entity_routes!(app, S, InferenceService, "/inference_service", "/inference_services");
    let app = entity_routes!(app, S, Experiment, "/experiment", "/experiments");
    let app = entity_routes!(app, S, ExperimentRun, "/experiment_run", "/experiment_runs");
    let app = child_routes!(app, S, ModelVersion, "/registered_models/{id}/versions", Kind::RegisteredModel);
    let app = child_routes!(
        app,
        S,
        InferenceService,
        "/serving_environments/{id}/inference_services",
        Kind::ServingEnvironment
    );
    let app = child_routes!(app, S, ServeModel, "/inference_services/{id}/serves", Kind::InferenceService);
    let app = child_routes!(app, S, ExperimentRun, "/experiments/{id}/experiment_runs", Kind::Experiment);
    let app = artifact_child_routes!(app, S, "/model_versions/{id}/artifacts", Kind::ModelVersion);
    let app = artifact_child_routes!(app, S, "/experiment_runs/{id}/artifacts", Kind::ExperimentRun);
    app.route(
        "/inference_services/{id}/model",
        get(|State(r): State<Shared<S>>, Path(id): Path<String>| async move {
            respond(r.inference_service_model(&id).await, StatusCode::OK)
        }),
    )
    .route(
        "/inference_services/{id}/version",
        get(|State(r): State<Shared<S>>, Path(id): Path<String>| async move {
            respond(r.inference_service_version(&id).await, StatusCode::OK)
        }),
    )
    .route(
        "/experiment_runs/metric_history",
        get(|State(r): State<Shared<S>>, q: Params| metric_history::<S>(r, None, q)),
    )
    .route(
        "/experiment_runs/{id}/metric_history",
        get(|State(r): State<Shared<S>>, Path(id): Path<String>, q: Params| metric_history::<S>(r, Some(id), q)),
    )
}
