//! `one.vm.allocate` of a template with DEPLOY_ID: OpenNebula 7.0's import of a VM running
//! outside it (`VirtualMachine::insert`): the VM keeps that DEPLOY_ID, its TEMPLATE says
//! IMPORTED = YES, and it is scheduled as any other; `one-<n>` is refused.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn elem(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    let v = &xml[start..end];
    Some(
        v.strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(v)
            .to_string(),
    )
}

/// The part of `xml` inside the first `<name>` element.
fn inside(xml: &str, name: &str) -> String {
    elem(xml, name).unwrap_or_default()
}

#[test]
fn a_vm_allocated_with_a_deploy_id_is_imported() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let f = zone.servers[(leader + 1) % 3].client();

    tracing::info!("--- an imported VM, allocated through a follower");
    let vm = f
        .call(
            "one.vm.allocate",
            vec![s(
                "NAME = wild\nCPU = 0.5\nMEMORY = 64\nDEPLOY_ID = \"vm-running-elsewhere\"",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let body = c.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap();
    assert_eq!(
        elem(&body, "DEPLOY_ID").unwrap(),
        "vm-running-elsewhere",
        "{body}"
    );
    assert_eq!(elem(&body, "STATE").unwrap(), "1", "{body}");
    let t = inside(&body, "TEMPLATE");
    assert_eq!(elem(&t, "IMPORTED").as_deref(), Some("YES"), "{body}");
    assert!(!t.contains("DEPLOY_ID"), "{body}");
    assert!(
        !inside(&body, "USER_TEMPLATE").contains("DEPLOY_ID"),
        "{body}"
    );
    zone.wait_until(DEADLINE, "the follower has the VM", || {
        f.call_xml(
            "one.vmpool.info",
            vec![
                Value::Int(-2),
                Value::Int(vm),
                Value::Int(vm),
                Value::Int(-1),
            ],
        )
        .is_ok_and(|p| p.contains("<DEPLOY_ID>vm-running-elsewhere</DEPLOY_ID>"))
    });

    tracing::info!("--- it is scheduled as any other and keeps its DEPLOY_ID");
    c.call(
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    )
    .unwrap();
    zone.wait_until(DEADLINE, "the imported VM runs", || {
        c.call_xml("one.vm.info", vec![Value::Int(vm)])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    let body = c.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap();
    assert_eq!(
        elem(&body, "DEPLOY_ID").unwrap(),
        "vm-running-elsewhere",
        "{body}"
    );
    let host = c.call_xml("one.host.info", vec![Value::Int(0)]).unwrap();
    assert_eq!(elem(&host, "CPU_USAGE").as_deref(), Some("50"), "{host}");

    tracing::info!("--- a VM without DEPLOY_ID is not imported; one of OpenNebula's is refused");
    let plain = c
        .call("one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 32")])
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let body = c.call_xml("one.vm.info", vec![Value::Int(plain)]).unwrap();
    assert!(!body.contains("IMPORTED"), "{body}");
    let (code, msg) = one_error(f.call(
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32\nDEPLOY_ID = one-12")],
    ));
    assert_eq!(code, INTERNAL, "{msg}");
    assert_eq!(
        msg,
        "[one.vm.allocate] Trying to import an OpenNebula VM: 'one-*'."
    );
    // Only `one-` and digits is OpenNebula's.
    let other = c
        .call(
            "one.vm.allocate",
            vec![
                s("CPU = 0.1\nMEMORY = 32\nDEPLOY_ID = one-x1"),
                Value::Bool(true),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    let body = c.call_xml("one.vm.info", vec![Value::Int(other)]).unwrap();
    assert_eq!(elem(&body, "DEPLOY_ID").unwrap(), "one-x1", "{body}");
    assert_eq!(elem(&body, "STATE").unwrap(), "2", "{body}");
}
