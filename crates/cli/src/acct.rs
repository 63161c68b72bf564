//! `oneacct` and `oneshowback`: OpenNebula's accounting and showback tools
//! (`src/cli/oneacct`, `src/cli/oneshowback`, `one_helper/oneacct_helper.rb`) over
//! `one.vmpool.accounting`, `one.vmpool.showback` and `one.vmpool.calculateshowback`.
//! Dates are read and printed in UTC (OpenNebula uses the local time zone, or `-t`).

use std::io::Write;
use std::time::Duration;

use xmlrpc::Value;

use crate::client::{resolve_ca_file, resolve_endpoint, resolve_session, Client};
use crate::ids::{Family, Resolver, INFO_ALL};
use crate::listing::{col, render, write_lines, Column, ListOpts, Table};
use crate::objects::{err_text, Opts};
use crate::xml::Element;

/// `exit(-1)`.
const EXIT_ERROR: i32 = 255;

const VALUED: &[&str] = &[
    "--user",
    "--password",
    "--endpoint",
    "--ca-file",
    "-t",
    "--timezone",
    "-s",
    "--start",
    "-e",
    "--end",
    "-u",
    "--userfilter",
    "-g",
    "--group",
    "-H",
    "--host",
    "--xpath",
    "-l",
    "--list",
    "-f",
    "--filter",
    "--operator",
    "--csv-del",
    "--adjust",
    "--size",
];

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        words: Vec::new(),
        flags: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some((name, value)) = a.split_once('=').filter(|(n, _)| n.starts_with("--")) {
            if VALUED.contains(&name) {
                o.flags.push((name.to_string(), Some(value.to_string())));
                continue;
            }
        }
        if a.starts_with('-') && a.len() > 1 {
            if VALUED.contains(&a.as_str()) {
                let v = it
                    .next()
                    .ok_or_else(|| format!("option {a} requires a value"))?;
                o.flags.push((a.clone(), Some(v.clone())));
            } else {
                o.flags.push((a.clone(), None));
            }
        } else {
            o.words.push(a.clone());
        }
    }
    Ok(o)
}

/// The list options; `-s` is the start date here, not `--size`.
fn list_opts(o: &Opts) -> ListOpts {
    let listing = Opts {
        words: Vec::new(),
        flags: o.flags.iter().filter(|(f, _)| f != "-s").cloned().collect(),
    };
    ListOpts::from(&listing)
}

fn client(o: &Opts, timeout: Duration) -> Result<Client, String> {
    let session = resolve_session(o.value(&["--user"]), o.value(&["--password"]))
        .map_err(|e| format!("{e:#}"))?;
    Ok(
        Client::new(resolve_endpoint(o.value(&["--endpoint"])), session, timeout)
            .with_ca_file(resolve_ca_file(o.value(&["--ca-file"]))),
    )
}

/// Days since 1970-01-01 of a Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day, hour, minute, second) of a time.
fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let z = t.div_euclid(86400) + 719468;
    let secs = t.rem_euclid(86400);
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

/// A date as OptionParser's `Time` reads the usual forms: `YYYY-MM-DD` or `YYYY/MM/DD`,
/// optionally followed by `HH:MM[:SS]`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid argument: {s}");
    let mut parts = s.split_whitespace();
    let date = parts.next().ok_or_else(bad)?;
    let nums: Vec<i64> = date
        .split(['-', '/'])
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, d] = nums[..] else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = 0;
    if let Some(time) = parts.next() {
        let hms: Vec<i64> = time
            .split(':')
            .map(|p| p.parse::<i64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let (h, mi, sec) = match hms[..] {
            [h, mi] => (h, mi, 0),
            [h, mi, sec] => (h, mi, sec),
            _ => return Err(bad()),
        };
        secs = h * 3600 + mi * 60 + sec;
    }
    Ok(days_from_civil(y, m, d) * 86400 + secs)
}

/// Ruby's `Time#to_s` in UTC.
fn time_to_s(t: i64) -> String {
    let (y, m, d, h, mi, s) = civil(t);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000")
}

