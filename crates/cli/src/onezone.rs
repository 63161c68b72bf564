//! The `onezone` command: argument parsing in OpenNebula CLI style and the
//! `list`, `show`, `server-add`, `server-del` and `server-reset` commands.
//!
//! [`run`] takes the arguments and two writers and returns the exit code, so
//! the whole command is testable without a process.

use std::io::Write;
use std::time::Duration;

use xmlrpc::Value;

use crate::client::{resolve_ca_file, resolve_endpoint, resolve_session, Client};
use crate::format::{format_zone_list, format_zone_show};
use crate::zone::{RaftStatus, ZoneInfo};

/// Exit code of every failure (OpenNebula's CLI exits with -1).
pub const EXIT_FAILURE: i32 = 255;
/// Timeout of the `one.zone.raftstatus` calls made to each server.
pub const RAFT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default timeout of the main call (override with `ONE_XMLRPC_TIMEOUT`, seconds).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An option: key, short form, long form, argument name, description.
struct Opt(
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    &'static str,
);

const OPTIONS: &[Opt] = &[
    Opt(
        "server_name",
        Some("-n"),
        "--name",
        Some("name"),
        "Zone server name",
    ),
    Opt(
        "server_rpc",
        Some("-r"),
        "--rpc",
        Some("rpc"),
        "Zone server RPC endpoint",
    ),
    Opt(
        "xml",
        Some("-x"),
        "--xml",
        None,
        "Show the resource in xml format",
    ),
    Opt(
        "db",
        None,
        "--db",
        None,
        "Also replace the local database with the remote server's",
    ),
    Opt(
        "keep_ha",
        None,
        "--keep-ha",
        None,
        "Keep the local RAFT section and RAFT hooks of oned.conf too",
    ),
    Opt(
        "append",
        Some("-a"),
        "--append",
        None,
        "Append new attributes to the current template",
    ),
    Opt(
        "keep",
        Some("-k"),
        "--keep",
        None,
        "Don't overwrite endpoint file located in home folder, use it as a temporary zone.",
    ),
    Opt("verbose", Some("-v"), "--verbose", None, "Verbose mode"),
    Opt("help", Some("-h"), "--help", None, "Show this message"),
    Opt(
        "version",
        Some("-V"),
        "--version",
        None,
        "Show version and copyright information",
    ),
    Opt(
        "user",
        None,
        "--user",
        Some("name"),
        "User name used to connect to OpenNebula",
    ),
    Opt(
        "password",
        None,
        "--password",
        Some("password"),
        "Password to authenticate with OpenNebula",
    ),
    Opt(
        "endpoint",
        None,
        "--endpoint",
        Some("endpoint"),
        "URL of OpenNebula xmlrpc frontend",
    ),
    Opt(
        "ca_file",
        None,
        "--ca-file",
        Some("file"),
        "CA certificates (PEM) to trust for an https endpoint (also ONE_CA_FILE)",
    ),
];
const GLOBAL_OPTIONS: &[&str] = &[
    "verbose", "help", "version", "user", "password", "endpoint", "ca_file",
];

/// A command: name, positional arguments, description, command-specific options.
struct Cmd(
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
);

const COMMANDS: &[Cmd] = &[
    Cmd("list", &[], "Lists Zones in the pool", &["xml"]),
    Cmd(
        "show",
        &["<zoneid>"],
        "Shows information for the given Zone",
        &["xml"],
    ),
    Cmd(
        "server-add",
        &["<zoneid>"],
        "Add an OpenNebula server to this zone.",
        &["server_name", "server_rpc"],
    ),
    Cmd(
        "server-del",
        &["<zoneid>", "<serverid>"],
        "Delete an OpenNebula server from this zone.",
        &[],
    ),
    Cmd(
        "server-reset",
        &["<zoneid>", "<serverid_of_failed_follower>"],
        "Reset follower log index. This should be trigger when a follower DB has been reset.",
        &[],
    ),
    Cmd("enable", &["<zoneid>"], "Enables the given Zone", &[]),
    Cmd(
        "disable",
        &["<zoneid>"],
        "Disables the given Zone: it answers reads only until enabled again",
        &[],
    ),
    Cmd("rename", &["<zoneid>", "<name>"], "Renames the Zone", &[]),
    Cmd(
        "create",
        &["<file>"],
        "Creates a new Zone (only a federation master does)",
        &[],
    ),
    Cmd(
        "update",
        &["<zoneid>", "[<file>]"],
        "Update the template contents. If a path is not provided the editor will be launched to modify the current content.",
        &["append"],
    ),
    Cmd("delete", &["<range|zoneid_list>"], "Deletes the given Zone", &[]),
    Cmd(
        "set",
        &["<zoneid>"],
        "Set shell session access point for the CLI to the given Zone",
        &["keep"],
    ),
    Cmd(
        "serversync",
        &["<server>"],
        "Replace this server's configuration files (and with --db its database) with those of <server> of the zone, keeping the local FEDERATION section of oned.conf.",
        &["db", "keep_ha"],
    ),
];

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    positional: Vec<String>,
    /// (option key, value) in order; flags have an empty value.
    options: Vec<(&'static str, String)>,
}

