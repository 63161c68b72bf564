//! How OpenNebula 7.0.2 refuses a new object, family by family: `Request::failure_message`
//! gives each `pool_allocate` refusal as INTERNAL in the pool's own words, and ALLOCATE
//! ("Error allocating a new <object>. ...") only for `image.allocate`, the clones and
//! `template.instantiate`; the checks of `Datastore::insert`, `VirtualNetwork::insert`,
//! `ImagePool::allocate` and `stat_image`; and `RequestManagerRename`'s collisions.

use cli::Client;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, ALLOCATE, AUTHORIZATION, INTERNAL};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn id(c: &Client, method: &str, params: Vec<Value>) -> i64 {
    c.call(method, params)
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .as_i64()
        .expect("an id")
}

/// The refusal of `method(params)`: its code and its whole message.
fn refusal(c: &Client, method: &str, params: Vec<Value>) -> (i32, String) {
    one_error(c.call(method, params))
}

fn says(code: i32, method: &str, why: &str) -> (i32, String) {
    (code, format!("[{method}] {why}"))
}

#[test]
fn pool_refusals_are_internal_in_the_pools_words() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();

    let g = id(&c, "one.group.allocate", vec![s("team")]);
    assert_eq!(
        refusal(&c, "one.group.allocate", vec![s("team")]),
        says(
            INTERNAL,
            "one.group.allocate",
            &format!("NAME is already taken by GROUP {g}.")
        )
    );
    let empty = Value::Array(vec![]);
    let u = id(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), empty.clone()],
    );
    assert_eq!(
        refusal(
            &c,
            "one.user.allocate",
            vec![s("ann"), s("pw"), s(""), empty.clone()]
        ),
        says(
            INTERNAL,
            "one.user.allocate",
            &format!("NAME is already taken by USER {u}.")
        )
    );
    assert_eq!(
        refusal(&c, "one.user.allocate", vec![s("bob"), s(""), s(""), empty]),
        says(
            INTERNAL,
            "one.user.allocate",
            "Invalid password, it cannot be empty."
        )
    );
    let cl = id(&c, "one.cluster.allocate", vec![s("edge")]);
    assert_eq!(
        refusal(&c, "one.cluster.allocate", vec![s("edge")]),
        says(
            INTERNAL,
            "one.cluster.allocate",
            &format!("NAME is already taken by CLUSTER {cl}.")
        )
    );

    let host = |name: &str, im: &str, vm: &str| vec![s(name), s(im), s(vm), int(-1)];
    let h = id(&c, "one.host.allocate", host("node1", "dummy", "dummy"));
    assert_eq!(
        refusal(&c, "one.host.allocate", host("node1", "dummy", "dummy")),
        says(
            INTERNAL,
            "one.host.allocate",
            &format!("NAME is already taken by HOST {h}.")
        )
    );
    assert_eq!(
        refusal(&c, "one.host.allocate", host("node2", "", "dummy")),
        says(
            INTERNAL,
            "one.host.allocate",
            "IM_MAD_NAME cannot be empty."
        )
    );
    assert_eq!(
        refusal(&c, "one.host.allocate", host("node2", "dummy", "")),
        says(
            INTERNAL,
            "one.host.allocate",
            "VMM_MAD_NAME cannot be empty."
        )
    );

    eprintln!("--- datastores: Datastore::insert");
    let ds = |t: &str| vec![s(t), int(-1)];
    let m = "one.datastore.allocate";
    for (template, why) in [
        (
            "TM_MAD = ssh\nDS_MAD = fs",
            "Invalid NAME, it cannot be empty".to_string(),
        ),
        ("NAME = a\nTM_MAD = ssh", "No DS_MAD in template.".into()),
        (
            "NAME = a\nTYPE = SYSTEM_DS\nDS_MAD = fs\nTM_MAD = ssh",
            "SYSTEM datastores cannot have DS_MAD defined.".into(),
        ),
        (
            "NAME = a\nDS_MAD = nfs\nTM_MAD = ssh",
            "DS_MAD named \"nfs\" is not defined in oned.conf".into(),
        ),
        (
            "NAME = a\nTYPE = BACKUP_DS\nDS_MAD = rsync\nRSYNC_HOST = h",
            "Datastore template is missing the \"RSYNC_USER\" attribute or it's empty.".into(),
        ),
        ("NAME = a\nDS_MAD = fs", "No TM_MAD in template.".into()),
        (
            "NAME = a\nDS_MAD = fs\nTM_MAD = nfs",
            "TM_MAD named \"nfs\" is not defined in oned.conf".into(),
        ),
        (
            "NAME = default\nDS_MAD = fs\nTM_MAD = ssh",
            "NAME is already taken by DATASTORE 1.".into(),
        ),
    ] {
        assert_eq!(
            refusal(&c, m, ds(template)),
            says(INTERNAL, m, &why),
            "{template}"
        );
    }
    // A backup datastore needs no TM_MAD.
    id(
        &c,
        m,
        ds("NAME = bk\nTYPE = BACKUP_DS\nDS_MAD = rsync\nRSYNC_HOST = h\nRSYNC_USER = u"),
    );

    eprintln!("--- networks: VirtualNetwork::insert");
    let m = "one.vn.allocate";
    let vn = |t: &str| vec![s(t), int(-1)];
    for (template, why) in [
        (
            "VN_MAD = bridge",
            "No NAME in template for Virtual Network.",
        ),
        ("NAME = lan", "No VN_MAD in template for Virtual Network."),
        (
            "NAME = lan\nVN_MAD = sdn",
            "VN_MAD named \"sdn\" is not defined in oned.conf",
        ),
    ] {
        assert_eq!(
            refusal(&c, m, vn(template)),
            says(INTERNAL, m, why),
            "{template}"
        );
    }
    let net = id(&c, m, vn("NAME = lan\nVN_MAD = bridge"));
    assert_eq!(
        refusal(&c, m, vn("NAME = lan\nVN_MAD = bridge")),
        says(INTERNAL, m, &format!("NAME is already taken by NET {net}."))
    );
    let ann = zone.servers[0].client_as("ann", "pw");

    eprintln!("--- VM templates: unique per owner, clones answer ALLOCATE");
    let m = "one.template.allocate";
    let t = id(&c, m, vec![s("NAME = web\nCPU = 1\nMEMORY = 64")]);
    assert_eq!(
        refusal(&c, m, vec![s("NAME = web\nCPU = 1")]),
        says(
            INTERNAL,
            m,
            &format!("NAME is already taken by TEMPLATE {t}.")
        )
    );
    assert_eq!(
        refusal(&c, m, vec![s("CPU = 1")]),
        says(INTERNAL, m, "Invalid NAME, it cannot be empty")
    );
    // Names are unique per owner.
    id(&ann, m, vec![s("NAME = web\nCPU = 1\nMEMORY = 64")]);
    assert_eq!(
        refusal(&c, "one.template.clone", vec![int(t), s("web")]),
        says(
            ALLOCATE,
            "one.template.clone",
            &format!("Error allocating a new virtual machine template. NAME is already taken by TEMPLATE {t}.")
        )
    );

    eprintln!("--- backup jobs");
    let m = "one.backupjob.allocate";
    let b = id(&c, m, vec![s("NAME = nightly")]);
    assert_eq!(
        refusal(&c, m, vec![s("NAME = nightly")]),
        says(
            INTERNAL,
            m,
            &format!("NAME is already taken by BACKUP JOB {b}.")
        )
    );
    assert_eq!(
        refusal(&ann, m, vec![s("NAME = urgent\nPRIORITY = 90")]),
        says(
            AUTHORIZATION,
            m,
            &format!("User [{u}] not authorized to perform action on backup job.")
        )
    );
}

