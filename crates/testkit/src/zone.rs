//! The harness: one [`Server`] per `oned` process (its own `ONE_LOCATION`
//! directory, port and child process) and a [`Zone`] that bootstraps servers
//! following the OpenNebula HA guide, finds the leader and waits on
//! conditions with deadlines. With a [`Network`], servers register the
//! address of their link proxy, so the fault suite can cut links between them.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cli::xml::Element;
use cli::{CallError, Client, RaftStatus, ZoneInfo};
use tempfile::TempDir;
use xmlrpc::Value;

use crate::mariadb::DbSpec;
use crate::proxy::Network;

/// Generous deadline for anything a healthy zone does (start, elect, replicate).
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(50);
/// `ELECTION_TIMEOUT_MS` of the test configuration.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// Timeout of status calls (`one.zone.raftstatus`, `one.system.version`).
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of ordinary calls; larger than any wait oned does internally.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// OpenNebula error codes (`[false, message, code]`).
pub const AUTHENTICATION: i32 = 0x0100;
pub const AUTHORIZATION: i32 = 0x0200;
pub const NO_EXISTS: i32 = 0x0400;
pub const ACTION_CODE: i32 = 0x0800;
pub const INTERNAL: i32 = 0x2000;
pub const ALLOCATE: i32 = 0x4000;

/// Raft states of `one.zone.raftstatus`.
pub const SOLO: i64 = wire::RaftState::Solo.as_i64();
pub const FOLLOWER: i64 = wire::RaftState::Follower.as_i64();
pub const LEADER: i64 = wire::RaftState::Leader.as_i64();

/// The test `oned.conf`: the guide's settings with a short election timeout.
pub fn oned_conf(port: u16, server_id: i64) -> String {
    oned_conf_on("127.0.0.1", port, server_id)
}

/// [`oned_conf`] listening on `listen`.
pub fn oned_conf_on(listen: &str, port: u16, server_id: i64) -> String {
    oned_conf_with(listen, port, server_id, LogRetention::default())
}

/// The RAFT section's log settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    pub limit_purge: u64,
    pub log_retention: u64,
    pub log_purge_timeout_s: u64,
}

impl Default for LogRetention {
    fn default() -> LogRetention {
        LogRetention {
            limit_purge: 100_000,
            log_retention: 250_000,
            log_purge_timeout_s: 60,
        }
    }
}

/// [`oned_conf_on`] with the given log retention.
pub fn oned_conf_with(listen: &str, port: u16, server_id: i64, log: LogRetention) -> String {
    oned_conf_db(listen, port, server_id, log, SQLITE_DB)
}

/// The `DB` section of the SQLite backend.
pub const SQLITE_DB: &str = r#"DB = [ BACKEND = "sqlite" ]"#;

/// [`oned_conf_with`] with the `DB` section `db` (see [`crate::mariadb::DbSpec::conf`]).
pub fn oned_conf_db(
    listen: &str,
    port: u16,
    server_id: i64,
    log: LogRetention,
    db: &str,
) -> String {
    let LogRetention {
        limit_purge,
        log_retention,
        log_purge_timeout_s,
    } = log;
    format!(
        r#"# OneHA integration test configuration
PORT = {port}
LISTEN_ADDRESS = "{listen}"
{db}
FEDERATION = [ MODE = "STANDALONE", ZONE_ID = 0, SERVER_ID = {server_id}, MASTER_ONED = "" ]
RAFT = [ LIMIT_PURGE = {limit_purge}, LOG_RETENTION = {log_retention}, LOG_PURGE_TIMEOUT = {log_purge_timeout_s},
         ELECTION_TIMEOUT_MS = {election}, BROADCAST_TIMEOUT_MS = 100, XMLRPC_TIMEOUT_MS = 500 ]
"#,
        election = ELECTION_TIMEOUT.as_millis()
    )
}

/// The SQL backend of the servers a test starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `var/one.db` and `var/raft.db` in each server's `ONE_LOCATION`.
    Sqlite,
    /// A database of its own per server on a MariaDB server ([`crate::mariadb::shared`]).
    Mysql,
}

/// `ONEHA_TEST_BACKEND=mysql` runs every [`Server`] on MySQL; unset or anything else, SQLite.
/// Tests check it to skip what only holds for SQLite files.
pub fn test_backend() -> Backend {
    match std::env::var("ONEHA_TEST_BACKEND") {
        Ok(v) if v.eq_ignore_ascii_case("mysql") => Backend::Mysql,
        _ => Backend::Sqlite,
    }
}

