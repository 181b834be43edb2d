//! The dashboard as a person uses it: a real headless Chromium (through
//! chromedriver's W3C WebDriver API) signs in to a real `kf server`, clicks
//! through runs, tasks, experiments and the registry, and reads what the
//! page shows. Objects are created through the APIs first, as users would.
//! Set KF_DASHBOARD_SCREENSHOTS=DIR to keep a PNG of every view.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::webdriver::Browser;
use common::{Server, call, json_field, ok, poll, start, trainjob};

const CONFIG: &str = r#"
namespace = "team-a"
cluster_admins = ["root"]
[tokens]
t-root = "root"
t-alice = "alice"
t-bob = "bob"
"#;

/// Two steps: `say` logs and writes the `greeting` artifact, `shout` reads it.
const HELLO: &str = r#"name: hello
components:
  say:
    outputs: {artifacts: {greeting: {type: system.Dataset}}}
    container:
      image: alpine
      command: [sh, -c, 'echo "saying hello to kf"; echo "a warning" >&2; printf "hello kf" > "$0"', "{{$.outputs.artifacts['greeting'].path}}"]
  shout:
    inputs: {artifacts: {text: {type: system.Dataset}}}
    container:
      image: alpine
      command: [sh, -c, 'tr a-z A-Z < "$0"', "{{$.inputs.artifacts['text'].path}}"]
tasks:
  say: {component: say}
  shout:
    component: shout
    artifacts: {text: {task: say, output: greeting}}
"#;

const SWEEP: &str = include_str!("../../../kf-dag/examples/pipelines/sweep.yaml");
const BROKEN: &str = "name: broken\ncomponents:\n  fail:\n    container:\n      image: alpine\n      command: [sh, -c, 'echo no data >&2; exit 4']\ntasks:\n  fail: {component: fail}\n";
const SLOW: &str = "name: slow\ncomponents:\n  wait:\n    container:\n      image: alpine\n      command: [sh, -c, 'sleep 2; echo done']\ntasks:\n  wait: {component: wait}\n";

const EXPERIMENT: &str = r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: quad}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parallelTrialCount: 2
  maxTrialCount: 5
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: unused
                command: [sh, -c, "awk 'BEGIN { printf \"loss=%.6f\\n\", (${trialParameters.x} - 0.3)^2 }'"]
"#;

/// The browser, or `None` (after saying so loudly) when it is not installed
/// and KF_REQUIRE_PEERS does not demand it.
fn browser(test: &str) -> Option<Browser> {
    let browser = Browser::start();
    if browser.is_none() {
        assert!(
            std::env::var("KF_REQUIRE_PEERS").as_deref() != Ok("1"),
            "chromium and chromedriver are not installed; KF_REQUIRE_PEERS=1 makes this a failure \
             (apt-get install -y chromium chromium-driver)"
        );
        eprintln!("SKIPPED {test}: chromium or chromedriver is not installed");
    }
    browser
}

fn snap(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("KF_DASHBOARD_SCREENSHOTS") {
        browser.screenshot(&std::path::Path::new(&dir).join(format!("{name}.png")));
    }
}

fn sign_in(browser: &Browser, s: &Server, token: &str) {
    browser.goto(&format!("http://{}/", s.host));
    browser.wait_text("#signin h1", "Sign in");
    browser.type_into("#token", token);
    browser.click("#signin-button");
}

/// The namespaces the selector offers.
fn namespaces(browser: &Browser) -> Vec<String> {
    browser.wait("the namespace selector", Duration::from_secs(20), |b| {
        let options = b.texts("#ns-select option");
        (!options.is_empty()).then_some(options)
    })
}

