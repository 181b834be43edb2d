//! The ONNX runtime against the shared test models: metadata as samples.json
//! declares it, outputs within each model's tolerance, ONNX-ML files either
//! run correctly or are refused naming the operator.
#![cfg(feature = "onnx")]

use std::sync::Arc;

use kf_serve::protocol::{InferenceRequest, InferenceResponse, Tensor, TensorData};
use kf_serve::{ErrorClass, Model, ModelRepository, OnnxModel};
use serde_json::{Value, json};

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models");

fn samples() -> Value {
    let text = std::fs::read_to_string(format!("{MODELS}/samples.json")).expect("samples.json");
    serde_json::from_str(&text).expect("json")
}

fn request(inputs: &Value) -> InferenceRequest {
    let body = serde_json::to_vec(&json!({ "inputs": inputs })).expect("body");
    InferenceRequest::decode(&body, None).expect("sample inputs decode")
}

fn expected(outputs: &Value) -> Vec<Tensor> {
    let body = serde_json::to_vec(&json!({ "model_name": "x", "outputs": outputs })).expect("body");
    InferenceResponse::decode(&body, None).expect("sample outputs decode").outputs
}

fn assert_close(model: &str, want: &Tensor, have: &Tensor, rtol: f64, atol: f64) {
    assert_eq!(have.name(), want.name());
    assert_eq!(have.shape(), want.shape(), "{model}/{}: shape", want.name());
    assert_eq!(have.datatype(), want.datatype(), "{model}/{}: datatype", want.name());
    match (want.data(), have.data()) {
        (TensorData::Fp32(w), TensorData::Fp32(h)) => {
            for (i, (w, h)) in w.iter().zip(h).enumerate() {
                let (w, h) = (f64::from(*w), f64::from(*h));
                assert!((h - w).abs() <= atol + rtol * w.abs(), "{model}/{} element {i}: {h} vs {w}", want.name());
            }
        }
        (w, h) => assert_eq!(w, h, "{model}/{}: exact", want.name()),
    }
}

/// Runs every sample of `name` through `model` served by a repository (so
/// requests are checked as the server checks them).
fn check_samples(name: &str, model: Arc<dyn Model>, entry: &Value) -> usize {
    let repo = ModelRepository::new();
    repo.insert(name, "1", model);
    let (rtol, atol) =
        (entry["tolerance"]["rtol"].as_f64().expect("rtol"), entry["tolerance"]["atol"].as_f64().expect("atol"));
    let mut n = 0;
    for sample in entry["samples"].as_array().expect("samples") {
        let response = repo.infer(name, None, &request(&sample["inputs"])).expect("infers");
        let want = expected(&sample["outputs"]);
        assert_eq!(response.outputs.len(), want.len(), "{name}: output count");
        for w in &want {
            let h = response.outputs.iter().find(|t| t.name() == w.name()).expect("output present");
            assert_close(name, w, h, rtol, atol);
        }
        n += 1;
    }
    n
}

#[test]
fn every_plain_model_matches_its_samples_and_declared_metadata() {
    let samples = samples();
    let models = samples["models"].as_object().expect("models");
    let mut checked = 0;
    for (name, entry) in models {
        let file = entry["files"]["onnx"].as_str().expect("file");
        let model = OnnxModel::load(name, format!("{MODELS}/{file}")).expect("loads");
        let meta = serde_json::to_value(model.metadata()).expect("meta");
        assert_eq!(meta["inputs"], entry["inputs"], "{name}: inputs");
        assert_eq!(meta["outputs"], entry["outputs"], "{name}: outputs");
        assert_eq!(meta["platform"], "onnx");
        checked += check_samples(name, Arc::new(model), entry);
    }
    assert!(checked >= 13, "only {checked} samples");
}

#[test]
fn onnx_ml_files_run_or_are_refused_naming_the_operator() {
    let samples = samples();
    for (name, entry) in samples["models"].as_object().expect("models") {
        let Some(file) = entry["files"]["skl2onnx_onnx"].as_str() else { continue };
        let loaded = OnnxModel::load(name, format!("{MODELS}/{file}"));
        if name == "synth-gbr" {
            let err = loaded.expect_err("TreeEnsembleRegressor is not in tract");
            assert!(err.to_string().contains("TreeEnsembleRegressor"), "{err}");
            assert_eq!(err.class(), ErrorClass::Internal);
            continue;
        }
        let model = loaded.unwrap_or_else(|e| panic!("{name}: {e}"));
        // skl2onnx names its outputs itself; compare through the plain model's names.
        let entry = entry.clone();
        let outputs: Vec<String> = model.metadata().outputs.iter().map(|o| o.name.clone()).collect();
        let inputs = model.metadata().inputs.clone();
        assert_eq!(inputs.len(), 1, "{name}");
        let repo = ModelRepository::new();
        repo.insert(name, "1", Arc::new(model));
        let tol = |k: &str| entry["tolerance"][k].as_f64().expect("tol") * 10.0;
        for sample in entry["samples"].as_array().expect("samples") {
            let mut inputs_json = sample["inputs"].clone();
            inputs_json[0]["name"] = json!(inputs[0].name);
            let response = repo.infer(name, None, &request(&inputs_json)).expect("infers");
            for w in expected(&sample["outputs"]) {
                let renamed = match w.name() {
                    "label" => outputs.iter().find(|n| n.contains("label")),
                    _ => outputs.iter().find(|n| n.contains("prob")),
                }
                .expect("matching output");
                let h = response.outputs.iter().find(|t| t.name() == renamed).expect("present");
                let (_, shape, data, _) = h.clone().into_parts();
                let h = Tensor::new(w.name(), shape, data).expect("same");
                assert_close(name, &w, &h, tol("rtol"), tol("atol"));
            }
        }
    }
}

#[test]
fn bad_requests_are_refused_before_the_model_runs() {
    let repo = ModelRepository::new();
    repo.insert("iris", "1", Arc::new(OnnxModel::load("iris", format!("{MODELS}/iris-logreg.onnx")).expect("loads")));
    let bad = [
        json!([{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]),
        json!([{"name": "input", "datatype": "INT64", "shape": [1, 4], "data": [1, 2, 3, 4]}]),
        json!([{"name": "other", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]),
        json!([]),
    ];
    for inputs in bad {
        let err = repo.infer("iris", None, &request(&inputs)).expect_err("refused");
        assert_eq!(err.class(), ErrorClass::BadRequest, "{inputs}: {err}");
    }
    // Zero rows is a valid batch.
    let empty = json!([{"name": "input", "datatype": "FP32", "shape": [0, 4], "data": []}]);
    let response = repo.infer("iris", None, &request(&empty)).expect("empty batch");
    assert_eq!(response.outputs[0].shape(), &[0]);
}

#[test]
fn unreadable_files_are_load_errors() {
    let err = OnnxModel::load("nope", format!("{MODELS}/README.md")).expect_err("not ONNX");
    assert!(err.to_string().starts_with("cannot load model \"nope\""), "{err}");
    let err = OnnxModel::load("nope", "/nonexistent.onnx").expect_err("missing");
    assert!(err.to_string().contains("/nonexistent.onnx"), "{err}");
}
