//! The SQLite policy store: the shared conformance suite, on a file and in
//! memory, and durability across reopening.

use kf_tenancy::testing::policy_store_conformance;
use kf_tenancy::{PolicyStore, Role, SqlitePolicyStore, Subject};

#[tokio::test]
async fn in_memory_database_passes_the_conformance_suite() {
    policy_store_conformance(&SqlitePolicyStore::open(":memory:").await.expect("open")).await;
}

#[tokio::test]
async fn file_database_passes_the_conformance_suite_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.db");
    let path = path.to_str().expect("utf-8 path");
    let store = SqlitePolicyStore::open(path).await.expect("open");
    policy_store_conformance(&store).await;

    let alice = Subject::User("alice@example.com".into());
    let sa = Subject::ServiceAccount { namespace: "team-a".into(), name: "pipeline-runner".into() };
    store.put_namespace("team-a", &alice).await.expect("namespace");
    store.put_binding("team-a", &sa, Role::Edit).await.expect("binding");
    drop(store);

    let reopened = SqlitePolicyStore::open(path).await.expect("reopen");
    let records = reopened.namespaces().await.expect("list");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].owner, alice);
    assert_eq!(records[0].bindings, vec![(sa, Role::Edit)]);
}

#[tokio::test]
async fn a_path_that_cannot_be_a_database_is_a_storage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqlitePolicyStore::open(dir.path().to_str().expect("utf-8")).await.expect_err("a directory");
    assert!(matches!(err, kf_tenancy::Error::Storage(_)), "{err}");
}
