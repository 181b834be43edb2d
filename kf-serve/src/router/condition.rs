//! Switch and Sequence step conditions: the subset of GJSON syntax that
//! KServe's documentation uses, compiled once when a graph is loaded and
//! evaluated against a JSON body per request.
//!
//! Supported (anything else is rejected at load, naming what is not):
//!
//! - a path, matching when it exists: `instances.0.data`, `parameters.user`
//!   (dot-separated keys, array indexes, `\` escapes a special character);
//! - `[@this].#(QUERY)`: the body itself satisfies the query;
//! - `PATH.#(QUERY)` / `PATH.#(QUERY)#`: some element of the array at PATH does;
//! - QUERY is `path OP value` clauses (or a bare `path`: it exists) joined by
//!   `&&` and `||` (`&&` binds tighter; no parentheses), with OP one of `==`,
//!   `!=`, `<`, `<=`, `>`, `>=`, `%` (like, `*` and `?` wildcards), `!%`, and
//!   value a quoted JSON string or one plain word (`ODD`, `0.5`, `true`),
//!   compared as GJSON does: by the type of the value found (strings as
//!   text, numbers numerically, booleans by `==`/`!=`).
//!
//! Not supported: modifiers other than `@this`, multipaths (`{...}`,
//! `[...]` other than `[@this]`), pipes, wildcards in paths, nested queries,
//! `#` counts, `~` truthiness, unquoted values with spaces or brackets.

use std::cmp::Ordering;

use serde_json::Value;

use crate::{Error, Result};

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The path exists.
    Exists(Path),
    /// The value at the path (the body for `[@this]`) satisfies the query:
    /// itself when it is the body, some element when it is an array at a path.
    Query {
        /// Where the array (or, for `[@this]`, the body) is.
        at: Option<Path>,
        /// The query, in disjunctive form: any group whose clauses all hold.
        any_of: Vec<Vec<Clause>>,
    },
}

/// A GJSON path: keys and array indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<String>);

/// One comparison of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    path: Path,
    test: Option<(Op, Operand)>,
}

/// The right-hand side of a comparison, as GJSON keeps it: the text as
/// written, compared according to the type of the value it meets.
#[derive(Debug, Clone, PartialEq)]
struct Operand {
    /// As written, quotes included (what numbers and booleans compare with).
    raw: String,
    /// Unquoted when written as a JSON string (what strings compare with).
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    NotLike,
}

/// Characters with a meaning in GJSON paths that this subset does not give them.
const SPECIAL: &[char] = &['|', '#', '@', '*', '?', '{', '}', '[', ']', '(', ')', '=', '!', '<', '>', '%', ',', '"'];

