//! A VM's body as OpenNebula 7.0.2 keeps and prints it.
//!
//! * At allocate and instantiate, `VirtualMachine::insert` moves the attributes oned itself
//!   interprets (capacity, OS, DISK, NIC, CONTEXT, GRAPHICS...) from the given template into
//!   the VM's TEMPLATE, and leaves everything else in its USER_TEMPLATE, the part
//!   `one.vm.update` edits: [`split`].
//! * `one.vmpool.info` prints `VirtualMachine::to_xml_short` (the `short_body` column), while
//!   `one.vmpool.infoextended` and `one.vmpool.infoset` with `extended` print the stored body
//!   (`to_xml_extended(1, false)`: the last history record, no scheduled actions in TEMPLATE) and
//!   `one.vm.info` the full one: [`short_xml`], [`Body`].
//! * The pool calls' fifth parameter, `KEY=VALUE[&KEY=VALUE...]`, which OpenNebula runs as
//!   `JSON_UNQUOTE(JSON_EXTRACT(body_json, '$.KEY')) LIKE '%VALUE%'` over the VM's JSON body:
//!   [`Query`].

use sqlstore::objects::vm::VmRow;
use sqlstore::RawRow;
use template::{Template, Value as TValue};
use xmlrpc::{Params, Value};

use super::perms::{caller, PoolFilter, Where};
use super::vm::{state, VMS};
use super::vm_pool_answers;
use super::vm_pool_cache::{self, Form, BODIES};
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// The attributes `VirtualMachine::insert` (and the `parse_*` it calls) moves into TEMPLATE.
/// SCHED_ACTION and BACKUP_CONFIG are kept there too: OpenNebula turns them into scheduled
/// action objects and the BACKUPS element, which OneHA builds from the system template.
const SYSTEM: &[&str] = &[
    "TEMPLATE_ID",
    // The disks' snapshots a new VM's images give it (`vm_disk_snaps`).
    "ONEHA_SNAPSHOTS",
    "ONEHA_DISK_SNAPSHOT",
    "EMULATOR",
    "MEMORY",
    "MEMORY_RESIZE_MODE",
    "MEMORY_MAX",
    "MEMORY_SLOTS",
    "CPU",
    "VCPU",
    "VCPU_MAX",
    "CPU_COST",
    "MEMORY_COST",
    "DISK_COST",
    "OS",
    "CPU_MODEL",
    "PCI",
    "NIC_DEFAULT",
    "VROUTER_ID",
    "VROUTER_KEEPALIVED_ID",
    "VROUTER_KEEPALIVED_PASSWORD",
    "NIC",
    "NIC_ALIAS",
    "CONTEXT",
    "DISK",
    "TM_MAD_SYSTEM",
    "SUBMIT_ON_HOLD",
    "GRAPHICS",
    "VIDEO",
    "VMGROUP",
    "SECURITY_GROUP_RULE",
    "AUTOMATIC_REQUIREMENTS",
    "AUTOMATIC_DS_REQUIREMENTS",
    "AUTOMATIC_NIC_REQUIREMENTS",
    // parse_well_known_attributes
    "INPUT",
    "FEATURES",
    "RAW",
    "CLONING_TEMPLATE_ID",
    "TOPOLOGY",
    "NUMA_NODE",
    "HYPERV_OPTIONS",
    "SPICE_OPTIONS",
    "TPM",
    // OneHA keeps these in the system template (see above).
    "SCHED_ACTION",
    "BACKUP_CONFIG",
];

/// Attributes `insert` takes out of the template altogether: the name (and the prefix of a
/// generated one) becomes the VM's NAME, VMID is the VM's own id, printed at read.
const DROPPED: &[&str] = &["NAME", "TEMPLATE_NAME", "VMID"];

/// Attributes of which `insert` keeps only the first (`parse_graphics`, `parse_video`,
/// `parse_cpu_model`).
const FIRST_ONLY: &[&str] = &["GRAPHICS", "VIDEO", "CPU_MODEL"];

/// Splits a new VM's template (its disks and NICs already taken) into its TEMPLATE and its
/// USER_TEMPLATE, with `insert`'s checks of what it moves: the messages are OpenNebula's.
pub fn split(given: &Template) -> Result<(Template, Template), Failure> {
    let mut system = Template::default();
    let mut user = Template::default();
    for a in &given.attrs {
        let name = a.name.to_ascii_uppercase();
        if DROPPED.contains(&name.as_str()) {
            continue;
        }
        // `insert` moves VCPU only when it has a value: an empty one stays the user's.
        let empty_vcpu = name == "VCPU" && a.value.as_single().is_none_or(str::is_empty);
        if SYSTEM.contains(&name.as_str()) && !empty_vcpu {
            if FIRST_ONLY.contains(&name.as_str()) && system.get(&name).is_some() {
                continue;
            }
            system.attrs.push(a.clone());
        } else {
            user.attrs.push(a.clone());
        }
    }
    check_numbers(&system)?;
    // Moved as the integer read: `VCPU = 02` is 2.
    if let Some(n) = system
        .single("VCPU")
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        system.set("VCPU", TValue::Single(n.to_string()));
    }
    memory_and_video(&mut system, &mut user).map_err(|e| fail(code::INTERNAL, e))?;
    graphics(&mut system)?;
    // `insert` moves SUBMIT_ON_HOLD as a boolean: YES or NO.
    if let Some(v) = system.single("SUBMIT_ON_HOLD").map(str::to_string) {
        let yes = if v.eq_ignore_ascii_case("yes") {
            "YES"
        } else {
            "NO"
        };
        system.set("SUBMIT_ON_HOLD", TValue::Single(yes.into()));
    }
    imported(&mut system, &mut user)?;
    if system.get_all("OS").count() > 1 {
        return Err(fail(
            code::INTERNAL,
            "Only one OS attribute can be defined.",
        ));
    }
    if system.get_all("NIC_DEFAULT").count() > 1 {
        return Err(fail(
            code::INTERNAL,
            "Only one NIC_DEFAULT attribute can be defined.",
        ));
    }
    os_uuid(&mut system);
    // parse_requirements: the old REQUIREMENTS is read as SCHED_REQUIREMENTS.
    if let Some(req) = user.single("REQUIREMENTS").map(str::to_string) {
        user.remove("REQUIREMENTS");
        if user.get("SCHED_REQUIREMENTS").is_none() {
            user.push("SCHED_REQUIREMENTS", TValue::Single(req));
        }
    }
    if user.get_all("SCHED_REQUIREMENTS").count() > 1 {
        return Err(fail(
            code::INTERNAL,
            "Only one SCHED_REQUIREMENTS attribute can be defined.",
        ));
    }
    Ok((system, user))
}

