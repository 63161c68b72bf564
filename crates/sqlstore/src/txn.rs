//! The unit of replication: a `SqlTxn` is a list of parameterised statements with every value
//! already bound by the leader, so applying it gives the same result on every server.

use rusqlite::types::{ToSqlOutput, Value as RValue, ValueRef};
use rusqlite::ToSql;
use serde::{Deserialize, Serialize};

use crate::sql::{Conn, SqlError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    /// Last, so entries written before it existed still decode.
    Real(f64),
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(RValue::Null),
            SqlValue::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            SqlValue::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            SqlValue::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
        })
    }
}

impl SqlValue {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// One statement. A statement that returns rows contributes the first column of its first row
/// to the outcome (`INSERT ... RETURNING oid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlStmt {
    pub sql: String,
    pub params: Vec<SqlValue>,
    /// When set, a statement that changes (or returns) no row fails the whole transaction with
    /// `TxnErrorKind::NotFound`: the object disappeared between the leader's check and the apply.
    pub must_match: bool,
}

impl SqlStmt {
    pub fn new(sql: &str, params: Vec<SqlValue>) -> SqlStmt {
        SqlStmt {
            sql: sql.to_string(),
            params,
            must_match: false,
        }
    }

    pub fn must_match(mut self) -> SqlStmt {
        self.must_match = true;
        self
    }

