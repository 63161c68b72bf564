//! Placement: VMs joining VM group roles at allocate (with OpenNebula's refusals), the
//! scheduler keeping the group's AFFINED / ANTI_AFFINED / HOST_AFFINED rules, a VM no host
//! can take left PENDING with OpenNebula's SCHED_MESSAGE, and VMs leaving their role at DONE;
//! written through a follower of a three-server zone.

use xmlrpc::Value;

use crate::zone::{
    one_error, Zone, ACTION_CODE as ACTION, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS,
};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn body(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![i(oid)]).unwrap_or_default()
}

/// Hosts `names` in the default cluster, allocated through `w`, once `c` sees them MONITORED.
fn monitored_hosts(zone: &Zone, w: &cli::Client, c: &cli::Client, names: &[&str]) -> Vec<i32> {
    let hosts: Vec<i32> = names
        .iter()
        .map(|n| {
            ok(
                w,
                "one.host.allocate",
                vec![s(n), s("dummy"), s("dummy"), i(-1)],
            )
        })
        .collect();
    for h in &hosts {
        zone.wait_until(DEADLINE, "the host is monitored", || {
            body(c, "one.host.info", *h).contains("<STATE>2</STATE>")
        });
    }
    hosts
}

/// The text of the first `<tag>` of `body`, CDATA or not.
fn elem(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    let v = &body[start..end];
    Some(
        v.strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(v)
            .to_string(),
    )
}

/// The host a RUNNING VM runs on.
fn running_on(c: &cli::Client, vm: i32) -> Option<i32> {
    let b = body(c, "one.vm.info", vm);
    if !b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>") {
        return None;
    }
    let last = b.rsplit("<HISTORY>").next()?;
    elem(last, "HID")?.parse().ok()
}

/// The VMS of role `role` in group `g`'s body.
fn role_vms(c: &cli::Client, g: i32, role: &str) -> String {
    let b = body(c, "one.vmgroup.info", g);
    b.split("<ROLE>")
        .find(|r| r.contains(&format!("<NAME><![CDATA[{role}]]></NAME>")))
        .and_then(|r| elem(r, "VMS"))
        .unwrap_or_default()
}

const GROUP: &str = "NAME = shop\n\
    ROLE = [ NAME = web, POLICY = AFFINED ]\n\
    ROLE = [ NAME = db, POLICY = ANTI_AFFINED ]\n\
    ROLE = [ NAME = pin, HOST_AFFINED = \"1\" ]";

fn vm_in(role: &str) -> Value {
    s(&format!(
        "CPU = 0.1\nMEMORY = 16\nVMGROUP = [ VMGROUP_NAME = shop, ROLE = {role} ]"
    ))
}

