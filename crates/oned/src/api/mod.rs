//! The `/RPC2` API: decode the call, authenticate the session, route it (locally, or to the
//! leader for a write on a follower) and encode OpenNebula's answer.

mod accounting;
mod acl;
pub(crate) mod address_range;
pub mod answer_buf;
mod as_owner;
mod backup_incs;
pub mod backupjob;
mod cluster_drs;
mod cluster_plan;
mod clusters;
mod document;
mod ds_conf;
mod ds_update;
mod encrypted;
mod error;
mod family;
mod fed_proxy;
#[cfg(test)]
mod golden;
mod group;
pub mod hook;
pub mod host;
pub mod id_bitmap;
pub mod image_snaps;
pub mod images;
mod inherit;
mod list_order;
pub mod market;
pub mod market_master;
pub mod master_client;
pub mod method;
mod monitoring;
mod owned;
pub(crate) mod perms;
pub mod quota;
pub mod quota_cache;
mod restricted;
mod route;
mod secgroup;
mod showback;
pub(crate) mod storage;
mod system;
pub(crate) mod umask;
mod user;
mod user_conf;
mod validate;
mod vdc;
pub mod vm;
pub mod vm_actions;
mod vm_auth;
pub(crate) mod vm_auto_nics;
pub mod vm_backup;
mod vm_body;
mod vm_body_parts;
pub mod vm_cloning;
mod vm_context;
mod vm_disk_attach;
pub(crate) mod vm_disk_ops;
mod vm_disk_saveas;
mod vm_disk_snaps;
mod vm_disks;
pub mod vm_migrate;
mod vm_nics;
pub mod vm_ops;
mod vm_pci;
mod vm_pool_answers;
mod vm_pool_cache;
mod vm_recover;
mod vm_resched;
mod vm_resize;
pub mod vm_sched;
pub mod vm_sg_rules;
mod vm_sgs;
pub mod vm_snap_driver;
pub(crate) mod vm_snapshots;
mod vm_topology;
mod vm_updateconf;
mod vm_vars;
pub mod vm_vnc;
pub(crate) mod vm_volatile;
pub mod vmgroup;
mod vmtemplate;
mod vmtemplate_images;
pub(crate) mod vnet;
mod vnet_leases;
mod vnet_update;
mod vnet_vlans;
mod vntemplate;
mod vrouter;
mod vrouter_nics;
mod writes;
pub mod xml;
mod zone;
mod zone_master;

use std::sync::Arc;

use consensus::WriteError;
use sqlstore::{ReadPool, SqlTxn, SqlValue, TxnOutcome};
use tracing::debug;
use xmlrpc::{MethodCall, Params, Value};

pub use error::{
    code, fail, granted_unless, not_authorized, require_admin, unauthorized, Failure, Refused,
};
use method::{Auth, Kind};
pub(crate) use route::leader_answered_at;
use route::route_to_leader;

use crate::auth::Authenticator;
use crate::cluster::Cluster;
use crate::config::Config;

pub use wire::header::{FORWARDED as FORWARDED_HEADER, LEADER_READ as LEADER_READ_HEADER};

/// Where an `/RPC2` request came from, as its headers tell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin {
    /// Already forwarded once by a follower.
    pub forwarded: bool,
    /// The client asked for a leader (linearizable) read.
    pub leader_read: bool,
    /// The forwarding server's applied index ([`wire::header::APPLIED`]).
    pub seen: Option<u64>,
    /// A federation master's records written for federated tables of another version than
    /// this build's ([`wire::header::FED_VERSION`]).
    pub other_fed_version: bool,
}

impl Origin {
    /// What `headers` of a call say of where it came from.
    pub fn of(headers: &axum::http::HeaderMap) -> Origin {
        Origin {
            forwarded: headers.contains_key(FORWARDED_HEADER),
            leader_read: headers.get(LEADER_READ_HEADER).is_some_and(|v| {
                v.as_bytes()
                    .eq_ignore_ascii_case(wire::header::LEADER_READ_VALUE.as_bytes())
            }),
            seen: seen_index(headers),
            other_fed_version: headers
                .get(wire::header::FED_VERSION)
                .is_some_and(|v| v.as_bytes() != sqlstore::versions::SHARED_DB_VERSION.as_bytes()),
        }
    }
}

