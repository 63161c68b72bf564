//! A template's images in `one.template.chmod` and `one.template.delete` with `recursive`,
//! and `one.template.instantiate` with `persistent` (the private persistent copy), as
//! OpenNebula's `TemplateChmod`, `TemplateDelete` and `VMTemplateClone`; through the API and
//! `onetemplate`.

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{one_error, Zone, ACTION_CODE, AUTHORIZATION, DEADLINE, NO_EXISTS};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

/// The texts of every `<name>` element of `xml` (CDATA unwrapped).
fn all(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|r| r.split(&close).next())
        .map(|v| {
            v.strip_prefix("<![CDATA[")
                .and_then(|v| v.strip_suffix("]]>"))
                .unwrap_or(v)
                .to_string()
        })
        .collect()
}

fn first(xml: &str, name: &str) -> String {
    all(xml, name).into_iter().next().unwrap_or_default()
}

fn info(c: &cli::Client, method: &str, id: i32) -> Option<String> {
    c.call_xml(method, vec![Value::Int(id)]).ok()
}

fn chmod(id: i32, octet: [i32; 9], recursive: bool) -> Vec<Value> {
    let mut v = vec![Value::Int(id)];
    v.extend(octet.map(Value::Int));
    v.push(Value::Bool(recursive));
    v
}

/// `<OWNER_U>...` of a body as nine digits.
fn bits(xml: &str) -> String {
    [
        "OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M",
        "OTHER_A",
    ]
    .map(|b| first(xml, b))
    .concat()
}

