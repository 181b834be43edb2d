//! The scheduler's world as plain data: nodes and their topology, queues with
//! quotas and cohorts, and workloads (gangs of pod sets). This module owns the
//! shapes and their validation; it never decides anything (that is
//! [`super::GangScheduler`]) and never reads files or clocks.

use std::collections::BTreeMap;

use super::resources::Resources;
use crate::{Error, Result};

/// The topology level of a single node, as Kueue names it.
pub const NODE_LEVEL: &str = "kubernetes.io/hostname";
/// The flavor of nodes and quotas that do not name one.
pub const DEFAULT_FLAVOR: &str = "default";

/// A node that pods can be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique name.
    pub name: String,
    /// Resource flavor (e.g. a GPU model); quotas are per flavor.
    pub flavor: String,
    /// What pods may use in total.
    pub allocatable: Resources,
    /// Labels; the topology levels are read from them.
    pub labels: BTreeMap<String, String>,
}

impl Node {
    /// A node of the default flavor without labels.
    pub fn new(name: impl Into<String>, allocatable: Resources) -> Node {
        Node { name: name.into(), flavor: DEFAULT_FLAVOR.to_string(), allocatable, labels: BTreeMap::new() }
    }

    /// Sets a label (a topology level value, e.g. `("rack", "r1")`).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Node {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the flavor.
    pub fn with_flavor(mut self, flavor: impl Into<String>) -> Node {
        self.flavor = flavor.into();
        self
    }
}

/// A topology domain: the nodes that share the label values of every level
/// down to one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Label values from the outermost level down to this one.
    pub values: Vec<String>,
    /// Indexes of its nodes in [`Cluster::nodes`], ascending.
    pub nodes: Vec<usize>,
}

/// Nodes plus their topology, indexed for placement.
///
/// `levels` are node label keys from the outermost (e.g. `block`) to the
/// innermost (e.g. `rack`); the node itself ([`NODE_LEVEL`]) is always the
/// innermost level and the whole cluster the outermost. Building is
/// O(N·L·log N) for N nodes and L levels.
///
/// ```
/// use kf_train::scheduler::{Cluster, Node, Resources};
/// let nodes = (0..4).map(|i| Node::new(format!("n{i}"), Resources::gpus(8)).with_label("rack", format!("r{}", i / 2)));
/// let cluster = Cluster::new(nodes.collect(), vec!["rack".into()])?;
/// assert_eq!(cluster.domains("rack").map(|d| d.len()), Some(2));
/// assert_eq!(cluster.capacity(), Resources::gpus(32));
/// # Ok::<(), kf_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    nodes: Vec<Node>,
    levels: Vec<String>,
    /// `[level][node]` → domain index at that level.
    node_domain: Vec<Vec<usize>>,
    /// `[level][domain]`.
    domains: Vec<Vec<Domain>>,
    flavors: Vec<String>,
    node_flavor: Vec<usize>,
    capacity: Resources,
}

