//! `kf serve`, driven as a user drives it: flags in, a live OIP v2 server
//! out, stopped with SIGTERM. The last test runs the shared conformance probe
//! (tritonclient) against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

#[path = "common/moto.rs"]
mod moto;

fn kf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kf")).args(args).output().expect("kf runs")
}

fn shared(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")).join(path)
}

fn model_arg(name: &str, file: &str) -> String {
    format!("{name}={}", shared(&format!("models/{file}")).display())
}

/// A running `kf serve` on a free port; SIGTERM on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[String]) -> Server {
        Server::start_with(args, &[])
    }

    fn start_with(args: &[String], env: &[(&str, String)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
            .arg("serve")
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kf serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        let addr = line
            .trim()
            .strip_prefix("kf serve: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        Server { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One HTTP/1.1 exchange; returns the status and body.
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read");
        let status = reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        terminate(&self.child);
        let status = self.child.wait().expect("exits");
        std::mem::forget(self);
        status
    }
}

fn terminate(child: &Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&self.child);
        let _ = self.child.wait();
    }
}

#[test]
fn nothing_to_serve_is_a_usage_error() {
    let out = kf(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model NAME=PATH.onnx"));
    let out = kf(&["serve", "--model", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME=PATH.onnx"));
}

#[test]
fn models_that_do_not_load_stop_the_server_naming_the_reason() {
    let out = kf(&["serve", "--model", "x=/nonexistent/model.onnx", "--addr", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.onnx"));
    let out = kf(&["serve", "--model", &model_arg("gbr", "synth-gbr.skl2onnx.onnx"), "--addr", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TreeEnsembleRegressor"));
}

#[test]
fn serves_models_and_stops_cleanly_on_sigterm() {
    let server = Server::start(&["--model".into(), model_arg("iris-logreg", "iris-logreg.onnx")]);
    let (status, _) = server.request("GET", "/v2/health/ready", "");
    assert_eq!(status, 200);
    let body = std::fs::read_to_string(shared("models/requests/iris-logreg.json")).expect("request body");
    let (status, reply) = server.request("POST", "/v2/models/iris-logreg/infer", &body);
    assert_eq!(status, 200, "{reply}");
    let doc: serde_json::Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(doc["model_name"], "iris-logreg");
    assert_eq!(doc["model_version"], "1");
    assert_eq!(doc["outputs"][0]["name"], "label");
    let (status, reply) = server.request("POST", "/v2/models/nope/infer", &body);
    assert_eq!(status, 404, "{reply}");
    let (status, metrics) = server.request("GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"kf_serve_requests_total{model="iris-logreg",code="200"} 1"#), "{metrics}");
    assert!(server.stop().success(), "graceful shutdown exits 0");
}

#[test]
fn serves_a_model_repository_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (model, version, file) in
        [("sum", "1", "sum.onnx"), ("sum", "2", "sum.onnx"), ("gbr", "1", "synth-gbr.skl2onnx.onnx")]
    {
        let target = dir.path().join(model).join(version);
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::copy(shared(&format!("models/{file}")), target.join("model.onnx")).expect("copy");
    }
    let server = Server::start(&["--model-repository".into(), dir.path().display().to_string()]);
    let (status, reply) = server.request("GET", "/v2/models/sum", "");
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains(r#""versions":["1","2"]"#), "{reply}");
    let one = r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}"#;
    let (status, reply) = server.request("POST", "/v2/models/sum/versions/1/infer", one);
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains(r#""model_version":"1""#) && reply.contains("[10.0]"), "{reply}");
    let (status, reply) = server.request("GET", "/v2/models/gbr/ready", "");
    assert_eq!(status, 503, "a model that failed to load is unavailable: {reply}");
    let (status, _) = server.request("GET", "/v2/health/ready", "");
    assert_eq!(status, 503);
    let (status, reply) = server.request("POST", "/v2/repository/index", "");
    assert_eq!(status, 200);
    assert!(reply.contains("TreeEnsembleRegressor"), "{reply}");
}

/// `s3://` repositories: models and their config read from a real
/// S3-compatible server, and a model uploaded later loaded without a restart.
#[test]
fn serves_a_model_repository_in_s3_and_loads_new_models_on_request() {
    let Some(moto) = moto::Moto::start() else { return };
    moto.create_bucket("models");
    let sum = std::fs::read(shared("models/sum.onnx")).expect("sum.onnx");
    moto.put_object("models", "prod/sum/1/model.onnx", &sum);
    moto.put_object("models", "prod/sum/config.toml", b"[batching]\nmax_batch_rows = 16\nmax_latency_ms = 1\n");
    moto.put_object("models", "prod/bad/1/model.onnx", b"not onnx");
    moto.put_object("models", "elsewhere/other/1/model.onnx", &sum);
    let server = Server::start_with(&["--model-repository".into(), "s3://models/prod".into()], &moto.env());
    let (status, reply) = server.request("POST", "/v2/repository/index", "");
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_str(&reply).expect("index");
    let rows: Vec<(&str, &str)> = index
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["name"].as_str().unwrap_or(""), r["state"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(rows, [("bad", "UNAVAILABLE"), ("sum", "READY")], "only prod/, each with its state: {reply}");
    let one = r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}"#;
    let (status, reply) = server.request("POST", "/v2/models/sum/infer", one);
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("[10.0]"), "{reply}");
    // Uploaded while serving: unknown until loaded, then served.
    moto.put_object("models", "prod/late/4/model.onnx", &sum);
    assert_eq!(server.request("GET", "/v2/models/late/ready", "").0, 404);
    let (status, reply) = server.request("POST", "/v2/repository/models/late/load", "");
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = server.request("POST", "/v2/models/late/versions/4/infer", one);
    assert_eq!(status, 200, "{reply}");
    assert!(server.stop().success());
}

/// Proxy mode: one `kf serve` forwards a model to another; answers are the
/// backend's, and a backend that goes away is 503 at the front, not a hang.
#[test]
fn forwards_remote_models_to_another_v2_server() {
    let backend = Server::start(&["--model".into(), model_arg("iris", "iris-logreg.onnx")]);
    let front = Server::start(&[
        "--remote".into(),
        format!("flowers={}/v2/models/iris", backend.url()),
        "--remote".into(),
        format!("iris={}", backend.url()),
    ]);
    let body = std::fs::read_to_string(shared("models/requests/iris-logreg.json")).expect("request");
    let (status, direct) = backend.request("POST", "/v2/models/iris/infer", &body);
    assert_eq!(status, 200, "{direct}");
    let outputs = |reply: &str| serde_json::from_str::<serde_json::Value>(reply).expect("json")["outputs"].clone();
    for name in ["flowers", "iris"] {
        let (status, proxied) = front.request("POST", &format!("/v2/models/{name}/infer"), &body);
        assert_eq!(status, 200, "{proxied}");
        assert_eq!(outputs(&proxied), outputs(&direct), "{name}");
        let (status, metadata) = front.request("GET", &format!("/v2/models/{name}"), "");
        assert_eq!(status, 200);
        assert!(metadata.contains(&format!(r#""name":"{name}""#)), "{metadata}");
    }
    assert!(backend.stop().success());
    let (status, reply) = front.request("POST", "/v2/models/iris/infer", &body);
    assert_eq!(status, 503, "{reply}");
    assert_eq!(front.request("GET", "/v2/models/iris/ready", "").0, 503);
    assert!(front.stop().success());
}

#[test]
fn a_remote_that_does_not_answer_stops_the_server_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("iris=http://127.0.0.1:{port}");
    let out = kf(&["serve", "--remote", &url, "--addr", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("--remote iris=http://127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn an_unreachable_repository_stops_the_server_naming_it() {
    let out = kf(&["serve", "--model-repository", "/nonexistent/kf-models", "--addr", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/kf-models"), "{stderr}");
}

/// The interpreter with ../shared/python/requirements-serve.txt installed:
/// `KF_SERVE_PYTHON`, else `python3`.
fn probe_python() -> Option<String> {
    let python = std::env::var("KF_SERVE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import numpy, tritonclient.http"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

#[test]
fn passes_the_oip_v2_conformance_probe() {
    let Some(python) = probe_python() else {
        let required = std::env::var("KF_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "KF_REQUIRE_PEERS=1 but no Python with tritonclient: set KF_SERVE_PYTHON to an interpreter with \
             ../shared/python/requirements-serve.txt installed"
        );
        eprintln!("skipping the OIP v2 probe: no Python with tritonclient (set KF_SERVE_PYTHON)");
        return;
    };
    let server = Server::start(&[
        "--model".into(),
        model_arg("iris-logreg", "iris-logreg.onnx"),
        "--model".into(),
        model_arg("sum", "sum.onnx"),
        "--model".into(),
        model_arg("identity", "identity.onnx"),
    ]);
    let out = Command::new(python)
        .arg(shared("conformance/oip_v2_probe.py"))
        .args(["--url", &server.url(), "--model", "iris-logreg"])
        .output()
        .expect("probe runs");
    let report = String::from_utf8_lossy(&out.stdout);
    let last = report.lines().last().unwrap_or_default();
    assert!(
        out.status.success() && last.ends_with(" passed, 0 failed"),
        "probe failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serves_inference_graphs_over_the_served_models() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A Switch on the request: small first features go to one revision of
    // the model, the rest to another; each answers under its own name.
    let graph = dir.path().join("graph.yaml");
    std::fs::write(
        &graph,
        "apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {name: iris-router}\nspec:\n  nodes:\n    root:\n      routerType: Switch\n      steps:\n        - {serviceName: small, condition: \"[@this].#(inputs.0.data.0<6)\"}\n        - {serviceName: large}\n",
    )
    .expect("write graph");
    let server = Server::start(&[
        "--model".into(),
        model_arg("small", "iris-logreg.onnx"),
        "--model".into(),
        model_arg("large", "iris-logreg.onnx"),
        "--graph".into(),
        graph.display().to_string(),
    ]);
    let request = |x: f64| {
        format!(
            r#"{{"inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [{x}, 3.0, 4.0, 1.2]}}]}}"#
        )
    };
    for (x, model) in [(5.0, "small"), (7.0, "large")] {
        let (status, reply) = server.request("POST", "/graphs/iris-router", &request(x));
        assert_eq!(status, 200, "{reply}");
        let doc: serde_json::Value = serde_json::from_str(&reply).expect("json");
        assert_eq!(doc["model_name"], model, "x={x}: {reply}");
    }
    assert_eq!(server.request("POST", "/graphs/nope", &request(5.0)).0, 404);
    assert!(server.stop().success());

    std::fs::write(
        &graph,
        "apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {name: bad}\nspec: {nodes: {}}\n",
    )
    .expect("write");
    let out =
        kf(&["serve", "--model", &model_arg("mlp", "mlp-classifier.onnx"), "--graph", &graph.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("graph.yaml"), "{err}");
}

/// `--traffic`, the file kf-serve's InferenceService controller mounts: a
/// canary split between two versions; a bad file is named, with its field.
#[test]
fn a_traffic_file_puts_a_canary_split_in_front_of_the_latest_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    for version in ["1", "2"] {
        let target = dir.path().join("models/iris").join(version);
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::copy(shared("models/iris-logreg.onnx"), target.join("model.onnx")).expect("copy");
    }
    let traffic = dir.path().join("traffic.json");
    let doc = serde_json::json!({"model": "iris", "stable": {"version": "1", "revision": "iris-predictor-1"},
                                 "canary": {"version": "2", "revision": "iris-predictor-2"}, "canaryPercent": 30});
    std::fs::write(&traffic, doc.to_string()).expect("write");
    let repo = dir.path().join("models").display().to_string();
    let server =
        Server::start(&["--model-repository".into(), repo.clone(), "--traffic".into(), traffic.display().to_string()]);
    let one = r#"{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}"#;
    for _ in 0..10 {
        let (status, reply) = server.request("POST", "/v2/models/iris/infer", one);
        assert_eq!(status, 200, "{reply}");
    }
    drop(server);
    for (bad, field) in [
        (
            serde_json::json!({"model": "iris", "stable": {"version": "1"}, "canary": {}, "canaryPercent": 30}),
            "canary.version",
        ),
        (
            serde_json::json!({"model": "iris", "stable": {"version": "1"}, "canary": {"version": "2"}, "canaryPercent": 130}),
            "canaryPercent",
        ),
        (
            serde_json::json!({"model": "iris", "stable": {"version": "1"}, "canary": {"version": "9"}, "canaryPercent": 30}),
            "9",
        ),
    ] {
        std::fs::write(&traffic, bad.to_string()).expect("write");
        let out = kf(&[
            "serve",
            "--model-repository",
            &repo,
            "--traffic",
            &traffic.display().to_string(),
            "--addr",
            "127.0.0.1:0",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(field) && err.contains("traffic.json"), "{field}: {err}");
    }
}
