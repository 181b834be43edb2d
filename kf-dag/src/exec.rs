//! The [`Executor`]: runs a [`Plan`] with bounded parallelism, control flow,
//! retries, timeouts, caching, cancellation and a journal a crashed run
//! resumes from.
//!
//! One driver task owns all scheduling state (no locks): it evaluates tasks
//! whose upstream tasks are done, admits leaf tasks up to the global
//! `parallelism`, spawns each admitted attempt on the tokio runtime and
//! reacts to their completions. Every state change is appended to the
//! [`RunStore`] before it is shown to the [`EventSink`], so what the event
//! stream shows is durable.
//!
//! Control flow, as KFP v2 runs it:
//!
//! - a task whose trigger strategy is *all upstream succeeded* (the default)
//!   is **skipped** when an upstream task failed or was skipped, and so are
//!   its own downstream tasks; *all upstream completed* (exit handlers,
//!   `.ignore_upstream_failure()`) runs whatever the upstream outcome;
//! - a **condition** is evaluated over the task's resolved input parameters;
//!   false skips the task (a condition branch: its whole DAG);
//! - a task running a **DAG component** (a condition branch, a nested
//!   pipeline) runs a child frame with the task's inputs as the component's
//!   inputs; its outputs are the DAG's selected outputs;
//! - a **ParallelFor** runs one child frame per item (at most `parallelism`
//!   at once); its outputs collect each iteration's value into a list, in
//!   iteration order (artifact lists are concatenated);
//! - an input reading the **final status** of a task gets KFP's
//!   `PipelineTaskFinalStatus` object (`state`, `pipelineTaskName`, `error`);
//! - **cancelling** stops attempts in flight and every task not yet started,
//!   except exit handlers, which run after a cancel as after a failure.
//!
//! Execution paths name task instances: `train`, `cond.train`, `sweep[2].train`.
//! This module owns scheduling; running one attempt is a [`TaskRunner`]'s job.

mod driver;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use crate::Plan;
use crate::artifact::ArtifactStore;
use crate::cache::Cache;
use crate::clock::{Clock, SystemClock};
use crate::run::{Event, RunState, TaskOutputs, TaskState};
use crate::runner::TaskRunner;
use crate::store::{InMemoryRunStore, RunRecord, RunStore};
use crate::{Error, Result};

/// Receives every journal event of a run, after it was stored.
pub trait EventSink: Send + Sync {
    /// Called once per event, in journal order for each task.
    fn event(&self, run: &str, at_ms: u64, event: &Event);
}

/// An [`EventSink`] forwarding `(at_ms, event)` to a tokio channel (for
/// progress displays); events are dropped once the receiver is gone.
#[derive(Debug, Clone)]
pub struct ChannelSink(pub mpsc::UnboundedSender<(u64, Event)>);

impl EventSink for ChannelSink {
    fn event(&self, _run: &str, at_ms: u64, event: &Event) {
        let _ = self.0.send((at_ms, event.clone()));
    }
}

/// Cancels a run: tasks in flight are stopped (processes killed) and
/// nothing new starts, except exit handlers (tasks triggered on *all upstream
/// completed*), which still run and see the final statuses; the run ends
/// [`RunState::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct CancelHandle {
    cancelled: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl CancelHandle {
    /// A handle that has not been used.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the run (idempotent).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What to run: a run id and the pipeline parameters.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The run's id (a safe path segment); `None` generates one from the clock.
    pub id: Option<String>,
    /// Pipeline parameters; defaults fill the rest.
    pub parameters: BTreeMap<String, Value>,
}

/// How one task instance ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSummary {
    /// Its final state.
    pub state: TaskState,
    /// Attempts made (0 when it never ran).
    pub attempts: u32,
    /// When it started running (ms since the epoch), if it ran.
    pub started_ms: Option<u64>,
    /// When it reached its final state.
    pub finished_ms: u64,
    /// Why it failed or was skipped.
    pub message: Option<String>,
    /// Whether it was taken from the journal of an earlier process (resume).
    pub resumed: bool,
}

