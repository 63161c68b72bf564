//! Start-up and shut-down of one server, in phases that [`run`] lists: `open_state`, then
//! `start_solo` or `start_raft`, `start_tasks`, `serve` and `shut_down`.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use consensus::{
    FollowerReads, LogStore, PeerAuth, PeerNetwork, Proposer, Raft, ReadBarrier, ServerNode,
    StateMachine,
};
use openraft::{ServerState, SnapshotPolicy};
use sqlstore::{BootstrapParams, ReadPool};
use tracing::{info, warn};

use crate::api::Ctx;
use crate::auth::{hash_password_blocking, Authenticator};
use crate::cluster::{Cluster, Ha};
use crate::config::{Config, Paths};
use crate::credentials;
use crate::error::StartError;
use crate::hooks::{Hooks, LeaderReadySender};
use crate::http::{router, AppState};
use crate::leadership::{Leadership, LeadershipGone};
use crate::tasks::{Restart, Supervisor};

/// Per-server flag: the history a solo server wrote outside the log has been folded into a
/// snapshot, so servers that join later receive it.
const SEALED: &str = "solo_history_sealed";
/// How long an orderly shutdown waits for the background tasks, then again for Raft.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// Bounds of each wait of a handover at a stop: long enough for a follower a few entries
/// behind, short enough that a stop never hangs on it.
const HANDOVER_MIN: Duration = Duration::from_millis(500);
const HANDOVER_MAX: Duration = Duration::from_secs(2);

/// Entries per AppendEntries. A new leader (after a failover or a handover) does not know where
/// each follower's log matches its own: openraft 0.9 bisects the log, and every probe carries a
/// full payload of entries the follower already holds. At openraft's 300, with the log of a
/// busy zone (entries of ~3 KB), each probe moved ~1 MB and a planned stop took ~65 ms to the
/// next acknowledged write; at 32, ~20 ms. A follower catching up then takes ~100 KB per round
/// trip: 9,000 entries in 1.1 s instead of 0.6 s (docs/benchmarks.md, thirteenth round).
const MAX_PAYLOAD_ENTRIES: u64 = 32;

/// An index as the recovery line shows it.
fn shown(index: Option<u64>) -> String {
    index.map_or_else(|| "none".to_string(), |i| i.to_string())
}

fn raft_config(c: &Config) -> Result<openraft::Config, StartError> {
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
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        ..Default::default()
    };
    cfg.validate()
        .map_err(|e| StartError::RaftSettings(Box::new(e)))
}

/// Runs the server on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    paths: Paths,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let config = Arc::new(config);
    config.limits.publish();
    let (state, sm) = open_state(&config, &paths)?;
    let Zone {
        cluster,
        peers,
        ha,
        handover,
    } = if config.is_solo() {
        start_solo(sm)
    } else {
        start_raft(&config, &paths, &state, sm).await?
    };
    let hooks = Hooks::new(
        config.leader_hook.as_ref(),
        config.follower_hook.as_ref(),
        &paths.remotes,
    );
    let tasks = Supervisor::new();
    let api = ApiCtx::default();
    start_tasks(&tasks, &config, &state, &hooks, &cluster, ha, &paths, &api);
    // A leader that is asked to stop hands leadership over first, while it still serves: the
    // writes it holds meanwhile go to the new leader.
    let shutdown = async move {
        shutdown.await;
        if let Some(h) = handover {
            h.run().await;
        }
    };
    let served = serve(
        &config, &paths, &state, &cluster, peers, listener, shutdown, &api,
    )
    .await;
    shut_down(&tasks, &cluster, &hooks).await;
    served
}

/// The API's context, for the leader tasks that act as the API does (the scheduler leases the
/// addresses of NICs in auto mode as a deployment by hand would): set when the server starts
/// serving, which is after those tasks start.
pub type ApiCtx = Arc<std::sync::OnceLock<crate::api::Ctx>>;

/// HTTPS for the listener and for the calls this server makes.
struct Tls {
    server: Arc<rustls::ServerConfig>,
    client: rustls::ClientConfig,
}

