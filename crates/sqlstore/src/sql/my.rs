//! The MySQL/MariaDB side of [`super::Conn`]: connecting with OpenNebula's `DB` attributes,
//! the session every connection runs with, and values to and from the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mysql::consts::{CapabilityFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{OptsBuilder, Statement, Value};

use super::dialect::{translate, Translated};
use super::value::Row;
use super::{Result, SqlError};
use crate::SqlValue;

/// OpenNebula's `DB = [ BACKEND = "mysql", SERVER, PORT, USER, PASSWD, DB_NAME, CONNECTIONS ]`.
#[derive(Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    pub server: String,
    /// 0: MySQL's default port, 3306 (as OpenNebula reads it).
    pub port: u16,
    pub user: String,
    pub passwd: String,
    pub db_name: String,
    /// The most connections a server opens (its writer, snapshots and the read pool).
    pub connections: u32,
}

impl MysqlConfig {
    /// OpenNebula's `DB` section (`Nebula.cc`), its attributes read through `get`: BACKEND
    /// `sqlite` (the default, `None`) or `mysql`, with SERVER, PORT, USER, PASSWD, DB_NAME and
    /// CONNECTIONS and OpenNebula's defaults. ENCODING, COMPARE_BINARY and TIMEOUT are
    /// accepted and not needed: OneHA always stores utf8mb4 and compares byte by byte, as
    /// SQLite does. An error names the attribute.
    pub fn from_db_section<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<MysqlConfig>, (&'static str, String)> {
        let backend = get("BACKEND").unwrap_or("sqlite").trim().to_lowercase();
        match backend.as_str() {
            "sqlite" => return Ok(None),
            "mysql" => {}
            other => {
                return Err((
                    "DB/BACKEND",
                    format!("\"{other}\": DB BACKEND must be sqlite or mysql"),
                ))
            }
        }
        let port = match get("PORT") {
            Some(p) => p.trim().parse::<u16>().map_err(|_| {
                (
                    "DB/PORT",
                    format!("expected a port number (0: 3306), got \"{p}\""),
                )
            })?,
            None => 0,
        };
        let connections = match get("CONNECTIONS") {
            Some(c) => c.trim().parse::<u32>().map_err(|_| {
                (
                    "DB/CONNECTIONS",
                    format!("expected a number of connections, got \"{c}\""),
                )
            })?,
            None => 25,
        };
        if connections < 2 {
            return Err((
                "DB/CONNECTIONS",
                "at least 2: one to apply changes, one to read".to_string(),
            ));
        }
        let text = |k: &str, default: &str| get(k).unwrap_or(default).to_string();
        Ok(Some(MysqlConfig {
            server: text("SERVER", "localhost"),
            port,
            user: text("USER", "oneadmin"),
            passwd: text("PASSWD", "oneadmin"),
            db_name: text("DB_NAME", "opennebula"),
            connections,
        }))
    }

    pub fn port_or_default(&self) -> u16 {
        if self.port == 0 {
            3306
        } else {
            self.port
        }
    }
}

/// Never shows the password.
impl std::fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MysqlConfig({self}, connections {})", self.connections)
    }
}

impl std::fmt::Display for MysqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mysql://{}@{}:{}/{}",
            self.user,
            self.server,
            self.port_or_default(),
            self.db_name
        )
    }
}

/// The session mode every connection runs with, so OneHA's SQL means in MySQL what it means in
/// SQLite: `||` concatenates, `"x"` is an identifier, a backslash is an ordinary character,
/// a value that does not fit is an error rather than a warning, and 0 is a valid id.
pub const SQL_MODE: &str = "PIPES_AS_CONCAT,ANSI_QUOTES,NO_BACKSLASH_ESCAPES,\
STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO";

/// Statements translated so far, per connection; pool queries are built per call, so it is
/// emptied when it grows past this.
const TRANSLATED_MAX: usize = 1024;

pub(crate) struct MyConn {
    client: mysql::Conn,
    translated: HashMap<String, Arc<Translated>>,
    /// The binary collation that compares text byte for byte, without padding, as SQLite does.
    pub collation: &'static str,
}

pub(crate) struct Prepared {
    stmt: Statement,
    t: Arc<Translated>,
}

impl Prepared {
    pub fn column_count(&self) -> usize {
        usize::from(self.stmt.num_columns())
    }

    pub fn column_names(&self) -> Vec<String> {
        self.stmt
            .columns()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect()
    }
}

pub(crate) struct Exec {
    pub rows: Vec<Row>,
    pub affected: u64,
}

