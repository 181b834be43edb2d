//! [`TaskRunner`]: runs one attempt of one leaf task, and the runners kf ships:
//! [`FunctionRunner`] (Rust functions in process), [`ProcessRunner`] (local
//! processes from container specs), [`KfpRunner`] (local processes through
//! KFP's executor contract, for pipelines compiled by kfp), [`FakeRunner`]
//! (scripted, for tests) and
//! [`ByExecutorKind`] (routes each task to one of them by its executor kind).
//!
//! A runner sees a [`TaskCall`]: the task's resolved inputs, its component
//! and executor, and the artifact store its outputs go to. It does not
//! retry, time out, cache or journal: the executor ([`crate::exec`]) wraps
//! every runner in those, so a runner only runs.

mod kfp;
mod process;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

pub use kfp::{KfpRunner, PythonMode};
pub use process::ProcessRunner;

use crate::Plan;
use crate::artifact::ArtifactStore;
use crate::ir::{Component, Executor, ParameterType};
use crate::run::{ArtifactRef, TaskOutputs};

/// One attempt of one leaf task, with every input resolved.
#[derive(Debug, Clone)]
pub struct TaskCall {
    /// The run id.
    pub run: Arc<str>,
    /// The task's execution path, e.g. `train` or `sweep[2].train`.
    pub task: String,
    /// The execution path as path segments (`["sweep[2]", "train"]`): where
    /// its artifacts go, under the run's prefix.
    pub segments: Vec<String>,
    /// Attempt number, 1 for the first.
    pub attempt: u32,
    /// Name of the component the task runs.
    pub component: String,
    /// The plan the task belongs to.
    pub plan: Arc<Plan>,
    /// Input parameter values by name (defaults filled in).
    pub parameters: BTreeMap<String, Value>,
    /// Input artifacts by name (several for an artifact list).
    pub artifacts: BTreeMap<String, Vec<ArtifactRef>>,
    /// Where output artifacts are written; `None` when the executor has no
    /// artifact store (a task with output artifacts then fails).
    pub artifact_store: Option<ArtifactStore>,
}

impl TaskCall {
    /// The component the task runs.
    pub fn component(&self) -> Option<&Component> {
        self.plan.pipeline().components.get(&self.component)
    }

    /// The executor of the task's component.
    pub fn executor(&self) -> Option<&Executor> {
        self.plan.pipeline().executor_of(&self.component)
    }

    /// Writes output artifact `output` under the run's prefix.
    pub async fn write_artifact(&self, output: &str, bytes: Bytes) -> Result<ArtifactRef, TaskFailure> {
        let store = self.artifact_store.as_ref().ok_or_else(|| {
            TaskFailure::new(format!("output artifact {output:?}: the executor has no artifact store"))
        })?;
        store.put(&self.run, &self.segments, output, bytes).await.map_err(|e| TaskFailure::new(e.to_string()))
    }

    /// Reads input artifact `input` (the first one of a list).
    pub async fn read_artifact(&self, input: &str) -> Result<Bytes, TaskFailure> {
        let artifact = self
            .artifacts
            .get(input)
            .and_then(|a| a.first())
            .ok_or_else(|| TaskFailure::new(format!("input artifact {input:?} is not given")))?;
        self.read(artifact).await
    }

    /// Reads an artifact of the executor's artifact store.
    pub async fn read(&self, artifact: &ArtifactRef) -> Result<Bytes, TaskFailure> {
        let store = self
            .artifact_store
            .as_ref()
            .ok_or_else(|| TaskFailure::new(format!("{}: the executor has no artifact store", artifact.uri)))?;
        store.get(artifact).await.map_err(|e| TaskFailure::new(e.to_string()))
    }
}

/// Why an attempt failed. Failures are data (they fail the task, and the
/// run), never [`crate::Error`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// What happened, e.g. `exit code 1: <stderr tail>`.
    pub message: String,
    /// Whether another attempt may succeed; `false` skips the remaining retries
    /// (e.g. a function that is not registered).
    pub retryable: bool,
}

