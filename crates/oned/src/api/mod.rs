//! The `/RPC2` API: decode the call, authenticate the session, route it (locally, or to the
//! leader for a write on a follower) and encode OpenNebula's answer.

mod acl;
mod family;
mod group;
pub mod host;
mod owned;
mod perms;
mod storage;
mod system;
mod user;
mod validate;
pub mod vm;
mod vmtemplate;
mod vnet;
pub mod xml;
mod zone;

use std::sync::Arc;

use consensus::{ReadError, WriteError};
use sqlstore::{ReadPool, SqlTxn, TxnErrorKind, TxnOutcome};
use tracing::{debug, warn};
use xmlrpc::{one, Fault, MethodCall, Params, Value};

use crate::auth::{Authenticator, Session};
use crate::cluster::{Cluster, Role};
use crate::config::Config;

/// OpenNebula's error codes (`include/Request.h`).
pub mod code {
    pub const AUTHENTICATION: i32 = 0x100;
    pub const AUTHORIZATION: i32 = 0x200;
    pub const NO_EXISTS: i32 = 0x400;
    pub const ACTION: i32 = 0x800;
    pub const XML_RPC_API: i32 = 0x1000;
    pub const INTERNAL: i32 = 0x2000;
    pub const ALLOCATE: i32 = 0x4000;
}

/// Header marking a call a follower already forwarded, so it is never forwarded twice.
pub const FORWARDED_HEADER: &str = "x-oneha-forwarded";
/// OneHA extension: `X-OneHA-Read: leader` on a read makes any server pass it to the leader, so
/// the answer is linearizable wherever it was sent (a follower's own reads may be stale).
pub const LEADER_READ_HEADER: &str = "x-oneha-read";

/// Where an `/RPC2` request came from, as its headers tell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin {
    /// Already forwarded once by a follower.
    pub forwarded: bool,
    /// The client asked for a leader (linearizable) read.
    pub leader_read: bool,
}

pub struct Ctx {
    pub config: Arc<Config>,
    pub pool: ReadPool,
    pub cluster: Cluster,
    pub http: reqwest::Client,
    /// Password checks, their cache and their CPU bound (`auth.rs`).
    pub auth: Arc<Authenticator>,
}

/// Why a method did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// `[false, "[method] message", code, ...]`
    Api { code: i32, message: String },
    /// A protocol-level XML-RPC fault (bad parameters).
    Fault(Fault),
    /// A write reached a server that is not (or no longer) the leader: forward it.
    NotLeader,
}

impl From<Fault> for Failure {
    fn from(f: Fault) -> Failure {
        Failure::Fault(f)
    }
}

pub fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure::Api {
        code,
        message: message.into(),
    }
}

pub type MethodResult = Result<Value, Failure>;

impl Ctx {
    /// Runs a blocking read on the read pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite_conn::Connection) -> Result<T, rusqlite_conn::Error> + Send + 'static,
    ) -> Result<T, Failure> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| fail(code::INTERNAL, format!("read failed: {e}")))?
            .map_err(|e| fail(code::INTERNAL, format!("database error: {e}")))
    }

    /// Replicates a transaction and maps its outcome; `Ok(values)` when it applied.
    pub async fn write(&self, txn: SqlTxn) -> Result<Vec<sqlstore::SqlValue>, TxnFailure> {
        match self.cluster.write(txn).await {
            Ok(TxnOutcome::Done { values }) => Ok(values),
            Ok(TxnOutcome::Failed(e)) => Err(TxnFailure::Txn(e.kind, e.message)),
            Err(WriteError::NotLeader) => Err(TxnFailure::Route(Failure::NotLeader)),
            Err(e) => Err(TxnFailure::Route(fail(
                code::INTERNAL,
                format!("Cannot process request, {e}"),
            ))),
        }
    }
}

/// A replicated write that did not apply: either the SQL refused it (the same on every server)
/// or it never got to the log.
pub enum TxnFailure {
    Txn(TxnErrorKind, String),
    Route(Failure),
}

/// Re-exported so method modules need no direct rusqlite dependency.
pub mod rusqlite_conn {
    pub use sqlstore::rusqlite::{Connection, Error};
}

/// How a method is routed in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Zone and server status: always answered from the local server, even without a quorum,
    /// so an operator can see a broken zone.
    Status,
    /// Object reads (OpenNebula's `leader_only = false`): any server answers from its own
    /// database, which may be stale, even without a quorum. With `X-OneHA-Read: leader` the read
    /// goes to the leader, which confirms its leadership first, so the answer includes every
    /// write acknowledged before the call (linearizable) or the call fails.
    Read,
    /// Changes: only the leader runs them; followers forward them.
    Write,
}

