//! Zone life cycle: bootstrap as in the guide, growth, failures of followers
//! and leaders, restarts, and server removal.

use std::time::{Duration, Instant};

use xmlrpc::Value;

use crate::zone::{
    allocate, one_error, user_name, user_pool, Zone, DEADLINE, ELECTION_TIMEOUT, FOLLOWER,
    INTERNAL, LEADER, SOLO,
};

/// Lines of the `HA & FEDERATION SYNC STATUS` table of `onezone show`.
fn ha_rows(show: &str) -> Vec<Vec<String>> {
    show.lines()
        .skip_while(|l| *l != "HA & FEDERATION SYNC STATUS")
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Waits until every server in `on` answers `one.user.info(id)` with `name`.
fn wait_user_everywhere(zone: &Zone, on: &[usize], id: i64, name: &str) {
    for &i in on {
        let client = zone.servers[i].client();
        zone.wait_until(
            DEADLINE,
            &format!("server {i} serves user {id} ({name})"),
            || user_name(&client, id).as_deref() == Some(name),
        );
    }
}

#[test]
fn solo_server_bootstraps_and_reports_solo_status() {
    let zone = Zone::solo();
    let s0 = &zone.servers[0];
    let raft = s0.raft_status().unwrap();
    assert_eq!(
        (raft.server_id, raft.state, raft.log_index),
        (-1, SOLO, -1),
        "{raft:?}"
    );

    eprintln!("--- onezone server-add 0 --name server-0");
    let rpc = s0.endpoint();
    zone.onezone_ok(0, &["server-add", "0", "--name", "server-0", "--rpc", &rpc]);
    let show = zone.onezone_ok(0, &["show", "0"]);
    eprintln!("{show}");
    let server_row = format!(" 0 server-0        {rpc}");
    assert!(
        show.lines().any(|l| l == server_row),
        "no {server_row:?} in\n{show}"
    );
    // The guide's row, character for character.
    let solo_row = " 0 server-0        solo       0          -1         0          -1    -1";
    assert!(
        show.lines().any(|l| l == solo_row),
        "no {solo_row:?} in\n{show}"
    );
    let raft = s0.raft_status().unwrap();
    assert_eq!((raft.server_id, raft.state), (-1, SOLO), "{raft:?}");
}

#[test]
fn restarted_with_server_id_0_becomes_leader_at_term_1_or_more() {
    let mut zone = Zone::solo();
    eprintln!("--- create a user while solo");
    let solo_user = allocate(&zone.servers[0].client(), "made-while-solo").unwrap();

    zone.promote_solo_to_leader();
    let raft = zone.servers[0].raft_status().unwrap();
    assert_eq!((raft.server_id, raft.state), (0, LEADER), "{raft:?}");
    assert!(raft.term >= 1, "{raft:?}");
    let show = zone.onezone_ok(0, &["show", "0"]);
    eprintln!("{show}");
    let rows = ha_rows(&show);
    assert_eq!(rows.len(), 1, "{show}");
    assert_eq!(rows[0][..3], ["0", "server-0", "leader"], "{show}");
    assert!(rows[0][3].parse::<i64>().unwrap() >= 1, "{show}");

    eprintln!("--- the solo data survived and is writable through Raft");
    let s0 = zone.servers[0].client();
    assert_eq!(
        user_name(&s0, solo_user).as_deref(),
        Some("made-while-solo")
    );
    let leader_user = allocate(&s0, "made-by-leader").unwrap();

    eprintln!("--- a new server receives the solo data too");
    let i = zone.add_server();
    wait_user_everywhere(&zone, &[i], solo_user, "made-while-solo");
    wait_user_everywhere(&zone, &[i], leader_user, "made-by-leader");
}

/// A zone of one voter restarted takes writes again at once, though its server does not take its
/// leadership back at start (the log reads its own committed vote as not committed): openraft
/// elects the only voter on its first tick, not after an election timeout, which here is set far
/// beyond the wait's deadline.
#[test]
fn a_restarted_zone_of_one_voter_leads_again_without_waiting_an_election_timeout() {
    let mut zone = Zone::solo();
    zone.promote_solo_to_leader();
    let before = allocate(&zone.servers[0].client(), "before-restart").unwrap();
    let term = zone.servers[0].raft_status().unwrap().term;

    zone.servers[0].stop();
    let conf_path = zone.servers[0].conf_path();
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let slow = conf.replace("ELECTION_TIMEOUT_MS = 1000", "ELECTION_TIMEOUT_MS = 120000");
    assert_ne!(
        conf, slow,
        "the test configuration names its election timeout"
    );
    std::fs::write(&conf_path, slow).unwrap();
    zone.servers[0].start();

    // 30 s, a quarter of the election timeout.
    zone.wait_until(DEADLINE, "the restarted voter to lead", || {
        zone.servers[0]
            .raft_status()
            .is_some_and(|r| r.state == LEADER && r.term > term)
    });
    let s0 = zone.servers[0].client();
    let after = allocate(&s0, "after-restart").unwrap();
    assert_eq!(user_name(&s0, before).as_deref(), Some("before-restart"));
    assert_eq!(user_name(&s0, after).as_deref(), Some("after-restart"));
}

#[test]
fn zone_grows_from_one_to_three_and_then_five() {
    let mut zone = Zone::bootstrap(3);
    let check = |zone: &Zone, n: usize| {
        zone.wait_caught_up();
        let leader = zone.leader();
        let info = zone.servers[leader].zone_info().unwrap();
        assert_eq!(info.servers.len(), n, "{info:?}");
        let show = zone.onezone_ok(leader, &["show", "0"]);
        eprintln!("{show}");
        let rows = ha_rows(&show);
        assert_eq!(rows.len(), n, "{show}");
        let states: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
        assert_eq!(
            states.iter().filter(|s| **s == "leader").count(),
            1,
            "{show}"
        );
        assert_eq!(
            states.iter().filter(|s| **s == "follower").count(),
            n - 1,
            "{show}"
        );
        let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        assert_eq!(ids, expected, "{show}");
    };
    check(&zone, 3);
    // Server 0 started alone: its solo history must be in a snapshot before anyone joins, or a
    // learner replicated from the unpurged log misses it (and cannot authenticate anyone).
    let log = std::fs::read_to_string(zone.servers[0].log_path()).unwrap();
    let sealed = log.find("solo history sealed into a snapshot");
    let first_add = log.find("adding server as a learner");
    assert!(
        sealed.is_some() && sealed < first_add,
        "a server joined before the solo history was sealed:\n{log}"
    );
    let user = allocate(&zone.servers[zone.leader()].client(), "before-growth").unwrap();

    eprintln!("--- grow to five");
    zone.add_server();
    zone.add_server();
    check(&zone, 5);
    wait_user_everywhere(&zone, &[0, 1, 2, 3, 4], user, "before-growth");
    let user = allocate(&zone.servers[zone.leader()].client(), "after-growth").unwrap();
    wait_user_everywhere(&zone, &[0, 1, 2, 3, 4], user, "after-growth");
}

#[test]
fn server_added_but_not_started_shows_error_while_writes_continue() {
    let mut zone = Zone::bootstrap(1);
    let i = zone.prepare_server();
    zone.server_add(i);

    eprintln!("--- write while server {i} is added but not running");
    let leader = zone.servers[0].client();
    let id = allocate(&leader, "while-1-is-down").unwrap();
    assert_eq!(user_name(&leader, id).as_deref(), Some("while-1-is-down"));
    let show = zone.onezone_ok(0, &["show", "0"]);
    eprintln!("{show}");
    let error_row = format!(" {i} server-{i}        error      -          -          -          -");
    assert!(
        show.lines().any(|l| l == error_row),
        "no {error_row:?} in\n{show}"
    );
    let rows = ha_rows(&show);
    assert_eq!(rows[0][..3], ["0", "server-0", "leader"], "{show}");

    eprintln!("--- start server {i}: it catches up by itself");
    zone.servers[i].start();
    zone.wait_caught_up();
    zone.wait_voter(i);
    wait_user_everywhere(&zone, &[i], id, "while-1-is-down");
    let id2 = allocate(&leader, "after-1-started").unwrap();
    wait_user_everywhere(&zone, &[0, i], id2, "after-1-started");
}

#[test]
fn write_through_a_follower_is_readable_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    eprintln!("--- allocate a user through follower {follower} (leader is {leader})");
    let id = allocate(&zone.servers[follower].client(), "via-follower").unwrap();
    assert!(id >= 2, "user ids start at 2, got {id}");
    wait_user_everywhere(&zone, &[0, 1, 2], id, "via-follower");
    for s in &zone.servers {
        let names = user_pool(&s.client()).unwrap();
        assert!(names.iter().any(|n| n == "via-follower"), "{names:?}");
    }

    eprintln!("--- a duplicate through the other follower fails as on the leader");
    let other = (0..3).find(|&i| i != leader && i != follower).unwrap();
    let (code, message) = one_error(allocate(&zone.servers[other].client(), "via-follower"));
    assert_eq!(code, INTERNAL, "{message}");
}

