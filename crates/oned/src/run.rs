//! Start-up and shut-down of one server.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use consensus::{
    LogStore, PeerAuth, PeerNetwork, Proposer, Raft, ReadBarrier, ServerNode, StateMachine,
};
use openraft::{ServerState, SnapshotPolicy};
use sqlstore::{BootstrapParams, ReadPool};
use tracing::{info, warn};

use crate::api::Ctx;
use crate::auth::{hash_password_blocking, Authenticator};
use crate::cluster::{Cluster, Ha};
use crate::config::{Config, Paths};
use crate::credentials;
use crate::hooks::Hooks;
use crate::http::{router, AppState};

/// Per-server flag: the history a solo server wrote outside the log has been folded into a
/// snapshot, so servers that join later receive it.
const SEALED: &str = "solo_history_sealed";

fn raft_config(c: &Config) -> anyhow::Result<openraft::Config> {
    let e = c.raft.election_timeout.as_millis() as u64;
    let hb = c.raft.broadcast_timeout.as_millis() as u64;
    let cfg = openraft::Config {
        cluster_name: format!("opennebula-zone-{}", c.zone_id),
        heartbeat_interval: hb,
        // A follower campaigns E..4E/3 after the last heartbeat: OpenNebula's timeout, randomised.
        election_timeout_min: e / 3,
        election_timeout_max: 2 * e / 3,
        install_snapshot_timeout: (c.raft.xmlrpc_timeout.as_millis() as u64).max(10_000),
        snapshot_policy: SnapshotPolicy::LogsSinceLast((c.raft.log_retention / 2).max(1)),
        // Purging follows LOG_RETENTION / LIMIT_PURGE / LOG_PURGE_TIMEOUT (retention.rs).
        max_in_snapshot_log_to_keep: u64::MAX,
        replication_lag_threshold: 1000,
        ..Default::default()
    };
    cfg.validate().context("RAFT settings")
}

