//! VDCs (issue 13, point 4), as OpenNebula's: VDC 0 `default` with group `users` and every
//! cluster of zone 0, the ACL rules a VDC grants its groups, made and removed with them, and
//! OpenNebula's refusals.

use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, DEADLINE, INTERNAL, NO_EXISTS};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

/// The ACL rules as `oneacl list` shows them: (user, resource, rights, zone) strings.
fn rules(c: &cli::Client) -> String {
    c.call_xml("one.acl.info", vec![]).unwrap()
}

#[test]
fn the_default_vdc_grants_every_group_its_rules_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let body = admin.call_xml("one.vdc.info", vec![int(0)]).unwrap();
    assert!(
        body.starts_with("<VDC><ID>0</ID><NAME>default</NAME><GROUPS><ID>1</ID></GROUPS><CLUSTERS><CLUSTER><ZONE_ID>0</ZONE_ID><CLUSTER_ID>-10</CLUSTER_ID></CLUSTER></CLUSTERS><HOSTS></HOSTS><DATASTORES></DATASTORES><VNETS></VNETS><TEMPLATE><DESCRIPTION><![CDATA[Every new group is added to this VDC."),
        "{body}"
    );
    // OpenNebula's rules 3, 4 and 5: @1 HOST/* MANAGE #0, @1 NET/* USE #0, @1 DATASTORE/* USE #0.
    let acl = rules(&admin);
    for (id, resource, rights) in [
        (3, "2400000000", "2"),
        (4, "4400000000", "1"),
        (5, "100400000000", "1"),
    ] {
        assert!(
            acl.contains(&format!(
                "<ACL><ID>{id}</ID><USER>200000001</USER><RESOURCE>{resource}</RESOURCE><RIGHTS>{rights}</RIGHTS><ZONE>100000000</ZONE>"
            )),
            "rule {id}: {acl}"
        );
    }

    // Those rules are what lets a plain user of group users use the zone's datastores.
    crate::zone::allocate(&admin, "carol").unwrap();
    let carol = zone.servers[leader].client_as("carol", "pw-carol");
    carol.call_xml("one.datastore.info", vec![int(1)]).unwrap();
    // VDCs are oneadmin's: a plain user neither sees nor makes one.
    assert_eq!(
        carol.call_xml("one.vdcpool.info", vec![]).unwrap(),
        "<VDC_POOL></VDC_POOL>"
    );
    let (code, msg) = one_error(carol.call("one.vdc.allocate", vec![s("NAME = mine")]));
    assert_eq!(code, crate::zone::AUTHORIZATION, "{msg}");
    let (code, msg) = one_error(carol.call("one.vdc.addgroup", vec![int(0), int(1)]));
    assert_eq!(code, crate::zone::AUTHORIZATION, "{msg}");

    // A new group joins VDC 0, with its three rules, on every server.
    let gid = admin
        .call("one.group.allocate", vec![s("devs")])
        .unwrap()
        .as_i64()
        .unwrap();
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(
            DEADLINE,
            &format!("server {i} has the group in VDC 0"),
            || {
                c.call_xml("one.vdc.info", vec![int(0)])
                    .unwrap()
                    .contains(&format!("<GROUPS><ID>1</ID><ID>{gid}</ID></GROUPS>"))
            },
        );
        let user = format!("<USER>{:x}</USER>", 0x2_0000_0000u64 | gid as u64);
        assert_eq!(rules(&c).matches(&user).count(), 3, "server {i}");
    }

    // A VDC of its own: the group and a cluster, then the rules go with the cluster.
    let vdc = admin
        .call("one.vdc.allocate", vec![s("NAME = edge\nDESCRIPTION = x")])
        .unwrap()
        .as_i64()
        .unwrap();
    assert_eq!(vdc, 100);
    admin
        .call("one.vdc.addgroup", vec![int(vdc), int(gid)])
        .unwrap();
    admin
        .call("one.vdc.addcluster", vec![int(vdc), int(0), int(0)])
        .unwrap();
    let cluster_host = format!(
        "<USER>{:x}</USER><RESOURCE>2800000000</RESOURCE><RIGHTS>2</RIGHTS>",
        0x2_0000_0000u64 | gid as u64
    );
    assert!(rules(&admin).contains(&cluster_host), "{}", rules(&admin));
    let (code, msg) = one_error(admin.call("one.vdc.addcluster", vec![int(vdc), int(0), int(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vdc.addcluster] CLUSTER 0 from Zone 0 is already assigned to the VDC"
        )
    );
    admin
        .call("one.vdc.delcluster", vec![int(vdc), int(0), int(0)])
        .unwrap();
    assert!(!rules(&admin).contains(&cluster_host));
    let (code, msg) = one_error(admin.call("one.vdc.delvnet", vec![int(vdc), int(0), int(3)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vdc.delvnet] NET 3 from Zone 0 is not assigned to the VDC "
        )
    );
    let (code, msg) = one_error(admin.call("one.vdc.addhost", vec![int(vdc), int(0), int(42)]));
    assert_eq!(
        (code, msg.as_str()),
        (NO_EXISTS, "[one.vdc.addhost] Error getting host [42].")
    );
    let (code, msg) = one_error(admin.call("one.vdc.addgroup", vec![int(vdc), int(gid)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            format!("[one.vdc.addgroup] Group {gid} is already assigned to the VDC {vdc}").as_str()
        )
    );
    let (code, msg) = one_error(admin.call("one.vdc.allocate", vec![s("NAME = edge")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            INTERNAL,
            "[one.vdc.allocate] NAME is already taken by Vdc 100."
        )
    );
    let (code, msg) = one_error(admin.call("one.vdc.delete", vec![int(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION_CODE,
            "[one.vdc.delete] Cannot delete VDC. System VDCs (ID < 100) cannot be deleted."
        )
    );
    let pool = admin.call_xml("one.vdcpool.info", vec![]).unwrap();
    assert_eq!(pool.matches("<VDC>").count(), 2, "{pool}");
    admin.call("one.vdc.delete", vec![int(vdc)]).unwrap();

    // Out of VDC 0, users lose what it granted.
    admin
        .call("one.vdc.delgroup", vec![int(0), int(1)])
        .unwrap();
    let (code, msg) = one_error(carol.call("one.datastore.info", vec![int(1)]));
    assert_eq!(code, crate::zone::AUTHORIZATION, "{msg}");

    // A deleted group leaves VDC 0 and its rules.
    admin.call("one.group.delete", vec![int(gid)]).unwrap();
    assert!(!admin
        .call_xml("one.vdc.info", vec![int(0)])
        .unwrap()
        .contains(&format!("<ID>{gid}</ID>")));
}

/// A VDC's cluster grants its groups the datastores and networks the cluster holds, as
/// OpenNebula's `%cluster` rules do, and no others.
#[test]
fn a_vdc_cluster_grants_what_the_cluster_holds_and_nothing_else() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let gid = admin
        .call("one.group.allocate", vec![s("edge-users")])
        .unwrap()
        .as_i64()
        .unwrap();
    // Out of VDC 0, which grants every datastore of the zone.
    admin
        .call("one.vdc.delgroup", vec![int(0), int(gid)])
        .unwrap();
    let dave = crate::zone::allocate(&admin, "dave").unwrap();
    admin
        .call("one.user.chgrp", vec![int(dave), int(gid)])
        .unwrap();
    // As OpenNebula's chgrp: the old primary group (users) is left.
    let body = admin.call_xml("one.user.info", vec![int(dave)]).unwrap();
    assert!(
        body.contains(&format!("<GROUPS><ID>{gid}</ID></GROUPS>")),
        "{body}"
    );
    let cid = admin
        .call("one.cluster.allocate", vec![s("edge")])
        .unwrap()
        .as_i64()
        .unwrap();
    let ds = admin
        .call(
            "one.datastore.allocate",
            vec![s("NAME = edge-ds\nTM_MAD = ssh\nDS_MAD = fs"), int(cid)],
        )
        .unwrap()
        .as_i64()
        .unwrap();
    let vdc = admin
        .call("one.vdc.allocate", vec![s("NAME = edge")])
        .unwrap()
        .as_i64()
        .unwrap();
    admin
        .call("one.vdc.addgroup", vec![int(vdc), int(gid)])
        .unwrap();
    let c = zone.servers[0].client_as("dave", "pw-dave");
    let denied = |id: i64| {
        let (code, msg) = one_error(c.call("one.datastore.info", vec![int(id)]));
        assert_eq!(code, crate::zone::AUTHORIZATION, "datastore {id}: {msg}");
    };
    denied(ds);
    admin
        .call("one.vdc.addcluster", vec![int(vdc), int(0), int(cid)])
        .unwrap();
    c.call_xml("one.datastore.info", vec![int(ds)]).unwrap();
    let pool = c.call_xml("one.datastorepool.info", vec![]).unwrap();
    assert!(pool.contains(&format!("<ID>{ds}</ID>")), "{pool}");
    denied(1);
    // Out of the cluster, out of reach.
    admin
        .call("one.cluster.deldatastore", vec![int(cid), int(ds)])
        .unwrap();
    denied(ds);

    // A deleted cluster leaves every VDC, with the rules on it.
    let cluster_rule = format!("<RESOURCE>{:x}</RESOURCE>", 0x28_0000_0000u64 | cid as u64);
    assert!(rules(&admin).contains(&cluster_rule));
    admin.call("one.cluster.delete", vec![int(cid)]).unwrap();
    assert!(!rules(&admin).contains(&cluster_rule), "{}", rules(&admin));
    let body = admin.call_xml("one.vdc.info", vec![int(vdc)]).unwrap();
    assert!(body.contains("<CLUSTERS></CLUSTERS>"), "{body}");
}

/// `onevdc`, as OpenNebula's: create by name, groups and resources (`ALL` for every one of a
/// kind), list with its counts, show, delete.
#[test]
fn onevdc_creates_fills_lists_and_deletes() {
    let zone = Zone::solo();
    let onevdc = |args: &[&str]| zone.servers[0].cli(cli::objects::Kind::Vdc, args).ok();
    assert_eq!(onevdc(&["create", "edge"]), "ID: 100\n");
    onevdc(&["addgroup", "100", "1"]);
    onevdc(&["adddatastore", "100", "0", "ALL"]);
    onevdc(&["addhost", "100", "0", "ALL"]);
    let list = onevdc(&["list"]);
    assert!(
        list.contains(
            "  100 edge                                1        0     1     0          1"
        ),
        "{list}"
    );
    assert!(onevdc(&["show", "100"]).starts_with("VDC 100 INFORMATION"));
    onevdc(&["delete", "100"]);
    assert!(!onevdc(&["list"]).contains("edge"));
}
