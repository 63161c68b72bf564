//! Format 0: bincode of the types as they were declared up to format 1 (openraft 0.9's
//! `Entry`, `StoredMembership`, `LogId`, sqlstore's `SqlTxn`). bincode writes fields in
//! declaration order and a variant as its index, so the declarations are frozen here, apart from
//! the live types: reordering `SqlValue` or an openraft upgrade cannot change how a format 0
//! record reads. Read only; nothing writes format 0 any more.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership};
use serde::Deserialize;
use sqlstore::{SqlStmt, SqlTxn, SqlValue};

use super::DecodeError;
use crate::types::{Batch, ServerNode, TypeConfig};

#[derive(Deserialize)]
struct LogIdV0 {
    term: u64,
    node_id: u64,
    index: u64,
}

#[derive(Deserialize)]
struct EntryV0 {
    log_id: LogIdV0,
    payload: PayloadV0,
}

#[derive(Deserialize)]
enum PayloadV0 {
    Blank,
    Normal(BatchV0),
    Membership(MembershipV0),
}

#[derive(Deserialize)]
struct BatchV0 {
    txns: Vec<TxnV0>,
}

#[derive(Deserialize)]
struct TxnV0 {
    stmts: Vec<StmtV0>,
}

#[derive(Deserialize)]
struct StmtV0 {
    sql: String,
    params: Vec<ValueV0>,
    must_match: bool,
}

#[derive(Deserialize)]
enum ValueV0 {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Real(f64),
}

#[derive(Deserialize)]
struct MembershipV0 {
    configs: Vec<BTreeSet<u64>>,
    nodes: BTreeMap<u64, NodeV0>,
}

#[derive(Deserialize)]
struct NodeV0 {
    name: String,
    rpc: String,
}

#[derive(Deserialize)]
struct StoredMembershipV0 {
    log_id: Option<LogIdV0>,
    membership: MembershipV0,
}

impl From<LogIdV0> for LogId<u64> {
    fn from(l: LogIdV0) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(l.term, l.node_id), l.index)
    }
}

impl From<ValueV0> for SqlValue {
    fn from(v: ValueV0) -> SqlValue {
        match v {
            ValueV0::Null => SqlValue::Null,
            ValueV0::Int(i) => SqlValue::Int(i),
            ValueV0::Text(t) => SqlValue::Text(t),
            ValueV0::Blob(b) => SqlValue::Blob(b),
            ValueV0::Real(f) => SqlValue::Real(f),
        }
    }
}

impl From<BatchV0> for Batch {
    fn from(b: BatchV0) -> Batch {
        let txns = b.txns.into_iter().map(|t| SqlTxn {
            stmts: t
                .stmts
                .into_iter()
                .map(|s| SqlStmt {
                    sql: s.sql,
                    params: s.params.into_iter().map(SqlValue::from).collect(),
                    must_match: s.must_match,
                })
                .collect(),
        });
        Batch::new(txns.collect())
    }
}

impl From<MembershipV0> for Membership<u64, ServerNode> {
    fn from(m: MembershipV0) -> Membership<u64, ServerNode> {
        let nodes: BTreeMap<u64, ServerNode> = m
            .nodes
            .into_iter()
            .map(|(id, n)| {
                let node = ServerNode {
                    name: n.name,
                    rpc: n.rpc,
                };
                (id, node)
            })
            .collect();
        Membership::new(m.configs, nodes)
    }
}

pub(crate) fn entry(raw: &[u8]) -> Result<Entry<TypeConfig>, DecodeError> {
    let e: EntryV0 = bincode::deserialize(raw)?;
    let payload = match e.payload {
        PayloadV0::Blank => EntryPayload::Blank,
        PayloadV0::Normal(b) => EntryPayload::Normal(b.into()),
        PayloadV0::Membership(m) => EntryPayload::Membership(m.into()),
    };
    Ok(Entry {
        log_id: e.log_id.into(),
        payload,
    })
}

pub(crate) fn applied(raw: &[u8]) -> Result<Option<LogId<u64>>, DecodeError> {
    let l: Option<LogIdV0> = bincode::deserialize(raw)?;
    Ok(l.map(LogId::from))
}

pub(crate) fn membership(raw: &[u8]) -> Result<StoredMembership<u64, ServerNode>, DecodeError> {
    let m: StoredMembershipV0 = bincode::deserialize(raw)?;
    Ok(StoredMembership::new(
        m.log_id.map(LogId::from),
        m.membership.into(),
    ))
}
