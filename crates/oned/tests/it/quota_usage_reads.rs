//! Issue 16: a server keeps the quotas of users and groups in memory between reads
//! (`api::quota_cache`), valid while no applied write touched what they are counted from. A
//! follower that showed a usage before a write shows the new one once it has applied the
//! write: VMs, images, leases and reservations, limits.

use cli::Client;
use xmlrpc::Value;

use crate::zone::{allocate, Zone, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

/// What `method` (`one.user.info`, `one.group.info`) shows of `<metric>` (a limit) or
/// `<metric>_USED` for object `id`, in the first entry that has it ("" if none).
fn shown(c: &Client, method: &str, id: i64, field: &str) -> String {
    let body = c.call_xml(method, vec![Value::Int(id as i32)]).unwrap();
    body.split(&format!("<{field}><![CDATA["))
        .nth(1)
        .and_then(|r| r.split("]]>").next())
        .unwrap_or("")
        .to_string()
}

/// Waits until every follower has applied what the leader committed (so the write just
/// acknowledged), then checks that `method` shows `want` in `field` of `id` on follower `c` at
/// the first read: a copy kept from before the write must not be used once it is applied
/// (waiting for the value instead would pass on any later write that happened to move the
/// generation).
fn wait_shown(zone: &Zone, c: &Client, method: &str, id: i64, field: &str, want: &str) {
    zone.wait_caught_up();
    assert_eq!(shown(c, method, id, field), want, "{method} {id} {field}");
}

#[test]
fn issue_16_a_follower_shows_new_usage_once_it_applied_the_write() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let alice = allocate(&admin, "alice").unwrap();
    // Alice writes through the leader; what she uses is read on a follower, whose copy of her
    // quotas was read before each write.
    let w = zone.servers[leader].client_as("alice", "pw-alice");
    let f = zone.servers[(leader + 1) % 3].client();
    let user = |field: &str, want: &str| wait_shown(&zone, &f, "one.user.info", alice, field, want);
    let group = |field: &str, want: &str| wait_shown(&zone, &f, "one.group.info", 1, field, want);

    // Limits, so that every entry prints even while nothing is used.
    let vn = ok(
        &admin,
        "one.vn.allocate",
        vec![s(
            "NAME = pub\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.1.0.1, SIZE = 10 ]",
        )],
    );
    for (method, id) in [("one.vn.chmod", vn), ("one.datastore.chmod", 1)] {
        admin
            .call(
                method,
                [id, -1, -1, -1, -1, -1, -1, 1, -1, -1]
                    .map(Value::Int)
                    .to_vec(),
            )
            .unwrap();
    }
    let limits = format!(
        "VM = [ VMS = 10 ]\nDATASTORE = [ ID = 1, IMAGES = 10 ]\nNETWORK = [ ID = {vn}, LEASES = 10 ]"
    );
    ok(
        &admin,
        "one.user.quota",
        vec![Value::Int(alice as i32), s(&limits)],
    );
    ok(&admin, "one.group.quota", vec![Value::Int(1), s(&limits)]);
    user("VMS", "10");
    user("VMS_USED", "0");
    group("VMS_USED", "0");

    // A VM (on hold), then terminated: only `vm_pool` changes.
    let plain = ok(
        &w,
        "one.vm.allocate",
        vec![s("NAME = p\nCPU = 0.5\nMEMORY = 32"), Value::Bool(true)],
    );
    user("VMS_USED", "1");
    user("MEMORY_USED", "32");
    group("VMS_USED", "1");
    w.call("one.vm.action", vec![s("terminate"), Value::Int(plain)])
        .unwrap();
    user("VMS_USED", "0");
    group("VMS_USED", "0");

    // A VM (on hold) with an address of the network.
    let vm = ok(
        &w,
        "one.vm.allocate",
        vec![
            s(&format!(
                "NAME = a\nCPU = 0.5\nMEMORY = 64\nNIC = [ NETWORK_ID = {vn} ]"
            )),
            Value::Bool(true),
        ],
    );
    user("VMS_USED", "1");
    user("MEMORY_USED", "64");
    user("LEASES_USED", "1");
    group("VMS_USED", "1");
    group("LEASES_USED", "1");

    // A reservation of two more addresses.
    let res = ok(
        &w,
        "one.vn.reserve",
        vec![Value::Int(vn), s("SIZE = 2\nNAME = mine")],
    );
    user("LEASES_USED", "3");

    // Terminated: the VM and its address count no more.
    w.call("one.vm.action", vec![s("terminate"), Value::Int(vm)])
        .unwrap();
    user("VMS_USED", "0");
    user("MEMORY_USED", "0");
    user("LEASES_USED", "2");
    group("VMS_USED", "0");

    // An image, then its deletion.
    let image = ok(
        &w,
        "one.image.allocate",
        vec![s("NAME = i1\nPATH = /tmp/i1\nSIZE = 16"), Value::Int(1)],
    );
    user("IMAGES_USED", "1");
    group("IMAGES_USED", "1");
    zone.wait_until(DEADLINE, "the image is READY", || {
        w.call_xml("one.image.info", vec![Value::Int(image)])
            .unwrap()
            .contains("<STATE>1</STATE>")
    });
    ok(&w, "one.image.delete", vec![Value::Int(image)]);
    user("IMAGES_USED", "0");
    group("IMAGES_USED", "0");

    // The reservation deleted: its addresses are free again.
    zone.wait_until(DEADLINE, "the reservation is READY", || {
        w.call_xml("one.vn.info", vec![Value::Int(res)])
            .unwrap()
            .contains("<STATE>1</STATE>")
    });
    ok(&w, "one.vn.delete", vec![Value::Int(res)]);
    user("LEASES_USED", "0");

    // A new limit shows at once too, in the pool as well, and so do new defaults.
    let pool = || f.call_xml("one.userpool.info", vec![]).unwrap();
    assert!(pool().contains("<VMS><![CDATA[10]]></VMS><VMS_USED><![CDATA[0]]>"));
    ok(
        &admin,
        "one.user.quota",
        vec![Value::Int(alice as i32), s("VM = [ VMS = 7 ]")],
    );
    user("VMS", "7");
    let defaults = || f.call_xml("one.userquota.info", vec![]).unwrap();
    assert!(!defaults().contains("<VMS><![CDATA[5]]>"));
    admin
        .call("one.userquota.update", vec![s("VM = [ VMS = 5 ]")])
        .unwrap();
    zone.wait_until(DEADLINE, "the follower shows the new defaults", || {
        defaults().contains("<VMS><![CDATA[5]]>")
    });
    assert!(pool().contains("<VMS><![CDATA[7]]></VMS><VMS_USED><![CDATA[0]]>"));
}
