//! A TrainJob reconciler on kube-runtime (feature `controller`): the upstream
//! Trainer controller's job, for the runtimes kf can render.
//!
//! Each reconcile of a TrainJob reads its runtime (`TrainingRuntime` in the
//! job's namespace or `ClusterTrainingRuntime`) and its children, decides
//! with the pure [`plan::reconcile_plan`], and carries the [`Plan`] out:
//! every child that differs from the observed one is server-side applied
//! (field manager [`FIELD_MANAGER`], forced) — an MPI job's SSH-auth Secret,
//! ConfigMaps, the coscheduling or Volcano PodGroup, then the JobSet, as
//! [`crate::render`] renders them, each owned by the TrainJob — and then the
//! status (conditions `Created`,
//! `Suspended`, `Complete`, `Failed` and `jobsStatus`, see [`status`]) is
//! applied to the status subresource when it changed. A reconcile that
//! changes nothing writes nothing.
//!
//! - `spec.managedBy` other than the Trainer default: the job is not touched.
//! - `spec.suspend`: the JobSet is applied with `suspend: true` and the
//!   `Suspended` condition is set; resuming applies `suspend: false`.
//! - Invalid TrainJobs get a `Created` `False` condition (`InvalidSpec`) whose
//!   message starts with the offending field, and wait for an edit; a
//!   missing runtime (`RuntimeNotFound`), a runtime or template that cannot be
//!   rendered (`JobsBuildFailed`) or a child name taken by an object the job
//!   does not own (`ChildNotOwned`) is a condition too, retried with
//!   exponential backoff ([`backoff_delay`]).
//! - An API error stops the reconcile where it happened: children go first
//!   and the JobSet (which starts the pods) last, the status only after all
//!   of them, so a failure never reports what was not applied. The error
//!   is returned and [`error_policy`] requeues with backoff.
//! - No finalizer: the children carry a controller owner reference to the
//!   TrainJob, so Kubernetes' garbage collector deletes them with it. The
//!   controller itself never deletes anything, and never applies over an
//!   object it does not own.
//!
//! This module does the IO; everything it decides is in [`plan`] and
//! [`status`], which are pure and unit-tested, but for one thing a pure
//! function cannot make: the key pair of an MPI job's SSH Secret. The shell
//! makes it ([`ssh_key_pair`], a fresh Ed25519 pair per TrainJob; upstream
//! uses ECDSA P-521, any OpenSSH accepts either) when it creates the
//! Secret, which is immutable and never rewritten afterwards.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use kf_train::controller::{Config, run};
//!
//! let client = kube::Client::try_default().await?;
//! // Reconcile the TrainJobs of one namespace until the process ends.
//! run(client, Config { namespace: Some("team-a".into()), ..Config::default() }).await?;
//! # Ok(())
//! # }
//! ```

pub mod plan;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

pub use plan::{Next, Observed, Plan, Runtime, reconcile_plan};

use crate::render::{self, COSCHEDULING_API_VERSION, JOBSET_API_VERSION, VOLCANO_API_VERSION};
use crate::runtime::{CLUSTER_TRAINING_RUNTIME_KIND, TRAINING_RUNTIME_KIND, TrainingRuntime};
use crate::trainjob::{API_GROUP, API_VERSION, MANAGED_BY_TRAINER, TRAINJOB_KIND, TrainJob};
use crate::{Error, Result};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "kf-train";

/// How the controller runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Watch TrainJobs in this namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// Field manager of the server-side applies; default [`FIELD_MANAGER`].
    pub field_manager: String,
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
/// use kf_train::controller::backoff_delay;
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
    keys: Box<KeyMaker>,
    failures: Mutex<HashMap<String, u32>>,
}

/// Makes the key pair of an MPI job's SSH Secret: `(private key in OpenSSH
/// PEM, public key as an authorized_keys line)`.
pub type KeyMaker = dyn Fn() -> Result<(String, String)> + Send + Sync;

