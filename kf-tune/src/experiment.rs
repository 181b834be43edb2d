//! An experiment's plan and state, as plain data: what to run next, what a
//! finished trial means, when the experiment ends, and its status in Katib's
//! own shape.
//!
//! [`Plan::from_katib`] reads a Katib `Experiment` (objective, goal, metric
//! strategies, `parallelTrialCount` (default 3), `maxTrialCount`,
//! `maxFailedTrialCount`, algorithm, early stopping, trial parameters).
//! [`ExperimentState`] is the state machine a runner drives: it is changed
//! only by [`Event`]s ([`Event::Started`], [`Event::Finished`]), so the same
//! events replayed from a journal rebuild the same state — that is how a
//! killed experiment resumes without re-running a finished trial. A trial that
//! had started but not finished when the runner died is started again with
//! the same name and parameters.
//!
//! This module does no IO and keeps no clock: the runner supplies timestamps.
//! Running trials and collecting their metrics live in [`crate::runner`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::algorithm::Algorithm;
use crate::early_stopping::MedianStop;
use crate::katib::{
    Condition, Experiment, ExperimentStatus, Metric, Observation, OptimalTrial, ParameterAssignment, Scalar,
};
use crate::metrics::{MetricSeries, Strategy};
use crate::sampler::{Direction, History, Suggestion, TrialState};
use crate::space::{Assignment, ParamValue, SearchSpace};
use crate::{Error, Result};

/// Katib's default `parallelTrialCount`.
pub const DEFAULT_PARALLEL_TRIALS: usize = 3;

/// Where a trial parameter's value comes from (Katib `trialParameters[].reference`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A search-space parameter, by index.
    Parameter(usize),
    /// Trial metadata: `${trialSpec.Name}`, `${trialSpec.Namespace}`, `${trialSpec.Kind}`, `${trialSpec.APIVersion}`.
    Metadata(String),
}

/// Everything the runner needs from a Katib Experiment.
#[derive(Debug)]
pub struct Plan {
    /// `metadata.name`; trials are named `<name>-<index>`.
    pub name: String,
    /// `metadata.namespace`, or `default`.
    pub namespace: String,
    /// The search space (`spec.parameters`).
    pub space: SearchSpace,
    /// `objective.type`.
    pub direction: Direction,
    /// `objective.objectiveMetricName`.
    pub objective_metric: String,
    /// `objective.additionalMetricNames`.
    pub additional_metrics: Vec<String>,
    /// `objective.goal`: reaching it ends the experiment.
    pub goal: Option<f64>,
    /// Strategy per metric: given, or Katib's defaults (objective: min when
    /// minimising, max when maximising; others: latest).
    pub strategies: BTreeMap<String, Strategy>,
    /// `parallelTrialCount` (default 3).
    pub parallel: usize,
    /// `maxTrialCount`; without it the experiment runs until the goal or the end of the algorithm.
    pub max_trials: Option<usize>,
    /// `maxFailedTrialCount`: more failed trials than this fail the experiment.
    pub max_failed: Option<usize>,
    /// The algorithm (`spec.algorithm`).
    pub algorithm: Algorithm,
    /// `spec.earlyStopping` (only `medianstop`).
    pub early_stopping: Option<MedianStop>,
    /// `trialTemplate.trialParameters`: (name, reference).
    pub trial_parameters: Vec<(String, Reference)>,
}

