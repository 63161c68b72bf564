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
