//! The web dashboard every `oned` serves on its own port, under `/dashboard/`: a page (plain
//! HTML, CSS and ES modules embedded in the binary, see `page/`) and the few calls it makes.
//!
//! - `POST /dashboard/api/login` checks `user:password` (or a login token) exactly as `/RPC2`
//!   does ([`crate::auth`]) and sets the session cookie ([`session`]); `logout` clears it.
//! - `GET /dashboard/api/me` and `/status` say who is logged in (with the CSRF token) and what
//!   this server sees: its role, the leader, the floating IP, the timeline ([`timeline`]).
//! - `POST /dashboard/api/rpc` carries an XML-RPC call of a fixed list of methods to the API
//!   dispatcher ([`crate::api::handle_as`]) as the cookie's user: the same authorization as
//!   `/RPC2`. A write reaching a follower is sent on to the leader's dashboard with the same
//!   cookie, which the leader verifies itself (the zone shares the key).
//!
//! Every request takes a slot of the listener's per-address and total request limits, as an
//! `/RPC2` call does; bodies are bounded; every state-changing call needs the CSRF header.

pub mod session;
pub mod timeline;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api;
use crate::auth::Session;
use crate::cluster::Role;
use crate::http::AppState;
use crate::listener::ConnInfo;

pub use session::LIFETIME_SECS;

/// The header carrying the CSRF token ([`session::Keys::csrf`]); `login` before a session exists.
pub const CSRF_HEADER: &str = "x-oneha-csrf";
/// Set by a follower sending a dashboard write on to the leader: the leader never sends it on.
const FORWARDED_HEADER: &str = "x-oneha-dashboard-forwarded";
/// Login bodies: a name and a password (or token) in JSON.
const MAX_LOGIN_BODY: usize = 4 << 10;
/// Calls of the page: a VM template is the largest thing it sends.
const MAX_CALL_BODY: usize = 64 << 10;
/// A write sent on to the leader: as long as the leader may take to answer one.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

/// The methods the page calls, and whether each changes state (runs on the leader).
const METHODS: &[(&str, bool)] = &[
    ("one.zone.info", false),
    ("one.zone.raftstatus", false),
    ("one.hostpool.info", false),
    ("one.vmpool.info", false),
    ("one.templatepool.info", false),
    ("one.imagepool.info", false),
    ("one.vnpool.info", false),
    ("one.userpool.info", false),
    ("one.grouppool.info", false),
    ("one.host.info", false),
    ("one.vm.info", false),
    ("one.template.info", false),
    ("one.image.info", false),
    ("one.vn.info", false),
    ("one.user.info", false),
    ("one.group.info", false),
    ("one.zone.addserver", true),
    ("one.zone.delserver", true),
    ("one.zone.resetserver", true),
    ("one.vm.allocate", true),
    ("one.vm.action", true),
    ("one.template.instantiate", true),
    ("one.user.allocate", true),
];

/// The embedded page: path under `/dashboard/static/`, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("page/app.js")),
    ("rpc.js", JS, include_str!("page/rpc.js")),
    ("charts.js", JS, include_str!("page/charts.js")),
    ("tables.js", JS, include_str!("page/tables.js")),
    ("zone.js", JS, include_str!("page/zone.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("page/style.css"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";
const INDEX: &str = include_str!("page/index.html");
/// Only this origin's files and calls; no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the dashboard keeps per server.
pub struct Dash {
    keys: session::Keys,
    timeline: Arc<timeline::Timeline>,
    /// Turns for `/api/zone`, each of which asks every other server: the live feeds this
    /// server serves at once, whoever asks (per address, the listener's limit applies first).
    zone_feeds: Arc<tokio::sync::Semaphore>,
}

/// The dashboard's routes, merged into [`crate::http::router`].
pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let dash = Arc::new(Dash {
        keys: session::Keys::new(zone_derived_key(state)),
        timeline: timeline::new(&state.ctx.cluster, state.ctx.config.server_id),
        zone_feeds: Arc::new(tokio::sync::Semaphore::new(MAX_ZONE_FEEDS)),
    });
    Router::new()
        .route("/", get(to_dashboard))
        .route("/dashboard", get(to_dashboard))
        .route("/dashboard/", get(index))
        .route("/dashboard/static/:file", get(file))
        .route("/dashboard/api/login", post(login))
        .route("/dashboard/api/logout", post(logout))
        .route("/dashboard/api/me", get(me))
        .route("/dashboard/api/status", get(status))
        .route("/dashboard/api/zone", get(zone))
        .route("/dashboard/api/rpc", post(rpc))
        .layer(Extension(dash))
}

/// The session key: derived from the zone key, so every server of the zone has the same. A
/// server without one (it cannot happen once `run` started: it creates `one_key`) uses a random
/// key, and its sessions end with it.
fn zone_derived_key(state: &AppState) -> [u8; 32] {
    const DOMAIN: &str = "dashboard session";
    if let Some((_, auth)) = &state.peers {
        return auth.key.derive(DOMAIN);
    }
    match std::fs::read_to_string(state.paths.one_key()) {
        Ok(text) => peerauth::ZoneKey::new(&text).derive(DOMAIN),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: no zone key; sessions will not outlive this server");
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
            key
        }
    }
}

