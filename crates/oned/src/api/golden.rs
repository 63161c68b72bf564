//! Golden bodies: each family's XML for a fixed row, byte for byte as checked in under
//! `tests/golden/xml/`, and its elements in the order of OpenNebula 7.0's XSD
//! (`share/doc/xsd/<family>.xsd`; OneHA may leave out optional elements, never reorder them).
//! `ONEHA_BLESS=1` rewrites the files after a deliberate change.

use std::path::PathBuf;

use sqlstore::objects::acl::AclRow;
use sqlstore::objects::datastore::{DatastoreRow, HeldImage};
use sqlstore::objects::group::GroupRow;
use sqlstore::objects::host::HostRow;
use sqlstore::objects::image::ImageRow;
use sqlstore::objects::template::TemplateRow;
use sqlstore::objects::vm::{History, PhaseTimes, VmRow};
use sqlstore::objects::vnet::VnetRow;
use sqlstore::{Head, Lock, Owned, UserRow, ZoneRow, ZoneServerRow};

use super::xml::{self, Xml};

/// The direct children of each root, in the XSD's sequence.
const VM: &[&str] = &[
    "ID",
    "UID",
    "GID",
    "UNAME",
    "GNAME",
    "NAME",
    "PERMISSIONS",
    "LAST_POLL",
    "STATE",
    "LCM_STATE",
    "PREV_STATE",
    "PREV_LCM_STATE",
    "RESCHED",
    "STIME",
    "ETIME",
    "DEPLOY_ID",
    "LOCK",
    "MONITORING",
    "SCHED_ACTIONS",
    "TEMPLATE",
    "USER_TEMPLATE",
    "HISTORY_RECORDS",
    "SNAPSHOTS",
    "BACKUPS",
];
const VMTEMPLATE: &[&str] = &[
    "ID",
    "UID",
    "GID",
    "UNAME",
    "GNAME",
    "NAME",
    "LOCK",
    "PERMISSIONS",
    "REGTIME",
    "TEMPLATE",
];
const IMAGE: &[&str] = &[
    "ID",
    "UID",
    "GID",
    "UNAME",
    "GNAME",
    "NAME",
    "LOCK",
    "PERMISSIONS",
    "TYPE",
    "DISK_TYPE",
    "PERSISTENT",
    "REGTIME",
    "MODTIME",
    "SOURCE",
    "PATH",
    "FORMAT",
    "FS",
    "SIZE",
    "STATE",
    "PREV_STATE",
    "RUNNING_VMS",
    "CLONING_OPS",
    "CLONING_ID",
    "TARGET_SNAPSHOT",
    "DATASTORE_ID",
    "DATASTORE",
    "VMS",
    "CLONES",
    "APP_CLONES",
    "TEMPLATE",
    "SNAPSHOTS",
    "BACKUP_INCREMENTS",
    "BACKUP_DISK_IDS",
];
const DATASTORE: &[&str] = &[
    "ID",
    "UID",
    "GID",
    "UNAME",
    "GNAME",
    "NAME",
    "PERMISSIONS",
    "DS_MAD",
    "TM_MAD",
    "BASE_PATH",
    "TYPE",
    "DISK_TYPE",
    "STATE",
    "CLUSTERS",
    "TOTAL_MB",
    "FREE_MB",
    "USED_MB",
    "IMAGES",
    "TEMPLATE",
];
const VNET: &[&str] = &[
    "ID",
    "UID",
    "GID",
    "UNAME",
    "GNAME",
    "NAME",
    "LOCK",
    "PERMISSIONS",
    "CLUSTERS",
    "BRIDGE",
    "BRIDGE_TYPE",
    "STATE",
    "PREV_STATE",
    "PARENT_NETWORK_ID",
    "VN_MAD",
    "PHYDEV",
    "VLAN_ID",
    "OUTER_VLAN_ID",
    "VLAN_ID_AUTOMATIC",
    "OUTER_VLAN_ID_AUTOMATIC",
    "USED_LEASES",
    "VROUTERS",
    "UPDATED_VMS",
    "OUTDATED_VMS",
    "UPDATING_VMS",
    "ERROR_VMS",
    "TEMPLATE",
    "AR_POOL",
];
const USER: &[&str] = &[
    "ID",
    "GID",
    "GROUPS",
    "GNAME",
    "NAME",
    "PASSWORD",
    "AUTH_DRIVER",
    "ENABLED",
    "LOGIN_TOKEN",
    "TEMPLATE",
    "DATASTORE_QUOTA",
    "NETWORK_QUOTA",
    "VM_QUOTA",
    "IMAGE_QUOTA",
    "DEFAULT_USER_QUOTAS",
];
/// `Cluster::to_xml` (PLAN only while a placement plan exists).
const DOCUMENT: &[&str] = &[
    "ID",
    "UID",
    "GID",
    "UNAME",
    "GNAME",
    "NAME",
    "TYPE",
    "PERMISSIONS",
    "LOCK",
    "TEMPLATE",
];
const CLUSTER: &[&str] = &["ID", "NAME", "HOSTS", "DATASTORES", "VNETS", "TEMPLATE"];
const GROUP: &[&str] = &[
    "ID",
    "NAME",
    "TEMPLATE",
    "USERS",
    "ADMINS",
    "DATASTORE_QUOTA",
    "NETWORK_QUOTA",
    "VM_QUOTA",
    "IMAGE_QUOTA",
    "DEFAULT_GROUP_QUOTAS",
];
const HOST: &[&str] = &[
    "ID",
    "NAME",
    "STATE",
    "PREV_STATE",
    "IM_MAD",
    "VM_MAD",
    "CLUSTER_ID",
    "CLUSTER",
    "HOST_SHARE",
    "VMS",
    "TEMPLATE",
    "MONITORING",
];
const ZONE: &[&str] = &["ID", "NAME", "STATE", "TEMPLATE", "SERVER_POOL"];
/// `acl_pool.xsd`'s ACL element.
const ACL: &[&str] = &["ID", "USER", "RESOURCE", "RIGHTS", "ZONE", "STRING"];