impl Args {
    fn has(&self, key: &str) -> bool {
        self.options.iter().any(|(k, _)| *k == key)
    }
    fn value(&self, key: &str) -> Option<String> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            parsed.positional.extend(it.by_ref().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            parsed.positional.push(arg.clone());
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if arg.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let opt = OPTIONS
            .iter()
            .find(|o| o.2 == flag || o.1 == Some(flag))
            .ok_or_else(|| format!("Invalid option: {arg}"))?;
        let value = match (opt.3, inline) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(format!("Option {} takes no value", opt.2)),
            (Some(_), Some(v)) => v,
            (Some(_), None) => it
                .next()
                .cloned()
                .ok_or_else(|| format!("Option {flag} requires a value"))?,
        };
        parsed.options.push((opt.0, value));
    }
    Ok(parsed)
}

fn option_lines(keys: &[&str]) -> String {
    let mut out = String::new();
    // `--ca-file` is OneHA's: the help stays OpenNebula's, byte for byte.
    for key in keys.iter().filter(|k| **k != "ca_file") {
        if let Some(o) = OPTIONS.iter().find(|o| o.0 == *key) {
            let mut flag = o.1.map(|s| format!("{s}, ")).unwrap_or_default() + o.2;
            if let (None, Some(arg)) = (o.1, o.3) {
                flag = format!("{flag} {arg}");
            }
            out.push_str(&format!("     {flag:<26}{}\n", o.4));
        }
    }
    out
}

fn command_synopsis(cmd: &Cmd) -> String {
    let mut out = std::iter::once(cmd.0)
        .chain(cmd.1.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    out.push_str(&format!("\n        {}\n", cmd.2));
    if !cmd.3.is_empty() {
        out.push_str(&format!("        valid options: {}\n", cmd.3.join(", ")));
    }
    out
}

/// The `## USAGE` block of one command, as printed after an argument error.
fn command_usage(cmd: &Cmd) -> String {
    let keys: Vec<&str> = cmd.3.iter().chain(GLOBAL_OPTIONS).copied().collect();
    format!(
        "## USAGE\n{}\n## OPTIONS\n{}",
        command_synopsis(cmd),
        option_lines(&keys)
    )
}

/// Full help (`onezone -h`).
pub fn usage() -> String {
    let mut out =
        String::from("## SYNOPSIS\n\nonezone <command> [<args>] [<options>]\n\n## COMMANDS\n\n");
    for cmd in COMMANDS {
        out.push_str(&format!("* {}\n", command_synopsis(cmd)));
    }
    let keys: Vec<&str> = OPTIONS.iter().map(|o| o.0).collect();
    out.push_str(&format!("## OPTIONS\n{}", option_lines(&keys)));
    out
}

/// `-V` text.
pub fn version() -> String {
    format!(
        "OneHA {}\nCopyright 2025, the OneHA authors. Licensed under the Apache License, Version 2.0.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Checks `--rpc`: an `http://` or `https://` URL with a host (and a numeric port if any).
pub fn valid_rpc_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    if url.chars().any(|c| c.is_whitespace() || c == '"') {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, tail)) => (
                h,
                if tail.is_empty() {
                    None
                } else {
                    tail.strip_prefix(':').or(Some("x"))
                },
            ),
            None => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    !host.is_empty() && !host.contains('@') && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

/// Escapes a value for a double-quoted OpenNebula template string.
fn template_quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Builds the `one.zone.addserver` template.
pub fn server_template(name: &str, endpoint: &str) -> String {
    format!(
        "SERVER=[NAME=\"{}\", ENDPOINT=\"{}\"]",
        template_quote(name),
        template_quote(endpoint)
    )
}

/// Failure of a command: the message for stderr, and whether the usage follows.
struct Failure(String, bool);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string(), false)
    }
}