/// The [`wire::header::APPLIED`] index of a forwarded call, if it carries a well-formed one.
pub fn seen_index(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(wire::header::APPLIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub pool: ReadPool,
    pub cluster: Cluster,
    pub http: reqwest::Client,
    /// Password checks, their cache and their CPU bound (`auth.rs`).
    pub auth: Arc<Authenticator>,
    /// Users' and groups' quotas between reads (`quota_cache.rs`).
    pub quotas: Arc<quota_cache::QuotaCache>,
    /// Whole answers of VM pool calls between calls (`vm_pool_answers.rs`).
    pub vm_answers: Arc<vm_pool_answers::Answers>,
    /// oneadmin's credentials (`.one/one_auth`), for the calls this server makes as oneadmin.
    pub one_auth: std::path::PathBuf,
    /// The zone key (`.one/one_key`), OpenNebula's ONE_KEY: encrypted attributes.
    pub one_key: Arc<str>,
}

pub type MethodResult = Result<Value, Failure>;

/// [`Ctx::read`] on `pool`, for the leader's tasks that share the methods' code.
pub async fn read_in<T: Send + 'static>(
    pool: &sqlstore::ReadPool,
    f: impl FnOnce(&sqlstore::Conn) -> Result<T, sqlstore::SqlError> + Send + 'static,
) -> Result<T, Failure> {
    crate::db::read(pool, f).await.map_err(|e| match e {
        crate::db::ReadError::Db(e) => fail(code::INTERNAL, format!("database error: {e}")),
        crate::db::ReadError::Task(e) => fail(code::INTERNAL, format!("read failed: {e}")),
    })
}

/// [`read_in`] for a short read by key (`crate::db::read_row`: no thread hop on SQLite).
pub async fn read_row_in<T: Send + 'static>(
    pool: &sqlstore::ReadPool,
    f: impl FnOnce(&sqlstore::Conn) -> Result<T, sqlstore::SqlError> + Clone + Send + 'static,
) -> Result<T, Failure> {
    crate::db::read_row(pool, f).await.map_err(|e| match e {
        crate::db::ReadError::Db(e) => fail(code::INTERNAL, format!("database error: {e}")),
        crate::db::ReadError::Task(e) => fail(code::INTERNAL, format!("read failed: {e}")),
    })
}

impl Ctx {
    /// Runs a blocking read on the read pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&sqlstore::Conn) -> Result<T, sqlstore::SqlError> + Send + 'static,
    ) -> Result<T, Failure> {
        read_in(&self.pool, f).await
    }

    /// Replicates a transaction; `Ok(values)` (what its `RETURNING` statements returned) once
    /// it applied. A refusal by the SQL becomes `refused(..)`, the method's own wording of it;
    /// a write that never reached the log is `NotLeader` (dispatch forwards the call) or
    /// INTERNAL.
    pub async fn commit(
        &self,
        txn: SqlTxn,
        refused: impl FnOnce(Refused) -> Failure,
    ) -> Result<Vec<SqlValue>, Failure> {
        let written = self.cluster.write(txn).await;
        if !matches!(written, Err(WriteError::NotLeader)) {
            // Outside a call (a driver's write) there is nothing to count.
            let _ = COMMITS.try_with(|n| n.set(n.get() + 1));
        }
        match written {
            Ok(TxnOutcome::Done { values }) => Ok(values),
            Ok(TxnOutcome::Failed(e)) => Err(refused(Refused {
                kind: e.kind,
                stmt: e.stmt,
                message: e.message,
            })),
            Err(WriteError::NotLeader) => Err(Failure::NotLeader),
            Err(e) => Err(fail(code::INTERNAL, format!("Cannot process request, {e}"))),
        }
    }
}

tokio::task_local! {
    /// Writes the call being handled sent to the log (or may have): a call that failed with
    /// `NotLeader` after one of them cannot be run again elsewhere without running it twice.
    static COMMITS: std::cell::Cell<u32>;
}

/// What to send back for one `/RPC2` request.
pub enum Reply {
    Xml(String),
    /// A pool answer its handler wrote whole (`vm_pool_cache::PREPARED`), perhaps one kept for
    /// the next such call (`vm_pool_answers`).
    Prepared(axum::body::Bytes),
    /// The leader's answer to a forwarded call, byte for byte.
    Forwarded(Vec<u8>),
    /// An error for a forwarded call this server refused before proposing it: sent with
    /// [`wire::header::NOT_PROPOSED`], so the forwarding server may retry it elsewhere.
    NotProposed(String),
}

fn failure_xml(method: &str, code: i32, message: &str) -> Reply {
    Reply::Xml(error::api_failure(method, code, message))
}

