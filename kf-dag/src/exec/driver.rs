//! The driver of one run: the scheduling state and the loop that owns it.
//!
//! Frames are DAG instances (the root DAG, a nested DAG, a loop iteration),
//! nodes are task instances inside a frame; both live in arenas indexed by
//! plain numbers. Completions are processed from a worklist rather than by
//! recursion, so deeply nested DAGs cannot overflow the stack.
//!
//! Cost per task instance: O(1) scheduling work plus its in- and out-degree,
//! a few journal appends and one spawned tokio task (leaves only).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::StreamExt;
use futures::future::{AbortHandle, Abortable, Aborted, BoxFuture};
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::{Executor, RunOutcome, TaskSummary};
use crate::cache::CacheEntry;
use crate::cache_key::ResolvedInputs;
use crate::ir::{
    ArtifactSource, Component, Dag, Executor as ExecutorSpec, Implementation, ImporterUri, LoopItems, ParameterSource,
    Placeholder, RetryPolicy, Segment, Task, Template, TriggerStrategy,
};
use crate::plan::DagPlan;
use crate::run::{ArtifactRef, Event, RunState, TaskOutputs, TaskState, TaskStatus};
use crate::runner::{TaskCall, TaskFailure};
use crate::{CacheKey, Error, Plan, Result};

type NodeId = usize;
type FrameId = usize;

/// Appends events to the store, then shows them to the sink.
struct Journal {
    run: Arc<str>,
    store: Arc<dyn crate::store::RunStore>,
    sink: Option<Arc<dyn super::EventSink>>,
    clock: Arc<dyn crate::clock::Clock>,
}

impl Journal {
    fn record(&self, event: Event) -> Result<u64> {
        let at_ms = self.clock.now_ms();
        match &self.sink {
            Some(sink) => {
                // The store takes the event by value; the sink sees it after it is durable.
                let shown = event.clone();
                self.store.append(&self.run, at_ms, event)?;
                sink.event(&self.run, at_ms, &shown);
            }
            None => {
                self.store.append(&self.run, at_ms, event)?;
            }
        }
        Ok(at_ms)
    }
}

struct Frame {
    /// The DAG component; `None` for the root.
    component: Option<String>,
    segments: Vec<String>,
    parameters: BTreeMap<String, Value>,
    artifacts: BTreeMap<String, Vec<ArtifactRef>>,
    /// The first node of this frame; node `first + i` is graph node `i` of its DAG plan.
    first: NodeId,
    remaining: usize,
    /// The node running this frame, and the iteration for a loop.
    owner: Option<(NodeId, Option<usize>)>,
    failed: bool,
    cancelled: bool,
}

struct Node {
    frame: FrameId,
    path: String,
    waiting: usize,
    upstream: Vec<NodeId>,
    downstream: Vec<NodeId>,
    /// The last state journalled for this path (from the resumed journal at first).
    last: Option<TaskState>,
    done: Option<TaskState>,
    outputs: Option<Arc<TaskOutputs>>,
    message: Option<String>,
    attempts: u32,
    started_ms: Option<u64>,
    finished_ms: u64,
    /// Taken from the journal of an earlier process.
    resumed: bool,
    looping: Option<Box<LoopState>>,
}

enum Item {
    Parameter(Value),
    Artifact(ArtifactRef),
}

struct LoopState {
    component: String,
    item_input: String,
    items: Vec<Item>,
    parameters: BTreeMap<String, Value>,
    artifacts: BTreeMap<String, Vec<ArtifactRef>>,
    next: usize,
    active: usize,
    limit: usize,
    finished: usize,
    results: Vec<Option<TaskOutputs>>,
    failed: bool,
    cancelled: bool,
}

/// A leaf task waiting for a slot.
struct Admission {
    node: NodeId,
    call: TaskCall,
    key: Option<CacheKey>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    /// An exit handler (all-upstream-completed): it still runs after a cancel.
    exit_handler: bool,
}

/// What a spawned attempt loop reports.
struct Attempted {
    node: NodeId,
    attempts: u32,
    result: std::result::Result<TaskOutputs, TaskFailure>,
    store_error: Option<Error>,
}

pub(super) struct Driver<'a> {
    exec: &'a Executor,
    plan: Arc<Plan>,
    run: Arc<str>,
    journal: Arc<Journal>,
    prior: BTreeMap<String, TaskStatus>,
    frames: Vec<Frame>,
    nodes: Vec<Node>,
    ready: VecDeque<NodeId>,
    runnable: VecDeque<Admission>,
    finished: Vec<NodeId>,
    done_frames: Vec<FrameId>,
    running: usize,
    /// Attempts in flight, polled by the driver itself: a no-op task then
    /// costs no thread hop, and dropping the set stops them all.
    tasks: FuturesUnordered<BoxFuture<'static, (NodeId, std::result::Result<Attempted, Aborted>)>>,
    /// How to stop each attempt in flight, and whether it is an exit
    /// handler (which a cancelled run still lets finish).
    aborts: HashMap<NodeId, (AbortHandle, bool)>,
    /// The run was cancelled: nothing new starts except exit handlers.
    cancelling: bool,
    root_outputs: Option<TaskOutputs>,
}

