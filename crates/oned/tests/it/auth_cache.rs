//! Issue 16: what a server keeps in memory in front of its state database (verified sessions'
//! user rows, the ACL rules) never outlives the change of an applied entry. A password change,
//! a disabled user, a group change or a removed rule takes effect on a server as soon as it has
//! applied the entry, although the old session or rule was answered from memory a moment
//! before.

use cli::Client;
use wire::acl::{HOST, INDIVIDUAL_ID, USE};
use xmlrpc::Value;

use crate::zone::{allocate, one_error, user_name, Zone, AUTHENTICATION, AUTHORIZATION, DEADLINE};

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// The user's groups as `one.user.info` through `c` lists them.
fn groups_of(c: &Client, uid: i64) -> Vec<i64> {
    let xml = c.call_xml(wire::method::USER_INFO, vec![int(uid)]).unwrap();
    let user = cli::xml::Element::parse(&xml)
        .unwrap()
        .expect("USER")
        .unwrap();
    user.child("GROUPS")
        .map(|g| {
            g.children_named("ID")
                .map(|i| i.text.trim().parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn issue_16_a_cached_session_is_refused_on_every_server_once_it_applied_the_change() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let (follower, other) = ((leader + 1) % 3, (leader + 2) % 3);
    let admin = zone.servers[leader].client();
    let uid = allocate(&admin, "cached").unwrap();
    let old_on = |i: usize| zone.servers[i].client_as("cached", "pw-cached");

    eprintln!("--- the session verifies, and is kept, on the leader and a follower");
    zone.wait_until(DEADLINE, "the follower knows the user", || {
        user_name(&old_on(follower), uid).is_some()
    });
    for i in [leader, follower] {
        for _ in 0..3 {
            assert_eq!(user_name(&old_on(i), uid).as_deref(), Some("cached"));
        }
    }

    eprintln!("--- the password changes through the other follower");
    zone.servers[other]
        .client()
        .call(wire::method::USER_PASSWD, vec![int(uid), s("new-pw")])
        .unwrap();
    // The leader applied the entry before it answered.
    let (code, msg) = one_error(old_on(leader).call(wire::method::USER_INFO, vec![int(uid)]));
    assert_eq!(code, AUTHENTICATION, "{msg}");
    let new_on_follower = zone.servers[follower].client_as("cached", "new-pw");
    zone.wait_until(DEADLINE, "the follower applied the new password", || {
        user_name(&new_on_follower, uid).is_some()
    });
    let (code, msg) = one_error(old_on(follower).call(wire::method::USER_INFO, vec![int(uid)]));
    assert_eq!(code, AUTHENTICATION, "{msg}");

    eprintln!("--- the user is disabled: its kept session goes too");
    for _ in 0..3 {
        assert!(user_name(&new_on_follower, uid).is_some());
    }
    admin
        .call(
            wire::method::USER_ENABLE,
            vec![int(uid), Value::Bool(false)],
        )
        .unwrap();
    let on_leader = zone.servers[leader].client_as("cached", "new-pw");
    let (code, msg) = one_error(on_leader.call(wire::method::USER_INFO, vec![int(uid)]));
    assert_eq!(code, AUTHENTICATION, "{msg}");
    let admin_on_follower = zone.servers[follower].client();
    zone.wait_until(DEADLINE, "the follower applied the disabling", || {
        admin_on_follower
            .call_xml(wire::method::USER_INFO, vec![int(uid)])
            .is_ok_and(|x| x.contains("<ENABLED>0</ENABLED>"))
    });
    let (code, msg) = one_error(new_on_follower.call(wire::method::USER_INFO, vec![int(uid)]));
    assert_eq!(code, AUTHENTICATION, "{msg}");
}

#[test]
fn issue_16_group_and_rule_changes_take_effect_on_authorization_at_once() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = (leader + 1) % 3;
    let admin = zone.servers[leader].client();
    let admin_on_follower = zone.servers[follower].client();
    let uid = allocate(&admin, "member").unwrap();
    let on = |i: usize| zone.servers[i].client_as("member", "pw-member");
    zone.wait_until(DEADLINE, "the follower knows the user", || {
        user_name(&on(follower), uid).is_some()
    });
    let group0 = |c: &Client| c.call_xml(wire::method::GROUP_INFO, vec![int(0)]);

    eprintln!("--- not a member of group oneadmin: refused, on both servers");
    for i in [leader, follower] {
        let (code, msg) = one_error(group0(&on(i)));
        assert_eq!(code, AUTHORIZATION, "{msg}");
    }

    eprintln!("--- added to group oneadmin: allowed at once");
    admin
        .call("one.user.addgroup", vec![int(uid), int(0)])
        .unwrap();
    assert!(group0(&on(leader)).is_ok());
    zone.wait_until(DEADLINE, "the follower applied the membership", || {
        groups_of(&admin_on_follower, uid).contains(&0)
    });
    assert!(group0(&on(follower)).is_ok());

    eprintln!("--- removed from it: refused at once");
    admin
        .call("one.user.delgroup", vec![int(uid), int(0)])
        .unwrap();
    let (code, msg) = one_error(group0(&on(leader)));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    zone.wait_until(DEADLINE, "the follower applied the removal", || {
        !groups_of(&admin_on_follower, uid).contains(&0)
    });
    let (code, msg) = one_error(group0(&on(follower)));
    assert_eq!(code, AUTHORIZATION, "{msg}");

    eprintln!("--- a rule granting USE on a host, then deleted");
    let hid = admin
        .call(
            wire::method::HOST_ALLOCATE,
            vec![s("h-cached"), s("dummy"), s("dummy"), int(-1)],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let host = |c: &Client| c.call_xml(wire::method::HOST_INFO, vec![int(hid)]);
    zone.wait_until(DEADLINE, "the follower knows the host", || {
        host(&admin_on_follower).is_ok()
    });
    for i in [leader, follower] {
        let (code, msg) = one_error(host(&on(i)));
        assert_eq!(code, AUTHORIZATION, "{msg}");
    }
    let rule = admin
        .call(
            wire::method::ACL_ADDRULE,
            vec![
                s(&format!("{:x}", INDIVIDUAL_ID | uid as u64)),
                s(&format!("{:x}", HOST | INDIVIDUAL_ID | hid as u64)),
                s(&format!("{USE:x}")),
            ],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    assert!(host(&on(leader)).is_ok());
    let rule_listed = |c: &Client| {
        c.call_xml(wire::method::ACL_INFO, vec![])
            .unwrap()
            .contains(&format!("<ID>{rule}</ID>"))
    };
    zone.wait_until(DEADLINE, "the follower applied the rule", || {
        rule_listed(&admin_on_follower)
    });
    assert!(host(&on(follower)).is_ok());
    admin
        .call(wire::method::ACL_DELRULE, vec![int(rule)])
        .unwrap();
    let (code, msg) = one_error(host(&on(leader)));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    zone.wait_until(DEADLINE, "the follower applied the deletion", || {
        !rule_listed(&admin_on_follower)
    });
    let (code, msg) = one_error(host(&on(follower)));
    assert_eq!(code, AUTHORIZATION, "{msg}");
}