#[test]
fn recursive_chmod_delete_and_persistent_instantiate_act_on_the_templates_images() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = &zone.servers[(leader + 1) % 3];
    let c = zone.servers[leader].client();
    ok(
        &c,
        "one.user.allocate",
        vec![s("carol"), s("pw"), s(""), Value::Array(vec![])],
    );
    let carol = follower.client_as("carol", "pw");
    // The follower authenticates carol once it has her.
    zone.wait_until(DEADLINE, "the follower knows carol", || {
        carol.call("one.user.info", vec![Value::Int(-1)]).is_ok()
    });
    let lcarol = zone.servers[leader].client_as("carol", "pw");
    let image = |who: &cli::Client, name: &str| {
        ok(
            who,
            "one.image.allocate",
            vec![
                s(&format!("NAME = {name}\nPATH = /tmp/{name}.qcow2")),
                Value::Int(1),
            ],
        )
    };
    let ready = |id: i32| {
        zone.wait_until(DEADLINE, &format!("image {id} is READY"), || {
            info(&c, "one.image.info", id).is_some_and(|b| first(&b, "STATE") == "1")
        });
    };
    let a = image(&carol, "a");
    let b = image(&carol, "b");
    let z = image(&c, "z");
    for i in [a, b, z] {
        ready(i);
    }

    tracing::info!("--- recursive chmod: the template and the images carol may manage");
    let t = ok(
        &carol,
        "one.template.allocate",
        vec![s(&format!(
            "NAME = t\nCPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {a} ]\n\
             DISK = [ IMAGE = b ]\nDISK = [ IMAGE_ID = {z} ]"
        ))],
    );
    let (code, msg) = one_error(carol.call(
        "one.template.chmod",
        chmod(t, [1, 1, 0, 1, 1, 0, 0, 0, 0], true),
    ));
    assert_eq!(code, ACTION_CODE, "{msg}");
    assert!(msg.contains(&format!("Cannot chmod image: {z}")), "{msg}");
    let tb = info(&c, "one.template.info", t).unwrap();
    assert_eq!(bits(&tb), "110110000", "{tb}");
    for i in [a, b] {
        let body = info(&c, "one.image.info", i).unwrap();
        assert_eq!(bits(&body), "110110000", "{body}");
    }
    let zb = info(&c, "one.image.info", z).unwrap();
    assert_ne!(bits(&zb), "110110000", "{zb}");
    // Without `recursive`, only the template.
    ok(
        &carol,
        "one.template.chmod",
        chmod(t, [1, 1, 0, 0, 0, 0, 0, 0, 0], false),
    );
    let body = info(&c, "one.image.info", a).unwrap();
    assert_eq!(bits(&body), "110110000", "{body}");
    let (code, _) = one_error(carol.call(
        "one.template.chmod",
        chmod(999, [1, 1, 0, 0, 0, 0, 0, 0, 0], true),
    ));
    assert_eq!(code, NO_EXISTS);

    tracing::info!("--- persistent instantiate: a copy of the template and of its images");
    let p = ok(
        &carol,
        "one.template.allocate",
        vec![s(&format!(
            "NAME = p\nCPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {a} ]\n\
             DISK = [ TYPE = fs, SIZE = 16 ]\nDISK = [ IMAGE = b, IMAGE_UNAME = carol ]"
        ))],
    );
    let vm = ok(
        &carol,
        "one.template.instantiate",
        vec![
            Value::Int(p),
            s(""),
            Value::Bool(true),
            s("LABEL = extra"),
            Value::Bool(true),
        ],
    );
    let vmb = info(&c, "one.vm.info", vm).unwrap();
    let copy: i32 = first(&vmb, "TEMPLATE_ID").parse().unwrap();
    assert_ne!(copy, p, "{vmb}");
    assert_eq!(first(&vmb, "CLONING_TEMPLATE_ID"), p.to_string(), "{vmb}");
    // Unnamed, the VM is named after the copy it was made from (`<template>-<id>`).
    assert_eq!(first(&vmb, "NAME"), format!("p-copy-{vm}"), "{vmb}");
    let cb = info(&c, "one.template.info", copy).unwrap();
    assert_eq!(first(&cb, "NAME"), "p-copy", "{cb}");
    assert_eq!(first(&cb, "LABEL"), "extra", "{cb}");
    assert!(!cb.contains("<IMAGE>"), "{cb}");
    assert!(!cb.contains("<IMAGE_UNAME>"), "{cb}");
    let copies: Vec<i32> = all(&cb, "IMAGE_ID")
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    assert_eq!(copies.len(), 2, "{cb}");
    for (copy_img, name) in copies.iter().zip(["p-copy-disk-0", "p-copy-disk-2"]) {
        assert!(![a, b].contains(copy_img), "{cb}");
        let ib = info(&c, "one.image.info", *copy_img).unwrap();
        assert_eq!(first(&ib, "NAME"), name, "{ib}");
        assert_eq!(first(&ib, "PERSISTENT"), "1", "{ib}");
        assert_eq!(first(&ib, "UNAME"), "carol", "{ib}");
    }
    // The original is untouched.
    let pb = info(&c, "one.template.info", p).unwrap();
    assert_eq!(first(&pb, "IMAGE"), "b", "{pb}");

    tracing::info!("--- an image carol may not copy: nothing of the copy is left");
    let templates_before = c
        .call_xml(
            "one.templatepool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    let (code, msg) = one_error(carol.call(
        "one.template.instantiate",
        vec![
            Value::Int(t),
            s("w"),
            Value::Bool(false),
            s(""),
            Value::Bool(true),
        ],
    ));
    assert_eq!(code, ACTION_CODE, "{msg}");
    // The nested refusal's own words (`img_att.resp_msg`), without its `User [u] :`.
    assert_eq!(
        msg,
        format!(
            "[one.template.instantiate] Failed to clone images: Not authorized to perform USE \
             IMAGE [{z}]"
        )
    );
    let templates_after = c
        .call_xml(
            "one.templatepool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert_eq!(
        all(&templates_before, "NAME"),
        all(&templates_after, "NAME")
    );
    let images = c
        .call_xml(
            "one.imagepool.info",
            vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)],
        )
        .unwrap();
    assert!(
        !all(&images, "NAME").contains(&"w-disk-0".to_string()),
        "{images}"
    );

    tracing::info!("--- recursive delete: the images go too; one refused is only logged");
    // The sources are READY again once the driver copied them.
    zone.wait_until(DEADLINE, "the copied images are free again", || {
        [a, b]
            .iter()
            .all(|i| info(&c, "one.image.info", *i).is_some_and(|b| first(&b, "STATE") == "1"))
    });
    assert_eq!(
        ok(
            &lcarol,
            "one.template.delete",
            vec![Value::Int(t), Value::Bool(true)]
        ),
        t
    );
    for i in [a, b] {
        let (code, _) = one_error(c.call("one.image.info", vec![Value::Int(i)]));
        assert_eq!(code, NO_EXISTS, "image {i}");
    }
    assert!(info(&c, "one.image.info", z).is_some());
    let (code, _) = one_error(c.call("one.template.info", vec![Value::Int(t)]));
    assert_eq!(code, NO_EXISTS);
    // Another user's template: refused before anything is touched.
    let (code, _) = one_error(carol.call(
        "one.template.delete",
        vec![Value::Int(copy + 1000), Value::Bool(true)],
    ));
    assert_eq!(code, NO_EXISTS);
    let theirs = ok(
        &c,
        "one.template.allocate",
        vec![s(&format!("NAME = theirs\nDISK = [ IMAGE_ID = {z} ]"))],
    );
    let (code, msg) = one_error(carol.call(
        "one.template.delete",
        vec![Value::Int(theirs), Value::Bool(true)],
    ));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    assert!(info(&c, "one.image.info", z).is_some());

    tracing::info!("--- onetemplate: instantiate --persistent, chmod and delete --recursive");
    let q = ok(
        &c,
        "one.template.allocate",
        vec![s(&format!(
            "NAME = q\nCPU = 0.1\nMEMORY = 32\nDISK = [ IMAGE_ID = {z} ]"
        ))],
    );
    let q_id = q.to_string();
    // `one.template.clone` with `recursive` copies the images too, keeping their persistence.
    let q2 = ok(
        &c,
        "one.template.clone",
        vec![Value::Int(q), s("q2"), Value::Bool(true)],
    );
    let q2b = info(&c, "one.template.info", q2).unwrap();
    let q2img: i32 = first(&q2b, "IMAGE_ID").parse().unwrap();
    assert_ne!(q2img, z, "{q2b}");
    let ib = info(&c, "one.image.info", q2img).unwrap();
    assert_eq!(first(&ib, "NAME"), "q2-disk-0", "{ib}");
    assert_eq!(first(&ib, "PERSISTENT"), "0", "{ib}");
    let out = follower
        .cli(
            Kind::Template,
            &["instantiate", &q_id, "--persistent", "--hold"],
        )
        .ok();
    assert!(out.starts_with("VM ID: "), "{out}");
    let qvm: i32 = out.trim().trim_start_matches("VM ID: ").parse().unwrap();
    let qvmb = info(&c, "one.vm.info", qvm).unwrap();
    let qcopy: i32 = first(&qvmb, "TEMPLATE_ID").parse().unwrap();
    let qcb = info(&c, "one.template.info", qcopy).unwrap();
    assert_eq!(first(&qcb, "NAME"), "q-copy", "{qcb}");
    let zcopy: i32 = first(&qcb, "IMAGE_ID").parse().unwrap();
    follower
        .cli(
            Kind::Template,
            &["chmod", &qcopy.to_string(), "660", "--recursive"],
        )
        .ok();
    let zcb = info(&c, "one.image.info", zcopy).unwrap();
    assert_eq!(bits(&zcb), "110110000", "{zcb}");
    // The VM holds its image: the template goes, the image stays, and the command succeeds.
    follower
        .cli(
            Kind::Template,
            &["delete", &qcopy.to_string(), "--recursive"],
        )
        .ok();
    let (code, _) = one_error(c.call("one.template.info", vec![Value::Int(qcopy)]));
    assert_eq!(code, NO_EXISTS);
    assert!(info(&c, "one.image.info", zcopy).is_some());
}

