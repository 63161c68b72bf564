//! `onemarket` and `onemarketapp`: their subcommands, and their layouts as OpenNebula's
//! `OneMarketPlaceHelper` and `OneMarketPlaceAppHelper` print them when the output is not a
//! terminal (no column expands; the padding at the end of a line is left out). `export` is
//! OpenNebula's `MarketPlaceAppExt#export` for IMAGE apps: the image from the app, then the
//! VM template the app carries.
//!
//! Objects are named by id or name, several at once (`1..3`, `web,4`) where OpenNebula takes
//! a range (`crate::ids`).
//! Times are shown in UTC: OpenNebula uses the local zone, which would need a time zone
//! database this tool does not carry.

use std::io::Write;

use template::{Template, Value as TValue};
use xmlrpc::Value;

use crate::client::Client;
use crate::hook::{civil, decode64, lock_name};
use crate::ids::{option_id, Family, Resolver};
use crate::listing::{col, Table};
use crate::objects::{err_text, file_text, id, text, Kind, Opts};
use crate::xml::Element;

/// Runs one `onemarket` or `onemarketapp` subcommand.
pub(crate) fn execute(
    kind: Kind,
    o: &Opts,
    client: &Client,
    out: &mut dyn Write,
) -> Result<(), String> {
    let app = kind == Kind::MarketApp;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    match cmd {
        "list" => crate::listing::list(kind, o, client, out),
        "show" => {
            let oid = Resolver::own(client, kind).arg(o.words.get(1), "id")?;
            show(kind, client, oid, o.flag(&["-x", "--xml"]), out)
        }
        "create" if app => create_app(o, client, out),
        "create" => {
            let v = client
                .call(
                    "one.market.allocate",
                    vec![Value::String(file_text(o.words.get(1))?)],
                )
                .map_err(err_text)?;
            say_id(out, &v)
        }
        "export" if app => export(o, client, out),
        "update" | "rename" | "delete" | "chgrp" | "chown" | "chmod" | "enable" | "disable" => {
            crate::owned_ops::execute(kind, prefix(kind), cmd, o, client)
        }
        "lock" | "unlock" if app => crate::owned_ops::execute(kind, prefix(kind), cmd, o, client),
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

/// The method prefix of the command's family.
fn prefix(kind: Kind) -> &'static str {
    if kind == Kind::MarketApp {
        "one.marketapp"
    } else {
        "one.market"
    }
}

/// The call and the arguments after the id of each command on a list of objects.
pub(crate) fn action_args(
    cmd: &str,
    o: &Opts,
    client: &Client,
) -> Result<(&'static str, Vec<Value>), String> {
    let (w2, w3) = (o.words.get(2), o.words.get(3));
    let group = |w| Resolver::other(client, Family::Group).arg(w, "group id");
    Ok(match cmd {
        "chgrp" => ("chown", vec![Value::Int(-1), Value::Int(group(w2)?)]),
        "chown" => {
            let user = Resolver::other(client, Family::User).arg(w2, "user id")?;
            let group = if w3.is_some() { group(w3)? } else { -1 };
            ("chown", vec![Value::Int(user), Value::Int(group)])
        }
        "chmod" => {
            let octet = to_octet(w2.ok_or("missing the permissions octet")?)?;
            ("chmod", chmod_bits(&octet).map(Value::Int).to_vec())
        }
        "enable" | "disable" => ("enable", vec![Value::Bool(cmd == "enable")]),
        "lock" => {
            // onemarketapp's levels, the first flag given winning in this order; USE by default.
            let level = [("--use", 1), ("--manage", 2), ("--admin", 3), ("--all", 4)]
                .into_iter()
                .find(|(flag, _)| o.flag(&[flag]))
                .map_or(1, |(_, level)| level);
            ("lock", vec![Value::Int(level), Value::Bool(false)])
        }
        "unlock" => ("unlock", vec![]),
        _ => ("delete", vec![]),
    })
}

fn say_id(out: &mut dyn Write, v: &Value) -> Result<(), String> {
    writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
}

/// Ruby's `String#to_i`: the leading integer, 0 when there is none.
fn to_i(s: &str) -> i64 {
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

fn int(e: &Element, name: &str) -> i64 {
    to_i(text(e, name))
}

/// `OpenNebulaHelper.unit_to_str`: divided by 1024 while above 1024 (so 1024M stays `1024M`
/// and 1025M is `1G`), one decimal, none when it is 0.
pub fn unit_to_str(value: i64, unit: &str) -> String {
    const SUFFIX: [&str; 4] = ["K", "M", "G", "T"];
    // Ruby's `index(unit).to_i`: an unknown unit counts as K.
    let mut i = SUFFIX.iter().position(|s| *s == unit).unwrap_or(0);
    if value <= 1024 || i >= 3 {
        return format!("{value}{}", SUFFIX[i]);
    }
    let mut v = value as f64;
    while v > 1024.0 && i < 3 {
        v /= 1024.0;
        i += 1;
    }
    let v = (v * 10.0).round() / 10.0;
    if v == v.round() {
        format!("{}{}", v as i64, SUFFIX[i])
    } else {
        format!("{v}{}", SUFFIX[i])
    }
}

const MARKET_STATES: [&str; 2] = ["ENABLED", "DISABLED"];
const APP_STATES: [&str; 5] = ["ini", "rdy", "lck", "err", "dis"];
const APP_TYPES: [&str; 4] = ["UNKNOWN", "IMAGE", "VMTEMPLATE", "SERVICE_TEMPLATE"];
const APP_SHORT_TYPES: [&str; 4] = ["unk", "img", "tpl", "srv"];

/// The name at index `n`, or nothing (Ruby's `nil`) out of range.
fn nth(names: &[&'static str], n: i64) -> &'static str {
    usize::try_from(n)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or("")
}

/// The proleptic Gregorian date and the time of day of `epoch`, in UTC.
pub(crate) fn utc(epoch: i64) -> ((i64, i64, i64), (i64, i64, i64)) {
    let secs = epoch.rem_euclid(86_400);
    (
        civil(epoch.div_euclid(86_400)),
        (secs / 3600, secs % 3600 / 60, secs % 60),
    )
}

/// `strftime('%D')`: `mm/dd/yy`.
fn date_short(epoch: i64) -> String {
    let ((y, m, d), _) = utc(epoch);
    format!("{m:02}/{d:02}/{:02}", y.rem_euclid(100))
}

/// `strftime('%c')`: `Mon Nov 30 19:45:17 2026`, the day padded with a space.
fn date_long(epoch: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ((y, mo, d), (h, mi, s)) = utc(epoch);
    let weekday = DAYS[epoch.div_euclid(86_400).rem_euclid(7) as usize];
    let month = MONTHS[(mo - 1).clamp(0, 11) as usize];
    format!("{weekday} {month} {d:2} {h:02}:{mi:02}:{s:02} {y}")
}

/// onemarket.yaml's default columns over the helper's: ID NAME SIZE AVAIL APPS MAD ZONE STAT.
pub(crate) fn market_table(markets: &[&Element]) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("NAME", 15, true, false),
        col("SIZE", 10, false, false),
        col("AVAIL", 10, true, false),
        col("APPS", 6, false, false),
        col("MAD", 7, true, false),
        col("ZONE", 4, false, false),
        col("STAT", 4, true, false),
    ];
    let rows: Vec<Vec<String>> = markets
        .iter()
        .map(|m| {
            let total = int(m, "TOTAL_MB");
            let avail = if total == 0 {
                "-".to_string()
            } else {
                let pct = (int(m, "FREE_MB") as f64 / total as f64 * 100.0).round() as i64;
                format!("{pct}%")
            };
            let apps = m
                .child("MARKETPLACEAPPS")
                .map_or(0, |a| a.children_named("ID").count());
            vec![
                text(m, "ID").to_string(),
                text(m, "NAME").to_string(),
                unit_to_str(total, "M"),
                avail,
                apps.to_string(),
                text(m, "MARKET_MAD").to_string(),
                text(m, "ZONE_ID").to_string(),
                nth(&["on", "off"], int(m, "STATE")).to_string(),
            ]
        })
        .collect();
    Table { columns, rows }
}

/// onemarketapp.yaml's default columns over the helper's: ID NAME VERSION SIZE ARCH HYPERVISOR
/// STAT TYPE REGTIME MARKET ZONE.
pub(crate) fn app_table(apps: &[&Element]) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("NAME", 20, true, false),
        col("VERSION", 10, false, false),
        col("SIZE", 5, false, false),
        col("ARCH", 7, false, false),
        col("HYPERVISOR", 10, true, false),
        col("STAT", 4, false, false),
        col("TYPE", 4, false, false),
        col("REGTIME", 8, false, false),
        col("MARKET", 10, true, false),
        col("ZONE", 4, false, false),
    ];
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            let t = |name: &str| a.child("TEMPLATE").map_or("", |t| text(t, name));
            vec![
                text(a, "ID").to_string(),
                text(a, "NAME").to_string(),
                text(a, "VERSION").to_string(),
                unit_to_str(int(a, "SIZE"), "M"),
                t("ARCHITECTURE").to_string(),
                t("HYPERVISOR").to_string(),
                nth(&APP_STATES, int(a, "STATE")).to_string(),
                nth(&APP_SHORT_TYPES, int(a, "TYPE")).to_string(),
                date_short(int(a, "REGTIME")),
                text(a, "MARKETPLACE").to_string(),
                text(a, "ZONE_ID").to_string(),
            ]
        })
        .collect();
    Table { columns, rows }
}

