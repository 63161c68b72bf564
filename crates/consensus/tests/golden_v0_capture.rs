//! Captures the bytes today's code stores (`logdb.payload`, `raft_sm_meta`, `raft_meta`), before
//! the log format is versioned: these files are format 0, to be decoded forever after.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use consensus::{Batch, ServerNode, TypeConfig};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership, Vote};
use sqlstore::{SqlStmt, SqlTxn, SqlValue};

fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn batch() -> Batch {
    let every_value = SqlStmt::new(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            SqlValue::Null,
            SqlValue::Int(-7),
            SqlValue::Int(i64::MAX),
            SqlValue::Text("oneadmin ü".into()),
            SqlValue::Blob(vec![0, 1, 255]),
            SqlValue::Real(2.5),
            SqlValue::Text(String::new()),
        ],
    )
    .must_match();
    let plain = SqlStmt::new("DELETE FROM t WHERE oid = ?", vec![SqlValue::Int(0)]);
    let no_params = SqlStmt::new("UPDATE t SET x = 1", vec![]);
    Batch {
        txns: vec![
            SqlTxn {
                stmts: vec![every_value],
            },
            SqlTxn {
                stmts: vec![plain, no_params.must_match()],
            },
            SqlTxn { stmts: vec![] },
        ],
    }
}

fn membership() -> Membership<u64, ServerNode> {
    let nodes: BTreeMap<u64, ServerNode> = (1..=4)
        .map(|i| {
            let node = ServerNode {
                name: format!("server-{i}"),
                rpc: format!("http://10.0.0.{i}:2633/RPC2"),
            };
            (i, node)
        })
        .collect();
    let configs = vec![BTreeSet::from([1, 2]), BTreeSet::from([1, 2, 3])];
    Membership::new(configs, nodes)
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v0")
}

fn check(name: &str, bytes: Vec<u8>) {
    let path = dir().join(name);
    if std::env::var_os("ONEHA_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
}

#[test]
fn capture_format_0() {
    let entries: [(&str, Entry<TypeConfig>); 3] = [
        (
            "entry-normal.bin",
            Entry {
                log_id: log_id(3, 1, 10),
                payload: EntryPayload::Normal(batch()),
            },
        ),
        (
            "entry-membership.bin",
            Entry {
                log_id: log_id(3, 1, 11),
                payload: EntryPayload::Membership(membership()),
            },
        ),
        (
            "entry-blank.bin",
            Entry {
                log_id: log_id(4, 2, 12),
                payload: EntryPayload::Blank,
            },
        ),
    ];
    for (name, e) in &entries {
        check(name, bincode::serialize(e).unwrap());
    }
    let applied = Some(log_id(3, 1, 11));
    let stored = StoredMembership::new(Some(log_id(3, 1, 11)), membership());
    check("sm-last-applied.bin", bincode::serialize(&applied).unwrap());
    check("sm-membership.bin", bincode::serialize(&stored).unwrap());
    check(
        "meta-vote.bin",
        bincode::serialize(&Vote::new_committed(4, 2)).unwrap(),
    );
    check("meta-log-id.bin", bincode::serialize(&log_id(3, 1, 11)).unwrap());
}