/// Ports servers listen on: below Linux's ephemeral range (32768-60999), so an outgoing
/// connection can never take the port of a server that is down for a restart.
const SERVER_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port reserved for one server for as long as this lives: a lock file per port, held with
/// `flock`, keeps other test processes from picking it while the server is stopped.
pub struct PortLease {
    pub port: u16,
    _lock: File,
}

/// Reserves a free port on 127.0.0.1 for a server (see [`PortLease`]).
pub fn lease_port() -> PortLease {
    let dir = std::env::temp_dir().join("oneha-ports");
    fs::create_dir_all(&dir).unwrap();
    let span = u32::from(SERVER_PORTS.end - SERVER_PORTS.start);
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(Instant::now().elapsed().subsec_nanos());
    for n in 0..span {
        let port = SERVER_PORTS.start + ((seed.wrapping_add(n.wrapping_mul(7919))) % span) as u16;
        let Ok(lock) = File::create(dir.join(port.to_string())) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return PortLease { port, _lock: lock };
        }
    }
    panic!("no free port in {SERVER_PORTS:?}");
}

/// A free port on 127.0.0.1, reserved for the life of the process (for one-off servers).
pub fn free_port() -> u16 {
    let lease = lease_port();
    let port = lease.port;
    std::mem::forget(lease);
    port
}

/// A fresh temporary directory, kept if `ONEHA_KEEP_TEST_DIRS` is set.
pub fn temp_dir(prefix: &str) -> (PathBuf, Option<TempDir>) {
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    if std::env::var_os("ONEHA_KEEP_TEST_DIRS").is_some() {
        let path = tmp.keep();
        eprintln!("keeping {}", path.display());
        (path, None)
    } else {
        (tmp.path().to_path_buf(), Some(tmp))
    }
}

/// Sends `signal` to `pid`.
#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own
    // child, not yet reaped, so it cannot name another process.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// Every panic a server's stderr recorded, with the lines of its message, however long ago:
/// a panic is the cause to look for, and later lines push it out of the tail.
pub fn panics(path: &Path) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" panicked at ") && found.len() < 10 {
            found.push(lines[i..(i + 3).min(lines.len())].join("\n"));
        }
    }
    found.join("\n")
}

/// The last `n` lines of a file, or a note that it cannot be read.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// Runs `oned` in `location` until it exits by itself (a bad configuration);
/// panics if it is still running after [`DEADLINE`].
pub fn run_oned_to_exit(location: &Path) -> (ExitStatus, String) {
    let stderr_path = location.join("stderr");
    let mut child = Command::new(crate::oned_binary())
        .arg("-f")
        .env("ONE_LOCATION", location)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "oned with a bad configuration in {} was still running after {DEADLINE:?}; stderr:\n{}\noned.log:\n{}",
                location.display(),
                tail(&stderr_path, 40),
                tail(&layout(location).log, 40)
            );
        }
        std::thread::sleep(POLL);
    };
    (status, fs::read_to_string(&stderr_path).unwrap())
}

/// One `oned` process and its `ONE_LOCATION` directory.
pub struct Server {
    /// `SERVER_ID` in its `oned.conf` (-1 while solo).
    pub id: i64,
    pub port: u16,
    /// Deleted from the zone with `onezone server-del`: no longer a member.
    pub removed: bool,
    /// The `/RPC2` endpoint registered in the zone, when it is not [`Server::endpoint`] (a
    /// link proxy in front of the server).
    pub advertised: Option<String>,
    /// The address clients use (127.0.0.1, or the server's address in its network namespace).
    pub host: String,
    /// Run inside this network namespace (`ip netns exec`), listening on all addresses.
    pub netns: Option<String>,
    /// Appended to the generated `oned.conf` (hooks...).
    pub extra_conf: String,
    /// `FEDERATION/MODE` and `ZONE_ID` of the generated `oned.conf`.
    pub federation_mode: &'static str,
    pub zone_id: i64,
    /// `FEDERATION/MASTER_ONED` (a slave zone's master endpoint).
    pub master_oned: String,
    /// LIMIT_PURGE, LOG_RETENTION and LOG_PURGE_TIMEOUT of the generated `oned.conf`.
    pub log: LogRetention,
    /// TLS on: the `TLS` section of `oned.conf`; endpoints are `https://`, clients trust its CA.
    pub tls: Option<crate::tls::TlsFiles>,
    /// The binary to run instead of [`crate::oned_binary`] (an older release, for upgrades).
    pub oned: Option<PathBuf>,
    /// The MySQL database of its `DB` section; `None`: SQLite.
    pub db: Option<DbSpec>,
    /// Its own MariaDB with its data on its own lossy disk (`mysql/`), cut with `var/`;
    /// declared before the disks, so that it stops before they are unmounted.
    own_mariadb: Option<crate::mariadb::MariaDb>,
    /// The lossy disk of `own_mariadb`'s data, with a journaling filesystem's rules.
    db_disk: Option<lossyfs::Mount>,
    /// `var/` on a lossy filesystem, for power cuts ([`Server::power_cut`]); declared before
    /// `location` so that it is unmounted before the directory is removed.
    disk: Option<lossyfs::Mount>,
    location: PathBuf,
    _tmp: Option<TempDir>,
    _port: PortLease,
    /// The database `new` made on the shared MariaDB: dropped with the server, as its
    /// `ONE_LOCATION` is, so that a long run does not fill a shared server.
    made_db: Option<DbSpec>,
    child: Option<Child>,
    paused: bool,
}

