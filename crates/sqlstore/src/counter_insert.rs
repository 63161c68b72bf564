//! The allocation insert on SQLite without its `RETURNING`.
//!
//! Every allocation replicates `INSERT INTO t (oid, ..) SELECT last_oid + 1, .. FROM
//! pool_control WHERE tablename = 't' RETURNING oid` ([`crate::objects::insert_next`]). SQLite
//! runs a `RETURNING` statement through an ephemeral table that holds the returned rows until
//! the statement ends, and that was 3 of the 8 µs an allocation insert cost each server's
//! apply (docs/benchmarks.md, fifteenth round). Without the clause, the new row is the one
//! `last_insert_rowid()` names, and its oid is read back by that rowid, which holds for any
//! table with a rowid (whether or not `oid` is its alias, as in OpenNebula's own `acl`).
//!
//! Only that exact shape is taken: `pool_control.tablename` is its primary key, so the
//! `SELECT` makes at most one row, and a single `SELECT` with a single `FROM` cannot be a
//! compound or a join that makes more; nor can a last `AND NOT EXISTS (<one SELECT>)`, which
//! only keeps that row out. Anything else runs as written.

use crate::sql::{Conn, SqlError};
use crate::SqlValue;

const RETURNING: &str = " RETURNING oid";
const GUARD: &str = " AND NOT EXISTS (";

/// An allocation insert, split into the statement without its `RETURNING` and its table.
#[derive(Debug, PartialEq)]
pub(crate) struct CounterInsert<'a> {
    insert: &'a str,
    table: &'a str,
}

