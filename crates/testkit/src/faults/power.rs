//! Power cuts (issue 18): each server's `var/` is on its own lossy filesystem
//! ([`lossyfs::Mount`]); a cut SIGKILLs the server and every process of that machine (an
//! `onedb` run), then its disk forgets every write, create, rename and unlink not made durable.
//!
//! Each step is a trial: the zone must come back by itself, and the round's checks then hold
//! (no acknowledged write lost, identical replicas, votes that never go backwards). A backup
//! that `onedb` reported done before the cut must still restore after it.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::round::{find_leader, log, members, resolve};
use super::schedule::Target;
use crate::zone::{Server, Zone};

/// Numbers the backup files of a round.
static FILES: AtomicU64 = AtomicU64::new(0);

/// The `onedb` binary built next to `oned`.
fn onedb_binary() -> PathBuf {
    let onedb = crate::oned_binary().with_file_name("onedb");
    assert!(
        onedb.exists(),
        "{} not found: build it (cargo build -p cli)",
        onedb.display()
    );
    onedb
}

/// `onedb <verb>` with the server's database options, then `args`.
fn onedb(s: &Server, verb: &str, args: &[&OsStr]) -> Command {
    let mut c = Command::new(onedb_binary());
    c.arg(verb);
    match &s.db {
        None => {
            c.arg("-s").arg(s.location().join("var/one.db"));
        }
        Some(m) => {
            c.args(["-S", &m.host, "-P", &m.port.to_string(), "-u", &m.user])
                .args(["-p", &m.password, "-d", &m.db_name]);
        }
    }
    c.args(args)
        .env("ONE_LOCATION", s.location())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(child: Child) -> (bool, String) {
    match child.wait_with_output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// When to cut during an `onedb` run: within its first `span`, drawn from the step's hold (a
/// restore of the test's databases takes about 50-150 ms, a backup of a busy server 200-600).
fn cut_delay(hold: Duration, span: Duration) -> Duration {
    Duration::from_millis(hold.as_millis() as u64 % span.as_millis().max(1) as u64)
}

/// Runs `command` until it ends or `cut` has passed, when it is killed (the power cut).
/// `Some((succeeded, its output))` if it ended first, `None` if it was cut while running.
fn run_until_cut(mut command: Command, cut: Duration) -> Result<Option<(bool, String)>, String> {
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {command:?}: {e}"))?;
    let start = Instant::now();
    let ended = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break true;
        }
        if start.elapsed() >= cut {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let outcome = finish(child);
    Ok(ended.then_some(outcome))
}

/// Cuts the power of `servers` at once (all killed before any disk forgets), restarts them
/// after `hold`.
pub(super) fn cut(zone: &mut Zone, servers: &[usize], hold: Duration, epoch: Instant) {
    log(epoch, &format!("power cut of servers {servers:?}"));
    for &i in servers {
        zone.servers[i].kill();
    }
    for &i in servers {
        zone.servers[i].power_cut();
    }
    std::thread::sleep(hold);
    for &i in servers {
        log(epoch, &format!("power back on server {i}"));
        zone.servers[i].start();
    }
}

/// Cuts the leader; as soon as another member reports a newer term (it asks for votes, or has
/// granted one), cuts every member; restarts them after `hold`.
pub(super) fn cut_during_election(zone: &mut Zone, hold: Duration, epoch: Instant) {
    let Some(leader) = find_leader(zone, Duration::from_secs(5)) else {
        log(epoch, "election: no leader, skipped");
        return;
    };
    let term = zone.servers[leader].raft_status().map_or(0, |r| r.term);
    log(
        epoch,
        &format!("power cut of leader {leader} (term {term})"),
    );
    zone.servers[leader].power_cut();
    let others: Vec<usize> = members(zone).into_iter().filter(|&i| i != leader).collect();
    let start = Instant::now();
    let voting = loop {
        let newer = others
            .iter()
            .copied()
            .find(|&i| zone.servers[i].raft_status().is_some_and(|r| r.term > term));
        if newer.is_some() || start.elapsed() > Duration::from_secs(5) {
            break newer;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    log(
        epoch,
        &format!("a new term on server {voting:?}: power cut of {others:?}"),
    );
    for &i in &others {
        zone.servers[i].power_cut();
    }
    std::thread::sleep(hold);
    for i in members(zone) {
        log(epoch, &format!("power back on server {i}"));
        zone.servers[i].start();
    }
}

/// The members a minority cut takes: 1 of 3, 2 of 5, from the n-th member on.
pub(super) fn minority(zone: &Zone, n: usize) -> Vec<usize> {
    let all = members(zone);
    let k = (all.len() - 1) / 2;
    (0..k).map(|j| all[(n + j) % all.len()]).collect()
}

/// `onedb backup` on the target while it serves, and the power cut after `hold`, the backup
/// maybe still running. A backup reported done before the cut must restore after it.
pub(super) fn cut_during_backup(
    zone: &mut Zone,
    t: Target,
    hold: Duration,
    epoch: Instant,
) -> Vec<String> {
    let i = resolve(zone, t);
    let file = zone.servers[i].location().join(format!(
        "var/power-{}.bck",
        FILES.fetch_add(1, Ordering::Relaxed)
    ));
    log(epoch, &format!("onedb backup on server {i} ({t:?})"));
    let backup = onedb(&zone.servers[i], "backup", &[file.as_os_str()]);
    let ended = match run_until_cut(backup, cut_delay(hold, Duration::from_millis(800))) {
        Ok(ended) => ended,
        Err(e) => return vec![e],
    };
    let done = ended.as_ref().map(|(ok, _)| *ok);
    let out = ended.map(|(_, out)| out).unwrap_or_default();
    log(
        epoch,
        &format!(
            "power cut of server {i} with the backup {}",
            match done {
                None => "still running",
                Some(true) => "done",
                Some(false) => "failed",
            }
        ),
    );
    zone.servers[i].power_cut();
    let mut violations = Vec::new();
    if done == Some(true) && zone.servers[i].db.is_some() {
        if let Err(e) = sqlstore::verify_dump(&file) {
            violations.push(format!(
                "a dump onedb reported done on server {i} ({}) is refused after a power cut: {e}",
                out.trim()
            ));
        }
    } else if done == Some(true) {
        let scratch = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => return vec![format!("a scratch directory: {e}")],
        };
        let restored = scratch.path().join("one.db");
        let check = Command::new(onedb_binary())
            .arg("restore")
            .arg("-f")
            .arg("-s")
            .arg(&restored)
            .arg(&file)
            .stdin(Stdio::null())
            .output();
        match check {
            Ok(o) if o.status.success() => {}
            Ok(o) => violations.push(format!(
                "a backup onedb reported done on server {i} ({}) does not restore after a power cut: {}{}",
                out.trim(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => violations.push(format!("running onedb restore: {e}")),
        }
    } else if done == Some(false) {
        violations.push(format!(
            "onedb backup failed on a running server {i}: {out}"
        ));
    }
    std::thread::sleep(hold);
    log(epoch, &format!("power back on server {i}"));
    zone.servers[i].start();
    violations
}

/// Copies `from` to `to` and makes the copy durable, as an operator's `scp` and `sync` would.
fn copy_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::copy(from, to)?;
    fs::File::open(to)?.sync_all()?;
    if let Some(dir) = to.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The guide's restore of a follower (a leader's backup, `onedb restore -f` on the stopped
/// follower, `onezone server-reset`, start) with a power cut of the follower at a random moment
/// of the restore. The restore is run again to its end or not, as the hold's parity says: the
/// follower must come back from the old state as from the new.
pub(super) fn cut_during_restore(
    zone: &mut Zone,
    n: usize,
    hold: Duration,
    epoch: Instant,
) -> Vec<String> {
    let Some(leader) = find_leader(zone, Duration::from_secs(10)) else {
        log(epoch, "restore: no leader, skipped");
        return Vec::new();
    };
    let followers: Vec<usize> = members(zone).into_iter().filter(|&i| i != leader).collect();
    let f = followers[n % followers.len()];
    let k = FILES.fetch_add(1, Ordering::Relaxed);
    let source = zone.servers[leader]
        .location()
        .join(format!("var/restore-{k}.bck"));
    log(epoch, &format!("onedb backup on leader {leader}"));
    let backup = onedb(&zone.servers[leader], "backup", &[source.as_os_str()]).output();
    match backup {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return vec![format!(
                "onedb backup failed on leader {leader}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )]
        }
        Err(e) => return vec![format!("running onedb backup: {e}")],
    }
    let file = zone.servers[f]
        .location()
        .join(format!("var/restore-{k}.bck"));
    if let Err(e) = copy_durably(&source, &file) {
        return vec![format!("copying the backup to server {f}: {e}")];
    }
    log(
        epoch,
        &format!("power cut of follower {f}, then onedb restore on it"),
    );
    zone.servers[f].power_cut();
    zone.servers[f].start_own_mariadb();
    let restore = onedb(
        &zone.servers[f],
        "restore",
        &["-f".as_ref(), file.as_os_str()],
    );
    // A restore on MySQL is DDL (DROP and CREATE of every table), which MariaDB cannot make
    // crash-safe without the kernel's writeback (see `Server::write_back_db_disk`): it runs to
    // its end and has its writeback, and the cut comes after it.
    let ddl = zone.servers[f].has_db_disk();
    let cut_after = if ddl {
        Duration::from_secs(600)
    } else {
        cut_delay(hold, Duration::from_millis(200))
    };
    let ended = match run_until_cut(restore, cut_after) {
        Ok(ended) => ended,
        Err(e) => return vec![e],
    };
    let done = ended.is_some();
    let mut violations = Vec::new();
    match ended {
        Some((true, _)) => {
            if ddl {
                zone.servers[f].write_back_db_disk();
            }
            log(epoch, &format!("restore done on server {f}; power cut"))
        }
        Some((false, out)) => violations.push(format!("onedb restore failed on server {f}: {out}")),
        None => log(
            epoch,
            &format!("power cut of server {f} during its restore"),
        ),
    }
    zone.servers[f].power_cut();
    if !done && hold.as_millis().is_multiple_of(2) {
        zone.servers[f].start_own_mariadb();
        log(
            epoch,
            &format!("onedb restore on server {f} again, to its end"),
        );
        match onedb(
            &zone.servers[f],
            "restore",
            &["-f".as_ref(), file.as_os_str()],
        )
        .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => violations.push(format!(
                "onedb restore after a cut restore failed on server {f}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => violations.push(format!("running onedb restore: {e}")),
        }
    }
    let (code, out, err) = zone.onezone(leader, &["server-reset", "0", &f.to_string()]);
    if code != 0 {
        log(epoch, &format!("server-reset failed ({code}): {out}{err}"));
    }
    log(epoch, &format!("start server {f}"));
    zone.servers[f].start();
    violations
}
