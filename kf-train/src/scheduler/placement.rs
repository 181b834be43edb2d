//! Topology-aware gang placement: where the pods of one gang go, or `None`.
//! It reads free capacity and never changes it (the cycle commits), and knows
//! nothing of quotas or order.
//!
//! The search goes from the smallest domain to the largest: one node, then
//! each topology level from the innermost (rack) to the outermost (block),
//! then the whole cluster. At each level the candidate domains are those
//! whose free total covers the gang, tried from the least free up (best fit,
//! so larger domains stay whole for larger gangs). A required level stops the
//! search there: the gang is never spread wider.
//!
//! Inside a domain, pod sets are placed largest pod first, each onto the
//! domain's nodes with the most free capacity first (fewest nodes per gang).
//! For gangs of one pod shape this is exact: the gang fits iff
//! Σ ⌊free/pod⌋ ≥ count. Cost: O(log N) when the gang fits one node,
//! otherwise O(L·D·log D + N·log N) for L levels of D domains and N nodes.

use super::free::FreeMap;
use super::model::Cluster;
use super::resources::Resources;

/// What a gang asks for: `(pod set index, per-pod requests, pods)`.
pub(crate) type Want = [(usize, Resources, u32)];

/// The domain a gang was packed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainRef {
    /// One node (index into [`super::Cluster::nodes`]).
    Node(usize),
    /// A domain of a topology level: `depth` 0 is the outermost level.
    Domain {
        /// Index into [`super::Cluster::levels`].
        depth: usize,
        /// Index into that level's domains.
        index: usize,
    },
    /// Spread over the cluster.
    Cluster,
}

/// Pods per node: `(pod set index, node, pods)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) groups: Vec<(usize, usize, u32)>,
    pub(crate) domain: DomainRef,
}

/// Places `want` on nodes of `flavor`. `required_depth`: the gang must fit in
/// one domain at that depth (`cluster.levels().len()` = one node).
pub(crate) fn place(
    cluster: &Cluster,
    free: &FreeMap,
    flavor: usize,
    want: &Want,
    required_depth: Option<usize>,
) -> Option<Placed> {
    let total = want.iter().fold(Resources::ZERO, |acc, (_, pod, n)| acc.plus(pod.times(u64::from(*n))));
    if !total.fits_in(&free.flavor_free(flavor)) {
        return None;
    }
    if let Some(node) = free.best_single(cluster, flavor, total) {
        let groups = want.iter().filter(|w| w.2 > 0).map(|&(set, _, n)| (set, node, n)).collect();
        return Some(Placed { groups, domain: DomainRef::Node(node) });
    }
    let levels = cluster.levels().len();
    if required_depth.is_some_and(|d| d >= levels) {
        return None;
    }
    // One pod shape: the whole cluster must hold `count` copies, else no
    // domain does. O(N) without allocating, before any domain search.
    if let [(_, pod, count)] = want {
        let mut copies = 0u64;
        for n in cluster.flavor_nodes(flavor) {
            copies = copies.saturating_add(pod.copies_in(&free.free(n)));
            if copies >= u64::from(*count) {
                break;
            }
        }
        if copies < u64::from(*count) {
            return None;
        }
    }
    for depth in (0..levels).rev() {
        if required_depth.is_some_and(|r| depth < r) {
            return None;
        }
        let domains = cluster.level_domains(depth);
        let mut candidates: Vec<(Resources, usize)> =
            (0..domains.len()).map(|d| (free.domain_free(depth, d), d)).filter(|(f, _)| total.fits_in(f)).collect();
        candidates.sort_by_key(|&(f, d)| (f.gpus, f.cpu_milli, f.memory_mib, d));
        for (_, d) in candidates {
            let nodes = domains[d].nodes.iter().copied().filter(|&n| cluster.node_flavor(n) == flavor);
            if let Some(groups) = pack(free, nodes, want) {
                return Some(Placed { groups, domain: DomainRef::Domain { depth, index: d } });
            }
        }
    }
    if required_depth.is_some() {
        return None;
    }
    let nodes = cluster.flavor_nodes(flavor);
    pack(free, nodes, want).map(|groups| Placed { groups, domain: DomainRef::Cluster })
}

/// Greedy packing inside one domain.
fn pack(free: &FreeMap, nodes: impl Iterator<Item = usize>, want: &Want) -> Option<Vec<(usize, usize, u32)>> {
    let mut local: Vec<(usize, Resources)> = nodes.map(|n| (n, free.free(n))).filter(|(_, f)| !f.is_zero()).collect();
    local.sort_by(|a, b| {
        (b.1.gpus, b.1.cpu_milli, b.1.memory_mib, a.0).cmp(&(a.1.gpus, a.1.cpu_milli, a.1.memory_mib, b.0))
    });
    let mut order: Vec<usize> = (0..want.len()).collect();
    order.sort_by_key(|&i| {
        let p = want[i].1;
        (std::cmp::Reverse((p.gpus, p.cpu_milli, p.memory_mib)), i)
    });
    let mut groups = Vec::new();
    for i in order {
        let (set, pod, count) = want[i];
        let mut remaining = u64::from(count);
        for (node, f) in local.iter_mut() {
            if remaining == 0 {
                break;
            }
            let k = pod.copies_in(f).min(remaining);
            if k > 0 {
                *f = f.minus(pod.times(k));
                remaining -= k;
                groups.push((set, *node, k as u32));
            }
        }
        if remaining > 0 {
            return None;
        }
    }
    Some(groups)
}