/// A fresh Ed25519 key pair from the operating system's random source:
/// the private key in OpenSSH's PEM format, the public key as one
/// `authorized_keys` line. What [`Context::new`] uses for MPI jobs.
///
/// ```
/// let (private, public) = kf_train::controller::ssh_key_pair()?;
/// assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
/// assert!(public.starts_with("ssh-ed25519 "));
/// assert_ne!(kf_train::controller::ssh_key_pair()?.1, public);
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn ssh_key_pair() -> Result<(String, String)> {
    let failed = |e: ssh_key::Error| Error::Unrenderable {
        path: "sshAuthSecret".into(),
        message: format!("cannot make an SSH key pair: {e}"),
    };
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519).map_err(failed)?;
    let private = key.to_openssh(ssh_key::LineEnding::LF).map_err(failed)?;
    let public = key.public_key().to_openssh().map_err(failed)?;
    Ok((private.to_string(), public))
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Context {
    /// A context on `client`; conditions are stamped with the UTC time in
    /// seconds.
    pub fn new(client: Client, config: Config) -> Context {
        let clock = || k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        Context { client, config, clock: Box::new(clock), keys: Box::new(ssh_key_pair), failures: Mutex::default() }
    }

    /// Replaces the maker of MPI SSH key pairs, e.g. with fixed keys in tests.
    pub fn with_key_maker(mut self, keys: impl Fn() -> Result<(String, String)> + Send + Sync + 'static) -> Context {
        self.keys = Box::new(keys);
        self
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

    fn params(&self) -> PatchParams {
        PatchParams::apply(&self.config.field_manager).force()
    }
}

/// The [`ApiResource`] of a kind this controller reads or writes:
/// TrainJob, (Cluster)TrainingRuntime, JobSet, either PodGroup, ConfigMap,
/// Secret.
pub fn api_resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let plural = match (api_version, kind) {
        (API_VERSION, TRAINJOB_KIND) => "trainjobs",
        (API_VERSION, TRAINING_RUNTIME_KIND) => "trainingruntimes",
        (API_VERSION, CLUSTER_TRAINING_RUNTIME_KIND) => "clustertrainingruntimes",
        (JOBSET_API_VERSION, "JobSet") => "jobsets",
        (COSCHEDULING_API_VERSION | VOLCANO_API_VERSION, "PodGroup") => "podgroups",
        ("v1", "ConfigMap") => "configmaps",
        ("v1", "Secret") => "secrets",
        _ => return None,
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Some(ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural))
}

fn kube_error(request: String, err: kube::Error) -> Error {
    let (status, message) = match err {
        kube::Error::Api(status) => (Some(status.code), format!("{} ({})", status.message, status.reason)),
        other => (None, other.to_string()),
    };
    Error::Kubernetes { request, status, message }
}

fn namespaced(ctx: &Context, namespace: &str, api_version: &str, kind: &str) -> Result<Api<DynamicObject>> {
    let resource = api_resource(api_version, kind).ok_or_else(|| Error::Kubernetes {
        request: format!("{api_version} {kind}"),
        status: None,
        message: "not a kind this controller manages".into(),
    })?;
    Ok(Api::namespaced_with(ctx.client.clone(), namespace, &resource))
}

