//! TrainJob status from what the controller did and the JobSet's status: the
//! conditions `Created`, `Suspended`, `Complete`, `Failed` and `jobsStatus`.
//!
//! Pure: the time is an argument. A condition keeps its
//! `lastTransitionTime` unless its status flips, so deriving twice from the
//! same inputs gives the same status (no write). `Complete` and `Failed` are
//! terminal: once one is `True`, no condition changes again.

use serde_json::Value;

use crate::meta::{Condition, is_condition_reason};
use crate::trainjob::{JobStatus, TrainJob, TrainJobStatus};

/// Condition type: the JobSet (and PodGroup) exist, or could not be built.
pub const CREATED: &str = "Created";
/// Condition type: `spec.suspend` holds the JobSet suspended.
pub const SUSPENDED: &str = "Suspended";
/// Condition type: the JobSet completed (terminal).
pub const COMPLETE: &str = "Complete";
/// Condition type: the JobSet failed (terminal).
pub const FAILED: &str = "Failed";

/// `Created` reason once the children are applied (upstream's).
pub const JOBS_CREATION_SUCCEEDED: &str = "JobsCreationSucceeded";
/// `Created` reason when the runtime and job cannot become children.
pub const JOBS_BUILD_FAILED: &str = "JobsBuildFailed";
/// `Created` reason when the referenced runtime does not exist.
pub const RUNTIME_NOT_FOUND: &str = "RuntimeNotFound";
/// `Created` reason when the TrainJob fails validation.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// `Created` reason when a child's name is taken by an object this TrainJob
/// does not own; the controller leaves that object alone.
pub const CHILD_NOT_OWNED: &str = "ChildNotOwned";

/// A condition as the status should hold it: `(type, status, reason, message)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// Condition type.
    pub type_: &'a str,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'a str,
    /// Human-readable detail.
    pub message: &'a str,
}

/// Whether the condition `type_` is `True` in `status`.
pub fn is_true(status: Option<&TrainJobStatus>, type_: &str) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_.as_deref() == Some(type_) && c.status.as_deref() == Some("True"))
}

/// Whether the TrainJob has finished (`Complete` or `Failed` is `True`).
pub fn is_finished(job: &TrainJob) -> bool {
    let status = job.status.as_ref();
    is_true(status, COMPLETE) || is_true(status, FAILED)
}

/// Sets one condition: unchanged when it already says the same; reason and
/// message updated in place when only they differ; a new
/// `lastTransitionTime` (`now`) when its status flips or it is new.
pub fn set_condition(conditions: &mut Vec<Condition>, wanted: &Wanted<'_>, now: &str) {
    let status = if wanted.status { "True" } else { "False" };
    let fresh = |c: &mut Condition| {
        c.reason = Some(wanted.reason.to_string());
        c.message = Some(wanted.message.to_string());
    };
    match conditions.iter_mut().find(|c| c.type_.as_deref() == Some(wanted.type_)) {
        Some(c) if c.status.as_deref() == Some(status) => fresh(c),
        Some(c) => {
            c.status = Some(status.into());
            c.last_transition_time = Some(now.into());
            fresh(c);
        }
        None => conditions.push(Condition {
            type_: Some(wanted.type_.into()),
            status: Some(status.into()),
            reason: Some(wanted.reason.into()),
            message: Some(wanted.message.into()),
            last_transition_time: Some(now.into()),
            ..Default::default()
        }),
    }
}

