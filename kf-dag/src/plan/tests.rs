use super::*;
use crate::ir::{
    Arg, ArtifactSpec, ArtifactType, Condition, ContainerSpec, DagOutputs, ImporterSpec, OutputRef, OutputSelection,
    ParallelFor, ParameterSpec, RetryPolicy,
};
use proptest::prelude::*;
use serde_json::json;

/// A pipeline with:
/// - `produce`: leaf, input `n: NUMBER_INTEGER` (default 1), outputs `text: STRING`, `items: LIST`,
///   `model: system.Model`;
/// - `consume`: leaf, inputs `text: STRING` (required), `data: system.Dataset` (optional);
/// - `body`: DAG with inputs `item: STRING`, `list: LIST`, output `texts: LIST`, one task `c` consuming the item.
fn base() -> Pipeline {
    let mut p = Pipeline::new("test");
    let mut exec = ContainerSpec::new("alpine");
    exec.args = vec![
        Arg::parse("{{$.inputs.parameters['n']}}").unwrap(),
        Arg::parse("{{$.outputs.parameters['text'].output_file}}").unwrap(),
    ];
    p.executors.insert("exec-produce".into(), Executor::Container(exec));
    p.executors.insert("exec-consume".into(), Executor::Container(ContainerSpec::new("alpine")));
    let mut produce = Component::leaf("exec-produce");
    produce
        .inputs
        .parameters
        .insert("n".into(), ParameterSpec::new(ParameterType::NumberInteger).with_default(json!(1)));
    produce.outputs.parameters.insert("text".into(), ParameterSpec::new(ParameterType::String));
    produce.outputs.parameters.insert("items".into(), ParameterSpec::new(ParameterType::List));
    produce.outputs.artifacts.insert("model".into(), ArtifactSpec::new(ArtifactType::model()));
    p.components.insert("produce".into(), produce);
    let mut consume = Component::leaf("exec-consume");
    consume.inputs.parameters.insert("text".into(), ParameterSpec::new(ParameterType::String));
    let mut data = ArtifactSpec::new(ArtifactType::dataset());
    data.optional = true;
    consume.inputs.artifacts.insert("data".into(), data);
    consume.outputs.parameters.insert("echo".into(), ParameterSpec::new(ParameterType::String));
    p.components.insert("consume".into(), consume);

    let mut body_dag = Dag::default();
    body_dag
        .tasks
        .insert("c".into(), consume_task(ParameterSource::ComponentInput { name: "item".into(), selector: None }));
    body_dag.outputs.parameters.insert("texts".into(), OutputSelection::one("c", "echo"));
    let mut body = Component::dag(body_dag);
    body.inputs.parameters.insert("item".into(), ParameterSpec::new(ParameterType::String));
    body.inputs.parameters.insert("list".into(), ParameterSpec::new(ParameterType::List));
    body.outputs.parameters.insert("texts".into(), ParameterSpec::new(ParameterType::List));
    p.components.insert("body".into(), body);

    let root = root(&mut p);
    root.tasks.insert("a".into(), Task::new("produce"));
    root.tasks.insert("b".into(), consume_task(ParameterSource::TaskOutput(OutputRef::new("a", "text"))));
    p
}

fn consume_task(text: ParameterSource) -> Task {
    let mut t = Task::new("consume");
    t.parameters.insert("text".into(), text);
    t
}

fn root(p: &mut Pipeline) -> &mut Dag {
    p.root.implementation.dag_mut().unwrap()
}

fn loop_task(items: LoopItems) -> Task {
    let mut t = Task::new("body");
    t.parameters.insert("list".into(), ParameterSource::TaskOutput(OutputRef::new("a", "items")));
    t.parallel_for = Some(ParallelFor { items, item_input: "item".into(), parallelism: Some(2) });
    t
}

fn rejected(p: Pipeline) -> Error {
    Plan::new(p).expect_err("should be rejected")
}

