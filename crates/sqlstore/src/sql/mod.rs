//! One connection type over both backends, SQLite (embedded, the default) and MySQL/MariaDB.
//!
//! Every statement of OneHA is written once, in the SQL both understand, with SQLite's numbered
//! parameters (`?1`). The MySQL side rewrites the few forms that differ when it first sees a
//! statement (`dialect`): numbered parameters, `INSERT OR IGNORE`, `ON CONFLICT ... DO UPDATE`,
//! `CAST(... AS INTEGER)`. The log therefore carries one SQL text whatever the backend, and a
//! zone runs one backend on every server (a snapshot is always a SQLite file, see `copy`).
//!
//! The API is the small part of rusqlite's that OneHA uses (`prepare_cached`, `query_row`,
//! `query_map`, `execute`, transactions), so code reads the same on both backends; rows are
//! read into owned [`SqlValue`]s.

mod dialect;
mod my;
mod value;

use std::cell::RefCell;
use std::path::PathBuf;

pub use my::{MysqlConfig, SQL_MODE as SESSION_MODE};
pub use value::{FromSql, Optional, Params, RawRow, Row, ValueView};

use crate::SqlValue;

/// Which SQL engine holds a server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
}

impl Backend {
    /// The name `oned.conf` (`DB/BACKEND`) and `onedb -t` use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }

    pub fn parse(name: &str) -> Option<Backend> {
        match name.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "mysql" => Some(Backend::Mysql),
            _ => None,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a server's state database is: a SQLite file, or a MySQL/MariaDB database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Mysql(MysqlConfig),
}

impl Location {
    pub fn backend(&self) -> Backend {
        match self {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Mysql(_) => Backend::Mysql,
        }
    }
}

/// Names the database in messages; never shows a password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Mysql(m) => write!(f, "{m}"),
        }
    }
}

/// A failed statement or connection, of either backend.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("MySQL: {0}")]
    Mysql(#[from] mysql::Error),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {index}: cannot read {found} as {want}")]
    Type {
        index: usize,
        want: &'static str,
        found: String,
    },
    /// A value OneHA writes that could not be encoded.
    #[error("{0}")]
    Encode(String),
}

/// MySQL/MariaDB server error numbers OneHA tells apart.
mod code {
    pub const DUP_ENTRY: u16 = 1062;
    pub const DUP_ENTRY_WITH_KEY: u16 = 1586;
    pub const BAD_NULL: u16 = 1048;
    pub const ROW_IS_REFERENCED: u16 = 1451;
    pub const NO_REFERENCED_ROW: u16 = 1452;
    pub const CHECK_MYSQL: u16 = 3819;
    pub const CHECK_MARIADB: u16 = 4025;
    pub const NO_SUCH_THREAD: u16 = 1094;
    /// Machine conditions: full disk or table, read-only server, lock waits and deadlocks,
    /// too many connections, lost privileges, the server shutting down or killing the
    /// statement (KILL QUERY, a statement time limit), network errors it saw, memory.
    pub const MACHINE: [u16; 24] = [
        1021, 1037, 1038, 1040, 1041, 1044, 1045, 1049, 1053, 1114, 1135, 1152, 1158, 1159, 1160,
        1161, 1205, 1213, 1290, 1317, 1792, 1836, 1927, 1969,
    ];
}

impl SqlError {
    fn mysql_code(&self) -> Option<u16> {
        match self {
            SqlError::Mysql(mysql::Error::MySqlError(e)) => Some(e.code),
            _ => None,
        }
    }

    /// MySQL's answer to a `KILL` of a connection that is gone already.
    pub fn is_no_such_thread(&self) -> bool {
        self.mysql_code() == Some(code::NO_SUCH_THREAD)
    }

