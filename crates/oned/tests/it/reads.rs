//! Reads in a zone: followers answer from their own (possibly stale) database, `X-OneHA-Read:
//! leader` makes any server pass a read to the leader, a leader without a quorum refuses such a
//! read, and `oneha.db.checksum` shows identical replicas. Also `one.user.update` and server ids.

use cli::xml::Element;
use cli::Client;
use xmlrpc::Value;

use crate::zone::{allocate, one_error, Zone, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS};

fn reg(client: &Client, id: i64) -> Option<String> {
    let xml = client
        .call_xml("one.user.info", vec![Value::Int(id as i32)])
        .unwrap();
    let user = Element::parse(&xml).unwrap().expect("USER").unwrap();
    user.child("TEMPLATE")
        .and_then(|t| t.child("REG"))
        .map(|e| e.text.clone())
}

fn update(client: &Client, id: i64, text: &str, merge: bool) -> Result<Value, cli::CallError> {
    client.call(
        "one.user.update",
        vec![
            Value::Int(id as i32),
            Value::String(text.into()),
            Value::Int(merge as i32),
        ],
    )
}

fn checksum(client: &Client) -> (i64, String) {
    let xml = client.call_xml("oneha.db.checksum", vec![]).unwrap();
    let e = Element::parse(&xml).unwrap().expect("DB_CHECKSUM").unwrap();
    (
        e.int_of("LAST_APPLIED").unwrap(),
        e.text_of("SHA256").unwrap().to_string(),
    )
}

#[test]
fn user_update_replaces_or_merges_the_template() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let id = allocate(&c, "tpl").unwrap();

    update(&c, id, "REG = \"a\"\nCOLOR = blue", false).unwrap();
    assert_eq!(reg(&c, id).as_deref(), Some("a"));
    update(&c, id, "REG = \"b\"", true).unwrap();
    assert_eq!(reg(&c, id).as_deref(), Some("b"));
    let xml = c
        .call_xml("one.user.info", vec![Value::Int(id as i32)])
        .unwrap();
    assert!(xml.contains("COLOR"), "merge keeps other attributes: {xml}");
    update(&c, id, "OTHER = 1", false).unwrap();
    assert_eq!(reg(&c, id), None, "replace drops REG");

    let (code, message) = one_error(update(&c, 999, "REG = x", true));
    assert_eq!(code, NO_EXISTS, "{message}");
    let (code, message) = one_error(update(&c, id, "REG = [unclosed", false));
    assert_eq!(code, INTERNAL, "{message}");
    assert!(message.starts_with("[one.user.update]"), "{message}");
    allocate(&c, "bob").unwrap();
    let bob = zone.servers[0].client_as("bob", "pw-bob");
    let (code, message) = one_error(update(&bob, id, "REG = evil", true));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert_eq!(reg(&c, id), None);
}

#[test]
fn a_leader_read_sent_to_a_follower_sees_the_latest_write() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let id = allocate(&zone.servers[leader].client(), "reg").unwrap();
    let via_follower = zone.servers[follower]
        .client()
        .with_header("X-OneHA-Read", "leader");
    for n in 0..20 {
        let value = format!("v{n}");
        update(
            &zone.servers[leader].client(),
            id,
            &format!("REG = \"{value}\""),
            true,
        )
        .unwrap();
        assert_eq!(reg(&via_follower, id), Some(value), "read {n}");
    }
}

#[test]
fn a_leader_without_quorum_refuses_leader_reads_but_serves_local_ones() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let id = allocate(&zone.servers[leader].client(), "cut-off").unwrap();
    zone.wait_caught_up();
    for i in (0..3).filter(|&i| i != leader) {
        zone.servers[i].kill();
    }
    let plain = zone.servers[leader].client();
    assert_eq!(reg(&plain, id), None, "a local read is served");
    let strict = plain.clone().with_header("X-OneHA-Read", "leader");
    let (code, message) = one_error(strict.call_xml("one.user.info", vec![Value::Int(id as i32)]));
    assert_eq!(code, INTERNAL, "{message}");
    assert!(message.contains("no quorum"), "{message}");
}

#[test]
fn every_replica_reports_the_same_checksum_and_server_ids_are_never_reused() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    for n in 0..10 {
        allocate(&zone.servers[leader].client(), &format!("u{n}")).unwrap();
    }
    zone.wait_caught_up();
    zone.wait_until(DEADLINE, "every server reports the same checksum", || {
        let sums: Vec<_> = (0..3)
            .map(|i| checksum(&zone.servers[i].client()))
            .collect();
        sums.iter().all(|s| *s == sums[0])
    });

    eprintln!("--- server-del the highest id, then server-add: the new server gets a new id");
    let top = 2;
    let via = if leader == top { 0 } else { leader };
    let via = if zone.servers[via].raft_status().unwrap().state == crate::zone::LEADER {
        via
    } else {
        zone.leader()
    };
    zone.onezone_ok(via, &["server-del", "0", &top.to_string()]);
    zone.servers[top].kill();
    zone.servers[top].removed = true;
    let i = zone.prepare_server();
    assert_eq!(i, 3);
    zone.server_add(i);
    zone.servers[i].start();
    zone.wait_voter(i);
    let info = zone.servers[zone.leader()].zone_info().unwrap();
    let ids: Vec<i64> = info.servers.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![0, 1, 3], "{info:?}");
}

/// Regression (fault suite, seed 1795568728537764266, 5 servers): a follower forwarded a leader
/// read without its `X-OneHA-Read` header, so the server it reached answered from its own
/// database even when it was no longer the leader: a stale read. A forwarded read must get the
/// leader's treatment, or an error.
#[test]
fn a_forwarded_read_reaching_a_non_leader_is_never_served_locally() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let id = allocate(&zone.servers[leader].client(), "fwd").unwrap();
    zone.wait_caught_up();
    let as_if_forwarded = zone.servers[follower]
        .client()
        .with_header("x-oneha-forwarded", "1");
    let (code, message) =
        one_error(as_if_forwarded.call_xml("one.user.info", vec![Value::Int(id as i32)]));
    assert_eq!(code, INTERNAL, "{message}");
    assert!(
        message.contains("leader changed while forwarding"),
        "{message}"
    );
    // The same read, forwarded to the leader, is answered.
    let at_leader = zone.servers[leader]
        .client()
        .with_header("x-oneha-forwarded", "1");
    assert!(at_leader
        .call_xml("one.user.info", vec![Value::Int(id as i32)])
        .is_ok());
}