/// The status to hold: the job's current status with `created` (when the
/// children exist or are about to, or why they cannot) and the suspension
/// applied, then the JobSet's `Completed` / `Failed` conditions as
/// `Complete` / `Failed` and its `replicatedJobsStatus` as `jobsStatus`.
/// A finished job's conditions are never changed. O(C + R) for C
/// conditions and R replicated jobs.
///
/// ```
/// use kf_train::TrainJob;
/// use kf_train::controller::status::{COMPLETE, JOBS_CREATION_SUCCEEDED, Wanted, CREATED, derive_status, is_true};
/// use serde_json::json;
///
/// let job = TrainJob::from_value(json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
///     "metadata": {"name": "mnist"}, "spec": {"runtimeRef": {"name": "torch-distributed"}},
/// }))?;
/// let job_set = json!({"status": {
///     "conditions": [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted", "message": "jobset completed successfully"}],
///     "replicatedJobsStatus": [{"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}],
/// }});
/// let created = Wanted { type_: CREATED, status: true, reason: JOBS_CREATION_SUCCEEDED, message: "Succeeded to create Jobs" };
/// let status = derive_status(&job, Some(&created), Some(&job_set), "2026-01-01T00:00:00Z");
/// assert!(is_true(Some(&status), COMPLETE));
/// assert_eq!(status.jobs_status.unwrap()[0].succeeded, Some(1));
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn derive_status(
    job: &TrainJob,
    created: Option<&Wanted<'_>>,
    job_set: Option<&Value>,
    now: &str,
) -> TrainJobStatus {
    let mut status = job.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    if !is_finished(job) {
        if let Some(created) = created {
            set_condition(&mut conditions, created, now);
        }
        let was_suspended =
            conditions.iter().any(|c| c.type_.as_deref() == Some(SUSPENDED) && c.status.as_deref() == Some("True"));
        if job.suspended() {
            let wanted =
                Wanted { type_: SUSPENDED, status: true, reason: "Suspended", message: "TrainJob is suspended" };
            set_condition(&mut conditions, &wanted, now);
        } else if was_suspended {
            let wanted = Wanted { type_: SUSPENDED, status: false, reason: "Resumed", message: "TrainJob is resumed" };
            set_condition(&mut conditions, &wanted, now);
        }
        for (from, to, default_reason) in
            [("Completed", COMPLETE, "JobSetCompleted"), ("Failed", FAILED, "JobSetFailed")]
        {
            if let Some(c) = job_set_condition(job_set, from) {
                let reason = c.get("reason").and_then(Value::as_str).filter(|r| is_condition_reason(r));
                let message = c.get("message").and_then(Value::as_str).unwrap_or_default();
                let wanted = Wanted { type_: to, status: true, reason: reason.unwrap_or(default_reason), message };
                set_condition(&mut conditions, &wanted, now);
                break;
            }
        }
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    if let Some(jobs) = job_set.and_then(|j| j.pointer("/status/replicatedJobsStatus")).and_then(Value::as_array) {
        status.jobs_status = Some(jobs.iter().map(job_status).collect());
    }
    status
}

/// The JobSet's condition `type_` when it is `True`.
fn job_set_condition<'a>(job_set: Option<&'a Value>, type_: &str) -> Option<&'a Value> {
    job_set?.pointer("/status/conditions")?.as_array()?.iter().find(|c| {
        c.get("type").and_then(Value::as_str) == Some(type_) && c.get("status").and_then(Value::as_str) == Some("True")
    })
}

