//! What 7.0.2 does around a host's name, its pool listing and its deletion: `HostRename::
//! batch_rename` renames the VMs' current records, `one.hostpool.info` prints the stored bodies
//! (MONITORING empty, only `one.host.info` loads it), and deletes drop the ACL rules on the
//! host (`del_resource_rules`) and on a cluster's objects (`del_cid_rules`).

use xmlrpc::Value;

use crate::zone::{Server, Zone, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params)
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .as_i64()
        .unwrap() as i32
}

fn xml(c: &cli::Client, method: &str, params: Vec<Value>) -> String {
    c.call_xml(method, params).unwrap()
}

fn fast(_: usize, s: &mut Server) {
    s.extra_conf = "PROBES_PERIOD = [ MONITOR_VM = 1, MONITOR_HOST = 1 ]\n".to_string();
}

#[test]
fn a_renamed_host_renames_its_vms_records_and_its_pool_body_has_no_monitoring() {
    let zone = Zone::solo_custom(None, Some(Box::new(fast)));
    let c = zone.servers[0].client();
    let host = int(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let vm = int(&c, "one.vm.allocate", vec![s("CPU = 1\nMEMORY = 64")]);
    zone.wait_until(DEADLINE, "the VM runs", || {
        xml(&c, "one.vm.info", vec![Value::Int(vm)])
            .contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
    });
    zone.wait_until(DEADLINE, "the host is monitored", || {
        xml(&c, "one.host.info", vec![Value::Int(host)]).contains("<MONITORING><TIMESTAMP>")
    });
    let pool = xml(&c, "one.hostpool.info", vec![]);
    assert!(pool.contains("<MONITORING></MONITORING>"), "{pool}");
    assert!(!pool.contains("<MONITORING><TIMESTAMP>"), "{pool}");

    int(&c, "one.host.rename", vec![Value::Int(host), s("renamed")]);
    let body = xml(&c, "one.vm.info", vec![Value::Int(vm)]);
    assert!(body.contains("<HOSTNAME>renamed</HOSTNAME>"), "{body}");
    assert!(!body.contains("<HOSTNAME>node</HOSTNAME>"), "{body}");
    let pool = xml(
        &c,
        "one.vmpool.info",
        vec![
            Value::Int(-2),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
        ],
    );
    assert!(pool.contains("<HOSTNAME>renamed</HOSTNAME>"), "{pool}");
}

#[test]
fn deleting_a_host_or_a_cluster_drops_the_rules_on_them_and_their_objects() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let host = int(
        &c,
        "one.host.allocate",
        vec![s("gone"), s("dummy"), s("dummy"), Value::Int(-1)],
    );
    let cluster = int(&c, "one.cluster.allocate", vec![s("c1")]);
    let rules = |c: &cli::Client| xml(c, "one.acl.info", vec![]).matches("<ACL>").count();
    let before = rules(&c);
    // `* HOST/#host USE`, `* HOST+NET/%cluster USE` and one on cluster 0's hosts, which stays.
    for resource in [
        format!("{:x}", 0x20_0000_0000u64 | 0x1_0000_0000 | host as u64),
        format!(
            "{:x}",
            0x20_0000_0000u64 | 0x40_0000_0000 | 0x8_0000_0000 | cluster as u64
        ),
        format!("{:x}", 0x20_0000_0000u64 | 0x8_0000_0000),
    ] {
        c.call(
            "one.acl.addrule",
            vec![s("400000000"), s(&resource), s("1"), s("100000000")],
        )
        .unwrap();
    }
    assert_eq!(rules(&c), before + 3);
    int(&c, "one.host.delete", vec![Value::Int(host)]);
    assert_eq!(rules(&c), before + 2);
    int(&c, "one.cluster.delete", vec![Value::Int(cluster)]);
    let left = xml(&c, "one.acl.info", vec![]);
    assert_eq!(left.matches("<ACL>").count(), before + 1, "{left}");
    assert!(left.contains("<STRING>* HOST/%0 USE #0</STRING>"), "{left}");
}
