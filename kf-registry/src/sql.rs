//! A [`ListQuery`] as parameterised SQL: the text is assembled only from
//! fixed fragments chosen by the query's shape, and every value that came
//! from a request — names, literals, cursor positions, limits — travels as a
//! bind parameter ([`Bind`]). A property test checks that no user text ever
//! reaches the SQL string.
//!
//! Besides list queries it writes every other statement the SQL stores run
//! (insert, update, get, property rows, the token key), so both stores share
//! one text per statement and differ only in [`Dialect`].
//!
//! The schema it targets (tables `entities` and `properties`) is created by
//! the migrations under `migrations/`. The SQL is portable between SQLite and
//! PostgreSQL except where [`Dialect`] says otherwise: placeholders, and the
//! two things PostgreSQL's `LIKE` does differently (a default escape
//! character, and a locale-dependent `LOWER` for a bound pattern). This
//! module is pure: it never talks to a database.

use std::fmt::Write as _;

use crate::filter::{CompareOp, ValueType};
use crate::query::{Column, Filter, LeafOp, ListQuery, OrderBy, SortOrder, Target};
use crate::record::{NewRecord, Property, PropertyValue, Record};

/// Which SQL a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `?` placeholders; `LIKE` has no escape character (with
    /// `case_sensitive_like` on, as the SQLite store sets it).
    Sqlite,
    /// PostgreSQL: `$1`, `$2`, … placeholders; `LIKE … ESCAPE ''` turns off
    /// its default `\` escape, and a bound `LIKE` pattern is lowered under
    /// `COLLATE "C"` (ASCII only, like the columns it is compared with).
    Postgres,
}

/// A bind value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// 64-bit integer.
    Int(i64),
    /// Double.
    Real(f64),
    /// Text.
    Text(String),
    /// Boolean.
    Bool(bool),
    /// SQL `NULL` of a type (PostgreSQL wants to know which).
    Null(ValueType),
}

impl Bind {
    fn text(value: Option<&str>) -> Bind {
        value.map_or(Bind::Null(ValueType::String), |s| Bind::Text(s.to_owned()))
    }
}

/// SQL text and its bind values, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL.
    pub sql: String,
    /// The values for its placeholders.
    pub binds: Vec<Bind>,
}

/// The columns every record query selects, in the order stores decode them.
pub const RECORD_COLUMNS: &str =
    "e.id, e.kind, e.subtype, e.parent_id, e.name, e.external_id, e.state, e.create_time, e.update_time, e.body";

struct Builder {
    dialect: Dialect,
    sql: String,
    binds: Vec<Bind>,
}

impl Builder {
    fn new(dialect: Dialect) -> Self {
        Builder { dialect, sql: String::with_capacity(256), binds: Vec::new() }
    }

    fn finish(self) -> Statement {
        Statement { sql: self.sql, binds: self.binds }
    }

    fn bind(&mut self, value: Bind) {
        self.binds.push(value);
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => {
                let _ = write!(self.sql, "${}", self.binds.len());
            }
        }
    }

    fn push(&mut self, fragment: &'static str) {
        self.sql.push_str(fragment);
    }

    /// `value, value, …` as placeholders.
    fn bind_list(&mut self, values: impl IntoIterator<Item = Bind>) {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
    }

    /// Closes a `LIKE` whose pattern was just bound.
    fn end_like(&mut self) {
        if self.dialect == Dialect::Postgres {
            self.push(" ESCAPE ''");
        }
    }
}

fn column_sql(column: Column) -> &'static str {
    match column {
        Column::Id => "e.id",
        Column::Name => "e.name",
        Column::ExternalId => "e.external_id",
        Column::State => "e.state",
        Column::CreateTime => "e.create_time",
        Column::UpdateTime => "e.update_time",
    }
}

fn order_sql(order: OrderBy) -> &'static str {
    match order {
        OrderBy::Id => "e.id",
        OrderBy::CreateTime => "e.create_time",
        OrderBy::LastUpdateTime => "e.update_time",
    }
}