    /// About what the statement weighs in a log entry: its SQL text and bound values.
    pub fn approx_bytes(&self) -> usize {
        self.sql.len()
            + self
                .params
                .iter()
                .map(|v| match v {
                    SqlValue::Text(t) => t.len() + 8,
                    SqlValue::Blob(b) => b.len() + 8,
                    _ => 9,
                })
                .sum::<usize>()
            + 16
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqlTxn {
    pub stmts: Vec<SqlStmt>,
}

impl SqlTxn {
    /// About what the transaction weighs in a log entry: its SQL text and bound values. The
    /// proposer caps entries with it, so one entry never outgrows what a peer call can carry.
    pub fn approx_bytes(&self) -> usize {
        self.stmts.iter().map(SqlStmt::approx_bytes).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnErrorKind {
    /// A UNIQUE or CHECK constraint refused the change (e.g. a name already taken).
    Constraint,
    /// A `must_match` statement matched no row.
    NotFound,
    /// Any other statement error; deterministic, since every server runs the same SQL.
    Sql,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnError {
    pub kind: TxnErrorKind,
    pub stmt: usize,
    pub message: String,
}

/// What applying one `SqlTxn` gave. Errors here are results for the client, not failures of the
/// server: every server reaches the same outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TxnOutcome {
    Done { values: Vec<SqlValue> },
    Failed(TxnError),
}

fn classify(e: &SqlError) -> TxnErrorKind {
    if e.is_constraint() {
        TxnErrorKind::Constraint
    } else {
        TxnErrorKind::Sql
    }
}

/// How a failing transaction's first statements are undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// Each transaction of more than one statement runs in a savepoint, rolled back alone.
    Savepoint,
    /// Nothing is undone here: the caller abandons the whole database transaction at the first
    /// failure and applies it again with [`Undo::Savepoint`]. A savepoint makes SQLite copy
    /// every page the transaction touches into its statement journal first (~6 % of a
    /// follower's CPU under `one.vm.allocate`), and costs MySQL two round trips.
    Abandon,
}

/// Applies `txn` inside a savepoint of the transaction open on `tx`: either all its statements
/// take effect or none. Returns `Err` only for errors that are not the statement's fault (I/O,
/// full disk, corruption, a lost database connection): those must stop the apply rather than
/// let the server diverge.
pub fn apply_txn(tx: &Conn, txn: &SqlTxn) -> Result<TxnOutcome, SqlError> {
    apply_txn_with(tx, txn, Undo::Savepoint)
}

/// [`apply_txn`]; with [`Undo::Abandon`], a failed outcome leaves the statements before the
/// failing one applied, for the caller to roll back with everything else.
pub fn apply_txn_with(tx: &Conn, txn: &SqlTxn, undo: Undo) -> Result<TxnOutcome, SqlError> {
    // A single statement is atomic by itself on both engines (a failing one changes nothing),
    // so it needs no savepoint: on MySQL that saves two round trips per write.
    let savepoint = undo == Undo::Savepoint && txn.stmts.len() > 1;
    if savepoint {
        control(tx, "SAVEPOINT txn")?;
    }
    let undo = |tx: &Conn| -> Result<(), SqlError> {
        if savepoint {
            control(tx, "ROLLBACK TO SAVEPOINT txn")?;
            control(tx, "RELEASE SAVEPOINT txn")?;
        }
        Ok(())
    };
    let mut values = Vec::new();
    for (i, stmt) in txn.stmts.iter().enumerate() {
        match run_stmt(tx, stmt) {
            Ok(Some(v)) => values.push(v),
            Ok(None) if stmt.must_match => {
                undo(tx)?;
                return Ok(TxnOutcome::Failed(TxnError {
                    kind: TxnErrorKind::NotFound,
                    stmt: i,
                    message: "no matching row".into(),
                }));
            }
            Ok(None) => {}
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                undo(tx)?;
                return Ok(TxnOutcome::Failed(TxnError {
                    kind: classify(&e),
                    stmt: i,
                    message: e.to_string(),
                }));
            }
        }
    }
    // MySQL replaces a savepoint by the next one of the same name, and the commit drops the
    // last: releasing it would be one more round trip. SQLite stacks them, so it releases.
    if savepoint && tx.backend() == crate::Backend::Sqlite {
        control(tx, "RELEASE SAVEPOINT txn")?;
    }
    Ok(TxnOutcome::Done { values })
}

/// A savepoint statement: kept prepared on SQLite, which would otherwise parse it at every
/// write; sent as text to MySQL, whose prepared-statement protocol need not accept it.
fn control(tx: &Conn, sql: &str) -> Result<(), SqlError> {
    match tx.backend() {
        crate::Backend::Sqlite => tx.prepare_cached(sql)?.execute(()).map(|_| ()),
        crate::Backend::Mysql => tx.execute_batch(sql),
    }
}

/// Runs `stmts` on `conn` as they are, outside any savepoint (schema upgrades at open).
pub fn run_all(conn: &Conn, stmts: &[SqlStmt]) -> Result<(), SqlError> {
    for stmt in stmts {
        run_stmt(conn, stmt)?;
    }
    Ok(())
}

/// Runs one statement; `Some(value)` when it produced or changed a row.
fn run_stmt(tx: &Conn, stmt: &SqlStmt) -> Result<Option<SqlValue>, SqlError> {
    if tx.backend() == crate::Backend::Sqlite {
        if let Some(insert) = crate::counter_insert::CounterInsert::parse(&stmt.sql) {
            return insert.run(tx, &stmt.params);
        }
    }
    let (first, changed) = tx.prepare_cached(&stmt.sql)?.run(stmt.params.as_slice())?;
    Ok(first.or((changed > 0).then_some(SqlValue::Int(changed as i64))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Conn {
        let c = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
            .unwrap();
        c
    }

    #[test]
    fn failing_statement_rolls_back_only_its_transaction() {
        let mut c = db();
        let tx = c.transaction().unwrap();
        let ok = SqlTxn {
            stmts: vec![SqlStmt::new(
                "INSERT INTO t (name) VALUES (?1) RETURNING id",
                vec![SqlValue::Text("a".into())],
            )],
        };
        let dup = SqlTxn {
            stmts: vec![
                SqlStmt::new(
                    "INSERT INTO t (name) VALUES (?1)",
                    vec![SqlValue::Text("b".into())],
                ),
                SqlStmt::new(
                    "INSERT INTO t (name) VALUES (?1)",
                    vec![SqlValue::Text("a".into())],
                ),
            ],
        };
        assert_eq!(
            apply_txn(&tx, &ok).unwrap(),
            TxnOutcome::Done {
                values: vec![SqlValue::Int(1)]
            }
        );
        match apply_txn(&tx, &dup).unwrap() {
            TxnOutcome::Failed(e) => {
                assert_eq!(e.kind, TxnErrorKind::Constraint);
                assert_eq!(e.stmt, 1);
            }
            other => panic!("{other:?}"),
        }
        tx.commit().unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", (), |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the first insert of the failed txn must be undone");
    }

    #[test]
    fn must_match_statement_on_missing_row_is_not_found() {
        let mut c = db();
        let tx = c.transaction().unwrap();
        let del = SqlTxn {
            stmts: vec![
                SqlStmt::new("DELETE FROM t WHERE id = ?1", vec![SqlValue::Int(9)]).must_match(),
            ],
        };
        match apply_txn(&tx, &del).unwrap() {
            TxnOutcome::Failed(e) => assert_eq!(e.kind, TxnErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }
}
