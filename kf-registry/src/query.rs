//! What a list asks a store for: scope, a resolved filter, order and a keyset
//! position ([`ListQuery`]); and the in-memory meaning of all of it, which the
//! SQL compiler in [`crate::sql`] must match (the conformance suite checks that
//! both agree).
//!
//! Resolution ([`Filter::resolve`]) turns the parser's field names into
//! targets — a record column (`id`, `name`, `externalId`, `state`, the two
//! times) or a property — and checks that every literal fits its target, so a
//! store never sees an ill-typed comparison. This module is pure.

use std::cmp::Ordering;

use crate::filter::{CompareOp, Expr, Field, Literal, ValueType};
use crate::record::{Kind, Property, PropertyValue, Record};
use crate::{Error, Result};

/// Record columns a filter can name directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `id` (integer).
    Id,
    /// `name` (text).
    Name,
    /// `externalId` (text).
    ExternalId,
    /// `state` (text).
    State,
    /// `createTimeSinceEpoch` (integer).
    CreateTime,
    /// `lastUpdateTimeSinceEpoch` (integer).
    UpdateTime,
}

impl Column {
    fn from_field(name: &str) -> Option<Column> {
        Some(match name {
            "id" => Column::Id,
            "name" => Column::Name,
            "externalId" => Column::ExternalId,
            "state" => Column::State,
            "createTimeSinceEpoch" => Column::CreateTime,
            "lastUpdateTimeSinceEpoch" => Column::UpdateTime,
            _ => return None,
        })
    }

    /// Integer columns; the others hold text.
    pub fn is_integer(self) -> bool {
        matches!(self, Column::Id | Column::CreateTime | Column::UpdateTime)
    }

    /// The column's value in a record.
    pub fn value(self, record: &Record) -> Option<PropertyValue> {
        match self {
            Column::Id => Some(PropertyValue::Int(record.id)),
            Column::CreateTime => Some(PropertyValue::Int(record.create_time)),
            Column::UpdateTime => Some(PropertyValue::Int(record.update_time)),
            Column::Name => record.name.clone().map(PropertyValue::String),
            Column::ExternalId => record.external_id.clone().map(PropertyValue::String),
            Column::State => record.state.clone().map(PropertyValue::String),
        }
    }
}

/// Fields that wire types define (so an unquoted name means the field, not a
/// custom property of the same name). Anything else is a custom property.
pub const TYPED_FIELDS: [&str; 43] = [
    "description",
    "owner",
    "readme",
    "maturity",
    "language",
    "tasks",
    "provider",
    "logo",
    "license",
    "licenseLink",
    "libraryName",
    "registeredModelId",
    "author",
    "artifactType",
    "experimentId",
    "experimentRunId",
    "modelFormatName",
    "storageKey",
    "storagePath",
    "modelFormatVersion",
    "serviceAccountName",
    "modelSourceKind",
    "modelSourceClass",
    "modelSourceGroup",
    "modelSourceId",
    "modelSourceName",
    "uri",
    "digest",
    "sourceType",
    "source",
    "schema",
    "profile",
    "value",
    "timestamp",
    "step",
    "parameterType",
    "servingEnvironmentId",
    "modelVersionId",
    "runtime",
    "desiredState",
    "lastKnownState",
    "startTimeSinceEpoch",
    "endTimeSinceEpoch",
];

/// What a filter leaf looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A record column.
    Column(Column),
    /// A property, matched by name and origin, in any of `types` (in order of preference).
    Property {
        /// Property name.
        name: String,
        /// Custom property (true) or typed field (false).
        custom: bool,
        /// Value columns the literal may be compared with.
        types: Vec<ValueType>,
    },
}

/// The operation of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafOp {
    /// A comparison with `values[0]`.
    Compare(CompareOp),
    /// Membership in `values`.
    In,
}