impl TaskSummary {
    /// Time from start to end, when it ran.
    pub fn duration(&self) -> Option<Duration> {
        self.started_ms.map(|s| Duration::from_millis(self.finished_ms.saturating_sub(s)))
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The run id.
    pub run: String,
    /// How the run ended.
    pub state: RunState,
    /// Every task instance that reached a final state, by execution path.
    pub tasks: BTreeMap<String, TaskSummary>,
    /// The pipeline's outputs (the root DAG's outputs), when it succeeded.
    pub outputs: TaskOutputs,
}

impl RunOutcome {
    /// How many task instances ended in `state`.
    pub fn count(&self, state: TaskState) -> usize {
        self.tasks.values().filter(|t| t.state == state).count()
    }
}

/// Runs plans: see the [module docs](self).
///
/// ```
/// use kf_dag::builder::PipelineBuilder;
/// use kf_dag::exec::{Executor, RunRequest};
/// use kf_dag::run::{RunState, TaskState};
/// use kf_dag::runner::{FunctionOutput, FunctionRunner};
/// use std::sync::Arc;
///
/// let mut p = PipelineBuilder::new("double");
/// let x = p.parameter_with_default::<i64>("x", 21);
/// let mut double = p.function_component("double", "double");
/// let input = double.input::<i64>("x");
/// let output = double.output::<i64>("y");
/// let double = p.add_component(double);
/// p.task("double", &double).set(&input, &x).done();
/// let plan = Arc::new(p.build()?);
///
/// let mut functions = FunctionRunner::new();
/// functions.register("double", |input| {
///     let x = input.parameters["x"].as_i64().ok_or("x is not an integer")?;
///     Ok(FunctionOutput::default().parameter("y", x * 2))
/// });
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// let outcome = runtime.block_on(Executor::new(functions).run(plan, RunRequest::default()))?;
/// assert_eq!(outcome.state, RunState::Succeeded);
/// assert_eq!(outcome.tasks["double"].state, TaskState::Succeeded);
/// # let _ = output;
/// # Ok::<(), kf_dag::Error>(())
/// ```
#[derive(Clone)]
pub struct Executor {
    runner: Arc<dyn TaskRunner>,
    store: Arc<dyn RunStore>,
    cache: Option<Arc<dyn Cache>>,
    artifacts: Option<ArtifactStore>,
    clock: Arc<dyn Clock>,
    sink: Option<Arc<dyn EventSink>>,
    parallelism: usize,
    cache_max_age: Option<Duration>,
    default_timeout: Option<Duration>,
    cancel: CancelHandle,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("parallelism", &self.parallelism)
            .field("cache", &self.cache.is_some())
            .field("artifacts", &self.artifacts)
            .field("cache_max_age", &self.cache_max_age)
            .field("default_timeout", &self.default_timeout)
            .finish()
    }
}

impl Executor {
    /// An executor running leaf tasks with `runner`; journals in memory, no
    /// cache, no artifact store, the system clock, parallelism = the number
    /// of cores.
    pub fn new(runner: impl TaskRunner + 'static) -> Self {
        Executor {
            runner: Arc::new(runner),
            store: Arc::new(InMemoryRunStore::new()),
            cache: None,
            artifacts: None,
            clock: Arc::new(SystemClock),
            sink: None,
            parallelism: std::thread::available_parallelism().map_or(1, usize::from),
            cache_max_age: None,
            default_timeout: None,
            cancel: CancelHandle::new(),
        }
    }

    /// Journals runs in `store`.
    pub fn store(mut self, store: Arc<dyn RunStore>) -> Self {
        self.store = store;
        self
    }

    /// Reuses results from `cache` (and fills it).
    pub fn cache(mut self, cache: Arc<dyn Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Cached results older than `max_age` are not reused (KFP's max cache staleness).
    pub fn cache_max_age(mut self, max_age: Duration) -> Self {
        self.cache_max_age = Some(max_age);
        self
    }

    /// Writes artifacts to `artifacts`.
    pub fn artifacts(mut self, artifacts: ArtifactStore) -> Self {
        self.artifacts = Some(artifacts);
        self
    }

    /// Uses `clock` for timestamps, backoff and timeouts.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends every event to `sink`.
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// At most `parallelism` leaf tasks run at once (at least 1).
    pub fn parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism.max(1);
        self
    }

    /// The timeout of an attempt of a task that sets none.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// Cancels runs through `cancel`.
    pub fn cancel_handle(mut self, cancel: CancelHandle) -> Self {
        self.cancel = cancel;
        self
    }

    /// The run store.
    pub fn run_store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// Starts a new run of `plan` and drives it to the end.
    ///
    /// Returns `Err` only when the run cannot be carried on (bad parameters,
    /// a run id that is taken, a store that fails); a failed task ends the
    /// run [`RunState::Failed`] and is reported in the outcome.
    pub async fn run(&self, plan: Arc<Plan>, request: RunRequest) -> Result<RunOutcome> {
        let parameters = plan.resolve_parameters(request.parameters)?;
        let created_ms = self.clock.now_ms();
        let id = request.id.unwrap_or_else(|| format!("{}-{created_ms}", plan.pipeline().name));
        crate::artifact::check_segment(&id)
            .map_err(|message| Error::invalid("run.id", format!("a run id must be a safe path segment: {message}")))?;
        self.store.create_run(RunRecord {
            id: id.clone(),
            pipeline: plan.pipeline().name.clone(),
            created_ms,
            parameters: parameters.clone(),
        })?;
        driver::Driver::new(self, plan, id, parameters, BTreeMap::new()).run().await
    }

    /// Resumes run `run` of `plan` from its journal: tasks that completed
    /// are not run again (their outputs are reused), tasks that were in
    /// flight are run again.
    pub async fn resume(&self, plan: Arc<Plan>, run: &str) -> Result<RunOutcome> {
        let record = self
            .store
            .runs()?
            .into_iter()
            .find(|r| r.id == run)
            .ok_or_else(|| Error::Store { message: format!("no run with id {run:?}") })?;
        if record.pipeline != plan.pipeline().name {
            return Err(Error::Run {
                run: run.to_owned(),
                message: format!("it ran pipeline {:?}, not {:?}", record.pipeline, plan.pipeline().name),
            });
        }
        let snapshot = crate::store::RunStoreExt::snapshot(&*self.store, run)?;
        driver::Driver::new(self, plan, record.id, record.parameters, snapshot.tasks).run().await
    }
}

#[cfg(test)]
mod tests;
