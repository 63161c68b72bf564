//! `onedb backup` and `onedb restore` for SQLite: a backup is a consistent copy of the state
//! database (taken with `VACUUM INTO` while oned runs) that carries its own digest in a
//! `oneha_backup` table. A restore checks the file's integrity and its digest first, then
//! replaces the database in one rename, so a corrupt or truncated backup changes nothing.
//!
//! The state database never holds the Raft vote (it lives in `raft.db`), so no backup carries it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::sql::Conn;

use crate::checksum::checksum_except;
use crate::open::DbError;

/// The table a backup carries its digest in; dropped again by a restore.
const BACKUP_TABLE: &str = "oneha_backup";
/// Bumped if the layout of backups changes.
const FORMAT: &str = "oneha-sqlite-1";

/// What a verified backup says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub sha256: String,
    pub tables: Vec<(String, u64)>,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("{}: {what}", path.display()))
}

/// A new, uniquely named 0600 file beside `path` for work in progress: the final rename stays on
/// one file system, and two backups (or restores) running at once never share a file.
fn temp_sibling(path: &Path, tag: &str) -> Result<tempfile::NamedTempFile, DbError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::files::temp_file_in(dir, &format!(".{name}."), &format!(".{tag}"))
        .map_err(DbError::io(dir))
}

fn sync_file(path: &Path) -> Result<(), DbError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| corrupt(path, e))
}

