//! The edits every owned family shares, as 7.0.2's `RequestManagerRename`, `RequestManagerChown`,
//! `RequestManagerChmod` and `RequestManagerUpdateTemplate` make them: a rename to the same name,
//! a chown to an owner who holds the name, a chmod's bad value, restricted attributes on update.

use cli::Client;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE as ACTION, AUTHORIZATION, INTERNAL, NO_EXISTS};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn id(c: &Client, method: &str, params: Vec<Value>) -> i64 {
    c.call(method, params)
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .as_i64()
        .expect("an id")
}

fn says(code: i32, method: &str, why: &str) -> (i32, String) {
    (code, format!("[{method}] {why}"))
}

fn user(c: &Client, name: &str) -> i64 {
    id(
        c,
        "one.user.allocate",
        vec![s(name), s("pw"), s(""), Value::Array(vec![])],
    )
}

#[test]
fn renames_chowns_and_chmods_are_checked_in_opennebulas_order() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let bob_c = zone.servers[0].client_as("bob", "pw");
    let t = id(&c, "one.template.allocate", vec![s("NAME = web\nCPU = 1")]);

    // Its own name again: a success before any authorization (bob may not MANAGE it).
    assert_eq!(id(&bob_c, "one.template.rename", vec![int(t), s("web")]), t);
    assert_eq!(
        id(
            &c,
            "one.host.allocate",
            vec![s("hh"), s("dummy"), s("dummy"), int(-1)]
        ),
        0
    );
    assert_eq!(id(&c, "one.host.rename", vec![int(0), s("hh")]), 0);
    assert_eq!(
        one_error(bob_c.call("one.template.rename", vec![int(t), s("other")])).0,
        AUTHORIZATION
    );
    // A negative id: the bare type is authorized first (`basic_authorization`), and -1 is
    // "Pool." in `failure_message`.
    assert_eq!(
        one_error(c.call("one.template.info", vec![int(-1)])),
        says(
            NO_EXISTS,
            "one.template.info",
            "Error getting virtual machine template Pool."
        )
    );
    assert_eq!(
        one_error(c.call("one.image.info", vec![int(-7)])),
        says(NO_EXISTS, "one.image.info", "Error getting image [-7].")
    );
    // `TemplateInfo` reads the template before any authorization.
    assert_eq!(
        one_error(bob_c.call("one.template.info", vec![int(-1)])),
        says(
            NO_EXISTS,
            "one.template.info",
            "Error getting virtual machine template Pool."
        )
    );
    assert_eq!(
        one_error(bob_c.call("one.image.info", vec![int(-1)])),
        says(
            AUTHORIZATION,
            "one.image.info",
            &format!("User [{bob}] : Not authorized to perform USE IMAGE.")
        )
    );

    // `check_name_unique`: the new owner holds the name already.
    let ann_c = zone.servers[0].client_as("ann", "pw");
    let theirs = id(
        &ann_c,
        "one.template.allocate",
        vec![s("NAME = web\nCPU = 2")],
    );
    assert_eq!(
        one_error(c.call("one.template.chown", vec![int(t), int(ann), int(-1)])),
        says(
            INTERNAL,
            "one.template.chown",
            &format!("user [{ann}] already owns virtual machine template [{theirs}] with NAME web")
        )
    );
    let img = |name: &str| {
        id(
            &c,
            "one.image.allocate",
            vec![
                s(&format!("NAME = {name}\nTYPE = DATABLOCK\nSIZE = 1")),
                int(1),
            ],
        )
    };
    let (mine, other) = (img("disk"), img("other"));
    c.call("one.image.rename", vec![int(other), s("disk")])
        .expect_err("oneadmin holds disk");
    id(&c, "one.image.chown", vec![int(mine), int(bob), int(-1)]);
    c.call("one.image.rename", vec![int(other), s("disk")])
        .expect("disk is bob's now");
    assert_eq!(
        one_error(c.call("one.image.chown", vec![int(other), int(bob), int(-1)])),
        says(
            INTERNAL,
            "one.image.chown",
            &format!("user [{bob}] already owns image [{mine}] with NAME disk")
        )
    );

    // A value other than -1, 0 or 1: refused after the authorization, by `set_permissions`.
    let chmod = |who: &Client, v: i64| {
        let mut p = vec![int(t), int(v)];
        p.extend((0..8).map(|_| int(-1)));
        who.call("one.template.chmod", p)
    };
    assert_eq!(one_error(chmod(&bob_c, 2)).0, AUTHORIZATION);
    assert_eq!(
        one_error(chmod(&c, 2)),
        says(
            INTERNAL,
            "one.template.chmod",
            "New permission values must be -1, 0 or 1"
        )
    );
    id(&c, "one.template.chmod", {
        let mut p = vec![int(t), int(1)];
        p.extend((0..8).map(|_| int(-1)));
        p
    });

    // `PoolSQL::oid_filter`: an end without a start is no range.
    let pool = |start: i64, end: i64| {
        let body = c
            .call_xml("one.templatepool.info", vec![int(-2), int(start), int(end)])
            .unwrap();
        body.matches("<VMTEMPLATE>").count()
    };
    assert_eq!((pool(-1, 0), pool(0, 0), pool(1, -1)), (2, 1, 1));

    // `usr_filter`: the caller's own objects are listed whatever their owner bits (not shown).
    let mut no_use = vec![int(theirs), int(0)];
    no_use.extend((0..8).map(|_| int(-1)));
    id(&ann_c, "one.template.chmod", no_use);
    for flag in [-3, -2, -1] {
        let mine = ann_c
            .call_xml("one.templatepool.info", vec![int(flag), int(-1), int(-1)])
            .unwrap();
        assert!(
            mine.contains(&format!("<ID>{theirs}</ID>")),
            "{flag}: {mine}"
        );
    }
    assert_eq!(
        one_error(ann_c.call("one.template.info", vec![int(theirs)])).0,
        AUTHORIZATION
    );
}

