//! `.one/one_auth` (oneadmin's credentials) and `.one/one_key` (the zone key for server-to-server
//! calls). Both are created at first start if absent, mode 0600; copying `.one/` to a new server
//! is how a zone shares them, as in OpenNebula.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: expected a first line USER:PASSWORD", .0.display())]
    NotUserPassword(PathBuf),
    #[error("{}: the zone key is too short", .0.display())]
    KeyTooShort(PathBuf),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError {
    let path = path.to_path_buf();
    move |source| CredentialsError::Io { what, path, source }
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn write_secret(path: &Path, content: &str) -> Result<(), CredentialsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_error("changing the mode of", dir))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("creating", path))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io_error("writing", path))?;
    // The new name, and `.one/` itself, must outlive a power cut too: a state database that
    // kept oneadmin's password while `one_auth` vanished would lock the operator out.
    for dir in path.ancestors().skip(1).take(2) {
        if dir.as_os_str().is_empty() {
            break;
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("syncing", dir))?;
    }
    Ok(())
}

/// oneadmin's user name and password from `one_auth`, created with a random password if absent.
pub fn load_or_create_one_auth(path: &Path) -> Result<(String, String), CredentialsError> {
    if !path.exists() {
        write_secret(path, &format!("oneadmin:{}\n", random_hex(16)))?;
    }
    let text = std::fs::read_to_string(path).map_err(io_error("reading", path))?;
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(':') {
        Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
            Ok((user.to_string(), pass.to_string()))
        }
        _ => Err(CredentialsError::NotUserPassword(path.to_path_buf())),
    }
}

/// serveradmin's password, for a database being bootstrapped: written to every file of
/// [`wire::files::SERVER_AUTH`] as `serveradmin:<password>`, random (64 hex digits, like
/// OpenNebula's) unless a start that stopped before the bootstrap already wrote one.
pub fn create_server_auth(var: &Path) -> Result<String, CredentialsError> {
    let first = var.join(wire::files::SERVER_AUTH[0]);
    let existing = std::fs::read_to_string(&first).ok().and_then(|t| {
        t.lines()
            .next()
            .and_then(|l| l.trim().strip_prefix("serveradmin:").map(str::to_string))
            .filter(|p| !p.is_empty())
    });
    let password = existing.unwrap_or_else(|| random_hex(32));
    for file in wire::files::SERVER_AUTH {
        let path = var.join(file);
        let content = format!("serveradmin:{password}\n");
        match std::fs::read_to_string(&path) {
            Ok(now) if now == content => {}
            Ok(_) => {
                std::fs::remove_file(&path).map_err(io_error("replacing", &path))?;
                write_secret(&path, &content)?;
            }
            Err(_) => write_secret(&path, &content)?,
        }
    }
    Ok(password)
}

/// The zone key, created at random if absent.
pub fn load_or_create_one_key(path: &Path) -> Result<String, CredentialsError> {
    if !path.exists() {
        write_secret(path, &format!("{}\n", random_hex(32)))?;
    }
    let key = std::fs::read_to_string(path)
        .map_err(io_error("reading", path))?
        .trim()
        .to_string();
    if key.len() < 16 {
        return Err(CredentialsError::KeyTooShort(path.to_path_buf()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: the secrets oned creates at its first start survive a power cut right after.
    /// Needs root and /dev/fuse; skipped otherwise unless `ONEHA_REQUIRE_FUSE` is set.
    #[test]
    fn the_secrets_made_at_the_first_start_survive_a_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let Some(disk) = lossyfs::Mount::for_test(dir.path()) else {
            return;
        };
        let auth = dir.path().join(".one/one_auth");
        let key = dir.path().join(".one/one_key");
        let made = load_or_create_one_auth(&auth).unwrap();
        let made_key = load_or_create_one_key(&key).unwrap();
        disk.cut();
        assert_eq!(load_or_create_one_auth(&auth).unwrap(), made);
        assert_eq!(load_or_create_one_key(&key).unwrap(), made_key);
    }
}
