//! `one.vm.updateconf(id, template, type)`, as OpenNebula's `VirtualMachineUpdateConf` and
//! `VirtualMachine::updateconf`: only the configuration sections (OS, FEATURES, INPUT,
//! GRAPHICS, VIDEO, RAW, CPU_MODEL with their known keys, and CONTEXT) of the VM template
//! change, replaced or merged; a RUNNING VM whose context changed is updated live (HOTPLUG
//! until the leader's dummy driver is done).

use sqlstore::objects::vm::{self as rows, Move, VmRow};
use template::{Template, Value as TValue};
use xmlrpc::{Params, Value};

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::vm::{lcm, now, state, VMS};
use super::vm_nics::state_str;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[method!(
    "one.vm.updateconf",
    Write,
    Auth::Object,
    updateconf
)];

/// `VirtualMachineTemplate::UPDATECONF_ATTRS`: the sections and the keys of each that
/// updateconf keeps.
const CONF: &[(&str, &[&str])] = &[
    (
        "OS",
        &[
            "ARCH",
            "MACHINE",
            "KERNEL",
            "INITRD",
            "BOOTLOADER",
            "BOOT",
            "KERNEL_CMD",
            "ROOT",
            "SD_DISK_BUS",
            "UUID",
            "FIRMWARE",
            "FIRMWARE_FORMAT",
        ],
    ),
    (
        "FEATURES",
        &[
            "PAE",
            "ACPI",
            "APIC",
            "LOCALTIME",
            "HYPERV",
            "GUEST_AGENT",
            "VIRTIO_SCSI_QUEUES",
            "VIRTIO_BLK_QUEUES",
            "IOTHREADS",
        ],
    ),
    ("INPUT", &["TYPE", "BUS"]),
    (
        "GRAPHICS",
        &["TYPE", "LISTEN", "PASSWD", "KEYMAP", "COMMAND"],
    ),
    ("VIDEO", &["IOMMU", "ATS", "TYPE", "VRAM", "RESOLUTION"]),
    ("RAW", &["TYPE", "DATA", "VALIDATE", "DATA_VMX"]),
    ("CPU_MODEL", &["MODEL", "FEATURES"]),
];

/// `VirtualMachineUpdateConf`: GRAPHICS added to a VM on a host (ACTIVE, POWEROFF, SUSPENDED)
/// takes a port of the host's cluster there and then (`crate::api::vm_vnc`).
async fn graphics_port(
    ctx: &Ctx,
    v: &sqlstore::objects::vm::VmRow,
    new: &mut Template,
) -> Result<Vec<sqlstore::SqlStmt>, Failure> {
    let placed = [state::ACTIVE, state::POWEROFF, state::SUSPENDED].contains(&v.state);
    let Some(h) = v.history.last().filter(|_| placed) else {
        return Ok(Vec::new());
    };
    let wants = new
        .vector("GRAPHICS")
        .is_some_and(|g| template::vector_get(g, "PORT").is_none());
    if !wants {
        return Ok(Vec::new());
    }
    let (cid, vid, hid) = (h.cid, v.head.owned.oid, h.hid);
    let taken = ctx
        .read(move |c| super::vm_vnc::taken_by_others(c, cid, vid))
        .await?;
    let conf = super::vm_vnc::vnc_ports(&ctx.config.raw);
    let chosen =
        super::vm_vnc::choose_for(&conf, vid, new, &taken).map_err(|e| fail(code::INTERNAL, e))?;
    Ok(sqlstore::objects::vnc::take(vid, hid, chosen))
}

/// How often the update is computed again after a concurrent change of the VM.
const RETRIES: usize = 10;