#[test]
fn a_person_clicks_through_runs_experiments_and_the_registry() {
    let Some(b) = browser("a_person_clicks_through_runs_experiments_and_the_registry") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let s = start(dir.path(), CONFIG);
    for (ns, owner) in [("team-a", "alice"), ("team-b", "bob")] {
        ok(&s, "POST", "/api/tenancy/v1/profiles", "t-root", &format!(r#"{{"name": "{ns}", "owner": "{owner}"}}"#));
    }
    let runs = "/api/pipelines/v1/namespaces/team-a/runs";
    let submit = |pipeline: &str, id: &str| serde_json::json!({"pipeline": pipeline, "run_id": id}).to_string();
    ok(&s, "POST", runs, "t-alice", &submit(HELLO, "hello-1"));
    ok(&s, "POST", runs, "t-alice", &submit(SWEEP, "sweep-1"));
    ok(&s, "POST", runs, "t-alice", &submit(BROKEN, "broken-1"));
    ok(&s, "POST", "/api/pipelines/v1/namespaces/team-b/runs", "t-bob", &submit(SLOW, "bob-run"));
    ok(&s, "POST", "/api/tuning/v1/namespaces/team-a/experiments", "t-alice", EXPERIMENT);
    let studies = "/api/tuning/v1/namespaces/team-a/studies";
    let space = r#"{"objective": {"type": "minimize"}, "parameters": [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}}]}"#;
    ok(
        &s,
        "POST",
        studies,
        "t-alice",
        &format!(r#"{{"name": "s1", "space": {space}, "algorithm": "random", "seed": 7}}"#),
    );
    ok(&s, "POST", &format!("{studies}/s1/requests"), "t-alice", r#"{"op": "ask"}"#);
    ok(&s, "POST", &format!("{studies}/s1/requests"), "t-alice", r#"{"op": "tell", "id": "0", "value": 0.25}"#);
    let mr = "/api/model_registry/v1alpha3";
    let model =
        ok(&s, "POST", &format!("{mr}/registered_models"), "t-alice", r#"{"name": "iris", "description": "flowers"}"#);
    let version = serde_json::json!({"name": "v1", "registeredModelId": json_field(&model, "id"), "author": "alice",
        "customProperties": {"accuracy": {"metadataType": "MetadataDoubleValue", "double_value": 0.97},
                             "framework": {"metadataType": "MetadataStringValue", "string_value": "onnx"}}});
    let version = ok(&s, "POST", &format!("{mr}/model_versions"), "t-alice", &version.to_string());
    let artifact = r#"{"artifactType": "model-artifact", "name": "iris-onnx", "uri": "s3://models/iris/1/model.onnx",
        "modelFormatName": "onnx", "modelFormatVersion": "13"}"#;
    ok(&s, "POST", &format!("{mr}/model_versions/{}/artifacts", json_field(&version, "id")), "t-alice", artifact);
    // More models than one page of the dashboard's list holds.
    for i in 0..104 {
        ok(&s, "POST", &format!("{mr}/registered_models"), "t-alice", &format!(r#"{{"name": "m-{i:03}"}}"#));
    }
    for run in ["hello-1", "sweep-1", "broken-1"] {
        poll(&s, &format!("{runs}/{run}"), "t-alice", |r| r["state"] == "succeeded" || r["state"] == "failed");
    }
    poll(&s, "/api/tuning/v1/namespaces/team-a/experiments/quad", "t-alice", |x| !x["ended"].is_null());

    // A wrong token is refused on the sign-in form; the right one gets in.
    sign_in(&b, &s, "forged");
    b.wait_text("#signin-error", "401");
    sign_in(&b, &s, "t-alice");
    assert_eq!(namespaces(&b), ["team-a"], "alice sees only her namespace");

    // Runs: the list, the run's DAG coloured by state, a task's log and artifact.
    b.wait_text("h1", "Pipeline runs in team-a");
    snap(&b, "runs");

    // A run started from the page: a bad pipeline is refused with the field named, a good one runs.
    b.click_text("summary", "New run");
    b.type_into("#new-pipeline", "name: x\ntasks: {a: {component: nope}}\n");
    b.click("#start-run");
    b.wait_text(".new-run .error", "nope");
    snap(&b, "new-run");
    b.clear("#new-pipeline");
    let talk = "name: talk\ncomponents:\n  speak:\n    container:\n      image: alpine\n      command: [sh, -c, 'echo hello from the page']\ntasks:\n  speak: {component: speak}\n";
    b.type_into("#new-pipeline", talk);
    b.type_into("#new-run-id", "from-page");
    b.click("#start-run");
    b.wait_text("h1", "from-page");
    b.wait_text("h1 .state", "succeeded");
    b.click_text("a.task-link", "speak");
    b.wait_text("#log-stdout", "hello from the page");
    b.click_text(".crumbs a", "Runs");
    b.click_text("a.run-link", "hello-1");
    for task in ["say", "shout"] {
        b.wait(&format!("{task}'s node drawn as succeeded"), Duration::from_secs(20), |b| {
            b.all(&format!(r#"#graph g.task.state-succeeded[data-task="{task}"] rect"#)).into_iter().next()
        });
    }
    let node = b.all(r#"#graph g.task[data-task="say"] rect"#).remove(0);
    assert_eq!(b.css_of(&node, "fill").expect("fill"), "rgb(220, 252, 231)", "a succeeded node is green");
    b.wait_text("table", "shout");
    snap(&b, "run");
    b.click(r#"#graph g.task[data-task="say"]"#);
    b.wait_text("#log-stdout", "saying hello to kf");
    b.wait_text("#log-stderr", "a warning");
    b.wait_text("h1", "succeeded");
    let artifact = b.wait_text("td", "greeting");
    assert_eq!(b.text_of(&artifact).expect("text"), "greeting");
    assert_eq!(b.texts("button.download").len(), 1, "one artifact to download");
    snap(&b, "task");
    b.click_text(".crumbs a", "hello-1");
    b.click_text("a.task-link", "shout");
    b.wait_text("#log-stdout", "HELLO KF");

    // Loops and nested DAGs: each node shows its instances' outcome; a failure is red and says why.
    b.goto(&format!("http://{}/#/ns/team-a/runs/sweep-1", s.host));
    for (component, task) in [("", "sweep"), ("", "report"), ("", "notify"), ("body", "train")] {
        let css = format!(r#"#graph g.task.state-succeeded[data-component="{component}"][data-task="{task}"]"#);
        b.wait(&css, Duration::from_secs(20), |b| b.all(&css).into_iter().next());
    }
    b.wait_text("a.task-link", "sweep[2].train");
    snap(&b, "sweep");
    b.goto(&format!("http://{}/#/ns/team-a/runs/broken-1", s.host));
    b.wait_text("h1 .state", "failed");
    let node = b.wait("the failed node", Duration::from_secs(20), |b| {
        b.all(r#"#graph g.task.state-failed[data-task="fail"] rect"#).into_iter().next()
    });
    assert_eq!(b.css_of(&node, "fill").expect("fill"), "rgb(254, 226, 226)", "a failed node is red");
    b.click(r#"#graph g.task[data-task="fail"]"#);
    b.wait_text("dd", "exit code 4");
    b.wait_text("#log-stderr", "no data");
    snap(&b, "failed-task");

    // A run in flight: its node turns from running to succeeded without a reload.
    ok(&s, "POST", runs, "t-alice", &submit(SLOW, "slow-1"));
    b.goto(&format!("http://{}/#/ns/team-a/runs/slow-1", s.host));
    b.wait("the wait node running", Duration::from_secs(20), |b| {
        b.all(r#"#graph g.task.state-running[data-task="wait"]"#).into_iter().next()
    });
    b.wait_text("dd", "live");
    snap(&b, "run-live");
    b.wait("the wait node succeeded", Duration::from_secs(20), |b| {
        b.all(r#"#graph g.task.state-succeeded[data-task="wait"]"#).into_iter().next()
    });
    b.wait_text("h1 .state", "succeeded");

    // A run can be cancelled from its page.
    let long = SLOW.replace("sleep 2", "sleep 30").replace("name: slow", "name: long");
    ok(&s, "POST", runs, "t-alice", &submit(&long, "long-1"));
    b.goto(&format!("http://{}/#/ns/team-a/runs/long-1", s.host));
    b.click("#cancel-run");
    b.wait_text("h1 .state", "cancelled");
    b.wait("the node cancelled", Duration::from_secs(20), |b| {
        b.all(r#"#graph g.task.state-cancelled[data-task="wait"]"#).into_iter().next()
    });
    assert!(b.all("#cancel-run").is_empty(), "nothing left to cancel");

    // A retried task: every attempt's log, the latest first.
    let marker = dir.path().join("tried");
    let flaky = format!(
        "name: flaky\ncomponents:\n  flaky:\n    container:\n      image: alpine\n      command: [sh, -c, 'if [ -f \"$0\" ]; \
         then echo second try; else touch \"$0\"; echo first try; exit 1; fi', {:?}]\ntasks:\n  flaky:\n    component: flaky\n    \
         retry: {{maxRetryCount: 1, backoff: 0s}}\n",
        marker.display().to_string()
    );
    ok(&s, "POST", runs, "t-alice", &submit(&flaky, "flaky-1"));
    poll(&s, &format!("{runs}/flaky-1"), "t-alice", |r| r["state"] == "succeeded" || r["state"] == "failed");
    b.goto(&format!("http://{}/#/ns/team-a/runs/flaky-1/tasks/flaky", s.host));
    b.wait_text("#log-stdout", "second try");
    b.click_text("button.attempt", "#1");
    b.wait_text("#log-stdout", "first try");
    snap(&b, "attempts");

    // Experiments: the history plot has one point per trial, the table one row per trial.
    b.click_text("#nav a", "Experiments");
    b.wait_text("table", "minimize loss");
    let study = b.wait_text("table tbody tr", "s1");
    let study = b.text_of(&study).expect("text");
    assert!(study.contains("random") && study.contains("0.25 (trial 0: x="), "{study}");
    snap(&b, "experiments");
    b.click_text("a.experiment-link", "quad");
    let points = b.wait("five trial points", Duration::from_secs(20), |b| {
        let points = b.all("svg#history circle.trial-point");
        (points.len() == 5).then_some(points)
    });
    assert_eq!(points.len(), 5);
    assert_eq!(b.all("svg#history polyline.best").len(), 1, "the best-so-far line");
    let rows = b.texts("table tbody tr");
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r.contains("Succeeded")), "{rows:?}");
    assert!(b.page_text().contains("minimize loss"), "{}", b.page_text());
    // A trial's output, as it printed it.
    b.click("button.trial-log");
    let log = b.wait_text("#trial-log", "loss=");
    let log = b.text_of(&log).expect("text");
    assert!(log.lines().any(|l| l.starts_with("loss=0.")), "{log}");
    snap(&b, "experiment");

    // Registry: a model, then its version's metadata and artifact.
    b.click_text("#nav a", "Models");
    b.click_text("a.model-link", "iris");
    b.wait_text("h1", "iris");
    snap(&b, "model");
    b.click_text("a.version-link", "v1");
    b.wait_text("h1", "iris v1");
    let text = b.wait_text("table", "accuracy");
    let metadata = b.text_of(&text).expect("text");
    assert!(metadata.contains("0.97") && metadata.contains("framework") && metadata.contains("onnx"), "{metadata}");
    b.wait_text("table", "iris-onnx");
    assert!(b.page_text().contains("s3://models/iris/1/model.onnx"));
    snap(&b, "version");

    // 105 models: a page of 100, then "More" fetches the rest with the page token.
    b.click_text("#nav a", "Models");
    let first = b.wait("a page of models", Duration::from_secs(20), |b| {
        let rows = b.all("table tbody tr");
        (rows.len() == 100).then_some(rows)
    });
    assert_eq!(first.len(), 100);
    b.click("button.more");
    b.wait("every model", Duration::from_secs(20), |b| (b.all("table tbody tr").len() == 105).then_some(()));
    assert!(b.all("button.more").is_empty(), "no page after the last");
    assert!(b.page_text().contains("m-103"), "the last model is listed");

    // Made a viewer of team-b, alice finds it in the selector and switches to it.
    ok(&s, "PUT", "/api/tenancy/v1/profiles/team-b/contributors/alice", "t-bob", r#"{"role": "view"}"#);
    b.goto(&format!("http://{}/", s.host));
    assert_eq!(namespaces(&b), ["team-a", "team-b"]);
    b.click(r#"#ns-select option[value="team-b"]"#);
    b.wait_text("h1", "Pipeline runs in team-b");
    b.wait_text("a.run-link", "bob-run");
    ok(&s, "DELETE", "/api/tenancy/v1/profiles/team-b/contributors/alice", "t-bob", "");

    // Bob signs in: his namespace only, and none of team-a's objects even by URL.
    b.click("#signout");
    b.wait_text("#signin h1", "Sign in");
    sign_in(&b, &s, "t-bob");
    assert_eq!(namespaces(&b), ["team-b"], "bob sees only his namespace");
    b.wait_text("a.run-link", "bob-run");
    assert!(!b.page_text().contains("hello-1"));
    for (path, hidden) in [
        ("#/ns/team-a/runs", "hello-1"),
        ("#/ns/team-a/runs/hello-1", "shout"),
        ("#/ns/team-a/experiments", "quad"),
        ("#/ns/team-a/experiments/quad", "Succeeded"),
        ("#/models", "iris"),
    ] {
        b.goto(&format!("http://{}/{path}", s.host));
        b.wait_text(".error", "403");
        let shown = b.page_text();
        assert!(!shown.contains(hidden), "{path} shows {hidden}: {shown}");
    }
    snap(&b, "forbidden");

    no_policy_broken(&b);
}

/// Through all the test did, the page broke no rule of its own
/// Content-Security-Policy and threw no script error.
fn no_policy_broken(b: &Browser) {
    let console = b.console();
    let broken: Vec<&String> =
        console.iter().filter(|m| m.contains("Content Security Policy") || m.contains("Uncaught")).collect();
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn training_jobs_show_each_rank_and_served_models_their_traffic() {
    let Some(b) = browser("training_jobs_show_each_rank_and_served_models_their_traffic") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let second = dir.path().join("models/iris/2");
    std::fs::create_dir_all(&second).expect("dir");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models/iris-logreg.onnx");
    std::fs::copy(model, second.join("model.onnx")).expect("copy");
    let canary = "[[canary]]\nmodel = \"iris\"\nstable = \"1\"\ncanary = \"2\"\npercent = 30\n";
    let s = start(dir.path(), &format!("{CONFIG}{canary}"));
    for (ns, owner) in [("team-a", "alice"), ("team-b", "bob")] {
        ok(&s, "POST", "/api/tenancy/v1/profiles", "t-root", &format!(r#"{{"name": "{ns}", "owner": "{owner}"}}"#));
    }
    let jobs = "/api/training/v1/namespaces/team-a/trainjobs";
    ok(&s, "POST", jobs, "t-alice", &trainjob("demo", "echo rank=$RANK world=$WORLD_SIZE; echo loss=0.5 progress=100"));
    ok(&s, "POST", jobs, "t-alice", &trainjob("broken", "if [ $RANK = 2 ]; then echo boom >&2; exit 3; fi; echo fine"));

    // Training: the list, then a job's per-rank table and one rank's log.
    sign_in(&b, &s, "t-alice");
    b.wait_text("h1", "Pipeline runs in team-a");
    b.click_text("#nav a", "Training jobs");
    b.wait_text("a.trainjob-link", "demo");
    b.wait("both jobs to finish", Duration::from_secs(20), |b| {
        let rows = b.texts("table tbody tr");
        let done = rows.iter().any(|r| r.contains("demo") && r.contains("Complete"))
            && rows.iter().any(|r| r.contains("broken") && r.contains("Failed"));
        done.then_some(())
    });
    snap(&b, "trainjobs");
    b.click_text("a.trainjob-link", "demo");
    let rows = b.wait("four succeeded processes", Duration::from_secs(20), |b| {
        let rows = b.texts("tr[data-process]");
        (rows.len() == 4 && rows.iter().all(|r| r.contains("Succeeded"))).then_some(rows)
    });
    for (rank, row) in rows.iter().enumerate() {
        assert!(row.starts_with(&format!("rank {rank} node {rank} Succeeded")), "{rows:?}");
    }
    let (_, detail) = call(&s, "GET", &format!("{jobs}/demo"), Some("t-alice"), "");
    let detail: serde_json::Value = serde_json::from_str(&detail).expect("JSON");
    let index =
        detail["processes"].as_array().and_then(|ps| ps.iter().find(|p| p["rank"] == 3)).expect("rank 3")["index"]
            .clone();
    b.click(&format!(r#"tr[data-process="{index}"] button.rank-log"#));
    b.wait_text("#rank-log", "rank=3 world=4");
    b.wait_text("dd", "100%");
    snap(&b, "trainjob");
    b.click_text(".crumbs a", "Training jobs");
    b.click_text("a.trainjob-link", "broken");
    let failed = b.wait_text("tr[data-process]", "Failed");
    let row = b.text_of(&failed).expect("text");
    assert!(row.ends_with("3 Log") || row.contains(" 3 "), "the failed rank shows exit code 3: {row}");
    b.wait_text("h1 .state", "Failed");

    // Serving: both versions ready, the 70/30 split, and a request rate measured live.
    b.click_text("#nav a", "Serving");
    let iris = b.wait_text(r#"tr[data-model="iris"]"#, "v2 ready");
    let row = b.text_of(&iris).expect("text");
    assert!(row.contains("v1 ready") && row.contains("v1 70%") && row.contains("v2 30%"), "{row}");
    let infer = r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;
    let rate = b.wait("a request rate above zero", Duration::from_secs(20), |b| {
        for _ in 0..3 {
            ok(&s, "POST", "/v2/models/iris/infer", "t-alice", infer);
        }
        let row = b.texts(r#"tr[data-model="iris"] td"#);
        row.get(3).filter(|r| r.ends_with("req/s") && !r.starts_with("0.00")).cloned()
    });
    assert!(rate.ends_with("req/s"), "{rate}");
    b.wait_text(r#"tr[data-model="iris"]"#, "served so far");
    snap(&b, "serving");

    // Bob sees none of it.
    b.click("#signout");
    sign_in(&b, &s, "t-bob");
    assert_eq!(namespaces(&b), ["team-b"]);
    for (path, hidden) in
        [("#/ns/team-a/trainjobs", "demo"), ("#/ns/team-a/trainjobs/demo", "Succeeded"), ("#/serving", "iris")]
    {
        b.goto(&format!("http://{}/{path}", s.host));
        b.wait_text(".error", "403");
        let shown = b.page_text();
        assert!(!shown.contains(hidden), "{path} shows {hidden}: {shown}");
    }
    no_policy_broken(&b);
}

/// An authenticating proxy in front of `server`, as oauth2-proxy or Istio
/// would be: every request goes on with `kubeflow-userid: user` (one
/// request per connection). Returns the address to browse.
fn identity_proxy(server: &str, user: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = server.to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = server.clone();
            std::thread::spawn(move || forward(client, &server, user));
        }
    });
    addr
}

fn forward(mut client: TcpStream, server: &str, user: &str) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0usize);
    while request.len() < head_end + 4 + length {
        let n = client.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    // What the browser says about itself is dropped; the proxy says who it is.
    let kept: Vec<&str> = head
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:") && !l.starts_with("kubeflow-")
        })
        .collect();
    let mut upstream = TcpStream::connect(server)?;
    write!(upstream, "{}\r\nkubeflow-userid: {user}\r\nConnection: close\r\n\r\n", kept.join("\r\n"))?;
    upstream.write_all(&request[head_end + 4..])?;
    std::io::copy(&mut upstream, &mut client)?;
    Ok(())
}

#[test]
fn behind_a_trusted_proxy_nobody_signs_in() {
    let Some(b) = browser("behind_a_trusted_proxy_nobody_signs_in") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let s = start(dir.path(), &format!("trusted_proxies = [\"127.0.0.1/32\"]\n{CONFIG}"));
    ok(&s, "POST", "/api/tenancy/v1/profiles", "t-root", r#"{"name": "team-a", "owner": "alice"}"#);
    ok(&s, "POST", "/api/tenancy/v1/profiles", "t-root", r#"{"name": "team-b", "owner": "bob"}"#);
    let proxy = identity_proxy(&s.host, "alice");
    b.goto(&format!("http://{proxy}/"));
    assert_eq!(namespaces(&b), ["team-a"], "the proxy's user, and only her namespaces");
    b.wait_text("h1", "Pipeline runs in team-a");
    assert_eq!(b.texts("#signin h1"), [""], "no sign-in form");
    assert_eq!(b.texts("#signout"), [""], "nothing to sign out of: the proxy owns the session");
    no_policy_broken(&b);
}
