//! [`RemoteModel`]: a model served by another Open Inference Protocol v2
//! server, reached over HTTP/1.1 (feature `remote`).
//!
//! What this module owns: the client side of the v2 REST protocol (binary
//! tensor extension on the way out, either form on the way back), the
//! connection pool, per-request timeouts, retries of the failures that are
//! safe to retry, and mapping the remote's answers onto [`Error`]. The
//! protocol checks stay with the repository that serves this model, as for
//! every runtime.
//!
//! [`Model::infer`] is synchronous, so the client runs on a small runtime of
//! its own and the calling thread waits for the answer: `waits()` is true,
//! and the server runs the model on its blocking pool.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::protocol::{HEADER_LENGTH, InferenceRequest, InferenceResponse, ModelMetadata, parse_header_length};
use crate::router::{StepCaller, Target};
use crate::{Error, Model, Result};
use serde_json::Value;

/// How a [`RemoteModel`] talks to its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Longest wait for one attempt's answer. Timeouts are not retried: the
    /// remote may have run the request. Default 30 s.
    pub timeout: Duration,
    /// Extra attempts after a connection failure or a 503. Default 3.
    pub retries: u32,
    /// Wait before the first retry, doubling each time. Default 50 ms.
    pub backoff: Duration,
    /// The longest wait between attempts. Default 2 s.
    pub max_backoff: Duration,
    /// While the remote is down, how often `is_ready` checks it in the
    /// background. Default 1 s.
    pub probe_interval: Duration,
    /// Idle pooled connections kept per host. Default 32.
    pub max_idle_connections: usize,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            probe_interval: Duration::from_secs(1),
            max_idle_connections: 32,
        }
    }
}

/// Why one HTTP exchange failed before an answer arrived.
#[derive(Debug)]
enum Failure {
    /// No connection: nothing was sent, so retrying is safe.
    Connect(String),
    /// No answer in time: the remote may have run the request.
    Timeout,
    /// The connection closed or reset before an answer (a backend that
    /// died): the remote may have run the request, so no retry, but the
    /// backend is as good as gone.
    Broken(String),
    /// Anything else after sending (connection reset mid-answer, bad HTTP).
    Other(String),
}

/// An answer: status, the binary header length if announced, the body.
struct Answer {
    status: StatusCode,
    header_length: Option<Result<usize>>,
    body: Bytes,
}

/// Whether the remote answered lately, and the background probe's state.
#[derive(Debug)]
struct Health {
    ready: AtomicBool,
    probing: AtomicBool,
    /// Milliseconds since `origin` of the last probe.
    last_probe: AtomicU64,
    origin: Instant,
}

