//! `kf pipeline …` driven as a user drives it: files and flags in, exit code,
//! tables and JSON out. Pipelines run as local processes in a temporary store.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn kf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kf")).args(args).output().expect("kf runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kf-dag/examples/pipelines").join(name).display().to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.display().to_string()
}

#[test]
fn validate_prints_the_shape_or_the_offending_field() {
    let out = kf(&["pipeline", "validate", &example("hello.yaml")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 tasks") && stdout(&out).contains("say → shout"), "{}", stdout(&out));

    let dir = tempfile::tempdir().unwrap();
    let broken = write(&dir, "broken.yaml", "name: p\ntasks:\n  a: {component: nope}\n");
    let out = kf(&["pipeline", "validate", &broken]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("root.dag.tasks.a.componentRef.name"), "{}", stderr(&out));

    let typo = write(&dir, "typo.yaml", "name: p\ntasks:\n  a: {component: c, paramters: {}}\n");
    let out = kf(&["--output", "json", "pipeline", "validate", &typo]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("tasks.a"), "{v}");
}

#[test]
fn run_then_rerun_from_cache_then_list_and_resume() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path().display().to_string();
    let hello = example("hello.yaml");

    let out = kf(&["pipeline", "run", &hello, "--param", "who=kf", "--store", &s, "--run-id", "first"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("TASK") && table.contains("shout") && table.contains("succeeded"), "{table}");
    assert!(table.contains("output loud = \"HELLO KF\""), "{table}");

    let out =
        kf(&["--output", "json", "pipeline", "run", &hello, "--param", "who=kf", "--store", &s, "--run-id", "second"]);
    let v = json(&out);
    assert_eq!(v["state"], "succeeded");
    assert!(v["tasks"].as_array().unwrap().iter().all(|t| t["cached"] == true), "{v}");
    assert_eq!(v["outputs"]["parameters"]["loud"], "HELLO KF");

    let out = kf(&["--output", "json", "pipeline", "run", &hello, "--store", &s, "--run-id", "third", "--no-cache"]);
    let v = json(&out);
    assert!(v["tasks"].as_array().unwrap().iter().all(|t| t["state"] == "succeeded"), "{v}");
    assert_eq!(v["outputs"]["parameters"]["loud"], "HELLO WORLD", "the default parameter");

    let out = kf(&[
        "--output",
        "json",
        "pipeline",
        "run",
        &hello,
        "--store",
        &s,
        "--run-id",
        "fourth",
        "--cache-max-age",
        "0ms",
    ]);
    let v = json(&out);
    assert!(v["tasks"].as_array().unwrap().iter().all(|t| t["cached"] == false), "too old to reuse: {v}");

    let out = kf(&["pipeline", "run", &hello, "--store", &s, "--run-id", "first"]);
    assert_eq!(out.status.code(), Some(1), "a run id is used once");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let out = kf(&["--output", "json", "pipeline", "list", "--store", &s]);
    let runs: Vec<String> =
        json(&out)["runs"].as_array().unwrap().iter().map(|r| r["run"].as_str().unwrap().to_owned()).collect();
    assert_eq!(runs, ["first", "second", "third", "fourth"]);

    let out = kf(&["--output", "json", "pipeline", "resume", "first", "--store", &s]);
    let v = json(&out);
    assert_eq!(v["state"], "succeeded");
    assert!(v["tasks"].as_array().unwrap().iter().all(|t| t["resumed"] == true), "nothing reran: {v}");
}

#[test]
fn a_failing_run_exits_1_and_bad_params_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let failing = write(
        &dir,
        "fail.yaml",
        "name: fail\ncomponents:\n  boom:\n    container: {image: x, command: [sh, -c, 'echo broken >&2; exit 4']}\n\
         tasks:\n  boom: {component: boom}\n",
    );
    let s = dir.path().join("store").display().to_string();
    let out = kf(&["pipeline", "run", &failing, "--store", &s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("exit code 4") && stdout(&out).contains("run fail-"), "{}", stdout(&out));

    let out = kf(&["pipeline", "run", &example("hello.yaml"), "--store", &s, "--param", "whom=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no parameter \"whom\""), "{}", stderr(&out));
    let out = kf(&["pipeline", "run", &example("sweep.yaml"), "--store", &s, "--param", "threshold=high"]);
    assert!(stderr(&out).contains("threshold") && stderr(&out).contains("NUMBER_DOUBLE"), "{}", stderr(&out));
}

#[test]
fn graph_draws_dot_and_svg() {
    let out = kf(&["pipeline", "graph", &example("sweep.yaml"), "--format", "dot"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("digraph") && stdout(&out).contains("\"0:sweep\" -> \"0:report\""));
    let out = kf(&["pipeline", "graph", &example("sweep.yaml")]);
    assert!(stdout(&out).starts_with("<svg") && stdout(&out).contains("for each of 3 items"));
}

#[test]
fn bench_prints_the_measurement_as_json() {
    let out = kf(&["--output", "json", "pipeline", "bench", "--shape", "chain", "--tasks", "500"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["tasks"], 500);
    for key in ["wall_s", "tasks_per_s"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert!(v.get("peak_rss_mb").is_some());
}

#[test]
fn objects_elsewhere_keep_artifacts_and_the_cache_there() {
    let store = tempfile::tempdir().unwrap();
    let objects = tempfile::tempdir().unwrap();
    let (s, o) = (store.path().display().to_string(), format!("file://{}", objects.path().display()));
    let hello = example("hello.yaml");
    for (run, cached) in [("one", false), ("two", true)] {
        let out = kf(&["--output", "json", "pipeline", "run", &hello, "--store", &s, "--objects", &o, "--run-id", run]);
        let v = json(&out);
        assert_eq!(v["state"], "succeeded", "{v}");
        assert!(v["tasks"].as_array().unwrap().iter().all(|t| t["cached"] == cached), "{v}");
    }
    assert!(objects.path().join("artifacts/one").is_dir(), "artifacts under --objects");
    assert!(objects.path().join("cache").read_dir().unwrap().next().is_some(), "cache entries under --objects");
    assert!(!store.path().join("artifacts/one").exists(), "nothing under --store's artifacts");
}