/// A resolved, type-checked filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// `target op values`.
    Leaf {
        /// What is compared.
        target: Target,
        /// How.
        op: LeafOp,
        /// With what (one value for comparisons, one or more for `IN`).
        values: Vec<PropertyValue>,
    },
}

fn literal_value(lit: &Literal) -> PropertyValue {
    match lit {
        Literal::String(s) => PropertyValue::String(s.clone()),
        Literal::Int(n) => PropertyValue::Int(*n),
        Literal::Double(x) => PropertyValue::Double(*x),
        Literal::Bool(b) => PropertyValue::Bool(*b),
    }
}

fn fail<T>(field: &Field, message: String) -> Result<T> {
    Err(Error::Filter { position: 0, message: format!("{field}: {message}") })
}

impl Filter {
    /// Resolves every field of `expr` and checks every literal against it.
    /// O(size of the tree).
    ///
    /// ```
    /// use kf_registry::filter::parse;
    /// use kf_registry::query::{Column, Filter, Target};
    ///
    /// let f = Filter::resolve(&parse("name = 'iris'")?)?;
    /// assert!(matches!(f, Filter::Leaf { target: Target::Column(Column::Name), .. }));
    /// assert!(Filter::resolve(&parse("name = 3")?).is_err()); // a name is text
    /// # Ok::<(), kf_registry::Error>(())
    /// ```
    pub fn resolve(expr: &Expr) -> Result<Filter> {
        Ok(match expr {
            Expr::And(a, b) => Filter::And(Box::new(Filter::resolve(a)?), Box::new(Filter::resolve(b)?)),
            Expr::Or(a, b) => Filter::Or(Box::new(Filter::resolve(a)?), Box::new(Filter::resolve(b)?)),
            Expr::Compare { field, op, value } => Self::leaf(field, LeafOp::Compare(*op), std::slice::from_ref(value))?,
            Expr::In { field, values } => Self::leaf(field, LeafOp::In, values)?,
        })
    }

    fn leaf(field: &Field, op: LeafOp, literals: &[Literal]) -> Result<Filter> {
        let like = matches!(op, LeafOp::Compare(CompareOp::Like | CompareOp::ILike));
        let column = if field.quoted || field.value_type.is_some() { None } else { Column::from_field(&field.name) };
        if let Some(column) = column {
            let mut values = Vec::with_capacity(literals.len());
            for lit in literals {
                let value = match (column.is_integer(), lit) {
                    (true, Literal::Int(n)) if !like => PropertyValue::Int(*n),
                    // ids and times travel as strings in the API; accept them quoted too
                    (true, Literal::String(s)) if !like => match s.parse::<i64>() {
                        Ok(n) => PropertyValue::Int(n),
                        Err(_) => return fail(field, format!("expected an integer, found {lit}")),
                    },
                    (true, _) => return fail(field, format!("expected an integer, found {lit}")),
                    (false, Literal::String(s)) => PropertyValue::String(s.clone()),
                    (false, _) => return fail(field, format!("expected a quoted string, found {lit}")),
                };
                values.push(value);
            }
            return Ok(Filter::Leaf { target: Target::Column(column), op, values });
        }
        let custom = field.quoted || !TYPED_FIELDS.contains(&field.name.as_str());
        let first = literals.first().map(literal_value);
        let category = |v: &PropertyValue| match v {
            PropertyValue::String(_) => 0,
            PropertyValue::Int(_) | PropertyValue::Double(_) => 1,
            PropertyValue::Bool(_) => 2,
        };
        let values: Vec<PropertyValue> = literals.iter().map(literal_value).collect();
        if let Some(first) = &first
            && let Some(odd) = values.iter().find(|v| category(v) != category(first))
        {
            return fail(field, format!("IN mixes value types ({first:?} and {odd:?})"));
        }
        let types = match (field.value_type, &first) {
            (_, None) => return fail(field, "no value".into()),
            (Some(ValueType::String), Some(PropertyValue::String(_))) => vec![ValueType::String],
            (Some(ValueType::Int), Some(PropertyValue::Int(_) | PropertyValue::Double(_))) if !like => {
                vec![ValueType::Int]
            }
            (Some(ValueType::Double), Some(PropertyValue::Int(_) | PropertyValue::Double(_))) if !like => {
                vec![ValueType::Double]
            }
            (Some(ValueType::Bool), Some(PropertyValue::Bool(_))) if !like => vec![ValueType::Bool],
            (Some(t), Some(v)) => return fail(field, format!("a {} cannot be compared with {v:?}", t.suffix())),
            (None, Some(PropertyValue::String(_))) => vec![ValueType::String],
            (None, Some(PropertyValue::Int(_))) if !like => vec![ValueType::Int, ValueType::Double],
            (None, Some(PropertyValue::Double(_))) if !like => vec![ValueType::Double, ValueType::Int],
            (None, Some(PropertyValue::Bool(_))) if !like => vec![ValueType::Bool],
            (None, Some(v)) => return fail(field, format!("LIKE needs a quoted pattern, found {v:?}")),
        };
        Ok(Filter::Leaf { target: Target::Property { name: field.name.clone(), custom, types }, op, values })
    }

