//! The SQLite store runs the shared conformance suite, in memory and on a file,
//! and keeps its data and its page-token key across a reopen.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns, may unwrap

use kf_registry::registry::{ListParams, Scope};
use kf_registry::sqlite::SqliteStore;
use kf_registry::{RegisteredModel, Registry};

#[tokio::test]
async fn in_memory_sqlite_passes_the_conformance_suite() {
    kf_registry::testing::run_all(SqliteStore::open(":memory:").await.unwrap(), "sqlmem").await;
}

#[tokio::test]
async fn file_sqlite_passes_the_conformance_suite_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    kf_registry::testing::run_all(SqliteStore::open(&url).await.unwrap(), "file").await;
    let params = ListParams { page_size: Some("2".into()), ..ListParams::default() };
    let (first, token) = {
        let registry = Registry::new(SqliteStore::open(&url).await.unwrap());
        let page = registry.list::<RegisteredModel>(&params, Scope::default()).await.unwrap();
        registry.store().close().await;
        (page.items, page.next_page_token)
    };
    let registry = Registry::new(SqliteStore::open(&url).await.unwrap());
    let again = registry.list::<RegisteredModel>(&params, Scope::default()).await.unwrap();
    assert_eq!(again.items, first);
    // a token issued before the restart still works: the key is stored with the data
    let next = ListParams { next_page_token: Some(token), ..params };
    assert_eq!(registry.list::<RegisteredModel>(&next, Scope::default()).await.unwrap().items.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_commit_in_groups_and_conflicts_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let registry = std::sync::Arc::new(Registry::new(SqliteStore::open(&url).await.unwrap()));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let registry = registry.clone();
        // every fourth task asks for the same name: exactly one of them may win
        let name = if i % 4 == 0 { "contested".to_owned() } else { format!("m{i}") };
        tasks.push(tokio::spawn(async move {
            registry.create::<RegisteredModel>(serde_json::json!({"name": name}), None).await.map_err(|e| e.status())
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(409) => conflicts += 1,
            Err(other) => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, conflicts), (151, 49));
    let params = ListParams { page_size: Some("1000".into()), ..ListParams::default() };
    let all = registry.list::<RegisteredModel>(&params, Scope::default()).await.unwrap();
    assert_eq!(all.items.len(), 151);
}
