//! Peer test: the kfp SDK itself loads what kf exports.
//!
//! Exports a pipeline built with the kf-dag builder (and the IR of every
//! corpus pipeline) as KFP v2 IR YAML, then asks kfp to (1) parse each file
//! strictly into the `PipelineSpec` protobuf, where an unknown field fails,
//! and (2) load it with `kfp.components.load_component_from_file`.
//!
//! Needs a Python with kfp 2.17.3 (`/work/shared/python/install-kfp.sh`):
//! `KF_KFP_PYTHON` names its interpreter (default `python3`). Without it the
//! test is skipped, unless `KF_REQUIRE_PEERS=1`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use kf_dag::builder::{Dataset, FinalStatus, List, Model, PipelineBuilder};
use kf_dag::ir::{ContainerSpec, Pipeline, RetryPolicy};
use kf_dag::kfp::KfpPipeline;
use serde_json::{Value, json};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/kfp");

const CHECK: &str = r#"
import json, sys, yaml
from google.protobuf import json_format
from kfp import components
from kfp.pipeline_spec import pipeline_spec_pb2

out = {}
for path in sys.argv[1:]:
    with open(path) as f:
        docs = list(yaml.safe_load_all(f))
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(docs[0], spec)  # strict: an unknown field raises
    comp = components.load_component_from_file(path)
    out[path] = {
        "name": comp.name,
        "inputs": sorted((comp.component_spec.inputs or {}).keys()),
        "outputs": sorted((comp.component_spec.outputs or {}).keys()),
        "tasks": sorted(spec.root.dag.tasks.keys()),
        "components": sorted(spec.components.keys()),
    }
print(json.dumps(out))
"#;

/// The kfp Python, or `None` (after checking `KF_REQUIRE_PEERS`) when there is none.
fn kfp_python() -> Option<String> {
    let python = std::env::var("KF_KFP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import kfp, sys; sys.exit(0 if kfp.__version__.startswith('2.') else 1)"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let required = std::env::var("KF_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "KF_REQUIRE_PEERS=1 but {python} cannot import kfp 2.x; set KF_KFP_PYTHON to a kfp venv's python"
    );
    eprintln!("skipped: {python} cannot import kfp 2.x (set KF_KFP_PYTHON, or KF_REQUIRE_PEERS=1 to fail)");
    None
}

/// A pipeline using every builder feature KFP can express: parameters with
/// defaults, artifacts, a ParallelFor collecting outputs, a condition, a retry,
/// caching off, and an exit-handler-style final-status task.
fn builder_pipeline() -> Pipeline {
    let mut p = PipelineBuilder::new("kf-exported");
    p.description("built with the kf-dag builder");
    let urls = p.parameter_with_default::<List>("urls", vec![json!("a"), json!("b")]);
    let lr = p.parameter_with_default::<f64>("lr", 0.1);

    let mut fetch = p.container_component("comp-fetch", ContainerSpec::new("python:3.11"));
    let url = fetch.input::<String>("url");
    let data = fetch.output_artifact::<Dataset>("data");
    let rows = fetch.output::<i64>("rows");
    fetch.command([
        "sh",
        "-c",
        "echo \"$0\" > \"$1\"; echo 3 > \"$2\"",
        &url.placeholder(),
        &data.path(),
        &rows.file(),
    ]);
    let fetch = p.add_component(fetch);

    let mut body = p.dag_component("comp-for-loop-1");
    let item = body.parameter::<String>("url");
    let t = body.task("fetch", &fetch).set(&url, &item).done();
    let counts = body.collect("counts", &t.output(&rows));
    let item_in = body.input_slot(&item);
    let all = body.parameter::<List>("urls");
    let list_in = body.input_slot(&all);
    let body = p.add_dag(body);
    let fan = p.task("for-loop-1", &body).set(&list_in, &urls).parallel_for(&item_in, &list_in, Some(2)).done();

    let mut train = p.container_component("comp-train", ContainerSpec::new("python:3.11"));
    let total = train.input::<List>("counts");
    let rate = train.input::<f64>("lr");
    let model = train.output_artifact::<Model>("model");
    let score = train.output::<f64>("score");
    train.args(["train", &total.placeholder(), &rate.placeholder(), &model.path(), &score.file()]);
    let train = p.add_component(train);
    let trained = p
        .task("train", &train)
        .set(&total, &fan.output(&counts))
        .set(&rate, &lr)
        .retry(RetryPolicy { max_retry_count: 2, ..RetryPolicy::default() })
        .caching(kf_dag::ir::CachingOptions { enabled: false, key: None })
        .done();

    let mut publish = p.container_component("comp-publish", ContainerSpec::new("python:3.11"));
    let published = publish.input_artifact::<Model>("model");
    let publish_score = publish.input::<f64>("score");
    publish.command(["cp", &published.path(), "/tmp/model"]);
    let publish = p.add_component(publish);
    p.task("publish", &publish)
        .set_artifact(&published, &trained.output_artifact(&model))
        .set(&publish_score, &trained.output(&score))
        .when("inputs.parameter_values['score'] > 0.5")
        .done();

    let mut notify = p.container_component("comp-notify", ContainerSpec::new("python:3.11"));
    let status = notify.input::<FinalStatus>("status");
    notify.command(["echo", &status.placeholder()]);
    let notify = p.add_component(notify);
    p.task("notify", &notify).final_status_of(&status, &trained).done();
    p.build().expect("the builder pipeline validates").into_pipeline()
}

fn write_yaml(dir: &Path, name: &str, kfp: &KfpPipeline) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let yaml = serde_saphyr::to_string_multiple(&kfp.to_values()).expect("YAML");
    std::fs::write(&path, yaml).expect("write");
    path
}

