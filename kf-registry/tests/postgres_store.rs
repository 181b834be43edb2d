//! The Postgres store against a real PostgreSQL server that the test starts
//! itself (`TempPostgres`): the shared conformance suite, a reopen that keeps
//! data and page-token key, racing creates, and what PostgreSQL cannot store.
//!
//! Without PostgreSQL binaries the tests skip loudly, unless
//! `KF_REQUIRE_PEERS=1` (as CI sets it), when a missing server is a failure.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns, may unwrap

use std::sync::Arc;

use kf_registry::postgres::PostgresStore;
use kf_registry::registry::{ListParams, Scope};
use kf_registry::testing::TempPostgres;
use kf_registry::{RegisteredModel, Registry};
use serde_json::json;

/// A fresh server, or `None` (after saying so) when PostgreSQL is not installed.
fn server(test: &str) -> Option<TempPostgres> {
    match TempPostgres::start() {
        Ok(Some(server)) => Some(server),
        Ok(None) => {
            let required = std::env::var("KF_REQUIRE_PEERS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: no PostgreSQL binaries (initdb, pg_ctl, postgres, createdb) found via KF_PG_BINDIR, \
                 pg_config, /usr/lib/postgresql/*/bin or PATH; KF_REQUIRE_PEERS=1 makes this a failure \
                 (install them: apt-get install -y postgresql)"
            );
            eprintln!(
                "\n========================================================================\n\
                 SKIPPED {test}: PostgreSQL is not installed (apt-get install -y postgresql)\n\
                 ========================================================================\n"
            );
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

#[tokio::test]
async fn postgres_passes_the_conformance_suite_and_survives_a_reopen() {
    let Some(pg) = server("postgres_passes_the_conformance_suite") else { return };
    let url = pg.create_database("conformance").unwrap();
    kf_registry::testing::run_all(PostgresStore::open(&url).await.unwrap(), "pg").await;
    kf_registry::testing::survives_reopen(|| async { PostgresStore::open(&url).await.unwrap() }, "reopen").await;
    // the suite runs again on the same data: its tags keep it apart
    kf_registry::testing::run_all(PostgresStore::open(&url).await.unwrap(), "pg2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_admit_one_name_and_conflicts_fail_alone() {
    let Some(pg) = server("racing_creates_admit_one_name") else { return };
    let url = pg.create_database("race").unwrap();
    let registry = Arc::new(Registry::new(PostgresStore::open(&url).await.unwrap()));
    kf_registry::testing::racing_creates(registry, "race").await;
}

#[tokio::test]
async fn text_postgres_cannot_hold_is_a_bad_request_not_a_storage_failure() {
    let Some(pg) = server("text_postgres_cannot_hold") else { return };
    let registry = Registry::new(PostgresStore::open(&pg.create_database("nul").unwrap()).await.unwrap());
    let props = json!({"k": {"metadataType": "MetadataStringValue", "string_value": "a\u{0}b"}});
    for doc in [json!({"name": "a\u{0}b"}), json!({"name": "ok", "customProperties": props})] {
        let err = registry.create::<RegisteredModel>(doc.clone(), None).await.unwrap_err();
        assert_eq!(err.status(), 400, "{doc}: {err}");
    }
    let filter = ListParams { filter_query: Some("name = 'a\u{0}b'".into()), ..ListParams::default() };
    assert_eq!(registry.list::<RegisteredModel>(&filter, Scope::default()).await.unwrap_err().status(), 400);
    // nothing was stored, and the store still works
    let model: RegisteredModel = registry.create(json!({"name": "ok"}), None).await.unwrap();
    assert_eq!(model.name.as_deref(), Some("ok"));
}
