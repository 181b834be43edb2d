//! [`SqliteStore`]: the [`RegistryStore`] on SQLite through sqlx.
//!
//! A file database runs in WAL mode with `synchronous = NORMAL` (a committed
//! write survives the process being killed; only an OS crash can lose the last
//! commits) and a busy timeout so concurrent writers queue instead of failing;
//! `:memory:` is one private in-memory database on a single connection.
//! Writes go through one writer task that commits them in groups (see
//! `write_loop`), and are acknowledged only once committed. The
//! schema comes from the migrations embedded at build time. Every statement
//! comes from [`crate::sql`] with its values bound, run through the code the
//! Postgres store shares.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{MappedMutexGuard, MutexGuard, mpsc, oneshot};

use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

use crate::driver::{self, storage};
use crate::query::ListQuery;
use crate::record::{NewRecord, Record};
use crate::sql;
use crate::store::RegistryStore;
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
    /// The connections the store's own reads run on (none for `:memory:`,
    /// whose reads share the writer's connection through `pool`).
    readers: Readers,
    /// One connection for every write, owned by a writer task fed through
    /// `writes`: SQLite admits one writer at a time, so queueing writes and
    /// committing them in groups is far cheaper than letting connections
    /// collide and back off in SQLite's sleeping busy handler.
    writer: SqlitePool,
    writes: mpsc::Sender<Job>,
    key: [u8; 32],
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
        // temp_store = MEMORY keeps statement and savepoint journals in memory:
        // with files, every write re-journalled the pages it touched to a temp
        // file (45 pwrite calls per HTTP create, most of the write path's syscalls).
        let options = options
            .busy_timeout(Duration::from_secs(10))
            .pragma("case_sensitive_like", "ON")
            .pragma("temp_store", "MEMORY")
            .foreign_keys(true);
        // No ping before every acquire: a SQLite connection is a file handle,
        // not a socket that goes stale, and the ping is one more round trip
        // to the connection's thread per query (a third of a get's).
        let connect = |max: u32| {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
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
        let mut conns = Vec::new();
        if !memory {
            for _ in 0..READERS {
                conns.push(tokio::sync::Mutex::new(Some(options.connect().await.map_err(storage)?)));
            }
        }
        let readers = Readers { conns, next: AtomicUsize::new(0) };
        let key = driver::token_key(&writer).await?;
        let (writes, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_loop(writer.clone(), jobs));
        Ok(SqliteStore { pool, readers, writer, writes, key })
    }

    /// A pool of reading connections, for callers that run their own queries
    /// (the store's own reads run on connections it holds apart).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn submit(&self, job: Job) -> Result<()> {
        self.writes.send(job).await.map_err(|_| Error::Storage("the writer task stopped".into()))
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        for conn in &self.readers.conns {
            if let Some(conn) = conn.lock().await.take() {
                let _ = conn.close().await;
            }
        }
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Reading connections per file database.
const READERS: usize = 8;

/// The store's reading connections, held outside a pool: sqlx pings a pooled
/// connection every time it goes back to the pool, a round trip to the
/// connection's thread as costly as the query itself, and every create (its
/// parent) and every get reads once. A read borrows the first free
/// connection, or waits for one. `None` once closed.
struct Readers {
    conns: Vec<tokio::sync::Mutex<Option<SqliteConnection>>>,
    /// Where the next read starts looking, so reads spread over the connections.
    next: AtomicUsize,
}

impl Readers {
    /// A connection to read on; `None` for `:memory:` or after `close` (read on the pool then).
    async fn lock(&self) -> Option<MappedMutexGuard<'_, SqliteConnection>> {
        let n = self.conns.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let free = (0..n).find_map(|i| self.conns[(start + i) % n].try_lock().ok());
        let guard = match free {
            Some(guard) => guard,
            None => self.conns[start % n].lock().await,
        };
        MutexGuard::try_map(guard, Option::as_mut).ok()
    }
}

