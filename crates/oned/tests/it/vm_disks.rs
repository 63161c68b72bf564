//! A VM's disks take their images when it is created and give them back when it ends: a
//! persistent image serves one VM at a time, an image in use is not deleted, and the IMAGE
//! quota's RVMS counts the VMs using each image, as OpenNebula's `ImageManager`.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL};

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

pub(crate) fn ready_image(zone: &Zone, c: &cli::Client, name: &str) -> i32 {
    let image = ok(
        c,
        "one.image.allocate",
        vec![
            s(&format!("NAME = {name}\nTYPE = DATABLOCK\nSIZE = 16")),
            Value::Int(1),
        ],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    image
}

#[test]
fn a_persistent_image_serves_one_vm_and_is_free_again_when_it_ends() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    let image = ready_image(&zone, &c, "root");
    ok(
        &w,
        "one.image.persistent",
        vec![Value::Int(image), Value::Bool(true)],
    );

    let vm = ok(
        &w,
        "one.vm.allocate",
        vec![s("CPU = 1\nMEMORY = 64\nDISK = [ IMAGE = root ]")],
    );
    let body = info(&c, "one.vm.info", vm);
    for attr in [
        "<DISK_ID><![CDATA[0]]></DISK_ID>".to_string(),
        format!("<IMAGE_ID><![CDATA[{image}]]></IMAGE_ID>"),
        "<PERSISTENT><![CDATA[YES]]></PERSISTENT>".to_string(),
        "<SAVE><![CDATA[YES]]></SAVE>".to_string(),
        // `Datastore::disk_attribute`: the datastore's transfer driver, not a fixed one.
        "<TM_MAD><![CDATA[local]]></TM_MAD>".to_string(),
        "<DISK_SNAPSHOT_TOTAL_SIZE><![CDATA[0]]></DISK_SNAPSHOT_TOTAL_SIZE>".to_string(),
        // The default datastore's template holds what `Datastore::insert` writes at bootstrap.
        "<CLONE_TARGET><![CDATA[SYSTEM]]></CLONE_TARGET>".to_string(),
        "<ALLOW_ORPHANS><![CDATA[FORMAT]]></ALLOW_ORPHANS>".to_string(),
    ] {
        assert!(body.contains(&attr), "{attr} in {body}");
    }
    let body = info(&c, "one.image.info", image);
    assert!(body.contains("<STATE>8</STATE>"), "{body}");
    assert!(body.contains("<RUNNING_VMS>1</RUNNING_VMS>"), "{body}");
    assert!(
        body.contains(&format!("<VMS><ID>{vm}</ID></VMS>")),
        "{body}"
    );

    // Persistent: a second VM is refused, and takes nothing else either.
    let (code, msg) = one_error(w.call(
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {image} ]"
        ))],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            format!(
                "[one.vm.allocate] DISK 0: Cannot acquire image {image}, it is persistent and already in use"
            )
            .as_str()
        )
    );
    let (code, msg) = one_error(w.call("one.image.delete", vec![Value::Int(image)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.image.delete] Cannot delete image. There are 1 VMs using it."
        )
    );

    // The VM ends: the image is READY again on every server, and serves another VM.
    ok(
        &w,
        "one.vm.action",
        vec![s("terminate-hard"), Value::Int(vm)],
    );
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} freed the image"), || {
            let body = info(&c, "one.image.info", image);
            body.contains("<STATE>1</STATE>") && body.contains("<RUNNING_VMS>0</RUNNING_VMS>")
        });
    }
    ok(
        &w,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {image} ]"
        ))],
    );
}

