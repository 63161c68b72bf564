//! Clusters as OpenNebula keeps them: cluster 0 `default` from the start, hosts in exactly one
//! cluster, datastores and networks in any number, replicated to every server.

use cli::client::{CallError, Client};
use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, AUTHORIZATION, DEADLINE, NO_EXISTS};

const ACTION: i32 = 0x0800;

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn call(c: &Client, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
    c.call(method, params)
}

fn id_of(v: Value) -> i32 {
    v.as_i64().unwrap_or_else(|| panic!("an id, got {v:?}")) as i32
}

fn info(c: &Client, method: &str, id: i32, root: &str) -> Element {
    let xml = c.call_xml(method, vec![Value::Int(id)]).unwrap();
    Element::parse(&xml).unwrap().expect(root).unwrap()
}

fn ids(e: &Element, list: &str) -> Vec<i64> {
    e.child(list)
        .map(|l| {
            l.children_named("ID")
                .map(|i| i.text.parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn clusters_hold_hosts_datastores_and_networks_on_every_server() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let c = zone.servers[leader].client();

    let default = info(&c, "one.cluster.info", 0, "CLUSTER");
    assert_eq!(default.text_of("NAME").unwrap(), "default");
    assert_eq!(ids(&default, "DATASTORES"), [0, 1, 2]);

    let edge = id_of(
        call(
            &c,
            "one.cluster.allocate",
            vec![Value::String("edge".into())],
        )
        .unwrap(),
    );
    assert_eq!(edge, 100);
    let (code, msg) = one_error(call(
        &c,
        "one.cluster.allocate",
        vec![Value::String("edge".into())],
    ));
    assert!(
        code == 0x2000 && msg.contains("NAME is already taken"),
        "{code} {msg}"
    );

    // A host allocated into the cluster, then moved out and back.
    let host = id_of(
        call(
            &c,
            wire::method::HOST_ALLOCATE,
            vec![
                Value::String("node-edge".into()),
                Value::String("dummy".into()),
                Value::String("dummy".into()),
                Value::Int(edge),
            ],
        )
        .unwrap(),
    );
    let h = info(&c, wire::method::HOST_INFO, host, "HOST");
    assert_eq!(
        (
            h.int_of("CLUSTER_ID").unwrap(),
            h.text_of("CLUSTER").unwrap()
        ),
        (100, "edge")
    );
    call(
        &c,
        "one.cluster.delhost",
        vec![Value::Int(edge), Value::Int(host)],
    )
    .unwrap();
    assert_eq!(
        info(&c, wire::method::HOST_INFO, host, "HOST")
            .int_of("CLUSTER_ID")
            .unwrap(),
        0
    );
    call(
        &c,
        "one.cluster.addhost",
        vec![Value::Int(edge), Value::Int(host)],
    )
    .unwrap();

    // A datastore in the cluster at allocate, then in cluster 0 as well, then only there.
    let ds = id_of(
        call(
            &c,
            "one.datastore.allocate",
            vec![
                Value::String("NAME = \"edge-images\"\nDS_MAD = \"fs\"\nTM_MAD = \"ssh\"".into()),
                Value::Int(edge),
            ],
        )
        .unwrap(),
    );
    assert_eq!(
        ids(&info(&c, "one.datastore.info", ds, "DATASTORE"), "CLUSTERS"),
        [100]
    );
    call(
        &c,
        "one.cluster.adddatastore",
        vec![Value::Int(0), Value::Int(ds)],
    )
    .unwrap();
    // Adding twice is no error and changes nothing.
    call(
        &c,
        "one.cluster.adddatastore",
        vec![Value::Int(0), Value::Int(ds)],
    )
    .unwrap();
    assert_eq!(
        ids(&info(&c, "one.datastore.info", ds, "DATASTORE"), "CLUSTERS"),
        [0, 100]
    );
    call(
        &c,
        "one.cluster.deldatastore",
        vec![Value::Int(edge), Value::Int(ds)],
    )
    .unwrap();
    assert_eq!(
        ids(&info(&c, "one.datastore.info", ds, "DATASTORE"), "CLUSTERS"),
        [0]
    );

    // A network in the default cluster, added to the new one.
    let vn = id_of(
        call(
            &c,
            "one.vn.allocate",
            vec![Value::String(
                "NAME = \"edge-net\"\nVN_MAD = \"bridge\"\nAR = [ TYPE = \"ETHER\", SIZE = \"4\" ]"
                    .into(),
            )],
        )
        .unwrap(),
    );
    call(
        &c,
        "one.cluster.addvnet",
        vec![Value::Int(edge), Value::Int(vn)],
    )
    .unwrap();
    let (code, msg) = one_error(call(
        &c,
        "one.cluster.addvnet",
        vec![Value::Int(edge), Value::Int(999)],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            NO_EXISTS,
            "[one.cluster.addvnet] Error getting virtual network [999]."
        )
    );

    call(
        &c,
        "one.cluster.update",
        vec![
            Value::Int(edge),
            Value::String("RESERVED_CPU = \"10\"".into()),
            Value::Int(1),
        ],
    )
    .unwrap();
    call(
        &c,
        "one.cluster.rename",
        vec![Value::Int(edge), Value::String("edge-1".into())],
    )
    .unwrap();

    // The same on a follower, once it has applied everything.
    let follower = zone.servers[(leader + 1) % 3].client();
    zone.wait_until(DEADLINE, "a follower shows the renamed cluster", || {
        follower
            .call_xml("one.cluster.info", vec![Value::Int(edge)])
            .is_ok_and(|x| x.contains("<NAME>edge-1</NAME>"))
    });
    let e = info(&follower, "one.cluster.info", edge, "CLUSTER");
    assert_eq!(ids(&e, "HOSTS"), [i64::from(host)]);
    assert_eq!(ids(&e, "DATASTORES"), Vec::<i64>::new());
    assert_eq!(ids(&e, "VNETS"), [i64::from(vn)]);
    assert_eq!(
        e.child("TEMPLATE")
            .unwrap()
            .text_of("RESERVED_CPU")
            .unwrap(),
        "10"
    );
    let h = info(&follower, wire::method::HOST_INFO, host, "HOST");
    assert_eq!(h.text_of("CLUSTER").unwrap(), "edge-1");
    let pool = Element::parse(&follower.call_xml("one.clusterpool.info", vec![]).unwrap()).unwrap();
    let names: Vec<&str> = pool
        .children_named("CLUSTER")
        .map(|c| c.text_of("NAME").unwrap())
        .collect();
    assert_eq!(names, ["edge-1", "default"]);

    // Deleting: never cluster 0, and a cluster only once it is empty, as OpenNebula says.
    let (code, msg) = one_error(call(&c, "one.cluster.delete", vec![Value::Int(0)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.cluster.delete] Cannot delete cluster. System Clusters (ID < 100) cannot be deleted.")
    );
    // A system id no cluster or group holds is missing before it is a system one.
    for (method, what) in [
        ("one.cluster.delete", "cluster"),
        ("one.group.delete", "group"),
    ] {
        assert_eq!(
            one_error(call(&c, method, vec![Value::Int(5)])),
            (0x400, format!("[{method}] Error getting {what} [5]."))
        );
    }
    // New clusters hold what `Cluster`'s constructor adds.
    let body = c.call_xml("one.cluster.info", vec![Value::Int(0)]).unwrap();
    assert!(
        body.contains(
            "<TEMPLATE><RESERVED_CPU><![CDATA[]]></RESERVED_CPU><RESERVED_MEM><![CDATA[]]></RESERVED_MEM></TEMPLATE>"
        ),
        "{body}"
    );
    let (code, msg) = one_error(call(&c, "one.cluster.delete", vec![Value::Int(edge)]));
    assert_eq!(
        (code, msg.as_str()),
        (ACTION, "[one.cluster.delete] Cannot delete cluster. Cluster 100 is not empty, it contains 1 hosts.")
    );
    call(
        &c,
        "one.cluster.delhost",
        vec![Value::Int(edge), Value::Int(host)],
    )
    .unwrap();
    let (_, msg) = one_error(call(&c, "one.cluster.delete", vec![Value::Int(edge)]));
    assert!(msg.ends_with("it contains 1 vnets."), "{msg}");
    call(
        &c,
        "one.cluster.delvnet",
        vec![Value::Int(edge), Value::Int(vn)],
    )
    .unwrap();
    call(&c, "one.cluster.delete", vec![Value::Int(edge)]).unwrap();
    let (code, msg) = one_error(call(&c, "one.cluster.info", vec![Value::Int(edge)]));
    assert_eq!(
        (code, msg.as_str()),
        (NO_EXISTS, "[one.cluster.info] Error getting cluster [100].")
    );

    // Deleting a datastore takes it out of its clusters.
    call(&c, "one.datastore.delete", vec![Value::Int(ds)]).unwrap();
    assert_eq!(
        ids(&info(&c, "one.cluster.info", 0, "CLUSTER"), "DATASTORES"),
        [0, 1, 2]
    );
}

#[test]
fn only_administrators_see_or_change_clusters() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    crate::zone::allocate(&admin, "plain").unwrap();
    let plain = zone.servers[0].client_as("plain", "pw-plain");
    let (code, _) = one_error(call(
        &plain,
        "one.cluster.allocate",
        vec![Value::String("mine".into())],
    ));
    assert_eq!(code, AUTHORIZATION);
    let (code, _) = one_error(call(&plain, "one.cluster.info", vec![Value::Int(0)]));
    assert_eq!(code, AUTHORIZATION);
    assert_eq!(
        plain.call_xml("one.clusterpool.info", vec![]).unwrap(),
        "<CLUSTER_POOL></CLUSTER_POOL>"
    );
    let (code, msg) = one_error(call(
        &admin,
        wire::method::HOST_ALLOCATE,
        vec![
            Value::String("nowhere".into()),
            Value::String("dummy".into()),
            Value::String("dummy".into()),
            Value::Int(42),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (NO_EXISTS, "[one.host.allocate] Error getting cluster [42].")
    );
    let (code, _) = one_error(call(
        &admin,
        "one.vn.allocate",
        vec![
            Value::String("NAME = \"n\"\nVN_MAD = \"bridge\"".into()),
            Value::Int(42),
        ],
    ));
    assert_eq!(code, NO_EXISTS);
}

fn host_in(c: &Client, name: &str, cluster: i32) -> i32 {
    id_of(
        call(
            c,
            wire::method::HOST_ALLOCATE,
            vec![
                Value::String(name.into()),
                Value::String("dummy".into()),
                Value::String("dummy".into()),
                Value::Int(cluster),
            ],
        )
        .unwrap(),
    )
}

/// The host a VM was deployed on, once it has one.
fn placed_on(c: &Client, vid: i32) -> Option<i64> {
    let vm = info(c, "one.vm.info", vid, "VM");
    let history = vm.child("HISTORY_RECORDS")?;
    let last = history.children_named("HISTORY").last()?;
    last.int_of("HID").ok()
}

#[test]
fn the_scheduler_places_a_vm_only_where_its_image_and_network_are() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let edge = id_of(
        call(
            &c,
            "one.cluster.allocate",
            vec![Value::String("edge".into())],
        )
        .unwrap(),
    );
    // The host of cluster 0 comes first and stays the least loaded: without the rule, every VM
    // would go there.
    let plain = host_in(&c, "plain", -1);
    let remote = host_in(&c, "remote", edge);
    for h in [plain, remote] {
        zone.wait_until(DEADLINE, "the hosts are monitored", || {
            info(&c, wire::method::HOST_INFO, h, "HOST")
                .int_of("STATE")
                .unwrap()
                == 2
        });
    }
    let ds = id_of(
        call(
            &c,
            "one.datastore.allocate",
            vec![
                Value::String("NAME = \"edge-ds\"\nDS_MAD = \"fs\"\nTM_MAD = \"ssh\"".into()),
                Value::Int(edge),
            ],
        )
        .unwrap(),
    );
    let image = id_of(
        call(
            &c,
            "one.image.allocate",
            vec![
                Value::String("NAME = \"edge-img\"\nTYPE = \"DATABLOCK\"\nSIZE = \"16\"".into()),
                Value::Int(ds),
            ],
        )
        .unwrap(),
    );
    let net = id_of(
        call(
            &c,
            "one.vn.allocate",
            vec![
                Value::String("NAME = \"edge-net\"\nVN_MAD = \"bridge\"\nAR = [ TYPE = \"ETHER\", SIZE = \"4\" ]".into()),
                Value::Int(edge),
            ],
        )
        .unwrap(),
    );
    let vm = |template: String| {
        id_of(call(&c, "one.vm.allocate", vec![Value::String(template)]).unwrap())
    };
    let with_disk = vm(format!(
        "CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = \"{image}\" ]"
    ));
    let with_nic = vm(format!(
        "CPU = 0.1\nMEMORY = 32\nNIC = [ NETWORK_ID = \"{net}\" ]"
    ));
    let free = vm("CPU = 0.1\nMEMORY = 32".to_string());
    for (vid, host) in [(with_disk, remote), (with_nic, remote), (free, plain)] {
        zone.wait_until(DEADLINE, &format!("VM {vid} is deployed"), || {
            placed_on(&c, vid).is_some()
        });
        assert_eq!(placed_on(&c, vid), Some(i64::from(host)), "VM {vid}");
    }

    // A network in cluster 0 only and an image in cluster 100 only: no host will do.
    let other = id_of(
        call(
            &c,
            "one.vn.allocate",
            vec![Value::String(
                "NAME = \"plain-net\"\nVN_MAD = \"bridge\"\nAR = [ TYPE = \"ETHER\", SIZE = \"4\" ]".into(),
            )],
        )
        .unwrap(),
    );
    let stuck = vm(format!(
        "CPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = \"{image}\" ]\nNIC = [ NETWORK_ID = \"{other}\" ]"
    ));
    let later = vm("CPU = 0.1\nMEMORY = 32".to_string());
    zone.wait_until(DEADLINE, "a later VM is deployed", || {
        placed_on(&c, later).is_some()
    });
    assert_eq!(
        placed_on(&c, stuck),
        None,
        "no cluster holds both its image and its network"
    );
    assert_eq!(
        info(&c, "one.vm.info", stuck, "VM")
            .int_of("STATE")
            .unwrap(),
        1,
        "PENDING"
    );
}

/// `onecluster` in-process as oneadmin: (exit code, stdout, stderr).
fn onecluster(zone: &Zone, args: &[&str]) -> (i32, String, String) {
    zone.servers[0]
        .cli(cli::objects::Kind::Cluster, args)
        .parts()
}

#[test]
fn onecluster_creates_lists_moves_and_deletes() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    assert_eq!(onecluster(&zone, &["create", "edge"]).1, "ID: 100\n");
    let host = host_in(&c, "n1", -1);
    let (code, _, err) = onecluster(&zone, &["addhost", "100", &host.to_string()]);
    assert_eq!(code, 0, "{err}");
    let (_, list, _) = onecluster(&zone, &["list"]);
    assert_eq!(
        list,
        "   ID NAME                      HOSTS VNETS DATASTORES\n  \
         100 edge                          1     0          0\n    \
         0 default                       0     0          3\n"
    );
    let (_, shown, _) = onecluster(&zone, &["show", "100"]);
    assert!(shown.contains("NAME") && shown.contains("edge"), "{shown}");
    onecluster(&zone, &["rename", "100", "edge-2"]);
    let (code, _, err) = onecluster(&zone, &["delete", "100"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Cluster 100 is not empty, it contains 1 hosts."),
        "{err}"
    );
    onecluster(&zone, &["delhost", "100", &host.to_string()]);
    let (code, _, err) = onecluster(&zone, &["delete", "100"]);
    assert_eq!(code, 0, "{err}");
    assert!(!onecluster(&zone, &["list"]).1.contains("edge"));
}

/// `RequestManagerCluster`'s host move takes the host's VMs along (their current record's CID,
/// `set_cid`), and a locked network's permissions refuse ADMIN to anyone, oneadmin too: it
/// joins or leaves no cluster and no VDC.
#[test]
fn a_moved_host_takes_its_vms_and_a_locked_network_stays_where_it_is() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let host = id_of(
        call(
            &c,
            "one.host.allocate",
            vec![s("node"), s("dummy"), s("dummy"), Value::Int(-1)],
        )
        .unwrap(),
    );
    let blue = id_of(call(&c, "one.cluster.allocate", vec![s("blue")]).unwrap());
    let vm = id_of(call(&c, "one.vm.allocate", vec![s("CPU = 0.1\nMEMORY = 8")]).unwrap());
    zone.wait_until(DEADLINE, "the VM runs", || {
        c.call_xml("one.vm.info", vec![Value::Int(vm)])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    call(
        &c,
        "one.cluster.addhost",
        vec![Value::Int(blue), Value::Int(host)],
    )
    .unwrap();
    let body = info(&c, "one.vm.info", vm, "VM");
    let record = body
        .child("HISTORY_RECORDS")
        .unwrap()
        .children_named("HISTORY")
        .last()
        .unwrap();
    assert_eq!(record.int_of("CID").unwrap(), i64::from(blue));

    let net = id_of(
        call(
            &c,
            "one.vn.allocate",
            vec![
                s("NAME = lan\nVN_MAD = dummy\nBRIDGE = br0"),
                Value::Int(-1),
            ],
        )
        .unwrap(),
    );
    call(&c, "one.vn.lock", vec![Value::Int(net), Value::Int(1)]).unwrap();
    for (method, params) in [
        (
            "one.cluster.addvnet",
            vec![Value::Int(blue), Value::Int(net)],
        ),
        ("one.cluster.delvnet", vec![Value::Int(0), Value::Int(net)]),
        (
            "one.vdc.addvnet",
            vec![Value::Int(0), Value::Int(0), Value::Int(net)],
        ),
    ] {
        assert_eq!(
            one_error(call(&c, method, params)),
            (
                AUTHORIZATION,
                format!("[{method}] User [0] : NET is locked. [{net}].")
            )
        );
    }
}
