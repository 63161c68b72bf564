//! The zone object itself: enabling and disabling it (a disabled zone answers reads and
//! refuses changes, as OpenNebula's), renaming it, and zone creation (on a federation's master
//! only).

use xmlrpc::Value;

use crate::zone::{allocate, one_error, onezone, user_name, Zone, DEADLINE, INTERNAL};

#[test]
fn a_disabled_zone_answers_reads_and_refuses_changes_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();
    let id = allocate(&c, "before").unwrap();
    let follower = (leader + 1) % 3;
    let endpoint = zone.servers[follower].endpoint();
    let password = zone.servers[follower].password();
    let cli = |verb: &str| {
        onezone(&[
            verb,
            "0",
            "--verbose",
            "--endpoint",
            &endpoint,
            "--user",
            "oneadmin",
            "--password",
            &password,
        ])
    };
    // Through a follower's onezone: forwarded to the leader like any change.
    let (code, out, err) = cli("disable");
    assert_eq!((code, out.as_str()), (0, "ZONE 0: disabled\n"), "{err}");
    for i in 0..3 {
        let s = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} refuses changes"), || {
            matches!(
                one_error_of(allocate(&s, &format!("during-{i}"))),
                Some((INTERNAL, m)) if m == "[one.user.allocate] Cannot process request, zone disabled"
            )
        });
        assert_eq!(user_name(&s, id).as_deref(), Some("before"), "reads go on");
        // ...but those whose request keeps `zone_disabled` false.
        assert_eq!(
            one_error_of(s.call("one.acl.info", vec![])),
            Some((
                INTERNAL,
                "[one.acl.info] Cannot process request, zone disabled".to_string()
            ))
        );
        let info = s
            .call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
            .unwrap();
        assert!(info.contains("<STATE>1</STATE>"), "DISABLED: {info}");
    }
    let (code, _, err) = cli("enable");
    assert_eq!(code, 0, "{err}");
    zone.wait_until(DEADLINE, "changes are taken again", || {
        allocate(&zone.servers[follower].client(), "after").is_ok()
    });
}

fn one_error_of<T: std::fmt::Debug>(r: Result<T, cli::client::CallError>) -> Option<(i32, String)> {
    match r {
        Err(cli::client::CallError::One(e)) => Some((e.code, e.message)),
        _ => None,
    }
}

#[test]
fn zones_are_renamed_but_not_created_outside_a_federation() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    c.call(
        wire::method::ZONE_RENAME,
        vec![Value::Int(0), Value::String("east".into())],
    )
    .unwrap();
    assert!(c
        .call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
        .unwrap()
        .contains("<NAME>east</NAME>"));
    let (code, msg) = one_error(c.call(
        wire::method::ZONE_ALLOCATE,
        vec![Value::String(
            "NAME = \"west\"\nENDPOINT = \"http://127.0.0.1:2634/RPC2\"".into(),
        )],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            0x4000,
            "[one.zone.allocate] Error allocating a new zone. New zones can only be created at federation master"
        )
    );
    let (code, msg) = one_error(c.call(
        wire::method::ZONE_ENABLE,
        vec![Value::Int(7), Value::Bool(false)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            0x0800,
            "[one.zone.enable] Enable/disable mode have to be set through the target zone endpoints"
        )
    );
}

