//! A Katib Experiment reconciler on kube-runtime (feature `controller`):
//! Katib's experiment and suggestion controllers in one, for experiments
//! with an inline trial template.
//!
//! Each reconcile of an Experiment (kubeflow.org/v1beta1) lists its trials
//! (label [`EXPERIMENT_LABEL`]), records the metrics of completed trials
//! that only printed them (read from their pods' logs, see below), decides
//! with the pure
//! [`plan::reconcile_plan`] and carries the [`Plan`] out: new trials are
//! server-side applied (field manager [`FIELD_MANAGER`], forced), trials to
//! stop get a JSON merge patch, and then Katib's status (counts, trial
//! lists, `currentOptimalTrial`, conditions `Created`, `Running`,
//! `Succeeded`, `Failed`) is applied to the status subresource when it
//! changed. A reconcile that changes nothing writes nothing.
//!
//! Where Katib is baroque, this is simpler; each choice:
//!
//! - **A trial is one object**, of the template's kind (`batch/v1` Job, a
//!   TrainJob, any kind: it is handled as a `DynamicObject` whose resource
//!   is the kind's lower-case plural — no discovery, so kinds with irregular
//!   plurals are not served). [`run`] watches one trial kind
//!   ([`Config::trial_kind`]); running Experiments of another kind are
//!   polled ([`Config::poll_unwatched`]). There is no separate Trial CR and no
//!   suggestion service: the trial object *is* the record. It is named
//!   `<experiment>-<index>`, labelled [`EXPERIMENT_LABEL`] and
//!   [`TRIAL_LABEL`], owned by the Experiment (controller owner reference),
//!   and carries its parameters in [`ASSIGNMENT_ANNOTATION`].
//! - **The history is rebuilt from the trials on every reconcile**
//!   ([`plan::rebuild`]): nothing is kept in memory or outside the trial
//!   objects, so a controller restart neither re-runs nor loses a trial.
//!   A trial object that was deleted by someone leaves a gap the history
//!   cannot be rebuilt across: the Experiment then gets a `Running` `False`
//!   condition `TrialUnreadable` and no new trial is created.
//! - **Determinism**: the sampler's generator is seeded from `random_state`
//!   (else the Experiment's uid) mixed with the number of trials observed,
//!   as the runner does on resume, so a retried reconcile plans
//!   the same trials.
//! - **Trials are listed from the API server**, not from a cache, on every
//!   reconcile: a reconcile of a stale Experiment (its last status not yet
//!   seen) at worst writes the status again; it never creates a trial twice.
//! - **Metrics**, two ways, both ending in [`METRICS_ANNOTATION`] on the
//!   trial's own object, a JSON object of metric name → values in order
//!   (`{"loss": [0.9, 0.4]}`):
//!   - the trial writes it, e.g. with `kubectl annotate --overwrite` from
//!     its pod (whose ServiceAccount may then patch its own Job); or
//!   - with Katib's default collector, `StdOut` (also when
//!     `metricsCollectorSpec` is absent), the trial just prints
//!     `name=value` lines (or what `source.filter.metricsFormat` matches)
//!     and, once it has completed without the annotation, the controller
//!     reads them from its pod's log through the API: it lists the trial's
//!     pods ([`LogCollector::pod_selector`]: a Job's
//!     `batch.kubernetes.io/job-name`, a TrainJob's or JobSet's
//!     `jobset.sigs.k8s.io/jobset-name`, a `kubeflow.org/v1` training
//!     job's `training.kubeflow.org/job-name`, any other kind's pods only
//!     if its template labels them [`TRIAL_LABEL`]; plus
//!     `primaryPodLabels`), reads the log of the first pod that succeeded
//!     ([`plan::primary_pod`]), container `primaryContainerName` (else the
//!     template's first container), keeps the experiment's metrics
//!     ([`LogCollector::parse`], the parser of the local runner) and
//!     records them in the annotation with a merge patch *before* it plans.
//!     Pods are garbage-collected and the history is rebuilt from the
//!     trials, so the record is what counts: a trial with it is never read
//!     again, by this reconcile, the next, or a restarted controller. A
//!     trial whose pods are gone gets an empty record. Unlike Katib's
//!     sidecar, the log is read once, at the end: the median rule does not
//!     see a `StdOut` trial's values while it runs, and only the log the
//!     kubelet still keeps (its current file, 10 MiB by default) is read.
//!     A series past [`plan::METRICS_ANNOTATION_BUDGET`] is kept as
//!     min/max/latest ([`plan::metrics_annotation`]). `None`, `Push` and
//!     the sidecar kinds (`File`, `TensorFlowEvent`, `PrometheusMetric`,
//!     `Custom`: no sidecar is injected) rely on the annotation alone.
//!
//!   The trial's end comes from its status conditions: `Failed`, or
//!   `Complete` / `Completed` / `Succeeded` (a Job's, a TrainJob's, most
//!   operators'). A trial that ends without the objective metric fails, as
//!   in Katib.
//! - **Stopping** (the median rule, `spec.earlyStopping`, or the
//!   experiment's end for trials still running) does not delete the trial:
//!   deleting it would delete its record. It is marked with
//!   [`STOPPED_ANNOTATION`] and, for kinds whose `spec.suspend` stops their
//!   pods (Job, TrainJob, JobSet), suspended; other kinds are only marked
//!   and count as stopped while they run on. The merge patch touches no
//!   field of the applied template, so it never re-validates it.
//! - **Trials are retained** (`trialTemplate.retain` is moot): they are the
//!   record; they go with the Experiment.
//! - **No finalizer**: every trial carries a controller owner reference to
//!   the Experiment, so Kubernetes' garbage collector deletes them with it,
//!   and no state lives elsewhere. A deleting Experiment is not touched. The
//!   controller never deletes anything, and never writes over an object it
//!   does not own: before a trial is created, its name is read, and an
//!   object there that the Experiment does not own is a `ChildNotOwned`
//!   condition, retried with backoff.
//! - Invalid Experiments get a `Created` `False` condition (`InvalidSpec`)
//!   whose message starts with the offending field, and wait for an edit;
//!   a `configMap` trial template (not read) is a `Running` `False`
//!   condition `TrialTemplateNotFound`, retried with exponential backoff
//!   ([`backoff_delay`]).
//! - An API error stops the reconcile where it happened: logs are read
//!   and recorded first, then trials are created, then stopped, and the
//!   status goes last, so a failure never
//!   reports what was not done; what was done is observed next time. The
//!   error is returned and [`error_policy`] requeues with backoff.
//!
//! **Permissions** the controller's ServiceAccount needs: `experiments`
//! get, list, watch and `experiments/status` patch (kubeflow.org); the
//! trial kind (`jobs` in batch by default) get, list, watch, create,
//! patch; for `StdOut` experiments, core `pods` list and `pods/log` get.
//!
//! This module does the IO; everything it decides is in [`plan`], which is
//! pure and unit-tested.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use kf_tune::controller::{Config, run};
//!
//! let client = kube::Client::try_default().await?;
//! // Reconcile the Experiments of one namespace, whose trials are Jobs.
//! run(client, Config { namespace: Some("kubeflow".into()), ..Config::default() }).await?;
//! # Ok(())
//! # }
//! ```

pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

pub use plan::{
    ASSIGNMENT_ANNOTATION, EXPERIMENT_LABEL, LogCollector, METRICS_ANNOTATION, Next, Observed, Plan,
    STOPPED_ANNOTATION, Stop, TRIAL_LABEL, reconcile_plan,
};

use crate::katib::{API_VERSION, Experiment, KIND};
use crate::{Error, Result};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "kf-tune";

/// How the controller runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Watch Experiments in this namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// Field manager of every write; default [`FIELD_MANAGER`].
    pub field_manager: String,
    /// `(apiVersion, kind)` of the trial objects [`run`] watches, so that a
    /// trial's change reconciles its Experiment; default `batch/v1` Job.
    /// Experiments whose template has another kind are still reconciled,
    /// on their own changes and retries.
    pub trial_kind: (String, String),
    /// How often a running Experiment whose trials are not of `trial_kind`
    /// (so their changes are not watched) is looked at again; default 30 s.
    pub poll_unwatched: Duration,
    /// First retry delay; doubled per consecutive failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            field_manager: FIELD_MANAGER.into(),
            trial_kind: ("batch/v1".into(), "Job".into()),
            poll_unwatched: Duration::from_secs(30),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// The retry delay after `attempt` consecutive failures (1-based):
/// `base · 2^(attempt-1)`, at most `max`.
///
/// ```
/// use std::time::Duration;
/// use kf_tune::controller::backoff_delay;
/// let (base, max) = (Duration::from_secs(5), Duration::from_secs(60));
/// assert_eq!(backoff_delay(1, base, max), base);
/// assert_eq!(backoff_delay(3, base, max), Duration::from_secs(20));
/// assert_eq!(backoff_delay(40, base, max), max);
/// ```
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// What every reconcile shares: the client, the configuration, the clock
/// and the consecutive-failure counts that drive the backoff.
pub struct Context {
    client: Client,
    config: Config,
    clock: Box<dyn Fn() -> String + Send + Sync>,
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Context {
    /// A context on `client`; times are the UTC time in seconds.
    pub fn new(client: Client, config: Config) -> Context {
        let clock = || k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        Context { client, config, clock: Box::new(clock), failures: Mutex::default() }
    }

    /// Replaces the clock (RFC 3339 text), e.g. with a fixed time in tests.
    pub fn with_clock(mut self, clock: impl Fn() -> String + Send + Sync + 'static) -> Context {
        self.clock = Box::new(clock);
        self
    }

    /// One more failure for `key`; returns the delay before the retry.
    fn fail(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n, self.config.backoff_base, self.config.backoff_max)
    }

