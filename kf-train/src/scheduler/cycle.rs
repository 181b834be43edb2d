//! The gang scheduler: a deterministic state machine over a cluster snapshot.
//! It owns the bookkeeping (free capacity, queue and cohort usage, pending and
//! admitted workloads) and the scheduling cycle; it reads no clock (callers
//! pass `now`) and does no IO.
//!
//! A cycle tries pending workloads in the policy's order. For each one it
//! picks the first flavor of its queue where the quota (with borrowing) allows
//! the gang and [`super::placement`] finds nodes for every pod; elastic pod
//! sets shrink (binary search) toward their `min_count` when the full size
//! does not fit. A workload that still does not fit may preempt (its queue's
//! policy permitting); otherwise it waits, and the policy's
//! [`WhenBlocked`] decides what that means for the workloads behind it.
//!
//! Between cycles where nothing finished and no one was evicted, every
//! workload tried before would fail again (capacity and quota only shrank),
//! so the next cycle tries only the new submissions, unless one outranks the
//! workload the last cycle stopped at (then a full cycle runs). This keeps
//! trace replays near O(events) instead of O(events × queue length).
//!
//! Cost of a cycle: O(W·(log W + P)) for W workloads tried and placement cost
//! P (O(log N) for gangs that fit one node); a backfill reservation adds
//! O(R·log R + R·N) for R running workloads and N nodes; preemption
//! O(C·P) for C candidates.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound;

use super::decision::{Admit, Cycle, Decision, PodPlacement, Ticket, WaitReason};
use super::free::FreeMap;
use super::model::{Cluster, NODE_LEVEL, Queue, ReclaimWithinCohort, TopologyMode, WithinQueue, Workload, invalid};
use super::placement::{DomainRef, Want, place};
use super::policy::{OrderKey, Policy, QueueOrder, WhenBlocked};
use super::resources::Resources;
use crate::Result;

/// A queue's live state.
#[derive(Debug, Clone)]
struct QueueState {
    spec: Queue,
    cohort: Option<usize>,
    /// Cluster flavor index → index in `spec.flavors`.
    quota: Vec<Option<usize>>,
    /// Cluster flavor indexes in the order the queue tries them.
    order: Vec<usize>,
    /// Admitted usage per cluster flavor.
    usage: Vec<Resources>,
    admitted: BTreeSet<Ticket>,
}

#[derive(Debug, Clone)]
struct CohortState {
    queues: Vec<usize>,
    /// Σ lendable quota per cluster flavor.
    capacity: Vec<Resources>,
    /// Σ max(0, usage − guaranteed) per cluster flavor.
    used: Vec<Resources>,
}

/// An admitted workload.
#[derive(Debug, Clone)]
struct Running {
    workload: Workload,
    key: OrderKey,
    queue: usize,
    flavor: usize,
    groups: Vec<(usize, usize, u32)>,
    usage: Resources,
    start_s: f64,
}

#[derive(Debug, Clone)]
struct PendingItem {
    workload: Workload,
    key: OrderKey,
    queue: usize,
    /// Requests at the smallest size the workload accepts.
    min_total: Resources,
    /// GPUs of its largest pod.
    largest_pod_gpus: u64,
}

impl PendingItem {
    fn new(workload: Workload, key: OrderKey, queue: usize) -> PendingItem {
        let min_total = workload.pod_sets.iter().fold(Resources::ZERO, |acc, p| {
            acc.plus(p.per_pod.times(u64::from(p.min_count.unwrap_or(p.count).min(p.count))))
        });
        let largest_pod_gpus = workload.pod_sets.iter().map(|p| p.per_pod.gpus).max().unwrap_or(0);
        PendingItem { workload, key, queue, min_total, largest_pod_gpus }
    }

    fn min_total(&self) -> Resources {
        self.min_total
    }
}

/// Lower bounds over the pending workloads, kept as they come and go, so a
/// cycle can stop as soon as nothing left can fit: per dimension the
/// multiset of smallest-size requests, and the requested durations.
#[derive(Debug, Clone, Default)]
struct PendingBounds {
    dims: [BTreeMap<u64, usize>; 3],
    /// (duration bits, ticket); non-negative f64 bits sort like the values,
    /// unknown durations are +∞.
    by_duration: BTreeSet<(u64, Ticket)>,
}

impl PendingBounds {
    fn duration_bits(w: &Workload) -> u64 {
        w.duration_s.unwrap_or(f64::INFINITY).max(0.0).to_bits()
    }

    fn add(&mut self, ticket: Ticket, item: &PendingItem) {
        let m = item.min_total();
        for (i, dim) in self.dims.iter_mut().enumerate() {
            *dim.entry(m.get(i)).or_insert(0) += 1;
        }
        self.by_duration.insert((Self::duration_bits(&item.workload), ticket));
    }

    fn remove(&mut self, ticket: Ticket, item: &PendingItem) {
        let m = item.min_total();
        for (i, dim) in self.dims.iter_mut().enumerate() {
            if let Some(n) = dim.get_mut(&m.get(i)) {
                *n -= 1;
                if *n == 0 {
                    dim.remove(&m.get(i));
                }
            }
        }
        self.by_duration.remove(&(Self::duration_bits(&item.workload), ticket));
    }

    /// Component-wise minimum of the pending smallest-size requests.
    fn lower(&self) -> Option<Resources> {
        let min = |i: usize| self.dims[i].keys().next().copied();
        Some(Resources::new(min(0)?, min(1)?, min(2)?))
    }
}

/// A candidate admission.
#[derive(Debug, Clone)]
struct Fit {
    flavor: usize,
    counts: Vec<u32>,
    groups: Vec<(usize, usize, u32)>,
    domain: DomainRef,
    usage: Resources,
    borrowing: bool,
}

/// The backfill reservation of one cycle.
#[derive(Debug, Clone)]
struct Reservation {
    head: Ticket,
    at_s: f64,
    /// Free capacity at `at_s` minus what the head takes then.
    spare: FreeMap,
    /// min(free now, spare): what a workload running past `at_s` may use.
    bounded: FreeMap,
}

