//! What a scheduling cycle answers: admit (with a node per pod), preempt,
//! wait, or never. Every decision explains itself through [`Decision::reason`];
//! reasons are built from small copyable data so that a cycle over 50,000
//! workloads allocates no text until someone asks.

use std::fmt;

use super::placement::DomainRef;
use super::resources::Resources;

/// A workload's handle, given by [`super::GangScheduler::submit`] in
/// submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One pod and its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodPlacement {
    /// Index of the pod set in [`super::Workload::pod_sets`].
    pub pod_set: usize,
    /// Pod index within the pod set.
    pub index: u32,
    /// Node index in [`super::Cluster::nodes`].
    pub node: usize,
}

/// Why a workload keeps waiting.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum WaitReason {
    /// Its queue (with what the cohort lends) has too little quota left.
    Quota {
        /// The dimension that ran out (`cpu`, `memory`, `gpu`).
        dimension: &'static str,
        /// What the workload needs in it.
        requested: u64,
        /// What the queue can still use in it.
        available: u64,
    },
    /// Quota allows it, but no set of nodes has room for the whole gang.
    Capacity {
        /// The gang's total request.
        requested: Resources,
        /// Free resources of the flavor tried.
        free: Resources,
        /// Whether a required topology level ruled out a wider spread.
        topology_required: bool,
    },
    /// It would fit now but would delay the reserved start of the head.
    Reservation {
        /// The workload holding the reservation.
        head: Ticket,
        /// When the reservation starts, seconds.
        at_s: f64,
    },
    /// Strict order: an earlier workload of the same queue (or, for node
    /// capacity, of any queue) does not fit yet.
    Behind {
        /// The workload it waits behind.
        head: Ticket,
    },
    /// Its queue has no quota on any flavor the cluster has.
    NoFlavor,
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::Quota { dimension, requested, available } => write!(
                f,
                "queue quota: needs {requested} {dimension}, the queue (with what its cohort lends) has {available} left"
            ),
            WaitReason::Capacity { requested, free, topology_required } => {
                write!(f, "no room for the whole gang ({requested}) on the free nodes ({free} free in total)")?;
                if *topology_required { write!(f, " within the required topology level") } else { Ok(()) }
            }
            WaitReason::Reservation { head, at_s } => {
                write!(f, "would delay workload {head}, which has a reservation at t={at_s}s (backfill)")
            }
            WaitReason::Behind { head } => {
                write!(f, "waits behind workload {head}, which does not fit yet (strict order)")
            }
            WaitReason::NoFlavor => write!(f, "its queue has no quota on any flavor of the cluster's nodes"),
        }
    }
}

/// An admission.
#[derive(Debug, Clone, PartialEq)]
pub struct Admit {
    /// The workload.
    pub ticket: Ticket,
    /// Flavor of its nodes.
    pub flavor: String,
    /// Pods admitted per pod set (below `count` only for elastic workloads).
    pub counts: Vec<u32>,
    /// Every pod and its node.
    pub pods: Vec<PodPlacement>,
    /// Where the gang was packed.
    pub domain: DomainRef,
    /// Whether the admission uses quota borrowed from the cohort.
    pub borrowing: bool,
}

/// One decision of a cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start the workload with this placement.
    Admit(Admit),
    /// Evict `victim` so that `by` can run; it went back to the pending
    /// queue. Listed before the admission that needed it.
    Preempt {
        /// The evicted workload.
        victim: Ticket,
        /// The workload it made room for.
        by: Ticket,
        /// True when reclaiming quota the victim's queue borrowed.
        reclaim: bool,
    },
    /// Keep waiting.
    Wait {
        /// The workload.
        ticket: Ticket,
        /// Why.
        reason: WaitReason,
    },
    /// It can never run here (larger than any allowed placement or quota
    /// even on an empty cluster); it was dropped.
    Unschedulable {
        /// The workload.
        ticket: Ticket,
        /// Why.
        reason: String,
    },
}

impl Decision {
    /// The workload the decision is about (the victim for a preemption).
    pub fn ticket(&self) -> Ticket {
        match self {
            Decision::Admit(a) => a.ticket,
            Decision::Preempt { victim, .. } => *victim,
            Decision::Wait { ticket, .. } | Decision::Unschedulable { ticket, .. } => *ticket,
        }
    }

    /// A sentence users can show. [`super::GangScheduler::explain`] adds names.
    pub fn reason(&self) -> String {
        match self {
            Decision::Admit(a) => {
                let pods = a.pods.len();
                let place = match a.domain {
                    DomainRef::Node(n) => format!("on node {n}"),
                    DomainRef::Domain { depth, index } => format!("in topology domain {index} of level {depth}"),
                    DomainRef::Cluster => "across the cluster".to_string(),
                };
                let borrow = if a.borrowing { ", borrowing quota from its cohort" } else { "" };
                format!("admitted: all {pods} pods placed {place} on flavor {}{borrow}", a.flavor)
            }
            Decision::Preempt { victim, by, reclaim } => {
                if *reclaim {
                    format!("preempted {victim}: its queue borrowed quota that {by}'s queue reclaims")
                } else {
                    format!("preempted {victim}: lower priority than {by} in the same queue")
                }
            }
            Decision::Wait { reason, .. } => reason.to_string(),
            Decision::Unschedulable { reason, .. } => reason.clone(),
        }
    }
}

/// The outcome of one scheduling cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cycle {
    /// Decisions, in the order they were taken.
    pub decisions: Vec<Decision>,
    /// Pending workloads not tried this cycle because a strict policy
    /// stopped at a blocked head (each would get [`WaitReason::Behind`]).
    pub not_tried: usize,
    /// The backfill reservation made this cycle: the head and its start time.
    pub reservation: Option<(Ticket, f64)>,
}

impl Cycle {
    /// The admissions of this cycle.
    pub fn admitted(&self) -> impl Iterator<Item = &Admit> {
        self.decisions.iter().filter_map(|d| if let Decision::Admit(a) = d { Some(a) } else { None })
    }
}
