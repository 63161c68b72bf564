//! The type configuration: one log entry carries a batch of SQL transactions.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlstore::{SqlTxn, TxnOutcome};

use crate::callers::Callers;
use crate::log_format;

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
///
/// Its serde form is the bytes of [`crate::log_format::encode_batch`], so the entries inside
/// AppendEntries carry the versioned format rather than the derive's variant indexes.
///
/// The transactions are shared, never copied: the leader hands the same entry to every follower's
/// replication stream and to its own apply, and a deep copy of each statement's text and values
/// for each of them was ~4 % of the leader's CPU under `one.vm.allocate` at 32 in flight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub txns: Arc<[SqlTxn]>,
    /// Who waits on these transactions, on the server that proposed them (never on the wire).
    pub(crate) callers: Callers,
}

impl Batch {
    pub fn new(txns: Vec<SqlTxn>) -> Batch {
        Batch {
            txns: txns.into(),
            callers: Callers::default(),
        }
    }
}

impl Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&log_format::encode_batch(self))
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        d.deserialize_bytes(BatchVisitor)
    }
}

struct BatchVisitor;

impl<'de> serde::de::Visitor<'de> for BatchVisitor {
    type Value = Batch;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch in the versioned log format")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Batch, E> {
        log_format::decode_batch(v).map_err(E::custom)
    }

    /// Formats without a byte string (JSON) give a sequence of numbers.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Batch, A::Error> {
        let mut raw = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            raw.push(b);
        }
        self.visit_bytes(&raw)
    }
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
