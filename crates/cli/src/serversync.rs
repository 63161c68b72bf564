//! `onezone serversync <server> [--db]`: make this server's configuration (and with `--db`, its
//! database) the same as another server's of the zone, as the HA guide describes.
//!
//! Everything comes over OneHA's authenticated server-to-server channel (calls signed with the
//! zone key in `one_key` for the other server's id, answers checked against it: the key itself
//! never travels, see `peerauth`), so no ssh keys are needed. The other server is found in
//! this server's own database, so this works whether the local oned runs or not.
//!
//! - A file that differs is replaced, after a dated copy of the local one is kept beside it.
//! - `oned.conf` keeps its local FEDERATION section.
//! - Files that exist only here are left alone.
//! - Nothing is restarted; the operator is told which services to restart.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Local files: `oned.conf`'s directory, the var directory, the zone id.
pub struct Local {
    pub etc: PathBuf,
    pub var: PathBuf,
    pub zone_id: i64,
    /// This server's `SERVER_ID` (the source of the signed calls; -1 if unknown).
    pub server_id: i64,
    /// `oned.conf`'s `TLS` files: serversync then talks to the other server as a server does.
    pub tls: Option<PeerTls>,
    /// `oned.conf`'s `DB` section when it names MySQL; else the state is `var/one.db`.
    pub mysql: Option<sqlstore::MysqlConfig>,
}

impl Local {
    /// Where this server's state lives.
    pub fn state(&self) -> sqlstore::Location {
        match &self.mysql {
            Some(m) => sqlstore::Location::Mysql(m.clone()),
            None => sqlstore::Location::Sqlite(self.var.join(wire::files::ONE_DB)),
        }
    }
}

/// The files of `oned.conf`'s `TLS = [ CERT_FILE, KEY_FILE, CA_FILE ]`, relative to its
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

