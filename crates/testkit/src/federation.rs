//! Two zones federated on loopback with OpenNebula's procedure, for the tests and the
//! federated fault round: a master zone (`MODE = "MASTER"`), `onezone create` of zone 100
//! there, `onedb backup --federated`, and the slave's first server restored from it with the
//! master's `one_auth`, started in SLAVE mode.

use std::sync::Arc;

use crate::proxy::Network;
use crate::tls::TestCa;
use crate::zone::{Server, Setup, Zone};

/// `onedb` with `args`; panics with its output if it fails.
pub fn onedb(args: &[String]) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::onedb::run(args, &mut out, &mut err);
    assert_eq!(
        code,
        0,
        "onedb {args:?}: {}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
}

/// `onedb`'s options naming `server`'s state database (SQLite file or MySQL database).
pub fn db_args(server: &Server) -> Vec<String> {
    match &server.db {
        Some(m) => [
            "-S",
            &m.host,
            "-P",
            &m.port.to_string(),
            "-u",
            &m.user,
            "-p",
            &m.password,
            "-d",
            &m.db_name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        None => vec![
            "-s".into(),
            server.location().join("var/one.db").display().to_string(),
        ],
    }
}

/// A master zone of `n` servers (behind `master_net`'s link proxies, if given) and a solo
/// server set up as slave zone 100 of it (behind `slave_net`'s), stopped. The slave's
/// MASTER_ONED is the master's server 0.
pub fn master_and_slave(
    n: usize,
    master_net: Option<Network>,
    slave_net: Option<Network>,
) -> (Zone, Zone) {
    master_and_slave_with(n, master_net, slave_net, None)
}

/// [`master_and_slave`], every server of both zones with a certificate of `ca` if given
/// (`TLS = [...]`, https endpoints).
pub fn master_and_slave_with(
    n: usize,
    master_net: Option<Network>,
    slave_net: Option<Network>,
    ca: Option<Arc<TestCa>>,
) -> (Zone, Zone) {
    let tls = ca.clone();
    let master_setup: Setup = Box::new(move |i, s| {
        s.federation_mode = "MASTER";
        if let Some(ca) = &tls {
            s.tls = Some(ca.issue(&format!("master-{i}")));
        }
    });
    let master = Zone::bootstrap_custom(n, master_net, Some(master_setup));
    let master_endpoint = master.servers[0].endpoint();
    let slave_setup: Setup = Box::new(move |i, s| {
        s.federation_mode = "SLAVE";
        s.zone_id = 100;
        s.master_oned = master_endpoint.clone();
        if let Some(ca) = &ca {
            s.tls = Some(ca.issue(&format!("slave-{i}")));
        }
    });
    let mut slave = Zone::solo_custom(slave_net, Some(slave_setup));
    slave.servers[0].stop();
    (master, slave)
}

/// The documented procedure: `onezone create` of the slave zone on the master (ENDPOINT: the
/// slave's first server), `onedb backup --federated` there, `onedb restore --federated` on the
/// slave's server with the master's `one_auth`, then the slave starts in SLAVE mode.
pub fn federate(master: &Zone, slave: &mut Zone) {
    eprintln!("--- on the master: onezone create, then onedb backup --federated");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tmpl = dir.path().join("slave.tmpl");
    std::fs::write(
        &tmpl,
        format!(
            "NAME = \"slave\"\nENDPOINT = \"{}\"\n",
            slave.servers[0].endpoint()
        ),
    )
    .expect("the zone template");
    let leader = master.leader();
    let (code, out, err) = master.onezone(leader, &["create", &tmpl.display().to_string()]);
    assert_eq!((code, out.as_str()), (0, "ID: 100\n"), "{err}");
    master.wait_caught_up();
    let backup = dir.path().join("fed.bck");
    let mut args = vec!["backup".to_string(), "--federated".into()];
    args.extend(db_args(&master.servers[leader]));
    args.push(backup.display().to_string());
    onedb(&args);

    eprintln!("--- on the slave: onedb restore --federated, start in SLAVE mode");
    let mut args = vec!["restore".to_string(), "--federated".into()];
    args.extend(db_args(&slave.servers[0]));
    args.push(backup.display().to_string());
    onedb(&args);
    // The zones share oneadmin: the slave's `.one/one_auth` is the master's, as the
    // procedure copies it.
    std::fs::copy(
        master.servers[0].location().join("var/.one/one_auth"),
        slave.servers[0].location().join("var/.one/one_auth"),
    )
    .expect("copying one_auth");
    slave.servers[0].start();
}
