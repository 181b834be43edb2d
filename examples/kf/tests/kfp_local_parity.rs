//! Peer test: pipelines compiled by the kfp SDK give the same outputs under
//! `kf pipeline run` as under kfp's own local runner (kfp.local).
//!
//! A Python script (run with the kfp venv's interpreter) defines pipelines
//! with lightweight components — parameters of every type, artifacts
//! (Dataset, Model, Metrics; files and a directory), ParallelFor with
//! Collected, If/Else with OneOf, a nested pipeline, a retry, an exit
//! handler — compiles each to KFP v2 IR YAML, runs it with kfp.local
//! (SubprocessRunner without a venv) and prints the pipeline's outputs:
//! parameter values and artifact contents. The test then runs every YAML
//! with `kf pipeline run --output json` (both with the component server and
//! with one interpreter per component) and compares.
//!
//! Needs kfp 2.17.3 (`../shared/python/install-kfp.sh`): `KF_KFP_PYTHON`
//! names its interpreter. Without it the test is skipped, unless
//! `KF_REQUIRE_PEERS=1`, where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const PIPELINES: &str = r#"
import json, os, sys, warnings
warnings.filterwarnings("ignore")
from typing import List, NamedTuple
from kfp import compiler, dsl, local
from kfp.dsl import Dataset, Input, Metrics, Model, Output

@dsl.component
def add(a: int, b: int) -> int:
    return a + b

@dsl.component
def describe(n: int, ratio: float, flag: bool, tags: List[str], info: dict) -> str:
    return f"{n}|{ratio}|{flag}|{','.join(tags)}|{sorted(info.items())}"

@dsl.component
def make_data(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("x,y\n")
        for i in range(rows):
            f.write(f"{i},{2 * i + 1}\n")
    data.metadata["rows"] = rows

@dsl.component
def fit(data: Input[Dataset], model: Output[Model], metrics: Output[Metrics]) -> NamedTuple("Fit", [("slope", float), ("note", str)]):
    import os
    xs, ys = [], []
    with open(data.path) as f:
        next(f)
        for line in f:
            x, y = line.strip().split(",")
            xs.append(float(x)); ys.append(float(y))
    n = len(xs); mx = sum(xs) / n; my = sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    os.makedirs(model.path, exist_ok=True)
    with open(os.path.join(model.path, "weights.txt"), "w") as f:
        f.write(f"slope={slope}\nintercept={my - slope * mx}\n")
    with open(os.path.join(model.path, "card.md"), "w") as f:
        f.write(f"rows: {data.metadata.get('rows')}\n")
    metrics.log_metric("slope", slope)
    Fit = NamedTuple("Fit", [("slope", float), ("note", str)])
    return Fit(slope, f"fitted {n} rows")

@dsl.component
def square(x: int) -> int:
    return x * x

@dsl.component
def total(xs: list) -> int:
    return int(sum(xs))  # collected numbers arrive as floats (protobuf), in kfp.local as in KFP

@dsl.component
def flip(n: int) -> str:
    return "heads" if n % 2 == 0 else "tails"

@dsl.component
def say(msg: str) -> str:
    return "said " + msg

@dsl.component
def shout(msg: str) -> str:
    return msg.upper()

@dsl.component
def cleanup(status: dsl.PipelineTaskFinalStatus) -> str:
    return status.state

@dsl.pipeline(name="parity-params")
def params(a: int = 2, b: int = 40) -> str:
    s = add(a=a, b=b)
    t = add(a=s.output, b=1).set_retry(2)
    return describe(n=t.output, ratio=0.25, flag=True, tags=["a", "b"], info={"k": 1, "z": "w"}).output

@dsl.pipeline(name="parity-artifacts")
def artifacts(rows: int = 7) -> NamedTuple("Out", [("model", Model), ("data", Dataset), ("note", str)]):
    d = make_data(rows=rows)
    f = fit(data=d.outputs["data"])
    Out = NamedTuple("Out", [("model", Model), ("data", Dataset), ("note", str)])
    return Out(model=f.outputs["model"], data=d.outputs["data"], note=f.outputs["note"])

@dsl.pipeline(name="parity-loop")
def loop() -> int:
    with dsl.ParallelFor([1, 2, 3, 4]) as x:
        sq = square(x=x)
    return total(xs=dsl.Collected(sq.output)).output

@dsl.pipeline(name="inner")
def inner(msg: str) -> str:
    return shout(msg=say(msg=msg).output).output

@dsl.pipeline(name="parity-branches")
def branches(n: int = 3) -> str:
    coin = flip(n=n)
    with dsl.If(coin.output == "heads"):
        a = say(msg="even")
    with dsl.Else():
        b = inner(msg="odd")
    return shout(msg=dsl.OneOf(a.output, b.output)).output

@dsl.pipeline(name="parity-exit")
def exit_handler(x: int = 5):
    done = cleanup()
    with dsl.ExitHandler(done):
        square(x=x)

PIPELINES = {"params": params, "artifacts": artifacts, "loop": loop, "branches": branches, "exit": exit_handler}

def contents(artifact):
    path = artifact.path
    if os.path.isdir(path):
        out = {}
        for root, _, files in os.walk(path):
            for name in files:
                full = os.path.join(root, name)
                out[os.path.relpath(full, path)] = open(full).read()
        return out
    return {"": open(path).read()}

def outputs_of(task):
    outs = task.outputs if hasattr(task, "outputs") and isinstance(task.outputs, dict) else {"Output": task.output}
    result = {}
    for name, value in outs.items():
        if hasattr(value, "path") and hasattr(value, "uri"):
            result[name] = {"artifact": contents(value)}
        else:
            result[name] = {"parameter": value}
    return result

out_dir = sys.argv[1]
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=os.path.join(out_dir, "kfp-root"))
report = {}
for name, fn in PIPELINES.items():
    path = os.path.join(out_dir, name + ".yaml")
    compiler.Compiler().compile(fn, path)
    report[name] = {"yaml": path, "outputs": outputs_of(fn())}
