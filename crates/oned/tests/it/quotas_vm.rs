//! The quota leftovers of issue 13 and `onetemplate instantiate`'s options (issue 14): the VM
//! quota's SYSTEM_DISK_SIZE (volatile and non-persistent image disks, charged at allocate and
//! attach, freed at detach and terminate), reservations counted in the LEASES quota of their
//! parent network, `oneuser batchquota` / `defaultquota`, and the extra template the
//! instantiate options make.

use cli::objects::Kind;
use cli::Client;
use xmlrpc::Value;

use crate::zone::{
    allocate, let_others_use, one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE,
};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

fn quota(c: &Client, method: &str, id: i64, text: &str) {
    c.call(method, vec![Value::Int(id as i32), s(text)])
        .unwrap();
}

/// What user `uid` shows as used of `metric`.
fn used(c: &Client, uid: i64, metric: &str) -> String {
    let body = info(c, "one.user.info", uid as i32);
    body.split(&format!("<{metric}_USED><![CDATA["))
        .nth(1)
        .and_then(|r| r.split("]]>").next())
        .unwrap_or("")
        .to_string()
}

fn vm_state(c: &Client, vm: i32) -> (bool, bool) {
    let body = info(c, "one.vm.info", vm);
    (
        body.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"),
        body.contains("<STATE>6</STATE>"),
    )
}

#[test]
fn system_disk_size_is_charged_at_allocate_and_attach_and_freed_at_detach_and_terminate() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let alice = allocate(&admin, "alice").unwrap();
    // Alice writes through a follower (once it knows her) and reads on the leader.
    zone.wait_caught_up();
    let w = zone.servers[(leader + 1) % 3].client_as("alice", "pw-alice");
    let c = zone.servers[leader].client_as("alice", "pw-alice");
    ok(
        &admin,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    quota(
        &admin,
        "one.user.quota",
        alice,
        "VM = [ SYSTEM_DISK_SIZE = 100 ]",
    );
    let vm = ok(
        &w,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 60 ]")],
    );
    assert_eq!(used(&c, alice, "SYSTEM_DISK_SIZE"), "60");
    let (code, msg) = one_error(w.call(
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 50 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.allocate] User [{alice}] : user [{alice}] limit of 100 reached for SYSTEM_DISK_SIZE quota in VM."
            )
            .as_str()
        )
    );

    zone.wait_until(DEADLINE, "the VM runs", || vm_state(&c, vm).0);
    let (code, msg) = one_error(w.call(
        "one.vm.attach",
        vec![Value::Int(vm), s("DISK = [ TYPE = fs, SIZE = 50 ]")],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.ends_with(&format!(
            "user [{alice}] limit of 100 reached for SYSTEM_DISK_SIZE quota in VM."
        )),
        "{msg}"
    );
    ok(
        &w,
        "one.vm.attach",
        vec![Value::Int(vm), s("DISK = [ TYPE = fs, SIZE = 40 ]")],
    );
    assert_eq!(used(&c, alice, "SYSTEM_DISK_SIZE"), "100");
    zone.wait_until(DEADLINE, "the disk is plugged", || vm_state(&c, vm).0);
    ok(&w, "one.vm.detach", vec![Value::Int(vm), Value::Int(1)]);
    assert_eq!(used(&c, alice, "SYSTEM_DISK_SIZE"), "60");
    zone.wait_until(DEADLINE, "the disk is unplugged", || vm_state(&c, vm).0);

    w.call("one.vm.action", vec![s("terminate-hard"), Value::Int(vm)])
        .unwrap();
    zone.wait_until(DEADLINE, "the VM is done", || vm_state(&c, vm).1);
    assert_eq!(used(&c, alice, "SYSTEM_DISK_SIZE"), "0");
    // Every server counts it from its own VMs.
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} shows the use"), || {
            used(&c, alice, "SYSTEM_DISK_SIZE") == "0"
        });
    }
    // A non-persistent image's disk is cloned into the system datastore: it counts too.
    let image = ok(
        &admin,
        "one.image.allocate",
        vec![
            s("NAME = base\nTYPE = DATABLOCK\nSIZE = 120"),
            Value::Int(1),
        ],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&admin, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let_others_use(&admin, "image", image);
    let (code, msg) = one_error(w.call(
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]"
        ))],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(msg.contains("SYSTEM_DISK_SIZE"), "{msg}");
}

