//! `onevnet`: its subcommands as OpenNebula's `src/cli/onevnet` runs them, with the address
//! ranges (`addar`, `rmar`, `free`, `updatear`), the leases (`hold`, `release`, `reserve`) and
//! `recover`. Networks are named by id or name, several at once where OpenNebula takes a
//! range (`crate::ids`). The layouts are in `crate::vnet_show`.
//!
//! Templates are read from the file given or, where OpenNebula also reads a pipe, from stdin
//! when it is not a terminal; `addar` with its address options does not read stdin. `update`
//! without either opens the editor (`crate::editor`).

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{option_id, perform, Family, Resolver};
use crate::market::action_args;
use crate::objects::{err_text, text, Kind, Opts};
use crate::vnet_show::{like_str, ranges};
use crate::xml::Element;

/// `ClusterPool::NONE_CLUSTER_ID`: the default cluster.
const NO_CLUSTER: i32 = -1;

/// `OneVNetHelper::ADDAR_OPTIONS`: each option's names, and the key `create_ar` reads.
const ADDAR: [(&str, &str, &str); 10] = [
    ("-s", "--size", "size"),
    ("-m", "--mac", "mac"),
    ("-i", "--ip", "ip"),
    ("-6", "--ip6", "ip6"),
    ("-g", "--ip6_global", "ip6_global"),
    ("-u", "--ip6_ula", "ip6_ula"),
    ("--gateway", "--gateway", "gateway"),
    ("--netmask", "--netmask", "netmask"),
    ("--vn_mad", "--vn_mad", "vn_mad"),
    ("--vlanid", "--vlanid", "vlanid"),
];

/// The options of `cmd` that take a value, beyond those every command shares.
pub(crate) fn valued_flags(cmd: &str) -> &'static [&'static str] {
    match cmd {
        "addar" => &[
            "-s",
            "--size",
            "-m",
            "--mac",
            "-i",
            "--ip",
            "-6",
            "--ip6",
            "-g",
            "--ip6_global",
            "-u",
            "--ip6_ula",
            "--gateway",
            "--netmask",
            "--vn_mad",
            "--vlanid",
        ],
        "reserve" => &[
            "-a",
            "--address_range",
            "-n",
            "--name",
            "-s",
            "--size",
            "-m",
            "--mac",
            "-i",
            "--ip",
            "-6",
            "--ip6",
        ],
        "hold" | "release" => &["-a", "--address_range"],
        _ => &[],
    }
}

/// `CommandParser#check_args!`: the words each subcommand needs, and its argument list.
fn need(o: &Opts, cmd: &str, arity: usize, formats: usize) -> Result<(), String> {
    if o.words.len() > arity {
        return Ok(());
    }
    Err(if arity > 1 {
        format!("Command {cmd} requires {formats} parameters to run.")
    } else {
        format!("Command {cmd} requires one parameter to run")
    })
}

/// `format_int`: an address range id.
fn ar_id(word: &str) -> Result<i32, String> {
    let valid = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    valid
        .then(|| word.parse().ok())
        .flatten()
        .ok_or_else(|| format!("Argument '{word}' is not a valid ID"))
}

/// `format_file`: an optional file argument, which must exist.
fn file_arg(o: &Opts, cmd: &str, i: usize) -> Result<Option<String>, String> {
    let Some(path) = o.words.get(i) else {
        return Ok(None);
    };
    if !std::path::Path::new(path).is_file() {
        return Err(format!(
            "command {cmd}: argument {} must be one of file",
            i - 1
        ));
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| format!("{path}: {e}"))
}

/// A file argument, else what is piped in.
fn template_arg(o: &Opts, cmd: &str, i: usize) -> Result<Option<String>, String> {
    if let Some(text) = file_arg(o, cmd, i)? {
        return Ok(Some(text));
    }
    let piped = crate::editor::piped()?;
    Ok((!piped.is_empty()).then_some(piped))
}

