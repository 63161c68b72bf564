//! `one.user.allocate` as OpenNebula 7.0's `UserAllocate`: authorized by ACL rules (a group
//! administrator creates users in its group), any authentication driver, the driver's password
//! rules (`AUTH_MAD_CONF`), primary and secondary groups; and the group changes a driver that
//! manages groups refuses.

use cli::Client;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, AUTHORIZATION, INTERNAL, NO_EXISTS};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn new_user(
    c: &Client,
    name: &str,
    password: &str,
    driver: &str,
    gids: &[i64],
) -> Result<i64, cli::CallError> {
    let gids = Value::Array(gids.iter().map(|&g| int(g)).collect());
    c.call(
        wire::method::USER_ALLOCATE,
        vec![s(name), s(password), s(driver), gids],
    )
    .map(|v| v.as_i64().expect("an id"))
}

fn user_xml(c: &Client, uid: i64) -> String {
    c.call_xml(wire::method::USER_INFO, vec![int(uid)]).unwrap()
}

fn acl_rules_of(c: &Client, uid: i64) -> usize {
    let user = format!("<USER>{:X}</USER>", wire::acl::INDIVIDUAL_ID | uid as u64);
    c.call_xml("one.acl.info", vec![])
        .unwrap()
        .matches(&user)
        .count()
}

/// The failure of `result`: its code and its message without the method's prefix.
fn failure(result: Result<i64, cli::CallError>, method: &str) -> (i32, String) {
    let (code, msg) = one_error(result);
    let prefix = format!("[{method}] ");
    let msg = msg
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{msg}"))
        .to_string();
    (code, msg)
}

/// A group administrator gets OpenNebula's four rules with the role, creates users in its
/// group (a group it does not manage, or a missing one, is refused), and loses both with the role.
#[test]
fn a_group_administrator_creates_users_in_its_group() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let gid = admin
        .call(wire::method::GROUP_ALLOCATE, vec![s("team")])
        .unwrap()
        .as_i64()
        .unwrap();
    let boss = new_user(&admin, "boss", "pw-boss", "", &[gid]).unwrap();
    let plain = new_user(&admin, "plain", "pw-plain", "", &[]).unwrap();
    assert_eq!(acl_rules_of(&admin, boss), 0);

    let as_plain = zone.servers[0].client_as("plain", "pw-plain");
    assert_eq!(
        failure(
            new_user(&as_plain, "nope", "pw", "", &[]),
            "one.user.allocate"
        ),
        (
            AUTHORIZATION,
            format!("User [{plain}] : Not authorized to perform CREATE USER.")
        )
    );

    // A rule the role brings that oneadmin already wrote is kept once, not refused.
    use wire::acl::*;
    let hex = |v: u64| s(&format!("{v:x}"));
    admin
        .call(
            "one.acl.addrule",
            vec![
                hex(INDIVIDUAL_ID | boss as u64),
                hex(VROUTER | ALL_ID),
                hex(CREATE),
                hex(ALL_ID),
            ],
        )
        .unwrap();
    admin
        .call("one.group.addadmin", vec![int(gid), int(boss)])
        .unwrap();
    assert_eq!(acl_rules_of(&admin, boss), 4);
    let as_boss = zone.servers[0].client_as("boss", "pw-boss");
    let worker = new_user(&as_boss, "worker", "pw-worker", "", &[]).unwrap();
    let xml = user_xml(&admin, worker);
    assert!(
        xml.contains(&format!("<GID>{gid}</GID><GROUPS><ID>{gid}</ID></GROUPS>")),
        "{xml}"
    );
    let named = new_user(&as_boss, "named", "pw-named", "", &[gid]).unwrap();
    assert!(user_xml(&admin, named).contains(&format!("<GID>{gid}</GID>")));

    assert_eq!(
        failure(
            new_user(&as_boss, "elsewhere", "pw", "", &[1]),
            "one.user.allocate"
        ),
        (
            AUTHORIZATION,
            format!("User [{boss}] : Not authorized to perform MANAGE GROUP [1].")
        )
    );
    assert_eq!(
        failure(
            new_user(&as_boss, "nowhere", "pw", "", &[999]),
            "one.user.allocate"
        ),
        (NO_EXISTS, "Error getting group [999].".to_string())
    );

    admin
        .call("one.group.deladmin", vec![int(gid), int(boss)])
        .unwrap();
    assert_eq!(acl_rules_of(&admin, boss), 0);
    assert_eq!(
        failure(
            new_user(&as_boss, "late", "pw", "", &[]),
            "one.user.allocate"
        ),
        (
            AUTHORIZATION,
            format!("User [{boss}] : Not authorized to perform CREATE USER.")
        )
    );
}