pub async fn updateconf(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let append = match p.0.get(2) {
        None => false,
        Some(_) => match p.int(2)? {
            0 => false,
            1 => true,
            _ => return Err(fail(code::XML_RPC_API, "Wrong update type")),
        },
    };
    let given = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let conf = conf_template(&given);
    for _ in 0..RETRIES {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "updateconf", MANAGE).await?,
            )
            .await?;
        let old = Template::parse(&v.template).unwrap_or_default();
        // `check_restricted(aname, uc_tmpl, true)`: what updateconf takes of the template
        // given (`get_updateconf_template`), against the VM's.
        if !s.is_admin() {
            let mut given = conf.clone();
            let ras = super::restricted::vm(ctx);
            if let Some(name) = super::restricted::update_changes(&ras, &mut given, &old, true) {
                return Err(super::unauthorized(
                    s,
                    &format!("Template includes a restricted attribute {name}"),
                ));
            }
        }
        check_state(&v)?;
        let allow_eth = ctx
            .config
            .raw
            .single("CONTEXT_ALLOW_ETH_UPDATES")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes"));
        let ((mut new, context_changed, to_parse), eth) =
            apply_with(&old, &conf, append, allow_eth)?;
        super::vm_context::at_updateconf(ctx, &v, &mut new, to_parse).await?;
        // The network values given win over those the network context was made with.
        if let Some(mut context) = new
            .vector("CONTEXT")
            .map(<[_]>::to_vec)
            .filter(|_| !eth.is_empty())
        {
            for (k, v) in eth {
                context.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
                context.push((k, v));
            }
            context.sort_by(|a, b| a.0.cmp(&b.0));
            new.set("CONTEXT", TValue::Vector(context));
        }
        backup_config(&v, &given, &old, &mut new, append)?;
        super::vm_body::graphics(&mut new)?;
        super::vm_body::boot_order(&mut new).map_err(|e| fail(code::INTERNAL, e))?;
        let port = graphics_port(ctx, &v, &mut new).await?;
        super::encrypted::seal_in(ctx, rows::TABLE, &mut new);
        let mut stmts = vec![sqlstore::objects::replace_template(
            rows::TABLE,
            "template",
            id,
            new.to_text(),
            v.template.clone(),
        )];
        stmts.extend(port);
        if context_changed && (v.state, v.lcm_state) == (state::ACTIVE, lcm::RUNNING) {
            stmts.extend(rows::move_stmts(&Move {
                oid: id,
                from: (v.state, v.lcm_state),
                to: (state::ACTIVE, lcm::HOTPLUG),
                now: now(),
                leaves_host: false,
            }));
            stmts.push(rows::clear_resched(id));
        }
        let mut changed = false;
        let written = ctx
            .commit(sqlstore::SqlTxn { stmts }, |r| {
                changed = r.kind == sqlstore::TxnErrorKind::NotFound;
                r.internal()
            })
            .await;
        match written {
            Ok(_) => return Ok(Value::Int(id as i32)),
            Err(_) if changed => continue,
            Err(f) => return Err(f),
        }
    }
    Err(fail(
        code::INTERNAL,
        "Cannot update the VM configuration: it kept changing, try again",
    ))
}

/// `VirtualMachine::updateconf`'s allowed states.
fn check_state(v: &VmRow) -> Result<(), Failure> {
    use wire::LcmState as L;
    let ok = match v.state {
        state::PENDING
        | state::HOLD
        | state::POWEROFF
        | state::UNDEPLOYED
        | state::CLONING
        | state::CLONING_FAILURE => true,
        state::ACTIVE => matches!(
            L::from_i64(v.lcm_state),
            Some(
                L::LcmInit
                    | L::Prolog
                    | L::Running
                    | L::Epilog
                    | L::Shutdown
                    | L::CleanupResubmit
                    | L::ShutdownPoweroff
                    | L::CleanupDelete
                    | L::HotplugSaveasPoweroff
                    | L::ShutdownUndeploy
                    | L::EpilogUndeploy
                    | L::PrologUndeploy
                    | L::HotplugPrologPoweroff
                    | L::HotplugEpilogPoweroff
                    | L::BootFailure
                    | L::PrologFailure
                    | L::EpilogFailure
                    | L::EpilogUndeployFailure
                    | L::PrologMigratePoweroff
                    | L::PrologMigratePoweroffFailure
                    | L::BootUndeployFailure
                    | L::PrologUndeployFailure
                    | L::DiskSnapshotPoweroff
                    | L::DiskSnapshotRevertPoweroff
                    | L::DiskSnapshotDeletePoweroff
            )
        ),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(fail(
            code::INTERNAL,
            format!("configuration cannot be updated in state {}", state_str(v)),
        ))
    }
}

/// `get_updateconf_template`: the known keys of each section, and CONTEXT whole.
fn conf_template(given: &Template) -> Template {
    let mut out = Template::default();
    for (name, keys) in CONF {
        let Some(pairs) = given.vector(name) else {
            continue;
        };
        let kept: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, v)| !v.is_empty() && keys.iter().any(|n| k.eq_ignore_ascii_case(n)))
            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
            .collect();
        if !kept.is_empty() {
            out.push(name, TValue::Vector(kept));
        }
    }
    if let Some(ctx) = given.vector("CONTEXT") {
        out.push("CONTEXT", TValue::Vector(ctx.to_vec()));
    }
    out
}