/// One `replicatedJobsStatus` entry as a `jobsStatus` entry.
fn job_status(entry: &Value) -> JobStatus {
    let count = |field: &str| entry.get(field).and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok());
    JobStatus {
        name: entry.get("name").and_then(Value::as_str).map(str::to_string),
        ready: count("ready"),
        succeeded: count("succeeded"),
        failed: count("failed"),
        active: count("active"),
        suspended: count("suspended"),
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn job(suspend: Option<bool>, status: Option<Value>) -> TrainJob {
        let mut doc = json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "mnist"}, "spec": {"runtimeRef": {"name": "torch-distributed"}},
        });
        if let Some(s) = suspend {
            doc["spec"]["suspend"] = json!(s);
        }
        if let Some(s) = status {
            doc["status"] = s;
        }
        TrainJob::from_value(doc).unwrap_or_else(|e| panic!("{e}"))
    }

    const CREATED_OK: Wanted<'static> =
        Wanted { type_: CREATED, status: true, reason: JOBS_CREATION_SUCCEEDED, message: "Succeeded to create Jobs" };

    fn job_set(condition: Option<(&str, &str)>) -> Value {
        let conditions: Vec<Value> = condition
            .map(|(t, s)| json!({"type": t, "status": s, "reason": "R", "message": "m"}))
            .into_iter()
            .collect();
        json!({"status": {"conditions": conditions}})
    }

    #[test]
    fn suspend_then_resume() {
        let suspended = derive_status(&job(Some(true), None), Some(&CREATED_OK), None, "t1");
        let cond = |s: &TrainJobStatus, t: &str| {
            s.conditions.iter().flatten().find(|c| c.type_.as_deref() == Some(t)).cloned()
        };
        let c = cond(&suspended, SUSPENDED).unwrap_or_default();
        assert_eq!((c.status.as_deref(), c.reason.as_deref()), (Some("True"), Some("Suspended")));
        let status = serde_json::to_value(&suspended).unwrap_or_default();
        let resumed = derive_status(&job(Some(false), Some(status)), Some(&CREATED_OK), None, "t2");
        let c = cond(&resumed, SUSPENDED).unwrap_or_default();
        assert_eq!((c.status.as_deref(), c.reason.as_deref()), (Some("False"), Some("Resumed")));
        assert_eq!(c.last_transition_time.as_deref(), Some("t2"));
        // Created kept its time: it did not flip.
        assert_eq!(cond(&resumed, CREATED).and_then(|c| c.last_transition_time).as_deref(), Some("t1"));
    }

    #[test]
    fn a_never_suspended_job_has_no_suspended_condition() {
        let status = derive_status(&job(None, None), Some(&CREATED_OK), None, "t");
        assert!(status.conditions.iter().flatten().all(|c| c.type_.as_deref() != Some(SUSPENDED)));
    }

    #[test]
    fn failed_job_set_fails_the_job_and_invalid_reasons_are_replaced() {
        let js = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "not camel!", "message": "boom"}]}});
        let status = derive_status(&job(None, None), Some(&CREATED_OK), Some(&js), "t");
        let failed = status.conditions.iter().flatten().find(|c| c.type_.as_deref() == Some(FAILED)).cloned();
        let failed = failed.unwrap_or_default();
        assert_eq!(failed.reason.as_deref(), Some("JobSetFailed"));
        assert_eq!(failed.message.as_deref(), Some("boom"));
        // What we write passes the CRD's own condition rules.
        let mut written = job(None, None);
        written.status = Some(status);
        assert_eq!(written.validate(), Ok(()));
    }

    proptest! {
        /// Once Complete or Failed, no later input changes any condition.
        #[test]
        fn finished_never_regresses(
            terminal in prop::sample::select(vec![COMPLETE, FAILED]),
            suspend in prop::option::of(any::<bool>()),
            js in prop::option::of(prop::option::of((
                prop::sample::select(vec!["Completed", "Failed", "Suspended"]),
                prop::sample::select(vec!["True", "False"]),
            ))),
            created in any::<bool>(),
        ) {
            let first = derive_status(&job(None, None), Some(&CREATED_OK), None, "t0");
            let mut conditions = first.conditions.clone().unwrap_or_default();
            set_condition(&mut conditions, &Wanted { type_: terminal, status: true, reason: "Done", message: "" }, "t1");
            let before = TrainJobStatus { conditions: Some(conditions), ..first };
            let status = serde_json::to_value(&before).unwrap_or_default();
            let j = job(suspend, Some(status));
            let other = Wanted { type_: CREATED, status: created, reason: JOBS_BUILD_FAILED, message: "x" };
            let js = js.map(job_set);
            let after = derive_status(&j, Some(&other), js.as_ref(), "t2");
            prop_assert_eq!(after.conditions, before.conditions);
        }

        /// Deriving from the status just derived changes nothing.
        #[test]
        fn derive_is_idempotent(
            suspend in prop::option::of(any::<bool>()),
            js in prop::option::of(prop::option::of((
                prop::sample::select(vec!["Completed", "Failed", "Suspended"]),
                prop::sample::select(vec!["True", "False"]),
            ))),
        ) {
            let js = js.map(job_set);
            let once = derive_status(&job(suspend, None), Some(&CREATED_OK), js.as_ref(), "t1");
            let status = serde_json::to_value(&once).unwrap_or_default();
            let twice = derive_status(&job(suspend, Some(status)), Some(&CREATED_OK), js.as_ref(), "t2");
            prop_assert_eq!(twice, once);
        }
    }
}