/// `parse_graphics`: a PORT is a port number; `RANDOM_PASSWD = YES` without a PASSWD makes one;
/// a password longer than the protocol takes is cut (8 for VNC, 59 for SPICE).
pub(super) fn graphics(t: &mut Template) -> Result<(), Failure> {
    let Some(mut g) = t.vector("GRAPHICS").map(<[_]>::to_vec) else {
        return Ok(());
    };
    let get = |g: &[(String, String)], k: &str| template::vector_get(g, k).map(str::to_string);
    if let Some(port) = get(&g, "PORT").filter(|p| !p.is_empty()) {
        if !port.trim().parse::<u32>().is_ok_and(|p| p <= 65535) {
            return Err(fail(
                code::INTERNAL,
                "Wrong PORT number in GRAPHICS attribute",
            ));
        }
    }
    let random = get(&g, "RANDOM_PASSWD")
        .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"));
    let mut password = get(&g, "PASSWD").unwrap_or_default();
    if random && password.is_empty() {
        password = crate::credentials::random_hex(32);
    }
    let most = match get(&g, "TYPE").unwrap_or_default().to_lowercase().as_str() {
        "spice" => 59,
        "vnc" => 8,
        _ => usize::MAX,
    };
    let cut: String = password.chars().take(most).collect();
    if !cut.is_empty() && get(&g, "PASSWD").as_deref() != Some(cut.as_str()) {
        g.retain(|(k, _)| !k.eq_ignore_ascii_case("PASSWD"));
        g.push(("PASSWD".into(), cut));
        t.set("GRAPHICS", TValue::Vector(g));
    }
    Ok(())
}

/// `insert`'s optional memory attributes and `parse_video`: MEMORY_RESIZE_MODE is BALLOONING or
/// HOTPLUG (written in upper case); MEMORY_MAX, MEMORY_SLOTS and VCPU_MAX are the system's only
/// when positive integers, else they stay the user's; VIDEO has a known TYPE (written in lower
/// case), IOMMU and ATS only for virtio, a VRAM of at least 1024 and a `WxH` RESOLUTION.
fn memory_and_video(system: &mut Template, user: &mut Template) -> Result<(), String> {
    if let Some(mode) = system.single("MEMORY_RESIZE_MODE").map(str::to_uppercase) {
        if mode != "BALLOONING" && mode != "HOTPLUG" {
            return Err(format!("Unknown MEMORY_RESIZE_MODE: {mode}"));
        }
        system.set("MEMORY_RESIZE_MODE", TValue::Single(mode));
    }
    for name in ["MEMORY_MAX", "MEMORY_SLOTS", "VCPU_MAX"] {
        let Some(v) = system.single(name).map(str::to_string) else {
            continue;
        };
        if !v.trim().parse::<i64>().is_ok_and(|n| n > 0) {
            system.remove(name);
            user.push(name, TValue::Single(v));
        }
    }
    let Some(mut video) = system.vector("VIDEO").map(<[_]>::to_vec) else {
        return Ok(());
    };
    let get =
        |v: &[(String, String)], k: &str| template::vector_get(v, k).unwrap_or("").to_string();
    let kind = get(&video, "TYPE").to_lowercase();
    if kind.is_empty() {
        return Err("Video TYPE is required".into());
    }
    if !matches!(kind.as_str(), "vga" | "cirrus" | "none" | "virtio") {
        return Err("Invalid video TYPE, should be either: none, vga, cirrus, or virtio".into());
    }
    let yes = |k: &str| get(&video, k).eq_ignore_ascii_case("yes");
    if (yes("IOMMU") || yes("ATS")) && kind != "virtio" {
        return Err("IOMMU and ATS are only available for virtio TYPE".into());
    }
    let vram = get(&video, "VRAM");
    if !vram.is_empty() && !vram.trim().parse::<u32>().is_ok_and(|v| v >= 1024) {
        return Err("Invalid VRAM value in VIDEO attribute, must be >= 1024".into());
    }
    let resolution = get(&video, "RESOLUTION");
    let wxh = resolution.split_once('x').is_some_and(|(w, h)| {
        !w.is_empty()
            && !h.is_empty()
            && w.bytes().all(|b| b.is_ascii_digit())
            && h.bytes().all(|b| b.is_ascii_digit())
    });
    if !resolution.is_empty() && !wxh {
        return Err("Invalid RESOLUTION string format".into());
    }
    video.retain(|(k, _)| !k.eq_ignore_ascii_case("TYPE"));
    video.push(("TYPE".into(), kind));
    video.sort_by(|a, b| a.0.cmp(&b.0));
    system.set("VIDEO", TValue::Vector(video));
    Ok(())
}

/// `set_boot_order`: OS/BOOT (`disk0,nic1`) numbers the ORDER of the disks and NICs it names,
/// by their DISK_ID and NIC_ID; every other ORDER goes.
pub fn boot_order(t: &mut Template) -> Result<(), String> {
    let boot = t
        .vector("OS")
        .and_then(|os| template::vector_get(os, "BOOT"))
        .unwrap_or("")
        .to_string();
    let mut devices: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for a in &t.attrs {
        if let (name @ ("DISK" | "NIC"), Some(v)) = (a.name.as_str(), a.value.as_vector()) {
            let mut v = v.to_vec();
            v.retain(|(k, _)| !k.eq_ignore_ascii_case("ORDER"));
            devices.push((name.to_string(), v));
        }
    }
    let wrong = || {
        format!("Wrong OS/BOOT value: \"{boot}\" should be a comma-separated list of disk# or nic#")
    };
    let mut index = 1;
    if !boot.is_empty() {
        for dev in boot.split(',') {
            let dev = dev.to_ascii_uppercase();
            let (kind, id_name, digits) = if let Some(d) = dev.strip_prefix("DISK") {
                ("DISK", "DISK_ID", d)
            } else if let Some(d) = dev.strip_prefix("NIC") {
                ("NIC", "NIC_ID", d)
            } else {
                return Err(wrong());
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(wrong());
            }
            let id: i64 = digits.parse().map_err(|_| wrong())?;
            let mut found = false;
            for (_, v) in devices.iter_mut().filter(|(n, _)| n == kind) {
                let this =
                    template::vector_get(v, id_name).and_then(|i| i.trim().parse::<i64>().ok());
                if this == Some(id) {
                    v.push(("ORDER".into(), index.to_string()));
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                    index += 1;
                    found = true;
                }
            }
            if !found {
                return Err(format!(
                    "Wrong OS/BOOT value. Device with {id_name} {id} not found"
                ));
            }
        }
    }
    let mut devices = devices.into_iter();
    for a in t.attrs.iter_mut() {
        if matches!(a.name.as_str(), "DISK" | "NIC") && a.value.as_vector().is_some() {
            if let Some((_, v)) = devices.next() {
                a.value = TValue::Vector(v);
            }
        }
    }
    Ok(())
}

