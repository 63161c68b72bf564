//! `onedatastore`: its subcommands (`src/cli/onedatastore`), and its layouts as OpenNebula's
//! `OneDatastoreHelper` prints them when the output is not a terminal (no column expands; the
//! padding at the end of a line is left out). Datastores are named by id or name, several at
//! once where OpenNebula takes a range (`crate::ids`).

use std::io::{IsTerminal, Read, Write};

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{option_id, perform, Family, Resolver};
use crate::image::{nth, to_i, Cell};
use crate::listing::{col, Column, ListOpts, Table};
use crate::market::{action_args, field, permissions, push, puts, template_str, unit_to_str};
use crate::objects::{err_text, file_text, text, Kind, Opts};
use crate::xml::Element;

/// `Datastore::DATASTORE_TYPES` and their short names.
const TYPES: [&str; 4] = ["IMAGE", "SYSTEM", "FILE", "BACKUP"];
const SHORT_TYPES: [&str; 4] = ["img", "sys", "fil", "bck"];
const STATES: [&str; 2] = ["READY", "DISABLED"];
const SHORT_STATES: [&str; 2] = ["on", "off"];
/// `Image::DISK_TYPES`.
const DISK_TYPES: [&str; 4] = ["FILE", "CD_ROM", "BLOCK", "RBD"];

