//! `one.vm.attachpci(id, template)` and `one.vm.detachpci(id, pci_id)` (`VirtualMachineAttachPCI`,
//! `DispatchManager::{attach_pci, detach_pci}`, `HostSharePCI`): a POWEROFF (or UNDEPLOYED) VM
//! gets or gives back a PCI device. A host's devices are those its monitoring reports (the dummy
//! probe's three) and the `PCI` vectors of its template ([`host_devices`]); a device is taken in
//! `host_pci` by the VM, in the same write that adds it to the VM's template, and freed at
//! detach or once the VM is DONE.

use sqlstore::objects::host::HostRow;
use sqlstore::objects::pci as rows;
use sqlstore::SqlTxn;
use template::{Template, Value};
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::vm::{lcm, state, VMS};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use crate::monitor::DUMMY_PCI;

pub const METHODS: &[Method] = &[
    method!("one.vm.attachpci", Write, Auth::Object, attach),
    method!("one.vm.detachpci", Write, Auth::Object, detach),
];

type Pairs = Vec<(String, String)>;

/// oned.conf's `PCI_PASSTHROUGH_BUS` default: the guest bus of a device that names none.
const PASSTHROUGH_BUS: &str = "0x01";

/// What a device gets from the host's (`HostSharePCI::pci_attribute`): always these...
const COPIED: [&str; 9] = [
    "DOMAIN",
    "BUS",
    "SLOT",
    "FUNCTION",
    "ADDRESS",
    "SHORT_ADDRESS",
    "VENDOR",
    "DEVICE",
    "CLASS",
];
/// ...and these when the host's has them.
const COPIED_IF_SET: [&str; 3] = ["NUMA_NODE", "UUID", "MDEV_MODE"];

fn get<'a>(p: &'a [(String, String)], k: &str) -> &'a str {
    template::vector_get(p, k).unwrap_or("")
}

fn set(p: &mut Pairs, k: &str, v: String) {
    match p.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
        Some(pair) => pair.1 = v,
        None => p.push((k.to_string(), v)),
    }
}

/// `HostSharePCI::get_pci_value`: absent (`Ok(None)`), a hex number, or not one (`Err`).
fn hex(p: &[(String, String)], k: &str) -> Result<Option<u32>, ()> {
    let v = get(p, k);
    if v.is_empty() {
        return Ok(None);
    }
    let digits = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u32::from_str_radix(digits, 16).map(Some).map_err(|_| ())
}

/// `VirtualMachine::check_pci_attributes`.
fn check(pci: &mut Pairs) -> Result<(), String> {
    let mut named = false;
    for attr in ["VENDOR", "DEVICE", "CLASS"] {
        match hex(pci, attr) {
            Err(()) => return Err(format!("Wrong Hex value for PCI attribute {attr}")),
            Ok(v) => named |= v.is_some(),
        }
    }
    let short = !get(pci, "SHORT_ADDRESS").is_empty();
    if !short && !named {
        return Err("SHORT_ADDRESS, DEVICE, VENDOR or CLASS must be defined for PCI.".into());
    }
    if short && named {
        return Err("SHORT_ADDRESS cannot be set with DEVICE, VENDOR or CLASS".into());
    }
    if get(pci, "VM_BUS").is_empty() {
        set(pci, "VM_BUS", PASSTHROUGH_BUS.into());
    }
    Ok(())
}

/// `HostSharePCI::add_by_addr` / `add_by_name`: the first free host device the request names.
fn choose<'a>(
    pci: &[(String, String)],
    devices: &'a [Pairs],
    taken: &[String],
) -> Option<&'a Pairs> {
    let free = |d: &&Pairs| !taken.iter().any(|t| t == get(d, "SHORT_ADDRESS"));
    let short = get(pci, "SHORT_ADDRESS");
    if !short.is_empty() {
        return devices
            .iter()
            .find(|d| get(d, "SHORT_ADDRESS") == short)
            .filter(free);
    }
    let want = |k: &str| hex(pci, k).ok().flatten();
    let (vendor, device, class) = (want("VENDOR"), want("DEVICE"), want("CLASS"));
    devices.iter().filter(free).find(|d| {
        let is = |k: &str, w: Option<u32>| w.is_none_or(|w| hex(d, k).ok().flatten() == Some(w));
        is("VENDOR", vendor) && is("DEVICE", device) && is("CLASS", class)
    })
}

