//! One test per object family over the real API on a 3-server zone: each is written through a
//! follower and read back on every server, with OpenNebula's error codes for what must fail.

use cli::xml::Element;
use cli::{CallError, Client};
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, ALLOCATE, DEADLINE, INTERNAL, NO_EXISTS};

fn id(r: Result<Value, CallError>) -> i32 {
    r.unwrap().as_i64().unwrap() as i32
}

fn xml(c: &Client, method: &str, params: Vec<Value>) -> Element {
    Element::parse(&c.call_xml(method, params).unwrap()).unwrap()
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// Waits until every server answers `method(params)` with an element satisfying `check`.
fn everywhere(zone: &Zone, method: &str, params: Vec<Value>, check: impl Fn(&Element) -> bool) {
    zone.wait_until(
        DEADLINE,
        &format!("{method} agrees on every server"),
        || {
            (0..3).all(|i| {
                zone.servers[i]
                    .client()
                    .call_xml(method, params.clone())
                    .ok()
                    .and_then(|x| Element::parse(&x).ok())
                    .is_some_and(|e| check(&e))
            })
        },
    );
}

fn follower(zone: &Zone) -> Client {
    let leader = zone.leader();
    zone.servers[(leader + 1) % 3].client()
}

#[test]
fn groups_acl_hosts_datastores_images_and_networks() {
    let zone = Zone::bootstrap(3);
    let c = follower(&zone);

    eprintln!("--- groups");
    let gid = id(c.call("one.group.allocate", vec![s("devs")]));
    assert_eq!(gid, 100);
    everywhere(&zone, "one.group.info", vec![Value::Int(gid)], |g| {
        g.text_of("NAME").ok() == Some("devs")
    });
    let (code, _) = one_error(c.call("one.group.allocate", vec![s("devs")]));
    assert_eq!(code, INTERNAL);
    let (code, _) = one_error(c.call("one.group.delete", vec![Value::Int(1)]));
    assert_eq!(code, ACTION_CODE);
    c.call(
        "one.group.update",
        vec![Value::Int(gid), s("DESCRIPTION = team"), Value::Int(1)],
    )
    .unwrap();
    everywhere(&zone, "one.group.info", vec![Value::Int(gid)], |g| {
        g.child("TEMPLATE")
            .is_some_and(|t| t.text_of("DESCRIPTION").ok() == Some("team"))
    });

    eprintln!("--- ACL rules");
    let rule = id(c.call(
        "one.acl.addrule",
        vec![s("0x200000064"), s("0x1400000000"), s("0x1")],
    ));
    everywhere(&zone, "one.acl.info", vec![], |p| {
        p.children_named("ACL")
            .any(|a| a.text_of("STRING").ok() == Some("@100 VM/* USE #0"))
    });
    c.call("one.acl.delrule", vec![Value::Int(rule)]).unwrap();
    let (code, _) = one_error(c.call("one.acl.delrule", vec![Value::Int(rule)]));
    assert_eq!(code, INTERNAL);

    eprintln!("--- hosts");
    let hid = id(c.call(
        "one.host.allocate",
        vec![s("h1"), s("dummy"), s("dummy"), Value::Int(-1)],
    ));
    everywhere(&zone, "one.host.info", vec![Value::Int(hid)], |h| {
        h.int_of("STATE").ok() == Some(2)
    });
    // The dummy probe's system datastore figures are in HOST_SHARE, no longer in the template,
    // as `HostShareDatastore` moves them.
    let host = xml(&c, "one.host.info", vec![Value::Int(hid)]);
    let disk = host.child("HOST_SHARE").and_then(|h| h.child("DATASTORES"));
    let figures: Vec<(&str, &str)> = disk
        .map(|d| {
            d.children
                .iter()
                .map(|f| (f.name.as_str(), f.text.as_str()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        figures,
        [
            ("DISK_USAGE", "0"),
            ("FREE_DISK", "20480"),
            ("MAX_DISK", "20480"),
            ("USED_DISK", "9720")
        ]
    );
    // And its NUMA topology (2 nodes of 8 cores of 4 threads, 2 huge page sizes), as
    // `HostShareNUMA` keeps it.
    let nodes: Vec<_> = host
        .child("HOST_SHARE")
        .and_then(|h| h.child("NUMA_NODES"))
        .map(|n| n.children_named("NODE").collect())
        .unwrap_or_default();
    assert_eq!(nodes.len(), 2, "{host:?}");
    let second = nodes[1];
    assert_eq!(second.text_of("NODE_ID").ok(), Some("1"));
    let cores: Vec<_> = second.children_named("CORE").collect();
    assert_eq!(cores.len(), 8);
    assert_eq!(cores[0].text_of("ID").ok(), Some("8"));
    assert_eq!(
        cores[0].text_of("CPUS").ok(),
        Some("8:-1,24:-1,40:-1,56:-1")
    );
    assert_eq!(cores[0].text_of("FREE").ok(), Some("4"));
    let pages: Vec<_> = second
        .children_named("HUGEPAGE")
        .map(|p| (p.text_of("SIZE").unwrap(), p.text_of("PAGES").unwrap()))
        .collect();
    assert_eq!(pages, [("2048", "1024"), ("1048576", "1024")]);
    let memory = second.child("MEMORY").unwrap();
    assert_eq!(memory.text_of("TOTAL").ok(), Some("8388608"));
    assert_eq!(memory.text_of("DISTANCE").ok(), Some("1 0"));
    let template = host.child("TEMPLATE").unwrap();
    assert!(template.child("DS_LOCATION_TOTAL_MB").is_none());
    assert!(template.child("CORE").is_none() && template.child("HUGEPAGE").is_none());
    assert!(template
        .text_of("KVM_CPU_MODELS")
        .is_ok_and(|m| m.starts_with("486 pentium")));
    let (code, _) = one_error(c.call(
        "one.host.allocate",
        vec![s("h2"), s("dummy"), s("dummy"), Value::Int(7)],
    ));
    assert_eq!(code, NO_EXISTS);
    c.call("one.host.rename", vec![Value::Int(hid), s("node-a")])
        .unwrap();
    c.call(
        "one.host.update",
        vec![Value::Int(hid), s("RACK = 4"), Value::Int(1)],
    )
    .unwrap();
    everywhere(&zone, "one.host.info", vec![Value::Int(hid)], |h| {
        h.text_of("NAME").ok() == Some("node-a")
            && h.child("TEMPLATE").is_some_and(|t| {
                t.text_of("RACK").ok() == Some("4") && t.child("HYPERVISOR").is_some()
            })
    });
    let (code, _) = one_error(c.call(
        "one.host.update",
        vec![Value::Int(hid), s("A = 1"), Value::Int(3)],
    ));
    assert_eq!(code, 0x1000);

    eprintln!("--- datastores and images");
    let pool = xml(&c, "one.datastorepool.info", vec![]);
    let names: Vec<&str> = pool
        .children_named("DATASTORE")
        .map(|d| d.text_of("NAME").unwrap())
        .collect();
    assert_eq!(names, ["files", "default", "system"]);
    let iid = id(c.call(
        "one.image.allocate",
        vec![s("NAME = disk\nTYPE = DATABLOCK\nSIZE = 10"), Value::Int(1)],
    ));
    everywhere(&zone, "one.image.info", vec![Value::Int(iid)], |i| {
        i.int_of("STATE").ok() == Some(1) && i.int_of("SIZE").ok() == Some(10)
    });
    assert_eq!(
        one_error(c.call(
            "one.image.allocate",
            vec![s("NAME = x\nPATH = /x"), Value::Int(0)],
        )),
        (
            ALLOCATE,
            "[one.image.allocate] Error allocating a new image. New images can only be \
             allocated in a files or image datastore."
                .to_string()
        )
    );

    eprintln!("--- virtual networks");
    let nid = id(c.call(
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = bridge\nAR = [ TYPE = IP4, IP = 10.1.0.1, SIZE = 5 ]"),
            Value::Int(-1),
        ],
    ));
    everywhere(&zone, "one.vn.info", vec![Value::Int(nid)], |n| {
        n.int_of("STATE").ok() == Some(1)
            && n.child("AR_POOL")
                .and_then(|p| p.child("AR"))
                .is_some_and(|a| a.text_of("IP").ok() == Some("10.1.0.1"))
    });
    let (code, _) = one_error(c.call("one.vn.info", vec![Value::Int(999)]));
    assert_eq!(code, NO_EXISTS);
}
