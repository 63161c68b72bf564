//! Whole answers of `one.vmpool.info*` kept between calls (issue 16).
//!
//! With every VM body kept (`vm_pool_cache`), a pool call of 10k deployed VMs still reads
//! every row, fingerprints it and copies its body: 35-55 ms on the leader for an answer that is
//! often the one it sent last time, to a dashboard refreshing its list or a script polling
//! for its VMs to run. The answer is a pure function of the statement, which carries the
//! caller's filter (its id and groups, its ACL conditions, the page), of the tables that
//! statement reads, and of the call's form and query. So an answer is kept under the
//! generation of those tables (`Watched::VmPool`) taken before its read, and sent again only
//! while that generation stands and is settled: a VM created, changed, placed, monitored or
//! deleted, an owner or group renamed or deleted, a snapshot installed or a restore on this
//! server ends it, before any read here can show the change (`sqlstore::changes`). The
//! monitor records every VM once a period, so on a quiet cloud an answer lives that long.
//!
//! Memory: at most [`ENTRIES`] answers weighing at most [`BYTES`] together (docs/memory.md);
//! a larger answer is not kept, and a call that finds the generation moved drops every answer
//! it ended. Keys are what callers send, so each is weighed too.

use axum::body::Bytes;
use sqlstore::{Changes, Watched};

use super::vm_body::Query;
use super::vm_pool_cache::Form;
use crate::gencache::GenMap;

/// Answers kept at most: a few callers' filters and both forms.
pub const ENTRIES: usize = 8;
/// What they may weigh together: both answers of 10k deployed VMs, 11 MB short and 28 MB
/// full.
pub const BYTES: usize = 48 << 20;

/// What an answer is a function of, besides the tables it read.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub form: Form,
    /// The whole statement, with the caller's filter (and its page, without a query).
    pub sql: String,
    pub args: Vec<i64>,
    pub query: Option<Query>,
    /// The page as (size, offset): with a query it is counted over the VMs that match, so it
    /// is not in the statement.
    pub page: Option<(i64, i64)>,
}

impl Key {
    fn weight(&self) -> usize {
        self.sql.len() + 8 * self.args.len() + self.query.as_ref().map_or(0, Query::weight)
    }
}

/// The answers kept, by what they answer.
pub struct Answers(GenMap<Key, Bytes>);

impl Default for Answers {
    fn default() -> Answers {
        Answers(GenMap::new(ENTRIES, BYTES))
    }
}

/// A call that found no answer kept: [`Answers::keep`] keeps the one it makes.
pub struct Miss {
    read_at: u64,
    key: Key,
}

impl Answers {
    /// The answer kept for `key`, or what [`Answers::keep`] needs. Call before reading the
    /// database.
    pub fn find(&self, changes: &Changes, key: Key) -> Result<Bytes, Miss> {
        let now = changes.get(Watched::VmPool);
        match self.0.get(now, &key) {
            Some(answer) => {
                telemetry::m::POOL_ANSWERS_REUSED.inc();
                Ok(answer)
            }
            None => {
                // An answer of megabytes is not held past the change that ended it.
                self.0.drop_stale(now);
                Err(Miss { read_at: now, key })
            }
        }
    }

    /// Keeps `answer`, read after [`Answers::find`] missed.
    pub fn keep(&self, miss: Miss, answer: &Bytes) {
        let weight = answer.len() + miss.key.weight();
        self.0.put(miss.read_at, miss.key, answer.clone(), weight);
    }

    /// Answers kept now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use sqlstore::{SqlStmt, SqlTxn, SqlValue};

    fn key(sql: &str) -> Key {
        Key {
            form: Form::Short,
            sql: sql.to_string(),
            args: vec![1],
            query: None,
            page: None,
        }
    }

    fn write(changes: &Changes, sql: &str) {
        changes.applied([&SqlTxn {
            stmts: vec![SqlStmt::new(sql, vec![SqlValue::Int(1)])],
        }]);
    }

    #[test]
    fn an_answer_is_sent_again_until_a_write_to_what_it_read() {
        let changes = Changes::default();
        let answers = Answers::default();
        let miss = answers.find(&changes, key("a")).unwrap_err();
        answers.keep(miss, &Bytes::from_static(b"one"));
        assert_eq!(answers.find(&changes, key("a")).ok().unwrap(), "one");
        // Another statement (another caller's filter, another page) is another answer.
        assert!(answers.find(&changes, key("b")).is_err());
        let mut other_form = key("a");
        other_form.form = Form::Pool;
        assert!(answers.find(&changes, other_form).is_err());
        let mut other_args = key("a");
        other_args.args = vec![2];
        assert!(answers.find(&changes, other_args).is_err());
        let mut other_page = key("a");
        other_page.page = Some((2, 1));
        assert!(answers.find(&changes, other_page).is_err());
        // Writes to other tables leave it.
        write(&changes, "UPDATE host_pool SET template = ?1");
        write(&changes, "INSERT INTO user_pool (oid) VALUES (?1)");
        assert!(answers.find(&changes, key("a")).is_ok());
        for sql in [
            "UPDATE vm_pool SET state = 3 WHERE oid = ?1",
            "INSERT INTO history (vid) VALUES (?1)",
            "INSERT INTO vm_monitoring (vmid) VALUES (?1)",
            "UPDATE group_pool SET name = 'x' WHERE oid = ?1",
        ] {
            if let Err(miss) = answers.find(&changes, key("a")) {
                answers.keep(miss, &Bytes::from_static(b"two"));
            }
            assert!(answers.find(&changes, key("a")).is_ok());
            write(&changes, sql);
            assert!(answers.find(&changes, key("a")).is_err(), "{sql}");
        }
    }

    #[test]
    fn nothing_is_kept_or_sent_while_a_commit_to_what_it_read_is_under_way() {
        let changes = Changes::default();
        let answers = Answers::default();
        let txn = SqlTxn {
            stmts: vec![SqlStmt::new("DELETE FROM vm_pool WHERE oid = ?1", vec![])],
        };
        let miss = answers.find(&changes, key("a")).unwrap_err();
        answers.keep(miss, &Bytes::from_static(b"before"));
        let committing = changes.applying([&txn]);
        assert!(answers.find(&changes, key("a")).is_err());
        let during = answers.find(&changes, key("a")).unwrap_err();
        answers.keep(during, &Bytes::from_static(b"during"));
        drop(committing);
        assert!(answers.find(&changes, key("a")).is_err());
    }

    #[test]
    fn answers_are_bounded_in_number_and_bytes() {
        let changes = Changes::default();
        let answers = Answers::default();
        for i in 0..3 * ENTRIES {
            let miss = answers.find(&changes, key(&i.to_string())).unwrap_err();
            answers.keep(miss, &Bytes::from_static(b"x"));
        }
        assert!(answers.len() <= ENTRIES);
        let miss = answers.find(&changes, key("large")).unwrap_err();
        answers.keep(miss, &Bytes::from(vec![b'x'; BYTES + 1]));
        assert!(answers.find(&changes, key("large")).is_err());
    }

    #[test]
    fn a_call_after_a_change_drops_the_answers_it_ended() {
        let changes = Changes::default();
        let answers = Answers::default();
        for k in ["a", "b"] {
            let miss = answers.find(&changes, key(k)).unwrap_err();
            answers.keep(miss, &Bytes::from_static(b"x"));
        }
        assert_eq!(answers.len(), 2);
        write(&changes, "DELETE FROM vm_pool WHERE oid = ?1");
        assert!(answers.find(&changes, key("c")).is_err());
        assert_eq!(answers.len(), 0);
    }
}
