//! The pure core of the Experiment reconciler: from a Katib Experiment and
//! the trial objects the API server has, decide which trials to create,
//! which to stop, what status to write and when to look again.
//!
//! No IO and no clock: the IO shell ([`super::reconcile`]) reads, calls
//! [`reconcile_plan`] and carries the [`Plan`] out. The experiment's history
//! is rebuilt from the observed trials alone ([`rebuild`]): each trial object
//! records its assignment in [`ASSIGNMENT_ANNOTATION`], its reported metrics
//! in [`METRICS_ANNOTATION`] and, once the controller stopped it,
//! [`STOPPED_ANNOTATION`]; its end comes from its status conditions. For
//! trials that print their metrics (Katib's `StdOut` collector) it also
//! decides whose log the shell reads and how ([`log_collector`],
//! [`awaiting_log`], [`primary_pod`]) and what the shell records
//! ([`metrics_annotation`]); the shell records it before it plans. The
//! sampler's generator is seeded from the experiment and the number of
//! trials observed, so the same observation always plans the same new
//! trials.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde_json::{Map, Value, json};

use k8s_openapi::api::core::v1::Pod;

use crate::experiment::{
    Event, ExperimentState, JournalValue, Plan as ExperimentPlan, RunEnd, TrialPhase, fill_trial_template,
    find_container,
};
use crate::katib::{API_VERSION, Condition, Experiment, ExperimentStatus, KIND};
use crate::metrics::{MetricSeries, Strategy, TextMetrics};
use crate::sampler::{Shortfall, TrialState};
use crate::space::ParamValue;
use crate::{Error, Result};

/// Label on every trial object: the name of its Experiment (Katib's).
pub const EXPERIMENT_LABEL: &str = "katib.kubeflow.org/experiment";
/// Label on every trial object: its own name, the trial's (Katib's).
pub const TRIAL_LABEL: &str = "katib.kubeflow.org/trial";
/// Annotation holding a trial's parameters, as the journal writes them:
/// `[{"float": 0.02}, {"int": 3}, {"category": 1}]` in the space's order.
pub const ASSIGNMENT_ANNOTATION: &str = "kf.dev/assignment";
/// Annotation a trial writes on its own object to report metrics: a JSON
/// object of metric name → values in the order reported,
/// `{"loss": [0.9, 0.4]}`.
pub const METRICS_ANNOTATION: &str = "kf.dev/metrics";
/// Annotation the controller writes on a trial it stopped: `EarlyStopped`
/// (the median rule) or `Killed` (the experiment ended).
pub const STOPPED_ANNOTATION: &str = "kf.dev/stopped";

/// Condition reason: the Experiment fails validation.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Condition reason: the trial template is not an inline `trialSpec`.
pub const TEMPLATE_NOT_FOUND: &str = "TrialTemplateNotFound";
/// Condition reason: a trial object of this experiment cannot be read back.
pub const TRIAL_UNREADABLE: &str = "TrialUnreadable";
/// Condition reason: a trial name is held by an object the experiment does not own.
pub const CHILD_NOT_OWNED: &str = "ChildNotOwned";
/// Condition reason: the algorithm cannot suggest in this space.
pub const SUGGESTION_FAILED: &str = "SuggestionFailed";

/// The kinds whose `spec.suspend` stops their pods: stopping such a trial
/// suspends it; any other kind is only annotated.
const SUSPENDABLE: [(&str, &str); 3] =
    [("batch/v1", "Job"), ("trainer.kubeflow.org/v1alpha1", "TrainJob"), ("jobset.x-k8s.io/v1alpha2", "JobSet")];

/// The objects the API server has for an Experiment: those listed by
/// [`EXPERIMENT_LABEL`], and any object found at the name of a trial about
/// to be created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The objects, in any order.
    pub children: Vec<Value>,
}

/// When the shell should reconcile the Experiment again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// On the next change of the Experiment or a trial (watch events).
    AwaitChange,
    /// After a backoff: what blocks the experiment lives outside what the
    /// controller watches (a template source, a foreign object).
    Retry,
}

/// A trial to stop: a JSON merge patch on its object.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// The object's `apiVersion`.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// The object's name, `<experiment>-<index>`.
    pub name: String,
    /// [`TrialPhase::EarlyStopped`] or [`TrialPhase::Killed`].
    pub phase: TrialPhase,
}

impl Stop {
    /// The merge patch: [`STOPPED_ANNOTATION`], and `spec.suspend: true` for
    /// the kinds whose suspension stops their pods (Job, TrainJob, JobSet).
    pub fn patch(&self) -> Value {
        let why = if self.phase == TrialPhase::Killed { "Killed" } else { "EarlyStopped" };
        let mut patch = json!({"metadata": {"annotations": {STOPPED_ANNOTATION: why}}});
        if SUSPENDABLE.contains(&(self.api_version.as_str(), self.kind.as_str())) {
            patch["spec"] = json!({"suspend": true});
        }
        patch
    }
}

/// What one reconcile must do, in this order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// New trial objects, server-side applied in index order.
    pub create: Vec<Value>,
    /// Running trials to stop.
    pub stop: Vec<Stop>,
    /// The status to write, when it differs from the Experiment's.
    pub status: Option<ExperimentStatus>,
    /// When to look again.
    pub next: Next,
}

impl Plan {
    /// Nothing to do until the Experiment changes.
    pub fn idle() -> Plan {
        Plan { create: Vec::new(), stop: Vec::new(), status: None, next: Next::AwaitChange }
    }

    /// Whether the plan writes anything.
    pub fn writes(&self) -> bool {
        !self.create.is_empty() || !self.stop.is_empty() || self.status.is_some()
    }
}

/// `(apiVersion, kind, name)` of an object.
pub fn child_key(object: &Value) -> (&str, &str, &str) {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (text("/apiVersion"), text("/kind"), text("/metadata/name"))
}

fn uid(experiment: &Experiment) -> &str {
    experiment.metadata.as_ref().and_then(|m| m.extra.get("uid")).and_then(Value::as_str).unwrap_or_default()
}

/// Whether this controller reconciles `experiment`: not while it is being
/// deleted (its trials go with it through their owner references).
pub fn acts_on(experiment: &Experiment) -> bool {
    experiment.metadata.as_ref().is_none_or(|m| m.extra.get("deletionTimestamp").is_none_or(Value::is_null))
}

/// Whether a reconcile of `experiment` depends on its trials: it is acted
/// on, has not ended, is valid, has a uid and an inline trial template.
/// Otherwise [`reconcile_plan`] decides without them.
pub fn needs_trials(experiment: &Experiment) -> bool {
    acts_on(experiment)
        && !is_finished(experiment)
        && !uid(experiment).is_empty()
        && trial_spec(experiment).is_some()
        && ExperimentPlan::from_katib(experiment).is_ok()
        && log_collector(experiment).is_ok()
}

/// Whether `status` holds `Succeeded` or `Failed` `True`.
pub fn has_ended(status: &ExperimentStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| matches!(c.type_.as_deref(), Some("Succeeded" | "Failed")) && c.status.as_deref() == Some("True"))
}

