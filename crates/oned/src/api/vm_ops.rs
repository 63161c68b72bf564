//! Who may run each VM operation: oned.conf's `VM_ADMIN_OPERATIONS`, `VM_MANAGE_OPERATIONS`
//! and `VM_USE_OPERATIONS`, read as OpenNebula's `VMActions::set_auth_ops` reads them (names
//! that stand for several actions: `migrate` is also live-migrate, `nic-attach` also
//! nic-detach and nic-update...). An operation none of them lists keeps the method's own
//! level, which is OpenNebula's default configuration, as `RequestAttributes::set_auth_op`
//! keeps it when no list names the action. A user's or its group's template may hold the same
//! lists, which come first.

use sqlstore::objects::quota as quota_rows;
use sqlstore::objects::vm::VmRow;
use template::Template;
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::{ADMIN, MANAGE, USE};
use super::quota::Ask;
use super::vm::VMS;
use super::{Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

/// `one.vm.rename` and `one.vm.update`, the owned-object calls OpenNebula gives a VM action
/// (`RENAME_ACTION`, `UPDATE_ACTION`) and so a right from the lists. `chown`, `chmod`, `lock`
/// and `unlock` have none in OpenNebula 7.0 (their names are refused in the lists) and keep
/// the owned-object rights (`vm::OWNED`).
pub const METHODS: &[Method] = &[
    method!("one.vm.chown", Write, Auth::Object, chown),
    method!("one.vm.rename", Write, Auth::Object, rename),
    method!("one.vm.update", Write, Auth::Object, update),
];

/// `one.vm.chown`: a DONE VM keeps its owner (`RequestManagerChown::get_and_quota`, after the
/// caller's right on the VM); the new owner's quotas must take what it counts for.
async fn chown(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    // `RequestManagerChown`'s order: the new user and group, the VM, the rights, then the state.
    super::owned::chown_checked(ctx, s, p, &VMS, |v| {
        if v.state == wire::state::VmState::Done.as_i64() {
            return Err(super::fail(
                super::code::ACTION,
                "Could not change VM ownership, wrong state",
            ));
        }
        Ok(counts_for(ctx, v))
    })
    .await
}

/// What VM `v` counts for in its owner's quotas, as `get_quota_template` gives it to
/// `Quotas::quota_check(VIRTUALMACHINE)`: a lease in the network of each NIC, alias and PCI
/// NIC (an automatic NIC not yet placed holds none), the VM entry (the RUNNING_* figures only
/// while it runs, in the cluster it is in), one RVMS of the image of each disk.
fn counts_for(ctx: &Ctx, v: &VmRow) -> Vec<Ask> {
    let t = Template::parse(&v.template).unwrap_or_default();
    let mut leases = Vec::new();
    for nic in super::vm_nics::nics_of(&t) {
        let vnet = nic.vector_get("NETWORK_ID").map(str::trim).unwrap_or("");
        if let Ok(vnet) = vnet.parse::<i64>() {
            super::vnet_leases::count(&mut leases, vnet, 1.0);
        }
    }
    let mut asks: Vec<Ask> = leases
        .into_iter()
        .map(|(vnet, n)| Ask::leases(vnet, n))
        .collect();
    let mut vm = Ask::new_vm(v.cpu, v.memory as f64)
        .with_system_disk(quota_rows::system_disk_size_of(&t))
        .with_generic_of(
            &ctx.config.raw,
            &t,
            &Template::parse(&v.user_template).unwrap_or_default(),
        )
        .within(super::quota::cluster_of(v));
    if !quota_rows::counts_as_running(v.state) {
        vm.amounts.retain(|(m, _)| !m.starts_with("RUNNING_"));
    }
    asks.push(vm);
    // One RVMS per image, as `one.vm.allocate` charges it and the usage counts it (7.0.2
    // counts a VM with two disks of one image twice).
    let mut images: Vec<i64> = Vec::new();
    for image in t
        .get_all("DISK")
        .filter_map(|d| d.vector_get("IMAGE_ID")?.trim().parse::<i64>().ok())
    {
        if !images.contains(&image) {
            images.push(image);
        }
    }
    asks.extend(images.into_iter().map(Ask::image_vm));
    asks
}

async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let right = right(ctx, s, "rename", MANAGE).await?;
    super::owned::rename_as(ctx, s, p, &VMS, right).await
}

async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let right = right(ctx, s, "update", MANAGE).await?;
    // `VirtualMachineUpdateTemplate` parses the text itself, after the right and the update
    // type: a text that does not parse is ACTION, in the parser's words.
    let v = VMS.authorized(ctx, s, p.int(0)? as i64, right).await?;
    let merge = super::writes::update_type(&p)?;
    let new =
        super::validate::template(p.string(1)?).map_err(|e| super::fail(super::code::ACTION, e))?;
    // Then the owner's quotas take what the change adds to a generic quota attribute, before
    // the template is changed (its restricted attributes, INTERNAL).
    let guard = generic_quota_guard(ctx, &v, new, merge).await?;
    super::owned::update_with(ctx, s, p, &VMS, None, guard.as_slice()).await
}

