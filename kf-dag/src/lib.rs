//! # kf-dag — pipelines
//!
//! The pipeline engine of kf, modelled on Kubeflow Pipelines v2: an IR of
//! components, tasks and the data that flows between them; a typed builder; a
//! validated execution plan; a parallel executor with a content-addressed step
//! cache; and a crash-safe journal of run state so an interrupted run resumes.
//!
//! This crate owns the pipeline IR and everything that runs it. It does not know
//! about training jobs, tuning or serving (those are other crates, joined only by
//! the `kf` assembly), and its core never touches the network or the filesystem:
//! process spawning, object storage and Kubernetes live in adapters.
//!
//! Status: the workspace foundation. The IR, builder and executor land with the
//! kf-dag issue; KFP YAML import/export with the KFP compatibility issue.
#![deny(missing_docs)]

mod error;

pub use error::{Error, Result};
