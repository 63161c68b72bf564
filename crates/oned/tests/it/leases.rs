//! Address ranges and their leases (`one.vn.add_ar/rm_ar/free_ar/update_ar/hold/release/
//! reserve/recover`), and NICs leasing addresses at VM allocate and freeing them when the VM
//! ends, with the NETWORK quota's LEASES: as OpenNebula's `AddressRange`, on a real zone.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL};

const ACTION: i32 = 0x800;
const AUTHORIZATION: i32 = 0x200;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn id(v: Value) -> i32 {
    v.as_i64().unwrap() as i32
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    id(c.call(method, params).unwrap())
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

/// The `<LEASE>` elements of a network's info.
fn leases(c: &cli::Client, vn: i32) -> Vec<String> {
    let body = info(c, "one.vn.info", vn);
    body.split("<LEASE>")
        .skip(1)
        .map(|l| l.split("</LEASE>").next().unwrap_or("").to_string())
        .collect()
}

fn ready_network(zone: &Zone, c: &cli::Client, text: &str) -> i32 {
    let vn = ok(c, "one.vn.allocate", vec![s(text)]);
    zone.wait_until(DEADLINE, "the network is READY", || {
        c.call_xml("one.vn.info", vec![Value::Int(vn)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    vn
}

#[test]
fn nics_lease_addresses_from_ranges_and_give_them_back_when_their_vm_ends() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    // Everything is written through a follower and read on the leader.
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    let vn = ready_network(
        &zone,
        &w,
        "NAME = net\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 3 ]",
    );
    let body = info(&c, "one.vn.info", vn);
    assert!(
        body.contains(
            "<AR><AR_ID>0</AR_ID><IP>10.0.0.1</IP><MAC>02:00:0a:00:00:01</MAC><SIZE>3</SIZE>\
             <TYPE>IP4</TYPE><MAC_END>02:00:0a:00:00:03</MAC_END><IP_END>10.0.0.3</IP_END>\
             <USED_LEASES>0</USED_LEASES><LEASES></LEASES></AR>"
        ),
        "{body}"
    );

    // An address on hold is taken by VM -1.
    ok(
        &w,
        "one.vn.hold",
        vec![Value::Int(vn), s("LEASES = [ IP = 10.0.0.1 ]")],
    );
    assert_eq!(
        leases(&c, vn),
        vec!["<IP>10.0.0.1</IP><MAC>02:00:0a:00:00:01</MAC><VM>-1</VM>".to_string()]
    );
    let (code, msg) = one_error(w.call(
        "one.vn.hold",
        vec![Value::Int(vn), s("LEASES = [ IP = 10.0.0.1 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vn.hold] Address is not part of the address range or in use."
        )
    );

    // A NIC gets the first free address, and the network's attributes.
    let vm = ok(
        &w,
        "one.vm.allocate",
        vec![s("NAME = a\nCPU = 1\nMEMORY = 64\nNIC = [ NETWORK = net ]")],
    );
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<IP><![CDATA[10.0.0.2]]></IP>"), "{body}");
    assert!(
        body.contains("<MAC><![CDATA[02:00:0a:00:00:02]]></MAC>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<NETWORK_ID><![CDATA[{vn}]]></NETWORK_ID>")),
        "{body}"
    );
    assert!(
        body.contains(&format!("<TARGET><![CDATA[one-{vm}-0]]></TARGET>")),
        "{body}"
    );
    assert!(leases(&c, vn).contains(&format!(
        "<IP>10.0.0.2</IP><MAC>02:00:0a:00:00:02</MAC><VM>{vm}</VM>"
    )));

    // Two NICs where one address is left: the VM is refused and takes nothing.
    let vms_before = c
        .call_xml(
            "one.vmpool.info",
            vec![
                Value::Int(-2),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-1),
            ],
        )
        .unwrap()
        .matches("<VM>")
        .count();
    let (code, msg) = one_error(w.call(
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nNIC = [ NETWORK_ID = {vn} ]\nNIC = [ NETWORK_ID = {vn} ]"
        ))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            format!("[one.vm.allocate] Cannot get IP/MAC lease from virtual network {vn}.")
                .as_str()
        )
    );
    assert_eq!(leases(&c, vn).len(), 2);
    let vms_after = c
        .call_xml(
            "one.vmpool.info",
            vec![
                Value::Int(-2),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-1),
            ],
        )
        .unwrap()
        .matches("<VM>")
        .count();
    assert_eq!(vms_before, vms_after);

    // A range with leases is not removed.
    let (code, msg) = one_error(w.call("one.vn.rm_ar", vec![Value::Int(vn), Value::Int(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (INTERNAL, "[one.vn.rm_ar] Address Range has leases in use")
    );

    // Released and ended: the addresses are free again, on every server.
    ok(
        &w,
        "one.vn.release",
        vec![Value::Int(vn), s("LEASES = [ IP = 10.0.0.1 ]")],
    );
    ok(
        &w,
        "one.vm.action",
        vec![s("terminate-hard"), Value::Int(vm)],
    );
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} freed the leases"), || {
            leases(&c, vn).is_empty()
        });
        assert!(info(&c, "one.vn.info", vn).contains("<USED_LEASES>0</USED_LEASES>"));
    }

    // Ranges added, updated and removed.
    ok(
        &w,
        "one.vn.add_ar",
        vec![
            Value::Int(vn),
            s("AR = [ TYPE = ETHER, MAC = \"02:00:00:00:10:00\", SIZE = 4 ]"),
        ],
    );
    ok(
        &w,
        "one.vn.update_ar",
        vec![
            Value::Int(vn),
            s("AR = [ AR_ID = 1, SIZE = 8, TYPE = IP4 ]"),
        ],
    );
    let body = info(&c, "one.vn.info", vn);
    assert!(
        body.contains(
            "<AR><AR_ID>1</AR_ID><MAC>02:00:00:00:10:00</MAC><SIZE>8</SIZE><TYPE>ETHER</TYPE>\
             <MAC_END>02:00:00:00:10:07</MAC_END>"
        ),
        "{body}"
    );
    let (code, msg) = one_error(w.call(
        "one.vn.update_ar",
        vec![Value::Int(vn), s("AR = [ AR_ID = 9, SIZE = 8 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vn.update_ar] Address Range with ID 9 was not found."
        )
    );
    let (code, msg) = one_error(w.call(
        "one.vn.add_ar",
        vec![Value::Int(vn), s("AR = [ TYPE = IP4, SIZE = 2 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (INTERNAL, "[one.vn.add_ar] Wrong or empty IP attribute")
    );
    ok(&w, "one.vn.rm_ar", vec![Value::Int(vn), Value::Int(1)]);
    assert!(!info(&c, "one.vn.info", vn).contains("<AR_ID>1</AR_ID>"));

    // A reservation: a new network holding two addresses of its parent.
    let res = ok(
        &w,
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 2\nNAME = mine")],
    );
    let body = info(&c, "one.vn.info", res);
    assert!(
        body.contains(&format!("<PARENT_NETWORK_ID>{vn}</PARENT_NETWORK_ID>")),
        "{body}"
    );
    assert!(
        body.contains("<IP>10.0.0.1</IP><MAC>02:00:0a:00:00:01</MAC><PARENT_NETWORK_AR_ID>0</PARENT_NETWORK_AR_ID><SIZE>2</SIZE>"),
        "{body}"
    );
    assert_eq!(
        leases(&c, vn),
        vec![
            format!("<IP>10.0.0.1</IP><MAC>02:00:0a:00:00:01</MAC><VNET>{res}</VNET>"),
            format!("<IP>10.0.0.2</IP><MAC>02:00:0a:00:00:02</MAC><VNET>{res}</VNET>"),
        ]
    );
    let (code, msg) = one_error(w.call(
        "one.vn.reserve",
        vec![Value::Int(res), s("SIZE = 1\nNAME = again")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vn.reserve] Cannot reserve addresses from a reserved VNET"
        )
    );
    // The new network's name is checked first, as `VirtualNetworkPool::allocate` checks it.
    for (name, why) in [
        ("a&b", "Invalid NAME, char '&' is not allowed".to_string()),
        ("mine", format!("NAME is already taken by NET {res}.")),
    ] {
        let (code, msg) = one_error(w.call(
            "one.vn.reserve",
            vec![Value::Int(vn), s(&format!("SIZE = 1\nNAME = \"{name}\""))],
        ));
        assert_eq!((code, msg), (INTERNAL, format!("[one.vn.reserve] {why}")));
    }
    let (code, msg) = one_error(w.call(
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 5\nNAME = big")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vn.reserve] Not enough free addresses in an address range"
        )
    );
    // Freeing the reservation's range gives its addresses back to the parent.
    zone.wait_until(DEADLINE, "the reservation is READY", || {
        info(&c, "one.vn.info", res).contains("<STATE>1</STATE>")
    });
    ok(&w, "one.vn.free_ar", vec![Value::Int(res), Value::Int(0)]);
    assert!(leases(&c, vn).is_empty());

    // recover refuses a READY network with OpenNebula's words.
    let (code, msg) = one_error(w.call("one.vn.recover", vec![Value::Int(vn), Value::Int(1)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            format!(
                "[one.vn.recover] Could not perform 'recover success' on VN {vn}, wrong state READY."
            )
            .as_str()
        )
    );
}

#[test]
fn the_network_quota_counts_the_leases_of_a_users_vms() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = shared\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 10 ]",
    );
    // Everyone may use the network.
    ok(
        &c,
        "one.vn.chmod",
        vec![
            Value::Int(vn),
            Value::Int(1),
            Value::Int(1),
            Value::Int(0),
            Value::Int(1),
            Value::Int(0),
            Value::Int(0),
            Value::Int(1),
            Value::Int(0),
            Value::Int(0),
        ],
    );
    let alice = ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s("core"), Value::Array(vec![])],
    );
    // The VM quota too, reached only once the network's is: the network is checked first
    // (`Quotas::quota_check`), and the user's quotas before the group's.
    ok(
        &c,
        "one.user.quota",
        vec![
            Value::Int(alice),
            s(&format!(
                "NETWORK = [ ID = {vn}, LEASES = 1 ]\nVM = [ VMS = 1 ]"
            )),
        ],
    );
    let a = zone.servers[0].client_as("alice", "pw-alice");
    let nic = format!("CPU = 1\nMEMORY = 64\nNIC = [ NETWORK_ID = {vn} ]");
    ok(&a, "one.vm.allocate", vec![s(&nic)]);
    let (code, msg) = one_error(a.call("one.vm.allocate", vec![s(&nic)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.allocate] User [{alice}] : user [{alice}] limit of 1 reached for LEASES quota in NETWORK with ID: {vn}."
            )
            .as_str()
        )
    );
    let body = info(&c, "one.user.info", alice);
    assert!(
        body.contains(&format!(
            "<NETWORK_QUOTA><NETWORK><ID><![CDATA[{vn}]]></ID><LEASES><![CDATA[1]]></LEASES><LEASES_USED><![CDATA[1]]></LEASES_USED></NETWORK></NETWORK_QUOTA>"
        )),
        "{body}"
    );
}

