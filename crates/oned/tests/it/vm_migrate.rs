//! `one.vm.migrate` (live and cold, a new history record per host, the host usage following
//! the VM) and `one.vm.recover`, called through a follower of a three-server zone.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE};

const NO_EXISTS: i32 = 0x400;
const ACTION: i32 = 0x800;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

/// The object's body; empty while a follower has not applied its creation yet (reads through a
/// follower are stale by design, and every use here waits or checks what it finds).
fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)])
        .unwrap_or_default()
}

/// Whether the VM is in (`st`, `lcm`); false while a follower has not applied it yet.
fn in_state(c: &cli::Client, vm: i32, st: i32, lcm: i32) -> bool {
    c.call_xml("one.vm.info", vec![Value::Int(vm)])
        .is_ok_and(|b| b.contains(&format!("<STATE>{st}</STATE><LCM_STATE>{lcm}</LCM_STATE>")))
}

fn running(c: &cli::Client, vm: i32) -> bool {
    in_state(c, vm, 3, 3)
}

/// Whether the VM is in (`st`, `lcm`) with these history records' hosts, read in one body.
fn at(c: &cli::Client, vm: i32, st: i32, lcm: i32, hosts: &[i32]) -> bool {
    let Ok(body) = c.call_xml("one.vm.info", vec![Value::Int(vm)]) else {
        return false;
    };
    body.contains(&format!("<STATE>{st}</STATE><LCM_STATE>{lcm}</LCM_STATE>"))
        && hosts_in(&body) == hosts
}

/// The HID of each of the VM's history records, in order.
fn hosts_of(c: &cli::Client, vm: i32) -> Vec<i32> {
    hosts_in(&info(c, "one.vm.info", vm))
}

fn hosts_in(body: &str) -> Vec<i32> {
    body.split("<HISTORY>")
        .skip(1)
        .filter_map(|h| {
            let start = h.find("<HID>")? + 5;
            let end = h[start..].find("</HID>")? + start;
            h[start..end].parse().ok()
        })
        .collect()
}

fn cpu_usage(c: &cli::Client, host: i32) -> String {
    let body = info(c, "one.host.info", host);
    let start = body.find("<CPU_USAGE>").map_or(0, |p| p + 11);
    let end = body[start..].find('<').map_or(start, |p| p + start);
    body[start..end].to_string()
}

