//! The owned-object path, family by family (VMs, templates, images, networks, datastores,
//! documents): an
//! owner who is not an administrator cannot grant the ADMIN bits, and another user can neither
//! see nor change the object without a permission bit or an ACL rule.

use cli::Client;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, AUTHORIZATION};

struct Family {
    /// `one.<prefix>.chmod`...
    prefix: &'static str,
    pool: &'static str,
    /// `allocate`'s parameters after the session.
    allocate: fn() -> Vec<Value>,
    /// ACL resource bit.
    bit: u64,
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

const FAMILIES: &[Family] = &[
    Family {
        prefix: "one.vm",
        pool: "one.vmpool.info",
        allocate: || vec![s("NAME = v1\nCPU = 1\nMEMORY = 64"), Value::Bool(true)],
        bit: 0x10_0000_0000,
    },
    Family {
        prefix: "one.template",
        pool: "one.templatepool.info",
        allocate: || vec![s("NAME = t1\nCPU = 1\nMEMORY = 64")],
        bit: 0x200_0000_0000,
    },
    Family {
        prefix: "one.image",
        pool: "one.imagepool.info",
        allocate: || vec![s("NAME = i1\nPATH = /tmp/i1"), Value::Int(1)],
        bit: 0x80_0000_0000,
    },
    Family {
        prefix: "one.vn",
        pool: "one.vnpool.info",
        allocate: || vec![s("NAME = n1\nVN_MAD = dummy\nBRIDGE = br0")],
        bit: 0x40_0000_0000,
    },
    Family {
        prefix: "one.datastore",
        pool: "one.datastorepool.info",
        allocate: || vec![s("NAME = d1\nTM_MAD = dummy\nDS_MAD = dummy")],
        bit: 0x1000_0000_0000,
    },
    Family {
        prefix: "one.document",
        pool: "one.documentpool.info",
        allocate: || vec![s("NAME = svc\nDESCRIPTION = x"), Value::Int(100)],
        bit: 0x4000_0000_0000,
    },
    Family {
        prefix: "one.secgroup",
        pool: "one.secgrouppool.info",
        allocate: || {
            vec![s(
                "NAME = sg\nRULE = [ PROTOCOL = ALL, RULE_TYPE = inbound ]",
            )]
        },
        bit: 0x1_0000_0000_0000,
    },
    Family {
        prefix: "one.vntemplate",
        pool: "one.vntemplatepool.info",
        allocate: || vec![s("NAME = nt1\nVN_MAD = bridge")],
        bit: 0x40_0000_0000_0000,
    },
    Family {
        prefix: "one.vmgroup",
        pool: "one.vmgrouppool.info",
        allocate: || vec![s("NAME = vg1\nROLE = [ NAME = web ]")],
        bit: 0x20_0000_0000_0000,
    },
];

/// `chmod` parameters: the id, then owner u m a, group u m a, other u m a (-1 keeps a bit).
fn chmod(id: i32, bits: [i32; 9]) -> Vec<Value> {
    std::iter::once(id).chain(bits).map(Value::Int).collect()
}

const KEEP: [i32; 9] = [-1; 9];

fn with(bits: &[(usize, i32)]) -> [i32; 9] {
    let mut out = KEEP;
    for &(i, v) in bits {
        out[i] = v;
    }
    out
}

fn user(admin: &Client, name: &str) -> i32 {
    let id = admin
        .call(
            "one.user.allocate",
            vec![
                s(name),
                s(&format!("pw-{name}")),
                s(""),
                Value::Array(vec![]),
            ],
        )
        .unwrap();
    id.as_i64().unwrap() as i32
}

/// A new object of family `f`, made by oneadmin and given to user `uid` (group users).
fn owned_by(admin: &Client, f: &Family, uid: i32) -> i32 {
    let id = admin
        .call(&format!("{}.allocate", f.prefix), (f.allocate)())
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    admin
        .call(
            &format!("{}.chown", f.prefix),
            vec![Value::Int(id), Value::Int(uid), Value::Int(1)],
        )
        .unwrap();
    id
}

fn is_denied(result: Result<Value, cli::CallError>, what: &str) {
    let (code, message) = one_error(result);
    assert_eq!(code, AUTHORIZATION, "{what}: {message}");
}

fn pool_lists(c: &Client, pool: &str, id: i32) -> bool {
    let params = if pool == "one.datastorepool.info" {
        vec![]
    } else if pool == "one.documentpool.info" {
        vec![
            Value::Int(-2),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(100),
        ]
    } else {
        vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)]
    };
    let body = c.call_xml(pool, params).unwrap();
    body.contains(&format!("<ID>{id}</ID><UID>"))
}

