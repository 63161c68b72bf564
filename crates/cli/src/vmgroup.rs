//! `onevmgroup`: its subcommands (`src/cli/onevmgroup`), and its layouts as OpenNebula's
//! `OneVMGroupHelper` prints them when the output is not a terminal (no padding at the end of
//! a line). Groups are named by id or name, several at once where OpenNebula takes a range;
//! roles by id or by name (`retrieve_role_id`).

use std::io::{IsTerminal, Read, Write};

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::Resolver;
use crate::listing::{col, ListOpts, Table};
use crate::market::{field, permissions, push, puts, template_str};
use crate::objects::{err_text, file_text, text, Kind, Opts};
use crate::xml::Element;

/// Runs one `onevmgroup` subcommand.
pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let kind = Kind::VmGroup;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let one = |i: usize| Resolver::own(client, kind).arg(o.words.get(i), "id");
    let call = |verb: &str, params: Vec<Value>| {
        client
            .call(&format!("one.vmgroup.{verb}"), params)
            .map_err(err_text)
    };
    match cmd {
        "list" => crate::listing::list(kind, o, client, out),
        "show" => show(client, one(1)?, o.flag(&["-x", "--xml"]), out),
        "create" => {
            let text = given(o.words.get(1), "No VM Group description provided")?;
            let v = call("allocate", vec![Value::String(text)])?;
            writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
        }
        "update" => crate::owned_ops::execute(Kind::VmGroup, "one.vmgroup", cmd, o, client),
        "rename" => {
            let oid = one(1)?;
            let name = o.words.get(2).ok_or("missing the new name")?;
            call("rename", vec![Value::Int(oid), Value::String(name.clone())]).map(drop)
        }
        "role-add" => {
            let oid = one(1)?;
            let role = as_role(&given(o.words.get(2), "No role description provided")?);
            call("roleadd", vec![Value::Int(oid), Value::String(role)]).map(drop)
        }
        "role-delete" => {
            let oid = one(1)?;
            let role = role_id(client, oid, o.words.get(2))?;
            call("roledelete", vec![Value::Int(oid), Value::Int(role)]).map(drop)
        }
        "role-update" => {
            let oid = one(1)?;
            let role = role_id(client, oid, o.words.get(2))?;
            let text = as_role(&file_text(o.words.get(3))?);
            let params = vec![Value::Int(oid), Value::Int(role), Value::String(text)];
            call("roleupdate", params).map(drop)
        }
        "delete" | "chgrp" | "chown" | "chmod" | "lock" | "unlock" => {
            crate::owned_ops::execute(kind, "one.vmgroup", cmd, o, client)
        }
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

/// The file given, or what is piped in; `none` when there is neither.
fn given(path: Option<&String>, none: &str) -> Result<String, String> {
    if path.is_some() {
        return file_text(path);
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
        return Err(none.into());
    }
    Ok(stdin)
}

/// A role's attributes as `ROLE=[ ... ]`, unless they already are, as `role-add` and
/// `role-update` wrap them.
fn as_role(text: &str) -> String {
    let squeezed: String = text.chars().filter(|&c| c != ' ').collect();
    if squeezed.contains("ROLE=[") {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split('\n').collect();
    format!("ROLE=[\n{}]", lines.join(",\n"))
}

/// `retrieve_role_id`: a number as it is, else the id of the one role of group `oid` with that
/// name.
fn role_id(client: &Client, oid: i32, word: Option<&String>) -> Result<i32, String> {
    let w = word.ok_or("missing the role id")?;
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) {
        return w.parse().map_err(|_| format!("Invalid role id '{w}'"));
    }
    let xml = client
        .call_xml("one.vmgroup.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    let g = Element::parse(&xml).map_err(|e| e.to_string())?;
    let ids: Vec<&Element> = g
        .child("ROLES")
        .map(|r| {
            r.children_named("ROLE")
                .filter(|r| text(r, "NAME") == w)
                .collect()
        })
        .unwrap_or_default();
    match ids[..] {
        [one] => text(one, "ID")
            .parse()
            .map_err(|_| format!("{w} not found or duplicated")),
        _ => Err(format!("{w} not found or duplicated")),
    }
}

fn roles(g: &Element) -> Vec<&Element> {
    g.child("ROLES")
        .map(|r| r.children_named("ROLE").collect())
        .unwrap_or_default()
}

/// onevmgroup.yaml's default columns: ID USER GROUP NAME VMS ROLES.
pub(crate) fn table(groups: &[&Element], lo: &ListOpts) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("USER", 8, true, false),
        col("GROUP", 8, true, false),
        col("NAME", 15, true, true),
        col("VMS", 4, true, false),
        col("ROLES", 36, true, false),
    ];
    let (user, group) = if lo.numeric {
        ("UID", "GID")
    } else {
        ("UNAME", "GNAME")
    };
    let rows = groups
        .iter()
        .map(|g| {
            let roles = roles(g);
            let vms: usize = roles
                .iter()
                .map(|r| match text(r, "VMS") {
                    "" => 0,
                    list => list.split(',').filter(|v| !v.is_empty()).count(),
                })
                .sum();
            let names: Vec<&str> = roles.iter().map(|r| text(r, "NAME")).collect();
            vec![
                text(g, "ID").to_string(),
                text(g, user).to_string(),
                text(g, group).to_string(),
                text(g, "NAME").to_string(),
                vms.to_string(),
                names.join(", "),
            ]
        })
        .collect();
    Table { columns, rows }
}

