//! The pure core of the TrainJob reconciler: from a TrainJob, its runtime (as
//! found) and the children the API server has, decide what to apply, what
//! status to write and when to look again.
//!
//! No IO and no clock: the IO shell ([`super::reconcile`]) reads, calls
//! [`reconcile_plan`] and carries the [`Plan`] out. The children are the
//! rendering of [`crate::render`], unchanged but for what a controller adds:
//! the owner reference, the [`TRAINJOB_NAME_LABEL`] and an explicit
//! `spec.suspend`.

use serde_json::{Map, Value, json};

use super::status::{
    CHILD_NOT_OWNED, CREATED, INVALID_SPEC, JOBS_BUILD_FAILED, JOBS_CREATION_SUCCEEDED, RUNTIME_NOT_FOUND, Wanted,
    derive_status, is_finished,
};
use crate::launch::{Network, plan};
use crate::render::{JOBSET_API_VERSION, VOLCANO_API_VERSION, render, ssh_auth_secret};
use crate::runtime::TrainingRuntime;
use crate::trainjob::{MANAGED_BY_TRAINER, TrainJob, TrainJobStatus};
use crate::{Error, Result};

/// Label on every child: the name of the TrainJob it belongs to.
pub const TRAINJOB_NAME_LABEL: &str = "trainer.kubeflow.org/trainjob-name";

/// What looking up the TrainJob's runtime found.
#[derive(Debug, Clone, Copy)]
pub enum Runtime<'a> {
    /// The runtime, as read.
    Found(&'a TrainingRuntime),
    /// No such runtime (404), or a `runtimeRef` to an API group this
    /// controller does not serve.
    Missing,
    /// A runtime that does not read as one (a type error); the error names the field.
    Unreadable(&'a Error),
}

/// The children the API server has for a TrainJob, as it returned them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// JobSet, PodGroup, ConfigMaps — whichever exist, in any order.
    pub children: Vec<Value>,
}

impl Observed {
    /// The observed object with the same `apiVersion`, `kind` and name as `like`.
    pub fn same_as(&self, like: &Value) -> Option<&Value> {
        let key = child_key(like);
        self.children.iter().find(|c| child_key(c) == key)
    }

    /// The JobSet named `name`.
    pub fn job_set(&self, name: &str) -> Option<&Value> {
        self.same_as(&json!({"apiVersion": JOBSET_API_VERSION, "kind": "JobSet", "metadata": {"name": name}}))
    }
}

/// Whether `child` is a Secret that still needs its key material: the MPI
/// SSH-auth Secret as [`desired_children`] plans it. The shell fills in a
/// fresh key pair ([`crate::render::ssh_auth_secret`]'s `data`) before it
/// creates the Secret. A Secret that exists is never applied again (its
/// planned fields are a subset of the stored ones), so the keys the pods
/// mounted stay.
pub fn needs_key_material(child: &Value) -> bool {
    child.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && child.get("kind").and_then(Value::as_str) == Some("Secret")
        && child.get("data").is_none_or(Value::is_null)
}

/// `(apiVersion, kind, name)` of an object.
pub fn child_key(object: &Value) -> (&str, &str, &str) {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (text("/apiVersion"), text("/kind"), text("/metadata/name"))
}

/// When the shell should reconcile the TrainJob again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// On the next change of the TrainJob or a child (watch events).
    AwaitChange,
    /// After a backoff: what blocks the job (a missing runtime, a name taken
    /// by a foreign object) lives in objects the controller does not watch.
    Retry,
}

/// What one reconcile must do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every child the TrainJob should have, in creation order (an MPI
    /// job's SSH Secret, ConfigMaps,
    /// PodGroup, JobSet); empty when it should have none yet.
    pub desired: Vec<Value>,
    /// The desired children that differ from what is observed: each is
    /// server-side applied, in this order. Empty when nothing changed.
    pub apply: Vec<Value>,
    /// The status to write, when it differs from the TrainJob's.
    pub status: Option<TrainJobStatus>,
    /// When to look again.
    pub next: Next,
}

