//! The TrainJob reconciler's API conversation (feature `controller`),
//! against kube's mock service: every request's method, path and query
//! (field manager `kf-train`, `force`), content type and JSON body is
//! asserted, in order, and nothing else may be asked. What the reconciler
//! decides is unit-tested in `kf_train::controller::plan`; here only what it
//! says to the API server. Jobs and runtimes come from ../shared/corpus/trainer.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kf_train::controller::{Config, Context, FIELD_MANAGER, error_policy, reconcile};
use kf_train::launch::{Network, plan};
use kf_train::render::render;
use kf_train::{Error, TrainJob, TrainingRuntime};
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tower_test::mock;

const NOW: &str = "2026-12-07T12:00:00Z";
const UID: &str = "0b6f1e2c-5a7d-4e8f-9c3b-2d1a0f9e8d7c";
/// The query kube writes for `PatchParams::apply("kf-train").force()`.
const APPLY: &str = "?&force=true&fieldManager=kf-train";

fn corpus(name: &str) -> Value {
    let path = format!("{}/../../shared/corpus/trainer/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A corpus TrainJob as the API server returns it: namespaced, with a uid.
fn stored(mut job: Value, namespace: &str) -> Value {
    job["metadata"]["namespace"] = json!(namespace);
    job["metadata"]["uid"] = json!(UID);
    job["metadata"]["resourceVersion"] = json!("100");
    job["metadata"]["generation"] = json!(1);
    job
}

fn torch_job() -> Value {
    stored(corpus("docs__user-guides__trainjob-lifecycle.block0.yaml"), "my-namespace")
}

fn torch_runtime() -> Value {
    corpus("manifests__base__runtimes__torch_distributed.yaml")
}

fn volcano_job() -> Value {
    stored(corpus("examples__yaml__04-volcano-integration.doc1.yaml"), "team-a")
}

fn volcano_runtime() -> Value {
    corpus("examples__yaml__04-volcano-integration.doc0.yaml")
}

/// The rendering of the render module, plus exactly what the controller
/// adds: the trainjob-name label and an explicit `spec.suspend`. (The owner
/// reference is the rendering's own, from the uid.)
fn children(job: &Value, runtime: &Value) -> Vec<Value> {
    let job = TrainJob::from_value(job.clone()).unwrap();
    let runtime = TrainingRuntime::from_value(runtime.clone()).unwrap();
    let launch = plan(&job, &runtime, &Network::Kubernetes).unwrap();
    let mut objects = render(&job, &runtime, &launch).unwrap().to_values().unwrap();
    for object in &mut objects {
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], UID);
        assert_eq!(object["metadata"]["ownerReferences"][0]["controller"], true);
        object["metadata"]["labels"]["trainer.kubeflow.org/trainjob-name"] = job.name().unwrap().into();
        if object["kind"] == "JobSet" {
            object["spec"]["suspend"] = json!(job.suspended());
        }
    }
    objects
}

/// An MPI TrainJob on the upstream MLX runtime (OpenMPI, launcher as a node).
fn mpi_job() -> Value {
    stored(
        json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
               "metadata": {"name": "mlx-job"},
               "spec": {"runtimeRef": {"name": "mlx-distributed"}, "trainer": {"numNodes": 2}}}),
        "ml",
    )
}

fn mpi_runtime() -> Value {
    corpus("manifests__base__runtimes__mlx_distributed.yaml")
}

/// The SSH-auth Secret as the controller applies it: the render module's,
/// with [`KEYS`], its kind and the trainjob-name label.
fn mpi_secret(job: &Value) -> Value {
    let job = TrainJob::from_value(job.clone()).unwrap();
    let mut secret = serde_json::to_value(kf_train::render::ssh_auth_secret(&job, KEYS.0, KEYS.1)).unwrap();
    secret["apiVersion"] = json!("v1");
    secret["kind"] = json!("Secret");
    secret["metadata"]["labels"] = json!({"trainer.kubeflow.org/trainjob-name": job.name().unwrap()});
    secret
}

/// What the server answers for an apply or a GET of an applied object.
fn as_stored(mut object: Value, resource_version: &str) -> Value {
    object["metadata"]["uid"] = json!(format!("child-of-{UID}"));
    object["metadata"]["resourceVersion"] = json!(resource_version);
    object["metadata"]["creationTimestamp"] = json!("2026-12-07T11:59:00Z");
    object
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
    body: Option<Value>,
    reply: (u16, Value),
}

fn get(uri: impl Into<String>, reply: (u16, Value)) -> Call {
    Call { method: "GET", uri: uri.into(), body: None, reply }
}