fn kind(method: &str) -> Kind {
    match method {
        "one.zone.raftstatus"
        | "one.zone.info"
        | "one.zonepool.info"
        | "one.system.version"
        | "one.system.config"
        | "oneha.db.checksum" => Kind::Status,
        m if m.ends_with(".info") => Kind::Read,
        _ => Kind::Write,
    }
}

type Handler = for<'a> fn(
    &'a Ctx,
    &'a Session,
    Params<'a>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = MethodResult> + Send + 'a>,
>;

fn lookup(method: &str) -> Option<Handler> {
    macro_rules! h {
        ($f:path) => {
            Some(|c, s, p| Box::pin($f(c, s, p)))
        };
    }
    macro_rules! o {
        ($f:path, $family:path) => {
            Some(|c, s, p| Box::pin($f(c, s, p, &$family)))
        };
    }
    let owned = method
        .strip_prefix("one.")
        .and_then(|m| m.split_once('.'))
        .and_then(|(family, op)| {
            let fam = match family {
                "vm" => &owned::VM,
                "template" => &owned::TEMPLATE,
                "image" => &owned::IMAGE,
                "vn" => &owned::NET,
                "datastore" => &owned::DATASTORE,
                _ => return None,
            };
            Some((fam.table, op))
        });
    if let Some((table, op)) = owned {
        let handler: Option<Handler> = match (table, op) {
            ("vm_pool", "chmod") => o!(owned::chmod, owned::VM),
            ("vm_pool", "chown") => o!(owned::chown, owned::VM),
            ("vm_pool", "rename") => o!(owned::rename, owned::VM),
            ("vm_pool", "update") => o!(owned::update, owned::VM),
            ("template_pool", "chown") => o!(owned::chown, owned::TEMPLATE),
            ("template_pool", "rename") => o!(owned::rename, owned::TEMPLATE),
            ("image_pool", "chmod") => o!(owned::chmod, owned::IMAGE),
            ("image_pool", "chown") => o!(owned::chown, owned::IMAGE),
            ("image_pool", "rename") => o!(owned::rename, owned::IMAGE),
            ("image_pool", "update") => o!(owned::update, owned::IMAGE),
            ("vnet_pool", "chmod") => o!(owned::chmod, owned::NET),
            ("vnet_pool", "chown") => o!(owned::chown, owned::NET),
            ("vnet_pool", "rename") => o!(owned::rename, owned::NET),
            ("vnet_pool", "update") => o!(owned::update, owned::NET),
            ("datastore_pool", "chmod") => o!(owned::chmod, owned::DATASTORE),
            ("datastore_pool", "chown") => o!(owned::chown, owned::DATASTORE),
            ("datastore_pool", "rename") => o!(owned::rename, owned::DATASTORE),
            ("datastore_pool", "update") => o!(owned::update, owned::DATASTORE),
            _ => None,
        };
        if handler.is_some() {
            return handler;
        }
    }
    match method {
        "one.system.version" => h!(system::version),
        "one.system.config" => h!(system::config),
        "one.zone.info" => h!(zone::info),
        "one.zonepool.info" => h!(zone::pool_info),
        "one.zone.raftstatus" => h!(zone::raftstatus),
        "one.zone.addserver" => h!(zone::addserver),
        "one.zone.delserver" => h!(zone::delserver),
        "one.zone.resetserver" => h!(zone::resetserver),
        "oneha.db.checksum" => h!(system::checksum),
        "one.user.allocate" => h!(user::allocate),
        "one.user.info" => h!(user::info),
        "one.user.passwd" => h!(user::passwd),
        "one.user.delete" => h!(user::delete),
        "one.user.update" => h!(user::update),
        "one.user.chgrp" => h!(user::chgrp),
        "one.user.addgroup" => h!(user::addgroup),
        "one.user.delgroup" => h!(user::delgroup),
        "one.user.enable" => h!(user::enable),
        "one.group.allocate" => h!(group::allocate),
        "one.group.info" => h!(group::info),
        "one.group.delete" => h!(group::delete),
        "one.group.addadmin" => h!(group::addadmin),
        "one.group.deladmin" => h!(group::deladmin),
        "one.grouppool.info" => h!(group::pool_info),
        "one.acl.addrule" => h!(acl::addrule),
        "one.acl.delrule" => h!(acl::delrule),
        "one.acl.info" => h!(acl::info),
        "one.host.allocate" => h!(host::allocate),
        "one.host.info" => h!(host::info),
        "one.host.delete" => h!(host::delete),
        "one.host.status" => h!(host::status),
        "one.host.update" => h!(host::update),
        "one.host.rename" => h!(host::rename),
        "one.group.update" => h!(group::update),
        "one.hostpool.info" => h!(host::pool_info),
        "one.vm.allocate" => h!(vm::allocate),
        "one.vm.info" => h!(vm::info),
        "one.vm.action" => h!(vm::action),
        "one.vm.deploy" => h!(vm::deploy),
        "one.vmpool.info" => h!(vm::pool_info),
        "one.vmpool.infoextended" => h!(vm::pool_info),
        "one.template.allocate" => h!(vmtemplate::allocate),
        "one.template.info" => h!(vmtemplate::info),
        "one.template.update" => h!(vmtemplate::update),
        "one.template.delete" => h!(vmtemplate::delete),
        "one.template.chmod" => h!(vmtemplate::chmod),
        "one.template.clone" => h!(vmtemplate::clone),
        "one.template.instantiate" => h!(vmtemplate::instantiate),
        "one.templatepool.info" => h!(vmtemplate::pool_info),
        "one.datastore.allocate" => h!(storage::ds_allocate),
        "one.datastore.info" => h!(storage::ds_info),
        "one.datastore.delete" => h!(storage::ds_delete),
        "one.datastorepool.info" => h!(storage::ds_pool_info),
        "one.image.allocate" => h!(storage::image_allocate),
        "one.image.info" => h!(storage::image_info),
        "one.image.delete" => h!(storage::image_delete),
        "one.imagepool.info" => h!(storage::image_pool_info),
        "one.vn.allocate" => h!(vnet::allocate),
        "one.vn.info" => h!(vnet::info),
        "one.vn.delete" => h!(vnet::delete),
        "one.vnpool.info" => h!(vnet::pool_info),
        "one.userpool.info" => h!(user::pool_info),
        _ => None,
    }
}

