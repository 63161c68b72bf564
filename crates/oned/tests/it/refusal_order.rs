//! Which answer wins when several checks would refuse a call, as 7.0.2's request classes order
//! them: a malformed call is refused before anything (`SecurityGroupCommit`'s `recover`,
//! `VMTemplateInstantiate`'s `hold` with its extra template); allocates parse before they
//! authorize (`vdc`, `document`); a VM template's name is checked before its SCHED_ACTION;
//! `marketapp.chown` as `RequestManagerChown`.

use cli::client::CallError;
use xmlrpc::Value;

use crate::zone::{let_others_use, one_error, Zone, INTERNAL};

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

/// `VirtualMachine::set_auth_request`: a new VM's images, networks and security groups are
/// authorized in the request that creates it (`one.vm.allocate`) or instantiates its template,
/// every refusal in one message, before the topology and the VM's own checks.
#[test]
fn a_new_vms_images_and_networks_are_refused_together() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let uid = ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let image = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = base\nTYPE = DATABLOCK\nSIZE = 1"), i(1)],
    );
    let net = ok(
        &c,
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = ETHER, SIZE = 4 ]"),
            i(-1),
        ],
    );
    let sg = ok(&c, "one.secgroup.allocate", vec![s("NAME = sg")]);
    let base = format!(
        "CPU = 1\nMEMORY = 64\nDISK = [ IMAGE_ID = {image} ]\n\
         NIC = [ NETWORK = lan, NETWORK_UNAME = oneadmin, SECURITY_GROUPS = {sg} ]"
    );
    // A topology that does not parse: `allocate_authorization` reads it after the request.
    let vm = format!("{base}\nTOPOLOGY = [ CORES = 3, SOCKETS = 5, THREADS = 7 ]");
    // Users may use every network by the default rule `@1 NET/* USE #0`: not here.
    c.call("one.acl.delrule", vec![i(4)]).unwrap();
    let refused = format!(
        "Not authorized to perform USE IMAGE [{image}]; Not authorized to perform USE NET \
         [{net}]; Not authorized to perform USE SECGROUP [{sg}]"
    );
    assert_eq!(
        one_error(ann.call("one.vm.allocate", vec![s(&vm)])),
        (
            0x200,
            format!("[one.vm.allocate] User [{uid}] : {refused}.")
        )
    );
    // Instantiated, the template's USE (and CREATE TEMPLATE for extra attributes) come first;
    // `VMTemplateInstantiate` reads the topology before it authorizes.
    let t = ok(
        &c,
        "one.template.allocate",
        vec![s(&format!("NAME = t\n{base}"))],
    );
    assert_eq!(
        one_error(ann.call(
            "one.template.instantiate",
            vec![i(t), s(""), Value::Bool(false), s("COLOR = red")]
        )),
        (
            0x200,
            format!(
                "[one.template.instantiate] User [{uid}] : Not authorized to perform USE \
                 TEMPLATE [{t}]; {refused}."
            )
        )
    );
    // With the rights, the topology is the refusal.
    let_others_use(&c, "image", image);
    let_others_use(&c, "vn", net);
    let_others_use(&c, "secgroup", sg);
    let (code, msg) = one_error(ann.call("one.vm.allocate", vec![s(&vm)]));
    assert_eq!(code, 0x4000, "{msg}");
    assert!(msg.contains("Total threads per core and socket"), "{msg}");

    // An address range's security groups are the network's too (`get_security_groups`).
    let sg2 = ok(&c, "one.secgroup.allocate", vec![s("NAME = ranges")]);
    let net2 = ok(
        &c,
        "one.vn.allocate",
        vec![
            s(&format!(
                "NAME = wan\nVN_MAD = dummy\nBRIDGE = br1\nAR = [ TYPE = ETHER, SIZE = 4, SECURITY_GROUPS = \"{sg2}\" ]"
            )),
            i(-1),
        ],
    );
    let_others_use(&c, "vn", net2);
    let nic = format!("CPU = 1\nMEMORY = 64\nNIC = [ NETWORK_ID = {net2} ]");
    assert_eq!(
        one_error(ann.call("one.vm.allocate", vec![s(&nic)])),
        (
            0x200,
            format!(
                "[one.vm.allocate] User [{uid}] : Not authorized to perform USE SECGROUP [{sg2}]."
            )
        )
    );
}
