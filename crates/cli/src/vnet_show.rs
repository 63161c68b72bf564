//! `onevnet list` and `onevnet show`, as OpenNebula's `OneVNetHelper` prints them when the
//! output is not a terminal (no column expands; the padding at the end of a line is left out).

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::hook::lock_name;
use crate::listing::{col, hidden, ListOpts, Table};
use crate::market::push;
use crate::objects::{err_text, text, Opts};
use crate::xml::Element;

/// `VirtualNetwork::VN_STATES`.
const STATES: [&str; 7] = [
    "INIT",
    "READY",
    "LOCK_CREATE",
    "LOCK_DELETE",
    "DONE",
    "ERROR",
    "UPDATE_FAILURE",
];

/// `VirtualNetwork::SHORT_VN_STATES`, in the order of [`STATES`].
const SHORT_STATES: [&str; 7] = ["init", "rdy", "lock", "lock", "done", "err", "fail"];

/// The state's name at `names`, or nothing (Ruby's `nil`) for an unknown state.
fn state(v: &Element, names: &[&'static str; 7]) -> &'static str {
    text(v, "STATE")
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or("")
}

/// The `<ID>`s under `set`.
fn ids<'a>(v: &'a Element, set: &str) -> Vec<&'a str> {
    v.child(set)
        .map(|s| s.children_named("ID").map(|i| i.text.as_str()).collect())
        .unwrap_or_default()
}

/// `OpenNebulaHelper.clusters_str`: the ids joined by commas, `-` without any.
fn clusters(v: &Element) -> String {
    let ids = ids(v, "CLUSTERS");
    if ids.is_empty() {
        "-".into()
    } else {
        ids.join(",")
    }
}

/// onevnet.yaml's columns; UPDATED is not among its defaults.
pub(crate) fn table(nets: &[&Element], lo: &ListOpts) -> Table {
    let columns = vec![
        col("ID", 4, false, true),
        col("USER", 8, true, false),
        col("GROUP", 8, true, false),
        col("NAME", 15, true, false),
        col("CLUSTERS", 10, true, false),
        col("BRIDGE", 8, true, false),
        col("STATE", 6, true, false),
        col("LEASES", 6, false, false),
        hidden(col("UPDATED", 4, false, false)),
        col("OUTDATED", 4, false, false),
        col("ERROR", 4, false, false),
    ];
    let (user, group) = if lo.numeric {
        ("UID", "GID")
    } else {
        ("UNAME", "GNAME")
    };
    let rows = nets
        .iter()
        .map(|v| {
            vec![
                text(v, "ID").to_string(),
                text(v, user).to_string(),
                text(v, group).to_string(),
                text(v, "NAME").to_string(),
                clusters(v),
                text(v, "BRIDGE").to_string(),
                state(v, &SHORT_STATES).to_string(),
                text(v, "USED_LEASES").to_string(),
                ids(v, "UPDATED_VMS").len().to_string(),
                ids(v, "OUTDATED_VMS").len().to_string(),
                ids(v, "ERROR_VMS").len().to_string(),
            ]
        })
        .collect();
    Table { columns, rows }
}

/// `show`: the network in its layout, as XML (`-x`) or as JSON (`-j`).
pub(crate) fn show(client: &Client, oid: i32, o: &Opts, out: &mut dyn Write) -> Result<(), String> {
    let decrypt = o.flag(&["--decrypt"]);
    let xml = client
        .call_xml("one.vn.info", vec![Value::Int(oid), Value::Bool(decrypt)])
        .map_err(err_text)?;
    if o.flag(&["-x", "--xml"]) {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    if o.flag(&["-j", "--json"]) {
        let json = crate::json::pool_json(&xml)?;
        return writeln!(out, "{json}").map_err(|e| e.to_string());
    }
    let v = Element::parse(&xml).map_err(|e| e.to_string())?;
    out.write_all(layout(&v, o.flag(&["--show-ar"])).as_bytes())
        .map_err(|e| e.to_string())
}

/// `"value"`, as `XMLElement#attr_to_str`.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\\\""))
}

