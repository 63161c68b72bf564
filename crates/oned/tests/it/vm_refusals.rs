//! VM calls refused, or side effects, as OpenNebula 7.0.2 has them: `one.vm.chown` of a DONE VM
//! (`get_and_quota`), `one.vm.migrate` to an OFFLINE host (`get_host_information`), and the
//! rescheduling flag the actions clear (`set_resched(false)`).

use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i64) -> Value {
    Value::Int(v as i32)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i64 {
    match c.call(method, params) {
        Ok(v) => v.as_i64().unwrap(),
        Err(e) => panic!("{method}: {e}"),
    }
}

fn wait_body(zone: &Zone, c: &cli::Client, vm: i64, has: &str) {
    zone.wait_until(DEADLINE, &format!("VM {vm} shows {has}"), || {
        c.call_xml("one.vm.info", vec![i(vm)])
            .is_ok_and(|b| b.contains(has))
    });
}

const RUNNING: &str = "<STATE>3</STATE><LCM_STATE>3</LCM_STATE>";

#[test]
fn done_vms_keep_their_owner_offline_hosts_take_no_vm_and_actions_clear_resched() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let mut hosts = Vec::new();
    for name in ["n1", "n2"] {
        let h = ok(
            &c,
            "one.host.allocate",
            vec![s(name), s("dummy"), s("dummy"), i(-1)],
        );
        zone.wait_until(DEADLINE, "the host is monitored", || {
            c.call_xml("one.host.info", vec![i(h)])
                .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
        });
        hosts.push(h);
    }
    let vm = |c: &cli::Client| {
        ok(
            c,
            "one.vm.allocate",
            vec![s("CPU = 0.1\nMEMORY = 16"), Value::Bool(true)],
        )
    };

    eprintln!("--- resched, then poweroff / reboot: the flag is cleared");
    let a = vm(&c);
    ok(&c, "one.vm.deploy", vec![i(a), i(hosts[0])]);
    wait_body(&zone, &c, a, RUNNING);
    // A hot-plug ends the rescheduling too (`DispatchManager::snapshot_create` and the like).
    ok(&c, "one.vm.action", vec![s("resched"), i(a)]);
    wait_body(&zone, &c, a, "<RESCHED>1</RESCHED>");
    ok(&c, "one.vm.snapshotcreate", vec![i(a), s("s")]);
    wait_body(&zone, &c, a, "<RESCHED>0</RESCHED>");
    wait_body(&zone, &c, a, RUNNING);
    for action in ["reboot", "poweroff"] {
        ok(&c, "one.vm.action", vec![s("resched"), i(a)]);
        wait_body(&zone, &c, a, "<RESCHED>1</RESCHED>");
        ok(&c, "one.vm.action", vec![s(action), i(a)]);
        wait_body(&zone, &c, a, "<RESCHED>0</RESCHED>");
    }
    wait_body(&zone, &c, a, "<STATE>8</STATE>");

    eprintln!("--- migrate to an OFFLINE host");
    ok(&c, "one.host.status", vec![i(hosts[1]), i(2)]);
    assert_eq!(
        one_error(c.call("one.vm.migrate", vec![i(a), i(hosts[1])])),
        (
            ACTION_CODE,
            "[one.vm.migrate] Host is offline, cannot use it to deploy VM".into()
        )
    );
    assert_eq!(
        one_error(c.call("one.vm.migrate", vec![i(a), i(hosts[0])])),
        (
            ACTION_CODE,
            "[one.vm.migrate] VM is already running on host [0] and datastore [0]".into()
        )
    );

    eprintln!("--- a DONE VM keeps its owner");
    // Terminated from POWEROFF, it keeps the flag (`trigger_shutdown`'s POWEROFF bypass).
    ok(&c, "one.vm.action", vec![s("resched"), i(a)]);
    wait_body(&zone, &c, a, "<RESCHED>1</RESCHED>");
    ok(&c, "one.vm.action", vec![s("terminate-hard"), i(a)]);
    wait_body(&zone, &c, a, "<STATE>6</STATE>");
    wait_body(&zone, &c, a, "<RESCHED>1</RESCHED>");
    assert_eq!(
        one_error(c.call("one.vm.chown", vec![i(a), i(1), i(-1)])),
        (
            ACTION_CODE,
            "[one.vm.chown] Could not change VM ownership, wrong state".into()
        )
    );
    // The new owner is looked up first (`RequestManagerChown`).
    assert_eq!(
        one_error(c.call("one.vm.chown", vec![i(a), i(99), i(-1)])),
        (
            crate::zone::NO_EXISTS,
            "[one.vm.chown] Error getting user [99].".into()
        )
    );
    let b = vm(&c);
    ok(&c, "one.vm.chown", vec![i(b), i(1), i(-1)]);
    // Held at allocate: `VirtualMachinePool::allocate` says so in its template.
    let held = c.call_xml("one.vm.info", vec![i(b)]).unwrap();
    assert!(
        held.contains("<SUBMIT_ON_HOLD><![CDATA[YES]]></SUBMIT_ON_HOLD>"),
        "{held}"
    );

    eprintln!("--- a user's deploy: the host first, then every right it lacks at once");
    let empty = Value::Array(vec![]);
    let u = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), empty],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let mine = vm(&ann);
    assert_eq!(
        one_error(ann.call("one.vm.deploy", vec![i(mine), i(99)])),
        (0x400, "[one.vm.deploy] Error getting host [99].".into())
    );
    // The default VDC gives group users MANAGE on the zone's hosts and USE on its datastores.
    assert_eq!(
        one_error(ann.call("one.vm.deploy", vec![i(mine), i(hosts[0])])),
        (
            0x200,
            format!("[one.vm.deploy] User [{u}] : Not authorized to perform ADMIN VM [{mine}].")
        )
    );
    ok(&c, "one.vdc.delgroup", vec![i(0), i(1)]);
    assert_eq!(
        one_error(ann.call("one.vm.deploy", vec![i(mine), i(hosts[0])])),
        (
            0x200,
            format!(
                "[one.vm.deploy] User [{u}] : Not authorized to perform ADMIN VM [{mine}]; Not \
                 authorized to perform MANAGE HOST [{}]; Not authorized to perform USE \
                 DATASTORE [0].",
                hosts[0]
            )
        )
    );

    eprintln!("--- more than 4 hd disks but on a q35 machine");
    let disks = "DISK = [ TYPE = fs, SIZE = 1, DEV_PREFIX = hd ]\n".repeat(5);
    let next = mine + 1;
    assert_eq!(
        one_error(c.call(
            "one.vm.allocate",
            vec![s(&format!("CPU = 0.1\nMEMORY = 16\n{disks}"))]
        )),
        (
            0x2000,
            format!("[one.vm.allocate] Non q35 or virt VM {next} has more than 4 hd disks")
        )
    );
    ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 16\nOS = [ MACHINE = pc-q35-8.2 ]\n{disks}"
        ))],
    );
}

