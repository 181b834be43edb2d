//! A model's optional configuration in a model repository:
//! `<repo>/<model>/config.toml` (or `config.json`), next to the version
//! directories, as Triton keeps `config.pbtxt`. It applies to every version
//! of the model.
//!
//! ```toml
//! # Declared inputs and outputs: checked against the model's own when it
//! # loads (a version that disagrees is UNAVAILABLE with the reason), and
//! # served as its metadata. A declaration may pin a dimension the model
//! # leaves variable (-1), never change one it fixes.
//! [[inputs]]
//! name = "float_input"
//! datatype = "FP32"
//! shape = [-1, 4]
//!
//! [[outputs]]
//! name = "label"
//! datatype = "INT64"
//! shape = [-1]
//!
//! # Dynamic batching (router::batch::BatchingModel): concurrent requests
//! # run together, up to max_batch_rows rows or max_latency_ms of waiting.
//! [batching]
//! max_batch_rows = 32
//! max_latency_ms = 2
//! ```
//!
//! Pure: [`ModelConfig::parse`] reads the text, [`ModelConfig::apply`] wraps
//! a loaded model; reading the files is the caller's (the local directory
//! loader and [`crate::store`]).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::protocol::{InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata};
use crate::router::batch::{BatchOptions, BatchingModel};
use crate::{Error, Result};

/// The configuration file names a model directory may hold, in the order
/// they are looked for (the first found is used).
pub const CONFIG_FILES: [&str; 2] = ["config.toml", "config.json"];

/// The configuration of `model` from the bytes of its `file`, as a
/// repository loader reports it: an [`Error::ModelLoad`] naming the model
/// and `<model>/<file>: <field>`.
pub(crate) fn read(model: &str, file: &str, bytes: &[u8]) -> Result<ModelConfig> {
    let failed = |message: String| Error::ModelLoad { model: model.to_string(), message };
    let text = std::str::from_utf8(bytes).map_err(|e| failed(format!("{model}/{file} is not UTF-8: {e}")))?;
    ModelConfig::parse(file, text).map_err(|e| failed(format!("{model}/{e}")))
}

/// One model's configuration (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Declared inputs, checked against the model's and served as its metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<MetadataTensor>>,
    /// Declared outputs, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<MetadataTensor>>,
    /// Dynamic batching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<Batching>,
}

/// The `[batching]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batching {
    /// The most rows run together (at least 1).
    pub max_batch_rows: usize,
    /// The longest the first request of a batch waits for company, in
    /// milliseconds (at most 10,000).
    pub max_latency_ms: u64,
}

/// The longest `max_latency_ms` accepted: ten seconds of waiting is a
/// misconfiguration, not a latency budget.
const MAX_LATENCY_MS: u64 = 10_000;

