//! [`Tenancy`]: the decision index and the durable store, kept in step.
//!
//! Every change is decided first (by the pure [`Policy`]), then written to the
//! [`PolicyStore`], then applied to the in-memory index — so a refused change
//! touches nothing, and a failed write leaves the index as the store is. This
//! is what a server or the CLI holds; the layer reads the same shared policy.

use std::sync::{Arc, RwLock};

use crate::authz::{Decision, Policy, Request};
use crate::profile::Profile;
use crate::role::{Role, RoleTable};
use crate::store::{PolicyStore, load_policy};
use crate::subject::{Identity, Subject};
use crate::{Error, Result};

/// A store plus the policy loaded from it.
pub struct Tenancy<S> {
    store: S,
    policy: Arc<RwLock<Policy>>,
}

impl<S> std::fmt::Debug for Tenancy<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy").finish_non_exhaustive()
    }
}

/// A refused change, with the decision that refused it.
fn refused(decision: Decision) -> Error {
    Error::Forbidden { reason: decision.reason.to_string() }
}

impl<S: PolicyStore> Tenancy<S> {
    /// Loads the policy from `store`.
    pub async fn load(store: S, roles: RoleTable, cluster_admins: &[Subject]) -> Result<Self> {
        let policy = load_policy(&store, roles, cluster_admins).await?;
        Ok(Tenancy { store, policy: Arc::new(RwLock::new(policy)) })
    }

    /// The shared policy, for a [`TenancyLayer`](crate::layer) or for reads.
    pub fn policy(&self) -> Arc<RwLock<Policy>> {
        Arc::clone(&self.policy)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Policy> {
        self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Policy> {
        self.policy.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides a request against the current policy.
    pub fn check(&self, request: &Request<'_>) -> Decision {
        self.read().decide(request)
    }

    /// Registers a validated profile: its namespace and owner. Refuses to take
    /// over a namespace that another owner already holds, as the profile
    /// controller does.
    pub async fn create_profile(&self, profile: &Profile) -> Result<()> {
        profile.validate()?;
        let namespace = profile.namespace().unwrap_or_default().to_string();
        let owner = profile.owner_subject()?;
        let existing = self.store.namespaces().await?.into_iter().find(|r| r.namespace == namespace);
        if let Some(record) = existing
            && record.owner != owner
        {
            return Err(Error::Conflict {
                what: format!("namespace {namespace:?} already exists, owned by {}", record.owner),
            });
        }
        self.store.put_namespace(&namespace, &owner).await?;
        self.write().set_owner(&namespace, owner);
        Ok(())
    }

    /// Grants `role` to `grantee` in `namespace` if `actor` may.
    pub async fn grant(&self, actor: &Identity, namespace: &str, grantee: &Subject, role: Role) -> Result<Decision> {
        let decision = self.read().decide_grant(actor, namespace, grantee, role);
        if !decision.allowed {
            return Err(refused(decision));
        }
        if !self.read().has_namespace(namespace) {
            return Err(Error::NotFound { what: format!("namespace {namespace:?}") });
        }
        self.store.put_binding(namespace, grantee, role).await?;
        self.write().bind(namespace, grantee.clone(), role);
        Ok(decision)
    }

    /// Removes `grantee`'s binding in `namespace` if `actor` may; whether there was one.
    pub async fn revoke(&self, actor: &Identity, namespace: &str, grantee: &Subject) -> Result<bool> {
        let decision = self.read().decide_revoke(actor, namespace, grantee);
        if !decision.allowed {
            return Err(refused(decision));
        }
        let removed = self.store.delete_binding(namespace, grantee).await?;
        self.write().unbind(namespace, grantee);
        Ok(removed)
    }

    /// Every namespace with its owner and bindings, as stored.
    pub async fn profiles(&self) -> Result<Vec<crate::store::NamespaceRecord>> {
        self.store.namespaces().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Verb;
    use crate::store::MemoryPolicyStore;
    use serde_json::json;

    fn profile(name: &str, owner: &str) -> Profile {
        Profile::from_value(json!({
            "apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": name},
            "spec": {"owner": {"kind": "User", "name": owner}},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn changes_are_decided_then_stored_then_applied() {
        let t = Tenancy::load(MemoryPolicyStore::new(), RoleTable::default(), &[]).await.unwrap();
        t.create_profile(&profile("team-a", "alice")).await.unwrap();
        let alice = Identity::user("alice");
        let bob = Subject::User("bob".into());
        t.grant(&alice, "team-a", &bob, Role::Edit).await.unwrap();
        let bob_id = Identity::user("bob");
        let write = Request { identity: &bob_id, namespace: "team-a", verb: Verb::Create, resource: "runs" };
        assert!(t.check(&write).allowed);

        // bob (edit) may not grant; nothing is stored or applied
        let err = t.grant(&bob_id, "team-a", &Subject::User("carol".into()), Role::View).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden { .. }), "{err}");
        assert_eq!(t.profiles().await.unwrap()[0].bindings.len(), 1);

        assert!(t.revoke(&alice, "team-a", &bob).await.unwrap());
        assert!(!t.check(&write).allowed);
    }

    #[tokio::test]
    async fn a_namespace_cannot_be_taken_over() {
        let t = Tenancy::load(MemoryPolicyStore::new(), RoleTable::default(), &[]).await.unwrap();
        t.create_profile(&profile("team-a", "alice")).await.unwrap();
        t.create_profile(&profile("team-a", "alice")).await.unwrap(); // idempotent for the same owner
        let err = t.create_profile(&profile("team-a", "mallory")).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
    }

    #[tokio::test]
    async fn policy_reloads_from_the_store() {
        let store = MemoryPolicyStore::new();
        store.put_namespace("ns", &Subject::User("o".into())).await.unwrap();
        store.put_binding("ns", &Subject::Group("g".into()), Role::View).await.unwrap();
        let t = Tenancy::load(store, RoleTable::default(), &[Subject::User("root".into())]).await.unwrap();
        let member = Identity::user("x").with_group("g");
        assert!(t.check(&Request { identity: &member, namespace: "ns", verb: Verb::Get, resource: "runs" }).allowed);
        let root = Identity::user("root");
        assert!(t.check(&Request { identity: &root, namespace: "any", verb: Verb::Delete, resource: "x" }).allowed);
    }
}