#[test]
fn an_extended_template_info_shows_its_disks_as_a_vm_would_take_them() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let img = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = os\nTYPE = OS\nSIZE = 10"), Value::Int(1)],
    );
    let t = ok(
        &c,
        "one.template.allocate",
        vec![s(&format!(
            "NAME = t\nCPU = 1\nMEMORY = 32\nDISK = [ IMAGE_ID = {img} ]\nDISK = [ TYPE = fs, SIZE = 5 ]"
        ))],
    );
    let plain = info(&c, "one.template.info", t).unwrap();
    assert!(all(&plain, "DISK_ID").is_empty(), "{plain}");
    let extended = c
        .call_xml("one.template.info", vec![Value::Int(t), Value::Bool(true)])
        .unwrap();
    assert_eq!(all(&extended, "DISK_ID"), vec!["0", "1"], "{extended}");
    assert_eq!(first(&extended, "IMAGE"), "os", "{extended}");
    assert_eq!(first(&extended, "ORIGINAL_SIZE"), "10", "{extended}");
    assert_eq!(first(&extended, "DATASTORE_ID"), "1", "{extended}");
    // A user who may USE the template but not its image is refused the extended view only.
    ok(
        &c,
        "one.user.allocate",
        vec![s("eve"), s("pw"), s(""), Value::Array(vec![])],
    );
    let eve = zone.servers[0].client_as("eve", "pw");
    let mut other_use = vec![Value::Int(t)];
    other_use.extend([-1, -1, -1, -1, -1, -1, 1, -1, -1].map(Value::Int));
    ok(&c, "one.template.chmod", other_use);
    info(&eve, "one.template.info", t).expect("USE on the template");
    let (code, msg) =
        one_error(eve.call("one.template.info", vec![Value::Int(t), Value::Bool(true)]));
    assert_eq!(code, AUTHORIZATION);
    assert!(
        msg.ends_with(&format!("Not authorized to perform USE IMAGE [{img}].")),
        "{msg}"
    );
}

