//! The log format's compatibility, held by golden files: `golden/v0` was captured from the code
//! before formats were numbered (commit 17d7381) and must decode forever (or until the upgrade
//! rule in ARCHITECTURE.md drops format 0); `golden/v1` was written by format 1 and must decode
//! too; `golden/v2` is what this code writes, so a change to the encoding fails here and has to
//! come with a new format number.
//! `ONEHA_BLESS=1` rewrites the files of the current format, never those of format 0.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use consensus::log_format::{self, FORMAT};
use consensus::{Batch, LogStore, ServerNode, StateMachine, TypeConfig};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    StoredMembership, Vote,
};
use sqlstore::{SqlStmt, SqlTxn, SqlValue};

fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

/// Every `SqlValue` kind, both `must_match` values, an empty transaction.
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
    Batch::new(vec![
        SqlTxn {
            stmts: vec![every_value],
        },
        SqlTxn {
            stmts: vec![plain, no_params.must_match()],
        },
        SqlTxn { stmts: vec![] },
    ])
}

/// A joint configuration with a learner (server 4).
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

fn entries() -> [(&'static str, Entry<TypeConfig>); 3] {
    [
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
    ]
}

fn applied() -> Option<LogId<u64>> {
    Some(log_id(3, 1, 11))
}

fn stored_membership() -> StoredMembership<u64, ServerNode> {
    StoredMembership::new(Some(log_id(3, 1, 11)), membership())
}

fn golden(format: u64, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{format}/{name}"))
}

fn read(format: u64, name: &str) -> Vec<u8> {
    std::fs::read(golden(format, name)).unwrap()
}

/// `bytes` are what the golden file of the current format holds.
fn check_current(name: &str, bytes: &[u8]) {
    let path = golden(FORMAT, name);
    if std::env::var_os("ONEHA_BLESS").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    assert_eq!(
        read(FORMAT, name),
        bytes,
        "{name} changed: that is a new format"
    );
}

#[test]
fn format_0_entries_decode_to_what_was_written() {
    for (name, entry) in entries() {
        let got = log_format::decode_entry(0, &read(0, name)).unwrap();
        assert_eq!(got, entry, "{name}");
    }
    assert_eq!(
        log_format::decode_applied(0, &read(0, "sm-last-applied.bin")).unwrap(),
        applied()
    );
    assert_eq!(
        log_format::decode_membership(0, &read(0, "sm-membership.bin")).unwrap(),
        stored_membership()
    );
}

/// Format 1 wrote what format 2 writes, under another number: a log, snapshot or state
/// database of a format 1 server reads after its upgrade.
#[test]
fn format_1_records_decode_to_what_was_written() {
    for (name, entry) in entries() {
        let got = log_format::decode_entry(1, &read(1, name)).unwrap();
        assert_eq!(got, entry, "{name}");
    }
    assert_eq!(
        log_format::decode_applied(1, &read(1, "sm-last-applied.bin")).unwrap(),
        applied()
    );
    assert_eq!(
        log_format::decode_membership(1, &read(1, "sm-membership.bin")).unwrap(),
        stored_membership()
    );
    // Only the format number differs.
    let v1 = read(1, "entry-normal.bin");
    let v2 = log_format::encode_entry(&entries()[0].1);
    assert_eq!((v1[0], v2[0]), (1, 2));
}

/// `raft_meta` (vote, log ids) stays bincode of openraft's plain structs: an openraft upgrade
/// that changed them would fail here.
#[test]
fn raft_meta_values_keep_their_bytes() {
    let vote: Vote<u64> = bincode::deserialize(&read(0, "meta-vote.bin")).unwrap();
    assert_eq!(vote, Vote::<u64>::new_committed(4, 2));
    assert_eq!(bincode::serialize(&vote).unwrap(), read(0, "meta-vote.bin"));
    let id: LogId<u64> = bincode::deserialize(&read(0, "meta-log-id.bin")).unwrap();
    assert_eq!(id, log_id(3, 1, 11));
}

#[test]
fn current_format_entries_keep_their_bytes_and_decode() {
    for (name, entry) in entries() {
        let bytes = log_format::encode_entry(&entry);
        check_current(name, &bytes);
        assert_eq!(log_format::decode_entry(FORMAT, &bytes).unwrap(), entry);
    }
    let bytes = log_format::encode_applied(&applied());
    check_current("sm-last-applied.bin", &bytes);
    assert_eq!(
        log_format::decode_applied(FORMAT, &bytes).unwrap(),
        applied()
    );
    let bytes = log_format::encode_membership(&stored_membership());
    check_current("sm-membership.bin", &bytes);
    assert_eq!(
        log_format::decode_membership(FORMAT, &bytes).unwrap(),
        stored_membership()
    );
}

/// The peer envelope is openraft's messages in bincode, with batches in the log format. It is
/// pinned too: a change (an openraft upgrade) needs a new format, since peers of one format must
/// understand each other.
#[test]
fn peer_messages_keep_their_bytes() {
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(3, 1, 9)),
        entries: entries().into_iter().map(|(_, e)| e).collect(),
        leader_commit: Some(log_id(3, 1, 10)),
    };
    let bytes = bincode::serialize(&append).unwrap();
    check_current("peer-append.bin", &bytes);
    let back: AppendEntriesRequest<TypeConfig> = bincode::deserialize(&bytes).unwrap();
    assert_eq!(back.entries, append.entries);
    let vote = VoteRequest::<u64>::new(Vote::new(4, 2), Some(log_id(3, 1, 12)));
    check_current("peer-vote.bin", &bincode::serialize(&vote).unwrap());
}

