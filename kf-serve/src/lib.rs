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
//! Status: the workspace foundation. The protocol, runtime and router land with
//! the kf-serve issue.
#![deny(missing_docs)]

mod error;

pub use error::{Error, Result};