fn show(client: &Client, oid: i32, xml_out: bool, out: &mut dyn Write) -> Result<(), String> {
    let xml = client
        .call_xml("one.vmgroup.info", vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let e = Element::parse(&xml).map_err(|e| e.to_string())?;
    out.write_all(layout(&e).as_bytes())
        .map_err(|e| e.to_string())
}

/// The ROLES table of `show`.
fn roles_table(roles: &[&Element]) -> Vec<String> {
    let columns = [
        col("ID", 4, true, false),
        col("NAME", 8, true, false),
        col("POLICY", 12, true, false),
        col("AFFINED_HOSTS", 18, true, false),
        col("ANTI_AFFINED_HOST", 18, true, false),
        col("VIRTUAL_MACHINES", 20, true, false),
    ];
    let or_dash = |r: &Element, k: &str| match r.child(k) {
        Some(v) => v.text.clone(),
        None => "-".to_string(),
    };
    let rows: Vec<Vec<String>> = roles
        .iter()
        .map(|r| {
            vec![
                text(r, "ID").to_string(),
                text(r, "NAME").to_string(),
                or_dash(r, "POLICY"),
                or_dash(r, "HOST_AFFINED"),
                or_dash(r, "HOST_ANTI_AFFINED"),
                text(r, "VMS").to_string(),
            ]
        })
        .collect();
    crate::listing::table(&columns, &rows)
}

/// `OneVMGroupHelper#format_resource`.
fn layout(g: &Element) -> String {
    let mut s = String::new();
    push(&mut s, &format!("VM GROUP {} INFORMATION", text(g, "ID")));
    field(&mut s, "ID", text(g, "ID"));
    field(&mut s, "NAME", text(g, "NAME"));
    field(&mut s, "USER", text(g, "UNAME"));
    field(&mut s, "GROUP", text(g, "GNAME"));
    let locked = g.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    field(&mut s, "LOCK", crate::hook::lock_name(locked));
    // This helper puts an empty line under the PERMISSIONS header, not above it.
    let mut perms = String::new();
    permissions(g, &mut perms);
    s.push_str(&perms.replacen("PERMISSIONS\n", "PERMISSIONS\n\n", 1));
    s.push('\n');
    push(&mut s, "ROLES");
    for line in roles_table(&roles(g)) {
        push(&mut s, &line);
    }
    s.push('\n');
    push(&mut s, "TEMPLATE CONTENTS");
    puts(&mut s, &template_str(g));
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    const GROUP: &str = "<VM_GROUP><ID>3</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME><NAME>web</NAME><PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS><ROLES><ROLE><ID><![CDATA[0]]></ID><NAME><![CDATA[db]]></NAME><POLICY><![CDATA[AFFINED]]></POLICY><VMS><![CDATA[4,5]]></VMS></ROLE><ROLE><HOST_AFFINED><![CDATA[1,2]]></HOST_AFFINED><ID><![CDATA[1]]></ID><NAME><![CDATA[app]]></NAME></ROLE></ROLES><TEMPLATE><ANTI_AFFINED><![CDATA[db,app]]></ANTI_AFFINED></TEMPLATE></VM_GROUP>";

    #[test]
    fn role_attributes_are_wrapped_unless_they_are_a_role() {
        assert_eq!(
            as_role("NAME=a\nPOLICY=AFFINED"),
            "ROLE=[\nNAME=a,\nPOLICY=AFFINED]"
        );
        assert_eq!(as_role("ROLE = [ NAME = a ]"), "ROLE = [ NAME = a ]");
    }

    #[test]
    fn list_counts_the_vms_and_names_the_roles() {
        let g = Element::parse(GROUP).unwrap();
        let t = table(&[&g], &ListOpts::default());
        assert_eq!(t.rows[0][4..], ["2".to_string(), "db, app".to_string()]);
    }

    #[test]
    fn show_prints_the_layout_of_opennebulas_helper() {
        let g = Element::parse(GROUP).unwrap();
        let want = "VM GROUP 3 INFORMATION
ID             : 3
NAME           : web
USER           : oneadmin
GROUP          : oneadmin
LOCK           : None
PERMISSIONS

OWNER          : um-
GROUP          : ---
OTHER          : ---

ROLES
ID   NAME     POLICY       AFFINED_HOSTS      ANTI_AFFINED_HOST  VIRTUAL_MACHINES
0    db       AFFINED      -                  -                  4,5
1    app      -            1,2                -

TEMPLATE CONTENTS
ANTI_AFFINED=\"db,app\"
";
        assert_eq!(layout(&g), want);
    }
}
