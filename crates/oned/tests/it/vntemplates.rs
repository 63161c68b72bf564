//! Virtual network templates (`one.vntemplate.*`): OpenNebula's checks at allocate and clone,
//! networks instantiated from them (named after the template without a name, in the template's
//! clusters, restricted attributes kept from users), on every server of a zone; and
//! `onevntemplate`.

use std::path::Path;

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, AUTHORIZATION, DEADLINE, INTERNAL, NO_EXISTS};

const ALLOCATE: i32 = 0x4000;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn id(v: Value) -> i32 {
    v.as_i64().unwrap() as i32
}

const WEB: &str =
    "NAME = web\nVN_MAD = bridge\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 4 ]";

fn user(admin: &cli::Client, name: &str) -> i32 {
    id(admin
        .call(
            "one.user.allocate",
            vec![
                s(name),
                s(&format!("pw-{name}")),
                s(""),
                Value::Array(vec![]),
            ],
        )
        .unwrap())
}

#[test]
fn vn_templates_allocate_clone_and_instantiate_as_opennebula_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    // Written through a follower, forwarded to the leader.
    let c = zone.servers[follower].client();
    let web = id(c.call("one.vntemplate.allocate", vec![s(WEB)]).unwrap());

    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} has the template"), || {
            c.call_xml("one.vntemplate.info", vec![Value::Int(web)])
                .is_ok()
        });
        let body = c
            .call_xml("one.vntemplate.info", vec![Value::Int(web)])
            .unwrap();
        assert!(body.starts_with("<VNTEMPLATE><ID>"), "{body}");
        assert!(body.contains("<NAME>web</NAME>"), "{body}");
        assert!(body.contains("<REGTIME>"), "{body}");
        assert!(
            body.contains("<VN_MAD><![CDATA[bridge]]></VN_MAD>"),
            "{body}"
        );
        // NAME is the template's, not its template's.
        assert!(!body.contains("<TEMPLATE><NAME>"), "{body}");
    }
    let c = zone.servers[leader].client();
    let refused = |template: &str| one_error(c.call("one.vntemplate.allocate", vec![s(template)]));
    assert_eq!(
        refused(WEB),
        (
            INTERNAL,
            format!("[one.vntemplate.allocate] NAME is already taken by VN TEMPLATE {web}.")
        )
    );
    assert_eq!(
        refused("NAME = x"),
        (
            INTERNAL,
            "[one.vntemplate.allocate] Error inserting Template in DB. VN_MAD is mandatory".into()
        )
    );
    assert_eq!(
        refused("NAME = x\nVN_MAD = dummy"),
        (
            INTERNAL,
            "[one.vntemplate.allocate] BRIDGE is mandatory for driver dummy".into()
        )
    );
    assert_eq!(
        refused("VN_MAD = bridge"),
        (
            INTERNAL,
            "[one.vntemplate.allocate] Invalid NAME, it cannot be empty".into()
        )
    );

    // Instantiated without a name: called after the template and the network's id, in
    // cluster 0, with the template's id and attributes.
    let net = id(c
        .call(
            "one.vntemplate.instantiate",
            vec![Value::Int(web), s(""), s("")],
        )
        .unwrap());
    let body = c.call_xml("one.vn.info", vec![Value::Int(net)]).unwrap();
    assert!(body.contains(&format!("<NAME>web-{net}</NAME>")), "{body}");
    assert!(body.contains("<CLUSTERS><ID>0</ID></CLUSTERS>"), "{body}");
    assert!(
        body.contains(&format!("<TEMPLATE_ID><![CDATA[{web}]]></TEMPLATE_ID>")),
        "{body}"
    );
    assert!(!body.contains("<TEMPLATE_NAME>"), "{body}");
    // With a name and an extra template, merged in.
    let named = id(c
        .call(
            "one.vntemplate.instantiate",
            vec![Value::Int(web), s("mine"), s("DESCRIPTION = \"extra\"")],
        )
        .unwrap());
    let body = c.call_xml("one.vn.info", vec![Value::Int(named)]).unwrap();
    assert!(body.contains("<NAME>mine</NAME>"), "{body}");
    assert!(body.contains("<DESCRIPTION><![CDATA[extra]]>"), "{body}");
    assert_eq!(
        one_error(c.call(
            "one.vntemplate.instantiate",
            vec![Value::Int(web), s("mine"), s("")],
        )),
        (
            ALLOCATE,
            format!(
                "[one.vntemplate.instantiate] Error allocating a new virtual network template. NAME is already taken by NET {named}."
            )
        )
    );
    // What the network's insert refuses is ALLOCATE here (`VNTemplateInstantiate`).
    assert_eq!(
        one_error(c.call(
            "one.vntemplate.instantiate",
            vec![Value::Int(web), s("q"), s("VN_MAD = 802.1Q\nVLAN_ID = 5")],
        )),
        (
            ALLOCATE,
            "[one.vntemplate.instantiate] Error allocating a new virtual network template. PHYDEV is mandatory for driver 802.1Q".into()
        )
    );
    assert_eq!(
        one_error(c.call(
            "one.vntemplate.instantiate",
            vec![Value::Int(99), s(""), s("")],
        )),
        (
            NO_EXISTS,
            "[one.vntemplate.instantiate] Error getting virtual network template [99].".into()
        )
    );

    // The template's CLUSTER_IDS place the network, leaving out clusters that do not exist.
    let cluster = id(c.call("one.cluster.allocate", vec![s("blue")]).unwrap());
    c.call(
        "one.vntemplate.update",
        vec![
            Value::Int(web),
            s(&format!("CLUSTER_IDS = \"{cluster},999\"")),
            Value::Int(1),
        ],
    )
    .unwrap();
    let placed = id(c
        .call(
            "one.vntemplate.instantiate",
            vec![Value::Int(web), s("blue-net"), s("")],
        )
        .unwrap());
    let body = c.call_xml("one.vn.info", vec![Value::Int(placed)]).unwrap();
    assert!(
        body.contains(&format!("<CLUSTERS><ID>{cluster}</ID></CLUSTERS>")),
        "{body}"
    );

    // A clone is the caller's, under its new name; names stay unique per owner.
    let copy = id(c
        .call("one.vntemplate.clone", vec![Value::Int(web), s("web2")])
        .unwrap());
    let body = c
        .call_xml("one.vntemplate.info", vec![Value::Int(copy)])
        .unwrap();
    assert!(body.contains("<NAME>web2</NAME>"), "{body}");
    assert!(body.contains("<BRIDGE><![CDATA[br0]]></BRIDGE>"), "{body}");
    assert_eq!(
        one_error(c.call("one.vntemplate.clone", vec![Value::Int(web), s("web2")])),
        (
            ALLOCATE,
            format!(
                "[one.vntemplate.clone] Error allocating a new virtual network template. NAME is already taken by VN TEMPLATE {copy}."
            )
        )
    );
    let pool = c
        .call_xml(
            "one.vntemplatepool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(pool.starts_with("<VNTEMPLATE_POOL><VNTEMPLATE>"), "{pool}");
    assert_eq!(pool.matches("<VNTEMPLATE>").count(), 2, "{pool}");

    // Delete takes OpenNebula's recursive flag, which changes nothing for these.
    c.call(
        "one.vntemplate.delete",
        vec![Value::Int(copy), Value::Bool(true)],
    )
    .unwrap();
    assert_eq!(
        one_error(c.call_xml("one.vntemplate.info", vec![Value::Int(copy)])).0,
        NO_EXISTS
    );
}