/// Reconciles one TrainJob: reads its runtime and children, decides with
/// [`reconcile_plan`], applies what changed. Returns when to look again;
/// an API error is returned as [`Error::Kubernetes`] after nothing more was
/// written.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| ctx.client.default_namespace().to_string());
    let name = object.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let now = (ctx.clock)();
    let document = serde_json::to_value(object.as_ref())
        .map_err(|e| Error::Invalid { path: String::new(), message: format!("cannot read the TrainJob: {e}") })?;
    let plan = match TrainJob::from_value(document.clone()) {
        Ok(job) => {
            let plan = decide(&job, &namespace, &ctx, &now).await?;
            execute(&plan, &job, &namespace, &ctx).await?;
            plan
        }
        Err(err) => {
            let managed_by = document.pointer("/spec/managedBy").and_then(Value::as_str).unwrap_or(MANAGED_BY_TRAINER);
            if managed_by != MANAGED_BY_TRAINER {
                return Ok(Action::await_change());
            }
            let job = stub(&document);
            let plan = plan::invalid_plan(&job, &err, &now);
            execute(&plan, &job, &namespace, &ctx).await?;
            plan
        }
    };
    Ok(match plan.next {
        Next::AwaitChange => {
            ctx.succeed(&key);
            Action::await_change()
        }
        Next::Retry => Action::requeue(ctx.fail(&key)),
    })
}

/// Requeues a TrainJob whose reconcile failed, with backoff.
pub fn error_policy(object: Arc<DynamicObject>, _error: &Error, ctx: Arc<Context>) -> Action {
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    let name = object.metadata.name.as_deref().unwrap_or_default();
    Action::requeue(ctx.fail(&format!("{namespace}/{name}")))
}

/// A TrainJob that does not read as one: its metadata and status, so that
/// the condition naming the field can be written.
fn stub(document: &Value) -> TrainJob {
    let metadata = document.get("metadata").cloned().and_then(|m| serde_json::from_value(m).ok());
    let status = document.get("status").cloned().and_then(|s| serde_json::from_value(s).ok());
    TrainJob {
        api_version: API_VERSION.into(),
        kind: TRAINJOB_KIND.into(),
        metadata,
        spec: None,
        status,
        extra: Default::default(),
    }
}

/// Reads what the plan needs and plans.
async fn decide(job: &TrainJob, namespace: &str, ctx: &Context, now: &str) -> Result<Plan> {
    if !plan::acts_on(job) || job.validate().is_err() {
        // Decided without reading anything: left alone, or a condition.
        return Ok(reconcile_plan(job, Runtime::Missing, &Observed::default(), now));
    }
    let fetched = if status::is_finished(job) { None } else { fetch_runtime(job, namespace, ctx).await? };
    let runtime = match &fetched {
        Some(Ok(runtime)) => Runtime::Found(runtime),
        Some(Err(err)) => Runtime::Unreadable(err),
        None => Runtime::Missing,
    };
    let name = job.name().unwrap_or_default();
    let mut wanted = vec![(JOBSET_API_VERSION.to_string(), "JobSet".to_string(), name.to_string())];
    if let Runtime::Found(runtime) = runtime
        && let Ok(children) = plan::desired_children(job, runtime)
    {
        for child in &children {
            let (api_version, kind, child_name) = plan::child_key(child);
            let key = (api_version.to_string(), kind.to_string(), child_name.to_string());
            if !wanted.contains(&key) {
                wanted.push(key);
            }
        }
    }
    let mut observed = Observed::default();
    for (api_version, kind, child_name) in &wanted {
        let api = namespaced(ctx, namespace, api_version, kind)?;
        let found =
            api.get_opt(child_name).await.map_err(|e| kube_error(format!("get {kind} {namespace}/{child_name}"), e))?;
        if let Some(found) = found {
            let value = serde_json::to_value(&found).map_err(|e| Error::Kubernetes {
                request: format!("get {kind} {namespace}/{child_name}"),
                status: None,
                message: e.to_string(),
            })?;
            observed.children.push(value);
        }
    }
    Ok(reconcile_plan(job, runtime, &observed, now))
}

