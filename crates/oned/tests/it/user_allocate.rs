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

/// A solo zone with group `team`, user `boss` in it and user `plain` in `users`.
struct Team {
    zone: Zone,
    admin: Client,
    gid: i64,
    boss: i64,
    plain: i64,
}

impl Team {
    fn new() -> Team {
        let zone = Zone::solo();
        let admin = zone.servers[0].client();
        let gid = admin
            .call(wire::method::GROUP_ALLOCATE, vec![s("team")])
            .unwrap()
            .as_i64()
            .unwrap();
        let boss = new_user(&admin, "boss", "pw-boss", "", &[gid]).unwrap();
        let plain = new_user(&admin, "plain", "pw-plain", "", &[]).unwrap();
        Team {
            zone,
            admin,
            gid,
            boss,
            plain,
        }
    }
}

/// A group administrator gets OpenNebula's four rules with the role, creates users in its
/// group (a group it does not manage, or a missing one, is refused), and loses both with the role.
#[test]
fn a_group_administrator_creates_users_in_its_group() {
    let Team {
        zone,
        admin,
        gid,
        boss,
        plain,
    } = Team::new();
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

    // Leaving a group ends its administration and the rules that came with it (delgroup, and
    // chgrp when the old primary group is left).
    let edit = |method: &str, group: i64| {
        admin.call(method, vec![int(boss), int(group)]).unwrap();
    };
    let admin_of = |group: i64| {
        admin
            .call("one.group.addadmin", vec![int(group), int(boss)])
            .unwrap();
    };
    admin_of(gid);
    edit("one.user.addgroup", 1);
    admin_of(1);
    // `#uid VROUTER/* CREATE *` is the same rule for both groups: kept once, and gone with
    // either role, as OpenNebula's `del_rule` by value drops it.
    assert_eq!(acl_rules_of(&admin, boss), 7);
    edit("one.user.delgroup", 1);
    assert_eq!(acl_rules_of(&admin, boss), 3);
    edit(wire::method::USER_CHGRP, 1);
    assert_eq!(acl_rules_of(&admin, boss), 0);
    let group = admin
        .call_xml(wire::method::GROUP_INFO, vec![int(gid)])
        .unwrap();
    assert!(group.contains("<ADMINS></ADMINS>"), "{group}");
}