/// The headers every dashboard answer carries: nothing cached, nothing sniffed or framed.
fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn json_answer(status: StatusCode, value: serde_json::Value) -> Response {
    hardened(
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    json_answer(status, json!({ "error": message }))
}

async fn to_dashboard() -> Response {
    hardened((StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard/")]).into_response())
}

async fn index() -> Response {
    hardened(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CSP),
            ],
            INDEX,
        )
            .into_response(),
    )
}

async fn file(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, text)) => hardened(([(header::CONTENT_TYPE, *kind)], *text).into_response()),
        None => error(StatusCode::NOT_FOUND, "no such file"),
    }
}

/// A request refused before it reached the API: its status and what the page shows.
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal(status, message.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// A slot of the listener's request limits, held until the answer is built.
fn admit(
    conn: &Option<Extension<ConnInfo>>,
) -> Result<Option<crate::listener::RequestGuard>, Refusal> {
    match conn {
        Some(Extension(info)) if info.peer_only => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections: this connection may only carry calls between zone servers",
        )),
        Some(Extension(info)) => info
            .gate
            .begin_request(info.addr.ip())
            .map(Some)
            .map_err(|busy| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, busy.0)),
        None => Ok(None),
    }
}

async fn read_limited(st: &AppState, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let time = st.ctx.config.limits.timeout;
    match tokio::time::timeout(time, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body was too slow",
        )),
        Ok(Err(_)) => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body unreadable or over {limit} bytes"),
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

fn header_str(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The cookie's session, and the cookie value; a 401 answer without a valid one.
async fn authenticated(
    st: &AppState,
    dash: &Dash,
    headers: &HeaderMap,
) -> Result<(Session, String), Refusal> {
    let unauthorized = || {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "not logged in, or the session ended",
        )
    };
    let token = session::cookie(header_str(headers, header::COOKIE), session::COOKIE)
        .ok_or_else(unauthorized)?
        .to_string();
    let claim = session::parse(&token, crate::auth::unix_now()).ok_or_else(unauthorized)?;
    let name = claim.name.clone();
    let user = st
        .ctx
        .read(move |c| sqlstore::find_user_by_name(c, &name))
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the user pool cannot be read",
            )
        })?
        .ok_or_else(unauthorized)?;
    let session = session::verify(&dash.keys, &claim, &user, crate::auth::unix_now())
        .ok_or_else(unauthorized)?;
    Ok((session, token))
}

/// Refuses a state-changing request whose CSRF header does not match its cookie.
fn check_csrf(dash: &Dash, token: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    if dash.keys.csrf_ok(token, header_str(headers, CSRF_HEADER)) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page",
        ))
    }
}

fn set_cookie(st: &AppState, value: &str, max_age: i64) -> String {
    let secure = if st.tls { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        session::COOKIE
    )
}

