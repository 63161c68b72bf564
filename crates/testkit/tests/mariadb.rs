//! The MariaDB harness itself: private servers, per-server databases and users, restarts and
//! crashes, and that no `mariadbd` outlives its test process. Skipped when MariaDB is not
//! installed, unless `ONEHA_REQUIRE_MYSQL` is set.

#![allow(clippy::unwrap_used)] // test code

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use testkit::mariadb::{self, DbSpec, MariaDb};
use testkit::zone::{test_backend, Backend, Server, DEADLINE, POLL, SQLITE_DB};

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_gone(pid: u32, what: &str) {
    let start = Instant::now();
    while process_exists(pid) {
        assert!(
            start.elapsed() < DEADLINE,
            "{what} (pid {pid}) still exists"
        );
        std::thread::sleep(POLL);
    }
}

fn sql_ok(db: &DbSpec, sql: &str) -> String {
    db.sql(sql)
        .unwrap_or_else(|e| panic!("as {}: {sql}: {e}", db.user))
}

#[test]
fn private_server_isolates_databases_and_keeps_data_across_restarts_and_crashes() {
    if !mariadb::installed() {
        assert!(
            std::env::var_os(mariadb::ENV_REQUIRE).is_none(),
            "{} is set but mariadbd is not installed",
            mariadb::ENV_REQUIRE
        );
        eprintln!("skipped: mariadbd is not installed");
        return;
    }
    let mut server = MariaDb::start_private();
    assert!(server.is_running());
    let a = server.endpoint().create_database();
    let b = server.endpoint().create_database();
    assert_ne!(a.db_name, b.db_name);
    assert_ne!(a.user, b.user);
    assert_eq!(
        a.conf(),
        format!(
            r#"DB = [ BACKEND = "mysql", SERVER = "127.0.0.1", PORT = {}, USER = "{}", PASSWD = "{}", DB_NAME = "{}", CONNECTIONS = 8 ]"#,
            server.port(),
            a.user,
            a.password,
            a.db_name
        )
    );
    let collation = server.endpoint().sql_ok(&format!(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
        a.db_name
    ));
    assert_eq!(collation.trim(), "utf8mb4\tutf8mb4_bin");

    sql_ok(
        &a,
        "CREATE TABLE t (x INT PRIMARY KEY); INSERT INTO t VALUES (42)",
    );
    sql_ok(&b, "CREATE TABLE t (x INT PRIMARY KEY)");
    for sql in [
        format!("CREATE TABLE `{}`.u (x INT)", b.db_name),
        format!("INSERT INTO `{}`.t VALUES (1)", b.db_name),
        format!("SELECT * FROM `{}`.t", b.db_name),
    ] {
        let err = a.sql(&sql).expect_err(&sql);
        assert!(err.contains("denied"), "{sql}: {err}");
    }
    let wrong = DbSpec {
        password: "wrong".to_string(),
        ..a.clone()
    };
    let err = wrong.sql("SELECT 1").unwrap_err();
    assert!(err.contains("Access denied"), "{err}");

    server.restart();
    assert_eq!(sql_ok(&a, "SELECT x FROM t").trim(), "42");

    // A crash: the acknowledged insert survives InnoDB's recovery.
    sql_ok(&a, "INSERT INTO t VALUES (43)");
    let pid = server.pid().unwrap();
    server.kill();
    assert!(!server.is_running());
    assert!(!process_exists(pid), "mariadbd (pid {pid}) after kill()");
    server.start();
    assert_eq!(sql_ok(&a, "SELECT x FROM t ORDER BY x").trim(), "42\n43");

    server.stop();
    assert!(!server.is_running());
    server.start();
    assert_eq!(sql_ok(&b, "SELECT count(*) FROM t").trim(), "0");

    let pid = server.pid().unwrap();
    let dir = server.dir().to_path_buf();
    drop(server);
    assert!(!process_exists(pid), "mariadbd (pid {pid}) after drop");
    if std::env::var_os("ONEHA_KEEP_TEST_DIRS").is_none() {
        assert!(!dir.exists(), "{} after drop", dir.display());
    }
}

