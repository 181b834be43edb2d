//! The pipeline API of `kf server`: submit, list, get and cancel runs, draw
//! a run's graph, and read a task's state, logs and output artifacts, per namespace. Each namespace keeps its runs in its own
//! kf-dag store (`<data_dir>/pipelines/<namespace>`), so one namespace's
//! runs, logs and artifacts are never reachable from another's paths; the
//! tenancy layer decides who may touch a namespace (resource `runs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kf_dag::exec::{CancelHandle, RunRequest};
use kf_dag::local::LocalRuns;
use kf_dag::runner::KfpRunner;
use kf_dag::store::{RunStore, RunStoreExt};
use kf_dag::{Plan, encoding};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, dns_label, error};

/// Where the API keeps runs, and the runs in flight (for cancel).
pub struct Pipelines {
    root: PathBuf,
    /// Where artifacts and the step cache go instead of `root` (`s3://…`,
    /// `file://…`), one prefix per namespace.
    objects: Option<String>,
    active: Mutex<HashMap<(String, String), CancelHandle>>,
}

type Shared = Arc<Pipelines>;

/// A new run, or one a previous server left unfinished.
enum Launch {
    Run(RunRequest),
    Resume(String),
}

/// The routes, under `/api/pipelines/v1/namespaces/{namespace}/runs`.
/// Runs a previous server left unfinished are resumed here (needs a tokio
/// runtime): finished tasks keep their results, tasks in flight run again.
pub fn router(root: PathBuf, objects: Option<String>) -> Router {
    let state = Arc::new(Pipelines { root, objects, active: Mutex::new(HashMap::new()) });
    state.resume_all();
    Router::new()
        .route("/api/pipelines/v1/namespaces/{ns}/runs", post(submit).get(list))
        .route("/api/pipelines/v1/namespaces/{ns}/runs/{run}", get(fetch))
        .route("/api/pipelines/v1/namespaces/{ns}/runs/{run}/cancel", post(cancel))
        .route("/api/pipelines/v1/namespaces/{ns}/runs/{run}/graph.svg", get(graph))
        .route("/api/pipelines/v1/namespaces/{ns}/runs/{run}/tasks/{task}", get(task))
        .route("/api/pipelines/v1/namespaces/{ns}/runs/{run}/tasks/{task}/logs", get(logs))
        .route("/api/pipelines/v1/namespaces/{ns}/runs/{run}/tasks/{task}/artifacts/{output}", get(artifact))
        .with_state(state)
}

impl Pipelines {
    /// Resumes every journaled run of every namespace that has not ended.
    fn resume_all(self: &Arc<Self>) {
        for ns in super::entries(&self.root) {
            let Ok(runs) = self.runs(&ns) else { continue };
            let Ok(listing) = runs.list() else { continue };
            for run in listing.into_iter().filter(|r| matches!(r.state, None | Some(kf_dag::run::RunState::Running))) {
                let id = run.record.id;
                let resumed = runs.load_pipeline(&id).and_then(|saved| {
                    let plan = Plan::new(saved.to_pipeline()?)?;
                    Ok((saved, plan))
                });
                match resumed {
                    Ok((saved, plan)) => {
                        if let Err(e) = self.launch(&ns, &runs, &saved, plan, Launch::Resume(id.clone())) {
                            tracing::warn!("run {ns}/{id} cannot resume: {}", e.1);
                        }
                    }
                    Err(e) => tracing::warn!("run {ns}/{id} cannot resume: {e}"),
                }
            }
        }
    }

    /// Runs (or resumes) `plan` in the background; `cancel` finds it while it runs.
    fn launch(
        self: &Arc<Self>,
        ns: &str,
        runs: &LocalRuns,
        saved: &kf_dag::local::SavedPipeline,
        plan: Plan,
        how: Launch,
    ) -> Result<(), ApiError> {
        let executor = crate::pipeline_cmd::executor_for(runs, saved, KfpRunner::new(runs.work_dir()), true)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let cancel = CancelHandle::new();
        let executor = executor.cancel_handle(cancel.clone());
        let id = match &how {
            Launch::Run(request) => request.id.clone().unwrap_or_default(),
            Launch::Resume(id) => id.clone(),
        };
        let key = (ns.to_owned(), id);
        if let Ok(mut active) = self.active.lock() {
            active.insert(key.clone(), cancel);
        }
        let plan: Arc<Plan> = Arc::new(plan);
        let finished = self.clone();
        tokio::spawn(async move {
            // The journal records how the run ends; an error here is already in it or in the log.
            let outcome = match how {
                Launch::Run(request) => executor.run(plan, request).await,
                Launch::Resume(id) => executor.resume(plan, &id).await,
            };
            if let Err(e) = outcome {
                tracing::warn!("run {}/{}: {e}", key.0, key.1);
            }
            if let Ok(mut active) = finished.active.lock() {
                active.remove(&key);
            }
        });
        Ok(())
    }

