//! One round: bootstrap a zone behind link proxies, run the workload while the schedule's faults
//! run, heal everything, then check the history and the replicas.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use xmlrpc::Value;

use super::checks;
use super::power;
use super::schedule::{crash_schedule, power_schedule, schedule, Fault, Step, Target};
use super::vms::{self, VmWorkload};
use super::votes::VoteWatch;
use super::workload::{Members, Spec, Workload};
use crate::proxy::Network;
use crate::zone::{allocate, Zone, FOLLOWER, LEADER};

#[derive(Debug, Clone)]
pub struct RoundConfig {
    pub seed: u64,
    /// How long faults run.
    pub duration: Duration,
    /// 3 or 5.
    pub servers: usize,
    /// Register reads through the leader; `false` is the checker's self-test (it must fail).
    pub leader_reads: bool,
    /// Crash safety: only kills, frequent, with a log window of a few dozen records so kills
    /// land while servers purge and take or install snapshots.
    pub crash: bool,
    /// Power cuts (issue 18): every server's `var/` on a lossy disk, cuts of one server, a
    /// minority and all of them, during backups and restores; the short log window of `crash`.
    pub power: bool,
    /// With `power`: disks that acknowledge fsync and keep nothing, the checkers' self-test
    /// (the round must FAIL with acknowledged writes lost).
    pub lying_disks: bool,
    /// Clients of the VM workload (`vms.rs`); 0 runs none.
    pub vm_clients: usize,
}

#[derive(Debug, Default)]
pub struct RoundReport {
    pub steps: usize,
    /// Steps that cut the power of one server or more: the campaign's trials.
    pub power_cuts: usize,
    pub summary: String,
    /// Empty when the round passed.
    pub violations: Vec<String>,
}

/// Registers checked for linearizability.
const KEYS: usize = 4;

/// The member indices of the zone.
pub(super) fn members(zone: &Zone) -> Vec<usize> {
    (0..zone.servers.len())
        .filter(|&i| !zone.servers[i].removed)
        .collect()
}

fn publish(zone: &Zone, to: &Members) {
    let list = members(zone)
        .into_iter()
        .map(|i| (i, zone.servers[i].endpoint()))
        .collect();
    *to.write().unwrap() = list;
}

