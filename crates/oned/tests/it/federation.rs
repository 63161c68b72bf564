//! A federation's master zone (`FEDERATION/MODE = "MASTER"`) keeps a federated log: every
//! write to the tables zones share (users, groups, ACL rules, zones, VDCs, marketplaces)
//! becomes its next record, on every server of the zone alike, and raftstatus shows the
//! newest one as FEDLOG_INDEX. A standalone zone keeps none and shows -1, as OpenNebula.

use std::time::Duration;

use xmlrpc::Value;

use crate::zone::{allocate, Setup, Zone, DEADLINE};
use testkit::federation::federate;

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
    // A standalone HA zone turned slave, one server at a time. No master answers there: this
    // zone is only sent records.
    let mut zone = Zone::bootstrap(3);
    for s in &mut zone.servers {
        s.stop();
        s.federation_mode = "SLAVE";
        s.master_oned = "http://127.0.0.1:1/RPC2".into();
        s.write_conf();
        s.start();
    }
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

    eprintln!("--- a change of a shared object goes to the master, here unreachable");
    let (code, message) = crate::zone::one_error(allocate(&c, "nowhere"));
    assert_eq!(
        (code, message.as_str()),
        (
            crate::zone::INTERNAL,
            "[one.user.allocate] Could not connect to the federation master oned"
        )
    );
    assert_eq!(settled(&zone), vec![1; 3], "nothing written here");

    eprintln!("--- record 2 follows record 1");
    fedreplicate(&c, 2, 1, &user_record("second")).unwrap();
    assert_eq!(settled(&zone), vec![2; 3]);
}

#[test]
fn a_master_or_standalone_zone_takes_no_records() {
    let zone = Zone::solo();
    eprintln!("--- only oneadmin's group sends records");
    let uid = allocate(&zone.servers[0].client(), "plain").unwrap();
    let plain = zone.servers[0].client_as("plain", "pw-plain");
    let (code, message) = crate::zone::one_error(fedreplicate(&plain, 1, 0, &user_record("x")));
    assert_eq!(
        (code, message),
        (
            0x200,
            format!(
                "[one.zone.fedreplicate] User [{uid}] not authorized to perform action on zone."
            )
        )
    );
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

    eprintln!("--- snapshots: oneadmin only, and only a slave takes them");
    let snapshot = |c: &cli::Client| {
        c.call(
            wire::method::ONEHA_ZONE_FEDSNAPSHOT,
            vec![Value::I8(1), Value::String("{}".into())],
        )
    };
    let (code, message) = crate::zone::one_error(snapshot(&plain));
    assert_eq!(
        (code, message),
        (
            0x200,
            format!(
                "[oneha.zone.fedsnapshot] User [{uid}] not authorized to perform action on zone."
            )
        )
    );
    let (code, _) = crate::zone::one_error(snapshot(&zone.servers[0].client()));
    assert_eq!(code, 0x10000);

    eprintln!("--- one.zone.updatedb: oneadmin only, a zone document of at most 64 KiB");
    let (code, _) = crate::zone::one_error(plain.call(
        "one.zone.updatedb",
        vec![Value::Int(0), Value::String("<ZONE/>".into())],
    ));
    assert_eq!(code, 0x200);
    let mut xml = String::new();
    {
        let z = zone.servers[0].client();
        xml.push_str(
            &z.call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
                .unwrap(),
        );
    }
    let huge = xml.replace(
        "</ZONE>",
        &format!("<PAD>{}</PAD></ZONE>", "x".repeat(65 << 10)),
    );
    let (code, message) = crate::zone::one_error(zone.servers[0].client().call(
        "one.zone.updatedb",
        vec![Value::Int(0), Value::String(huge)],
    ));
    assert_eq!(
        (code, message.as_str()),
        (
            crate::zone::INTERNAL,
            "[one.zone.updatedb] Cannot update object from XML"
        )
    );
    zone.servers[0]
        .client()
        .call("one.zone.updatedb", vec![Value::Int(0), Value::String(xml)])
        .unwrap();
}

fn has_user(server: &crate::zone::Server, name: &str) -> bool {
    crate::zone::user_pool(&server.client())
        .map(|names| names.contains(&name.to_string()))
        .unwrap_or(false)
}

fn master_and_slave(n: usize) -> (Zone, Zone) {
    testkit::federation::master_and_slave(n, None, None)
}

