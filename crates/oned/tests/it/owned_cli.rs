//! The subcommands `onevm` and `onetemplate` share with every owned family (`update`,
//! `rename`, `chgrp`, `chown`, `chmod`, `lock`, `unlock`), run through a follower against a
//! real zone, as OpenNebula's `OneHelper#perform_action(s)` runs them.

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, NO_EXISTS};

const ACTION: i32 = 0x800;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

#[test]
fn onevm_and_onetemplate_rename_chown_chmod_update_and_lock_their_objects() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let follower = &zone.servers[(leader + 1) % 3];
    let run = |kind: Kind, args: &[&str]| follower.cli(kind, args).ok();
    let alice = ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw"), s(""), Value::Array(vec![])],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.tpl");
    std::fs::write(&file, "NAME = small\nCPU = 0.1\nMEMORY = 32\n").unwrap();
    let file = file.to_str().unwrap();
    let extra = dir.path().join("extra.tpl");
    std::fs::write(&extra, "LABEL = \"blue\"\n").unwrap();
    let extra = extra.to_str().unwrap();

    // Templates.
    let tid = ok(
        &c,
        "one.template.allocate",
        vec![s(&std::fs::read_to_string(file).unwrap())],
    );
    let t = tid.to_string();
    run(Kind::Template, &["rename", &t, "medium"]);
    run(Kind::Template, &["chmod", &t, "640"]);
    run(Kind::Template, &["update", &t, extra, "--append"]);
    // alice by id: the follower may not have applied her yet.
    let a = alice.to_string();
    run(Kind::Template, &["chown", &t, &a, "users"]);
    run(Kind::Template, &["lock", &t, "--manage"]);
    let body = info(&c, "one.template.info", tid);
    assert!(body.contains("<NAME>medium</NAME>"), "{body}");
    assert!(body.contains(&format!("<UID>{alice}</UID>")), "{body}");
    assert!(
        body.contains("<GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M>"),
        "{body}"
    );
    assert!(body.contains("<LABEL><![CDATA[blue]]></LABEL>"), "{body}");
    assert!(body.contains("<MEMORY><![CDATA[32]]></MEMORY>"), "{body}");
    assert!(body.contains("<LOCK><LOCKED>2</LOCKED>"), "{body}");
    // A locked template refuses a rename, in OpenNebula's words, and the CLI exits 255.
    let (code, _, err) = follower
        .cli(Kind::Template, &["rename", &t, "large"])
        .parts();
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("locked"), "{err}");
    run(Kind::Template, &["unlock", &t]);
    run(Kind::Template, &["rename", &t, "large"]);
    assert!(info(&c, "one.template.info", tid).contains("<NAME>large</NAME>"));
    run(Kind::Template, &["delete", &t]);
    assert!(c
        .call_xml("one.template.info", vec![Value::Int(tid)])
        .is_err());

    // VMs.
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = app\nCPU = 0.1\nMEMORY = 32"), Value::Bool(true)],
    );
    let v = vm.to_string();
    run(Kind::Vm, &["rename", &v, "db"]);
    run(Kind::Vm, &["chmod", &v, "604"]);
    run(Kind::Vm, &["update", &v, extra, "--append"]);
    run(Kind::Vm, &["chgrp", &v, "users"]);
    run(Kind::Vm, &["chown", &v, &a]);
    run(Kind::Vm, &["lock", &v, "--admin"]);
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<NAME>db</NAME>"), "{body}");
    assert!(body.contains(&format!("<UID>{alice}</UID>")), "{body}");
    assert!(body.contains("<GNAME>users</GNAME>"), "{body}");
    assert!(body.contains("<OTHER_U>1</OTHER_U>"), "{body}");
    assert!(body.contains("LABEL"), "{body}");
    assert!(body.contains("<LOCK><LOCKED>3</LOCKED>"), "{body}");
    run(Kind::Vm, &["unlock", &v]);
    zone.wait_until(DEADLINE, "the follower sees the VM unlocked", || {
        follower
            .client()
            .call_xml("one.vm.info", vec![Value::Int(vm)])
            .is_ok_and(|b| !b.contains("<LOCK>"))
    });
    // A missing VM: refused, exit 255, the others of the list still done.
    let (code, _, err) = follower
        .cli(Kind::Vm, &["chmod", &format!("{v},999"), "600"])
        .parts();
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("999"), "{err}");
    assert!(info(&c, "one.vm.info", vm).contains("<OTHER_U>0</OTHER_U>"));
    // An action oned does not know: ACTION, after the VM was found and authorized.
    let (code, msg) = one_error(c.call("one.vm.action", vec![s("fly"), Value::Int(vm)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.action] Action \"fly\" is not supported")
    );
    let (code, _) = one_error(c.call("one.vm.action", vec![s("fly"), Value::Int(999)]));
    assert_eq!(code, NO_EXISTS);
}

