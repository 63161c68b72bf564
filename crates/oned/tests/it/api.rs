//! The `/RPC2` surface: authentication, authorization, OpenNebula error
//! codes and resilience to malformed XML-RPC.

use cli::Client;
use xmlrpc::{Response, Value};

use crate::zone::{
    allocate, http_post, one_error, user_name, user_pool, Zone, AUTHENTICATION, AUTHORIZATION,
    CALL_TIMEOUT, INTERNAL, NO_EXISTS,
};

#[test]
fn bad_credentials_and_non_admin_calls_are_refused() {
    let zone = Zone::bootstrap(1);
    let s0 = &zone.servers[0];
    let endpoint = s0.endpoint();

    eprintln!("--- wrong password, unknown user, malformed session");
    for session in ["oneadmin:wrong", "nobody:pw", "oneadmin", ""] {
        let client = Client::new(endpoint.clone(), session, CALL_TIMEOUT);
        for (method, params) in [
            ("one.zone.info", vec![Value::Int(0)]),
            ("one.userpool.info", vec![]),
            ("one.zone.raftstatus", vec![]),
        ] {
            let (code, message) = one_error(client.call(method, params));
            assert_eq!(code, AUTHENTICATION, "{session:?} {method}: {message}");
        }
        let (code, message) = one_error(allocate(&client, "intruder"));
        assert_eq!(code, AUTHENTICATION, "{session:?}: {message}");
    }
    assert!(!user_pool(&s0.client())
        .unwrap()
        .contains(&"intruder".to_string()));

    eprintln!("--- a non-admin user may not change the zone");
    let alice = allocate(&s0.client(), "alice").unwrap();
    let as_alice = s0.client_as("alice", "pw-alice");
    let template = "SERVER=[NAME=\"evil\", ENDPOINT=\"http://127.0.0.1:9/RPC2\"]";
    for (method, params) in [
        (
            "one.zone.addserver",
            vec![Value::Int(0), Value::String(template.into())],
        ),
        ("one.zone.delserver", vec![Value::Int(0), Value::Int(0)]),
        ("one.zone.resetserver", vec![Value::Int(0), Value::Int(0)]),
    ] {
        let (code, message) = one_error(as_alice.call(method, params));
        assert_eq!(code, AUTHORIZATION, "{method}: {message}");
    }
    let info = s0.zone_info().unwrap();
    assert_eq!(info.servers.len(), 1, "{info:?}");
    let (code, _) = one_error(allocate(&as_alice, "alices-friend"));
    assert_ne!(code, 0);

    eprintln!("--- a changed password replaces the old one");
    s0.client()
        .call(
            "one.user.passwd",
            vec![Value::Int(alice as i32), Value::String("new-pw".into())],
        )
        .unwrap();
    let (code, message) = one_error(as_alice.call("one.user.info", vec![Value::Int(alice as i32)]));
    assert_eq!(code, AUTHENTICATION, "{message}");
    let renewed = s0.client_as("alice", "new-pw");
    assert_eq!(user_name(&renewed, alice).as_deref(), Some("alice"));

    eprintln!("--- a deleted user cannot log in");
    s0.client()
        .call("one.user.delete", vec![Value::Int(alice as i32)])
        .unwrap();
    let (code, message) = one_error(renewed.call("one.user.info", vec![Value::Int(alice as i32)]));
    assert_eq!(code, AUTHENTICATION, "{message}");
}