impl Cluster {
    /// Builds the cluster. Errors (`Error::Invalid`) on duplicate node names,
    /// duplicate levels, or a node that lacks the label of a level.
    pub fn new(nodes: Vec<Node>, levels: Vec<String>) -> Result<Cluster> {
        let mut seen = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate() {
            if let Some(first) = seen.insert(node.name.as_str(), i) {
                return Err(invalid(
                    format!("nodes[{i}].name"),
                    format!("duplicate node name {:?} (also nodes[{first}])", node.name),
                ));
            }
        }
        for (i, level) in levels.iter().enumerate() {
            if level == NODE_LEVEL || levels[..i].contains(level) {
                return Err(invalid(format!("levels[{i}]"), format!("duplicate topology level {level:?}")));
            }
        }
        let mut node_domain = Vec::with_capacity(levels.len());
        let mut domains = Vec::with_capacity(levels.len());
        for depth in 0..levels.len() {
            let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
            let mut level_domains: Vec<Domain> = Vec::new();
            let mut of_node = Vec::with_capacity(nodes.len());
            for (i, node) in nodes.iter().enumerate() {
                let mut values = Vec::with_capacity(depth + 1);
                for level in &levels[..=depth] {
                    let Some(v) = node.labels.get(level) else {
                        return Err(invalid(
                            format!("nodes[{i}].labels"),
                            format!("node {:?} has no label {level:?}, a topology level", node.name),
                        ));
                    };
                    values.push(v.clone());
                }
                let d = *index.entry(values.clone()).or_insert_with(|| {
                    level_domains.push(Domain { values, nodes: Vec::new() });
                    level_domains.len() - 1
                });
                level_domains[d].nodes.push(i);
                of_node.push(d);
            }
            node_domain.push(of_node);
            domains.push(level_domains);
        }
        let mut flavors: Vec<String> = Vec::new();
        let mut node_flavor = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let f = match flavors.iter().position(|f| *f == node.flavor) {
                Some(f) => f,
                None => {
                    flavors.push(node.flavor.clone());
                    flavors.len() - 1
                }
            };
            node_flavor.push(f);
        }
        let capacity = nodes.iter().fold(Resources::ZERO, |acc, n| acc.plus(n.allocatable));
        Ok(Cluster { nodes, levels, node_domain, domains, flavors, node_flavor, capacity })
    }

    /// `nodes` identical nodes of `gpus_per_node` GPUs (no CPU or memory
    /// dimension), named `node-0` … and without topology: the cluster shape
    /// of `kf train simulate --nodes N --gpus-per-node G`.
    pub fn uniform(nodes: usize, gpus_per_node: u64) -> Cluster {
        let nodes = (0..nodes).map(|i| Node::new(format!("node-{i}"), Resources::gpus(gpus_per_node))).collect();
        Cluster::with_groups(nodes, &[]).unwrap_or_else(|_| Cluster::empty())
    }

    /// Like [`Cluster::uniform`], with topology levels made of consecutive
    /// nodes: `groups` lists `(level, nodes per domain)` from the outermost
    /// level in, e.g. `[("block", 16), ("rack", 4)]`.
    pub fn with_groups(mut nodes: Vec<Node>, groups: &[(String, usize)]) -> Result<Cluster> {
        for (j, (level, size)) in groups.iter().enumerate() {
            if *size == 0 {
                return Err(invalid(format!("topology[{j}]"), format!("level {level:?} must group at least one node")));
            }
            for (i, node) in nodes.iter_mut().enumerate() {
                node.labels.insert(level.clone(), format!("{level}-{}", i / size));
            }
        }
        Cluster::new(nodes, groups.iter().map(|(l, _)| l.clone()).collect())
    }

    fn empty() -> Cluster {
        Cluster {
            nodes: Vec::new(),
            levels: Vec::new(),
            node_domain: Vec::new(),
            domains: Vec::new(),
            flavors: Vec::new(),
            node_flavor: Vec::new(),
            capacity: Resources::ZERO,
        }
    }

    /// The nodes, in the order given.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Topology levels from the outermost in (without [`NODE_LEVEL`]).
    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    /// The domains of `level`, or `None` for an unknown level.
    pub fn domains(&self, level: &str) -> Option<&[Domain]> {
        let i = self.levels.iter().position(|l| l == level)?;
        Some(&self.domains[i])
    }

    /// Sum of every node's allocatable resources.
    pub fn capacity(&self) -> Resources {
        self.capacity
    }

    /// Sum of allocatable resources of nodes of `flavor`.
    pub fn flavor_capacity(&self, flavor: &str) -> Resources {
        match self.flavor_index(flavor) {
            Some(f) => self.flavor_nodes(f).fold(Resources::ZERO, |acc, n| acc.plus(self.nodes[n].allocatable)),
            None => Resources::ZERO,
        }
    }

    /// The distinct node flavors, in order of first appearance.
    pub fn flavors(&self) -> &[String] {
        &self.flavors
    }

    pub(crate) fn flavor_index(&self, flavor: &str) -> Option<usize> {
        self.flavors.iter().position(|f| f == flavor)
    }

    pub(crate) fn node_flavor(&self, node: usize) -> usize {
        self.node_flavor[node]
    }

    pub(crate) fn flavor_nodes(&self, flavor: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(move |&n| self.node_flavor[n] == flavor)
    }

    /// The domains of level index `depth` (0 = outermost).
    pub(crate) fn level_domains(&self, depth: usize) -> &[Domain] {
        &self.domains[depth]
    }

    pub(crate) fn node_domains(&self, depth: usize) -> &[usize] {
        &self.node_domain[depth]
    }

    /// Index of `level` in [`Cluster::levels`]; [`NODE_LEVEL`] is `levels().len()`.
    pub(crate) fn level_index(&self, level: &str) -> Option<usize> {
        if level == NODE_LEVEL { Some(self.levels.len()) } else { self.levels.iter().position(|l| l == level) }
    }
}

