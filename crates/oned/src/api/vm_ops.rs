//! Who may run each VM operation: oned.conf's `VM_ADMIN_OPERATIONS`, `VM_MANAGE_OPERATIONS`
//! and `VM_USE_OPERATIONS`, read as OpenNebula's `VMActions::set_auth_ops` reads them (names
//! that stand for several actions: `migrate` is also live-migrate, `nic-attach` also
//! nic-detach and nic-update...). An operation none of them lists keeps the method's own
//! level, which is OpenNebula's default configuration, as `RequestAttributes::set_auth_op`
//! keeps it when no list names the action. A user's or its group's template may hold the same
//! lists, which come first.

use template::Template;

use super::perms::{ADMIN, MANAGE, USE};
use super::{Ctx, Failure};
use crate::auth::Session;

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
    let (user, group) = ctx
        .read(move |c| {
            let user = sqlstore::load_user(c, uid)?.map(|u| u.template);
            let group = sqlstore::objects::group::load(c, gid)?.map(|g| g.template);
            Ok((user, group))
        })
        .await?;
    for text in [user, group].into_iter().flatten() {
        // Only a template that names the lists is parsed: most name none.
        if !text.contains("_OPERATIONS") {
            continue;
        }
        if let Some(right) = Template::parse(&text).ok().and_then(|t| listed(&t, action)) {
            return Ok(right);
        }
    }
    Ok(right_in(&ctx.config.raw, action, default))
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