/// oned.conf's CONTEXT_ALLOW_ETH_UPDATES = YES: `one.vm.updateconf` writes the network values it
/// is given over those the network context is made with (refused otherwise, as by default).
#[test]
fn context_eth_values_change_only_where_oned_conf_allows_it() {
    let setup = |_: usize, srv: &mut crate::zone::Server| {
        srv.extra_conf
            .push_str("CONTEXT_ALLOW_ETH_UPDATES = \"YES\"\n");
        srv.write_conf();
    };
    let zone = Zone::solo_custom(None, Some(Box::new(setup)));
    let c = zone.servers[0].client();
    let net = ok(
        &c,
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = bridge\nAR = [ TYPE = IP4, IP = 10.3.0.1, SIZE = 4 ]"),
            i(-1),
        ],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![
            s(&format!(
                "CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_ID = {net} ]\n\
                 CONTEXT = [ NETWORK = YES, A = 1 ]"
            )),
            Value::Bool(true),
        ],
    );
    wait_body(&zone, &c, vm, "<ETH0_IP><![CDATA[10.3.0.1]]></ETH0_IP>");
    ok(
        &c,
        "one.vm.updateconf",
        vec![
            i(vm),
            s("CONTEXT = [ ETH0_IP = \"10.3.0.99\", ETH0_MTU = \"9000\" ]"),
            i(1),
        ],
    );
    wait_body(&zone, &c, vm, "<ETH0_IP><![CDATA[10.3.0.99]]></ETH0_IP>");
    wait_body(&zone, &c, vm, "<ETH0_MTU><![CDATA[9000]]></ETH0_MTU>");
    wait_body(&zone, &c, vm, "<A><![CDATA[1]]></A>");
}

#[test]
fn a_vms_topology_is_completed_or_refused_as_parse_topology_does() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![
            s("CPU = 1\nMEMORY = 64\nVCPU = 4\nTOPOLOGY = [ ]"),
            Value::Bool(true),
        ],
    );
    let body = c.call_xml("one.vm.info", vec![i(vm)]).unwrap();
    assert!(
        body.contains(
            "<TOPOLOGY><CORES><![CDATA[4]]></CORES><PIN_POLICY><![CDATA[NONE]]></PIN_POLICY>\
             <SOCKETS><![CDATA[1]]></SOCKETS><THREADS><![CDATA[1]]></THREADS></TOPOLOGY>"
        ),
        "{body}"
    );
    assert_eq!(
        one_error(c.call(
            "one.vm.allocate",
            vec![s(
                "CPU = 1\nMEMORY = 64\nVCPU = 2\nTOPOLOGY = [ SOCKETS = 2 ]"
            )]
        )),
        (
            crate::zone::ALLOCATE,
            "[one.vm.allocate] Error allocating a new virtual machine. Non-pinned VMs with a \
             virtual topology needs to set  SOCKETS, CORES and THREADS numbers."
                .to_string()
        )
    );
    let t = ok(
        &c,
        "one.template.allocate",
        vec![s("NAME = pin\nCPU = 1\nMEMORY = 64\nVCPU = 3\nTOPOLOGY = [ PIN_POLICY = CORE, CORES = 2 ]")],
    );
    assert_eq!(
        one_error(c.call("one.template.instantiate", vec![i(t), s("")])),
        (
            crate::zone::ALLOCATE,
            "[one.template.instantiate] Error allocating a new virtual machine template. VCPU is \
             not multiple of the total number of cores"
                .to_string()
        )
    );
}

