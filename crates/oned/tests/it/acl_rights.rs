//! Hosts, clusters, groups, VDCs and zones authorized as OpenNebula's: group oneadmin may do
//! anything, anyone else what an ACL rule grants, with the right OpenNebula's request asks for
//! (`one.host.status` ADMIN HOST, `one.cluster.update` MANAGE CLUSTER...), and pools list what
//! the caller may USE.

use cli::Client;
use wire::acl::{ADMIN, CLUSTER, HOST, INDIVIDUAL_ID, MANAGE, USE, VDC};
use xmlrpc::Value;

use crate::zone::{allocate, one_error, Zone, AUTHORIZATION, NO_EXISTS};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn id(v: Value) -> i64 {
    v.as_i64().unwrap()
}

/// `#uid <kind>/#oid <right>`, added by oneadmin with `one.acl.addrule`'s hex masks.
fn grant(admin: &Client, uid: i64, kind: u64, oid: i64, right: u64) {
    let user = format!("{:x}", INDIVIDUAL_ID | uid as u64);
    let resource = format!("{:x}", kind | INDIVIDUAL_ID | oid as u64);
    admin
        .call(
            "one.acl.addrule",
            vec![s(&user), s(&resource), s(&format!("{right:x}"))],
        )
        .unwrap();
}

/// The AUTHORIZATION refusal of `method` to user `uid`, as OpenNebula words it.
fn refused(
    result: Result<impl std::fmt::Debug, cli::CallError>,
    method: &str,
    uid: i64,
    what: &str,
) {
    let (code, msg) = one_error(result);
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert_eq!(msg, format!("[{method}] User [{uid}] : {what}."));
}

fn new_host(admin: &Client, name: &str) -> i64 {
    id(admin
        .call(
            wire::method::HOST_ALLOCATE,
            vec![s(name), s("dummy"), s("dummy"), int(-1)],
        )
        .unwrap())
}

/// A user of group `users` (VDC 0's `@1 HOST/%0 MANAGE`) may not change a host's status
/// (ADMIN HOST) nor see it (USE HOST) until rules grant those rights.
#[test]
fn host_rights_come_from_acl_rules() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let hid = new_host(&admin, "node1");
    let uid = allocate(&admin, "plain").unwrap();
    let plain = zone.servers[0].client_as("plain", "pw-plain");

    let status = || plain.call(wire::method::HOST_STATUS, vec![int(hid), int(1)]);
    refused(
        status(),
        "one.host.status",
        uid,
        &format!("Not authorized to perform ADMIN HOST [{hid}]"),
    );
    // MANAGE through cluster 0 is not USE: the pool shows no host, info is refused.
    assert_eq!(
        plain.call_xml(wire::method::HOSTPOOL_INFO, vec![]).unwrap(),
        "<HOST_POOL></HOST_POOL>"
    );
    refused(
        plain.call(wire::method::HOST_INFO, vec![int(hid)]),
        "one.host.info",
        uid,
        &format!("Not authorized to perform USE HOST [{hid}]"),
    );
    // A host that does not exist is said so first, as `basic_authorization` does.
    let (code, msg) = one_error(plain.call(wire::method::HOST_STATUS, vec![int(99), int(1)]));
    assert_eq!(
        (code, msg.as_str()),
        (NO_EXISTS, "[one.host.status] Error getting host [99].")
    );
    // Host rename, update and delete are ADMIN too (`HostRename`, `HostUpdateTemplate`,
    // `HostDelete`).
    refused(
        plain.call("one.host.update", vec![int(hid), s("A = 1"), int(1)]),
        "one.host.update",
        uid,
        &format!("Not authorized to perform ADMIN HOST [{hid}]"),
    );

    grant(&admin, uid, HOST, hid, ADMIN);
    status().unwrap();
    plain
        .call("one.host.update", vec![int(hid), s("A = 1"), int(1)])
        .unwrap();
    let body = admin
        .call_xml(wire::method::HOST_INFO, vec![int(hid)])
        .unwrap();
    assert!(body.contains("<STATE>4</STATE>"), "disabled: {body}");
    // ADMIN is not USE either.
    assert_eq!(
        plain.call_xml(wire::method::HOSTPOOL_INFO, vec![]).unwrap(),
        "<HOST_POOL></HOST_POOL>"
    );

    grant(&admin, uid, HOST, hid, USE);
    let other = new_host(&admin, "node2");
    let pool = plain.call_xml(wire::method::HOSTPOOL_INFO, vec![]).unwrap();
    assert!(
        pool.starts_with(&format!("<HOST_POOL><HOST><ID>{hid}</ID>")),
        "{pool}"
    );
    assert_eq!(pool.matches("<HOST>").count(), 1, "{pool}");
    assert!(!pool.contains(&format!("<ID>{other}</ID>")), "{pool}");
    plain
        .call_xml(wire::method::HOST_INFO, vec![int(hid)])
        .unwrap();
    // Creating one is another right, asked with ADMIN on its cluster in one request.
    refused(
        plain.call(
            wire::method::HOST_ALLOCATE,
            vec![s("node3"), s("dummy"), s("dummy"), int(-1)],
        ),
        "one.host.allocate",
        uid,
        "Not authorized to perform CREATE HOST; Not authorized to perform ADMIN CLUSTER [0]",
    );
}