#[test]
fn images_are_refused_as_image_allocate_refuses_them() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let m = "one.image.allocate";
    let img = |t: &str, ds: i64| vec![s(t), int(ds)];
    // The bootstrap's datastores: 0 system, 1 images, 2 files.
    let files = 2;
    let allocating = |why: &str| says(ALLOCATE, m, &format!("Error allocating a new image. {why}"));
    assert_eq!(
        refusal(&c, m, img("NAME = x\nPATH = /x", 0)),
        allocating("New images can only be allocated in a files or image datastore.")
    );
    assert_eq!(
        refusal(&c, m, img("NAME = k\nTYPE = KERNEL\nPATH = /vmlinuz", 1)),
        allocating(
            "IMAGES of type KERNEL, RAMDISK and CONTEXT cannot be registered in an IMAGE_DS datastore"
        )
    );
    assert_eq!(
        refusal(&c, m, img("NAME = os\nPATH = /os.qcow2", files)),
        allocating(
            "Only IMAGES of type KERNEL, RAMDISK and CONTEXT can be registered in a FILE_DS datastore"
        )
    );
    assert_eq!(
        refusal(&c, m, img("NAME = cd\nTYPE = CDROM", 1)),
        says(
            INTERNAL,
            m,
            "Cannot parse image SIZE: Either PATH or SOURCE are required for CDROM"
        )
    );
    assert_eq!(
        refusal(&c, m, img("NAME = blank\nTYPE = DATABLOCK", 1)),
        says(
            INTERNAL,
            m,
            "Cannot parse image SIZE: Wrong number or missing SIZE attribute."
        )
    );
    assert_eq!(
        refusal(&c, m, img("PATH = /x", 1)),
        allocating("Invalid NAME, it cannot be empty")
    );
    // `Image::set_type` names the type it still holds, OS's empty name.
    assert_eq!(
        refusal(&c, m, img("NAME = odd\nTYPE = foo\nPATH = /x", 1)),
        allocating("Unknown type ")
    );
    let disk = id(&c, m, img("NAME = disk\nTYPE = DATABLOCK\nSIZE = 10", 1));
    assert_eq!(
        refusal(&c, m, img("NAME = disk\nTYPE = DATABLOCK\nSIZE = 10", 1)),
        allocating(&format!("NAME is already taken by IMAGE {disk}."))
    );
    id(
        &c,
        m,
        img("NAME = kernel\nTYPE = KERNEL\nPATH = /vmlinuz", files),
    );

    let empty = Value::Array(vec![]);
    let u = id(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), empty],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    assert_eq!(
        refusal(&ann, m, img("NAME = raw\nSOURCE = /var/lib/x\nSIZE = 1", 1)),
        says(
            AUTHORIZATION,
            m,
            &format!("User [{u}] : Template includes a restricted attribute SOURCE.")
        )
    );
    // Another owner's name is free.
    id(&ann, m, img("NAME = disk\nTYPE = DATABLOCK\nSIZE = 10", 1));
}

