//! # kf-dag — pipelines
//!
//! The pipeline engine of kf, modelled on Kubeflow Pipelines v2.
//!
//! - [`ir`]: the pipeline IR — [`ir::Pipeline`], components with typed inputs
//!   and outputs, executors (container, Rust function, importer), DAGs of
//!   tasks, loops, conditions, retries, caching options, placeholders.
//! - [`plan`]: validation of a pipeline into a [`Plan`] — one petgraph graph
//!   per DAG with its topological order, levels and critical path; every
//!   error names the path of the offending field.
//! - [`cache_key`]: [`CacheKey`], the content digest of a task's resolved
//!   inputs and component definition.
//!
//! This crate owns the pipeline IR and everything that runs it. It does not know
//! about training jobs, tuning or serving (those are other crates, joined only by
//! the `kf` assembly), and its core never touches the network or the filesystem:
//! process spawning, object storage and Kubernetes live in adapters.
//!
//! Status: IR, validation and cache keys. The executor lands next;
//! KFP YAML import/export with the KFP compatibility issue.
//!
#![deny(missing_docs)]

pub mod cache_key;
mod error;
pub mod ir;
pub mod plan;

pub use cache_key::CacheKey;
pub use error::{Error, Result};
pub use plan::Plan;