/// The member that reports leader, if exactly one does within `within`.
pub(super) fn find_leader(zone: &Zone, within: Duration) -> Option<usize> {
    let start = Instant::now();
    loop {
        let leaders: Vec<usize> = zone
            .up()
            .into_iter()
            .filter(|&i| {
                zone.servers[i]
                    .raft_status()
                    .is_some_and(|r| r.state == LEADER)
            })
            .collect();
        if let [one] = leaders.as_slice() {
            return Some(*one);
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server a target names now.
pub(super) fn resolve(zone: &Zone, target: Target) -> usize {
    let all = members(zone);
    let leader = find_leader(zone, Duration::from_secs(3));
    match (target, leader) {
        (Target::Leader, Some(l)) => l,
        (Target::Follower(n), Some(l)) => {
            let followers: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
            followers[n % followers.len()]
        }
        (Target::Follower(n) | Target::Any(n), _) => all[n % all.len()],
        (Target::Leader, None) => all[0],
    }
}

pub(super) fn log(epoch: Instant, what: &str) {
    eprintln!("[{:>7.3}s] {what}", epoch.elapsed().as_secs_f64());
}

/// Runs one step; the zone is whole again when it returns (killed servers restarted, paused
/// ones resumed, links healed), except for a replaced server, which is gone for good. Returns
/// what went wrong that only the step can see (a backup that does not restore).
pub(super) fn run_step(
    zone: &mut Zone,
    net: &Network,
    step: &Step,
    members_out: &Members,
    epoch: Instant,
) -> Vec<String> {
    let ids = |v: &[usize]| v.iter().map(|&i| i as u64).collect::<Vec<u64>>();
    match step.fault {
        Fault::Kill(t) => {
            let i = resolve(zone, t);
            log(epoch, &format!("kill -9 server {i} ({t:?})"));
            zone.servers[i].kill();
            // Its port refuses from now on, as a crashed server's host does: the others' fast
            // failover may see it.
            net.down(i as u64);
            std::thread::sleep(step.hold);
            log(epoch, &format!("restart server {i}"));
            net.up(i as u64);
            zone.servers[i].start();
        }
        Fault::Stop(t) => {
            let i = resolve(zone, t);
            log(epoch, &format!("SIGTERM server {i} ({t:?})"));
            zone.servers[i].stop();
            net.down(i as u64);
            std::thread::sleep(step.hold);
            log(epoch, &format!("restart server {i}"));
            net.up(i as u64);
            zone.servers[i].start();
        }
        Fault::Pause(t) => {
            let i = resolve(zone, t);
            log(epoch, &format!("SIGSTOP server {i} ({t:?})"));
            zone.servers[i].pause();
            std::thread::sleep(step.hold);
            log(epoch, &format!("SIGCONT server {i}"));
            zone.servers[i].resume();
        }
        Fault::Isolate(t) => {
            let i = resolve(zone, t);
            let others: Vec<usize> = members(zone).into_iter().filter(|&o| o != i).collect();
            log(
                epoch,
                &format!("isolate server {i} ({t:?}) from {others:?}"),
            );
            net.partition(&ids(&[i]), &ids(&others));
            std::thread::sleep(step.hold);
            log(epoch, "heal the network");
            net.heal();
        }
        Fault::Split(t, n) => {
            let i = resolve(zone, t);
            let rest: Vec<usize> = members(zone).into_iter().filter(|&o| o != i).collect();
            let j = rest[n % rest.len()];
            let side = [i, j];
            let other: Vec<usize> = rest.into_iter().filter(|&o| o != j).collect();
            log(epoch, &format!("partition {side:?} | {other:?} ({t:?})"));
            net.partition(&ids(&side), &ids(&other));
            std::thread::sleep(step.hold);
            log(epoch, "heal the network");
            net.heal();
        }
        Fault::Replace(n) => replace(zone, n, step.hold, members_out, epoch),
        Fault::Calm => {
            log(epoch, "calm");
            std::thread::sleep(step.hold);
        }
        Fault::PowerCut(t) => {
            let i = resolve(zone, t);
            power::cut(zone, &[i], step.hold, epoch);
        }
        Fault::PowerCutMinority(n) => {
            let some = power::minority(zone, n);
            power::cut(zone, &some, step.hold, epoch);
        }
        Fault::PowerCutAll => {
            let all = members(zone);
            power::cut(zone, &all, step.hold, epoch);
        }
        Fault::PowerCutDuringElection => power::cut_during_election(zone, step.hold, epoch),
        Fault::PowerCutDuringBackup(t) => {
            return power::cut_during_backup(zone, t, step.hold, epoch);
        }
        Fault::PowerCutDuringRestore(n) => {
            return power::cut_during_restore(zone, n, step.hold, epoch);
        }
    }
    Vec::new()
}

/// `onezone server-del` of a follower, then a fresh server added in its place, as an operator
/// replacing a machine would.
fn replace(zone: &mut Zone, n: usize, hold: Duration, members_out: &Members, epoch: Instant) {
    let Some(leader) = find_leader(zone, Duration::from_secs(10)) else {
        log(epoch, "replace: no leader, skipped");
        return;
    };
    // Removing a voter while another is still catching up could leave no quorum; an operator
    // waits for `onezone show` to list every server as follower first, and so does this.
    let all_voters = members(zone).iter().all(|&i| {
        zone.servers[i]
            .raft_status()
            .is_some_and(|r| r.state == FOLLOWER || r.state == LEADER)
    });
    if !all_voters {
        log(epoch, "replace: not every member is a voter yet, skipped");
        std::thread::sleep(hold);
        return;
    }
    let followers: Vec<usize> = members(zone).into_iter().filter(|&i| i != leader).collect();
    let f = followers[n % followers.len()];
    log(
        epoch,
        &format!("onezone server-del 0 {f} (via leader {leader})"),
    );
    let (code, out, err) = zone.onezone(leader, &["server-del", "0", &f.to_string()]);
    if code != 0 {
        log(
            epoch,
            &format!("server-del failed ({code}): {out}{err}; skipped"),
        );
        return;
    }
    zone.servers[f].kill();
    zone.servers[f].removed = true;
    publish(zone, members_out);
    let i = zone.prepare_server();
    log(epoch, &format!("onezone server-add server-{i}, start it"));
    zone.server_add(i);
    zone.servers[i].start();
    // Its first start created the schema: DDL, which MariaDB makes crash-safe only with the
    // kernel's writeback behind it.
    zone.servers[i].write_back_db_disk();
    publish(zone, members_out);
    std::thread::sleep(hold);
}

/// Restarts, resumes and reconnects every member.
pub(super) fn heal(zone: &mut Zone, net: &Network) {
    net.heal();
    net.up_all();
    for i in members(zone) {
        let s = &mut zone.servers[i];
        if !s.is_up() {
            if s.is_running() {
                s.resume();
            } else {
                s.start();
            }
        }
    }
}

pub fn run_round(cfg: &RoundConfig) -> RoundReport {
    let steps = if cfg.power {
        power_schedule(cfg.seed, cfg.duration)
    } else if cfg.crash {
        crash_schedule(cfg.seed, cfg.duration)
    } else {
        schedule(cfg.seed, cfg.duration)
    };
    eprintln!(
        "=== {} round: seed {} servers {} duration {:?}, {} steps",
        if cfg.power {
            "power-cut"
        } else if cfg.crash {
            "crash"
        } else {
            "fault"
        },
        cfg.seed,
        cfg.servers,
        cfg.duration,
        steps.len()
    );
    for (n, s) in steps.iter().enumerate() {
        eprintln!("  step {n}: {s}");
    }
    let net = Network::new();
    let (lossy, lying) = (cfg.power, cfg.lying_disks);
    let setup: Option<crate::zone::Setup> = (cfg.crash || cfg.power).then(|| {
        Box::new(move |_: usize, s: &mut crate::zone::Server| {
            s.log = crate::zone::LogRetention {
                limit_purge: 500,
                log_retention: 30,
                log_purge_timeout_s: 1,
            };
            if lossy {
                s.put_var_on_lossy_disk(lying)
                    .expect("var/ on a lossy disk (needs root and /dev/fuse)");
                if s.db.is_some() {
                    s.use_own_mariadb_on_disk()
                        .expect("MariaDB's data on a lossy disk");
                }
            }
        }) as crate::zone::Setup
    });
    let mut zone = Zone::bootstrap_custom(cfg.servers, Some(net.clone()), setup);
    let leader = zone.leader();
    let client = zone.servers[leader].client();
    let keys: Vec<i64> = (0..KEYS)
        .map(|k| allocate(&client, &format!("reg-{k}")).unwrap())
        .collect();
    let vm_setup = (cfg.vm_clients > 0).then(|| vms::prepare(&zone, leader));
    zone.wait_caught_up();
    // Power cuts start from a zone that ran for a while: its installation is on disk.
    for s in &zone.servers {
        s.sync_disks();
    }

    let members_out: Members = Arc::new(RwLock::new(Vec::new()));
    publish(&zone, &members_out);
    let votes = VoteWatch::start(members_out.clone(), zone.servers[0].session());
    let epoch = Instant::now();
    let workload = Workload::start(
        Spec {
            seed: cfg.seed,
            set_clients: cfg.servers,
            register_clients: 4,
            follower_readers: cfg.servers,
            keys: keys.clone(),
            session: zone.servers[0].session(),
            pace: Duration::from_millis(40),
            leader_reads: cfg.leader_reads,
        },
        members_out.clone(),
        epoch,
    );
    let vm_workload = vm_setup.clone().map(|setup| {
        VmWorkload::start(
            setup,
            cfg.vm_clients,
            zone.servers[0].session(),
            cfg.seed,
            members_out.clone(),
            epoch,
        )
    });
    let mut step_violations = Vec::new();
    for step in &steps {
        step_violations.extend(run_step(&mut zone, &net, step, &members_out, epoch));
        std::thread::sleep(step.rest);
    }
    log(epoch, "stop the clients");
    let mut history = workload.finish();
    let vm_history = vm_workload.map(VmWorkload::finish);
    log(epoch, "heal everything");
    heal(&mut zone, &net);

    let mut report = RoundReport {
        steps: steps.len(),
        power_cuts: steps.iter().filter(|s| s.fault.is_power_cut()).count(),
        violations: step_violations,
        ..Default::default()
    };
    checks::settle(&zone, &mut report);
    let (vote_violations, vote_summary) = votes.finish();
    report.violations.extend(vote_violations);
    report.summary.push_str(&vote_summary);
    // A last read of every register through the leader: a write lost at the very end shows.
    let leader = zone.leader();
    let reader = zone.servers[leader]
        .client()
        .with_header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE);
    for &k in &keys {
        let invoke = epoch.elapsed().as_nanos() as u64;
        let xml = reader
            .call_xml(wire::method::USER_INFO, vec![Value::Int(k as i32)])
            .unwrap();
        let value = super::workload::register_value(&xml).expect("USER answer");
        history
            .registers
            .entry(k as usize)
            .or_default()
            .push(lincheck::RegEvent {
                client: usize::MAX,
                invoke,
                complete: epoch.elapsed().as_nanos() as u64,
                op: lincheck::RegOp::Read(value),
                outcome: lincheck::Outcome::Ok,
            });
    }
    if let (Some(setup), Some(h)) = (&vm_setup, &vm_history) {
        history.write_oks.extend(&h.write_oks);
        vms::check(&zone, setup, h, &mut report);
    }
    checks::check_history(&zone, &history, &mut report);
    if !report.violations.is_empty() {
        eprintln!("{}", zone.report());
    }
    report
}
