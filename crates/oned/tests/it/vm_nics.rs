//! `one.vm.attachnic` / `one.vm.detachnic`: a running VM hot-plugs NICs (HOTPLUG_NIC, then
//! RUNNING again), a powered-off one takes them at once; addresses are leased and freed with
//! them, and the calls refuse other states with OpenNebula's words.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE};

const ACTION: i32 = 0x800;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

fn states(c: &cli::Client, vm: i32) -> (String, String) {
    let body = info(c, "one.vm.info", vm);
    let get = |tag: &str| {
        body.split(&format!("<{tag}>"))
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or("")
            .to_string()
    };
    (get("STATE"), get("LCM_STATE"))
}

fn used_leases(c: &cli::Client, vn: i32) -> usize {
    info(c, "one.vn.info", vn).matches("<LEASE>").count()
}

#[test]
fn nics_are_hot_plugged_into_running_vms_and_their_addresses_follow_them() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    let host = ok(
        &w,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let vn = ok(
        &w,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 172.16.0.1, SIZE = 4 ]",
        )],
    );
    let vm = ok(
        &w,
        "one.vm.allocate",
        vec![s("NAME = web\nCPU = 0.1\nMEMORY = 32")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || {
        states(&c, vm) == ("3".into(), "3".into())
    });
    assert!(info(&c, "one.host.info", host).contains("<NAME>node</NAME>"));

    assert_eq!(
        ok(
            &w,
            "one.vm.attachnic",
            vec![Value::Int(vm), s(&format!("NIC = [ NETWORK_ID = {vn} ]"))],
        ),
        vm
    );
    // Hot-plugged: HOTPLUG_NIC (25) until the driver is done, then RUNNING again.
    zone.wait_until(DEADLINE, "the NIC is plugged", || {
        states(&c, vm) == ("3".into(), "3".into())
    });
    ok(
        &w,
        "one.vm.attachnic",
        vec![Value::Int(vm), s("NIC = [ NETWORK = lan ]")],
    );
    zone.wait_until(DEADLINE, "the second NIC is plugged", || {
        states(&c, vm) == ("3".into(), "3".into())
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<IP><![CDATA[172.16.0.1]]></IP>")
            && body.contains("<NIC_ID><![CDATA[0]]></NIC_ID>"),
        "{body}"
    );
    assert!(
        body.contains("<IP><![CDATA[172.16.0.2]]></IP>")
            && body.contains("<NIC_ID><![CDATA[1]]></NIC_ID>"),
        "{body}"
    );
    assert_eq!(used_leases(&c, vn), 2);

    // While it hot-plugs, or while it is not running nor off, the calls refuse.
    let (code, msg) = one_error(w.call("one.vm.detachnic", vec![Value::Int(vm), Value::Int(7)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.detachnic] Could not detach NIC with NIC_ID 7, it does not exist."
        )
    );
    ok(&w, "one.vm.detachnic", vec![Value::Int(vm), Value::Int(0)]);
    zone.wait_until(DEADLINE, "the NIC is unplugged", || {
        states(&c, vm) == ("3".into(), "3".into())
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(!body.contains("172.16.0.1"), "{body}");
    assert_eq!(used_leases(&c, vn), 1);

    // Bandwidth limits are updated live on the remaining NIC.
    ok(
        &w,
        "one.vm.updatenic",
        vec![
            Value::Int(vm),
            Value::Int(1),
            s("NIC = [ INBOUND_AVG_BW = 1000, MODEL = e1000 ]"),
            Value::Int(1),
        ],
    );
    zone.wait_until(DEADLINE, "the NIC is updated", || {
        states(&c, vm) == ("3".into(), "3".into())
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<INBOUND_AVG_BW><![CDATA[1000]]></INBOUND_AVG_BW>"),
        "{body}"
    );
    // Only the bandwidth attributes change.
    assert!(!body.contains("e1000"), "{body}");
    let (code, msg) = one_error(w.call(
        "one.vm.updatenic",
        vec![
            Value::Int(vm),
            Value::Int(0),
            s("NIC = [ INBOUND_AVG_BW = 1 ]"),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            format!("[one.vm.updatenic] VM {vm}: NIC 0 does not exists").as_str()
        )
    );

    // Powered off: attached at once, no hot-plug.
    ok(
        &w,
        "one.vm.action",
        vec![s("poweroff-hard"), Value::Int(vm)],
    );
    zone.wait_until(DEADLINE, "the VM is off", || {
        states(&c, vm) == ("8".into(), "0".into())
    });
    ok(
        &w,
        "one.vm.attachnic",
        vec![
            Value::Int(vm),
            s(&format!("NIC = [ NETWORK_ID = {vn}, IP = 172.16.0.4 ]")),
        ],
    );
    assert_eq!(states(&c, vm), ("8".into(), "0".into()));
    assert!(info(&c, "one.vm.info", vm).contains("<IP><![CDATA[172.16.0.4]]></IP>"));

    let held = ok(
        &w,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32"), Value::Bool(true)],
    );
    let (code, msg) = one_error(w.call(
        "one.vm.attachnic",
        vec![Value::Int(held), s(&format!("NIC = [ NETWORK_ID = {vn} ]"))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            format!("[one.vm.attachnic] Could not add a new NIC to VM {held}, wrong state HOLD.")
                .as_str()
        )
    );

    // Ending the VM frees what its NICs still hold.
    ok(
        &w,
        "one.vm.action",
        vec![s("terminate-hard"), Value::Int(vm)],
    );
    zone.wait_until(DEADLINE, "the leases are free", || used_leases(&c, vn) == 0);
}

#[test]
fn security_groups_join_and_leave_a_nic_and_the_group_lists_the_vm_meanwhile() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 4 ]",
        )],
    );
    let sg = ok(
        &c,
        "one.secgroup.allocate",
        vec![s(
            "NAME = web\nRULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, RANGE = 80 ]",
        )],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 32\nNIC = [ NETWORK_ID = {vn} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the VM runs", || {
        states(&c, vm) == ("3".into(), "3".into())
    });
    assert!(
        info(&c, "one.vm.info", vm).contains("<SECURITY_GROUPS><![CDATA[0]]></SECURITY_GROUPS>")
    );
    // The default group's two rules, in the VM's TEMPLATE (`get_security_group_rules`).
    let rules = |body: &str, sgid: i32| {
        body.matches(&format!(
            "<SECURITY_GROUP_ID><![CDATA[{sgid}]]></SECURITY_GROUP_ID>"
        ))
        .count()
    };
    let body = info(&c, "one.vm.info", vm);
    assert_eq!(rules(&body, 0), 2, "{body}");
    assert!(body.contains(
        "<SECURITY_GROUP_RULE><PROTOCOL><![CDATA[ALL]]></PROTOCOL><RULE_TYPE><![CDATA[OUTBOUND]]>\
         </RULE_TYPE><SECURITY_GROUP_ID><![CDATA[0]]></SECURITY_GROUP_ID><SECURITY_GROUP_NAME>\
         <![CDATA[default]]></SECURITY_GROUP_NAME></SECURITY_GROUP_RULE>"
    ), "{body}");

    ok(
        &c,
        "one.vm.attachsg",
        vec![Value::Int(vm), Value::Int(0), Value::Int(sg)],
    );
    assert!(info(&c, "one.vm.info", vm).contains(&format!(
        "<SECURITY_GROUPS><![CDATA[0,{sg}]]></SECURITY_GROUPS>"
    )));
    zone.wait_until(DEADLINE, "the group's rules reach the VM", || {
        info(&c, "one.secgroup.info", sg)
            .contains(&format!("<UPDATED_VMS><ID>{vm}</ID></UPDATED_VMS>"))
    });
    assert_eq!(rules(&info(&c, "one.vm.info", vm), sg), 1);
    // New rules reach the VM's template through the driver; a NETWORK_ID rule is one rule
    // per address range of that network.
    ok(
        &c,
        "one.secgroup.update",
        vec![
            Value::Int(sg),
            s(&format!(
                "RULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, RANGE = 443 ]\n\
                 RULE = [ PROTOCOL = ALL, RULE_TYPE = outbound, NETWORK_ID = {vn} ]"
            )),
        ],
    );
    zone.wait_until(DEADLINE, "the new rules reach the VM", || {
        let body = info(&c, "one.vm.info", vm);
        rules(&body, sg) == 2
            && body.contains("<RANGE><![CDATA[443]]></RANGE>")
            && body.contains("<SIZE><![CDATA[4]]></SIZE>")
            && info(&c, "one.secgroup.info", sg)
                .contains(&format!("<UPDATED_VMS><ID>{vm}</ID></UPDATED_VMS>"))
    });
    let refused = |method: &str, nic: i32, group: i32| {
        one_error(c.call(
            method,
            vec![Value::Int(vm), Value::Int(nic), Value::Int(group)],
        ))
    };
    assert_eq!(
        refused("one.vm.attachsg", 0, sg),
        (
            ACTION,
            format!("[one.vm.attachsg] VM {vm} SG {sg} already in NIC 0")
        )
    );
    assert_eq!(
        refused("one.vm.attachsg", 5, sg),
        (
            ACTION,
            format!("[one.vm.attachsg] VM {vm} doesn't have NIC id 5")
        )
    );
    assert_eq!(
        refused("one.vm.attachsg", 0, 999),
        (
            ACTION,
            "[one.vm.attachsg] Could not attach SG 999 to VM, SG does not exist".to_string()
        )
    );

    ok(
        &c,
        "one.vm.detachsg",
        vec![Value::Int(vm), Value::Int(0), Value::Int(sg)],
    );
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<SECURITY_GROUPS><![CDATA[0]]></SECURITY_GROUPS>"));
    assert_eq!((rules(&body, sg), rules(&body, 0)), (0, 2), "{body}");
    assert!(!info(&c, "one.secgroup.info", sg).contains(&format!("<ID>{vm}</ID>")));
    assert_eq!(
        refused("one.vm.detachsg", 0, sg),
        (
            ACTION,
            format!("[one.vm.detachsg] VM {vm} NIC 0 doesn't contain SG {sg}")
        )
    );
}

/// `VirtualMachineNics::get_network_leases`: a new VM's NIC_ALIAS names its parent NIC by
/// NAME, is numbered after the NICs, leases its own address and is listed in the parent's
/// ALIAS_IDS; an unknown parent or an alias in auto mode is refused.
#[test]
fn nic_aliases_lease_their_own_address_under_their_parent() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 8 ]"),
            Value::Int(-1),
        ],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 8\nNIC = [ NETWORK_ID = {vn}, NAME = web ]\n\
             NIC = [ NETWORK_ID = {vn} ]\nNIC_ALIAS = [ NETWORK_ID = {vn}, PARENT = web ]"
        ))],
    );
    let body = info(&c, "one.vm.info", vm);
    let alias = body
        .split("<NIC_ALIAS>")
        .nth(1)
        .and_then(|a| a.split("</NIC_ALIAS>").next())
        .unwrap();
    for attr in [
        "<ALIAS_ID><![CDATA[0]]></ALIAS_ID>",
        "<IP><![CDATA[10.0.0.3]]></IP>",
        "<NAME><![CDATA[NIC0_ALIAS2]]></NAME>",
        "<NIC_ID><![CDATA[2]]></NIC_ID>",
        "<PARENT_ID><![CDATA[0]]></PARENT_ID>",
    ] {
        assert!(alias.contains(attr), "{attr} in {alias}");
    }
    // Leased through `nic_attribute` as the NICs, an alias names its VM in TARGET too.
    let target = format!("<TARGET><![CDATA[one-{vm}-2]]></TARGET>");
    assert!(alias.contains(&target), "{alias}");
    let parent = body
        .split("<NIC>")
        .nth(1)
        .and_then(|n| n.split("</NIC>").next())
        .unwrap();
    assert!(
        parent.contains("<ALIAS_IDS><![CDATA[2]]></ALIAS_IDS>"),
        "{parent}"
    );
    assert_eq!(used_leases(&c, vn), 3);

    for (alias, why) in [
        (
            format!("NIC_ALIAS = [ NETWORK_ID = {vn}, PARENT = nope ]"),
            "NIC named nope not found for alias",
        ),
        (
            "NIC_ALIAS = [ NETWORK_MODE = auto, PARENT = web ]".to_string(),
            "Alias is incompatible with auto mode",
        ),
    ] {
        let text = format!("CPU = 1\nMEMORY = 8\nNIC = [ NETWORK_ID = {vn}, NAME = web ]\n{alias}");
        assert_eq!(
            one_error(c.call("one.vm.allocate", vec![s(&text)])),
            (0x2000, format!("[one.vm.allocate] {why}"))
        );
    }
    assert_eq!(used_leases(&c, vn), 3, "a refused VM leases nothing");

    // `set_up_attach_nic`: a second alias of the same parent, one past the highest ALIAS_ID.
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let running = || states(&c, vm) == ("3".to_string(), "3".to_string());
    zone.wait_until(DEADLINE, "the VM runs", running);
    let attach = |text: &str| c.call("one.vm.attachnic", vec![Value::Int(vm), s(text)]);
    attach(&format!("NIC_ALIAS = [ NETWORK_ID = {vn}, PARENT = web ]")).unwrap();
    zone.wait_until(DEADLINE, "the alias is plugged", running);
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<ALIAS_IDS><![CDATA[2,3]]></ALIAS_IDS>"),
        "{body}"
    );
    assert!(
        body.contains("<ALIAS_ID><![CDATA[1]]></ALIAS_ID>")
            && body.contains("<NAME><![CDATA[NIC0_ALIAS3]]></NAME>"),
        "{body}"
    );
    assert_eq!(
        one_error(attach(&format!(
            "NIC_ALIAS = [ NETWORK_ID = {vn}, PARENT = nope ]"
        ))),
        (0x800, "[one.vm.attachnic] Alias not found.".to_string())
    );
    assert_eq!(used_leases(&c, vn), 4);
    // An alias leaves its parent's list; the parent takes its other aliases with it.
    c.call("one.vm.detachnic", vec![Value::Int(vm), Value::Int(2)])
        .unwrap();
    zone.wait_until(DEADLINE, "the alias is unplugged", running);
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<ALIAS_IDS><![CDATA[3]]></ALIAS_IDS>"),
        "{body}"
    );
    c.call("one.vm.detachnic", vec![Value::Int(vm), Value::Int(0)])
        .unwrap();
    let body = info(&c, "one.vm.info", vm);
    assert!(!body.contains("<NIC_ALIAS>"), "{body}");
    assert_eq!(used_leases(&c, vn), 1);
}