fn op_sql(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => " = ",
        CompareOp::Ne => " <> ",
        CompareOp::Lt => " < ",
        CompareOp::Le => " <= ",
        CompareOp::Gt => " > ",
        CompareOp::Ge => " >= ",
        CompareOp::Like | CompareOp::ILike => " LIKE ",
    }
}

fn bind_for(value: &PropertyValue, as_type: Option<ValueType>) -> Bind {
    match (value, as_type) {
        (PropertyValue::Int(n), Some(ValueType::Double)) => Bind::Real(*n as f64),
        (PropertyValue::String(s), _) => Bind::Text(s.clone()),
        (PropertyValue::Int(n), _) => Bind::Int(*n),
        (PropertyValue::Double(x), _) => Bind::Real(*x),
        (PropertyValue::Bool(b), _) => Bind::Bool(*b),
    }
}

/// Writes `lhs op value(s)`; `lhs` is a fixed fragment.
fn test(
    b: &mut Builder,
    lhs: &'static str,
    lower_lhs: &'static str,
    op: LeafOp,
    values: &[PropertyValue],
    t: Option<ValueType>,
) {
    match op {
        LeafOp::In => {
            b.push(lhs);
            b.push(" IN (");
            b.bind_list(values.iter().map(|v| bind_for(v, t)));
            b.push(")");
        }
        LeafOp::Compare(CompareOp::ILike) => {
            b.push(lower_lhs);
            b.push(" LIKE LOWER(");
            if let Some(v) = values.first() {
                b.bind(bind_for(v, t));
            }
            // A bound value takes the database's default collation, whose
            // LOWER may fold non-ASCII letters; the columns are "C" (ASCII only).
            if b.dialect == Dialect::Postgres {
                b.push(" COLLATE \"C\"");
            }
            b.push(")");
            b.end_like();
        }
        LeafOp::Compare(op) => {
            b.push(lhs);
            b.push(op_sql(op));
            if let Some(v) = values.first() {
                b.bind(bind_for(v, t));
            }
            if op == CompareOp::Like {
                b.end_like();
            }
        }
    }
}

fn filter(b: &mut Builder, f: &Filter) {
    match f {
        Filter::And(x, y) | Filter::Or(x, y) => {
            b.push("(");
            filter(b, x);
            b.push(if matches!(f, Filter::And(..)) { " AND " } else { " OR " });
            filter(b, y);
            b.push(")");
        }
        Filter::Leaf { target: Target::Column(column), op, values } => {
            let (lhs, lower) = match column {
                Column::Id => ("e.id", "LOWER(e.id)"),
                Column::Name => ("e.name", "LOWER(e.name)"),
                Column::ExternalId => ("e.external_id", "LOWER(e.external_id)"),
                Column::State => ("e.state", "LOWER(e.state)"),
                Column::CreateTime => ("e.create_time", "LOWER(e.create_time)"),
                Column::UpdateTime => ("e.update_time", "LOWER(e.update_time)"),
            };
            debug_assert_eq!(lhs, column_sql(*column));
            test(b, lhs, lower, *op, values, None);
        }
        Filter::Leaf { target: Target::Property { name, custom, types }, op, values } => {
            b.push("EXISTS (SELECT 1 FROM properties p WHERE p.entity_id = e.id AND p.name = ");
            b.bind(Bind::Text(name.clone()));
            b.push(" AND p.is_custom = ");
            b.bind(Bind::Bool(*custom));
            b.push(" AND (");
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    b.push(" OR ");
                }
                let (lhs, lower) = match t {
                    ValueType::String => ("p.string_value", "LOWER(p.string_value)"),
                    ValueType::Int => ("p.int_value", "LOWER(p.int_value)"),
                    ValueType::Double => ("p.double_value", "LOWER(p.double_value)"),
                    ValueType::Bool => ("p.bool_value", "LOWER(p.bool_value)"),
                };
                test(b, lhs, lower, *op, values, Some(*t));
            }
            b.push("))");
        }
    }
}

