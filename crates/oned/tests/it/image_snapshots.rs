//! A persistent image's snapshots follow it: the disk snapshots a VM took are the image's once
//! the VM is done with it (terminated, or the disk detached), a VM that takes the image starts
//! its disk with them, and `one.image.snapshotrevert/delete/flatten` work on them with
//! OpenNebula's checks. Also the datastore's capacity, which refuses an image that does not fit.

use xmlrpc::Value;

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

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

fn in_state(c: &cli::Client, vm: i32, state: i32, lcm: i32) -> bool {
    info(c, "one.vm.info", vm).contains(&format!(
        "<STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE>"
    ))
}

fn image_state(c: &cli::Client, image: i32) -> String {
    let body = info(c, "one.image.info", image);
    let at = body.find("<STATE>").map_or(0, |a| a + 7);
    body[at..].split('<').next().unwrap_or("").to_string()
}

/// A READY persistent DATABLOCK.
fn persistent_image(zone: &Zone, c: &cli::Client, name: &str) -> i32 {
    let image = ok(
        c,
        "one.image.allocate",
        vec![
            s(&format!(
                "NAME = {name}\nTYPE = DATABLOCK\nSIZE = 16\nPERSISTENT = YES\nFORMAT = qcow2"
            )),
            i(1),
        ],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        image_state(c, image) == "1"
    });
    image
}

/// The `<SNAPSHOTS>` element of an image's or a VM's body.
fn snapshots(body: &str) -> String {
    let Some(at) = body.rfind("<SNAPSHOTS>") else {
        return String::new();
    };
    let end = body[at..]
        .find("</SNAPSHOTS>")
        .map_or(body.len(), |e| at + e + 12);
    body[at..end].to_string()
}

fn snap_call(c: &cli::Client, method: &str, image: i32, sid: i32) -> (i32, String) {
    one_error(c.call(method, vec![i(image), i(sid)]))
}