impl ModelConfig {
    /// Reads a configuration from the text of `file` (`.json` is JSON,
    /// anything else TOML) and validates it. Errors name the file and the
    /// field: `config.toml: batching.max_batch_rows: …`.
    ///
    /// ```
    /// use kf_serve::model_config::ModelConfig;
    /// let config = ModelConfig::parse("config.toml", "[batching]\nmax_batch_rows = 8\nmax_latency_ms = 2\n")?;
    /// assert_eq!(config.batching.map(|b| b.max_batch_rows), Some(8));
    /// let err = ModelConfig::parse("config.toml", "[batching]\nmax_batch_rows = 0\nmax_latency_ms = 2\n").unwrap_err();
    /// assert!(err.to_string().starts_with("config.toml: batching.max_batch_rows"), "{err}");
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn parse(file: &str, text: &str) -> Result<ModelConfig> {
        let invalid = |path: String, message: String| Error::Invalid { path: format!("{file}: {path}"), message };
        let config: ModelConfig = if file.ends_with(".json") {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de)
                .map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))?
        } else {
            let de = toml::Deserializer::parse(text).map_err(|e| invalid(String::new(), e.message().to_string()))?;
            serde_path_to_error::deserialize(de)
                .map_err(|e| invalid(e.path().to_string(), e.inner().message().into()))?
        };
        config.validate().map_err(|e| match e {
            Error::Invalid { path, message } => invalid(path, message),
            other => other,
        })?;
        Ok(config)
    }

    /// The first problem, with its dotted path: a batch of no rows, a
    /// latency over ten seconds, an unnamed or repeated tensor, a shape
    /// dimension below -1.
    pub fn validate(&self) -> Result<()> {
        let invalid = |path: String, message: &str| Err(Error::Invalid { path, message: message.into() });
        if let Some(b) = &self.batching {
            if b.max_batch_rows == 0 {
                return invalid("batching.max_batch_rows".into(), "expected at least 1");
            }
            if b.max_latency_ms > MAX_LATENCY_MS {
                return invalid("batching.max_latency_ms".into(), "expected at most 10000 (ten seconds)");
            }
        }
        for (field, tensors) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            for (i, t) in tensors.iter().flatten().enumerate() {
                if t.name.is_empty() {
                    return invalid(format!("{field}[{i}].name"), "expected a tensor name");
                }
                if tensors.iter().flatten().take(i).any(|u| u.name == t.name) {
                    return invalid(format!("{field}[{i}].name"), "declared twice");
                }
                if let Some(d) = t.shape.iter().position(|d| *d < -1) {
                    return invalid(format!("{field}[{i}].shape[{d}]"), "expected a size, or -1 for a variable one");
                }
            }
        }
        Ok(())
    }

    /// `model` as configured: its metadata replaced by the declared inputs
    /// and outputs (after checking that they agree with the model's own:
    /// the same names and datatypes, the same rank, and no fixed dimension
    /// changed), and wrapped in a [`BatchingModel`] when batching is on.
    /// Fails with [`Error::ModelLoad`] naming the first disagreement.
    /// O(tensors²) for the check.
    pub fn apply(&self, name: &str, model: Arc<dyn Model>) -> Result<Arc<dyn Model>> {
        let mut model = model;
        if self.inputs.is_some() || self.outputs.is_some() {
            let own = model.metadata();
            let mut metadata = own.clone();
            if let Some(inputs) = &self.inputs {
                metadata.inputs = declared(name, "inputs", inputs, &own.inputs)?;
            }
            if let Some(outputs) = &self.outputs {
                metadata.outputs = declared(name, "outputs", outputs, &own.outputs)?;
            }
            model = Arc::new(Declared { inner: model, metadata });
        }
        if let Some(b) = self.batching {
            let options =
                BatchOptions { max_batch_rows: b.max_batch_rows, max_latency: Duration::from_millis(b.max_latency_ms) };
            model = Arc::new(BatchingModel::new(model, options)?);
        }
        Ok(model)
    }
}

/// Checks a declaration against what the model declares itself: every one
/// of the model's tensors declared once, with its datatype and rank, each
/// fixed dimension kept.
fn declared(name: &str, field: &str, want: &[MetadataTensor], own: &[MetadataTensor]) -> Result<Vec<MetadataTensor>> {
    let fail = |message: String| Err(Error::ModelLoad { model: name.to_string(), message });
    for (i, w) in want.iter().enumerate() {
        let at = format!("config {field}[{i}] {:?}", w.name);
        let Some(o) = own.iter().find(|o| o.name == w.name) else {
            let known: Vec<&str> = own.iter().map(|o| o.name.as_str()).collect();
            return fail(format!("{at}: the model has no such tensor (it has {known:?})"));
        };
        if o.datatype != w.datatype {
            return fail(format!("{at}: declared {}, the model's is {}", w.datatype, o.datatype));
        }
        let compatible = o.shape.len() == w.shape.len()
            && o.shape.iter().zip(&w.shape).all(|(have, want)| *have < 0 || have == want);
        if !compatible {
            return fail(format!("{at}: declared shape {:?} does not fit the model's {:?}", w.shape, o.shape));
        }
    }
    if let Some(missing) = own.iter().find(|o| !want.iter().any(|w| w.name == o.name)) {
        return fail(format!("config {field}: the model's tensor {:?} is not declared", missing.name));
    }
    Ok(want.to_vec())
}

/// A model served under declared metadata.
struct Declared {
    inner: Arc<dyn Model>,
    metadata: ModelMetadata,
}

impl Model for Declared {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    fn waits(&self) -> bool {
        self.inner.waits()
    }

    fn batch_stats(&self) -> Option<crate::router::batch::BatchStats> {
        self.inner.batch_stats()
    }

    fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        self.inner.infer(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FnModel;
    use crate::protocol::{DataType, Tensor};
    use proptest::prelude::*;

    fn tensor(name: &str, datatype: DataType, shape: &[i64]) -> MetadataTensor {
        MetadataTensor { name: name.into(), datatype, shape: shape.to_vec() }
    }

    fn model() -> Arc<dyn Model> {
        let metadata = ModelMetadata {
            name: "m".into(),
            versions: None,
            platform: "closure".into(),
            inputs: vec![tensor("x", DataType::Fp32, &[-1, 4])],
            outputs: vec![tensor("y", DataType::Int64, &[-1])],
        };
        Arc::new(FnModel::new(metadata, |r: &InferenceRequest| {
            let rows = r.inputs[0].shape()[0];
            Ok(InferenceResponse {
                outputs: vec![Tensor::new("y", vec![rows], vec![7i64; rows])?],
                ..Default::default()
            })
        }))
    }

    #[test]
    fn toml_and_json_read_alike() {
        let toml = "[[inputs]]\nname = \"x\"\ndatatype = \"FP32\"\nshape = [8, 4]\n[batching]\nmax_batch_rows = 4\nmax_latency_ms = 1\n";
        let json = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [8, 4]}], "batching": {"max_batch_rows": 4, "max_latency_ms": 1}}"#;
        let a = ModelConfig::parse("config.toml", toml).unwrap();
        assert_eq!(a, ModelConfig::parse("config.json", json).unwrap());
        assert_eq!(a.inputs.unwrap()[0].shape, [8, 4]);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let cases = [
            (
                "config.toml",
                "[batching]\nmax_batch_rows = 4\nmax_latency_ms = 20000\n",
                "config.toml: batching.max_latency_ms",
            ),
            ("config.toml", "[batching]\nmax_batch_rows = 4\n", "config.toml: batching"),
            ("config.toml", "batch_size = 4\n", "config.toml: "),
            (
                "config.toml",
                "[[inputs]]\nname = \"x\"\ndatatype = \"FP33\"\nshape = [1]\n",
                "config.toml: inputs[0].datatype",
            ),
            (
                "config.json",
                r#"{"outputs": [{"name": "y", "datatype": "FP32", "shape": [-2]}]}"#,
                "config.json: outputs[0].shape[0]",
            ),
            (
                "config.json",
                r#"{"outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}, {"name": "y", "datatype": "FP32", "shape": [1]}]}"#,
                "config.json: outputs[1].name",
            ),
            ("config.json", "{", "config.json: "),
        ];
        for (file, text, prefix) in cases {
            let err = ModelConfig::parse(file, text).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{text}: {err}");
        }
    }

    #[test]
    fn a_declaration_may_pin_a_variable_dimension_and_nothing_else() {
        let pinned = ModelConfig { inputs: Some(vec![tensor("x", DataType::Fp32, &[2, 4])]), ..Default::default() };
        let served = pinned.apply("m", model()).unwrap();
        assert_eq!(served.metadata().inputs[0].shape, [2, 4]);
        assert_eq!(served.metadata().outputs[0].shape, [-1]);
        let wrong = [
            (tensor("x", DataType::Fp32, &[-1, 5]), "does not fit"),
            (tensor("x", DataType::Fp64, &[-1, 4]), "declared FP64"),
            (tensor("x", DataType::Fp32, &[-1]), "does not fit"),
            (tensor("z", DataType::Fp32, &[-1, 4]), "no such tensor"),
        ];
        for (t, why) in wrong {
            let config = ModelConfig { inputs: Some(vec![t]), ..Default::default() };
            let err = config.apply("m", model()).err().unwrap().to_string();
            assert!(err.contains(why) && err.contains("config inputs[0]"), "{err}");
        }
        let none = ModelConfig { outputs: Some(vec![]), ..Default::default() };
        let err = none.apply("m", model()).err().unwrap().to_string();
        assert!(err.contains("\"y\" is not declared"), "{err}");
    }

    #[test]
    fn batching_wraps_the_model_and_answers_each_caller() {
        let config =
            ModelConfig { batching: Some(Batching { max_batch_rows: 4, max_latency_ms: 1 }), ..Default::default() };
        let served = config.apply("m", model()).unwrap();
        assert!(served.waits());
        let request = InferenceRequest {
            inputs: vec![Tensor::new("x", vec![3, 4], vec![0f32; 12]).unwrap()],
            ..Default::default()
        };
        assert_eq!(served.infer(&request).unwrap().outputs[0].shape(), [3]);
    }

    proptest! {
        /// Whatever the text, parsing answers (a config or an error naming
        /// the file), and a valid config written out reads back the same.
        #[test]
        fn parsing_never_panics_and_round_trips(text in "\\PC{0,200}", rows in 1usize..1000, ms in 0u64..=10_000) {
            let _ = ModelConfig::parse("config.toml", &text);
            let _ = ModelConfig::parse("config.json", &text);
            let config = ModelConfig { batching: Some(Batching { max_batch_rows: rows, max_latency_ms: ms }), ..Default::default() };
            let written = serde_json::to_string(&config).unwrap();
            prop_assert_eq!(ModelConfig::parse("config.json", &written).unwrap(), config);
        }
    }
}
