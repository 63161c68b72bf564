//! `oneimage`: its subcommands (`src/cli/oneimage`), and its layouts as OpenNebula's
//! `OneImageHelper` prints them when the output is not a terminal (no column expands; the
//! padding at the end of a line is left out). Images are named by id or name, several at once
//! where OpenNebula takes a range (`crate::ids`). Times are shown in UTC, as `crate::market`
//! explains. `create`'s template options are in `crate::image_create`.

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{option_id, perform, Family, Resolver, INFO_ALL};
use crate::listing::{col, Column, ListOpts, Table};
use crate::market::{action_args, field, permissions, push, puts, template_str, unit_to_str};
use crate::objects::{err_text, int, text, Kind, Opts};
use crate::vntemplate::time_to_str;
use crate::xml::Element;

/// `Image::IMAGE_TYPES`.
pub(crate) const TYPES: [&str; 7] = [
    "OS",
    "CDROM",
    "DATABLOCK",
    "KERNEL",
    "RAMDISK",
    "CONTEXT",
    "BACKUP",
];
const SHORT_TYPES: [&str; 7] = ["OS", "CD", "DB", "KL", "RD", "CX", "BK"];
/// `Image::SHORT_IMAGE_STATES` over `IMAGE_STATES`.
const SHORT_STATES: [&str; 11] = [
    "init", "rdy", "used", "disa", "lock", "err", "clon", "dele", "used", "lock", "lock",
];

/// oneimage's own options that take a value.
pub(crate) const VALUED: &[&str] = &[
    "--path",
    "--type",
    "--prefix",
    "--target",
    "--format",
    "--fs",
    "--disk_type",
    "--source",
    "--increment",
    "--disk-id",
];