/// What to send back for one `/RPC2` request.
pub enum Reply {
    Xml(String),
    /// The leader's answer to a forwarded call, byte for byte.
    Forwarded(Vec<u8>),
}

fn failure_xml(method: &str, code: i32, message: &str) -> Reply {
    Reply::Xml(xmlrpc::write_response(&one::failure(
        &format!("[{method}] {message}"),
        code,
        -1,
    )))
}

pub async fn handle(ctx: &Ctx, body: &[u8], origin: Origin) -> Reply {
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
    let Some(handler) = lookup(method) else {
        return Reply::Xml(xmlrpc::write_fault(
            -506,
            &format!("Method '{method}' not defined"),
        ));
    };
    let params = Params(&call.params);
    let session = match params.string(0) {
        Ok(s) => s,
        Err(f) => return Reply::Xml(xmlrpc::write_fault(f.code, &f.message)),
    };
    let Some(user) = ctx
        .auth
        .authenticate(&ctx.pool, &ctx.cluster, session)
        .await
    else {
        return failure_xml(
            method,
            code::AUTHENTICATION,
            "User couldn't be authenticated, aborting call.",
        );
    };
    debug!(method, uid = user.uid, "call");

    let kind = kind(method);
    let on_leader = match kind {
        Kind::Status => false,
        Kind::Write => true,
        // Only leader reads are ever forwarded: a forwarded read is one, whatever its headers.
        Kind::Read => origin.leader_read || origin.forwarded,
    };
    if on_leader {
        if let Some(reply) = route_to_leader(ctx, method, body, origin.forwarded).await {
            return reply;
        }
        if kind == Kind::Read {
            if let Err(reply) = confirm_read(ctx, method, body, origin.forwarded).await {
                return reply;
            }
        }
    }
    let rest = Params(call.params.get(1..).unwrap_or(&[]));
    match handler(ctx, &user, rest).await {
        Ok(v) => Reply::Xml(xmlrpc::write_response(&one::success(v))),
        Err(Failure::Api { code, message }) => failure_xml(method, code, &message),
        Err(Failure::Fault(f)) => Reply::Xml(xmlrpc::write_fault(f.code, &f.message)),
        Err(Failure::NotLeader) => {
            // Leadership moved while the call ran; nothing was written. Send it to the new leader.
            match route_to_leader(ctx, method, body, origin.forwarded).await {
                Some(reply) => reply,
                None => failure_xml(
                    method,
                    code::INTERNAL,
                    "Cannot process request, leadership changed",
                ),
            }
        }
    }
}