impl Server {
    /// `GET /metrics` on this server: Prometheus' text format.
    pub fn scrape_metrics(&self) -> String {
        ureq::get(&format!("http://{}:{}/metrics", self.host, self.port))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// The value of the sample named exactly `series` (with its labels) in a scrape now.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.scrape_metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} on server {} in:\n{text}", self.id))
    }

    /// A new `ONE_LOCATION` with `etc/oned.conf` for `server_id`; not started.
    pub fn new(server_id: i64) -> Server {
        let (location, tmp) = temp_dir("oneha-server-");
        fs::create_dir_all(location.join("etc")).unwrap();
        let lease = lease_port();
        let db =
            (test_backend() == Backend::Mysql).then(|| crate::mariadb::shared().create_database());
        let server = Server {
            id: server_id,
            port: lease.port,
            removed: false,
            advertised: None,
            host: "127.0.0.1".to_string(),
            netns: None,
            extra_conf: String::new(),
            federation_mode: "STANDALONE",
            zone_id: 0,
            master_oned: String::new(),
            log: LogRetention::default(),
            tls: None,
            oned: None,
            db: db.clone(),
            own_mariadb: None,
            db_disk: None,
            disk: None,
            location,
            made_db: if tmp.is_some() { db } else { None },
            _tmp: tmp,
            _port: lease,
            child: None,
            paused: false,
        };
        server.write_conf();
        server
    }

    /// Puts `var/` (the log, the SQLite state, `.one/`, backups) on its own lossy filesystem,
    /// which forgets every write not made durable when the power is cut. Before the first
    /// start; needs root and `/dev/fuse`. With `lying`, the disk acknowledges fsync without
    /// keeping anything (the checkers' self-test).
    pub fn put_var_on_lossy_disk(&mut self, lying: bool) -> std::io::Result<()> {
        assert!(
            self.child.is_none(),
            "the disk is changed under a running server"
        );
        let var = layout(&self.location).var;
        fs::create_dir_all(&var)?;
        self.disk = Some(if lying {
            lossyfs::Mount::lying(&var)?
        } else {
            lossyfs::Mount::new(&var)?
        });
        Ok(())
    }

    /// The MySQL backend with its own MariaDB whose data is on a second lossy disk of this
    /// server (`mysql/`), cut with `var/` by [`Server::power_cut`]. That disk keeps metadata as
    /// ext4 does: InnoDB creates its `.ibd` files without syncing their directory.
    pub fn use_own_mariadb_on_disk(&mut self) -> std::io::Result<()> {
        let dir = self.location.join("mysql");
        fs::create_dir_all(&dir)?;
        self.db_disk = Some(lossyfs::Mount::journaled(&dir)?);
        let db = crate::mariadb::MariaDb::start_private_on_lossy_disk(dir.join("data"));
        self.db = Some(db.endpoint().create_database());
        self.own_mariadb = Some(db);
        self.write_conf();
        Ok(())
    }

    /// Starts its own MariaDB if it has one and that is down (for `onedb` on a stopped server).
    pub fn start_own_mariadb(&mut self) {
        if let Some(db) = &mut self.own_mariadb {
            if !db.is_running() {
                db.start();
            }
        }
    }

    /// The lossy filesystem under `var/`, if it has one.
    pub fn disk(&self) -> Option<&lossyfs::Mount> {
        self.disk.as_ref()
    }

    /// Makes everything on its lossy disks durable (the machine ran for a while).
    pub fn sync_disks(&self) {
        for disk in self.disk.iter().chain(self.db_disk.iter()) {
            disk.sync_all();
        }
    }

    /// Makes its MariaDB's disk durable, as the kernel's writeback does within
    /// `dirty_expire_centisecs` (30 s) of a write. MariaDB's DDL needs it: its DDL log records
    /// a statement's transaction id with a write it never syncs itself, so a cut before the
    /// writeback can leave a table whose `.frm` exists and whose InnoDB data does not (error
    /// 1932; docs/fault-testing.md, "MariaDB on a lossy disk"). The fault rounds call it after
    /// the DDL of a server's first start and of a restore, where a real disk would have its
    /// writeback before the next cut. OneHA's own `var/` never gets it.
    pub fn write_back_db_disk(&self) {
        if let Some(disk) = &self.db_disk {
            disk.sync_all();
        }
    }