/// The state directory, locked for this process, with what the later phases read from it.
struct OpenState {
    /// Held while this oned runs: a second oned, or `onedb restore`, on this directory refuses.
    _lock: std::fs::File,
    tls: Option<Tls>,
    zone_key: String,
    /// The state database had been bootstrapped before this start.
    bootstrapped: bool,
    pool: ReadPool,
    /// What the state machine applies, for the caches in front of the state (`auth.rs`).
    changes: sqlstore::Changes,
}

/// Phase 1: the state directory (created, its modes tightened, locked), the certificates, the
/// credentials, and the state database (bootstrapped if solo and new). Returns the state
/// machine over that database apart, for Raft to take.
fn open_state(config: &Config, paths: &Paths) -> Result<(OpenState, StateMachine), StartError> {
    std::fs::create_dir_all(&paths.var).map_err(StartError::io("creating", &paths.var))?;
    // Before anything opens a state file; `var/` itself becomes 0700 here (and says so).
    tighten_var(paths)?;
    let lock_path = paths.var.join(wire::files::LOCK);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(sqlstore::files::FILE_MODE)
        .open(&lock_path)
        .map_err(StartError::io("opening", &lock_path))?;
    if lock.try_lock().is_err() {
        return Err(StartError::Locked {
            var: paths.var.clone(),
            lock: lock_path,
        });
    }
    // Bad certificates stop the start, before anything else happens.
    let tls = match &config.tls {
        Some(t) => Some(Tls {
            server: crate::tls::server_config(t)?,
            client: crate::tls::client_config(t)?,
        }),
        None => None,
    };
    let (admin_name, admin_password) = credentials::load_or_create_one_auth(&paths.one_auth())?;
    let zone_key = credentials::load_or_create_one_key(&paths.one_key())?;

    let location = paths.state_location(config);
    let mut conn = sqlstore::open_state(&location).map_err(|source| StartError::Database {
        what: "opening the state database",
        source,
    })?;
    let bootstrapped = sqlstore::is_bootstrapped(&conn).map_err(|source| StartError::Sql {
        what: "reading the state database",
        source,
    })?;
    if !bootstrapped && config.is_solo() {
        let datastore_templates = crate::api::bootstrap_datastore_templates(&config.raw);
        let hash = |p: &str| hash_password_blocking(p).map_err(StartError::PasswordChecks);
        sqlstore::bootstrap(
            &mut conn,
            &BootstrapParams {
                oneadmin_name: &admin_name,
                oneadmin_password_hash: &hash(&admin_password)?,
                // As OpenNebula stores it for the `server_cipher` driver: the hex SHA-256, whose
                // first characters are the AES key proxies encrypt their tokens with.
                serveradmin_password_hash: &peerauth::server_cipher::stored_form(
                    &credentials::create_server_auth(&paths.var)?,
                ),
                zone_endpoint: &format!(
                    "{}://localhost:{}/RPC2",
                    if tls.is_some() { "https" } else { "http" },
                    config.port
                ),
                datastore_templates: datastore_templates.each_ref().map(String::as_str),
                token_passwords: [&credentials::random_hex(32), &credentials::random_hex(32)],
            },
        )
        .map_err(|source| StartError::Sql {
            what: "bootstrapping the database",
            source,
        })?;
        info!("bootstrapped a new database");
    }
    if config.is_federation_slave() {
        let found =
            sqlstore::versions::shared_version(&conn).map_err(|source| StartError::Sql {
                what: "reading the federated tables' version",
                source,
            })?;
        if let Some(why) = sqlstore::versions::slave_mismatch(found.as_deref()) {
            return Err(StartError::Federation(why));
        }
    }
    if let (false, Some(c)) = (config.is_solo(), conn.sqlite()) {
        // In a zone the fsynced log makes a write durable; the state database is rebuilt from it
        // (or from the local snapshot) after a power loss, so applying need not fsync too.
        // A solo server has no log: its database stays fully synchronous. (A MySQL server
        // keeps its own durability settings: OneHA needs no more of it than of SQLite here.)
        c.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|source| StartError::Sql {
                what: "setting the state database's synchronous mode",
                source: source.into(),
            })?;
    }
    info!(database = %location, "state database open");
    let pool = ReadPool::new(&location);
    let sm = StateMachine::new(&location, conn, &paths.snapshots())
        .map_err(|e| StartError::consensus("opening the state machine", e))?
        .with_federated_log(config.federation == crate::config::FederationMode::Master);
    let state = OpenState {
        _lock: lock,
        tls,
        zone_key,
        bootstrapped,
        pool,
        changes: sm.changes(),
    };
    Ok((state, sm))
}