#[test]
fn the_scheduler_keeps_vm_group_rules_and_vms_leave_their_role_when_done() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    // Reads go to the leader, which has every write the follower forwarded.
    let c = zone.servers[leader].client();
    let g = ok(&w, "one.vmgroup.allocate", vec![s(GROUP)]);
    let hosts = monitored_hosts(&zone, &w, &c, &["node-a", "node-b"]);
    assert_eq!(hosts, [0, 1]);

    eprintln!("--- an AFFINED role keeps its VMs on one host");
    let web: Vec<i32> = (0..2)
        .map(|_| ok(&w, "one.vm.allocate", vec![vm_in("web")]))
        .collect();
    let vm = body(&c, "one.vm.info", web[0]);
    assert!(vm.contains(&format!("<VMGROUP><ROLE><![CDATA[web]]></ROLE><VMGROUP_ID><![CDATA[{g}]]></VMGROUP_ID><VMGROUP_NAME><![CDATA[shop]]></VMGROUP_NAME></VMGROUP>")), "{vm}");
    zone.wait_until(DEADLINE, "both web VMs run", || {
        web.iter().all(|v| running_on(&c, *v).is_some())
    });
    assert_eq!(running_on(&c, web[0]), running_on(&c, web[1]));
    assert_eq!(role_vms(&c, g, "web"), format!("{},{}", web[0], web[1]));

    eprintln!("--- an ANTI_AFFINED role spreads them; the third finds no host");
    let db: Vec<i32> = (0..3)
        .map(|_| ok(&w, "one.vm.allocate", vec![vm_in("db")]))
        .collect();
    zone.wait_until(DEADLINE, "two db VMs run", || {
        db[..2].iter().all(|v| running_on(&c, *v).is_some())
    });
    assert_ne!(running_on(&c, db[0]), running_on(&c, db[1]));
    let message = "Cannot allocate VM. Affinity constraints cannot be met in hosts 0,1";
    zone.wait_until(DEADLINE, "the third has the scheduler's message", || {
        elem(&body(&c, "one.vm.info", db[2]), "SCHED_MESSAGE").is_some_and(|m| m.ends_with(message))
    });
    let third = body(&c, "one.vm.info", db[2]);
    assert!(third.contains("<STATE>1</STATE>"), "still PENDING: {third}");
    let m = elem(&third, "SCHED_MESSAGE").unwrap();
    assert_eq!(
        m.len(),
        24 + 2 + message.len(),
        "ctime, then the message: {m}"
    );
    assert!(third.contains("<USER_TEMPLATE><SCHED_MESSAGE>"), "{third}");

    eprintln!("--- HOST_AFFINED names the only host");
    let pin = ok(&w, "one.vm.allocate", vec![vm_in("pin")]);
    zone.wait_until(DEADLINE, "the pinned VM runs", || {
        running_on(&c, pin).is_some()
    });
    assert_eq!(running_on(&c, pin), Some(1));

    eprintln!("--- a VM that is DONE leaves its role, and its host takes the pending one");
    ok(&w, "one.vm.action", vec![s("terminate-hard"), i(db[0])]);
    let rest = format!("{},{}", db[1], db[2]);
    zone.wait_until(DEADLINE, "db[0] left the role", || {
        role_vms(&c, g, "db") == rest
    });
    zone.wait_until(DEADLINE, "the third db VM runs", || {
        running_on(&c, db[2]).is_some()
    });
    let placed = body(&c, "one.vm.info", db[2]);
    assert!(
        !placed.contains("SCHED_MESSAGE"),
        "cleared on deploy: {placed}"
    );
    assert_ne!(running_on(&c, db[1]), running_on(&c, db[2]));
    ok(&w, "one.vm.action", vec![s("terminate-hard"), i(pin)]);
    zone.wait_until(DEADLINE, "the pinned VM left", || {
        role_vms(&c, g, "pin").is_empty()
    });
}