/// OpenNebula's federation procedure on loopback: a 3-server master zone creates the slave
/// zone, its federated tables are backed up and restored into the slave's first server, which
/// then starts as zone 100 in SLAVE mode. The master's leader pushes every later federated
/// write; a user created on the master logs in on the slave. The push goes on from the right
/// record after the master's leader is killed and after the slave was down.
#[test]
fn a_master_zone_pushes_its_federated_writes_to_a_slave_zone() {
    let (mut master, mut slave) = master_and_slave(3);
    allocate(&master.servers[master.leader()].client(), "before-backup").unwrap();
    federate(&master, &mut slave);
    assert!(has_user(&slave.servers[0], "before-backup"));

    eprintln!("--- a user created on the master reaches the slave and logs in there");
    allocate(&master.servers[master.leader()].client(), "everywhere").unwrap();
    slave.wait_until(DEADLINE, "the user on the slave", || {
        has_user(&slave.servers[0], "everywhere")
    });
    let as_user = slave.servers[0].client_as("everywhere", "pw-everywhere");
    as_user
        .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)])
        .unwrap();

    eprintln!("--- a user created through the slave: made by the master, then on the slave");
    let via_slave = allocate(&slave.servers[0].client(), "made-on-slave").unwrap();
    assert!(has_user(&master.servers[master.leader()], "made-on-slave"));
    slave.wait_until(DEADLINE, "the user back on the slave", || {
        has_user(&slave.servers[0], "made-on-slave")
    });
    let on_slave = crate::zone::user_name(&slave.servers[0].client(), via_slave);
    assert_eq!(
        on_slave.as_deref(),
        Some("made-on-slave"),
        "same id in both zones"
    );
    slave.servers[0]
        .client()
        .call(
            "one.user.passwd",
            vec![
                Value::Int(via_slave as i32),
                Value::String("changed".into()),
            ],
        )
        .unwrap();
    slave.wait_until(DEADLINE, "the new password on the slave", || {
        slave.servers[0]
            .client_as("made-on-slave", "changed")
            .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)])
            .is_ok()
    });

    let caught_up = |master: &Zone, slave: &Zone| {
        let m = settled(master)[0];
        slave.servers[0]
            .raft_status()
            .is_some_and(|r| r.fedlog_index == m)
    };
    slave.wait_until(DEADLINE, "the slave's FEDLOG_INDEX at the master's", || {
        caught_up(&master, &slave)
    });

    eprintln!("--- the master's leader killed: the next leader carries on");
    let old = master.leader();
    master.servers[old].kill();
    master.wait_until(DEADLINE, "a new master leader", || {
        (0..3).filter(|&i| i != old).any(
            |i| matches!(master.servers[i].raft_status(), Some(r) if r.state_name() == "leader"),
        )
    });
    let survivor = (0..3).find(|&i| i != old).unwrap();
    allocate(&master.servers[survivor].client(), "after-failover").unwrap();
    slave.wait_until(DEADLINE, "the user on the slave", || {
        has_user(&slave.servers[0], "after-failover")
    });
    master.servers[old].start();

    eprintln!("--- the slave down while the master writes: it catches up when back");
    slave.servers[0].stop();
    let c = master.servers[master.leader()].client();
    for n in 0..3 {
        allocate(&c, &format!("while-down-{n}")).unwrap();
    }
    slave.servers[0].start();
    slave.wait_until(DEADLINE, "the slave caught up", || {
        caught_up(&master, &slave)
    });
    for n in 0..3 {
        assert!(has_user(&slave.servers[0], &format!("while-down-{n}")));
    }
}

/// The servers of zone `zone` as `server` sees them: (id, name).
fn zone_servers(server: &crate::zone::Server, zone: i64) -> Vec<(i64, String)> {
    let xml = server
        .client()
        .call_xml(wire::method::ZONE_INFO, vec![Value::Int(zone as i32)])
        .unwrap();
    cli::ZoneInfo::from_xml(&xml)
        .unwrap()
        .servers
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect()
}