    /// Whether `record` (with its derived `properties`) passes the filter.
    /// O(size of the tree × properties).
    pub fn matches(&self, record: &Record, properties: &[Property]) -> bool {
        match self {
            Filter::And(a, b) => a.matches(record, properties) && b.matches(record, properties),
            Filter::Or(a, b) => a.matches(record, properties) || b.matches(record, properties),
            Filter::Leaf { target, op, values } => match target {
                Target::Column(column) => column.value(record).is_some_and(|actual| test(&actual, *op, values)),
                Target::Property { name, custom, types } => properties.iter().any(|p| {
                    p.name == *name
                        && p.custom == *custom
                        && types.contains(&type_of(&p.value))
                        && test(&p.value, *op, values)
                }),
            },
        }
    }
}

fn type_of(value: &PropertyValue) -> ValueType {
    match value {
        PropertyValue::String(_) => ValueType::String,
        PropertyValue::Int(_) => ValueType::Int,
        PropertyValue::Double(_) => ValueType::Double,
        PropertyValue::Bool(_) => ValueType::Bool,
    }
}

fn test(actual: &PropertyValue, op: LeafOp, values: &[PropertyValue]) -> bool {
    match op {
        LeafOp::In => values.iter().any(|v| compare(actual, v) == Some(Ordering::Equal)),
        LeafOp::Compare(CompareOp::Like) => match (actual, values.first()) {
            (PropertyValue::String(s), Some(PropertyValue::String(p))) => like(s, p),
            _ => false,
        },
        LeafOp::Compare(CompareOp::ILike) => match (actual, values.first()) {
            (PropertyValue::String(s), Some(PropertyValue::String(p))) => {
                like(&s.to_ascii_lowercase(), &p.to_ascii_lowercase())
            }
            _ => false,
        },
        LeafOp::Compare(op) => {
            let Some(ord) = values.first().and_then(|v| compare(actual, v)) else { return false };
            match op {
                CompareOp::Eq => ord == Ordering::Equal,
                CompareOp::Ne => ord != Ordering::Equal,
                CompareOp::Lt => ord == Ordering::Less,
                CompareOp::Le => ord != Ordering::Greater,
                CompareOp::Gt => ord == Ordering::Greater,
                CompareOp::Ge => ord != Ordering::Less,
                CompareOp::Like | CompareOp::ILike => false,
            }
        }
    }
}

