//! Which VMs the commits that moved [`crate::Watched::VmPool`] may have changed, so a pool
//! answer kept from before them can be brought up to date by reading those VMs again rather
//! than every VM (`oned`'s `vm_pool_answers`, issue 16).
//!
//! Read from each statement's text and parameters, as the generations are: a write to
//! `vm_pool`, `history` or `vm_monitoring` touches one VM only when its text pins it to that
//! VM's key (`WHERE oid = ?1 [AND ...]`, one `VALUES` row naming the key). Any other form (a
//! statement over many VMs, a subquery, an `OR`, a key changed by `SET`), and any write that
//! moves the generation through another table (an owner or group renamed), touches every VM.
//! Erring that way costs one full read; the other way would send a stale answer, so the
//! parser accepts only the forms it understands completely.
//!
//! The log is bounded ([`MAX_COMMITS`], [`MAX_VMS`]): past it, what it forgot makes the
//! answers read before it unknown, and they are read whole again.

use std::collections::VecDeque;

use crate::{SqlStmt, SqlValue};

/// Commits remembered.
pub const MAX_COMMITS: usize = 1024;
/// VM ids remembered over all commits.
pub const MAX_VMS: usize = 16384;
/// A commit touching more VMs than this is remembered as touching all of them.
pub const MAX_VMS_PER_COMMIT: usize = 256;

/// The VM whose pool row `stmt` may change, when its text pins it to one VM; `None` when it
/// may change any (or it is not a write to a table of VMs at all).
pub(crate) fn touched_vm(stmt: &SqlStmt) -> Option<i64> {
    let sql = stmt.sql.trim();
    let table = crate::changes::target(sql)?;
    let key = if table.eq_ignore_ascii_case(crate::objects::vm::TABLE) {
        "oid"
    } else if table.eq_ignore_ascii_case("history") {
        "vid"
    } else if table.eq_ignore_ascii_case("vm_monitoring") {
        "vmid"
    } else {
        return None;
    };
    if sql.contains(['\'', '"', '`', ';']) || sql.contains("--") || sql.contains("/*") {
        return None;
    }
    let words: Vec<&str> = idents(sql).map(|(_, w)| w).collect();
    let is = |w: &str, word: &str| w.eq_ignore_ascii_case(word);
    let first = words.first()?;
    // Reads of other rows, or of other tables, may pick any VM.
    if words.iter().any(|w| is(w, "SELECT")) {
        return None;
    }
    let value = if is(first, "INSERT") || is(first, "REPLACE") {
        inserted_key(sql, key)?
    } else {
        // UPDATE or DELETE: one WHERE, no OR but `UPDATE OR x`'s, the key not assigned.
        let ors = words.iter().filter(|w| is(w, "OR")).count();
        let conflict_or = words.get(1).is_some_and(|w| is(w, "OR"));
        if ors > usize::from(conflict_or) {
            return None;
        }
        let at = only_where(sql)?;
        let (head, cond) = (&sql[..at], &sql[at + "WHERE".len()..]);
        if is(first, "UPDATE") && names_word(set_part(head)?, key) {
            return None;
        }
        pinned_by(cond, key)?
    };
    match value {
        Value::Param(n) => match stmt.params.get(n.checked_sub(1)?)? {
            SqlValue::Int(id) => Some(*id),
            _ => None,
        },
        Value::Literal(id) => Some(id),
    }
}

enum Value {
    /// `?N`.
    Param(usize),
    Literal(i64),
}

fn value(token: &str) -> Option<Value> {
    let token = token.trim();
    if let Some(n) = token.strip_prefix('?') {
        return n.parse().ok().map(Value::Param);
    }
    token.parse().ok().map(Value::Literal)
}

/// Where the statement's only `WHERE` starts; `None` when it has none or more than one.
fn only_where(sql: &str) -> Option<usize> {
    let mut wheres = idents(sql).filter(|(_, w)| w.eq_ignore_ascii_case("WHERE"));
    let (at, _) = wheres.next()?;
    wheres.next().is_none().then_some(at)
}

/// The identifiers, keywords and numbers of `sql`, with their byte offsets.
fn idents(sql: &str) -> impl Iterator<Item = (usize, &str)> {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - sql.as_ptr() as usize, w))
}

/// `UPDATE t SET <this>`.
fn set_part(head: &str) -> Option<&str> {
    let (i, _) = idents(head).find(|(_, w)| w.eq_ignore_ascii_case("SET"))?;
    Some(&head[i + 3..])
}

/// Whether `text` names the column `word` (as a whole identifier).
fn names_word(text: &str, word: &str) -> bool {
    idents(text).any(|(_, w)| w.eq_ignore_ascii_case(word))
}