/// A MANAGE lock taken by user 2.
fn locked() -> Lock {
    Lock {
        level: 2,
        owner: 2,
        time: 1_700_000_100,
        req_id: -1,
    }
}

fn head() -> Head {
    Head {
        owned: Owned {
            oid: 7,
            uid: 2,
            gid: 1,
            perms: 0o640,
        },
        name: "web & <db>".to_string(),
        uname: "alice".to_string(),
        gname: "users".to_string(),
    }
}

const TEMPLATE: &str = "DESCRIPTION = \"a ]]> b\"\nCPU = \"1\"\nMEMORY = \"512\"";

/// The root's name and its direct children's names, in order (CDATA skipped).
fn children(body: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let mut root = String::new();
    let mut depth = 0usize;
    let mut rest = body;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").map_or(after.len(), |e| e + 3);
            rest = &after[end..];
            continue;
        }
        let close = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[1..close];
        rest = &rest[(close + 1).min(rest.len())..];
        if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name = tag.trim_end_matches('/').to_string();
        match depth {
            0 => root = name,
            1 => names.push(name),
            _ => {}
        }
        if !self_closing {
            depth += 1;
        }
    }
    (root, names)
}

/// Whether `seen` keeps `order`'s order (every element known, none out of place).
fn in_order(seen: &[String], order: &[&str]) -> Result<(), String> {
    let mut at = 0;
    for name in seen {
        match order[at..].iter().position(|o| o == name) {
            Some(i) => at += i + 1,
            None => return Err(format!("{name} is unknown or out of order")),
        }
    }
    Ok(())
}

fn check(family: &str, root: &str, order: &[&str], body: &str) {
    let (got_root, seen) = children(body);
    assert_eq!(got_root, root, "{family}: root element");
    if let Err(e) = in_order(&seen, order) {
        panic!("{family}: {e}: {seen:?}");
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/xml")
        .join(format!("{family}.xml"));
    if std::env::var_os("ONEHA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (ONEHA_BLESS=1 writes it)", path.display()));
    assert_eq!(
        body, golden,
        "{family}: the body changed (ONEHA_BLESS=1 if on purpose)"
    );
}

fn body(write: impl FnOnce(&mut String)) -> String {
    xml::build_with(write)
}

