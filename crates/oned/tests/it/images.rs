//! Images beyond the owned-object calls (`one.image.clone`, `persistent`, `enable`, `chtype`,
//! the snapshot calls, `restore`) and `one.datastore.enable`, with OpenNebula's states,
//! refusals and body, through a follower.

use xmlrpc::Value;

use crate::zone::{allocate, one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE, INTERNAL};

const ALLOCATE: i32 = 0x4000;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn id(v: Value) -> i32 {
    v.as_i64().unwrap() as i32
}

/// The text of the first `<name>` element of `xml` (CDATA unwrapped).
fn elem(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let Some(start) = xml.find(&open).map(|i| i + open.len()) else {
        return String::new();
    };
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    let v = &xml[start..end];
    v.strip_prefix("<![CDATA[")
        .and_then(|v| v.strip_suffix("]]>"))
        .unwrap_or(v)
        .to_string()
}

fn info(c: &cli::Client, image: i32) -> String {
    c.call_xml("one.image.info", vec![Value::Int(image)])
        .unwrap_or_default()
}

#[test]
fn image_methods_move_states_and_refuse_as_opennebula() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let c = zone.servers[follower].client();
    let lc = zone.servers[leader].client();
    let ready = |image: i32| {
        zone.wait_until(DEADLINE, &format!("image {image} is READY"), || {
            elem(&info(&lc, image), "STATE") == "1"
        });
    };

    // `Image::insert`'s defaults: PATH, FORMAT and PERSISTENT leave the template.
    let base = id(c
        .call(
            "one.image.allocate",
            vec![
                s("NAME = base\nPATH = /tmp/base.qcow2\nFORMAT = qcow2\nPERSISTENT_TYPE = SHAREABLE"),
                Value::Int(1),
            ],
        )
        .unwrap());
    let body = info(&lc, base);
    assert_eq!(
        elem(&body, "PREV_STATE"),
        "0",
        "INIT until its first update"
    );
    ready(base);
    let body = info(&lc, base);
    assert_eq!(elem(&body, "PATH"), "/tmp/base.qcow2");
    assert_eq!(elem(&body, "FORMAT"), "qcow2");
    assert_eq!(
        elem(&body, "SOURCE"),
        format!("/var/lib/one//datastores/1/{base}")
    );
    assert_eq!(elem(&body, "DEV_PREFIX"), "sd");
    let template = elem(&body, "TEMPLATE");
    for gone in ["PATH", "FORMAT", "PERSISTENT", "PERSISTENT_TYPE", "NAME"] {
        assert!(!template.contains(&format!("<{gone}>")), "{gone}: {body}");
    }
    assert!(body.ends_with(
        "<BACKUP_INCREMENTS></BACKUP_INCREMENTS><BACKUP_DISK_IDS></BACKUP_DISK_IDS></IMAGE>"
    ));

    // clone: a new image from the source's file, READY once the driver copied it.
    let copy = id(c
        .call("one.image.clone", vec![Value::Int(base), s("copy")])
        .unwrap());
    ready(copy);
    ready(base);
    let body = info(&lc, copy);
    assert_eq!(
        elem(&body, "PATH"),
        format!("/var/lib/one//datastores/1/{base}")
    );
    assert_eq!(elem(&body, "CLONING_ID"), "-1");
    assert_eq!(elem(&body, "FORMAT"), "qcow2");
    assert_eq!(elem(&info(&lc, base), "CLONING_OPS"), "0");
    let (code, msg) = one_error(c.call("one.image.clone", vec![Value::Int(base), s("copy")]));
    assert_eq!(code, ALLOCATE);
    assert_eq!(
        msg,
        format!("[one.image.clone] Error allocating a new image. NAME is already taken by IMAGE {copy}.")
    );
    let (code, msg) = one_error(c.call(
        "one.image.clone",
        vec![Value::Int(base), s("x"), Value::Int(0)],
    ));
    assert_eq!(code, ACTION_CODE);
    assert_eq!(
        msg,
        "[one.image.clone] Clone only supported for IMAGE_DS Datastores"
    );

    // persistent, enable, chtype.
    c.call(
        "one.image.persistent",
        vec![Value::Int(copy), Value::Bool(true)],
    )
    .unwrap();
    c.call(
        "one.image.enable",
        vec![Value::Int(copy), Value::Bool(false)],
    )
    .unwrap();
    zone.wait_until(DEADLINE, "the copy is persistent and DISABLED", || {
        let b = info(&lc, copy);
        elem(&b, "PERSISTENT") == "1" && elem(&b, "STATE") == "3"
    });
    let (code, msg) = one_error(c.call("one.image.clone", vec![Value::Int(copy), s("y")]));
    assert_eq!(code, ALLOCATE);
    assert_eq!(
        msg,
        "[one.image.clone] Error allocating a new image. Cannot clone image in state: DISABLED"
    );
    let (code, msg) = one_error(c.call(
        "one.image.snapshotdelete",
        vec![Value::Int(copy), Value::Int(0)],
    ));
    assert_eq!(code, ACTION_CODE);
    assert_eq!(
        msg,
        "[one.image.snapshotdelete] Cannot delete snapshot in state DISABLED"
    );
    c.call(
        "one.image.enable",
        vec![Value::Int(copy), Value::Bool(true)],
    )
    .unwrap();
    let (code, msg) = one_error(c.call("one.image.chtype", vec![Value::Int(copy), s("KERNEL")]));
    assert_eq!(code, ACTION_CODE);
    assert_eq!(
        msg,
        "[one.image.chtype] Cannot change image type to an incompatible type for the current datastore."
    );
    c.call("one.image.chtype", vec![Value::Int(copy), s("datablock")])
        .unwrap();
    zone.wait_until(DEADLINE, "the copy is a READY DATABLOCK", || {
        let b = info(&lc, copy);
        elem(&b, "TYPE") == "2" && elem(&b, "STATE") == "1"
    });
    for method in ["one.image.snapshotrevert", "one.image.snapshotflatten"] {
        let (code, msg) = one_error(c.call(method, vec![Value::Int(copy), Value::Int(3)]));
        assert_eq!(
            (code, msg),
            (ACTION_CODE, format!("[{method}] Snapshot does not exist"))
        );
    }
    let (code, msg) = one_error(c.call(
        "one.image.restore",
        vec![Value::Int(copy), Value::Int(1), s("")],
    ));
    assert_eq!(code, ACTION_CODE);
    assert_eq!(
        msg,
        "[one.image.restore] Can only restore images of type BACKUP"
    );

    // Another user: USE is not enough to change an image.
    let admin = zone.servers[leader].client();
    let bob = allocate(&admin, "bob").unwrap();
    zone.wait_caught_up();
    let b = zone.servers[follower].client_as("bob", "pw-bob");
    admin
        .call(
            "one.image.chmod",
            vec![
                Value::Int(copy),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(1),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(1),
                Value::Int(-1),
                Value::Int(-1),
            ],
        )
        .unwrap();
    let (code, msg) = one_error(b.call(
        "one.image.enable",
        vec![Value::Int(copy), Value::Bool(false)],
    ));
    assert_eq!(code, AUTHORIZATION);
    assert_eq!(
        msg,
        format!(
            "[one.image.enable] User [{bob}] : Not authorized to perform MANAGE IMAGE [{copy}]."
        )
    );

    // Datastores: only system datastores are enabled or disabled.
    let (code, msg) = one_error(c.call(
        "one.datastore.enable",
        vec![Value::Int(1), Value::Bool(false)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.datastore.enable] Only SYSTEM_DS can be disabled or enabled"
        )
    );
    c.call(
        "one.datastore.enable",
        vec![Value::Int(0), Value::Bool(false)],
    )
    .unwrap();
    zone.wait_until(DEADLINE, "datastore 0 is DISABLED", || {
        lc.call_xml("one.datastore.info", vec![Value::Int(0)])
            .is_ok_and(|b| elem(&b, "STATE") == "1")
    });

    // Delete: the copy goes, on every server.
    c.call("one.image.delete", vec![Value::Int(copy)]).unwrap();
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} forgot the copy"), || {
            c.call_xml("one.image.info", vec![Value::Int(copy)])
                .is_err()
        });
    }
}

