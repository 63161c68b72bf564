//! `one.vm.deploy` as OpenNebula's `VirtualMachineDeploy`: its refusals in oned's order and
//! words, and a STOPPED or UNDEPLOYED VM deployed again by hand, or resumed and placed by the
//! scheduler, going through PROLOG_RESUME (PROLOG_UNDEPLOY) and BOOT_STOPPED (BOOT_UNDEPLOY).

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE};

const AUTHORIZATION: i32 = 0x200;
const NO_EXISTS: i32 = 0x400;
const ACTION: i32 = 0x800;
const INTERNAL: i32 = 0x2000;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

pub(crate) fn in_state(c: &cli::Client, vm: i32, st: i32, lcm: i32) -> bool {
    c.call_xml("one.vm.info", vec![i(vm)])
        .is_ok_and(|b| b.contains(&format!("<STATE>{st}</STATE><LCM_STATE>{lcm}</LCM_STATE>")))
}

/// The HID of each of the VM's history records, in order.
fn hosts_of(c: &cli::Client, vm: i32) -> Vec<i32> {
    let body = c.call_xml("one.vm.info", vec![i(vm)]).unwrap();
    body.split("<HISTORY>")
        .skip(1)
        .filter_map(|h| {
            let start = h.find("<HID>")? + 5;
            let end = h[start..].find("</HID>")? + start;
            h[start..end].parse().ok()
        })
        .collect()
}

/// A state hook on ACTIVE/`lcm`: its execution records say the VM passed through a state
/// that lasts one driver period, which polling may miss.
pub(crate) fn hook_on(c: &cli::Client, lcm: &str) -> i32 {
    ok(
        c,
        "one.hook.allocate",
        vec![s(&format!(
            "NAME = on-{lcm}\nTYPE = state\nCOMMAND = \"/bin/true\"\nRESOURCE = VM\n\
             ON = CUSTOM\nSTATE = ACTIVE\nLCM_STATE = {lcm}"
        ))],
    )
}

pub(crate) fn runs(c: &cli::Client, hook: i32) -> usize {
    c.call_xml("one.hooklog.info", vec![i(-1), i(-1), i(hook), i(0)])
        .unwrap_or_default()
        .matches("<HOOK_EXECUTION_RECORD>")
        .count()
}

fn refusal(c: &cli::Client, params: Vec<Value>) -> (i32, String) {
    one_error(c.call("one.vm.deploy", params))
}