    /// Whether its database is its own MariaDB on a lossy disk.
    pub fn has_db_disk(&self) -> bool {
        self.db_disk.is_some()
    }

    /// A power cut: SIGKILL, then everything on its disk not made durable is forgotten.
    pub fn power_cut(&mut self) {
        self.kill();
        if let Some(db) = &mut self.own_mariadb {
            db.kill();
        }
        if let Some(disk) = &self.db_disk {
            disk.cut();
        }
        self.disk
            .as_ref()
            .expect("a power cut needs the server's var/ on a lossy disk")
            .cut();
    }

    pub fn location(&self) -> &Path {
        &self.location
    }

    /// Where this server's state database is (its SQLite file or its MySQL database), for a
    /// test that changes it while the server is stopped, as an operator's tool would.
    pub fn state_location(&self) -> sqlstore::Location {
        match &self.db {
            Some(m) => sqlstore::Location::Mysql(sqlstore::MysqlConfig {
                server: m.host.clone(),
                port: m.port,
                user: m.user.clone(),
                passwd: m.password.clone(),
                db_name: m.db_name.clone(),
                connections: 2,
            }),
            None => sqlstore::Location::Sqlite(self.location.join("var/one.db")),
        }
    }

    pub fn conf_path(&self) -> PathBuf {
        layout(&self.location).oned_conf()
    }