#[derive(serde::Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(st): State<Arc<AppState>>,
    Extension(dash): Extension<Arc<Dash>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _slot = match admit(&conn) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    // A custom header a cross-site form cannot send, nor a cross-site fetch without a
    // preflight: no logging a victim's browser into the attacker's account.
    if header_str(&headers, CSRF_HEADER) != "login" {
        return error(StatusCode::FORBIDDEN, "missing CSRF header");
    }
    let body = match read_limited(&st, body, MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let Ok(form) = serde_json::from_slice::<LoginForm>(&body) else {
        return error(StatusCode::BAD_REQUEST, "expected {\"user\", \"password\"}");
    };
    let refused = || error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    if form.user.is_empty() || form.user.contains(':') {
        return refused();
    }
    let ctx = &st.ctx;
    let secret = format!("{}:{}", form.user, form.password);
    let session = match ctx
        .auth
        .authenticate(&ctx.pool, &ctx.cluster, &secret)
        .await
    {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::info!(user = %form.user, "dashboard: login refused");
            return refused();
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let Some(user) = read_user(&st, &form.user).await else {
        return refused();
    };
    // A login token scoped to one group opens a session in that group alone.
    let scope = if session.groups == user.groups {
        -1
    } else {
        session.gid
    };
    let now = crate::auth::unix_now();
    let mut expiry = now + LIFETIME_SECS;
    let given = Sha256::digest(form.password.as_bytes());
    let token = user
        .tokens
        .iter()
        .find(|t| t.is_valid_at(now) && Sha256::digest(t.token.as_bytes()) == given);
    let token = match token {
        // Logged in with a login token: the session ends with it.
        Some(t) => {
            if t.expiration != -1 {
                expiry = expiry.min(t.expiration);
            }
            dash.keys
                .issue(&user, scope, expiry, session::Via::Token, &t.token)
        }
        None => {
            let user = settled_hash(&st, user).await;
            dash.keys
                .issue(&user, scope, expiry, session::Via::Password, &user.password)
        }
    };
    tracing::info!(user = %session.name, "dashboard: logged in");
    let answer = json!({
        "user": session.name,
        "uid": session.uid,
        "admin": session.is_admin(),
        "csrf": dash.keys.csrf(&token),
        "expires": expiry,
    });
    let mut r = json_answer(StatusCode::OK, answer);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&st, &token, LIFETIME_SECS)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn read_user(st: &AppState, name: &str) -> Option<sqlstore::UserRow> {
    let name = name.to_string();
    st.ctx
        .read(move |c| sqlstore::find_user_by_name(c, &name))
        .await
        .ok()
        .flatten()
}

/// How long a login waits for the leader to replace an OpenNebula SHA-256 hash by an argon2id
/// one (it starts at once): a session bound to the old hash would end as soon as it landed.
const HASH_UPGRADE_WAIT: Duration = Duration::from_secs(3);

/// `user` once its stored hash is the one the session should be bound to.
async fn settled_hash(st: &AppState, user: sqlstore::UserRow) -> sqlstore::UserRow {
    let legacy = |u: &sqlstore::UserRow| {
        u.password.len() == 64 && u.password.bytes().all(|b| b.is_ascii_hexdigit())
    };
    // Only the leader upgrades hashes; a follower's session ends at the next leader login.
    if !legacy(&user) || !matches!(st.ctx.cluster.role(), Role::Leader | Role::Solo) {
        return user;
    }
    let deadline = tokio::time::Instant::now() + HASH_UPGRADE_WAIT;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    while tokio::time::Instant::now() < deadline {
        ticks.tick().await;
        match read_user(st, &user.name).await {
            Some(now) if !legacy(&now) => return now,
            _ => {}
        }
    }
    user
}

async fn logout(
    State(st): State<Arc<AppState>>,
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
) -> Response {
    let token = session::cookie(header_str(&headers, header::COOKIE), session::COOKIE)
        .unwrap_or("")
        .to_string();
    if let Err(r) = check_csrf(&dash, &token, &headers) {
        return r.into_response();
    }
    let mut r = json_answer(StatusCode::OK, json!({ "ok": true }));
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&st, "", 0)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn me(
    State(st): State<Arc<AppState>>,
    Extension(dash): Extension<Arc<Dash>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
) -> Response {
    let _slot = match admit(&conn) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let (session, token) = match authenticated(&st, &dash, &headers).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    json_answer(
        StatusCode::OK,
        json!({
            "user": session.name,
            "uid": session.uid,
            "admin": session.is_admin(),
            "csrf": dash.keys.csrf(&token),
            "zone_id": st.ctx.config.zone_id,
            "server_id": st.ctx.config.server_id,
        }),
    )
}

/// The address `RAFT_LEADER_HOOK` moves to the leader (the guide's `vip.sh leader eth0 IP/NN`).
fn floating_ip(hook: Option<&crate::config::Hook>) -> Option<String> {
    hook?.arguments.split_whitespace().find_map(|w| {
        let ip = w.split('/').next().unwrap_or(w);
        ip.parse::<std::net::IpAddr>().ok().map(|_| w.to_string())
    })
}

async fn status(
    State(st): State<Arc<AppState>>,
    Extension(dash): Extension<Arc<Dash>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
) -> Response {
    let _slot = match admit(&conn) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = authenticated(&st, &dash, &headers).await {
        return r.into_response();
    }
    json_answer(StatusCode::OK, status_value(&st, &dash).await)
}

/// What this server tells of itself.
async fn status_value(st: &AppState, dash: &Dash) -> serde_json::Value {
    let ctx = &st.ctx;
    let raft = ctx.cluster.status(ctx.config.server_id).await;
    let (role, leader) = match ctx.cluster.role() {
        Role::Solo => ("solo", raft.server_id),
        Role::Leader => ("leader", raft.server_id),
        Role::Follower { leader } => ("follower", leader.map_or(-1, |(id, _)| id as i64)),
        Role::Candidate => ("candidate", -1),
    };
    json!({
        "server_id": raft.server_id,
        "role": role,
        "leader": leader,
        "term": raft.term,
        "commit": raft.commit,
        "log_index": raft.log_index,
        "votedfor": raft.votedfor,
        "replication": replication(st),
        "floating_ip": floating_ip(st.ctx.config.leader_hook.as_ref()),
        "timeline": dash.timeline.recent(),
        "writes": writes_answered(),
        "now": crate::auth::unix_now(),
    })
}

/// The writes this server has answered (on a follower, passed to the leader and back): how
/// many and their total seconds, from `/metrics`' call histograms. Two polls apart, the
/// difference is the mean time a write took to commit, as its client saw it here.
fn writes_answered() -> serde_json::Value {
    let (mut count, mut seconds) = (0u64, 0f64);
    for (labels, h) in telemetry::m::CALLS.snapshot() {
        if labels.get(1).map(String::as_str) == Some("write")
            && labels.get(2).map(String::as_str) != Some("error")
        {
            count += h.count();
            seconds += h.sum();
        }
    }
    json!({ "count": count, "seconds": seconds })
}

fn xml(status: StatusCode, body: impl Into<Body>) -> Response {
    hardened((status, [(header::CONTENT_TYPE, "text/xml")], body.into()).into_response())
}

async fn rpc(
    State(st): State<Arc<AppState>>,
    Extension(dash): Extension<Arc<Dash>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _slot = match admit(&conn) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let (session, token) = match authenticated(&st, &dash, &headers).await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&dash, &token, &headers) {
        return r.into_response();
    }
    let body = match read_limited(&st, body, MAX_CALL_BODY).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let method = match xmlrpc::parse_call(&body) {
        Ok(call) => call.method,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("not an XML-RPC call: {e}"),
            )
        }
    };
    let Some(&(_, write)) = METHODS.iter().find(|(m, _)| *m == method) else {
        return error(
            StatusCode::FORBIDDEN,
            &format!("the dashboard does not call {method}"),
        );
    };
    let forwarded = headers.contains_key(FORWARDED_HEADER);
    if write && !forwarded {
        if let Some(endpoint) = leader_elsewhere(&st).await {
            return forward(&st, &endpoint, &headers, &method, body).await;
        }
    }
    let origin = api::Origin {
        seen: api::seen_index(&headers),
        ..api::Origin::default()
    };
    let mut response = match api::handle_as(&st.ctx, &body, origin, Some(session)).await {
        api::Reply::Xml(s) => xml(StatusCode::OK, s),
        api::Reply::Prepared(b) => xml(StatusCode::OK, b),
        api::Reply::Forwarded(b) => xml(StatusCode::OK, b),
        api::Reply::NotProposed(s) => xml(StatusCode::OK, s),
    };
    if forwarded {
        crate::http::say_applied(&st.ctx.cluster, &mut response);
    }
    response
}

