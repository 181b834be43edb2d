use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::builder::{FinalStatus, List, Model, PipelineBuilder};
use crate::cache::InMemoryCache;
use crate::clock::ManualClock;
use crate::ir::{Component, Executor as Spec, FunctionSpec, Pipeline, RetryPolicy, Task};
use crate::runner::{FakeRunner, FunctionOutput, FunctionRunner};
use crate::store::RunStoreExt;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A pipeline of no-op function tasks with `after` edges only.
fn after_pipeline(edges: &[(usize, usize)], n: usize) -> Arc<Plan> {
    let mut p = Pipeline::new("random");
    p.executors.insert("exec".into(), Spec::Function(FunctionSpec { name: "noop".into() }));
    p.components.insert("step".into(), Component::leaf("exec"));
    let dag = p.root.implementation.dag_mut().unwrap();
    for i in 0..n {
        dag.tasks.insert(format!("t{i}"), Task::new("step"));
    }
    for &(a, b) in edges {
        dag.tasks.get_mut(&format!("t{b}")).unwrap().after.insert(format!("t{a}"));
    }
    Arc::new(Plan::new(p).unwrap())
}

fn run(exec: &Executor, plan: &Arc<Plan>) -> RunOutcome {
    rt().block_on(exec.run(plan.clone(), RunRequest { id: Some("r".into()), ..RunRequest::default() })).unwrap()
}

#[test]
fn a_diamond_runs_each_task_once_in_dependency_order() {
    let plan = after_pipeline(&[(0, 1), (0, 2), (1, 3), (2, 3)], 4);
    let fake = FakeRunner::new();
    let outcome = run(&Executor::new(fake.clone()), &plan);
    assert_eq!(outcome.state, RunState::Succeeded);
    let calls = fake.calls();
    assert_eq!(calls.len(), 4);
    let at = |t: &str| calls.iter().find(|c| c.task == t).unwrap();
    assert!(at("t0").finished < at("t1").started && at("t0").finished < at("t2").started);
    assert!(at("t1").finished < at("t3").started && at("t2").finished < at("t3").started);
}

#[test]
fn parallelism_bounds_running_tasks() {
    let plan = after_pipeline(&[], 30);
    let fake = FakeRunner::new();
    let outcome = run(&Executor::new(fake.clone()).parallelism(3), &plan);
    assert_eq!(outcome.count(TaskState::Succeeded), 30);
    assert!(fake.max_concurrency() <= 3, "{}", fake.max_concurrency());
}

fn retried(max_retry_count: u32) -> (Arc<Plan>, RetryPolicy) {
    let policy = RetryPolicy {
        max_retry_count,
        backoff: Duration::from_secs(1),
        backoff_factor: 3.0,
        backoff_max: Duration::from_secs(5),
    };
    let mut p = PipelineBuilder::new("retry");
    let step = p.function_component("step", "noop");
    let step = p.add_component(step);
    let a = p.task("a", &step).retry(policy).done();
    p.task("b", &step).after(&a).done();
    (Arc::new(p.build().unwrap()), policy)
}

#[test]
fn retries_back_off_on_the_clock_and_then_succeed() {
    let (plan, policy) = retried(4);
    let clock = Arc::new(ManualClock::new(0));
    let fake = FakeRunner::new().failing("a", 3);
    let exec = Executor::new(fake.clone()).clock(clock.clone());
    let outcome = run(&exec, &plan);
    assert_eq!(outcome.state, RunState::Succeeded);
    assert_eq!(outcome.tasks["a"].attempts, 4);
    assert_eq!(clock.sleeps(), vec![policy.delay(1), policy.delay(2), policy.delay(3)]);
    assert_eq!(clock.sleeps(), [1, 3, 5].map(Duration::from_secs));
    let journal = exec.run_store().journal("r").unwrap();
    let retrying = journal
        .iter()
        .filter(|e| matches!(&e.event, Event::Task { task, state: TaskState::Retrying, .. } if task == "a"))
        .count();
    assert_eq!(retrying, 3);
}