/// `replace_vector_values` for every section, then the context: the new template, whether the
/// context changed, and the context values to parse (`new_context`).
#[cfg(test)]
fn apply(old: &Template, conf: &Template, append: bool) -> Result<Applied, Failure> {
    apply_with(old, conf, append, false).map(|(applied, _)| applied)
}

/// The update, and with `allow_eth` (oned.conf's CONTEXT_ALLOW_ETH_UPDATES) the network values
/// it changes, written as given once the network context is made again.
fn apply_with(
    old: &Template,
    conf: &Template,
    append: bool,
    allow_eth: bool,
) -> Result<(Applied, Pairs), Failure> {
    let mut t = old.clone();
    for (name, keys) in CONF {
        match (conf.vector(name), t.vector(name).map(<[_]>::to_vec)) {
            (None, _) => {
                if !append {
                    t.remove(name);
                }
            }
            (Some(new), None) => t.push(name, TValue::Vector(new.to_vec())),
            (Some(new), Some(mut cur)) => {
                for key in keys.iter() {
                    let found = template::vector_get(new, key).map(str::to_string);
                    if found.is_some() || !append {
                        cur.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
                    }
                    if let Some(val) = found {
                        cur.push((key.to_string(), val));
                    }
                }
                t.set(name, TValue::Vector(cur));
            }
        }
    }
    let changed = match (
        t.vector("CONTEXT").map(<[_]>::to_vec),
        conf.vector("CONTEXT"),
    ) {
        (None, Some(_)) => {
            return Err(fail(
                code::INTERNAL,
                "Virtual machine does not have context, cannot add a new one.",
            ))
        }
        (Some(cur), Some(new)) => {
            let (ctx, changed, to_parse, eth) = new_context(&cur, new, append, allow_eth)?;
            t.set("CONTEXT", TValue::Vector(ctx));
            (changed, to_parse, eth)
        }
        _ => (false, Vec::new(), Vec::new()),
    };
    Ok(((t, changed.0, changed.1), changed.2))
}