/// `VirtualNetworkPoolInfo`: reservations are listed under the ACL rules naming them or their
/// group alone, never under a rule on every network (the default VDC's `@1 NET/* USE`) or on a
/// cluster's networks, which still list the networks themselves.
#[test]
fn another_users_reservation_is_listed_only_under_rules_naming_it() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = pub\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 10 ]",
    );
    for name in ["ann", "bob"] {
        ok(
            &c,
            "one.user.allocate",
            vec![s(name), s("pw"), s(""), Value::Array(vec![])],
        );
    }
    let ann = zone.servers[0].client_as("ann", "pw");
    let bob = zone.servers[0].client_as("bob", "pw");
    let res = ok(
        &ann,
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 1\nNAME = mine")],
    );
    let listed = |who: &cli::Client| -> Vec<i32> {
        let body = who
            .call_xml(
                "one.vnpool.info",
                vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
            )
            .unwrap();
        body.split("<VNET><ID>")
            .skip(1)
            .filter_map(|b| b.split('<').next()?.parse().ok())
            .collect()
    };
    assert_eq!(listed(&ann), [res, vn]);
    assert_eq!(listed(&bob), [vn], "the NET/* rule lists no reservation");
    let bob_id: u64 = bob
        .call_xml("one.user.info", vec![Value::Int(-1)])
        .unwrap()
        .split("<ID>")
        .nth(1)
        .and_then(|b| b.split('<').next()?.parse().ok())
        .unwrap();
    use wire::acl::{INDIVIDUAL_ID, NET, USE};
    c.call(
        "one.acl.addrule",
        vec![
            s(&format!("{:x}", INDIVIDUAL_ID | bob_id)),
            s(&format!("{:x}", NET | INDIVIDUAL_ID | res as u64)),
            s(&format!("{USE:x}")),
        ],
    )
    .unwrap();
    assert_eq!(listed(&bob), [res, vn]);
}