/// Where an imported VM's DEPLOY_ID is kept: in its system template, taken out when its body is
/// printed (`vm::body_xml`), as OpenNebula keeps it in a column of its own.
pub const IMPORTED_DEPLOY_ID: &str = "ONEHA_DEPLOY_ID";

/// `insert`'s import of a VM running outside OpenNebula: a DEPLOY_ID in the template becomes
/// the VM's own, and its TEMPLATE says IMPORTED = YES; a name OpenNebula gives its own VMs
/// (`one-<n>`) is refused.
fn imported(system: &mut Template, user: &mut Template) -> Result<(), Failure> {
    let given = user.single("DEPLOY_ID").map(|d| d.trim().to_string());
    user.remove("DEPLOY_ID");
    user.remove(IMPORTED_DEPLOY_ID);
    let Some(deploy_id) = given.filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let one_vm = deploy_id
        .strip_prefix("one-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if one_vm {
        return Err(fail(
            code::INTERNAL,
            "Trying to import an OpenNebula VM: 'one-*'.",
        ));
    }
    system.set("IMPORTED", TValue::Single("YES".into()));
    system.set(IMPORTED_DEPLOY_ID, TValue::Single(deploy_id));
    Ok(())
}

/// `insert`'s checks of VCPU and the cost attributes (CPU and MEMORY are `vm::capacity`'s).
fn check_numbers(t: &Template) -> Result<(), Failure> {
    if let Some(v) = t.single("VCPU") {
        if !v.trim().parse::<i64>().is_ok_and(|n| n > 0) {
            return Err(fail(
                code::INTERNAL,
                "VCPU attribute must be a positive integer value.",
            ));
        }
    }
    for cost in ["CPU_COST", "MEMORY_COST", "DISK_COST"] {
        if let Some(v) = t.single(cost) {
            // A value that is not a number is not a cost: `Template::get` fails and oned moves
            // nothing; a negative one is refused.
            if v.trim().parse::<f64>().is_ok_and(|n| n < 0.0) {
                return Err(fail(
                    code::INTERNAL,
                    format!("{cost} attribute must be a positive float or integer value."),
                ));
            }
        }
    }
    Ok(())
}

/// `parse_os`: every VM has an OS vector with a UUID, chosen here on the leader when the
/// template gives none, so every server stores the same one.
fn os_uuid(t: &mut Template) {
    let mut os: Vec<(String, String)> = t.vector("OS").map(<[_]>::to_vec).unwrap_or_default();
    if template::vector_get(&os, "UUID").is_some_and(|u| !u.is_empty()) {
        if t.get("OS").is_none() {
            t.push("OS", TValue::Vector(os));
        }
        return;
    }
    os.retain(|(k, _)| !k.eq_ignore_ascii_case("UUID"));
    os.push(("UUID".into(), uuid_v4()));
    os.sort_by(|a, b| a.0.cmp(&b.0));
    t.set("OS", TValue::Vector(os));
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Which full body a call prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `one.vm.info`: every history record, the scheduled actions in TEMPLATE.
    Info,
    /// The stored body of pool calls: the last history record, no scheduled actions in TEMPLATE.
    Pool,
}

/// How many of `v`'s oldest history records `which` body leaves out: pool calls print the
/// stored body, which holds only the last one.
pub fn history_skipped(v: &VmRow, which: Body) -> usize {
    match which {
        Body::Info => 0,
        Body::Pool => v.history.len().saturating_sub(1),
    }
}

/// `VirtualMachine::to_xml_short`, what `one.vmpool.info` prints for each VM.
pub fn short_xml(v: &VmRow, out: &mut String) {
    let t = match Template::parse(&v.template) {
        Ok(t) => t,
        Err(e) => {
            xml::corrupt_template(&e);
            Template::default()
        }
    };
    let user = Template::parse(&v.user_template).unwrap_or_default();
    let oid = v.head.owned.oid;
    Xml::new(out).elem("VM", |x| {
        xml::owner_and_name(x, &v.head);
        x.num(
            "LAST_POLL",
            v.monitoring.as_ref().map_or(0, |m| m.timestamp),
        )
        .num("STATE", v.state)
        .num("LCM_STATE", v.lcm_state)
        .num("RESCHED", i64::from(v.resched))
        .num("STIME", v.stime)
        .num("ETIME", v.etime)
        .text("DEPLOY_ID", &deploy_id(v));
        if v.lock.level != 0 {
            x.elem("LOCK", |x| {
                x.num("LOCKED", v.lock.level);
            });
        }
        x.elem("TEMPLATE", |x| {
            x.num("CPU", v.cpu)
                .num("MEMORY", v.memory)
                .text("VCPU", t.single("VCPU").unwrap_or(""));
            for d in by_id(&t, &["DISK"], "DISK_ID") {
                disk_short(x, d);
            }
            for n in by_id(&t, &["NIC", "NIC_ALIAS"], "NIC_ID") {
                nic_short(x, n);
            }
            if let Some(g) = t.get("GRAPHICS") {
                let mut one = Template::default();
                one.attrs.push(g.clone());
                let body = one.to_xml_as("T");
                x.raw(strip_root(&body, "T"));
            }
        });
        match &v.monitoring {
            None => {
                x.empty("MONITORING");
            }
            Some(m) => {
                x.elem("MONITORING", |x| {
                    x.num("CPU", m.cpu).num("MEMORY", m.memory).empty("STATE");
                });
            }
        }
        user_template_short(x, &user);
        x.elem("HISTORY_RECORDS", |x| {
            if let Some(h) = v.history.last() {
                x.elem("HISTORY", |x| {
                    x.num("OID", oid)
                        .num("SEQ", h.seq)
                        .text("HOSTNAME", &h.hostname)
                        .num("HID", h.hid)
                        .num("CID", h.cid)
                        .num("DS_ID", h.ds_id)
                        .text("VM_MAD", &h.vm_mad)
                        .text("TM_MAD", &h.tm_mad)
                        .num("ACTION", h.action);
                });
            }
        });
    });
}

/// DEPLOY_ID: an imported VM's own, else once the VM was placed what its host's driver names
/// it: the dummy driver `<host>:<name>:dummy` (`one_vmm_dummy.rb`'s deploy), any other the
/// `one-<id>` `LifeCycleManager` makes up when the driver names none. The host is the latest
/// placement's, and the name the VM's now: a VM moved or renamed since its deploy shows them,
/// where OpenNebula keeps what its deploy saw.
pub fn deploy_id(v: &VmRow) -> String {
    // Only an imported VM's template names it: most are not parsed again.
    if v.template.contains(IMPORTED_DEPLOY_ID) {
        if let Some(d) = Template::parse(&v.template)
            .ok()
            .and_then(|t| t.single(IMPORTED_DEPLOY_ID).map(str::to_string))
        {
            return d;
        }
    }
    match v.history.last() {
        None => String::new(),
        Some(h) if h.vm_mad == "dummy" => format!("{}:{}:dummy", h.hostname, v.head.name),
        Some(_) => format!("one-{}", v.head.owned.oid),
    }
}

