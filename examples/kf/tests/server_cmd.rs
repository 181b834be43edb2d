//! `kf server` as a user runs it: a TOML config, one address, every API
//! behind the tenancy layer; tested over real HTTP on 127.0.0.1:0.

mod common;

use std::process::Command;

use common::{Server, call, experiment, json_field, poll, start, trainjob};

/// The id of the first registered model.
fn registered_id(server: &Server) -> String {
    let (_, listed) = call(server, "GET", "/api/model_registry/v1alpha3/registered_models", Some("t-alice"), "");
    let value: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    value["items"][0]["id"].as_str().expect("an id").to_owned()
}

const CONFIG: &str = r#"
namespace = "team-a"
cluster_admins = ["root"]
[tokens]
t-root = "root"
t-alice = "alice"
t-bob = "bob"
"#;

#[test]
fn every_api_answers_only_whom_the_policy_allows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = start(dir.path(), CONFIG);
    let registry = "/api/model_registry/v1alpha3/registered_models";
    let profiles = "/api/tenancy/v1/profiles";
    let bob = "/api/tenancy/v1/profiles/team-a/contributors/bob";

    // Probes are public; everything else needs a caller.
    assert_eq!(call(&s, "GET", "/v2/health/ready", None, "").0, 200);
    assert_eq!(call(&s, "GET", "/metrics", None, "").0, 200);
    assert_eq!(call(&s, "GET", registry, None, "").0, 401);
    assert_eq!(call(&s, "GET", registry, Some("forged"), "").0, 401);

    // Only cluster admins create profiles.
    let profile = r#"{"name": "team-a", "owner": "alice"}"#;
    assert_eq!(call(&s, "POST", profiles, Some("t-alice"), profile).0, 403);
    assert_eq!(call(&s, "POST", profiles, Some("t-root"), profile).0, 201);

    // The owner uses the registry and the models; a stranger cannot, nor add himself.
    assert_eq!(call(&s, "POST", registry, Some("t-alice"), r#"{"name": "iris"}"#).0, 201);
    assert_eq!(call(&s, "GET", registry, Some("t-bob"), "").0, 403);
    assert_eq!(call(&s, "PUT", bob, Some("t-bob"), r#"{"role": "admin"}"#).0, 403);
    let infer = r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;
    let (status, answer) = call(&s, "POST", "/v2/models/iris/infer", Some("t-alice"), infer);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("probabilities"), "{answer}");
    assert_eq!(call(&s, "POST", "/v2/models/iris/infer", Some("t-bob"), infer).0, 403);

    // Model files go through the same gate.
    let (status, version) = call(
        &s,
        "POST",
        "/api/model_registry/v1alpha3/model_versions",
        Some("t-alice"),
        &format!(r#"{{"name": "v1", "registeredModelId": "{}"}}"#, registered_id(&s)),
    );
    assert_eq!(status, 201, "{version}");
    let version_id = json_field(&version, "id");
    let file = format!("/api/kf_registry/v1/model_versions/{version_id}/files/model.onnx");
    assert_eq!(call(&s, "PUT", &file, Some("t-bob"), "weights").0, 403);
    let (status, stored) = call(&s, "PUT", &file, Some("t-alice"), "weights");
    assert!(status == 201 || status == 200, "{status} {stored}");
    assert_eq!(call(&s, "GET", &file, Some("t-alice"), ""), (200, "weights".to_owned()));

    // A viewer reads but does not write, and cannot raise his own role.
    assert_eq!(call(&s, "PUT", bob, Some("t-alice"), r#"{"role": "view"}"#).0, 200);
    let (status, listed) = call(&s, "GET", registry, Some("t-bob"), "");
    assert!(status == 200 && listed.contains("iris"), "{status} {listed}");
    assert_eq!(call(&s, "POST", registry, Some("t-bob"), r#"{"name": "other"}"#).0, 403);
    assert_eq!(call(&s, "PUT", bob, Some("t-bob"), r#"{"role": "edit"}"#).0, 403);
    let (_, visible) = call(&s, "GET", profiles, Some("t-bob"), "");
    assert!(visible.contains("team-a"), "{visible}");

    // Revoked, he is a stranger again; unknown paths are 404 with a JSON body.
    assert_eq!(call(&s, "DELETE", bob, Some("t-alice"), "").0, 204);
    assert_eq!(call(&s, "GET", registry, Some("t-bob"), "").0, 403);
    let (_, hidden) = call(&s, "GET", profiles, Some("t-bob"), "");
    assert!(!hidden.contains("team-a"), "{hidden}");
    let (status, body) = call(&s, "GET", "/nope", Some("t-alice"), "");
    assert!(status == 404 && body.contains("no kf API"), "{status} {body}");
}

#[test]
fn bad_configuration_is_named_and_a_busy_port_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("kf.toml");
    std::fs::write(&config, "adress = \"127.0.0.1:1\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_kf")).args(["server", "--config"]).arg(&config).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("kf.toml") && err.contains("adress"), "{err}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(["server", "--addr", &addr, "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&addr), "{err}");
}

const TALK: &str = "name: talk\ncomponents:\n  speak:\n    container:\n      image: alpine\n      command: [sh, -c, 'echo hello from kf']\ntasks:\n  speak: {component: speak}\n";
const HELLO: &str = include_str!("../../../kf-dag/examples/pipelines/hello.yaml");
const SLOW: &str = "name: slow\ncomponents:\n  wait:\n    container:\n      image: alpine\n      command: [sh, -c, 'sleep 30']\ntasks:\n  wait: {component: wait}\n";

/// Polls a run until it ends (at most ~20 s); it is `pending` until the
/// executor records its start, then `running`.
fn finished(s: &Server, path: &str) -> serde_json::Value {
    poll(s, path, "t-alice", |run| {
        run["state"].as_str().is_some_and(|state| matches!(state, "succeeded" | "failed" | "cancelled"))
    })
}

/// A server whose profile team-a is owned by alice.
fn team_a(dir: &std::path::Path, config: &str) -> Server {
    let s = start(dir, config);
    let profile = r#"{"name": "team-a", "owner": "alice"}"#;
    assert_eq!(call(&s, "POST", "/api/tenancy/v1/profiles", Some("t-root"), profile).0, 201);
    s
}

#[test]
fn pipeline_runs_belong_to_their_namespace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = team_a(dir.path(), CONFIG);
    let runs = "/api/pipelines/v1/namespaces/team-a/runs";
    let submit = |pipeline: &str, id: &str| serde_json::json!({"pipeline": pipeline, "run_id": id}).to_string();

    let (status, body) = call(&s, "POST", runs, Some("t-alice"), &submit(TALK, "talk-1"));
    assert_eq!(status, 201, "{body}");
    let run = finished(&s, &format!("{runs}/talk-1"));
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["tasks"]["speak"]["state"], "succeeded", "{run}");
    let (status, log) = call(&s, "GET", &format!("{runs}/talk-1/tasks/speak/logs"), Some("t-alice"), "");
    assert_eq!((status, log.as_str()), (200, "hello from kf\n"));
    let (_, listed) = call(&s, "GET", runs, Some("t-alice"), "");
    assert!(listed.contains("talk-1"), "{listed}");
    assert_eq!(call(&s, "POST", runs, Some("t-alice"), &submit(HELLO, "hello-1")).0, 201);
    assert_eq!(finished(&s, &format!("{runs}/hello-1"))["state"], "succeeded");
    let greeting = format!("{runs}/hello-1/tasks/say/artifacts/greeting");
    assert_eq!(call(&s, "GET", &greeting, Some("t-alice"), ""), (200, "hello world".to_owned()));
    assert_eq!(call(&s, "GET", &greeting, Some("t-bob"), "").0, 403);
    let escape = format!("{runs}/hello-1/tasks/say/artifacts/..");
    assert_eq!(call(&s, "GET", &escape, Some("t-alice"), "").0, 400, "no way out of the run's prefix");

    // Strangers see nothing of it; nobody runs in a namespace without a profile.
    assert_eq!(call(&s, "GET", runs, Some("t-bob"), "").0, 403);
    assert_eq!(call(&s, "GET", &format!("{runs}/talk-1/tasks/speak/logs"), Some("t-bob"), "").0, 403);
    assert_eq!(call(&s, "POST", runs, Some("t-bob"), &submit(TALK, "mine")).0, 403);
    let other = "/api/pipelines/v1/namespaces/team-b/runs";
    assert_eq!(call(&s, "POST", other, Some("t-alice"), &submit(TALK, "elsewhere")).0, 403);

    // Bad input is named; a run id is used once; a run in flight can be cancelled.
    let (status, body) =
        call(&s, "POST", runs, Some("t-alice"), &submit("name: x\ntasks: {a: {component: nope}}", "bad"));
    assert!(status == 400 && body.contains("componentRef"), "{status} {body}");
    assert_eq!(call(&s, "POST", runs, Some("t-alice"), &submit(TALK, "talk-1")).0, 409);
    let typo = serde_json::json!({"pipeline": TALK, "parameters": {"nope": 1}}).to_string();
    let (status, body) = call(&s, "POST", runs, Some("t-alice"), &typo);
    assert!(status == 400 && body.contains("nope"), "{status} {body}");
    assert_eq!(call(&s, "POST", runs, Some("t-alice"), &submit(SLOW, "slow-1")).0, 201);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(call(&s, "POST", &format!("{runs}/slow-1/cancel"), Some("t-alice"), "").0, 202);
    let run = finished(&s, &format!("{runs}/slow-1"));
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(call(&s, "POST", &format!("{runs}/slow-1/cancel"), Some("t-alice"), "").0, 404);
}

/// Polls an experiment until it ends.
fn experiment_ended(s: &Server, path: &str) -> serde_json::Value {
    poll(s, path, "t-alice", |v| !v["ended"].is_null())
}

#[test]
fn experiments_run_per_namespace_and_resume_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = team_a(dir.path(), CONFIG);
    let experiments = "/api/tuning/v1/namespaces/team-a/experiments";
    let (status, body) = call(&s, "POST", experiments, Some("t-alice"), &experiment("quad", 4, "0"));
    assert_eq!(status, 201, "{body}");
    let done = experiment_ended(&s, &format!("{experiments}/quad"));
    assert_eq!(done["ended"], "ExperimentMaxTrialsReached", "{done}");
    assert_eq!(done["status"]["trialsSucceeded"], 4, "{done}");
    let best = done["best"]["value"].as_f64().expect("a best value");
    let (_, trials) = call(&s, "GET", &format!("{experiments}/quad/trials"), Some("t-alice"), "");
    let trials: serde_json::Value = serde_json::from_str(&trials).expect("JSON");
    let items = trials["items"].as_array().expect("items");
    assert_eq!(items.len(), 4);
    let lowest = items.iter().filter_map(|t| t["objective"].as_f64()).fold(f64::INFINITY, f64::min);
    assert_eq!(best, lowest, "the best trial is the lowest loss");
    for t in items {
        let x: f64 = t["params"]["x"].as_str().expect("x").parse().expect("a number");
        let loss = t["objective"].as_f64().expect("loss");
        assert!((loss - (x - 0.3).powi(2)).abs() < 1e-6, "{t}");
        // Its output, as the trial printed it.
        let name = t["trial"].as_str().expect("trial name");
        let (status, log) = call(&s, "GET", &format!("{experiments}/quad/trials/{name}/log"), Some("t-alice"), "");
        assert_eq!(status, 200, "{log}");
        assert!(log.contains("loss="), "{log}");
    }
    let (status, _) = call(&s, "GET", &format!("{experiments}/quad/trials/no-such-trial/log"), Some("t-alice"), "");
    assert_eq!(status, 404);

    // Names are claimed once; bad documents are named; strangers see nothing.
    assert_eq!(call(&s, "POST", experiments, Some("t-alice"), &experiment("quad", 4, "0")).0, 409);
    let (status, body) = call(
        &s,
        "POST",
        experiments,
        Some("t-alice"),
        &experiment("bad", 4, "0").replace("maxTrialCount: 4", "maxTrialCount: -1"),
    );
    assert!(status == 400 && body.contains("maxTrialCount"), "{status} {body}");
    let elsewhere = experiment("quad", 4, "0").replace("name: quad", "name: quad\n  namespace: team-b");
    let (status, body) = call(&s, "POST", experiments, Some("t-alice"), &elsewhere);
    assert!(status == 400 && body.contains("namespace"), "{status} {body}");
    assert_eq!(call(&s, "GET", experiments, Some("t-bob"), "").0, 403);
    assert_eq!(call(&s, "GET", &format!("{experiments}/quad/trials"), Some("t-bob"), "").0, 403);
    let (status, body) = call(&s, "GET", "/api/tuning/v1/namespaces/team-a/experiments/..", Some("t-alice"), "");
    assert!(status == 400 || status == 404, "{status} {body}");

    // A server killed mid-experiment resumes it on start, keeping the finished trials.
    let (status, body) = call(&s, "POST", experiments, Some("t-alice"), &experiment("slow", 6, "0.5"));
    assert_eq!(status, 201, "{body}");
    let slow = format!("{experiments}/slow");
    let mut finished_before = 0;
    for _ in 0..100 {
        let (_, body) = call(&s, "GET", &slow, Some("t-alice"), "");
        let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        finished_before = value["succeeded"].as_u64().unwrap_or(0);
        if finished_before >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(finished_before >= 2, "two trials finish before the kill");
    drop(s);
    let s = start(dir.path(), CONFIG);
    let done = experiment_ended(&s, &slow);
    assert_eq!(done["status"]["trialsSucceeded"], 6, "{done}");
    assert_eq!(done["trials"], 6, "no trial lost or added: {done}");
    let (_, listed) = call(&s, "GET", experiments, Some("t-alice"), "");
    assert!(listed.contains("\"quad\"") && listed.contains("\"slow\""), "{listed}");
    assert_eq!(call(&s, "DELETE", &slow, Some("t-alice"), "").0, 204);
    assert_eq!(call(&s, "GET", &slow, Some("t-alice"), "").0, 404);
}

#[test]
fn studies_speak_the_ask_tell_protocol_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = team_a(dir.path(), CONFIG);
    let studies = "/api/tuning/v1/namespaces/team-a/studies";
    let space = r#"{"objective": {"type": "minimize"}, "parameters": [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}}]}"#;
    let create = format!(
        r#"{{"name": "s1", "space": {space}, "algorithm": "tpe", "settings": {{"n_startup_trials": 3}}, "seed": 7}}"#
    );
    let (status, body) = call(&s, "POST", studies, Some("t-alice"), &create);
    assert_eq!(status, 201, "{body}");
    assert_eq!(call(&s, "POST", studies, Some("t-alice"), &create).0, 409);
    let bad = create.replace("\"tpe\"", "\"nope\"").replace("s1", "s2");
    let (status, body) = call(&s, "POST", studies, Some("t-alice"), &bad);
    assert!(status == 400 && body.contains("nope"), "{status} {body}");

    let requests = format!("{studies}/s1/requests");
    let ask = |s: &Server| -> (String, f64) {
        let (status, body) = call(s, "POST", &requests, Some("t-alice"), r#"{"op": "ask"}"#);
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let trial = &reply["trials"][0];
        (trial["id"].as_str().expect("id").to_owned(), trial["params"]["x"].as_f64().expect("x"))
    };
    let tell = |s: &Server, id: &str, x: f64| {
        let body = format!(r#"{{"op": "tell", "id": "{id}", "value": {}}}"#, (x - 1.0).powi(2));
        call(s, "POST", &requests, Some("t-alice"), &body)
    };
    for _ in 0..5 {
        let (id, x) = ask(&s);
        assert_eq!(tell(&s, &id, x).0, 200);
    }
    // Protocol errors keep their codes, as HTTP statuses too.
    let (status, body) = tell(&s, "0", 0.0);
    assert!(status == 409 && body.contains("already_told"), "{status} {body}");
    let (status, body) = tell(&s, "99", 0.0);
    assert!(status == 404 && body.contains("unknown_trial"), "{status} {body}");
    let (status, body) = call(&s, "POST", &requests, Some("t-alice"), r#"{"op": "ask", "n": 0}"#);
    assert!(status == 400 && body.contains("bad_request"), "{status} {body}");
    assert_eq!(call(&s, "POST", &requests, Some("t-bob"), r#"{"op": "ask"}"#).0, 403);

    // One more ask left pending; a restarted server answers as if it never stopped.
    let (pending, _) = ask(&s);
    let (_, best_before) = call(&s, "POST", &requests, Some("t-alice"), r#"{"op": "best"}"#);
    drop(s);
    let s = start(dir.path(), CONFIG);
    let (_, best_after) = call(&s, "POST", &requests, Some("t-alice"), r#"{"op": "best"}"#);
    assert_eq!(best_before, best_after);
    let (status, body) = tell(&s, &pending, 0.5);
    assert_eq!(status, 200, "the pending trial survived: {body}");
    let (next, _) = ask(&s);
    assert_eq!(next, "6", "ids go on where they stopped");
    let (_, summary) = call(&s, "GET", &format!("{studies}/s1"), Some("t-alice"), "");
    // 5 asks, 5 tells, 3 refused, the pending ask, its tell, the last ask.
    assert!(summary.contains("\"requests\":16"), "{summary}");
    assert_eq!(call(&s, "DELETE", &format!("{studies}/s1"), Some("t-alice"), "").0, 204);
    assert_eq!(call(&s, "POST", &requests, Some("t-alice"), r#"{"op": "best"}"#).0, 404);
}

#[test]
fn the_registry_can_live_in_postgres() {
    let pg = match kf_registry::testing::TempPostgres::start() {
        Ok(Some(pg)) => pg,
        Ok(None) => {
            assert!(
                std::env::var("KF_REQUIRE_PEERS").as_deref() != Ok("1"),
                "no PostgreSQL binaries found; KF_REQUIRE_PEERS=1 makes this a failure (apt-get install -y postgresql)"
            );
            eprintln!("SKIPPED the_registry_can_live_in_postgres: PostgreSQL is not installed");
            return;
        }
        Err(e) => panic!("PostgreSQL: {e}"),
    };
    let url = pg.create_database("server").expect("a database");
    let dir = tempfile::tempdir().expect("temp dir");
    let s = start(dir.path(), &format!("registry_db = {url:?}\n{CONFIG}"));
    let registry = "/api/model_registry/v1alpha3/registered_models";
    assert_eq!(
        call(&s, "POST", "/api/tenancy/v1/profiles", Some("t-root"), r#"{"name": "team-a", "owner": "alice"}"#).0,
        201
    );
    assert_eq!(call(&s, "POST", registry, Some("t-alice"), r#"{"name": "iris"}"#).0, 201);
    assert_eq!(call(&s, "GET", registry, Some("t-bob"), "").0, 403);
    drop(s);
    assert!(!dir.path().join("data/registry.db").exists(), "nothing went to SQLite");
    // Another server on the same database sees the model.
    let other = tempfile::tempdir().expect("temp dir");
    let s = start(other.path(), &format!("registry_db = {url:?}\n{CONFIG}"));
    assert_eq!(
        call(&s, "POST", "/api/tenancy/v1/profiles", Some("t-root"), r#"{"name": "team-a", "owner": "alice"}"#).0,
        201
    );
    let (status, listed) = call(&s, "GET", registry, Some("t-alice"), "");
    assert!(status == 200 && listed.contains("\"iris\""), "{status} {listed}");

    // A database that cannot be reached is named, without its password.
    let out = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args([
            "server",
            "--addr",
            "127.0.0.1:0",
            "--registry-db",
            "postgres://kf:s3cret@127.0.0.1:1/nope",
            "--data-dir",
        ])
        .arg(other.path().join("data2"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("127.0.0.1:1") && !err.contains("s3cret"), "{err}");
}

#[test]
fn served_models_show_their_canary_split_and_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let second = dir.path().join("models/iris/2");
    std::fs::create_dir_all(&second).expect("dir");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models/iris-logreg.onnx");
    std::fs::copy(model, second.join("model.onnx")).expect("copy");
    let canary = "[[canary]]\nmodel = \"iris\"\nstable = \"1\"\ncanary = \"2\"\npercent = 30\n";
    let s = start(dir.path(), &format!("{CONFIG}{canary}"));
    assert_eq!(
        call(&s, "POST", "/api/tenancy/v1/profiles", Some("t-root"), r#"{"name": "team-a", "owner": "alice"}"#).0,
        201
    );
    let infer = r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;
    for _ in 0..10 {
        assert_eq!(call(&s, "POST", "/v2/models/iris/infer", Some("t-alice"), infer).0, 200);
    }
    assert_eq!(call(&s, "POST", "/v2/models/iris/versions/1/infer", Some("t-alice"), infer).0, 200);
    assert_eq!(call(&s, "POST", "/v2/models/iris/infer", Some("t-alice"), "{}").0, 400);
    let (status, body) = call(&s, "GET", "/api/serving/v1/models", Some("t-alice"), "");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let iris = &listed["items"][0];
    assert_eq!(iris["model"], "iris", "{body}");
    assert_eq!(iris["versions"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(iris["canary"]["percent"], 30, "{body}");
    // Ten split requests at 30 %: exactly 3 to the canary; the direct one and the bad one bypass or fail.
    assert_eq!(iris["canary"]["served"], serde_json::json!({"stable": 7, "canary": 3}), "{body}");
    assert_eq!((iris["requests_total"].as_u64(), iris["errors_total"].as_u64()), (Some(12), Some(1)), "{body}");
    assert_eq!(call(&s, "GET", "/api/serving/v1/models", Some("t-bob"), "").0, 403);

    // A canary naming a version that is not there stops the server with a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(["server", "--addr", "127.0.0.1:0", "--config"])
        .arg({
            let path = dir.path().join("bad.toml");
            std::fs::write(
                &path,
                format!("model_repository = {:?}\n{}", dir.path().join("models"), canary.replace("\"2\"", "\"9\"")),
            )
            .expect("write");
            path
        })
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("canary") && err.contains('9'), "{err}");
}

#[test]
fn trainjobs_run_per_namespace_with_per_rank_state_and_logs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = team_a(dir.path(), CONFIG);
    let jobs = "/api/training/v1/namespaces/team-a/trainjobs";
    let body = trainjob("demo", "echo rank=$RANK world=$WORLD_SIZE; echo loss=0.5 progress=100");
    let (status, reply) = call(&s, "POST", jobs, Some("t-alice"), &body);
    assert_eq!(status, 201, "{reply}");
    let done = poll(&s, &format!("{jobs}/demo"), "t-alice", |v| v["state"] != "Running" && v["state"] != "Pending");
    assert_eq!(done["state"], "Complete", "{done}");
    assert_eq!(done["runtime"], "torch-distributed", "{done}");
    let processes = done["processes"].as_array().expect("processes");
    assert_eq!(processes.len(), 4, "{done}");
    assert!(processes.iter().all(|p| p["state"] == "Succeeded" && p["exit_code"] == 0), "{done}");
    assert_eq!(done["status"]["trainerStatus"]["progressPercentage"], 100, "{done}");
    let (status, log) = call(&s, "GET", &format!("{jobs}/demo/processes/3/logs"), Some("t-alice"), "");
    assert!(status == 200 && log.contains("rank=3 world=4"), "{status} {log}");
    let (_, listed) = call(&s, "GET", jobs, Some("t-alice"), "");
    assert!(listed.contains("\"demo\"") && listed.contains("Complete"), "{listed}");

    // A failing rank fails the job and the table says which; bad input is named.
    let failing = trainjob("broken", "if [ $RANK = 2 ]; then exit 3; fi; sleep 5");
    assert_eq!(call(&s, "POST", jobs, Some("t-alice"), &failing).0, 201);
    let failed = poll(&s, &format!("{jobs}/broken"), "t-alice", |v| v["state"] == "Failed");
    let rank2 = failed["processes"].as_array().and_then(|ps| ps.iter().find(|p| p["rank"] == 2)).cloned();
    assert_eq!(rank2.map(|p| p["exit_code"].clone()), Some(serde_json::json!(3)), "{failed}");
    assert_eq!(call(&s, "POST", jobs, Some("t-alice"), &body).0, 409);
    let (status, reply) =
        call(&s, "POST", jobs, Some("t-alice"), &body.replace("name: demo", "name: x\n  namespace: team-b"));
    assert!(status == 400 && reply.contains("namespace"), "{status} {reply}");
    let (status, reply) = call(&s, "POST", jobs, Some("t-alice"), &body.replace("numNodes: 2", "numNodes: -2"));
    assert!(status == 400 && reply.contains("numNodes"), "{status} {reply}");
    let alone = body.split("---").next().unwrap_or_default().replace("name: demo", "name: alone");
    let (status, reply) = call(&s, "POST", jobs, Some("t-alice"), &alone);
    assert!(status == 400 && reply.contains("runtime"), "{status} {reply}");
    assert_eq!(call(&s, "GET", jobs, Some("t-bob"), "").0, 403);

    // Deleting a running job stops its processes.
    let slow = trainjob("slow", "echo $$ > pid-$RANK; sleep 60");
    assert_eq!(call(&s, "POST", jobs, Some("t-alice"), &slow).0, 201);
    poll(&s, &format!("{jobs}/slow"), "t-alice", |v| {
        v["processes"].as_array().is_some_and(|ps| ps.iter().all(|p| p["state"] == "Running"))
    });
    let pid_file = dir.path().join("data/training/team-a/slow/pid-0");
    for _ in 0..50 {
        if pid_file.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = std::fs::read_to_string(&pid_file).expect("rank 0 wrote its pid").trim().to_owned();
    assert_eq!(call(&s, "DELETE", &format!("{jobs}/slow"), Some("t-alice"), "").0, 204);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "rank 0 ({pid}) was stopped");
    assert_eq!(call(&s, "GET", &format!("{jobs}/slow"), Some("t-alice"), "").0, 404);
}

#[test]
fn a_run_in_flight_when_the_server_stops_resumes_when_it_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = team_a(dir.path(), CONFIG);
    let marks = dir.path().join("marks");
    let pipeline = format!(
        "name: two\ncomponents:\n  first:\n    container:\n      image: alpine\n      command: [sh, -c, 'echo first >> {m}']\n  \
         second:\n    container:\n      image: alpine\n      command: [sh, -c, 'echo second-start >> {m}; sleep 2; echo second >> {m}']\n\
         tasks:\n  first: {{component: first}}\n  second: {{component: second, after: [first]}}\n",
        m = marks.display()
    );
    let runs = "/api/pipelines/v1/namespaces/team-a/runs";
    let submit = serde_json::json!({"pipeline": pipeline, "run_id": "two-1"}).to_string();
    assert_eq!(call(&s, "POST", runs, Some("t-alice"), &submit).0, 201);
    for _ in 0..100 {
        if std::fs::read_to_string(&marks).is_ok_and(|m| m.contains("second-start")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(s); // killed while `second` sleeps
    let s = start(dir.path(), CONFIG);
    let run = finished(&s, &format!("{runs}/two-1"));
    assert_eq!(run["state"], "succeeded", "{run}");
    let marks = std::fs::read_to_string(&marks).expect("marks");
    assert_eq!(marks.matches("first").count(), 1, "the finished task did not run again: {marks}");
    assert_eq!(marks.matches("second-start").count(), 2, "the task in flight ran again: {marks}");
    assert!(marks.ends_with("second\n"), "to its end: {marks}");
}

#[test]
fn pipeline_artifacts_can_live_in_an_object_store_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objects = dir.path().join("objects");
    let s = team_a(dir.path(), &format!("pipeline_objects = \"file://{}\"\n{CONFIG}", objects.display()));
    let runs = "/api/pipelines/v1/namespaces/team-a/runs";
    let submit = serde_json::json!({"pipeline": HELLO, "run_id": "hello-1"}).to_string();
    assert_eq!(call(&s, "POST", runs, Some("t-alice"), &submit).0, 201);
    assert_eq!(finished(&s, &format!("{runs}/hello-1"))["state"], "succeeded");
    let greeting = format!("{runs}/hello-1/tasks/say/artifacts/greeting");
    assert_eq!(call(&s, "GET", &greeting, Some("t-alice"), ""), (200, "hello world".to_owned()));
    // The bytes are under the namespace's prefix of the URL, not in the data dir.
    let stored = std::fs::read_to_string(objects.join("team-a/artifacts/hello-1/say/greeting")).expect("in the store");
    assert_eq!(stored, "hello world");
    let local = dir.path().join("data/pipelines/team-a/artifacts/hello-1");
    assert!(!local.exists(), "no artifact went to the data dir");
}