#[test]
fn vm() {
    let row = VmRow {
        head: head(),
        lock: locked(),
        state: 3,
        lcm_state: 3,
        prev_state: 3,
        prev_lcm_state: 2,
        stime: 1_700_000_000,
        etime: 0,
        cpu: 1.5,
        memory: 512,
        template: TEMPLATE.to_string(),
        user_template: "LABELS = \"prod\"".to_string(),
        resched: false,
        // Placed at 10, its prolog done and running from 12.
        history: vec![History {
            times: PhaseTimes {
                pstime: 1_700_000_010,
                petime: 1_700_000_012,
                rstime: 1_700_000_012,
                ..PhaseTimes::default()
            },
            tm_mad: "local".into(),
            ..History::new(0, 3, "host-a", "dummy", 1_700_000_010, 0)
        }],
        monitoring: None,
    };
    check("vm", "VM", VM, &body(|o| super::vm::vm_xml(&row, o)));
}

/// `vm_pool.xsd`'s VM: `VirtualMachine::to_xml_short`, what `one.vmpool.info` prints (its LOCK,
/// absent from the XSD, where 7.0.2's code writes it).
const VM_SHORT: &[&str] = &[
    "ID",
    "UID",
    "GID",
    "UNAME",
    "GNAME",
    "NAME",
    "LAST_POLL",
    "STATE",
    "LCM_STATE",
    "RESCHED",
    "STIME",
    "ETIME",
    "DEPLOY_ID",
    "LOCK",
    "TEMPLATE",
    "MONITORING",
    "USER_TEMPLATE",
    "HISTORY_RECORDS",
];

fn vm_row_with_devices() -> VmRow {
    let template = "CPU = 1.5\nMEMORY = 512\nVCPU = 2\nOS = [ UUID = u-1 ]\n\
        DISK = [ DISK_ID = 1, IMAGE = \"deb & co\", IMAGE_ID = 4, SIZE = 10 ]\n\
        DISK = [ DISK_ID = 0, IMAGE = root, IMAGE_ID = 3, SIZE = 20, DATASTORE_ID = 1 ]\n\
        NIC = [ NIC_ID = 0, NETWORK = pub, NETWORK_ID = 0, IP = \"10.0.0.2\", MAC = \"02:00\" ]\n\
        GRAPHICS = [ TYPE = VNC, LISTEN = \"0.0.0.0\" ]\n\
        SCHED_ACTION = [ ID = 0, ACTION = hold, TIME = 1800000000 ]";
    VmRow {
        head: head(),
        lock: locked(),
        state: 3,
        lcm_state: 3,
        prev_state: 3,
        prev_lcm_state: 2,
        stime: 1_700_000_000,
        etime: 0,
        cpu: 1.5,
        memory: 512,
        resched: false,
        template: template.to_string(),
        user_template: "LABELS = \"prod\"\nDESCRIPTION = d\nSCHED_RANK = FREE_CPU".to_string(),
        history: vec![
            // Migrated by user 2 of group 1 from host-a, in cluster 100, to host-b.
            History {
                cid: 100,
                action: 1,
                uid: 2,
                gid: 1,
                tm_mad: "local".into(),
                ..History::new(0, 3, "host-a", "dummy", 1_700_000_010, 1_700_000_020)
            },
            History {
                times: PhaseTimes {
                    rstime: 1_700_000_030,
                    ..PhaseTimes::default()
                },
                tm_mad: "local".into(),
                ..History::new(1, 4, "host-b", "dummy", 1_700_000_030, 0)
            },
        ],
        monitoring: None,
    }
}

#[test]
fn vm_short() {
    let row = vm_row_with_devices();
    let b = body(|o| super::vm_body::short_xml(&row, o));
    check("vm_short", "VM", VM_SHORT, &b);
}

#[test]
fn vm_pool_extended() {
    let row = vm_row_with_devices();
    let b = body(|o| super::vm_body::full_xml(&row, o, super::vm_body::Body::Pool));
    check("vm_pool_extended", "VM", VM, &b);
    // The stored body: the last history record, no scheduled action in TEMPLATE.
    assert_eq!(b.matches("<HISTORY>").count(), 1, "{b}");
    assert!(!b.contains("<SCHED_ACTION>"), "{b}");
    let info = body(|o| super::vm::vm_xml(&row, o));
    assert_eq!(info.matches("<HISTORY>").count(), 2, "{info}");
    assert!(info.contains("<SCHED_ACTION>"), "{info}");
}

#[test]
fn vmtemplate() {
    let row = TemplateRow {
        head: head(),
        lock: locked(),
        regtime: 1_700_000_000,
        template: TEMPLATE.to_string(),
    };
    let b = body(|o| super::vmtemplate::template_xml(&row, o));
    check("vmtemplate", "VMTEMPLATE", VMTEMPLATE, &b);
}

