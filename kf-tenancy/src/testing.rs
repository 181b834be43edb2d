//! Conformance suites every implementation of this crate's traits must pass.
//!
//! Call them from your own backend's tests, on an empty store:
//!
//! ```
//! # async fn demo() {
//! kf_tenancy::testing::policy_store_conformance(&kf_tenancy::MemoryPolicyStore::new()).await;
//! # }
//! ```
//!
//! They panic with a message naming the broken guarantee.

use crate::authz::Request;
use crate::role::{Role, RoleTable, Verb};
use crate::store::{PolicyStore, load_policy};
use crate::subject::{Identity, Subject};

/// Checks a [`PolicyStore`]: create, replace, cascade on delete, isolation
/// between namespaces, errors for missing namespaces, sorted listing, and that
/// a policy loaded from it decides as the records say.
pub async fn policy_store_conformance(store: &dyn PolicyStore) {
    let alice = Subject::User("alice@example.com".into());
    let bob = Subject::User("bob@example.com".into());
    let ml = Subject::Group("ml-team".into());
    let sa = Subject::ServiceAccount { namespace: "team-a".into(), name: "default-editor".into() };

    assert!(store.namespaces().await.expect("list").is_empty(), "the suite needs an empty store");

    // a binding needs its namespace
    let err = store.put_binding("team-a", &bob, Role::Edit).await.expect_err("binding into a missing namespace");
    assert!(matches!(err, crate::Error::NotFound { .. }), "missing namespace must be NotFound, got {err}");

    store.put_namespace("team-b", &bob).await.expect("create team-b");
    store.put_namespace("team-a", &alice).await.expect("create team-a");
    store.put_binding("team-a", &bob, Role::View).await.expect("bind bob");
    store.put_binding("team-a", &bob, Role::Edit).await.expect("re-bind bob");
    store.put_binding("team-a", &ml, Role::View).await.expect("bind group");
    store.put_binding("team-a", &sa, Role::Edit).await.expect("bind service account");
    store.put_binding("team-b", &alice, Role::View).await.expect("bind alice in team-b");

    let records = store.namespaces().await.expect("list");
    let names: Vec<&str> = records.iter().map(|r| r.namespace.as_str()).collect();
    assert_eq!(names, ["team-a", "team-b"], "namespaces are listed sorted by name");
    let a = &records[0];
    assert_eq!(a.owner, alice);
    let bob_roles: Vec<Role> = a.bindings.iter().filter(|(s, _)| *s == bob).map(|(_, r)| *r).collect();
    assert_eq!(bob_roles, [Role::Edit], "a second binding of a subject replaces the first");
    assert_eq!(a.bindings.len(), 3, "team-a holds bob, the group and the service account");
    assert!(a.bindings.windows(2).all(|w| w[0].0 <= w[1].0), "bindings are sorted by subject");
    assert_eq!(records[1].bindings, vec![(alice.clone(), Role::View)], "namespaces do not share bindings");

    // changing the owner keeps the bindings
    store.put_namespace("team-a", &bob).await.expect("change owner");
    let records = store.namespaces().await.expect("list");
    assert_eq!(records[0].owner, bob);
    assert_eq!(records[0].bindings.len(), 3, "changing the owner keeps the bindings");

    // the loaded policy decides as the records say
    let policy = load_policy(store, RoleTable::default(), &[]).await.expect("load");
    let member = Identity::user("carol").with_group("ml-team");
    let read = Request { identity: &member, namespace: "team-a", verb: Verb::List, resource: "runs" };
    assert!(policy.decide(&read).allowed, "group binding loaded");
    assert!(!policy.decide(&Request { verb: Verb::Create, ..read }).allowed, "group role is view");

    assert!(store.delete_binding("team-a", &ml).await.expect("unbind"), "deleting an existing binding says so");
    assert!(!store.delete_binding("team-a", &ml).await.expect("unbind again"), "a second delete finds nothing");
    assert!(!store.delete_binding("nowhere", &ml).await.expect("unbind in missing ns"));

    assert!(store.delete_namespace("team-a").await.expect("delete ns"));
    assert!(!store.delete_namespace("team-a").await.expect("delete ns again"));
    store.put_namespace("team-a", &alice).await.expect("re-create team-a");
    let records = store.namespaces().await.expect("list");
    assert!(records[0].bindings.is_empty(), "deleting a namespace deletes its bindings");

    // leave the store empty again
    store.delete_namespace("team-a").await.expect("cleanup");
    store.delete_namespace("team-b").await.expect("cleanup");
    assert!(store.namespaces().await.expect("list").is_empty());
}
