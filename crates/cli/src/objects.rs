//! `oneuser`, `onegroup`, `oneacl`, `onehost`, `onevm` and `onetemplate`: list (OpenNebula's
//! table columns), show, create, delete and the common actions, over the same client and
//! credential rules as `onezone`.

use std::io::Write;
use std::time::Duration;

use xmlrpc::Value;

use crate::client::{resolve_ca_file, resolve_endpoint, resolve_session, CallError, Client};
use crate::xml::Element;

/// Exit code of every failure, as OpenNebula's CLI.
pub const EXIT_FAILURE: i32 = 255;

/// Which command this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
    Acl,
    Host,
    Vm,
    Template,
    Cluster,
    Vdc,
    Hook,
    Market,
    MarketApp,
}

impl Kind {
    pub fn command(self) -> &'static str {
        match self {
            Kind::User => "oneuser",
            Kind::Group => "onegroup",
            Kind::Acl => "oneacl",
            Kind::Host => "onehost",
            Kind::Vm => "onevm",
            Kind::Template => "onetemplate",
            Kind::Cluster => "onecluster",
            Kind::Vdc => "onevdc",
            Kind::Hook => "onehook",
            Kind::Market => "onemarket",
            Kind::MarketApp => "onemarketapp",
        }
    }

    pub(crate) fn usage(self) -> &'static str {
        match self {
            Kind::User => "oneuser list | show <id> | create <name> <password> | delete <id> | passwd <id> <password> | chgrp <id> <gid> | enable <id> | disable <id> | chauth <id> <driver> [<password>] | login|token-create [<name>] [--time <s>] [--group <gid>] [--force] | token-set --token <prefix>|--group <gid>|--global | token-delete <prefix> | token-delete-all <name> | quota <id> <file> | defaultquota <file> | update <id> <file> [--append] | addgroup|delgroup <id> <group_id>",
            Kind::Group => "onegroup list | show <id> | create <name> | delete <id> | quota <id> <file> | defaultquota <file> | update <id> <file> [--append] | addadmin|deladmin <id> <user_id>",
            Kind::Acl => "oneacl list | create \"<user> <resources>/<id> <rights> [<zone>]\" | delete <id>",
            Kind::Host => "onehost list | show <id> | create <name> [-i <im_mad>] [-v <vm_mad>] [-c <cluster>] | delete <id> | enable <id> | disable <id> | offline <id>",
            Kind::Vm => "onevm list | show <id> | create <file> [--hold] | deploy <id> <host_id> | terminate|poweroff|undeploy|reboot <id> [--hard] | hold|release|resume|stop|suspend <id>",
            Kind::Template => "onetemplate list | show <id> | create <file> | delete <id> | clone <id> <name> | instantiate <id> [--name <name>] [--hold]",
            Kind::Cluster => "onecluster list | show <id> | create <name> | delete <id> | rename <id> <name> | update <id> <file> [--append] | addhost|delhost <id> <host_id> | adddatastore|deldatastore <id> <datastore_id> | addvnet|delvnet <id> <vnet_id>",
            Kind::Vdc => "onevdc list | show <id> | create <name> | delete <id> | rename <id> <name> | update <id> <file> [--append] | addgroup|delgroup <id> <group_id> | addcluster|delcluster|addhost|delhost|adddatastore|deldatastore|addvnet|delvnet <id> <zone_id> <id|ALL>",
            Kind::Hook => "onehook list | show <id> [-x] [-e <exec_id>] | create <file> [--dry] | delete <id> | update <id> <file> [--append] | rename <id> <name> | lock <id> [--use|--manage|--admin|--all] | unlock <id> | retry <id> <exec_id> | log [--success|--error] [--hook-id <id>] [--since <date>] [--until <date>] [-x|--xml]",
            Kind::Market => "onemarket list [-x] | show <id> [-x] | create <file> | delete <id> | update <id> <file> [--append] | rename <id> <name> | chgrp <id> <group_id> | chown <id> <user_id> [<group_id>] | chmod <id> <octet> | enable <id> | disable <id>",
            Kind::MarketApp => "onemarketapp list [a|m|g|G|<user_id>] [-x] | show <id> [-x] | create [<file>] -m <market_id> [--name <name>] [--description <text>] [--image <image_id>] [--dry] | export <id> <name> -d <datastore_id> [--file-datastore <id>] [--vmname <name>] [--template <template_id>] [--no] | delete <id> | update <id> <file> [--append] | rename <id> <name> | chgrp <id> <group_id> | chown <id> <user_id> [<group_id>] | chmod <id> <octet> | enable <id> | disable <id> | lock <id> [--use|--manage|--admin|--all] | unlock <id>",
        }
    }
}

