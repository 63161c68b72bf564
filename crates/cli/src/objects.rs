//! `oneuser`, `onegroup`, `oneacl`, `onehost`, `onevm`, `onetemplate`, `onecluster`, `onevdc`
//! and `onehook` (`onemarket` and `onemarketapp` in `crate::market`): show, create, delete and
//! the common actions, over the same client and credential rules as `onezone`. Ids, names and
//! ranges are read by `crate::ids`, `list` and its options by `crate::listing`.

use std::io::Write;
use std::time::Duration;

use xmlrpc::Value;

use crate::client::{resolve_ca_file, resolve_endpoint, resolve_session, CallError, Client};
use crate::ids::{perform, range_only, Family, Resolver};
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
    SecGroup,
    VnTemplate,
    VmGroup,
    Vrouter,
    BackupJob,
    Vnet,
    Image,
    Datastore,
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
            Kind::SecGroup => "onesecgroup",
            Kind::VnTemplate => "onevntemplate",
            Kind::VmGroup => "onevmgroup",
            Kind::Vrouter => "onevrouter",
            Kind::BackupJob => "onebackupjob",
            Kind::Image => "oneimage",
            Kind::Datastore => "onedatastore",
            Kind::Vnet => "onevnet",
        }
    }

    pub(crate) fn usage(self) -> String {
        let top = if crate::top::KINDS.contains(&self) {
            crate::top::USAGE
        } else {
            ""
        };
        format!("{}{top}\n{USAGE_NOTES}", self.commands())
    }

    fn commands(self) -> &'static str {
        match self {
            Kind::User => "oneuser list [<list options>] | show <id> | create <name> <password> | delete <ids> | passwd <id> <password> | chgrp <ids> <group> | enable|disable <ids> | chauth <id> <driver> [<password>] | login|token-create [<name>] [--time <s>] [--group <gid>] [--force] | token-set --token <prefix>|--group <gid>|--global | token-delete <prefix> | token-delete-all <name> | quota <id> [<file>] | batchquota <ids> [<file>] | defaultquota [<file>] | update <id> <file> [--append] | addgroup|delgroup <ids> <group> | encode <user> [<password>] | umask <ids> [<mask>]",
            Kind::Group => "onegroup list [<list options>] | show <id> | create <name> | delete <ids> | quota <id> [<file>] | batchquota <ids> [<file>] | defaultquota [<file>] | update <id> <file> [--append] | addadmin|deladmin <ids> <user>",
            Kind::Acl => "oneacl list [<list options>] | create \"<user> <resources>/<id> <rights> [<zone>]\" | delete <range>",
            Kind::Host => "onehost list [<list options>] | show <id> | create <name> [-i <im_mad>] [-v <vm_mad>] [-c <cluster>] | delete|enable|disable|offline <ids> | monitoring <id> <attr> [--start <date>] [--end <date>] [--unit K|M|G|T] [--n <n>] --table|--csv <separator> | rename <id> <name> | update <id> <file> [--append] | flush <ids>",
            Kind::Vm => "onevm list [a|m|g|G|<user>] [<list options>] [--search <PATH=VALUE&...>] | show <id> | create <file> [--hold] | deploy <ids> <host> [<datastore>] [--enforce] [--file <file>] | terminate|poweroff|undeploy|reboot <ids> [--hard] | hold|release|resume|stop|suspend|resched|unresched <ids> | rename <id> <name> | update <id> <file> [--append] | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids> | save <id> <name> [--persistent] | create-chart <id> | update-chart <id> <sched_id> [<file>] | delete-chart <id> <sched_id>",
            Kind::Template => "onetemplate list [a|m|g|G|<user>] [<list options>] | show <id> | create <file> | delete <ids> | clone <id> <name> | instantiate <id> [<file>] [--name <name>] [-m|--multiple <n>] [--prefix <prefix>] [--hold] [--persistent] [--cpu <cpu>] [--vcpu <n>] [--memory <mb|Ng>] [--disk <image,...>] [--nic <network,...>] [--raw <text>]",
            Kind::Cluster => "onecluster list [<list options>] | show <id> | create <name> | delete <ids> | rename <id> <name> | update <id> <file> [--append] | addhost|delhost <id> <host> | adddatastore|deldatastore <id> <datastore> | addvnet|delvnet <id> <vnet> | optimize|planexecute|plandelete <id>",
            Kind::Vdc => "onevdc list [<list options>] | show <id> | create <name> | delete <ids> | rename <id> <name> | update <id> <file> [--append] | addgroup|delgroup <ids> <group> | addcluster|delcluster|addhost|delhost|adddatastore|deldatastore|addvnet|delvnet <ids> <zone> <id|name|ALL>",
            Kind::Hook => "onehook list [<list options>] | show <id> [-x] [-e <exec_id>] | create <file> [--dry] | delete <ids> | update <id> <file> [--append] | rename <id> <name> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids> | retry <id> <exec_id> | log [--success|--error] [--hook-id <id>] [--since <date>] [--until <date>] [-x|--xml]",
            Kind::Market => "onemarket list [<list options>] | show <id> [-x] | create <file> | delete <ids> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | enable|disable <ids>",
            Kind::VmGroup => "onevmgroup list [a|m|g|G|<user>] [<list options>] | show <id> [-x] | create [<file>] | delete <ids> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids> | role-add <id> [<file>] | role-delete <id> <role> | role-update <id> <role> <file>",
            Kind::Vrouter => "onevrouter list [a|m|g|G|<user>] [<list options>] | show <id> [-x] [--all] | create [<file>] | delete <ids> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids> | instantiate <id> <template> [<file>] [--name <name>] [-m|--multiple <n>] [--hold] | nic-attach <id> [--file <file>] [--network <network>] [--ip <ip>] [--float] | nic-detach <id> <nic_id>",
            Kind::BackupJob => "onebackupjob list [a|m|g|G|<user>] [<list options>] | show <id> [-x] | create [<file>] [--name <name>] [--vms <ids>] [--keep <n>] [--mode <full|increment>] | delete <ids> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids> | backup <ids> [--schedule <time>] | cancel <ids> | retry <ids> | priority <ids> <priority> | sched-delete <id> <sched_id> | sched-update <id> <sched_id> <file>",
            Kind::VnTemplate => "onevntemplate list [a|m|g|G|<user>] [<list options>] | show <id> [-x] | create <file> | clone <id> <name> | delete <ids> | instantiate <id> [<file>] [--name <name>] | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids>",
            Kind::Vnet => "onevnet list [a|m|g|G|<user>] [<list options>] | show <id> [-x|-j] [--show-ar] | create [<file>] [-c <cluster>] | delete <ids> | addar <id> [<file>] [-s <size>] [-i <ip>] [-m <mac>] [-6 <ip6/prefix>] [-g <prefix>] [-u <prefix>] [--gateway <ip>] [--netmask <mask>] [--vn_mad <mad>] [--vlanid <id>] | rmar <id> <ar_id> [--force] | free <id> <ar_id> | updatear <id> <ar_id> <file> [--append] | hold|release <id> <address> [-a <ar_id>] | reserve <id> [<target>] -s <size> [-n <name>] [-a <ar_id>] [-i <ip>|-m <mac>|-6 <ip6>] | recover <ids> --success|--failure|--delete|--retry | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids> | orphans",
            Kind::Image => "oneimage list [a|m|g|G|<user>] [<list options>] [--backup] | show <id> [-x] | create [<file>] -d <datastore> [--name <name>] [--path <path>|--source <source>] [--size <size>] [--type <type>] [--persistent] [--prefix <prefix>] [--target <target>] [--format <format>] [--fs <fs>] [--disk_type <type>] [--description <text>] [--no_check_capacity] [--dry] | clone <id> <name> [-d <datastore>] | delete <ids> [--force] | persistent|nonpersistent|enable|disable <ids> | chtype <ids> <type> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids> | snapshot-delete|snapshot-revert|snapshot-flatten <id> <snapshot> | restore <id> -d <datastore> [--no_nic] [--no_ip] [--name <name>] [--increment <id>] [--disk-id <id>] | orphans",
            Kind::Datastore => "onedatastore list [<list options>] | show <id> [-x] | create [<file>] [-c <cluster>] | delete <ids> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | enable|disable <ids>",
            Kind::SecGroup => "onesecgroup list [a|m|g|G|<user>] [<list options>] | show <id> [-x] | create [<file>] | clone <id> <name> | delete <ids> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | commit <id> [-r|--recover]",
            Kind::MarketApp => "onemarketapp list [a|m|g|G|<user>] [<list options>] | show <id> [-x] | create [<file>] -m <market> [--name <name>] [--description <text>] [--image <image>] [--dry] | export <id> <name> -d <datastore> [--file-datastore <datastore>] [--vmname <name>] [--template <template_id>] [--no] | delete <ids> | update <id> <file> [--append] | rename <id> <name> | chgrp <ids> <group> | chown <ids> <user> [<group>] | chmod <ids> <octet> | enable|disable <ids> | lock <ids> [--use|--manage|--admin|--all] | unlock <ids>",
        }
    }
}

