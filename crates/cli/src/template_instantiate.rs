//! `onetemplate instantiate <id> [<file>]` with OpenNebula's options: `--multiple`, `--name`
//! with `%i` (and `--prefix`), `--hold`, `--persistent`, and the template options
//! (`--cpu`, `--vcpu`, `--memory`, `--disk`, `--nic`, `--raw`) that `OpenNebulaHelper.
//! create_template` turns into the extra template.

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::objects::{err_text, Opts};

/// The options of `instantiate` that take a value.
pub(crate) const VALUED: &[&str] = &[
    "-m",
    "--multiple",
    "--name",
    "--prefix",
    "--cpu",
    "--vcpu",
    "--memory",
    "--disk",
    "--nic",
    "--raw",
];

/// The template options (`OpenNebulaHelper::TEMPLATE_OPTIONS`) OneHA's CLI takes: a file and
/// these exclude each other.
const TEMPLATE_OPTIONS: [(&str, &str); 6] = [
    ("--cpu", "cpu"),
    ("--vcpu", "vcpu"),
    ("--memory", "memory"),
    ("--disk", "disk"),
    ("--nic", "nic"),
    ("--raw", "raw"),
];

/// Most VMs one call makes: `--multiple` is a client's count.
const MOST: i64 = 10_000;

/// Instantiates template `id` `--multiple` times (once by default), printing each VM's id;
/// stops at the first refusal, as OpenNebula's CLI does.
pub(crate) fn instantiate(
    o: &Opts,
    client: &Client,
    id: i32,
    file: Option<&String>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let used: Vec<&str> = TEMPLATE_OPTIONS
        .iter()
        .filter(|(flag, _)| o.flag(&[flag]))
        .map(|(_, name)| *name)
        .collect();
    if file.is_some() && !used.is_empty() {
        return Err(format!(
            "You cannot pass template on STDIN and use template creation options, \
             conflicting options: {}.",
            used.join(", ")
        ));
    }
    let number = match o.value(&["-m", "--multiple"]) {
        Some(n) => n
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("invalid argument: --multiple {n}"))?,
        None => 1,
    };
    if number > MOST {
        return Err(format!("--multiple {number} is above {MOST}"));
    }
    let name = o.value(&["--name"]);
    let extra = match file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?,
        None => extra_template(o, name.as_deref())?,
    };
    let prefix = o.value(&["--prefix"]).and_then(|p| counter(&p));
    let hold = o.flag(&["--hold"]);
    let persistent = o.flag(&["--persistent"]);
    for index in 0..number.max(0) {
        let (name, extra) = match (&prefix, &name) {
            (Some((zeros, start)), Some(n)) => {
                let i = format!("{zeros}{}", start + index);
                (n.replace("%i", &i), extra.replace("%i", &i))
            }
            (None, Some(n)) => (n.replace("%i", &index.to_string()), extra.clone()),
            (_, None) => (String::new(), extra.clone()),
        };
        let v = client
            .call(
                wire::method::TEMPLATE_INSTANTIATE,
                vec![
                    Value::Int(id),
                    Value::String(name),
                    Value::Bool(hold),
                    Value::String(extra.trim().to_string()),
                    Value::Bool(persistent),
                ],
            )
            .map_err(err_text)?;
        writeln!(out, "VM ID: {}", v.as_i64().unwrap_or(-1)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `--prefix`'s leading zeros and the number after them (`007`: `00`, 7); `None` when it has
/// no leading zeros or no number after them, where OpenNebula's CLI leaves `%i` as it is.
fn counter(prefix: &str) -> Option<(String, i64)> {
    let rest = prefix.trim_start_matches('0');
    let zeros = &prefix[..prefix.len() - rest.len()];
    if zeros.is_empty() {
        return None;
    }
    Some((zeros.to_string(), rest.parse().ok()?))
}

/// `OpenNebulaHelper.create_template`: the extra template the options make.
fn extra_template(o: &Opts, name: Option<&str>) -> Result<String, String> {
    let mut t = String::new();
    if let Some(n) = name {
        t.push_str(&format!("NAME=\"{n}\"\n"));
    }
    if let Some(cpu) = o.value(&["--cpu"]) {
        let v = cpu
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|c| c.is_finite())
            .ok_or_else(|| format!("invalid argument: --cpu {cpu}"))?;
        // Ruby prints a Float with its decimal point: 2.0.
        t.push_str(&format!("CPU={v:?}\n"));
    }
    if let Some(vcpu) = o.value(&["--vcpu"]) {
        let v = vcpu
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("invalid argument: --vcpu {vcpu}"))?;
        t.push_str(&format!("VCPU={v}\n"));
    }
    if let Some(memory) = o.value(&["--memory"]) {
        t.push_str(&format!("MEMORY={}\n", memory_mb(&memory)?));
    }
    if let Some(raw) = o.value(&["--raw"]) {
        t.push_str(&format!("{raw}\n"));
    }
    if let Some(disks) = o.value(&["--disk"]) {
        t.push_str(&disk_net(&disks, "DISK", "IMAGE")?);
    }
    if let Some(nics) = o.value(&["--nic"]) {
        t.push_str(&disk_net(&nics, "NIC", "NETWORK")?);
    }
    Ok(t)
}

