//! [`PostgresStore`]: the [`RegistryStore`] on PostgreSQL through sqlx.
//!
//! The same tables, statements and semantics as the SQLite store: the schema
//! comes from `migrations/postgres` (embedded at build time, the SQLite
//! schema in PostgreSQL's words), every statement from [`crate::sql`] in the
//! Postgres [`crate::sql::Dialect`], run by the code both stores share.
//! PostgreSQL admits many writers at once, so each write is its own
//! transaction on the pool (no writer task, no group commit: the server
//! groups commits itself); a write is acknowledged once committed, and the
//! unique indexes settle racing creates. One difference the API shows: text
//! containing U+0000 is a 400 here, since PostgreSQL `text` cannot hold it.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::driver::{self, storage};
use crate::query::ListQuery;
use crate::record::{NewRecord, Record};
use crate::store::RegistryStore;
use crate::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections a store keeps open at most.
const MAX_CONNECTIONS: u32 = 16;

/// The registry on a PostgreSQL database.
///
/// ```
/// use kf_registry::{Registry, RegisteredModel};
/// use kf_registry::postgres::PostgresStore;
/// use kf_registry::testing::TempPostgres;
///
/// // A throwaway server; without PostgreSQL installed there is nothing to show.
/// let Some(server) = TempPostgres::start()? else { return Ok(()) };
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(async {
///     let registry = Registry::new(PostgresStore::open(&server.create_database("doc")?).await?);
///     let model: RegisteredModel = registry.create(serde_json::json!({"name": "iris"}), None).await?;
///     assert_eq!(registry.get::<RegisteredModel>(model.id.as_deref().unwrap()).await?, model);
///     Ok::<(), kf_registry::Error>(())
/// })?;
/// # Ok::<(), kf_registry::Error>(())
/// ```
pub struct PostgresStore {
    pool: PgPool,
    key: [u8; 32],
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`,
    /// as libpq reads it, e.g. `postgres://user:pass@host:5432/db` or
    /// `postgres://user@/db?host=/run/postgresql` for a Unix socket) and runs
    /// pending migrations. The database must exist.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| Error::invalid("url", e.to_string()))?;
        // One plain connection first: a wrong host or password fails now,
        // where the pool would retry it until its acquire timeout.
        options.connect().await.map_err(storage)?.close().await.map_err(storage)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(storage)?;
        MIGRATOR.run(&pool).await.map_err(|e| Error::Storage(format!("migrations: {e}")))?;
        let key = driver::token_key(&pool).await?;
        Ok(PostgresStore { pool, key })
    }

    /// The connection pool, for callers that run their own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl RegistryStore for PostgresStore {
    async fn insert(&self, new: NewRecord) -> Result<Record> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let id = driver::insert::<sqlx::Postgres>(&mut *tx, &new).await?;
        tx.commit().await.map_err(storage)?;
        Ok(new.into_record(id))
    }

    async fn update(&self, record: Record) -> Result<Record> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let create_time = driver::update::<sqlx::Postgres>(&mut *tx, &record).await?;
        tx.commit().await.map_err(storage)?;
        // create_time is the stored one, whatever the caller passed
        Ok(Record { create_time, ..record })
    }

    async fn get(&self, id: i64) -> Result<Option<Record>> {
        driver::get(&self.pool, id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Record>> {
        driver::list(&self.pool, query).await
    }

    fn token_key(&self) -> &[u8; 32] {
        &self.key
    }
}