#[test]
fn a_vm_joins_only_a_role_that_exists_in_a_group_it_may_use() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    let g = ok(&w, "one.vmgroup.allocate", vec![s(GROUP)]);
    let refused = |template: &str| one_error(w.call("one.vm.allocate", vec![s(template)]));
    let base = "CPU = 1\nMEMORY = 8\n";
    for (vmgroup, why) in [
        (
            "VMGROUP_ID = 99, ROLE = web",
            "Cannot find VM Group to associate the VM",
        ),
        (
            "VMGROUP_NAME = nope, ROLE = web",
            "Cannot find VM Group to associate the VM",
        ),
        ("VMGROUP_ID = 0", "Missing role name in VM Group definition"),
        (
            "VMGROUP_ID = 0, ROLE = nope",
            "Role does not exist in VM Group",
        ),
    ] {
        let (code, msg) = refused(&format!("{base}VMGROUP = [ {vmgroup} ]"));
        assert_eq!(
            (code, msg.as_str()),
            (INTERNAL, format!("[one.vm.allocate] {why}").as_str())
        );
    }
    assert!(role_vms(&c, g, "web").is_empty());

    eprintln!("--- another user needs USE on the group");
    w.call(
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s(""), Value::Array(vec![])],
    )
    .unwrap();
    let alice = zone.servers[leader].client_as("alice", "pw-alice");
    let (code, msg) = one_error(alice.call(
        "one.vm.allocate",
        vec![s(
            "CPU = 1\nMEMORY = 8\nVMGROUP = [ VMGROUP_ID = 0, ROLE = web ]",
        )],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.ends_with(&format!("Not authorized to perform USE VMGROUP [{g}].")),
        "{msg}"
    );
    // By name, a group is looked for among the caller's own (VMGROUP_UID names another owner).
    let (_, msg) = one_error(alice.call("one.vm.allocate", vec![vm_in("web")]));
    assert!(
        msg.ends_with("Cannot find VM Group to associate the VM"),
        "{msg}"
    );
    ok(
        &w,
        "one.vmgroup.chmod",
        vec![
            i(g),
            i(-1),
            i(-1),
            i(-1),
            i(-1),
            i(-1),
            i(-1),
            i(1),
            i(-1),
            i(-1),
        ],
    );
    let vm = ok(
        &alice,
        "one.vm.allocate",
        vec![s(
            "CPU = 1\nMEMORY = 8\nVMGROUP = [ VMGROUP_NAME = shop, VMGROUP_UID = 0, ROLE = db ]",
        )],
    );
    assert_eq!(role_vms(&c, g, "db"), vm.to_string());
    // A group with VMs keeps its roles.
    let (_, msg) = one_error(w.call("one.vmgroup.roledelete", vec![i(g), i(1)]));
    assert!(
        msg.ends_with("Unable to delete role 1, the role has assigned VMs "),
        "{msg}"
    );
}

/// The `<PLAN>` of cluster `cid`'s body, if it has one.
fn plan(c: &cli::Client, cid: i32) -> Option<String> {
    let b = body(c, "one.cluster.info", cid);
    let start = b.find("<PLAN>")?;
    let end = b.find("</PLAN>")? + "</PLAN>".len();
    Some(b[start..end].to_string())
}