#[test]
fn a_rename_to_a_name_held_names_its_holder() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let a = id(&c, "one.template.allocate", vec![s("NAME = a\nCPU = 1")]);
    let b = id(&c, "one.template.allocate", vec![s("NAME = b\nCPU = 1")]);
    assert_eq!(
        refusal(&c, "one.template.rename", vec![int(b), s("a")]),
        says(
            ACTION_CODE,
            "one.template.rename",
            &format!(
                "virtual machine template cannot be renamed to a because it collides with \
                 virtual machine template {a}"
            )
        )
    );
    let i = id(
        &c,
        "one.image.allocate",
        vec![s("NAME = a\nTYPE = DATABLOCK\nSIZE = 1"), int(1)],
    );
    let j = id(
        &c,
        "one.image.allocate",
        vec![s("NAME = b\nTYPE = DATABLOCK\nSIZE = 1"), int(1)],
    );
    assert_eq!(
        refusal(&c, "one.image.rename", vec![int(j), s("a")]),
        says(
            ACTION_CODE,
            "one.image.rename",
            &format!("image cannot be renamed to a because it collides with image {i}")
        )
    );
    let h1 = id(
        &c,
        "one.host.allocate",
        vec![s("n1"), s("dummy"), s("dummy"), int(-1)],
    );
    let h2 = id(
        &c,
        "one.host.allocate",
        vec![s("n2"), s("dummy"), s("dummy"), int(-1)],
    );
    assert_eq!(
        refusal(&c, "one.host.rename", vec![int(h2), s("n1")]),
        says(
            ACTION_CODE,
            "one.host.rename",
            &format!("host cannot be renamed to n1 because it collides with host {h1}")
        )
    );
    let cl = id(&c, "one.cluster.allocate", vec![s("more")]);
    assert_eq!(
        refusal(&c, "one.cluster.rename", vec![int(cl), s("default")]),
        says(
            ACTION_CODE,
            "one.cluster.rename",
            "cluster cannot be renamed to default because it collides with cluster 0"
        )
    );
    // Its own name again is no collision.
    assert_eq!(id(&c, "one.cluster.rename", vec![int(0), s("default")]), 0);
    // VMs' names may repeat.
    c.call("one.template.rename", vec![int(b), s("c")]).unwrap();
}

