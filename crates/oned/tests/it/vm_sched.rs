//! Scheduled actions: `one.vm.schedadd/schedupdate/scheddelete` through a follower, shown in
//! the VM body as OpenNebula 7.0 does, run by the leader at their time, and run exactly once
//! when the leader dies around a due action.

use std::time::{SystemTime, UNIX_EPOCH};

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, LEADER};

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

/// The VM's body; empty while a follower has not applied it yet (reads through a follower are
/// stale by design; every use here waits on what it finds).
fn body(c: &cli::Client, vm: i32) -> String {
    c.call_xml("one.vm.info", vec![i(vm)]).unwrap_or_default()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The text of the first `<tag>` of the body's scheduled action `id`.
fn field(body: &str, id: i32, tag: &str) -> Option<String> {
    let at = body.find(&format!("<SCHED_ACTION><ID>{id}</ID>"))?;
    let rest = &body[at..];
    let rest = &rest[..rest.find("</SCHED_ACTION>")?];
    let start = rest.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].to_string())
}

fn running_vm(zone: &Zone, c: &cli::Client) -> i32 {
    ok(
        c,
        "one.host.allocate",
        vec![s("node-h"), s("dummy"), s("dummy"), i(-1)],
    );
    let vm = ok(c, "one.vm.allocate", vec![s("CPU = 1\nMEMORY = 64")]);
    // Through a follower the VM may not be there yet: not running either.
    zone.wait_until(DEADLINE, "the VM runs", || {
        c.call_xml("one.vm.info", vec![i(vm)])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    vm
}

#[test]
fn scheduled_actions_are_added_updated_deleted_and_run_at_their_time() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let vm = running_vm(&zone, &w);

    let id = ok(
        &w,
        "one.vm.schedadd",
        vec![
            i(vm),
            s("SCHED_ACTION = [ ACTION = \"poweroff\", TIME = \"+86400\" ]"),
        ],
    );
    assert_eq!(id, 0);
    zone.wait_until(DEADLINE, "the follower shows the action", || {
        body(&w, vm).contains("<SCHED_ACTIONS><ID>0</ID></SCHED_ACTIONS>")
    });
    let b = body(&w, vm);
    let stime: i64 = b
        .split("<STIME>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|t| t.parse().ok())
        .unwrap();
    assert_eq!(field(&b, 0, "TIME"), Some((stime + 86400).to_string()));
    assert_eq!(
        field(&b, 0, "PARENT_ID").as_deref(),
        Some(vm.to_string().as_str())
    );
    assert_eq!(field(&b, 0, "TYPE").as_deref(), Some("VM"));
    assert_eq!(field(&b, 0, "DONE").as_deref(), Some("-1"));
    assert!(
        b.contains("</SCHED_ACTION></TEMPLATE>"),
        "the actions end TEMPLATE: {b}"
    );

    // Refusals, with OpenNebula's codes and messages.
    let (code, msg) = one_error(w.call("one.vm.schedadd", vec![i(vm), s("A = 1")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.schedadd] No SCHED_ACTION attribute in template"
        )
    );
    let (code, msg) = one_error(w.call(
        "one.vm.schedadd",
        vec![
            i(vm),
            s("SCHED_ACTION = [ ACTION = \"fly\", TIME = \"1\" ]"),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.schedadd] fly is not supported.")
    );
    let (code, msg) = one_error(w.call(
        "one.vm.schedupdate",
        vec![i(vm), i(7), s("SCHED_ACTION = [ TIME = \"1\" ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vm.schedupdate] SCHED_ACTION with id = 7 doesn't exist"
        )
    );
    let (code, _) = one_error(w.call("one.vm.scheddelete", vec![i(vm), i(7)]));
    assert_eq!(code, NO_EXISTS);

    eprintln!("--- a second action, deleted");
    let other = ok(
        &w,
        "one.vm.schedadd",
        vec![
            i(vm),
            s("SCHED_ACTION = [ ACTION = \"reboot\", TIME = \"+999999\" ]"),
        ],
    );
    assert_eq!(other, 1);
    assert_eq!(ok(&w, "one.vm.scheddelete", vec![i(vm), i(other)]), other);

    eprintln!("--- moved to now: the leader runs it once");
    let at = now() + 1;
    ok(
        &w,
        "one.vm.schedupdate",
        vec![
            i(vm),
            i(0),
            s(&format!("SCHED_ACTION = [ TIME = \"{at}\" ]")),
        ],
    );
    zone.wait_until(
        DEADLINE,
        "the VM is powered off and the action done",
        || {
            let b = body(&w, vm);
            b.contains("<STATE>8</STATE>")
                && field(&b, 0, "DONE").and_then(|d| d.parse::<i64>().ok()) >= Some(at)
        },
    );
    let b = body(&w, vm);
    assert_eq!(field(&b, 0, "MESSAGE").as_deref(), Some(""));
    assert!(!b.contains("<SCHED_ACTION><ID>1</ID>"), "{b}");

    eprintln!("--- a new VM's SCHED_ACTIONs become its scheduled actions");
    let (code, msg) = one_error(w.call(
        "one.vm.allocate",
        vec![s(
            "CPU = 1\nMEMORY = 1\nSCHED_ACTION = [ ACTION = \"fly\", TIME = \"1\" ]",
        )],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (INTERNAL, "[one.vm.allocate] fly is not supported.")
    );
    let held = ok(
        &w,
        "one.vm.allocate",
        vec![
            s("CPU = 1\nMEMORY = 1\nSCHED_ACTION = [ ACTION = \"release\", TIME = \"+1\" ]"),
            Value::Bool(true),
        ],
    );
    zone.wait_until(DEADLINE, "the held VM is released by its action", || {
        let b = body(&w, held);
        !b.contains("<STATE>2</STATE>") && field(&b, 0, "ACTION").as_deref() == Some("release")
    });
}

#[test]
fn a_due_action_runs_exactly_once_across_a_leader_change() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let vm = running_vm(&zone, &w);
    // Hourly, five times: each run counts END_VALUE down and moves TIME an hour on, so a
    // second run of the same occurrence would show as END_VALUE 3.
    let at = now() + 3;
    ok(
        &w,
        "one.vm.schedadd",
        vec![
            i(vm),
            s(&format!(
                "SCHED_ACTION = [ ACTION = \"reboot\", TIME = \"{at}\", REPEAT = \"3\", \
                 DAYS = \"1\", END_TYPE = \"1\", END_VALUE = \"5\" ]"
            )),
        ],
    );
    // Killed around the due time: either it ran and recorded it, or the next leader runs it.
    while now() < at {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    zone.servers[leader].kill();
    let new = zone.wait_for(DEADLINE, "a new leader", || {
        (0..3).filter(|&n| n != leader).find(|&n| {
            zone.servers[n]
                .raft_status()
                .is_some_and(|r| r.state == LEADER)
        })
    });
    let c = zone.servers[new].client();
    zone.wait_until(DEADLINE, "the action ran", || {
        field(&body(&c, vm), 0, "DONE").and_then(|d| d.parse::<i64>().ok()) >= Some(at)
    });
    // Give a duplicate run every chance to happen before checking there was none.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let b = body(&c, vm);
    assert_eq!(field(&b, 0, "END_VALUE").as_deref(), Some("4"), "{b}");
    assert_eq!(field(&b, 0, "TIME"), Some((at + 3600).to_string()), "{b}");
    zone.servers[leader].start();
}

/// VMs keep their scheduled actions, done or far off: however many there are, a due action of
/// a VM with a higher id still runs (the runner read only the 256 lowest ids, every period).
#[test]
fn a_due_action_runs_behind_hundreds_of_vms_with_actions_to_come() {
    let zone = Zone::bootstrap(3);
    let w = zone.servers[zone.leader()].client();
    let later = s("SCHED_ACTION = [ ACTION = \"poweroff\", TIME = \"+86400\" ]");
    for _ in 0..300 {
        let vm = ok(&w, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 16")]);
        ok(&w, "one.vm.schedadd", vec![i(vm), later.clone()]);
    }
    let vm = ok(&w, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 16")]);
    let due = format!("SCHED_ACTION = [ ACTION = \"hold\", TIME = \"{}\" ]", now());
    ok(&w, "one.vm.schedadd", vec![i(vm), s(&due)]);
    zone.wait_until(DEADLINE, "the due hold ran", || {
        body(&w, vm).contains("<STATE>2</STATE>")
    });
}

/// `DispatchManager::free_vm_resources` drops a VM's scheduled actions when it is DONE: its
/// TEMPLATE shows none, SCHED_ACTIONS still lists their ids.
#[test]
fn a_done_vm_shows_no_scheduled_actions() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vm = ok(&c, "one.vm.allocate", vec![s("CPU = 1\nMEMORY = 8")]);
    let later = now() + 3600;
    let sa = ok(
        &c,
        "one.vm.schedadd",
        vec![
            i(vm),
            s(&format!(
                "SCHED_ACTION = [ ACTION = \"hold\", TIME = \"{later}\" ]"
            )),
        ],
    );
    assert!(body(&c, vm).contains("<SCHED_ACTION>"));
    c.call("one.vm.action", vec![s("terminate-hard"), i(vm)])
        .unwrap();
    zone.wait_until(DEADLINE, "the VM is DONE", || {
        body(&c, vm).contains("<STATE>6</STATE>")
    });
    let b = body(&c, vm);
    assert!(!b.contains("<SCHED_ACTION>"), "{b}");
    assert!(
        b.contains(&format!("<SCHED_ACTIONS><ID>{sa}</ID></SCHED_ACTIONS>")),
        "{b}"
    );
}
