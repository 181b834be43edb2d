//! Peer test: the kfp SDK itself loads what kf exports.
//!
//! Exports a pipeline built with the kf-dag builder (and the IR of every
//! corpus pipeline) as KFP v2 IR YAML, then asks kfp to (1) parse each file
//! strictly into the `PipelineSpec` protobuf, where an unknown field fails,
//! and (2) load it with `kfp.components.load_component_from_file`.
//!
//! Another compiles pipelines with the kfp SDK at test time (artifact
//! iterators, several exit handlers, a pipeline as exit task, OneOf inside a
//! nested pipeline, resources from task outputs, importers, f-strings) and
//! checks that kf imports, validates and round-trips each.
//!
//! A third test runs the lightweight Python components of the corpus with
//! kfp's own executor (`kfp.dsl.executor_main`), wired through kf's
//! executor contract: kf builds the `ExecutorInput` and the command line,
//! kfp runs the function, kf reads the outputs back.
//!
//! Needs a Python with kfp 2.17.3 (`../shared/python/install-kfp.sh`):
//! `KF_KFP_PYTHON` names its interpreter (default `python3`). Without it the
//! test is skipped, unless `KF_REQUIRE_PEERS=1`, where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kf_dag::builder::{Dataset, FinalStatus, List, Model, PipelineBuilder};
use kf_dag::ir::{ContainerSpec, Pipeline, RetryPolicy};
use kf_dag::kfp::KfpPipeline;
use kf_dag::kfp::executor_input::{RuntimeArtifact, TaskOutputs, executor_input, task_final_status, task_outputs};
use kf_dag::kfp::{PipelineRoot, RunFacts, Substitution};
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

