//! `oned` refuses a bad `oned.conf` at start: exit code 1 and a message on
//! stderr naming the file, the line and the attribute.

use std::fs;
use std::path::Path;

use crate::zone::{free_port, oned_conf, run_oned_to_exit, temp_dir};

/// Whether `text`, with `path` blanked out, has `n` as a stand-alone number.
fn mentions_line(text: &str, path: &Path, n: usize) -> bool {
    let text = text.replace(&path.display().to_string(), "<conf>");
    text.split(|c: char| !c.is_ascii_digit())
        .any(|token| token == n.to_string())
}

/// Writes `conf` as `etc/oned.conf` of a fresh `ONE_LOCATION`, runs oned and
/// checks it exits with 1 naming the file, `line` (if any) and `attribute`.
fn assert_rejected(what: &str, conf: &str, line: Option<usize>, attribute: &str) {
    eprintln!("--- {what}");
    let (location, _tmp) = temp_dir("oneha-badconf-");
    fs::create_dir_all(location.join("etc")).unwrap();
    let path = location.join("etc/oned.conf");
    fs::write(&path, conf).unwrap();
    let (status, stderr) = run_oned_to_exit(&location);
    eprintln!("oned exited with {status}; stderr:\n{stderr}");
    assert_eq!(status.code(), Some(1), "{what}: {status}\n{stderr}");
    assert!(
        stderr.contains("oned.conf"),
        "{what}: no file name in\n{stderr}"
    );
    assert!(
        stderr.contains(attribute),
        "{what}: no {attribute} in\n{stderr}"
    );
    if let Some(line) = line {
        assert!(
            mentions_line(&stderr, &path, line),
            "{what}: no line {line} in\n{stderr}"
        );
    }
}

/// The test configuration with three comment lines on top, so `PORT` is on line 5.
fn numbered_conf() -> String {
    format!(
        "# OneHA integration test\n#\n# a bad configuration\n{}",
        oned_conf(free_port(), -1)
    )
}

#[test]
fn bad_config_stops_oned_with_file_line_and_attribute() {
    let good = numbered_conf();
    assert_eq!(
        good.lines().nth(4).map(|l| l.starts_with("PORT = ")),
        Some(true)
    );

    let port_line = good.lines().nth(4).unwrap().to_string();
    let bad_port = good.replacen(&port_line, "PORT = \"abc\"", 1);
    assert_rejected("PORT = \"abc\" on line 5", &bad_port, Some(5), "PORT");

    // An unterminated vector on the last line, without a final newline, so
    // the line of the opening bracket is also the line of the end of file.
    let mut lines: Vec<String> = good
        .lines()
        .take_while(|l| !l.starts_with("RAFT"))
        .map(str::to_string)
        .collect();
    lines.push("RAFT = [ LIMIT_PURGE = 100000, LOG_RETENTION = 250000".to_string());
    let n = lines.len();
    assert_rejected(
        "unterminated RAFT vector",
        &lines.join("\n"),
        Some(n),
        "RAFT",
    );

    let slow_heartbeat = good.replace("ELECTION_TIMEOUT_MS = 1000", "ELECTION_TIMEOUT_MS = 200");
    assert_ne!(slow_heartbeat, good);
    assert_rejected(
        "ELECTION_TIMEOUT_MS not above 3 x BROADCAST_TIMEOUT_MS",
        &slow_heartbeat,
        None,
        "ELECTION_TIMEOUT_MS",
    );
}

/// As oned, which refuses to start on a VM operation it does not know.
#[test]
fn an_unknown_vm_operation_stops_oned() {
    let conf = format!(
        "{}VM_MANAGE_OPERATIONS = \"poweroff, fly\"\n",
        numbered_conf()
    );
    assert_rejected(
        "an unknown VM operation",
        &conf,
        None,
        "Unknown vm operation: fly",
    );
}
