//! VM snapshots, disk snapshots, disk resize and disk save-as, called through a follower: each
//! leaves the VM in OpenNebula's transient state until the leader's dummy driver finishes it,
//! and is refused in the states and cases OpenNebula refuses it.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL};

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

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

fn in_state(c: &cli::Client, vm: i32, state: i32, lcm: i32) -> bool {
    info(c, "one.vm.info", vm).contains(&format!(
        "<STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE>"
    ))
}

/// A 3-server zone with a dummy host and a running VM with one disk of a 16 MB image: the
/// zone, the leader's index and the VM.
fn running_vm() -> (Zone, usize, i32) {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = ok(
        &c,
        "one.image.allocate",
        // qcow2: the local TM's ALLOW_ORPHANS = FORMAT denies orphans (a chain).
        vec![
            s("NAME = root\nTYPE = DATABLOCK\nSIZE = 16\nFORMAT = qcow2"),
            i(1),
        ],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(
            "CPU = 0.5\nMEMORY = 64\nDISK = [ IMAGE = root ]\nDISK = [ TYPE = fs, SIZE = 8 ]",
        )],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    (zone, leader, vm)
}

#[test]
fn system_snapshots_are_created_reverted_and_deleted_on_a_running_vm() {
    let (zone, leader, vm) = running_vm();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();

    assert_eq!(ok(&w, "one.vm.snapshotcreate", vec![i(vm), s("first")]), 0);
    zone.wait_until(DEADLINE, "the snapshot is taken", || in_state(&c, vm, 3, 3));
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<SNAPSHOT><HYPERVISOR_ID><![CDATA[dummy-snap]]></HYPERVISOR_ID><NAME><![CDATA[first]]></NAME><SNAPSHOT_ID><![CDATA[0]]></SNAPSHOT_ID><SYSTEM_DISK_SIZE><![CDATA[64]]></SYSTEM_DISK_SIZE><TIME>"),
        "{body}"
    );
    // An empty name is OpenNebula's `snapshot-<id>`.
    assert_eq!(ok(&w, "one.vm.snapshotcreate", vec![i(vm), s("")]), 1);
    zone.wait_until(DEADLINE, "the second snapshot", || in_state(&c, vm, 3, 3));
    assert!(info(&c, "one.vm.info", vm).contains("<NAME><![CDATA[snapshot-1]]></NAME>"));

    ok(&w, "one.vm.snapshotrevert", vec![i(vm), i(0)]);
    zone.wait_until(DEADLINE, "the revert is done", || in_state(&c, vm, 3, 3));
    let (code, msg) = one_error(w.call("one.vm.snapshotrevert", vec![i(vm), i(9)]));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!("[one.vm.snapshotrevert] Could not revert VM {vm} to snapshot 9, it does not exist.")
        )
    );
    ok(&w, "one.vm.snapshotdelete", vec![i(vm), i(1)]);
    zone.wait_until(DEADLINE, "the snapshot is gone", || {
        in_state(&c, vm, 3, 3) && !info(&c, "one.vm.info", vm).contains("snapshot-1")
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<NAME><![CDATA[first]]></NAME>"), "{body}");
    assert!(!body.contains("<ACTIVE>"), "{body}");

    // Only a running VM takes snapshots.
    ok(&c, "one.vm.action", vec![s("poweroff"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vm, 8, 0));
    // The dummy driver has no KEEP_SNAPSHOTS: the poweroff took them (`delete_snapshots`).
    let body = info(&c, "one.vm.info", vm);
    assert!(!body.contains("<SNAPSHOT>"), "{body}");
    let (code, msg) = one_error(w.call("one.vm.snapshotcreate", vec![i(vm), s("x")]));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!("[one.vm.snapshotcreate] Could not create a new snapshot for VM {vm}, wrong state POWEROFF.")
        )
    );
    let (code, msg) = one_error(w.call("one.vm.snapshotdelete", vec![i(vm), i(0)]));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!("[one.vm.snapshotdelete] Could not delete snapshot 0 for VM {vm}, wrong state POWEROFF.")
        )
    );
}