/// How much of a flavor a queue may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorQuota {
    /// Node flavor this quota is for.
    pub flavor: String,
    /// Guaranteed quota.
    pub nominal: Resources,
    /// How much more than `nominal` the queue may borrow from its cohort;
    /// `None`: as much as the cohort lends.
    pub borrowing_limit: Option<Resources>,
    /// How much of `nominal` the cohort may borrow while unused; `None`: all of it.
    pub lending_limit: Option<Resources>,
}

impl FlavorQuota {
    /// A quota without borrowing or lending limits.
    pub fn new(flavor: impl Into<String>, nominal: Resources) -> FlavorQuota {
        FlavorQuota { flavor: flavor.into(), nominal, borrowing_limit: None, lending_limit: None }
    }

    /// The part of `nominal` that others in the cohort can never borrow.
    pub(crate) fn guaranteed(&self) -> Resources {
        match self.lending_limit {
            Some(l) => self.nominal.minus(l.min(self.nominal)),
            None => Resources::ZERO,
        }
    }

    /// The part of `nominal` the cohort may borrow.
    pub(crate) fn lendable(&self) -> Resources {
        self.lending_limit.map_or(self.nominal, |l| l.min(self.nominal))
    }
}

/// Whom a workload that does not fit may preempt in its own queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WithinQueue {
    /// Nobody (Kueue's default).
    #[default]
    Never,
    /// Admitted workloads of its queue with a strictly lower priority.
    LowerPriority,
}

/// Whom a workload may preempt in other queues of its cohort to get back
/// quota they borrowed from its queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReclaimWithinCohort {
    /// Nobody (Kueue's default).
    #[default]
    Never,
    /// Borrowing workloads with a strictly lower priority.
    LowerPriority,
    /// Any borrowing workload.
    Any,
}

/// A queue's preemption policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preemption {
    /// Preemption inside the queue.
    pub within_queue: WithinQueue,
    /// Reclaiming lent quota from the cohort.
    pub reclaim_within_cohort: ReclaimWithinCohort,
}

/// A queue (Kueue's ClusterQueue): quota per flavor, an optional cohort it
/// borrows from and lends to, and a preemption policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// Unique name.
    pub name: String,
    /// Cohort shared with other queues.
    pub cohort: Option<String>,
    /// Quotas, in the order flavors are tried.
    pub flavors: Vec<FlavorQuota>,
    /// Preemption policy.
    pub preemption: Preemption,
    /// Fair-sharing weight (dominant resource fairness divides shares by it).
    pub weight: f64,
}

impl Queue {
    /// A queue with one quota on `flavor`.
    pub fn new(name: impl Into<String>, flavor: impl Into<String>, nominal: Resources) -> Queue {
        Queue {
            name: name.into(),
            cohort: None,
            flavors: vec![FlavorQuota::new(flavor, nominal)],
            preemption: Preemption::default(),
            weight: 1.0,
        }
    }

    /// A queue that may use all of the default flavor.
    pub fn unlimited(name: impl Into<String>) -> Queue {
        Queue::new(name, DEFAULT_FLAVOR, Resources::UNLIMITED)
    }

    /// Puts the queue in a cohort.
    pub fn in_cohort(mut self, cohort: impl Into<String>) -> Queue {
        self.cohort = Some(cohort.into());
        self
    }

    /// Sets the preemption policy.
    pub fn with_preemption(mut self, preemption: Preemption) -> Queue {
        self.preemption = preemption;
        self
    }

    pub(crate) fn validate(&self, path: &str) -> Result<()> {
        if self.name.is_empty() {
            return Err(invalid(format!("{path}.name"), "expected a non-empty queue name".into()));
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(invalid(
                format!("{path}.weight"),
                format!("expected a positive weight, found {}", self.weight),
            ));
        }
        for (i, f) in self.flavors.iter().enumerate() {
            if self.flavors[..i].iter().any(|g| g.flavor == f.flavor) {
                return Err(invalid(format!("{path}.flavors[{i}].flavor"), format!("duplicate flavor {:?}", f.flavor)));
            }
        }
        Ok(())
    }
}

