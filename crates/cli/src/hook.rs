//! `onehook`'s own layouts, as OpenNebula's `OneHookHelper` prints them when its output is not
//! a terminal: the list table, `show` with the execution log, one execution record
//! (`show -e`) and `log`.
//!
//! Times are shown and `--since`/`--until` read in UTC: OpenNebula uses the local zone, which
//! would need a time zone database this tool does not carry.

use std::io::Write;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use xmlrpc::Value;

use crate::client::Client;
use crate::listing::{col, table, write_lines, Table};
use crate::objects::{err_text, text};
use crate::xml::Element;

/// `onehook list`: onehook.yaml's ID, NAME and TYPE columns.
pub(crate) fn list(hooks: &[&Element]) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("NAME", 19, true, false),
        col("TYPE", 8, true, false),
    ];
    let rows: Vec<Vec<String>> = hooks
        .iter()
        .map(|h| {
            ["ID", "NAME", "TYPE"]
                .map(|n| text(h, n).to_string())
                .to_vec()
        })
        .collect();
    Table { columns, rows }
}

/// The execution records as a table; `log` adds the hook's id in front.
fn executions(records: &[&Element], with_hook: bool) -> Vec<String> {
    let mut columns = Vec::new();
    if with_hook {
        columns.push(col("HOOK", 5, false, true));
    }
    columns.extend([
        col("ID", 5, false, true),
        col("TIMESTAMP", 15, false, false),
        col("RC", 5, false, true),
        col("EXECUTION", 5, false, true),
    ]);
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let code = r.child("EXECUTION_RESULT").map_or("", |e| text(e, "CODE"));
            let mut row = Vec::new();
            if with_hook {
                row.push(text(r, "HOOK_ID").to_string());
            }
            row.extend([
                text(r, "EXECUTION_ID").to_string(),
                time_str(text(r, "TIMESTAMP"), false),
                code.to_string(),
                // A missing code reads as 0, as Ruby's to_i.
                if code.trim().parse::<i64>().unwrap_or(0) == 0 {
                    "SUCCESS"
                } else {
                    "ERROR"
                }
                .to_string(),
            ]);
            row
        })
        .collect();
    table(&columns, &rows)
}

/// Appends `line` and a line break, without trailing spaces.
fn push(s: &mut String, line: &str) {
    s.push_str(line.trim_end());
    s.push('\n');
}

fn field(s: &mut String, name: &str, value: &str) {
    push(s, &format!("{name:<18}: {value}"));
}

/// `OpenNebulaHelper.level_lock_to_str`.
pub(crate) fn lock_name(level: &str) -> &'static str {
    match level.trim().parse::<i64>().unwrap_or(0) {
        0 => "None",
        1 => "Use",
        2 => "Manage",
        3 => "Admin",
        4 => "All",
        _ => "-",
    }
}

/// `KEY="value"` lines, a vector as `KEY=[\n  A="x",\n  B="y" ]`; attributes without text
/// are left out, as OpenNebula's `template_like_str`.
fn template_lines(t: &Element, s: &mut String) {
    let quoted = |v: &str| format!("\"{}\"", v.replace('"', "\\\""));
    for a in &t.children {
        if a.children.is_empty() {
            if !a.text.is_empty() {
                push(s, &format!("{}={}", a.name, quoted(&a.text)));
            }
        } else {
            let inner: Vec<String> = a
                .children
                .iter()
                .filter(|p| !p.text.is_empty())
                .map(|p| format!("  {}={}", p.name, quoted(&p.text)))
                .collect();
            push(s, &format!("{}=[\n{} ]", a.name, inner.join(",\n")));
        }
    }
}