/// `VirtualNetwork::nic_attribute`: a NIC takes what oned.conf's INHERIT_VNET_ATTR names of
/// its address range first, then of its network, unless it says it itself.
#[test]
fn nics_inherit_from_their_range_and_network() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nGATEWAY = 10.0.0.254\nDNS = 8.8.8.8\nMTU = 1400\n\
         COLOR = red\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 4, MTU = 9000 ]",
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 8\nNIC = [ NETWORK_ID = {vn}, DNS = 1.1.1.1 ]"
        ))],
    );
    let body = info(&c, "one.vm.info", vm);
    let nic = body
        .split("<NIC>")
        .nth(1)
        .and_then(|n| n.split("</NIC>").next())
        .unwrap();
    for attr in [
        "<GATEWAY><![CDATA[10.0.0.254]]></GATEWAY>",
        "<DNS><![CDATA[1.1.1.1]]></DNS>",
        "<MTU><![CDATA[9000]]></MTU>",
    ] {
        assert!(nic.contains(attr), "{attr} in {nic}");
    }
    assert!(!nic.contains("COLOR"), "{nic}");
}

/// `VirtualNetwork::update_ar` with `keep_restricted`: a reservation's owner outside group
/// oneadmin cannot change the range's restricted attributes (VNET_RESTRICTED_ATTR's `AR/...`,
/// which NICs take over the network's); the others are hers to change, oneadmin changes all.
#[test]
fn a_reservation_keeps_its_restricted_range_attributes_from_its_owner() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = pub\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 10, VLAN_ID = 5 ]",
    );
    ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let res = ok(
        &ann,
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 2\nNAME = mine")],
    );
    zone.wait_until(DEADLINE, "the reservation is READY", || {
        info(&c, "one.vn.info", res).contains("<STATE>1</STATE>")
    });
    let ar = |who: &cli::Client| -> String {
        let b = info(who, "one.vn.info", res);
        b.split("<AR>").nth(1).unwrap_or("").to_string()
    };
    assert!(ar(&ann).contains("<VLAN_ID>5</VLAN_ID>"), "{}", ar(&ann));
    ok(
        &ann,
        "one.vn.update_ar",
        vec![
            Value::Int(res),
            s("AR = [ AR_ID = 0, VLAN_ID = 99, BRIDGE = br9, LABEL = mine ]"),
        ],
    );
    let after = ar(&ann);
    assert!(after.contains("<VLAN_ID>5</VLAN_ID>"), "{after}");
    assert!(!after.contains("br9"), "{after}");
    assert!(after.contains("<LABEL>mine</LABEL>"), "{after}");
    ok(
        &c,
        "one.vn.update_ar",
        vec![Value::Int(res), s("AR = [ AR_ID = 0, VLAN_ID = 7 ]")],
    );
    assert!(ar(&c).contains("<VLAN_ID>7</VLAN_ID>"), "{}", ar(&c));
}