pub(crate) struct Opts {
    pub(crate) words: Vec<String>,
    pub(crate) flags: Vec<(String, Option<String>)>,
}

impl Opts {
    pub(crate) fn flag(&self, names: &[&str]) -> bool {
        self.flags.iter().any(|(f, _)| names.contains(&f.as_str()))
    }
    pub(crate) fn value(&self, names: &[&str]) -> Option<String> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| names.contains(&f.as_str()))
            .and_then(|(_, v)| v.clone())
    }
}

/// Flags that take a value.
const VALUED: &[&str] = &[
    "--user",
    "--password",
    "--endpoint",
    "--ca-file",
    "-i",
    "--im",
    "-v",
    "--vm",
    "-c",
    "--cluster",
    "--name",
    "--time",
    "--group",
    "--token",
    "--driver",
    "-e",
    "--execution",
    "--hook-id",
    "--since",
    "--until",
    "-m",
    "--marketplace",
    "--description",
    "--image",
    "-d",
    "--datastore",
    "--file-datastore",
    "--vmname",
    "--template",
];

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        words: Vec::new(),
        flags: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
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

pub(crate) fn id(word: Option<&String>, what: &str) -> Result<i32, String> {
    let w = word.ok_or_else(|| format!("missing {what}"))?;
    w.parse().map_err(|_| format!("Invalid {what} '{w}'"))
}

pub(crate) fn err_text(e: CallError) -> String {
    match e {
        CallError::One(e) => e.message,
        other => other.to_string(),
    }
}

pub(crate) fn text<'a>(e: &'a Element, name: &str) -> &'a str {
    e.text_of(name).unwrap_or("")
}

fn int(e: &Element, name: &str) -> i64 {
    e.int_of(name).unwrap_or(-1)
}

/// OpenNebula's short VM state (`onevm list` STAT column).
pub fn vm_stat(state: i64, lcm: i64) -> &'static str {
    wire::state::vm_short_name(state, lcm)
}

/// OpenNebula's short host state (`onehost list` STAT column).
fn host_stat(state: i64) -> &'static str {
    wire::HostState::from_i64(state).map_or("unkn", wire::HostState::short_name)
}

fn mem(kib: i64) -> String {
    if kib >= 1 << 20 {
        format!("{}G", kib >> 20)
    } else {
        format!("{}M", kib >> 10)
    }
}