impl Plan {
    /// Reads and checks a Katib Experiment; errors name the field.
    pub fn from_katib(experiment: &Experiment) -> Result<Self> {
        experiment.validate()?;
        let invalid = |path: &str, message: String| Error::Invalid { path: path.into(), message };
        let spec = experiment.spec.as_ref().ok_or_else(|| invalid("spec", "an Experiment needs a spec".into()))?;
        let meta = experiment.metadata.as_ref();
        let name = meta.and_then(|m| m.name.clone()).unwrap_or_else(|| "experiment".into());
        let namespace = meta.and_then(|m| m.namespace.clone()).unwrap_or_else(|| "default".into());
        let space = experiment.search_space()?;
        let objective = spec.objective.as_ref().ok_or_else(|| invalid("spec.objective", "missing".into()))?;
        let direction = match objective.type_.as_deref() {
            Some("maximize") => Direction::Maximize,
            _ => Direction::Minimize,
        };
        let objective_metric = objective.objective_metric_name.clone().unwrap_or_default();
        let additional_metrics = objective.additional_metric_names.clone().unwrap_or_default();
        let goal = objective.goal.as_ref().and_then(serde_json::Number::as_f64);
        let mut strategies = BTreeMap::new();
        strategies.insert(
            objective_metric.clone(),
            if direction == Direction::Minimize { Strategy::Min } else { Strategy::Max },
        );
        for m in &additional_metrics {
            strategies.insert(m.clone(), Strategy::Latest);
        }
        for (i, s) in objective.metric_strategies.iter().flatten().enumerate() {
            let at = format!("spec.objective.metricStrategies[{i}].value");
            let value = s.value.as_deref().unwrap_or_default();
            let strategy = Strategy::parse(value)
                .ok_or_else(|| invalid(&at, format!("expected min, max or latest, found {value:?}")))?;
            strategies.insert(s.name.clone().unwrap_or_default(), strategy);
        }
        let count = |field: &str, v: Option<i64>| -> Result<Option<usize>> {
            v.map(|v| {
                usize::try_from(v).map_err(|_| invalid(&format!("spec.{field}"), format!("expected ≥ 0, found {v}")))
            })
            .transpose()
        };
        let parallel =
            count("parallelTrialCount", spec.parallel_trial_count)?.unwrap_or(DEFAULT_PARALLEL_TRIALS).max(1);
        let max_trials = count("maxTrialCount", spec.max_trial_count)?;
        let max_failed = count("maxFailedTrialCount", spec.max_failed_trial_count)?;
        let algorithm = Algorithm::from_katib(&spec.algorithm.clone().unwrap_or_default())?;
        let early_stopping = spec.early_stopping.as_ref().map(MedianStop::from_katib).transpose()?;
        let mut trial_parameters = Vec::new();
        let template = spec.trial_template.as_ref();
        for (i, p) in template.and_then(|t| t.trial_parameters.as_ref()).into_iter().flatten().enumerate() {
            let at = format!("spec.trialTemplate.trialParameters[{i}].reference");
            let reference = p.reference.as_deref().unwrap_or_default();
            let r = if let Some(meta) = reference.strip_prefix("${trialSpec.").and_then(|r| r.strip_suffix('}')) {
                if !matches!(meta, "Name" | "Namespace" | "Kind" | "APIVersion") {
                    return Err(invalid(
                        &at,
                        format!("expected trialSpec.Name, Namespace, Kind or APIVersion, found {reference:?}"),
                    ));
                }
                Reference::Metadata(meta.to_owned())
            } else {
                Reference::Parameter(
                    space
                        .index_of(reference)
                        .ok_or_else(|| invalid(&at, format!("no parameter is called {reference:?}")))?,
                )
            };
            trial_parameters.push((p.name.clone().unwrap_or_default(), r));
        }
        Ok(Plan {
            name,
            namespace,
            space,
            direction,
            objective_metric,
            additional_metrics,
            goal,
            strategies,
            parallel,
            max_trials,
            max_failed,
            algorithm,
            early_stopping,
            trial_parameters,
        })
    }

    /// The metric names a trial is asked to report: the objective, then the additional ones.
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.objective_metric.as_str()).chain(self.additional_metrics.iter().map(String::as_str))
    }

    /// The value of every trial parameter for trial `name` with `assignment`,
    /// as text to substitute for `${trialParameters.<name>}`.
    pub fn trial_parameter_values(&self, name: &str, assignment: &[ParamValue]) -> BTreeMap<String, String> {
        self.trial_parameters
            .iter()
            .map(|(key, r)| {
                let value = match r {
                    Reference::Parameter(i) => match (self.space.params().get(*i), assignment.get(*i)) {
                        (Some(p), Some(v)) => p.format(v),
                        _ => String::new(),
                    },
                    Reference::Metadata(m) => match m.as_str() {
                        "Name" => name.to_owned(),
                        "Namespace" => self.namespace.clone(),
                        "Kind" => "Trial".into(),
                        _ => crate::katib::API_VERSION.into(),
                    },
                };
                (key.clone(), value)
            })
            .collect()
    }
}

