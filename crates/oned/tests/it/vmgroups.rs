//! VM groups (`one.vmgroup.*`): roles and the AFFINED / ANTI_AFFINED rules between them with
//! OpenNebula's checks at allocate, update and role add, delete and update, on every server of
//! a zone; users without MANAGE kept out; and `onevmgroup`.

use std::path::Path;

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn id(v: Value) -> i32 {
    v.as_i64().unwrap() as i32
}

const WEB: &str = "NAME = web\nDESCRIPTION = shop\n\
    ROLE = [ NAME = db, POLICY = AFFINED, HOST_AFFINED = \"1,2\" ]\n\
    ROLE = [ NAME = app, POLICY = ANTI_AFFINED ]\n\
    ROLE = [ NAME = cache ]\n\
    ANTI_AFFINED = \"db, app\"";

#[test]
fn vm_groups_keep_roles_and_rules_as_opennebula_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    // Written through a follower, forwarded to the leader.
    let f = zone.servers[follower].client();
    let web = id(f.call("one.vmgroup.allocate", vec![s(WEB)]).unwrap());
    f.call(
        "one.vmgroup.roleadd",
        vec![Value::Int(web), s("ROLE = [ NAME = lb, POLICY = AFFINED ]")],
    )
    .unwrap();

    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} has role lb"), || {
            c.call_xml("one.vmgroup.info", vec![Value::Int(web)])
                .is_ok_and(|b| b.contains("lb"))
        });
        let body = c
            .call_xml("one.vmgroup.info", vec![Value::Int(web)])
            .unwrap();
        assert!(body.starts_with("<VM_GROUP><ID>"), "{body}");
        assert!(body.contains("<NAME>web</NAME><PERMISSIONS>"), "{body}");
        assert!(
            body.contains(
                "<ROLES><ROLE><HOST_AFFINED><![CDATA[1,2]]></HOST_AFFINED><ID><![CDATA[0]]></ID><NAME><![CDATA[db]]></NAME><POLICY><![CDATA[AFFINED]]></POLICY></ROLE>"
            ),
            "{body}"
        );
        assert!(
            body.contains("<ROLE><ID><![CDATA[3]]></ID><NAME><![CDATA[lb]]></NAME>"),
            "{body}"
        );
        // NAME and the roles are not the template's.
        assert!(
            body.ends_with(
                "</ROLES><TEMPLATE><ANTI_AFFINED><![CDATA[db, app]]></ANTI_AFFINED><DESCRIPTION><![CDATA[shop]]></DESCRIPTION></TEMPLATE></VM_GROUP>"
            ),
            "{body}"
        );
    }

    let c = zone.servers[leader].client();
    let allocate = |t: &str| one_error(c.call("one.vmgroup.allocate", vec![s(t)]));
    let m = "[one.vmgroup.allocate]";
    assert_eq!(
        allocate(WEB),
        (
            INTERNAL,
            format!("{m} NAME is already taken by VMGroup {web}.")
        )
    );
    assert_eq!(
        allocate("ROLE = [ NAME = a ]"),
        (INTERNAL, format!("{m} Invalid NAME, it cannot be empty"))
    );
    assert_eq!(
        allocate("NAME = x\nROLE = [ POLICY = AFFINED ]"),
        (INTERNAL, format!("{m} Missing NAME in VM group role"))
    );
    assert_eq!(
        allocate("NAME = x\nROLE = [ NAME = a ]\nROLE = [ NAME = a ]"),
        (INTERNAL, format!("{m} Role already exists"))
    );
    assert_eq!(
        allocate("NAME = x\nROLE = [ NAME = a ]\nAFFINED = \"a, b\""),
        (
            INTERNAL,
            format!("{m} Some roles used in AFFINED attribute (a, b) are not defined")
        )
    );
    assert_eq!(
        allocate("NAME = x\nROLE = [ NAME = a, POLICY = ANTI_AFFINED ]\nAFFINED = a"),
        (
            INTERNAL,
            format!("{m} Role a is in an AFFINED rule but the role policy is ANTI_AFFINED")
        )
    );
    assert_eq!(
        allocate(
            "NAME = x\nROLE = [ NAME = a ]\nROLE = [ NAME = b ]\nAFFINED = \"a,b\"\nANTI_AFFINED = b"
        ),
        (
            INTERNAL,
            format!("{m} Roles defined in AFFINED and ANTI_AFFINED rules: b")
        )
    );
    assert_eq!(
        allocate("NAME = x\nROLE = [ NAME = a ]\nAFFINED = a\nAFFINED = \" a\""),
        (
            INTERNAL,
            format!("{m} Duplicated AFFINED rule ( a) detected.")
        )
    );

    // Role calls: ACTION refusals, as `RequestManagerVMGroup`.
    let call = |method: &str, params: Vec<Value>| {
        let mut all = vec![Value::Int(web)];
        all.extend(params);
        one_error(c.call(&format!("one.vmgroup.{method}"), all))
    };
    assert_eq!(
        call("roleadd", vec![s("NAME = x")]),
        (
            ACTION_CODE,
            "[one.vmgroup.roleadd] No ROLE attribute in template".into()
        )
    );
    assert_eq!(
        call("roleadd", vec![s("ROLE = [ NAME = db ]")]),
        (
            ACTION_CODE,
            "[one.vmgroup.roleadd] Role already exists".into()
        )
    );
    assert_eq!(
        call("roledelete", vec![Value::Int(0)]),
        (
            ACTION_CODE,
            "[one.vmgroup.roledelete] Some roles used in ANTI_AFFINED attribute (db, app) are not defined"
                .into()
        )
    );
    assert_eq!(
        call("roledelete", vec![Value::Int(9)]),
        (
            ACTION_CODE,
            "[one.vmgroup.roledelete] Unable to delete role 9, the role doesn't exists".into()
        )
    );
    assert_eq!(
        call("roleupdate", vec![Value::Int(9), s("ROLE = [ NAME = z ]")]),
        (
            ACTION_CODE,
            format!("[one.vmgroup.roleupdate] VMGroup {web} doesn't have role 9")
        )
    );
    assert_eq!(
        call("roleupdate", vec![Value::Int(2), s("ROLE = [ NAME = db ]")]),
        (
            ACTION_CODE,
            format!(
                "[one.vmgroup.roleupdate] VMGroup {web} Role 2 can not update name, role with name db already exists"
            )
        )
    );
    // A role no rule names is renamed, then deleted; the next role takes the next id.
    c.call(
        "one.vmgroup.roleupdate",
        vec![
            Value::Int(web),
            Value::Int(2),
            s("ROLE = [ NAME = mem, HOST_ANTI_AFFINED = 4 ]"),
        ],
    )
    .unwrap();
    let body = c
        .call_xml("one.vmgroup.info", vec![Value::Int(web)])
        .unwrap();
    assert!(
        body.contains(
            "<ROLE><HOST_ANTI_AFFINED><![CDATA[4]]></HOST_ANTI_AFFINED><ID><![CDATA[2]]></ID><NAME><![CDATA[mem]]></NAME></ROLE>"
        ),
        "{body}"
    );
    c.call(
        "one.vmgroup.roledelete",
        vec![Value::Int(web), Value::Int(3)],
    )
    .unwrap();
    c.call(
        "one.vmgroup.roleadd",
        vec![Value::Int(web), s("ROLE = [ NAME = lb2 ]")],
    )
    .unwrap();
    let body = c
        .call_xml("one.vmgroup.info", vec![Value::Int(web)])
        .unwrap();
    assert!(!body.contains("<NAME><![CDATA[lb]]>"), "{body}");
    assert!(
        body.contains("<ID><![CDATA[3]]></ID><NAME><![CDATA[lb2]]></NAME>"),
        "{body}"
    );

    // Update: the rules must agree with the roles; ROLE attributes are dropped.
    let update = |t: &str, kind: i32| {
        c.call(
            "one.vmgroup.update",
            vec![Value::Int(web), s(t), Value::Int(kind)],
        )
    };
    assert_eq!(
        one_error(update("AFFINED = \"db, nope\"", 1)),
        (
            INTERNAL,
            "[one.vmgroup.update] Cannot update template. Some roles used in AFFINED attribute (db, nope) are not defined"
                .into()
        )
    );
    assert_eq!(
        one_error(update("AFFINED = \"db, mem\"", 1)),
        (
            INTERNAL,
            "[one.vmgroup.update] Cannot update template. Roles defined in AFFINED and ANTI_AFFINED rules: db"
                .into()
        )
    );
    update("AFFINED = \"mem, lb2\"\nROLE = [ NAME = sneaky ]", 1).unwrap();
    let body = c
        .call_xml("one.vmgroup.info", vec![Value::Int(web)])
        .unwrap();
    assert!(
        body.contains("<TEMPLATE><AFFINED><![CDATA[mem, lb2]]></AFFINED><ANTI_AFFINED>"),
        "{body}"
    );
    assert!(!body.contains("sneaky"), "{body}");
    // A role in an AFFINED rule cannot become ANTI_AFFINED.
    assert_eq!(
        call(
            "roleupdate",
            vec![Value::Int(2), s("ROLE = [ POLICY = anti_affined ]")]
        ),
        (
            ACTION_CODE,
            "[one.vmgroup.roleupdate] Role mem is in an AFFINED rule but the role policy is ANTI_AFFINED"
                .into()
        )
    );
    // Nor may an ANTI_AFFINED role enter an AFFINED rule.
    assert_eq!(
        one_error(update("AFFINED = \"app\"", 1)),
        (
            INTERNAL,
            "[one.vmgroup.update] Cannot update template. Role app is in an AFFINED rule but the role policy is ANTI_AFFINED"
                .into()
        )
    );

    // A group that is not there.
    assert_eq!(
        one_error(c.call(
            "one.vmgroup.roleupdate",
            vec![Value::Int(99), Value::Int(0), s("ROLE = [ NAME = a ]")]
        )),
        (
            NO_EXISTS,
            "[one.vmgroup.roleupdate] Error getting vm group [99].".into()
        )
    );
    let pool = c
        .call_xml(
            "one.vmgrouppool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(pool.starts_with("<VM_GROUP_POOL><VM_GROUP><ID>"), "{pool}");
    assert_eq!(pool.matches("<VM_GROUP>").count(), 1, "{pool}");

    c.call("one.vmgroup.delete", vec![Value::Int(web)]).unwrap();
    assert_eq!(
        one_error(c.call_xml("one.vmgroup.info", vec![Value::Int(web)])),
        (
            NO_EXISTS,
            format!("[one.vmgroup.info] Error getting vm group [{web}].")
        )
    );
}

