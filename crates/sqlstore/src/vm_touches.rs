//! Which VMs the commits that moved [`crate::Watched::VmPool`] may have changed, so a pool
//! answer kept from before them can be brought up to date by reading those VMs again rather
//! than every VM (`oned`'s `vm_pool_answers`, issue 16).
//!
//! Read from each statement's text and parameters, as the generations are: a write to
//! `vm_pool`, `history` or `vm_monitoring` touches one VM only when its text pins every row it
//! writes to that VM's key: an `UPDATE` or `DELETE` whose condition is `key = V AND ...` with no
//! `OR` outside parentheses (subqueries and `OR`s inside them only narrow the rows), an `UPDATE`
//! that does not set the key; an `INSERT` of one `VALUES` row, or of one `SELECT`, whose key is a
//! parameter or a number. Any other form (a statement over many VMs, a compound select, a key
//! changed by `SET`), and any write that moves the generation through another table (an owner
//! or group renamed), touches every VM. Erring that way costs one full read; the other way
//! would send a stale answer, so the reader accepts only the forms it follows completely, and
//! refuses text it does not tokenize (quotes, comments, several statements).
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
    let table = crate::changes::target(&stmt.sql)?;
    let key = if table.eq_ignore_ascii_case(crate::objects::vm::TABLE) {
        "oid"
    } else if table.eq_ignore_ascii_case("history") {
        "vid"
    } else if table.eq_ignore_ascii_case("vm_monitoring") {
        "vmid"
    } else {
        return None;
    };
    let toks = lex(&stmt.sql)?;
    let value = match toks.first()?.tok {
        Tok::Word(w) if w.eq_ignore_ascii_case("INSERT") || w.eq_ignore_ascii_case("REPLACE") => {
            inserted_key(&toks, key)?
        }
        Tok::Word(w) if w.eq_ignore_ascii_case("UPDATE") || w.eq_ignore_ascii_case("DELETE") => {
            filtered_key(&toks, key, w.eq_ignore_ascii_case("UPDATE"))?
        }
        _ => return None,
    };
    match value {
        Tok::Param(n) => match stmt.params.get(n.checked_sub(1)?)? {
            SqlValue::Int(id) => Some(*id),
            _ => None,
        },
        Tok::Num(id) => Some(id),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    /// A keyword or a name.
    Word(&'a str),
    /// `?N`.
    Param(usize),
    Num(i64),
    Open,
    Close,
    Comma,
    Eq,
    /// Any other character (`.`, `<`, `+`, a lone `?`...).
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Lexed<'a> {
    tok: Tok<'a>,
    /// Parentheses around it: 0 for the statement's own clauses.
    depth: usize,
}

impl Lexed<'_> {
    fn is_word(&self, word: &str) -> bool {
        matches!(self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn top_word(&self, word: &str) -> bool {
        self.depth == 0 && self.is_word(word)
    }
}

/// The statement's tokens with their depth; `None` for text this reader does not follow
/// (quotes, comments, several statements, unbalanced parentheses).
fn lex(sql: &str) -> Option<Vec<Lexed<'_>>> {
    if sql.contains(['\'', '"', '`', ';', '[']) || sql.contains("--") || sql.contains("/*") {
        return None;
    }
    let bytes = sql.as_bytes();
    let mut toks = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let run = |from: usize, ok: fn(u8) -> bool| {
            from + bytes[from..].iter().take_while(|b| ok(**b)).count()
        };
        let (tok, next) = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = run(i, |b| b.is_ascii_alphanumeric() || b == b'_');
            (Tok::Word(&sql[i..end]), end)
        } else if c.is_ascii_digit() {
            let end = run(i, |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            match sql[i..end].parse() {
                Ok(n) => (Tok::Num(n), end),
                Err(_) => (Tok::Other, end),
            }
        } else if c == b'?' {
            let end = run(i + 1, |b| b.is_ascii_digit());
            match sql[i + 1..end].parse() {
                Ok(n) => (Tok::Param(n), end),
                Err(_) => (Tok::Other, end),
            }
        } else {
            let tok = match c {
                b'(' => Tok::Open,
                b')' => Tok::Close,
                b',' => Tok::Comma,
                b'=' => Tok::Eq,
                _ => Tok::Other,
            };
            (tok, i + 1)
        };
        if tok == Tok::Close {
            depth = depth.checked_sub(1)?;
        }
        toks.push(Lexed { tok, depth });
        if tok == Tok::Open {
            depth += 1;
        }
        i = next;
    }
    (depth == 0).then_some(toks)
}