/// Replaces every `${trialParameters.<name>}` in `text` with its value, as
/// Katib fills a trial template; an unknown name or an unterminated
/// placeholder is an error naming it. O(length of `text`).
///
/// ```
/// use std::collections::BTreeMap;
/// let values = BTreeMap::from([("lr".to_string(), "0.1".to_string())]);
/// assert_eq!(kf_tune::experiment::substitute("--lr=${trialParameters.lr}", &values)?, "--lr=0.1");
/// assert!(kf_tune::experiment::substitute("${trialParameters.x}", &values).unwrap_err().contains("\"x\""));
/// # Ok::<(), String>(())
/// ```
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> std::result::Result<String, String> {
    const OPEN: &str = "${trialParameters.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated placeholder in {text:?}"));
        };
        let name = &after[..end];
        let value = values
            .get(name)
            .ok_or_else(|| format!("{text:?} names trial parameter {name:?}, which the template does not declare"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A whole `trialTemplate.trialSpec` with [`substitute`] applied to every
/// string in it (keys are left alone): the object a trial runs as.
/// O(size of `spec`).
///
/// ```
/// use std::collections::BTreeMap;
/// let values = BTreeMap::from([("lr".to_string(), "0.1".to_string())]);
/// let spec = serde_json::json!({"spec": {"args": ["--lr=${trialParameters.lr}"], "replicas": 2}});
/// let filled = kf_tune::experiment::fill_trial_template(&spec, &values)?;
/// assert_eq!(filled, serde_json::json!({"spec": {"args": ["--lr=0.1"], "replicas": 2}}));
/// # Ok::<(), String>(())
/// ```
pub fn fill_trial_template(spec: &Value, values: &BTreeMap<String, String>) -> std::result::Result<Value, String> {
    Ok(match spec {
        Value::String(s) => Value::String(substitute(s, values)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| fill_trial_template(v, values)).collect::<std::result::Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill_trial_template(v, values)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Where a trial stands (Katib's trial conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrialPhase {
    /// Started, not finished.
    Running,
    /// Finished with a finite objective value.
    Succeeded,
    /// Crashed, or reported no usable objective value.
    Failed,
    /// Stopped by the early-stopping rule; its metrics count.
    EarlyStopped,
    /// Stopped because the experiment ended.
    Killed,
}

/// How a trial's run ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The trial ran to its end successfully.
    Completed,
    /// The early-stopping rule stopped it.
    EarlyStopped,
    /// The experiment ended while it ran.
    Killed,
    /// It failed; the message says how (exit status, last lines of output).
    Failed(String),
}

/// One trial of the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// `<experiment>-<index>`.
    pub name: String,
    /// The parameters it runs with.
    pub assignment: Assignment,
    /// Where it stands.
    pub phase: TrialPhase,
    /// Everything it reported.
    pub metrics: MetricSeries,
    /// The objective metric reduced by its strategy, when finite.
    pub objective: Option<f64>,
    /// Why it failed, if it did.
    pub message: Option<String>,
    /// The index of the trial whose checkpoint it starts from (PBT, Hyperband promotions).
    pub parent: Option<usize>,
}

/// A change to the experiment state; the journal stores these, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// Trial `index` started with `assignment`.
    Started {
        /// The trial's index (= its position in the experiment).
        index: usize,
        /// Its parameters, each `{"float": x}`, `{"int": n}` or `{"category": i}`.
        assignment: Vec<JournalValue>,
        /// The earlier trial whose checkpoint it starts from, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<usize>,
    },
    /// Trial `index` finished.
    Finished {
        /// The trial's index.
        index: usize,
        /// `Completed`, `EarlyStopped`, `Killed` or `Failed`.
        end: String,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// What it reported, metric name → values in order.
        metrics: Value,
    },
}

/// A parameter value as the journal writes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JournalValue {
    /// A double or discrete value.
    Float(f64),
    /// An int value.
    Int(i64),
    /// A categorical choice's index.
    Category(usize),
}

impl From<ParamValue> for JournalValue {
    fn from(v: ParamValue) -> Self {
        match v {
            ParamValue::Float(x) => JournalValue::Float(x),
            ParamValue::Int(i) => JournalValue::Int(i),
            ParamValue::Category(c) => JournalValue::Category(c),
        }
    }
}

impl From<JournalValue> for ParamValue {
    fn from(v: JournalValue) -> Self {
        match v {
            JournalValue::Float(x) => ParamValue::Float(x),
            JournalValue::Int(i) => ParamValue::Int(i),
            JournalValue::Category(c) => ParamValue::Category(c),
        }
    }
}

impl Event {
    /// The event recording that trial `index` started with `assignment`.
    pub fn started(index: usize, assignment: &[ParamValue]) -> Self {
        Self::started_from(index, assignment, None)
    }

    /// The event recording that trial `index` started with `assignment`
    /// from the checkpoint of trial `parent` (see [`crate::Suggestion::parent`]).
    pub fn started_from(index: usize, assignment: &[ParamValue], parent: Option<usize>) -> Self {
        Event::Started { index, assignment: assignment.iter().map(|&v| v.into()).collect(), parent }
    }

    /// The event recording that trial `index` ended with `end` after reporting `metrics`.
    pub fn finished(index: usize, end: &RunEnd, metrics: &MetricSeries) -> Self {
        let (end, message) = match end {
            RunEnd::Completed => ("Completed", None),
            RunEnd::EarlyStopped => ("EarlyStopped", None),
            RunEnd::Killed => ("Killed", None),
            RunEnd::Failed(m) => ("Failed", Some(m.clone())),
        };
        Event::Finished { index, end: end.into(), message, metrics: metrics.to_json() }
    }
}

/// Why the experiment ended (Katib's condition reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The objective reached `goal`.
    GoalReached,
    /// `maxTrialCount` trials have finished.
    MaxTrialsReached,
    /// More than `maxFailedTrialCount` trials failed.
    MaxFailedTrialsReached,
    /// The algorithm has nothing left to suggest (grid).
    SuggestionEndReached,
}