with open(os.path.join(out_dir, "report.json"), "w") as f:  # kfp.local logs to stdout
    json.dump(report, f)
"#;

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

/// `PATH` with the interpreter's directory first, as the benchmark runs kf:
/// the compiled components call `python3`.
fn path_with(python: &str) -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let bin = Path::new(python).parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
    std::env::join_paths(bin.into_iter().chain(std::env::split_paths(&path))).expect("PATH")
}

/// Files of an artifact URI (`file:///…`), by path relative to it ("" for a file artifact).
fn contents(uri: &str) -> BTreeMap<String, String> {
    let root = PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
    if root.is_file() {
        return [(String::new(), std::fs::read_to_string(&root).expect("artifact file"))].into();
    }
    let mut out = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(&root).expect("under root").display().to_string();
                out.insert(relative, std::fs::read_to_string(&path).expect("artifact file"));
            }
        }
    }
    out
}

/// Numbers compared as doubles (kfp.local passes some through protobuf).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| (x - y).abs() < 1e-9),
        _ => a == b,
    }
}

#[test]
fn kfp_compiled_pipelines_give_kfp_locals_outputs_under_kf() {
    let Some(python) = kfp_python() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("pipelines.py");
    std::fs::write(&script, PIPELINES).expect("write script");
    let out = Command::new(&python).arg(&script).arg(dir.path()).output().expect("python runs");
    assert!(out.status.success(), "kfp side failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report = std::fs::read(dir.path().join("report.json")).expect("the kfp side's report");
    let expected: Value = serde_json::from_slice(&report).expect("the kfp side's report is JSON");
    assert_eq!(expected.as_object().map(|m| m.len()), Some(5), "{expected}");

    for mode in [None, Some("--no-component-server")] {
        let store = dir.path().join(format!("store-{}", mode.is_some()));
        for (name, case) in expected.as_object().expect("report") {
            let yaml = case["yaml"].as_str().expect("yaml path");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_kf"));
            cmd.args(["--output", "json", "pipeline", "run", yaml, "--no-cache", "--store"])
                .arg(&store)
                .args(["--python", &python])
                .env("PATH", path_with(&python));
            cmd.args(mode);
            let run = cmd.output().expect("kf runs");
            let report: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
                panic!("{name}: kf printed no JSON ({e}); stderr:\n{}", String::from_utf8_lossy(&run.stderr))
            });
            assert!(run.status.success(), "{name} ({mode:?}): {report:#}");
            let outputs = &report["outputs"];
            for (output, want) in case["outputs"].as_object().expect("outputs") {
                if let Some(value) = want.get("parameter") {
                    let got = &outputs["parameters"][output];
                    assert!(same_value(got, value), "{name}.{output} ({mode:?}): kf {got}, kfp.local {value}");
                } else {
                    let uri = outputs["artifacts"][output][0]["uri"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}.{output}: no artifact in {outputs}"));
                    let want: BTreeMap<String, String> =
                        serde_json::from_value(want["artifact"].clone()).expect("contents");
                    assert_eq!(contents(uri), want, "{name}.{output} ({mode:?})");
                }
            }
            if name != "exit" {
                assert!(!case["outputs"].as_object().expect("outputs").is_empty(), "{name}: nothing compared");
            } else {
                let tasks = report["tasks"].as_array().expect("tasks");
                let cleanup = tasks.iter().find(|t| t["task"] == "cleanup").expect("the exit handler ran");
                assert_eq!(cleanup["state"], json!("succeeded"), "{cleanup}");
            }
        }
    }
}
