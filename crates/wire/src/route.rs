//! URL paths served by `oned` besides OpenNebula's `/RPC2`: the Raft peer calls between servers
//! and the files `onezone serversync` fetches.

/// OpenNebula's XML-RPC endpoint.
pub const RPC2: &str = "/RPC2";
/// Prometheus' scrape of a server's figures.
pub const METRICS: &str = "/metrics";

/// Prefix of the Raft peer calls, `POST /raft/{call}`.
pub const RAFT_PREFIX: &str = "/raft/";
/// Prefix of the serversync calls, `GET /oneha/sync/{what}`.
pub const SYNC_PREFIX: &str = "/oneha/sync/";

/// `one line per configuration file: sha256, service, path`.
pub const SYNC_MANIFEST: &str = "manifest";
/// One configuration file, named by the [`crate::header::SYNC_PATH`] header.
pub const SYNC_FILE: &str = "file";
/// A fresh backup of the state database.
pub const SYNC_DB: &str = "db";

/// The path of the Raft peer call `call` (`append`, `vote`, `snapshot`).
pub fn raft(call: &str) -> String {
    format!("{RAFT_PREFIX}{call}")
}

/// The path of the serversync call `what` ([`SYNC_MANIFEST`], [`SYNC_FILE`], [`SYNC_DB`]).
pub fn sync(what: &str) -> String {
    format!("{SYNC_PREFIX}{what}")
}

/// The router pattern of [`raft`] paths, with the call captured as `call`.
pub fn raft_pattern() -> String {
    format!("{RAFT_PREFIX}:call")
}

/// The router pattern of [`sync`] paths, with the call captured as `what`.
pub fn sync_pattern() -> String {
    format!("{SYNC_PREFIX}:what")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_prefix_and_name() {
        assert_eq!(raft("append"), "/raft/append");
        assert_eq!(sync(SYNC_DB), "/oneha/sync/db");
        assert_eq!(raft_pattern(), "/raft/:call");
        assert_eq!(sync_pattern(), "/oneha/sync/:what");
    }
}