/// `VirtualNetworkRecover`: a failure forced leaves ERROR in the template, a success takes it
/// away; a reservation deleted by recover gives its addresses back to its parent
/// (`VirtualNetworkPool::delete_success`).
#[test]
fn recover_writes_the_error_and_a_deleted_reservation_frees_its_parents_addresses() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = pub\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 10 ]",
    );
    let used = |id: i32| -> String {
        let b = info(&c, "one.vn.info", id);
        b.split("<USED_LEASES>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or("")
            .to_string()
    };
    // Only a reservation the driver still holds (LOCK_CREATE) can be failed by hand: make
    // them until one is caught before the driver's next pass.
    let mut made = 0;
    let mut caught = || {
        for _ in 0..50 {
            made += 1;
            let res = ok(
                &c,
                "one.vn.reserve",
                vec![Value::Int(vn), s(&format!("SIZE = 3\nNAME = mine{made}"))],
            );
            if c.call("one.vn.recover", vec![Value::Int(res), Value::Int(0)])
                .is_ok()
            {
                return res;
            }
            ok(&c, "one.vn.delete", vec![Value::Int(res)]);
        }
        panic!("no reservation caught in LOCK_CREATE");
    };
    let res = caught();
    let body = info(&c, "one.vn.info", res);
    assert!(body.contains("<STATE>5</STATE>"), "{body}");
    assert!(
        body.contains(" : Failure forced by user]]></ERROR>"),
        "{body}"
    );
    ok(&c, "one.vn.recover", vec![Value::Int(res), Value::Int(1)]);
    let body = info(&c, "one.vn.info", res);
    assert!(
        body.contains("<STATE>1</STATE>") && !body.contains("<ERROR>"),
        "{body}"
    );
    // Deleted by recover, a reservation gives its addresses back to its parent.
    let gone = caught();
    assert_eq!(used(vn), "6");
    ok(&c, "one.vn.recover", vec![Value::Int(gone), Value::Int(2)]);
    assert_eq!(used(vn), "3");
}

