//! Validation and cache-key costs (issue targets: validate + plan a 200-task
//! pipeline under 20 ms; a cache key over 100 parameters under 50 µs).
//!
//! `cargo bench -p kf-dag --bench plan`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kf_dag::cache_key::ResolvedInputs;
use kf_dag::ir::{
    Arg, ArtifactSource, ArtifactSpec, ArtifactType, Component, ContainerSpec, Executor, OutputRef, ParameterSource,
    ParameterSpec, ParameterType, Pipeline, Task,
};
use kf_dag::{CacheKey, Plan};
use serde_json::json;

/// 200 tasks in 20 layers of 10; each task reads a parameter and an artifact
/// from two tasks of the layer before, like a wide training pipeline.
fn pipeline(layers: usize, width: usize) -> Pipeline {
    let mut p = Pipeline::new("bench");
    let mut c = ContainerSpec::new("python:3.11");
    c.args = ["{{$.inputs.parameters['x']}}", "{{$.inputs.artifacts['d'].path}}", "{{$.outputs.artifacts['m'].path}}"]
        .iter()
        .map(|a| Arg::parse(a).expect("valid placeholder"))
        .collect();
    p.executors.insert("exec".into(), Executor::Container(c));
    let mut comp = Component::leaf("exec");
    comp.inputs.parameters.insert("x".into(), ParameterSpec::new(ParameterType::String).with_default(json!("")));
    let mut d = ArtifactSpec::new(ArtifactType::dataset());
    d.optional = true;
    comp.inputs.artifacts.insert("d".into(), d);
    comp.outputs.parameters.insert("y".into(), ParameterSpec::new(ParameterType::String));
    comp.outputs.artifacts.insert("m".into(), ArtifactSpec::new(ArtifactType::dataset()));
    p.components.insert("step".into(), comp);
    let dag = p.root.implementation.dag_mut().expect("root is a DAG");
    for l in 0..layers {
        for w in 0..width {
            let mut t = Task::new("step");
            if l > 0 {
                let a = format!("t{}-{}", l - 1, w);
                let b = format!("t{}-{}", l - 1, (w + 1) % width);
                t.parameters.insert("x".into(), ParameterSource::TaskOutput(OutputRef::new(a, "y")));
                t.artifacts.insert("d".into(), ArtifactSource::TaskOutput(OutputRef::new(b, "m")));
            }
            dag.tasks.insert(format!("t{l}-{w}"), t);
        }
    }
    p
}

fn benches(c: &mut Criterion) {
    let p = pipeline(20, 10);
    c.bench_function("validate + plan, 200 tasks", |b| b.iter(|| Plan::new(black_box(p.clone())).expect("valid")));

    let component = p.components["step"].clone();
    let executor = p.executors["exec"].clone();
    let mut inputs = ResolvedInputs::default();
    for i in 0..100 {
        inputs
            .parameters
            .insert(format!("param_{i}"), json!({"value": i, "name": format!("p{i}"), "tags": ["a", "b"]}));
    }
    c.bench_function("cache key, 100 parameters", |b| {
        b.iter(|| CacheKey::compute(black_box(&component), Some(&executor), black_box(&inputs)))
    });
}

criterion_group!(name = plan; config = Criterion::default().sample_size(20); targets = benches);
criterion_main!(plan);