pub(crate) fn sync_dir(path: &Path) {
    // Best effort: makes the rename durable where the file system allows opening a directory.
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes a backup of the state database at `src` to `dest` (replaced if it exists). `progress`
/// is called now and then with (bytes written, bytes expected). Whatever the backend, the
/// backup is a SQLite file with its digest: what `serversync --db` carries between servers.
/// (`onedb backup` of a MySQL server writes a SQL dump instead, see `dump`.)
pub fn write_backup(
    src: &crate::Location,
    dest: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<BackupInfo, DbError> {
    match src {
        crate::Location::Sqlite(db) => write_sqlite_backup(db, dest, progress),
        crate::Location::Mysql(_) => {
            let conn = crate::open_read(src)?;
            let tmp_file = temp_sibling(dest, "part")?;
            crate::copy_into(&conn, tmp_file.path())?;
            let info = seal(tmp_file.path())?;
            sync_file(tmp_file.path())?;
            tmp_file
                .persist(dest)
                .map_err(|e| DbError::io(dest)(e.error))?;
            sync_dir(dest);
            progress(1, 1);
            Ok(info)
        }
    }
}

/// Adds the digest of the copy at `tmp` to it.
fn seal(tmp: &Path) -> Result<BackupInfo, DbError> {
    let conn = Conn::from(Connection::open(tmp).map_err(DbError::at(tmp))?);
    let sum = checksum_except(&conn, &[BACKUP_TABLE]).map_err(DbError::at(tmp))?;
    conn.execute_batch(&format!(
        "CREATE TABLE {BACKUP_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    ))
    .map_err(DbError::at(tmp))?;
    conn.execute(
        &format!("INSERT INTO {BACKUP_TABLE} (key, value) VALUES ('format', ?1), ('sha256', ?2)"),
        [FORMAT, &sum.sha256],
    )
    .map_err(DbError::at(tmp))?;
    Ok(BackupInfo {
        sha256: sum.sha256,
        tables: sum.tables,
    })
}

fn write_sqlite_backup(
    db: &Path,
    dest: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<BackupInfo, DbError> {
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(DbError::at(db))?;
    src.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(DbError::at(db))?;
    let expected: u64 = src
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(DbError::at(db))? as u64;
    // Removed on every early return (dropped); persisted over `dest` at the end.
    let tmp_file = temp_sibling(dest, "part")?;
    let tmp = tmp_file.path().to_path_buf();
    let tmp_str = tmp
        .to_str()
        .ok_or_else(|| corrupt(&tmp, "path is not UTF-8"))?
        .to_string();

    // VACUUM INTO reads in one transaction, so the copy is consistent while oned writes; its
    // only sign of progress is the size of the file it writes. It accepts the empty file the
    // temporary file is, and keeps its 0600 mode.
    let copy = std::thread::scope(|s| {
        let worker = s.spawn(move || src.execute("VACUUM INTO ?1", [&tmp_str]));
        while !worker.is_finished() {
            let written = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
            progress(written, expected);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        worker.join()
    });
    match copy {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(DbError::at(db)(e)),
        Err(_) => return Err(corrupt(db, "the copy thread panicked")),
    }
    let info = seal(&tmp)?;
    sync_file(&tmp)?;
    tmp_file
        .persist(dest)
        .map_err(|e| DbError::io(dest)(e.error))?;
    sync_dir(dest);
    progress(expected, expected);
    Ok(info)
}

/// Checks that `path` is a complete, intact OneHA backup: SQLite's integrity check, then the
/// digest it carries against its content.
pub fn verify_backup(path: &Path) -> Result<BackupInfo, DbError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| corrupt(path, format!("not a SQLite database ({e})")))?;
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| corrupt(path, format!("unreadable ({e})")))?;
    if ok != "ok" {
        return Err(corrupt(path, format!("integrity check failed: {ok}")));
    }
    let read = |key: &str| -> Result<String, DbError> {
        conn.query_row(
            &format!("SELECT value FROM {BACKUP_TABLE} WHERE key = ?1"),
            [key],
            |r| r.get(0),
        )
        .map_err(|e| corrupt(path, format!("not a OneHA backup ({e})")))
    };
    let format = read("format")?;
    if format != FORMAT {
        return Err(corrupt(path, format!("unknown backup format {format}")));
    }
    let stored = read("sha256")?;
    let sum = checksum_except(&Conn::from(conn), &[BACKUP_TABLE])
        .map_err(|e| corrupt(path, format!("unreadable ({e})")))?;
    if sum.sha256 != stored {
        return Err(corrupt(
            path,
            "content does not match its digest (modified or damaged)",
        ));
    }
    Ok(BackupInfo {
        sha256: sum.sha256,
        tables: sum.tables,
    })
}

/// Replaces the state database at `target` with the backup `src` after verifying it. A SQLite
/// database (and its WAL) is replaced in one rename; a MySQL one in one transaction. On any
/// error before that nothing has changed. oned must not be running on `target`.
pub fn restore_backup(src: &Path, target: &crate::Location) -> Result<BackupInfo, DbError> {
    match target {
        crate::Location::Sqlite(db) => restore_sqlite_backup(src, db),
        crate::Location::Mysql(_) => {
            let info = verify_backup(src)?;
            let mut conn = crate::open_state(target)?;
            crate::restore_from(&mut conn, src)?;
            Ok(info)
        }
    }
}

fn restore_sqlite_backup(src: &Path, db: &Path) -> Result<BackupInfo, DbError> {
    let info = verify_backup(src)?;
    // Staged in a 0600 file of our own: copying `src` would also copy its mode, and the backup
    // may have been left readable by others.
    let tmp_file = temp_sibling(db, "restore")?;
    let tmp = tmp_file.path().to_path_buf();
    (|| {
        let mut input = fs::File::open(src).map_err(|e| corrupt(src, e))?;
        let mut out = tmp_file.as_file();
        std::io::copy(&mut input, &mut out).map_err(|e| corrupt(&tmp, e))?;
        out.flush().map_err(|e| corrupt(&tmp, e))?;
        let conn = Connection::open(&tmp).map_err(DbError::at(&tmp))?;
        conn.execute_batch(&format!("DROP TABLE {BACKUP_TABLE}"))
            .map_err(DbError::at(&tmp))?;
        drop(conn);
        tmp_file.as_file().sync_all().map_err(|e| corrupt(&tmp, e))
    })()?;
    // A WAL left by the old database must never be applied to the new one.
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        let _ = fs::remove_file(PathBuf::from(side));
    }
    tmp_file.persist(db).map_err(|e| DbError::io(db)(e.error))?;
    sync_dir(db);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_db(dir: &Path) -> PathBuf {
        let path = dir.join("one.db");
        let conn = crate::open_state(&crate::Location::Sqlite(path.clone())).unwrap();
        conn.execute_batch(
            "INSERT INTO group_pool (oid, name) VALUES (0, 'oneadmin'), (1, 'users');",
        )
        .unwrap();
        path
    }

    #[test]
    fn a_backup_restores_the_same_rows_and_carries_no_digest_table_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = make_db(dir.path());
        let before = crate::checksum(&Conn::from(Connection::open(&db).unwrap())).unwrap();
        let bck = dir.path().join("one.bck");
        let mut calls = 0;
        let info = write_backup(&crate::Location::Sqlite(db.clone()), &bck, |_, _| {
            calls += 1
        })
        .unwrap();
        assert!(calls >= 1);
        assert_eq!(info.sha256, before.sha256);
        assert_eq!(verify_backup(&bck).unwrap(), info);

        let target = dir.path().join("restored.db");
        restore_backup(&bck, &crate::Location::Sqlite(target.clone())).unwrap();
        let after = crate::checksum(&Conn::from(Connection::open(&target).unwrap())).unwrap();
        assert_eq!(after, before);
    }

    #[test]
    fn a_truncated_or_modified_backup_is_refused_and_the_database_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let db = make_db(dir.path());
        let bck = dir.path().join("one.bck");
        write_backup(&crate::Location::Sqlite(db.clone()), &bck, |_, _| {}).unwrap();
        let target = dir.path().join("target.db");
        fs::copy(&db, &target).unwrap();
        let untouched = fs::read(&target).unwrap();

        let bytes = fs::read(&bck).unwrap();
        let truncated = dir.path().join("truncated.bck");
        fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let modified = dir.path().join("modified.bck");
        fs::copy(&bck, &modified).unwrap();
        Connection::open(&modified)
            .unwrap()
            .execute("UPDATE group_pool SET name = 'evil' WHERE oid = 1", [])
            .unwrap();
        let garbage = dir.path().join("garbage.bck");
        fs::write(&garbage, b"not a database at all").unwrap();

        for bad in [&truncated, &modified, &garbage] {
            let err = restore_backup(bad, &crate::Location::Sqlite(target.clone())).unwrap_err();
            assert!(matches!(err, DbError::Corrupt(_)), "{bad:?}: {err}");
            assert_eq!(fs::read(&target).unwrap(), untouched, "{bad:?}");
        }
        let plain = dir.path().join("plain.db");
        fs::copy(&db, &plain).unwrap();
        assert!(verify_backup(&plain)
            .unwrap_err()
            .to_string()
            .contains("not a OneHA backup"));
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn backups_and_restored_databases_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = make_db(dir.path());
        let bck = dir.path().join("one.bck");
        write_backup(&crate::Location::Sqlite(db.clone()), &bck, |_, _| {}).unwrap();
        assert_eq!(mode(&bck), 0o600);
        // A backup someone made readable to all is restored into a private database anyway.
        fs::set_permissions(&bck, fs::Permissions::from_mode(0o644)).unwrap();
        let target = dir.path().join("restored.db");
        restore_backup(&bck, &crate::Location::Sqlite(target.clone())).unwrap();
        assert_eq!(mode(&target), 0o600);
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }

    /// Issue 10: concurrent backups of one process to one destination shared a temporary file
    /// named after the process id ("table already exists", "disk I/O error").
    #[test]
    fn concurrent_backups_to_the_same_destination_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let db = make_db(dir.path());
        let bck = dir.path().join("same.bck");
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| write_backup(&crate::Location::Sqlite(db.clone()), &bck, |_, _| {}))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.unwrap();
        }
        verify_backup(&bck).unwrap();
    }
}