impl EndReason {
    /// Katib's reason and message, and whether the experiment succeeded.
    pub fn katib(self) -> (&'static str, &'static str, bool) {
        match self {
            EndReason::GoalReached => {
                ("ExperimentGoalReached", "Experiment has succeeded because Objective goal has reached", true)
            }
            EndReason::MaxTrialsReached => {
                ("ExperimentMaxTrialsReached", "Experiment has succeeded because max trial count has reached", true)
            }
            EndReason::MaxFailedTrialsReached => (
                "ExperimentMaxFailedTrialsReached",
                "Experiment has failed because max failed count has reached",
                false,
            ),
            EndReason::SuggestionEndReached => (
                "ExperimentSuggestionEndReached",
                "Experiment has succeeded because suggestion service has reached the end",
                true,
            ),
        }
    }
}

/// The experiment's trials and whether it has ended; changed only by [`Event`]s.
///
/// ```
/// use kf_tune::experiment::{Event, ExperimentState, Plan, RunEnd};
/// use kf_tune::metrics::MetricSeries;
/// use kf_tune::space::ParamValue;
///
/// let doc = serde_json::json!({
///     "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "demo"},
///     "spec": {
///         "objective": {"type": "minimize", "objectiveMetricName": "loss", "goal": 0.1},
///         "algorithm": {"algorithmName": "random"}, "maxTrialCount": 5,
///         "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
///         "trialTemplate": {"trialParameters": [{"name": "x", "reference": "x"}],
///             "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"command": ["echo", "${trialParameters.x}"]}}},
///     },
/// });
/// let plan = Plan::from_katib(&kf_tune::Experiment::from_value(doc)?)?;
/// let mut state = ExperimentState::new(plan);
/// assert_eq!(state.slots(), 3); // parallelTrialCount defaults to 3
/// state.apply(Event::started(0, &[ParamValue::Float(0.3)]))?;
/// let mut metrics = MetricSeries::default();
/// metrics.push("loss", 0.05);
/// state.apply(Event::finished(0, &RunEnd::Completed, &metrics))?;
/// assert_eq!(state.end(), Some(kf_tune::experiment::EndReason::GoalReached));
/// let status = state.status(None, None);
/// assert_eq!(status.current_optimal_trial.unwrap().best_trial_name.as_deref(), Some("demo-0"));
/// # Ok::<(), kf_tune::Error>(())
/// ```
#[derive(Debug)]
pub struct ExperimentState {
    plan: Plan,
    trials: Vec<TrialRecord>,
    suggestions_ended: bool,
}

