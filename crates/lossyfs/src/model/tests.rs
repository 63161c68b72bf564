//! What survives a cut after each kind of sync: the rules a pass of OneHA relies on.

#![allow(clippy::unwrap_used)] // test code

use super::*;

fn file(fs: &mut Fs, dir: Ino, name: &str, bytes: &[u8]) -> Ino {
    let ino = fs.create(dir, name, 0o600).unwrap();
    fs.write(ino, 0, bytes).unwrap();
    ino
}

fn content(fs: &Fs, dir: Ino, name: &str) -> Option<Vec<u8>> {
    let ino = fs.lookup(dir, name).ok()?;
    Some(fs.read(ino, 0, usize::MAX).unwrap())
}

#[test]
fn nothing_unsynced_survives_a_cut() {
    let mut fs = Fs::new();
    file(&mut fs, ROOT, "a", b"data");
    fs.mkdir(ROOT, "d", 0o700).unwrap();
    fs.cut();
    assert!(fs.list(ROOT).unwrap().is_empty());
    assert_eq!(fs.node_count(), 1, "the forgotten nodes are freed");
}

#[test]
fn a_synced_file_without_its_directory_synced_is_lost_and_with_it_kept() {
    let mut fs = Fs::new();
    let a = file(&mut fs, ROOT, "a", b"data");
    fs.fsync(a).unwrap();
    fs.cut();
    assert_eq!(content(&fs, ROOT, "a"), None, "its name was never durable");

    let a = file(&mut fs, ROOT, "a", b"data");
    fs.fsync(ROOT).unwrap();
    fs.cut();
    assert_eq!(
        content(&fs, ROOT, "a"),
        Some(Vec::new()),
        "the name survives, the unsynced content does not"
    );
    let _ = a;

    let a = fs.lookup(ROOT, "a").unwrap();
    fs.write(a, 0, b"data").unwrap();
    fs.fsync(a).unwrap();
    fs.cut();
    assert_eq!(content(&fs, ROOT, "a"), Some(b"data".to_vec()));
}

#[test]
fn writes_after_the_last_sync_are_forgotten_and_the_size_goes_back() {
    let mut fs = Fs::new();
    let a = file(&mut fs, ROOT, "log", b"one;");
    fs.fsync(a).unwrap();
    fs.fsync(ROOT).unwrap();
    fs.write(a, 4, b"two;").unwrap();
    fs.write(a, 0, b"ONE;").unwrap();
    assert_eq!(content(&fs, ROOT, "log"), Some(b"ONE;two;".to_vec()));
    fs.cut();
    assert_eq!(content(&fs, ROOT, "log"), Some(b"one;".to_vec()));
    fs.truncate(a, 0).unwrap();
    fs.cut();
    assert_eq!(
        content(&fs, ROOT, "log"),
        Some(b"one;".to_vec()),
        "an unsynced truncate"
    );
}

#[test]
fn a_rename_over_a_file_is_durable_only_with_its_directory() {
    let mut fs = Fs::new();
    let old = file(&mut fs, ROOT, "current", b"old");
    fs.fsync(old).unwrap();
    fs.fsync(ROOT).unwrap();
    // The write-temporary, fsync, rename dance, without the directory's fsync.
    let tmp = file(&mut fs, ROOT, "current.tmp", b"new");
    fs.fsync(tmp).unwrap();
    fs.rename(ROOT, "current.tmp", ROOT, "current").unwrap();
    assert_eq!(content(&fs, ROOT, "current"), Some(b"new".to_vec()));
    fs.cut();
    assert_eq!(content(&fs, ROOT, "current"), Some(b"old".to_vec()));
    assert_eq!(content(&fs, ROOT, "current.tmp"), None);

    let tmp = file(&mut fs, ROOT, "current.tmp", b"new");
    fs.fsync(tmp).unwrap();
    fs.rename(ROOT, "current.tmp", ROOT, "current").unwrap();
    fs.fsync(ROOT).unwrap();
    fs.cut();
    assert_eq!(content(&fs, ROOT, "current"), Some(b"new".to_vec()));
}

#[test]
fn an_unlink_is_undone_by_a_cut_unless_the_directory_was_synced() {
    let mut fs = Fs::new();
    let a = file(&mut fs, ROOT, "a", b"x");
    fs.fsync(a).unwrap();
    fs.fsync(ROOT).unwrap();
    fs.unlink(ROOT, "a").unwrap();
    fs.cut();
    assert_eq!(content(&fs, ROOT, "a"), Some(b"x".to_vec()));
    fs.unlink(ROOT, "a").unwrap();
    fs.fsync(ROOT).unwrap();
    fs.cut();
    assert_eq!(content(&fs, ROOT, "a"), None);
}