/// `onehook show`: the hook, its template and its execution log, or with `execution` one
/// execution record with its output decoded.
pub(crate) fn show(
    hook: &Element,
    execution: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut s = String::new();
    push(&mut s, &format!("HOOK {} INFORMATION", text(hook, "ID")));
    field(&mut s, "ID", text(hook, "ID"));
    field(&mut s, "NAME", text(hook, "NAME"));
    field(&mut s, "TYPE", text(hook, "TYPE"));
    let locked = hook.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    field(&mut s, "LOCK", lock_name(locked));
    s.push('\n');
    let records: Vec<&Element> = hook
        .child("HOOKLOG")
        .map(|l| l.children_named("HOOK_EXECUTION_RECORD").collect())
        .unwrap_or_default();
    if let Some(n) = execution {
        let wanted = n.trim().parse::<i64>().ok();
        match records
            .iter()
            .find(|r| wanted.is_some() && r.int_of("EXECUTION_ID").ok() == wanted)
        {
            Some(r) => record(r, &mut s),
            None => push(&mut s, &format!("Cannot find execution record {n}")),
        }
    } else {
        push(&mut s, "HOOK TEMPLATE");
        if let Some(t) = hook.child("TEMPLATE") {
            template_lines(t, &mut s);
        }
        if !records.is_empty() {
            s.push('\n');
            push(&mut s, "EXECUTION LOG");
            for line in executions(&records, false) {
                push(&mut s, &line);
            }
        }
        s.push('\n');
    }
    out.write_all(s.as_bytes()).map_err(|e| e.to_string())
}

