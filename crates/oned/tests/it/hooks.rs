//! RAFT_LEADER_HOOK and RAFT_FOLLOWER_HOOK with a recording script: when each runs, and that a
//! new leader takes writes only after its leader hook has finished.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::zone::{allocate, Server, Zone, DEADLINE, LEADER};

/// Appends `<action> <wall clock ns>` to `$ONE_LOCATION/hooks.log`; the leader action first
/// sleeps for its second argument (seconds).
const RECORDER: &str = r#"#!/bin/sh
if [ "$1" = leader ]; then sleep "$2"; fi
echo "$1 $(date +%s%N)" >> "$ONE_LOCATION/hooks.log"
"#;

const HOOKS: &str = r#"RAFT_LEADER_HOOK = [ COMMAND = "record.sh", ARGUMENTS = "leader 1" ]
RAFT_FOLLOWER_HOOK = [ COMMAND = "record.sh", ARGUMENTS = "follower" ]
"#;

fn setup(_: usize, s: &mut Server) {
    use std::os::unix::fs::PermissionsExt;
    s.extra_conf = HOOKS.to_string();
    let dir = s.location().join("var/remotes/hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("record.sh");
    std::fs::write(&script, RECORDER).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The hooks server `i` ran, in order, with their end times (ns since the epoch).
fn ran(zone: &Zone, i: usize) -> Vec<(String, u128)> {
    let text =
        std::fs::read_to_string(zone.servers[i].location().join("hooks.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let (action, ts) = l.split_once(' ').unwrap();
            (action.to_string(), ts.parse().unwrap())
        })
        .collect()
}

fn actions(zone: &Zone, i: usize) -> Vec<String> {
    ran(zone, i).into_iter().map(|(a, _)| a).collect()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn hooks_run_at_start_on_election_and_on_shutdown_and_writes_wait_for_the_leader_hook() {
    let mut zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    assert_eq!(leader, 0);
    zone.wait_until(
        DEADLINE,
        "server 0 ran its follower then leader hook",
        || actions(&zone, 0) == ["follower", "leader"],
    );
    for i in [1, 2] {
        zone.wait_until(DEADLINE, "followers ran their follower hook once", || {
            actions(&zone, i) == ["follower"]
        });
    }

    eprintln!("--- kill the leader: the next one runs its leader hook before taking writes");
    zone.servers[0].kill();
    let new = zone.wait_for(DEADLINE, "a new leader", || {
        [1, 2].into_iter().find(|&i| {
            zone.servers[i]
                .raft_status()
                .is_some_and(|r| r.state == LEADER)
        })
    });
    let other = 3 - new;
    allocate(&zone.servers[new].client(), "after-failover").unwrap();
    let acked = now_ns();
    let new_ran = ran(&zone, new);
    let (action, hook_done) = new_ran.last().unwrap();
    assert_eq!(action, "leader", "{new_ran:?}");
    assert!(
        *hook_done <= acked,
        "a write was acknowledged before the leader hook finished"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        actions(&zone, other),
        ["follower"],
        "no hook on candidate -> follower"
    );

    eprintln!("--- an orderly stop of the leader runs its follower hook");
    zone.servers[new].stop();
    // Handing leadership over at the stop ends its leadership first (the hook task may run the
    // follower hook then), and the stop runs it again.
    let ran = actions(&zone, new);
    assert_eq!(ran[..3], ["follower", "leader", "follower"], "{ran:?}");
    assert!(ran[3..].iter().all(|a| a == "follower"), "{ran:?}");
}

#[test]
fn a_leader_cut_off_from_the_majority_steps_down_and_runs_its_follower_hook() {
    let net = testkit::proxy::Network::new();
    let zone = Zone::bootstrap_custom(3, Some(net.clone()), Some(Box::new(setup)));
    let leader = zone.leader();
    zone.wait_until(DEADLINE, "the leader ran its leader hook", || {
        actions(&zone, leader).last().map(String::as_str) == Some("leader")
    });
    let others: Vec<u64> = (0..3).filter(|&i| i != leader).map(|i| i as u64).collect();
    eprintln!("--- cut the leader {leader} off from {others:?}");
    let cut = std::time::Instant::now();
    net.partition(&[leader as u64], &others);
    zone.wait_until(
        DEADLINE,
        "the cut-off leader reports follower and ran its follower hook",
        || {
            zone.servers[leader]
                .raft_status()
                .is_some_and(|r| r.state == crate::zone::FOLLOWER)
                && actions(&zone, leader).last().map(String::as_str) == Some("follower")
        },
    );
    eprintln!(
        "stepped down {} ms after the cut",
        cut.elapsed().as_millis()
    );
    let (code, message) = crate::zone::one_error(allocate(
        &zone.servers[leader].client_with_timeout(Duration::from_secs(30)),
        "on-the-minority",
    ));
    assert_eq!(code, crate::zone::INTERNAL, "{message}");

    eprintln!("--- heal: one leader, and the old one follows without running a hook");
    net.heal();
    let now = zone.leader();
    zone.wait_caught_up();
    if now != leader {
        assert_eq!(
            actions(&zone, leader).last().map(String::as_str),
            Some("follower")
        );
    }
}
