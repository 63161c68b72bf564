//! A write a follower forwards carries the index that follower had applied
//! (`X-OneHA-Applied`): the leader judges it on a state at least that new. A follower may apply
//! an entry before the leader's own state database does, and its client, having seen the
//! change there, must not have its next write refused on the leader's older state.

use std::time::Duration;

use crate::zone::{allocate, one_error, user_pool, Zone, INTERNAL};

const APPLIED: &str = "x-oneha-applied";
const FORWARDED: &str = "x-oneha-forwarded";

fn log_index(zone: &Zone, i: usize) -> u64 {
    zone.servers[i].raft_status().unwrap().log_index as u64
}

#[test]
fn a_forwarded_write_waits_until_the_leader_applied_what_the_follower_had() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let server = &zone.servers[leader];
    let ahead = log_index(&zone, leader) + 1;

    eprintln!("--- a forwarded write that names index {ahead}, one past the leader's log");
    let held = server
        .client()
        .with_header(FORWARDED, "1")
        .with_header(APPLIED, &ahead.to_string());
    let first = std::thread::spawn(move || allocate(&held, "judged-after"));
    zone.wait_until(
        Duration::from_secs(20),
        "the leader to hold the write",
        || server.metric("oneha_forwarded_write_catch_ups_total") >= 1.0,
    );

    eprintln!("--- a write on the leader makes that index; only then does the held one run");
    let next = allocate(&server.client(), "written-first").unwrap();
    let held_id = first.join().unwrap().unwrap();
    assert!(
        held_id > next,
        "the held write ran on the state before index {ahead}: user {held_id}, then {next}"
    );
}

#[test]
fn a_forwarded_write_naming_an_index_far_past_the_log_is_refused_and_writes_nothing() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let far = log_index(&zone, leader) + 1_000_000;
    let client = zone.servers[leader]
        .client()
        .with_header(FORWARDED, "1")
        .with_header(APPLIED, &far.to_string());
    let (code, message) = one_error(allocate(&client, "never"));
    assert_eq!(code, INTERNAL);
    assert!(
        message.starts_with(
            "[one.user.allocate] Cannot process request, the forwarding server applied index"
        ),
        "{message}"
    );
    assert!(!user_pool(&zone.servers[leader].client())
        .unwrap()
        .contains(&"never".to_string()));

    eprintln!("--- a well-formed index the leader has applied: the write runs at once");
    let client = zone.servers[leader]
        .client()
        .with_header(FORWARDED, "1")
        .with_header(APPLIED, "1");
    allocate(&client, "at-once").unwrap();
}

/// A client that writes through a follower reads its write there at once: the leader's answer
/// names the index it had applied, and the follower applies as much before it answers.
#[test]
fn a_client_reads_its_own_forwarded_writes_on_the_same_follower() {
    let zone = Zone::bootstrap(3);
    let follower = (zone.leader() + 1) % 3;
    let c = zone.servers[follower].client();
    for n in 0..100 {
        let id = c
            .call(
                "one.template.allocate",
                vec![xmlrpc::Value::String(format!("NAME = own-{n}\nCPU = 1"))],
            )
            .unwrap()
            .as_i64()
            .unwrap();
        c.call_xml("one.template.info", vec![xmlrpc::Value::Int(id as i32)])
            .unwrap_or_else(|e| panic!("template {id}, just made through this follower: {e:?}"));
    }
    assert_eq!(
        zone.servers[follower].metric("oneha_forwarded_writes_answered_unapplied_total"),
        0.0
    );
}