impl Path {
    fn parse(text: &str) -> std::result::Result<Path, String> {
        let text = text.trim();
        if text == "@this" {
            return Ok(Path(Vec::new()));
        }
        if text.is_empty() {
            return Err("an empty path".into());
        }
        let mut segments = vec![String::new()];
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped) => segments.last_mut().map_or((), |s| s.push(escaped)),
                    None => return Err(format!("path {text:?} ends with a lone backslash")),
                },
                '.' => segments.push(String::new()),
                '|' => return Err(format!("path {text:?} uses a GJSON pipe, which this subset does not support")),
                c if SPECIAL.contains(&c) || c.is_whitespace() => {
                    return Err(format!(
                        "path {text:?} uses {c:?}, which this GJSON subset does not support (escape it with \\ if it is part of a key)"
                    ));
                }
                c => segments.last_mut().map_or((), |s| s.push(c)),
            }
        }
        if segments.iter().any(String::is_empty) {
            return Err(format!("path {text:?} has an empty segment"));
        }
        Ok(Path(segments))
    }

    /// The value at this path in `doc`: keys in objects, indexes in arrays.
    fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(doc, |v, seg| match v {
            Value::Object(map) => map.get(seg),
            Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

/// Splits `text` at `sep` outside double-quoted strings.
fn split_outside_quotes<'a>(text: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let (mut start, mut in_string, mut escaped) = (0, false, false);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if bytes[i..].starts_with(sep.as_bytes()) {
            parts.push(&text[start..i]);
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

impl Clause {
    fn parse(text: &str) -> std::result::Result<Clause, String> {
        // The first operator outside a string; two-character ones first.
        const OPS: [(&str, Op); 8] = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("!%", Op::NotLike),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("%", Op::Like),
        ];
        let found = text.char_indices().find_map(|(i, _)| {
            OPS.iter().find(|(sym, _)| text[i..].starts_with(sym)).map(|(sym, op)| (i, sym.len(), *op))
        });
        let Some((at, len, op)) = found else {
            return Ok(Clause { path: Path::parse(text)?, test: None });
        };
        let path = Path::parse(&text[..at])?;
        let raw = text[at + len..].trim();
        let text = if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).map_err(|_| format!("value {raw} is not a complete JSON string"))?
        } else if raw.is_empty() {
            return Err("a comparison needs a value after its operator".into());
        } else if raw.starts_with('~') {
            return Err(format!("value {raw:?}: GJSON's ~ truthiness is not supported"));
        } else if let Some(c) = raw.chars().find(|c| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '#')) {
            return Err(format!("value {raw:?} has {c:?}: quote values that are not one plain word"));
        } else {
            raw.to_string()
        };
        Ok(Clause { path, test: Some((op, Operand { raw: raw.to_string(), text })) })
    }

    /// GJSON's rules: the value found decides how the operand is read —
    /// a string compares with the operand's text (unquoted), a number with
    /// the operand as a number (0 when it is not one), a boolean with
    /// `true`/`false` for `==` and `!=`; nulls, objects and arrays match
    /// nothing but existence.
    fn holds(&self, item: &Value) -> bool {
        let Some(found) = self.path.get(item) else { return false };
        let Some((op, operand)) = &self.test else { return true };
        let order = match found {
            Value::String(s) => {
                if let Op::Like | Op::NotLike = op {
                    return like(s, &operand.text) == (*op == Op::Like);
                }
                Some(s.as_str().cmp(operand.text.as_str()))
            }
            Value::Number(n) => {
                let want = operand.raw.parse::<f64>().unwrap_or(0.0);
                n.as_f64().and_then(|n| n.partial_cmp(&want))
            }
            Value::Bool(b) => {
                return match op {
                    Op::Eq => operand.raw == b.to_string(),
                    Op::Ne => operand.raw != b.to_string(),
                    _ => false,
                };
            }
            _ => None,
        };
        match (op, order) {
            (_, None) | (Op::Like | Op::NotLike, _) => false,
            (Op::Eq, Some(o)) => o == Ordering::Equal,
            (Op::Ne, Some(o)) => o != Ordering::Equal,
            (Op::Lt, Some(o)) => o == Ordering::Less,
            (Op::Le, Some(o)) => o != Ordering::Greater,
            (Op::Gt, Some(o)) => o == Ordering::Greater,
            (Op::Ge, Some(o)) => o != Ordering::Less,
        }
    }
}

/// GJSON's `%`: `*` matches any run of characters, `?` any one. O(s × p).
fn like(s: &str, pattern: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), pattern.chars().collect());
    // matches[j]: whether s[..i] matches p[..j], row by row over i.
    let mut matches = vec![false; p.len() + 1];
    matches[0] = true;
    for j in 1..=p.len() {
        matches[j] = matches[j - 1] && p[j - 1] == '*';
    }
    for c in &s {
        let mut next = vec![false; p.len() + 1];
        for j in 1..=p.len() {
            next[j] = match p[j - 1] {
                '*' => next[j - 1] || matches[j],
                '?' => matches[j - 1],
                pc => matches[j - 1] && pc == *c,
            };
        }
        matches = next;
    }
    matches[p.len()]
}