/// Whether the Experiment's status says it has ended (`Succeeded` or
/// `Failed` is `True`): nothing changes any more.
pub fn is_finished(experiment: &Experiment) -> bool {
    experiment.status.as_ref().is_some_and(has_ended)
}

/// The trial template's object (`trialTemplate.trialSpec`), when the
/// Experiment has one inline.
pub fn trial_spec(experiment: &Experiment) -> Option<&Value> {
    experiment.spec.as_ref()?.trial_template.as_ref()?.trial_spec.as_ref()
}

/// `(apiVersion, kind)` of the trial objects: the template's, or
/// `batch/v1 Job` when the Experiment has no inline template.
pub fn trial_kind(experiment: &Experiment) -> (String, String) {
    let spec = trial_spec(experiment);
    let text = |field: &str, default: &str| {
        spec.and_then(|s| s.get(field)).and_then(Value::as_str).unwrap_or(default).to_string()
    };
    (text("apiVersion", "batch/v1"), text("kind", "Job"))
}

/// Whether `object` has an owner reference to the object with `uid`.
fn owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

/// The metrics a trial reported in [`METRICS_ANNOTATION`]; none when it
/// has not written it (or wrote something that is not a JSON object).
pub fn reported_metrics(object: &Value) -> MetricSeries {
    annotation(object, METRICS_ANNOTATION)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .map(|v| MetricSeries::from_json(&v))
        .unwrap_or_default()
}

/// How much of a trial's annotations [`metrics_annotation`] may take: a
/// quarter of the API server's 256 KiB limit on all of an object's
/// annotations, so the trial's other annotations keep room.
pub const METRICS_ANNOTATION_BUDGET: usize = 64 * 1024;

/// The metrics collector kinds whose metrics the controller reads from the
/// trial's log when the trial did not write [`METRICS_ANNOTATION`]: `StdOut`
/// (Katib's default, also when `metricsCollectorSpec` is absent). The
/// others keep to the annotation: `None` and `Push` (the trial reports),
/// and the kinds that need Katib's sidecar (`File`, `TensorFlowEvent`,
/// `PrometheusMetric`, `Custom`), which this controller does not inject.
pub const LOG_COLLECTOR_KINDS: [&str; 1] = ["StdOut"];

/// How the controller reads a finished trial's metrics from its pod's log,
/// as Katib's StdOut collector reads them from the trial's output: every
/// line matched against the filters, only the experiment's metrics kept.
#[derive(Debug, Clone)]
pub struct LogCollector {
    /// `spec.metricsCollectorSpec.source.filter.metricsFormat`, or Katib's
    /// default `name=value` filter ([`TextMetrics::from_formats`]).
    pub filters: TextMetrics,
    /// The metrics kept: the objective, then the additional ones.
    pub names: Vec<String>,
    /// The container whose log is read: `trialTemplate.primaryContainerName`,
    /// else the template's first container (as the local runner picks it);
    /// `None` when the template names no container (the API server then
    /// serves the log of a pod's only container).
    pub container: Option<String>,
    /// `trialTemplate.primaryPodLabels`: which of the trial's pods runs
    /// the training container.
    pub primary_pod_labels: BTreeMap<String, String>,
}

impl LogCollector {
    /// The series of the experiment's metrics in `log`: lines that match no
    /// filter, and metrics the experiment does not name, are ignored.
    /// O(log · filters).
    pub fn parse(&self, log: &str) -> MetricSeries {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        MetricSeries::collect(&self.filters, log, &names)
    }

    /// The label selector of trial `name`'s pods, for a trial of `kind` in
    /// `api_version`: what its operator labels its pods with — a Job's
    /// `batch.kubernetes.io/job-name` (Kubernetes ≥ 1.27), a TrainJob's or
    /// JobSet's `jobset.sigs.k8s.io/jobset-name`, a Kubeflow training
    /// operator job's (`kubeflow.org/v1`) `training.kubeflow.org/job-name`;
    /// any other kind's pods are found only if its template labels them
    /// [`TRIAL_LABEL`]` = <trial name>`. [`LogCollector::primary_pod_labels`]
    /// are added, sorted.
    pub fn pod_selector(&self, api_version: &str, kind: &str, name: &str) -> String {
        let by = match (api_version, kind) {
            ("batch/v1", "Job") => "batch.kubernetes.io/job-name",
            ("trainer.kubeflow.org/v1alpha1", "TrainJob") | ("jobset.x-k8s.io/v1alpha2", _) => {
                "jobset.sigs.k8s.io/jobset-name"
            }
            ("kubeflow.org/v1", _) => "training.kubeflow.org/job-name",
            _ => TRIAL_LABEL,
        };
        let mut selector = format!("{by}={name}");
        for (key, value) in &self.primary_pod_labels {
            selector.push_str(&format!(",{key}={value}"));
        }
        selector
    }
}

/// How `experiment` collects its trials' metrics from logs: `Some` for the
/// kinds of [`LOG_COLLECTOR_KINDS`], `None` when the trials report in
/// [`METRICS_ANNOTATION`] only. Fails on a `metricsFormat` regex that does
/// not compile or lacks its two groups, naming it.
pub fn log_collector(experiment: &Experiment) -> Result<Option<LogCollector>> {
    let Some(spec) = experiment.spec.as_ref() else { return Ok(None) };
    let collector = spec.metrics_collector_spec.as_ref();
    let kind = collector.and_then(|c| c.collector.as_ref()).and_then(|c| c.kind.as_deref()).unwrap_or("StdOut");
    if !LOG_COLLECTOR_KINDS.contains(&kind) {
        return Ok(None);
    }
    let formats = collector
        .and_then(|c| c.source.as_ref())
        .and_then(|s| s.filter.as_ref())
        .and_then(|f| f.metrics_format.as_deref())
        .unwrap_or_default();
    let filters = TextMetrics::from_formats(formats)?;
    let objective = spec.objective.as_ref();
    let names = objective
        .and_then(|o| o.objective_metric_name.clone())
        .into_iter()
        .chain(objective.and_then(|o| o.additional_metric_names.clone()).into_iter().flatten())
        .collect();
    let template = spec.trial_template.as_ref();
    let container = template.and_then(|t| t.primary_container_name.clone()).or_else(|| {
        let first = template.and_then(|t| t.trial_spec.as_ref()).and_then(|s| find_container(s, None));
        first.and_then(|c| c.get("name")).and_then(Value::as_str).map(str::to_string)
    });
    let primary_pod_labels = template.and_then(|t| t.primary_pod_labels.clone()).unwrap_or_default();
    Ok(Some(LogCollector { filters, names, container, primary_pod_labels }))
}

/// The trials whose metrics the shell reads from their logs before it
/// plans: owned by `experiment`, ended `Completed`
/// ([`trial_end`]) and without [`METRICS_ANNOTATION`]. A failed, stopped
/// or killed trial's objective is never used, so its log is not read.
/// Once the shell has written the annotation, the trial is not listed
/// again: a log is read at most once, and a restart reads none.
pub fn awaiting_log<'a>(experiment: &Experiment, observed: &'a Observed) -> Vec<&'a Value> {
    let uid = uid(experiment);
    observed
        .children
        .iter()
        .filter(|o| owned_by(o, uid))
        .filter(|o| annotation(o, METRICS_ANNOTATION).is_none())
        .filter(|o| trial_end(o) == Some(RunEnd::Completed))
        .collect()
}

