//! VM bodies as OpenNebula 7.0.2 writes them: a new VM's template split into TEMPLATE (what
//! oned reads) and USER_TEMPLATE (the rest, what `one.vm.update` edits); `one.vmpool.info`'s
//! short bodies against `one.vmpool.infoextended`'s and `one.vm.info`'s full ones; the pool
//! calls' state check and `KEY=VALUE` query; `one.vmpool.infoset` short and extended.

use cli::client::Client;
use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS};

const XML_RPC_API: i32 = 0x1000;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn parse(xml: &str) -> Element {
    Element::parse(xml).unwrap()
}

fn names(e: &Element) -> Vec<&str> {
    e.children.iter().map(|c| c.name.as_str()).collect()
}

fn pool(c: &Client, method: &str, state: i64, query: &str) -> Element {
    parse(
        &c.call_xml(
            method,
            vec![int(-2), int(-1), int(-1), int(state), s(query)],
        )
        .unwrap(),
    )
}

/// The ids of the VMs a query matches, ascending (pools list newest first; `list_order`'s
/// test checks that order).
fn pool_ids(c: &Client, method: &str, query: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = pool(c, method, -1, query)
        .children_named("VM")
        .map(|v| v.int_of("ID").unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

const WEB: &str = "NAME = web-1\nCPU = 0.50\nMEMORY = 064\nVCPU = 02\nLABELS = \"prod,eu\"\n\
    DESCRIPTION = shop\nREQUIREMENTS = \"ID = 0\"\nSCHED_RANK = FREE_CPU\n\
    GRAPHICS = [ TYPE = VNC, LISTEN = \"0.0.0.0\" ]\nCONTEXT = [ NETWORK = YES ]\n\
    FEATURES = [ ACPI = YES ]\nVMID = 77";

#[test]
fn a_new_vms_template_is_split_and_printed_as_opennebula() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let l = zone.servers[leader].client();
    // Written through a follower, forwarded to the leader.
    let f = zone.servers[follower].client();
    let vm = f
        .call("one.vm.allocate", vec![s(WEB)])
        .unwrap()
        .as_i64()
        .unwrap();

    tracing::info!("--- vm.info: what oned reads in TEMPLATE, the rest in USER_TEMPLATE");
    let body = parse(&l.call_xml("one.vm.info", vec![int(vm)]).unwrap());
    assert_eq!(body.text_of("NAME").unwrap(), "web-1");
    let t = body.child("TEMPLATE").unwrap();
    assert_eq!(
        names(t),
        [
            "AUTOMATIC_REQUIREMENTS",
            "CONTEXT",
            "CPU",
            "FEATURES",
            "GRAPHICS",
            "MEMORY",
            "OS",
            "VCPU",
            "VMID"
        ]
    );
    assert_eq!(t.text_of("VMID").unwrap(), vm.to_string());
    // The numbers as `insert` read them (CPU = 0.50, MEMORY = 064, VCPU = 02).
    assert_eq!(
        ["CPU", "MEMORY", "VCPU"].map(|n| t.text_of(n).unwrap()),
        ["0.5", "64", "2"]
    );
    let uuid = t.child("OS").unwrap().text_of("UUID").unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");
    let u = body.child("USER_TEMPLATE").unwrap();
    assert_eq!(
        names(u),
        ["DESCRIPTION", "LABELS", "SCHED_RANK", "SCHED_REQUIREMENTS"]
    );
    assert_eq!(u.text_of("SCHED_REQUIREMENTS").unwrap(), "ID = 0");

    tracing::info!("--- the follower shows the same split");
    let fbody = zone.wait_for(DEADLINE, "the follower has the VM", || {
        f.call_xml("one.vm.info", vec![int(vm)]).ok()
    });
    assert!(
        fbody.contains(&format!("<UUID><![CDATA[{uuid}]]></UUID>")),
        "{fbody}"
    );

    tracing::info!("--- update replaces and merges USER_TEMPLATE only");
    f.call("one.vm.update", vec![int(vm), s("LABELS = dev"), int(0)])
        .unwrap();
    f.call("one.vm.update", vec![int(vm), s("OWNER = ops"), int(1)])
        .unwrap();
    let body = parse(&l.call_xml("one.vm.info", vec![int(vm)]).unwrap());
    assert_eq!(
        names(body.child("USER_TEMPLATE").unwrap()),
        ["LABELS", "OWNER"]
    );
    assert_eq!(names(body.child("TEMPLATE").unwrap()).len(), 9);

    tracing::info!("--- vmpool.info prints to_xml_short, infoextended the stored body");
    let short = pool(&l, "one.vmpool.info", -1, "");
    let v = short.child("VM").unwrap();
    assert_eq!(
        names(v),
        [
            "ID",
            "UID",
            "GID",
            "UNAME",
            "GNAME",
            "NAME",
            "LAST_POLL",
            "STATE",
            "LCM_STATE",
            "RESCHED",
            "STIME",
            "ETIME",
            "DEPLOY_ID",
            "TEMPLATE",
            "MONITORING",
            "USER_TEMPLATE",
            "HISTORY_RECORDS"
        ]
    );
    let st = v.child("TEMPLATE").unwrap();
    assert_eq!(names(st), ["CPU", "MEMORY", "VCPU", "GRAPHICS"]);
    assert_eq!(st.text_of("CPU").unwrap(), "0.5");
    assert_eq!(st.text_of("VCPU").unwrap(), "2");
    assert_eq!(
        st.child("GRAPHICS").unwrap().text_of("TYPE").unwrap(),
        "VNC"
    );
    // Only what Sunstone and the scheduler read of USER_TEMPLATE.
    assert_eq!(names(v.child("USER_TEMPLATE").unwrap()), ["LABELS"]);
    let ext = pool(&l, "one.vmpool.infoextended", -1, "");
    let v = ext.child("VM").unwrap();
    assert_eq!(v.child("PERMISSIONS").map(|p| p.children.len()), Some(9));
    assert_eq!(
        names(v.child("USER_TEMPLATE").unwrap()),
        ["LABELS", "OWNER"]
    );
    assert_eq!(names(v.child("TEMPLATE").unwrap()).len(), 9);

    tracing::info!("--- a follower answers the short pool too");
    zone.wait_until(DEADLINE, "the follower has the update", || {
        pool(&f, "one.vmpool.info", -1, "")
            .child("VM")
            .and_then(|v| v.child("USER_TEMPLATE"))
            .and_then(|u| u.text_of("LABELS").ok().map(str::to_string))
            .is_some_and(|l| l == "dev")
    });

    tracing::info!("--- infoset: short unless extended");
    let set = |ext: bool| {
        parse(
            &f.call_xml(
                "one.vmpool.infoset",
                vec![s(&vm.to_string()), Value::Bool(ext)],
            )
            .unwrap(),
        )
    };
    assert!(set(false)
        .child("VM")
        .unwrap()
        .child("PERMISSIONS")
        .is_none());
    assert!(set(true)
        .child("VM")
        .unwrap()
        .child("PERMISSIONS")
        .is_some());

    tracing::info!("--- instantiate splits the same way");
    let tid = l
        .call(
            "one.template.allocate",
            vec![s("NAME = tpl\nCPU = 1\nMEMORY = 32\nLABELS = from-tpl")],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let vm2 = f
        .call(
            "one.template.instantiate",
            vec![
                int(tid),
                s("inst"),
                Value::Bool(false),
                s(""),
                Value::Bool(false),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let body = parse(&l.call_xml("one.vm.info", vec![int(vm2)]).unwrap());
    let t = body.child("TEMPLATE").unwrap();
    assert_eq!(t.text_of("TEMPLATE_ID").unwrap(), tid.to_string());
    assert!(t.child("LABELS").is_none());
    assert_eq!(
        body.child("USER_TEMPLATE")
            .unwrap()
            .text_of("LABELS")
            .unwrap(),
        "from-tpl"
    );

    tracing::info!("--- refusals");
    let m = "[one.vm.allocate]";
    assert_eq!(
        one_error(l.call("one.vm.allocate", vec![s("CPU = 1\nMEMORY = 1\nVCPU = 0")])),
        (
            INTERNAL,
            format!("{m} VCPU attribute must be a positive integer value.")
        )
    );
    assert_eq!(
        one_error(f.call("one.vm.update", vec![int(999), s("A = b"), int(0)])).0,
        NO_EXISTS
    );
    l.call(
        "one.user.allocate",
        vec![s("bob"), s("pw-bob"), s(""), Value::Array(vec![])],
    )
    .unwrap();
    let bob = zone.servers[leader].client_as("bob", "pw-bob");
    assert_eq!(
        one_error(bob.call("one.vm.update", vec![int(vm), s("A = b"), int(0)])).0,
        AUTHORIZATION
    );
    assert!(pool(&bob, "one.vmpool.info", -1, "").child("VM").is_none());
}

#[test]
fn pool_calls_check_the_state_and_search_with_the_query() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let l = zone.servers[leader].client();
    let f = zone.servers[(leader + 1) % 3].client();
    let mut ids = Vec::new();
    for (name, label) in [("q-0", "a"), ("q-1", "b"), ("q-2", "a"), ("other", "a")] {
        let t = format!("NAME = {name}\nCPU = 1\nMEMORY = 8\nLABELS = {label}");
        ids.push(
            l.call("one.vm.allocate", vec![s(&t)])
                .unwrap()
                .as_i64()
                .unwrap(),
        );
    }
    l.call("one.vm.action", vec![s("hold"), int(ids[1])])
        .unwrap();

    tracing::info!("--- the state is checked as VirtualMachinePoolInfo checks it");
    for (method, bad) in [("one.vmpool.info", -3), ("one.vmpool.infoextended", 12)] {
        assert_eq!(
            one_error(f.call(method, vec![int(-2), int(-1), int(-1), int(bad)])),
            (
                XML_RPC_API,
                format!("[{method}] Incorrect filter_flag, state")
            )
        );
    }
    let held: Vec<i64> = pool(&l, "one.vmpool.info", 2, "")
        .children_named("VM")
        .map(|v| v.int_of("ID").unwrap())
        .collect();
    assert_eq!(held, [ids[1]]);

    tracing::info!("--- KEY=VALUE terms, all of them, LIKE '%VALUE%'");
    for method in ["one.vmpool.info", "one.vmpool.infoextended"] {
        assert_eq!(pool_ids(&l, method, "VM.NAME=q-"), ids[..3]);
        assert_eq!(
            pool_ids(&l, method, "VM.NAME=q-&VM.USER_TEMPLATE.LABELS=a"),
            [ids[0], ids[2]]
        );
        assert_eq!(pool_ids(&l, method, "VM.TEMPLATE.MEMORY=8").len(), 4);
        assert_eq!(pool_ids(&l, method, "VM.NAME=q_2"), [ids[2]]);
        assert_eq!(pool_ids(&l, method, "other"), [ids[3]]);
        assert!(pool_ids(&l, method, "VM.NAME=Q-").is_empty());
        assert!(pool_ids(&l, method, "VM.NOPE=q").is_empty());
    }

    tracing::info!("--- a page counts only the VMs that match, through a follower");
    zone.wait_until(DEADLINE, "the follower has every VM", || {
        pool_ids(&f, "one.vmpool.info", "VM.NAME=q-").len() == 3
    });
    let page = parse(
        &f.call_xml(
            "one.vmpool.info",
            vec![int(-2), int(1), int(-2), int(-1), s("VM.NAME=q-")],
        )
        .unwrap(),
    );
    let got: Vec<i64> = page
        .children_named("VM")
        .map(|v| v.int_of("ID").unwrap())
        .collect();
    // Newest first: the page skips q-2.
    assert_eq!(got, [ids[1], ids[0]]);

    let long = "x".repeat(2000);
    assert_eq!(
        one_error(l.call(
            "one.vmpool.info",
            vec![int(-2), int(-1), int(-1), int(-1), s(&long)]
        ))
        .0,
        XML_RPC_API
    );
}

/// `VMTemplate::insert` keeps a template's name out of its TEMPLATE; `VMTemplateInstantiate`
/// names an unnamed VM `<template>-<id>` (`VirtualMachine::insert`), a VM allocated without
/// a NAME is `one-<id>`, and TEMPLATE_NAME is the prefix of either.
#[test]
fn unnamed_vms_are_named_after_their_template_and_id() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let id = |v: Value| v.as_i64().unwrap();
    let tid = id(c
        .call(
            "one.template.allocate",
            vec![s("NAME = small\nCPU = 0.1\nMEMORY = 16")],
        )
        .unwrap());
    let t = parse(&c.call_xml("one.template.info", vec![int(tid)]).unwrap());
    assert_eq!(t.text_of("NAME").ok(), Some("small"));
    let body = t.child("TEMPLATE").unwrap();
    assert!(body.child("NAME").is_none(), "no NAME in TEMPLATE");
    let copy = id(c
        .call("one.template.clone", vec![int(tid), s("smaller")])
        .unwrap());
    let t = parse(&c.call_xml("one.template.info", vec![int(copy)]).unwrap());
    assert!(t.child("TEMPLATE").unwrap().child("NAME").is_none());

    let vm_name = |vid: i64| {
        let vm = parse(&c.call_xml("one.vm.info", vec![int(vid)]).unwrap());
        let tmpl = vm.child("TEMPLATE").unwrap();
        assert!(tmpl.child("TEMPLATE_NAME").is_none());
        vm.text_of("NAME").unwrap().to_string()
    };
    let unnamed = id(c
        .call(
            "one.template.instantiate",
            vec![int(tid), s(""), Value::Bool(true), s("")],
        )
        .unwrap());
    assert_eq!(vm_name(unnamed), format!("small-{unnamed}"));
    let named = id(c
        .call(
            "one.template.instantiate",
            vec![int(tid), s("db"), Value::Bool(true), s("")],
        )
        .unwrap());
    assert_eq!(vm_name(named), "db");
    let bare = id(c
        .call(
            "one.vm.allocate",
            vec![s("CPU = 0.1\nMEMORY = 16"), Value::Bool(true)],
        )
        .unwrap());
    assert_eq!(vm_name(bare), format!("one-{bare}"));
    let prefixed = id(c
        .call(
            "one.vm.allocate",
            vec![
                s("TEMPLATE_NAME = base\nCPU = 0.1\nMEMORY = 16"),
                Value::Bool(true),
            ],
        )
        .unwrap());
    assert_eq!(vm_name(prefixed), format!("base-{prefixed}"));
}