/// The name at index `n`, or nothing (Ruby's `nil`) out of range.
pub(crate) fn nth(names: &[&'static str], n: i64) -> &'static str {
    usize::try_from(n)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or("")
}

/// Runs one `oneimage` subcommand.
pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let kind = Kind::Image;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let one = |i: usize| Resolver::own(client, kind).arg(o.words.get(i), "id");
    let many = || Resolver::own(client, kind).args(o.words.get(1), "id");
    let call = |verb: &str, params: Vec<Value>| {
        client
            .call(&format!("one.image.{verb}"), params)
            .map_err(err_text)
    };
    // `method(id, rest...)` on each id of word 1.
    let each = |ids: Vec<i32>, verb: &str, rest: Vec<Value>| {
        perform(&ids, |oid| {
            let mut params = vec![Value::Int(oid)];
            params.extend(rest.iter().cloned());
            call(verb, params).map(drop)
        })
    };
    match cmd {
        "list" => list(o, client, out),
        "show" => show(client, one(1)?, o.flag(&["-x", "--xml"]), out),
        "create" => crate::image_create::create(o, client, out),
        "clone" => {
            let ds = datastore_option(o, client)?;
            let oid = one(1)?;
            let name = o.words.get(2).ok_or("missing the new name")?;
            let params = vec![
                Value::Int(oid),
                Value::String(name.clone()),
                Value::Int(ds.unwrap_or(-1)),
            ];
            stdout_refusal(
                out,
                call("clone", params).map(|v| format!("ID: {}", id_of(&v))),
            )
        }
        "delete" => each(many()?, "delete", vec![Value::Bool(o.flag(&["--force"]))]),
        "persistent" | "nonpersistent" => each(
            many()?,
            "persistent",
            vec![Value::Bool(cmd == "persistent")],
        ),
        "enable" | "disable" => each(many()?, "enable", vec![Value::Bool(cmd == "enable")]),
        "chtype" => {
            let ids = many()?;
            let wanted = o.words.get(2).ok_or("missing the image type")?;
            let t = wanted.trim().to_uppercase();
            if !TYPES.contains(&t.as_str()) {
                return Err(format!(
                    "Image type not supported. Must be {}.",
                    TYPES.join(", ")
                ));
            }
            each(ids, "chtype", vec![Value::String(t)])
        }
        "update" => crate::owned_ops::execute(Kind::Image, "one.image", cmd, o, client),
        "rename" => {
            let oid = one(1)?;
            let name = o.words.get(2).ok_or("missing the new name")?;
            call("rename", vec![Value::Int(oid), Value::String(name.clone())]).map(drop)
        }
        "chgrp" | "chown" | "chmod" | "lock" | "unlock" => {
            let ids = many()?;
            let (verb, rest) = action_args(cmd, o, client)?;
            each(ids, verb, rest)
        }
        "snapshot-delete" | "snapshot-revert" | "snapshot-flatten" => {
            let oid = one(1)?;
            let snap = snapshot_id(client, oid, o.words.get(2))?;
            let verb = format!("snapshot{}", &cmd["snapshot-".len()..]);
            call(&verb, vec![Value::Int(oid), Value::Int(snap)]).map(drop)
        }
        "restore" => restore(o, client, out),
        "orphans" => orphans(client, out),
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

fn id_of(v: &Value) -> i64 {
    v.as_i64().unwrap_or(-1)
}

/// `-d id|name` (`OneDatastoreHelper::DATASTORE`).
pub(crate) fn datastore_option(o: &Opts, client: &Client) -> Result<Option<i32>, String> {
    option_id(
        client,
        Family::Datastore,
        o.value(&["-d", "--datastore"]),
        "datastore",
    )
}

/// `clone` and `restore` print a refusal on stdout (`puts rc.message`) and exit -1; the error
/// returned is empty so that nothing more is printed.
fn stdout_refusal(out: &mut dyn Write, line: Result<String, String>) -> Result<(), String> {
    let (line, failed) = match line {
        Ok(l) => (l, false),
        Err(e) => (e, true),
    };
    writeln!(out, "{line}").map_err(|e| e.to_string())?;
    if failed {
        Err(String::new())
    } else {
        Ok(())
    }
}

/// `retrieve_snapshot_id`: a number as it is, else the one snapshot of that name.
fn snapshot_id(client: &Client, oid: i32, word: Option<&String>) -> Result<i32, String> {
    let w = word.ok_or("missing the snapshot id")?;
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) {
        return w
            .parse()
            .map_err(|_| format!("{w} not found or duplicated"));
    }
    let xml = client
        .call_xml("one.image.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    let image = Element::parse(&xml).map_err(|e| e.to_string())?;
    let found: Vec<i64> = image
        .child("SNAPSHOTS")
        .into_iter()
        .flat_map(|s| s.children_named("SNAPSHOT"))
        .filter(|s| text(s, "NAME") == w)
        .map(|s| int(s, "ID"))
        .collect();
    match found[..] {
        [one] => i32::try_from(one).map_err(|_| format!("{w} not found or duplicated")),
        _ => Err(format!("{w} not found or duplicated")),
    }
}

/// `restore <id> -d <ds> [--no_nic] [--no_ip] [--name] [--increment] [--disk-id]`.
fn restore(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let ds = datastore_option(o, client)?;
    let integer = |name: &str| -> Result<Option<i64>, String> {
        o.value(&[name])
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("invalid argument: {name} {v}"))
            })
            .transpose()
    };
    let (increment, disk) = (integer("--increment")?, integer("--disk-id")?);
    let oid = Resolver::own(client, Kind::Image).arg(o.words.get(1), "id")?;
    let ds =
        ds.ok_or("Datastore to restore the backup is mandatory: \n\t -d datastore_id | name")?;
    let mut opts = String::new();
    if o.flag(&["--no_nic"]) {
        opts.push_str("NO_NIC=\"YES\"\n");
    }
    if o.flag(&["--no_ip"]) {
        opts.push_str("NO_IP=\"YES\"\n");
    }
    if let Some(name) = o.value(&["--name"]) {
        opts.push_str(&format!("NAME=\"{name}\"\n"));
    }
    if let Some(i) = increment {
        opts.push_str(&format!("INCREMENT_ID=\"{i}\"\n"));
    }
    if let Some(d) = disk {
        opts.push_str(&format!("DISK_ID=\"{d}\"\n"));
    }
    let answer = client
        .call(
            "one.image.restore",
            vec![Value::Int(oid), Value::Int(ds), Value::String(opts)],
        )
        .map_err(err_text);
    let ids = match answer {
        Ok(v) => v.as_str().map(str::to_string).unwrap_or_default(),
        Err(e) => return stdout_refusal(out, Err(e)),
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let mut s = String::new();
    if let Some(t) = ids.first().filter(|t| **t != "-1") {
        push(&mut s, &format!("VM Template: {t}"));
    }
    if ids.len() > 1 {
        push(&mut s, &format!("Images: {}", ids[1..].join(" ")));
    }
    out.write_all(s.as_bytes()).map_err(|e| e.to_string())
}

/// `check_orphans`: the images (backups aside) no VM template's DISK names, by IMAGE_ID or
/// by IMAGE and IMAGE_UNAME; one id a line (Ruby's `puts` of an empty list is one empty line).
fn orphans(client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let pool = |family: Family| -> Result<Element, String> {
        let (method, params) = family.pool_call(INFO_ALL);
        let xml = client.call_xml(method, params).map_err(err_text)?;
        Element::parse(&xml).map_err(|e| e.to_string())
    };
    let (images, templates) = (pool(Family::Image)?, pool(Family::Template)?);
    let disks: Vec<&Element> = templates
        .children_named("VMTEMPLATE")
        .filter_map(|t| t.child("TEMPLATE"))
        .flat_map(|t| t.children_named("DISK"))
        .collect();
    let used = |i: &Element| {
        let id = to_i(text(i, "ID"));
        disks.iter().any(|d| {
            // XPath's `IMAGE_ID = 3` compares numbers.
            let by_id = d
                .text_of("IMAGE_ID")
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|v| v == id as f64);
            let by_name = d.text_of("IMAGE").is_ok_and(|n| n == text(i, "NAME"))
                && d.text_of("IMAGE_UNAME")
                    .is_ok_and(|u| u == text(i, "UNAME"));
            by_id || by_name
        })
    };
    let ids: Vec<&str> = images
        .children_named("IMAGE")
        .filter(|i| to_i(text(i, "TYPE")) != 6 && !used(i))
        .map(|i| text(i, "ID"))
        .collect();
    let mut s = ids.join("\n");
    s.push('\n');
    out.write_all(s.as_bytes()).map_err(|e| e.to_string())
}