#[test]
fn document() {
    let row = sqlstore::objects::document::DocumentRow {
        head: head(),
        lock: locked(),
        kind: 100,
        template: TEMPLATE.to_string(),
    };
    let b = body(|o| super::document::document_xml(&row, o));
    check("document", "DOCUMENT", DOCUMENT, &b);
}

#[test]
fn image() {
    let row = ImageRow {
        head: head(),
        lock: Lock::default(),
        kind: 0,
        persistent: true,
        regtime: 1_700_000_000,
        path: "/tmp/a.qcow2".to_string(),
        size: 1024,
        state: 1,
        datastore_id: 1,
        datastore: "default".to_string(),
        disk_type: 0,
        template: TEMPLATE.to_string(),
        modtime: 1_700_000_000,
        prev_state: 1,
        source: "/var/lib/one//datastores/1/7".to_string(),
        format: "qcow2".to_string(),
        fs: String::new(),
        cloning_id: -1,
        target_snapshot: -1,
        snapshots: String::new(),
        op: 0,
        increments: String::new(),
        vms: vec![3],
        clones: Vec::new(),
    };
    check(
        "image",
        "IMAGE",
        IMAGE,
        &body(|o| super::storage::image_xml(&row, o)),
    );
}

#[test]
fn datastore() {
    let row = DatastoreRow {
        head: head(),
        kind: 0,
        ds_mad: "fs".to_string(),
        tm_mad: "ssh".to_string(),
        state: 0,
        template: TEMPLATE.to_string(),
        images: vec![HeldImage { oid: 7, size: 1024 }],
        clusters: vec![0],
    };
    let b = body(|o| super::storage::ds_xml(&row, o));
    check("datastore", "DATASTORE", DATASTORE, &b);
}

#[test]
fn vnet() {
    let row = VnetRow {
        head: head(),
        lock: Lock::default(),
        state: 1,
        vn_mad: "bridge".to_string(),
        bridge: "br0".to_string(),
        template: "AR = [ TYPE = \"IP4\", IP = \"10.0.0.1\", SIZE = \"8\" ]\nDNS = \"1.1.1.1\""
            .to_string(),
        clusters: vec![0],
        leases: Vec::new(),
        vrouters: Vec::new(),
        parent: -1,
        vlan_auto: Default::default(),
        outer_vlan_auto: Default::default(),
    };
    check(
        "vnet",
        "VNET",
        VNET,
        &body(|o| super::vnet::vnet_xml(&row, o)),
    );
}

#[test]
fn user() {
    let row = UserRow {
        oid: 2,
        name: "alice".to_string(),
        password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string(),
        auth_driver: "core".to_string(),
        gid: 1,
        gname: "users".to_string(),
        enabled: true,
        template: "EMAIL = \"a@example.org\"".to_string(),
        groups: vec![1, 100],
        tokens: vec![sqlstore::LoginToken {
            token: "0f3c".to_string(),
            expiration: 1_800_000_000,
            egid: -1,
        }],
    };
    check(
        "user",
        "USER",
        USER,
        &body(|o| super::user::user_xml(&row, Some((&Default::default(), &Default::default())), o)),
    );
}

#[test]
fn cluster() {
    let row = sqlstore::objects::cluster::ClusterRow {
        oid: 100,
        name: "edge".to_string(),
        template: "RESERVED_CPU = \"0\"".to_string(),
        hosts: vec![3, 4],
        datastores: vec![0, 100],
        vnets: vec![],
        plan: None,
    };
    check(
        "cluster",
        "CLUSTER",
        CLUSTER,
        &body(|o| super::clusters::cluster_xml(&row, o)),
    );
}

#[test]
fn group() {
    let row = GroupRow {
        oid: 100,
        name: "devs".to_string(),
        template: "DESCRIPTION = \"team\"".to_string(),
        users: vec![2, 3],
        admins: vec![2],
    };
    check(
        "group",
        "GROUP",
        GROUP,
        &body(|o| {
            super::group::group_xml(&row, Some((&Default::default(), &Default::default())), o)
        }),
    );
}