/// What `/metrics` counts of one call: its method and kind once known, and whether it succeeded.
struct CallTag {
    method: Option<(&'static str, &'static str)>,
    ok: bool,
}

pub async fn handle(ctx: &Ctx, body: &[u8], origin: Origin) -> Reply {
    handle_as(ctx, body, origin, None).await
}

/// [`handle`] for a caller already authenticated otherwise (`user`: the dashboard's session
/// cookie): the call's session parameter is ignored, and so is every other check but the
/// authentication. Such a call is never forwarded (its body carries no credentials the leader
/// could check): where it must run on the leader, the caller sends it there itself.
pub async fn handle_as(
    ctx: &Ctx,
    body: &[u8],
    origin: Origin,
    user: Option<crate::auth::Session>,
) -> Reply {
    let started = std::time::Instant::now();
    let mut tag = CallTag {
        method: None,
        ok: false,
    };
    let reply = handle_call(ctx, body, origin, user, &mut tag).await;
    match tag.method {
        Some((method, kind)) => {
            let outcome = match (&reply, tag.ok) {
                (Reply::Forwarded(_), _) => "forwarded",
                (_, true) => "ok",
                (_, false) => "error",
            };
            telemetry::m::CALLS.observe(&[method, kind, outcome], started.elapsed().as_secs_f64());
        }
        None => telemetry::m::BAD_CALLS.inc(),
    }
    reply
}

