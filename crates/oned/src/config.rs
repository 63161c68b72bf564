//! `oned.conf`: where it lives, what it says, and the defaults OpenNebula ships.
//!
//! The file is parsed with the template crate into a raw template, then validated into
//! [`Config`]. Every error names the file, the line and the attribute.

use std::path::{Path, PathBuf};
use std::time::Duration;

use template::{Template, Value};

/// Where a server keeps its files: self-contained under `ONE_LOCATION`, or system-wide.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config: PathBuf,
    pub var: PathBuf,
    pub log: PathBuf,
    pub remotes: PathBuf,
}

impl Paths {
    pub fn from_env() -> Paths {
        let layout = wire::files::Layout::from_env();
        Paths {
            config: layout.oned_conf(),
            var: layout.var,
            log: layout.log,
            remotes: layout.remotes,
        }
    }

    /// Where the state lives: `DB` of `oned.conf`, or `var/one.db`.
    pub fn state_location(&self, config: &Config) -> sqlstore::Location {
        match &config.mysql {
            Some(m) => sqlstore::Location::Mysql(m.clone()),
            None => sqlstore::Location::Sqlite(self.state_db()),
        }
    }

    pub fn state_db(&self) -> PathBuf {
        self.var.join(wire::files::ONE_DB)
    }
    pub fn raft_db(&self) -> PathBuf {
        self.var.join(wire::files::RAFT_DB)
    }
    pub fn snapshots(&self) -> PathBuf {
        self.var.join(wire::files::SNAPSHOTS_DIR)
    }
    pub fn one_auth(&self) -> PathBuf {
        self.var.join(wire::files::ONE_AUTH)
    }
    pub fn one_key(&self) -> PathBuf {
        self.var.join(wire::files::ONE_KEY)
    }
}

/// OpenNebula's shipped RAFT defaults (`share/etc/oned.conf`), used per missing attribute.
pub mod defaults {
    pub const LIMIT_PURGE: u64 = 100_000;
    pub const LOG_RETENTION: u64 = 250_000;
    pub const LOG_PURGE_TIMEOUT_S: u64 = 60;
    pub const ELECTION_TIMEOUT_MS: u64 = 5000;
    pub const BROADCAST_TIMEOUT_MS: u64 = 500;
    pub const XMLRPC_TIMEOUT_MS: u64 = 1000;
    pub const PORT: u16 = 2633;
}

#[derive(Debug, Clone, PartialEq)]
pub struct RaftConfig {
    pub limit_purge: u64,
    pub log_retention: u64,
    pub log_purge_timeout: Duration,
    pub election_timeout: Duration,
    pub broadcast_timeout: Duration,
    pub xmlrpc_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub command: String,
    pub arguments: String,
}

/// `TLS = [ CERT_FILE, KEY_FILE, CA_FILE ]`: HTTPS for `/RPC2` and for every server-to-server
/// call, with certificates checked against the zone's CA. Relative paths are relative to the
/// directory of `oned.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// This server's certificate chain (PEM), leaf first: presented to clients and, as a client
    /// certificate, to the other servers.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// The CA certificate(s) (PEM) that sign every server's certificate of the zone.
    pub ca_file: PathBuf,
}