    /// The namespace's store; the name must be a DNS label (what a Profile name is).
    fn runs(&self, namespace: &str) -> Result<LocalRuns, ApiError> {
        dns_label("namespace", namespace)?;
        let internal = |e: kf_dag::Error| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let runs = LocalRuns::open(&self.root.join(namespace).display().to_string()).map_err(internal)?;
        match &self.objects {
            Some(url) => runs.with_objects(&format!("{}/{namespace}", url.trim_end_matches('/'))).map_err(internal),
            None => Ok(runs),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    /// The pipeline: kf's format or KFP IR YAML, as text.
    pipeline: String,
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
    run_id: Option<String>,
}

async fn submit(State(api): State<Shared>, Path(ns): Path<String>, body: axum::body::Bytes) -> Response {
    let submit: Submit = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let (plan, saved) = match crate::pipeline_cmd::parse(&submit.pipeline) {
        Ok(parsed) => parsed,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("pipeline: {e}")),
    };
    let parameters: std::collections::BTreeMap<String, Value> = submit.parameters.into_iter().collect();
    // Checked here, not only in the executor: a run refused there would never start.
    if let Err(e) = plan.resolve_parameters(parameters.clone()) {
        return error(StatusCode::BAD_REQUEST, format!("parameters: {e}"));
    }
    let runs = match api.runs(&ns) {
        Ok(runs) => runs,
        Err(refused) => return refused.into_response(),
    };
    let id = submit.run_id.unwrap_or_else(|| {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        format!("{}-{ms}", plan.pipeline().name)
    });
    if let Err(e) = runs.save_pipeline(&id, &saved) {
        return error(StatusCode::CONFLICT, e);
    }
    let request = RunRequest { id: Some(id.clone()), parameters };
    if let Err(refused) = api.launch(&ns, &runs, &saved, plan, Launch::Run(request)) {
        return refused.into_response();
    }
    (StatusCode::CREATED, Json(json!({"namespace": ns, "run": id}))).into_response()
}

async fn list(State(api): State<Shared>, Path(ns): Path<String>) -> Response {
    let runs = match api.runs(&ns) {
        Ok(runs) => runs,
        Err(refused) => return refused.into_response(),
    };
    match runs.list() {
        Ok(listing) => {
            let items: Vec<Value> = listing
                .iter()
                .map(|r| {
                    json!({"run": r.record.id, "pipeline": r.record.pipeline, "created_ms": r.record.created_ms,
                           "state": r.state.map(encoding::run_state_str)})
                })
                .collect();
            Json(json!({"items": items})).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn fetch(State(api): State<Shared>, Path((ns, run)): Path<(String, String)>) -> Response {
    let runs = match api.runs(&ns) {
        Ok(runs) => runs,
        Err(refused) => return refused.into_response(),
    };
    // One run's record and one replay of its journal, not every run's.
    let store = runs.run_store();
    let Some(record) = store.runs().ok().and_then(|r| r.into_iter().find(|r| r.id == run)) else {
        // Submitted, but the executor has not recorded its start yet.
        return match runs.load_pipeline(&run).and_then(|p| p.to_pipeline()) {
            Ok(pipeline) => {
                Json(json!({"run": run, "pipeline": pipeline.name, "state": "pending", "tasks": {}})).into_response()
            }
            Err(_) => error(StatusCode::NOT_FOUND, format!("no run {run:?} in namespace {ns}")),
        };
    };
    let snapshot = match store.snapshot(&run) {
        Ok(snapshot) => snapshot,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let tasks: serde_json::Map<String, Value> = snapshot
        .tasks
        .iter()
        .map(|(path, t)| (path.clone(), json!({"state": t.state.as_str(), "attempt": t.attempt, "message": t.message})))
        .collect();
    Json(json!({"run": run, "pipeline": record.pipeline, "state": snapshot.run.map(encoding::run_state_str),
                "tasks": tasks}))
    .into_response()
}

/// The run's pipeline drawn as SVG (kf-dag's `graph::to_svg`), each task
/// node carrying `data-task` so the dashboard can colour it by state.
async fn graph(State(api): State<Shared>, Path((ns, run)): Path<(String, String)>) -> Response {
    let runs = match api.runs(&ns) {
        Ok(runs) => runs,
        Err(refused) => return refused.into_response(),
    };
    let Ok(saved) = runs.load_pipeline(&run) else {
        return error(StatusCode::NOT_FOUND, format!("no run {run:?} in namespace {ns}"));
    };
    match saved.to_pipeline().and_then(Plan::new) {
        Ok(plan) => (
            StatusCode::OK,
            [("content-type", "image/svg+xml"), ("cache-control", "private, max-age=3600")],
            kf_dag::graph::to_svg(&plan),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("run {run:?}: its saved pipeline: {e}")),
    }
}

/// One task of a run: its state, attempt and message, and what it produced
/// (output parameters, and each output artifact's name, digest, metadata and
/// how many files it has; `…/artifacts/{name}` downloads it). Store
/// locations are not shown: they are the server's paths, not the tenant's.
async fn task(State(api): State<Shared>, Path((ns, run, task)): Path<(String, String, String)>) -> Response {
    let runs = match api.runs(&ns) {
        Ok(runs) => runs,
        Err(refused) => return refused.into_response(),
    };
    let snapshot = match runs.run_store().snapshot(&run) {
        Ok(snapshot) => snapshot,
        Err(_) => return error(StatusCode::NOT_FOUND, format!("no run {run:?} in namespace {ns}")),
    };
    let Some(status) = snapshot.tasks.get(&task) else {
        return error(StatusCode::NOT_FOUND, format!("run {run:?} has no task {task:?} (yet)"));
    };
    let outputs = status.outputs.as_ref().map(|o| {
        let artifacts: Vec<Value> = o
            .artifacts
            .iter()
            .map(|(name, refs)| {
                let first = refs.first();
                json!({"name": name, "count": refs.len(), "digest": first.map(|r| r.digest.clone()),
                       "metadata": first.map(|r| r.metadata.clone())})
            })
            .collect();
        json!({"parameters": o.parameters, "artifacts": artifacts})
    });
    Json(json!({"run": run, "task": task, "state": status.state.as_str(), "attempt": status.attempt,
                "message": status.message, "since_ms": status.since_ms, "outputs": outputs}))
    .into_response()
}

async fn cancel(State(api): State<Shared>, Path((ns, run)): Path<(String, String)>) -> Response {
    let handle = api.active.lock().ok().and_then(|active| active.get(&(ns.clone(), run.clone())).cloned());
    match handle {
        Some(handle) => {
            handle.cancel();
            (StatusCode::ACCEPTED, Json(json!({"run": run, "cancelling": true}))).into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no run {run:?} in flight in namespace {ns}")),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    attempt: Option<u32>,
    stream: Option<String>,
}

async fn logs(
    State(api): State<Shared>,
    Path((ns, run, task)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let runs = match api.runs(&ns) {
        Ok(runs) => runs,
        Err(refused) => return refused.into_response(),
    };
    let stream = match q.stream.as_deref().unwrap_or("stdout") {
        s @ ("stdout" | "stderr") => s,
        other => return error(StatusCode::BAD_REQUEST, format!("stream: expected stdout or stderr, found {other:?}")),
    };
    // Task paths are `a.b[2].c`; their artifacts live under one segment per level.
    let mut segments: Vec<String> = task.split('.').map(str::to_owned).collect();
    segments.push(".logs".into());
    let name = format!("attempt-{}.{stream}", q.attempt.unwrap_or(1));
    let location = match runs.artifacts().location(&run, &segments, &name) {
        Ok(location) => location,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match runs.artifacts().get_at(&location).await {
        Ok(bytes) => (StatusCode::OK, [("content-type", "text/plain; charset=utf-8")], bytes).into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            format!("no {stream} for task {task:?} of run {run:?} (attempt {})", q.attempt.unwrap_or(1)),
        ),
    }
}

/// One output artifact of a task, as bytes; the location comes from the
/// run's own store and checked path segments, never from a client path.
async fn artifact(
    State(api): State<Shared>,
    Path((ns, run, task, output)): Path<(String, String, String, String)>,
) -> Response {
    let runs = match api.runs(&ns) {
        Ok(runs) => runs,
        Err(refused) => return refused.into_response(),
    };
    let segments: Vec<String> = task.split('.').map(str::to_owned).collect();
    let location = match runs.artifacts().location(&run, &segments, &output) {
        Ok(location) => location,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match runs.artifacts().get_at(&location).await {
        Ok(bytes) => (StatusCode::OK, [("content-type", "application/octet-stream")], bytes).into_response(),
        Err(_) => error(StatusCode::NOT_FOUND, format!("task {task:?} of run {run:?} has no artifact {output:?}")),
    }
}