#[test]
fn a_vm_migrates_live_and_cold_and_its_host_usage_follows_it() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    // Reads go to the leader, which has every write the follower forwarded.
    let c = zone.servers[leader].client();
    let a = ok(
        &w,
        "one.host.allocate",
        vec![s("node-a"), s("dummy"), s("dummy"), i(-1)],
    );
    let vm = ok(
        &w,
        "one.vm.allocate",
        vec![s("NAME = m\nCPU = 0.5\nMEMORY = 64")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));
    let b = ok(
        &w,
        "one.host.allocate",
        vec![s("node-b"), s("dummy"), s("dummy"), i(-1)],
    );
    assert_eq!(hosts_of(&c, vm), [a]);

    // Refusals: the same host, a missing one, a bad datastore.
    let (code, msg) = one_error(w.call("one.vm.migrate", vec![i(vm), i(a), Value::Bool(true)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            format!("[one.vm.migrate] VM is already running on host [{a}] and datastore [0]")
                .as_str()
        )
    );
    let (code, msg) = one_error(w.call("one.vm.migrate", vec![i(vm), i(99), Value::Bool(true)]));
    assert_eq!(
        (code, msg.as_str()),
        (NO_EXISTS, "[one.vm.migrate] Error getting host [99].")
    );

    zone.wait_until(DEADLINE, "b is monitored", || {
        info(&c, "one.host.info", b).contains("<STATE>2</STATE>")
    });
    eprintln!("--- live: MIGRATE, then RUNNING on the new host");
    ok(
        &w,
        "one.vm.migrate",
        vec![i(vm), i(b), Value::Bool(true), Value::Bool(true)],
    );
    zone.wait_until(DEADLINE, "the VM runs on b", || at(&c, vm, 3, 3, &[a, b]));
    zone.wait_until(DEADLINE, "b holds the VM, a is free", || {
        cpu_usage(&c, b) == "50" && cpu_usage(&c, a) == "0"
    });

    eprintln!("--- cold: SAVE_MIGRATE -> PROLOG_MIGRATE -> BOOT_MIGRATE -> RUNNING");
    ok(&w, "one.vm.migrate", vec![i(vm), i(a), Value::Bool(false)]);
    zone.wait_until(DEADLINE, "the VM runs on a again", || {
        at(&c, vm, 3, 3, &[a, b, a])
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<SEQ>2</SEQ>"), "{body}");

    eprintln!("--- a powered-off VM moves and stays off");
    ok(&w, "one.vm.action", vec![s("poweroff"), i(vm)]);
    zone.wait_until(DEADLINE, "POWEROFF", || in_state(&c, vm, 8, 0));
    ok(&w, "one.vm.migrate", vec![i(vm), i(b), Value::Bool(false)]);
    zone.wait_until(DEADLINE, "POWEROFF on b", || {
        let body = info(&c, "one.vm.info", vm);
        body.contains("<STATE>8</STATE><LCM_STATE>0</LCM_STATE>")
            && hosts_in(&body).last() == Some(&b)
    });

    let held = ok(
        &w,
        "one.vm.allocate",
        vec![s("CPU = 1\nMEMORY = 1"), Value::Bool(true)],
    );
    let (code, msg) = one_error(w.call("one.vm.migrate", vec![i(held), i(a), Value::Bool(false)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.migrate] Migrate action is not available for state HOLD"
        )
    );
}

#[test]
fn recover_ends_deletes_or_recreates_a_vm_as_opennebula() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    // Reads go to the leader, which has every write the follower forwarded.
    let c = zone.servers[leader].client();
    let host = ok(
        &w,
        "one.host.allocate",
        vec![s("node-a"), s("dummy"), s("dummy"), i(-1)],
    );
    let vm = ok(&w, "one.vm.allocate", vec![s("CPU = 1\nMEMORY = 64")]);
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));

    let (code, msg) = one_error(w.call("one.vm.recover", vec![i(vm), i(9)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.recover] Wrong recovery operation code")
    );
    // Nothing to recover on a RUNNING VM: success, nothing changes.
    assert_eq!(ok(&w, "one.vm.recover", vec![i(vm), i(1)]), vm);
    assert!(running(&c, vm));

    let held = ok(
        &w,
        "one.vm.allocate",
        vec![s("CPU = 1\nMEMORY = 1"), Value::Bool(true)],
    );
    let (code, msg) = one_error(w.call("one.vm.recover", vec![i(held), i(0)]));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!(
                "[one.vm.recover] Could not perform a recover operation on VM {held}, wrong state HOLD."
            )
        )
    );
    let (code, msg) = one_error(w.call("one.vm.recover", vec![i(held), i(2)]));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!("[one.vm.recover] Could not perform a retry on VM {held}, wrong state HOLD.")
        )
    );

    eprintln!("--- delete-recreate: back to PENDING, then scheduled again");
    ok(&w, "one.vm.recover", vec![i(vm), i(4)]);
    zone.wait_until(DEADLINE, "the VM runs again", || {
        let b = info(&c, "one.vm.info", vm);
        b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>") && hosts_in(&b).len() == 2
    });

    eprintln!("--- delete: DONE, the host freed");
    ok(&w, "one.vm.recover", vec![i(vm), i(3)]);
    zone.wait_until(DEADLINE, "DONE", || in_state(&c, vm, 6, 0));
    zone.wait_until(DEADLINE, "the host is free", || cpu_usage(&c, host) == "0");
    let (code, msg) = one_error(w.call("one.vm.recover", vec![i(vm), i(4)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.recover] Cannot delete-recreate a VM already in DONE state"
        )
    );
    // delete-db of a held VM ends it at once.
    ok(&w, "one.vm.recover", vec![i(held), i(5)]);
    zone.wait_until(DEADLINE, "the held VM is DONE", || in_state(&c, held, 6, 0));
}

