//! # kf-serve — inference serving
//!
//! The Open Inference Protocol v2 (REST, with the binary tensor extension), a
//! `Model` trait with a native ONNX runtime and a remote-model client, a model
//! repository, a router (canary traffic split, inference graphs, dynamic
//! batching as a tower layer) and the Knative KPA autoscaling algorithm, with
//! KServe's `InferenceService`, `InferenceGraph` and `ServingRuntime` manifests.
//!
//! The codec, the traffic split and the autoscaler are IO-free; HTTP and model
//! loading are adapters. This crate never depends on another kf crate.
//!
//! ## Contents
//!
//! - [`kserve`]: KServe's manifests — [`kserve::InferenceService`],
//!   [`kserve::InferenceGraph`], [`kserve::ServingRuntime`] (both runtime
//!   kinds), and [`kserve::Manifest`] to take any of them by `kind`; each has
//!   `from_value`, `validate` and `to_value`.
//! - [`protocol`]: the Open Inference Protocol v2 — datatypes, owned
//!   [`protocol::Tensor`]s, requests and responses, and the JSON + binary
//!   tensor codec.
//! - [`Error`]: one error type; [`Error::class`] gives the protocol status
//!   class (400, 404, 503, 500) without any HTTP here.
//! - [`is_quantity`]: Kubernetes quantity syntax.
//!
//! Status: the KServe manifests and the protocol codec. The runtimes, model repository, router,
//! batching, autoscaler and server land with the rest of the kf-serve issue.
#![deny(missing_docs)]

mod error;
pub mod kserve;
pub mod protocol;
mod quantity;

pub use error::{Error, ErrorClass, Result};
pub use quantity::is_quantity;