    pub fn log_path(&self) -> PathBuf {
        layout(&self.location).log
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}/RPC2", self.host, self.port)
    }

    /// The CA file clients trust, with TLS on.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|t| t.ca_file.clone())
    }

    /// The endpoint registered in the zone (`onezone server-add --rpc`): what other servers use.
    pub fn rpc(&self) -> String {
        self.advertised.clone().unwrap_or_else(|| self.endpoint())
    }

    /// Writes `etc/oned.conf` for the current `id` and `port`.
    pub fn write_conf(&self) {
        let listen = if self.netns.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let db = self.db.as_ref().map(DbSpec::conf);
        let db = db.as_deref().unwrap_or(SQLITE_DB);
        let mut conf = oned_conf_db(listen, self.port, self.id, self.log, db)
            .replacen(
                "MODE = \"STANDALONE\", ZONE_ID = 0",
                &format!(
                    "MODE = \"{}\", ZONE_ID = {}",
                    self.federation_mode, self.zone_id
                ),
                1,
            )
            .replacen(
                "MASTER_ONED = \"\"",
                &format!("MASTER_ONED = \"{}\"", self.master_oned),
                1,
            )
            + &self.extra_conf;
        if let Some(tls) = &self.tls {
            conf.push_str(&tls.conf());
        }
        fs::write(self.conf_path(), conf).unwrap();
    }

    /// Changes `SERVER_ID` in `oned.conf` (the server must be stopped).
    pub fn set_server_id(&mut self, id: i64) {
        assert!(self.child.is_none(), "set_server_id on a running server");
        self.id = id;
        self.write_conf();
    }

    /// The process id of the running `oned`, if it runs (for `/proc/<pid>/status` probes).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process exists (it may be paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Running and not paused.
    pub fn is_up(&self) -> bool {
        self.child.is_some() && !self.paused
    }

    /// Starts the process without waiting for it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server {} already running", self.id);
        let append = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.location.join(name))
                .unwrap()
        };
        let binary = self.oned.clone().unwrap_or_else(crate::oned_binary);
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("-f")
            .env("ONE_LOCATION", &self.location)
            .stdin(Stdio::null())
            .stdout(append("stdout"))
            .stderr(append("stderr"))
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.paused = false;
    }

    /// Starts the process and waits until `/RPC2` answers an authenticated call (its own
    /// MariaDB first, if it has one and that is down).
    pub fn start(&mut self) {
        self.start_own_mariadb();
        self.spawn();
        self.wait_serving();
    }

    /// Waits until the spawned process answers an authenticated `/RPC2` call; panics if it
    /// exits or does not answer within the deadline. For servers spawned together with
    /// [`Server::spawn`] (a whole zone restarted at once).
    pub fn wait_serving(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "oned (server {}, port {}) exited with {status} while starting\n{}",
                    self.id,
                    self.port,
                    self.tails()
                );
            }
            if self.auth_file().exists() {
                let version = self
                    .client_with_timeout(STATUS_TIMEOUT)
                    .call(wire::method::SYSTEM_VERSION, vec![]);
                if version.is_ok() {
                    return;
                }
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "oned (server {}, port {}) did not answer one.system.version within {DEADLINE:?}\n{}",
                    self.id,
                    self.port,
                    self.tails()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().unwrap();
        }
        self.paused = false;
    }

    /// SIGTERM, then waits for the exit, which must be 0.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.paused {
            send_signal(child.id(), libc::SIGCONT);
            self.paused = false;
        }
        send_signal(child.id(), libc::SIGTERM);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                child.wait().unwrap();
                panic!(
                    "oned (server {}) did not exit within {DEADLINE:?} of SIGTERM\n{}",
                    self.id,
                    self.tails()
                );
            }
            std::thread::sleep(POLL);
        };
        assert!(
            status.success(),
            "oned (server {}) exited with {status} after SIGTERM\n{}",
            self.id,
            self.tails()
        );
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        let child = self.child.as_ref().expect("pause: server not running");
        send_signal(child.id(), libc::SIGSTOP);
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        let child = self.child.as_ref().expect("resume: server not running");
        send_signal(child.id(), libc::SIGCONT);
        self.paused = false;
    }

    pub fn auth_file(&self) -> PathBuf {
        layout(&self.location).var.join(wire::files::ONE_AUTH)
    }

    /// `oneadmin:<password>` from `var/.one/one_auth`.
    pub fn session(&self) -> String {
        let text = fs::read_to_string(self.auth_file()).unwrap();
        text.lines().next().unwrap_or("").trim().to_string()
    }

    /// The oneadmin password.
    pub fn password(&self) -> String {
        let session = self.session();
        let (_, password) = session.split_once(':').unwrap();
        password.to_string()
    }

    /// An oneadmin client with [`CALL_TIMEOUT`].
    pub fn client(&self) -> Client {
        self.client_with_timeout(CALL_TIMEOUT)
    }

    pub fn client_with_timeout(&self, timeout: Duration) -> Client {
        Client::new(self.endpoint(), self.session(), timeout).with_ca_file(self.ca_file())
    }

    /// A client for another user.
    pub fn client_as(&self, user: &str, password: &str) -> Client {
        Client::new(self.endpoint(), format!("{user}:{password}"), CALL_TIMEOUT)
            .with_ca_file(self.ca_file())
    }

    /// An object CLI (`onevm`, `onehook`...) run in-process against this server as oneadmin.
    pub fn cli(&self, kind: cli::objects::Kind, args: &[&str]) -> CliRun {
        self.cli_as(kind, "oneadmin", &self.password(), args)
    }

    /// [`Server::cli`] with the session of another user.
    pub fn cli_as(
        &self,
        kind: cli::objects::Kind,
        user: &str,
        password: &str,
        args: &[&str],
    ) -> CliRun {
        let endpoint = self.endpoint();
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(
            [
                "--endpoint",
                &endpoint,
                "--user",
                user,
                "--password",
                password,
            ]
            .map(String::from),
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cli::objects::run(kind, &all, &mut out, &mut err);
        CliRun {
            command: format!("{} {}", kind.command(), args.join(" ")),
            code,
            out: String::from_utf8_lossy(&out).into_owned(),
            err: String::from_utf8_lossy(&err).into_owned(),
        }
    }

    /// `one.zone.raftstatus`, `None` if the server does not answer.
    pub fn raft_status(&self) -> Option<RaftStatus> {
        if !self.is_up() {
            return None;
        }
        let xml = self
            .client_with_timeout(STATUS_TIMEOUT)
            .call_xml(wire::method::ZONE_RAFTSTATUS, vec![])
            .ok()?;
        Some(RaftStatus::from_xml(&xml).unwrap())
    }

    /// `one.zone.info(0)` as seen by this server.
    pub fn zone_info(&self) -> Option<ZoneInfo> {
        let xml = self
            .client_with_timeout(STATUS_TIMEOUT)
            .call_xml(
                wire::method::ZONE_INFO,
                vec![Value::Int(self.zone_id as i32)],
            )
            .ok()?;
        Some(ZoneInfo::from_xml(&xml).unwrap())
    }

    /// Tail of `oned.log` and of stderr, and every panic stderr recorded.
    pub fn tails(&self) -> String {
        let stderr = self.location.join("stderr");
        let panics = panics(&stderr);
        let panics = if panics.is_empty() {
            String::new()
        } else {
            format!("===== server {} panics =====\n{panics}\n", self.id)
        };
        format!(
            "===== server {} (port {}, {}) oned.log =====\n{}\n===== server {} stderr =====\n{}\n{panics}",
            self.id,
            self.port,
            self.location.display(),
            tail(&self.log_path(), 40),
            self.id,
            tail(&stderr, 15)
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if let Some(db) = self.made_db.take() {
            if let Err(e) = crate::mariadb::shared().drop_database(&db) {
                eprintln!(
                    "dropping database {} of server {}: {e}",
                    db.db_name, self.id
                );
            }
        }
    }
}

/// Runs the real `onezone` CLI in-process; returns (exit code, stdout, stderr).
pub fn onezone(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::onezone::run(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// What a CLI run printed and its exit code.
#[derive(Debug, Clone)]
pub struct CliRun {
    pub command: String,
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl CliRun {
    /// Its stdout, once it exited 0 (panics with what it printed otherwise).
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "{} exited {}: {}{}",
            self.command, self.code, self.out, self.err
        );
        self.out
    }

    /// (exit code, stdout, stderr).
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.out, self.err)
    }
}

