//! Server-to-server calls. Each is an HTTP POST to `/raft/{append,vote,snapshot}` on the peer's
//! `/RPC2` host and port, with a bincode body, the zone key and the id of the server it is meant
//! for. A server refuses a call without the right key, or meant for another server id: a peer
//! reached at the wrong address must never be mistaken for the one Raft wants.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Raft, ServerNode, TypeConfig};

pub const KEY_HEADER: &str = "x-oneha-zone-key";
pub const TARGET_HEADER: &str = "x-oneha-target";
/// The id of the server making the call: for logs, and for the fault suite's per-link proxy.
pub const SOURCE_HEADER: &str = "x-oneha-source";

/// The zone key and this server's id, checked on every incoming peer call.
#[derive(Clone)]
pub struct PeerAuth {
    pub key: String,
    pub server_id: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerReject {
    #[error("peer call refused: bad or missing zone key")]
    BadKey,
    #[error("peer call meant for server {0}, this is server {1}")]
    WrongServer(String, u64),
    #[error("unknown peer call {0}")]
    UnknownCall(String),
    #[error("undecodable peer call: {0}")]
    Malformed(String),
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PeerAuth {
    pub fn check(&self, key: Option<&str>, target: Option<&str>) -> Result<(), PeerReject> {
        if !key.is_some_and(|k| same_key(k, &self.key)) {
            return Err(PeerReject::BadKey);
        }
        let target = target.unwrap_or("");
        if target.parse::<u64>().ok() != Some(self.server_id) {
            return Err(PeerReject::WrongServer(target.to_string(), self.server_id));
        }
        Ok(())
    }
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
}

/// Decodes the body of the peer call `call`: what [`serve`] does before it hands the request to
/// Raft, public for the fuzz target `peer_decode`.
pub fn decode_request(call: &str, body: &[u8]) -> Result<PeerRequest, PeerReject> {
    match call {
        "append" => decode(body).map(PeerRequest::Append),
        "vote" => decode(body).map(PeerRequest::Vote),
        "snapshot" => decode(body).map(PeerRequest::Snapshot),
        other => Err(PeerReject::UnknownCall(other.to_string())),
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own in-memory values cannot fail with bincode's default options.
    bincode::serialize(v).unwrap_or_default()
}

/// Serves one peer call whose headers have already passed [`PeerAuth::check`].
pub async fn serve(raft: &Raft, call: &str, body: &[u8]) -> Result<Vec<u8>, PeerReject> {
    Ok(match decode_request(call, body)? {
        PeerRequest::Append(req) => encode(&raft.append_entries(req).await),
        PeerRequest::Vote(req) => encode(&raft.vote(req).await),
        PeerRequest::Snapshot(req) => encode(&raft.install_snapshot(req).await),
    })
}

/// Base URL (`http://host:port`) of a server's peer calls, from its `/RPC2` endpoint.
pub fn peer_base(rpc: &str) -> String {
    let trimmed = rpc.trim_end_matches('/');
    trimmed.strip_suffix("/RPC2").unwrap_or(trimmed).to_string()
}

#[derive(Clone)]
pub struct PeerNetwork {
    pub key: String,
    /// This server's id, sent with every call.
    pub source: u64,
    /// XMLRPC_TIMEOUT_MS: the upper bound of any peer call.
    pub timeout: Duration,
    client: reqwest::Client,
}

impl PeerNetwork {
    pub fn new(key: String, source: u64, timeout: Duration) -> PeerNetwork {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        PeerNetwork {
            key,
            source,
            timeout,
            client,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConn;

    async fn new_client(&mut self, target: u64, node: &ServerNode) -> PeerConn {
        PeerConn {
            target,
            base: peer_base(&node.rpc),
            net: self.clone(),
        }
    }
}

pub struct PeerConn {
    target: u64,
    base: String,
    net: PeerNetwork,
}

impl PeerConn {
    async fn call<Req, Resp, E>(
        &self,
        call: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<u64, ServerNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("{}/raft/{call}", self.base);
        let ttl = if call == "snapshot" {
            ttl
        } else {
            ttl.min(self.net.timeout)
        };
        let body = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let sent = self
            .net
            .client
            .post(&url)
            .header(KEY_HEADER, &self.net.key)
            .header(TARGET_HEADER, self.target.to_string())
            .header(SOURCE_HEADER, self.net.source.to_string())
            .timeout(ttl)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            // A peer that refuses us (wrong key, wrong server) will refuse again: back off.
            let err = std::io::Error::other(format!("{url}: {status}: {text}"));
            return Err(RPCError::Unreachable(Unreachable::new(&err)));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let result: Result<Resp, RaftError<u64, E>> =
            bincode::deserialize(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ServerNode, RaftError<u64>>> {
        self.call("append", &rpc, option.hard_ttl()).await
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
        self.call("vote", &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_calls_need_the_zone_key_and_this_servers_id() {
        let auth = PeerAuth {
            key: "k3y".into(),
            server_id: 2,
        };
        assert_eq!(auth.check(Some("k3y"), Some("2")), Ok(()));
        assert_eq!(auth.check(Some("bad"), Some("2")), Err(PeerReject::BadKey));
        assert_eq!(auth.check(None, Some("2")), Err(PeerReject::BadKey));
        assert!(matches!(
            auth.check(Some("k3y"), Some("1")),
            Err(PeerReject::WrongServer(..))
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