impl Plan {
    /// Nothing to do until the TrainJob changes.
    pub fn idle() -> Plan {
        Plan { desired: Vec::new(), apply: Vec::new(), status: None, next: Next::AwaitChange }
    }

    /// Whether the plan writes anything.
    pub fn writes(&self) -> bool {
        !self.apply.is_empty() || self.status.is_some()
    }
}

/// Whether this controller reconciles `job` at all: it is managed by the
/// Trainer controller (`spec.managedBy` unset or the default; MultiKueue and
/// others reconcile their own) and not being deleted (its children go with
/// it through their owner references).
pub fn acts_on(job: &TrainJob) -> bool {
    let deleting =
        job.metadata.as_ref().is_some_and(|m| m.extra.get("deletionTimestamp").is_some_and(|t| !t.is_null()));
    job.managed_by() == MANAGED_BY_TRAINER && !deleting
}

/// The children of `job` on `runtime`: the rendering of
/// [`crate::render::render`] as documents, each with an owner reference to
/// the job (which must therefore have a `uid`), the [`TRAINJOB_NAME_LABEL`],
/// and the JobSet's `spec.suspend` written out (so that resuming a job whose
/// `suspend` was removed is a change); a suspended job has no Volcano
/// PodGroup yet, as upstream. MPI jobs start with their SSH-auth Secret
/// (upstream's, immutable) without its key material, which a pure function
/// cannot make: see [`needs_key_material`]. Fails with the error that names
/// the offending field.
pub fn desired_children(job: &TrainJob, runtime: &TrainingRuntime) -> Result<Vec<Value>> {
    let name = job.name().unwrap_or_default();
    let has_uid =
        job.metadata.as_ref().and_then(|m| m.extra.get("uid")).and_then(Value::as_str).is_some_and(|u| !u.is_empty());
    if !has_uid {
        return Err(Error::Invalid {
            path: "metadata.uid".into(),
            message: "a TrainJob read from the API server has a uid; without one its children cannot name their owner"
                .into(),
        });
    }
    runtime.validate().map_err(|e| in_runtime(runtime, e))?;
    let launch = plan(job, runtime, &Network::Kubernetes)?;
    let manifests = render(job, runtime, &launch)?;
    let mut children = Vec::new();
    if manifests.ssh_auth_secret.is_some() {
        // MPI: the SSH Secret comes first, without its key material, which
        // the shell makes fresh when it creates the Secret (see
        // [`needs_key_material`]); once it exists it is never rewritten.
        let mut secret = ssh_auth_secret(job, "", "");
        secret.data = None;
        let mut value = serde_json::to_value(&secret).map_err(|e| Error::Unrenderable {
            path: "sshAuthSecret".into(),
            message: format!("cannot serialise: {e}"),
        })?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), "v1".into());
            map.insert("kind".into(), "Secret".into());
        }
        children.push(value);
    }
    children.extend(manifests.to_values()?);
    // As upstream's Volcano plugin: no PodGroup while the job is suspended
    // (Volcano would start holding the gang's resources); it comes on resume.
    if job.suspended() {
        children.retain(|c| child_key(c).0 != VOLCANO_API_VERSION);
    }
    for child in &mut children {
        let Some(meta) = child.get_mut("metadata").and_then(Value::as_object_mut) else { continue };
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(TRAINJOB_NAME_LABEL.into(), name.into());
        }
        if child.get("kind").and_then(Value::as_str) == Some("JobSet")
            && let Some(spec) = child.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("suspend".into(), job.suspended().into());
        }
    }
    Ok(children)
}

/// A runtime's own validation error, its path prefixed `runtime.` like the
/// launch and render errors.
fn in_runtime(runtime: &TrainingRuntime, err: Error) -> Error {
    let what = format!("{} {:?}", runtime.kind, runtime.name().unwrap_or_default());
    match err {
        Error::Invalid { path, message } => {
            Error::Invalid { path: format!("runtime.{path}"), message: format!("{what}: {message}") }
        }
        Error::UnknownField { path, expected } => Error::UnknownField { path: format!("runtime.{path}"), expected },
        other => other,
    }
}