/// The leader's `/RPC2` endpoint when another server leads, after waiting a bounded time for
/// an election; `None` to run the call here (this server leads, or no leader came up: the
/// dispatcher then answers as it does on `/RPC2`).
async fn leader_elsewhere(st: &AppState) -> Option<String> {
    let cluster = &st.ctx.cluster;
    let mut role = cluster.role();
    if matches!(role, Role::Candidate | Role::Follower { leader: None }) {
        role = cluster
            .wait_for_new_leader(st.ctx.config.leader_wait(), None)
            .await;
    }
    match role {
        Role::Follower {
            leader: Some((_, endpoint)),
        } => Some(endpoint),
        _ => None,
    }
}

/// Sends a write on to the leader's dashboard with the caller's cookie and CSRF token: the
/// leader checks both itself, and runs the call as the same user. Its answer names the index the
/// leader had applied, which this server applies before passing the answer on: the page's next
/// read here shows the write, and never an older state than the one it was shown.
async fn forward(
    st: &AppState,
    endpoint: &str,
    headers: &HeaderMap,
    method: &str,
    body: Bytes,
) -> Response {
    let base = endpoint
        .strip_suffix(wire::route::RPC2)
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let url = format!("{base}/dashboard/api/rpc");
    let mut request = st.ctx.http.post(&url);
    if let Some(applied) = st.ctx.cluster.last_applied() {
        request = request.header(wire::header::APPLIED, applied.to_string());
    }
    let sent = request
        .timeout(FORWARD_TIMEOUT)
        .header(header::COOKIE.as_str(), header_str(headers, header::COOKIE))
        .header(CSRF_HEADER, header_str(headers, CSRF_HEADER))
        .header(FORWARDED_HEADER, "1")
        .header(header::CONTENT_TYPE.as_str(), "text/xml")
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let json = r
                .headers()
                .get(header::CONTENT_TYPE.as_str())
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            let applied = api::seen_index(r.headers());
            let answer = r.bytes().await;
            if let (Ok(_), Some(index)) = (&answer, applied) {
                api::leader_answered_at(&st.ctx, method, index).await;
            }
            answer.map(|b| (status, json, b))
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok((status, false, bytes)) => xml(status, bytes),
        Ok((status, true, bytes)) => {
            hardened((status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response())
        }
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: a write could not reach the leader");
            error(
                StatusCode::BAD_GATEWAY,
                "the leader could not be reached; try again",
            )
        }
    }
}

