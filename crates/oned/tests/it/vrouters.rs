//! Virtual routers (`one.vrouter.*`): floating addresses leased and freed with the router,
//! VMs instantiated from a virtual router template with the router's NICs, NICs attached to
//! and detached from the router and its VMs, the VMs ended with the router, the NETWORK quota
//! of the router's owner, and OpenNebula's refusals; on every server of a zone.

use cli::objects::Kind;
use wire::acl::{ALL_ID, CREATE, INDIVIDUAL_ID, VROUTER};
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS};

/// OpenNebula's ALLOCATE error code.
const ALLOCATE: i32 = 0x4000;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![int(oid)]).unwrap()
}

/// The text of the first `<tag>` of `body`.
fn first(body: &str, tag: &str) -> String {
    body.split(&format!("<{tag}>"))
        .nth(1)
        .and_then(|r| r.split(&format!("</{tag}>")).next())
        .unwrap_or("")
        .to_string()
}

/// The VM ids a router lists.
fn vms_of(c: &cli::Client, vr: i32) -> Vec<i32> {
    first(&info(c, "one.vrouter.info", vr), "VMS")
        .split("<ID>")
        .filter_map(|p| p.split('<').next()?.parse().ok())
        .collect()
}

fn state(c: &cli::Client, vm: i32) -> (String, String) {
    let body = info(c, "one.vm.info", vm);
    (first(&body, "STATE"), first(&body, "LCM_STATE"))
}

fn leases(c: &cli::Client, vn: i32) -> usize {
    info(c, "one.vn.info", vn).matches("<LEASE>").count()
}