#[test]
fn reservations_count_in_the_leases_quota_of_their_parent() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let alice = allocate(&admin, "alice").unwrap();
    // A follower authenticates from its own copy: it must have applied her first.
    zone.wait_caught_up();
    let w = zone.servers[(leader + 1) % 3].client_as("alice", "pw-alice");
    let c = zone.servers[leader].client_as("alice", "pw-alice");
    let vn = ok(
        &admin,
        "one.vn.allocate",
        vec![s(
            "NAME = pub\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.1.0.1, SIZE = 10 ]",
        )],
    );
    zone.wait_until(DEADLINE, "the network is READY", || {
        info(&admin, "one.vn.info", vn).contains("<STATE>1</STATE>")
    });
    let_others_use(&admin, "vn", vn);
    quota(
        &admin,
        "one.user.quota",
        alice,
        &format!("NETWORK = [ ID = {vn}, LEASES = 3 ]"),
    );
    let res = ok(
        &w,
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 2\nNAME = mine")],
    );
    let leases = || used(&c, alice, "LEASES");
    assert_eq!(leases(), "2");
    let (code, msg) = one_error(w.call(
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 2\nNAME = more")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.vn.reserve] User [{alice}] : user [{alice}] limit of 3 reached for LEASES quota in NETWORK with ID: {vn}."
            )
            .as_str()
        )
    );
    // Added to the reservation she owns: charged to her.
    ok(
        &w,
        "one.vn.reserve",
        vec![Value::Int(vn), s(&format!("SIZE = 1\nNETWORK_ID = {res}"))],
    );
    assert_eq!(leases(), "3");
    // Deleting the reservation gives the addresses back, and the quota with them.
    zone.wait_until(DEADLINE, "the reservation is READY", || {
        info(&c, "one.vn.info", res).contains("<STATE>1</STATE>")
    });
    ok(&w, "one.vn.delete", vec![Value::Int(res)]);
    zone.wait_until(DEADLINE, "the reservation is gone", || {
        let body = info(&c, "one.user.info", alice as i32);
        !body.contains("<LEASES_USED><![CDATA[3]]>")
    });
    assert_eq!(leases(), "0");
}

#[test]
fn batchquota_and_defaultquota_set_limits_from_a_file() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    let alice = allocate(&admin, "alice").unwrap();
    let bob = allocate(&admin, "bob").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.tmpl");
    std::fs::write(&file, "VM = [ VMS = 4, SYSTEM_DISK_SIZE = 1024 ]").unwrap();
    let path = file.to_str().unwrap();
    server
        .cli(Kind::User, &["batchquota", "alice,bob", path])
        .ok();
    for uid in [alice, bob] {
        let body = info(&admin, "one.user.info", uid as i32);
        assert!(body.contains("<VMS><![CDATA[4]]></VMS>"), "{body}");
        assert!(
            body.contains("<SYSTEM_DISK_SIZE><![CDATA[1024]]></SYSTEM_DISK_SIZE>"),
            "{body}"
        );
    }
    // The entries the batch does not name stay as they were.
    quota(
        &admin,
        "one.user.quota",
        alice,
        "DATASTORE = [ ID = 1, IMAGES = 2 ]",
    );
    std::fs::write(&file, "VM = [ VMS = 5 ]").unwrap();
    server
        .cli(
            Kind::User,
            &["batchquota", &format!("{alice}..{bob}"), path],
        )
        .ok();
    let body = info(&admin, "one.user.info", alice as i32);
    assert!(body.contains("<VMS><![CDATA[5]]></VMS>"), "{body}");
    assert!(body.contains("<IMAGES><![CDATA[2]]></IMAGES>"), "{body}");
    // defaultquota, and batchquota on groups.
    std::fs::write(&file, "VM = [ RUNNING_VMS = 9 ]").unwrap();
    server.cli(Kind::User, &["defaultquota", path]).ok();
    assert!(admin
        .call_xml("one.userquota.info", vec![])
        .unwrap()
        .contains("<RUNNING_VMS><![CDATA[9]]></RUNNING_VMS>"));
    server.cli(Kind::Group, &["batchquota", "users", path]).ok();
    assert!(info(&admin, "one.group.info", 1).contains("<RUNNING_VMS><![CDATA[9]]></RUNNING_VMS>"));
    // A refusal for one id is reported; the command fails.
    let run = server.cli(Kind::User, &["batchquota", "0", path]);
    assert_ne!(run.code, 0, "{}", run.out);
    assert!(
        run.err.contains("Cannot set quotas for oneadmin user"),
        "{}",
        run.err
    );
}