/// `list [filterflag]`; `--backup` adds the filter `TYPE=BK`.
fn list(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    if !o.flag(&["--backup"]) {
        return crate::listing::list(Kind::Image, o, client, out);
    }
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let mut filter = None;
    for (f, v) in &o.flags {
        match f.as_str() {
            "--backup" => {}
            "-f" | "--filter" => filter = v.clone(),
            _ => flags.push((f.clone(), v.clone())),
        }
    }
    let filter = match filter.filter(|f| !f.is_empty()) {
        Some(f) => format!("{f},TYPE=BK"),
        None => "TYPE=BK".to_string(),
    };
    flags.push(("--filter".into(), Some(filter)));
    let o = Opts {
        words: o.words.clone(),
        flags,
    };
    crate::listing::list(Kind::Image, &o, client, out)
}

/// `OpenNebulaHelper.unit_to_str` with the list options: `-k` leaves the number as it is.
fn size(mb: i64, lo: &ListOpts) -> String {
    if lo.kilobytes {
        mb.to_string()
    } else {
        unit_to_str(mb, "M")
    }
}

/// `OpenNebulaHelper.boolean_to_str`.
fn yes_no(v: &str) -> &'static str {
    if v.trim().parse::<i64>().unwrap_or(0) == 1 {
        "Yes"
    } else {
        "No"
    }
}

/// One table cell of an object.
pub(crate) type Cell = fn(&Element, &ListOpts) -> String;

/// oneimage.yaml's columns; without `-l`, its default ones: ID USER GROUP NAME DATASTORE SIZE
/// TYPE PERSISTENT STAT RVMS.
pub(crate) fn table(images: &[&Element], lo: &ListOpts) -> Table {
    let all: [(Column, Cell); 12] = [
        (col("ID", 4, false, true), |i, _| text(i, "ID").into()),
        (col("USER", 8, true, false), |i, lo| {
            text(i, if lo.numeric { "UID" } else { "UNAME" }).into()
        }),
        (col("GROUP", 8, true, false), |i, lo| {
            text(i, if lo.numeric { "GID" } else { "GNAME" }).into()
        }),
        (col("NAME", 15, true, false), |i, _| text(i, "NAME").into()),
        (col("DATASTORE", 10, true, false), |i, _| {
            text(i, "DATASTORE").into()
        }),
        (col("SIZE", 7, false, false), |i, lo| {
            size(to_i(text(i, "SIZE")), lo)
        }),
        (col("TYPE", 4, true, false), |i, _| {
            nth(&SHORT_TYPES, to_i(text(i, "TYPE"))).into()
        }),
        (col("REGTIME", 15, false, false), |i, _| {
            time_to_str(to_i(text(i, "REGTIME")))
        }),
        (col("MODTIME", 15, false, false), |i, _| {
            time_to_str(to_i(text(i, "MODTIME")))
        }),
        (col("PERSISTENT", 3, false, false), |i, _| {
            yes_no(text(i, "PERSISTENT")).into()
        }),
        (col("STAT", 4, true, false), |i, _| {
            nth(&SHORT_STATES, to_i(text(i, "STATE"))).into()
        }),
        (col("RVMS", 4, false, false), |i, _| {
            text(i, "RUNNING_VMS").into()
        }),
    ];
    const DEFAULT: [&str; 10] = [
        "ID",
        "USER",
        "GROUP",
        "NAME",
        "DATASTORE",
        "SIZE",
        "TYPE",
        "PERSISTENT",
        "STAT",
        "RVMS",
    ];
    let chosen: Vec<&(Column, Cell)> = all
        .iter()
        .filter(|(c, _)| lo.columns.is_some() || DEFAULT.contains(&c.name))
        .collect();
    Table {
        columns: chosen.iter().map(|(c, _)| *c).collect(),
        rows: images
            .iter()
            .map(|i| chosen.iter().map(|(_, cell)| cell(i, lo)).collect())
            .collect(),
    }
}

