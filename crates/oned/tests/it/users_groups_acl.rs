//! Users, groups and ACL rules refused, and cleaned up, as OpenNebula 7.0.2's
//! `RequestManagerUser`, `RequestManagerGroup`, `AclManager` and `AclRule` have them.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, INTERNAL};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i64) -> Value {
    Value::Int(v as i32)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i64 {
    match c.call(method, params) {
        Ok(v) => v.as_i64().unwrap(),
        Err(e) => panic!("{method}: {e}"),
    }
}

fn says(code: i32, method: &str, why: &str) -> (i32, String) {
    (code, format!("[{method}] {why}"))
}

#[test]
fn user_and_group_edits_are_refused_in_opennebulas_words() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let m = "one.user.enable";
    assert_eq!(
        one_error(c.call(m, vec![i(0), Value::Bool(false)])),
        says(ACTION_CODE, m, "Cannot enable/disable oneadmin user")
    );
    let g = ok(&c, "one.group.allocate", vec![s("team")]);
    let u = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    ok(&c, "one.user.addgroup", vec![i(u), i(g)]);
    for (m, gid, why) in [
        ("one.user.addgroup", g, "User is already in this group"),
        ("one.user.addgroup", 1, "User is already in this group"),
        (
            "one.user.delgroup",
            1,
            "Cannot remove user from the primary group",
        ),
        ("one.user.delgroup", 0, "User is not part of this group"),
    ] {
        assert_eq!(
            one_error(c.call(m, vec![i(u), i(gid)])),
            says(ACTION_CODE, m, why),
            "{m} {gid}"
        );
    }
    let edit = |m: &str, gid: i64| one_error(c.call(m, vec![i(gid), i(u)]));
    assert_eq!(
        edit("one.group.addadmin", 0),
        says(
            INTERNAL,
            "one.group.addadmin",
            &format!("Cannot edit group. User {u} is not part of Group 0.")
        )
    );
    assert_eq!(
        edit("one.group.deladmin", g),
        says(
            INTERNAL,
            "one.group.deladmin",
            &format!("Cannot edit group. User {u} is not an administrator of Group {g}.")
        )
    );
    ok(&c, "one.group.addadmin", vec![i(g), i(u)]);
    assert_eq!(
        edit("one.group.addadmin", g),
        says(
            INTERNAL,
            "one.group.addadmin",
            &format!("Cannot edit group. User {u} is already an administrator of Group {g}.")
        )
    );
    let m = "one.group.delete";
    assert_eq!(
        one_error(c.call(m, vec![i(g)])),
        says(
            ACTION_CODE,
            m,
            &format!("Cannot delete group. Group {g} is not empty.")
        )
    );
}

/// `one.system.config`: the database's connection settings are `***` but to group oneadmin.
#[test]
fn the_configuration_hides_the_database_settings_from_users() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    // `VectorAttribute::to_xml(oss, hidden)`: plain text, not CDATA.
    let hidden = "<BACKEND>***</BACKEND>";
    let theirs = ann.call_xml("one.system.config", vec![]).unwrap();
    assert!(theirs.contains(hidden), "{theirs}");
    let ours = c.call_xml("one.system.config", vec![]).unwrap();
    assert!(ours.contains("<DB>") && !ours.contains(hidden), "{ours}");
    // OpenNebula's built-in defaults for what oned.conf leaves out (`OpenNebulaTemplate`).
    for default in [
        "<API_LIST_ORDER><![CDATA[DESC]]></API_LIST_ORDER>",
        "<DEFAULT_UMASK><![CDATA[177]]></DEFAULT_UMASK>",
        "<NAME><![CDATA[local]]></NAME>",
    ] {
        assert!(ours.contains(default), "{default} in {ours}");
    }
}

