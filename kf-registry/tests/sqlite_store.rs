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
