//! The `filterQuery` language of the Model Registry API: a lexer and a
//! recursive-descent parser from text to an [`Expr`] tree, and the tree's
//! canonical text form ([`std::fmt::Display`]), which parses back to the same tree.
//!
//! ```text
//! expr       := and ( OR and )*
//! and        := primary ( AND primary )*
//! primary    := '(' expr ')' | field op literal | field IN '(' literal (',' literal)* ')'
//! op         := = | != | <> | < | <= | > | >= | LIKE | ILIKE
//! field      := ident ('.' ident)* | `backticked name` ('.' ident)?
//! literal    := 'text' | "text" | integer | decimal | true | false
//! ```
//!
//! Keywords are case-insensitive. A trailing `.string_value`, `.int_value`,
//! `.double_value` or `.bool_value` selects the type of a property explicitly.
//! Parsing is O(n) in the query length; nesting is capped at [`MAX_DEPTH`] so a
//! hostile query cannot exhaust the stack.
//!
//! This module is pure: it knows nothing of records or SQL. What a field means
//! (a column such as `name`, or a property) is decided by
//! [`crate::query::Filter::resolve`].

use std::fmt;

use crate::{Error, Result};

/// Deepest parenthesis/operator nesting a query may use.
pub const MAX_DEPTH: usize = 64;
/// Longest query accepted, in bytes.
pub const MAX_LEN: usize = 16 * 1024;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both sides hold.
    And(Box<Expr>, Box<Expr>),
    /// Either side holds.
    Or(Box<Expr>, Box<Expr>),
    /// `field op literal`.
    Compare {
        /// The left-hand side.
        field: Field,
        /// The operator.
        op: CompareOp,
        /// The right-hand side.
        value: Literal,
    },
    /// `field IN (literal, …)`.
    In {
        /// The left-hand side.
        field: Field,
        /// The set; never empty.
        values: Vec<Literal>,
    },
}

/// A field reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name, without backticks or type suffix (may contain dots).
    pub name: String,
    /// Written in backticks: always a custom property, never a column.
    pub quoted: bool,
    /// Type selected with a `.xxx_value` suffix.
    pub value_type: Option<ValueType>,
}

/// The typed columns of a property value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `string_value`.
    String,
    /// `int_value`.
    Int,
    /// `double_value`.
    Double,
    /// `bool_value`.
    Bool,
}

impl ValueType {
    /// The suffix that selects this type.
    pub fn suffix(self) -> &'static str {
        match self {
            ValueType::String => "string_value",
            ValueType::Int => "int_value",
            ValueType::Double => "double_value",
            ValueType::Bool => "bool_value",
        }
    }

    fn from_suffix(text: &str) -> Option<Self> {
        [ValueType::String, ValueType::Int, ValueType::Double, ValueType::Bool].into_iter().find(|t| t.suffix() == text)
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `LIKE` (case-sensitive, `%` and `_` wildcards).
    Like,
    /// `ILIKE` (ASCII case-insensitive `LIKE`).
    ILike,
}