/// `XMLElement#template_like_str` of `root`'s children: `KEY="value"` a line, a vector as
/// `KEY=[\n  A="x",\n  B="y" ]` (`indent`) or `KEY=[ A="x", B="y" ]`; attributes without text
/// are left out.
pub(crate) fn like_str(root: &Element, indent: bool) -> String {
    let (enter, tab) = if indent { ("\n", "  ") } else { ("", " ") };
    let lines: Vec<String> = root
        .children
        .iter()
        .filter_map(|a| {
            if a.children.is_empty() {
                (!a.text.is_empty()).then(|| format!("{}={}", a.name, quoted(&a.text)))
            } else {
                let inner: Vec<String> = a
                    .children
                    .iter()
                    .filter(|p| p.children.is_empty() && !p.text.is_empty())
                    .map(|p| format!("{tab}{}={}", p.name, quoted(&p.text)))
                    .collect();
                Some(format!(
                    "{}=[{enter}{} ]",
                    a.name,
                    inner.join(&format!(",{enter}"))
                ))
            }
        })
        .collect();
    lines.join("\n")
}

/// The address ranges of a network.
pub(crate) fn ranges(v: &Element) -> Vec<&Element> {
    v.child("AR_POOL")
        .map(|p| p.children_named("AR").collect())
        .unwrap_or_default()
}

/// `OneVNetHelper#format_resource`.
pub(crate) fn layout(v: &Element, show_ar: bool) -> String {
    let mut s = String::new();
    // `str`, which the address range loop narrows: without ranges it stays 25 wide.
    let mut width = 25;
    let row = |s: &mut String, width: usize, name: &str, value: &str| {
        push(s, &format!("{name:<width$}: {value}"));
    };
    push(
        &mut s,
        &format!("VIRTUAL NETWORK {} INFORMATION", text(v, "ID")),
    );
    row(&mut s, width, "ID", text(v, "ID"));
    row(&mut s, width, "NAME", text(v, "NAME"));
    row(&mut s, width, "USER", text(v, "UNAME"));
    row(&mut s, width, "GROUP", text(v, "GNAME"));
    let locked = v.child("LOCK").map_or("", |l| text(l, "LOCKED"));
    row(&mut s, width, "LOCK", lock_name(locked));
    row(&mut s, width, "CLUSTERS", &clusters(v));
    row(&mut s, width, "BRIDGE", text(v, "BRIDGE"));
    row(&mut s, width, "STATE", state(v, &STATES));
    for (name, element) in [
        ("VN_MAD", "VN_MAD"),
        ("PHYSICAL DEVICE", "PHYDEV"),
        ("VLAN ID", "VLAN_ID"),
    ] {
        if !text(v, element).is_empty() {
            row(&mut s, width, name, text(v, element));
        }
    }
    let yes = |e: &str| if text(v, e) == "1" { "YES" } else { "NO" };
    row(&mut s, width, "AUTOMATIC VLAN ID", yes("VLAN_ID_AUTOMATIC"));
    // OpenNebula's helper tests the wrong way round: the row shows only when the element is
    // missing, and then empty.
    if v.child("OUTER_VLAN_ID").is_none() {
        row(&mut s, width, "OUTER VLAN ID", "");
    }
    row(
        &mut s,
        width,
        "AUTOMATIC OUTER VLAN ID",
        yes("OUTER_VLAN_ID_AUTOMATIC"),
    );
    row(&mut s, width, "USED LEASES", text(v, "USED_LEASES"));
    s.push('\n');
    push(&mut s, "PERMISSIONS");
    let p = v.child("PERMISSIONS");
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
        row(&mut s, width, who, &mask);
    }
    s.push('\n');
    push(&mut s, "VIRTUAL NETWORK TEMPLATE");
    let template = v
        .child("TEMPLATE")
        .map_or(String::new(), |t| like_str(t, false));
    crate::market::puts(&mut s, &template);
    s.push('\n');
    push(&mut s, "ADDRESS RANGE POOL");
    let ars = ranges(v);
    for ar in &ars {
        width = 15;
        push(&mut s, &format!("AR {}", text(ar, "AR_ID")));
        row(&mut s, width, "SIZE", text(ar, "SIZE"));
        row(&mut s, width, "LEASES", text(ar, "USED_LEASES"));
        for mad in ["VN_MAD", "IPAM_MAD"] {
            if ar.child(mad).is_some() {
                row(&mut s, width, mad, text(ar, mad));
            }
        }
        s.push('\n');
        let range = |s: &mut String, name: &str, first: &str, last: &str| {
            push(s, &format!("{name:<10} {first:>34} {last:>34}"));
        };
        range(&mut s, "RANGE", "FIRST", "LAST");
        range(&mut s, "MAC", text(ar, "MAC"), text(ar, "MAC_END"));
        for kind in ["IP", "IP6_GLOBAL", "IP6_ULA", "IP6"] {
            if ar.child(kind).is_some() {
                let end = format!("{kind}_END");
                range(&mut s, kind, text(ar, kind), text(ar, &end));
            }
        }
        s.push('\n');
    }
    s.push('\n');
    push(&mut s, "LEASES");
    for line in leases_table(&ars) {
        push(&mut s, &line);
    }
    s.push('\n');
    push(&mut s, "VIRTUAL ROUTERS");
    for id in ids(v, "VROUTERS") {
        push(&mut s, id);
    }
    s.push('\n');
    push(&mut s, "VIRTUAL MACHINES");
    let mut outdated = ids(v, "OUTDATED_VMS");
    outdated.extend(ids(v, "UPDATING_VMS"));
    row(&mut s, width, "UPDATED", &ids(v, "UPDATED_VMS").join(","));
    row(&mut s, width, "OUTDATED", &outdated.join(","));
    row(&mut s, width, "ERROR", &ids(v, "ERROR_VMS").join(","));
    if show_ar {
        for ar in &ars {
            s.push('\n');
            push(&mut s, &format!("TEMPLATE FOR AR {}", text(ar, "AR_ID")));
            crate::market::puts(&mut s, &like_str(ar, true));
        }
    }
    s
}

