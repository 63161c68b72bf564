//! Per-cluster VM quotas (`VM = [ CLUSTER_IDS = ... ]`, OpenNebula 7.0's
//! `QuotaVirtualMachine`): set and shown beside the global VM entry, with their refusals;
//! weighed when a VM is deployed into, or migrated into, one of their clusters (by hand and by
//! the scheduler), and when a VM already there resizes; freed when the VM leaves.

use cli::Client;
use xmlrpc::Value;

use crate::zone::{allocate, one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn body(c: &Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![i(oid)]).unwrap_or_default()
}

/// The `<VM>` entries of a user's VM_QUOTA, each as its text.
fn vm_entries(c: &Client, uid: i32) -> Vec<String> {
    let b = body(c, "one.user.info", uid);
    let Some(q) = b
        .split("<VM_QUOTA>")
        .nth(1)
        .and_then(|r| r.split("</VM_QUOTA>").next())
    else {
        return Vec::new();
    };
    q.split("<VM>")
        .skip(1)
        .map(|e| e.split("</VM>").next().unwrap_or("").to_string())
        .collect()
}

/// The value of `<tag>` in a quota entry.
fn field(entry: &str, tag: &str) -> String {
    entry
        .split(&format!("<{tag}><![CDATA["))
        .nth(1)
        .and_then(|r| r.split("]]>").next())
        .unwrap_or("")
        .to_string()
}

/// The per-cluster entry of `clusters` of user `uid`.
fn cluster_entry(c: &Client, uid: i32, clusters: &str) -> Option<String> {
    vm_entries(c, uid)
        .into_iter()
        .find(|e| field(e, "CLUSTER_IDS") == clusters)
}

