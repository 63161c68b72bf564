//! Server-to-server calls. Each is an HTTP POST to `/raft/{append,vote,snapshot}.v{FORMAT}` on
//! the peer's `/RPC2` host and port, with a bincode body (whose entries' batches are in the log
//! format, [`crate::log_format`]), signed with the zone key for the id of the server
//! it is meant for (`peerauth`: the key itself never travels). A server refuses a call without
//! a valid MAC, or meant for another server id: a peer reached at the wrong address must never be
//! mistaken for the one Raft wants. The caller refuses an answer not signed with the zone key, so
//! a server without the key cannot ack entries or grant votes.
//! The same channel carries the calls of [`crate::handover`] (`release`, `campaign`) and of
//! [`crate::follower_read`] (`readindex`).

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{LogId, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::durable::DurableLog;
use crate::follower_read::{self, ReadIndex, ReadIndexAsk};
use crate::handover::{self, Handover};
use crate::log_format::FORMAT;
use crate::types::{Raft, ServerNode, TypeConfig};
use crate::{ReadBarrier, ReadError};

pub use peerauth::{SOURCE_HEADER, TARGET_HEADER};

/// Checks incoming peer calls: the zone key's MAC, this server's id, the clock window, replays.
pub type PeerAuth = peerauth::Verifier;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerReject {
    #[error(transparent)]
    Auth(#[from] peerauth::Reject),
    #[error("unknown peer call {0}")]
    UnknownCall(String),
    #[error("undecodable peer call: {0}")]
    Malformed(String),
    /// Peers exchange only their own format: see ARCHITECTURE.md, "Log format and upgrades".
    #[error(
        "the peer speaks log format {peer}, this server log format {ours}: every server of a \
         zone must run the same log format (stop them all, upgrade them all, start them)"
    )]
    Format { peer: u64, ours: u64 },
    #[error("the answer could not be encoded: {0}")]
    Encode(String),
}

/// The last segment of a peer call's path: the call and the log format the caller speaks.
pub fn call_path(call: &str) -> String {
    format!("{call}.v{FORMAT}")
}

/// The call named by a path segment made by [`call_path`], refused unless the caller speaks
/// this server's format. A call without a format comes from a server of format 0.
pub fn parse_call_path(segment: &str) -> Result<&str, PeerReject> {
    let (call, peer) = match segment.rsplit_once(".v") {
        Some((call, v)) => match v.parse::<u64>() {
            Ok(v) => (call, v),
            Err(_) => return Err(PeerReject::UnknownCall(segment.to_string())),
        },
        None => (segment, 0),
    };
    if !matches!(
        call,
        "append" | "vote" | "snapshot" | "release" | "campaign" | "readindex"
    ) {
        return Err(PeerReject::UnknownCall(segment.to_string()));
    }
    if peer != FORMAT {
        return Err(PeerReject::Format { peer, ours: FORMAT });
    }
    Ok(call)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, PeerReject> {
    bincode::deserialize(body).map_err(|e| PeerReject::Malformed(e.to_string()))
}

/// A decoded peer call.
#[derive(Debug)]
pub enum PeerRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// The leader, stopping, asks for a campaign ([`crate::handover`]): once (`release`) or
    /// twice (`campaign`).
    Handover(Handover, u32),
    /// A follower asks the leader for a read index ([`crate::follower_read`]).
    ReadIndex(ReadIndexAsk),
}