    /// A UNIQUE, NOT NULL, CHECK or foreign key constraint refused the change.
    pub fn is_constraint(&self) -> bool {
        match self {
            SqlError::Sqlite(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            _ => self.mysql_code().is_some_and(|c| {
                [
                    code::DUP_ENTRY,
                    code::DUP_ENTRY_WITH_KEY,
                    code::BAD_NULL,
                    code::ROW_IS_REFERENCED,
                    code::NO_REFERENCED_ROW,
                    code::CHECK_MYSQL,
                    code::CHECK_MARIADB,
                ]
                .contains(&c)
            }),
        }
    }

    /// The connection to the database server is gone (MySQL): the statement may be retried on
    /// a new one, and a transaction in flight was rolled back by the server.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            SqlError::Mysql(e) => {
                matches!(
                    e,
                    mysql::Error::IoError(_)
                        | mysql::Error::CodecError(_)
                        | mysql::Error::DriverError(_)
                ) || self.mysql_code() == Some(1927)
            }
            _ => false,
        }
    }

    /// An error of this machine rather than of the SQL (I/O, full disk, corruption, a lost
    /// connection): the same statement would succeed elsewhere, so it must stop the apply
    /// rather than be recorded as the statement's outcome.
    pub fn is_fatal(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            SqlError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    DiskFull
                        | SystemIoFailure
                        | DatabaseCorrupt
                        | CannotOpen
                        | NotADatabase
                        | OutOfMemory
                        | ReadOnly
                        | DatabaseBusy
                        | DatabaseLocked
                        | FileLockingProtocolFailed
                )
            ),
            SqlError::Mysql(_) => self.is_server_condition(),
            _ => false,
        }
    }

    /// A condition of the MySQL server rather than of the SQL: the connection lost, or one of
    /// `code::MACHINE` (the server shutting down, a lock wait, a full disk...). The same
    /// statement may succeed on a new connection once the server is well again. Never for
    /// SQLite, whose machine errors ([`SqlError::is_fatal`]) do not pass by themselves.
    pub fn is_server_condition(&self) -> bool {
        self.is_connection_lost()
            || self
                .mysql_code()
                .is_some_and(|c| code::MACHINE.contains(&c))
    }
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// A connection to the state database.
pub struct Conn {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    // The MySQL client needs `&mut` for every call; a connection is only ever used by one
    // thread at a time, as rusqlite's.
    Mysql(RefCell<my::MyConn>),
}

/// Prepared statements kept per SQLite connection. rusqlite keeps 16, fewer than the distinct
/// statements one round of writes of several kinds runs (each family's inserts and updates, the
/// apply's meta row, the reads that authenticate): past that every statement was parsed again.
/// The MySQL client keeps as many (`stmt_cache_size` in `my.rs`).
const STMT_CACHE: usize = 256;

impl From<rusqlite::Connection> for Conn {
    fn from(c: rusqlite::Connection) -> Conn {
        c.set_prepared_statement_cache_capacity(STMT_CACHE);
        Conn {
            inner: Inner::Sqlite(c),
        }
    }
}

impl Conn {
    /// Opens a connection to `loc` without creating or checking anything (see
    /// [`crate::open_state`] for the read-write connection of a server).
    pub fn open(loc: &Location, read_only: bool) -> Result<Conn> {
        Ok(match loc {
            Location::Sqlite(path) => {
                let c = if read_only {
                    rusqlite::Connection::open_with_flags(
                        path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?
                } else {
                    rusqlite::Connection::open(path)?
                };
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                Conn::from(c)
            }
            Location::Mysql(cfg) => Conn {
                inner: Inner::Mysql(RefCell::new(my::MyConn::connect(cfg)?)),
            },
        })
    }

    /// The MySQL server's id of this connection; `None` on SQLite.
    pub fn session_id(&self) -> Option<u64> {
        match &self.inner {
            Inner::Sqlite(_) => None,
            Inner::Mysql(m) => Some(m.borrow().session_id()),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Mysql(_) => Backend::Mysql,
        }
    }

    /// The SQLite connection, for what only SQLite has (`VACUUM INTO`, the backup API).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Mysql(_) => None,
        }
    }

    pub fn sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match &mut self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Mysql(_) => None,
        }
    }

    /// A statement for one-off SQL (pool queries built per call).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt {
            inner: match &self.inner {
                Inner::Sqlite(c) => StmtInner::Sqlite(SqliteStmt::Plain(c.prepare(sql)?)),
                Inner::Mysql(m) => StmtInner::Mysql(m, m.borrow_mut().prepare(sql)?),
            },
        })
    }

    /// A statement kept prepared for the next call with the same SQL.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt {
            inner: match &self.inner {
                Inner::Sqlite(c) => StmtInner::Sqlite(SqliteStmt::Cached(c.prepare_cached(sql)?)),
                Inner::Mysql(m) => StmtInner::Mysql(m, m.borrow_mut().prepare(sql)?),
            },
        })
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Runs statements without parameters, separated by `;` (schema, transaction control).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Mysql(m) => m.borrow_mut().batch(sql),
        }
    }

    /// A read-write transaction, rolled back unless committed.
    pub fn transaction(&mut self) -> Result<Txn<'_>> {
        self.begin(false)
    }

    /// [`Conn::transaction`] on a shared reference (the caller knows no other transaction is
    /// open on this connection).
    pub fn unchecked_transaction(&self) -> Result<Txn<'_>> {
        self.begin(false)
    }

    /// A read-only transaction that sees one consistent state of every table.
    pub fn read_transaction(&self) -> Result<Txn<'_>> {
        self.begin(true)
    }

    fn begin(&self, read: bool) -> Result<Txn<'_>> {
        let sql = match (self.backend(), read) {
            (Backend::Sqlite, _) => "BEGIN DEFERRED",
            (Backend::Mysql, false) => "START TRANSACTION",
            (Backend::Mysql, true) => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        };
        self.execute_batch(sql)?;
        Ok(Txn {
            conn: self,
            done: false,
        })
    }

    /// The tables of the database (not SQLite's own), in byte order of their names.
    pub fn tables(&self) -> Result<Vec<String>> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            Backend::Mysql => {
                "SELECT table_name FROM information_schema.tables
                 WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
            }
        };
        let mut names: Vec<String> = self
            .prepare(sql)?
            .query_map((), |r| r.get(0))?
            .collect::<Result<_>>()?;
        names.sort();
        Ok(names)
    }

    /// The columns of `table`, in their order.
    pub fn columns(&self, table: &str) -> Result<Vec<String>> {
        Ok(self
            .prepare(&format!("SELECT * FROM {} LIMIT 0", quote(table)))?
            .column_names())
    }
}