fn running(c: &Client, vm: i32) -> bool {
    body(c, "one.vm.info", vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
}

#[test]
fn per_cluster_vm_quotas_are_set_shown_and_weighed_where_vms_are_placed() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let alice = allocate(&c, "alice").unwrap() as i32;
    let a = zone.servers[0].client_as("alice", "pw-alice");
    let cl = ok(&c, "one.cluster.allocate", vec![s("edge")]);
    let in_0 = ok(
        &c,
        "one.host.allocate",
        vec![s("node-0"), s("dummy"), s("dummy"), i(-1)],
    );
    let in_cl = ok(
        &c,
        "one.host.allocate",
        vec![s("node-edge"), s("dummy"), s("dummy"), i(cl)],
    );
    // The system datastore serves both clusters.
    ok(&c, "one.cluster.adddatastore", vec![i(cl), i(0)]);

    eprintln!("--- refusals: a missing cluster, a cluster in two entries, defaults");
    let refused = |id: i32, text: &str| one_error(c.call("one.user.quota", vec![i(id), s(text)]));
    assert_eq!(
        refused(alice, "VM = [ CLUSTER_IDS = \"999\", VMS = 1 ]"),
        (
            ACTION_CODE,
            "[one.user.quota] Cluster 999 does not exist".into()
        )
    );
    ok(
        &c,
        "one.user.quota",
        vec![
            i(alice),
            s(&format!("VM = [ CLUSTER_IDS = \" {cl}, {cl}\", VMS = 1 ]")),
        ],
    );
    assert_eq!(
        refused(
            alice,
            &format!("VM = [ CLUSTER_IDS = \"0,{cl}\", VMS = 3 ]")
        ),
        (
            ACTION_CODE,
            format!("[one.user.quota] Quota for cluster id {cl} already exists")
        )
    );
    let (code, msg) = one_error(c.call(
        "one.userquota.update",
        vec![s("VM = [ CLUSTER_IDS = \"0\", VMS = 3 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION_CODE,
            "[one.userquota.update] CLUSTER_IDS attribute is not allowed for default VM quota"
        )
    );

    eprintln!("--- shown with its clusters normalized, what it leaves out unlimited");
    let entry = cluster_entry(&c, alice, &cl.to_string()).expect("the per-cluster entry");
    assert_eq!(field(&entry, "VMS"), "1");
    assert_eq!(field(&entry, "VMS_USED"), "0");
    assert_eq!(field(&entry, "CPU"), "-2");
    assert_eq!(field(&entry, "MEMORY"), "-2");
    assert!(
        entry.starts_with("<CLUSTER_IDS>"),
        "fields in alphabetical order: {entry}"
    );

    eprintln!("--- pending VMs are in no cluster; the first deploy into the cluster counts whole");
    let tmpl = s("CPU = 0.5\nMEMORY = 64");
    // Deployed by hand below: the scheduler must not place them first.
    let by_hand = s("CPU = 0.5\nMEMORY = 64\nSCHED_REQUIREMENTS = \"ID = -1\"");
    let v1 = ok(&a, "one.vm.allocate", vec![by_hand.clone()]);
    let v2 = ok(&a, "one.vm.allocate", vec![by_hand]);
    let on_hold = ok(&a, "one.vm.allocate", vec![tmpl, Value::Bool(true)]);
    let entry = cluster_entry(&c, alice, &cl.to_string()).unwrap();
    assert_eq!(field(&entry, "VMS_USED"), "0");
    ok(&c, "one.vm.deploy", vec![i(v1), i(in_cl)]);
    let entry = cluster_entry(&c, alice, &cl.to_string()).unwrap();
    assert_eq!(field(&entry, "VMS_USED"), "1");
    assert_eq!(field(&entry, "CPU_USED"), "0.50");
    assert_eq!(field(&entry, "RUNNING_MEMORY_USED"), "64");
    // The global entry counts all three.
    let global = vm_entries(&c, alice)
        .into_iter()
        .find(|e| !e.contains("<CLUSTER_IDS>"))
        .expect("the global entry");
    assert_eq!(field(&global, "VMS_USED"), "3");

    let limit = format!("user [{alice}] limit of 1 reached for VMS quota in VM with ID: {cl}");
    let (code, msg) = one_error(c.call("one.vm.deploy", vec![i(v2), i(in_cl)]));
    assert_eq!(
        (code, msg),
        (
            AUTHORIZATION,
            format!("[one.vm.deploy] User [0] : {limit}.")
        )
    );
    // Elsewhere it goes; migrated into the full cluster it is refused the same way.
    ok(&c, "one.vm.deploy", vec![i(v2), i(in_0)]);
    zone.wait_until(DEADLINE, "both VMs run", || {
        running(&c, v1) && running(&c, v2)
    });
    let (code, msg) = one_error(c.call("one.vm.migrate", vec![i(v2), i(in_cl)]));
    assert_eq!(
        (code, msg),
        (
            AUTHORIZATION,
            format!("[one.vm.migrate] User [0] : {limit}.")
        )
    );

    eprintln!("--- a VM in the cluster resizes under its entry too");
    ok(
        &c,
        "one.user.quota",
        vec![
            i(alice),
            s(&format!(
                "VM = [ CLUSTER_IDS = \"{cl}\", VMS = 1, CPU = 1 ]"
            )),
        ],
    );
    ok(&a, "one.vm.action", vec![s("poweroff"), i(v1)]);
    zone.wait_until(DEADLINE, "the VM is off", || {
        body(&c, "one.vm.info", v1).contains("<STATE>8</STATE>")
    });
    let (code, msg) = one_error(a.call(
        "one.vm.resize",
        vec![i(v1), s("CPU = 2\nMEMORY = 64"), Value::Bool(false)],
    ));
    assert_eq!(
        (code, msg),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.resize] User [{alice}] : user [{alice}] limit of 1 reached for CPU \
                 quota in VM with ID: {cl}."
            )
        )
    );
    ok(&a, "one.vm.action", vec![s("resume"), i(v1)]);

    eprintln!("--- the same clusters update the entry; the scheduler places under it");
    ok(
        &c,
        "one.user.quota",
        vec![
            i(alice),
            s(&format!("VM = [ CLUSTER_IDS = \"{cl}\", VMS = 2 ]")),
        ],
    );
    let entry = cluster_entry(&c, alice, &cl.to_string()).unwrap();
    assert_eq!(
        (field(&entry, "VMS"), field(&entry, "CPU")),
        ("2".into(), "-2".into())
    );
    ok(&c, "one.vm.migrate", vec![i(v2), i(in_cl)]);
    zone.wait_until(DEADLINE, "the migrated VM runs", || running(&c, v2));
    let entry = cluster_entry(&c, alice, &cl.to_string()).unwrap();
    assert_eq!(field(&entry, "VMS_USED"), "2");
    // The cluster is full: a VM that may only go there waits with the quota's words.
    ok(
        &a,
        "one.vm.update",
        vec![
            i(on_hold),
            s(&format!("SCHED_REQUIREMENTS = \"ID = {in_cl}\"")),
            i(1),
        ],
    );
    ok(&a, "one.vm.action", vec![s("release"), i(on_hold)]);
    let full = format!("user [{alice}] limit of 2 reached for VMS quota in VM with ID: {cl}");
    zone.wait_until(DEADLINE, "the scheduler tells why it waits", || {
        body(&c, "one.vm.info", on_hold).contains(&full)
    });
    assert!(body(&c, "one.vm.info", on_hold).contains("<STATE>1</STATE>"));
    // One VM leaves: the scheduler places the waiting one.
    ok(&a, "one.vm.action", vec![s("terminate-hard"), i(v1)]);
    zone.wait_until(DEADLINE, "the waiting VM is placed", || {
        running(&c, on_hold)
    });

    eprintln!("--- every limit unlimited: the entry goes");
    ok(
        &c,
        "one.user.quota",
        vec![
            i(alice),
            s(&format!("VM = [ CLUSTER_IDS = \"{cl}\", VMS = -1 ]")),
        ],
    );
    assert!(cluster_entry(&c, alice, &cl.to_string()).is_none());
    assert_eq!(vm_entries(&c, alice).len(), 1);
}
