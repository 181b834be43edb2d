//! The InferenceService status this controller owns, in KServe's shape:
//! `url`, `address.url`, `deploymentMode`, `components.predictor` (URL, revisions, traffic
//! split), the conditions `PredictorReady` and `Ready`, and
//! `observedGeneration`.
//!
//! `Ready` means requests are answered (at least one available replica,
//! old pods included while a rollout runs); `latestReadyRevision` moves to
//! the latest revision only once the Deployment's rollout is complete.
//!
//! Pure: the time is an argument. A condition keeps its
//! `lastTransitionTime` unless its status flips, so deriving twice from the
//! same inputs gives the same status (no write). Conditions of other types
//! (written by someone else) are kept in place.

use serde_json::{Value, json};

use super::plan::{Rollout, predictor_url};
use crate::kserve::InferenceService;

/// Condition type: the predictor's Deployment has an available replica.
pub const PREDICTOR_READY: &str = "PredictorReady";
/// Condition type: the InferenceService serves (here: the predictor does).
pub const READY: &str = "Ready";
/// Reason: the InferenceService fails validation.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Reason (KServe's): `kf serve` cannot serve this predictor.
pub const NO_SUPPORTING_RUNTIME: &str = "NoSupportingRuntime";
/// Reason: a child's name is held by an object this InferenceService does
/// not own; the controller leaves that object alone.
pub const CHILD_NOT_OWNED: &str = "ChildNotOwned";
/// Reason: the Deployment has no available replica (yet).
pub const DEPLOYMENT_UNAVAILABLE: &str = "DeploymentUnavailable";

/// Whether the predictor serves, from its Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// At least one replica is available: requests are answered (by the
    /// previous pods while a rollout runs, as KServe's `Ready` does).
    pub ready: bool,
    /// Why not, when not.
    pub message: String,
    /// The Deployment's rollout is complete (as `kubectl rollout status`
    /// sees it: the controller observed the latest generation, every
    /// replica runs the latest template, no old pod is left, one is
    /// available), so the latest revision is the one serving.
    pub rolled_out: bool,
}

impl Readiness {
    /// From the observed Deployment named `name` (`None`: not there yet).
    pub fn of(deployment: Option<&Value>, name: &str) -> Readiness {
        let number = |p: &str| deployment.and_then(|d| d.pointer(p)).and_then(Value::as_i64);
        let available = number("/status/availableReplicas").unwrap_or(0);
        let updated = number("/status/updatedReplicas").unwrap_or(0);
        let rolled_out = available > 0
            && number("/status/observedGeneration") >= number("/metadata/generation")
            && number("/metadata/generation").is_some()
            && updated >= number("/spec/replicas").unwrap_or(1)
            && number("/status/replicas").unwrap_or(0) <= updated;
        let (ready, message) = match deployment {
            _ if available > 0 => (true, String::new()),
            None => (false, format!("Deployment {name:?} does not exist yet")),
            Some(_) => (false, format!("Deployment {name:?} has no available replica")),
        };
        Readiness { ready, message, rolled_out }
    }
}

/// Sets the condition `type_`: unchanged when it already says the same;
/// reason and message updated in place when only they differ; a new
/// `lastTransitionTime` (`now`) when its status flips or it is new. A
/// `True` condition carries no reason or message.
pub fn set_condition(conditions: &mut Vec<Value>, type_: &str, status: bool, reason: &str, message: &str, now: &str) {
    let text = if status { "True" } else { "False" };
    let mut wanted = json!({"type": type_, "status": text});
    if !status {
        wanted["reason"] = json!(reason);
        wanted["message"] = json!(message);
    }
    match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(type_)) {
        Some(c) => {
            let time = c.get("lastTransitionTime").cloned().filter(|_| c.get("status") == wanted.get("status"));
            wanted["lastTransitionTime"] = time.unwrap_or_else(|| json!(now));
            *c = wanted;
        }
        None => {
            wanted["lastTransitionTime"] = json!(now);
            conditions.push(wanted);
        }
    }
}

fn current(isvc: &InferenceService) -> Value {
    isvc.status.clone().filter(Value::is_object).unwrap_or_else(|| json!({}))
}

