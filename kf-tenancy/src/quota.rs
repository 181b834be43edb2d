//! The quota ledger: admits or rejects resource requests against each
//! namespace's hard limits, all-or-nothing, safe under concurrent callers.
//!
//! Resource names follow Kubernetes `ResourceQuota`: `cpu`, `memory`,
//! `nvidia.com/gpu`, `count/trainjobs`, `pods`… A `requests.` prefix is the
//! same resource (`requests.cpu` is `cpu`), as in Kubernetes. Resources without
//! a hard limit, and namespaces without a quota, are unlimited but still counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::quantity::Quantity;
use crate::{Error, Result};

/// Resource name → amount.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Proof that a request was admitted; give it back with [`QuotaLedger::release`]
/// when the workload ends.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an admission holds quota until it is released"]
pub struct Admission {
    namespace: String,
    amounts: ResourceList,
}

impl Admission {
    /// The namespace charged.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// What was charged, by normalised resource name.
    pub fn amounts(&self) -> &ResourceList {
        &self.amounts
    }
}

#[derive(Debug, Default)]
struct Account {
    hard: ResourceList,
    used: ResourceList,
}

/// Per-namespace quota accounting.
///
/// ```
/// use kf_tenancy::{Quantity, QuotaLedger};
///
/// let ledger = QuotaLedger::new();
/// ledger.set_quota("team-a", [("cpu".to_string(), Quantity::parse("2")?)].into());
/// let one_cpu = [("requests.cpu".to_string(), Quantity::parse("1")?)].into();
/// let a = ledger.try_admit("team-a", &one_cpu)?;
/// let b = ledger.try_admit("team-a", &one_cpu)?;
/// assert!(ledger.try_admit("team-a", &one_cpu).is_err()); // 3 > 2
/// ledger.release(a);
/// let _c = ledger.try_admit("team-a", &one_cpu)?;
/// # ledger.release(b);
/// # Ok::<(), kf_tenancy::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct QuotaLedger {
    accounts: Mutex<HashMap<String, Account>>,
}

/// `requests.cpu` → `cpu`; other names unchanged.
fn normalise(resource: &str) -> &str {
    resource.strip_prefix("requests.").unwrap_or(resource)
}

fn normalise_list(list: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (name, amount) in list {
        let entry = out.entry(normalise(name).to_string()).or_insert(Quantity::ZERO);
        *entry = entry.checked_add(*amount).unwrap_or(*entry);
    }
    out
}

impl QuotaLedger {
    /// An empty ledger: every namespace is unlimited until given a quota.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        // Every update below is checked before it is applied, so a panic in
        // another thread cannot leave a half-applied admission behind.
        self.accounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets (replaces) a namespace's hard limits. Lowering a limit below current
    /// use admits nothing more until enough is released; nothing is evicted.
    pub fn set_quota(&self, namespace: &str, hard: ResourceList) {
        self.lock().entry(namespace.to_string()).or_default().hard = normalise_list(&hard);
    }

    /// Charges `request` to `namespace` if every resource fits under its hard
    /// limit; otherwise charges nothing and names the first resource that does
    /// not fit. Negative amounts are rejected. O(resources).
    pub fn try_admit(&self, namespace: &str, request: &ResourceList) -> Result<Admission> {
        let amounts = normalise_list(request);
        if let Some((name, amount)) = amounts.iter().find(|(_, a)| **a < Quantity::ZERO) {
            return Err(Error::Invalid {
                path: format!("resources.{name}"),
                message: format!("expected a non-negative amount, found {amount}"),
            });
        }
        let mut accounts = self.lock();
        let account = accounts.entry(namespace.to_string()).or_default();
        let mut updated = Vec::with_capacity(amounts.len());
        for (name, amount) in &amounts {
            let used = account.used.get(name).copied().unwrap_or_default();
            let total = used.checked_add(*amount);
            let limit = account.hard.get(name);
            match (total, limit) {
                (Some(total), Some(limit)) if total > *limit => {
                    return Err(Error::QuotaExceeded {
                        namespace: namespace.to_string(),
                        resource: name.clone(),
                        requested: amount.to_string(),
                        used: used.to_string(),
                        limit: limit.to_string(),
                    });
                }
                (Some(total), _) => updated.push((name.clone(), total)),
                (None, _) => {
                    return Err(Error::Invalid {
                        path: format!("resources.{name}"),
                        message: format!("amount {amount} overflows the ledger"),
                    });
                }
            }
        }
        account.used.extend(updated);
        Ok(Admission { namespace: namespace.to_string(), amounts })
    }

