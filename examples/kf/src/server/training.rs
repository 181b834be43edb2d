//! The training API of `kf server`, per namespace (resource `trainjobs`):
//! submit a Trainer v2 TrainJob with its runtime, run it on kf-train's local
//! backend (one process group per rank, torch-style env), read its status
//! and each process's state and log, delete it (stops its processes).
//!
//! Layout: `<root>/<namespace>/<name>/{manifest.yaml, processes.json,
//! workspace/}`; the workspace is kf-train's (`trainjob.json` holds the
//! TrainJob status, `logs/` one log per process). `processes.json` is the
//! per-rank table, rewritten whole at every start and exit. A job the
//! server was running when it stopped is shown as failed ("interrupted"):
//! training restarts from the job's own checkpoints, so the server does
//! not silently start it again.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kf_train::local::{LocalBackend, LocalEvent, LocalOptions, Workspace};
use kf_train::{TrainingRuntime, launch};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{ApiError, claim, dns_label, entries, error, internal, lock, write_whole};

/// (namespace, name).
type Key = (String, String);

/// Where jobs live, and the ones running (a way to stop each).
pub struct Training {
    root: PathBuf,
    running: Mutex<HashMap<Key, Running>>,
}

struct Running {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

type Shared = Arc<Training>;

/// The routes, under `/api/training/v1/namespaces/{ns}/trainjobs`.
pub fn router(root: PathBuf) -> Router {
    let state = Arc::new(Training { root, running: Mutex::new(HashMap::new()) });
    Router::new()
        .route("/api/training/v1/namespaces/{ns}/trainjobs", get(list).post(submit))
        .route("/api/training/v1/namespaces/{ns}/trainjobs/{name}", get(fetch).delete(remove))
        .route("/api/training/v1/namespaces/{ns}/trainjobs/{name}/processes/{index}/logs", get(logs))
        .with_state(state)
}

/// One process of a job, as the per-rank table shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Process {
    index: usize,
    /// What people call it (`rank 3`, `launcher-0-0`).
    process: String,
    /// Its name in the workspace (its log is `logs/<name>.log`).
    name: String,
    replicated_job: String,
    rank: Option<u32>,
    state: String,
    pid: Option<u32>,
    exit_code: Option<i32>,
}

impl Training {
    fn job_dir(&self, ns: &str, name: &str) -> Result<PathBuf, ApiError> {
        dns_label("namespace", ns)?;
        dns_label("TrainJob name", name)?;
        Ok(self.root.join(ns).join(name))
    }

    fn is_running(&self, ns: &str, name: &str) -> bool {
        lock(&self.running).contains_key(&(ns.to_owned(), name.to_owned()))
    }
}

/// The per-rank table of one job, kept in `processes.json` beside its
/// workspace: what `kf server` shows, written by whoever runs the job (the
/// training API, or the quickstart's pipeline step).
pub struct ProcessTable {
    dir: PathBuf,
    processes: Vec<Process>,
}

impl ProcessTable {
    /// Every process `plan` starts, pending, written to `dir/processes.json`.
    pub fn new(dir: &FsPath, specs: &[kf_train::local::ProcessSpec]) -> Self {
        let processes = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| Process {
                index,
                process: spec.label(),
                name: spec.name.clone(),
                replicated_job: spec.replicated_job.clone(),
                rank: spec.rank.or(spec.node_rank),
                state: "Pending".into(),
                pid: None,
                exit_code: None,
            })
            .collect();
        let table = ProcessTable { dir: dir.to_owned(), processes };
        write_processes(&table.dir, &table.processes);
        table
    }

    /// The table for `job` on `runtime` with its workspace in `dir/workspace`.
    pub fn plan(dir: &FsPath, job: &kf_train::TrainJob, runtime: &TrainingRuntime, ns: &str) -> anyhow::Result<Self> {
        let planned = launch::plan(job, runtime, &launch::Network::Local { host: "127.0.0.1".into(), port: 0 })?;
        let specs = kf_train::local::processes(&planned, &Workspace::new(dir.join("workspace")), ns)?;
        Ok(ProcessTable::new(dir, &specs))
    }

    /// Follows a backend event; the file is rewritten when a process starts or exits.
    pub fn event(&mut self, event: &LocalEvent) {
        let changed = match event {
            LocalEvent::Started { process, pid } => {
                self.processes.iter_mut().find(|p| &p.process == process).map(|p| {
                    p.state = "Running".into();
                    p.pid = Some(*pid);
                })
            }
            LocalEvent::Exited { process, code } => {
                self.processes.iter_mut().find(|p| &p.process == process).map(|p| {
                    p.state = if *code == Some(0) { "Succeeded" } else { "Failed" }.into();
                    p.exit_code = *code;
                })
            }
            _ => None,
        };
        if changed.is_some() {
            write_processes(&self.dir, &self.processes);
        }
    }

    /// After the run: processes still running were stopped by the backend.
    pub fn finish(mut self) {
        for p in self.processes.iter_mut().filter(|p| p.state == "Running") {
            p.state = "Killed".into();
        }
        write_processes(&self.dir, &self.processes);
    }
}