/// A zone's place in a federation of zones (`FEDERATION/MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FederationMode {
    Standalone,
    /// Holds the tables every zone shares, and is the only zone that creates zones.
    Master,
    Slave,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub listen_address: String,
    pub zone_id: i64,
    /// `FEDERATION/MODE`.
    pub federation: FederationMode,
    /// `FEDERATION/MASTER_ONED`: where a slave zone sends the changes of shared objects.
    pub master_oned: String,
    /// -1 runs solo (no Raft).
    pub server_id: i64,
    pub raft: RaftConfig,
    pub leader_hook: Option<Hook>,
    pub follower_hook: Option<Hook>,
    /// What one client may take of the server (connections, requests, sizes, time).
    pub limits: crate::limits::Limits,
    /// `None`: plain HTTP (the default).
    pub tls: Option<TlsConfig>,
    /// `DB = [ BACKEND = "mysql", ... ]`; `None`: the embedded SQLite database in `var/`.
    pub mysql: Option<sqlstore::MysqlConfig>,
    /// `HOOK_LOG_CONF = [ LOG_RETENTION ]`: execution records kept per hook (20).
    pub hook_log_retention: i64,
    /// Monitoring records: how often they are taken, how long kept.
    pub monitoring: crate::monitoring::Settings,
    /// `LIVE_RESCHEDS`: rescheduled VMs move live (`1`) or cold (OpenNebula's default `0`).
    pub live_rescheds: bool,
    /// `AUTH_MAD_CONF`: each authentication driver's rules, over OpenNebula's shipped ones.
    pub auth_drivers: crate::auth_drivers::AuthDrivers,
    /// The whole file, for `one.system.config`.
    pub raw: Template,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, line: usize, attr: &str, msg: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            file: self.file.display().to_string(),
            message: format!("line {line}: attribute {attr}: {msg}"),
        }
    }
}

/// `DB = [ ... ]`: SQLite (`None`) or MySQL, as `sqlstore::MysqlConfig::from_db_section` reads it.
fn db_section(
    ctx: &Ctx<'_>,
    pairs: &[(String, String)],
    line: usize,
) -> Result<Option<sqlstore::MysqlConfig>, ConfigError> {
    sqlstore::MysqlConfig::from_db_section(|k| template::vector_get(pairs, k))
        .map_err(|(attr, msg)| ctx.err(line, attr, msg))
}

fn parse_int<T: std::str::FromStr>(
    ctx: &Ctx<'_>,
    line: usize,
    attr: &str,
    raw: &str,
    what: &str,
) -> Result<T, ConfigError> {
    raw.trim()
        .parse::<T>()
        .map_err(|_| ctx.err(line, attr, format!("expected {what}, got \"{raw}\"")))
}

/// The pairs of a vector attribute and the line it starts on.
type VectorAt<'a> = (&'a [(String, String)], usize);

/// A vector attribute such as `FEDERATION = [ ... ]`: its pairs and its line.
fn vector<'a>(
    ctx: &Ctx<'_>,
    t: &'a Template,
    name: &str,
) -> Result<Option<VectorAt<'a>>, ConfigError> {
    match t.get(name) {
        None => Ok(None),
        Some(a) => match &a.value {
            Value::Vector(v) => Ok(Some((v.as_slice(), a.line))),
            Value::Single(_) => Err(ctx.err(a.line, name, "expected a vector value [ ... ]")),
        },
    }
}

fn hook(ctx: &Ctx<'_>, t: &Template, name: &str) -> Result<Option<Hook>, ConfigError> {
    let Some((pairs, line)) = vector(ctx, t, name)? else {
        return Ok(None);
    };
    let command = template::vector_get(pairs, "COMMAND").unwrap_or("").trim();
    if command.is_empty() {
        return Err(ctx.err(line, &format!("{name}/COMMAND"), "must not be empty"));
    }
    Ok(Some(Hook {
        command: command.to_string(),
        arguments: template::vector_get(pairs, "ARGUMENTS")
            .unwrap_or("")
            .to_string(),
    }))
}

/// `HOOK_LOG_CONF/LOG_RETENTION`: at least one record per hook; 10 when not given
/// (`OpenNebulaTemplate`'s default; the shipped oned.conf says 20).
fn hook_log_retention(ctx: &Ctx<'_>, t: &Template) -> Result<i64, ConfigError> {
    let Some((pairs, line)) = vector(ctx, t, "HOOK_LOG_CONF")? else {
        return Ok(10);
    };
    let Some(raw) = template::vector_get(pairs, "LOG_RETENTION") else {
        return Ok(10);
    };
    let attr = "HOOK_LOG_CONF/LOG_RETENTION";
    let n: i64 = parse_int(ctx, line, attr, raw, "a number of records")?;
    if n < 1 {
        return Err(ctx.err(line, attr, "must be > 0"));
    }
    Ok(n)
}

