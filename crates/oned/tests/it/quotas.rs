//! Quotas (issue 13, point 2), as OpenNebula's: limits per user and group and their defaults,
//! enforced on VM and image creation with OpenNebula's messages, usage shown on every server;
//! and, beyond OpenNebula, usage read from the objects in the transaction that changes them, so
//! concurrent requests through every server never pass a limit together.

use std::sync::atomic::{AtomicUsize, Ordering};

use cli::Client;
use xmlrpc::Value;

use crate::zone::{allocate, one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn vm(c: &Client, name: &str) -> Result<i64, cli::CallError> {
    c.call(
        "one.vm.allocate",
        vec![
            s(&format!("NAME = {name}\nCPU = 0.5\nMEMORY = 64")),
            Value::Bool(true),
        ],
    )
    .map(|v| v.as_i64().unwrap())
}

fn quota(c: &Client, method: &str, id: i64, text: &str) {
    c.call(method, vec![Value::Int(id as i32), s(text)])
        .unwrap();
}

#[test]
fn vm_quotas_hold_on_every_server_and_free_what_a_terminated_vm_used() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let alice = allocate(&admin, "alice").unwrap();
    let follower = (leader + 1) % 3;
    // Alice writes through a follower (once it knows her): the check is the leader's, the
    // message hers.
    zone.wait_caught_up();
    let c = zone.servers[follower].client_as("alice", "pw-alice");

    quota(
        &admin,
        "one.user.quota",
        alice,
        "VM = [ VMS = 2, CPU = 4, MEMORY = 1024 ]",
    );
    let first = vm(&c, "a1").unwrap();
    vm(&c, "a2").unwrap();
    let (code, msg) = one_error(vm(&c, "a3"));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.vm.allocate] User [{alice}] : user [{alice}] limit of 2 reached for VMS quota in VM."
            )
            .as_str()
        )
    );

    // Every server shows what she uses, from the VMs it holds.
    for i in 0..3 {
        let c = zone.servers[i].client();
        zone.wait_until(DEADLINE, &format!("server {i} shows alice's use"), || {
            let body = c
                .call_xml("one.user.info", vec![Value::Int(alice as i32)])
                .unwrap();
            body.contains(
                "<VM_QUOTA><VM><CPU><![CDATA[4]]></CPU><CPU_USED><![CDATA[1]]></CPU_USED>\
                 <MEMORY><![CDATA[1024]]></MEMORY><MEMORY_USED><![CDATA[128]]></MEMORY_USED>",
            ) && body.contains(
                "<VMS><![CDATA[2]]></VMS><VMS_USED><![CDATA[2]]></VMS_USED></VM></VM_QUOTA>",
            )
        });
    }
    let pool = admin.call_xml("one.userpool.info", vec![]).unwrap();
    assert!(
        pool.contains(&format!(
            "<QUOTAS><ID>{alice}</ID><DATASTORE_QUOTA></DATASTORE_QUOTA>"
        )),
        "{pool}"
    );
    assert!(
        pool.ends_with("</DEFAULT_USER_QUOTAS></USER_POOL>"),
        "{pool}"
    );

    // A terminated VM uses nothing: there is room again.
    c.call(
        "one.vm.action",
        vec![s("terminate"), Value::Int(first as i32)],
    )
    .unwrap();
    vm(&c, "a3").unwrap();

    // A limit of -1 is the default's: with none, unlimited; with one, that one.
    quota(&admin, "one.user.quota", alice, "VM = [ VMS = -1 ]");
    vm(&c, "a4").unwrap();
    let defaults = admin
        .call_xml("one.userquota.update", vec![s("VM = [ VMS = 3 ]")])
        .unwrap();
    assert!(
        defaults.starts_with("<DEFAULT_USER_QUOTAS><DATASTORE_QUOTA></DATASTORE_QUOTA><NETWORK_QUOTA></NETWORK_QUOTA><VM_QUOTA><VM><CPU><![CDATA[-2]]></CPU><CPU_USED><![CDATA[0]]></CPU_USED>"),
        "{defaults}"
    );
    let (code, msg) = one_error(vm(&c, "a5"));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.ends_with("limit of 3 reached for VMS quota in VM."),
        "{msg}"
    );
    assert_eq!(
        admin.call_xml("one.userquota.info", vec![]).unwrap(),
        defaults
    );
    // Nor may a VM be given to her past her quota.
    let given = vm(&admin, "given").unwrap();
    let (code, msg) = one_error(admin.call(
        "one.vm.chown",
        vec![
            Value::Int(given as i32),
            Value::Int(alice as i32),
            Value::Int(-1),
        ],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(
        msg.ends_with(&format!(
            "user [{alice}] limit of 3 reached for VMS quota in VM."
        )),
        "{msg}"
    );

    // A user may not raise her own limits.
    let (code, msg) = one_error(c.call(
        "one.user.quota",
        vec![Value::Int(alice as i32), s("VM = [ VMS = 100 ]")],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    // Only oneadmin's group sets defaults; nobody sets oneadmin's quotas.
    let (code, msg) = one_error(c.call("one.userquota.update", vec![s("VM = [ VMS = 9 ]")]));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    let (code, msg) =
        one_error(admin.call("one.user.quota", vec![Value::Int(0), s("VM = [ VMS = 1 ]")]));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION_CODE,
            "[one.user.quota] Cannot set quotas for oneadmin user"
        )
    );
    let (code, msg) = one_error(admin.call(
        "one.user.quota",
        vec![
            Value::Int(alice as i32),
            s("DATASTORE = [ ID = 1, SIZE = -5 ]"),
        ],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION_CODE,
            "[one.user.quota] Negative limits or bad format in quota DATASTORE = [ ID=1,SIZE=-5 ]"
        )
    );
}

#[test]
fn group_and_datastore_quotas_refuse_images_past_their_limit() {
    let zone = Zone::solo();
    let admin = zone.servers[0].client();
    let alice = allocate(&admin, "alice").unwrap();
    let c = zone.servers[0].client_as("alice", "pw-alice");
    // Others may use datastore 1; alice's group (users, 1) may keep 2 GiB in it.
    let mut chmod = vec![Value::Int(1)];
    chmod.extend([-1, -1, -1, -1, -1, -1, 1, -1, -1].map(Value::Int));
    admin.call("one.datastore.chmod", chmod).unwrap();
    quota(
        &admin,
        "one.group.quota",
        1,
        "DATASTORE = [ ID = 1, SIZE = 2048, IMAGES = 5 ]",
    );
    let image = |name: &str| {
        c.call(
            "one.image.allocate",
            vec![
                s(&format!("NAME = {name}\nPATH = /tmp/{name}\nSIZE = 1024")),
                Value::Int(1),
            ],
        )
    };
    image("i1").unwrap();
    image("i2").unwrap();
    let (code, msg) = one_error(image("i3"));
    assert_eq!(
        (code, msg.as_str()),
        (
            AUTHORIZATION,
            format!(
                "[one.image.allocate] User [{alice}] : group [1] limit of 2048 reached for SIZE quota in DATASTORE with ID: 1."
            )
            .as_str()
        )
    );
    let body = admin
        .call_xml("one.group.info", vec![Value::Int(1)])
        .unwrap();
    assert!(
        body.contains("<DATASTORE_QUOTA><DATASTORE><ID><![CDATA[1]]></ID><IMAGES><![CDATA[5]]></IMAGES><IMAGES_USED><![CDATA[2]]></IMAGES_USED><SIZE><![CDATA[2048]]></SIZE><SIZE_USED><![CDATA[2048]]></SIZE_USED></DATASTORE></DATASTORE_QUOTA>"),
        "{body}"
    );
    // onegroup quota / defaultquota / update / addadmin / deladmin, from files as
    // OpenNebula's CLI takes them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.tmpl");
    std::fs::write(&file, "VM = [ VMS = 7 ]").unwrap();
    let path = file.to_str().unwrap();
    let run = |kind: cli::objects::Kind, args: &[&str]| {
        zone.servers[0].cli(kind, args).ok();
    };
    let cli = |args: &[&str]| run(cli::objects::Kind::Group, args);
    cli(&["quota", "1", path]);
    cli(&["defaultquota", path]);
    let body = admin
        .call_xml("one.group.info", vec![Value::Int(1)])
        .unwrap();
    assert_eq!(
        body.matches("<VMS><![CDATA[7]]></VMS>").count(),
        2,
        "{body}"
    );
    let more = dir.path().join("more.tmpl");
    std::fs::write(&more, "DESCRIPTION = \"everyone\"").unwrap();
    cli(&["update", "1", more.to_str().unwrap(), "--append"]);
    cli(&["addadmin", "1", &alice.to_string()]);
    let body = admin
        .call_xml("one.group.info", vec![Value::Int(1)])
        .unwrap();
    assert!(
        body.contains("<DESCRIPTION><![CDATA[everyone]]></DESCRIPTION>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<ADMINS><ID>{alice}</ID></ADMINS>")),
        "{body}"
    );
    cli(&["deladmin", "1", &alice.to_string()]);
    assert!(admin
        .call_xml("one.group.info", vec![Value::Int(1)])
        .unwrap()
        .contains("<ADMINS></ADMINS>"));
    // oneuser update / addgroup / delgroup.
    let user = |args: &[&str]| run(cli::objects::Kind::User, args);
    let a = alice.to_string();
    user(&["update", &a, more.to_str().unwrap(), "--append"]);
    user(&["addgroup", &a, "0"]);
    let body = admin
        .call_xml("one.user.info", vec![Value::Int(alice as i32)])
        .unwrap();
    assert!(
        body.contains("<GROUPS><ID>0</ID><ID>1</ID></GROUPS>"),
        "{body}"
    );
    assert!(
        body.contains("<DESCRIPTION><![CDATA[everyone]]></DESCRIPTION>"),
        "{body}"
    );
    user(&["delgroup", &a, "0"]);
    assert!(admin
        .call_xml("one.user.info", vec![Value::Int(alice as i32)])
        .unwrap()
        .contains("<GROUPS><ID>1</ID></GROUPS>"));

    let (code, msg) = one_error(admin.call(
        "one.group.quota",
        vec![Value::Int(0), s("VM = [ VMS = 1 ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            ACTION_CODE,
            "[one.group.quota] Cannot set quotas for oneadmin group"
        )
    );
}

/// Twenty-four creations at once against a limit of five: exactly five VMs exist after, whatever
/// the timing (each creation's guard reads the VMs where it is applied, after every earlier
/// one). Without the guard, this test lets six or more through about one run in two.
#[test]
fn concurrent_creations_never_pass_a_limit_together() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let admin = zone.servers[leader].client();
    let bob = allocate(&admin, "bob").unwrap();
    quota(&admin, "one.user.quota", bob, "VM = [ VMS = 5 ]");
    let made = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..24 {
            let c = zone.servers[leader].client_as("bob", "pw-bob");
            let (made, refused) = (&made, &refused);
            scope.spawn(move || match vm(&c, &format!("b{i}")) {
                Ok(_) => {
                    made.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => {
                    let (code, msg) = one_error(Err::<i64, _>(e));
                    assert_eq!(code, AUTHORIZATION, "{msg}");
                    refused.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(
        (made.load(Ordering::SeqCst), refused.load(Ordering::SeqCst)),
        (5, 19)
    );
    let pool = admin
        .call_xml(
            "one.vmpool.info",
            vec![
                Value::Int(bob as i32),
                Value::Int(-1),
                Value::Int(-1),
                Value::Int(-1),
            ],
        )
        .unwrap();
    assert_eq!(pool.matches("<VM><ID>").count(), 5, "{pool}");
}
