//! Zones with `TLS = [ CERT_FILE, KEY_FILE, CA_FILE ]` (issue 10, point 7).

use std::sync::Arc;

use testkit::tls::{https_post, TestCa};

use super::zone::*;

#[test]
fn tls_zone_commits_fails_over_and_refuses_a_server_outside_the_ca() {
    let ca = Arc::new(TestCa::new("OneHA zone CA"));
    let mut zone = Zone::bootstrap_custom(3, None, Some(ca.setup()));
    let leader = zone.leader();
    assert!(zone.servers[leader].endpoint().starts_with("https://"));

    eprintln!("--- writes commit over TLS, through a follower too");
    let client = zone.servers[leader].client();
    for n in 0..5 {
        allocate(&client, &format!("tls-{n}")).unwrap();
    }
    let follower = (0..3).find(|&i| i != leader).unwrap();
    allocate(&zone.servers[follower].client(), "tls-forwarded").unwrap();
    zone.wait_caught_up();

    eprintln!("--- kill the leader: the others elect a new one over TLS and keep committing");
    zone.servers[leader].kill();
    let new_leader = zone.leader();
    assert_ne!(new_leader, leader);
    allocate(&zone.servers[new_leader].client(), "tls-after-failover").unwrap();
    zone.servers[leader].start();
    zone.wait_caught_up();

    eprintln!("--- peer calls need a client certificate of the zone's CA");
    let leader = zone.leader();
    let raft = zone.servers[leader]
        .endpoint()
        .replace("/RPC2", "/raft/vote");
    let (status, body) = https_post(&raft, &ca.ca_file(), None, b"").unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("client certificate"), "{body}");
    let rogue_ca = TestCa::new("not the zone's CA");
    let rogue = rogue_ca.issue("rogue");
    let refused = https_post(&raft, &ca.ca_file(), Some(&rogue), b"");
    assert!(
        refused.is_err(),
        "a foreign client certificate passed: {refused:?}"
    );
    // With a certificate of the CA, the call gets as far as the zone key's MAC.
    let member = ca.issue("member");
    let (status, body) = https_post(&raft, &ca.ca_file(), Some(&member), b"").unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("missing or malformed x-oneha-"), "{body}");

    eprintln!("--- serversync over TLS presents the local server's certificate");
    let other = (0..3).find(|&i| i != leader).unwrap();
    let files = zone.servers[other].tls.clone().unwrap();
    let mut local = cli::serversync::Local {
        zone_id: 0,
        server_id: other as i64,
        tls: Some(cli::serversync::PeerTls {
            cert_file: files.cert_file,
            key_file: files.key_file,
            ca_file: files.ca_file,
        }),
        ..cli::serversync::Local::at(zone.servers[other].location())
    };
    let mut out = Vec::new();
    cli::serversync::run(&local, &leader.to_string(), false, false, &mut out).unwrap();
    assert!(
        String::from_utf8_lossy(&out).contains("Checking"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    local.tls = None;
    let err = cli::serversync::run(&local, &leader.to_string(), false, false, &mut Vec::new())
        .unwrap_err();
    assert!(err.contains("Cannot reach"), "{err}");

    eprintln!("--- a server whose certificate another CA signed never joins");
    let i = zone.prepare_server();
    zone.servers[i].tls = Some(rogue_ca.issue(&format!("server-{i}")));
    // It trusts the zone's CA, so only its own certificate is wrong.
    zone.servers[i].tls.as_mut().unwrap().ca_file = ca.ca_file();
    zone.servers[i].write_conf();
    zone.server_add(i);
    // Not start(): its probe trusts the zone's CA, which the rogue's certificate fails.
    zone.servers[i].spawn();
    zone.wait_until(
        DEADLINE,
        "the leader's calls to the rogue server fail their TLS check",
        || {
            std::fs::read_to_string(zone.servers[i].log_path())
                .is_ok_and(|l| l.matches("TLS handshake refused").count() >= 3)
        },
    );
    let client = zone.servers[zone.leader()].client();
    allocate(&client, "tls-with-rogue").unwrap();
    let rogue_client = cli::Client::new(
        zone.servers[i].endpoint(),
        zone.servers[i].session(),
        STATUS_TIMEOUT,
    )
    .with_ca_file(Some(rogue_ca.ca_file()));
    // Nothing reached it: its database is still empty, without even oneadmin.
    let (code, message) = one_error(rogue_client.call_xml("one.zone.raftstatus", vec![]));
    assert_eq!(code, AUTHENTICATION, "{message}");
    let log = std::fs::read_to_string(zone.servers[i].log_path()).unwrap();
    assert!(!log.contains("installed snapshot"), "{log}");
    assert!(!log.contains("state=Follower"), "{log}");
}

#[test]
fn onezone_over_https_needs_the_zones_ca() {
    let ca = Arc::new(TestCa::new("OneHA zone CA"));
    let zone = Zone::solo_custom(None, Some(ca.setup()));
    let endpoint = zone.servers[0].endpoint();
    let password = zone.servers[0].password();
    let ca_file = ca.ca_file().display().to_string();
    let base = [
        "show",
        "0",
        "--endpoint",
        &endpoint,
        "--user",
        "oneadmin",
        "--password",
        &password,
    ];

    eprintln!("--- without the CA the certificate is refused");
    let (code, _, err) = onezone(&base);
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    eprintln!("--- with --ca-file it works");
    let mut with_ca = base.to_vec();
    with_ca.extend(["--ca-file", &ca_file]);
    let (code, out, err) = onezone(&with_ca);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ZONE 0 INFORMATION"), "{out}");

    eprintln!("--- a CA file that is not there is a clear error");
    let mut missing = base.to_vec();
    missing.extend(["--ca-file", "/nonexistent/ca.crt"]);
    let (code, _, err) = onezone(&missing);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/ca.crt"), "{err}");

    eprintln!("--- the plain-HTTP endpoint is not served");
    let plain = endpoint.replace("https://", "http://");
    let mut http = base.to_vec();
    http[3] = &plain;
    http.extend(["--ca-file", &ca_file]);
    let (code, _, _) = onezone(&http);
    assert_ne!(code, 0);
}

#[test]
fn oned_refuses_to_start_with_unreadable_tls_files() {
    let ca = TestCa::new("OneHA zone CA");
    let mut files = ca.issue("server-0");
    let server = Server::new(-1);
    files.key_file = server.location().join("etc/missing.key");
    let conf = std::fs::read_to_string(server.conf_path()).unwrap() + &files.conf();
    std::fs::write(server.conf_path(), conf).unwrap();
    let (status, stderr) = run_oned_to_exit(server.location());
    assert!(!status.success());
    assert!(stderr.contains("TLS/KEY_FILE"), "{stderr}");
    assert!(stderr.contains("missing.key"), "{stderr}");

    eprintln!("--- a key that does not fit the certificate");
    let other = ca.issue("other");
    files.key_file = other.key_file;
    let conf = oned_conf(server.port, -1) + &files.conf();
    std::fs::write(server.conf_path(), conf).unwrap();
    let (status, stderr) = run_oned_to_exit(server.location());
    assert!(!status.success());
    assert!(stderr.contains("TLS/KEY_FILE"), "{stderr}");
}