#[test]
fn routers_lease_floating_addresses_and_run_their_vms_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let w = zone.servers[follower].client();
    let c = zone.servers[leader].client();
    ok(
        &w,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), int(-1)],
    );
    let vn = ok(
        &w,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 16 ]",
        )],
    );
    // Through a follower: the floating NIC leases 10.0.0.1 for the router itself.
    let vr = ok(
        &w,
        "one.vrouter.allocate",
        vec![s(&format!(
            "NAME = gw\nDESCRIPTION = edge\n\
             NIC = [ NETWORK_ID = {vn}, FLOATING_IP = YES ]\nNIC = [ NETWORK = lan ]"
        ))],
    );
    for i in 0..3 {
        let r = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} has the router"), || {
            r.call_xml("one.vrouter.info", vec![int(vr)]).is_ok()
        });
        let body = info(&r, "one.vrouter.info", vr);
        assert!(
            body.starts_with(&format!(
                "<VROUTER><ID>{vr}</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>\
                 <GNAME>oneadmin</GNAME><NAME>gw</NAME><PERMISSIONS>"
            )),
            "{body}"
        );
        assert!(
            body.contains("</PERMISSIONS><VMS></VMS><TEMPLATE>"),
            "{body}"
        );
        assert!(
            body.contains("<VROUTER_IP><![CDATA[10.0.0.1]]></VROUTER_IP>"),
            "{body}"
        );
        assert!(
            !body.contains("<NAME><![CDATA[gw]]>"),
            "NAME is not the template's: {body}"
        );
    }
    assert_eq!(leases(&c, vn), 1);
    let vn_body = info(&c, "one.vn.info", vn);
    assert!(
        vn_body.contains(&format!("<VROUTER>{vr}</VROUTER>")),
        "{vn_body}"
    );
    assert!(
        vn_body.contains(&format!("<VROUTERS><ID>{vr}</ID></VROUTERS>")),
        "{vn_body}"
    );

    // Only virtual router templates make router VMs, and they make nothing else.
    let plain = ok(
        &w,
        "one.template.allocate",
        vec![s("NAME = plain\nCPU = 0.1\nMEMORY = 32")],
    );
    let vrt = ok(
        &w,
        "one.template.allocate",
        vec![s("NAME = vrt\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES")],
    );
    assert_eq!(
        one_error(c.call("one.template.instantiate", vec![int(vrt), s("x")])),
        (
            ACTION_CODE,
            "[one.template.instantiate] Virtual router templates cannot be instantiated".into()
        )
    );
    let instantiate = |c: &cli::Client, vr: i32, n: i32, t: i32, name: &str, hold: bool| {
        c.call(
            "one.vrouter.instantiate",
            vec![int(vr), int(n), int(t), s(name), Value::Bool(hold), s("")],
        )
    };
    assert_eq!(
        one_error(instantiate(&c, vr, 1, -1, "", false)),
        (
            ACTION_CODE,
            "[one.vrouter.instantiate] A template ID was not provided, and the virtual router does not have a default one"
                .into()
        )
    );
    assert_eq!(
        one_error(instantiate(&c, vr, 1, plain, "", false)),
        (
            ACTION_CODE,
            "[one.vrouter.instantiate] Only virtual router templates are allowed".into()
        )
    );
    assert_eq!(
        one_error(instantiate(&c, 99, 1, vrt, "", false)),
        (
            NO_EXISTS,
            "[one.vrouter.instantiate] Error getting virtual router [99].".into()
        )
    );

    // Two VMs, released: each has the router's NICs, its own addresses and VROUTER_ID.
    assert_eq!(
        instantiate(&w, vr, 2, vrt, "", false).unwrap().as_i64(),
        Some(vr as i64)
    );
    let vms = vms_of(&c, vr);
    assert_eq!(vms.len(), 2, "{vms:?}");
    for (i, vm) in vms.iter().enumerate() {
        let body = info(&c, "one.vm.info", *vm);
        assert_eq!(first(&body, "NAME"), format!("vr-gw-{i}"));
        assert!(
            body.contains(&format!("<VROUTER_ID><![CDATA[{vr}]]></VROUTER_ID>")),
            "{body}"
        );
        assert!(
            body.contains("<VROUTER_IP><![CDATA[10.0.0.1]]></VROUTER_IP>"),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "<VROUTER_KEEPALIVED_ID><![CDATA[{}]]></VROUTER_KEEPALIVED_ID>",
                vr % 255 + 1
            )),
            "{body}"
        );
        zone.wait_until(DEADLINE, "the router VM runs", || {
            state(&c, *vm) == ("3".into(), "3".into())
        });
    }
    // Their NICs change through the router only.
    assert_eq!(
        one_error(c.call(
            "one.vm.attachnic",
            vec![int(vms[0]), s(&format!("NIC = [ NETWORK_ID = {vn} ]"))]
        )),
        (
            ACTION_CODE,
            "[one.vm.attachnic] Action is not supported for virtual router VMs".into()
        )
    );
    // The router, then two NICs of each VM.
    assert_eq!(leases(&c, vn), 5);
    // chmod and chown reach the router's VMs (`VirtualRouterChmod`, `RequestManagerChown`).
    let mut bits = vec![int(vr), int(-1), int(-1), int(-1), int(1), int(1)];
    bits.extend((0..4).map(|_| int(-1)));
    ok(&c, "one.vrouter.chmod", bits);
    ok(&c, "one.vrouter.chown", vec![int(vr), int(-1), int(0)]);
    for vm in &vms {
        let body = info(&c, "one.vm.info", *vm);
        assert!(
            body.contains("<GROUP_U>1</GROUP_U><GROUP_M>1</GROUP_M>")
                && body.contains("<GID>0</GID>"),
            "{body}"
        );
    }
    // The template is now the router's default; on hold, named from the pattern.
    assert!(info(&c, "one.vrouter.info", vr)
        .contains(&format!("<TEMPLATE_ID><![CDATA[{vrt}]]></TEMPLATE_ID>")));
    instantiate(&c, vr, 1, -1, "spare-%i", true).unwrap();
    let vms = vms_of(&c, vr);
    assert_eq!(vms.len(), 3, "{vms:?}");
    let spare = vms[2];
    assert_eq!(first(&info(&c, "one.vm.info", spare), "NAME"), "spare-0");
    assert_eq!(state(&c, spare).0, "2", "on hold");

    // A NIC for the router and its VMs: a VM on hold cannot take it, as in OpenNebula.
    c.call("one.vm.action", vec![s("terminate-hard"), int(spare)])
        .unwrap();
    zone.wait_until(DEADLINE, "the spare VM is gone from the router", || {
        vms_of(&c, vr).len() == 2
    });
    assert_eq!(
        ok(
            &w,
            "one.vrouter.attachnic",
            vec![int(vr), s(&format!("NIC = [ NETWORK_ID = {vn} ]"))],
        ),
        vr
    );
    let body = info(&c, "one.vrouter.info", vr);
    assert!(body.contains("<NIC_ID><![CDATA[2]]></NIC_ID>"), "{body}");
    for vm in vms_of(&c, vr) {
        zone.wait_until(DEADLINE, "the NIC is plugged", || {
            let body = info(&c, "one.vm.info", vm);
            body.contains("<NIC_ID><![CDATA[2]]></NIC_ID>")
                && state(&c, vm) == ("3".into(), "3".into())
        });
    }
    assert_eq!(leases(&c, vn), 7);
    let attach = |t: &str| one_error(c.call("one.vrouter.attachnic", vec![int(vr), s(t)]));
    assert_eq!(
        attach("NIC_ALIAS = [ NETWORK_ID = 0 ]"),
        (
            ACTION_CODE,
            "[one.vrouter.attachnic] Alias can't be attached to virtual router.".into()
        )
    );
    assert_eq!(
        attach("DESCRIPTION = x"),
        (
            ACTION_CODE,
            "[one.vrouter.attachnic] The template must contain one NIC attribute".into()
        )
    );
    assert_eq!(
        attach("NIC = [ NETWORK_ID = 42 ]"),
        (
            ACTION_CODE,
            "[one.vrouter.attachnic] Virtual network with ID: 42 does not exist".into()
        )
    );

    // Detach: the router's floating NIC, its address free again; each VM's NIC 0 goes too.
    w.call("one.vrouter.detachnic", vec![int(vr), int(0)])
        .unwrap();
    for vm in vms_of(&c, vr) {
        zone.wait_until(DEADLINE, "the NIC is unplugged", || {
            !info(&c, "one.vm.info", vm).contains("<NIC_ID><![CDATA[0]]></NIC_ID>")
                && state(&c, vm) == ("3".into(), "3".into())
        });
    }
    assert!(!info(&c, "one.vrouter.info", vr).contains("VROUTER_IP"));
    assert_eq!(leases(&c, vn), 4);
    assert_eq!(
        one_error(c.call("one.vrouter.detachnic", vec![int(vr), int(0)])),
        (
            ACTION_CODE,
            "[one.vrouter.detachnic] NIC with NIC_ID 0 does not exist.".into()
        )
    );

    // Update keeps the NICs, whatever the text says of them.
    c.call(
        "one.vrouter.update",
        vec![
            int(vr),
            s("DESCRIPTION = core\nNIC = [ NETWORK_ID = 7 ]"),
            int(0),
        ],
    )
    .unwrap();
    let body = info(&c, "one.vrouter.info", vr);
    assert!(
        body.contains("<DESCRIPTION><![CDATA[core]]></DESCRIPTION>"),
        "{body}"
    );
    assert_eq!(body.matches("<NIC>").count(), 2, "{body}");
    assert!(!body.contains("TEMPLATE_ID"), "replaced: {body}");
    c.call("one.vrouter.rename", vec![int(vr), s("gw2")])
        .unwrap();
    let pool = c
        .call_xml("one.vrouterpool.info", vec![int(-2), int(-1), int(-1)])
        .unwrap();
    assert!(pool.starts_with("<VROUTER_POOL><VROUTER><ID>"), "{pool}");
    assert!(pool.contains("<NAME>gw2</NAME>"), "{pool}");

    // Delete: the router's leases go, and its VMs end.
    let vms = vms_of(&c, vr);
    w.call("one.vrouter.delete", vec![int(vr)]).unwrap();
    for vm in vms {
        zone.wait_until(DEADLINE, "the router VM is done", || state(&c, vm).0 == "6");
    }
    zone.wait_until(DEADLINE, "every lease is free", || leases(&c, vn) == 0);
    assert_eq!(
        one_error(c.call_xml("one.vrouter.info", vec![int(vr)])),
        (
            NO_EXISTS,
            format!("[one.vrouter.info] Error getting virtual router [{vr}].")
        )
    );
}

