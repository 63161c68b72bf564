//! Security groups (`one.secgroup.*`), as OpenNebula's `SecurityGroup`: the default group 0
//! every network gets, rules checked with OpenNebula's messages and kept once, names unique per
//! owner, clone, commit, delete; users' rights over them; and `onesecgroup`.

use std::path::Path;

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{
    allocate, one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS,
};

const ALLOCATE: i32 = 0x4000;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn id(v: Value) -> i32 {
    v.as_i64().unwrap() as i32
}

fn info(c: &cli::Client, id: i32) -> String {
    c.call_xml("one.secgroup.info", vec![Value::Int(id)])
        .unwrap()
}

#[test]
fn secgroups_follow_opennebula_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    // Written through a follower, forwarded to the leader.
    let c = zone.servers[(leader + 1) % 3].client();

    let web = id(c
        .call(
            "one.secgroup.allocate",
            vec![s(
                "NAME = web\nDESCRIPTION = \"front\"\n\
                RULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, RANGE = \"80,443\" ]\n\
                RULE = [ RULE_TYPE = inbound, PROTOCOL = TCP, RANGE = \"80,443\" ]\n\
                RULE = [ PROTOCOL = ICMP, RULE_TYPE = inbound, ICMP_TYPE = 8 ]",
            )],
        )
        .unwrap());
    // OpenNebula keeps ids below 100 for its own groups.
    assert_eq!(web, 100);

    for (i, server) in zone.servers.iter().enumerate() {
        let c = server.client();
        zone.wait_until(DEADLINE, &format!("server {i} has the group"), || {
            c.call_xml("one.secgroup.info", vec![Value::Int(web)])
                .is_ok()
        });
        // OpenNebula's default group, as its pool bootstraps it.
        let body = info(&c, 0);
        assert!(
            body.starts_with(
                "<SECURITY_GROUP><ID>0</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>\
                 <GNAME>oneadmin</GNAME><NAME>default</NAME><PERMISSIONS><OWNER_U>1</OWNER_U>\
                 <OWNER_M>1</OWNER_M><OWNER_A>1</OWNER_A><GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M>\
                 <GROUP_A>0</GROUP_A><OTHER_U>1</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A>\
                 </PERMISSIONS><UPDATED_VMS></UPDATED_VMS><OUTDATED_VMS></OUTDATED_VMS>\
                 <UPDATING_VMS></UPDATING_VMS><ERROR_VMS></ERROR_VMS><TEMPLATE>"
            ),
            "{body}"
        );
        assert!(
            body.contains(
                "<RULE><PROTOCOL><![CDATA[ALL]]></PROTOCOL><RULE_TYPE><![CDATA[OUTBOUND]]>\
                 </RULE_TYPE></RULE><RULE><PROTOCOL><![CDATA[ALL]]></PROTOCOL><RULE_TYPE>\
                 <![CDATA[INBOUND]]></RULE_TYPE></RULE>"
            ),
            "{body}"
        );
        let body = info(&c, web);
        assert!(body.contains("<NAME>web</NAME><PERMISSIONS>"), "{body}");
        // NAME is the group's, not its template's; the same rule is kept once.
        assert!(!body.contains("<TEMPLATE><NAME>"), "{body}");
        assert_eq!(body.matches("<RULE>").count(), 2, "{body}");
    }

    // From here on the leader's answers, which its own writes are in.
    let c = zone.servers[leader].client();
    let pool = c
        .call_xml(
            "one.secgrouppool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    // Newest first (API_LIST_ORDER): the default group is the last.
    assert!(
        pool.starts_with("<SECURITY_GROUP_POOL><SECURITY_GROUP><ID>100</ID>"),
        "{pool}"
    );
    assert_eq!(pool.matches("<SECURITY_GROUP>").count(), 2, "{pool}");

    // SecurityGroupPool::allocate and SecurityGroup::insert, answered INTERNAL.
    let refusals = [
        ("NAME = web", "NAME is already taken by SecurityGroup 100."),
        ("DESCRIPTION = x", "Invalid NAME, it cannot be empty"),
        (
            "NAME = bad\nRULE = [ PROTOCOL = GRE, RULE_TYPE = inbound ]",
            "Wrong PROTOCOL in rule. Valid options: TCP, UDP, ICMP, ICMPV6, IPSEC, ALL.",
        ),
        (
            "NAME = bad\nRULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, RANGE = \"9:1\" ]",
            "RANGE BEGIN value is greater than RANGE END value",
        ),
        (
            "NAME = bad\nRULE = [ PROTOCOL = TCP, RULE_TYPE = in ]",
            "Wrong RULE_TYPE in rule. Valid options: INBOUND, OUTBOUND.",
        ),
    ];
    for (text, want) in refusals {
        let (code, msg) = one_error(c.call("one.secgroup.allocate", vec![s(text)]));
        assert_eq!(code, INTERNAL, "{msg}");
        assert_eq!(msg, format!("[one.secgroup.allocate] {want}"));
    }

    // An update is checked alike, and keeps each rule once.
    let (code, msg) = one_error(c.call(
        "one.secgroup.update",
        vec![
            Value::Int(web),
            s("RULE = [ PROTOCOL = UDP, RULE_TYPE = inbound, ICMP_TYPE = 3 ]"),
            Value::Int(1),
        ],
    ));
    assert_eq!(code, INTERNAL);
    assert_eq!(
        msg,
        "[one.secgroup.update] Cannot update template. ICMP_TYPE is supported only for ICMP protocol."
    );
    c.call(
        "one.secgroup.update",
        vec![
            Value::Int(web),
            s("RULE = [ PROTOCOL = UDP, RULE_TYPE = outbound ]\nRULE = [ PROTOCOL = UDP, RULE_TYPE = outbound ]"),
            Value::Int(1),
        ],
    )
    .unwrap();
    let body = info(&c, web);
    assert_eq!(body.matches("<RULE>").count(), 1, "{body}");
    assert!(body.contains("<DESCRIPTION><![CDATA[front]]>"), "{body}");

    // A clone: the same rules under a new name; its refusals are ALLOCATE.
    let copy = id(c
        .call("one.secgroup.clone", vec![Value::Int(web), s("web-2")])
        .unwrap());
    let body = info(&c, copy);
    assert!(body.contains("<NAME>web-2</NAME>"), "{body}");
    assert!(body.contains("<RULE_TYPE><![CDATA[outbound]]>"), "{body}");
    let (code, msg) = one_error(c.call("one.secgroup.clone", vec![Value::Int(web), s("web")]));
    assert_eq!(code, ALLOCATE);
    assert_eq!(
        msg,
        "[one.secgroup.clone] Error allocating a new security group. NAME is already taken by SecurityGroup 100."
    );
    let (code, _) = one_error(c.call("one.secgroup.clone", vec![Value::Int(77), s("x")]));
    assert_eq!(code, NO_EXISTS);

    // Commit: nothing to update without VMs; the group must exist.
    assert_eq!(
        id(c.call(
            "one.secgroup.commit",
            vec![Value::Int(web), Value::Bool(false)]
        )
        .unwrap()),
        web
    );
    c.call(
        "one.secgroup.commit",
        vec![Value::Int(web), Value::Bool(true)],
    )
    .unwrap();
    let (code, msg) = one_error(c.call(
        "one.secgroup.commit",
        vec![Value::Int(77), Value::Bool(false)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            NO_EXISTS,
            "[one.secgroup.commit] Error getting security group [77]."
        )
    );

    // Rename, with OpenNebula's name check.
    c.call("one.secgroup.rename", vec![Value::Int(copy), s("web-b")])
        .unwrap();
    let (code, _) = one_error(c.call("one.secgroup.rename", vec![Value::Int(copy), s("a:b")]));
    assert_eq!(code, ACTION_CODE);

    // Group 0 stays; the others go.
    let (code, msg) = one_error(c.call("one.secgroup.delete", vec![Value::Int(0)]));
    assert_eq!(code, ACTION_CODE);
    assert_eq!(
        msg,
        "[one.secgroup.delete] Cannot delete security group. The default security group (ID 0) cannot be deleted."
    );
    c.call("one.secgroup.delete", vec![Value::Int(copy)])
        .unwrap();
    let (code, msg) = one_error(c.call("one.secgroup.info", vec![Value::Int(copy)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            NO_EXISTS,
            "[one.secgroup.info] Error getting security group [101]."
        )
    );

    // VirtualNetwork::insert: every new network holds group 0, the given ones kept.
    let net = id(c
        .call(
            "one.vn.allocate",
            vec![s(
                "NAME = n1\nVN_MAD = dummy\nBRIDGE = br0\nSECURITY_GROUPS = \"100\"",
            )],
        )
        .unwrap());
    let body = c.call_xml("one.vn.info", vec![Value::Int(net)]).unwrap();
    assert!(
        body.contains("<SECURITY_GROUPS><![CDATA[0,100]]></SECURITY_GROUPS>"),
        "{body}"
    );
    let net = id(c
        .call(
            "one.vn.allocate",
            vec![s("NAME = n2\nVN_MAD = dummy\nBRIDGE = br0")],
        )
        .unwrap());
    let body = c.call_xml("one.vn.info", vec![Value::Int(net)]).unwrap();
    assert!(
        body.contains("<SECURITY_GROUPS><![CDATA[0]]></SECURITY_GROUPS>"),
        "{body}"
    );
}

#[test]
fn users_see_and_change_only_the_security_groups_their_rights_allow() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    allocate(&admin, "alice").unwrap();
    let bob_id = allocate(&admin, "bob").unwrap();
    let alice = server.client_as("alice", "pw-alice");
    let bob = server.client_as("bob", "pw-bob");

    // OpenNebula's default rules let users create security groups; names are per owner.
    let a = id(alice
        .call("one.secgroup.allocate", vec![s("NAME = mine")])
        .unwrap());
    let b = id(bob
        .call("one.secgroup.allocate", vec![s("NAME = mine")])
        .unwrap());
    assert_ne!(a, b);
    // Everyone may use group 0 (OTHER_U), nobody but oneadmin change it.
    bob.call("one.secgroup.info", vec![Value::Int(0)]).unwrap();
    let (code, msg) = one_error(bob.call("one.secgroup.rename", vec![Value::Int(0), s("x")]));
    assert_eq!(code, AUTHORIZATION);
    assert!(
        msg.ends_with(&format!(
            "User [{bob_id}] : Not authorized to perform MANAGE SECGROUP [0]."
        )),
        "{msg}"
    );

    let (code, _) = one_error(bob.call("one.secgroup.info", vec![Value::Int(a)]));
    assert_eq!(code, AUTHORIZATION);
    let pool = bob
        .call_xml(
            "one.secgrouppool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(!pool.contains(&format!("<ID>{a}</ID>")), "{pool}");
    for (method, params) in [
        ("one.secgroup.delete", vec![Value::Int(a)]),
        (
            "one.secgroup.commit",
            vec![Value::Int(a), Value::Bool(false)],
        ),
        ("one.secgroup.update", vec![Value::Int(a), s("A = 1")]),
    ] {
        let (code, msg) = one_error(bob.call(method, params));
        assert_eq!(code, AUTHORIZATION, "{method}: {msg}");
    }
    let (code, msg) = one_error(bob.call("one.secgroup.clone", vec![Value::Int(a), s("c")]));
    assert_eq!(code, AUTHORIZATION);
    assert!(
        msg.ends_with(&format!("Not authorized to perform USE SECGROUP [{a}].")),
        "{msg}"
    );

    // An ACL rule on the group lets bob use and manage it; it goes with the group.
    let (user, resource, rights, _) =
        cli::objects::parse_rule(&format!("#{bob_id} SECGROUP/#{a} USE+MANAGE")).unwrap();
    let rule = id(admin
        .call("one.acl.addrule", vec![s(&user), s(&resource), s(&rights)])
        .unwrap());
    bob.call(
        "one.secgroup.commit",
        vec![Value::Int(a), Value::Bool(true)],
    )
    .unwrap();
    let copy = id(bob
        .call("one.secgroup.clone", vec![Value::Int(a), s("bobs")])
        .unwrap());
    assert!(info(&bob, copy).contains("<UNAME>bob</UNAME>"));
    alice
        .call("one.secgroup.delete", vec![Value::Int(a)])
        .unwrap();
    let rules = admin.call_xml("one.acl.info", vec![]).unwrap();
    assert!(!rules.contains(&format!("<ID>{rule}</ID>")), "{rules}");
}

/// A template file in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn onesecgroup_prints_and_changes_groups_as_opennebulas() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| server.cli(Kind::SecGroup, args).parts();
    let ok = |args: &[&str]| server.cli(Kind::SecGroup, args).ok();

    let web = file(
        dir.path(),
        "web.tmpl",
        "NAME = web\nRULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, RANGE = \"22,80\", NETWORK_ID = 3 ]",
    );
    assert_eq!(ok(&["create", &web]), "ID: 100\n");
    assert_eq!(
        ok(&["list"]),
        "  ID USER     GROUP    NAME             UPDATED OUTDATED    ERROR\n\
         \x20100 oneadmin oneadmin web                    0        0        0\n\
         \x20\x20 0 oneadmin oneadmin default                0        0        0\n"
    );
    assert_eq!(
        ok(&["show", "web"]),
        "SECURITY GROUP 100 INFORMATION\n\
         ID             : 100\n\
         NAME           : web\n\
         USER           : oneadmin\n\
         GROUP          : oneadmin\n\
         \n\
         PERMISSIONS\n\
         OWNER          : um-\n\
         GROUP          : ---\n\
         OTHER          : ---\n\
         \n\
         VIRTUAL MACHINES\n\
         UPDATED        :\n\
         OUTDATED       :\n\
         ERROR          :\n\
         \n\
         RULES\n\
         TYPE     PROTOCOL ICMP_TYPE ICMVP6_TYPE NETWORK                             RANGE\n\
         inbound  TCP                            VNet 3                              22,80\n\
         \n\
         TEMPLATE CONTENTS\n\
         \n"
    );
    assert!(ok(&["show", "0", "-x"]).starts_with("<SECURITY_GROUP><ID>0</ID>"));

    assert_eq!(ok(&["clone", "web", "web2"]), "ID: 101\n");
    // A refused clone is printed on stdout, and onesecgroup exits 0, as OpenNebula's.
    assert_eq!(
        ok(&["clone", "web", "web2"]),
        "[one.secgroup.clone] Error allocating a new security group. NAME is already taken by SecurityGroup 101.\n"
    );
    let more = file(dir.path(), "more.tmpl", "DESCRIPTION = \"two\"");
    ok(&["update", "web2", &more, "--append"]);
    ok(&["rename", "web2", "web-b"]);
    ok(&["chmod", "100,web-b", "640"]);
    ok(&["chgrp", "100..101", "users"]);
    ok(&["commit", "web-b", "--recover"]);
    let show = ok(&["show", "101"]);
    for line in [
        "NAME           : web-b\n",
        "GROUP          : users\n",
        "GROUP          : u--\n",
        "TEMPLATE CONTENTS\nDESCRIPTION=\"two\"\n",
    ] {
        assert!(show.contains(line), "{line}: {show}");
    }
    let list = ok(&["list", "-l", "ID,NAME,GROUP", "--no-header"]);
    assert!(list.contains(" 101 web-b           users"), "{list}");
    assert_eq!(ok(&["list", "m", "--csv", "-l", "ID"]), "ID\n101\n100\n0\n");

    // OpenNebula's refusals on stderr, exit code 255.
    let bad = file(
        dir.path(),
        "bad.tmpl",
        "NAME = bad\nRULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, IP = 10.0.0.1 ]",
    );
    let (code, out, err) = run(&["create", &bad]);
    assert_eq!((code, out.as_str()), (255, ""));
    assert_eq!(err, "[one.secgroup.allocate] Wrong or empty SIZE.\n");
    let (code, _, err) = run(&["delete", "default"]);
    assert_eq!(code, 255);
    assert_eq!(
        err,
        "[one.secgroup.delete] Cannot delete security group. The default security group (ID 0) cannot be deleted.\n"
    );
    let (code, _, err) = run(&["show", "nope"]);
    assert_eq!(code, 255);
    assert!(
        err.contains("SECURITY_GROUP named nope not found."),
        "{err}"
    );
    ok(&["delete", "100..101"]);
    assert_eq!(
        ok(&["list", "--csv", "-l", "NAME", "--no-header"]),
        "default\n"
    );
}
