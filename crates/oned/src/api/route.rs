//! Routing by the method table's kind: a write reaching a follower goes to the leader, byte for
//! byte; a leader read on the leader waits for the read barrier, and on a follower for a read
//! index from the leader and its own apply of it (`consensus::follower_read`), or goes to the
//! leader when that cannot be had.

use consensus::{FollowerReadError, ReadError};
use tracing::{debug, warn};

use super::{code, error, failure_xml, Ctx, Reply, FORWARDED_HEADER, LEADER_READ_HEADER};
use crate::cluster::Role;

/// Before a leader read: `Ok` once the local database is known to hold every acknowledged
/// write, with the caller authenticated again on a follower (`Some`: its database moved on
/// since the first check); otherwise the reply (the read passed on to the leader, or an error).
pub(super) async fn leader_read(
    ctx: &Ctx,
    method: &str,
    body: &[u8],
    forwarded: bool,
    session: &str,
) -> Result<Option<crate::auth::Session>, Reply> {
    let follower = matches!(ctx.cluster.role(), Role::Follower { leader: Some(_) });
    if follower && !forwarded {
        match ctx.cluster.confirm_follower_read().await {
            Ok(()) => {
                telemetry::m::FOLLOWER_READS.inc();
                return match ctx
                    .auth
                    .authenticate(&ctx.pool, &ctx.cluster, session)
                    .await
                {
                    Ok(Some(user)) => Ok(Some(user)),
                    Ok(None) => Err(failure_xml(
                        method,
                        code::AUTHENTICATION,
                        "User couldn't be authenticated, aborting call.",
                    )),
                    Err(e) => Err(failure_xml(method, code::INTERNAL, &e.to_string())),
                };
            }
            Err(FollowerReadError::Refused(e)) => {
                return Err(failure_xml(
                    method,
                    code::INTERNAL,
                    &format!("Cannot process request, {e}"),
                ))
            }
            Err(FollowerReadError::Forward(why)) => {
                debug!(%why, "a leader read goes to the leader");
            }
        }
    }
    if let Some(reply) = route_to_leader(ctx, method, body, forwarded).await {
        return Err(reply);
    }
    confirm_read(ctx, method, body, forwarded)
        .await
        .map(|()| None)
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
/// A leader that refuses the connection never saw the call, and one that answers
/// [`wire::header::NOT_PROPOSED`] refused it before proposing it (it was handing leadership
/// over, or had stepped down): either way it is safe to wait for the next leader and try again
/// within the bounded wait. A call sent with no answer (a timeout, a connection lost) is never
/// retried, since it may have been applied.
///
/// A call that was itself forwarded is never forwarded again: where this server does not lead,
/// it answers at once that it did not propose the call, and the forwarding server retries.
pub(super) async fn route_to_leader(
    ctx: &Ctx,
    method: &str,
    body: &[u8],
    forwarded: bool,
) -> Option<Reply> {
    let deadline = tokio::time::Instant::now() + ctx.config.leader_wait();
    let mut dead_leader: Option<u64> = None;
    loop {
        let mut role = ctx.cluster.role();
        if forwarded && !matches!(role, Role::Solo | Role::Leader) {
            return Some(Reply::NotProposed(error::api_failure(
                method,
                code::INTERNAL,
                "Cannot process request, leader changed while forwarding",
            )));
        }
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
            } if Some(id) != dead_leader => match forward(ctx, method, body, id, &endpoint).await {
                Forwarded::Done(reply) => return Some(reply),
                Forwarded::NotRun(reply) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Some(reply);
                    }
                    dead_leader = Some(id);
                }
            },
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
    /// Certainly not applied: the leader could not be reached at all, or it answered that it
    /// refused the call before proposing it.
    NotRun(Reply),
}

async fn forward(ctx: &Ctx, method: &str, body: &[u8], leader: u64, endpoint: &str) -> Forwarded {
    let timeout = ctx.config.write_deadline() + std::time::Duration::from_secs(2);
    telemetry::m::FORWARDED.inc();
    let mut request = ctx.http.post(endpoint);
    if let Some(applied) = ctx.cluster.last_applied() {
        request = request.header(wire::header::APPLIED, applied.to_string());
    }
    let sent = request
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
        Ok(resp) if resp.status().is_success() => {
            let not_proposed = resp.headers().contains_key(wire::header::NOT_PROPOSED);
            let applied = super::seen_index(resp.headers());
            match resp.bytes().await {
                Ok(b) if not_proposed => {
                    telemetry::m::FORWARD_FAILURES.inc();
                    warn!(
                        leader,
                        "the leader refused a forwarded call before proposing it"
                    );
                    Forwarded::NotRun(Reply::Forwarded(b.to_vec()))
                }
                Ok(b) => {
                    if let Some(index) = applied {
                        leader_answered_at(ctx, method, index).await;
                    }
                    Forwarded::Done(Reply::Forwarded(b.to_vec()))
                }
                Err(e) => Forwarded::Done(failure_xml(
                    method,
                    code::INTERNAL,
                    &format!("Cannot process request, error reading the leader's answer: {e}"),
                )),
            }
        }
        Ok(resp) => Forwarded::Done(failure_xml(
            method,
            code::INTERNAL,
            &format!(
                "Cannot process request, leader {leader} answered HTTP {}",
                resp.status()
            ),
        )),
        Err(e) => {
            // reqwest's own text says only "error sending request": the causes say why.
            let why = error_chain(&e);
            telemetry::m::FORWARD_FAILURES.inc();
            warn!(leader, error = %why, "forwarding to the leader failed");
            let reply = failure_xml(method, code::INTERNAL, &format!("Cannot process request, error forwarding to the leader {leader} ({endpoint}): {why}"));
            if e.is_connect() {
                Forwarded::NotRun(reply)
            } else {
                Forwarded::Done(reply)
            }
        }
    }
}

/// How long a follower holds the answer to a forwarded write for its own apply of it.
const OWN_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Before a follower passes on the leader's answer to `method`, given when the leader had applied
/// `index`: this server's reads wait for that state from now on (its client saw it), and a
/// write's client reads its write here at once.
pub(crate) async fn leader_answered_at(ctx: &Ctx, method: &str, index: u64) {
    ctx.cluster.shown(index);
    read_own_write(ctx, method, index).await;
}

/// After a forwarded write: waits, boundedly, until this server has applied what the leader had
/// when it answered, so the client's next read here sees its own write.
async fn read_own_write(ctx: &Ctx, method: &str, index: u64) {
    if super::method::lookup(method).is_none_or(|m| m.kind != super::method::Kind::Write) {
        return;
    }
    if let Err(e) = ctx.cluster.wait_applied(index, OWN_WRITE_WAIT).await {
        telemetry::m::FORWARDED_ANSWERED_UNAPPLIED.inc();
        warn!(index, error = %e, "answering a forwarded write this server has not applied yet");
    }
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}