#[test]
fn routers_need_create_manage_and_the_owners_network_quota() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    let alice = ok(
        &admin,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s(""), Value::Array(vec![])],
    );
    let a = server.client_as("alice", "pw-alice");
    let vn = ok(
        &admin,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 4 ]",
        )],
    );
    admin
        .call(
            "one.vn.chmod",
            vec![
                int(vn),
                int(-1),
                int(-1),
                int(-1),
                int(-1),
                int(-1),
                int(-1),
                int(1),
                int(-1),
                int(-1),
            ],
        )
        .unwrap();
    let nic = format!("NAME = r\nNIC = [ NETWORK_ID = {vn}, FLOATING_IP = YES ]");
    // Users may not create routers by OpenNebula's default rules.
    let (code, message) = one_error(a.call("one.vrouter.allocate", vec![s(&nic)]));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(
        message.ends_with("Not authorized to perform CREATE VROUTER."),
        "{message}"
    );
    admin
        .call(
            "one.acl.addrule",
            vec![
                s(&format!("{:x}", INDIVIDUAL_ID | alice as u64)),
                s(&format!("{:x}", VROUTER | ALL_ID)),
                s(&format!("{CREATE:x}")),
            ],
        )
        .unwrap();
    admin
        .call(
            "one.user.quota",
            vec![
                int(alice),
                s(&format!("NETWORK = [ ID = {vn}, LEASES = 1 ]")),
            ],
        )
        .unwrap();
    let mine = ok(&a, "one.vrouter.allocate", vec![s(&nic)]);
    let (code, message) = one_error(a.call("one.vrouter.allocate", vec![s(&nic)]));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(
        message.contains(&format!(
            "limit of 1 reached for LEASES quota in NETWORK with ID: {vn}"
        )),
        "{message}"
    );
    // A router without floating addresses takes no lease.
    let quiet = ok(
        &a,
        "one.vrouter.allocate",
        vec![s(&format!("NAME = q\nNIC = [ NETWORK_ID = {vn} ]"))],
    );
    assert_eq!(leases(&admin, vn), 1);
    // A user without MANAGE on the network sees in its list only the routers it may use.
    let hidden = ok(
        &admin,
        "one.vrouter.allocate",
        vec![s(&format!("NAME = h\nNIC = [ NETWORK_ID = {vn} ]"))],
    );
    assert_eq!(
        routers_listed(&admin, vn),
        format!("<ID>{mine}</ID><ID>{quiet}</ID><ID>{hidden}</ID>")
    );
    assert_eq!(
        routers_listed(&a, vn),
        format!("<ID>{mine}</ID><ID>{quiet}</ID>")
    );
    admin.call("one.vrouter.delete", vec![int(hidden)]).unwrap();
    let (code, _) = one_error(a.call(
        "one.vrouter.attachnic",
        vec![
            int(quiet),
            s(&format!("NIC = [ NETWORK_ID = {vn}, FLOATING_IP = YES ]")),
        ],
    ));
    assert_eq!(code, AUTHORIZATION);
    let body = info(&admin, "one.user.info", alice);
    assert!(
        body.contains("<LEASES_USED><![CDATA[1]]></LEASES_USED>"),
        "the router's floating address counts: {body}"
    );

    // MANAGE on the router: alice may not touch oneadmin's.
    let theirs = ok(&admin, "one.vrouter.allocate", vec![s("NAME = theirs")]);
    for (method, params) in [
        ("one.vrouter.delete", vec![int(theirs)]),
        ("one.vrouter.detachnic", vec![int(theirs), int(0)]),
        (
            "one.vrouter.attachnic",
            vec![int(theirs), s("NIC = [ NETWORK_ID = 0 ]")],
        ),
        ("one.vrouter.update", vec![int(theirs), s("A = 1"), int(1)]),
    ] {
        let (code, message) = one_error(a.call(method, params));
        assert_eq!(code, AUTHORIZATION, "{method}: {message}");
        assert!(
            message.ends_with(&format!(
                "Not authorized to perform MANAGE VROUTER [{theirs}]."
            )),
            "{method}: {message}"
        );
    }
    // A user's extra template may not set a restricted attribute; that comes before the right
    // to use the template.
    let vrt = ok(
        &admin,
        "one.template.allocate",
        vec![s("NAME = vrt\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES")],
    );
    let instantiate = |extra: &str| {
        one_error(a.call(
            "one.vrouter.instantiate",
            vec![
                int(mine),
                int(1),
                int(vrt),
                s(""),
                Value::Bool(true),
                s(extra),
            ],
        ))
    };
    assert_eq!(
        instantiate("CPU_COST = 1"),
        (
            AUTHORIZATION,
            format!(
                "[one.vrouter.instantiate] User [{alice}] : User Template includes a restricted attribute CPU_COST."
            )
        )
    );
    let (code, message) = instantiate("LABEL = x");
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(
        message.ends_with(&format!("Not authorized to perform USE TEMPLATE [{vrt}].")),
        "{message}"
    );

    // The router's NIC steps on its VMs run as the caller, who must manage each VM: oneadmin's
    // VM of alice's router refuses alice, and the router keeps the NIC (OpenNebula does no
    // rollback).
    admin
        .call(
            "one.vrouter.instantiate",
            vec![int(mine), int(1), int(vrt), s(""), Value::Bool(true), s("")],
        )
        .unwrap();
    let vm = vms_of(&admin, mine)[0];
    assert_eq!(
        one_error(a.call(
            "one.vrouter.attachnic",
            vec![int(mine), s(&format!("NIC = [ NETWORK_ID = {vn} ]"))],
        )),
        (
            ACTION_CODE,
            format!("[one.vrouter.attachnic] Not authorized to perform MANAGE VM [{vm}].")
        )
    );
    assert_eq!(nic_attrs(&info(&admin, "one.vrouter.info", mine)).len(), 2);
    assert_eq!(
        one_error(a.call("one.vrouter.detachnic", vec![int(mine), int(1)])),
        (
            ACTION_CODE,
            format!("[one.vrouter.detachnic] Not authorized to perform MANAGE VM [{vm}].")
        )
    );
    admin
        .call("one.vm.action", vec![s("terminate-hard"), int(vm)])
        .unwrap();

    // A locked router refuses its owner's changes.
    a.call("one.vrouter.lock", vec![int(mine), int(4)]).unwrap();
    let (code, _) = one_error(a.call("one.vrouter.delete", vec![int(mine)]));
    assert_eq!(code, AUTHORIZATION);
    a.call("one.vrouter.unlock", vec![int(mine)]).unwrap();
    a.call("one.vrouter.delete", vec![int(mine)]).unwrap();
    assert_eq!(leases(&admin, vn), 0);
    assert_eq!(
        one_error(admin.call("one.vrouter.allocate", vec![s("DESCRIPTION = x")])),
        (
            INTERNAL,
            "[one.vrouter.allocate] Invalid NAME, it cannot be empty".into()
        )
    );
}