impl ExperimentState {
    /// A state with no trials.
    pub fn new(plan: Plan) -> Self {
        ExperimentState { plan, trials: Vec::new(), suggestions_ended: false }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Every trial, by index.
    pub fn trials(&self) -> &[TrialRecord] {
        &self.trials
    }

    /// Applies one event. Errors on events that do not fit the state (a
    /// corrupt journal): an index out of order, a finish of a trial that is not running.
    pub fn apply(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Started { index, assignment, parent } => {
                let assignment: Assignment = assignment.into_iter().map(ParamValue::from).collect();
                if let Some(p) = parent.filter(|&p| p >= index) {
                    return Err(Error::Invalid {
                        path: format!("journal: trial {index}"),
                        message: format!("expected a parent among trials 0..{index}, found trial {p}"),
                    });
                }
                if index != self.trials.len() || !self.plan.space.contains(&assignment) {
                    return Err(Error::Invalid {
                        path: format!("journal: trial {index}"),
                        message: format!(
                            "expected trial {} to start with parameters inside the space, found trial {index} with {assignment:?}",
                            self.trials.len()
                        ),
                    });
                }
                self.trials.push(TrialRecord {
                    name: format!("{}-{index}", self.plan.name),
                    assignment,
                    phase: TrialPhase::Running,
                    metrics: MetricSeries::default(),
                    objective: None,
                    message: None,
                    parent,
                });
            }
            Event::Finished { index, end, message, metrics } => {
                let Some(trial) = self.trials.get_mut(index).filter(|t| t.phase == TrialPhase::Running) else {
                    return Err(Error::Invalid {
                        path: format!("journal: trial {index}"),
                        message: "expected a running trial to finish, found none".into(),
                    });
                };
                trial.metrics = MetricSeries::from_json(&metrics);
                let strategy =
                    self.plan.strategies.get(&self.plan.objective_metric).copied().unwrap_or(Strategy::Latest);
                let objective = trial.metrics.value(&self.plan.objective_metric, strategy);
                let finite = objective.filter(|v| v.is_finite());
                trial.phase = match end.as_str() {
                    "Completed" | "EarlyStopped" if finite.is_none() => {
                        trial.message = Some(match objective {
                            None => format!("the trial reported no value for metric {:?}", self.plan.objective_metric),
                            Some(v) => format!("metric {:?} was {v}, not a finite number", self.plan.objective_metric),
                        });
                        TrialPhase::Failed
                    }
                    "Completed" => TrialPhase::Succeeded,
                    "EarlyStopped" => TrialPhase::EarlyStopped,
                    "Killed" => TrialPhase::Killed,
                    _ => {
                        trial.message = message.or_else(|| Some("the trial failed".into()));
                        TrialPhase::Failed
                    }
                };
                trial.objective =
                    if matches!(trial.phase, TrialPhase::Succeeded | TrialPhase::EarlyStopped) { finite } else { None };
            }
        }
        Ok(())
    }

    /// Records that the algorithm has nothing left to suggest.
    pub fn suggestions_ended(&mut self) {
        self.suggestions_ended = true;
    }

    /// What the sampler sees: finished trials with their objective (failed
    /// and killed trials as failures), running ones as pending. O(trials).
    pub fn history(&self) -> History {
        let mut history = History::new(self.plan.direction);
        for t in &self.trials {
            let state = match (t.phase, t.objective) {
                (TrialPhase::Running, _) => TrialState::Pending,
                (_, Some(v)) => TrialState::Completed(v),
                _ => TrialState::Failed,
            };
            let suggestion = Suggestion { assignment: t.assignment.clone(), budget: None, parent: t.parent };
            history.push_suggestion(suggestion, state);
        }
        history
    }

    /// Trials that have started and not finished.
    pub fn running(&self) -> impl Iterator<Item = (usize, &TrialRecord)> {
        self.trials.iter().enumerate().filter(|(_, t)| t.phase == TrialPhase::Running)
    }

    fn count(&self, phase: TrialPhase) -> usize {
        self.trials.iter().filter(|t| t.phase == phase).count()
    }

    /// The best finished trial (ties: the earliest).
    pub fn best(&self) -> Option<(usize, &TrialRecord)> {
        let mut best: Option<(usize, &TrialRecord, f64)> = None;
        for (i, t) in self.trials.iter().enumerate() {
            if let Some(v) = t.objective {
                let loss = self.plan.direction.loss(v);
                if best.is_none_or(|(_, _, b)| loss < b) {
                    best = Some((i, t, loss));
                }
            }
        }
        best.map(|(i, t, _)| (i, t))
    }

    /// Why the experiment has ended, or `None` while it goes on. Failure
    /// first, then the goal, then the trial budget, then the algorithm's end
    /// (once no trial is running).
    pub fn end(&self) -> Option<EndReason> {
        let failed = self.count(TrialPhase::Failed);
        if self.plan.max_failed.is_some_and(|max| failed > max) {
            return Some(EndReason::MaxFailedTrialsReached);
        }
        if let (Some(goal), Some((_, best))) = (self.plan.goal, self.best()) {
            let v = best.objective.unwrap_or(f64::NAN);
            let reached = match self.plan.direction {
                Direction::Minimize => v <= goal,
                Direction::Maximize => v >= goal,
            };
            if reached {
                return Some(EndReason::GoalReached);
            }
        }
        let finished = self.trials.len() - self.count(TrialPhase::Running);
        if self.plan.max_trials.is_some_and(|max| finished >= max) {
            return Some(EndReason::MaxTrialsReached);
        }
        if self.suggestions_ended && self.count(TrialPhase::Running) == 0 {
            return Some(EndReason::SuggestionEndReached);
        }
        None
    }