/// What every usage line shares.
const USAGE_NOTES: &str = "<id>, <group>, <user>, <host>...: an id or a name; <ids>: ids, names and ranges, as 1..3,web,7\n<list options>: -x|--xml -j|--json --csv [--csv-del <d>] -l|--list <COL,...> -f|--filter <COL=value,...> [--operator AND|OR] --no-header -n|--numeric -k|--kilobytes --adjust <COL,...> --size <COL=n,...>";

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
    // The list options (`crate::listing`).
    "-l",
    "--list",
    "-f",
    "--filter",
    "--operator",
    "--csv-del",
    "--search",
    "--adjust",
    "-s",
    "--size",
];

/// `args` as options and words; `extra` are the subcommand's own options that take a value.
fn parse(args: &[String], extra: &[&str]) -> Result<Opts, String> {
    let mut o = Opts {
        words: Vec::new(),
        flags: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        // OptionParser's `--name=value`.
        if let Some((name, value)) = a.split_once('=').filter(|(n, _)| n.starts_with("--")) {
            if VALUED.contains(&name) || extra.contains(&name) {
                o.flags.push((name.to_string(), Some(value.to_string())));
                continue;
            }
        }
        if a.starts_with('-') && a.len() > 1 {
            if VALUED.contains(&a.as_str()) || extra.contains(&a.as_str()) {
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

pub(crate) fn int(e: &Element, name: &str) -> i64 {
    e.int_of(name).unwrap_or(-1)
}

/// OpenNebula's short VM state (`onevm list` STAT column).
pub fn vm_stat(state: i64, lcm: i64) -> &'static str {
    wire::state::vm_short_name(state, lcm)
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
        Kind::Cluster => return crate::cluster_show::show(client, oid, xml_out, out),
        Kind::Vdc => "one.vdc.info",
        Kind::Hook => "one.hook.info",
        Kind::Market | Kind::MarketApp => {
            return crate::market::show(kind, client, oid, xml_out, out)
        }
        Kind::SecGroup => return Err("onesecgroup shows through crate::secgroup".into()),
        Kind::VnTemplate => return Err("onevntemplate shows through crate::vntemplate".into()),
        Kind::VmGroup => return Err("onevmgroup shows through crate::vmgroup".into()),
        Kind::Vrouter => return Err("onevrouter shows through crate::vrouter".into()),
        Kind::BackupJob => return Err("onebackupjob shows through crate::backupjob".into()),
        Kind::Image => return Err("oneimage shows through crate::image".into()),
        Kind::Datastore => return Err("onedatastore shows through crate::datastore".into()),
        Kind::Vnet => return Err("onevnet shows through crate::vnet".into()),
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
        Kind::SecGroup => "SECURITY GROUP",
        Kind::VnTemplate => "TEMPLATE",
        Kind::VmGroup => "VM GROUP",
        Kind::Vrouter => "VIRTUAL ROUTER",
        Kind::BackupJob => "BACKUP JOB",
        Kind::Image => "IMAGE",
        Kind::Datastore => "DATASTORE",
        Kind::Vnet => "VIRTUAL NETWORK",
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

/// One subcommand being run: its words, flags and client.
struct Cmd<'a> {
    kind: Kind,
    o: &'a Opts,
    client: &'a Client,
    name: &'a str,
}

impl Cmd<'_> {
    fn word(&self, i: usize) -> Option<&String> {
        self.o.words.get(i)
    }

    fn value(&self, method: &str, params: Vec<Value>) -> Result<Value, String> {
        self.client.call(method, params).map_err(err_text)
    }

    fn call(&self, method: &str, params: Vec<Value>) -> Result<(), String> {
        self.value(method, params).map(drop)
    }

    /// Word `i` as one object of the command's family (`helper.to_id`).
    fn one(&self, i: usize) -> Result<i32, String> {
        Resolver::own(self.client, self.kind).arg(self.word(i), "id")
    }

    /// Word `i` as `[:range, :<x>id_list]`.
    fn many(&self, i: usize) -> Result<Vec<i32>, String> {
        Resolver::own(self.client, self.kind).args(self.word(i), "id")
    }

    /// Word `i` as an object of another family (`rname_to_id`).
    fn other(&self, family: Family, i: usize, what: &str) -> Result<i32, String> {
        Resolver::other(self.client, family).arg(self.word(i), what)
    }

    /// `method(id, rest...)` on each id of word 1.
    fn each(&self, method: &str, rest: Vec<Value>) -> Result<(), String> {
        self.each_of(self.many(1)?, method, rest)
    }

    fn each_of(&self, ids: Vec<i32>, method: &str, rest: Vec<Value>) -> Result<(), String> {
        perform(&ids, |id| {
            let mut params = vec![Value::Int(id)];
            params.extend(rest.iter().cloned());
            self.call(method, params)
        })
    }

    fn unknown(&self) -> Result<(), String> {
        match self.name {
            "" => Err(format!("No command given.\nusage: {}", self.kind.usage())),
            other => Err(format!(
                "Unknown command '{other}'.\nusage: {}",
                self.kind.usage()
            )),
        }
    }
}

fn say_id(out: &mut dyn Write, v: Value) -> Result<(), String> {
    writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
}

pub(crate) fn execute(
    kind: Kind,
    o: &Opts,
    client: &Client,
    out: &mut dyn Write,
) -> Result<(), String> {
    let c = Cmd {
        kind,
        o,
        client,
        name: o.words.first().map(String::as_str).unwrap_or(""),
    };
    match (kind, c.name) {
        // Every subcommand of these two, list and show included.
        (Kind::Market | Kind::MarketApp, _) => crate::market::execute(kind, o, client, out),
        (Kind::SecGroup, _) => crate::secgroup::execute(o, client, out),
        (Kind::VnTemplate, _) => crate::vntemplate::execute(o, client, out),
        (Kind::VmGroup, _) => crate::vmgroup::execute(o, client, out),
        (Kind::Vrouter, _) => crate::vrouter::execute(o, client, out),
        (Kind::BackupJob, _) => crate::backupjob::execute(o, client, out),
        (Kind::Image, _) => crate::image::execute(o, client, out),
        (Kind::Datastore, _) => crate::datastore::execute(o, client, out),
        (Kind::Vnet, _) => crate::vnet::execute(o, client, out),
        (Kind::Host, "monitoring") => crate::host_monitoring::execute(o, client, out),
        (_, "list") => crate::listing::list(kind, o, client, out),
        (Kind::Acl, "show") => Err("oneacl has no show; use oneacl list".into()),
        (_, "show") => show(
            kind,
            client,
            c.one(1)?,
            o.flag(&["-x", "--xml"]),
            o.value(&["-e", "--execution"]).as_deref(),
            out,
        ),
        (Kind::User, _) => user(&c, out),
        (Kind::Group, _) => group(&c, out),
        (Kind::Acl, _) => acl(&c, out),
        (Kind::Host, _) => host(&c, out),
        (Kind::Vm, _) => vm(&c, out),
        (Kind::Template, _) => template(&c, out),
        (Kind::Cluster, _) => cluster(&c, out),
        (Kind::Vdc, _) => vdc(&c, out),
        (Kind::Hook, _) => hook(&c, out),
    }
}

/// `update`, `quota` and `batchquota` of users or groups, and the `defaultquota` of all.
fn owner_templates(c: &Cmd, family: &str) -> Result<(), String> {
    use crate::quota::Whose;
    match c.name {
        "update" => {
            crate::owned_ops::execute(c.kind, &format!("one.{family}"), "update", c.o, c.client)
        }
        "quota" => {
            let id = c.one(1)?;
            let t = crate::quota::template(c.client, family, c.word(2), Whose::One(id))?;
            c.call(
                &format!("one.{family}.quota"),
                vec![Value::Int(id), Value::String(t)],
            )
        }
        // The batch is sent alone: the entries it does not name are kept anyway.
        "batchquota" => {
            let ids = c.many(1)?;
            let t = crate::quota::template(c.client, family, c.word(2), Whose::Batch)?;
            c.each_of(ids, &format!("one.{family}.quota"), vec![Value::String(t)])
        }
        _ => {
            let t = crate::quota::template(c.client, family, c.word(1), Whose::Defaults)?;
            c.call(&format!("one.{family}quota.update"), vec![Value::String(t)])
        }
    }
}

fn user(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    let o = c.o;
    match c.name {
        "create" => {
            let name = c.word(1).ok_or("missing the user name")?;
            let pw = c.word(2).ok_or("missing the password")?;
            say_id(
                out,
                c.value(
                    wire::method::USER_ALLOCATE,
                    vec![
                        Value::String(name.clone()),
                        Value::String(pw.clone()),
                        Value::String(String::new()),
                    ],
                )?,
            )
        }
        "passwd" => {
            let oid = c.one(1)?;
            let pw = c.word(2).ok_or("missing the password")?;
            c.call(
                wire::method::USER_PASSWD,
                vec![Value::Int(oid), Value::String(pw.clone())],
            )
        }
        "chauth" => chauth(c, out),
        "login" | "token-create" => crate::tokens::login(
            c.client,
            crate::tokens::Login {
                user: c.word(1).cloned(),
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
        "token-set" => crate::tokens::set(
            c.client,
            o.value(&["--token"]),
            o.value(&["--group"]),
            o.flag(&["--global"]),
            crate::tokens::home(),
            out,
        ),
        "token-delete" => {
            let hint = c.word(2).or(c.word(1)).ok_or("missing the token")?;
            crate::tokens::delete(c.client, hint, crate::tokens::home(), out)
        }
        "token-delete-all" => {
            crate::tokens::delete_all(c.client, c.word(1).ok_or("missing the user name")?)
        }
        "chgrp" | "addgroup" | "delgroup" => {
            let ids = c.many(1)?;
            let gid = c.other(Family::Group, 2, "group id")?;
            c.each_of(ids, &format!("one.user.{}", c.name), vec![Value::Int(gid)])
        }
        "enable" | "disable" => c.each(
            wire::method::USER_ENABLE,
            vec![Value::Bool(c.name == "enable")],
        ),
        "delete" => c.each(wire::method::USER_DELETE, vec![]),
        "update" | "quota" | "batchquota" | "defaultquota" => owner_templates(c, "user"),
        "encode" => {
            let user = c.word(1).ok_or("missing the user name")?;
            let parts: Vec<String> = std::iter::once(user)
                .chain(c.word(2))
                .map(|p| uri_escape(p))
                .collect();
            writeln!(out, "{}", parts.join(":")).map_err(|e| e.to_string())
        }
        "umask" => {
            let ids = c.many(1)?;
            let mask = c.word(2).filter(|m| !m.is_empty()).cloned();
            perform(&ids, |id| set_umask(c, id, mask.as_deref()))
        }
        _ => c.unknown(),
    }
}

/// `oneuser umask`: the user's template without UMASK, then with the new one if given,
/// written whole (`one.user.update` type 0), as OpenNebula's CLI does.
fn set_umask(c: &Cmd, id: i32, mask: Option<&str>) -> Result<(), String> {
    let xml = c
        .client
        .call_xml(wire::method::USER_INFO, vec![Value::Int(id)])
        .map_err(err_text)?;
    let body = xml
        .find("<TEMPLATE>")
        .zip(xml.find("</TEMPLATE>"))
        .map_or("<TEMPLATE/>", |(a, b)| &xml[a..b + "</TEMPLATE>".len()]);
    let mut t = template::Template::parse(body)
        .map_err(|e| format!("the user's template does not parse: {e}"))?;
    t.remove("UMASK");
    if let Some(m) = mask {
        t.push("UMASK", template::Value::Single(m.to_string()));
    }
    c.call(
        "one.user.update",
        vec![Value::Int(id), Value::String(t.to_text()), Value::Int(0)],
    )
}

/// Ruby's `URI::DEFAULT_PARSER.escape` (RFC 2396): `%XX` for every byte outside the
/// unreserved and reserved characters.
fn uri_escape(text: &str) -> String {
    let kept = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'();/?:@&=+$,[]".contains(&b);
    text.bytes()
        .map(|b| {
            if kept(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn chauth(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    let oid = c.one(1)?;
    let driver = match (c.o.value(&["--driver"]), c.word(2)) {
        (Some(d), _) => d,
        (None, Some(d)) => d.clone(),
        // OpenNebula's oneuser says so and exits 0.
        (None, None) => {
            return writeln!(out, "An Auth driver should be specified").map_err(|e| e.to_string())
        }
    };
    let pw = c.word(3).cloned().unwrap_or_default();
    c.call(
        wire::method::USER_CHAUTH,
        vec![Value::Int(oid), Value::String(driver), Value::String(pw)],
    )
}

fn group(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    match c.name {
        "create" => {
            let name = c.word(1).ok_or("missing the group name")?;
            say_id(
                out,
                c.value(
                    wire::method::GROUP_ALLOCATE,
                    vec![Value::String(name.clone())],
                )?,
            )
        }
        "addadmin" | "deladmin" => {
            let ids = c.many(1)?;
            let uid = c.other(Family::User, 2, "user id")?;
            c.each_of(ids, &format!("one.group.{}", c.name), vec![Value::Int(uid)])
        }
        "delete" => c.each(wire::method::GROUP_DELETE, vec![]),
        "update" | "quota" | "batchquota" | "defaultquota" => owner_templates(c, "group"),
        _ => c.unknown(),
    }
}

fn acl(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    match c.name {
        "create" => {
            let rule = c.word(1).ok_or("missing the rule")?;
            let (u, r, ri, z) = parse_rule(rule)?;
            let mut params = vec![Value::String(u), Value::String(r), Value::String(ri)];
            if let Some(z) = z {
                params.push(Value::String(z));
            }
            say_id(out, c.value(wire::method::ACL_ADDRULE, params)?)
        }
        // `[:range]` only: rules have no names.
        "delete" => c.each_of(
            range_only(c.word(1), "delete")?,
            wire::method::ACL_DELRULE,
            vec![],
        ),
        _ => c.unknown(),
    }
}

fn host(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    let o = c.o;
    match c.name {
        "create" => {
            let cluster = crate::ids::option_id(
                c.client,
                Family::Cluster,
                o.value(&["-c", "--cluster"]),
                "cluster",
            )?;
            let name = c.word(1).ok_or("missing the host name")?;
            let im = o.value(&["-i", "--im"]).unwrap_or_else(|| "dummy".into());
            let vmm = o.value(&["-v", "--vm"]).unwrap_or_else(|| "dummy".into());
            say_id(
                out,
                c.value(
                    wire::method::HOST_ALLOCATE,
                    vec![
                        Value::String(name.clone()),
                        Value::String(im),
                        Value::String(vmm),
                        Value::Int(cluster.unwrap_or(-1)),
                    ],
                )?,
            )
        }
        "enable" | "disable" | "offline" => {
            let status = match c.name {
                "enable" => 0,
                "disable" => 1,
                _ => 2,
            };
            c.each(wire::method::HOST_STATUS, vec![Value::Int(status)])
        }
        "delete" => c.each(wire::method::HOST_DELETE, vec![]),
        "rename" | "update" => {
            crate::owned_ops::execute(Kind::Host, "one.host", c.name, c.o, c.client)
        }
        "flush" => crate::host_flush::execute(c.o, c.client, &c.many(1)?),
        _ => c.unknown(),
    }
}

fn vm(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    match c.name {
        "create" => {
            let text = file_text(c.word(1))?;
            say_id(
                out,
                c.value(
                    wire::method::VM_ALLOCATE,
                    vec![Value::String(text), Value::Bool(c.o.flag(&["--hold"]))],
                )?,
            )
        }
        "deploy" => {
            // `onevm deploy <vms> <host> [<datastore>] [--enforce] [--file <NIC template>]`,
            // sent as Ruby OCA's `VirtualMachine#deploy` sends it.
            let ids = c.many(1)?;
            let hid = c.other(Family::Host, 2, "host id")?;
            let ds = match c.word(3) {
                Some(_) => c.other(Family::Datastore, 3, "datastore id")?,
                None => -1,
            };
            let extra = match c.o.value(&["--file"]) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| format!("Cannot read file {path}: {e}"))?,
                None => String::new(),
            };
            let rest = vec![
                Value::Int(hid),
                Value::Bool(c.o.flag(&["--enforce", "-e"])),
                Value::Int(ds),
                Value::String(extra),
            ];
            c.each_of(ids, wire::method::VM_DEPLOY, rest)
        }
        a @ ("terminate" | "poweroff" | "undeploy" | "reboot" | "hold" | "release" | "resume"
        | "stop" | "suspend" | "resched" | "unresched") => {
            let hard = c.o.flag(&["--hard"])
                && matches!(a, "terminate" | "poweroff" | "undeploy" | "reboot");
            let action = if hard { format!("{a}-hard") } else { a.into() };
            if c.o.value(&["--schedule"]).is_some() {
                return crate::onevm_ops::schedule(c.o, c.client, &c.many(1)?, &action, out);
            }
            perform(&c.many(1)?, |id| {
                c.call(
                    wire::method::VM_ACTION,
                    vec![Value::String(action.clone()), Value::Int(id)],
                )
            })
        }
        n if crate::onevm::handles(n) => crate::onevm::execute(c.o, c.client),
        n if crate::onevm_backup::handles(n) => crate::onevm_backup::execute(c.o, c.client, out),
        n if crate::onevm_ops::handles(n) => crate::onevm_ops::execute(c.o, c.client),
        n if crate::onevm_save::handles(n) => crate::onevm_save::execute(c.o, c.client, out),
        n if crate::onevm_snap::handles(n) => crate::onevm_snap::execute(c.o, c.client, out),
        n if crate::owned_ops::handles(n) => {
            crate::owned_ops::execute(Kind::Vm, "one.vm", n, c.o, c.client)
        }
        _ => c.unknown(),
    }
}

fn template(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    match c.name {
        "create" => say_id(
            out,
            c.value(
                wire::method::TEMPLATE_ALLOCATE,
                vec![Value::String(file_text(c.word(1))?)],
            )?,
        ),
        "clone" => {
            let oid = c.one(1)?;
            let name = c.word(2).ok_or("missing the new name")?;
            say_id(
                out,
                c.value(
                    wire::method::TEMPLATE_CLONE,
                    vec![Value::Int(oid), Value::String(name.clone())],
                )?,
            )
        }
        "instantiate" => {
            crate::template_instantiate::instantiate(c.o, c.client, c.one(1)?, c.word(2), out)
        }
        n if crate::owned_ops::handles(n) => {
            crate::owned_ops::execute(Kind::Template, "one.template", n, c.o, c.client)
        }
        _ => c.unknown(),
    }
}

/// `create <name>`, `rename <id> <name>` and `update <id> <file>` of a cluster or VDC.
fn named(c: &Cmd, family: &str, out: &mut dyn Write) -> Result<(), String> {
    match c.name {
        "create" => {
            let label = if family == "vdc" { "VDC" } else { family };
            let name = c.word(1).ok_or(format!("missing the {label} name"))?;
            let param = if family == "vdc" {
                format!(
                    "NAME = \"{}\"",
                    name.replace('\\', "\\\\").replace('"', "\\\"")
                )
            } else {
                name.clone()
            };
            say_id(
                out,
                c.value(
                    &format!("one.{family}.allocate"),
                    vec![Value::String(param)],
                )?,
            )
        }
        "rename" => {
            let oid = c.one(1)?;
            let name = c.word(2).ok_or("missing the new name")?;
            c.call(
                &format!("one.{family}.rename"),
                vec![Value::Int(oid), Value::String(name.clone())],
            )
        }
        _ => crate::owned_ops::execute(c.kind, &format!("one.{family}"), "update", c.o, c.client),
    }
}

fn cluster(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    let family = match c.name {
        "addhost" | "delhost" => Family::Host,
        "adddatastore" | "deldatastore" => Family::Datastore,
        "addvnet" | "delvnet" => Family::Vnet,
        "create" | "rename" | "update" => return named(c, "cluster", out),
        "delete" => return c.each("one.cluster.delete", vec![]),
        // OpenNebula 7's DRS plans: each takes the cluster only.
        "optimize" | "planexecute" | "plandelete" => {
            let oid = c.one(1)?;
            return c.call(&format!("one.cluster.{}", c.name), vec![Value::Int(oid)]);
        }
        _ => return c.unknown(),
    };
    let oid = c.one(1)?;
    let object = c.other(family, 2, "object id")?;
    c.call(
        &format!("one.cluster.{}", c.name),
        vec![Value::Int(oid), Value::Int(object)],
    )
}

/// `Vdc::ALL_RESOURCES`, which `ALL` (any case) stands for.
const ALL_RESOURCES: i32 = -10;

fn vdc(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    let family = match c.name {
        "addcluster" | "delcluster" => Family::Cluster,
        "addhost" | "delhost" => Family::Host,
        "adddatastore" | "deldatastore" => Family::Datastore,
        "addvnet" | "delvnet" => Family::Vnet,
        "addgroup" | "delgroup" => {
            let ids = c.many(1)?;
            let gid = c.other(Family::Group, 2, "group id")?;
            return c.each_of(ids, &format!("one.vdc.{}", c.name), vec![Value::Int(gid)]);
        }
        "create" | "rename" | "update" => return named(c, "vdc", out),
        "delete" => return c.each("one.vdc.delete", vec![]),
        _ => return c.unknown(),
    };
    let ids = c.many(1)?;
    let zone = c.other(Family::Zone, 2, "zone id")?;
    let resource = match c.word(3) {
        Some(all) if all.eq_ignore_ascii_case("ALL") => ALL_RESOURCES,
        _ => c.other(family, 3, "resource id")?,
    };
    c.each_of(
        ids,
        &format!("one.vdc.{}", c.name),
        vec![Value::Int(zone), Value::Int(resource)],
    )
}

fn hook(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    let o = c.o;
    match c.name {
        "create" => {
            let text = file_text(Some(c.word(1).ok_or("No hook template provided")?))?;
            if o.flag(&["--dry"]) {
                // As Ruby's `puts`: one final line break.
                let end = if text.ends_with('\n') { "" } else { "\n" };
                return write!(out, "{text}{end}").map_err(|e| e.to_string());
            }
            say_id(
                out,
                c.value("one.hook.allocate", vec![Value::String(text)])?,
            )
        }
        "update" => crate::owned_ops::execute(Kind::Hook, "one.hook", "update", c.o, c.client),
        "rename" => {
            let oid = c.one(1)?;
            let name = c.word(2).ok_or("missing the new name")?;
            c.call(
                "one.hook.rename",
                vec![Value::Int(oid), Value::String(name.clone())],
            )
        }
        "lock" => {
            // onehook's levels, the first flag given winning in this order; USE by default.
            let level = [("--use", 1), ("--manage", 2), ("--admin", 3), ("--all", 4)]
                .into_iter()
                .find(|(flag, _)| o.flag(&[flag]))
                .map_or(1, |(_, level)| level);
            c.each("one.hook.lock", vec![Value::Int(level), Value::Bool(false)])
        }
        "unlock" => c.each("one.hook.unlock", vec![]),
        "delete" => c.each("one.hook.delete", vec![]),
        "retry" => {
            let oid = c.one(1)?;
            let exec = id(c.word(2), "execution id")?;
            c.call("one.hook.retry", vec![Value::Int(oid), Value::Int(exec)])
        }
        "log" => hook_log(c, out),
        _ => c.unknown(),
    }
}

fn hook_log(c: &Cmd, out: &mut dyn Write) -> Result<(), String> {
    let o = c.o;
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
        c.client,
        [date(&["--since"])?, date(&["--until"])?, hook, rc],
        o.flag(&["-x", "--xml"]),
        out,
    )
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
    run_frames(kind, args, out, err, None)
}

/// [`run`], with `top` stopping after `frames` screens (tests; `None`: until interrupted).
pub fn run_frames(
    kind: Kind,
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    frames: Option<u64>,
) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        let _ = writeln!(out, "usage: {}", kind.usage());
        return 0;
    }
    // A subcommand's own valued options (`onevnet reserve -n <name>`) are known once the
    // subcommand is.
    let parsed = parse(args, &[]).and_then(|o| match (kind, o.words.first()) {
        (_, Some(cmd)) if cmd == "top" => parse(args, crate::top::VALUED),
        (Kind::Vnet, Some(cmd)) => parse(args, crate::vnet::valued_flags(cmd)),
        (Kind::Vm, Some(cmd)) if crate::onevm_snap::handles(cmd) => {
            parse(args, crate::onevm_snap::valued_flags(cmd))
        }
        (Kind::Vm, Some(cmd)) if crate::onevm_backup::handles(cmd) => {
            parse(args, crate::onevm_backup::valued_flags(cmd))
        }
        (Kind::Vm, Some(cmd)) if crate::onevm_ops::schedulable(cmd) => {
            parse(args, crate::onevm_ops::SCHEDULE_VALUED)
        }
        (Kind::Vm, Some(cmd)) => parse(args, crate::onevm::valued_flags(cmd)),
        (Kind::Image, Some(_)) => parse(args, crate::image::VALUED),
        (Kind::Vrouter, Some(_)) => parse(args, crate::vrouter::VALUED),
        (Kind::BackupJob, Some(_)) => parse(args, crate::backupjob::VALUED),
        (Kind::Template, Some(cmd)) if cmd == "instantiate" => {
            parse(args, crate::template_instantiate::VALUED)
        }
        (Kind::Host, Some(cmd)) if cmd == "monitoring" => {
            parse(args, crate::host_monitoring::VALUED)
        }
        _ => Ok(o),
    });
    let o = match parsed {
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
    if crate::top::handles(kind, &o) {
        return crate::top::run(kind, &o, &client, out, err, frames);
    }
    match execute(kind, &o, &client, out) {
        Ok(()) => 0,
        // Already reported on stdout (`oneimage clone`'s `puts rc.message`).
        Err(e) if e.is_empty() => EXIT_FAILURE,
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
