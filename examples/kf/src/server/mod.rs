//! `kf server`: the kf APIs on one address, every one behind the tenancy
//! layer. Wiring only: each crate's router, wrapped in `TenancyLayer` with a
//! scope saying what its requests touch, mounted by path prefix.
//!
//! Mounted today (docs/server.md lists every endpoint):
//! - `/api/model_registry/…` — kf-registry's REST API (the official
//!   client's), and `/api/kf_registry/v1/…` its model-file endpoints,
//!   resource `registeredmodels` in the server's namespace;
//! - `/v2/…` — kf-serve's OIP v2 API over a model repository, resource
//!   `inferenceservices` (health probes are public);
//! - `/api/tenancy/v1/…` — profiles and contributors (KFAM's job);
//! - `/api/pipelines/v1/namespaces/{ns}/runs…` — submit, list, get and
//!   cancel pipeline runs and read task logs, resource `runs` in `ns`;
//! - `/api/serving/v1/models` — what is served: versions, readiness, canary
//!   splits and request counts, resource `inferenceservices`;
//! - `/metrics` — kf-serve's Prometheus metrics, public.
//!
//! - `/api/tuning/v1/namespaces/{ns}/…` — Katib experiments run as local
//!   processes, and ask/tell studies over HTTP, resource `experiments` in `ns`;
//!
//! - `/api/training/v1/namespaces/{ns}/trainjobs…` — TrainJobs on kf-train's
//!   local backend with per-rank state and logs, resource `trainjobs` in `ns`;
//! - `/` and `/ui/…` — the web dashboard's static files, public: the page
//!   reads everything it shows from the APIs above with the user's credentials.

mod dashboard;
mod pipelines;
pub mod serving;
pub mod training;
mod tuning;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

use axum::{Json, Router};
use kf_serve::metrics::Metrics;
use kf_serve::server::ServerOptions;
use kf_serve::{Model, ModelRepository, OnnxModel};
use kf_tenancy::{
    Access, AccessCheck, ApiTokens, Authenticator, Identity, Profile, ProxyTrust, RequestHead, Role, RoleTable,
    SqlitePolicyStore, Subject, Tenancy, TenancyLayer,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// `kf server` flags; each also reads `KF_SERVER_*` and, below that, the TOML file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A TOML file with any of the settings below (flags and environment win).
    #[arg(long, env = "KF_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// Where to listen [default: 127.0.0.1:8080].
    #[arg(long, env = "KF_SERVER_ADDR")]
    addr: Option<SocketAddr>,
    /// Where the server keeps its stores [default: ~/.local/share/kf/server].
    #[arg(long, env = "KF_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Models to serve: `<dir>/<model>/<version>/model.onnx`.
    #[arg(long, env = "KF_SERVER_MODEL_REPOSITORY")]
    model_repository: Option<PathBuf>,
    /// The registry's database: `sqlite://PATH` or `postgres://USER@HOST/DB`
    /// [default: sqlite://<data_dir>/registry.db].
    #[arg(long, env = "KF_SERVER_REGISTRY_DB")]
    registry_db: Option<String>,
}

/// The TOML file: every setting, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    model_repository: Option<PathBuf>,
    /// The registry's database: `sqlite://PATH` or `postgres://…`.
    registry_db: Option<String>,
    /// Where pipeline artifacts and the step cache go (`s3://bucket/prefix`,
    /// `file:///dir`); AWS_* variables configure S3 [default: the data dir].
    pipeline_objects: Option<String>,
    /// Where registered model files go (a directory, `file://`, `s3://…`)
    /// [default: <data_dir>/registry-files].
    registry_files: Option<String>,
    /// The namespace the registry and the served models belong to (a
    /// Kubeflow model registry is deployed per namespace) [default: kubeflow].
    namespace: Option<String>,
    /// Users (or `group:NAME`) who are cluster admins.
    #[serde(default)]
    cluster_admins: Vec<String>,
    /// Proxies (CIDRs) whose `kubeflow-userid`/`kubeflow-groups` headers are believed.
    #[serde(default)]
    trusted_proxies: Vec<String>,
    /// API tokens: `token = "user"` (`Authorization: Bearer token`).
    #[serde(default)]
    tokens: BTreeMap<String, String>,
    /// Canary splits between two versions of a served model.
    #[serde(default)]
    canary: Vec<serving::CanaryConfig>,
}

