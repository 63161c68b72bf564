//! The type configuration: one log entry carries a batch of SQL transactions.

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlstore::{SqlTxn, TxnOutcome};

/// A zone server as Raft knows it: its OpenNebula name and its `/RPC2` endpoint. Peers reach the
/// `/raft/*` calls at the same host and port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerNode {
    pub name: String,
    pub rpc: String,
}

impl fmt::Display for ServerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.rpc)
    }
}

/// The payload of one normal entry: transactions from concurrent requests, applied in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub txns: Vec<SqlTxn>,
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch of {} txns", self.txns.len())
    }
}

/// One outcome per transaction of the batch, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    pub outcomes: Vec<TxnOutcome>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Batch,
        R = BatchResult,
        NodeId = u64,
        Node = ServerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
