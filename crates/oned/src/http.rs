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
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/RPC2",
            post(rpc).layer(DefaultBodyLimit::max(MAX_RPC_BODY)),
        )
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
