//! Task conditions (`dsl.If`/`Elif`/`Else`) and loop-item selectors, parsed
//! into typed expressions.
//!
//! KFP writes a condition as a CEL expression over the task's input
//! parameters, e.g. `!(int(inputs.parameter_values['n']) < 5000) && inputs.parameter_values['go'] == true`.
//! [`Condition`] parses the subset the KFP compiler emits (comparisons, `&&`,
//! `||`, `!`, parentheses, `int`/`double`/`string`/`bool` conversions, string,
//! number and boolean literals) and evaluates it over resolved values. This
//! module is pure: it knows nothing about tasks except input names.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A conversion function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// `int(x)`: a number or numeric string to an integer.
    Int,
    /// `double(x)`: a number or numeric string to a double.
    Double,
    /// `string(x)`: any scalar to its string form.
    String,
    /// `bool(x)`: `true`/`false` or the strings `"true"`/`"false"`.
    Bool,
}

/// A parsed condition expression.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Expr {
    /// A string, number or boolean literal.
    Literal(Value),
    /// `inputs.parameter_values['x']`: the value of the task's input parameter `x`.
    Input(String),
    /// `!e`
    Not(Box<Expr>),
    /// `a && b`
    And(Box<Expr>, Box<Expr>),
    /// `a || b`
    Or(Box<Expr>, Box<Expr>),
    /// `a op b`
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    /// `int(e)`, `double(e)`, …
    Convert(Conversion, Box<Expr>),
}

/// Deepest nesting a condition may have; deeper input is refused rather than
/// risking the stack on hostile specs.
const MAX_DEPTH: usize = 64;

/// Most tokens a condition may have. A chain `a && b && …` nests one level
/// per operator, and evaluating or dropping the tree recurses that deep, so
/// the length is bounded too (KFP's compiler writes a handful of tokens).
const MAX_TOKENS: usize = 1024;

/// A task's trigger condition: its source text and the parsed expression.
///
/// Parsing is linear in the length of the text; evaluation is linear in the
/// size of the expression.
///
/// ```
/// use kf_dag::ir::Condition;
/// use serde_json::json;
/// let c = Condition::parse("int(inputs.parameter_values['n']) < 5000 && inputs.parameter_values['go'] == true")?;
/// assert_eq!(c.inputs(), vec!["go", "n"]);
/// let lookup = |name: &str| match name { "n" => Some(json!("42")), "go" => Some(json!(true)), _ => None };
/// assert_eq!(c.evaluate(&lookup), Ok(true));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    expr: Expr,
}

impl Condition {
    /// Parses a condition; the error says what was expected where.
    pub fn parse(source: &str) -> Result<Self, String> {
        let tokens = tokenize(source)?;
        if tokens.len() > MAX_TOKENS {
            return Err(format!("the condition has {} tokens; at most {MAX_TOKENS} are allowed", tokens.len()));
        }
        let mut parser = Parser { tokens, pos: 0, depth: 0 };
        let expr = parser.or()?;
        if let Some(token) = parser.tokens.get(parser.pos) {
            return Err(format!("unexpected {token} after a complete expression"));
        }
        Ok(Condition { source: source.to_owned(), expr })
    }