fn rejected_at(p: Pipeline, path: &str) -> Error {
    let err = rejected(p);
    assert_eq!(err.path(), Some(path), "{err}");
    err
}

#[test]
fn the_base_pipeline_plans() {
    let mut p = base();
    root(&mut p).tasks.insert("loop".into(), loop_task(LoopItems::InputParameter("list".into())));
    let plan = Plan::new(p).unwrap();
    assert_eq!(plan.root().order(), ["a", "b", "loop"]);
    assert_eq!(plan.root().levels(), [vec!["a".to_owned()], vec!["b".to_owned(), "loop".to_owned()]]);
    assert_eq!(plan.root().upstream("loop"), ["a"]);
    assert_eq!(plan.root().downstream("a"), ["b", "loop"]);
    assert_eq!(plan.component("body").unwrap().order(), ["c"]);
    assert!(plan.component("produce").is_none());
}

#[test]
fn missing_component() {
    let mut p = base();
    root(&mut p).tasks.get_mut("b").unwrap().component = "comp-missing".into();
    let err = rejected_at(p, "root.dag.tasks.b.componentRef.name");
    assert!(err.to_string().contains("no component named \"comp-missing\""), "{err}");
}

#[test]
fn missing_executor() {
    let mut p = base();
    p.executors.remove("exec-consume");
    rejected_at(p, "components.consume.executorLabel");
}

#[test]
fn dangling_task_reference() {
    let mut p = base();
    root(&mut p).tasks.insert("b".into(), consume_task(ParameterSource::TaskOutput(OutputRef::new("nope", "text"))));
    rejected_at(p, "root.dag.tasks.b.inputs.parameters.text.taskOutputParameter.producerTask");
}

#[test]
fn dangling_after() {
    let mut p = base();
    root(&mut p).tasks.get_mut("b").unwrap().after.insert("print-txt".into());
    let err = rejected_at(p, "root.dag.tasks.b.dependentTasks");
    assert!(err.to_string().contains("\"print-txt\""), "{err}");
}

#[test]
fn self_dependency() {
    let mut p = base();
    root(&mut p).tasks.get_mut("b").unwrap().after.insert("b".into());
    rejected_at(p, "root.dag.tasks.b.dependentTasks");
}

#[test]
fn unknown_input() {
    let mut p = base();
    root(&mut p).tasks.get_mut("b").unwrap().parameters.insert("lr".into(), ParameterSource::Constant(json!(1)));
    rejected_at(p, "root.dag.tasks.b.inputs.parameters.lr");
    let mut p = base();
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.artifacts.insert("weights".into(), ArtifactSource::TaskOutput(OutputRef::new("a", "model")));
    rejected_at(p, "root.dag.tasks.b.inputs.artifacts.weights");
}

#[test]
fn unknown_output() {
    let mut p = base();
    root(&mut p).tasks.insert("b".into(), consume_task(ParameterSource::TaskOutput(OutputRef::new("a", "result"))));
    let err = rejected_at(p, "root.dag.tasks.b.inputs.parameters.text.taskOutputParameter.outputParameterKey");
    assert!(err.to_string().contains("items, text"), "names the outputs that exist: {err}");
}

#[test]
fn parameter_type_mismatch() {
    let mut p = base();
    root(&mut p).tasks.insert("b".into(), consume_task(ParameterSource::TaskOutput(OutputRef::new("a", "items"))));
    let err = rejected_at(p, "root.dag.tasks.b.inputs.parameters.text");
    assert!(
        matches!(&err, Error::TypeMismatch { expected, found, .. } if expected == "STRING" && found.starts_with("LIST"))
    );
    let mut p = base();
    root(&mut p).tasks.insert("b".into(), consume_task(ParameterSource::Constant(json!(5))));
    rejected_at(p, "root.dag.tasks.b.inputs.parameters.text");
    let mut p = base();
    root(&mut p)
        .tasks
        .insert("b".into(), consume_task(ParameterSource::ComponentInput { name: "x".into(), selector: None }));
    p.root.inputs.parameters.insert("x".into(), ParameterSpec::new(ParameterType::Boolean));
    rejected_at(p, "root.dag.tasks.b.inputs.parameters.text");
}