#[test]
fn onevm_migrates_recovers_updates_conf_and_edits_scheduled_actions() {
    use cli::objects::Kind;
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let onevm = |args: &[&str]| zone.servers[0].cli(Kind::Vm, args).ok();
    let a = ok(
        &c,
        "one.host.allocate",
        vec![s("node-a"), s("dummy"), s("dummy"), i(-1)],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(
            "NAME = app\nCPU = 0.1\nMEMORY = 32\nCONTEXT = [ A = \"1\" ]",
        )],
    );
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));
    let b = ok(
        &c,
        "one.host.allocate",
        vec![s("node-b"), s("dummy"), s("dummy"), i(-1)],
    );

    onevm(&["migrate", "app", "node-b", "--live"]);
    zone.wait_until(DEADLINE, "the VM runs on node-b", || {
        at(&c, vm, 3, 3, &[a, b])
    });

    let dir = std::env::temp_dir().join(format!("oneha-vm-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("conf");
    std::fs::write(&conf, "OS = [ ARCH = \"x86_64\" ]\nCONTEXT = [ A = \"2\" ]").unwrap();
    onevm(&["updateconf", "app", conf.to_str().unwrap()]);
    zone.wait_until(DEADLINE, "the conf is updated", || {
        let body = info(&c, "one.vm.info", vm);
        running(&c, vm) && body.contains("<ARCH><![CDATA[x86_64]]></ARCH>")
    });

    let said = onevm(&[
        "reboot",
        "app",
        "--schedule",
        "+999999",
        "--hourly",
        "2",
        "--end",
        "3",
    ]);
    assert_eq!(
        said,
        format!("VM {vm}: reboot scheduled after +999999s from start\n")
    );
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains(
            "<REPEAT>3</REPEAT><DAYS>2</DAYS><END_TYPE>1</END_TYPE><END_VALUE>3</END_VALUE>"
        ),
        "{body}"
    );
    let sched = dir.join("sched");
    std::fs::write(&sched, "ACTION = \"poweroff\"\n").unwrap();
    onevm(&["sched-update", "app", "0", sched.to_str().unwrap()]);
    assert!(info(&c, "one.vm.info", vm).contains("<ACTION>poweroff</ACTION>"));
    onevm(&["sched-delete", "app", "0"]);
    assert!(info(&c, "one.vm.info", vm).contains("<SCHED_ACTIONS></SCHED_ACTIONS>"));

    let refused = zone.servers[0].cli(Kind::Vm, &["recover", "app"]);
    assert_eq!(refused.code, 255, "{}{}", refused.out, refused.err);
    assert!(
        refused.err.contains("Need to specify the result"),
        "{}",
        refused.err
    );
    onevm(&["recover", "app", "--delete"]);
    zone.wait_until(DEADLINE, "the VM is DONE", || in_state(&c, vm, 6, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn updateconf_keeps_restricted_attributes_and_migrate_to_administrators() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let host = ok(
        &c,
        "one.host.allocate",
        vec![s("node-a"), s("dummy"), s("dummy"), i(-1)],
    );
    let alice = ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s("core"), Value::Array(vec![])],
    );
    let a = zone.servers[0].client_as("alice", "pw-alice");
    let mine = ok(
        &a,
        "one.vm.allocate",
        vec![
            s("CPU = 0.1\nMEMORY = 8\nCONTEXT = [ A = \"1\" ]"),
            Value::Bool(true),
        ],
    );
    let (code, msg) = one_error(a.call(
        "one.vm.updateconf",
        vec![
            i(mine),
            s("RAW = [ TYPE = \"kvm\", DATA = \"<x/>\" ]"),
            i(0),
        ],
    ));
    assert_eq!(
        (code, msg),
        (
            0x200,
            format!("[one.vm.updateconf] User [{alice}] : Template includes a restricted attribute RAW.")
        )
    );
    // Only what updateconf takes of the template is weighed (`get_updateconf_template`): a
    // restricted attribute outside its sections is ignored, as the rest of the text.
    ok(
        &a,
        "one.vm.updateconf",
        vec![i(mine), s("CPU_COST = 9\nFEATURES = [ ACPI = YES ]"), i(0)],
    );
    assert!(!info(&c, "one.vm.info", mine).contains("CPU_COST"));
    ok(
        &a,
        "one.vm.updateconf",
        vec![
            i(mine),
            s("FEATURES = [ ACPI = \"yes\" ]\nCONTEXT = [ A = \"2\" ]"),
            i(1),
        ],
    );
    let body = info(&c, "one.vm.info", mine);
    assert!(body.contains("<ACPI><![CDATA[yes]]></ACPI>"), "{body}");
    assert!(body.contains("<A><![CDATA[2]]></A>"), "{body}");
    let (code, msg) = one_error(a.call(
        "one.vm.updateconf",
        vec![i(mine), s("OS = [ ARCH = x ]"), i(2)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (0x1000, "[one.vm.updateconf] Wrong update type")
    );

    // migrate and recover are ADMIN operations.
    let (code, _) = one_error(a.call("one.vm.migrate", vec![i(mine), i(host), Value::Bool(false)]));
    assert_eq!(code, 0x200);
    let (code, _) = one_error(a.call("one.vm.recover", vec![i(mine), i(3)]));
    assert_eq!(code, 0x200);
    // A DONE VM's configuration cannot change.
    ok(&c, "one.vm.recover", vec![i(mine), i(3)]);
    let (code, msg) = one_error(c.call("one.vm.updateconf", vec![i(mine), s("OS = [ ARCH = x ]")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            0x2000,
            "[one.vm.updateconf] configuration cannot be updated in state DONE"
        )
    );
}

/// `recover --success` of a migration (`trigger_deploy_success`, MIGRATE): the VM stays on
/// the host it went to; only a failure goes back (`revert_migrate_after_failure`). Asked at
/// once after the call, while the VM is likely still in MIGRATE (a later one finds it
/// RUNNING there, with nothing to do: the same end).
#[test]
fn a_migration_recovered_as_done_stays_on_its_new_host() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let a = ok(
        &c,
        "one.host.allocate",
        vec![s("node-a"), s("dummy"), s("dummy"), i(-1)],
    );
    let b = ok(
        &c,
        "one.host.allocate",
        vec![s("node-b"), s("dummy"), s("dummy"), i(-1)],
    );
    let vm = ok(&c, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 8")]);
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));
    let to = if hosts_of(&c, vm) == [a] { b } else { a };
    ok(&c, "one.vm.migrate", vec![i(vm), i(to), Value::Bool(true)]);
    ok(&c, "one.vm.recover", vec![i(vm), i(1)]);
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));
    assert_eq!(hosts_of(&c, vm).last(), Some(&to));
}