/// Runs the server on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    paths: Paths,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&paths.var)
        .with_context(|| format!("creating {}", paths.var.display()))?;
    // Before anything opens a state file; `var/` itself becomes 0700 here (and says so).
    tighten_var(&paths)?;
    // Held while this oned runs: a second oned, or `onedb restore`, on this directory refuses.
    let lock_path = paths.var.join(wire::files::LOCK);
    let _lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(sqlstore::files::FILE_MODE)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if _lock.try_lock().is_err() {
        bail!(
            "another oned runs on {} (lock {} is held)",
            paths.var.display(),
            lock_path.display()
        );
    }
    // Bad certificates stop the start, before anything else happens.
    let tls = match &config.tls {
        Some(t) => Some((crate::tls::server_config(t)?, crate::tls::client_config(t)?)),
        None => None,
    };
    let client_tls = tls.as_ref().map(|(_, client)| client.clone());
    let (admin_name, admin_password) = credentials::load_or_create_one_auth(&paths.one_auth())?;
    let zone_key = credentials::load_or_create_one_key(&paths.one_key())?;

    let hooks = Hooks::new(
        config.leader_hook.as_ref(),
        config.follower_hook.as_ref(),
        &paths.remotes,
    );
    let state_path = paths.state_db();
    let mut conn = sqlstore::open_state(&state_path)?;
    let bootstrapped = sqlstore::is_bootstrapped(&conn).context("reading the state database")?;
    if !bootstrapped && config.is_solo() {
        let hash = |p: &str| hash_password_blocking(p).map_err(anyhow::Error::msg);
        sqlstore::bootstrap(
            &mut conn,
            &BootstrapParams {
                oneadmin_name: &admin_name,
                oneadmin_password_hash: &hash(&admin_password)?,
                serveradmin_password_hash: &hash(&credentials::random_hex(16))?,
                zone_endpoint: &format!(
                    "{}://localhost:{}/RPC2",
                    if tls.is_some() { "https" } else { "http" },
                    config.port
                ),
            },
        )
        .context("bootstrapping the database")?;
        info!("bootstrapped a new database");
    }
    if !config.is_solo() {
        // In a zone the fsynced log makes a write durable; the state database is rebuilt from it
        // (or from the local snapshot) after a power loss, so applying need not fsync too.
        // A solo server has no log: its database stays fully synchronous.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .context("setting the state database's synchronous mode")?;
    }
    let pool = ReadPool::new(&state_path);
    let sm =
        StateMachine::new(&state_path, conn, &paths.snapshots()).map_err(anyhow::Error::msg)?;

    let (cluster, peers) = if config.is_solo() {
        info!("oned started in solo mode");
        (Cluster::Solo(sm.solo_writer()), None)
    } else {
        let id = config.server_id as u64;
        let raft_db = paths.raft_db();
        let log = LogStore::open(&raft_db).map_err(anyhow::Error::msg)?;
        log.check_server_id(id).map_err(anyhow::Error::msg)?;
        let pristine = log.is_pristine().map_err(anyhow::Error::msg)?;
        let flags = LogStore::open(&raft_db).map_err(anyhow::Error::msg)?;
        if !bootstrapped {
            // Nothing here predates the log: whatever arrives comes from the leader.
            flags.set_flag(SEALED).map_err(anyhow::Error::msg)?;
        }
        sm.recover_from_snapshot_if_behind(log.purged_index().map_err(anyhow::Error::msg)?)
            .map_err(anyhow::Error::msg)
            .context("recovering the state database")?;
        let log_last = log.last_index().map_err(anyhow::Error::msg)?;
        sm.cover_restored_state(log_last)
            .map_err(anyhow::Error::msg)
            .context("snapshotting a restored database")?;
        let net = PeerNetwork::new(
            peerauth::ZoneKey::new(&zone_key),
            id,
            config.raft.xmlrpc_timeout,
            client_tls.clone(),
        )
        .context("building the peer HTTP client")?;
        let raft = Raft::new(id, Arc::new(raft_config(&config)?), net, log, sm)
            .await
            .context("starting Raft")?;
        info!(server = id, "oned started in follower mode");

        if pristine {
            let zone = {
                let pool = pool.clone();
                let zid = config.zone_id;
                tokio::task::spawn_blocking(move || pool.with(|c| sqlstore::load_zone(c, zid)))
                    .await??
            };
            let servers = zone.map(|z| z.servers).unwrap_or_default();
            let me = servers.iter().find(|s| s.id == config.server_id);
            match me {
                Some(me) if bootstrapped && servers.len() == 1 => {
                    let node = ServerNode {
                        name: me.name.clone(),
                        rpc: me.endpoint.clone(),
                    };
                    info!(server = id, node = %node, "initializing a new zone with this server as its only member");
                    raft.initialize(BTreeMap::from([(id, node)]))
                        .await
                        .context("initializing Raft")?;
                }
                _ if bootstrapped && me.is_none() && servers.is_empty() => {
                    bail!(
                        "SERVER_ID = {} is not in zone {}'s server pool: run `onezone server-add {} --name <name> --rpc <endpoint>` on the solo server first",
                        config.server_id, config.zone_id, config.zone_id
                    );
                }
                _ => info!(
                    "waiting for the leader to add this server to the zone (onezone server-add)"
                ),
            }
        }
        if !flags.flag(SEALED).map_err(anyhow::Error::msg)? {
            tokio::spawn(seal_solo_history(raft.clone(), flags));
        }
        crate::membership::spawn(raft.clone(), pool.clone(), config.zone_id);
        crate::retention::spawn(raft.clone(), &config.raft);
        spawn_state_logger(raft.clone());
        let proposer = Proposer::start(
            raft.clone(),
            config.write_deadline(),
            config.limits.max_txn_bytes(),
        );
        let reads = ReadBarrier::start(raft.clone(), config.write_deadline());
        let stepped_down = consensus::step_down::start(
            raft.clone(),
            config.raft.election_timeout,
            config.raft.broadcast_timeout,
        );
        let leader_ready = crate::hooks::spawn(hooks.clone(), raft.clone(), stepped_down.clone());
        let peers = Some((
            raft.clone(),
            PeerAuth::new(peerauth::ZoneKey::new(&zone_key), id),
        ));
        (
            Cluster::Ha(Ha {
                raft,
                proposer,
                reads,
                stepped_down,
                leader_ready,
                server_id: id,
                raft_db,
            }),
            peers,
        )
    };

    crate::monitor::spawn(cluster.clone(), pool.clone());
    crate::scheduler::spawn(cluster.clone(), pool.clone());
    let mut http = reqwest::Client::builder()
        .tcp_nodelay(true)
        // Below the leader's KEEPALIVE_TIMEOUT: a forwarded write never goes out on a connection
        // the leader is closing as idle.
        .pool_idle_timeout(std::time::Duration::from_secs(5));
    if let Some(t) = client_tls {
        // Writes forwarded to the leader's /RPC2: HTTPS only, the leader checked against the CA.
        http = http.use_preconfigured_tls(t).https_only(true);
    }
    let http = http.build().context("building the HTTP client")?;
    let auth = Arc::new(
        tokio::task::spawn_blocking(Authenticator::new)
            .await
            .context("preparing password checks")?
            .map_err(anyhow::Error::msg)
            .context("preparing password checks")?,
    );
    let state = Arc::new(AppState {
        ctx: Ctx {
            config: config.clone(),
            pool,
            cluster: cluster.clone(),
            http,
            auth,
        },
        peers,
        paths: paths.clone(),
        large_calls: Arc::new(tokio::sync::Semaphore::new(crate::http::LARGE_CALLS)),
        tls: tls.is_some(),
        peer_reads: Arc::new(tokio::sync::Semaphore::new(crate::http::PEER_READS)),
    });
    let addr = listener.local_addr().ok();
    crate::listener::check_fd_limit(&config.limits);
    let gate = crate::listener::Gate::new(config.limits.clone());
    let acceptor = match tls {
        None => {
            info!(address = ?addr, "serving /RPC2");
            None
        }
        Some((server_tls, _)) => {
            info!(address = ?addr, "serving /RPC2 over TLS");
            Some(tokio_rustls::TlsAcceptor::from(server_tls))
        }
    };
    crate::listener::serve(listener, router(state), gate, acceptor, shutdown)
        .await
        .context("serving HTTP")?;
    info!("shutting down");
    if let Some(raft) = cluster.raft() {
        // Release what the leader hook took (the floating IP) before going away.
        hooks.run_follower().await;
        if tokio::time::timeout(Duration::from_secs(5), raft.shutdown())
            .await
            .is_err()
        {
            warn!("Raft did not stop within 5 s");
        }
    }
    Ok(())
}

