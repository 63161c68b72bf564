//! The `onedb` command. Only the help text exists so far; `backup` and
//! `restore` report that they are not implemented yet.

use std::io::Write;

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
}