/// On the leader, the last log index each server is known to hold (openraft's `matched`).
fn replication(st: &AppState) -> serde_json::Value {
    let Some(raft) = st.ctx.cluster.raft() else {
        return json!({});
    };
    let m = raft.metrics().borrow().clone();
    let mut out = serde_json::Map::new();
    for (id, matched) in m.replication.iter().flatten() {
        out.insert(
            id.to_string(),
            json!(matched.map_or(-1, |l| l.index as i64)),
        );
    }
    serde_json::Value::Object(out)
}

/// `/api/zone` answers built at once (a page asks once a second): beyond, a busy answer the
/// page retries.
const MAX_ZONE_FEEDS: usize = 16;
/// Servers asked at most by one `/api/zone`; a zone has a handful.
const MAX_SERVERS: usize = 16;
/// How long a server may take to tell its status before it shows as unreachable.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(800);

/// `GET /dashboard/api/zone`: every member of the zone as Raft knows it, each with the status
/// it tells (its own `/dashboard/api/status`, asked with the caller's cookie), or why not.
async fn zone(
    State(st): State<Arc<AppState>>,
    Extension(dash): Extension<Arc<Dash>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
) -> Response {
    let _slot = match admit(&conn) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = authenticated(&st, &dash, &headers).await {
        return r.into_response();
    }
    let Ok(_feed) = dash.zone_feeds.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboard feeds on this server; retrying",
        );
    };
    let me = st.ctx.config.server_id;
    let members: Vec<(u64, String)> = match st.ctx.cluster.raft() {
        Some(raft) => {
            let m = raft.metrics().borrow().clone();
            m.membership_config
                .membership()
                .nodes()
                .take(MAX_SERVERS)
                .map(|(id, n)| (*id, n.rpc.clone()))
                .collect()
        }
        None => Vec::new(),
    };
    let cookie = header_str(&headers, header::COOKIE).to_string();
    let mut asks = tokio::task::JoinSet::new();
    for (id, endpoint) in members.iter().cloned() {
        if id as i64 == me {
            continue;
        }
        let (http, cookie) = (st.ctx.http.clone(), cookie.clone());
        asks.spawn(async move {
            let base = endpoint
                .strip_suffix(wire::route::RPC2)
                .unwrap_or(&endpoint)
                .trim_end_matches('/')
                .to_string();
            let got = async {
                let r = http
                    .get(format!("{base}/dashboard/api/status"))
                    .timeout(PEER_STATUS_TIMEOUT)
                    .header(header::COOKIE.as_str(), cookie)
                    .send()
                    .await
                    .map_err(|_| "unreachable".to_string())?;
                if !r.status().is_success() {
                    return Err(format!("answered {}", r.status().as_u16()));
                }
                let bytes = r.bytes().await.map_err(|_| "unreachable".to_string())?;
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .map_err(|_| "unreadable status".to_string())
            }
            .await;
            (id, got)
        });
    }
    let mut told = std::collections::BTreeMap::new();
    told.insert(me as u64, Ok(status_value(&st, &dash).await));
    while let Some(done) = asks.join_next().await {
        if let Ok((id, got)) = done {
            told.insert(id, got);
        }
    }
    let servers: Vec<serde_json::Value> = members
        .iter()
        .map(|(id, endpoint)| {
            let (status, problem) = match told.remove(id) {
                Some(Ok(mut v)) => {
                    // The page shows one timeline: the answering server's.
                    if let (Some(o), true) = (v.as_object_mut(), *id as i64 != me) {
                        o.remove("timeline");
                    }
                    (v, serde_json::Value::Null)
                }
                Some(Err(e)) => (serde_json::Value::Null, json!(e)),
                None => (serde_json::Value::Null, serde_json::Value::Null),
            };
            json!({ "id": id, "endpoint": endpoint, "status": status, "error": problem })
        })
        .collect();
    json_answer(StatusCode::OK, json!({ "here": me, "servers": servers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floating_ip_is_read_from_the_leader_hook_arguments() {
        let hook = |args: &str| crate::config::Hook {
            command: "raft/vip.sh".into(),
            arguments: args.into(),
        };
        let vip = hook("leader eth0 10.3.3.2/24");
        assert_eq!(floating_ip(Some(&vip)).as_deref(), Some("10.3.3.2/24"));
        assert_eq!(floating_ip(Some(&hook("leader eth0"))), None);
        assert_eq!(floating_ip(None), None);
    }

    #[test]
    fn every_embedded_file_is_served_and_the_page_names_only_them() {
        for (name, _, text) in FILES {
            assert!(!text.is_empty(), "{name}");
        }
        for script in ["app.js", "style.css"] {
            assert!(
                INDEX.contains(&format!("/dashboard/static/{script}")),
                "{script}"
            );
        }
        // Every module a module imports is embedded.
        for (_, _, text) in FILES {
            for import in text.split("from \"./").skip(1) {
                let name = import.split('"').next().unwrap_or("");
                assert!(FILES.iter().any(|(n, _, _)| *n == name), "{name}");
            }
        }
        // No inline script or style: the CSP forbids them.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
    }
}
