//! The Experiment reconciler's API conversation (feature `controller`),
//! against kube's mock service: every request's method, path and query
//! (label selector; field manager `kf-tune`, `force` for applies), content
//! type and JSON body is asserted, in order, and nothing else may be asked.
//! What the reconciler decides is unit-tested in
//! `kf_tune::controller::plan`; here only what it says to the API server.
//! The Experiment is ../shared/corpus/katib's median-stop example.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kf_tune::controller::{
    ASSIGNMENT_ANNOTATION, Config, Context, EXPERIMENT_LABEL, FIELD_MANAGER, METRICS_ANNOTATION, Observed,
    STOPPED_ANNOTATION, TRIAL_LABEL, api_resource, error_policy, reconcile, reconcile_plan,
};
use kf_tune::{Error, Experiment};
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tower_test::mock;

const NOW: &str = "2026-12-07T12:00:00Z";
const LATER: &str = "2026-12-07T12:05:00Z";
const UID: &str = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
/// The query kube writes for `PatchParams::apply("kf-tune").force()`.
const APPLY: &str = "?&force=true&fieldManager=kf-tune";
/// The query of a merge patch with the field manager.
const MERGE: &str = "?&fieldManager=kf-tune";
const JOBS: &str = "/apis/batch/v1/namespaces/kubeflow/jobs";
const LIST: &str =
    "/apis/batch/v1/namespaces/kubeflow/jobs?&labelSelector=katib.kubeflow.org%2Fexperiment%3Dmedian-stop";
const STATUS: &str = "/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments/median-stop/status";

/// The corpus Experiment as the API server returns it: with a uid.
fn median_stop() -> Value {
    let path = format!(
        "{}/../../shared/corpus/katib/examples__v1beta1__early-stopping__median-stop.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["metadata"]["uid"] = json!(UID);
    doc["metadata"]["resourceVersion"] = json!("100");
    doc["metadata"]["generation"] = json!(1);
    doc
}

/// What the pure core plans for `experiment` with these trials: the tests
/// assert that the shell says exactly that to the API server.
fn planned(experiment: &Value, trials: &[Value], now: &str) -> kf_tune::controller::Plan {
    let experiment = Experiment::from_value(experiment.clone()).unwrap();
    let children = trials.iter().cloned().map(with_kind).collect();
    reconcile_plan(&experiment, &Observed { children }, now)
}

fn with_kind(mut job: Value) -> Value {
    job["apiVersion"] = json!("batch/v1");
    job["kind"] = json!("Job");
    job
}

/// A created trial as the server stores it: its fields, its own metadata,
/// defaults, and a status.
fn as_stored(mut object: Value, resource_version: &str) -> Value {
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    object["metadata"]["uid"] = json!(format!("uid-of-{name}"));
    object["metadata"]["resourceVersion"] = json!(resource_version);
    object["metadata"]["creationTimestamp"] = json!("2026-12-07T11:59:00Z");
    object["spec"]["backoffLimit"] = json!(6);
    object["spec"]["suspend"] = json!(false);
    object["status"] = json!({"active": 1, "ready": 1});
    object
}

/// A list reply: items without apiVersion and kind, as the server sends them.
fn list(items: &[Value]) -> (u16, Value) {
    let items: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut i = i.clone();
            let map = i.as_object_mut().unwrap();
            map.remove("apiVersion");
            map.remove("kind");
            i
        })
        .collect();
    (200, json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": "50"}, "items": items}))
}

fn not_found(what: &str) -> (u16, Value) {
    status_reply(404, "NotFound", &format!("{what} not found"))
}