    /// Returns an admission's resources to its namespace.
    pub fn release(&self, admission: Admission) {
        let mut accounts = self.lock();
        let Some(account) = accounts.get_mut(&admission.namespace) else {
            return;
        };
        for (name, amount) in admission.amounts {
            if let Some(used) = account.used.get_mut(&name) {
                *used = used.saturating_sub(amount).max(Quantity::ZERO);
            }
        }
    }

    /// Current use of a namespace, by normalised resource name.
    pub fn used(&self, namespace: &str) -> ResourceList {
        self.lock().get(namespace).map(|a| a.used.clone()).unwrap_or_default()
    }

    /// Hard limits of a namespace, by normalised resource name.
    pub fn quota(&self, namespace: &str) -> ResourceList {
        self.lock().get(namespace).map(|a| a.hard.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn list(items: &[(&str, i64)]) -> ResourceList {
        items.iter().map(|(k, v)| (k.to_string(), Quantity::from_units(*v))).collect()
    }

    #[test]
    fn admission_is_all_or_nothing() {
        let ledger = QuotaLedger::new();
        ledger.set_quota("ns", list(&[("cpu", 4), ("nvidia.com/gpu", 1)]));
        let first = ledger.try_admit("ns", &list(&[("cpu", 2), ("nvidia.com/gpu", 1)])).unwrap();
        let err = ledger.try_admit("ns", &list(&[("cpu", 1), ("nvidia.com/gpu", 1)])).unwrap_err();
        assert!(err.to_string().contains("nvidia.com/gpu"), "{err}");
        assert_eq!(
            ledger.used("ns"),
            list(&[("cpu", 2), ("nvidia.com/gpu", 1)]),
            "the CPU of the refused request was not charged"
        );
        ledger.release(first);
        assert_eq!(ledger.used("ns"), list(&[("cpu", 0), ("nvidia.com/gpu", 0)]));
    }

    #[test]
    fn requests_prefix_is_the_same_resource() {
        let ledger = QuotaLedger::new();
        ledger.set_quota("ns", list(&[("requests.cpu", 1)]));
        let _a = ledger.try_admit("ns", &list(&[("cpu", 1)])).unwrap();
        assert!(ledger.try_admit("ns", &list(&[("requests.cpu", 1)])).is_err());
    }

    #[test]
    fn unlimited_resources_are_counted_and_negative_requests_refused() {
        let ledger = QuotaLedger::new();
        let _a = ledger.try_admit("free", &list(&[("count/trainjobs", 3)])).unwrap();
        assert_eq!(ledger.used("free"), list(&[("count/trainjobs", 3)]));
        assert!(ledger.try_admit("free", &list(&[("cpu", -1)])).is_err());
    }

    #[test]
    fn concurrent_callers_never_over_admit() {
        let ledger = Arc::new(QuotaLedger::new());
        ledger.set_quota("ns", list(&[("cpu", 10), ("memory", 64)]));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let ledger = Arc::clone(&ledger);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..500 {
                        let request = list(&[("cpu", 1 + (t + i) % 3), ("memory", 8)]);
                        if let Ok(a) = ledger.try_admit("ns", &request) {
                            held.push(a);
                        }
                        let used = ledger.used("ns");
                        assert!(used["cpu"] <= Quantity::from_units(10) && used["memory"] <= Quantity::from_units(64));
                        if i % 4 == 0
                            && let Some(a) = held.pop()
                        {
                            ledger.release(a);
                        }
                    }
                    held
                })
            })
            .collect();
        let held: Vec<Admission> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let held_cpu: i128 = held.iter().map(|a| a.amounts()["cpu"].milli()).sum();
        assert_eq!(ledger.used("ns")["cpu"].milli(), held_cpu, "the books balance");
        assert!(held_cpu <= 10_000);
    }

    proptest! {
        /// Any sequence of admits and releases keeps use within limits and
        /// equal to the sum of outstanding admissions.
        #[test]
        fn use_stays_within_limits_and_balances(
            limit in 0i64..20,
            ops in prop::collection::vec((any::<bool>(), 0i64..8), 0..60),
        ) {
            let ledger = QuotaLedger::new();
            ledger.set_quota("ns", list(&[("cpu", limit)]));
            let mut outstanding: Vec<Admission> = Vec::new();
            for (admit, amount) in ops {
                if admit || outstanding.is_empty() {
                    if let Ok(a) = ledger.try_admit("ns", &list(&[("cpu", amount)])) {
                        outstanding.push(a);
                    }
                } else if let Some(a) = outstanding.pop() {
                    ledger.release(a);
                }
                let used = ledger.used("ns").get("cpu").copied().unwrap_or_default();
                let sum: i128 = outstanding.iter().map(|a| a.amounts()["cpu"].milli()).sum();
                prop_assert!(used <= Quantity::from_units(limit));
                prop_assert_eq!(used.milli(), sum);
            }
        }
    }
}
