//! The Open Inference Protocol v2 (KServe's and Triton's REST protocol), IO-free:
//! datatypes, owned tensors, inference requests and responses, and the body
//! codec — JSON (tensor data nested or flat) and the binary tensor extension
//! (a JSON header of `Inference-Header-Content-Length` bytes followed by
//! little-endian tensor data, sized per tensor by `binary_data_size`).
//!
//! This module owns the wire format, its validation and the check of a request
//! against a model's declared metadata ([`ModelMetadata::check_request`]); it
//! does no HTTP and runs no model. Errors carry their
//! status class ([`crate::Error::class`]): malformed bodies and tensors are
//! 400s.
//!
//! ```
//! use kf_serve::protocol::{BinaryOutputs, InferenceRequest, InferenceResponse, Tensor, TensorData};
//!
//! // A client sends its input as binary data …
//! let request = InferenceRequest {
//!     id: Some("42".into()),
//!     inputs: vec![Tensor::new("x", vec![1, 4], vec![5.1f32, 3.5, 1.4, 0.2])?],
//!     ..Default::default()
//! };
//! let sent = request.encode(true)?;
//! assert!(sent.header_length.is_some());
//!
//! // … the server decodes it, runs the model and answers in the form asked for.
//! let received = InferenceRequest::decode(&sent.body, sent.header_length)?;
//! assert_eq!(received, request);
//! let response = InferenceResponse {
//!     model_name: "iris".into(),
//!     id: received.id.clone(),
//!     outputs: vec![Tensor::new("label", vec![1], vec![0i64])?],
//!     ..Default::default()
//! };
//! let body = response.encode(&received.binary_outputs())?;
//! assert_eq!(body.content_type(), "application/json");
//! assert_eq!(
//!     String::from_utf8(body.body).unwrap(),
//!     r#"{"model_name":"iris","id":"42","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[0]}]}"#
//! );
//! # Ok::<(), kf_serve::Error>(())
//! ```

mod codec;
mod datatype;
mod message;
mod metadata;
mod tensor;

pub use datatype::DataType;
pub use message::{
    BINARY_DATA, BINARY_DATA_OUTPUT, BINARY_DATA_SIZE, BinaryOutputs, EncodedBody, HEADER_LENGTH, InferenceRequest,
    InferenceResponse, RequestedOutput, parse_header_length,
};
pub use metadata::{MetadataTensor, ModelMetadata, ServerMetadata};
pub use tensor::{Parameters, Tensor, TensorData, element_count};

#[cfg(test)]
mod tests;