#[test]
fn onehost_renames_updates_and_flushes_and_onevm_flags_vms_for_rescheduling() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let follower = &zone.servers[(leader + 1) % 3];
    let run = |kind: Kind, args: &[&str]| follower.cli(kind, args).ok();
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("rack.tpl");
    std::fs::write(&extra, "RACK = \"r1\"\n").unwrap();
    let extra = extra.to_str().unwrap();

    let hid = ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = app\nCPU = 0.1\nMEMORY = 32")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || {
        info(&c, "one.vm.info", vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
    });
    // By id after the rename: the follower may not have applied it yet when the next name is
    // looked up.
    let h = hid.to_string();
    run(Kind::Host, &["rename", "node", "rack1-node"]);
    run(Kind::Host, &["update", &h, extra, "--append"]);
    let body = info(&c, "one.host.info", hid);
    assert!(body.contains("<NAME>rack1-node</NAME>"), "{body}");
    assert!(body.contains("<RACK><![CDATA[r1]]></RACK>"), "{body}");
    assert!(body.contains("<HYPERVISOR>"), "{body}");

    let v = vm.to_string();
    run(Kind::Vm, &["resched", &v]);
    assert!(info(&c, "one.vm.info", vm).contains("<RESCHED>1</RESCHED>"));
    run(Kind::Vm, &["unresched", &v]);
    assert!(info(&c, "one.vm.info", vm).contains("<RESCHED>0</RESCHED>"));

    // flush: the host is disabled and its VMs flagged.
    run(Kind::Host, &["flush", &h]);
    assert!(info(&c, "one.host.info", hid).contains("<STATE>4</STATE>"));
    assert!(info(&c, "one.vm.info", vm).contains("<RESCHED>1</RESCHED>"));
    let (code, _, err) = follower.cli(Kind::Vm, &["resched", "999"]).parts();
    assert_eq!(code, 255, "{err}");

    // A host with room: the scheduler moves the flagged VM there and clears the flag.
    let spare = ok(
        &c,
        "one.host.allocate",
        vec![s("spare"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    zone.wait_until(DEADLINE, "the VM runs on the spare host, unflagged", || {
        let body = info(&c, "one.vm.info", vm);
        body.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
            && body.contains("<RESCHED>0</RESCHED>")
            && body
                .rsplit("<HISTORY>")
                .next()
                .is_some_and(|h| h.contains(&format!("<HID>{spare}</HID>")))
    });
}

/// A VM's BACKUP_CONFIG as `Backups::parse` keeps it: corrected at allocate, replaced by
/// `onevm backupmode` (as OpenNebula's CLI, a whole new config), merged by updateconf's append.
#[test]
fn backup_config_is_parsed_at_allocate_and_changed_by_backupmode_and_updateconf() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![
            s("NAME = b\nCPU = 0.1\nMEMORY = 32\n\
               BACKUP_CONFIG = [ KEEP_LAST = -3, FS_FREEZE = odd, MODE = increment ]"),
            Value::Bool(true),
        ],
    );
    let config = || {
        let body = info(&c, "one.vm.info", vm);
        body.split("<BACKUP_CONFIG>")
            .nth(1)
            .and_then(|r| r.split("</BACKUP_CONFIG>").next())
            .unwrap_or("")
            .replace("<![CDATA[", "")
            .replace("]]>", "")
    };
    assert_eq!(
        config(),
        "<BACKUP_VOLATILE>NO</BACKUP_VOLATILE><FS_FREEZE>NONE</FS_FREEZE>\
         <INCREMENTAL_BACKUP_ID>-1</INCREMENTAL_BACKUP_ID><INCREMENT_MODE>CBT</INCREMENT_MODE>\
         <KEEP_LAST>0</KEEP_LAST><LAST_INCREMENT_ID>-1</LAST_INCREMENT_ID><MODE>INCREMENT</MODE>"
    );
    let v = vm.to_string();
    zone.servers[0]
        .cli(Kind::Vm, &["backupmode", &v, "full"])
        .ok();
    assert_eq!(
        config(),
        "<BACKUP_VOLATILE>NO</BACKUP_VOLATILE><FS_FREEZE>NONE</FS_FREEZE>\
         <INCREMENTAL_BACKUP_ID>-1</INCREMENTAL_BACKUP_ID><INCREMENT_MODE>CBT</INCREMENT_MODE>\
         <LAST_INCREMENT_ID>-1</LAST_INCREMENT_ID><MODE>FULL</MODE>"
    );
    let (code, _, err) = zone.servers[0]
        .cli(Kind::Vm, &["backupmode", &v, "weekly"])
        .parts();
    assert_eq!(code, 255);
    assert!(
        err.contains("Invalid backup mode: weekly\nValid backup modes are: FULL,INCREMENT"),
        "{err}"
    );
    c.call(
        "one.vm.updateconf",
        vec![
            Value::Int(vm),
            s("BACKUP_CONFIG = [ KEEP_LAST = 4 ]"),
            Value::Int(1),
        ],
    )
    .unwrap();
    assert!(
        config().contains("<KEEP_LAST>4</KEEP_LAST>"),
        "{}",
        config()
    );
    assert!(config().contains("<MODE>FULL</MODE>"), "{}", config());
}

