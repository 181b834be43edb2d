//! kf-dag inside your own binary: a three-step pipeline of Rust functions,
//! built with the typed builder, run twice on the local store; the second run
//! changes only the learning rate, so the first step comes from the cache.
//!
//! Run with `cargo run -p kf-dag --example embed`. The guide that walks
//! through it is docs/guides/kf-dag.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use kf_dag::builder::{Dataset, Model, PipelineBuilder};
use kf_dag::exec::RunRequest;
use kf_dag::local::{LocalRuns, SavedPipeline};
use kf_dag::runner::{FunctionOutput, FunctionRunner};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // guide: pipeline
    // Pipeline parameters and component inputs/outputs are typed handles: wiring
    // an f64 into a String input, or a Dataset into a Model input, does not compile.
    let mut p = PipelineBuilder::new("embed");
    let rows = p.parameter_with_default::<i64>("rows", 5);
    let lr = p.parameter_with_default::<f64>("lr", 0.1);

    // A function component names the Rust function that runs it ("prepare").
    let mut prepare = p.function_component("prepare", "prepare");
    let prepare_rows = prepare.input::<i64>("rows");
    let data = prepare.output_artifact::<Dataset>("data");
    let prepare = p.add_component(prepare);

    let mut train = p.function_component("train", "train");
    let train_data = train.input_artifact::<Dataset>("data");
    let train_lr = train.input::<f64>("lr");
    let model = train.output_artifact::<Model>("model");
    let loss = train.output::<f64>("loss");
    let train = p.add_component(train);

    let mut evaluate = p.function_component("evaluate", "evaluate");
    let evaluate_model = evaluate.input_artifact::<Model>("model");
    let evaluate_loss = evaluate.input::<f64>("loss");
    let verdict = evaluate.output::<String>("verdict");
    let evaluate = p.add_component(evaluate);

    // Tasks: prepare → train (artifact + parameter) → evaluate.
    let prepared = p.task("prepare", &prepare).set(&prepare_rows, &rows).done();
    let trained =
        p.task("train", &train).set_artifact(&train_data, &prepared.output_artifact(&data)).set(&train_lr, &lr).done();
    let evaluated = p
        .task("evaluate", &evaluate)
        .set_artifact(&evaluate_model, &trained.output_artifact(&model))
        .set(&evaluate_loss, &trained.output(&loss))
        .done();
    let _ = p.output("verdict", &evaluated.output(&verdict));
    // guide: end

    // guide: plan
    // `build` validates the pipeline into a Plan: cycles, dangling references
    // and type mismatches are errors naming the field. The plan knows its order.
    let plan = Arc::new(p.build()?);
    println!("plan: {:?}", plan.root().order());
    // guide: end

    // guide: functions
    // The Rust functions behind the components, by the names used above. Input
    // artifacts arrive as bytes; output artifacts are returned as bytes and
    // written to the artifact store by the runner.
    let mut functions = FunctionRunner::new();
    functions.register("prepare", |input| {
        let rows = input.parameters["rows"].as_i64().ok_or("rows is not an integer")?;
        let csv: String = (0..rows).map(|i| format!("{i},{}\n", i * 2)).collect();
        Ok(FunctionOutput::default().artifact("data", csv))
    });
    functions.register("train", |input| {
        let lr = input.parameters["lr"].as_f64().ok_or("lr is not a number")?;
        let data = input.artifacts.get("data").and_then(|v| v.first()).ok_or("no data")?;
        let rows = data.iter().filter(|b| **b == b'\n').count() as f64;
        let loss = (lr - 0.01).abs() + 1.0 / rows;
        Ok(FunctionOutput::default().parameter("loss", loss).artifact("model", format!("weights lr={lr}")))
    });
    functions.register("evaluate", |input| {
        let loss = input.parameters["loss"].as_f64().ok_or("loss is not a number")?;
        let verdict = if loss < 0.25 { "deploy" } else { "retrain" };
        Ok(FunctionOutput::default().parameter("verdict", verdict))
    });
    // guide: end

    // guide: store
    // LocalRuns keeps everything under one directory: run journals (a killed
    // run resumes from them), artifacts and the step cache. It is what
    // `kf pipeline run --store DIR` uses.
    let dir = tempfile::tempdir()?;
    let runs = LocalRuns::open(&dir.path().display().to_string())?;
    let executor = runs.executor(functions, true)?.parallelism(4);
    // guide: end

    // guide: run
    for (run, lr) in [("first", 0.1), ("second", 0.02)] {
        // Saving the pipeline lets `kf pipeline resume` find it by run id.
        runs.save_pipeline(run, &SavedPipeline::Kf(Box::new(plan.pipeline().clone())))?;
        let request = RunRequest { id: Some(run.into()), parameters: BTreeMap::from([("lr".into(), json!(lr))]) };
        let outcome = executor.run(plan.clone(), request).await?;
        println!("run {run} (lr={lr}): {:?}", outcome.state);
        for task in plan.root().order() {
            if let Some(summary) = outcome.tasks.get(task.as_str()) {
                println!("  {task:<9} {:<10} attempts={}", summary.state.to_string(), summary.attempts);
            }
        }
        println!("  verdict = {}", outcome.outputs.parameters.get("verdict").cloned().unwrap_or_default());
    }
    // guide: end

    // guide: list
    // The store remembers every run, as `kf pipeline list` shows them.
    for listing in runs.list()? {
        println!("stored: {} {:?} {:?}", listing.record.id, listing.state, listing.tasks);
    }
    // guide: end
    Ok(())
}
