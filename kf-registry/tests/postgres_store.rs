//! The Postgres store against a real PostgreSQL server that the test starts
//! itself (`TempPostgres`): the shared conformance suite, a reopen that keeps
//! data and page-token key, racing creates, what PostgreSQL cannot store, and
//! a differential test: random filterQueries select the same models on
//! PostgreSQL, SQLite and the in-memory store.
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
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
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

/// Text the generated filters and the data share: LIKE wildcards, a
/// backslash, case and non-ASCII letters, where SQL dialects differ.
const WORDS: [&str; 10] = ["m-1", "m-%", "M-_", "a\\%", "a%b", "É%", "é-x", "%", "_-x", "LIVE"];

fn string_literal() -> impl Strategy<Value = String> {
    proptest::sample::select(&WORDS[..]).prop_map(|w| format!("'{}'", w.replace('\\', "\\\\")))
}

fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (-2i64..12).prop_map(|n| n.to_string()),
        proptest::sample::select(&[0.5, 1.75, -2.25, 3.0][..]).prop_map(|x: f64| format!("{x:?}")),
    ]
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![string_literal(), number_literal(), any::<bool>().prop_map(|b| b.to_string())]
}

const TEXT_FIELDS: [&str; 8] =
    ["name", "state", "externalId", "owner", "description", "`note`", "note", "note.string_value"];
const NUMBER_FIELDS: [&str; 6] = ["id", "rank", "score", "rank.int_value", "rank.double_value", "score.double_value"];
const ORDER_OPS: [&str; 7] = ["=", "!=", "<>", "<", "<=", ">", ">="];
const TEXT_OPS: [&str; 9] = ["=", "!=", "<>", "<", "<=", ">", ">=", "LIKE", "ILIKE"];
const ANY_FIELD: [&str; 15] = [
    "name",
    "state",
    "externalId",
    "owner",
    "description",
    "`note`",
    "note",
    "note.string_value",
    "id",
    "rank",
    "score",
    "rank.int_value",
    "rank.double_value",
    "score.double_value",
    "flag",
];

fn compare(
    fields: &'static [&'static str],
    ops: &'static [&'static str],
    value: BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    (proptest::sample::select(fields), proptest::sample::select(ops), value)
        .prop_map(|(f, op, v)| format!("{f} {op} {v}"))
        .boxed()
}

fn within(fields: &'static [&'static str], value: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (proptest::sample::select(fields), proptest::collection::vec(value, 1..4))
        .prop_map(|(f, vs)| format!("{f} IN ({})", vs.join(", ")))
        .boxed()
}

/// Mostly well-typed comparisons (so rows are compared, not just errors),
/// some of anything (so errors must agree too).
fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => compare(&TEXT_FIELDS, &TEXT_OPS, string_literal().boxed()),
        3 => compare(&NUMBER_FIELDS, &ORDER_OPS, number_literal().boxed()),
        1 => compare(&["flag"], &ORDER_OPS, any::<bool>().prop_map(|b| b.to_string()).boxed()),
        1 => within(&TEXT_FIELDS, string_literal().boxed()),
        1 => within(&NUMBER_FIELDS, number_literal().boxed()),
        1 => compare(&ANY_FIELD, &TEXT_OPS, literal().boxed()),
    ]
}

fn filter_query() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 8, 2, |inner| {
        (inner.clone(), proptest::sample::select(&["AND", "OR"][..]), inner)
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
    })
}

/// The names a filter selects (all pages), or the HTTP status it fails with.
async fn select<S: kf_registry::RegistryStore>(r: &Registry<S>, filter: &str) -> Result<Vec<String>, u16> {
    let mut params =
        ListParams { filter_query: Some(filter.into()), page_size: Some("7".into()), ..ListParams::default() };
    let mut names = Vec::new();
    loop {
        let page = r.list::<RegisteredModel>(&params, Scope::default()).await.map_err(|e| e.status())?;
        names.extend(page.items.into_iter().filter_map(|m| m.name));
        if page.next_page_token.is_empty() {
            return Ok(names);
        }
        params.next_page_token = Some(page.next_page_token);
    }
}

/// Differential test: random filterQueries over the same data must select
/// the same models on PostgreSQL, on SQLite and in memory (the reference
/// semantics of `query::Filter::matches`), or fail the same way.
#[test]
fn random_filters_select_the_same_models_on_postgres_sqlite_and_memory() {
    let Some(pg) = server("random_filters_select_the_same_models") else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = pg.create_database("differential").unwrap();
    let (postgres, sqlite, memory) = rt.block_on(async {
        let stores = (
            Registry::new(PostgresStore::open(&url).await.unwrap()),
            Registry::new(kf_registry::sqlite::SqliteStore::open(":memory:").await.unwrap()),
            Registry::new(kf_registry::MemoryStore::new()),
        );
        let odd = ["a\\b", "a%b", "a_b", "É-x", "é-x", "M-1", "_-x", "LIVE"];
        for i in 0..40usize {
            let name = if i < odd.len() { odd[i].to_owned() } else { format!("m-{i}") };
            let mut doc = json!({
                "name": name,
                "owner": WORDS[i % WORDS.len()],
                "state": if i % 5 == 0 { "ARCHIVED" } else { "LIVE" },
                "customProperties": {
                    "rank": {"metadataType": "MetadataIntValue", "int_value": (i % 7).to_string()},
                    "score": {"metadataType": "MetadataDoubleValue", "double_value": i as f64 / 4.0 - 2.25},
                    "flag": {"metadataType": "MetadataBoolValue", "bool_value": i % 3 == 0},
                    "note": {"metadataType": "MetadataStringValue", "string_value": WORDS[(i * 3) % WORDS.len()]},
                },
            });
            if i % 4 == 1 {
                doc["description"] = json!(WORDS[(i / 4) % WORDS.len()]);
                doc["externalId"] = json!(format!("ext-{i}"));
            }
            for r in [
                &stores.0.create::<RegisteredModel>(doc.clone(), None).await,
                &stores.1.create(doc.clone(), None).await,
                &stores.2.create(doc.clone(), None).await,
            ] {
                assert_eq!(r.as_ref().map(|m| m.id.clone()).unwrap(), Some((i + 1).to_string()), "ids agree");
            }
        }
        stores
    });
    let mut runner = TestRunner::new(ProptestConfig { cases: 300, ..ProptestConfig::default() });
    let answered = std::cell::Cell::new(0);
    runner
        .run(&filter_query(), |filter| {
            let (want, on_pg, on_sqlite) = rt.block_on(async {
                (select(&memory, &filter).await, select(&postgres, &filter).await, select(&sqlite, &filter).await)
            });
            prop_assert_eq!(&on_pg, &want, "PostgreSQL vs memory: {}", filter);
            prop_assert_eq!(&on_sqlite, &want, "SQLite vs memory: {}", filter);
            answered.set(answered.get() + usize::from(want.is_ok()));
            Ok(())
        })
        .unwrap();
    // most generated filters must type-check, or the test compares errors only
    assert!(answered.get() > 100, "only {} of 300 filters were valid", answered.get());
}