#[test]
fn disk_snapshots_form_a_chain_that_is_reverted_renamed_and_pruned() {
    let (zone, leader, vm) = running_vm();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();

    assert_eq!(
        ok(&w, "one.vm.disksnapshotcreate", vec![i(vm), i(0), s("a")]),
        0
    );
    zone.wait_until(DEADLINE, "the disk snapshot is taken", || {
        in_state(&c, vm, 3, 3)
    });
    assert_eq!(
        ok(&w, "one.vm.disksnapshotcreate", vec![i(vm), i(0), s("b")]),
        1
    );
    zone.wait_until(DEADLINE, "the second one", || in_state(&c, vm, 3, 3));
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("</HISTORY_RECORDS><SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS><CURRENT_BASE><![CDATA[-1]]></CURRENT_BASE><DISK_ID><![CDATA[0]]></DISK_ID><NEXT_SNAPSHOT><![CDATA[2]]></NEXT_SNAPSHOT><SNAPSHOT><CHILDREN><![CDATA[1]]></CHILDREN><DATE>"),
        "{body}"
    );
    assert!(
        body.contains("<SNAPSHOT><ACTIVE><![CDATA[YES]]></ACTIVE><DATE>"),
        "{body}"
    );
    assert!(
        body.contains("<DISK_SNAPSHOT_TOTAL_SIZE><![CDATA[32]]></DISK_SNAPSHOT_TOTAL_SIZE>"),
        "{body}"
    );
    assert!(!body.contains("ONEHA_"), "{body}");

    ok(
        &w,
        "one.vm.disksnapshotrename",
        vec![i(vm), i(0), i(1), s("renamed")],
    );
    assert!(info(&c, "one.vm.info", vm).contains("<NAME><![CDATA[renamed]]></NAME>"));

    // Refusals: a volatile disk, a missing disk, a revert while running.
    let (code, msg) = one_error(w.call("one.vm.disksnapshotcreate", vec![i(vm), i(1), s("v")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.disksnapshotcreate] Cannot make snapshots on volatile disks"
        )
    );
    let (code, msg) = one_error(w.call("one.vm.disksnapshotcreate", vec![i(vm), i(7), s("v")]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.vm.disksnapshotcreate] VM disk does not exist")
    );
    let (code, msg) = one_error(w.call("one.vm.disksnapshotrevert", vec![i(vm), i(0), i(0)]));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!("[one.vm.disksnapshotrevert] Could not revert to disk snapshot for VM {vm}, wrong state RUNNING.")
        )
    );

    // Powered off, the disk goes back to snapshot 0, which then cannot go (it has a child).
    ok(&c, "one.vm.action", vec![s("poweroff"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vm, 8, 0));
    ok(&w, "one.vm.disksnapshotrevert", vec![i(vm), i(0), i(0)]);
    zone.wait_until(DEADLINE, "the revert is done", || in_state(&c, vm, 8, 0));
    let (code, msg) = one_error(w.call("one.vm.disksnapshotdelete", vec![i(vm), i(0), i(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.disksnapshotdelete] Cannot delete the active snapshot with children"
        )
    );
    ok(&w, "one.vm.disksnapshotdelete", vec![i(vm), i(0), i(1)]);
    zone.wait_until(DEADLINE, "snapshot 1 is gone", || {
        in_state(&c, vm, 8, 0) && !info(&c, "one.vm.info", vm).contains("renamed")
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<SNAPSHOT><ACTIVE><![CDATA[YES]]></ACTIVE><DATE>"),
        "{body}"
    );
    assert!(
        body.contains("<DISK_SNAPSHOT_TOTAL_SIZE><![CDATA[16]]></DISK_SNAPSHOT_TOTAL_SIZE>"),
        "{body}"
    );
}

#[test]
fn a_disk_grows_and_is_saved_as_a_new_image() {
    let (zone, leader, vm) = running_vm();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();

    assert_eq!(ok(&w, "one.vm.diskresize", vec![i(vm), i(0), s("32")]), 0);
    zone.wait_until(DEADLINE, "the disk is resized", || in_state(&c, vm, 3, 3));
    let body = info(&c, "one.vm.info", vm);
    assert!(body.contains("<SIZE><![CDATA[32]]></SIZE>"), "{body}");
    assert!(!body.contains("SIZE_PREV"), "{body}");
    let (code, msg) = one_error(w.call("one.vm.diskresize", vec![i(vm), i(0), s("8")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.diskresize] New disk size has to be greater than current one"
        )
    );
    let (code, msg) = one_error(w.call("one.vm.diskresize", vec![i(vm), i(0), s("big")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.diskresize] Disk SIZE is not a valid integer"
        )
    );

    let image = ok(
        &w,
        "one.vm.disksaveas",
        vec![i(vm), i(0), s("saved"), s(""), i(-1)],
    );
    zone.wait_until(DEADLINE, "the saved image is READY", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    zone.wait_until(DEADLINE, "the VM runs again", || in_state(&c, vm, 3, 3));
    let body = info(&c, "one.image.info", image);
    for attr in [
        "<NAME>saved</NAME>".to_string(),
        "<SIZE>32</SIZE>".to_string(),
        format!("<SAVED_VM_ID><![CDATA[{vm}]]></SAVED_VM_ID>"),
        "<SAVED_DISK_ID><![CDATA[0]]></SAVED_DISK_ID>".to_string(),
    ] {
        assert!(body.contains(&attr), "{attr} in {body}");
    }
    let (code, msg) = one_error(w.call(
        "one.vm.disksaveas",
        vec![i(vm), i(1), s("volatile"), s(""), i(-1)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vm.disksaveas] Cannot use DISK. DISK does not have a valid IMAGE_ID."
        )
    );
    let (code, msg) = one_error(w.call(
        "one.vm.disksaveas",
        vec![i(vm), i(0), s("nosnap"), s(""), i(4)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vm.disksaveas] Cannot use DISK. Snapshot does not exist."
        )
    );
}

#[test]
fn onevm_takes_snapshots_resizes_and_saves_disks_by_id_or_name() {
    use cli::objects::Kind;
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let onevm = |args: &[&str]| zone.servers[0].cli(Kind::Vm, args).ok();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = root\nTYPE = DATABLOCK\nSIZE = 16"), i(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(
            "NAME = app\nCPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE = root ]",
        )],
    );
    let running = || in_state(&c, vm, 3, 3);
    zone.wait_until(DEADLINE, "the VM runs", running);

    assert_eq!(onevm(&["snapshot-create", "app", "before"]), "");
    zone.wait_until(DEADLINE, "the snapshot is taken", running);
    let listed = onevm(&["snapshot-list", "app"]);
    assert!(
        listed.starts_with("SNAPSHOTS\n  ID         TIME NAME"),
        "{listed}"
    );
    assert!(listed.contains(" before "), "{listed}");
    onevm(&["snapshot-revert", "app", "before"]);
    zone.wait_until(DEADLINE, "the revert is done", running);
    onevm(&["snapshot-delete", "app", "0"]);
    zone.wait_until(DEADLINE, "the snapshot is gone", || {
        running() && !info(&c, "one.vm.info", vm).contains("before")
    });

    onevm(&["disk-snapshot-create", "app", "0", "s0"]);
    zone.wait_until(DEADLINE, "the disk snapshot is taken", running);
    onevm(&["disk-snapshot-rename", "app", "0", "0", "first"]);
    let listed = onevm(&["disk-snapshot-list", "app", "0"]);
    assert!(
        listed.starts_with("VM DISK SNAPSHOTS\nAC  ID DISK PARENT"),
        "{listed}"
    );
    assert!(listed.contains(" first"), "{listed}");
    assert!(info(&c, "one.vm.info", vm).contains("<NAME><![CDATA[first]]></NAME>"));
    onevm(&["disk-resize", "app", "0", "1G"]);
    zone.wait_until(DEADLINE, "the disk is resized", running);
    assert!(info(&c, "one.vm.info", vm).contains("<SIZE><![CDATA[1024]]></SIZE>"));
    let out = onevm(&["disk-saveas", "app", "0", "copy", "-s", "first"]);
    assert!(out.starts_with("Image ID: "), "{out}");
    zone.wait_until(DEADLINE, "the VM runs again", running);
    onevm(&["disk-snapshot-delete", "app", "0", "first"]);
    // The disk keeps its (empty) set and next id, as `VirtualMachineDisk` keeps `Snapshots`.
    zone.wait_until(DEADLINE, "the disk snapshot is gone", || {
        running() && !info(&c, "one.vm.info", vm).contains("<SNAPSHOT>")
    });
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<NEXT_SNAPSHOT><![CDATA[1]]></NEXT_SNAPSHOT></SNAPSHOTS>")
            && body.contains("<DISK_SNAPSHOT_TOTAL_SIZE><![CDATA[0]]></DISK_SNAPSHOT_TOTAL_SIZE>"),
        "{body}"
    );

    let refused = zone.servers[0].cli(Kind::Vm, &["disk-resize", "app", "0", "10"]);
    assert_eq!(refused.code, 255, "{}{}", refused.out, refused.err);
    assert!(
        refused
            .err
            .contains("New size '10' must be larger than current size '1024'"),
        "{}",
        refused.err
    );
    let refused = zone.servers[0].cli(Kind::Vm, &["disk-snapshot-revert", "app", "0", "0"]);
    assert_eq!(refused.code, 255, "{}{}", refused.out, refused.err);
    assert!(
        refused.err.contains("wrong state RUNNING."),
        "{}",
        refused.err
    );
}

