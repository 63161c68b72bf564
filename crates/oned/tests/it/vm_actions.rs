//! `one.vm.action` from the states OpenNebula's `DispatchManager` takes each action in: a
//! POWEROFF VM undeployed through EPILOG_UNDEPLOY, a SUSPENDED one stopped through EPILOG_STOP,
//! a STOPPED or POWEROFF one terminated through EPILOG, a DONE one terminated again (accepted),
//! and refusals with OpenNebula's words.

use xmlrpc::Value;

use crate::vm_deploy::{hook_on, in_state, runs};
use crate::zone::{one_error, Zone, DEADLINE};

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

fn act(c: &cli::Client, action: &str, vm: i32) -> Result<i32, (i32, String)> {
    let result = c.call("one.vm.action", vec![s(action), i(vm)]);
    match result {
        Ok(v) => Ok(v.as_i64().unwrap() as i32),
        Err(_) => Err(one_error(result)),
    }
}

#[test]
fn actions_take_vms_from_every_state_opennebula_allows() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let host = ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("kvm"), i(-1)],
    );
    zone.wait_until(DEADLINE, "the host is monitored", || {
        c.call_xml("one.host.info", vec![i(host)])
            .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
    });
    let epilog = hook_on(&c, "EPILOG");
    let epilog_stop = hook_on(&c, "EPILOG_STOP");
    let epilog_undeploy = hook_on(&c, "EPILOG_UNDEPLOY");
    let save_stop = hook_on(&c, "SAVE_STOP");
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = a\nCPU = 0.5\nMEMORY = 64")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));

    eprintln!("--- refusals: OpenNebula's words");
    assert_eq!(
        act(&c, "release", vm),
        Err((
            ACTION,
            "[one.vm.action] Error performing action \"release\": This action is not \
             available for state RUNNING"
                .into()
        ))
    );
    assert_eq!(
        act(&c, "shelve", vm),
        Err((
            ACTION,
            "[one.vm.action] Action \"shelve\" is not supported".into()
        ))
    );

    eprintln!("--- poweroff, then undeploy: POWEROFF -> EPILOG_UNDEPLOY -> UNDEPLOYED");
    act(&c, "poweroff", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vm, 8, 0));
    act(&c, "undeploy", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM is undeployed", || in_state(&c, vm, 9, 0));
    zone.wait_until(DEADLINE, "it went through EPILOG_UNDEPLOY", || {
        runs(&c, epilog_undeploy) == 1
    });
    let usage = || {
        c.call_xml("one.host.info", vec![i(host)])
            .unwrap_or_default()
            .contains("<RUNNING_VMS>0</RUNNING_VMS>")
    };
    zone.wait_until(DEADLINE, "the host is free", usage);

    eprintln!("--- resume, suspend, then stop: SUSPENDED -> EPILOG_STOP -> STOPPED, no save");
    act(&c, "resume", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM runs again", || in_state(&c, vm, 3, 3));
    act(&c, "suspend", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM is suspended", || in_state(&c, vm, 5, 0));
    act(&c, "stop", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM is stopped", || in_state(&c, vm, 4, 0));
    zone.wait_until(DEADLINE, "it went through EPILOG_STOP", || {
        runs(&c, epilog_stop) == 1
    });
    assert_eq!(runs(&c, save_stop), 0, "a suspended VM has nothing to save");

    eprintln!("--- terminate a STOPPED VM: EPILOG, then DONE; again: accepted");
    act(&c, "terminate", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM is done", || in_state(&c, vm, 6, 0));
    zone.wait_until(DEADLINE, "it went through EPILOG", || runs(&c, epilog) == 1);
    // The record the stop closed says terminate (27), as `set_action` on the last record.
    assert_eq!(records(&c, vm).last().map(|r| r.0), Some(27));
    assert_eq!(act(&c, "terminate", vm), Ok(vm));
    assert_eq!(act(&c, "terminate-hard", vm), Ok(vm));
    assert_eq!(
        act(&c, "resume", vm),
        Err((
            ACTION,
            "[one.vm.action] Error performing action \"resume\": This action is not \
             available for state DONE"
                .into()
        ))
    );

    eprintln!("--- terminate a POWEROFF VM: EPILOG too, and its host is freed");
    let other = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = b\nCPU = 0.5\nMEMORY = 64")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, other, 3, 3));
    act(&c, "poweroff-hard", other).unwrap();
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, other, 8, 0));
    act(&c, "reboot", other).unwrap_err();
    act(&c, "terminate", other).unwrap();
    zone.wait_until(DEADLINE, "the VM is done", || in_state(&c, other, 6, 0));
    zone.wait_until(DEADLINE, "it went through EPILOG", || runs(&c, epilog) == 2);
    zone.wait_until(DEADLINE, "the host is free", usage);
}

/// (ACTION, UID, GID, HID, ETIME > 0) of each of the VM's history records.
fn records(c: &cli::Client, vm: i32) -> Vec<(i64, i64, i64, i64, bool)> {
    let body = c.call_xml("one.vm.info", vec![i(vm)]).unwrap();
    let v = cli::xml::Element::parse(&body).unwrap();
    v.child("HISTORY_RECORDS")
        .into_iter()
        .flat_map(|h| h.children_named("HISTORY"))
        .map(|h| {
            let n = |k: &str| h.int_of(k).unwrap();
            (n("ACTION"), n("UID"), n("GID"), n("HID"), n("ETIME") > 0)
        })
        .collect()
}

/// Which of PSTIME, PETIME, RSTIME, RETIME, ESTIME, EETIME each of the VM's records has set.
fn phases(c: &cli::Client, vm: i32) -> Vec<[bool; 6]> {
    let body = c.call_xml("one.vm.info", vec![i(vm)]).unwrap();
    let v = cli::xml::Element::parse(&body).unwrap();
    v.child("HISTORY_RECORDS")
        .into_iter()
        .flat_map(|h| h.children_named("HISTORY"))
        .map(|h| {
            ["PSTIME", "PETIME", "RSTIME", "RETIME", "ESTIME", "EETIME"]
                .map(|k| h.int_of(k).unwrap() > 0)
        })
        .collect()
}

/// History records as `VirtualMachine::set_action` and `close_cp_history` keep them: the
/// action that ended a record and who asked for it, a record closed and copied by a resume
/// (RESUME on the copy) and by a resize of a placed VM (RESIZE on the closed one).
#[test]
fn history_records_say_which_action_ended_them_and_who_asked() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let host = ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("kvm"), i(-1)],
    );
    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("hana"), s("pw"), s(""), Value::Array(vec![])],
    );
    let hana = zone.servers[0].client_as("hana", "pw");
    let vm = ok(
        &hana,
        "one.vm.allocate",
        vec![s("NAME = h\nCPU = 0.5\nMEMORY = 64")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    let (h, u, users) = (host as i64, uid as i64, 1);
    assert_eq!(records(&c, vm), [(0, -1, -1, h, false)]);
    let (t, f) = (true, false);
    assert_eq!(phases(&c, vm), [[t, t, t, f, f, f]], "prolog done, running");

    act(&hana, "poweroff", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vm, 8, 0));
    assert_eq!(records(&c, vm), [(19, u, users, h, false)]);
    assert_eq!(phases(&c, vm), [[t, t, t, t, f, f]], "not running");

    act(&c, "resume", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    // The copy said RESUME while the VM booted; booted, its action is done
    // (`trigger_deploy_success`: `clear_action`).
    assert_eq!(
        records(&c, vm),
        [(19, u, users, h, true), (0, -1, -1, h, false)]
    );
    assert_eq!(phases(&c, vm)[1], [f, f, t, f, f, f], "running again");

    c.call(
        "one.vm.resize",
        vec![i(vm), s("CPU = 1\nMEMORY = 64"), Value::Bool(false)],
    )
    .unwrap();
    zone.wait_until(DEADLINE, "the resize is done", || in_state(&c, vm, 3, 3));
    assert_eq!(
        records(&c, vm),
        [
            (19, u, users, h, true),
            (35, 0, 0, h, true),
            (0, -1, -1, h, false)
        ]
    );

    // Terminated by oneadmin, the record names the VM's owner (`trigger_shutdown`).
    act(&c, "terminate-hard", vm).unwrap();
    zone.wait_until(DEADLINE, "the VM is done", || in_state(&c, vm, 6, 0));
    let last = *records(&c, vm).last().unwrap();
    assert_eq!(last, (28, u, users, h, true));
    assert_eq!(
        phases(&c, vm).last(),
        Some(&[f, f, t, t, t, t]),
        "its running and epilog ended"
    );
}