/// `VM_RESTRICTED_ATTR` for users outside group oneadmin: a new VM's or template's restricted
/// attribute (a vector's key named alone), an instantiate's extra template changing one.
#[test]
fn a_users_restricted_attributes_are_refused() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let empty = Value::Array(vec![]);
    let u = id(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), empty],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let restricted = |what: &str, name: &str| {
        (
            AUTHORIZATION,
            format!("User [{u}] : {what} includes a restricted attribute {name}."),
        )
    };
    assert_eq!(
        refusal(
            &ann,
            "one.vm.allocate",
            vec![s(
                "CPU = 1\nMEMORY = 64\nNIC = [ NETWORK_ID = 0, MAC = \"02:00:00:00:00:01\" ]"
            )]
        ),
        {
            let (code, why) = restricted("VM Template", "MAC");
            (code, format!("[one.vm.allocate] {why}"))
        }
    );
    assert_eq!(
        refusal(
            &ann,
            "one.template.allocate",
            vec![s("NAME = t\nCPU = 1\nMEMORY = 64\nCPU_COST = 2")]
        ),
        {
            let (code, why) = restricted("VM Template", "CPU_COST");
            (code, format!("[one.template.allocate] {why}"))
        }
    );
    // oneadmin may.
    id(
        &c,
        "one.template.allocate",
        vec![s("NAME = t\nCPU = 1\nMEMORY = 64\nCPU_COST = 2")],
    );
    let t = id(
        &ann,
        "one.template.allocate",
        vec![s("NAME = t\nCPU = 1\nMEMORY = 64")],
    );
    let instantiate = |extra: &str| {
        refusal(
            &ann,
            "one.template.instantiate",
            vec![
                int(t),
                s(""),
                Value::Bool(true),
                s(extra),
                Value::Bool(false),
            ],
        )
    };
    assert_eq!(instantiate("CPU_COST = 3"), {
        let (code, why) = restricted("User Template", "CPU_COST");
        (code, format!("[one.template.instantiate] {why}"))
    });
    id(
        &ann,
        "one.template.instantiate",
        vec![
            int(t),
            s(""),
            Value::Bool(true),
            s("MEMORY = 32"),
            Value::Bool(false),
        ],
    );
}