impl<'a> Driver<'a> {
    pub(super) fn new(
        exec: &'a Executor,
        plan: Arc<Plan>,
        run: String,
        parameters: BTreeMap<String, Value>,
        prior: BTreeMap<String, TaskStatus>,
    ) -> Self {
        let run: Arc<str> = Arc::from(run);
        let journal = Arc::new(Journal {
            run: run.clone(),
            store: exec.store.clone(),
            sink: exec.sink.clone(),
            clock: exec.clock.clone(),
        });
        let mut driver = Driver {
            exec,
            plan,
            run,
            journal,
            prior,
            frames: Vec::new(),
            nodes: Vec::new(),
            ready: VecDeque::new(),
            runnable: VecDeque::new(),
            finished: Vec::new(),
            done_frames: Vec::new(),
            running: 0,
            tasks: FuturesUnordered::new(),
            aborts: HashMap::new(),
            cancelling: false,
            root_outputs: None,
        };
        driver.spawn_frame(None, String::new(), Vec::new(), parameters, BTreeMap::new(), None);
        driver
    }

    pub(super) async fn run(mut self) -> Result<RunOutcome> {
        self.journal.record(Event::Run(RunState::Running))?;
        let cancel = self.exec.cancel.clone();
        loop {
            self.settle()?;
            if self.root_outputs.is_some() {
                break;
            }
            if self.running == 0 {
                return Err(self.internal("no task can make progress"));
            }
            if cancel.is_cancelled() && !self.cancelling {
                self.begin_cancel()?;
                continue;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled(), if !self.cancelling => self.begin_cancel()?,
                attempted = self.tasks.next() => {
                    let Some((id, attempted)) = attempted else { continue };
                    self.running -= 1;
                    self.aborts.remove(&id);
                    match attempted {
                        Ok(attempted) => self.attempted(attempted)?,
                        Err(Aborted) => {
                            self.nodes[id].last = Some(TaskState::Running);
                            self.complete(id, TaskState::Cancelled, None, Some("the run was cancelled".into()))?;
                        }
                    }
                }
            }
        }
        let root_failed = self.frames.first().is_some_and(|f| f.failed);
        let state = if self.cancelling {
            RunState::Cancelled
        } else if root_failed {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        self.journal.record(Event::Run(state))?;
        Ok(RunOutcome {
            run: self.run.to_string(),
            state,
            tasks: self.summaries(),
            outputs: self.root_outputs.take().unwrap_or_default(),
        })
    }

    /// Processes everything that can happen without waiting: evaluations,
    /// completions, admissions.
    fn settle(&mut self) -> Result<()> {
        loop {
            if let Some(id) = self.finished.pop() {
                self.propagate(id)?;
            } else if let Some(frame) = self.done_frames.pop() {
                self.frame_done(frame)?;
            } else if self.running < self.exec.parallelism
                && let Some(admission) = self.runnable.pop_front()
            {
                self.admit(admission)?;
            } else if self.runnable.len() < self.exec.parallelism
                && let Some(id) = self.ready.pop_front()
            {
                // Evaluated only when a slot will soon take it: a wide DAG
                // then holds node ids in `ready`, not resolved calls.
                self.evaluate(id)?;
            } else {
                return Ok(());
            }
        }
    }

    fn spawn_frame(
        &mut self,
        component: Option<String>,
        prefix: String,
        segments: Vec<String>,
        parameters: BTreeMap<String, Value>,
        artifacts: BTreeMap<String, Vec<ArtifactRef>>,
        owner: Option<(NodeId, Option<usize>)>,
    ) {
        let plan = self.plan.clone();
        let frame_id = self.frames.len();
        let dag_plan = match &component {
            None => Some(plan.root()),
            Some(name) => plan.component(name),
        };
        let first = self.nodes.len();
        let count = dag_plan.map_or(0, |d| d.graph().node_count());
        if let Some(dag_plan) = dag_plan {
            let graph = dag_plan.graph();
            for n in graph.node_indices() {
                let path = format!("{prefix}{}", graph[n]);
                let prior = self.prior.get(&path);
                let last = prior.map(|s| s.state);
                // A resumed attempt gets the next number, so it never shares a
                // work directory with an orphan of the crashed process.
                let attempts = prior.map_or(0, |s| s.attempt);
                self.nodes.push(Node {
                    frame: frame_id,
                    path,
                    waiting: 0,
                    upstream: Vec::new(),
                    downstream: Vec::new(),
                    last,
                    done: None,
                    outputs: None,
                    message: None,
                    attempts,
                    started_ms: None,
                    finished_ms: 0,
                    resumed: false,
                    looping: None,
                });
            }
            for edge in graph.raw_edges() {
                let (u, d) = (first + edge.source().index(), first + edge.target().index());
                self.nodes[u].downstream.push(d);
                self.nodes[d].upstream.push(u);
            }
            // Ready in the plan's topological order (ties by name), so runs are reproducible.
            for name in dag_plan.order() {
                if let Some(n) = dag_plan.node_index(name) {
                    let id = first + n.index();
                    self.nodes[id].waiting = self.nodes[id].upstream.len();
                    if self.nodes[id].waiting == 0 {
                        self.ready.push_back(id);
                    }
                }
            }
        }
        self.frames.push(Frame {
            component,
            segments,
            parameters,
            artifacts,
            first,
            remaining: count,
            owner,
            failed: false,
            cancelled: false,
        });
        if count == 0 {
            self.done_frames.push(frame_id);
        }
    }

    /// The plan of a frame's DAG.
    fn dag_plan<'p>(plan: &'p Plan, frame: &Frame) -> Option<&'p DagPlan> {
        match &frame.component {
            None => Some(plan.root()),
            Some(c) => plan.component(c),
        }
    }

    /// The task name of node `id` (its name in its DAG).
    fn name_of<'p>(plan: &'p Plan, frames: &[Frame], id: NodeId, node: &Node) -> Option<&'p str> {
        let frame = &frames[node.frame];
        let graph = Self::dag_plan(plan, frame)?.graph();
        graph.node_weight(petgraph::graph::NodeIndex::new(id - frame.first)).map(String::as_str)
    }

    /// Node `id`'s artifact path segments: its frame's, then its name + `suffix`.
    fn segments_of(&self, id: NodeId, suffix: &str) -> Vec<String> {
        let frame = &self.frames[self.nodes[id].frame];
        let mut segments = Vec::with_capacity(frame.segments.len() + 1);
        segments.extend(frame.segments.iter().cloned());
        let name = Self::name_of(&self.plan, &self.frames, id, &self.nodes[id]).unwrap_or_default();
        segments.push(format!("{name}{suffix}"));
        segments
    }

    /// The node of sibling task `name` in `frame`.
    fn sibling(plan: &Plan, frame: &Frame, name: &str) -> Option<NodeId> {
        Self::dag_plan(plan, frame)?.node_index(name).map(|n| frame.first + n.index())
    }

    /// The task, its component and the DAG of the frame holding node `id`.
    fn task_of<'p>(
        plan: &'p Plan,
        frames: &[Frame],
        id: NodeId,
        node: &Node,
    ) -> Option<(&'p Task, &'p Component, &'p Dag)> {
        let frame = &frames[node.frame];
        let dag = match &frame.component {
            None => plan.pipeline().root_dag()?,
            Some(c) => plan.pipeline().components.get(c)?.as_dag()?,
        };
        let task = dag.tasks.get(Self::name_of(plan, frames, id, node)?)?;
        let component = plan.pipeline().components.get(&task.component)?;
        Some((task, component, dag))
    }

    /// Journals `node`'s move to `to`, through the intermediate states the
    /// state machine requires (a resumed task that was running goes back to
    /// queued first; a task failing before it ran passes through running).
    fn transition(
        &mut self,
        id: NodeId,
        to: TaskState,
        outputs: Option<TaskOutputs>,
        message: Option<String>,
    ) -> Result<u64> {
        let node = &mut self.nodes[id];
        let attempt = node.attempts.max(1);
        if node.last == Some(to) && to == TaskState::Queued {
            // A resumed task that was still queued: nothing to record.
            return Ok(self.exec.clock.now_ms());
        }
        let mut at = 0;
        if !TaskState::can_transition(node.last, to) {
            for step in route(node.last, to) {
                at = self.journal.record(Event::task(node.path.clone(), step, attempt))?;
                node.last = Some(step);
            }
        }
        at = at.max(self.journal.record(Event::Task {
            task: node.path.clone(),
            state: to,
            attempt,
            outputs,
            message,
        })?);
        node.last = Some(to);
        Ok(at)
    }

    /// Records that node `id` reached a final state.
    fn complete(
        &mut self,
        id: NodeId,
        state: TaskState,
        outputs: Option<TaskOutputs>,
        message: Option<String>,
    ) -> Result<()> {
        let journalled = if state.has_outputs() { Some(outputs.clone().unwrap_or_default()) } else { None };
        let at = self.transition(id, state, journalled, message.clone())?;
        self.finish(id, state, outputs, message, at, false);
        Ok(())
    }

    fn finish(
        &mut self,
        id: NodeId,
        state: TaskState,
        outputs: Option<TaskOutputs>,
        message: Option<String>,
        at: u64,
        resumed: bool,
    ) {
        let node = &mut self.nodes[id];
        node.done = Some(state);
        node.outputs = outputs.map(Arc::new);
        node.message = message;
        node.finished_ms = at;
        node.resumed = resumed;
        self.finished.push(id);
    }

    /// Every task instance that reached a final state, by execution path.
    fn summaries(&self) -> BTreeMap<String, TaskSummary> {
        self.nodes
            .iter()
            .filter_map(|node| {
                let state = node.done?;
                let summary = TaskSummary {
                    state,
                    attempts: node.attempts,
                    started_ms: node.started_ms,
                    finished_ms: node.finished_ms,
                    message: node.message.clone(),
                    resumed: node.resumed,
                };
                Some((node.path.clone(), summary))
            })
            .collect()
    }

    /// Releases the downstream tasks of a finished node and closes its frame
    /// when it was the last one.
    fn propagate(&mut self, id: NodeId) -> Result<()> {
        let downstream = std::mem::take(&mut self.nodes[id].downstream);
        for &d in &downstream {
            let node = &mut self.nodes[d];
            node.waiting -= 1;
            if node.waiting == 0 {
                self.ready.push_back(d);
            }
        }
        self.nodes[id].downstream = downstream;
        let state = self.nodes[id].done;
        let frame = &mut self.frames[self.nodes[id].frame];
        if matches!(state, Some(TaskState::Failed)) {
            frame.failed = true;
        }
        if matches!(state, Some(TaskState::Cancelled)) {
            frame.cancelled = true;
        }
        frame.remaining -= 1;
        if frame.remaining == 0 {
            self.done_frames.push(self.nodes[id].frame);
        }
        Ok(())
    }

    /// A frame's tasks are all done: compute its outputs and hand them to its owner.
    fn frame_done(&mut self, frame_id: FrameId) -> Result<()> {
        let plan = self.plan.clone();
        let frame = &self.frames[frame_id];
        let dag = match &frame.component {
            None => plan.pipeline().root_dag(),
            Some(c) => plan.pipeline().components.get(c).and_then(Component::as_dag),
        };
        let mut outputs = TaskOutputs::default();
        if let Some(dag) = dag {
            for (name, selection) in &dag.outputs.parameters {
                let value = selection.selectors.iter().find_map(|r| {
                    let node = &self.nodes[Self::sibling(&plan, frame, &r.task)?];
                    node.outputs.as_ref()?.parameters.get(&r.output).cloned()
                });
                if let Some(value) = value {
                    outputs.parameters.insert(name.clone(), value);
                }
            }
            for (name, selection) in &dag.outputs.artifacts {
                let value = selection.selectors.iter().find_map(|r| {
                    let node = &self.nodes[Self::sibling(&plan, frame, &r.task)?];
                    node.outputs.as_ref()?.artifacts.get(&r.output).cloned()
                });
                if let Some(value) = value {
                    outputs.artifacts.insert(name.clone(), value);
                }
            }
        }
        let (failed, cancelled) = (frame.failed, frame.cancelled);
        match frame.owner {
            None => {
                self.root_outputs = Some(outputs);
            }
            Some((owner, None)) => {
                let (state, message) = if failed {
                    (TaskState::Failed, Some("a task of its DAG failed".to_owned()))
                } else if cancelled {
                    (TaskState::Cancelled, Some("the run was cancelled".to_owned()))
                } else {
                    (TaskState::Succeeded, None)
                };
                self.complete(owner, state, state.has_outputs().then_some(outputs), message)?;
            }
            Some((owner, Some(iteration))) => {
                let Some(looping) = self.nodes[owner].looping.as_mut() else {
                    return Err(self.internal("a loop iteration ended for a task that is not a loop"));
                };
                looping.active -= 1;
                looping.finished += 1;
                looping.failed |= failed;
                looping.cancelled |= cancelled;
                if let Some(slot) = looping.results.get_mut(iteration) {
                    *slot = Some(outputs);
                }
                self.start_iterations(owner)?;
            }
        }
        Ok(())
    }

    fn internal(&self, message: &str) -> Error {
        Error::Run { run: self.run.to_string(), message: format!("internal scheduling error: {message}") }
    }

    /// Decides what happens to a node whose upstream tasks are all done.
    fn evaluate(&mut self, id: NodeId) -> Result<()> {
        let plan = self.plan.clone();
        let Some((task, component, _)) = Self::task_of(&plan, &self.frames, id, &self.nodes[id]) else {
            return Err(self.internal("a task of the plan is missing"));
        };
        let path = self.nodes[id].path.clone();

        if let Some(status) = self.prior.get(&path).filter(|s| s.state.is_terminal()) {
            // Completed before a crash: keep its result, do not run it again.
            let (state, outputs, message, at, attempt) =
                (status.state, status.outputs.clone(), status.message.clone(), status.since_ms, status.attempt);
            self.nodes[id].attempts = attempt;
            self.finish(id, state, outputs, message, at, true);
            if let Some(sink) = &self.exec.sink {
                let outputs = self.nodes[id].outputs.as_deref().cloned();
                sink.event(&self.run, at, &Event::Task { task: path, state, attempt, outputs, message: None });
            }
            return Ok(());
        }

        if self.cancelling && task.trigger.strategy != TriggerStrategy::AllUpstreamCompleted {
            return self.complete(id, TaskState::Cancelled, None, Some("the run was cancelled".into()));
        }

        if task.trigger.strategy == TriggerStrategy::AllUpstreamSucceeded {
            let blocked = self.nodes[id]
                .upstream
                .iter()
                .map(|&u| &self.nodes[u])
                .find(|u| !u.done.is_some_and(TaskState::has_outputs));
            if let Some(upstream) = blocked {
                let state = upstream.done.map_or("not done".to_owned(), |s| s.to_string());
                let message = format!("upstream task {:?} {state}", upstream.path);
                return self.complete(id, TaskState::Skipped, None, Some(message));
            }
        }

        let (parameters, artifacts) = match self.resolve(id, task, component) {
            Ok(resolved) => resolved,
            Err(message) => return self.complete(id, TaskState::Failed, None, Some(message)),
        };

        if let Some(condition) = &task.trigger.condition {
            match condition.evaluate(&|name| parameters.get(name).cloned()) {
                Ok(true) => {}
                Ok(false) => {
                    let message = format!("condition {condition} is false");
                    return self.complete(id, TaskState::Skipped, None, Some(message));
                }
                Err(e) => {
                    return self.complete(id, TaskState::Failed, None, Some(format!("condition {condition}: {e}")));
                }
            }
        }

        if let Some(pf) = &task.parallel_for {
            return self.start_loop(id, task, pf, parameters, artifacts);
        }
        if let Implementation::Dag(_) = component.implementation {
            self.transition(id, TaskState::Queued, None, None)?;
            self.nodes[id].started_ms = Some(self.transition(id, TaskState::Running, None, None)?);
            let segments = self.segments_of(id, "");
            self.spawn_frame(
                Some(task.component.clone()),
                format!("{path}."),
                segments,
                parameters,
                artifacts,
                Some((id, None)),
            );
            return Ok(());
        }

        let executor = plan.pipeline().executor_of(&task.component);
        if let Some(ExecutorSpec::Importer(importer)) = executor {
            let uri = match &importer.uri {
                ImporterUri::Constant(uri) => Some(uri.clone()),
                ImporterUri::InputParameter(p) => parameters.get(p).and_then(Value::as_str).map(str::to_owned),
            };
            let Some(uri) = uri else {
                return self.complete(
                    id,
                    TaskState::Failed,
                    None,
                    Some("the importer's URI parameter is not a string".into()),
                );
            };
            let artifact = ArtifactRef {
                digest: format!("uri:{}", crate::artifact::digest(uri.as_bytes()).trim_start_matches("sha256:")),
                uri,
                metadata: importer.metadata.clone(),
            };
            let mut outputs = TaskOutputs::default();
            for name in component.outputs.artifacts.keys() {
                outputs.artifacts.insert(name.clone(), vec![artifact.clone()]);
            }
            return self.complete(id, TaskState::Succeeded, Some(outputs), None);
        }

        let key = match &self.exec.cache {
            Some(cache) if task.caching.enabled => {
                let inputs = ResolvedInputs {
                    parameters: parameters.clone(),
                    artifacts: artifacts
                        .iter()
                        .map(|(k, v)| (k.clone(), v.iter().map(|a| a.digest.clone()).collect()))
                        .collect(),
                };
                let key = CacheKey::for_task(plan.pipeline(), task, &inputs);
                if let Some(key) = &key
                    // An unreadable entry is a miss: the cache is an optimisation, never a reason to fail.
                    && let Ok(Some(entry)) = cache.get(key)
                    && entry.is_fresh(self.exec.clock.now_ms(), self.exec.cache_max_age)
                {
                    let message = format!("reused the result of {} in run {}", entry.task, entry.run);
                    return self.complete(id, TaskState::Cached, Some(entry.outputs), Some(message));
                }
                key
            }
            _ => None,
        };

        self.transition(id, TaskState::Queued, None, None)?;
        let segments = self.segments_of(id, "");
        let call = TaskCall {
            run: self.run.clone(),
            task: path,
            segments,
            attempt: 1,
            component: task.component.clone(),
            plan: plan.clone(),
            parameters,
            artifacts,
            artifact_store: self.exec.artifacts.clone(),
        };
        self.runnable.push_back(Admission {
            node: id,
            call,
            key,
            retry: task.retry.unwrap_or_default(),
            timeout: task.timeout.or(self.exec.default_timeout),
            exit_handler: task.trigger.strategy == TriggerStrategy::AllUpstreamCompleted,
        });
        Ok(())
    }

    /// The task's input values: from constants, the frame's inputs, sibling
    /// outputs and final statuses, then defaults. `Err` says which required
    /// input has no value and why.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        id: NodeId,
        task: &Task,
        component: &Component,
    ) -> std::result::Result<(BTreeMap<String, Value>, BTreeMap<String, Vec<ArtifactRef>>), String> {
        let frame = &self.frames[self.nodes[id].frame];
        // A loop's item input is given per iteration, not by the loop task.
        let item_input = task.parallel_for.as_ref().map(|pf| pf.item_input.as_str());
        let plan = &*self.plan;
        let sibling = |name: &str| Self::sibling(plan, frame, name).map(|n| &self.nodes[n]);
        let mut parameters = BTreeMap::new();
        let mut why: BTreeMap<&str, String> = BTreeMap::new();
        let mut templated = Vec::new();
        for (name, source) in &task.parameters {
            let value = match source {
                ParameterSource::Constant(Value::String(s)) if s.contains("{{$") => {
                    templated.push((name, s));
                    continue;
                }
                ParameterSource::Constant(v) => Some(v.clone()),
                ParameterSource::ComponentInput { name: input, selector } => {
                    let value = frame.parameters.get(input);
                    match selector {
                        Some(selector) => value.and_then(|v| selector.apply(v)),
                        None => value.cloned(),
                    }
                }
                ParameterSource::TaskOutput(r) => {
                    let node = sibling(&r.task);
                    let value =
                        node.and_then(|n| n.outputs.as_ref()).and_then(|o| o.parameters.get(&r.output)).cloned();
                    if value.is_none() {
                        let state = node.and_then(|n| n.done).map_or("not done".to_owned(), |s| s.to_string());
                        why.insert(name, format!("task {:?} ({state}) gave no output {:?}", r.task, r.output));
                    }
                    value
                }
                ParameterSource::TaskFinalStatus(t) => sibling(t).map(|n| self.final_status(n)),
            };
            if let Some(value) = value {
                parameters.insert(name.clone(), value);
            }
        }
        for (name, text) in templated {
            parameters.insert(name.clone(), Value::String(interpolate(text, &parameters)));
        }
        for (name, spec) in &component.inputs.parameters {
            if parameters.contains_key(name) || item_input == Some(name.as_str()) {
                continue;
            }
            match &spec.default {
                Some(default) => {
                    parameters.insert(name.clone(), default.clone());
                }
                None if spec.optional => {}
                None => {
                    let reason = why.remove(name.as_str()).unwrap_or_else(|| "no value".to_owned());
                    return Err(format!("input parameter {name:?} has no value: {reason}"));
                }
            }
        }
        let mut artifacts = BTreeMap::new();
        for (name, source) in &task.artifacts {
            let value = match source {
                ArtifactSource::ComponentInput(input) => frame.artifacts.get(input).cloned(),
                ArtifactSource::TaskOutput(r) => {
                    sibling(&r.task).and_then(|n| n.outputs.as_ref()).and_then(|o| o.artifacts.get(&r.output)).cloned()
                }
            };
            match value {
                Some(value) => {
                    artifacts.insert(name.clone(), value);
                }
                None if component.inputs.artifacts.get(name).is_some_and(|s| s.optional) => {}
                None => return Err(format!("input artifact {name:?} has no value")),
            }
        }
        for (name, spec) in &component.inputs.artifacts {
            if !artifacts.contains_key(name) && !spec.optional && item_input != Some(name.as_str()) {
                return Err(format!("input artifact {name:?} has no value"));
            }
        }
        Ok((parameters, artifacts))
    }

    /// KFP's `PipelineTaskFinalStatus` of a finished sibling.
    fn final_status(&self, node: &Node) -> Value {
        let state = match node.done {
            Some(TaskState::Succeeded | TaskState::Cached) => "SUCCEEDED",
            Some(TaskState::Failed) => "FAILED",
            Some(TaskState::Skipped) => "SKIPPED",
            Some(TaskState::Cancelled) => "CANCELLED",
            _ => "RUNNING",
        };
        let failed = node.done == Some(TaskState::Failed);
        json!({
            "state": state,
            "pipelineJobResourceName": &*self.run,
            "pipelineTaskName": node.path,
            "error": {"code": if failed { 2 } else { 0 }, "message": if failed { node.message.clone().unwrap_or_default() } else { String::new() }},
        })
    }

    fn start_loop(
        &mut self,
        id: NodeId,
        task: &Task,
        pf: &crate::ir::ParallelFor,
        parameters: BTreeMap<String, Value>,
        artifacts: BTreeMap<String, Vec<ArtifactRef>>,
    ) -> Result<()> {
        let items: std::result::Result<Vec<Item>, String> = match &pf.items {
            LoopItems::Raw(values) => Ok(values.iter().cloned().map(Item::Parameter).collect()),
            LoopItems::InputParameter(input) => match parameters.get(input) {
                Some(Value::Array(values)) => Ok(values.iter().cloned().map(Item::Parameter).collect()),
                // KFP declares some loop lists STRING and passes JSON text.
                Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Array(values)) => Ok(values.into_iter().map(Item::Parameter).collect()),
                    _ => Err(format!("loop input {input:?} is not a JSON list: {text:?}")),
                },
                Some(other) => Err(format!("loop input {input:?} is not a list: {other}")),
                None => Err(format!("loop input {input:?} has no value")),
            },
            LoopItems::InputArtifact(input) => match artifacts.get(input) {
                Some(list) => Ok(list.iter().cloned().map(Item::Artifact).collect()),
                None => Err(format!("loop input artifact {input:?} has no value")),
            },
        };
        let items = match items {
            Ok(items) => items,
            Err(message) => return self.complete(id, TaskState::Failed, None, Some(message)),
        };
        self.transition(id, TaskState::Queued, None, None)?;
        self.nodes[id].started_ms = Some(self.transition(id, TaskState::Running, None, None)?);
        let limit = pf.parallelism.map_or(usize::MAX, |p| (p as usize).max(1));
        let count = items.len();
        self.nodes[id].looping = Some(Box::new(LoopState {
            component: task.component.clone(),
            item_input: pf.item_input.clone(),
            items,
            parameters,
            artifacts,
            next: 0,
            active: 0,
            limit,
            finished: 0,
            results: (0..count).map(|_| None).collect(),
            failed: false,
            cancelled: false,
        }));
        self.start_iterations(id)
    }

    /// Starts loop iterations up to the loop's limit; completes the loop
    /// when every iteration is done.
    fn start_iterations(&mut self, id: NodeId) -> Result<()> {
        let cancelled = self.frames[self.nodes[id].frame].cancelled || self.cancelling;
        loop {
            let Some(looping) = self.nodes[id].looping.as_mut() else { return Ok(()) };
            if looping.next < looping.items.len() && looping.active < looping.limit && !cancelled {
                let i = looping.next;
                looping.next += 1;
                looping.active += 1;
                let (mut parameters, mut artifacts) = (looping.parameters.clone(), looping.artifacts.clone());
                match &looping.items[i] {
                    Item::Parameter(v) => {
                        parameters.insert(looping.item_input.clone(), v.clone());
                    }
                    Item::Artifact(a) => {
                        artifacts.insert(looping.item_input.clone(), vec![a.clone()]);
                    }
                }
                let component = looping.component.clone();
                let segments = self.segments_of(id, &format!("[{i}]"));
                let prefix = format!("{}[{i}].", self.nodes[id].path);
                self.spawn_frame(Some(component), prefix, segments, parameters, artifacts, Some((id, Some(i))));
                continue;
            }
            if looping.active > 0 || (looping.next < looping.items.len() && !cancelled) {
                return Ok(());
            }
            let Some(looping) = self.nodes[id].looping.take() else { return Ok(()) };
            if looping.failed {
                return self.complete(id, TaskState::Failed, None, Some("an iteration failed".into()));
            }
            if looping.cancelled || looping.finished < looping.items.len() {
                return self.complete(id, TaskState::Cancelled, None, Some("the run was cancelled".into()));
            }
            let plan = self.plan.clone();
            let Some(component) = plan.pipeline().components.get(&looping.component) else {
                return Err(self.internal("a loop component is missing"));
            };
            let mut outputs = TaskOutputs::default();
            for name in component.outputs.parameters.keys() {
                let values: Vec<Value> = looping
                    .results
                    .iter()
                    .filter_map(|r| r.as_ref().and_then(|o| o.parameters.get(name)).cloned())
                    .collect();
                outputs.parameters.insert(name.clone(), Value::Array(values));
            }
            for name in component.outputs.artifacts.keys() {
                let values: Vec<ArtifactRef> = looping
                    .results
                    .iter()
                    .filter_map(|r| r.as_ref().and_then(|o| o.artifacts.get(name)))
                    .flatten()
                    .cloned()
                    .collect();
                outputs.artifacts.insert(name.clone(), values);
            }
            return self.complete(id, TaskState::Succeeded, Some(outputs), None);
        }
    }

    /// Starts a queued leaf task.
    fn admit(&mut self, admission: Admission) -> Result<()> {
        let id = admission.node;
        let attempt = self.nodes[id].attempts + 1;
        self.nodes[id].attempts = attempt;
        self.nodes[id].started_ms = Some(self.transition(id, TaskState::Running, None, None)?);
        self.running += 1;
        let runner = self.exec.runner.clone();
        let journal = self.journal.clone();
        let clock = self.exec.clock.clone();
        let key = admission.key;
        let cache = self.exec.cache.clone();
        let task_path = key.as_ref().map(|_| admission.call.task.clone());
        let (abort, registration) = AbortHandle::new_pair();
        self.aborts.insert(id, (abort, admission.exit_handler));
        let attempt_loop = async move {
            let Admission { node, mut call, retry, timeout, .. } = admission;
            call.attempt = attempt;
            let run = attempts(&*runner, &journal, &*clock, call, retry, timeout);
            let attempted = match AssertUnwindSafe(run).catch_unwind().await {
                Ok((attempts, result, store_error)) => Attempted { node, attempts, result, store_error },
                Err(_) => Attempted {
                    node,
                    attempts: attempt,
                    result: Err(TaskFailure::permanent("the task runner panicked")),
                    store_error: None,
                },
            };
            if let (Some(cache), Some(key), Ok(outputs)) = (&cache, &key, &attempted.result) {
                let entry = CacheEntry {
                    outputs: outputs.clone(),
                    created_ms: clock.now_ms(),
                    run: journal.run.to_string(),
                    task: task_path.unwrap_or_default(),
                };
                // Failing to remember a result costs a rerun later, not this run.
                let _ = cache.put(key, entry);
            }
            attempted
        };
        self.tasks.push(Box::pin(async move { (id, Abortable::new(attempt_loop, registration).await) }));
        Ok(())
    }

    fn attempted(&mut self, attempted: Attempted) -> Result<()> {
        if let Some(error) = attempted.store_error {
            return Err(error);
        }
        let id = attempted.node;
        self.nodes[id].attempts = attempted.attempts;
        // The attempt loop journalled its retries; the last one left the task running.
        self.nodes[id].last = Some(TaskState::Running);
        match attempted.result {
            Ok(outputs) => self.complete(id, TaskState::Succeeded, Some(outputs), None),
            Err(failure) => self.complete(id, TaskState::Failed, None, Some(failure.message)),
        }
    }

    /// Cancels the run: attempts in flight are aborted (dropping them stops
    /// their processes) and queued tasks cancelled, except exit handlers,
    /// which still run and see the final statuses; nothing else starts.
    fn begin_cancel(&mut self) -> Result<()> {
        self.cancelling = true;
        for (handle, exit_handler) in self.aborts.values() {
            if !exit_handler {
                handle.abort();
            }
        }
        let queued: Vec<Admission> = self.runnable.drain(..).collect();
        for admission in queued {
            if admission.exit_handler {
                self.runnable.push_back(admission);
            } else {
                self.complete(admission.node, TaskState::Cancelled, None, Some("the run was cancelled".into()))?;
            }
        }
        Ok(())
    }
}

