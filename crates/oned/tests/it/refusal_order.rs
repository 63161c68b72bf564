//! Which answer wins when several checks would refuse a call, as 7.0.2's request classes order
//! them: a malformed call is refused before anything (`SecurityGroupCommit`'s `recover`,
//! `VMTemplateInstantiate`'s `hold` with its extra template); allocates parse before they
//! authorize (`vdc`, `document`); a VM template's name is checked before its SCHED_ACTION;
//! `marketapp.chown` as `RequestManagerChown`.

use cli::client::CallError;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, INTERNAL};

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

fn malformed(r: Result<Value, CallError>) {
    match r {
        Err(CallError::Fault { code, .. }) => assert_eq!(code, -501),
        other => panic!("expected fault -501, got {other:?}"),
    }
}

#[test]
fn refusals_come_in_opennebulas_order() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let sg = ok(&c, "one.secgroup.allocate", vec![s("NAME = sg")]);
    malformed(c.call("one.secgroup.commit", vec![i(sg)]));
    ok(&c, "one.secgroup.commit", vec![i(sg), Value::Bool(false)]);

    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let (code, msg) = one_error(ann.call("one.vdc.allocate", vec![s("NAME = [")]));
    assert_eq!(code, INTERNAL, "{msg}");
    assert_eq!(
        one_error(ann.call("one.vdc.allocate", vec![s("NAME = v")])),
        (
            0x200,
            format!("[one.vdc.allocate] User [{uid}] : Not authorized to perform CREATE VDC.")
        )
    );
    // A document's type is read last.
    let (code, msg) = one_error(c.call("one.document.allocate", vec![s("NAME = [")]));
    assert_eq!(code, INTERNAL, "{msg}");

    // The name, then the template's SCHED_ACTION.
    ok(&c, "one.template.allocate", vec![s("NAME = t")]);
    assert_eq!(
        one_error(c.call(
            "one.template.allocate",
            vec![s("NAME = t\nSCHED_ACTION = [ ACTION = fly, TIME = 1 ]")]
        )),
        (
            INTERNAL,
            "[one.template.allocate] NAME is already taken by TEMPLATE 0.".to_string()
        )
    );

    // `marketapp.chown`: the new user before the app.
    assert_eq!(
        one_error(c.call("one.marketapp.chown", vec![i(77), i(999), i(-1)])),
        (
            0x400,
            "[one.marketapp.chown] Error getting user [999].".to_string()
        )
    );
}