/// MANAGE on a cluster lets a user update and rename it, not delete it nor move hosts in and
/// out (ADMIN on the cluster and on the host, `RequestManagerClusterHost`).
#[test]
fn manage_on_a_cluster_updates_it_and_admin_moves_hosts() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let cid = id(admin.call("one.cluster.allocate", vec![s("edge")]).unwrap());
    let hid = new_host(&admin, "node1");
    let uid = allocate(&admin, "plain").unwrap();
    let plain = zone.servers[0].client_as("plain", "pw-plain");

    let update = || {
        plain.call(
            "one.cluster.update",
            vec![int(cid), s("RESERVED_CPU = 10"), int(1)],
        )
    };
    refused(
        update(),
        "one.cluster.update",
        uid,
        &format!("Not authorized to perform MANAGE CLUSTER [{cid}]"),
    );
    grant(&admin, uid, CLUSTER, cid, MANAGE);
    update().unwrap();
    let body = admin.call_xml("one.cluster.info", vec![int(cid)]).unwrap();
    assert!(body.contains("RESERVED_CPU"), "{body}");
    plain
        .call("one.cluster.rename", vec![int(cid), s("edge-2")])
        .unwrap();

    let addhost = || plain.call("one.cluster.addhost", vec![int(cid), int(hid)]);
    refused(
        addhost(),
        "one.cluster.addhost",
        uid,
        &format!(
            "Not authorized to perform ADMIN CLUSTER [{cid}]; \
             Not authorized to perform ADMIN HOST [{hid}]"
        ),
    );
    refused(
        plain.call("one.cluster.delete", vec![int(cid)]),
        "one.cluster.delete",
        uid,
        &format!("Not authorized to perform ADMIN CLUSTER [{cid}]"),
    );
    // MANAGE is not USE: neither info nor the pool show it.
    refused(
        plain.call("one.cluster.info", vec![int(cid)]),
        "one.cluster.info",
        uid,
        &format!("Not authorized to perform USE CLUSTER [{cid}]"),
    );
    assert_eq!(
        plain.call_xml("one.clusterpool.info", vec![]).unwrap(),
        "<CLUSTER_POOL></CLUSTER_POOL>"
    );

    // ADMIN on the cluster alone still leaves the host's.
    grant(&admin, uid, CLUSTER, cid, ADMIN);
    refused(
        addhost(),
        "one.cluster.addhost",
        uid,
        &format!("Not authorized to perform ADMIN HOST [{hid}]"),
    );
    grant(&admin, uid, HOST, hid, ADMIN);
    addhost().unwrap();
    let body = admin.call_xml("one.cluster.info", vec![int(cid)]).unwrap();
    assert!(
        body.contains(&format!("<HOSTS><ID>{hid}</ID></HOSTS>")),
        "{body}"
    );
    // Back to cluster 0 is ADMIN on cluster 0, whichever cluster the call names.
    refused(
        plain.call("one.cluster.delhost", vec![int(cid), int(hid)]),
        "one.cluster.delhost",
        uid,
        "Not authorized to perform ADMIN CLUSTER [0]",
    );

    grant(&admin, uid, CLUSTER, cid, USE);
    let pool = plain.call_xml("one.clusterpool.info", vec![]).unwrap();
    assert!(
        pool.starts_with(&format!("<CLUSTER_POOL><CLUSTER><ID>{cid}</ID>")),
        "{pool}"
    );
    assert_eq!(pool.matches("<CLUSTER>").count(), 1, "{pool}");
}