impl CompareOp {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Like => "LIKE",
            CompareOp::ILike => "ILIKE",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Quoted text.
    String(String),
    /// An integer (fits in i64).
    Int(i64),
    /// A decimal or exponent number (finite).
    Double(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// Parses a `filterQuery`.
///
/// ```
/// use kf_registry::filter::{parse, Expr};
///
/// let expr = parse("(rank = 1 OR rank = 5) AND framework.string_value LIKE 'py%'")?;
/// assert!(matches!(expr, Expr::And(..)));
/// // the canonical text parses back to the same tree
/// assert_eq!(parse(&expr.to_string())?, expr);
/// assert!(parse("name = ").is_err());
/// # Ok::<(), kf_registry::Error>(())
/// ```
pub fn parse(text: &str) -> Result<Expr> {
    if text.len() > MAX_LEN {
        return Err(Error::Filter { position: MAX_LEN, message: format!("query longer than {MAX_LEN} bytes") });
    }
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, pos: 0, end: text.len() };
    let expr = parser.expr(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some((at, tok)) => {
            Err(Error::Filter { position: at, message: format!("expected AND, OR or the end, found {tok}") })
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Quoted(String),
    Str(String),
    Int(i64),
    Double(f64),
    Op(CompareOp),
    And,
    Or,
    In,
    True,
    False,
    LParen,
    RParen,
    Comma,
    Dot,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "name {s:?}"),
            Token::Quoted(s) => write!(f, "`{s}`"),
            Token::Str(s) => write!(f, "string {s:?}"),
            Token::Int(n) => write!(f, "number {n}"),
            Token::Double(x) => write!(f, "number {x}"),
            Token::Op(op) => write!(f, "operator {}", op.as_str()),
            Token::And => f.write_str("AND"),
            Token::Or => f.write_str("OR"),
            Token::In => f.write_str("IN"),
            Token::True => f.write_str("true"),
            Token::False => f.write_str("false"),
            Token::LParen => f.write_str("'('"),
            Token::RParen => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
            Token::Dot => f.write_str("'.'"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |position: usize, message: String| Error::Filter { position, message };
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => (out.push((start, Token::LParen)), i += 1).1,
            b')' => (out.push((start, Token::RParen)), i += 1).1,
            b',' => (out.push((start, Token::Comma)), i += 1).1,
            b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => (out.push((start, Token::Dot)), i += 1).1,
            b'=' => (out.push((start, Token::Op(CompareOp::Eq))), i += 1).1,
            b'!' if bytes.get(i + 1) == Some(&b'=') => (out.push((start, Token::Op(CompareOp::Ne))), i += 2).1,
            b'<' => {
                let (op, len) = match bytes.get(i + 1) {
                    Some(b'=') => (CompareOp::Le, 2),
                    Some(b'>') => (CompareOp::Ne, 2),
                    _ => (CompareOp::Lt, 1),
                };
                out.push((start, Token::Op(op)));
                i += len;
            }
            b'>' => {
                let (op, len) = if bytes.get(i + 1) == Some(&b'=') { (CompareOp::Ge, 2) } else { (CompareOp::Gt, 1) };
                out.push((start, Token::Op(op)));
                i += len;
            }
            b'\'' | b'"' => {
                // Quotes are escaped by doubling them or with a backslash.
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    let Some(ch) = text[i..].chars().next() else {
                        return Err(err(start, "unterminated string".into()));
                    };
                    if ch == '\\' {
                        let Some(next) = text[i + 1..].chars().next() else {
                            return Err(err(start, "unterminated string".into()));
                        };
                        value.push(next);
                        i += 1 + next.len_utf8();
                    } else if ch as u32 == u32::from(quote) {
                        if bytes.get(i + 1) == Some(&quote) {
                            value.push(ch);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    } else {
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
                out.push((start, Token::Str(value)));
            }
            b'`' => {
                let Some(len) = text[i + 1..].find('`') else {
                    return Err(err(start, "unterminated `backticked` name".into()));
                };
                let name = &text[i + 1..i + 1 + len];
                if name.is_empty() {
                    return Err(err(start, "empty `backticked` name".into()));
                }
                out.push((start, Token::Quoted(name.to_owned())));
                i += len + 2;
            }
            b'-' | b'0'..=b'9' | b'.' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'+' | b'-')) {
                    // a sign only right after an exponent marker
                    if matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                        break;
                    }
                    i += 1;
                }
                let word = &text[start..i];
                let is_int = word.strip_prefix('-').unwrap_or(word).bytes().all(|b| b.is_ascii_digit());
                let token = if is_int {
                    word.parse().map(Token::Int).map_err(|_| err(start, format!("integer {word} out of range")))?
                } else {
                    let valid =
                        word.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
                    match word.parse::<f64>() {
                        Ok(x) if valid && x.is_finite() => Token::Double(x),
                        _ => return Err(err(start, format!("expected a number, found {word:?}"))),
                    }
                };
                out.push((start, token));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                let token = match word.to_ascii_uppercase().as_str() {
                    "AND" => Token::And,
                    "OR" => Token::Or,
                    "IN" => Token::In,
                    "LIKE" => Token::Op(CompareOp::Like),
                    "ILIKE" => Token::Op(CompareOp::ILike),
                    "TRUE" => Token::True,
                    "FALSE" => Token::False,
                    _ => Token::Ident(word.to_owned()),
                };
                out.push((start, token));
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(start, format!("unexpected character {ch:?}")));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.pos).map(|(at, t)| (*at, t))
    }

    fn next(&mut self, expected: &str) -> Result<(usize, Token)> {
        match self.tokens.get(self.pos) {
            Some(found) => {
                self.pos += 1;
                Ok(found.clone())
            }
            None => Err(Error::Filter { position: self.end, message: format!("expected {expected}, found the end") }),
        }
    }

    fn fail<T>(&self, at: usize, expected: &str, found: &Token) -> Result<T> {
        Err(Error::Filter { position: at, message: format!("expected {expected}, found {found}") })
    }

    fn expr(&mut self, depth: usize) -> Result<Expr> {
        if depth > MAX_DEPTH {
            let at = self.peek().map_or(self.end, |(at, _)| at);
            return Err(Error::Filter { position: at, message: format!("nested deeper than {MAX_DEPTH}") });
        }
        let mut left = self.and(depth)?;
        while let Some((_, Token::Or)) = self.peek() {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr> {
        let mut left = self.primary(depth)?;
        while let Some((_, Token::And)) = self.peek() {
            self.pos += 1;
            let right = self.primary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr> {
        let (at, token) = self.next("a field or '('")?;
        let field = match token {
            Token::LParen => {
                let inner = self.expr(depth + 1)?;
                return match self.next("')'")? {
                    (_, Token::RParen) => Ok(inner),
                    (at, other) => self.fail(at, "')'", &other),
                };
            }
            Token::Ident(first) => self.field(first, false)?,
            Token::Quoted(name) => self.field(name, true)?,
            other => return self.fail(at, "a field or '('", &other),
        };
        match self.next("an operator")? {
            (_, Token::Op(op)) => {
                let value = self.literal()?;
                Ok(Expr::Compare { field, op, value })
            }
            (_, Token::In) => {
                match self.next("'('")? {
                    (_, Token::LParen) => {}
                    (at, other) => return self.fail(at, "'('", &other),
                }
                let mut values = vec![self.literal()?];
                loop {
                    match self.next("',' or ')'")? {
                        (_, Token::Comma) => values.push(self.literal()?),
                        (_, Token::RParen) => break,
                        (at, other) => return self.fail(at, "',' or ')'", &other),
                    }
                }
                Ok(Expr::In { field, values })
            }
            (at, other) => self.fail(at, "an operator (=, !=, <>, <, <=, >, >=, LIKE, ILIKE, IN)", &other),
        }
    }

    fn field(&mut self, first: String, quoted: bool) -> Result<Field> {
        let mut parts = vec![first];
        while let Some((_, Token::Dot)) = self.peek() {
            self.pos += 1;
            match self.next("a name after '.'")? {
                (_, Token::Ident(part)) => parts.push(part),
                (at, other) => return self.fail(at, "a name after '.'", &other),
            }
            if quoted && parts.len() > 1 {
                break; // `quoted`.type_value: only a type suffix may follow
            }
        }
        let value_type = match parts.last().and_then(|p| ValueType::from_suffix(p)) {
            Some(t) if parts.len() > 1 => {
                parts.pop();
                Some(t)
            }
            _ => None,
        };
        if quoted && parts.len() > 1 {
            return Err(Error::Filter {
                position: self.tokens.get(self.pos.saturating_sub(1)).map_or(self.end, |(at, _)| *at),
                message:
                    "after a `backticked` name only .string_value, .int_value, .double_value or .bool_value may follow"
                        .into(),
            });
        }
        Ok(Field { name: parts.join("."), quoted, value_type })
    }

    fn literal(&mut self) -> Result<Literal> {
        match self.next("a value")? {
            (_, Token::Str(s)) => Ok(Literal::String(s)),
            (_, Token::Int(n)) => Ok(Literal::Int(n)),
            (_, Token::Double(x)) => Ok(Literal::Double(x)),
            (_, Token::True) => Ok(Literal::Bool(true)),
            (_, Token::False) => Ok(Literal::Bool(false)),
            (at, other) => self.fail(at, "a value (a quoted string, a number, true or false)", &other),
        }
    }
}

fn is_plain_ident(part: &str) -> bool {
    let mut chars = part.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(part.to_ascii_uppercase().as_str(), "AND" | "OR" | "IN" | "LIKE" | "ILIKE" | "TRUE" | "FALSE")
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Unquoted dotted names are only safe to write bare when no part is a
        // keyword and the last part is not itself a type suffix.
        let bare_ok = !self.quoted
            && self.name.split('.').all(is_plain_ident)
            && (self.value_type.is_some() || self.name.split('.').count() == 1 || {
                let last = self.name.rsplit('.').next().unwrap_or_default();
                ValueType::from_suffix(last).is_none()
            });
        if bare_ok {
            f.write_str(&self.name)?;
        } else {
            write!(f, "`{}`", self.name)?;
        }
        if let Some(t) = self.value_type {
            write!(f, ".{}", t.suffix())?;
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Double(x) => {
                let text = format!("{x:?}"); // shortest round-trip form, always with '.' or 'e'
                f.write_str(&text)
            }
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
            Expr::Compare { field, op, value } => write!(f, "{field} {} {value}", op.as_str()),
            Expr::In { field, values } => {
                write!(f, "{field} IN (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(name: &str) -> Field {
        Field { name: name.into(), quoted: false, value_type: None }
    }

    #[test]
    fn the_probe_queries_parse() {
        for q in [
            "name = 'probe-x-page-3'",
            "probe_page.string_value = 'tag' AND rank >= 4",
            "probe_page.string_value = 'tag' AND (rank = 1 OR rank = 5)",
            "score > 0.45",
            "even = true",
            "rank.int_value < 2",
            "rank IN (2, 3)",
            "name LIKE 'tag-page-%'",
            "name ILIKE 'TAG-PAGE-0'",
            "state = 'LIVE' AND rank != 0 AND rank <> 6",
            "`probe-flag` = 'yes'",
            "name = \"tag-page-2\"",
            "`mlflow.source.type` = \"notebook\"",
            "accuracy > 1e-5",
        ] {
            let expr = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(parse(&expr.to_string()).unwrap(), expr, "{q}");
        }
    }

    #[test]
    fn structure_and_precedence() {
        let e = parse("a = 1 OR b = 2 AND c = 3").unwrap();
        let Expr::Or(_, right) = e else { panic!("OR binds looser than AND") };
        assert!(matches!(*right, Expr::And(..)));
        assert_eq!(
            parse("rank.int_value < 2").unwrap(),
            Expr::Compare {
                field: Field { name: "rank".into(), quoted: false, value_type: Some(ValueType::Int) },
                op: CompareOp::Lt,
                value: Literal::Int(2)
            }
        );
        assert_eq!(
            parse("`a.b`.double_value >= -1.5").unwrap(),
            Expr::Compare {
                field: Field { name: "a.b".into(), quoted: true, value_type: Some(ValueType::Double) },
                op: CompareOp::Ge,
                value: Literal::Double(-1.5)
            }
        );
        assert_eq!(
            parse("x = 'it''s' AND y = 'a\\'b'").unwrap(),
            Expr::And(
                Box::new(Expr::Compare { field: field("x"), op: CompareOp::Eq, value: Literal::String("it's".into()) }),
                Box::new(Expr::Compare { field: field("y"), op: CompareOp::Eq, value: Literal::String("a'b".into()) }),
            )
        );
        assert_eq!(parse("flag = TRUE").unwrap(), parse("flag = true").unwrap());
    }

    #[test]
    fn invalid_queries_are_errors_with_positions() {
        for q in [
            "name = ",
            "rank >>> 3",
            "(name = 'x'",
            "name = 'unterminated",
            "",
            "name",
            "= 3",
            "a = 1 AND",
            "a IN ()",
            "a = 1 b = 2",
            "a = 1.2.3",
            "a = 99999999999999999999",
            "a = 'x' ; DROP TABLE entities",
            "`unterminated = 1",
            "`` = 1",
        ] {
            let err = parse(q).expect_err(q);
            assert!(matches!(err, Error::Filter { .. }), "{q}: {err}");
        }
        let deep = format!("{}a = 1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
    }

    pub(crate) fn arb_literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            "\\PC{0,12}".prop_map(Literal::String),
            any::<i64>().prop_map(Literal::Int),
            (-1e15f64..1e15).prop_map(Literal::Double),
            any::<bool>().prop_map(Literal::Bool),
        ]
    }

    pub(crate) fn arb_field() -> impl Strategy<Value = Field> {
        let value_type = prop_oneof![
            Just(None),
            Just(Some(ValueType::String)),
            Just(Some(ValueType::Int)),
            Just(Some(ValueType::Double)),
            Just(Some(ValueType::Bool)),
        ];
        prop_oneof![
            ("[a-z_][a-z0-9_]{0,8}(\\.[a-z_][a-z0-9_]{0,5})?", value_type.clone())
                .prop_map(|(name, value_type)| Field { name, quoted: false, value_type }),
            ("[^`]{1,10}", value_type).prop_map(|(name, value_type)| Field { name, quoted: true, value_type }),
        ]
    }

    pub(crate) fn arb_expr() -> impl Strategy<Value = Expr> {
        let op = prop_oneof![
            Just(CompareOp::Eq),
            Just(CompareOp::Ne),
            Just(CompareOp::Lt),
            Just(CompareOp::Le),
            Just(CompareOp::Gt),
            Just(CompareOp::Ge),
            Just(CompareOp::Like),
            Just(CompareOp::ILike),
        ];
        let leaf = prop_oneof![
            (arb_field(), op, arb_literal()).prop_map(|(field, op, value)| Expr::Compare { field, op, value }),
            (arb_field(), proptest::collection::vec(arb_literal(), 1..4))
                .prop_map(|(field, values)| Expr::In { field, values }),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            ]
        })
    }

    /// Fields that parse back differently are normalised the way the parser reads them.
    fn normalise(field: &mut Field) {
        if !field.quoted && !field.name.split('.').all(is_plain_ident) {
            field.quoted = true;
        }
        if !field.quoted
            && field.value_type.is_none()
            && let Some((head, last)) = field.name.rsplit_once('.')
            && let Some(t) = ValueType::from_suffix(last)
        {
            field.name = head.to_owned();
            field.value_type = Some(t);
        }
    }

    fn normalise_expr(e: &mut Expr) {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                normalise_expr(a);
                normalise_expr(b);
            }
            Expr::Compare { field, .. } | Expr::In { field, .. } => normalise(field),
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_query_like_text(text in "[a-z`'\"()=<>!., 0-9%_-]{0,40}( (AND|OR|IN|LIKE) [a-z'0-9()]{0,10}){0,3}") {
            let _ = parse(&text);
        }

        #[test]
        fn display_then_parse_is_the_identity(mut expr in arb_expr()) {
            normalise_expr(&mut expr);
            let text = expr.to_string();
            let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(back, expr, "{}", text);
        }
    }
}