/// `one.user.allocate(name, password, "")` → the new user id.
pub fn allocate(client: &Client, name: &str) -> Result<i64, CallError> {
    let id = client.call(
        wire::method::USER_ALLOCATE,
        vec![
            Value::String(name.to_string()),
            Value::String(format!("pw-{name}")),
            Value::String(String::new()),
        ],
    )?;
    Ok(id
        .as_i64()
        .unwrap_or_else(|| panic!("one.user.allocate returned {id:?}")))
}

/// The NAME of user `id` from `one.user.info`, `None` if the call fails.
pub fn user_name(client: &Client, id: i64) -> Option<String> {
    let xml = client
        .call_xml(
            wire::method::USER_INFO,
            vec![Value::Int(i32::try_from(id).unwrap())],
        )
        .ok()?;
    let user = Element::parse(&xml).unwrap().expect("USER").unwrap();
    assert_eq!(user.int_of("ID").unwrap(), id, "{xml}");
    Some(user.text_of("NAME").unwrap().to_string())
}

/// The names in `one.userpool.info`.
pub fn user_pool(client: &Client) -> Result<Vec<String>, CallError> {
    let xml = client.call_xml(wire::method::USERPOOL_INFO, vec![])?;
    let pool = Element::parse(&xml).unwrap().expect("USER_POOL").unwrap();
    Ok(pool
        .children_named("USER")
        .map(|u| u.text_of("NAME").unwrap().to_string())
        .collect())
}

/// The OpenNebula error code and message of a failed call; panics on success
/// or on a transport/fault error.
pub fn one_error(result: Result<impl std::fmt::Debug, CallError>) -> (i32, String) {
    match result {
        Err(CallError::One(e)) => (e.code, e.message),
        other => panic!("expected an OpenNebula failure [false, message, code], got {other:?}"),
    }
}

/// Lets every user USE object `id` of `family` (`one.<family>.chmod`, OTHER_U on, the rest as
/// they are); panics if refused.
pub fn let_others_use(client: &Client, family: &str, id: impl Into<i64>) {
    let id: i64 = id.into();
    let mut mode = vec![Value::Int(id as i32)];
    mode.extend([-1, -1, -1, -1, -1, -1, 1, -1, -1].map(Value::Int));
    let method = format!("one.{family}.chmod");
    if let Err(e) = client.call(&method, mode) {
        panic!("{method} {id}: {e}");
    }
}

/// Customises a new server of a zone: (index, server).
pub type Setup = Box<dyn Fn(usize, &mut Server)>;

/// A zone of `oned` servers; `servers[i]` was created as server `i`.
pub struct Zone {
    pub servers: Vec<Server>,
    /// Link proxies between the servers, when the zone was built with them.
    pub network: Option<Network>,
    /// Applied to every new server (index, server) before its configuration is written.
    pub setup: Option<Setup>,
    tails_shown: Cell<bool>,
}

impl Zone {
    /// Server 0 started with `SERVER_ID = -1`, reporting solo.
    pub fn solo() -> Zone {
        Zone::solo_with(None)
    }

    /// [`Zone::solo`], with servers registered behind the link proxies of `network`.
    pub fn solo_with(network: Option<Network>) -> Zone {
        Zone::solo_custom(network, None)
    }

    /// [`Zone::solo`] with link proxies and a per-server set-up.
    pub fn solo_custom(network: Option<Network>, setup: Option<Setup>) -> Zone {
        eprintln!("--- start server 0 solo (SERVER_ID = -1)");
        let mut s0 = Server::new(-1);
        if let Some(net) = &network {
            s0.advertised = Some(net.add_server(0, s0.port));
        }
        if let Some(f) = &setup {
            f(0, &mut s0);
            s0.write_conf();
        }
        s0.start();
        let zone = Zone {
            servers: vec![s0],
            network,
            setup,
            tails_shown: Cell::new(false),
        };
        zone.wait_until(DEADLINE, "server 0 reports solo", || {
            zone.servers[0]
                .raft_status()
                .is_some_and(|r| r.state == SOLO)
        });
        zone
    }