/// `Datastore::disk_attribute` and `Image::disk_attribute`: a disk takes its datastore's
/// TM_MAD, CLONE_TARGET and LN_TARGET, and what oned.conf's INHERIT_DATASTORE_ATTR and
/// INHERIT_IMAGE_ATTR name of the datastore's and the image's templates.
#[test]
fn disks_inherit_from_their_datastore_and_image() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let ds = ok(
        &c,
        "one.datastore.allocate",
        vec![
            s("NAME = ceph\nDS_MAD = fs\nTM_MAD = qcow2\nCEPH_HOST = mon1\nCOLOR = red"),
            Value::Int(-1),
        ],
    );
    let image = ok(
        &c,
        "one.image.allocate",
        vec![
            s("NAME = data\nTYPE = DATABLOCK\nSIZE = 16\nSERIAL = abc\nOTHER = x"),
            Value::Int(ds),
        ],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {image}, SERIAL = mine ]"
        ))],
    );
    let body = info(&c, "one.vm.info", vm);
    let disk = body
        .split("<DISK>")
        .nth(1)
        .and_then(|d| d.split("</DISK>").next())
        .unwrap();
    for attr in [
        "<TM_MAD><![CDATA[qcow2]]></TM_MAD>",
        "<CLONE_TARGET><![CDATA[SYSTEM]]></CLONE_TARGET>",
        "<LN_TARGET><![CDATA[NONE]]></LN_TARGET>",
        "<CEPH_HOST><![CDATA[mon1]]></CEPH_HOST>",
        "<DISK_TYPE><![CDATA[FILE]]></DISK_TYPE>",
        // The disk's own value stays.
        "<SERIAL><![CDATA[mine]]></SERIAL>",
    ] {
        assert!(disk.contains(attr), "{attr} in {disk}");
    }
    assert!(!disk.contains("COLOR") && !disk.contains("OTHER"), "{disk}");
}

#[test]
fn the_image_quota_counts_the_vms_using_an_image() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let image = ready_image(&zone, &c, "base");
    // Everyone may use it.
    let mut modes = vec![Value::Int(image)];
    modes.extend([1, 1, 0, 1, 0, 0, 1, 0, 0].map(Value::Int));
    ok(&c, "one.image.chmod", modes);
    let alice = ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s("core"), Value::Array(vec![])],
    );
    ok(
        &c,
        "one.user.quota",
        vec![
            Value::Int(alice),
            s(&format!("IMAGE = [ ID = {image}, RVMS = 1 ]")),
        ],
    );
    let a = zone.servers[0].client_as("alice", "pw-alice");
    let vm = format!("CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {image} ]");
    ok(&a, "one.vm.allocate", vec![s(&vm)]);
    let (code, msg) = one_error(a.call("one.vm.allocate", vec![s(&vm)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.allocate] User [{alice}] : user [{alice}] limit of 1 reached for RVMS quota in IMAGE with ID: {image}."
            )
            .as_str()
        )
    );
    let body = info(&c, "one.user.info", alice);
    assert!(
        body.contains(&format!(
            "<IMAGE_QUOTA><IMAGE><ID><![CDATA[{image}]]></ID><RVMS><![CDATA[1]]></RVMS><RVMS_USED><![CDATA[1]]></RVMS_USED></IMAGE></IMAGE_QUOTA>"
        )),
        "{body}"
    );
}

fn lcm(c: &cli::Client, vm: i32) -> (bool, bool) {
    let body = info(c, "one.vm.info", vm);
    (
        body.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"),
        body.contains("<STATE>8</STATE><LCM_STATE>0</LCM_STATE>"),
    )
}

