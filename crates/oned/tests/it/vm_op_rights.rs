//! `one.vm.rename` and `one.vm.update` need the right `VM_ADMIN/MANAGE/USE_OPERATIONS` give
//! them (the user's template, then its group's, then oned.conf), as OpenNebula's
//! `RENAME_ACTION` and `UPDATE_ACTION`; chown, chmod and lock keep their own rights.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, AUTHORIZATION, DEADLINE, NO_EXISTS};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn name_of(c: &cli::Client, vm: i32) -> String {
    let body = c.call_xml("one.vm.info", vec![Value::Int(vm)]).unwrap();
    body.split("<NAME>")
        .nth(1)
        .and_then(|r| r.split("</NAME>").next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn vm_rename_and_update_take_their_right_from_the_operation_lists() {
    // rename becomes an administrator's operation, update a user's.
    let setup = |_: usize, srv: &mut crate::zone::Server| {
        srv.extra_conf
            .push_str("VM_ADMIN_OPERATIONS = \"rename\"\nVM_USE_OPERATIONS = \"update\"\n");
        srv.write_conf();
    };
    let zone = Zone::bootstrap_custom(3, None, Some(Box::new(setup)));
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let follower = &zone.servers[(leader + 1) % 3];
    let carol_uid = ok(
        &c,
        "one.user.allocate",
        vec![s("carol"), s("pw"), s(""), Value::Array(vec![])],
    );
    let carol = follower.client_as("carol", "pw");
    // The follower authenticates carol once it has her.
    zone.wait_until(DEADLINE, "the follower knows carol", || {
        carol.call("one.user.info", vec![Value::Int(-1)]).is_ok()
    });
    let lcarol = zone.servers[leader].client_as("carol", "pw");

    tracing::info!("--- the owner (MANAGE) may not rename, through a follower");
    let mine = ok(
        &carol,
        "one.vm.allocate",
        vec![s("NAME = mine\nCPU = 0.1\nMEMORY = 32")],
    );
    let (code, msg) = one_error(carol.call("one.vm.rename", vec![Value::Int(mine), s("other")]));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(msg.contains(&format!("ADMIN VM [{mine}]")), "{msg}");
    // chown, chmod and lock are no VM operations: MANAGE (the owner's) is enough for them.
    ok(
        &carol,
        "one.vm.chmod",
        vec![
            Value::Int(mine),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
        ],
    );
    ok(&carol, "one.vm.lock", vec![Value::Int(mine), Value::Int(4)]);
    ok(&carol, "one.vm.unlock", vec![Value::Int(mine)]);
    ok(
        &carol,
        "one.vm.update",
        vec![Value::Int(mine), s("NOTE = mine"), Value::Int(1)],
    );
    // The administrator may.
    ok(&c, "one.vm.rename", vec![Value::Int(mine), s("renamed")]);
    assert_eq!(name_of(&c, mine), "renamed");
    let (code, _) = one_error(c.call("one.vm.rename", vec![Value::Int(999), s("x")]));
    assert_eq!(code, NO_EXISTS);
    let (code, _) = one_error(carol.call(
        "one.vm.update",
        vec![Value::Int(999), s("A = 1"), Value::Int(1)],
    ));
    assert_eq!(code, NO_EXISTS);

    tracing::info!("--- update needs only USE: a VM others may use");
    let shared = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = shared\nCPU = 0.1\nMEMORY = 32")],
    );
    let (code, msg) = one_error(carol.call("one.vm.update", vec![Value::Int(shared), s("A = 1")]));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(msg.contains(&format!("USE VM [{shared}]")), "{msg}");
    ok(
        &c,
        "one.vm.chmod",
        vec![
            Value::Int(shared),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(1),
            Value::Int(-1),
            Value::Int(-1),
        ],
    );
    zone.wait_until(DEADLINE, "carol may update the shared VM", || {
        carol
            .call(
                "one.vm.update",
                vec![Value::Int(shared), s("A = 1"), Value::Int(1)],
            )
            .is_ok()
    });

    tracing::info!("--- the group's lists come before oned.conf's");
    ok(
        &c,
        "one.group.update",
        vec![
            Value::Int(1),
            s("VM_USE_OPERATIONS = \"rename\""),
            Value::Int(1),
        ],
    );
    ok(
        &lcarol,
        "one.vm.rename",
        vec![Value::Int(mine), s("by-group")],
    );
    assert_eq!(name_of(&c, mine), "by-group");

    tracing::info!("--- the user's lists come before its group's");
    ok(
        &c,
        "one.user.update",
        vec![
            Value::Int(carol_uid),
            s("VM_MANAGE_OPERATIONS = \"update\"\nVM_ADMIN_OPERATIONS = \"rename\""),
            Value::Int(1),
        ],
    );
    let (code, msg) = one_error(lcarol.call(
        "one.vm.update",
        vec![Value::Int(shared), s("B = 2"), Value::Int(1)],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    let (code, msg) = one_error(lcarol.call("one.vm.rename", vec![Value::Int(mine), s("again")]));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(msg.contains("ADMIN VM"), "{msg}");
    // Without lists of its own, the group's decide again.
    ok(
        &c,
        "one.user.update",
        vec![Value::Int(carol_uid), s("LABEL = x"), Value::Int(0)],
    );
    ok(&lcarol, "one.vm.rename", vec![Value::Int(mine), s("again")]);
    assert_eq!(name_of(&c, mine), "again");
}