/// The key's value when `cond` (what follows `WHERE`) is `key = V` alone or followed by
/// `AND ...` without an `OR` (checked by the caller): then only the row of that key can match.
fn pinned_by(cond: &str, key: &str) -> Option<Value> {
    let cond = cond.trim_start();
    let rest = cond
        .get(..key.len())
        .filter(|k| k.eq_ignore_ascii_case(key))
        .map(|_| &cond[key.len()..])?;
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == ')')
        .unwrap_or(rest.len());
    let (token, after) = rest.split_at(end);
    let after = after.trim_start();
    let and_follows = after
        .get(..3)
        .is_some_and(|w| w.eq_ignore_ascii_case("AND"))
        && after[3..].starts_with(|c: char| c.is_ascii_whitespace() || c == '(');
    if !(after.is_empty() || and_follows) {
        return None;
    }
    value(token)
}

/// The key's value in `INSERT [OR x] INTO t (columns) VALUES (values) [ON CONFLICT ...]` with
/// one row of values.
fn inserted_key(sql: &str, key: &str) -> Option<Value> {
    let open = sql.find('(')?;
    let close = open + sql[open..].find(')')?;
    let column = sql[open + 1..close]
        .split(',')
        .position(|c| c.trim().eq_ignore_ascii_case(key))?;
    let rest = sql[close + 1..].trim_start();
    let rest = rest
        .get(..6)
        .filter(|w| w.eq_ignore_ascii_case("VALUES"))
        .map(|_| rest[6..].trim_start())?;
    let values = rest.strip_prefix('(')?;
    let (items, after) = split_row(values)?;
    // One row only: a second would follow a comma.
    if after.trim_start().starts_with(',') {
        return None;
    }
    value(items.get(column)?)
}