    /// The text the condition was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The input parameter names the condition reads, sorted, without duplicates.
    pub fn inputs(&self) -> Vec<&str> {
        let mut names = Vec::new();
        let mut stack = vec![&self.expr];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Literal(_) => {}
                Expr::Input(name) => names.push(name.as_str()),
                Expr::Not(e) | Expr::Convert(_, e) => stack.push(e),
                Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
            }
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Evaluates the condition with input values from `lookup`. Errors name
    /// an input that has no value or an operation on values of the wrong type.
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<bool, String> {
        match eval(&self.expr, lookup)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("the condition evaluates to {other}, not to a boolean")),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn eval(expr: &Expr, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<Value, String> {
    Ok(match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Input(name) => lookup(name).ok_or_else(|| format!("input parameter {name:?} has no value"))?,
        Expr::Not(e) => Value::Bool(!as_bool(&eval(e, lookup)?)?),
        // Short-circuit like CEL, so `has_x && x > 1` style guards work.
        Expr::And(a, b) => Value::Bool(as_bool(&eval(a, lookup)?)? && as_bool(&eval(b, lookup)?)?),
        Expr::Or(a, b) => Value::Bool(as_bool(&eval(a, lookup)?)? || as_bool(&eval(b, lookup)?)?),
        Expr::Compare(op, a, b) => {
            let (a, b) = (eval(a, lookup)?, eval(b, lookup)?);
            let ordering = compare(&a, &b);
            Value::Bool(match op {
                CompareOp::Eq => ordering == Some(Ordering::Equal),
                CompareOp::Ne => ordering != Some(Ordering::Equal),
                _ => {
                    let o = ordering.ok_or_else(|| format!("cannot order {a} and {b}"))?;
                    match op {
                        CompareOp::Lt => o.is_lt(),
                        CompareOp::Le => o.is_le(),
                        CompareOp::Gt => o.is_gt(),
                        _ => o.is_ge(),
                    }
                }
            })
        }
        Expr::Convert(conversion, e) => convert(*conversion, eval(e, lookup)?)?,
    })
}

fn as_bool(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| format!("expected a boolean, found {v}"))
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                Some(x.cmp(&y))
            } else {
                x.as_f64()?.partial_cmp(&y.as_f64()?)
            }
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (x, y) if x == y => Some(Ordering::Equal),
        _ => None,
    }
}

fn convert(conversion: Conversion, v: Value) -> Result<Value, String> {
    let fail = |v: &Value| format!("cannot convert {v} with {conversion:?}");
    Ok(match conversion {
        Conversion::Int => match &v {
            Value::Number(n) if n.is_i64() => v.clone(),
            Value::Number(n) => {
                Value::from(n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| fail(&v))?.trunc() as i64)
            }
            Value::String(s) => Value::from(s.trim().parse::<i64>().map_err(|_| fail(&v))?),
            Value::Bool(b) => Value::from(i64::from(*b)),
            _ => return Err(fail(&v)),
        },
        Conversion::Double => match &v {
            Value::Number(n) => Value::from(n.as_f64().ok_or_else(|| fail(&v))?),
            Value::String(s) => Value::from(s.trim().parse::<f64>().map_err(|_| fail(&v))?),
            _ => return Err(fail(&v)),
        },
        Conversion::String => match v {
            Value::String(_) => v,
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            other => Value::String(other.to_string()),
        },
        Conversion::Bool => match &v {
            Value::Bool(_) => v,
            Value::String(s) if s == "true" => Value::Bool(true),
            Value::String(s) if s == "false" => Value::Bool(false),
            _ => return Err(fail(&v)),
        },
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Input(String),
    Literal(Value),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Input(n) => write!(f, "inputs.parameter_values['{n}']"),
            Token::Literal(v) => write!(f, "{v}"),
            Token::Ident(i) => write!(f, "{i:?}"),
            Token::Op(o) => write!(f, "{o:?}"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    const OPS: [&str; 9] = ["&&", "||", "==", "!=", "<=", ">=", "<", ">", "!"];
    let mut tokens = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
            tokens.push(Token::Op(op));
            rest = &rest[op.len()..];
        } else if let Some(r) = rest.strip_prefix('(') {
            tokens.push(Token::Open);
            rest = r;
        } else if let Some(r) = rest.strip_prefix(')') {
            tokens.push(Token::Close);
            rest = r;
        } else if let Some(r) =
            rest.strip_prefix("inputs.parameter_values[").or_else(|| rest.strip_prefix("inputs.parameters["))
        {
            let (name, after) = string_literal(r)?;
            rest = after.strip_prefix(']').ok_or("expected ']' after the input name")?;
            tokens.push(Token::Input(name));
        } else if rest.starts_with(['\'', '"']) {
            let (text, after) = string_literal(rest)?;
            tokens.push(Token::Literal(Value::String(text)));
            rest = after;
        } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            let end = rest[1..]
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E'))
                .map_or(rest.len(), |e| e + 1);
            let text = &rest[..end];
            let value = if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else {
                let f = text.parse::<f64>().map_err(|_| format!("{text:?} is not a number"))?;
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{text:?} is not finite"))?
            };
            tokens.push(Token::Literal(value));
            rest = &rest[end..];
        } else if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let word = &rest[..end];
            tokens.push(match word {
                "true" => Token::Literal(Value::Bool(true)),
                "false" => Token::Literal(Value::Bool(false)),
                _ => Token::Ident(word.to_owned()),
            });
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            return Err(format!("unexpected character {c:?}"));
        }
        rest = rest.trim_start();
    }
    Ok(tokens)
}