/// Runs attempts until one succeeds, a failure is permanent or the retries
/// are used up; journals each retry and waits its backoff on `clock`.
async fn attempts(
    runner: &dyn crate::runner::TaskRunner,
    journal: &Journal,
    clock: &dyn crate::clock::Clock,
    call: TaskCall,
    retry: RetryPolicy,
    timeout: Option<Duration>,
) -> (u32, std::result::Result<TaskOutputs, TaskFailure>, Option<Error>) {
    let first = call.attempt;
    let mut attempt = first;
    let mut spare = Some(call);
    loop {
        // The last allowed attempt takes the call itself; earlier ones a copy.
        let last = attempt - first >= retry.max_retry_count;
        let Some(mut this) = (if last { spare.take() } else { spare.clone() }) else {
            return (attempt, Err(TaskFailure::permanent("no attempt left")), None);
        };
        this.attempt = attempt;
        let running = runner.run(this);
        let result = match timeout {
            Some(limit) => {
                tokio::select! {
                    biased;
                    result = running => result,
                    () = clock.sleep(limit) => Err(TaskFailure::new(format!("timed out after {limit:?}"))),
                }
            }
            None => running.await,
        };
        match result {
            Ok(outputs) => return (attempt, Ok(outputs), None),
            Err(failure) if failure.retryable && attempt - first < retry.max_retry_count => {
                // Not the last attempt, so the spare call is still here.
                let task = spare.as_ref().map(|c| c.task.clone()).unwrap_or_default();
                let retry_number = attempt - first + 1;
                let delay = retry.delay(retry_number);
                let event = Event::Task {
                    task: task.clone(),
                    state: TaskState::Retrying,
                    attempt,
                    outputs: None,
                    message: Some(format!("{failure}; retry {retry_number} of {} in {delay:?}", retry.max_retry_count)),
                };
                if let Err(e) = journal.record(event) {
                    return (attempt, Err(failure), Some(e));
                }
                clock.sleep(delay).await;
                attempt += 1;
                if let Err(e) = journal.record(Event::task(task.clone(), TaskState::Running, attempt)) {
                    return (attempt, Err(failure), Some(e));
                }
            }
            Err(failure) => return (attempt, Err(failure), None),
        }
    }
}

