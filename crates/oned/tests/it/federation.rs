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