/// Reads a quoted string at the start of `s`; returns its text and the rest.
fn string_literal(s: &str) -> Result<(String, &str), String> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"').ok_or("expected a quoted string")?;
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c if c == quote => return Ok((out, &s[1 + i + 1..])),
            c => out.push(c),
        }
    }
    Err(format!("string starting at {:?} is not closed", s.chars().take(20).collect::<String>()))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat_op(&mut self, op: &'static str) -> bool {
        if self.peek() == Some(&Token::Op(op)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_op("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.comparison()?;
        while self.eat_op("&&") {
            left = Expr::And(Box::new(left), Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.unary()?;
        let op = match self.peek() {
            Some(Token::Op("==")) => CompareOp::Eq,
            Some(Token::Op("!=")) => CompareOp::Ne,
            Some(Token::Op("<")) => CompareOp::Lt,
            Some(Token::Op("<=")) => CompareOp::Le,
            Some(Token::Op(">")) => CompareOp::Gt,
            Some(Token::Op(">=")) => CompareOp::Ge,
            _ => return Ok(left),
        };
        self.pos += 1;
        Ok(Expr::Compare(op, Box::new(left), Box::new(self.unary()?)))
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the expression nests deeper than {MAX_DEPTH} levels"));
        }
        let result = if self.eat_op("!") { self.unary().map(|e| Expr::Not(Box::new(e))) } else { self.primary() };
        self.depth -= 1;
        result
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self.peek().cloned().ok_or("expected a value, found the end of the expression")?;
        self.pos += 1;
        match token {
            Token::Literal(v) => Ok(Expr::Literal(v)),
            Token::Input(name) => Ok(Expr::Input(name)),
            Token::Open => {
                let inner = self.or()?;
                self.close()?;
                Ok(inner)
            }
            Token::Ident(name) => {
                let conversion = match name.as_str() {
                    "int" => Conversion::Int,
                    "double" | "float" => Conversion::Double,
                    "string" => Conversion::String,
                    "bool" => Conversion::Bool,
                    _ => return Err(format!("unknown function {name:?} (expected int, double, string or bool)")),
                };
                if self.peek() != Some(&Token::Open) {
                    return Err(format!("expected '(' after {name}"));
                }
                self.pos += 1;
                let inner = self.or()?;
                self.close()?;
                Ok(Expr::Convert(conversion, Box::new(inner)))
            }
            other => Err(format!("expected a value, found {other}")),
        }
    }

    fn close(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(Token::Close) => {
                self.pos += 1;
                Ok(())
            }
            Some(other) => Err(format!("expected ')', found {other}")),
            None => Err("expected ')', found the end of the expression".to_owned()),
        }
    }
}

/// Picks a field out of a loop item: KFP's `parameterExpressionSelector`
/// `parseJson(string_value)["a"]["b"]`, used when a ParallelFor iterates over
/// a list of objects and a task reads one field of each.
///
/// ```
/// use kf_dag::ir::ItemSelector;
/// use serde_json::json;
/// let s = ItemSelector::parse(r#"parseJson(string_value)["A_a"]"#)?;
/// assert_eq!(s.apply(&json!({"A_a": "1", "B_b": "2"})), Some(json!("1")));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemSelector {
    /// Field names, outermost first.
    pub fields: Vec<String>,
}

impl ItemSelector {
    /// Parses `parseJson(string_value)["field"]…`.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut rest = source
            .trim()
            .strip_prefix("parseJson(string_value)")
            .ok_or_else(|| format!("expected parseJson(string_value)[\"field\"], found {source:?}"))?;
        let mut fields = Vec::new();
        while let Some(r) = rest.strip_prefix('[') {
            let (name, after) = string_literal(r)?;
            rest = after.strip_prefix(']').ok_or_else(|| format!("expected ']' after {name:?} in {source:?}"))?;
            fields.push(name);
        }
        if fields.is_empty() || !rest.trim().is_empty() {
            return Err(format!("expected parseJson(string_value)[\"field\"], found {source:?}"));
        }
        Ok(ItemSelector { fields })
    }

    /// The selected value; `None` when a field is missing. A string item is
    /// parsed as JSON first, as KFP's `parseJson(string_value)` does.
    pub fn apply(&self, item: &Value) -> Option<Value> {
        let parsed;
        let mut current = match item {
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s).ok()?;
                &parsed
            }
            other => other,
        };
        for field in &self.fields {
            current = current.get(field)?;
        }
        Some(current.clone())
    }
}

