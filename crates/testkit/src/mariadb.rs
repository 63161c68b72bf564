//! MariaDB for the MySQL backend of `oned`: a private `mariadbd` per test process (or the server
//! named by `ONEHA_TEST_MYSQL`), and a fresh database with its own user per `oned` server.
//!
//! Everything goes through MariaDB's own programs (`mariadb-install-db`, `mariadbd`, the `mariadb`
//! client), always with `--no-defaults` so that no `my.cnf` of the machine leaks in.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use rand::distributions::Alphanumeric;
use rand::Rng;
use tempfile::TempDir;

use crate::zone::{lease_port, tail, temp_dir, PortLease, DEADLINE, POLL};

/// `host:port` of a MariaDB/MySQL server to use instead of starting one, with a `root` user
/// without password reachable over TCP from 127.0.0.1 (`.ci/run` starts one for the whole run).
pub const ENV_SERVER: &str = "ONEHA_TEST_MYSQL";
/// Set: a missing `mariadbd` fails the MariaDB tests instead of skipping them.
pub const ENV_REQUIRE: &str = "ONEHA_REQUIRE_MYSQL";

/// Where distributions put the server and its tools when `sbin` is not on `PATH`.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/sbin"];

/// The first of `names` found on `PATH` or in [`EXTRA_DIRS`] (older MariaDB releases only have
/// the `mysql*` names).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .collect();
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|d| d.join(name))
            .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
    })
}

fn program(names: &[&str]) -> PathBuf {
    find_program(names).unwrap_or_else(|| {
        panic!(
            "{} not found (apt-get install mariadb-server mariadb-client)",
            names[0]
        )
    })
}

fn server_binary() -> PathBuf {
    program(&["mariadbd", "mysqld"])
}

fn install_binary() -> PathBuf {
    program(&["mariadb-install-db", "mysql_install_db"])
}

fn client_binary() -> PathBuf {
    program(&["mariadb", "mysql"])
}

/// `mariadbd`, `mariadb-install-db` and the `mariadb` client are all installed.
pub fn installed() -> bool {
    find_program(&["mariadbd", "mysqld"]).is_some()
        && find_program(&["mariadb-install-db", "mysql_install_db"]).is_some()
        && find_program(&["mariadb", "mysql"]).is_some()
}

/// Whether a MariaDB test can run: a server is named by [`ENV_SERVER`] or MariaDB is installed.
/// Otherwise it prints why the test is skipped, or panics if [`ENV_REQUIRE`] is set.
pub fn available(test: &str) -> bool {
    if std::env::var_os(ENV_SERVER).is_some_and(|v| !v.is_empty()) || installed() {
        return true;
    }
    assert!(
        std::env::var_os(ENV_REQUIRE).is_none(),
        "{test}: {ENV_REQUIRE} is set but mariadbd is not installed"
    );
    eprintln!("{test}: skipped, mariadbd is not installed (set {ENV_REQUIRE} to fail instead)");
    false
}

/// mariadbd refuses to run as root unless told to with `--user=root`.
fn running_as_root() -> bool {
    // /proc/self belongs to the effective user: no unsafe geteuid().
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A server and the administrator account the harness uses on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Empty: no password.
    pub password: String,
}

impl MariaDbEndpoint {
    /// `root` without password on `host:port`.
    pub fn root(host: &str, port: u16) -> MariaDbEndpoint {
        MariaDbEndpoint {
            host: host.to_string(),
            port,
            user: "root".to_string(),
            password: String::new(),
        }
    }

    /// Parses `host:port` (the form of [`ENV_SERVER`]) as `root` without password.
    pub fn parse(spec: &str) -> MariaDbEndpoint {
        let (host, port) = spec
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{ENV_SERVER}={spec:?}: expected host:port"));
        let port = port
            .parse()
            .unwrap_or_else(|e| panic!("{ENV_SERVER}={spec:?}: bad port: {e}"));
        MariaDbEndpoint::root(host, port)
    }