/// `UPDATE t SET ... WHERE key = V [AND ...]` or `DELETE FROM t WHERE key = V [AND ...]`, with
/// no `OR` outside parentheses in the condition (so every row it matches has the key `V`), and
/// an `UPDATE` neither assigning the key nor reading other tables' rows to update (`FROM`).
fn filtered_key<'a>(toks: &[Lexed<'a>], key: &str, update: bool) -> Option<Tok<'a>> {
    let mut wheres = toks.iter().enumerate().filter(|(_, t)| t.top_word("WHERE"));
    let (at, _) = wheres.next()?;
    if wheres.next().is_some() {
        return None;
    }
    if update {
        let set = toks[..at].iter().position(|t| t.top_word("SET"))?;
        let assigns = &toks[set + 1..at];
        if assigns
            .iter()
            .any(|t| t.depth == 0 && (t.is_word(key) || t.is_word("FROM")))
        {
            return None;
        }
    }
    let cond = &toks[at + 1..];
    if cond.iter().any(|t| t.top_word("OR")) {
        return None;
    }
    match cond {
        [k, eq, v, ..]
            if k.top_word(key)
                && eq.tok == Tok::Eq
                && matches!(v.tok, Tok::Param(_) | Tok::Num(_))
                && cond.get(3).is_none_or(|and| and.top_word("AND")) =>
        {
            Some(v.tok)
        }
        _ => None,
    }
}