/// `onezone update` (a file, `--append`), `set`, `delete` and `create`, as OpenNebula's: the
/// zone's template on every server, its ENDPOINT written to `~/.one/one_endpoint` and used by
/// the next command, system zones never deleted.
#[test]
fn zone_templates_are_updated_and_set_as_the_cli_endpoint() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zone.tmpl");
    std::fs::write(
        &file,
        "ONEFLOW_ENDPOINT = \"http://127.0.0.1:2474\"\nSERVER = [ ID = 7 ]",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    // Through a follower, forwarded like any change.
    let (code, out, err) = zone.onezone(follower, &["update", "0", path, "--append", "--verbose"]);
    assert_eq!((code, out.as_str()), (0, "ZONE 0: modified\n"), "{err}");
    let endpoint = zone.servers[leader].endpoint();
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(
            DEADLINE,
            &format!("server {i} has the new template"),
            || {
                c.call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
                    .unwrap()
                    .contains(
                        "<ONEFLOW_ENDPOINT><![CDATA[http://127.0.0.1:2474]]></ONEFLOW_ENDPOINT>",
                    )
            },
        );
        let body = c
            .call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
            .unwrap();
        assert!(body.contains("<ENDPOINT><![CDATA[http://"), "kept: {body}");
        assert!(!body.contains("<SERVER><ID>7"), "SERVER is dropped: {body}");
    }
    // A replace without ENDPOINT leaves "-", as Zone::post_update_template.
    let c = zone.servers[leader].client();
    c.call(
        "one.zone.update",
        vec![Value::Int(0), Value::String("A = 1".into()), Value::Int(0)],
    )
    .unwrap();
    let body = c
        .call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
        .unwrap();
    assert!(
        body.contains(
            "<TEMPLATE><A><![CDATA[1]]></A><ENDPOINT><![CDATA[-]]></ENDPOINT></TEMPLATE>"
        ),
        "{body}"
    );
    c.call(
        "one.zone.update",
        vec![
            Value::Int(0),
            Value::String(format!("ENDPOINT = \"{endpoint}\"")),
            Value::Int(1),
        ],
    )
    .unwrap();

    // `onezone set` writes the endpoint where the next command finds it.
    let home = tempfile::tempdir().unwrap();
    let onezone = |args: &[&str]| {
        let bin = testkit::oned_binary().with_file_name("onezone");
        let o = std::process::Command::new(bin)
            .args(args)
            .env("HOME", home.path())
            .env_remove("ONE_XMLRPC")
            .env("ONE_AUTH", zone.servers[0].auth_file())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, out, err) = onezone(&["set", "0", "--endpoint", &endpoint]);
    assert_eq!(code, Some(0), "{err}");
    let written = home.path().join(".one/one_endpoint");
    assert_eq!(
        out,
        format!(
            "Endpoint changed to \"{endpoint}\" in {}\n",
            written.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        format!("{endpoint}\n")
    );
    let (code, out, err) = onezone(&["show", "0"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ZONE 0 INFORMATION"), "{out}");
    let (code, out, _) = onezone(&["set", "0", "--keep"]);
    assert_eq!(code, Some(0));
    assert_eq!(out, format!("Type: export ONE_XMLRPC={endpoint}\n"));

    // System zones stay; new ones come only from a federation master.
    let (code, _, err) = onezone(&["delete", "0"]);
    assert_eq!(code, Some(255));
    assert_eq!(
        err,
        "[one.zone.delete] Cannot delete zone. System Zones (ID < 100) cannot be deleted.\n"
    );
    let (code, msg) = one_error(c.call("one.zone.delete", vec![Value::Int(100)]));
    assert_eq!(
        (code, msg.as_str()),
        (0x0400, "[one.zone.delete] Error getting zone [100].")
    );
    let (code, _, err) = onezone(&["create", path]);
    assert_eq!(code, Some(255));
    assert!(
        err.contains("New zones can only be created at federation master"),
        "{err}"
    );
}

/// Only administrators change the zone: a plain user may USE it (everyone's ACL rule), and
/// is refused MANAGE (rename, update) and ADMIN (enable, delete) as OpenNebula's words it.
#[test]
fn a_plain_user_may_not_change_the_zone() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let uid = allocate(&c, "plain").unwrap();
    let user = zone.servers[0].client_as("plain", "pw-plain");
    assert!(user
        .call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
        .is_ok());
    let calls = [
        (
            wire::method::ZONE_RENAME,
            vec![Value::Int(0), Value::String("mine".into())],
            "MANAGE",
        ),
        (
            "one.zone.update",
            vec![Value::Int(0), Value::String("A = b".into())],
            "MANAGE",
        ),
        (
            wire::method::ZONE_ENABLE,
            vec![Value::Int(0), Value::Bool(false)],
            "ADMIN",
        ),
        ("one.zone.delete", vec![Value::Int(0)], "ADMIN"),
    ];
    for (method, params, right) in calls {
        let (code, msg) = one_error(user.call(method, params));
        assert_eq!(code, 0x0200, "{method}");
        assert_eq!(
            msg,
            format!("[{method}] User [{uid}] : Not authorized to perform {right} ZONE [0].")
        );
    }
    let body = c
        .call_xml(wire::method::ZONE_INFO, vec![Value::Int(0)])
        .unwrap();
    assert!(
        body.contains("<NAME>OpenNebula</NAME><STATE>0</STATE>"),
        "{body}"
    );
}

/// A federation master (`FEDERATION/MODE = "MASTER"`) creates zones, from 100 on, as
/// `ZoneAllocate` does: a valid NAME no other zone has, an ENDPOINT, SERVER entries dropped;
/// CREATE on zones for anyone but oneadmin.
#[test]
fn a_federation_master_creates_zones_from_100() {
    let setup: crate::zone::Setup = Box::new(|_, s| s.federation_mode = "MASTER");
    let zone = Zone::solo_custom(None, Some(setup));
    let c = zone.servers[0].client();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slave.tmpl");
    std::fs::write(
        &file,
        "NAME = \"slave\"\nENDPOINT = \"http://127.0.0.1:2634/RPC2\"\nSERVER = [ NAME = \"x\" ]\n",
    )
    .unwrap();
    let (code, out, err) = zone.onezone(0, &["create", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ID: 100\n");
    let body = c
        .call_xml(wire::method::ZONE_INFO, vec![Value::Int(100)])
        .unwrap();
    assert!(body.contains("<NAME>slave</NAME>"), "{body}");
    assert!(
        body.contains("<ENDPOINT><![CDATA[http://127.0.0.1:2634/RPC2]]></ENDPOINT>"),
        "{body}"
    );
    assert!(body.contains("</TEMPLATE><SERVER_POOL/></ZONE>"), "{body}");
    let (code, out, err) = zone.onezone(0, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" 100 slave"), "{out}");

    let allocate_zone = |client: &cli::Client, text: &str| {
        one_error(client.call(
            wire::method::ZONE_ALLOCATE,
            vec![Value::String(text.into())],
        ))
    };
    assert_eq!(
        allocate_zone(
            &c,
            "NAME = \"slave\"\nENDPOINT = \"http://127.0.0.1:2635/RPC2\""
        ),
        (
            INTERNAL,
            "[one.zone.allocate] NAME is already taken by Zone 100.".into()
        )
    );
    assert_eq!(
        allocate_zone(&c, "NAME = \"third\""),
        (
            INTERNAL,
            "[one.zone.allocate] ENDPOINT not present in template.".into()
        )
    );
    assert_eq!(
        allocate_zone(&c, "ENDPOINT = \"http://127.0.0.1:2635/RPC2\""),
        (
            INTERNAL,
            "[one.zone.allocate] Invalid NAME, it cannot be empty".into()
        )
    );
    allocate(&c, "plain").unwrap();
    let user = zone.servers[0].client_as("plain", "pw-plain");
    assert_eq!(
        allocate_zone(
            &user,
            "NAME = \"mine\"\nENDPOINT = \"http://127.0.0.1:2635/RPC2\""
        ),
        (
            0x0200,
            "[one.zone.allocate] User [2] : Not authorized to perform CREATE ZONE.".into()
        )
    );

    let (code, _, err) = zone.onezone(0, &["delete", "100"]);
    assert_eq!(code, 0, "{err}");
    let (code, msg) = one_error(c.call(wire::method::ZONE_INFO, vec![Value::Int(100)]));
    assert_eq!(
        (code, msg.as_str()),
        (0x0400, "[one.zone.info] Error getting zone [100].")
    );
}