/// Runs one `onedatastore` subcommand.
pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let kind = Kind::Datastore;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let one = |i: usize| Resolver::own(client, kind).arg(o.words.get(i), "id");
    let call = |verb: &str, params: Vec<Value>| {
        client
            .call(&format!("one.datastore.{verb}"), params)
            .map_err(err_text)
    };
    match cmd {
        "list" => crate::listing::list(kind, o, client, out),
        "show" => show(client, one(1)?, o.flag(&["-x", "--xml"]), out),
        "create" => {
            let cluster = option_id(
                client,
                Family::Cluster,
                o.value(&["-c", "--cluster"]),
                "cluster",
            )?;
            let text = description(o)?;
            // `ClusterPool::NONE_CLUSTER_ID`: the default cluster.
            let v = call(
                "allocate",
                vec![Value::String(text), Value::Int(cluster.unwrap_or(-1))],
            )?;
            writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
        }
        "update" => crate::owned_ops::execute(Kind::Datastore, "one.datastore", cmd, o, client),
        "rename" => {
            let oid = one(1)?;
            let name = o.words.get(2).ok_or("missing the new name")?;
            call("rename", vec![Value::Int(oid), Value::String(name.clone())]).map(drop)
        }
        "delete" | "chgrp" | "chown" | "chmod" | "enable" | "disable" => {
            let ids = Resolver::own(client, kind).args(o.words.get(1), "id")?;
            let (verb, rest) = action_args(cmd, o, client)?;
            perform(&ids, |oid| {
                let mut params = vec![Value::Int(oid)];
                params.extend(rest.iter().cloned());
                call(verb, params).map(drop)
            })
        }
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

/// `create`'s template: the file given, or what is piped in.
fn description(o: &Opts) -> Result<String, String> {
    if o.words.get(1).is_some() {
        return file_text(o.words.get(1));
    }
    let mut stdin = String::new();
    let input = std::io::stdin();
    if !input.is_terminal() {
        input
            .lock()
            .read_to_string(&mut stdin)
            .map_err(|e| e.to_string())?;
    }
    if stdin.trim().is_empty() {
        return Err("missing the template file".into());
    }
    Ok(stdin)
}

/// `SHARED = NO` in the template: a local datastore, whose capacity is not shown.
fn local(d: &Element) -> bool {
    d.child("TEMPLATE")
        .and_then(|t| t.text_of("SHARED").ok())
        .is_some_and(|s| s.eq_ignore_ascii_case("NO"))
}

/// `OpenNebulaHelper.clusters_str`: the ids joined with commas, `-` without any.
fn clusters(d: &Element) -> String {
    let ids: Vec<&str> = d
        .child("CLUSTERS")
        .map(|c| c.children_named("ID").map(|i| i.text.as_str()).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        "-".into()
    } else {
        ids.join(",")
    }
}

fn images(d: &Element) -> Vec<&Element> {
    d.child("IMAGES")
        .map(|i| i.children_named("ID").collect())
        .unwrap_or_default()
}

/// onedatastore.yaml's columns; without `-l`, its default ones: ID NAME SIZE AVAIL CLUSTERS
/// IMAGES TYPE DS TM STAT.
pub(crate) fn table(items: &[&Element], lo: &ListOpts) -> Table {
    let all: [(Column, Cell); 12] = [
        (col("ID", 4, false, true), |d, _| text(d, "ID").into()),
        (col("USER", 8, true, false), |d, lo| {
            text(d, if lo.numeric { "UID" } else { "UNAME" }).into()
        }),
        (col("GROUP", 8, true, false), |d, lo| {
            text(d, if lo.numeric { "GID" } else { "GNAME" }).into()
        }),
        (col("NAME", 10, true, false), |d, _| text(d, "NAME").into()),
        (col("SIZE", 6, false, false), |d, _| {
            if local(d) {
                "-".into()
            } else {
                unit_to_str(to_i(text(d, "TOTAL_MB")), "M")
            }
        }),
        (col("AVAIL", 3, true, false), |d, _| {
            let total = to_i(text(d, "TOTAL_MB"));
            if total == 0 {
                "-".into()
            } else {
                let free = to_i(text(d, "FREE_MB"));
                format!("{}%", (free as f64 / total as f64 * 100.0).round() as i64)
            }
        }),
        (col("CLUSTERS", 8, true, false), |d, _| clusters(d)),
        (col("IMAGES", 6, false, false), |d, _| {
            images(d).len().to_string()
        }),
        (col("TYPE", 4, true, false), |d, _| {
            nth(&SHORT_TYPES, to_i(text(d, "TYPE"))).into()
        }),
        (col("DS", 7, true, false), |d, _| text(d, "DS_MAD").into()),
        (col("TM", 7, true, false), |d, _| text(d, "TM_MAD").into()),
        (col("STAT", 4, true, false), |d, _| {
            nth(&SHORT_STATES, to_i(text(d, "STATE"))).into()
        }),
    ];
    const HIDDEN: [&str; 2] = ["USER", "GROUP"];
    let chosen: Vec<&(Column, Cell)> = all
        .iter()
        .filter(|(c, _)| lo.columns.is_some() || !HIDDEN.contains(&c.name))
        .collect();
    Table {
        columns: chosen.iter().map(|(c, _)| *c).collect(),
        rows: items
            .iter()
            .map(|d| chosen.iter().map(|(_, cell)| cell(d, lo)).collect())
            .collect(),
    }
}

fn show(client: &Client, oid: i32, xml_out: bool, out: &mut dyn Write) -> Result<(), String> {
    let xml = client
        .call_xml("one.datastore.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let d = Element::parse(&xml).map_err(|e| e.to_string())?;
    out.write_all(layout(&d).as_bytes())
        .map_err(|e| e.to_string())
}

/// `OneDatastoreHelper#format_resource`.
fn layout(d: &Element) -> String {
    let mut s = String::new();
    push(&mut s, &format!("DATASTORE {} INFORMATION", text(d, "ID")));
    field(&mut s, "ID", text(d, "ID"));
    field(&mut s, "NAME", text(d, "NAME"));
    field(&mut s, "USER", text(d, "UNAME"));
    field(&mut s, "GROUP", text(d, "GNAME"));
    field(&mut s, "CLUSTERS", &clusters(d));
    field(&mut s, "TYPE", nth(&TYPES, to_i(text(d, "TYPE"))));
    field(&mut s, "DS_MAD", text(d, "DS_MAD"));
    field(&mut s, "TM_MAD", text(d, "TM_MAD"));
    field(&mut s, "BASE PATH", text(d, "BASE_PATH"));
    field(
        &mut s,
        "DISK_TYPE",
        nth(&DISK_TYPES, to_i(text(d, "DISK_TYPE"))),
    );
    field(&mut s, "STATE", nth(&STATES, to_i(text(d, "STATE"))));
    s.push('\n');
    push(&mut s, "DATASTORE CAPACITY");
    let local = local(d);
    let mb = |name: &str| {
        if local {
            "-".to_string()
        } else {
            unit_to_str(to_i(text(d, name)), "M")
        }
    };
    field(&mut s, "TOTAL:", &mb("TOTAL_MB"));
    field(&mut s, "FREE:", &mb("FREE_MB"));
    field(&mut s, "USED: ", &mb("USED_MB"));
    let limit = d.child("TEMPLATE").and_then(|t| t.text_of("LIMIT_MB").ok());
    let limit = match limit {
        Some(l) if !local => unit_to_str(to_i(l), "M"),
        _ => "-".into(),
    };
    field(&mut s, "LIMIT:", &limit);
    s.push('\n');
    permissions(d, &mut s);
    s.push('\n');
    push(&mut s, "DATASTORE TEMPLATE");
    puts(&mut s, &template_str(d));
    s.push('\n');
    push(&mut s, "IMAGES");
    for i in images(d) {
        push(&mut s, &to_i(&i.text).to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DS: &str = "<DATASTORE><ID>1</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>\
        <GNAME>oneadmin</GNAME><NAME>default</NAME><PERMISSIONS><OWNER_U>1</OWNER_U>\
        <OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M>\
        <GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A>\
        </PERMISSIONS><DS_MAD>fs</DS_MAD><TM_MAD>ssh</TM_MAD>\
        <BASE_PATH>/var/lib/one//datastores/1</BASE_PATH><TYPE>0</TYPE>\
        <DISK_TYPE>0</DISK_TYPE><STATE>0</STATE><CLUSTERS><ID>0</ID><ID>100</ID></CLUSTERS>\
        <TOTAL_MB>1048576</TOTAL_MB><FREE_MB>1047552</FREE_MB><USED_MB>1024</USED_MB>\
        <IMAGES><ID>0</ID><ID>4</ID></IMAGES><TEMPLATE><DS_MAD><![CDATA[fs]]></DS_MAD>\
        <LIMIT_MB>2048</LIMIT_MB></TEMPLATE></DATASTORE>";

    #[test]
    fn show_prints_opennebulas_layout() {
        let d = Element::parse(DS).unwrap();
        assert_eq!(
            layout(&d),
            "DATASTORE 1 INFORMATION\n\
             ID             : 1\n\
             NAME           : default\n\
             USER           : oneadmin\n\
             GROUP          : oneadmin\n\
             CLUSTERS       : 0,100\n\
             TYPE           : IMAGE\n\
             DS_MAD         : fs\n\
             TM_MAD         : ssh\n\
             BASE PATH      : /var/lib/one//datastores/1\n\
             DISK_TYPE      : FILE\n\
             STATE          : READY\n\
             \n\
             DATASTORE CAPACITY\n\
             TOTAL:         : 1024G\n\
             FREE:          : 1023G\n\
             USED:          : 1024M\n\
             LIMIT:         : 2G\n\
             \n\
             PERMISSIONS\n\
             OWNER          : um-\n\
             GROUP          : u--\n\
             OTHER          : ---\n\
             \n\
             DATASTORE TEMPLATE\n\
             DS_MAD=\"fs\"\n\
             LIMIT_MB=\"2048\"\n\
             \n\
             IMAGES\n\
             0\n\
             4\n"
        );
    }

    #[test]
    fn the_table_has_opennebulas_default_columns() {
        let d = Element::parse(DS).unwrap();
        let t = table(&[&d], &ListOpts::default());
        assert_eq!(
            crate::listing::table(&t.columns, &t.rows),
            [
                "  ID NAME         SIZE AVA CLUSTERS IMAGES TYPE DS      TM      STAT",
                "   1 default     1024G 100 0,100         2 img  fs      ssh     on"
            ]
        );
        let lo = ListOpts {
            columns: Some(vec!["USER".into()]),
            ..ListOpts::default()
        };
        assert_eq!(table(&[&d], &lo).columns.len(), 12);
    }
}