/// A host's PCI devices, as `HostSharePCI::set_monitorization` keeps them: the dummy probe's
/// once the host was monitored, then the `PCI` vectors of its template (OpenNebula's next
/// monitoring takes those as devices too, the template being what it reads the probe's from).
/// Only those with an ADDRESS that pass the host's (or its cluster's) PCI_FILTER
/// (`VENDOR:DEVICE:CLASS`, `*` for any, comma-separated) and PCI_SHORT_ADDRESS (a list) are
/// offered, the first of an ADDRESS kept; a device a VM holds stays whatever the filters say.
pub(super) fn host_devices(h: &HostRow) -> Vec<Pairs> {
    let probe = DUMMY_PCI.iter().filter(|_| h.total_mem > 0).map(|d| {
        d.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    let t = Template::parse(&h.template).unwrap_or_default();
    let mut devices: Vec<Pairs> = Vec::new();
    for d in probe.chain(pcis(&t).map(<[_]>::to_vec)) {
        let address = get(&d, "ADDRESS");
        let held = h
            .pci_taken
            .iter()
            .any(|(a, _)| a == get(&d, "SHORT_ADDRESS"));
        let offered = !address.is_empty()
            && passes_filter(&h.pci_filter, &d)
            && listed(&h.pci_short_address, get(&d, "SHORT_ADDRESS"));
        if (held || offered) && !devices.iter().any(|e| get(e, "ADDRESS") == address) {
            devices.push(d);
        }
    }
    devices
}

/// `is_filter_match`: no filter, or one whose VENDOR, DEVICE and CLASS parts (`*` or empty
/// for any) all equal the device's.
fn passes_filter(filter: &str, d: &[(String, String)]) -> bool {
    if filter.is_empty() {
        return true;
    }
    filter.split(',').any(|f| {
        let mut parts = f.split(':');
        ["VENDOR", "DEVICE", "CLASS"].iter().all(|k| {
            // An empty part is `*`; a part of blanks is trimmed to an empty value that must match.
            match parts.next().filter(|p| !p.is_empty()).map(str::trim) {
                None | Some("*") => true,
                Some(p) => p == get(d, k),
            }
        })
    })
}

/// `is_address_match`: no list, or one naming the device's SHORT_ADDRESS.
fn listed(list: &str, short: &str) -> bool {
    list.is_empty() || list.split(',').any(|a| a == short)
}

/// A host body's `HOST_SHARE/PCI_DEVICES`: its devices ([`host_devices`]), each with the VMID
/// holding it (-1 if free), as `HostSharePCI::to_xml`.
pub(super) fn devices_xml(h: &HostRow) -> String {
    let mut t = Template::default();
    for mut d in host_devices(h) {
        let holder = h
            .pci_taken
            .iter()
            .find(|(a, _)| a == get(&d, "SHORT_ADDRESS"))
            .map_or(-1, |(_, vm)| *vm);
        set(&mut d, "VMID", holder.to_string());
        t.push("PCI", Value::Vector(d));
    }
    super::xml::template(&t.to_text(), "PCI_DEVICES")
}

fn action(m: impl Into<String>) -> Failure {
    fail(code::ACTION, m)
}

/// The VM must be POWEROFF or UNDEPLOYED (`LCM_INIT`).
fn powered_off(st: i64, lcm_state: i64) -> Result<(), Failure> {
    if (st == state::POWEROFF || st == state::UNDEPLOYED) && lcm_state == lcm::INIT {
        Ok(())
    } else {
        Err(action("VM in wrong state, it has to be in poweroff"))
    }
}

fn pcis(t: &Template) -> impl Iterator<Item = &[(String, String)]> {
    t.get_all("PCI").filter_map(|a| a.value.as_vector())
}

fn pci_id(p: &[(String, String)]) -> i64 {
    get(p, "PCI_ID").trim().parse().unwrap_or(-1)
}

fn changed() -> Failure {
    action("The VM or the host's devices changed meanwhile, try again")
}

pub async fn attach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let tmpl = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let mut pci: Pairs = tmpl
        .vector("PCI")
        .map(<[_]>::to_vec)
        .ok_or_else(|| action("PCI attribute not found"))?;
    if get(&pci, "TYPE") == "NIC" {
        return Err(action("Use one.vm.attachnic to attach this PCI device"));
    }
    check(&mut pci).map_err(action)?;
    let v = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, "pci-attach", MANAGE).await?,
        )
        .await?;
    // PCI is in VM_RESTRICTED_ATTR: only an administrator names devices.
    if !s.is_admin() {
        return Err(fail(
            code::AUTHORIZATION,
            "PCI includes a restricted attribute PCI",
        ));
    }
    powered_off(v.state, v.lcm_state)?;
    let hid = v
        .history
        .last()
        .map(|h| h.hid)
        .ok_or_else(|| action("Could not find host information"))?;
    let mut t = Template::parse(&v.template).unwrap_or_default();
    let mut stmts = Vec::new();
    if v.state == state::POWEROFF {
        let (host, taken) = ctx
            .read(move |c| Ok((sqlstore::objects::host::load(c, hid)?, rows::taken(c, hid)?)))
            .await?;
        let host = host.ok_or_else(|| action("Could not find host information"))?;
        // OpenNebula looks through the devices by ADDRESS (a map keyed by it).
        let mut devices = host_devices(&host);
        devices.sort_by(|a, b| get(a, "ADDRESS").cmp(get(b, "ADDRESS")));
        let dev = choose(&pci, &devices, &taken).ok_or_else(|| {
            action("Cannot assign PCI device in host. Check address and free devices")
        })?;
        for k in COPIED {
            set(&mut pci, k, get(dev, k).to_string());
        }
        for k in COPIED_IF_SET {
            if !get(dev, k).is_empty() {
                set(&mut pci, k, get(dev, k).to_string());
            }
        }
        stmts.push(rows::take(hid, get(dev, "SHORT_ADDRESS"), id));
    }
    let next = pcis(&t).map(pci_id).max().unwrap_or(-1) + 1;
    set(&mut pci, "PCI_ID", next.to_string());
    t.push("PCI", Value::Vector(pci));
    stmts.push(rows::set_vm_template(
        id,
        t.to_text(),
        v.template.clone(),
        (v.state, v.lcm_state),
    ));
    let attached = super::vm_actions::number::PCI_ATTACH;
    stmts.extend(super::vm_actions::closed_by(s, id, attached));
    ctx.commit(SqlTxn { stmts }, |_| changed()).await?;
    Ok(xmlrpc::Value::Int(id as i32))
}

