//! `.one/one_auth` (oneadmin's credentials) and `.one/one_key` (the zone key for server-to-server
//! calls). Both are created at first start if absent, mode 0600; copying `.one/` to a new server
//! is how a zone shares them, as in OpenNebula.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn write_secret(path: &Path, content: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// oneadmin's user name and password from `one_auth`, created with a random password if absent.
pub fn load_or_create_one_auth(path: &Path) -> anyhow::Result<(String, String)> {
    if !path.exists() {
        write_secret(path, &format!("oneadmin:{}\n", random_hex(16)))?;
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(':') {
        Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
            Ok((user.to_string(), pass.to_string()))
        }
        _ => bail!("{}: expected a first line USER:PASSWORD", path.display()),
    }
}

/// The zone key, created at random if absent.
pub fn load_or_create_one_key(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        write_secret(path, &format!("{}\n", random_hex(32)))?;
    }
    let key = std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string();
    if key.len() < 16 {
        bail!("{}: the zone key is too short", path.display());
    }
    Ok(key)
}