#[test]
fn artifact_type_mismatch() {
    let mut p = base();
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.artifacts.insert("data".into(), ArtifactSource::TaskOutput(OutputRef::new("a", "model")));
    let err = rejected_at(p, "root.dag.tasks.b.inputs.artifacts.data");
    assert_eq!(
        err.to_string(),
        "root.dag.tasks.b.inputs.artifacts.data: expected system.Dataset, found system.Model (output \"model\" of task \"a\")"
    );
    // The generic system.Artifact accepts any artifact.
    let mut p = base();
    p.components.get_mut("consume").unwrap().inputs.artifacts.get_mut("data").unwrap().ty = ArtifactType::artifact();
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.artifacts.insert("data".into(), ArtifactSource::TaskOutput(OutputRef::new("a", "model")));
    Plan::new(p).unwrap();
}

#[test]
fn missing_required_input() {
    let mut p = base();
    root(&mut p).tasks.get_mut("b").unwrap().parameters.clear();
    let err = rejected_at(p, "root.dag.tasks.b.inputs.parameters");
    assert!(matches!(err, Error::MissingInput { input, .. } if input == "text"));
}

#[test]
fn bad_default() {
    let mut p = base();
    p.root
        .inputs
        .parameters
        .insert("lr".into(), ParameterSpec::new(ParameterType::NumberDouble).with_default(json!("x")));
    rejected_at(p, "root.inputDefinitions.parameters.lr.defaultValue");
}

#[test]
fn cycle_is_named() {
    let mut p = base();
    root(&mut p).tasks.get_mut("a").unwrap().after.insert("b".into());
    let err = rejected(p);
    assert_eq!(err, Error::Cycle { path: "root.dag.tasks.a".into(), cycle: vec!["a".into(), "b".into(), "a".into()] });
    assert_eq!(err.to_string(), "root.dag.tasks.a: dependency cycle a -> b -> a");
}

#[test]
fn components_may_not_nest_themselves() {
    let mut p = base();
    let body = p.components.get_mut("body").unwrap().implementation.dag_mut().unwrap();
    let mut inner = Task::new("body");
    inner.parameters.insert("item".into(), ParameterSource::Constant(json!("x")));
    inner.parameters.insert("list".into(), ParameterSource::Constant(json!([])));
    body.tasks.insert("again".into(), inner);
    let err = rejected(p);
    assert!(matches!(&err, Error::Cycle { cycle, .. } if cycle == &["body", "body"]), "{err}");
}

#[test]
fn scoping_hides_tasks_of_other_dags() {
    // The root cannot read task `c`, which lives inside the loop body.
    let mut p = base();
    root(&mut p).tasks.insert("b".into(), consume_task(ParameterSource::TaskOutput(OutputRef::new("c", "echo"))));
    let err = rejected_at(p, "root.dag.tasks.b.inputs.parameters.text.taskOutputParameter.producerTask");
    assert!(err.to_string().contains("it is a task of components.body.dag, visible here only through"), "{err}");
    // The body cannot read root task `a` directly either.
    let mut p = base();
    let body = p.components.get_mut("body").unwrap().implementation.dag_mut().unwrap();
    body.tasks.insert("c".into(), consume_task(ParameterSource::TaskOutput(OutputRef::new("a", "text"))));
    rejected_at(p, "components.body.dag.tasks.c.inputs.parameters.text.taskOutputParameter.producerTask");
    // Nor an input its component does not declare.
    let mut p = base();
    let body = p.components.get_mut("body").unwrap().implementation.dag_mut().unwrap();
    body.tasks.insert("c".into(), consume_task(ParameterSource::ComponentInput { name: "lr".into(), selector: None }));
    rejected_at(p, "components.body.dag.tasks.c.inputs.parameters.text.componentInputParameter");
}

