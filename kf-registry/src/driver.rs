//! What the SQL stores share on top of sqlx: running a [`Statement`] from
//! [`crate::sql`] on a database (its binds in order), decoding a row into a
//! [`Record`], and the steps of a write (insert or update a record with its
//! property rows) inside a transaction the store opens.
//!
//! Everything here is generic over the database; what differs between SQLite
//! and PostgreSQL is the [`Driver`] impl: the [`Dialect`] statements are
//! written in, and text the database refuses. Connecting, pooling, migrating
//! and when to commit stay with each store.

use serde_json::{Map, Value};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::filter::ValueType;
use crate::query::ListQuery;
use crate::record::{Kind, NewRecord, Record, properties};
use crate::sql::{self, Bind, Dialect, Statement};
use crate::store::scope_text;
use crate::{Error, Result};

/// A database a SQL store runs on.
pub(crate) trait Driver: Database<Arguments: IntoArguments<Self>> {
    /// The SQL this database reads.
    const DIALECT: Dialect;

    /// Refuses values the database cannot store or compare, before they reach it.
    fn check(_stmt: &Statement) -> Result<()> {
        Ok(())
    }
}

#[cfg(feature = "sqlite")]
impl Driver for sqlx::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
}

#[cfg(feature = "postgres")]
impl Driver for sqlx::Postgres {
    const DIALECT: Dialect = Dialect::Postgres;

    /// PostgreSQL `text` cannot hold U+0000: a NUL in a name, a property or a
    /// filter literal is the request's fault (400), not a storage failure.
    fn check(stmt: &Statement) -> Result<()> {
        if stmt.binds.iter().any(|b| matches!(b, Bind::Text(s) if s.contains('\0'))) {
            return Err(Error::invalid(
                "value",
                "text containing U+0000 (NUL) cannot be stored or searched in PostgreSQL",
            ));
        }
        Ok(())
    }
}

/// Binding and decoding, for every [`Driver`] whose types sqlx can encode
/// (the bounds live here once instead of on every function that runs SQL).
pub(crate) trait Codec: Driver {
    /// The statement as a sqlx query with its binds, after [`Driver::check`].
    fn query(stmt: Statement) -> Result<Query<'static, Self, Self::Arguments>>;
    /// Column `index` of `row` as an integer.
    fn int(row: &Self::Row, index: usize) -> Result<i64>;
    /// Column `index` of `row` as text.
    fn text(row: &Self::Row, index: usize) -> Result<String>;
    /// A row of [`sql::RECORD_COLUMNS`] as a record.
    fn record(row: &Self::Row) -> Result<Record>;
}

impl<DB: Driver> Codec for DB
where
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB>,
    for<'t> Option<f64>: Encode<'t, DB>,
    for<'t> Option<bool>: Encode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn query(stmt: Statement) -> Result<Query<'static, DB, DB::Arguments>> {
        DB::check(&stmt)?;
        // The text is fixed fragments only (see crate::sql); every value is bound.
        let mut q = sqlx::query::<DB>(AssertSqlSafe(stmt.sql));
        for bind in stmt.binds {
            q = match bind {
                Bind::Int(i) => q.bind(i),
                Bind::Real(x) => q.bind(x),
                Bind::Text(s) => q.bind(s),
                Bind::Bool(b) => q.bind(b),
                Bind::Null(ValueType::Int) => q.bind(None::<i64>),
                Bind::Null(ValueType::Double) => q.bind(None::<f64>),
                Bind::Null(ValueType::Bool) => q.bind(None::<bool>),
                Bind::Null(ValueType::String) => q.bind(None::<String>),
            };
        }
        Ok(q)
    }

    fn int(row: &DB::Row, index: usize) -> Result<i64> {
        row.try_get(index).map_err(|e| Error::Storage(format!("decoding column {index}: {e}")))
    }

    fn text(row: &DB::Row, index: usize) -> Result<String> {
        row.try_get(index).map_err(|e| Error::Storage(format!("decoding column {index}: {e}")))
    }

    fn record(row: &DB::Row) -> Result<Record> {
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
}

pub(crate) fn storage(err: sqlx::Error) -> Error {
    Error::Storage(err.to_string())
}