/// `Image::test_set_persistent`: DEFAULT_IMAGE_PERSISTENT_NEW from the user's OPENNEBULA
/// vector, else its group's, else oned.conf; an image's own PERSISTENT wins at allocate.
#[test]
fn a_users_or_groups_default_persistence_applies_to_its_new_images() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let image = |name: &str, extra: &str| {
        id(c.call(
            "one.image.allocate",
            vec![
                s(&format!("NAME = {name}\nTYPE = DATABLOCK\nSIZE = 1{extra}")),
                Value::Int(1),
            ],
        )
        .unwrap())
    };
    let persistent = |i: i32| elem(&info(&c, i), "PERSISTENT");
    assert_eq!(persistent(image("plain", "")), "0");
    c.call(
        "one.group.update",
        vec![
            Value::Int(0),
            s("OPENNEBULA = [ DEFAULT_IMAGE_PERSISTENT_NEW = YES ]"),
            Value::Int(1),
        ],
    )
    .unwrap();
    assert_eq!(persistent(image("by-group", "")), "1");
    assert_eq!(persistent(image("own", "\nPERSISTENT = NO")), "0");
    c.call(
        "one.user.update",
        vec![
            Value::Int(0),
            s("OPENNEBULA = [ DEFAULT_IMAGE_PERSISTENT_NEW = NO ]"),
            Value::Int(1),
        ],
    )
    .unwrap();
    assert_eq!(persistent(image("by-user", "")), "0");
}