#[test]
fn loop_rejections() {
    let mut p = base();
    let mut t = loop_task(LoopItems::InputParameter("list".into()));
    t.parallel_for.as_mut().unwrap().item_input = "elem".into();
    root(&mut p).tasks.insert("loop".into(), t);
    rejected_at(p, "root.dag.tasks.loop.parameterIterator.itemInput");

    let mut p = base();
    root(&mut p).tasks.insert("loop".into(), loop_task(LoopItems::InputParameter("xs".into())));
    rejected_at(p, "root.dag.tasks.loop.parameterIterator.items.inputParameter");

    let mut p = base();
    p.components.get_mut("body").unwrap().inputs.parameters.get_mut("item").unwrap().ty = ParameterType::NumberInteger;
    p.components.get_mut("body").unwrap().implementation.dag_mut().unwrap().tasks.clear();
    p.components.get_mut("body").unwrap().implementation.dag_mut().unwrap().outputs = DagOutputs::default();
    p.components.get_mut("body").unwrap().outputs = Interface::default();
    root(&mut p).tasks.insert("loop".into(), loop_task(LoopItems::Raw(vec![json!(1), json!("a")])));
    rejected_at(p, "root.dag.tasks.loop.parameterIterator.items.raw[1]");

    let mut p = base();
    let mut t = loop_task(LoopItems::Raw(vec![json!("a")]));
    t.parallel_for.as_mut().unwrap().parallelism = Some(0);
    root(&mut p).tasks.insert("loop".into(), t);
    rejected_at(p, "root.dag.tasks.loop.iteratorPolicy.parallelismLimit");

    let mut p = base();
    let mut t = consume_task(ParameterSource::Constant(json!("x")));
    t.parallel_for = Some(ParallelFor { items: LoopItems::Raw(vec![]), item_input: "text".into(), parallelism: None });
    root(&mut p).tasks.insert("loop".into(), t);
    rejected_at(p, "root.dag.tasks.loop.componentRef.name");

    let mut p = base();
    p.components.get_mut("body").unwrap().inputs.parameters.get_mut("list").unwrap().ty = ParameterType::Struct;
    let mut t = loop_task(LoopItems::InputParameter("list".into()));
    t.parameters.insert("list".into(), ParameterSource::Constant(json!({"a": 1})));
    root(&mut p).tasks.insert("loop".into(), t);
    rejected_at(p, "root.dag.tasks.loop.parameterIterator.items.inputParameter");
}

#[test]
fn condition_scoping() {
    let mut p = base();
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.trigger.condition = Some(Condition::parse("inputs.parameter_values['text'] == 'go'").unwrap());
    Plan::new(p).unwrap();
    let mut p = base();
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.trigger.condition = Some(Condition::parse("inputs.parameter_values['other'] == 'go'").unwrap());
    rejected_at(p, "root.dag.tasks.b.triggerPolicy.condition");
}

#[test]
fn placeholders_must_name_declared_inputs_and_outputs() {
    let mut p = base();
    let Some(Executor::Container(c)) = p.executors.get_mut("exec-produce") else { unreachable!() };
    c.args.push(Arg::parse("--out={{$.outputs.artifacts['weights'].path}}").unwrap());
    let err = rejected_at(p, "deploymentSpec.executors.exec-produce.container.args[2]");
    assert!(err.to_string().contains("\"weights\""), "{err}");
    let mut p = base();
    let Some(Executor::Container(c)) = p.executors.get_mut("exec-consume") else { unreachable!() };
    c.command.push(Arg::IfPresent { input: "ghost".into(), then: vec![], otherwise: vec![] });
    rejected_at(p, "deploymentSpec.executors.exec-consume.container.command[0]");
}