/// This server's place in the zone, and what its zone tasks need.
struct Zone {
    cluster: Cluster,
    /// Raft and the zone key's check, for `/raft` and `/oneha` (none when solo).
    peers: Option<(Raft, PeerAuth)>,
    ha: Option<HaTasks>,
    /// What an orderly stop of the leader needs to hand leadership over (none when solo).
    handover: Option<Handover>,
}

/// A leader's handover at an orderly stop (`consensus::handover`).
struct Handover {
    raft: Raft,
    net: PeerNetwork,
    stop: consensus::step_down::StopLeading,
    /// The bound of each wait: for a follower to catch up, for it to take over.
    within: Duration,
}

impl Handover {
    async fn run(self) {
        let term = {
            let m = self.raft.metrics();
            let m = m.borrow();
            if m.state != ServerState::Leader {
                return;
            }
            m.current_term
        };
        // New writes wait here for the next leader, then go to it, as during an election.
        self.stop.stop_leading(term);
        match consensus::handover::hand_over(&self.raft, &self.net, self.within).await {
            Ok(to) => info!(leader = to, "handed leadership over"),
            Err(e) => {
                warn!(error = %e, "stopping without handing leadership over");
                return;
            }
        }
        // Writes proposed before the stop (forwarded ones too) are in the successor's log but
        // answered only once applied here: keep serving /raft until then, or their calls would
        // time out with an unknown outcome while this server no longer hears the new leader.
        let proposed = self.raft.metrics().borrow().last_log_index;
        match self
            .raft
            .wait(Some(self.within))
            .applied_index_at_least(proposed, "the writes proposed before the handover")
            .await
        {
            Ok(_) => info!(
                applied = shown(proposed),
                "applied the writes proposed before the handover"
            ),
            Err(e) => warn!(
                error = %e,
                "stopping before the writes proposed before the handover were applied here"
            ),
        }
    }
}

