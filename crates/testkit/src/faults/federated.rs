//! The federated round (issue 17): two 3-server zones federated with OpenNebula's procedure,
//! each behind its own link proxies; clients create users through every server of both zones
//! (a slave passes them to the master) while the schedule's faults hit either zone; then both
//! zones are healed and checked: each zone's replicas identical, every zone's federated tables
//! identical (the federated digest of `oneha.db.checksum` on all six servers), and every user
//! whose creation was acknowledged present with its id on every server.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cli::xml::Element;
use cli::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::checks;
use super::round::{heal, log, members, run_step, RoundReport};
use super::schedule::{schedule, Fault, Step};
use super::workload::Members;
use crate::proxy::Network;
use crate::zone::{Zone, STATUS_TIMEOUT};

/// How long the zones may take to hold the same federated tables after healing.
const CONVERGE: Duration = Duration::from_secs(90);
/// Clients per zone.
const CLIENTS: usize = 2;
const PACE: Duration = Duration::from_millis(40);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct FederatedRoundConfig {
    pub seed: u64,
    /// How long faults run.
    pub duration: Duration,
}

/// Users whose creation was acknowledged: name -> id.
type Acknowledged = Arc<Mutex<BTreeMap<String, i64>>>;

struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    acknowledged: Acknowledged,
    failed: Arc<Mutex<usize>>,
}

fn publish(zone: &Zone, to: &Members) {
    *to.write().expect("members") = members(zone)
        .into_iter()
        .map(|i| (i, zone.servers[i].endpoint()))
        .collect();
}

/// `CLIENTS` clients on each zone's members, in turn, each creating users `fed-<zone>-<c>-<n>`.
fn start_clients(zones: [(&str, &Members); 2], session: String) -> Clients {
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let failed = Arc::new(Mutex::new(0));
    let mut threads = Vec::new();
    for (zone, members) in zones {
        for c in 0..CLIENTS {
            let (stop, acknowledged, failed) = (stop.clone(), acknowledged.clone(), failed.clone());
            let (members, session, zone) = (members.clone(), session.clone(), zone.to_string());
            threads.push(std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let list = members.read().expect("members").clone();
                    let Some((_, endpoint)) = list.get((n + c) % list.len().max(1)).cloned() else {
                        std::thread::sleep(PACE);
                        continue;
                    };
                    let name = format!("fed-{zone}-{c}-{n}");
                    let client = Client::new(endpoint, session.clone(), CALL_TIMEOUT);
                    match crate::zone::allocate(&client, &name) {
                        Ok(id) => {
                            acknowledged.lock().expect("acks").insert(name, id);
                        }
                        Err(_) => *failed.lock().expect("failures") += 1,
                    }
                    n += 1;
                    std::thread::sleep(PACE);
                }
            }));
        }
    }
    Clients {
        stop,
        threads,
        acknowledged,
        failed,
    }
}

/// The federated digest of server `i`'s database, with the FEDLOG_INDEX it shows.
fn federated_sum(zone: &Zone, i: usize) -> Option<String> {
    let xml = zone.servers[i]
        .client_with_timeout(STATUS_TIMEOUT)
        .call_xml(wire::method::ONEHA_DB_CHECKSUM, vec![])
        .ok()?;
    let e = Element::parse(&xml).ok()?.expect("DB_CHECKSUM").ok()?;
    Some(e.text_of("FEDERATED_SHA256").ok()?.to_string())
}

/// name -> id of every user server `i` lists.
fn users(zone: &Zone, i: usize) -> Option<BTreeMap<String, i64>> {
    let xml = zone.servers[i]
        .client()
        .call_xml(wire::method::USERPOOL_INFO, vec![])
        .ok()?;
    let pool = Element::parse(&xml).ok()?.expect("USER_POOL").ok()?;
    pool.children_named("USER")
        .map(|u| Some((u.text_of("NAME").ok()?.to_string(), u.int_of("ID").ok()?)))
        .collect()
}