/// The quota guard of a user template update (`VirtualMachineUpdateTemplate`): each generic
/// quota attribute (QUOTA_VM_ATTRIBUTE) the update changes counts by its difference, and its
/// RUNNING_ figure too while the VM runs, for the VM's owner; a refusal is ACTION, in the
/// quota's words. `None` when no such attribute changes or no limit applies.
async fn generic_quota_guard(
    ctx: &Ctx,
    v: &VmRow,
    new: Template,
    merge: bool,
) -> Result<Option<sqlstore::SqlStmt>, super::Failure> {
    let metrics = super::quota::generic_metrics(&ctx.config.raw);
    if metrics.is_empty() {
        return Ok(None);
    }
    let old = Template::parse(&v.user_template).unwrap_or_default();
    let new = if merge {
        let mut all = old.clone();
        super::writes::merge_attrs(&mut all, new);
        all
    } else {
        new
    };
    let num = |t: &Template, m: &str| t.single(m).and_then(|x| x.trim().parse::<f64>().ok());
    let running = quota_rows::counts_as_running(v.state);
    let mut amounts = Vec::new();
    // `generic_metrics` names each attribute, then its RUNNING_ figure.
    for pair in metrics.chunks(2) {
        let [m, running_m] = pair else {
            continue;
        };
        let (before, after) = (num(&old, m), num(&new, m));
        if before.is_none() && after.is_none() {
            continue;
        }
        let delta = after.unwrap_or(0.0) - before.unwrap_or(0.0);
        if delta != 0.0 {
            amounts.push((*m, delta));
            if running {
                amounts.push((*running_m, delta));
            }
        }
    }
    if amounts.is_empty() {
        return Ok(None);
    }
    super::quota::Charge {
        asks: &[Ask::vm(amounts)],
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording: super::quota::Wording::Action,
    }
    .guard(ctx)
    .await
}

/// The names oned.conf's lists may hold.
const NAMES: &[&str] = &[
    "migrate",
    "delete",
    "recover",
    "retry",
    "deploy",
    "resched",
    "undeploy",
    "hold",
    "release",
    "stop",
    "suspend",
    "resume",
    "reboot",
    "poweroff",
    "disk-attach",
    "nic-attach",
    "disk-snapshot",
    "terminate",
    "disk-resize",
    "snapshot",
    "updateconf",
    "rename",
    "resize",
    "update",
    "disk-saveas",
    "backup",
    "sched-action",
    "sg-attach",
    "pci-attach",
    "restore",
];

/// The configuration name that covers `action` (a `one.vm.action` word or an operation).
fn name_of(action: &str) -> &str {
    match action {
        "live-migrate" | "poweroff-migrate" | "poweroff-hard-migrate" => "migrate",
        "delete-recreate" => "delete",
        "unresched" => "resched",
        "undeploy-hard" => "undeploy",
        "reboot-hard" => "reboot",
        "poweroff-hard" => "poweroff",
        "terminate-hard" => "terminate",
        "disk-detach" => "disk-attach",
        "nic-detach" | "nic-update" | "alias-attach" | "alias-detach" => "nic-attach",
        "disk-snapshot-create"
        | "disk-snapshot-delete"
        | "disk-snapshot-revert"
        | "disk-snapshot-rename" => "disk-snapshot",
        "snapshot-create" | "snapshot-delete" | "snapshot-revert" => "snapshot",
        "backup-cancel" => "backup",
        "sched-add" | "sched-update" | "sched-delete" => "sched-action",
        "sg-detach" => "sg-attach",
        "pci-detach" => "pci-attach",
        other => other,
    }
}