/// `<TEMPLATE>...</TEMPLATE>`'s inside.
fn strip_root<'a>(body: &'a str, root: &str) -> &'a str {
    body.strip_prefix(&format!("<{root}>"))
        .and_then(|b| b.strip_suffix(&format!("</{root}>")))
        .unwrap_or("")
}

/// The vectors called `names`, in the order of their `id` key, as `VirtualMachineAttributeSet`
/// holds them (a map by id: a repeated id is shown once).
fn by_id<'a>(t: &'a Template, names: &[&str], id: &str) -> Vec<&'a [(String, String)]> {
    let mut all: Vec<(i64, &[(String, String)])> = Vec::new();
    for n in names {
        for a in t.attrs.iter().filter(|a| a.name.eq_ignore_ascii_case(n)) {
            if let Some(pairs) = a.value.as_vector() {
                let Some(i) = template::vector_get(pairs, id).and_then(|i| i.trim().parse().ok())
                else {
                    continue;
                };
                if !all.iter().any(|(j, _)| *j == i) {
                    all.push((i, pairs));
                }
            }
        }
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, p)| p).collect()
}

fn disk_short(x: &mut Xml<'_>, d: &[(String, String)]) {
    let get = |k: &str| template::vector_get(d, k).unwrap_or("");
    x.elem("DISK", |x| {
        for k in [
            "DISK_ID",
            "DATASTORE",
            "DATASTORE_ID",
            "IMAGE",
            "IMAGE_ID",
            "SIZE",
            "TYPE",
            "CLONE",
            "CLONE_TARGET",
            "LN_TARGET",
            "DISK_SNAPSHOT_TOTAL_SIZE",
        ] {
            x.text(k, get(k));
        }
    });
}

fn nic_short(x: &mut Xml<'_>, n: &[(String, String)]) {
    let get = |k: &str| template::vector_get(n, k).unwrap_or("");
    x.elem("NIC", |x| {
        // Printed only when set.
        for k in [
            "IP",
            "EXTERNAL_IP",
            "IP6",
            "IP6_ULA",
            "IP6_LINK",
            "IP6_GLOBAL",
            "NETWORK_MODE",
            "SCHED_REQUIREMENTS",
            "SCHED_RANK",
        ] {
            if !get(k).is_empty() {
                x.text(k, get(k));
            }
        }
        for k in ["MAC", "NETWORK", "NETWORK_ID", "NIC_ID", "SECURITY_GROUPS"] {
            x.text(k, get(k));
        }
    });
}

/// `VirtualMachineTemplate::to_xml_short`: what Sunstone and the scheduler need of the user
/// template.
fn user_template_short(x: &mut Xml<'_>, t: &Template) {
    if t.attrs.is_empty() {
        x.empty("USER_TEMPLATE");
        return;
    }
    x.elem("USER_TEMPLATE", |x| {
        for (k, nonempty) in [
            ("LABELS", true),
            ("ERROR", true),
            ("SCHED_MESSAGE", true),
            ("SCHED_RANK", false),
            ("SCHED_DS_RANK", false),
            ("SCHED_REQUIREMENTS", false),
            ("SCHED_DS_REQUIREMENTS", false),
            ("USER_PRIORITY", false),
        ] {
            if let Some(v) = t.single(k) {
                if !nonempty || !v.is_empty() {
                    x.text(k, v);
                }
            }
        }
        let actions: Vec<_> = t
            .attrs
            .iter()
            .filter(|a| a.name == "SCHED_ACTION" && a.value.as_vector().is_some())
            .cloned()
            .collect();
        if !actions.is_empty() {
            let body = Template { attrs: actions }.to_xml_as("T");
            x.raw(strip_root(&body, "T"));
        }
    });
}

/// The most characters of a pool call's query: it is matched against every VM it reads.
pub const QUERY_MAX: usize = 1024;

/// A pool call's `KEY=VALUE&...` query: every term must match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    terms: Vec<(Option<Vec<String>>, String)>,
}

impl Query {
    /// About the bytes it holds, for the bounds of what keeps it (`vm_pool_answers`).
    pub fn weight(&self) -> usize {
        self.terms
            .iter()
            .map(|(k, v)| 48 + v.len() + k.iter().flatten().map(|p| 24 + p.len()).sum::<usize>())
            .sum()
    }

    /// Reads the query as OpenNebula splits it (`one_util::split`): terms on `&`, each on `=`,
    /// every part cut at its first blank and blank parts dropped; a term without `=` searches
    /// the whole document. `None` for an empty query.
    pub fn parse(q: &str) -> Result<Option<Query>, Failure> {
        if q.is_empty() {
            return Ok(None);
        }
        if q.chars().count() > QUERY_MAX {
            return Err(fail(
                code::XML_RPC_API,
                format!("The search query is longer than {QUERY_MAX} characters"),
            ));
        }
        // `iss >> part`: leading blanks skipped, the part ends at the next one.
        let token = |p: &str| p.split_whitespace().next().map(str::to_string);
        let terms = q
            .split('&')
            .filter_map(token)
            .map(|term| {
                let kv: Vec<String> = term.split('=').filter_map(token).collect();
                match kv.as_slice() {
                    [] => (None, String::new()),
                    [v] => (None, v.clone()),
                    [k, v, ..] => (Some(k.split('.').map(str::to_string).collect()), v.clone()),
                }
            })
            .collect();
        Ok(Some(Query { terms }))
    }

    /// Whether VM `v` matches every term, over what OpenNebula's `body_json` holds of it
    /// ([`json_view`]).
    pub fn matches(&self, v: &VmRow) -> bool {
        let mut body = String::new();
        full_xml(v, &mut body, Body::Pool);
        let Some(tree) = Node::parse(&body).map(json_view) else {
            return false;
        };
        self.terms.iter().all(|(key, pattern)| {
            let text = match key {
                // `$.*`: the VM object's JSON text.
                None => Some(tree.json()),
                Some(path) => extract(&tree, path),
            };
            text.is_some_and(|s| like(&s, pattern))
        })
    }
}

/// An element of a body: its name, text and children; `array` when `to_json` writes it as a
/// JSON array even alone (a template's DISK and NIC, HISTORY).
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
    array: bool,
}

