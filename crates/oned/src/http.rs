//! The one HTTP listener: `POST /RPC2` (the OpenNebula API) and `POST /raft/{call}` (peers).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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

async fn peer(
    State(st): State<Arc<AppState>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((raft, auth)) = &st.peers else {
        return (StatusCode::SERVICE_UNAVAILABLE, "this server runs solo").into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = auth.check(header(network::KEY_HEADER), header(network::TARGET_HEADER)) {
        tracing::warn!(error = %e, "refused a peer call");
        return (StatusCode::FORBIDDEN, e.to_string()).into_response();
    }
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