/// `VirtualMachineMigrate` with a system datastore named: it must be a system datastore on
/// the VM's transfer driver that says DS_MIGRATE, and the move cold; the new history record
/// is on it.
#[test]
fn a_vm_moves_to_another_system_datastore_of_its_driver() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let a = ok(
        &c,
        "one.host.allocate",
        vec![s("node-a"), s("dummy"), s("dummy"), i(-1)],
    );
    let vm = ok(&c, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 32")]);
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));
    let system = |name: &str, tm: &str| {
        ok(
            &c,
            "one.datastore.allocate",
            vec![
                s(&format!("NAME = {name}\nTYPE = SYSTEM_DS\nTM_MAD = {tm}")),
                i(-1),
            ],
        )
    };
    let (local, ssh, ceph) = (
        system("sys-local", "local"),
        system("sys-ssh", "ssh"),
        system("sys-ceph", "ceph"),
    );
    let refusal = |ds: i32, live: bool| {
        let (code, msg) = one_error(c.call(
            "one.vm.migrate",
            vec![i(vm), i(a), Value::Bool(live), Value::Bool(false), i(ds)],
        ));
        (
            code,
            msg.trim_start_matches("[one.vm.migrate] ").to_string(),
        )
    };
    let action = |m: &str| (ACTION, m.to_string());
    assert_eq!(
        refusal(local, true),
        action("A migration to a different system datastore cannot be performed live.")
    );
    assert_eq!(
        refusal(1, false),
        (
            0x2000,
            "Trying to use datastore [1] to deploy the VM, but it is not of type system datastore."
                .to_string()
        )
    );
    assert_eq!(
        refusal(ceph, false),
        action("System datastore migration not supported by driver")
    );
    assert_eq!(
        refusal(ssh, false),
        action("Cannot migrate to a system datastore with a different driver")
    );
    ok(
        &c,
        "one.vm.migrate",
        vec![
            i(vm),
            i(a),
            Value::Bool(false),
            Value::Bool(false),
            i(local),
        ],
    );
    zone.wait_until(DEADLINE, "the VM runs on the new datastore", || {
        at(&c, vm, 3, 3, &[a, a])
    });
    let body = info(&c, "one.vm.info", vm);
    let last = body.rsplit("<HISTORY>").next().unwrap_or_default();
    assert!(last.contains(&format!("<DS_ID>{local}</DS_ID>")), "{body}");
}