/// An `Integer` option (`-a`), as OptionParser refuses it.
fn int_option(o: &Opts, names: &[&str]) -> Result<Option<i32>, String> {
    let Some(v) = o.value(names) else {
        return Ok(None);
    };
    v.trim().parse().map(Some).map_err(|_| {
        let flag = o
            .flags
            .iter()
            .rev()
            .find(|(f, _)| names.contains(&f.as_str()))
            .map_or(names[0], |(f, _)| f.as_str());
        format!("invalid argument: {flag} {v}")
    })
}

/// Runs one `onevnet` subcommand.
pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let kind = Kind::Vnet;
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let net = Net { o, client };
    match cmd {
        "list" => crate::listing::list(kind, o, client, out),
        "show" => {
            need(o, cmd, 1, 1)?;
            crate::vnet_show::show(client, net.one(1)?, o, out)
        }
        "create" => create(&net, out),
        "delete" | "chgrp" | "chown" | "chmod" | "lock" | "unlock" => {
            let arity = match cmd {
                "chgrp" | "chown" | "chmod" => 2,
                _ => 1,
            };
            let formats = if cmd == "chown" { 3 } else { arity };
            need(o, cmd, arity, formats)?;
            let ids = net.many(1)?;
            let (verb, rest) = action_args(cmd, o, client)?;
            net.each(&ids, verb, rest)
        }
        "recover" => recover(&net),
        "addar" => {
            need(o, cmd, 1, 2)?;
            let oid = net.one(1)?;
            let quick = ADDAR.iter().any(|(short, long, _)| o.flag(&[short, long]));
            let ar = match file_arg(o, cmd, 2)? {
                Some(text) => text,
                None if quick => quick_ar(o)?,
                None => match crate::editor::piped()? {
                    piped if !piped.is_empty() => piped,
                    _ => quick_ar(o)?,
                },
            };
            net.call("add_ar", vec![Value::Int(oid), Value::String(ar)])
        }
        "rmar" | "free" => {
            need(o, cmd, 2, 2)?;
            let oid = net.one(1)?;
            let ar = ar_id(&o.words[2])?;
            if cmd == "free" {
                return net.call("free_ar", vec![Value::Int(oid), Value::Int(ar)]);
            }
            let force = Value::Bool(o.flag(&["--force"]));
            net.call("rm_ar", vec![Value::Int(oid), Value::Int(ar), force])
        }
        "updatear" => update_ar(&net),
        "hold" | "release" => {
            need(o, cmd, 2, 2)?;
            let oid = net.one(1)?;
            let ar = int_option(o, &["-a", "--address_range"])?.unwrap_or(-1);
            let addr = &o.words[2];
            let mut lease = format!("LEASES = [ {} = {addr}", address_type(addr)?);
            if ar != -1 {
                lease.push_str(&format!(", AR_ID = {ar}"));
            }
            lease.push(']');
            net.call(cmd, vec![Value::Int(oid), Value::String(lease)])
        }
        "reserve" => reserve(&net, out),
        "update" => {
            need(o, cmd, 1, 2)?;
            crate::owned_ops::execute(Kind::Vnet, "one.vn", cmd, o, client)
        }
        "rename" => {
            need(o, cmd, 2, 2)?;
            let oid = net.one(1)?;
            let name = Value::String(o.words[2].clone());
            net.call("rename", vec![Value::Int(oid), name])
        }
        "orphans" => orphans(client, out),
        "addleases" => add_leases(&net),
        "rmleases" => rm_leases(&net),
        "" => Err(format!("No command given.\nusage: {}", kind.usage())),
        other => Err(format!(
            "Unknown command '{other}'.\nusage: {}",
            kind.usage()
        )),
    }
}

/// One subcommand's options and client.
struct Net<'a> {
    o: &'a Opts,
    client: &'a Client,
}