#[test]
fn deploy_refuses_as_oned_and_brings_stopped_and_undeployed_vms_back() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let host = |name: &str, cluster: i32| {
        ok(
            &c,
            "one.host.allocate",
            vec![s(name), s("dummy"), s("dummy"), i(cluster)],
        )
    };
    let (a, b) = (host("node-a", -1), host("node-b", -1));
    let bare = ok(&c, "one.cluster.allocate", vec![s("bare")]);
    let lonely = host("node-c", bare);
    for h in [a, b, lonely] {
        zone.wait_until(DEADLINE, "the hosts are monitored", || {
            c.call_xml("one.host.info", vec![i(h)])
                .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
        });
    }
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = d\nCPU = 0.5\nMEMORY = 64"), Value::Bool(true)],
    );

    eprintln!("--- refusals, in oned's order: the host before the VM, the datastore, the state");
    let want = |code: i32, text: &str| (code, format!("[one.vm.deploy] {text}"));
    assert_eq!(
        refusal(&c, vec![i(vm + 100), i(99)]),
        want(NO_EXISTS, "Error getting host [99].")
    );
    assert_eq!(
        refusal(&c, vec![i(vm + 100), i(a)]),
        want(
            NO_EXISTS,
            &format!("Error getting virtual machine [{}].", vm + 100)
        )
    );
    assert_eq!(
        refusal(&c, vec![i(vm), i(a), Value::Bool(false), i(77)]),
        want(NO_EXISTS, "Error getting datastore [77].")
    );
    assert_eq!(
        refusal(&c, vec![i(vm), i(a), Value::Bool(false), i(1)]),
        want(
            INTERNAL,
            "Trying to use datastore [1] to deploy the VM, but it is not of type system datastore."
        )
    );
    assert_eq!(
        refusal(&c, vec![i(vm), i(lonely), Value::Bool(false), i(0)]),
        want(
            ACTION,
            &format!("datastore [0] and host [{lonely}] are not in the same cluster [{bare}].")
        )
    );
    assert_eq!(
        refusal(&c, vec![i(vm), i(lonely)]),
        want(
            ACTION,
            &format!("cluster [{bare}] does not have any datastore of type SYSTEM_DS.")
        )
    );
    let (code, msg) = refusal(
        &c,
        vec![i(vm), i(a), Value::Bool(false), i(-1), s("NIC = [ oops")],
    );
    assert_eq!(code, INTERNAL, "{msg}");
    assert!(msg.starts_with("[one.vm.deploy] Parse error"), "{msg}");
    let big = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = big\nCPU = 64\nMEMORY = 64"), Value::Bool(true)],
    );
    assert_eq!(
        refusal(&c, vec![i(big), i(a), Value::Bool(true)]),
        want(
            ACTION,
            &format!(
                "virtual machine [{big}] does not fit in host [{a}]. Not enough CPU: 6400/800"
            )
        )
    );
    ok(&c, "one.host.status", vec![i(b), i(2)]);
    assert_eq!(
        refusal(&c, vec![i(vm), i(b)]),
        want(ACTION, "Host is offline, cannot use it to deploy VM")
    );
    ok(&c, "one.host.status", vec![i(b), i(0)]);
    zone.wait_until(DEADLINE, "b is monitored again", || {
        c.call_xml("one.host.info", vec![i(b)])
            .is_ok_and(|body| body.contains("<STATE>2</STATE>"))
    });

    eprintln!("--- a held VM deployed by hand runs; deployed again, it is refused");
    ok(&c, "one.vm.deploy", vec![i(vm), i(a)]);
    zone.wait_until(DEADLINE, "the VM runs on a", || in_state(&c, vm, 3, 3));
    // The dummy driver names what it deployed `<host>:<name>:dummy`.
    let body = c.call_xml("one.vm.info", vec![i(vm)]).unwrap();
    assert!(
        body.contains("<DEPLOY_ID>node-a:d:dummy</DEPLOY_ID>"),
        "{body}"
    );
    assert_eq!(
        refusal(&c, vec![i(vm), i(b)]),
        want(ACTION, "Deploy action is not available for state RUNNING")
    );

    let resume = hook_on(&c, "PROLOG_RESUME");
    let boot_stopped = hook_on(&c, "BOOT_STOPPED");
    let undeploy = hook_on(&c, "PROLOG_UNDEPLOY");
    let boot_undeploy = hook_on(&c, "BOOT_UNDEPLOY");

    eprintln!("--- stopped, then deployed on b: PROLOG_RESUME -> BOOT_STOPPED -> RUNNING");
    c.call("one.vm.action", vec![s("stop"), i(vm)]).unwrap();
    zone.wait_until(DEADLINE, "the VM is STOPPED", || in_state(&c, vm, 4, 0));
    ok(&c, "one.vm.deploy", vec![i(vm), i(b)]);
    zone.wait_until(DEADLINE, "the VM runs on b", || in_state(&c, vm, 3, 3));
    assert_eq!(hosts_of(&c, vm), [a, b]);
    // A record opened by hand says so: PLAN_ID -2, ACTION_ID -1 (`VirtualMachine::add_history`).
    let body = c.call_xml("one.vm.info", vec![i(vm)]).unwrap();
    let last = body.rsplit("<HISTORY>").next().unwrap();
    assert!(
        last.contains("<PLAN_ID>-2</PLAN_ID><ACTION_ID>-1</ACTION_ID>"),
        "{last}"
    );
    zone.wait_until(DEADLINE, "the resume hooks ran", || {
        runs(&c, resume) == 1 && runs(&c, boot_stopped) == 1
    });

    eprintln!("--- undeployed, then deployed on a: PROLOG_UNDEPLOY -> BOOT_UNDEPLOY");
    c.call("one.vm.action", vec![s("undeploy"), i(vm)]).unwrap();
    zone.wait_until(DEADLINE, "the VM is UNDEPLOYED", || in_state(&c, vm, 9, 0));
    // Through `onevm deploy`, with a datastore and --enforce as OpenNebula's CLI takes them.
    let (vm_arg, a_arg) = (vm.to_string(), a.to_string());
    zone.servers[0]
        .cli(
            cli::objects::Kind::Vm,
            &["deploy", &vm_arg, &a_arg, "0", "--enforce"],
        )
        .ok();
    zone.wait_until(DEADLINE, "the VM runs on a", || in_state(&c, vm, 3, 3));
    assert_eq!(hosts_of(&c, vm), [a, b, a]);
    zone.wait_until(DEADLINE, "the undeploy hooks ran", || {
        runs(&c, undeploy) == 1 && runs(&c, boot_undeploy) == 1
    });

    eprintln!("--- stopped and resumed: PENDING, then the scheduler deploys it with its disks");
    c.call("one.vm.action", vec![s("stop"), i(vm)]).unwrap();
    zone.wait_until(DEADLINE, "the VM is STOPPED", || in_state(&c, vm, 4, 0));
    c.call("one.vm.action", vec![s("resume"), i(vm)]).unwrap();
    zone.wait_until(DEADLINE, "the VM runs again", || in_state(&c, vm, 3, 3));
    zone.wait_until(DEADLINE, "it went through PROLOG_RESUME", || {
        runs(&c, resume) == 2 && runs(&c, boot_stopped) == 2
    });
    assert_eq!(runs(&c, undeploy), 1);

    eprintln!("--- resumed, held and released while no host takes it: still PROLOG_RESUME");
    let hosts = [a, b, lonely];
    for h in hosts {
        ok(&c, "one.host.status", vec![i(h), i(1)]);
    }
    c.call("one.vm.action", vec![s("stop"), i(vm)]).unwrap();
    zone.wait_until(DEADLINE, "the VM is STOPPED", || in_state(&c, vm, 4, 0));
    for action in ["resume", "hold", "release"] {
        c.call("one.vm.action", vec![s(action), i(vm)]).unwrap();
    }
    assert!(in_state(&c, vm, 1, 0), "PENDING, no host enabled");
    for h in hosts {
        ok(&c, "one.host.status", vec![i(h), i(0)]);
    }
    zone.wait_until(DEADLINE, "the VM runs again", || in_state(&c, vm, 3, 3));
    zone.wait_until(DEADLINE, "it went through PROLOG_RESUME", || {
        runs(&c, resume) == 3
    });

    eprintln!("--- stopped and recreated: deployed anew, through PROLOG");
    let prolog = hook_on(&c, "PROLOG");
    c.call("one.vm.action", vec![s("stop"), i(vm)]).unwrap();
    zone.wait_until(DEADLINE, "the VM is STOPPED", || in_state(&c, vm, 4, 0));
    c.call("one.vm.recover", vec![i(vm), i(4)]).unwrap();
    zone.wait_until(DEADLINE, "the VM runs again", || in_state(&c, vm, 3, 3));
    zone.wait_until(DEADLINE, "it went through PROLOG", || runs(&c, prolog) == 1);
    assert_eq!(runs(&c, resume), 3, "not PROLOG_RESUME");

    eprintln!("--- a stopped VM deployed again counts for its owner's RUNNING quotas");
    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("dora"), s("pw"), s(""), Value::Array(vec![])],
    );
    c.call(
        "one.user.quota",
        vec![i(uid), s("VM = [ RUNNING_VMS = 1 ]")],
    )
    .unwrap();
    let owned_vm = |name: &str| {
        let v = ok(
            &c,
            "one.vm.allocate",
            vec![
                s(&format!("NAME = {name}\nCPU = 0.1\nMEMORY = 16")),
                Value::Bool(true),
            ],
        );
        c.call("one.vm.chown", vec![i(v), i(uid), i(-1)]).unwrap();
        v
    };
    let first = owned_vm("q0");
    ok(&c, "one.vm.deploy", vec![i(first), i(a)]);
    zone.wait_until(DEADLINE, "dora's VM runs", || in_state(&c, first, 3, 3));
    c.call("one.vm.action", vec![s("stop"), i(first)]).unwrap();
    zone.wait_until(DEADLINE, "it is STOPPED", || in_state(&c, first, 4, 0));
    owned_vm("q1");
    let (code, msg) = refusal(&c, vec![i(first), i(a)]);
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.starts_with("[one.vm.deploy] User [0] : user [") && msg.contains("RUNNING_VMS"),
        "{msg}"
    );
    assert!(in_state(&c, first, 4, 0), "still STOPPED");
}
