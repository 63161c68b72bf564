//! `onevnet`, as OpenNebula's: a network made from a file, its table and `show` layout with the
//! address ranges and leases, ranges added from options and files, updated, freed and removed,
//! leases held and released, reservations, recover, the owner actions, orphans, and
//! OpenNebula's refusals on stderr with exit code 255.

use std::path::Path;

use cli::objects::Kind;
use xmlrpc::Value;

use crate::zone::{Zone, DEADLINE};

/// A template file in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The lines of `show` from `from` up to the next empty line.
fn section<'a>(show: &'a str, from: &str) -> Vec<&'a str> {
    show.split(&format!("\n{from}\n"))
        .nth(1)
        .unwrap_or("")
        .split("\n\n")
        .next()
        .unwrap_or("")
        .lines()
        .collect()
}

#[test]
fn onevnet_manages_networks_ranges_and_leases_as_opennebula() {
    let zone = Zone::solo();
    let server = &zone.servers[0];
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| server.cli(Kind::Vnet, args).parts();
    let ok = |args: &[&str]| server.cli(Kind::Vnet, args).ok();
    let refused = |args: &[&str], want: &str| {
        let (code, out, err) = run(args);
        assert_eq!((code, out.as_str()), (255, ""), "{args:?}: {err}");
        assert_eq!(err, format!("{want}\n"), "{args:?}");
    };

    let net = file(
        dir.path(),
        "net.tmpl",
        "NAME = net\nVN_MAD = dummy\nBRIDGE = br0\nDNS = 1.1.1.1\n\
         AR = [ TYPE = IP4, IP = 10.0.0.1, SIZE = 4 ]\n",
    );
    assert_eq!(ok(&["create", &net]), "ID: 0\n");
    zone.wait_until(DEADLINE, "the network is READY", || {
        run(&["show", "net"])
            .1
            .contains("\nSTATE                    : READY\n")
    });
    refused(
        &["create", "/no/such/file"],
        "command create: argument 0 must be one of file",
    );
    refused(
        &["create", &net, "-c", "nowhere"],
        "CLUSTER named nowhere not found.\noption cluster: Parsing error",
    );

    // The table, with onevnet.yaml's default columns; UPDATED only when asked for.
    assert_eq!(
        ok(&["list"]),
        "  ID USER     GROUP    NAME            CLUSTERS   BRIDGE   STATE  LEASES OUTD ERRO\n   \
            0 oneadmin oneadmin net             0          br0      rdy         0    0    0\n"
    );
    assert_eq!(
        ok(&["list", "-l", "ID,NAME,UPDATED", "--csv"]),
        "ID,NAME,UPDATED\n0,net,0\n"
    );
    assert_eq!(ok(&["list", "-f", "NAME=none", "--no-header"]), "");
    assert!(ok(&["list", "-x"]).starts_with("<VNET_POOL><VNET><ID>0</ID>"));

    // Ranges from options and from a file.
    assert_eq!(
        ok(&["addar", "net", "-s", "2", "-m", "02:00:00:00:10:00"]),
        ""
    );
    assert_eq!(
        ok(&[
            "addar",
            "net",
            "--size",
            "2",
            "--ip",
            "192.168.0.1",
            "--gateway",
            "192.168.0.254"
        ]),
        ""
    );
    let ar = file(
        dir.path(),
        "ar.tmpl",
        "AR = [ TYPE = IP4, IP = 172.16.0.1, SIZE = 1 ]\n",
    );
    assert_eq!(ok(&["addar", "0", &ar]), "");
    refused(
        &["addar", "net", "--ip", "10.1.0.1"],
        "Address range needs to specify size (-s size)",
    );
    refused(
        &["addar", "net", "--ip6", "2001:db8::1"],
        "Missing or wrong IP6",
    );

    // Leases held by address, by MAC in one range, then released.
    assert_eq!(ok(&["hold", "net", "10.0.0.1"]), "");
    assert_eq!(ok(&["hold", "net", "02:00:00:00:10:01", "-a", "1"]), "");
    refused(
        &["hold", "net", "10.0.0.1"],
        "[one.vn.hold] Address is not part of the address range or in use.",
    );
    refused(&["hold", "net", "web"], "Unknown address type");
    refused(
        &["hold", "net", "10.0.0.2", "-a", "x"],
        "invalid argument: -a x",
    );

    // Reservations: a new network, or an existing reservation made bigger.
    refused(
        &["reserve", "net"],
        "Specify a size (-s size) for the reservation",
    );
    refused(
        &["reserve", "net", "-s", "1"],
        "Specify a name (-n name) for the reservation",
    );
    refused(
        &["reserve", "net", "-s", "1", "-n", "res", "-i", "10.0.0.3"],
        "[one.vn.reserve] AR_ID must be specified for IP/MAC based reservations",
    );
    assert_eq!(
        ok(&[
            "reserve",
            "net",
            "-s",
            "1",
            "-n",
            "res",
            "-i",
            "10.0.0.3",
            "--address_range",
            "0"
        ]),
        "Reservation VNET ID: 1\n"
    );

    let show = ok(&["show", "net"]);
    let head = "VIRTUAL NETWORK 0 INFORMATION\n\
                ID                       : 0\n\
                NAME                     : net\n\
                USER                     : oneadmin\n\
                GROUP                    : oneadmin\n\
                LOCK                     : None\n\
                CLUSTERS                 : 0\n\
                BRIDGE                   : br0\n\
                STATE                    : READY\n\
                VN_MAD                   : dummy\n\
                AUTOMATIC VLAN ID        : NO\n\
                AUTOMATIC OUTER VLAN ID  : NO\n\
                USED LEASES              : 3\n\
                \n\
                PERMISSIONS\n\
                OWNER                    : um-\n\
                GROUP                    : ---\n\
                OTHER                    : ---\n\
                \n\
                VIRTUAL NETWORK TEMPLATE\n";
    assert!(show.starts_with(head), "{show}");
    let template = section(&show, "VIRTUAL NETWORK TEMPLATE");
    assert!(template.contains(&"BRIDGE=\"br0\""), "{show}");
    assert!(template.contains(&"DNS=\"1.1.1.1\""), "{show}");
    assert!(
        show.contains(
            "\nADDRESS RANGE POOL\nAR 0\nSIZE           : 4\nLEASES         : 2\n\n\
             RANGE                                   FIRST                               LAST\n\
             MAC                         02:00:0a:00:00:01                  02:00:0a:00:00:04\n\
             IP                                   10.0.0.1                           10.0.0.4\n\n\
             AR 1\nSIZE           : 2\nLEASES         : 1\n\n"
        ),
        "{show}"
    );
    assert_eq!(
        section(&show, "LEASES"),
        [
            "AR  OWNER                    MAC       IP PORT_FORWARD   IP6",
            "0   V:-1       02:00:0a:00:00:01 10.0.0.1     -     -",
            "0   N:1        02:00:0a:00:00:03 10.0.0.3     -     -",
            "1   V:-1       02:00:00:00:10:01        -     -     -",
        ],
        "{show}"
    );
    assert!(
        show.ends_with(
            "\n\nVIRTUAL ROUTERS\n\nVIRTUAL MACHINES\nUPDATED        :\n\
             OUTDATED       :\nERROR          :\n"
        ),
        "{show}"
    );
    assert!(
        show.contains("\nAR 2\n") && show.contains("\nAR 3\n"),
        "{show}"
    );
    assert!(ok(&["show", "net", "-x"]).starts_with("<VNET><ID>0</ID>"));
    assert!(ok(&["show", "net", "-j"]).starts_with("{\n  \"VNET\": {\n    \"ID\": \"0\""));

    assert_eq!(ok(&["release", "net", "10.0.0.1"]), "");
    assert_eq!(ok(&["release", "net", "02:00:00:00:10:01", "-a", "1"]), "");

    // A range updated from a file, or with the file's attributes added (--append).
    let gw = file(dir.path(), "gw.tmpl", "AR_ID = 2\nGATEWAY = 192.168.0.1\n");
    assert_eq!(ok(&["updatear", "net", "2", &gw]), "");
    let dns = file(dir.path(), "dns.tmpl", "DNS = 8.8.8.8\n");
    assert_eq!(ok(&["updatear", "net", "2", &dns, "--append"]), "");
    let show = ok(&["show", "net", "--show-ar"]);
    let ar2 = section(&show, "TEMPLATE FOR AR 2");
    assert!(ar2.contains(&"GATEWAY=\"192.168.0.1\""), "{show}");
    assert!(ar2.contains(&"DNS=\"8.8.8.8\""), "{show}");
    refused(
        &["updatear", "net", "9", &gw],
        "Address Range 9 does not exist for Virtual Network 0",
    );
    refused(
        &["updatear", "net", "x", &gw],
        "Argument 'x' is not a valid ID",
    );
    refused(
        &["updatear", "net"],
        "Command updatear requires 3 parameters to run.",
    );

    // Ranges removed: refused while leased, unless forced; a reservation freed.
    refused(
        &["rmar", "net", "0"],
        "[one.vn.rm_ar] Address Range has leases in use",
    );
    assert_eq!(ok(&["rmar", "net", "3"]), "");
    zone.wait_until(DEADLINE, "the reservation is READY", || {
        run(&["show", "res"])
            .1
            .contains("\nSTATE                    : READY\n")
    });
    assert_eq!(ok(&["free", "res", "0"]), "");
    assert!(!ok(&["show", "net"]).contains("N:1"));

    // The owner actions.
    assert_eq!(ok(&["rename", "net", "lan"]), "");
    let more = file(dir.path(), "more.tmpl", "DESCRIPTION = \"blue\"\n");
    assert_eq!(ok(&["update", "lan", &more, "--append"]), "");
    assert_eq!(ok(&["chmod", "lan", "644"]), "");
    assert_eq!(ok(&["chgrp", "lan", "users"]), "");
    assert_eq!(ok(&["chown", "lan", "oneadmin", "oneadmin"]), "");
    assert_eq!(ok(&["lock", "lan", "--admin"]), "");
    let show = ok(&["show", "lan"]);
    assert!(
        show.contains("\nNAME                     : lan\n"),
        "{show}"
    );
    assert!(
        show.contains("\nLOCK                     : Admin\n"),
        "{show}"
    );
    assert!(
        show.contains("\nGROUP                    : u--\n"),
        "{show}"
    );
    assert!(show.contains("\nDESCRIPTION=\"blue\"\n"), "{show}");
    assert_eq!(ok(&["unlock", "lan"]), "");

    // Every network is an orphan: no VM template names one.
    assert_eq!(ok(&["orphans"]), "1\n0\n");
    // A template's NIC names one by id, the other by name and owner.
    for nic in [
        "NETWORK_ID = 0",
        "NETWORK = \"res\", NETWORK_UNAME = \"oneadmin\"",
    ] {
        let text = format!(
            "NAME = \"t{}\"\nCPU = 1\nMEMORY = 64\nNIC = [ {nic} ]",
            nic.len()
        );
        server
            .client()
            .call("one.template.allocate", vec![Value::String(text)])
            .unwrap();
        let left = if nic.contains("res") { "\n" } else { "1\n" };
        assert_eq!(ok(&["orphans"]), left, "{nic}");
    }

    refused(
        &["recover", "lan"],
        "Need to specify the result of the pending action.\n\
         \t--success recover the VN by succeeding the missing action.\n\
         \t--failure recover the VN by failing the missing action.\n\
         \t--delete no recover possible, delete the VN.",
    );
    let (code, _, err) = run(&["recover", "lan", "--failure"]);
    assert_eq!(code, 255);
    assert!(err.starts_with("[one.vn.recover] "), "{err}");

    assert_eq!(ok(&["delete", "res"]), "");
    refused(&["show", "res"], "VNET named res not found.");
    refused(
        &["rmar", "lan"],
        "Command rmar requires 2 parameters to run.",
    );
    refused(&["show"], "Command show requires one parameter to run");
}