#[test]
fn disks_are_hot_plugged_and_unplugged_with_their_images() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let w = zone.servers[(leader + 1) % 3].client();
    let c = zone.servers[leader].client();
    ok(
        &w,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let image = ready_image(&zone, &c, "data");
    let vm = ok(
        &w,
        "one.vm.allocate",
        vec![s(
            "CPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 10, SERIAL = auto ]",
        )],
    );
    zone.wait_until(DEADLINE, "the VM runs", || lcm(&c, vm).0);

    ok(
        &w,
        "one.vm.attach",
        vec![
            Value::Int(vm),
            s(&format!("DISK = [ IMAGE_ID = {image}, SERIAL = auto ]")),
        ],
    );
    zone.wait_until(DEADLINE, "the disk is plugged", || lcm(&c, vm).0);
    let body = info(&c, "one.vm.info", vm);
    // SERIAL "auto" is `<vm>-<disk>` (`ImagePool::acquire_disk`).
    for disk in [0, 1] {
        let serial = format!("<SERIAL><![CDATA[{vm}-{disk}]]></SERIAL>");
        assert!(body.contains(&serial), "{serial} in {body}");
    }
    assert!(body.contains("<DISK_ID><![CDATA[1]]></DISK_ID>"), "{body}");
    assert!(body.contains("<IMAGE><![CDATA[data]]></IMAGE>"), "{body}");
    assert!(info(&c, "one.image.info", image).contains("<STATE>2</STATE>"));

    let (code, msg) = one_error(w.call("one.vm.detach", vec![Value::Int(vm), Value::Int(9)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            "[one.vm.detach] Could not detach disk with DISK_ID 9, it does not exist."
        )
    );
    ok(&w, "one.vm.detach", vec![Value::Int(vm), Value::Int(1)]);
    zone.wait_until(DEADLINE, "the disk is unplugged", || lcm(&c, vm).0);
    zone.wait_until(DEADLINE, "the image is free", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });

    // Powered off: HOTPLUG_PROLOG_POWEROFF, then POWEROFF again.
    ok(
        &w,
        "one.vm.action",
        vec![s("poweroff-hard"), Value::Int(vm)],
    );
    zone.wait_until(DEADLINE, "the VM is off", || lcm(&c, vm).1);
    ok(
        &w,
        "one.vm.attach",
        vec![Value::Int(vm), s("DISK = [ IMAGE = data ]")],
    );
    zone.wait_until(DEADLINE, "the disk is attached", || lcm(&c, vm).1);
    assert!(info(&c, "one.image.info", image).contains("<RUNNING_VMS>1</RUNNING_VMS>"));

    let held = ok(
        &w,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32"), Value::Bool(true)],
    );
    let (code, msg) = one_error(w.call(
        "one.vm.attach",
        vec![
            Value::Int(held),
            s(&format!("DISK = [ IMAGE_ID = {image} ]")),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION,
            // `VirtualMachineAttach` asks for a host before the state.
            "[one.vm.attach] VM is not running in any host"
        )
    );
}

/// Two disks of one image: a non-persistent image serves both (`inc_running` counts the VM
/// once), a persistent one is in use for the second (`DISK <id>: ` prefixed, as
/// `VirtualMachineDisks::get_images` words its refusals).
#[test]
fn two_disks_of_one_image_as_opennebula_takes_them() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let base = ready_image(&zone, &c, "base");
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {base} ]\nDISK = [ IMAGE_ID = {base} ]"
        ))],
    );
    let body = info(&c, "one.vm.info", vm);
    assert_eq!(body.matches("<IMAGE_ID><![CDATA[").count(), 2, "{body}");
    // A SIZE given must fit the image (`ImagePool::acquire_disk`).
    let (code, msg) = one_error(c.call(
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {base}, SIZE = 8 ]"
        ))],
    ));
    assert_eq!(
        (code, msg),
        (
            INTERNAL,
            format!(
                "[one.vm.allocate] DISK 0: SIZE of 8MB is less than the image [{base}] size of 16MB."
            )
        )
    );
    let image = info(&c, "one.image.info", base);
    assert!(
        image.contains(&format!("<VMS><ID>{vm}</ID></VMS>")),
        "{image}"
    );
    let pers = ok(
        &c,
        "one.image.allocate",
        vec![
            s("NAME = pers\nTYPE = DATABLOCK\nSIZE = 4\nPERSISTENT = YES"),
            Value::Int(1),
        ],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&c, "one.image.info", pers).contains("<STATE>1</STATE>")
    });
    let (code, msg) = one_error(c.call(
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {pers}, SIZE = 8 ]"
        ))],
    ));
    assert_eq!(
        (code, msg),
        (
            INTERNAL,
            format!(
                "[one.vm.allocate] DISK 0: SIZE attribute is not supported for persistent image [{pers}]."
            )
        )
    );
    let (code, msg) = one_error(c.call(
        "one.vm.allocate",
        vec![s(&format!(
            "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {pers} ]\nDISK = [ IMAGE_ID = {pers} ]"
        ))],
    ));
    assert_eq!(
        (code, msg),
        (
            INTERNAL,
            format!(
                "[one.vm.allocate] DISK 1: Cannot acquire image {pers}, it is persistent and already in use"
            )
        )
    );
}