#[test]
fn exhausted_retries_fail_the_task_and_skip_its_downstream() {
    let (plan, _) = retried(1);
    let clock = Arc::new(ManualClock::new(0));
    let fake = FakeRunner::new().failing("a", 5);
    let outcome = run(&Executor::new(fake.clone()).clock(clock.clone()), &plan);
    assert_eq!(outcome.state, RunState::Failed);
    assert_eq!(outcome.tasks["a"].state, TaskState::Failed);
    assert_eq!(outcome.tasks["a"].attempts, 2);
    assert_eq!(outcome.tasks["b"].state, TaskState::Skipped);
    assert!(outcome.tasks["b"].message.as_deref().unwrap().contains("\"a\" failed"));
    assert_eq!(fake.calls().len(), 2, "b never ran");
}

#[tokio::test(start_paused = true)]
async fn a_task_that_runs_too_long_times_out() {
    let mut pipeline = after_pipeline(&[], 2).pipeline().clone();
    pipeline.root.implementation.dag_mut().unwrap().tasks.get_mut("t0").unwrap().timeout =
        Some(Duration::from_secs(30));
    let plan = Arc::new(Plan::new(pipeline).unwrap());
    let fake = FakeRunner::new().hanging("t0");
    let started = tokio::time::Instant::now();
    let outcome = Executor::new(fake).run(plan, RunRequest::default()).await.unwrap();
    assert_eq!(outcome.tasks["t0"].state, TaskState::Failed);
    assert!(outcome.tasks["t0"].message.as_deref().unwrap().contains("timed out after 30s"));
    assert_eq!(outcome.tasks["t1"].state, TaskState::Succeeded);
    assert!(started.elapsed() >= Duration::from_secs(30), "the paused clock advanced to the timeout");
}

