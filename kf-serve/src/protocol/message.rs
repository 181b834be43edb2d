//! Inference requests and responses of the Open Inference Protocol v2 and
//! their bodies: JSON, or a JSON header followed by binary tensor data (the
//! binary tensor extension, announced by the `Inference-Header-Content-Length`
//! header). Decoding validates everything a tensor must satisfy; encoding
//! never produces a body the decoder would reject. No HTTP here: the adapter
//! passes the header value in and sets the one handed back.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{JsonData, append_binary, binary_size, check_json_encodable, data_from_binary, data_from_json};
use super::{DataType, Parameters, Tensor, element_count};
use crate::{Error, Result};

/// The header that gives the length of the JSON part of a body with binary data.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";
/// The parameter giving a tensor's size in the binary part.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// The request parameter asking for every output in binary form.
pub const BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// The requested-output parameter asking for that output in binary form.
pub const BINARY_DATA: &str = "binary_data";

/// An inference request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferenceRequest {
    /// Request id, echoed in the response.
    pub id: Option<String>,
    /// Request parameters (e.g. `binary_data_output`).
    pub parameters: Option<Parameters>,
    /// The input tensors; names are unique.
    pub inputs: Vec<Tensor>,
    /// The outputs asked for; `None` means all of them.
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// An output the client asks for, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// Output parameters (e.g. `binary_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// An inference response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferenceResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version, when it has one.
    pub model_version: Option<String>,
    /// The request's id, echoed.
    pub id: Option<String>,
    /// Response parameters.
    pub parameters: Option<Parameters>,
    /// The output tensors.
    pub outputs: Vec<Tensor>,
}

/// Which outputs to send in binary form: the request's `binary_data_output`
/// as the default, overridden per output by `binary_data`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinaryOutputs {
    /// Whether outputs not named in `overrides` are binary.
    pub default: bool,
    /// Per-output choice.
    pub overrides: BTreeMap<String, bool>,
}

impl BinaryOutputs {
    /// Every output as JSON.
    pub fn none() -> Self {
        BinaryOutputs::default()
    }

    /// Every output in binary form.
    pub fn all() -> Self {
        BinaryOutputs { default: true, overrides: BTreeMap::new() }
    }

    /// Whether the output `name` goes in binary form.
    pub fn is_binary(&self, name: &str) -> bool {
        self.overrides.get(name).copied().unwrap_or(self.default)
    }
}

/// An encoded body and the header that must go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBody {
    /// The bytes to send.
    pub body: Vec<u8>,
    /// The value of `Inference-Header-Content-Length` when the body carries
    /// binary data; `None` for a plain JSON body.
    pub header_length: Option<usize>,
}

impl EncodedBody {
    /// The content type: `application/json`, or `application/octet-stream`
    /// for JSON followed by binary data (as in the extension's example).
    pub fn content_type(&self) -> &'static str {
        if self.header_length.is_some() { "application/octet-stream" } else { "application/json" }
    }
}

/// Parses an `Inference-Header-Content-Length` header value.
pub fn parse_header_length(value: &str) -> Result<usize> {
    value.trim().parse().map_err(|_| Error::BadRequest {
        path: HEADER_LENGTH.into(),
        message: format!("expected a byte count, found {value:?}"),
    })
}

/// A tensor as it appears in a JSON body.
#[derive(Deserialize)]
struct WireTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct WireRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    inputs: Vec<WireTensor>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize)]
struct WireResponse {
    model_name: String,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    outputs: Vec<WireTensor>,
}

/// A tensor written into a JSON header: data inline, or its binary size.
#[derive(Serialize)]
struct OutTensor<'a> {
    name: &'a str,
    shape: &'a [usize],
    datatype: DataType,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Cow<'a, Parameters>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
}

#[derive(Serialize)]
struct OutRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a Parameters>,
    inputs: Vec<OutTensor<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<&'a [RequestedOutput]>,
}

#[derive(Serialize)]
struct OutResponse<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a Parameters>,
    outputs: Vec<OutTensor<'a>>,
}

