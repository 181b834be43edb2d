use super::*;
use crate::ir::ParameterType;
use serde_json::json;

struct Fixture {
    p: PipelineBuilder,
    prep: ComponentRef,
    url: Input<String>,
    data: ArtifactOutput<Dataset>,
    rows: Output<i64>,
    train: ComponentRef,
    train_data: ArtifactInput<Dataset>,
    lr: Input<f64>,
    model: ArtifactOutput<Model>,
}

fn fixture() -> Fixture {
    let mut p = PipelineBuilder::new("fixture");
    let mut prep = p.container_component("prep", ContainerSpec::new("alpine"));
    let url = prep.input::<String>("url");
    let data = prep.output_artifact::<Dataset>("data");
    let rows = prep.output::<i64>("rows");
    prep.args(["fetch", &url.placeholder(), &data.path(), &rows.file()]);
    let prep = p.add_component(prep);
    let mut train = p.function_component("train", "train_fn");
    let train_data = train.input_artifact::<Dataset>("data");
    let lr = train.input_with_default::<f64>("lr", 0.1);
    let model = train.output_artifact::<Model>("model");
    let train = p.add_component(train);
    Fixture { p, prep, url, data, rows, train, train_data, lr, model }
}

#[test]
fn a_wired_pipeline_builds_into_the_expected_ir() {
    let Fixture { mut p, prep, url, data, train, train_data, lr, .. } = fixture();
    let source = p.parameter::<String>("source");
    let rate = p.parameter_with_default::<f64>("rate", 0.01);
    let prep_task = p.task("prep", &prep).set(&url, &source).done();
    let dataset = prep_task.output_artifact(&data);
    p.task("train", &train)
        .set_artifact(&train_data, &dataset)
        .set(&lr, &rate)
        .retry(RetryPolicy { max_retry_count: 2, ..RetryPolicy::default() })
        .display_name("Train")
        .done();
    let plan = p.build().unwrap();
    assert_eq!(plan.root().order(), ["prep", "train"]);
    let pipeline = plan.pipeline();
    assert_eq!(pipeline.parameters().parameters["rate"].default, Some(json!(0.01)));
    assert_eq!(pipeline.parameters().parameters["source"].ty, ParameterType::String);
    let t = &pipeline.root_dag().unwrap().tasks["train"];
    assert_eq!(t.artifacts["data"], ArtifactSource::TaskOutput(OutputRef::new("prep", "data")));
    assert_eq!(t.parameters["lr"], ParameterSource::ComponentInput { name: "rate".into(), selector: None });
    assert_eq!(t.retry.unwrap().max_retry_count, 2);
    assert!(matches!(pipeline.executor_of("train"), Some(Executor::Function(f)) if f.name == "train_fn"));
    let Some(Executor::Container(c)) = pipeline.executor_of("prep") else { panic!("prep runs a container") };
    assert_eq!(c.args[1].clone(), Arg::parse("{{$.inputs.parameters['url']}}").unwrap());
}

#[test]
fn an_input_handle_of_another_component_is_rejected() {
    let Fixture { mut p, prep, lr, .. } = fixture();
    let rate = p.parameter::<f64>("rate");
    p.task("prep", &prep).set(&lr, &rate).done();
    let err = p.build().unwrap_err();
    assert_eq!(err.path(), Some("root.dag.tasks.prep.inputs.parameters.lr"), "{err}");
}

#[test]
fn an_output_handle_of_another_component_is_rejected() {
    let Fixture { mut p, prep, url, model, .. } = fixture();
    let t = p.task("prep", &prep).set_value(&url, "s3://x".to_owned()).done();
    // `model` is an output of `train`, not of `prep`; only the types line up.
    let wrong: Art<Model> = t.output_artifact(&model);
    let mut c = p.container_component("c", ContainerSpec::new("img"));
    let input = c.input_artifact::<Model>("in");
    let c = p.add_component(c);
    p.task("c", &c).set_artifact(&input, &wrong).done();
    let err = p.build().unwrap_err();
    assert_eq!(err.path(), Some("root.dag.tasks.c.inputs.artifacts.in"), "{err}");
    assert!(err.to_string().contains("belongs to component \"train\""), "{err}");
}

