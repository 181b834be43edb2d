//! The [`Model`] trait every runtime implements, and [`FnModel`], a model
//! made of a closure (for tests, examples and glue code).
//!
//! A model owns its signature (platform, inputs, outputs) and computes
//! outputs from checked inputs. It does not own its serving name or version,
//! does not check requests against its metadata, does not echo ids and does
//! not select requested outputs: [`crate::ModelRepository::infer`] does all of
//! that once, for every runtime alike.

#[cfg(feature = "onnx")]
mod onnx;

#[cfg(feature = "onnx")]
pub use onnx::OnnxModel;

#[cfg(feature = "remote")]
mod remote;

#[cfg(feature = "remote")]
pub use remote::{HttpCaller, RemoteModel, RemoteOptions};

use crate::Result;
use crate::protocol::{InferenceRequest, InferenceResponse, ModelMetadata};

/// A model that answers Open Inference Protocol v2 requests.
///
/// Inference is synchronous: models compute on the calling thread, so a
/// server decides where that thread comes from (inline for small requests,
/// a blocking pool for large ones) and the runtimes stay free of any async
/// runtime.
pub trait Model: Send + Sync {
    /// What the model declares: platform, inputs and outputs. The `name` and
    /// `versions` are the model's own; a repository replaces them with the
    /// name and versions it serves the model under.
    fn metadata(&self) -> &ModelMetadata;

    /// Whether the model can answer now. Defaults to `true`: a model that
    /// exists is loaded. Models with a backend that can go away (a remote
    /// server) say so here.
    fn is_ready(&self) -> bool {
        true
    }

    /// Whether `infer` may wait rather than compute (for other requests to
    /// batch with, for a remote server), so callers on an async runtime
    /// should run it on a blocking pool. Defaults to `false`.
    fn waits(&self) -> bool {
        false
    }

    /// What the model's batching has done, when it batches (see
    /// [`crate::router::batch::BatchingModel`]); served on `/metrics`.
    fn batch_stats(&self) -> Option<crate::router::batch::BatchStats> {
        None
    }

    /// Runs the model on `request`, whose inputs the caller has already
    /// checked against [`Model::metadata`] (names, datatypes, shapes).
    ///
    /// Returns every output the model produces; `model_name`,
    /// `model_version` and `id` of the response are filled in by the caller.
    fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse>;
}

/// A model made of a closure: metadata plus `Fn(&InferenceRequest) ->
/// Result<InferenceResponse>`.
///
/// ```
/// use kf_serve::{FnModel, Model};
/// use kf_serve::protocol::{DataType, InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata, Tensor};
///
/// let meta = ModelMetadata {
///     name: "double".into(), versions: None, platform: "closure".into(),
///     inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1] }],
///     outputs: vec![MetadataTensor { name: "y".into(), datatype: DataType::Fp32, shape: vec![-1] }],
/// };
/// let model = FnModel::new(meta, |request: &InferenceRequest| {
///     let x = request.inputs[0].data().as_f32().unwrap_or_default();
///     let y: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
///     Ok(InferenceResponse { outputs: vec![Tensor::new("y", vec![y.len()], y)?], ..Default::default() })
/// });
/// let request = InferenceRequest { inputs: vec![Tensor::new("x", vec![2], vec![1.0f32, 2.5])?], ..Default::default() };
/// assert_eq!(model.infer(&request)?.outputs[0].data().as_f32(), Some(&[2.0f32, 5.0][..]));
/// # Ok::<(), kf_serve::Error>(())
/// ```
pub struct FnModel<F> {
    metadata: ModelMetadata,
    infer: F,
}

impl<F> FnModel<F>
where
    F: Fn(&InferenceRequest) -> Result<InferenceResponse> + Send + Sync,
{
    /// A model declaring `metadata` and answering with `infer`.
    pub fn new(metadata: ModelMetadata, infer: F) -> Self {
        FnModel { metadata, infer }
    }
}

impl<F> Model for FnModel<F>
where
    F: Fn(&InferenceRequest) -> Result<InferenceResponse> + Send + Sync,
{
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        (self.infer)(request)
    }
}

impl<F> std::fmt::Debug for FnModel<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnModel").field("metadata", &self.metadata).finish_non_exhaustive()
    }
}
