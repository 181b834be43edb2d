//! # kf-train — training jobs and gang scheduling
//!
//! Distributed training the way Kubeflow Trainer v2 runs it: `TrainJob`,
//! `TrainingRuntime` and `ClusterTrainingRuntime` (trainer.kubeflow.org/v1alpha1),
//! launch policies that turn a job and its runtime into per-node launch specs
//! (torch, MPI, JAX, XGBoost), a local multi-process backend, a pure gang
//! scheduler over a cluster snapshot (queues, quotas, cohorts, preemption,
//! topology) and a trace-driven simulator that compares scheduling policies.
//!
//! The scheduler and the simulator are plain functions over plain data; spawning
//! processes and talking to Kubernetes are thin adapters around them. This crate
//! never depends on another kf crate.
//!
//! Status: the workspace foundation. Types and launch policies land with the
//! kf-train issue; the scheduler and simulator with the gang-scheduling issue.
#![deny(missing_docs)]

mod error;

pub use error::{Error, Result};