/// `OpenNebulaHelper.time_to_str`: `%m/%d %H:%M:%S`, `-` for 0.
fn time_to_str(t: i64) -> String {
    if t == 0 {
        return "-".into();
    }
    let (_, m, d, h, mi, s) = civil(t);
    format!("{m:02}/{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `OpenNebulaHelper.unit_to_str` (without `-k`): the value in `unit` scaled to K/M/G/T with
/// one decimal, none when whole.
pub fn unit_to_str(value: f64, unit: &str) -> String {
    const SUFFIX: [&str; 4] = ["K", "M", "G", "T"];
    let mut i = SUFFIX.iter().position(|s| *s == unit).unwrap_or(0);
    let mut v = value;
    while v > 1024.0 && i < 3 {
        v /= 1024.0;
        i += 1;
    }
    v = (v * 10.0).round() / 10.0;
    if v == v.round() {
        format!("{}{}", v as i64, SUFFIX[i])
    } else {
        format!("{v}{}", SUFFIX[i])
    }
}

const HISTORY_ACTIONS: &[&str] = &[
    "none",
    "migrate",
    "live-migrate",
    "shutdown",
    "shutdown-hard",
    "undeploy",
    "undeploy-hard",
    "hold",
    "release",
    "stop",
    "suspend",
    "resume",
    "boot",
    "delete",
    "delete-recreate",
    "reboot",
    "reboot-hard",
    "resched",
    "unresched",
    "poweroff",
    "poweroff-hard",
    "disk-attach",
    "disk-detach",
    "nic-attach",
    "nic-detach",
    "disk-snapshot-create",
    "disk-snapshot-delete",
    "terminate",
    "terminate-hard",
    "disk-resize",
    "deploy",
    "chown",
    "chmod",
    "updateconf",
    "rename",
    "resize",
    "update",
    "snapshot-resize",
    "snapshot-delete",
    "snapshot-revert",
    "disk-saveas",
    "disk-snapshot-revert",
    "recover",
    "retry",
    "monitor",
    "disk-snapshot-rename",
    "alias-attach",
    "alias-detach",
    "poweroff-migrate",
    "poweroff-hard-migrate",
    "backup",
    "nic-update",
    "backup-cancel",
    "sched-add",
    "sched-update",
    "sched-delete",
    "sg-attach",
    "sg-detach",
    "pci-attach",
    "pci-detach",
    "restore",
];

fn text<'a>(e: &'a Element, path: &[&str]) -> Option<&'a str> {
    let mut cur = e;
    for p in path {
        cur = cur.child(p)?;
    }
    Some(cur.text.as_str())
}

fn num(e: &Element, path: &[&str]) -> i64 {
    text(e, path)
        .and_then(|t| t.trim().parse::<f64>().ok())
        .map_or(0, |v| v as i64)
}

/// oneacct.yaml's columns: UID, then the defaults VID ... DISK, and SEQ.
const ACCT_COLUMNS: [Column; 12] = [
    col("UID", 4, false, false),
    col("VID", 4, false, false),
    col("SEQ", 3, false, false),
    col("HOSTNAME", 15, true, false),
    col("ACTION", 16, true, false),
    col("START_TIME", 14, false, false),
    col("END_TIME", 14, false, false),
    col("MEMORY", 6, false, false),
    col("CPU", 3, false, false),
    col("NETRX", 6, false, false),
    col("NETTX", 6, false, false),
    col("DISK", 6, false, false),
];

