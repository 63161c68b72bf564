//! `one.vm.attach` and `one.vm.detach`: disks hot-plugged into a RUNNING VM (HOTPLUG until the
//! leader's dummy driver is done) or into a POWEROFF one (HOTPLUG_PROLOG_POWEROFF /
//! HOTPLUG_EPILOG_POWEROFF, then POWEROFF again), as OpenNebula's `DispatchManager::attach` /
//! `detach`. An attached disk takes its image in the same write; a detached one gives it back.

use sqlstore::objects::vm::{self as rows, Move, VmRow};
use sqlstore::SqlStmt;
use template::Template;
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::quota::{Charge, Wording};
use super::vm::{lcm, now, state, VMS};
use super::vm_actions::number;
use super::vm_nics::state_str;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!("one.vm.attach", Write, Auth::Object, attach),
    method!("one.vm.detach", Write, Auth::Object, detach),
];

fn stored(v: &VmRow) -> Result<Template, Failure> {
    Template::parse(&v.template).map_err(|e| {
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// The hot-plug state a disk change moves the VM to: HOTPLUG when RUNNING, the POWEROFF
/// variant `off` when powered off; `None` in any other state.
fn hotplug(v: &VmRow, off: i64) -> Option<(i64, i64)> {
    match (v.state, v.lcm_state) {
        (state::ACTIVE, lcm::RUNNING) => Some((state::ACTIVE, lcm::HOTPLUG)),
        (state::POWEROFF, _) => Some((state::ACTIVE, off)),
        _ => None,
    }
}

/// The template's write, guarded by the text read, and the VM's move to `to`; a hot-plug ends
/// any rescheduling (`set_resched(false)`).
fn write_vm(v: &VmRow, t: &Template, to: (i64, i64)) -> Vec<SqlStmt> {
    let mut stmts = vec![sqlstore::objects::replace_template(
        rows::TABLE,
        "template",
        v.head.owned.oid,
        t.to_text(),
        v.template.clone(),
    )];
    stmts.extend(rows::move_stmts(&Move {
        oid: v.head.owned.oid,
        from: (v.state, v.lcm_state),
        to,
        now: now(),
        leaves_host: false,
    }));
    stmts.push(rows::clear_resched(v.head.owned.oid));
    stmts
}

/// `one.vm.attach(id, template)`: the template's DISK joins the VM with the next DISK_ID,
/// taking its image (which the caller must USE) under the owner's IMAGE quota.
pub async fn attach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    super::vrouter::refuse_disk_attach(ctx, id).await?;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "disk-attach", MANAGE).await?,
    )
    .await?;
    let tmpl = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    super::restricted::refuse_in_vm(ctx, s, &tmpl, "DISK")?;
    let disk = tmpl
        .get_all("DISK")
        .find_map(|a| a.value.as_vector())
        .map(<[_]>::to_vec)
        .ok_or_else(|| fail(code::INTERNAL, "No DISK in template."))?;
    let disk = &disk;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "disk-attach", MANAGE).await?,
            )
            .await?;
        let Some(to) = hotplug(&v, lcm::HOTPLUG_PROLOG_POWEROFF) else {
            quotas_before_state(ctx, s, &v, disk).await?;
            return Err(fail(
                code::ACTION,
                format!(
                    "Could not attach a new disk to VM {id}, wrong state {}.",
                    state_str(&v)
                ),
            ));
        };
        let mut t = stored(&v)?;
        // `set_up_attach`: after every disk's DISK_ID and the CONTEXT's.
        let next = ["DISK", "CONTEXT"]
            .iter()
            .flat_map(|k| t.get_all(k))
            .filter_map(|a| a.vector_get("DISK_ID"))
            .filter_map(|n| n.trim().parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        let mut disks = vec![disk.clone()];
        let taken = super::vm_disks::take_list(ctx, s, &mut disks, next, Some(id), false)
            .await
            .map_err(|f| match f {
                // An image the caller may not use is refused as the authorization refuses it.
                Failure::Api { code: c, message } if c != code::AUTHORIZATION => {
                    fail(code::ACTION, message)
                }
                other => other,
            })?;
        // `set_volatile_disk_info` of the new disks on the VM's system datastore.
        let mut new = Template::default();
        for mut d in disks {
            super::vm_disks::attached_target(&t, &mut d).map_err(|e| fail(code::ACTION, e))?;
            new.push("DISK", template::Value::Vector(d));
        }
        if let Some(h) = v.history.last() {
            super::vm_volatile::fill_on(ctx, &mut new, h.ds_id).await?;
        }
        t.attrs.extend(new.attrs);
        crate::limits::vm_vectors(&t).map_err(|e| fail(code::ACTION, e))?;
        for snaps in &taken.snaps {
            snaps.store(&mut t);
        }
        let mut stmts = write_vm(&v, &t, to);
        stmts.extend(super::vm_actions::closed_by(s, id, number::DISK_ATTACH));
        stmts.extend(taken.stmts);
        stmts.extend(quota_guards(ctx, s, &v, t.to_text(), &taken.asks).await?);
        Ok(stmts)
    })
    .await
}