#[test]
fn acl_rules_are_refused_listed_and_dropped_as_aclmanager_does() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let m = "one.acl.addrule";
    let add = |user: &str, resource: &str, rights: &str| {
        c.call(m, vec![s(user), s(resource), s(rights), s("400000000")])
    };
    let u = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    // #ann USER/#ann MANAGE *: a rule on exactly the user, which goes with it.
    let me = format!("{:x}", 0x1_0000_0000_u64 | u as u64);
    let on_me = format!("{:x}", 0x100_0000_0000_u64 | 0x1_0000_0000 | u as u64);
    add(&me, &on_me, "2").unwrap();
    assert_eq!(
        one_error(add(&me, &on_me, "2")),
        says(
            INTERNAL,
            m,
            &format!("Rule #{u} USER/#{u} MANAGE * already exists")
        )
    );
    let listed = c.call_xml("one.acl.info", vec![]).unwrap();
    let first = listed.find("<STRING>").map(|at| &listed[at..at + 30]);
    assert_eq!(
        first,
        Some(
            format!("<STRING>#{u} USER/#{u} MANAGE *</STRING>")
                .get(..30)
                .unwrap()
        ),
        "rules come out by their user mask, #id first: {listed}"
    );
    for (resource, why) in [
        (
            "1000000000",
            "Rule #2 VM/?? USE * is malformed: [resource] is missing one of the INDIVIDUAL, \
             GROUP, CLUSTER or ALL bits",
        ),
        (
            "1800000064",
            "Rule #2 VM/%100 USE * is malformed: [resource] CLUSTER(%) selector can be applied \
             only to DATASTORE, HOST and NET types",
        ),
        (
            "1100000003",
            "Rule #2 VM/#3 USE * is malformed: [resource] INDIVIDUAL(#) selector cannot be \
             applied to ALL zones, except for USER, GROUP and ZONE types",
        ),
    ] {
        assert_eq!(
            one_error(add("100000002", resource, "1")),
            says(INTERNAL, m, why),
            "{resource}"
        );
    }
    assert_eq!(
        one_error(add("100000002", "2400000001", "zz")),
        says(
            INTERNAL,
            m,
            "Rule #2 HOST/*  * is malformed: when using the ALL bit, [resource] ID must be \
             0; wrong [rights], it cannot be 0"
        )
    );
    ok(&c, "one.user.delete", vec![i(u)]);
    let listed = c.call_xml("one.acl.info", vec![]).unwrap();
    assert!(!listed.contains(&format!("USER/#{u}")), "{listed}");
}

#[test]
fn deleting_any_object_drops_the_rules_on_exactly_it() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    // `RequestManagerDelete::delete_object`'s `del_resource_rules` for every family it serves
    // (clusters also `del_cid_rules`): `* <TYPE>/#id USE #0` goes with the object.
    let objects: Vec<(u64, &str, i64)> = vec![
        (
            0x2000_0000_0000,
            "one.cluster.delete",
            ok(&c, "one.cluster.allocate", vec![s("c1")]),
        ),
        (
            0x2_0000_0000_0000,
            "one.vdc.delete",
            ok(&c, "one.vdc.allocate", vec![s("NAME = v1")]),
        ),
        (
            0x4_0000_0000_0000,
            "one.vrouter.delete",
            ok(&c, "one.vrouter.allocate", vec![s("NAME = r1")]),
        ),
        (
            0x100_0000_0000_0000,
            "one.backupjob.delete",
            ok(&c, "one.backupjob.allocate", vec![s("NAME = b1")]),
        ),
        (
            0x80_0000_0000,
            "one.image.delete",
            ok(
                &c,
                "one.image.allocate",
                vec![s("NAME = i1\nTYPE = DATABLOCK\nSIZE = 1"), i(1)],
            ),
        ),
        (
            0x8_0000_0000_0000,
            "one.market.delete",
            ok(
                &c,
                "one.market.allocate",
                vec![s(
                    "NAME = m1\nMARKET_MAD = http\nBASE_URL = \"http://m.example/\"\nPUBLIC_DIR = /srv/market",
                )],
            ),
        ),
    ];
    let listed = || c.call_xml("one.acl.info", vec![]).unwrap();
    let before = listed().matches("<ACL>").count();
    for (kind, _, id) in &objects {
        let resource = format!("{:x}", kind | 0x1_0000_0000 | *id as u64);
        c.call(
            "one.acl.addrule",
            vec![s("400000000"), s(&resource), s("1"), s("100000000")],
        )
        .unwrap();
    }
    assert_eq!(listed().matches("<ACL>").count(), before + objects.len());
    for (n, (_, delete, id)) in objects.iter().enumerate() {
        let mut params = vec![i(*id)];
        if *delete == "one.image.delete" {
            // Still LOCKED while the dummy driver copies it.
            params.push(Value::Bool(true));
        }
        ok(&c, delete, params);
        let left = listed();
        assert_eq!(
            left.matches("<ACL>").count(),
            before + objects.len() - n - 1,
            "{delete} {id}: {left}"
        );
    }
}