#[test]
fn updates_keep_restricted_attributes_from_users() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let ann = user(&c, "ann");
    let ann_c = zone.servers[0].client_as("ann", "pw");
    let update = |who: &Client, m: &str, id: i64, text: &str, merge: i64| {
        who.call(m, vec![int(id), s(text), int(merge)])
    };
    let changed = |m: &str, ra: &str| {
        says(
            INTERNAL,
            m,
            &format!("Cannot update template. Tried to change restricted attribute: {ra}"),
        )
    };
    let included = |m: &str, ra: &str| {
        says(
            INTERNAL,
            m,
            &format!("Cannot update template. User Template includes a restricted attribute {ra}"),
        )
    };

    eprintln!("--- template.update: VM_RESTRICTED_ATTR");
    let m = "one.template.update";
    let t = id(
        &ann_c,
        "one.template.allocate",
        vec![s("NAME = t\nCPU = 1\nMEMORY = 64")],
    );
    assert_eq!(
        one_error(update(&ann_c, m, t, "CPU = 1\nCPU_COST = 2", 0)),
        changed(m, "CPU_COST")
    );
    assert_eq!(
        one_error(update(&ann_c, m, t, "CPU_COST = 2", 1)),
        included(m, "CPU_COST")
    );
    assert_eq!(
        one_error(update(
            &ann_c,
            m,
            t,
            "NIC = [ NETWORK_ID = 0, MAC = \"02:00:00:00:00:01\" ]",
            1
        )),
        included(m, "NIC")
    );
    update(&c, m, t, "CPU_COST = 2", 1).unwrap();
    // A replace that leaves it out keeps it; the same value again is no change.
    update(&ann_c, m, t, "CPU = 2\nMEMORY = 64", 0).unwrap();
    update(&ann_c, m, t, "CPU_COST = 2", 1).unwrap();
    let body = ann_c.call_xml("one.template.info", vec![int(t)]).unwrap();
    assert!(
        body.contains("<CPU_COST><![CDATA[2]]></CPU_COST>"),
        "{body}"
    );
    assert!(body.contains("<CPU><![CDATA[2]]></CPU>"), "{body}");

    eprintln!("--- user.update: USER_RESTRICTED_ATTR and the operation names");
    let m = "one.user.update";
    assert_eq!(
        one_error(update(&ann_c, m, ann, "VM_USE_OPERATIONS = \"migrate\"", 1)),
        included(m, "VM_USE_OPERATIONS")
    );
    assert_eq!(
        one_error(update(&c, m, ann, "VM_USE_OPERATIONS = \"fly\"", 1)),
        says(
            INTERNAL,
            m,
            "Cannot update template. Unknown vm operation: fly"
        )
    );
    update(&c, m, ann, "VM_USE_OPERATIONS = \"migrate\"", 1).unwrap();
    update(&ann_c, m, ann, "NOTE = mine", 0).unwrap();
    let body = c.call_xml("one.user.info", vec![int(ann)]).unwrap();
    assert!(
        body.contains("<VM_USE_OPERATIONS><![CDATA[migrate]]></VM_USE_OPERATIONS>"),
        "{body}"
    );

    eprintln!("--- image.update: IMAGE_RESTRICTED_ATTR");
    let m = "one.image.update";
    let img = id(
        &ann_c,
        "one.image.allocate",
        vec![s("NAME = d\nTYPE = DATABLOCK\nSIZE = 1"), int(1)],
    );
    assert_eq!(
        one_error(update(&ann_c, m, img, "SOURCE = /etc/shadow", 1)),
        included(m, "SOURCE")
    );

    eprintln!("--- vn.update: VNET_RESTRICTED_ATTR");
    let m = "one.vn.update";
    let net = id(
        &c,
        "one.vn.allocate",
        vec![s("NAME = lan\nVN_MAD = bridge\nBRIDGE = br0"), int(-1)],
    );
    id(&c, "one.vn.chown", vec![int(net), int(ann), int(-1)]);
    assert_eq!(
        one_error(update(&ann_c, m, net, "BRIDGE = br9", 1)),
        included(m, "BRIDGE")
    );
    update(&ann_c, m, net, "DESCRIPTION = mine", 0).unwrap();
    let body = c.call_xml("one.vn.info", vec![int(net)]).unwrap();
    assert!(body.contains("<BRIDGE><![CDATA[br0]]></BRIDGE>"), "{body}");
    assert!(
        body.contains("<DESCRIPTION><![CDATA[mine]]></DESCRIPTION>"),
        "{body}"
    );

    eprintln!("--- vm.update: the VM's own parse, ACTION");
    let vm = id(
        &c,
        "one.vm.allocate",
        vec![s("CPU = 1\nMEMORY = 32"), Value::Bool(true)],
    );
    let (code, msg) = one_error(update(&c, "one.vm.update", vm, "A = [ B = ", 1));
    assert_eq!(code, ACTION, "{msg}");
    assert!(msg.starts_with("[one.vm.update] Parse error"), "{msg}");
}

