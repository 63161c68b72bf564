//! A VM's CONTEXT as OpenNebula's `VirtualMachine::parse_context` writes it when the VM is
//! created: `$` variables substituted from the VM, its owner and its networks, and with
//! `NETWORK = YES` the `ETH<n>_*` variables of each NIC, from the NIC, its address range and its
//! network; a NIC in auto mode gets them when its network is chosen. A variable that does not
//! parse refuses the VM in the parser's words.

use cli::xml::Element;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, DEADLINE, INTERNAL};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn i(v: i32) -> Value {
    Value::Int(v)
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

/// The VM's CONTEXT, as (name, value) in the body's order.
fn context(c: &cli::Client, vm: i32) -> Vec<(String, String)> {
    let body = c.call_xml("one.vm.info", vec![i(vm)]).unwrap();
    let vm = Element::parse(&body).unwrap();
    vm.child("TEMPLATE")
        .and_then(|t| t.child("CONTEXT"))
        .map(|ctx| {
            ctx.children
                .iter()
                .map(|e| (e.name.clone(), e.text.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn get<'a>(ctx: &'a [(String, String)], k: &str) -> Option<&'a str> {
    ctx.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn context_variables_and_network_context_are_written_as_opennebula_writes_them() {
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
    let lan = ok(
        &c,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nDNS = 1.1.1.1\n\
                AR = [ TYPE = IP4, IP = 10.1.0.1, SIZE = 4, GATEWAY = 10.1.0.254 ]",
        )],
    );
    zone.wait_until(DEADLINE, "the network is READY", || {
        c.call_xml("one.vn.info", vec![i(lan)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    let alice = ok(
        &c,
        "one.user.allocate",
        vec![s("alice"), s("pw-alice"), s("core"), Value::Array(vec![])],
    );
    ok(
        &c,
        "one.user.update",
        vec![
            i(alice),
            s("SSH_PUBLIC_KEY = \"ssh-ed25519 AAAA alice@laptop\""),
            i(1),
        ],
    );
    let a = zone.servers[0].client_as("alice", "pw-alice");

    eprintln!("--- an unnamed VM of a template: $NAME and $VMID are its own");
    let tmpl = ok(
        &a,
        "one.template.allocate",
        vec![s(&format!(
            "NAME = web\nCPU = 0.1\nMEMORY = 16\nROLE = frontend\nNIC = [ NETWORK_ID = {lan} ]\n\
             CONTEXT = [ NETWORK = YES, SET_HOSTNAME = \"$NAME\", ID = \"$VMID\", \
             SSH_PUBLIC_KEY = \"$USER[SSH_PUBLIC_KEY]\", OWNER = \"$UNAME/$GNAME\", \
             GW = \"$NETWORK[GATEWAY, NIC_ID=\\\"0\\\"]\", MYIP = \"$NIC[IP]\", R = \"$ROLE\" ]"
        ))],
    );
    let vm = ok(
        &a,
        "one.template.instantiate",
        vec![i(tmpl), s(""), Value::Bool(true), s(""), Value::Bool(false)],
    );
    let ctx = context(&c, vm);
    assert_eq!(
        get(&ctx, "SET_HOSTNAME"),
        Some(format!("web-{vm}").as_str()),
        "{ctx:?}"
    );
    assert_eq!(get(&ctx, "ID"), Some(vm.to_string().as_str()));
    assert_eq!(
        get(&ctx, "SSH_PUBLIC_KEY"),
        Some("ssh-ed25519 AAAA alice@laptop")
    );
    assert_eq!(get(&ctx, "OWNER"), Some("alice/users"));
    assert_eq!(get(&ctx, "GW"), Some("10.1.0.254"));
    assert_eq!(get(&ctx, "MYIP"), Some("10.1.0.1"));
    assert_eq!(get(&ctx, "R"), Some("frontend"));
    assert_eq!(get(&ctx, "ETH0_IP"), Some("10.1.0.1"));
    assert_eq!(get(&ctx, "ETH0_MAC"), Some("02:00:0a:01:00:01"));
    assert_eq!(get(&ctx, "ETH0_GATEWAY"), Some("10.1.0.254"));
    assert_eq!(get(&ctx, "ETH0_DNS"), Some("1.1.1.1"));
    assert_eq!(get(&ctx, "ETH0_VROUTER_IP"), Some(""));
    assert_eq!(get(&ctx, "NETWORK"), Some("YES"));
    let names: Vec<&str> = ctx.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "kept in OpenNebula's (std::map's) order");

    eprintln!("--- a NIC attached adds its variables, a NIC detached takes them away");
    ok(&a, "one.vm.action", vec![s("release"), i(vm)]);
    zone.wait_until(DEADLINE, "the VM runs", || {
        c.call_xml("one.vm.info", vec![i(vm)])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    ok(
        &a,
        "one.vm.attachnic",
        vec![i(vm), s(&format!("NIC = [ NETWORK_ID = {lan} ]"))],
    );
    let ctx = context(&c, vm);
    assert_eq!(get(&ctx, "ETH1_IP"), Some("10.1.0.2"), "{ctx:?}");
    assert_eq!(get(&ctx, "ETH1_GATEWAY"), Some("10.1.0.254"));
    zone.wait_until(DEADLINE, "the NIC is plugged", || {
        c.call_xml("one.vm.info", vec![i(vm)])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    ok(&a, "one.vm.detachnic", vec![i(vm), i(0)]);
    let ctx = context(&c, vm);
    assert_eq!(get(&ctx, "ETH0_IP"), None, "{ctx:?}");
    assert_eq!(get(&ctx, "ETH0_MAC"), None);
    assert_eq!(get(&ctx, "ETH1_IP"), Some("10.1.0.2"));

    eprintln!("--- updateconf parses the values it changes, as parse_context");
    zone.wait_until(DEADLINE, "the NIC is unplugged", || {
        c.call_xml("one.vm.info", vec![i(vm)])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    ok(
        &a,
        "one.vm.updateconf",
        vec![
            i(vm),
            s("CONTEXT = [ SET_HOSTNAME = \"$NAME-new\", ME = \"$VMID\" ]"),
            i(1),
        ],
    );
    let ctx = context(&c, vm);
    assert_eq!(
        get(&ctx, "SET_HOSTNAME"),
        Some(format!("web-{vm}-new").as_str()),
        "{ctx:?}"
    );
    assert_eq!(get(&ctx, "ME"), Some(vm.to_string().as_str()));
    assert_eq!(
        get(&ctx, "SSH_PUBLIC_KEY"),
        Some("ssh-ed25519 AAAA alice@laptop")
    );
    assert_eq!(get(&ctx, "ETH1_IP"), Some("10.1.0.2"));

    eprintln!("--- a named VM; SCHED_REQUIREMENTS' variables are substituted too");
    let named = ok(
        &a,
        "one.vm.allocate",
        vec![
            s(
                "NAME = db\nCPU = 0.1\nMEMORY = 16\nCONTEXT = [ H = \"$NAME-$VMID\" ]\n\
               SCHED_REQUIREMENTS = \"NAME != $UNAME\"",
            ),
            Value::Bool(true),
        ],
    );
    assert_eq!(
        get(&context(&c, named), "H"),
        Some(format!("db-{named}").as_str())
    );
    let body = c.call_xml("one.vm.info", vec![i(named)]).unwrap();
    assert!(
        body.contains("<SCHED_REQUIREMENTS><![CDATA[NAME != alice]]></SCHED_REQUIREMENTS>"),
        "{body}"
    );

    eprintln!("--- disk targets: the OS disk first, then the context CD-ROM, then the rest");
    let os = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = os\nTYPE = OS\nPATH = /tmp/os.qcow2"), i(1)],
    );
    zone.wait_until(DEADLINE, "the image is READY", || {
        c.call_xml("one.image.info", vec![i(os)])
            .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
    });
    let disks = ok(
        &c,
        "one.vm.allocate",
        vec![
            s(&format!(
                "CPU = 0.1\nMEMORY = 16\nDISK = [ TYPE = fs, SIZE = 8 ]\nDISK = [ IMAGE_ID = {os} ]\n\
                 DISK = [ TYPE = swap, SIZE = 8, DEV_PREFIX = vd ]\nCONTEXT = [ A = b ]"
            )),
            Value::Bool(true),
        ],
    );
    let body = Element::parse(&c.call_xml("one.vm.info", vec![i(disks)]).unwrap()).unwrap();
    let tmpl = body.child("TEMPLATE").unwrap();
    let targets: Vec<&str> = tmpl
        .children_named("DISK")
        .map(|d| d.text_of("TARGET").unwrap_or(""))
        .collect();
    assert_eq!(targets, ["sdb", "sda", "vda"]);
    let ctx = context(&c, disks);
    assert_eq!(get(&ctx, "TARGET"), Some("hda"));
    assert_eq!(get(&ctx, "DISK_ID"), Some("3"));
    eprintln!("--- an attached disk takes the next free target of its prefix");
    ok(&c, "one.vm.action", vec![s("release"), i(disks)]);
    zone.wait_until(DEADLINE, "the VM runs", || {
        c.call_xml("one.vm.info", vec![i(disks)])
            .is_ok_and(|b| b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"))
    });
    ok(
        &c,
        "one.vm.attach",
        vec![i(disks), s("DISK = [ TYPE = fs, SIZE = 4 ]")],
    );
    zone.wait_until(DEADLINE, "the disk is attached as sdc", || {
        c.call_xml("one.vm.info", vec![i(disks)]).is_ok_and(|b| {
            b.contains("<TARGET><![CDATA[sdc]]></TARGET>")
                && b.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>")
        })
    });
    let (code, msg) = one_error(c.call(
        "one.vm.attach",
        vec![i(disks), s("DISK = [ TYPE = fs, SIZE = 4, TARGET = hda ]")],
    ));
    assert_eq!(
        (code, msg.as_str()),
        (0x800, "[one.vm.attach] Target hda is already in use.")
    );

    eprintln!("--- NIC_DEFAULT fills what each NIC does not say, and names no network");
    let defaulted = ok(
        &a,
        "one.vm.allocate",
        vec![
            s(&format!(
                "CPU = 0.1\nMEMORY = 16\nNIC_DEFAULT = [ MODEL = virtio, VIRTIO_QUEUES = 2 ]\n\
                 NIC = [ NETWORK_ID = {lan} ]\nNIC = [ NETWORK_ID = {lan}, MODEL = e1000 ]"
            )),
            Value::Bool(true),
        ],
    );
    let body = Element::parse(&c.call_xml("one.vm.info", vec![i(defaulted)]).unwrap()).unwrap();
    let models: Vec<(&str, &str)> = body
        .child("TEMPLATE")
        .unwrap()
        .children_named("NIC")
        .map(|n| {
            (
                n.text_of("MODEL").unwrap_or(""),
                n.text_of("VIRTIO_QUEUES").unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(models, [("virtio", "2"), ("e1000", "2")]);
    assert_eq!(
        one_error(a.call(
            "one.vm.allocate",
            vec![s(&format!(
                "CPU = 0.1\nMEMORY = 16\nNIC_DEFAULT = [ NETWORK_ID = {lan} ]"
            ))]
        )),
        (
            INTERNAL,
            "[one.vm.allocate] Attribute NETWORK_ID is not allowed inside NIC_DEFAULT.".into()
        )
    );

    eprintln!("--- a variable that does not parse refuses the VM");
    assert_eq!(
        one_error(a.call(
            "one.vm.allocate",
            vec![s("CPU = 0.1\nMEMORY = 16\nCONTEXT = [ A = \"5$\" ]")]
        )),
        (
            INTERNAL,
            // The CONTEXT as marshalled after the disks gave it its DISK_ID and TARGET.
            "[one.vm.allocate] Error parsing: A=5$@^_DISK_ID=0@^_TARGET=hda. syntax error, \
             unexpected EOA, expecting $end or VARIABLE or RSTRING at line 1, columns 5:6"
                .into()
        )
    );
}

/// FILES_DS: `$FILE[IMAGE=...]` and `$FILE[IMAGE_ID=...]` as `parse_file_attribute` resolves
/// them: CONTEXT images the owner may use, written `<SOURCE>:'<NAME>' `, none of them taken.
#[test]
fn files_ds_names_context_images_by_name_or_id() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    // The bootstrap's datastore 2 holds files.
    let file = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = init\nTYPE = CONTEXT\nPATH = /etc/hostname"), i(2)],
    );
    let disk = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = disk\nTYPE = DATABLOCK\nSIZE = 1"), i(1)],
    );
    let source = |id: i32| {
        zone.wait_until(DEADLINE, "the image is READY", || {
            c.call_xml("one.image.info", vec![i(id)])
                .is_ok_and(|b| b.contains("<STATE>1</STATE>"))
        });
        let body = c.call_xml("one.image.info", vec![i(id)]).unwrap();
        Element::parse(&body)
            .unwrap()
            .child("SOURCE")
            .unwrap()
            .text
            .clone()
    };
    let src = source(file);
    source(disk);
    let vm_with = |files: &str| {
        c.call(
            "one.vm.allocate",
            vec![s(&format!(
                "CPU = 0.1\nMEMORY = 16\nCONTEXT = [ FILES_DS = \"{files}\", A = \"$UNAME\" ]"
            ))],
        )
    };
    let vm = vm_with(&format!(
        "$FILE[IMAGE=\\\"init\\\"] $FILE[IMAGE_ID={file}, IMAGE_UNAME=oneadmin]"
    ))
    .unwrap()
    .as_i64()
    .unwrap() as i32;
    let ctx = context(&c, vm);
    assert_eq!(
        get(&ctx, "FILES_DS"),
        Some(format!("{src}:'init' {src}:'init' ").as_str()),
        "{ctx:?}"
    );
    assert_eq!(get(&ctx, "A"), Some("oneadmin"));
    let image = c.call_xml("one.image.info", vec![i(file)]).unwrap();
    assert!(image.contains("<RUNNING_VMS>0</RUNNING_VMS>"), "{image}");

    for (files, why) in [
        (
            "$FILE[IMAGE_ID=999]".to_string(),
            "Error parsing: $FILE[IMAGE_ID=999]. Image with ID: 999 does not exist".to_string(),
        ),
        (
            "  $FILE[IMAGE=nope]".into(),
            "Error parsing: $FILE[IMAGE=nope]. User 0 does not own an image with name: nope . \
             Set IMAGE_UNAME or IMAGE_UID of owner."
                .into(),
        ),
        (
            "$IMAGE[IMAGE_ID=1]".into(),
            "Error parsing: $IMAGE[IMAGE_ID=1]. Must use FILE variable for attribute.".into(),
        ),
        (
            format!("$FILE[IMAGE_ID={disk}]"),
            "Only images of type CONTEXT can be used in FILE_DS attribute.".into(),
        ),
        (
            format!("$FILE[IMAGE_ID={file}]  x"),
            // The blank ending the variable, then text (" x", the last two columns) where only
            // another variable may be.
            format!(
                "Error parsing: $FILE[IMAGE_ID={file}]  x. syntax error, unexpected RSTRING, \
                 expecting $end or VARIABLE at line 1, columns {}:{}",
                format!("$FILE[IMAGE_ID={file}]  x").len() - 1,
                format!("$FILE[IMAGE_ID={file}]  x").len() + 1
            ),
        ),
    ] {
        assert_eq!(
            one_error(vm_with(&files)),
            (INTERNAL, format!("[one.vm.allocate] {why}")),
            "{files}"
        );
    }
}
