//! A gang scheduler in the manner of Kueue, Volcano and the coscheduling
//! plugin, as plain data and a deterministic state machine: no API server,
//! no clock, no IO. A controller embeds it (feed it the cluster, queues and
//! workloads, apply its decisions), and the `sim` module replays traces through it.
//!
//! - [`resources`]: the integer resource vector ([`Resources`]).
//! - [`model`]: nodes and topology ([`Cluster`]), queues with quotas,
//!   cohorts, borrowing/lending limits and preemption policies ([`Queue`]),
//!   workloads as gangs of pod sets ([`Workload`]).
//! - [`policy`]: the [`Policy`] trait and [`StrictFifo`], [`Backfill`] (EASY),
//!   [`ShortestJobFirst`], [`DominantResourceFairness`].
//! - [`GangScheduler`]: submit, schedule (one cycle → [`Cycle`] of
//!   [`Decision`]s), finish.
//! - [`workload_from_plan`]: a resolved TrainJob ([`crate::launch::LaunchPlan`])
//!   becomes a workload, one pod set per replicated job.
//!
//! Guarantees (property-tested): a gang is admitted whole or not at all; no
//! node is ever over-committed; a queue never uses more than its nominal quota
//! plus what its borrowing limit and its cohort's lending allow; preempted
//! workloads give back exactly their resources; the same inputs give the same
//! decisions.
//!
//! ```
//! use kf_train::scheduler::*;
//!
//! // Two racks of two 8-GPU nodes; a gang of 2×8 GPUs that must stay in one rack.
//! let nodes = (0..4).map(|i| Node::new(format!("n{i}"), Resources::gpus(8)).with_label("rack", format!("r{}", i / 2)));
//! let cluster = Cluster::new(nodes.collect(), vec!["rack".into()])?;
//! let mut s = GangScheduler::new(cluster, vec![Queue::unlimited("team")], Backfill)?;
//! let gang = Workload::new("train", "team", 0.0, vec![PodSetRequest::new("node", 2, Resources::gpus(8))])
//!     .with_topology("rack", TopologyMode::Required);
//! let t = s.submit(gang)?;
//! let cycle = s.schedule(0.0);
//! let Decision::Admit(a) = &cycle.decisions[0] else { panic!("admitted") };
//! assert_eq!(a.ticket, t);
//! assert_eq!(a.pods.iter().map(|p| p.node).collect::<Vec<_>>(), vec![0, 1]); // rack r0
//! assert_eq!(s.explain(&cycle.decisions[0]), "\"train\" admitted: all 2 pods placed in rack r0 (flavor default)");
//! # Ok::<(), kf_train::Error>(())
//! ```

mod cycle;
mod decision;
mod free;
pub mod model;
mod placement;
pub mod policy;
pub mod resources;
mod seam;

#[cfg(test)]
mod tests;

pub use cycle::GangScheduler;
pub use decision::{Admit, Cycle, Decision, PodPlacement, Ticket, WaitReason};
pub use model::{
    Cluster, DEFAULT_FLAVOR, Domain, FlavorQuota, NODE_LEVEL, Node, PodSetRequest, Preemption, Queue,
    ReclaimWithinCohort, TopologyMode, TopologyRequest, WithinQueue, Workload,
};
pub use placement::DomainRef;
pub use policy::{
    Backfill, DominantResourceFairness, Policy, QueueOrder, Rank, ShortestJobFirst, StrictFifo, WhenBlocked,
};
pub use resources::Resources;
pub use seam::workload_from_plan;