#[test]
fn killing_the_leader_elects_a_new_one_and_keeps_every_acknowledged_write() {
    let mut zone = Zone::bootstrap(3);
    let old = zone.leader();
    let old_term = zone.servers[old].raft_status().unwrap().term;
    // Added after the first leader was elected, the followers learned its term from it and
    // voted for no one (the guide's `onezone show`: VOTE -1); the leader voted for itself.
    for (i, s) in zone.servers.iter().enumerate() {
        let r = s.raft_status().unwrap();
        if r.term == old_term {
            let expected = if i == old { old as i64 } else { -1 };
            assert_eq!(r.votedfor, expected, "server {i}: {r:?}");
        }
    }
    let mut acked: Vec<(i64, String)> = Vec::new();
    for k in 0..5 {
        let name = format!("before-kill-{k}");
        let id = allocate(&zone.servers[(old + k) % 3].client(), &name).unwrap();
        acked.push((id, name));
    }

    eprintln!("--- kill the leader (server {old}, term {old_term})");
    zone.servers[old].kill();
    let killed_at = Instant::now();
    let survivors = zone.up();
    let mut attempt = 0;
    let first = zone.wait_for(DEADLINE, "a write succeeds on a survivor", || {
        for &s in &survivors {
            attempt += 1;
            let name = format!("failover-{attempt}");
            let client = zone.servers[s].client_with_timeout(Duration::from_secs(10));
            match allocate(&client, &name) {
                Ok(id) => return Some((id, name)),
                Err(e) => eprintln!("write through server {s}: {e}"),
            }
        }
        None
    });
    eprintln!(
        "failover: {} ms (SIGKILL of the leader to the first acknowledged write)",
        killed_at.elapsed().as_millis()
    );
    acked.push(first);

    let new = zone.leader();
    assert_ne!(new, old);
    let new_term = zone.servers[new].raft_status().unwrap().term;
    assert!(new_term > old_term, "new term {new_term} <= old {old_term}");
    for &s in &survivors {
        let name = format!("after-kill-via-{s}");
        let id = allocate(&zone.servers[s].client(), &name).unwrap();
        acked.push((id, name));
    }
    for (id, name) in &acked {
        wait_user_everywhere(&zone, &survivors, *id, name);
    }

    eprintln!("--- restart the old leader (server {old})");
    zone.servers[old].start();
    zone.wait_until(DEADLINE, "the old leader follows", || {
        zone.servers[old]
            .raft_status()
            .is_some_and(|r| r.state == FOLLOWER && r.term >= new_term)
    });
    assert_eq!(zone.leader(), new);
    // The survivor that elected the new leader says whom it voted for in that term.
    let voter = survivors.iter().copied().find(|&s| s != new).unwrap();
    let r = zone.servers[voter].raft_status().unwrap();
    if r.term == new_term {
        assert_eq!(r.votedfor, new as i64, "{r:?}");
    }
    for (id, name) in &acked {
        wait_user_everywhere(&zone, &[old], *id, name);
    }
}

