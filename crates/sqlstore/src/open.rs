//! Opening the state database and taking or installing consistent copies of it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// Errors of the storage layer. Every one of them is an I/O or corruption problem: SQL that fails
/// alike on every server is a [`crate::TxnOutcome`], never a `DbError`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Corrupt(String),
}

impl DbError {
    pub fn at(path: &Path) -> impl FnOnce(rusqlite::Error) -> DbError + '_ {
        move |source| DbError::Sqlite {
            path: path.display().to_string(),
            source,
        }
    }

    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DbError + '_ {
        move |source| DbError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The state tables. Objects keep OpenNebula's names (`user_pool`, `zone_pool`...) so an
/// operator reading the database finds what OpenNebula would show.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pool_control (tablename TEXT PRIMARY KEY, last_oid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS system_attributes (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS user_groups (uid INTEGER NOT NULL, gid INTEGER NOT NULL, PRIMARY KEY (uid, gid));
CREATE TABLE IF NOT EXISTS group_admins (gid INTEGER NOT NULL, uid INTEGER NOT NULL, PRIMARY KEY (gid, uid));
CREATE TABLE IF NOT EXISTS acl (
    oid INTEGER PRIMARY KEY,
    user INTEGER NOT NULL,
    resource INTEGER NOT NULL,
    rights INTEGER NOT NULL,
    zone INTEGER NOT NULL,
    UNIQUE (user, resource, rights, zone)
);
CREATE TABLE IF NOT EXISTS cluster_pool (oid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS template_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    regtime INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS vm_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    state INTEGER NOT NULL,
    lcm_state INTEGER NOT NULL,
    prev_state INTEGER NOT NULL,
    prev_lcm_state INTEGER NOT NULL,
    stime INTEGER NOT NULL,
    etime INTEGER NOT NULL DEFAULT 0,
    cpu REAL NOT NULL,
    memory INTEGER NOT NULL,
    hid INTEGER NOT NULL DEFAULT -1,
    template TEXT NOT NULL,
    user_template TEXT NOT NULL DEFAULT '',
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS datastore_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    type INTEGER NOT NULL,
    ds_mad TEXT NOT NULL,
    tm_mad TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS image_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    type INTEGER NOT NULL,
    persistent INTEGER NOT NULL,
    regtime INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    state INTEGER NOT NULL,
    datastore_id INTEGER NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS vnet_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    perms INTEGER NOT NULL,
    state INTEGER NOT NULL,
    vn_mad TEXT NOT NULL,
    bridge TEXT NOT NULL,
    template TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    lock_owner INTEGER NOT NULL DEFAULT -1,
    lock_time INTEGER NOT NULL DEFAULT 0,
    lock_req INTEGER NOT NULL DEFAULT -1,
    UNIQUE (name, uid)
);
CREATE TABLE IF NOT EXISTS history (
    vid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    hid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    vm_mad TEXT NOT NULL,
    stime INTEGER NOT NULL,
    etime INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (vid, seq)
);
CREATE TABLE IF NOT EXISTS host_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    state INTEGER NOT NULL,
    prev_state INTEGER NOT NULL,
    im_mad TEXT NOT NULL,
    vm_mad TEXT NOT NULL,
    cluster_id INTEGER NOT NULL,
    total_cpu INTEGER NOT NULL DEFAULT 0,
    total_mem INTEGER NOT NULL DEFAULT 0,
    cpu_usage INTEGER NOT NULL DEFAULT 0,
    mem_usage INTEGER NOT NULL DEFAULT 0,
    running_vms INTEGER NOT NULL DEFAULT 0,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS user_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    auth_driver TEXT NOT NULL,
    gid INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    template TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS zone_pool (
    oid INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    state INTEGER NOT NULL DEFAULT 0,
    endpoint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS zone_server (
    zone_id INTEGER NOT NULL,
    server_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    PRIMARY KEY (zone_id, server_id)
);
CREATE TABLE IF NOT EXISTS raft_sm_meta (id INTEGER PRIMARY KEY CHECK (id = 1), last_applied BLOB, membership BLOB);
";

fn pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // An applied entry must survive power loss together with `last_applied`.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// The tables of lockable objects (OpenNebula's `LockableObject`) and the columns their lock
/// takes, added to a database written before locks existed.
const LOCKABLE: [&str; 4] = ["template_pool", "vm_pool", "image_pool", "vnet_pool"];
const LOCK_COLUMNS: [(&str, &str); 4] = [
    ("lock_level", "INTEGER NOT NULL DEFAULT 0"),
    ("lock_owner", "INTEGER NOT NULL DEFAULT -1"),
    ("lock_time", "INTEGER NOT NULL DEFAULT 0"),
    ("lock_req", "INTEGER NOT NULL DEFAULT -1"),
];

/// Creates what is missing of the schema: the tables, and the columns later versions added
/// (appended, as `CREATE TABLE` lists them, so every server's tables are alike).
fn ensure_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    for table in LOCKABLE {
        let has: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'lock_level')",
            [table],
            |r| r.get(0),
        )?;
        if !has {
            for (column, kind) in LOCK_COLUMNS {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
    }
    Ok(())
}

