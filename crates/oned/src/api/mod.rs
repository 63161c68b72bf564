//! The `/RPC2` API: decode the call, authenticate the session, route it (locally, or to the
//! leader for a write on a follower) and encode OpenNebula's answer.

mod acl;
mod error;
mod family;
#[cfg(test)]
mod golden;
mod group;
pub mod host;
pub mod method;
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
use sqlstore::{ReadPool, SqlTxn, SqlValue, TxnOutcome};
use tracing::{debug, warn};
use xmlrpc::{MethodCall, Params, Value};

pub use error::{code, fail, not_authorized, require_admin, Failure, Refused};
use method::{Auth, Kind};

use crate::auth::Authenticator;
use crate::cluster::{Cluster, Role};
use crate::config::Config;

pub use wire::header::{FORWARDED as FORWARDED_HEADER, LEADER_READ as LEADER_READ_HEADER};

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

pub type MethodResult = Result<Value, Failure>;

impl Ctx {
    /// Runs a blocking read on the read pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite_conn::Connection) -> Result<T, rusqlite_conn::Error> + Send + 'static,
    ) -> Result<T, Failure> {
        crate::db::read(&self.pool, f).await.map_err(|e| match e {
            crate::db::ReadError::Db(e) => fail(code::INTERNAL, format!("database error: {e}")),
            crate::db::ReadError::Task(e) => fail(code::INTERNAL, format!("read failed: {e}")),
        })
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
        match self.cluster.write(txn).await {
            Ok(TxnOutcome::Done { values }) => Ok(values),
            Ok(TxnOutcome::Failed(e)) => Err(refused(Refused {
                kind: e.kind,
                message: e.message,
            })),
            Err(WriteError::NotLeader) => Err(Failure::NotLeader),
            Err(e) => Err(fail(code::INTERNAL, format!("Cannot process request, {e}"))),
        }
    }
}

/// Re-exported so method modules need no direct rusqlite dependency.
pub mod rusqlite_conn {
    pub use sqlstore::rusqlite::{Connection, Error};
}

/// What to send back for one `/RPC2` request.
pub enum Reply {
    Xml(String),
    /// The leader's answer to a forwarded call, byte for byte.
    Forwarded(Vec<u8>),
}