/// Runs one lightweight component of `pipeline` the way a local executor
/// would, with kfp's executor doing the Python side.
fn run_component(
    python: &str,
    pipeline: &kf_dag::ir::Pipeline,
    component: &str,
    task: &str,
    root: &PipelineRoot,
    parameters: BTreeMap<String, Value>,
    artifacts: BTreeMap<String, Vec<RuntimeArtifact>>,
) -> (TaskOutputs, String) {
    let spec = &pipeline.components[component];
    let task_root = root.task_root("run-1", task).expect("task root");
    let input = executor_input(spec, &parameters, &artifacts, &task_root).expect("executor input");
    let Some(kf_dag::ir::Executor::Container(container)) = pipeline.executor_of(component) else {
        panic!("{component} runs a container")
    };
    let run = RunFacts { job_name: "run-1".into(), task_name: task.into(), ..RunFacts::default() };
    let line = Substitution { input: &input, run: &run, root }.command_line(container).expect("command line");
    // The first three items (`sh -c <script>`) pip-install kfp and then exec
    // the rest; the peer venv has kfp, and a test must not reach the network.
    assert!(line[2].contains("pip install"), "{component}: {:?}", &line[..3]);
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = Path::new(python).parent().filter(|p| !p.as_os_str().is_empty()) {
        path =
            std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path))).expect("PATH");
    }
    let output = Command::new(&line[3]).args(&line[4..]).env("PATH", path).output().expect("run component");
    assert!(output.status.success(), "{component} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let executor_output = std::fs::read_to_string(&input.outputs.output_file).ok();
    let files: BTreeMap<String, String> = input
        .outputs
        .parameters
        .iter()
        .filter_map(|(name, p)| std::fs::read_to_string(&p.output_file).ok().map(|text| (name.clone(), text)))
        .collect();
    let outputs = task_outputs(spec, &input, executor_output.as_deref(), &files).expect("outputs");
    (outputs, String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn kfp_lightweight_components_run_through_kfs_executor_contract() {
    let Some(python) = kfp_python() else { return };
    let text =
        std::fs::read_to_string(format!("{CORPUS}/lightweight_python_functions_with_outputs.yaml")).expect("read");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let pipeline = KfpPipeline::from_values(&docs).and_then(|k| k.to_pipeline()).expect("imports");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = PipelineRoot::new(dir.path().to_str().expect("utf-8 temp dir"));
    let params = |pairs: &[(&str, Value)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();

    let (add, _) = run_component(
        &python,
        &pipeline,
        "comp-add-numbers",
        "add-numbers",
        &root,
        params(&[("first", json!(1)), ("second", json!(2))]),
        BTreeMap::new(),
    );
    assert_eq!(add.parameters["Output"], json!(3));
    let (concat, _) = run_component(
        &python,
        &pipeline,
        "comp-concat-message",
        "concat-message",
        &root,
        params(&[("first", json!("ab")), ("second", json!("cd"))]),
        BTreeMap::new(),
    );
    assert_eq!(concat.parameters["Output"], json!("abcd"));

    let (made, _) = run_component(
        &python,
        &pipeline,
        "comp-output-artifact",
        "output-artifact",
        &root,
        params(&[("number", add.parameters["Output"].clone()), ("message", concat.parameters["Output"].clone())]),
        BTreeMap::new(),
    );
    let dataset = made.artifacts["Output"][0].clone();
    assert_eq!(std::fs::read_to_string(&dataset.uri).expect("dataset"), "abcd\nabcd\nabcd");

    let (tuple, _) = run_component(
        &python,
        &pipeline,
        "comp-output-named-tuple",
        "output-named-tuple",
        &root,
        BTreeMap::new(),
        [("artifact".to_owned(), vec![dataset])].into(),
    );
    assert_eq!(tuple.parameters["scalar"], json!("123"));
    let model = &tuple.artifacts["model"][0];
    assert_eq!(std::fs::read_to_string(&model.uri).expect("model"), "Model contents: abcd\nabcd\nabcd");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(&tuple.artifacts["metrics"][0].uri).expect("metrics"))
            .expect("JSON");
    assert_eq!(metrics["metrics"][0]["numberValue"], json!(0.9));
    assert!(model.uri.starts_with(dir.path().to_str().expect("utf-8")), "{}", model.uri);

    // An exit handler reading PipelineTaskFinalStatus, as kfp's executor parses it.
    let text = std::fs::read_to_string(format!("{CORPUS}/pipeline_with_task_final_status.yaml")).expect("read");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let pipeline = KfpPipeline::from_values(&docs).and_then(|k| k.to_pipeline()).expect("imports");
    let status = task_final_status("local-pipeline-fail-op", "fail-op", Some("Task fail-op failed."));
    let (_, stdout) = run_component(
        &python,
        &pipeline,
        "comp-exit-op",
        "exit-op",
        &root,
        params(&[("user_input", json!("x")), ("status", status)]),
        BTreeMap::new(),
    );
    for line in ["Pipeline status:  FAILED", "Pipeline task name:  fail-op", "Error message:  Task fail-op failed."] {
        assert!(stdout.contains(line), "{line:?} not in {stdout}");
    }
}

/// Pipelines compiled by the kfp SDK at test time, one per feature.
const COMPILE: &str = r#"
import traceback
from typing import List
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Output

@dsl.component(base_image="python:3.11")
def make(n: int, out: Output[Dataset]):
    open(out.path, "w").write(str(n))
@dsl.component(base_image="python:3.11")
def count(xs: Input[List[Dataset]]) -> int:
    return len(xs)
@dsl.component(base_image="python:3.11")
def use(d: Input[Dataset]) -> str:
    return open(d.path).read()
@dsl.component(base_image="python:3.11")
def fail():
    raise SystemExit(1)
@dsl.component(base_image="python:3.11")
def say(msg: str) -> str:
    print(msg); return msg
@dsl.component(base_image="python:3.11")
def cpu() -> str:
    return "500m"

@dsl.pipeline
def fan(xs: List[Dataset]):
    with dsl.ParallelFor(xs) as d:
        use(d=d)
@dsl.pipeline
def exit_pipe(msg: str = "bye"):
    say(msg=msg)
@dsl.pipeline
def nested_oneof(flag: bool = True) -> str:
    with dsl.If(flag == True):
        a = say(msg="a")
    with dsl.Else():
        b = say(msg="b")
    return dsl.OneOf(a.output, b.output)

@dsl.pipeline(name="artifact-iter")
def p1():
    with dsl.ParallelFor([1, 2, 3]) as n:
        m = make(n=n)
    count(xs=dsl.Collected(m.outputs["out"]))
    fan(xs=dsl.Collected(m.outputs["out"]))
@dsl.pipeline(name="exit-handlers")
def p2():
    e1 = exit_pipe(msg="exit1")
    with dsl.ExitHandler(e1):
        fail()
    e2 = say(msg="exit2")
    with dsl.ExitHandler(e2):
        say(msg="body2")
@dsl.pipeline(name="oneof-nested")
def p3(flag: bool = True):
    o = nested_oneof(flag=flag)
    say(msg=o.output)
@dsl.pipeline(name="resources")
def p4():
    c2 = cpu()
    say(msg="x").set_cpu_limit(c2.output).set_memory_limit("1G").set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1).set_env_variable("A", "b").set_retry(3, backoff_duration="2s")
@dsl.pipeline(name="importer")
def p5(uri: str = "gs://b/y"):
    imp = dsl.importer(artifact_uri="gs://bucket/x.csv", artifact_class=Dataset, reimport=False, metadata={"k": "{{$.pipeline_job_name}}"})
    use(d=imp.output)
    imp2 = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=True)
    use(d=imp2.output)
@dsl.pipeline(name="fstring-cache")
def p6(x: str = "a"):
    s = say(msg=x)
    say(msg=f"pre-{s.output}-post").set_caching_options(False)
    with dsl.ParallelFor([{"a": "1", "b": "x"}], parallelism=2) as item:
        say(msg=item.b)

import os, sys
for name, p in [("artifact_iterator", p1), ("exit_handlers", p2), ("oneof_nested", p3), ("resources", p4), ("importers", p5), ("fstring_cache_loop", p6)]:
    compiler.Compiler().compile(p, os.path.join(sys.argv[1], name + ".yaml"))
"#;

#[test]
fn pipelines_the_kfp_sdk_compiles_now_import_validate_and_round_trip() {
    let Some(python) = kfp_python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("compile.py");
    std::fs::write(&script, COMPILE).expect("write script");
    let output = Command::new(&python).arg(&script).arg(dir.path()).output().expect("run python");
    assert!(output.status.success(), "kfp could not compile:\n{}", String::from_utf8_lossy(&output.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    for path in files {
        let name = path.display();
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&std::fs::read_to_string(&path).expect("read")).expect("YAML");
        let kfp = KfpPipeline::from_values(&docs).unwrap_or_else(|e| panic!("{name}: {e}"));
        kfp.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kfp.to_values(), docs, "{name}");
        let ir = kfp.to_pipeline().expect("IR");
        let again =
            KfpPipeline::from_values(&KfpPipeline::from_pipeline(&ir).expect("exports").to_values()).expect("reads");
        assert_eq!(again.to_pipeline().expect("IR"), ir, "{name}");
    }
}
