//! Values in and out of statements: parameters, rows, and reading a column as a Rust type.

use rusqlite::types::ValueRef;

use super::{Result, SqlError};
use crate::SqlValue;

/// One row of a query, read into owned values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    values: Vec<SqlValue>,
}

impl Row {
    pub fn new(values: Vec<SqlValue>) -> Row {
        Row { values }
    }

    /// Column `i` as `T`.
    pub fn get<T: FromSql>(&self, i: usize) -> Result<T> {
        let v = self.get_ref(i)?;
        T::from_sql(v).ok_or_else(|| SqlError::Type {
            index: i,
            want: T::WANT,
            found: v.kind().to_string(),
        })
    }

    /// Column `i` as stored.
    pub fn get_ref(&self, i: usize) -> Result<&SqlValue> {
        // Lazily: the message is built only for a missing column, not on every read.
        self.values.get(i).ok_or_else(|| SqlError::Type {
            index: i,
            want: "a column",
            found: format!("a row of {} columns", self.values.len()),
        })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }
}

/// A row as the query's cursor holds it, read without copying: a pool call that needs only
/// some rows whole (`one.vmpool.info` checks each against the body it kept) copies only those.
pub struct RawRow<'a>(RawInner<'a>);

enum RawInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>, usize),
    Owned(&'a Row),
}

/// A column's value, borrowed from its row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueView<'a> {
    Null,
    Int(i64),
    Real(f64),
    /// As stored: OneHA stores only UTF-8, but a read does not check it here.
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl<'a> RawRow<'a> {
    pub(crate) fn sqlite(r: &'a rusqlite::Row<'a>, n: usize) -> RawRow<'a> {
        RawRow(RawInner::Sqlite(r, n))
    }

    /// A row already read into owned values (MySQL's, or a test's).
    pub fn owned(r: &'a Row) -> RawRow<'a> {
        RawRow(RawInner::Owned(r))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            RawInner::Sqlite(_, n) => *n,
            RawInner::Owned(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Column `i`.
    pub fn value(&self, i: usize) -> Result<ValueView<'_>> {
        match &self.0 {
            RawInner::Sqlite(r, _) => Ok(match r.get_ref(i)? {
                ValueRef::Null => ValueView::Null,
                ValueRef::Integer(v) => ValueView::Int(v),
                ValueRef::Real(v) => ValueView::Real(v),
                ValueRef::Text(t) => ValueView::Text(t),
                ValueRef::Blob(b) => ValueView::Blob(b),
            }),
            RawInner::Owned(r) => Ok(match r.get_ref(i)? {
                SqlValue::Null => ValueView::Null,
                SqlValue::Int(v) => ValueView::Int(*v),
                SqlValue::Real(v) => ValueView::Real(*v),
                SqlValue::Text(t) => ValueView::Text(t.as_bytes()),
                SqlValue::Blob(b) => ValueView::Blob(b),
            }),
        }
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64> {
        match self.value(i)? {
            ValueView::Int(v) => Ok(v),
            other => Err(SqlError::Type {
                index: i,
                want: "an integer",
                found: other.kind().to_string(),
            }),
        }
    }

    /// The row as owned values.
    pub fn to_row(&self) -> Result<Row> {
        match &self.0 {
            RawInner::Sqlite(r, n) => sqlite_row(r, *n),
            RawInner::Owned(r) => Ok((*r).clone()),
        }
    }
}

impl ValueView<'_> {
    /// The value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ValueView::Null => "NULL",
            ValueView::Int(_) => "an integer",
            ValueView::Text(_) => "text",
            ValueView::Blob(_) => "a blob",
            ValueView::Real(_) => "a real",
        }
    }
}

/// A SQLite row as owned values.
pub(crate) fn sqlite_row(r: &rusqlite::Row<'_>, n: usize) -> Result<Row> {
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(match r.get_ref(i)? {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(v) => SqlValue::Int(v),
            ValueRef::Real(v) => SqlValue::Real(v),
            // `from_utf8` first: its check is much faster than the lossy decoder's, and text
            // stored by OneHA is always valid.
            ValueRef::Text(t) => SqlValue::Text(match std::str::from_utf8(t) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            }),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        });
    }
    Ok(Row::new(values))
}

impl SqlValue {
    /// The value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            SqlValue::Null => "NULL",
            SqlValue::Int(_) => "an integer",
            SqlValue::Text(_) => "text",
            SqlValue::Blob(_) => "a blob",
            SqlValue::Real(_) => "a real",
        }
    }
}

/// A Rust type a column can be read as.
pub trait FromSql: Sized {
    /// What it expects, for messages.
    const WANT: &'static str;
    fn from_sql(v: &SqlValue) -> Option<Self>;
}

impl FromSql for i64 {
    const WANT: &'static str = "an integer";
    fn from_sql(v: &SqlValue) -> Option<i64> {
        match v {
            SqlValue::Int(i) => Some(*i),
            // MySQL answers SUM() of integers as a DECIMAL.
            SqlValue::Text(t) => t.parse().ok(),
            _ => None,
        }
    }
}