/// Runs `kf server` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kf server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What [`app`] serves, resolved from flags, environment and kf.toml — or
/// built by a program embedding the server (the quickstart does).
pub struct Settings {
    /// Where the stores live: tenancy.db, registry.db, pipelines/, tuning/, training/.
    pub data_dir: PathBuf,
    /// The namespace the registry and the served models belong to.
    pub namespace: String,
    /// Users (or `group:NAME`) who are cluster admins.
    pub cluster_admins: Vec<String>,
    /// CIDRs whose identity headers are believed.
    pub trusted_proxies: Vec<String>,
    /// (token, user) pairs.
    pub tokens: Vec<(String, String)>,
    /// `sqlite://…` or `postgres://…`.
    pub registry_db: String,
    /// Where registered model files go (a directory or an object_store URL).
    pub registry_files: String,
    /// Where pipeline artifacts and the step cache go (`s3://…`, `file://…`)
    /// instead of `<data_dir>/pipelines/<ns>`; journals stay local.
    pub pipeline_objects: Option<String>,
    /// The models served over OIP v2.
    pub repo: Arc<ModelRepository>,
    /// Canary splits to put in front of `repo`'s versions.
    pub canaries: Vec<serving::CanaryConfig>,
}

/// The address and settings flags, environment and the TOML file describe.
fn resolve(args: Args) -> anyhow::Result<(SocketAddr, Settings)> {
    let config: Config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
        None => Config::default(),
    };
    let addr = args.addr.or(config.addr).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let data_dir = match args.data_dir.or(config.data_dir.clone()) {
        Some(dir) => dir,
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/kf/server"))
            .ok_or_else(|| anyhow::anyhow!("HOME is not set: pass --data-dir"))?,
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let repo = Arc::new(ModelRepository::new());
    if let Some(dir) = args.model_repository.as_ref().or(config.model_repository.as_ref()) {
        let load = |name: &str, path: &std::path::Path| -> kf_serve::Result<Arc<dyn Model>> {
            Ok(Arc::new(OnnxModel::load(name, path)?))
        };
        repo.load_dir(dir, load).with_context(|| format!("the model repository {}", dir.display()))?;
    }
    let settings = Settings {
        registry_db: match args.registry_db.or(config.registry_db) {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("registry.db").display()),
        },
        pipeline_objects: config.pipeline_objects,
        registry_files: config.registry_files.unwrap_or_else(|| data_dir.join("registry-files").display().to_string()),
        namespace: config.namespace.unwrap_or_else(|| "kubeflow".into()),
        cluster_admins: config.cluster_admins,
        trusted_proxies: config.trusted_proxies,
        tokens: config.tokens.into_iter().collect(),
        canaries: config.canary,
        data_dir,
        repo,
    };
    Ok((addr, settings))
}

/// What `kf server --config path` would serve (its address aside).
pub fn settings_from_config(path: &std::path::Path) -> anyhow::Result<Settings> {
    let args =
        Args { config: Some(path.to_owned()), addr: None, data_dir: None, model_repository: None, registry_db: None };
    Ok(resolve(args)?.1)
}

fn serve(args: Args) -> anyhow::Result<()> {
    let (addr, settings) = resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (data_dir, namespace) = (settings.data_dir.clone(), settings.namespace.clone());
        let app = app(settings).await?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        eprintln!(
            "kf server: listening on http://{bound} (dashboard at http://{bound}/; data in {}; namespace {namespace})",
            data_dir.display()
        );
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(kf_serve::server::shutdown_signal())
            .await?;
        anyhow::Ok(())
    })
}