impl Net<'_> {
    /// Word `i` as one network (`:vnetid`).
    fn one(&self, i: usize) -> Result<i32, String> {
        Resolver::own(self.client, Kind::Vnet).arg(self.o.words.get(i), "id")
    }

    /// Word `i` as `[:range, :vnetid_list]`.
    fn many(&self, i: usize) -> Result<Vec<i32>, String> {
        Resolver::own(self.client, Kind::Vnet).args(self.o.words.get(i), "id")
    }

    fn value(&self, verb: &str, params: Vec<Value>) -> Result<Value, String> {
        self.client
            .call(&format!("one.vn.{verb}"), params)
            .map_err(err_text)
    }

    fn call(&self, verb: &str, params: Vec<Value>) -> Result<(), String> {
        self.value(verb, params).map(drop)
    }

    /// `perform_actions`: `verb` on each id, the refusals reported together.
    fn each(&self, ids: &[i32], verb: &str, rest: Vec<Value>) -> Result<(), String> {
        perform(ids, |oid| {
            let mut params = vec![Value::Int(oid)];
            params.extend(rest.iter().cloned());
            self.call(verb, params)
        })
    }

    fn info(&self, oid: i32) -> Result<Element, String> {
        let xml = self
            .client
            .call_xml("one.vn.info", vec![Value::Int(oid)])
            .map_err(err_text)?;
        Element::parse(&xml).map_err(|e| e.to_string())
    }
}

fn create(net: &Net, out: &mut dyn Write) -> Result<(), String> {
    let o = net.o;
    let cluster = option_id(
        net.client,
        Family::Cluster,
        o.value(&["-c", "--cluster"]),
        "cluster",
    )?
    .unwrap_or(NO_CLUSTER);
    let text = template_arg(o, "create", 1)?
        // What Ruby's XML-RPC says of the nil template OpenNebula's onevnet sends then.
        .ok_or("Wrong type NilClass. Not allowed!")?;
    let v = net.value("allocate", vec![Value::String(text), Value::Int(cluster)])?;
    writeln!(out, "ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
}

fn recover(net: &Net) -> Result<(), String> {
    let o = net.o;
    need(o, "recover", 1, 1)?;
    let ids = net.many(1)?;
    let result = [
        ("--success", 1),
        ("--failure", 0),
        ("--delete", 2),
        ("--retry", 3),
    ]
    .into_iter()
    .find(|(flag, _)| o.flag(&[flag]))
    .map(|(_, result)| result)
    .ok_or(
        "Need to specify the result of the pending action.\n\
         \t--success recover the VN by succeeding the missing action.\n\
         \t--failure recover the VN by failing the missing action.\n\
         \t--delete no recover possible, delete the VN.",
    )?;
    net.each(&ids, "recover", vec![Value::Int(result)])
}

/// `OpenNebulaHelper.create_ar`: an address range from `addar`'s options.
fn quick_ar(o: &Opts) -> Result<String, String> {
    let opt = |key: &str| {
        ADDAR
            .iter()
            .find(|(_, _, k)| *k == key)
            .and_then(|(short, long, _)| o.value(&[short, long]))
    };
    let has = |key: &str| opt(key).is_some();
    let v4 = has("ip");
    let ip6_prefix = has("ip6_global") || has("ip6_ula");
    let kind = match (v4, ip6_prefix, has("ip6")) {
        (true, true, _) => "IP4_6",
        (true, false, true) => "IP4_6_STATIC",
        (true, false, false) => "IP4",
        (false, _, true) => "IP6_STATIC",
        (false, true, false) => "IP6",
        (false, false, false) => "ETHER",
    };
    let mut ar = format!("AR = [ TYPE=\"{kind}\"");
    match opt("size") {
        Some(size) => ar.push_str(&format!(", SIZE = {size}")),
        None if !has("ip6") => return Err("Address range needs to specify size (-s size)".into()),
        None => {}
    }
    let mut ip6 = opt("ip6");
    if let Some(given) = &ip6 {
        let (address, prefix) = split_ip6(given).ok_or("Missing or wrong IP6")?;
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("Wrong IP6 format address".into());
        }
        ar.push_str(&format!(", PREFIX_LENGTH=\"{prefix}\""));
        ip6 = Some(address.to_string());
    }
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            ar.push_str(&format!(", {name} = {v}"));
        }
    };
    add("IP", opt("ip"));
    add("IP6", ip6);
    add("MAC", opt("mac"));
    add("GLOBAL_PREFIX", opt("ip6_global"));
    add("ULA_PREFIX", opt("ip6_ula"));
    add("GATEWAY", opt("gateway"));
    add("MASK", opt("netmask"));
    add("VN_MAD", opt("vn_mad"));
    add("VLAN_ID", opt("vlanid"));
    ar.push(']');
    Ok(ar)
}

