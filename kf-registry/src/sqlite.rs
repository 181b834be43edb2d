//! [`SqliteStore`]: the [`RegistryStore`] on SQLite through sqlx.
//!
//! A file database runs in WAL mode with `synchronous = NORMAL` (a committed
//! write survives the process being killed; only an OS crash can lose the last
//! commits) and a busy timeout so concurrent writers queue instead of failing;
//! `:memory:` is one private in-memory database on a single connection.
//! Writes go through one writer task that commits them in groups (see
//! `write_loop`), and are acknowledged only once committed. The
//! schema comes from the migrations embedded at build time. Every query is
//! parameterised: list queries come from [`crate::sql::select`], all other
//! statements are fixed text.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::query::ListQuery;
use crate::record::{Kind, NewRecord, PropertyValue, Record, properties};
use crate::sql::{Bind, Dialect, RECORD_COLUMNS, select};
use crate::store::{RegistryStore, scope_text};
use crate::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The registry on a SQLite database.
///
/// ```
/// use kf_registry::{Registry, RegisteredModel};
/// use kf_registry::sqlite::SqliteStore;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(async {
///     let registry = Registry::new(SqliteStore::open(":memory:").await?);
///     let model: RegisteredModel = registry.create(serde_json::json!({"name": "iris"}), None).await?;
///     assert_eq!(registry.get::<RegisteredModel>("1").await?, model);
///     Ok::<(), kf_registry::Error>(())
/// }).unwrap();
/// ```
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for every write, owned by a writer task fed through
    /// `writes`: SQLite admits one writer at a time, so queueing writes and
    /// committing them in groups is far cheaper than letting connections
    /// collide and back off in SQLite's sleeping busy handler.
    writer: SqlitePool,
    writes: mpsc::Sender<Job>,
    key: [u8; 32],
}

fn storage(err: sqlx::Error) -> Error {
    Error::Storage(err.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `location`: a file path,
    /// a `sqlite://PATH` URL, or `:memory:`. Runs pending migrations.
    pub async fn open(location: &str) -> Result<Self> {
        let path = location.strip_prefix("sqlite://").unwrap_or(location);
        let memory = path == ":memory:" || path.is_empty();
        let options = if memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(storage)?
        } else {
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        let options =
            options.busy_timeout(Duration::from_secs(10)).pragma("case_sensitive_like", "ON").foreign_keys(true);
        let connect = |max: u32| {
            SqlitePoolOptions::new()
                .min_connections(1)
                .max_connections(max)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options.clone())
        };
        let writer = connect(1).await.map_err(storage)?;
        MIGRATOR.run(&writer).await.map_err(|e| Error::Storage(format!("migrations: {e}")))?;
        // An in-memory database exists once per connection: readers share the writer's.
        let pool = if memory { writer.clone() } else { connect(8).await.map_err(storage)? };
        let key = Self::token_key_of(&writer).await?;
        let (writes, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_loop(writer.clone(), jobs));
        Ok(SqliteStore { pool, writer, writes, key })
    }

    async fn token_key_of(pool: &SqlitePool) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        rand::fill(&mut fresh[..]);
        sqlx::query("INSERT OR IGNORE INTO registry_meta (key, value) VALUES ('page_token_key', ?)")
            .bind(hex::encode(fresh))
            .execute(pool)
            .await
            .map_err(storage)?;
        let stored: String = sqlx::query_scalar("SELECT value FROM registry_meta WHERE key = 'page_token_key'")
            .fetch_one(pool)
            .await
            .map_err(storage)?;
        let mut key = [0u8; 32];
        match hex::decode(&stored) {
            Ok(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
            _ => return Err(Error::Storage("registry_meta.page_token_key is not 32 hex-encoded bytes".into())),
        }
        Ok(key)
    }

    /// The pool of reading connections, for callers that run their own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn submit(&self, job: Job) -> Result<()> {
        self.writes.send(job).await.map_err(|_| Error::Storage("the writer task stopped".into()))
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    fn conflict(err: sqlx::Error, record: &Record) -> Error {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let message = if db.message().contains("external_id") {
                    format!("externalId {:?} is already taken", record.external_id.as_deref().unwrap_or_default())
                } else {
                    format!(
                        "name {:?} is already taken{}",
                        record.name.as_deref().unwrap_or_default(),
                        scope_text(record)
                    )
                };
                Error::Conflict { kind: record.kind.type_name(), message }
            }
            _ => storage(err),
        }
    }

    /// Writes a record's properties, many rows per statement (one round trip
    /// to SQLite's worker thread instead of one per property).
    async fn write_properties(tx: &mut Transaction<'static, Sqlite>, id: i64, body: &Map<String, Value>) -> Result<()> {
        const ROWS_PER_STATEMENT: usize = 64;
        let props = properties(body);
        for chunk in props.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO properties (entity_id, name, is_custom, string_value, int_value, double_value, bool_value) VALUES ",
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "(?, ?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?, ?)" });
            }
            // The text is fixed fragments only; every value is bound.
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for p in chunk {
                let (s, i, d, b) = match &p.value {
                    PropertyValue::String(s) => (Some(s.clone()), None, None, None),
                    PropertyValue::Int(i) => (None, Some(*i), None, None),
                    PropertyValue::Double(d) => (None, None, Some(*d), None),
                    PropertyValue::Bool(b) => (None, None, None, Some(*b)),
                };
                q = q.bind(id).bind(p.name.clone()).bind(p.custom).bind(s).bind(i).bind(d).bind(b);
            }
            q.execute(&mut **tx).await.map_err(storage)?;
        }
        Ok(())
    }
}