/// Ruby's `String#to_i`: the leading integer, 0 when there is none.
pub(crate) fn to_i(s: &str) -> i64 {
    let s = s.trim_start();
    let (sign, digits) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    sign * digits[..end].parse::<i64>().unwrap_or(0)
}

fn show(client: &Client, oid: i32, xml_out: bool, out: &mut dyn Write) -> Result<(), String> {
    let xml = client
        .call_xml("one.image.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let image = Element::parse(&xml).map_err(|e| e.to_string())?;
    let mut s = layout(&image);
    let vms: Vec<i64> = image
        .child("VMS")
        .map(|v| v.children_named("ID").map(|i| to_i(&i.text)).collect())
        .unwrap_or_default();
    if !vms.is_empty() && to_i(text(&image, "TYPE")) != 6 {
        // `onevm list` of the VMs using it.
        push(&mut s, "");
        push(&mut s, "VIRTUAL MACHINES");
        push(&mut s, "");
        for line in vm_table(client, &vms)? {
            push(&mut s, &line);
        }
    }
    out.write_all(s.as_bytes()).map_err(|e| e.to_string())
}

/// The lines of `onevm list` restricted to `vms`.
fn vm_table(client: &Client, vms: &[i64]) -> Result<Vec<String>, String> {
    let (method, params) = Family::Vm.pool_call(INFO_ALL);
    let xml = client.call_xml(method, params).map_err(err_text)?;
    let pool = Element::parse(&xml).map_err(|e| e.to_string())?;
    Ok(vm_lines(&pool, vms))
}

/// `pool`'s VMs that are in `vms`, as `onevm list` prints them.
fn vm_lines(pool: &Element, vms: &[i64]) -> Vec<String> {
    let chosen = Element {
        name: pool.name.clone(),
        text: String::new(),
        children: pool
            .children
            .iter()
            .filter(|v| vms.contains(&to_i(text(v, "ID"))))
            .cloned()
            .collect(),
    };
    let t = crate::tables::pool_table(Kind::Vm, &chosen, &ListOpts::default());
    crate::listing::table(&t.columns, &t.rows)
}

/// `OneImageHelper#format_resource`, up to the VMs using the image (which need the VM pool).
pub(crate) fn layout(i: &Element) -> String {
    let mut s = String::new();
    push(&mut s, &format!("IMAGE {} INFORMATION", text(i, "ID")));
    field(&mut s, "ID", text(i, "ID"));
    field(&mut s, "NAME", text(i, "NAME"));
    field(&mut s, "USER", text(i, "UNAME"));
    field(&mut s, "GROUP", text(i, "GNAME"));
    let locked = i.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    field(&mut s, "LOCK", crate::hook::lock_name(locked));
    field(&mut s, "DATASTORE", text(i, "DATASTORE"));
    let kind = to_i(text(i, "TYPE"));
    field(&mut s, "TYPE", nth(&TYPES, kind));
    field(
        &mut s,
        "REGISTER TIME",
        &time_to_str(to_i(text(i, "REGTIME"))),
    );
    field(
        &mut s,
        "LAST MODIFIED",
        &time_to_str(to_i(text(i, "MODTIME"))),
    );
    field(&mut s, "PERSISTENT", yes_no(text(i, "PERSISTENT")));
    field(&mut s, "SOURCE", text(i, "SOURCE"));
    for (name, value) in [("PATH", "PATH"), ("FORMAT", "FORMAT")] {
        if !text(i, value).is_empty() {
            field(&mut s, name, text(i, value));
        }
    }
    field(&mut s, "SIZE", &unit_to_str(to_i(text(i, "SIZE")), "M"));
    field(&mut s, "STATE", nth(&SHORT_STATES, to_i(text(i, "STATE"))));
    field(&mut s, "RUNNING_VMS", text(i, "RUNNING_VMS"));
    s.push('\n');
    permissions(i, &mut s);
    let snapshots: Vec<&Element> = i
        .child("SNAPSHOTS")
        .map(|x| x.children_named("SNAPSHOT").collect())
        .unwrap_or_default();
    if !snapshots.is_empty() {
        s.push('\n');
        push(&mut s, "IMAGE SNAPSHOTS");
        for line in snapshot_table(&snapshots) {
            push(&mut s, &line);
        }
    }
    s.push('\n');
    push(&mut s, "IMAGE TEMPLATE");
    puts(&mut s, &template_str(i));
    let vms: Vec<&Element> = i
        .child("VMS")
        .map(|v| v.children_named("ID").collect())
        .unwrap_or_default();
    if kind == 6 && !vms.is_empty() {
        push(&mut s, "BACKUP INFORMATION");
        field(&mut s, "VM", &vms[0].text);
        let increments: Vec<&Element> = i
            .child("BACKUP_INCREMENTS")
            .map(|x| x.children_named("INCREMENT").collect())
            .unwrap_or_default();
        if increments.is_empty() {
            field(&mut s, "TYPE", "FULL");
        } else {
            field(&mut s, "TYPE", "INCREMENTAL");
            s.push('\n');
            push(&mut s, "BACKUP INCREMENTS");
            for line in increment_table(&increments) {
                push(&mut s, &line);
            }
        }
    }
    s
}

/// A size in MB, `-` without one.
fn size_or_dash(e: &Element) -> String {
    match e.text_of("SIZE") {
        Ok(v) => unit_to_str(to_i(v), "M"),
        Err(_) => "-".into(),
    }
}

/// `format_snapshots`: AC ID PARENT DATE SIZE NAME.
fn snapshot_table(snapshots: &[&Element]) -> Vec<String> {
    let columns = [
        col("AC", 2, true, false),
        col("ID", 3, false, false),
        col("PARENT", 6, false, false),
        col("DATE", 15, false, false),
        col("SIZE", 8, true, false),
        col("NAME", 37, true, false),
    ];
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|d| {
            let active = if text(d, "ACTIVE") == "YES" { "=>" } else { "" };
            vec![
                active.into(),
                text(d, "ID").into(),
                text(d, "PARENT").into(),
                time_to_str(to_i(text(d, "DATE"))),
                size_or_dash(d),
                text(d, "NAME").into(),
            ]
        })
        .collect();
    crate::listing::table(&columns, &rows)
}

