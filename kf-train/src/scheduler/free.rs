//! Free capacity per node, with the aggregates placement reads in O(1)
//! (per flavor, per topology domain) and an optional ordered index that finds
//! the best-fitting single node in O(log N + k). It owns bookkeeping only;
//! which node to choose is [`super::placement`]'s job.

use std::collections::BTreeSet;

use super::model::Cluster;
use super::resources::Resources;

/// Index key: best fit orders nodes by free GPUs, then CPU, then memory.
type Key = (u64, u64, u64, usize);

fn key(free: Resources, node: usize) -> Key {
    (free.gpus, free.cpu_milli, free.memory_mib, node)
}

/// Free resources of every node of a cluster.
#[derive(Debug, Clone)]
pub(crate) struct FreeMap {
    free: Vec<Resources>,
    flavor_free: Vec<Resources>,
    /// `[level depth][domain]`, summed over all flavors (an upper bound for one flavor).
    domain_free: Vec<Vec<Resources>>,
    /// `[flavor]` → ordered set of (free, node); `None` when not indexed.
    index: Option<Vec<BTreeSet<Key>>>,
}

impl FreeMap {
    /// Every node entirely free. O(N log N) with an index, O(N·L) without.
    pub(crate) fn allocatable(cluster: &Cluster, indexed: bool) -> FreeMap {
        let free: Vec<Resources> = cluster.nodes().iter().map(|n| n.allocatable).collect();
        FreeMap::from_free(cluster, free, indexed)
    }

    pub(crate) fn from_free(cluster: &Cluster, free: Vec<Resources>, indexed: bool) -> FreeMap {
        let mut flavor_free = vec![Resources::ZERO; cluster.flavors().len()];
        for (n, f) in free.iter().enumerate() {
            let fl = cluster.node_flavor(n);
            flavor_free[fl] = flavor_free[fl].plus(*f);
        }
        let domain_free = (0..cluster.levels().len())
            .map(|depth| {
                cluster
                    .level_domains(depth)
                    .iter()
                    .map(|d| d.nodes.iter().fold(Resources::ZERO, |acc, &n| acc.plus(free[n])))
                    .collect()
            })
            .collect();
        let index = indexed.then(|| {
            let mut index = vec![BTreeSet::new(); cluster.flavors().len()];
            for (n, f) in free.iter().enumerate() {
                index[cluster.node_flavor(n)].insert(key(*f, n));
            }
            index
        });
        FreeMap { free, flavor_free, domain_free, index }
    }

    pub(crate) fn free(&self, node: usize) -> Resources {
        self.free[node]
    }

    pub(crate) fn flavor_free(&self, flavor: usize) -> Resources {
        self.flavor_free.get(flavor).copied().unwrap_or(Resources::ZERO)
    }

    /// The most free GPUs on one node of `flavor` (indexed maps only;
    /// `u64::MAX`, "unknown", otherwise). O(log N).
    pub(crate) fn max_node_gpus(&self, flavor: usize) -> u64 {
        match &self.index {
            Some(index) => index.get(flavor).and_then(|s| s.last()).map_or(0, |k| k.0),
            None => u64::MAX,
        }
    }

    pub(crate) fn domain_free(&self, depth: usize, domain: usize) -> Resources {
        self.domain_free[depth][domain]
    }

    pub(crate) fn all_free(&self) -> &[Resources] {
        &self.free
    }

    /// Sets node `node`'s free resources, keeping every aggregate. O(L + log N).
    pub(crate) fn set(&mut self, cluster: &Cluster, node: usize, value: Resources) {
        let old = self.free[node];
        if old == value {
            return;
        }
        let fl = cluster.node_flavor(node);
        self.flavor_free[fl] = self.flavor_free[fl].minus(old).plus(value);
        for depth in 0..self.domain_free.len() {
            let d = cluster.node_domains(depth)[node];
            self.domain_free[depth][d] = self.domain_free[depth][d].minus(old).plus(value);
        }
        if let Some(index) = &mut self.index {
            index[fl].remove(&key(old, node));
            index[fl].insert(key(value, node));
        }
        self.free[node] = value;
    }

    pub(crate) fn take(&mut self, cluster: &Cluster, node: usize, amount: Resources) {
        let value = self.free[node].minus(amount);
        self.set(cluster, node, value);
    }

    pub(crate) fn give(&mut self, cluster: &Cluster, node: usize, amount: Resources) {
        let value = self.free[node].plus(amount);
        self.set(cluster, node, value);
    }

    /// The node of `flavor` with the least free GPUs (then CPU, memory)
    /// that still fits `want`; ties go to the lower node index.
    /// O(log N + k) indexed (k nodes skipped for CPU/memory), O(N) otherwise.
    pub(crate) fn best_single(&self, cluster: &Cluster, flavor: usize, want: Resources) -> Option<usize> {
        if let Some(index) = &self.index {
            let set = index.get(flavor)?;
            return set
                .range(key(want, 0)..)
                .find(|&&(_, cpu, mem, _)| cpu >= want.cpu_milli && mem >= want.memory_mib)
                .map(|&(_, _, _, n)| n);
        }
        let mut best: Option<(Key, usize)> = None;
        for (n, f) in self.free.iter().enumerate() {
            if cluster.node_flavor(n) == flavor && want.fits_in(f) {
                let k = key(*f, n);
                if best.is_none_or(|(b, _)| k < b) {
                    best = Some((k, n));
                }
            }
        }
        best.map(|(_, n)| n)
    }
}
