//! `onevrouter`: its subcommands (`src/cli/onevrouter`), and its layouts as OpenNebula's
//! `OneVirtualRouterHelper` prints them when the output is not a terminal (no padding at the
//! end of a line). Routers are named by id or name, several at once where OpenNebula takes a
//! range; templates and networks by id or name.

use std::io::{IsTerminal, Read, Write};

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{Family, Resolver};
use crate::listing::{col, ListOpts, Table};
use crate::market::{field, permissions, push, puts, template_str};
use crate::objects::{err_text, file_text, text, Kind, Opts};
use crate::xml::Element;

/// The options of `onevrouter` that take a value.
pub(crate) const VALUED: &[&str] = &["--multiple", "--network", "--ip", "--file"];

/// Runs one `onevrouter` subcommand.
pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let kind = Kind::Vrouter;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let one = |i: usize| Resolver::own(client, kind).arg(o.words.get(i), "id");
    let call = |verb: &str, params: Vec<Value>| {
        client
            .call(&format!("one.vrouter.{verb}"), params)
            .map_err(err_text)
    };
    match cmd {
        "list" => crate::listing::list(kind, o, client, out),
        "show" => {
            let xml = client
                .call_xml("one.vrouter.info", vec![Value::Int(one(1)?)])
                .map_err(err_text)?;
            if o.flag(&["-x", "--xml"]) {
                return writeln!(out, "{xml}").map_err(|e| e.to_string());
            }
            let e = Element::parse(&xml).map_err(|e| e.to_string())?;
            out.write_all(layout(&e, o.flag(&["--all"])).as_bytes())
                .map_err(|e| e.to_string())
        }
        "create" => {
            let text = given(o.words.get(1))?.unwrap_or_default();
            let v = call("allocate", vec![Value::String(text)])?;
            writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
        }
        "instantiate" => {
            let oid = one(1)?;
            let template =
                Resolver::other(client, Family::Template).arg(o.words.get(2), "template id")?;
            let multiple = match o.value(&["-m", "--multiple"]) {
                Some(n) => n
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| format!("Invalid number of VMs '{n}'"))?,
                None => 1,
            };
            let extra = given(o.words.get(3))?.unwrap_or_default();
            let params = vec![
                Value::Int(oid),
                Value::Int(multiple),
                Value::Int(template),
                Value::String(o.value(&["--name"]).unwrap_or_default()),
                Value::Bool(o.flag(&["--hold"])),
                Value::String(extra),
            ];
            call("instantiate", params).map(drop)
        }
        "nic-attach" => {
            let oid = one(1)?;
            let template = match o.value(&["--file"]) {
                Some(path) => file_text(Some(&path))?,
                None => match given(None)? {
                    Some(text) => text,
                    None => nic_from_options(o, client)?,
                },
            };
            call("attachnic", vec![Value::Int(oid), Value::String(template)]).map(drop)
        }
        "nic-detach" => {
            let oid = one(1)?;
            let nic = crate::objects::id(o.words.get(2), "NIC id")?;
            call("detachnic", vec![Value::Int(oid), Value::Int(nic)]).map(drop)
        }
        c if crate::owned_ops::handles(c) => {
            crate::owned_ops::execute(kind, "one.vrouter", c, o, client)
        }
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

/// `nic-attach --network <network> [--ip <ip>] [--float]`: the NIC the options describe.
fn nic_from_options(o: &Opts, client: &Client) -> Result<String, String> {
    let Some(network) = o.value(&["--network"]) else {
        return Err(
            "Provide a template or a network:\n\t--file    <file>\n\t--network <network>".into(),
        );
    };
    let vn = Resolver::other(client, Family::Vnet).id(&network)?;
    let mut t = format!("NIC = [ NETWORK_ID = {vn}");
    if let Some(ip) = o.value(&["--ip"]) {
        t.push_str(&format!(", IP = {ip}"));
    }
    if o.flag(&["--float"]) {
        t.push_str(", FLOATING_IP =\"yes\"");
    }
    t.push_str(" ]");
    Ok(t)
}

/// The file given, or what is piped in; `None` when there is neither.
fn given(path: Option<&String>) -> Result<Option<String>, String> {
    if path.is_some() {
        return file_text(path).map(Some);
    }
    let mut stdin = String::new();
    let input = std::io::stdin();
    if !input.is_terminal() {
        input
            .lock()
            .read_to_string(&mut stdin)
            .map_err(|e| e.to_string())?;
    }
    Ok((!stdin.trim().is_empty()).then_some(stdin))
}

/// onevrouter.yaml's default columns: ID USER GROUP NAME.
pub(crate) fn table(routers: &[&Element], lo: &ListOpts) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("USER", 15, true, false),
        col("GROUP", 15, true, false),
        col("NAME", 27, true, true),
    ];
    let (user, group) = if lo.numeric {
        ("UID", "GID")
    } else {
        ("UNAME", "GNAME")
    };
    let rows = routers
        .iter()
        .map(|r| {
            vec![
                text(r, "ID").to_string(),
                text(r, user).to_string(),
                text(r, group).to_string(),
                text(r, "NAME").to_string(),
            ]
        })
        .collect();
    Table { columns, rows }
}

