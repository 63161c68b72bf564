//! Operations: log retention and purge, a follower that fell out of the log window catching up
//! by itself, `onedb backup` / `restore` while the zone runs, and the guide's routes for adding a
//! server from a backup and recovering one with a backup plus `onezone server-reset`.

use std::path::{Path, PathBuf};

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

fn db(s: &Server) -> PathBuf {
    s.location().join("var/one.db")
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

/// Waits until every running member reports the same database checksum.
fn wait_identical(zone: &Zone) {
    zone.wait_until(
        DEADLINE,
        "every server has the same database checksum",
        || {
            let sums: Vec<Option<String>> = zone
                .up()
                .into_iter()
                .map(|i| {
                    let xml = zone.servers[i]
                        .client()
                        .call_xml("oneha.db.checksum", vec![])
                        .ok()?;
                    let e = cli::xml::Element::parse(&xml).ok()?;
                    Some(e.text_of("SHA256").ok()?.to_string())
                })
                .collect();
            sums.iter().all(|s| s.is_some() && *s == sums[0])
        },
    );
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
    wait_identical(&zone);
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
    let (code, out, err) = onedb(&[
        "backup",
        "-s",
        db(&zone.servers[leader]).to_str().unwrap(),
        bck.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for n in 0..20 {
        allocate(&client, &format!("post{n}")).unwrap();
    }

    eprintln!("--- restore it on a new server, server-add, start: it follows");
    let i = zone.prepare_server();
    std::fs::create_dir_all(zone.servers[i].location().join("var")).unwrap();
    let (code, out, err) = onedb(&[
        "restore",
        "-s",
        db(&zone.servers[i]).to_str().unwrap(),
        bck.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    zone.server_add(i);
    zone.servers[i].start();
    zone.wait_voter(i);
    zone.wait_caught_up();
    wait_identical(&zone);
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
    let (code, _, err) = onedb(&[
        "backup",
        "-s",
        db(&zone.servers[leader]).to_str().unwrap(),
        bck.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = onedb(&[
        "restore",
        "-f",
        "-s",
        db(&zone.servers[leader]).to_str().unwrap(),
        bck.to_str().unwrap(),
    ]);
    assert_eq!(code, 255);
    assert!(
        err.starts_with("First stop OpenNebula. Lock file found"),
        "{err}"
    );

    eprintln!(
        "--- the guide's route: restore the backup on the stopped follower, server-reset, start"
    );
    let (code, out, err) = onedb(&[
        "restore",
        "-f",
        "-s",
        db(&zone.servers[f]).to_str().unwrap(),
        bck.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    zone.onezone_ok(leader, &["server-reset", "0", &f.to_string()]);
    zone.servers[f].start();
    zone.wait_caught_up();
    allocate(&client, "after-recovery").unwrap();
    zone.wait_caught_up();
    wait_identical(&zone);
}
