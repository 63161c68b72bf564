//! `one.vm.attachsg` and `one.vm.detachsg`, as OpenNebula's `DispatchManager::attach_sg` /
//! `detach_sg`: a security group joins or leaves one NIC's SECURITY_GROUPS; the VM is in the
//! group's lists while any of its NICs has it, as UPDATING when its rules must be pushed to a
//! running VM (the leader's dummy network driver then marks it updated).

use sqlstore::objects::secgroup::{self as sg_rows, vm_state};
use sqlstore::objects::vm::{self as rows, VmRow};
use template::Template;
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::{MANAGE, USE};
use super::vm::{state, VMS};
use super::vm_nics::state_str;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use wire::LcmState as L;

pub const METHODS: &[Method] = &[
    method!("one.vm.attachsg", Write, Auth::Object, attach),
    method!("one.vm.detachsg", Write, Auth::Object, detach),
];

/// Whether the group's rules are pushed to the VM now (`is_update`), or an error in the states
/// where they cannot be changed.
fn update_now(v: &VmRow) -> Result<bool, String> {
    if rules_blocked(v.state, v.lcm_state) {
        return Err(format!(
            "VM {} is in wrong state {}",
            v.head.owned.oid,
            state_str(v)
        ));
    }
    if v.state != state::ACTIVE {
        return Ok(false);
    }
    Ok(matches!(
        L::from_i64(v.lcm_state),
        Some(
            L::Running
                | L::Hotplug
                | L::HotplugSnapshot
                | L::HotplugSaveas
                | L::HotplugResize
                | L::DiskSnapshot
                | L::DiskSnapshotDelete
                | L::DiskResize,
        )
    ))
}

/// Whether a VM in `state`/`lcm` cannot have its rules changed (booting, migrating, a NIC
/// being plugged, unknown): `attach_sg` refuses it, `trigger_updatesg` puts it in ERROR.
pub fn rules_blocked(state: i64, lcm: i64) -> bool {
    state == state::ACTIVE
        && matches!(
            L::from_i64(lcm),
            Some(
                L::Boot
                    | L::BootMigrate
                    | L::BootSuspended
                    | L::BootStopped
                    | L::BootUndeploy
                    | L::BootPoweroff
                    | L::BootUnknown
                    | L::BootFailure
                    | L::BootMigrateFailure
                    | L::BootUndeployFailure
                    | L::BootStoppedFailure
                    | L::Migrate
                    | L::HotplugNic
                    | L::HotplugNicPoweroff
                    | L::Unknown,
            )
        )
}

fn groups_of(pairs: &[(String, String)]) -> Vec<i64> {
    template::vector_get(pairs, "SECURITY_GROUPS")
        .unwrap_or("")
        .split(',')
        .filter_map(|g| g.trim().parse().ok())
        .collect()
}

fn set_groups(pairs: &mut Vec<(String, String)>, groups: &[i64]) {
    pairs.retain(|(k, _)| k != "SECURITY_GROUPS");
    let list: Vec<String> = groups.iter().map(i64::to_string).collect();
    pairs.push(("SECURITY_GROUPS".into(), list.join(",")));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
}

/// Changes NIC `nic_id` of VM `id` with `change` (its groups, to be written back), and the
/// VM's place in group `sgid`: kept while any NIC still has it.
async fn change_nic(
    ctx: &Ctx,
    s: &Session,
    id: i64,
    nic_id: i64,
    sgid: i64,
    change: impl Fn(&VmRow, &mut Vec<i64>) -> Result<(), String>,
) -> MethodResult {
    let change = &change;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "sg-attach", MANAGE).await?,
            )
            .await?;
        let is_update = update_now(&v).map_err(|e| fail(code::ACTION, e))?;
        let mut t = Template::parse(&v.template).map_err(|e| {
            fail(
                code::INTERNAL,
                format!("The stored template does not parse: {e}"),
            )
        })?;
        let mut found = false;
        for a in t
            .attrs
            .iter_mut()
            .filter(|a| a.name == "NIC" || a.name == "NIC_ALIAS")
        {
            let template::Value::Vector(pairs) = &mut a.value else {
                continue;
            };
            let this = template::vector_get(pairs, "NIC_ID")
                .and_then(|n| n.trim().parse::<i64>().ok())
                == Some(nic_id);
            if this {
                let mut groups = groups_of(pairs);
                change(&v, &mut groups).map_err(|e| fail(code::ACTION, e))?;
                set_groups(pairs, &groups);
                found = true;
            }
        }
        if !found {
            return Err(fail(
                code::ACTION,
                format!("VM {id} doesn't have NIC id {nic_id}"),
            ));
        }
        let still = t
            .attrs
            .iter()
            .filter(|a| a.name == "NIC" || a.name == "NIC_ALIAS")
            .filter_map(|a| a.value.as_vector())
            .any(|pairs| groups_of(pairs).contains(&sgid));
        // `DispatchManager::attach_sg`/`detach_sg`: the group's rules afresh while a NIC has it.
        super::vm_sg_rules::remove_group(&mut t, sgid);
        if still {
            let rules =
                super::vm_sg_rules::of_groups(ctx, &std::collections::BTreeSet::from([sgid]))
                    .await?;
            super::vm_sg_rules::push(&mut t, rules);
        }
        let mut stmts = vec![sqlstore::objects::replace_template(
            rows::TABLE,
            "template",
            id,
            t.to_text(),
            v.template.clone(),
        )];
        if still {
            let st = if is_update {
                vm_state::UPDATING
            } else {
                vm_state::UPDATED
            };
            stmts.extend(sg_rows::set_vm(sgid, id, st));
        } else {
            stmts.push(sg_rows::remove_vm(sgid, id));
        }
        Ok(stmts)
    })
    .await
}

/// `one.vm.attachsg(id, nic_id, sg_id)`: the caller must USE the group.
pub async fn attach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let nic_id = p.int(1)? as i64;
    let sgid = p.int(2)? as i64;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "sg-attach", MANAGE).await?,
    )
    .await?;
    match super::secgroup::SECGROUPS
        .authorized(ctx, s, sgid, USE)
        .await
    {
        Ok(_) => {}
        Err(Failure::Api { code: c, .. }) if c == code::NO_EXISTS => {
            return Err(fail(
                code::ACTION,
                format!("Could not attach SG {sgid} to VM, SG does not exist"),
            ))
        }
        Err(f) => return Err(f),
    }
    change_nic(ctx, s, id, nic_id, sgid, |v, groups| {
        if groups.contains(&sgid) {
            return Err(format!(
                "VM {} SG {sgid} already in NIC {nic_id}",
                v.head.owned.oid
            ));
        }
        groups.push(sgid);
        Ok(())
    })
    .await
}

/// `one.vm.detachsg(id, nic_id, sg_id)`.
pub async fn detach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let nic_id = p.int(1)? as i64;
    let sgid = p.int(2)? as i64;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "sg-detach", MANAGE).await?,
    )
    .await?;
    change_nic(ctx, s, id, nic_id, sgid, |v, groups| {
        if !groups.contains(&sgid) {
            return Err(format!(
                "VM {} NIC {nic_id} doesn't contain SG {sgid}",
                v.head.owned.oid
            ));
        }
        groups.retain(|g| *g != sgid);
        Ok(())
    })
    .await
}
