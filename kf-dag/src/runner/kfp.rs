//! [`KfpRunner`]: runs the container executors of a pipeline compiled by the
//! kfp SDK the way KFP's own containers do — through the executor contract
//! ([`crate::kfp::executor_input`]) — as local processes.
//!
//! Per attempt, in `<work_dir>/<run>/<task…>/attempt-N/`:
//!
//! 1. input artifacts are copied from the artifact store to `inputs/<name>/<i>`
//!    (a file, or a directory for a directory artifact); an artifact outside
//!    the store (an importer's `gs://…` URI) is passed on as its URI;
//! 2. the `ExecutorInput` is built with outputs laid out under `outputs/`,
//!    and every placeholder of the command line is substituted;
//! 3. the command runs. A kfp lightweight Python component
//!    ([`crate::kfp::lightweight`]) whose install step only installs kfp runs
//!    without that step (the Python must have kfp; nothing is fetched), and,
//!    with the component server on, in a process forked from one warm
//!    interpreter instead of a fresh `sh` + `python3` + kfp import each time:
//!    every task is still its own process running kfp's executor. Any other
//!    command runs as written;
//! 4. after a zero exit the `ExecutorOutput` and output-parameter files are
//!    read back and checked ([`task_outputs`]), output artifacts (files or
//!    directories) are uploaded under the run's prefix with the metadata the
//!    component set, and stdout/stderr are stored beside them
//!    (`<run>/<task…>/.logs/attempt-N.{stdout,stderr}`). A non-zero exit, or
//!    outputs that do not match the component, fail the attempt with the
//!    reason and the tail of stderr.
//!
//! Container images are not used: the command must exist on this host.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::process::{attempt_dir, exit_failure, io_failure, store_logs};
use super::{TaskCall, TaskFailure, TaskRunner};
use crate::artifact::{ArtifactStore, digest};
use crate::ir::{ArtifactType, Executor, ParameterType};
use crate::kfp::executor_input::{
    EXECUTOR_OUTPUT_FILE, PipelineRoot, RunFacts, RuntimeArtifact, Substitution, executor_input, protobuf_value,
    task_final_status, task_outputs,
};
use crate::kfp::lightweight::{EXECUTOR_MODULE, python_component};
use crate::run::{ArtifactRef, TaskOutputs};

/// How a [`KfpRunner`] runs lightweight Python components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonMode {
    /// Fork each task from one interpreter that has imported kfp's executor.
    Server,
    /// Start `python3 -m kfp.dsl.executor_main` for each task.
    Spawn,
}

/// Runs KFP container executors locally through KFP's executor contract.
///
/// ```
/// use kf_dag::runner::{KfpRunner, PythonMode};
/// let runner = KfpRunner::new(std::env::temp_dir().join("kf-work")).python("python3").mode(PythonMode::Spawn);
/// assert_eq!(runner.python_program(), "python3");
/// ```
pub struct KfpRunner {
    work_dir: PathBuf,
    python: String,
    mode: PythonMode,
    server: Mutex<Option<Arc<ComponentServer>>>,
}

impl std::fmt::Debug for KfpRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KfpRunner")
            .field("work_dir", &self.work_dir)
            .field("python", &self.python)
            .field("mode", &self.mode)
            .finish()
    }
}

impl KfpRunner {
    /// A runner keeping per-attempt work directories under `work_dir`, with
    /// `python3` from `PATH` and the component server on.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        KfpRunner {
            work_dir: work_dir.into(),
            python: "python3".to_owned(),
            mode: PythonMode::Server,
            server: Mutex::new(None),
        }
    }

    /// The Python that runs lightweight components (it must have kfp).
    pub fn python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// How lightweight components run.
    pub fn mode(mut self, mode: PythonMode) -> Self {
        self.mode = mode;
        self
    }

    /// The Python that runs lightweight components.
    pub fn python_program(&self) -> &str {
        &self.python
    }

    /// The running component server, started on first use (and again if it died).
    async fn server(&self) -> Result<Arc<ComponentServer>, TaskFailure> {
        let mut slot = self.server.lock().await;
        if let Some(server) = slot.as_ref().filter(|s| s.is_alive()) {
            return Ok(server.clone());
        }
        let server = Arc::new(ComponentServer::start(&self.python, &self.work_dir).await?);
        *slot = Some(server.clone());
        Ok(server)
    }
}