pub async fn detach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let which = p.int(1)? as i64;
    let v = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, "pci-detach", MANAGE).await?,
        )
        .await?;
    powered_off(v.state, v.lcm_state)?;
    let mut t = Template::parse(&v.template).unwrap_or_default();
    let pci = pcis(&t)
        .find(|p| pci_id(p) == which)
        .map(<[_]>::to_vec)
        .ok_or_else(|| action("PCI device not found"))?;
    if get(&pci, "TYPE") == "NIC" {
        return Err(action("Use one.vm.detachnic to detach this PCI device"));
    }
    t.attrs
        .retain(|a| !(a.name == "PCI" && a.value.as_vector().is_some_and(|p| pci_id(p) == which)));
    let mut stmts = vec![
        rows::free(id, get(&pci, "SHORT_ADDRESS")),
        rows::set_vm_template(id, t.to_text(), v.template.clone(), (v.state, v.lcm_state)),
    ];
    let detached = super::vm_actions::number::PCI_DETACH;
    stmts.extend(super::vm_actions::closed_by(s, id, detached));
    ctx.commit(SqlTxn { stmts }, |_| changed()).await?;
    Ok(xmlrpc::Value::Int(id as i32))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn v(text: &str) -> Pairs {
        Template::parse(&format!("PCI = [ {text} ]"))
            .unwrap()
            .vector("PCI")
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_request_names_a_device_by_address_or_by_ids_in_hex() {
        let mut p = v("VENDOR = 10de");
        check(&mut p).unwrap();
        assert_eq!(get(&p, "VM_BUS"), "0x01");
        assert_eq!(
            check(&mut v("VENDOR = zz")).unwrap_err(),
            "Wrong Hex value for PCI attribute VENDOR"
        );
        assert_eq!(
            check(&mut v("NAME = x")).unwrap_err(),
            "SHORT_ADDRESS, DEVICE, VENDOR or CLASS must be defined for PCI."
        );
        assert_eq!(
            check(&mut v("SHORT_ADDRESS = \"00:02.0\", CLASS = 0300")).unwrap_err(),
            "SHORT_ADDRESS cannot be set with DEVICE, VENDOR or CLASS"
        );
    }

    #[test]
    fn the_first_free_matching_device_is_chosen() {
        let devices = vec![
            v("SHORT_ADDRESS = \"00:02.0\", VENDOR = 8086, DEVICE = 0a0c, CLASS = 0403"),
            v("SHORT_ADDRESS = \"00:03.0\", VENDOR = 10de, DEVICE = 1db4, CLASS = 0302"),
            v("SHORT_ADDRESS = \"00:04.0\", VENDOR = 10de, DEVICE = 1db4, CLASS = 0302"),
        ];
        let taken = vec!["00:03.0".to_string()];
        let by =
            |p: &str| choose(&v(p), &devices, &taken).map(|d| get(d, "SHORT_ADDRESS").to_string());
        assert_eq!(by("VENDOR = 10de").as_deref(), Some("00:04.0"));
        assert_eq!(by("CLASS = 0x0403").as_deref(), Some("00:02.0"));
        assert_eq!(by("SHORT_ADDRESS = \"00:03.0\""), None, "taken");
        assert_eq!(by("SHORT_ADDRESS = \"00:09.0\""), None, "no such device");
        assert_eq!(by("VENDOR = 1234"), None);
    }

    fn host(template: &str, monitored: bool) -> HostRow {
        HostRow {
            oid: 0,
            name: String::new(),
            state: 2,
            prev_state: 0,
            im_mad: "dummy".into(),
            vm_mad: "dummy".into(),
            cluster_id: 0,
            cluster: String::new(),
            total_cpu: 800,
            total_mem: if monitored { 16 << 20 } else { 0 },
            cpu_usage: 0,
            mem_usage: 0,
            running_vms: 0,
            max_cpu: 800,
            max_mem: 16 << 20,
            template: template.into(),
            monitoring: None,
            pci_taken: Vec::new(),
            pci_filter: String::new(),
            pci_short_address: String::new(),
            vms: Vec::new(),
        }
    }

    fn shorts(h: &HostRow) -> Vec<String> {
        host_devices(h)
            .iter()
            .map(|d| get(d, "SHORT_ADDRESS").to_string())
            .collect()
    }

    #[test]
    fn a_hosts_devices_are_the_probes_then_its_templates_filtered_as_its_configuration_says() {
        let own = "PCI = [ ADDRESS = \"0000:00:03:0\", SHORT_ADDRESS = \"00:03.0\", VENDOR = 10de, DEVICE = 1db4, CLASS = 0302 ]\n\
                   PCI = [ ADDRESS = \"0000:02:00:0\", SHORT_ADDRESS = \"02:00.0\", VENDOR = 8086 ]\n\
                   PCI = [ SHORT_ADDRESS = \"00:09.0\", VENDOR = 8086 ]";
        assert!(shorts(&host("", false)).is_empty(), "not monitored yet");
        assert_eq!(shorts(&host("", true)), ["02:00.0", "00:06.0", "00:06.1"]);
        // One of the same ADDRESS as the probe's is the probe's; one without ADDRESS is none.
        let mut h = host(own, true);
        assert_eq!(shorts(&h), ["02:00.0", "00:06.0", "00:06.1", "00:03.0"]);
        assert_eq!(get(&host_devices(&h)[0], "VENDOR"), "10de");

        h.pci_filter = "10de:*:*,:: 0c03".into();
        assert_eq!(shorts(&h), ["02:00.0", "00:06.0", "00:06.1", "00:03.0"]);
        // A part of blanks is an empty value, which no device's VENDOR equals.
        h.pci_filter = "10de:*:*, :: 0c03".into();
        assert_eq!(shorts(&h), ["02:00.0", "00:03.0"]);
        h.pci_filter = "10de:1db4:0302".into();
        assert_eq!(shorts(&h), ["00:03.0"]);
        h.pci_filter = "10de,*:*:0c03".into();
        assert_eq!(shorts(&h), ["02:00.0", "00:06.0", "00:06.1", "00:03.0"]);
        h.pci_filter = "1022".into();
        assert_eq!(shorts(&h), ["00:06.1"]);
        h.pci_filter = String::new();
        h.pci_short_address = "00:06.0,00:03.0".into();
        assert_eq!(shorts(&h), ["00:06.0", "00:03.0"]);
        // A device a VM holds stays offered, whatever the filters say.
        h.pci_taken = vec![("02:00.0".into(), 4)];
        assert_eq!(shorts(&h), ["02:00.0", "00:06.0", "00:03.0"]);
        assert!(devices_xml(&h).contains("<VMID><![CDATA[4]]></VMID>"));
    }
}
