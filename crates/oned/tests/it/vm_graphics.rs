//! The ports of VMs' GRAPHICS as OpenNebula 7.0 gives them when a VM is deployed
//! (`set_vnc_port`): `VNC_PORTS/START + id` if free in the host's cluster, else the first free
//! one from START; the PORT a VM asks for if no other VM holds it; kept while the VM is
//! deployed or stopped, free again once it is done. Through the scheduler and `one.vm.deploy`.

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, DEADLINE};

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

fn body(c: &cli::Client, vm: i64) -> Element {
    Element::parse(&c.call_xml("one.vm.info", vec![i(vm)]).unwrap()).unwrap()
}

fn port(c: &cli::Client, vm: i64) -> Option<String> {
    body(c, vm)
        .child("TEMPLATE")
        .and_then(|t| t.child("GRAPHICS"))
        .and_then(|g| g.child("PORT"))
        .map(|p| p.text.clone())
}

fn wait_state(zone: &Zone, c: &cli::Client, vm: i64, state: &str, lcm: &str) {
    let want = format!("<STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE>");
    zone.wait_until(DEADLINE, &format!("VM {vm} in {state}/{lcm}"), || {
        c.call_xml("one.vm.info", vec![i(vm)])
            .is_ok_and(|b| b.contains(&want))
    });
}

#[test]
fn graphics_ports_are_given_at_deployment_one_per_vm_of_a_cluster() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let host = ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    zone.wait_until(DEADLINE, "the host is monitored", || {
        c.call_xml("one.host.info", vec![i(host)])
            .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
    });
    let vm = |extra: &str, hold: bool| {
        ok(
            &c,
            "one.vm.allocate",
            vec![
                s(&format!(
                    "CPU = 0.1\nMEMORY = 16\nGRAPHICS = [ TYPE = VNC, LISTEN = 0.0.0.0{extra} ]"
                )),
                Value::Bool(hold),
            ],
        )
    };

    eprintln!("--- the scheduler: START + id");
    let a = vm("", false);
    let b = vm("", false);
    for v in [a, b] {
        wait_state(&zone, &c, v, "3", "3");
        assert_eq!(port(&c, v), Some((5900 + v).to_string()), "VM {v}");
    }
    assert_eq!(port(&c, a), Some("5900".into()));

    eprintln!("--- a VM without GRAPHICS takes none; one asking for a held port is refused");
    let plain = ok(
        &c,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 16"), Value::Bool(false)],
    );
    wait_state(&zone, &c, plain, "3", "3");
    assert!(!c
        .call_xml("one.vm.info", vec![i(plain)])
        .unwrap()
        .contains("<GRAPHICS>"));
    let greedy = vm(", PORT = 5901", true);
    assert_eq!(
        one_error(c.call("one.vm.deploy", vec![i(greedy), i(host)])),
        (
            ACTION_CODE,
            "[one.vm.deploy] Requested VNC port already assigned to a VM".into()
        )
    );

    eprintln!("--- GRAPHICS added to a running VM takes a port there and then");
    ok(
        &c,
        "one.vm.updateconf",
        vec![
            i(plain),
            s("GRAPHICS = [ TYPE = VNC, LISTEN = 0.0.0.0 ]"),
            i(0),
        ],
    );
    assert_eq!(port(&c, plain), Some((5900 + plain).to_string()));

    eprintln!("--- a hint taken: the first free port from START");
    // VM 5 would take 5905: VM `squatter` holds it.
    let squatter = vm(", PORT = 5905", true);
    ok(&c, "one.vm.deploy", vec![i(squatter), i(host)]);
    wait_state(&zone, &c, squatter, "3", "3");
    assert_eq!(port(&c, squatter), Some("5905".into()));
    let late = vm("", true);
    assert_eq!(late, 5, "the ids this test counts on");
    assert_eq!(plain, 2, "the ids this test counts on");
    ok(&c, "one.vm.deploy", vec![i(late), i(host)]);
    wait_state(&zone, &c, late, "3", "3");
    // 5900, 5901 and 5902 are held by VMs 0, 1 and 2.
    assert_eq!(port(&c, late), Some("5903".into()));

    eprintln!("--- a stopped VM keeps its port; a VM done gives it back");
    ok(&c, "one.vm.action", vec![s("stop"), i(b)]);
    wait_state(&zone, &c, b, "4", "0");
    ok(&c, "one.vm.action", vec![s("resume"), i(b)]);
    wait_state(&zone, &c, b, "3", "3");
    assert_eq!(port(&c, b), Some("5901".into()));
    ok(&c, "one.vm.action", vec![s("terminate-hard"), i(b)]);
    wait_state(&zone, &c, b, "6", "0");
    ok(&c, "one.vm.deploy", vec![i(greedy), i(host)]);
    wait_state(&zone, &c, greedy, "3", "3");
    assert_eq!(port(&c, greedy), Some("5901".into()));

    eprintln!("--- parse_graphics at allocate");
    assert_eq!(
        one_error(c.call(
            "one.vm.allocate",
            vec![s(
                "CPU = 0.1\nMEMORY = 16\nGRAPHICS = [ TYPE = VNC, PORT = 70000 ]"
            )],
        )),
        (
            0x2000,
            "[one.vm.allocate] Wrong PORT number in GRAPHICS attribute".into()
        )
    );
    let secret = vm(", RANDOM_PASSWD = YES", true);
    let graphics = body(&c, secret);
    let passwd = graphics
        .child("TEMPLATE")
        .and_then(|t| t.child("GRAPHICS"))
        .and_then(|g| g.child("PASSWD"))
        .map(|p| p.text.clone())
        .unwrap_or_default();
    assert_eq!(passwd.len(), 8, "a VNC password is cut to 8: {passwd:?}");
}