/// `VirtualNetworkInfo::to_xml`: without MANAGE on the network, a user sees only the leases
/// of the VMs (and reservations, routers) it may use, no address on hold; USED_LEASES still
/// counts every lease. Its owner sees them all.
#[test]
fn a_user_without_manage_sees_only_the_leases_of_what_it_may_use() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = pub\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.9.0.1, SIZE = 10 ]",
    );
    for name in ["ann", "bob"] {
        ok(
            &c,
            "one.user.allocate",
            vec![s(name), s("pw"), s(""), Value::Array(vec![])],
        );
    }
    let ann = zone.servers[0].client_as("ann", "pw");
    let bob = zone.servers[0].client_as("bob", "pw");
    let nic = s(&format!(
        "CPU = 0.1\nMEMORY = 8\nNIC = [ NETWORK_ID = {vn} ]"
    ));
    let anns = ok(&ann, "one.vm.allocate", vec![nic.clone()]);
    let bobs = ok(&bob, "one.vm.allocate", vec![nic]);
    ok(
        &c,
        "one.vn.hold",
        vec![Value::Int(vn), s("LEASES = [ IP = 10.9.0.9 ]")],
    );
    let seen = |who: &cli::Client| -> (Vec<String>, String) {
        let b = info(who, "one.vn.info", vn);
        let used = b
            .split("<USED_LEASES>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or("")
            .to_string();
        let vms = b
            .split("<LEASE>")
            .skip(1)
            .map(|l| {
                l.split("<VM>")
                    .nth(1)
                    .and_then(|r| r.split('<').next())
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        (vms, used)
    };
    let (vms, used) = seen(&c);
    assert_eq!(used, "3");
    assert_eq!(vms, [anns.to_string(), bobs.to_string(), "-1".into()]);
    // The VMs with a NIC there, whoever asks (`VirtualNetwork::updated`).
    let updated = format!("<UPDATED_VMS><ID>{anns}</ID><ID>{bobs}</ID></UPDATED_VMS>");
    assert!(info(&ann, "one.vn.info", vn).contains(&updated));
    assert_eq!(seen(&ann), (vec![anns.to_string()], "3".to_string()));
    assert_eq!(seen(&bob), (vec![bobs.to_string()], "3".to_string()));
}

/// `VirtualNetworkAllocate` leaves the ranges to the driver's answer (`IPAMManager::
/// _vnet_create`): a bad one leaves the new network in ERROR, with the ranges before it and
/// the reason in its template.
#[test]
fn a_network_allocated_with_a_bad_range_is_made_in_error() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![
            s(
                "NAME = half\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 4 ]\n\
               AR = [ TYPE = IP4, SIZE = 2 ]\nAR = [ TYPE = ETHER, SIZE = 2 ]",
            ),
            Value::Int(-1),
        ],
    );
    let body = info(&c, "one.vn.info", vn);
    assert!(body.contains("<STATE>5</STATE>"), "{body}");
    assert!(
        body.contains(" : Wrong or empty IP attribute]]></ERROR>"),
        "{body}"
    );
    assert_eq!(body.matches("<AR>").count(), 1, "{body}");
    // Recovered by hand, it is READY with what it holds.
    ok(&c, "one.vn.recover", vec![Value::Int(vn), Value::Int(1)]);
    assert!(info(&c, "one.vn.info", vn).contains("<STATE>1</STATE>"));
}

