//! `onevm`'s day-2 subcommands, with OpenNebula's arguments (`src/cli/onevm`):
//! `disk-attach`, `disk-detach`, `nic-attach`, `nic-detach`, `nic-update`, `sg-attach`,
//! `sg-detach`, `resize`, `pci-attach`, `pci-detach`. Each prints nothing on success, as OpenNebula's.

use xmlrpc::Value;

use crate::client::Client;
use crate::ids::{Family, Resolver};
use crate::objects::{err_text, file_text, Kind, Opts};

/// The options of `subcommand` that take a value.
pub(crate) fn valued_flags(subcommand: &str) -> &'static [&'static str] {
    match subcommand {
        "disk-attach" => &["--image", "--target", "--file", "--size", "--type"],
        "nic-attach" => &["--network", "--ip", "--ip6", "--mac", "--file", "--model"],
        "nic-update" | "deploy" => &["--file"],
        "resize" => &["--cpu", "--vcpu", "--memory", "--file"],
        "pci-attach" => &[
            "--file",
            "--pci",
            "--pci_device",
            "--pci_class",
            "--pci_vendor",
        ],
        _ => &[],
    }
}

/// Whether `subcommand` is one of these.
pub(crate) fn handles(subcommand: &str) -> bool {
    matches!(
        subcommand,
        "disk-attach"
            | "disk-detach"
            | "nic-attach"
            | "nic-detach"
            | "nic-update"
            | "sg-attach"
            | "sg-detach"
            | "resize"
            | "pci-attach"
            | "pci-detach"
    )
}

fn number(o: &Opts, i: usize, what: &str) -> Result<i32, String> {
    crate::objects::id(o.words.get(i), what)
}

fn call(client: &Client, method: &str, params: Vec<Value>) -> Result<(), String> {
    client.call(method, params).map(drop).map_err(err_text)
}

/// A template attribute's value as OpenNebula's CLI writes it: quoted.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `KEY = [ a = "x", ... ]` from the options given.
fn vector(name: &str, pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k} = {}", quoted(v)))
        .collect();
    format!("{name} = [ {} ]", body.join(", "))
}

pub(crate) fn execute(o: &Opts, client: &Client) -> Result<(), String> {
    let cmd = o.words.first().map(String::as_str).unwrap_or("");
    let vm = Resolver::own(client, Kind::Vm).arg(o.words.get(1), "VM id")?;
    match cmd {
        "disk-attach" => {
            let text = match o.value(&["--file"]) {
                Some(f) => file_text(Some(&f))?,
                None => {
                    let mut pairs = Vec::new();
                    if let Some(image) = o.value(&["--image"]) {
                        let id =
                            Resolver::other(client, Family::Image).arg(Some(&image), "image")?;
                        pairs.push(("IMAGE_ID", id.to_string()));
                    } else if let Some(size) = o.value(&["--size"]) {
                        pairs.push(("SIZE", size));
                        pairs.push(("TYPE", o.value(&["--type"]).unwrap_or("fs".into())));
                    } else {
                        return Err("one of --image, --size or --file is needed".into());
                    }
                    if let Some(t) = o.value(&["--target"]) {
                        pairs.push(("TARGET", t));
                    }
                    vector("DISK", &pairs)
                }
            };
            call(
                client,
                "one.vm.attach",
                vec![Value::Int(vm), Value::String(text)],
            )
        }
        "disk-detach" => call(
            client,
            "one.vm.detach",
            vec![Value::Int(vm), Value::Int(number(o, 2, "disk id")?)],
        ),
        "nic-attach" => {
            let text = match o.value(&["--file"]) {
                Some(f) => file_text(Some(&f))?,
                None => {
                    let net = o
                        .value(&["--network"])
                        .ok_or("one of --network or --file is needed")?;
                    let id = Resolver::other(client, Family::Vnet).arg(Some(&net), "network")?;
                    let mut pairs = vec![("NETWORK_ID", id.to_string())];
                    for (flag, key) in [
                        ("--ip", "IP"),
                        ("--ip6", "IP6"),
                        ("--mac", "MAC"),
                        ("--model", "MODEL"),
                    ] {
                        if let Some(v) = o.value(&[flag]) {
                            pairs.push((key, v));
                        }
                    }
                    let name = if o.flag(&["--alias"]) {
                        "NIC_ALIAS"
                    } else {
                        "NIC"
                    };
                    vector(name, &pairs)
                }
            };
            call(
                client,
                "one.vm.attachnic",
                vec![Value::Int(vm), Value::String(text)],
            )
        }
        "pci-attach" => {
            let text = match o.value(&["--file"]) {
                Some(f) => file_text(Some(&f))?,
                None => {
                    let mut pairs = Vec::new();
                    for (flag, key) in [
                        ("--pci", "SHORT_ADDRESS"),
                        ("--pci_device", "DEVICE"),
                        ("--pci_class", "CLASS"),
                        ("--pci_vendor", "VENDOR"),
                    ] {
                        if let Some(v) = o.value(&[flag]) {
                            pairs.push((key, v));
                        }
                    }
                    if pairs.is_empty() {
                        return Err("Provide a PCI description file with --file or the \
                                    relevant pci options:"
                            .into());
                    }
                    vector("PCI", &pairs)
                }
            };
            call(
                client,
                "one.vm.attachpci",
                vec![Value::Int(vm), Value::String(text)],
            )
        }
        "pci-detach" => call(
            client,
            "one.vm.detachpci",
            vec![Value::Int(vm), Value::Int(number(o, 2, "PCI id")?)],
        ),
        "nic-detach" => call(
            client,
            "one.vm.detachnic",
            vec![Value::Int(vm), Value::Int(number(o, 2, "NIC id")?)],
        ),
        "nic-update" => {
            let nic = number(o, 2, "NIC id")?;
            let file = o.value(&["--file"]).or_else(|| o.words.get(3).cloned());
            let text = file_text(file.as_ref())?;
            call(
                client,
                "one.vm.updatenic",
                vec![
                    Value::Int(vm),
                    Value::Int(nic),
                    Value::String(text),
                    Value::Int(o.flag(&["--append"]) as i32),
                ],
            )
        }
        "sg-attach" | "sg-detach" => {
            let nic = number(o, 2, "NIC id")?;
            let sg =
                Resolver::other(client, Family::SecGroup).arg(o.words.get(3), "security group")?;
            let method = if cmd == "sg-attach" {
                "one.vm.attachsg"
            } else {
                "one.vm.detachsg"
            };
            call(
                client,
                method,
                vec![Value::Int(vm), Value::Int(nic), Value::Int(sg)],
            )
        }
        "resize" => {
            let text = match o.value(&["--file"]) {
                Some(f) => file_text(Some(&f))?,
                None => {
                    let mut lines = Vec::new();
                    for (flag, key) in
                        [("--cpu", "CPU"), ("--vcpu", "VCPU"), ("--memory", "MEMORY")]
                    {
                        if let Some(v) = o.value(&[flag]) {
                            lines.push(format!("{key} = {}", quoted(&v)));
                        }
                    }
                    if lines.is_empty() {
                        return Err("one of --cpu, --vcpu, --memory or --file is needed".into());
                    }
                    lines.join("\n")
                }
            };
            call(
                client,
                "one.vm.resize",
                vec![
                    Value::Int(vm),
                    Value::String(text),
                    Value::Bool(o.flag(&["--enforce"])),
                ],
            )
        }
        other => Err(format!("Unknown command '{other}'.")),
    }
}