/// A template file in `dir`.
fn file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn onevrouter_creates_instantiates_and_edits_routers_as_opennebula() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| server.cli(Kind::Vrouter, args).ok();
    let refused = |args: &[&str], want: &str| {
        let (code, out, err) = server.cli(Kind::Vrouter, args).parts();
        assert_eq!((code, out.as_str()), (255, ""), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    let c = server.client();
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.1.0.1, SIZE = 8 ]",
        )],
    );
    ok(
        &c,
        "one.template.allocate",
        vec![s("NAME = vrt\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES")],
    );
    let path = file(
        dir.path(),
        "gw.tpl",
        "NAME = gw\nDESCRIPTION = edge\nNIC = [ NETWORK = lan, FLOATING_IP = YES ]",
    );
    assert_eq!(cli(&["create", &path]), "ID: 0\n");
    let list = cli(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("  ID USER") && lines[0].ends_with("NAME"),
        "{list}"
    );
    assert!(lines[1].ends_with(" gw"), "{list}");

    cli(&[
        "instantiate",
        "gw",
        "vrt",
        "--name",
        "edge-%i",
        "-m",
        "2",
        "--hold",
    ]);
    let show = cli(&["show", "gw"]);
    assert!(
        show.starts_with("VIRTUAL ROUTER 0 INFORMATION\nID             : 0\nNAME           : gw\n"),
        "{show}"
    );
    assert!(
        show.contains("\nVIRTUAL ROUTER NICS\n ID NETWORK              MANAGEMENT IP\n  0 lan                  NO         -\n"),
        "{show}"
    );
    assert!(show.contains("DESCRIPTION=\"edge\""), "{show}");
    assert!(!show.contains("NIC=["), "NICs only with --all: {show}");
    assert!(show.ends_with("\nVIRTUAL MACHINES\n0\n1\n"), "{show}");
    assert!(cli(&["show", "gw", "--all"]).contains("NIC=["));
    assert_eq!(
        first(&info(&c, "one.vm.info", 1), "NAME"),
        "edge-1",
        "named from the pattern"
    );

    // The router takes the NIC; its VMs on hold cannot, as in OpenNebula.
    refused(
        &["nic-attach", "gw", "--network", "lan", "--float"],
        "[one.vrouter.attachnic] Could not add a new NIC to VM 0, wrong state HOLD.",
    );
    refused(
        &["nic-attach", "gw"],
        "Provide a template or a network:\n\t--file    <file>\n\t--network <network>",
    );
    let show = cli(&["show", "gw", "-x"]);
    assert!(show.contains("<NIC_ID><![CDATA[1]]></NIC_ID>"), "{show}");
    // The router's two floating addresses and one of each VM's NIC.
    assert_eq!(leases(&c, vn), 4);
    // The router lets the NIC go; its VMs on hold, which never had it, refuse.
    refused(&["nic-detach", "gw", "1"], "[one.vrouter.detachnic] ");
    assert!(!cli(&["show", "gw", "-x"]).contains("<NIC_ID><![CDATA[1]]></NIC_ID>"));
    assert_eq!(leases(&c, vn), 3);
    refused(
        &["nic-detach", "gw", "9"],
        "[one.vrouter.detachnic] NIC with NIC_ID 9 does not exist.",
    );

    cli(&["rename", "gw", "core"]);
    cli(&["chmod", "core", "640"]);
    cli(&["lock", "core", "--admin"]);
    let show = cli(&["show", "core", "-x"]);
    assert!(show.contains("<LOCK><LOCKED>3</LOCKED>"), "{show}");
    assert!(show.contains("<GROUP_U>1</GROUP_U>"), "{show}");
    cli(&["unlock", "core"]);
    let desc = file(dir.path(), "desc.tpl", "LABEL = \"blue\"");
    cli(&["update", "core", &desc, "--append"]);
    assert!(cli(&["show", "core"]).contains("LABEL=\"blue\""));
    cli(&["chown", "core", "oneadmin", "users"]);
    cli(&["chgrp", "core", "oneadmin"]);
    cli(&["delete", "core"]);
    refused(&["show", "core"], "VROUTER named core not found.");
    for vm in [0, 1] {
        zone.wait_until(DEADLINE, "the router VM is done", || state(&c, vm).0 == "6");
    }
    assert_eq!(leases(&c, vn), 0);
    let bad = file(dir.path(), "bad.tpl", "DESCRIPTION = x");
    refused(
        &["create", &bad],
        "[one.vrouter.allocate] Invalid NAME, it cannot be empty",
    );
}