#[test]
fn a_value_from_another_dag_is_rejected() {
    let Fixture { mut p, prep, url, .. } = fixture();
    let outer = p.parameter::<String>("source");
    let mut body = p.dag_component("body");
    body.task("prep", &prep).set(&url, &outer).done();
    p.add_dag(body);
    let err = p.build().unwrap_err();
    assert_eq!(err.path(), Some("components.body.dag.tasks.prep.inputs.parameters.url"), "{err}");
    assert!(err.to_string().contains("another DAG"), "{err}");
}

#[test]
fn duplicate_names_are_rejected() {
    let Fixture { mut p, prep, url, .. } = fixture();
    p.task("prep", &prep).set_value(&url, "a".into()).done();
    p.task("prep", &prep).set_value(&url, "b".into()).done();
    assert_eq!(p.build().unwrap_err(), Error::Duplicate { path: "root.dag.tasks".into(), name: "prep".into() });

    let mut p = PipelineBuilder::new("p");
    let a = p.container_component("c", ContainerSpec::new("img"));
    let b = p.container_component("c", ContainerSpec::new("img"));
    p.add_component(a);
    p.add_component(b);
    assert_eq!(p.build().unwrap_err(), Error::Duplicate { path: "components".into(), name: "c".into() });

    let mut p = PipelineBuilder::new("p");
    let mut c = p.container_component("c", ContainerSpec::new("img"));
    c.input::<String>("x");
    c.output_artifact::<Model>("x");
    c.input::<i64>("x");
    p.add_component(c);
    assert_eq!(p.build().unwrap_err().path(), Some("components.c.inputDefinitions.parameters"));
}

#[test]
fn malformed_placeholders_and_conditions_are_reported_at_build() {
    let mut p = PipelineBuilder::new("p");
    let mut c = p.container_component("c", ContainerSpec::new("img"));
    c.args(["ok", "{{$.inputs.parameters[x]}}"]);
    p.add_component(c);
    assert_eq!(p.build().unwrap_err().path(), Some("deploymentSpec.executors.exec-c.container.args[1]"));

    let Fixture { mut p, prep, url, .. } = fixture();
    p.task("prep", &prep).set_value(&url, "a".into()).when("inputs.parameter_values['url'] ==").done();
    assert_eq!(p.build().unwrap_err().path(), Some("root.dag.tasks.prep.triggerPolicy.condition"));
}

#[test]
fn a_missing_required_input_is_caught_by_validation() {
    let Fixture { mut p, prep, .. } = fixture();
    p.task("prep", &prep).done();
    assert!(matches!(p.build().unwrap_err(), Error::MissingInput { input, .. } if input == "url"));
}

#[test]
fn loops_collect_outputs_and_conditions_read_task_inputs() {
    let Fixture { mut p, prep, url, rows, .. } = fixture();
    let urls = p.parameter_with_default::<List>("urls", vec![json!("a"), json!("b")]);

    // Loop body: one `prep` per URL, collecting the row counts.
    let mut body = p.dag_component("per-url");
    let item = body.parameter::<String>("url");
    let all = body.parameter::<List>("urls");
    let t = body.task("prep", &prep).set(&url, &item).done();
    let counts = body.collect("counts", &t.output(&rows));
    let (item_in, list_in) = (body.input_slot(&item), body.input_slot(&all));
    let body = p.add_dag(body);

    let fan_out = p.task("fan-out", &body).set(&list_in, &urls).parallel_for(&item_in, &list_in, Some(2)).done();
    let collected = fan_out.output(&counts);

    let mut sum = p.function_component("sum", "sum");
    let values = sum.input::<List>("values");
    let total = sum.output::<i64>("total");
    let sum = p.add_component(sum);
    let s = p.task("sum", &sum).set(&values, &collected).done();

    let mut report = p.function_component("report", "report");
    let n = report.input::<i64>("n");
    let report = p.add_component(report);
    p.task("report", &report).set(&n, &s.output(&total)).when("inputs.parameter_values['n'] > 10").done();

    let plan = p.build().unwrap();
    assert_eq!(plan.root().order(), ["fan-out", "sum", "report"]);
    assert_eq!(plan.root().critical_path_len(), 3);
    let task = &plan.pipeline().root_dag().unwrap().tasks["fan-out"];
    let pf = task.parallel_for.as_ref().unwrap();
    assert_eq!((pf.item_input.as_str(), pf.parallelism), ("url", Some(2)));
    assert_eq!(pf.items, LoopItems::InputParameter("urls".into()));
    assert_eq!(plan.pipeline().components["per-url"].outputs.parameters["counts"].ty, ParameterType::List);
}