fn acct_row(h: &Element) -> Vec<String> {
    let vm = h.child("VM");
    let from_vm = |path: &[&str]| vm.and_then(|v| text(v, path));
    let disk: f64 = vm
        .and_then(|v| v.child("TEMPLATE"))
        .map(|t| {
            t.children_named("DISK")
                .map(|d| num(d, &["SIZE"]) as f64)
                .sum()
        })
        .unwrap_or(0.0);
    let net = |k: &str| {
        from_vm(&["MONITORING", k])
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map_or("-".to_string(), |b| unit_to_str(b as f64 / 1024.0, "K"))
    };
    let action = usize::try_from(num(h, &["ACTION"]))
        .ok()
        .and_then(|i| HISTORY_ACTIONS.get(i))
        .copied()
        .unwrap_or("");
    vec![
        text(h, &["UID"]).unwrap_or("").to_string(),
        text(h, &["OID"]).unwrap_or("").to_string(),
        text(h, &["SEQ"]).unwrap_or("").to_string(),
        text(h, &["HOSTNAME"]).unwrap_or("").to_string(),
        action.to_string(),
        time_to_str(num(h, &["STIME"])),
        time_to_str(num(h, &["ETIME"])),
        from_vm(&["TEMPLATE", "MEMORY"]).map_or("-".into(), |m| {
            unit_to_str(m.trim().parse().unwrap_or(0.0), "M")
        }),
        from_vm(&["TEMPLATE", "CPU"]).unwrap_or("-").to_string(),
        net("NETRX"),
        net("NETTX"),
        if vm.is_some() {
            unit_to_str(disk * 1024.0, "K")
        } else {
            "-".into()
        },
    ]
}

/// The table with the default columns (UID and SEQ left out) unless `-l` chooses.
fn acct_table(records: &[&Element], with_uid: bool) -> Table {
    let mut columns = ACCT_COLUMNS.to_vec();
    columns[0].hidden = !with_uid;
    columns[2].hidden = true;
    Table {
        columns,
        rows: records.iter().map(|h| acct_row(h)).collect(),
    }
}

const BOLD: &str = "\x1b[1m";
const UNDERLINE: &str = "\x1b[4m";
const RESTORE: &str = "\x1b[0m";

fn header(out: &mut dyn Write, title: &str) -> std::io::Result<()> {
    write!(out, "{BOLD}{UNDERLINE}")?;
    writeln!(out, "{title:<80}")?;
    write!(out, "{RESTORE}")?;
    writeln!(out)
}

/// The raw `<HISTORY>` elements of an accounting answer.
fn raw_records(xml: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<HISTORY>") {
        let Some(end) = rest[at..].find("</HISTORY>") else {
            break;
        };
        let stop = at + end + "</HISTORY>".len();
        out.push(&rest[at..stop]);
        rest = &rest[stop..];
    }
    out
}

/// A group of records and its key (a VM id with `--split`, else empty).
type Records<'a> = (String, Vec<&'a Element>);

/// `build_accounting`'s xpaths: `HISTORY[HID=h] | HISTORY[VM/GID=g]` (a union).
fn selected(h: &Element, host: Option<i32>, group: Option<i32>) -> bool {
    if host.is_none() && group.is_none() {
        return true;
    }
    host.is_some_and(|id| num(h, &["HID"]) == i64::from(id))
        || group.is_some_and(|id| num(h, &["VM", "GID"]) == i64::from(id))
}

fn user_filter(client: &Client, o: &Opts) -> Result<i32, String> {
    match o.value(&["-u", "--userfilter"]) {
        Some(u) => Resolver::other(client, Family::User).id(&u),
        None => Ok(INFO_ALL),
    }
}

fn group_filter(client: &Client, o: &Opts) -> Result<Option<i32>, String> {
    o.value(&["-g", "--group"])
        .map(|g| Resolver::other(client, Family::Group).id(&g))
        .transpose()
}

const ACCT_USAGE: &str = "oneacct [-s|--start TIME] [-e|--end TIME] [-u|--userfilter user] [-g|--group group] [-H|--host HOST] [--split] [-x|--xml] [-j|--json] [--describe] [<list options>]\nTIME: YYYY-MM-DD or YYYY/MM/DD [HH:MM[:SS]], UTC";

/// `oneacct`; returns the exit code.
pub fn oneacct(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        let _ = writeln!(out, "usage: {ACCT_USAGE}");
        return 0;
    }
    match acct(args, out) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_ERROR
        }
    }
}

