//! [`SqlitePolicyStore`]: the durable [`PolicyStore`] on SQLite.
//!
//! A file (or `:memory:`) database in WAL mode with `synchronous = FULL`, so a
//! write that returned is on disk; migrations are embedded in the binary. It
//! passes the same conformance suite as the in-memory store.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::role::Role;
use crate::store::{NamespaceRecord, PolicyStore};
use crate::subject::Subject;
use crate::{Error, Result};

/// A [`PolicyStore`] in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqlitePolicyStore {
    pool: SqlitePool,
}

fn storage(err: impl std::fmt::Display) -> Error {
    Error::Storage(err.to_string())
}

/// (kind, namespace, name) columns of a subject.
fn columns(subject: &Subject) -> (&'static str, &str, &str) {
    match subject {
        Subject::User(name) => ("User", "", name),
        Subject::Group(name) => ("Group", "", name),
        Subject::ServiceAccount { namespace, name } => ("ServiceAccount", namespace, name),
    }
}

fn subject(kind: &str, namespace: String, name: String) -> Result<Subject> {
    match kind {
        "User" => Ok(Subject::User(name)),
        "Group" => Ok(Subject::Group(name)),
        "ServiceAccount" => Ok(Subject::ServiceAccount { namespace, name }),
        other => Err(Error::Storage(format!("unexpected subject kind {other:?} in the database"))),
    }
}

impl SqlitePolicyStore {
    /// Opens (creating if missing) the database at `path`, or an in-memory
    /// database for `:memory:`, and applies the migrations.
    pub async fn open(path: &str) -> Result<Self> {
        let options = if path == ":memory:" {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(storage)?
        } else {
            SqliteConnectOptions::new().filename(path).create_if_missing(true)
        };
        let options =
            options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Full).foreign_keys(true);
        // One connection for :memory: (each connection would be its own database).
        let max = if path == ":memory:" { 1 } else { 4 };
        let pool = SqlitePoolOptions::new().max_connections(max).connect_with(options).await.map_err(storage)?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(storage)?;
        Ok(SqlitePolicyStore { pool })
    }
}

#[async_trait]
impl PolicyStore for SqlitePolicyStore {
    async fn put_namespace(&self, namespace: &str, owner: &Subject) -> Result<()> {
        let (kind, owner_ns, name) = columns(owner);
        sqlx::query(
            "INSERT INTO namespaces (name, owner_kind, owner_namespace, owner_name) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET owner_kind = ?2, owner_namespace = ?3, owner_name = ?4",
        )
        .bind(namespace)
        .bind(kind)
        .bind(owner_ns)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_namespace(&self, namespace: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM namespaces WHERE name = ?1")
            .bind(namespace)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_binding(&self, namespace: &str, subject: &Subject, role: Role) -> Result<()> {
        let (kind, subject_ns, name) = columns(subject);
        // The namespace check and the write happen in one statement, so a
        // concurrent delete cannot slip between them.
        let done = sqlx::query(
            "INSERT INTO bindings (namespace, subject_kind, subject_namespace, subject_name, role)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM namespaces WHERE name = ?1)
             ON CONFLICT (namespace, subject_kind, subject_namespace, subject_name) DO UPDATE SET role = ?5",
        )
        .bind(namespace)
        .bind(kind)
        .bind(subject_ns)
        .bind(name)
        .bind(role.as_str())
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound { what: format!("namespace {namespace:?}") });
        }
        Ok(())
    }

    async fn delete_binding(&self, namespace: &str, subject: &Subject) -> Result<bool> {
        let (kind, subject_ns, name) = columns(subject);
        let done = sqlx::query(
            "DELETE FROM bindings WHERE namespace = ?1 AND subject_kind = ?2 AND subject_namespace = ?3 AND subject_name = ?4",
        )
        .bind(namespace)
        .bind(kind)
        .bind(subject_ns)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let rows = sqlx::query("SELECT name, owner_kind, owner_namespace, owner_name FROM namespaces ORDER BY name")
            .fetch_all(&mut *tx)
            .await
            .map_err(storage)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("owner_kind").map_err(storage)?;
            records.push(NamespaceRecord {
                namespace: row.try_get("name").map_err(storage)?,
                owner: subject(
                    &kind,
                    row.try_get("owner_namespace").map_err(storage)?,
                    row.try_get("owner_name").map_err(storage)?,
                )?,
                bindings: Vec::new(),
            });
        }
        let bindings = sqlx::query(
            "SELECT namespace, subject_kind, subject_namespace, subject_name, role FROM bindings ORDER BY namespace",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        for row in bindings {
            let namespace: String = row.try_get("namespace").map_err(storage)?;
            let kind: String = row.try_get("subject_kind").map_err(storage)?;
            let role: String = row.try_get("role").map_err(storage)?;
            let subject = subject(
                &kind,
                row.try_get("subject_namespace").map_err(storage)?,
                row.try_get("subject_name").map_err(storage)?,
            )?;
            let role = Role::from_str(&role).map_err(storage)?;
            if let Some(record) = records.iter_mut().find(|r| r.namespace == namespace) {
                record.bindings.push((subject, role));
            }
        }
        for record in &mut records {
            record.bindings.sort();
        }
        Ok(records)
    }
}