fn list(kind: Kind, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let pool_args = || vec![Value::Int(-2), Value::Int(-1), Value::Int(-1)];
    let (method, params, item) = match kind {
        Kind::User => (wire::method::USERPOOL_INFO, vec![], "USER"),
        Kind::Group => (wire::method::GROUPPOOL_INFO, vec![], "GROUP"),
        Kind::Acl => (wire::method::ACL_INFO, vec![], "ACL"),
        Kind::Host => (wire::method::HOSTPOOL_INFO, vec![], "HOST"),
        Kind::Vm => {
            let mut p = pool_args();
            p.push(Value::Int(-1));
            (wire::method::VMPOOL_INFO, p, "VM")
        }
        Kind::Template => (wire::method::TEMPLATEPOOL_INFO, pool_args(), "VMTEMPLATE"),
        Kind::Cluster => ("one.clusterpool.info", vec![], "CLUSTER"),
        Kind::Vdc => ("one.vdcpool.info", vec![], "VDC"),
        Kind::Market => ("one.marketpool.info", vec![], "MARKETPLACE"),
        Kind::MarketApp => ("one.marketapppool.info", pool_args(), "MARKETPLACEAPP"),
        Kind::Hook => (
            "one.hookpool.info",
            vec![Value::Int(-1), Value::Int(-1), Value::Int(-1)],
            "HOOK",
        ),
    };
    let xml = client.call_xml(method, params).map_err(err_text)?;
    let pool = Element::parse(&xml).map_err(|e| e.to_string())?;
    let w = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(|e| e.to_string());
    match kind {
        Kind::User => {
            w(
                out,
                format!(
                    "{:>4} {:<20} {:<4} {:<8} {:<8}",
                    "ID", "NAME", "ENAB", "GROUP", "AUTH"
                ),
            )?;
            for u in pool.children_named(item) {
                let enab = if int(u, "ENABLED") == 1 { "yes" } else { "no" };
                w(
                    out,
                    format!(
                        "{:>4} {:<20} {:<4} {:<8} {:<8}",
                        int(u, "ID"),
                        text(u, "NAME"),
                        enab,
                        text(u, "GNAME"),
                        text(u, "AUTH_DRIVER")
                    ),
                )?;
            }
        }
        Kind::Group => {
            w(out, format!("{:>4} {:<20} {:>5}", "ID", "NAME", "USERS"))?;
            for g in pool.children_named(item) {
                let users = g
                    .child("USERS")
                    .map(|u| u.children_named("ID").count())
                    .unwrap_or(0);
                w(
                    out,
                    format!("{:>4} {:<20} {:>5}", int(g, "ID"), text(g, "NAME"), users),
                )?;
            }
        }
        Kind::Acl => {
            w(out, format!("{:>4} {}", "ID", "RULE"))?;
            for a in pool.children_named(item) {
                w(out, format!("{:>4} {}", int(a, "ID"), text(a, "STRING")))?;
            }
        }
        Kind::Host => {
            w(
                out,
                format!(
                    "{:>4} {:<18} {:<10} {:>3} {:>20} {:>20} {:<4}",
                    "ID", "NAME", "CLUSTER", "TVM", "ALLOCATED_CPU", "ALLOCATED_MEM", "STAT"
                ),
            )?;
            for h in pool.children_named(item) {
                let share = h.child("HOST_SHARE");
                let g = |n: &str| share.map(|s| int(s, n)).unwrap_or(0);
                let pct = |a: i64, t: i64| if t > 0 { a * 100 / t } else { 0 };
                w(
                    out,
                    format!(
                        "{:>4} {:<18} {:<10} {:>3} {:>20} {:>20} {:<4}",
                        int(h, "ID"),
                        text(h, "NAME"),
                        text(h, "CLUSTER"),
                        g("RUNNING_VMS"),
                        format!(
                            "{} / {} ({}%)",
                            g("CPU_USAGE"),
                            g("TOTAL_CPU"),
                            pct(g("CPU_USAGE"), g("TOTAL_CPU"))
                        ),
                        format!(
                            "{} / {} ({}%)",
                            mem(g("MEM_USAGE")),
                            mem(g("TOTAL_MEM")),
                            pct(g("MEM_USAGE"), g("TOTAL_MEM"))
                        ),
                        host_stat(int(h, "STATE")),
                    ),
                )?;
            }
        }
        Kind::Vm => {
            w(
                out,
                format!(
                    "{:>6} {:<8} {:<8} {:<20} {:<4} {:>4} {:>7} {:<12}",
                    "ID", "USER", "GROUP", "NAME", "STAT", "CPU", "MEM", "HOST"
                ),
            )?;
            for v in pool.children_named(item) {
                let t = v.child("TEMPLATE");
                let host = v
                    .child("HISTORY_RECORDS")
                    .and_then(|h| h.children_named("HISTORY").last())
                    .map(|h| text(h, "HOSTNAME").to_string())
                    .unwrap_or_default();
                let memory = t
                    .map(|t| text(t, "MEMORY").parse::<i64>().unwrap_or(0))
                    .unwrap_or(0);
                w(
                    out,
                    format!(
                        "{:>6} {:<8} {:<8} {:<20} {:<4} {:>4} {:>7} {:<12}",
                        int(v, "ID"),
                        text(v, "UNAME"),
                        text(v, "GNAME"),
                        text(v, "NAME"),
                        vm_stat(int(v, "STATE"), int(v, "LCM_STATE")),
                        t.map(|t| text(t, "CPU")).unwrap_or(""),
                        mem(memory * 1024),
                        host,
                    ),
                )?;
            }
        }
        Kind::Template => {
            w(
                out,
                format!("{:>4} {:<8} {:<8} {:<28}", "ID", "USER", "GROUP", "NAME"),
            )?;
            for t in pool.children_named(item) {
                w(
                    out,
                    format!(
                        "{:>4} {:<8} {:<8} {:<28}",
                        int(t, "ID"),
                        text(t, "UNAME"),
                        text(t, "GNAME"),
                        text(t, "NAME")
                    ),
                )?;
            }
        }
        Kind::Vdc => {
            // onevdc_helper's default columns.
            w(
                out,
                format!(
                    "{:>5} {:<30} {:>6} {:>8} {:>5} {:>5} {:>10}",
                    "ID", "NAME", "GROUPS", "CLUSTERS", "HOSTS", "VNETS", "DATASTORES"
                ),
            )?;
            for v in pool.children_named(item) {
                let n = |list: &str, each: &str| {
                    v.child(list).map_or(0, |l| l.children_named(each).count())
                };
                w(
                    out,
                    format!(
                        "{:>5} {:<30} {:>6} {:>8} {:>5} {:>5} {:>10}",
                        int(v, "ID"),
                        text(v, "NAME"),
                        n("GROUPS", "ID"),
                        n("CLUSTERS", "CLUSTER"),
                        n("HOSTS", "HOST"),
                        n("VNETS", "VNET"),
                        n("DATASTORES", "DATASTORE")
                    ),
                )?;
            }
        }
        Kind::Cluster => {
            // onecluster_helper's default columns.
            w(
                out,
                format!(
                    "{:>5} {:<25} {:>5} {:>5} {:>10}",
                    "ID", "NAME", "HOSTS", "VNETS", "DATASTORES"
                ),
            )?;
            for c in pool.children_named(item) {
                let n = |list: &str| c.child(list).map_or(0, |l| l.children_named("ID").count());
                w(
                    out,
                    format!(
                        "{:>5} {:<25} {:>5} {:>5} {:>10}",
                        int(c, "ID"),
                        text(c, "NAME"),
                        n("HOSTS"),
                        n("VNETS"),
                        n("DATASTORES")
                    ),
                )?;
            }
        }
        Kind::Hook => {
            let hooks: Vec<&Element> = pool.children_named(item).collect();
            crate::hook::list(&hooks, out)?;
        }
        Kind::Market | Kind::MarketApp => crate::market::pool_table(kind, &pool, out)?,
    }
    Ok(())
}

