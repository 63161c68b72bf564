//! A backup `onedb` reported written survives a power cut: its file and the rename that put it
//! in place were made durable (the MySQL dump's rename was not: found by the power-cut campaign
//! of issue 18). Needs root and `/dev/fuse` for the lossy filesystem; skipped otherwise unless
//! `ONEHA_REQUIRE_FUSE` says the machine must have them.

#![allow(clippy::unwrap_used)] // test code

use sqlstore::Location;

#[test]
fn a_sqlite_backup_written_before_a_power_cut_is_there_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("one.db");
    let mut conn = sqlstore::open_state(&Location::Sqlite(db.clone())).unwrap();
    sqlstore::testing::bootstrap(&mut conn);
    let disk_dir = dir.path().join("disk");
    std::fs::create_dir(&disk_dir).unwrap();
    let Some(disk) = lossyfs::Mount::for_test(&disk_dir) else {
        return;
    };
    let dest = disk_dir.join("one.db.bck");
    let written = sqlstore::write_backup(&Location::Sqlite(db), &dest, |_, _| {}).unwrap();
    disk.cut();
    assert_eq!(
        sqlstore::verify_backup(&dest).unwrap().sha256,
        written.sha256
    );
}

#[test]
fn a_mysql_dump_written_before_a_power_cut_is_there_after_it() {
    let Some(src) = sqlstore::testing::fresh_mysql_database() else {
        return;
    };
    let mut conn = sqlstore::open_state(&src).unwrap();
    sqlstore::testing::bootstrap(&mut conn);
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = lossyfs::Mount::for_test(dir.path()) else {
        return;
    };
    let dest = dir.path().join("mysql_backup.sql");
    let reader = sqlstore::open_read(&src).unwrap();
    let written = sqlstore::write_dump(&reader, &dest).unwrap();
    disk.cut();
    assert_eq!(sqlstore::verify_dump(&dest).unwrap(), written.sha256);
}

/// A power cut within the kernel's writeback delay after a `DROP TABLE` can leave MariaDB with
/// the table's `.frm` and without its InnoDB data (docs/fault-testing.md, "MariaDB on a lossy
/// disk"): every read of it answers ERROR 1932. `onedb restore` must still work there, since it
/// is what an operator runs next. The orphan is made the way the cut leaves it: the `.frm` put
/// back after the drop. Needs the server's data directory on this machine.
#[test]
fn a_mysql_restore_clears_a_table_left_without_its_innodb_data() {
    let Some(db) = sqlstore::testing::fresh_mysql_database() else {
        return;
    };
    let Location::Mysql(cfg) = &db else {
        unreachable!("a MySQL location")
    };
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("mysql_backup.sql");
    let (frm, conn) = {
        let mut conn = sqlstore::open_state(&db).unwrap();
        sqlstore::testing::bootstrap(&mut conn);
        let reader = sqlstore::open_read(&db).unwrap();
        sqlstore::write_dump(&reader, &dump).unwrap();
        let data: String = conn
            .query_row("SELECT @@datadir", (), |r| r.get(0))
            .unwrap();
        let frm = std::path::Path::new(&data)
            .join(&cfg.db_name)
            .join("user_pool.frm");
        (frm, conn)
    };
    let Ok(saved) = std::fs::read(&frm) else {
        eprintln!("{} is not on this machine: skipped", frm.display());
        return;
    };
    conn.execute_batch("DROP TABLE user_pool").unwrap();
    std::fs::write(&frm, saved).unwrap();
    conn.execute_batch("FLUSH TABLES").unwrap();
    let orphan = conn.query_row("SELECT COUNT(*) FROM user_pool", (), |r| r.get::<i64>(0));
    assert!(
        orphan
            .as_ref()
            .is_err_and(|e| e.to_string().contains("1932")),
        "the orphan table answers ERROR 1932: {orphan:?}"
    );
    drop(conn);

    let restored = sqlstore::restore_dump(&dump, &db).unwrap();

    assert_eq!(restored.sha256, sqlstore::verify_dump(&dump).unwrap());
    let conn = sqlstore::open_read(&db).unwrap();
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM user_pool", (), |r| r.get(0))
        .unwrap();
    assert!(users > 0, "oneadmin and serveradmin are back");
}