/// The guide's HA steps grow a slave zone to three servers: each `onezone server-add` goes to
/// the master (the zones' table is the master's), comes back through the federated log, and
/// only then joins the slave's Raft group. `onezone server-del` goes the same way. Every
/// server of both zones ends with the same server pool for zone 100, and a user created on
/// the master reaches every server of the slave zone.
#[test]
fn a_slave_zone_grows_to_three_servers_through_its_master() {
    let (master, mut slave) = master_and_slave(1);
    federate(&master, &mut slave);
    slave.promote_solo_to_leader();
    slave.add_server();
    slave.add_server();
    let want: Vec<(i64, String)> = (0..3).map(|i| (i, format!("server-{i}"))).collect();
    assert_eq!(zone_servers(&master.servers[0], 100), want, "at the master");
    for i in 0..3 {
        assert_eq!(
            zone_servers(&slave.servers[i], 100),
            want,
            "on slave server {i}"
        );
    }

    eprintln!("--- a user created on the master reaches every server of the slave zone");
    allocate(&master.servers[0].client(), "on-three").unwrap();
    slave.wait_until(DEADLINE, "the user on every slave server", || {
        (0..3).all(|i| has_user(&slave.servers[i], "on-three"))
    });

    eprintln!("--- onezone list on the slave shows both zones");
    let (code, out, err) = slave.onezone(0, &["list"]);
    assert_eq!(code, 0, "{err}");
    for name in ["OpenNebula", "slave"] {
        assert!(
            out.contains(name),
            "{name} missing from onezone list:\n{out}"
        );
    }

    eprintln!("--- onezone server-del of server 2, through the slave's leader");
    let leader = slave.leader();
    slave.onezone_ok(leader, &["server-del", "100", "2"]);
    let want = want[..2].to_vec();
    assert_eq!(zone_servers(&master.servers[0], 100), want, "at the master");

    slave.servers[2].removed = true;
    for i in [0, 1] {
        slave.wait_until(
            DEADLINE,
            &format!("slave server {i} lists two servers"),
            || zone_servers(&slave.servers[i], 100) == want,
        );
    }
    slave.servers[2].stop();
    allocate(&master.servers[0].client(), "on-two").unwrap();
    slave.wait_until(DEADLINE, "the user on both slave servers", || {
        (0..2).all(|i| has_user(&slave.servers[i], "on-two"))
    });

    eprintln!("--- only oneadmin changes zones at the master directly");
    let plain = allocate(&master.servers[0].client(), "plain").unwrap();
    let (code, message) =
        crate::zone::one_error(master.servers[0].client_as("plain", "pw-plain").call(
            "one.zone.updatedb",
            vec![Value::Int(100), Value::String("<ZONE/>".into())],
        ));
    assert_eq!(
        (code, message),
        (
            0x0200,
            format!("[one.zone.updatedb] User [{plain}] not authorized to perform action on zone.")
        )
    );
    let (code, message) = crate::zone::one_error(master.servers[0].client().call(
        "one.zone.updatedb",
        vec![Value::Int(100), Value::String("<ZONE><ID>100".into())],
    ));
    assert_eq!(
        (code, message.as_str()),
        (
            crate::zone::INTERNAL,
            "[one.zone.updatedb] Cannot update object from XML"
        )
    );
    assert_eq!(
        zone_servers(&master.servers[0], 100),
        want,
        "nothing changed"
    );
}

