//! `onevm`'s snapshot and disk subcommands, with OpenNebula's arguments (`src/cli/onevm`):
//! `snapshot-create`, `snapshot-revert`, `snapshot-delete`, `disk-snapshot-create`,
//! `disk-snapshot-revert`, `disk-snapshot-delete`, `disk-snapshot-rename`, `disk-resize`,
//! `disk-saveas`, `snapshot-list`, `disk-snapshot-list` (`crate::onevm_snap_list`). Snapshots are named by id or by name, as `OneVMHelper` resolves them; only
//! `disk-saveas` prints something (`Image ID: <id>`).

use std::io::Write;

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::Resolver;
use crate::objects::{err_text, Kind, Opts};
use crate::xml::Element;

/// The options of `subcommand` that take a value.
pub(crate) fn valued_flags(subcommand: &str) -> &'static [&'static str] {
    match subcommand {
        "disk-saveas" => &["-t", "--type", "-s", "--snapshot"],
        _ => &[],
    }
}

/// Whether `subcommand` is one of these.
pub(crate) fn handles(subcommand: &str) -> bool {
    matches!(
        subcommand,
        "snapshot-create"
            | "snapshot-revert"
            | "snapshot-delete"
            | "disk-snapshot-create"
            | "disk-snapshot-revert"
            | "disk-snapshot-delete"
            | "disk-snapshot-rename"
            | "disk-resize"
            | "disk-saveas"
            | "snapshot-list"
            | "disk-snapshot-list"
    )
}

fn word(o: &Opts, i: usize, what: &str) -> Result<String, String> {
    o.words
        .get(i)
        .cloned()
        .ok_or_else(|| format!("missing {what}"))
}

fn number(o: &Opts, i: usize, what: &str) -> Result<i32, String> {
    crate::objects::id(o.words.get(i), what)
}

fn call(client: &Client, method: &str, params: Vec<Value>) -> Result<Value, String> {
    client.call(method, params).map_err(err_text)
}

fn vm_body(client: &Client, vm: i32) -> Result<Element, String> {
    let xml = client
        .call_xml("one.vm.info", vec![Value::Int(vm)])
        .map_err(err_text)?;
    Element::parse(&xml).map_err(|e| e.to_string())
}

/// A snapshot given by id or by unique name: `ids` lists (name, id) of the candidates.
fn by_id_or_name(arg: &str, ids: Vec<(String, i64)>, missing: String) -> Result<i32, String> {
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        return arg.parse().map_err(|_| missing);
    }
    let found: Vec<i64> = ids
        .into_iter()
        .filter(|(n, _)| n == arg)
        .map(|(_, id)| id)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one as i32),
        _ => Err(missing),
    }
}