#[test]
fn users_instantiate_what_they_may_use_without_restricted_attributes() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let admin = server.client();
    let web = id(admin.call("one.vntemplate.allocate", vec![s(WEB)]).unwrap());
    let alice_id = user(&admin, "alice");
    let alice = server.client_as("alice", "pw-alice");

    // Users are not given CREATE VNTEMPLATE by OpenNebula's default rules.
    let (code, message) = one_error(alice.call("one.vntemplate.allocate", vec![s(WEB)]));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(message.contains("CREATE VNTEMPLATE"), "{message}");
    // Nor USE of oneadmin's template.
    let instantiate = |extra: &str| {
        alice.call(
            "one.vntemplate.instantiate",
            vec![Value::Int(web), s(""), s(extra)],
        )
    };
    let (code, message) = one_error(instantiate(""));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(
        message.ends_with(&format!(
            "Not authorized to perform USE VNTEMPLATE [{web}]."
        )),
        "{message}"
    );

    let others_use = [-1, -1, -1, -1, -1, -1, 1, -1, -1];
    let mut chmod = vec![Value::Int(web)];
    chmod.extend(others_use.map(Value::Int));
    admin.call("one.vntemplate.chmod", chmod).unwrap();
    assert_eq!(
        one_error(instantiate("BRIDGE = br9")),
        (
            AUTHORIZATION,
            format!(
                "[one.vntemplate.instantiate] User [{alice_id}] : User Template includes a restricted attribute BRIDGE."
            )
        )
    );
    let (code, message) = one_error(instantiate("AR = [ TYPE = ETHER, SIZE = 2, VN_MAD = x ]"));
    assert_eq!(code, AUTHORIZATION, "{message}");
    assert!(message.contains("restricted attribute AR"), "{message}");
    // The template's own value, or attributes that are not restricted, pass.
    let net = id(instantiate("BRIDGE = br0\nDESCRIPTION = mine").unwrap());
    let body = alice
        .call_xml("one.vn.info", vec![Value::Int(net)])
        .unwrap();
    assert!(
        body.contains(&format!("<UID>{alice_id}</UID>")),
        "the network is alice's: {body}"
    );
    // oneadmin may change anything.
    admin
        .call(
            "one.vntemplate.instantiate",
            vec![Value::Int(web), s("other"), s("BRIDGE = br9")],
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
fn onevntemplate_creates_lists_and_instantiates_as_opennebula() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| server.cli(Kind::VnTemplate, args).ok();
    let path = file(dir.path(), "web.tpl", WEB);
    assert_eq!(cli(&["create", &path]), "ID: 0\n");
    assert_eq!(cli(&["clone", "web", "web2"]), "ID: 1\n");

    let list = cli(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].contains("ID") && lines[0].contains("NAME"),
        "{list}"
    );
    assert!(
        lines[1].contains(" web2 ") && lines[2].contains(" web "),
        "{list}"
    );

    let show = cli(&["show", "web"]);
    assert!(
        show.starts_with("TEMPLATE 0 INFORMATION\nID             : 0\n"),
        "{show}"
    );
    assert!(show.contains("NAME           : web\n"), "{show}");
    assert!(show.contains("VN_MAD=\"bridge\""), "{show}");

    assert_eq!(cli(&["instantiate", "web", "--name", "prod"]), "VN ID: 0\n");
    let net = server
        .client()
        .call_xml("one.vn.info", vec![Value::Int(0)])
        .unwrap();
    assert!(net.contains("<NAME>prod</NAME>"), "{net}");

    cli(&["rename", "web2", "copy"]);
    cli(&["chmod", "copy", "644"]);
    cli(&["lock", "copy"]);
    let show = cli(&["show", "copy", "-x"]);
    assert!(show.contains("<LOCK><LOCKED>1</LOCKED>"), "{show}");
    assert!(show.contains("<GROUP_U>1</GROUP_U>"), "{show}");
    cli(&["unlock", "copy"]);
    let more = file(dir.path(), "more.tpl", "DESCRIPTION = \"blue\"");
    cli(&["update", "copy", &more, "--append"]);
    assert!(cli(&["show", "copy"]).contains("DESCRIPTION=\"blue\""));
    cli(&["chown", "copy", "oneadmin", "users"]);
    cli(&["chgrp", "copy", "oneadmin"]);
    cli(&["delete", "copy"]);

    let (code, _, err) = server.cli(Kind::VnTemplate, &["show", "copy"]).parts();
    assert_eq!(code, 255);
    assert!(err.contains("VNTEMPLATE named copy not found."), "{err}");
    let bad = file(dir.path(), "bad.tpl", "NAME = x");
    let (code, _, err) = server.cli(Kind::VnTemplate, &["create", &bad]).parts();
    assert_eq!(code, 255);
    assert!(
        err.contains(
            "[one.vntemplate.allocate] Error inserting Template in DB. VN_MAD is mandatory"
        ),
        "{err}"
    );
}