/// Federated tables keep their own version (`db_versioning`, carried by
/// `onedb backup --federated`): a slave zone holding another version than its build's does not
/// start, and records a master of another version sends are refused with nothing applied.
#[test]
fn a_slave_refuses_federated_tables_of_another_version() {
    let mut zone = Zone::solo();
    zone.servers[0].stop();
    zone.servers[0].federation_mode = "SLAVE";
    zone.servers[0].master_oned = "http://127.0.0.1:1/RPC2".into();
    zone.servers[0].write_conf();

    eprintln!("--- records from a master of another version: refused, nothing applied");
    zone.servers[0].start();
    let call = xmlrpc::write_call(&xmlrpc::MethodCall {
        method: "one.zone.fedreplicate".into(),
        params: vec![
            Value::String(zone.servers[0].session()),
            Value::I8(1),
            Value::I8(0),
            Value::String(user_record("other-version")),
        ],
    });
    let answer = ureq::post(&zone.servers[0].endpoint())
        .set("content-type", "text/xml")
        .set(wire::header::FED_VERSION, "6.10.0")
        .send_bytes(call.as_bytes())
        .unwrap()
        .into_string()
        .unwrap();
    let values = match xmlrpc::parse_response(answer.as_bytes()).unwrap() {
        xmlrpc::Response::Success(Value::Array(values)) => values,
        other => panic!("{other:?}"),
    };
    assert_eq!(values[0].as_bool(), Some(false));
    assert!(
        values[1]
            .as_str()
            .unwrap()
            .contains("federated tables of another version"),
        "{values:?}"
    );
    assert_eq!(values[2].as_i64(), Some(0x10000));
    assert!(!has_user(&zone.servers[0], "other-version"));
    assert_eq!(fedlog_index(&zone, 0), -1);
    eprintln!("--- the same record from a master of this version is applied");
    fedreplicate(
        &zone.servers[0].client(),
        1,
        0,
        &user_record("same-version"),
    )
    .unwrap();
    assert!(has_user(&zone.servers[0], "same-version"));

    eprintln!("--- a snapshot that is not one, or not of the federated tables: nothing applied");
    let c = zone.servers[0].client();
    for (body, why) in [
        ("not json", "not a federated snapshot"),
        (r#"{"index":1,"tables":[]}"#, "not the federated tables"),
        (
            r#"{"index":1,"tables":[{"table":"host_pool","columns":["oid"],"rows":[]}]}"#,
            "not the federated tables",
        ),
    ] {
        let (code, message) = crate::zone::one_error(c.call(
            wire::method::ONEHA_ZONE_FEDSNAPSHOT,
            vec![Value::I8(1), Value::String(body.into())],
        ));
        assert_eq!(code, 0x10000, "{message}");
        assert!(message.contains(why), "{message}");
    }
    assert!(has_user(&zone.servers[0], "same-version"));

    eprintln!("--- federated tables restored from another version: the slave does not start");
    zone.servers[0].stop();
    let conn = sqlstore::open_state(&zone.servers[0].state_location()).unwrap();
    conn.execute(
        "INSERT INTO db_versioning (oid, version, timestamp, comment) VALUES (1, '6.10.0', 0, 'x')",
        (),
    )
    .unwrap();
    drop(conn);
    let (status, stderr) = crate::zone::run_oned_to_exit(zone.servers[0].location());
    assert!(!status.success());
    assert!(
        stderr.contains("existing DB version is '6.10.0'")
            && stderr.contains("Cannot join federation, oned master needs upgrade."),
        "{stderr}"
    );
}

/// A slave zone whose federated tables drifted from the master's (here a user row lost while
/// it was stopped) cannot apply the master's next record about it: the master then sends its
/// federated tables whole (`oneha.zone.fedsnapshot`), and the slave is repaired by itself,
/// through its own log, with no operator restore. So is a slave behind the records the master
/// keeps.
#[test]
fn a_slave_zone_that_drifted_is_repaired_by_a_federated_snapshot() {
    let (master, mut slave) = master_and_slave(1);
    federate(&master, &mut slave);
    let c = master.servers[0].client();
    let drifted = allocate(&c, "drifted").unwrap();
    slave.wait_until(DEADLINE, "the user on the slave", || {
        has_user(&slave.servers[0], "drifted")
    });

    eprintln!("--- the slave loses the user's row while it is stopped");
    slave.servers[0].stop();
    let conn = sqlstore::open_state(&slave.servers[0].state_location()).unwrap();
    conn.execute("DELETE FROM user_pool WHERE name = 'drifted'", ())
        .unwrap();
    drop(conn);
    slave.servers[0].start();
    assert!(!has_user(&slave.servers[0], "drifted"));

    eprintln!("--- the master changes that user: the record cannot apply, the snapshot repairs");
    c.call(
        "one.user.passwd",
        vec![Value::Int(drifted as i32), Value::String("new-pw".into())],
    )
    .unwrap();
    allocate(&c, "after-repair").unwrap();
    let master_index = settled(&master)[0];
    slave.wait_until(DEADLINE, "the slave at the master's FEDLOG_INDEX", || {
        slave.servers[0]
            .raft_status()
            .is_some_and(|r| r.fedlog_index == master_index)
    });
    assert!(has_user(&slave.servers[0], "drifted"));
    assert!(has_user(&slave.servers[0], "after-repair"));
    slave.servers[0]
        .client_as("drifted", "new-pw")
        .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)])
        .unwrap();

    eprintln!("--- records follow the snapshot as usual");
    allocate(&c, "after-snapshot").unwrap();
    slave.wait_until(DEADLINE, "the next user on the slave", || {
        has_user(&slave.servers[0], "after-snapshot")
    });

    eprintln!("--- the slave down while the master drops the records it lacks: a snapshot again");
    slave.servers[0].stop();
    for n in 0..3 {
        allocate(&c, &format!("while-gone-{n}")).unwrap();
    }
    let mut master = master;
    keep_only_the_newest_record(&mut master, &mut slave);
    for n in 0..3 {
        assert!(has_user(&slave.servers[0], &format!("while-gone-{n}")));
    }
}