/// `VMTemplate::insert` and `post_update_template`: scheduled actions parse as a VM's, a RAW
/// to validate names a VM driver.
#[test]
fn vm_templates_check_their_scheduled_actions_and_raw_sections() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let m = "one.template.allocate";
    assert_eq!(
        refusal(
            &c,
            m,
            vec![s("NAME = t\nSCHED_ACTION = [ TIME = \"+60\" ]")]
        ),
        says(INTERNAL, m, "No ACTION in template for Scheduled Action.")
    );
    assert_eq!(
        refusal(
            &c,
            m,
            vec![s("NAME = t\nRAW = [ TYPE = xen, DATA = \"<x/>\" ]")]
        ),
        says(INTERNAL, m, "Invalid RAW section: unsupported TYPE")
    );
    let t = id(
        &c,
        m,
        vec![s(
            "NAME = t\nRAW = [ TYPE = XEN, VALIDATE = no, DATA = \"<x/>\" ]",
        )],
    );
    let u = "one.template.update";
    assert_eq!(
        refusal(&c, u, vec![int(t), s("RAW = [ TYPE = vbox ]"), int(0)]),
        says(
            INTERNAL,
            u,
            "Cannot update template. Invalid RAW section: unsupported TYPE"
        )
    );
    assert_eq!(
        refusal(
            &c,
            u,
            vec![
                int(t),
                s("SCHED_ACTION = [ ACTION = fly, TIME = 5 ]"),
                int(1)
            ]
        ),
        says(INTERNAL, u, "Cannot update template. fly is not supported.")
    );
    id(
        &c,
        u,
        vec![int(t), s("RAW = [ TYPE = kvm, DATA = \"<x/>\" ]"), int(0)],
    );
}

/// `VirtualNetwork::parse_phydev_vlans`: what each driver needs, refused INTERNAL in its words;
/// PHYDEV and VLAN_ID shown in the network's body (`VirtualNetwork::to_xml`).
#[test]
fn networks_need_what_their_driver_needs() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let vn = |text: &str| vec![s(text), int(-1)];
    for (text, why) in [
        (
            "NAME = a\nVN_MAD = dummy",
            "BRIDGE is mandatory for driver dummy",
        ),
        (
            "NAME = b\nVN_MAD = 802.1Q\nVLAN_ID = 7",
            "PHYDEV is mandatory for driver 802.1Q",
        ),
        (
            "NAME = c\nVN_MAD = vxlan\nPHYDEV = eth0",
            "VLAN_ID (or AUTOMATIC_VLAN_ID) is mandatory for driver vxlan",
        ),
    ] {
        assert_eq!(
            refusal(&c, "one.vn.allocate", vn(text)),
            says(INTERNAL, "one.vn.allocate", why)
        );
    }
    let ok = id(
        &c,
        "one.vn.allocate",
        vn("NAME = d\nVN_MAD = 802.1Q\nPHYDEV = eth0\nVLAN_ID = 7"),
    );
    let body = c.call_xml("one.vn.info", vec![int(ok)]).unwrap();
    assert!(
        body.contains(
            "<VN_MAD>802.1Q</VN_MAD><PHYDEV>eth0</PHYDEV><VLAN_ID>7</VLAN_ID><OUTER_VLAN_ID></OUTER_VLAN_ID>"
        ),
        "{body}"
    );
    assert!(body.contains("<BRIDGE>onebr.7</BRIDGE>"), "{body}");
}

/// `OpenNebulaTemplate`'s built-in drivers the shipped oned.conf does not name: DS_MAD ssh,
/// shared and vmfs exist; saml users' groups are the driver's.
#[test]
fn built_in_drivers_exist_besides_the_shipped_ones() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    id(
        &c,
        "one.datastore.allocate",
        vec![s("NAME = remote\nDS_MAD = ssh\nTM_MAD = ssh"), int(-1)],
    );
    // Driver names in any case (`Nebula::get_conf_attribute`'s `icasecmp`).
    id(
        &c,
        "one.datastore.allocate",
        vec![s("NAME = upper\nDS_MAD = FS\nTM_MAD = SSH"), int(-1)],
    );
    id(
        &c,
        "one.vn.allocate",
        vec![s("NAME = n\nVN_MAD = Bridge"), int(-1)],
    );
    let saml = id(
        &c,
        "one.user.allocate",
        vec![s("sam"), s("pw"), s("saml"), Value::Array(vec![])],
    );
    assert_eq!(
        refusal(&c, "one.user.chgrp", vec![int(saml), int(0)]),
        says(
            ACTION_CODE,
            "one.user.chgrp",
            "Groups cannot be manually managed for auth driver saml"
        )
    );
}

