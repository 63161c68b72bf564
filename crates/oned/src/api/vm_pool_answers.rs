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
//! An answer that ended is not always read again whole. When the call pages nothing and has no
//! query, and the commits since its read touched only a few VMs, each pinned by its statement
//! to one VM (`sqlstore::vm_touches`), only those VMs are read again, through the same
//! statement narrowed to their ids, and spliced into the old answer in their places: a VM
//! changed is printed again, a VM gone or no longer matching the filter drops out, a new one
//! goes in by its id. The VM pool is ordered by id (either way, `list_order`), and a VM's body is a function of its row
//! alone, so the result is what a whole read would print. One write to a VM of 10k then costs
//! a copy of the answer and a read of one VM, not a read of 10k.
//!
//! Memory: at most [`ENTRIES`] answers weighing at most [`BYTES`] together (docs/memory.md);
//! a larger answer is not kept, and a call that finds the generation moved drops every answer
//! it ended. Keys are what callers send, so each is weighed too, and so are the answers' maps
//! of where each VM's body is (16 bytes per VM).

use std::sync::Arc;

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

/// The most VMs read again to bring an answer up to date; past it (or past half the VMs it
/// shows) the whole pool is read.
pub const MAX_TOUCHED: usize = 1000;

/// A kept answer and where each VM's body is in it.
#[derive(Clone)]
pub struct Kept {
    pub answer: Bytes,
    /// Each VM's id and where its body starts, in the answer's order (by id); a body ends
    /// where the next starts, the last at `bodies_end`.
    pub vms: Arc<[(i64, usize)]>,
    pub bodies_end: usize,
}

impl Kept {
    /// The answer's bytes before the first body.
    pub fn head(&self) -> &[u8] {
        let start = self.vms.first().map_or(self.bodies_end, |v| v.1);
        &self.answer[..start]
    }

    /// The answer's bytes after the last body.
    pub fn tail(&self) -> &[u8] {
        &self.answer[self.bodies_end..]
    }

    /// Each VM's id and body, in the answer's order.
    pub fn bodies(&self) -> impl Iterator<Item = (i64, &[u8])> {
        let ends = self
            .vms
            .iter()
            .skip(1)
            .map(|v| v.1)
            .chain([self.bodies_end]);
        self.vms
            .iter()
            .zip(ends)
            .map(|(&(oid, start), end)| (oid, &self.answer[start..end]))
    }
}

/// The answers kept, by what they answer.
pub struct Answers(GenMap<Key, Kept>);

impl Default for Answers {
    fn default() -> Answers {
        Answers(GenMap::new(ENTRIES, BYTES))
    }
}

/// A call that found no answer kept: [`Answers::keep`] keeps the one it makes.
pub struct Miss {
    read_at: u64,
    key: Key,
    /// An ended answer to bring up to date instead of reading the pool whole.
    pub base: Option<Box<Base>>,
}

/// An answer read before a few VMs changed, and those VMs (sorted): it becomes the answer
/// now once they are read again.
pub struct Base {
    pub kept: Kept,
    pub touched: Vec<i64>,
    /// The generation of the pool's tables they were counted up to (the call's, taken before
    /// its read).
    pub counted_to: u64,
}

impl Answers {
    /// The answer kept for `key`, or what [`Answers::keep`] needs. Call before reading the
    /// database.
    pub fn find(&self, changes: &Changes, key: Key) -> Result<Bytes, Miss> {
        let now = changes.get(Watched::VmPool);
        if let Some(kept) = self.0.get(now, &key) {
            telemetry::m::POOL_ANSWERS_REUSED.inc();
            return Ok(kept.answer);
        }
        // A page, or a query's matches, may shift when one VM changes: those are read whole.
        let base = if key.page.is_none() && key.query.is_none() {
            self.0.get_any(&key).and_then(|(read_at, kept)| {
                let touched = changes.vms_touched(read_at, now)?;
                let few = touched.len() <= MAX_TOUCHED && touched.len() <= kept.vms.len() / 2 + 16;
                few.then(|| {
                    Box::new(Base {
                        kept,
                        touched,
                        counted_to: now,
                    })
                })
            })
        } else {
            None
        };
        // An answer of megabytes is not held past the change that ended it, unless it can
        // still be brought up to date (another caller's, or another form).
        self.0.drop_stale(now, |read_at| {
            changes
                .vms_touched(read_at, now)
                .is_some_and(|t| t.len() <= MAX_TOUCHED)
        });
        Err(Miss {
            read_at: now,
            key,
            base,
        })
    }

