//! `one.vn.update` changes the network's template, never its address ranges (kept in the same
//! stored template) nor its driver: a replace without `AR` keeps the ranges and their leases,
//! and an `AR` given to update is ignored, as it only goes through `add_ar`/`update_ar`.

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn an_update_keeps_the_address_ranges_their_leases_and_the_driver() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let via = zone.servers[(leader + 1) % 3].client();
    let vn = c
        .call(
            "one.vn.allocate",
            vec![s(
                "NAME = \"kept\"\nVN_MAD = \"bridge\"\nAR = [ TYPE = \"IP4\", IP = \"10.7.0.1\", SIZE = \"8\" ]",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    zone.wait_until(DEADLINE, "the network to be READY", || {
        let xml = c.call_xml("one.vn.info", vec![Value::Int(vn)]).unwrap();
        Element::parse(&xml).unwrap().int_of("STATE") == Ok(wire::VnetState::Ready.as_i64())
    });
    // A lease in the range, held by oneadmin.
    c.call(
        "one.vn.hold",
        vec![Value::Int(vn), s("LEASES = [ IP = \"10.7.0.3\" ]")],
    )
    .unwrap();
    let ranges = |c: &cli::Client| {
        let xml = c.call_xml("one.vn.info", vec![Value::Int(vn)]).unwrap();
        let body = Element::parse(&xml).unwrap();
        let pool = body.child("AR_POOL").unwrap();
        let ars: Vec<(String, String)> = pool
            .children_named("AR")
            .map(|a| {
                (
                    a.text_of("SIZE").unwrap().to_string(),
                    a.text_of("USED_LEASES").unwrap().to_string(),
                )
            })
            .collect();
        let t = body.child("TEMPLATE").unwrap();
        (
            ars,
            t.text_of("VN_MAD").ok().map(String::from),
            t.text_of("COLOR").ok().map(String::from),
        )
    };

    // Replace, through a follower, with a template that has no AR and another driver.
    via.call(
        "one.vn.update",
        vec![
            Value::Int(vn),
            s("COLOR = \"blue\"\nVN_MAD = \"fw\""),
            Value::Int(0),
        ],
    )
    .unwrap();
    assert_eq!(
        ranges(&c),
        (
            vec![("8".to_string(), "1".to_string())],
            Some("bridge".into()),
            Some("blue".into())
        )
    );
    // Merge, with an AR of its own: ignored.
    c.call(
        "one.vn.update",
        vec![
            Value::Int(vn),
            s("COLOR = \"green\"\nAR = [ TYPE = \"ETHER\", SIZE = \"65000\" ]"),
            Value::Int(1),
        ],
    )
    .unwrap();
    assert_eq!(
        ranges(&c),
        (
            vec![("8".to_string(), "1".to_string())],
            Some("bridge".into()),
            Some("green".into())
        )
    );
}