fn state_of(body: &str, elem: &str) -> i32 {
    let open = format!("<{elem}>");
    let at = body.find(&open).map(|i| i + open.len()).unwrap_or(0);
    body[at..]
        .split('<')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

/// `VirtualMachine::insert` and `LifeCycleManager::trigger_disk_lock_success`: a VM allocated
/// while its image is still being copied waits in CLONING, then takes the image's SOURCE and
/// goes to PENDING (HOLD when held).
#[test]
fn a_vm_of_an_image_being_copied_waits_in_cloning() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vm_of_fresh_image = |n: usize, hold: bool| {
        let image = ok(
            &c,
            "one.image.allocate",
            vec![
                s(&format!("NAME = copying{n}\nTYPE = DATABLOCK\nSIZE = 16")),
                Value::Int(1),
            ],
        );
        let vm = ok(
            &c,
            "one.vm.allocate",
            vec![
                s(&format!(
                    "CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {image} ]"
                )),
                Value::Bool(hold),
            ],
        );
        (image, vm)
    };
    // The driver finishes an image within its period, which may fall between the two calls:
    // the first VM that found its image still copying is the one followed.
    let mut seen = Vec::new();
    for hold in [false, true] {
        let found = (0..20).find_map(|n| {
            let (image, vm) = vm_of_fresh_image(seen.len() * 20 + n, hold);
            let body = info(&c, "one.vm.info", vm);
            (state_of(&body, "STATE") == 10).then_some((image, vm, body))
        });
        let (image, vm, body) = found.unwrap_or_else(|| {
            let last = info(&c, "one.vm.info", 0);
            panic!("no VM found its image being copied: {last}")
        });
        assert!(
            body.contains("<CLONING><![CDATA[YES]]></CLONING>"),
            "{body}"
        );
        let held = if hold { 2 } else { 1 };
        seen.push((image, vm, held));
    }
    for (image, vm, held) in seen {
        zone.wait_until(DEADLINE, "the VM leaves CLONING", || {
            state_of(&info(&c, "one.vm.info", vm), "STATE") == held
        });
        let body = info(&c, "one.vm.info", vm);
        assert!(!body.contains("<CLONING>"), "{body}");
        let ib = info(&c, "one.image.info", image);
        let source = format!("/var/lib/one//datastores/1/{image}");
        assert!(ib.contains(&format!("<SOURCE>{source}</SOURCE>")), "{ib}");
        let cdata = format!("<SOURCE><![CDATA[{source}]]></SOURCE>");
        assert!(body.contains(&cdata), "{body}");
        assert_eq!(state_of(&ib, "STATE"), 2, "{ib}");
    }
}

/// `set_volatile_disk_info`: a volatile disk takes its system datastore's attributes when the
/// VM is deployed (by the scheduler here) and when one is attached; not before.
#[test]
fn volatile_disks_take_their_system_datastore_when_deployed_or_attached() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 32\nDISK = [ TYPE = fs, SIZE = 16 ]")],
    );
    let pending = info(&c, "one.vm.info", vm);
    assert!(!pending.contains("<DATASTORE_ID>"), "{pending}");
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    zone.wait_until(DEADLINE, "the VM runs", || {
        info(&c, "one.vm.info", vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
    });
    let system = [
        "<DATASTORE><![CDATA[system]]></DATASTORE>",
        "<DATASTORE_ID><![CDATA[0]]></DATASTORE_ID>",
        "<TM_MAD><![CDATA[local]]></TM_MAD>",
        "<CLUSTER_ID><![CDATA[0]]></CLUSTER_ID>",
        "<DISK_TYPE><![CDATA[FILE]]></DISK_TYPE>",
    ];
    let body = info(&c, "one.vm.info", vm);
    for attr in system {
        assert!(body.contains(attr), "{attr} in {body}");
    }
    ok(
        &c,
        "one.vm.attach",
        vec![Value::Int(vm), s("DISK = [ TYPE = swap, SIZE = 8 ]")],
    );
    zone.wait_until(DEADLINE, "the disk is attached", || {
        info(&c, "one.vm.info", vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
    });
    let body = info(&c, "one.vm.info", vm);
    let swap = body
        .split("<DISK>")
        .find(|d| d.contains("<TYPE><![CDATA[swap]]></TYPE>"))
        .unwrap_or_default();
    for attr in system {
        assert!(swap.contains(attr), "{attr} in {body}");
    }
}