/// `set_nic_name`: a NAME like oned's own (`NIC<n>`, `NIC<n>_ALIAS<m>`) is prefixed with `_`,
/// at allocate and at attachnic; `set_up_attach_nic` fills an attached NIC from the VM's
/// NIC_DEFAULT as the allocate does.
#[test]
fn nic_names_like_oneds_are_prefixed_and_attached_nics_take_nic_default() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 8 ]"),
            Value::Int(-1),
        ],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 8\nNIC_DEFAULT = [ MODEL = virtio ]\n\
             NIC = [ NETWORK_ID = {vn}, NAME = NIC7 ]\n\
             NIC_ALIAS = [ NETWORK_ID = {vn}, PARENT = _NIC7, NAME = NIC0_ALIAS1 ]"
        ))],
    );
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<NAME><![CDATA[_NIC7]]></NAME>"), "{body}");
    assert!(
        body.contains("<NAME><![CDATA[_NIC0_ALIAS1]]></NAME>"),
        "{body}"
    );
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let running = || states(&c, vm) == ("3".to_string(), "3".to_string());
    zone.wait_until(DEADLINE, "the VM runs", running);
    c.call(
        "one.vm.attachnic",
        vec![
            Value::Int(vm),
            s(&format!("NIC = [ NETWORK_ID = {vn}, NAME = NIC2 ]")),
        ],
    )
    .unwrap();
    zone.wait_until(DEADLINE, "the NIC is plugged", running);
    let body = info(&c, "one.vm.info", vm);
    let attached = body
        .split("<NIC>")
        .find(|n| n.contains("<NIC_ID><![CDATA[2]]></NIC_ID>"))
        .and_then(|n| n.split("</NIC>").next())
        .unwrap_or_else(|| panic!("no NIC 2 in {body}"));
    assert!(
        attached.contains("<NAME><![CDATA[_NIC2]]></NAME>"),
        "{attached}"
    );
    assert!(
        attached.contains("<MODEL><![CDATA[virtio]]></MODEL>"),
        "{attached}"
    );
}
