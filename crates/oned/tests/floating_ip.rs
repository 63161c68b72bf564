//! The floating IP in network namespaces: three servers and a client on one bridge, each
//! server running the shipped `raft/vip.sh` as RAFT_LEADER_HOOK / RAFT_FOLLOWER_HOOK on the same
//! address. The client writes through the floating IP while the leader is killed (systemd's
//! `ExecStopPost` follower clean-up emulated) and then cut off the network (step-down without a
//! majority). Needs root for the namespaces; `.ci/run` runs it as root.

#![allow(clippy::unwrap_used)] // test code

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli::Client;
use testkit::netns::{self, Lan};
use testkit::zone::{allocate, Server, Zone, DEADLINE, ELECTION_TIMEOUT};

const SUBNET: &str = "10.77.0";
const VIP: &str = "10.77.0.100";

fn vip_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../share/hooks/raft/vip.sh")
}

fn hooks_conf() -> String {
    format!(
        r#"RAFT_LEADER_HOOK = [ COMMAND = "raft/vip.sh", ARGUMENTS = "leader eth0 {VIP}/24" ]
RAFT_FOLLOWER_HOOK = [ COMMAND = "raft/vip.sh", ARGUMENTS = "follower eth0 {VIP}/24" ]
"#
    )
}

/// Which servers hold the floating IP, sampled every few milliseconds.
struct Holders {
    samples: Mutex<Vec<(Instant, Vec<usize>)>>,
}

impl Holders {
    fn now(&self) -> Vec<usize> {
        self.samples
            .lock()
            .unwrap()
            .last()
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    }

    /// The longest stretch during which two or more servers held the address.
    fn longest_overlap(&self) -> Duration {
        let samples = self.samples.lock().unwrap();
        let mut longest = Duration::ZERO;
        let mut since: Option<Instant> = None;
        for (t, h) in samples.iter() {
            match (h.len() >= 2, since) {
                (true, None) => since = Some(*t),
                (false, Some(s)) => {
                    longest = longest.max(*t - s);
                    since = None;
                }
                _ => {}
            }
        }
        longest
    }
}

/// Completion times of the client's acknowledged writes through the floating IP.
type Acks = Arc<Mutex<Vec<Instant>>>;

/// Time the client could not write around `fault`: the longest gap between two acknowledged
/// writes from just before the fault until the first write acknowledged after `moved` (when the
/// floating IP was seen on its new holder).
fn outage(acks: &Acks, fault: Instant, moved: Instant) -> Option<Duration> {
    let acks = acks.lock().unwrap();
    let end = *acks.iter().find(|t| **t > moved)?;
    let from = acks.iter().rev().find(|t| **t <= fault)?;
    let window: Vec<Instant> = acks
        .iter()
        .copied()
        .filter(|t| t >= from && *t <= end)
        .collect();
    window.windows(2).map(|w| w[1] - w[0]).max()
}