#[test]
fn issue_11_every_owned_family_keeps_admin_bits_and_other_users_out() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    let a_id = user(&admin, "alice");
    let b_id = user(&admin, "bob");
    let alice = server.client_as("alice", "pw-alice");
    let bob = server.client_as("bob", "pw-bob");
    // VDC 0 lets group users USE every datastore and network of the zone: out of it, only
    // the permission bits and the rules this test adds decide.
    admin
        .call("one.vdc.delgroup", vec![Value::Int(0), Value::Int(1)])
        .unwrap();

    for f in FAMILIES {
        eprintln!("--- {}", f.prefix);
        let m = |op: &str| format!("{}.{op}", f.prefix);
        // Alice's, group users, nothing for the group or others.
        let id = owned_by(&admin, f, a_id);
        admin
            .call(&m("chmod"), chmod(id, [1, 1, 0, 0, 0, 0, 0, 0, 0]))
            .unwrap();

        // The owner may change the use and manage bits, never the ADMIN ones.
        alice.call(&m("chmod"), chmod(id, with(&[(3, 1)]))).unwrap();
        alice.call(&m("chmod"), chmod(id, with(&[(3, 0)]))).unwrap();
        for admin_bit in [2, 5, 8] {
            is_denied(
                alice.call(&m("chmod"), chmod(id, with(&[(admin_bit, 1)]))),
                &format!("{} chmod of ADMIN bit {admin_bit} by its owner", f.prefix),
            );
        }

        // Bob sees and changes nothing of it.
        is_denied(bob.call(&m("info"), vec![Value::Int(id)]), "info");
        assert!(!pool_lists(&bob, f.pool, id), "{} listed to bob", f.pool);
        is_denied(
            bob.call(&m("rename"), vec![Value::Int(id), s("mine")]),
            "rename",
        );
        is_denied(
            bob.call(
                &m("update"),
                vec![Value::Int(id), s("A = 1"), Value::Int(1)],
            ),
            "update",
        );
        is_denied(bob.call(&m("chmod"), chmod(id, with(&[(6, 1)]))), "chmod");
        is_denied(
            bob.call(
                &m("chown"),
                vec![Value::Int(id), Value::Int(b_id), Value::Int(-1)],
            ),
            "chown",
        );

        // OTHER_U lets him see it, not change it.
        alice.call(&m("chmod"), chmod(id, with(&[(6, 1)]))).unwrap();
        bob.call(&m("info"), vec![Value::Int(id)]).unwrap();
        assert!(pool_lists(&bob, f.pool, id), "{} hides it from bob", f.pool);
        is_denied(
            bob.call(&m("rename"), vec![Value::Int(id), s("mine")]),
            "rename",
        );

        // An ACL rule granting MANAGE on this object lets him rename it.
        let user_sel = format!("{:x}", 0x1_0000_0000u64 | b_id as u64);
        let resource = format!("{:x}", f.bit | 0x1_0000_0000 | id as u64);
        admin
            .call("one.acl.addrule", vec![s(&user_sel), s(&resource), s("2")])
            .unwrap();
        bob.call(&m("rename"), vec![Value::Int(id), s(&format!("bobs-{id}"))])
            .unwrap();
        // Still not the ADMIN bits.
        is_denied(
            bob.call(&m("chmod"), chmod(id, with(&[(8, 1)]))),
            "chmod of ADMIN bits through an ACL rule",
        );
    }
}