/// A fresh zone's users and groups as `UserPool`'s and `GroupPool`'s constructors make them:
/// oneadmin and serveradmin with a TOKEN_PASSWORD (`UserPool::allocate`), group users with
/// its SUNSTONE views.
#[test]
fn bootstrap_users_have_a_token_password_and_users_its_sunstone_views() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    for uid in [0, 1] {
        let body = c
            .call_xml("one.user.info", vec![xmlrpc::Value::Int(uid)])
            .unwrap();
        let token = body
            .split("<TOKEN_PASSWORD><![CDATA[")
            .nth(1)
            .and_then(|r| r.split("]]>").next())
            .unwrap_or("");
        assert_eq!(token.len(), 64, "{body}");
    }
    // -1 is no user: `Request::failure_response` says ` Pool.` for it.
    assert_eq!(
        one_error(c.call("one.user.passwd", vec![i(-1), s("x")])),
        (
            0x400,
            "[one.user.passwd] Error getting user Pool.".to_string()
        )
    );
    let body = c
        .call_xml("one.group.info", vec![xmlrpc::Value::Int(1)])
        .unwrap();
    assert!(
        body.contains(
            "<TEMPLATE><SUNSTONE><DEFAULT_VIEW><![CDATA[cloud]]></DEFAULT_VIEW>\
             <GROUP_ADMIN_DEFAULT_VIEW><![CDATA[groupadmin]]></GROUP_ADMIN_DEFAULT_VIEW>\
             <GROUP_ADMIN_VIEWS><![CDATA[groupadmin,cloud]]></GROUP_ADMIN_VIEWS>\
             <VIEWS><![CDATA[cloud]]></VIEWS></SUNSTONE></TEMPLATE>"
        ),
        "{body}"
    );
}

/// `one.datastore.allocate` is authorized by ACL rules (CREATE DATASTORE and ADMIN on the
/// cluster, in one request, after the template and the cluster are read).
#[test]
fn datastores_are_created_by_acl_rules() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let ds = |who: &cli::Client, cluster: i64| {
        who.call(
            "one.datastore.allocate",
            vec![s("NAME = mine\nDS_MAD = fs\nTM_MAD = local"), i(cluster)],
        )
    };
    assert_eq!(
        one_error(ds(&ann, 7)),
        (
            0x400,
            "[one.datastore.allocate] Error getting cluster [7].".into()
        )
    );
    assert_eq!(
        one_error(ds(&ann, 0)),
        says(
            0x200,
            "one.datastore.allocate",
            &format!(
                "User [{uid}] : Not authorized to perform CREATE DATASTORE; Not authorized to \
                 perform ADMIN CLUSTER [0]."
            )
        )
    );
    let user = format!("{:x}", 0x1_0000_0000u64 | uid as u64);
    // `#ann DATASTORE/* CREATE` and `#ann CLUSTER/#0 ADMIN`.
    for (resource, rights) in [("100400000000", "8"), ("200100000000", "4")] {
        c.call(
            "one.acl.addrule",
            vec![s(&user), s(resource), s(rights), s("100000000")],
        )
        .unwrap();
    }
    let made = ds(&ann, 0).unwrap().as_i64().unwrap();
    let body = c.call_xml("one.datastore.info", vec![i(made)]).unwrap();
    assert!(body.contains(&format!("<UID>{uid}</UID>")), "{body}");
}

/// `basic_authorization` of a negative id asks for the bare type (AUTHORIZATION for a user
/// without a rule on every object of it), and reads the object first even for group oneadmin
/// (`chauth`'s password and `update`'s type come after NO_EXISTS).
#[test]
fn negative_ids_ask_the_bare_type_and_missing_users_come_first() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    assert_eq!(
        one_error(ann.call("one.user.passwd", vec![i(-5), s("x")])),
        says(
            0x200,
            "one.user.passwd",
            &format!("User [{uid}] : Not authorized to perform MANAGE USER.")
        )
    );
    assert_eq!(
        one_error(ann.call("one.host.info", vec![i(-3)])),
        says(
            0x200,
            "one.host.info",
            &format!("User [{uid}] : Not authorized to perform USE HOST.")
        )
    );
    assert_eq!(
        one_error(c.call("one.user.chauth", vec![i(999), s("core"), s(" bad")])),
        says(0x400, "one.user.chauth", "Error getting user [999].")
    );
    assert_eq!(
        one_error(c.call("one.user.update", vec![i(999), s("A = 1"), i(7)])),
        says(0x400, "one.user.update", "Error getting user [999].")
    );
}

/// `GroupSetQuota` asks ADMIN on the group through `basic_authorization`: an ACL rule grants it.
#[test]
fn a_rule_granting_admin_on_a_group_lets_its_quotas_be_set() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let gid = ok(&c, "one.group.allocate", vec![s("team")]);
    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let quota = || ann.call("one.group.quota", vec![i(gid), s("VM = [ VMS = 3 ]")]);
    assert_eq!(
        one_error(quota()),
        says(
            0x200,
            "one.group.quota",
            &format!("User [{uid}] : Not authorized to perform ADMIN GROUP [{gid}].")
        )
    );
    let user = format!("{:x}", 0x1_0000_0000u64 | uid as u64);
    let group = format!("{:x}", 0x400_0000_0000u64 | 0x1_0000_0000 | gid as u64);
    c.call(
        "one.acl.addrule",
        vec![s(&user), s(&group), s("4"), s("100000000")],
    )
    .unwrap();
    quota().unwrap();
    let body = c.call_xml("one.group.info", vec![i(gid)]).unwrap();
    assert!(body.contains("<VMS><![CDATA[3]]></VMS>"), "{body}");
}
