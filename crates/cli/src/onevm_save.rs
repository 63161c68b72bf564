//! `onevm save` (OpenNebula's `VirtualMachineExt#save_as_template`, run client side) and the
//! charter subcommands: `create-chart` with the charters of `onevm.yaml`, and `update-chart` /
//! `delete-chart`, the deprecated names of `sched-update` / `sched-delete`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::Resolver;
use crate::objects::{err_text, Kind, Opts};
use crate::xml::Element;

/// Whether `subcommand` is one of these.
pub(crate) fn handles(subcommand: &str) -> bool {
    matches!(
        subcommand,
        "save" | "create-chart" | "update-chart" | "delete-chart"
    )
}

pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    match cmd {
        "save" => {
            let vm = Resolver::own(client, Kind::Vm).arg(o.words.get(1), "VM id")?;
            let name = o
                .words
                .get(2)
                .filter(|n| !n.is_empty())
                .ok_or("a name for the new template is needed")?;
            let tid = save_as_template(client, vm, name, o.flag(&["--persistent"]))?;
            writeln!(out, "Template ID: {tid}").map_err(|e| e.to_string())
        }
        "create-chart" => create_chart(o, client, out),
        old @ ("update-chart" | "delete-chart") => {
            let new = if old == "update-chart" {
                "sched-update"
            } else {
                "sched-delete"
            };
            // CommandParser's `print_deprecated`, before the command runs.
            writeln!(
                out,
                "This command is deprecated, use instead:\n  $ onevm {new}"
            )
            .map_err(|e| e.to_string())?;
            let mut words = o.words.clone();
            words[0] = new.to_string();
            let renamed = Opts {
                words,
                flags: o.flags.clone(),
            };
            crate::onevm_ops::execute(&renamed, client)
        }
        other => Err(format!("Unknown command '{other}'.")),
    }
}

// ---------------------------------------------------------------------------------------------
// save

/// What a disk of the new template does not keep of the VM's (`REMOVE_IMAGE_ATTRS`).
const REMOVE_IMAGE_ATTRS: &[&str] = &[
    "DEV_PREFIX",
    "SOURCE",
    "DRIVER",
    "FORMAT",
    "ORIGINAL_SIZE",
    "DISK_SNAPSHOT_TOTAL_SIZE",
    "IMAGE_STATE",
    "SAVE",
    "CLONE",
    "READONLY",
    "PERSISTENT",
    "TARGET",
    "ALLOW_ORPHANS",
    "CLONE_TARGET",
    "CLUSTER_ID",
    "DATASTORE",
    "DATASTORE_ID",
    "DISK_ID",
    "DISK_TYPE",
    "IMAGE_ID",
    "IMAGE",
    "IMAGE_UNAME",
    "IMAGE_UID",
    "LN_TARGET",
    "TM_MAD",
    "TM_MAD_SYSTEM",
    "OPENNEBULA_MANAGED",
    "PERSISTENT_SNAPSHOTS",
];

/// What a NIC of the new template does not keep (`REMOVE_VNET_ATTRS`).
const REMOVE_VNET_ATTRS: &[&str] = &[
    "AR_ID",
    "BRIDGE",
    "CLUSTER_ID",
    "IP",
    "MAC",
    "TARGET",
    "NIC_ID",
    "NETWORK_ID",
    "VN_MAD",
    "SECURITY_GROUPS",
    "VLAN_ID",
    "BRIDGE_TYPE",
];

/// `wait_state2`'s default timeout.
const WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);
const POWEROFF: &str = "8";

fn call(client: &Client, method: &str, params: Vec<Value>) -> Result<Value, String> {
    client.call(method, params).map_err(err_text)
}

fn int(v: Value) -> i32 {
    v.as_i64().unwrap_or(-1) as i32
}

fn vm_info(client: &Client, vm: i32) -> Result<Element, String> {
    let xml = client
        .call_xml("one.vm.info", vec![Value::Int(vm)])
        .map_err(err_text)?;
    Element::parse(&xml).map_err(|e| e.to_string())
}

fn child_text<'a>(e: &'a Element, name: &str) -> &'a str {
    e.child(name).map_or("", |c| c.text.as_str())
}

/// `XMLElement#template_like_str('.')` joined by commas, as `save_as_template` writes a disk
/// or NIC: `KEY="value"`, quotes escaped, empty elements left out.
fn like_str(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",")
}

/// A disk's or NIC's elements with text, in document order, without `remove`.
fn kept(e: &Element, remove: &[&str]) -> Vec<(String, String)> {
    e.children
        .iter()
        .filter(|c| c.children.is_empty() && !c.text.is_empty())
        .filter(|c| !remove.contains(&c.name.as_str()))
        .map(|c| (c.name.clone(), c.text.clone()))
        .collect()
}

/// `wait_state2('POWEROFF', 'LCM_INIT')`.
fn wait_poweroff(client: &Client, vm: i32) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let v = vm_info(client, vm)?;
        if child_text(&v, "STATE") == POWEROFF && child_text(&v, "LCM_STATE") == "0" {
            return Ok(());
        }
        if start.elapsed() > WAIT {
            return Err("Timeout expired for state POWEROFF.".into());
        }
        std::thread::sleep(POLL);
    }
}

