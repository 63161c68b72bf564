//! For tests of this and other crates: a fresh MySQL database on the server CI starts.

use crate::sql::{Conn, Location, MysqlConfig};

/// A MySQL database to test against: `ONEHA_TEST_MYSQL` (`host:port`, user root without a
/// password, as `.ci/run` starts one) and a fresh database on it. `None` (the test is skipped)
/// when unset, unless `ONEHA_REQUIRE_MYSQL` says CI expects it.
pub fn fresh_mysql_database() -> Option<Location> {
    let Ok(addr) = std::env::var("ONEHA_TEST_MYSQL") else {
        assert!(
            std::env::var_os("ONEHA_REQUIRE_MYSQL").is_none(),
            "ONEHA_REQUIRE_MYSQL is set but ONEHA_TEST_MYSQL is not"
        );
        eprintln!("ONEHA_TEST_MYSQL unset: MySQL part skipped");
        return None;
    };
    let (host, port) = addr.rsplit_once(':').expect("ONEHA_TEST_MYSQL");
    let root = MysqlConfig {
        server: host.to_string(),
        port: port.parse().expect("ONEHA_TEST_MYSQL"),
        user: "root".into(),
        passwd: String::new(),
        db_name: "mysql".into(),
        connections: 4,
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "sqlstore_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        rand_suffix()
    );
    let c = Conn::open(&Location::Mysql(root.clone()), false).expect("ONEHA_TEST_MYSQL");
    c.execute_batch(&format!(
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
    ))
    .expect("ONEHA_TEST_MYSQL");
    Some(Location::Mysql(MysqlConfig {
        db_name: name,
        ..root
    }))
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0)
}

/// Bootstraps `c` as a first start would (fixed hashes, for tests that compare states).
pub fn bootstrap(c: &mut Conn) {
    crate::bootstrap(
        c,
        &crate::BootstrapParams {
            oneadmin_name: "oneadmin",
            oneadmin_password_hash: "h1",
            serveradmin_password_hash: "h2",
            zone_endpoint: "http://localhost:2633/RPC2",
            datastore_templates: ["", "", ""],
            token_passwords: ["0a", "1b"],
        },
    )
    .expect("bootstrap");
}