/// What a cycle leaves to the next when only submissions happen in between
/// (no workload finished or was evicted, none is overdue): every workload it
/// tried would fail again, since capacity and quota only shrank, so the next
/// cycle only needs to try the new submissions.
#[derive(Debug, Clone)]
struct Carry {
    /// The workload a strict policy stopped at, or the backfill head: new
    /// submissions ranked before it need a full cycle.
    blocker: Option<OrderKey>,
    /// The backfill reservation, still valid.
    reservation: Option<Reservation>,
    /// Queues blocked by quota.
    blocked: Vec<bool>,
}

/// Heap entry of the candidate order (min-heap through `Reverse`).
#[derive(Debug, Clone, Copy)]
struct Next {
    share: f64,
    key: OrderKey,
    queue: usize,
    ticket: Ticket,
}

impl PartialEq for Next {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Next {}
impl PartialOrd for Next {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Next {
    fn cmp(&self, other: &Self) -> Ordering {
        self.share.total_cmp(&other.share).then(self.key.cmp(&other.key)).then(self.queue.cmp(&other.queue))
    }
}

/// A time with a total order (for the index of expected ends).
#[derive(Debug, Clone, Copy)]
struct Time(f64);

impl PartialEq for Time {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Time {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Memo key of the "can it ever fit" check: queue, pod shapes, topology.
type ShapeKey = (usize, Vec<(Resources, u32)>, Option<usize>);

/// A gang scheduler over one cluster and its queues, generic over the
/// [`Policy`].
///
/// ```
/// use kf_train::scheduler::{Cluster, GangScheduler, PodSetRequest, Queue, Resources, StrictFifo, Workload};
///
/// let cluster = Cluster::uniform(2, 8); // two nodes of 8 GPUs
/// let mut s = GangScheduler::new(cluster, vec![Queue::unlimited("q")], StrictFifo)?;
/// let gang = |id: &str, pods| Workload::new(id, "q", 0.0, vec![PodSetRequest::new("worker", pods, Resources::gpus(4))]);
/// let a = s.submit(gang("a", 3))?; // 12 GPUs: two nodes
/// let b = s.submit(gang("b", 2))?; // 8 GPUs: must wait for a
/// let cycle = s.schedule(0.0);
/// assert_eq!(cycle.admitted().map(|x| x.ticket).collect::<Vec<_>>(), vec![a]);
/// assert_eq!(cycle.not_tried, 1); // b: 8 GPUs cannot fit the 4 left, so it is not even tried
/// s.finish(a)?;
/// assert_eq!(s.schedule(10.0).admitted().map(|x| x.ticket).collect::<Vec<_>>(), vec![b]);
/// # Ok::<(), kf_train::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GangScheduler<P> {
    cluster: Cluster,
    policy: P,
    queues: Vec<QueueState>,
    queue_index: HashMap<String, usize>,
    cohorts: Vec<CohortState>,
    free: FreeMap,
    empty: FreeMap,
    admitted: BTreeMap<Ticket, Running>,
    /// Expected ends (start + requested duration) of admitted workloads.
    ends: BTreeSet<(Time, Ticket)>,
    pending: HashMap<Ticket, PendingItem>,
    pending_order: Vec<BTreeMap<OrderKey, Ticket>>,
    bounds: PendingBounds,
    doomed: Vec<(Ticket, String)>,
    evicted: Vec<(Ticket, PendingItem)>,
    carry: Option<Carry>,
    /// Submitted since the last cycle.
    fresh: Vec<Ticket>,
    /// Whether capacity was given back since the last cycle.
    released: bool,
    never_fits_memo: HashMap<ShapeKey, Option<String>>,
    next_seq: u64,
    preemption_enabled: bool,
}

impl<P: Policy> GangScheduler<P> {
    /// A scheduler with nothing admitted. Errors (`Error::Invalid`, with the
    /// path `queues[i]…`) on duplicate or malformed queues.
    pub fn new(cluster: Cluster, queues: Vec<Queue>, policy: P) -> Result<Self> {
        let flavors = cluster.flavors().len();
        let mut queue_index = HashMap::new();
        let mut cohort_index: HashMap<String, usize> = HashMap::new();
        let mut cohorts: Vec<CohortState> = Vec::new();
        let mut states = Vec::with_capacity(queues.len());
        for (i, spec) in queues.into_iter().enumerate() {
            spec.validate(&format!("queues[{i}]"))?;
            if queue_index.insert(spec.name.clone(), i).is_some() {
                return Err(invalid(format!("queues[{i}].name"), format!("duplicate queue name {:?}", spec.name)));
            }
            let mut quota = vec![None; flavors];
            let mut order = Vec::new();
            for (j, fq) in spec.flavors.iter().enumerate() {
                if let Some(f) = cluster.flavor_index(&fq.flavor) {
                    quota[f] = Some(j);
                    order.push(f);
                }
            }
            let cohort = spec.cohort.as_ref().map(|name| {
                *cohort_index.entry(name.clone()).or_insert_with(|| {
                    cohorts.push(CohortState {
                        queues: Vec::new(),
                        capacity: vec![Resources::ZERO; flavors],
                        used: vec![Resources::ZERO; flavors],
                    });
                    cohorts.len() - 1
                })
            });
            if let Some(c) = cohort {
                cohorts[c].queues.push(i);
                for (f, j) in quota.iter().enumerate() {
                    if let Some(j) = j {
                        cohorts[c].capacity[f] = cohorts[c].capacity[f].plus(spec.flavors[*j].lendable());
                    }
                }
            }
            states.push(QueueState {
                spec,
                cohort,
                quota,
                order,
                usage: vec![Resources::ZERO; flavors],
                admitted: BTreeSet::new(),
            });
        }
        let preemption_enabled = states.iter().any(|q| {
            q.spec.preemption.within_queue != WithinQueue::Never
                || q.spec.preemption.reclaim_within_cohort != ReclaimWithinCohort::Never
        });
        let n = states.len();
        Ok(GangScheduler {
            free: FreeMap::allocatable(&cluster, true),
            empty: FreeMap::allocatable(&cluster, true),
            cluster,
            policy,
            queues: states,
            queue_index,
            cohorts,
            admitted: BTreeMap::new(),
            ends: BTreeSet::new(),
            pending: HashMap::new(),
            pending_order: vec![BTreeMap::new(); n],
            bounds: PendingBounds::default(),
            doomed: Vec::new(),
            evicted: Vec::new(),
            carry: None,
            fresh: Vec::new(),
            released: false,
            never_fits_memo: HashMap::new(),
            next_seq: 0,
            preemption_enabled,
        })
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Queues a workload. Errors on a malformed workload, an unknown queue or
    /// an unknown topology level. A workload that can never fit (even alone on
    /// an empty cluster, with all the quota it could borrow) is accepted and
    /// reported as [`Decision::Unschedulable`] by the next cycle, never retried.
    pub fn submit(&mut self, workload: Workload) -> Result<Ticket> {
        workload.validate()?;
        let Some(&queue) = self.queue_index.get(&workload.queue) else {
            return Err(invalid(
                format!("workload {:?}.queue", workload.id),
                format!("unknown queue {:?}", workload.queue),
            ));
        };
        if let Some(t) = &workload.topology
            && self.cluster.level_index(&t.level).is_none()
        {
            return Err(invalid(
                format!("workload {:?}.topology.level", workload.id),
                format!(
                    "unknown topology level {:?}; the cluster has {:?} and {NODE_LEVEL}",
                    t.level,
                    self.cluster.levels()
                ),
            ));
        }
        let ticket = Ticket(self.next_seq);
        self.next_seq += 1;
        if let Some(reason) = self.never_fits(&workload, queue) {
            self.doomed.push((ticket, reason));
            return Ok(ticket);
        }
        let key = OrderKey { rank: self.policy.rank(&workload), submit_s: workload.submit_s, seq: ticket.0 };
        self.enqueue(ticket, PendingItem::new(workload, key, queue));
        self.fresh.push(ticket);
        Ok(ticket)
    }

    /// Marks an admitted workload finished and frees its nodes and quota.
    /// Errors if `ticket` is not running.
    pub fn finish(&mut self, ticket: Ticket) -> Result<Workload> {
        match self.release(ticket) {
            Some(r) => Ok(r.workload),
            None => Err(invalid("ticket".into(), format!("workload {ticket} is not running"))),
        }
    }

    /// Workloads waiting.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Workloads admitted and not finished.
    pub fn running_len(&self) -> usize {
        self.admitted.len()
    }

    /// A pending or running workload.
    pub fn workload(&self, ticket: Ticket) -> Option<&Workload> {
        self.pending.get(&ticket).map(|p| &p.workload).or_else(|| self.admitted.get(&ticket).map(|r| &r.workload))
    }

    /// Running workloads: ticket, workload, start time and the node of every
    /// pod as `(pod set, node, pods)`.
    pub fn running(&self) -> impl Iterator<Item = (Ticket, &Workload, f64, &[(usize, usize, u32)])> {
        self.admitted.iter().map(|(t, r)| (*t, &r.workload, r.start_s, r.groups.as_slice()))
    }

    /// Free resources of node `node` (index into [`Cluster::nodes`]).
    pub fn free(&self, node: usize) -> Resources {
        self.free.free(node)
    }

    /// Admitted usage of queue `name` on node flavor `flavor`.
    pub fn usage(&self, name: &str, flavor: &str) -> Option<Resources> {
        let q = *self.queue_index.get(name)?;
        let f = self.cluster.flavor_index(flavor)?;
        Some(self.queues[q].usage[f])
    }

    /// The queues, in the order given.
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.iter().map(|q| &q.spec)
    }