/// The runtime `job` references: `None` when it does not exist (or lives
/// in an API group this controller does not serve), `Some(Err)` when it
/// does not read as a runtime.
async fn fetch_runtime(job: &TrainJob, namespace: &str, ctx: &Context) -> Result<Option<Result<TrainingRuntime>>> {
    let Some(reference) = job.runtime_ref() else { return Ok(None) };
    if reference.api_group() != API_GROUP {
        return Ok(None);
    }
    let kind = reference.kind();
    let name = reference.name.as_deref().unwrap_or_default();
    let Some(resource) = api_resource(API_VERSION, kind) else { return Ok(None) };
    let api: Api<DynamicObject> = if kind == CLUSTER_TRAINING_RUNTIME_KIND {
        Api::all_with(ctx.client.clone(), &resource)
    } else {
        Api::namespaced_with(ctx.client.clone(), namespace, &resource)
    };
    let found = api.get_opt(name).await.map_err(|e| kube_error(format!("get {kind} {name}"), e))?;
    Ok(found.map(|object| {
        serde_json::to_value(&object)
            .map_err(|e| Error::Invalid { path: String::new(), message: e.to_string() })
            .and_then(TrainingRuntime::from_value)
    }))
}

/// Applies the plan's children in order, then its status; stops at the first error.
async fn execute(plan: &Plan, job: &TrainJob, namespace: &str, ctx: &Context) -> Result<()> {
    for child in &plan.apply {
        let (api_version, kind, name) = plan::child_key(child);
        let api = namespaced(ctx, namespace, api_version, kind)?;
        let keyed;
        let child = if plan::needs_key_material(child) {
            let (private, public) = (ctx.keys)()?;
            let data = render::ssh_auth_secret(job, &private, &public).data;
            let mut filled = child.clone();
            filled["data"] = serde_json::to_value(data).map_err(|e| Error::Unrenderable {
                path: "sshAuthSecret.data".into(),
                message: format!("cannot serialise: {e}"),
            })?;
            keyed = filled;
            &keyed
        } else {
            child
        };
        api.patch(name, &ctx.params(), &Patch::Apply(child))
            .await
            .map_err(|e| kube_error(format!("apply {kind} {namespace}/{name}"), e))?;
    }
    if let Some(status) = &plan.status {
        let name = job.name().unwrap_or_default();
        let written = serde_json::to_value(status).unwrap_or_default();
        // Only the fields this controller owns: the trainer's progress and
        // anything else in the status stay with their managers.
        let mut owned = serde_json::Map::new();
        for field in ["conditions", "jobsStatus"] {
            if let Some(value) = written.get(field) {
                owned.insert(field.into(), value.clone());
            }
        }
        let body = json!({
            "apiVersion": API_VERSION,
            "kind": TRAINJOB_KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": owned,
        });
        let api = namespaced(ctx, namespace, API_VERSION, TRAINJOB_KIND)?;
        api.patch_status(name, &ctx.params(), &Patch::Apply(&body))
            .await
            .map_err(|e| kube_error(format!("apply TrainJob {namespace}/{name} status"), e))?;
    }
    Ok(())
}

/// Runs the controller until the watch streams end: watches TrainJobs (in
/// `config.namespace`, or everywhere) and the JobSets they own, and
/// reconciles each with [`reconcile`] and [`error_policy`].
pub async fn run(client: Client, config: Config) -> Result<()> {
    let missing = |kind: &str| Error::Kubernetes {
        request: kind.into(),
        status: None,
        message: "not a kind this controller manages".into(),
    };
    let train_jobs = api_resource(API_VERSION, TRAINJOB_KIND).ok_or_else(|| missing(TRAINJOB_KIND))?;
    let job_sets = api_resource(JOBSET_API_VERSION, "JobSet").ok_or_else(|| missing("JobSet"))?;
    let (jobs_api, job_sets_api) = match &config.namespace {
        Some(ns) => (
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &train_jobs),
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &job_sets),
        ),
        None => (Api::all_with(client.clone(), &train_jobs), Api::all_with(client.clone(), &job_sets)),
    };
    let ctx = Arc::new(Context::new(client, config));
    Controller::new_with(jobs_api, watcher::Config::default(), train_jobs)
        .owns_with(job_sets_api, job_sets, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}