/// A server-side apply; the server echoes the object as stored.
fn apply(path: impl Into<String>, body: Value) -> Call {
    let reply = (200, as_stored(body.clone(), "2"));
    Call { method: "PATCH", uri: format!("{}{APPLY}", path.into()), body: Some(body), reply }
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
        if call.method == "PATCH" {
            let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok());
            assert_eq!(content_type, Some("application/apply-patch+yaml"), "request {i}: server-side apply");
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
        let response = Response::builder().status(code).body(Body::from(serde_json::to_vec(&reply).unwrap()));
        respond.send_response(response.unwrap());
    }
    let more = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    if let Ok(Some((request, _))) = more {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

/// The key pair every MPI Secret gets in these tests.
const KEYS: (&str, &str) = ("-----BEGIN OPENSSH PRIVATE KEY-----\ntest\n", "ssh-ed25519 AAAAtest");

fn context() -> (Context, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let ctx = Context::new(client, Config::default())
        .with_clock(|| NOW.to_string())
        .with_key_maker(|| Ok((KEYS.0.to_string(), KEYS.1.to_string())));
    (ctx, handle)
}

/// One reconcile of `job` against `script`: its result and, when it
/// failed, the error policy's first two requeues.
struct Outcome {
    result: Result<Action, Error>,
    retries: Vec<Action>,
}

async fn reconcile_with(job: &Value, script: Vec<Call>) -> Outcome {
    let (ctx, handle) = context();
    reconcile_in(ctx, handle, job, script).await
}

async fn reconcile_in(ctx: Context, handle: Handle, job: &Value, script: Vec<Call>) -> Outcome {
    let ctx = Arc::new(ctx);
    let server = tokio::spawn(serve(handle, script));
    let object = Arc::new(serde_json::from_value::<DynamicObject>(job.clone()).unwrap());
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

const CLUSTER_RUNTIMES: &str = "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes";

fn jobsets(namespace: &str) -> String {
    format!("/apis/jobset.x-k8s.io/v1alpha2/namespaces/{namespace}/jobsets")
}

fn volcano_podgroups(namespace: &str) -> String {
    format!("/apis/scheduling.volcano.sh/v1beta1/namespaces/{namespace}/podgroups")
}

fn trainjob_status(namespace: &str, name: &str) -> String {
    format!("/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}/status")
}

fn status_body(namespace: &str, name: &str, status: Value) -> Value {
    json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    })
}

fn created() -> Value {
    json!({"type": "Created", "status": "True", "reason": "JobsCreationSucceeded",
           "message": "Succeeded to create Jobs", "lastTransitionTime": NOW})
}

fn with_status(mut job: Value, status: Value) -> Value {
    job["status"] = status;
    job
}

fn kubernetes_status(result: &Result<Action, Error>) -> Option<u16> {
    match result {
        Err(Error::Kubernetes { status, .. }) => *status,
        other => panic!("expected a Kubernetes error, got {other:?}"),
    }
}

