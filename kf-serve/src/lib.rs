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
//! - [`Model`]: the trait every runtime implements (metadata, readiness,
//!   infer over the protocol types); [`FnModel`] wraps a closure;
//!   `OnnxModel` (feature `onnx`) runs ONNX files natively with tract;
//!   `RemoteModel` (feature `remote`) forwards to another v2 server.
//! - [`ModelRepository`]: models by name and version with their load state;
//!   checks requests against metadata, picks the newest ready version, loads
//!   the `<repo>/<model>/<version>/model.onnx` layout.
//! - [`router`]: the canary [`router::TrafficSplit`] (a pure function of a
//!   ticket or sticky key) and [`router::CanaryModel`] applying it;
//!   [`router::batch`]: dynamic batching (pure concat/split of v2 requests and
//!   [`router::batch::BatchingModel`]); [`router::GraphPlan`]: KServe
//!   InferenceGraphs compiled and executed over a [`router::StepCaller`].
//! - `server` (feature `server`): the OIP v2 REST server on axum, with
//!   `/metrics`, body limits and graceful shutdown; [`metrics`] is its
//!   IO-free Prometheus registry.
//! - [`autoscale`]: the Knative Pod Autoscaler as a pure function of metric
//!   windows ([`autoscale::Kpa`], [`autoscale::MetricWindow`]); the server
//!   exposes its recommendation per model on `/metrics`.
//! - `controller` (feature `controller`): an InferenceService reconciler
//!   in raw-deployment mode on kube-runtime — a Deployment running
//!   `kf serve`, a Service, the canary split, KPA replicas, KServe's status.
//! - [`Error`]: one error type; [`Error::class`] gives the protocol status
//!   class (400, 404, 503, 500) without any HTTP here.
//! - [`is_quantity`]: Kubernetes quantity syntax.
//!
//! Status: manifests, protocol codec, `Model` trait, ONNX runtime, model
//! repository, REST server, remote models, canary split, dynamic batching,
//! inference graphs and the KPA autoscaler.
#![deny(missing_docs)]

pub mod autoscale;
#[cfg(feature = "controller")]
pub mod controller;
mod error;
pub mod kserve;
pub mod metrics;
mod model;
pub mod model_config;
pub mod protocol;
mod quantity;
mod repository;
pub mod router;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "store")]
pub mod store;

pub use error::{Error, ErrorClass, Result};
#[cfg(feature = "onnx")]
pub use model::OnnxModel;
pub use model::{FnModel, Model};
#[cfg(feature = "remote")]
pub use model::{RemoteModel, RemoteOptions};
pub use quantity::is_quantity;
pub use repository::{IndexEntry, MODEL_FILE, ModelRepository, ModelState};