#[test]
fn host() {
    let row = HostRow {
        oid: 3,
        name: "host-a".to_string(),
        state: 2,
        prev_state: 0,
        im_mad: "dummy".to_string(),
        vm_mad: "dummy".to_string(),
        cluster_id: 0,
        cluster: "default".to_string(),
        total_cpu: 800,
        total_mem: 16 << 20,
        cpu_usage: 150,
        mem_usage: 512 << 10,
        running_vms: 1,
        max_cpu: 800,
        max_mem: 16 << 20,
        template: "HYPERVISOR = \"dummy\"".to_string(),
        monitoring: None,
        pci_taken: Vec::new(),
        pci_filter: String::new(),
        pci_short_address: String::new(),
        vms: vec![7],
    };
    check(
        "host",
        "HOST",
        HOST,
        &body(|o| super::host::host_xml(&row, o)),
    );
}

#[test]
fn zone() {
    let row = ZoneRow {
        oid: 0,
        name: "OpenNebula".to_string(),
        state: 0,
        endpoint: "http://localhost:2633/RPC2".to_string(),
        template: String::new(),
        servers: vec![ZoneServerRow {
            id: 0,
            name: "server-0".to_string(),
            endpoint: "http://10.0.0.1:2633/RPC2".to_string(),
        }],
    };
    check(
        "zone",
        "ZONE",
        ZONE,
        &body(|o| super::zone::zone_xml(&row, o)),
    );
}

#[test]
fn acl() {
    let row = AclRow {
        oid: 0,
        user: 0x2_0000_0001,
        resource: 0x121_4294_0000_0000,
        rights: 0x8,
        zone: 0x4_0000_0000,
    };
    let b = body(|o| super::acl::acl_xml(&mut Xml::new(o), &row));
    check("acl", "ACL", ACL, &b);
}

#[test]
fn the_order_check_catches_a_swap() {
    let seen = vec!["ID".to_string(), "NAME".to_string(), "GID".to_string()];
    assert!(in_order(&seen, HOST).is_err());
    assert!(in_order(&["ID".to_string(), "NAME".to_string()], HOST).is_ok());
}

/// `vntemplate.xsd`: the same sequence as a VM template's.
#[test]
fn vntemplate() {
    let row = sqlstore::objects::vntemplate::VnTemplateRow {
        head: head(),
        lock: locked(),
        regtime: 1_700_000_000,
        template: "VN_MAD = \"bridge\"\nDESCRIPTION = \"a ]]> b\"".to_string(),
    };
    let b = body(|o| super::vntemplate::vntemplate_xml(&row, o));
    check("vntemplate", "VNTEMPLATE", VMTEMPLATE, &b);
}

/// `security_group.xsd`: the four VM sets between the permissions and the template.
#[test]
fn secgroup() {
    const SECURITY_GROUP: &[&str] = &[
        "ID",
        "UID",
        "GID",
        "UNAME",
        "GNAME",
        "NAME",
        "PERMISSIONS",
        "UPDATED_VMS",
        "OUTDATED_VMS",
        "UPDATING_VMS",
        "ERROR_VMS",
        "TEMPLATE",
    ];
    let row = sqlstore::objects::secgroup::SecGroupRow {
        head: head(),
        template: "DESCRIPTION = \"d\"\nRULE = [ RULE_TYPE = \"inbound\", PROTOCOL = \"TCP\", RANGE = \"22\" ]".to_string(),
        vms: [vec![3, 4], vec![], vec![5], vec![]],
    };
    let b = body(|o| super::secgroup::secgroup_xml(&row, o));
    check("secgroup", "SECURITY_GROUP", SECURITY_GROUP, &b);
}

/// `vrouter.xsd`: the router's VMS between the lock and the template.
#[test]
fn vrouter() {
    const VROUTER: &[&str] = &[
        "ID",
        "UID",
        "GID",
        "UNAME",
        "GNAME",
        "NAME",
        "PERMISSIONS",
        "LOCK",
        "VMS",
        "TEMPLATE",
    ];
    let row = sqlstore::objects::vrouter::VrouterRow {
        head: head(),
        lock: locked(),
        vms: vec![3, 4],
        template: "NIC = [ NETWORK_ID = \"0\", NIC_ID = \"0\", FLOATING_IP = \"YES\", VROUTER_IP = \"10.0.0.1\" ]\nTEMPLATE_ID = \"2\"".to_string(),
    };
    let b = body(|o| super::vrouter::vrouter_xml(&row, o));
    check("vrouter", "VROUTER", VROUTER, &b);
}