fn acct(args: &[String], out: &mut dyn Write) -> Result<i32, String> {
    let o = parse(args)?;
    let lo = list_opts(&o);
    if o.flag(&["--describe"]) {
        for c in ACCT_COLUMNS {
            writeln!(out, "{}", c.name).map_err(|e| e.to_string())?;
        }
        return Ok(0);
    }
    if o.value(&["--xpath"]).is_some() {
        return Err("--xpath is not supported by this oneacct".into());
    }
    let client = client(&o, Duration::from_secs(30))?;
    let flag = user_filter(&client, &o)?;
    let start = o
        .value(&["-s", "--start"])
        .map(|s| parse_time(&s))
        .transpose()?
        .unwrap_or(-1);
    let end = match o.value(&["-e", "--end"]) {
        None => -1,
        Some(e) => {
            let t = parse_time(&e)?;
            // A date without a time means the whole of that day.
            if t.rem_euclid(86400) == 0 {
                t + 86400
            } else {
                t
            }
        }
    };
    let host = o
        .value(&["-H", "--host"])
        .map(|h| Resolver::other(&client, Family::Host).id(&h))
        .transpose()?;
    let group = group_filter(&client, &o)?;
    let to_i32 = |v: i64| i32::try_from(v).map_err(|_| format!("time out of range: {v}"));
    let xml = match client.call_xml(
        "one.vmpool.accounting",
        vec![
            Value::Int(flag),
            Value::Int(to_i32(start)?),
            Value::Int(to_i32(end)?),
        ],
    ) {
        Ok(x) => x,
        Err(e) => {
            writeln!(out, "{}", err_text(e)).map_err(|e| e.to_string())?;
            return Ok(EXIT_ERROR);
        }
    };
    let doc = Element::parse(&xml).map_err(|e| e.to_string())?;
    let all: Vec<&Element> = doc.children_named("HISTORY").collect();
    let keep: Vec<bool> = all.iter().map(|h| selected(h, host, group)).collect();
    let records: Vec<&Element> = all
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(h, _)| *h)
        .collect();
    let io = |e: std::io::Error| e.to_string();
    if lo.xml || lo.json {
        let raw: Vec<&str> = raw_records(&xml)
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(r, _)| r)
            .collect();
        let text = format!("<HISTORY_RECORDS>\n{}\n</HISTORY_RECORDS>", raw.concat());
        if lo.json {
            writeln!(out, "{}", crate::json::pool_json(&text)?).map_err(io)?;
        } else {
            writeln!(out, "{text}").map_err(io)?;
        }
        return Ok(0);
    }
    if lo.csv {
        write_lines(out, &render(&acct_table(&records, true), &lo)?)?;
        return Ok(0);
    }
    if start != -1 || end != -1 {
        let at = |t: i64| if t == -1 { "-".into() } else { time_to_s(t) };
        write!(
            out,
            "Showing active history records from {BOLD}{}{RESTORE} to {BOLD}{}{RESTORE}\n\n",
            at(start),
            at(end)
        )
        .map_err(io)?;
    }
    // Grouped by owner in the order first seen, then (`--split`) by VM.
    let mut users: Vec<(String, Vec<Records>)> = Vec::new();
    let split = o.flag(&["--split"]);
    for h in records {
        let uid = text(h, &["VM", "UID"]).unwrap_or("").to_string();
        let vid = if split {
            text(h, &["VM", "ID"]).unwrap_or("").to_string()
        } else {
            String::new()
        };
        let i = match users.iter().position(|(u, _)| *u == uid) {
            Some(i) => i,
            None => {
                users.push((uid, Vec::new()));
                users.len() - 1
            }
        };
        let vms = &mut users[i].1;
        match vms.iter_mut().find(|(v, _)| *v == vid) {
            Some((_, hs)) => hs.push(h),
            None => vms.push((vid, vec![h])),
        }
    }
    for (uid, vms) in users {
        header(out, &format!("# User {uid}")).map_err(io)?;
        for (_, hs) in vms {
            write_lines(out, &render(&acct_table(&hs, false), &lo)?)?;
            writeln!(out).map_err(io)?;
        }
    }
    Ok(0)
}

