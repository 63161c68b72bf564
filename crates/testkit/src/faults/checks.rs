//! The checks after a round: the zone settles (one leader, every member a voter that caught
//! up, identical databases, a term that stays put) and the history is acceptable.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cli::xml::Element;
use lincheck::{Outcome, RegOp, SetAdd};

use super::round::RoundReport;
use super::workload::{set_names, History};
use crate::zone::{Zone, LEADER, STATUS_TIMEOUT};

/// How long the databases may take to converge after healing.
const CONVERGE: Duration = Duration::from_secs(60);
/// How long a healed zone is watched for a term that keeps growing.
const STABLE: Duration = Duration::from_secs(3);

fn members(zone: &Zone) -> Vec<usize> {
    (0..zone.servers.len())
        .filter(|&i| !zone.servers[i].removed)
        .collect()
}

/// `(LAST_APPLIED, SHA256)` of `oneha.db.checksum` on server `i`.
fn checksum(zone: &Zone, i: usize) -> Option<(i64, String)> {
    let xml = zone.servers[i]
        .client_with_timeout(STATUS_TIMEOUT)
        .call_xml(wire::method::ONEHA_DB_CHECKSUM, vec![])
        .ok()?;
    let e = Element::parse(&xml).ok()?.expect("DB_CHECKSUM").ok()?;
    Some((
        e.int_of("LAST_APPLIED").ok()?,
        e.text_of("SHA256").ok()?.to_string(),
    ))
}

/// Waits for the healed zone to settle and checks the replicas.
pub fn settle(zone: &Zone, report: &mut RoundReport) {
    zone.leader();
    for i in members(zone) {
        zone.wait_voter(i);
    }
    zone.wait_caught_up();

    let start = Instant::now();
    let sums = loop {
        let sums: Vec<(usize, Option<(i64, String)>)> = members(zone)
            .into_iter()
            .map(|i| (i, checksum(zone, i)))
            .collect();
        let distinct: BTreeSet<&Option<(i64, String)>> = sums.iter().map(|(_, s)| s).collect();
        if distinct.len() == 1 && sums[0].1.is_some() {
            break Ok(sums);
        }
        if start.elapsed() > CONVERGE {
            break Err(sums);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    match sums {
        Ok(s) => {
            let (index, sha) = s[0].1.clone().unwrap_or_default();
            report.summary.push_str(&format!(
                "replicas identical: {} servers at applied index {index}, sha256 {}\n",
                s.len(),
                &sha[..16.min(sha.len())]
            ));
        }
        Err(s) => report.violations.push(format!(
            "replicas diverged: checksums still differ {CONVERGE:?} after healing: {s:?}"
        )),
    }

    let status = |zone: &Zone| -> Vec<(usize, Option<(i64, i64)>)> {
        members(zone)
            .into_iter()
            .map(|i| (i, zone.servers[i].raft_status().map(|r| (r.state, r.term))))
            .collect()
    };
    let first = status(zone);
    let leaders = first
        .iter()
        .filter(|(_, s)| s.is_some_and(|(state, _)| state == LEADER))
        .count();
    if leaders != 1 {
        report
            .violations
            .push(format!("{leaders} leaders after healing: {first:?}"));
    }
    let start = Instant::now();
    while start.elapsed() < STABLE {
        let now = status(zone);
        if now != first {
            report.violations.push(format!(
                "the healed zone is not stable (term or leader changed without faults): {first:?} -> {now:?}"
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks the recorded history; adds a summary and any violation to `report`.
pub fn check_history(zone: &Zone, h: &History, report: &mut RoundReport) {
    let leader = zone.leader();
    let reader = zone.servers[leader]
        .client()
        .with_header(wire::header::LEADER_READ, wire::header::LEADER_READ_VALUE);
    let present = reader
        .call_xml(wire::method::USERPOOL_INFO, vec![])
        .ok()
        .and_then(|x| set_names(&x));
    let adds: Vec<SetAdd> = h.adds.iter().map(|(_, _, a)| a.clone()).collect();
    match present {
        None => report
            .violations
            .push("could not read the user pool from the leader after healing".into()),
        Some(present) => match lincheck::check_set(&adds, &present) {
            Ok(stats) => report.summary.push_str(&format!("set: {stats:?}\n")),
            Err(vs) => report
                .violations
                .extend(vs.into_iter().map(|v| format!("set: {v}"))),
        },
    }

    for (key, events) in &h.registers {
        let writes = events
            .iter()
            .filter(|e| matches!(e.op, RegOp::Write(_)))
            .count();
        let unknown = events
            .iter()
            .filter(|e| matches!(e.op, RegOp::Write(_)) && e.outcome == Outcome::Unknown)
            .count();
        match lincheck::check_register(events, None) {
            Ok(stats) => report.summary.push_str(&format!(
                "register {key}: linearizable ({} ops, {writes} writes, {unknown} unknown; {stats:?})\n",
                events.len()
            )),
            Err(v) => report
                .violations
                .push(format!("register {key} (user id): {v}")),
        }
    }

    let allowed: BTreeSet<String> = h
        .adds
        .iter()
        .filter(|(_, _, a)| a.outcome != Outcome::Failed)
        .map(|(_, _, a)| a.name.clone())
        .collect();
    let mut follower_reads = 0;
    for ((reader, server), reads) in &h.follower_sets {
        follower_reads += reads.len();
        if let Err(v) = lincheck::check_monotonic_set_reads(reads, &allowed) {
            report.violations.push(format!(
                "follower reads of reader {reader} on server {server}: {v}"
            ));
        }
    }
    for (key, values) in &h.follower_values {
        let written: BTreeSet<String> = h
            .registers
            .get(key)
            .into_iter()
            .flatten()
            .filter(|e| e.outcome != Outcome::Failed)
            .filter_map(|e| match &e.op {
                RegOp::Write(v) => Some(v.clone()),
                RegOp::Read(_) => None,
            })
            .collect();
        follower_reads += values.len();
        if let Err(v) = lincheck::check_register_values_seen(values, &written, None) {
            report
                .violations
                .push(format!("follower reads of register {key}: {v}"));
        }
    }

    let mut oks = h.write_oks.clone();
    oks.sort_unstable();
    let longest_gap = oks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    report.summary.push_str(&format!(
        "{} acknowledged writes; leader reads {} ok / {} failed; {follower_reads} follower reads; longest time without an acknowledged write {} ms\n",
        oks.len(),
        h.reads.ok,
        h.reads.failed,
        longest_gap / 1_000_000
    ));
}