/// Decides one reconcile of `job`. `now` (RFC 3339) stamps conditions that change.
///
/// In order: a job this controller does not act on ([`acts_on`]) gets
/// [`Plan::idle`]; a job that fails [`TrainJob::validate`] gets a `Created`
/// `False` condition `InvalidSpec` naming the field and waits for an edit; a
/// finished job only follows its JobSet's counts; a missing or unusable
/// runtime, or a child name held by an object the job does not own, is a
/// `Created` `False` condition and a [`Next::Retry`]; otherwise the children
/// that differ from the observed ones are applied and the status follows the
/// JobSet. O(size of the rendering + observed children).
///
/// Idempotent: when the observed children are the applied ones (plus
/// whatever the server adds) and the job holds the returned status, the
/// next plan writes nothing.
pub fn reconcile_plan(job: &TrainJob, runtime: Runtime<'_>, observed: &Observed, now: &str) -> Plan {
    if !acts_on(job) {
        return Plan::idle();
    }
    if let Err(err) = job.validate() {
        return invalid_plan(job, &err, now);
    }
    let name = job.name().unwrap_or_default();
    let job_set = observed.job_set(name);
    if is_finished(job) {
        return with_status(job, Plan::idle(), derive_status(job, None, job_set, now));
    }
    let blocked = |reason: &str, message: &str| {
        let created = Wanted { type_: CREATED, status: false, reason, message };
        let plan = Plan { next: Next::Retry, ..Plan::idle() };
        with_status(job, plan, derive_status(job, Some(&created), job_set, now))
    };
    let runtime = match runtime {
        Runtime::Found(runtime) => runtime,
        Runtime::Missing => {
            let (kind, runtime_name) =
                job.runtime_ref().map(|r| (r.kind(), r.name.as_deref().unwrap_or_default())).unwrap_or_default();
            return blocked(RUNTIME_NOT_FOUND, &format!("spec.runtimeRef: {kind} {runtime_name:?} not found"));
        }
        Runtime::Unreadable(err) => return blocked(JOBS_BUILD_FAILED, &format!("runtime.{err}")),
    };
    let desired = match desired_children(job, runtime) {
        Ok(desired) => desired,
        Err(err) => return blocked(JOBS_BUILD_FAILED, &err.to_string()),
    };
    let uid = job.metadata.as_ref().and_then(|m| m.extra.get("uid")).and_then(Value::as_str).unwrap_or_default();
    if let Some(foreign) = desired.iter().filter_map(|d| observed.same_as(d)).find(|o| !owned_by(o, uid)) {
        let (_, kind, child) = child_key(foreign);
        return blocked(
            CHILD_NOT_OWNED,
            &format!("{kind} {child:?} exists and is not owned by this TrainJob; it is left alone"),
        );
    }
    let apply: Vec<Value> =
        desired.iter().filter(|d| observed.same_as(d).is_none_or(|o| !is_subset(d, o))).cloned().collect();
    let created =
        Wanted { type_: CREATED, status: true, reason: JOBS_CREATION_SUCCEEDED, message: "Succeeded to create Jobs" };
    let status = derive_status(job, Some(&created), job_set, now);
    with_status(job, Plan { desired, apply, status: None, next: Next::AwaitChange }, status)
}

/// The plan for a TrainJob that fails validation (or does not even read as
/// one: the shell passes a stub with its metadata and status): a `Created`
/// `False` condition `InvalidSpec` whose message starts with the field's
/// path, and no children. Waits for an edit; a finished job is left as it is.
pub fn invalid_plan(job: &TrainJob, err: &Error, now: &str) -> Plan {
    if is_finished(job) {
        return Plan::idle();
    }
    let message = err.to_string();
    let created = Wanted { type_: CREATED, status: false, reason: INVALID_SPEC, message: &message };
    with_status(job, Plan::idle(), derive_status(job, Some(&created), None, now))
}