/// Decodes the body of the peer call `call`: what [`serve`] does before it hands the request to
/// Raft, public for the fuzz target `peer_decode`.
pub fn decode_request(call: &str, body: &[u8]) -> Result<PeerRequest, PeerReject> {
    match call {
        "append" => decode(body).map(PeerRequest::Append),
        "vote" => decode(body).map(PeerRequest::Vote),
        "snapshot" => decode(body).map(PeerRequest::Snapshot),
        "release" => decode(body).map(|h| PeerRequest::Handover(h, 1)),
        "campaign" => decode(body).map(|h| PeerRequest::Handover(h, 2)),
        "readindex" => decode(body).map(PeerRequest::ReadIndex),
        other => Err(PeerReject::UnknownCall(other.to_string())),
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, PeerReject> {
    bincode::serialize(v).map_err(|e| PeerReject::Encode(e.to_string()))
}

/// Serves one peer call that has already passed [`PeerAuth::verify`]; `segment` is the last
/// segment of its path ([`call_path`]). `reads` answers `readindex` (none: this server never
/// leads, and refuses it).
pub async fn serve(
    raft: &Raft,
    reads: Option<&ReadBarrier>,
    segment: &str,
    body: &[u8],
) -> Result<Vec<u8>, PeerReject> {
    match decode_request(parse_call_path(segment)?, body)? {
        PeerRequest::Append(req) => encode(&raft.append_entries(req).await),
        PeerRequest::Vote(req) => {
            crate::failover::saw_term(req.vote.leader_id().term);
            match handover::refuse_during_handover(raft, &req).await {
                Some(refused) => encode(&Ok::<_, RaftError<u64>>(refused)),
                None => {
                    let asked = *req.vote.leader_id();
                    let answer = raft.vote(req).await;
                    if let (Ok(resp), Some(candidate)) = (&answer, asked.voted_for()) {
                        if resp.vote_granted {
                            crate::votes::note(asked.get_term(), candidate);
                        }
                    }
                    encode(&answer)
                }
            }
        }
        PeerRequest::Snapshot(req) => encode(&raft.install_snapshot(req).await),
        PeerRequest::Handover(h, campaigns) => encode(&handover::serve(raft, h, campaigns).await),
        PeerRequest::ReadIndex(ask) => encode(&follower_read::serve(reads, ask).await),
    }
}

/// Base URL (`http://host:port`) of a server's peer calls, from its `/RPC2` endpoint.
pub fn peer_base(rpc: &str) -> String {
    let trimmed = rpc.trim_end_matches('/');
    trimmed.strip_suffix("/RPC2").unwrap_or(trimmed).to_string()
}

#[derive(Clone)]
pub struct PeerNetwork {
    pub key: peerauth::ZoneKey,
    /// This server's id, sent with every call.
    pub source: u64,
    /// XMLRPC_TIMEOUT_MS: the upper bound of any peer call.
    pub timeout: Duration,
    client: reqwest::Client,
    /// This server's state backend, sent with every call (`wire::header::BACKEND`).
    backend: &'static str,
    /// Set when the log may report a leader's appends flushed before their fsync: a
    /// follower's acknowledgement reaches openraft only once this log is on disk as far as
    /// what it acknowledges (see [`crate::durable`]).
    durable: Option<DurableLog>,
}

impl PeerNetwork {
    /// With `tls`, every call is HTTPS only (an `http://` endpoint is refused, so no entry ever
    /// crosses the network in clear) and uses that configuration: the zone's CA, this server's
    /// certificate.
    pub fn new(
        key: peerauth::ZoneKey,
        source: u64,
        timeout: Duration,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<PeerNetwork, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            // Below any sane KEEPALIVE_TIMEOUT of the peer, so an idle connection is dropped
            // here before the peer closes it under a call.
            .pool_idle_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls).https_only(true);
        }
        let client = builder.build()?;
        Ok(PeerNetwork {
            key,
            source,
            timeout,
            client,
            backend: "sqlite",
            durable: None,
        })
    }

    /// Holds every follower's acknowledgement until this server's log is on disk as far
    /// ([`crate::LogStore::durable`]).
    pub fn acknowledging_only_durable(mut self, log: DurableLog) -> PeerNetwork {
        self.durable = Some(log);
        self
    }

    /// Sends `release` or `campaign` ([`crate::handover`]) to server `target`; whether it acted.
    pub async fn handover_call(
        &self,
        target: u64,
        node: &ServerNode,
        call: &'static str,
        h: Handover,
    ) -> Result<bool, String> {
        let body = bincode::serialize(&h).map_err(|e| e.to_string())?;
        send::<bool, openraft::error::Infallible>(
            self.clone(),
            target,
            Endpoint::new(&peer_base(&node.rpc), call),
            body,
            self.timeout,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Asks server `target`, the leader, for a read index ([`crate::follower_read`]).
    pub async fn read_index_call(
        &self,
        target: u64,
        node: &ServerNode,
        ttl: Duration,
    ) -> Result<ReadIndex, RPCError<u64, ServerNode, RaftError<u64, ReadError>>> {
        let body = bincode::serialize(&ReadIndexAsk)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        send(
            self.clone(),
            target,
            Endpoint::new(&peer_base(&node.rpc), "readindex"),
            body,
            ttl,
        )
        .await
    }

    /// Says that this server keeps its state in `backend` (`sqlite` by default).
    pub fn with_backend(mut self, backend: &'static str) -> PeerNetwork {
        self.backend = backend;
        self
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConn;

    async fn new_client(&mut self, target: u64, node: &ServerNode) -> PeerConn {
        let base = peer_base(&node.rpc);
        PeerConn {
            target,
            append: Endpoint::new(&base, "append"),
            base,
            net: self.clone(),
            pending: None,
        }
    }
}

pub struct PeerConn {
    target: u64,
    base: String,
    /// The call of every write and heartbeat, parsed once rather than per call (~1.5 % of a
    /// busy leader's CPU went to parsing it).
    append: Endpoint,
    net: PeerNetwork,
    /// An AppendEntries with entries still (or just) being sent; see [`PeerConn::append_entries`].
    pending: Option<PendingAppend>,
}

type AppendResult = Result<AppendEntriesResponse<u64>, RPCError<u64, ServerNode, RaftError<u64>>>;

/// A transfer that outlives openraft's wait for it.
struct PendingAppend {
    vote: Vote<u64>,
    prev: Option<LogId<u64>>,
    last: Option<LogId<u64>>,
    task: tokio::task::JoinHandle<AppendResult>,
}

/// The slowest transfer a peer call's timeout allows for, on top of XMLRPC_TIMEOUT_MS: 1 MiB/s,
/// which also covers a follower slow to write a large entry to its log.
const MIN_BYTES_PER_MS: u64 = 1024 * 1024 / 1000;

/// How long a peer call carrying `bytes` may take: XMLRPC_TIMEOUT_MS, plus the time the body takes
/// at the slowest transfer we allow for, so a large but legal entry always gets through.
pub fn ttl_for(base: Duration, bytes: usize) -> Duration {
    base + Duration::from_millis(bytes as u64 / MIN_BYTES_PER_MS)
}

/// Logs `what` at error, at most every 10 seconds: a refusal repeats at every heartbeat.
pub fn warn_now_and_then(what: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!("{what}");
    }
}

/// Where one kind of peer call goes on one server: `{base}/raft/{call}`, parsed once.
#[derive(Clone)]
struct Endpoint {
    path: String,
    url: Result<reqwest::Url, String>,
}

impl Endpoint {
    fn new(base: &str, call: &'static str) -> Endpoint {
        let path = wire::route::raft(&call_path(call));
        let url = format!("{base}{path}");
        Endpoint {
            url: reqwest::Url::parse(&url).map_err(|e| format!("{url}: {e}")),
            path,
        }
    }
}

/// One signed peer call: POST `body` to `to`, check the answer's MAC, decode it.
async fn send<Resp, E>(
    net: PeerNetwork,
    target: u64,
    to: Endpoint,
    body: Vec<u8>,
    ttl: Duration,
) -> Result<Resp, RPCError<u64, ServerNode, RaftError<u64, E>>>
where
    Resp: DeserializeOwned,
    E: std::error::Error + DeserializeOwned,
{
    let Endpoint { path, url } = to;
    let url =
        url.map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
    let signed = peerauth::sign(
        &net.key,
        peerauth::Call {
            method: "POST",
            path: &path,
            arg: "",
        },
        target,
        net.source,
        &body,
    );
    let mut req = net
        .client
        .post(url.clone())
        .timeout(ttl)
        .header(wire::header::BACKEND, net.backend);
    for (name, value) in signed.headers() {
        req = req.header(name, value);
    }
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Err(RPCError::Unreachable(Unreachable::new(&e))),
        Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) if t.starts_with("unknown peer call") => format!(
                "{t} (the peer does not speak log format {FORMAT}: it runs an older oned; \
                 every server of a zone must run the same log format)"
            ),
            Ok(t) => t,
            Err(e) => format!("(the answer's body could not be read: {e})"),
        };
        if status == reqwest::StatusCode::CONFLICT {
            // Another backend: nothing but the operator can fix it, so it is said loudly.
            warn_now_and_then(&format!("server {target} refuses to join: {text}"));
        }
        // A peer that refuses us (wrong key, wrong server, another format, another backend)
        // will refuse again: back off.
        let err = std::io::Error::other(format!("{url}: {status}: {text}"));
        return Err(RPCError::Unreachable(Unreachable::new(&err)));
    }
    let status = resp.status().as_u16();
    let reply_mac = resp
        .headers()
        .get(peerauth::REPLY_MAC_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
    if let Err(e) = signed.check_reply(&net.key, status, &bytes, reply_mac.as_deref()) {
        // Whatever answers there does not hold the zone key: never believe it, and back off.
        tracing::warn!(target, url = %url, error = %e, "refused a peer's answer");
        let err = std::io::Error::other(format!("{url}: {e}"));
        return Err(RPCError::Unreachable(Unreachable::new(&err)));
    }
    let result: Result<Resp, RaftError<u64, E>> =
        bincode::deserialize(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
    result.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

impl PeerConn {
    async fn call<Req, Resp, E>(
        &self,
        call: &'static str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<u64, ServerNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let ttl = if call == "snapshot" {
            ttl
        } else {
            ttl.min(self.net.timeout)
        };
        let body = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let to = if call == "append" {
            self.append.clone()
        } else {
            Endpoint::new(&self.base, call)
        };
        send(self.net.clone(), self.target, to, body, ttl).await
    }

    /// `res`, once this server's log is on disk as far as the follower says it matches (`sent`
    /// on a full success): openraft counts this server's own copy in the majority that
    /// commits, and that copy may still be on its way to the disk.
    async fn once_durable(&self, res: AppendResult, sent: Option<LogId<u64>>) -> AppendResult {
        let Some(log) = &self.net.durable else {
            return res;
        };
        let matched = match &res {
            Ok(AppendEntriesResponse::Success) => sent,
            Ok(AppendEntriesResponse::PartialSuccess(m)) => *m,
            _ => None,
        };
        if let Some(m) = matched {
            log.reached(m.index)
                .await
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        }
        res
    }

    /// Waits for the pending transfer and turns its answer into one for a request that began at
    /// the same place and went at least as far (`last`).
    async fn join_pending(&mut self, last: Option<LogId<u64>>) -> AppendResult {
        let Some(p) = self.pending.as_mut() else {
            return Err(RPCError::Network(NetworkError::new(
                &std::io::Error::other("no transfer under way"),
            )));
        };
        // Awaiting a `&mut JoinHandle` can be abandoned and resumed: if openraft gives up on this
        // call, the transfer goes on and the next call joins it again.
        let res = (&mut p.task).await;
        let sent_last = p.last;
        self.pending = None;
        match res {
            Ok(Ok(AppendEntriesResponse::Success)) if sent_last != last => {
                Ok(AppendEntriesResponse::PartialSuccess(sent_last))
            }
            Ok(r) => r,
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConn {
    /// openraft waits for an AppendEntries only one heartbeat interval (its own timeout, which a
    /// network cannot change), then sends it again. An entry of a few MiB can take longer than
    /// that, and resending it from the start every time means it never arrives: the zone stops
    /// committing. So a call with entries runs in its own task with a timeout that grows with
    /// its size, and openraft's next call for the same place in the log waits for that transfer
    /// instead of starting another. Heartbeats (no entries) go on beside it.
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ServerNode, RaftError<u64>>> {
        // A zone of one voter commits on its own log: its learners must not hear of a commit
        // before that log is on disk. (With more voters the commit never gets ahead of it.)
        if let (Some(log), Some(c)) = (&self.net.durable, rpc.leader_commit) {
            log.reached(c.index)
                .await
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        }
        if rpc.entries.is_empty() {
            let res = self.call("append", &rpc, option.hard_ttl()).await;
            return self.once_durable(res, rpc.prev_log_id).await;
        }
        let last = rpc.entries.last().map(|e| e.log_id);
        if let Some(p) = &self.pending {
            let same_start = p.vote == rpc.vote && p.prev == rpc.prev_log_id;
            if same_start && p.last <= last {
                let res = self.join_pending(last).await;
                return self.once_durable(res, last).await;
            }
            p.task.abort();
            self.pending = None;
        }
        let body =
            bincode::serialize(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let ttl = ttl_for(self.net.timeout, body.len());
        let task = tokio::spawn(send(
            self.net.clone(),
            self.target,
            self.append.clone(),
            body,
            ttl,
        ));
        self.pending = Some(PendingAppend {
            vote: rpc.vote,
            prev: rpc.prev_log_id,
            last,
            task,
        });
        let res = self.join_pending(last).await;
        self.once_durable(res, last).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, ServerNode, RaftError<u64, InstallSnapshotError>>,
    > {
        // Snapshot chunks may take longer than XMLRPC_TIMEOUT_MS; openraft's own TTL governs them.
        self.call("snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, ServerNode, RaftError<u64>>> {
        let resp: VoteResponse<u64> = self.call("vote", &rpc, option.hard_ttl()).await?;
        crate::failover::saw_vote_response(&rpc, &resp);
        Ok(resp)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

impl Drop for PeerConn {
    fn drop(&mut self) {
        // A replication stream that ends (new term, removed server) stops its transfer too.
        if let Some(p) = self.pending.take() {
            p.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With TLS on, nothing is ever sent in clear, even to an endpoint registered as `http://`.
    #[tokio::test]
    async fn with_tls_an_http_endpoint_is_refused_before_anything_is_sent() {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut net = PeerNetwork::new(
            peerauth::ZoneKey::new("zone key"),
            1,
            Duration::from_secs(1),
            Some(tls),
        )
        .unwrap();
        let node = ServerNode {
            name: "server-2".into(),
            rpc: format!("http://{addr}/RPC2"),
        };
        let conn = net.new_client(2, &node).await;
        let vote = VoteRequest::new(openraft::Vote::new(1, 1), None);
        let got: Result<VoteResponse<u64>, RPCError<u64, ServerNode, RaftError<u64>>> =
            conn.call("vote", &vote, Duration::from_secs(1)).await;
        let err = got.unwrap_err().to_string();
        assert!(err.contains("scheme"), "{err}");
        assert!(listener.accept().is_err(), "a connection was made");
    }

    #[test]
    fn a_call_of_another_log_format_is_refused_naming_both_formats() {
        assert_eq!(parse_call_path(&call_path("append")), Ok("append"));
        // What a server of format 0 (before formats were numbered) calls.
        let old = parse_call_path("append").unwrap_err();
        assert_eq!(
            old,
            PeerReject::Format {
                peer: 0,
                ours: FORMAT
            }
        );
        let msg = old.to_string();
        assert!(msg.contains("log format 0") && msg.contains(&format!("log format {FORMAT}")));
        let newer = format!("vote.v{}", FORMAT + 1);
        assert_eq!(
            parse_call_path(&newer),
            Err(PeerReject::Format {
                peer: FORMAT + 1,
                ours: FORMAT
            })
        );
        assert!(matches!(
            parse_call_path("purge.v1"),
            Err(PeerReject::UnknownCall(_))
        ));
        assert!(matches!(
            parse_call_path("append.vx"),
            Err(PeerReject::UnknownCall(_))
        ));
    }

    #[test]
    fn peer_base_strips_the_rpc_path() {
        assert_eq!(
            peer_base("http://10.0.0.1:2633/RPC2"),
            "http://10.0.0.1:2633"
        );
        assert_eq!(peer_base("http://h:1/RPC2/"), "http://h:1");
    }
}
