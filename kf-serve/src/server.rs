//! The Open Inference Protocol v2 REST server (feature `server`): an axum
//! [`Router`] over a [`ModelRepository`], plus `/metrics` and the model
//! repository extension, and the functions that serve it with graceful
//! shutdown.
//!
//! This module owns HTTP only: paths, status codes, headers, body limits and
//! where inference runs. Decoding, checking and running requests belong to
//! [`crate::protocol`] and [`ModelRepository`]; errors map to statuses through
//! [`Error::class`] and are answered as `{"error": "..."}`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v2/health/live` | 200 |
//! | `GET /v2/health/ready` | 200 when every model version is ready, else 503 |
//! | `GET /v2` | server metadata |
//! | `GET /v2/models/{m}[/versions/{v}]` | model metadata, 404 unknown, 503 not ready |
//! | `GET /v2/models/{m}[/versions/{v}]/ready` | 200 ready, 503 not ready, 404 unknown |
//! | `POST /v2/models/{m}[/versions/{v}]/infer` | JSON or binary-extension inference |
//! | `POST /v2/repository/index` | every model version with its state |
//! | `POST /v2/repository/models/{m}/load` | loads `m` again from the repository ([`ServerOptions::loader`]): 200, 404 not in the repository, 500 when a version failed |
//! | `POST /v2/repository/models/{m}/unload` | stops serving every version of `m` |
//! | `GET /metrics` | Prometheus text |
//! | `POST /graphs/{g}` | runs InferenceGraph `g` on a JSON body ([`graph_routes`], merged in by the embedder) |

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::autoscale::KpaConfig;
use crate::metrics::Metrics;
use crate::protocol::{HEADER_LENGTH, InferenceRequest, ServerMetadata, parse_header_length};
use crate::{Error, ModelRepository, Result};

/// Default request body limit: 64 MiB, room for large binary batches.
pub const DEFAULT_BODY_LIMIT: usize = 64 << 20;

/// Bodies up to this size are decoded and run on the async worker that read
/// them (unless the model [waits](crate::Model::waits)); larger ones move to the blocking pool so one big batch cannot stall
/// the small requests sharing its worker. Small models answer in
/// microseconds, far less than a hop to another thread.
pub const INLINE_BODY_LIMIT: usize = 64 << 10;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The name `GET /v2` reports.
    pub name: String,
    /// The largest request body accepted, in bytes (larger: 413).
    pub body_limit: usize,
    /// The KPA behind `kf_serve_autoscaler_*` on `/metrics` ([`run`] only;
    /// embedders pass it to [`Metrics::with_autoscaler`]).
    pub autoscale: KpaConfig,
    /// Per-model KPA configurations replacing `autoscale` for those models
    /// (e.g. [`KpaConfig::for_predictor`] of each InferenceService).
    pub model_autoscale: std::collections::BTreeMap<String, KpaConfig>,
    /// How often [`run`] asks the autoscaler (default [`AUTOSCALE_PERIOD`]).
    pub autoscale_period: Duration,
    /// InferenceGraphs [`router`] serves at `POST /graphs/{name}` (see [`graph_routes`]).
    pub graphs: std::collections::BTreeMap<String, Arc<crate::router::GraphRouter>>,
    /// Where `POST /v2/repository/models/{m}/load` loads models from (e.g.
    /// a [`crate::store::RepositoryStore`], feature `store`); without one
    /// that route answers 400.
    pub loader: Option<Arc<dyn RepositoryLoader>>,
    /// The longest an inference request may take, body read included;
    /// later it is answered 503 `{"error": "... timed out ..."}` (the
    /// computation itself cannot be interrupted and finishes unseen).
    /// `None` waits as long as the model takes. Default [`REQUEST_TIMEOUT`].
    pub request_timeout: Option<Duration>,
}