/// The VIRTUAL ROUTER NICS table: a floating NIC's own addresses, `-` where there are none.
fn nics_table(nics: &[&Element]) -> Vec<String> {
    let columns = [
        col("ID", 3, false, false),
        col("NETWORK", 20, true, false),
        col("MANAGEMENT", 10, true, false),
        col("IP", 15, true, true),
    ];
    let or_dash = |v: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for n in nics {
        let floating = text(n, "FLOATING_IP").eq_ignore_ascii_case("YES");
        let ip = if floating { text(n, "IP") } else { "" };
        let management = match n.child("VROUTER_MANAGEMENT") {
            Some(m) => m.text.clone(),
            None => "NO".to_string(),
        };
        rows.push(vec![
            text(n, "NIC_ID").to_string(),
            or_dash(text(n, "NETWORK")),
            management,
            or_dash(ip),
        ]);
        if floating {
            for k in ["IP6_LINK", "IP6_ULA", "IP6_GLOBAL"] {
                if n.child(k).is_some() {
                    rows.push(vec![
                        String::new(),
                        String::new(),
                        String::new(),
                        text(n, k).to_string(),
                    ]);
                }
            }
        }
    }
    crate::listing::table(&columns, &rows)
}

/// `OneVirtualRouterHelper#format_resource`; the NICs stay in the template with `all`.
fn layout(r: &Element, all: bool) -> String {
    let mut s = String::new();
    push(
        &mut s,
        &format!("VIRTUAL ROUTER {} INFORMATION", text(r, "ID")),
    );
    field(&mut s, "ID", text(r, "ID"));
    field(&mut s, "NAME", text(r, "NAME"));
    field(&mut s, "USER", text(r, "UNAME"));
    field(&mut s, "GROUP", text(r, "GNAME"));
    let locked = r.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    field(&mut s, "LOCK", crate::hook::lock_name(locked));
    s.push('\n');
    permissions(r, &mut s);
    let nics: Vec<&Element> = r
        .child("TEMPLATE")
        .map(|t| t.children_named("NIC").collect())
        .unwrap_or_default();
    if !nics.is_empty() {
        s.push('\n');
        push(&mut s, "VIRTUAL ROUTER NICS");
        for line in nics_table(&nics) {
            push(&mut s, &line);
        }
    }
    let mut shown = r.clone();
    if !all {
        if let Some(t) = shown.children.iter_mut().find(|c| c.name == "TEMPLATE") {
            t.children.retain(|c| c.name != "NIC");
        }
    }
    s.push('\n');
    push(&mut s, "TEMPLATE CONTENTS");
    puts(&mut s, &template_str(&shown));
    s.push('\n');
    push(&mut s, "VIRTUAL MACHINES");
    if let Some(vms) = r.child("VMS") {
        for id in vms.children_named("ID") {
            push(&mut s, &id.text);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    const ROUTER: &str = "<VROUTER><ID>2</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME><NAME>gw</NAME><PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS><VMS><ID>4</ID><ID>5</ID></VMS><TEMPLATE><DESCRIPTION><![CDATA[edge]]></DESCRIPTION><NIC><FLOATING_IP><![CDATA[YES]]></FLOATING_IP><NETWORK><![CDATA[lan]]></NETWORK><NIC_ID><![CDATA[0]]></NIC_ID><VROUTER_IP><![CDATA[10.0.0.1]]></VROUTER_IP></NIC><NIC><NETWORK><![CDATA[lan]]></NETWORK><NIC_ID><![CDATA[1]]></NIC_ID></NIC></TEMPLATE></VROUTER>";

    #[test]
    fn list_shows_owner_group_and_name() {
        let r = Element::parse(ROUTER).unwrap();
        let t = table(&[&r], &ListOpts::default());
        assert_eq!(t.rows[0], ["2", "oneadmin", "oneadmin", "gw"]);
    }

    #[test]
    fn show_prints_the_layout_of_opennebulas_helper() {
        let r = Element::parse(ROUTER).unwrap();
        let want = "VIRTUAL ROUTER 2 INFORMATION
ID             : 2
NAME           : gw
USER           : oneadmin
GROUP          : oneadmin
LOCK           : None

PERMISSIONS
OWNER          : um-
GROUP          : ---
OTHER          : ---

VIRTUAL ROUTER NICS
 ID NETWORK              MANAGEMENT IP
  0 lan                  NO         -
  1 lan                  NO         -

TEMPLATE CONTENTS
DESCRIPTION=\"edge\"

VIRTUAL MACHINES
4
5
";
        assert_eq!(layout(&r, false), want);
        assert!(layout(&r, true).contains("NIC=[\n"), "{}", layout(&r, true));
    }
}
