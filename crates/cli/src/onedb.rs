//! The `onedb` command. `checksum` works; `backup` and `restore` report that
//! they are not implemented yet.

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
    let _ = match args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
    {
        Some("checksum") => return checksum(args, out, err),
        Some(cmd @ ("backup" | "restore")) => {
            writeln!(err, "onedb {cmd}: not implemented yet in OneHA")
        }
        Some(other) => writeln!(
            err,
            "Unknown command '{other}'. Run 'onedb -h' for the list of commands."
        ),
        None => writeln!(err, "No command given.\n\n{}", usage()),
    };
    EXIT_FAILURE
}

/// The SQLite file: `-s`/`--sqlite`, else `$ONE_LOCATION/var/one.db`, else OpenNebula's
/// system-wide `/var/lib/one/one.db`.
fn sqlite_file(args: &[String]) -> Result<PathBuf, String> {
    if let Some(pos) = args.iter().position(|a| a == "-s" || a == "--sqlite") {
        return args
            .get(pos + 1)
            .map(PathBuf::from)
            .ok_or_else(|| "option -s requires a file".to_string());
    }
    Ok(match std::env::var_os("ONE_LOCATION") {
        Some(loc) => PathBuf::from(loc).join("var/one.db"),
        None => PathBuf::from("/var/lib/one/one.db"),
    })
}

fn checksum(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let path = match sqlite_file(args) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_FAILURE;
        }
    };
    if !path.is_file() {
        let _ = writeln!(err, "{}: no such database file", path.display());
        return EXIT_FAILURE;
    }
    let flags = sqlstore::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let sum = sqlstore::rusqlite::Connection::open_with_flags(&path, flags)
        .and_then(|c| sqlstore::checksum(&c));
    match sum {
        Ok(sum) => {
            let _ = writeln!(out, "sha256: {}", sum.sha256);
            for (table, rows) in &sum.tables {
                let _ = writeln!(out, "{table:<20} {rows} rows");
            }
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", path.display());
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
    fn subcommands_not_implemented() {
        let (code, out, err) = run_args(&["backup", "-u", "oneadmin", "-f"]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (255, "", "onedb backup: not implemented yet in OneHA\n")
        );
        let (code, _, err) = run_args(&["restore", "-f", "/tmp/x.sql"]);
        assert_eq!(
            (code, err.as_str()),
            (255, "onedb restore: not implemented yet in OneHA\n")
        );
        assert_eq!(run_args(&["fsck"]).0, 255);
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