    /// The weighted dominant share of queue `name`: its admitted usage over the
    /// cluster's capacity, max over resources, divided by its weight.
    pub fn dominant_share(&self, name: &str) -> Option<f64> {
        self.queue_index.get(name).map(|&q| self.share(q))
    }

    /// [`Decision::reason`] with node, domain and workload names.
    pub fn explain(&self, decision: &Decision) -> String {
        let name = |t: Ticket| self.workload(t).map_or_else(|| t.to_string(), |w| format!("{:?}", w.id));
        match decision {
            Decision::Admit(a) => {
                let place = match a.domain {
                    DomainRef::Node(n) => format!("on node {}", self.node_name(n)),
                    DomainRef::Domain { depth, index } => format!(
                        "in {} {}",
                        self.cluster.levels()[depth],
                        self.cluster.level_domains(depth)[index].values.join("/")
                    ),
                    DomainRef::Cluster => "across the cluster (no smaller topology domain had room)".into(),
                };
                let borrow = if a.borrowing { ", borrowing quota from its cohort" } else { "" };
                format!(
                    "{} admitted: all {} pods placed {place} (flavor {}){borrow}",
                    name(a.ticket),
                    a.pods.len(),
                    a.flavor
                )
            }
            Decision::Preempt { victim, by, reclaim } => {
                if *reclaim {
                    format!(
                        "{} preempted: its queue borrowed quota that the queue of {} reclaims",
                        name(*victim),
                        name(*by)
                    )
                } else {
                    format!("{} preempted: lower priority than {} in the same queue", name(*victim), name(*by))
                }
            }
            Decision::Wait { ticket, reason } => format!("{} waits: {reason}", name(*ticket)),
            Decision::Unschedulable { ticket, reason } => format!("{ticket} unschedulable: {reason}"),
        }
    }

    fn node_name(&self, n: usize) -> &str {
        self.cluster.nodes().get(n).map_or("?", |node| node.name.as_str())
    }

