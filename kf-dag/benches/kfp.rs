//! KFP costs: what `kf validate` pays per compiled pipeline (read the
//! values, check, import, plan), what export costs, and what the executor
//! pays per task for the executor contract (ExecutorInput + command line).
//!
//! `cargo bench -p kf-dag --bench kfp`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kf_dag::kfp::executor_input::executor_input;
use kf_dag::kfp::{KfpPipeline, PipelineRoot, RunFacts, Substitution};
use serde_json::{Value, json};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/kfp");

fn load(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{CORPUS}/{name}")).expect("corpus file");
    serde_saphyr::from_multiple(&text).expect("YAML")
}

fn kfp(c: &mut Criterion) {
    // The largest corpus file: 28 components, conditions inside a loop, OneOf, Collected.
    let docs = load("if_elif_else_complex.yaml");
    c.bench_function("kfp read + validate if_elif_else_complex (28 components)", |b| {
        b.iter(|| KfpPipeline::from_values(black_box(&docs)).and_then(|k| k.validate()).expect("valid"))
    });
    let parsed = KfpPipeline::from_values(&docs).expect("reads");
    c.bench_function("kfp write back if_elif_else_complex", |b| b.iter(|| black_box(&parsed).to_values()));
    let ir = parsed.to_pipeline().expect("imports");
    c.bench_function("kfp export if_elif_else_complex", |b| {
        b.iter(|| KfpPipeline::from_pipeline(black_box(&ir)).expect("exports").to_values())
    });

    let light = KfpPipeline::from_values(&load("lightweight_python_functions_with_outputs.yaml"))
        .and_then(|k| k.to_pipeline())
        .expect("imports");
    let component = &light.components["comp-add-numbers"];
    let Some(kf_dag::ir::Executor::Container(container)) = light.executor_of("comp-add-numbers") else {
        panic!("a container")
    };
    let params: BTreeMap<String, Value> = [("first".to_owned(), json!(1)), ("second".to_owned(), json!(2))].into();
    let root = PipelineRoot::new("/tmp/kf");
    let run = RunFacts::default();
    c.bench_function("kfp executor input + command line (lightweight component)", |b| {
        b.iter(|| {
            let input =
                executor_input(component, black_box(&params), &BTreeMap::new(), "/tmp/kf/run/add").expect("input");
            Substitution { input: &input, run: &run, root: &root }.command_line(container).expect("line")
        })
    });
}

criterion_group!(benches, kfp);
criterion_main!(benches);