/// The NICs of a body, each as its (element, text) pairs in order.
fn nic_attrs(body: &str) -> Vec<Vec<(String, String)>> {
    body.split("<NIC>")
        .skip(1)
        .map(|rest| {
            let mut r = rest.split("</NIC>").next().unwrap_or("");
            let mut out = Vec::new();
            while let Some(open) = r.find('<') {
                let after = &r[open + 1..];
                let Some(end) = after.find('>') else { break };
                let tag = &after[..end];
                let close = format!("</{tag}>");
                let inner = &after[end + 1..];
                let Some(stop) = inner.find(&close) else {
                    break;
                };
                let text = inner[..stop]
                    .trim_start_matches("<![CDATA[")
                    .trim_end_matches("]]>");
                out.push((tag.to_string(), text.to_string()));
                r = &inner[stop + close.len()..];
            }
            out
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn routers_listed(c: &cli::Client, vn: i32) -> String {
    first(&info(c, "one.vn.info", vn), "VROUTERS")
}

#[test]
fn router_nics_are_opennebulas_and_networks_list_every_router_in_them() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    ok(
        &w,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), int(-1)],
    );
    let vn = ok(
        &w,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nGATEWAY = 10.0.0.254\n\
             AR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 16, VN_MAD = dummy, BRIDGE = br7 ]",
        )],
    );
    let vn2 = ok(
        &w,
        "one.vn.allocate",
        vec![s(
            "NAME = dmz\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.9.0.1, SIZE = 4 ]",
        )],
    );
    // Through a follower: the floating NIC keeps what OpenNebula's router NIC keeps, its
    // address as VROUTER_*, without the restricted attributes; the plain one keeps them all.
    let vr = ok(
        &w,
        "one.vrouter.allocate",
        vec![s(&format!(
            "NAME = gw\n\
             NIC = [ NETWORK_ID = {vn}, FLOATING_IP = YES, MODEL = virtio, FILTER = clean, \
             INBOUND_AVG_BW = 10 ]\n\
             NIC = [ NETWORK = lan, INBOUND_AVG_BW = 10 ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the leader has the router", || {
        c.call_xml("one.vrouter.info", vec![int(vr)]).is_ok()
    });
    let body = info(&c, "one.vrouter.info", vr);
    let vn_s = vn.to_string();
    assert_eq!(
        nic_attrs(&body),
        vec![
            pairs(&[
                ("AR_ID", "0"),
                ("FLOATING_IP", "YES"),
                ("MODEL", "virtio"),
                ("NETWORK", "lan"),
                ("NETWORK_ID", &vn_s),
                ("NIC_ID", "0"),
                ("VN_MAD", "dummy"),
                ("VROUTER_IP", "10.0.0.1"),
                ("VROUTER_MAC", "02:00:0a:00:00:01"),
            ]),
            pairs(&[
                ("INBOUND_AVG_BW", "10"),
                ("NETWORK", "lan"),
                ("NETWORK_ID", &vn_s),
                ("NIC_ID", "1"),
            ]),
        ],
        "{body}"
    );

    // A router whose only NIC is not floating is in its network's list too.
    let quiet = ok(
        &w,
        "one.vrouter.allocate",
        vec![s(&format!("NAME = q\nNIC = [ NETWORK_ID = {vn} ]"))],
    );
    zone.wait_until(DEADLINE, "the network lists both routers", || {
        routers_listed(&c, vn) == format!("<ID>{vr}</ID><ID>{quiet}</ID>")
    });
    assert_eq!(routers_listed(&c, vn2), "");
    // A NIC attached in another network puts the router in that one's list, its detach
    // takes it out, and the router's delete takes it out of every list.
    w.call(
        "one.vrouter.attachnic",
        vec![int(quiet), s(&format!("NIC = [ NETWORK_ID = {vn2} ]"))],
    )
    .unwrap();
    assert_eq!(routers_listed(&c, vn2), format!("<ID>{quiet}</ID>"));
    w.call("one.vrouter.detachnic", vec![int(quiet), int(1)])
        .unwrap();
    assert_eq!(routers_listed(&c, vn2), "");
    w.call("one.vrouter.delete", vec![int(quiet)]).unwrap();
    assert_eq!(routers_listed(&c, vn), format!("<ID>{vr}</ID>"));
    // Detaching one of two NICs in the same network leaves the router listed.
    w.call("one.vrouter.detachnic", vec![int(vr), int(1)])
        .unwrap();
    assert_eq!(routers_listed(&c, vn), format!("<ID>{vr}</ID>"));
    w.call(
        "one.vrouter.attachnic",
        vec![int(vr), s("NIC = [ NETWORK = lan, INBOUND_AVG_BW = 10 ]")],
    )
    .unwrap();

    // Each VM takes the router's NICs (the template's own are replaced), its own address,
    // and the router's as VROUTER_*.
    let vrt = ok(
        &w,
        "one.template.allocate",
        vec![s(&format!(
            "NAME = vrt\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES\nNIC = [ NETWORK_ID = {vn2} ]"
        ))],
    );
    w.call(
        "one.vrouter.instantiate",
        vec![int(vr), int(1), int(vrt), s(""), Value::Bool(true), s("")],
    )
    .unwrap();
    let vm = vms_of(&c, vr)[0];
    let body = info(&c, "one.vm.info", vm);
    let nics = nic_attrs(&body);
    assert_eq!(nics.len(), 2, "{body}");
    let names = |n: &[(String, String)]| n.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&nics[0]),
        [
            "AR_ID",
            "BRIDGE",
            "BRIDGE_TYPE",
            "CLUSTER_ID",
            "FLOATING_IP",
            // INHERIT_VNET_ATTR: the network's GATEWAY.
            "GATEWAY",
            "IP",
            "MAC",
            "MODEL",
            "NAME",
            "NETWORK",
            "NETWORK_ID",
            // `nic_attribute` names the network's owner nowhere (NETWORK_UNAME only if given).
            "NIC_ID",
            "SECURITY_GROUPS",
            "TARGET",
            "VN_MAD",
            "VROUTER_IP",
            "VROUTER_MAC",
        ],
        "{body}"
    );
    let get = |n: &[(String, String)], k: &str| {
        n.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get(&nics[0], "VROUTER_IP"), "10.0.0.1");
    assert_eq!(get(&nics[0], "VROUTER_MAC"), "02:00:0a:00:00:01");
    assert_eq!(get(&nics[0], "IP"), "10.0.0.2", "the VM's own address");
    assert_eq!(get(&nics[0], "BRIDGE"), "br7", "the range's bridge");
    assert!(!names(&nics[1]).contains(&"VROUTER_IP".to_string()));
    assert_eq!(get(&nics[1], "INBOUND_AVG_BW"), "10");
    assert_eq!(get(&nics[1], "NETWORK_ID"), vn_s);
    assert!(
        !body.contains(&format!("<NETWORK_ID><![CDATA[{vn2}]]></NETWORK_ID>")),
        "the template's NIC is replaced: {body}"
    );
    assert!(
        first(&body, "TEMPLATE").contains(&format!("<VROUTER_ID><![CDATA[{vr}]]></VROUTER_ID>")),
        "{body}"
    );

    // Disks of a router's VM change through nothing: held (no host yet), then deployed.
    let attach = |c: &cli::Client| {
        one_error(c.call("one.vm.attach", vec![int(vm), s("DISK = [ IMAGE_ID = 0 ]")]))
    };
    assert_eq!(
        attach(&w),
        (
            ACTION_CODE,
            "[one.vm.attach] VM is not running in any host".into()
        )
    );
    c.call("one.vm.action", vec![s("release"), int(vm)])
        .unwrap();
    zone.wait_until(DEADLINE, "the router VM runs", || {
        state(&c, vm) == ("3".into(), "3".into())
    });
    assert_eq!(
        attach(&w),
        (
            ACTION_CODE,
            "[one.vm.attach] Action is not supported for virtual router VMs".into()
        )
    );
    assert_eq!(
        one_error(w.call("one.vm.detach", vec![int(vm), int(0)])),
        (
            ACTION_CODE,
            "[one.vm.detach] Action is not supported for virtual router VMs".into()
        )
    );
    assert_eq!(
        one_error(w.call(
            "one.vm.attach",
            vec![int(999), s("DISK = [ IMAGE_ID = 0 ]")]
        )),
        (
            NO_EXISTS,
            "[one.vm.attach] Error getting virtual machine [999].".into()
        )
    );
    w.call("one.vrouter.delete", vec![int(vr)]).unwrap();
    assert_eq!(routers_listed(&c, vn), "");
}

