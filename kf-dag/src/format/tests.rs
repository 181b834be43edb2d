use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::Plan;
use crate::builder::{Dataset, FinalStatus, List, PipelineBuilder};
use crate::ir::ContainerSpec;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines");

fn example(name: &str) -> Pipeline {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{name}")).unwrap();
    from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_example_files_read_and_validate() {
    for name in ["hello.yaml", "sweep.yaml"] {
        let plan = Plan::new(example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!plan.root().order().is_empty());
    }
    let hello = example("hello.yaml");
    let shout = &hello.root_dag().unwrap().tasks["shout"];
    assert_eq!(shout.timeout, Some(Duration::from_secs(300)));
    assert_eq!(shout.retry.unwrap().max_retry_count, 2);
    assert!(matches!(hello.executors["exec-say"], Executor::Container(_)));
}

#[test]
fn the_module_doc_example_reads() {
    let doc = include_str!("../format.rs")
        .lines()
        .skip_while(|l| !l.starts_with("//! ```yaml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.strip_prefix("//! ").unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    Plan::new(from_str(&doc).unwrap()).unwrap();
}

/// A builder pipeline using every construct the format has.
fn everything() -> Pipeline {
    let mut p = PipelineBuilder::new("everything");
    let rates = p.parameter_with_default::<List>("rates", vec![json!(0.1), json!(0.2)]);
    let mut c = ContainerSpec::new("python:3.11");
    c.env.push(("MODE".into(), Template::parse("{{$.inputs.parameters['lr']}}").unwrap()));
    let mut train = p.container_component("train", c);
    let lr = train.input::<f64>("lr");
    let model = train.output_artifact::<Dataset>("model");
    let score = train.output::<f64>("score");
    train.command(["python", "-m", "train", &lr.placeholder(), &model.path(), &score.file()]);
    let train = p.add_component(train);
    let mut f = p.function_component("report", "report");
    let status = f.input::<FinalStatus>("status");
    let all = f.input_with_default::<List>("all", Vec::new());
    let report = p.add_component(f);
    let (imp, imported) = p.importer::<Dataset>("import", "s3://bucket/data");

    let mut body = p.dag_component("body");
    let item = body.parameter::<f64>("lr");
    let trained = body
        .task("train", &train)
        .set(&lr, &item)
        .retry(RetryPolicy { max_retry_count: 3, backoff: Duration::from_millis(1500), ..RetryPolicy::default() })
        .caching(CachingOptions { enabled: true, key: Some("k".into()) })
        .done();
    let scores = body.collect("scores", &trained.output(&score));
    let (item_slot, rates_slot) = {
        let over = body.parameter::<List>("rates");
        (body.input_slot(&item), body.input_slot(&over))
    };
    let body = p.add_dag(body);
    let data = p.task("import", &imp).done();
    let swept = p
        .task("sweep", &body)
        .set(&rates_slot, &rates)
        .parallel_for(&item_slot, &rates_slot, Some(2))
        .after(&data)
        .when("inputs.parameter_values['rates'] != 'none'")
        .done();
    let _ = imported;
    p.task("report", &report).set(&all, &swept.output(&scores)).final_status_of(&status, &swept).done();
    p.task("again", &train).set_value(&lr, 0.5).caching(CachingOptions { enabled: false, key: None }).done();
    let pipeline = p.into_pipeline().unwrap();
    Plan::new(pipeline.clone()).unwrap();
    pipeline
}

#[test]
fn writing_and_reading_back_is_the_identity() {
    let pipeline = everything();
    let value = to_value(&pipeline);
    let back = from_value(value.clone()).unwrap_or_else(|e| panic!("{e}\n{value:#}"));
    assert_eq!(back, pipeline);
    let yaml = serde_saphyr::to_string(&value).unwrap();
    assert_eq!(from_str(&yaml).unwrap(), pipeline, "through YAML text too");
    for name in ["hello.yaml", "sweep.yaml"] {
        let p = example(name);
        assert_eq!(from_value(to_value(&p)).unwrap(), p, "{name}");
    }
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (json!({"name": "p", "tasks": {"a": {"component": "c", "paramters": {}}}}), "tasks.a"),
        (
            json!({"name": "p", "tasks": {"a": {"component": "c", "parameters": {"x": {"value": 1, "task": "b"}}}}}),
            "tasks.a.parameters.x",
        ),
        (json!({"name": "p", "inputs": {"parameters": {"x": {"type": "FLOAT"}}}}), "inputs.parameters.x.type"),
        (json!({"name": "p", "tasks": {"a": {"component": "c", "timeout": "soon"}}}), "tasks.a.timeout"),
        (json!({"name": "p", "components": {"c": {"function": "f", "tasks": {}}}}), "components.c"),
        (
            json!({"name": "p", "components": {"c": {"container": {"image": "i", "args": ["{{$.inputs.nope}}"]}}}}),
            "components.c.container.args[0]",
        ),
        (
            json!({"name": "p", "tasks": {"a": {"component": "c", "when": "inputs.parameter_values['x'] >"}}}),
            "tasks.a.when",
        ),
        (
            json!({"name": "p", "components": {"d": {"outputs": {"parameters": {"o": {"type": "STRING"}}}, "tasks": {}}}}),
            "components.d.outputs.parameters.o.from",
        ),
    ];
    for (doc, path) in cases {
        let err = from_value(doc.clone()).expect_err(&doc.to_string());
        assert!(err.path().is_some_and(|p| p.starts_with(path)), "{doc}: expected {path}, got {err}");
    }
    let err = from_str("name: [unclosed").unwrap_err();
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn a_file_pipeline_runs() {
    let plan = Arc::new(Plan::new(example("hello.yaml")).unwrap());
    assert_eq!(plan.root().order(), ["say", "shout"]);
}