/// What `VirtualMachine::to_json` writes of a VM body (its `body_json`): the VM's figures up
/// to DEPLOY_ID, TEMPLATE and USER_TEMPLATE (DISK and NIC always arrays), and only the current
/// HISTORY record, as an array, when there is one; no PERMISSIONS, MONITORING, LOCK,
/// SNAPSHOTS or BACKUPS.
fn json_view(mut vm: Node) -> Node {
    const KEPT: [&str; 15] = [
        "ID",
        "UID",
        "GID",
        "UNAME",
        "GNAME",
        "NAME",
        "LAST_POLL",
        "STATE",
        "LCM_STATE",
        "PREV_STATE",
        "PREV_LCM_STATE",
        "RESCHED",
        "STIME",
        "ETIME",
        "DEPLOY_ID",
    ];
    let mut children = Vec::new();
    let mut history = None;
    for mut c in std::mem::take(&mut vm.children) {
        match c.name.as_str() {
            n if KEPT.contains(&n) => children.push(c),
            "TEMPLATE" | "USER_TEMPLATE" => {
                for a in &mut c.children {
                    a.array = a.name == "DISK" || a.name == "NIC";
                }
                children.push(c);
            }
            "HISTORY_RECORDS" => history = c.children.pop(),
            _ => {}
        }
    }
    if let Some(mut last) = history {
        last.array = true;
        children.push(Node {
            name: "HISTORY_RECORDS".into(),
            children: vec![last],
            ..Node::default()
        });
    }
    vm.children = children;
    vm
}

impl Node {
    fn parse(xml: &str) -> Option<Node> {
        use quick_xml::events::Event;
        let mut r = quick_xml::Reader::from_str(xml);
        let mut stack: Vec<Node> = Vec::new();
        loop {
            match r.read_event().ok()? {
                Event::Start(e) => stack.push(Node {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    ..Node::default()
                }),
                Event::Empty(e) => {
                    let n = Node {
                        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                        ..Node::default()
                    };
                    stack.last_mut()?.children.push(n);
                }
                Event::Text(t) => {
                    let text = t.unescape().ok()?;
                    stack.last_mut()?.text.push_str(&text);
                }
                Event::CData(t) => {
                    stack
                        .last_mut()?
                        .text
                        .push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
                Event::End(_) => {
                    let done = stack.pop()?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Some(done),
                    }
                }
                Event::Eof => return None,
                _ => {}
            }
        }
    }