/// Any driver is taken, its password checked only when `PASSWORD_REQUIRED`; the first group
/// given is the primary one; oneadmin's users go to `users` by default; the new user has a
/// OneGate token password. A driver that manages groups refuses group changes by hand.
#[test]
fn drivers_passwords_and_groups_as_opennebula() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let gid = admin
        .call(wire::method::GROUP_ALLOCATE, vec![s("team")])
        .unwrap()
        .as_i64()
        .unwrap();

    let plain = new_user(&admin, "plain", "pw-plain", "", &[]).unwrap();
    let xml = user_xml(&admin, plain);
    assert!(
        xml.contains("<GID>1</GID><GROUPS><ID>1</ID></GROUPS>"),
        "{xml}"
    );
    assert!(xml.contains("<AUTH_DRIVER>core</AUTH_DRIVER>"), "{xml}");
    assert!(xml.contains("<TOKEN_PASSWORD><![CDATA["), "{xml}");

    let both = new_user(&admin, "both", "pw-both", "", &[gid, 1]).unwrap();
    let xml = user_xml(&admin, both);
    assert!(
        xml.contains(&format!(
            "<GID>{gid}</GID><GROUPS><ID>1</ID><ID>{gid}</ID></GROUPS>"
        )),
        "{xml}"
    );

    let ldap = new_user(&admin, "ldapuser", "", "ldap", &[]).unwrap();
    assert!(user_xml(&admin, ldap).contains("<AUTH_DRIVER>ldap</AUTH_DRIVER>"));
    let x509 = new_user(&admin, "me", "CN=me, O=org", "x509", &[]);
    assert_eq!(
        failure(x509, "one.user.allocate"),
        (
            INTERNAL,
            "Error allocating a new user. Invalid password, character ' ' is not allowed."
                .to_string()
        )
    );
    for (password, why) in [
        ("", "Invalid password, it cannot be empty."),
        (
            "has space",
            "Invalid password, character ' ' is not allowed.",
        ),
    ] {
        assert_eq!(
            failure(
                new_user(&admin, "bad", password, "", &[]),
                "one.user.allocate"
            ),
            (INTERNAL, format!("Error allocating a new user. {why}"))
        );
    }
    let long = "x".repeat(257);
    assert_eq!(
        failure(
            new_user(&admin, "bad", &long, "core", &[]),
            "one.user.allocate"
        ),
        (
            INTERNAL,
            "Error allocating a new user. Password is longer than max allowed length. \
             Max allowed length for the driver core : 256 bytes."
                .to_string()
        )
    );

    for (method, args) in [
        (wire::method::USER_CHGRP, vec![int(ldap), int(gid)]),
        ("one.user.addgroup", vec![int(ldap), int(gid)]),
    ] {
        let result = admin.call(method, args).map(|v| v.as_i64().unwrap_or(-1));
        assert_eq!(
            failure(result, method),
            (
                ACTION_CODE,
                "Groups cannot be manually managed for auth driver ldap".to_string()
            )
        );
    }
    let result = admin
        .call(wire::method::USER_CHGRP, vec![int(0), int(1)])
        .map(|v| v.as_i64().unwrap_or(-1));
    assert_eq!(
        failure(result, wire::method::USER_CHGRP),
        (
            INTERNAL,
            "user [0] oneadmin cannot be moved outside of the group [0] oneadmin".to_string()
        )
    );
}

/// `AUTH_MAD_CONF` in `oned.conf` is honoured: with `PASSWORD_CHANGE = "NO"` for `core`, a
/// user may no longer change its own password; oneadmin still may.
#[test]
fn auth_mad_conf_decides_who_changes_passwords() {
    let setup: crate::zone::Setup = Box::new(|_, s| {
        s.extra_conf = "AUTH_MAD_CONF = [ NAME = \"core\", PASSWORD_CHANGE = \"NO\" ]\n".into();
    });
    let zone = Zone::solo_custom(None, Some(setup));
    let admin = zone.servers[0].client();
    let uid = new_user(&admin, "plain", "pw-plain", "", &[]).unwrap();
    let me = zone.servers[0].client_as("plain", "pw-plain");
    let result = me
        .call(wire::method::USER_PASSWD, vec![int(uid), s("other")])
        .map(|v| v.as_i64().unwrap_or(-1));
    assert_eq!(
        failure(result, wire::method::USER_PASSWD),
        (
            ACTION_CODE,
            "Password for driver core cannot be changed.".to_string()
        )
    );
    admin
        .call(wire::method::USER_PASSWD, vec![int(uid), s("other")])
        .unwrap();
    let result = admin
        .call(wire::method::USER_PASSWD, vec![int(uid), s("")])
        .map(|v| v.as_i64().unwrap_or(-1));
    assert_eq!(
        failure(result, wire::method::USER_PASSWD),
        (
            ACTION_CODE,
            "Invalid password, it cannot be empty".to_string()
        )
    );
}
