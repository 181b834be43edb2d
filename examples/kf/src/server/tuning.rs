//! The tuning API of `kf server`, per namespace (resource `experiments`):
//!
//! - **experiments**: submit a Katib Experiment (YAML or JSON); its trials run
//!   as local processes, as `kf tune run` runs them, with the same journal, so
//!   a server restart resumes an unfinished experiment where it stopped. Read
//!   it back in Katib's status shape, list its trials, delete it (stops its
//!   trials and removes its data, as deleting a Katib Experiment does).
//! - **studies**: the ask/tell protocol (shared/protocols/tune-ask-tell.md)
//!   over HTTP. A study is one suggestion session; `POST …/requests` takes
//!   one protocol request object and answers with the protocol's reply
//!   object. Every request that changes the session is appended (fsync'd) to
//!   the study's journal before the reply leaves, and a study is rebuilt by
//!   replaying it: sessions are deterministic in their seed and requests.
//!
//! Layout: `<root>/<namespace>/experiments/<name>/{experiment.yaml,
//! journal.jsonl, trials/}` and `<root>/<namespace>/studies/<name>.jsonl`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kf_tune::Experiment;
use kf_tune::ask_tell::{Session, SpaceFile};
use kf_tune::experiment::{ExperimentState, Plan, TrialPhase};
use kf_tune::runner::process::ProcessRunner;
use kf_tune::runner::{self, Journal};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::AbortHandle;

use super::{ApiError, claim, dns_label, entries, error, internal, lock, write_whole};

/// The experiments running and the studies loaded.
pub struct Tuning {
    root: PathBuf,
    running: Mutex<HashMap<Key, AbortHandle>>,
    studies: Mutex<HashMap<Key, Arc<Mutex<Study>>>>,
}

/// (namespace, name).
type Key = (String, String);

type Shared = Arc<Tuning>;

/// The routes, under `/api/tuning/v1/namespaces/{ns}/…`. Experiments left
/// unfinished by a previous server are resumed here (needs a tokio runtime).
pub fn router(root: PathBuf) -> Router {
    let state = Arc::new(Tuning { root, running: Mutex::new(HashMap::new()), studies: Mutex::new(HashMap::new()) });
    state.resume_all();
    Router::new()
        .route("/api/tuning/v1/namespaces/{ns}/experiments", post(submit).get(list))
        .route("/api/tuning/v1/namespaces/{ns}/experiments/{name}", get(fetch).delete(remove))
        .route("/api/tuning/v1/namespaces/{ns}/experiments/{name}/trials", get(trials))
        .route("/api/tuning/v1/namespaces/{ns}/experiments/{name}/trials/{trial}/log", get(trial_log))
        .route("/api/tuning/v1/namespaces/{ns}/studies", post(create_study).get(list_studies))
        .route("/api/tuning/v1/namespaces/{ns}/studies/{name}", get(fetch_study).delete(remove_study))
        .route("/api/tuning/v1/namespaces/{ns}/studies/{name}/requests", post(request))
        .with_state(state)
}

impl Tuning {
    fn experiment_dir(&self, ns: &str, name: &str) -> Result<PathBuf, ApiError> {
        dns_label("namespace", ns)?;
        dns_label("experiment name", name)?;
        Ok(self.root.join(ns).join("experiments").join(name))
    }

    fn study_path(&self, ns: &str, name: &str) -> Result<PathBuf, ApiError> {
        dns_label("namespace", ns)?;
        dns_label("study name", name)?;
        Ok(self.root.join(ns).join("studies").join(format!("{name}.jsonl")))
    }