#[test]
fn shared_server_gives_each_caller_its_own_database() {
    if !mariadb::available("shared_server_gives_each_caller_its_own_database") {
        return;
    }
    let endpoint = mariadb::shared();
    assert!(std::ptr::eq(endpoint, mariadb::shared()));
    let a = endpoint.create_database();
    let b = endpoint.create_database();
    assert_ne!(a.db_name, b.db_name);
    sql_ok(&a, "CREATE TABLE t (x INT); INSERT INTO t VALUES (1)");
    assert_eq!(sql_ok(&a, "SELECT x FROM t").trim(), "1");
    assert!(b.sql(&format!("SELECT * FROM `{}`.t", a.db_name)).is_err());
    for db in [&a, &b] {
        endpoint.drop_database(db).unwrap();
        assert!(
            db.sql("SELECT 1").is_err(),
            "{} after drop_database",
            db.user
        );
    }
}

/// Run by [`private_server_dies_with_its_test_process`] in a process of its own: starts a private
/// server, prints its pid and directory, and waits to be killed.
#[test]
#[ignore = "a helper process of private_server_dies_with_its_test_process"]
fn helper_start_and_wait_to_be_killed() {
    let server = MariaDb::start_private();
    println!(
        "MARIADB {} {}",
        server.pid().unwrap(),
        server.dir().display()
    );
    std::thread::sleep(DEADLINE * 4);
    panic!("not killed");
}

#[test]
fn private_server_dies_with_its_test_process() {
    if !mariadb::installed() {
        assert!(
            std::env::var_os(mariadb::ENV_REQUIRE).is_none(),
            "{} is set but mariadbd is not installed",
            mariadb::ENV_REQUIRE
        );
        eprintln!("skipped: mariadbd is not installed");
        return;
    }
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_and_wait_to_be_killed",
            "--ignored",
            "--nocapture",
        ])
        .env_remove("ONEHA_KEEP_TEST_DIRS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(helper.stdout.take().unwrap());
    while !line.starts_with("MARIADB ") {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "the helper exited: {:?}", helper.wait());
    }
    let mut fields = line.split_whitespace().skip(1);
    let pid: u32 = fields.next().unwrap().parse().unwrap();
    let dir = fields.next().unwrap().to_string();
    assert!(process_exists(pid));
    // SIGKILL: no destructor runs in the helper, only its watchdog can stop mariadbd.
    helper.kill().unwrap();
    helper.wait().unwrap();
    wait_gone(pid, "mariadbd of a SIGKILLed test process");
    let start = Instant::now();
    while Path::new(&dir).exists() {
        assert!(start.elapsed() < DEADLINE, "{dir} still exists");
        std::thread::sleep(POLL);
    }
}

/// What `ONEHA_TEST_BACKEND` makes of a server's `oned.conf` (CI runs this file both ways).
#[test]
fn server_conf_follows_the_test_backend() {
    match test_backend() {
        Backend::Sqlite => {
            let server = Server::new(0);
            assert!(server.db.is_none());
            let conf = std::fs::read_to_string(server.conf_path()).unwrap();
            assert!(conf.contains(SQLITE_DB), "{conf}");
        }
        Backend::Mysql => {
            if !mariadb::available("server_conf_follows_the_test_backend") {
                return;
            }
            let server = Server::new(0);
            let db = server.db.clone().expect("a database on the MySQL backend");
            let conf = std::fs::read_to_string(server.conf_path()).unwrap();
            assert!(conf.contains(&db.conf()), "{conf}");
            assert!(!conf.contains("sqlite"), "{conf}");
            sql_ok(&db, "CREATE TABLE t (x INT)");
            // Every server of a zone gets a database of its own.
            let other = Server::new(1);
            let other_db = other.db.clone().unwrap();
            assert_ne!(other_db.db_name, db.db_name);
            // Dropped with its server, as an SQLite database is with its directory.
            drop(other);
            if std::env::var_os("ONEHA_KEEP_TEST_DIRS").is_none() {
                let left = mariadb::shared()
                    .sql_ok(&format!("SHOW DATABASES LIKE '{}'", other_db.db_name));
                assert_eq!(left.trim(), "");
                assert!(other_db.sql("SELECT 1").is_err(), "its user is gone too");
            }
        }
    }
}