#[async_trait]
impl TaskRunner for KfpRunner {
    async fn run(&self, call: TaskCall) -> Result<TaskOutputs, TaskFailure> {
        let Some(Executor::Container(container)) = call.executor() else {
            return Err(TaskFailure::permanent("the KFP runner only runs container executors"));
        };
        let Some(component) = call.component() else {
            return Err(TaskFailure::permanent(format!("component {:?} is not in the plan", call.component)));
        };
        let dir = attempt_dir(&self.work_dir, &call);
        let outputs_dir = dir.join("outputs");
        for path in [&dir.join("inputs"), &outputs_dir] {
            tokio::fs::create_dir_all(path).await.map_err(|e| io_failure("cannot create", path, e))?;
        }
        let utf8 = |p: &Path| {
            p.to_str().map(str::to_owned).ok_or_else(|| TaskFailure::permanent(format!("{} is not UTF-8", p.display())))
        };

        // 1. Input artifacts, staged as local files.
        let mut artifacts: BTreeMap<String, Vec<RuntimeArtifact>> = BTreeMap::new();
        for (name, refs) in &call.artifacts {
            let ty = component.inputs.artifacts.get(name).map_or_else(ArtifactType::artifact, |spec| spec.ty.clone());
            let mut list = Vec::new();
            for (i, artifact) in refs.iter().enumerate() {
                let uri = match call.artifact_store.as_ref().map(|s| s.path_of(&artifact.uri)) {
                    Some(Ok(path)) => {
                        let local = dir.join("inputs").join(name).join(i.to_string());
                        stage(call.artifact_store.as_ref().expect("checked above"), &path, &local).await?;
                        utf8(&local)?
                    }
                    // Not in the store (an importer's URI): the component sees it as KFP would.
                    _ => artifact.uri.clone(),
                };
                let mut runtime = RuntimeArtifact::new(name.clone(), &ty, uri);
                // Metadata travels as a protobuf Struct in KFP: every number a double.
                runtime.metadata = artifact.metadata.iter().map(|(k, v)| (k.clone(), protobuf_value(v))).collect();
                list.push(runtime);
            }
            artifacts.insert(name.clone(), list);
        }

        // 2. The executor input and the command line.
        let mut parameters = call.parameters.clone();
        for (name, spec) in &component.inputs.parameters {
            if spec.ty == ParameterType::TaskFinalStatus
                && let Some(status) = parameters.get_mut(name)
            {
                *status = kfp_final_status(status);
            }
        }
        let input = executor_input(component, &parameters, &artifacts, &utf8(&outputs_dir)?)
            .map_err(|e| TaskFailure::permanent(e.to_string()))?;
        let root = PipelineRoot::new(utf8(&self.work_dir.join(&*call.run).join("remote"))?);
        let run_facts = RunFacts {
            job_name: call.run.to_string(),
            job_resource_name: call.run.to_string(),
            job_uuid: call.run.to_string(),
            task_name: call.task.clone(),
            task_uuid: format!("{}/{}", call.run, call.task),
            pipeline_root: call.artifact_store.as_ref().map(ArtifactStore::root_uri).unwrap_or_default(),
            ..RunFacts::default()
        };
        let substitution = Substitution { input: &input, run: &run_facts, root: &root };
        let line = substitution.command_line(container).map_err(|e| TaskFailure::permanent(e.to_string()))?;
        let env = substitution.environment(container).map_err(|e| TaskFailure::permanent(e.to_string()))?;

        // 3. Run it.
        let (stdout_path, stderr_path) = (dir.join("stdout"), dir.join("stderr"));
        let lightweight = python_component(&line).filter(|c| c.prelude.as_ref().is_none_or(|p| p.installs_only_kfp()));
        let exit = match (&lightweight, self.mode) {
            (Some(component), PythonMode::Server) => {
                let server = self.server().await?;
                let request = json!({
                    "source": component.source, "args": component.args, "cwd": utf8(&dir)?,
                    "env": env.iter().cloned().collect::<BTreeMap<_, _>>(),
                    "stdout": utf8(&stdout_path)?, "stderr": utf8(&stderr_path)?,
                });
                server.run(request).await?
            }
            (Some(component), PythonMode::Spawn) => {
                let module = dir.join("ephemeral_component.py");
                tokio::fs::write(&module, &component.source)
                    .await
                    .map_err(|e| io_failure("cannot write", &module, e))?;
                let mut argv = vec![self.python.clone(), "-m".into(), EXECUTOR_MODULE.into()];
                argv.extend(["--component_module_path".to_owned(), utf8(&module)?]);
                argv.extend(component.args.iter().cloned());
                let mut env = env.clone();
                env.push(("_KFP_RUNTIME".into(), "true".into()));
                spawn(&argv, &env, &dir, &stdout_path, &stderr_path).await?
            }
            (None, _) => spawn(&line, &env, &dir, &stdout_path, &stderr_path).await?,
        };
        store_logs(&call, &stdout_path, &stderr_path).await?;
        let program = if lightweight.is_some() { EXECUTOR_MODULE } else { line.first().map_or("", String::as_str) };
        if exit != Exit::Code(0) {
            let code = match exit {
                Exit::Code(c) => format!("exit code {c}"),
                Exit::Signal(s) => format!("signal {s}"),
            };
            return Err(exit_failure(program, &code, &stderr_path));
        }

        // 4. Outputs.
        let executor_output = tokio::fs::read_to_string(outputs_dir.join(EXECUTOR_OUTPUT_FILE)).await.ok();
        let mut files = BTreeMap::new();
        for (name, parameter) in &input.outputs.parameters {
            if let Ok(text) = tokio::fs::read_to_string(&parameter.output_file).await {
                files.insert(name.clone(), text);
            }
        }
        let produced = task_outputs(component, &input, executor_output.as_deref(), &files)
            .map_err(|e| TaskFailure::new(format!("{program}: {e}")))?;
        let mut outputs = TaskOutputs { parameters: produced.parameters, ..TaskOutputs::default() };
        for name in component.outputs.parameters.keys() {
            if !outputs.parameters.contains_key(name) {
                return Err(TaskFailure::new(format!(
                    "output parameter {name:?}: the component wrote neither its output file nor a value in the \
                     executor output"
                )));
            }
        }
        for (name, list) in &produced.artifacts {
            let mut refs = Vec::new();
            for (i, artifact) in list.iter().enumerate() {
                let local = root.local_path(&artifact.uri).map_err(|e| TaskFailure::new(e.to_string()))?;
                let output = if list.len() == 1 { name.clone() } else { format!("{name}-{i}") };
                let mut uploaded = upload(&call, &output, Path::new(&local)).await?;
                uploaded.metadata = artifact.metadata.iter().map(|(k, v)| (k.clone(), protobuf_value(v))).collect();
                refs.push(uploaded);
            }
            outputs.artifacts.insert(name.clone(), refs);
        }
        Ok(outputs)
    }
}