/// Splits a body into its JSON header and its binary part.
fn split_body(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8])> {
    match header_length {
        None => Ok((body, &[])),
        Some(n) if n <= body.len() => Ok(body.split_at(n)),
        Some(n) => Err(Error::BadRequest {
            path: HEADER_LENGTH.into(),
            message: format!("the header claims {n} bytes of JSON, the body has only {}", body.len()),
        }),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { "body".to_string() } else { path };
        Error::BadRequest { path, message: err.inner().to_string() }
    })?;
    de.end().map_err(|err| Error::BadRequest { path: "body".into(), message: err.to_string() })?;
    Ok(value)
}

/// Turns wire tensors into tensors, taking binary data from `binary` in order.
fn tensors_from_wire(wire: Vec<WireTensor>, mut binary: &[u8], has_binary: bool, field: &str) -> Result<Vec<Tensor>> {
    let mut names = BTreeSet::new();
    let mut tensors = Vec::with_capacity(wire.len());
    for (i, t) in wire.into_iter().enumerate() {
        if !names.insert(t.name.clone()) {
            return Err(Error::BadRequest {
                path: format!("{field}[{i}].name"),
                message: format!("{:?} appears more than once", t.name),
            });
        }
        let tensor_err = |message: String| Error::Tensor { tensor: t.name.clone(), message };
        let datatype: DataType =
            t.datatype.parse().map_err(|_| tensor_err(format!("unknown datatype {:?}", t.datatype)))?;
        let shape: Vec<usize> = t
            .shape
            .iter()
            .map(|d| usize::try_from(*d))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| tensor_err(format!("shape {:?} has a negative dimension", t.shape)))?;
        let count =
            element_count(&shape).ok_or_else(|| tensor_err(format!("shape {shape:?} has too many elements")))?;
        let mut parameters = t.parameters.unwrap_or_default();
        let binary_size = parameters.remove(BINARY_DATA_SIZE);
        let data = match (binary_size, &t.data) {
            (Some(_), Some(_)) => {
                return Err(tensor_err(format!("has both data and parameters.{BINARY_DATA_SIZE}; send one")));
            }
            (None, None) => return Err(tensor_err("has no data".into())),
            (None, Some(data)) => data_from_json(&t.name, datatype, data, count)?,
            (Some(size), None) => {
                if !has_binary {
                    return Err(tensor_err(format!(
                        "parameters.{BINARY_DATA_SIZE} needs the {HEADER_LENGTH} header to find the binary data"
                    )));
                }
                let size = size.as_u64().and_then(|s| usize::try_from(s).ok()).ok_or_else(|| {
                    tensor_err(format!("parameters.{BINARY_DATA_SIZE} must be a byte count, found {size}"))
                })?;
                if size > binary.len() {
                    return Err(tensor_err(format!(
                        "parameters.{BINARY_DATA_SIZE} is {size} bytes, only {} bytes of binary data remain",
                        binary.len()
                    )));
                }
                let (bytes, rest) = binary.split_at(size);
                binary = rest;
                data_from_binary(&t.name, datatype, bytes, count)?
            }
        };
        tensors.push(Tensor::new(t.name, shape, data)?.with_parameters(parameters));
    }
    if !binary.is_empty() {
        return Err(Error::BadRequest {
            path: HEADER_LENGTH.into(),
            message: format!("{} bytes of binary data after the last tensor that claims any", binary.len()),
        });
    }
    Ok(tensors)
}

/// Writes tensors into a JSON header. Binary tensors get their
/// `binary_data_size` here and are listed in `binary`, in order, for
/// [`join_body`] to append after the header without an intermediate buffer.
fn tensors_to_wire<'a>(
    tensors: &'a [Tensor],
    is_binary: impl Fn(&str) -> bool,
    binary: &mut Vec<&'a Tensor>,
) -> Result<Vec<OutTensor<'a>>> {
    tensors
        .iter()
        .map(|t| {
            let as_binary = is_binary(t.name());
            let parameters = if as_binary {
                let mut p = t.parameters().cloned().unwrap_or_default();
                p.insert(BINARY_DATA_SIZE.into(), Value::from(binary_size(t.data())));
                binary.push(t);
                Some(Cow::Owned(p))
            } else {
                check_json_encodable(t.name(), t.data())?;
                t.parameters().map(Cow::Borrowed)
            };
            Ok(OutTensor {
                name: t.name(),
                shape: t.shape(),
                datatype: t.datatype(),
                parameters,
                data: (!as_binary).then_some(JsonData(t.data())),
            })
        })
        .collect()
}