    /// Keeps `kept`, read after [`Answers::find`] missed.
    pub fn keep(&self, miss: Miss, kept: Kept) {
        let weight = kept.answer.len() + 16 * kept.vms.len() + miss.key.weight();
        self.0.put(miss.read_at, miss.key, kept, weight);
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

    fn kept(answer: &'static [u8]) -> Kept {
        Kept {
            answer: Bytes::from_static(answer),
            vms: Arc::from([]),
            bodies_end: answer.len(),
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
        answers.keep(miss, kept(b"one"));
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
                answers.keep(miss, kept(b"two"));
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
        answers.keep(miss, kept(b"before"));
        let committing = changes.applying([&txn]);
        assert!(answers.find(&changes, key("a")).is_err());
        let during = answers.find(&changes, key("a")).unwrap_err();
        answers.keep(during, kept(b"during"));
        drop(committing);
        assert!(answers.find(&changes, key("a")).is_err());
    }

    #[test]
    fn answers_are_bounded_in_number_and_bytes() {
        let changes = Changes::default();
        let answers = Answers::default();
        for i in 0..3 * ENTRIES {
            let miss = answers.find(&changes, key(&i.to_string())).unwrap_err();
            answers.keep(miss, kept(b"x"));
        }
        assert!(answers.len() <= ENTRIES);
        let miss = answers.find(&changes, key("large")).unwrap_err();
        answers.keep(
            miss,
            Kept {
                answer: Bytes::from(vec![b'x'; BYTES + 1]),
                vms: Arc::from([]),
                bodies_end: 0,
            },
        );
        assert!(answers.find(&changes, key("large")).is_err());
    }

    #[test]
    fn a_call_after_a_change_drops_the_answers_it_ended_that_cannot_be_brought_up_to_date() {
        let changes = Changes::default();
        let answers = Answers::default();
        for k in ["a", "b"] {
            let miss = answers.find(&changes, key(k)).unwrap_err();
            answers.keep(miss, kept(b"x"));
        }
        assert_eq!(answers.len(), 2);
        write(&changes, "DELETE FROM vm_pool");
        assert!(answers.find(&changes, key("c")).is_err());
        assert_eq!(answers.len(), 0);
    }

    /// An answer of VMs 1, 4 and 9 with bodies `<1>`, `<4>`, `<9>`.
    fn three_vms() -> Kept {
        let answer = "head<1><4><9>tail";
        Kept {
            answer: Bytes::from_static(answer.as_bytes()),
            vms: Arc::from([(1, 4), (4, 7), (9, 10)]),
            bodies_end: 13,
        }
    }

    #[test]
    fn a_kept_answer_is_its_head_its_bodies_by_vm_and_its_tail() {
        let k = three_vms();
        assert_eq!(k.head(), b"head");
        assert_eq!(k.tail(), b"tail");
        let bodies: Vec<(i64, &[u8])> = k.bodies().collect();
        assert_eq!(
            bodies,
            [(1, &b"<1>"[..]), (4, &b"<4>"[..]), (9, &b"<9>"[..])]
        );
    }

    #[test]
    fn an_answer_ended_by_writes_to_a_few_vms_is_brought_up_to_date_not_read_again() {
        let changes = Changes::default();
        let answers = Answers::default();
        let miss = answers.find(&changes, key("a")).unwrap_err();
        assert!(miss.base.is_none());
        answers.keep(miss, three_vms());
        changes.applied([&SqlTxn {
            stmts: vec![
                SqlStmt::new(
                    "UPDATE vm_pool SET name = ?2 WHERE oid = ?1",
                    vec![SqlValue::Int(4), SqlValue::Text("b".into())],
                ),
                SqlStmt::new(
                    "INSERT INTO history (vid, seq) VALUES (?1, 0)",
                    vec![SqlValue::Int(12)],
                ),
            ],
        }]);
        write(&changes, "DELETE FROM vm_pool WHERE oid = ?1");
        let miss = answers.find(&changes, key("a")).unwrap_err();
        let base = miss.base.as_ref().unwrap();
        assert_eq!(base.touched, [1, 4, 12]);
        assert_eq!(base.kept.answer, three_vms().answer);
        answers.keep(miss, three_vms());
        // Another caller's call keeps the answers that can still be brought up to date.
        write(&changes, "DELETE FROM vm_pool WHERE oid = ?1");
        assert!(answers.find(&changes, key("b")).is_err());
        assert_eq!(answers.len(), 1);
        // A rename of an owner may change every body; a page may shift with any change.
        write(&changes, "UPDATE user_pool SET name = ?1");
        assert!(answers.find(&changes, key("a")).unwrap_err().base.is_none());
        let mut paged = key("a");
        paged.page = Some((2, 0));
        let miss = answers.find(&changes, paged.clone()).unwrap_err();
        answers.keep(miss, three_vms());
        write(&changes, "DELETE FROM vm_pool WHERE oid = ?1");
        assert!(answers.find(&changes, paged).unwrap_err().base.is_none());
    }

    #[test]
    fn an_answer_is_read_whole_again_when_many_of_its_vms_changed() {
        let changes = Changes::default();
        let answers = Answers::default();
        let miss = answers.find(&changes, key("a")).unwrap_err();
        answers.keep(miss, three_vms());
        for vm in 100..120 {
            changes.applied([&SqlTxn {
                stmts: vec![SqlStmt::new(
                    "DELETE FROM vm_pool WHERE oid = ?1",
                    vec![SqlValue::Int(vm)],
                )],
            }]);
        }
        assert!(answers.find(&changes, key("a")).unwrap_err().base.is_none());
    }
}
