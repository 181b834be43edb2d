//! Server and model metadata of the Open Inference Protocol v2 (`GET /v2`,
//! `GET /v2/models/{name}`), and the check of a request against a model's
//! declared inputs and outputs. Plain data: serving the metadata is the
//! server's job, producing it the model's.

use serde::{Deserialize, Serialize};

use super::{DataType, InferenceRequest};
use crate::{Error, Result};

/// `GET /v2`: who the server is and which protocol extensions it supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    /// Server name.
    pub name: String,
    /// Server version.
    pub version: String,
    /// Supported extensions, e.g. `binary_tensor_data`.
    pub extensions: Vec<String>,
}

/// A tensor a model declares: name, datatype and shape, where a negative
/// dimension (`-1`) accepts any size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataTensor {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Shape; `-1` marks a variable dimension (typically the batch).
    pub shape: Vec<i64>,
}

impl MetadataTensor {
    /// Whether a concrete `shape` fits this declaration: same rank, and each
    /// dimension equal or declared variable. O(rank).
    pub fn accepts_shape(&self, shape: &[usize]) -> bool {
        self.shape.len() == shape.len()
            && self.shape.iter().zip(shape).all(|(want, have)| *want < 0 || usize::try_from(*want) == Ok(*have))
    }
}

/// `GET /v2/models/{name}[/versions/{version}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// Available versions; omitted (never `null`) when the model has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    /// Framework or backend, e.g. `onnx`.
    pub platform: String,
    /// Declared inputs.
    #[serde(default)]
    pub inputs: Vec<MetadataTensor>,
    /// Declared outputs.
    #[serde(default)]
    pub outputs: Vec<MetadataTensor>,
}

impl ModelMetadata {
    /// Checks a request against the declared inputs and outputs, returning
    /// the first mismatch as a 400-class error: an input the model does not
    /// take, a wrong datatype or shape (naming the tensor), a missing input,
    /// or a requested output the model does not produce.
    /// O(inputs × declared inputs + outputs × declared outputs).
    ///
    /// ```
    /// use kf_serve::protocol::{DataType, InferenceRequest, MetadataTensor, ModelMetadata, Tensor};
    ///
    /// let meta = ModelMetadata {
    ///     name: "iris".into(), versions: None, platform: "onnx".into(),
    ///     inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1, 4] }],
    ///     outputs: vec![],
    /// };
    /// let ok = InferenceRequest { inputs: vec![Tensor::new("x", vec![2, 4], vec![0f32; 8])?], ..Default::default() };
    /// meta.check_request(&ok)?;
    /// let bad = InferenceRequest { inputs: vec![Tensor::new("x", vec![2, 3], vec![0f32; 6])?], ..Default::default() };
    /// assert_eq!(
    ///     meta.check_request(&bad).unwrap_err().to_string(),
    ///     "tensor \"x\": shape [2, 3] does not match the model's [-1, 4]"
    /// );
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn check_request(&self, request: &InferenceRequest) -> Result<()> {
        for (i, input) in request.inputs.iter().enumerate() {
            let Some(declared) = self.inputs.iter().find(|d| d.name == input.name()) else {
                let known: Vec<&str> = self.inputs.iter().map(|d| d.name.as_str()).collect();
                return Err(Error::BadRequest {
                    path: format!("inputs[{i}].name"),
                    message: format!("model {:?} has no input {:?}; its inputs are {known:?}", self.name, input.name()),
                });
            };
            let tensor_error = |message: String| Error::Tensor { tensor: input.name().to_string(), message };
            if input.datatype() != declared.datatype {
                return Err(tensor_error(format!(
                    "expected datatype {}, found {}",
                    declared.datatype,
                    input.datatype()
                )));
            }
            if !declared.accepts_shape(input.shape()) {
                return Err(tensor_error(format!(
                    "shape {:?} does not match the model's {:?}",
                    input.shape(),
                    declared.shape
                )));
            }
        }
        if let Some(missing) = self.inputs.iter().find(|d| request.input(&d.name).is_none()) {
            return Err(Error::BadRequest {
                path: "inputs".into(),
                message: format!("missing input {:?} of model {:?}", missing.name, self.name),
            });
        }
        for (i, output) in request.outputs.iter().flatten().enumerate() {
            if !self.outputs.iter().any(|d| d.name == output.name) {
                return Err(Error::BadRequest {
                    path: format!("outputs[{i}].name"),
                    message: format!("model {:?} has no output {:?}", self.name, output.name),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use crate::protocol::{RequestedOutput, Tensor};
    use proptest::prelude::*;
    use serde_json::json;

    fn meta() -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: Some(vec!["1".into()]),
            platform: "onnx".into(),
            inputs: vec![
                MetadataTensor { name: "a".into(), datatype: DataType::Fp32, shape: vec![-1, 2] },
                MetadataTensor { name: "b".into(), datatype: DataType::Int64, shape: vec![1] },
            ],
            outputs: vec![MetadataTensor { name: "y".into(), datatype: DataType::Fp32, shape: vec![-1] }],
        }
    }

    fn request(inputs: Vec<Tensor>, outputs: Option<Vec<&str>>) -> InferenceRequest {
        InferenceRequest {
            inputs,
            outputs: outputs.map(|o| o.into_iter().map(RequestedOutput::new).collect()),
            ..Default::default()
        }
    }

    fn a(rows: usize) -> Tensor {
        Tensor::new("a", vec![rows, 2], vec![0f32; rows * 2]).expect("a")
    }

    fn b() -> Tensor {
        Tensor::new("b", vec![1], vec![1i64]).expect("b")
    }

    #[test]
    fn the_wire_form_matches_the_spec() {
        let value = serde_json::to_value(meta()).expect("json");
        assert_eq!(value["inputs"][0], json!({"name": "a", "datatype": "FP32", "shape": [-1, 2]}));
        let mut no_versions = meta();
        no_versions.versions = None;
        assert!(serde_json::to_value(no_versions).expect("json").get("versions").is_none(), "never null");
    }

    #[test]
    fn requests_are_checked_against_the_declaration() {
        meta().check_request(&request(vec![a(3), b()], Some(vec!["y"]))).expect("valid");
        let err = |r: InferenceRequest| {
            let e = meta().check_request(&r).expect_err("invalid");
            assert_eq!(e.class(), ErrorClass::BadRequest);
            e.to_string()
        };
        assert!(err(request(vec![a(1)], None)).starts_with("inputs: missing input \"b\""));
        let wrong_type = Tensor::new("b", vec![1], vec![1i32]).expect("b");
        assert_eq!(err(request(vec![a(1), wrong_type], None)), "tensor \"b\": expected datatype INT64, found INT32");
        let unknown = Tensor::new("c", vec![1], vec![1i64]).expect("c");
        assert!(
            err(request(vec![a(1), b(), unknown], None)).starts_with("inputs[2].name: model \"m\" has no input \"c\"")
        );
        assert!(err(request(vec![a(1), b()], Some(vec!["z"]))).starts_with("outputs[0].name:"));
    }

    proptest! {
        #[test]
        fn variable_dimensions_accept_any_size(declared in prop::collection::vec(-1i64..4, 0..4), shape in prop::collection::vec(0usize..4, 0..4)) {
            let t = MetadataTensor { name: "t".into(), datatype: DataType::Fp32, shape: declared.clone() };
            let expected = declared.len() == shape.len()
                && declared.iter().zip(&shape).all(|(d, s)| *d == -1 || *d as usize == *s);
            prop_assert_eq!(t.accepts_shape(&shape), expected);
        }
    }
}