    fn succeed(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

/// The [`ApiResource`] of `kind` in `api_version`: Experiments by their
/// plural, any other kind by its lower-case plural (kube's rule).
pub fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    if (api_version, kind) == (API_VERSION, KIND) {
        ApiResource::from_gvk_with_plural(&gvk, "experiments")
    } else {
        ApiResource::from_gvk(&gvk)
    }
}

fn kube_error(request: String, err: kube::Error) -> Error {
    let (status, message) = match err {
        kube::Error::Api(status) => (Some(status.code), format!("{} ({})", status.message, status.reason)),
        other => (None, other.to_string()),
    };
    Error::Kubernetes { request, status, message }
}

fn to_value(request: &str, object: &DynamicObject) -> Result<Value> {
    serde_json::to_value(object).map_err(|e| Error::Kubernetes {
        request: request.to_string(),
        status: None,
        message: e.to_string(),
    })
}

/// Reconciles one Experiment: lists its trials, decides with
/// [`reconcile_plan`], creates and stops trials, writes the status.
/// Returns when to look again; an API error is returned as
/// [`Error::Kubernetes`] after nothing more was written.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| ctx.client.default_namespace().to_string());
    let name = object.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let now = (ctx.clock)();
    let document = to_value(&format!("read Experiment {key}"), &object)?;
    let (plan, unwatched) = match Experiment::from_value(document.clone()) {
        Ok(experiment) => {
            let plan = decide(&experiment, &namespace, &ctx, &now).await?;
            execute(&plan, &experiment, &namespace, &ctx).await?;
            let unwatched = plan::needs_trials(&experiment) && plan::trial_kind(&experiment) != ctx.config.trial_kind;
            (plan, unwatched)
        }
        Err(err) => {
            let experiment = stub(&document);
            let plan = plan::invalid_plan(&experiment, &err, &now);
            execute(&plan, &experiment, &namespace, &ctx).await?;
            (plan, false)
        }
    };
    Ok(match plan.next {
        Next::AwaitChange => {
            ctx.succeed(&key);
            let ended = plan.status.as_ref().is_some_and(plan::has_ended);
            if unwatched && !ended { Action::requeue(ctx.config.poll_unwatched) } else { Action::await_change() }
        }
        Next::Retry => Action::requeue(ctx.fail(&key)),
    })
}