/// A write waiting for the writer task.
enum Write {
    Insert(NewRecord),
    Update(Record),
}

impl Write {
    /// The stored record, given what the database answered: the new id of
    /// an insert, the stored create time of an update (whatever the caller passed).
    fn into_record(self, answer: i64) -> Record {
        match self {
            Write::Insert(new) => new.into_record(answer),
            Write::Update(record) => Record { create_time: answer, ..record },
        }
    }
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Record>>,
}

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 128;

/// Owns the writer connection. Group commit: it takes every write that is
/// waiting (up to [`MAX_BATCH`]), writes them in one transaction, commits
/// once, and only then answers — so a write is acknowledged only after it
/// is committed.
///
/// A batch of inserts first goes in whole (see [`insert_batch`]): a few
/// multi-row statements instead of four round trips to SQLite's thread per
/// write. If that fails — a taken name, most likely — the transaction is
/// rolled back and the batch is written again one write at a time, each in
/// its own savepoint, so one conflict fails only its own write.
async fn write_loop(writer: SqlitePool, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let fast = if batch.iter().all(|j| matches!(j.write, Write::Insert(_))) {
            insert_batch(&writer, &batch).await.ok()
        } else {
            None
        };
        let results = match fast {
            Some(ids) => Ok(ids.into_iter().map(Ok).collect()),
            None => run_batch(&writer, &batch).await,
        };
        match results {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result.map(|answer| job.write.into_record(answer)));
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

/// Inserts a batch of new records in one transaction under consecutive ids
/// read inside it (the transaction holds SQLite's write lock, so nobody
/// else takes them meanwhile). Any error rolls everything back.
async fn insert_batch(writer: &SqlitePool, batch: &[Job]) -> Result<Vec<i64>> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(storage)?;
    let row = sqlx::query(sql::NEXT_ID).fetch_one(&mut *tx).await.map_err(storage)?;
    let first: i64 = row.try_get(0).map_err(storage)?;
    let rows: Vec<(i64, &NewRecord)> = batch
        .iter()
        .zip(first..)
        .filter_map(|(job, id)| match &job.write {
            Write::Insert(new) => Some((id, new)),
            Write::Update(_) => None,
        })
        .collect();
    if rows.len() != batch.len() {
        return Err(Error::Storage("insert_batch is for inserts only".into()));
    }
    driver::insert_many::<sqlx::Sqlite>(&mut tx, &rows).await?;
    tx.commit().await.map_err(storage)?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

async fn run_batch(writer: &SqlitePool, batch: &[Job]) -> std::result::Result<Vec<Result<i64>>, sqlx::Error> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        sqlx::query("SAVEPOINT kf_write").execute(&mut *tx).await?;
        let result = match &job.write {
            Write::Insert(new) => driver::insert::<sqlx::Sqlite>(&mut *tx, new).await,
            Write::Update(record) => driver::update::<sqlx::Sqlite>(&mut *tx, record).await,
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

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn insert(&self, new: NewRecord) -> Result<Record> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job { write: Write::Insert(new), reply }).await?;
        answer.await.map_err(|_| Error::Storage("the writer task stopped".into()))?
    }

    async fn update(&self, record: Record) -> Result<Record> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job { write: Write::Update(record), reply }).await?;
        answer.await.map_err(|_| Error::Storage("the writer task stopped".into()))?
    }

    async fn get(&self, id: i64) -> Result<Option<Record>> {
        match self.readers.lock().await {
            Some(mut conn) => driver::get(&mut *conn, id).await,
            None => driver::get(&self.pool, id).await,
        }
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Record>> {
        match self.readers.lock().await {
            Some(mut conn) => driver::list(&mut *conn, query).await,
            None => driver::list(&self.pool, query).await,
        }
    }

    fn token_key(&self) -> &[u8; 32] {
        &self.key
    }
}
