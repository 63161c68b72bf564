//! VLAN ids oned chooses for new networks, as 7.0.2's `VirtualNetworkPool::set_vlan_id` does:
//! AUTOMATIC_VLAN_ID takes the hint `VLAN_IDS/START + id % (4095 - START)`, else the first free
//! and not reserved id, for 802.1Q and ovswitch (and ovswitch_vxlan's inner id); vxlan takes
//! `VXLAN_IDS/START + id`. The chosen id is the network's (`VLAN_ID_AUTOMATIC`), shown in its
//! body and its NICs, not in its template, and free again once the network is deleted.

use std::time::Duration;

use cli::client::Client;
use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, INTERNAL};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

/// A new network, once READY (its driver has run).
fn vnet(zone: &Zone, c: &Client, text: &str) -> i64 {
    let id = c
        .call("one.vn.allocate", vec![s(text), int(-1)])
        .unwrap_or_else(|e| panic!("one.vn.allocate {text}: {e}"))
        .as_i64()
        .expect("an id");
    zone.wait_until(Duration::from_secs(30), "the network is READY", || {
        c.call_xml("one.vn.info", vec![int(id)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    id
}

fn info(c: &Client, id: i64) -> Element {
    Element::parse(&c.call_xml("one.vn.info", vec![int(id)]).unwrap()).unwrap()
}

/// VLAN_ID, VLAN_ID_AUTOMATIC, OUTER_VLAN_ID, OUTER_VLAN_ID_AUTOMATIC of the body.
fn vlans(e: &Element) -> (String, i64, String, i64) {
    (
        e.text_of("VLAN_ID").unwrap().to_string(),
        e.int_of("VLAN_ID_AUTOMATIC").unwrap(),
        e.text_of("OUTER_VLAN_ID").unwrap().to_string(),
        e.int_of("OUTER_VLAN_ID_AUTOMATIC").unwrap(),
    )
}

fn in_template(e: &Element, name: &str) -> Option<String> {
    let t = e.child("TEMPLATE").unwrap();
    t.child(name).map(|x| x.text.clone())
}

#[test]
fn automatic_vlan_ids_follow_the_bitmap_and_stay_out_of_the_template() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf.push_str(
            "VLAN_IDS = [ START = \"10\", RESERVED = \"11, 13:14\" ]\nVXLAN_IDS = [ START = \"500\" ]\n",
        );
        s.write_conf();
    };
    let zone = Zone::solo_custom(None, Some(Box::new(setup)));
    let c = zone.servers[0].client();
    // Network 0: the hint 10 + 0 is free.
    let a = vnet(
        &zone,
        &c,
        "NAME = a\nVN_MAD = 802.1Q\nPHYDEV = eth0\nAUTOMATIC_VLAN_ID = YES",
    );
    let body = info(&c, a);
    assert_eq!(vlans(&body), ("10".into(), 1, String::new(), 0));
    assert_eq!(in_template(&body, "VLAN_ID"), None);
    assert_eq!(in_template(&body, "AUTOMATIC_VLAN_ID"), None);
    assert_eq!(in_template(&body, "OUTER_VLAN_ID"), None);
    assert_eq!(body.text_of("BRIDGE").unwrap(), format!("onebr{a}"));
    // Network 1: its hint 11 is reserved, so the first free from START: 10 is taken, 12.
    let b = vnet(
        &zone,
        &c,
        "NAME = b\nVN_MAD = ovswitch\nAUTOMATIC_VLAN_ID = yes\nVLAN_ID = \"\"",
    );
    assert_eq!(vlans(&info(&c, b)), ("12".into(), 1, String::new(), 0));
    // A VLAN_ID named wins over AUTOMATIC_VLAN_ID and is the template's, outside the bitmap.
    let given = vnet(
        &zone,
        &c,
        "NAME = g\nVN_MAD = 802.1Q\nPHYDEV = eth0\nVLAN_ID = 12\nAUTOMATIC_VLAN_ID = YES",
    );
    let body = info(&c, given);
    assert_eq!(vlans(&body), ("12".into(), 0, String::new(), 0));
    assert_eq!(in_template(&body, "VLAN_ID").as_deref(), Some("12"));
    assert_eq!(in_template(&body, "AUTOMATIC_VLAN_ID"), None);
    // vxlan: START + id; ovswitch_vxlan: the inner id from the bitmap, the outer as vxlan's.
    let x = vnet(
        &zone,
        &c,
        "NAME = x\nVN_MAD = vxlan\nPHYDEV = eth0\nAUTOMATIC_VLAN_ID = YES",
    );
    assert_eq!(
        vlans(&info(&c, x)),
        ((500 + x).to_string(), 1, String::new(), 0)
    );
    let o = vnet(
        &zone,
        &c,
        "NAME = o\nVN_MAD = ovswitch_vxlan\nPHYDEV = eth0\nAUTOMATIC_VLAN_ID = YES\n\
         AUTOMATIC_OUTER_VLAN_ID = YES",
    );
    assert_eq!(
        vlans(&info(&c, o)),
        ("15".into(), 1, (500 + o).to_string(), 1)
    );
    // A reservation takes both chosen ids (`clone_template`), so the driver's checks pass.
    c.call(
        "one.vn.add_ar",
        vec![int(o), s("AR = [ TYPE = ETHER, SIZE = 4 ]")],
    )
    .unwrap();
    let r = c
        .call("one.vn.reserve", vec![int(o), s("SIZE = 1\nNAME = r-o")])
        .unwrap()
        .as_i64()
        .unwrap();
    let rb = info(&c, r);
    assert_eq!(
        (
            in_template(&rb, "VLAN_ID"),
            in_template(&rb, "OUTER_VLAN_ID")
        ),
        (Some("15".into()), Some((500 + o).to_string()))
    );
    // A driver without VLANs chooses none, and says it was asked.
    let d = vnet(
        &zone,
        &c,
        "NAME = d\nVN_MAD = bridge\nAUTOMATIC_VLAN_ID = YES",
    );
    assert_eq!(vlans(&info(&c, d)), (String::new(), 1, String::new(), 0));

    // NICs take the chosen id; an update cannot put one in the template.
    c.call(
        "one.vn.add_ar",
        vec![int(a), s("AR = [ TYPE = ETHER, SIZE = 4 ]")],
    )
    .unwrap();
    let vm = c
        .call(
            "one.vm.allocate",
            vec![
                s(&format!(
                    "NAME = v\nCPU = 1\nMEMORY = 64\nNIC = [ NETWORK_ID = {a} ]"
                )),
                Value::Bool(true),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let vm_body = Element::parse(&c.call_xml("one.vm.info", vec![int(vm)]).unwrap()).unwrap();
    let nic = vm_body.child("TEMPLATE").unwrap().child("NIC").unwrap();
    assert_eq!(nic.text_of("VLAN_ID").unwrap(), "10");
    c.call(
        "one.vn.update",
        vec![
            int(a),
            s("VLAN_ID = 99\nAUTOMATIC_VLAN_ID = NO\nCOLOR = red"),
            int(1),
        ],
    )
    .unwrap();
    let body = info(&c, a);
    assert_eq!(vlans(&body), ("10".into(), 1, String::new(), 0));
    assert_eq!(in_template(&body, "VLAN_ID"), None);
    assert_eq!(in_template(&body, "COLOR").as_deref(), Some("red"));

    // A deleted network's id is free again: network 6's hint 16 is free, b's 12 too.
    c.call("one.vn.delete", vec![int(b)]).unwrap();
    let n = vnet(
        &zone,
        &c,
        "NAME = n\nVN_MAD = 802.1Q\nPHYDEV = eth0\nAUTOMATIC_VLAN_ID = YES",
    );
    assert_eq!(vlans(&info(&c, n)).0, (10 + n).to_string());
}

#[test]
fn a_full_vlan_bitmap_refuses_the_network() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf
            .push_str("VLAN_IDS = [ START = \"4093\", RESERVED = \"4094\" ]\n");
        s.write_conf();
    };
    let zone = Zone::solo_custom(None, Some(Box::new(setup)));
    let c = zone.servers[0].client();
    let auto = "VN_MAD = 802.1Q\nPHYDEV = eth0\nAUTOMATIC_VLAN_ID = YES";
    let a = vnet(&zone, &c, &format!("NAME = a\n{auto}"));
    let b = vnet(&zone, &c, &format!("NAME = b\n{auto}"));
    assert_eq!(vlans(&info(&c, a)).0, "4093");
    assert_eq!(vlans(&info(&c, b)).0, "4095");
    assert_eq!(
        one_error(c.call(
            "one.vn.allocate",
            vec![s(&format!("NAME = c\n{auto}")), int(-1)]
        )),
        (
            INTERNAL,
            "[one.vn.allocate] Cannot automatically assign VLAN_ID to network.".to_string()
        )
    );
    // Deleting a network frees its id.
    c.call("one.vn.delete", vec![int(a)]).unwrap();
    let again = vnet(&zone, &c, &format!("NAME = c\n{auto}"));
    assert_eq!(vlans(&info(&c, again)).0, "4093");
}