#[test]
fn role_calls_need_manage_on_the_group_and_respect_its_lock() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    admin
        .call(
            "one.user.allocate",
            vec![s("alice"), s("pw-alice"), s(""), Value::Array(vec![])],
        )
        .unwrap();
    let alice = server.client_as("alice", "pw-alice");
    // Users may create VM groups by OpenNebula's default rules.
    let mine = id(alice
        .call("one.vmgroup.allocate", vec![s("NAME = mine")])
        .unwrap());
    let theirs = id(admin
        .call("one.vmgroup.allocate", vec![s("NAME = theirs")])
        .unwrap());
    let (code, message) = one_error(alice.call(
        "one.vmgroup.roleadd",
        vec![Value::Int(theirs), s("ROLE = [ NAME = a ]")],
    ));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(
        message.ends_with(&format!(
            "Not authorized to perform MANAGE VMGROUP [{theirs}]."
        )),
        "{message}"
    );
    alice
        .call(
            "one.vmgroup.roleadd",
            vec![Value::Int(mine), s("ROLE = [ NAME = a ]")],
        )
        .unwrap();
    alice
        .call("one.vmgroup.lock", vec![Value::Int(mine), Value::Int(2)])
        .unwrap();
    let (code, message) = one_error(alice.call(
        "one.vmgroup.roledelete",
        vec![Value::Int(mine), Value::Int(0)],
    ));
    assert_eq!(code, AUTHORIZATION, "{message}");
    alice
        .call("one.vmgroup.unlock", vec![Value::Int(mine)])
        .unwrap();
    alice
        .call(
            "one.vmgroup.roledelete",
            vec![Value::Int(mine), Value::Int(0)],
        )
        .unwrap();
}