#[test]
fn constants_may_interpolate_inputs_of_their_own_task_only() {
    // KFP's f-string pipeline channels: an undeclared task input feeding a constant.
    let mut p = base();
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.parameters.insert("text".into(), ParameterSource::Constant(json!("got {{$.inputs.parameters['chan']}}!")));
    b.parameters.insert("chan".into(), ParameterSource::TaskOutput(OutputRef::new("a", "text")));
    let plan = Plan::new(p).unwrap();
    assert_eq!(plan.root().upstream("b"), ["a"]);
    let mut p = base();
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.parameters.insert("text".into(), ParameterSource::Constant(json!("got {{$.inputs.parameters['chan']}}!")));
    rejected_at(p, "root.dag.tasks.b.inputs.parameters.text.runtimeValue.constant");
}

#[test]
fn dag_output_rejections() {
    let mut p = base();
    let body = p.components.get_mut("body").unwrap().implementation.dag_mut().unwrap();
    body.outputs = DagOutputs::default();
    rejected_at(p, "components.body.dag.outputs.parameters");

    let mut p = base();
    let body = p.components.get_mut("body").unwrap();
    body.outputs.parameters.get_mut("texts").unwrap().ty = ParameterType::Boolean;
    rejected_at(p, "components.body.dag.outputs.parameters.texts.parameterSelectors[0]");

    let mut p = base();
    let body = p.components.get_mut("body").unwrap().implementation.dag_mut().unwrap();
    body.outputs.parameters.insert("texts".into(), OutputSelection::one("c", "nope"));
    rejected_at(p, "components.body.dag.outputs.parameters.texts.parameterSelectors[0].outputParameterKey");
}

#[test]
fn importer_checks() {
    let mut p = base();
    let importer = ImporterSpec {
        uri: ImporterUri::InputParameter("uri".into()),
        artifact_type: ArtifactType::dataset(),
        metadata: BTreeMap::new(),
        reimport: false,
    };
    p.executors.insert("exec-import".into(), Executor::Importer(importer));
    let mut comp = Component::leaf("exec-import");
    comp.inputs.parameters.insert("uri".into(), ParameterSpec::new(ParameterType::String));
    comp.outputs.artifacts.insert("artifact".into(), ArtifactSpec::new(ArtifactType::model()));
    p.components.insert("import".into(), comp);
    rejected_at(p.clone(), "deploymentSpec.executors.exec-import.importer.typeSchema");
    p.components.get_mut("import").unwrap().outputs.artifacts.get_mut("artifact").unwrap().ty = ArtifactType::dataset();
    Plan::new(p.clone()).unwrap();
    p.components.get_mut("import").unwrap().inputs.parameters.clear();
    rejected_at(p, "deploymentSpec.executors.exec-import.importer.artifactUri.runtimeParameter");
}

#[test]
fn retry_and_caching_rejections() {
    let mut p = base();
    root(&mut p).tasks.get_mut("b").unwrap().retry =
        Some(RetryPolicy { backoff_factor: 0.5, ..RetryPolicy::default() });
    rejected_at(p, "root.dag.tasks.b.retryPolicy.backoffFactor");
    let mut p = base();
    root(&mut p).tasks.get_mut("b").unwrap().caching.key = Some(" ".into());
    rejected_at(p, "root.dag.tasks.b.cachingOptions.cacheKey");
}

#[test]
fn a_root_that_is_not_a_dag_is_rejected() {
    let mut p = base();
    p.root = Component::leaf("exec-consume");
    rejected_at(p, "root.dag");
}

#[test]
fn a_deep_chain_of_a_hundred_thousand_tasks_plans_without_recursion() {
    let mut p = base();
    let dag = root(&mut p);
    dag.tasks.clear();
    let n = 100_000;
    for i in 0..n {
        let mut t = Task::new("produce");
        if i > 0 {
            t.after.insert(format!("t{:06}", i - 1));
        }
        dag.tasks.insert(format!("t{i:06}"), t);
    }
    let plan = Plan::new(p).unwrap();
    assert_eq!(plan.root().critical_path_len(), n);
}

