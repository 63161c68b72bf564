//! `onehook`, as OpenNebula's: create from a file, list, show with the execution log, one
//! execution's output decoded (`show -e`), `log` and its filters, retry, rename, lock, update,
//! delete, and OpenNebula's refusals on stderr with exit code 255.

use std::path::Path;

use crate::zone::{Zone, DEADLINE};

/// `onehook` in-process as oneadmin: (exit code, stdout, stderr).
fn onehook(zone: &Zone, args: &[&str]) -> (i32, String, String) {
    zone.servers[0].cli(cli::objects::Kind::Hook, args).parts()
}

/// `onehook` that must succeed: its stdout.
fn ok(zone: &Zone, args: &[&str]) -> String {
    let (code, out, err) = onehook(zone, args);
    assert_eq!(code, 0, "onehook {args:?}: {out}{err}");
    out
}

/// An executable script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A template file in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Whether `line` is an execution row: the given cells around a `%m/%d %H:%M` timestamp
/// right-aligned in 15 characters.
fn row(line: &str, before: &str, after: &str) -> bool {
    let Some(ts) = line
        .strip_prefix(before)
        .and_then(|l| l.strip_suffix(after))
    else {
        return false;
    };
    let ts = ts.trim_start();
    ts.len() == 11
        && ts.char_indices().all(|(i, c)| match i {
            2 => c == '/',
            5 => c == ' ',
            8 => c == ':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn onehook_creates_lists_shows_logs_retries_locks_and_deletes() {
    let zone = Zone::solo();
    let c = zone.servers[0].client();
    let (dir, _keep) = testkit::zone::temp_dir("onehook");
    let good = script(&dir, "good.sh", "echo hello\necho oops >&2");
    let bad = script(&dir, "bad.sh", "echo broken >&2\nexit 3");
    let users = file(
        &dir,
        "users.tmpl",
        &format!(
            "NAME = users\nTYPE = api\nCOMMAND = \"{good}\"\nARGUMENTS = \"$API\"\nCALL = \"one.user.allocate\"\n"
        ),
    );
    let groups = file(
        &dir,
        "groups.tmpl",
        &format!("NAME = groups\nTYPE = api\nCOMMAND = \"{bad}\"\nCALL = \"one.group.allocate\"\n"),
    );
    assert_eq!(ok(&zone, &["create", &users]), "ID: 0\n");
    assert_eq!(ok(&zone, &["create", &groups]), "ID: 1\n");
    assert_eq!(
        ok(&zone, &["create", &users, "--dry"]),
        std::fs::read_to_string(&users).unwrap()
    );

    // No execution yet: no log, and show has no EXECUTION LOG.
    assert_eq!(ok(&zone, &["log"]), "");
    assert_eq!(
        ok(&zone, &["show", "1"]),
        format!(
            "HOOK 1 INFORMATION\n\
             ID                : 1\n\
             NAME              : groups\n\
             TYPE              : api\n\
             LOCK              : None\n\
             \n\
             HOOK TEMPLATE\n\
             CALL=\"one.group.allocate\"\n\
             COMMAND=\"{bad}\"\n\
             REMOTE=\"NO\"\n\
             \n"
        )
    );

    crate::zone::allocate(&c, "hooked").unwrap();
    c.call(
        "one.group.allocate",
        vec![xmlrpc::Value::String("g".into())],
    )
    .unwrap();
    zone.wait_until(DEADLINE, "both hooks ran and were recorded", || {
        ok(&zone, &["log"]).lines().count() == 3
    });

    assert_eq!(
        ok(&zone, &["list"]),
        "  ID NAME                TYPE\n   \
            1 groups              api\n   \
            0 users               api\n"
    );

    let show = ok(&zone, &["show", "0"]);
    let head = format!(
        "HOOK 0 INFORMATION\n\
         ID                : 0\n\
         NAME              : users\n\
         TYPE              : api\n\
         LOCK              : None\n\
         \n\
         HOOK TEMPLATE\n\
         ARGUMENTS=\"$API\"\n\
         CALL=\"one.user.allocate\"\n\
         COMMAND=\"{good}\"\n\
         REMOTE=\"NO\"\n\
         \n\
         EXECUTION LOG\n   \
            ID       TIMESTAMP    RC EXECUTION\n"
    );
    let rest = show.strip_prefix(&head).unwrap_or_else(|| panic!("{show}"));
    let rows: Vec<&str> = rest.lines().collect();
    assert_eq!(rows.len(), 2, "{show}");
    assert!(row(rows[0], "    0 ", "     0 SUCCESS"), "{show}");
    assert_eq!(rows[1], "", "{show}");

    // One execution: its arguments ($API, base64) and its output, decoded.
    let exec = ok(&zone, &["show", "0", "-e", "0"]);
    let (info, record) = exec.split_once("HOOK EXECUTION RECORD\n").unwrap();
    assert!(
        info.starts_with("HOOK 0 INFORMATION\n") && info.ends_with("LOCK              : None\n\n"),
        "{exec}"
    );
    assert!(
        record.starts_with("EXECUTION ID      : 0\nTIMESTAMP         : "),
        "{exec}"
    );
    assert!(
        record.contains(&format!("\nCOMMAND           : {good} ")),
        "{exec}"
    );
    assert!(
        record.contains("\nARGUMENTS         : <CALL_INFO><RESULT>1</RESULT><PARAMETERS>"),
        "{exec}"
    );
    assert!(record.contains("<VALUE>hooked</VALUE>"), "{exec}");
    assert!(
        record.ends_with(
            "\nEXIT CODE         : 0\n\nEXECUTION STDOUT\nhello\n\nEXECUTION STDERR\noops\n\n"
        ),
        "{exec}"
    );
    let missing = ok(&zone, &["show", "0", "-e", "7"]);
    assert!(
        missing.ends_with("LOCK              : None\n\nCannot find execution record 7\n"),
        "{missing}"
    );
    let xml = ok(&zone, &["show", "0", "-x"]);
    assert!(
        xml.starts_with("<HOOK><ID>0</ID><NAME>users</NAME>"),
        "{xml}"
    );
    let failed = ok(&zone, &["show", "1", "-e", "0"]);
    assert!(
        failed.ends_with(
            "\nEXIT CODE         : 3\n\nEXECUTION STDOUT\n\nEXECUTION STDERR\nbroken\n\n"
        ),
        "{failed}"
    );

    // The log and its filters: newest hook first, as OpenNebula orders it.
    let log = ok(&zone, &["log"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0], " HOOK    ID       TIMESTAMP    RC EXECUTION",
        "{log}"
    );
    // EXECUTION is right-aligned to its widest cell.
    assert!(row(lines[1], "    1     0 ", "     3   ERROR"), "{log}");
    assert!(row(lines[2], "    0     0 ", "     0 SUCCESS"), "{log}");
    let errors = ok(&zone, &["log", "--error"]);
    assert_eq!(errors.lines().count(), 2, "{errors}");
    assert!(
        row(
            errors.lines().nth(1).unwrap(),
            "    1     0 ",
            "     3 ERROR"
        ),
        "{errors}"
    );
    let successes = ok(&zone, &["log", "--success", "--hook-id", "0"]);
    assert_eq!(successes.lines().count(), 2, "{successes}");
    assert_eq!(ok(&zone, &["log", "--hook-id", "1", "--success"]), "");
    assert_eq!(ok(&zone, &["log", "--since", "2000-01-01"]), log);
    assert_eq!(
        ok(
            &zone,
            &[
                "log",
                "--since",
                "2000-01-01 00:00:00",
                "--until",
                "2000-01-02"
            ]
        ),
        ""
    );
    assert_eq!(ok(&zone, &["log", "--until", "946684800"]), "");
    let xml = ok(&zone, &["log", "--xml", "--hook-id", "1"]);
    assert!(
        xml.starts_with("<HOOKLOG><HOOK_EXECUTION_RECORD><HOOK_ID>1</HOOK_ID>")
            && xml.ends_with("</HOOKLOG>\n"),
        "{xml}"
    );
    let (code, out, err) = onehook(&zone, &["log", "--since", "yesterday"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            255,
            "",
            "Invalid date 'yesterday': expected seconds since the epoch or YYYY-MM-DD[ HH:MM[:SS]] (UTC)\n"
        )
    );

    // Retry runs execution 0 again, as execution 1.
    assert_eq!(ok(&zone, &["retry", "0", "0"]), "");
    zone.wait_until(DEADLINE, "the retry was recorded", || {
        ok(&zone, &["log", "--hook-id", "0"]).lines().count() == 3
    });
    let show = ok(&zone, &["show", "0"]);
    let rows: Vec<&str> = show.lines().skip_while(|l| *l != "EXECUTION LOG").collect();
    assert!(row(rows[2], "    0 ", "     0 SUCCESS"), "{show}");
    assert!(row(rows[3], "    1 ", "     0 SUCCESS"), "{show}");
    assert!(ok(&zone, &["show", "0", "-e", "1"]).contains("\nEXECUTION STDOUT\nhello\n"));

    // Rename, lock and unlock, update.
    assert_eq!(ok(&zone, &["rename", "0", "new-users"]), "");
    assert!(ok(&zone, &["list"]).contains("\n   0 new-users           api\n"));
    ok(&zone, &["lock", "0", "--manage"]);
    assert!(ok(&zone, &["show", "0"]).contains("\nLOCK              : Manage\n"));
    let (code, out, err) = onehook(&zone, &["delete", "0"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            255,
            "",
            "[one.hook.delete] User [0] : HOOK is locked. [0].\n"
        )
    );
    ok(&zone, &["unlock", "0"]);
    ok(&zone, &["lock", "0"]);
    assert!(ok(&zone, &["show", "0"]).contains("\nLOCK              : Use\n"));
    ok(&zone, &["unlock", "0"]);
    assert!(ok(&zone, &["show", "0"]).contains("\nLOCK              : None\n"));
    let timeout = file(&dir, "timeout.tmpl", "TIMEOUT = 5\n");
    ok(&zone, &["update", "1", &timeout, "--append"]);
    let show = ok(&zone, &["show", "1"]);
    assert!(
        show.contains("\nREMOTE=\"NO\"\nTIMEOUT=\"5\"\n\nEXECUTION LOG\n"),
        "{show}"
    );

    // Delete, and OpenNebula's refusals on stderr.
    assert_eq!(ok(&zone, &["delete", "0"]), "");
    assert_eq!(
        ok(&zone, &["list"]),
        "  ID NAME                TYPE\n   1 groups              api\n"
    );
    let refusals = [
        (
            vec!["show", "0"],
            "[one.hook.info] Error getting hook [0].".to_string(),
        ),
        (
            vec!["retry", "1", "9"],
            "[one.hook.retry] Invalid HookLog body. Arguments not found.".to_string(),
        ),
        (
            vec!["rename", "1", "a/b"],
            "[one.hook.rename] Invalid NAME, char '/' is not allowed".to_string(),
        ),
        (
            vec!["create", &groups],
            "[one.hook.allocate] NAME is already taken by Hook 1.".to_string(),
        ),
        (
            vec!["update", "1", &timeout],
            "[one.hook.update] Cannot update template. The COMMAND attribute is not defined."
                .to_string(),
        ),
        (vec!["create"], "No hook template provided".to_string()),
    ];
    for (args, want) in refusals {
        let (code, out, err) = onehook(&zone, &args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (255, "", format!("{want}\n").as_str()),
            "{args:?}"
        );
    }
}