impl Condition {
    /// Compiles `text`, or says which part this subset does not support
    /// (an [`Error::Invalid`] at `condition`; a graph re-points it at the
    /// step's field).
    ///
    /// ```
    /// use kf_serve::router::Condition;
    /// use serde_json::json;
    ///
    /// let c = Condition::parse(r#"[@this].#(instances.0.data>0.5 && instances.0.data<=0.9)"#)?;
    /// assert!(c.matches(&json!({"instances": [{"data": 0.7}]})));
    /// assert!(!c.matches(&json!({"instances": [{"data": 0.95}]})));
    /// assert!(Condition::parse(r#"{.target == "blue"}"#).is_err());
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Condition> {
        Condition::compile(text).map_err(|message| Error::Invalid { path: "condition".into(), message })
    }

    fn compile(text: &str) -> std::result::Result<Condition, String> {
        let text = text.trim();
        if text.starts_with('{') || (text.starts_with('[') && !text.starts_with("[@this]")) {
            return Err(format!("{text:?} is a GJSON multipath, which this subset does not support"));
        }
        let Some(open) = text.find(".#(") else {
            if text.contains("#(") {
                return Err(format!("{text:?}: a query must follow a path, as in `items.#(...)` or `[@this].#(...)`"));
            }
            return Ok(Condition::Exists(Path::parse(text)?));
        };
        let head = &text[..open];
        let rest = &text[open + 3..];
        let body = rest
            .strip_suffix(")#")
            .or_else(|| rest.strip_suffix(')'))
            .ok_or_else(|| format!("{text:?}: a query `#(...)` must end the condition (nothing may follow it)"))?;
        if body.contains("#(") {
            return Err(format!("{text:?} nests queries, which this subset does not support"));
        }
        let at = if head == "[@this]" { None } else { Some(Path::parse(head)?) };
        let any_of = split_outside_quotes(body, "||")
            .into_iter()
            .map(|group| split_outside_quotes(group, "&&").into_iter().map(Clause::parse).collect())
            .collect::<std::result::Result<Vec<Vec<Clause>>, String>>()?;
        Ok(Condition::Query { at, any_of })
    }