async fn handle_call(
    ctx: &Ctx,
    body: &[u8],
    origin: Origin,
    preset: Option<crate::auth::Session>,
    tag: &mut CallTag,
) -> Reply {
    let call: MethodCall = match xmlrpc::parse_call(body) {
        Ok(c) => c,
        Err(e) => {
            return Reply::Xml(xmlrpc::write_fault(
                -503,
                &format!("Call XML not a proper XML-RPC call: {e}"),
            ))
        }
    };
    let method = call.method.as_str();
    let Some(entry) = method::lookup(method) else {
        return Reply::Xml(xmlrpc::write_fault(
            -506,
            &format!("Method '{method}' not defined"),
        ));
    };
    tag.method = Some((
        entry.name,
        match entry.kind {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Status => "status",
        },
    ));
    // A slave zone's changes of shared objects are the master's to check and make.
    if preset.is_none() {
        if let Some(reply) = fed_proxy::to_master(ctx, method, body).await {
            return reply;
        }
    } else if fed_proxy::is_masters(ctx, method) {
        return fed_proxy::refusal(method);
    }
    let params = Params(&call.params);
    let session = match params.string(0) {
        Ok(s) => s,
        Err(f) => return Reply::Xml(xmlrpc::write_fault(f.code, &f.message)),
    };
    // Forwarding a call sent with a preset session would send the leader no credentials.
    let no_forward = origin.forwarded || preset.is_some();
    let mut user = match preset {
        Some(user) => user,
        None => match ctx
            .auth
            .authenticate(&ctx.pool, &ctx.cluster, session)
            .await
        {
            Ok(Some(user)) => user,
            Ok(None) => {
                // A restarted server behind its log may not know the user yet: the leader does.
                if !no_forward && !ctx.cluster.local_reads_ready() {
                    if let Some(reply) = route_to_leader(ctx, method, body, false).await {
                        return reply;
                    }
                }
                return failure_xml(
                    method,
                    code::AUTHENTICATION,
                    "User couldn't be authenticated, aborting call.",
                );
            }
            // The database cannot be read: an administrator who logged in lately may still see
            // the zone's status (raftstatus says what is wrong).
            Err(e) => match (entry.kind, ctx.auth.recent_admin(session)) {
                (Kind::Status, Some(user)) => user,
                _ => return failure_xml(method, code::INTERNAL, &e.to_string()),
            },
        },
    };
    debug!(method, uid = user.uid, "call");
    if origin.other_fed_version
        && [
            wire::method::ZONE_FEDREPLICATE,
            wire::method::ONEHA_ZONE_FEDSNAPSHOT,
        ]
        .contains(&method)
    {
        return Reply::Xml(error::failure_body(method, &zone::version_refusal()));
    }

    let kind = entry.kind;
    // OpenNebula runs API hooks after reads too (`HookAPI::unsupported_calls` leaves out the
    // info calls, not `vmpool.accounting` and the like): a read an API hook waits for runs on
    // the leader, which writes the hook's event.
    let hooked_read = kind == Kind::Read && matches!(write_gate(ctx, method).await, Ok((_, true)));
    if hooked_read {
        if let Some(reply) = route_to_leader(ctx, method, body, no_forward).await {
            return reply;
        }
    }
    let on_leader = match kind {
        Kind::Status => false,
        Kind::Write => true,
        // Only leader reads are ever forwarded: a forwarded read is one, whatever its headers.
        // A restarted server serves none from its own state before it caught up (see
        // `Cluster::local_reads_ready`).
        Kind::Read => origin.leader_read || origin.forwarded || !ctx.cluster.local_reads_ready(),
    };
    if on_leader {
        if kind == Kind::Read {
            match route::leader_read(ctx, method, body, no_forward, session).await {
                Ok(Some(fresh)) => user = fresh,
                Ok(None) => {}
                Err(reply) => return reply,
            }
        } else if let Some(reply) = route_to_leader(ctx, method, body, no_forward).await {
            return reply;
        }
    }
    if kind == Kind::Write {
        // The write is judged on this server's state: no older than any the caller was shown.
        if let Err(e) = ctx.cluster.catch_up_for_write(origin.seen).await {
            return failure_xml(
                method,
                code::INTERNAL,
                &format!("Cannot process request, {e}"),
            );
        }
    }
    // OpenNebula's `zone_disabled`: a disabled zone answers reads and status, and takes no
    // change but the one that enables it again.
    // The same read tells whether an API hook waits for this call.
    let mut hooked = hooked_read;
    if kind == Kind::Read && READ_REFUSED_WHEN_DISABLED.contains(&method) {
        match write_gate(ctx, method).await {
            Ok((true, _)) => {
                return failure_xml(
                    method,
                    code::INTERNAL,
                    "Cannot process request, zone disabled",
                )
            }
            Ok(_) => {}
            Err(f) => return Reply::Xml(error::failure_body(method, &f)),
        }
    }
    if kind == Kind::Write {
        match write_gate(ctx, method).await {
            Ok((true, _)) if !TAKEN_WHEN_DISABLED.contains(&method) => {
                return failure_xml(
                    method,
                    code::INTERNAL,
                    "Cannot process request, zone disabled",
                )
            }
            Ok((_, h)) => hooked = h,
            Err(f) => return Reply::Xml(error::failure_body(method, &f)),
        }
    }
    let rest = Params(call.params.get(1..).unwrap_or(&[]));
    // A hooked delete tells its hooks what it deleted: read before it goes.
    let deleted = match (hooked && method.ends_with(".delete"), rest.int(0)) {
        (true, Ok(id)) => object_xml(ctx, &user, method, id).await,
        _ => None,
    };
    let run = async {
        let result = match authorize(ctx, entry.auth, &user, &rest).await {
            Ok(()) => (entry.handler)(ctx, &user, rest).await,
            Err(f) => Err(f),
        };
        let prepared = vm_pool_cache::PREPARED.with(|p| p.take());
        (result, COMMITS.with(std::cell::Cell::get), prepared)
    };
    let (result, commits, prepared) = COMMITS
        .scope(
            std::cell::Cell::new(0),
            vm_pool_cache::PREPARED.scope(Default::default(), run),
        )
        .await;
    if hooked && !matches!(result, Err(Failure::NotLeader)) {
        let extra = match &result {
            Ok(Value::Int(id)) if method.ends_with(".allocate") => {
                object_xml(ctx, &user, method, *id).await
            }
            _ => deleted,
        };
        record_api_event(ctx, method, &call.params, &result, extra.as_deref()).await;
    }
    match result {
        Ok(v) => {
            tag.ok = true;
            // A pool read may hand over its answer already written (`vm_pool_cache`).
            match prepared {
                Some(answer) => Reply::Prepared(answer),
                None => Reply::Xml(xmlrpc::write_response(&xmlrpc::one::success(v))),
            }
        }
        // Leadership moved after an earlier write of this call: running it again on the new
        // leader would repeat that write.
        Err(Failure::NotLeader) if commits > 0 => failure_xml(
            method,
            code::INTERNAL,
            "Cannot process request, leadership changed",
        ),
        Err(Failure::NotLeader) => {
            // Leadership moved while the call ran; nothing was written. Send it to the new leader.
            match route_to_leader(ctx, method, body, no_forward).await {
                Some(reply) => reply,
                None => failure_xml(
                    method,
                    code::INTERNAL,
                    "Cannot process request, leadership changed",
                ),
            }
        }
        Err(f) => Reply::Xml(error::failure_body(method, &f)),
    }
}