fn decode(row: &SqliteRow) -> Result<Record> {
    let get = |e: sqlx::Error| Error::Storage(format!("decoding a record: {e}"));
    let kind_text: String = row.try_get(1).map_err(get)?;
    let kind = Kind::parse(&kind_text).ok_or_else(|| Error::Storage(format!("unknown kind {kind_text:?}")))?;
    let body_text: String = row.try_get(9).map_err(get)?;
    let body = match serde_json::from_str(&body_text) {
        Ok(Value::Object(m)) => m,
        _ => return Err(Error::Storage("a stored body is not a JSON object".into())),
    };
    Ok(Record {
        id: row.try_get(0).map_err(get)?,
        kind,
        subtype: row.try_get(2).map_err(get)?,
        parent: row.try_get(3).map_err(get)?,
        name: row.try_get(4).map_err(get)?,
        external_id: row.try_get(5).map_err(get)?,
        state: row.try_get(6).map_err(get)?,
        create_time: row.try_get(7).map_err(get)?,
        update_time: row.try_get(8).map_err(get)?,
        body,
    })
}

fn unique_name(r: &Record) -> Option<&str> {
    r.name.as_deref().filter(|_| r.kind.names_unique())
}

/// A write waiting for the writer task.
enum Write {
    Insert(NewRecord),
    Update(Record),
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<i64>>,
}

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 128;

/// Owns the writer connection. Group commit: it takes every write that is
/// waiting (up to [`MAX_BATCH`]), runs each inside its own savepoint so one
/// conflict fails only its own write, commits once, and only then answers —
/// so a write is acknowledged only after it is committed.
async fn write_loop(writer: SqlitePool, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match run_batch(&writer, &batch).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(Error::Storage(format!("write transaction failed: {err}"))));
                }
            }
        }
    }
}

async fn run_batch(writer: &SqlitePool, batch: &[Job]) -> std::result::Result<Vec<Result<i64>>, sqlx::Error> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        sqlx::query("SAVEPOINT kf_write").execute(&mut *tx).await?;
        let result = match &job.write {
            Write::Insert(new) => insert_in(&mut tx, new).await,
            Write::Update(record) => update_in(&mut tx, record).await.map(|()| record.id),
        };
        if result.is_err() {
            sqlx::query("ROLLBACK TO kf_write").execute(&mut *tx).await?;
        }
        sqlx::query("RELEASE kf_write").execute(&mut *tx).await?;
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