/// USE on a VDC shows it in the pool and to `one.vdc.info`; changing it needs more.
#[test]
fn use_on_a_vdc_shows_it() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let vid = id(admin
        .call("one.vdc.allocate", vec![s("NAME = mine")])
        .unwrap());
    let uid = allocate(&admin, "plain").unwrap();
    let plain = zone.servers[0].client_as("plain", "pw-plain");

    assert_eq!(
        plain.call_xml("one.vdcpool.info", vec![]).unwrap(),
        "<VDC_POOL></VDC_POOL>"
    );
    refused(
        plain.call("one.vdc.info", vec![int(vid)]),
        "one.vdc.info",
        uid,
        &format!("Not authorized to perform USE VDC [{vid}]"),
    );

    grant(&admin, uid, VDC, vid, USE);
    let pool = plain.call_xml("one.vdcpool.info", vec![]).unwrap();
    assert!(
        pool.starts_with(&format!("<VDC_POOL><VDC><ID>{vid}</ID><NAME>mine</NAME>")),
        "{pool}"
    );
    assert_eq!(
        pool.matches("<VDC>").count(),
        1,
        "VDC 0 stays hidden: {pool}"
    );
    let body = plain.call_xml("one.vdc.info", vec![int(vid)]).unwrap();
    assert!(body.starts_with(&format!("<VDC><ID>{vid}</ID>")), "{body}");
    refused(
        plain.call("one.vdc.update", vec![int(vid), s("A = 1"), int(1)]),
        "one.vdc.update",
        uid,
        &format!("Not authorized to perform MANAGE VDC [{vid}]"),
    );
    // A group change is ADMIN on the VDC and on the group (`VdcEditGroup`).
    refused(
        plain.call("one.vdc.addgroup", vec![int(vid), int(1)]),
        "one.vdc.addgroup",
        uid,
        &format!(
            "Not authorized to perform ADMIN VDC [{vid}]; \
             Not authorized to perform ADMIN GROUP [1]"
        ),
    );
    grant(&admin, uid, VDC, vid, ADMIN);
    refused(
        plain.call("one.vdc.addgroup", vec![int(vid), int(1)]),
        "one.vdc.addgroup",
        uid,
        "Not authorized to perform ADMIN GROUP [1]",
    );
}

/// A group's members may see it, nobody else without a rule; ACL rules and the zone's Raft
/// status stay group oneadmin's.
#[test]
fn groups_show_to_their_members_and_acls_to_oneadmin() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let uid = allocate(&admin, "plain").unwrap();
    let plain = zone.servers[0].client_as("plain", "pw-plain");

    let mine = plain
        .call_xml(wire::method::GROUP_INFO, vec![int(-1)])
        .unwrap();
    assert!(
        mine.starts_with("<GROUP><ID>1</ID><NAME>users</NAME>"),
        "{mine}"
    );
    refused(
        plain.call(wire::method::GROUP_INFO, vec![int(0)]),
        "one.group.info",
        uid,
        "Not authorized to perform USE GROUP [0]",
    );
    let pool = plain
        .call_xml(wire::method::GROUPPOOL_INFO, vec![])
        .unwrap();
    assert!(pool.starts_with("<GROUP_POOL><GROUP><ID>1</ID>"), "{pool}");
    assert_eq!(pool.matches("<GROUP>").count(), 1, "{pool}");
    // Being in it is USE, not MANAGE nor ADMIN.
    refused(
        plain.call("one.group.update", vec![int(1), s("A = 1"), int(1)]),
        "one.group.update",
        uid,
        "Not authorized to perform MANAGE GROUP [1]",
    );
    refused(
        plain.call("one.group.addadmin", vec![int(1), int(uid)]),
        "one.group.addadmin",
        uid,
        &format!(
            "Not authorized to perform ADMIN GROUP [1]; \
             Not authorized to perform ADMIN USER [{uid}]"
        ),
    );

    refused(
        plain.call("one.acl.info", vec![]),
        "one.acl.info",
        uid,
        "Not authorized to perform MANAGE ACL",
    );
    refused(
        plain.call(wire::method::ZONE_RAFTSTATUS, vec![]),
        "one.zone.raftstatus",
        uid,
        "Not authorized to perform ADMIN ZONE [0]",
    );
    // Everyone may USE the zones (`* ZONE/* USE *`).
    let zones = plain.call_xml(wire::method::ZONEPOOL_INFO, vec![]).unwrap();
    assert!(zones.starts_with("<ZONE_POOL><ZONE><ID>0</ID>"), "{zones}");
}