/// The reads a disabled zone refuses: those whose `Request` keeps `zone_disabled` false (the
/// info and pool calls, the system and zone calls set it).
const READ_REFUSED_WHEN_DISABLED: &[&str] =
    &["one.acl.info", "one.host.monitoring", "one.vm.monitoring"];

/// The changes a disabled zone still takes (`zone_disabled` in OpenNebula's requests): the
/// one that enables it again, and the federated records, one of which may be that enable.
const TAKEN_WHEN_DISABLED: &[&str] = &[
    wire::method::ZONE_ENABLE,
    wire::method::ZONE_FEDREPLICATE,
    wire::method::ONEHA_ZONE_FEDSNAPSHOT,
];

/// Whether the zone is disabled and whether an API hook waits for `method`: from memory while
/// no applied entry changed the zone or the hooks (`Authenticator::write_gate`).
async fn write_gate(ctx: &Ctx, method: &str) -> Result<(bool, bool), Failure> {
    let now = ctx.auth.changes().get(sqlstore::Watched::ZoneHooks);
    let gate = match ctx.auth.write_gate.get(now) {
        Some(gate) => gate,
        None => {
            let zone = ctx.config.zone_id;
            let (disabled, calls) = ctx
                .read(move |c| {
                    Ok((
                        sqlstore::objects::zone::is_disabled(c, zone)?,
                        sqlstore::objects::hook::api_hooked_calls(c)?,
                    ))
                })
                .await?;
            let gate = Arc::new((disabled, calls.into_iter().collect()));
            ctx.auth.write_gate.put(now, gate.clone());
            gate
        }
    };
    Ok((gate.0, gate.1.contains(method)))
}

/// Writes the API hooks' executions of a call that ran here, before it is answered: a call
/// whose answer reached its client has its hooks' event in the log. A failure is logged and
/// counted; the call's own answer stands.
async fn record_api_event(
    ctx: &Ctx,
    method: &str,
    params: &[xmlrpc::Value],
    result: &MethodResult,
    extra: Option<&str>,
) {
    let message = hook::api_message(method, params, result, extra.unwrap_or_default());
    let txn = SqlTxn {
        stmts: sqlstore::objects::hook::api_events(method, &message, vm::now()),
    };
    if let Err(f) = ctx.commit(txn, |r| r.internal()).await {
        hook::LOST_EVENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(method, error = ?f, "an API hook event could not be written; its hooks will not run");
    }
}

/// The XML of object `id` of the family `method` belongs to (`one.user.delete` -> `one.user.info`),
/// as the caller may read it: the `EXTRA` of an allocate's or a delete's hook event.
async fn object_xml(ctx: &Ctx, s: &crate::auth::Session, method: &str, id: i32) -> Option<String> {
    let family = method.rsplit_once('.')?.0;
    let info = method::lookup(&format!("{family}.info"))?;
    let id = [Value::Int(id)];
    match (info.handler)(ctx, s, Params(&id)).await {
        Ok(Value::String(xml)) => Some(xml),
        _ => None,
    }
}

/// The table's authorization for a method, before its handler runs: group oneadmin passes,
/// anyone else as the caller's ACL rules say (`method::require`).
async fn authorize(
    ctx: &Ctx,
    auth: Auth,
    s: &crate::auth::Session,
    p: &Params<'_>,
) -> Result<(), Failure> {
    match auth {
        Auth::Object | Auth::Deferred(..) => Ok(()),
        _ if s.is_admin() => Ok(()),
        Auth::Admin(what) => Err(not_authorized(s, what)),
        // A first parameter that is not an id is the handler's fault to report.
        Auth::AdminOn(what) => match p.int(0) {
            Ok(id) => Err(not_authorized(s, &format!("{what} [{id}]"))),
            Err(_) => Ok(()),
        },
        Auth::Create(kind) => {
            method::require(ctx, s, &[method::Need::kind(kind, wire::acl::CREATE)]).await
        }
        Auth::Pool(kind, right) => {
            method::require(ctx, s, &[method::Need::kind(kind, right)]).await
        }
        Auth::On(kind, right) => match p.int(0) {
            Ok(id) => method::require_on(ctx, s, kind, i64::from(id), right).await,
            Err(_) => Ok(()),
        },
    }
}

pub use writes::{
    allocate_next, allocate_next_as, allocate_next_with, merge_attrs, merged, must_all_exist,
    must_exist, new_id, update_template, update_type,
};

/// The templates of the first datastores a new zone is bootstrapped with (`ds_conf`).
pub fn bootstrap_datastore_templates(conf: &template::Template) -> [String; 3] {
    ds_conf::bootstrap_templates(conf)
}