#[test]
fn with_two_of_three_down_writes_fail_cleanly_and_reads_are_served() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let id = allocate(&zone.servers[leader].client(), "before-outage").unwrap();
    wait_user_everywhere(&zone, &[0, 1, 2], id, "before-outage");
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    eprintln!("--- kill both followers ({followers:?}); write on the leader {leader}");
    for &f in &followers {
        zone.servers[f].kill();
    }
    let started = Instant::now();
    let result = allocate(&zone.servers[leader].client(), "without-quorum");
    let elapsed = started.elapsed();
    eprintln!(
        "write without quorum answered in {} ms: {result:?}",
        elapsed.as_millis()
    );
    let (code, message) = one_error(result);
    assert_eq!(code, INTERNAL, "{message}");
    let lower = message.to_lowercase();
    assert!(
        lower.contains("quorum") || lower.contains("unknown") || lower.contains("no leader"),
        "{message}"
    );
    // The contract: about 2 x ELECTION_TIMEOUT_MS + 1 s; 2 s more for a loaded machine.
    let bound = 2 * ELECTION_TIMEOUT + Duration::from_secs(3);
    assert!(elapsed < bound, "write took {elapsed:?} (bound {bound:?})");

    eprintln!("--- reads are still served by the survivor");
    let client = zone.servers[leader].client();
    assert_eq!(user_name(&client, id).as_deref(), Some("before-outage"));
    let names = user_pool(&client).unwrap();
    assert!(names.iter().any(|n| n == "before-outage"), "{names:?}");
    client.call("one.zone.info", vec![Value::Int(0)]).unwrap();

    eprintln!("--- restart follower {}: writes work again", followers[0]);
    zone.servers[followers[0]].start();
    let mut attempt = 0;
    let (id2, name2) = zone.wait_for(DEADLINE, "a write succeeds with 2 of 3 up", || {
        attempt += 1;
        let name = format!("quorum-back-{attempt}");
        let l = zone.leader();
        allocate(&zone.servers[l].client(), &name)
            .ok()
            .map(|id| (id, name))
    });

    eprintln!("--- kill the leader too: the lone survivor has no leader");
    let l = zone.leader();
    let survivor = zone.up().into_iter().find(|&i| i != l).unwrap();
    wait_user_everywhere(&zone, &[survivor], id2, &name2);
    zone.servers[l].kill();
    let started = Instant::now();
    let result = allocate(&zone.servers[survivor].client(), "without-leader");
    eprintln!(
        "write without a leader answered in {} ms: {result:?}",
        started.elapsed().as_millis()
    );
    let (code, message) = one_error(result);
    assert_eq!(code, INTERNAL, "{message}");
    // OpenNebula's two messages: a follower that knows no leader, or a
    // server that is itself a candidate.
    assert!(
        message.contains("Cannot process request, no leader found")
            || message.contains("Cannot process request, oned cluster in election mode"),
        "{message}"
    );
    let client = zone.servers[survivor].client();
    assert_eq!(user_name(&client, id).as_deref(), Some("before-outage"));
    assert!(user_pool(&client).unwrap().len() >= 2);
}