fn wait(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_floating_ip_follows_the_leader_through_a_kill_and_a_partition() {
    if std::env::var_os("ONEHA_SKIP_NETNS").is_some() {
        eprintln!("ONEHA_SKIP_NETNS set: skipped");
        return;
    }
    assert!(
        netns::available(),
        "this test needs root and iproute2 for network namespaces (bash .ci/run installs them); set ONEHA_SKIP_NETNS=1 to skip it"
    );
    let prefix = format!("oh{}", std::process::id() % 100_000);
    let lan = Lan::new(
        &prefix,
        SUBNET,
        &[("s0", 1), ("s1", 2), ("s2", 3), ("cl", 50)],
    );
    let names: Vec<String> = (0..3).map(|i| lan.ns(&format!("s{i}"))).collect();
    // This thread is the client: its calls leave from the client's namespace.
    netns::enter(&lan.ns("cl"));

    let setup = {
        let names = names.clone();
        move |i: usize, s: &mut Server| {
            s.netns = Some(names[i].clone());
            s.host = format!("{SUBNET}.{}", i + 1);
            s.port = 2633;
            s.extra_conf = hooks_conf();
            let hooks = s.location().join("var/remotes/hooks/raft");
            std::fs::create_dir_all(&hooks).unwrap();
            std::fs::copy(vip_script(), hooks.join("vip.sh")).unwrap();
        }
    };
    let mut zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let session = zone.servers[0].session();

    let stop = Arc::new(AtomicBool::new(false));
    let holders = Arc::new(Holders {
        samples: Mutex::new(Vec::new()),
    });
    let monitor = {
        let (stop, holders, prefix) = (stop.clone(), holders.clone(), prefix.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now: Vec<usize> = (0..3)
                    .filter(|i| {
                        Command::new("ip")
                            .args([
                                "-n",
                                &format!("{prefix}-s{i}"),
                                "-o",
                                "address",
                                "show",
                                "dev",
                                "eth0",
                            ])
                            .output()
                            .is_ok_and(|o| {
                                String::from_utf8_lossy(&o.stdout).contains(&format!("inet {VIP}/"))
                            })
                    })
                    .collect();
                holders.samples.lock().unwrap().push((Instant::now(), now));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let leader = zone.leader();
    wait("the leader holds the floating IP, alone", DEADLINE, || {
        holders.now() == vec![leader]
    });

    let acks: Acks = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, acks, client_ns) = (stop.clone(), acks.clone(), lan.ns("cl"));
        std::thread::spawn(move || {
            netns::enter(&client_ns);
            // A client that gives up quickly and retries, so the outage measures the zone, not
            // the client's patience.
            let client = Client::new(
                format!("http://{VIP}:2633/RPC2"),
                session,
                Duration::from_millis(500),
            );
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if allocate(&client, &format!("vip-{n}")).is_ok() {
                    acks.lock().unwrap().push(Instant::now());
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    let acked_after = |t: Instant| acks.lock().unwrap().iter().any(|a| *a > t);
    wait(
        "the client writes through the floating IP",
        DEADLINE,
        || acked_after(Instant::now() - Duration::from_millis(500)),
    );

    eprintln!("--- kill -9 the leader {leader}; systemd's ExecStopPost runs the follower clean-up");
    let killed = Instant::now();
    zone.servers[leader].kill();
    let cleanup = Command::new("ip")
        .args(["netns", "exec", &names[leader]])
        .arg(testkit::oned_binary())
        .arg("--follower-cleanup")
        .env("ONE_LOCATION", zone.servers[leader].location())
        .status()
        .unwrap();
    assert!(cleanup.success(), "oned --follower-cleanup: {cleanup}");
    let new_leader =
        zone.wait_for(
            DEADLINE,
            "another server holds the floating IP",
            || match holders.now().as_slice() {
                [h] if *h != leader => Some(*h),
                _ => None,
            },
        );
    let moved = Instant::now();
    wait("the client writes again", DEADLINE, || acked_after(moved));
    let kill_outage = outage(&acks, killed, moved).unwrap();
    eprintln!(
        "kill: the IP moved from server {leader} to server {new_leader}; the client could not write for {} ms",
        kill_outage.as_millis()
    );
    zone.servers[leader].start();
    zone.wait_caught_up();

    let leader = zone.leader();
    eprintln!("--- cut the leader {leader} off the network");
    let cut = Instant::now();
    lan.unplug(&format!("s{leader}"));
    wait("the cut-off leader drops the floating IP", DEADLINE, || {
        !holders.now().contains(&leader)
    });
    let dropped = cut.elapsed();
    let new_leader =
        zone.wait_for(
            DEADLINE,
            "the majority side holds the floating IP",
            || match holders.now().as_slice() {
                [h] if *h != leader => Some(*h),
                _ => None,
            },
        );
    let moved = Instant::now();
    wait("the client writes again", DEADLINE, || acked_after(moved));
    let cut_outage = outage(&acks, cut, moved).unwrap();
    eprintln!(
        "partition: server {leader} dropped the IP {} ms after the cut; server {new_leader} took it; the client could not write for {} ms",
        dropped.as_millis(),
        cut_outage.as_millis()
    );
    lan.plug(&format!("s{leader}"));
    zone.wait_caught_up();
    assert_eq!(
        holders.now(),
        vec![zone.leader()],
        "after healing, only the leader holds the IP"
    );

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    monitor.join().unwrap();
    let overlap = holders.longest_overlap();
    eprintln!(
        "longest time two servers held the IP at once: {} ms",
        overlap.as_millis()
    );
    // About an election timeout, plus the step-down probe and the hook.
    assert!(
        dropped < ELECTION_TIMEOUT * 3,
        "the cut-off leader kept the IP for {dropped:?}"
    );
    assert!(
        overlap <= kill_outage.min(cut_outage),
        "two servers held the IP for {overlap:?}, longer than the client's outage ({kill_outage:?}, {cut_outage:?})"
    );
}