/// The LEASES table: each lease of each range, with who holds it.
fn leases_table(ars: &[&Element]) -> Vec<String> {
    let columns = [
        col("AR", 3, true, false),
        col("OWNER", 10, true, false),
        col("MAC", 5, false, true),
        col("IP", 5, false, true),
        col("PORT_FORWARD", 5, false, true),
        col("IP6", 5, false, true),
    ];
    let or_dash = |l: &Element, names: &[&str]| {
        names
            .iter()
            .find(|n| l.child(n).is_some())
            .map_or("-".to_string(), |n| text(l, n).to_string())
    };
    let rows: Vec<Vec<String>> = ars
        .iter()
        .flat_map(|ar| {
            let leases: Vec<&Element> = ar
                .child("LEASES")
                .map(|l| l.children_named("LEASE").collect())
                .unwrap_or_default();
            leases.into_iter().map(move |l| (text(ar, "AR_ID"), l))
        })
        .map(|(ar_id, l)| {
            let owner = [("VM", "V"), ("VNET", "N"), ("VROUTER", "R")]
                .iter()
                .find(|(e, _)| l.child(e).is_some())
                .map_or(String::new(), |(e, tag)| format!("{tag}:{}", text(l, e)));
            let forward = match l.child("EXTERNAL_PORT_RANGE") {
                Some(ext) => {
                    let internal = text(l, "INTERNAL_PORT_RANGE");
                    let internal = internal.split('/').next().unwrap_or("");
                    format!("[{}]:[{internal}]", ext.text)
                }
                None => "-".into(),
            };
            vec![
                ar_id.to_string(),
                owner,
                text(l, "MAC").to_string(),
                or_dash(l, &["IP"]),
                forward,
                or_dash(l, &["IP6", "IP6_GLOBAL"]),
            ]
        })
        .collect();
    crate::listing::table(&columns, &rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    const NET: &str = "<VNET><ID>3</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>\
        <GNAME>oneadmin</GNAME><NAME>net</NAME><PERMISSIONS><OWNER_U>1</OWNER_U>\
        <OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M>\
        <GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A>\
        </PERMISSIONS><CLUSTERS><ID>0</ID><ID>2</ID></CLUSTERS><BRIDGE>br0</BRIDGE>\
        <STATE>1</STATE><VN_MAD>dummy</VN_MAD><PHYDEV/><VLAN_ID/><OUTER_VLAN_ID/>\
        <VLAN_ID_AUTOMATIC>0</VLAN_ID_AUTOMATIC><OUTER_VLAN_ID_AUTOMATIC>0\
        </OUTER_VLAN_ID_AUTOMATIC><USED_LEASES>2</USED_LEASES><VROUTERS><ID>4</ID></VROUTERS>\
        <UPDATED_VMS/><OUTDATED_VMS><ID>7</ID></OUTDATED_VMS><UPDATING_VMS><ID>8</ID>\
        </UPDATING_VMS><ERROR_VMS/><TEMPLATE><BRIDGE><![CDATA[br0]]></BRIDGE>\
        <DNS><![CDATA[1.1.1.1]]></DNS><V><A><![CDATA[x]]></A><B><![CDATA[y]]></B></V>\
        </TEMPLATE><AR_POOL><AR><AR_ID>0</AR_ID><IP>10.0.0.1</IP><MAC>02:00:0a:00:00:01</MAC>\
        <SIZE>3</SIZE><TYPE>IP4</TYPE><MAC_END>02:00:0a:00:00:03</MAC_END>\
        <IP_END>10.0.0.3</IP_END><USED_LEASES>2</USED_LEASES><LEASES><LEASE>\
        <IP>10.0.0.1</IP><MAC>02:00:0a:00:00:01</MAC><VM>-1</VM></LEASE><LEASE>\
        <IP>10.0.0.2</IP><MAC>02:00:0a:00:00:02</MAC><VNET>9</VNET></LEASE></LEASES></AR>\
        </AR_POOL></VNET>";

    #[test]
    fn show_prints_the_layout_of_opennebulas_helper() {
        let v = Element::parse(NET).unwrap();
        let want = "VIRTUAL NETWORK 3 INFORMATION
ID                       : 3
NAME                     : net
USER                     : oneadmin
GROUP                    : oneadmin
LOCK                     : None
CLUSTERS                 : 0,2
BRIDGE                   : br0
STATE                    : READY
VN_MAD                   : dummy
AUTOMATIC VLAN ID        : NO
AUTOMATIC OUTER VLAN ID  : NO
USED LEASES              : 2

PERMISSIONS
OWNER                    : um-
GROUP                    : ---
OTHER                    : ---

VIRTUAL NETWORK TEMPLATE
BRIDGE=\"br0\"
DNS=\"1.1.1.1\"
V=[ A=\"x\", B=\"y\" ]

ADDRESS RANGE POOL
AR 0
SIZE           : 3
LEASES         : 2

RANGE                                   FIRST                               LAST
MAC                         02:00:0a:00:00:01                  02:00:0a:00:00:03
IP                                   10.0.0.1                           10.0.0.3


LEASES
AR  OWNER                    MAC       IP PORT_FORWARD   IP6
0   V:-1       02:00:0a:00:00:01 10.0.0.1     -     -
0   N:9        02:00:0a:00:00:02 10.0.0.2     -     -

VIRTUAL ROUTERS
4

VIRTUAL MACHINES
UPDATED        :
OUTDATED       : 7,8
ERROR          :
";
        assert_eq!(layout(&v, false), want);
        let with_ar = layout(&v, true);
        assert!(
            with_ar.ends_with(
                "ERROR          :\n\nTEMPLATE FOR AR 0\nAR_ID=\"0\"\nIP=\"10.0.0.1\"\n\
                 MAC=\"02:00:0a:00:00:01\"\nSIZE=\"3\"\nTYPE=\"IP4\"\n\
                 MAC_END=\"02:00:0a:00:00:03\"\nIP_END=\"10.0.0.3\"\nUSED_LEASES=\"2\"\n\
                 LEASES=[\n ]\n"
            ),
            "{with_ar}"
        );
    }

    #[test]
    fn a_network_without_ranges_keeps_the_wide_rows() {
        let v = Element::parse(
            "<VNET><ID>1</ID><NAME>n</NAME><STATE>2</STATE><VN_MAD>bridge</VN_MAD>\
             <VLAN_ID>5</VLAN_ID><AR_POOL/></VNET>",
        )
        .unwrap();
        let s = layout(&v, false);
        assert!(
            s.contains("STATE                    : LOCK_CREATE\n"),
            "{s}"
        );
        assert!(s.contains("VLAN ID                  : 5\n"), "{s}");
        assert!(s.contains("OUTER VLAN ID            :\n"), "{s}");
        assert!(s.contains("\nVIRTUAL NETWORK TEMPLATE\n\n\nADDRESS RANGE POOL\n\nLEASES\nAR  OWNER        MAC    IP PORT_FORWARD   IP6\n\nVIRTUAL ROUTERS\n\nVIRTUAL MACHINES\nUPDATED                  :\n"), "{s}");
    }

    #[test]
    fn the_list_shows_onevnet_yamls_default_columns() {
        let v = Element::parse(NET).unwrap();
        let t = table(&[&v], &ListOpts::default());
        let lo = ListOpts {
            csv_del: ",".into(),
            ..ListOpts::default()
        };
        assert_eq!(
            crate::listing::render(&t, &lo).unwrap(),
            [
                "  ID USER     GROUP    NAME            CLUSTERS   BRIDGE   STATE  LEASES OUTD ERRO",
                "   3 oneadmin oneadmin net             0,2        br0      rdy         2    1    0"
            ]
        );
        let lo = ListOpts {
            columns: Some(vec!["NAME".into(), "UPDATED".into()]),
            ..lo
        };
        assert_eq!(
            crate::listing::render(&t, &lo).unwrap(),
            ["NAME            UPDA", "net                0"]
        );
    }
}
