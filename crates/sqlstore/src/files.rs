//! Modes of the files that hold the cloud's state. `one.db` and `raft.db` hold every user's
//! password hash and every object; snapshots and backups are copies of `one.db`. They are
//! created 0600 and their folders 0700, whatever the process umask says.
//!
//! SQLite gives a database's `-wal`, `-shm` and `-journal` files the mode of the database file
//! itself, so creating the main file 0600 before SQLite opens it is what keeps those private too.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every state, log, snapshot and backup file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the folders that hold them.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and its parents) and makes `dir` itself 0700. Parents keep the usual mode: they
/// may be shared (`$ONE_LOCATION`, `/var/lib`).
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    tighten(dir, DIR_MODE).map(|_| ())
}

/// Creates `path` empty with mode 0600 if it does not exist yet, so SQLite then opens a file
/// (an empty file is a new database to it) whose mode its side files copy.
pub fn private_file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes from `path`'s mode every bit `allowed` lacks. Returns the old mode when it changed
/// something, so the caller can say so; a missing file is `Ok(None)`.
pub fn tighten(path: &Path, allowed: u32) -> io::Result<Option<u32>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // A symbolic link's own mode means nothing, and following it could chmod a file elsewhere.
    if meta.file_type().is_symlink() {
        return Ok(None);
    }
    let old = meta.permissions().mode() & 0o7777;
    let new = old & allowed;
    if new == old {
        return Ok(None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(new))?;
    Ok(Some(old))
}

/// A new, uniquely named, empty 0600 file in `dir`, removed when dropped unless persisted. Unique
/// names let concurrent backups and fetches work side by side; being in the target's folder
/// keeps the final rename on one file system.
pub fn temp_file_in(dir: &Path, prefix: &str, suffix: &str) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .permissions(fs::Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_are_created_private_and_wider_modes_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), DIR_MODE);

        let f = sub.join("x.db");
        private_file(&f).unwrap();
        assert_eq!(mode(&f), FILE_MODE);
        fs::write(&f, b"kept").unwrap();
        private_file(&f).unwrap();
        assert_eq!(
            fs::read(&f).unwrap(),
            b"kept",
            "an existing file is left as it is"
        );

        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(tighten(&f, FILE_MODE).unwrap(), Some(0o644));
        assert_eq!(mode(&f), FILE_MODE);
        assert_eq!(tighten(&f, FILE_MODE).unwrap(), None);
        assert_eq!(tighten(&sub.join("missing"), FILE_MODE).unwrap(), None);

        let t = temp_file_in(&sub, ".x.", ".part").unwrap();
        assert_eq!(mode(t.path()), FILE_MODE);
        let u = temp_file_in(&sub, ".x.", ".part").unwrap();
        assert_ne!(t.path(), u.path());
    }

    #[test]
    fn sqlite_side_files_take_the_private_mode_of_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("one.db");
        let conn = crate::open_state(&crate::Location::Sqlite(db.clone())).unwrap();
        conn.execute_batch("INSERT INTO group_pool (oid, name) VALUES (5, 'g')")
            .unwrap();
        for side in ["one.db", "one.db-wal", "one.db-shm"] {
            let p = dir.path().join(side);
            assert!(p.exists(), "{side}");
            assert_eq!(mode(&p), FILE_MODE, "{side}");
        }
    }
}