pub fn run_federated_round(cfg: &FederatedRoundConfig) -> RoundReport {
    let steps: Vec<Step> = schedule(cfg.seed, cfg.duration)
        .into_iter()
        .map(|s| match s.fault {
            // A server replacement is the single-zone suite's: here the slave's would go
            // through the master, covered by it::federation.
            Fault::Replace(_) => Step {
                fault: Fault::Calm,
                ..s
            },
            _ => s,
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0xfed);
    let hits_master: Vec<bool> = steps.iter().map(|_| rng.gen_bool(0.5)).collect();
    eprintln!(
        "=== federated round: seed {} duration {:?}, {} steps",
        cfg.seed,
        cfg.duration,
        steps.len()
    );
    for (n, (s, m)) in steps.iter().zip(&hits_master).enumerate() {
        let zone = if *m { "master" } else { "slave" };
        eprintln!("  step {n}: {zone}: {s}");
    }

    let (mnet, snet) = (Network::new(), Network::new());
    let (mut master, mut slave) =
        crate::federation::master_and_slave(3, Some(mnet.clone()), Some(snet.clone()));
    crate::federation::federate(&master, &mut slave);
    slave.promote_solo_to_leader();
    slave.add_server();
    slave.add_server();

    let (mout, sout): (Members, Members) = (Arc::new(RwLock::new(Vec::new())), Arc::default());
    publish(&master, &mout);
    publish(&slave, &sout);
    let epoch = Instant::now();
    let clients = start_clients([("m", &mout), ("s", &sout)], master.servers[0].session());
    let mut report = RoundReport {
        steps: steps.len(),
        ..Default::default()
    };
    for (step, on_master) in steps.iter().zip(hits_master) {
        let (zone, net, out, name) = if on_master {
            (&mut master, &mnet, &mout, "master")
        } else {
            (&mut slave, &snet, &sout, "slave")
        };
        log(epoch, &format!("{name} zone:"));
        report
            .violations
            .extend(run_step(zone, net, step, out, epoch));
        std::thread::sleep(step.rest);
    }
    log(epoch, "stop the clients");
    clients.stop.store(true, Ordering::SeqCst);
    for t in clients.threads {
        if t.join().is_err() {
            report.violations.push("a client thread panicked".into());
        }
    }
    log(epoch, "heal both zones");
    heal(&mut master, &mnet);
    heal(&mut slave, &snet);
    checks::settle(&master, &mut report);
    checks::settle(&slave, &mut report);

    let all: Vec<(&Zone, usize)> = members(&master)
        .into_iter()
        .map(|i| (&master, i))
        .chain(members(&slave).into_iter().map(|i| (&slave, i)))
        .collect();
    let start = Instant::now();
    let sums = loop {
        let sums: Vec<Option<String>> = all.iter().map(|(z, i)| federated_sum(z, *i)).collect();
        if sums[0].is_some() && sums.iter().all(|s| s == &sums[0]) {
            break Ok(sums);
        }
        if start.elapsed() > CONVERGE {
            break Err(sums);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    match sums {
        Ok(s) => report.summary.push_str(&format!(
            "federated tables identical on {} servers of 2 zones, sha256 {}\n",
            s.len(),
            s[0].as_deref().unwrap_or_default()
        )),
        Err(s) => report.violations.push(format!(
            "the zones' federated tables still differ {CONVERGE:?} after healing: {s:?}"
        )),
    }

    let acknowledged = clients.acknowledged.lock().expect("acks").clone();
    for (zone, i) in &all {
        let Some(found) = users(zone, *i) else {
            report
                .violations
                .push(format!("server {i} of a zone does not list its users"));
            continue;
        };
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|(name, id)| found.get(*name) != Some(id))
            .take(5)
            .collect();
        if !lost.is_empty() {
            report.violations.push(format!(
                "zone {} server {i}: acknowledged users missing or with another id, e.g. {lost:?}",
                zone.servers[*i].zone_id
            ));
        }
    }
    // Counted since each server's last start: a statement on the shared tables that read a
    // zone's own rows would make the zones part.
    let series = "oneha_federated_statements_reading_local_tables_total";
    for (zone, i) in &all {
        let text = zone.servers[*i].scrape_metrics();
        let n = text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        });
        if n != Some(0.0) {
            report.violations.push(format!(
                "zone {} server {i}: {series} is {n:?}, not 0 (its log names the statements)",
                zone.servers[*i].zone_id
            ));
        }
    }
    report.summary.push_str(&format!(
        "{} users created and acknowledged through both zones, {} calls failed under faults\n",
        acknowledged.len(),
        clients.failed.lock().expect("failures")
    ));
    if !report.violations.is_empty() {
        eprintln!("{}\n{}", master.report(), slave.report());
    }
    report
}