#[test]
fn router_instantiate_undoes_its_vms_when_one_fails_and_caps_a_call() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    // Two addresses: the third VM finds none.
    let vn = ok(
        &w,
        "one.vn.allocate",
        vec![s(
            "NAME = small\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.3.0.1, SIZE = 2 ]",
        )],
    );
    let vr = ok(
        &w,
        "one.vrouter.allocate",
        vec![s(&format!("NAME = gw\nNIC = [ NETWORK_ID = {vn} ]"))],
    );
    let vrt = ok(
        &w,
        "one.template.allocate",
        vec![s("NAME = vrt\nCPU = 0.1\nMEMORY = 32\nVROUTER = YES")],
    );
    let instantiate = |c: &cli::Client, n: i32| {
        c.call(
            "one.vrouter.instantiate",
            vec![int(vr), int(n), int(vrt), s(""), Value::Bool(false), s("")],
        )
    };
    // As OpenNebula: the failing VM's error, the VMs made before it deleted, the router
    // without them and without a default template.
    assert_eq!(
        one_error(instantiate(&w, 3)),
        (
            ALLOCATE,
            format!(
                "[one.vrouter.instantiate] Error allocating a new virtual router. Cannot get IP/MAC lease from virtual network {vn}."
            )
        )
    );
    for vm in [0, 1] {
        zone.wait_until(DEADLINE, "the VM made before is done", || {
            state(&c, vm).0 == "6"
        });
    }
    zone.wait_until(DEADLINE, "their addresses are free", || leases(&c, vn) == 0);
    assert!(vms_of(&c, vr).is_empty());
    assert!(!info(&c, "one.vrouter.info", vr).contains("TEMPLATE_ID"));
    let pool = || {
        c.call_xml("one.vmpool.info", vec![int(-2), int(-1), int(-1), int(-1)])
            .unwrap()
            .matches("<VM>")
            .count()
    };
    assert_eq!(pool(), 0, "no VM is left but DONE ones");

    // Over the cap: refused before any VM is made.
    assert_eq!(
        one_error(instantiate(&w, 257)),
        (
            ACTION_CODE,
            "[one.vrouter.instantiate] Cannot create more than 256 VMs in one call".into()
        )
    );
    assert_eq!(pool(), 0);
    assert!(!info(&c, "one.vrouter.info", vr).contains("TEMPLATE_ID"));
    // Within it, the VMs are the router's.
    instantiate(&w, 2).unwrap();
    assert_eq!(vms_of(&c, vr).len(), 2);
    assert_eq!(leases(&c, vn), 2);
}