/// Replaces `{{$.inputs.parameters['x']}}` in a constant with the value of
/// input `x` (text as is, other values as JSON); other text stays.
fn interpolate(text: &str, parameters: &BTreeMap<String, Value>) -> String {
    let Ok(template) = Template::parse(text) else { return text.to_owned() };
    let mut out = String::new();
    for segment in template.segments() {
        match segment {
            Segment::Text(t) => out.push_str(t),
            Segment::Placeholder(Placeholder::InputParameter(name)) => match parameters.get(name) {
                Some(Value::String(s)) => out.push_str(s),
                Some(other) => out.push_str(&other.to_string()),
                None => {}
            },
            Segment::Placeholder(p) => out.push_str(&p.to_string()),
        }
    }
    out
}

/// The states between `from` and `to` that the state machine requires,
/// ending with `to` excluded: a breadth-first search over the eight states.
fn route(from: Option<TaskState>, to: TaskState) -> Vec<TaskState> {
    use TaskState::*;
    const ALL: [TaskState; 8] = [Queued, Running, Retrying, Succeeded, Failed, Skipped, Cached, Cancelled];
    let mut previous: HashMap<TaskState, Option<TaskState>> = HashMap::new();
    let mut queue = VecDeque::new();
    for s in ALL {
        if TaskState::can_transition(from, s) {
            previous.insert(s, None);
            queue.push_back(s);
        }
    }
    while let Some(s) = queue.pop_front() {
        if TaskState::can_transition(Some(s), to) {
            let mut steps = vec![s];
            let mut at = s;
            while let Some(Some(p)) = previous.get(&at) {
                steps.push(*p);
                at = *p;
            }
            steps.reverse();
            return steps;
        }
        for next in ALL {
            if !previous.contains_key(&next) && TaskState::can_transition(Some(s), next) {
                previous.insert(next, Some(s));
                queue.push_back(next);
            }
        }
    }
    Vec::new()
}