#[test]
fn instantiate_runs_as_as_uid_and_asks_create_template_for_extra_attributes() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let ann = user(&c, "ann");
    let ann_c = zone.servers[0].client_as("ann", "pw");
    let m = "one.template.instantiate";
    let t = id(
        &c,
        "one.template.allocate",
        vec![s("NAME = t\nCPU = 1\nMEMORY = 32")],
    );
    let inst = |who: &Client, extra: &str, persistent: bool| {
        who.call(
            m,
            vec![
                int(t),
                s(""),
                Value::Bool(true),
                s(extra),
                Value::Bool(persistent),
            ],
        )
    };
    // Anyone may USE the template.
    id(&c, "one.template.chmod", {
        let mut p = vec![int(t)];
        p.extend([-1, -1, -1, -1, -1, -1, 1, -1, -1].map(int));
        p
    });
    // AS_UID/AS_GID: the VM is theirs (authorized as them), the attributes gone; an unknown
    // one is NO_EXISTS.
    let vm = inst(&c, &format!("AS_UID = {ann}\nAS_GID = 1"), false)
        .unwrap()
        .as_i64()
        .unwrap();
    let body = c.call_xml("one.vm.info", vec![int(vm)]).unwrap();
    assert!(
        body.contains(&format!("<UID>{ann}</UID>")) && body.contains("<GID>1</GID>"),
        "{body}"
    );
    assert!(!body.contains("AS_UID"), "{body}");
    assert_eq!(
        one_error(inst(&c, "AS_UID = 999", false)),
        says(NO_EXISTS, m, "Error getting user [999].")
    );
    // ann may not act as another group (0, oneadmin's, would be no change).
    let g = id(&c, "one.group.allocate", vec![s("bare")]);
    assert_eq!(
        one_error(inst(&ann_c, &format!("AS_GID = {g}"), false)),
        says(
            AUTHORIZATION,
            m,
            &format!("User [{ann}] : Not authorized to perform MANAGE GROUP [{g}].")
        )
    );
    // Persistent: the copy refuses a restricted attribute before anything is made.
    assert_eq!(
        one_error(inst(&ann_c, "CPU_COST = 3", true)),
        says(
            AUTHORIZATION,
            m,
            &format!("User [{ann}] : User Template includes a restricted attribute CPU_COST.")
        )
    );
    // A group without the default ACL: USE on the template is enough, but extra
    // attributes also need CREATE TEMPLATE (`add_create_auth`); CREATE VM is never asked.
    let bob = user(&c, "bob");
    id(&c, "one.user.chgrp", vec![int(bob), int(g)]);
    let bob_c = zone.servers[0].client_as("bob", "pw");
    inst(&bob_c, "", false).expect("USE alone instantiates");
    assert_eq!(
        one_error(inst(&bob_c, "DESCRIPTION = x", false)),
        says(
            AUTHORIZATION,
            m,
            &format!("User [{bob}] : Not authorized to perform CREATE TEMPLATE.")
        )
    );
}