/// Every kf API over the stores in `settings.data_dir`, each behind the
/// tenancy layer, dispatched by path prefix. Serve it with connect info
/// (`into_make_service_with_connect_info::<SocketAddr>()`): trusted-proxy
/// checks need the peer address. Unfinished pipeline runs and experiments
/// resume as it is built (needs a tokio runtime).
pub async fn app(settings: Settings) -> anyhow::Result<Router> {
    let data_dir = settings.data_dir;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    // One per process in practice; scopes are plain fns and need it static.
    let namespace: &'static str = Box::leak(settings.namespace.into_boxed_str());
    let admins: Vec<Subject> = settings.cluster_admins.iter().map(|a| subject(a)).collect();
    let db = data_dir.join("tenancy.db");
    let store = SqlitePolicyStore::open(&db.display().to_string())
        .await
        .with_context(|| format!("the policy store {}", db.display()))?;
    let tenancy = Arc::new(Tenancy::load(store, RoleTable::default(), &admins).await?);
    let mut authn = Authenticator::new();
    if !settings.trusted_proxies.is_empty() {
        let proxies: Vec<&str> = settings.trusted_proxies.iter().map(String::as_str).collect();
        authn = authn.with_proxy(ProxyTrust::parse(&proxies)?);
    }
    let mut tokens = ApiTokens::new();
    for (token, user) in &settings.tokens {
        tokens.insert(token, Identity::user(user.clone()));
    }
    authn = authn.with_tokens(tokens);
    let guard = |router: Router, scope: for<'a> fn(&RequestHead<'a>, &'static str) -> Access<'a>| {
        router.layer(TenancyLayer::new(authn.clone(), tenancy.policy(), move |head| scope(head, namespace)))
    };

    let files = &settings.registry_files;
    let files = kf_registry::artifact_store::ArtifactStore::from_url(files)
        .with_context(|| format!("the registry's file store {files}"))?;
    let registry_db = &settings.registry_db;
    let registry = crate::registry_cmd::router_for(registry_db, || Ok(Some(files))).await?;
    let registry = guard(registry, registry_scope);

    let repo = settings.repo;
    let canaries = serving::install(&repo, &settings.canaries)?;
    let metrics = Arc::new(Metrics::default());
    let served = guard(serving::router(repo.clone(), metrics.clone(), canaries), oip_scope);
    let oip = guard(kf_serve::server::router(repo, metrics, ServerOptions::default()), oip_scope);
    let admin = guard(tenancy_api(tenancy.clone()), tenancy_scope);
    let runs = guard(pipelines::router(data_dir.join("pipelines"), settings.pipeline_objects.clone()), pipelines_scope);
    let tuning = guard(tuning::router(data_dir.join("tuning")), tuning_scope);
    let training = guard(training::router(data_dir.join("training")), training_scope);
    let ui = guard(dashboard::router(), |_, _| Access::Public);

    // Each API keeps its own paths and fallback, so the top level only
    // picks one by prefix (nesting would strip paths or leak captures).
    let app = Router::new().fallback(move |request: axum::extract::Request| {
        let path = request.uri().path();
        let api = if path.starts_with("/api/model_registry/") || path.starts_with("/api/kf_registry/") {
            Some(registry.clone())
        } else if path == "/v2" || path.starts_with("/v2/") || path == "/metrics" {
            Some(oip.clone())
        } else if path.starts_with("/api/serving/v1/") {
            Some(served.clone())
        } else if path.starts_with("/api/tenancy/v1/") {
            Some(admin.clone())
        } else if path.starts_with("/api/pipelines/v1/") {
            Some(runs.clone())
        } else if path.starts_with("/api/tuning/v1/") {
            Some(tuning.clone())
        } else if path.starts_with("/api/training/v1/") {
            Some(training.clone())
        } else if path == "/" || path == "/ui" || path.starts_with("/ui/") {
            Some(ui.clone())
        } else {
            None
        };
        async move {
            match api {
                Some(api) => match tower::ServiceExt::oneshot(api, request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                None => error(StatusCode::NOT_FOUND, format!("no kf API at {}", request.uri().path())),
            }
        }
    });
    Ok(app)
}

/// `alice` → a user, `group:ml` → a group.
fn subject(text: &str) -> Subject {
    match text.strip_prefix("group:") {
        Some(group) => Subject::Group(group.to_owned()),
        None => Subject::User(text.to_owned()),
    }
}

fn registry_scope<'a>(head: &RequestHead<'a>, namespace: &'static str) -> Access<'a> {
    Access::Namespaced { namespace: namespace.into(), resource: "registeredmodels".into(), verb: head.verb() }
}

fn oip_scope<'a>(head: &RequestHead<'a>, namespace: &'static str) -> Access<'a> {
    match (head.path_segment(0), head.path_segment(1)) {
        (Some("v2"), Some("health")) | (Some("metrics"), None) => Access::Public,
        _ => {
            Access::Namespaced { namespace: namespace.into(), resource: "inferenceservices".into(), verb: head.verb() }
        }
    }
}

/// `/api/<api>/v1/namespaces/{ns}/…`: `resource` in `ns`; anything else
/// under such an API is for cluster admins.
fn in_path_namespace<'a>(head: &RequestHead<'a>, resource: &'static str) -> Access<'a> {
    match (head.path_segment(3), head.path_segment(4)) {
        (Some("namespaces"), Some(ns)) => {
            Access::Namespaced { namespace: ns.into(), resource: resource.into(), verb: head.verb() }
        }
        _ => Access::ClusterAdmin,
    }
}

/// `/api/pipelines/v1/namespaces/{ns}/…`: resource `runs` in `ns`.
fn pipelines_scope<'a>(head: &RequestHead<'a>, _namespace: &'static str) -> Access<'a> {
    in_path_namespace(head, "runs")
}

/// `/api/tuning/v1/namespaces/{ns}/…`: resource `experiments` in `ns`
/// (studies too: they are experiments driven from outside).
fn tuning_scope<'a>(head: &RequestHead<'a>, _namespace: &'static str) -> Access<'a> {
    in_path_namespace(head, "experiments")
}

/// `/api/training/v1/namespaces/{ns}/…`: resource `trainjobs` in `ns`.
fn training_scope<'a>(head: &RequestHead<'a>, _namespace: &'static str) -> Access<'a> {
    in_path_namespace(head, "trainjobs")
}

/// Profiles: listing shows what the caller may see; creating one is for
/// cluster admins; contributors change through `Tenancy::grant`/`revoke`,
/// which refuse anyone who is not the owner or an admin of the namespace and
/// any grant above the granter's own role.
fn tenancy_scope<'a>(head: &RequestHead<'a>, _namespace: &'static str) -> Access<'a> {
    // /api/tenancy/v1/profiles: segment 4 is a namespace when there is one.
    match (head.verb(), head.path_segment(4)) {
        (kf_tenancy::Verb::Create, None) => Access::ClusterAdmin,
        _ => Access::Authenticated,
    }
}

type SharedTenancy = Arc<Tenancy<SqlitePolicyStore>>;

fn tenancy_api(tenancy: SharedTenancy) -> Router {
    Router::new()
        .route("/api/tenancy/v1/profiles", get(list_profiles).post(create_profile))
        .route("/api/tenancy/v1/profiles/{namespace}/contributors/{user}", put(grant).delete(revoke))
        .with_state(tenancy)
}

/// A refusal before any work: its status and message.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// Names that become directory names (namespaces, experiments, studies)
/// must be DNS labels, as Kubernetes names them: no `/`, no `..`.
fn dns_label(what: &str, name: &str) -> Result<(), ApiError> {
    let label = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if label { Ok(()) } else { Err(ApiError(StatusCode::BAD_REQUEST, format!("{what} {name:?} is not a DNS label"))) }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A lock whose holder panicked is still usable: every guarded map here is
/// changed by single inserts and removes.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes `bytes` to a temporary file, syncs it and renames it into place:
/// a reader never sees half a file, and a crash leaves the old one.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Claims a name by creating its directory (and its parents): 409 naming
/// `what` when it exists already.
fn claim(dir: &std::path::Path, what: impl FnOnce() -> String) -> Result<(), ApiError> {
    std::fs::create_dir_all(dir.parent().unwrap_or(dir)).map_err(internal)?;
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(ApiError(StatusCode::CONFLICT, format!("{} exists", what())))
        }
        Err(e) => Err(internal(e)),
    }
}