    /// Whether `doc` satisfies the condition. O(size of the values visited).
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Condition::Exists(path) => path.get(doc).is_some(),
            Condition::Query { at, any_of } => {
                let holds = |item: &Value| any_of.iter().any(|all| all.iter().all(|c| c.holds(item)));
                match at {
                    None => holds(doc),
                    Some(path) => match path.get(doc) {
                        Some(Value::Array(items)) => items.iter().any(holds),
                        _ => false,
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(condition: &str, doc: Value) -> bool {
        Condition::parse(condition).expect("supported").matches(&doc)
    }

    #[test]
    fn documented_kserve_conditions() {
        let docs = [json!({"instances": [{"data": 0.95}]}), json!({"instances": [{"data": 0.3}]})];
        let upper = "[@this].#(instances.0.data>0.9)";
        let lower = "[@this].#(instances.0.data<=0.5)";
        assert_eq!(docs.iter().map(|d| check(upper, d.clone())).collect::<Vec<_>>(), [true, false]);
        assert_eq!(docs.iter().map(|d| check(lower, d.clone())).collect::<Vec<_>>(), [false, true]);
        assert!(check(r#"[@this].#(animal=="cat")"#, json!({"animal": "cat"})));
        assert!(!check(r#"[@this].#(animal=="cat")"#, json!({"animal": "dog"})));
        assert!(check(
            r#"[@this].#(decision_picker=="ODD" || decision_picker=="odd")"#,
            json!({"decision_picker": "odd"})
        ));
        assert!(check(r#"friends.#(last=="Murphy")#"#, json!({"friends": [{"last": "Craig"}, {"last": "Murphy"}]})));
        assert!(!check(r#"friends.#(last=="Smith")"#, json!({"friends": [{"last": "Craig"}]})));
        assert!(check(r#"friends.#(first%"D*")"#, json!({"friends": [{"first": "Dale"}]})));
        assert!(check(r#"friends.#(first!%"D*")"#, json!({"friends": [{"first": "Roger"}]})));
        assert!(check("parameters.user", json!({"parameters": {"user": null}})));
        assert!(!check("parameters.user", json!({"parameters": {}})));
        assert!(check(r"a\.b.0", json!({"a.b": [1]})));
        assert!(check("[@this].#(outputs.0.data.0==1)", json!({"outputs": [{"data": [1]}]})));
        assert!(check("[@this].#(ok==true && n!=null)", json!({"ok": true, "n": 3})));
        // KServe's own e2e graphs compare with a bare word.
        assert!(check("[@this].#(decision_picker==ODD)", json!({"decision_picker": "ODD"})));
        assert!(!check("[@this].#(decision_picker==ODD)", json!({"decision_picker": "EVEN"})));
        // As in GJSON, the value found decides: "2" is a string, compared as text.
        assert!(check("[@this].#(n>1)", json!({"n": "2"})));
        assert!(check("[@this].#(n>10)", json!({"n": "2"})), "\"2\" sorts after \"10\" as text");
        assert!(!check("[@this].#(n>10)", json!({"n": 2})), "but not after 10 as a number");
        assert!(check("[@this].#(n<10)", json!({"n": 2})));
        assert!(!check("[@this].#(n==x)", json!({"n": 0.5})), "a word is 0 against a number");
        assert!(!check("[@this].#(n==null)", json!({"n": null})), "null matches only by existence");
        assert!(check("[@this].#(n)", json!({"n": null})));
    }

    #[test]
    fn unsupported_syntax_is_named() {
        for (condition, says) in [
            (r#"{.target == "blue"}"#, "multipath"),
            ("[a,b]", "multipath"),
            ("a|b", "pipe"),
            ("items.#", "'#'"),
            ("a.*", "'*'"),
            ("@reverse", "'@'"),
            ("target == blue", "' '"),
            ("[@this].#(target==\"blue)", "not a complete JSON string"),
            ("[@this].#(ok==~true)", "truthiness"),
            ("[@this].#(a==two words)", "plain word"),
            ("[@this].#(a==)", "needs a value"),
            ("[@this].#(a==1) junk", "must end"),
            ("a.#(b.#(c==1))", "nests"),
            ("", "empty"),
            ("a..b", "empty segment"),
        ] {
            let err = Condition::parse(condition).expect_err(condition).to_string();
            assert!(err.starts_with("condition: ") && err.contains(says), "{condition}: {err}");
        }
    }

    proptest! {
        #[test]
        fn numeric_comparisons_agree_with_f64(a in -1e6f64..1e6, b in -1e6f64..1e6) {
            let doc = json!({"x": a});
            let cases = [("==", a == b), ("!=", a != b), ("<", a < b), ("<=", a <= b), (">", a > b), (">=", a >= b)];
            for (op, want) in cases {
                let c = Condition::parse(&format!("[@this].#(x{op}{b:?})")).expect("supported");
                prop_assert_eq!(c.matches(&doc), want, "{} {} {}", a, op, b);
            }
        }

        #[test]
        fn like_agrees_with_a_literal_pattern(s in "[a-c]{0,6}", p in "[a-c*?]{0,4}") {
            // A reference: expand the pattern into a regex-free recursive matcher.
            fn reference(s: &[char], p: &[char]) -> bool {
                match p.split_first() {
                    None => s.is_empty(),
                    Some(('*', rest)) => (0..=s.len()).any(|i| reference(&s[i..], rest)),
                    Some(('?', rest)) => !s.is_empty() && reference(&s[1..], rest),
                    Some((c, rest)) => s.first() == Some(c) && reference(&s[1..], rest),
                }
            }
            let (sc, pc): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
            prop_assert_eq!(like(&s, &p), reference(&sc, &pc));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,40}") {
            if let Ok(c) = Condition::parse(&text) {
                let _ = c.matches(&json!({"a": [1, {"b": "c"}]}));
            }
        }
    }
}