impl PeerTls {
    /// The other server is checked against the zone's CA only; this server's certificate is
    /// presented, since `/oneha/sync/*` needs one when TLS is on.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let read = |key: &str, p: &Path| {
            std::fs::read(p).map_err(|e| format!("TLS/{key}: cannot read {}: {e}", p.display()))
        };
        let certs = |key: &str, p: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
            CertificateDer::pem_slice_iter(&read(key, p)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("TLS/{key}: {}: {e}", p.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in certs("CA_FILE", &self.ca_file)? {
            roots
                .add(ca)
                .map_err(|e| format!("TLS/CA_FILE: {}: {e}", self.ca_file.display()))?;
        }
        let key = PrivateKeyDer::from_pem_slice(&read("KEY_FILE", &self.key_file)?)
            .map_err(|e| format!("TLS/KEY_FILE: {}: {e}", self.key_file.display()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs("CERT_FILE", &self.cert_file)?, key)
            .map_err(|e| format!("TLS/KEY_FILE: {}: {e}", self.key_file.display()))
    }
}

impl Local {
    /// From `$ONE_LOCATION`, else OpenNebula's system-wide layout.
    pub fn from_env() -> Local {
        Local::of(wire::files::Layout::from_env())
    }

    /// The server installed under `one_location` (its `etc/oned.conf`, its `var/`).
    pub fn at(one_location: &std::path::Path) -> Local {
        Local::of(wire::files::Layout::new(Some(one_location.as_os_str())))
    }

    fn of(layout: wire::files::Layout) -> Local {
        let wire::files::Layout { etc, var, .. } = layout;
        let conf = std::fs::read_to_string(etc.join(wire::files::ONED_CONF))
            .ok()
            .and_then(|t| template::Template::parse(&t).ok());
        let federation = |name: &str| {
            conf.as_ref().and_then(|t| {
                t.vector("FEDERATION")
                    .and_then(|f| template::vector_get(f, name))
                    .and_then(|z| z.trim().parse().ok())
            })
        };
        let zone_id = federation("ZONE_ID").unwrap_or(0);
        let server_id = federation("SERVER_ID").unwrap_or(-1);
        let tls = conf.as_ref().and_then(|t| {
            let tls = t.vector("TLS")?;
            let file = |k: &str| Some(etc.join(template::vector_get(tls, k)?.trim()));
            Some(PeerTls {
                cert_file: file("CERT_FILE")?,
                key_file: file("KEY_FILE")?,
                ca_file: file("CA_FILE")?,
            })
        });
        let mysql = conf.as_ref().and_then(|t| t.vector("DB")).and_then(|db| {
            sqlstore::MysqlConfig::from_db_section(|k| template::vector_get(db, k))
                .ok()
                .flatten()
        });
        Local {
            etc,
            var,
            zone_id,
            server_id,
            tls,
            mysql,
        }
    }
}

/// A server of the zone, as the local database lists it.
struct Remote {
    id: i64,
    name: String,
    base: String,
}

fn find_server(local: &Local, which: &str) -> Result<Remote, String> {
    let db = local.state();
    let conn = sqlstore::open_read(&db).map_err(|e| format!("cannot read {db}: {e}"))?;
    let zone = sqlstore::load_zone(&conn, local.zone_id)
        .map_err(|e| format!("cannot read {db}: {e}"))?
        .ok_or_else(|| format!("zone {} not found in {db}", local.zone_id))?;
    let host_of = |endpoint: &str| {
        endpoint
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or("")
            .to_string()
    };
    zone.servers
        .iter()
        .find(|s| s.id.to_string() == which || s.name == which || host_of(&s.endpoint) == which)
        .map(|s| Remote {
            id: s.id,
            name: s.name.clone(),
            base: s
                .endpoint
                .trim_end_matches('/')
                .trim_end_matches("/RPC2")
                .to_string(),
        })
        .ok_or_else(|| {
            format!(
                "Server {which} is not in zone {}: give its id, name or host as `onezone show {}` lists them",
                local.zone_id, local.zone_id
            )
        })
}

/// One signed `GET /oneha/sync/{what}`; the answer must be signed too, so a server that does
/// not hold the zone key cannot hand this one its files or database.
fn fetch(
    remote: &Remote,
    local: &Local,
    key: &peerauth::ZoneKey,
    what: &str,
    path: Option<&str>,
) -> Result<Vec<u8>, String> {
    let call_path = wire::route::sync(what);
    let url = format!("{}{call_path}", remote.base);
    let signed = peerauth::sign(
        key,
        peerauth::Call {
            method: "GET",
            path: &call_path,
            arg: path.unwrap_or(""),
        },
        u64::try_from(remote.id).unwrap_or(u64::MAX),
        // A server that has not joined yet has no id of its own; the source is only informative.
        u64::try_from(local.server_id).unwrap_or(u64::MAX),
        &[],
    );
    let mut agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(600));
    if let Some(tls) = &local.tls {
        agent = agent.tls_config(std::sync::Arc::new(tls.client_config()?));
    }
    let mut req = agent.build().get(&url);
    for (name, value) in signed.headers() {
        req = req.set(name, &value);
    }
    if let Some(p) = path {
        req = req.set(peerauth::ARG_HEADER, p);
    }
    match req.call() {
        Ok(resp) => {
            let status = resp.status();
            let reply_mac = resp.header(peerauth::REPLY_MAC_HEADER).map(str::to_string);
            let mut body = Vec::new();
            resp.into_reader()
                .read_to_end(&mut body)
                .map_err(|e| format!("{url}: {e}"))?;
            signed
                .check_reply(key, status, &body, reply_mac.as_deref())
                .map_err(|_| {
                    format!(
                        "Server {} ({}) did not prove it holds the zone key: its answer is refused",
                        remote.name, remote.base
                    )
                })?;
            Ok(body)
        }
        Err(ureq::Error::Status(403, r)) => Err(format!(
            "Server {} ({}) refused the call: {} (is this server's zone key, one_key, the zone's? are the clocks within {}s?)",
            remote.name,
            remote.base,
            r.into_string().unwrap_or_default(),
            peerauth::MAX_SKEW.as_secs()
        )),
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "Server {} ({}) answered HTTP {code}: {}",
            remote.name,
            remote.base,
            r.into_string().unwrap_or_default()
        )),
        Err(e) => Err(format!(
            "Cannot reach server {} at {}: {e}",
            remote.name, remote.base
        )),
    }
}

/// Attributes of `oned.conf` that belong to one server and so stay local: OpenNebula keeps
/// FEDERATION; OneHA also keeps where the server listens, which differs between servers that
/// share a host, and its DB section: every server writes a database of its own, and a copy of
/// another server's would point this one at that server's database.
const KEEP_LOCAL: &[&str] = &["FEDERATION", "PORT", "LISTEN_ADDRESS", "DB"];

