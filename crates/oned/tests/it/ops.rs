//! Operations: log retention and purge, a follower that fell out of the log window catching up
//! by itself, `onedb backup` / `restore` while the zone runs, and the guide's routes for adding a
//! server from a backup and recovering one with a backup plus `onezone server-reset`.

use std::path::Path;

use crate::zone::{allocate, LogRetention, Server, Zone, DEADLINE};

/// A short log window, purged every second.
fn short_log(_: usize, s: &mut Server) {
    s.log = LogRetention {
        limit_purge: 1000,
        log_retention: 20,
        log_purge_timeout_s: 1,
    };
}

fn onedb(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::onedb::run(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// `onedb` on server `s`'s state database: `args` is the command and its other arguments.
fn onedb_on(s: &Server, args: &[&str]) -> (i32, String, String) {
    let path = s.location().join("var/one.db");
    let target: Vec<String> = match &s.db {
        None => vec!["-s".into(), path.to_string_lossy().into_owned()],
        Some(m) => vec![
            "-S".into(),
            m.host.clone(),
            "-P".into(),
            m.port.to_string(),
            "-u".into(),
            m.user.clone(),
            "-p".into(),
            m.password.clone(),
            "-d".into(),
            m.db_name.clone(),
        ],
    };
    let mut all: Vec<&str> = vec![args[0]];
    all.extend(target.iter().map(String::as_str));
    all.extend(&args[1..]);
    onedb(&all)
}

fn log_has(s: &Server, text: &str) -> bool {
    std::fs::read_to_string(s.log_path()).is_ok_and(|l| l.contains(text))
}

fn sqlite_rows(path: &Path, sql: &str) -> i64 {
    let conn = sqlstore::rusqlite::Connection::open_with_flags(
        path,
        sqlstore::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn the_log_keeps_log_retention_records_and_a_follower_out_of_the_window_catches_up_by_itself() {
    let mut zone = Zone::bootstrap_custom(3, None, Some(Box::new(short_log)));
    let leader = zone.leader();
    let f = (0..3).find(|&i| i != leader).unwrap();
    eprintln!("--- stop follower {f}, write 200 records, let the leader purge its log");
    zone.servers[f].stop();
    let client = zone.servers[leader].client();
    for n in 0..200 {
        allocate(&client, &format!("w{n}")).unwrap();
    }
    let raft_db = zone.servers[leader].location().join("var/raft.db");
    zone.wait_until(
        DEADLINE,
        "the leader keeps about LOG_RETENTION records",
        || sqlite_rows(&raft_db, "SELECT count(*) FROM logdb") <= 40,
    );
    assert!(log_has(
        &zone.servers[leader],
        "purging obsolete log records"
    ));

    eprintln!("--- restart follower {f}: it receives a snapshot and follows");
    zone.servers[f].start();
    zone.wait_caught_up();
    assert!(
        log_has(&zone.servers[f], "installed snapshot"),
        "{}",
        zone.servers[f].tails()
    );
    allocate(&client, "after-catch-up").unwrap();
    zone.wait_caught_up();
    zone.wait_identical();
}

#[test]
fn a_server_added_from_a_leader_backup_follows_as_the_guide_says() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let client = zone.servers[leader].client();
    for n in 0..50 {
        allocate(&client, &format!("pre{n}")).unwrap();
    }

    eprintln!("--- onedb backup on the leader while it runs");
    let bck = zone.servers[leader].location().join("one.db.bck");
    let (code, out, err) = onedb_on(&zone.servers[leader], &["backup", bck.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for n in 0..20 {
        allocate(&client, &format!("post{n}")).unwrap();
    }

    eprintln!("--- restore it on a new server, server-add, start: it follows");
    let i = zone.prepare_server();
    std::fs::create_dir_all(zone.servers[i].location().join("var")).unwrap();
    let (code, out, err) = onedb_on(&zone.servers[i], &["restore", bck.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    zone.server_add(i);
    zone.servers[i].start();
    zone.wait_voter(i);
    zone.wait_caught_up();
    zone.wait_identical();
    assert!(
        !log_has(&zone.servers[i], "installed snapshot"),
        "the restored server needed a snapshot: {}",
        zone.servers[i].tails()
    );
}

#[test]
fn a_follower_restored_from_a_fresh_backup_and_reset_follows_again() {
    let mut zone = Zone::bootstrap_custom(3, None, Some(Box::new(short_log)));
    let leader = zone.leader();
    let f = (0..3).find(|&i| i != leader).unwrap();
    let client = zone.servers[leader].client();
    zone.servers[f].stop();
    for n in 0..100 {
        allocate(&client, &format!("gap{n}")).unwrap();
    }

    eprintln!("--- restore refuses while oned runs on that directory");
    let bck = zone.servers[leader].location().join("fresh.bck");
    let (code, _, err) = onedb_on(&zone.servers[leader], &["backup", bck.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = onedb_on(
        &zone.servers[leader],
        &["restore", "-f", bck.to_str().unwrap()],
    );
    assert_eq!(code, 255);
    assert!(err.starts_with("First stop OpenNebula."), "{err}");

    eprintln!(
        "--- the guide's route: restore the backup on the stopped follower, server-reset, start"
    );
    let (code, out, err) = onedb_on(&zone.servers[f], &["restore", "-f", bck.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    zone.onezone_ok(leader, &["server-reset", "0", &f.to_string()]);
    zone.servers[f].start();
    zone.wait_caught_up();
    allocate(&client, "after-recovery").unwrap();
    zone.wait_caught_up();
    zone.wait_identical();
}

fn serversync(zone: &Zone, on: usize, from: &str, db: bool) -> Result<String, String> {
    let local = cli::serversync::Local {
        zone_id: 0,
        server_id: zone.servers[on].id,
        tls: None,
        ..cli::serversync::Local::at(zone.servers[on].location())
    };
    let mut out = Vec::new();
    cli::serversync::run(&local, from, db, false, &mut out)
        .map(|()| String::from_utf8(out).unwrap())
}

#[test]
fn serversync_copies_the_guides_files_keeps_federation_and_replaces_the_db() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let other = (0..3).find(|&i| i != leader).unwrap();
    let etc = |i: usize| zone.servers[i].location().join("etc");

    eprintln!("--- configuration differs on server {leader}");
    std::fs::write(
        etc(leader).join("monitord.conf"),
        "MONITORING_INTERVAL = 30\n",
    )
    .unwrap();
    std::fs::create_dir_all(etc(leader).join("hm")).unwrap();
    std::fs::write(etc(leader).join("hm/hmrc"), "HOOKS=1\n").unwrap();
    let leader_conf = std::fs::read_to_string(etc(leader).join("oned.conf")).unwrap();
    std::fs::write(
        etc(leader).join("oned.conf"),
        format!("{leader_conf}DEFAULT_UMASK = 177\n"),
    )
    .unwrap();
    let before = std::fs::read_to_string(etc(other).join("oned.conf")).unwrap();

    eprintln!("--- an unknown server or a wrong zone key changes nothing");
    let err = serversync(&zone, other, "no-such-server", false).unwrap_err();
    assert!(err.contains("is not in zone 0"), "{err}");
    let key = zone.servers[other].location().join("var/.one/one_key");
    let good_key = std::fs::read_to_string(&key).unwrap();
    std::fs::write(&key, "wrong-key").unwrap();
    let err = serversync(&zone, other, &leader.to_string(), false).unwrap_err();
    assert!(err.contains("refused"), "{err}");
    std::fs::write(&key, good_key).unwrap();
    assert!(!etc(other).join("monitord.conf").exists());
    assert_eq!(
        std::fs::read_to_string(etc(other).join("oned.conf")).unwrap(),
        before
    );

    eprintln!("--- serversync {leader} on server {other}");
    let out = serversync(&zone, other, &format!("server-{leader}"), false).unwrap();
    assert!(out.contains("oned.conf has been replaced by"), "{out}");
    assert!(out.contains("Restart opennebula"), "{out}");
    assert_eq!(
        std::fs::read_to_string(etc(other).join("monitord.conf")).unwrap(),
        "MONITORING_INTERVAL = 30\n"
    );
    assert_eq!(
        std::fs::read_to_string(etc(other).join("hm/hmrc")).unwrap(),
        "HOOKS=1\n"
    );
    let synced = std::fs::read_to_string(etc(other).join("oned.conf")).unwrap();
    assert!(synced.contains("DEFAULT_UMASK = 177"), "{synced}");
    assert!(
        synced.contains(&format!("SERVER_ID = {other}")),
        "the local FEDERATION stays: {synced}"
    );
    let copies = std::fs::read_dir(etc(other))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("oned.conf.")
        })
        .count();
    assert_eq!(copies, 1, "a dated copy of the replaced oned.conf");
    let again = serversync(&zone, other, &leader.to_string(), false).unwrap();
    assert!(again.contains("Everything seems synchronized"), "{again}");

    eprintln!("--- --db refuses while oned runs, then replaces the stopped server's database");
    let err = serversync(&zone, other, &leader.to_string(), true).unwrap_err();
    assert!(err.contains("stop it first"), "{err}");
    zone.servers[other].stop();
    let client = zone.servers[leader].client();
    for n in 0..30 {
        allocate(&client, &format!("while-down-{n}")).unwrap();
    }
    let out = serversync(&zone, other, &leader.to_string(), true).unwrap();
    assert!(out.contains("database has been replaced"), "{out}");
    zone.servers[other].start();
    zone.wait_caught_up();
    zone.wait_identical();
}

/// In a zone the state database is written without an fsync per apply (the log is durable), so
/// after a power loss it can be behind, even behind the purged log. This puts an old copy of a
/// follower's database back (what a power loss could leave) after its log was purged: the
/// server restores its own snapshot, catches up from the log, and matches the others.
#[test]
fn a_state_database_behind_the_purged_log_recovers_from_the_local_snapshot() {
    let mut zone = Zone::bootstrap_custom(3, None, Some(Box::new(short_log)));
    let leader = zone.leader();
    let f = (0..3).find(|&i| i != leader).unwrap();
    let client = zone.servers[leader].client();
    let old = zone.servers[f].location().join("old-one.db");
    let (code, _, err) = onedb_on(&zone.servers[f], &["backup", old.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for n in 0..150 {
        allocate(&client, &format!("later{n}")).unwrap();
    }
    let raft_db = zone.servers[f].location().join("var/raft.db");
    zone.wait_until(DEADLINE, "the follower purged its own log", || {
        log_has(&zone.servers[f], "purging obsolete log records")
            && sqlite_rows(&raft_db, "SELECT count(*) FROM logdb") <= 40
    });
    zone.servers[f].kill();
    let (code, _, err) = onedb_on(&zone.servers[f], &["restore", "-f", old.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    zone.servers[f].start();
    assert!(
        log_has(&zone.servers[f], "restored the local snapshot"),
        "{}",
        zone.servers[f].tails()
    );
    zone.wait_caught_up();
    allocate(&client, "after-recovery").unwrap();
    zone.wait_caught_up();
    zone.wait_identical();
}