#[test]
fn a_persistent_image_keeps_its_vm_s_disk_snapshots_and_gives_them_to_the_next_vm() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let w = zone.servers[(leader + 1) % 3].client();
    ok(
        &w,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = persistent_image(&zone, &c, "root");
    let vm_text = format!("CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]");
    let vm = ok(&w, "one.vm.allocate", vec![s(&vm_text)]);
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    assert_eq!(
        ok(&w, "one.vm.disksnapshotcreate", vec![i(vm), i(0), s("a")]),
        0
    );
    zone.wait_until(DEADLINE, "snapshot a is taken", || in_state(&c, vm, 3, 3));
    assert_eq!(
        ok(&w, "one.vm.disksnapshotcreate", vec![i(vm), i(0), s("b")]),
        1
    );
    zone.wait_until(DEADLINE, "snapshot b is taken", || in_state(&c, vm, 3, 3));
    let on_disk = snapshots(&info(&c, "one.vm.info", vm));
    assert!(on_disk.contains("<NAME><![CDATA[b]]></NAME>"), "{on_disk}");
    // In use, the image has none yet, and refuses the snapshot calls.
    let body = info(&c, "one.image.info", image);
    assert!(
        body.contains("<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS><CURRENT_BASE><![CDATA[-1]]></CURRENT_BASE><NEXT_SNAPSHOT><![CDATA[0]]></NEXT_SNAPSHOT></SNAPSHOTS>"),
        "{body}"
    );
    assert_eq!(
        snap_call(&w, "one.image.snapshotrevert", image, 0),
        (
            ACTION,
            "[one.image.snapshotrevert] Cannot revert to snapshot in state USED".into()
        )
    );

    // Terminated (SHUTDOWN, EPILOG, DONE): the disk's snapshots are the image's, everywhere.
    ok(&w, "one.vm.action", vec![s("terminate"), i(vm)]);
    for n in 0..3 {
        let c = zone.servers[n].client();
        zone.wait_until(DEADLINE, &format!("server {n} freed the image"), || {
            image_state(&c, image) == "1"
        });
        let got = snapshots(&info(&c, "one.image.info", image));
        assert!(
            got.starts_with("<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS><CURRENT_BASE><![CDATA[-1]]></CURRENT_BASE><NEXT_SNAPSHOT><![CDATA[2]]></NEXT_SNAPSHOT><SNAPSHOT>"),
            "{got}"
        );
        let disk_part = |x: &str| {
            x.split("<SNAPSHOT>")
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(disk_part(&got), disk_part(&on_disk), "same snapshots");
    }

    // A new VM starts its disk with them.
    let vm2 = ok(&w, "one.vm.allocate", vec![s(&vm_text)]);
    let got = snapshots(&info(&c, "one.vm.info", vm2));
    assert!(
        got.starts_with("<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS><CURRENT_BASE><![CDATA[-1]]></CURRENT_BASE><DISK_ID><![CDATA[0]]></DISK_ID><NEXT_SNAPSHOT><![CDATA[2]]></NEXT_SNAPSHOT>"),
        "{got}"
    );
    assert!(got.contains("<NAME><![CDATA[a]]></NAME>"), "{got}");
    zone.wait_until(DEADLINE, "the second VM runs", || in_state(&c, vm2, 3, 3));
    assert_eq!(
        ok(&w, "one.vm.disksnapshotcreate", vec![i(vm2), i(0), s("c")]),
        2,
        "the ids go on from the image's"
    );
    zone.wait_until(DEADLINE, "snapshot c is taken", || in_state(&c, vm2, 3, 3));
    ok(&w, "one.vm.action", vec![s("terminate-hard"), i(vm2)]);
    zone.wait_until(DEADLINE, "the image is free again", || {
        image_state(&c, image) == "1"
    });
    let got = snapshots(&info(&c, "one.image.info", image));
    assert!(
        got.contains("<NEXT_SNAPSHOT><![CDATA[3]]></NEXT_SNAPSHOT>"),
        "{got}"
    );
    assert!(got.contains("<NAME><![CDATA[c]]></NAME>"), "{got}");
    // 0 <- 1 <- 2, 2 active.

    // The image's snapshot calls, through a follower, with OpenNebula's refusals.
    for (method, sid, why) in [
        (
            "one.image.snapshotdelete",
            2,
            "Cannot delete the active snapshot",
        ),
        (
            "one.image.snapshotdelete",
            1,
            "Cannot delete snapshot with children",
        ),
        ("one.image.snapshotdelete", 9, "Snapshot does not exist"),
        ("one.image.snapshotrevert", 9, "Snapshot does not exist"),
        ("one.image.snapshotflatten", 9, "Snapshot does not exist"),
    ] {
        assert_eq!(
            snap_call(&w, method, image, sid),
            (ACTION, format!("[{method}] {why}"))
        );
    }
    assert_eq!(ok(&w, "one.image.snapshotrevert", vec![i(image), i(1)]), 1);
    zone.wait_until(DEADLINE, "the revert is done", || {
        image_state(&c, image) == "1"
    });
    let got = snapshots(&info(&c, "one.image.info", image));
    let active = got
        .split("<SNAPSHOT>")
        .find(|x| x.contains("<ACTIVE>"))
        .unwrap_or("");
    assert!(active.contains("<ID><![CDATA[1]]></ID>"), "{got}");
    assert_eq!(ok(&w, "one.image.snapshotdelete", vec![i(image), i(2)]), 2);
    zone.wait_until(DEADLINE, "the delete is done", || {
        image_state(&c, image) == "1"
    });
    let got = snapshots(&info(&c, "one.image.info", image));
    assert!(!got.contains("<ID><![CDATA[2]]></ID>"), "{got}");
    assert!(got.contains("<ID><![CDATA[1]]></ID>"), "{got}");

    // A persistent image with snapshots stays so, and is not cloned.
    let (code, msg) = one_error(w.call("one.image.persistent", vec![i(image), Value::Bool(false)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.image.persistent] Could not make image non-persistent: Image has snapshots."
        )
    );
    assert_eq!(ok(&w, "one.image.snapshotflatten", vec![i(image), i(1)]), 1);
    zone.wait_until(DEADLINE, "the flatten is done", || {
        image_state(&c, image) == "1"
    });
    let got = snapshots(&info(&c, "one.image.info", image));
    assert!(!got.contains("<SNAPSHOT>"), "{got}");
}

const INTERNAL: i32 = 0x2000;

#[test]
fn a_detached_persistent_disk_leaves_its_snapshots_in_the_image() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = persistent_image(&zone, &c, "data");
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 10 ]")],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    ok(
        &c,
        "one.vm.attach",
        vec![i(vm), s(&format!("DISK = [ IMAGE_ID = {image} ]"))],
    );
    zone.wait_until(DEADLINE, "the disk is plugged", || in_state(&c, vm, 3, 3));
    assert_eq!(
        ok(&c, "one.vm.disksnapshotcreate", vec![i(vm), i(1), s("x")]),
        0
    );
    zone.wait_until(DEADLINE, "the snapshot is taken", || in_state(&c, vm, 3, 3));

    // In use: not deleted.
    let (code, msg) = one_error(c.call("one.image.delete", vec![i(image)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.image.delete] Cannot delete image. There are 1 VMs using it."
        )
    );

    // The disk grows: the image takes its size back with the snapshots.
    ok(&c, "one.vm.diskresize", vec![i(vm), i(1), s("40")]);
    zone.wait_until(DEADLINE, "the disk is resized", || in_state(&c, vm, 3, 3));
    ok(&c, "one.vm.detach", vec![i(vm), i(1)]);
    zone.wait_until(DEADLINE, "the image is free", || {
        image_state(&c, image) == "1"
    });
    zone.wait_until(DEADLINE, "the disk is unplugged", || in_state(&c, vm, 3, 3));
    let got = snapshots(&info(&c, "one.image.info", image));
    assert!(got.contains("<NAME><![CDATA[x]]></NAME>"), "{got}");
    assert!(info(&c, "one.image.info", image).contains("<SIZE>40</SIZE>"));
    assert!(
        !info(&c, "one.vm.info", vm).contains("<SNAPSHOTS>"),
        "the VM keeps no snapshots of the detached disk"
    );

    // Attached again, the disk has them back.
    ok(
        &c,
        "one.vm.attach",
        vec![i(vm), s(&format!("DISK = [ IMAGE_ID = {image} ]"))],
    );
    zone.wait_until(DEADLINE, "the disk is plugged again", || {
        in_state(&c, vm, 3, 3)
    });
    let got = snapshots(&info(&c, "one.vm.info", vm));
    assert!(got.contains("<NAME><![CDATA[x]]></NAME>"), "{got}");

    // A non-persistent image never keeps a VM's snapshots.
    let plain = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = plain\nTYPE = DATABLOCK\nSIZE = 8"), i(1)],
    );
    zone.wait_until(DEADLINE, "the plain image is READY", || {
        image_state(&c, plain) == "1"
    });
    let vm2 = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {plain} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the second VM runs", || in_state(&c, vm2, 3, 3));
    // The persistent image serves one VM at a time, hot-plugged too.
    let (code, msg) = one_error(c.call(
        "one.vm.attach",
        vec![i(vm2), s(&format!("DISK = [ IMAGE_ID = {image} ]"))],
    ));
    assert_eq!(
        (code, msg),
        (
            ACTION,
            format!(
                "[one.vm.attach] Cannot acquire image {image}, it is persistent and already in use"
            )
        )
    );
    ok(&c, "one.vm.disksnapshotcreate", vec![i(vm2), i(0), s("y")]);
    zone.wait_until(DEADLINE, "its snapshot is taken", || {
        in_state(&c, vm2, 3, 3)
    });
    ok(&c, "one.vm.action", vec![s("terminate-hard"), i(vm2)]);
    zone.wait_until(DEADLINE, "the plain image is free", || {
        image_state(&c, plain) == "1"
            && info(&c, "one.image.info", plain).contains("<RUNNING_VMS>0</RUNNING_VMS>")
    });
    assert!(!info(&c, "one.image.info", plain).contains("<SNAPSHOT>"));
}