#[test]
fn literal_loops_exit_handlers_and_nested_artifacts() {
    let Fixture { mut p, prep, url, data, train, train_data, model, .. } = fixture();

    // A nested pipeline: prep then train, returning the model.
    let mut inner = p.dag_component("prep-and-train");
    let src = inner.parameter::<String>("src");
    let t1 = inner.task("prep", &prep).set(&url, &src).done();
    let t2 = inner.task("train", &train).set_artifact(&train_data, &t1.output_artifact(&data)).done();
    let models = inner.output_artifact::<Artifacts<Model>, Model>("models", &t2.output_artifact(&model));
    let src_in = inner.input_slot(&src);
    let inner = p.add_dag(inner);
    let fan = p.task("each", &inner).parallel_for_items(&src_in, ["a".to_owned(), "b".to_owned()], None).done();

    let mut pick = p.function_component("pick", "pick");
    let candidates = pick.input_artifact::<Artifacts<Model>>("candidates");
    let pick = p.add_component(pick);
    let picked = p.task("pick", &pick).set_artifact(&candidates, &fan.output_artifact(&models)).done();

    let mut notify = p.function_component("notify", "notify");
    let status = notify.input::<FinalStatus>("status");
    let notify = p.add_component(notify);
    p.task("notify", &notify).final_status_of(&status, &picked).done();

    let plan = p.build().unwrap();
    assert_eq!(plan.root().order(), ["each", "pick", "notify"]);
    let notify = &plan.pipeline().root_dag().unwrap().tasks["notify"];
    assert_eq!(notify.trigger.strategy, TriggerStrategy::AllUpstreamCompleted);
    assert_eq!(plan.component("prep-and-train").unwrap().order(), ["prep", "train"]);
}

#[test]
fn a_dag_output_must_come_from_a_task() {
    let mut p = PipelineBuilder::new("p");
    let mut d = p.dag_component("d");
    let x = d.parameter::<String>("x");
    d.output("y", &x);
    p.add_dag(d);
    assert_eq!(p.build().unwrap_err().path(), Some("components.d.dag.outputs.parameters.y"));
}

#[test]
fn input_slots_come_from_this_dags_own_inputs() {
    let Fixture { mut p, prep, url, rows, .. } = fixture();
    let mut d = p.dag_component("d");
    let t = d.task("prep", &prep).set_value(&url, "x".into()).done();
    let _slot = d.input_slot(&t.output(&rows));
    p.add_dag(d);
    assert_eq!(p.build().unwrap_err().path(), Some("components.d.inputDefinitions"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a user wires with typed handles (here: every task reads
        /// a random earlier task's number and dataset, and runs after
        /// another), the pipeline builds, and the plan orders producers first.
        #[test]
        fn typed_wiring_always_validates(picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 1..40)) {
            let mut p = PipelineBuilder::new("random");
            let seed = p.parameter_with_default::<i64>("seed", 1);
            let mut step = p.function_component("step", "step");
            let n_in = step.input::<i64>("n");
            let d_in = step.optional_input_artifact::<Dataset>("d");
            let n_out = step.output::<i64>("n");
            let d_out = step.output_artifact::<Dataset>("d");
            let step = p.add_component(step);
            let mut tasks = vec![p.task("t0", &step).set(&n_in, &seed).done()];
            let mut edges = Vec::new();
            for (i, (a, b, after)) in picks.iter().enumerate() {
                let (a, b) = (a.index(tasks.len()), b.index(tasks.len()));
                let mut t = p.task(&format!("t{}", i + 1), &step)
                    .set(&n_in, &tasks[a].output(&n_out))
                    .set_artifact(&d_in, &tasks[b].output_artifact(&d_out));
                if *after {
                    t = t.after(&tasks[a.min(b)]);
                }
                let t = t.done();
                edges.push((tasks[a].name().to_owned(), t.name().to_owned()));
                edges.push((tasks[b].name().to_owned(), t.name().to_owned()));
                tasks.push(t);
            }
            let plan = p.build().unwrap();
            let position: std::collections::HashMap<&str, usize> =
                plan.root().order().iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
            prop_assert_eq!(position.len(), tasks.len());
            for (from, to) in &edges {
                prop_assert!(position[from.as_str()] < position[to.as_str()]);
            }
        }
    }
}
