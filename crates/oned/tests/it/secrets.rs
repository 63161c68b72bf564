//! Issue 10: the state files are private (0600 files, 0700 folders) through snapshots, backups
//! and serversync fetches; concurrent `serversync --db` fetches all succeed; passwords are
//! stored as argon2id and OpenNebula's SHA-256 hashes are upgraded at the next login.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use xmlrpc::Value;

use crate::zone::{allocate, one_error, LogRetention, Server, Zone, AUTHENTICATION, DEADLINE};

/// Snapshots every 10 records, so a few writes take one on every server.
fn short_log(_: usize, s: &mut Server) {
    s.log = LogRetention {
        limit_purge: 1000,
        log_retention: 20,
        log_purge_timeout_s: 1,
    };
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every file and folder under `var`, with the ones that are not 0600 / 0700.
fn too_wide(var: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut seen = Vec::new();
    let mut wide = Vec::new();
    let mut stack = vec![var.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if mode(&dir) != 0o700 {
            wide.push(format!("{} {:o}", dir.display(), mode(&dir)));
        }
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(path);
            } else if t.is_file() {
                if mode(&path) != 0o600 {
                    wide.push(format!("{} {:o}", path.display(), mode(&path)));
                }
                seen.push(path);
            }
        }
    }
    (seen, wide)
}