/// `AddressRange::update_attributes`: a SLAAC range's prefixes must parse, and those an update
/// leaves out are written back empty; a static IPv6 range keeps none.
#[test]
fn update_ar_checks_and_keeps_ipv6_prefixes_as_opennebula() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = six\nVN_MAD = dummy\nBRIDGE = br0\n\
         AR = [ TYPE = IP6, SIZE = 4, GLOBAL_PREFIX = \"2001:db8::\" ]\n\
         AR = [ TYPE = IP6_STATIC, SIZE = 4, IP6 = \"2001:db8::10\", PREFIX_LENGTH = 64 ]",
    );
    let (code, msg) = one_error(c.call(
        "one.vn.update_ar",
        vec![Value::Int(vn), s("AR = [ AR_ID = 0, GLOBAL_PREFIX = zzz ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vn.update_ar] Wrong format for IP6 global address prefix"
        )
    );
    ok(
        &c,
        "one.vn.update_ar",
        vec![Value::Int(vn), s("AR = [ AR_ID = 0, SIZE = 5 ]")],
    );
    ok(
        &c,
        "one.vn.update_ar",
        vec![
            Value::Int(vn),
            s("AR = [ AR_ID = 1, GLOBAL_PREFIX = \"2001:db8::\" ]"),
        ],
    );
    let body = info(&c, "one.vn.info", vn);
    let ars: Vec<&str> = body.split("<AR>").skip(1).collect();
    assert!(
        ars[0].contains("<GLOBAL_PREFIX></GLOBAL_PREFIX>")
            && ars[0].contains("<ULA_PREFIX></ULA_PREFIX>"),
        "{body}"
    );
    assert!(!ars[1].contains("GLOBAL_PREFIX"), "{body}");
    // `init_ipv6_static`: without SIZE, to the end of its prefix.
    ok(
        &c,
        "one.vn.add_ar",
        vec![
            Value::Int(vn),
            s("AR = [ TYPE = IP6_STATIC, IP6 = \"2001:db8::1:10\", PREFIX_LENGTH = 120 ]"),
        ],
    );
    let body = info(&c, "one.vn.info", vn);
    let third = body.split("<AR>").nth(3).unwrap_or("");
    assert!(third.contains("<SIZE>240</SIZE>"), "{body}");
}

/// `VirtualNetworkReserve`'s order: the reservation's consistency before any authorization,
/// the parent read without its id, IP over IP6 over MAC, the owner's quota before the
/// addresses; `free_ar`'s force (it runs `rm_ar`'s code) and `hold` in every range holding the
/// address (`AddressRangePool::hold_by_ip`); PORT_START/PORT_SIZE forwarded ports
/// (`set_port_ranges`) on leases, NICs and reservations.
#[test]
fn reserve_free_ar_and_hold_as_opennebula_orders_them() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(
        &zone,
        &c,
        "NAME = pub\nVN_MAD = dummy\nBRIDGE = br0\n\
         AR = [ TYPE = IP4, IP = 10.7.0.1, SIZE = 8, PORT_START = 2000, PORT_SIZE = 10 ]\n\
         AR = [ TYPE = IP4, IP = 10.7.0.1, SIZE = 4 ]",
    );
    ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    // The network's owner (oneadmin) keeps MANAGE; ann may USE it (group users, 0604).
    let other = ready_network(&zone, &c, "NAME = other\nVN_MAD = dummy\nBRIDGE = br1");
    let r = ok(
        &c,
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 1\nNAME = mine")],
    );
    // Onto a reservation of another network: the consistency message, not a refusal of
    // MANAGE on it.
    let e = ann.call(
        "one.vn.reserve",
        vec![Value::Int(other), s(&format!("SIZE = 1\nNETWORK_ID = {r}"))],
    );
    assert_eq!(
        one_error(e),
        (
            ACTION,
            format!(
                "[one.vn.reserve] New reservations for virtual network {r} have to be from network {vn}"
            )
        )
    );
    let e = c.call(
        "one.vn.reserve",
        vec![Value::Int(99), s("SIZE = 1\nNAME = x")],
    );
    assert_eq!(
        one_error(e),
        (
            0x400,
            "[one.vn.reserve] Error getting virtual network Pool.".to_string()
        )
    );
    // IP wins over MAC; the reservation's range starts at the forwarded ports of its index.
    let byip = ok(
        &c,
        "one.vn.reserve",
        vec![
            Value::Int(vn),
            s("SIZE = 2\nNAME = byip\nAR_ID = 0\nIP = 10.7.0.5\nMAC = 02:00:0a:07:00:02"),
        ],
    );
    let rb = info(&c, "one.vn.info", byip);
    assert!(rb.contains("<IP>10.7.0.5</IP>"), "{rb}");
    assert!(
        rb.contains("<EXTERNAL_PORT_RANGE>2041:2050</EXTERNAL_PORT_RANGE>"),
        "{rb}"
    );
    // Leases and NICs show their forwarded ports.
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 8\nNIC = [ NETWORK_ID = {vn}, AR_ID = 0 ]"
        ))],
    );
    let l = leases(&c, vn);
    let first = l.iter().find(|l| l.contains("10.7.0.1")).unwrap();
    assert!(
        first.contains("<EXTERNAL_PORT_RANGE>2001:2010</EXTERNAL_PORT_RANGE>")
            && first.contains("<INTERNAL_PORT_RANGE>1-10/2001</INTERNAL_PORT_RANGE>"),
        "{first}"
    );
    let vb = info(&c, "one.vm.info", vm);
    assert!(
        vb.contains("<EXTERNAL_PORT_RANGE><![CDATA[2011:2020]]></EXTERNAL_PORT_RANGE>"),
        "{vb}"
    );
    // Held without AR_ID: every range with the address holds it.
    let used = |b: &str| {
        b.split("<USED_LEASES>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or("")
            .to_string()
    };
    let before: i64 = used(&info(&c, "one.vn.info", vn)).parse().unwrap();
    ok(
        &c,
        "one.vn.hold",
        vec![Value::Int(vn), s("LEASES = [ IP = 10.7.0.3 ]")],
    );
    let after: i64 = used(&info(&c, "one.vn.info", vn)).parse().unwrap();
    assert_eq!(after, before + 2);
    // free_ar with force takes a range with leases.
    zone.wait_until(DEADLINE, "the reservation is READY", || {
        info(&c, "one.vn.info", byip).contains("<STATE>1</STATE>")
    });
    ok(
        &c,
        "one.vn.hold",
        vec![Value::Int(byip), s("LEASES = [ IP = 10.7.0.5 ]")],
    );
    let e = c.call("one.vn.free_ar", vec![Value::Int(byip), Value::Int(0)]);
    assert_eq!(one_error(e).0, INTERNAL);
    ok(
        &c,
        "one.vn.free_ar",
        vec![Value::Int(byip), Value::Int(0), Value::Bool(true)],
    );
    assert!(!info(&c, "one.vn.info", byip).contains("<AR>"));
}

