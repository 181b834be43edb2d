//! Durable policy: who owns each namespace and who is bound to which role.
//!
//! [`PolicyStore`] is the narrow persistence trait; [`MemoryPolicyStore`] is
//! the in-memory implementation. Every implementation runs the shared
//! conformance suite in [`crate::testing`]. Decisions are never made here: load
//! the records into a [`Policy`] with [`load_policy`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::authz::Policy;
use crate::role::{Role, RoleTable};
use crate::subject::Subject;
use crate::{Error, Result};

/// Everything stored about one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// Namespace name (the profile name).
    pub namespace: String,
    /// The profile owner.
    pub owner: Subject,
    /// Contributors and their roles, sorted by subject.
    pub bindings: Vec<(Subject, Role)>,
}

/// Persistence for namespace owners and role bindings.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Creates the namespace or changes its owner; keeps its bindings.
    async fn put_namespace(&self, namespace: &str, owner: &Subject) -> Result<()>;

    /// Deletes the namespace and all its bindings; whether it existed.
    async fn delete_namespace(&self, namespace: &str) -> Result<bool>;

    /// Binds `subject` to `role`, replacing its earlier role. The namespace
    /// must exist ([`Error::NotFound`] otherwise).
    async fn put_binding(&self, namespace: &str, subject: &Subject, role: Role) -> Result<()>;

    /// Removes the binding of `subject`; whether there was one.
    async fn delete_binding(&self, namespace: &str, subject: &Subject) -> Result<bool>;

    /// Every namespace with its bindings, sorted by namespace name.
    async fn namespaces(&self) -> Result<Vec<NamespaceRecord>>;
}

/// Builds the decision index from a store's records.
pub async fn load_policy(store: &dyn PolicyStore, roles: RoleTable, cluster_admins: &[Subject]) -> Result<Policy> {
    let mut policy = Policy::new(roles);
    for admin in cluster_admins {
        policy.add_cluster_admin(admin);
    }
    for record in store.namespaces().await? {
        policy.set_owner(&record.namespace, record.owner);
        for (subject, role) in record.bindings {
            policy.bind(&record.namespace, subject, role);
        }
    }
    Ok(policy)
}

/// Namespace → (owner, bindings).
type Namespaces = BTreeMap<String, (Subject, BTreeMap<Subject, Role>)>;

/// A [`PolicyStore`] in memory: for tests and single-process embedding.
#[derive(Debug, Default)]
pub struct MemoryPolicyStore {
    namespaces: Mutex<Namespaces>,
}

impl MemoryPolicyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Namespaces) -> T) -> Result<T> {
        // A poisoned lock means a panic mid-update elsewhere; the map itself is
        // always consistent (every update is a single insert or remove).
        let mut guard = self.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(f(&mut guard))
    }
}

#[async_trait]
impl PolicyStore for MemoryPolicyStore {
    async fn put_namespace(&self, namespace: &str, owner: &Subject) -> Result<()> {
        self.with(|map| {
            map.entry(namespace.to_string()).or_insert_with(|| (owner.clone(), BTreeMap::new())).0 = owner.clone();
        })
    }

    async fn delete_namespace(&self, namespace: &str) -> Result<bool> {
        self.with(|map| map.remove(namespace).is_some())
    }

    async fn put_binding(&self, namespace: &str, subject: &Subject, role: Role) -> Result<()> {
        self.with(|map| match map.get_mut(namespace) {
            Some((_, bindings)) => {
                bindings.insert(subject.clone(), role);
                Ok(())
            }
            None => Err(Error::NotFound { what: format!("namespace {namespace:?}") }),
        })?
    }

    async fn delete_binding(&self, namespace: &str, subject: &Subject) -> Result<bool> {
        self.with(|map| map.get_mut(namespace).is_some_and(|(_, bindings)| bindings.remove(subject).is_some()))
    }

    async fn namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        self.with(|map| {
            map.iter()
                .map(|(namespace, (owner, bindings))| NamespaceRecord {
                    namespace: namespace.clone(),
                    owner: owner.clone(),
                    bindings: bindings.iter().map(|(s, r)| (s.clone(), *r)).collect(),
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        crate::testing::policy_store_conformance(&MemoryPolicyStore::new()).await;
    }
}