#[test]
fn a_router_with_several_floating_nics_on_one_network_leases_one_address_each() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![s(
            "NAME = \"many\"\nVN_MAD = \"bridge\"\nAR = [ TYPE = \"IP4\", IP = \"10.8.0.1\", SIZE = \"64\" ]",
        )],
    );
    zone.wait_until(DEADLINE, "the network to be READY", || {
        first(&info(&c, "one.vn.info", vn), "STATE") == "1"
    });
    let nics: String = (0..10)
        .map(|_| format!("NIC = [ NETWORK_ID = \"{vn}\", FLOATING_IP = \"YES\" ]\n"))
        .collect();
    let vr = ok(
        &c,
        "one.vrouter.allocate",
        vec![s(&format!("NAME = \"multi\"\n{nics}"))],
    );
    assert_eq!(leases(&c, vn), 10);
    let body = info(&c, "one.vrouter.info", vr);
    let mut ips: Vec<String> = body
        .split("<VROUTER_IP>")
        .skip(1)
        .filter_map(|p| p.split("</VROUTER_IP>").next())
        .map(|ip| {
            ip.trim_start_matches("<![CDATA[")
                .trim_end_matches("]]>")
                .to_string()
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "{body}");
    // A router past the NIC limit is refused, and leases nothing.
    let many: String = (0..1025)
        .map(|_| format!("NIC = [ NETWORK_ID = \"{vn}\" ]\n"))
        .collect();
    let (code, message) = one_error(c.call(
        "one.vrouter.allocate",
        vec![s(&format!("NAME = \"too-many\"\n{many}"))],
    ));
    assert_eq!(code, INTERNAL, "{message}");
    assert_eq!(leases(&c, vn), 10);
}