impl TaskFailure {
    /// A retryable failure.
    pub fn new(message: impl Into<String>) -> Self {
        TaskFailure { message: message.into(), retryable: true }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        TaskFailure { message: message.into(), retryable: false }
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs one attempt of a leaf task.
#[async_trait]
pub trait TaskRunner: Send + Sync {
    /// Runs `call` and returns the task's outputs.
    async fn run(&self, call: TaskCall) -> Result<TaskOutputs, TaskFailure>;
}

#[async_trait]
impl<R: TaskRunner + ?Sized> TaskRunner for Arc<R> {
    async fn run(&self, call: TaskCall) -> Result<TaskOutputs, TaskFailure> {
        (**self).run(call).await
    }
}

/// What a Rust function receives: the task's inputs, with input artifacts
/// already read.
#[derive(Debug, Clone, Default)]
pub struct FunctionInput {
    /// The task's execution path.
    pub task: String,
    /// Attempt number, 1 for the first.
    pub attempt: u32,
    /// Input parameters.
    pub parameters: BTreeMap<String, Value>,
    /// Input artifacts' contents (several for an artifact list).
    pub artifacts: BTreeMap<String, Vec<Bytes>>,
}

/// What a Rust function returns.
#[derive(Debug, Clone, Default)]
pub struct FunctionOutput {
    /// Output parameters.
    pub parameters: BTreeMap<String, Value>,
    /// Output artifacts' contents; the runner writes them to the artifact store.
    pub artifacts: BTreeMap<String, Bytes>,
}

impl FunctionOutput {
    /// Adds an output parameter.
    pub fn parameter(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.parameters.insert(name.to_owned(), value.into());
        self
    }

    /// Adds an output artifact.
    pub fn artifact(mut self, name: &str, bytes: impl Into<Bytes>) -> Self {
        self.artifacts.insert(name.to_owned(), bytes.into());
        self
    }
}

type Function = Arc<dyn Fn(FunctionInput) -> Result<FunctionOutput, String> + Send + Sync>;

/// Runs tasks whose executor is a Rust function ([`Executor::Function`]),
/// by the name the function was registered under.
///
/// Functions run on the executor's worker threads: keep them short or move
/// heavy work to `tokio::task::spawn_blocking` inside a custom [`TaskRunner`].
///
/// ```
/// use kf_dag::runner::{FunctionOutput, FunctionRunner};
/// let mut runner = FunctionRunner::new();
/// runner.register("double", |input| {
///     let x = input.parameters.get("x").and_then(|v| v.as_i64()).ok_or("x is not an integer")?;
///     Ok(FunctionOutput::default().parameter("y", x * 2))
/// });
/// ```
#[derive(Clone, Default)]
pub struct FunctionRunner {
    functions: HashMap<String, Function>,
}

impl fmt::Debug for FunctionRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.functions.keys().collect();
        names.sort();
        f.debug_struct("FunctionRunner").field("functions", &names).finish()
    }
}

impl FunctionRunner {
    /// A runner with no functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `function` under `name` (replacing any earlier one).
    pub fn register(
        &mut self,
        name: &str,
        function: impl Fn(FunctionInput) -> Result<FunctionOutput, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.functions.insert(name.to_owned(), Arc::new(function));
        self
    }
}

#[async_trait]
impl TaskRunner for FunctionRunner {
    async fn run(&self, mut call: TaskCall) -> Result<TaskOutputs, TaskFailure> {
        let function = match call.executor() {
            Some(Executor::Function(f)) => self
                .functions
                .get(&f.name)
                .ok_or_else(|| TaskFailure::permanent(format!("no function registered as {:?}", f.name)))?,
            other => {
                let kind = other.map_or("no", Executor::kind);
                return Err(TaskFailure::permanent(format!("the function runner cannot run a {kind} executor")));
            }
        };
        let mut artifacts = BTreeMap::new();
        for (input, refs) in &call.artifacts {
            let mut contents = Vec::with_capacity(refs.len());
            for artifact in refs {
                contents.push(call.read(artifact).await?);
            }
            artifacts.insert(input.clone(), contents);
        }
        let input = FunctionInput {
            task: std::mem::take(&mut call.task),
            attempt: call.attempt,
            parameters: std::mem::take(&mut call.parameters),
            artifacts,
        };
        let output = function(input).map_err(TaskFailure::new)?;
        let mut outputs = TaskOutputs { parameters: output.parameters, artifacts: BTreeMap::new() };
        for (name, bytes) in output.artifacts {
            let artifact = call.write_artifact(&name, bytes).await?;
            outputs.artifacts.insert(name, vec![artifact]);
        }
        Ok(outputs)
    }
}

/// Routes each task to a runner by its executor kind: container specs to one
/// (usually a [`ProcessRunner`]), Rust functions to another (usually a
/// [`FunctionRunner`]).
pub struct ByExecutorKind {
    container: Option<Arc<dyn TaskRunner>>,
    function: Option<Arc<dyn TaskRunner>>,
}

impl fmt::Debug for ByExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByExecutorKind")
            .field("container", &self.container.is_some())
            .field("function", &self.function.is_some())
            .finish()
    }
}

impl ByExecutorKind {
    /// Routes nothing yet.
    pub fn new() -> Self {
        ByExecutorKind { container: None, function: None }
    }

    /// Runs container executors with `runner`.
    pub fn containers(mut self, runner: impl TaskRunner + 'static) -> Self {
        self.container = Some(Arc::new(runner));
        self
    }

    /// Runs function executors with `runner`.
    pub fn functions(mut self, runner: impl TaskRunner + 'static) -> Self {
        self.function = Some(Arc::new(runner));
        self
    }
}