#[test]
fn a_cluster_plan_balances_its_hosts_and_is_applied_one_migration_at_a_time() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    let hosts = monitored_hosts(&zone, &w, &c, &["node-a", "node-b"]);
    eprintln!("--- four VMs deployed by hand on the first host");
    let vms: Vec<i32> = (0..4)
        .map(|_| {
            let vm = ok(
                &w,
                "one.vm.allocate",
                vec![s("CPU = 1\nMEMORY = 64"), Value::Bool(true)],
            );
            ok(&w, "one.vm.deploy", vec![i(vm), i(hosts[0])]);
            vm
        })
        .collect();
    zone.wait_until(DEADLINE, "the VMs run on node-a", || {
        vms.iter().all(|v| running_on(&c, *v) == Some(hosts[0]))
    });

    eprintln!("--- refusals before there is a plan");
    let (code, msg) = one_error(w.call("one.cluster.planexecute", vec![i(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.cluster.planexecute] Plan is not ready")
    );
    let (code, msg) = one_error(w.call("one.cluster.plandelete", vec![i(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.cluster.plandelete] Plan for cluster 0 does not exist"
        )
    );
    let (code, _) = one_error(w.call("one.cluster.optimize", vec![i(99)]));
    assert_eq!(code, NO_EXISTS);

    eprintln!("--- optimize: half of node-a's VMs go to node-b");
    assert_eq!(ok(&w, "one.cluster.optimize", vec![i(0)]), 0);
    let action = |id: i32, vm: i32, state: i32| {
        format!(
            "<ACTION><ID>{id}</ID><VM_ID>{vm}</VM_ID><STATE>{state}</STATE><OPERATION>migrate</OPERATION><HOST_ID>{}</HOST_ID><DS_ID>0</DS_ID>",
            hosts[1]
        )
    };
    let p = plan(&c, 0).unwrap();
    assert!(p.starts_with("<PLAN><ID>0</ID><STATE>0</STATE>"), "{p}");
    assert!(
        p.contains(&action(0, vms[0], 0)) && p.contains(&action(1, vms[1], 0)),
        "{p}"
    );
    assert_eq!(p.matches("<ACTION>").count(), 2, "{p}");
    assert!(
        body(&c, "one.clusterpool.info", -2)
            .find("<PLAN>")
            .is_none(),
        "only info loads the plan"
    );
    ok(&w, "one.cluster.plandelete", vec![i(0)]);
    assert_eq!(plan(&c, 0), None);

    eprintln!("--- planexecute: the actions run and the plan is DONE");
    ok(&w, "one.cluster.optimize", vec![i(0)]);
    ok(&w, "one.cluster.planexecute", vec![i(0)]);
    let (code, msg) = one_error(w.call("one.cluster.planexecute", vec![i(0)]));
    assert!(
        code == ACTION && msg.contains("Plan is already"),
        "applying or done: {msg}"
    );
    zone.wait_until(DEADLINE, "the plan is DONE", || {
        plan(&c, 0).is_some_and(|p| p.starts_with("<PLAN><ID>0</ID><STATE>2</STATE>"))
    });
    let p = plan(&c, 0).unwrap();
    assert!(
        p.contains(&action(0, vms[0], 2)) && p.contains(&action(1, vms[1], 2)),
        "{p}"
    );
    zone.wait_until(DEADLINE, "the VMs run balanced", || {
        running_on(&c, vms[0]) == Some(hosts[1])
            && running_on(&c, vms[1]) == Some(hosts[1])
            && running_on(&c, vms[2]) == Some(hosts[0])
    });
    let (code, msg) = one_error(w.call("one.cluster.planexecute", vec![i(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.cluster.planexecute] Plan is already done")
    );
    // Balanced: a plan without actions leaves the stored one.
    ok(&w, "one.cluster.optimize", vec![i(0)]);
    assert!(plan(&c, 0).unwrap().contains("<STATE>2</STATE>"));

    eprintln!("--- only ADMIN on the cluster");
    w.call(
        "one.user.allocate",
        vec![s("bob"), s("pw-bob"), s(""), Value::Array(vec![])],
    )
    .unwrap();
    let bob = zone.servers[leader].client_as("bob", "pw-bob");
    let (code, _) = one_error(bob.call("one.cluster.optimize", vec![i(0)]));
    assert_eq!(code, AUTHORIZATION);
}

const DEVICES: &str = "PCI = [ SHORT_ADDRESS = \"00:02.0\", ADDRESS = \"0000:00:02:0\", VENDOR = \"8086\", DEVICE = \"0a0c\", CLASS = \"0403\", DOMAIN = \"0000\", BUS = \"00\", SLOT = \"02\", FUNCTION = \"0\" ]\n\
    PCI = [ SHORT_ADDRESS = \"00:03.0\", ADDRESS = \"0000:00:03:0\", VENDOR = \"10de\", DEVICE = \"1db4\", CLASS = \"0302\", DOMAIN = \"0000\", BUS = \"00\", SLOT = \"03\", FUNCTION = \"0\" ]\n\
    PCI = [ SHORT_ADDRESS = \"00:04.0\", ADDRESS = \"0000:00:04:0\", VENDOR = \"10de\", DEVICE = \"1db4\", CLASS = \"0302\", DOMAIN = \"0000\", BUS = \"00\", SLOT = \"04\", FUNCTION = \"0\" ]";

#[test]
fn pci_devices_of_the_host_are_attached_to_powered_off_vms_once_each() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    let host = monitored_hosts(&zone, &w, &c, &["gpu"])[0];
    let vms: Vec<i32> = (0..2)
        .map(|_| ok(&w, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 16")]))
        .collect();
    zone.wait_until(DEADLINE, "the VMs run", || {
        vms.iter().all(|v| running_on(&c, *v).is_some())
    });
    let attach = |vm: i32, pci: &str| w.call("one.vm.attachpci", vec![i(vm), s(pci)]);
    let (code, msg) = one_error(attach(vms[0], "PCI = [ VENDOR = 10de ]"));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.attachpci] VM in wrong state, it has to be in poweroff"
        )
    );
    for v in &vms {
        ok(&w, "one.vm.action", vec![s("poweroff"), i(*v)]);
    }
    zone.wait_until(DEADLINE, "the VMs are off", || {
        vms.iter().all(|v| {
            body(&c, "one.vm.info", *v).contains("<STATE>8</STATE><LCM_STATE>0</LCM_STATE>")
        })
    });

    eprintln!("--- refusals of the request itself");
    for (pci, why) in [
        ("NIC = [ NETWORK_ID = 0 ]", "PCI attribute not found"),
        (
            "PCI = [ TYPE = NIC, VENDOR = 10de ]",
            "Use one.vm.attachnic to attach this PCI device",
        ),
        (
            "PCI = [ VENDOR = xyz ]",
            "Wrong Hex value for PCI attribute VENDOR",
        ),
        (
            "PCI = [ NAME = x ]",
            "SHORT_ADDRESS, DEVICE, VENDOR or CLASS must be defined for PCI.",
        ),
    ] {
        let (code, msg) = one_error(attach(vms[0], pci));
        assert_eq!(
            (code, msg.as_str()),
            (ACTION, format!("[one.vm.attachpci] {why}").as_str())
        );
    }

    eprintln!("--- by vendor: the dummy probe's NVIDIA device, then none is left");
    let h = body(&c, "one.host.info", host);
    let share = &h[h.find("<PCI_DEVICES>").unwrap()..h.find("</PCI_DEVICES>").unwrap()];
    assert_eq!(share.matches("<PCI>").count(), 3, "{share}");
    ok(
        &w,
        "one.vm.attachpci",
        vec![i(vms[0]), s("PCI = [ VENDOR = 10de ]")],
    );
    let (code, msg) = one_error(attach(vms[1], "PCI = [ VENDOR = \"10de\" ]"));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.attachpci] Cannot assign PCI device in host. Check address and free devices"
        )
    );
    let first = body(&c, "one.vm.info", vms[0]);
    assert!(
        first.contains("<PCI><ADDRESS><![CDATA[0000:02:00:0]]></ADDRESS>"),
        "{first}"
    );
    assert!(first.contains("<PCI_ID><![CDATA[0]]></PCI_ID>"), "{first}");
    assert!(
        first.contains("<VM_BUS><![CDATA[0x01]]></VM_BUS>"),
        "{first}"
    );
    assert!(
        first.contains("<NUMA_NODE><![CDATA[1]]></NUMA_NODE>"),
        "{first}"
    );

    eprintln!("--- devices an administrator adds to the template; the lowest ADDRESS first");
    ok(&w, "one.host.update", vec![i(host), s(DEVICES), i(1)]);
    ok(
        &w,
        "one.vm.attachpci",
        vec![i(vms[1]), s("PCI = [ VENDOR = 10de ]")],
    );
    assert!(body(&c, "one.vm.info", vms[1]).contains("<SHORT_ADDRESS><![CDATA[00:03.0]]>"));
    let h = body(&c, "one.host.info", host);
    let share = &h[h.find("<PCI_DEVICES>").unwrap()..h.find("</PCI_DEVICES>").unwrap()];
    assert_eq!(share.matches("<PCI>").count(), 6, "{share}");
    for vmid in [-1, vms[0], vms[1]] {
        assert!(
            share.contains(&format!("<VMID><![CDATA[{vmid}]]></VMID>")),
            "{share}"
        );
    }
    eprintln!("--- PCI_FILTER hides the free devices it does not name");
    ok(
        &w,
        "one.host.update",
        vec![i(host), s("PCI_FILTER = \"8086:*:*\""), i(1)],
    );
    let h = body(&c, "one.host.info", host);
    let share = &h[h.find("<PCI_DEVICES>").unwrap()..h.find("</PCI_DEVICES>").unwrap()];
    assert_eq!(share.matches("<PCI>").count(), 3, "held or 8086: {share}");
    let (code, _) = one_error(attach(vms[1], "PCI = [ SHORT_ADDRESS = \"00:04.0\" ]"));
    assert_eq!(code, ACTION);
    ok(
        &w,
        "one.host.update",
        vec![i(host), s("PCI_FILTER = \"\""), i(1)],
    );

    eprintln!("--- by address; detach frees the device");
    ok(
        &w,
        "one.vm.attachpci",
        vec![i(vms[1]), s("PCI = [ SHORT_ADDRESS = \"00:02.0\" ]")],
    );
    assert!(body(&c, "one.vm.info", vms[1]).contains("<PCI_ID><![CDATA[1]]></PCI_ID>"));
    let (code, msg) = one_error(w.call("one.vm.detachpci", vec![i(vms[0]), i(7)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.detachpci] PCI device not found")
    );
    ok(&w, "one.vm.detachpci", vec![i(vms[0]), i(0)]);
    assert!(!body(&c, "one.vm.info", vms[0]).contains("<PCI>"));
    ok(
        &w,
        "one.vm.attachpci",
        vec![i(vms[0]), s("PCI = [ SHORT_ADDRESS = \"02:00.0\" ]")],
    );

    eprintln!("--- a terminated VM gives its devices back");
    ok(&w, "one.vm.action", vec![s("terminate-hard"), i(vms[1])]);
    zone.wait_until(DEADLINE, "00:03.0 is free again", || {
        attach(vms[0], "PCI = [ SHORT_ADDRESS = \"00:03.0\" ]").is_ok()
    });
}