/// `--memory`: megabytes, or gigabytes with `g`/`gb` (floats allowed: 0.5g is 512).
fn memory_mb(v: &str) -> Result<i64, String> {
    let s = v.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = s.strip_suffix("gb").or_else(|| s.strip_suffix('g')) {
        (n, 1024.0)
    } else if let Some(n) = s.strip_suffix("mb").or_else(|| s.strip_suffix('m')) {
        (n, 1.0)
    } else {
        (s.as_str(), 1.0)
    };
    let well_formed = !num.is_empty()
        && !num.starts_with('.')
        && !num.ends_with('.')
        && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        && num.matches('.').count() <= 1;
    let value = num
        .parse::<f64>()
        .ok()
        .filter(|_| well_formed)
        .ok_or("Memory value malformed")?;
    Ok((value * mult).floor() as i64)
}

/// `OpenNebulaHelper.create_disk_net`: a `section` vector per comma-separated object, each
/// `[<user>[<object>]][:KEY=value...]`, the object an id (`<name>_ID`) or a name.
fn disk_net(list: &str, section: &str, name: &str) -> Result<String, String> {
    let mut t = String::new();
    for obj in list.split(',') {
        let mut parts = obj.split(':');
        let head = parts.next().unwrap_or_default();
        // A part without `=` belongs to the value before it (a MAC's colons).
        let mut attrs: Vec<String> = Vec::new();
        for p in parts {
            match attrs.last_mut() {
                Some(last) if !p.contains('=') => {
                    last.push(':');
                    last.push_str(p);
                }
                _ => attrs.push(p.to_string()),
            }
        }
        let (user, object) = user_object(head).ok_or_else(|| {
            let mut s = section.to_ascii_lowercase();
            if let Some(f) = s.get_mut(..1) {
                f.make_ascii_uppercase();
            }
            format!("{s} \"{head}\" malformed")
        })?;
        t.push_str(&format!("{section}=[\n"));
        if object.eq_ignore_ascii_case("auto") {
            t.push_str(&format!("  NETWORK_MODE=\"{object}\"\n"));
        } else {
            if let Some(u) = user {
                t.push_str(&format!("  {name}_UNAME=\"{u}\",\n"));
            }
            for a in &attrs {
                let mut kv = a.split('=');
                let key = kv.next().unwrap_or_default().to_ascii_uppercase();
                let value = kv.next().unwrap_or_default();
                t.push_str(&format!("  {key}=\"{value}\",\n"));
            }
            if !object.is_empty() && object.chars().all(|c| c.is_ascii_digit()) {
                t.push_str(&format!("  {name}_ID={object}\n"));
            } else {
                t.push_str(&format!("  {name}=\"{object}\"\n"));
            }
        }
        t.push_str("]\n");
    }
    Ok(t)
}

/// `OpenNebulaHelper.parse_user_object`: `user[object]` or `object`.
fn user_object(s: &str) -> Option<(Option<&str>, &str)> {
    match s.split_once('[') {
        Some((user, rest)) => {
            let object = rest.strip_suffix(']')?;
            if user.is_empty() || object.is_empty() || object.contains([']', '[']) {
                return None;
            }
            Some((Some(user), object))
        }
        None if !s.is_empty() && !s.contains(']') => Some((None, s)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_takes_megabytes_or_gigabytes() {
        assert_eq!(memory_mb("512").unwrap(), 512);
        assert_eq!(memory_mb("8g").unwrap(), 8192);
        assert_eq!(memory_mb("0.5G").unwrap(), 512);
        assert_eq!(memory_mb("128mb").unwrap(), 128);
        assert!(memory_mb("1.x").is_err());
        assert!(memory_mb("-1").is_err());
    }

    #[test]
    fn disks_and_nics_are_written_as_the_ruby_cli_writes_them() {
        assert_eq!(
            disk_net("3,oneadmin[base]:target=vdb", "DISK", "IMAGE").unwrap(),
            "DISK=[\n  IMAGE_ID=3\n]\nDISK=[\n  IMAGE_UNAME=\"oneadmin\",\n  TARGET=\"vdb\",\n  IMAGE=\"base\"\n]\n"
        );
        assert_eq!(
            disk_net("net:mac=00:0A:12:34:56:78", "NIC", "NETWORK").unwrap(),
            "NIC=[\n  MAC=\"00:0A:12:34:56:78\",\n  NETWORK=\"net\"\n]\n"
        );
        assert_eq!(
            disk_net("auto", "NIC", "NETWORK").unwrap(),
            "NIC=[\n  NETWORK_MODE=\"auto\"\n]\n"
        );
        assert_eq!(
            disk_net("a[", "DISK", "IMAGE").unwrap_err(),
            "Disk \"a[\" malformed"
        );
    }

    #[test]
    fn a_prefix_counts_from_after_its_zeros() {
        assert_eq!(counter("007"), Some(("00".into(), 7)));
        assert_eq!(counter("5"), None);
        assert_eq!(counter("00"), None);
    }
}
