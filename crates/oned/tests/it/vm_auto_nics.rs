//! NICs in auto mode (`NETWORK_MODE = auto`), as OpenNebula 7.0 schedules them: a new VM's auto
//! NIC is numbered and named but gets no network; the scheduler gives each one the network its
//! owner may USE that meets its requirements, in the host's cluster, with a free address,
//! fewest addresses used first and a different network for each NIC; a NIC that cannot have one
//! leaves the VM PENDING with OpenNebula's SCHED_MESSAGE; `one.vm.deploy`'s NIC template names
//! the networks by hand, refused in `get_auto_network_leases`'s words.
//!
//! Group `users` may USE every network (OpenNebula's default VDC grants its groups the networks
//! of every cluster), so its members' auto NICs may take any.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE as ACTION, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn vm_body(c: &cli::Client, vm: i32) -> String {
    c.call_xml("one.vm.info", vec![i(vm)]).unwrap_or_default()
}

/// The `<NIC>` elements of a VM body, in order.
fn nics(body: &str) -> Vec<String> {
    body.split("<NIC>")
        .skip(1)
        .filter_map(|n| n.split("</NIC>").next())
        .map(str::to_string)
        .collect()
}

/// The CDATA text of `<tag>` in `xml`.
fn field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}><![CDATA[");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find("]]>")? + start;
    Some(xml[start..end].to_string())
}

