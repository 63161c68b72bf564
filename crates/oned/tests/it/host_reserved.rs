//! A host's template as OpenNebula's `Host` keeps it (IM_MAD, VM_MAD, RESERVED_CPU and
//! RESERVED_MEM from the start), and the capacity RESERVED_CPU and RESERVED_MEM keep back, from
//! the host or its cluster: MAX_CPU and MAX_MEM, within which the scheduler and an enforced
//! deploy place VMs.

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn info(zone: &Zone, method: &str, id: i64) -> Element {
    let body = zone.servers[zone.leader()]
        .client()
        .call_xml(method, vec![Value::Int(id as i32)])
        .unwrap();
    Element::parse(&body).unwrap()
}

/// `one.host.update`: `merge` 1 merges, 0 replaces.
fn update(c: &cli::Client, hid: i64, text: &str, merge: i32) {
    c.call(
        "one.host.update",
        vec![Value::Int(hid as i32), s(text), Value::Int(merge)],
    )
    .unwrap();
}

fn share(zone: &Zone, hid: i64, name: &str) -> i64 {
    info(zone, "one.host.info", hid)
        .child("HOST_SHARE")
        .and_then(|h| h.int_of(name).ok())
        .unwrap()
}

#[test]
fn reserved_capacity_from_the_host_or_its_cluster_bounds_placement() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let hid = c
        .call(
            "one.host.allocate",
            vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let t = info(&zone, "one.host.info", hid);
    let template = t.child("TEMPLATE").unwrap();
    for (name, value) in [
        ("IM_MAD", "dummy"),
        ("VM_MAD", "dummy"),
        ("RESERVED_CPU", ""),
        ("RESERVED_MEM", ""),
    ] {
        assert_eq!(template.text_of(name).ok(), Some(value), "{name}");
    }
    zone.wait_until(DEADLINE, "the host is monitored", || {
        info(&zone, "one.host.info", hid).int_of("STATE") == Ok(2)
    });
    assert_eq!(share(&zone, hid, "MAX_CPU"), 800);

    eprintln!("--- the host keeps back 100 CPU (hundredths) and 50% of its memory");
    update(&c, hid, "RESERVED_CPU = 100\nRESERVED_MEM = \"50%\"", 1);
    assert_eq!(share(&zone, hid, "MAX_CPU"), 700);
    assert_eq!(share(&zone, hid, "MAX_MEM"), 8 << 20);
    assert_eq!(share(&zone, hid, "TOTAL_CPU"), 800);

    eprintln!("--- an emptied RESERVED_CPU takes the cluster's");
    c.call(
        "one.cluster.update",
        vec![Value::Int(0), s("RESERVED_CPU = \"25%\""), Value::Int(1)],
    )
    .unwrap();
    update(&c, hid, "RESERVED_CPU = \"\"", 1);
    assert_eq!(share(&zone, hid, "MAX_CPU"), 600);

    eprintln!("--- a VM wanting more than MAX_CPU but less than TOTAL_CPU is not placed");
    let big = c
        .call("one.vm.allocate", vec![s("CPU = 7\nMEMORY = 64")])
        .unwrap()
        .as_i64()
        .unwrap();
    let small = c
        .call("one.vm.allocate", vec![s("CPU = 5\nMEMORY = 64")])
        .unwrap()
        .as_i64()
        .unwrap();
    zone.wait_until(DEADLINE, "the VM that fits runs", || {
        info(&zone, "one.vm.info", small).int_of("STATE") == Ok(3)
    });
    zone.wait_until(DEADLINE, "the scheduler says why the other waits", || {
        let vm = info(&zone, "one.vm.info", big);
        vm.child("USER_TEMPLATE")
            .is_some_and(|t| t.child("SCHED_MESSAGE").is_some())
    });
    assert_eq!(info(&zone, "one.vm.info", big).int_of("STATE"), Ok(1));
    let refused = c.call(
        "one.vm.deploy",
        vec![
            Value::Int(big as i32),
            Value::Int(hid as i32),
            Value::Bool(true),
        ],
    );
    assert_eq!(one_error(refused).0, ACTION_CODE);

    eprintln!("--- a driver named in the template becomes the host's, and stays in it");
    update(&c, hid, "VM_MAD = kvm\nRACK = 4", 0);
    let h = info(&zone, "one.host.info", hid);
    assert_eq!(h.text_of("VM_MAD").ok(), Some("kvm"));
    assert_eq!(h.text_of("IM_MAD").ok(), Some("dummy"));
    let template = h.child("TEMPLATE").unwrap();
    assert_eq!(template.text_of("IM_MAD").ok(), Some("dummy"));
    assert_eq!(template.text_of("VM_MAD").ok(), Some("kvm"));
    assert!(template.child("RESERVED_MEM").is_none(), "replaced");
}