/// The schema written for SQLite (see `open::SCHEMA`) as this MySQL server creates it.
pub(crate) fn mysql_schema(conn: &Conn, sqlite_schema: &str) -> String {
    let collation = match &conn.inner {
        Inner::Mysql(m) => m.borrow().collation,
        Inner::Sqlite(_) => "utf8mb4_nopad_bin",
    };
    dialect::schema(sqlite_schema, collation)
}

/// `name` as a quoted identifier (both backends read `"..."`; MySQL in ANSI_QUOTES mode).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A transaction; rolled back when dropped uncommitted.
pub struct Txn<'c> {
    conn: &'c Conn,
    done: bool,
}

impl Txn<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for Txn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Fails only when the connection is gone, which ends the transaction anyway.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A prepared statement.
pub struct Stmt<'c> {
    inner: StmtInner<'c>,
}

enum StmtInner<'c> {
    Sqlite(SqliteStmt<'c>),
    Mysql(&'c RefCell<my::MyConn>, my::Prepared),
}

enum SqliteStmt<'c> {
    Plain(rusqlite::Statement<'c>),
    Cached(rusqlite::CachedStatement<'c>),
}

impl<'c> SqliteStmt<'c> {
    fn get(&mut self) -> &mut rusqlite::Statement<'c> {
        match self {
            SqliteStmt::Plain(s) => s,
            SqliteStmt::Cached(s) => s,
        }
    }

    fn get_ref(&self) -> &rusqlite::Statement<'c> {
        match self {
            SqliteStmt::Plain(s) => s,
            SqliteStmt::Cached(s) => s,
        }
    }
}