/// On the leader, before a read: `Ok` once the local database is known to hold every
/// acknowledged write; otherwise the reply (the read passed on to a new leader, or an error).
async fn confirm_read(ctx: &Ctx, method: &str, body: &[u8], forwarded: bool) -> Result<(), Reply> {
    match ctx.cluster.confirm_read().await {
        Ok(()) => Ok(()),
        Err(ReadError::NotLeader { .. }) => {
            match route_to_leader(ctx, method, body, forwarded).await {
                Some(reply) => Err(reply),
                None => Err(failure_xml(
                    method,
                    code::INTERNAL,
                    "Cannot process request, leadership changed",
                )),
            }
        }
        Err(e) => Err(failure_xml(
            method,
            code::INTERNAL,
            &format!("Cannot process request, {e}"),
        )),
    }
}

/// For a leader-only method: `None` to run it here, or the reply (forwarded, or an error).
///
/// A leader that refuses the connection never saw the call, so it is safe to wait for the next
/// leader and try again within the bounded wait; a call that timed out is never retried, since
/// it may have been applied.
async fn route_to_leader(ctx: &Ctx, method: &str, body: &[u8], forwarded: bool) -> Option<Reply> {
    let deadline = tokio::time::Instant::now() + ctx.config.leader_wait();
    let mut dead_leader: Option<u64> = None;
    loop {
        let mut role = ctx.cluster.role();
        let stale =
            matches!(&role, Role::Follower { leader: Some((id, _)) } if Some(*id) == dead_leader);
        if stale || matches!(role, Role::Candidate | Role::Follower { leader: None }) {
            // An election is running: wait a bounded time for its outcome instead of failing.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            role = ctx.cluster.wait_for_new_leader(left, dead_leader).await;
        }
        match role {
            Role::Solo | Role::Leader => return None,
            Role::Follower {
                leader: Some((id, endpoint)),
            } if Some(id) != dead_leader => {
                if forwarded {
                    return Some(failure_xml(
                        method,
                        code::INTERNAL,
                        "Cannot process request, leader changed while forwarding",
                    ));
                }
                match forward(ctx, method, body, id, &endpoint).await {
                    Forwarded::Done(reply) => return Some(reply),
                    Forwarded::Unreachable(reply) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Some(reply);
                        }
                        dead_leader = Some(id);
                    }
                }
            }
            Role::Candidate => {
                return Some(failure_xml(
                    method,
                    code::INTERNAL,
                    "Cannot process request, oned cluster in election mode",
                ))
            }
            Role::Follower { .. } => {
                return Some(failure_xml(
                    method,
                    code::INTERNAL,
                    "Cannot process request, no leader found",
                ))
            }
        }
    }
}

enum Forwarded {
    Done(Reply),
    /// The leader could not be reached at all: the call never arrived there.
    Unreachable(Reply),
}

async fn forward(ctx: &Ctx, method: &str, body: &[u8], leader: u64, endpoint: &str) -> Forwarded {
    let timeout = ctx.config.write_deadline() + std::time::Duration::from_secs(2);
    let sent = ctx
        .http
        .post(endpoint)
        .header("content-type", "text/xml")
        .header(FORWARDED_HEADER, "1")
        .header(LEADER_READ_HEADER, "leader")
        .header(
            consensus::network::SOURCE_HEADER,
            ctx.config.server_id.to_string(),
        )
        .timeout(timeout)
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => match resp.bytes().await {
            Ok(b) => Forwarded::Done(Reply::Forwarded(b.to_vec())),
            Err(e) => Forwarded::Done(failure_xml(
                method,
                code::INTERNAL,
                &format!("Cannot process request, error reading the leader's answer: {e}"),
            )),
        },
        Ok(resp) => Forwarded::Done(failure_xml(
            method,
            code::INTERNAL,
            &format!(
                "Cannot process request, leader {leader} answered HTTP {}",
                resp.status()
            ),
        )),
        Err(e) => {
            warn!(leader, error = %e, "forwarding to the leader failed");
            let reply = failure_xml(method, code::INTERNAL, &format!("Cannot process request, error forwarding to the leader {leader} ({endpoint}): {e}"));
            if e.is_connect() {
                Forwarded::Unreachable(reply)
            } else {
                Forwarded::Done(reply)
            }
        }
    }
}