fn parse_id(what: &str, text: &str) -> Result<i32, Failure> {
    text.parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            Failure(
                format!("Invalid {what} '{text}': expected a non-negative integer"),
                false,
            )
        })
}

/// Runs `onezone` with `args` (without the program name); returns the exit code.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let parsed = match parse_args(args) {
        Ok(p) => p,
        Err(msg) => {
            let _ = writeln!(
                err,
                "{msg}\nRun 'onezone -h' for the list of commands and options."
            );
            return EXIT_FAILURE;
        }
    };
    let cmd = parsed
        .positional
        .first()
        .map(|name| COMMANDS.iter().find(|c| c.0 == name));
    if parsed.has("help") {
        let text = match cmd {
            Some(Some(c)) => command_usage(c),
            _ => usage(),
        };
        let _ = write!(out, "{text}");
        return 0;
    }
    if parsed.has("version") {
        let _ = write!(out, "{}", version());
        return 0;
    }
    let cmd = match cmd {
        Some(Some(c)) => c,
        Some(None) => {
            let _ = writeln!(
                err,
                "Unknown command '{}'. Run 'onezone -h' for the list of commands.",
                parsed.positional[0]
            );
            return EXIT_FAILURE;
        }
        None => {
            let _ = writeln!(err, "No command given.\n\n{}", usage());
            return EXIT_FAILURE;
        }
    };
    match execute(cmd, &parsed, out) {
        Ok(()) => 0,
        Err(Failure(msg, with_usage)) => {
            let _ = writeln!(err, "{msg}");
            if with_usage {
                let _ = write!(err, "{}", command_usage(cmd));
            }
            EXIT_FAILURE
        }
    }
}