fn is_eth(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("ETH") else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0
        && rest[digits..].strip_prefix('_').is_some_and(|w| {
            !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

type Pairs = Vec<(String, String)>;

/// The new template, whether its CONTEXT changed, and the CONTEXT values to parse.
type Applied = (Template, bool, Pairs);

/// The CONTEXT an update leaves: network (`ETH<n>_*`) values only change through the NIC;
/// TARGET and DISK_ID stay the VM's. With it, whether it changed and the values that are new
/// or different (and NETWORK when the context is replaced), which `parse_context` parses.
fn new_context(
    cur: &[(String, String)],
    new: &[(String, String)],
    append: bool,
    allow_eth: bool,
) -> Result<(Pairs, bool, Pairs, Pairs), Failure> {
    let upper = |pairs: &[(String, String)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
            .collect()
    };
    let (cur, mut new) = (upper(cur), upper(new));
    // `VirtualMachine::updateconf` walks both in the key order its map keeps.
    new.sort_by(|a, b| a.0.cmp(&b.0));
    let mut eth = Vec::new();
    let get = |pairs: &[(String, String)], k: &str| {
        pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    let mut changed = false;
    let mut to_parse = Vec::new();
    for (k, v) in &new {
        if k == "TARGET" || k == "DISK_ID" {
            continue;
        }
        match get(&cur, k) {
            Some(old) if &old == v => {
                if !append && k == "NETWORK" {
                    to_parse.push((k.clone(), v.clone()));
                }
            }
            old => {
                to_parse.push((k.clone(), v.clone()));
                if is_eth(k) && allow_eth {
                    eth.push((k.clone(), v.clone()));
                } else if is_eth(k) {
                    let verb = if old.is_some() { "update" } else { "add" };
                    return Err(fail(
                        code::INTERNAL,
                        format!("Unable to {verb} {k}, update NIC to update network context"),
                    ));
                }
                changed = true;
            }
        }
    }
    if !append
        && cur
            .iter()
            .any(|(k, _)| get(&new, k).is_none() && k != "TARGET" && k != "DISK_ID")
    {
        changed = true;
    }
    let mut out: Vec<(String, String)> = if append {
        let mut out = cur.clone();
        for (k, v) in &new {
            out.retain(|(n, _)| n != k);
            out.push((k.clone(), v.clone()));
        }
        out
    } else {
        new.clone()
    };
    for key in ["TARGET", "DISK_ID"] {
        out.retain(|(n, _)| n != key);
        if let Some(v) = get(&cur, key) {
            out.push((key.to_string(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, changed, to_parse, eth))
}

/// The BACKUP_CONFIG part of `VirtualMachine::updateconf` (not while a backup runs): MODE
/// INCREMENT is refused where the VM could not do one, the rest as `Backups::parse`.
fn backup_config(
    v: &VmRow,
    given: &Template,
    old: &Template,
    new: &mut Template,
    append: bool,
) -> Result<(), Failure> {
    let Some(wanted) = given.vector("BACKUP_CONFIG") else {
        return Ok(());
    };
    if v.state == state::ACTIVE && matches!(v.lcm_state, lcm::BACKUP | lcm::BACKUP_POWEROFF) {
        return Ok(());
    }
    let current = super::vm_backup::config(old);
    let do_volatile = template::vector_get(&current, "BACKUP_VOLATILE")
        .is_some_and(|b| b.trim().eq_ignore_ascii_case("YES"));
    let has_snapshots = old.get("SNAPSHOT").is_some();
    let increment = super::vm_backup::can_increment(old, do_volatile) && !has_snapshots;
    let mode = template::vector_get(wanted, "MODE").unwrap_or("").trim();
    if !mode.is_empty() && !increment && mode.eq_ignore_ascii_case("INCREMENT") {
        let why = if has_snapshots {
            ", it has snapshots."
        } else {
            ", it has disks snapshots or disks are not qcow2."
        };
        return Err(fail(
            code::INTERNAL,
            format!("VM cannot use backup increment mode{why}"),
        ));
    }
    let parsed = super::vm_backup::parse_config(&current, wanted, increment, append);
    super::vm_backup::set_config(new, parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap_or_default()
    }

    #[test]
    fn only_known_sections_and_keys_are_kept() {
        let c = conf_template(&t(
            "OS = [ ARCH = \"x86_64\", BOGUS = \"1\" ]\nMEMORY = \"1024\"\nCONTEXT = [ A = \"b\" ]",
        ));
        assert_eq!(
            c.vector("OS"),
            Some(&[("ARCH".into(), "x86_64".into())][..])
        );
        assert!(c.single("MEMORY").is_none());
        assert!(c.vector("CONTEXT").is_some());
    }

    #[test]
    fn replace_drops_a_missing_section_and_merge_keeps_it() {
        let old = t("OS = [ ARCH = \"x86_64\" ]\nFEATURES = [ ACPI = \"yes\" ]");
        let conf = conf_template(&t("OS = [ MACHINE = \"q35\" ]"));
        let (rep, _, _) = apply(&old, &conf, false)
            .map_err(|_| ())
            .unwrap_or_default();
        assert!(rep.vector("FEATURES").is_none());
        assert_eq!(
            rep.vector("OS"),
            Some(&[("MACHINE".into(), "q35".into())][..])
        );
        let (mer, _, _) = apply(&old, &conf, true).map_err(|_| ()).unwrap_or_default();
        assert!(mer.vector("FEATURES").is_some());
        assert_eq!(mer.vector("OS").map(<[_]>::len), Some(2));
    }

    #[test]
    fn context_changes_but_not_its_network_values() {
        let old = t("CONTEXT = [ A = \"1\", ETH0_IP = \"10.0.0.1\", TARGET = \"hda\" ]");
        let (new, changed, parsed) = apply(
            &old,
            &conf_template(&t("CONTEXT = [ A = \"2\", ETH0_IP = \"10.0.0.1\" ]")),
            false,
        )
        .map_err(|_| ())
        .unwrap_or_default();
        assert!(changed);
        // Only what changed is parsed again; the network values, equal, are kept as they are.
        assert_eq!(parsed, [("A".to_string(), "2".to_string())]);
        assert_eq!(
            new.vector("CONTEXT")
                .and_then(|c| template::vector_get(c, "TARGET")),
            Some("hda")
        );
        assert!(apply(
            &old,
            &conf_template(&t("CONTEXT = [ ETH0_IP = \"10.0.0.9\" ]")),
            false
        )
        .is_err());
        assert!(apply(
            &t("A = \"1\""),
            &conf_template(&t("CONTEXT = [ B = \"1\" ]")),
            false
        )
        .is_err());
    }
}
