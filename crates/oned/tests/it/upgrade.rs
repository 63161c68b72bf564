//! Upgrades across a log format change (ARCHITECTURE.md, "Log format and upgrades"): a zone of
//! the previous release (log format 0) upgraded by a full restart reads its own log, snapshots
//! and state and goes on; a server left on format 0 is kept out instead of misreading entries.
//! Needs the previous release's binary: `ONEHA_OLD_ONED=/path/to/oned` (built from a8976b7,
//! in its own target dir).

use std::path::PathBuf;

use consensus::log_format::FORMAT;
use testkit::zone::{allocate, user_pool, Zone, DEADLINE};

fn old_oned() -> PathBuf {
    std::env::var_os("ONEHA_OLD_ONED")
        .map(PathBuf::from)
        .expect("ONEHA_OLD_ONED: the oned binary of the previous release (log format 0)")
}

#[test]
#[ignore = "needs ONEHA_OLD_ONED, an oned of log format 0 (commit a8976b7)"]
fn issue_11_a_format_0_zone_upgrades_by_full_restart_and_a_server_left_on_format_0_is_kept_out() {
    let old = old_oned();
    let mut zone = Zone::bootstrap_custom(
        3,
        None,
        Some(Box::new(move |_, s| s.oned = Some(old.clone()))),
    );

    eprintln!("--- the format 0 zone commits writes");
    let leader = zone.leader();
    for n in 0..10 {
        allocate(&zone.servers[leader].client(), &format!("before-{n}")).unwrap();
    }
    zone.wait_identical();

    eprintln!("--- stop every server; upgrade all but one; start them all");
    let back = (0..3).find(|&i| i != leader).unwrap();
    for s in &mut zone.servers {
        s.stop();
    }
    for (i, s) in zone.servers.iter_mut().enumerate() {
        if i != back {
            s.oned = None;
        }
    }
    for s in &mut zone.servers {
        s.start();
    }
    let before = zone.servers[back].raft_status().unwrap().log_index;

    eprintln!("--- the two upgraded servers read their format 0 files and commit; the format 0 server is kept out");
    let leader = zone.leader();
    assert_ne!(leader, back, "the format 0 server was elected");
    for n in 0..10 {
        allocate(&zone.servers[leader].client(), &format!("after-{n}")).unwrap();
    }
    let leader_log = zone.servers[leader].raft_status().unwrap().log_index;
    assert!(leader_log > before, "the leader wrote nothing new");
    // The leader has tried to send it the new entries, and says why that failed.
    let log_path = zone.servers[leader].log_path();
    let said = format!("does not speak log format {FORMAT}");
    zone.wait_until(
        DEADLINE,
        &format!("the leader logs that the server {said}"),
        || std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains(&said)),
    );
    let status = zone.servers[back].raft_status().unwrap();
    assert!(
        status.log_index <= before,
        "the format 0 server took entries of format {FORMAT}: {status:?} (was at {before})"
    );
    let users = user_pool(&zone.servers[back].client()).unwrap();
    assert!(
        !users.iter().any(|u| u.starts_with("after-")),
        "the format 0 server applied format {FORMAT} writes: {users:?}"
    );
    assert_eq!(
        zone.leader(),
        leader,
        "the format 0 server disrupted the leader"
    );

    eprintln!("--- upgraded as well, it catches up");
    zone.servers[back].stop();
    zone.servers[back].oned = None;
    zone.servers[back].start();
    zone.wait_identical();
    for (i, s) in zone.servers.iter().enumerate() {
        let users = user_pool(&s.client()).unwrap();
        for n in 0..10 {
            for name in [format!("before-{n}"), format!("after-{n}")] {
                assert!(users.contains(&name), "server {i} lacks {name}: {users:?}");
            }
        }
    }
}
