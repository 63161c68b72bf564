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

/// Peer call bodies read at once before their MAC is checked: with `max_peer_body`, what a
/// client without the zone key can make the server hold.
pub const PEER_READS: usize = 8;
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
    /// TLS is on: peer calls need a client certificate signed by the zone's CA.
    pub tls: bool,
    /// Turns for reading peer call bodies before their MAC is checked (it covers the body).
    pub peer_reads: Arc<tokio::sync::Semaphore>,
}

pub use wire::header::SYNC_PATH as SYNC_PATH_HEADER;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(wire::route::RPC2, post(rpc))
        .route(wire::route::METRICS, axum::routing::get(metrics))
        .route(&wire::route::sync_pattern(), axum::routing::get(sync))
        .route(&wire::route::raft_pattern(), post(peer))
        .merge(crate::dashboard::router(&state))
        .with_state(state)
}

/// `GET /metrics`: see [`crate::metrics`].
async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let text = crate::metrics::render(&st.ctx.cluster, st.ctx.config.server_id).await;
    ([("content-type", crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// Names on the answer to a call a follower passed on what this server had applied
/// (`wire::header::APPLIED`): the follower applies as much before it answers its client, who may
/// read there next (`api::leader_answered_at`).
pub(crate) fn say_applied(cluster: &crate::cluster::Cluster, response: &mut Response) {
    if let Some(applied) = cluster.last_applied() {
        if let Ok(v) = axum::http::HeaderValue::from_str(&applied.to_string()) {
            response.headers_mut().insert(wire::header::APPLIED, v);
        }
    }
}

fn xml(body: String) -> Response {
    (
        [("content-type", "text/xml")],
        api::answer_buf::into_bytes(body),
    )
        .into_response()
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
    let origin = api::Origin::of(&headers);
    let reply = if body.len() >= LARGE_REQUEST {
        handle_large(st.clone(), body, origin).await
    } else {
        api::handle(&st.ctx, &body, origin).await
    };
    let mut response = match reply {
        Reply::Xml(s) => xml(s),
        Reply::Prepared(b) => ([("content-type", "text/xml")], b).into_response(),
        Reply::Forwarded(b) => ([("content-type", "text/xml")], b).into_response(),
        Reply::NotProposed(s) => (
            [
                ("content-type", "text/xml"),
                (wire::header::NOT_PROPOSED, "1"),
            ],
            s,
        )
            .into_response(),
    };
    if origin.forwarded {
        say_applied(&st.ctx.cluster, &mut response);
    }
    response
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

/// Checks a peer call's proof of the zone key (`peerauth`); the refusal to send if it fails.
fn verify_peer(
    auth: &PeerAuth,
    call: peerauth::Call<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<peerauth::Verified, (StatusCode, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    auth.verify(call, header, body, peerauth::now())
        .map_err(|e| {
            let source = header(peerauth::SOURCE_HEADER);
            tracing::warn!(path = call.path, source = ?source, error = %e, "refused a peer call");
            (StatusCode::FORBIDDEN, e.to_string())
        })
}

/// With TLS on, peer calls must come over a connection whose client certificate the zone's CA
/// signed ([`crate::tls::ClientCert`], set per connection by [`crate::listener`]).
fn check_client_cert(
    st: &AppState,
    cert: Option<&Extension<crate::tls::ClientCert>>,
) -> Result<(), (StatusCode, String)> {
    if !st.tls || cert.is_some_and(|c| c.verified) {
        return Ok(());
    }
    tracing::warn!("refused a peer call without a client certificate");
    Err((
        StatusCode::FORBIDDEN,
        "peer calls need a client certificate signed by the zone's CA".to_string(),
    ))
}

/// An answer to a verified peer call, signed so the caller knows it comes from the zone.
fn signed(
    auth: &PeerAuth,
    call: &peerauth::Verified,
    status: StatusCode,
    body: Vec<u8>,
) -> Response {
    let mac = call.reply_mac(&auth.key, status.as_u16(), &body);
    (status, [(peerauth::REPLY_MAC_HEADER, mac)], body).into_response()
}

/// The largest peer call: an AppendEntries carries up to 4 MiB of entries plus one more entry,
/// which holds at most one change of the largest request; snapshot chunks are 3 MiB.
fn max_peer_body(st: &AppState) -> usize {
    2 * st.ctx.config.limits.max_txn_bytes() + (8 << 20)
}

async fn peer(
    State(st): State<Arc<AppState>>,
    Path(call): Path<String>,
    cert: Option<Extension<crate::tls::ClientCert>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((raft, auth)) = &st.peers else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this server runs solo").into_response();
    };
    if let Err(refused) = check_client_cert(&st, cert.as_ref()) {
        return refused.into_response();
    }
    // The MAC covers the body, so the body is read first: a few at a time, within bounds, and
    // only for calls that at least name this server and carry a MAC.
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header(peerauth::MAC_HEADER).is_none()
        || header(peerauth::TARGET_HEADER) != Some(auth.server_id.to_string().as_str())
    {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "peer call refused: missing or malformed {} or {} (this server)",
                peerauth::MAC_HEADER,
                peerauth::TARGET_HEADER
            ),
        )
            .into_response();
    }
    let Ok(_turn) = st.peer_reads.clone().acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "server stopping").into_response();
    };
    let time = st.ctx.config.limits.timeout.max(Duration::from_secs(60));
    let limit = max_peer_body(&st);
    let body = match read_body(&headers, body, limit, time).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(n)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("peer call of {n} bytes; the limit is {limit}"),
            )
                .into_response()
        }
        Err(BodyError::TooSlow) => {
            return (StatusCode::REQUEST_TIMEOUT, "peer call body too slow").into_response()
        }
        Err(BodyError::Broken(e)) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    drop(_turn);
    let path = wire::route::raft(&call);
    let what = peerauth::Call {
        method: "POST",
        path: &path,
        arg: "",
    };
    let verified = match verify_peer(auth, what, &headers, &body) {
        Ok(v) => v,
        Err(refused) => return refused.into_response(),
    };
    let mine = st.ctx.pool.location().backend().name();
    let theirs = header(wire::header::BACKEND).unwrap_or("sqlite");
    if theirs != mine {
        let why = format!(
            "server {} keeps its state in {mine}, but server {} keeps it in {theirs}: \
             every server of a zone must use the same DB BACKEND in oned.conf",
            auth.server_id,
            header(peerauth::SOURCE_HEADER).unwrap_or("?"),
        );
        consensus::network::warn_now_and_then(&format!("peer call refused: {why}"));
        return signed(auth, &verified, StatusCode::CONFLICT, why.into_bytes());
    }
    let reads = match &st.ctx.cluster {
        crate::cluster::Cluster::Ha(ha) => Some(&ha.reads),
        crate::cluster::Cluster::Solo(_) => None,
    };
    match network::serve(raft, reads, &call, &body).await {
        Ok(out) => signed(auth, &verified, StatusCode::OK, out),
        Err(e) => signed(
            auth,
            &verified,
            StatusCode::BAD_REQUEST,
            e.to_string().into_bytes(),
        ),
    }
}