/// What the tasks of a server in a zone share with Raft.
struct HaTasks {
    leadership: Leadership,
    /// `raft.db`, the same store Raft writes: its per-server flags.
    log: LogStore,
    /// The solo history is already in a snapshot (or there was none).
    sealed: bool,
    leader_ready: LeaderReadySender,
    /// Consensus's own loops (batching writes, confirming reads, the check-quorum watchdog),
    /// run under the supervisor like every other task.
    workers: Vec<(&'static str, consensus::Worker)>,
}

/// Phase 2, solo: writes go straight to the state database.
fn start_solo(sm: StateMachine) -> Zone {
    info!("oned started in solo mode");
    Zone {
        cluster: Cluster::Solo(sm.solo_writer()),
        peers: None,
        ha: None,
        handover: None,
    }
}

/// Phase 2, in a zone: the log (`raft.db`, opened once and shared with Raft), the state
/// database brought level with it, Raft itself, and a new zone initialized if this server is
/// its only member. Also starts consensus's own workers (proposer, read barrier, step-down
/// watchdog), which end with Raft.
async fn start_raft(
    config: &Config,
    paths: &Paths,
    state: &OpenState,
    sm: StateMachine,
) -> Result<Zone, StartError> {
    let id = config.server_id as u64;
    let raft_db = paths.raft_db();
    let mut log =
        LogStore::open(&raft_db).map_err(|e| StartError::consensus("opening the log", e))?;
    consensus::votes::keep_in(&raft_db.with_extension("vote"));
    log.guard_purges_with(sm.snapshot_floor());
    log.check_server_id(id)
        .map_err(|e| StartError::consensus("checking the log's server", e))?;
    // The leader's fsync overlaps the followers' (consensus::durable): the network and the
    // state machine below wait for the log where Raft's safety needs it on disk.
    log.flush_in_parallel_when_leading(id);
    let sm = sm.applying_only_durable(log.durable());
    let pristine = log
        .is_pristine()
        .map_err(|e| StartError::consensus("reading the log", e))?;
    if !state.bootstrapped {
        // Nothing here predates the log: whatever arrives comes from the leader.
        log.set_flag(SEALED)
            .map_err(|e| StartError::consensus("writing the log's flags", e))?;
    }
    let sealed = log
        .flag(SEALED)
        .map_err(|e| StartError::consensus("reading the log's flags", e))?;
    let purged = log
        .purged_index()
        .map_err(|e| StartError::consensus("reading the log", e))?;
    sm.recover_from_snapshot_if_behind(purged)
        .map_err(|e| StartError::consensus("recovering the state database", e))?;
    let log_last = log
        .last_index()
        .map_err(|e| StartError::consensus("reading the log", e))?;
    sm.cover_restored_state(log_last)
        .map_err(|e| StartError::consensus("snapshotting a restored database", e))?;
    // What openraft starts from. A start that fails on them says them too: after a power cut
    // the lines logged before it may be gone with the log file.
    let view = match sm.recovery_view() {
        Ok((applied, snapshot)) => format!(
            "log purged to {}, last {}; local snapshot at {}; state applied to {}",
            shown(purged),
            shown(log_last),
            shown(snapshot),
            shown(applied)
        ),
        Err(e) => format!("the recovery indexes could not be read: {e}"),
    };
    info!(%view, "recovering");
    let net = PeerNetwork::new(
        peerauth::ZoneKey::new(&state.zone_key),
        id,
        config.raft.xmlrpc_timeout,
        state.tls.as_ref().map(|t| t.client.clone()),
    )
    .map_err(|e| StartError::consensus("building the peer HTTP client", e))?
    .with_backend(state.pool.location().backend().name())
    .acknowledging_only_durable(log.durable());
    let db_health = sm.health();
    let applied = sm.applied_mark();
    let raft = Raft::new(
        id,
        Arc::new(raft_config(config)?),
        net.clone(),
        log.clone(),
        sm,
    )
    .await
    .map_err(|e| StartError::consensus("starting Raft", format!("{e} ({view})")))?;
    info!(server = id, "oned started in follower mode");
    // Terms that begin from here on are elections this process saw, the first one of a new
    // zone included (it may be over before the hook task that counts them starts).
    let boot_term = raft.metrics().borrow().current_term;
    if pristine {
        initialize_if_alone(config, &raft, &state.pool, state.bootstrapped).await?;
    }

    let (proposer, proposing) = Proposer::new(
        raft.clone(),
        config.write_deadline(),
        config.limits.max_txn_bytes(),
    );
    let (reads, confirming) =
        ReadBarrier::with_gate(raft.clone(), config.write_deadline(), log.read_gate());
    let (follower_reads, asking) =
        FollowerReads::new(raft.clone(), net.clone(), config.write_deadline());
    let (stepped_down, stop_leading, watching) = consensus::step_down::watchdog(
        raft.clone(),
        config.raft.election_timeout,
        config.raft.broadcast_timeout,
    );
    let leadership = Leadership::new(raft.clone(), stepped_down, boot_term);
    let (ready_sender, leader_ready) = crate::hooks::leader_ready();
    Ok(Zone {
        cluster: Cluster::Ha(Ha {
            leadership: leadership.clone(),
            proposer,
            reads,
            follower_reads,
            leader_ready,
            server_id: id,
            raft_db,
            db_health,
            applied,
            local_reads: log.read_gate(),
        }),
        peers: Some((
            raft.clone(),
            PeerAuth::new(peerauth::ZoneKey::new(&state.zone_key), id),
        )),
        ha: Some(HaTasks {
            leadership,
            log,
            sealed,
            leader_ready: ready_sender,
            workers: vec![
                ("proposer", proposing),
                ("read-barrier", confirming),
                ("follower-reads", asking),
                ("step-down", watching),
                (
                    "fast-failover",
                    consensus::failover::crash_watch(raft.clone(), config.raft.broadcast_timeout),
                ),
            ],
        }),
        handover: Some(Handover {
            raft,
            net,
            stop: stop_leading,
            within: config
                .raft
                .election_timeout
                .clamp(HANDOVER_MIN, HANDOVER_MAX),
        }),
    })
}

/// A server whose log never held anything: it starts a new zone if the (restored or
/// bootstrapped) database lists it as the zone's only server, refuses to start if the database
/// lists no server at all, and otherwise waits for the leader to add it.
async fn initialize_if_alone(
    config: &Config,
    raft: &Raft,
    pool: &ReadPool,
    bootstrapped: bool,
) -> Result<(), StartError> {
    let zid = config.zone_id;
    let zone = crate::db::read(pool, move |c| sqlstore::load_zone(c, zid))
        .await
        .map_err(|e| match e {
            crate::db::ReadError::Db(source) => StartError::Database {
                what: "reading the zone",
                source,
            },
            crate::db::ReadError::Task(source) => StartError::Blocking {
                what: "reading the zone",
                source,
            },
        })?;
    let servers = zone.map(|z| z.servers).unwrap_or_default();
    let me = servers.iter().find(|s| s.id == config.server_id);
    match me {
        Some(me) if bootstrapped && servers.len() == 1 => {
            let id = config.server_id as u64;
            let node = ServerNode {
                name: me.name.clone(),
                rpc: me.endpoint.clone(),
            };
            info!(server = id, node = %node, "initializing a new zone with this server as its only member");
            raft.initialize(BTreeMap::from([(id, node)]))
                .await
                .map_err(|e| StartError::consensus("initializing Raft", e))
        }
        _ if bootstrapped && me.is_none() && servers.is_empty() => Err(StartError::NotInZone {
            server_id: config.server_id,
            zone_id: config.zone_id,
        }),
        _ => {
            info!("waiting for the leader to add this server to the zone (onezone server-add)");
            Ok(())
        }
    }
}

/// Phase 3: every background task, under the supervisor.
#[allow(clippy::too_many_arguments)]
fn start_tasks(
    tasks: &Supervisor,
    config: &Arc<Config>,
    state: &OpenState,
    hooks: &Hooks,
    cluster: &Cluster,
    ha: Option<HaTasks>,
    paths: &Paths,
    api: &ApiCtx,
) {
    let pool = &state.pool;
    let tls_client = state.tls.as_ref().map(|t| t.client.clone());
    let remotes = paths.remotes.as_path();
    if let Some(mut ha) = ha {
        for (name, worker) in ha.workers.drain(..) {
            tasks.spawn_worker(name, worker);
        }
        let raft = ha.leadership.raft().clone();
        let (sealed_tx, sealed) = tokio::sync::watch::channel(ha.sealed);
        if !ha.sealed {
            let (leadership, log) = (ha.leadership.clone(), ha.log.clone());
            tasks.spawn("seal-solo-history", Restart::Never, move |_| {
                seal_solo_history(leadership.clone(), log.clone(), sealed_tx.clone())
            });
        }
        if let (sqlstore::Backend::Mysql, Cluster::Ha(h)) = (pool.location().backend(), cluster) {
            let (pool, health) = (pool.clone(), h.db_health.clone());
            tasks.spawn("db-watch", Restart::WithBackoff, move |_| {
                crate::db_watch::run(pool.clone(), health.clone())
            });
        }
        let r = raft.clone();
        tasks.spawn("state-logger", Restart::WithBackoff, move |_| {
            log_state_changes(r.clone())
        });
        let (leadership, pool, zone_id) = (ha.leadership.clone(), pool.clone(), config.zone_id);
        tasks.spawn("membership", Restart::WithBackoff, move |ctx| {
            crate::membership::run(
                ctx,
                leadership.clone(),
                pool.clone(),
                zone_id,
                sealed.clone(),
            )
        });
        let settings = config.raft.clone();
        tasks.spawn("retention", Restart::WithBackoff, move |_| {
            crate::retention::run(raft.clone(), settings.clone())
        });
        let (hooks, leadership, ready) = (
            hooks.clone(),
            ha.leadership.clone(),
            ha.leader_ready.clone(),
        );
        tasks.spawn("hooks", Restart::WithBackoff, move |_| {
            crate::hooks::run(hooks.clone(), leadership.clone(), ready.clone())
        });
    }
    let (on, reads) = (cluster.clone(), pool.clone());
    let master = config
        .is_federation_slave()
        .then(|| master_client(config, paths, tls_client.clone()))
        .flatten();
    let zone = config.zone_id;
    tasks.spawn("monitor", Restart::WithBackoff, move |ctx| {
        let imports = crate::monitor::Imports {
            zone,
            master: master.clone(),
        };
        crate::monitor::run(ctx, on.clone(), reads.clone(), imports)
    });
    let (on, settings) = (cluster.clone(), config.monitoring.clone());
    tasks.spawn("monitoring", Restart::WithBackoff, move |ctx| {
        crate::monitoring::run(ctx, on.clone(), settings.clone())
    });
    let (on, reads, live, api) = (
        cluster.clone(),
        pool.clone(),
        config.live_rescheds,
        api.clone(),
    );
    let vnc = crate::api::vm_vnc::vnc_ports(&config.raw);
    tasks.spawn("scheduler", Restart::WithBackoff, move |ctx| {
        let vnc = vnc.clone();
        crate::scheduler::run(ctx, on.clone(), reads.clone(), live, vnc, api.clone())
    });
    let (on, reads, conf) = (cluster.clone(), pool.clone(), config.clone());
    tasks.spawn("sched-actions", Restart::WithBackoff, move |ctx| {
        crate::sched_runner::run(ctx, on.clone(), reads.clone(), conf.clone())
    });
    let runner = Arc::new(crate::hook_runner::Runner {
        cluster: cluster.clone(),
        pool: pool.clone(),
        remotes: remotes.to_path_buf(),
        retention: config.hook_log_retention,
    });
    tasks.spawn("hook-runner", Restart::WithBackoff, move |ctx| {
        crate::hook_runner::run(ctx, runner.clone())
    });
    if config.federation == crate::config::FederationMode::Master {
        let (on, reads, zone, auth) = (
            cluster.clone(),
            pool.clone(),
            config.zone_id,
            paths.one_auth(),
        );
        let max_request = config.limits.message_size;
        // The zones' ENDPOINTs, http or https: an https one is checked against this zone's CA
        // (`TLS/CA_FILE`), so federated zones with TLS share a CA.
        let mut http = reqwest::Client::builder().tcp_nodelay(true);
        if let Some(tls) = tls_client {
            http = http.use_preconfigured_tls(tls);
        }
        let http = http.build();
        match http {
            Ok(http) => tasks.spawn("fed-push", Restart::WithBackoff, move |ctx| {
                crate::fed_push::run(
                    ctx,
                    on.clone(),
                    reads.clone(),
                    zone,
                    auth.clone(),
                    http.clone(),
                    max_request,
                )
            }),
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for the federation: zones get no records")
            }
        }
    }
}