/// A template file in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn onevmgroup_creates_lists_and_edits_roles_as_opennebula() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| server.cli(Kind::VmGroup, args).ok();
    let path = file(dir.path(), "web.tpl", WEB);
    assert_eq!(cli(&["create", &path]), "ID: 0\n");

    let list = cli(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].contains("ID") && lines[0].contains("ROLES"),
        "{list}"
    );
    assert!(lines[1].contains("db, app, cache"), "{list}");

    // Role attributes without ROLE=[ ] are wrapped, as OpenNebula's CLI does.
    let role = file(dir.path(), "role.tpl", "NAME=lb\nPOLICY=AFFINED");
    cli(&["role-add", "web", &role]);
    let more = file(dir.path(), "more.tpl", "HOST_AFFINED=\"7\"");
    cli(&["role-update", "web", "lb", &more]);
    let show = cli(&["show", "web"]);
    assert!(
        show.starts_with("VM GROUP 0 INFORMATION\nID             : 0\n"),
        "{show}"
    );
    assert!(show.contains("\nROLES\nID   NAME     POLICY"), "{show}");
    assert!(show.contains("\n3    lb       AFFINED      7 "), "{show}");
    assert!(show.contains("DESCRIPTION=\"shop\""), "{show}");
    cli(&["role-delete", "web", "3"]);
    cli(&["role-delete", "web", "cache"]);
    let show = cli(&["show", "web", "-x"]);
    assert!(!show.contains("lb") && !show.contains("cache"), "{show}");

    cli(&["rename", "web", "shop"]);
    cli(&["chmod", "shop", "640"]);
    cli(&["lock", "shop", "--admin"]);
    let show = cli(&["show", "shop", "-x"]);
    assert!(show.contains("<LOCK><LOCKED>3</LOCKED>"), "{show}");
    assert!(show.contains("<GROUP_U>1</GROUP_U>"), "{show}");
    cli(&["unlock", "shop"]);
    let desc = file(dir.path(), "desc.tpl", "LABEL = \"blue\"");
    cli(&["update", "shop", &desc, "--append"]);
    assert!(cli(&["show", "shop"]).contains("LABEL=\"blue\""));
    cli(&["chown", "shop", "oneadmin", "users"]);
    cli(&["chgrp", "shop", "oneadmin"]);

    let (code, _, err) = server
        .cli(Kind::VmGroup, &["role-delete", "shop", "nope"])
        .parts();
    assert_eq!(code, 255);
    assert!(err.contains("nope not found or duplicated"), "{err}");
    cli(&["delete", "shop"]);
    let (code, _, err) = server.cli(Kind::VmGroup, &["show", "shop"]).parts();
    assert_eq!(code, 255);
    assert!(err.contains("VM_GROUP named shop not found."), "{err}");
    let bad = file(dir.path(), "bad.tpl", "NAME = x\nROLE = [ POLICY = NONE ]");
    let (code, _, err) = server.cli(Kind::VmGroup, &["create", &bad]).parts();
    assert_eq!(code, 255);
    assert!(
        err.contains("[one.vmgroup.allocate] Missing NAME in VM group role"),
        "{err}"
    );
}