/// The `SELECT` for a list query. O(size of the filter).
///
/// ```
/// use kf_registry::filter::parse;
/// use kf_registry::query::{Filter, ListQuery};
/// use kf_registry::record::Kind;
/// use kf_registry::sql::{select, Bind, Dialect};
///
/// let mut q = ListQuery::all(Kind::RegisteredModel, 11);
/// q.filter = Some(Filter::resolve(&parse("name = 'x''; DROP TABLE entities; --'")?)?);
/// let stmt = select(&q, Dialect::Sqlite);
/// assert!(!stmt.sql.contains("DROP"));
/// assert!(stmt.binds.contains(&Bind::Text("x'; DROP TABLE entities; --".into())));
/// # Ok::<(), kf_registry::Error>(())
/// ```
pub fn select(query: &ListQuery, dialect: Dialect) -> Statement {
    let mut b = Builder::new(dialect);
    b.push("SELECT ");
    b.push(RECORD_COLUMNS);
    b.push(" FROM entities e WHERE e.kind = ");
    b.bind(Bind::Text(query.kind.as_str().to_owned()));
    if let Some(subtype) = &query.subtype {
        b.push(" AND e.subtype = ");
        b.bind(Bind::Text(subtype.clone()));
    }
    if let Some(parent) = query.parent {
        b.push(" AND e.parent_id = ");
        b.bind(Bind::Int(parent));
    }
    if let Some(f) = &query.filter {
        b.push(" AND ");
        filter(&mut b, f);
    }
    let key = order_sql(query.order_by);
    let (cmp, dir) = match query.sort {
        SortOrder::Asc => (" > ", " ASC"),
        SortOrder::Desc => (" < ", " DESC"),
    };
    if let Some(c) = query.after {
        if query.order_by == OrderBy::Id {
            b.push(" AND e.id");
            b.push(cmp);
            b.bind(Bind::Int(c.id));
        } else {
            // A row-value comparison, not `k > ? OR (k = ? AND id > ?)`: SQLite
            // and PostgreSQL both turn it into an index range, so a deep page
            // costs the same as the first.
            b.push(" AND (");
            b.push(key);
            b.push(", e.id)");
            b.push(cmp);
            b.push("(");
            b.bind(Bind::Int(c.key));
            b.push(", ");
            b.bind(Bind::Int(c.id));
            b.push(")");
        }
    }
    b.push(" ORDER BY ");
    b.push(key);
    b.push(dir);
    if query.order_by != OrderBy::Id {
        b.push(", e.id");
        b.push(dir);
    }
    b.push(" LIMIT ");
    b.bind(Bind::Int(i64::try_from(query.limit).unwrap_or(i64::MAX)));
    b.finish()
}

/// `name` when the kind's names are unique, else `NULL` (NULLs never collide
/// in the unique index).
fn unique_name(kind: crate::record::Kind, name: Option<&str>) -> Bind {
    Bind::text(name.filter(|_| kind.names_unique()))
}

fn body_text(body: &serde_json::Map<String, serde_json::Value>) -> Bind {
    // A map of JSON values always serialises; no clone into a `Value` first.
    Bind::Text(serde_json::to_string(body).unwrap_or_default())
}

/// A new entity's column values after `id`, in the order the INSERTs list
/// the columns: kind, subtype, parent_id, name, unique_name, external_id,
/// state, create_time, update_time, body.
fn entity_values(new: &NewRecord) -> [Bind; 10] {
    [
        Bind::Text(new.kind.as_str().to_owned()),
        Bind::Text(new.subtype.clone()),
        Bind::Int(new.parent),
        Bind::text(new.name.as_deref()),
        unique_name(new.kind, new.name.as_deref()),
        Bind::text(new.external_id.as_deref()),
        Bind::text(new.state.as_deref()),
        Bind::Int(new.time),
        Bind::Int(new.time),
        body_text(&new.body),
    ]
}