#[test]
fn full_restart_keeps_state_term_and_vote() {
    let mut zone = Zone::bootstrap(3);
    eprintln!("--- stop and restart the leader once, so the term is above 1");
    let first = zone.leader();
    zone.servers[first].stop();
    let second = zone.leader();
    zone.servers[first].start();
    zone.wait_caught_up();

    let mut acked = Vec::new();
    for k in 0..3 {
        let name = format!("before-restart-{k}");
        let id = allocate(&zone.servers[k].client(), &name).unwrap();
        acked.push((id, name));
    }
    for (id, name) in &acked {
        wait_user_everywhere(&zone, &[0, 1, 2], *id, name);
    }
    let leader_before = zone.leader();
    let before: Vec<_> = zone
        .servers
        .iter()
        .map(|s| s.raft_status().unwrap())
        .collect();
    eprintln!("before the full restart (leader {leader_before}, was {second} after the first stop): {before:?}");
    let leader_term = before[leader_before].term;
    assert!(leader_term >= 2, "{before:?}");

    eprintln!("--- stop every server (SIGTERM), then start them all");
    for s in &mut zone.servers {
        s.stop();
    }
    for s in &mut zone.servers {
        s.spawn();
    }
    for s in &mut zone.servers {
        // Already spawned together: wait for /RPC2 without spawning again.
        s.wait_serving();
    }
    let leader = zone.leader();
    let after: Vec<_> = zone
        .servers
        .iter()
        .map(|s| s.raft_status().unwrap())
        .collect();
    eprintln!("after the full restart: {after:?}");
    for (b, a) in before.iter().zip(&after) {
        assert!(a.term >= b.term, "term went backwards: {b:?} -> {a:?}");
        if a.term == b.term {
            assert_eq!(a.votedfor, b.votedfor, "vote lost: {b:?} -> {a:?}");
        }
        assert!(
            a.log_index >= b.log_index,
            "log went backwards: {b:?} -> {a:?}"
        );
    }
    // openraft may restore a leader whose committed vote survived without a
    // new election, so the term may stay; lost state would show as term 1.
    assert!(after[leader].term >= leader_term, "{before:?} -> {after:?}");
    for (id, name) in &acked {
        wait_user_everywhere(&zone, &[0, 1, 2], *id, name);
    }
    let id = allocate(&zone.servers[leader].client(), "after-restart").unwrap();
    wait_user_everywhere(&zone, &[0, 1, 2], id, "after-restart");
}