#[tokio::test]
async fn cancelling_a_run_stops_running_tasks_and_still_runs_exit_handlers() {
    // t0 hangs; t1 waits for it; cleanup is an exit handler reading t0's final status.
    let mut p = PipelineBuilder::new("cancel");
    let step = p.function_component("step", "noop");
    let step = p.add_component(step);
    let mut report = p.function_component("report", "report");
    let status = report.input::<FinalStatus>("status");
    let report = p.add_component(report);
    let t0 = p.task("t0", &step).done();
    p.task("t1", &step).after(&t0).done();
    p.task("t2", &step).done();
    p.task("cleanup", &report).final_status_of(&status, &t0).done();
    let plan = Arc::new(p.build().unwrap());

    let cancel = CancelHandle::new();
    let fake = FakeRunner::new().hanging("t0");
    let exec = Executor::new(fake.clone()).cancel_handle(cancel.clone());
    let running = tokio::spawn({
        let exec = exec.clone();
        async move { exec.run(plan, RunRequest { id: Some("c".into()), ..RunRequest::default() }).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    cancel.cancel();
    let outcome = running.await.unwrap().unwrap();
    assert_eq!(outcome.state, RunState::Cancelled);
    assert_eq!(outcome.tasks["t0"].state, TaskState::Cancelled);
    assert_eq!(outcome.tasks["t1"].state, TaskState::Cancelled);
    assert_eq!(outcome.tasks["t2"].state, TaskState::Succeeded);
    assert_eq!(outcome.tasks["cleanup"].state, TaskState::Succeeded, "exit handlers run after a cancel");
    let calls = fake.calls();
    assert!(!calls.iter().any(|c| c.task == "t1"), "t1 never ran");
    let cleanup = calls.iter().find(|c| c.task == "cleanup").unwrap();
    assert_eq!(cleanup.parameters["status"]["state"], "CANCELLED");
    let snapshot = exec.run_store().snapshot("c").unwrap();
    assert_eq!(snapshot.run, Some(RunState::Cancelled));
    assert_eq!(snapshot.tasks["t0"].state, TaskState::Cancelled);
}

#[tokio::test]
async fn cancelling_stops_a_loop_from_starting_iterations() {
    let plan = squares((0..10).collect(), Some(1));
    let cancel = CancelHandle::new();
    let fake = FakeRunner::new().hanging("loop[0].square");
    let exec = Executor::new(fake.clone()).cancel_handle(cancel.clone());
    let running = tokio::spawn(async move { exec.run(plan, RunRequest::default()).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    cancel.cancel();
    let outcome = running.await.unwrap().unwrap();
    assert_eq!(outcome.state, RunState::Cancelled);
    assert_eq!(outcome.tasks["loop"].state, TaskState::Cancelled);
    assert_eq!(outcome.tasks["sum"].state, TaskState::Cancelled);
    assert!(!outcome.tasks.contains_key("loop[1].square"), "no iteration started after the cancel");
}

/// flip → (heads: deploy → notify) | (tails: retrain); `report` after both.
fn conditional(outcome: &str) -> Arc<Plan> {
    let mut p = PipelineBuilder::new("branches");
    let side = p.parameter_with_default::<String>("side", outcome.to_owned());
    let mut flip = p.function_component("flip", "flip");
    let flip_in = flip.input::<String>("side");
    let flip_out = flip.output::<String>("result");
    let flip = p.add_component(flip);
    let step = p.function_component("step", "noop");
    let step = p.add_component(step);
    let mut gate = p.function_component("gate", "noop");
    let gate_in = gate.input::<String>("value");
    let gate = p.add_component(gate);
    let flipped = p.task("flip", &flip).set(&flip_in, &side).done();
    let result = flipped.output(&flip_out);
    let heads =
        p.task("deploy", &gate).set(&gate_in, &result).when("inputs.parameter_values['value'] == 'heads'").done();
    let notify = p.task("notify", &step).after(&heads).done();
    let tails =
        p.task("retrain", &gate).set(&gate_in, &result).when("inputs.parameter_values['value'] == 'tails'").done();
    p.task("report", &step).after(&notify).after(&tails).ignore_upstream_failure().done();
    Arc::new(p.build().unwrap())
}

fn echo_flip() -> FakeRunner {
    FakeRunner::new().script(|call| {
        let mut outputs = crate::run::TaskOutputs::default();
        if let Some(side) = call.parameters.get("side") {
            outputs.parameters.insert("result".into(), side.clone());
        }
        Ok(outputs)
    })
}

#[test]
fn a_false_condition_skips_the_branch_and_its_downstream() {
    for (side, ran, skipped) in
        [("heads", ["deploy", "notify"], ["retrain"]), ("tails", ["retrain", "retrain"], ["deploy"])]
    {
        let outcome = run(&Executor::new(echo_flip()), &conditional(side));
        assert_eq!(outcome.state, RunState::Succeeded, "{side}");
        for t in ran {
            assert_eq!(outcome.tasks[t].state, TaskState::Succeeded, "{side}: {t}");
        }
        for t in skipped {
            assert_eq!(outcome.tasks[t].state, TaskState::Skipped, "{side}: {t}");
            assert!(outcome.tasks[t].message.as_deref().unwrap().contains("is false"));
        }
        if side == "tails" {
            assert_eq!(outcome.tasks["notify"].state, TaskState::Skipped, "skips propagate");
        }
        assert_eq!(outcome.tasks["report"].state, TaskState::Succeeded, "all-completed runs after skips");
    }
}

/// A loop over `items` whose body squares its item; the loop collects the squares.
fn squares(items: Vec<i64>, parallelism: Option<u32>) -> Arc<Plan> {
    let mut p = PipelineBuilder::new("squares");
    let mut square = p.function_component("square", "square");
    let x = square.input::<i64>("x");
    let y = square.output::<i64>("y");
    let square = p.add_component(square);
    let mut sum = p.function_component("sum", "sum");
    let all = sum.input::<List>("all");
    let total = sum.output::<i64>("total");
    let sum = p.add_component(sum);

    let mut body = p.dag_component("body");
    let item = body.parameter::<i64>("item");
    let squared = body.task("square", &square).set(&x, &item).done();
    let collected = body.collect("squares", &squared.output(&y));
    let item_in = body.input_slot(&item);
    let body = p.add_dag(body);

    let looped = p.task("loop", &body).parallel_for_items(&item_in, items, parallelism).done();
    let summed = p.task("sum", &sum).set(&all, &looped.output(&collected)).done();
    let _ = p.output("total", &summed.output(&total));
    Arc::new(p.build().unwrap())
}

fn arithmetic() -> FunctionRunner {
    let mut f = FunctionRunner::new();
    f.register("square", |input| {
        let x = input.parameters["x"].as_i64().ok_or("x")?;
        std::thread::sleep(Duration::from_millis(((7 - x) % 4) as u64));
        Ok(FunctionOutput::default().parameter("y", x * x))
    });
    f.register("sum", |input| {
        let all = input.parameters["all"].as_array().ok_or("all")?;
        Ok(FunctionOutput::default()
            .parameter("total", all.iter().filter_map(Value::as_i64).sum::<i64>())
            .parameter("seen", Value::Array(all.clone())))
    });
    f.register("make", |_| Ok(FunctionOutput::default().parameter("items", json!([1, 2, 3]))));
    f.register("noop", |_| Ok(FunctionOutput::default()));
    f
}

#[test]
fn a_loop_collects_iteration_outputs_in_iteration_order() {
    let plan = squares(vec![1, 2, 3, 4, 5, 6], Some(2));
    let outcome = run(&Executor::new(arithmetic()), &plan);
    assert_eq!(outcome.state, RunState::Succeeded, "{:?}", outcome.tasks);
    assert_eq!(outcome.outputs.parameters["total"], json!(91));
    for i in 0..6 {
        assert_eq!(outcome.tasks[&format!("loop[{i}].square")].state, TaskState::Succeeded);
    }
}

#[test]
fn loop_parallelism_bounds_running_iterations() {
    let plan = squares((0..12).collect(), Some(2));
    let fake = FakeRunner::new().script(|call| {
        let mut o = crate::run::TaskOutputs::default();
        if let Some(x) = call.parameters.get("x") {
            o.parameters.insert("y".into(), x.clone());
        }
        if call.parameters.contains_key("all") {
            o.parameters.insert("total".into(), json!(0));
        }
        Ok(o)
    });
    let outcome = run(&Executor::new(fake.clone()).parallelism(8), &plan);
    assert_eq!(outcome.state, RunState::Succeeded);
    assert!(fake.max_concurrency() <= 2, "{}", fake.max_concurrency());
    let sum = fake.calls().into_iter().find(|c| c.task == "sum").unwrap();
    assert_eq!(sum.parameters["all"], json!((0..12).collect::<Vec<i64>>()), "collected in iteration order");
}

/// make → loop over its LIST output; each iteration loops again over [10, 20]
/// (nested loops), adding the inner item to the outer one.
#[test]
fn nested_loops_over_an_upstream_list_output() {
    let mut p = PipelineBuilder::new("nested");
    let mut add = p.function_component("add", "add");
    let (a, b) = (add.input::<i64>("a"), add.input::<i64>("b"));
    let sum = add.output::<i64>("sum");
    let add = p.add_component(add);
    let mut make = p.function_component("make", "make");
    let made = make.output::<List>("items");
    let make = p.add_component(make);

    let mut inner = p.dag_component("inner");
    let outer_item = inner.parameter::<i64>("outer");
    let inner_item = inner.parameter::<i64>("inner");
    let added = inner.task("add", &add).set(&a, &outer_item).set(&b, &inner_item).done();
    let inner_sums = inner.collect("sums", &added.output(&sum));
    let (outer_slot, inner_slot) = (inner.input_slot(&outer_item), inner.input_slot(&inner_item));
    let inner = p.add_dag(inner);

    let mut outer = p.dag_component("outer");
    let item = outer.parameter::<i64>("item");
    let nested =
        outer.task("inner-loop", &inner).set(&outer_slot, &item).parallel_for_items(&inner_slot, [10, 20], None).done();
    let outer_sums = outer.collect("sums", &nested.output(&inner_sums));
    let (item_slot, list_slot) = {
        let over = outer.parameter::<List>("over");
        (outer.input_slot(&item), outer.input_slot(&over))
    };
    let outer = p.add_dag(outer);
    let listed = p.task("make", &make).done();
    let looped = p
        .task("outer-loop", &outer)
        .set(&list_slot, &listed.output(&made))
        .parallel_for(&item_slot, &list_slot, Some(1))
        .done();
    let _ = p.output("sums", &looped.output(&outer_sums));
    let plan = Arc::new(p.build().unwrap());

    let mut f = arithmetic();
    f.register("add", |input| {
        let (a, b) = (input.parameters["a"].as_i64().ok_or("a")?, input.parameters["b"].as_i64().ok_or("b")?);
        Ok(FunctionOutput::default().parameter("sum", a + b))
    });
    let outcome = run(&Executor::new(f), &plan);
    assert_eq!(outcome.state, RunState::Succeeded, "{:?}", outcome.tasks);
    assert_eq!(outcome.outputs.parameters["sums"], json!([[11, 21], [12, 22], [13, 23]]));
    assert_eq!(outcome.tasks["outer-loop[2].inner-loop[1].add"].state, TaskState::Succeeded);
}

#[test]
fn an_exit_handler_runs_after_a_failure_and_sees_the_final_status() {
    let mut p = PipelineBuilder::new("exit");
    let step = p.function_component("step", "noop");
    let step = p.add_component(step);
    let mut report = p.function_component("report", "report");
    let status = report.input::<FinalStatus>("status");
    let report = p.add_component(report);
    let first = p.task("first", &step).done();
    let failing = p.task("train", &step).after(&first).done();
    p.task("cleanup", &report).final_status_of(&status, &failing).done();
    let plan = Arc::new(p.build().unwrap());
    let fake = FakeRunner::new().failing("train", 1);
    let outcome = run(&Executor::new(fake.clone()), &plan);
    assert_eq!(outcome.state, RunState::Failed);
    assert_eq!(outcome.tasks["cleanup"].state, TaskState::Succeeded);
    let cleanup = fake.calls().into_iter().find(|c| c.task == "cleanup").unwrap();
    let status = &cleanup.parameters["status"];
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["pipelineTaskName"], "train");
    assert!(status["error"]["message"].as_str().unwrap().contains("scripted failure"));
}

#[test]
fn cached_results_are_reused_until_they_are_too_old() {
    let plan = squares(vec![2, 3], None);
    let cache = Arc::new(InMemoryCache::new());
    let clock = Arc::new(ManualClock::new(1_000));
    let fake = || {
        FakeRunner::new().script(|call| {
            let mut o = crate::run::TaskOutputs::default();
            if let Some(x) = call.parameters.get("x") {
                o.parameters.insert("y".into(), x.clone());
            }
            o.parameters.insert("total".into(), json!(5));
            Ok(o)
        })
    };
    let exec = |f: &FakeRunner| {
        Executor::new(f.clone()).cache(cache.clone()).clock(clock.clone()).cache_max_age(Duration::from_secs(60))
    };
    let first = fake();
    let rt = rt();
    let one = rt.block_on(exec(&first).run(plan.clone(), RunRequest::default())).unwrap();
    assert_eq!(first.calls().len(), 3);
    assert_eq!(one.count(TaskState::Cached), 0);

    clock.advance(Duration::from_secs(10));
    let second = fake();
    let two = rt.block_on(exec(&second).run(plan.clone(), RunRequest::default())).unwrap();
    assert_eq!(two.state, RunState::Succeeded);
    assert!(second.calls().is_empty(), "every leaf was a cache hit");
    assert_eq!(two.count(TaskState::Cached), 3);
    assert_eq!(two.outputs, one.outputs, "cache hits give the same outputs");

    clock.advance(Duration::from_secs(120));
    let third = fake();
    let three = rt.block_on(exec(&third).run(plan.clone(), RunRequest::default())).unwrap();
    assert_eq!(third.calls().len(), 3, "entries older than the max age are not reused");
    assert_eq!(three.count(TaskState::Cached), 0);
}

#[test]
fn function_tasks_pass_artifacts_through_the_store() {
    let mut p = PipelineBuilder::new("artifacts");
    let mut train = p.function_component("train", "train");
    let model = train.output_artifact::<Model>("model");
    let train = p.add_component(train);
    let mut eval = p.function_component("eval", "eval");
    let input = eval.input_artifact::<Model>("model");
    let score = eval.output::<String>("score");
    let eval = p.add_component(eval);
    let trained = p.task("train", &train).done();
    let evaluated = p.task("eval", &eval).set_artifact(&input, &trained.output_artifact(&model)).done();
    let _ = p.output("score", &evaluated.output(&score));
    let plan = Arc::new(p.build().unwrap());

    let mut f = FunctionRunner::new();
    f.register("train", |_| Ok(FunctionOutput::default().artifact("model", &b"weights"[..])));
    f.register("eval", |input| {
        let model = input.artifacts["model"][0].clone();
        Ok(FunctionOutput::default().parameter("score", String::from_utf8_lossy(&model).into_owned()))
    });
    let store = crate::artifact::ArtifactStore::in_memory();
    let outcome = run(&Executor::new(f).artifacts(store.clone()), &plan);
    assert_eq!(outcome.state, RunState::Succeeded, "{:?}", outcome.tasks);
    assert_eq!(outcome.outputs.parameters["score"], json!("weights"));
    let written = rt().block_on(store.get_at(&object_store::path::Path::from("r/train/model"))).unwrap();
    assert_eq!(&written[..], b"weights", "artifacts live under <run>/<task>/<output>");
}

#[test]
fn a_function_that_is_not_registered_fails_without_retrying() {
    let (plan, _) = retried(3);
    let outcome = run(&Executor::new(FunctionRunner::new()), &plan);
    assert_eq!(outcome.tasks["a"].state, TaskState::Failed);
    assert_eq!(outcome.tasks["a"].attempts, 1);
    assert!(outcome.tasks["a"].message.as_deref().unwrap().contains("no function registered"));
}

#[tokio::test]
async fn a_resumed_run_keeps_completed_tasks_and_reruns_those_in_flight() {
    // t0 → t1 → t2, t3 alone; the first process dies while t1 runs.
    let plan = after_pipeline(&[(0, 1), (1, 2)], 4);
    let store: Arc<dyn crate::store::RunStore> = Arc::new(InMemoryRunStore::new());
    let first = FakeRunner::new().hanging("t1");
    let exec = Executor::new(first.clone()).store(store.clone());
    let request = RunRequest { id: Some("crash".into()), ..RunRequest::default() };
    let crashed = tokio::time::timeout(Duration::from_millis(100), exec.run(plan.clone(), request)).await;
    assert!(crashed.is_err(), "the first run never finishes");
    let before = store.snapshot("crash").unwrap();
    assert_eq!(before.tasks["t1"].state, TaskState::Running);

    let second = FakeRunner::new();
    let outcome = Executor::new(second.clone()).store(store.clone()).resume(plan, "crash").await.unwrap();
    assert_eq!(outcome.state, RunState::Succeeded);
    let rerun: BTreeSet<String> = second.calls().into_iter().map(|c| c.task).collect();
    assert_eq!(rerun, BTreeSet::from(["t1".to_owned(), "t2".to_owned()]));
    assert!(outcome.tasks["t0"].resumed && outcome.tasks["t3"].resumed);
    assert_eq!(store.snapshot("crash").unwrap().run, Some(RunState::Succeeded));
}

#[test]
fn bad_parameters_and_run_ids_are_errors_before_anything_runs() {
    let plan = squares(vec![1], None);
    let exec = Executor::new(FakeRunner::new());
    let rt = rt();
    let request = RunRequest { id: Some("../escape".into()), ..RunRequest::default() };
    let err = rt.block_on(exec.run(plan.clone(), request)).unwrap_err();
    assert_eq!(err.path(), Some("run.id"));
    let request = RunRequest { parameters: BTreeMap::from([("nope".into(), json!(1))]), ..RunRequest::default() };
    assert!(rt.block_on(exec.run(plan, request)).is_err());
}

fn random_dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>, usize)> {
    (1usize..40).prop_flat_map(|n| {
        let edges = proptest::collection::vec((0..n, 0..n), 0..n * 2)
            .prop_map(|e| e.into_iter().filter(|(a, b)| a < b).collect::<BTreeSet<_>>().into_iter().collect());
        (Just(n), edges, 1usize..6)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// On random DAGs every task runs exactly once, only after all its
    /// dependencies finished, and never more than `parallelism` at once.
    #[test]
    fn random_dags_run_every_task_once_in_order_within_the_limit((n, edges, parallelism) in random_dag()) {
        let plan = after_pipeline(&edges, n);
        let fake = FakeRunner::new();
        let outcome = run(&Executor::new(fake.clone()).parallelism(parallelism), &plan);
        prop_assert_eq!(outcome.state, RunState::Succeeded);
        let calls = fake.calls();
        prop_assert_eq!(calls.len(), n);
        let by_task: BTreeMap<&str, _> = calls.iter().map(|c| (c.task.as_str(), c)).collect();
        prop_assert_eq!(by_task.len(), n, "no task ran twice");
        for (a, b) in &edges {
            let (up, down) = (by_task[format!("t{a}").as_str()], by_task[format!("t{b}").as_str()]);
            prop_assert!(up.finished < down.started, "t{} started before t{} finished", b, a);
        }
        prop_assert!(fake.max_concurrency() <= parallelism);
    }

    /// Failures anywhere: a task runs only if all its upstream tasks
    /// succeeded, and every task reaches a final state.
    #[test]
    fn failures_skip_exactly_the_downstream_tasks((n, edges, parallelism) in random_dag(), failing in proptest::collection::btree_set(0usize..40, 0..4)) {
        let plan = after_pipeline(&edges, n);
        let mut fake = FakeRunner::new();
        for f in &failing {
            fake = fake.failing(&format!("t{f}"), 1);
        }
        let outcome = run(&Executor::new(fake.clone()).parallelism(parallelism), &plan);
        prop_assert_eq!(outcome.tasks.len(), n);
        for i in 0..n {
            let ups: Vec<usize> = edges.iter().filter(|(_, b)| *b == i).map(|(a, _)| *a).collect();
            let all_ok = ups.iter().all(|u| outcome.tasks[&format!("t{u}")].state == TaskState::Succeeded);
            let state = outcome.tasks[&format!("t{i}")].state;
            if !all_ok {
                prop_assert_eq!(state, TaskState::Skipped);
            } else if failing.contains(&i) {
                prop_assert_eq!(state, TaskState::Failed);
            } else {
                prop_assert_eq!(state, TaskState::Succeeded);
            }
        }
        let failed = outcome.count(TaskState::Failed) > 0;
        prop_assert_eq!(outcome.state, if failed { RunState::Failed } else { RunState::Succeeded });
    }

    /// Every retry waits exactly the policy's delay, and no more attempts
    /// are made than the policy allows.
    #[test]
    fn retries_obey_the_backoff_policy(
        max_retry_count in 0u32..6,
        failures in 0u32..8,
        backoff_ms in 0u64..5_000,
        factor in 1.0f64..3.0,
        max_ms in 0u64..20_000,
    ) {
        let policy = RetryPolicy {
            max_retry_count,
            backoff: Duration::from_millis(backoff_ms),
            backoff_factor: factor,
            backoff_max: Duration::from_millis(max_ms),
        };
        let mut p = PipelineBuilder::new("retry");
        let step = p.function_component("step", "noop");
        let step = p.add_component(step);
        p.task("a", &step).retry(policy).done();
        let plan = Arc::new(p.build().unwrap());
        let clock = Arc::new(ManualClock::new(0));
        let fake = FakeRunner::new().failing("a", failures);
        let outcome = run(&Executor::new(fake.clone()).clock(clock.clone()), &plan);
        let attempts = failures.min(max_retry_count) + 1;
        prop_assert_eq!(outcome.tasks["a"].attempts, attempts);
        let expected: Vec<Duration> = (1..attempts).map(|r| policy.delay(r)).collect();
        prop_assert_eq!(clock.sleeps(), expected);
        prop_assert!(clock.sleeps().iter().all(|d| *d <= policy.backoff_max));
        let state = if failures <= max_retry_count { TaskState::Succeeded } else { TaskState::Failed };
        prop_assert_eq!(outcome.tasks["a"].state, state);
    }
}

/// A cache that cannot read or write: runs go on, uncached.
struct BrokenCache;

impl crate::cache::Cache for BrokenCache {
    fn get(&self, _: &crate::CacheKey) -> crate::Result<Option<crate::cache::CacheEntry>> {
        Err(crate::Error::Store { message: "disk on fire".into() })
    }
    fn put(&self, _: &crate::CacheKey, _: crate::cache::CacheEntry) -> crate::Result<()> {
        Err(crate::Error::Store { message: "disk on fire".into() })
    }
}

#[test]
fn a_broken_cache_is_a_miss_not_a_failure() {
    let plan = after_pipeline(&[(0, 1)], 2);
    let fake = FakeRunner::new();
    let outcome = run(&Executor::new(fake.clone()).cache(Arc::new(BrokenCache)), &plan);
    assert_eq!(outcome.state, RunState::Succeeded);
    assert_eq!(fake.calls().len(), 2);
}
