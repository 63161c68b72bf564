//! A federation's master zone (`FEDERATION/MODE = "MASTER"`) keeps a federated log: every
//! write to the tables zones share (users, groups, ACL rules, zones, VDCs, marketplaces)
//! becomes its next record, on every server of the zone alike, and raftstatus shows the
//! newest one as FEDLOG_INDEX. A standalone zone keeps none and shows -1, as OpenNebula.

use std::time::Duration;

use xmlrpc::Value;

use crate::zone::{allocate, Setup, Zone, DEADLINE};

fn fedlog_index(zone: &Zone, i: usize) -> i64 {
    zone.servers[i].raft_status().unwrap().fedlog_index
}

/// Waits until every server has applied what the leader has, and returns their FEDLOG_INDEX.
fn settled(zone: &Zone) -> Vec<i64> {
    let leader = zone.leader();
    zone.wait_until(
        DEADLINE,
        "every server to apply the leader's writes",
        || {
            let target = zone.applied(leader);
            (0..zone.servers.len()).all(|i| zone.applied(i) == target)
        },
    );
    (0..zone.servers.len())
        .map(|i| fedlog_index(zone, i))
        .collect()
}

#[test]
fn every_server_of_a_master_zone_records_the_same_federated_log() {
    let setup: Setup = Box::new(|_, s| s.federation_mode = "MASTER");
    let zone = Zone::bootstrap_custom(3, None, Some(setup));
    let c = zone.servers[zone.leader()].client();

    let start = settled(&zone);
    assert!(start.iter().all(|&i| i == start[0]), "{start:?}");
    assert!(
        start[0] >= 1,
        "the servers added to zone 0 are federated writes: {start:?}"
    );

    eprintln!("--- a user is a federated write: one more record on every server");
    allocate(&c, "shared").unwrap();
    let after_user = settled(&zone);
    assert_eq!(after_user, vec![start[0] + 1; 3]);

    eprintln!("--- a host is the zone's own: no record");
    c.call(
        wire::method::HOST_ALLOCATE,
        vec![
            Value::String("local-host".into()),
            Value::String("dummy".into()),
            Value::String("dummy".into()),
            Value::Int(-1),
        ],
    )
    .unwrap();
    assert_eq!(settled(&zone), after_user);

    eprintln!("--- the log survives a restart of the leader");
    let mut zone = zone;
    let old = zone.leader();
    zone.servers[old].stop();
    zone.servers[old].start();
    zone.wait_until(Duration::from_secs(30), "server back", || {
        zone.servers[old].raft_status().is_some()
    });
    let c = zone.servers[zone.leader()].client();
    c.call(
        "one.group.allocate",
        vec![Value::String("shared-group".into())],
    )
    .unwrap();
    assert_eq!(settled(&zone), vec![after_user[0] + 1; 3]);
}

#[test]
fn a_standalone_zone_keeps_no_federated_log() {
    let zone = Zone::bootstrap(3);
    allocate(&zone.servers[zone.leader()].client(), "alone").unwrap();
    assert_eq!(settled(&zone), vec![-1; 3]);
}

/// The master's record `index` as `one.zone.fedreplicate` carries it: the federated
/// statements of a new user.
fn user_record(name: &str) -> String {
    let stmts: Vec<sqlstore::SqlStmt> =
        sqlstore::objects::user::insert(name, "hash".into(), "core", 1)
            .into_iter()
            .filter(sqlstore::is_federated_write)
            .collect();
    serde_json::to_string(&stmts).unwrap()
}

fn fedreplicate(
    client: &cli::Client,
    index: i64,
    prev: i64,
    record: &str,
) -> Result<Value, cli::CallError> {
    client.call(
        "one.zone.fedreplicate",
        vec![
            Value::I8(index),
            Value::I8(prev),
            Value::String(record.into()),
        ],
    )
}

/// A slave zone (`MODE = "SLAVE"`) applies the master's records in order, through its own
/// log, on every server; a record out of order is answered with the index to resume from,
/// and one that writes anything but the federated tables is refused whole.
#[test]
fn a_slave_zone_applies_the_masters_records_in_order_and_once() {
    let setup: Setup = Box::new(|_, s| s.federation_mode = "SLAVE");
    let zone = Zone::bootstrap_custom(3, None, Some(setup));
    let follower = (zone.leader() + 1) % 3;
    let c = zone.servers[follower].client();

    eprintln!("--- record 1 through a follower: forwarded, applied on every server");
    let done = fedreplicate(&c, 1, -1, &user_record("from-master")).unwrap();
    assert_eq!(done.as_i64(), Some(1));
    assert_eq!(settled(&zone), vec![1; 3]);
    for s in &zone.servers {
        assert!(crate::zone::user_pool(&s.client())
            .unwrap()
            .contains(&"from-master".to_string()));
    }

    eprintln!("--- the same record again, and one that skips ahead: the index to resume from");
    for (index, prev) in [(1, 0), (3, 2)] {
        let (code, message) = crate::zone::one_error(fedreplicate(
            &c,
            index,
            prev,
            &user_record(&format!("dup-{index}")),
        ));
        assert_eq!(
            (code, message.as_str()),
            (
                0x10000,
                "[one.zone.fedreplicate] Zone log is outdated last log index is 1"
            )
        );
    }

    eprintln!("--- a record that writes a local table is refused, nothing applied");
    let local = serde_json::to_string(&vec![sqlstore::SqlStmt::new(
        "DELETE FROM host_pool",
        vec![],
    )])
    .unwrap();
    let (code, message) = crate::zone::one_error(fedreplicate(&c, 2, 1, &local));
    assert_eq!(code, 0x10000);
    assert!(
        message.starts_with("[one.zone.fedreplicate] Error replicating log entry 2 in zone: a statement that writes no federated table"),
        "{message}"
    );
    assert_eq!(settled(&zone), vec![1; 3]);

    eprintln!("--- record 2 follows record 1");
    fedreplicate(&c, 2, 1, &user_record("second")).unwrap();
    assert_eq!(settled(&zone), vec![2; 3]);

    eprintln!("--- only oneadmin's group sends records");
    allocate(&c, "plain").unwrap();
    settled(&zone); // the follower knows the new user before it logs in there
    let plain = zone.servers[follower].client_as("plain", "pw-plain");
    let (code, _) = crate::zone::one_error(fedreplicate(&plain, 3, 2, &user_record("x")));
    assert_eq!(code, 0x200);
}

#[test]
fn a_master_or_standalone_zone_takes_no_records() {
    let zone = Zone::solo();
    let (code, message) = crate::zone::one_error(fedreplicate(
        &zone.servers[0].client(),
        1,
        -1,
        &user_record("nope"),
    ));
    assert_eq!(
        (code, message.as_str()),
        (
            0x10000,
            "[one.zone.fedreplicate] Cannot replicate federate log records on federation master"
        )
    );
}