impl Stmt<'_> {
    /// How many columns its rows have (0 for a statement that returns none).
    pub fn column_count(&self) -> usize {
        match &self.inner {
            StmtInner::Sqlite(s) => s.get_ref().column_count(),
            StmtInner::Mysql(_, p) => p.column_count(),
        }
    }

    pub fn column_names(&self) -> Vec<String> {
        match &self.inner {
            StmtInner::Sqlite(s) => s
                .get_ref()
                .column_names()
                .iter()
                .map(|n| n.to_string())
                .collect(),
            StmtInner::Mysql(_, p) => p.column_names(),
        }
    }

    /// Runs a statement that returns no rows; the number of rows it changed (MySQL: matched).
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        match &mut self.inner {
            StmtInner::Sqlite(s) => Ok(
                params.with_values(|v| s.get().execute(rusqlite::params_from_iter(v.iter())))?
            ),
            StmtInner::Mysql(c, p) => Ok(c
                .borrow_mut()
                .exec(p, params.into_values(), false)?
                .affected as usize),
        }
    }

    /// Runs a statement of any kind: the first column of its first row if it returns rows (all
    /// of them are read, so an `INSERT ... RETURNING` of several completes), and how many rows
    /// it changed. (MariaDB does not announce the columns of `RETURNING` when it prepares a
    /// statement, so [`Stmt::column_count`] cannot tell.)
    pub fn run(&mut self, params: impl Params) -> Result<(Option<SqlValue>, usize)> {
        let returns_rows = self.column_count() > 0;
        match &mut self.inner {
            StmtInner::Mysql(c, p) => {
                let got = c.borrow_mut().exec(p, params.into_values(), true)?;
                let first = got
                    .rows
                    .first()
                    .map(|r| r.get_ref(0).cloned())
                    .transpose()?;
                Ok((first, got.affected as usize))
            }
            StmtInner::Sqlite(_) if returns_rows => {
                let mut rows = self.query(params)?;
                let first = rows.next()?.map(|r| r.get_ref(0).cloned()).transpose()?;
                while rows.next()?.is_some() {}
                Ok((first, 0))
            }
            StmtInner::Sqlite(_) => Ok((None, self.execute(params)?)),
        }
    }

    /// Runs a query; its rows are read one at a time (SQLite) or once the server has sent
    /// them all (MySQL, whose connection must be free for sub-queries while they are read).
    pub fn query(&mut self, params: impl Params) -> Result<Rows<'_>> {
        let n = self.column_count();
        match &mut self.inner {
            StmtInner::Sqlite(s) => {
                let rows =
                    params.with_values(|v| s.get().query(rusqlite::params_from_iter(v.iter())))?;
                Ok(Rows {
                    inner: RowsInner::Sqlite(rows, n),
                    current: None,
                })
            }
            StmtInner::Mysql(c, p) => {
                let got = c.borrow_mut().exec(p, params.into_values(), true)?;
                Ok(Rows {
                    inner: RowsInner::Buffered(got.rows.into_iter()),
                    current: None,
                })
            }
        }
    }

    /// Every row through `f`, streamed from the server on both backends: `f` must not use this
    /// statement's connection (copies between two databases).
    pub fn for_each(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        match &mut self.inner {
            StmtInner::Mysql(c, p) => c.borrow_mut().exec_each(p, params.into_values(), &mut f),
            StmtInner::Sqlite(_) => {
                let mut rows = self.query(params)?;
                while let Some(r) = rows.next()? {
                    f(r)?;
                }
                Ok(())
            }
        }
    }

    /// The first row through `f`, or [`SqlError::NoRows`].
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(r) => f(r),
            None => Err(SqlError::NoRows),
        }
    }

    /// Every row through `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut rows = self.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(f(r));
        }
        Ok(out.into_iter())
    }
}

/// The rows of a query.
pub struct Rows<'s> {
    inner: RowsInner<'s>,
    current: Option<Row>,
}

enum RowsInner<'s> {
    Sqlite(rusqlite::Rows<'s>, usize),
    Buffered(std::vec::IntoIter<Row>),
}

impl Rows<'_> {
    #[allow(clippy::should_implement_trait)] // a lending iterator, as rusqlite's
    pub fn next(&mut self) -> Result<Option<&Row>> {
        self.current = match &mut self.inner {
            RowsInner::Sqlite(rows, n) => match rows.next()? {
                Some(r) => Some(value::sqlite_row(r, *n)?),
                None => None,
            },
            RowsInner::Buffered(rows) => rows.next(),
        };
        Ok(self.current.as_ref())
    }

    /// The next row, not copied out of SQLite's cursor (MySQL's rows are read already).
    pub fn next_raw(&mut self) -> Result<Option<RawRow<'_>>> {
        match &mut self.inner {
            RowsInner::Sqlite(rows, n) => Ok(rows.next()?.map(|r| RawRow::sqlite(r, *n))),
            RowsInner::Buffered(rows) => {
                self.current = rows.next();
                Ok(self.current.as_ref().map(RawRow::owned))
            }
        }
    }
}

/// Builds the parameters of a statement from values of mixed types.
#[macro_export]
macro_rules! params {
    () => { () };
    ($($x:expr),+ $(,)?) => { vec![$($crate::SqlValue::from($x)),+] };
}

/// Parameters from an iterator of values.
pub fn params_from_iter<T: Into<SqlValue>>(it: impl IntoIterator<Item = T>) -> Vec<SqlValue> {
    it.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests;