#[test]
fn onecluster_plans_and_onevm_pci_subcommands_call_the_api() {
    use cli::objects::Kind;
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let c = server.client();
    let host = monitored_hosts(&zone, &c, &c, &["node"])[0];
    ok(&c, "one.host.update", vec![i(host), s(DEVICES), i(1)]);
    let (code, _, err) = server.cli(Kind::Cluster, &["planexecute", "0"]).parts();
    assert_eq!(
        (code, err.trim()),
        (255, "[one.cluster.planexecute] Plan is not ready")
    );
    assert_eq!(server.cli(Kind::Cluster, &["optimize", "default"]).ok(), "");
    let (code, _, err) = server.cli(Kind::Cluster, &["plandelete", "0"]).parts();
    assert_eq!(
        (code, err.trim()),
        (
            255,
            "[one.cluster.plandelete] Plan for cluster 0 does not exist"
        ),
        "one host: nothing to balance, so no plan"
    );

    let vm = ok(&c, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 16")]);
    zone.wait_until(DEADLINE, "the VM runs", || running_on(&c, vm).is_some());
    ok(&c, "one.vm.action", vec![s("poweroff"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM is off", || {
        body(&c, "one.vm.info", vm).contains("<STATE>8</STATE><LCM_STATE>0</LCM_STATE>")
    });
    let id = vm.to_string();
    server
        .cli(
            Kind::Vm,
            &[
                "pci-attach",
                &id,
                "--pci_vendor",
                "10de",
                "--pci_class",
                "0302",
            ],
        )
        .ok();
    assert!(body(&c, "one.vm.info", vm).contains("<SHORT_ADDRESS><![CDATA[00:03.0]]>"));
    server
        .cli(Kind::Vm, &["pci-attach", &id, "--pci", "00:02.0"])
        .ok();
    server.cli(Kind::Vm, &["pci-detach", &id, "0"]).ok();
    let b = body(&c, "one.vm.info", vm);
    assert!(!b.contains("00:03.0") && b.contains("00:02.0"), "{b}");
}
