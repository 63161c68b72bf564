//! `onedb backup` and `onedb restore` of a MySQL state database: as OpenNebula's, the backup
//! is a SQL dump the `mysql` client loads (`mysql -u oneadmin -p opennebula < file`), one
//! statement per line. Its last line carries OneHA's digests: of the state it holds (the same
//! as `onedb checksum`) and of every byte before it, so a truncated or modified file is refused
//! before anything is dropped, and a restore is checked against the state it must produce.

use std::fs;
use std::path::Path;

use crate::open::DbError;
use crate::sql::{quote, Conn, Location};
use crate::{BackupInfo, SqlValue};

/// Bumped if the layout of dumps changes.
const FORMAT: &str = "oneha-mysql-1";
/// An INSERT line grows to about this before the next one starts: far under MySQL's
/// `max_allowed_packet` (16 MiB by default on MariaDB).
const LINE_BYTES: usize = 1 << 20;

/// A value as a MySQL literal under the dump's session mode (backslash escapes on).
fn literal(v: &SqlValue, out: &mut String) {
    match v {
        SqlValue::Null => out.push_str("NULL"),
        SqlValue::Int(i) => out.push_str(&i.to_string()),
        // Rust prints the shortest text that reads back as the same double.
        SqlValue::Real(f) => out.push_str(&format!("{f:?}")),
        SqlValue::Text(t) => {
            out.push('\'');
            for c in t.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\0' => out.push_str("\\0"),
                    '\u{1a}' => out.push_str("\\Z"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
        SqlValue::Blob(b) if b.is_empty() => out.push_str("''"),
        SqlValue::Blob(b) => {
            out.push_str("X'");
            out.push_str(&hex::encode(b));
            out.push('\'');
        }
    }
}

/// Writes a dump of the MySQL state database behind `conn` to `dest` (replaced if it exists),
/// from one consistent snapshot of its tables.
pub fn write_dump(conn: &Conn, dest: &Path) -> Result<BackupInfo, DbError> {
    // The digest and the rows come from the same snapshot, while oned goes on writing.
    let tx = conn.read_transaction().map_err(DbError::at(dest))?;
    let sum = crate::checksum::checksum_in(&tx, &[]).map_err(DbError::at(dest))?;
    let mut out = crate::digested::Writer::create(dest, ".oneha-dump.")?;
    {
        let mut line = |text: &str| out.line(text);
        line("-- OneHA state database (MySQL/MariaDB). Load it with: mysql -u <user> -p <db> < <this file>")?;
        line("SET NAMES utf8mb4;")?;
        line("SET SESSION sql_mode = 'PIPES_AS_CONCAT,ANSI_QUOTES,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO';")?;
        line("SET FOREIGN_KEY_CHECKS = 0;")?;
        for table in tx.tables().map_err(DbError::at(dest))? {
            let create: String = tx
                .query_row(&format!("SHOW CREATE TABLE {}", quote(&table)), (), |r| {
                    r.get(1)
                })
                .map_err(DbError::at(dest))?;
            line(&format!("DROP TABLE IF EXISTS {};", quote(&table)))?;
            line(&format!("{};", create.replace('\n', " ")))?;
            let head = format!("INSERT INTO {} VALUES ", quote(&table));
            let mut pending = String::new();
            let mut failed = None;
            tx.prepare(&format!("SELECT * FROM {}", quote(&table)))
                .and_then(|mut st| {
                    st.for_each((), |row| {
                        pending.push_str(if pending.is_empty() { &head } else { "," });
                        pending.push('(');
                        for (i, v) in row.values().iter().enumerate() {
                            if i > 0 {
                                pending.push(',');
                            }
                            literal(v, &mut pending);
                        }
                        pending.push(')');
                        if pending.len() >= LINE_BYTES {
                            pending.push(';');
                            if let Err(e) = line(&pending) {
                                failed = Some(e);
                            }
                            pending.clear();
                        }
                        Ok(())
                    })
                })
                .map_err(DbError::at(dest))?;
            if let Some(e) = failed {
                return Err(e);
            }
            if !pending.is_empty() {
                pending.push(';');
                line(&pending)?;
            }
        }
        line("SET FOREIGN_KEY_CHECKS = 1;")?;
    }
    out.finish(FORMAT, &sum.sha256)?;
    Ok(BackupInfo {
        sha256: sum.sha256,
        tables: sum.tables,
    })
}

/// Whether `path` starts like a dump written by [`write_dump`] (rather than a SQLite backup).
pub fn is_dump(path: &Path) -> bool {
    let mut head = [0u8; 16];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| head.starts_with(b"-- OneHA state"))
}

/// Checks a dump's digest line against its content; returns its statements and the digest of
/// the state they produce.
fn verified(path: &Path) -> Result<(String, String), DbError> {
    crate::digested::read(path, FORMAT, |f| format!("unknown backup format {f}"))
}

/// Checks that `path` is a complete, unmodified dump.
pub fn verify_dump(path: &Path) -> Result<String, DbError> {
    verified(path).map(|(_, state)| state)
}

/// Loads the dump `src` into the MySQL database `target` after verifying it, and checks the
/// result against the state digest the dump carries. MySQL cannot drop and create tables inside
/// a transaction: a failure after the first statement (the server lost, a full disk) leaves the
/// database partly restored, and says so.
pub fn restore_dump(src: &Path, target: &Location) -> Result<BackupInfo, DbError> {
    let (body, state) = verified(src)?;
    // Holds the database's lock: a restore never runs under a live oned, nor one under it.
    let conn = crate::open_state(target)?;
    for stmt in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
    {
        conn.execute_batch(stmt).map_err(|e| {
            DbError::Corrupt(format!(
                "restoring {} into {target} failed part-way, the database must be restored again: {e}",
                src.display()
            ))
        })?;
    }
    // Back to OneHA's own session mode to read what the dump wrote.
    conn.execute_batch(&format!(
        "SET SESSION sql_mode = '{}'",
        crate::sql::SESSION_MODE
    ))
    .map_err(DbError::on(target))?;
    let sum = crate::checksum(&conn).map_err(DbError::on(target))?;
    if sum.sha256 != state {
        return Err(DbError::Corrupt(format!(
            "{} was loaded into {target}, but the state there ({}) is not the one the backup holds ({state})",
            src.display(),
            sum.sha256
        )));
    }
    Ok(BackupInfo {
        sha256: sum.sha256,
        tables: sum.tables,
    })
}