/// What `FED_LOG_RETENTION` does past 10,000 records, done to the stopped master while the
/// stopped slave lacks records: the master keeps only its newest. Both start again, and the
/// slave must reach that record (from a snapshot).
fn keep_only_the_newest_record(master: &mut Zone, slave: &mut Zone) {
    let newest = settled(master)[0];
    master.servers[0].stop();
    let conn = sqlstore::open_state(&master.servers[0].state_location()).unwrap();
    conn.execute("DELETE FROM fed_log WHERE fed_index < ?1", [newest])
        .unwrap();
    drop(conn);
    master.servers[0].start();
    slave.servers[0].start();
    slave.wait_until(DEADLINE, "the slave at the master's FEDLOG_INDEX", || {
        slave.servers[0]
            .raft_status()
            .is_some_and(|r| r.fedlog_index == newest)
    });
}

/// Federated zones with TLS (`TLS = [...]` on every server, one CA, https endpoints): the
/// master's records reach the slave over https, and the slave's changes of shared objects
/// reach the master over https.
#[test]
fn federated_zones_with_tls_talk_over_https() {
    let ca = std::sync::Arc::new(testkit::tls::TestCa::new("OneHA federation CA"));
    let (master, mut slave) = testkit::federation::master_and_slave_with(1, None, None, Some(ca));
    federate(&master, &mut slave);
    assert!(slave.servers[0].endpoint().starts_with("https://"));
    assert!(master.servers[0].endpoint().starts_with("https://"));

    allocate(&master.servers[0].client(), "over-tls").unwrap();
    slave.wait_until(DEADLINE, "the master's user on the slave", || {
        has_user(&slave.servers[0], "over-tls")
    });
    allocate(&slave.servers[0].client(), "through-the-slave").unwrap();
    assert!(has_user(&master.servers[0], "through-the-slave"));
    slave.wait_until(DEADLINE, "the slave's user back on the slave", || {
        has_user(&slave.servers[0], "through-the-slave")
    });
}

/// The dashboard of a slave zone calls as a user it authenticated itself, with no credentials
/// the master could check: its changes of shared objects are refused, and nothing changes in
/// the slave's copy of the shared tables.
#[test]
fn a_slave_zones_dashboard_does_not_change_shared_objects() {
    let mut zone = Zone::solo();
    zone.servers[0].stop();
    zone.servers[0].federation_mode = "SLAVE";
    zone.servers[0].master_oned = "http://127.0.0.1:1/RPC2".into();
    zone.servers[0].write_conf();
    zone.servers[0].start();
    let s = &zone.servers[0];
    let base = format!("http://127.0.0.1:{}/dashboard", s.port);
    let login = ureq::post(&format!("{base}/api/login"))
        .set("x-oneha-csrf", "login")
        .set("content-type", "application/json")
        .send_string(
            &serde_json::json!({ "user": "oneadmin", "password": s.password() }).to_string(),
        )
        .unwrap();
    let session = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me: serde_json::Value = serde_json::from_str(&login.into_string().unwrap()).unwrap();
    let call = "<?xml version=\"1.0\"?><methodCall><methodName>one.user.allocate</methodName><params>\
                <param><value><string></string></value></param><param><value><string>eve</string></value></param>\
                <param><value><string>pw</string></value></param><param><value><string></string></value></param>\
                </params></methodCall>";
    let body = ureq::post(&format!("{base}/api/rpc"))
        .set("cookie", &session)
        .set("x-oneha-csrf", me["csrf"].as_str().unwrap())
        .send_string(call)
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        body.contains("This zone is a federation slave: users, groups, ACL rules, zones, VDCs and marketplaces are changed through the master zone"),
        "{body}"
    );
    assert!(!has_user(s, "eve"));
}

fn password_of(client: &cli::Client, id: i64) -> String {
    let xml = client
        .call_xml("one.user.info", vec![Value::Int(id as i32)])
        .unwrap();
    cli::xml::Element::parse(&xml)
        .unwrap()
        .text_of("PASSWORD")
        .unwrap()
        .to_string()
}