impl fmt::Display for ItemSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parseJson(string_value)")?;
        for field in &self.fields {
            write!(f, "[{:?}]", field)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn eval_with(src: &str, values: Value) -> Result<bool, String> {
        let c = Condition::parse(src)?;
        c.evaluate(&|n| values.get(n).cloned())
    }

    #[test]
    fn every_condition_form_in_the_kfp_corpus_parses_and_evaluates() {
        let v = json!({"a": true, "n": "4000", "s": "even", "i": 3});
        assert_eq!(eval_with("inputs.parameter_values['a'] == true", v.clone()), Ok(true));
        assert_eq!(eval_with("int(inputs.parameter_values['i']) == 3", v.clone()), Ok(true));
        assert_eq!(eval_with("inputs.parameter_values['s'] == 'even'", v.clone()), Ok(true));
        assert_eq!(eval_with("!(inputs.parameter_values['s'] == 'even')", v.clone()), Ok(false));
        assert_eq!(
            eval_with(
                "!(int(inputs.parameter_values['n']) < 5000) && !(int(inputs.parameter_values['n']) > 9000)",
                v.clone()
            ),
            Ok(false)
        );
        assert_eq!(
            eval_with("!(int(inputs.parameter_values['n']) < 5000) || int(inputs.parameter_values['n']) >= 4000", v),
            Ok(true)
        );
    }

    #[test]
    fn malformed_conditions_are_rejected() {
        for src in ["", "inputs.parameter_values['a'] ==", "(true", "foo(1)", "true true", "'x", "1 # 2"] {
            assert!(Condition::parse(src).is_err(), "{src:?} should be rejected");
        }
        let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
        assert!(Condition::parse(&deep).is_err());
        let long = vec!["true"; 100_000].join(" && ");
        assert!(Condition::parse(&long).unwrap_err().contains("tokens"));
        let ok = vec!["inputs.parameter_values['a'] == 1"; 100].join(" || ");
        assert_eq!(Condition::parse(&ok).unwrap().evaluate(&|_| Some(json!(1))), Ok(true));
    }

    #[test]
    fn evaluation_errors_name_the_problem() {
        assert!(eval_with("inputs.parameter_values['missing'] == 1", json!({})).unwrap_err().contains("missing"));
        assert!(eval_with("int(inputs.parameter_values['s']) == 1", json!({"s": "x"})).is_err());
        assert!(eval_with("inputs.parameter_values['s']", json!({"s": "x"})).is_err());
    }

    #[test]
    fn selectors_parse_and_apply() {
        let s = ItemSelector::parse(r#"parseJson(string_value)["a"]["b"]"#).unwrap();
        assert_eq!(s.apply(&json!({"a": {"b": 1}})), Some(json!(1)));
        assert_eq!(s.apply(&json!(r#"{"a": {"b": 2}}"#)), Some(json!(2)));
        assert_eq!(s.apply(&json!({"a": 1})), None);
        assert_eq!(s.to_string(), r#"parseJson(string_value)["a"]["b"]"#);
        assert!(ItemSelector::parse("string_value").is_err());
        assert!(ItemSelector::parse("parseJson(string_value)").is_err());
    }

    proptest! {
        #[test]
        fn integer_comparisons_agree_with_rust(a in -1000i64..1000, b in -1000i64..1000) {
            let v = json!({"a": a, "b": b.to_string()});
            let lt = eval_with("inputs.parameter_values['a'] < int(inputs.parameter_values['b'])", v.clone()).unwrap();
            prop_assert_eq!(lt, a < b);
            let ne = eval_with("!(inputs.parameter_values['a'] == int(inputs.parameter_values['b']))", v).unwrap();
            prop_assert_eq!(ne, a != b);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,60}") {
            let _ = Condition::parse(&s);
        }
    }
}