/// The `HOOK EXECUTION RECORD` block of `show -e`.
fn record(r: &Element, s: &mut String) {
    let result = r.child("EXECUTION_RESULT");
    let of = |name: &str| result.map_or("", |e| text(e, name));
    // The arguments may hold base64 blobs ($API, $TEMPLATE): every token that reads as
    // base64 is shown decoded, as OpenNebula does (so a plain word like `host` is, too).
    let arguments: String = text(r, "ARGUMENTS")
        .split_whitespace()
        .map(|a| {
            if looks_base64(a) {
                String::from_utf8_lossy(&decode64(a)).into_owned()
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    push(s, "HOOK EXECUTION RECORD");
    field(s, "EXECUTION ID", text(r, "EXECUTION_ID"));
    field(s, "TIMESTAMP", &time_str(text(r, "TIMESTAMP"), true));
    field(s, "COMMAND", of("COMMAND"));
    field(s, "ARGUMENTS", &arguments);
    field(s, "EXIT CODE", of("CODE"));
    for (header, name) in [
        ("EXECUTION STDOUT", "STDOUT"),
        ("EXECUTION STDERR", "STDERR"),
    ] {
        s.push('\n');
        push(s, header);
        let decoded = String::from_utf8_lossy(&decode64(of(name))).into_owned();
        if !decoded.is_empty() {
            s.push_str(&decoded);
            if !decoded.ends_with('\n') {
                s.push('\n');
            }
        }
    }
    s.push('\n');
}

/// `onehook log`: `[since, until, hook id, rc]` as `one.hooklog.info` takes them; nothing is
/// printed when no execution matches.
pub(crate) fn log(
    client: &Client,
    query: [i32; 4],
    xml_out: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let xml = client
        .call_xml("one.hooklog.info", query.map(Value::Int).to_vec())
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let log = Element::parse(&xml).map_err(|e| e.to_string())?;
    let records: Vec<&Element> = log.children_named("HOOK_EXECUTION_RECORD").collect();
    if records.is_empty() {
        return Ok(());
    }
    write_lines(out, &executions(&records, true))
}

/// `CLIHelper.base64?`: whole groups of four from the base64 alphabet, padding at the end.
fn looks_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// Ruby's `Base64.decode64`, which skips line breaks and forgives missing padding; text that
/// is not base64 at all is shown as it is.
pub(crate) fn decode64(s: &str) -> Vec<u8> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    LENIENT
        .decode(&compact)
        .unwrap_or_else(|_| s.as_bytes().to_vec())
}

/// `OpenNebulaHelper.time_to_str`: `%m/%d %H:%M[:%S]`, `-` for no time.
fn time_str(epoch: &str, seconds: bool) -> String {
    let t = epoch.trim().parse::<i64>().unwrap_or(0);
    if t == 0 {
        return "-".into();
    }
    let (_, month, day) = civil(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    let (h, m, sec) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if seconds {
        format!("{month:02}/{day:02} {h:02}:{m:02}:{sec:02}")
    } else {
        format!("{month:02}/{day:02} {h:02}:{m:02}")
    }
}

pub(crate) use wire::time::civil;

/// Days since 1970-01-01 of a proleptic Gregorian date (`days_from_civil`).
fn days(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `--since`/`--until` date: seconds since the epoch, or `YYYY-MM-DD[ HH:MM[:SS]]` in UTC.
pub fn parse_date(given: &str) -> Result<i32, String> {
    let bad = || {
        format!(
            "Invalid date '{given}': expected seconds since the epoch or YYYY-MM-DD[ HH:MM[:SS]] (UTC)"
        )
    };
    let s = given.trim();
    let epoch = match s.parse::<i64>() {
        Ok(n) => n,
        Err(_) => {
            let (date, time) = match s.split_once([' ', 'T']) {
                Some((d, t)) => (d, Some(t.trim())),
                None => (s, None),
            };
            let num = |p: &str| -> Option<i64> {
                (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            };
            let ymd: Vec<Option<i64>> = date.split('-').map(num).collect();
            let [Some(y), Some(mo), Some(d)] = ymd[..] else {
                return Err(bad());
            };
            // A day past the month's end would roll over; the round trip refuses it.
            let day_number = days(y, mo, d);
            if !(1..=12).contains(&mo) || civil(day_number) != (y, mo, d) {
                return Err(bad());
            }
            let hms: Vec<Option<i64>> =
                time.map_or(Vec::new(), |t| t.split(':').map(num).collect());
            let (h, m, sec) = match hms[..] {
                [] => (0, 0, 0),
                [Some(h), Some(m)] => (h, m, 0),
                [Some(h), Some(m), Some(s)] => (h, m, s),
                _ => return Err(bad()),
            };
            if h > 23 || m > 59 || sec > 59 {
                return Err(bad());
            }
            day_number * 86_400 + h * 3600 + m * 60 + sec
        }
    };
    // one.hooklog.info takes 32-bit integers.
    i32::try_from(epoch).map_err(|_| format!("Invalid date '{given}': out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_epochs_or_utc_calendar_dates() {
        assert_eq!(parse_date("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2023-11-14 22:13:20"), Ok(1_700_000_000));
        assert_eq!(parse_date("2023-11-14 22:13"), Ok(1_699_999_980));
        assert_eq!(parse_date("2024-02-29"), Ok(1_709_164_800));
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "yesterday",
            "2023-11-14 25:00",
            "2023-11",
        ] {
            let e = parse_date(bad).unwrap_err();
            assert!(e.starts_with(&format!("Invalid date '{bad}'")), "{e}");
        }
        assert!(parse_date("3000-01-01").is_err());
    }

    #[test]
    fn times_are_shown_as_opennebulas_cli_shows_them() {
        assert_eq!(time_str("1700000000", true), "11/14 22:13:20");
        assert_eq!(time_str("1700000000", false), "11/14 22:13");
        assert_eq!(time_str("0", false), "-");
    }

    #[test]
    fn base64_is_recognised_and_decoded_as_ruby_does() {
        assert!(looks_base64("aGVsbG8K"));
        assert!(looks_base64("aGk="));
        assert!(!looks_base64("vm"));
        assert!(!looks_base64("a==="));
        assert_eq!(decode64("aGVs\nbG8K\n"), b"hello\n");
        assert_eq!(decode64("aGk"), b"hi");
        assert_eq!(decode64(""), b"");
    }

    #[test]
    fn execution_tables_fit_their_data() {
        let r = Element::parse(
            "<HOOK_EXECUTION_RECORD><HOOK_ID>3</HOOK_ID><EXECUTION_ID>12</EXECUTION_ID><TIMESTAMP>1700000000</TIMESTAMP><EXECUTION_RESULT><CODE>0</CODE></EXECUTION_RESULT></HOOK_EXECUTION_RECORD>",
        )
        .unwrap();
        assert_eq!(
            executions(&[&r], true),
            [
                " HOOK    ID       TIMESTAMP    RC EXECUTION",
                "    3    12     11/14 22:13     0 SUCCESS"
            ]
        );
    }
}