#[test]
fn onevnet_through_a_follower_writes_on_the_leader() {
    let zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let follower = &zone.servers[(leader + 1) % 3];
    let lead = &zone.servers[leader];
    let dir = tempfile::tempdir().unwrap();
    let write = |args: &[&str]| follower.cli(Kind::Vnet, args).ok();
    let read = |args: &[&str]| lead.cli(Kind::Vnet, args).ok();
    let a = file(
        dir.path(),
        "a.tmpl",
        "NAME = a\nVN_MAD = dummy\nBRIDGE = br0\n",
    );
    let b = file(
        dir.path(),
        "b.tmpl",
        "NAME = b\nVN_MAD = dummy\nBRIDGE = br0\n",
    );
    assert_eq!(write(&["create", &a]), "ID: 0\n");
    assert_eq!(write(&["create", &b, "-c", "default"]), "ID: 1\n");
    zone.wait_until(DEADLINE, "both networks are READY", || {
        read(&["list", "-l", "STATE", "--no-header"]) == "rdy\nrdy\n"
    });

    // Without ranges, show keeps its wide rows to the end.
    let show = read(&["show", "a"]);
    assert!(
        show.ends_with(
            "\nADDRESS RANGE POOL\n\nLEASES\nAR  OWNER        MAC    IP PORT_FORWARD   IP6\n\n\
             VIRTUAL ROUTERS\n\nVIRTUAL MACHINES\nUPDATED                  :\n\
             OUTDATED                 :\nERROR                    :\n"
        ),
        "{show}"
    );

    // The deprecated one-address ranges.
    assert_eq!(write(&["addleases", "a", "10.9.0.1"]), "");
    let (code, _, err) = follower
        .cli(Kind::Vnet, &["rmleases", "a", "10.9.0.2"])
        .parts();
    assert_eq!(
        (code, err.as_str()),
        (255, "No single IP Address Range found with IP 10.9.0.2\n")
    );
    zone.wait_until(DEADLINE, "the follower has the range", || {
        follower
            .cli(Kind::Vnet, &["show", "a"])
            .parts()
            .1
            .contains("\nAR 0\n")
    });
    assert_eq!(write(&["hold", "a", "10.9.0.1"]), "");
    zone.wait_until(DEADLINE, "the leader has the lease", || {
        read(&["show", "a"]).contains("\n0   V:-1       02:00:0a:09:00:01 10.9.0.1")
    });
    assert_eq!(
        read(&["list", "-l", "NAME,LEASES", "-n"]),
        "NAME            LEASES\nb                    0\na                    1\n"
    );

    // Both deleted at once, by a range: the refusal does not stop the other.
    let (code, _, err) = follower.cli(Kind::Vnet, &["delete", "0..1"]).parts();
    assert_eq!(
        (code, err.as_str()),
        (
            255,
            "[one.vn.delete] Cannot delete virtual network. Can not remove a virtual network \
             with leases in use\n"
        )
    );
    zone.wait_until(DEADLINE, "b is gone", || {
        read(&["list", "--no-header", "-l", "NAME"]) == "a\n"
    });
    assert_eq!(write(&["release", "a", "10.9.0.1"]), "");
    assert_eq!(write(&["rmleases", "a", "10.9.0.1"]), "");
    assert_eq!(write(&["delete", "a"]), "");
    zone.wait_until(DEADLINE, "the networks are gone", || {
        read(&["list", "--no-header"]).is_empty()
    });
}