impl Default for ByExecutorKind {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl TaskRunner for ByExecutorKind {
    async fn run(&self, call: TaskCall) -> Result<TaskOutputs, TaskFailure> {
        let runner = match call.executor() {
            Some(Executor::Container(_)) => self.container.as_ref(),
            Some(Executor::Function(_)) => self.function.as_ref(),
            _ => None,
        };
        match runner {
            Some(runner) => runner.run(call).await,
            None => {
                let kind = call.executor().map_or("missing", Executor::kind);
                Err(TaskFailure::permanent(format!("no runner is configured for {kind} executors")))
            }
        }
    }
}

type Script = Arc<dyn Fn(&TaskCall) -> Result<TaskOutputs, TaskFailure> + Send + Sync>;

/// One call a [`FakeRunner`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCall {
    /// The task's execution path.
    pub task: String,
    /// Attempt number.
    pub attempt: u32,
    /// The resolved input parameters.
    pub parameters: BTreeMap<String, Value>,
    /// Input artifacts.
    pub artifacts: BTreeMap<String, Vec<ArtifactRef>>,
    /// Order in which the call started (0, 1, …, over the whole runner).
    pub started: usize,
    /// Order in which the call finished, on the same counter as `started`.
    pub finished: usize,
}

/// A scripted, in-memory runner for tests: every call is recorded (with the
/// order calls started and finished in) and answered by a script. The
/// default script succeeds with every declared output parameter set to
/// [`fake_value`] of its type and no artifacts; tasks can be told to fail a
/// number of times, or to never finish (for timeouts and cancellation).
///
/// ```
/// use kf_dag::runner::FakeRunner;
/// let runner = FakeRunner::new().failing("flaky", 2).hanging("stuck");
/// assert!(runner.calls().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct FakeRunner {
    script: Option<Script>,
    failures: HashMap<String, u32>,
    hanging: Vec<String>,
    state: Arc<FakeState>,
}

#[derive(Default)]
struct FakeState {
    calls: Mutex<Vec<FakeCall>>,
    counter: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

impl fmt::Debug for FakeRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRunner").field("failures", &self.failures).field("hanging", &self.hanging).finish()
    }
}

impl FakeRunner {
    /// A runner where every task succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers every call with `script` instead of the default outputs.
    pub fn script(
        mut self,
        script: impl Fn(&TaskCall) -> Result<TaskOutputs, TaskFailure> + Send + Sync + 'static,
    ) -> Self {
        self.script = Some(Arc::new(script));
        self
    }

    /// The task at execution path `task` fails its first `times` attempts.
    pub fn failing(mut self, task: &str, times: u32) -> Self {
        self.failures.insert(task.to_owned(), times);
        self
    }

    /// The task at execution path `task` never finishes.
    pub fn hanging(mut self, task: &str) -> Self {
        self.hanging.push(task.to_owned());
        self
    }

    /// Every call so far, in the order they finished (hanging calls are not listed).
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().clone()
    }

    /// The most calls that were in progress at once.
    pub fn max_concurrency(&self) -> usize {
        self.state.max_active.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FakeCall>> {
        // Each operation is one push: a poisoned lock still holds consistent data.
        self.state.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn answer(&self, call: &TaskCall) -> Result<TaskOutputs, TaskFailure> {
        if self.failures.get(&call.task).is_some_and(|&n| call.attempt <= n) {
            return Err(TaskFailure::new(format!("scripted failure of attempt {}", call.attempt)));
        }
        if let Some(script) = &self.script {
            return script(call);
        }
        let mut outputs = TaskOutputs::default();
        if let Some(component) = call.component() {
            for (name, spec) in &component.outputs.parameters {
                outputs.parameters.insert(name.clone(), fake_value(spec.ty, &call.task));
            }
        }
        Ok(outputs)
    }
}

/// The value the default [`FakeRunner`] script gives an output of type `ty`
/// of task `task`: the task path for strings, `1`, `1.0`, `true`, `[]`, `{}`.
pub fn fake_value(ty: ParameterType, task: &str) -> Value {
    match ty {
        ParameterType::String => Value::String(task.to_owned()),
        ParameterType::NumberInteger => Value::from(1),
        ParameterType::NumberDouble => Value::from(1.0),
        ParameterType::Boolean => Value::Bool(true),
        ParameterType::List => Value::Array(Vec::new()),
        _ => Value::Object(serde_json::Map::new()),
    }
}

/// Decrements the active-call count even if the call is dropped (cancelled).
struct ActiveGuard<'a>(&'a FakeState);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl TaskRunner for FakeRunner {
    async fn run(&self, call: TaskCall) -> Result<TaskOutputs, TaskFailure> {
        let state = &self.state;
        let started = state.counter.fetch_add(1, Ordering::SeqCst);
        let active = state.active.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = ActiveGuard(state);
        state.max_active.fetch_max(active, Ordering::SeqCst);
        // Yield once so concurrently admitted calls really overlap.
        tokio::task::yield_now().await;
        if self.hanging.contains(&call.task) {
            std::future::pending::<()>().await;
        }
        let result = self.answer(&call);
        let finished = state.counter.fetch_add(1, Ordering::SeqCst);
        self.lock().push(FakeCall {
            task: call.task,
            attempt: call.attempt,
            parameters: call.parameters,
            artifacts: call.artifacts,
            started,
            finished,
        });
        result
    }
}