#[test]
fn template_instantiate_builds_the_extra_template_from_its_options() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    let tid = ok(
        &admin,
        "one.template.allocate",
        vec![s("NAME = small\nCPU = 1\nMEMORY = 64")],
    );
    let vn = ok(
        &admin,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.2.0.1, SIZE = 8 ]",
        )],
    );
    zone.wait_until(DEADLINE, "the network is READY", || {
        info(&admin, "one.vn.info", vn).contains("<STATE>1</STATE>")
    });
    let image = ok(
        &admin,
        "one.image.allocate",
        vec![s("NAME = data\nTYPE = DATABLOCK\nSIZE = 8"), Value::Int(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&admin, "one.image.info", image).contains("<STATE>1</STATE>")
    });

    let out = server
        .cli(
            Kind::Template,
            &[
                "instantiate",
                "small",
                "--multiple",
                "3",
                "--name",
                "web-%i",
                "--hold",
                "--persistent",
                "--cpu",
                "2",
                "--vcpu",
                "4",
                "--memory",
                "0.5g",
                "--nic",
                "lan",
                "--disk",
                &format!("{image}:target=vdb"),
            ],
        )
        .ok();
    let ids: Vec<i32> = out
        .lines()
        .map(|l| l.strip_prefix("VM ID: ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{out}");
    for (i, vm) in ids.iter().enumerate() {
        // Its persistent copies are being made (CLONING); then it is held.
        zone.wait_until(DEADLINE, "the VM is on hold", || {
            info(&admin, "one.vm.info", *vm).contains("<STATE>2</STATE>")
        });
        let body = info(&admin, "one.vm.info", *vm);
        assert!(body.contains(&format!("<NAME>web-{i}</NAME>")), "{body}");
        assert!(body.contains("<CPU><![CDATA[2]]></CPU>"), "{body}");
        assert!(body.contains("<VCPU><![CDATA[4]]></VCPU>"), "{body}");
        assert!(body.contains("<MEMORY><![CDATA[512]]></MEMORY>"), "{body}");
        assert!(
            body.contains("<NETWORK><![CDATA[lan]]></NETWORK>"),
            "{body}"
        );
        assert!(body.contains("<TARGET><![CDATA[vdb]]></TARGET>"), "{body}");
        // --persistent: the disk is the private copy's persistent copy of the image.
        assert!(
            body.contains(&format!("<IMAGE><![CDATA[web-{i}-disk-0]]></IMAGE>")),
            "{body}"
        );
        assert!(
            body.contains("<PERSISTENT><![CDATA[YES]]></PERSISTENT>"),
            "{body}"
        );
    }
    // --prefix numbers from after its leading zeros.
    let out = server
        .cli(
            Kind::Template,
            &[
                "instantiate",
                &tid.to_string(),
                "-m",
                "2",
                "--name",
                "db-%i",
                "--prefix",
                "007",
            ],
        )
        .ok();
    let names: Vec<String> = out
        .lines()
        .map(|l| {
            let vm: i32 = l.strip_prefix("VM ID: ").unwrap().parse().unwrap();
            let body = info(&admin, "one.vm.info", vm);
            body.split("<NAME>")
                .nth(1)
                .unwrap()
                .split("</NAME>")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["db-007", "db-008"]);

    // A file and template options exclude each other; bad values are refused before any call.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.tmpl");
    std::fs::write(&file, "MEMORY = 96").unwrap();
    let run = server.cli(
        Kind::Template,
        &[
            "instantiate",
            "small",
            file.to_str().unwrap(),
            "--cpu",
            "1",
            "--memory",
            "1",
        ],
    );
    assert_eq!(run.code, 255);
    assert!(
        run.err.contains(
            "You cannot pass template on STDIN and use template creation options, conflicting options: cpu, memory."
        ),
        "{}",
        run.err
    );
    let run = server.cli(
        Kind::Template,
        &["instantiate", "small", "--memory", "lots"],
    );
    assert_eq!(run.code, 255);
    assert!(run.err.contains("Memory value malformed"), "{}", run.err);
    // The file is the extra template.
    let out = server
        .cli(
            Kind::Template,
            &["instantiate", "small", file.to_str().unwrap()],
        )
        .ok();
    let vm: i32 = out.trim().strip_prefix("VM ID: ").unwrap().parse().unwrap();
    assert!(info(&admin, "one.vm.info", vm).contains("<MEMORY><![CDATA[96]]></MEMORY>"));
    // A refusal stops the series: alice may not use the template.
    allocate(&admin, "alice").unwrap();
    let run = server.cli_as(
        Kind::Template,
        "alice",
        "pw-alice",
        &["instantiate", &tid.to_string(), "-m", "2"],
    );
    assert_eq!(run.code, 255, "{}", run.out);
    assert!(run.out.is_empty(), "{}", run.out);
}

/// `QUOTA_VM_ATTRIBUTE = "VCPU"`: VCPU and RUNNING_VCPU are VM quota metrics, read from the
/// VMs' templates (or user templates) where each change is applied, on every server.
#[test]
fn quota_vm_attribute_counts_a_generic_attribute_of_the_vms() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf
            .push_str("QUOTA_VM_ATTRIBUTE = \"VCPU\"\nQUOTA_VM_ATTRIBUTE = \"CPU\"\n");
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let alice = allocate(&admin, "alice").unwrap();
    // A follower authenticates from its own copy: it must have applied her first.
    zone.wait_caught_up();
    let w = zone.servers[(leader + 1) % 3].client_as("alice", "pw-alice");
    let c = zone.servers[leader].client_as("alice", "pw-alice");
    quota(&admin, "one.user.quota", alice, "VM = [ VCPU = 6 ]");
    // A generic metric is a restricted VM attribute (`Nebula::start` adds it to
    // VM_RESTRICTED_ATTR): alice cannot name it, but instantiates templates that do.
    let (code, msg) = one_error(w.call(
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32\nVCPU = 1"), Value::Bool(true)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.allocate] User [{alice}] : VM Template includes a restricted attribute VCPU."
            )
            .as_str()
        )
    );
    let config = admin.call_xml("one.system.config", vec![]).unwrap();
    assert!(
        config.contains("<VM_RESTRICTED_ATTR><![CDATA[VCPU]]></VM_RESTRICTED_ATTR>"),
        "{config}"
    );
    let templates: Vec<i32> = (0..=4)
        .map(|vcpu| {
            let t = ok(
                &admin,
                "one.template.allocate",
                vec![s(&format!(
                    "NAME = t{vcpu}\nCPU = 0.1\nMEMORY = 32\nVCPU = {vcpu}"
                ))],
            );
            admin
                .call(
                    "one.template.chown",
                    vec![Value::Int(t), Value::Int(alice as i32), Value::Int(-1)],
                )
                .unwrap();
            t
        })
        .collect();
    zone.wait_caught_up();
    let vm = |vcpu: i32| {
        w.call(
            "one.template.instantiate",
            vec![
                Value::Int(templates[vcpu as usize]),
                s(""),
                Value::Bool(true),
                s(""),
                Value::Bool(false),
            ],
        )
    };
    let first = vm(4).unwrap().as_i64().unwrap() as i32;
    assert_eq!(used(&c, alice, "VCPU"), "4");
    assert_eq!(used(&c, alice, "RUNNING_VCPU"), "4");
    let body = info(&c, "one.user.info", alice as i32);
    assert!(
        body.contains("<VCPU><![CDATA[6]]></VCPU><VCPU_USED><![CDATA[4]]></VCPU_USED>"),
        "{body}"
    );
    let (code, msg) = one_error(vm(3));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.template.instantiate] User [{alice}] : user [{alice}] limit of 6 reached for VCPU quota in VM."
            )
            .as_str()
        )
    );
    vm(2).unwrap();
    // The defaults limit it too, and a VM that ends frees it.
    quota(&admin, "one.user.quota", alice, "VM = [ VCPU = -1 ]");
    admin
        .call("one.userquota.update", vec![s("VM = [ RUNNING_VCPU = 7 ]")])
        .unwrap();
    let (code, msg) = one_error(vm(2));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.ends_with("limit of 7 reached for RUNNING_VCPU quota in VM."),
        "{msg}"
    );
    w.call("one.vm.action", vec![s("terminate"), Value::Int(first)])
        .unwrap();
    vm(2).unwrap();
    // Pools show it where a limit names it; a fixed metric named again (CPU) is no generic one.
    quota(&admin, "one.user.quota", alice, "VM = [ VCPU = 10 ]");
    let pool = admin.call_xml("one.userpool.info", vec![]).unwrap();
    assert!(
        pool.contains("<VCPU><![CDATA[10]]></VCPU><VCPU_USED><![CDATA[4]]></VCPU_USED>"),
        "{pool}"
    );
    assert!(
        pool.contains("<RUNNING_VCPU><![CDATA[7]]></RUNNING_VCPU><RUNNING_VCPU_USED><![CDATA[0]]>"),
        "{pool}"
    );
    let body = info(&c, "one.user.info", alice as i32);
    // Once in hers, once in the defaults.
    assert_eq!(body.matches("<CPU_USED>").count(), 2, "{body}");
}

