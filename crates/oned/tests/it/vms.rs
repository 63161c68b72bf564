//! Virtual machines in a zone: the leader's scheduler places pending VMs, and after a failover
//! the new leader's scheduler carries on; no VM is deployed twice or lost from a host's
//! accounting.

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE, LEADER};

fn call_xml(zone: &Zone, i: usize, method: &str, params: Vec<Value>) -> Element {
    let xml = zone.servers[i].client().call_xml(method, params).unwrap();
    Element::parse(&xml).unwrap()
}

#[test]
fn pending_vms_are_all_deployed_once_across_a_leader_failover() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let client = zone.servers[leader].client();
    let hid = client
        .call(
            "one.host.allocate",
            vec![
                Value::String("node".into()),
                Value::String("dummy".into()),
                Value::String("dummy".into()),
                Value::Int(-1),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    zone.wait_until(DEADLINE, "the host is monitored", || {
        call_xml(&zone, leader, "one.host.info", vec![Value::Int(hid as i32)])
            .int_of("STATE")
            .unwrap()
            == 2
    });

    eprintln!("--- 12 VMs, then kill the leader {leader} at once");
    let vms: Vec<i64> = (0..12)
        .map(|_| {
            client
                .call(
                    "one.vm.allocate",
                    vec![Value::String("MEMORY = 64\nCPU = 0.25".into())],
                )
                .unwrap()
                .as_i64()
                .unwrap()
        })
        .collect();
    zone.servers[leader].kill();
    let new = zone.wait_for(DEADLINE, "a new leader", || {
        (0..3).filter(|&i| i != leader).find(|&i| {
            zone.servers[i]
                .raft_status()
                .is_some_and(|r| r.state == LEADER)
        })
    });
    zone.wait_until(DEADLINE, "every VM runs", || {
        let pool = call_xml(
            &zone,
            new,
            "one.vmpool.info",
            vec![
                Value::Int(-2),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-1),
            ],
        );
        let running = pool
            .children_named("VM")
            .filter(|v| v.int_of("STATE").unwrap() == 3 && v.int_of("LCM_STATE").unwrap() == 3)
            .count();
        running == vms.len()
    });
    zone.servers[leader].start();
    zone.wait_caught_up();
    for i in 0..3 {
        for &vid in &vms {
            let vm = call_xml(&zone, i, "one.vm.info", vec![Value::Int(vid as i32)]);
            let history: Vec<&Element> = vm
                .child("HISTORY_RECORDS")
                .unwrap()
                .children_named("HISTORY")
                .collect();
            assert_eq!(history.len(), 1, "VM {vid} deployed once (server {i})");
            // `add_history` takes the system datastore's transfer driver.
            assert_eq!(history[0].text_of("TM_MAD").unwrap(), "local");
            // Placed by the scheduler's plan: PLAN_ID -1 and the deploy's index in it.
            assert_eq!(history[0].int_of("PLAN_ID").unwrap(), -1);
            assert!(history[0].int_of("ACTION_ID").unwrap() >= 0);
        }
        let host = call_xml(&zone, i, "one.host.info", vec![Value::Int(hid as i32)]);
        let share = host.child("HOST_SHARE").unwrap();
        assert_eq!(share.int_of("RUNNING_VMS").unwrap(), vms.len() as i64);
        // OpenNebula's VMS: the VMs holding the host, by id.
        let mut placed = vms.clone();
        placed.sort();
        let listed: Vec<i64> = host
            .child("VMS")
            .unwrap()
            .children_named("ID")
            .map(|id| id.text.parse().unwrap())
            .collect();
        assert_eq!(listed, placed, "server {i}");
        assert_eq!(share.int_of("CPU_USAGE").unwrap(), 25 * vms.len() as i64);
        assert_eq!(
            share.int_of("MEM_USAGE").unwrap(),
            64 * 1024 * vms.len() as i64
        );
    }
}

fn one(zone: &Zone, kind: cli::objects::Kind, args: &[&str]) -> String {
    zone.servers[0].cli(kind, args).ok()
}

#[test]
fn the_object_clis_create_list_act_and_delete() {
    use cli::objects::Kind::*;
    let zone = Zone::bootstrap(1);
    let dir = zone.servers[0].location().to_path_buf();
    assert_eq!(one(&zone, Host, &["create", "node1"]), "ID: 0\n");
    zone.wait_until(DEADLINE, "onehost list shows the host on", || {
        one(&zone, Host, &["list"]).contains(" on")
    });
    let file = dir.join("small.tpl");
    std::fs::write(&file, "NAME = small\nCPU = 1\nMEMORY = 256\n").unwrap();
    assert_eq!(
        one(&zone, Template, &["create", file.to_str().unwrap()]),
        "ID: 0\n"
    );
    assert!(one(&zone, Template, &["list"]).contains("small"));
    assert_eq!(
        one(&zone, Template, &["instantiate", "0", "--name", "web"]),
        "VM ID: 0\n"
    );
    zone.wait_until(DEADLINE, "onevm list shows the VM running", || {
        let list = one(&zone, Vm, &["list"]);
        list.contains("web") && list.contains("runn") && list.contains("node1")
    });
    assert!(one(&zone, Vm, &["show", "0"]).contains("VIRTUAL MACHINE 0 INFORMATION"));
    one(&zone, Vm, &["terminate", "0", "--hard"]);
    zone.wait_until(DEADLINE, "the VM is gone from onevm list", || {
        !one(&zone, Vm, &["list"]).contains("web")
    });
    assert_eq!(one(&zone, User, &["create", "bob", "pw"]), "ID: 2\n");
    assert!(one(&zone, User, &["list"]).contains("bob"));
    assert_eq!(one(&zone, Group, &["create", "devs"]), "ID: 100\n");
    one(&zone, User, &["chgrp", "2", "100"]);
    assert!(one(&zone, Group, &["list"]).contains("devs"));
    // Rules 3-5 are VDC 0's for users, 6-8 its rules for devs, as on a new OpenNebula.
    assert_eq!(
        one(&zone, Acl, &["create", "@100 VM+TEMPLATE/* USE"]),
        "ID: 9\n"
    );
    assert!(one(&zone, Acl, &["list"]).contains("@100 VM+TEMPLATE/* USE #0"));
    one(&zone, Acl, &["delete", "3"]);
    one(&zone, Host, &["disable", "0"]);
    assert!(one(&zone, Host, &["list"]).contains("dsbl"));
    one(&zone, Host, &["delete", "0"]);
    one(&zone, Template, &["delete", "0"]);
}