#[test]
fn an_image_that_does_not_fit_its_datastore_is_refused_and_images_count_as_used() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let free = |c: &cli::Client| -> i64 {
        let body = info(c, "one.datastore.info", 1);
        let at = body.find("<FREE_MB>").unwrap() + 9;
        body[at..].split('<').next().unwrap().parse().unwrap()
    };
    let before = free(&c);
    let (code, msg) = one_error(c.call(
        "one.image.allocate",
        vec![
            s(&format!(
                "NAME = huge\nTYPE = DATABLOCK\nSIZE = {}",
                before + 1
            )),
            i(1),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.image.allocate] Not enough space in datastore")
    );
    ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = small\nTYPE = DATABLOCK\nSIZE = 100"), i(1)],
    );
    assert_eq!(free(&c), before - 100);
}

/// `VirtualMachineDisk::release_images`: a persistent image a VM lets go of without disk
/// snapshots has its set cleared (`clear_image_snapshots`), not put back to a new image's.
#[test]
fn a_persistent_image_released_without_snapshots_shows_an_empty_set() {
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
        vec![
            s("NAME = p\nTYPE = DATABLOCK\nSIZE = 8\nPERSISTENT = YES"),
            i(1),
        ],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        image_state(&c, image) == "1"
    });
    let defaults = "<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS>";
    assert!(info(&c, "one.image.info", image).contains(defaults));
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 8\nDISK = [ IMAGE_ID = {image} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    ok(&c, "one.vm.action", vec![s("terminate-hard"), i(vm)]);
    zone.wait_until(DEADLINE, "the image is released", || {
        image_state(&c, image) == "1"
    });
    let body = info(&c, "one.image.info", image);
    assert!(body.contains("<SNAPSHOTS></SNAPSHOTS>"), "{body}");
}

