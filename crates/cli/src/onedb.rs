//! The `onedb` command on either backend: `backup` and `restore` of the state database (a
//! SQLite file, or a MySQL dump the `mysql` client loads), `checksum` (OneHA's digest of the
//! state, equal on both backends for the same state) and `sqlite2mysql`.

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
        valid options: force, federated

* restore <backup_file>
        Restores the OpenNebula DB from a backup file.
        valid options: force, federated

* checksum
        Prints a SHA-256 digest of the DB's tables and their row counts (OneHA).
        Two servers at the same LAST_APPLIED index must print the same digest.
        valid options: sqlite, server, port, username, password, dbname, type

* sqlite2mysql
        Migrates a SQLite DB (-s, else oned's) to the MySQL DB given by the MySQL options
        (else oned.conf's DB section). The MySQL tables are replaced.

## OPTIONS
     -f, --force               Overwrite the existing file (backup) or database (restore)
     --federated               Limit backup/restore to federated tables
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
    /// Only the tables a federation of zones shares (`sqlstore::FEDERATED_TABLES`).
    federated: bool,
    sqlite: Option<PathBuf>,
    backend: Option<String>,
    /// Any of -S -P -u -p -d: OpenNebula then assumes MySQL.
    mysql_flags: bool,
    server: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
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
            "--federated" => o.federated = true,
            "-v" | "--verbose" => {}
            "-s" | "--sqlite" => o.sqlite = Some(PathBuf::from(value(a)?)),
            "-t" | "--type" => o.backend = Some(value(a)?.to_lowercase()),
            "-S" | "--server" => (o.server, o.mysql_flags) = (Some(value(a)?), true),
            "-P" | "--port" => (o.port, o.mysql_flags) = (Some(value(a)?), true),
            "-u" | "--username" => (o.user, o.mysql_flags) = (Some(value(a)?), true),
            "-p" | "--password" => (o.password, o.mysql_flags) = (Some(value(a)?), true),
            "-d" | "--dbname" => (o.dbname, o.mysql_flags) = (Some(value(a)?), true),
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

/// `oned.conf`'s `DB` section, if the file is there.
fn conf_db() -> Result<Vec<(String, String)>, String> {
    let (conf, _) = one_paths();
    let Ok(text) = std::fs::read_to_string(&conf) else {
        return Ok(Vec::new());
    };
    Ok(template::Template::parse(&text)
        .map_err(|e| format!("{}: {e}", conf.display()))?
        .vector("DB")
        .map(<[(String, String)]>::to_vec)
        .unwrap_or_default())
}

/// The SQLite file of `-s`, else oned's.
fn sqlite_file(o: &Opts) -> PathBuf {
    let (_, var) = one_paths();
    o.sqlite
        .clone()
        .unwrap_or_else(|| var.join(wire::files::ONE_DB))
}

/// The MySQL database of the options, each one not given taken from `oned.conf` (or
/// OpenNebula's default).
fn mysql_db(o: &Opts) -> Result<sqlstore::MysqlConfig, String> {
    let mut pairs = conf_db()?;
    pairs.retain(|(k, _)| k != "BACKEND");
    pairs.push(("BACKEND".into(), "mysql".into()));
    for (key, value) in [
        ("SERVER", &o.server),
        ("PORT", &o.port),
        ("USER", &o.user),
        ("PASSWD", &o.password),
        ("DB_NAME", &o.dbname),
    ] {
        if let Some(v) = value {
            pairs.retain(|(k, _)| k != key);
            pairs.push((key.to_string(), v.clone()));
        }
    }
    sqlstore::MysqlConfig::from_db_section(|k| template::vector_get(&pairs, k))
        .map_err(|(attr, msg)| format!("{attr}: {msg}"))?
        .ok_or_else(|| "no MySQL database given".to_string())
}

/// The database to work on, as OpenNebula's onedb picks it: `-t`, else MySQL if any MySQL
/// option is given, else SQLite with `-s`, else `oned.conf`'s backend.
fn target(o: &Opts) -> Result<sqlstore::Location, String> {
    let backend = match (&o.backend, o.mysql_flags, &o.sqlite) {
        (Some(b), _, _) => b.clone(),
        (None, true, _) => "mysql".to_string(),
        (None, false, Some(_)) => "sqlite".to_string(),
        (None, false, None) => conf_db()?
            .iter()
            .find(|(k, _)| k == "BACKEND")
            .map_or("sqlite".to_string(), |(_, v)| v.to_lowercase()),
    };
    match sqlstore::Backend::parse(&backend) {
        Some(sqlstore::Backend::Sqlite) => Ok(sqlstore::Location::Sqlite(sqlite_file(o))),
        Some(sqlstore::Backend::Mysql) => Ok(sqlstore::Location::Mysql(mysql_db(o)?)),
        None => Err(format!("Unknown backend {backend}: sqlite or mysql")),
    }
}

/// Whether the MySQL database at `loc` has any table yet.
fn mysql_has_tables(loc: &sqlstore::Location) -> Result<bool, String> {
    sqlstore::Conn::open(loc, true)
        .and_then(|c| c.tables())
        .map(|t| !t.is_empty())
        .map_err(|e| format!("{loc}: {e}"))
}

/// `Y-M-D_h:m:s` in UTC without zero padding, as OpenNebula names backups.
pub fn backup_stamp(unix: u64) -> String {
    let (days, rem) = (unix / 86_400, unix % 86_400);
    let (year, month, day) = wire::time::civil(days as i64);
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

/// Whether an oned holds the lock file `lock`.
fn oned_running(lock: &std::path::Path) -> bool {
    let Ok(f) = std::fs::File::open(lock) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

fn backup(o: &Opts, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), String> {
    use std::io::IsTerminal;
    let loc = target(o)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let fed = if o.federated { "federated_" } else { "" };
    let default_dest = match &loc {
        sqlstore::Location::Sqlite(db) => {
            if !db.is_file() {
                return Err(format!("Database file {} not found", db.display()));
            }
            PathBuf::from(format!("{}_{fed}{}.bck", db.display(), backup_stamp(now)))
        }
        sqlstore::Location::Mysql(m) => one_paths().1.join(format!(
            "mysql_{}_{}_{fed}{}.sql",
            m.server,
            m.db_name,
            backup_stamp(now)
        )),
    };
    let dest = o.file.as_ref().map_or(default_dest, PathBuf::from);
    if dest.exists() && !o.force {
        return Err(format!(
            "File {} exists, backup aborted. Use -f to overwrite.",
            dest.display()
        ));
    }
    let info = match &loc {
        _ if o.federated => {
            let conn = sqlstore::open_read(&loc).map_err(|e| e.to_string())?;
            let info = sqlstore::write_federated(&conn, &dest).map_err(|e| e.to_string())?;
            let _ = match &loc {
                sqlstore::Location::Sqlite(_) => writeln!(
                    out,
                    "Sqlite database backup of federated tables stored in {}",
                    dest.display()
                ),
                sqlstore::Location::Mysql(_) => {
                    writeln!(out, "MySQL dump stored in {}", dest.display())
                }
            };
            info
        }
        sqlstore::Location::Sqlite(_) => {
            let tty = std::io::stderr().is_terminal();
            let mut shown = false;
            let info = sqlstore::write_backup(&loc, &dest, |done, total| {
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
            info
        }
        sqlstore::Location::Mysql(_) => {
            let conn = sqlstore::open_read(&loc).map_err(|e| e.to_string())?;
            let info = sqlstore::write_dump(&conn, &dest).map_err(|e| e.to_string())?;
            let _ = writeln!(out, "MySQL dump stored in {}", dest.display());
            info
        }
    };
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
    let loc = target(o)?;
    let var_lock = match &loc {
        sqlstore::Location::Sqlite(db) => lock_file(db),
        sqlstore::Location::Mysql(_) => one_paths().1.join(wire::files::LOCK),
    };
    if oned_running(&var_lock) {
        return Err(format!(
            "First stop OpenNebula. Lock file found: {}",
            var_lock.display()
        ));
    }
    if !o.federated && sqlstore::is_federated(&src) {
        return Err(format!(
            "{file} holds only the federated tables: restore it with --federated"
        ));
    }
    let restored = match &loc {
        // Into the database that is there: only the shared tables change.
        sqlstore::Location::Sqlite(db) if o.federated => {
            if !db.is_file() {
                return Err(format!("Database file {} not found", db.display()));
            }
            sqlstore::restore_federated(&src, &loc)
                .map(|_| format!("Sqlite database backup restored in {}", db.display()))
        }
        sqlstore::Location::Mysql(m) if o.federated => sqlstore::restore_federated(&src, &loc)
            .map(|_| format!("MySQL DB {} at {} restored.", m.db_name, m.server)),
        sqlstore::Location::Sqlite(db) => {
            if db.exists() && !o.force {
                return Err(format!(
                    "File {} exists, use -f to overwrite.",
                    db.display()
                ));
            }
            sqlstore::restore_backup(&src, &loc)
                .map(|_| format!("Sqlite database backup restored in {}", db.display()))
        }
        sqlstore::Location::Mysql(m) => {
            if !o.force && mysql_has_tables(&loc)? {
                return Err(format!(
                    "MySQL database {} at {} exists, use -f to overwrite.",
                    m.db_name, m.server
                ));
            }
            // A MySQL dump, or a SQLite backup (serversync's, another server's).
            let done = if sqlstore::is_dump(&src) {
                sqlstore::restore_dump(&src, &loc)
            } else {
                sqlstore::restore_backup(&src, &loc)
            };
            done.map(|_| format!("MySQL DB {} at {} restored.", m.db_name, m.server))
        }
    };
    match restored {
        Ok(msg) => {
            let _ = writeln!(out, "{msg}");
            Ok(())
        }
        Err(e @ sqlstore::DbError::InUse(_)) => Err(format!("First stop OpenNebula. {e}")),
        Err(e @ sqlstore::DbError::Corrupt(_)) if e.to_string().contains("part-way") => {
            Err(format!("Backup {file}: {e}"))
        }
        Err(e) => Err(format!("Backup {file} refused, nothing was changed: {e}")),
    }
}

/// `onedb sqlite2mysql`: the SQLite state (`-s`, else oned's) into the MySQL database.
fn sqlite2mysql(o: &Opts, out: &mut dyn Write) -> Result<(), String> {
    let src = sqlite_file(o);
    if !src.is_file() {
        return Err(format!("Database file {} not found", src.display()));
    }
    let loc = sqlstore::Location::Mysql(mysql_db(o)?);
    if oned_running(&lock_file(&src)) {
        return Err(format!(
            "First stop OpenNebula. Lock file found: {}",
            lock_file(&src).display()
        ));
    }
    let from = sqlstore::open_read(&sqlstore::Location::Sqlite(src.clone()))
        .and_then(|c| sqlstore::checksum(&c).map_err(sqlstore::DbError::at(&src)))
        .map_err(|e| e.to_string())?;
    let mut conn = sqlstore::open_state(&loc).map_err(|e| match e {
        sqlstore::DbError::InUse(_) => format!("First stop OpenNebula. {e}"),
        e => e.to_string(),
    })?;
    sqlstore::restore_from(&mut conn, &src).map_err(|e| e.to_string())?;
    let to = sqlstore::checksum(&conn).map_err(|e| format!("{loc}: {e}"))?;
    if to.sha256 != from.sha256 {
        return Err(format!(
            "{loc} does not hold the state of {} after the copy ({} != {})",
            src.display(),
            to.sha256,
            from.sha256
        ));
    }
    let _ = writeln!(
        out,
        "Database {} migrated to {loc}\nsha256: {}",
        src.display(),
        to.sha256
    );
    Ok(())
}

fn checksum(o: &Opts, out: &mut dyn Write) -> Result<(), String> {
    let loc = target(o)?;
    if let sqlstore::Location::Sqlite(path) = &loc {
        if !path.is_file() {
            return Err(format!("{}: no such database file", path.display()));
        }
    }
    let sum = sqlstore::Conn::open(&loc, true)
        .and_then(|c| sqlstore::checksum(&c))
        .map_err(|e| format!("{loc}: {e}"))?;
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
        Some("sqlite2mysql") => sqlite2mysql(&opts, out),
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
        let conn = sqlstore::open_state(&sqlstore::Location::Sqlite(db.clone())).unwrap();
        conn.execute(
            "INSERT INTO group_pool (oid, name) VALUES (0, 'oneadmin')",
            (),
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

        assert_eq!(run_args(&["fsck"]).0, 255);
    }

    #[test]
    fn a_corrupt_backup_is_refused_and_the_database_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("one.db");
        drop(sqlstore::open_state(&sqlstore::Location::Sqlite(db.clone())).unwrap());
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

/// `onedb` against MySQL/MariaDB (`ONEHA_TEST_MYSQL`, skipped without it).
#[cfg(test)]
mod mysql_tests {
    use super::tests_support::*;

    fn onedb(cmd: &str, loc: &sqlstore::Location, rest: &[&str]) -> (i32, String, String) {
        let mut args = vec![cmd.to_string()];
        args.extend(location_args(loc));
        args.extend(rest.iter().map(|s| s.to_string()));
        run_strings(&args)
    }

    fn sha(out: &str) -> String {
        out.lines()
            .find_map(|l| l.strip_prefix("sha256: "))
            .unwrap_or_else(|| panic!("no sha256 in {out}"))
            .to_string()
    }

    /// A bootstrapped state with a user, on `loc`.
    fn populate(loc: &sqlstore::Location) {
        let mut c = sqlstore::open_state(loc).unwrap();
        sqlstore::testing::bootstrap(&mut c);
        let stmts = sqlstore::objects::user::insert("it's a \\ test\nuser", "x".into(), "core", 1);
        let tx = c.transaction().unwrap();
        sqlstore::apply_txn(&tx, &sqlstore::SqlTxn { stmts }).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_mysql_backup_is_a_dump_the_mysql_client_loads_and_a_damaged_one_is_refused() {
        let (Some(src), Some(dst), Some(by_client)) = (
            sqlstore::testing::fresh_mysql_database(),
            sqlstore::testing::fresh_mysql_database(),
            sqlstore::testing::fresh_mysql_database(),
        ) else {
            return;
        };
        populate(&src);
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("one.sql");
        let dumps = dump.to_str().unwrap();
        let (code, out, err) = onedb("backup", &src, &[dumps]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with(&format!("MySQL dump stored in {dumps}\n")),
            "{out}"
        );
        let state = sha(&out);
        let (_, sum, _) = onedb("checksum", &src, &[]);
        assert_eq!(sha(&sum), state);

        let client = ["mariadb", "mysql"].into_iter().find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok()
        });
        if let (Some(client), sqlstore::Location::Mysql(m)) = (client, &by_client) {
            let loaded = std::process::Command::new(client)
                .args(["--no-defaults", "-h", &m.server, "-P", &m.port.to_string()])
                .args(["-u", &m.user, &m.db_name])
                .stdin(std::fs::File::open(&dump).unwrap())
                .output()
                .unwrap();
            assert!(loaded.status.success(), "{loaded:?}");
            let (_, sum, _) = onedb("checksum", &by_client, &[]);
            assert_eq!(sha(&sum), state, "the state the mysql client loaded");
        }

        let (code, out, err) = onedb("restore", &dst, &[dumps]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("MySQL DB "), "{out}");
        let (_, sum, _) = onedb("checksum", &dst, &[]);
        assert_eq!(sha(&sum), state);
        let (code, _, err) = onedb("restore", &dst, &[dumps]);
        assert_eq!(code, 255);
        assert!(err.contains("exists, use -f to overwrite"), "{err}");

        let text = std::fs::read_to_string(&dump).unwrap();
        let truncated = dir.path().join("truncated.sql");
        std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
        let modified = dir.path().join("modified.sql");
        std::fs::write(&modified, text.replacen("oneadmin", "evil0000", 1)).unwrap();
        for bad in [&truncated, &modified] {
            let (code, _, err) = onedb("restore", &dst, &["-f", bad.to_str().unwrap()]);
            assert_eq!(code, 255, "{bad:?}");
            assert!(err.contains("refused, nothing was changed"), "{err}");
            let (_, sum, _) = onedb("checksum", &dst, &[]);
            assert_eq!(sha(&sum), state, "{bad:?} changed the database");
        }
    }

    #[test]
    fn sqlite2mysql_moves_the_state_and_the_checksums_agree() {
        let Some(dst) = sqlstore::testing::fresh_mysql_database() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.db");
        let sqlite = sqlstore::Location::Sqlite(file.clone());
        populate(&sqlite);
        let (code, out, err) = run_strings(&[
            "checksum".to_string(),
            "-s".to_string(),
            file.to_str().unwrap().to_string(),
        ]);
        assert_eq!(code, 0, "{err}");
        let state = sha(&out);
        let (code, out, err) = onedb("sqlite2mysql", &dst, &["-s", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(sha(&out), state, "{out}");
        let (_, sum, _) = onedb("checksum", &dst, &[]);
        assert_eq!(sha(&sum), state);
    }
}

#[cfg(test)]
mod federated_tests {
    use super::tests_support::*;
    use sqlstore::{Location, SqlTxn};

    fn write(loc: &Location, stmts: Vec<sqlstore::SqlStmt>) {
        let mut c = sqlstore::open_state(loc).unwrap();
        let tx = c.transaction().unwrap();
        sqlstore::apply_txn(&tx, &SqlTxn { stmts }).unwrap();
        tx.commit().unwrap();
    }

    /// A bootstrapped zone with `user` and the local cluster `cluster`.
    fn zone(loc: &Location, user: &str, cluster: &str) {
        let mut c = sqlstore::open_state(loc).unwrap();
        sqlstore::testing::bootstrap(&mut c);
        c.execute(
            "INSERT INTO cluster_pool (oid, name) VALUES (100, ?)",
            [cluster],
        )
        .unwrap();
        drop(c);
        write(
            loc,
            sqlstore::objects::user::insert(user, "hash".into(), "core", 1),
        );
    }

    fn names(loc: &Location, table: &str) -> Vec<String> {
        let c = sqlstore::open_read(loc).unwrap();
        let mut v: Vec<String> = c
            .prepare(&format!("SELECT name FROM {table}"))
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v.sort();
        v
    }

    fn onedb(cmd: &str, loc: &Location, rest: &[&str]) -> (i32, String, String) {
        let mut args = vec![cmd.to_string()];
        args.extend(location_args(loc));
        args.extend(rest.iter().map(|s| s.to_string()));
        run_strings(&args)
    }

    /// The master's users, groups and zones replace the slave's; the slave keeps its own
    /// clusters. A damaged file, or one restored without `--federated`, changes nothing.
    fn master_to_slave(master: &Location, slave: &Location) {
        zone(master, "alice", "master-cluster");
        zone(slave, "bob", "slave-cluster");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fed.bck");
        let files = file.to_str().unwrap();

        let (code, out, err) = onedb("backup", master, &["--federated", files]);
        assert_eq!(code, 0, "{err}");
        let stored = match master {
            Location::Sqlite(_) => "Sqlite database backup of federated tables stored in",
            Location::Mysql(_) => "MySQL dump stored in",
        };
        assert!(out.starts_with(&format!("{stored} {files}\n")), "{out}");

        let (code, _, err) = onedb("restore", slave, &[files]);
        assert_eq!(code, 255);
        assert_eq!(
            err,
            format!("{files} holds only the federated tables: restore it with --federated\n")
        );
        let text = std::fs::read_to_string(&file).unwrap();
        let damaged = dir.path().join("damaged.bck");
        std::fs::write(&damaged, text.replacen("alice", "mallory", 1)).unwrap();
        let (code, _, err) = onedb(
            "restore",
            slave,
            &["--federated", damaged.to_str().unwrap()],
        );
        assert_eq!(code, 255);
        assert!(err.contains("does not match its digest"), "{err}");
        assert_eq!(
            names(slave, "user_pool"),
            ["bob", "oneadmin", "serveradmin"]
        );

        let (code, out, err) = onedb("restore", slave, &["--federated", files]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.ends_with(" restored.\n") || out.starts_with("Sqlite database backup restored in"),
            "{out}"
        );
        assert_eq!(names(slave, "user_pool"), names(master, "user_pool"));
        assert_eq!(names(slave, "group_pool"), names(master, "group_pool"));
        assert_eq!(names(slave, "zone_pool"), names(master, "zone_pool"));
        assert!(names(slave, "cluster_pool").contains(&"slave-cluster".to_string()));
        assert!(!names(slave, "cluster_pool").contains(&"master-cluster".to_string()));

        eprintln!("--- a second restore of the same file leaves the same rows");
        assert_eq!(onedb("restore", slave, &["--federated", files]).0, 0);
        assert_eq!(names(slave, "user_pool"), names(master, "user_pool"));
    }

    #[test]
    fn a_federated_backup_replaces_only_the_shared_tables_of_another_zone() {
        let dir = tempfile::tempdir().unwrap();
        master_to_slave(
            &Location::Sqlite(dir.path().join("master.db")),
            &Location::Sqlite(dir.path().join("slave.db")),
        );
    }

    #[test]
    fn a_federated_backup_of_sqlite_restores_into_mysql_and_back() {
        let (Some(mysql_master), Some(mysql_slave)) = (
            sqlstore::testing::fresh_mysql_database(),
            sqlstore::testing::fresh_mysql_database(),
        ) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        master_to_slave(
            &Location::Sqlite(dir.path().join("master.db")),
            &mysql_slave,
        );
        master_to_slave(
            &mysql_master,
            &Location::Sqlite(dir.path().join("slave.db")),
        );
    }

    #[test]
    fn a_full_backup_is_not_taken_for_a_federated_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = Location::Sqlite(dir.path().join("one.db"));
        zone(&db, "carol", "c");
        let full = dir.path().join("full.bck");
        assert_eq!(onedb("backup", &db, &[full.to_str().unwrap()]).0, 0);
        let (code, _, err) = onedb("restore", &db, &["--federated", full.to_str().unwrap()]);
        assert_eq!(code, 255);
        assert!(err.contains("refused, nothing was changed"), "{err}");
        assert!(names(&db, "user_pool").contains(&"carol".to_string()));
    }
}

#[cfg(test)]
mod tests_support {
    use sqlstore::Location;

    /// `-s FILE`, or `-S -P -u -p -d` of a MySQL location.
    pub fn location_args(loc: &Location) -> Vec<String> {
        match loc {
            Location::Sqlite(db) => vec!["-s".into(), db.display().to_string()],
            Location::Mysql(m) => [
                "-S",
                &m.server,
                "-P",
                &m.port.to_string(),
                "-u",
                &m.user,
                "-p",
                &m.passwd,
                "-d",
                &m.db_name,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    pub fn run_strings(args: &[String]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = super::run(args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }
}
