//! Direct store-API throughput of the SQL stores (no HTTP): creates/s and
//! gets/s with 32 concurrent tasks, and the time of listing page 1 versus a
//! deep keyset page of model versions ordered by creation time.
//!
//! ```text
//! cargo run --release -p kf-registry --features sqlite,postgres --example registry_bench -- [VERSIONS] [DB]
//! ```
//!
//! VERSIONS defaults to 100000. DB is a `sqlite://` or `postgres://` URL;
//! without one, the bench runs twice, side by side: on a SQLite file in a
//! temporary directory and (with feature `postgres` and PostgreSQL
//! installed) on a throwaway PostgreSQL server (`TempPostgres`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kf_registry::registry::{ListParams, Scope};
use kf_registry::sqlite::SqliteStore;
use kf_registry::{ModelVersion, RegisteredModel, Registry, RegistryStore};
use serde_json::json;

const TASKS: usize = 32;

type BoxError = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let versions: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    if let Some(db) = args.get(2) {
        return run_on(db, versions).await;
    }
    let dir = tempfile::tempdir()?;
    run_on(&format!("sqlite://{}", dir.path().join("bench.db").display()), versions).await?;
    #[cfg(feature = "postgres")]
    match kf_registry::testing::TempPostgres::start()? {
        Some(server) => run_on(&server.create_database("bench")?, versions).await?,
        None => println!("\npostgres: skipped, PostgreSQL is not installed"),
    }
    Ok(())
}

async fn run_on(db: &str, versions: usize) -> Result<(), BoxError> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            println!("\npostgres ({versions} model versions)");
            return bench(kf_registry::postgres::PostgresStore::open(db).await?, versions).await;
        }
        #[cfg(not(feature = "postgres"))]
        return Err("a postgres:// URL needs --features postgres".into());
    }
    println!("\nsqlite ({versions} model versions)");
    bench(SqliteStore::open(db).await?, versions).await
}

async fn bench<S: RegistryStore + 'static>(store: S, versions: usize) -> Result<(), BoxError> {
    let registry = Arc::new(Registry::new(store));
    let model: RegisteredModel = registry.create(json!({"name": "bench"}), None).await?;
    let model_id = model.id.unwrap_or_default();

    // creates, 32 concurrent tasks
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (registry, model_id) = (registry.clone(), model_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (t..versions).step_by(TASKS) {
                let doc = json!({"name": format!("v{i}"), "registeredModelId": model_id,
                    "customProperties": {"i": {"metadataType": "MetadataIntValue", "int_value": (i % 1000).to_string()}}});
                let v: ModelVersion = registry.create(doc, None).await?;
                ids.push(v.id.unwrap_or_default());
            }
            Ok::<_, kf_registry::Error>(ids)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("creates: {versions} in {secs:.2}s = {:.0}/s (c={TASKS})", versions as f64 / secs);

    // gets, 32 concurrent tasks, for a bounded time
    let ids = Arc::new(ids);
    let until = Instant::now() + Duration::from_secs(5);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (registry, ids) = (registry.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < until {
                let id = &ids[(t * 7919 + n * 104_729) % ids.len()];
                let _: ModelVersion = registry.get(id).await?;
                n += 1;
            }
            Ok::<_, kf_registry::Error>(n)
        }));
    }
    let mut gets = 0;
    for t in tasks {
        gets += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("gets: {gets} in {secs:.2}s = {:.0}/s (c={TASKS})", gets as f64 / secs);

    // page 1 versus a deep page (keyset: the token carries the position)
    let page_size = 100usize;
    let params = |token: Option<String>| ListParams {
        page_size: Some(page_size.to_string()),
        order_by: Some("CREATE_TIME".into()),
        sort_order: Some("ASC".into()),
        next_page_token: token,
        ..ListParams::default()
    };
    let mut token = None;
    let mut timings = Vec::new();
    let pages = versions / page_size;
    for page in 1..=pages {
        let started = Instant::now();
        let listed = registry.list::<ModelVersion>(&params(token.clone()), Scope::default()).await?;
        timings.push((page, started.elapsed()));
        token = Some(listed.next_page_token);
    }
    let median = |from: usize, to: usize| {
        let mut t: Vec<Duration> = timings[from..to].iter().map(|(_, d)| *d).collect();
        t.sort();
        t[t.len() / 2]
    };
    let k = 10.min(pages);
    println!(
        "list pageSize={page_size} by CREATE_TIME: first {k} pages median {:?}, last {k} pages (page {}) median {:?}",
        median(0, k),
        pages,
        median(pages - k, pages)
    );
    Ok(())
}
