//! `onebackupjob`: its subcommands (`src/cli/onebackupjob`), and its layouts as OpenNebula's
//! `OneBackupJobHelper` prints them when the output is not a terminal. Jobs are named by id or
//! name, several at once where OpenNebula takes a range.

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{perform, Resolver};
use crate::listing::{col, ListOpts, Table};
use crate::market::{field, permissions, push, puts, template_str};
use crate::objects::{err_text, file_text, text, Kind, Opts};
use crate::xml::Element;

/// The options that take a value.
pub(crate) const VALUED: &[&str] = &[
    "--name",
    "--description",
    "--vms",
    "--keep",
    "--mode",
    "--schedule",
];

/// Runs one `onebackupjob` subcommand.
pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let kind = Kind::BackupJob;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let one = |i: usize| Resolver::own(client, kind).arg(o.words.get(i), "id");
    let many = || Resolver::own(client, kind).args(o.words.get(1), "id");
    let call = |verb: &str, params: Vec<Value>| {
        client
            .call(&format!("one.backupjob.{verb}"), params)
            .map_err(err_text)
    };
    let number = |i: usize, what: &str| crate::objects::id(o.words.get(i), what);
    match cmd {
        "list" => crate::listing::list(kind, o, client, out),
        "show" => show(client, one(1)?, o.flag(&["-x", "--xml"]), out),
        "create" => {
            let text = match o.words.get(1) {
                Some(_) => file_text(o.words.get(1))?,
                None => from_options(o)?,
            };
            let v = call("allocate", vec![Value::String(text)])?;
            writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
        }
        "backup" => {
            let ids = many()?;
            match o.value(&["--schedule"]) {
                Some(spec) => {
                    let tmpl = format!(
                        "SCHED_ACTION = [ ACTION = \"backup\", TIME = \"{}\" ]",
                        schedule_time(&spec, now())?
                    );
                    perform(&ids, |id| {
                        call(
                            "schedadd",
                            vec![Value::Int(id), Value::String(tmpl.clone())],
                        )
                        .map(drop)
                    })
                }
                None => perform(&ids, |id| call("backup", vec![Value::Int(id)]).map(drop)),
            }
        }
        "cancel" | "retry" => {
            let ids = many()?;
            perform(&ids, |id| call(cmd, vec![Value::Int(id)]).map(drop))
        }
        "priority" => {
            let ids = many()?;
            let prio = number(2, "priority")?;
            perform(&ids, |id| {
                call("priority", vec![Value::Int(id), Value::Int(prio)]).map(drop)
            })
        }
        "sched-delete" => {
            let oid = one(1)?;
            let sa = number(2, "scheduled action id")?;
            call("scheddelete", vec![Value::Int(oid), Value::Int(sa)]).map(drop)
        }
        "sched-update" => {
            let oid = one(1)?;
            let sa = number(2, "scheduled action id")?;
            let body = file_text(o.words.get(3))?;
            let tmpl = if body.contains("SCHED_ACTION") {
                body
            } else {
                let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
                format!("SCHED_ACTION = [ {} ]", lines.join(", "))
            };
            let params = vec![Value::Int(oid), Value::Int(sa), Value::String(tmpl)];
            call("schedupdate", params).map(drop)
        }
        c if crate::owned_ops::handles(c) => {
            crate::owned_ops::execute(kind, "one.backupjob", c, o, client)
        }
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

/// `--schedule`: `now`, `+seconds` from now or seconds since the epoch, as the action's
/// TIME. A job has no start time for oned to count `+seconds` from (it would count from the
/// epoch), so the relative form is made absolute here.
fn schedule_time(spec: &str, now: u64) -> Result<String, String> {
    let spec = spec.trim();
    if spec == "now" {
        return Ok(now.to_string());
    }
    let (digits, base) = match spec.strip_prefix('+') {
        Some(d) => (d, now),
        None => (spec, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|t| t.checked_add(base))
        .map(|t| t.to_string())
        .ok_or_else(|| format!("Error parsing time spec: {spec}"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `OneBackupJobHelper.create_backupjob_template`: `KEY="value"` per option given.
fn from_options(o: &Opts) -> Result<String, String> {
    let mut t = String::new();
    for (flag, key) in [
        ("--name", "NAME"),
        ("--description", "DESCRIPTION"),
        ("--vms", "BACKUP_VMS"),
        ("--keep", "KEEP_LAST"),
        ("--mode", "MODE"),
    ] {
        if let Some(v) = o.value(&[flag]) {
            t.push_str(&format!("{key}=\"{}\"\n", v.replace('"', "\\\"")));
        }
    }
    if t.is_empty() {
        return Err("No Backup Job description provided".into());
    }
    Ok(t)
}

/// onebackupjob.yaml's default columns: ID USER GROUP PRIO NAME LAST VMS.
pub(crate) fn table(jobs: &[&Element], lo: &ListOpts) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("USER", 8, true, false),
        col("GROUP", 8, true, false),
        col("PRIO", 4, true, false),
        col("NAME", 15, true, true),
        col("LAST", 15, true, true),
        col("VMS", 15, true, true),
    ];
    let (user, group) = if lo.numeric {
        ("UID", "GID")
    } else {
        ("UNAME", "GNAME")
    };
    let rows = jobs
        .iter()
        .map(|j| {
            let last = text(j, "LAST_BACKUP_TIME").parse::<i64>().unwrap_or(0);
            let mut vms = j
                .child("TEMPLATE")
                .map_or("", |t| text(t, "BACKUP_VMS"))
                .to_string();
            if vms.chars().count() > 15 {
                vms = vms.chars().take(12).collect::<String>() + "...";
            }
            vec![
                text(j, "ID").to_string(),
                text(j, user).to_string(),
                text(j, group).to_string(),
                text(j, "PRIORITY").to_string(),
                text(j, "NAME").to_string(),
                crate::vntemplate::time_to_str(last),
                vms,
            ]
        })
        .collect();
    Table { columns, rows }
}

fn show(client: &Client, oid: i32, xml_out: bool, out: &mut dyn Write) -> Result<(), String> {
    let xml = client
        .call_xml("one.backupjob.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let e = Element::parse(&xml).map_err(|e| e.to_string())?;
    out.write_all(layout(&e).as_bytes())
        .map_err(|e| e.to_string())
}

fn id_list(j: &Element, name: &str) -> String {
    j.child(name)
        .map(|l| {
            l.children_named("ID")
                .map(|i| i.text.clone())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `OpenNebulaHelper.period_to_str`: `<d>d <hh>h<mm>m<ss>s`.
fn period_to_str(secs: i64) -> String {
    let secs = secs.max(0);
    format!(
        "{}d {:02}h{:02}m{:02}s",
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `OneBackupJobHelper#format_resource` (scheduled actions listed by id and time).
fn layout(j: &Element) -> String {
    let mut s = String::new();
    push(&mut s, &format!("BACKUP JOB {} INFORMATION", text(j, "ID")));
    field(&mut s, "ID", text(j, "ID"));
    field(&mut s, "NAME", text(j, "NAME"));
    field(&mut s, "USER", text(j, "UNAME"));
    field(&mut s, "GROUP", text(j, "GNAME"));
    let locked = j.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    field(&mut s, "LOCK", crate::hook::lock_name(locked));
    permissions(j, &mut s);
    s.push('\n');
    push(&mut s, "LAST BACKUP JOB EXECUTION INFORMATION");
    let last = text(j, "LAST_BACKUP_TIME").parse::<i64>().unwrap_or(0);
    field(&mut s, "TIME", &crate::vntemplate::time_to_str(last));
    let duration = text(j, "LAST_BACKUP_DURATION").parse::<i64>().unwrap_or(0);
    field(&mut s, "DURATION", &period_to_str(duration));
    s.push('\n');
    push(&mut s, "VIRTUAL MACHINE BACKUP STATUS");
    field(&mut s, "UPDATED", &id_list(j, "UPDATED_VMS"));
    field(&mut s, "OUTDATED", &id_list(j, "OUTDATED_VMS"));
    field(&mut s, "ONGOING", &id_list(j, "BACKING_UP_VMS"));
    field(&mut s, "ERROR", &id_list(j, "ERROR_VMS"));
    let actions: Vec<&Element> = j
        .child("TEMPLATE")
        .map(|t| t.children_named("SCHED_ACTION").collect())
        .unwrap_or_default();
    if !actions.is_empty() {
        s.push('\n');
        push(&mut s, "SCHEDULED ACTIONS");
        let columns = [
            col("ID", 3, false, false),
            col("ACTION", 15, true, false),
            col("SCHEDULED", 14, false, false),
            col("DONE", 14, false, false),
            col("MESSAGE", 35, true, false),
        ];
        let when = |e: &Element, k: &str| {
            let t = text(e, k).parse::<i64>().unwrap_or(-1);
            if t <= 0 {
                "-".to_string()
            } else {
                crate::vntemplate::time_to_str(t)
            }
        };
        let rows: Vec<Vec<String>> = actions
            .iter()
            .map(|a| {
                vec![
                    text(a, "ID").to_string(),
                    text(a, "ACTION").to_string(),
                    when(a, "TIME"),
                    when(a, "DONE"),
                    text(a, "MESSAGE").to_string(),
                ]
            })
            .collect();
        for line in crate::listing::table(&columns, &rows) {
            push(&mut s, &line);
        }
    }
    s.push('\n');
    push(&mut s, "TEMPLATE CONTENTS");
    puts(&mut s, &template_str(j));
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    const JOB: &str = "<BACKUPJOB><ID>2</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME><NAME>nightly</NAME><PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS><PRIORITY>50</PRIORITY><LAST_BACKUP_TIME>0</LAST_BACKUP_TIME><LAST_BACKUP_DURATION>65</LAST_BACKUP_DURATION><SCHED_ACTIONS></SCHED_ACTIONS><UPDATED_VMS><ID>3</ID><ID>4</ID></UPDATED_VMS><OUTDATED_VMS></OUTDATED_VMS><BACKING_UP_VMS></BACKING_UP_VMS><ERROR_VMS><ID>5</ID></ERROR_VMS><TEMPLATE><BACKUP_VMS><![CDATA[3,4,5,10,11,12,13]]></BACKUP_VMS></TEMPLATE></BACKUPJOB>";

    #[test]
    fn list_shortens_long_vm_lists() {
        let j = Element::parse(JOB).unwrap();
        let t = table(&[&j], &ListOpts::default());
        assert_eq!(t.rows[0][3..], ["50", "nightly", "-", "3,4,5,10,11,..."]);
    }

    #[test]
    fn show_prints_the_vms_by_state() {
        let j = Element::parse(JOB).unwrap();
        let text = layout(&j);
        assert!(text.starts_with("BACKUP JOB 2 INFORMATION\nID             : 2\n"));
        assert!(text.contains("DURATION       : 0d 00h01m05s\n"), "{text}");
        assert!(
            text.contains(
                "UPDATED        : 3,4\nOUTDATED       :\nONGOING        :\nERROR          : 5\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("TEMPLATE CONTENTS\nBACKUP_VMS=\"3,4,5,10,11,12,13\"\n"),
            "{text}"
        );
    }

    #[test]
    fn schedule_times_are_opennebulas() {
        assert_eq!(schedule_time("+60", 1000).unwrap(), "1060");
        assert_eq!(schedule_time("now", 1000).unwrap(), "1000");
        assert_eq!(schedule_time("1800000000", 1000).unwrap(), "1800000000");
        assert!(schedule_time("soon", 1000).is_err());
    }
}