impl Health {
    fn since_origin(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A model served by another v2 server (`kf serve`, Triton, KServe,
/// MLServer), usable wherever a local model is: in a repository, behind a
/// canary split, as a graph step.
///
/// - One pooled HTTP/1.1 client per model (keep-alive connections reused).
/// - Each attempt has [`RemoteOptions::timeout`]; connection failures and
///   503s are retried with exponential backoff (the request was not run,
///   or the remote said to come back); nothing else is.
/// - Remote errors map to this crate's: 400 → [`Error::BadRequest`], 404 →
///   [`Error::ModelNotFound`], 503, unreachable, connection lost or timed
///   out → [`Error::ModelNotReady`], anything else → [`Error::Inference`],
///   each with the remote's own message.
/// - After an unreachable, lost or 503 answer, [`Model::is_ready`] is false and
///   probes `…/ready` in the background every
///   [`RemoteOptions::probe_interval`], so a crashed backend that comes back
///   is used again without anyone reloading it.
pub struct RemoteModel {
    base: String,
    name: String,
    version: Option<String>,
    metadata: ModelMetadata,
    health: Arc<Health>,
    http: BlockingClient,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel")
            .field("base", &self.base)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("options", &self.http.options)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a path segment (model names and versions).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `error` of a v2 error body, or the body itself as text.
fn remote_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect())
}

async fn exchange(
    client: HttpClient,
    method: Method,
    uri: Uri,
    body: Bytes,
    header_length: Option<usize>,
    timeout: Duration,
) -> std::result::Result<Answer, Failure> {
    let content_type = if header_length.is_some() { "application/octet-stream" } else { "application/json" };
    let mut request = Request::builder().method(method).uri(uri).header(http::header::CONTENT_TYPE, content_type);
    if let Some(n) = header_length {
        request = request.header(HEADER_LENGTH, n);
    }
    let request =
        request.body(Full::new(body)).map_err(|e| Failure::Other(format!("cannot build the request: {e}")))?;
    let work = async {
        let response = client.request(request).await.map_err(|e| {
            use std::error::Error as _;
            let detail = e.source().map(|s| format!("{e}: {s}")).unwrap_or_else(|| e.to_string());
            if e.is_connect() {
                Failure::Connect(detail)
            } else if connection_lost(&e) {
                Failure::Broken(detail)
            } else {
                Failure::Other(detail)
            }
        })?;
        let status = response.status();
        let header_length = response
            .headers()
            .get(HEADER_LENGTH)
            .map(|v| v.to_str().map_err(|_| ()).map(parse_header_length))
            .map(|r| r.unwrap_or_else(|()| Err(Error::Internal { message: "a non-ASCII header length".into() })));
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Other(format!("the answer broke off: {e}")))?
            .to_bytes();
        Ok(Answer { status, header_length, body })
    };
    tokio::time::timeout(timeout, work).await.unwrap_or(Err(Failure::Timeout))
}

/// Whether `e` says the connection went away under the request: closed
/// before a complete answer, reset, or a broken pipe.
fn connection_lost(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// [`exchange`], retried with backoff while the failure is safe to retry.
/// Returns the last outcome and the attempts made.
async fn exchange_with_retries(
    client: HttpClient,
    method: Method,
    uri: Uri,
    body: Bytes,
    header_length: Option<usize>,
    options: RemoteOptions,
) -> (std::result::Result<Answer, Failure>, u32) {
    let mut wait = options.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome =
            exchange(client.clone(), method.clone(), uri.clone(), body.clone(), header_length, options.timeout).await;
        let retryable = match &outcome {
            Err(Failure::Connect(_)) => true,
            Ok(answer) => answer.status == StatusCode::SERVICE_UNAVAILABLE,
            Err(_) => false,
        };
        if !retryable || attempt > options.retries {
            return (outcome, attempt);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(options.max_backoff);
    }
}

/// The pooled HTTP/1.1 client on a small runtime of its own, waited on
/// from synchronous code: what [`RemoteModel`] and [`HttpCaller`] share.
struct BlockingClient {
    client: HttpClient,
    options: RemoteOptions,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingClient {
    fn new(options: RemoteOptions) -> std::result::Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kf-remote-client")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the client runtime: {e}"))?;
        let client = {
            // The pool's idle timer needs the runtime's context.
            let _entered = runtime.enter();
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(options.max_idle_connections)
                .pool_idle_timeout(Duration::from_secs(90))
                .build_http()
        };
        Ok(BlockingClient { client, options, runtime: Some(runtime) })
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.runtime.as_ref().ok_or_else(|| Error::Internal { message: "the client is stopping".into() })
    }

    /// Runs `work` on the client runtime and waits for it on this thread
    /// (any thread: no runtime is entered here, so none can be nested).
    fn block_on<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime()?.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().map_err(|_| Error::Internal { message: "the client runtime stopped".into() })
    }

    /// One call with retries: the last outcome and the attempts made.
    fn send(
        &self,
        method: Method,
        uri: Uri,
        body: Bytes,
        header_length: Option<usize>,
    ) -> Result<(std::result::Result<Answer, Failure>, u32)> {
        self.block_on(exchange_with_retries(
            self.client.clone(),
            method,
            uri,
            body,
            header_length,
            self.options.clone(),
        ))
    }
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics on an async worker (the
        // last Arc may go in a handler): let its threads wind down alone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `url` if it is `http://host[:port][/path]`.
fn http_uri(url: &str) -> std::result::Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") if uri.authority().is_some() => Ok(uri),
        Some("http") | None => Err(format!("{url:?}: expected http://host:port")),
        Some(other) => Err(format!("{url:?}: only http:// is supported (found {other}://)")),
    }
}