/// A user still holding an OpenNebula SHA-256 hash (zones federated from an OpenNebula
/// database) logs in on a slave: the slave does not upgrade the hash in its copy of the users'
/// table, which would leave it different from the master's for good; the master upgrades it
/// at a login there, and the upgrade reaches the slave like any change.
#[test]
fn a_slave_leaves_password_upgrades_to_the_master() {
    let (mut master, mut slave) = master_and_slave(1);
    federate(&master, &mut slave);
    let id = allocate(&master.servers[0].client(), "legacy").unwrap();
    slave.wait_until(DEADLINE, "the user on the slave", || {
        has_user(&slave.servers[0], "legacy")
    });
    let sha256 = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b"opennebula-pw"))
    };
    for zone in [&mut master, &mut slave] {
        zone.servers[0].stop();
        let conn = sqlstore::open_state(&zone.servers[0].state_location()).unwrap();
        conn.execute(
            "UPDATE user_pool SET password = ?1 WHERE oid = ?2",
            (sha256.as_str(), id),
        )
        .unwrap();
        drop(conn);
        zone.servers[0].start();
    }

    eprintln!("--- a login on the slave: accepted, the hash left as it is");
    slave.servers[0]
        .client_as("legacy", "opennebula-pw")
        .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)])
        .unwrap();
    allocate(&master.servers[0].client(), "marker").unwrap();
    slave.wait_until(DEADLINE, "the next record on the slave", || {
        has_user(&slave.servers[0], "marker")
    });
    assert_eq!(password_of(&slave.servers[0].client(), id), sha256);

    eprintln!("--- a login on the master upgrades it, in both zones");
    master.servers[0]
        .client_as("legacy", "opennebula-pw")
        .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)])
        .unwrap();
    slave.wait_until(DEADLINE, "the upgraded hash on the slave", || {
        password_of(&slave.servers[0].client(), id).starts_with("$argon2id$")
    });
    assert_eq!(
        password_of(&slave.servers[0].client(), id),
        password_of(&master.servers[0].client(), id)
    );
}

/// The text of `name` in `body` (CDATA unwrapped), or "" when `body` has none.
fn elem(body: &str, name: &str) -> String {
    cli::xml::Element::parse(body)
        .ok()
        .and_then(|e| e.text_of(name).ok().map(str::to_string))
        .unwrap_or_default()
}

fn info(server: &crate::zone::Server, method: &str, id: i32) -> Option<String> {
    server.client().call_xml(method, vec![Value::Int(id)]).ok()
}