#[test]
fn a_new_directory_needs_its_parent_synced_and_its_files_need_it_synced() {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT, "snapshots", 0o700).unwrap();
    let s = file(&mut fs, d, "current.db", b"snap");
    fs.fsync(s).unwrap();
    fs.fsync(d).unwrap();
    fs.cut();
    assert!(
        fs.lookup(ROOT, "snapshots").is_err(),
        "the parent was not synced"
    );

    let d = fs.mkdir(ROOT, "snapshots", 0o700).unwrap();
    fs.fsync(ROOT).unwrap();
    let s = file(&mut fs, d, "current.db", b"snap");
    fs.fsync(s).unwrap();
    fs.cut();
    let d = fs.lookup(ROOT, "snapshots").unwrap();
    assert_eq!(
        content(&fs, d, "current.db"),
        None,
        "its own entry was not synced"
    );

    let s = file(&mut fs, d, "current.db", b"snap");
    fs.fsync(s).unwrap();
    fs.fsync(d).unwrap();
    fs.cut();
    assert_eq!(content(&fs, d, "current.db"), Some(b"snap".to_vec()));
}

#[test]
fn an_unlinked_file_stays_readable_while_open_and_is_freed_after() {
    let mut fs = Fs::new();
    let a = file(&mut fs, ROOT, "wal", b"frames");
    fs.open(a).unwrap();
    fs.unlink(ROOT, "wal").unwrap();
    assert_eq!(fs.read(a, 0, 100).unwrap(), b"frames");
    fs.release(a);
    assert!(fs.read(a, 0, 100).is_err());
    assert_eq!(fs.node_count(), 1);
}

#[test]
fn sync_all_makes_everything_durable() {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT, "var", 0o700).unwrap();
    file(&mut fs, d, "one.db", b"state");
    fs.sync_all();
    fs.cut();
    let d = fs.lookup(ROOT, "var").unwrap();
    assert_eq!(content(&fs, d, "one.db"), Some(b"state".to_vec()));
    assert_eq!(fs.cuts, 1);
}

#[test]
fn names_and_kinds_are_checked_as_posix_does() {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT, "d", 0o700).unwrap();
    file(&mut fs, d, "f", b"");
    assert_eq!(fs.create(ROOT, "d", 0o600), Err(FsError::Exists));
    assert_eq!(fs.rmdir(ROOT, "d"), Err(FsError::NotEmpty));
    assert_eq!(fs.unlink(ROOT, "d"), Err(FsError::IsDir));
    assert_eq!(fs.create(d, "a/b", 0o600), Err(FsError::Invalid));
    assert_eq!(fs.lookup(ROOT, "nope"), Err(FsError::NotFound));
    let f = fs.lookup(d, "f").unwrap();
    assert_eq!(fs.lookup(f, "x"), Err(FsError::NotDir));
    assert_eq!(fs.rename(d, "f", ROOT, "d"), Err(FsError::IsDir));
}

/// An fsync copies only the pages written since the last one: every pattern of writes,
/// truncates and syncs must still keep exactly the synced content, byte for byte.
#[test]
fn a_cut_keeps_exactly_the_last_synced_content_whatever_pages_were_written() {
    let mut fs = Fs::new();
    let a = file(&mut fs, ROOT, "a", &[1u8; 3 * PAGE + 17]);
    fs.fsync(ROOT).unwrap();
    fs.fsync(a).unwrap();
    let mut expected = fs.read(a, 0, usize::MAX).unwrap();
    let mut seed = 7u64;
    for round in 0..200u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = (seed >> 33) as usize % (5 * PAGE);
        let len = (seed >> 13) as usize % (2 * PAGE);
        match round % 5 {
            0 => fs.truncate(a, at as u64).unwrap(),
            _ => {
                fs.write(a, at as u64, &vec![round as u8; len]).unwrap();
            }
        }
        if seed.is_multiple_of(3) {
            fs.fsync(a).unwrap();
            expected = fs.read(a, 0, usize::MAX).unwrap();
        }
        if seed.is_multiple_of(11) {
            fs.cut();
            assert_eq!(
                fs.read(a, 0, usize::MAX).unwrap(),
                expected,
                "round {round}"
            );
        }
    }
    fs.cut();
    assert_eq!(fs.read(a, 0, usize::MAX).unwrap(), expected);
}

#[test]
fn a_lying_disk_forgets_even_what_was_fsynced_but_keeps_a_full_sync() {
    let mut fs = Fs::new();
    fs.lying = true;
    let a = file(&mut fs, ROOT, "a", b"old");
    fs.sync_all();
    fs.write(a, 0, b"new").unwrap();
    fs.fsync(a).unwrap();
    fs.fsync(ROOT).unwrap();
    fs.cut();
    assert_eq!(content(&fs, ROOT, "a"), Some(b"old".to_vec()));
}

#[test]
fn a_journaled_disk_keeps_every_name_made_before_an_fsync_of_any_file() {
    let mut fs = Fs::new();
    fs.journaled = true;
    let d = fs.mkdir(ROOT, "d", 0o700).unwrap();
    let a = file(&mut fs, d, "a", b"data");
    let b = file(&mut fs, ROOT, "b", b"unsynced");
    fs.fsync(a).unwrap();
    file(&mut fs, ROOT, "c", b"after");
    fs.cut();
    assert_eq!(content(&fs, d, "a"), Some(b"data".to_vec()));
    assert_eq!(
        content(&fs, ROOT, "b"),
        Some(Vec::new()),
        "its name is in the journal, its content was never synced"
    );
    assert_eq!(content(&fs, ROOT, "c"), None, "made after the last fsync");
    let _ = b;
}