/// With `--keep-ha`, as OpenNebula's option: the RAFT section and the leadership hooks too.
const KEEP_HA: &[&str] = &["RAFT", "RAFT_LEADER_HOOK", "RAFT_FOLLOWER_HOOK"];

/// The byte range of attribute `name` in an `oned.conf` text: `NAME = value` to the end of its
/// line, or `NAME = [ ... ]` to the closing bracket.
fn attribute_span(text: &str, name: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let trimmed = &line[indent..];
        let is_it = trimmed.len() > name.len()
            && trimmed[..name.len()].eq_ignore_ascii_case(name)
            && trimmed[name.len()..].trim_start().starts_with('=');
        if is_it {
            let start = offset;
            let value = trimmed[name.len()..].trim_start()[1..].trim_start();
            if value.starts_with('[') {
                let open = text[start..].find('[')? + start;
                let close = text[open..].find(']')? + open + 1;
                return Some((start, close));
            }
            return Some((start, offset + line.trim_end_matches('\n').len()));
        }
        offset += line.len();
    }
    None
}

/// `remote` with the attributes named in `keep` taken from `local`.
fn keep_local_attributes(local: &str, remote: &str, keep: &[&str]) -> String {
    let mut out = remote.to_string();
    for name in keep {
        let Some((ls, le)) = attribute_span(local, name) else {
            continue;
        };
        let mine = &local[ls..le];
        out = match attribute_span(&out, name) {
            Some((rs, re)) => format!("{}{mine}{}", &out[..rs], &out[re..]),
            None => format!("{out}\n{mine}\n"),
        };
    }
    out
}

fn stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::onedb::backup_stamp(secs)
}