fn conditions(status: &Value) -> Vec<Value> {
    status.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn with_generation(isvc: &InferenceService, mut status: Value) -> Value {
    if let Some(generation) = isvc.metadata.as_ref().and_then(|m| m.extra.get("generation")).filter(|g| g.is_i64()) {
        status["observedGeneration"] = generation.clone();
    }
    status
}

/// The status of a served InferenceService: its URL, the revisions and the
/// traffic split of `rollout`, and `PredictorReady` / `Ready` from
/// `readiness`. O(conditions).
pub fn serving(isvc: &InferenceService, rollout: &Rollout, readiness: &Readiness, now: &str) -> Value {
    let name = isvc.name().unwrap_or_default();
    let namespace = isvc.metadata.as_ref().and_then(|m| m.namespace.as_deref()).unwrap_or_default();
    let url = predictor_url(name, namespace);
    let mut conds = conditions(&current(isvc));
    for type_ in [PREDICTOR_READY, READY] {
        set_condition(&mut conds, type_, readiness.ready, DEPLOYMENT_UNAVAILABLE, &readiness.message, now);
    }
    let (latest, traffic) = match &rollout.canary {
        Some((canary, percent)) => (
            canary,
            json!([
                {"tag": "prev", "revisionName": rollout.stable.name, "percent": 100 - percent, "latestRevision": false},
                {"tag": "latest", "revisionName": canary.name, "percent": percent, "latestRevision": true},
            ]),
        ),
        None => {
            (&rollout.stable, json!([{"revisionName": rollout.stable.name, "percent": 100, "latestRevision": true}]))
        }
    };
    let mut predictor = json!({
        "url": url,
        "latestCreatedRevision": latest.name,
        "latestRolledoutRevision": rollout.stable.name,
        "traffic": traffic,
    });
    // The newest revision seen fully rolled out; kept while the next rolls.
    let ready_revision = if readiness.rolled_out {
        Some(json!(latest.name))
    } else {
        current(isvc).pointer("/components/predictor/latestReadyRevision").cloned()
    };
    if let Some(revision) = ready_revision {
        predictor["latestReadyRevision"] = revision;
    }
    let status = json!({
        "url": url,
        "address": {"url": url},
        "deploymentMode": "RawDeployment",
        "components": {"predictor": predictor},
        "conditions": conds,
    });
    with_generation(isvc, status)
}

/// The status of an InferenceService that cannot be served as it is:
/// `Ready` `False` with `reason` and `message` (which names the field);
/// what the last served state wrote (URL, revisions) stays, as its
/// children keep running.
pub fn failed(isvc: &InferenceService, reason: &str, message: &str, now: &str) -> Value {
    let current = current(isvc);
    let mut conds = conditions(&current);
    set_condition(&mut conds, READY, false, reason, message, now);
    let mut status = json!({"conditions": conds});
    for field in ["url", "address", "deploymentMode", "components"] {
        if let Some(value) = current.get(field) {
            status[field] = value.clone();
        }
    }
    with_generation(isvc, status)
}

/// `wanted` when the InferenceService's status differs from it on the
/// fields it sets, else `None` (nothing to write).
pub fn changed(isvc: &InferenceService, wanted: Value) -> Option<Value> {
    (!super::plan::is_subset(&wanted, &current(isvc))).then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_time_unless_it_flips() {
        let mut conds = Vec::new();
        set_condition(&mut conds, READY, false, "R", "m", "t1");
        set_condition(&mut conds, READY, false, "R2", "m2", "t2");
        assert_eq!(
            conds,
            [json!({"type": READY, "status": "False", "reason": "R2", "message": "m2", "lastTransitionTime": "t1"})]
        );
        set_condition(&mut conds, READY, true, "", "", "t3");
        assert_eq!(conds, [json!({"type": READY, "status": "True", "lastTransitionTime": "t3"})]);
    }

    #[test]
    fn readiness_follows_available_replicas() {
        assert!(!Readiness::of(None, "d").ready);
        assert!(!Readiness::of(Some(&json!({"status": {"availableReplicas": 0}})), "d").ready);
        assert!(Readiness::of(Some(&json!({"status": {"availableReplicas": 2}})), "d").ready);
        let rolling = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
                             "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}});
        let r = Readiness::of(Some(&rolling), "d");
        assert!(r.ready && !r.rolled_out, "an old pod is left");
        let done = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
                          "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}});
        assert!(Readiness::of(Some(&done), "d").rolled_out);
        let stale = json!({"metadata": {"generation": 4}, "spec": {"replicas": 2},
                           "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert!(!Readiness::of(Some(&stale), "d").rolled_out, "the new spec is not observed yet");
    }
}
