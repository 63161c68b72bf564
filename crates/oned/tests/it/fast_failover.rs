//! Leader changes sooner than an election timeout (issue 16): a follower whose leader's port
//! refuses connections campaigns at once, and a leader stopped with SIGTERM hands leadership
//! over to a caught-up follower before it exits. Neither fires where it must not: a killed
//! follower, or a leader cut off by a partition.

use std::time::{Duration, Instant};

use crate::zone::{allocate, user_name, Server, Zone, DEADLINE, ELECTION_TIMEOUT, LEADER};

fn counter(s: &Server, name: &str) -> u64 {
    s.metric(name) as u64
}

fn fast_elections(s: &Server) -> u64 {
    counter(s, "oneha_fast_elections_total")
}

/// Allocates `n` users through `s`; their ids and names.
fn write_some(s: &Server, prefix: &str, n: usize) -> Vec<(i64, String)> {
    (0..n)
        .map(|k| {
            let name = format!("{prefix}-{k}");
            (allocate(&s.client(), &name).unwrap(), name)
        })
        .collect()
}

fn wait_users(zone: &Zone, on: &[usize], users: &[(i64, String)]) {
    for &i in on {
        let client = zone.servers[i].client();
        for (id, name) in users {
            zone.wait_until(DEADLINE, &format!("server {i} has user {name}"), || {
                user_name(&client, *id).as_deref() == Some(name.as_str())
            });
        }
    }
}

/// The first write that succeeds through any of `on`.
fn first_write(zone: &Zone, on: &[usize], prefix: &str) -> (i64, String) {
    let mut attempt = 0;
    zone.wait_for(DEADLINE, "a write succeeds on a survivor", || {
        for &s in on {
            attempt += 1;
            let name = format!("{prefix}-{attempt}");
            let client = zone.servers[s].client_with_timeout(Duration::from_secs(10));
            match allocate(&client, &name) {
                Ok(id) => return Some((id, name)),
                Err(e) => eprintln!("write through server {s}: {e}"),
            }
        }
        None
    })
}

#[test]
fn killing_the_leader_starts_a_fast_election_and_keeps_every_acknowledged_write() {
    let mut zone = Zone::bootstrap(3);
    let old = zone.leader();
    let old_term = zone.servers[old].raft_status().unwrap().term;
    let mut acked = write_some(&zone.servers[old], "before-kill", 5);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    wait_users(&zone, &survivors, &acked);

    eprintln!("--- kill the leader (server {old}, term {old_term})");
    zone.servers[old].kill();
    let killed = Instant::now();
    acked.push(first_write(&zone, &survivors, "after-kill"));
    eprintln!(
        "failover: {} ms (SIGKILL to the first acknowledged write)",
        killed.elapsed().as_millis()
    );
    let new = zone.leader();
    assert_ne!(new, old);
    assert!(zone.servers[new].raft_status().unwrap().term > old_term);
    let fast: u64 = survivors
        .iter()
        .map(|&i| fast_elections(&zone.servers[i]))
        .sum();
    assert!(
        fast >= 1,
        "no survivor campaigned on the refused probe\n{}",
        zone.servers[new].tails()
    );
    wait_users(&zone, &survivors, &acked);
}

/// Appends `<action>` to `$ONE_LOCATION/hooks.log`.
const RECORDER: &str = "#!/bin/sh\necho \"$1\" >> \"$ONE_LOCATION/hooks.log\"\n";

