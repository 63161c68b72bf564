//! Hosts, datastores and networks as OpenNebula 7.0.2 changes and refuses them: an address
//! range replaced by `one.vn.update_ar` (`AddressRange::update_attributes`), `one.host.status`
//! (`Host::enable`), `one.datastore.delete` (`DatastorePool::drop`), `one.vn.delete` and the
//! templates `VirtualNetwork::insert` and `Datastore::insert` keep.

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, DEADLINE, INTERNAL};

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

fn body(c: &cli::Client, method: &str, id: i64) -> Element {
    Element::parse(&c.call_xml(method, vec![i(id)]).unwrap()).unwrap()
}

#[test]
fn ranges_hosts_datastores_and_networks_change_as_opennebula_changes_them() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();

    eprintln!("--- update_ar replaces the first range given");
    let vn = ok(
        &c,
        "one.vn.allocate",
        vec![
            s("NAME = lan\nVN_MAD = bridge\n\
               AR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 4, GATEWAY = 10.0.0.254, TAG = a ]\n\
               AR = [ TYPE = ETHER, SIZE = 2 ]"),
            i(-1),
        ],
    );
    zone.wait_until(DEADLINE, "the network is READY", || {
        c.call_xml("one.vn.info", vec![i(vn)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    ok(
        &c,
        "one.vn.update_ar",
        vec![
            i(vn),
            s("AR = [ AR_ID = 0, DNS = 1.1.1.1, IP = 10.9.9.9 ]\nAR = [ AR_ID = 1, SIZE = 9 ]"),
        ],
    );
    let net = body(&c, "one.vn.info", vn);
    let t = net.child("TEMPLATE").unwrap();
    assert!(t.child("NAME").is_none(), "no NAME in the template");
    // `VirtualNetwork::insert`'s driver settings, in the template too.
    assert_eq!(t.text_of("BRIDGE").unwrap(), format!("onebr{vn}"));
    assert_eq!(net.text_of("BRIDGE").unwrap(), format!("onebr{vn}"));
    assert_eq!(t.text_of("BRIDGE_TYPE").unwrap(), "linux");
    assert_eq!(t.text_of("VN_MAD").unwrap(), "bridge");
    assert_eq!(t.text_of("PHYDEV").unwrap(), "");
    let ovs = ok(
        &c,
        "one.vn.allocate",
        vec![s("NAME = ovs\nVN_MAD = ovswitch\nVLAN_ID = 7"), i(-1)],
    );
    let ovs = body(&c, "one.vn.info", ovs);
    assert_eq!(ovs.text_of("BRIDGE_TYPE").unwrap(), "openvswitch");
    assert_eq!(ovs.text_of("BRIDGE").unwrap(), "onebr.7");
    let ranges: Vec<&Element> = net.child("AR_POOL").unwrap().children_named("AR").collect();
    let first = ranges[0];
    assert_eq!(first.text_of("DNS").unwrap(), "1.1.1.1");
    assert_eq!(
        first.text_of("IP").unwrap(),
        "10.0.0.1",
        "the first address stays"
    );
    assert_eq!(
        first.text_of("SIZE").unwrap(),
        "4",
        "SIZE stays unless given"
    );
    assert!(first.child("GATEWAY").is_none(), "not repeated, gone");
    assert!(first.child("TAG").is_none(), "not repeated, gone");
    assert_eq!(
        ranges[1].text_of("SIZE").unwrap(),
        "2",
        "only the first AR given"
    );

    eprintln!("--- vn.delete of a network the driver holds");
    let fresh = ok(
        &c,
        "one.vn.allocate",
        vec![s("NAME = fresh\nVN_MAD = bridge"), i(-1)],
    );
    zone.wait_until(DEADLINE, "the network is READY", || {
        c.call_xml("one.vn.info", vec![i(fresh)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    ok(&c, "one.vn.delete", vec![i(fresh)]);

    eprintln!("--- host.status");
    let h = ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("dummy"), i(-1)],
    );
    zone.wait_until(DEADLINE, "the host is monitored", || {
        c.call_xml("one.host.info", vec![i(h)])
            .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
    });
    ok(&c, "one.host.status", vec![i(h), i(1)]);
    ok(&c, "one.host.status", vec![i(h), i(0)]);
    // A disabled host that was monitored is MONITORED again at once (`Host::enable`).
    assert_eq!(body(&c, "one.host.info", h).text_of("STATE").unwrap(), "2");
    assert_eq!(
        one_error(c.call("one.host.status", vec![i(h), i(7)])),
        (INTERNAL, "[one.host.status] Wrong status code".into())
    );
    // `Host::offline`: no capacity, and the monitoring's totals out of the template.
    let share = |b: &Element, name: &str| b.child("HOST_SHARE").unwrap().int_of(name).unwrap();
    let monitored = body(&c, "one.host.info", h);
    assert!(share(&monitored, "TOTAL_CPU") > 0);
    ok(&c, "one.host.status", vec![i(h), i(2)]);
    let off = body(&c, "one.host.info", h);
    assert_eq!(off.text_of("STATE").unwrap(), "8");
    for name in ["TOTAL_CPU", "TOTAL_MEM", "MAX_CPU", "MAX_MEM"] {
        assert_eq!(share(&off, name), 0, "{name}");
    }
    let template = off.child("TEMPLATE").unwrap();
    assert!(template.child("TOTALCPU").is_none() && template.child("FREEMEMORY").is_none());
    assert!(template.child("IM_MAD").is_some());
    // Enabled, it is INIT (it had no capacity) until monitored again.
    ok(&c, "one.host.status", vec![i(h), i(0)]);
    zone.wait_until(DEADLINE, "the host is monitored again", || {
        c.call_xml("one.host.info", vec![i(h)])
            .is_ok_and(|b| b.contains("<STATE>2</STATE>"))
    });

    eprintln!("--- datastore.delete: any datastore, empty");
    let img = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = d\nTYPE = DATABLOCK\nSIZE = 1"), i(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        c.call_xml("one.image.info", vec![i(img)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    // `update_disk_cluster_id`: a disk names its datastore's clusters.
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![
            s(&format!(
                "CPU = 0.1\nMEMORY = 16\nDISK = [ IMAGE_ID = {img} ]"
            )),
            Value::Bool(true),
        ],
    );
    let disk = body(&c, "one.vm.info", vm);
    let disk = disk.child("TEMPLATE").unwrap().child("DISK").unwrap();
    assert_eq!(disk.text_of("CLUSTER_ID").unwrap(), "0");
    assert_eq!(
        one_error(c.call("one.datastore.delete", vec![i(1)])),
        (
            ACTION_CODE,
            "[one.datastore.delete] Cannot delete datastore. Datastore 1 is not empty.".into()
        )
    );
    let ds = ok(
        &c,
        "one.datastore.allocate",
        vec![s("NAME = more\nDS_MAD = fs\nTM_MAD = ssh"), i(-1)],
    );
    let d = body(&c, "one.datastore.info", ds);
    assert!(
        d.child("TEMPLATE").unwrap().child("NAME").is_none(),
        "no NAME in the template"
    );
    // `set_tm_mad`: the transfer driver's settings, as TM_MAD_CONF has them.
    let t = d.child("TEMPLATE").unwrap();
    assert_eq!(t.text_of("LN_TARGET").unwrap(), "SYSTEM");
    assert_eq!(t.text_of("ALLOW_ORPHANS").unwrap(), "YES");
    assert_eq!(t.text_of("SAFE_DIRS").unwrap(), "/var/tmp");
    assert!(t.child("SHARED").is_none());
    let sys = ok(
        &c,
        "one.datastore.allocate",
        vec![s("NAME = sys\nTYPE = SYSTEM_DS\nTM_MAD = ssh"), i(-1)],
    );
    let sys = body(&c, "one.datastore.info", sys);
    let t = sys.child("TEMPLATE").unwrap();
    assert_eq!(t.text_of("SHARED").unwrap(), "NO");
    assert_eq!(t.text_of("DS_MIGRATE").unwrap(), "YES");
    assert_eq!(t.text_of("DISK_TYPE").unwrap(), "FILE");
    assert!(t.child("LN_TARGET").is_none());
    ok(&c, "one.datastore.delete", vec![i(2)]);
    ok(&c, "one.datastore.delete", vec![i(ds)]);
}

#[test]
fn cluster_updates_check_one_drs_as_post_update_template() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let m = "one.cluster.update";
    let cl = ok(&c, "one.cluster.allocate", vec![s("drs")]);
    for (drs, field) in [
        ("ONE_DRS = [ AUTOMATION = full ]", "POLICY"),
        (
            "ONE_DRS = [ POLICY = pack, AUTOMATION = never ]",
            "AUTOMATION",
        ),
        (
            "ONE_DRS = [ POLICY = pack, AUTOMATION = full, MEMORY_WEIGHT = x ]",
            "MEMORY_WEIGHT",
        ),
    ] {
        assert_eq!(
            one_error(c.call(m, vec![i(cl), s(drs), i(0)])),
            (
                INTERNAL,
                format!(
                    "[{m}] Cannot update template. Error cluster template contains invalid {field}"
                )
            ),
            "{drs}"
        );
    }
    ok(
        &c,
        m,
        vec![
            i(cl),
            s("ONE_DRS = [ POLICY = Balance, AUTOMATION = \" MANUAL \", CPU_WEIGHT = 0.5 ]"),
            i(0),
        ],
    );
    let t = body(&c, "one.cluster.info", cl);
    let drs = t.child("TEMPLATE").unwrap().child("ONE_DRS").unwrap();
    assert_eq!(drs.text_of("POLICY").unwrap(), "balance");
    assert_eq!(drs.text_of("AUTOMATION").unwrap(), "manual");
    assert_eq!(drs.text_of("CPU_WEIGHT").unwrap(), "0.5");
    // A pinned host in the cluster refuses any ONE_DRS; without one, the template is anyone's.
    let h = ok(
        &c,
        "one.host.allocate",
        vec![s("pin"), s("dummy"), s("dummy"), i(cl)],
    );
    ok(
        &c,
        "one.host.update",
        vec![i(h), s("PIN_POLICY = PINNED"), i(1)],
    );
    assert_eq!(
        one_error(c.call(
            m,
            vec![
                i(cl),
                s("ONE_DRS = [ POLICY = pack, AUTOMATION = full ]"),
                i(1)
            ]
        )),
        (
            INTERNAL,
            format!("[{m}] Cannot update template. Error cluster contains pinned host {h}")
        )
    );
    ok(&c, m, vec![i(cl), s("NOTE = x"), i(0)]);
}

#[test]
fn datastore_updates_run_post_update_template() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let m = "one.datastore.update";
    let refused = |why: &str| (INTERNAL, format!("[{m}] Cannot update template. {why}"));
    assert_eq!(
        one_error(c.call(
            "one.datastore.allocate",
            vec![
                s("NAME = bad\nDS_MAD = fs\nTM_MAD = ssh\nDISK_TYPE = floppy"),
                i(-1)
            ]
        )),
        (
            INTERNAL,
            "[one.datastore.allocate] Unknown DISK_TYPE in template.".into()
        )
    );
    let ds = ok(
        &c,
        "one.datastore.allocate",
        vec![s("NAME = u\nDS_MAD = fs\nTM_MAD = ssh"), i(-1)],
    );
    // A replaced template keeps its TYPE and drivers; the driver settings go with the rest.
    ok(&c, m, vec![i(ds), s("FOO = bar"), i(0)]);
    let t = body(&c, "one.datastore.info", ds);
    let t = t.child("TEMPLATE").unwrap();
    assert_eq!(t.text_of("FOO").unwrap(), "bar");
    assert_eq!(t.text_of("TYPE").unwrap(), "IMAGE_DS");
    assert_eq!(t.text_of("TM_MAD").unwrap(), "ssh");
    assert_eq!(t.text_of("DS_MAD").unwrap(), "fs");
    assert!(t.child("LN_TARGET").is_none() && t.child("SAFE_DIRS").is_none());
    for (text, why) in [
        (
            "TM_MAD = nope",
            "TM_MAD named \"nope\" is not defined in oned.conf",
        ),
        (
            "DS_MAD = nope",
            "DS_MAD named \"nope\" is not defined in oned.conf",
        ),
        (
            "DISK_TYPE = CDROM",
            "Invalid DISK_TYPE for an Image Datastore.",
        ),
        (
            "DS_MAD = rsync",
            "Datastore template is missing the \"RSYNC_HOST\" attribute or it's empty.",
        ),
    ] {
        assert_eq!(
            one_error(c.call(m, vec![i(ds), s(text), i(1)])),
            refused(why)
        );
    }
    ok(
        &c,
        m,
        vec![i(ds), s("DISK_TYPE = block\nTM_MAD = shared"), i(1)],
    );
    let d = body(&c, "one.datastore.info", ds);
    assert_eq!(d.text_of("DISK_TYPE").unwrap(), "2");
    assert_eq!(d.text_of("TM_MAD").unwrap(), "shared");
    let t = d.child("TEMPLATE").unwrap();
    assert_eq!(t.text_of("DISK_TYPE").unwrap(), "BLOCK");
    assert_eq!(t.text_of("LN_TARGET").unwrap(), "NONE");
    // A system datastore has no DS_MAD.
    ok(&c, m, vec![i(ds), s("TYPE = system_ds"), i(1)]);
    let d = body(&c, "one.datastore.info", ds);
    assert_eq!(d.text_of("TYPE").unwrap(), "1");
    assert_eq!(d.text_of("DS_MAD").unwrap(), "-");
    let t = d.child("TEMPLATE").unwrap();
    assert_eq!(t.text_of("TYPE").unwrap(), "SYSTEM_DS");
    assert!(t.child("DS_MAD").is_none());
    // Datastore 0 stays a system datastore; one with images keeps its NFS/LVM options.
    ok(&c, m, vec![i(0), s("TYPE = IMAGE_DS"), i(1)]);
    assert_eq!(
        body(&c, "one.datastore.info", 0).text_of("TYPE").unwrap(),
        "1"
    );
    ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = held\nTYPE = DATABLOCK\nSIZE = 1"), i(1)],
    );
    assert_eq!(
        one_error(c.call(m, vec![i(1), s("NFS_AUTO_ENABLE = YES"), i(1)])),
        refused("Cannot update option NFS_AUTO_ENABLE in a datastore with existing images")
    );
}