    /// How many new trials may start now: free parallel slots, capped by what
    /// is left of `maxTrialCount`; 0 once the experiment has ended or the
    /// algorithm has nothing left.
    pub fn slots(&self) -> usize {
        if self.end().is_some() || self.suggestions_ended {
            return 0;
        }
        let running = self.count(TrialPhase::Running);
        let free = self.plan.parallel.saturating_sub(running);
        match self.plan.max_trials {
            Some(max) => free.min(max.saturating_sub(self.trials.len())),
            None => free,
        }
    }

    /// Whether the early-stopping rule stops a running trial that has
    /// reported `values` of the objective so far. O(T·S) over finished trials.
    pub fn should_stop(&self, values: &[f64]) -> bool {
        let Some(rule) = self.plan.early_stopping else { return false };
        let completed: Vec<&[f64]> = self
            .trials
            .iter()
            .filter(|t| t.phase == TrialPhase::Succeeded)
            .map(|t| t.metrics.get(&self.plan.objective_metric))
            .collect();
        rule.should_stop(self.plan.direction, values, &completed)
    }

    /// The experiment's status in Katib's shape: counts, trial lists,
    /// `currentOptimalTrial` and conditions. Times are RFC 3339 strings the
    /// caller supplies. O(trials · metrics).
    pub fn status(&self, start_time: Option<String>, completion_time: Option<String>) -> ExperimentStatus {
        let names = |phase: TrialPhase| -> Option<Vec<String>> {
            let v: Vec<String> = self.trials.iter().filter(|t| t.phase == phase).map(|t| t.name.clone()).collect();
            (!v.is_empty()).then_some(v)
        };
        let count = |phase| Some(self.count(phase) as i64);
        let current_optimal_trial = Some(match self.best() {
            Some((_, best)) => OptimalTrial {
                best_trial_name: Some(best.name.clone()),
                parameter_assignments: Some(
                    self.plan
                        .space
                        .format(&best.assignment)
                        .into_iter()
                        .map(|(name, value)| ParameterAssignment {
                            name: Some(name),
                            value: Some(Scalar::String(value)),
                            ..Default::default()
                        })
                        .collect(),
                ),
                observation: Some(Observation { metrics: Some(self.metrics_of(best)), ..Default::default() }),
                ..Default::default()
            },
            None => OptimalTrial::default(),
        });
        let condition = |type_: &str, status: &str, reason: &str, message: &str| Condition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: completion_time.clone().or_else(|| start_time.clone()),
            last_transition_time: completion_time.clone().or_else(|| start_time.clone()),
            ..Default::default()
        };
        let mut conditions = vec![condition("Created", "True", "ExperimentCreated", "Experiment is created")];
        match self.end() {
            None => conditions.push(condition("Running", "True", "ExperimentRunning", "Experiment is running")),
            Some(reason) => {
                let (reason, message, succeeded) = reason.katib();
                conditions.push(condition("Running", "False", reason, message));
                conditions.push(condition(if succeeded { "Succeeded" } else { "Failed" }, "True", reason, message));
            }
        }
        ExperimentStatus {
            start_time,
            completion_time,
            conditions: Some(conditions),
            current_optimal_trial,
            running_trial_list: names(TrialPhase::Running),
            failed_trial_list: names(TrialPhase::Failed),
            succeeded_trial_list: names(TrialPhase::Succeeded),
            killed_trial_list: names(TrialPhase::Killed),
            early_stopped_trial_list: names(TrialPhase::EarlyStopped),
            trials: Some(self.trials.len() as i64),
            trials_succeeded: count(TrialPhase::Succeeded),
            trials_failed: count(TrialPhase::Failed),
            trials_killed: count(TrialPhase::Killed),
            trials_running: count(TrialPhase::Running),
            trials_early_stopped: count(TrialPhase::EarlyStopped),
            ..Default::default()
        }
    }

    /// Katib's `observation.metrics` of a trial: every metric the experiment
    /// names, with min, max and latest (Katib writes "unavailable" when there is none).
    pub fn metrics_of(&self, trial: &TrialRecord) -> Vec<Metric> {
        self.plan
            .metric_names()
            .map(|name| {
                let text = |s: Strategy| {
                    Scalar::String(trial.metrics.value(name, s).map_or_else(|| "unavailable".into(), |v| v.to_string()))
                };
                Metric {
                    name: Some(name.to_owned()),
                    min: Some(text(Strategy::Min)),
                    max: Some(text(Strategy::Max)),
                    latest: Some(text(Strategy::Latest)),
                    ..Default::default()
                }
            })
            .collect()
    }
}