fn execute(cmd: &Cmd, args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    let (expected, given) = (
        cmd.1.iter().filter(|a| !a.starts_with('[')).count(),
        args.positional.len() - 1,
    );
    let most = cmd.1.len();
    if given < expected {
        let msg = match expected {
            1 => format!("Command {} requires one parameter to run", cmd.0),
            n => format!("Command {} requires {n} parameters to run.", cmd.0),
        };
        return Err(Failure(msg, true));
    }
    if given > most {
        let msg = match most {
            0 => format!("Command {} takes no parameters", cmd.0),
            1 => format!("Command {} takes only one parameter", cmd.0),
            n => format!("Command {} takes only {n} parameters", cmd.0),
        };
        return Err(Failure(msg, true));
    }
    if let Some((key, _)) = args
        .options
        .iter()
        .find(|(k, _)| !GLOBAL_OPTIONS.contains(k) && !cmd.3.contains(k))
    {
        let flag = OPTIONS.iter().find(|o| o.0 == *key).map_or(*key, |o| o.2);
        return Err(Failure(
            format!("Option {flag} is not valid for command {}", cmd.0),
            true,
        ));
    }
    let pos = &args.positional[1..];
    let verbose = args.has("verbose");
    if cmd.0 == "serversync" {
        let local = crate::serversync::Local::from_env();
        return crate::serversync::run(&local, &pos[0], args.has("db"), args.has("keep_ha"), out)
            .map_err(|e| Failure(e, false));
    }

    // Validate everything before looking for credentials or calling.
    let ranged = cmd.0 == "delete";
    let zone_ids = if ranged {
        parse_range(&pos[0])?
    } else {
        Vec::new()
    };
    let zone_id = match pos.first() {
        Some(z) if !ranged && cmd.0 != "create" => Some(parse_id("zone id", z)?),
        _ => None,
    };
    let server_id = match pos.get(1) {
        Some(s) if cmd.0.starts_with("server-") => Some(parse_id("server id", s)?),
        _ => None,
    };
    let add = if cmd.0 == "server-add" {
        let name = args.value("server_name").filter(|n| !n.is_empty());
        let rpc = args.value("server_rpc").filter(|r| !r.is_empty());
        let (Some(name), Some(rpc)) = (name, rpc) else {
            return Err(Failure(
                "Command server-add requires --name <name> and --rpc <url>".into(),
                true,
            ));
        };
        if !valid_rpc_url(&rpc) {
            return Err(Failure(
                format!("Invalid --rpc '{rpc}': expected an http:// or https:// URL with a host, e.g. http://192.168.150.1:2633/RPC2"),
                false,
            ));
        }
        Some(server_template(&name, &rpc))
    } else {
        None
    };

    // A template from a file is read before any call, as OpenNebula's CLI reads it.
    let file_text = match (cmd.0, pos.get(if cmd.0 == "create" { 0 } else { 1 })) {
        ("create" | "update", Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| Failure(format!("Cannot read {path}: {e}"), false))?,
        ),
        _ => None,
    };

    let endpoint = resolve_endpoint(args.value("endpoint"));
    let session = resolve_session(args.value("user"), args.value("password"))
        .map_err(|e| format!("{e:#}"))?;
    let timeout = std::env::var("ONE_XMLRPC_TIMEOUT")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(CALL_TIMEOUT, Duration::from_secs);
    let client = Client::new(endpoint, session, timeout)
        .with_ca_file(resolve_ca_file(args.value("ca_file")));
    let ids =
        |z: Option<i32>, s: Option<i32>| z.into_iter().chain(s).map(Value::Int).collect::<Vec<_>>();

    match cmd.0 {
        "list" => {
            let xml = client.call_xml(wire::method::ZONEPOOL_INFO, vec![])?;
            if args.has("xml") {
                writeln!(out, "{xml}")?;
                return Ok(());
            }
            let zones = ZoneInfo::pool_from_xml(&xml)?;
            let endpoints: Vec<&str> = zones.iter().map(|z| z.endpoint().unwrap_or("")).collect();
            let fed: Vec<Option<i64>> = raft_statuses(&client, &endpoints)
                .into_iter()
                .map(|r| r.map(|r| r.fedlog_index))
                .collect();
            write!(out, "{}", format_zone_list(&zones, &fed, client.endpoint()))?;
        }
        "show" => {
            let xml = client.call_xml(wire::method::ZONE_INFO, ids(zone_id, None))?;
            if args.has("xml") {
                writeln!(out, "{xml}")?;
                return Ok(());
            }
            let zone = ZoneInfo::from_xml(&xml)?;
            let endpoints: Vec<&str> = zone.servers.iter().map(|s| s.endpoint.as_str()).collect();
            let raft = raft_statuses(&client, &endpoints);
            write!(out, "{}", format_zone_show(&zone, &raft))?;
        }
        "create" => {
            let id = client.call(
                "one.zone.allocate",
                vec![Value::String(file_text.unwrap_or_default())],
            )?;
            writeln!(out, "ID: {}", id.as_i64().unwrap_or(-1))?;
        }
        "delete" => {
            for id in zone_ids {
                client.call("one.zone.delete", vec![Value::Int(id)])?;
                if verbose {
                    writeln!(out, "ZONE {id}: deleted")?;
                }
            }
        }
        "update" => {
            let id = zone_id.unwrap_or(0);
            let append = args.has("append");
            let text = match file_text {
                Some(t) => t,
                None => {
                    // As OpenNebula's CLI: the editor on the current template (empty to append).
                    let current = if append {
                        String::new()
                    } else {
                        let xml = client.call_xml(wire::method::ZONE_INFO, vec![Value::Int(id)])?;
                        template_text_of(&xml)?
                    };
                    crate::editor::edit(&current).map_err(|e| Failure(e, false))?
                }
            };
            client.call(
                "one.zone.update",
                vec![
                    Value::Int(id),
                    Value::String(text),
                    Value::Int(i32::from(append)),
                ],
            )?;
            if verbose {
                writeln!(out, "ZONE {id}: modified")?;
            }
        }
        "set" => {
            let id = zone_id.unwrap_or(0);
            let xml = client.call_xml(wire::method::ZONE_INFO, vec![Value::Int(id)])?;
            let zone = ZoneInfo::from_xml(&xml)?;
            let Some(endpoint) = zone.endpoint().filter(|e| !e.is_empty()) else {
                return Err(Failure(format!("No Endpoint defined for Zone {id}"), false));
            };
            if args.has("keep") {
                writeln!(out, "Type: export ONE_XMLRPC={endpoint}")?;
            } else {
                let path = crate::client::endpoint_file()
                    .ok_or_else(|| Failure("HOME is not set".into(), false))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Failure(format!("Cannot create {}: {e}", dir.display()), false)
                    })?;
                }
                std::fs::write(&path, format!("{endpoint}\n"))
                    .map_err(|e| Failure(format!("Cannot write {}: {e}", path.display()), false))?;
                writeln!(
                    out,
                    "Endpoint changed to \"{endpoint}\" in {}",
                    path.display()
                )?;
            }
        }
        name => {
            let (method, params, done) = match name {
                "server-add" => {
                    let template = add.unwrap_or_default();
                    (
                        wire::method::ZONE_ADDSERVER,
                        vec![Value::Int(zone_id.unwrap_or(0)), Value::String(template)],
                        "added",
                    )
                }
                "server-del" => (
                    wire::method::ZONE_DELSERVER,
                    ids(zone_id, server_id),
                    "deleted",
                ),
                "enable" | "disable" => (
                    wire::method::ZONE_ENABLE,
                    vec![
                        Value::Int(zone_id.unwrap_or(0)),
                        Value::Bool(name == "enable"),
                    ],
                    if name == "enable" {
                        "enabled"
                    } else {
                        "disabled"
                    },
                ),
                "rename" => (
                    wire::method::ZONE_RENAME,
                    vec![
                        Value::Int(zone_id.unwrap_or(0)),
                        Value::String(pos.get(1).cloned().unwrap_or_default()),
                    ],
                    "renamed",
                ),
                _ => (
                    wire::method::ZONE_RESETSERVER,
                    ids(zone_id, server_id),
                    "reset",
                ),
            };
            client.call(method, params)?;
            if verbose {
                let what = if name.starts_with("server-") {
                    format!("server {done}")
                } else {
                    done.to_string()
                };
                writeln!(out, "ZONE {}: {what}", zone_id.unwrap_or(0))?;
            }
        }
    }
    Ok(())
}