    /// A zone of `n` servers, bootstrapped as the guide says: solo, add
    /// itself, restart as `SERVER_ID = 0` (leader), then add the others one
    /// at a time.
    pub fn bootstrap(n: usize) -> Zone {
        Zone::bootstrap_with(n, None)
    }

    /// [`Zone::bootstrap`] with link proxies.
    pub fn bootstrap_with(n: usize, network: Option<Network>) -> Zone {
        Zone::bootstrap_custom(n, network, None)
    }

    /// [`Zone::bootstrap`] with link proxies and a per-server set-up.
    pub fn bootstrap_custom(n: usize, network: Option<Network>, setup: Option<Setup>) -> Zone {
        let mut zone = Zone::solo_custom(network, setup);
        zone.promote_solo_to_leader();
        for _ in 1..n {
            zone.add_server();
        }
        zone
    }

    /// `onezone server-add 0 --name server-0`, stop, `SERVER_ID = 0`, start;
    /// waits until it is the leader.
    pub fn promote_solo_to_leader(&mut self) {
        eprintln!("--- onezone server-add 0 --name server-0");
        let rpc = self.servers[0].rpc();
        let zone = self.servers[0].zone_id.to_string();
        self.onezone_ok(
            0,
            &["server-add", &zone, "--name", "server-0", "--rpc", &rpc],
        );
        eprintln!("--- restart server 0 with SERVER_ID = 0");
        self.servers[0].stop();
        self.servers[0].set_server_id(0);
        self.servers[0].start();
        let leader = self.leader();
        assert_eq!(leader, 0);
    }

    /// Creates the next server's `ONE_LOCATION` with a copy of server 0's
    /// `var/.one/` and `SERVER_ID = i`; neither added nor started.
    pub fn prepare_server(&mut self) -> usize {
        let i = self.servers.len();
        let mut server = Server::new(i as i64);
        if let Some(net) = &self.network {
            server.advertised = Some(net.add_server(i as u64, server.port));
        }
        if let Some(f) = &self.setup {
            f(i, &mut server);
            server.write_conf();
        }
        let src = self.servers[0].location().join("var/.one");
        let dst = server.location().join("var/.one");
        fs::create_dir_all(&dst).unwrap();
        for entry in fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
        // The operator's copy had time to reach the disk before the server is started.
        server.sync_disks();
        self.servers.push(server);
        i
    }

    /// `onezone server-add 0 --name server-i --rpc ...` against the leader;
    /// checks the leader assigned id `i`.
    pub fn server_add(&self, i: usize) {
        let leader = self.leader();
        eprintln!("--- onezone server-add 0 --name server-{i} (via leader {leader})");
        let name = format!("server-{i}");
        let rpc = self.servers[i].rpc();
        let zone = self.servers[leader].zone_id.to_string();
        self.onezone_ok(
            leader,
            &["server-add", &zone, "--name", &name, "--rpc", &rpc],
        );
        let zone = self.servers[leader].zone_info().unwrap();
        let added = zone
            .servers
            .iter()
            .find(|s| s.endpoint == rpc)
            .unwrap_or_else(|| panic!("{rpc} not in zone info after server-add: {zone:?}"));
        assert_eq!(
            (added.id, added.name.as_str()),
            (i as i64, name.as_str()),
            "server id assigned by the leader"
        );
    }

    /// Prepares, adds and starts the next server; waits until it follows
    /// and has caught up with the leader's commit index.
    pub fn add_server(&mut self) -> usize {
        let i = self.prepare_server();
        self.server_add(i);
        eprintln!("--- start server {i}");
        self.servers[i].start();
        self.wait_caught_up();
        self.wait_voter(i);
        i
    }

    /// Waits until server `i` counts in the quorum: its raftstatus says
    /// follower (a server still catching up as a learner reports STATE 4).
    pub fn wait_voter(&self, i: usize) {
        self.wait_until(
            DEADLINE,
            &format!("server {i} is a voter (raftstatus STATE follower or leader)"),
            || {
                self.servers[i]
                    .raft_status()
                    .is_some_and(|r| r.state == FOLLOWER || r.state == LEADER)
            },
        );
    }

    /// Indices of servers that are running, not paused and members.
    pub fn up(&self) -> Vec<usize> {
        (0..self.servers.len())
            .filter(|&i| self.servers[i].is_up() && !self.servers[i].removed)
            .collect()
    }

    /// Waits until exactly one running member reports leader; its index.
    pub fn leader(&self) -> usize {
        self.wait_for(DEADLINE, "exactly one leader among running servers", || {
            let leaders: Vec<usize> = self
                .up()
                .into_iter()
                .filter(|&i| {
                    self.servers[i]
                        .raft_status()
                        .is_some_and(|r| r.state == LEADER)
                })
                .collect();
            match leaders.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        })
    }

