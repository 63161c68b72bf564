//! Property tests of the peer message decoder ([`crate::network::decode_request`]), the same
//! property as the fuzz target `peer_decode` (`fuzz/`, docs/fuzzing.md): hostile bodies are
//! refused, without a panic and without allocating more than the body justifies. Also the replay
//! of the inputs that target found crashing.

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote,
};
use proptest::prelude::*;
use sqlstore::{SqlStmt, SqlTxn, SqlValue};

use crate::network::{decode_request, PeerRequest};
use crate::types::{Batch, ServerNode, TypeConfig};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<u64, ServerNode> {
    let nodes: BTreeMap<u64, ServerNode> = (1..=3)
        .map(|i| {
            let node = ServerNode {
                name: format!("server-{i}"),
                rpc: format!("http://10.0.0.{i}:2633/RPC2"),
            };
            (i, node)
        })
        .collect();
    Membership::new(vec![nodes.keys().copied().collect::<BTreeSet<_>>()], nodes)
}

/// One body of each call, as a leader sends them, with every kind of field that has a length.
fn sample_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let stmt = SqlStmt::new(
        "INSERT INTO user_pool VALUES (?, ?, ?, ?)",
        vec![
            SqlValue::Null,
            SqlValue::Int(7),
            SqlValue::Text("oneadmin".into()),
            SqlValue::Blob(vec![1, 2, 3]),
        ],
    );
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(2, 9)),
        entries: vec![
            Entry {
                log_id: log_id(3, 10),
                payload: EntryPayload::Normal(Batch::new(vec![SqlTxn { stmts: vec![stmt] }])),
            },
            Entry {
                log_id: log_id(3, 11),
                payload: EntryPayload::Membership(membership()),
            },
            Entry {
                log_id: log_id(3, 12),
                payload: EntryPayload::Blank,
            },
        ],
        leader_commit: Some(log_id(3, 10)),
    };
    let vote = VoteRequest::<u64>::new(Vote::new(4, 2), Some(log_id(3, 12)));
    let snapshot = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 12)),
            last_membership: StoredMembership::new(Some(log_id(3, 11)), membership()),
            snapshot_id: "3-1-12".into(),
        },
        offset: 0,
        data: vec![0x53; 64],
        done: true,
    };
    vec![
        ("append", ser(&append)),
        ("vote", ser(&vote)),
        ("snapshot", ser(&snapshot)),
    ]
}

/// bincode's encoding as the sender makes it (`PeerConn::call`).
fn ser<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).unwrap()
}

#[test]
fn sample_bodies_decode() {
    for (call, body) in sample_bodies() {
        let decoded = match decode_request(call, &body).unwrap() {
            PeerRequest::Append(r) => ("append", r.entries.len()),
            PeerRequest::Vote(_) => ("vote", 0),
            PeerRequest::Snapshot(r) => ("snapshot", r.data.len()),
            PeerRequest::Handover(..) => ("handover", 0),
            PeerRequest::ReadIndex(_) => ("readindex", 0),
        };
        let expected = match call {
            "append" => 3,
            "snapshot" => 64,
            _ => 0,
        };
        assert_eq!(decoded, (call, expected));
    }
}

/// A length prefix of 2^60 (or any huge count) at any offset of a real body is refused, and
/// bincode allocates nothing for it up front: reading from a slice, a byte string's length is
/// checked against the bytes left, and serde preallocates at most 1 MiB for a sequence.
#[test]
fn huge_length_prefixes_are_refused_without_allocating() {
    for (call, body) in sample_bodies() {
        for huge in [1u64 << 60, u64::MAX, 1 << 32, u64::from(u32::MAX)] {
            for at in 0..body.len().saturating_sub(7) {
                let mut hostile = body.clone();
                hostile[at..at + 8].copy_from_slice(&huge.to_le_bytes());
                let _ = decode_request(call, &hostile);
            }
        }
    }
}

#[test]
fn truncated_bodies_are_refused() {
    for (call, body) in sample_bodies() {
        for len in 0..body.len() {
            assert!(
                decode_request(call, &body[..len]).is_err(),
                "{call} cut at {len}"
            );
        }
    }
}

proptest! {
    // Failures are kept as files in fuzz/regressions/ by hand, not in proptest-regressions/.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn decoder_holds_on_arbitrary_bytes(call in 0usize..4, body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let call = ["append", "vote", "snapshot", "other"][call];
        let _ = decode_request(call, &body);
    }

    #[test]
    fn decoder_holds_on_mutated_bodies(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let (call, mut body) = sample_bodies().swap_remove(which);
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let _ = decode_request(call, &body);
    }
}

#[test]
fn fuzz_regressions_peer_decode() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/peer_decode");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    inputs.sort();
    for path in inputs
        .iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
    {
        println!("replaying {}", path.display());
        let data = std::fs::read(path).unwrap();
        // The fuzz target's framing: the first byte picks the call.
        let (call, body) = match data.split_first() {
            Some((b, rest)) => (
                ["append", "vote", "snapshot", "other"][usize::from(*b % 4)],
                rest,
            ),
            None => ("append", &data[..]),
        };
        let _ = decode_request(call, body);
    }
}