#[test]
fn server_del_removes_a_follower_and_then_the_leader() {
    let mut zone = Zone::bootstrap(4);
    let leader = zone.leader();
    let follower = (0..4).rev().find(|&i| i != leader).unwrap();

    eprintln!("--- onezone server-del 0 {follower} (a follower)");
    zone.onezone_ok(leader, &["server-del", "0", &follower.to_string()]);
    zone.servers[follower].removed = true;
    for i in zone.up() {
        zone.wait_until(
            DEADLINE,
            &format!("server {i} no longer lists server {follower}"),
            || {
                zone.servers[i].zone_info().is_some_and(|z| {
                    z.servers.len() == 3 && z.servers.iter().all(|s| s.id != follower as i64)
                })
            },
        );
    }
    zone.servers[follower].stop();
    let id = allocate(&zone.servers[leader].client(), "after-follower-del").unwrap();
    wait_user_everywhere(&zone, &zone.up(), id, "after-follower-del");

    eprintln!("--- onezone server-del 0 {leader} (the leader itself)");
    zone.onezone_ok(leader, &["server-del", "0", &leader.to_string()]);
    zone.servers[leader].removed = true;
    let new = zone.leader();
    assert_ne!(new, leader);
    eprintln!(
        "new leader {new}; the removed leader reports {:?}",
        zone.servers[leader].raft_status()
    );
    let remaining = zone.up();
    assert_eq!(remaining.len(), 2);
    for &i in &remaining {
        zone.wait_until(
            DEADLINE,
            &format!("server {i} lists exactly the two remaining servers"),
            || {
                zone.servers[i].zone_info().is_some_and(|z| {
                    let mut ids: Vec<i64> = z.servers.iter().map(|s| s.id).collect();
                    ids.sort();
                    ids == remaining.iter().map(|&r| r as i64).collect::<Vec<_>>()
                })
            },
        );
    }
    for &i in &remaining {
        let name = format!("after-leader-del-via-{i}");
        let id = allocate(&zone.servers[i].client(), &name).unwrap();
        wait_user_everywhere(&zone, &remaining, id, &name);
    }
    let show = zone.onezone_ok(new, &["show", "0"]);
    eprintln!("{show}");
    let rows = ha_rows(&show);
    assert_eq!(rows.len(), 2, "{show}");
    assert_eq!(
        rows.iter().filter(|r| r[2] == "leader").count(),
        1,
        "{show}"
    );
}

#[test]
fn a_paused_leader_is_replaced_and_follows_once_resumed() {
    let mut zone = Zone::bootstrap(3);
    let old = zone.leader();
    let old_term = zone.servers[old].raft_status().unwrap().term;

    eprintln!("--- pause the leader (SIGSTOP server {old})");
    zone.servers[old].pause();
    let new = zone.leader();
    assert_ne!(new, old);
    let new_term = zone.servers[new].raft_status().unwrap().term;
    assert!(new_term > old_term, "{new_term} <= {old_term}");
    let id = allocate(&zone.servers[new].client(), "while-paused").unwrap();

    eprintln!("--- resume server {old}: it steps down and catches up");
    zone.servers[old].resume();
    zone.wait_until(DEADLINE, "the resumed leader follows", || {
        zone.servers[old]
            .raft_status()
            .is_some_and(|r| r.state == FOLLOWER && r.term >= new_term)
    });
    assert_eq!(zone.leader(), new);
    wait_user_everywhere(&zone, &[0, 1, 2], id, "while-paused");
    let id = allocate(&zone.servers[old].client(), "via-resumed").unwrap();
    wait_user_everywhere(&zone, &[0, 1, 2], id, "via-resumed");
}

/// An operator follows the guide literally: after each server-add they wait
/// until `onezone show 0` lists the new server as a follower that reached
/// the leader's commit, and nothing more. Such a zone, shown healthy, must
/// survive losing its leader.
#[test]
fn zone_shown_healthy_by_onezone_survives_losing_the_leader() {
    let mut zone = Zone::bootstrap(1);
    for _ in 1..3 {
        let i = zone.prepare_server();
        zone.server_add(i);
        zone.servers[i].start();
        zone.wait_until(
            DEADLINE,
            &format!("onezone show 0 lists server {i} as a caught-up follower"),
            || {
                let (code, show, _) = zone.onezone(0, &["show", "0"]);
                if code != 0 {
                    return false;
                }
                let rows = ha_rows(&show);
                let commit = rows
                    .iter()
                    .find(|r| r[2] == "leader")
                    .and_then(|r| r[5].parse::<i64>().ok());
                rows.iter().any(|r| {
                    r[0] == i.to_string()
                        && r[2] == "follower"
                        && r[4].parse::<i64>().ok() >= commit
                })
            },
        );
    }
    let show = zone.onezone_ok(0, &["show", "0"]);
    eprintln!("{show}");

    eprintln!("--- kill the leader as soon as onezone shows a healthy zone");
    zone.servers[0].kill();
    let new = zone.leader();
    assert_ne!(new, 0);
    let id = allocate(&zone.servers[new].client(), "after-guide-bootstrap").unwrap();
    wait_user_everywhere(&zone, &zone.up(), id, "after-guide-bootstrap");
}
