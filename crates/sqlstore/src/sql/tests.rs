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
        // Every kind of statement says what it changed, through each way of running it.
        let mut st = c
            .prepare_cached("UPDATE kv SET v = v WHERE k = ?1")
            .unwrap();
        assert_eq!(st.run(["a"]).unwrap(), (None, 1), "{b}");
        assert_eq!(st.run(["none"]).unwrap(), (None, 0), "{b}");
        drop(st);
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

/// The same bootstrap and the same replicated transactions give the same state, and the same
/// checksum, on both backends; a snapshot copy (always a SQLite file) of either holds it too.
#[test]
fn the_same_changes_give_the_same_checksum_on_both_backends() {
    let Some(mysql) = crate::testing::fresh_mysql_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Location::Sqlite(dir.path().join("one.db"));
    let mut sums = Vec::new();
    for loc in [&sqlite, &mysql] {
        let mut c = crate::open_state(loc).unwrap();
        crate::testing::bootstrap(&mut c);
        let txns = [
            crate::objects::user::insert("alice", "hash".into(), "core", 1),
            crate::objects::zone::add_server(0, "server-0", "http://a/RPC2"),
        ];
        let tx = c.transaction().unwrap();
        for stmts in txns {
            let out = crate::apply_txn(&tx, &crate::SqlTxn { stmts }).unwrap();
            assert!(
                matches!(out, crate::TxnOutcome::Done { .. }),
                "{loc}: {out:?}"
            );
        }
        tx.commit().unwrap();
        let sum = crate::checksum(&c).unwrap();
        let copy = dir.path().join(format!("copy-{}.db", c.backend()));
        crate::copy_into(&c, &copy).unwrap();
        let copied = crate::checksum(&crate::open_read(&Location::Sqlite(copy)).unwrap()).unwrap();
        assert_eq!(copied, sum, "{loc}: its copy");
        sums.push(sum);
    }
    assert_eq!(sums[0], sums[1]);
}

/// A dump taken while the writer goes on holds one state: the one its digest names, which a
/// restore reproduces exactly.
#[test]
fn a_dump_taken_during_writes_restores_to_the_state_it_names() {
    let (Some(src), Some(dst)) = (
        crate::testing::fresh_mysql_database(),
        crate::testing::fresh_mysql_database(),
    ) else {
        return;
    };
    let mut writer = crate::open_state(&src).unwrap();
    crate::testing::bootstrap(&mut writer);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("one.sql");
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let stmts = crate::objects::user::insert(&format!("u{n}"), "x".into(), "core", 1);
                let tx = writer.transaction().unwrap();
                crate::apply_txn(&tx, &crate::SqlTxn { stmts }).unwrap();
                tx.commit().unwrap();
                n += 1;
            }
        });
        let reader = crate::open_read(&src).unwrap();
        for _ in 0..3 {
            crate::write_dump(&reader, &dump).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let info = crate::restore_dump(&dump, &dst).unwrap();
    assert_eq!(Some(info.sha256), crate::verify_dump(&dump).ok());
}

/// A batch fails when any of its statements fails, not only the first: found when a schema
/// table whose key MySQL refused was skipped in silence, with every table after it.
#[test]
fn a_batch_reports_the_error_of_a_later_statement_on_both_backends() {
    for c in both() {
        let b = c.backend();
        let err = c
            .execute_batch(
                "CREATE TABLE first_one (id BIGINT PRIMARY KEY);
                 INSERT INTO no_such_table (id) VALUES (1);
                 CREATE TABLE never_made (id BIGINT PRIMARY KEY);",
            )
            .unwrap_err();
        assert!(format!("{err}").contains("no_such_table"), "{b}: {err}");
        assert!(c.tables().unwrap().iter().all(|t| t != "never_made"), "{b}");
    }
}

#[test]
fn raw_rows_hold_what_owned_rows_hold_on_both_backends() {
    for c in both() {
        let b = c.backend();
        c.execute_batch("CREATE TABLE r (k BIGINT PRIMARY KEY, f DOUBLE, t TEXT, b BLOB)")
            .unwrap();
        c.execute(
            "INSERT INTO r (k, f, t, b) VALUES (?1, ?2, ?3, ?4)",
            params![1i64, 0.25f64, "é<x>", vec![1u8, 2]],
        )
        .unwrap();
        c.execute("INSERT INTO r (k) VALUES (?1)", params![2i64])
            .unwrap();
        let sql = "SELECT k, f, t, b FROM r ORDER BY k";
        let mut st = c.prepare(sql).unwrap();
        let mut owned = Vec::new();
        let mut rows = st.query(()).unwrap();
        while let Some(r) = rows.next().unwrap() {
            owned.push(r.clone());
        }
        drop(rows);
        let mut rows = st.query(()).unwrap();
        let mut raw = Vec::new();
        while let Some(r) = rows.next_raw().unwrap() {
            assert_eq!(r.len(), 4, "{b}");
            raw.push((
                r.int(0).unwrap(),
                r.value(2).unwrap().kind(),
                r.to_row().unwrap(),
            ));
        }
        assert_eq!(raw.len(), 2, "{b}");
        assert_eq!((raw[0].0, raw[0].1), (1, "text"), "{b}");
        assert_eq!((raw[1].0, raw[1].1), (2, "NULL"), "{b}");
        let copied: Vec<Row> = raw.into_iter().map(|(_, _, r)| r).collect();
        assert_eq!(copied, owned, "{b}");
        let view = RawRow::owned(&owned[0]);
        assert_eq!(
            view.value(2).unwrap(),
            ValueView::Text("é<x>".as_bytes()),
            "{b}"
        );
        assert_eq!(view.value(3).unwrap(), ValueView::Blob(&[1, 2]), "{b}");
        assert!(view.int(2).is_err(), "{b}");
    }
}