/// Writes `bytes` to `path` through a uniquely named temporary file beside it and a rename, so
/// two serversync runs never write the same temporary file. The file keeps the mode of the one
/// it replaces (0640 if new: configuration files may hold database passwords).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o640);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = sqlstore::files::temp_file_in(dir, &format!(".{name}."), ".serversync-tmp")
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    // Durable before serversync says it is done: a power cut must not bring back the old file.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs serversync against `which`; messages go to `out`.
pub fn run(
    local: &Local,
    which: &str,
    db: bool,
    keep_ha: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let remote = find_server(local, which)?;
    let key_path = local.var.join(wire::files::ONE_KEY);
    let key = std::fs::read_to_string(&key_path)
        .map_err(|e| format!("cannot read the zone key {}: {e}", key_path.display()))?;
    let key = peerauth::ZoneKey::new(&key);

    // Everything is fetched before anything changes: a failure leaves the files as they were.
    let manifest = String::from_utf8(fetch(
        &remote,
        local,
        &key,
        wire::route::SYNC_MANIFEST,
        None,
    )?)
    .map_err(|_| "the manifest is not text".to_string())?;
    let mut wanted = Vec::new();
    for line in manifest.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(_), Some(service), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(format!(
                "refusing the unsafe path {rel} from {}",
                remote.name
            ));
        }
        let theirs = fetch(&remote, local, &key, wire::route::SYNC_FILE, Some(rel))?;
        wanted.push((rel.to_string(), service.to_string(), theirs));
    }
    let dump = if db {
        let lock = local.var.join(wire::files::LOCK);
        if let Ok(f) = std::fs::File::open(&lock) {
            if matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)) {
                return Err(format!(
                    "oned runs on {}: stop it first (systemctl stop oned); --db replaces its database",
                    local.var.display()
                ));
            }
        }
        Some(fetch(&remote, local, &key, wire::route::SYNC_DB, None)?)
    } else {
        None
    };

    let mut restart = BTreeSet::new();
    let when = stamp();
    for (rel, service, theirs) in wanted {
        let path = local.etc.join(&rel);
        writeln!(out, "Checking {}", path.display()).map_err(|e| e.to_string())?;
        let mine = std::fs::read(&path).ok();
        let new = if rel == wire::files::ONED_CONF {
            let local_text = String::from_utf8_lossy(mine.as_deref().unwrap_or_default());
            let mut keep = KEEP_LOCAL.to_vec();
            if keep_ha {
                keep.extend_from_slice(KEEP_HA);
            }
            keep_local_attributes(&local_text, &String::from_utf8_lossy(&theirs), &keep)
                .into_bytes()
        } else {
            theirs
        };
        if mine.as_deref() == Some(&new[..]) {
            continue;
        }
        if mine.is_some() {
            let copy = PathBuf::from(format!("{}.{when}", path.display()));
            std::fs::copy(&path, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
            replace_file(&path, &new)?;
            writeln!(
                out,
                "{} has been replaced by {}:{}\nA copy of the old file is located here: {}",
                path.display(),
                remote.name,
                rel,
                copy.display()
            )
            .map_err(|e| e.to_string())?;
        } else {
            replace_file(&path, &new)?;
            writeln!(out, "{} copied from {}:{rel}", path.display(), remote.name)
                .map_err(|e| e.to_string())?;
        }
        restart.insert(service);
    }

    if let Some(bytes) = dump {
        // A uniquely named 0600 file (removed when dropped): the fetched database is a copy of
        // the zone's state, and two fetches at once must not share a file.
        let mut file = sqlstore::files::temp_file_in(&local.var, ".one.db.serversync.", ".bck")
            .map_err(|e| format!("{}: {e}", local.var.display()))?;
        file.write_all(&bytes)
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| format!("{}: {e}", file.path().display()))?;
        let restored = sqlstore::restore_backup(file.path(), &local.state());
        drop(file);
        restored.map_err(|e| {
            format!(
                "the database from {} was refused, nothing was changed: {e}",
                remote.name
            )
        })?;
        writeln!(
            out,
            "Local OpenNebula's database has been replaced by {}'s. It catches up with the zone when oned starts.",
            remote.name
        )
        .map_err(|e| e.to_string())?;
        restart.insert("opennebula".to_string());
    }

    if restart.is_empty() {
        writeln!(out, "Everything seems synchronized, nothing was replaced.")
            .map_err(|e| e.to_string())?;
    } else {
        for service in restart {
            let unit = if service == "opennebula" {
                "oned"
            } else {
                &service
            };
            writeln!(
                out,
                "Restart {service} to apply the changes: systemctl restart {unit}"
            )
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: a file serversync reports replaced is the new one after a power cut (its
    /// content and the rename were synced). Needs root and /dev/fuse; skipped otherwise unless
    /// `ONEHA_REQUIRE_FUSE` is set.
    #[test]
    fn a_replaced_file_is_the_new_one_after_a_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let Some(disk) = lossyfs::Mount::for_test(dir.path()) else {
            return;
        };
        let path = dir.path().join("oned.conf");
        std::fs::write(&path, "old").unwrap();
        disk.sync_all();
        replace_file(&path, b"new").unwrap();
        disk.cut();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn oned_conf_keeps_the_local_federation_section_and_listening_address() {
        let local = "PORT = 2633\nFEDERATION = [\n  MODE = \"STANDALONE\",\n  SERVER_ID = 1 ]\nX = 1\nRAFT = [ LOG_RETENTION = 5 ]\n";
        let remote = "PORT = 2634\nFEDERATION = [ MODE = \"STANDALONE\", SERVER_ID = 0 ]\nX = 2\nRAFT = [ LOG_RETENTION = 9 ]\n";
        assert_eq!(
            keep_local_attributes(local, remote, KEEP_LOCAL),
            "PORT = 2633\nFEDERATION = [\n  MODE = \"STANDALONE\",\n  SERVER_ID = 1 ]\nX = 2\nRAFT = [ LOG_RETENTION = 9 ]\n"
        );
        let mut ha = KEEP_LOCAL.to_vec();
        ha.extend_from_slice(KEEP_HA);
        assert!(keep_local_attributes(local, remote, &ha).contains("LOG_RETENTION = 5"));
        assert_eq!(keep_local_attributes(local, local, KEEP_LOCAL), local);
        // Each server's own database.
        let mine = "DB = [ BACKEND = \"mysql\", DB_NAME = \"one_1\" ]\nY = 1\n";
        let theirs = "DB = [ BACKEND = \"mysql\", DB_NAME = \"one_0\" ]\nY = 2\n";
        assert_eq!(
            keep_local_attributes(mine, theirs, KEEP_LOCAL),
            "DB = [ BACKEND = \"mysql\", DB_NAME = \"one_1\" ]\nY = 2\n"
        );
        assert_eq!(
            attribute_span("PORTAL = 1\nPORT = 2\n", "PORT"),
            Some((11, 19))
        );
    }
}
