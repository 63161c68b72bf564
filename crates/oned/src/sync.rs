//! The server side of `onezone serversync`: the configuration files the HA guide lists, and a
//! fresh backup of the database, served to other servers of the zone over the authenticated
//! peer channel (calls signed with the zone key for the target server id, see `peerauth`), so
//! no ssh set-up is needed.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A file or folder the guide lists exists but cannot be read: serversync must not silently
/// leave it out.
#[derive(Debug, thiserror::Error)]
#[error("reading {}: {source}", path.display())]
pub struct SyncError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The database backup for serversync could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] sqlstore::DbError),
}

/// `Ok(None)` when `path` does not exist (the guide's files are optional).
fn absent_is_none<T>(path: &Path, read: std::io::Result<T>) -> Result<Option<T>, SyncError> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SyncError {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Files under the configuration directory the guide lists, with the service that reads them.
const FILES: &[(&str, &str)] = &[
    (wire::files::ONED_CONF, "opennebula"),
    ("az_driver.conf", "opennebula"),
    ("az_driver.default", "opennebula"),
    ("ec2_driver.conf", "opennebula"),
    ("ec2_driver.default", "opennebula"),
    ("econe.conf", "opennebula-econe"),
    ("monitord.conf", "opennebula"),
    ("oneflow-server.conf", "opennebula-flow"),
    ("onegate-server.conf", "opennebula-gate"),
    ("sched.conf", "opennebula-scheduler"),
    ("sunstone-logos.yaml", "opennebula-sunstone"),
    ("sunstone-server.conf", "opennebula-sunstone"),
    ("vcenter_driver.default", "opennebula"),
];

/// Folders under the configuration directory the guide lists (all files below them).
const FOLDERS: &[(&str, &str)] = &[
    ("sunstone-views", "opennebula-sunstone"),
    ("auth", "opennebula"),
    ("ec2query_templates", "opennebula-econe"),
    ("hm", "opennebula"),
    ("vmm_exec", "opennebula"),
];

/// Only the files and folders above travel; anything else stays private to its server.
const MAX_FILES: usize = 10_000;

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), SyncError> {
    let path = root.join(rel);
    let Some(dir) = absent_is_none(&path, std::fs::read_dir(&path))? else {
        return Ok(());
    };
    let mut entries = dir
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| SyncError {
            path: path.clone(),
            source,
        })?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= MAX_FILES {
            return Ok(());
        }
        let child = rel.join(e.file_name());
        let kind = e.file_type().map_err(|source| SyncError {
            path: e.path(),
            source,
        })?;
        if kind.is_dir() {
            walk(root, &child, out)?;
        } else if kind.is_file() {
            out.push(child);
        }
    }
    Ok(())
}

/// One line per file present here: `<sha256> <service> <path relative to etc>`.
pub fn manifest(etc: &Path) -> Result<String, SyncError> {
    let mut out = String::new();
    let mut add = |rel: &Path, service: &str| -> Result<(), SyncError> {
        let path = etc.join(rel);
        if let Some(bytes) = absent_is_none(&path, std::fs::read(&path))? {
            let sum = hex::encode(Sha256::digest(&bytes));
            out.push_str(&format!("{sum} {service} {}\n", rel.display()));
        }
        Ok(())
    };
    for (file, service) in FILES {
        add(Path::new(file), service)?;
    }
    for (folder, service) in FOLDERS {
        let mut files = Vec::new();
        walk(etc, Path::new(folder), &mut files)?;
        for f in files {
            add(&f, service)?;
        }
    }
    Ok(out)
}

/// The content of `rel` if the manifest lists it (never any other path); `Ok(None)` if not.
pub fn file(etc: &Path, rel: &str) -> Result<Option<Vec<u8>>, SyncError> {
    let listed = manifest(etc)?
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .any(|p| p == rel);
    if !listed {
        return Ok(None);
    }
    let path = etc.join(rel);
    absent_is_none(&path, std::fs::read(&path))
}

/// A fresh backup of the state database `db`, for `GET /oneha/sync/db`. It is written to a
/// uniquely named 0600 temporary file in `var` (removed before returning), so any number of
/// fetches can run at once: a name made of the process id alone made concurrent fetches write
/// the same file ("table already exists", "disk I/O error").
pub fn backup_bytes(db: &sqlstore::Location, var: &Path) -> Result<Vec<u8>, BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    let tmp = sqlstore::files::temp_file_in(var, ".serversync-", ".bck").map_err(io(var))?;
    sqlstore::write_backup(db, tmp.path(), |_, _| {})?;
    std::fs::read(tmp.path()).map_err(io(tmp.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_guides_files_are_listed_and_served() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        std::fs::write(etc.join("oned.conf"), "PORT = 2633\n").unwrap();
        std::fs::create_dir_all(etc.join("hm")).unwrap();
        std::fs::write(etc.join("hm/hmrc"), "x").unwrap();
        std::fs::write(etc.join("secret.key"), "no").unwrap();
        let m = manifest(etc).unwrap();
        let paths: Vec<&str> = m.lines().filter_map(|l| l.splitn(3, ' ').nth(2)).collect();
        assert_eq!(paths, vec!["oned.conf", "hm/hmrc"]);
        assert!(m.starts_with(&hex::encode(Sha256::digest(b"PORT = 2633\n"))));
        assert_eq!(file(etc, "hm/hmrc").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(file(etc, "secret.key").unwrap(), None);
        assert_eq!(file(etc, "../etc/oned.conf").unwrap(), None);
    }

    #[test]
    fn a_listed_file_that_cannot_be_read_is_an_error_not_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        // A folder where the guide lists a file: it exists, but reading it fails.
        std::fs::create_dir_all(etc.join("sched.conf")).unwrap();
        let e = manifest(etc).unwrap_err();
        assert_eq!(e.path, etc.join("sched.conf"));
        assert!(e.to_string().contains("sched.conf"), "{e}");
    }

    #[test]
    fn concurrent_database_fetches_each_get_a_whole_backup_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let var = dir.path();
        let db = sqlstore::Location::Sqlite(var.join("one.db"));
        sqlstore::open_state(&db)
            .unwrap()
            .execute_batch("INSERT INTO group_pool (oid, name) VALUES (0, 'oneadmin')")
            .unwrap();
        let backups: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| backup_bytes(&db, var))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        for (i, bytes) in backups.iter().enumerate() {
            let f = var.join(format!("got-{i}.bck"));
            std::fs::write(&f, bytes).unwrap();
            sqlstore::verify_backup(&f).unwrap();
            std::fs::remove_file(&f).unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(var)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("one.db"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