/// The names of one list (`"migrate, delete"`), lower case.
fn list(conf: &Template, attr: &str) -> Vec<String> {
    conf.get_all(attr)
        .filter_map(|a| a.value.as_single())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The right the lists of `conf` give `action`, if one names it.
fn listed(conf: &Template, action: &str) -> Option<u64> {
    let name = name_of(action);
    [
        ("VM_ADMIN_OPERATIONS", ADMIN),
        ("VM_MANAGE_OPERATIONS", MANAGE),
        ("VM_USE_OPERATIONS", USE),
    ]
    .into_iter()
    .find(|(attr, _)| list(conf, attr).iter().any(|n| n == name))
    .map(|(_, right)| right)
}

/// The right `action` needs under configuration `conf`, `default` when no list names it.
pub fn right_in(conf: &Template, action: &str, default: u64) -> u64 {
    listed(conf, action).unwrap_or(default)
}

/// The right `action` needs from the caller, as `RequestAttributes::set_auth_op` finds it: the
/// lists of the user's template, else of its group's, else of oned.conf, else `default`.
pub async fn right(ctx: &Ctx, s: &Session, action: &str, default: u64) -> Result<u64, Failure> {
    let (uid, gid) = (s.uid, s.gid);
    // One statement for both templates, and only those that may name the lists: most name
    // none, and then nothing is parsed.
    let (user, group) = ctx
        .read(move |c| sqlstore::objects::user::vm_operation_templates(c, uid, gid))
        .await?;
    Ok(right_of(
        [user, group].into_iter().flatten(),
        &ctx.config.raw,
        action,
        default,
    ))
}

/// The right `action` needs given the caller's templates (`texts`: user's, then group's) and
/// oned.conf `conf`: the first that lists it wins.
fn right_of(
    texts: impl IntoIterator<Item = String>,
    conf: &Template,
    action: &str,
    default: u64,
) -> u64 {
    texts
        .into_iter()
        .find_map(|text| Template::parse(&text).ok().and_then(|t| listed(&t, action)))
        .unwrap_or_else(|| right_in(conf, action, default))
}

/// `VMActions::set_auth_ops`' check of oned.conf: every listed name must be an operation.
pub fn check(conf: &Template) -> Result<(), String> {
    for attr in [
        "VM_ADMIN_OPERATIONS",
        "VM_MANAGE_OPERATIONS",
        "VM_USE_OPERATIONS",
    ] {
        if let Some(bad) = list(conf, attr)
            .into_iter()
            .find(|n| !NAMES.contains(&n.as_str()))
        {
            return Err(format!("Unknown vm operation: {bad}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn conf(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn lists_name_groups_of_actions_and_unlisted_ones_keep_their_default() {
        let c = conf(
            "VM_ADMIN_OPERATIONS = \"migrate, delete, nic-attach\"\n\
             VM_USE_OPERATIONS = \"Poweroff\"",
        );
        assert_eq!(right_in(&c, "live-migrate", MANAGE), ADMIN);
        assert_eq!(right_in(&c, "nic-update", MANAGE), ADMIN);
        assert_eq!(right_in(&c, "poweroff-hard", MANAGE), USE);
        assert_eq!(right_in(&c, "terminate", MANAGE), MANAGE);
        assert_eq!(right_in(&conf(""), "deploy", ADMIN), ADMIN);
        assert!(check(&c).is_ok());
        assert_eq!(
            check(&conf("VM_MANAGE_OPERATIONS = \"fly, poweroff\"")),
            Err("Unknown vm operation: fly".to_string())
        );
    }

    #[test]
    fn the_users_template_comes_before_its_groups_and_oned_conf() {
        let shipped = conf("VM_MANAGE_OPERATIONS = \"rename, update\"");
        let user = "VM_USE_OPERATIONS = \"rename\"".to_string();
        let group = "VM_ADMIN_OPERATIONS = \"rename, update\"".to_string();
        let none: [String; 0] = [];
        assert_eq!(right_of(none, &shipped, "rename", ADMIN), MANAGE);
        assert_eq!(right_of([group.clone()], &shipped, "rename", MANAGE), ADMIN);
        assert_eq!(
            right_of([user.clone(), group.clone()], &shipped, "rename", MANAGE),
            USE
        );
        // The user's lists do not name update: the group's decide.
        assert_eq!(right_of([user, group], &shipped, "update", MANAGE), ADMIN);
        // chown, chmod and lock have no VM action in OpenNebula 7.0: naming them stops oned.
        for op in ["chown", "chmod", "lock", "unlock"] {
            let c = conf(&format!("VM_USE_OPERATIONS = \"{op}\""));
            assert_eq!(check(&c), Err(format!("Unknown vm operation: {op}")));
        }
        // A template that does not parse is skipped, as one without the lists.
        assert_eq!(
            right_of(["A = [".to_string()], &shipped, "update", USE),
            MANAGE
        );
    }

    #[test]
    fn the_shipped_oned_conf_holds_opennebulas_defaults() {
        let shipped = conf(include_str!("../../../../share/etc/oned.conf"));
        assert!(check(&shipped).is_ok());
        for (action, right) in [
            ("live-migrate", ADMIN),
            ("delete-recreate", ADMIN),
            ("backup-cancel", ADMIN),
            ("restore", ADMIN),
            ("nic-update", MANAGE),
            ("terminate-hard", MANAGE),
            ("sched-update", MANAGE),
        ] {
            assert_eq!(right_in(&shipped, action, USE), right, "{action}");
        }
    }
}
