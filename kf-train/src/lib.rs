//! # kf-train — training jobs and gang scheduling
//!
//! Distributed training the way Kubeflow Trainer v2 runs it:
//!
//! - [`trainjob`]: the `TrainJob` wire type (trainer.kubeflow.org/v1alpha1) —
//!   [`TrainJob::from_value`], [`TrainJob::validate`], [`TrainJob::to_value`].
//! - [`runtime`]: `TrainingRuntime` and `ClusterTrainingRuntime` (one type,
//!   [`TrainingRuntime`]) with their ML and pod-group policies.
//! - [`jobset`]: the JobSet template a runtime carries, with typed accessors
//!   for what launches read (replicated jobs, the `node` container).
//! - [`meta`]: shared vocabulary (metadata, env, resources, conditions).
//! - [`launch`]: launch policies — a TrainJob and its runtime become a
//!   [`launch::LaunchPlan`] ([`launch::plan`]): every pod with its image,
//!   command, env (torchrun `PET_*`, MPI hostfile and `OMPI_MCA_*`, `JAX_*`,
//!   `DMLC_*`), resources and node rank, for Kubernetes or local hosts.
//!
//! - [`scheduler`]: the pure gang scheduler (queues, quotas, cohorts,
//!   borrowing, preemption, topology; FIFO, backfill, SJF, DRF policies).
//! - [`trace`] and [`sim`]: GPU-cluster trace loaders and the discrete-event
//!   simulator that replays a trace through any policy.
//!
//! - [`local`]: the local backend — the plan as processes on this host
//!   (torchrun's worker contract, logs with rank prefixes, progress and
//!   metrics from output, deadlines, kill-on-failure); the process
//!   supervisor is behind the `local` feature, its pure core is not.
//! - [`render`] (feature `kube`): a launch plan as the JobSet, MPI hostfile
//!   ConfigMap and coscheduling / Volcano PodGroup the upstream controller
//!   creates, checked offline against the Kubernetes schemas. The feature
//!   also derives JSON schemas (schemars) for the CRD types.
//! - [`controller`] (feature `controller`): a TrainJob reconciler on
//!   kube-runtime — server-side apply of the rendering, status from the
//!   JobSet; its decisions are the pure [`controller::plan`].
//!
//! Every wire type reads unknown fields into `extra` maps so that
//! `from_value` → `to_value` is the identity, and `validate` rejects them the
//! way strict field validation (`kubectl apply --validate=strict`) does.
//! Outside the `local` and `controller` adapters this crate is IO-free; it
//! never depends on another kf crate.
//!
//! ```
//! use kf_train::TrainJob;
//!
//! let doc = serde_json::json!({
//!     "apiVersion": "trainer.kubeflow.org/v1alpha1",
//!     "kind": "TrainJob",
//!     "metadata": {"name": "mnist"},
//!     "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}},
//! });
//! let job = TrainJob::from_value(doc.clone())?;
//! job.validate()?;
//! assert_eq!(job.runtime_ref().map(|r| r.kind()), Some("ClusterTrainingRuntime")); // a default, not a field
//! assert_eq!(job.to_value(), doc); // nothing lost, nothing invented
//! # Ok::<(), kf_train::Error>(())
//! ```
#![deny(missing_docs)]

#[cfg(feature = "controller")]
pub mod controller;
mod error;
pub mod jobset;
pub mod launch;
pub mod local;
pub mod meta;
mod quantity;
#[cfg(feature = "kube")]
pub mod render;
pub mod runtime;
pub mod scheduler;
pub mod sim;
pub mod trace;
pub mod trainjob;

pub use error::{Error, Result};
pub use quantity::parse_quantity;
pub use runtime::{ClusterTrainingRuntime, Framework, MlPolicy, TrainingRuntime};
pub use trainjob::TrainJob;
#[cfg(feature = "kube")]
pub use {
    runtime::{ClusterTrainingRuntimeResource, ClusterTrainingRuntimeSpec, TrainingRuntimeResource},
    trainjob::TrainJobResource,
};