/// `VirtualNetworkPool::allocate` looks for a taken name before `insert` reads the template;
/// a network without VLAN_ID has none in its template until an update writes it.
#[test]
fn a_taken_network_name_is_the_first_refusal_and_no_vlan_id_is_written() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ready_network(&zone, &c, "NAME = n\nVN_MAD = dummy\nBRIDGE = br0");
    let e = c.call("one.vn.allocate", vec![s("NAME = n\nBRIDGE = br0")]);
    assert_eq!(
        one_error(e),
        (
            INTERNAL,
            format!("[one.vn.allocate] NAME is already taken by NET {vn}.")
        )
    );
    let body = info(&c, "one.vn.info", vn);
    let tmpl = body.split("<TEMPLATE>").nth(1).unwrap_or("");
    assert!(!tmpl.contains("VLAN_ID"), "{tmpl}");
    c.call("one.vn.update", vec![Value::Int(vn), s("BRIDGE = br0")])
        .unwrap();
    let body = info(&c, "one.vn.info", vn);
    let tmpl = body.split("<TEMPLATE>").nth(1).unwrap_or("");
    assert!(tmpl.contains("<VLAN_ID><![CDATA[]]></VLAN_ID>"), "{tmpl}");
}

/// `VirtualMachineNic::authorize`: a NIC asks USE on its network's security groups and its
/// own, so a group that is not shared refuses the VM.
#[test]
fn a_vm_needs_use_on_its_nics_security_groups() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let sg = ok(&c, "one.secgroup.allocate", vec![s("NAME = private")]);
    let mut params = vec![Value::Int(sg), Value::Int(1), Value::Int(1)];
    params.extend((0..7).map(|_| Value::Int(0)));
    c.call("one.secgroup.chmod", params).unwrap();
    let vn = ready_network(
        &zone,
        &c,
        &format!(
            "NAME = shared\nVN_MAD = dummy\nBRIDGE = br0\nSECURITY_GROUPS = \"0,{sg}\"\n\
             AR = [ TYPE = IP4, IP = 10.8.0.1, SIZE = 4 ]"
        ),
    );
    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let nic = |extra: &str| {
        s(&format!(
            "CPU = 0.1\nMEMORY = 8\nNIC = [ NETWORK_ID = {vn}{extra} ]"
        ))
    };
    assert_eq!(
        one_error(ann.call("one.vm.allocate", vec![nic("")])),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.allocate] User [{uid}] : Not authorized to perform USE SECGROUP [{sg}]."
            )
        )
    );
    // oneadmin may, and its VM holds the group.
    ok(&c, "one.vm.allocate", vec![nic("")]);
}
