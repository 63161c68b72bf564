//! `onevm`'s day-2 subcommands against a real server: nic-attach / nic-update / nic-detach,
//! sg-attach / sg-detach, disk-attach / disk-detach and resize, with OpenNebula's options, and
//! their refusals on stderr with exit code 255.

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ok(c: &cli::Client, method: &str, params: Vec<Value>) -> i32 {
    c.call(method, params).unwrap().as_i64().unwrap() as i32
}

fn info(c: &cli::Client, method: &str, oid: i32) -> String {
    c.call_xml(method, vec![Value::Int(oid)]).unwrap()
}

#[test]
fn onevm_plugs_nics_groups_and_disks_and_resizes() {
    let zone = Zone::bootstrap(1);
    let c = zone.servers[0].client();
    let onevm = |args: &[&str]| zone.servers[0].cli(Kind::Vm, args).ok();
    ok(
        &c,
        "one.host.allocate",
        vec![s("node"), s("dummy"), s("kvm"), Value::Int(-1)],
    );
    ok(
        &c,
        "one.vn.allocate",
        vec![s(
            "NAME = lan\nVN_MAD = dummy\nBRIDGE = br0\nAR = [ TYPE = IP4, IP = 10.5.0.1, SIZE = 8 ]",
        )],
    );
    let sg = ok(
        &c,
        "one.secgroup.allocate",
        vec![s(
            "NAME = ssh\nRULE = [ PROTOCOL = TCP, RULE_TYPE = inbound, RANGE = 22 ]",
        )],
    );
    let image = ok(
        &c,
        "one.image.allocate",
        vec![s("NAME = data\nTYPE = DATABLOCK\nSIZE = 8"), Value::Int(1)],
    );
    let vm = ok(
        &c,
        "one.vm.allocate",
        vec![s("NAME = app\nCPU = 0.1\nMEMORY = 32")],
    );
    let running =
        || info(&c, "one.vm.info", vm).contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>");
    zone.wait_until(DEADLINE, "the VM runs", running);
    zone.wait_until(DEADLINE, "the image is READY", || {
        info(&c, "one.image.info", image).contains("<STATE>1</STATE>")
    });

    // By name, as OpenNebula's CLI takes them.
    assert_eq!(
        onevm(&["nic-attach", "app", "--network", "lan", "--ip", "10.5.0.5"]),
        ""
    );
    zone.wait_until(DEADLINE, "the NIC is plugged", running);
    assert!(info(&c, "one.vm.info", vm).contains("<IP><![CDATA[10.5.0.5]]></IP>"));
    onevm(&["sg-attach", "app", "0", "ssh"]);
    assert!(info(&c, "one.vm.info", vm).contains(&format!(
        "<SECURITY_GROUPS><![CDATA[0,{sg}]]></SECURITY_GROUPS>"
    )));
    onevm(&["sg-detach", "app", "0", &sg.to_string()]);
    let dir = tempfile_dir();
    let file = dir.join("nic.tmpl");
    std::fs::write(&file, "NIC = [ OUTBOUND_AVG_BW = 512 ]").unwrap();
    onevm(&["nic-update", "app", "0", file.to_str().unwrap(), "--append"]);
    zone.wait_until(DEADLINE, "the NIC is updated", running);
    assert!(
        info(&c, "one.vm.info", vm).contains("<OUTBOUND_AVG_BW><![CDATA[512]]></OUTBOUND_AVG_BW>")
    );
    onevm(&["nic-detach", "app", "0"]);
    zone.wait_until(DEADLINE, "the NIC is unplugged", running);

    onevm(&["disk-attach", "app", "--image", "data"]);
    zone.wait_until(DEADLINE, "the disk is plugged", running);
    assert!(info(&c, "one.image.info", image).contains("<RUNNING_VMS>1</RUNNING_VMS>"));
    onevm(&["disk-detach", "app", "0"]);
    zone.wait_until(DEADLINE, "the disk is unplugged", running);

    onevm(&["resize", "app", "--memory", "64", "--cpu", "0.2"]);
    zone.wait_until(DEADLINE, "the VM is resized", running);
    assert!(info(&c, "one.vm.info", vm).contains("<MEMORY><![CDATA[64]]></MEMORY>"));

    let refused = zone.servers[0].cli(Kind::Vm, &["nic-detach", "app", "7"]);
    assert_eq!(refused.code, 255, "{}{}", refused.out, refused.err);
    assert!(
        refused
            .err
            .contains("Could not detach NIC with NIC_ID 7, it does not exist."),
        "{}",
        refused.err
    );
}

/// A directory for this test's template files, under the system's temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oneha-onevm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
