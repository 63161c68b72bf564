//! `one.vm.resize`: live on a running VM (HOTPLUG_RESIZE, then RUNNING), the host's usage
//! following; refused beyond the host's capacity when enforced, beyond the owner's quotas, and
//! in states OpenNebula does not resize in.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE};

const ACTION: i32 = 0x800;
const AUTHORIZATION: i32 = 0x200;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

fn running(c: &cli::Client, vm: i32) -> bool {
    let body = info(c, "one.vm.info", vm);
    body.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
}

#[test]
fn a_running_vm_is_resized_live_within_its_host_and_its_quotas() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let host = ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("kvm"), Value::Int(-1)],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = db\nCPU = 0.5\nMEMORY = 64")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));

    ok(
        &c,
        "one.vm.resize",
        vec![
            Value::Int(vm),
            s("CPU = 1\nMEMORY = 128\nVCPU = 2"),
            Value::Bool(true),
        ],
    );
    zone.wait_until(DEADLINE, "the resize is done", || running(&c, vm));
    let body = info(&c, "one.vm.info", vm);
    for attr in [
        "<CPU><![CDATA[1]]></CPU>",
        "<MEMORY><![CDATA[128]]></MEMORY>",
        "<VCPU><![CDATA[2]]></VCPU>",
    ] {
        assert!(body.contains(attr), "{attr} in {body}");
    }
    let body = info(&c, "one.host.info", host);
    assert!(body.contains("<MEM_USAGE>131072</MEM_USAGE>"), "{body}");
    assert!(body.contains("<CPU_USAGE>100</CPU_USAGE>"), "{body}");

    // Enforced, the host's capacity bounds it.
    let (code, msg) = one_error(c.call(
        "one.vm.resize",
        vec![Value::Int(vm), s("MEMORY = 999999999"), Value::Bool(true)],
    ));
    assert_eq!(code, ACTION, "{msg}");
    assert!(
        msg.starts_with("[one.vm.resize] Not enough memory: 1023999998976/"),
        "{msg}"
    );
    let (code, msg) = one_error(c.call("one.vm.resize", vec![Value::Int(vm), s("MEMORY = -1")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            0x2000,
            "[one.vm.resize] MEMORY must be a positive integer value."
        )
    );

    // Suspended VMs are not resized.
    ok(&c, "one.vm.action", vec![s("suspend"), Value::Int(vm)]);
    zone.wait_until(DEADLINE, "the VM is suspended", || {
        info(&c, "one.vm.info", vm).contains("<STATE>5</STATE>")
    });
    let (code, msg) = one_error(c.call("one.vm.resize", vec![Value::Int(vm), s("CPU = 2")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.resize] Cannot resize a VM in state SUSPENDED"
        )
    );

    // The owner's quotas bound a user's resize.
    let alice = ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s("core"), Value::Array(vec![])],
    );
    ok(
        &c,
        "one.user.quota",
        vec![Value::Int(alice), s("VM = [ MEMORY = 100 ]")],
    );
    let a = zone.servers[0].client_as("alice", "pw-alice");
    let mine = ok(
        &a,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 64"), Value::Bool(true)],
    );
    let (code, msg) = one_error(a.call("one.vm.resize", vec![Value::Int(mine), s("MEMORY = 128")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.resize] User [{alice}] : user [{alice}] limit of 100 reached for MEMORY quota in VM."
            )
            .as_str()
        )
    );
    ok(
        &a,
        "one.vm.resize",
        vec![Value::Int(mine), s("MEMORY = 96")],
    );
    assert!(info(&c, "one.vm.info", mine).contains("<MEMORY><![CDATA[96]]></MEMORY>"));

    // The quota is weighed before the state, as `quota_resize_authorization` comes before
    // `DispatchManager::resize`, and resume's running quotas before `DispatchManager::resume`.
    let gone = ok(
        &a,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 4"), Value::Bool(true)],
    );
    ok(&a, "one.vm.action", vec![s("terminate"), Value::Int(gone)]);
    zone.wait_until(DEADLINE, "the VM is DONE", || {
        info(&c, "one.vm.info", gone).contains("<STATE>6</STATE>")
    });
    let (code, msg) = one_error(a.call("one.vm.resize", vec![Value::Int(gone), s("MEMORY = 128")]));
    assert_eq!(
        (code, msg),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.resize] User [{alice}] : user [{alice}] limit of 100 reached for MEMORY quota in VM."
            )
        )
    );
    let (code, msg) = one_error(a.call("one.vm.resize", vec![Value::Int(gone), s("MEMORY = 2")]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.resize] Cannot resize a VM in state DONE")
    );
    ok(
        &c,
        "one.user.quota",
        vec![
            Value::Int(alice),
            s("VM = [ MEMORY = 100, RUNNING_MEMORY = 99 ]"),
        ],
    );
    let (code, msg) = one_error(a.call("one.vm.action", vec![s("resume"), Value::Int(gone)]));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!(
                "[one.vm.action] user [{alice}] limit of 99 reached for RUNNING_MEMORY quota in VM"
            )
        )
    );
}
