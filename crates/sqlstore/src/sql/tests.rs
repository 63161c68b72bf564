//! The connection layer on both backends: the same statements give the same rows.

#![allow(clippy::unwrap_used)] // test code

use super::*;

fn both() -> Vec<Conn> {
    let mut out = vec![Conn::from(rusqlite::Connection::open_in_memory().unwrap())];
    if let Some(loc) = crate::testing::fresh_mysql_database() {
        out.push(Conn::open(&loc, false).unwrap());
    }
    out
}

#[test]
fn numbered_parameters_upserts_and_returning_read_alike_on_both_backends() {
    for c in both() {
        let b = c.backend();
        c.execute_batch(
            "CREATE TABLE kv (k VARCHAR(32) PRIMARY KEY, v BIGINT NOT NULL, f DOUBLE, t TEXT, b BLOB)",
        )
        .unwrap();
        c.execute(
            "INSERT INTO kv (k, v, f, t, b) VALUES (?1, ?2, ?3, ?4, ?5)",
            params!["a", 1i64, 0.5f64, "it's \\ \"x\"", vec![0u8, 255]],
        )
        .unwrap();
        let n = c
            .execute(
                "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                params!["a", 7i64],
            )
            .unwrap();
        assert!(n >= 1, "{b}");
        // An UPDATE that changes nothing still matches its row.
        assert_eq!(
            c.execute("UPDATE kv SET v = ?2 WHERE k = ?1", params!["a", 7i64])
                .unwrap(),
            1,
            "{b}"
        );
        let row = c
            .query_row(
                "SELECT k, v, f, t, b, v || 'x' FROM kv WHERE k = ?1",
                ["a"],
                |r| Ok(r.values().to_vec()),
            )
            .unwrap();
        assert_eq!(
            row,
            vec![
                SqlValue::Text("a".into()),
                SqlValue::Int(7),
                SqlValue::Real(0.5),
                SqlValue::Text("it's \\ \"x\"".into()),
                SqlValue::Blob(vec![0, 255]),
                SqlValue::Text("7x".into()),
            ],
            "{b}"
        );
        let ret: i64 = c
            .query_row(
                "INSERT INTO kv (k, v) SELECT 'b', v + 1 FROM kv WHERE k = ?1 RETURNING v",
                ["a"],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ret, 8, "{b}");
        let missing = c
            .query_row("SELECT v FROM kv WHERE k = ?1", ["zz"], |r| r.get::<i64>(0))
            .optional()
            .unwrap();
        assert_eq!(missing, None, "{b}");
        let sum: i64 = c
            .query_row("SELECT COALESCE(SUM(v), 0) FROM kv", (), |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 15, "{b}");
    }
}

#[test]
fn constraint_errors_are_told_from_machine_errors_on_both_backends() {
    for c in both() {
        let b = c.backend();
        c.execute_batch("CREATE TABLE u (id BIGINT PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE)")
            .unwrap();
        c.execute("INSERT INTO u VALUES (?1, ?2)", params![1i64, "a"])
            .unwrap();
        let e = c
            .execute("INSERT INTO u VALUES (?1, ?2)", params![2i64, "a"])
            .unwrap_err();
        assert!(e.is_constraint() && !e.is_fatal(), "{b}: {e}");
        // Names differing only by case or trailing spaces are different names, as in SQLite.
        for other in ["A", "a "] {
            c.execute(
                "INSERT INTO u VALUES ((SELECT MAX(id) + 1 FROM u), ?1)",
                [other],
            )
            .unwrap();
        }
        let e = c.execute("INSERT INTO nowhere VALUES (1)", ()).unwrap_err();
        assert!(!e.is_constraint() && !e.is_fatal(), "{b}: {e}");
    }
}

#[test]
fn a_transaction_not_committed_leaves_nothing() {
    for mut c in both() {
        let b = c.backend();
        c.execute_batch("CREATE TABLE t (id BIGINT PRIMARY KEY)")
            .unwrap();
        {
            let tx = c.transaction().unwrap();
            tx.execute("INSERT INTO t VALUES (?1)", [1i64]).unwrap();
        }
        {
            let tx = c.transaction().unwrap();
            tx.execute("INSERT INTO t VALUES (?1)", [2i64]).unwrap();
            tx.commit().unwrap();
        }
        let ids: Vec<i64> = c
            .prepare("SELECT id FROM t ORDER BY id")
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(ids, vec![2], "{b}");
        assert_eq!(c.tables().unwrap(), vec!["t".to_string()], "{b}");
        assert_eq!(c.columns("t").unwrap(), vec!["id".to_string()], "{b}");
    }
}