/// On the shipped datastores (TM local, `ALLOW_ORPHANS = FORMAT`) a raw disk's snapshots are
/// orphans (`ALLOW_ORPHANS` YES): no parents, and the active one goes even with others left.
#[test]
fn a_raw_disks_snapshots_are_orphans_on_the_default_datastore() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = raw\nTYPE = DATABLOCK\nSIZE = 16"), i(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.5\nMEMORY = 64\nDISK = [ IMAGE_ID = {image} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    for (name, id) in [("a", 0), ("b", 1)] {
        assert_eq!(
            ok(&c, "one.vm.disksnapshotcreate", vec![i(vm), i(0), s(name)]),
            id
        );
        zone.wait_until(DEADLINE, "the snapshot is taken", || in_state(&c, vm, 3, 3));
    }
    let body = info(&c, "one.vm.info", vm);
    assert!(
        body.contains("<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[YES]]></ALLOW_ORPHANS>"),
        "{body}"
    );
    assert!(!body.contains("<CHILDREN>"), "{body}");
    // The active snapshot (1) goes, though 0 is older.
    ok(&c, "one.vm.disksnapshotdelete", vec![i(vm), i(0), i(1)]);
    zone.wait_until(DEADLINE, "snapshot 1 is gone", || {
        in_state(&c, vm, 3, 3) && !info(&c, "one.vm.info", vm).contains("<NAME><![CDATA[b]]>")
    });
}