    /// Runs `sql` as the administrator; its output (tab-separated, no column names), or the
    /// client's error.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        run_sql(&self.host, self.port, &self.user, &self.password, None, sql)
    }

    /// [`MariaDbEndpoint::sql`] that must succeed.
    pub fn sql_ok(&self, sql: &str) -> String {
        self.sql(sql)
            .unwrap_or_else(|e| panic!("SQL on {}:{} failed: {e}\n{sql}", self.host, self.port))
    }

    /// A new database with a user of its own (all privileges on it, nothing else), named
    /// uniquely across the test processes sharing this server.
    pub fn create_database(&self) -> DbSpec {
        let name = unique_name();
        let password: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        // The server sees TCP clients from 127.0.0.1 and socket clients as localhost.
        let mut sql =
            format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n");
        for host in ["127.0.0.1", "localhost"] {
            sql.push_str(&format!(
                "CREATE USER '{name}'@'{host}' IDENTIFIED BY '{password}';\n\
                 GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'{host}';\n"
            ));
        }
        self.sql_ok(&sql);
        DbSpec {
            host: self.host.clone(),
            port: self.port,
            user: name.clone(),
            password,
            db_name: name,
        }
    }

    /// Drops a database of [`MariaDbEndpoint::create_database`] and its user.
    pub fn drop_database(&self, db: &DbSpec) -> Result<(), String> {
        self.sql(&format!(
            "DROP DATABASE IF EXISTS `{}`; DROP USER IF EXISTS '{u}'@'127.0.0.1', '{u}'@'localhost';",
            db.db_name,
            u = db.user
        ))
        .map(drop)
    }
}

/// `oneha_<pid>_<counter>_<random>`: the pid and counter keep names apart within a machine, the
/// random part across machines and pid reuse on a long-lived shared server. 30 characters at
/// most, within MySQL's limits for database (64) and user (32) names.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(6)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect();
    format!("oneha_{}_{n}_{random}", std::process::id())
}

/// One database and the user that owns it: what an `oned` server's `DB` section names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub db_name: String,
}

impl DbSpec {
    /// The `DB = [ ... ]` line of `oned.conf`, with OpenNebula's attribute names.
    pub fn conf(&self) -> String {
        format!(
            r#"DB = [ BACKEND = "mysql", SERVER = "{}", PORT = {}, USER = "{}", PASSWD = "{}", DB_NAME = "{}", CONNECTIONS = 8 ]"#,
            self.host, self.port, self.user, self.password, self.db_name
        )
    }

    /// Runs `sql` as this user in its database (see [`MariaDbEndpoint::sql`]).
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        run_sql(
            &self.host,
            self.port,
            &self.user,
            &self.password,
            Some(&self.db_name),
            sql,
        )
    }
}

fn run_sql(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    database: Option<&str>,
    sql: &str,
) -> Result<String, String> {
    let mut command = Command::new(client_binary());
    // --protocol=TCP: with host "localhost" the client would otherwise look for a socket.
    command.args([
        "--no-defaults",
        "--protocol=TCP",
        "--batch",
        "--skip-column-names",
        "--connect-timeout=5",
    ]);
    command.arg(format!("--host={host}"));
    command.arg(format!("--port={port}"));
    command.arg(format!("--user={user}"));
    if !password.is_empty() {
        command.arg(format!("--password={password}"));
    }
    if let Some(db) = database {
        command.arg(format!("--database={db}"));
    }
    let out = command
        .arg("--execute")
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the mariadb client: {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The server every `oned` of this test process gets its database from: [`ENV_SERVER`] if set,
/// else a private [`MariaDb`] started on first use and kept until the process exits (its
/// watchdog then kills it and removes its files).
pub fn shared() -> &'static MariaDbEndpoint {
    struct Shared {
        endpoint: MariaDbEndpoint,
        _server: Option<MariaDb>,
    }
    static SHARED: OnceLock<Shared> = OnceLock::new();
    &SHARED
        .get_or_init(|| match std::env::var(ENV_SERVER) {
            Ok(spec) if !spec.is_empty() => Shared {
                endpoint: MariaDbEndpoint::parse(&spec),
                _server: None,
            },
            _ => {
                let server = MariaDb::start_private();
                Shared {
                    endpoint: server.endpoint().clone(),
                    _server: Some(server),
                }
            }
        })
        .endpoint
}

/// Runs the server (arguments after the first) under a watchdog shell, so that it never outlives
/// the test process: the shell's stdin is a pipe only the test process writes to, and end of
/// file there, however the test process died, kills the server and removes the first argument
/// (a directory; empty for none). Lines on the pipe are orders: `term` (clean shutdown) and
/// `kill` (SIGKILL), after which the shell reaps the server and exits with its status. The
/// shell prints the server's pid first; as the server stays its unreaped child until the shell
/// exits, that pid cannot name another process meanwhile.
const WATCHDOG: &str = r#"
cleanup=$1; shift
exec 3<&0 </dev/null
"$@" 3<&- >&2 &
server=$!
echo "$server"
finish() {
  kill -KILL "$server" 2>/dev/null
  wait "$server"
  [ -z "$cleanup" ] || rm -rf -- "$cleanup"
  exit 1
}
trap finish HUP INT TERM
while read -r order <&3; do
  case "$order" in
    term) kill -TERM "$server"; wait "$server"; exit ;;
    kill) kill -KILL "$server"; wait "$server"; exit ;;
  esac