/// `one.<o>.lock` / `unlock` on every lockable family (OpenNebula's `RequestManagerLock`): a
/// lock refuses what its level covers, to its owner and to oneadmin alike, never a read; only
/// its owner or oneadmin releases it.
#[test]
fn issue_11_locks_hold_back_every_lockable_family_as_opennebula() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    let a_id = user(&admin, "alice");
    user(&admin, "bob");
    let alice = server.client_as("alice", "pw-alice");
    let bob = server.client_as("bob", "pw-bob");

    // Datastores and security groups are not lockable objects.
    let lockable = |f: &&Family| !matches!(f.prefix, "one.datastore" | "one.secgroup");
    for f in FAMILIES.iter().filter(lockable) {
        eprintln!("--- {}", f.prefix);
        let m = |op: &str| format!("{}.{op}", f.prefix);
        let id = owned_by(&admin, f, a_id);

        let (code, message) =
            one_error(alice.call(&m("lock"), vec![Value::Int(id), Value::Int(7)]));
        assert_eq!(code, ACTION_CODE, "{message}");
        assert!(message.contains("Wrong lock level specified"), "{message}");

        // A MANAGE lock: reads go on, changes stop, for oneadmin too.
        alice
            .call(&m("lock"), vec![Value::Int(id), Value::Int(2)])
            .unwrap();
        let body = alice.call_xml(&m("info"), vec![Value::Int(id)]).unwrap();
        assert!(
            body.contains(&format!("<LOCK><LOCKED>2</LOCKED><OWNER>{a_id}</OWNER>")),
            "{body}"
        );
        let (code, message) = one_error(alice.call(&m("rename"), vec![Value::Int(id), s("x")]));
        assert_eq!(code, AUTHORIZATION, "{message}");
        assert!(
            message.contains("Not authorized to perform MANAGE"),
            "{message}"
        );
        let (code, message) = one_error(admin.call(&m("rename"), vec![Value::Int(id), s("x")]));
        assert_eq!(code, AUTHORIZATION, "{message}");
        assert!(
            message.ends_with(&format!("is locked. [{id}].")),
            "{message}"
        );

        // Testing a held lock answers when it was taken; bob may not even try.
        let (code, _) = one_error(alice.call(
            &m("lock"),
            vec![Value::Int(id), Value::Int(1), Value::Bool(true)],
        ));
        assert_eq!(code, ACTION_CODE);
        is_denied(
            bob.call(&m("unlock"), vec![Value::Int(id)]),
            "unlock by bob",
        );

        // Only the owner of the lock, or oneadmin, releases it.
        alice.call(&m("unlock"), vec![Value::Int(id)]).unwrap();
        alice
            .call(&m("rename"), vec![Value::Int(id), s(&format!("free-{id}"))])
            .unwrap();
        admin
            .call(&m("lock"), vec![Value::Int(id), Value::Int(3)])
            .unwrap();
        let (code, message) = one_error(alice.call(&m("unlock"), vec![Value::Int(id)]));
        assert_eq!(code, ACTION_CODE, "{message}");
        assert!(
            message.contains("Lock is owned by another user"),
            "{message}"
        );
        // An ADMIN lock leaves MANAGE alone.
        alice
            .call(
                &m("rename"),
                vec![Value::Int(id), s(&format!("still-{id}"))],
            )
            .unwrap();
        admin.call(&m("unlock"), vec![Value::Int(id)]).unwrap();
    }

    // Datastores are not lockable objects: OpenNebula has no such call.
    let fault = admin.call("one.datastore.lock", vec![Value::Int(1), Value::Int(1)]);
    assert!(format!("{fault:?}").contains("not defined"), "{fault:?}");
}

/// oneadmin's client, alice's (a new user) and a template alice made.
fn alices_template(zone: &Zone) -> (Client, Client, i32) {
    let server = &zone.servers[0];
    let admin = server.client();
    user(&admin, "alice");
    let alice = server.client_as("alice", "pw-alice");
    let id = alice
        .call(
            "one.template.allocate",
            vec![s("NAME = t1\nCPU = 1\nMEMORY = 64")],
        )
        .unwrap()
        .as_i64()
        .unwrap() as i32;
    (admin, alice, id)
}

/// `chmod` asks ADMIN, not oneadmin, when an ADMIN bit changes: an owner given OWNER_A may set
/// the others, as in OpenNebula.
#[test]
fn issue_11_chmod_of_admin_bits_needs_the_admin_right_not_the_admin_group() {
    let zone = Zone::solo();
    let (admin, alice, id) = alices_template(&zone);
    is_denied(
        alice.call("one.template.chmod", chmod(id, with(&[(5, 1)]))),
        "GROUP_A without ADMIN",
    );
    admin
        .call("one.template.chmod", chmod(id, with(&[(2, 1)])))
        .unwrap();
    alice
        .call("one.template.chmod", chmod(id, with(&[(5, 1)])))
        .unwrap();
    let body = alice
        .call_xml("one.template.info", vec![Value::Int(id)])
        .unwrap();
    assert!(body.contains("<GROUP_A>1</GROUP_A>"), "{body}");
}

/// `ENABLE_OTHER_PERMISSIONS = "NO"`: a user may no longer open an object to others; oneadmin
/// still may (`RequestManagerChmod`).
#[test]
fn issue_11_other_permissions_can_be_disabled_for_users() {
    let zone = Zone::solo_custom(
        None,
        Some(Box::new(|_, s| {
            s.extra_conf = "ENABLE_OTHER_PERMISSIONS = \"NO\"\n".to_string();
        })),
    );
    let (admin, alice, id) = alices_template(&zone);
    let (code, message) = one_error(alice.call("one.template.chmod", chmod(id, with(&[(6, 1)]))));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(
        message.contains("'other' permissions is disabled in oned.conf"),
        "{message}"
    );
    // The group bits stay the owner's to set, and oneadmin sets the other bits.
    alice
        .call("one.template.chmod", chmod(id, with(&[(3, 1)])))
        .unwrap();
    admin
        .call("one.template.chmod", chmod(id, with(&[(6, 1)])))
        .unwrap();
}