fn with_status(job: &TrainJob, plan: Plan, status: TrainJobStatus) -> Plan {
    let changed =
        job.status.as_ref() != Some(&status) && !(job.status.is_none() && status == TrainJobStatus::default());
    Plan { status: changed.then_some(status), ..plan }
}

/// Whether `object` has an owner reference to the TrainJob with `uid`.
fn owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
}

/// Whether every field `desired` sets has that value in `observed`: the
/// fields a server-side apply manages. Fields the server adds (defaults,
/// status, resourceVersion) do not count; arrays must match element by
/// element; numbers compare by value; an empty object or array matches an
/// absent field (the server drops them). O(size of `desired`).
///
/// ```
/// use kf_train::controller::plan::is_subset;
/// use serde_json::json;
/// let desired = json!({"spec": {"replicas": 2, "template": [{"name": "node"}]}});
/// let observed = json!({"spec": {"replicas": 2.0, "template": [{"name": "node", "restartPolicy": "Never"}]}, "status": {}});
/// assert!(is_subset(&desired, &observed));
/// assert!(!is_subset(&json!({"spec": {"replicas": 3}}), &observed));
/// ```
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d.iter().all(|(k, v)| match o.get(k) {
            Some(w) => is_subset(v, w),
            None => is_empty(v),
        }),
        (Value::Array(d), Value::Array(o)) => d.len() == o.len() && d.iter().zip(o).all(|(v, w)| is_subset(v, w)),
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (d, o) => d == o || (is_empty(d) && o.is_null()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::{COMPLETE, SUSPENDED, is_true};
    use proptest::prelude::*;

    fn runtime(pod_group: Option<Value>) -> TrainingRuntime {
        let mut doc = json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
            "metadata": {"name": "torch-distributed"},
            "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}, "template": {"spec": {"replicatedJobs": [{
                "name": "node",
                "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                             "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "pytorch"}]}}}}}]}}},
        });
        if let Some(policy) = pod_group {
            doc["spec"]["podGroupPolicy"] = policy;
        }
        TrainingRuntime::from_value(doc).unwrap()
    }

    fn job(nodes: i64, suspend: Option<bool>) -> TrainJob {
        let mut doc = json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "mnist", "namespace": "team-a", "uid": "uid-1"},
            "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": nodes}},
        });
        if let Some(s) = suspend {
            doc["spec"]["suspend"] = json!(s);
        }
        TrainJob::from_value(doc).unwrap()
    }

    /// What the API server would return for applied children: the applied
    /// fields plus some of its own (metadata, defaults), no status yet.
    fn as_server_returns(children: &[Value]) -> Observed {
        let children = children
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c["metadata"]["resourceVersion"] = json!("7");
                c["metadata"]["uid"] = json!("child-uid");
                if c["kind"] == "JobSet" {
                    c["spec"]["successPolicy"] = json!({"operator": "All"});
                }
                c
            })
            .collect();
        Observed { children }
    }

    fn settle(job: &TrainJob, plan: &Plan) -> (TrainJob, Observed) {
        let mut next = job.clone();
        if let Some(status) = &plan.status {
            next.status = Some(status.clone());
        }
        (next, as_server_returns(&plan.desired))
    }

    #[test]
    fn first_reconcile_applies_the_rendering_with_owner_and_label() {
        let rt = runtime(Some(json!({"coscheduling": {"scheduleTimeoutSeconds": 60}})));
        let plan = reconcile_plan(&job(2, None), Runtime::Found(&rt), &Observed::default(), "t");
        let kinds: Vec<_> = plan.apply.iter().map(|c| child_key(c).1).collect();
        assert_eq!(kinds, ["PodGroup", "JobSet"]);
        for child in &plan.apply {
            assert_eq!(child["metadata"]["ownerReferences"][0]["uid"], "uid-1");
            assert_eq!(child["metadata"]["ownerReferences"][0]["controller"], true);
            assert_eq!(child["metadata"]["labels"][TRAINJOB_NAME_LABEL], "mnist");
        }
        assert_eq!(plan.apply[1]["spec"]["suspend"], false);
        assert_eq!(plan.apply[0]["spec"]["minMember"], 2);
        assert!(is_true(plan.status.as_ref(), CREATED));
        assert_eq!(plan.next, Next::AwaitChange);
    }

    #[test]
    fn suspend_suspends_the_job_set_and_says_so() {
        let rt = runtime(None);
        let plan = reconcile_plan(&job(1, Some(true)), Runtime::Found(&rt), &Observed::default(), "t");
        assert_eq!(plan.apply[0]["spec"]["suspend"], true);
        assert!(is_true(plan.status.as_ref(), SUSPENDED));
        // Resuming changes the JobSet.
        let (mut suspended, observed) = settle(&job(1, Some(true)), &plan);
        if let Some(spec) = &mut suspended.spec {
            spec.suspend = Some(false);
        }
        let resumed = reconcile_plan(&suspended, Runtime::Found(&rt), &observed, "t2");
        assert_eq!(resumed.apply.len(), 1);
        assert_eq!(resumed.apply[0]["spec"]["suspend"], false);
        assert!(!is_true(resumed.status.as_ref(), SUSPENDED));
    }

    #[test]
    fn a_suspended_volcano_job_gets_its_pod_group_on_resume() {
        let rt = runtime(Some(json!({"volcano": {}})));
        let suspended = reconcile_plan(&job(2, Some(true)), Runtime::Found(&rt), &Observed::default(), "t");
        assert_eq!(suspended.apply.iter().map(|c| child_key(c).1).collect::<Vec<_>>(), ["JobSet"]);
        let (mut resumed, observed) = settle(&job(2, Some(true)), &suspended);
        if let Some(spec) = &mut resumed.spec {
            spec.suspend = None;
        }
        let plan = reconcile_plan(&resumed, Runtime::Found(&rt), &observed, "t2");
        assert_eq!(plan.apply.iter().map(|c| child_key(c).1).collect::<Vec<_>>(), ["PodGroup", "JobSet"]);
        assert_eq!(plan.apply[1]["spec"]["suspend"], false);
        // Coscheduling keeps its PodGroup while suspended.
        let rt = runtime(Some(json!({"coscheduling": {}})));
        let plan = reconcile_plan(&job(2, Some(true)), Runtime::Found(&rt), &Observed::default(), "t");
        assert_eq!(plan.apply.len(), 2);
    }

    #[test]
    fn an_unreadable_runtime_is_a_condition_with_its_path() {
        let err = TrainingRuntime::from_value(
            json!({"apiVersion": "x", "kind": "y", "spec": {"mlPolicy": {"numNodes": "many"}}}),
        )
        .unwrap_err();
        let plan = reconcile_plan(&job(1, None), Runtime::Unreadable(&err), &Observed::default(), "t");
        let cond = plan.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c[0].clone()).unwrap();
        assert_eq!(cond.reason.as_deref(), Some(JOBS_BUILD_FAILED));
        assert!(cond.message.as_deref().unwrap().starts_with("runtime.spec.mlPolicy.numNodes"), "{cond:?}");
        assert_eq!(plan.next, Next::Retry);
    }

    #[test]
    fn other_managers_and_deletions_are_left_alone() {
        let rt = runtime(None);
        let mut other = job(1, None);
        if let Some(spec) = &mut other.spec {
            spec.managed_by = Some(crate::trainjob::MANAGED_BY_MULTIKUEUE.into());
        }
        assert_eq!(reconcile_plan(&other, Runtime::Found(&rt), &Observed::default(), "t"), Plan::idle());
        let mut deleting = job(1, None);
        if let Some(meta) = &mut deleting.metadata {
            meta.extra.insert("deletionTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        }
        assert_eq!(reconcile_plan(&deleting, Runtime::Found(&rt), &Observed::default(), "t"), Plan::idle());
    }

    #[test]
    fn bad_input_is_a_condition_naming_the_field() {
        let rt = runtime(None);
        let mut bad = job(1, None);
        if let Some(spec) = &mut bad.spec {
            spec.runtime_ref = None;
        }
        let plan = reconcile_plan(&bad, Runtime::Found(&rt), &Observed::default(), "t");
        assert!(plan.apply.is_empty());
        let cond = plan.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c[0].clone()).unwrap();
        assert_eq!(cond.reason.as_deref(), Some(INVALID_SPEC));
        assert!(cond.message.as_deref().unwrap().starts_with("spec.runtimeRef"), "{cond:?}");
        assert_eq!(plan.next, Next::AwaitChange);

        let plan = reconcile_plan(&job(1, None), Runtime::Missing, &Observed::default(), "t");
        let cond = plan.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c[0].clone()).unwrap();
        assert_eq!(cond.reason.as_deref(), Some(RUNTIME_NOT_FOUND));
        assert_eq!(
            cond.message.as_deref(),
            Some("spec.runtimeRef: ClusterTrainingRuntime \"torch-distributed\" not found")
        );
        assert_eq!(plan.next, Next::Retry);
        // The same condition again is no write, but still a retry.
        let (again, observed) = settle(&job(1, None), &plan);
        let second = reconcile_plan(&again, Runtime::Missing, &observed, "t2");
        assert!(!second.writes());
        assert_eq!(second.next, Next::Retry);

        let mut no_template = runtime(None);
        if let Some(spec) = &mut no_template.spec {
            spec.template = None;
        }
        let plan = reconcile_plan(&job(1, None), Runtime::Found(&no_template), &Observed::default(), "t");
        let cond = plan.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c[0].clone()).unwrap();
        assert_eq!(cond.reason.as_deref(), Some(JOBS_BUILD_FAILED));
        assert!(cond.message.as_deref().unwrap().contains("runtime.spec.template"), "{cond:?}");
        assert_eq!(plan.next, Next::Retry);
    }

    fn mpi_runtime() -> TrainingRuntime {
        TrainingRuntime::from_value(json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
            "metadata": {"name": "torch-distributed"},
            "spec": {"mlPolicy": {"numNodes": 1, "mpi": {"numProcPerNode": 1, "sshAuthMountPath": "/home/mpi/.ssh"}},
                "template": {"spec": {"replicatedJobs": [
                    {"name": "launcher", "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                        "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "mpi"}]}}}}},
                    {"name": "node", "template": {"spec": {"template": {"spec": {"containers": [{"name": "node", "image": "mpi"}]}}}}}]}}},
        }))
        .unwrap()
    }

    #[test]
    fn an_mpi_job_plans_its_ssh_secret_first_without_keys_and_never_rewrites_it() {
        let rt = mpi_runtime();
        let first = reconcile_plan(&job(2, None), Runtime::Found(&rt), &Observed::default(), "t");
        let kinds: Vec<_> = first.apply.iter().map(|c| child_key(c).1).collect();
        assert_eq!(kinds, ["Secret", "ConfigMap", "JobSet"]);
        let secret = &first.apply[0];
        assert!(needs_key_material(secret));
        assert_eq!(secret["metadata"]["name"], "mnist-mpi-ssh-auth");
        assert_eq!(secret["type"], "kubernetes.io/ssh-auth");
        assert_eq!(secret["immutable"], true);
        assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(secret["metadata"]["labels"][TRAINJOB_NAME_LABEL], "mnist");
        assert!(first.apply[1..].iter().all(|c| !needs_key_material(c)));
        assert!(is_true(first.status.as_ref(), CREATED));
        // Stored with the keys the shell made: nothing to rewrite.
        let (settled, mut observed) = settle(&job(2, None), &first);
        observed.children[0]["data"] = json!({"ssh-privatekey": "UFJJVkFURQ==", "ssh-publickey": "UFVCTElD"});
        let again = reconcile_plan(&settled, Runtime::Found(&rt), &observed, "t2");
        assert!(!again.writes(), "{again:?}");
        // A Secret of that name the job does not own is left alone.
        let mut foreign = observed.children[0].clone();
        foreign["metadata"]["ownerReferences"] = json!([]);
        let blocked = reconcile_plan(&job(2, None), Runtime::Found(&rt), &Observed { children: vec![foreign] }, "t");
        assert!(blocked.apply.is_empty());
        let cond = blocked.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c[0].clone()).unwrap();
        assert_eq!(cond.reason.as_deref(), Some(CHILD_NOT_OWNED));
        assert!(cond.message.as_deref().unwrap().starts_with("Secret \"mnist-mpi-ssh-auth\""), "{cond:?}");
    }

    #[test]
    fn a_child_owned_by_someone_else_is_not_touched() {
        let rt = runtime(None);
        let first = reconcile_plan(&job(1, None), Runtime::Found(&rt), &Observed::default(), "t");
        let mut foreign = first.desired[0].clone();
        foreign["metadata"]["ownerReferences"] = json!([{"uid": "someone-else", "kind": "Deployment"}]);
        let plan = reconcile_plan(&job(1, None), Runtime::Found(&rt), &Observed { children: vec![foreign] }, "t");
        assert!(plan.apply.is_empty());
        let cond = plan.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c[0].clone()).unwrap();
        assert_eq!(cond.reason.as_deref(), Some(CHILD_NOT_OWNED));
        assert_eq!(plan.next, Next::Retry);
    }

    #[test]
    fn a_finished_job_is_not_reapplied() {
        let rt = runtime(None);
        let plan = reconcile_plan(&job(1, None), Runtime::Found(&rt), &Observed::default(), "t");
        let (settled, mut observed) = settle(&job(1, None), &plan);
        observed.children[0]["status"] = json!({"conditions": [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted", "message": "done"}]});
        let done = reconcile_plan(&settled, Runtime::Found(&rt), &observed, "t2");
        assert!(is_true(done.status.as_ref(), COMPLETE));
        let (finished, _) = settle(&settled, &done);
        // Even with the runtime gone and the JobSet edited, nothing is applied.
        let later = reconcile_plan(&finished, Runtime::Missing, &Observed::default(), "t3");
        assert_eq!(later, Plan::idle());
    }

    proptest! {
        /// Applying a plan's children and status, as the server returns them,
        /// leaves nothing to write.
        #[test]
        fn plans_are_idempotent(
            nodes in 1i64..6,
            suspend in prop::option::of(any::<bool>()),
            pod_group in prop::sample::select(vec![
                None,
                Some(json!({"coscheduling": {}})),
                Some(json!({"volcano": {}})),
            ]),
        ) {
            let rt = runtime(pod_group);
            let job = job(nodes, suspend);
            let first = reconcile_plan(&job, Runtime::Found(&rt), &Observed::default(), "t1");
            prop_assert!(first.writes());
            prop_assert_eq!(&first.apply, &first.desired);
            let (settled, observed) = settle(&job, &first);
            let second = reconcile_plan(&settled, Runtime::Found(&rt), &observed, "t2");
            prop_assert!(!second.writes(), "{:?}", second);
            prop_assert_eq!(second.desired, first.desired);
        }

        /// A changed node count is a changed JobSet, and only that is applied.
        #[test]
        fn a_spec_change_applies_only_what_changed(nodes in 1i64..6, more in 1i64..4) {
            let rt = runtime(None);
            let first = reconcile_plan(&job(nodes, None), Runtime::Found(&rt), &Observed::default(), "t1");
            let (_, observed) = settle(&job(nodes, None), &first);
            let mut bigger = job(nodes + more, None);
            bigger.status = first.status.clone();
            let second = reconcile_plan(&bigger, Runtime::Found(&rt), &observed, "t2");
            prop_assert_eq!(second.apply.len(), 1);
            prop_assert_eq!(second.status, None);
        }
    }
}