/// The executor's `PipelineTaskFinalStatus` in the form kfp's Python
/// executor reads (`pipeline_job_resource_name`, `pipeline_task_name`).
fn kfp_final_status(status: &Value) -> Value {
    let field = |name: &str| status.get(name).and_then(Value::as_str).unwrap_or_default();
    let failure = (field("state") == "FAILED").then(|| status.pointer("/error/message").and_then(Value::as_str));
    let mut converted = task_final_status(
        field("pipelineJobResourceName"),
        field("pipelineTaskName"),
        failure.map(|m| m.unwrap_or("failed")),
    );
    // Keep SKIPPED/CANCELLED as the executor saw them.
    if !matches!(field("state"), "FAILED" | "SUCCEEDED") && !field("state").is_empty() {
        converted["state"] = json!(field("state"));
    }
    converted
}

/// Copies the artifact at `path` (an object, or every object under it) to `local`.
async fn stage(store: &ArtifactStore, path: &object_store::path::Path, local: &Path) -> Result<(), TaskFailure> {
    let failure = |e: String| TaskFailure::new(format!("input artifact {path}: {e}"));
    if let Some(parent) = local.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| io_failure("cannot create", parent, e))?;
    }
    match store.object_store().head(path).await {
        Ok(_) => {
            let bytes = store.get_at(path).await.map_err(|e| failure(e.to_string()))?;
            return tokio::fs::write(local, &bytes).await.map_err(|e| io_failure("cannot write", local, e));
        }
        // Not an object: a directory artifact (objects under it), or nothing.
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(failure(e.to_string())),
    }
    let objects: Vec<_> =
        store.object_store().list(Some(path)).try_collect().await.map_err(|e| failure(e.to_string()))?;
    // An output the producer never wrote stays absent, as in KFP.
    for object in objects {
        let Some(relative) = object.location.prefix_match(path) else { continue };
        let mut target = local.to_path_buf();
        for part in relative {
            target.push(part.as_ref());
        }
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io_failure("cannot create", parent, e))?;
        }
        let bytes = store.get_at(&object.location).await.map_err(|e| failure(e.to_string()))?;
        tokio::fs::write(&target, &bytes).await.map_err(|e| io_failure("cannot write", &target, e))?;
    }
    Ok(())
}

