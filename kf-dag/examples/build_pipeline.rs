//! Build a small training pipeline with the typed builder, validate it and
//! look at its plan.
//!
//! Run with `cargo run -p kf-dag --example build_pipeline`.
//!
//! The pipeline: download a CSV → sweep three learning rates in parallel (at
//! most two at once), each training a model → pick the best → deploy it only
//! if its accuracy clears a bar. Nothing runs here: the executor is a separate
//! step. This shows how a pipeline is declared and what validation gives back.

use kf_dag::CacheKey;
use kf_dag::builder::{Artifacts, Dataset, List, Model, PipelineBuilder};
use kf_dag::cache_key::ResolvedInputs;
use kf_dag::ir::{ContainerSpec, RetryPolicy};
use serde_json::json;
use std::time::Duration;

fn main() -> Result<(), kf_dag::Error> {
    let mut p = PipelineBuilder::new("train-and-deploy");

    // Pipeline parameters, typed: `source` is a String, `rates` a LIST.
    let source = p.parameter::<String>("source");
    let rates = p.parameter_with_default::<List>("rates", vec![json!(0.1), json!(0.01), json!(0.001)]);

    // A component declares typed inputs and outputs and gets handles back.
    // Handles also write the placeholders the command line needs.
    let mut download = p.container_component("download", ContainerSpec::new("curlimages/curl:8.10.1"));
    let url = download.input::<String>("url");
    let csv = download.output_artifact::<Dataset>("csv");
    download.command(["curl", "-fsSL", "-o", &csv.path(), &url.placeholder()]);
    let download = p.add_component(download);

    // A component run by a Rust function registered under "train".
    let mut train = p.function_component("train", "train");
    let data = train.input_artifact::<Dataset>("data");
    let lr = train.input::<f64>("lr");
    let model = train.output_artifact::<Model>("model");
    let train = p.add_component(train);

    // The loop body is a DAG component: its inputs are the loop item and the
    // data; it collects one model per iteration.
    let mut sweep = p.dag_component("sweep");
    let rate = sweep.parameter::<f64>("rate");
    let all_rates = sweep.parameter::<List>("rates");
    let dataset = sweep.artifact::<Dataset>("data");
    let trained = sweep
        .task("train", &train)
        .set_artifact(&data, &dataset)
        .set(&lr, &rate)
        .retry(RetryPolicy { max_retry_count: 2, backoff: Duration::from_secs(5), ..RetryPolicy::default() })
        .done();
    let models = sweep.output_artifact::<Artifacts<Model>, Model>("models", &trained.output_artifact(&model));
    // The handles the parent uses to feed the body's inputs.
    let (rate_in, rates_in, data_in) =
        (sweep.input_slot(&rate), sweep.input_slot(&all_rates), sweep.artifact_slot(&dataset));
    let sweep = p.add_dag(sweep);

    let mut pick = p.function_component("pick-best", "pick_best");
    let candidates = pick.input_artifact::<Artifacts<Model>>("candidates");
    let best = pick.output_artifact::<Model>("best");
    let accuracy = pick.output::<f64>("accuracy");
    let pick = p.add_component(pick);

    let mut deploy = p.function_component("deploy", "deploy");
    let to_deploy = deploy.input_artifact::<Model>("model");
    let score = deploy.input::<f64>("accuracy");
    let deploy = p.add_component(deploy);

    // Wiring: every `set` pairs an input handle with a value of the same type.
    // `set_artifact(&to_deploy, &csv_artifact)` would not compile: a Dataset
    // is not a Model; neither would `set(&lr, &source)`: a String is not an f64.
    let fetched = p.task("download", &download).set(&url, &source).done();
    let swept = p
        .task("sweep", &sweep)
        .set(&rates_in, &rates)
        .set_artifact(&data_in, &fetched.output_artifact(&csv))
        .parallel_for(&rate_in, &rates_in, Some(2))
        .done();
    let picked = p.task("pick", &pick).set_artifact(&candidates, &swept.output_artifact(&models)).done();
    p.task("deploy", &deploy)
        .set_artifact(&to_deploy, &picked.output_artifact(&best))
        .set(&score, &picked.output(&accuracy))
        .when("inputs.parameter_values['accuracy'] >= 0.9")
        .done();

    // `build` validates everything and returns the plan.
    let plan = p.build()?;
    println!("pipeline {:?}", plan.pipeline().name);
    for (i, level) in plan.root().levels().iter().enumerate() {
        println!("  level {i}: {}", level.join(", "));
    }
    println!("  critical path: {} tasks", plan.root().critical_path_len());
    println!("  loop body: {}", plan.component("sweep").map(|d| d.order().join(" -> ")).unwrap_or_default());

    // The cache key of the download task for one concrete input.
    let task = &plan.pipeline().root_dag().map(|d| d.tasks["download"].clone()).expect("root DAG");
    let mut inputs = ResolvedInputs::default();
    inputs.parameters.insert("url".into(), json!("https://example.com/iris.csv"));
    if let Some(key) = CacheKey::for_task(plan.pipeline(), task, &inputs) {
        println!("  cache key of download: {key}");
    }
    Ok(())
}