/// Orders two values the way SQL does: text by bytes, numbers numerically
/// (integers exactly), booleans false < true; different kinds do not compare.
pub fn compare(a: &PropertyValue, b: &PropertyValue) -> Option<Ordering> {
    use PropertyValue as V;
    match (a, b) {
        (V::String(x), V::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Int(x), V::Double(y)) => (*x as f64).partial_cmp(y),
        (V::Double(x), V::Int(y)) => x.partial_cmp(&(*y as f64)),
        (V::Double(x), V::Double(y)) => x.partial_cmp(y),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// SQL `LIKE` on characters, as SQLite (with `case_sensitive_like`) and
/// PostgreSQL evaluate it: `%` matches any run, `_` any one character,
/// everything else itself, with no escape character. O(len(text) ×
/// len(pattern)) worst case, no recursion.
///
/// ```
/// use kf_registry::query::like;
/// assert!(like("iris-page-3", "iris-%"));
/// assert!(like("aéc", "a_c"));
/// assert!(!like("Abc", "a%"));
/// ```
pub fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || (pattern[p] != '%' && pattern[p] == text[t])) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

/// `orderBy`: the key a list is sorted by (ties broken by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OrderBy {
    /// `ID` (the default).
    #[default]
    Id,
    /// `CREATE_TIME`.
    CreateTime,
    /// `LAST_UPDATE_TIME`.
    LastUpdateTime,
}

impl OrderBy {
    /// Reads the API spelling.
    pub fn parse(text: &str) -> Result<OrderBy> {
        match text {
            "ID" => Ok(OrderBy::Id),
            "CREATE_TIME" => Ok(OrderBy::CreateTime),
            "LAST_UPDATE_TIME" => Ok(OrderBy::LastUpdateTime),
            other => {
                Err(Error::invalid("orderBy", format!("expected CREATE_TIME, LAST_UPDATE_TIME or ID, found {other:?}")))
            }
        }
    }

    /// The record's sort key under this order.
    pub fn key(self, record: &Record) -> i64 {
        match self {
            OrderBy::Id => record.id,
            OrderBy::CreateTime => record.create_time,
            OrderBy::LastUpdateTime => record.update_time,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            OrderBy::Id => 0,
            OrderBy::CreateTime => 1,
            OrderBy::LastUpdateTime => 2,
        }
    }
}

/// `sortOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortOrder {
    /// `ASC` (the default).
    #[default]
    Asc,
    /// `DESC`.
    Desc,
}

impl SortOrder {
    /// Reads the API spelling.
    pub fn parse(text: &str) -> Result<SortOrder> {
        match text {
            "ASC" => Ok(SortOrder::Asc),
            "DESC" => Ok(SortOrder::Desc),
            other => Err(Error::invalid("sortOrder", format!("expected ASC or DESC, found {other:?}"))),
        }
    }
}

/// A keyset position: the sort key and id of the last row already returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// Sort key of the last row.
    pub key: i64,
    /// Id of the last row.
    pub id: i64,
}

/// One list request, as a store sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// The kind listed.
    pub kind: Kind,
    /// Only this `artifactType` (artifacts only).
    pub subtype: Option<String>,
    /// Only children of this parent.
    pub parent: Option<i64>,
    /// Only records passing this filter.
    pub filter: Option<Filter>,
    /// Sort key.
    pub order_by: OrderBy,
    /// Sort direction.
    pub sort: SortOrder,
    /// Only rows strictly after this position.
    pub after: Option<Cursor>,
    /// At most this many rows.
    pub limit: usize,
}

impl ListQuery {
    /// A query for every record of `kind`, by id, up to `limit`.
    pub fn all(kind: Kind, limit: usize) -> Self {
        ListQuery {
            kind,
            subtype: None,
            parent: None,
            filter: None,
            order_by: OrderBy::Id,
            sort: SortOrder::Asc,
            after: None,
            limit,
        }
    }

    /// Whether a record is in scope and past the cursor (filter aside).
    pub fn in_scope(&self, record: &Record) -> bool {
        record.kind == self.kind
            && self.subtype.as_ref().is_none_or(|s| *s == record.subtype)
            && self.parent.is_none_or(|p| p == record.parent)
            && self.after.is_none_or(|c| {
                let key = (self.order_by.key(record), record.id);
                match self.sort {
                    SortOrder::Asc => key > (c.key, c.id),
                    SortOrder::Desc => key < (c.key, c.id),
                }
            })
    }

