//! Properties of the format 1 codec: whatever it writes reads back the same; whatever bytes it
//! is given (a corrupt row, a hostile peer's batch), it refuses them without a panic, and a
//! record cut short never reads as a shorter record.

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use proptest::collection::vec;
use proptest::prelude::*;
use sqlstore::{SqlStmt, SqlTxn, SqlValue};

use super::{decode_batch, decode_entry, encode_batch, encode_entry, FORMAT};
use crate::types::{Batch, TypeConfig};

fn value() -> impl Strategy<Value = SqlValue> {
    prop_oneof![
        Just(SqlValue::Null),
        any::<i64>().prop_map(SqlValue::Int),
        ".{0,12}".prop_map(SqlValue::Text),
        vec(any::<u8>(), 0..12).prop_map(SqlValue::Blob),
        // NaN is not equal to itself; every other f64 must come back bit for bit.
        any::<f64>()
            .prop_filter("NaN", |f| !f.is_nan())
            .prop_map(SqlValue::Real),
    ]
}

fn batch() -> impl Strategy<Value = Batch> {
    let stmt =
        (".{0,20}", vec(value(), 0..6), any::<bool>()).prop_map(|(sql, params, must_match)| {
            SqlStmt {
                sql,
                params,
                must_match,
            }
        });
    let txn = vec(stmt, 0..4).prop_map(|stmts| SqlTxn { stmts });
    vec(txn, 0..4).prop_map(Batch::new)
}

fn entry() -> impl Strategy<Value = Entry<TypeConfig>> {
    (any::<u64>(), any::<u64>(), any::<u64>(), batch()).prop_map(|(t, n, i, b)| Entry {
        log_id: LogId::new(CommittedLeaderId::new(t, n), i),
        payload: EntryPayload::Normal(b),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn entries_read_back_as_written(e in entry()) {
        let bytes = encode_entry(&e);
        prop_assert_eq!(decode_entry(FORMAT, &bytes).unwrap(), e);
    }

    #[test]
    fn batches_read_back_as_written(b in batch()) {
        prop_assert_eq!(decode_batch(&encode_batch(&b)).unwrap(), b);
    }

    #[test]
    fn a_record_cut_short_is_refused(e in entry(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_entry(&e);
        let at = cut.index(bytes.len());
        prop_assert!(decode_entry(FORMAT, &bytes[..at]).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_panic(bytes in vec(any::<u8>(), 0..300)) {
        let _ = decode_entry(FORMAT, &bytes);
        let _ = decode_batch(&bytes);
    }

    #[test]
    fn mutated_records_never_panic(
        e in entry(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encode_entry(&e);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let _ = decode_entry(FORMAT, &bytes);
    }
}