/// Any driver is taken, its password checked only when `PASSWORD_REQUIRED`; the first group
/// given is the primary one; oneadmin's users go to `users` by default; the new user has a
/// OneGate token password. A driver that manages groups refuses group changes by hand.
#[test]
fn drivers_passwords_and_groups_as_opennebula() {
    let Team {
        zone: _zone,
        admin,
        gid,
        plain,
        ..
    } = Team::new();
    let xml = user_xml(&admin, plain);
    assert!(
        xml.contains("<GID>1</GID><GROUPS><ID>1</ID></GROUPS>"),
        "{xml}"
    );
    assert!(
        xml.contains("<AUTH_DRIVER><![CDATA[core]]></AUTH_DRIVER>"),
        "{xml}"
    );
    assert!(xml.contains("<TOKEN_PASSWORD><![CDATA["), "{xml}");

    // Repeated groups count once; more than 256 are refused before any is looked up.
    let both = new_user(&admin, "both", "pw-both", "", &[gid, 1, gid, 1]).unwrap();
    let many: Vec<i64> = (1000..1257).collect();
    assert_eq!(
        failure(
            new_user(&admin, "many", "pw", "", &many),
            "one.user.allocate"
        ),
        (INTERNAL, "At most 256 groups may be given.".to_string())
    );
    assert_eq!(
        failure(
            new_user(&admin, "many", "pw", "", &many[..256]),
            "one.user.allocate"
        ),
        (NO_EXISTS, "Error getting group [1000].".to_string())
    );
    let xml = user_xml(&admin, both);
    assert!(
        xml.contains(&format!(
            "<GID>{gid}</GID><GROUPS><ID>1</ID><ID>{gid}</ID></GROUPS>"
        )),
        "{xml}"
    );

    let ldap = new_user(&admin, "ldapuser", "", "ldap", &[]).unwrap();
    assert!(user_xml(&admin, ldap).contains("<AUTH_DRIVER><![CDATA[ldap]]></AUTH_DRIVER>"));
    let x509 = new_user(&admin, "me", "CN=me, O=org", "x509", &[]);
    assert_eq!(
        failure(x509, "one.user.allocate"),
        (
            INTERNAL,
            "Invalid password, character ' ' is not allowed.".to_string()
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
            (INTERNAL, why.to_string())
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
            "Password is longer than max allowed length. \
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
/// user may no longer change its own password (oneadmin still may); `MAX_TOKEN_TIME` caps a
/// login token's life, and 0 refuses tokens.
#[test]
fn auth_mad_conf_decides_who_changes_passwords() {
    let setup: crate::zone::Setup = Box::new(|_, s| {
        s.extra_conf = "AUTH_MAD_CONF = [ NAME = \"core\", PASSWORD_CHANGE = \"NO\", \
                        MAX_TOKEN_TIME = 60 ]\n\
                        AUTH_MAD_CONF = [ NAME = \"mine\", MAX_TOKEN_TIME = 0 ]\n"
            .into();
    });
    let zone = Zone::solo_custom(None, Some(setup));
    let admin = zone.servers[0].client();
    let uid = new_user(&admin, "plain", "pw-plain", "", &[]).unwrap();
    let me = zone.servers[0].client_as("plain", "pw-plain");
    let result = call(&me, wire::method::USER_PASSWD, vec![int(uid), s("other")]);
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
    let result = call(&admin, wire::method::USER_PASSWD, vec![int(uid), s("")]);
    assert_eq!(
        failure(result, wire::method::USER_PASSWD),
        (
            ACTION_CODE,
            "Invalid password, it cannot be empty".to_string()
        )
    );

    let login = |c: &Client, name: &str, valid: i64| {
        c.call(
            wire::method::USER_LOGIN,
            vec![s(name), s(""), int(valid), int(-1)],
        )
    };
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let me = zone.servers[0].client_as("plain", "other");
    login(&me, "plain", -1).unwrap();
    let xml = user_xml(&admin, uid);
    let expiration: i64 = xml
        .split("<EXPIRATION_TIME>")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{xml}"));
    assert!(
        (before + 60..=before + 62).contains(&expiration),
        "{expiration} {before}"
    );
    new_user(&admin, "minor", "pw-minor", "mine", &[]).unwrap();
    let result = login(&admin, "minor", 600).map(|_| 0);
    assert_eq!(
        failure(result, wire::method::USER_LOGIN),
        (
            ACTION_CODE,
            "Login tokens are disabled for driver mine".to_string()
        )
    );
}

/// `method(args)`, called by user `uid` through `c`, is refused `what`, as OpenNebula words it.
fn refused(c: &Client, uid: i64, method: &str, args: Vec<Value>, what: &str) {
    assert_eq!(
        failure(call(c, method, args), method),
        (AUTHORIZATION, format!("User [{uid}] : {what}."))
    );
}

fn call(c: &Client, method: &str, args: Vec<Value>) -> Result<i64, cli::CallError> {
    c.call(method, args).map(|v| v.as_i64().unwrap_or(-1))
}

/// A group administrator's rules let it see and manage the users of its group (the pool shows
/// them and itself), and nobody else; a user may manage itself but not ADMIN itself.
#[test]
fn a_group_administrator_manages_the_users_of_its_group() {
    let Team {
        zone,
        admin,
        gid,
        boss,
        plain,
    } = Team::new();
    admin
        .call("one.group.addadmin", vec![int(gid), int(boss)])
        .unwrap();
    let as_boss = zone.servers[0].client_as("boss", "pw-boss");
    let as_plain = zone.servers[0].client_as("plain", "pw-plain");
    let worker = new_user(&as_boss, "worker", "pw-worker", "", &[]).unwrap();

    assert!(user_xml(&as_boss, worker).contains("<NAME>worker</NAME>"));
    let pool = as_boss
        .call_xml(wire::method::USERPOOL_INFO, vec![])
        .unwrap();
    let ids: Vec<&str> = pool
        .split("<USER><ID>")
        .skip(1)
        .filter_map(|u| u.split('<').next())
        .collect();
    assert_eq!(ids, [worker.to_string(), boss.to_string()], "{pool}");
    let own = as_plain
        .call_xml(wire::method::USERPOOL_INFO, vec![])
        .unwrap();
    assert_eq!(own.matches("<USER><ID>").count(), 1, "{own}");

    call(
        &as_boss,
        wire::method::USER_PASSWD,
        vec![int(worker), s("pw-2")],
    )
    .unwrap();
    call(
        &as_boss,
        wire::method::USER_UPDATE,
        vec![int(worker), s("A = 1"), int(1)],
    )
    .unwrap();
    call(
        &as_boss,
        wire::method::USER_CHAUTH,
        vec![int(worker), s("core"), s("pw-3")],
    )
    .unwrap();
    call(
        &as_boss,
        wire::method::USER_ENABLE,
        vec![int(worker), Value::Bool(false)],
    )
    .unwrap();
    assert!(user_xml(&admin, worker).contains("<ENABLED>0</ENABLED>"));
    call(
        &as_boss,
        "one.user.quota",
        vec![int(worker), s("VM = [ VMS = 3 ]")],
    )
    .unwrap();
    assert_eq!(
        failure(
            call(&as_boss, wire::method::USER_DELETE, vec![int(999)]),
            wire::method::USER_DELETE
        ),
        (NO_EXISTS, "Error getting user [999].".to_string())
    );
    // A user manages itself (its password, its template) but may not ADMIN itself.
    call(
        &as_plain,
        wire::method::USER_UPDATE,
        vec![int(plain), s("B = 2"), int(1)],
    )
    .unwrap();
    let (vms, core) = (s("VM = [ VMS = 3 ]"), s("core"));
    use wire::method as m;
    let (b, p) = ((&as_boss, boss), (&as_plain, plain));
    let refusals = [
        (
            b,
            "one.user.quota",
            vec![int(plain), vms],
            "ADMIN USER",
            plain,
        ),
        (b, m::USER_INFO, vec![int(plain)], "USE USER", plain),
        (b, m::USER_DELETE, vec![int(plain)], "ADMIN USER", plain),
        (
            b,
            "one.user.addgroup",
            vec![int(worker), int(1)],
            "MANAGE GROUP",
            1,
        ),
        (b, m::USER_CHGRP, vec![int(worker), int(1)], "USE GROUP", 1),
        (
            p,
            m::USER_CHAUTH,
            vec![int(plain), core, s("x")],
            "ADMIN USER",
            plain,
        ),
        (p, m::USER_INFO, vec![int(worker)], "USE USER", worker),
    ];
    for ((c, uid), method, args, right, oid) in refusals {
        refused(
            c,
            uid,
            method,
            args,
            &format!("Not authorized to perform {right} [{oid}]"),
        );
    }

    call(&as_boss, wire::method::USER_DELETE, vec![int(worker)]).unwrap();
    assert_eq!(
        failure(
            call(&admin, wire::method::USER_DELETE, vec![int(0)]),
            wire::method::USER_DELETE
        ),
        (
            ACTION_CODE,
            "Cannot delete user. oneadmin cannot be deleted.".to_string()
        )
    );
}