/// The pod whose log holds a trial's metrics, among the trial's `pods`:
/// the first by name of those that succeeded (a Job's pod that completed
/// after failed attempts; a JobSet's rank 0), else the first by name.
/// `None` without pods (they were deleted): the trial then has no metrics.
pub fn primary_pod(pods: &[Pod]) -> Option<&str> {
    let succeeded = |p: &&Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
    let first_succeeded = pods.iter().filter(succeeded).filter_map(|p| p.metadata.name.as_deref()).min();
    first_succeeded.or_else(|| pods.iter().filter_map(|p| p.metadata.name.as_deref()).min())
}

/// The [`METRICS_ANNOTATION`] text of `series`: its JSON
/// ([`MetricSeries::to_json`]), or, when that exceeds
/// [`METRICS_ANNOTATION_BUDGET`], each metric summarised as its
/// `[min, max, latest]`. The summary keeps every value Katib reports (the
/// objective under any strategy, the status' min/max/latest); only the
/// median stopping rule, which averages a finished trial's values step by
/// step, then sees three steps. O(values).
pub fn metrics_annotation(series: &MetricSeries) -> String {
    let full = series.to_json().to_string();
    if full.len() <= METRICS_ANNOTATION_BUDGET {
        return full;
    }
    let mut summary = MetricSeries::default();
    for name in series.names() {
        for strategy in [Strategy::Min, Strategy::Max, Strategy::Latest] {
            if let Some(value) = series.value(name, strategy) {
                summary.push(name, value);
            }
        }
    }
    summary.to_json().to_string()
}

/// The merge patch that records `annotation` (a [`metrics_annotation`]) on
/// a trial: it touches no other field.
pub fn metrics_patch(annotation: &str) -> Value {
    json!({"metadata": {"annotations": {METRICS_ANNOTATION: annotation}}})
}

/// Applies a JSON merge patch (RFC 7386) to `target`, as the API server
/// does: objects merge key by key, `null` removes a key, anything else
/// replaces. O(patch).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in fields {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// How a trial object has ended, if it has: [`STOPPED_ANNOTATION`] first
/// (the controller's decision stands), then a `True` status condition
/// `Failed` (its message kept), or `Complete`, `Completed` or `Succeeded`.
pub fn trial_end(object: &Value) -> Option<RunEnd> {
    match annotation(object, STOPPED_ANNOTATION) {
        Some("Killed") => return Some(RunEnd::Killed),
        Some(_) => return Some(RunEnd::EarlyStopped),
        None => {}
    }
    let conditions = object.pointer("/status/conditions").and_then(Value::as_array)?;
    let holds = |c: &Value, types: &[&str]| {
        c.get("type").and_then(Value::as_str).is_some_and(|t| types.contains(&t))
            && c.get("status").and_then(Value::as_str) == Some("True")
    };
    if let Some(failed) = conditions.iter().find(|c| holds(c, &["Failed"])) {
        let message = failed.get("message").and_then(Value::as_str).filter(|m| !m.is_empty());
        return Some(RunEnd::Failed(message.unwrap_or("the trial failed").to_string()));
    }
    conditions.iter().any(|c| holds(c, &["Complete", "Completed", "Succeeded"])).then_some(RunEnd::Completed)
}

/// Why a reconcile cannot go on: a condition reason, its message, when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and where.
    pub message: String,
    /// When to look again.
    pub next: Next,
}

/// The experiment's trials rebuilt from the observed objects.
#[derive(Debug)]
pub struct Rebuilt {
    /// The state, with every observed trial started and the finished ones finished.
    pub state: ExperimentState,
    /// Each running trial's index and reported metrics.
    pub running: Vec<(usize, MetricSeries)>,
}

/// Rebuilds the experiment's state from the trial objects it owns (owner
/// reference to `uid`): trial `<name>-<i>` is started with the assignment
/// in its [`ASSIGNMENT_ANNOTATION`] and, when [`trial_end`] says it ended,
/// finished with its [`reported_metrics`]. Objects it does not own are
/// ignored. Blocked when an owned trial does not read back (no index, no
/// assignment, outside the space) or an index is missing: its history
/// cannot be rebuilt exactly, and re-running the trial is not allowed.
/// O(children · (log children + metrics)).
pub fn rebuild(plan: ExperimentPlan, uid: &str, observed: &Observed) -> std::result::Result<Rebuilt, Blocked> {
    let prefix = format!("{}-", plan.name);
    let mut trials: BTreeMap<usize, &Value> = BTreeMap::new();
    let unreadable = |object: &Value, message: String| {
        let (_, kind, name) = child_key(object);
        Blocked { reason: TRIAL_UNREADABLE, message: format!("{kind} {name:?}: {message}"), next: Next::AwaitChange }
    };
    for object in observed.children.iter().filter(|o| owned_by(o, uid)) {
        let (_, _, name) = child_key(object);
        let Some(index) = name.strip_prefix(&prefix).and_then(|i| i.parse::<usize>().ok()) else {
            let message = format!("expected a trial name {prefix}<index>");
            return Err(unreadable(object, message));
        };
        trials.insert(index, object);
    }
    let mut state = ExperimentState::new(plan);
    let mut running = Vec::new();
    for (position, (&index, object)) in trials.iter().enumerate() {
        if index != position {
            let message = format!(
                "trial {prefix}{position} is gone (the experiment owns {} trials up to index {index}); \
                 its history cannot be rebuilt",
                trials.len()
            );
            let blocked = Blocked { reason: TRIAL_UNREADABLE, message, next: Next::AwaitChange };
            return Err(blocked);
        }
        let assignment = annotation(object, ASSIGNMENT_ANNOTATION)
            .ok_or_else(|| "not found".to_string())
            .and_then(|text| serde_json::from_str::<Vec<JournalValue>>(text).map_err(|e| e.to_string()));
        let assignment: Vec<ParamValue> = match assignment {
            Ok(values) => values.into_iter().map(ParamValue::from).collect(),
            Err(err) => {
                let message =
                    format!("metadata.annotations[{ASSIGNMENT_ANNOTATION:?}]: expected the trial's parameters: {err}");
                return Err(unreadable(object, message));
            }
        };
        if state.apply(Event::started(index, &assignment)).is_err() {
            let message = format!(
                "metadata.annotations[{ASSIGNMENT_ANNOTATION:?}]: {assignment:?} is not a point of spec.parameters"
            );
            return Err(unreadable(object, message));
        }
        let metrics = reported_metrics(object);
        match trial_end(object) {
            Some(end) => {
                // Cannot fail: the trial was started just above.
                let _ = state.apply(Event::finished(index, &end, &metrics));
            }
            None => running.push((index, metrics)),
        }
    }
    Ok(Rebuilt { state, running })
}