/// Writes the JSON header, then the binary tensors' data. A body with any
/// binary tensor, even an empty one, carries the header length: its
/// `binary_data_size` of 0 still needs the header to be read.
fn join_body(header: &impl Serialize, binary: &[&Tensor]) -> Result<EncodedBody> {
    let mut body =
        serde_json::to_vec(header).map_err(|e| Error::Internal { message: format!("cannot write JSON: {e}") })?;
    if binary.is_empty() {
        return Ok(EncodedBody { body, header_length: None });
    }
    let header_length = Some(body.len());
    body.reserve(binary.iter().map(|t| binary_size(t.data())).sum());
    for t in binary {
        append_binary(t.data(), &mut body);
    }
    Ok(EncodedBody { body, header_length })
}

impl InferenceRequest {
    /// Decodes a request body. `header_length` is the value of
    /// `Inference-Header-Content-Length` when the client sent it: the first
    /// that many bytes are JSON and the rest is binary tensor data, claimed
    /// in input order by each input's `binary_data_size`.
    ///
    /// Rejected (400 class), naming the field or tensor: malformed JSON, a
    /// missing `inputs`, an unknown datatype, a negative dimension, data that
    /// does not match shape × datatype, binary sizes that do not add up to the
    /// binary part, duplicate input names. O(body).
    ///
    /// ```
    /// use kf_serve::protocol::{InferenceRequest, TensorData};
    ///
    /// let body = br#"{"id": "1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
    ///                                        "data": [[1, 2], [3, 4]]}]}"#;
    /// let request = InferenceRequest::decode(body, None)?;
    /// assert_eq!(request.inputs[0].data(), &TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0]));
    ///
    /// let bad = br#"{"inputs": [{"name": "x", "shape": [3], "datatype": "INT8", "data": [1, 2]}]}"#;
    /// let err = InferenceRequest::decode(bad, None).unwrap_err();
    /// assert_eq!(err.to_string(), "tensor \"x\": the shape holds 3 elements, data has 2");
    /// assert_eq!(err.class().http_status(), 400);
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn decode(body: &[u8], header_length: Option<usize>) -> Result<Self> {
        let (json, binary) = split_body(body, header_length)?;
        let wire: WireRequest = parse_json(json)?;
        Ok(InferenceRequest {
            id: wire.id,
            parameters: wire.parameters,
            inputs: tensors_from_wire(wire.inputs, binary, header_length.is_some(), "inputs")?,
            outputs: wire.outputs,
        })
    }

    /// Encodes the request, with every input in binary form when
    /// `binary_inputs` (what a client or a forwarding router sends). Fails
    /// only for non-UTF-8 `BYTES` sent as JSON. O(data).
    pub fn encode(&self, binary_inputs: bool) -> Result<EncodedBody> {
        let mut binary = Vec::new();
        let inputs = tensors_to_wire(&self.inputs, |_| binary_inputs, &mut binary)?;
        let header = OutRequest {
            id: self.id.as_deref(),
            parameters: self.parameters.as_ref(),
            inputs,
            outputs: self.outputs.as_deref(),
        };
        join_body(&header, &binary)
    }

    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.iter().find(|t| t.name() == name)
    }

    /// Which outputs the client wants in binary form: `binary_data_output`
    /// in the request parameters, overridden by each requested output's
    /// `binary_data`. Non-boolean values count as absent.
    pub fn binary_outputs(&self) -> BinaryOutputs {
        let flag = |p: Option<&Parameters>, key: &str| p.and_then(|p| p.get(key)).and_then(Value::as_bool);
        BinaryOutputs {
            default: flag(self.parameters.as_ref(), BINARY_DATA_OUTPUT).unwrap_or(false),
            overrides: self
                .outputs
                .iter()
                .flatten()
                .filter_map(|o| flag(o.parameters.as_ref(), BINARY_DATA).map(|b| (o.name.clone(), b)))
                .collect(),
        }
    }
}

