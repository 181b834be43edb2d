//! Pipelines of real local processes: artifacts pass between two processes
//! through a `file://` artifact store, exit codes fail tasks, and a second run
//! is served from the object_store cache without starting a process.

use std::sync::Arc;

use kf_dag::artifact::ArtifactStore;
use kf_dag::builder::{Dataset, PipelineBuilder};
use kf_dag::cache::ObjectStoreCache;
use kf_dag::exec::{Executor, RunRequest};
use kf_dag::ir::ContainerSpec;
use kf_dag::run::{RunState, TaskState};
use kf_dag::runner::ProcessRunner;
use serde_json::json;

/// produce writes a greeting artifact; shout upper-cases it into an output
/// parameter and an artifact.
fn plan(fail_with: Option<i32>) -> Arc<kf_dag::Plan> {
    let mut p = PipelineBuilder::new("processes");
    let who = p.parameter_with_default::<String>("who", "world".into());

    let mut produce = p.container_component("produce", ContainerSpec::new("local"));
    let name = produce.input::<String>("name");
    let greeting = produce.output_artifact::<Dataset>("greeting");
    produce.command(["sh", "-c", "printf 'hello %s' \"$0\" > \"$1\"", &name.placeholder(), &greeting.path()]);
    let produce = p.add_component(produce);

    let mut shout = p.container_component("shout", ContainerSpec::new("local"));
    let text = shout.input_artifact::<Dataset>("text");
    let loud = shout.output::<String>("loud");
    let copy = shout.output_artifact::<Dataset>("copy");
    let script = match fail_with {
        Some(code) => format!("echo 'no shouting today' >&2; exit {code}"),
        None => "tr a-z A-Z < \"$0\" | tee \"$2\" > \"$1\"; echo \"$GREETING_URI\" >&2".to_owned(),
    };
    shout.command(["sh", "-c", &script, &text.path(), &loud.file(), &copy.path()]);
    shout.env("GREETING_URI", &text.uri());
    let shout = p.add_component(shout);

    let produced = p.task("produce", &produce).set(&name, &who).done();
    let shouted = p.task("shout", &shout).set_artifact(&text, &produced.output_artifact(&greeting)).done();
    let _ = p.output("loud", &shouted.output(&loud));
    Arc::new(p.build().expect("a valid pipeline"))
}

#[tokio::test]
async fn two_processes_pass_an_artifact_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = ArtifactStore::from_url(&format!("file://{}/artifacts", dir.path().display())).unwrap();
    let exec = Executor::new(ProcessRunner::new(dir.path().join("work"))).artifacts(artifacts);
    let request = RunRequest { id: Some("r1".into()), parameters: [("who".into(), json!("kf"))].into() };
    let outcome = exec.run(plan(None), request).await.unwrap();
    assert_eq!(outcome.state, RunState::Succeeded, "{:?}", outcome.tasks);
    assert_eq!(outcome.outputs.parameters["loud"], json!("HELLO KF"));
    let stored = dir.path().join("artifacts/r1/produce/greeting");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), "hello kf", "artifacts live at <run>/<task>/<output>");
    assert_eq!(std::fs::read_to_string(dir.path().join("artifacts/r1/shout/copy")).unwrap(), "HELLO KF");
    let stderr = std::fs::read_to_string(dir.path().join("artifacts/r1/shout/.logs/attempt-1.stderr")).unwrap();
    assert!(
        stderr.starts_with("file://") && stderr.contains("/r1/produce/greeting"),
        "env placeholders resolve: {stderr}"
    );
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_task_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = ArtifactStore::from_url(&format!("file://{}/a", dir.path().display())).unwrap();
    let exec = Executor::new(ProcessRunner::new(dir.path().join("work"))).artifacts(artifacts);
    let outcome = exec.run(plan(Some(3)), RunRequest::default()).await.unwrap();
    assert_eq!(outcome.state, RunState::Failed);
    let message = outcome.tasks["shout"].message.clone().unwrap();
    assert!(message.contains("exit code 3") && message.contains("no shouting today"), "{message}");
}

#[tokio::test]
async fn a_second_run_is_served_from_the_object_store_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/store", dir.path().display());
    let artifacts = ArtifactStore::from_url(&url).unwrap();
    let cache = ObjectStoreCache::new(artifacts.object_store().clone(), artifacts.prefix().clone().join(".cache"));
    let exec = Executor::new(ProcessRunner::new(dir.path().join("work"))).artifacts(artifacts).cache(Arc::new(cache));
    let first = exec.run(plan(None), RunRequest { id: Some("one".into()), ..Default::default() }).await.unwrap();
    assert_eq!(first.count(TaskState::Succeeded), 2);
    let second = exec.run(plan(None), RunRequest { id: Some("two".into()), ..Default::default() }).await.unwrap();
    assert_eq!(second.state, RunState::Succeeded);
    assert_eq!(second.count(TaskState::Cached), 2, "{:?}", second.tasks);
    assert_eq!(second.outputs, first.outputs);
    assert!(!dir.path().join("work/two").exists(), "no process ran for the cached run");
}

#[tokio::test]
async fn structured_arguments_expand_and_deep_nesting_does_not_overflow() {
    use kf_dag::ir::{Arg, Component, Executor as Spec, ParameterSpec, ParameterType, Pipeline, Task, Template};
    let mut deep = Arg::Template(Template::text("x"));
    // Deeper than this overflows the derived Drop of the IR itself, not the runner.
    for _ in 0..10_000 {
        deep = Arg::Concat(vec![deep]);
    }
    let mut c = ContainerSpec::new("local");
    c.command = vec![
        Arg::from("sh"),
        Arg::from("-c"),
        Arg::from("printf '%s|' \"$@\" > \"$0\""),
        Arg::parse("{{$.outputs.parameters['out'].output_file}}").expect("placeholder"),
        Arg::Concat(vec![Arg::from("a="), Arg::parse("{{$.inputs.parameters['a']}}").expect("placeholder")]),
        Arg::IfPresent { input: "missing".into(), then: vec![Arg::from("yes")], otherwise: vec![Arg::from("no")] },
        deep,
    ];
    let mut p = Pipeline::new("args");
    p.executors.insert("exec".into(), Spec::Container(c));
    let mut component = Component::leaf("exec");
    component.inputs.parameters.insert("a".into(), ParameterSpec::new(ParameterType::String).with_default(json!("1")));
    let mut missing = ParameterSpec::new(ParameterType::String);
    missing.optional = true;
    component.inputs.parameters.insert("missing".into(), missing);
    component.outputs.parameters.insert("out".into(), ParameterSpec::new(ParameterType::String));
    p.components.insert("c".into(), component);
    p.root.implementation.dag_mut().expect("a DAG").tasks.insert("t".into(), Task::new("c"));
    let plan = Arc::new(kf_dag::Plan::new(p).expect("valid"));
    let dir = tempfile::tempdir().unwrap();
    let outcome = Executor::new(ProcessRunner::new(dir.path())).run(plan, RunRequest::default()).await.unwrap();
    assert_eq!(outcome.state, RunState::Succeeded, "{:?}", outcome.tasks);
    let out = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("t/attempt-1/outputs/parameters/out");
    assert_eq!(std::fs::read_to_string(out).unwrap(), "a=1|no|x|");
}