/// The seed of the sampler's generator: `random_state` when given, else
/// the experiment's uid hashed (FNV-1a), mixed with the number of trials
/// already observed, as the runner mixes it on resume.
pub fn seed(experiment_seed: Option<u64>, uid: &str, observed_trials: usize) -> u64 {
    let base = experiment_seed.unwrap_or_else(|| {
        uid.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    });
    base ^ (observed_trials as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The object of trial `index`: the template filled with its trial
/// parameters, named `<experiment>-<index>` in the experiment's namespace,
/// labelled [`EXPERIMENT_LABEL`] and [`TRIAL_LABEL`], its assignment in
/// [`ASSIGNMENT_ANNOTATION`], owned by the experiment (controller owner
/// reference). Fails with the template's placeholder error.
pub fn trial_object(
    plan: &ExperimentPlan,
    template: &Value,
    uid: &str,
    index: usize,
    assignment: &[ParamValue],
) -> Result<Value> {
    let name = format!("{}-{index}", plan.name);
    let values = plan.trial_parameter_values(&name, assignment);
    let mut object = fill_trial_template(template, &values)
        .map_err(|message| Error::Invalid { path: "spec.trialTemplate.trialSpec".into(), message })?;
    let recorded: Vec<JournalValue> = assignment.iter().map(|&v| v.into()).collect();
    let recorded = serde_json::to_string(&recorded)
        .map_err(|e| Error::Invalid { path: "spec.parameters".into(), message: e.to_string() })?;
    let Some(root) = object.as_object_mut() else {
        return Err(Error::Invalid {
            path: "spec.trialTemplate.trialSpec".into(),
            message: "expected a Kubernetes object".into(),
        });
    };
    let meta = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Some(meta) = meta.as_object_mut() else { return Ok(object) };
    meta.insert("name".into(), name.clone().into());
    meta.insert("namespace".into(), plan.namespace.clone().into());
    let mut insert = |field: &str, key: &str, value: String| {
        let map = meta.entry(field).or_insert_with(|| Value::Object(Map::new()));
        if !map.is_object() {
            *map = Value::Object(Map::new());
        }
        if let Some(map) = map.as_object_mut() {
            map.insert(key.into(), value.into());
        }
    };
    insert("labels", EXPERIMENT_LABEL, plan.name.clone());
    insert("labels", TRIAL_LABEL, name);
    insert("annotations", ASSIGNMENT_ANNOTATION, recorded);
    meta.insert(
        "ownerReferences".into(),
        json!([{"apiVersion": API_VERSION, "kind": KIND, "name": plan.name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true}]),
    );
    Ok(object)
}

/// Decides one reconcile of `experiment`. `now` (RFC 3339) stamps the
/// start, the end and conditions that change.
///
/// In order: an Experiment being deleted or already ended gets
/// [`Plan::idle`]; one that fails [`ExperimentPlan::from_katib`] gets a
/// `Created` `False` condition `InvalidSpec` naming the field and waits for
/// an edit (so does a `metricsFormat` regex that does not compile,
/// [`log_collector`]); one without an inline `trialSpec` (a ConfigMap template) gets
/// `Running` `False` `TrialTemplateNotFound` and a [`Next::Retry`]. Then the
/// state is [`rebuild`]t from the observed trials; running trials the median
/// rule stops are stopped (`EarlyStopped`); if the experiment has ended
/// (goal, `maxTrialCount`, `maxFailedTrialCount`, the algorithm exhausted)
/// the running ones are stopped (`Killed`); otherwise the sampler fills the
/// free slots with new trials. The status is Katib's
/// ([`ExperimentState::status`]), written when it changed.
/// O(trials · metrics + the sampler's cost).
///
/// Idempotent: when the observed trials are the ones created and stopped
/// (plus what the server adds) and the Experiment holds the returned
/// status, the next plan writes nothing.
pub fn reconcile_plan(experiment: &Experiment, observed: &Observed, now: &str) -> Plan {
    if !acts_on(experiment) || is_finished(experiment) {
        return Plan::idle();
    }
    let plan = match ExperimentPlan::from_katib(experiment) {
        Ok(plan) => plan,
        Err(err) => return invalid_plan(experiment, &err, now),
    };
    if let Err(err) = log_collector(experiment) {
        return invalid_plan(experiment, &err, now);
    }
    let uid = uid(experiment);
    if uid.is_empty() {
        let err = Error::Invalid {
            path: "metadata.uid".into(),
            message: "an Experiment read from the API server has a uid; without one its trials cannot name their owner"
                .into(),
        };
        return invalid_plan(experiment, &err, now);
    }
    let Some(template) = trial_spec(experiment) else {
        let message =
            "spec.trialTemplate: only an inline trialSpec is supported; a configMap template is not read".to_string();
        return blocked(experiment, &Blocked { reason: TEMPLATE_NOT_FOUND, message, next: Next::Retry }, now);
    };
    let Rebuilt { mut state, running } = match rebuild(plan, uid, observed) {
        Ok(rebuilt) => rebuilt,
        Err(why) => return blocked(experiment, &why, now),
    };
    let (api_version, kind) = trial_kind(experiment);
    let name_of = |state: &ExperimentState, index: usize| format!("{}-{index}", state.plan().name);
    let mut stop = Vec::new();
    let mut stop_trial = |state: &mut ExperimentState, index: usize, end: RunEnd, metrics: &MetricSeries| {
        let phase = if end == RunEnd::Killed { TrialPhase::Killed } else { TrialPhase::EarlyStopped };
        let name = name_of(state, index);
        // Cannot fail: the trial is running.
        let _ = state.apply(Event::finished(index, &end, metrics));
        stop.push(Stop { api_version: api_version.clone(), kind: kind.clone(), name, phase });
    };
    let objective = state.plan().objective_metric.clone();
    let mut still_running = Vec::new();
    for (index, metrics) in running {
        if state.should_stop(metrics.get(&objective)) {
            stop_trial(&mut state, index, RunEnd::EarlyStopped, &metrics);
        } else {
            still_running.push((index, metrics));
        }
    }
    let mut create = Vec::new();
    if state.end().is_none() {
        let slots = state.slots();
        if slots > 0 {
            let algorithm = &state.plan().algorithm;
            let mut rng = ChaCha8Rng::seed_from_u64(seed(algorithm.seed, uid, state.trials().len()));
            let mut history = state.history();
            let suggestions = match algorithm.sampler.suggest(&state.plan().space, &history, slots, &mut rng) {
                Ok(suggestions) => suggestions,
                Err(Error::Exhausted { .. }) => Vec::new(),
                Err(err) => {
                    let why = Blocked { reason: SUGGESTION_FAILED, message: err.to_string(), next: Next::AwaitChange };
                    return blocked(experiment, &why, now);
                }
            };
            let ended = suggestions.len() < slots && {
                for a in &suggestions {
                    history.push(a.clone(), TrialState::Pending);
                }
                algorithm.sampler.shortfall(&state.plan().space, &history) == Shortfall::Exhausted
            };
            for assignment in suggestions {
                let index = state.trials().len();
                let object = match trial_object(state.plan(), template, uid, index, &assignment) {
                    Ok(object) => object,
                    Err(err) => {
                        let why = Blocked { reason: TEMPLATE_NOT_FOUND, message: err.to_string(), next: Next::Retry };
                        return blocked(experiment, &why, now);
                    }
                };
                if let Some(foreign) = observed.children.iter().find(|o| {
                    let (v, k, n) = child_key(o);
                    (v, k, n) == child_key(&object) && !owned_by(o, uid)
                }) {
                    let (_, kind, name) = child_key(foreign);
                    let message =
                        format!("{kind} {name:?} exists and is not owned by this Experiment; it is left alone");
                    return blocked(experiment, &Blocked { reason: CHILD_NOT_OWNED, message, next: Next::Retry }, now);
                }
                // Cannot fail: the sampler's suggestions lie in the space.
                if state.apply(Event::started(index, &assignment)).is_ok() {
                    create.push(object);
                }
            }
            if ended {
                state.suggestions_ended();
            }
        }
    }
    if state.end().is_some() {
        for (index, metrics) in &still_running {
            stop_trial(&mut state, *index, RunEnd::Killed, metrics);
        }
    }
    let old = experiment.status.as_ref();
    let start = old.and_then(|s| s.start_time.clone()).unwrap_or_else(|| now.to_string());
    let completion =
        state.end().map(|_| old.and_then(|s| s.completion_time.clone()).unwrap_or_else(|| now.to_string()));
    let status = state.status(Some(start), completion);
    let changed = old.is_none_or(|o| managed(o) != status);
    Plan { create, stop, status: changed.then_some(status), next: Next::AwaitChange }
}

/// The fields of a status [`ExperimentState::status`] writes; the others
/// (`pendingTrialList`, `lastReconcileTime`, unknown ones) belong to no
/// decision here and do not make a difference.
fn managed(status: &ExperimentStatus) -> ExperimentStatus {
    ExperimentStatus {
        last_reconcile_time: None,
        pending_trial_list: None,
        metrics_unavailable_trial_list: None,
        trials_pending: None,
        trial_metrics_unavailable: None,
        extra: Default::default(),
        ..status.clone()
    }
}

/// The plan for an Experiment that fails validation (or does not even read
/// as one: the shell passes a stub with its metadata and status): a
/// `Created` `False` condition `InvalidSpec` whose message starts with the
/// field's path, and nothing else. Waits for an edit.
pub fn invalid_plan(experiment: &Experiment, err: &Error, now: &str) -> Plan {
    if !acts_on(experiment) || is_finished(experiment) {
        return Plan::idle();
    }
    with_condition(experiment, "Created", false, INVALID_SPEC, &err.to_string(), Next::AwaitChange, now)
}

/// The plan for an experiment that cannot go on: `Created` `True` and
/// `Running` `False` with the reason; no trial is created or stopped.
fn blocked(experiment: &Experiment, why: &Blocked, now: &str) -> Plan {
    let mut plan =
        with_condition(experiment, "Created", true, "ExperimentCreated", "Experiment is created", why.next, now);
    let mut staged = experiment.clone();
    if let Some(status) = plan.status.take() {
        staged.status = Some(status);
    }
    let running = with_condition(&staged, "Running", false, why.reason, &why.message, why.next, now);
    plan.status = running.status.or(plan.status);
    plan
}

/// The Experiment's status with one condition set: unchanged when it says
/// the same; reason and message updated (and `lastUpdateTime`) when only
/// they differ; `lastTransitionTime` too when its status flips or it is new.
fn with_condition(
    experiment: &Experiment,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    next: Next,
    now: &str,
) -> Plan {
    let old = experiment.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let mut conditions = new.conditions.take().unwrap_or_default();
    let status = if status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_.as_deref() == Some(type_)) {
        Some(c) if c.status.as_deref() == Some(status) => {
            if c.reason.as_deref() != Some(reason) || c.message.as_deref() != Some(message) {
                c.reason = Some(reason.into());
                c.message = Some(message.into());
                c.last_update_time = Some(now.into());
            }
        }
        Some(c) => {
            c.status = Some(status.into());
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_update_time = Some(now.into());
            c.last_transition_time = Some(now.into());
        }
        None => conditions.push(Condition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: Some(now.into()),
            last_transition_time: Some(now.into()),
            ..Default::default()
        }),
    }
    new.conditions = Some(conditions);
    let changed = experiment.status.is_none() || new != old;
    Plan { status: changed.then_some(new), next, ..Plan::idle() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UID: &str = "uid-1";

    fn experiment(changes: Value) -> Experiment {
        let mut doc = json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": "e", "namespace": "team-a", "uid": UID},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss", "goal": 0.1},
                "algorithm": {"algorithmName": "random"},
                "parallelTrialCount": 2, "maxTrialCount": 5, "maxFailedTrialCount": 1,
                "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}}],
                "trialTemplate": {
                    "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                    "trialSpec": {"apiVersion": "batch/v1", "kind": "Job",
                        "metadata": {"labels": {"team": "a"}},
                        "spec": {"template": {"spec": {"containers": [{"name": "t", "image": "i",
                            "args": ["--lr=${trialParameters.learningRate}"]}], "restartPolicy": "Never"}}}},
                },
            },
        });
        for (k, v) in changes.as_object().unwrap() {
            doc["spec"][k] = v.clone();
        }
        Experiment::from_value(doc).unwrap()
    }

    /// What the server returns for created trials: their fields plus its own.
    fn as_stored(object: &Value) -> Value {
        let mut object = object.clone();
        object["metadata"]["uid"] = json!(format!("uid-of-{}", child_key(&object).2));
        object["metadata"]["resourceVersion"] = json!("7");
        object["spec"]["backoffLimit"] = json!(6);
        object
    }

    fn merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            (t, p) => *t = p.clone(),
        }
    }

    /// The experiment and trials after the plan was carried out.
    fn settle(experiment: &Experiment, observed: &Observed, plan: &Plan) -> (Experiment, Observed) {
        let mut children = observed.children.clone();
        children.extend(plan.create.iter().map(as_stored));
        for stop in &plan.stop {
            let child = children.iter_mut().find(|c| child_key(c).2 == stop.name).unwrap();
            merge(child, &stop.patch());
        }
        let mut experiment = experiment.clone();
        if let Some(status) = &plan.status {
            // Through JSON, as the server stores it.
            experiment.status = Some(serde_json::from_value(serde_json::to_value(status).unwrap()).unwrap());
        }
        (experiment, Observed { children })
    }

    /// The trial `name` finishes (or reports) as the trial would.
    fn report(observed: &mut Observed, name: &str, losses: &[f64], condition: Option<&str>) {
        let child = observed.children.iter_mut().find(|c| child_key(c).2 == name).unwrap();
        child["metadata"]["annotations"][METRICS_ANNOTATION] = json!(json!({"loss": losses}).to_string());
        if let Some(type_) = condition {
            child["status"] = json!({"conditions": [{"type": type_, "status": "True", "message": "done"}]});
        }
    }

    fn condition(status: &ExperimentStatus, type_: &str) -> Option<(String, String)> {
        let c = status.conditions.iter().flatten().find(|c| c.type_.as_deref() == Some(type_))?;
        Some((c.status.clone().unwrap_or_default(), c.reason.clone().unwrap_or_default()))
    }

    #[test]
    fn the_first_plan_creates_parallel_trials_owned_labelled_and_recorded() {
        let e = experiment(json!({}));
        let plan = reconcile_plan(&e, &Observed::default(), "t0");
        assert_eq!(plan.create.len(), 2);
        assert!(plan.stop.is_empty());
        let trial = &plan.create[1];
        assert_eq!(child_key(trial), ("batch/v1", "Job", "e-1"));
        assert_eq!(trial["metadata"]["namespace"], "team-a");
        assert_eq!(trial["metadata"]["labels"], json!({"team": "a", EXPERIMENT_LABEL: "e", TRIAL_LABEL: "e-1"}));
        assert_eq!(trial["metadata"]["ownerReferences"][0]["uid"], UID);
        assert_eq!(trial["metadata"]["ownerReferences"][0]["controller"], true);
        let recorded: Vec<JournalValue> =
            serde_json::from_str(trial["metadata"]["annotations"][ASSIGNMENT_ANNOTATION].as_str().unwrap()).unwrap();
        let JournalValue::Float(lr) = recorded[0] else { panic!("{recorded:?}") };
        let arg = trial["spec"]["template"]["spec"]["containers"][0]["args"][0].as_str().unwrap();
        assert_eq!(arg, format!("--lr={lr}"));
        let status = plan.status.unwrap();
        assert_eq!((status.trials, status.trials_running), (Some(2), Some(2)));
        assert_eq!(status.start_time.as_deref(), Some("t0"));
        assert_eq!(condition(&status, "Running"), Some(("True".into(), "ExperimentRunning".into())));
        // The same observation plans the same trials: the plan is a function.
        assert_eq!(reconcile_plan(&e, &Observed::default(), "t9").create, plan.create);
    }

    #[test]
    fn a_settled_plan_writes_nothing_and_a_restart_recreates_nothing() {
        let e = experiment(json!({}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, observed) = settle(&e, &Observed::default(), &first);
        let second = reconcile_plan(&e, &observed, "t1");
        assert!(!second.writes(), "{second:?}");
        // Rebuilt history: the created assignments, in order, pending.
        let plan = ExperimentPlan::from_katib(&e).unwrap();
        let rebuilt = rebuild(plan, UID, &observed).unwrap();
        let created: Vec<&str> = first
            .create
            .iter()
            .map(|c| c["metadata"]["annotations"][ASSIGNMENT_ANNOTATION].as_str().unwrap())
            .collect();
        let history: Vec<String> = rebuilt
            .state
            .trials()
            .iter()
            .map(|t| {
                let values: Vec<JournalValue> = t.assignment.iter().map(|&v| v.into()).collect();
                serde_json::to_string(&values).unwrap()
            })
            .collect();
        assert_eq!(history, created);
        assert_eq!(rebuilt.running.len(), 2);
    }

    #[test]
    fn a_finished_trial_frees_its_slot_and_is_never_run_again() {
        let e = experiment(json!({}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, mut observed) = settle(&e, &Observed::default(), &first);
        report(&mut observed, "e-0", &[0.5, 0.4], Some("Complete"));
        let plan = reconcile_plan(&e, &observed, "t1");
        assert_eq!(plan.create.iter().map(|c| child_key(c).2).collect::<Vec<_>>(), ["e-2"]);
        let status = plan.status.clone().unwrap();
        assert_eq!((status.trials_succeeded, status.trials_running), (Some(1), Some(2)));
        let best = status.current_optimal_trial.unwrap();
        assert_eq!(best.best_trial_name.as_deref(), Some("e-0"));
        let (e, observed) = settle(&e, &observed, &plan);
        assert!(!reconcile_plan(&e, &observed, "t2").writes());
    }

    #[test]
    fn the_goal_ends_the_experiment_and_stops_the_running_trials() {
        let e = experiment(json!({}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, mut observed) = settle(&e, &Observed::default(), &first);
        report(&mut observed, "e-1", &[0.05], Some("Complete"));
        let plan = reconcile_plan(&e, &observed, "t1");
        assert!(plan.create.is_empty());
        let stop =
            Stop { api_version: "batch/v1".into(), kind: "Job".into(), name: "e-0".into(), phase: TrialPhase::Killed };
        assert_eq!(plan.stop, std::slice::from_ref(&stop));
        assert_eq!(
            stop.patch(),
            json!({"metadata": {"annotations": {STOPPED_ANNOTATION: "Killed"}}, "spec": {"suspend": true}})
        );
        let status = plan.status.clone().unwrap();
        assert_eq!(condition(&status, "Succeeded"), Some(("True".into(), "ExperimentGoalReached".into())));
        assert_eq!((status.trials_killed, status.completion_time.as_deref()), (Some(1), Some("t1")));
        let (e, observed) = settle(&e, &observed, &plan);
        assert!(is_finished(&e));
        assert_eq!(reconcile_plan(&e, &observed, "t2"), Plan::idle());
    }

    #[test]
    fn the_median_rule_stops_a_trial_that_falls_behind() {
        let e = experiment(json!({
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": "2"}]},
        }));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, mut observed) = settle(&e, &Observed::default(), &first);
        report(&mut observed, "e-0", &[0.5, 0.3, 0.2], Some("Complete"));
        report(&mut observed, "e-1", &[0.9, 0.8], None);
        let plan = reconcile_plan(&e, &observed, "t1");
        assert_eq!(
            plan.stop.iter().map(|s| (s.name.as_str(), s.phase)).collect::<Vec<_>>(),
            [("e-1", TrialPhase::EarlyStopped)]
        );
        // Both slots are free again: trials 2 and 3.
        assert_eq!(plan.create.iter().map(|c| child_key(c).2).collect::<Vec<_>>(), ["e-2", "e-3"]);
        assert_eq!(plan.status.as_ref().unwrap().early_stopped_trial_list, Some(vec!["e-1".to_string()]));
        let (e, observed) = settle(&e, &observed, &plan);
        assert!(!reconcile_plan(&e, &observed, "t2").writes());
    }

    #[test]
    fn too_many_failures_fail_the_experiment() {
        let e = experiment(json!({}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, mut observed) = settle(&e, &Observed::default(), &first);
        report(&mut observed, "e-0", &[], Some("Failed"));
        report(&mut observed, "e-1", &[], Some("Complete")); // no objective: a failure
        let plan = reconcile_plan(&e, &observed, "t1");
        assert!(plan.create.is_empty() && plan.stop.is_empty());
        let status = plan.status.unwrap();
        assert_eq!(condition(&status, "Failed"), Some(("True".into(), "ExperimentMaxFailedTrialsReached".into())));
        assert_eq!(status.failed_trial_list, Some(vec!["e-0".to_string(), "e-1".to_string()]));
    }

    #[test]
    fn an_invalid_experiment_gets_a_condition_naming_the_field_once() {
        let e = experiment(json!({"parallelTrialCount": 0}));
        let plan = reconcile_plan(&e, &Observed::default(), "t0");
        assert!(plan.create.is_empty() && plan.next == Next::AwaitChange);
        let status = plan.status.clone().unwrap();
        let created = &status.conditions.as_ref().unwrap()[0];
        assert_eq!((created.type_.as_deref(), created.status.as_deref()), (Some("Created"), Some("False")));
        assert_eq!(created.reason.as_deref(), Some(INVALID_SPEC));
        assert!(created.message.as_deref().unwrap().starts_with("spec.parallelTrialCount:"), "{created:?}");
        let (e, _) = settle(&e, &Observed::default(), &plan);
        assert!(!reconcile_plan(&e, &Observed::default(), "t1").writes());
    }

    #[test]
    fn a_config_map_template_is_a_condition_and_a_retry() {
        let mut doc = experiment(json!({})).to_value();
        let template = doc["spec"]["trialTemplate"].as_object_mut().unwrap();
        template.remove("trialSpec");
        template
            .insert("configMap".into(), json!({"configMapName": "t", "configMapNamespace": "x", "templatePath": "p"}));
        let e = Experiment::from_value(doc).unwrap();
        let plan = reconcile_plan(&e, &Observed::default(), "t0");
        assert_eq!(plan.next, Next::Retry);
        assert!(!needs_trials(&e));
        let status = plan.status.unwrap();
        assert_eq!(condition(&status, "Running"), Some(("False".into(), TEMPLATE_NOT_FOUND.into())));
    }

    #[test]
    fn foreign_objects_are_neither_history_nor_overwritten() {
        let e = experiment(json!({}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let mut foreign = as_stored(&first.create[0]);
        foreign["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": "other"}]);
        let observed = Observed { children: vec![foreign] };
        let plan = reconcile_plan(&e, &observed, "t0");
        assert!(plan.create.is_empty() && plan.stop.is_empty());
        assert_eq!(plan.next, Next::Retry);
        let status = plan.status.unwrap();
        assert_eq!(condition(&status, "Running"), Some(("False".into(), CHILD_NOT_OWNED.into())));
    }

    #[test]
    fn a_deleted_trial_blocks_instead_of_being_run_again() {
        let e = experiment(json!({}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, mut observed) = settle(&e, &Observed::default(), &first);
        observed.children.remove(0);
        let plan = reconcile_plan(&e, &observed, "t1");
        assert!(plan.create.is_empty());
        let status = plan.status.unwrap();
        assert_eq!(condition(&status, "Running"), Some(("False".into(), TRIAL_UNREADABLE.into())));
    }

    #[test]
    fn deleting_experiments_are_left_alone() {
        let mut doc = experiment(json!({})).to_value();
        doc["metadata"]["deletionTimestamp"] = json!("t");
        assert_eq!(reconcile_plan(&Experiment::from_value(doc).unwrap(), &Observed::default(), "t"), Plan::idle());
    }

    #[test]
    fn trial_ends_come_from_conditions_and_the_stop_mark() {
        assert_eq!(trial_end(&json!({})), None);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "message": "OOMKilled"}]}});
        assert_eq!(trial_end(&failed), Some(RunEnd::Failed("OOMKilled".into())));
        let done = json!({"status": {"conditions": [{"type": "Succeeded", "status": "True"}]}});
        assert_eq!(trial_end(&done), Some(RunEnd::Completed));
        let not_yet = json!({"status": {"conditions": [{"type": "Complete", "status": "False"}]}});
        assert_eq!(trial_end(&not_yet), None);
        let stopped = json!({"metadata": {"annotations": {STOPPED_ANNOTATION: "EarlyStopped"}}});
        assert_eq!(trial_end(&stopped), Some(RunEnd::EarlyStopped));
        let other = Stop {
            api_version: "kubeflow.org/v1".into(),
            kind: "PyTorchJob".into(),
            name: "e-0".into(),
            phase: TrialPhase::EarlyStopped,
        };
        assert_eq!(other.patch(), json!({"metadata": {"annotations": {STOPPED_ANNOTATION: "EarlyStopped"}}}));
    }

    fn completed(observed: &mut Observed, name: &str) {
        let child = observed.children.iter_mut().find(|c| child_key(c).2 == name).unwrap();
        child["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    }

    #[test]
    fn stdout_is_the_default_collector_and_reads_the_experiments_metrics() {
        let e = experiment(json!({"objective": {"type": "minimize", "objectiveMetricName": "loss",
            "additionalMetricNames": ["accuracy"]}}));
        let collector = log_collector(&e).unwrap().unwrap();
        assert_eq!(collector.names, ["loss", "accuracy"]);
        // No primaryContainerName: the template's first container.
        assert_eq!(collector.container.as_deref(), Some("t"));
        let series = collector.parse("epoch 1: loss=0.5 lr=0.1\nnoise\nloss = 0.25, accuracy=9e-1\n");
        assert_eq!(
            (series.get("loss"), series.get("accuracy"), series.get("lr")),
            (&[0.5, 0.25][..], &[0.9][..], &[][..])
        );
        assert_eq!(collector.pod_selector("batch/v1", "Job", "e-0"), "batch.kubernetes.io/job-name=e-0");
        assert_eq!(
            collector.pod_selector("trainer.kubeflow.org/v1alpha1", "TrainJob", "e-0"),
            "jobset.sigs.k8s.io/jobset-name=e-0"
        );
        assert_eq!(
            collector.pod_selector("kubeflow.org/v1", "PyTorchJob", "e-0"),
            "training.kubeflow.org/job-name=e-0"
        );
        assert_eq!(collector.pod_selector("example.com/v1", "Thing", "e-0"), format!("{TRIAL_LABEL}=e-0"));
    }

    #[test]
    fn custom_formats_primary_labels_and_container_come_from_the_spec() {
        let mut doc = experiment(json!({"metricsCollectorSpec": {"collector": {"kind": "StdOut"},
            "source": {"filter": {"metricsFormat": [r"(\w+):\s+([\d.]+)"]}}}}))
        .to_value();
        doc["spec"]["trialTemplate"]["primaryContainerName"] = json!("main");
        doc["spec"]["trialTemplate"]["primaryPodLabels"] = json!({"role": "master", "app": "x"});
        let collector = log_collector(&Experiment::from_value(doc).unwrap()).unwrap().unwrap();
        assert_eq!(collector.parse("loss=0.9\nloss: 0.3\n").get("loss"), [0.3]);
        assert_eq!(collector.container.as_deref(), Some("main"));
        assert_eq!(
            collector.pod_selector("batch/v1", "Job", "e-1"),
            "batch.kubernetes.io/job-name=e-1,app=x,role=master"
        );
    }

    #[test]
    fn only_stdout_reads_logs() {
        for kind in ["None", "Push", "File", "TensorFlowEvent", "PrometheusMetric"] {
            let e = experiment(json!({"metricsCollectorSpec": {"collector": {"kind": kind}}}));
            assert!(log_collector(&e).unwrap().is_none(), "{kind}");
        }
    }

    #[test]
    fn a_metrics_format_that_does_not_compile_is_a_condition_naming_it() {
        let e = experiment(json!({"metricsCollectorSpec": {"source": {"filter": {"metricsFormat": ["(unclosed"]}}}}));
        assert!(!needs_trials(&e));
        let plan = reconcile_plan(&e, &Observed::default(), "t0");
        assert!(plan.create.is_empty());
        let created = &plan.status.unwrap().conditions.unwrap()[0];
        assert_eq!(created.reason.as_deref(), Some(INVALID_SPEC));
        let message = created.message.as_deref().unwrap();
        assert!(message.starts_with("spec.metricsCollectorSpec.source.filter.metricsFormat[0]:"), "{message}");
    }

    #[test]
    fn only_completed_trials_without_a_record_await_their_log() {
        let e = experiment(json!({"parallelTrialCount": 5}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, mut observed) = settle(&e, &Observed::default(), &first);
        completed(&mut observed, "e-0"); // awaits its log
        report(&mut observed, "e-1", &[0.5], Some("Complete")); // reported itself
        report(&mut observed, "e-2", &[], Some("Failed")); // its objective is never used
        let stopped = observed.children.iter_mut().find(|c| child_key(c).2 == "e-3").unwrap();
        merge_patch(stopped, &json!({"metadata": {"annotations": {STOPPED_ANNOTATION: "Killed"}}}));
        // e-4 runs.
        let awaiting: Vec<&str> = awaiting_log(&e, &observed).iter().map(|o| child_key(o).2).collect();
        assert_eq!(awaiting, ["e-0"]);
        // Recorded, it awaits nothing: the log is read once.
        let annotation = metrics_annotation(&log_collector(&e).unwrap().unwrap().parse("loss=0.05\n"));
        let trial = observed.children.iter_mut().find(|c| child_key(c).2 == "e-0").unwrap();
        merge_patch(trial, &metrics_patch(&annotation));
        assert!(awaiting_log(&e, &observed).is_empty());
        // And the sampler is told: its objective reached the goal.
        let plan = reconcile_plan(&e, &observed, "t1");
        let status = plan.status.unwrap();
        assert_eq!(condition(&status, "Succeeded"), Some(("True".into(), "ExperimentGoalReached".into())));
        assert_eq!(status.current_optimal_trial.unwrap().best_trial_name.as_deref(), Some("e-0"));
    }

    #[test]
    fn a_log_without_the_objective_fails_the_trial() {
        let e = experiment(json!({}));
        let first = reconcile_plan(&e, &Observed::default(), "t0");
        let (e, mut observed) = settle(&e, &Observed::default(), &first);
        completed(&mut observed, "e-0");
        let annotation = metrics_annotation(&log_collector(&e).unwrap().unwrap().parse("training done\nacc=0.9\n"));
        assert_eq!(annotation, "{}");
        let trial = observed.children.iter_mut().find(|c| child_key(c).2 == "e-0").unwrap();
        merge_patch(trial, &metrics_patch(&annotation));
        let status = reconcile_plan(&e, &observed, "t1").status.unwrap();
        assert_eq!(status.failed_trial_list, Some(vec!["e-0".to_string()]));
    }

    fn pod(name: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"phase": phase}})).unwrap()
    }

    #[test]
    fn the_primary_pod_is_the_first_that_succeeded() {
        assert_eq!(primary_pod(&[]), None);
        let retried = [pod("e-0-zzzzz", "Succeeded"), pod("e-0-aaaaa", "Failed")];
        assert_eq!(primary_pod(&retried), Some("e-0-zzzzz"));
        let ranks = [pod("e-0-node-0-1-b", "Succeeded"), pod("e-0-node-0-0-a", "Succeeded")];
        assert_eq!(primary_pod(&ranks), Some("e-0-node-0-0-a"));
        assert_eq!(primary_pod(&[pod("b", "Running"), pod("a", "Failed")]), Some("a"));
    }

    #[test]
    fn a_long_series_is_summarised_into_the_values_katib_reports() {
        let mut small = MetricSeries::default();
        small.push("loss", 0.5);
        assert_eq!(metrics_annotation(&small), r#"{"loss":[0.5]}"#);
        let mut long = MetricSeries::default();
        for step in 0..20_000 {
            long.push("loss", 1.0 / f64::from(step + 2));
            long.push("accuracy", f64::from(step % 97) / 100.0);
        }
        long.push("loss", 0.25);
        let annotation = metrics_annotation(&long);
        assert!(annotation.len() <= METRICS_ANNOTATION_BUDGET, "{}", annotation.len());
        let read = reported_metrics(&json!({"metadata": {"annotations": {METRICS_ANNOTATION: annotation}}}));
        for name in ["loss", "accuracy"] {
            for strategy in
                [crate::metrics::Strategy::Min, crate::metrics::Strategy::Max, crate::metrics::Strategy::Latest]
            {
                assert_eq!(read.value(name, strategy), long.value(name, strategy), "{name} {strategy:?}");
            }
        }
    }

    #[test]
    fn merge_patches_merge_replace_and_remove() {
        let mut object = json!({"metadata": {"name": "a", "annotations": {"x": "1", "y": "2"}}, "spec": 3});
        merge_patch(&mut object, &json!({"metadata": {"annotations": {"x": null, "z": "3"}}, "spec": {"a": 1}}));
        assert_eq!(object, json!({"metadata": {"name": "a", "annotations": {"y": "2", "z": "3"}}, "spec": {"a": 1}}));
    }

    proptest! {
        /// Whatever the trials report and in whatever order they end, a
        /// settled plan leaves nothing to write, a restart (a plan from the
        /// observed trials alone) never creates a trial that exists, and the
        /// rebuilt history holds exactly the created trials.
        #[test]
        fn plans_are_idempotent_and_restarts_never_rerun(
            parallel in 1i64..4,
            max in 1i64..8,
            steps in prop::collection::vec((0usize..8, 0.0f64..1.0, 0u8..4), 1..12),
        ) {
            let e = experiment(json!({"parallelTrialCount": parallel, "maxTrialCount": max, "maxFailedTrialCount": 3,
                "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                    {"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": "2"}]}}));
            let mut e = e;
            let mut observed = Observed::default();
            let mut created: Vec<Value> = Vec::new();
            for (i, (pick, loss, how)) in steps.into_iter().enumerate() {
                let now = format!("t{i}");
                let plan = reconcile_plan(&e, &observed, &now);
                for c in &plan.create {
                    prop_assert!(created.iter().all(|k| child_key(k).2 != child_key(c).2), "re-created {:?}", child_key(c));
                }
                created.extend(plan.create.iter().cloned());
                let settled = settle(&e, &observed, &plan);
                e = settled.0;
                observed = settled.1;
                let again = reconcile_plan(&e, &observed, &now);
                prop_assert!(!again.writes(), "{:?}", again);
                // A trial reports or ends.
                let running: Vec<String> = observed.children.iter()
                    .filter(|c| trial_end(c).is_none()).map(|c| child_key(c).2.to_string()).collect();
                if let Some(name) = running.get(pick % running.len().max(1)) {
                    let condition = match how { 0 => Some("Complete"), 1 => Some("Failed"), _ => None };
                    report(&mut observed, name, &[loss + 0.2, loss + 0.1], condition);
                }
            }
            if is_finished(&e) {
                return Ok(());
            }
            let plan = ExperimentPlan::from_katib(&e).unwrap();
            let rebuilt = rebuild(plan, UID, &observed).unwrap();
            // The rebuilt history is the created trials, in order, with their
            // recorded assignments.
            prop_assert_eq!(rebuilt.state.trials().len(), created.len());
            for (record, object) in rebuilt.state.trials().iter().zip(&created) {
                let values: Vec<JournalValue> = record.assignment.iter().map(|&v| v.into()).collect();
                let recorded = object["metadata"]["annotations"][ASSIGNMENT_ANNOTATION].as_str().unwrap();
                prop_assert_eq!(serde_json::to_string(&values).unwrap(), recorded);
                prop_assert_eq!(record.name.as_str(), child_key(object).2);
            }
            prop_assert!(created.len() <= max as usize);
        }
    }
}