    /// Starts every experiment whose journal does not say it ended.
    fn resume_all(self: &Arc<Self>) {
        for ns in entries(&self.root) {
            for name in entries(&self.root.join(&ns).join("experiments")) {
                match self.experiment_dir(&ns, &name).map_err(|e| e.1).and_then(|dir| load(&dir)) {
                    Ok((_, state)) if state.end().is_none() => {
                        if let Err(e) = self.start(&ns, &name) {
                            tracing::warn!("experiment {ns}/{name} cannot resume: {}", e.1);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("experiment {ns}/{name} cannot be read: {e}"),
                }
            }
        }
    }

    /// Runs (or resumes) the experiment saved under its directory.
    fn start(self: &Arc<Self>, ns: &str, name: &str) -> Result<(), ApiError> {
        let dir = self.experiment_dir(ns, name)?;
        // The journal is replayed once, below, as it is opened for appending.
        let experiment = read_experiment(&dir).map_err(internal)?;
        let plan = Plan::from_katib(&experiment).map_err(internal)?;
        let seed = plan.algorithm.seed.unwrap_or(0);
        let trials = Arc::new(ProcessRunner::from_katib(&experiment, &dir.join("trials")).map_err(internal)?);
        let (mut journal, events) = Journal::open(&dir.join("journal.jsonl")).map_err(internal)?;
        let mut state = ExperimentState::new(plan);
        runner::replay(&mut state, events).map_err(internal)?;
        let key = (ns.to_owned(), name.to_owned());
        let api = self.clone();
        let mut running = lock(&self.running);
        let task = tokio::spawn({
            let key = key.clone();
            async move {
                if let Err(e) = runner::run(state, trials, Some(&mut journal), seed, |_, _| {}).await {
                    tracing::warn!("experiment {}/{}: {e}", key.0, key.1);
                }
                lock(&api.running).remove(&key);
            }
        });
        running.insert(key, task.abort_handle());
        Ok(())
    }
}

/// The Experiment saved in `dir`.
fn read_experiment(dir: &FsPath) -> Result<Experiment, String> {
    let text = std::fs::read_to_string(dir.join("experiment.yaml")).map_err(|e| format!("experiment.yaml: {e}"))?;
    crate::tune_cmd::experiment_from_text(&text)
}

/// The experiment saved in `dir` and its state replayed from the journal
/// (read-only: safe while its run appends).
fn load(dir: &FsPath) -> Result<(Experiment, ExperimentState), String> {
    let experiment = read_experiment(dir)?;
    let plan = Plan::from_katib(&experiment).map_err(|e| e.to_string())?;
    let mut state = ExperimentState::new(plan);
    let journal = dir.join("journal.jsonl");
    if journal.exists() {
        let events = Journal::read(&journal).map_err(|e| e.to_string())?;
        runner::replay(&mut state, events).map_err(|e| e.to_string())?;
    }
    Ok((experiment, state))
}

/// A saved experiment, or 404.
fn load_or_404(api: &Tuning, ns: &str, name: &str) -> Result<(Experiment, ExperimentState), ApiError> {
    let dir = api.experiment_dir(ns, name)?;
    if !dir.join("experiment.yaml").exists() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no experiment {name:?} in namespace {ns}")));
    }
    load(&dir).map_err(internal)
}

async fn submit(State(api): State<Shared>, Path(ns): Path<String>, body: String) -> Response {
    match submit_experiment(&api, &ns, &body) {
        Ok(name) => (StatusCode::CREATED, Json(json!({"namespace": ns, "experiment": name}))).into_response(),
        Err(refused) => refused.into_response(),
    }
}

fn submit_experiment(api: &Arc<Tuning>, ns: &str, body: &str) -> Result<String, ApiError> {
    let bad = |e: String| ApiError(StatusCode::BAD_REQUEST, e);
    let experiment = crate::tune_cmd::experiment_from_text(body).map_err(bad)?;
    experiment.validate().map_err(|e| bad(e.to_string()))?;
    let plan = Plan::from_katib(&experiment).map_err(|e| bad(e.to_string()))?;
    // The namespace is the path's; a document naming another one is refused,
    // not moved (the tenancy layer checked the path's namespace only).
    if experiment.metadata.as_ref().and_then(|m| m.namespace.as_deref()).is_some_and(|n| n != ns) {
        return Err(bad(format!(
            "metadata.namespace: expected {ns:?} (the namespace in the path), found {:?}",
            plan.namespace
        )));
    }
    let dir = api.experiment_dir(ns, &plan.name)?;
    // Refused here rather than at the first trial: a local run needs an inline command.
    ProcessRunner::from_katib(&experiment, &dir.join("trials")).map_err(|e| bad(e.to_string()))?;
    claim(&dir, || format!("experiment {:?} in namespace {ns}", plan.name))?;
    let yaml = serde_saphyr::to_string(&experiment.to_value()).map_err(internal)?;
    write_whole(&dir.join("experiment.yaml"), yaml.as_bytes()).map_err(internal)?;
    api.start(ns, &plan.name)?;
    Ok(plan.name)
}

/// One experiment's summary line.
fn summary(name: &str, experiment: &Experiment, state: &ExperimentState, running: bool) -> Value {
    let plan = state.plan();
    let best = state
        .best()
        .map(|(_, t)| json!({"trial": t.name, "value": t.objective, "params": params_of(state, &t.assignment)}));
    json!({
        "experiment": name,
        "algorithm": experiment.spec.as_ref().and_then(|s| s.algorithm.as_ref()).and_then(|a| a.algorithm_name.clone()),
        "objective": {"metric": plan.objective_metric, "direction": format!("{:?}", plan.direction).to_lowercase()},
        "trials": state.trials().len(),
        "succeeded": state.trials().iter().filter(|t| t.phase == TrialPhase::Succeeded).count(),
        "running": running,
        "ended": state.end().map(|r| r.katib().0),
        "best": best,
    })
}

fn params_of(state: &ExperimentState, assignment: &[kf_tune::ParamValue]) -> serde_json::Map<String, Value> {
    state.plan().space.format(assignment).into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

async fn list(State(api): State<Shared>, Path(ns): Path<String>) -> Response {
    if let Err(refused) = dns_label("namespace", &ns) {
        return refused.into_response();
    }
    let mut items = Vec::new();
    for name in entries(&api.root.join(&ns).join("experiments")) {
        let running = lock(&api.running).contains_key(&(ns.clone(), name.clone()));
        match load_or_404(&api, &ns, &name) {
            Ok((experiment, state)) => items.push(summary(&name, &experiment, &state, running)),
            // Being created, or unreadable: listed by name so it is not invisible.
            Err(e) => items.push(json!({"experiment": name, "error": e.1})),
        }
    }
    Json(json!({"items": items})).into_response()
}

async fn fetch(State(api): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    match load_or_404(&api, &ns, &name) {
        Ok((experiment, state)) => {
            let running = lock(&api.running).contains_key(&(ns.clone(), name.clone()));
            let mut body = summary(&name, &experiment, &state, running);
            body["status"] = serde_json::to_value(state.status(None, None)).unwrap_or(Value::Null);
            body["spec"] = experiment.to_value()["spec"].take();
            Json(body).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

async fn trials(State(api): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    match load_or_404(&api, &ns, &name) {
        Ok((_, state)) => {
            let items: Vec<Value> = state
                .trials()
                .iter()
                .map(|t| {
                    let metrics: Vec<Value> = state
                        .metrics_of(t)
                        .into_iter()
                        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
                        .collect();
                    json!({"trial": t.name, "phase": format!("{:?}", t.phase), "params": params_of(&state, &t.assignment),
                           "objective": t.objective, "metrics": metrics, "message": t.message})
                })
                .collect();
            Json(json!({"items": items})).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

/// A trial's output (standard output and error as printed). The trial must
/// be one the experiment's journal names: the path is built from that name,
/// never from the client's text.
async fn trial_log(State(api): State<Shared>, Path((ns, name, trial)): Path<(String, String, String)>) -> Response {
    let state = match load_or_404(&api, &ns, &name) {
        Ok((_, state)) => state,
        Err(refused) => return refused.into_response(),
    };
    let Some(known) = state.trials().iter().find(|t| t.name == trial) else {
        // The requested text is not echoed back: it is the client's, not a name we know.
        return error(StatusCode::NOT_FOUND, format!("experiment {name:?} in namespace {ns} has no such trial"));
    };
    let dir = match api.experiment_dir(&ns, &name) {
        Ok(dir) => dir,
        Err(refused) => return refused.into_response(),
    };
    let path = dir.join("trials").join(&known.name).join(kf_tune::runner::process::OUTPUT_LOG);
    match tokio::fs::read(&path).await {
        Ok(bytes) => (StatusCode::OK, [("content-type", "text/plain; charset=utf-8")], bytes).into_response(),
        Err(_) => error(StatusCode::NOT_FOUND, format!("trial {trial:?} has not written a log yet")),
    }
}

async fn remove(State(api): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let dir = match api.experiment_dir(&ns, &name) {
        Ok(dir) if dir.exists() => dir,
        Ok(_) => return error(StatusCode::NOT_FOUND, format!("no experiment {name:?} in namespace {ns}")),
        Err(refused) => return refused.into_response(),
    };
    // Aborting the run drops its trials, whose processes are killed on drop.
    if let Some(task) = lock(&api.running).remove(&(ns.clone(), name.clone())) {
        task.abort();
    }
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot remove {name}: {e}")),
    }
}

/// How a study was created: the first line of its journal.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStudy {
    name: String,
    /// The search-space file of the protocol (section 2).
    space: Value,
    algorithm: String,
    #[serde(default)]
    settings: serde_json::Map<String, Value>,
    #[serde(default)]
    seed: u64,
}

/// A live session and its journal.
struct Study {
    spec: NewStudy,
    session: Session,
    journal: std::fs::File,
    requests: usize,
}

impl NewStudy {
    fn session(&self) -> Result<Session, String> {
        let space = SpaceFile::from_value(self.space.clone()).map_err(|e| format!("space: {e}"))?;
        let settings: Vec<(String, String)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        Session::new(space, &self.algorithm, &settings, self.seed).map_err(|e| e.to_string())
    }
}

/// Rebuilds a study from its journal: the spec, then every request replayed.
/// A torn last line (a crash mid-append) is cut off; its request was never answered.
fn replay_study(path: &FsPath) -> Result<Study, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut lines = std::io::BufReader::new(file).split(b'\n');
    let first = lines.next().ok_or("the journal is empty")?.map_err(|e| e.to_string())?;
    let spec: NewStudy = serde_json::from_slice(&first).map_err(|e| format!("line 1: {e}"))?;
    let mut session = spec.session()?;
    let mut good = first.len() as u64 + 1;
    let mut requests = 0;
    for line in lines {
        let line = line.map_err(|e| e.to_string())?;
        let Ok(text) = std::str::from_utf8(&line) else { break };
        if serde_json::from_str::<Value>(text).is_err() {
            break;
        }
        session.handle_line(text);
        requests += 1;
        good += line.len() as u64 + 1;
    }
    let journal = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| e.to_string())?;
    if journal.metadata().map_err(|e| e.to_string())?.len() > good {
        journal.set_len(good).map_err(|e| e.to_string())?;
    }
    Ok(Study { spec, session, journal, requests })
}

impl Tuning {
    /// The loaded study, replaying its journal on first use.
    fn study(&self, ns: &str, name: &str) -> Result<Arc<Mutex<Study>>, ApiError> {
        let path = self.study_path(ns, name)?;
        let key = (ns.to_owned(), name.to_owned());
        let mut studies = lock(&self.studies);
        if let Some(study) = studies.get(&key) {
            return Ok(study.clone());
        }
        if !path.exists() {
            return Err(ApiError(StatusCode::NOT_FOUND, format!("no study {name:?} in namespace {ns}")));
        }
        let study = Arc::new(Mutex::new(replay_study(&path).map_err(|e| internal(format!("study {name}: {e}")))?));
        studies.insert(key, study.clone());
        Ok(study)
    }
}

async fn create_study(State(api): State<Shared>, Path(ns): Path<String>, body: axum::body::Bytes) -> Response {
    let spec: NewStudy = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let path = match api.study_path(&ns, &spec.name) {
        Ok(path) => path,
        Err(refused) => return refused.into_response(),
    };
    // Start-up failures of the protocol (bad space, unknown algorithm or setting) are 400s.
    let session = match spec.session() {
        Ok(session) => session,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let created = (|| -> std::io::Result<std::fs::File> {
        std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
        let mut file = std::fs::OpenOptions::new().create_new(true).append(true).open(&path)?;
        let mut line = serde_json::to_vec(&spec)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_all()?;
        Ok(file)
    })();
    let journal = match created {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return error(StatusCode::CONFLICT, format!("study {:?} exists in namespace {ns}", spec.name));
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let name = spec.name.clone();
    let hello = json!({"study": name, "algorithm": spec.algorithm, "objectives": spec.space.get("objectives")
        .and_then(Value::as_array).map_or(1, Vec::len)});
    lock(&api.studies).insert((ns, name), Arc::new(Mutex::new(Study { spec, session, journal, requests: 0 })));
    (StatusCode::CREATED, Json(hello)).into_response()
}

async fn list_studies(State(api): State<Shared>, Path(ns): Path<String>) -> Response {
    if let Err(refused) = dns_label("namespace", &ns) {
        return refused.into_response();
    }
    let names: Vec<String> = entries(&api.root.join(&ns).join("studies"))
        .into_iter()
        .filter_map(|name| name.strip_suffix(".jsonl").map(str::to_owned))
        .collect();
    let items: Vec<Value> = names
        .iter()
        .map(|name| study_summary(&api, &ns, name).unwrap_or_else(|e| json!({"study": name, "error": e.1})))
        .collect();
    Json(json!({"items": items})).into_response()
}

fn study_summary(api: &Tuning, ns: &str, name: &str) -> Result<Value, ApiError> {
    let study = api.study(ns, name)?;
    let mut study = lock(&study);
    let best = study.session.handle_line(r#"{"op":"best"}"#).map(|(reply, _)| reply);
    let best = best.and_then(|b| serde_json::from_str::<Value>(&b).ok()).filter(|b| b.get("error").is_none());
    Ok(json!({"study": name, "algorithm": study.spec.algorithm, "seed": study.spec.seed,
              "settings": study.spec.settings, "requests": study.requests, "best": best}))
}

async fn fetch_study(State(api): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    match tokio::task::spawn_blocking(move || study_summary(&api, &ns, &name)).await {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(refused)) => refused.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn remove_study(State(api): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let path = match api.study_path(&ns, &name) {
        Ok(path) => path,
        Err(refused) => return refused.into_response(),
    };
    let mut studies = lock(&api.studies);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            studies.remove(&(ns, name));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, format!("no study {name:?} in namespace {ns}"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// One protocol request; the reply is the protocol's, with the HTTP status
/// its error code maps to.
async fn request(
    State(api): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(request)) => Value::Object(request),
        Ok(_) => return error(StatusCode::BAD_REQUEST, "expected one protocol request object"),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let op = request.get("op").and_then(Value::as_str).unwrap_or_default().to_owned();
    if op == "quit" {
        return error(StatusCode::BAD_REQUEST, "quit is not a request over HTTP: DELETE the study to end it");
    }
    // Compact, one line: what the journal stores and the session reads.
    let line = request.to_string();
    let answered = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let study = api.study(&ns, &name)?;
        let mut guard = lock(&study);
        let (reply, _) = guard
            .session
            .handle_line(&line)
            .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "empty request".into()))?;
        if matches!(op.as_str(), "ask" | "tell" | "report") {
            let appended = {
                let study = &mut *guard;
                let written =
                    study.journal.write_all(format!("{line}\n").as_bytes()).and_then(|()| study.journal.sync_data());
                if written.is_ok() {
                    study.requests += 1;
                }
                written
            };
            if let Err(e) = appended {
                // Memory ran ahead of the disk: forget the session; the next
                // request rebuilds it from what the journal holds.
                drop(guard);
                lock(&api.studies).remove(&(ns, name));
                return Err(internal(format!("the study's journal: {e}")));
            }
        }
        Ok(reply)
    })
    .await;
    let reply = match answered {
        Ok(Ok(reply)) => reply,
        Ok(Err(refused)) => return refused.into_response(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let status =
        match serde_json::from_str::<Value>(&reply).ok().and_then(|r| r["error"]["code"].as_str().map(str::to_owned)) {
            None => StatusCode::OK,
            Some(code) => match code.as_str() {
                "unknown_trial" => StatusCode::NOT_FOUND,
                "already_told" => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            },
        };
    (status, [("content-type", "application/json")], reply).into_response()
}