/// `show`: the object's fields, one per line, then its template, as `KEY=value`; a hook's
/// own layout, or with `execution` one of its execution records.
fn show(
    kind: Kind,
    client: &Client,
    oid: i32,
    xml_out: bool,
    execution: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let method = match kind {
        Kind::User => wire::method::USER_INFO,
        Kind::Group => wire::method::GROUP_INFO,
        Kind::Host => wire::method::HOST_INFO,
        Kind::Vm => wire::method::VM_INFO,
        Kind::Template => wire::method::TEMPLATE_INFO,
        Kind::Cluster => "one.cluster.info",
        Kind::Vdc => "one.vdc.info",
        Kind::Hook => "one.hook.info",
        Kind::Market | Kind::MarketApp => {
            return crate::market::show(kind, client, oid, xml_out, out)
        }
        Kind::Acl => return Err("oneacl has no show; use oneacl list".into()),
    };
    let xml = client
        .call_xml(method, vec![Value::Int(oid)])
        .map_err(err_text)?;
    if xml_out {
        return writeln!(out, "{xml}").map_err(|e| e.to_string());
    }
    let e = Element::parse(&xml).map_err(|e| e.to_string())?;
    if kind == Kind::Hook {
        return crate::hook::show(&e, execution, out);
    }
    let title = match kind {
        Kind::User => "USER",
        Kind::Group => "GROUP",
        Kind::Host => "HOST",
        Kind::Vm => "VIRTUAL MACHINE",
        Kind::Template => "TEMPLATE",
        Kind::Cluster => "CLUSTER",
        Kind::Vdc => "VDC",
        Kind::Hook => "HOOK",
        Kind::Market => "MARKETPLACE",
        Kind::MarketApp => "MARKETPLACE APP",
        Kind::Acl => "ACL",
    };
    let mut lines = vec![format!("{title} {oid} INFORMATION")];
    for c in &e.children {
        if c.children.is_empty() {
            lines.push(format!("{:<16}: {}", c.name, c.text));
        }
    }
    if kind == Kind::Vm {
        lines.push(format!(
            "{:<16}: {}",
            "STAT",
            vm_stat(int(&e, "STATE"), int(&e, "LCM_STATE"))
        ));
    }
    if let Some(t) = e.child("TEMPLATE") {
        lines.push(String::new());
        lines.push(format!("{title} TEMPLATE"));
        for a in &t.children {
            if a.children.is_empty() {
                lines.push(format!("{}=\"{}\"", a.name, a.text));
            } else {
                let inner: Vec<String> = a
                    .children
                    .iter()
                    .map(|p| format!("{}=\"{}\"", p.name, p.text))
                    .collect();
                lines.push(format!("{}=[ {} ]", a.name, inner.join(", ")));
            }
        }
    }
    writeln!(out, "{}", lines.join("\n")).map_err(|e| e.to_string())
}

pub(crate) fn file_text(path: Option<&String>) -> Result<String, String> {
    let p = path.ok_or("missing the template file")?;
    std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))
}

