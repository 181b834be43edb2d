//! The SQLite store runs the shared conformance suite, in memory and on a file,
//! and keeps its data and its page-token key across a reopen.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns, may unwrap

use kf_registry::Registry;
use kf_registry::sqlite::SqliteStore;

#[tokio::test]
async fn in_memory_sqlite_passes_the_conformance_suite() {
    kf_registry::testing::run_all(SqliteStore::open(":memory:").await.unwrap(), "sqlmem").await;
}

#[tokio::test]
async fn file_sqlite_passes_the_conformance_suite_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    kf_registry::testing::run_all(SqliteStore::open(&url).await.unwrap(), "file").await;
    kf_registry::testing::survives_reopen(|| async { SqliteStore::open(&url).await.unwrap() }, "reopen").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_commit_in_groups_and_conflicts_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let registry = std::sync::Arc::new(Registry::new(SqliteStore::open(&url).await.unwrap()));
    kf_registry::testing::racing_creates(registry, "race").await;
}