/// `save_as_template(name, '', persistent)`: the VM's template cloned as `name`, each image
/// disk saved as `<name>-disk-<id>` and put in its place, the VM's capacity and NICs kept. On
/// a failure what it made is deleted again.
fn save_as_template(client: &Client, vm: i32, name: &str, persistent: bool) -> Result<i32, String> {
    let v = vm_info(client, vm)?;
    let t = v.child("TEMPLATE").ok_or("VM has no TEMPLATE")?;
    let tid = child_text(t, "TEMPLATE_ID").to_string();
    if tid.is_empty() {
        return Err("VM has no associated template".into());
    }
    if child_text(&v, "STATE") != POWEROFF {
        return Err("VM must be POWEROFF".into());
    }
    let tid_n: i32 = tid
        .parse()
        .map_err(|_| format!("Wrong TEMPLATE_ID {tid}"))?;
    let ntid = int(call(
        client,
        "one.template.clone",
        vec![
            Value::Int(tid_n),
            Value::String(name.to_string()),
            Value::Bool(false),
        ],
    )?);
    let mut images = Vec::new();
    let done = fill_template(client, vm, t, name, &tid, ntid, persistent, &mut images);
    if let Err(e) = done {
        // Rollback, as `save_as_template`'s rescue: what was made goes, errors ignored.
        let _ = client.call(
            "one.template.delete",
            vec![Value::Int(ntid), Value::Bool(false)],
        );
        for id in images {
            let _ = client.call("one.image.delete", vec![Value::Int(id)]);
        }
        return Err(e);
    }
    Ok(ntid)
}

#[allow(clippy::too_many_arguments)]
fn fill_template(
    client: &Client,
    vm: i32,
    t: &Element,
    name: &str,
    tid: &str,
    ntid: i32,
    persistent: bool,
    images: &mut Vec<i32>,
) -> Result<(), String> {
    let mut replace = String::new();
    for k in ["CPU", "VCPU", "MEMORY"] {
        let v = child_text(t, k);
        if !v.is_empty() {
            replace.push_str(&format!("{k} = {v}\n"));
        }
    }
    for disk in t.children_named("DISK") {
        wait_poweroff(client, vm)?;
        let disk_id = child_text(disk, "DISK_ID");
        let image_id = child_text(disk, "IMAGE_ID");
        let omng = child_text(disk, "OPENNEBULA_MANAGED");
        let kind = child_text(disk, "TYPE");
        if disk_id.is_empty() {
            return Err("Missing DISK_ID".into());
        }
        let rest = kept(disk, REMOVE_IMAGE_ATTRS);
        if image_id.is_empty() {
            replace.push_str(&format!("DISK = [ {} ]\n", like_str(&rest)));
            continue;
        }
        let rest: Vec<_> = rest
            .into_iter()
            .filter(|(k, _)| k != "SIZE" && k != "TYPE")
            .collect();
        if kind == "CDROM" {
            replace.push_str(&format!("DISK = [ IMAGE_ID = {image_id}"));
            if !omng.is_empty() {
                replace.push_str(&format!(", OPENNEBULA_MANAGED={omng}"));
            }
            replace.push_str(" ]\n");
            continue;
        }
        let disk_n: i32 = disk_id
            .parse()
            .map_err(|_| format!("Wrong DISK_ID {disk_id}"))?;
        let image = int(call(
            client,
            "one.vm.disksaveas",
            vec![
                Value::Int(vm),
                Value::Int(disk_n),
                Value::String(format!("{name}-disk-{disk_id}")),
                Value::String(String::new()),
                Value::Int(-1),
            ],
        )?);
        if persistent {
            // As `nimg.persistent`, whose result the Ruby code does not look at.
            let _ = client.call(
                "one.image.persistent",
                vec![Value::Int(image), Value::Bool(true)],
            );
        }
        images.push(image);
        replace.push_str(&format!("DISK = [ IMAGE_ID = {image} "));
        if !rest.is_empty() {
            replace.push_str(&format!(", {}", like_str(&rest)));
        }
        replace.push_str(" ]\n");
    }
    for nic in t.children_named("NIC") {
        if child_text(nic, "NIC_ID").is_empty() {
            return Err("Missing NIC_ID".into());
        }
        let rest = kept(nic, REMOVE_VNET_ATTRS);
        replace.push_str(&format!("NIC = [ {} ] \n", like_str(&rest)));
    }
    replace.push_str(&format!("SAVED_TEMPLATE_ID = {tid}\n"));
    call(
        client,
        "one.template.update",
        vec![Value::Int(ntid), Value::String(replace), Value::Int(1)],
    )
    .map(drop)
}

// ---------------------------------------------------------------------------------------------
// Charters

/// A charter: an action, after how many seconds, and the warning's seconds before.
#[derive(Debug, Clone, PartialEq)]
struct Charter {
    action: String,
    time: i64,
    warning: i64,
}

