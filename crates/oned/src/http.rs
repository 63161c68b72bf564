//! The routes of the one HTTP listener: `POST /RPC2` (the OpenNebula API), `POST /raft/{call}`
//! (peers) and `GET /oneha/sync/{what}` (serversync), with the bounds each puts on a body.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use consensus::network::{self, PeerAuth};
use consensus::Raft;
use http_body_util::BodyExt;

use crate::api::{self, Ctx, Reply};
use crate::listener::ConnInfo;

/// Snapshot chunks are 3 MiB by default and one log entry at most the largest request plus its
/// envelope; leave room for both.
const MAX_PEER_BODY: usize = 128 << 20;
/// xmlrpc-c's code for a request over its size limit (`XMLRPC_LIMIT_EXCEEDED_ERROR`).
const LIMIT_EXCEEDED: i32 = -509;

/// A call from this size on is a large one (see [`handle_large`]).
const LARGE_REQUEST: usize = 256 << 10;
/// Large calls handled at once; the others wait their turn.
pub const LARGE_CALLS: usize = 2;

pub struct AppState {
    pub ctx: Ctx,
    /// Turns for large calls ([`LARGE_CALLS`]).
    pub large_calls: Arc<tokio::sync::Semaphore>,
    pub peers: Option<(Raft, PeerAuth)>,
    pub paths: crate::config::Paths,
}

/// Header naming the file `GET /oneha/sync/file` returns.
pub const SYNC_PATH_HEADER: &str = "x-oneha-path";

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/RPC2", post(rpc))
        .route("/oneha/sync/:what", axum::routing::get(sync))
        .route("/raft/:call", post(peer))
        .with_state(state)
}

fn xml(body: String) -> Response {
    ([("content-type", "text/xml")], body).into_response()
}

fn fault(code: i32, message: &str) -> Response {
    xml(xmlrpc::write_fault(code, message))
}

/// Why a request body was not read whole.
enum BodyError {
    TooLarge(usize),
    TooSlow,
    Broken(String),
}

/// Reads a body of at most `limit` bytes within `time`. A body over the limit is read on and
/// thrown away (up to four times the limit, within the same time) so that the client, still
/// sending, reads the refusal instead of a broken pipe; its bytes are never kept.
async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    time: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let drain_cap = limit.saturating_mul(4);
    let read = async {
        let mut kept = Vec::with_capacity(declared.unwrap_or(0).min(limit));
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen += data.len();
            if seen > drain_cap {
                break;
            }
            if seen <= limit {
                kept.extend_from_slice(&data);
            }
        }
        if seen > limit || declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge(declared.unwrap_or(seen).max(seen)));
        }
        Ok(Bytes::from(kept))
    };
    match tokio::time::timeout(time, read).await {
        Err(_) => Err(BodyError::TooSlow),
        Ok(r) => r,
    }
}

async fn rpc(
    State(st): State<Arc<AppState>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limits = &st.ctx.config.limits;
    // Held until the answer is built: the slot bounds memory and work per address and in total.
    let _slot = match &conn {
        Some(Extension(info)) if info.peer_only => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections: this connection may only carry calls between zone servers",
            )
                .into_response();
        }
        Some(Extension(info)) => match info.gate.begin_request(info.addr.ip()) {
            Ok(slot) => Some(slot),
            Err(busy) => return fault(api::code::INTERNAL, &busy.0),
        },
        None => None,
    };
    let body = match read_body(&headers, body, limits.message_size, limits.timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(n)) => {
            return fault(
                LIMIT_EXCEEDED,
                &format!(
                    "XML-RPC request too large ({n} bytes); the limit is {} bytes (MESSAGE_SIZE)",
                    limits.message_size
                ),
            )
        }
        Err(BodyError::TooSlow) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s (TIMEOUT)",
                    limits.timeout.as_secs()
                ),
            )
                .into_response()
        }
        Err(BodyError::Broken(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unreadable request body: {e}"),
            )
                .into_response()
        }
    };
    let origin = api::Origin {
        forwarded: headers.contains_key(api::FORWARDED_HEADER),
        leader_read: headers
            .get(api::LEADER_READ_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"leader")),
    };
    let reply = if body.len() >= LARGE_REQUEST {
        handle_large(st.clone(), body, origin).await
    } else {
        api::handle(&st.ctx, &body, origin).await
    };
    match reply {
        Reply::Xml(s) => xml(s),
        Reply::Forwarded(b) => ([("content-type", "text/xml")], b).into_response(),
    }
}