/// Uploads what the component left at `local` as output `output`: a file as
/// one object, a directory as one object per file under the output's
/// location, nothing when it wrote nothing (KFP's launcher uploads what
/// exists). The digest covers every file's relative path and content.
async fn upload(call: &TaskCall, output: &str, local: &Path) -> Result<ArtifactRef, TaskFailure> {
    let store = call
        .artifact_store
        .as_ref()
        .ok_or_else(|| TaskFailure::new(format!("output artifact {output:?}: the executor has no artifact store")))?;
    let location = store.location(&call.run, &call.segments, output).map_err(|e| TaskFailure::new(e.to_string()))?;
    let uri = store.uri(&location);
    let meta = match tokio::fs::metadata(local).await {
        Ok(meta) => meta,
        Err(_) => return Ok(ArtifactRef { uri, digest: digest(b""), metadata: BTreeMap::new() }),
    };
    if meta.is_file() {
        let bytes = tokio::fs::read(local).await.map_err(|e| io_failure("cannot read", local, e))?;
        let digest = digest(&bytes);
        store.put_at(&location, Bytes::from(bytes)).await.map_err(|e| TaskFailure::new(e.to_string()))?;
        return Ok(ArtifactRef { uri, digest, metadata: BTreeMap::new() });
    }
    // A directory: walk it without recursion, in name order for a stable digest.
    let mut files = Vec::new();
    let mut pending = vec![(local.to_path_buf(), Vec::<String>::new())];
    while let Some((dir, relative)) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(|e| io_failure("cannot list", &dir, e))?;
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_failure("cannot list", &dir, e))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let mut rel = relative.clone();
            rel.push(name);
            let kind = entry.file_type().await.map_err(|e| io_failure("cannot stat", &path, e))?;
            if kind.is_dir() {
                pending.push((path, rel));
            } else if kind.is_file() {
                files.push((rel, path));
            }
        }
    }
    files.sort();
    let mut manifest = String::new();
    for (relative, path) in &files {
        let bytes = tokio::fs::read(path).await.map_err(|e| io_failure("cannot read", path, e))?;
        manifest.push_str(&format!("{} {}\n", relative.join("/"), digest(&bytes)));
        let mut at = location.clone();
        for part in relative {
            at = at.join(part.as_str());
        }
        store.put_at(&at, Bytes::from(bytes)).await.map_err(|e| TaskFailure::new(e.to_string()))?;
    }
    Ok(ArtifactRef { uri, digest: digest(manifest.as_bytes()), metadata: BTreeMap::new() })
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Code(i32),
    Signal(i32),
}