/// The names in `dir`, sorted; none when it does not exist yet.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

/// A tenancy error as HTTP: refusals 403, unknown namespaces 404, the rest 400/500.
fn tenancy_error(err: kf_tenancy::Error) -> Response {
    let status = match &err {
        kf_tenancy::Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        kf_tenancy::Error::NotFound { .. } => StatusCode::NOT_FOUND,
        kf_tenancy::Error::Conflict { .. } => StatusCode::CONFLICT,
        kf_tenancy::Error::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, err)
}

fn subject_json(subject: &Subject) -> Value {
    match subject {
        Subject::User(name) => json!({"kind": "User", "name": name}),
        Subject::Group(name) => json!({"kind": "Group", "name": name}),
        Subject::ServiceAccount { namespace, name } => {
            json!({"kind": "ServiceAccount", "namespace": namespace, "name": name})
        }
    }
}

async fn list_profiles(State(tenancy): State<SharedTenancy>, Extension(access): Extension<AccessCheck>) -> Response {
    match tenancy.profiles().await {
        Ok(records) => {
            let visible = access.filter_visible(records, "profiles", |r| r.namespace.as_str());
            let items: Vec<Value> = visible
                .iter()
                .map(|r| {
                    let contributors: Vec<Value> = r
                        .bindings
                        .iter()
                        .map(|(s, role)| json!({"subject": subject_json(s), "role": role.as_str()}))
                        .collect();
                    json!({"name": r.namespace, "owner": subject_json(&r.owner), "contributors": contributors})
                })
                .collect();
            Json(json!({"items": items})).into_response()
        }
        Err(err) => tenancy_error(err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProfile {
    name: String,
    owner: String,
}

async fn create_profile(State(tenancy): State<SharedTenancy>, body: axum::body::Bytes) -> Response {
    let new: NewProfile = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("body: {err}")),
    };
    let owner = subject(&new.owner);
    let (kind, name) = match &owner {
        Subject::Group(g) => ("Group", g.clone()),
        _ => ("User", new.owner.clone()),
    };
    let profile = match Profile::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": new.name},
        "spec": {"owner": {"kind": kind, "name": name}},
    })) {
        Ok(p) => p,
        Err(err) => return error(StatusCode::BAD_REQUEST, err),
    };
    match tenancy.create_profile(&profile).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({"name": new.name, "owner": subject_json(&owner)}))).into_response(),
        Err(err) => tenancy_error(err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    role: String,
}

async fn grant(
    State(tenancy): State<SharedTenancy>,
    Extension(access): Extension<AccessCheck>,
    Path((namespace, user)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let grant: Grant = match serde_json::from_slice(&body) {
        Ok(g) => g,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("body: {err}")),
    };
    let role: Role = match grant.role.parse() {
        Ok(role) => role,
        Err(err) => return error(StatusCode::BAD_REQUEST, err),
    };
    match tenancy.grant(access.identity(), &namespace, &subject(&user), role).await {
        Ok(decision) if decision.allowed => {
            Json(json!({"namespace": namespace, "subject": subject_json(&subject(&user)), "role": role.as_str()}))
                .into_response()
        }
        Ok(decision) => error(StatusCode::FORBIDDEN, decision.reason),
        Err(err) => tenancy_error(err),
    }
}

async fn revoke(
    State(tenancy): State<SharedTenancy>,
    Extension(access): Extension<AccessCheck>,
    Path((namespace, user)): Path<(String, String)>,
) -> Response {
    match tenancy.revoke(access.identity(), &namespace, &subject(&user)).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("{user} is not a contributor of {namespace}")),
        Err(err) => tenancy_error(err),
    }
}
