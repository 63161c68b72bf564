//! `onevntemplate`: its subcommands (`src/cli/onevntemplate`), and its layouts as
//! OpenNebula's `OneVNTemplateHelper` prints them when the output is not a terminal.
//! Times are shown in UTC, as `crate::market` explains.

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::Resolver;
use crate::listing::{col, Table};
use crate::market::{field, permissions, push, puts, template_str, utc};
use crate::objects::{err_text, file_text, int, text, Kind, Opts};
use crate::xml::Element;

/// Runs one `onevntemplate` subcommand.
pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let kind = Kind::VnTemplate;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let one = |i: usize| Resolver::own(client, kind).arg(o.words.get(i), "id");
    let call = |verb: &str, params: Vec<Value>| {
        client
            .call(&format!("one.vntemplate.{verb}"), params)
            .map_err(err_text)
    };
    match cmd {
        "list" => crate::listing::list(kind, o, client, out),
        "show" => show(client, one(1)?, o.flag(&["-x", "--xml"]), out),
        "create" => {
            let v = call("allocate", vec![Value::String(file_text(o.words.get(1))?)])?;
            say(out, "ID", &v)
        }
        "clone" => {
            let oid = one(1)?;
            let name = o.words.get(2).ok_or("missing the new name")?;
            let v = call("clone", vec![Value::Int(oid), Value::String(name.clone())])?;
            say(out, "ID", &v)
        }
        "instantiate" => {
            let oid = one(1)?;
            let extra = match o.words.get(2) {
                Some(_) => file_text(o.words.get(2))?,
                None => String::new(),
            };
            let name = o.value(&["--name"]).unwrap_or_default();
            let v = call(
                "instantiate",
                vec![Value::Int(oid), Value::String(name), Value::String(extra)],
            )?;
            say(out, "VN ID", &v)
        }
        "update" => crate::owned_ops::execute(Kind::VnTemplate, "one.vntemplate", cmd, o, client),
        "rename" => {
            let oid = one(1)?;
            let name = o.words.get(2).ok_or("missing the new name")?;
            call("rename", vec![Value::Int(oid), Value::String(name.clone())]).map(drop)
        }
        "delete" | "chgrp" | "chown" | "chmod" | "lock" | "unlock" => {
            crate::owned_ops::execute(kind, "one.vntemplate", cmd, o, client)
        }
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

fn say(out: &mut dyn Write, what: &str, v: &Value) -> Result<(), String> {
    writeln!(out, "{what}: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
}

/// `OpenNebulaHelper.time_to_str`: `%m/%d %H:%M:%S`, `-` for 0.
pub(crate) fn time_to_str(epoch: i64) -> String {
    if epoch == 0 {
        return "-".into();
    }
    let ((_, mo, d), (h, mi, s)) = utc(epoch);
    format!("{mo:02}/{d:02} {h:02}:{mi:02}:{s:02}")
}

/// onevntemplate.yaml's default columns: ID USER GROUP NAME REGTIME.
pub(crate) fn table(items: &[&Element], numeric: bool) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("USER", 8, true, false),
        col("GROUP", 8, true, false),
        col("NAME", 15, true, true),
        col("REGTIME", 15, false, false),
    ];
    let owner =
        |e: &Element, name: &str, id: &str| text(e, if numeric { id } else { name }).to_string();
    let rows = items
        .iter()
        .map(|t| {
            vec![
                int(t, "ID").to_string(),
                owner(t, "UNAME", "UID"),
                owner(t, "GNAME", "GID"),
                text(t, "NAME").to_string(),
                time_to_str(int(t, "REGTIME")),
            ]
        })
        .collect();
    Table { columns, rows }
}

fn show(client: &Client, oid: i32, xml_out: bool, out: &mut dyn Write) -> Result<(), String> {
    let xml = client
        .call_xml("one.vntemplate.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let e = Element::parse(&xml).map_err(|e| e.to_string())?;
    out.write_all(layout(&e).as_bytes())
        .map_err(|e| e.to_string())
}

/// `OneVNTemplateHelper#format_resource`.
fn layout(t: &Element) -> String {
    let mut s = String::new();
    push(&mut s, &format!("TEMPLATE {} INFORMATION", text(t, "ID")));
    field(&mut s, "ID", text(t, "ID"));
    field(&mut s, "NAME", text(t, "NAME"));
    field(&mut s, "USER", text(t, "UNAME"));
    field(&mut s, "GROUP", text(t, "GNAME"));
    let locked = t.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    field(&mut s, "LOCK", crate::hook::lock_name(locked));
    field(&mut s, "REGISTER TIME", &time_to_str(int(t, "REGTIME")));
    s.push('\n');
    permissions(t, &mut s);
    s.push('\n');
    push(&mut s, "TEMPLATE CONTENTS");
    puts(&mut s, &template_str(t));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_as_opennebulas_cli_does() {
        assert_eq!(time_to_str(0), "-");
        assert_eq!(time_to_str(1_700_000_000), "11/14 22:13:20");
    }
}