/// A DAG of `n` tasks `t000…` whose edges all go from a lower to a higher
/// index (so it is acyclic), each edge kept with probability ~1/3.
fn random_dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (2usize..40).prop_flat_map(|n| {
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|j| (0..j).map(move |i| (i, j))).collect();
        let len = pairs.len();
        (Just(n), proptest::collection::vec(proptest::bool::weighted(0.3), len)).prop_map(move |(n, keep)| {
            (n, pairs.iter().zip(keep).filter(|(_, k)| *k).map(|(e, _)| *e).collect::<Vec<_>>())
        })
    })
}

fn pipeline_of(n: usize, edges: &[(usize, usize)]) -> Pipeline {
    let mut p = base();
    let mut relay = Component::leaf("exec-consume");
    relay.inputs.parameters.insert("text".into(), ParameterSpec::new(ParameterType::String).with_default(json!("")));
    relay.outputs.parameters.insert("text".into(), ParameterSpec::new(ParameterType::String));
    p.components.insert("relay".into(), relay);
    let dag = root(&mut p);
    dag.tasks.clear();
    for i in 0..n {
        dag.tasks.insert(format!("t{i:03}"), Task::new("relay"));
    }
    for (k, &(from, to)) in edges.iter().enumerate() {
        let task = dag.tasks.get_mut(&format!("t{to:03}")).unwrap();
        // Mix data and `after` dependencies; both must order tasks.
        if k % 2 == 1 && task.parameters.is_empty() {
            task.parameters
                .insert("text".into(), ParameterSource::TaskOutput(OutputRef::new(format!("t{from:03}"), "text")));
        } else {
            task.after.insert(format!("t{from:03}"));
        }
    }
    p
}

proptest! {
    #[test]
    fn random_dags_without_back_edges_plan_in_dependency_order((n, edges) in random_dag()) {
        let p = pipeline_of(n, &edges);
        let plan = Plan::new(p).unwrap();
        let order = plan.root().order();
        prop_assert_eq!(order.len(), n);
        let position: HashMap<&str, usize> = order.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        let level: HashMap<&str, usize> = plan.root().levels().iter().enumerate()
            .flat_map(|(l, ts)| ts.iter().map(move |t| (t.as_str(), l))).collect();
        for (from, to) in &edges {
            let (a, b) = (format!("t{from:03}"), format!("t{to:03}"));
            prop_assert!(position[a.as_str()] < position[b.as_str()], "{} must precede {}", a, b);
            prop_assert!(level[a.as_str()] < level[b.as_str()]);
        }
        // The critical path is a real chain as long as the levels.
        let path = plan.root().critical_path();
        prop_assert_eq!(path.len(), plan.root().critical_path_len());
        for pair in path.windows(2) {
            prop_assert!(plan.root().upstream(pair[1]).contains(&pair[0]));
        }
        // Level 0 is exactly the tasks without upstream, and every later task has an upstream one level up.
        for (t, &l) in &level {
            let ups = plan.root().upstream(t);
            prop_assert_eq!(l == 0, ups.is_empty());
            if l > 0 {
                prop_assert!(ups.iter().any(|u| level[u] == l - 1));
            }
        }
    }

    #[test]
    fn one_back_edge_is_rejected_as_a_cycle((n, edges) in random_dag(), pick in any::<prop::sample::Index>()) {
        prop_assume!(!edges.is_empty());
        let (from, to) = edges[pick.index(edges.len())];
        let mut p = pipeline_of(n, &edges);
        root(&mut p).tasks.get_mut(&format!("t{from:03}")).unwrap().after.insert(format!("t{to:03}"));
        let err = Plan::new(p).unwrap_err();
        let Error::Cycle { cycle, .. } = &err else { panic!("expected a cycle, got {err}") };
        prop_assert!(cycle.len() >= 3);
        prop_assert_eq!(cycle.first(), cycle.last());
        // Every consecutive pair on the reported cycle is a real dependency.
        let p = pipeline_of(n, &edges);
        let mut with_back = p.clone();
        root(&mut with_back).tasks.get_mut(&format!("t{from:03}")).unwrap().after.insert(format!("t{to:03}"));
        let dag = with_back.root_dag().unwrap();
        for pair in cycle.windows(2) {
            prop_assert!(dag.tasks[&pair[1]].upstream().contains(pair[0].as_str()), "{} -> {}", pair[0], pair[1]);
        }
    }
}