/// `VirtualMachineAttach` weighs the owner's quotas for the disk (the VM's system disk size,
/// then the image's IMAGE and DATASTORE) before `DispatchManager::attach` looks at the VM's
/// state: an exceeded quota is the refusal, whatever the state. A disk that cannot be taken
/// at all leaves the state's refusal.
async fn quotas_before_state(
    ctx: &Ctx,
    s: &Session,
    v: &sqlstore::objects::vm::VmRow,
    disk: &[(String, String)],
) -> Result<(), Failure> {
    let mut disks = vec![disk.to_vec()];
    let Ok(taken) =
        super::vm_disks::take_list(ctx, s, &mut disks, 0, Some(v.head.owned.oid), false).await
    else {
        return Ok(());
    };
    let mut t = stored(v)?;
    for d in disks {
        t.push("DISK", template::Value::Vector(d));
    }
    quota_guards(ctx, s, v, t.to_text(), &taken.asks).await?;
    Ok(())
}

/// The guards of the owner's quotas a disk attach weighs, in `VirtualMachineAttach`'s order:
/// the VM's system disk size (`text`: its template with the disk), then the image's IMAGE and
/// DATASTORE (`asks`). The first exceeded one is the refusal.
async fn quota_guards(
    ctx: &Ctx,
    s: &Session,
    v: &sqlstore::objects::vm::VmRow,
    text: String,
    asks: &[super::quota::Ask],
) -> Result<Vec<SqlStmt>, Failure> {
    let (uid, gid) = (v.head.owned.uid, v.head.owned.gid);
    let cluster = super::quota::cluster_of(v);
    let mut guards: Vec<SqlStmt> = Vec::new();
    let owner = (uid, gid, cluster);
    guards.extend(super::quota::system_disk_guard(ctx, s, owner, &v.template, text).await?);
    for ask in asks {
        let charge = Charge {
            asks: std::slice::from_ref(ask),
            uid,
            gid,
            wording: Wording::Caller(s.uid),
        };
        guards.extend(charge.guard(ctx).await?);
    }
    Ok(guards)
}

/// `one.vm.detach(id, disk_id)`: the disk leaves the VM and its image is given back.
pub async fn detach(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let disk_id = p.int(1)? as i64;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "disk-detach", MANAGE).await?,
    )
    .await?;
    super::vrouter::refuse_disk_detach(ctx, id).await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "disk-detach", MANAGE).await?,
            )
            .await?;
        let Some(to) = hotplug(&v, lcm::HOTPLUG_EPILOG_POWEROFF) else {
            return Err(fail(
                code::ACTION,
                format!(
                    "Could not detach disk from VM {id}, wrong state {}.",
                    state_str(&v)
                ),
            ));
        };
        let t = stored(&v)?;
        let is_it = |a: &template::Attribute| {
            a.name == "DISK"
                && a.vector_get("DISK_ID")
                    .and_then(|n| n.trim().parse::<i64>().ok())
                    == Some(disk_id)
        };
        let Some(disk) = t.attrs.iter().find(|a| is_it(a)).cloned() else {
            return Err(fail(
                code::ACTION,
                format!("Could not detach disk with DISK_ID {disk_id}, it does not exist."),
            ));
        };
        let mut kept = t.clone();
        kept.attrs.retain(|a| !is_it(a));
        // The disk's snapshots go with it (to its image, below), not to a later disk.
        super::vm_disk_snaps::DiskSnaps::clear(&mut kept, disk_id);
        let mut stmts = write_vm(&v, &kept, to);
        stmts.extend(super::vm_actions::closed_by(s, id, number::DISK_DETACH));
        let image = disk
            .vector_get("IMAGE_ID")
            .and_then(|i| i.trim().parse::<i64>().ok());
        if let Some(image) = image {
            let d = disk.value.as_vector().unwrap_or_default();
            stmts.extend(super::image_snaps::hand_back_disk(&t, d, id, None));
            stmts.extend(super::storage::release_image(ctx, image, id, false).await?);
        }
        Ok(stmts)
    })
    .await
}
