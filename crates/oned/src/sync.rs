//! The server side of `onezone serversync`: the configuration files the HA guide lists, and a
//! fresh backup of the database, served to other servers of the zone over the authenticated
//! peer channel (calls signed with the zone key for the target server id, see `peerauth`), so
//! no ssh set-up is needed.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(dir) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    let mut entries: Vec<_> = dir.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        let child = rel.join(e.file_name());
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &child, out),
            Ok(t) if t.is_file() => out.push(child),
            _ => {}
        }
    }
}

/// One line per file present here: `<sha256> <service> <path relative to etc>`.
pub fn manifest(etc: &Path) -> String {
    let mut out = String::new();
    let mut add = |rel: &Path, service: &str| {
        if let Ok(bytes) = std::fs::read(etc.join(rel)) {
            let sum = hex::encode(Sha256::digest(&bytes));
            out.push_str(&format!("{sum} {service} {}\n", rel.display()));
        }
    };
    for (file, service) in FILES {
        add(Path::new(file), service);
    }
    for (folder, service) in FOLDERS {
        let mut files = Vec::new();
        walk(etc, Path::new(folder), &mut files);
        for f in files {
            add(&f, service);
        }
    }
    out
}

/// The content of `rel` if the manifest lists it (never any other path).
pub fn file(etc: &Path, rel: &str) -> Option<Vec<u8>> {
    let listed = manifest(etc)
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .any(|p| p == rel);
    if !listed {
        return None;
    }
    std::fs::read(etc.join(rel)).ok()
}

/// A fresh backup of the state database `db`, for `GET /oneha/sync/db`. It is written to a
/// uniquely named 0600 temporary file in `var` (removed before returning), so any number of
/// fetches can run at once: a name made of the process id alone made concurrent fetches write
/// the same file ("table already exists", "disk I/O error").
pub fn backup_bytes(db: &Path, var: &Path) -> Result<Vec<u8>, String> {
    let tmp = sqlstore::files::temp_file_in(var, ".serversync-", ".bck")
        .map_err(|e| format!("{}: {e}", var.display()))?;
    sqlstore::write_backup(db, tmp.path(), |_, _| {}).map_err(|e| e.to_string())?;
    std::fs::read(tmp.path()).map_err(|e| format!("{}: {e}", tmp.path().display()))
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
        let m = manifest(etc);
        let paths: Vec<&str> = m.lines().filter_map(|l| l.splitn(3, ' ').nth(2)).collect();
        assert_eq!(paths, vec!["oned.conf", "hm/hmrc"]);
        assert!(m.starts_with(&hex::encode(Sha256::digest(b"PORT = 2633\n"))));
        assert_eq!(file(etc, "hm/hmrc").as_deref(), Some(&b"x"[..]));
        assert_eq!(file(etc, "secret.key"), None);
        assert_eq!(file(etc, "../etc/oned.conf"), None);
    }

    #[test]
    fn concurrent_database_fetches_each_get_a_whole_backup_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let var = dir.path();
        let db = var.join("one.db");
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
