//! `onevm save` (the VM's template cloned with its disks saved as new images, as Ruby's
//! `save_as_template`) and the charter subcommands `create-chart`, `update-chart` and
//! `delete-chart`, run through a follower against a real zone.

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

fn in_state(c: &cli::Client, vm: i32, state: i32, lcm: i32) -> bool {
    info(c, "one.vm.info", vm).contains(&format!(
        "<STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE>"
    ))
}

/// A running VM instantiated from a template with an image disk, a volatile disk and a NIC.
fn running_vm(zone: &Zone, c: &cli::Client) -> (i32, i32) {
    ok(
        c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    ok(
        c,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 172.16.0.1, SIZE = 4 ]",
        )],
    );
    let image = ok(
        c,
        "one.image.allocate",
        vec![s("NAME = root\nTYPE = DATABLOCK\nSIZE = 16"), Value::Int(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let tid = ok(
        c,
        "one.template.allocate",
        vec![s("NAME = base\nCPU = 0.1\nMEMORY = 32\n\
             DISK = [ IMAGE = root ]\nDISK = [ TYPE = fs, SIZE = 10 ]\n\
             NIC = [ NETWORK = lan ]")],
    );
    let vm = ok(
        c,
        "one.template.instantiate",
        vec![
            Value::Int(tid),
            s("web"),
            Value::Bool(false),
            s(""),
            Value::Bool(false),
        ],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(c, vm, 3, 3));
    (vm, tid)
}

#[test]
fn onevm_save_clones_the_template_with_the_vm_s_disks_saved_as_images() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let follower = &zone.servers[(leader + 1) % 3];
    let (vm, tid) = running_vm(&zone, &c);
    let v = vm.to_string();

    // Running: refused, nothing made.
    let (code, _, err) = follower.cli(Kind::Vm, &["save", &v, "copy"]).parts();
    assert_eq!((code, err.trim()), (255, "VM must be POWEROFF"));

    ok(&c, "one.vm.action", vec![s("poweroff"), Value::Int(vm)]);
    // The CLI reads the VM's state through the follower: wait until it has it too.
    let fc = follower.client();
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&fc, vm, 8, 0));
    let out = follower
        .cli(Kind::Vm, &["save", &v, "copy", "--persistent"])
        .ok();
    let ntid: i32 = out
        .trim()
        .strip_prefix("Template ID: ")
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    assert_ne!(ntid, tid);
    let body = info(&c, "one.template.info", ntid);
    assert!(body.contains("<NAME>copy</NAME>"), "{body}");
    assert!(
        body.contains(&format!(
            "<SAVED_TEMPLATE_ID><![CDATA[{tid}]]></SAVED_TEMPLATE_ID>"
        )),
        "{body}"
    );
    assert!(body.contains("<CPU><![CDATA[0.1]]></CPU>"), "{body}");
    // The image disk is the saved copy, the volatile one is kept as it was, the NIC keeps
    // its network by name but not its address.
    let pool = c
        .call_xml(
            "one.imagepool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    let at = pool.find("<NAME>copy-disk-0</NAME>").expect(&pool);
    let id_at = pool[..at].rfind("<IMAGE><ID>").unwrap() + 11;
    let saved: i32 = pool[id_at..].split('<').next().unwrap().parse().unwrap();
    assert!(
        body.contains(&format!(
            "<DISK><IMAGE_ID><![CDATA[{saved}]]></IMAGE_ID></DISK>"
        )),
        "{body}"
    );
    assert!(body.contains("<TYPE><![CDATA[fs]]></TYPE>"), "{body}");
    assert!(
        body.contains("<NETWORK><![CDATA[lan]]></NETWORK>"),
        "{body}"
    );
    assert!(!body.contains("<IP>"), "{body}");
    zone.wait_until(DEADLINE, "the saved image is READY", || {
        let i = info(&c, "one.image.info", saved);
        i.contains("<STATE>1</STATE>") && i.contains("<PERSISTENT>1</PERSISTENT>")
    });
    // The new template instantiates.
    ok(
        &c,
        "one.template.instantiate",
        vec![
            Value::Int(ntid),
            s(""),
            Value::Bool(true),
            s(""),
            Value::Bool(false),
        ],
    );
}

#[test]
fn onevm_charters_are_scheduled_one_after_another_and_the_old_commands_warn() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let follower = &zone.servers[(leader + 1) % 3];
    let (vm, _) = running_vm(&zone, &c);
    let v = vm.to_string();
    let fc = follower.client();
    zone.wait_until(DEADLINE, "the follower has the VM", || {
        in_state(&fc, vm, 3, 3)
    });

    // No onevm.yaml in ONE_LOCATION: the shipped charters (a test runs in its own process).
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("ONE_LOCATION", dir.path());
    let out = follower.cli(Kind::Vm, &["create-chart", &v]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("VM {vm}: suspend scheduled after +")),
        "{out}"
    );
    assert!(lines[1].contains(": terminate scheduled after +"), "{out}");
    let after = |l: &str| -> i64 {
        l.split('+')
            .nth(1)
            .unwrap()
            .trim_end_matches("s from start")
            .parse()
            .unwrap()
    };
    assert_eq!(after(lines[1]) - after(lines[0]), 1_209_600, "{out}");
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<ACTION>suspend</ACTION>"), "{body}");
    assert!(body.contains("<ACTION>terminate</ACTION>"), "{body}");

    // A configured charter.
    std::fs::create_dir_all(dir.path().join("etc/cli")).unwrap();
    std::fs::write(
        dir.path().join("etc/cli/onevm.yaml"),
        "---\n:charters:\n  :poweroff:\n    :time: \"+600\"\n    :warning:\n      :time: 60\n",
    )
    .unwrap();
    let out = follower.cli(Kind::Vm, &["create-chart", &v]).ok();
    assert!(
        out.starts_with(&format!("VM {vm}: poweroff scheduled after +")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");

    // The deprecated names warn, then act as sched-update and sched-delete.
    let file = dir.path().join("sched.txt");
    std::fs::write(&file, "ACTION = \"hold\"\nTIME = \"+99999\"\n").unwrap();
    let out = follower
        .cli(Kind::Vm, &["update-chart", &v, "0", file.to_str().unwrap()])
        .ok();
    assert_eq!(
        out,
        "This command is deprecated, use instead:\n  $ onevm sched-update\n"
    );
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<ACTION>hold</ACTION>"), "{body}");
    let out = follower.cli(Kind::Vm, &["delete-chart", &v, "0"]).ok();
    assert_eq!(
        out,
        "This command is deprecated, use instead:\n  $ onevm sched-delete\n"
    );
    let body = info(&c, "one.vm.info", vm);
    assert!(!body.contains("<ACTION>hold</ACTION>"), "{body}");
    let (code, out, _) = follower.cli(Kind::Vm, &["delete-chart", &v, "0"]).parts();
    assert_eq!(code, 255, "{out}");
}