#[test]
fn a_record_of_a_newer_format_is_refused_naming_both_formats() {
    let (_, entry) = entries().into_iter().next().unwrap();
    let err = log_format::decode_entry(FORMAT + 1, &log_format::encode_entry(&entry))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("log format {}", FORMAT + 1)) && err.contains(&format!("{FORMAT}")),
        "{err}"
    );
}

#[test]
fn a_record_whose_bytes_disagree_with_its_stored_format_is_refused() {
    // A current payload in a row that says format 0, and a format 0 one in a row that says 1.
    let (_, entry) = entries().into_iter().next().unwrap();
    assert!(log_format::decode_entry(0, &log_format::encode_entry(&entry)).is_err());
    assert!(log_format::decode_entry(1, &read(0, "entry-normal.bin")).is_err());
}

/// How `raft.db` looked before formats were numbered.
const FORMAT_0_LOG_SCHEMA: &str = "
CREATE TABLE logdb (
    log_index INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    leader_node_id INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE raft_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
";

/// An upgraded server starts on the log the previous version wrote, and reads it on; entries
/// it appends later are of the current format, in the same table.
#[tokio::test]
async fn a_log_written_before_formats_were_numbered_reads_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(FORMAT_0_LOG_SCHEMA).unwrap();
        for (name, e) in entries() {
            c.execute(
                "INSERT INTO logdb VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    e.log_id.index as i64,
                    e.log_id.leader_id.term as i64,
                    e.log_id.leader_id.node_id as i64,
                    read(0, name)
                ],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO raft_meta VALUES ('vote', ?1)",
            [read(0, "meta-vote.bin")],
        )
        .unwrap();
    }
    let mut log = LogStore::open(&path).unwrap();
    // What an upgraded server appends next, stored beside them.
    let next = Entry::<TypeConfig> {
        log_id: log_id(4, 2, 13),
        payload: EntryPayload::Normal(batch()),
    };
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO logdb (log_index, term, leader_node_id, payload, format)
             VALUES (13, 4, 2, ?1, ?2)",
            rusqlite::params![log_format::encode_entry(&next), FORMAT as i64],
        )
        .unwrap();
    }
    let mut want: Vec<Entry<TypeConfig>> = entries().into_iter().map(|(_, e)| e).collect();
    want.push(next);
    assert_eq!(log.try_get_log_entries(10..14).await.unwrap(), want);
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::<u64>::new_committed(4, 2))
    );
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(4, 2, 13)));
    let mut reader = log.get_log_reader().await;
    assert_eq!(reader.try_get_log_entries(10..11).await.unwrap(), want[..1]);
}

/// A state database (and so a snapshot, its copy) of format 0 reads; after an apply its meta is
/// the current format; a snapshot of a newer format is refused, not misread.
#[tokio::test]
async fn state_meta_of_format_0_reads_and_a_newer_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = sqlstore::Location::Sqlite(dir.path().join("one.db"));
    let conn = sqlstore::open_state(&state).unwrap();
    conn.execute(
        "INSERT INTO raft_sm_meta (id, last_applied, membership) VALUES (1, ?1, ?2)",
        [read(0, "sm-last-applied.bin"), read(0, "sm-membership.bin")],
    )
    .unwrap();
    let snaps = dir.path().join("snapshots");
    let mut sm = StateMachine::new(&state, conn, &snaps).unwrap();
    assert_eq!(
        sm.applied_state().await.unwrap(),
        (applied(), stored_membership())
    );

    let blank = Entry::<TypeConfig> {
        log_id: log_id(4, 2, 12),
        payload: EntryPayload::Blank,
    };
    sm.apply(vec![blank]).await.unwrap();
    assert_eq!(
        sm.applied_state().await.unwrap(),
        (Some(log_id(4, 2, 12)), stored_membership())
    );
    let format: i64 = rusqlite::Connection::open(dir.path().join("one.db"))
        .unwrap()
        .query_row("SELECT format FROM raft_sm_meta", [], |r| r.get(0))
        .unwrap();
    assert_eq!(format, FORMAT as i64);

    let snap = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(4, 2, 12)));
    rusqlite::Connection::open(snaps.join("current.db"))
        .unwrap()
        .execute("UPDATE raft_sm_meta SET format = ?1", [FORMAT as i64 + 1])
        .unwrap();
    let err = sm.get_current_snapshot().await.unwrap_err();
    let chain = format!("{err} {:?}", err);
    assert!(
        chain.contains(&format!("log format {}", FORMAT + 1)),
        "{chain}"
    );
}