#[test]
fn a_group_administrator_gives_the_groups_objects_to_its_users() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let g = id(&c, "one.group.allocate", vec![s("team")]);
    let [lead, dev, ops] = ["lead", "dev", "ops"].map(|n| {
        let u = user(&c, n);
        id(&c, "one.user.chgrp", vec![int(u), int(g)]);
        u
    });
    id(&c, "one.group.addadmin", vec![int(g), int(lead)]);
    let t = id(&c, "one.template.allocate", vec![s("NAME = app\nCPU = 1")]);
    id(&c, "one.template.chown", vec![int(t), int(dev), int(g)]);
    // `USER/@team` of the group's administrator grants MANAGE on ops (its group is team).
    let lead_c = zone.servers[0].client_as("lead", "pw");
    id(
        &lead_c,
        "one.template.chown",
        vec![int(t), int(ops), int(-1)],
    );
    let body = c.call_xml("one.template.info", vec![int(t)]).unwrap();
    assert!(body.contains(&format!("<UID>{ops}</UID>")), "{body}");
}

/// The PERMISSIONS element's nine bits as an octal number.
fn perms_of(c: &Client, method: &str, id: i64) -> i64 {
    let body = c.call_xml(method, vec![int(id)]).unwrap();
    let bit = |name: &str| body.contains(&format!("<{name}>1</{name}>")) as i64;
    ["OWNER", "GROUP", "OTHER"].iter().fold(0, |acc, class| {
        (acc << 3)
            | (bit(&format!("{class}_U")) << 2)
            | (bit(&format!("{class}_M")) << 1)
            | bit(&format!("{class}_A"))
    })
}

/// `PoolObjectSQL::set_umask`: new objects take 0777 (oneadmin's) or 0666 less the maker's
/// UMASK (`oneuser umask`), else oned.conf's DEFAULT_UMASK; a datastore's group may USE it.
#[test]
fn new_objects_take_their_makers_umask() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let template = |c: &Client, name: &str| {
        id(
            c,
            "one.template.allocate",
            vec![s(&format!("NAME = {name}\nCPU = 1\nMEMORY = 8"))],
        )
    };
    let t = template(&c, "default");
    assert_eq!(perms_of(&c, "one.template.info", t), 0o600);

    let uid = user(&c, "masked");
    let u = zone.servers[0].client_as("masked", "pw");
    let t = template(&u, "plain");
    assert_eq!(perms_of(&u, "one.template.info", t), 0o600);
    c.call(
        "one.user.update",
        vec![int(uid), s("UMASK = \"117\""), int(1)],
    )
    .unwrap();
    let t = template(&u, "shared");
    assert_eq!(perms_of(&u, "one.template.info", t), 0o660);
    // A user's object never gets ADMIN bits, whatever its umask.
    c.call("one.user.update", vec![int(uid), s("UMASK = 0"), int(1)])
        .unwrap();
    let t = template(&u, "open");
    assert_eq!(perms_of(&u, "one.template.info", t), 0o666);

    // oneadmin's: all nine bits less its umask; a datastore's group USE on top.
    c.call("one.user.update", vec![int(0), s("UMASK = 027"), int(1)])
        .unwrap();
    let t = template(&c, "admin");
    assert_eq!(perms_of(&c, "one.template.info", t), 0o750);
    c.call("one.user.update", vec![int(0), s("UMASK = 077"), int(1)])
        .unwrap();
    let ds = id(
        &c,
        "one.datastore.allocate",
        vec![s("NAME = web\nDS_MAD = fs\nTM_MAD = shared"), int(-1)],
    );
    assert_eq!(perms_of(&c, "one.datastore.info", ds), 0o740);

    // A VM made for another user (AS_UID) keeps its maker's umask (`RequestAttributes::umask`
    // stays the caller's): oneadmin's 077 on group oneadmin's nine bits, not the owner's 0.
    let vm = id(
        &c,
        "one.template.instantiate",
        vec![
            int(t),
            s("for-masked"),
            Value::Bool(true),
            s(&format!("AS_UID = {uid}")),
            Value::Bool(false),
        ],
    );
    assert_eq!(perms_of(&c, "one.vm.info", vm), 0o700);
    let body = c.call_xml("one.vm.info", vec![int(vm)]).unwrap();
    assert!(body.contains(&format!("<UID>{uid}</UID>")), "{body}");
}
