//! OpenNebula's hooks (`one.hook.*`, `one.hookpool.info`, `one.hooklog.info`): API and state
//! hooks run on the leader with their execution log, checked as OpenNebula checks them, and
//! exactly once per event across a leader killed between the event and the hook's run.

use std::path::{Path, PathBuf};

use xmlrpc::Value;

use crate::zone::{one_error, Zone, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS};

const ACTION: i32 = 0x0800;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// An executable script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn records(body: &str) -> usize {
    body.matches("<HOOK_EXECUTION_RECORD>").count()
}

#[test]
fn api_and_state_hooks_run_on_the_leader_and_log_their_executions() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let (dir, _keep) = testkit::zone::temp_dir("hooks");
    let out = dir.join("api.out");
    let api = script(
        &dir,
        "api.sh",
        &format!("echo \"$1\" >> {}\necho hello", out.display()),
    );
    let states = dir.join("state.out");
    let state = script(
        &dir,
        "state.sh",
        &format!("echo \"$1 $2\" >> {}", states.display()),
    );
    // Created through a follower, forwarded to the leader.
    let c = zone.servers[follower].client();
    let id = |v: Value| v.as_i64().unwrap() as i32;
    let api_hook = id(c
        .call(
            "one.hook.allocate",
            vec![s(&format!(
                "NAME = users\nTYPE = api\nCOMMAND = \"{}\"\nARGUMENTS = \"$API\"\nCALL = \"one.user.allocate\"",
                api.display()
            ))],
        )
        .unwrap());
    let vm_hook = id(c
        .call(
            "one.hook.allocate",
            vec![s(&format!(
                "NAME = running\nTYPE = state\nCOMMAND = \"{}\"\nARGUMENTS = \"vm $TEMPLATE\"\nRESOURCE = VM\nON = RUNNING",
                state.display()
            ))],
        )
        .unwrap());
    let host_hook = id(c
        .call(
            "one.hook.allocate",
            vec![s(&format!(
                "NAME = monitored\nTYPE = STATE\nCOMMAND = \"{}\"\nARGUMENTS = host\nRESOURCE = HOST\nSTATE = monitored\nREMOTE = no",
                state.display()
            ))],
        )
        .unwrap());

    // The API hook runs after the call, with the call's information in base64.
    let uid = crate::zone::allocate(&c, "hooked").unwrap();
    zone.wait_until(DEADLINE, "the API hook ran", || !lines(&out).is_empty());
    let call_info = lines(&out).remove(0);
    let decoded = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, call_info.trim())
            .unwrap(),
    )
    .unwrap();
    assert!(
        decoded.starts_with("<CALL_INFO><RESULT>1</RESULT>"),
        "{decoded}"
    );
    assert!(decoded.contains("<VALUE>****</VALUE>"), "{decoded}");
    assert!(decoded.contains("<VALUE>hooked</VALUE>"), "{decoded}");
    assert!(
        decoded.contains(&format!("<TYPE>OUT</TYPE><VALUE>{uid}</VALUE>")),
        "{decoded}"
    );

    // State hooks: a host that gets monitored, a VM that reaches RUNNING.
    c.call(
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    )
    .unwrap();
    let vm = id(c
        .call("one.vm.allocate", vec![s("MEMORY = 64\nCPU = 0.25")])
        .unwrap());
    zone.wait_until(DEADLINE, "both state hooks ran", || {
        lines(&states).len() >= 2
    });
    let ran = lines(&states);
    assert!(ran.iter().any(|l| l == "host "), "{ran:?}");
    let vm_line = ran.iter().find(|l| l.starts_with("vm ")).unwrap();
    let vm_xml = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &vm_line[3..]).unwrap(),
    )
    .unwrap();
    assert!(
        vm_xml.starts_with(&format!("<VM><ID>{vm}</ID>")),
        "{vm_xml}"
    );

    // Every server shows the hooks and, once recorded, their executions.
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} has the records"), || {
            let body = c
                .call_xml("one.hook.info", vec![Value::Int(api_hook)])
                .unwrap_or_default();
            records(&body) == 1
        });
        let body = c
            .call_xml("one.hook.info", vec![Value::Int(api_hook)])
            .unwrap();
        assert!(
            body.starts_with(&format!(
                "<HOOK><ID>{api_hook}</ID><NAME>users</NAME><TYPE>api</TYPE><TEMPLATE><ARGUMENTS>"
            )),
            "{body}"
        );
        assert!(
            body.contains("<CALL><![CDATA[one.user.allocate]]></CALL>"),
            "{body}"
        );
        assert!(body.contains("<REMOTE><![CDATA[NO]]></REMOTE>"), "{body}");
        assert!(
            body.contains("<HOOKLOG><HOOK_EXECUTION_RECORD><HOOK_ID>"),
            "{body}"
        );
        assert!(body.contains("<EXECUTION_ID>0</EXECUTION_ID>"), "{body}");
        assert!(body.contains("<STDOUT>aGVsbG8K\n</STDOUT>"), "{body}");
        assert!(body.contains("<CODE>0</CODE>"), "{body}");
        let body = c
            .call_xml("one.hook.info", vec![Value::Int(host_hook)])
            .unwrap();
        assert!(
            body.contains("<STATE><![CDATA[MONITORED]]></STATE>"),
            "{body}"
        );
        let pool = c
            .call_xml(
                "one.hookpool.info",
                vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
            )
            .unwrap();
        assert_eq!(pool.matches("<HOOK><ID>").count(), 3, "{pool}");
        assert!(!pool.contains("<HOOKLOG>"), "{pool}");
    }
    let body = c
        .call_xml("one.hook.info", vec![Value::Int(vm_hook)])
        .unwrap();
    assert!(
        body.contains("<LCM_STATE><![CDATA[RUNNING]]></LCM_STATE>")
            && body.contains("<STATE><![CDATA[ACTIVE]]></STATE>")
            && !body.contains("<ON>"),
        "{body}"
    );

    // The log, filtered: successes, one hook, a time window.
    let log = |min: i32, max: i32, hook: i32, rc: i32| {
        c.call_xml(
            "one.hooklog.info",
            vec![
                Value::Int(min),
                Value::Int(max),
                Value::Int(hook),
                Value::Int(rc),
            ],
        )
        .unwrap()
    };
    zone.wait_until(DEADLINE, "three records", || {
        records(&log(-1, -1, -1, 0)) == 3
    });
    assert_eq!(records(&log(-1, -1, api_hook, 0)), 1);
    assert_eq!(records(&log(-1, -1, -1, 1)), 3);
    assert_eq!(records(&log(-1, -1, -1, -1)), 0);
    assert_eq!(records(&log(-1, 1, -1, 0)), 0);

    // Retry runs the same arguments again, as a new execution marked RETRY.
    c.call("one.hook.retry", vec![Value::Int(api_hook), Value::Int(0)])
        .unwrap();
    zone.wait_until(DEADLINE, "the retry ran", || {
        records(&log(-1, -1, api_hook, 0)) == 2
    });
    assert_eq!(lines(&out).len(), 2);
    assert_eq!(lines(&out)[1], call_info);
    assert!(log(-1, -1, api_hook, 0).contains("<RETRY>yes</RETRY>"));
    let (code, msg) =
        one_error(c.call("one.hook.retry", vec![Value::Int(api_hook), Value::Int(9)]));
    assert_eq!(code, INTERNAL);
    assert_eq!(
        msg,
        "[one.hook.retry] Invalid HookLog body. Arguments not found."
    );

    // Deleting a hook deletes its log.
    c.call("one.hook.delete", vec![Value::Int(api_hook)])
        .unwrap();
    // The follower answers from its own copy: wait for the delete to reach it.
    zone.wait_until(DEADLINE, "the log is gone", || {
        records(&log(-1, -1, api_hook, 0)) == 0
    });
    let (code, msg) = one_error(c.call("one.hook.info", vec![Value::Int(api_hook)]));
    assert_eq!(code, NO_EXISTS);
    assert_eq!(
        msg,
        format!("[one.hook.info] Error getting hook [{api_hook}].")
    );
}