/// Maps the last outcome of a call to `server` for `model` onto this
/// crate's errors: remote 400 → 400, 404 → 404, 503 / unreachable / timed
/// out → 503, anything else → 500, each with the remote's own message.
fn check_answer(
    outcome: std::result::Result<Answer, Failure>,
    attempts: u32,
    server: &str,
    model: &str,
    version: Option<&str>,
    timeout: Duration,
) -> Result<Answer> {
    let model = model.to_string();
    let answer = match outcome {
        Ok(answer) => answer,
        Err(Failure::Connect(e)) => {
            return Err(Error::ModelNotReady {
                model,
                reason: format!("cannot reach {server} after {attempts} attempts: {e}"),
            });
        }
        Err(Failure::Timeout) => {
            return Err(Error::ModelNotReady { model, reason: format!("{server} gave no answer within {timeout:?}") });
        }
        Err(Failure::Broken(e)) => {
            return Err(Error::ModelNotReady {
                model,
                reason: format!(
                    "the connection to {server} closed before an answer (not retried: it may have run): {e}"
                ),
            });
        }
        Err(Failure::Other(e)) => {
            return Err(Error::Inference { model, message: format!("exchange with {server} failed: {e}") });
        }
    };
    let message = || remote_message(&answer.body);
    match answer.status {
        s if s.is_success() => Ok(answer),
        StatusCode::BAD_REQUEST => Err(Error::BadRequest { path: format!("remote {model}"), message: message() }),
        StatusCode::NOT_FOUND => Err(Error::ModelNotFound { model, version: version.map(str::to_string) }),
        StatusCode::SERVICE_UNAVAILABLE => {
            Err(Error::ModelNotReady { model, reason: format!("{} after {attempts} attempts", message()) })
        }
        StatusCode::PAYLOAD_TOO_LARGE => Err(Error::BadRequest {
            path: format!("remote {model}"),
            message: format!("the remote server refuses a body this large: {}", message()),
        }),
        status => Err(Error::Inference { model, message: format!("the remote answered {status}: {}", message()) }),
    }
}

impl RemoteModel {
    fn start(base_url: &str, model: &str, version: Option<&str>, options: RemoteOptions) -> Result<Self> {
        let load_error = |message: String| Error::ModelLoad { model: model.to_string(), message };
        http_uri(base_url).map_err(load_error)?;
        let http = BlockingClient::new(options).map_err(load_error)?;
        Ok(RemoteModel {
            base: base_url.trim_end_matches('/').to_string(),
            name: model.to_string(),
            version: version.map(str::to_string),
            metadata: ModelMetadata {
                name: model.to_string(),
                versions: None,
                platform: String::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
            },
            health: Arc::new(Health {
                ready: AtomicBool::new(true),
                probing: AtomicBool::new(false),
                last_probe: AtomicU64::new(0),
                origin: Instant::now(),
            }),
            http,
        })
    }

    /// Connects to model `model` (at `version`, or the server's choice) of
    /// the v2 server at `base_url` (`http://host:port`, optionally with a
    /// path prefix) and reads its metadata, retrying while the server is
    /// unreachable or answers 503.
    pub fn connect(base_url: &str, model: &str, version: Option<&str>, options: RemoteOptions) -> Result<Self> {
        let mut remote = RemoteModel::start(base_url, model, version, options)?;
        let uri = remote.uri("")?;
        let answer = remote.call(Method::GET, uri, Bytes::new(), None)?;
        remote.metadata = serde_json::from_slice(&answer.body).map_err(|e| Error::ModelLoad {
            model: model.to_string(),
            message: format!("{} answered metadata that is not v2 model metadata: {e}", remote.base),
        })?;
        Ok(remote)
    }

