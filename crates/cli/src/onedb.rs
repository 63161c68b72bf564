//! The `onedb` command: `backup` and `restore` of the SQLite state database (MySQL is not
//! supported yet), and `checksum`, OneHA's digest of a database file.

use std::io::Write;
use std::path::PathBuf;

/// Exit code of every failure.
pub const EXIT_FAILURE: i32 = 255;

/// `onedb -h` text.
pub fn usage() -> String {
    "## SYNOPSIS

onedb <command> [<args>] [<options>]

## COMMANDS

* backup [<output_file>]
        Dumps the OpenNebula DB to a file.
        valid options: force

* restore <backup_file>
        Restores the OpenNebula DB from a backup file.
        valid options: force

* checksum
        Prints a SHA-256 digest of the DB's tables and their row counts (OneHA).
        Two servers at the same LAST_APPLIED index must print the same digest.
        valid options: sqlite

## OPTIONS
     -f, --force               Overwrite the existing file (backup) or database (restore)
     -s, --sqlite file         SQLite DB file
     -S, --server host         MySQL server hostname or IP. Defaults to localhost
     -P, --port port           MySQL server port. Defaults to 3306
     -u, --username user       MySQL username
     -p, --password pass       MySQL password. Leave unset to be prompted for it
     -d, --dbname name         MySQL DB name for OpenNebula
     -t, --type type           Backend type: sqlite or mysql
     -v, --verbose             Verbose mode
     -h, --help                Show this message
     -V, --version             Show version and copyright information
"
    .to_string()
}

/// Parsed `onedb` arguments.
#[derive(Debug, Default)]
struct Opts {
    command: Option<String>,
    file: Option<String>,
    force: bool,
    sqlite: Option<PathBuf>,
    backend: Option<String>,
    /// Any of -S -P -u -p -d: OpenNebula then assumes MySQL.
    mysql_flags: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("option {name} requires a value"))
        };
        match a.as_str() {
            "-f" | "--force" => o.force = true,
            "-v" | "--verbose" => {}
            "-s" | "--sqlite" => o.sqlite = Some(PathBuf::from(value(a)?)),
            "-t" | "--type" => o.backend = Some(value(a)?.to_lowercase()),
            "-S" | "--server" | "-P" | "--port" | "-u" | "--username" | "-p" | "--password"
            | "-d" | "--dbname" => {
                value(a)?;
                o.mysql_flags = true;
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            word if o.command.is_none() => o.command = Some(word.to_string()),
            word if o.file.is_none() => o.file = Some(word.to_string()),
            word => return Err(format!("unexpected argument {word}")),
        }
    }
    Ok(o)
}

/// `oned.conf` and the var directory: under `$ONE_LOCATION`, else system-wide.
fn one_paths() -> (PathBuf, PathBuf) {
    let layout = wire::files::Layout::from_env();
    (layout.oned_conf(), layout.var)
}

/// The SQLite file to work on, from the options or, as OpenNebula's onedb, from `oned.conf`.
fn sqlite_db(o: &Opts) -> Result<PathBuf, String> {
    let (conf, var) = one_paths();
    let backend = match (&o.backend, o.mysql_flags, &o.sqlite) {
        (Some(b), _, _) => b.clone(),
        (None, true, _) => "mysql".to_string(),
        (None, false, Some(_)) => "sqlite".to_string(),
        (None, false, None) => match std::fs::read_to_string(&conf) {
            Ok(text) => template::Template::parse(&text)
                .map_err(|e| format!("{}: {e}", conf.display()))?
                .vector("DB")
                .and_then(|db| template::vector_get(db, "BACKEND"))
                .unwrap_or("sqlite")
                .to_lowercase(),
            Err(_) => "sqlite".to_string(),
        },
    };
    if backend != "sqlite" {
        return Err(format!(
            "the {backend} backend is not supported by OneHA's onedb yet; use -s <file> for SQLite"
        ));
    }
    Ok(o.sqlite
        .clone()
        .unwrap_or_else(|| var.join(wire::files::ONE_DB)))
}