#[test]
fn hook_templates_names_and_rights_are_checked_as_opennebula_checks_them() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let allocate = |t: &str| one_error(c.call("one.hook.allocate", vec![s(t)]));
    let cases = [
        (
            "NAME = a\nTYPE = OTHER\nCOMMAND = x",
            "Invalid Hook type: other",
        ),
        (
            "NAME = \"a/b\"\nTYPE = api\nCOMMAND = x\nCALL = one.user.allocate",
            "Invalid name.",
        ),
        (
            "NAME = a\nTYPE = api\nCALL = one.user.allocate",
            "No COMMAND in template for Hook.",
        ),
        (
            "NAME = a\nTYPE = api\nCOMMAND = x\nCALL = one.vm.info",
            "API call does not exist or is not supported: one.vm.info",
        ),
        (
            "NAME = a\nTYPE = api\nCOMMAND = x\nCALL = oneha.db.checksum",
            "API call does not exist or is not supported: oneha.db.checksum",
        ),
        (
            "NAME = a\nTYPE = state\nCOMMAND = x",
            "RESOURCE attribute is required for STATE hooks.",
        ),
        (
            "NAME = a\nTYPE = state\nCOMMAND = x\nRESOURCE = vm\nON = RUNNING",
            "Invalid resource type: vm",
        ),
        (
            "NAME = a\nTYPE = state\nCOMMAND = x\nRESOURCE = VM\nON = later",
            "Unkown state condition: LATER",
        ),
        (
            "NAME = a\nTYPE = state\nCOMMAND = x\nRESOURCE = HOST\nSTATE = up",
            "Invalid STATE: UP",
        ),
    ];
    for (t, want) in cases {
        let (code, msg) = allocate(t);
        assert_eq!(code, INTERNAL, "{t}");
        assert_eq!(msg, format!("[one.hook.allocate] {want}"), "{t}");
    }
    let first = c
        .call(
            "one.hook.allocate",
            vec![s(
                "NAME = a\nTYPE = api\nCOMMAND = x\nCALL = one.user.allocate",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    assert_eq!(first, 0, "hook ids count from 0");
    let (code, msg) = allocate("NAME = a\nTYPE = api\nCOMMAND = y\nCALL = one.user.delete");
    assert_eq!(code, INTERNAL);
    assert_eq!(msg, "[one.hook.allocate] NAME is already taken by Hook 0.");
    let second = c
        .call(
            "one.hook.allocate",
            vec![s(
                "NAME = b\nTYPE = api\nCOMMAND = y\nCALL = one.user.delete",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;

    // Rename and update, with their own messages.
    let (code, msg) = one_error(c.call("one.hook.rename", vec![Value::Int(second), s("a")]));
    assert_eq!(code, ACTION);
    assert_eq!(
        msg,
        "[one.hook.rename] hook cannot be renamed to a because it collides with hook 0"
    );
    c.call("one.hook.rename", vec![Value::Int(second), s("c")])
        .unwrap();
    let (code, msg) = one_error(c.call(
        "one.hook.update",
        vec![Value::Int(second), s("CALL = one.vm.info"), Value::Int(1)],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(
        msg,
        "[one.hook.update] Cannot update template. The CALL attribute is not defined or it's invalid."
    );
    let (code, msg) = one_error(c.call(
        "one.hook.update",
        vec![Value::Int(second), s("CALL = one.user.delete")],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(
        msg,
        "[one.hook.update] Cannot update template. The COMMAND attribute is not defined."
    );
    c.call(
        "one.hook.update",
        vec![Value::Int(second), s("TIMEOUT = 5"), Value::Int(1)],
    )
    .unwrap();
    let body = c
        .call_xml("one.hook.info", vec![Value::Int(second)])
        .unwrap();
    assert!(body.contains("<NAME>c</NAME>"), "{body}");
    // oned's own SQL call is one of its API's.
    c.call(
        "one.hook.update",
        vec![
            Value::Int(second),
            s("COMMAND = y\nCALL = one.system.sql"),
            Value::Int(0),
        ],
    )
    .unwrap();
    // A state hook updated with states in lower case keeps them as oned writes them back.
    let state = c
        .call(
            "one.hook.allocate",
            vec![s(
                "NAME = st\nTYPE = state\nCOMMAND = x\nRESOURCE = VM\nON = RUNNING",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    c.call(
        "one.hook.update",
        vec![
            Value::Int(state),
            s("COMMAND = x\nRESOURCE = VM\nSTATE = active\nLCM_STATE = prolog"),
            Value::Int(0),
        ],
    )
    .unwrap();
    let st = c
        .call_xml("one.hook.info", vec![Value::Int(state)])
        .unwrap();
    assert!(
        st.contains("<STATE><![CDATA[ACTIVE]]></STATE>")
            && st.contains("<LCM_STATE><![CDATA[PROLOG]]></LCM_STATE>"),
        "{st}"
    );
    assert!(
        body.contains("<TEMPLATE><CALL><![CDATA[one.user.delete]]></CALL><COMMAND><![CDATA[y]]></COMMAND><REMOTE><![CDATA[NO]]></REMOTE><TIMEOUT><![CDATA[5]]></TIMEOUT></TEMPLATE><HOOKLOG></HOOKLOG></HOOK>"),
        "{body}"
    );

    // Locks hold hooks as any lockable object.
    c.call("one.hook.lock", vec![Value::Int(second), Value::Int(2)])
        .unwrap();
    let (code, msg) = one_error(c.call("one.hook.delete", vec![Value::Int(second)]));
    assert_eq!(code, AUTHORIZATION);
    assert_eq!(
        msg,
        format!("[one.hook.delete] User [0] : HOOK is locked. [{second}].")
    );
    c.call("one.hook.unlock", vec![Value::Int(second)]).unwrap();

    // Hooks are oneadmin's: a plain user may not create, see or read their log.
    crate::zone::allocate(&c, "plain").unwrap();
    let user = zone.servers[0].client_as("plain", "pw-plain");
    let (code, msg) = one_error(user.call(
        "one.hook.allocate",
        vec![s(
            "NAME = z\nTYPE = api\nCOMMAND = x\nCALL = one.user.allocate",
        )],
    ));
    assert_eq!(code, AUTHORIZATION);
    assert_eq!(
        msg,
        "[one.hook.allocate] User [2] : Not authorized to perform CREATE HOOK."
    );
    let (code, msg) = one_error(user.call("one.hook.info", vec![Value::Int(0)]));
    assert_eq!(code, AUTHORIZATION);
    assert_eq!(
        msg,
        "[one.hook.info] User [2] : Not authorized to perform USE HOOK [0]."
    );
    let pool = user
        .call_xml(
            "one.hookpool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert_eq!(pool, "<HOOK_POOL></HOOK_POOL>");
    let (code, msg) = one_error(user.call(
        "one.hooklog.info",
        vec![
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(0),
        ],
    ));
    assert_eq!(code, AUTHORIZATION);
    assert_eq!(
        msg,
        "[one.hooklog.info] User [2] not authorized to perform action on hook."
    );
}

/// The leader is killed while its hook runs (the event written, its execution not recorded):
/// the hook dies with it, runs again on the new leader, and is recorded once.
#[test]
fn a_hook_interrupted_by_a_leader_kill_runs_once_more_on_the_new_leader() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let (dir, _keep) = testkit::zone::temp_dir("hook-failover");
    let log = dir.join("runs");
    let gate = dir.join("gate");
    let hook = script(
        &dir,
        "slow.sh",
        &format!(
            "echo \"start $HOOK_EXECUTION\" >> {log}\n\
             while [ ! -f {gate} ]; do sleep 0.05; done\n\
             echo \"done $HOOK_EXECUTION\" >> {log}",
            log = log.display(),
            gate = gate.display()
        ),
    );
    let c = zone.servers[leader].client();
    let hid = c
        .call(
            "one.hook.allocate",
            vec![s(&format!(
                "NAME = slow\nTYPE = api\nCOMMAND = \"{}\"\nCALL = \"one.user.allocate\"",
                hook.display()
            ))],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    crate::zone::allocate(&c, "event").unwrap();
    zone.wait_until(DEADLINE, "the hook started on the leader", || {
        lines(&log).len() == 1
    });

    eprintln!("--- kill the leader (server {leader}) while its hook runs");
    zone.servers[leader].kill();
    let new = zone.leader();
    assert_ne!(new, leader);
    zone.wait_until(DEADLINE, "the hook started again on the new leader", || {
        lines(&log).len() == 2
    });
    std::fs::write(&gate, "").unwrap();
    let c = zone.servers[new].client();
    zone.wait_until(DEADLINE, "the execution is recorded", || {
        let body = c
            .call_xml("one.hook.info", vec![Value::Int(hid)])
            .unwrap_or_default();
        records(&body) == 1 && body.contains("<CODE>0</CODE>")
    });
    // The first run died with its leader: one run finished, one record, execution 0.
    zone.wait_until(DEADLINE, "the second run finished", || {
        lines(&log).len() == 3
    });
    assert_eq!(lines(&log), vec!["start 0", "start 0", "done 0"]);

    // A recorded execution is not run again by the next leader.
    zone.servers[leader].start();
    let next = zone.leader();
    zone.servers[next].kill();
    let last = zone.leader();
    let c = zone.servers[last].client();
    crate::zone::allocate(&c, "second-event").unwrap();
    zone.wait_until(DEADLINE, "the second event's hook ran", || {
        let body = c
            .call_xml("one.hook.info", vec![Value::Int(hid)])
            .unwrap_or_default();
        records(&body) == 2
    });
    assert_eq!(
        lines(&log),
        vec!["start 0", "start 0", "done 0", "start 1", "done 1"]
    );
}

/// `ImagePool::update` fires an image's state hooks on every change of its state, not only
/// when a driver makes it READY: disabled and enabled, used by a VM and released, deleted.
#[test]
fn image_state_hooks_fire_on_every_change_of_state() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let ok = |method: &str, params: Vec<Value>| -> i32 {
        c.call(method, params)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
            .as_i64()
            .unwrap() as i32
    };
    let hook = |state: &str| {
        ok(
            "one.hook.allocate",
            vec![s(&format!(
                "NAME = img-{state}\nTYPE = state\nCOMMAND = \"/bin/true\"\nRESOURCE = IMAGE\n\
                 STATE = {state}"
            ))],
        )
    };
    let (ready, disabled, used, deleted) = (
        hook("READY"),
        hook("DISABLED"),
        hook("USED"),
        hook("DELETE"),
    );
    let runs = |hook: i32| {
        c.call_xml(
            "one.hooklog.info",
            vec![
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(hook),
                Value::Int(0),
            ],
        )
        .map(|b| records(&b))
        .unwrap_or_default()
    };
    let wait_runs = |hook: i32, n: usize, what: &str| {
        zone.wait_until(DEADLINE, what, || runs(hook) >= n);
        assert_eq!(runs(hook), n, "{what}");
    };
    let image = ok(
        "one.image.allocate",
        vec![s("NAME = disk\nTYPE = DATABLOCK\nSIZE = 1"), Value::Int(1)],
    );
    wait_runs(ready, 1, "the driver makes the image READY");
    ok(
        "one.image.enable",
        vec![Value::Int(image), Value::Bool(false)],
    );
    wait_runs(disabled, 1, "the image is DISABLED");
    ok(
        "one.image.enable",
        vec![Value::Int(image), Value::Bool(true)],
    );
    wait_runs(ready, 2, "the image is READY again");
    let vm = ok(
        "one.vm.allocate",
        vec![
            s(&format!(
                "CPU = 1\nMEMORY = 8\nDISK = [ IMAGE_ID = {image} ]"
            )),
            Value::Bool(true),
        ],
    );
    wait_runs(used, 1, "a VM uses the image");
    ok("one.vm.recover", vec![Value::Int(vm), Value::Int(3)]);
    wait_runs(ready, 3, "the VM released the image");
    ok(
        "one.image.delete",
        vec![Value::Int(image), Value::Bool(false)],
    );
    wait_runs(deleted, 1, "the image is deleted");
    assert_eq!((runs(disabled), runs(used)), (1, 1));
}

/// OpenNebula runs API hooks after the reads it does not leave out (`HookAPI`'s unsupported
/// calls are the info calls): a hook on `one.vmpool.accounting` runs, called through a follower.
#[test]
fn api_hooks_on_reads_run_on_the_leader() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let hook = c
        .call(
            "one.hook.allocate",
            vec![s(
                "NAME = acct\nTYPE = api\nCOMMAND = \"/bin/true\"\nCALL = \"one.vmpool.accounting\"",
            )],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    zone.wait_caught_up();
    let follower = zone.servers[(leader + 1) % 3].client();
    follower
        .call_xml(
            "one.vmpool.accounting",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    let runs = || {
        c.call_xml(
            "one.hooklog.info",
            vec![
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(hook),
                Value::Int(0),
            ],
        )
        .map(|b| records(&b))
        .unwrap_or_default()
    };
    zone.wait_until(DEADLINE, "the hook ran once", || runs() == 1);
}

#[test]
fn a_deleted_network_fires_lock_delete_then_done_with_its_xml_of_then() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let (dir, _keep) = testkit::zone::temp_dir("net-hooks");
    let out = dir.join("net.out");
    let record = script(
        &dir,
        "net.sh",
        &format!("echo \"$1 $2\" >> {}", out.display()),
    );
    for state in ["LOCK_DELETE", "DONE"] {
        c.call(
            "one.hook.allocate",
            vec![s(&format!(
                "NAME = net-{state}\nTYPE = state\nCOMMAND = \"{}\"\n\
                 ARGUMENTS = \"{state} $TEMPLATE\"\nRESOURCE = NET\nSTATE = {state}",
                record.display()
            ))],
        )
        .unwrap();
    }
    let net = c
        .call(
            "one.vn.allocate",
            vec![
                s("NAME = gone\nVN_MAD = dummy\nBRIDGE = br0"),
                Value::Int(-1),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    zone.wait_until(DEADLINE, "the network is READY", || {
        c.call_xml("one.vn.info", vec![Value::Int(net as i32)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    c.call("one.vn.delete", vec![Value::Int(net as i32)])
        .unwrap();
    zone.wait_until(DEADLINE, "both hooks ran", || lines(&out).len() >= 2);
    let mut ran = lines(&out);
    ran.sort();
    // `VirtualNetworkDelete::drop` then `delete_success`: the network as each left it, though
    // it is gone when the hooks run.
    for (line, (name, number, prev)) in ran.iter().zip([("DONE", 4, 3), ("LOCK_DELETE", 3, 1)]) {
        let (state, b64) = line.split_once(' ').unwrap();
        assert_eq!(state, name);
        let xml = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap(),
        )
        .unwrap();
        assert!(xml.starts_with(&format!("<VNET><ID>{net}</ID>")), "{xml}");
        assert!(
            xml.contains(&format!(
                "<STATE>{number}</STATE><PREV_STATE>{prev}</PREV_STATE>"
            )),
            "{xml}"
        );
    }
}