    /// A remote model whose metadata is known already: no request is made
    /// until the first inference (useful when the backend starts later).
    pub fn with_metadata(
        base_url: &str,
        model: &str,
        version: Option<&str>,
        metadata: ModelMetadata,
        options: RemoteOptions,
    ) -> Result<Self> {
        let mut remote = RemoteModel::start(base_url, model, version, options)?;
        remote.metadata = metadata;
        Ok(remote)
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `{base}/v2/models/{name}[/versions/{v}]{suffix}`.
    fn uri(&self, suffix: &str) -> Result<Uri> {
        let mut url = format!("{}/v2/models/{}", self.base, segment(&self.name));
        if let Some(v) = &self.version {
            url.push_str(&format!("/versions/{}", segment(v)));
        }
        url.push_str(suffix);
        url.parse().map_err(|e| Error::Internal { message: format!("cannot form a URL from {url:?}: {e}") })
    }

    /// One call with retries, mapped to this crate's errors; keeps the
    /// health flag in step with what happened.
    fn call(&self, method: Method, uri: Uri, body: Bytes, header_length: Option<usize>) -> Result<Answer> {
        let (outcome, attempts) = self.http.send(method, uri, body, header_length)?;
        let unreachable = match &outcome {
            Err(Failure::Connect(_) | Failure::Broken(_)) => true,
            Ok(answer) => answer.status == StatusCode::SERVICE_UNAVAILABLE,
            Err(_) => false,
        };
        let checked =
            check_answer(outcome, attempts, &self.base, &self.name, self.version.as_deref(), self.http.options.timeout);
        if unreachable {
            self.health.ready.store(false, Ordering::Relaxed);
        } else if checked.is_ok() {
            self.health.ready.store(true, Ordering::Relaxed);
        }
        checked
    }

    /// Starts a background readiness probe unless one ran lately.
    fn probe(&self) {
        let health = &self.health;
        let now = health.since_origin();
        let interval = u64::try_from(self.http.options.probe_interval.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(health.last_probe.load(Ordering::Relaxed)) < interval
            || health.probing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (Ok(uri), Ok(runtime)) = (self.uri("/ready"), self.http.runtime()) else {
            health.probing.store(false, Ordering::Release);
            return;
        };
        let (client, health, timeout) = (self.http.client.clone(), Arc::clone(&self.health), self.http.options.timeout);
        runtime.spawn(async move {
            let answer = exchange(client, Method::GET, uri, Bytes::new(), None, timeout).await;
            if answer.is_ok_and(|a| a.status.is_success()) {
                health.ready.store(true, Ordering::Relaxed);
            }
            health.last_probe.store(health.since_origin(), Ordering::Relaxed);
            health.probing.store(false, Ordering::Release);
        });
    }
}

impl Model for RemoteModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// True until the remote is found unreachable (or answering 503); then
    /// false until a background probe of `…/ready` succeeds. Never blocks.
    fn is_ready(&self) -> bool {
        if self.health.ready.load(Ordering::Relaxed) {
            return true;
        }
        self.probe();
        false
    }

    fn waits(&self) -> bool {
        true
    }

    fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        // Binary inputs: no float formatting, and BYTES that are not UTF-8 travel too.
        let encoded = request.encode(true)?;
        let answer = self.call(Method::POST, self.uri("/infer")?, Bytes::from(encoded.body), encoded.header_length)?;
        let header_length = answer.header_length.transpose().map_err(|e| Error::Inference {
            model: self.name.clone(),
            message: format!("the remote's {HEADER_LENGTH} is invalid: {e}"),
        })?;
        // A body we cannot read is the remote's fault, never the client's: 500, not 400.
        InferenceResponse::decode(&answer.body, header_length).map_err(|e| Error::Inference {
            model: self.name.clone(),
            message: format!("the remote answered a body that is not a v2 response: {e}"),
        })
    }
}

/// A [`StepCaller`] for inference graphs that can reach `serviceUrl`
/// targets: JSON is POSTed to the URL over the same pooled, timed,
/// retrying client as [`RemoteModel`], with the same error mapping;
/// `serviceName` targets go to `services` (a model repository, say).
///
/// ```no_run
/// use std::sync::Arc;
/// use kf_serve::{ModelRepository, RemoteOptions};
/// use kf_serve::router::{GraphRouter, HttpCaller};
/// # fn plan() -> kf_serve::router::GraphPlan { unimplemented!() }
///
/// let repo = Arc::new(ModelRepository::new());
/// let caller = HttpCaller::new(RemoteOptions::default())?.with_services(repo);
/// let router = GraphRouter::new(plan(), Arc::new(caller));
/// # Ok::<(), kf_serve::Error>(())
/// ```
pub struct HttpCaller {
    http: BlockingClient,
    services: Option<Arc<dyn StepCaller>>,
}

impl std::fmt::Debug for HttpCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCaller").field("options", &self.http.options).finish_non_exhaustive()
    }
}

impl HttpCaller {
    /// A caller for URL targets only.
    pub fn new(options: RemoteOptions) -> Result<Self> {
        let http = BlockingClient::new(options).map_err(|message| Error::Internal { message })?;
        Ok(HttpCaller { http, services: None })
    }

    /// Also answers `serviceName` targets, through `services`.
    pub fn with_services(mut self, services: Arc<dyn StepCaller>) -> Self {
        self.services = Some(services);
        self
    }
}

impl StepCaller for HttpCaller {
    fn call(&self, target: Target<'_>, body: &Value) -> Result<Value> {
        let url = match target {
            Target::Url(url) => url,
            Target::Service(name) => {
                return match &self.services {
                    Some(services) => services.call(target, body),
                    None => Err(Error::ModelNotFound { model: name.to_string(), version: None }),
                };
            }
        };
        // A bad URL is the graph's fault, not the client's: 500.
        let uri = http_uri(url).map_err(|message| Error::Internal { message: format!("serviceUrl {message}") })?;
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Internal { message: e.to_string() })?;
        let (outcome, attempts) = self.http.send(Method::POST, uri, Bytes::from(bytes), None)?;
        let answer = check_answer(outcome, attempts, url, url, None, self.http.options.timeout)?;
        serde_json::from_slice(&answer.body).map_err(|e| Error::Inference {
            model: url.to_string(),
            message: format!("answered with a body that is not JSON: {e}"),
        })
    }
}

#[cfg(all(test, feature = "server"))]
mod tests;