/// `show`: the object in its own layout, or (`-x`) as XML.
pub(crate) fn show(
    kind: Kind,
    client: &Client,
    oid: i32,
    xml_out: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let method = if kind == Kind::MarketApp {
        "one.marketapp.info"
    } else {
        "one.market.info"
    };
    let xml = client
        .call_xml(method, vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let e = Element::parse(&xml).map_err(|e| e.to_string())?;
    let s = if kind == Kind::MarketApp {
        app_layout(&e)
    } else {
        market_layout(&e)
    };
    out.write_all(s.as_bytes()).map_err(|e| e.to_string())
}

/// Appends `line` and a line break, without the padding at its end.
pub(crate) fn push(s: &mut String, line: &str) {
    s.push_str(line.trim_end());
    s.push('\n');
}

/// A `%-15s: %-20s` row.
pub(crate) fn field(s: &mut String, name: &str, value: &str) {
    push(s, &format!("{name:<15}: {value}"));
}

/// Ruby's `puts` of `text`: one line break at its end, and an empty text is an empty line.
pub(crate) fn puts(s: &mut String, text: &str) {
    s.push_str(text);
    if !text.ends_with('\n') {
        s.push('\n');
    }
}

/// The OWNER, GROUP and OTHER rows, as `um-`.
pub(crate) fn permissions(e: &Element, s: &mut String) {
    push(s, "PERMISSIONS");
    let p = e.child("PERMISSIONS");
    for who in ["OWNER", "GROUP", "OTHER"] {
        let mask: String = [('U', 'u'), ('M', 'm'), ('A', 'a')]
            .iter()
            .map(|(bit, c)| {
                let on = p.is_some_and(|p| text(p, &format!("{who}_{bit}")) == "1");
                if on {
                    *c
                } else {
                    '-'
                }
            })
            .collect();
        field(s, who, &mask);
    }
}

/// `XMLElement#template_str`: `KEY="value"` lines, a vector as `KEY=[\n  A="x",\n  B="y" ]`;
/// attributes without text are left out.
pub(crate) fn template_str(e: &Element) -> String {
    let quoted = |v: &str| format!("\"{}\"", v.replace('"', "\\\""));
    let Some(t) = e.child("TEMPLATE") else {
        return String::new();
    };
    let lines: Vec<String> = t
        .children
        .iter()
        .filter_map(|a| {
            if a.children.is_empty() {
                (!a.text.is_empty()).then(|| format!("{}={}", a.name, quoted(&a.text)))
            } else {
                let inner: Vec<String> = a
                    .children
                    .iter()
                    .filter(|p| !p.text.is_empty())
                    .map(|p| format!("  {}={}", p.name, quoted(&p.text)))
                    .collect();
                Some(format!("{}=[\n{} ]", a.name, inner.join(",\n")))
            }
        })
        .collect();
    lines.join("\n")
}

/// `OneMarketPlaceHelper#format_resource`.
fn market_layout(m: &Element) -> String {
    let mut s = String::new();
    push(
        &mut s,
        &format!("MARKETPLACE {} INFORMATION", text(m, "ID")),
    );
    field(&mut s, "ID", text(m, "ID"));
    field(&mut s, "NAME", text(m, "NAME"));
    field(&mut s, "USER", text(m, "UNAME"));
    field(&mut s, "GROUP", text(m, "GNAME"));
    field(&mut s, "STATE", nth(&MARKET_STATES, int(m, "STATE")));
    field(&mut s, "MARKET_MAD", text(m, "MARKET_MAD"));
    s.push('\n');
    push(&mut s, "MARKETPLACE CAPACITY");
    for (name, value) in [
        ("TOTAL:", "TOTAL_MB"),
        ("FREE:", "FREE_MB"),
        ("USED: ", "USED_MB"),
    ] {
        field(&mut s, name, &unit_to_str(int(m, value), "M"));
    }
    s.push('\n');
    permissions(m, &mut s);
    s.push('\n');
    push(&mut s, "MARKETPLACE TEMPLATE");
    puts(&mut s, &template_str(m));
    s.push('\n');
    push(&mut s, "MARKETAPPS");
    if let Some(apps) = m.child("MARKETPLACEAPPS") {
        for a in apps.children_named("ID") {
            push(&mut s, &a.text);
        }
    }
    s
}

/// `OneMarketPlaceAppHelper#format_resource`.
fn app_layout(a: &Element) -> String {
    let mut s = String::new();
    push(
        &mut s,
        &format!("MARKETPLACE APP {} INFORMATION", text(a, "ID")),
    );
    field(&mut s, "ID", text(a, "ID"));
    field(&mut s, "NAME", text(a, "NAME"));
    field(&mut s, "TYPE", nth(&APP_TYPES, int(a, "TYPE")));
    field(&mut s, "USER", text(a, "UNAME"));
    field(&mut s, "GROUP", text(a, "GNAME"));
    field(&mut s, "MARKETPLACE", text(a, "MARKETPLACE"));
    field(&mut s, "STATE", nth(&APP_STATES, int(a, "STATE")));
    let locked = a.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    field(&mut s, "LOCK", lock_name(locked));
    s.push('\n');
    permissions(a, &mut s);
    s.push('\n');
    push(&mut s, "DETAILS");
    field(&mut s, "SOURCE", text(a, "SOURCE"));
    field(&mut s, "MD5", text(a, "MD5"));
    field(&mut s, "PUBLISHER", text(a, "PUBLISHER"));
    field(&mut s, "REGISTER TIME", &date_long(int(a, "REGTIME")));
    field(&mut s, "VERSION", text(a, "VERSION"));
    field(&mut s, "DESCRIPTION", text(a, "DESCRIPTION"));
    field(&mut s, "SIZE", &unit_to_str(int(a, "SIZE"), "M"));
    field(&mut s, "ORIGIN_ID", text(a, "ORIGIN_ID"));
    field(&mut s, "FORMAT", text(a, "FORMAT"));
    s.push('\n');
    push(&mut s, "IMPORT TEMPLATE");
    let import = decode64(text(a, "APPTEMPLATE64"));
    puts(&mut s, &String::from_utf8_lossy(&import));
    s.push('\n');
    push(&mut s, "MARKETPLACE APP TEMPLATE");
    puts(&mut s, &template_str(a));
    s.push('\n');
    s
}

/// `value` as a double-quoted template string. OpenNebula's CLI puts it between quotes as it
/// is; escaping keeps a quote or backslash in a name from breaking the template.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `onemarketapp create`: from a template file, or from `--name`, `--description` and
/// `--image` (`--dry` prints that template).
fn create_app(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    // The option procs (`rname_to_id`) run before the command, as OpenNebula's parser does.
    let market = option_id(
        client,
        Family::Market,
        o.value(&["-m", "--marketplace"]),
        "marketplace",
    )?;
    let image = option_id(client, Family::Image, o.value(&["--image"]), "image")?;
    let Some(market) = market else {
        return Err("Marketplace to save the app is mandatory: \n\t -m marketplace_id".into());
    };
    let mut conflicting: Vec<&str> = Vec::new();
    for (flag, _) in &o.flags {
        let name = match flag.as_str() {
            "--name" => "name",
            "--description" => "description",
            "--image" => "image",
            "--dry" => "dry",
            _ => continue,
        };
        if !conflicting.contains(&name) {
            conflicting.push(name);
        }
    }
    let text = match o.words.get(1) {
        Some(_) if !conflicting.is_empty() => {
            return Err(format!(
                "You cannot pass template on STDIN and use template creation options, conflicting options: {}.",
                conflicting.join(", ")
            ));
        }
        Some(file) => file_text(Some(file))?,
        None => {
            let mut t = String::new();
            for (flag, key) in [("--name", "NAME"), ("--description", "DESCRIPTION")] {
                if let Some(v) = o.value(&[flag]) {
                    t.push_str(&format!("{key}={}\n", quote(&v)));
                }
            }
            if let Some(image) = image {
                t.push_str(&format!("ORIGIN_ID={image}\n"));
            }
            t.push_str("TYPE=image\n");
            t
        }
    };
    if o.flag(&["--dry"]) {
        return write!(
            out,
            "{text}{}",
            if text.ends_with('\n') { "" } else { "\n" }
        )
        .map_err(|e| e.to_string());
    }
    let v = client
        .call(
            "one.marketapp.allocate",
            vec![Value::String(text), Value::Int(market)],
        )
        .map_err(err_text)?;
    say_id(out, &v)
}

/// What `export` made, in OpenNebula's order: `IMAGE` then `VMTEMPLATE`, each an id or the
/// refusal that stops the listing.
type Made = Vec<(&'static str, Result<i64, String>)>;

/// `export`'s options, read before anything is made, as OpenNebula's option parser does.
struct ExportOpts {
    file_ds: Option<i32>,
    template: Option<i32>,
    vmname: Option<String>,
    no_template: bool,
}

/// `onemarketapp export <app> <name> -d <datastore>`.
fn export(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let datastore =
        |flags: &[&str], name| option_id(client, Family::Datastore, o.value(flags), name);
    let ds = datastore(&["-d", "--datastore"], "datastore")?;
    let opts = ExportOpts {
        file_ds: datastore(&["--file-datastore"], "file_datastore")?,
        template: o
            .value(&["--template"])
            .map(|t| id(Some(&t), "template id"))
            .transpose()?,
        vmname: o.value(&["--vmname"]),
        no_template: o.flag(&["--no"]),
    };
    let app_id = Resolver::own(client, Kind::MarketApp).arg(o.words.get(1), "id")?;
    let xml = client
        .call_xml("one.marketapp.info", vec![Value::Int(app_id)])
        .map_err(err_text)?;
    let app = Element::parse(&xml).map_err(|e| e.to_string())?;
    if int(&app, "STATE") != 1 {
        return Err("App is not READY".into());
    }
    let ds = ds.ok_or("Missing datastore id")?;
    let name = o.words.get(2).ok_or("Missing name to export app")?;
    let made = match int(&app, "TYPE") {
        1 => export_image(&opts, client, &app, ds, name)?,
        t @ (2 | 3) => {
            return Err(format!(
                "Exporting {} apps is not supported by this onemarketapp",
                nth(&APP_TYPES, t)
            ))
        }
        t => return Err(format!("App type {} not supported", nth(&APP_TYPES, t))),
    };
    for (key, result) in made {
        writeln!(out, "{key}").map_err(|e| e.to_string())?;
        let oid = result?;
        writeln!(out, "    ID: {oid}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `MarketPlaceAppExt#export_image`: the image (`FROM_APP`), then, when the app carries a
/// VMTEMPLATE64 and `--no` is not given, a VM template using it (or `--template`'s clone).
fn export_image(
    o: &ExportOpts,
    client: &Client,
    app: &Element,
    ds: i32,
    name: &str,
) -> Result<Made, String> {
    let mut tmpl = String::from_utf8_lossy(&decode64(text(app, "APPTEMPLATE64"))).into_owned();
    // OpenNebula appends right after the decoded text; a line break keeps an import template
    // without a final one from running into NAME.
    if !tmpl.is_empty() && !tmpl.ends_with('\n') {
        tmpl.push('\n');
    }
    tmpl.push_str(&format!(
        "NAME     = {}\nFROM_APP = \"{}\"\n",
        quote(name),
        text(app, "ID")
    ));
    let mut dsid = ds;
    if holds_files(&tmpl) {
        dsid = match o.file_ds {
            Some(f) => f,
            None => match first_file_datastore(client) {
                Ok(f) => f,
                Err(e) => return Ok(vec![("IMAGE", Err(e))]),
            },
        };
    }
    let image = match client.call(
        "one.image.allocate",
        vec![Value::String(tmpl.clone()), Value::Int(dsid)],
    ) {
        Ok(v) => v.as_i64().unwrap_or(-1),
        Err(e) => return Ok(vec![("IMAGE", Err(err_text(e)))]),
    };
    drop_format_and_driver(client, image);
    let mut made: Made = vec![("IMAGE", Ok(image))];

    let vmtemplate64 = app.child("TEMPLATE").and_then(|t| t.child("VMTEMPLATE64"));
    let Some(vmtemplate64) = vmtemplate64 else {
        return Ok(made);
    };
    if o.no_template || o.template == Some(-1) {
        return Ok(made);
    }
    let vm_name = o.vmname.clone().unwrap_or_else(|| name.to_string());
    let tail = format!(
        "\nNAME = {}\nDISK = [ IMAGE_ID = \"{image}\" ]\n",
        quote(&vm_name)
    );
    let template = match o.template {
        Some(t) if t < 0 => return Err("Invalid option, template_id must be a valid ID".into()),
        Some(t) => client
            .call(
                "one.template.clone",
                vec![
                    Value::Int(t),
                    Value::String(vm_name.clone()),
                    Value::Bool(false),
                ],
            )
            .map_err(err_text)
            .map(|v| {
                let new = v.as_i64().unwrap_or(-1);
                // As OpenNebula, the clone is merged with the image's template and the disk;
                // its answer is not looked at.
                let _ = client.call(
                    "one.template.update",
                    vec![
                        Value::Int(i32::try_from(new).unwrap_or(-1)),
                        Value::String(format!("{tmpl}{tail}")),
                        Value::Int(1),
                    ],
                );
                new
            }),
        None => {
            let vm = String::from_utf8_lossy(&decode64(&vmtemplate64.text)).into_owned();
            client
                .call(
                    "one.template.allocate",
                    vec![Value::String(format!("{vm}{tail}"))],
                )
                .map(|v| v.as_i64().unwrap_or(-1))
                .map_err(err_text)
        }
    };
    made.push(("VMTEMPLATE", template));
    Ok(made)
}

/// OpenNebula's `/^\s*TYPE\s*=\s*KERNEL|CONTEXT\s/i`: a KERNEL image, or CONTEXT followed by
/// a blank anywhere; such images go to a files datastore.
fn holds_files(tmpl: &str) -> bool {
    let up = tmpl.to_ascii_uppercase();
    let b = up.as_bytes();
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let skip = |mut i: usize| {
        while i < b.len() && blank(b[i]) {
            i += 1;
        }
        i
    };
    let kernel_at = |start: usize| {
        let i = skip(start);
        if !b[i..].starts_with(b"TYPE") {
            return false;
        }
        let i = skip(i + 4);
        if b.get(i) != Some(&b'=') {
            return false;
        }
        b[skip(i + 1)..].starts_with(b"KERNEL")
    };
    let line_starts = std::iter::once(0).chain(
        b.iter()
            .enumerate()
            .filter_map(|(i, &c)| (c == b'\n').then_some(i + 1)),
    );
    let kernel = { line_starts }.any(kernel_at);
    let context = up
        .match_indices("CONTEXT")
        .any(|(i, w)| b.get(i + w.len()).is_some_and(|&c| blank(c)));
    kernel || context
}

/// The first files datastore (TYPE 2) in the pool.
fn first_file_datastore(client: &Client) -> Result<i32, String> {
    let xml = client
        .call_xml("one.datastorepool.info", vec![])
        .map_err(err_text)?;
    let pool = Element::parse(&xml).map_err(|e| e.to_string())?;
    let found = pool
        .children_named("DATASTORE")
        .find(|d| int(d, "TYPE") == 2)
        .and_then(|d| i32::try_from(int(d, "ID")).ok());
    found.ok_or_else(|| "There is no files datastore for a KERNEL or CONTEXT image".to_string())
}

/// The new image's template without FORMAT and DRIVER, as OpenNebula's export leaves it. Its
/// answers are not looked at, as OpenNebula's: the image is made either way.
fn drop_format_and_driver(client: &Client, image: i64) {
    let Ok(oid) = i32::try_from(image) else {
        return;
    };
    let Ok(xml) = client.call_xml("one.image.info", vec![Value::Int(oid)]) else {
        return;
    };
    let Some(t) = Element::parse(&xml)
        .ok()
        .and_then(|e| e.child("TEMPLATE").cloned())
    else {
        return;
    };
    let mut tpl = Template::default();
    for a in &t.children {
        let value = if a.children.is_empty() {
            TValue::Single(a.text.clone())
        } else {
            TValue::Vector(
                a.children
                    .iter()
                    .map(|p| (p.name.clone(), p.text.clone()))
                    .collect(),
            )
        };
        tpl.push(&a.name, value);
    }
    tpl.remove("FORMAT");
    tpl.remove("DRIVER");
    let _ = client.call(
        "one.image.update",
        vec![Value::Int(oid), Value::String(tpl.to_xml()), Value::Int(0)],
    );
}

/// `OpenNebulaHelper.to_octet`: an integer as it is given, or `u=rw,g=r,o=` summed into one.
fn to_octet(perm: &str) -> Result<String, String> {
    if perm.trim().parse::<i64>().is_ok() {
        return Ok(perm.to_string());
    }
    let mut sum = 0;
    for part in perm.split(',') {
        let kv: Vec<&str> = part.split('=').collect();
        let [who, rights] = kv[..] else { continue };
        let count = |c: char| rights.chars().filter(|&r| r == c).count();
        let rwx = count('x') + 2 * count('w') + 4 * count('r');
        sum += rwx
            * match who {
                "u" => 100,
                "g" => 10,
                _ => 1,
            };
    }
    if sum == 0 {
        return Err("Error in permissions format".into());
    }
    Ok(format!("{sum:03}"))
}

/// `PoolElement#chmod_octet`: each of the first three digits as use (4), manage (2) and
/// admin (1) bits of owner, group and other.
fn chmod_bits(octet: &str) -> [i32; 9] {
    let digit = |i: usize| {
        octet
            .chars()
            .nth(i)
            .and_then(|c| c.to_digit(10))
            .unwrap_or(0)
    };
    let mut bits = [0; 9];
    for who in 0..3 {
        for (k, mask) in [4, 2, 1].into_iter().enumerate() {
            bits[who * 3 + k] = i32::from(digit(who) & mask != 0);
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_printed_as_opennebulas_unit_to_str() {
        assert_eq!(unit_to_str(0, "M"), "0M");
        assert_eq!(unit_to_str(512, "M"), "512M");
        // Divided only while above 1024.
        assert_eq!(unit_to_str(1024, "M"), "1024M");
        assert_eq!(unit_to_str(1025, "M"), "1G");
        assert_eq!(unit_to_str(1536, "M"), "1.5G");
        assert_eq!(unit_to_str(2 * 1024 * 1024 + 1, "M"), "2T");
        assert_eq!(unit_to_str(3 * 1024 * 1024 * 1024, "M"), "3072T");
        assert_eq!(unit_to_str(-5, "M"), "-5M");
    }

    #[test]
    fn times_are_printed_in_utc() {
        assert_eq!(date_short(1_796_067_917), "11/30/26");
        assert_eq!(date_long(1_796_067_917), "Mon Nov 30 19:45:17 2026");
        assert_eq!(date_long(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(date_short(0), "01/01/70");
    }

    #[test]
    fn permissions_are_read_as_opennebulas_cli() {
        assert_eq!(to_octet("640").unwrap(), "640");
        assert_eq!(to_octet("u=rw,g=r").unwrap(), "640");
        assert_eq!(to_octet("o=x").unwrap(), "001");
        assert!(to_octet("bad").is_err());
        assert_eq!(chmod_bits("640"), [1, 1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(chmod_bits("7"), [1, 1, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn kernel_and_context_images_are_recognised() {
        assert!(holds_files("TYPE = kernel\nNAME = \"k\"\n"));
        assert!(holds_files("A=1\n  type=KERNEL\n"));
        assert!(holds_files("TYPE=CONTEXT\nNAME=\"c\"\n"));
        assert!(!holds_files(
            "TYPE=OS\nNAME     = \"x\"\nFROM_APP = \"1\"\n"
        ));
        assert!(!holds_files("NAME=\"CONTEXTS\"\n"));
    }

    #[test]
    fn tables_cut_names_and_fit_ids() {
        let m = Element::parse(
            "<MARKETPLACE><ID>0</ID><NAME>OpenNebula Public</NAME><STATE>0</STATE><MARKET_MAD>one</MARKET_MAD><ZONE_ID>0</ZONE_ID><TOTAL_MB>2048</TOTAL_MB><FREE_MB>1024</FREE_MB><MARKETPLACEAPPS><ID>3</ID><ID>4</ID></MARKETPLACEAPPS></MARKETPLACE>",
        )
        .unwrap();
        assert_eq!(
            crate::listing::table(&market_table(&[&m]).columns, &market_table(&[&m]).rows),
            [
                "  ID NAME                  SIZE AVAIL        APPS MAD     ZONE STAT",
                "   0 OpenNebula Publ         2G 50%             2 one        0 on"
            ]
        );
    }
}