/// The federation master as this slave's tasks call it (an https `MASTER_ONED` checked
/// against this zone's CA); `None`, logged, when no HTTP client can be built.
fn master_client(
    config: &Arc<Config>,
    paths: &Paths,
    tls: Option<rustls::ClientConfig>,
) -> Option<crate::api::master_client::MasterClient> {
    let mut http = reqwest::Client::builder().tcp_nodelay(true);
    if let Some(tls) = tls {
        http = http.use_preconfigured_tls(tls);
    }
    match http.build() {
        Ok(http) => Some(crate::api::master_client::MasterClient::new(
            http,
            config,
            paths.one_auth(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the federation master: this zone's marketplace imports stay LOCKED");
            None
        }
    }
}

/// Phase 4: the HTTP client for forwarded calls, password checks, and the listener, until
/// `shutdown` resolves.
#[allow(clippy::too_many_arguments)]
async fn serve(
    config: &Arc<Config>,
    paths: &Paths,
    state: &OpenState,
    cluster: &Cluster,
    peers: Option<(Raft, PeerAuth)>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    api: &ApiCtx,
) -> Result<(), StartError> {
    let mut http = reqwest::Client::builder()
        .tcp_nodelay(true)
        // Below the leader's KEEPALIVE_TIMEOUT: a forwarded write never goes out on a connection
        // the leader is closing as idle.
        .pool_idle_timeout(std::time::Duration::from_secs(5));
    if let Some(t) = &state.tls {
        // Writes forwarded to the leader's /RPC2: HTTPS only, the leader checked against the CA.
        http = http
            .use_preconfigured_tls(t.client.clone())
            .https_only(true);
    }
    let http = http.build().map_err(StartError::HttpClient)?;
    let auth = tokio::task::spawn_blocking(Authenticator::new)
        .await
        .map_err(|source| StartError::Blocking {
            what: "preparing password checks",
            source,
        })?
        .map_err(StartError::PasswordChecks)?;
    // OpenNebula's server_x509 driver reads the server certificate from etc/auth/cert.pem.
    let etc = paths.config.parent().unwrap_or(std::path::Path::new("."));
    let auth = auth
        .with_server_cert(etc.join("auth").join("cert.pem"))
        .with_changes(state.changes.clone())
        .upgrading_hashes(!config.is_federation_slave());
    let app = Arc::new(AppState {
        ctx: Ctx {
            config: config.clone(),
            pool: state.pool.clone(),
            cluster: cluster.clone(),
            http,
            auth: Arc::new(auth),
            quotas: Arc::default(),
            vm_answers: Arc::default(),
            one_auth: paths.one_auth(),
            one_key: Arc::from(state.zone_key.as_str()),
        },
        peers,
        paths: paths.clone(),
        large_calls: Arc::new(tokio::sync::Semaphore::new(crate::http::LARGE_CALLS)),
        tls: state.tls.is_some(),
        peer_reads: Arc::new(tokio::sync::Semaphore::new(crate::http::PEER_READS)),
    });
    // Set once, before the first call is served.
    let _ = api.set(app.ctx.clone());
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    crate::listener::check_fd_limit(&config.limits);
    let gate = crate::listener::Gate::new(config.limits.clone());
    let acceptor = match &state.tls {
        None => {
            info!(address = %addr, "serving /RPC2");
            None
        }
        Some(t) => {
            info!(address = %addr, "serving /RPC2 over TLS");
            Some(tokio_rustls::TlsAcceptor::from(t.server.clone()))
        }
    };
    crate::listener::serve(listener, router(app), gate, acceptor, shutdown)
        .await
        .map_err(StartError::Serve)
}

/// Phase 5: stops the background tasks (waiting for them), releases what the leader hook took
/// (the floating IP), and stops Raft.
async fn shut_down(tasks: &Supervisor, cluster: &Cluster, hooks: &Hooks) {
    info!("shutting down");
    let late = tasks.shutdown(STOP_WITHIN).await;
    if late.is_empty() {
        info!("background tasks stopped");
    }
    if let Some(raft) = cluster.raft() {
        hooks.run_follower().await;
        match tokio::time::timeout(STOP_WITHIN, raft.shutdown()).await {
            Ok(Ok(())) => info!("Raft stopped"),
            Ok(Err(e)) => warn!(error = %e, "Raft stopped with an error"),
            Err(_) => warn!(within = ?STOP_WITHIN, "Raft did not stop in time"),
        }
    }
}

/// Gives the state files a previous version (or an operator) left wider than 0600 the modes
/// new ones get: `var/`, `var/snapshots` and `var/.one` 0700; the files directly in `var/`
/// (`one.db`, `raft.db` and their `-wal`/`-shm`, `oned.log`, `oned.lock`, backups and temporary
/// files) and in those two folders 0600. Other folders under `var/` (hook scripts in `remotes`)
/// are left alone: they are not ours to narrow.
fn tighten_var(paths: &Paths) -> Result<(), StartError> {
    use sqlstore::files::{tighten, DIR_MODE, FILE_MODE};
    let fix = |path: &std::path::Path, allowed: u32| -> Result<(), StartError> {
        if let Some(old) =
            tighten(path, allowed).map_err(StartError::io("changing the mode of", path))?
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

/// Why the solo history could not be sealed (it is tried again at the next start).
#[derive(Debug, thiserror::Error)]
enum SealError {
    #[error(transparent)]
    Leadership(#[from] LeadershipGone),
    #[error("{what}: {reason}")]
    Raft { what: &'static str, reason: String },
    #[error("recording the sealed snapshot: {0}")]
    Flag(String),
}

fn raft_failed(what: &'static str) -> impl FnOnce(String) -> SealError {
    move |reason| SealError::Raft { what, reason }
}

/// Folds a solo server's history (written outside the log) into a snapshot and purges the log
/// below it, so a server added later starts from that snapshot instead of an incomplete log.
/// Until `sealed` turns true no server is added to the Raft group: a learner replicated from
/// the unpurged log would miss the solo history and never catch up.
async fn seal_solo_history(
    leadership: Leadership,
    log: LogStore,
    sealed: tokio::sync::watch::Sender<bool>,
) -> Result<(), SealError> {
    let raft = leadership.raft();
    let mut changes = leadership.watch_progress();
    loop {
        let (m, leader) = leadership.now();
        if leader == Some(m.id) && m.last_applied.is_some() {
            break;
        }
        changes.changed().await?;
    }
    raft.trigger()
        .snapshot()
        .await
        .map_err(|e| raft_failed("asking for a snapshot")(e.to_string()))?;
    let m = raft
        .wait(None)
        .metrics(|m| m.snapshot.is_some(), "snapshot")
        .await
        .map_err(|e| raft_failed("waiting for the snapshot")(e.to_string()))?;
    let Some(snap) = m.snapshot else {
        return Err(raft_failed("waiting for the snapshot")(
            "no snapshot in the metrics".into(),
        ));
    };
    raft.trigger()
        .purge_log(snap.index)
        .await
        .map_err(|e| raft_failed("asking for a purge")(e.to_string()))?;
    raft.wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= snap.index),
            "purged",
        )
        .await
        .map_err(|e| raft_failed("waiting for the purge")(e.to_string()))?;
    log.set_flag(SEALED)
        .map_err(|e| SealError::Flag(e.to_string()))?;
    sealed.send_replace(true);
    info!(index = snap.index, "solo history sealed into a snapshot");
    Ok(())
}

/// Logs leadership, term and membership changes at info: the story an operator reads in oned.log.
/// Ends only when Raft stops publishing its metrics. Watches the server metrics, which change
/// only with these, not the full metrics, which change several times per write.
async fn log_state_changes(raft: Raft) -> Result<(), LeadershipGone> {
    let mut rx = raft.server_metrics();
    let mut last: Option<(ServerState, u64, Option<u64>, String)> = None;
    loop {
        let (state, term, leader, members) = {
            let m = rx.borrow_and_update();
            (
                m.state,
                m.vote.leader_id().get_term(),
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
        rx.changed()
            .await
            .map_err(|_| LeadershipGone::RaftStopped)?;
    }
}