/// `TemplateInfo` with `extended`: `VirtualMachine::set_auth_request` on every NIC (by
/// NETWORK_ID or NETWORK, which gets its NETWORK_ID), its security groups and the VM group,
/// every refusal in one message; `hold` without the extra template is a malformed call.
#[test]
fn extended_template_info_names_and_authorizes_what_the_vm_would_use() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let net = ok(
        &c,
        "one.vn.allocate",
        vec![s("NAME = lan\nVN_MAD = dummy\nBRIDGE = br0")],
    );
    let sg = ok(&c, "one.secgroup.allocate", vec![s("NAME = closed")]);
    let vmg = ok(
        &c,
        "one.vmgroup.allocate",
        vec![s("NAME = g\nROLE = [ NAME = web ]")],
    );
    for (method, id) in [
        ("one.vn.chmod", net),
        ("one.secgroup.chmod", sg),
        ("one.vmgroup.chmod", vmg),
    ] {
        let mut params = vec![Value::Int(id), Value::Int(1), Value::Int(1)];
        params.extend((0..7).map(|_| Value::Int(0)));
        c.call(method, params).unwrap();
    }
    ok(
        &c,
        "one.user.allocate",
        vec![s("ann"), s("pw"), s(""), Value::Array(vec![])],
    );
    let ann = zone.servers[0].client_as("ann", "pw");
    let t = ok(
        &ann,
        "one.template.allocate",
        vec![s(&format!(
            "NAME = t\nCPU = 1\nMEMORY = 8\nNIC = [ NETWORK = lan, NETWORK_UNAME = oneadmin, \
             SECURITY_GROUPS = {sg} ]\nVMGROUP = [ VMGROUP_ID = {vmg}, ROLE = web ]"
        ))],
    );
    let ext = |who: &cli::Client| {
        who.call_xml("one.template.info", vec![Value::Int(t), Value::Bool(true)])
    };
    let (code, msg) = one_error(ext(&ann));
    assert_eq!(code, AUTHORIZATION, "{msg}");
    // The default VDC lets group users USE the networks of cluster 0.
    assert!(!msg.contains("USE NET"), "{msg}");
    for refused in [
        format!("USE SECGROUP [{sg}]"),
        format!("USE VMGROUP [{vmg}]"),
    ] {
        assert!(msg.contains(&refused), "{refused}: {msg}");
    }
    let body = ext(&c).unwrap();
    assert!(
        body.contains(&format!("<NETWORK_ID><![CDATA[{net}]]></NETWORK_ID>")),
        "{body}"
    );
    // The plain info keeps the template as stored.
    let plain = c
        .call_xml("one.template.info", vec![Value::Int(t)])
        .unwrap();
    assert!(!plain.contains("<NETWORK_ID>"), "{plain}");

    match c.call(
        "one.template.instantiate",
        vec![Value::Int(t), s(""), Value::Bool(true)],
    ) {
        Err(cli::client::CallError::Fault { code, .. }) => assert_eq!(code, -501),
        other => panic!("hold without the extra template: {other:?}"),
    }
}