/// The `TEMPLATE` of a `<ZONE>` document in OpenNebula's template syntax, vector attributes
/// included, for the editor.
fn template_text_of(xml: &str) -> Result<String, Failure> {
    let body = xml
        .find("<TEMPLATE>")
        .zip(xml.find("</TEMPLATE>"))
        .map(|(a, b)| &xml[a..b + "</TEMPLATE>".len()])
        .unwrap_or("<TEMPLATE/>");
    template::Template::parse(body)
        .map(|t| t.to_text())
        .map_err(|e| Failure(format!("The zone's template does not parse: {e}"), false))
}

/// Zone ids as OpenNebula's CLI takes a range: `3`, `1,4,7` or `2..5`.
fn parse_range(text: &str) -> Result<Vec<i32>, Failure> {
    let mut ids = Vec::new();
    for part in text.split(',') {
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (parse_id("zone id", a)?, parse_id("zone id", b)?);
                if b < a || b - a > 10_000 {
                    return Err(Failure(format!("Invalid range '{part}'"), false));
                }
                ids.extend(a..=b);
            }
            None => ids.push(parse_id("zone id", part)?),
        }
    }
    Ok(ids)
}

/// Asks every endpoint for its `one.zone.raftstatus` concurrently, with the
/// client's credentials and [`RAFT_TIMEOUT`]; `None` where the call or the
/// parsing failed (or the endpoint is empty).
pub fn raft_statuses(client: &Client, endpoints: &[&str]) -> Vec<Option<RaftStatus>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = endpoints
            .iter()
            .map(|ep| {
                scope.spawn(move || {
                    if ep.is_empty() {
                        return None;
                    }
                    let xml = client
                        .with_endpoint(*ep, RAFT_TIMEOUT)
                        .call_xml(wire::method::ZONE_RAFTSTATUS, vec![])
                        .ok()?;
                    RaftStatus::from_xml(&xml).ok()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    })
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

    const ADD_USAGE: &str = "## USAGE
server-add <zoneid>
        Add an OpenNebula server to this zone.
        valid options: server_name, server_rpc

## OPTIONS
     -n, --name                Zone server name
     -r, --rpc                 Zone server RPC endpoint
     -v, --verbose             Verbose mode
     -h, --help                Show this message
     -V, --version             Show version and copyright information
     --user name               User name used to connect to OpenNebula
     --password password       Password to authenticate with OpenNebula
     --endpoint endpoint       URL of OpenNebula xmlrpc frontend
";

    const DEL_USAGE: &str = "## USAGE
server-del <zoneid> <serverid>
        Delete an OpenNebula server from this zone.

## OPTIONS
     -v, --verbose             Verbose mode
     -h, --help                Show this message
     -V, --version             Show version and copyright information
     --user name               User name used to connect to OpenNebula
     --password password       Password to authenticate with OpenNebula
     --endpoint endpoint       URL of OpenNebula xmlrpc frontend
";

    #[test]
    fn missing_parameters_match_guide() {
        let (code, out, err) = run_args(&["server-add"]);
        assert_eq!((code, out.as_str()), (255, ""));
        assert_eq!(
            err,
            format!("Command server-add requires one parameter to run\n{ADD_USAGE}")
        );
        let (code, _, err) = run_args(&["server-del", "0"]);
        assert_eq!(code, 255);
        assert_eq!(
            err,
            format!("Command server-del requires 2 parameters to run.\n{DEL_USAGE}")
        );
    }

    #[test]
    fn argument_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["bogus"], "Unknown command 'bogus'"),
            (&[], "No command given"),
            (&["show", "abc"], "Invalid zone id 'abc'"),
            (&["server-del", "0", "x"], "Invalid server id 'x'"),
            (&["show", "0", "1"], "takes only one parameter"),
            (&["show", "0", "--bogus"], "Invalid option: --bogus"),
            (
                &["show", "0", "--endpoint"],
                "Option --endpoint requires a value",
            ),
            (
                &["show", "0", "-n", "x"],
                "Option --name is not valid for command show",
            ),
            (
                &["server-add", "0", "--name", "s"],
                "requires --name <name> and --rpc <url>",
            ),
            (
                &["server-add", "0", "-n", "s", "-r", "ftp://h/RPC2"],
                "Invalid --rpc 'ftp://h/RPC2'",
            ),
            (
                &["server-add", "0", "-n", "s", "--rpc=http:///RPC2"],
                "Invalid --rpc",
            ),
        ];
        for (args, msg) in cases {
            let (code, out, err) = run_args(args);
            assert_eq!(code, 255, "{args:?}");
            assert!(out.is_empty(), "{args:?}: {out}");
            assert!(err.contains(msg), "{args:?}: {err}");
        }
    }

    #[test]
    fn help_and_version() {
        let (code, out, _) = run_args(&["-h"]);
        assert_eq!(code, 0);
        for c in [
            "* list",
            "* show <zoneid>",
            "* server-add <zoneid>",
            "* server-del",
            "* server-reset",
            "--endpoint endpoint",
        ] {
            assert!(out.contains(c), "{c}: {out}");
        }
        let (code, out, _) = run_args(&["server-add", "--help"]);
        assert_eq!((code, out.as_str()), (0, ADD_USAGE));
        let (code, out, _) = run_args(&["-V"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("OneHA 0.1.0\nCopyright "), "{out}");
    }

    #[test]
    fn rpc_urls_and_template() {
        for ok in [
            "http://192.168.150.1:2633/RPC2",
            "https://h",
            "http://[::1]:2633/RPC2",
            "http://host.example/RPC2",
        ] {
            assert!(valid_rpc_url(ok), "{ok}");
        }
        for bad in [
            "",
            "192.168.1.1:2633",
            "ftp://h/",
            "http://",
            "http://:2633/RPC2",
            "http://h:port/",
            "http://h x/",
            "http://[::1/",
        ] {
            assert!(!valid_rpc_url(bad), "{bad}");
        }
        assert_eq!(
            server_template("a\"b\\c", "http://h:1/RPC2"),
            r#"SERVER=[NAME="a\"b\\c", ENDPOINT="http://h:1/RPC2"]"#
        );
    }

    #[test]
    fn args_parsing() {
        let args: Vec<String> = ["show", "--user=u", "--password", "p", "-v", "--", "-1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = parse_args(&args).unwrap();
        assert_eq!(a.positional, vec!["show", "-1"]);
        assert_eq!(
            (a.value("user"), a.value("password")),
            (Some("u".into()), Some("p".into()))
        );
        assert!(a.has("verbose"));
    }
}
