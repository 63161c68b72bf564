//! The one HTTP listener: `POST /RPC2` (the OpenNebula API) and `POST /raft/{call}` (peers).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Extension;
use axum::Router;
use consensus::network::{self, PeerAuth};
use consensus::Raft;

use crate::api::{self, Ctx, Reply};

/// Larger than any sane API call (templates are small) but far below what could hurt the server.
const MAX_RPC_BODY: usize = 8 << 20;
/// Snapshot chunks are 3 MiB by default; leave room for their envelope.
const MAX_PEER_BODY: usize = 64 << 20;

pub struct AppState {
    pub ctx: Ctx,
    pub peers: Option<(Raft, PeerAuth)>,
    pub paths: crate::config::Paths,
    /// TLS is on: peer calls need a client certificate signed by the zone's CA.
    pub tls: bool,
}

/// Header naming the file `GET /oneha/sync/file` returns.
pub const SYNC_PATH_HEADER: &str = "x-oneha-path";

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/RPC2",
            post(rpc).layer(DefaultBodyLimit::max(MAX_RPC_BODY)),
        )
        .route("/oneha/sync/:what", axum::routing::get(sync))
        .route(
            "/raft/:call",
            post(peer).layer(DefaultBodyLimit::max(MAX_PEER_BODY)),
        )
        .with_state(state)
}

async fn rpc(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let origin = api::Origin {
        forwarded: headers.contains_key(api::FORWARDED_HEADER),
        leader_read: headers
            .get(api::LEADER_READ_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"leader")),
    };
    let body = match api::handle(&st.ctx, &body, origin).await {
        Reply::Xml(s) => s.into_bytes(),
        Reply::Forwarded(b) => b,
    };
    ([("content-type", "text/xml")], body).into_response()
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
/// signed ([`crate::tls::ClientCert`], set per connection by [`crate::tls::serve`]).
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

async fn peer(
    State(st): State<Arc<AppState>>,
    Path(call): Path<String>,
    cert: Option<Extension<crate::tls::ClientCert>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((raft, auth)) = &st.peers else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this server runs solo").into_response();
    };
    if let Err(refused) = check_client_cert(&st, cert.as_ref()) {
        return refused.into_response();
    }
    let path = format!("/raft/{call}");
    let what = peerauth::Call {
        method: "POST",
        path: &path,
        arg: "",
    };
    let verified = match verify_peer(auth, what, &headers, &body) {
        Ok(v) => v,
        Err(refused) => return refused.into_response(),
    };
    match network::serve(raft, &call, &body).await {
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
    let path = format!("/oneha/sync/{what}");
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
    match what {
        "manifest" => (StatusCode::OK, crate::sync::manifest(&etc).into_bytes()),
        "file" => match path.and_then(|p| crate::sync::file(&etc, p)) {
            Some(bytes) => (StatusCode::OK, bytes),
            None => (StatusCode::NOT_FOUND, b"no such file to sync".to_vec()),
        },
        "db" => {
            let db = st.paths.state_db();
            let tmp = st
                .paths
                .var
                .join(format!(".serversync-{}.bck", std::process::id()));
            let made = tokio::task::spawn_blocking(move || {
                let out = sqlstore::write_backup(&db, &tmp, |_, _| {})
                    .map_err(|e| e.to_string())
                    .and_then(|_| std::fs::read(&tmp).map_err(|e| e.to_string()));
                let _ = std::fs::remove_file(&tmp);
                out
            })
            .await;
            match made {
                Ok(Ok(bytes)) => {
                    tracing::info!(bytes = bytes.len(), "database backup sent for serversync");
                    (StatusCode::OK, bytes)
                }
                Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.into_bytes()),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    e.to_string().into_bytes(),
                ),
            }
        }
        _ => (StatusCode::NOT_FOUND, b"unknown sync call".to_vec()),
    }
}