/// Runs a large call (parsing megabytes of XML and template text) on a blocking thread, a few
/// at a time: on the runtime's own threads it would hold up, for as long as it parses, the
/// heartbeats and the commits of everyone else.
async fn handle_large(st: Arc<AppState>, body: Bytes, origin: api::Origin) -> Reply {
    let Ok(_turn) = st.large_calls.clone().acquire_owned().await else {
        return Reply::Xml(xmlrpc::write_fault(api::code::INTERNAL, "server stopping"));
    };
    let rt = tokio::runtime::Handle::current();
    let run = tokio::task::spawn_blocking(move || rt.block_on(api::handle(&st.ctx, &body, origin)));
    match run.await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "a large call failed");
            Reply::Xml(xmlrpc::write_fault(api::code::INTERNAL, "internal error"))
        }
    }
}

async fn peer(
    State(st): State<Arc<AppState>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((raft, auth)) = &st.peers else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this server runs solo").into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = auth.check(header(network::KEY_HEADER), header(network::TARGET_HEADER)) {
        tracing::warn!(error = %e, "refused a peer call");
        return (StatusCode::FORBIDDEN, e.to_string()).into_response();
    }
    // Only a caller holding the zone key gets here; its body may be large (an entry, a snapshot
    // chunk) and slow on a busy link, so it has the peer calls' own bounds.
    let time = st.ctx.config.limits.timeout.max(Duration::from_secs(60));
    let body = match read_body(&headers, body, MAX_PEER_BODY, time).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(n)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("peer call of {n} bytes; the limit is {MAX_PEER_BODY}"),
            )
                .into_response()
        }
        Err(BodyError::TooSlow) => {
            return (StatusCode::REQUEST_TIMEOUT, "peer call body too slow").into_response()
        }
        Err(BodyError::Broken(e)) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    match network::serve(raft, &call, &body).await {
        Ok(out) => out.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// `onezone serversync` fetching from this server: the manifest of the guide's configuration
/// files, one of them, or a fresh database backup. Only other servers of the zone (zone key,
/// this server's id) may ask.
async fn sync(
    State(st): State<Arc<AppState>>,
    Path(what): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((_, auth)) = &st.peers else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this server runs solo").into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = auth.check(header(network::KEY_HEADER), header(network::TARGET_HEADER)) {
        tracing::warn!(error = %e, "refused a serversync call");
        return (StatusCode::FORBIDDEN, e.to_string()).into_response();
    }
    let etc = st
        .paths
        .config
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    match what.as_str() {
        "manifest" => crate::sync::manifest(&etc).into_response(),
        "file" => match header(SYNC_PATH_HEADER).and_then(|p| crate::sync::file(&etc, p)) {
            Some(bytes) => bytes.into_response(),
            None => (StatusCode::NOT_FOUND, "no such file to sync").into_response(),
        },
        "db" => {
            let (db, var) = (st.paths.state_db(), st.paths.var.clone());
            let made =
                tokio::task::spawn_blocking(move || crate::sync::backup_bytes(&db, &var)).await;
            match made {
                Ok(Ok(bytes)) => {
                    tracing::info!(bytes = bytes.len(), "database backup sent for serversync");
                    bytes.into_response()
                }
                Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "unknown sync call").into_response(),
    }
}