/// Runs `calls` on the zone's first server all at once, each on its own connection; their
/// outcomes in order.
fn race(zone: &Zone, calls: Vec<(&'static str, Vec<Value>)>) -> Vec<Result<Value, (i32, String)>> {
    std::thread::scope(|scope| {
        let running: Vec<_> = calls
            .into_iter()
            .map(|(m, params)| {
                let c = zone.servers[0].client();
                scope.spawn(move || c.call(m, params).map_err(|e| one_error(Err::<(), _>(e))))
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("a caller"))
            .collect()
    })
}

/// How many templates of the pool are called `name`.
fn templates_named(c: &Client, name: &str) -> usize {
    let pool = c
        .call_xml("one.templatepool.info", vec![int(-2), int(-1), int(-1)])
        .unwrap();
    pool.matches(&format!("<NAME>{name}</NAME>")).count()
}

/// Allocations of one template name racing each other: one wins, every other is refused
/// naming the winner (the name is checked where the insert is applied, in the log's order,
/// not read beforehand by each call).
#[test]
fn racing_allocations_of_one_template_name_make_one_template() {
    let zone = Zone::solo();
    let m = "one.template.allocate";
    let outcomes = race(&zone, vec![(m, vec![s("NAME = twin\nCPU = 1")]); 16]);
    let won: Vec<i64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|v| v.as_i64().expect("an id")))
        .collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    for o in outcomes.iter().filter_map(|o| o.clone().err()) {
        assert_eq!(
            o,
            says(
                INTERNAL,
                m,
                &format!("NAME is already taken by TEMPLATE {}.", won[0])
            )
        );
    }
    let c = zone.servers[0].client();
    assert_eq!(templates_named(&c, "twin"), 1);
}

/// Renames to one name and chowns to one owner racing each other: the owner still holds one
/// template of each name (the name is checked again where the change is applied).
#[test]
fn racing_renames_and_chowns_keep_template_names_unique_per_owner() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let template = |name: &str| {
        id(
            &c,
            "one.template.allocate",
            vec![s(&format!("NAME = {name}\nCPU = 1"))],
        )
    };
    let won = |calls| race(&zone, calls).iter().filter(|o| o.is_ok()).count();

    let renames: Vec<_> = (0..12)
        .map(|n| {
            let t = template(&format!("t{n}"));
            ("one.template.rename", vec![int(t), s("same")])
        })
        .collect();
    assert_eq!(won(renames), 1);
    assert_eq!(templates_named(&c, "same"), 1);

    // Twelve users' templates of one name, all given to oneadmin at once.
    let chowns: Vec<_> = (0..12)
        .map(|n| {
            let user = format!("u{n}");
            id(
                &c,
                "one.user.allocate",
                vec![s(&user), s("pw"), s(""), Value::Array(vec![])],
            );
            let u = zone.servers[0].client_as(&user, "pw");
            let t = id(
                &u,
                "one.template.allocate",
                vec![s("NAME = shared\nCPU = 1")],
            );
            ("one.template.chown", vec![int(t), int(0), int(-1)])
        })
        .collect();
    assert_eq!(won(chowns), 1);
    let pool = c
        .call_xml("one.templatepool.info", vec![int(-2), int(-1), int(-1)])
        .unwrap();
    let owned_by_admin = pool
        .split("<VMTEMPLATE>")
        .filter(|t| t.contains("<UID>0</UID>") && t.contains("<NAME>shared</NAME>"))
        .count();
    assert_eq!(owned_by_admin, 1, "{pool}");
}