fn record_hooks(_: usize, s: &mut Server) {
    use std::os::unix::fs::PermissionsExt;
    s.extra_conf = "RAFT_LEADER_HOOK = [ COMMAND = \"record.sh\", ARGUMENTS = \"leader\" ]\n\
                    RAFT_FOLLOWER_HOOK = [ COMMAND = \"record.sh\", ARGUMENTS = \"follower\" ]\n"
        .to_string();
    let dir = s.location().join("var/remotes/hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("record.sh");
    std::fs::write(&script, RECORDER).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn hooks_ran(s: &Server) -> Vec<String> {
    std::fs::read_to_string(s.location().join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn stopping_the_leader_hands_leadership_to_a_caught_up_follower() {
    let mut zone = Zone::bootstrap_custom(3, None, Some(Box::new(record_hooks)));
    let old = zone.leader();
    let old_term = zone.servers[old].raft_status().unwrap().term;
    zone.wait_until(DEADLINE, "the leader ran its leader hook", || {
        hooks_ran(&zone.servers[old]).last().map(String::as_str) == Some("leader")
    });
    let mut acked = write_some(&zone.servers[old], "before-stop", 5);
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();

    eprintln!("--- SIGTERM the leader (server {old}, term {old_term})");
    let stopped = Instant::now();
    zone.servers[old].stop();
    eprintln!(
        "the old leader exited {} ms after SIGTERM",
        stopped.elapsed().as_millis()
    );
    let log = std::fs::read_to_string(zone.servers[old].log_path()).unwrap();
    assert!(
        log.contains("handed leadership over"),
        "the leader stopped without handing over\n{}",
        zone.servers[old].tails()
    );
    let new = zone.leader();
    assert_ne!(new, old);
    assert!(zone.servers[new].raft_status().unwrap().term > old_term);
    assert_eq!(counter(&zone.servers[new], "oneha_fast_elections_total"), 0);
    let ran = hooks_ran(&zone.servers[old]);
    assert_eq!(ran.last().map(String::as_str), Some("follower"), "{ran:?}");
    acked.push(first_write(&zone, &others, "after-stop"));
    wait_users(&zone, &others, &acked);

    eprintln!("--- the old leader comes back as a follower and has every write");
    zone.servers[old].start();
    zone.wait_until(DEADLINE, "the old leader follows", || {
        zone.servers[old]
            .raft_status()
            .is_some_and(|r| r.state == crate::zone::FOLLOWER)
    });
    wait_users(&zone, &[old], &acked);
}

#[test]
fn stopping_or_killing_a_follower_starts_no_election() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let term = zone.servers[leader].raft_status().unwrap().term;
    let (f, g) = ((leader + 1) % 3, (leader + 2) % 3);

    eprintln!("--- kill follower {f}, then stop follower {g} after it comes back");
    zone.servers[f].kill();
    // Writes keep the leader and the other follower busy for well over an election timeout.
    let until = Instant::now() + ELECTION_TIMEOUT * 2;
    let mut k = 0;
    while Instant::now() < until {
        allocate(&zone.servers[leader].client(), &format!("while-down-{k}")).unwrap();
        k += 1;
    }
    zone.servers[f].start();
    zone.wait_caught_up();
    zone.servers[g].stop();
    let until = Instant::now() + ELECTION_TIMEOUT * 2;
    while Instant::now() < until {
        allocate(
            &zone.servers[leader].client(),
            &format!("while-stopped-{k}"),
        )
        .unwrap();
        k += 1;
    }
    zone.servers[g].start();
    zone.wait_caught_up();

    for i in 0..3 {
        let s = zone.servers[i].raft_status().unwrap();
        assert_eq!(s.term, term, "server {i} saw another term");
        assert_eq!(fast_elections(&zone.servers[i]), 0, "server {i}");
    }
    assert_eq!(zone.servers[leader].raft_status().unwrap().state, LEADER);
}

#[test]
fn a_leader_cut_off_by_a_partition_gets_no_fast_election() {
    let net = testkit::proxy::Network::new();
    let zone = Zone::bootstrap_custom(3, Some(net.clone()), None);
    let old = zone.leader();
    let old_term = zone.servers[old].raft_status().unwrap().term;
    let others: Vec<u64> = (0..3).filter(|&i| i != old).map(|i| i as u64).collect();

    eprintln!("--- cut the leader {old} off from {others:?}");
    net.partition(&[old as u64], &others);
    let new = zone.wait_for(DEADLINE, "the majority elects a new leader", || {
        others.iter().map(|&i| i as usize).find(|&i| {
            zone.servers[i]
                .raft_status()
                .is_some_and(|r| r.state == LEADER && r.term > old_term)
        })
    });
    for &i in &others {
        assert_eq!(
            fast_elections(&zone.servers[i as usize]),
            0,
            "server {i} campaigned early on a leader that is alive"
        );
    }
    net.heal();
    zone.wait_until(DEADLINE, "one leader after the heal", || {
        zone.leader() == new
    });
}

/// Writes sent through followers in a loop while the leader is stopped with SIGTERM: a write
/// the old leader refuses before proposing it (it is handing over) is sent again to the next
/// leader, so none fails, and none is applied twice.
#[test]
fn writes_forwarded_by_followers_survive_a_stop_of_the_leader() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mut zone = Zone::bootstrap(3);
    let old = zone.leader();
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = others
        .iter()
        .map(|&f| {
            let client = zone.servers[f].client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut done = Vec::new();
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("through-{f}-{k}");
                    let result = allocate(&client, &name).map_err(|e| e.to_string());
                    done.push((name, result));
                    k += 1;
                }
                done
            })
        })
        .collect();
    // Writes flow through both followers before the stop.
    zone.wait_until(DEADLINE, "writes flow through both followers", || {
        let pool = zone.servers[old]
            .client()
            .call_xml("one.userpool.info", vec![])
            .unwrap();
        others
            .iter()
            .all(|f| pool.contains(&format!("through-{f}-")))
    });

    eprintln!("--- SIGTERM the leader (server {old}) while followers forward writes");
    zone.servers[old].stop();
    let new = zone.leader();
    assert_ne!(new, old);
    // A few more writes through both followers once the new leader leads.
    let c = zone.servers[new].client();
    let before = c.call_xml("one.userpool.info", vec![]).unwrap();
    zone.wait_until(DEADLINE, "more writes after the stop", || {
        let now = c.call_xml("one.userpool.info", vec![]).unwrap();
        others.iter().all(|f| {
            now.matches(&format!("through-{f}-")).count()
                > before.matches(&format!("through-{f}-")).count() + 2
        })
    });
    stop.store(true, Ordering::Relaxed);
    let done: Vec<(String, Result<i64, String>)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    let failed: Vec<_> = done.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} writes failed: {failed:?}\n{}",
        failed.len(),
        done.len(),
        zone.servers[new].tails()
    );
    let pool = c.call_xml("one.userpool.info", vec![]).unwrap();
    for (name, _) in &done {
        let n = pool.matches(&format!("<NAME>{name}</NAME>")).count();
        assert_eq!(n, 1, "user {name} appears {n} times");
    }
    let retried = others.iter().any(|&f| {
        std::fs::read_to_string(zone.servers[f].log_path())
            .unwrap_or_default()
            .contains("refused a forwarded call before proposing it")
    });
    eprintln!(
        "{} writes through followers; a refused forward was retried: {retried}",
        done.len()
    );
}