/// Requeues an Experiment whose reconcile failed, with backoff.
pub fn error_policy(object: Arc<DynamicObject>, _error: &Error, ctx: Arc<Context>) -> Action {
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    let name = object.metadata.name.as_deref().unwrap_or_default();
    Action::requeue(ctx.fail(&format!("{namespace}/{name}")))
}

/// An Experiment that does not read as one: its metadata and status, so
/// that the condition naming the field can be written.
fn stub(document: &Value) -> Experiment {
    let metadata = document.get("metadata").cloned().and_then(|m| serde_json::from_value(m).ok());
    let status = document.get("status").cloned().and_then(|s| serde_json::from_value(s).ok());
    Experiment {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata,
        spec: None,
        status,
        extra: Default::default(),
    }
}

/// Reads what the plan needs and plans: the trials by label, then, for
/// each trial the plan would create, whatever holds its name already.
async fn decide(experiment: &Experiment, namespace: &str, ctx: &Context, now: &str) -> Result<Plan> {
    if !plan::needs_trials(experiment) {
        // Decided without reading anything: left alone, or a condition.
        return Ok(reconcile_plan(experiment, &Observed::default(), now));
    }
    let (api_version, kind) = plan::trial_kind(experiment);
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(&api_version, &kind));
    let experiment_name = experiment.name().unwrap_or_default();
    let selector = format!("{EXPERIMENT_LABEL}={experiment_name}");
    let request = format!("list {kind} {namespace} -l {selector}");
    let listed =
        api.list(&ListParams::default().labels(&selector)).await.map_err(|e| kube_error(request.clone(), e))?;
    let mut observed = Observed::default();
    for item in &listed.items {
        let mut value = to_value(&request, item)?;
        // A list's items carry no apiVersion and kind of their own.
        value["apiVersion"] = json!(api_version);
        value["kind"] = json!(kind);
        observed.children.push(value);
    }
    if let Ok(Some(collector)) = plan::log_collector(experiment) {
        collect_from_logs(experiment, &collector, &mut observed, namespace, ctx).await?;
    }
    let plan = reconcile_plan(experiment, &observed, now);
    let mut found = false;
    for child in &plan.create {
        let (_, _, child_name) = plan::child_key(child);
        let request = format!("get {kind} {namespace}/{child_name}");
        if let Some(object) = api.get_opt(child_name).await.map_err(|e| kube_error(request.clone(), e))? {
            let mut value = to_value(&request, &object)?;
            value["apiVersion"] = json!(api_version);
            value["kind"] = json!(kind);
            observed.children.push(value);
            found = true;
        }
    }
    Ok(if found { reconcile_plan(experiment, &observed, now) } else { plan })
}

