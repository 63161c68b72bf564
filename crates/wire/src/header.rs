//! HTTP header names OneHA adds to OpenNebula's calls, lower case as HTTP/2 and `http` spell
//! them (HTTP header names are case-insensitive).

/// Marks a `/RPC2` call a follower already forwarded, so it is never forwarded twice.
pub const FORWARDED: &str = "x-oneha-forwarded";
/// `X-OneHA-Read: leader` on a read makes any server pass it to the leader, so the answer is
/// linearizable wherever it was sent (a follower's own reads may be stale).
pub const LEADER_READ: &str = "x-oneha-read";
/// The only value of [`LEADER_READ`] that asks for a leader read.
pub const LEADER_READ_VALUE: &str = "leader";
/// On the answer to a forwarded call: the server refused it before proposing it (it does not
/// lead, or no longer), so the forwarding server may send it again to the next leader.
pub const NOT_PROPOSED: &str = "x-oneha-not-proposed";
/// On a forwarded write: the last log index the forwarding server had applied. The leader runs
/// the write on a state at least that new, so a client never sees a write judged on a state
/// older than the one the server it called had already shown it.
pub const APPLIED: &str = "x-oneha-applied";

/// Peer calls: the server id the call is meant for.
pub const TARGET: &str = "x-oneha-target";
/// Peer calls: the id of the server making the call (the fault suite's link proxies also route
/// on it).
pub const SOURCE: &str = "x-oneha-source";
/// Peer calls: Unix time in seconds when the call was signed.
pub const TIME: &str = "x-oneha-time";
/// Peer calls: 16 random bytes, hex.
pub const NONCE: &str = "x-oneha-nonce";
/// Peer calls: the request's HMAC, hex.
pub const MAC: &str = "x-oneha-mac";
/// Peer calls: the answer's HMAC, hex.
pub const REPLY_MAC: &str = "x-oneha-reply-mac";
/// Peer calls: an extra argument bound by the MAC (the file `GET /oneha/sync/file` returns).
pub const SYNC_PATH: &str = "x-oneha-path";

/// On peer calls: the sender's state backend (`sqlite`, `mysql`). A zone runs one backend on
/// every server, so a server refuses calls from a server of the other kind. Absent: `sqlite`
/// (servers from before MySQL existed).
pub const BACKEND: &str = "x-oneha-backend";

/// A federation master's records (`one.zone.fedreplicate`): the version of the federated tables
/// the master writes (`sqlstore::versions::SHARED_DB_VERSION`). A slave of another version
/// refuses them rather than misapply them.
pub const FED_VERSION: &str = "x-oneha-fed-version";