/// oned.conf's VM_*_OPERATIONS decide the right each VM operation needs: here poweroff needs
/// only USE and terminate ADMIN, against OpenNebula's default MANAGE for both.
#[test]
fn vm_operations_need_the_right_oned_conf_gives_them() {
    let setup = |_: usize, srv: &mut crate::zone::Server| {
        srv.extra_conf.push_str(
            "VM_USE_OPERATIONS = \"poweroff\"\nVM_ADMIN_OPERATIONS = \"terminate, migrate\"\n",
        );
        srv.write_conf();
    };
    let zone = Zone::bootstrap_custom(1, None, Some(Box::new(setup)));
    let c = zone.servers[0].client();
    ok(
        &c,
        "one.user.allocate",
        vec![s("carol"), s("pw"), s(""), Value::Array(vec![])],
    );
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = shared\nCPU = 0.1\nMEMORY = 32")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || {
        info(&c, "one.vm.info", vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
    });
    // Everyone may USE it; nobody else may MANAGE it.
    c.call(
        "one.vm.chmod",
        vec![
            Value::Int(vm),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(1),
            Value::Int(0),
            Value::Int(0),
        ],
    )
    .unwrap();
    let carol = zone.servers[0].client_as("carol", "pw");
    let (code, msg) = one_error(carol.call("one.vm.action", vec![s("terminate"), Value::Int(vm)]));
    assert_eq!(code, 0x200, "{msg}");
    assert!(msg.contains("ADMIN VM"), "{msg}");
    // The user's own lists come first: oneadmin makes poweroff an ADMIN operation for carol.
    let uid: i32 = carol
        .call_xml("one.user.info", vec![Value::Int(-1)])
        .unwrap()
        .split("<ID>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    c.call(
        "one.user.update",
        vec![
            Value::Int(uid),
            s("VM_ADMIN_OPERATIONS = \"poweroff\""),
            Value::Int(1),
        ],
    )
    .unwrap();
    let (code, msg) = one_error(carol.call("one.vm.action", vec![s("poweroff"), Value::Int(vm)]));
    assert_eq!(code, 0x200, "{msg}");
    c.call(
        "one.user.update",
        vec![Value::Int(uid), s("LABEL = \"x\""), Value::Int(0)],
    )
    .unwrap();
    carol
        .call("one.vm.action", vec![s("poweroff"), Value::Int(vm)])
        .unwrap();
    zone.wait_until(DEADLINE, "the VM is off", || {
        info(&c, "one.vm.info", vm).contains("<STATE>8</STATE>")
    });
}