/// The default [`ServerOptions::request_timeout`]: one minute.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Loads one model again from wherever the server's models come from.
pub trait RepositoryLoader: Send + Sync + std::fmt::Debug {
    /// Loads `model` into `repo` again, as a whole (every version the
    /// source has). An error names what failed; [`Error::ModelNotFound`]
    /// when the source has no such model.
    fn load<'a>(
        &'a self,
        repo: &'a ModelRepository,
        model: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

/// How often [`run`] asks the autoscaler for a recommendation by default (Knative's tick).
pub const AUTOSCALE_PERIOD: Duration = Duration::from_secs(2);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            name: "kf-serve".into(),
            body_limit: DEFAULT_BODY_LIMIT,
            autoscale: KpaConfig::default(),
            model_autoscale: std::collections::BTreeMap::new(),
            autoscale_period: AUTOSCALE_PERIOD,
            graphs: std::collections::BTreeMap::new(),
            loader: None,
            request_timeout: Some(REQUEST_TIMEOUT),
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
struct Shared {
    repo: Arc<ModelRepository>,
    metrics: Arc<Metrics>,
    options: Arc<ServerOptions>,
}

/// An error answered in the protocol's form.
struct ErrorResponse(Error);

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.class().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0.to_body())).into_response()
    }
}

impl From<Error> for ErrorResponse {
    fn from(e: Error) -> Self {
        ErrorResponse(e)
    }
}

type Answer = std::result::Result<Response, ErrorResponse>;

fn json(value: serde_json::Value) -> Response {
    axum::Json(value).into_response()
}

/// The v2 REST router over `repo`, with its request metrics in `metrics`.
///
/// ```
/// use std::sync::Arc;
/// use kf_serve::ModelRepository;
/// use kf_serve::metrics::Metrics;
/// use kf_serve::server::{ServerOptions, router};
///
/// let app = router(Arc::new(ModelRepository::new()), Arc::new(Metrics::default()), ServerOptions::default());
/// # let _ = app;
/// ```
pub fn router(repo: Arc<ModelRepository>, metrics: Arc<Metrics>, options: ServerOptions) -> Router {
    let graphs = options.graphs.clone();
    let shared = Shared { repo, metrics, options: Arc::new(options) };
    let app = Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata_versioned))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready_versioned))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_versioned))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(repository_load))
        .route("/v2/repository/models/{model}/unload", post(repository_unload))
        .route("/metrics", get(metrics_text))
        .fallback(no_route)
        .with_state(shared);
    if graphs.is_empty() { app } else { app.merge(graph_routes(graphs)) }
}

