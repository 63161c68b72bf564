//! The newest log entries in memory. `append` returns before its fsync (openraft then sends the
//! entries to the followers while the leader's own disk syncs), and openraft requires an entry
//! to be readable once `append` returns: until its transaction commits, this is the only place
//! it can be read from. Flushed entries stay a while longer, so that committing and replicating
//! a recent entry reads no database.
//!
//! The entries held are contiguous: openraft appends at the end of the log, truncates its end and
//! purges its start, and the database holds every index below the first one held here.

use std::collections::VecDeque;

use openraft::Entry;

use crate::types::TypeConfig;

/// Flushed entries kept once the unflushed ones are counted out; sized for a few rounds of
/// full batches (the proposer keeps 4 entries in flight).
const KEEP_ENTRIES: usize = 256;
/// Bytes of flushed entries kept (an entry carries at most 1 MiB).
const KEEP_BYTES: usize = 8 << 20;

#[derive(Default)]
pub(crate) struct Recent {
    /// Each entry with the size of its encoded payload.
    entries: VecDeque<(Entry<TypeConfig>, usize)>,
    bytes: usize,
}

/// Where the entries of a range are: the database's part first, then the cached part.
pub(crate) struct Split {
    /// `[start, end)` to read from the database (`end` `None`: to the end of the log), if any.
    pub db: Option<(u64, Option<u64>)>,
    /// The cached entries of the range, following the database's part.
    pub cached: Vec<Entry<TypeConfig>>,
}

impl Recent {
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    /// Adds an entry at the end of the log. An entry that does not follow the last one held
    /// (which openraft never asks for) drops what is held rather than leave a hole.
    pub fn push(&mut self, entry: Entry<TypeConfig>, size: usize) {
        let follows = self
            .entries
            .back()
            .is_none_or(|(last, _)| last.log_id.index + 1 == entry.log_id.index);
        if !follows {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.entries.push_back((entry, size));
    }

    /// Forgets the entries at and above `index`.
    pub fn truncate(&mut self, index: u64) {
        while self
            .entries
            .back()
            .is_some_and(|(e, _)| e.log_id.index >= index)
        {
            self.pop_back();
        }
    }

    /// Forgets the entries at and below `index`.
    pub fn purge(&mut self, index: u64) {
        while self.first().is_some_and(|f| f <= index) {
            self.pop_front();
        }
    }

    /// Everything up to `index` is on disk: the oldest flushed entries beyond the bounds go.
    pub fn flushed(&mut self, index: u64) {
        while (self.entries.len() > KEEP_ENTRIES || self.bytes > KEEP_BYTES)
            && self.first().is_some_and(|f| f <= index)
        {
            self.pop_front();
        }
    }

    /// Splits `[start, end)` into the part only the database has and the part held here (up
    /// to `limit` bytes of it, at least one entry, when a limit is given).
    pub fn split(&self, start: u64, end: Option<u64>, limit: Option<usize>) -> Split {
        let end_ok = |i: u64| end.is_none_or(|e| i < e);
        let Some(first) = self.first() else {
            return Split {
                db: Some((start, end)),
                cached: Vec::new(),
            };
        };
        let db = (start < first).then(|| (start, Some(end.map_or(first, |e| e.min(first)))));
        let mut cached = Vec::new();
        let mut bytes = 0usize;
        let skip = start.saturating_sub(first) as usize;
        for (e, size) in self.entries.iter().skip(skip) {
            if !end_ok(e.log_id.index) || limit.is_some_and(|l| !cached.is_empty() && bytes >= l) {
                break;
            }
            bytes += size;
            cached.push(e.clone());
        }
        Split { db, cached }
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn pop_back(&mut self) {
        if let Some((_, size)) = self.entries.pop_back() {
            self.bytes -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(v: &[Entry<TypeConfig>]) -> Vec<u64> {
        v.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn a_range_below_the_cache_reads_the_database_first() {
        let mut r = Recent::default();
        for i in 10..20 {
            r.push(entry(i), 1);
        }
        let s = r.split(5, Some(15), None);
        assert_eq!(s.db, Some((5, Some(10))));
        assert_eq!(indexes(&s.cached), (10..15).collect::<Vec<_>>());
        let s = r.split(12, None, None);
        assert_eq!(s.db, None);
        assert_eq!(indexes(&s.cached), (12..20).collect::<Vec<_>>());
        let s = r.split(2, Some(8), None);
        assert_eq!(s.db, Some((2, Some(8))));
        assert!(s.cached.is_empty());
    }

    #[test]
    fn only_flushed_entries_are_evicted_and_truncation_forgets_the_end() {
        let mut r = Recent::default();
        for i in 1..=(KEEP_ENTRIES as u64 + 100) {
            r.push(entry(i), 1);
        }
        r.flushed(50);
        assert_eq!(r.first(), Some(51), "nothing unflushed goes");
        r.flushed(KEEP_ENTRIES as u64 + 100);
        assert_eq!(r.entries.len(), KEEP_ENTRIES);
        r.truncate(200);
        assert_eq!(r.entries.back().unwrap().0.log_id.index, 199);
        r.purge(150);
        assert_eq!(r.first(), Some(151));
        r.push(entry(500), 1);
        assert_eq!(r.first(), Some(500), "a hole drops what was held");
    }

    #[test]
    fn a_limited_read_returns_at_least_one_entry() {
        let mut r = Recent::default();
        for i in 1..=5 {
            r.push(entry(i), 100);
        }
        assert_eq!(indexes(&r.split(1, None, Some(1)).cached), vec![1]);
        assert_eq!(indexes(&r.split(1, None, Some(250)).cached), vec![1, 2, 3]);
    }
}