done
finish
"#;

/// A running `mariadbd` under [`WATCHDOG`].
struct Watched {
    shell: Child,
    orders: ChildStdin,
    pid: u32,
}

impl Watched {
    fn order(&mut self, order: &str) {
        // The shell may be gone already (the server died and a signal ended it): nothing to do.
        let _ = writeln!(self.orders, "{order}");
    }

    /// Waits for the shell (and so the server) to exit.
    fn wait_exit(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.shell.try_wait().unwrap().is_some() {
                return Ok(());
            }
            if start.elapsed() > DEADLINE {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.pid.to_string()])
                    .status();
                self.shell.wait().unwrap();
                return Err(format!(
                    "mariadbd (pid {}) did not exit within {DEADLINE:?}; killed",
                    self.pid
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// One private `mariadbd` on 127.0.0.1 with its data in a temporary directory; `root` has no
/// password. Dropping it shuts it down.
pub struct MariaDb {
    endpoint: MariaDbEndpoint,
    dir: PathBuf,
    /// Its data directory on a FUSE filesystem (a lossy disk), instead of `dir/data`: no
    /// O_DIRECT there, so InnoDB flushes with fsync and without native AIO.
    on_fuse: Option<PathBuf>,
    _tmp: Option<TempDir>,
    _port: PortLease,
    process: Option<Watched>,
}

impl MariaDb {
    /// A new data directory and a server on it, answering queries.
    pub fn start_private() -> MariaDb {
        let (dir, tmp) = temp_dir("oneha-mariadb-");
        let lease = lease_port();
        let mut db = MariaDb {
            endpoint: MariaDbEndpoint::root("127.0.0.1", lease.port),
            dir,
            on_fuse: None,
            _tmp: tmp,
            _port: lease,
            process: None,
        };
        db.install();
        db.start();
        db
    }

    /// A new server with its data directory `data` (kept when dropped) on a lossy disk (FUSE):
    /// a power cut of that disk is a power cut of this MariaDB. Its socket, logs and temporary
    /// files are in a temporary directory (FUSE here has no sockets).
    pub fn start_private_on_lossy_disk(data: PathBuf) -> MariaDb {
        let (dir, tmp) = temp_dir("oneha-mariadb-");
        let lease = lease_port();
        let mut db = MariaDb {
            endpoint: MariaDbEndpoint::root("127.0.0.1", lease.port),
            dir,
            on_fuse: Some(data),
            _tmp: tmp,
            _port: lease,
            process: None,
        };
        db.install();
        db.start();
        db
    }

    pub fn endpoint(&self) -> &MariaDbEndpoint {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.endpoint.port
    }

    /// The temporary directory: `data/`, `error.log`, the socket and pid file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.on_fuse
            .clone()
            .unwrap_or_else(|| self.dir.join("data"))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// The pid of `mariadbd` while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// Options of both `mariadb-install-db` and `mariadbd`: small, no binary log, and root.
    fn common_args(&self) -> Vec<String> {
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", self.data_dir().display()),
            // Temporary tables are named after the pid and a counter: two instances sharing
            // /tmp can collide (seen in concurrent mariadb-install-db runs).
            format!("--tmpdir={}", self.tmp_dir().display()),
            // A small redo log: the 96 MiB default would make every test process's instance
            // over 100 MiB on disk.
            "--innodb-log-file-size=16M".to_string(),
            "--innodb-buffer-pool-size=32M".to_string(),
            "--skip-log-bin".to_string(),
        ];
        if self.on_fuse.is_some() {
            args.push("--innodb-flush-method=fsync".to_string());
            args.push("--innodb-use-native-aio=0".to_string());
        }
        if running_as_root() {
            args.push("--user=root".to_string());
        }
        args
    }

    fn install(&self) {
        fs::create_dir_all(self.tmp_dir()).unwrap();
        let log = self.dir.join("install.log");
        let out = fs::File::create(&log).unwrap();
        let status = Command::new(install_binary())
            .args(self.common_args())
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mariadb-install-db in {} failed with {status}:\n{}",
            self.dir.display(),
            tail(&log, 30)
        );
    }

    /// Starts `mariadbd` on the existing data directory and port; waits until it answers a
    /// query, panicking with the tail of its error log if it does not within [`DEADLINE`].
    pub fn start(&mut self) {
        assert!(self.process.is_none(), "mariadbd already running");
        let cleanup = match &self._tmp {
            Some(_) => self.dir.display().to_string(),
            None => String::new(),
        };
        let mut shell = Command::new("sh")
            .args(["-c", WATCHDOG, "oneha-mariadb-watchdog", &cleanup])
            .arg(server_binary())
            .args(self.common_args())
            .arg(format!("--port={}", self.endpoint.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                self.dir.join("mysql.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", self.error_log().display()))
            // No reverse DNS of 127.0.0.1: clients match the '...'@'127.0.0.1' accounts.
            .arg("--skip-name-resolve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("stderr"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let orders = shell.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(shell.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("watchdog printed {line:?}, not the pid of mariadbd"));
        self.process = Some(Watched { shell, orders, pid });

        let start = Instant::now();
        loop {
            if !self.is_running() {
                // Reap it so that Drop has nothing left to stop.
                let mut p = self.process.take().unwrap();
                p.order("kill");
                let _ = p.wait_exit();
                panic!(
                    "mariadbd on port {} exited while starting; {}:\n{}",
                    self.endpoint.port,
                    self.error_log().display(),
                    tail(&self.error_log(), 30)
                );
            }
            match self.endpoint.sql("SELECT 1") {
                Ok(_) => return,
                Err(e) if start.elapsed() > DEADLINE => panic!(
                    "mariadbd on port {} did not answer within {DEADLINE:?} ({e}); {}:\n{}",
                    self.endpoint.port,
                    self.error_log().display(),
                    tail(&self.error_log(), 30)
                ),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// `mariadbd` exists and is not a zombie.
    pub fn is_running(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|p| alive(p.shell.id()) && alive(p.pid))
    }

    fn stop_process(&mut self) -> Result<(), String> {
        let Some(mut p) = self.process.take() else {
            return Ok(());
        };
        // SIGTERM is mariadbd's clean shutdown, as `mysqladmin shutdown`.
        p.order("term");
        p.wait_exit().map_err(|e| {
            format!(
                "{e}; {}:\n{}",
                self.error_log().display(),
                tail(&self.error_log(), 30)
            )
        })
    }

    /// Clean shutdown; waits for the process to exit.
    pub fn stop(&mut self) {
        if let Err(e) = self.stop_process() {
            panic!("{e}");
        }
    }

    /// SIGKILL (a crash: InnoDB recovers at the next start); waits for the process to exit.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.order("kill");
            if let Err(e) = p.wait_exit() {
                panic!("{e}");
            }
        }
    }

    /// What the server is doing, for a test that failed on it: every connection and its
    /// statement, the open InnoDB transactions and the lock waits between them, and the tail of
    /// its error log.
    pub fn report(&self) -> String {
        let ask = |sql: &str| match self.endpoint.sql(sql) {
            Ok(out) => out,
            Err(e) => format!("({e})"),
        };
        format!(
            "===== mariadbd processlist =====\n{}\n===== innodb_trx =====\n{}\n===== innodb_lock_waits =====\n{}\n===== {} =====\n{}",
            ask("SELECT id, user, db, command, time, state, info FROM information_schema.processlist"),
            ask("SELECT trx_id, trx_state, trx_started, trx_mysql_thread_id, trx_query, trx_rows_locked FROM information_schema.innodb_trx"),
            ask("SELECT * FROM information_schema.innodb_lock_waits"),
            self.error_log().display(),
            tail(&self.error_log(), 30)
        )
    }

    /// [`MariaDb::stop`], then [`MariaDb::start`].
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // No panic here: it would abort a test that is already unwinding.
        if let Err(e) = self.stop_process() {
            eprintln!("{e}");
        }
    }
}