    /// Orders two records as this query lists them.
    pub fn ordering(&self, a: &Record, b: &Record) -> Ordering {
        let ord = (self.order_by.key(a), a.id).cmp(&(self.order_by.key(b), b.id));
        match self.sort {
            SortOrder::Asc => ord,
            SortOrder::Desc => ord.reverse(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;
    use proptest::prelude::*;

    fn props(doc: serde_json::Value) -> Vec<Property> {
        crate::record::properties(doc.as_object().unwrap())
    }

    fn record() -> Record {
        Record {
            id: 7,
            kind: Kind::RegisteredModel,
            subtype: String::new(),
            parent: 0,
            name: Some("iris-page-3".into()),
            external_id: None,
            state: Some("LIVE".into()),
            create_time: 100,
            update_time: 200,
            body: Default::default(),
        }
    }

    fn check(q: &str) -> bool {
        let doc = serde_json::json!({"owner": "alice", "customProperties": {
            "rank": {"metadataType": "MetadataIntValue", "int_value": "3"},
            "score": {"metadataType": "MetadataDoubleValue", "double_value": 0.3},
            "even": {"metadataType": "MetadataBoolValue", "bool_value": false},
            "probe-flag": {"metadataType": "MetadataStringValue", "string_value": "yes"},
            "owner": {"metadataType": "MetadataStringValue", "string_value": "custom-owner"}}});
        Filter::resolve(&parse(q).unwrap()).unwrap().matches(&record(), &props(doc))
    }

    #[test]
    fn semantics() {
        assert!(check("name = 'iris-page-3'"));
        assert!(check("rank >= 3 AND rank < 4 AND rank != 0 AND rank <> 6"));
        assert!(check("rank = 3.0")); // numbers compare across int and double
        assert!(check("score > 0.25 AND score < 1"));
        assert!(check("even = false"));
        assert!(!check("even = true"));
        assert!(check("rank.int_value < 4"));
        assert!(!check("rank.double_value < 4"));
        assert!(check("rank IN (2, 3)"));
        assert!(check("name LIKE 'iris-%' AND name ILIKE 'IRIS-PAGE-_'"));
        assert!(!check("name LIKE 'IRIS%'"));
        assert!(check(
            "state = 'LIVE' AND id = 7 AND id = '7' AND createTimeSinceEpoch < 150 AND lastUpdateTimeSinceEpoch >= 200"
        ));
        assert!(check("`probe-flag` = 'yes'"));
        assert!(check("owner = 'alice' AND `owner` = 'custom-owner'"));
        assert!(!check("missing = 'x'"));
        assert!(!check("missing != 'x'"));
        assert!(!check("externalId = 'x' OR externalId != 'x'"));
    }

    #[test]
    fn ill_typed_filters_are_rejected() {
        for q in ["name = 3", "id = 'abc'", "id LIKE '1%'", "rank LIKE 3", "flag.bool_value = 'x'", "rank IN (1, 'a')"]
        {
            assert!(Filter::resolve(&parse(q).unwrap()).is_err(), "{q}");
        }
    }

    fn like_reference(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| like_reference(&t[i..], rest)),
            Some((&c, rest)) => {
                t.split_first().is_some_and(|(&h, tail)| (c == '_' || c == h) && like_reference(tail, rest))
            }
        }
    }

    proptest! {
        #[test]
        fn like_agrees_with_the_recursive_definition(t in "[abé%_]{0,8}", p in "[abé%_]{0,6}") {
            let (tc, pc): (Vec<char>, Vec<char>) = (t.chars().collect(), p.chars().collect());
            prop_assert_eq!(like(&t, &p), like_reference(&tc, &pc));
        }

        #[test]
        fn resolution_never_panics(expr in crate::filter::tests::arb_expr()) {
            if let Ok(f) = Filter::resolve(&expr) {
                let _ = f.matches(&record(), &[]);
            }
        }
    }
}