/// Gives the state files a previous version (or an operator) left wider than 0600 the modes
/// new ones get: `var/`, `var/snapshots` and `var/.one` 0700; the files directly in `var/`
/// (`one.db`, `raft.db` and their `-wal`/`-shm`, `oned.log`, `oned.lock`, backups and temporary
/// files) and in those two folders 0600. Other folders under `var/` (hook scripts in `remotes`)
/// are left alone: they are not ours to narrow.
fn tighten_var(paths: &Paths) -> anyhow::Result<()> {
    use sqlstore::files::{tighten, DIR_MODE, FILE_MODE};
    let fix = |path: &std::path::Path, allowed: u32| -> anyhow::Result<()> {
        if let Some(old) = tighten(path, allowed)
            .with_context(|| format!("changing the mode of {}", path.display()))?
        {
            info!(
                path = %path.display(),
                old = format!("{old:o}"),
                new = format!("{:o}", old & allowed),
                "tightened the mode of a state file"
            );
        }
        Ok(())
    };
    for dir in [paths.var.clone(), paths.snapshots(), paths.var.join(".one")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        fix(&dir, DIR_MODE)?;
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                fix(&e.path(), FILE_MODE)?;
            }
        }
    }
    Ok(())
}

/// Folds a solo server's history (written outside the log) into a snapshot and purges the log
/// below it, so a server added later starts from that snapshot instead of an incomplete log.
async fn seal_solo_history(raft: Raft, flags: LogStore) {
    let leading = raft
        .wait(None)
        .metrics(
            |m| m.state == ServerState::Leader && m.last_applied.is_some(),
            "leader",
        )
        .await;
    if leading.is_err() {
        return;
    }
    if raft.trigger().snapshot().await.is_err() {
        return;
    }
    let Ok(m) = raft
        .wait(None)
        .metrics(|m| m.snapshot.is_some(), "snapshot")
        .await
    else {
        return;
    };
    let Some(snap) = m.snapshot else { return };
    if raft.trigger().purge_log(snap.index).await.is_err() {
        return;
    }
    let purged = raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= snap.index),
            "purged",
        )
        .await;
    if purged.is_ok() {
        match flags.set_flag(SEALED) {
            Ok(()) => info!(index = snap.index, "solo history sealed into a snapshot"),
            Err(e) => warn!(error = %e, "could not record the sealed snapshot"),
        }
    }
}

/// Logs leadership, term and membership changes at info: the story an operator reads in oned.log.
fn spawn_state_logger(raft: Raft) {
    tokio::spawn(async move {
        let mut rx = raft.metrics();
        let mut last: Option<(ServerState, u64, Option<u64>, String)> = None;
        loop {
            let (state, term, leader, members) = {
                let m = rx.borrow_and_update();
                (
                    m.state,
                    m.current_term,
                    m.current_leader,
                    m.membership_config.membership().to_string(),
                )
            };
            let now = (state, term, leader, members.clone());
            if last.as_ref() != Some(&now) {
                let old = last.as_ref();
                if old.map(|o| o.0) != Some(state) {
                    info!(state = ?state, term, "state changed");
                }
                if old.map(|o| o.1) != Some(term) {
                    info!(term, "term changed");
                }
                if old.map(|o| o.2) != Some(leader) {
                    info!(leader = ?leader, term, "leader changed");
                }
                if old.map(|o| o.3.clone()) != Some(members.clone()) {
                    info!(membership = %members, "membership changed");
                }
                last = Some(now);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}