/// Runs `argv` as a child process, output to files; killed if the attempt is dropped.
async fn spawn(
    argv: &[String],
    env: &[(String, String)],
    dir: &Path,
    stdout_path: &Path,
    stderr_path: &Path,
) -> Result<Exit, TaskFailure> {
    let Some((program, args)) = argv.split_first() else {
        return Err(TaskFailure::permanent("the container has no command: a local process needs one"));
    };
    let stdout = std::fs::File::create(stdout_path).map_err(|e| io_failure("cannot create", stdout_path, e))?;
    let stderr = std::fs::File::create(stderr_path).map_err(|e| io_failure("cannot create", stderr_path, e))?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).current_dir(dir).stdin(Stdio::null()).stdout(stdout).stderr(stderr).kill_on_drop(true);
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = command.spawn().map_err(|e| TaskFailure::new(format!("cannot start {program:?}: {e}")))?;
    let status = child.wait().await.map_err(|e| TaskFailure::new(format!("waiting for {program:?}: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    })
}

/// The Python script of the component server.
const SERVER_SCRIPT: &str = include_str!("kfp_server.py");

type Waiters = HashMap<u64, oneshot::Sender<Result<Exit, String>>>;

/// A Python process that has imported kfp's executor and forks one child
/// per task (see `kfp_server.py` for the protocol).
struct ComponentServer {
    /// Request lines, written to the server's stdin by one task.
    requests: mpsc::UnboundedSender<String>,
    waiters: Arc<std::sync::Mutex<Option<Waiters>>>,
    next: AtomicU64,
    /// Dropping the child kills the server; closing stdin kills its tasks.
    _child: tokio::process::Child,
}

impl ComponentServer {
    async fn start(python: &str, work_dir: &Path) -> Result<Self, TaskFailure> {
        tokio::fs::create_dir_all(work_dir).await.map_err(|e| io_failure("cannot create", work_dir, e))?;
        let log_path = work_dir.join("component-server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| io_failure("cannot create", &log_path, e))?;
        let mut child = tokio::process::Command::new(python)
            .args(["-u", "-c", SERVER_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TaskFailure::permanent(format!("cannot start {python:?} for KFP components: {e}")))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(TaskFailure::permanent("the component server has no pipes"));
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next_line().await.ok().flatten().unwrap_or_default();
        let ready: Value = serde_json::from_str(&first).unwrap_or(Value::Null);
        if ready["ready"] != json!(true) {
            let why = ready["error"].as_str().map_or_else(
                || format!("it ended before saying it was ready (see {})", log_path.display()),
                str::to_owned,
            );
            return Err(TaskFailure::permanent(format!(
                "{python} cannot run kfp's executor ({why}): KFP lightweight components run with the host's Python, \
                 which needs the kfp package (pip install kfp), or name another Python"
            )));
        }
        let waiters: Arc<std::sync::Mutex<Option<Waiters>>> = Arc::new(std::sync::Mutex::new(Some(HashMap::new())));
        let reader = waiters.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(reply) = serde_json::from_str::<Value>(&line) else { continue };
                let (id, result) = if let Some(id) = reply["exited"].as_u64() {
                    let exit = match (reply["code"].as_i64(), reply["signal"].as_i64()) {
                        (Some(code), _) => Exit::Code(code as i32),
                        (_, Some(signal)) => Exit::Signal(signal as i32),
                        _ => Exit::Code(-1),
                    };
                    (id, Ok(exit))
                } else if let Some(id) = reply["failed"].as_u64() {
                    (id, Err(reply["error"].as_str().unwrap_or("unknown error").to_owned()))
                } else {
                    continue;
                };
                let waiter = reader.lock().ok().and_then(|mut w| w.as_mut().and_then(|w| w.remove(&id)));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result);
                }
            }
            // The server is gone: every waiting task fails, later ones restart it.
            if let Ok(mut w) = reader.lock() {
                w.take();
            }
        });
        let (requests, mut pending) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(line) = pending.recv().await {
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        Ok(ComponentServer { requests, waiters, next: AtomicU64::new(1), _child: child })
    }

    fn is_alive(&self) -> bool {
        self.waiters.lock().is_ok_and(|w| w.is_some())
    }

    /// Runs one task; dropping the future kills the task's process group.
    async fn run(&self, mut request: Value) -> Result<Exit, TaskFailure> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        request["run"] = json!(id);
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.waiters.lock().map_err(|_| TaskFailure::new("the component server failed"))?;
            let Some(waiters) = waiters.as_mut() else {
                return Err(TaskFailure::new("the component server exited"));
            };
            waiters.insert(id, tx);
        }
        self.send(&request)?;
        let mut guard = KillOnDrop { server: self, id, armed: true };
        let result = rx.await;
        guard.armed = false;
        match result {
            Ok(Ok(exit)) => Ok(exit),
            Ok(Err(message)) => {
                Err(TaskFailure::new(format!("the component server could not start the task: {message}")))
            }
            Err(_) => Err(TaskFailure::new("the component server exited while the task ran")),
        }
    }

    fn send(&self, message: &Value) -> Result<(), TaskFailure> {
        self.requests.send(format!("{message}\n")).map_err(|_| TaskFailure::new("the component server exited"))
    }
}

/// Kills a task whose attempt was dropped (timeout, cancellation).
struct KillOnDrop<'a> {
    server: &'a ComponentServer,
    id: u64,
    armed: bool,
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.server.send(&json!({"kill": self.id, "signal": 9}));
        }
    }
}