/// Whether a topology level is a hard constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyMode {
    /// The gang must fit in one domain of the level (or a smaller one).
    Required,
    /// Try one domain of the level first, then larger ones.
    Preferred,
}

/// Where a gang wants to be packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyRequest {
    /// A level of the cluster, or [`NODE_LEVEL`].
    pub level: String,
    /// Hard or soft.
    pub mode: TopologyMode,
}

/// Identical pods of a workload (one replicated job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSetRequest {
    /// Name (e.g. the replicated job).
    pub name: String,
    /// Pods wanted.
    pub count: u32,
    /// Fewest pods the workload can run with (elastic jobs); `None`: `count`.
    pub min_count: Option<u32>,
    /// Requests of each pod.
    pub per_pod: Resources,
}

impl PodSetRequest {
    /// `count` pods of `per_pod`.
    pub fn new(name: impl Into<String>, count: u32, per_pod: Resources) -> PodSetRequest {
        PodSetRequest { name: name.into(), count, min_count: None, per_pod }
    }
}

/// A gang: pod sets admitted all together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Name users know it by.
    pub id: String,
    /// Name of its [`Queue`].
    pub queue: String,
    /// Higher runs first and may preempt lower.
    pub priority: i32,
    /// Submission time, seconds.
    pub submit_s: f64,
    /// Requested (expected) run time, seconds, for backfill and SJF.
    pub duration_s: Option<f64>,
    /// The pod sets.
    pub pod_sets: Vec<PodSetRequest>,
    /// Packing constraint.
    pub topology: Option<TopologyRequest>,
}

impl Workload {
    /// A one-pod-set workload at priority 0.
    pub fn new(
        id: impl Into<String>,
        queue: impl Into<String>,
        submit_s: f64,
        pod_sets: Vec<PodSetRequest>,
    ) -> Workload {
        Workload {
            id: id.into(),
            queue: queue.into(),
            priority: 0,
            submit_s,
            duration_s: None,
            pod_sets,
            topology: None,
        }
    }

    /// Sets the requested run time.
    pub fn with_duration(mut self, seconds: f64) -> Workload {
        self.duration_s = Some(seconds);
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Workload {
        self.priority = priority;
        self
    }

    /// Sets the topology request.
    pub fn with_topology(mut self, level: impl Into<String>, mode: TopologyMode) -> Workload {
        self.topology = Some(TopologyRequest { level: level.into(), mode });
        self
    }

    /// Total requests at full size.
    pub fn total(&self) -> Resources {
        self.pod_sets.iter().fold(Resources::ZERO, |acc, ps| acc.plus(ps.per_pod.times(u64::from(ps.count))))
    }

    /// Checks the shape: pod sets present, counts ≥ 1, `min_count` within
    /// `1..=count`, finite times. The first problem, with its path.
    pub fn validate(&self) -> Result<()> {
        let at = |field: &str| format!("workload {:?}.{field}", self.id);
        if self.pod_sets.is_empty() {
            return Err(invalid(at("podSets"), "expected at least one pod set".into()));
        }
        for (i, ps) in self.pod_sets.iter().enumerate() {
            if ps.count == 0 {
                return Err(invalid(at(&format!("podSets[{i}].count")), "expected at least one pod, found 0".into()));
            }
            if let Some(m) = ps.min_count
                && (m == 0 || m > ps.count)
            {
                return Err(invalid(
                    at(&format!("podSets[{i}].minCount")),
                    format!("expected 1..={}, found {m}", ps.count),
                ));
            }
        }
        if !self.submit_s.is_finite() {
            return Err(invalid(at("submit_s"), format!("expected a finite time, found {}", self.submit_s)));
        }
        if let Some(d) = self.duration_s
            && !(d.is_finite() && d >= 0.0)
        {
            return Err(invalid(at("duration_s"), format!("expected a finite duration ≥ 0, found {d}")));
        }
        Ok(())
    }
}

pub(crate) fn invalid(path: String, message: String) -> Error {
    Error::Invalid { path, message }
}