/// `VirtualMachineAttach` and `VirtualMachineAttachNic` weigh the owner's quotas before
/// `DispatchManager` looks at the VM's state: a suspended VM over its quota is refused for the
/// quota; within it, for its state.
#[test]
fn attach_and_attachnic_weigh_the_quotas_before_the_state() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let alice = allocate(&admin, "alice").unwrap();
    let c = zone.servers[0].client_as("alice", "pw-alice");
    ok(
        &admin,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let net = ok(
        &admin,
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 8 ]"),
            Value::Int(-1),
        ],
    );
    let_others_use(&admin, "vn", net);
    quota(
        &admin,
        "one.user.quota",
        alice,
        &format!("VM = [ SYSTEM_DISK_SIZE = 100 ]\nNETWORK = [ ID = {net}, LEASES = 1 ]"),
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 60 ]\nNIC = [ NETWORK_ID = {net} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the VM runs", || vm_state(&c, vm).0);
    c.call("one.vm.action", vec![s("suspend"), Value::Int(vm)])
        .unwrap();
    zone.wait_until(DEADLINE, "the VM is suspended", || {
        info(&c, "one.vm.info", vm).contains("<STATE>5</STATE>")
    });
    let quota_says = |what: &str| format!("User [{alice}] : user [{alice}] limit of {what}");
    let (code, msg) = one_error(c.call(
        "one.vm.attach",
        vec![Value::Int(vm), s("DISK = [ TYPE = fs, SIZE = 50 ]")],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.contains(&quota_says("100 reached for SYSTEM_DISK_SIZE")),
        "{msg}"
    );
    let (code, msg) = one_error(c.call(
        "one.vm.attachnic",
        vec![
            Value::Int(vm),
            s("NIC = [ NETWORK = lan, NETWORK_UNAME = oneadmin ]"),
        ],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(msg.contains(&quota_says("1 reached for LEASES")), "{msg}");
    // A negative MEMORY or CPU is the quota's refusal for a user (`QuotaVirtualMachine::check`
    // runs before `VirtualMachine::insert`), insert's for oneadmin.
    for (text, says) in [
        (
            "CPU = 1\nMEMORY = -5",
            "MEMORY attribute must be a positive integer value",
        ),
        (
            "CPU = -0.5\nMEMORY = 5",
            "CPU attribute must be a positive float or integer value",
        ),
    ] {
        assert_eq!(
            one_error(c.call("one.vm.allocate", vec![s(text)])),
            (
                AUTHORIZATION,
                format!("[one.vm.allocate] User [{alice}] : user [{alice}] {says}.")
            )
        );
        assert_eq!(
            one_error(admin.call("one.vm.allocate", vec![s(text)])),
            (0x2000, format!("[one.vm.allocate] {says}."))
        );
    }
    // Within the quotas, the state refuses.
    let (code, msg) = one_error(c.call(
        "one.vm.attach",
        vec![Value::Int(vm), s("DISK = [ TYPE = fs, SIZE = 10 ]")],
    ));
    assert_eq!(code, ACTION_CODE, "{msg}");
    assert!(msg.contains("wrong state"), "{msg}");
}

/// `recover --recreate` of a STOPPED VM counts it as running again, checked by
/// `Quotas::vm_check`, which words its refusal `User [u] ...` (ACTION).
#[test]
fn a_recreated_vm_is_weighed_as_quotas_vm_check_words_it() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let alice = allocate(&admin, "alice").unwrap();
    let c = zone.servers[0].client_as("alice", "pw-alice");
    ok(
        &admin,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let runs = |vm: i32| move |c: &Client| vm_state(c, vm).0;
    let stopped = ok(&c, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 8")]);
    zone.wait_until(DEADLINE, "the first VM runs", || runs(stopped)(&c));
    c.call("one.vm.action", vec![s("stop"), Value::Int(stopped)])
        .unwrap();
    zone.wait_until(DEADLINE, "the first VM is STOPPED", || {
        info(&c, "one.vm.info", stopped).contains("<STATE>4</STATE>")
    });
    quota(&admin, "one.user.quota", alice, "VM = [ RUNNING_VMS = 1 ]");
    let second = ok(&c, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 8")]);
    zone.wait_until(DEADLINE, "the second VM runs", || runs(second)(&c));
    assert_eq!(
        one_error(admin.call("one.vm.recover", vec![Value::Int(stopped), Value::Int(4)])),
        (
            ACTION_CODE,
            format!(
                "[one.vm.recover] User [{alice}] limit of 1 reached for RUNNING_VMS quota in VM"
            )
        )
    );
}

#[test]
fn an_exceeded_vm_quota_is_the_refusal_before_the_images_and_networks() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let alice = allocate(&admin, "alice").unwrap();
    let c = zone.servers[0].client_as("alice", "pw-alice");
    quota(&admin, "one.user.quota", alice, "VM = [ VMS = 1 ]");
    ok(&c, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 8")]);
    let limit = format!(
        "[one.vm.allocate] User [{alice}] : user [{alice}] limit of 1 reached for VMS quota in VM."
    );
    // `allocate_authorization` weighs the quota before `VirtualMachine::insert` looks for the
    // image or the network.
    for extra in [
        "DISK = [ IMAGE = \"missing\" ]",
        "NIC = [ NETWORK = \"missing\" ]",
    ] {
        let text = format!("CPU = 0.1\nMEMORY = 8\n{extra}");
        assert_eq!(
            one_error(c.call("one.vm.allocate", vec![s(&text)])),
            (AUTHORIZATION, limit.clone()),
            "{extra}"
        );
    }
    // Under the limit, the image's refusal is the answer.
    quota(&admin, "one.user.quota", alice, "VM = [ VMS = 2 ]");
    let (code, msg) = one_error(c.call(
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 8\nDISK = [ IMAGE = \"missing\" ]")],
    ));
    assert_ne!(code, AUTHORIZATION, "{msg}");
    assert!(!msg.contains("limit of"), "{msg}");
}

/// `one.vm.chown` weighs everything the VM counts for against the new owner's quotas, as
/// `RequestManagerChown::get_and_quota` does with `Quotas::VIRTUALMACHINE`: its leases, then
/// the VM, then its images; a reservation's `one.vn.chown` weighs its addresses in the parent
/// network's LEASES. Nothing moves when one is exceeded.
#[test]
fn chown_weighs_the_new_owners_leases_images_and_reservations() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let alice = allocate(&admin, "alice").unwrap();
    let image = crate::vm_disks::ready_image(&zone, &admin, "base");
    let net = ok(
        &admin,
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 8 ]"),
            Value::Int(-1),
        ],
    );
    let vm = ok(
        &admin,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]\nNIC = [ NETWORK_ID = {net} ]\nNIC = [ NETWORK_ID = {net} ]"
        ))],
    );
    let chown = |what: &str, id: i32| {
        admin.call(
            what,
            vec![Value::Int(id), Value::Int(alice as i32), Value::Int(-1)],
        )
    };
    let refusal = |what: &str, id: i32| {
        let (code, msg) = one_error(chown(what, id));
        assert_eq!(code, AUTHORIZATION, "{msg}");
        msg
    };
    let refused = |what: &str| format!("[one.vm.chown] User [0] : user [{alice}] limit of {what}");
    let owner = || info(&admin, "one.vm.info", vm);
    let unmoved = "<UID>0</UID>";

    // Two NICs in the network: two leases.
    quota(
        &admin,
        "one.user.quota",
        alice,
        &format!("NETWORK = [ ID = {net}, LEASES = 1 ]\nIMAGE = [ ID = {image}, RVMS = 0 ]"),
    );
    assert_eq!(
        refusal("one.vm.chown", vm),
        format!(
            "{} in NETWORK with ID: {net}.",
            refused("1 reached for LEASES quota")
        )
    );
    assert!(owner().contains(unmoved));
    // The leases fit; the VM entry comes before the images.
    quota(
        &admin,
        "one.user.quota",
        alice,
        &format!("NETWORK = [ ID = {net}, LEASES = 2 ]\nVM = [ VMS = 0 ]"),
    );
    assert_eq!(
        refusal("one.vm.chown", vm),
        format!("{} in VM.", refused("0 reached for VMS quota"))
    );
    quota(&admin, "one.user.quota", alice, "VM = [ VMS = 1 ]");
    assert_eq!(
        refusal("one.vm.chown", vm),
        format!(
            "{} in IMAGE with ID: {image}.",
            refused("0 reached for RVMS quota")
        )
    );
    assert!(owner().contains(unmoved));
    // Within every quota the VM moves, and her usage with it.
    quota(
        &admin,
        "one.user.quota",
        alice,
        &format!("IMAGE = [ ID = {image}, RVMS = 1 ]"),
    );
    chown("one.vm.chown", vm).unwrap();
    assert!(owner().contains(&format!("<UID>{alice}</UID>")));
    assert_eq!(used(&admin, alice, "LEASES"), "2");
    assert_eq!(used(&admin, alice, "RVMS"), "1");

    // A reservation of 3 addresses counts 3 leases of its parent for its new owner.
    let res = ok(
        &admin,
        "one.vn.reserve",
        vec![Value::Int(net), s("SIZE = 3\nNAME = kept")],
    );
    assert_eq!(
        refusal("one.vn.chown", res),
        format!(
            "[one.vn.chown] User [0] : user [{alice}] limit of 2 reached for LEASES quota in NETWORK with ID: {net}."
        )
    );
    quota(
        &admin,
        "one.user.quota",
        alice,
        &format!("NETWORK = [ ID = {net}, LEASES = 5 ]"),
    );
    chown("one.vn.chown", res).unwrap();
    assert_eq!(used(&admin, alice, "LEASES"), "5");
}

