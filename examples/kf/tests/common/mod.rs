//! Shared by the tests that drive `kf server` over real HTTP: start one on
//! 127.0.0.1:0 with a TOML config, and send raw requests (paths go out
//! exactly as written, so traversal attempts reach the server unnormalised).
#![allow(dead_code)] // each test binary uses its own subset

pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// A running `kf server`, killed on drop.
pub struct Server {
    child: Child,
    pub host: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(dir: &std::path::Path, config: &str) -> Server {
    let models = dir.join("models/iris/1");
    std::fs::create_dir_all(&models).expect("models dir");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models/iris-logreg.onnx");
    std::fs::copy(model, models.join("model.onnx")).expect("the iris model");
    let config_path = dir.join("kf.toml");
    std::fs::write(&config_path, format!("model_repository = {:?}\n{config}", dir.join("models"))).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(["server", "--addr", "127.0.0.1:0", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kf server starts");
    let stderr = child.stderr.take().expect("stderr");
    let host = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("http://").nth(1).map(|r| r.split_whitespace().next().unwrap_or("").to_owned()))
        .expect("kf server says where it listens");
    Server { child, host }
}

/// One request; the status and the body.
pub fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(server, method, path, &headers, body)
}

/// One request with exactly these extra headers; the status and the body.
/// A chunked reply body is returned as it came (tests only search it).
pub fn request(server: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.host).expect("connect");
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        server.host,
        body.len()
    )
    .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    let status = reply.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A string field of a JSON body.
pub fn json_field(body: &str, field: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON");
    value[field].as_str().expect("a string field").to_owned()
}

/// Polls a GET of `path` as the holder of `token` until `done` holds for
/// its JSON body (at most ~30 s); every answer must be 200.
pub fn poll(server: &Server, path: &str, token: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..300 {
        let (status, body) = call(server, "GET", path, Some(token), "");
        assert_eq!(status, 200, "{path}: {body}");
        let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if done(&value) {
            return value;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{path} never got there");
}

/// A TrainJob of 2 nodes × 2 processes running `script`, followed by the
/// corpus torch runtime: one body, as the training API takes it.
pub fn trainjob(name: &str, script: &str) -> String {
    let runtime = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/trainer/manifests__base__runtimes__torch_distributed.yaml"
    );
    format!(
        "apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata:\n  name: {name}\nspec:\n  runtimeRef:\n    \
         name: torch-distributed\n  trainer:\n    numNodes: 2\n    numProcPerNode: 2\n    command: [sh, -c, {script:?}]\n---\n{}",
        std::fs::read_to_string(runtime).expect("the corpus runtime")
    )
}

/// A Katib Experiment of `trials` shell trials printing `loss=(x-0.3)^2`
/// after `sleep` seconds.
pub fn experiment(name: &str, trials: u32, sleep: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  parallelTrialCount: 2
  maxTrialCount: {trials}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: unused
                command: [sh, -c, "sleep {sleep} && awk 'BEGIN {{ printf \"loss=%.10f\\n\", (${{trialParameters.x}} - 0.3)^2 }}'"]
"#
    )
}

/// A setup request that must succeed (any 2xx); its body.
pub fn ok(server: &Server, method: &str, path: &str, token: &str, body: &str) -> String {
    let (status, reply) = call(server, method, path, Some(token), body);
    assert!((200..300).contains(&status), "setup {method} {path}: {status} {reply}");
    reply
}