impl FromSql for i32 {
    const WANT: &'static str = "a 32-bit integer";
    fn from_sql(v: &SqlValue) -> Option<i32> {
        i64::from_sql(v).and_then(|i| i32::try_from(i).ok())
    }
}

impl FromSql for u64 {
    const WANT: &'static str = "a non-negative integer";
    fn from_sql(v: &SqlValue) -> Option<u64> {
        i64::from_sql(v).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromSql for bool {
    const WANT: &'static str = "a boolean";
    fn from_sql(v: &SqlValue) -> Option<bool> {
        i64::from_sql(v).map(|i| i != 0)
    }
}

impl FromSql for f64 {
    const WANT: &'static str = "a real";
    fn from_sql(v: &SqlValue) -> Option<f64> {
        match v {
            SqlValue::Real(f) => Some(*f),
            SqlValue::Int(i) => Some(*i as f64),
            SqlValue::Text(t) => t.parse().ok(),
            _ => None,
        }
    }
}

impl FromSql for String {
    const WANT: &'static str = "text";
    fn from_sql(v: &SqlValue) -> Option<String> {
        match v {
            SqlValue::Text(t) => Some(t.clone()),
            SqlValue::Blob(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    }
}

impl FromSql for Vec<u8> {
    const WANT: &'static str = "a blob";
    fn from_sql(v: &SqlValue) -> Option<Vec<u8>> {
        match v {
            SqlValue::Blob(b) => Some(b.clone()),
            SqlValue::Text(t) => Some(t.as_bytes().to_vec()),
            _ => None,
        }
    }
}

impl FromSql for SqlValue {
    const WANT: &'static str = "a value";
    fn from_sql(v: &SqlValue) -> Option<SqlValue> {
        Some(v.clone())
    }
}

impl<T: FromSql> FromSql for Option<T> {
    const WANT: &'static str = T::WANT;
    fn from_sql(v: &SqlValue) -> Option<Option<T>> {
        match v {
            SqlValue::Null => Some(None),
            v => T::from_sql(v).map(Some),
        }
    }
}

/// `.optional()`: a query that found no row as `None`.
pub trait Optional<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> Optional<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRows) => Ok(None),
            Err(SqlError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The parameters of a statement, in the order of `?1`, `?2`...
pub trait Params: Sized {
    fn into_values(self) -> Vec<SqlValue>;

    /// `f` over the values, borrowed where they already are a slice: SQLite binds from a slice
    /// (and copies what it binds), so an applied statement's values, the allocation's whole body
    /// among them, are not copied once more only to be bound.
    fn with_values<R>(self, f: impl FnOnce(&[SqlValue]) -> R) -> R {
        f(&self.into_values())
    }
}

impl Params for () {
    fn into_values(self) -> Vec<SqlValue> {
        Vec::new()
    }
}

impl Params for Vec<SqlValue> {
    fn into_values(self) -> Vec<SqlValue> {
        self
    }
}

impl Params for &[SqlValue] {
    fn into_values(self) -> Vec<SqlValue> {
        self.to_vec()
    }

    fn with_values<R>(self, f: impl FnOnce(&[SqlValue]) -> R) -> R {
        f(self)
    }
}

impl Params for &Vec<SqlValue> {
    fn into_values(self) -> Vec<SqlValue> {
        self.clone()
    }

    fn with_values<R>(self, f: impl FnOnce(&[SqlValue]) -> R) -> R {
        f(self)
    }
}

impl<T: Into<SqlValue>, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<SqlValue> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<A: Into<SqlValue>, B: Into<SqlValue>> Params for (A, B) {
    fn into_values(self) -> Vec<SqlValue> {
        vec![self.0.into(), self.1.into()]
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for SqlValue {
            fn from(v: $t) -> SqlValue {
                SqlValue::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i64, i32, u32, u16, u8, bool);

impl From<u64> for SqlValue {
    /// Log indexes and ACL bits: stored as SQLite stores them, the same 64 bits as a signed
    /// integer.
    fn from(v: u64) -> SqlValue {
        SqlValue::Int(v as i64)
    }
}

impl From<usize> for SqlValue {
    fn from(v: usize) -> SqlValue {
        SqlValue::Int(v as i64)
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> SqlValue {
        SqlValue::Real(v)
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> SqlValue {
        SqlValue::Text(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> SqlValue {
        SqlValue::Text(v.to_string())
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> SqlValue {
        SqlValue::Text(v.clone())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> SqlValue {
        SqlValue::Blob(v)
    }
}

impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> SqlValue {
        SqlValue::Blob(v.to_vec())
    }
}

impl From<&SqlValue> for SqlValue {
    fn from(v: &SqlValue) -> SqlValue {
        v.clone()
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> SqlValue {
        v.map_or(SqlValue::Null, Into::into)
    }
}