/// Inserts a record's row in `entities`, returning its new id (one row, one
/// integer column). The properties go in separately ([`insert_properties`]).
pub fn insert(new: &NewRecord, dialect: Dialect) -> Statement {
    let mut b = Builder::new(dialect);
    b.push(
        "INSERT INTO entities (kind, subtype, parent_id, name, unique_name, external_id, state, create_time, \
         update_time, body) VALUES (",
    );
    b.bind_list(entity_values(new));
    b.push(") RETURNING id");
    b.finish()
}

/// Replaces the row of `record.id` (of `record.kind`) but its create time,
/// returning the stored create time: no row means no such record.
pub fn update(record: &Record, dialect: Dialect) -> Statement {
    let mut b = Builder::new(dialect);
    let columns: [(&'static str, Bind); 8] = [
        ("subtype = ", Bind::Text(record.subtype.clone())),
        (", parent_id = ", Bind::Int(record.parent)),
        (", name = ", Bind::text(record.name.as_deref())),
        (", unique_name = ", unique_name(record.kind, record.name.as_deref())),
        (", external_id = ", Bind::text(record.external_id.as_deref())),
        (", state = ", Bind::text(record.state.as_deref())),
        (", update_time = ", Bind::Int(record.update_time)),
        (", body = ", body_text(&record.body)),
    ];
    b.push("UPDATE entities SET ");
    for (column, value) in columns {
        b.push(column);
        b.bind(value);
    }
    b.push(" WHERE id = ");
    b.bind(Bind::Int(record.id));
    b.push(" AND kind = ");
    b.bind(Bind::Text(record.kind.as_str().to_owned()));
    b.push(" RETURNING create_time");
    b.finish()
}

/// The record with this id, as [`RECORD_COLUMNS`].
pub fn get(id: i64, dialect: Dialect) -> Statement {
    let mut b = Builder::new(dialect);
    b.push("SELECT ");
    b.push(RECORD_COLUMNS);
    b.push(" FROM entities e WHERE e.id = ");
    b.bind(Bind::Int(id));
    b.finish()
}

/// Deletes the property rows of a record (before they are written anew).
pub fn delete_properties(id: i64, dialect: Dialect) -> Statement {
    let mut b = Builder::new(dialect);
    b.push("DELETE FROM properties WHERE entity_id = ");
    b.bind(Bind::Int(id));
    b.finish()
}

/// Property rows per `INSERT` (7 parameters each; both databases allow far more per statement).
const PROPERTY_ROWS_PER_STATEMENT: usize = 64;

/// Inserts a record's property rows, many rows per statement (one round
/// trip per 64 rows instead of one per property). No statements for no properties.
pub fn insert_properties(id: i64, properties: &[Property], dialect: Dialect) -> Vec<Statement> {
    let rows: Vec<(i64, &Property)> = properties.iter().map(|p| (id, p)).collect();
    rows.chunks(PROPERTY_ROWS_PER_STATEMENT).map(|chunk| property_rows(chunk, dialect)).collect()
}

/// One `INSERT INTO properties` of `rows` (entity id, property).
fn property_rows(rows: &[(i64, &Property)], dialect: Dialect) -> Statement {
    let mut b = Builder::new(dialect);
    b.push(
        "INSERT INTO properties (entity_id, name, is_custom, string_value, int_value, double_value, \
         bool_value) VALUES ",
    );
    for (i, (id, p)) in rows.iter().enumerate() {
        b.push(if i == 0 { "(" } else { ", (" });
        // the value in its own type's column, NULL in the other three
        let column = |t: ValueType| match (&p.value, t) {
            (PropertyValue::String(s), ValueType::String) => Bind::Text(s.clone()),
            (PropertyValue::Int(n), ValueType::Int) => Bind::Int(*n),
            (PropertyValue::Double(x), ValueType::Double) => Bind::Real(*x),
            (PropertyValue::Bool(v), ValueType::Bool) => Bind::Bool(*v),
            _ => Bind::Null(t),
        };
        b.bind_list([
            Bind::Int(*id),
            Bind::Text(p.name.clone()),
            Bind::Bool(p.custom),
            column(ValueType::String),
            column(ValueType::Int),
            column(ValueType::Double),
            column(ValueType::Bool),
        ]);
        b.push(")");
    }
    b.finish()
}

/// Splits `items` into runs whose lengths are powers of two, at most `max`
/// (itself a power of two), largest first: 37 items in runs of 32, 4 and 1.
/// A multi-row statement built per run has one of log2(max)+1 texts, so a
/// driver that caches prepared statements by text keeps them all, whatever
/// the number of rows.
fn pow2_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = max.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Entity rows per multi-row `INSERT` (11 parameters each).
const ENTITY_ROWS_PER_STATEMENT: usize = 64;

/// Inserts many records with ids the caller chose, and their property rows:
/// `INSERT INTO entities` statements of up to 64 rows, then `INSERT INTO
/// properties` statements of up to 64 rows, in power-of-two sizes so their
/// texts repeat (a handful of statements for a whole batch, instead of two
/// per record). Run them in order, in one transaction.
///
/// For a store that holds the database's write lock and knows the next free
/// id (see [`NEXT_ID`]): an id already taken fails the statement, like a
/// taken name does.
pub fn insert_many(rows: &[(i64, &NewRecord)], dialect: Dialect) -> Vec<Statement> {
    let mut statements: Vec<Statement> = pow2_chunks(rows, ENTITY_ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut b = Builder::new(dialect);
            b.push(
                "INSERT INTO entities (id, kind, subtype, parent_id, name, unique_name, external_id, state, \
                 create_time, update_time, body) VALUES ",
            );
            for (i, (id, new)) in chunk.iter().enumerate() {
                b.push(if i == 0 { "(" } else { ", (" });
                b.bind_list(std::iter::once(Bind::Int(*id)).chain(entity_values(new)));
                b.push(")");
            }
            b.finish()
        })
        .collect();
    let props: Vec<(i64, Vec<Property>)> =
        rows.iter().map(|(id, new)| (*id, crate::record::properties(&new.body))).collect();
    let flat: Vec<(i64, &Property)> = props.iter().flat_map(|(id, ps)| ps.iter().map(move |p| (*id, p))).collect();
    statements.extend(pow2_chunks(&flat, PROPERTY_ROWS_PER_STATEMENT).map(|chunk| property_rows(chunk, dialect)));
    statements
}