impl MyConn {
    pub fn connect(cfg: &MysqlConfig) -> Result<MyConn> {
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(cfg.server.clone()))
            .tcp_port(cfg.port_or_default())
            .user(Some(cfg.user.clone()))
            .pass(Some(cfg.passwd.clone()))
            .db_name(Some(cfg.db_name.clone()))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .tcp_connect_timeout(Some(Duration::from_secs(5)))
            // A lost server shows up as an error within this, never as a hung apply.
            .read_timeout(Some(Duration::from_secs(60)))
            .write_timeout(Some(Duration::from_secs(60)))
            .stmt_cache_size(256)
            // UPDATE counts the rows it matched, as SQLite does, not only those it changed.
            .additional_capabilities(CapabilityFlags::CLIENT_FOUND_ROWS)
            .init(vec![format!("SET SESSION sql_mode = '{SQL_MODE}'")]);
        let mut client = mysql::Conn::new(opts)?;
        let version: String = client.query_first("SELECT VERSION()")?.unwrap_or_default();
        let collation = if version.contains("MariaDB") {
            "utf8mb4_nopad_bin"
        } else {
            "utf8mb4_0900_bin"
        };
        client.query_drop(format!("SET NAMES utf8mb4 COLLATE {collation}"))?;
        Ok(MyConn {
            client,
            translated: HashMap::new(),
            collation,
        })
    }

    /// The server's id of this connection (`CONNECTION_ID()`), known since the handshake.
    pub fn session_id(&self) -> u64 {
        u64::from(self.client.connection_id())
    }

    pub fn prepare(&mut self, sql: &str) -> Result<Prepared> {
        if self.translated.len() > TRANSLATED_MAX {
            self.translated.clear();
        }
        let t = self
            .translated
            .entry(sql.to_string())
            .or_insert_with(|| Arc::new(translate(sql)))
            .clone();
        let stmt = self.client.prep(&t.sql)?;
        Ok(Prepared { stmt, t })
    }

    pub fn exec(&mut self, p: &Prepared, values: Vec<SqlValue>, rows: bool) -> Result<Exec> {
        let params = bind(p, &values)?;
        let mut result = self.client.exec_iter(&p.stmt, params)?;
        // Known from the server's OK packet before any row is read; gone once they are.
        let affected = result.affected_rows();
        let mut out = Vec::new();
        if rows {
            for row in result.by_ref() {
                out.push(from_mysql(row?)?);
            }
        }
        drop(result);
        Ok(Exec {
            rows: out,
            affected,
        })
    }

    /// Runs `p` and hands each row to `f` as it arrives.
    pub fn exec_each(
        &mut self,
        p: &Prepared,
        values: Vec<SqlValue>,
        f: &mut dyn FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        let params = bind(p, &values)?;
        for row in self.client.exec_iter(&p.stmt, params)? {
            f(&from_mysql(row?)?)?;
        }
        Ok(())
    }

    pub fn batch(&mut self, sql: &str) -> Result<()> {
        // `query_drop` reports only the first statement's error: a later statement of the
        // batch that fails (a key too long in a `CREATE TABLE`) would pass unseen, and the
        // statements after it would silently not run. Each result set is read for its error.
        let mut result = self.client.query_iter(sql)?;
        while let Some(set) = result.iter() {
            for row in set {
                row?;
            }
        }
        Ok(())
    }
}

/// The values of `p`'s placeholders, in the order they appear in its MySQL text.
fn bind(p: &Prepared, values: &[SqlValue]) -> Result<Vec<Value>> {
    p.t.order
        .iter()
        .map(|&i| {
            values.get(i).map(to_mysql).ok_or(SqlError::Type {
                index: i,
                want: "a parameter",
                found: format!("{} parameters", values.len()),
            })
        })
        .collect()
}

fn to_mysql(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::NULL,
        SqlValue::Int(i) => Value::Int(*i),
        SqlValue::Real(f) => Value::Double(*f),
        SqlValue::Text(t) => Value::Bytes(t.as_bytes().to_vec()),
        SqlValue::Blob(b) => Value::Bytes(b.clone()),
    }
}

/// MySQL's character set number for binary data (BLOB columns, `X'..'`).
const BINARY: u16 = 63;

fn from_mysql(row: mysql::Row) -> Result<Row> {
    let kinds: Vec<(ColumnType, u16)> = row
        .columns_ref()
        .iter()
        .map(|c| (c.column_type(), c.character_set()))
        .collect();
    let values = row.unwrap();
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        let (kind, charset) = kinds
            .get(i)
            .copied()
            .unwrap_or((ColumnType::MYSQL_TYPE_BLOB, BINARY));
        out.push(match v {
            Value::NULL => SqlValue::Null,
            Value::Int(i) => SqlValue::Int(i),
            Value::UInt(u) => match i64::try_from(u) {
                Ok(i) => SqlValue::Int(i),
                Err(_) => SqlValue::Real(u as f64),
            },
            Value::Float(f) => SqlValue::Real(f64::from(f)),
            Value::Double(f) => SqlValue::Real(f),
            Value::Bytes(b) => match kind {
                ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                    decimal(&b, i)?
                }
                _ if charset == BINARY => SqlValue::Blob(b),
                _ => SqlValue::Text(String::from_utf8(b).map_err(|e| SqlError::Type {
                    index: i,
                    want: "UTF-8 text",
                    found: e.to_string(),
                })?),
            },
            other => SqlValue::Text(other.as_sql(true)),
        });
    }
    Ok(Row::new(out))
}

/// A DECIMAL (MySQL's `SUM()` of integers) as an integer when it is one, as SQLite answers.
fn decimal(b: &[u8], index: usize) -> Result<SqlValue> {
    let text = std::str::from_utf8(b).unwrap_or("");
    if let Ok(i) = text.parse::<i64>() {
        return Ok(SqlValue::Int(i));
    }
    text.parse::<f64>()
        .map(SqlValue::Real)
        .map_err(|_| SqlError::Type {
            index,
            want: "a decimal",
            found: text.to_string(),
        })
}