/// The comma-separated items of a parenthesized row whose `(` was just read, and what
/// follows its `)`.
fn split_row(text: &str) -> Option<(Vec<&str>, &str)> {
    let mut depth = 0usize;
    let mut items = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                items.push(&text[start..i]);
                return Some((items, &text[i + 1..]));
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// The VMs touched by the commits that moved the generation, by the settled generation each
/// commit leads to.
#[derive(Default)]
pub(crate) struct TouchLog {
    /// (generation, the VMs touched or `None` for all), oldest first.
    commits: VecDeque<(u64, Option<Box<[i64]>>)>,
    vms: usize,
    /// The newest generation of a commit dropped from the log.
    forgotten: u64,
}

impl TouchLog {
    pub(crate) fn push(&mut self, generation: u64, vms: Option<Vec<i64>>) {
        let vms = vms
            .filter(|v| v.len() <= MAX_VMS_PER_COMMIT)
            .map(Vec::into_boxed_slice);
        self.vms += vms.as_ref().map_or(0, |v| v.len());
        self.commits.push_back((generation, vms));
        while self.commits.len() > MAX_COMMITS || self.vms > MAX_VMS {
            let Some((g, old)) = self.commits.pop_front() else {
                break;
            };
            self.vms -= old.map_or(0, |v| v.len());
            self.forgotten = self.forgotten.max(g);
        }
    }

    /// The VMs touched by the commits after generation `from` up to `to` (both settled, `from`
    /// not after `to`), sorted, each once; `None` when one of them touched every VM or the log
    /// no longer reaches back to `from`.
    pub(crate) fn between(&self, from: u64, to: u64) -> Option<Vec<i64>> {
        if from > to || self.forgotten > from {
            return None;
        }
        let mut vms = Vec::new();
        for (g, touched) in &self.commits {
            if *g > from && *g <= to {
                vms.extend_from_slice(touched.as_deref()?);
            }
        }
        vms.sort_unstable();
        vms.dedup();
        Some(vms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touched(sql: &str, params: Vec<SqlValue>) -> Option<i64> {
        touched_vm(&SqlStmt::new(sql, params))
    }

    #[test]
    fn writes_pinned_to_one_vm_touch_that_vm() {
        let p = || {
            vec![
                SqlValue::Int(7),
                SqlValue::Int(9),
                SqlValue::Text("x".into()),
            ]
        };
        for (sql, vm) in [
            ("UPDATE vm_pool SET name = ?3 WHERE oid = ?1", 7),
            ("UPDATE vm_pool SET name = ?3 WHERE oid = ?2", 9),
            ("update vm_pool set name = ?3 where OID=?2", 9),
            (
                "UPDATE vm_pool SET prev_state = state, state = ?2 WHERE oid = ?1 AND state = 3",
                7,
            ),
            (
                "UPDATE vm_pool SET template = ?3 WHERE oid = ?1 AND (resched = 1)",
                7,
            ),
            ("UPDATE vm_pool SET resched = 0 WHERE oid = 12", 12),
            ("DELETE FROM vm_pool WHERE oid = ?1", 7),
            (
                "UPDATE history SET etime = ?2 WHERE vid = ?1 AND etime = 0",
                7,
            ),
            ("INSERT INTO history (vid, seq, hid) VALUES (?2, ?1, 0)", 9),
            ("INSERT INTO vm_pool (oid, name) VALUES (?1, json(?3))", 7),
            (
                "INSERT OR IGNORE INTO vm_monitoring (vmid, last_poll) VALUES (?1, ?2)",
                7,
            ),
            (
                "INSERT INTO vm_monitoring (last_poll, vmid) VALUES (?1, ?2) \
                 ON CONFLICT (vmid, last_poll) DO UPDATE SET cpu = 1",
                9,
            ),
            ("REPLACE INTO vm_pool (oid, name) VALUES (5, ?3)", 5),
            ("UPDATE OR REPLACE vm_pool SET name = ?3 WHERE oid = ?1", 7),
        ] {
            assert_eq!(touched(sql, p()), Some(vm), "{sql}");
        }
    }

    #[test]
    fn writes_that_may_touch_other_vms_touch_them_all() {
        let p = || vec![SqlValue::Int(7), SqlValue::Text("x".into())];
        for sql in [
            // Not pinned to a key.
            "UPDATE vm_pool SET resched = 0",
            "UPDATE vm_pool SET resched = 0 WHERE state = ?1",
            "DELETE FROM vm_monitoring WHERE last_poll < ?1",
            "UPDATE history SET etime = ?1 WHERE etime = 0 AND vid IN (1, 2)",
            "UPDATE vm_pool SET name = ?2 WHERE oid > ?1",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 OR 1 = 1",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 AND state = 1 OR state = 2",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 AND (state = 1)OR(1 = 1)",
            "DELETE FROM vm_pool WHERE oid = ?1 OR 1 = 1",
            "UPDATE OR REPLACE vm_pool SET name = ?2 WHERE oid = ?1 OR 1 = 1",
            "DELETE FROM vm_pool WHERE oid = ?1 -- AND x",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 AND x IN(SELECT 1)",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1+1",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 AND uid IN (SELECT oid FROM user_pool)",
            "UPDATE vm_pool SET name = (SELECT name FROM vm_pool WHERE oid = 3) WHERE oid = ?1",
            "UPDATE vm_pool SET name = 'a WHERE oid = 1' WHERE oid = ?1",
            "UPDATE vm_pool SET oid = 8 WHERE oid = ?1",
            "UPDATE history SET vid = 8 WHERE vid = ?1",
            "UPDATE vm_pool SET name = ?2 WHERE oidx = ?1",
            // The key is not an integer parameter.
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?2",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?9",
            // Inserts of many rows, of rows read elsewhere, without the key.
            "INSERT INTO vm_pool (oid, name) VALUES (?1, ?2), (8, ?2)",
            "INSERT INTO vm_monitoring (vmid, last_poll) SELECT oid, ?1 FROM vm_pool",
            "INSERT INTO history (seq, hid) VALUES (?1, 0)",
            "INSERT INTO vm_pool (oid, name) VALUES (?1, ?2); DELETE FROM vm_pool",
            "WITH x AS (SELECT 1) DELETE FROM history WHERE vid = ?1",
            // Other tables.
            "UPDATE user_pool SET name = ?2 WHERE oid = ?1",
            "UPDATE template_pool SET name = ?2 WHERE oid = ?1",
        ] {
            assert_eq!(touched(sql, p()), None, "{sql}");
        }
    }

    #[test]
    fn the_log_answers_only_for_what_it_still_holds() {
        let g = |n: u64| n * 256;
        let mut log = TouchLog::default();
        log.push(g(1), Some(vec![3, 1]));
        log.push(g(2), Some(vec![1, 2]));
        assert_eq!(log.between(g(0), g(2)), Some(vec![1, 2, 3]));
        assert_eq!(log.between(g(1), g(2)), Some(vec![1, 2]));
        assert_eq!(log.between(g(2), g(2)), Some(vec![]));
        log.push(g(3), None);
        assert_eq!(log.between(g(1), g(3)), None);
        assert_eq!(log.between(g(3), g(3)), Some(vec![]));
        // A commit over too many VMs is one over all of them.
        log.push(g(4), Some((0..=MAX_VMS_PER_COMMIT as i64).collect()));
        assert_eq!(log.between(g(3), g(4)), None);
        // What the log forgot makes the answers before it unknown.
        for n in 5..5 + MAX_COMMITS as u64 {
            log.push(g(n), Some(vec![n as i64]));
        }
        assert_eq!(log.between(g(2), g(6)), None);
        let last = 4 + MAX_COMMITS as u64;
        assert_eq!(
            log.between(g(last - 2), g(last)),
            Some(vec![last as i64 - 1, last as i64])
        );
    }
}