/// `onezone serversync` fetching from this server: the manifest of the guide's configuration
/// files, one of them, or a fresh database backup. Only holders of the zone key may ask (a MAC
/// for this server's id), and every answer is signed with it.
async fn sync(
    State(st): State<Arc<AppState>>,
    Path(what): Path<String>,
    cert: Option<Extension<crate::tls::ClientCert>>,
    headers: HeaderMap,
) -> Response {
    let Some((_, auth)) = &st.peers else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this server runs solo").into_response();
    };
    if let Err(refused) = check_client_cert(&st, cert.as_ref()) {
        return refused.into_response();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let path = wire::route::sync(&what);
    let call = peerauth::Call {
        method: "GET",
        path: &path,
        arg: header(SYNC_PATH_HEADER).unwrap_or(""),
    };
    let verified = match verify_peer(auth, call, &headers, &[]) {
        Ok(v) => v,
        Err(refused) => return refused.into_response(),
    };
    let (status, body) = sync_answer(&st, &what, header(SYNC_PATH_HEADER)).await;
    signed(auth, &verified, status, body)
}

async fn sync_answer(st: &AppState, what: &str, path: Option<&str>) -> (StatusCode, Vec<u8>) {
    let etc = st
        .paths
        .config
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let unreadable = |e: crate::sync::SyncError| {
        tracing::warn!(error = %e, "serversync: a configuration file cannot be read");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string().into_bytes(),
        )
    };
    match what {
        wire::route::SYNC_MANIFEST => match crate::sync::manifest(&etc) {
            Ok(m) => (StatusCode::OK, m.into_bytes()),
            Err(e) => unreadable(e),
        },
        wire::route::SYNC_FILE => match path.map(|p| crate::sync::file(&etc, p)) {
            Some(Ok(Some(bytes))) => (StatusCode::OK, bytes),
            Some(Err(e)) => unreadable(e),
            None | Some(Ok(None)) => (StatusCode::NOT_FOUND, b"no such file to sync".to_vec()),
        },
        wire::route::SYNC_DB => {
            let (db, var) = (st.ctx.pool.location().clone(), st.paths.var.clone());
            let made =
                tokio::task::spawn_blocking(move || crate::sync::backup_bytes(&db, &var)).await;
            match made {
                Ok(Ok(bytes)) => {
                    tracing::info!(bytes = bytes.len(), "database backup sent for serversync");
                    (StatusCode::OK, bytes)
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "serversync: the database backup failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        e.to_string().into_bytes(),
                    )
                }
                Err(e) => {
                    tracing::error!(error = %e, "serversync: the database backup failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        e.to_string().into_bytes(),
                    )
                }
            }
        }
        _ => (StatusCode::NOT_FOUND, b"unknown sync call".to_vec()),
    }
}
