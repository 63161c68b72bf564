//! The zone object itself: enabling and disabling it (a disabled zone answers reads and
//! refuses changes, as OpenNebula's), renaming it, and zone creation outside a federation.

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