/// Opens (creating if needed) the state database read-write and makes sure the schema exists.
pub fn open_state(path: &Path) -> Result<Connection, DbError> {
    crate::files::private_file(path).map_err(DbError::io(path))?;
    let conn = Connection::open(path).map_err(DbError::at(path))?;
    pragmas(&conn).map_err(DbError::at(path))?;
    ensure_schema(&conn).map_err(DbError::at(path))?;
    Ok(conn)
}

/// Opens the state database read-only, for the read pool.
pub(crate) fn open_read(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(DbError::at(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(DbError::at(path))?;
    Ok(conn)
}

/// Writes a consistent copy of the database behind `conn` to `dest` (which must not exist, or
/// be empty). `VACUUM INTO` reads inside one transaction, so writers may go on meanwhile.
pub fn copy_into(conn: &Connection, dest: &Path) -> Result<(), DbError> {
    // VACUUM INTO accepts an empty file; creating it first makes the copy 0600 from the start.
    crate::files::private_file(dest).map_err(DbError::io(dest))?;
    let dest_str = dest
        .to_str()
        .ok_or_else(|| DbError::Corrupt(format!("path {} is not UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest_str])
        .map_err(DbError::at(dest))?;
    Ok(())
}

/// Replaces the whole content of the database behind `conn` with the database file `src`, in one
/// atomic, durable step (SQLite's online backup API). Readers keep working throughout.
pub fn restore_from(conn: &mut Connection, src: &Path) -> Result<(), DbError> {
    let check = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(DbError::at(src))?;
    let ok: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(DbError::at(src))?;
    if ok != "ok" {
        return Err(DbError::Corrupt(format!(
            "{} failed its integrity check: {ok}",
            src.display()
        )));
    }
    drop(check);
    conn.restore(
        rusqlite::DatabaseName::Main,
        src,
        None::<fn(rusqlite::backup::Progress)>,
    )
    .map_err(DbError::at(src))?;
    // A copy written by an older version lacks what this one added; every server adds it alike.
    ensure_schema(conn).map_err(DbError::at(src))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn columns(c: &Connection, table: &str) -> Vec<String> {
        let mut st = c
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .unwrap();
        let names = st.query_map([table], |r| r.get(0)).unwrap();
        names.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_database_from_before_locks_gets_the_lock_columns_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let c = Connection::open(&old).unwrap();
            c.execute_batch(
                "CREATE TABLE template_pool (oid INTEGER PRIMARY KEY, name TEXT NOT NULL,
                   uid INTEGER NOT NULL, gid INTEGER NOT NULL, perms INTEGER NOT NULL,
                   regtime INTEGER NOT NULL, template TEXT NOT NULL);
                 INSERT INTO template_pool VALUES (0, 't', 0, 0, 384, 1, 'A = 1');",
            )
            .unwrap();
        }
        let upgraded = open_state(&old).unwrap();
        let fresh = open_state(&dir.path().join("new.db")).unwrap();
        for table in LOCKABLE {
            assert_eq!(columns(&upgraded, table), columns(&fresh, table), "{table}");
        }
        let lock: (i64, i64) = upgraded
            .query_row(
                "SELECT lock_level, lock_owner FROM template_pool WHERE oid = 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(lock, (0, -1));
        // Opening again changes nothing.
        drop(upgraded);
        let again = open_state(&old).unwrap();
        assert_eq!(
            columns(&again, "template_pool"),
            columns(&fresh, "template_pool")
        );
    }
}
