//! The state on MySQL/MariaDB: a zone refuses a server of the other backend, waits out a lost
//! database server without applying anything half-way, and `onedb` moves state between
//! backends and into the `mysql` client's hands.

use std::time::Duration;

use testkit::mariadb::{self, MariaDb};

use crate::zone::{allocate, test_backend, user_name, Backend, Zone, DEADLINE, INTERNAL};

fn log_has(zone: &Zone, i: usize, text: &str) -> bool {
    std::fs::read_to_string(zone.servers[i].log_path()).is_ok_and(|l| l.contains(text))
}

/// A server whose oned.conf names the other backend than the zone's is refused when it joins,
/// with both named, on both sides; the zone goes on writing.
#[test]
fn a_server_on_another_backend_is_refused_when_it_joins() {
    if !mariadb::available("a_server_on_another_backend_is_refused_when_it_joins") {
        return;
    }
    let mut zone = Zone::bootstrap(1);
    let (zone_backend, other) = match test_backend() {
        Backend::Sqlite => ("sqlite", "mysql"),
        Backend::Mysql => ("mysql", "sqlite"),
    };
    let i = zone.prepare_server();
    zone.servers[i].db = match test_backend() {
        Backend::Sqlite => Some(mariadb::shared().create_database()),
        Backend::Mysql => None,
    };
    zone.servers[i].write_conf();
    zone.server_add(i);
    // Not `start`: with no state from the leader it has no user to answer calls as.
    zone.servers[i].spawn();
    let refused =
        format!("server {i} keeps its state in {other}, but server 0 keeps it in {zone_backend}");
    zone.wait_until(
        DEADLINE,
        "the new server refuses the leader's calls",
        || log_has(&zone, i, &refused),
    );
    zone.wait_until(
        DEADLINE,
        "the leader says why the server cannot join",
        || log_has(&zone, 0, &format!("server {i} refuses to join: {refused}")),
    );
    let id = allocate(&zone.servers[0].client(), "still-writing").unwrap();
    assert_eq!(
        user_name(&zone.servers[0].client(), id).as_deref(),
        Some("still-writing")
    );
    let users = crate::zone::user_pool(&zone.servers[0].client()).unwrap();
    assert!(users.iter().any(|u| u == "still-writing"), "{users:?}");
}

/// A zone of three servers, each with its own database on `db`.
fn zone_on(db: &MariaDb) -> Zone {
    let endpoint = db.endpoint().clone();
    Zone::bootstrap_custom(
        3,
        None,
        Some(Box::new(move |_, s| {
            s.db = Some(endpoint.create_database());
        })),
    )
}

/// Every server's database on one MariaDB that stops under the running zone: writes are refused
/// with the reason (raftstatus says it too) while it is down, nothing is lost or applied
/// half-way, and the zone goes on by itself once it is back.
#[test]
fn a_zone_on_mariadb_waits_out_a_database_restart() {
    if !mariadb::available("a_zone_on_mariadb_waits_out_a_database_restart") {
        return;
    }
    let mut db = MariaDb::start_private();
    let zone = zone_on(&db);
    let leader = zone.leader();
    let client = zone.servers[leader].client();
    for n in 0..10 {
        allocate(&client, &format!("before-{n}")).unwrap();
    }
    zone.wait_caught_up();

    eprintln!("--- stop MariaDB under the zone");
    db.stop();
    // The first write commits in the log but cannot be applied: its outcome is unknown.
    let first = allocate(&client, "while-down");
    eprintln!("first write while the database is down: {first:?}");
    zone.wait_until(DEADLINE, "calls fail at once, naming the database", || {
        let (code, message) = crate::zone::one_error(allocate(&client, "refused"));
        code == INTERNAL && message.contains("database")
    });
    // oneadmin, verified before, still reads the zone's status, which says what is wrong.
    zone.wait_until(DEADLINE, "raftstatus names the lost database", || {
        zone.servers[leader]
            .client_with_timeout(Duration::from_secs(5))
            .call_xml(wire::method::ZONE_RAFTSTATUS, vec![])
            .is_ok_and(|raft| raft.contains("<DB_ERROR>state database"))
    });
    assert!(log_has(&zone, leader, "lost the state database"));

    eprintln!("--- start MariaDB again: the zone applies what committed and takes writes");
    db.start();
    let back = std::time::Instant::now();
    loop {
        match allocate(&client, "after-restart") {
            Ok(_) => break,
            Err(e) if back.elapsed() > DEADLINE => zone.fail(&format!(
                "timed out after {DEADLINE:?} waiting until a write succeeds again; the last \
                 one: {e:?}\n{}",
                db.report()
            )),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    zone.wait_caught_up();
    zone.wait_identical();
    let users = crate::zone::user_pool(&client).unwrap();
    assert!(users.iter().any(|u| u == "after-restart"), "{users:?}");
    if first.is_ok() {
        assert!(users.iter().any(|u| u == "while-down"), "{users:?}");
    }
    let raft = zone.servers[leader]
        .client()
        .call_xml(wire::method::ZONE_RAFTSTATUS, vec![]);
    assert!(!raft.unwrap().contains("DB_ERROR"));
}

/// A lock held on a follower's database past the server's lock wait: the follower's apply
/// fails with MySQL's lock wait timeout, a condition of the database and not of the entries,
/// so it waits that out as it waits out a lost server, on a new connection, and then applies
/// the same entries as the others. The zone takes writes throughout on its other two servers.
#[test]
fn a_follower_waits_out_a_lock_held_on_its_database() {
    if !mariadb::available("a_follower_waits_out_a_lock_held_on_its_database") {
        return;
    }
    let db = MariaDb::start_private();
    // New connections, the servers' included, give up a lock wait after a second.
    db.endpoint()
        .sql_ok("SET GLOBAL innodb_lock_wait_timeout = 1");
    let zone = zone_on(&db);
    let leader = zone.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let client = zone.servers[leader].client();
    allocate(&client, "before").unwrap();
    zone.wait_caught_up();

    eprintln!("--- lock the row every apply of server {follower} updates, for 4 lock waits");
    let spec = zone.servers[follower].db.clone().unwrap();
    let holder = std::thread::spawn(move || {
        spec.sql(
            "START TRANSACTION; SELECT last_applied FROM raft_sm_meta WHERE id = 1 FOR UPDATE; \
             DO SLEEP(4); COMMIT",
        )
    });
    zone.wait_until(DEADLINE, "the row is locked", || {
        assert!(
            !holder.is_finished(),
            "the lock holder ended before its sleep"
        );
        db.endpoint()
            .sql("SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'DO SLEEP%'")
            .is_ok_and(|n| n.trim() == "1")
    });
    for n in 0..5 {
        allocate(&client, &format!("during-{n}")).unwrap();
    }
    zone.wait_until(DEADLINE, "the follower says why it waits", || {
        log_has(&zone, follower, "the state database cannot apply")
    });
    holder.join().unwrap().unwrap();
    zone.wait_caught_up();
    zone.wait_identical();
    assert!(log_has(&zone, follower, "applying again"));
    let users = crate::zone::user_pool(&zone.servers[follower].client()).unwrap();
    assert!(users.iter().any(|u| u == "during-4"), "{users:?}");
}