fn running(c: &cli::Client, vm: i32) -> bool {
    vm_body(c, vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
}

fn sched_message_ends(c: &cli::Client, vm: i32, end: &str) -> bool {
    let body = vm_body(c, vm);
    body.split("<SCHED_MESSAGE><![CDATA[")
        .nth(1)
        .and_then(|m| m.split("]]>").next())
        .is_some_and(|m| m.ends_with(end))
}

/// A READY network; group `users` may USE every network (OpenNebula's default ACL rule
/// `@1 NET+DATASTORE/* USE`, from the default VDC), other groups none.
fn network(zone: &Zone, c: &cli::Client, name: &str, ip: &str, size: u32) -> i32 {
    let vn = ok(
        c,
        "one.vn.allocate",
        vec![s(&format!(
            "NAME = {name}\nVN_MAD = dummy\nBRIDGE = br0\nKIND = office\nAR = [ TYPE = IP4, IP = {ip}, SIZE = {size} ]"
        ))],
    );
    zone.wait_until(DEADLINE, "the network is READY", || {
        c.call_xml("one.vn.info", vec![i(vn)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    vn
}

#[test]
fn auto_nics_get_a_network_from_the_scheduler_or_by_hand_as_opennebula_gives_them() {
    let zone = Zone::bootstrap(1);
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
    let small = network(&zone, &c, "small", "10.0.1.1", 1);
    let big = network(&zone, &c, "big", "10.0.2.1", 3);
    ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s("core"), Value::Array(vec![])],
    );
    let a = zone.servers[0].client_as("alice", "pw-alice");

    eprintln!("--- a new VM's auto NIC is numbered and named, with no network yet");
    let vm = ok(
        &a,
        "one.vm.allocate",
        vec![
            s("CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_MODE = auto ]"),
            Value::Bool(true),
        ],
    );
    let nic = nics(&vm_body(&c, vm)).remove(0);
    assert_eq!(field(&nic, "NIC_ID").as_deref(), Some("0"), "{nic}");
    assert_eq!(field(&nic, "NAME").as_deref(), Some("NIC0"), "{nic}");
    assert_eq!(field(&nic, "NETWORK_ID"), None, "{nic}");
    assert_eq!(field(&nic, "IP"), None, "{nic}");

    eprintln!("--- released, the scheduler gives it the network with fewest addresses used");
    ok(&a, "one.vm.action", vec![s("release"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, vm));
    let nic = nics(&vm_body(&c, vm)).remove(0);
    assert_eq!(field(&nic, "NETWORK_ID"), Some(small.to_string()), "{nic}");
    assert_eq!(field(&nic, "IP").as_deref(), Some("10.0.1.1"), "{nic}");
    assert_eq!(field(&nic, "NETWORK").as_deref(), Some("small"), "{nic}");

    eprintln!("--- two auto NICs take two networks: with `small` full, only `big` is left");
    let two = ok(
        &a,
        "one.vm.allocate",
        vec![s(
            "CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_MODE = auto ]\nNIC = [ NETWORK_MODE = auto ]",
        )],
    );
    zone.wait_until(DEADLINE, "the VM waits for free leases", || {
        sched_message_ends(
            &c,
            two,
            "Cannot dispatch VM to any Host. Possible reasons: Not enough capacity in Host or \
             System DS, dispatch limit reached, or limit of free leases reached.",
        )
    });
    let third = network(&zone, &c, "third", "10.0.3.1", 2);
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, two));
    let body = vm_body(&c, two);
    let got: Vec<Option<String>> = nics(&body).iter().map(|n| field(n, "NETWORK_ID")).collect();
    assert_eq!(
        got,
        [Some(big.to_string()), Some(third.to_string())],
        "{body}"
    );
    assert!(!body.contains("SCHED_MESSAGE"), "{body}");

    eprintln!("--- requirements no network meets, and every network full");
    let picky = ok(
        &a,
        "one.vm.allocate",
        vec![s(
            "CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_MODE = auto, SCHED_REQUIREMENTS = \"KIND = lab\" ]",
        )],
    );
    zone.wait_until(DEADLINE, "the VM says no network meets it", || {
        sched_message_ends(
            &c,
            picky,
            "Cannot dispatch VM: No virtual network meets SCHED_NIC_REQUIREMENTS for NIC 0",
        )
    });
    for _ in 0..3 {
        // big has 2 addresses left and third 1: three single-NIC VMs take them all.
        ok(
            &a,
            "one.vm.allocate",
            vec![s(
                "CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_MODE = auto, SCHED_REQUIREMENTS = \"KIND = office\" ]",
            )],
        );
    }
    let last = ok(
        &a,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_MODE = auto ]")],
    );
    zone.wait_until(DEADLINE, "the VM says no leases are left", || {
        sched_message_ends(
            &c,
            last,
            &format!("Cannot schedule VM, no leases available in network {small},{big},{third}"),
        )
    });

    eprintln!("--- a user who may use no network");
    let lab = ok(&c, "one.group.allocate", vec![s("lab")]);
    // A new group joins the default VDC, whose rules let it use every network: not this one.
    ok(&c, "one.vdc.delgroup", vec![i(0), i(lab)]);
    // `@lab VM/* CREATE`.
    let (group, all, vm_kind, create) = (
        wire::acl::GROUP_ID,
        wire::acl::ALL_ID,
        wire::acl::VM,
        wire::acl::CREATE,
    );
    c.call(
        "one.acl.addrule",
        vec![
            s(&format!("{:x}", group | lab as u64)),
            s(&format!("{:x}", vm_kind | all)),
            s(&format!("{create:x}")),
        ],
    )
    .unwrap();
    ok(
        &c,
        "one.user.allocate",
        vec![s("bob"), s("pw-bob"), s("core"), Value::Array(vec![i(lab)])],
    );
    let b = zone.servers[0].client_as("bob", "pw-bob");
    let lonely = ok(
        &b,
        "one.vm.allocate",
        vec![s("CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_MODE = auto ]")],
    );
    zone.wait_until(DEADLINE, "the VM says its owner may use no network", || {
        sched_message_ends(
            &c,
            lonely,
            "Cannot dispatch VM: User is not authorized to use any virtual network for NIC 0",
        )
    });

    eprintln!("--- by hand: one.vm.deploy's NIC template, refused as get_auto_network_leases");
    let spare = network(&zone, &c, "spare", "10.0.4.1", 4);
    let held = ok(
        &a,
        "one.vm.allocate",
        vec![
            s(&format!(
                "CPU = 0.1\nMEMORY = 16\nNIC = [ NETWORK_ID = {spare} ]\nNIC = [ NETWORK_MODE = auto ]\n\
                 CONTEXT = [ NETWORK = YES ]"
            )),
            Value::Bool(true),
        ],
    );
    // The auto NIC's context waits for its network. The VM above waiting for a lease may
    // take a new address of `spare` first, so which one each NIC gets is not fixed.
    let body = vm_body(&c, held);
    let first = field(&nics(&body)[0], "IP").unwrap_or_default();
    assert!(first.starts_with("10.0.4."), "{body}");
    assert!(
        body.contains(&format!("<ETH0_IP><![CDATA[{first}]]></ETH0_IP>")),
        "{body}"
    );
    assert!(!body.contains("<ETH1_IP>"), "{body}");
    let deploy = |tmpl: &str| {
        one_error(c.call(
            "one.vm.deploy",
            vec![i(held), i(host), Value::Bool(false), i(-1), s(tmpl)],
        ))
    };
    let want = |text: &str| (ACTION, format!("[one.vm.deploy] {text}"));
    assert_eq!(
        deploy(&format!("NIC = [ NIC_ID = 5, NETWORK_ID = {spare} ]")),
        want("NIC_ID 5 not found")
    );
    assert_eq!(
        deploy(&format!("NIC = [ NIC_ID = 0, NETWORK_ID = {spare} ]")),
        want("NIC_ID 0 not AUTO")
    );
    assert!(vm_body(&c, held).contains("<STATE>2</STATE>"));
    c.call(
        "one.vm.deploy",
        vec![
            i(held),
            i(host),
            Value::Bool(false),
            i(-1),
            s(&format!("NIC = [ NIC_ID = 1, NETWORK_ID = {spare} ]")),
        ],
    )
    .unwrap();
    zone.wait_until(DEADLINE, "the VM runs", || running(&c, held));
    let ips: Vec<String> = nics(&vm_body(&c, held))
        .iter()
        .map(|n| field(n, "IP").unwrap_or_default())
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert_eq!(ips[0], first);
    assert!(ips[1].starts_with("10.0.4.") && ips[1] != first, "{ips:?}");
    let body = vm_body(&c, held);
    assert!(
        body.contains(&format!("<ETH1_IP><![CDATA[{}]]></ETH1_IP>", ips[1])),
        "{body}"
    );
    // The VM that waited for a free address took one of the new network's too.
    zone.wait_until(DEADLINE, "the VM waiting for leases runs", || {
        running(&c, last)
    });
    let nic = nics(&vm_body(&c, last)).remove(0);
    assert_eq!(field(&nic, "NETWORK_ID"), Some(spare.to_string()), "{nic}");
    let vn = c.call_xml("one.vn.info", vec![i(spare)]).unwrap();
    assert!(vn.contains("<USED_LEASES>3</USED_LEASES>"), "{vn}");

    eprintln!("--- a VM recreated keeps its auto NIC's address and takes no other");
    c.call("one.vm.recover", vec![i(vm), i(4)]).unwrap();
    zone.wait_until(DEADLINE, "the recreated VM runs again", || {
        running(&c, vm) && vm_body(&c, vm).contains("<SEQ>1</SEQ>")
    });
    let nic = nics(&vm_body(&c, vm)).remove(0);
    assert_eq!(field(&nic, "IP").as_deref(), Some("10.0.1.1"), "{nic}");
    let vn = c.call_xml("one.vn.info", vec![i(small)]).unwrap();
    assert!(vn.contains("<USED_LEASES>1</USED_LEASES>"), "{vn}");
}
