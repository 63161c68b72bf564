//! The mount, through the kernel, as programs use it: files and SQLite databases on a lossy
//! mount keep across a cut exactly what was made durable. Needs root and `/dev/fuse`; skipped
//! otherwise, unless `ONEHA_REQUIRE_FUSE` says the machine must have them.

#![allow(clippy::unwrap_used)] // test code

use std::io::Write;
use std::path::Path;

use lossyfs::Mount;

fn mounted(dir: &Path) -> Option<Mount> {
    Mount::for_test(dir)
}

#[test]
fn through_the_kernel_only_what_was_synced_survives_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = mounted(dir.path()) else {
        return;
    };
    let p = |n: &str| dir.path().join(n);

    let mut f = std::fs::File::create(p("kept")).unwrap();
    f.write_all(b"durable").unwrap();
    f.sync_all().unwrap();
    std::fs::File::open(dir.path()).unwrap().sync_all().unwrap();
    f.write_all(b" and lost").unwrap();
    drop(f);
    let mut g = std::fs::File::create(p("lost")).unwrap();
    g.write_all(b"never synced").unwrap();
    g.sync_all().unwrap(); // its directory entry is not
    drop(g);
    assert_eq!(std::fs::read(p("kept")).unwrap(), b"durable and lost");

    m.cut();
    assert_eq!(std::fs::read(p("kept")).unwrap(), b"durable");
    assert!(!p("lost").exists());
    assert_eq!(m.cuts(), 1);
}

/// Waits until `path` exists (the other process got there).
fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never came",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The writer of the SQLite test, run as a child process (`LOSSYFS_WRITER_DB` set) so that a
/// power cut can kill it as a real one would: nothing of its page cache or maps survives.
#[test]
fn sqlite_writer_child() {
    let (Some(db), Some(marks)) = (
        std::env::var_os("LOSSYFS_WRITER_DB"),
        std::env::var_os("LOSSYFS_WRITER_MARKS"),
    ) else {
        return;
    };
    let marks = Path::new(&marks);
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('synced');",
    )
    .unwrap();
    std::fs::write(marks.join("created"), b"").unwrap();
    wait_for(&marks.join("go"));
    c.execute_batch("PRAGMA synchronous = FULL; INSERT INTO t VALUES ('fsynced commit');")
        .unwrap();
    c.execute_batch("PRAGMA synchronous = OFF; INSERT INTO t VALUES ('unsynced commit');")
        .unwrap();
    std::fs::write(marks.join("done"), b"").unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn a_sqlite_commit_survives_a_cut_only_if_sqlite_synced_it() {
    let dir = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let Some(m) = mounted(dir.path()) else {
        return;
    };
    let db = dir.path().join("one.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sqlite_writer_child", "--nocapture"])
        .env("LOSSYFS_WRITER_DB", &db)
        .env("LOSSYFS_WRITER_MARKS", marks.path())
        .spawn()
        .unwrap();
    wait_for(&marks.path().join("created"));
    // SQLite does not sync the directory of the files it creates: oned's are made durable
    // at start; here, everything so far.
    m.sync_all();
    std::fs::write(marks.path().join("go"), b"").unwrap();
    wait_for(&marks.path().join("done"));
    child.kill().unwrap();
    child.wait().unwrap();
    m.cut();

    let c = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<String> = c
        .prepare("SELECT v FROM t ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec!["synced".to_string(), "fsynced commit".to_string()]
    );
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}
