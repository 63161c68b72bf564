//! After a restart a server serves no plain read from its own state database until that state
//! has applied the log it found at start (issue 16: the committed log id is saved lazily, and in
//! a zone the state database is written without fsync, so a server can come back behind what
//! it served before). Until then its reads are served as leader reads.

use std::path::{Path, PathBuf};

use crate::zone::{allocate, one_error, user_name, Zone, DEADLINE, NO_EXISTS};

const STATE_FILES: [&str; 3] = ["one.db", "one.db-wal", "one.db-shm"];

fn var(zone: &Zone, i: usize) -> PathBuf {
    zone.servers[i].location().join("var")
}

/// Copies the state database's files (the server is stopped) from `from` to `to`.
fn copy_state(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in STATE_FILES {
        let _ = std::fs::remove_file(to.join(f));
        if from.join(f).exists() {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }
}

/// A follower's state database goes back to an older copy and its log forgets the committed
/// log id (what a power cut can leave: the id is written lazily), while its log still holds
/// the newer write it served. Started alone it must not answer that write's absence; once the
/// zone is back it serves the write.
#[test]
fn a_restarted_server_behind_its_own_log_answers_no_read_older_than_before() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let f = (leader + 1) % 3;
    let before = allocate(&zone.servers[leader].client(), "before-the-cut").unwrap();
    let follower = zone.servers[f].client();
    zone.wait_until(DEADLINE, "the follower serves the first write", || {
        user_name(&follower, before).is_some()
    });

    eprintln!("--- keep a copy of the follower's state database");
    zone.servers[f].stop();
    let old = zone.servers[f].location().join("old-state");
    copy_state(&var(&zone, f), &old);
    zone.servers[f].start();

    let after = allocate(&zone.servers[leader].client(), "after-the-copy").unwrap();
    zone.wait_until(DEADLINE, "the follower serves the second write", || {
        user_name(&follower, after).as_deref() == Some("after-the-copy")
    });

    eprintln!("--- stop the zone; the follower's state goes back, its committed id is lost");
    for s in &mut zone.servers {
        s.stop();
    }
    copy_state(&old, &var(&zone, f));
    let raft_db = var(&zone, f).join("raft.db");
    let log = sqlstore::rusqlite::Connection::open(&raft_db).unwrap();
    log.execute("DELETE FROM raft_meta WHERE key = 'committed'", [])
        .unwrap();
    drop(log);

    eprintln!("--- the follower alone does not answer from its stale state");
    zone.servers[f].start();
    let read = follower.call_xml(
        wire::method::USER_INFO,
        vec![xmlrpc::Value::Int(after as i32)],
    );
    match read {
        Ok(xml) => assert!(xml.contains("after-the-copy"), "{xml}"),
        Err(e) => {
            let (code, message) = one_error(Err::<(), _>(e));
            assert_ne!(code, NO_EXISTS, "a read older than before: {message}");
        }
    }

    eprintln!("--- with the zone back, the follower serves the write again");
    for (i, s) in zone.servers.iter_mut().enumerate() {
        if i != f {
            s.spawn();
        }
    }
    for (i, s) in zone.servers.iter_mut().enumerate() {
        if i != f {
            s.wait_serving();
        }
    }
    zone.wait_until(
        DEADLINE,
        "the follower serves the second write again",
        || user_name(&follower, after).as_deref() == Some("after-the-copy"),
    );
    zone.wait_caught_up();
    zone.wait_identical();
}

/// `onedb` on a server's SQLite state database.
fn onedb(zone: &Zone, i: usize, verb: &str, args: &[&str]) {
    let db = var(zone, i).join("one.db");
    let mut all = vec![verb.to_string(), "-s".into(), db.to_string_lossy().into()];
    all.extend(args.iter().map(|a| a.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::onedb::run(&all, &mut out, &mut err);
    assert_eq!(code, 0, "onedb {verb}: {}", String::from_utf8_lossy(&err));
}

/// The whole zone is killed at once, so the leader comes back still leading (openraft restores
/// a leader whose vote it had committed, with no election), its state database older than the
/// writes it acknowledged and its committed id lost. A leader read must still see them: its
/// read index waits for the log it found at start.
#[test]
fn a_leader_that_resumes_after_a_restart_serves_no_leader_read_older_than_its_writes() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    allocate(&zone.servers[leader].client(), "before-the-backup").unwrap();
    let old = zone.servers[leader].location().join("old-one.db");
    onedb(&zone, leader, "backup", &[old.to_str().unwrap()]);
    let after = allocate(&zone.servers[leader].client(), "after-the-backup").unwrap();

    eprintln!("--- SIGKILL every server; the leader's state goes back, its committed id is lost");
    for s in &mut zone.servers {
        s.kill();
    }
    onedb(&zone, leader, "restore", &["-f", old.to_str().unwrap()]);
    let log = sqlstore::rusqlite::Connection::open(var(&zone, leader).join("raft.db")).unwrap();
    log.execute("DELETE FROM raft_meta WHERE key = 'committed'", [])
        .unwrap();
    drop(log);
    for s in &mut zone.servers {
        s.spawn();
    }
    for s in &mut zone.servers {
        s.wait_serving();
    }

    eprintln!("--- leader reads through the old leader never miss the acknowledged write");
    let client = zone.servers[leader]
        .client()
        .with_header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE);
    zone.wait_until(
        DEADLINE,
        "a leader read sees the acknowledged write",
        || match client.call_xml(
            wire::method::USER_INFO,
            vec![xmlrpc::Value::Int(after as i32)],
        ) {
            Ok(xml) => {
                assert!(xml.contains("after-the-backup"), "{xml}");
                true
            }
            Err(e) => {
                let (code, message) = one_error(Err::<(), _>(e));
                assert_ne!(
                    code, NO_EXISTS,
                    "a leader read older than a write: {message}"
                );
                false
            }
        },
    );
    zone.wait_caught_up();
    zone.wait_identical();
}