fn execute(kind: Kind, o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let w1 = o.words.get(1);
    let w2 = o.words.get(2);
    let call = |method: &str, params: Vec<Value>| -> Result<Value, String> {
        client.call(method, params).map_err(err_text)
    };
    let say_id = |out: &mut dyn Write, v: Value| -> Result<(), String> {
        writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
    };
    match (kind, cmd) {
        // Every subcommand of these two, list and show included (`list` takes a filter there).
        (Kind::Market | Kind::MarketApp, _) => crate::market::execute(kind, o, client, out),
        (_, "list") => list(kind, client, out),
        (_, "show") => show(
            kind,
            client,
            id(w1, "id")?,
            o.flag(&["-x", "--xml"]),
            o.value(&["-e", "--execution"]).as_deref(),
            out,
        ),
        (Kind::User, "create") => {
            let name = w1.ok_or("missing the user name")?;
            let pw = w2.ok_or("missing the password")?;
            say_id(
                out,
                call(
                    wire::method::USER_ALLOCATE,
                    vec![
                        Value::String(name.clone()),
                        Value::String(pw.clone()),
                        Value::String(String::new()),
                    ],
                )?,
            )
        }
        (Kind::User, "passwd") => {
            let pw = w2.ok_or("missing the password")?;
            call(
                wire::method::USER_PASSWD,
                vec![Value::Int(id(w1, "id")?), Value::String(pw.clone())],
            )
            .map(drop)
        }
        (Kind::User, "chauth") => {
            let driver = match (o.value(&["--driver"]), w2) {
                (Some(d), _) => d,
                (None, Some(d)) => d.clone(),
                // OpenNebula's oneuser says so and exits 0.
                (None, None) => {
                    return writeln!(out, "An Auth driver should be specified")
                        .map_err(|e| e.to_string())
                }
            };
            let pw = o.words.get(3).cloned().unwrap_or_default();
            call(
                wire::method::USER_CHAUTH,
                vec![
                    Value::Int(id(w1, "id")?),
                    Value::String(driver),
                    Value::String(pw),
                ],
            )
            .map(drop)
        }
        (Kind::User, "login" | "token-create") => crate::tokens::login(
            client,
            crate::tokens::Login {
                user: w1.cloned(),
                time: o.value(&["--time"]),
                group: o.value(&["--group"]),
                force: o.flag(&["--force"]),
                auth_file: crate::tokens::one_auth_path(
                    std::env::var_os("ONE_AUTH").map(std::path::PathBuf::from),
                    crate::tokens::home(),
                ),
            },
            &mut std::io::stdin().lock(),
            out,
        ),
        (Kind::User, "token-set") => crate::tokens::set(
            client,
            o.value(&["--token"]),
            o.value(&["--group"]),
            o.flag(&["--global"]),
            crate::tokens::home(),
            out,
        ),
        (Kind::User, "token-delete") => {
            let hint = w2.or(w1).ok_or("missing the token")?;
            crate::tokens::delete(client, hint, crate::tokens::home(), out)
        }
        (Kind::User, "token-delete-all") => {
            crate::tokens::delete_all(client, w1.ok_or("missing the user name")?)
        }
        (Kind::User, "chgrp") => call(
            wire::method::USER_CHGRP,
            vec![Value::Int(id(w1, "id")?), Value::Int(id(w2, "group id")?)],
        )
        .map(drop),
        (Kind::User, "enable" | "disable") => call(
            wire::method::USER_ENABLE,
            vec![Value::Int(id(w1, "id")?), Value::Bool(cmd == "enable")],
        )
        .map(drop),
        (Kind::Group, "create") => {
            let name = w1.ok_or("missing the group name")?;
            say_id(
                out,
                call(
                    wire::method::GROUP_ALLOCATE,
                    vec![Value::String(name.clone())],
                )?,
            )
        }
        (Kind::Acl, "create") => {
            let rule = w1.ok_or("missing the rule")?;
            let (u, r, ri, z) = parse_rule(rule)?;
            let mut params = vec![Value::String(u), Value::String(r), Value::String(ri)];
            if let Some(z) = z {
                params.push(Value::String(z));
            }
            say_id(out, call(wire::method::ACL_ADDRULE, params)?)
        }
        (Kind::Acl, "delete") => {
            call(wire::method::ACL_DELRULE, vec![Value::Int(id(w1, "id")?)]).map(drop)
        }
        (Kind::Host, "create") => {
            let name = w1.ok_or("missing the host name")?;
            let im = o.value(&["-i", "--im"]).unwrap_or_else(|| "dummy".into());
            let vmm = o.value(&["-v", "--vm"]).unwrap_or_else(|| "dummy".into());
            let cluster: i32 = o
                .value(&["-c", "--cluster"])
                .and_then(|c| c.parse().ok())
                .unwrap_or(-1);
            say_id(
                out,
                call(
                    wire::method::HOST_ALLOCATE,
                    vec![
                        Value::String(name.clone()),
                        Value::String(im),
                        Value::String(vmm),
                        Value::Int(cluster),
                    ],
                )?,
            )
        }
        (Kind::Host, "enable" | "disable" | "offline") => {
            let status = match cmd {
                "enable" => 0,
                "disable" => 1,
                _ => 2,
            };
            call(
                wire::method::HOST_STATUS,
                vec![Value::Int(id(w1, "id")?), Value::Int(status)],
            )
            .map(drop)
        }
        (Kind::Vm, "create") => {
            let text = file_text(w1)?;
            say_id(
                out,
                call(
                    wire::method::VM_ALLOCATE,
                    vec![Value::String(text), Value::Bool(o.flag(&["--hold"]))],
                )?,
            )
        }
        (Kind::Vm, "deploy") => call(
            wire::method::VM_DEPLOY,
            vec![Value::Int(id(w1, "id")?), Value::Int(id(w2, "host id")?)],
        )
        .map(drop),
        (
            Kind::Vm,
            a @ ("terminate" | "poweroff" | "undeploy" | "reboot" | "hold" | "release" | "resume"
            | "stop" | "suspend"),
        ) => {
            let action = if o.flag(&["--hard"])
                && matches!(a, "terminate" | "poweroff" | "undeploy" | "reboot")
            {
                format!("{a}-hard")
            } else {
                a.to_string()
            };
            call(
                wire::method::VM_ACTION,
                vec![Value::String(action), Value::Int(id(w1, "id")?)],
            )
            .map(drop)
        }
        (Kind::Template, "create") => say_id(
            out,
            call(
                wire::method::TEMPLATE_ALLOCATE,
                vec![Value::String(file_text(w1)?)],
            )?,
        ),
        (Kind::Template, "clone") => {
            let name = w2.ok_or("missing the new name")?;
            say_id(
                out,
                call(
                    wire::method::TEMPLATE_CLONE,
                    vec![Value::Int(id(w1, "id")?), Value::String(name.clone())],
                )?,
            )
        }
        (Kind::User | Kind::Group, "update") => {
            let method = if kind == Kind::User {
                "one.user.update"
            } else {
                "one.group.update"
            };
            call(
                method,
                vec![
                    Value::Int(id(w1, "id")?),
                    Value::String(file_text(w2)?),
                    Value::Int(i32::from(o.flag(&["-a", "--append"]))),
                ],
            )
            .map(drop)
        }
        (Kind::User, verb @ ("addgroup" | "delgroup")) => call(
            &format!("one.user.{verb}"),
            vec![Value::Int(id(w1, "id")?), Value::Int(id(w2, "group id")?)],
        )
        .map(drop),
        (Kind::Group, verb @ ("addadmin" | "deladmin")) => call(
            &format!("one.group.{verb}"),
            vec![Value::Int(id(w1, "id")?), Value::Int(id(w2, "user id")?)],
        )
        .map(drop),
        (Kind::User | Kind::Group, "quota") => {
            let method = if kind == Kind::User {
                "one.user.quota"
            } else {
                "one.group.quota"
            };
            call(
                method,
                vec![Value::Int(id(w1, "id")?), Value::String(file_text(w2)?)],
            )
            .map(drop)
        }
        (Kind::User | Kind::Group, "defaultquota") => {
            let method = if kind == Kind::User {
                "one.userquota.update"
            } else {
                "one.groupquota.update"
            };
            call(method, vec![Value::String(file_text(w1)?)]).map(drop)
        }
        (Kind::Template, "instantiate") => {
            let name = o.value(&["--name"]).unwrap_or_default();
            let v = call(
                wire::method::TEMPLATE_INSTANTIATE,
                vec![
                    Value::Int(id(w1, "id")?),
                    Value::String(name),
                    Value::Bool(o.flag(&["--hold"])),
                    Value::String(String::new()),
                ],
            )?;
            writeln!(out, "VM ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
        }
        (Kind::Cluster, "create") => {
            let name = w1.ok_or("missing the cluster name")?;
            say_id(
                out,
                call("one.cluster.allocate", vec![Value::String(name.clone())])?,
            )
        }
        (Kind::Cluster, "rename") => {
            let name = w2.ok_or("missing the new name")?;
            call(
                "one.cluster.rename",
                vec![Value::Int(id(w1, "id")?), Value::String(name.clone())],
            )
            .map(drop)
        }
        (Kind::Cluster, "update") => call(
            "one.cluster.update",
            vec![
                Value::Int(id(w1, "id")?),
                Value::String(file_text(w2)?),
                Value::Int(i32::from(o.flag(&["-a", "--append"]))),
            ],
        )
        .map(drop),
        (
            Kind::Cluster,
            verb
            @ ("addhost" | "delhost" | "adddatastore" | "deldatastore" | "addvnet" | "delvnet"),
        ) => call(
            &format!("one.cluster.{verb}"),
            vec![Value::Int(id(w1, "id")?), Value::Int(id(w2, "object id")?)],
        )
        .map(drop),
        (Kind::Vdc, "create") => {
            let name = w1.ok_or("missing the VDC name")?;
            let text = format!(
                "NAME = \"{}\"",
                name.replace('\\', "\\\\").replace('"', "\\\"")
            );
            say_id(out, call("one.vdc.allocate", vec![Value::String(text)])?)
        }
        (Kind::Vdc, "rename") => {
            let name = w2.ok_or("missing the new name")?;
            call(
                "one.vdc.rename",
                vec![Value::Int(id(w1, "id")?), Value::String(name.clone())],
            )
            .map(drop)
        }
        (Kind::Vdc, "update") => call(
            "one.vdc.update",
            vec![
                Value::Int(id(w1, "id")?),
                Value::String(file_text(w2)?),
                Value::Int(i32::from(o.flag(&["-a", "--append"]))),
            ],
        )
        .map(drop),
        (Kind::Vdc, verb @ ("addgroup" | "delgroup")) => call(
            &format!("one.vdc.{verb}"),
            vec![Value::Int(id(w1, "id")?), Value::Int(id(w2, "group id")?)],
        )
        .map(drop),
        (
            Kind::Vdc,
            verb @ ("addcluster" | "delcluster" | "addhost" | "delhost" | "adddatastore"
            | "deldatastore" | "addvnet" | "delvnet"),
        ) => {
            // OpenNebula's CLI takes ALL for every resource of the kind (id -10).
            let rid = match o.words.get(3).map(String::as_str) {
                Some("ALL") => -10,
                other => id(other.map(String::from).as_ref(), "resource id")?,
            };
            call(
                &format!("one.vdc.{verb}"),
                vec![
                    Value::Int(id(w1, "id")?),
                    Value::Int(id(w2, "zone id")?),
                    Value::Int(rid),
                ],
            )
            .map(drop)
        }
        (Kind::Hook, "create") => {
            let text = file_text(Some(w1.ok_or("No hook template provided")?))?;
            if o.flag(&["--dry"]) {
                // As Ruby's `puts`: one final line break.
                let end = if text.ends_with('\n') { "" } else { "\n" };
                return write!(out, "{text}{end}").map_err(|e| e.to_string());
            }
            say_id(out, call("one.hook.allocate", vec![Value::String(text)])?)
        }
        (Kind::Hook, "update") => call(
            "one.hook.update",
            vec![
                Value::Int(id(w1, "id")?),
                Value::String(file_text(w2)?),
                Value::Int(i32::from(o.flag(&["-a", "--append"]))),
            ],
        )
        .map(drop),
        (Kind::Hook, "rename") => {
            let name = w2.ok_or("missing the new name")?;
            call(
                "one.hook.rename",
                vec![Value::Int(id(w1, "id")?), Value::String(name.clone())],
            )
            .map(drop)
        }
        (Kind::Hook, "lock") => {
            // onehook's levels, the first flag given winning in this order; USE by default.
            let level = [("--use", 1), ("--manage", 2), ("--admin", 3), ("--all", 4)]
                .into_iter()
                .find(|(flag, _)| o.flag(&[flag]))
                .map_or(1, |(_, level)| level);
            call(
                "one.hook.lock",
                vec![
                    Value::Int(id(w1, "id")?),
                    Value::Int(level),
                    Value::Bool(false),
                ],
            )
            .map(drop)
        }
        (Kind::Hook, "unlock") => {
            call("one.hook.unlock", vec![Value::Int(id(w1, "id")?)]).map(drop)
        }
        (Kind::Hook, "retry") => call(
            "one.hook.retry",
            vec![
                Value::Int(id(w1, "id")?),
                Value::Int(id(w2, "execution id")?),
            ],
        )
        .map(drop),
        (Kind::Hook, "log") => {
            let date = |names: &[&str]| {
                o.value(names)
                    .map_or(Ok(-1), |d| crate::hook::parse_date(&d))
            };
            let hook = match o.value(&["--hook-id"]) {
                Some(h) => id(Some(&h), "hook id")?,
                None => -1,
            };
            // one.hooklog.info's rc: 1 successes only, -1 failures only, 0 both.
            let rc = if o.flag(&["--success"]) {
                1
            } else if o.flag(&["--error"]) {
                -1
            } else {
                0
            };
            crate::hook::log(
                client,
                [date(&["--since"])?, date(&["--until"])?, hook, rc],
                o.flag(&["-x", "--xml"]),
                out,
            )
        }
        (
            Kind::User
            | Kind::Group
            | Kind::Host
            | Kind::Template
            | Kind::Cluster
            | Kind::Vdc
            | Kind::Hook,
            "delete",
        ) => {
            let method = match kind {
                Kind::User => wire::method::USER_DELETE,
                Kind::Group => wire::method::GROUP_DELETE,
                Kind::Host => wire::method::HOST_DELETE,
                Kind::Cluster => "one.cluster.delete",
                Kind::Vdc => "one.vdc.delete",
                Kind::Hook => "one.hook.delete",
                _ => wire::method::TEMPLATE_DELETE,
            };
            call(method, vec![Value::Int(id(w1, "id")?)]).map(drop)
        }
        (_, "") => Err(format!("No command given.\nusage: {}", kind.usage())),
        (_, other) => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

/// `"<user> <resources>/<id> <rights> [<zone>]"` into the hex strings `one.acl.addrule` takes.
pub fn parse_rule(rule: &str) -> Result<(String, String, String, Option<String>), String> {
    let parts: Vec<&str> = rule.split_whitespace().collect();
    if parts.len() < 3 || parts.len() > 4 {
        return Err(format!(
            "malformed rule '{rule}': expected \"<user> <resources>/<id> <rights> [<zone>]\""
        ));
    }
    let selector = |s: &str| -> Result<u64, String> {
        wire::acl::parse_selector(s).map_err(|e| match e {
            wire::acl::SelectorError::BadId => format!("malformed rule: bad id in '{s}'"),
            wire::acl::SelectorError::BadSelector => format!("malformed rule: bad selector '{s}'"),
        })
    };
    let user = selector(parts[0])?;
    let (types, rid) = parts[1]
        .split_once('/')
        .ok_or("malformed rule: resources need /<id>")?;
    let mut resource = selector(rid)?;
    for t in types.split('+') {
        resource |=
            wire::acl::resource_bit(t).ok_or(format!("malformed rule: unknown resource {t}"))?;
    }
    let mut rights = 0u64;
    for r in parts[2].split('+') {
        rights |= wire::acl::right_bit(r)
            .ok_or_else(|| format!("malformed rule: unknown right {}", r.to_ascii_uppercase()))?;
    }
    let zone = parts.get(3).map(|z| selector(z)).transpose()?;
    Ok((
        format!("0x{user:x}"),
        format!("0x{resource:x}"),
        format!("0x{rights:x}"),
        zone.map(|z| format!("0x{z:x}")),
    ))
}

/// Runs the command `kind` with `args` (without the program name); returns the exit code.
pub fn run(kind: Kind, args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        let _ = writeln!(out, "usage: {}", kind.usage());
        return 0;
    }
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_FAILURE;
        }
    };
    let session = match resolve_session(o.value(&["--user"]), o.value(&["--password"])) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "{e:#}");
            return EXIT_FAILURE;
        }
    };
    let client = Client::new(
        resolve_endpoint(o.value(&["--endpoint"])),
        session,
        Duration::from_secs(30),
    )
    .with_ca_file(resolve_ca_file(o.value(&["--ca-file"])));
    match execute(kind, &o, &client, out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_rules_are_written_as_opennebula_parses_them() {
        assert_eq!(
            parse_rule("#5 HOST/* MANAGE").unwrap(),
            (
                "0x100000005".into(),
                "0x2400000000".into(),
                "0x2".into(),
                None
            )
        );
        assert_eq!(
            parse_rule("@1 VM+TEMPLATE/@2 USE+CREATE #0").unwrap().3,
            Some("0x100000000".into())
        );
        assert!(parse_rule("#5 HOST MANAGE").is_err());
        assert!(parse_rule("5 HOST/* MANAGE").is_err());
    }

    #[test]
    fn vm_states_have_opennebulas_short_names() {
        assert_eq!(vm_stat(3, 3), "runn");
        assert_eq!(vm_stat(1, 0), "pend");
        assert_eq!(vm_stat(8, 0), "poff");
        assert_eq!(vm_stat(3, 1), "prol");
    }
}