#[test]
fn resources_may_read_extra_task_inputs() {
    // KFP's `set_cpu_limit(task.output)`: the task carries an input the component does not declare.
    let mut p = base();
    let Some(Executor::Container(c)) = p.executors.get_mut("exec-consume") else { unreachable!() };
    c.resources.cpu_limit = Some(Template::parse("{{$.inputs.parameters['pipelinechannel--a-text']}}").unwrap());
    let mut with_input = p.clone();
    let b = root(&mut with_input).tasks.get_mut("b").unwrap();
    b.parameters.insert("pipelinechannel--a-text".into(), ParameterSource::TaskOutput(OutputRef::new("a", "text")));
    // Task `c` in the loop body runs the same component: it must give the input too.
    let err = rejected_at(with_input.clone(), "components.body.dag.tasks.c.inputs.parameters");
    assert!(err.to_string().contains("pipelinechannel--a-text"), "{err}");
    let body = with_input.components.get_mut("body").unwrap().implementation.dag_mut().unwrap();
    let c = body.tasks.get_mut("c").unwrap();
    c.parameters.insert("pipelinechannel--a-text".into(), ParameterSource::Constant(json!("1")));
    let plan = Plan::new(with_input).unwrap();
    assert_eq!(plan.root().upstream("b"), ["a"]);
    let err = rejected_at(p, "root.dag.tasks.b.inputs.parameters");
    assert!(err.to_string().contains("resourceCpuLimit"), "{err}");

    let mut p = base();
    let Some(Executor::Container(c)) = p.executors.get_mut("exec-consume") else { unreachable!() };
    c.resources.memory_limit = Some(Template::parse("{{$.outputs.parameters['x'].output_file}}").unwrap());
    rejected_at(p, "deploymentSpec.executors.exec-consume.container.resources.resourceMemoryLimit");
}

#[test]
fn exit_handlers_must_run_whatever_the_outcome() {
    let mut p = base();
    let mut notify = Component::leaf("exec-consume");
    notify.inputs.parameters.insert("status".into(), ParameterSpec::new(ParameterType::TaskFinalStatus));
    p.components.insert("notify".into(), notify);
    let mut t = Task::new("notify");
    t.parameters.insert("status".into(), ParameterSource::TaskFinalStatus("b".into()));
    root(&mut p).tasks.insert("exit".into(), t);
    rejected_at(p.clone(), "root.dag.tasks.exit.triggerPolicy.strategy");
    root(&mut p).tasks.get_mut("exit").unwrap().trigger.strategy = TriggerStrategy::AllUpstreamCompleted;
    assert_eq!(Plan::new(p.clone()).unwrap().root().upstream("exit"), ["b"]);

    // A handler reading an output of the task it outlives could never run
    // after a failure, unless the input has a default.
    let notify = p.components.get_mut("notify").unwrap();
    notify.inputs.parameters.insert("echo".into(), ParameterSpec::new(ParameterType::String));
    let exit = root(&mut p).tasks.get_mut("exit").unwrap();
    exit.parameters.insert("echo".into(), ParameterSource::TaskOutput(OutputRef::new("b", "echo")));
    let err = rejected_at(p.clone(), "root.dag.tasks.exit.inputs.parameters.echo.taskOutputParameter");
    assert!(err.to_string().contains("default"), "{err}");
    let notify = p.components.get_mut("notify").unwrap();
    notify.inputs.parameters.insert("echo".into(), ParameterSpec::new(ParameterType::String).with_default(json!("")));
    Plan::new(p).expect("with a default the handler can always run");
}