impl RequestedOutput {
    /// An output asked for by name, with no parameters.
    pub fn new(name: impl Into<String>) -> Self {
        RequestedOutput { name: name.into(), parameters: None }
    }
}

impl InferenceResponse {
    /// Decodes a response body (what a client or a forwarding router reads),
    /// with the same rules as [`InferenceRequest::decode`]. O(body).
    pub fn decode(body: &[u8], header_length: Option<usize>) -> Result<Self> {
        let (json, binary) = split_body(body, header_length)?;
        let wire: WireResponse = parse_json(json)?;
        Ok(InferenceResponse {
            model_name: wire.model_name,
            model_version: wire.model_version,
            id: wire.id,
            parameters: wire.parameters,
            outputs: tensors_from_wire(wire.outputs, binary, header_length.is_some(), "outputs")?,
        })
    }

    /// Encodes the response, the outputs `binary` selects in binary form
    /// (then `header_length` is set and the content type is
    /// `application/octet-stream`). Fails (500 class) only when a `BYTES`
    /// output that is not UTF-8 is asked for as JSON. O(data).
    ///
    /// ```
    /// use kf_serve::protocol::{BinaryOutputs, InferenceResponse, Tensor};
    ///
    /// let response = InferenceResponse {
    ///     model_name: "iris".into(),
    ///     outputs: vec![Tensor::new("label", vec![2], vec![1i64, 0])?],
    ///     ..Default::default()
    /// };
    /// let json = response.encode(&BinaryOutputs::none())?;
    /// assert_eq!(json.content_type(), "application/json");
    /// let binary = response.encode(&BinaryOutputs::all())?;
    /// assert_eq!(binary.content_type(), "application/octet-stream");
    /// assert_eq!(binary.body.len() - binary.header_length.unwrap_or(0), 16);
    /// assert_eq!(InferenceResponse::decode(&binary.body, binary.header_length)?, response);
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn encode(&self, binary: &BinaryOutputs) -> Result<EncodedBody> {
        let mut data = Vec::new();
        let outputs =
            tensors_to_wire(&self.outputs, |name| binary.is_binary(name), &mut data).map_err(|e| match e {
                Error::Tensor { tensor, message } => {
                    Error::Internal { message: format!("output {tensor:?}: {message}") }
                }
                other => other,
            })?;
        let header = OutResponse {
            model_name: &self.model_name,
            model_version: self.model_version.as_deref(),
            id: self.id.as_deref(),
            parameters: self.parameters.as_ref(),
            outputs,
        };
        join_body(&header, &data)
    }

    /// Keeps only the outputs `request` asks for, in the order it asks for
    /// them; all of them when it names none. An output the model does not
    /// have is a 400-class error naming the requested output. O(outputs²).
    pub fn retain_requested(&mut self, request: &InferenceRequest) -> Result<()> {
        let Some(wanted) = &request.outputs else { return Ok(()) };
        // Check every name before moving anything, so an error leaves `self` whole.
        for (i, output) in wanted.iter().enumerate() {
            let message = if wanted[..i].iter().any(|o| o.name == output.name) {
                format!("output {:?} is asked for more than once", output.name)
            } else if self.outputs.iter().all(|t| t.name() != output.name) {
                format!("the model has no output {:?}", output.name)
            } else {
                continue;
            };
            return Err(Error::BadRequest { path: format!("outputs[{i}].name"), message });
        }
        let mut available: Vec<Option<Tensor>> = std::mem::take(&mut self.outputs).into_iter().map(Some).collect();
        self.outputs = wanted
            .iter()
            .filter_map(|o| available.iter_mut().find(|t| t.as_ref().is_some_and(|t| t.name() == o.name))?.take())
            .collect();
        Ok(())
    }
}