/// `%r{([\h:]*)\/(\d.*)$}`: the address and the prefix length of `2001:db8::1/64`.
fn split_ip6(given: &str) -> Option<(&str, &str)> {
    let bytes = given.as_bytes();
    let hexish = |b: u8| b.is_ascii_hexdigit() || b == b':';
    (0..bytes.len()).find_map(|start| {
        let end = start
            + bytes[start..]
                .iter()
                .position(|&b| !hexish(b))
                .unwrap_or(bytes.len() - start);
        let prefix = given.get(end + 1..)?;
        let digit = prefix.as_bytes().first().is_some_and(u8::is_ascii_digit);
        (bytes.get(end) == Some(&b'/') && digit && !prefix.contains('\n'))
            .then(|| (&given[start..end], prefix))
    })
}

/// `VirtualNetwork#address_type`: IP, IP6 or MAC.
fn address_type(addr: &str) -> Result<&'static str, String> {
    // IPAddr also reads a network, as `10.0.0.0/24`.
    let ip = addr.split_once('/').map_or(addr, |(ip, _)| ip);
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => Ok("IP"),
        Ok(std::net::IpAddr::V6(_)) => Ok("IP6"),
        Err(_) if is_mac(addr) => Ok("MAC"),
        Err(_) => Err("Unknown address type".into()),
    }
}