fn write_processes(dir: &FsPath, processes: &[Process]) {
    let written = serde_json::to_vec_pretty(processes)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_whole(&dir.join("processes.json"), &bytes));
    if let Err(e) = written {
        tracing::warn!("{}: cannot write processes.json: {e}", dir.display());
    }
}

async fn submit(State(api): State<Shared>, Path(ns): Path<String>, body: String) -> Response {
    match submit_job(&api, &ns, &body) {
        Ok(name) => (StatusCode::CREATED, Json(json!({"namespace": ns, "trainjob": name}))).into_response(),
        Err(refused) => refused.into_response(),
    }
}

fn submit_job(api: &Arc<Training>, ns: &str, body: &str) -> Result<String, ApiError> {
    let bad = |e: String| ApiError(StatusCode::BAD_REQUEST, e);
    let manifests = crate::train_cmd::manifests_from_text(body, "body").map_err(|e| bad(format!("{e:#}")))?;
    let job = match manifests.jobs.as_slice() {
        [(_, job)] => job.clone(),
        [] => return Err(bad("expected one TrainJob in the body, found none".into())),
        _ => return Err(bad("expected one TrainJob in the body, found several".into())),
    };
    let runtime = launch::resolve_runtime(&job, &manifests.runtimes)
        .map_err(|e| bad(format!("{e}; send the runtime in the same body")))?
        .clone();
    let name = job.name().unwrap_or_default().to_owned();
    if let Some(other) = job.metadata.as_ref().and_then(|m| m.namespace.as_deref()).filter(|n| *n != ns) {
        return Err(bad(format!("metadata.namespace: expected {ns:?} (the namespace in the path), found {other:?}")));
    }
    let dir = api.job_dir(ns, &name)?;
    let workspace = dir.join("workspace");
    // Checked before the name is claimed: a job that cannot be planned is a 400.
    launch::plan(&job, &runtime, &launch::Network::Local { host: "127.0.0.1".into(), port: 0 })
        .map_err(|e| bad(e.to_string()))?;
    claim(&dir, || format!("TrainJob {name:?} in namespace {ns}"))?;
    write_manifest(&dir, &job, &runtime).map_err(internal)?;
    let mut table = ProcessTable::plan(&dir, &job, &runtime, ns).map_err(internal)?;

    let mut options = LocalOptions::new(&workspace);
    ns.clone_into(&mut options.namespace);
    options.working_dir = Some(dir.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let key = (ns.to_owned(), name.clone());
    let finished = api.clone();
    let mut running = lock(&api.running);
    let done = tokio::spawn({
        let key = key.clone();
        async move {
            let on_event = |event: LocalEvent| table.event(&event);
            let cancel = async {
                let _ = stopped.await;
            };
            match LocalBackend::new(options).run(&job, &runtime, on_event, cancel).await {
                // Processes the backend stopped after the outcome are Killed.
                Ok(run) => {
                    table.finish();
                    tracing::info!("TrainJob {}/{}: {}", key.0, key.1, run.outcome.message);
                }
                Err(e) => {
                    tracing::warn!("TrainJob {}/{}: {e}", key.0, key.1);
                    let _ = std::fs::write(dir.join("error.txt"), e.to_string());
                }
            }
            lock(&finished.running).remove(&key);
        }
    });
    running.insert(key, Running { stop, done });
    Ok(name)
}

/// The job and its runtime as one YAML file, as the API took them.
pub fn write_manifest(dir: &FsPath, job: &kf_train::TrainJob, runtime: &TrainingRuntime) -> anyhow::Result<()> {
    let manifest = serde_saphyr::to_string_multiple(&[job.to_value(), runtime.to_value()])?;
    Ok(write_whole(&dir.join("manifest.yaml"), manifest.as_bytes())?)
}

fn read_processes(dir: &FsPath) -> Vec<Process> {
    std::fs::read(dir.join("processes.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The job's summary: state from the TrainJob's conditions, or from the
/// server (still running, or interrupted by a server stop).
fn describe(api: &Training, ns: &str, name: &str, detail: bool) -> Result<Value, ApiError> {
    let dir = api.job_dir(ns, name)?;
    let manifest = std::fs::read_to_string(dir.join("manifest.yaml"))
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("no TrainJob {name:?} in namespace {ns}")))?;
    let manifests = crate::train_cmd::manifests_from_text(&manifest, "manifest.yaml").map_err(internal)?;
    let runtime = manifests.runtimes.first().and_then(TrainingRuntime::name).map(str::to_owned);
    let status: Option<Value> = std::fs::read(dir.join("workspace/trainjob.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|job| job.get("status").cloned());
    let condition = |type_: &str| {
        status
            .as_ref()
            .and_then(|s| s["conditions"].as_array())
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
    };
    let running = api.is_running(ns, name);
    let error = std::fs::read_to_string(dir.join("error.txt")).ok();
    let processes = read_processes(&dir);
    let (state, message) = if condition("Complete") {
        ("Complete", None)
    } else if condition("Failed") {
        ("Failed", None)
    } else if condition("Suspended") {
        ("Suspended", None)
    } else if let Some(error) = error {
        ("Failed", Some(error))
    } else if running {
        (if processes.iter().any(|p| p.state != "Pending") { "Running" } else { "Pending" }, None)
    } else {
        ("Failed", Some("interrupted: the server stopped while the job ran; submit it again".to_owned()))
    };
    let created =
        std::fs::metadata(dir.join("manifest.yaml")).and_then(|m| m.modified()).map(kf_tune::runner::rfc3339).ok();
    let mut body = json!({"trainjob": name, "runtime": runtime, "state": state, "message": message,
                          "created": created, "processes": processes.len()});
    if detail {
        body["status"] = status.unwrap_or(Value::Null);
        body["processes"] = serde_json::to_value(&processes).unwrap_or(Value::Null);
    }
    Ok(body)
}

async fn list(State(api): State<Shared>, Path(ns): Path<String>) -> Response {
    if let Err(refused) = dns_label("namespace", &ns) {
        return refused.into_response();
    }
    let items: Vec<Value> = entries(&api.root.join(&ns))
        .iter()
        .map(|name| describe(&api, &ns, name, false).unwrap_or_else(|e| json!({"trainjob": name, "error": e.1})))
        .collect();
    Json(json!({"items": items})).into_response()
}

async fn fetch(State(api): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    match describe(&api, &ns, &name, true) {
        Ok(body) => Json(body).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// A process's log; the file comes from the job's own process table, never
/// from a client path.
async fn logs(State(api): State<Shared>, Path((ns, name, index)): Path<(String, String, usize)>) -> Response {
    let dir = match api.job_dir(&ns, &name) {
        Ok(dir) => dir,
        Err(refused) => return refused.into_response(),
    };
    let Some(process) = read_processes(&dir).into_iter().find(|p| p.index == index) else {
        return error(StatusCode::NOT_FOUND, format!("TrainJob {name:?} in namespace {ns} has no process {index}"));
    };
    let path = Workspace::new(dir.join("workspace")).log(&process.name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => (StatusCode::OK, [("content-type", "text/plain; charset=utf-8")], bytes).into_response(),
        Err(_) => error(StatusCode::NOT_FOUND, format!("{} has not written a log yet", process.process)),
    }
}

async fn remove(State(api): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let dir = match api.job_dir(&ns, &name) {
        Ok(dir) if dir.exists() => dir,
        Ok(_) => return error(StatusCode::NOT_FOUND, format!("no TrainJob {name:?} in namespace {ns}")),
        Err(refused) => return refused.into_response(),
    };
    let running = lock(&api.running).remove(&(ns.clone(), name.clone()));
    if let Some(Running { stop, done }) = running {
        // The backend stops every process group (SIGTERM, then SIGKILL) before it returns.
        let _ = stop.send(());
        let _ = done.await;
    }
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot remove {name}: {e}")),
    }
}
