//! The local backend: a [`LaunchPlan`](crate::launch::LaunchPlan) run as processes on this host, the
//! way Trainer v2's SDK runs a job locally before it goes to a cluster.
//!
//! Split like the rest of the crate into a pure core and a thin adapter:
//!
//! - [`processes`] (pure): the plan becomes [`ProcessSpec`]s — one per
//!   training worker for torch (torchrun's worker contract: `RANK`,
//!   `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `GROUP_RANK`,
//!   `MASTER_ADDR`, `MASTER_PORT`, beside the `PET_*` the policy set), one per
//!   pod otherwise, with Kubernetes' `$(VAR)` expansion applied.
//! - [`JobTracker`] (pure): a state machine fed with starts, exits, output
//!   lines and the deadline; it decides when the job is complete or failed
//!   and renders the TrainJob `status` (conditions, `jobsStatus`,
//!   `trainerStatus` with progress and metrics parsed from `name=value`
//!   output).
//! - `LocalBackend` (feature `local`): fetches the initializers' data
//!   through object_store, spawns the processes in their own process
//!   groups, streams their output, enforces `activeDeadlineSeconds` and
//!   cancellation, and kills every process group when any rank fails.
//!
//! What a local run cannot do, it refuses by name instead of guessing:
//! env from Secrets or ConfigMaps, and containers without a command (the
//! image is not used: the command must exist on this host).
//!
//! MPI runs the launcher only: on a cluster the node pods run `sshd` for
//! `mpirun` to reach; here `mpirun` starts its ranks on this host from the
//! hostfile, which is written under the workspace.

#[cfg(feature = "local")]
mod backend;
mod processes;
#[cfg(feature = "local")]
mod storage;
mod tracker;

#[cfg(feature = "local")]
pub use backend::{LocalBackend, LocalEvent, LocalOptions, LocalRun, Stream};
pub use processes::{ProcessSpec, Workspace, expand_vars, processes};
#[cfg(feature = "local")]
pub use storage::fetch;
pub use tracker::{JobTracker, Outcome, Reason, TaskState, parse_metrics};

/// The env var that tells a process where the job's workspace is (the
/// local stand-in for the `/workspace` volume of the cluster pods).
pub const KF_WORKSPACE_ENV: &str = "KF_WORKSPACE";

#[cfg(test)]
mod tests;