async fn no_route(uri: axum::http::Uri) -> Response {
    let body =
        serde_json::json!({"error": format!("no route {:?}; see the Open Inference Protocol v2 REST API", uri.path())});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn live() -> Response {
    json(serde_json::json!({"live": true}))
}

async fn ready(State(s): State<Shared>) -> Answer {
    if s.repo.all_ready() {
        Ok(json(serde_json::json!({"ready": true})))
    } else {
        let waiting: Vec<String> = s
            .repo
            .index()
            .into_iter()
            .filter(|e| e.state != "READY")
            .map(|e| format!("{}:{}", e.name, e.version))
            .collect();
        Err(Error::ModelNotReady { model: waiting.join(", "), reason: "not every model is ready".into() }.into())
    }
}

async fn server_metadata(State(s): State<Shared>) -> Response {
    let meta = ServerMetadata {
        name: s.options.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["binary_tensor_data".into(), "model_repository".into()],
    };
    axum::Json(meta).into_response()
}

fn metadata(s: &Shared, model: &str, version: Option<&str>) -> Answer {
    Ok(axum::Json(s.repo.metadata(model, version)?).into_response())
}

async fn model_metadata(State(s): State<Shared>, Path(model): Path<String>) -> Answer {
    metadata(&s, &model, None)
}

async fn model_metadata_versioned(State(s): State<Shared>, Path((model, version)): Path<(String, String)>) -> Answer {
    metadata(&s, &model, Some(&version))
}

fn readiness(s: &Shared, model: &str, version: Option<&str>) -> Answer {
    // Unknown: 404 from the repository. Known but not ready: 503, so that a
    // load balancer's health check and tritonclient both read "not ready".
    s.repo.model(model, version)?;
    Ok(json(serde_json::json!({"name": model, "ready": true})))
}

async fn model_ready(State(s): State<Shared>, Path(model): Path<String>) -> Answer {
    readiness(&s, &model, None)
}

async fn model_ready_versioned(State(s): State<Shared>, Path((model, version)): Path<(String, String)>) -> Answer {
    readiness(&s, &model, Some(&version))
}

async fn infer(State(s): State<Shared>, Path(model): Path<String>, headers: HeaderMap, body: Body) -> Response {
    run_infer(s, model, None, headers, body).await
}

async fn infer_versioned(
    State(s): State<Shared>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_infer(s, model, Some(version), headers, body).await
}

/// Reads a body of at most `limit` bytes, refusing larger ones as soon as
/// either the declared length or the bytes received pass the limit.
async fn read_body(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Vec<u8>> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        return Err(Error::PayloadTooLarge { limit, found: n });
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let frame =
            frame.map_err(|e| Error::BadRequest { path: "body".into(), message: format!("cannot read: {e}") })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(Error::PayloadTooLarge { limit, found: bytes.len() + data.len() });
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Decodes, runs and encodes one request: the synchronous part of inference.
fn answer(
    repo: &ModelRepository,
    model: &str,
    version: Option<&str>,
    header_length: Option<usize>,
    body: &[u8],
) -> Answer {
    let request = InferenceRequest::decode(body, header_length)?;
    let response = repo.infer(model, version, &request)?;
    let encoded = response.encode(&request.binary_outputs())?;
    let mut http = Response::new(Body::from(encoded.body));
    let content_type = HeaderValue::from_static(if encoded.header_length.is_some() {
        "application/octet-stream"
    } else {
        "application/json"
    });
    http.headers_mut().insert(CONTENT_TYPE, content_type);
    if let Some(n) = encoded.header_length {
        http.headers_mut().insert(HEADER_LENGTH, HeaderValue::from(n));
    }
    Ok(http)
}

async fn run_infer(s: Shared, model: String, version: Option<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let _in_flight = s.metrics.start();
    // Only names the repository knows get autoscaler windows (and labels).
    let _model_in_flight =
        s.repo.state(&model, version.as_deref()).is_ok().then(|| s.metrics.start_model(&model, started));
    let work = async {
        // A JSON body is one without the header, whatever its Content-Type says
        // (tritonclient sends none): only the header announces binary data.
        let header_length = headers
            .get(HEADER_LENGTH)
            .map(|v| {
                v.to_str().map_err(|_| Error::BadRequest { path: HEADER_LENGTH.into(), message: "not ASCII".into() })
            })
            .transpose()?
            .map(parse_header_length)
            .transpose()?;
        let body = read_body(&headers, body, s.options.body_limit).await?;
        // Models that wait (batching, remote) must not hold an async worker.
        let waits = s.repo.model(&model, version.as_deref()).is_ok_and(|(_, m)| m.waits());
        if body.len() <= INLINE_BODY_LIMIT && !waits {
            return answer(&s.repo, &model, version.as_deref(), header_length, &body);
        }
        let repo = Arc::clone(&s.repo);
        let (m, v) = (model.clone(), version.clone());
        tokio::task::spawn_blocking(move || answer(&repo, &m, v.as_deref(), header_length, &body))
            .await
            .map_err(|e| ErrorResponse(Error::Internal { message: format!("inference task failed: {e}") }))?
    };
    let result = match s.options.request_timeout {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(ErrorResponse(Error::ModelNotReady {
                model: model.clone(),
                reason: format!("the request timed out after {} s", limit.as_secs_f64()),
            }))
        }),
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    // Unknown model names are counted under "" so they cannot grow the label set.
    let label = if status == 404 { "" } else { model.as_str() };
    s.metrics.record(label, status, elapsed);
    if status >= 500 {
        tracing::warn!(model = %model, version = version.as_deref(), status, elapsed_us = elapsed.as_micros() as u64, "inference failed");
    } else {
        tracing::debug!(model = %model, version = version.as_deref(), status, elapsed_us = elapsed.as_micros() as u64, "inference");
    }
    response
}

async fn repository_index(State(s): State<Shared>) -> Response {
    axum::Json(s.repo.index()).into_response()
}

async fn repository_load(State(s): State<Shared>, Path(model): Path<String>) -> Answer {
    let Some(loader) = &s.options.loader else {
        return Err(ErrorResponse(Error::BadRequest {
            path: "model".into(),
            message: "this server has no model repository to load from".into(),
        }));
    };
    loader.load(&s.repo, &model).await?;
    Ok(json(serde_json::json!({})))
}

async fn repository_unload(State(s): State<Shared>, Path(model): Path<String>) -> Answer {
    s.repo.remove(&model, None)?;
    Ok(json(serde_json::json!({})))
}

async fn metrics_text(State(s): State<Shared>) -> Response {
    let mut text = s.metrics.render();
    crate::metrics::render_batching(&mut text, &s.repo.batch_stats());
    let mut response = text.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Routes serving InferenceGraphs by name: `POST /graphs/{name}` runs the
/// JSON body through the graph (on the blocking pool: steps may wait on
/// remote models) and answers its JSON, or `{"error": ...}` with the status
/// of the failing step's class; unknown names are 404. Merge it into
/// [`router`]: `router(repo, metrics, options).merge(graph_routes(graphs))`.
pub fn graph_routes(graphs: std::collections::BTreeMap<String, Arc<crate::router::GraphRouter>>) -> Router {
    Router::new().route("/graphs/{graph}", post(run_graph)).with_state(Arc::new(graphs))
}

type Graphs = Arc<std::collections::BTreeMap<String, Arc<crate::router::GraphRouter>>>;

async fn run_graph(State(graphs): State<Graphs>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Answer {
    let graph =
        graphs.get(&name).cloned().ok_or_else(|| Error::ModelNotFound { model: name.clone(), version: None })?;
    let bytes = read_body(&headers, body, DEFAULT_BODY_LIMIT).await?;
    let request: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::BadRequest { path: "body".into(), message: format!("expected JSON: {e}") })?;
    let answer = tokio::task::spawn_blocking(move || graph.route(&request))
        .await
        .map_err(|e| Error::Internal { message: format!("graph task failed: {e}") })??;
    Ok(json(answer))
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting connections and waits for the requests in flight to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Internal { message: format!("server failed: {e}") })
}

/// Completes on Ctrl-C or, on Unix, SIGTERM (what Kubernetes sends first).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, wait forever rather than stop at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs the autoscaler of `metrics` every `period` (the first tick after one
/// period), for as long as the task lives: what [`run`] spawns, and what an
/// embedder serving [`router`] itself spawns to get the
/// `kf_serve_autoscaler_*` gauges.
pub async fn autoscale_ticker(metrics: Arc<Metrics>, period: Duration) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        metrics.autoscale(Instant::now());
    }
}