/// `VirtualMachine::release_disk_images`: a VM ended while ACTIVE outside its epilog (`recover
/// --delete`) leaves its persistent images in ERROR (`release_image(.., failed)`).
#[test]
fn a_vm_deleted_by_recover_leaves_its_persistent_image_in_error() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = persistent_image(&zone, &c, "kept");
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 0.1\nMEMORY = 8\nDISK = [ IMAGE_ID = {image} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&c, vm, 3, 3));
    ok(&c, "one.vm.recover", vec![i(vm), i(3)]);
    assert!(in_state(&c, vm, 6, 0));
    assert_eq!(image_state(&c, image), "5", "ERROR");
}

/// `vm_authorization` with a persistent disk's image: snapshotting or growing the disk asks
/// MANAGE on the image beside the VM's right, in one request; USE (enough to run it) is not.
#[test]
fn a_persistent_disk_s_snapshots_and_resizes_need_manage_on_its_image() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let alice = crate::zone::allocate(&admin, "alice").unwrap();
    let a = zone.servers[0].client_as("alice", "pw-alice");
    ok(
        &admin,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    let image = persistent_image(&zone, &admin, "shared-root");
    // Others may USE it.
    ok(
        &admin,
        "one.image.chmod",
        [image, -1, -1, -1, -1, -1, -1, 1, -1, -1].map(i).to_vec(),
    );
    let vm_text = format!("CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]");
    let vm = ok(&a, "one.vm.allocate", vec![s(&vm_text)]);
    zone.wait_until(DEADLINE, "the VM runs", || in_state(&admin, vm, 3, 3));
    let refused = |method: &str, params: Vec<Value>| {
        let (code, msg) = one_error(a.call(method, params));
        assert_eq!(code, crate::zone::AUTHORIZATION, "{msg}");
        assert_eq!(
            msg,
            format!(
                "[{method}] User [{alice}] : Not authorized to perform MANAGE IMAGE [{image}]."
            )
        );
    };
    refused("one.vm.disksnapshotcreate", vec![i(vm), i(0), s("a")]);
    refused("one.vm.diskresize", vec![i(vm), i(0), s("64")]);
    // Its owner's administrator may.
    assert_eq!(
        ok(
            &admin,
            "one.vm.disksnapshotcreate",
            vec![i(vm), i(0), s("a")]
        ),
        0
    );
    zone.wait_until(DEADLINE, "snapshot a is taken", || {
        in_state(&admin, vm, 3, 3)
    });
    refused("one.vm.disksnapshotdelete", vec![i(vm), i(0), i(0)]);
}