/// The `:charters:` of the shipped `onevm.yaml`.
fn default_charters() -> Vec<Charter> {
    ["suspend", "terminate"]
        .into_iter()
        .map(|a| Charter {
            action: a.into(),
            time: 1_209_600,
            warning: 86_400,
        })
        .collect()
}

/// `OneVMHelper.table_conf`: `~/.one/cli/onevm.yaml`, else the installed one.
fn conf_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".one/cli/onevm.yaml"))
        .filter(|p| p.exists());
    home.or_else(|| {
        let dir = match std::env::var_os("ONE_LOCATION") {
            Some(l) => PathBuf::from(l).join("etc/cli"),
            None => PathBuf::from("/etc/one/cli"),
        };
        Some(dir.join("onevm.yaml")).filter(|p| p.exists())
    })
}

/// Ruby's `String#to_i`: the leading integer, 0 if none.
fn ruby_to_i(v: &str) -> i64 {
    let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
    let (sign, digits) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    sign * n.parse::<i64>().unwrap_or(0)
}

/// The `:charters:` mapping of an `onevm.yaml` (`:action:` keys, each with `:time:` and a
/// `:warning:` holding `:time:`), in file order; `None` when it has none.
fn parse_charters(yaml: &str) -> Option<Vec<Charter>> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut lines = yaml
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    lines.find(|l| indent(l) == 0 && l.trim_end() == ":charters:")?;
    let mut out: Vec<Charter> = Vec::new();
    let mut in_warning = false;
    let mut action_indent = None;
    for l in lines {
        let at = indent(l);
        if at == 0 {
            break;
        }
        let line = l.trim();
        let (key, value) = line.split_once(':').map_or((line, ""), |(_, rest)| {
            // `:key: value`
            match rest.split_once(':') {
                Some((k, v)) => (k, v.trim()),
                None => (rest, ""),
            }
        });
        match action_indent {
            None => action_indent = Some(at),
            Some(a) if at < a => break,
            _ => {}
        }
        if Some(at) == action_indent {
            out.push(Charter {
                action: key.to_string(),
                time: 0,
                warning: 0,
            });
            in_warning = false;
            continue;
        }
        let Some(c) = out.last_mut() else { continue };
        match key {
            "warning" => in_warning = true,
            "time" if in_warning => c.warning = ruby_to_i(value),
            "time" => c.time = ruby_to_i(value),
            _ => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

fn charters() -> Option<Vec<Charter>> {
    match conf_file() {
        Some(path) => parse_charters(&std::fs::read_to_string(path).ok()?),
        None => Some(default_charters()),
    }
}

/// `onevm create-chart <vmid>`: each charter a scheduled action after the previous ones,
/// counted from the VM's start, with its warning.
fn create_chart(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let charters = charters().ok_or("No charters found on configuration file")?;
    let vm = Resolver::own(client, Kind::Vm).arg(o.words.get(1), "VM id")?;
    let v = vm_info(client, vm)?;
    let stime: i64 = child_text(&v, "STIME").parse().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let diff = now - stime;
    let mut acc = 0;
    for c in charters {
        let sched = format!("+{}", c.time + acc + diff);
        let warning = format!("+{}", c.warning + acc);
        // `OpenNebulaHelper.schedule_action_tmpl`, spacing included.
        let tmpl = format!(
            "SCHED_ACTION = [ACTION  = {}, WARNING = {warning},TIME    = {sched}]",
            c.action
        );
        call(
            client,
            "one.vm.schedadd",
            vec![Value::Int(vm), Value::String(tmpl)],
        )?;
        writeln!(
            out,
            "VM {vm}: {} scheduled after {sched}s from start",
            c.action
        )
        .map_err(|e| e.to_string())?;
        acc += c.time;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charters_are_read_from_onevm_yaml_as_the_ruby_helper_reads_them() {
        let yaml = "---\n:ID:\n  :desc: ONE identifier\n  :size: 6\n\n:charters:\n  :suspend:\n    :time: \"+1209600\"\n    :warning:\n      :time: 86400\n  :terminate:\n    :time: \"+100\"\n    :warning:\n      :time: 10\n:default:\n- :ID\n";
        assert_eq!(
            parse_charters(yaml),
            Some(vec![
                Charter {
                    action: "suspend".into(),
                    time: 1_209_600,
                    warning: 86_400
                },
                Charter {
                    action: "terminate".into(),
                    time: 100,
                    warning: 10
                },
            ])
        );
        assert_eq!(parse_charters(":default:\n- :ID\n"), None);
        assert_eq!(ruby_to_i("\"+12x\""), 12);
    }

    #[test]
    fn a_disk_is_written_as_template_like_str_with_commas() {
        let e = Element::parse(
            "<DISK><A>1</A><DISK_ID>0</DISK_ID><B>x\"y</B><C></C><SIZE>5</SIZE></DISK>",
        )
        .unwrap();
        assert_eq!(
            like_str(&kept(&e, REMOVE_IMAGE_ATTRS)),
            "A=\"1\",B=\"x\\\"y\",SIZE=\"5\""
        );
    }
}
