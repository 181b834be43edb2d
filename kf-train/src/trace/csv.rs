//! The small CSV dialect the published traces use: a header line, comma
//! separated fields without quoting, optional `\r`, blank lines ignored.
//! It splits and locates; the format rules live in the parent module.

use std::str::FromStr;

use crate::{Error, Result};

pub(super) struct Table<'a> {
    header: Vec<&'a str>,
    pub(super) rows: Vec<Row<'a>>,
}

pub(super) struct Row<'a> {
    line: usize,
    fields: Vec<&'a str>,
}

impl<'a> Table<'a> {
    pub(super) fn parse(text: &'a str) -> Result<Table<'a>> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        let Some((_, header)) = lines.by_ref().find(|(_, l)| !l.trim().is_empty()) else {
            return Err(Error::Trace {
                line: 1,
                column: "header".into(),
                message: "expected a header line, found an empty file".into(),
            });
        };
        let header: Vec<&str> = header.split(',').map(str::trim).collect();
        let mut rows = Vec::new();
        for (line, l) in lines {
            if l.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            if fields.len() != header.len() {
                return Err(Error::Trace {
                    line,
                    column: "*".into(),
                    message: format!("expected {} fields as in the header, found {}", header.len(), fields.len()),
                });
            }
            rows.push(Row { line, fields });
        }
        Ok(Table { header, rows })
    }

    /// Indexes of the named columns; a missing one is an error listing the header.
    pub(super) fn columns<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N]> {
        let mut out = [0; N];
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = self.header.iter().position(|h| *h == name).ok_or_else(|| Error::Trace {
                line: 1,
                column: name.to_string(),
                message: format!("missing column; the header has: {}", self.header.join(",")),
            })?;
        }
        Ok(out)
    }
}

impl Row<'_> {
    pub(super) fn get(&self, i: usize) -> &str {
        self.fields.get(i).copied().unwrap_or("")
    }

    pub(super) fn error(&self, column: &str, message: String) -> Error {
        Error::Trace { line: self.line, column: column.to_string(), message }
    }

    pub(super) fn parse_with<T>(
        &self,
        i: usize,
        column: &str,
        f: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T> {
        let raw = self.get(i);
        f(raw).ok_or_else(|| self.error(column, format!("expected {expected}, found {raw:?}")))
    }

    /// A number; NaN and infinities are rejected.
    pub(super) fn number<T: FromStr + Finite>(&self, i: usize, column: &str) -> Result<T> {
        self.parse_with(i, column, |s| s.parse::<T>().ok().filter(Finite::is_finite), "a finite number")
    }

    /// An integer, also accepted when written as a float with no fraction (`2.0`).
    pub(super) fn integer(&self, i: usize, column: &str) -> Result<i64> {
        self.parse_with(
            i,
            column,
            |s| {
                s.parse::<i64>().ok().or_else(|| {
                    let f = s.parse::<f64>().ok()?;
                    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15).then_some(f as i64)
                })
            },
            "an integer",
        )
    }

    /// A number, or `None` for an empty field.
    pub(super) fn optional<T: FromStr + Finite>(&self, i: usize, column: &str) -> Result<Option<T>> {
        if self.get(i).is_empty() { Ok(None) } else { self.number(i, column).map(Some) }
    }
}

pub(super) trait Finite {
    fn is_finite(&self) -> bool;
}

impl Finite for f64 {
    fn is_finite(&self) -> bool {
        f64::is_finite(*self)
    }
}

impl Finite for u64 {
    fn is_finite(&self) -> bool {
        true
    }
}