/// `OneVMHelper#retrieve_snapshot_id`.
fn snapshot_id(client: &Client, vm: i32, arg: &str) -> Result<i32, String> {
    if arg.bytes().all(|b| b.is_ascii_digit()) && !arg.is_empty() {
        return by_id_or_name(arg, Vec::new(), format!("{arg} not found or duplicated"));
    }
    let body = vm_body(client, vm)?;
    let ids = body
        .child("TEMPLATE")
        .map(|t| {
            t.children_named("SNAPSHOT")
                .filter_map(|s| {
                    Some((
                        s.text_of("NAME").ok()?.to_string(),
                        s.text_of("SNAPSHOT_ID").ok()?.trim().parse().ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    by_id_or_name(arg, ids, format!("{arg} not found or duplicated"))
}

/// `OneVMHelper#retrieve_disk_snapshot_id` (any disk's snapshot of that name).
fn disk_snapshot_id(client: &Client, vm: i32, arg: &str) -> Result<i32, String> {
    let missing = format!("Snapshot {arg} not found or duplicated");
    if arg.bytes().all(|b| b.is_ascii_digit()) && !arg.is_empty() {
        return by_id_or_name(arg, Vec::new(), missing);
    }
    let body = vm_body(client, vm)?;
    let ids = body
        .children_named("SNAPSHOTS")
        .flat_map(|s| s.children_named("SNAPSHOT"))
        .filter_map(|s| {
            Some((
                s.text_of("NAME").ok()?.to_string(),
                s.text_of("ID").ok()?.trim().parse().ok()?,
            ))
        })
        .collect();
    by_id_or_name(arg, ids, missing)
}

/// `OpenNebulaHelper.size_in_mb`: `<n>[m|mb|g|gb|t|tb]`, MiB by default.
pub(crate) fn size_in_mb(arg: &str) -> Result<i64, String> {
    let lower = arg.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let multiplier = match unit {
        "" | "m" | "mb" => 1.0,
        "g" | "gb" => 1024.0,
        "t" | "tb" => 1024.0 * 1024.0,
        _ => return Err("Size value malformed".into()),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && !num.starts_with('.') && !num.ends_with('.'))
        .ok_or("Size value malformed")?;
    Ok((n * multiplier) as i64)
}

pub(crate) fn execute(o: &Opts, client: &Client, out: &mut dyn Write) -> Result<(), String> {
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let vm = Resolver::own(client, Kind::Vm).arg(o.words.get(1), "VM id")?;
    let v = Value::Int(vm);
    match cmd {
        "snapshot-create" => {
            let name = o.words.get(2).cloned().unwrap_or_default();
            call(
                client,
                "one.vm.snapshotcreate",
                vec![v, Value::String(name)],
            )
            .map(drop)
        }
        "snapshot-revert" | "snapshot-delete" => {
            let snap = snapshot_id(client, vm, &word(o, 2, "snapshot id")?)?;
            let method = if cmd == "snapshot-revert" {
                "one.vm.snapshotrevert"
            } else {
                "one.vm.snapshotdelete"
            };
            call(client, method, vec![v, Value::Int(snap)]).map(drop)
        }
        "disk-snapshot-create" => {
            let disk = number(o, 2, "disk id")?;
            let name = word(o, 3, "snapshot name")?;
            call(
                client,
                "one.vm.disksnapshotcreate",
                vec![v, Value::Int(disk), Value::String(name)],
            )
            .map(drop)
        }
        "disk-snapshot-revert" | "disk-snapshot-delete" => {
            let disk = number(o, 2, "disk id")?;
            let snap = disk_snapshot_id(client, vm, &word(o, 3, "disk snapshot id")?)?;
            let method = if cmd == "disk-snapshot-revert" {
                "one.vm.disksnapshotrevert"
            } else {
                "one.vm.disksnapshotdelete"
            };
            call(client, method, vec![v, Value::Int(disk), Value::Int(snap)]).map(drop)
        }
        "disk-snapshot-rename" => {
            let disk = number(o, 2, "disk id")?;
            let snap: i32 = word(o, 3, "disk snapshot id")?
                .parse()
                .map_err(|_| "The disk snapshot ID must be an integer".to_string())?;
            let name = word(o, 4, "new snapshot name")?;
            call(
                client,
                "one.vm.disksnapshotrename",
                vec![v, Value::Int(disk), Value::Int(snap), Value::String(name)],
            )
            .map(drop)
        }
        "disk-resize" => {
            let disk = number(o, 2, "disk id")?;
            let size = size_in_mb(&word(o, 3, "size")?)?;
            // As OpenNebula's CLI: compared with the disk's size before asking.
            let body = vm_body(client, vm)?;
            let current: i64 = body
                .child("TEMPLATE")
                .into_iter()
                .flat_map(|t| t.children_named("DISK"))
                .find(|d| d.text_of("DISK_ID").map(str::trim) == Ok(&disk.to_string()))
                .and_then(|d| d.text_of("SIZE").ok()?.trim().parse().ok())
                .unwrap_or(0);
            if current >= size {
                return Err(format!(
                    "New size '{size}' must be larger than current size '{current}'"
                ));
            }
            call(
                client,
                "one.vm.diskresize",
                vec![v, Value::Int(disk), Value::String(size.to_string())],
            )
            .map(drop)
        }
        "disk-saveas" => {
            let disk = number(o, 2, "disk id")?;
            let name = word(o, 3, "image name")?;
            let kind = o.value(&["-t", "--type"]).unwrap_or_default();
            let snap = match o.value(&["-s", "--snapshot"]).filter(|s| !s.is_empty()) {
                None => -1,
                Some(s) => disk_snapshot_id(client, vm, &s)?,
            };
            let image = call(
                client,
                "one.vm.disksaveas",
                vec![
                    v,
                    Value::Int(disk),
                    Value::String(name),
                    Value::String(kind),
                    Value::Int(snap),
                ],
            )?;
            let id = image.as_i64().unwrap_or(-1);
            writeln!(out, "Image ID: {id}").map_err(|e| e.to_string())
        }
        "snapshot-list" => crate::onevm_snap_list::print(
            out,
            &crate::onevm_snap_list::system(&vm_body(client, vm)?),
        ),
        "disk-snapshot-list" => {
            let disk = word(o, 2, "disk id")?;
            let body = vm_body(client, vm)?;
            crate::onevm_snap_list::print(out, &crate::onevm_snap_list::disk(&body, &disk))
        }
        other => Err(format!("Unknown command '{other}'.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_in_mib_as_opennebula_reads_them() {
        assert_eq!(size_in_mb("20"), Ok(20));
        assert_eq!(size_in_mb("2G"), Ok(2048));
        assert_eq!(size_in_mb("1.5gb"), Ok(1536));
        assert_eq!(size_in_mb("1T"), Ok(1048576));
        assert_eq!(size_in_mb("ten"), Err("Size value malformed".into()));
        assert_eq!(size_in_mb("3k"), Err("Size value malformed".into()));
    }
}