fn status_reply(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// One exchange: the request the reconciler must send and the reply.
struct Call {
    method: &'static str,
    uri: String,
    content_type: Option<&'static str>,
    body: Option<Value>,
    reply: (u16, Value),
}

fn get(uri: impl Into<String>, reply: (u16, Value)) -> Call {
    Call { method: "GET", uri: uri.into(), content_type: None, body: None, reply }
}

/// A server-side apply; the server echoes the object as stored.
fn apply(path: impl Into<String>, body: Value) -> Call {
    let reply = (200, body.clone());
    Call {
        method: "PATCH",
        uri: format!("{}{APPLY}", path.into()),
        content_type: Some("application/apply-patch+yaml"),
        body: Some(body),
        reply,
    }
}

/// A JSON merge patch (stopping a trial).
fn merge(path: impl Into<String>, body: Value, reply: Value) -> Call {
    Call {
        method: "PATCH",
        uri: format!("{}{MERGE}", path.into()),
        content_type: Some("application/merge-patch+json"),
        body: Some(body),
        reply: (200, reply),
    }
}

fn failing(mut call: Call, reply: (u16, Value)) -> Call {
    call.reply = reply;
    call
}

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// Answers the script in order, asserting each request, then asserts that
/// the client asks nothing more.
async fn serve(mut handle: Handle, script: Vec<Call>) {
    for (i, call) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let (request, respond) = next
            .unwrap_or_else(|_| panic!("request {i} ({} {}) never came", call.method, call.uri))
            .unwrap_or_else(|| panic!("the client hung up before request {i} ({} {})", call.method, call.uri));
        assert_eq!(request.method().as_str(), call.method, "request {i}: {}", request.uri());
        assert_eq!(request.uri().to_string(), call.uri, "request {i}");
        let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        if let Some(expected) = call.content_type {
            assert_eq!(content_type.as_deref(), Some(expected), "request {i}");
        }
        let bytes = request.into_body().collect_bytes().await.unwrap();
        match &call.body {
            Some(expected) => {
                let sent: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(&sent, expected, "request {i} ({} {}) body", call.method, call.uri);
            }
            None => assert!(bytes.is_empty(), "request {i}: a GET has no body"),
        }
        let (code, reply) = call.reply;
        // A text reply (a pod's log) goes out as it is, not as JSON.
        let body = match reply {
            Value::String(text) => text.into_bytes(),
            reply => serde_json::to_vec(&reply).unwrap(),
        };
        let response = Response::builder().status(code).body(Body::from(body));
        respond.send_response(response.unwrap());
    }
    let more = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    if let Ok(Some((request, _))) = more {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

/// One reconcile of `experiment` against `script` at `now`: its result and,
/// when it failed, the error policy's first two requeues.
struct Outcome {
    result: Result<Action, Error>,
    retries: Vec<Action>,
}

async fn reconcile_with(experiment: &Value, now: &'static str, script: Vec<Call>) -> Outcome {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let ctx = Arc::new(Context::new(client, Config::default()).with_clock(move || now.to_string()));
    let server = tokio::spawn(serve(handle, script));
    let object = Arc::new(serde_json::from_value::<DynamicObject>(experiment.clone()).unwrap());
    let result = reconcile(object.clone(), ctx.clone()).await;
    let retries = match &result {
        Ok(_) => Vec::new(),
        Err(err) => (0..2).map(|_| error_policy(object.clone(), err, ctx.clone())).collect(),
    };
    // The context holds the last client: dropping it hangs up, which the
    // server sees after its script (or an extra request, which fails it).
    drop(ctx);
    server.await.unwrap();
    Outcome { result, retries }
}

fn status_body(status: Value) -> Value {
    json!({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "median-stop", "namespace": "kubeflow"},
        "status": status,
    })
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, time: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": time, "lastTransitionTime": time})
}

fn kubernetes_status(result: &Result<Action, Error>) -> Option<u16> {
    match result {
        Err(Error::Kubernetes { status, .. }) => *status,
        other => panic!("expected a Kubernetes error, got {other:?}"),
    }
}

/// The experiment after its first reconcile: two trials created (as the
/// server stores them) and the status written.
fn after_first() -> (Value, Vec<Value>) {
    let mut experiment = median_stop();
    let plan = planned(&experiment, &[], NOW);
    experiment["status"] = serde_json::to_value(plan.status.unwrap()).unwrap();
    let trials = plan.create.into_iter().map(|t| as_stored(t, "2")).collect();
    (experiment, trials)
}

fn report(trial: &mut Value, losses: &[f64], complete: bool) {
    trial["metadata"]["annotations"][METRICS_ANNOTATION] = json!(json!({"loss": losses}).to_string());
    if complete {
        trial["status"] = json!({"succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]});
    }
}

#[tokio::test]
async fn first_reconcile_lists_checks_names_creates_two_trials_then_writes_the_status() {
    let experiment = median_stop();
    let plan = planned(&experiment, &[], NOW);
    let [first, second] = plan.create.as_slice() else { panic!("{plan:?}") };
    // What the shell sends is the core's plan; here, what that plan holds.
    assert_eq!(first["metadata"]["name"], "median-stop-0");
    assert_eq!(first["metadata"]["labels"], json!({EXPERIMENT_LABEL: "median-stop", TRIAL_LABEL: "median-stop-0"}));
    assert_eq!(
        first["metadata"]["ownerReferences"],
        json!([{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": "median-stop", "uid": UID,
                "controller": true, "blockOwnerDeletion": true}])
    );
    let recorded: Value =
        serde_json::from_str(first["metadata"]["annotations"][ASSIGNMENT_ANNOTATION].as_str().unwrap()).unwrap();
    let lr = recorded[0]["float"].as_f64().unwrap();
    assert!((0.01..=0.05).contains(&lr), "{recorded}");
    let command = &first["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(command[4], format!("--lr={lr}"));
    assert_ne!(first["metadata"]["annotations"], second["metadata"]["annotations"]);
    let outcome = reconcile_with(
        &experiment,
        NOW,
        vec![
            get(LIST, list(&[])),
            get(format!("{JOBS}/median-stop-0"), not_found("jobs median-stop-0")),
            get(format!("{JOBS}/median-stop-1"), not_found("jobs median-stop-1")),
            apply(format!("{JOBS}/median-stop-0"), first.clone()),
            apply(format!("{JOBS}/median-stop-1"), second.clone()),
            apply(
                STATUS,
                status_body(json!({
                    "startTime": NOW,
                    "conditions": [
                        condition("Created", "True", "ExperimentCreated", "Experiment is created", NOW),
                        condition("Running", "True", "ExperimentRunning", "Experiment is running", NOW),
                    ],
                    "currentOptimalTrial": {},
                    "runningTrialList": ["median-stop-0", "median-stop-1"],
                    "trials": 2, "trialsSucceeded": 0, "trialsFailed": 0, "trialsKilled": 0,
                    "trialsRunning": 2, "trialsEarlyStopped": 0,
                })),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    assert_eq!(FIELD_MANAGER, "kf-tune");
}

#[tokio::test]
async fn a_second_reconcile_that_changes_nothing_only_lists() {
    let (experiment, trials) = after_first();
    let outcome = reconcile_with(&experiment, LATER, vec![get(LIST, list(&trials))]).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// Trial 0 completed with its metrics: its slot goes to trial 2 and the
/// status counts it and names it the best.
#[tokio::test]
async fn a_trial_that_completed_frees_its_slot_and_updates_the_status() {
    let (experiment, mut trials) = after_first();
    report(&mut trials[0], &[0.5, 0.3, 0.2], true);
    let plan = planned(&experiment, &trials, LATER);
    let [third] = plan.create.as_slice() else { panic!("{plan:?}") };
    assert_eq!(third["metadata"]["name"], "median-stop-2");
    let status = serde_json::to_value(plan.status.unwrap()).unwrap();
    assert_eq!(status["trialsSucceeded"], 1);
    assert_eq!(status["succeededTrialList"], json!(["median-stop-0"]));
    assert_eq!(status["runningTrialList"], json!(["median-stop-1", "median-stop-2"]));
    assert_eq!(status["currentOptimalTrial"]["bestTrialName"], "median-stop-0");
    assert_eq!(
        status["currentOptimalTrial"]["observation"]["metrics"][0],
        json!({"name": "loss", "min": "0.2", "max": "0.5", "latest": "0.2"})
    );
    // Started at the first reconcile: the conditions keep that time.
    assert_eq!(
        (status["startTime"].as_str(), status["conditions"][1]["lastTransitionTime"].as_str()),
        (Some(NOW), Some(NOW))
    );
    let outcome = reconcile_with(
        &experiment,
        LATER,
        vec![
            get(LIST, list(&trials)),
            get(format!("{JOBS}/median-stop-2"), not_found("jobs median-stop-2")),
            apply(format!("{JOBS}/median-stop-2"), third.clone()),
            apply(STATUS, status_body(status)),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// Trial 1 reports worse than the median of trial 0's running average: it
/// is stopped with a merge patch (marked, suspended), after the new trials
/// that take both free slots are created.
#[tokio::test]
async fn a_trial_behind_the_median_is_stopped_with_a_merge_patch() {
    let (experiment, mut trials) = after_first();
    report(&mut trials[0], &[0.5, 0.3, 0.2], true);
    report(&mut trials[1], &[0.9, 0.8], false);
    let plan = planned(&experiment, &trials, LATER);
    let names: Vec<&str> = plan.create.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["median-stop-2", "median-stop-3"]);
    let status = serde_json::to_value(plan.status.unwrap()).unwrap();
    assert_eq!(status["earlyStoppedTrialList"], json!(["median-stop-1"]));
    let mut stopped = trials[1].clone();
    stopped["metadata"]["annotations"][STOPPED_ANNOTATION] = json!("EarlyStopped");
    stopped["spec"]["suspend"] = json!(true);
    let outcome = reconcile_with(
        &experiment,
        LATER,
        vec![
            get(LIST, list(&trials)),
            get(format!("{JOBS}/median-stop-2"), not_found("jobs median-stop-2")),
            get(format!("{JOBS}/median-stop-3"), not_found("jobs median-stop-3")),
            apply(format!("{JOBS}/median-stop-2"), plan.create[0].clone()),
            apply(format!("{JOBS}/median-stop-3"), plan.create[1].clone()),
            merge(
                format!("{JOBS}/median-stop-1"),
                json!({"metadata": {"annotations": {STOPPED_ANNOTATION: "EarlyStopped"}}, "spec": {"suspend": true}}),
                stopped,
            ),
            apply(STATUS, status_body(status)),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// No finalizer: the trials go with the Experiment through their owner
/// references, so a deleting Experiment is not even listed, let alone
/// anything deleted — not its trials, not someone else's finalizer.
#[tokio::test]
async fn deletion_issues_no_requests_at_all() {
    let (mut experiment, _) = after_first();
    experiment["metadata"]["deletionTimestamp"] = json!(LATER);
    experiment["metadata"]["finalizers"] = json!(["example.com/someone-elses"]);
    let outcome = reconcile_with(&experiment, LATER, vec![]).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// The second trial's apply fails: the first stays created (it is observed
/// next time), no status is written, the reconcile fails and is requeued
/// with growing backoff.
#[tokio::test]
async fn an_api_error_stops_the_reconcile_and_requeues_with_backoff() {
    let experiment = median_stop();
    let plan = planned(&experiment, &[], NOW);
    let outcome = reconcile_with(
        &experiment,
        NOW,
        vec![
            get(LIST, list(&[])),
            get(format!("{JOBS}/median-stop-0"), not_found("jobs median-stop-0")),
            get(format!("{JOBS}/median-stop-1"), not_found("jobs median-stop-1")),
            apply(format!("{JOBS}/median-stop-0"), plan.create[0].clone()),
            failing(
                apply(format!("{JOBS}/median-stop-1"), plan.create[1].clone()),
                status_reply(500, "InternalError", "etcdserver: request timed out"),
            ),
        ],
    )
    .await;
    assert_eq!(kubernetes_status(&outcome.result), Some(500));
    let message = outcome.result.unwrap_err().to_string();
    assert!(message.starts_with("apply Job kubeflow/median-stop-1: etcdserver"), "{message}");
    assert_eq!(outcome.retries, [Action::requeue(Duration::from_secs(5)), Action::requeue(Duration::from_secs(10))]);
}

/// The retry after a failure plans from what exists: trial 0 (created by
/// the failed reconcile) is observed and kept, only trial 1 is created.
#[tokio::test]
async fn the_retry_after_a_partial_reconcile_creates_only_what_is_missing() {
    let experiment = median_stop();
    let first = planned(&experiment, &[], NOW);
    let zero = as_stored(first.create[0].clone(), "2");
    let plan = planned(&experiment, std::slice::from_ref(&zero), NOW);
    let [one] = plan.create.as_slice() else { panic!("{plan:?}") };
    assert_eq!(one["metadata"]["name"], "median-stop-1");
    let status = serde_json::to_value(plan.status.unwrap()).unwrap();
    let outcome = reconcile_with(
        &experiment,
        NOW,
        vec![
            get(LIST, list(&[zero])),
            get(format!("{JOBS}/median-stop-1"), not_found("jobs median-stop-1")),
            apply(format!("{JOBS}/median-stop-1"), one.clone()),
            apply(STATUS, status_body(status)),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_conflict_on_the_status_is_an_error_and_a_retry() {
    let (experiment, mut trials) = after_first();
    report(&mut trials[0], &[0.5, 0.3, 0.2], true);
    let plan = planned(&experiment, &trials, LATER);
    let status = serde_json::to_value(plan.status.unwrap()).unwrap();
    let outcome = reconcile_with(
        &experiment,
        LATER,
        vec![
            get(LIST, list(&trials)),
            get(format!("{JOBS}/median-stop-2"), not_found("jobs median-stop-2")),
            apply(format!("{JOBS}/median-stop-2"), plan.create[0].clone()),
            failing(
                apply(STATUS, status_body(status)),
                status_reply(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on experiments.kubeflow.org \"median-stop\": the object has been modified",
                ),
            ),
        ],
    )
    .await;
    assert_eq!(kubernetes_status(&outcome.result), Some(409));
    assert_eq!(outcome.retries[0], Action::requeue(Duration::from_secs(5)));
}

/// A Job at a trial's name that the Experiment does not own is left alone:
/// no apply over it, a condition that says so, a retry with backoff.
#[tokio::test]
async fn a_trial_name_held_by_a_foreign_object_is_a_condition_not_a_takeover() {
    let experiment = median_stop();
    let mut foreign = as_stored(planned(&experiment, &[], NOW).create[0].clone(), "9");
    foreign["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "another-uid", "controller": true}]);
    let outcome = reconcile_with(
        &experiment,
        NOW,
        vec![
            get(LIST, list(&[])),
            get(format!("{JOBS}/median-stop-0"), (200, with_kind(foreign))),
            get(format!("{JOBS}/median-stop-1"), not_found("jobs median-stop-1")),
            apply(
                STATUS,
                status_body(json!({"conditions": [
                    condition("Created", "True", "ExperimentCreated", "Experiment is created", NOW),
                    condition("Running", "False", "ChildNotOwned",
                        "Job \"median-stop-0\" exists and is not owned by this Experiment; it is left alone", NOW),
                ]})),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::requeue(Duration::from_secs(5)));
}

/// An Experiment that does not even read (a string where a number belongs)
/// or fails validation gets a condition naming the field, reads nothing
/// else, and waits for an edit: no crash loop, no retry.
#[tokio::test]
async fn invalid_experiments_get_a_condition_naming_the_field() {
    let mut unreadable = median_stop();
    unreadable["spec"]["maxTrialCount"] = json!("fifteen");
    let mut invalid = median_stop();
    invalid["spec"]["parallelTrialCount"] = json!(0);
    for (experiment, path) in [(unreadable, "spec.maxTrialCount"), (invalid, "spec.parallelTrialCount")] {
        let error = Experiment::from_value(experiment.clone()).and_then(|e| e.validate()).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with(&format!("{path}: ")), "{message}");
        let outcome = reconcile_with(
            &experiment,
            NOW,
            vec![apply(
                STATUS,
                status_body(json!({"conditions": [condition("Created", "False", "InvalidSpec", &message, NOW)]})),
            )],
        )
        .await;
        assert_eq!(outcome.result.unwrap(), Action::await_change());
    }
}

/// The trialTemplate's kind decides the trials' resource: a TrainJob
/// experiment lists and creates TrainJobs, three at a time.
#[tokio::test]
async fn a_train_job_template_makes_train_job_trials() {
    let path = format!(
        "{}/../../shared/corpus/katib/examples__v1beta1__kubeflow-trainer__trainjob-pytorch.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut experiment: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    experiment["metadata"]["uid"] = json!(UID);
    let plan = reconcile_plan(&Experiment::from_value(experiment.clone()).unwrap(), &Observed::default(), NOW);
    assert_eq!(plan.create.len(), 3);
    assert_eq!(plan.create[0]["kind"], "TrainJob");
    assert!(plan.create[0]["spec"]["trainer"]["command"][3].as_str().unwrap().starts_with("--lr=0.0"));
    let trainjobs = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/kubeflow/trainjobs";
    let mut script = vec![get(
        format!("{trainjobs}?&labelSelector=katib.kubeflow.org%2Fexperiment%3Dtorch-distributed-example"),
        (
            200,
            json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJobList", "metadata": {}, "items": []}),
        ),
    )];
    for i in 0..3 {
        script.push(get(format!("{trainjobs}/torch-distributed-example-{i}"), not_found("trainjobs")));
    }
    for (i, trial) in plan.create.iter().enumerate() {
        script.push(apply(format!("{trainjobs}/torch-distributed-example-{i}"), trial.clone()));
    }
    let mut status = apply(
        "/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments/torch-distributed-example/status",
        json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
               "metadata": {"name": "torch-distributed-example", "namespace": "kubeflow"},
               "status": serde_json::to_value(plan.status.unwrap()).unwrap()}),
    );
    status.reply.1 = json!({});
    script.push(status);
    let outcome = reconcile_with(&experiment, NOW, script).await;
    // TrainJobs are not the watched trial kind (Jobs are): polled.
    assert_eq!(outcome.result.unwrap(), Action::requeue(Duration::from_secs(30)));
}

#[test]
fn trial_kinds_map_to_their_plural_resources() {
    assert_eq!(api_resource("kubeflow.org/v1beta1", "Experiment").plural, "experiments");
    assert_eq!(api_resource("batch/v1", "Job").plural, "jobs");
    assert_eq!(api_resource("trainer.kubeflow.org/v1alpha1", "TrainJob").plural, "trainjobs");
}

const PODS: &str = "/api/v1/namespaces/kubeflow/pods";

/// Trial 0's Job completed, its metrics only printed: no annotation.
fn completed_silently(trial: &mut Value) {
    trial["status"] = json!({"succeeded": 1, "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]});
}

/// The pods of trial `name`: a failed attempt and the one that succeeded.
fn pods_of(name: &str) -> (u16, Value) {
    let pod = |suffix: &str, phase: &str| {
        json!({"metadata": {"name": format!("{name}-{suffix}"), "namespace": "kubeflow",
                             "labels": {"batch.kubernetes.io/job-name": name}},
               "status": {"phase": phase}})
    };
    (
        200,
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "60"},
               "items": [pod("x7k2p", "Failed"), pod("b4n9q", "Succeeded")]}),
    )
}

fn pods_query(name: &str) -> String {
    format!("{PODS}?&labelSelector=batch.kubernetes.io%2Fjob-name%3D{name}")
}

fn log_query(pod: &str) -> String {
    format!("{PODS}/{pod}/log?&container=training-container")
}

/// What the mnist example prints, with the objective among other lines.
const LOG: &str = "Train Epoch: 1 [0/60000 (0%)]\tloss=2.3010\n\
    epoch 1:\nloss=0.5\nValidation-accuracy=0.81\n\
    epoch 2:\nloss=0.3\n\nepoch 3:\nloss=0.2\nDone, lr=0.02\n";

/// The annotation the controller records for [`LOG`]: only `loss`, the
/// experiment's one metric, in order.
fn recorded() -> Value {
    json!({"metadata": {"annotations": {METRICS_ANNOTATION: r#"{"loss":[2.301,0.5,0.3,0.2]}"#}}})
}

/// Trial 0 completed without reporting: its pods are listed, the log of
/// the one that succeeded is read (its primary container), the metrics are
/// recorded on the trial, and only then does the plan go on with them —
/// the same requests as when the trial annotates itself.
#[tokio::test]
async fn a_completed_trial_has_its_metrics_read_from_its_log_and_recorded_before_the_plan() {
    let (experiment, mut trials) = after_first();
    completed_silently(&mut trials[0]);
    let mut annotated = trials.clone();
    annotated[0]["metadata"]["annotations"][METRICS_ANNOTATION] =
        recorded()["metadata"]["annotations"][METRICS_ANNOTATION].clone();
    let plan = planned(&experiment, &annotated, LATER);
    let [third] = plan.create.as_slice() else { panic!("{plan:?}") };
    let status = serde_json::to_value(plan.status.unwrap()).unwrap();
    assert_eq!(status["succeededTrialList"], json!(["median-stop-0"]));
    assert_eq!(
        status["currentOptimalTrial"]["observation"]["metrics"][0],
        json!({"name": "loss", "min": "0.2", "max": "2.301", "latest": "0.2"})
    );
    let outcome = reconcile_with(
        &experiment,
        LATER,
        vec![
            get(LIST, list(&trials)),
            get(pods_query("median-stop-0"), pods_of("median-stop-0")),
            get(log_query("median-stop-0-b4n9q"), (200, json!(LOG))),
            merge(format!("{JOBS}/median-stop-0"), recorded(), with_kind(annotated[0].clone())),
            get(format!("{JOBS}/median-stop-2"), not_found("jobs median-stop-2")),
            apply(format!("{JOBS}/median-stop-2"), third.clone()),
            apply(STATUS, status_body(status)),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// Once recorded, the metrics are the trial's: the next reconcile (or a
/// restarted controller) lists the trials and reads no pod and no log.
#[tokio::test]
async fn a_recorded_trial_is_never_read_again() {
    let (mut experiment, mut trials) = after_first();
    completed_silently(&mut trials[0]);
    trials[0]["metadata"]["annotations"][METRICS_ANNOTATION] =
        recorded()["metadata"]["annotations"][METRICS_ANNOTATION].clone();
    let plan = planned(&experiment, &trials, LATER);
    experiment["status"] = serde_json::to_value(plan.status.unwrap()).unwrap();
    trials.extend(plan.create.into_iter().map(|t| as_stored(t, "3")));
    let outcome = reconcile_with(&experiment, LATER, vec![get(LIST, list(&trials))]).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// The log cannot be read (the kubelet does not answer): the reconcile
/// fails before anything is written — no annotation, no trial, no status —
/// and is requeued with backoff; the next attempt reads the log again.
#[tokio::test]
async fn a_log_api_error_requeues_without_writing() {
    let (experiment, mut trials) = after_first();
    completed_silently(&mut trials[0]);
    let outcome = reconcile_with(
        &experiment,
        LATER,
        vec![
            get(LIST, list(&trials)),
            get(pods_query("median-stop-0"), pods_of("median-stop-0")),
            get(
                log_query("median-stop-0-b4n9q"),
                status_reply(500, "InternalError", "Get \"https://10.0.0.7:10250/containerLogs\": i/o timeout"),
            ),
        ],
    )
    .await;
    assert_eq!(kubernetes_status(&outcome.result), Some(500));
    let message = outcome.result.unwrap_err().to_string();
    assert!(message.starts_with("read log of Pod kubeflow/median-stop-0-b4n9q: Get"), "{message}");
    assert_eq!(outcome.retries, [Action::requeue(Duration::from_secs(5)), Action::requeue(Duration::from_secs(10))]);
}

/// The pods of a completed trial are gone (garbage-collected before the
/// controller looked): an empty record is kept, so the trial fails for
/// want of its objective, as in Katib, and is never looked at again.
#[tokio::test]
async fn a_completed_trial_whose_pods_are_gone_fails_with_an_empty_record() {
    let (experiment, mut trials) = after_first();
    completed_silently(&mut trials[0]);
    let empty = json!({"metadata": {"annotations": {METRICS_ANNOTATION: "{}"}}});
    let mut annotated = trials.clone();
    annotated[0]["metadata"]["annotations"][METRICS_ANNOTATION] = json!("{}");
    let plan = planned(&experiment, &annotated, LATER);
    let status = serde_json::to_value(plan.status.unwrap()).unwrap();
    assert_eq!(status["failedTrialList"], json!(["median-stop-0"]));
    let mut script = vec![
        get(LIST, list(&trials)),
        get(
            pods_query("median-stop-0"),
            (200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})),
        ),
        merge(format!("{JOBS}/median-stop-0"), empty, with_kind(annotated[0].clone())),
    ];
    for trial in &plan.create {
        let name = trial["metadata"]["name"].as_str().unwrap();
        script.push(get(format!("{JOBS}/{name}"), not_found("jobs")));
    }
    for trial in &plan.create {
        let name = trial["metadata"]["name"].as_str().unwrap();
        script.push(apply(format!("{JOBS}/{name}"), trial.clone()));
    }
    script.push(apply(STATUS, status_body(status)));
    let outcome = reconcile_with(&experiment, LATER, script).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}