/// A driver that keeps snapshots through a poweroff (kvm as shipped: KEEP_SNAPSHOTS) deletes
/// one of a powered-off VM (`DispatchManager::snapshot_delete`); the VM stays off.
#[test]
fn a_powered_off_vm_on_a_driver_keeping_snapshots_deletes_one() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let host = ok(
        &c,
        "one.host.allocate",
        vec![s("kvm-node"), s("kvm"), s("kvm"), i(-1)],
    );
    let vm = ok(&c, "one.vm.allocate", vec![s("CPU = 0.5\nMEMORY = 64")]);
    ok(&c, "one.vm.deploy", vec![i(vm), i(host)]);
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    assert_eq!(ok(&c, "one.vm.snapshotcreate", vec![i(vm), s("a")]), 0);
    zone.wait_until(DEADLINE, "the snapshot is taken", || in_state(&c, vm, 3, 3));
    ok(&c, "one.vm.action", vec![s("poweroff"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM is off", || in_state(&c, vm, 8, 0));
    assert!(info(&c, "one.vm.info", vm).contains("<SNAPSHOT_ID><![CDATA[0]]></SNAPSHOT_ID>"));
    ok(&c, "one.vm.snapshotdelete", vec![i(vm), i(0)]);
    let body = info(&c, "one.vm.info", vm);
    assert!(!body.contains("<SNAPSHOT_ID>"), "{body}");
    assert!(in_state(&c, vm, 8, 0), "{body}");
}

/// `VirtualMachine::set_saveas_state` takes UNDEPLOYED and STOPPED VMs too, and they go back.
#[test]
fn an_undeployed_vm_saves_a_disk_and_stays_undeployed() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = src\nTYPE = DATABLOCK\nSIZE = 16"), i(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.5\nMEMORY = 64\nDISK = [ IMAGE_ID = {image} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    ok(&c, "one.vm.action", vec![s("undeploy"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM is undeployed", || in_state(&c, vm, 9, 0));
    let copy = ok(
        &c,
        "one.vm.disksaveas",
        vec![i(vm), i(0), s("copy"), s(""), i(-1)],
    );
    zone.wait_until(DEADLINE, "the VM is undeployed again", || {
        in_state(&c, vm, 9, 0)
    });
    zone.wait_until(DEADLINE, "the copy is READY", || {
        info(&c, "one.image.info", copy).contains("<STATE>1</STATE>")
    });
}

/// `one.vm.recover` and a running VM's snapshots, as 7.0.2's LCM treats them: a delete
/// (`trigger_delete` -> `clean_up_vm`) keeps them on a driver with KEEP_SNAPSHOTS (kvm as
/// shipped), a delete-recreate (`trigger_delete_recreate`) drops them whatever the driver, a
/// delete-db (`delete_vm_db`) leaves them.
#[test]
fn recover_keeps_or_drops_a_running_vms_snapshots_as_the_lcm_does() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let host = ok(
        &c,
        "one.host.allocate",
        vec![s("kvm-node"), s("kvm"), s("kvm"), i(-1)],
    );
    let with_snapshot = || {
        let vm = ok(&c, "one.vm.allocate", vec![s("CPU = 0.5\nMEMORY = 64")]);
        ok(&c, "one.vm.deploy", vec![i(vm), i(host)]);
        zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
        assert_eq!(ok(&c, "one.vm.snapshotcreate", vec![i(vm), s("a")]), 0);
        zone.wait_until(DEADLINE, "the snapshot is taken", || in_state(&c, vm, 3, 3));
        vm
    };
    let has_snapshot = |vm: i32| info(&c, "one.vm.info", vm).contains("<SNAPSHOT_ID>");
    for (op, kept) in [(3, true), (4, false), (5, true)] {
        let vm = with_snapshot();
        ok(&c, "one.vm.recover", vec![i(vm), i(op)]);
        let body = info(&c, "one.vm.info", vm);
        assert_eq!(has_snapshot(vm), kept, "recover {op}: {body}");
    }
}