/// A slave zone's own marketplace and app, as OpenNebula keeps them: checked on the slave,
/// inserted by the master with the master's ids (`one.market.allocatedb`,
/// `one.marketapp.allocatedb`), imported by the slave's driver from the slave's image and
/// finished at the master (`one.marketapp.updatedb`), deleted through `one.marketapp.dropdb`.
/// Both zones show the same rows; only oneadmin may call the `*db` methods, and only at the
/// master.
#[test]
fn a_slave_zones_marketplace_and_apps_are_kept_by_the_master() {
    let (master, mut slave) = master_and_slave(1);
    federate(&master, &mut slave);
    let (m, s) = (&master.servers[0], &slave.servers[0]);
    let http = |name: &str| {
        Value::String(format!(
            "NAME = {name}\nMARKET_MAD = http\nBASE_URL = \"http://{name}.example/\"\nPUBLIC_DIR = /srv/m"
        ))
    };
    let first = m
        .client()
        .call("one.market.allocate", vec![http("on-master")])
        .unwrap();
    assert_eq!(first.as_i64(), Some(100));

    eprintln!("--- a market made on the slave: the master's next id, zone 100's, in both zones");
    let market = s
        .client()
        .call("one.market.allocate", vec![http("on-slave")])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    assert_eq!(market, 101);
    for server in [m, s] {
        let body = info(server, "one.market.info", market).expect("the market in both zones");
        assert_eq!(elem(&body, "NAME"), "on-slave");
        assert_eq!(elem(&body, "ZONE_ID"), "100");
    }
    let (code, message) = crate::zone::one_error(
        s.client()
            .call("one.market.allocate", vec![http("on-master")]),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            crate::zone::INTERNAL,
            "[one.market.allocate] NAME is already taken by MARKETPLACE 100"
        ),
        "names are checked on the slave, as OpenNebula's"
    );

    eprintln!("--- an app of the slave's image: imported by the slave, READY in both zones");
    let image = s
        .client()
        .call(
            "one.image.allocate",
            vec![
                Value::String("NAME = base\nPATH = /tmp/base.qcow2\nFORMAT = qcow2".into()),
                Value::Int(1),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    slave.wait_until(DEADLINE, "the slave's image READY", || {
        info(s, "one.image.info", image).is_some_and(|b| elem(&b, "STATE") == "1")
    });
    let app = s
        .client()
        .call(
            "one.marketapp.allocate",
            vec![
                Value::String(format!("NAME = app\nORIGIN_ID = {image}\nTYPE = image")),
                Value::Int(market),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    for (zone, server) in [(&master, m), (&slave, s)] {
        zone.wait_until(DEADLINE, "the app READY", || {
            info(server, "one.marketapp.info", app).is_some_and(|b| elem(&b, "STATE") == "1")
        });
        let body = info(server, "one.marketapp.info", app).unwrap();
        assert_eq!(elem(&body, "ZONE_ID"), "100", "{body}");
        assert!(
            elem(&body, "SOURCE").starts_with("http://on-slave.example/"),
            "{body}"
        );
        assert_eq!(elem(&body, "FORMAT"), "qcow2", "{body}");
        assert_eq!(elem(&body, "MD5").len(), 32, "{body}");
    }
    assert_eq!(
        info(m, "one.marketapp.info", app),
        info(s, "one.marketapp.info", app),
        "the same app in both zones"
    );

    eprintln!("--- the *db methods: oneadmin only, and only where the shared tables are written");
    allocate(&m.client(), "plain").unwrap();
    let (code, _) = crate::zone::one_error(
        m.client_as("plain", "pw-plain")
            .call("one.marketapp.dropdb", vec![Value::Int(app)]),
    );
    assert_eq!(code, crate::zone::AUTHORIZATION);
    let (code, message) = crate::zone::one_error(
        s.client()
            .call("one.marketapp.dropdb", vec![Value::Int(app)]),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            0x0800,
            "[one.marketapp.dropdb] Marketplaces and apps are written at the federation master: this zone is a slave"
        )
    );
    let (code, message) = crate::zone::one_error(m.client().call(
        "one.marketapp.updatedb",
        vec![
            Value::Int(app),
            Value::String("<MARKETPLACEAPP><ID>".into()),
        ],
    ));
    assert_eq!(
        (code, message.as_str()),
        (
            crate::zone::INTERNAL,
            "[one.marketapp.updatedb] Cannot update object from XML"
        )
    );
    // The app's own document, for another id: refused, as OpenNebula's consistency check.
    let doc = info(m, "one.marketapp.info", app).unwrap();
    let (code, message) = crate::zone::one_error(m.client().call(
        "one.marketapp.updatedb",
        vec![Value::Int(app + 1000), Value::String(doc.clone())],
    ));
    assert_eq!(
        (code, message.as_str()),
        (
            crate::zone::INTERNAL,
            "[one.marketapp.updatedb] Consistency check failed"
        )
    );
    // A document over 512 KiB is refused before it is read, and the app keeps its own.
    let padded = doc.replacen(
        "<TEMPLATE>",
        &format!(
            "<TEMPLATE><PAD><![CDATA[{}]]></PAD>",
            "x".repeat(520 * 1024)
        ),
        1,
    );
    assert!(padded.len() > 512 * 1024);
    for method in ["one.marketapp.updatedb", "one.market.updatedb"] {
        let (code, message) = crate::zone::one_error(
            m.client()
                .call(method, vec![Value::Int(app), Value::String(padded.clone())]),
        );
        assert_eq!(
            (code, message),
            (
                crate::zone::INTERNAL,
                format!("[{method}] Cannot update object from XML")
            )
        );
    }
    assert_eq!(info(m, "one.marketapp.info", app).unwrap(), doc);

    eprintln!("--- the app deleted on the slave: dropped by the master, gone in both zones");
    s.client()
        .call("one.marketapp.delete", vec![Value::Int(app)])
        .unwrap();
    assert!(info(s, "one.marketapp.info", app).is_none());
    assert!(info(m, "one.marketapp.info", app).is_none());
    for server in [m, s] {
        assert_no_local_reads(server);
    }
}

/// Point 2 of the federation: a group change, an ACL rule and a login token made through a
/// slave zone are made by the master and seen in both zones; the token logs the user in on
/// either.
#[test]
fn groups_acl_rules_and_tokens_made_through_a_slave_are_seen_in_both_zones() {
    use wire::acl::{ALL_ID, HOST, INDIVIDUAL_ID, USE};
    let (master, mut slave) = master_and_slave(1);
    federate(&master, &mut slave);
    let (m, s) = (&master.servers[0], &slave.servers[0]);
    let text = |v: String| Value::String(v);
    let uid = allocate(&s.client(), "mover").unwrap();
    let gid = s
        .client()
        .call("one.group.allocate", vec![text("team".into())])
        .unwrap()
        .as_i64()
        .unwrap();
    s.client()
        .call(
            "one.user.chgrp",
            vec![Value::Int(uid as i32), Value::Int(gid as i32)],
        )
        .unwrap();
    let rule = s
        .client()
        .call(
            "one.acl.addrule",
            vec![
                text(format!("{:x}", INDIVIDUAL_ID | uid as u64)),
                text(format!("{:x}", HOST | ALL_ID)),
                text(format!("{USE:x}")),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    // The user asks for its own token: the master checks its password.
    let token = s
        .client_as("mover", "pw-mover")
        .call(
            wire::method::USER_LOGIN,
            vec![text("mover".into()), text(String::new()), Value::Int(3600)],
        )
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();

    let acl_pool = |server: &crate::zone::Server| {
        server
            .client()
            .call_xml("one.acl.info", vec![])
            .unwrap_or_default()
    };
    slave.wait_until(
        DEADLINE,
        "the group change, rule and token on the slave",
        || {
            let me = s
                .client_as("mover", &token)
                .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)]);
            me.is_ok_and(|body| elem(&body, "GID") == gid.to_string())
                && acl_pool(s).contains(&format!("<ID>{rule}</ID>"))
        },
    );
    for server in [m, s] {
        let me = server
            .client_as("mover", &token)
            .call_xml(wire::method::USER_INFO, vec![Value::Int(-1)])
            .expect("the token logs in in both zones");
        assert_eq!(elem(&me, "GID"), gid.to_string(), "{me}");
        assert_eq!(elem(&me, "GNAME"), "team", "{me}");
    }
    assert_eq!(acl_pool(m), acl_pool(s), "the same rules in both zones");
    let rule_text = format!("<STRING>#{uid} HOST/* USE");
    assert!(acl_pool(s).contains(&rule_text), "{}", acl_pool(s));
    for server in [m, s] {
        assert_no_local_reads(server);
    }
}

/// No statement on the federated tables applied on `server` read that zone's own tables: each
/// zone would compute it from its own rows, and their copies would part.
fn assert_no_local_reads(server: &crate::zone::Server) {
    assert_eq!(
        server.metric("oneha_federated_statements_reading_local_tables_total"),
        0.0,
        "server {}: see its log for the statement",
        server.id
    );
}

/// A slave that needs the federated tables whole when they are larger than one request
/// (`MESSAGE_SIZE`, shared by the zones): the master sends them in parts, the slave stages
/// each through its log and swaps the last one in, in one transaction; it then has every
/// user, and records follow.
#[test]
fn federated_tables_larger_than_one_request_reach_a_slave_in_parts() {
    let (mut master, mut slave) = master_and_slave(1);
    federate(&master, &mut slave);
    master.servers[0].stop();
    master.servers[0]
        .extra_conf
        .push_str("MESSAGE_SIZE = 16384\n");
    master.servers[0].write_conf();
    master.servers[0].start();

    eprintln!("--- the slave down while the master writes 80 users and drops its records");
    slave.servers[0].stop();
    let c = master.servers[0].client();
    for n in 0..80 {
        allocate(&c, &format!("many-{n}")).unwrap();
    }
    keep_only_the_newest_record(&mut master, &mut slave);
    let users = crate::zone::user_pool(&slave.servers[0].client()).unwrap();
    for n in 0..80 {
        assert!(
            users.contains(&format!("many-{n}")),
            "many-{n} on the slave"
        );
    }
    let log = std::fs::read_to_string(master.servers[0].log_path()).unwrap();
    let sent = log
        .lines()
        .find(|l| l.contains("zone took the federated tables whole"))
        .expect("the master's log says the zone took the tables");
    let parts: usize = sent
        .split("parts=")
        .nth(1)
        .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no parts= in {sent}"));
    assert!(parts > 1, "sent in parts: {sent}");
    eprintln!("{sent}");

    eprintln!("--- records follow, and the staging tables are empty again");
    allocate(&c, "after-parts").unwrap();
    slave.wait_until(DEADLINE, "the next user on the slave", || {
        has_user(&slave.servers[0], "after-parts")
    });
    slave.servers[0].stop();
    let conn = sqlstore::open_state(&slave.servers[0].state_location()).unwrap();
    let staged: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM fedsnap_user_pool) + (SELECT COUNT(*) FROM fed_snapshot_stage)",
            (),
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(staged, 0);
}