async fn insert_in(tx: &mut Transaction<'static, Sqlite>, new: &NewRecord) -> Result<i64> {
    let probe = new.clone().into_record(0);
    let body_text = Value::Object(new.body.clone()).to_string();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO entities (kind, subtype, parent_id, name, unique_name, external_id, state, create_time, update_time, body) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.kind.as_str())
    .bind(&new.subtype)
    .bind(new.parent)
    .bind(&new.name)
    .bind(unique_name(&probe))
    .bind(&new.external_id)
    .bind(&new.state)
    .bind(new.time)
    .bind(new.time)
    .bind(body_text)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| SqliteStore::conflict(e, &probe))?;
    SqliteStore::write_properties(tx, id, &new.body).await?;
    Ok(id)
}

async fn update_in(tx: &mut Transaction<'static, Sqlite>, record: &Record) -> Result<()> {
    let body_text = Value::Object(record.body.clone()).to_string();
    let done = sqlx::query(
        "UPDATE entities SET subtype = ?, parent_id = ?, name = ?, unique_name = ?, external_id = ?, state = ?, \
         update_time = ?, body = ? WHERE id = ? AND kind = ?",
    )
    .bind(&record.subtype)
    .bind(record.parent)
    .bind(&record.name)
    .bind(unique_name(record))
    .bind(&record.external_id)
    .bind(&record.state)
    .bind(record.update_time)
    .bind(body_text)
    .bind(record.id)
    .bind(record.kind.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|e| SqliteStore::conflict(e, record))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound { kind: record.kind.type_name(), key: format!("id {}", record.id) });
    }
    sqlx::query("DELETE FROM properties WHERE entity_id = ?")
        .bind(record.id)
        .execute(&mut **tx)
        .await
        .map_err(storage)?;
    SqliteStore::write_properties(tx, record.id, &record.body).await
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn insert(&self, new: NewRecord) -> Result<Record> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job { write: Write::Insert(new.clone()), reply }).await?;
        let id = answer.await.map_err(|_| Error::Storage("the writer task stopped".into()))??;
        Ok(new.into_record(id))
    }

    async fn update(&self, record: Record) -> Result<Record> {
        let id = record.id;
        let (reply, answer) = oneshot::channel();
        self.submit(Job { write: Write::Update(record), reply }).await?;
        answer.await.map_err(|_| Error::Storage("the writer task stopped".into()))??;
        // create_time is the stored one, whatever the caller passed
        self.get(id).await?.ok_or_else(|| Error::Storage(format!("record {id} vanished")))
    }

    async fn get(&self, id: i64) -> Result<Option<Record>> {
        const SQL: &str = "SELECT e.id, e.kind, e.subtype, e.parent_id, e.name, e.external_id, e.state, \
                           e.create_time, e.update_time, e.body FROM entities e WHERE e.id = ?";
        debug_assert!(SQL.contains(RECORD_COLUMNS));
        let row = sqlx::query(SQL).bind(id).fetch_optional(&self.pool).await.map_err(storage)?;
        row.as_ref().map(decode).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Record>> {
        let stmt = select(query, Dialect::Sqlite);
        let mut q = sqlx::query(AssertSqlSafe(stmt.sql));
        for bind in stmt.binds {
            q = match bind {
                Bind::Int(i) => q.bind(i),
                Bind::Real(x) => q.bind(x),
                Bind::Text(s) => q.bind(s),
                Bind::Bool(b) => q.bind(b),
            };
        }
        let rows = q.fetch_all(&self.pool).await.map_err(storage)?;
        rows.iter().map(decode).collect()
    }

    fn token_key(&self) -> &[u8; 32] {
        &self.key
    }
}