/// The id after the largest an `entities` row ever had (SQLite: its
/// `AUTOINCREMENT` sequence, or the largest id if that is higher), one row,
/// one integer column. Only meaningful inside the write transaction that
/// then uses it.
pub const NEXT_ID: &str = "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'entities'), 0), \
                           COALESCE((SELECT MAX(id) FROM entities), 0)) + 1";

/// Stores `fresh` as the page-token key unless one is stored already.
pub fn init_token_key(fresh: &[u8; 32], dialect: Dialect) -> Statement {
    let mut b = Builder::new(dialect);
    b.push("INSERT INTO registry_meta (key, value) VALUES ('page_token_key', ");
    b.bind(Bind::Text(hex::encode(fresh)));
    b.push(") ON CONFLICT (key) DO NOTHING");
    b.finish()
}

/// The stored page-token key (hex text), one row, one column.
pub const TOKEN_KEY: &str = "SELECT value FROM registry_meta WHERE key = 'page_token_key'";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests::arb_expr;
    use crate::filter::{Expr, Literal};
    use crate::query::Cursor;
    use crate::record::Kind;
    use proptest::prelude::*;

    /// The same tree with every piece of user text replaced by `f(text)`.
    fn map_text(e: &Expr, f: &dyn Fn(&str) -> String) -> Expr {
        let lit = |l: &Literal| match l {
            Literal::String(s) => Literal::String(f(s)),
            other => other.clone(),
        };
        match e {
            Expr::And(a, b) => Expr::And(Box::new(map_text(a, f)), Box::new(map_text(b, f))),
            Expr::Or(a, b) => Expr::Or(Box::new(map_text(a, f)), Box::new(map_text(b, f))),
            Expr::Compare { field, op, value } => {
                let mut field = field.clone();
                field.name = f(&field.name);
                Expr::Compare { field, op: *op, value: lit(value) }
            }
            Expr::In { field, values } => {
                let mut field = field.clone();
                field.name = f(&field.name);
                Expr::In { field, values: values.iter().map(lit).collect() }
            }
        }
    }

    /// Whether `sql`'s placeholders are exactly `binds` many, in the dialect's
    /// style: `?` for SQLite; `$1`, `$2`, … in order, each once, for PostgreSQL.
    fn placeholders_fit(sql: &str, dialect: Dialect, binds: usize) -> bool {
        match dialect {
            Dialect::Sqlite => sql.matches('?').count() == binds && !sql.contains('$'),
            Dialect::Postgres => {
                let numbers: Vec<usize> = sql
                    .split('$')
                    .skip(1)
                    .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0))
                    .collect();
                !sql.contains('?') && numbers == (1..=binds).collect::<Vec<_>>()
            }
        }
    }

    /// The tree without the leaves that do not type-check (a random tree of
    /// two dozen leaves almost always has one, and one fails it whole).
    fn well_typed(e: &Expr) -> Option<Expr> {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => match (well_typed(a), well_typed(b)) {
                (Some(a), Some(b)) if matches!(e, Expr::And(..)) => Some(Expr::And(Box::new(a), Box::new(b))),
                (Some(a), Some(b)) => Some(Expr::Or(Box::new(a), Box::new(b))),
                (a, b) => a.or(b),
            },
            leaf => Filter::resolve(leaf).is_ok().then(|| leaf.clone()),
        }
    }

    const MARK: char = '\u{1F512}';

    fn marked(s: &str) -> String {
        format!("{MARK}{s}'; --")
    }

    fn dialects() -> impl Strategy<Value = Dialect> {
        prop_oneof![Just(Dialect::Sqlite), Just(Dialect::Postgres)]
    }

    proptest! {
        #[test]
        fn no_user_text_ever_reaches_the_sql(
            expr in arb_expr(),
            order in 0u8..3,
            desc: bool,
            cursor: Option<(i64, i64)>,
            dialect in dialects(),
        ) {
            // Every name and string is marked; markers can only reach the SQL as text if a value was spliced in.
            let Some(expr) = well_typed(&map_text(&expr, &marked)) else { return Ok(()) };
            let filter = Filter::resolve(&expr).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let query = ListQuery {
                kind: Kind::Artifact,
                subtype: Some(marked("sub")),
                parent: Some(3),
                filter: Some(filter),
                order_by: [OrderBy::Id, OrderBy::CreateTime, OrderBy::LastUpdateTime][order as usize],
                sort: if desc { SortOrder::Desc } else { SortOrder::Asc },
                after: cursor.map(|(key, id)| Cursor { key, id }),
                limit: 11,
            };
            let stmt = select(&query, dialect);
            prop_assert!(!stmt.sql.contains(MARK), "{}", stmt.sql);
            prop_assert!(stmt.sql.is_ascii());
            prop_assert!(placeholders_fit(&stmt.sql, dialect, stmt.binds.len()), "{}", stmt.sql);
            // and the SQL depends only on the shape: other text, same SQL
            let plain = map_text(&expr, &|s| s.chars().rev().collect::<String>() + "x");
            if let Ok(plain) = Filter::resolve(&plain) {
                let other = select(&ListQuery { filter: Some(plain), ..query.clone() }, dialect);
                if other.binds.len() == stmt.binds.len() {
                    prop_assert_eq!(other.sql, stmt.sql);
                }
            }
            // both dialects bind the same values in the same order
            let other_dialect = if dialect == Dialect::Sqlite { Dialect::Postgres } else { Dialect::Sqlite };
            prop_assert_eq!(select(&query, other_dialect).binds, stmt.binds);
        }

        #[test]
        fn writes_bind_every_value_too(
            texts in proptest::collection::vec("\\PC{0,12}", 6),
            numbers in proptest::collection::vec(any::<i64>(), 3),
            dialect in dialects(),
        ) {
            let body = serde_json::json!({
                (marked(&texts[0])): marked(&texts[1]),
                "count": numbers[0],
                "customProperties": {
                    (marked(&texts[2])): {"metadataType": "MetadataStringValue", "string_value": marked(&texts[3])},
                    "flag": {"metadataType": "MetadataBoolValue", "bool_value": true},
                    "x": {"metadataType": "MetadataDoubleValue", "double_value": 0.5},
                },
            });
            let new = NewRecord {
                kind: Kind::Artifact,
                subtype: marked(&texts[4]),
                parent: numbers[1],
                name: Some(marked(&texts[5])),
                external_id: Some(marked(&texts[0])),
                state: None,
                time: numbers[2],
                body: body.as_object().cloned().unwrap_or_default(),
            };
            let record = new.clone().into_record(numbers[1]);
            let props = crate::record::properties(&new.body);
            let mut statements = vec![insert(&new, dialect), update(&record, dialect), get(numbers[0], dialect)];
            statements.extend(insert_properties(record.id, &props, dialect));
            statements.extend(insert_many(&[(numbers[1], &new), (numbers[1] + 1, &new)], dialect));
            statements.push(delete_properties(record.id, dialect));
            statements.push(init_token_key(&[7; 32], dialect));
            for stmt in statements {
                prop_assert!(!stmt.sql.contains(MARK), "{}", stmt.sql);
                prop_assert!(stmt.sql.is_ascii());
                prop_assert!(placeholders_fit(&stmt.sql, dialect, stmt.binds.len()), "{}", stmt.sql);
            }
        }
    }

    #[test]
    fn keyset_and_order() {
        let mut q = ListQuery::all(Kind::ModelVersion, 4);
        q.order_by = OrderBy::CreateTime;
        q.sort = SortOrder::Desc;
        q.after = Some(Cursor { key: 10, id: 5 });
        let stmt = select(&q, Dialect::Postgres);
        assert!(
            stmt.sql.ends_with("AND (e.create_time, e.id) < ($2, $3) ORDER BY e.create_time DESC, e.id DESC LIMIT $4"),
            "{}",
            stmt.sql
        );
        assert_eq!(stmt.binds[1..], [Bind::Int(10), Bind::Int(5), Bind::Int(4)]);
    }

    #[test]
    fn batches_split_in_powers_of_two() {
        let sizes = |n: usize| pow2_chunks(&vec![0u8; n], 64).map(<[u8]>::len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(37), [32, 4, 1]);
        assert_eq!(sizes(200), [64, 64, 64, 8]);
    }

    #[test]
    fn insert_many_writes_every_record_and_property_under_its_id() {
        let new = |name: &str| NewRecord {
            kind: Kind::ModelVersion,
            subtype: String::new(),
            parent: 1,
            name: Some(name.into()),
            external_id: None,
            state: Some("LIVE".into()),
            time: 1000,
            body: serde_json::json!({"name": name, "owner": "o", "customProperties": {
                "i": {"metadataType": "MetadataIntValue", "int_value": "3"}}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        };
        let (a, b, c) = (new("a"), new("b"), new("c"));
        let stmts = insert_many(&[(7, &a), (8, &b), (9, &c)], Dialect::Sqlite);
        // 3 rows: 2 + 1 entity rows, 4 + 2 property rows (owner and i for each)
        let rows = |s: &Statement| s.sql.matches('(').count() - 1;
        assert_eq!(stmts.iter().map(rows).collect::<Vec<_>>(), [2, 1, 4, 2]);
        assert_eq!(stmts[0].binds.len(), 22);
        assert_eq!((&stmts[0].binds[0], &stmts[0].binds[11]), (&Bind::Int(7), &Bind::Int(8)));
        assert_eq!(stmts[1].binds[0], Bind::Int(9));
        let ids: Vec<&Bind> = stmts[2..].iter().flat_map(|s| s.binds.iter().step_by(7)).collect();
        assert_eq!(ids, [&Bind::Int(7), &Bind::Int(7), &Bind::Int(8), &Bind::Int(8), &Bind::Int(9), &Bind::Int(9)]);
    }
}