/// Reads the metrics of each trial [`plan::awaiting_log`] names from the
/// log of its [`plan::primary_pod`] and records them on the trial
/// ([`METRICS_ANNOTATION`], a merge patch with the field manager), and in
/// `observed`, so the plan sees them and no later reconcile (nor a
/// restarted controller) reads that log again. A trial without pods gets
/// an empty record: it has no metrics, so it fails. Stops at the first
/// error; the trials recorded until then keep their record.
async fn collect_from_logs(
    experiment: &Experiment,
    collector: &plan::LogCollector,
    observed: &mut Observed,
    namespace: &str,
    ctx: &Context,
) -> Result<()> {
    let names: Vec<String> =
        plan::awaiting_log(experiment, observed).iter().map(|o| plan::child_key(o).2.to_string()).collect();
    if names.is_empty() {
        return Ok(());
    }
    let (api_version, kind) = plan::trial_kind(experiment);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let trials: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(&api_version, &kind));
    let merge = PatchParams { field_manager: Some(ctx.config.field_manager.clone()), ..PatchParams::default() };
    for name in names {
        let selector = collector.pod_selector(&api_version, &kind, &name);
        let request = format!("list Pod {namespace} -l {selector}");
        let listed = pods.list(&ListParams::default().labels(&selector)).await.map_err(|e| kube_error(request, e))?;
        let log = match plan::primary_pod(&listed.items) {
            Some(pod) => read_log(&pods, pod, collector.container.as_deref(), namespace).await?,
            None => String::new(),
        };
        let annotation = plan::metrics_annotation(&collector.parse(&log));
        let patch = plan::metrics_patch(&annotation);
        trials
            .patch(&name, &merge, &Patch::Merge(&patch))
            .await
            .map_err(|e| kube_error(format!("record metrics on {kind} {namespace}/{name}"), e))?;
        if let Some(child) = observed.children.iter_mut().find(|c| plan::child_key(c).2 == name) {
            plan::merge_patch(child, &patch);
        }
    }
    Ok(())
}

/// The log of `container` (or the only one) of pod `name`, whole; bytes
/// that are not UTF-8 are replaced rather than failing the read.
async fn read_log(pods: &Api<Pod>, name: &str, container: Option<&str>, namespace: &str) -> Result<String> {
    let request = format!("read log of Pod {namespace}/{name}");
    let params = LogParams { container: container.map(str::to_string), ..LogParams::default() };
    let mut stream = pods.log_stream(name, &params).await.map_err(|e| kube_error(request.clone(), e))?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.map_err(|e| Error::Kubernetes {
        request,
        status: None,
        message: e.to_string(),
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Creates the plan's trials in order, stops the ones to stop, then writes
/// its status; stops at the first error.
async fn execute(plan: &Plan, experiment: &Experiment, namespace: &str, ctx: &Context) -> Result<()> {
    let apply = PatchParams::apply(&ctx.config.field_manager).force();
    for child in &plan.create {
        let (api_version, kind, name) = plan::child_key(child);
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(api_version, kind));
        api.patch(name, &apply, &Patch::Apply(child))
            .await
            .map_err(|e| kube_error(format!("apply {kind} {namespace}/{name}"), e))?;
    }
    let merge = PatchParams { field_manager: Some(ctx.config.field_manager.clone()), ..PatchParams::default() };
    for stop in &plan.stop {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(&stop.api_version, &stop.kind));
        api.patch(&stop.name, &merge, &Patch::Merge(stop.patch()))
            .await
            .map_err(|e| kube_error(format!("stop {} {namespace}/{}", stop.kind, stop.name), e))?;
    }
    if let Some(status) = &plan.status {
        let name = experiment.name().unwrap_or_default();
        let body = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        });
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(API_VERSION, KIND));
        api.patch_status(name, &apply, &Patch::Apply(&body))
            .await
            .map_err(|e| kube_error(format!("apply Experiment {namespace}/{name} status"), e))?;
    }
    Ok(())
}

/// Runs the controller until the watch streams end: watches Experiments
/// (in `config.namespace`, or everywhere) and the trial objects of
/// `config.trial_kind` they own, and reconciles each with [`reconcile`] and
/// [`error_policy`].
pub async fn run(client: Client, config: Config) -> Result<()> {
    let experiments = api_resource(API_VERSION, KIND);
    let (trial_version, trial_kind) = &config.trial_kind;
    let trials = api_resource(trial_version, trial_kind);
    let (experiments_api, trials_api) = match &config.namespace {
        Some(ns) => (
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &experiments),
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &trials),
        ),
        None => (Api::all_with(client.clone(), &experiments), Api::all_with(client.clone(), &trials)),
    };
    let ctx = Arc::new(Context::new(client, config));
    Controller::new_with(experiments_api, watcher::Config::default(), experiments)
        .owns_with(trials_api, trials, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}