#[test]
fn kfp_loads_what_kf_exports() {
    let Some(python) = kfp_python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let built = builder_pipeline();
    let built_kfp = KfpPipeline::from_pipeline(&built).expect("exports");
    built_kfp.validate().expect("the export validates");
    let mut files = vec![write_yaml(dir.path(), "built", &built_kfp)];
    let mut corpus: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    corpus.sort();
    for path in &corpus {
        let text = std::fs::read_to_string(path).expect("read");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        let ir = KfpPipeline::from_values(&docs).and_then(|k| k.to_pipeline()).expect("imports");
        let exported = KfpPipeline::from_pipeline(&ir).expect("exports");
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
        files.push(write_yaml(dir.path(), stem, &exported));
    }
    let script = dir.path().join("check.py");
    std::fs::write(&script, CHECK).expect("write script");
    let output = Command::new(&python).arg(&script).args(&files).output().expect("run python");
    assert!(output.status.success(), "kfp rejected an export:\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report.as_object().map(|o| o.len()), Some(files.len()));

    let built_report = &report[files[0].to_str().expect("utf-8 path")];
    assert_eq!(built_report["name"], json!("kf-exported"));
    assert_eq!(built_report["inputs"], json!(["lr", "urls"]));
    assert_eq!(built_report["tasks"], json!(["for-loop-1", "notify", "publish", "train"]));
    assert_eq!(
        built_report["components"],
        json!(["comp-fetch", "comp-for-loop-1", "comp-notify", "comp-publish", "comp-train"])
    );
    for (path, file) in corpus.iter().zip(&files[1..]) {
        let original =
            serde_saphyr::from_multiple::<Value>(&std::fs::read_to_string(path).expect("read")).expect("YAML");
        let tasks: Vec<&String> = original[0]["root"]["dag"]["tasks"].as_object().expect("tasks").keys().collect();
        let entry = &report[file.to_str().expect("utf-8 path")];
        assert_eq!(entry["tasks"], json!(tasks), "{}", path.display());
        assert_eq!(
            entry["name"].as_str().map(|s| s.replace('_', "-")),
            original[0]["pipelineInfo"]["name"].as_str().map(str::to_owned),
            "{}",
            path.display()
        );
    }
}
