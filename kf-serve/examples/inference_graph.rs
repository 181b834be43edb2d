//! Runs a KServe InferenceGraph on local models: a Sequence whose second
//! step is a Switch on the first model's output.
//!
//! ```text
//! cargo run -p kf-serve --example inference_graph
//! ```
//!
//! `score` doubles its input; `route` sends large scores to `big` and the
//! rest to `small`, which tag their answers. The graph moves v2 JSON: a
//! `$response` step gets the previous outputs as its inputs.

use std::sync::Arc;

use kf_serve::kserve::InferenceGraph;
use kf_serve::protocol::{DataType, InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata, Tensor};
use kf_serve::router::{GraphPlan, GraphRouter};
use kf_serve::{FnModel, ModelRepository};
use serde_json::json;

/// FP32 `x` → `x × factor + offset`, output named `x` so models chain.
fn affine(
    name: &str,
    factor: f32,
    offset: f32,
) -> FnModel<impl Fn(&InferenceRequest) -> kf_serve::Result<InferenceResponse>> {
    let tensor = MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1] };
    let meta = ModelMetadata {
        name: name.into(),
        versions: None,
        platform: "example".into(),
        inputs: vec![tensor.clone()],
        outputs: vec![tensor],
    };
    FnModel::new(meta, move |r: &InferenceRequest| {
        let x: Vec<f32> = r.inputs[0].data().as_f32().unwrap_or_default().iter().map(|v| v * factor + offset).collect();
        Ok(InferenceResponse { outputs: vec![Tensor::new("x", vec![x.len()], x)?], ..Default::default() })
    })
}

fn main() -> kf_serve::Result<()> {
    let repo = Arc::new(ModelRepository::new());
    repo.insert("score", "1", Arc::new(affine("score", 2.0, 0.0)));
    repo.insert("big", "1", Arc::new(affine("big", 1.0, 1000.0)));
    repo.insert("small", "1", Arc::new(affine("small", 1.0, -1000.0)));

    let graph = InferenceGraph::from_value(json!({
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph", "metadata": {"name": "scorer"},
        "spec": {"nodes": {
            "root": {"routerType": "Sequence", "steps": [
                {"serviceName": "score"},
                {"nodeName": "route", "data": "$response"},
            ]},
            "route": {"routerType": "Switch", "steps": [
                {"serviceName": "big", "condition": "[@this].#(inputs.0.data.0>10)"},
                {"serviceName": "small"},
            ]},
        }},
    }))?;
    let router = GraphRouter::new(GraphPlan::build(&graph)?, repo);
    for x in [3.0, 30.0] {
        let request = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [x]}]});
        let answer = router.route(&request)?;
        println!("x = {x:>4}: answered by {} with {}", answer["model_name"], answer["outputs"][0]["data"]);
    }
    Ok(())
}