/// `format_backup_increments`: ID PID TYPE SIZE DATE SOURCE.
fn increment_table(increments: &[&Element]) -> Vec<String> {
    let columns = [
        col("ID", 3, false, false),
        col("PID", 3, false, false),
        col("TYPE", 1, false, false),
        col("SIZE", 8, true, false),
        col("DATE", 15, false, false),
        col("SOURCE", 37, true, false),
    ];
    let rows: Vec<Vec<String>> = increments
        .iter()
        .map(|d| {
            vec![
                text(d, "ID").into(),
                text(d, "PARENT_ID").into(),
                text(d, "TYPE").chars().take(1).collect(),
                size_or_dash(d),
                time_to_str(to_i(text(d, "DATE"))),
                text(d, "SOURCE").into(),
            ]
        })
        .collect();
    crate::listing::table(&columns, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = "<IMAGE><ID>3</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>\
        <GNAME>oneadmin</GNAME><NAME>base</NAME><LOCK><LOCKED>2</LOCKED></LOCK>\
        <PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>\
        <GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U>\
        <OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS><TYPE>0</TYPE>\
        <PERSISTENT>1</PERSISTENT><REGTIME>1700000000</REGTIME><MODTIME>0</MODTIME>\
        <SOURCE>/var/lib/one//datastores/1/3</SOURCE><PATH></PATH><FORMAT>qcow2</FORMAT>\
        <SIZE>2048</SIZE><STATE>8</STATE><RUNNING_VMS>1</RUNNING_VMS>\
        <DATASTORE>default</DATASTORE><VMS><ID>7</ID></VMS>\
        <TEMPLATE><DEV_PREFIX><![CDATA[sd]]></DEV_PREFIX></TEMPLATE>\
        <SNAPSHOTS><ALLOW_ORPHANS>NO</ALLOW_ORPHANS><SNAPSHOT><ACTIVE>YES</ACTIVE>\
        <DATE>1700000000</DATE><ID>0</ID><NAME>before upgrade</NAME><PARENT>-1</PARENT>\
        <SIZE>2048</SIZE></SNAPSHOT><SNAPSHOT><DATE>1700000060</DATE><ID>1</ID>\
        <NAME>s1</NAME><PARENT>0</PARENT></SNAPSHOT></SNAPSHOTS></IMAGE>";

    #[test]
    fn show_prints_opennebulas_layout_with_snapshots() {
        let i = Element::parse(IMAGE).unwrap();
        assert_eq!(
            layout(&i),
            "IMAGE 3 INFORMATION\n\
             ID             : 3\n\
             NAME           : base\n\
             USER           : oneadmin\n\
             GROUP          : oneadmin\n\
             LOCK           : Manage\n\
             DATASTORE      : default\n\
             TYPE           : OS\n\
             REGISTER TIME  : 11/14 22:13:20\n\
             LAST MODIFIED  : -\n\
             PERSISTENT     : Yes\n\
             SOURCE         : /var/lib/one//datastores/1/3\n\
             FORMAT         : qcow2\n\
             SIZE           : 2G\n\
             STATE          : used\n\
             RUNNING_VMS    : 1\n\
             \n\
             PERMISSIONS\n\
             OWNER          : um-\n\
             GROUP          : ---\n\
             OTHER          : ---\n\
             \n\
             IMAGE SNAPSHOTS\n\
             AC  ID PARENT            DATE SIZE     NAME\n\
             =>   0     -1  11/14 22:13:20 2G       before upgrade\n     \
             1      0  11/14 22:14:20 -        s1\n\
             \n\
             IMAGE TEMPLATE\n\
             DEV_PREFIX=\"sd\"\n"
        );
    }

    #[test]
    fn the_table_has_opennebulas_default_columns() {
        let i = Element::parse(IMAGE).unwrap();
        let t = table(&[&i], &ListOpts::default());
        assert_eq!(
            crate::listing::table(&t.columns, &t.rows),
            [
                "  ID USER     GROUP    NAME            DATASTORE     SIZE TYPE PER STAT RVMS",
                "   3 oneadmin oneadmin base            default         2G OS   Yes used    1"
            ]
        );
        let lo = ListOpts {
            columns: Some(vec!["MODTIME".into()]),
            kilobytes: true,
            ..ListOpts::default()
        };
        let t = table(&[&i], &lo);
        assert_eq!(t.columns.len(), 12);
        assert_eq!(t.rows[0][5], "2048");
    }

    #[test]
    fn the_vms_section_lists_only_the_images_vms() {
        let pool = Element::parse(
            "<VM_POOL><VM><ID>7</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>\
             <GNAME>oneadmin</GNAME><NAME>web</NAME><STATE>1</STATE><LCM_STATE>0</LCM_STATE>\
             <TEMPLATE><CPU>1</CPU><MEMORY>64</MEMORY></TEMPLATE></VM><VM><ID>8</ID>\
             <NAME>db</NAME></VM></VM_POOL>",
        )
        .unwrap();
        let lines = vm_lines(&pool, &[7]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("    ID USER"), "{lines:?}");
        assert!(
            lines[1].starts_with("     7 oneadmin oneadmin web"),
            "{lines:?}"
        );
        assert!(lines[1].contains(" pend "), "{lines:?}");
    }

    #[test]
    fn states_and_types_have_opennebulas_short_names() {
        assert_eq!(nth(&SHORT_STATES, 1), "rdy");
        assert_eq!(nth(&SHORT_STATES, 10), "lock");
        assert_eq!(nth(&SHORT_STATES, 11), "");
        assert_eq!(nth(&SHORT_TYPES, 2), "DB");
        assert_eq!(to_i("12ab"), 12);
        assert_eq!(to_i(""), 0);
    }
}