#[tokio::test]
async fn first_reconcile_applies_pod_group_then_job_set_then_status() {
    let job = volcano_job();
    let runtime = volcano_runtime();
    let kids = children(&job, &runtime);
    assert_eq!(kids.iter().map(|k| k["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["PodGroup", "JobSet"]);
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/torch-distributed-volcano"), (200, as_stored(runtime, "1"))),
            get(format!("{}/volcano-example", jobsets("team-a")), not_found("jobsets volcano-example")),
            get(format!("{}/volcano-example", volcano_podgroups("team-a")), not_found("podgroups volcano-example")),
            apply(format!("{}/volcano-example", volcano_podgroups("team-a")), kids[0].clone()),
            apply(format!("{}/volcano-example", jobsets("team-a")), kids[1].clone()),
            apply(
                trainjob_status("team-a", "volcano-example"),
                status_body("team-a", "volcano-example", json!({"conditions": [created()]})),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
    assert_eq!(FIELD_MANAGER, "kf-train");
}

#[tokio::test]
async fn a_suspended_job_gets_a_suspended_job_set_and_condition() {
    let mut job = torch_job();
    job["spec"]["suspend"] = json!(true);
    let runtime = torch_runtime();
    let kids = children(&job, &runtime);
    assert_eq!(kids[0]["spec"]["suspend"], true);
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/torch-distributed"), (200, as_stored(runtime, "1"))),
            get(format!("{}/my-trainjob", jobsets("my-namespace")), not_found("jobsets my-trainjob")),
            apply(format!("{}/my-trainjob", jobsets("my-namespace")), kids[0].clone()),
            apply(
                trainjob_status("my-namespace", "my-trainjob"),
                status_body(
                    "my-namespace",
                    "my-trainjob",
                    json!({"conditions": [created(), {"type": "Suspended", "status": "True", "reason": "Suspended",
                        "message": "TrainJob is suspended", "lastTransitionTime": NOW}]}),
                ),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_second_reconcile_that_changes_nothing_writes_nothing() {
    let job = with_status(volcano_job(), json!({"conditions": [created()]}));
    let runtime = volcano_runtime();
    let kids = children(&job, &runtime);
    let mut stored_job_set = as_stored(kids[1].clone(), "2");
    // Server defaults and an empty status do not count as differences.
    stored_job_set["spec"]["successPolicy"] = json!({"operator": "All"});
    stored_job_set["status"] = json!({"restarts": 0});
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/torch-distributed-volcano"), (200, as_stored(runtime, "1"))),
            get(format!("{}/volcano-example", jobsets("team-a")), (200, stored_job_set)),
            get(format!("{}/volcano-example", volcano_podgroups("team-a")), (200, as_stored(kids[0].clone(), "2"))),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_job_set_whose_status_changed_updates_only_the_train_job_status() {
    let job = with_status(torch_job(), json!({"conditions": [created()]}));
    let runtime = torch_runtime();
    let kids = children(&job, &runtime);
    let mut done = as_stored(kids[0].clone(), "3");
    done["status"] = json!({
        "conditions": [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted",
                        "message": "jobset completed successfully", "lastTransitionTime": "2026-12-07T11:59:30Z"}],
        "replicatedJobsStatus": [{"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}],
    });
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/torch-distributed"), (200, as_stored(runtime, "1"))),
            get(format!("{}/my-trainjob", jobsets("my-namespace")), (200, done)),
            apply(
                trainjob_status("my-namespace", "my-trainjob"),
                status_body(
                    "my-namespace",
                    "my-trainjob",
                    json!({
                        "conditions": [created(), {"type": "Complete", "status": "True", "reason": "AllJobsCompleted",
                            "message": "jobset completed successfully", "lastTransitionTime": NOW}],
                        "jobsStatus": [{"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}],
                    }),
                ),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// No finalizer: the children go with the TrainJob through their owner
/// references, so a deleting job is not even read, let alone anything deleted.
#[tokio::test]
async fn deletion_issues_no_requests_at_all() {
    let mut job = with_status(torch_job(), json!({"conditions": [created()]}));
    job["metadata"]["deletionTimestamp"] = json!("2026-12-07T12:00:00Z");
    job["metadata"]["finalizers"] = json!(["example.com/someone-elses"]);
    let outcome = reconcile_with(&job, vec![]).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_job_managed_by_another_controller_is_not_touched() {
    let mut job = volcano_job();
    job["spec"]["managedBy"] = json!("kueue.x-k8s.io/multikueue");
    let outcome = reconcile_with(&job, vec![]).await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// The PodGroup apply fails: the JobSet (which would start pods without
/// their gang) is not applied, no status is written, the reconcile fails
/// and is requeued with growing backoff.
#[tokio::test]
async fn an_api_error_stops_the_reconcile_and_requeues_with_backoff() {
    let job = volcano_job();
    let runtime = volcano_runtime();
    let kids = children(&job, &runtime);
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/torch-distributed-volcano"), (200, as_stored(runtime, "1"))),
            get(format!("{}/volcano-example", jobsets("team-a")), not_found("jobsets volcano-example")),
            get(format!("{}/volcano-example", volcano_podgroups("team-a")), not_found("podgroups volcano-example")),
            failing(
                apply(format!("{}/volcano-example", volcano_podgroups("team-a")), kids[0].clone()),
                status_reply(500, "InternalError", "etcdserver: request timed out"),
            ),
        ],
    )
    .await;
    assert_eq!(kubernetes_status(&outcome.result), Some(500));
    let message = outcome.result.unwrap_err().to_string();
    assert!(message.starts_with("apply PodGroup team-a/volcano-example: etcdserver"), "{message}");
    assert_eq!(outcome.retries, [Action::requeue(Duration::from_secs(5)), Action::requeue(Duration::from_secs(10))]);
}

#[tokio::test]
async fn a_conflict_on_apply_is_an_error_and_no_status_is_written() {
    let job = torch_job();
    let runtime = torch_runtime();
    let kids = children(&job, &runtime);
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/torch-distributed"), (200, as_stored(runtime, "1"))),
            get(format!("{}/my-trainjob", jobsets("my-namespace")), not_found("jobsets my-trainjob")),
            failing(
                apply(format!("{}/my-trainjob", jobsets("my-namespace")), kids[0].clone()),
                status_reply(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on jobsets.jobset.x-k8s.io \"my-trainjob\"",
                ),
            ),
        ],
    )
    .await;
    assert_eq!(kubernetes_status(&outcome.result), Some(409));
    assert_eq!(outcome.retries[0], Action::requeue(Duration::from_secs(5)));
}

/// A JobSet of the job's name that another owner holds is left alone: no
/// apply over it, a condition that says so, a retry with backoff.
#[tokio::test]
async fn a_child_name_held_by_a_foreign_object_is_a_condition_not_a_takeover() {
    let job = torch_job();
    let runtime = torch_runtime();
    let mut foreign = as_stored(children(&job, &runtime)[0].clone(), "9");
    foreign["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "another-uid", "controller": true}]);
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/torch-distributed"), (200, as_stored(runtime, "1"))),
            get(format!("{}/my-trainjob", jobsets("my-namespace")), (200, foreign)),
            apply(
                trainjob_status("my-namespace", "my-trainjob"),
                status_body(
                    "my-namespace",
                    "my-trainjob",
                    json!({"conditions": [{"type": "Created", "status": "False", "reason": "ChildNotOwned",
                        "message": "JobSet \"my-trainjob\" exists and is not owned by this TrainJob; it is left alone",
                        "lastTransitionTime": NOW}]}),
                ),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::requeue(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_missing_runtime_is_a_condition_and_a_retry() {
    let job = torch_job();
    let outcome = reconcile_with(
        &job,
        vec![
            get(
                format!("{CLUSTER_RUNTIMES}/torch-distributed"),
                not_found("clustertrainingruntimes torch-distributed"),
            ),
            get(format!("{}/my-trainjob", jobsets("my-namespace")), not_found("jobsets my-trainjob")),
            apply(
                trainjob_status("my-namespace", "my-trainjob"),
                status_body(
                    "my-namespace",
                    "my-trainjob",
                    json!({"conditions": [{"type": "Created", "status": "False", "reason": "RuntimeNotFound",
                        "message": "spec.runtimeRef: ClusterTrainingRuntime \"torch-distributed\" not found",
                        "lastTransitionTime": NOW}]}),
                ),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::requeue(Duration::from_secs(5)));
}

/// A TrainJob that does not even read (a string where a number belongs) or
/// fails validation (an unknown field) gets a condition naming the field,
/// reads nothing else, and waits for an edit: no crash loop, no retry.
#[tokio::test]
async fn invalid_train_jobs_get_a_condition_naming_the_field() {
    let mut unreadable = torch_job();
    unreadable["spec"]["trainer"]["numNodes"] = json!("two");
    let mut unknown = torch_job();
    unknown["spec"]["trainer"]["numProcPerNodes"] = json!(2);
    for (job, path) in [(unreadable, "spec.trainer.numNodes"), (unknown, "spec.trainer.numProcPerNodes")] {
        let error = TrainJob::from_value(job.clone()).and_then(|j| j.validate()).unwrap_err();
        assert_eq!(error.path(), path);
        let outcome = reconcile_with(
            &job,
            vec![apply(
                trainjob_status("my-namespace", "my-trainjob"),
                status_body(
                    "my-namespace",
                    "my-trainjob",
                    json!({"conditions": [{"type": "Created", "status": "False", "reason": "InvalidSpec",
                        "message": error.to_string(), "lastTransitionTime": NOW}]}),
                ),
            )],
        )
        .await;
        assert_eq!(outcome.result.unwrap(), Action::await_change());
    }
}

/// A namespaced TrainingRuntime is read from the job's namespace.
#[tokio::test]
async fn a_training_runtime_is_read_from_the_job_namespace() {
    let job = stored(corpus("docs__operator-guides__runtime.block3.yaml"), "team-a");
    let mut runtime = torch_runtime();
    runtime["kind"] = json!("TrainingRuntime");
    runtime["metadata"]["name"] = json!("pytorch-team-runtime");
    runtime["metadata"]["namespace"] = json!("team-a");
    let kids = children(&job, &runtime);
    let outcome = reconcile_with(
        &job,
        vec![
            get(
                "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainingruntimes/pytorch-team-runtime",
                (200, as_stored(runtime, "1")),
            ),
            get(format!("{}/example-train-job", jobsets("team-a")), not_found("jobsets example-train-job")),
            apply(format!("{}/example-train-job", jobsets("team-a")), kids[0].clone()),
            apply(
                trainjob_status("team-a", "example-train-job"),
                status_body("team-a", "example-train-job", json!({"conditions": [created()]})),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// A failed read is an error before anything is written.
#[tokio::test]
async fn a_failed_runtime_read_writes_nothing() {
    let outcome = reconcile_with(
        &torch_job(),
        vec![get(
            format!("{CLUSTER_RUNTIMES}/torch-distributed"),
            status_reply(403, "Forbidden", "clustertrainingruntimes is forbidden"),
        )],
    )
    .await;
    assert_eq!(kubernetes_status(&outcome.result), Some(403));
    assert_eq!(outcome.retries[0], Action::requeue(Duration::from_secs(5)));
}

/// An MPI job: its SSH-auth Secret is created first, with a fresh key pair
/// (the data the shell adds to the plan's Secret), then the hostfile
/// ConfigMap, then the JobSet whose pods mount both.
#[tokio::test]
async fn an_mpi_job_gets_its_ssh_secret_with_fresh_keys_before_anything_else() {
    let job = mpi_job();
    let runtime = mpi_runtime();
    let kids = children(&job, &runtime);
    assert_eq!(kids.iter().map(|k| k["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["ConfigMap", "JobSet"]);
    let secret = mpi_secret(&job);
    assert_eq!(secret["data"]["ssh-publickey"], "c3NoLWVkMjU1MTkgQUFBQXRlc3Q="); // base64 of KEYS.1
    let outcome = reconcile_with(
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/mlx-distributed"), (200, as_stored(runtime, "1"))),
            get(format!("{}/mlx-job", jobsets("ml")), not_found("jobsets mlx-job")),
            get("/api/v1/namespaces/ml/secrets/mlx-job-mpi-ssh-auth", not_found("secrets mlx-job-mpi-ssh-auth")),
            get("/api/v1/namespaces/ml/configmaps/mlx-job-mpi-hostfile", not_found("configmaps mlx-job-mpi-hostfile")),
            apply("/api/v1/namespaces/ml/secrets/mlx-job-mpi-ssh-auth", secret),
            apply("/api/v1/namespaces/ml/configmaps/mlx-job-mpi-hostfile", kids[0].clone()),
            apply(format!("{}/mlx-job", jobsets("ml")), kids[1].clone()),
            apply(trainjob_status("ml", "mlx-job"), status_body("ml", "mlx-job", json!({"conditions": [created()]}))),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// Once the Secret exists its keys are the pods' keys: a second reconcile
/// reads it and writes nothing, and no new key pair is even made.
#[tokio::test]
async fn an_existing_ssh_secret_is_never_rewritten() {
    let job = with_status(mpi_job(), json!({"conditions": [created()]}));
    let runtime = mpi_runtime();
    let kids = children(&job, &runtime);
    let (ctx, handle) = context();
    let ctx = ctx.with_key_maker(|| panic!("an existing Secret needs no new keys"));
    let outcome = reconcile_in(
        ctx,
        handle,
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/mlx-distributed"), (200, as_stored(runtime, "1"))),
            get(format!("{}/mlx-job", jobsets("ml")), (200, as_stored(kids[1].clone(), "2"))),
            get("/api/v1/namespaces/ml/secrets/mlx-job-mpi-ssh-auth", (200, as_stored(mpi_secret(&job), "2"))),
            get("/api/v1/namespaces/ml/configmaps/mlx-job-mpi-hostfile", (200, as_stored(kids[0].clone(), "2"))),
        ],
    )
    .await;
    assert_eq!(outcome.result.unwrap(), Action::await_change());
}

/// No key pair, no Secret: the reconcile fails before its first write.
#[tokio::test]
async fn a_failed_key_pair_writes_nothing() {
    let job = mpi_job();
    let runtime = mpi_runtime();
    let (ctx, handle) = context();
    let ctx =
        ctx.with_key_maker(|| Err(Error::Unrenderable { path: "sshAuthSecret".into(), message: "no entropy".into() }));
    let outcome = reconcile_in(
        ctx,
        handle,
        &job,
        vec![
            get(format!("{CLUSTER_RUNTIMES}/mlx-distributed"), (200, as_stored(runtime, "1"))),
            get(format!("{}/mlx-job", jobsets("ml")), not_found("jobsets mlx-job")),
            get("/api/v1/namespaces/ml/secrets/mlx-job-mpi-ssh-auth", not_found("secrets mlx-job-mpi-ssh-auth")),
            get("/api/v1/namespaces/ml/configmaps/mlx-job-mpi-hostfile", not_found("configmaps mlx-job-mpi-hostfile")),
        ],
    )
    .await;
    let message = outcome.result.unwrap_err().to_string();
    assert!(message.contains("no entropy"), "{message}");
    assert_eq!(outcome.retries[0], Action::requeue(Duration::from_secs(5)));
}