    /// One scheduling cycle at time `now` (seconds, the clock of
    /// `submit_s`): admissions are applied to the state before returning.
    pub fn schedule(&mut self, now: f64) -> Cycle {
        let mut cycle = Cycle::default();
        for (ticket, reason) in self.doomed.drain(..) {
            cycle.decisions.push(Decision::Unschedulable { ticket, reason });
        }
        let order = self.policy.queue_order();
        let when_blocked = self.policy.when_blocked();
        if let Some(carry) = self.carry.take()
            && let Some(carry) = self.carried_over(carry, now, order)
        {
            return self.schedule_fresh(now, carry, cycle);
        }
        self.fresh.clear();
        self.released = false;
        let mut stopped_at: Option<OrderKey> = None;
        let mut heap: BinaryHeap<Reverse<Next>> = BinaryHeap::new();
        for q in 0..self.queues.len() {
            if let Some(next) = self.next_after(q, None, order) {
                heap.push(Reverse(next));
            }
        }
        let mut reservation: Option<Reservation> = None;
        let mut waits = 0usize;
        let mut cursor: Vec<Option<OrderKey>> = vec![None; self.queues.len()];
        let mut blocked = vec![false; self.queues.len()];
        // Without preemption, capacity only shrinks during a cycle: once the
        // smallest pending request fits nowhere, nothing behind it can start.
        let can_stop_early = !self.preemption_enabled;
        while let Some(Reverse(next)) = heap.pop() {
            if can_stop_early {
                let Some(lower) = self.bounds.lower() else { break };
                if !self.fits_somewhere(lower, &self.free) {
                    break;
                }
                if order == QueueOrder::Merged
                    && let Some(r) = reservation.as_mut()
                    && !self.fits_somewhere(lower, &r.bounded)
                {
                    // Only workloads that end before the reservation can still start.
                    waits += self.backfill_short(now, r, &cursor, &mut blocked, &mut cycle);
                    break;
                }
            }
            let q = next.queue;
            let ticket = next.ticket;
            cursor[q] = Some(next.key);
            let mut queue_blocked = false;
            match self.try_admit(ticket, now, reservation.as_mut(), &mut cycle) {
                Ok(()) => {}
                Err(reason) => {
                    waits += 1;
                    cycle.decisions.push(Decision::Wait { ticket, reason });
                    match (reason, when_blocked) {
                        (WaitReason::Quota { .. } | WaitReason::NoFlavor, WhenBlocked::Stop | WhenBlocked::Reserve) => {
                            queue_blocked = true
                        }
                        (WaitReason::Capacity { .. }, WhenBlocked::Stop) => {
                            stopped_at = Some(next.key);
                            break;
                        }
                        (WaitReason::Capacity { .. }, WhenBlocked::Reserve) if reservation.is_none() => {
                            match self.reserve(ticket, now) {
                                Some(r) => {
                                    cycle.reservation = Some((r.head, r.at_s));
                                    stopped_at = Some(next.key);
                                    reservation = Some(r);
                                }
                                None => {
                                    stopped_at = Some(next.key);
                                    break;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            blocked[q] |= queue_blocked;
            if !queue_blocked && let Some(n) = self.next_after(q, Some(next.key), order) {
                heap.push(Reverse(n));
            }
        }
        cycle.not_tried = self.pending.len().saturating_sub(waits);
        for (ticket, item) in std::mem::take(&mut self.evicted) {
            self.enqueue(ticket, item);
        }
        let strict = when_blocked != WhenBlocked::Skip;
        if !self.preemption_enabled && order == QueueOrder::Merged && (!strict || stopped_at.is_some()) {
            self.carry = Some(Carry { blocker: stopped_at, reservation, blocked });
        }
        self.released = false;
        cycle
    }

    /// The carry of the last cycle, if it still holds at `now`.
    fn carried_over(&mut self, carry: Carry, now: f64, order: QueueOrder) -> Option<Carry> {
        let overdue = self.ends.first().is_some_and(|(Time(end), _)| *end < now);
        if self.released || self.preemption_enabled || order != QueueOrder::Merged || overdue {
            return None;
        }
        if let Some(blocker) = carry.blocker {
            let jumps_ahead = self.fresh.iter().filter_map(|t| self.pending.get(t)).any(|item| item.key < blocker);
            if jumps_ahead {
                return None;
            }
        }
        Some(carry)
    }

    /// A cycle that only tries the workloads submitted since the last one
    /// (see [`Carry`]); O(F log F + F·P) for F new workloads.
    fn schedule_fresh(&mut self, now: f64, mut carry: Carry, mut cycle: Cycle) -> Cycle {
        let mut fresh: Vec<(OrderKey, Ticket)> = std::mem::take(&mut self.fresh)
            .into_iter()
            .filter_map(|t| self.pending.get(&t).map(|item| (item.key, t)))
            .collect();
        fresh.sort();
        let strict_stop = carry.blocker.is_some() && carry.reservation.is_none();
        cycle.reservation = carry.reservation.as_ref().map(|r| (r.head, r.at_s));
        let mut waits = 0usize;
        if !strict_stop {
            for (_, ticket) in fresh {
                let Some(q) = self.pending.get(&ticket).map(|i| i.queue) else { continue };
                if carry.blocked[q] {
                    continue;
                }
                if let Err(reason) = self.try_admit(ticket, now, carry.reservation.as_mut(), &mut cycle) {
                    waits += 1;
                    cycle.decisions.push(Decision::Wait { ticket, reason });
                    if carry.blocker.is_some() && matches!(reason, WaitReason::Quota { .. } | WaitReason::NoFlavor) {
                        carry.blocked[q] = true;
                    }
                }
            }
        }
        cycle.not_tried = self.pending.len().saturating_sub(waits);
        self.released = false;
        self.carry = Some(carry);
        cycle
    }

    /// What [`GangScheduler::schedule`] would decide, without changing anything.
    pub fn plan(&self, now: f64) -> Cycle
    where
        P: Clone,
    {
        self.clone().schedule(now)
    }

    /// Whether `request` fits the free total of some flavor of `view`.
    fn fits_somewhere(&self, request: Resources, view: &FreeMap) -> bool {
        (0..self.cluster.flavors().len()).any(|f| request.fits_in(&view.flavor_free(f)))
    }

    /// The end of a backfill cycle once nothing running past the reservation
    /// fits: tries, in queue order, only the unvisited workloads whose
    /// requested duration ends before it (found through the duration index,
    /// not by scanning the queue). Returns the number of waits recorded.
    fn backfill_short(
        &mut self,
        now: f64,
        r: &mut Reservation,
        cursor: &[Option<OrderKey>],
        blocked: &mut [bool],
        cycle: &mut Cycle,
    ) -> usize {
        let horizon = (r.at_s - now).max(0.0).to_bits();
        let short: Vec<Reverse<(OrderKey, Ticket)>> = self
            .bounds
            .by_duration
            .range(..=(horizon, Ticket(u64::MAX)))
            .filter_map(|&(_, t)| {
                let item = self.pending.get(&t)?;
                let unvisited = cursor[item.queue].is_none_or(|c| item.key > c);
                let plausible = self.queues[item.queue].order.iter().any(|&f| {
                    item.min_total.fits_in(&self.free.flavor_free(f))
                        && item.largest_pod_gpus <= self.free.max_node_gpus(f)
                });
                (unvisited && plausible && !blocked[item.queue]).then_some(Reverse((item.key, t)))
            })
            .collect();
        // A heap, not a sort: the cycle usually ends after a few admissions.
        let mut short = BinaryHeap::from(short);
        let mut waits = 0;
        while let Some(Reverse((_, ticket))) = short.pop() {
            if self.bounds.lower().is_none_or(|lower| !self.fits_somewhere(lower, &self.free)) {
                break;
            }
            let Some(q) = self.pending.get(&ticket).map(|i| i.queue) else { continue };
            if blocked[q] {
                continue;
            }
            if let Err(reason) = self.try_admit(ticket, now, Some(r), cycle) {
                waits += 1;
                cycle.decisions.push(Decision::Wait { ticket, reason });
                if matches!(reason, WaitReason::Quota { .. } | WaitReason::NoFlavor) {
                    blocked[q] = true;
                }
            }
        }
        waits
    }

    fn share(&self, q: usize) -> f64 {
        let qs = &self.queues[q];
        let used = qs.usage.iter().fold(Resources::ZERO, |acc, u| acc.plus(*u));
        used.dominant_share(&self.cluster.capacity()) / qs.spec.weight
    }

    fn next_after(&self, q: usize, after: Option<OrderKey>, order: QueueOrder) -> Option<Next> {
        let map = &self.pending_order[q];
        let (key, ticket) = match after {
            None => map.iter().next()?,
            Some(k) => map.range((Bound::Excluded(k), Bound::Unbounded)).next()?,
        };
        let share = if order == QueueOrder::FairShare { self.share(q) } else { 0.0 };
        Some(Next { share, key: *key, queue: q, ticket: *ticket })
    }

    fn enqueue(&mut self, ticket: Ticket, item: PendingItem) {
        self.pending_order[item.queue].insert(item.key, ticket);
        self.bounds.add(ticket, &item);
        self.pending.insert(ticket, item);
    }

    fn dequeue(&mut self, ticket: Ticket) -> Option<PendingItem> {
        let item = self.pending.remove(&ticket)?;
        self.pending_order[item.queue].remove(&item.key);
        self.bounds.remove(ticket, &item);
        Some(item)
    }

    /// Tries to admit one pending workload; on success the decisions are in `cycle`.
    fn try_admit(
        &mut self,
        ticket: Ticket,
        now: f64,
        reservation: Option<&mut Reservation>,
        cycle: &mut Cycle,
    ) -> Result<(), WaitReason> {
        let Some(item) = self.pending.get(&ticket) else { return Err(WaitReason::NoFlavor) };
        let (q, w) = (item.queue, &item.workload);
        if let Some(r) = reservation {
            let ends_before = w.duration_s.is_some_and(|d| now + d <= r.at_s);
            let view = if ends_before { &self.free } else { &r.bounded };
            let fit = match self.fit(w, q, view) {
                Ok(fit) => fit,
                Err(WaitReason::Capacity { .. }) if !ends_before && self.fit(w, q, &self.free).is_ok() => {
                    return Err(WaitReason::Reservation { head: r.head, at_s: r.at_s });
                }
                Err(e) => return Err(e),
            };
            let per_pod: Vec<Resources> = w.pod_sets.iter().map(|p| p.per_pod).collect();
            let groups = fit.groups.clone();
            self.commit(ticket, fit, now, cycle);
            // A node can hold pods of several pod sets: update after the
            // whole gang is committed.
            for &(set, node, n) in &groups {
                if !ends_before {
                    r.spare.take(&self.cluster, node, per_pod[set].times(u64::from(n)));
                }
            }
            for &(_, node, _) in &groups {
                let bounded = self.free.free(node).min(r.spare.free(node));
                r.bounded.set(&self.cluster, node, bounded);
            }
            return Ok(());
        }
        match self.fit(w, q, &self.free) {
            Ok(fit) => {
                self.commit(ticket, fit, now, cycle);
                Ok(())
            }
            Err(reason) => {
                let policy = self.queues[q].spec.preemption;
                if policy.within_queue == WithinQueue::Never
                    && policy.reclaim_within_cohort == ReclaimWithinCohort::Never
                {
                    return Err(reason);
                }
                match self.preempt_for(ticket) {
                    Some((victims, fit)) => {
                        for (victim, reclaim) in victims {
                            if let Some(run) = self.release(victim) {
                                // Back in the queue after this cycle, so it is not re-admitted in the
                                // cycle that evicted it.
                                self.evicted.push((victim, PendingItem::new(run.workload, run.key, run.queue)));
                            }
                            cycle.decisions.push(Decision::Preempt { victim, by: ticket, reclaim });
                        }
                        self.commit(ticket, fit, now, cycle);
                        Ok(())
                    }
                    None => Err(reason),
                }
            }
        }
    }

    fn commit(&mut self, ticket: Ticket, fit: Fit, now: f64, cycle: &mut Cycle) {
        let Some(item) = self.dequeue(ticket) else { return };
        let mut pods = Vec::new();
        let mut next_index = vec![0u32; item.workload.pod_sets.len()];
        for &(set, node, n) in &fit.groups {
            for _ in 0..n {
                pods.push(PodPlacement { pod_set: set, index: next_index[set], node });
                next_index[set] += 1;
            }
        }
        let run = Running {
            workload: item.workload,
            key: item.key,
            queue: item.queue,
            flavor: fit.flavor,
            groups: fit.groups,
            usage: fit.usage,
            start_s: now,
        };
        self.occupy(ticket, run);
        cycle.decisions.push(Decision::Admit(Admit {
            ticket,
            flavor: self.cluster.flavors()[fit.flavor].clone(),
            counts: fit.counts,
            pods,
            domain: fit.domain,
            borrowing: fit.borrowing,
        }));
    }

    /// Takes nodes and quota for `run`.
    fn occupy(&mut self, ticket: Ticket, run: Running) {
        for &(set, node, n) in &run.groups {
            let amount = run.workload.pod_sets[set].per_pod.times(u64::from(n));
            self.free.take(&self.cluster, node, amount);
        }
        self.add_usage(run.queue, run.flavor, run.usage, true);
        self.queues[run.queue].admitted.insert(ticket);
        if let Some(d) = run.workload.duration_s {
            self.ends.insert((Time(run.start_s + d), ticket));
        }
        self.admitted.insert(ticket, run);
    }

    /// Gives back the nodes and quota of an admitted workload.
    fn release(&mut self, ticket: Ticket) -> Option<Running> {
        let run = self.admitted.remove(&ticket)?;
        self.released = true;
        if let Some(d) = run.workload.duration_s {
            self.ends.remove(&(Time(run.start_s + d), ticket));
        }
        for &(set, node, n) in &run.groups {
            let amount = run.workload.pod_sets[set].per_pod.times(u64::from(n));
            self.free.give(&self.cluster, node, amount);
        }
        self.add_usage(run.queue, run.flavor, run.usage, false);
        self.queues[run.queue].admitted.remove(&ticket);
        Some(run)
    }

    fn add_usage(&mut self, q: usize, f: usize, amount: Resources, add: bool) {
        let qs = &mut self.queues[q];
        let before = qs.usage[f];
        let after = if add { before.plus(amount) } else { before.minus(amount) };
        qs.usage[f] = after;
        if let (Some(c), Some(j)) = (qs.cohort, qs.quota[f]) {
            let g = qs.spec.flavors[j].guaranteed();
            let used = &mut self.cohorts[c].used[f];
            *used = used.minus(before.minus(g)).plus(after.minus(g));
        }
    }

    /// Whether queue `q` uses more than its nominal quota of flavor `f`.
    fn borrowing(&self, q: usize, f: usize) -> bool {
        let qs = &self.queues[q];
        match qs.quota[f] {
            Some(j) => !qs.usage[f].fits_in(&qs.spec.flavors[j].nominal),
            None => !qs.usage[f].is_zero(),
        }
    }

    /// Quota check for `request` more on flavor `f` of queue `q`; `Ok(borrowing)`.
    fn quota_room(&self, q: usize, f: usize, request: Resources) -> Result<bool, WaitReason> {
        let qs = &self.queues[q];
        let Some(j) = qs.quota[f] else { return Err(WaitReason::NoFlavor) };
        let fq = &qs.spec.flavors[j];
        let usage = qs.usage[f];
        let after = usage.plus(request);
        let limit = match qs.cohort {
            None => fq.nominal,
            Some(_) => fq.nominal.plus(fq.borrowing_limit.unwrap_or(Resources::UNLIMITED)),
        };
        if let Some(dimension) = after.first_excess(&limit) {
            let i = dim_index(dimension);
            return Err(WaitReason::Quota {
                dimension,
                requested: request.get(i),
                available: limit.get(i).saturating_sub(usage.get(i)),
            });
        }
        if let Some(c) = qs.cohort {
            let g = fq.guaranteed();
            let cs = &self.cohorts[c];
            let others = cs.used[f].minus(usage.minus(g));
            let cohort_after = others.plus(after.minus(g));
            if let Some(dimension) = cohort_after.first_excess(&cs.capacity[f]) {
                let i = dim_index(dimension);
                let room = cs.capacity[f].get(i).saturating_sub(others.get(i)).saturating_add(g.get(i));
                return Err(WaitReason::Quota {
                    dimension,
                    requested: request.get(i),
                    available: room.saturating_sub(usage.get(i)),
                });
            }
        }
        Ok(!after.fits_in(&fq.nominal))
    }

    /// Quota and placement for `w`, shrinking elastic pod sets when needed.
    fn fit(&self, w: &Workload, q: usize, free: &FreeMap) -> Result<Fit, WaitReason> {
        self.quick_reject(w, q, free)?;
        let full: Vec<u32> = w.pod_sets.iter().map(|p| p.count).collect();
        let err = match self.fit_counts(w, q, free, &full) {
            Ok(fit) => return Ok(fit),
            Err(e) => e,
        };
        let shrink = |k: u32| -> Vec<u32> {
            w.pod_sets.iter().map(|p| p.count.saturating_sub(k).max(p.min_count.unwrap_or(p.count))).collect()
        };
        let kmax = w.pod_sets.iter().map(|p| p.count - p.min_count.unwrap_or(p.count).min(p.count)).max().unwrap_or(0);
        if kmax == 0 {
            return Err(err);
        }
        let Ok(mut best) = self.fit_counts(w, q, free, &shrink(kmax)) else { return Err(err) };
        // Smallest shrink that fits: feasibility only grows with k.
        let (mut lo, mut hi) = (1u32, kmax);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.fit_counts(w, q, free, &shrink(mid)) {
                Ok(fit) => {
                    best = fit;
                    hi = mid;
                }
                Err(_) => lo = mid + 1,
            }
        }
        Ok(best)
    }

    /// A cheap, allocation-free "certainly not": the smallest size exceeds
    /// the quota or the free total of every flavor of the queue, or one pod
    /// exceeds the freest node. Reasons match what [`Self::fit_counts`] says.
    fn quick_reject(&self, w: &Workload, q: usize, free: &FreeMap) -> Result<(), WaitReason> {
        let mut min = Resources::ZERO;
        let mut largest_pod = 0;
        for p in &w.pod_sets {
            min = min.plus(p.per_pod.times(u64::from(p.min_count.unwrap_or(p.count).min(p.count))));
            largest_pod = largest_pod.max(p.per_pod.gpus);
        }
        let mut first: Option<WaitReason> = None;
        for &f in &self.queues[q].order {
            if let Err(e) = self.quota_room(q, f, min) {
                first.get_or_insert(e);
                continue;
            }
            let flavor_free = free.flavor_free(f);
            if min.fits_in(&flavor_free) && largest_pod <= free.max_node_gpus(f) {
                return Ok(());
            }
            if !matches!(first, Some(WaitReason::Capacity { .. })) {
                first = Some(WaitReason::Capacity {
                    requested: w.total(),
                    free: flavor_free,
                    topology_required: self.required_depth(w).is_some(),
                });
            }
        }
        Err(first.unwrap_or(WaitReason::NoFlavor))
    }

    fn fit_counts(&self, w: &Workload, q: usize, free: &FreeMap, counts: &[u32]) -> Result<Fit, WaitReason> {
        let want: Vec<(usize, Resources, u32)> =
            w.pod_sets.iter().zip(counts).enumerate().map(|(i, (p, &n))| (i, p.per_pod, n)).collect();
        let request = total(&want);
        let required = self.required_depth(w);
        let mut first: Option<WaitReason> = None;
        for &f in &self.queues[q].order {
            let borrowing = match self.quota_room(q, f, request) {
                Ok(b) => b,
                Err(e) => {
                    first.get_or_insert(e);
                    continue;
                }
            };
            match place(&self.cluster, free, f, &want, required) {
                Some(p) => {
                    return Ok(Fit {
                        flavor: f,
                        counts: counts.to_vec(),
                        groups: p.groups,
                        domain: p.domain,
                        usage: request,
                        borrowing,
                    });
                }
                None => {
                    let capacity = WaitReason::Capacity {
                        requested: request,
                        free: free.flavor_free(f),
                        topology_required: required.is_some(),
                    };
                    if !matches!(first, Some(WaitReason::Capacity { .. })) {
                        first = Some(capacity);
                    }
                }
            }
        }
        Err(first.unwrap_or(WaitReason::NoFlavor))
    }

    fn required_depth(&self, w: &Workload) -> Option<usize> {
        let t = w.topology.as_ref()?;
        if t.mode == TopologyMode::Required { self.cluster.level_index(&t.level) } else { None }
    }

    /// Why `w` can never run in queue `q`, if it cannot: at its smallest size
    /// it exceeds every flavor's reachable quota or every allowed placement
    /// on the empty cluster. Memoised per (queue, shape).
    fn never_fits(&mut self, w: &Workload, q: usize) -> Option<String> {
        let shape: Vec<(Resources, u32)> =
            w.pod_sets.iter().map(|p| (p.per_pod, p.min_count.unwrap_or(p.count).min(p.count))).collect();
        let required = self.required_depth(w);
        let memo_key = (q, shape, required);
        if let Some(answer) = self.never_fits_memo.get(&memo_key) {
            return answer.clone();
        }
        let want: Vec<(usize, Resources, u32)> = memo_key.1.iter().enumerate().map(|(i, &(p, n))| (i, p, n)).collect();
        let request = total(&want);
        let qs = &self.queues[q];
        let mut reasons = Vec::new();
        for &f in &qs.order {
            let Some(j) = qs.quota[f] else { continue };
            let fq = &qs.spec.flavors[j];
            let reachable = match qs.cohort {
                None => fq.nominal,
                Some(c) => {
                    let by_limit = fq.nominal.plus(fq.borrowing_limit.unwrap_or(Resources::UNLIMITED));
                    by_limit.min(fq.guaranteed().plus(self.cohorts[c].capacity[f]))
                }
            };
            let flavor = &self.cluster.flavors()[f];
            if let Some(dim) = request.first_excess(&reachable) {
                reasons.push(format!(
                    "flavor {flavor}: needs {request}, more {dim} than the queue can ever use ({reachable})"
                ));
                continue;
            }
            if place(&self.cluster, &self.empty, f, &want, required).is_none() {
                let scope = match &w.topology {
                    Some(t) if required.is_some() => format!("one {} domain", t.level),
                    _ => "the cluster".to_string(),
                };
                reasons.push(format!(
                    "flavor {flavor}: the gang ({request}) does not fit {scope} even when empty (capacity {})",
                    self.cluster.flavor_capacity(flavor)
                ));
                continue;
            }
            self.never_fits_memo.insert(memo_key, None);
            return None;
        }
        let answer = if reasons.is_empty() {
            format!("queue {:?} has no quota on any flavor of the cluster's nodes", qs.spec.name)
        } else {
            reasons.join("; ")
        };
        self.never_fits_memo.insert(memo_key, Some(answer.clone()));
        Some(answer)
    }

    /// EASY backfill: the earliest time the head fits, assuming running
    /// workloads end at start + requested duration (unknown: never).
    fn reserve(&self, head: Ticket, now: f64) -> Option<Reservation> {
        let item = self.pending.get(&head)?;
        let ends: Vec<(f64, Ticket)> = self.ends.iter().map(|&(Time(end), t)| (end.max(now), t)).collect();
        let mut projected = FreeMap::from_free(&self.cluster, self.free.all_free().to_vec(), false);
        // For a one-pod-set head, count the copies of its pod the projected
        // nodes hold, updated per released node: a full fit is only tried
        // once the count allows it (O(R + N) instead of O(R·N)).
        let single = match item.workload.pod_sets.as_slice() {
            [p] => Some((p.per_pod, u64::from(p.min_count.unwrap_or(p.count).min(p.count)))),
            _ => None,
        };
        let mut copies: u64 = single.map_or(0, |(pod, _)| {
            (0..self.cluster.nodes().len()).map(|n| pod.copies_in(&projected.free(n)).min(1 << 32)).sum()
        });
        let mut i = 0;
        while i < ends.len() {
            let at = ends[i].0;
            while i < ends.len() && ends[i].0 == at {
                if let Some(r) = self.admitted.get(&ends[i].1) {
                    for &(set, node, n) in &r.groups {
                        let before = projected.free(node);
                        projected.give(&self.cluster, node, r.workload.pod_sets[set].per_pod.times(u64::from(n)));
                        if let Some((pod, _)) = single {
                            let after = projected.free(node);
                            copies = copies + pod.copies_in(&after).min(1 << 32) - pod.copies_in(&before).min(1 << 32);
                        }
                    }
                }
                i += 1;
            }
            if single.is_some_and(|(_, need)| copies < need) {
                continue;
            }
            if let Ok(fit) = self.fit(&item.workload, item.queue, &projected) {
                let mut spare = projected;
                for &(set, node, n) in &fit.groups {
                    spare.take(&self.cluster, node, item.workload.pod_sets[set].per_pod.times(u64::from(n)));
                }
                let bounded: Vec<Resources> =
                    self.free.all_free().iter().zip(spare.all_free()).map(|(a, b)| Resources::min(*a, *b)).collect();
                let bounded = FreeMap::from_free(&self.cluster, bounded, false);
                return Some(Reservation { head, at_s: at, spare, bounded });
            }
        }
        None
    }

    /// Victims whose eviction lets pending `ticket` in, and its fit then.
    /// Candidates: lower-priority workloads of its queue (within-queue
    /// policy), then borrowing workloads of its cohort (reclaim policy);
    /// greedily evicted lowest priority and most recent first until the
    /// workload fits, then re-admitted where it still fits (a minimal set).
    fn preempt_for(&mut self, ticket: Ticket) -> Option<(Vec<(Ticket, bool)>, Fit)> {
        let item = self.pending.get(&ticket)?.clone();
        let (q, w) = (item.queue, &item.workload);
        let policy = self.queues[q].spec.preemption;
        let mut candidates: Vec<(bool, i32, f64, Ticket)> = Vec::new();
        if policy.within_queue == WithinQueue::LowerPriority {
            for t in &self.queues[q].admitted {
                let r = &self.admitted[t];
                if r.workload.priority < w.priority {
                    candidates.push((false, r.workload.priority, r.start_s, *t));
                }
            }
        }
        if policy.reclaim_within_cohort != ReclaimWithinCohort::Never
            && let Some(c) = self.queues[q].cohort
        {
            for &q2 in &self.cohorts[c].queues {
                if q2 == q {
                    continue;
                }
                for t in &self.queues[q2].admitted {
                    let r = &self.admitted[t];
                    if policy.reclaim_within_cohort == ReclaimWithinCohort::Any || r.workload.priority < w.priority {
                        candidates.push((true, r.workload.priority, r.start_s, *t));
                    }
                }
            }
        }
        // Reclaims first, then lowest priority, then most recently started.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(b.2.total_cmp(&a.2)).then(b.3.cmp(&a.3)));
        let mut removed: Vec<(Ticket, bool, Running)> = Vec::new();
        let acceptable =
            |fit: &Fit, removed: &[(Ticket, bool, Running)]| !(fit.borrowing && removed.iter().any(|r| r.1));
        let mut found = false;
        for (reclaim, _, _, t) in candidates {
            if reclaim {
                let r = &self.admitted[&t];
                if !self.borrowing(r.queue, r.flavor) {
                    continue;
                }
            }
            if let Some(run) = self.release(t) {
                removed.push((t, reclaim, run));
            }
            if self.fit(w, q, &self.free).is_ok_and(|f| acceptable(&f, &removed)) {
                found = true;
                break;
            }
        }
        if !found {
            for (t, _, run) in removed.into_iter().rev() {
                self.occupy(t, run);
            }
            return None;
        }
        // Minimality: give back every victim that is not needed after all.
        let mut victims = Vec::new();
        let mut kept: Vec<(Ticket, bool, Running)> = Vec::new();
        while let Some((t, reclaim, run)) = removed.pop() {
            let backup = run.clone();
            self.occupy(t, run);
            let any_reclaim = kept.iter().chain(removed.iter()).any(|r| r.1);
            let still = self.fit(w, q, &self.free).is_ok_and(|f| !(f.borrowing && any_reclaim));
            if still {
                continue;
            }
            if let Some(run) = self.release(t) {
                kept.push((t, reclaim, run));
            } else {
                kept.push((t, reclaim, backup));
            }
        }
        let fit = match self.fit(w, q, &self.free) {
            Ok(fit) => fit,
            Err(_) => {
                for (t, _, run) in kept {
                    self.occupy(t, run);
                }
                return None;
            }
        };
        // Victims go back to the caller, which requeues them; restore them so
        // that `release` in the caller frees them exactly once.
        for (t, reclaim, run) in kept {
            self.occupy(t, run);
            victims.push((t, reclaim));
        }
        Some((victims, fit))
    }
}

fn total(want: &Want) -> Resources {
    want.iter().fold(Resources::ZERO, |acc, (_, pod, n)| acc.plus(pod.times(u64::from(*n))))
}

fn dim_index(name: &str) -> usize {
    Resources::NAMES.iter().position(|n| *n == name).unwrap_or(0)
}