/// oneshowback.yaml's columns (UID and GID left out by default).
const SHOWBACK_COLUMNS: [Column; 11] = [
    col("UID", 4, false, true),
    col("USER_NAME", 8, true, false),
    col("GID", 4, false, false),
    col("GROUP_NAME", 8, true, false),
    col("VM_ID", 6, false, false),
    col("VM_NAME", 15, true, false),
    col("MONTH", 5, false, false),
    col("YEAR", 5, false, false),
    col("HOURS", 6, false, false),
    col("RUNNING_HOURS", 7, false, false),
    col("COST", 15, false, false),
];

fn showback_table(records: &[&Element]) -> Table {
    let mut columns = SHOWBACK_COLUMNS.to_vec();
    columns[0].hidden = true;
    columns[2].hidden = true;
    let t = |e: &Element, k: &str| text(e, &[k]).unwrap_or("").to_string();
    Table {
        columns,
        rows: records
            .iter()
            .map(|r| {
                vec![
                    t(r, "UID"),
                    t(r, "UNAME"),
                    t(r, "GID"),
                    t(r, "GNAME"),
                    t(r, "VMID"),
                    t(r, "VMNAME"),
                    t(r, "MONTH"),
                    t(r, "YEAR"),
                    t(r, "HOURS"),
                    text(r, &["RHOURS"]).unwrap_or("-").to_string(),
                    t(r, "TOTAL_COST"),
                ]
            })
            .collect(),
    }
}

const SHOWBACK_USAGE: &str = "oneshowback list [-s|--start TIME] [-e|--end TIME] [-u|--userfilter user] [-g|--group group] [-x|--xml] [-j|--json] [--describe] [<list options>] | calculate [-s|--start TIME] [-e|--end TIME]\nTIME: YYYY-MM-DD or YYYY/MM/DD (its month counts), UTC";

/// `oneshowback`; returns the exit code.
pub fn oneshowback(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") || args.is_empty() {
        let _ = writeln!(out, "usage: {SHOWBACK_USAGE}");
        return if args.is_empty() { EXIT_ERROR } else { 0 };
    }
    match showback(args, out, err) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_ERROR
        }
    }
}

/// `-s`/`-e` as (month, year), -1s when not given.
fn months(o: &Opts) -> Result<[i32; 4], String> {
    let month_year = |names: &[&str]| -> Result<(i32, i32), String> {
        match o.value(names) {
            None => Ok((-1, -1)),
            Some(s) => {
                let (y, m, ..) = civil(parse_time(&s)?);
                Ok((m as i32, y as i32))
            }
        }
    };
    let (sm, sy) = month_year(&["-s", "--start"])?;
    let (em, ey) = month_year(&["-e", "--end"])?;
    Ok([sm, sy, em, ey])
}