#[test]
fn names_that_could_escape_an_artifact_path_are_rejected() {
    for bad in ["..", ".", "a/b", "a\\b", "", " "] {
        let mut p = base();
        let t = root(&mut p).tasks.remove("b").unwrap();
        root(&mut p).tasks.insert(bad.into(), t);
        rejected_at(p, "root.dag.tasks");
        let mut p = base();
        let produce = p.components.get_mut("produce").unwrap();
        let model = produce.outputs.artifacts.remove("model").unwrap();
        produce.outputs.artifacts.insert(bad.into(), model);
        rejected_at(p, "components.produce.outputDefinitions.artifacts");
    }
}

#[test]
fn run_parameters_are_checked_and_defaulted() {
    let mut p = base();
    p.root
        .inputs
        .parameters
        .insert("lr".into(), ParameterSpec::new(ParameterType::NumberDouble).with_default(json!(0.1)));
    p.root.inputs.parameters.insert("epochs".into(), ParameterSpec::new(ParameterType::NumberInteger));
    let plan = Plan::new(p).unwrap();
    let ok = plan.resolve_parameters([("epochs".to_owned(), json!(2))].into()).unwrap();
    assert_eq!(ok, [("epochs".to_owned(), json!(2)), ("lr".to_owned(), json!(0.1))].into());
    let err = plan.resolve_parameters(BTreeMap::new()).unwrap_err();
    assert!(matches!(err, Error::MissingInput { input, .. } if input == "epochs"));
    let err = plan.resolve_parameters([("epochs".to_owned(), json!(2.5))].into()).unwrap_err();
    assert_eq!(err.path(), Some("root.inputDefinitions.parameters.epochs"));
    let err =
        plan.resolve_parameters([("epochs".to_owned(), json!(2)), ("lr2".to_owned(), json!(1))].into()).unwrap_err();
    assert!(err.to_string().contains("\"lr2\""), "{err}");
}

/// `depth` DAG components, each running the next; the innermost runs `produce`.
fn nested(depth: usize) -> Pipeline {
    let mut p = base();
    for i in 0..depth {
        let inner = if i + 1 == depth { "produce".to_owned() } else { format!("d{:05}", i + 1) };
        let mut dag = Dag::default();
        dag.tasks.insert("t".into(), Task::new(inner));
        p.components.insert(format!("d{i:05}"), Component::dag(dag));
    }
    root(&mut p).tasks.insert("deep".into(), Task::new("d00000"));
    p
}

#[test]
fn deeply_nested_dags_plan_without_recursion() {
    let plan = Plan::new(nested(20_000)).unwrap();
    assert_eq!(plan.component("d19999").unwrap().order(), ["t"]);
    // Closing the chain into a loop of nesting is named as a cycle.
    let mut p = nested(20_000);
    p.components.get_mut("d19999").unwrap().implementation.dag_mut().unwrap().tasks.get_mut("t").unwrap().component =
        "d00000".into();
    let err = rejected(p);
    assert!(matches!(&err, Error::Cycle { cycle, .. } if cycle.len() == 20_001), "{}", err.path().unwrap_or(""));
}

#[test]
fn huge_strings_are_handled_in_linear_time() {
    let mut p = base();
    let text = "x".repeat(5_000_000) + "{{$.inputs.parameters['chan']}}";
    let b = root(&mut p).tasks.get_mut("b").unwrap();
    b.parameters.insert("text".into(), ParameterSource::Constant(json!(text)));
    b.parameters.insert("chan".into(), ParameterSource::TaskOutput(OutputRef::new("a", "text")));
    Plan::new(p).unwrap();
}