impl<'a> CounterInsert<'a> {
    /// `Some` for exactly the shape above, else `None`.
    pub(crate) fn parse(sql: &'a str) -> Option<CounterInsert<'a>> {
        let insert = sql.strip_suffix(RETURNING)?;
        // A guard the insert may end with (`objects::insert_next_unless`): one subquery
        // without parentheses inside, which can only keep the one row out.
        let base = match insert.split_once(GUARD) {
            Some((base, inner)) => {
                let inner = inner.strip_suffix(')')?;
                if inner.contains(['(', ')', ';']) || keywords(inner) != (1, 1) {
                    return None;
                }
                base
            }
            None => insert,
        };
        let table = base
            .strip_prefix("INSERT INTO ")?
            .split([' ', '('])
            .next()
            .filter(|t| {
                !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })?;
        let mut words = base.split_whitespace().rev();
        let counter = words.next()?.strip_prefix('\'')?.strip_suffix('\'')?;
        if counter != table
            || !words
                .take(5)
                .eq(["=", "tablename", "WHERE", "pool_control", "FROM"])
        {
            return None;
        }
        (keywords(base) == (1, 1)).then_some(CounterInsert { insert, table })
    }

    /// What the statement with its `RETURNING` gives: the new oid, or nothing when no row was
    /// inserted (no counter for the table).
    pub(crate) fn run(&self, tx: &Conn, params: &[SqlValue]) -> Result<Option<SqlValue>, SqlError> {
        if tx.prepare_cached(self.insert)?.execute(params)? == 0 {
            return Ok(None);
        }
        let read_back = format!(
            "SELECT oid FROM {} WHERE rowid = last_insert_rowid()",
            self.table
        );
        tx.prepare_cached(&read_back)?
            .query_row((), |r| r.get_ref(0).cloned())
            .map(Some)
    }
}

/// How many `SELECT` and `FROM` words `sql` has, in any case, in one pass over its bytes (it
/// runs for every allocation on every server: splitting by chars was 1.8 % of a follower).
fn keywords(sql: &str) -> (usize, usize) {
    let (mut selects, mut froms) = (0, 0);
    for word in sql
        .as_bytes()
        .split(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    {
        if word.eq_ignore_ascii_case(b"select") {
            selects += 1;
        } else if word.eq_ignore_ascii_case(b"from") {
            froms += 1;
        }
    }
    (selects, froms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{insert_next, insert_next_unless};

    #[test]
    fn takes_the_allocation_insert_and_nothing_like_it() {
        let made = insert_next("vm_pool", "name, body", "?1, ?2", vec![]);
        assert_eq!(
            CounterInsert::parse(&made.sql).map(|c| c.table),
            Some("vm_pool")
        );
        let unless = "EXISTS (SELECT 1 FROM vm_pool WHERE name = ?1)";
        let guarded = insert_next_unless("vm_pool", "name", "?1", unless, vec![]);
        assert_eq!(
            CounterInsert::parse(&guarded.sql).map(|c| c.table),
            Some("vm_pool")
        );
        for other in [
            "INSERT INTO t (oid) VALUES (1) RETURNING oid",
            "INSERT INTO t (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 'u' RETURNING oid",
            "INSERT INTO t (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 't' RETURNING name",
            "INSERT INTO t (oid) SELECT 1 UNION SELECT last_oid + 1 FROM pool_control WHERE tablename = 't' RETURNING oid",
            "INSERT INTO t (oid) SELECT (SELECT max(oid) FROM t) FROM pool_control WHERE tablename = 't' RETURNING oid",
            "INSERT INTO t (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 't'",
            "REPLACE INTO t (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 't' RETURNING oid",
            "INSERT INTO t (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 't' AND NOT EXISTS (SELECT 1 FROM t) UNION SELECT (1) RETURNING oid",
            "INSERT INTO t (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 't' AND NOT EXISTS (SELECT 1 FROM t UNION SELECT 2 FROM t) RETURNING oid",
            "INSERT INTO t (oid) SELECT last_oid + 1 FROM pool_control WHERE tablename = 't' AND NOT EXISTS (SELECT 1 FROM t WHERE (1)) RETURNING oid",
        ] {
            assert_eq!(CounterInsert::parse(other), None, "{other}");
        }
    }

    fn db() -> Conn {
        let c = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        c.execute_batch(
            "CREATE TABLE pool_control (tablename VARCHAR(32) PRIMARY KEY, last_oid BIGINT);
             INSERT INTO pool_control VALUES ('vm_pool', 41), ('acl', 6);
             CREATE TABLE vm_pool (oid INTEGER PRIMARY KEY, name TEXT UNIQUE);
             -- OpenNebula's own acl: its oid is not the rowid.
             CREATE TABLE acl (oid INT PRIMARY KEY, name TEXT UNIQUE);
             CREATE TABLE host_pool (oid INTEGER PRIMARY KEY, name TEXT);",
        )
        .unwrap();
        c
    }

    /// Each allocation gives, on the fast way, exactly what its `RETURNING` gives: the new oid,
    /// nothing without a counter, the same error on a taken name.
    #[test]
    fn gives_what_the_returning_gives() {
        let (fast, slow) = (db(), db());
        let text = |s: &str| SqlValue::Text(s.into());
        let cases = [
            ("vm_pool", "a", false),
            ("acl", "a", false),
            ("vm_pool", "b", false),
            ("acl", "b", true),
            ("vm_pool", "a", false),
            ("host_pool", "h", false),
            // Kept out by its guard: no row, no error.
            ("vm_pool", "b", true),
            ("vm_pool", "c", true),
        ];
        for (table, name, guarded) in cases {
            let stmt = if guarded {
                let unless = format!("EXISTS (SELECT 1 FROM {table} WHERE name = ?1)");
                insert_next_unless(table, "name", "?1", &unless, vec![text(name)])
            } else {
                insert_next(table, "name", "?1", vec![text(name)])
            };
            let insert = CounterInsert::parse(&stmt.sql).unwrap();
            let got = insert.run(&fast, &stmt.params).map_err(|e| e.to_string());
            let want = slow
                .prepare_cached(&stmt.sql)
                .and_then(|mut s| s.run(stmt.params.as_slice()))
                .map(|(first, _)| first)
                .map_err(|e| e.to_string());
            assert_eq!(got, want, "{table} {name}");
            for c in [&fast, &slow] {
                c.execute(
                    "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = ?1",
                    [table],
                )
                .unwrap();
            }
        }
        let rows = |c: &Conn| {
            c.query_row(
                "SELECT group_concat(oid || name) FROM (SELECT oid, name FROM vm_pool UNION ALL \
                 SELECT oid, name FROM acl)",
                (),
                |r| r.get::<String>(0),
            )
            .unwrap()
        };
        assert_eq!(rows(&fast), "42a,43b,46c,7a,8b");
        assert_eq!(rows(&fast), rows(&slow));
    }
}