fn showback(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, String> {
    let o = parse(args)?;
    let io = |e: std::io::Error| e.to_string();
    let command = o.words.first().map(String::as_str).unwrap_or("");
    match command {
        "calculate" => {
            let client = client(&o, Duration::from_secs(60))?;
            let window = months(&o)?;
            let params = window.iter().map(|v| Value::Int(*v)).collect();
            match client.call("one.vmpool.calculateshowback", params) {
                Ok(Value::String(s)) => writeln!(out, "{s}").map_err(io)?,
                Ok(other) => writeln!(out, "{other:?}").map_err(io)?,
                Err(e) => {
                    writeln!(err, "{}", err_text(e)).map_err(io)?;
                    return Ok(EXIT_ERROR);
                }
            }
            Ok(0)
        }
        "list" => {
            let lo = list_opts(&o);
            if o.flag(&["--describe"]) {
                for c in SHOWBACK_COLUMNS {
                    writeln!(out, "{}", c.name).map_err(io)?;
                }
                return Ok(0);
            }
            let client = client(&o, Duration::from_secs(60))?;
            let flag = user_filter(&client, &o)?;
            let group = group_filter(&client, &o)?;
            let mut params = vec![Value::Int(flag)];
            params.extend(months(&o)?.iter().map(|v| Value::Int(*v)));
            let xml = match client.call_xml("one.vmpool.showback", params) {
                Ok(x) => x,
                Err(e) => {
                    writeln!(out, "{}", err_text(e)).map_err(io)?;
                    return Ok(EXIT_ERROR);
                }
            };
            let doc = Element::parse(&xml).map_err(|e| e.to_string())?;
            let records: Vec<&Element> = doc
                .children_named("SHOWBACK")
                .filter(|r| group.is_none_or(|g| num(r, &["GID"]) == i64::from(g)))
                .collect();
            if lo.xml {
                writeln!(out, "{xml}").map_err(io)?;
                return Ok(0);
            }
            if lo.json {
                writeln!(out, "{}", crate::json::pool_json(&xml)?).map_err(io)?;
                return Ok(0);
            }
            if lo.csv {
                write_lines(out, &render(&showback_table(&records), &lo)?)?;
                return Ok(0);
            }
            let mut months: Vec<((String, String), Vec<&Element>)> = Vec::new();
            for r in records {
                let key = (
                    text(r, &["YEAR"]).unwrap_or("").to_string(),
                    text(r, &["MONTH"]).unwrap_or("").to_string(),
                );
                match months.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, rs)) => rs.push(r),
                    None => months.push((key, vec![r])),
                }
            }
            for ((year, month), rs) in months {
                header(out, &format!("# Showback for {month}/{year}")).map_err(io)?;
                write_lines(out, &render(&showback_table(&rs), &lo)?)?;
                writeln!(out).map_err(io)?;
            }
            Ok(0)
        }
        other => Err(format!("{other}: unknown command\nusage: {SHOWBACK_USAGE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_in_utc() {
        assert_eq!(parse_time("1970-01-02").unwrap(), 86400);
        assert_eq!(parse_time("2024/03/01 01:02:03").unwrap(), 1709254923);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(time_to_s(1709254923), "2024-03-01 01:02:03 +0000");
        assert_eq!(time_to_str(1709254923), "03/01 01:02:03");
        assert_eq!(time_to_str(0), "-");
    }

    #[test]
    fn units_print_as_opennebula_prints_them() {
        assert_eq!(unit_to_str(64.0, "M"), "64M");
        assert_eq!(unit_to_str(2048.0, "M"), "2G");
        assert_eq!(unit_to_str(1536.0, "M"), "1.5G");
        assert_eq!(unit_to_str(9000.0 / 1024.0, "K"), "8.8K");
        assert_eq!(unit_to_str(0.0, "K"), "0K");
    }

    #[test]
    fn history_records_are_cut_from_the_answer() {
        let xml = "<HISTORY_RECORDS><HISTORY><OID>1</OID></HISTORY><HISTORY><OID>2</OID><VM><HISTORY_RECORDS></HISTORY_RECORDS></VM></HISTORY></HISTORY_RECORDS>";
        assert_eq!(
            raw_records(xml),
            vec![
                "<HISTORY><OID>1</OID></HISTORY>",
                "<HISTORY><OID>2</OID><VM><HISTORY_RECORDS></HISTORY_RECORDS></VM></HISTORY>"
            ]
        );
    }

    #[test]
    fn records_print_as_json_through_the_shared_printer() {
        let text = "<HISTORY_RECORDS>\n<HISTORY><OID>1</OID></HISTORY>\n</HISTORY_RECORDS>";
        let json = crate::json::pool_json(text).unwrap_or_default();
        assert!(json.contains("\"OID\": \"1\""), "{json}");
        assert!(json.starts_with("{\n  \"HISTORY_RECORDS\": {"), "{json}");
    }
}
