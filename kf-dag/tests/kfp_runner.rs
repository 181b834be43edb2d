//! `KfpRunner` on KFP pipelines whose containers are shell commands (no
//! Python needed): the executor contract end to end — placeholders,
//! output-parameter files, file and directory artifacts through the object
//! store, the `ExecutorOutput` file — and how failures surface: a non-zero
//! exit and a malformed `ExecutorOutput` fail the task with the reason, and
//! the exit handler still runs. The kfp-Python side (lightweight components,
//! the component server) is covered by the peer tests.

use std::sync::Arc;

use kf_dag::Plan;
use kf_dag::builder::{Dataset, FinalStatus, Model, PipelineBuilder};
use kf_dag::exec::RunRequest;
use kf_dag::ir::ContainerSpec;
use kf_dag::kfp::KfpPipeline;
use kf_dag::local::LocalRuns;
use kf_dag::run::{RunState, TaskState};
use kf_dag::runner::{FunctionRunner, KfpRunner, PythonMode};

/// The pipeline as kfp would hand it to us: exported to KFP IR and read back.
fn through_kfp(p: PipelineBuilder) -> Arc<Plan> {
    let built = p.build().expect("builds");
    let kfp = KfpPipeline::from_pipeline(built.pipeline()).expect("exports");
    let again = KfpPipeline::from_values(&kfp.to_values()).expect("reads back");
    Arc::new(again.plan().expect("validates"))
}

fn run(plan: Arc<Plan>, mode: PythonMode) -> (kf_dag::exec::RunOutcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runs = LocalRuns::open(&dir.path().display().to_string()).expect("store");
    let runner = KfpRunner::new(runs.work_dir()).mode(mode);
    let executor = runs.executor_with(runner, FunctionRunner::new(), false).expect("executor");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let outcome = runtime.block_on(executor.run(plan, RunRequest::default())).expect("runs");
    (outcome, dir)
}

fn local(uri: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(uri.strip_prefix("file://").expect("a file:// URI"))
}

fn contract_pipeline() -> Arc<Plan> {
    let mut p = PipelineBuilder::new("contract");
    let text = p.parameter_with_default::<String>("text", "hello kf".into());

    let mut make = p.container_component("comp-make", ContainerSpec::new("alpine"));
    let input = make.input::<String>("text");
    let model = make.output_artifact::<Model>("model");
    let words = make.output::<i64>("words");
    make.command([
        "sh",
        "-c",
        "mkdir -p \"$1\" && printf '%s' \"$0\" > \"$1/weights\" && echo card > \"$1/card.md\" && \
         echo \"$0\" | wc -w | tr -d ' \\n' > \"$2\"",
        &input.placeholder(),
        &model.path(),
        &words.file(),
    ]);
    let make = p.add_component(make);

    let mut read = p.container_component("comp-read", ContainerSpec::new("alpine"));
    let model_in = read.input_artifact::<Model>("model");
    let count = read.input::<i64>("count");
    let report = read.output_artifact::<Dataset>("report");
    read.command([
        "sh",
        "-c",
        "cat \"$0/weights\" \"$0/card.md\" > \"$1\" && echo \"count=$2\" >> \"$1\"",
        &model_in.path(),
        &report.path(),
        &count.placeholder(),
    ]);
    let read = p.add_component(read);

    let made = p.task("make", &make).set(&input, &text).done();
    let made_model = made.output_artifact(&model);
    let made_words = made.output(&words);
    let done = p.task("read", &read).set_artifact(&model_in, &made_model).set(&count, &made_words).done();
    p.output_artifact::<Dataset, Dataset>("report", &done.output_artifact(&report));
    through_kfp(p)
}

#[test]
fn shell_components_speak_the_executor_contract() {
    for mode in [PythonMode::Server, PythonMode::Spawn] {
        let (outcome, _dir) = run(contract_pipeline(), mode);
        assert_eq!(outcome.state, RunState::Succeeded, "{:#?}", outcome.tasks);
        let uri = outcome.outputs.artifacts["report"][0].uri.clone();
        assert_eq!(std::fs::read_to_string(local(&uri)).expect("report"), "hello kfcard\ncount=2\n");
    }
}

#[test]
fn failures_name_their_reason_and_the_exit_handler_still_runs() {
    for (script, reason) in [
        ("echo broken >&2; exit 3", "exit code 3"),
        ("printf '{\"parameterValues\": 3}' > \"$0\"", "malformed ExecutorOutput"),
        ("printf '{\"parameterValues\": {\"nope\": 1}}' > \"$0\"", "output parameter"),
    ] {
        let mut p = PipelineBuilder::new("failing");
        let mut bad = p.container_component("comp-bad", ContainerSpec::new("alpine"));
        let _out = bad.output::<i64>("out");
        bad.command(["sh", "-c", script, "{{$.outputs.output_file}}"]);
        let bad = p.add_component(bad);
        let mut report = p.container_component("comp-report", ContainerSpec::new("alpine"));
        let status = report.input::<FinalStatus>("status");
        let seen = report.output::<String>("seen");
        report.command(["sh", "-c", "printf '%s' \"$0\" > \"$1\"", &status.placeholder(), &seen.file()]);
        let report = p.add_component(report);
        let failing = p.task("bad", &bad).done();
        let cleanup = p.task("cleanup", &report).final_status_of(&status, &failing).done();
        p.output("seen", &cleanup.output(&seen));

        let (outcome, _dir) = run(through_kfp(p), PythonMode::Spawn);
        assert_eq!(outcome.state, RunState::Failed);
        let bad = &outcome.tasks["bad"];
        assert_eq!(bad.state, TaskState::Failed);
        let message = bad.message.clone().unwrap_or_default();
        assert!(message.contains(reason), "{reason:?} not in {message:?}");
        if reason.starts_with("exit") {
            assert!(message.contains("broken"), "stderr tail missing: {message}");
        }
        assert_eq!(outcome.tasks["cleanup"].state, TaskState::Succeeded, "{:#?}", outcome.tasks);
    }
}

#[test]
fn a_component_server_that_cannot_start_fails_the_task_with_the_reason() {
    // A kfp lightweight component's exact command line, run with a Python
    // that does not exist: the task fails naming it, nothing hangs.
    let program = "program_path=$(mktemp -d)\n\nprintf \"%s\" \"$0\" > \"$program_path/ephemeral_component.py\"\n\
                   _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path \
                   \"$program_path/ephemeral_component.py\" \"$@\"\n";
    let mut p = PipelineBuilder::new("no-python");
    let mut c = p.container_component("comp-py", ContainerSpec::new("python:3.11"));
    c.command(["sh", "-ec", program, "def f():\n    pass\n"]);
    c.args(["--executor_input", "{{$}}", "--function_to_execute", "f"]);
    let c = p.add_component(c);
    p.task("py", &c).done();
    let plan = through_kfp(p);

    let dir = tempfile::tempdir().expect("temp dir");
    let runs = LocalRuns::open(&dir.path().display().to_string()).expect("store");
    let runner = KfpRunner::new(runs.work_dir()).python("/nonexistent/python3");
    let executor = runs.executor_with(runner, FunctionRunner::new(), false).expect("executor");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let outcome = runtime.block_on(executor.run(plan, RunRequest::default())).expect("runs");
    assert_eq!(outcome.state, RunState::Failed);
    let message = outcome.tasks["py"].message.clone().unwrap_or_default();
    assert!(message.contains("/nonexistent/python3"), "{message}");
}