/// A unique-index violation as the API's conflict (409); anything else is storage.
fn conflict(err: sqlx::Error, kind: Kind, name: Option<&str>, external_id: Option<&str>, parent: i64) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // SQLite names the columns, PostgreSQL the index: both mention external_id.
            let message = if db.message().contains("external_id") {
                format!("externalId {:?} is already taken", external_id.unwrap_or_default())
            } else {
                format!("name {:?} is already taken{}", name.unwrap_or_default(), scope_text(parent))
            };
            Error::Conflict { kind: kind.type_name(), message }
        }
        _ => storage(err),
    }
}

/// Inserts `new` with its property rows; returns the new id.
pub(crate) async fn insert<DB: Codec>(conn: &mut DB::Connection, new: &NewRecord) -> Result<i64>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let row = DB::query(sql::insert(new, DB::DIALECT))?
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| conflict(e, new.kind, new.name.as_deref(), new.external_id.as_deref(), new.parent))?;
    let id = DB::int(&row, 0)?;
    write_properties::<DB>(conn, id, &new.body).await?;
    Ok(id)
}

/// Inserts `rows` (records under ids the caller chose, see [`sql::insert_many`])
/// with their property rows, a handful of multi-row statements for the lot.
/// A conflict fails the whole call and leaves the transaction to be rolled back.
pub(crate) async fn insert_many<DB: Codec>(conn: &mut DB::Connection, rows: &[(i64, &NewRecord)]) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    for stmt in sql::insert_many(rows, DB::DIALECT) {
        DB::query(stmt)?.execute(&mut *conn).await.map_err(storage)?;
    }
    Ok(())
}

/// Replaces `record` (all but its create time) and its property rows;
/// returns the stored create time.
pub(crate) async fn update<DB: Codec>(conn: &mut DB::Connection, record: &Record) -> Result<i64>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let updated = DB::query(sql::update(record, DB::DIALECT))?
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| conflict(e, record.kind, record.name.as_deref(), record.external_id.as_deref(), record.parent))?;
    let Some(row) = updated else {
        return Err(Error::NotFound { kind: record.kind.type_name(), key: format!("id {}", record.id) });
    };
    DB::query(sql::delete_properties(record.id, DB::DIALECT))?.execute(&mut *conn).await.map_err(storage)?;
    write_properties::<DB>(conn, record.id, &record.body).await?;
    DB::int(&row, 0)
}

async fn write_properties<DB: Codec>(conn: &mut DB::Connection, id: i64, body: &Map<String, Value>) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    for stmt in sql::insert_properties(id, &properties(body), DB::DIALECT) {
        DB::query(stmt)?.execute(&mut *conn).await.map_err(storage)?;
    }
    Ok(())
}

/// The record with this id, of any kind.
pub(crate) async fn get<'e, DB: Codec>(db: impl Executor<'e, Database = DB>, id: i64) -> Result<Option<Record>> {
    let row = DB::query(sql::get(id, DB::DIALECT))?.fetch_optional(db).await.map_err(storage)?;
    row.as_ref().map(DB::record).transpose()
}

/// One page of a list query.
pub(crate) async fn list<'e, DB: Codec>(
    db: impl Executor<'e, Database = DB>,
    query: &ListQuery,
) -> Result<Vec<Record>> {
    let rows = DB::query(sql::select(query, DB::DIALECT))?.fetch_all(db).await.map_err(storage)?;
    rows.iter().map(DB::record).collect()
}

/// The page-token key stored with the data, created on first use. Two
/// stores opening a fresh database at once agree: the insert keeps the first key.
pub(crate) async fn token_key<DB: Codec>(pool: &sqlx::Pool<DB>) -> Result<[u8; 32]>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut fresh = [0u8; 32];
    rand::fill(&mut fresh[..]);
    DB::query(sql::init_token_key(&fresh, DB::DIALECT))?.execute(pool).await.map_err(storage)?;
    let row = DB::query(Statement { sql: sql::TOKEN_KEY.into(), binds: Vec::new() })?
        .fetch_one(pool)
        .await
        .map_err(storage)?;
    let stored = DB::text(&row, 0)?;
    let mut key = [0u8; 32];
    match hex::decode(&stored) {
        Ok(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
        _ => return Err(Error::Storage("registry_meta.page_token_key is not 32 hex-encoded bytes".into())),
    }
    Ok(key)
}