/// `Datastore::get_avail_mb`: a datastore's own LIMIT_MB bounds its images, unless its own
/// DATASTORE_CAPACITY_CHECK says no.
#[test]
fn a_datastores_limit_bounds_its_images() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let ds = |text: &str| {
        id(
            c.call("one.datastore.allocate", vec![s(text), Value::Int(-1)])
                .unwrap(),
        )
    };
    let image = |ds: i32, name: &str, size: i64| {
        c.call(
            "one.image.allocate",
            vec![
                s(&format!("NAME = {name}\nTYPE = DATABLOCK\nSIZE = {size}")),
                Value::Int(ds),
            ],
        )
    };
    let small = ds("NAME = small\nDS_MAD = fs\nTM_MAD = local\nLIMIT_MB = 10");
    assert_eq!(
        one_error(image(small, "big", 100)),
        (
            ACTION_CODE,
            "[one.image.allocate] Not enough space in datastore".to_string()
        )
    );
    image(small, "fits", 6).unwrap();
    assert_eq!(one_error(image(small, "more", 6)).0, ACTION_CODE);
    let unchecked = ds(
        "NAME = unchecked\nDS_MAD = fs\nTM_MAD = local\nLIMIT_MB = 10\nDATASTORE_CAPACITY_CHECK = NO",
    );
    image(unchecked, "big", 100).unwrap();
    // An administrator may skip the check (`ImageAllocate`'s third parameter).
    c.call(
        "one.image.allocate",
        vec![
            s("NAME = skipped\nTYPE = DATABLOCK\nSIZE = 100"),
            Value::Int(small),
            Value::Bool(true),
        ],
    )
    .unwrap();
}

/// `ImageClone::request_execute` and `ImageAllocate`: the owner's DATASTORE quota is weighed
/// before `ImagePool::allocate`'s name and source checks.
#[test]
fn a_clone_weighs_the_quota_before_the_name() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let uid = allocate(&c, "ann").unwrap();
    c.call(
        "one.user.quota",
        vec![
            Value::Int(uid as i32),
            s("DATASTORE = [ ID = 1, IMAGES = 1 ]"),
        ],
    )
    .unwrap();
    let ann = zone.servers[0].client_as("ann", "pw-ann");
    let a = id(ann
        .call(
            "one.image.allocate",
            vec![s("NAME = a\nTYPE = DATABLOCK\nSIZE = 1"), Value::Int(1)],
        )
        .unwrap());
    zone.wait_until(DEADLINE, "the image is READY", || {
        elem(&info(&c, a), "STATE") == "1"
    });
    let (code, msg) = one_error(ann.call("one.image.clone", vec![Value::Int(a), s("a")]));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.ends_with("limit of 1 reached for IMAGES quota in DATASTORE with ID: 1."),
        "{msg}"
    );
    // So does `ImageAllocate`: a taken name is not what it answers.
    let (code, msg) = one_error(ann.call(
        "one.image.allocate",
        vec![s("NAME = a\nTYPE = DATABLOCK\nSIZE = 1"), Value::Int(1)],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(msg.starts_with("[one.image.allocate] User ["), "{msg}");
}

/// `Image::insert` compares PERSISTENT with YES (`icasecmp`): anything else, `true` included,
/// makes a non-persistent image whose template says NO.
#[test]
fn only_yes_makes_a_persistent_image() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    for (given, persistent) in [("true", "0"), ("Yes", "1")] {
        let image = id(c
            .call(
                "one.image.allocate",
                vec![
                    s(&format!(
                        "NAME = p-{given}\nPATH = /x\nPERSISTENT = {given}"
                    )),
                    Value::Int(1),
                ],
            )
            .unwrap());
        let body = info(&c, image);
        assert_eq!(elem(&body, "PERSISTENT"), persistent, "{given}: {body}");
    }
}

