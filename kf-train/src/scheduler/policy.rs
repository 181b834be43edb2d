//! Scheduling policies: the order in which pending workloads are tried and
//! what a workload that does not fit does to those behind it. A policy is
//! data the cycle reads; it never places pods or touches quotas.
//!
//! | policy | order | when the first workload does not fit |
//! |---|---|---|
//! | [`StrictFifo`] | priority, then submission | everything behind it waits |
//! | [`Backfill`] | priority, then submission | it gets a reservation; later workloads start only if they do not delay it (EASY) |
//! | [`ShortestJobFirst`] | priority, then requested duration | it is skipped |
//! | [`DominantResourceFairness`] | queue with the lowest dominant share first; FIFO inside a queue | it is skipped |
//!
//! In every policy a workload held back by its queue's quota holds back only
//! the rest of its own queue (strict policies) or nobody (skipping policies).

use std::cmp::Ordering;

use super::model::Workload;

/// Where a workload stands in its queue: higher `priority` first, then lower
/// `key`, then earlier submission, then earlier arrival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rank {
    /// Workload priority (higher first).
    pub priority: i32,
    /// Policy key (lower first): submission time, duration…
    pub key: f64,
}

/// How queues are interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrder {
    /// One order over all queues: the lowest [`Rank`] anywhere goes next.
    Merged,
    /// The queue with the lowest weighted dominant share goes next (DRF);
    /// inside it, the lowest rank.
    FairShare,
}

/// What happens behind a workload that cannot be admitted for lack of node
/// capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBlocked {
    /// Nothing behind it starts this cycle.
    Stop,
    /// It reserves the earliest time it can start (from requested durations
    /// of running workloads); later workloads start only if they end before
    /// that time or use capacity the reservation does not need.
    Reserve,
    /// Later workloads are tried as if it were not there.
    Skip,
}

/// A scheduling policy. Implement it to plug a new order into
/// [`super::GangScheduler`]; the four classic ones are below.
///
/// ```
/// use kf_train::scheduler::{Policy, QueueOrder, Rank, WhenBlocked, Workload};
///
/// /// Largest gang first, skipping what does not fit.
/// struct LargestFirst;
/// impl Policy for LargestFirst {
///     fn name(&self) -> &str { "largest-first" }
///     fn rank(&self, w: &Workload) -> Rank { Rank { priority: w.priority, key: -(w.total().gpus as f64) } }
///     fn queue_order(&self) -> QueueOrder { QueueOrder::Merged }
///     fn when_blocked(&self) -> WhenBlocked { WhenBlocked::Skip }
/// }
/// ```
pub trait Policy {
    /// Short name (`fifo`, `backfill`, …).
    fn name(&self) -> &str;
    /// The workload's place in its queue, fixed while it waits.
    fn rank(&self, workload: &Workload) -> Rank;
    /// How queues are interleaved.
    fn queue_order(&self) -> QueueOrder;
    /// What a workload that does not fit does to those behind it.
    fn when_blocked(&self) -> WhenBlocked;
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn rank(&self, workload: &Workload) -> Rank {
        (**self).rank(workload)
    }
    fn queue_order(&self) -> QueueOrder {
        (**self).queue_order()
    }
    fn when_blocked(&self) -> WhenBlocked {
        (**self).when_blocked()
    }
}

/// Strict first-in-first-out: the head blocks everyone behind it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictFifo;

impl Policy for StrictFifo {
    fn name(&self) -> &str {
        "fifo"
    }
    fn rank(&self, w: &Workload) -> Rank {
        Rank { priority: w.priority, key: w.submit_s }
    }
    fn queue_order(&self) -> QueueOrder {
        QueueOrder::Merged
    }
    fn when_blocked(&self) -> WhenBlocked {
        WhenBlocked::Stop
    }
}

/// FIFO with EASY backfill.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backfill;

impl Policy for Backfill {
    fn name(&self) -> &str {
        "backfill"
    }
    fn rank(&self, w: &Workload) -> Rank {
        Rank { priority: w.priority, key: w.submit_s }
    }
    fn queue_order(&self) -> QueueOrder {
        QueueOrder::Merged
    }
    fn when_blocked(&self) -> WhenBlocked {
        WhenBlocked::Reserve
    }
}

/// Shortest requested duration first (unknown durations last), skipping
/// what does not fit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShortestJobFirst;

impl Policy for ShortestJobFirst {
    fn name(&self) -> &str {
        "sjf"
    }
    fn rank(&self, w: &Workload) -> Rank {
        Rank { priority: w.priority, key: w.duration_s.unwrap_or(f64::INFINITY) }
    }
    fn queue_order(&self) -> QueueOrder {
        QueueOrder::Merged
    }
    fn when_blocked(&self) -> WhenBlocked {
        WhenBlocked::Skip
    }
}

/// Dominant resource fairness across queues (Volcano's `drf`, Kueue's fair
/// sharing): the queue whose admitted usage has the smallest dominant share
/// of the cluster (divided by its weight) goes next.
#[derive(Debug, Clone, Copy, Default)]
pub struct DominantResourceFairness;

impl Policy for DominantResourceFairness {
    fn name(&self) -> &str {
        "drf"
    }
    fn rank(&self, w: &Workload) -> Rank {
        Rank { priority: w.priority, key: w.submit_s }
    }
    fn queue_order(&self) -> QueueOrder {
        QueueOrder::FairShare
    }
    fn when_blocked(&self) -> WhenBlocked {
        WhenBlocked::Skip
    }
}

/// The built-in policy called `name` (`fifo`, `backfill`, `sjf`, `drf`).
pub fn by_name(name: &str) -> Option<Box<dyn Policy + Send + Sync>> {
    match name {
        "fifo" => Some(Box::new(StrictFifo)),
        "backfill" => Some(Box::new(Backfill)),
        "sjf" => Some(Box::new(ShortestJobFirst)),
        "drf" => Some(Box::new(DominantResourceFairness)),
        _ => None,
    }
}

/// Total order of pending workloads inside a queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderKey {
    pub(crate) rank: Rank,
    pub(crate) submit_s: f64,
    pub(crate) seq: u64,
}

impl PartialEq for OrderKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for OrderKey {}
impl PartialOrd for OrderKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .priority
            .cmp(&self.rank.priority)
            .then(self.rank.key.total_cmp(&other.rank.key))
            .then(self.submit_s.total_cmp(&other.submit_s))
            .then(self.seq.cmp(&other.seq))
    }
}