#[test]
fn router_nic_and_update_refusals_keep_opennebulas_codes() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![
            s("NAME = private\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 2 ]"),
            int(-1),
        ],
    );
    // A group out of the default VDC: its users get no USE on the network.
    let g = ok(&c, "one.group.allocate", vec![s("apart")]);
    ok(&c, "one.vdc.delgroup", vec![int(0), int(g)]);
    let bob = ok(
        &c,
        "one.user.allocate",
        vec![s("bob"), s("pw"), s(""), Value::Array(vec![int(g)])],
    );
    let b = zone.servers[0].client_as("bob", "pw");
    let vr = ok(&c, "one.vrouter.allocate", vec![s("NAME = r")]);
    ok(&c, "one.vrouter.chown", vec![int(vr), int(bob), int(-1)]);
    // USE on the network is asked with MANAGE on the router: AUTHORIZATION.
    assert_eq!(
        one_error(b.call(
            "one.vrouter.attachnic",
            vec![int(vr), s(&format!("NIC = [ NETWORK_ID = {vn} ]"))]
        )),
        (
            crate::zone::AUTHORIZATION,
            format!(
                "[one.vrouter.attachnic] User [{bob}] : Not authorized to perform USE NET [{vn}]."
            )
        )
    );
    let (code, msg) =
        one_error(b.call("one.vrouter.update", vec![int(vr), s("A = [ B = "), int(0)]));
    assert_eq!(code, crate::zone::INTERNAL);
    assert!(
        msg.starts_with("[one.vrouter.update] Cannot update template. "),
        "{msg}"
    );
}