/// `Y-M-D_h:m:s` in UTC without zero padding, as OpenNebula names backups.
pub fn backup_stamp(unix: u64) -> String {
    let (days, rem) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month}-{day}_{}:{}:{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The lock oned holds on its var directory while it runs.
pub fn lock_file(db: &std::path::Path) -> PathBuf {
    db.parent()
        .unwrap_or(std::path::Path::new("."))
        .join(wire::files::LOCK)
}

/// Whether an oned holds the lock next to `db`.
fn oned_running(db: &std::path::Path) -> bool {
    let Ok(f) = std::fs::File::open(lock_file(db)) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

fn backup(o: &Opts, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    use std::io::IsTerminal;
    let db = sqlite_db(o)?;
    if !db.is_file() {
        return Err(format!("Database file {} not found", db.display()));
    }
    let dest = match &o.file {
        Some(f) => PathBuf::from(f),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from(format!("{}_{}.bck", db.display(), backup_stamp(now)))
        }
    };
    if dest.exists() && !o.force {
        return Err(format!(
            "File {} exists, backup aborted. Use -f to overwrite.",
            dest.display()
        ));
    }
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    let info = sqlstore::write_backup(&db, &dest, |done, total| {
        if tty && total > 0 {
            shown = true;
            let _ = write!(
                err,
                "\rbackup: {:.1} of {:.1} MiB",
                done as f64 / 1048576.0,
                total as f64 / 1048576.0
            );
        }
    })
    .map_err(|e| e.to_string())?;
    if shown {
        let _ = writeln!(err);
    }
    let _ = writeln!(out, "Sqlite database backup stored in {}", dest.display());
    let _ = writeln!(out, "Use 'onedb restore' to restore the DB.");
    let _ = writeln!(out, "sha256: {}", info.sha256);
    Ok(())
}

fn restore(o: &Opts, out: &mut dyn Write) -> Result<(), String> {
    let Some(file) = &o.file else {
        return Err("onedb restore needs the backup file: onedb restore <backup_file>".into());
    };
    let src = PathBuf::from(file);
    if !src.is_file() {
        return Err(format!(
            "File {file} doesn't exist, backup restoration aborted."
        ));
    }
    let db = sqlite_db(o)?;
    if oned_running(&db) {
        return Err(format!(
            "First stop OpenNebula. Lock file found: {}",
            lock_file(&db).display()
        ));
    }
    if db.exists() && !o.force {
        return Err(format!(
            "File {} exists, use -f to overwrite.",
            db.display()
        ));
    }
    match sqlstore::restore_backup(&src, &db) {
        Ok(_) => {
            let _ = writeln!(out, "Sqlite database backup restored in {}", db.display());
            Ok(())
        }
        Err(e) => Err(format!("Backup {file} refused, nothing was changed: {e}")),
    }
}

fn checksum(o: &Opts, out: &mut dyn Write) -> Result<(), String> {
    let path = sqlite_db(o)?;
    if !path.is_file() {
        return Err(format!("{}: no such database file", path.display()));
    }
    let flags = sqlstore::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let sum = sqlstore::rusqlite::Connection::open_with_flags(&path, flags)
        .and_then(|c| sqlstore::checksum(&c))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = writeln!(out, "sha256: {}", sum.sha256);
    for (table, rows) in &sum.tables {
        let _ = writeln!(out, "{table:<20} {rows} rows");
    }
    Ok(())
}

/// Runs `onedb` with `args` (without the program name); returns the exit code.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        let _ = write!(out, "{}", usage());
        return 0;
    }
    if args.iter().any(|a| a == "-V" || a == "--version") {
        let _ = write!(out, "{}", crate::onezone::version());
        return 0;
    }
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_FAILURE;
        }
    };
    let result = match opts.command.as_deref() {
        Some("checksum") => checksum(&opts, out),
        Some("backup") => backup(&opts, out, err),
        Some("restore") => restore(&opts, out),
        Some(other) => Err(format!(
            "Unknown command '{other}'. Run 'onedb -h' for the list of commands."
        )),
        None => Err(format!("No command given.\n\n{}", usage())),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn help_lists_commands_and_options() {
        let (code, out, _) = run_args(&["--help"]);
        assert_eq!(code, 0);
        for s in [
            "backup [<output_file>]",
            "restore <backup_file>",
            "-f, --force",
            "-s, --sqlite",
            "-S, --server",
            "-P, --port",
            "-u, --username",
            "-p, --password",
            "-d, --dbname",
            "-t, --type",
            "-V, --version",
        ] {
            assert!(out.contains(s), "{s}");
        }
    }

    #[test]
    fn backup_and_restore_round_trip_with_opennebulas_messages() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("one.db");
        let conn = sqlstore::open_state(&db).unwrap();
        conn.execute(
            "INSERT INTO group_pool (oid, name) VALUES (0, 'oneadmin')",
            [],
        )
        .unwrap();
        drop(conn);
        let dbs = db.to_str().unwrap();
        let bck = dir.path().join("b.bck");
        let bcks = bck.to_str().unwrap();

        let (code, out, err) = run_args(&["backup", "-s", dbs, bcks]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with(&format!(
                "Sqlite database backup stored in {bcks}\nUse 'onedb restore' to restore the DB.\n"
            )),
            "{out}"
        );
        let (code, _, err) = run_args(&["backup", "-s", dbs, bcks]);
        assert_eq!(code, 255);
        assert_eq!(
            err,
            format!("File {bcks} exists, backup aborted. Use -f to overwrite.\n")
        );
        assert_eq!(run_args(&["backup", "-s", dbs, bcks, "-f"]).0, 0);

        let (code, _, err) = run_args(&["restore", "-s", dbs, bcks]);
        assert_eq!(code, 255);
        assert_eq!(err, format!("File {dbs} exists, use -f to overwrite.\n"));
        let (code, out, err) = run_args(&["restore", "-s", dbs, bcks, "-f"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, format!("Sqlite database backup restored in {dbs}\n"));
        let (code, _, err) = run_args(&["restore", "-s", dbs, "/nonexistent.bck"]);
        assert_eq!(code, 255);
        assert_eq!(
            err,
            "File /nonexistent.bck doesn't exist, backup restoration aborted.\n"
        );

        let lock = std::fs::File::create(lock_file(&db)).unwrap();
        lock.lock().unwrap();
        let (code, _, err) = run_args(&["restore", "-s", dbs, bcks, "-f"]);
        assert_eq!(code, 255);
        assert!(
            err.starts_with("First stop OpenNebula. Lock file found: "),
            "{err}"
        );
        drop(lock);

        let (code, _, err) = run_args(&["backup", "-u", "oneadmin", "-p", "x", "-d", "opennebula"]);
        assert_eq!(code, 255);
        assert!(err.contains("mysql backend is not supported"), "{err}");
        assert_eq!(run_args(&["fsck"]).0, 255);
    }

    #[test]
    fn a_corrupt_backup_is_refused_and_the_database_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("one.db");
        drop(sqlstore::open_state(&db).unwrap());
        let before = std::fs::read(&db).unwrap();
        let bad = dir.path().join("bad.bck");
        std::fs::write(&bad, b"SQLite format 3\0 truncated").unwrap();
        let (code, _, err) = run_args(&[
            "restore",
            "-s",
            db.to_str().unwrap(),
            bad.to_str().unwrap(),
            "-f",
        ]);
        assert_eq!(code, 255);
        assert!(err.contains("refused, nothing was changed"), "{err}");
        assert_eq!(std::fs::read(&db).unwrap(), before);
    }

    #[test]
    fn backups_are_named_as_opennebula_names_them() {
        assert_eq!(backup_stamp(0), "1970-1-1_0:0:0");
        assert_eq!(backup_stamp(1_795_603_402), "2026-11-25_10:43:22");
        assert_eq!(backup_stamp(951_782_400), "2000-2-29_0:0:0");
    }

    #[test]
    fn checksum_digests_a_database_file_and_refuses_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("one.db");
        let conn = sqlstore::rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE user_pool (oid INTEGER, name TEXT); INSERT INTO user_pool VALUES (0, 'oneadmin');")
            .unwrap();
        drop(conn);
        let path = db.to_str().unwrap();
        let (code, out, err) = run_args(&["checksum", "-s", path]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("sha256: "), "{out}");
        assert!(out.contains("user_pool            1 rows"), "{out}");
        let (again, out2, _) = run_args(&["checksum", "-s", path]);
        assert_eq!((again, out2), (0, out));
        let missing = dir.path().join("nope.db");
        let (code, _, err) = run_args(&["checksum", "-s", missing.to_str().unwrap()]);
        assert_eq!(code, 255);
        assert!(err.contains("no such database file"), "{err}");
    }
}