/// `/^(\h{2}:){5}\h{2}$/`.
fn is_mac(addr: &str) -> bool {
    let parts: Vec<&str> = addr.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn reserve(net: &Net, out: &mut dyn Write) -> Result<(), String> {
    let o = net.o;
    need(o, "reserve", 1, 2)?;
    let oid = net.one(1)?;
    let target = match o.words.get(2) {
        Some(_) => Some(net.one(2)?),
        None => None,
    };
    let ar = int_option(o, &["-a", "--address_range"])?;
    let addr = [["-6", "--ip6"], ["-i", "--ip"], ["-m", "--mac"]]
        .iter()
        .find_map(|names| o.value(names));
    let size = o
        .value(&["-s", "--size"])
        .ok_or("Specify a size (-s size) for the reservation")?;
    let name = o.value(&["-n", "--name"]);
    if name.is_none() && target.is_none() {
        return Err("Specify a name (-n name) for the reservation".into());
    }
    // OpenNebula's onevnet names a reservation into another network "-1".
    let name = name.unwrap_or_else(|| "-1".into());
    let mut t = format!("SIZE       = {size}\nNAME       = \"{name}\"\n");
    if let Some(ar) = ar {
        t.push_str(&format!("AR_ID      = {ar}\n"));
    }
    if let Some(target) = target {
        t.push_str(&format!("NETWORK_ID = {target}\n"));
    }
    if let Some(addr) = addr {
        t.push_str(&format!("{} = {addr}\n", address_type(&addr)?));
    }
    let v = net.value("reserve", vec![Value::Int(oid), Value::String(t)])?;
    writeln!(out, "Reservation VNET ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())
}

/// The elements `OneVNetHelper#update_ar` drops from the range it shows.
const UPDATE_AR_DROPS: [&str; 8] = [
    "LEASES",
    "USED_LEASES",
    "MAC_END",
    "IP_END",
    "IP6_ULA",
    "IP6_ULA_END",
    "IP6_GLOBAL",
    "IP6_GLOBAL_END",
];

/// `OneVNetHelper#update_ar`: the range's new attributes, or with `--append` its current ones
/// with the file's put first.
fn update_ar(net: &Net) -> Result<(), String> {
    let o = net.o;
    need(o, "updatear", 2, 3)?;
    let oid = net.one(1)?;
    let ar = ar_id(&o.words[2])?;
    let v = net.info(oid)?;
    let range = ranges(&v)
        .into_iter()
        .find(|r| text(r, "AR_ID").trim().parse::<i32>() == Ok(ar))
        .ok_or_else(|| format!("Address Range {ar} does not exist for Virtual Network {oid}"))?;
    let mut kept = range.clone();
    kept.children
        .retain(|c| !UPDATE_AR_DROPS.contains(&c.name.as_str()));
    let append = o.flag(&["-a", "--append"]);
    // Without a file or a pipe, the editor: on nothing to append, else on the range as it is.
    let given = match template_arg(o, "updatear", 3)? {
        Some(t) => t,
        None if append => crate::editor::edit("")?,
        None => crate::editor::edit(&like_str(&kept, true))?,
    };
    let text = if append {
        let pool = Element {
            name: "AR_POOL".into(),
            text: String::new(),
            children: vec![kept],
        };
        let current = like_str(&pool, true);
        let mut parts: Vec<&str> = current.split('\n').collect();
        let first = format!("{},", given.trim());
        parts.insert(1.min(parts.len()), &first);
        parts.join("\n")
    } else if given.replace(' ', "").contains("AR=[") {
        given
    } else {
        // Ruby's `split("\n")`: the empty fields at the end are dropped.
        let mut lines: Vec<&str> = given.split('\n').collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        format!("AR=[\n{}]", lines.join(",\n"))
    };
    net.call("update_ar", vec![Value::Int(oid), Value::String(text)])
}

/// `OneVNetHelper#check_orphans`: the networks no VM template's NIC names, by id or by name
/// and owner.
fn orphans(client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let pool = |family: Family| -> Result<Element, String> {
        let (method, params) = family.pool_call(crate::ids::INFO_ALL);
        let xml = client.call_xml(method, params).map_err(err_text)?;
        Element::parse(&xml).map_err(|e| e.to_string())
    };
    let nets = pool(Family::Vnet)?;
    let templates = pool(Family::Template)?;
    let nics: Vec<&Element> = templates
        .children_named("VMTEMPLATE")
        .filter_map(|t| t.child("TEMPLATE"))
        .flat_map(|t| t.children_named("NIC"))
        .collect();
    let number = |s: &str| s.trim().parse::<f64>().ok();
    let orphans: Vec<&str> = nets
        .children_named("VNET")
        .filter(|n| {
            let id = number(text(n, "ID"));
            !nics.iter().any(|nic| {
                let by_id = nic
                    .children_named("NETWORK_ID")
                    .any(|i| id.is_some() && number(&i.text) == id);
                let by_name = nic
                    .children_named("NETWORK")
                    .any(|i| i.text == text(n, "NAME"))
                    && nic
                        .children_named("NETWORK_UNAME")
                        .any(|u| u.text == text(n, "UNAME"));
                by_id || by_name
            })
        })
        .map(|n| text(n, "ID"))
        .collect();
    // Ruby's `puts []` prints an empty line.
    writeln!(out, "{}", orphans.join("\n")).map_err(|e| e.to_string())
}

/// `addleases <id> <ip> [<mac>]` (deprecated in OpenNebula): a range of one IPv4 address.
fn add_leases(net: &Net) -> Result<(), String> {
    let o = net.o;
    need(o, "addleases", 2, 3)?;
    let oid = net.one(1)?;
    let ip = &o.words[2];
    let v = net.info(oid)?;
    if ranges(&v)
        .iter()
        .any(|r| text(r, "IP") == ip && text(r, "SIZE") == "1")
    {
        return Err(format!("IP Address Range found with IP {ip}"));
    }
    let mut ar = format!("AR = [ TYPE = \"IP4\", IP = \"{ip}\"");
    if let Some(mac) = o.words.get(3) {
        ar.push_str(&format!(", MAC = \"{mac}\""));
    }
    ar.push_str(", SIZE = 1 ]");
    net.call("add_ar", vec![Value::Int(oid), Value::String(ar)])
}

/// `rmleases <id> <ip>` (deprecated in OpenNebula): removes the range of that one address.
fn rm_leases(net: &Net) -> Result<(), String> {
    let o = net.o;
    need(o, "rmleases", 2, 2)?;
    let oid = net.one(1)?;
    let ip = &o.words[2];
    let v = net.info(oid)?;
    let found: Vec<&str> = ranges(&v)
        .into_iter()
        .filter(|r| text(r, "IP") == ip && text(r, "SIZE") == "1")
        .map(|r| text(r, "AR_ID"))
        .collect();
    match found[..] {
        [] => Err(format!("No single IP Address Range found with IP {ip}")),
        [one] => {
            let ar = ar_id(one)?;
            net.call(
                "rm_ar",
                vec![Value::Int(oid), Value::Int(ar), Value::Bool(false)],
            )
        }
        _ => Err(format!(
            "More than one Address Range found with IP {ip} use rmar"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn opts(args: &[(&str, &str)]) -> Opts {
        Opts {
            words: vec!["addar".into(), "0".into()],
            flags: args
                .iter()
                .map(|(f, v)| (f.to_string(), Some(v.to_string())))
                .collect(),
        }
    }

    #[test]
    fn addar_options_make_opennebulas_range() {
        assert_eq!(
            quick_ar(&opts(&[
                ("-s", "10"),
                ("--ip", "10.0.0.1"),
                ("--gateway", "10.0.0.254")
            ]))
            .unwrap(),
            "AR = [ TYPE=\"IP4\", SIZE = 10, IP = 10.0.0.1, GATEWAY = 10.0.0.254]"
        );
        assert_eq!(
            quick_ar(&opts(&[("-s", "4"), ("-m", "02:00:00:00:00:01")])).unwrap(),
            "AR = [ TYPE=\"ETHER\", SIZE = 4, MAC = 02:00:00:00:00:01]"
        );
        assert_eq!(
            quick_ar(&opts(&[("--ip6", "2001:db8::1/64")])).unwrap(),
            "AR = [ TYPE=\"IP6_STATIC\", PREFIX_LENGTH=\"64\", IP6 = 2001:db8::1]"
        );
        assert_eq!(
            quick_ar(&opts(&[
                ("-s", "2"),
                ("-i", "10.0.0.1"),
                ("-g", "2001:db8::")
            ]))
            .unwrap(),
            "AR = [ TYPE=\"IP4_6\", SIZE = 2, IP = 10.0.0.1, GLOBAL_PREFIX = 2001:db8::]"
        );
        assert_eq!(
            quick_ar(&opts(&[("--ip", "10.0.0.1")])),
            Err("Address range needs to specify size (-s size)".into())
        );
        assert_eq!(
            quick_ar(&opts(&[("--ip6", "2001:db8::1")])),
            Err("Missing or wrong IP6".into())
        );
        assert_eq!(
            quick_ar(&opts(&[("--ip6", "10.0.0.1/24")])),
            Err("Wrong IP6 format address".into())
        );
    }

    #[test]
    fn addresses_are_typed_as_opennebulas() {
        assert_eq!(address_type("10.0.0.1"), Ok("IP"));
        assert_eq!(address_type("2001:db8::1"), Ok("IP6"));
        assert_eq!(address_type("02:00:0a:00:00:01"), Ok("MAC"));
        assert_eq!(address_type("web"), Err("Unknown address type".to_string()));
        assert_eq!(split_ip6("fe80::1/64"), Some(("fe80::1", "64")));
        assert_eq!(split_ip6("fe80::1"), None);
    }

    #[test]
    fn range_ids_are_numbers() {
        assert_eq!(ar_id("3"), Ok(3));
        assert_eq!(ar_id("x"), Err("Argument 'x' is not a valid ID".into()));
        assert_eq!(ar_id("-1"), Err("Argument '-1' is not a valid ID".into()));
    }
}