    /// What JSON_UNQUOTE gives for this element: a leaf's text, else its object's JSON text.
    fn json(&self) -> String {
        if self.children.is_empty() {
            return self.text.clone();
        }
        let parts: Vec<String> = self
            .children
            .iter()
            .map(|c| format!("\"{}\": \"{}\"", c.name, c.json()))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

/// `JSON_UNQUOTE(JSON_EXTRACT(body_json, '$.<path>'))` over the body as `to_json` would write
/// it: repeated elements are an array, which a plain name does not go into (`DISK.IMAGE` finds
/// nothing with two disks: `DISK[*].IMAGE` or `DISK[1].IMAGE` does); `[n]` on a single element
/// is that element; `*` is any name. `None` where nothing is found.
fn extract(root: &Node, path: &[String]) -> Option<String> {
    let mut nodes: Vec<&Node> = vec![root];
    let mut wildcard = false;
    for (depth, step) in path.iter().enumerate() {
        let (name, index) = match step.split_once('[') {
            Some((n, rest)) => (n, Some(rest.strip_suffix(']')?)),
            None => (step.as_str(), None),
        };
        wildcard |= name == "*" || index == Some("*");
        let mut next = Vec::new();
        for n in &nodes {
            // The root step names the document's root.
            let same: Vec<&Node> = if depth == 0 {
                vec![*n]
                    .into_iter()
                    .filter(|n| name == "*" || n.name == name)
                    .collect()
            } else {
                n.children
                    .iter()
                    .filter(|c| name == "*" || c.name == name)
                    .collect()
            };
            match index {
                None if (same.len() > 1 || same.iter().any(|n| n.array)) && name != "*" => {}
                None => next.extend(same),
                Some("*") => next.extend(same),
                Some(i) => {
                    if let Some(c) = i.trim().parse::<usize>().ok().and_then(|i| same.get(i)) {
                        next.push(c);
                    }
                }
            }
        }
        nodes = next;
    }
    match (nodes.as_slice(), wildcard) {
        ([], _) => None,
        ([one], false) => Some(one.json()),
        (many, _) => Some(format!(
            "[{}]",
            many.iter()
                .map(|n| format!("\"{}\"", n.json()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `text LIKE '%pattern%'` as MySQL reads it over JSON_UNQUOTE's binary string: `%` any
/// run, `_` any one character, `\` makes the next one literal; case matters.
pub fn like(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy)]
    enum P {
        Any,
        One,
        Lit(char),
    }
    let mut toks = vec![P::Any];
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '%' => P::Any,
            '_' => P::One,
            '\\' => P::Lit(it.next().unwrap_or('\\')),
            c => P::Lit(c),
        });
    }
    toks.push(P::Any);
    // Segments between `%`s, each matched at its leftmost place: greedy is exact for LIKE.
    let segments: Vec<Vec<P>> = toks
        .split(|p| matches!(p, P::Any))
        .map(<[P]>::to_vec)
        .collect();
    let text: Vec<char> = text.chars().collect();
    let fits = |at: usize, seg: &[P]| {
        seg.iter().enumerate().all(|(i, p)| match p {
            P::One => true,
            P::Lit(c) => text.get(at + i) == Some(c),
            P::Any => false,
        })
    };
    let mut at = 0;
    for seg in segments.iter().filter(|s| !s.is_empty()) {
        let last = text.len().checked_sub(seg.len());
        let Some(found) = last.and_then(|last| (at..=last).find(|&i| fits(i, seg))) else {
            return false;
        };
        at = found + seg.len();
    }
    true
}

/// The full body of `v` for `which` call.
pub fn full_xml(v: &VmRow, out: &mut String, which: Body) {
    super::vm::body_xml(v, out, which);
}

/// The state parameter of `one.vmpool.info[extended]`, as `VirtualMachinePoolInfo` checks it.
fn state_filter(p: &Params<'_>) -> Result<Where, Failure> {
    let st = match p.0.get(3) {
        Some(_) => p.int(3)? as i64,
        None => -1,
    };
    if !(-2..=state::CLONING_FAILURE).contains(&st) {
        return Err(fail(code::XML_RPC_API, "Incorrect filter_flag, state"));
    }
    let mut only = Where::default();
    match st {
        -2 => {}
        -1 => only.and("v.state <> ?", [state::DONE]),
        st => only.and("v.state = ?", [st]),
    }
    Ok(only)
}

/// `one.vmpool.info(filter, start, end, state[, query])`: short bodies.
pub async fn pool_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let only = state_filter(&p)?;
    let query = query_param(&p)?;
    print(ctx, s, &p, only, query, Form::Short).await
}

/// `one.vmpool.infoextended(filter, start, end, state[, query])`: the stored full bodies.
pub async fn pool_info_extended(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let only = state_filter(&p)?;
    let query = query_param(&p)?;
    print(ctx, s, &p, only, query, Form::Pool).await
}

fn pool_body(v: &VmRow, out: &mut String) {
    full_xml(v, out, Body::Pool)
}

/// The VMs of `ids` (numbers) the caller may USE, short or extended (`one.vmpool.infoset`).
pub async fn info_set(ctx: &Ctx, s: &Session, list: &str, extended: bool) -> MethodResult {
    let mut only = Where::default();
    // Parsed numbers only, so the list is safe to write into the statement.
    only.and(format!("v.oid IN ({list})"), []);
    let all = [Value::Int(-2)];
    let form = if extended { Form::Pool } else { Form::Short };
    print(ctx, s, &Params(&all), only, None, form).await
}

fn query_param(p: &Params<'_>) -> Result<Option<Query>, Failure> {
    match p.0.get(4) {
        Some(_) => Query::parse(p.string(4)?),
        None => Ok(None),
    }
}

/// Prints the pool. Without a query SQL pages it; with one the page is counted over the VMs
/// that match, read one at a time, so memory stays bounded by the answer.
async fn print(
    ctx: &Ctx,
    s: &Session,
    p: &Params<'_>,
    only: Where,
    query: Option<Query>,
    form: Form,
) -> MethodResult {
    let filter = PoolFilter::parse(p)?;
    let c = caller(ctx, s).await?;
    let mut cond = only;
    // Pool bodies print only the last placement and the newest monitoring record: read
    // with the row, not by two more queries per VM.
    let rows = &sqlstore::objects::vm::POOL_ROWS;
    let page = filter.sql(&c, VMS.kind, rows.alias, &mut cond);
    let select = sqlstore::objects::vm::pool_select(ctx.pool.location().backend());
    let order = super::list_order::for_session(ctx, s).await?;
    let statement = |cond: &Where| {
        format!(
            "{select}{} ORDER BY {}.oid{}",
            cond.clause(),
            rows.alias,
            order.sql()
        )
    };
    let mut sql = statement(&cond);
    let mut args = cond.args.clone();
    if let (Some((size, offset)), None) = (page, &query) {
        sql.push_str(" LIMIT ? OFFSET ?");
        args.extend([size, offset]);
    }
    let render = match form {
        Form::Short => short_xml,
        Form::Pool => pool_body,
    };
    // Under the dispatcher the answer is written whole, from the bodies kept
    // (`vm_pool_cache`), or is the answer kept from an earlier call (`vm_pool_answers`), as it
    // is or with the VMs changed since read again; otherwise the pool is printed as a value.
    let prepared = vm_pool_cache::can_prepare();
    let mut miss = if prepared {
        let key = vm_pool_answers::Key {
            form,
            sql: sql.clone(),
            args: args.clone(),
            query: query.clone(),
            page,
        };
        match ctx.vm_answers.find(ctx.auth.changes(), key) {
            Ok(answer) => return hand_over(answer),
            Err(miss) => Some(miss),
        }
    } else {
        None
    };
    let patch = miss.as_mut().and_then(|m| m.base.take()).map(|base| {
        // The same statement, narrowed to the VMs touched.
        let mut narrowed = cond;
        let ids: Vec<String> = base.touched.iter().map(i64::to_string).collect();
        narrowed.and(format!("{}.oid IN ({})", rows.alias, ids.join(",")), []);
        Patch {
            sql: statement(&narrowed),
            order,
            args: narrowed.args,
            base,
            changes: ctx.auth.changes().clone(),
        }
    });
    let printed = ctx
        .read(move |conn| {
            // A row is read into a `VmRow` only when something needs it: the query, or a body
            // not kept already.
            let read = |raw: &RawRow<'_>| (rows.read)(conn, &raw.to_row()?);
            if let Some(patch) = patch {
                let patched = patch.apply(conn, |raw, text| {
                    render(&read(raw)?, text);
                    Ok(())
                })?;
                if let Some(printed) = patched {
                    return Ok(printed);
                }
            }
            // A large answer goes into the pages of the last one (`answer_buf`).
            let mut out = if prepared {
                super::answer_buf::take()
            } else {
                String::new()
            };
            let mut vms = Vec::new();
            let mut bodies = BODIES.begin();
            let mut scratch = String::new();
            if prepared {
                out.push_str(vm_pool_cache::ANSWER_HEAD);
                xmlrpc::escape_into(&mut out, "<VM_POOL>");
            } else {
                out.push_str("<VM_POOL>");
            }
            let (mut skip, mut left) = match page {
                Some((size, offset)) => (offset, size),
                None => (0, i64::MAX),
            };
            let mut st = conn.prepare(&sql)?;
            let mut it = st.query(sqlstore::sql::params_from_iter(args))?;
            while let Some(raw) = it.next_raw()? {
                if left == 0 {
                    break;
                }
                let mut vm = None;
                if let Some(q) = &query {
                    let v = read(&raw)?;
                    if !q.matches(&v) {
                        continue;
                    }
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    left -= 1;
                    vm = Some(v);
                }
                if prepared {
                    vms.push((raw.int(0)?, out.len()));
                    bodies.write(&raw, form, &mut out, &mut scratch, |text| {
                        let v = match vm.take() {
                            Some(v) => v,
                            None => read(&raw)?,
                        };
                        render(&v, text);
                        Ok::<_, sqlstore::SqlError>(())
                    })?;
                } else {
                    let v = match vm {
                        Some(v) => v,
                        None => read(&raw)?,
                    };
                    render(&v, &mut out);
                }
            }
            if !prepared {
                out.push_str("</VM_POOL>");
                return Ok(Printed::Value(out));
            }
            let bodies_end = out.len();
            xmlrpc::escape_into(&mut out, "</VM_POOL>");
            out.push_str(vm_pool_cache::ANSWER_TAIL);
            Ok(Printed::Answer(out.into_bytes(), vms, bodies_end))
        })
        .await?;
    let (answer, vms, bodies_end) = match printed {
        Printed::Value(text) => return Ok(Value::String(text)),
        Printed::Answer(answer, vms, bodies_end) => (answer, vms, bodies_end),
    };
    let answer = super::answer_buf::vec_into_bytes(answer);
    if let Some(miss) = miss {
        let kept = vm_pool_answers::Kept {
            answer: answer.clone(),
            vms: vms.into(),
            bodies_end,
        };
        ctx.vm_answers.keep(miss, kept);
    }
    hand_over(answer)
}

/// A pool printed: as a value, or as the whole XML-RPC answer with each VM's id and where its
/// body starts, and where the bodies end (`vm_pool_answers::Kept`).
enum Printed {
    Value(String),
    Answer(Vec<u8>, Vec<(i64, usize)>, usize),
}

/// An answer kept from before a few VMs changed, and the pool's statement narrowed to them.
struct Patch {
    base: Box<vm_pool_answers::Base>,
    sql: String,
    order: super::list_order::Order,
    args: Vec<i64>,
    changes: sqlstore::Changes,
}

impl Patch {
    /// The answer now: the kept one with each VM touched read again, its new body in its place
    /// (by id, in the answer's order) if it still matches, dropped if not. `None` when a commit to the pool's tables
    /// landed after the VMs touched were counted: the rows read again may show it while the
    /// rest of the answer does not, and no single state of the database is that answer, so the
    /// pool is read whole instead.
    fn apply(
        self,
        conn: &sqlstore::Conn,
        render: impl Fn(&RawRow<'_>, &mut String) -> Result<(), sqlstore::SqlError>,
    ) -> Result<Option<Printed>, sqlstore::SqlError> {
        let kept = &self.base.kept;
        let touched = &self.base.touched;
        let mut out = super::answer_buf::take_vec();
        out.extend_from_slice(kept.head());
        let mut vms = Vec::with_capacity(kept.vms.len() + touched.len());
        let mut old = kept.bodies().peekable();
        let keep_old = |out: &mut Vec<u8>, vms: &mut Vec<(i64, usize)>, (oid, body)| {
            if touched.binary_search(&oid).is_err() {
                vms.push((oid, out.len()));
                out.extend_from_slice(body);
            }
        };
        // Printed here, not through `BODIES`: these rows changed, so no kept body is theirs, and
        // a pass that used only them would sweep every other VM's body out of it.
        let (mut text, mut scratch) = (String::new(), String::new());
        if !touched.is_empty() {
            let mut st = conn.prepare(&self.sql)?;
            let mut it = st.query(sqlstore::sql::params_from_iter(self.args))?;
            while let Some(raw) = it.next_raw()? {
                let oid = raw.int(0)?;
                let earlier = |o: i64| match self.order {
                    super::list_order::Order::Asc => o < oid,
                    super::list_order::Order::Desc => o > oid,
                };
                while let Some(before) = old.next_if(|(o, _)| earlier(*o)) {
                    keep_old(&mut out, &mut vms, before);
                }
                text.clear();
                scratch.clear();
                render(&raw, &mut scratch)?;
                xmlrpc::escape_into(&mut text, &scratch);
                vms.push((oid, out.len()));
                out.extend_from_slice(text.as_bytes());
            }
        }
        // Every commit moves the generation before it starts: still the one the VMs were
        // counted up to (settled) after the read means the rows read again are the state the
        // rest of the answer shows.
        if self.changes.get(sqlstore::Watched::VmPool) != self.base.counted_to {
            return Ok(None);
        }
        for rest in old {
            keep_old(&mut out, &mut vms, rest);
        }
        let bodies_end = out.len();
        out.extend_from_slice(kept.tail());
        telemetry::m::POOL_ANSWERS_PATCHED.inc();
        Ok(Some(Printed::Answer(out, vms, bodies_end)))
    }
}

/// Hands a pool's whole answer to the dispatcher, which sends it and does not encode the value
/// returned.
fn hand_over(answer: axum::body::Bytes) -> MethodResult {
    if vm_pool_cache::prepare(answer) {
        Ok(Value::Nil)
    } else {
        Err(fail(code::INTERNAL, "the pool answer was lost"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn memory_attributes_and_video_are_checked_as_insert_checks_them() {
        let check = |text: &str| {
            let (mut sys, mut user) = (t(text), Template::default());
            memory_and_video(&mut sys, &mut user).map(|()| (sys, user))
        };
        let (sys, user) = check(
            "MEMORY_RESIZE_MODE = hotplug\nMEMORY_MAX = 0\nVCPU_MAX = 4\n\
                                 VIDEO = [ TYPE = VIRTIO, IOMMU = YES ]",
        )
        .unwrap();
        assert_eq!(sys.single("MEMORY_RESIZE_MODE"), Some("HOTPLUG"));
        assert_eq!(sys.single("VCPU_MAX"), Some("4"));
        assert_eq!(user.single("MEMORY_MAX"), Some("0"));
        assert_eq!(sys.get("VIDEO").unwrap().vector_get("TYPE"), Some("virtio"));
        for (text, why) in [
            (
                "MEMORY_RESIZE_MODE = grow",
                "Unknown MEMORY_RESIZE_MODE: GROW",
            ),
            ("VIDEO = [ VRAM = 2048 ]", "Video TYPE is required"),
            (
                "VIDEO = [ TYPE = qxl ]",
                "Invalid video TYPE, should be either: none, vga, cirrus, or virtio",
            ),
            (
                "VIDEO = [ TYPE = vga, ATS = yes ]",
                "IOMMU and ATS are only available for virtio TYPE",
            ),
            (
                "VIDEO = [ TYPE = vga, VRAM = 512 ]",
                "Invalid VRAM value in VIDEO attribute, must be >= 1024",
            ),
            (
                "VIDEO = [ TYPE = vga, RESOLUTION = 1280 ]",
                "Invalid RESOLUTION string format",
            ),
        ] {
            assert_eq!(check(text).map(|_| ()).unwrap_err(), why, "{text}");
        }
    }

    #[test]
    fn an_empty_vcpu_stays_in_the_user_template_and_a_bad_one_is_refused() {
        let (sys, user) = split(&t("CPU = 1\nMEMORY = 8\nVCPU = \"\"")).unwrap();
        assert_eq!(sys.get("VCPU"), None);
        assert_eq!(user.single("VCPU"), Some(""));
        let (sys, _) = split(&t("CPU = 1\nMEMORY = 8\nVCPU = 2")).unwrap();
        assert_eq!(sys.single("VCPU"), Some("2"));
        assert!(split(&t("CPU = 1\nMEMORY = 8\nVCPU = 0")).is_err());
    }

    #[test]
    fn os_boot_orders_the_devices_it_names() {
        let mut vm = t(
            "OS = [ BOOT = \"nic0,disk1\" ]\nDISK = [ DISK_ID = 0, ORDER = 9 ]\n\
                        DISK = [ DISK_ID = 1 ]\nNIC = [ NIC_ID = 0 ]",
        );
        boot_order(&mut vm).unwrap();
        let order = |name: &str| -> Vec<Option<String>> {
            vm.get_all(name)
                .map(|a| a.vector_get("ORDER").map(str::to_string))
                .collect()
        };
        assert_eq!(order("DISK"), [None, Some("2".into())]);
        assert_eq!(order("NIC"), [Some("1".into())]);
        let mut bad = t("OS = [ BOOT = \"cdrom\" ]");
        assert_eq!(
            boot_order(&mut bad).unwrap_err(),
            "Wrong OS/BOOT value: \"cdrom\" should be a comma-separated list of disk# or nic#"
        );
        let mut missing = t("OS = [ BOOT = \"disk5\" ]\nDISK = [ DISK_ID = 0 ]");
        assert_eq!(
            boot_order(&mut missing).unwrap_err(),
            "Wrong OS/BOOT value. Device with DISK_ID 5 not found"
        );
    }

    #[test]
    fn allocate_keeps_what_oned_reads_in_template_and_the_rest_in_user_template() {
        let (sys, user) = split(&t(
            "NAME=a\nCPU=1\nMEMORY=64\nVCPU=2\nLABELS=x\nDISK=[IMAGE_ID=1]\nNIC=[NETWORK_ID=0]\n\
             CONTEXT=[NETWORK=YES]\nGRAPHICS=[TYPE=VNC]\nGRAPHICS=[TYPE=SPICE]\n\
             SCHED_REQUIREMENTS=\"ID=1\"\nSCHED_RANK=FREE_CPU\nDESCRIPTION=d\nVMID=9\n\
             VMGROUP=[VMGROUP_ID=0,ROLE=r]\nFEATURES=[ACPI=YES]\nTEMPLATE_ID=3",
        ))
        .unwrap();
        let names = |t: &Template| t.attrs.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&sys),
            [
                "CPU",
                "MEMORY",
                "VCPU",
                "DISK",
                "NIC",
                "CONTEXT",
                "GRAPHICS",
                "VMGROUP",
                "FEATURES",
                "TEMPLATE_ID",
                "OS"
            ]
        );
        assert_eq!(sys.vector("GRAPHICS").unwrap()[0].1, "VNC");
        assert_eq!(
            names(&user),
            ["LABELS", "SCHED_REQUIREMENTS", "SCHED_RANK", "DESCRIPTION"]
        );
        let uuid = template::vector_get(sys.vector("OS").unwrap(), "UUID").unwrap();
        assert_eq!(uuid.len(), 36);
    }

    #[test]
    fn allocate_refuses_what_insert_refuses() {
        let msg = |text: &str| match split(&t(text)).unwrap_err() {
            Failure::Api { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg("CPU=1\nMEMORY=1\nVCPU=0"),
            "VCPU attribute must be a positive integer value."
        );
        assert_eq!(
            msg("CPU=1\nMEMORY=1\nCPU_COST=-1"),
            "CPU_COST attribute must be a positive float or integer value."
        );
        assert_eq!(
            msg("OS=[ARCH=x86_64]\nOS=[ARCH=aarch64]"),
            "Only one OS attribute can be defined."
        );
        let (_, user) = split(&t("REQUIREMENTS=\"ID=1\"")).unwrap();
        assert_eq!(user.single("SCHED_REQUIREMENTS"), Some("ID=1"));
        let (sys, _) = split(&t("OS=[ARCH=x86_64,UUID=u-1]")).unwrap();
        assert_eq!(
            sys.vector("OS").unwrap(),
            [
                ("ARCH".to_string(), "x86_64".to_string()),
                ("UUID".into(), "u-1".into())
            ]
        );
    }

    #[test]
    fn like_reads_wildcards_as_mysql() {
        assert!(like("web-01", "%eb%"));
        assert!(like("web-01", "%w_b%"));
        assert!(like("web-01", "%%"));
        assert!(!like("web-01", "%WEB%"));
        assert!(like("a%b", "%a\\%b%"));
        assert!(!like("axb", "%a\\%b%"));
        assert!(like("abcabxd", "%ab_d%"));
        assert!(!like("ab", "%abc%"));
    }

    #[test]
    fn a_path_finds_what_json_extract_finds() {
        let body = "<VM><NAME>web</NAME><TEMPLATE><DISK><IMAGE><![CDATA[a]]></IMAGE></DISK>\
                    <DISK><IMAGE><![CDATA[b]]></IMAGE></DISK><OS><ARCH>x86</ARCH></OS></TEMPLATE></VM>";
        let root = Node::parse(body).unwrap();
        let at = |p: &str| extract(&root, &p.split('.').map(str::to_string).collect::<Vec<_>>());
        assert_eq!(at("VM.NAME").as_deref(), Some("web"));
        assert_eq!(at("VM.TEMPLATE.DISK.IMAGE"), None);
        assert_eq!(at("VM.TEMPLATE.DISK[1].IMAGE").as_deref(), Some("b"));
        assert_eq!(
            at("VM.TEMPLATE.DISK[*].IMAGE").as_deref(),
            Some("[\"a\", \"b\"]")
        );
        assert_eq!(at("VM.TEMPLATE.OS[0].ARCH").as_deref(), Some("x86"));
        assert_eq!(at("VM.TEMPLATE.OS").as_deref(), Some("{\"ARCH\": \"x86\"}"));
        assert_eq!(at("HOST.NAME"), None);
    }

    #[test]
    fn a_query_is_split_as_opennebula_splits_it() {
        assert_eq!(Query::parse("").unwrap(), None);
        let q = Query::parse("VM.NAME=web&prod").unwrap().unwrap();
        assert_eq!(
            q.terms,
            vec![
                (Some(vec!["VM".into(), "NAME".into()]), "web".into()),
                (None, "prod".into())
            ]
        );
        assert!(Query::parse(&"x".repeat(QUERY_MAX + 1)).is_err());
        // Each part ends at its first blank; blank parts go.
        let q = Query::parse(" VM.NAME=web server& &x y").unwrap().unwrap();
        assert_eq!(
            q.terms,
            vec![
                (Some(vec!["VM".into(), "NAME".into()]), "web".into()),
                (None, "x".into())
            ]
        );
    }

    #[test]
    fn the_json_view_holds_what_body_json_holds() {
        let body = "<VM><ID>3</ID><NAME>web</NAME><PERMISSIONS><OWNER_U>1</OWNER_U></PERMISSIONS>\
                    <TEMPLATE><NIC><IP><![CDATA[10.0.0.5]]></IP></NIC></TEMPLATE>\
                    <HISTORY_RECORDS><HISTORY><HOSTNAME>a</HOSTNAME></HISTORY>\
                    <HISTORY><HOSTNAME>b</HOSTNAME></HISTORY></HISTORY_RECORDS></VM>";
        let root = json_view(Node::parse(body).unwrap());
        let at = |p: &str| extract(&root, &p.split('.').map(str::to_string).collect::<Vec<_>>());
        assert_eq!(at("VM.NAME").as_deref(), Some("web"));
        assert_eq!(at("VM.TEMPLATE.NIC.IP"), None);
        assert_eq!(at("VM.TEMPLATE.NIC[0].IP").as_deref(), Some("10.0.0.5"));
        assert_eq!(at("VM.PERMISSIONS.OWNER_U"), None);
        assert_eq!(at("VM.HISTORY_RECORDS.HISTORY.HOSTNAME"), None);
        assert_eq!(
            at("VM.HISTORY_RECORDS.HISTORY[0].HOSTNAME").as_deref(),
            Some("b")
        );
        assert_eq!(at("VM.HISTORY_RECORDS.HISTORY[1].HOSTNAME"), None);
    }
}