fn assert_private(zone: &Zone, when: &str) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for s in &zone.servers {
        let (seen, wide) = too_wide(&s.location().join("var"));
        assert!(wide.is_empty(), "{when}: too wide: {wide:#?}");
        all.extend(seen);
    }
    all
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn onedb(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::onedb::run(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// `onezone serversync <from> --db` on the server whose `ONE_LOCATION` is `location`.
fn serversync_db(location: &Path, from: usize) -> Result<String, String> {
    let local = cli::serversync::Local {
        zone_id: 0,
        server_id: -1,
        tls: None,
        ..cli::serversync::Local::at(location)
    };
    let mut out = Vec::new();
    cli::serversync::run(&local, &from.to_string(), true, false, &mut out)
        .map(|()| String::from_utf8(out).unwrap())
}

#[test]
fn state_files_stay_private_through_snapshots_backups_and_serversync() {
    let mut zone = Zone::bootstrap_custom(3, None, Some(Box::new(short_log)));
    let leader = zone.leader();
    let other = (0..3).find(|&i| i != leader).unwrap();
    let client = zone.servers[leader].client();

    eprintln!("--- writes until every server has taken a snapshot");
    for n in 0..30 {
        allocate(&client, &format!("snap-{n}")).unwrap();
    }
    zone.wait_caught_up();
    zone.wait_until(DEADLINE, "every server has a snapshot", || {
        zone.servers
            .iter()
            .all(|s| s.location().join("var/snapshots/current.db").exists())
    });
    let files = assert_private(&zone, "after snapshots");
    let seen = names(&files);
    for expected in [
        "one.db",
        "one.db-wal",
        "raft.db",
        "raft.db-wal",
        "current.db",
        "one_auth",
        "one_key",
    ] {
        assert!(seen.iter().any(|n| n == expected), "{expected} in {seen:?}");
    }

    eprintln!("--- onedb backup on server {leader}, while it runs");
    let db = zone.servers[leader].location().join("var/one.db");
    let (code, out, err) = onedb(&["backup", "-s", db.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let files = assert_private(&zone, "after onedb backup");
    assert!(
        names(&files).iter().any(|n| n.ends_with(".bck")),
        "{files:?}"
    );

    eprintln!("--- 4 concurrent serversync --db fetches on stopped server {other}");
    zone.servers[other].stop();
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let location = zone.servers[other].location();
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(move || serversync_db(location, leader)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        let out = r.as_ref().unwrap();
        assert!(out.contains("database has been replaced"), "{out}");
    }
    let files = assert_private(&zone, "after serversync");
    let leftovers: Vec<_> = names(&files)
        .into_iter()
        .filter(|n| n.contains("serversync") || n.contains(".part") || n.contains(".restore"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    eprintln!("--- server {other} starts on the fetched database and catches up");
    zone.servers[other].start();
    allocate(&client, "after-serversync").unwrap();
    zone.wait_caught_up();

    eprintln!("--- modes widened by hand are tightened at the next start, and logged");
    zone.servers[other].stop();
    let var = zone.servers[other].location().join("var");
    for (p, m) in [
        (var.clone(), 0o755),
        (var.join("one.db"), 0o644),
        (var.join("raft.db"), 0o664),
        (var.join("snapshots/current.db"), 0o644),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    zone.servers[other].start();
    zone.wait_caught_up();
    assert_private(&zone, "after a restart");
    let log = std::fs::read_to_string(zone.servers[other].log_path()).unwrap();
    assert!(
        log.contains("tightened the mode of a state file"),
        "{}",
        crate::zone::tail(&zone.servers[other].log_path(), 30)
    );
}

fn password_of(client: &cli::Client, id: i64) -> String {
    let xml = client
        .call_xml("one.user.info", vec![Value::Int(id as i32)])
        .unwrap();
    let e = cli::xml::Element::parse(&xml).unwrap();
    e.text_of("PASSWORD").unwrap().to_string()
}

#[test]
fn passwords_are_argon2id_and_opennebula_sha256_hashes_are_upgraded_at_login() {
    let mut zone = Zone::solo();
    let admin = zone.servers[0].client();
    let id = allocate(&admin, "carol").unwrap();
    let stored = password_of(&admin, id);
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "one.user.info shows the stored hash: {stored}"
    );

    eprintln!("--- an OpenNebula database: carol's password as unsalted SHA-256");
    zone.servers[0].stop();
    let legacy = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b"opennebula-pw"))
    };
    let conn = sqlstore::rusqlite::Connection::open(zone.servers[0].location().join("var/one.db"))
        .unwrap();
    conn.execute(
        "UPDATE user_pool SET password = ?1 WHERE oid = ?2",
        sqlstore::rusqlite::params![legacy, id],
    )
    .unwrap();
    drop(conn);
    zone.servers[0].start();

    let wrong = zone.servers[0].client_as("carol", "wrong");
    let (code, _) = one_error(wrong.call("one.user.info", vec![Value::Int(id as i32)]));
    assert_eq!(code, AUTHENTICATION);
    assert_eq!(
        password_of(&admin, id),
        legacy,
        "a wrong password upgrades nothing"
    );
    let carol = zone.servers[0].client_as("carol", "opennebula-pw");
    password_of(&carol, id);
    zone.wait_until(DEADLINE, "carol's hash is upgraded to argon2id", || {
        password_of(&admin, id).starts_with("$argon2id$")
    });
    password_of(&carol, id);
    let (code, _) = one_error(wrong.call("one.user.info", vec![Value::Int(id as i32)]));
    assert_eq!(code, AUTHENTICATION);
}

/// In a zone the upgrade is a replicated write by the leader: a login on a follower leaves the
/// old hash (followers never write), a login on the leader replaces it on every server alike.
#[test]
fn in_a_zone_the_leader_upgrades_a_sha256_hash_for_every_server() {
    let mut zone = Zone::bootstrap(3);
    let leader = zone.leader();
    let id = allocate(&zone.servers[leader].client(), "dave").unwrap();
    zone.wait_caught_up();

    eprintln!("--- every server's database gets dave's password as OpenNebula's SHA-256");
    let legacy = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b"dave-pw"))
    };
    for i in 0..3 {
        zone.servers[i].stop();
    }
    for i in 0..3 {
        let conn =
            sqlstore::rusqlite::Connection::open(zone.servers[i].location().join("var/one.db"))
                .unwrap();
        conn.execute(
            "UPDATE user_pool SET password = ?1 WHERE oid = ?2",
            sqlstore::rusqlite::params![legacy, id],
        )
        .unwrap();
    }
    for i in 0..3 {
        zone.servers[i].start();
    }
    let leader = zone.leader();
    let follower = (0..3).find(|&i| i != leader).unwrap();

    eprintln!("--- dave logs in on follower {follower}: it answers, and writes nothing");
    let on_follower = zone.servers[follower].client_as("dave", "dave-pw");
    password_of(&on_follower, id);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let admin = zone.servers[leader].client();
    assert_eq!(password_of(&admin, id), legacy);

    eprintln!("--- dave logs in on leader {leader}: every server gets the same argon2id hash");
    password_of(&zone.servers[leader].client_as("dave", "dave-pw"), id);
    zone.wait_until(DEADLINE, "dave's hash upgraded on every server", || {
        let hashes: Vec<String> = (0..3)
            .map(|i| password_of(&zone.servers[i].client(), id))
            .collect();
        hashes[0].starts_with("$argon2id$") && hashes.iter().all(|h| h == &hashes[0])
    });
    password_of(&on_follower, id);
    let (code, _) = one_error(
        zone.servers[follower]
            .client_as("dave", "wrong")
            .call("one.user.info", vec![Value::Int(id as i32)]),
    );
    assert_eq!(code, AUTHENTICATION);
}