/// `VirtualMachineUpdateTemplate`: a change of a generic quota attribute in a VM's user
/// template counts by its difference against the owner's quotas, refused as ACTION in the
/// quota's words before anything is written; `one.vm.chown` weighs the user template's too.
#[test]
fn a_user_template_update_weighs_its_generic_quota_difference() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf.push_str("QUOTA_VM_ATTRIBUTE = \"GPU\"\n");
        s.write_conf();
    };
    let zone = Zone::bootstrap_custom(1, None, Some(Box::new(setup)));
    let admin = zone.servers[0].client();
    let alice = allocate(&admin, "alice").unwrap();
    quota(&admin, "one.user.quota", alice, "VM = [ GPU = 3 ]");
    let vm = ok(
        &admin,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 16\nGPU = 4"), Value::Bool(true)],
    );
    let chown = || {
        admin.call(
            "one.vm.chown",
            vec![Value::Int(vm), Value::Int(alice as i32), Value::Int(-1)],
        )
    };
    let (code, msg) = one_error(chown());
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.ends_with("limit of 3 reached for GPU quota in VM."),
        "{msg}"
    );
    let update = |text: &str| {
        admin.call(
            "one.vm.update",
            vec![Value::Int(vm), s(text), Value::Int(1)],
        )
    };
    update("GPU = 1").unwrap();
    chown().unwrap();
    assert_eq!(used(&admin, alice, "GPU"), "1");
    assert_eq!(
        one_error(update("GPU = 5")),
        (
            ACTION_CODE,
            format!("[one.vm.update] user [{alice}] limit of 3 reached for GPU quota in VM")
        )
    );
    assert!(info(&admin, "one.vm.info", vm).contains("<GPU><![CDATA[1]]></GPU>"));
    update("GPU = 3").unwrap();
    assert_eq!(used(&admin, alice, "GPU"), "3");
}