/// `INSERT [OR x] INTO t (columns) VALUES (values)` with one row, or `... (columns) SELECT
/// items FROM ...` (one select, no compound), where the key's value is a parameter or a
/// number: every row inserted then has that key. An upsert may not set the key.
fn inserted_key<'a>(toks: &[Lexed<'a>], key: &str) -> Option<Tok<'a>> {
    let open = toks.iter().position(|t| t.tok == Tok::Open)?;
    let close = open + toks[open..].iter().position(|t| t.tok == Tok::Close)?;
    let columns: Vec<&[Lexed<'a>]> = toks[open + 1..close]
        .split(|t| t.tok == Tok::Comma)
        .collect();
    let column = columns
        .iter()
        .position(|c| matches!(c, [name] if name.is_word(key)))?;
    let rest = &toks[close + 1..];
    let source = rest.first()?;
    let items: Vec<&[Lexed<'a>]> = if source.top_word("VALUES") {
        let row = rest.get(1).filter(|t| t.tok == Tok::Open)?;
        let end = 1 + rest[1..]
            .iter()
            .position(|t| t.tok == Tok::Close && t.depth == row.depth)?;
        // One row only: a second would follow a comma.
        if rest.get(end + 1).is_some_and(|t| t.tok == Tok::Comma) {
            return None;
        }
        rest[2..end]
            .split(|t| t.tok == Tok::Comma && t.depth == row.depth + 1)
            .collect()
    } else if source.top_word("SELECT") {
        let compound = ["UNION", "INTERSECT", "EXCEPT", "DISTINCT", "ALL", "VALUES"];
        if rest.iter().any(|t| compound.iter().any(|w| t.top_word(w))) {
            return None;
        }
        let end = rest
            .iter()
            .position(|t| t.top_word("FROM"))
            .unwrap_or(rest.len());
        rest[1..end]
            .split(|t| t.tok == Tok::Comma && t.depth == 0)
            .collect()
    } else {
        return None;
    };
    // `ON CONFLICT ... DO UPDATE SET`: the row updated has the key inserted, unless it is set.
    if let Some(up) = rest
        .windows(2)
        .position(|w| w[0].top_word("DO") && w[1].top_word("UPDATE"))
    {
        if rest[up..].iter().any(|t| t.is_word(key)) {
            return None;
        }
    }
    match items.get(column)? {
        [v] if matches!(v.tok, Tok::Param(_) | Tok::Num(_)) => Some(v.tok),
        _ => None,
    }
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
            // Subqueries and ORs inside parentheses only narrow the rows of that key.
            (
                "UPDATE vm_pool SET state = ?2, hid = ?2 WHERE oid = ?1 AND state IN (?2, ?3) \
                 AND EXISTS (SELECT 1 FROM host_pool h WHERE h.oid = ?2 AND h.state IN (?2, ?3) \
                 AND (?3 = 0 OR (h.total_cpu - h.cpu_usage >= vm_pool.cpu * 100)))",
                7,
            ),
            ("UPDATE vm_pool SET name = (SELECT name FROM vm_pool WHERE oid = 3) WHERE oid = ?1", 7),
            ("UPDATE vm_pool SET name = ?2 WHERE oid = ?1 AND uid IN (SELECT oid FROM user_pool)", 7),
            ("DELETE FROM history WHERE vid = ?2 AND (seq = 1 OR seq = 2)", 9),
            (
                "INSERT INTO history (vid, seq, hid, hostname, vm_mad, stime) \
                 SELECT ?1, COALESCE((SELECT MAX(seq) + 1 FROM history WHERE vid = ?1), 0), \
                 h.oid, h.name, h.vm_mad, ?3 FROM host_pool h WHERE h.oid = ?2",
                7,
            ),
            (
                "INSERT INTO vm_monitoring (vmid, last_poll) SELECT 12, ?1 FROM vm_pool \
                 WHERE oid = 12 ON CONFLICT (vmid, last_poll) DO UPDATE SET cpu = 1",
                12,
            ),
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
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1+1",
            "UPDATE vm_pool SET name = ?2 WHERE oid >= ?1",
            "UPDATE vm_pool SET name = ?2 WHERE oid == ?1",
            "UPDATE vm_pool SET name = ?2 WHERE NOT oid = ?1",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 IS NULL",
            "UPDATE vm_pool SET name = ?2 WHERE vm_pool.oid = ?1",
            "UPDATE vm_pool SET name = ?2 WHERE (oid = ?1 OR 1 = 1)",
            "UPDATE vm_pool SET name = ?2 WHERE oid IN (?1)",
            "UPDATE vm_pool SET name = o.name FROM other o WHERE oid = o.id",
            "UPDATE vm_pool SET name = o.name FROM vm_pool o WHERE oid = ?1",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 AND (1 = 1",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 AND 1 = 1)",
            "UPDATE vm_pool SET name = 'a WHERE oid = 1' WHERE oid = ?1",
            "UPDATE vm_pool SET name = \"x\" WHERE oid = ?1",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?1 /* OR 1 = 1 */",
            "UPDATE vm_pool SET oid = 8 WHERE oid = ?1",
            "UPDATE history SET vid = 8 WHERE vid = ?1",
            "UPDATE vm_pool SET name = ?2 WHERE oidx = ?1",
            // The key is not an integer parameter.
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?2",
            "UPDATE vm_pool SET name = ?2 WHERE oid = ?9",
            // Inserts of many rows, of rows read elsewhere, without the key.
            "INSERT INTO vm_pool (oid, name) VALUES (?1, ?2), (8, ?2)",
            "INSERT INTO vm_monitoring (vmid, last_poll) SELECT oid, ?1 FROM vm_pool",
            "INSERT INTO vm_monitoring (vmid, last_poll) SELECT v.oid, ?1 FROM vm_pool v",
            "INSERT INTO history (vid, seq) SELECT ?1, 0 UNION SELECT 8, 0",
            "INSERT INTO history (vid, seq) SELECT DISTINCT ?1, seq FROM history",
            "INSERT INTO history (vid, seq) VALUES (?1, 0) ON CONFLICT (vid, seq) DO UPDATE SET vid = 8",
            "INSERT INTO history (vid, seq) VALUES ((?1), 0)",
            "INSERT INTO history (vid + 1, seq) VALUES (?1, 0)",
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

    #[test]
    fn the_history_writes_of_actions_touch_their_vm_only() {
        use crate::objects::vm::{self, Asked, Deploy, DeployFrom, Record};
        let asked = Asked {
            action: 35,
            uid: 2,
            gid: 1,
        };
        let mut stmts = vec![
            vm::set_action(7, Record::Open, asked),
            vm::set_action(7, Record::Seq(2), asked),
            vm::stamp(7, Record::Open, &["pstime"], 10),
        ];
        stmts.extend(vm::close_cp_history(7, Some(asked), None, 10));
        stmts.extend(vm::close_cp_history(7, None, Some(asked), 10));
        stmts.extend(vm::deploy_stmts(&Deploy {
            oid: 7,
            hid: 3,
            from: DeployFrom {
                state: 4,
                last_action: Some(9),
            },
            room: None,
            by_hand: true,
            ds_id: -1,
            plan_action: None,
            now: 10,
        }));
        for st in stmts.iter().filter(|st| {
            let t = crate::changes::target(&st.sql).unwrap_or_default();
            t == "history" || t == "vm_pool"
        }) {
            assert_eq!(touched_vm(st), Some(7), "{}", st.sql);
        }
    }
}