#[test]
fn day2_calls_check_history_restricted_attributes_and_incremental_backups_first() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let ann = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann_c = zone.servers[0].client_as("ann", "pw");
    let held = ok(
        &ann_c,
        "one.vm.allocate",
        vec![
            s("CPU = 1\nMEMORY = 32\nBACKUP_CONFIG = [ MODE = INCREMENT ]"),
            Value::Bool(true),
        ],
    );
    // `VirtualMachineAttach`: no host yet, before anything else.
    assert_eq!(
        one_error(c.call(
            "one.vm.attach",
            vec![i(held), s("DISK = [ TYPE = fs, SIZE = 1 ]")]
        )),
        (
            ACTION_CODE,
            "[one.vm.attach] VM is not running in any host".into()
        )
    );
    // VM_RESTRICTED_ATTR in a day-2 call's template, for a user.
    let auth = crate::zone::AUTHORIZATION;
    assert_eq!(
        one_error(ann_c.call(
            "one.vm.attachnic",
            vec![
                i(held),
                s("NIC = [ NETWORK_ID = 0, MAC = \"02:00:00:00:00:09\" ]")
            ]
        )),
        (
            auth,
            format!("[one.vm.attachnic] User [{ann}] : NIC includes a restricted attribute MAC.")
        )
    );
    assert_eq!(
        one_error(ann_c.call(
            "one.vm.resize",
            vec![i(held), s("CPU = 1\nCPU_COST = 3"), Value::Bool(false)]
        )),
        (
            auth,
            format!(
                "[one.vm.resize] User [{ann}] : Template includes a restricted attribute CPU_COST."
            )
        )
    );
    // Increment chains take no snapshots.
    assert_eq!(
        one_error(ann_c.call("one.vm.snapshotcreate", vec![i(held), s("s")])),
        (
            ACTION_CODE,
            "[one.vm.snapshotcreate] Action \"snapshot-create\" is not compatible with incremental \
             backups"
                .into()
        )
    );
    assert_eq!(
        one_error(ann_c.call("one.vm.disksnapshotcreate", vec![i(held), i(0), s("s")])),
        (
            ACTION_CODE,
            "[one.vm.disksnapshotcreate] Action \"disk-snapshot-create\" is not compatible with \
             incremental backups"
                .into()
        )
    );

    // A disk attached after the CONTEXT's DISK_ID (`set_up_attach`).
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(
            "CPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 1 ]\nCONTEXT = [ A = b ]",
        )],
    );
    wait_body(&zone, &c, vm, "<LCM_STATE>3</LCM_STATE>");
    ok(
        &c,
        "one.vm.attach",
        vec![i(vm), s("DISK = [ TYPE = fs, SIZE = 2 ]")],
    );
    wait_body(&zone, &c, vm, "<DISK_ID><![CDATA[2]]></DISK_ID>");
    wait_body(&zone, &c, vm, RUNNING);
    // Volatile disks are swap or file systems of a positive size (`acquire_disk`).
    assert_eq!(
        one_error(c.call(
            "one.vm.allocate",
            vec![s("CPU = 1\nMEMORY = 32\nDISK = [ SIZE = 1 ]")]
        )),
        (
            crate::zone::INTERNAL,
            "[one.vm.allocate] DISK 0: Unknown disk type ".into()
        )
    );
    assert_eq!(
        one_error(c.call("one.vm.attach", vec![i(vm), s("DISK = [ TYPE = swap ]")])),
        (
            ACTION_CODE,
            "[one.vm.attach] SIZE attribute must be a positive integer value.".into()
        )
    );
    // The dummy VM driver has no LIVE_RESIZE (`is_live_resize`).
    assert_eq!(
        one_error(c.call(
            "one.vm.resize",
            vec![i(vm), s("CPU = 0.2\nMEMORY = 64"), Value::Bool(false)]
        )),
        (
            ACTION_CODE,
            "[one.vm.resize] Hotplug resize not supported by driver dummy".into()
        )
    );
}