    /// Waits until every running member reports the same `oneha.db.checksum`.
    pub fn wait_identical(&self) {
        self.wait_until(
            DEADLINE * 2,
            "every server has the same database checksum",
            || {
                let sums: Vec<Option<String>> = self
                    .up()
                    .into_iter()
                    .map(|i| {
                        let xml = self.servers[i]
                            .client()
                            .call_xml(wire::method::ONEHA_DB_CHECKSUM, vec![])
                            .ok()?;
                        let e = Element::parse(&xml).ok()?;
                        Some(e.text_of("SHA256").ok()?.to_string())
                    })
                    .collect();
                sums.iter().all(|s| s.is_some() && *s == sums[0])
            },
        );
    }

    /// Waits until every running member other than the leader is a follower
    /// whose last log index reaches the leader's commit index.
    pub fn wait_caught_up(&self) {
        let leader = self.leader();
        let commit = self.servers[leader].raft_status().unwrap().commit;
        self.wait_until(
            DEADLINE,
            &format!(
                "every follower follows, and reaches and applies the leader's COMMIT {commit}"
            ),
            || {
                self.up().into_iter().filter(|&i| i != leader).all(|i| {
                    self.servers[i]
                        .raft_status()
                        .is_some_and(|r| r.state == FOLLOWER && r.log_index >= commit)
                        && self.applied(i).is_some_and(|a| a >= commit)
                })
            },
        );
    }

    /// The last log index server `i` has applied to its state database (`oneha.db.checksum`'s
    /// LAST_APPLIED): the commit index says what is replicated, this what reads can see. A
    /// MySQL state database applies later than SQLite's, so tests that read right after
    /// catching up wait on this.
    pub fn applied(&self, i: usize) -> Option<i64> {
        let xml = self.servers[i]
            .client_with_timeout(STATUS_TIMEOUT)
            .call_xml(wire::method::ONEHA_DB_CHECKSUM, vec![])
            .ok()?;
        Element::parse(&xml).ok()?.int_of("LAST_APPLIED").ok()
    }

    /// Runs `onezone` against server `via` with oneadmin's credentials.
    pub fn onezone(&self, via: usize, args: &[&str]) -> (i32, String, String) {
        let endpoint = self.servers[via].endpoint();
        let password = self.servers[0].password();
        let ca_file = self.servers[via].ca_file().map(|f| f.display().to_string());
        let mut all = args.to_vec();
        all.extend([
            "--endpoint",
            &endpoint,
            "--user",
            "oneadmin",
            "--password",
            &password,
        ]);
        if let Some(f) = &ca_file {
            all.extend(["--ca-file", f]);
        }
        onezone(&all)
    }

    /// [`Zone::onezone`] that must succeed; returns stdout.
    pub fn onezone_ok(&self, via: usize, args: &[&str]) -> String {
        let (code, out, err) = self.onezone(via, args);
        if code != 0 {
            self.fail(&format!(
                "onezone {} via server {via} exited with {code}\nstdout:\n{out}\nstderr:\n{err}",
                args.join(" ")
            ));
        }
        out
    }

    /// Polls `cond` every [`POLL`] until it holds; panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        self.wait_for(timeout, what, || cond().then_some(()));
    }

    /// Polls `f` every [`POLL`] until it returns `Some`; panics after `timeout`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > timeout {
                self.fail(&format!("timed out after {timeout:?} waiting until {what}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Panics with `message`, the Raft status and the log tail of every server.
    pub fn fail(&self, message: &str) -> ! {
        self.tails_shown.set(true);
        panic!("{message}\n{}", self.report());
    }

    /// Raft status and log tails of every server.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            out.push_str(&format!(
                "server {} up={} removed={} raftstatus={:?}\n",
                s.id,
                s.is_up(),
                s.removed,
                s.raft_status()
            ));
        }
        for s in &self.servers {
            out.push_str(&s.tails());
        }
        out
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.tails_shown.get() {
            eprintln!("{}", self.report());
        }
        for s in &mut self.servers {
            s.kill();
        }
    }
}

/// POSTs `body` to `path` on 127.0.0.1:`port` with a hand-written HTTP/1.1 request; returns the
/// status code and the response body.
pub fn http_post(port: u16, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((_, b)) => b.to_string(),
        None => String::new(),
    };
    (status, body)
}

/// The files of the server whose `ONE_LOCATION` is `location`, as oned finds them.
fn layout(location: &Path) -> wire::files::Layout {
    wire::files::Layout::new(Some(location.as_os_str()))
}