/// Serves `repo` on `addr` on a runtime of its own until Ctrl-C or SIGTERM,
/// draining requests in flight: the whole of `kf serve`, including the
/// autoscaler ticking every [`ServerOptions::autoscale_period`].
/// `on_listening` is called with the bound address (useful with port 0).
pub fn run(
    addr: SocketAddr,
    repo: Arc<ModelRepository>,
    options: ServerOptions,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    run_until(addr, repo, options, on_listening, shutdown_signal())
}

/// [`run`], stopping when `shutdown` completes instead of on a signal.
pub fn run_until(
    addr: SocketAddr,
    repo: Arc<ModelRepository>,
    options: ServerOptions,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal { message: format!("cannot start the async runtime: {e}") })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Internal { message: format!("cannot listen on {addr}: {e}") })?;
        let bound = listener.local_addr().map_err(|e| Error::Internal { message: format!("{e}") })?;
        let metrics = Arc::new(Metrics::with_autoscaler(options.autoscale.clone())?);
        for (model, config) in &options.model_autoscale {
            metrics.configure_model(model, config.clone())?;
        }
        let period = options.autoscale_period.max(Duration::from_millis(10));
        let ticker = tokio::spawn(autoscale_ticker(Arc::clone(&metrics), period));
        on_listening(bound);
        let served = serve(listener, router(repo, metrics, options), shutdown).await;
        ticker.abort();
        served
    })
}

#[cfg(test)]
mod tests;