/// Inserts a new object whose id is the next one of the `pool` counter in `pool_control`:
/// `insert` reads `last_oid + 1` from that row and returns the oid; the counter moves in the
/// same transaction, so every server hands out the same id.
pub async fn allocate_next(
    ctx: &Ctx,
    pool: &str,
    insert: sqlstore::SqlStmt,
    what: &str,
    kind: &str,
    name: &str,
) -> MethodResult {
    use sqlstore::{SqlStmt, SqlValue};
    let txn = SqlTxn {
        stmts: vec![
            insert.must_match(),
            SqlStmt::new(
                "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = ?1",
                vec![SqlValue::Text(pool.to_string())],
            ),
        ],
    };
    match ctx.write(txn).await {
        Ok(values) => Ok(Value::Int(
            values.first().and_then(SqlValue::as_i64).unwrap_or(-1) as i32,
        )),
        Err(TxnFailure::Txn(TxnErrorKind::Constraint, _)) => Err(fail(
            code::INTERNAL,
            format!("Error allocating a new {what}. NAME is already taken by {kind} {name}."),
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(
            code::INTERNAL,
            format!("Error allocating a new {what}. {m}"),
        )),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

/// The `type` of `one.<o>.update`: 0 replaces (the default), 1 merges, anything else is
/// XML_RPC_API `Wrong update type`.
pub fn update_type(p: &Params<'_>) -> Result<bool, Failure> {
    match p.0.get(2) {
        None => Ok(false),
        Some(_) => match p.int(2)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(fail(code::XML_RPC_API, "Wrong update type")),
        },
    }
}

/// How often an update is recomputed when another write changed the template in between.
const UPDATE_RETRIES: usize = 10;

/// `one.<o>.update` for the template kept in `column` of `table` (`type` read from `p`, as
/// OpenNebula): the new text is computed here, on the leader, from the stored one, and written
/// only if the stored one is still the same; a concurrent change makes it start over. The log
/// carries the result, never a merge to redo. `missing` is the family's NO_EXISTS.
pub async fn update_template(
    ctx: &Ctx,
    p: &Params<'_>,
    table: &'static str,
    column: &'static str,
    missing: impl Fn(i64) -> Failure,
) -> MethodResult {
    use sqlstore::{SqlStmt, SqlValue};
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let merge = update_type(p)?;
    let read_sql = format!("SELECT {column} FROM {table} WHERE oid = ?1");
    let write_sql = format!("UPDATE {table} SET {column} = ?2 WHERE oid = ?1 AND {column} = ?3");
    for _ in 0..UPDATE_RETRIES {
        let sql = read_sql.clone();
        let old: Option<String> = ctx
            .read(move |c| {
                use sqlstore::rusqlite::OptionalExtension;
                c.query_row(&sql, [id], |r| r.get(0)).optional()
            })
            .await?;
        let Some(old) = old else {
            return Err(missing(id));
        };
        let new = merged(&old, &text, merge)?;
        let txn = SqlTxn {
            stmts: vec![SqlStmt::new(
                &write_sql,
                vec![SqlValue::Int(id), SqlValue::Text(new), SqlValue::Text(old)],
            )
            .must_match()],
        };
        match ctx.write(txn).await {
            Ok(_) => return Ok(Value::Int(id as i32)),
            // Changed or deleted meanwhile: the next read says which.
            Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => continue,
            Err(TxnFailure::Txn(_, m)) => return Err(fail(code::INTERNAL, m)),
            Err(TxnFailure::Route(f)) => return Err(f),
        }
    }
    Err(fail(
        code::INTERNAL,
        "Cannot update template: it kept changing, try again",
    ))
}

/// The template text an update leaves: `text` replacing `old`, or merged into it (each
/// attribute named in `text` replaces all of that name).
pub fn merged(old: &str, text: &str, merge: bool) -> Result<String, Failure> {
    let new = validate::template(text)
        .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
    if !merge {
        return Ok(new.to_text());
    }
    let mut out = template::Template::parse(old).unwrap_or_default();
    for a in &new.attrs {
        out.remove(&a.name);
    }
    for a in new.attrs {
        out.push(&a.name, a.value);
    }
    Ok(out.to_text())
}

/// AUTHORIZATION for a non-admin on an admin-only action.
pub fn require_admin(s: &Session, what: &str) -> Result<(), Failure> {
    if s.is_admin() {
        Ok(())
    } else {
        Err(fail(
            code::AUTHORIZATION,
            format!("User [{}] : Not authorized to perform ADMIN {what}.", s.uid),
        ))
    }
}