fn failure_xml(method: &str, code: i32, message: &str) -> Reply {
    Reply::Xml(error::api_failure(method, code, message))
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
    let Some(entry) = method::lookup(method) else {
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
    let user = match ctx
        .auth
        .authenticate(&ctx.pool, &ctx.cluster, session)
        .await
    {
        Ok(Some(user)) => user,
        Ok(None) => {
            return failure_xml(
                method,
                code::AUTHENTICATION,
                "User couldn't be authenticated, aborting call.",
            )
        }
        Err(e) => return failure_xml(method, code::INTERNAL, &e.to_string()),
    };
    debug!(method, uid = user.uid, "call");

    let kind = entry.kind;
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
    let result = match authorize(entry.auth, &user, &rest) {
        Ok(()) => (entry.handler)(ctx, &user, rest).await,
        Err(f) => Err(f),
    };
    match result {
        Ok(v) => Reply::Xml(xmlrpc::write_response(&xmlrpc::one::success(v))),
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
        Err(f) => Reply::Xml(error::failure_body(method, &f)),
    }
}

/// The table's authorization for a method, before its handler runs.
fn authorize(auth: Auth, s: &crate::auth::Session, p: &Params<'_>) -> Result<(), Failure> {
    match auth {
        Auth::Object => Ok(()),
        _ if s.is_admin() => Ok(()),
        Auth::Admin(what) => Err(not_authorized(s, what)),
        // A first parameter that is not an id is the handler's fault to report.
        Auth::AdminOn(what) => match p.int(0) {
            Ok(id) => Err(not_authorized(s, &format!("{what} [{id}]"))),
            Err(_) => Ok(()),
        },
    }
}

/// On the leader, before a read: `Ok` once the local database is known to hold every
/// acknowledged write; otherwise the reply (the read passed on to a new leader, or an error).
async fn confirm_read(ctx: &Ctx, method: &str, body: &[u8], forwarded: bool) -> Result<(), Reply> {
    match ctx.cluster.confirm_read().await {
        Ok(()) => Ok(()),
        Err(ReadError::NotLeader) => match route_to_leader(ctx, method, body, forwarded).await {
            Some(reply) => Err(reply),
            None => Err(failure_xml(
                method,
                code::INTERNAL,
                "Cannot process request, leadership changed",
            )),
        },
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
        .header(LEADER_READ_HEADER, wire::header::LEADER_READ_VALUE)
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
    use sqlstore::TxnErrorKind;
    let txn = SqlTxn {
        stmts: vec![insert.must_match(), sqlstore::objects::next_oid(pool)],
    };
    let values = ctx
        .commit(txn, |r| match r.kind {
            TxnErrorKind::Constraint => fail(
                code::INTERNAL,
                format!("Error allocating a new {what}. NAME is already taken by {kind} {name}."),
            ),
            _ => fail(
                code::INTERNAL,
                format!("Error allocating a new {what}. {}", r.message),
            ),
        })
        .await?;
    new_id(&values, what)
}

/// The id an allocation's `RETURNING` gave back. Its absence is a bug worth an error, never an
/// id of -1 that a client would take for an object.
pub fn new_id(values: &[SqlValue], what: &str) -> MethodResult {
    values
        .first()
        .and_then(SqlValue::as_i64)
        .and_then(|id| i32::try_from(id).ok())
        .map(Value::Int)
        .ok_or_else(|| {
            warn!(what, "an allocation returned no id");
            fail(
                code::INTERNAL,
                format!("Error allocating a new {what}. The database returned no id."),
            )
        })
}

/// NO_EXISTS `Error getting <user|group|host|datastore> [<id>].` unless `table` holds `id`.
pub async fn must_exist(
    ctx: &Ctx,
    table: sqlstore::objects::Table,
    id: i64,
) -> Result<(), Failure> {
    use sqlstore::objects::Table;
    if ctx
        .read(move |c| sqlstore::objects::exists(c, table, id))
        .await?
    {
        return Ok(());
    }
    let what = match table {
        Table::User => "user",
        Table::Group => "group",
        Table::Host => "host",
        Table::Datastore => "datastore",
    };
    Err(fail(
        code::NO_EXISTS,
        format!("Error getting {what} [{id}]."),
    ))
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
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let merge = update_type(p)?;
    for _ in 0..UPDATE_RETRIES {
        let old = ctx
            .read(move |c| sqlstore::objects::template_text(c, table, column, id))
            .await?;
        let Some(old) = old else {
            return Err(missing(id));
        };
        let new = merged(&old, &text, merge)?;
        let txn = SqlTxn {
            stmts: vec![sqlstore::objects::replace_template(
                table, column, id, new, old,
            )],
        };
        let mut changed = false;
        let written = ctx
            .commit(txn, |r| {
                changed = r.kind == sqlstore::TxnErrorKind::NotFound;
                r.internal()
            })
            .await;
        match written {
            Ok(_) => return Ok(Value::Int(id as i32)),
            // Changed or deleted meanwhile: the next read says which.
            Err(_) if changed => continue,
            Err(f) => return Err(f),
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
    // A stored template that no longer parses must not be merged into: that would drop its
    // attributes. A replace (type 0) still repairs it.
    let mut out = template::Template::parse(old).map_err(|e| {
        warn!(error = %e, "a stored template does not parse; refusing to merge into it");
        fail(
            code::INTERNAL,
            format!("Cannot update template. The stored template does not parse: {e}"),
        )
    })?;
    merge_attrs(&mut out, new);
    Ok(out.to_text())
}

/// Merges `new` into `into`: each attribute named in `new` replaces all of that name.
pub fn merge_attrs(into: &mut template::Template, new: template::Template) {
    for a in &new.attrs {
        into.remove(&a.name);
    }
    for a in new.attrs {
        into.push(&a.name, a.value);
    }
}