#[test]
fn user_methods_answer_with_opennebula_results_and_error_codes() {
    let zone = Zone::bootstrap(1);
    let admin = zone.servers[0].client();
    let a = allocate(&admin, "ann").unwrap();
    let b = allocate(&admin, "bob").unwrap();
    assert!(a >= 2 && b > a, "ids {a}, {b}");
    assert_eq!(user_name(&admin, a).as_deref(), Some("ann"));
    let names = user_pool(&admin).unwrap();
    for n in ["oneadmin", "ann", "bob"] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }

    let (code, message) = one_error(allocate(&admin, "ann"));
    assert_eq!(code, INTERNAL, "duplicate name: {message}");
    assert!(message.starts_with("[one.user.allocate]"), "{message}");

    let (code, message) = one_error(admin.call("one.user.info", vec![Value::Int(9999)]));
    assert_eq!(code, NO_EXISTS, "{message}");
    assert!(message.starts_with("[one.user.info]"), "{message}");

    admin
        .call("one.user.delete", vec![Value::Int(b as i32)])
        .unwrap();
    let (code, message) = one_error(admin.call("one.user.info", vec![Value::Int(b as i32)]));
    assert_eq!(code, NO_EXISTS, "{message}");
    let (code, message) = one_error(admin.call("one.user.delete", vec![Value::Int(b as i32)]));
    assert_eq!(code, NO_EXISTS, "{message}");
    assert!(!user_pool(&admin).unwrap().contains(&"bob".to_string()));

    let (code, message) = one_error(admin.call("one.zone.info", vec![Value::Int(100)]));
    assert_eq!(code, NO_EXISTS, "zone 100: {message}");

    // The answer's fourth value is `att.resp_id`: the missing object's id, else -1.
    let answer = |body: &str| {
        let (status, text) = http_post(zone.servers[0].port, "/RPC2", body.as_bytes());
        assert_eq!(status, 200, "{text}");
        match xmlrpc::parse_response(text.as_bytes()) {
            Ok(Response::Success(Value::Array(a))) => a,
            other => panic!("an array, not {other:?} from {text}"),
        }
    };
    let call = |method: &str, id: i32| {
        format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>\
             <param><value><string>{}</string></value></param>\
             <param><value><int>{id}</int></value></param></params></methodCall>",
            zone.servers[0].session()
        )
    };
    let missing = answer(&call("one.vm.info", 42));
    assert_eq!(missing.get(2), Some(&Value::Int(NO_EXISTS)), "{missing:?}");
    assert_eq!(missing.get(3), Some(&Value::Int(42)), "{missing:?}");
    let refused = answer(&call("one.user.delete", 0));
    assert_eq!(refused.get(3), Some(&Value::Int(-1)), "{refused:?}");
}

/// Posts `body` and checks the answer is HTTP 200 with an XML-RPC `<fault>`.
fn assert_fault(port: u16, what: &str, body: &str) {
    let (status, text) = http_post(port, "/RPC2", body.as_bytes());
    eprintln!("{what}: HTTP {status}: {text}");
    assert_eq!(status, 200, "{what}: {text}");
    match xmlrpc::parse_response(text.as_bytes()) {
        Ok(Response::Fault { code, message }) => {
            assert!(
                !message.is_empty(),
                "{what}: fault {code} without a message"
            )
        }
        other => panic!("{what}: expected a <fault>, got {other:?} from {text}"),
    }
}

#[test]
fn malformed_xmlrpc_gets_a_fault_and_the_server_keeps_serving() {
    let zone = Zone::solo();
    let s0 = &zone.servers[0];
    let session = s0.session();
    let call = |method: &str, params: &str| {
        format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>\
             <param><value><string>{session}</string></value></param>{params}</params></methodCall>"
        )
    };

    assert_fault(s0.port, "garbage body", "hello, this is not XML");
    assert_fault(s0.port, "empty body", "");
    let good = call(
        "one.user.info",
        "<param><value><int>0</int></value></param>",
    );
    assert_fault(s0.port, "truncated XML", &good[..good.len() / 2]);
    assert_fault(
        s0.port,
        "unbalanced tags",
        "<?xml version=\"1.0\"?><methodCall><methodName>one.zone.info</methodName><params></methodCall>",
    );
    assert_fault(s0.port, "unknown method", &call("one.no.such.method", ""));
    assert_fault(
        s0.port,
        "string where an int is expected",
        &call(
            "one.user.info",
            "<param><value><string>zero</string></value></param>",
        ),
    );
    assert_fault(
        s0.port,
        "missing parameters",
        &call("one.user.allocate", ""),
    );

    eprintln!("--- the server still serves good calls");
    let (status, text) = http_post(s0.port, "/RPC2", good.as_bytes());
    assert_eq!(status, 200, "{text}");
    match xmlrpc::parse_response(text.as_bytes()).unwrap() {
        Response::Success(Value::Array(items)) => {
            assert_eq!(items.first(), Some(&Value::Bool(true)), "{text}")
        }
        other => panic!("{other:?} from {text}"),
    }
    let client = s0.client();
    client.call("one.system.version", vec![]).unwrap();
    let id = allocate(&client, "after-garbage").unwrap();
    assert_eq!(user_name(&client, id).as_deref(), Some("after-garbage"));
    assert!(s0.raft_status().is_some());
}