/// The container named `primary` (or the first) in the first `containers` list found in `spec`.
#[cfg(any(feature = "runner", feature = "controller"))]
pub(crate) fn find_container<'a>(spec: &'a Value, primary: Option<&str>) -> Option<&'a Value> {
    match spec {
        Value::Object(map) => {
            if let Some(Value::Array(containers)) = map.get("containers") {
                let found = match primary {
                    Some(name) => containers.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(name)),
                    None => containers.first(),
                };
                if found.is_some() {
                    return found;
                }
            }
            map.values().find_map(|v| find_container(v, primary))
        }
        Value::Array(items) => items.iter().find_map(|v| find_container(v, primary)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(spec_changes: Value) -> Plan {
        let mut doc = json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "e"},
            "spec": {
                "objective": {"type": "maximize", "objectiveMetricName": "acc", "additionalMetricNames": ["loss"]},
                "algorithm": {"algorithmName": "random"},
                "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "9"}}],
                "trialTemplate": {"trialParameters": [{"name": "x", "reference": "x"}, {"name": "me", "reference": "${trialSpec.Name}"}],
                    "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"command": ["echo", "${trialParameters.x}", "${trialParameters.me}"]}}},
            },
        });
        for (k, v) in spec_changes.as_object().unwrap() {
            doc["spec"][k] = v.clone();
        }
        Plan::from_katib(&Experiment::from_value(doc).unwrap()).unwrap()
    }

    #[test]
    fn a_trials_parent_is_journaled_read_back_and_given_to_the_sampler() {
        let event = Event::started_from(1, &[ParamValue::Int(3)], Some(0));
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(line, r#"{"event":"started","index":1,"assignment":[{"int":3}],"parent":0}"#);
        // Journals written before parents were recorded read as trials without one.
        let old: Event = serde_json::from_str(r#"{"event":"started","index":0,"assignment":[{"int":3}]}"#).unwrap();
        assert_eq!(old, Event::started(0, &[ParamValue::Int(3)]));
        assert!(!serde_json::to_string(&old).unwrap().contains("parent"));

        let mut state = ExperimentState::new(plan(json!({})));
        state.apply(old).unwrap();
        state.apply(serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!(state.trials()[1].parent, Some(0));
        assert_eq!(state.history().trials.iter().map(|t| t.parent).collect::<Vec<_>>(), [None, Some(0)]);
        let err = state.apply(Event::started_from(2, &[ParamValue::Int(1)], Some(2))).unwrap_err();
        assert!(err.to_string().contains("expected a parent among trials 0..2, found trial 2"), "{err}");
    }

    fn finish(state: &mut ExperimentState, i: usize, end: RunEnd, acc: &[f64]) {
        state.apply(Event::started(i, &[ParamValue::Int(i as i64)])).unwrap();
        let mut m = MetricSeries::default();
        for v in acc {
            m.push("acc", *v);
        }
        state.apply(Event::finished(i, &end, &m)).unwrap();
    }

    #[test]
    fn defaults_and_trial_parameters() {
        let p = plan(json!({}));
        assert_eq!((p.parallel, p.max_trials, p.max_failed), (3, None, None));
        assert_eq!(p.strategies["acc"], Strategy::Max);
        assert_eq!(p.strategies["loss"], Strategy::Latest);
        let values = p.trial_parameter_values("e-4", &[ParamValue::Int(7)]);
        assert_eq!(values["x"], "7");
        assert_eq!(values["me"], "e-4");
        let p = plan(json!({"objective": {"type": "minimize", "objectiveMetricName": "acc",
            "metricStrategies": [{"name": "acc", "value": "latest"}]}}));
        assert_eq!(p.strategies["acc"], Strategy::Latest);
    }

    #[test]
    fn failures_count_and_end_the_experiment() {
        let mut s = ExperimentState::new(plan(json!({"maxFailedTrialCount": 1, "maxTrialCount": 10})));
        finish(&mut s, 0, RunEnd::Failed("exit status 1".into()), &[]);
        finish(&mut s, 1, RunEnd::Completed, &[]); // no metric: a failure
        assert_eq!(s.trials()[1].phase, TrialPhase::Failed);
        assert!(s.trials()[1].message.as_deref().unwrap().contains("no value for metric \"acc\""));
        assert_eq!(s.end(), Some(EndReason::MaxFailedTrialsReached));
        assert_eq!(s.slots(), 0);
        let status = s.status(None, None);
        assert_eq!(status.trials_failed, Some(2));
        let last = status.conditions.unwrap().pop().unwrap();
        assert_eq!(
            (last.type_.as_deref(), last.reason.as_deref()),
            (Some("Failed"), Some("ExperimentMaxFailedTrialsReached"))
        );
    }

    #[test]
    fn nan_is_a_failure_and_never_reaches_the_history() {
        let mut s = ExperimentState::new(plan(json!({})));
        finish(&mut s, 0, RunEnd::Completed, &[0.5, f64::NAN]);
        assert_eq!(s.trials()[0].phase, TrialPhase::Failed);
        assert!(s.trials()[0].message.as_deref().unwrap().contains("NaN"));
        assert_eq!(s.history().trials[0].state, TrialState::Failed);
        assert!(s.best().is_none());
    }

    #[test]
    fn budget_goal_and_slots() {
        let mut s = ExperimentState::new(plan(json!({"maxTrialCount": 4, "parallelTrialCount": 2,
            "objective": {"type": "maximize", "objectiveMetricName": "acc", "goal": 0.9, "additionalMetricNames": ["loss"]}})));
        assert_eq!(s.slots(), 2);
        s.apply(Event::started(0, &[ParamValue::Int(0)])).unwrap();
        assert_eq!(s.slots(), 1);
        assert_eq!(s.history().trials[0].state, TrialState::Pending);
        let mut m = MetricSeries::default();
        m.push("acc", 0.5);
        s.apply(Event::finished(0, &RunEnd::Completed, &m)).unwrap();
        finish(&mut s, 1, RunEnd::Completed, &[0.7]);
        finish(&mut s, 2, RunEnd::EarlyStopped, &[0.6]);
        assert_eq!(s.slots(), 1); // one trial of the budget left
        assert_eq!(s.best().unwrap().0, 1);
        finish(&mut s, 3, RunEnd::Completed, &[0.95]);
        assert_eq!(s.end(), Some(EndReason::GoalReached));
        let status = serde_json::to_value(s.status(Some("t0".into()), Some("t1".into()))).unwrap();
        assert_eq!(status["currentOptimalTrial"]["bestTrialName"], "e-3");
        assert_eq!(status["currentOptimalTrial"]["parameterAssignments"], json!([{"name": "x", "value": "3"}]));
        assert_eq!(
            status["currentOptimalTrial"]["observation"]["metrics"][0],
            json!({"name": "acc", "min": "0.95", "max": "0.95", "latest": "0.95"})
        );
        assert_eq!(status["currentOptimalTrial"]["observation"]["metrics"][1]["latest"], "unavailable");
        assert_eq!((status["trialsSucceeded"].as_i64(), status["trialsEarlyStopped"].as_i64()), (Some(3), Some(1)));
    }

    #[test]
    fn journal_events_round_trip_and_bad_ones_are_rejected() {
        let mut m = MetricSeries::default();
        m.push("acc", 0.25);
        let events = [Event::started(0, &[ParamValue::Int(3)]), Event::finished(0, &RunEnd::Failed("boom".into()), &m)];
        for e in &events {
            let line = serde_json::to_string(e).unwrap();
            assert_eq!(&serde_json::from_str::<Event>(&line).unwrap(), e, "{line}");
        }
        let mut s = ExperimentState::new(plan(json!({})));
        assert!(s.apply(Event::started(1, &[ParamValue::Int(3)])).is_err());
        assert!(s.apply(Event::started(0, &[ParamValue::Int(30)])).is_err());
        assert!(s.apply(events[1].clone()).is_err());
    }

    #[test]
    fn substitution_replaces_every_placeholder_and_names_unknown_ones() {
        let values = BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "x y".to_owned())]);
        assert_eq!(
            substitute("--a=${trialParameters.a} ${trialParameters.b}${trialParameters.a}", &values).unwrap(),
            "--a=1 x y1"
        );
        assert_eq!(substitute("plain", &values).unwrap(), "plain");
        assert!(substitute("${trialParameters.c}", &values).unwrap_err().contains("\"c\""));
        assert!(substitute("${trialParameters.a", &values).unwrap_err().contains("unterminated"));
    }

    #[test]
    fn a_template_is_filled_in_every_string_and_fails_on_an_unknown_name() {
        let values = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        let spec = serde_json::json!({"k-${trialParameters.a}": ["${trialParameters.a}", {"n": 2, "s": "x${trialParameters.a}"}]});
        let filled = fill_trial_template(&spec, &values).unwrap();
        assert_eq!(filled, serde_json::json!({"k-${trialParameters.a}": ["1", {"n": 2, "s": "x1"}]}));
        let bad = serde_json::json!({"args": ["${trialParameters.b}"]});
        assert!(fill_trial_template(&bad, &values).unwrap_err().contains("\"b\""));
    }
}