/// The `TLS` vector: all three files must be given and readable.
fn tls(ctx: &Ctx<'_>, t: &Template) -> Result<Option<TlsConfig>, ConfigError> {
    let Some((pairs, line)) = vector(ctx, t, "TLS")? else {
        return Ok(None);
    };
    let base = ctx.file.parent().unwrap_or(Path::new(""));
    let file = |key: &str| -> Result<PathBuf, ConfigError> {
        let attr = format!("TLS/{key}");
        let raw = template::vector_get(pairs, key).unwrap_or("").trim();
        if raw.is_empty() {
            return Err(ctx.err(
                line,
                &attr,
                "missing: TLS needs CERT_FILE, KEY_FILE and CA_FILE",
            ));
        }
        let path = base.join(raw);
        std::fs::File::open(&path)
            .map_err(|e| ctx.err(line, &attr, format!("cannot read {}: {e}", path.display())))?;
        Ok(path)
    };
    Ok(Some(TlsConfig {
        cert_file: file("CERT_FILE")?,
        key_file: file("KEY_FILE")?,
        ca_file: file("CA_FILE")?,
    }))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let ctx = Ctx { file: path };
        let t = Template::parse_checked(text).map_err(|e| ConfigError {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;

        let port = match t.get("PORT") {
            None => defaults::PORT,
            Some(a) => {
                let raw = a.value.as_single().unwrap_or("");
                let p: u32 = parse_int(&ctx, a.line, "PORT", raw, "a port number 1-65535")?;
                if p == 0 || p > 65535 {
                    return Err(ctx.err(
                        a.line,
                        "PORT",
                        format!("{p} is not a port number 1-65535"),
                    ));
                }
                p as u16
            }
        };
        let listen_address = t.single("LISTEN_ADDRESS").unwrap_or("0.0.0.0").to_string();
        if let Some(a) = t.get("LISTEN_ADDRESS") {
            if listen_address.parse::<std::net::IpAddr>().is_err() {
                return Err(ctx.err(
                    a.line,
                    "LISTEN_ADDRESS",
                    format!("\"{listen_address}\" is not an IP address"),
                ));
            }
        }

        let mysql = match vector(&ctx, &t, "DB")? {
            Some((pairs, line)) => db_section(&ctx, pairs, line)?,
            None => None,
        };

        let (mut mode, mut zone_id, mut server_id) = ("STANDALONE".to_string(), 0i64, -1i64);
        let mut master_oned = String::new();
        if let Some((pairs, line)) = vector(&ctx, &t, "FEDERATION")? {
            if let Some(m) = template::vector_get(pairs, "MODE") {
                mode = m.to_uppercase();
                if !["STANDALONE", "MASTER", "SLAVE"].contains(&mode.as_str()) {
                    return Err(ctx.err(
                        line,
                        "FEDERATION/MODE",
                        format!("\"{m}\" is not STANDALONE, MASTER or SLAVE"),
                    ));
                }
            }
            if let Some(m) = template::vector_get(pairs, "MASTER_ONED") {
                master_oned = m.trim().to_string();
            }
            if mode == "SLAVE" && master_oned.is_empty() {
                return Err(ctx.err(
                    line,
                    "FEDERATION/MASTER_ONED",
                    "a SLAVE zone needs the master zone's endpoint",
                ));
            }
            if let Some(z) = template::vector_get(pairs, "ZONE_ID") {
                zone_id = parse_int(&ctx, line, "FEDERATION/ZONE_ID", z, "an integer")?;
            }
            if let Some(s) = template::vector_get(pairs, "SERVER_ID") {
                server_id = parse_int(&ctx, line, "FEDERATION/SERVER_ID", s, "an integer")?;
                if server_id < -1 {
                    return Err(ctx.err(
                        line,
                        "FEDERATION/SERVER_ID",
                        "must be -1 (solo) or a server id >= 0",
                    ));
                }
            }
        }
        if mode == "STANDALONE" {
            // As OpenNebula: a standalone zone is always zone 0.
            zone_id = 0;
        }

        let mut raft = RaftConfig {
            limit_purge: defaults::LIMIT_PURGE,
            log_retention: defaults::LOG_RETENTION,
            log_purge_timeout: Duration::from_secs(defaults::LOG_PURGE_TIMEOUT_S),
            election_timeout: Duration::from_millis(defaults::ELECTION_TIMEOUT_MS),
            broadcast_timeout: Duration::from_millis(defaults::BROADCAST_TIMEOUT_MS),
            xmlrpc_timeout: Duration::from_millis(defaults::XMLRPC_TIMEOUT_MS),
        };
        let mut raft_line = 0;
        if let Some((pairs, line)) = vector(&ctx, &t, "RAFT")? {
            raft_line = line;
            let get = |k: &str| -> Result<Option<u64>, ConfigError> {
                template::vector_get(pairs, k)
                    .map(|v| {
                        parse_int::<u64>(
                            &ctx,
                            line,
                            &format!("RAFT/{k}"),
                            v,
                            "a non-negative integer",
                        )
                    })
                    .transpose()
            };
            if let Some(v) = get("LIMIT_PURGE")? {
                raft.limit_purge = v;
            }
            if let Some(v) = get("LOG_RETENTION")? {
                raft.log_retention = v;
            }
            if let Some(v) = get("LOG_PURGE_TIMEOUT")? {
                raft.log_purge_timeout = Duration::from_secs(v);
            }
            if let Some(v) = get("ELECTION_TIMEOUT_MS")? {
                raft.election_timeout = Duration::from_millis(v);
            }
            if let Some(v) = get("BROADCAST_TIMEOUT_MS")? {
                raft.broadcast_timeout = Duration::from_millis(v);
            }
            if let Some(v) = get("XMLRPC_TIMEOUT_MS")? {
                raft.xmlrpc_timeout = Duration::from_millis(v);
            }
        }
        let line = raft_line;
        if raft.broadcast_timeout.is_zero() {
            return Err(ctx.err(line, "RAFT/BROADCAST_TIMEOUT_MS", "must be > 0"));
        }
        // The election timeout is drawn in [E/3, 2E/3) after a lease of 2E/3, and must stay
        // above the heartbeat, or followers would campaign against a healthy leader.
        if raft.election_timeout <= raft.broadcast_timeout * 3 {
            return Err(ctx.err(
                line,
                "RAFT/ELECTION_TIMEOUT_MS",
                format!(
                    "{} ms must be more than 3 x BROADCAST_TIMEOUT_MS ({} ms)",
                    raft.election_timeout.as_millis(),
                    raft.broadcast_timeout.as_millis()
                ),
            ));
        }
        if raft.xmlrpc_timeout.is_zero() {
            return Err(ctx.err(
                line,
                "RAFT/XMLRPC_TIMEOUT_MS",
                "must be > 0 (OneHA never waits forever)",
            ));
        }
        if raft.log_retention == 0 {
            return Err(ctx.err(line, "RAFT/LOG_RETENTION", "must be > 0"));
        }

        // As oned, which refuses to start on an operation it does not know.
        crate::api::vm_ops::check(&t).map_err(|message| ConfigError {
            file: path.display().to_string(),
            message,
        })?;
        Ok(Config {
            port,
            listen_address,
            zone_id,
            federation: match mode.as_str() {
                "MASTER" => FederationMode::Master,
                "SLAVE" => FederationMode::Slave,
                _ => FederationMode::Standalone,
            },
            master_oned,
            server_id,
            leader_hook: hook(&ctx, &t, "RAFT_LEADER_HOOK")?,
            follower_hook: hook(&ctx, &t, "RAFT_FOLLOWER_HOOK")?,
            limits: crate::limits::Limits::from_template(&t, &path.display().to_string())?,
            tls: tls(&ctx, &t)?,
            hook_log_retention: hook_log_retention(&ctx, &t)?,
            auth_drivers: crate::auth_drivers::AuthDrivers::from_template(&t)
                .map_err(|(line, attr, msg)| ctx.err(line, &attr, msg))?,
            monitoring: crate::monitoring::Settings::from_template(
                &t,
                &path.display().to_string(),
            )?,
            live_rescheds: crate::resched::live_rescheds(&t),
            raft,
            mysql,
            raw: t,
        })
    }

    pub fn is_solo(&self) -> bool {
        self.server_id < 0
    }

    /// Whether this zone is a federation slave: the shared tables are the master's, changed
    /// only through it and its federated log.
    pub fn is_federation_slave(&self) -> bool {
        self.federation == FederationMode::Slave
    }

    /// How long a write waits for its commit before the client is told the outcome is unknown.
    pub fn write_deadline(&self) -> Duration {
        self.raft.election_timeout * 2 + Duration::from_secs(1)
    }

    /// How long a follower waits for a leader before answering "no leader found".
    pub fn leader_wait(&self) -> Duration {
        self.raft.election_timeout * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/one/oned.conf"))
    }

    #[test]
    fn shipped_oned_conf_parses_with_opennebula_defaults() {
        let text = include_str!("../../../share/etc/oned.conf");
        let c = parse(text).unwrap();
        assert_eq!(c.port, 2633);
        assert_eq!(c.server_id, -1);
        assert_eq!(c.raft.election_timeout, Duration::from_millis(5000));
        assert_eq!(c.raft.log_retention, 250_000);
        assert_eq!(c.leader_hook, None);
        assert_eq!(c.limits, crate::limits::Limits::default());
        assert_eq!(c.tls, None);
    }

    #[test]
    fn missing_raft_attributes_take_opennebula_defaults() {
        let c = parse("RAFT = [ ELECTION_TIMEOUT_MS = 3000 ]").unwrap();
        assert_eq!(c.raft.election_timeout, Duration::from_millis(3000));
        assert_eq!(c.raft.broadcast_timeout, Duration::from_millis(500));
        assert_eq!(c.raft.xmlrpc_timeout, Duration::from_millis(1000));
        assert_eq!(c.raft.limit_purge, 100_000);
    }

    #[test]
    fn bad_values_name_file_line_and_attribute() {
        let e = parse("# c\nPORT = \"abc\"\n").unwrap_err().to_string();
        assert!(
            e.contains("/etc/one/oned.conf") && e.contains("line 2") && e.contains("PORT"),
            "{e}"
        );
        let e = parse("FEDERATION = [\n SERVER_ID = x ]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1") && e.contains("FEDERATION/SERVER_ID"),
            "{e}"
        );
        let e = parse("RAFT = [ ELECTION_TIMEOUT_MS = 100, BROADCAST_TIMEOUT_MS = 500 ]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ELECTION_TIMEOUT_MS"), "{e}");
        let e = parse("RAFT_LEADER_HOOK = [ ARGUMENTS = \"x\" ]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("RAFT_LEADER_HOOK/COMMAND"), "{e}");
    }

    #[test]
    fn db_backends_and_opennebulas_federation_modes_are_accepted() {
        let e = parse("DB = [ BACKEND = \"postgresql\" ]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DB/BACKEND") && e.contains("DB BACKEND must be sqlite or mysql"),
            "{e}"
        );
        assert_eq!(parse("DB = [ BACKEND = \"sqlite\" ]").unwrap().mysql, None);
        // OpenNebula's defaults for what is left out.
        let m = parse("DB = [ BACKEND = \"mysql\" ]")
            .unwrap()
            .mysql
            .unwrap();
        assert_eq!(
            (
                m.server.as_str(),
                m.port,
                m.user.as_str(),
                m.passwd.as_str()
            ),
            ("localhost", 0, "oneadmin", "oneadmin")
        );
        assert_eq!((m.db_name.as_str(), m.connections), ("opennebula", 25));
        let m = parse(
            "DB = [ BACKEND = \"mysql\", SERVER = \"db1\", PORT = 3307, USER = \"one\",
                    PASSWD = \"s3cret\", DB_NAME = \"one1\", CONNECTIONS = 8 ]",
        )
        .unwrap()
        .mysql
        .unwrap();
        assert_eq!(m.to_string(), "mysql://one@db1:3307/one1");
        assert!(!format!("{m:?}").contains("s3cret"), "{m:?}");
        for bad in ["PORT = 70000", "CONNECTIONS = 1", "CONNECTIONS = many"] {
            let e = parse(&format!("DB = [ BACKEND = \"mysql\", {bad} ]"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("DB/"), "{bad}: {e}");
        }
        let e = parse("FEDERATION = [ MODE = \"PEER\" ]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("FEDERATION/MODE")
                && e.contains("\"PEER\" is not STANDALONE, MASTER or SLAVE"),
            "{e}"
        );
        // A standalone zone is zone 0 whatever ZONE_ID says; a federated one keeps its id.
        let c = parse("FEDERATION = [ MODE = \"STANDALONE\", ZONE_ID = 3 ]").unwrap();
        assert_eq!(c.zone_id, 0);
        let c =
            parse("FEDERATION = [ MODE = \"SLAVE\", ZONE_ID = 3, MASTER_ONED = \"x\" ]").unwrap();
        assert_eq!(c.zone_id, 3);
        assert_eq!(c.master_oned, "x");
        let e = parse("FEDERATION = [ MODE = \"SLAVE\", ZONE_ID = 3 ]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("FEDERATION/MASTER_ONED"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("PORT = 1\nFEDERATION = [ MODE = \"STANDALONE\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn hooks_are_parsed() {
        let c = parse(
            "RAFT_LEADER_HOOK = [ COMMAND = \"raft/vip.sh\", ARGUMENTS = \"leader eth0 10.3.3.2/24\" ]",
        )
        .unwrap();
        assert_eq!(
            c.leader_hook,
            Some(Hook {
                command: "raft/vip.sh".into(),
                arguments: "leader eth0 10.3.3.2/24".into()
            })
        );
    }

    #[test]
    fn tls_files_are_relative_to_oned_conf_and_must_be_readable() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["oned.crt", "oned.key", "ca.crt"] {
            std::fs::write(dir.path().join(f), "pem").unwrap();
        }
        let conf = dir.path().join("oned.conf");
        let text = "TLS = [ CERT_FILE = \"oned.crt\", KEY_FILE = \"oned.key\",\n  CA_FILE = \"ca.crt\" ]\n";
        let c = Config::parse(text, &conf).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsConfig {
                cert_file: dir.path().join("oned.crt"),
                key_file: dir.path().join("oned.key"),
                ca_file: dir.path().join("ca.crt"),
            })
        );

        let missing = "TLS = [ CERT_FILE = \"oned.crt\", KEY_FILE = \"oned.key\" ]\n";
        let err = Config::parse(missing, &conf).unwrap_err().to_string();
        assert!(
            err.contains("line 1: attribute TLS/CA_FILE: missing"),
            "{err}"
        );

        let absent =
            "TLS = [ CERT_FILE = \"nope.crt\", KEY_FILE = \"oned.key\", CA_FILE = \"ca.crt\" ]\n";
        let err = Config::parse(absent, &conf).unwrap_err().to_string();
        assert!(
            err.contains("attribute TLS/CERT_FILE: cannot read"),
            "{err}"
        );
        assert!(err.contains("nope.crt"), "{err}");
    }
}