/// `ImageManager::register_image`: an image named by its SOURCE alone needs no driver copy and
/// is READY as soon as it is allocated.
#[test]
fn an_image_registered_by_its_source_is_ready_at_once() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let image = id(c
        .call(
            "one.image.allocate",
            vec![
                s("NAME = src\nSOURCE = /var/lib/one/datastores/1/abc\nFORMAT = raw\nSIZE = 8"),
                Value::Int(1),
            ],
        )
        .unwrap());
    assert_eq!(elem(&info(&c, image), "STATE"), "1");
}

/// An image keeps its datastore's disk type (`ImageAllocate` passes `ds->get_disk_type()`),
/// which its VM disks take as TYPE (`Image::disk_attribute`; CDROMs their CDROM kind); a
/// forced delete marks the template even when it is refused; DEFAULT_IMAGE_TYPE is the type
/// of an image that names none.
#[test]
fn images_take_their_datastores_disk_type_and_oned_confs_default_type() {
    let setup = |_: usize, s: &mut crate::zone::Server| {
        s.extra_conf = "DEFAULT_IMAGE_TYPE = \"DATABLOCK\"\n".to_string();
    };
    let zone = Zone::solo_custom(None, Some(Box::new(setup)));
    let c = zone.servers[0].client();
    let ds = id(c
        .call(
            "one.datastore.allocate",
            vec![
                s("NAME = rbd\nDS_MAD = ceph\nTM_MAD = ceph\nDISK_TYPE = RBD\nBRIDGE_LIST = h1"),
                Value::Int(-1),
            ],
        )
        .unwrap());
    let image = |text: &str| {
        id(c.call("one.image.allocate", vec![s(text), Value::Int(ds)])
            .unwrap())
    };
    let data = image("NAME = d\nSIZE = 1");
    let cd = image("NAME = cd\nTYPE = CDROM\nPATH = /tmp/cd.iso");
    zone.wait_until(DEADLINE, "the images are READY", || {
        [data, cd]
            .iter()
            .all(|i| elem(&info(&c, *i), "STATE") == "1")
    });
    let body = info(&c, data);
    assert_eq!(elem(&body, "DISK_TYPE"), "3", "{body}");
    assert_eq!(elem(&body, "TYPE"), "2", "{body}");
    let vm = id(c
        .call(
            "one.vm.allocate",
            vec![s(&format!(
                "CPU = 1\nMEMORY = 8\nDISK = [ IMAGE_ID = {data} ]\nDISK = [ IMAGE_ID = {cd} ]"
            ))],
        )
        .unwrap());
    let vb = c.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap();
    assert!(vb.contains("<TYPE><![CDATA[RBD]]></TYPE>"), "{vb}");
    assert!(vb.contains("<TYPE><![CDATA[RBD_CDROM]]></TYPE>"), "{vb}");
    // Used by the VM, a forced delete is refused, and the template says it was tried.
    let e = c.call(
        "one.image.delete",
        vec![Value::Int(data), Value::Bool(true)],
    );
    assert_eq!(one_error(e).0, ACTION_CODE);
    let body = info(&c, data);
    assert!(
        body.contains("<FORCE_DELETE><![CDATA[YES]]></FORCE_DELETE>"),
        "{body}"
    );
}
