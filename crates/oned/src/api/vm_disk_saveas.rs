//! `one.vm.disksaveas(id, disk_id, name, type, snap_id)`, as OpenNebula's
//! `VirtualMachineDiskSaveas`: a new image in the disk's image datastore, LOCKED until the
//! dummy datastore driver made it READY (`super::images::driver_results`), while the VM is
//! HOTPLUG_SAVEAS* (finished by `super::vm_snap_driver`). The image and the VM's move are one
//! write, under the caller's DATASTORE quota.

use sqlstore::objects::image as irows;
use template::{Template, Value};
use wire::LcmState as L;
use xmlrpc::Params;

use super::images::TYPES;
use super::method::{Auth, Method};
use super::perms::{caller, MANAGE, USE};
use super::quota::{Ask, Charge, Wording};
use super::storage::{DATASTORES, IMAGES};
use super::vm::{lcm, state, VMS};
use super::vm_disk_ops::{disk, edit_disk};
use super::vm_disk_snaps::DiskSnaps;
use super::vm_snapshots::{stored, write_vm};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[method!("one.vm.disksaveas", Write, Auth::Object, saveas)];

/// Image types that cannot be saved from a disk.
const NOT_SAVED: [i64; 4] = [3, 4, 5, 6];

/// `VirtualMachine::set_saveas_state`.
fn saveas_state(v: &sqlstore::objects::vm::VmRow) -> Option<(i64, i64)> {
    let to = match (v.state, v.lcm_state) {
        (state::ACTIVE, lcm::RUNNING) => L::HotplugSaveas,
        (state::POWEROFF, _) => L::HotplugSaveasPoweroff,
        (state::SUSPENDED, _) => L::HotplugSaveasSuspended,
        (state::UNDEPLOYED, _) => L::HotplugSaveasUndeployed,
        (state::STOPPED, _) => L::HotplugSaveasStopped,
        _ => return None,
    };
    Some((state::ACTIVE, to.as_i64()))
}

pub async fn saveas(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let disk_id = p.int(1)? as i64;
    let name = p.string(2)?.to_string();
    let kind_name = p.string(3)?.to_string();
    let snap_id = if p.0.len() > 4 { p.int(4)? as i64 } else { -1 };
    let v = VMS.get(ctx, id).await?;
    if saveas_state(&v).is_none() {
        return Err(fail(
            code::INTERNAL,
            "VM has to be RUNNING, POWEROFF or SUSPENDED to save disks.",
        ));
    }
    let t = stored(&v)?;
    let cannot = |why: &str| fail(code::INTERNAL, format!("Cannot use DISK. {why}"));
    let d = disk(&t, disk_id).ok_or_else(|| cannot("DISK does not exist."))?;
    let image: i64 = template::vector_get(&d, "IMAGE_ID")
        .and_then(|i| i.trim().parse().ok())
        .ok_or_else(|| cannot("DISK does not have a valid IMAGE_ID."))?;
    if snap_id != -1
        && DiskSnaps::load(&t, disk_id)
            .and_then(|s| s.get(snap_id).cloned())
            .is_none()
    {
        return Err(cannot("Snapshot does not exist."));
    }
    let size: i64 = template::vector_get(&d, "SIZE")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let orig = IMAGES.get(ctx, image).await?;
    if NOT_SAVED.contains(&orig.kind) {
        let kind = TYPES.get(orig.kind as usize).copied().unwrap_or("");
        return Err(fail(
            code::INTERNAL,
            format!("Cannot save_as image of type {kind}"),
        ));
    }
    let ds = DATASTORES.get(ctx, orig.datastore_id).await?;
    if super::images::no_room(ctx, &ds, size) {
        return Err(fail(code::ACTION, "Not enough space in datastore"));
    }

    // The new image's template (`ImageTemplate` as the request builds it).
    let it = Template::parse(&orig.template).unwrap_or_default();
    let mut nt = Template::default();
    let single = |v: String| Value::Single(v);
    nt.push("NAME", single(name.clone()));
    nt.push("SIZE", single(size.to_string()));
    nt.push("SAVED_IMAGE_ID", single(image.to_string()));
    nt.push("SAVED_DISK_ID", single(disk_id.to_string()));
    nt.push("SAVED_VM_ID", single(id.to_string()));
    nt.push("SAVE_AS_HOT", single("YES".into()));
    let kind_name = if kind_name.is_empty() {
        TYPES
            .get(orig.kind as usize)
            .copied()
            .unwrap_or("OS")
            .to_string()
    } else {
        kind_name.to_ascii_uppercase()
    };
    let kind = TYPES
        .iter()
        .position(|k| *k == kind_name)
        .map(|k| k as i64)
        .unwrap_or(orig.kind);
    nt.push("TYPE", single(kind_name));
    for k in ["TARGET", "DEV_PREFIX"] {
        if let Some(val) = it.single(k).filter(|v| !v.is_empty()) {
            nt.push(k, single(val.to_string()));
        }
    }
    super::images::test_set_persistent(ctx, s, &mut nt, false).await?;

    // One authorization: MANAGE the VM, create an image, USE its datastore.
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "disk-saveas", MANAGE).await?,
    )
    .await?;
    let c = caller(ctx, s).await?;
    let mut why = Vec::new();
    if !c.may_create(IMAGES.kind) {
        why.push("Not authorized to perform CREATE IMAGE".to_string());
    }
    why.extend(DATASTORES.refusal(&c, &ds, USE));
    super::granted_unless(s, &why)?;
    let allocate_error = |why: String| {
        fail(
            code::ALLOCATE,
            format!("Error allocating a new image. {why}"),
        )
    };
    super::validate::object_name(&name).map_err(allocate_error)?;
    let fields =
        super::images::take_fields(ctx, &mut nt, kind, None, true).map_err(allocate_error)?;
    let ask = Ask {
        kind: "DATASTORE",
        rid: ds.head.owned.oid,
        amounts: vec![("SIZE", size as f64), ("IMAGES", 1.0)],
        scope: Default::default(),
    };
    let charge = Charge {
        asks: std::slice::from_ref(&ask),
        uid: s.uid,
        gid: s.gid,
        wording: Wording::Caller(s.uid),
    };
    let insert = irows::insert(irows::NewImage {
        name: name.clone(),
        uid: s.uid,
        gid: s.gid,
        perms: super::umask::new_object(ctx, s),
        kind,
        persistent: fields.persistent,
        regtime: super::vm::now(),
        path: fields.path,
        size,
        state: super::storage::LOCKED,
        datastore_id: ds.head.owned.oid,
        template: nt.to_text(),
        source: String::new(),
        format: if orig.format.is_empty() {
            fields.format
        } else {
            orig.format.clone()
        },
        fs: fields.fs,
        cloning_id: -1,
        disk_type: super::ds_conf::disk_type_number(&ds.template, ds.kind) as i64,
    });
    // The VM's move, guarded by the template and state just read; then the quota guard.
    let v = VMS.get(ctx, id).await?;
    let to = saveas_state(&v).ok_or_else(|| {
        fail(
            code::INTERNAL,
            "VM has to be RUNNING, POWEROFF or SUSPENDED to save disks.",
        )
    })?;
    let mut t = stored(&v)?;
    edit_disk(&mut t, disk_id, |d| {
        d.retain(|(k, _)| !k.starts_with("HOTPLUG_SAVE_AS"));
        d.push(("HOTPLUG_SAVE_AS_ACTIVE".into(), "YES".into()));
        d.push(("HOTPLUG_SAVE_AS_SNAPSHOT_ID".into(), snap_id.to_string()));
        d.sort_by(|a, b| a.0.cmp(&b.0));
    });
    let mut with = write_vm(&v, &t, to);
    let vm_stmts = with.len();
    let guard = charge.guard(ctx).await?;
    let guarded = guard.is_some();
    with.extend(guard);
    let mut refused_at = None;
    let new = super::writes::New {
        what: "image",
        kind: "IMAGE",
        name: &name,
        refusal: super::writes::Refusal::Allocate,
        owner: Some(s.uid),
    };
    let result = super::writes::allocate_next_refused(ctx, irows::TABLE, insert, with, new, |r| {
        refused_at = Some(r.stmt)
    })
    .await;
    match (result, refused_at) {
        (Err(_), Some(n)) if guarded && n == vm_stmts + 1 => Err(charge.lost_race(ctx).await),
        (Err(_), Some(n)) if (1..=vm_stmts).contains(&n) => Err(fail(
            code::INTERNAL,
            "VM has to be RUNNING, POWEROFF or SUSPENDED to save disks.",
        )),
        (
            Err(Failure::Api {
                code: c, message, ..
            }),
            _,
        ) if c == code::INTERNAL => Err(fail(code::ALLOCATE, message)),
        (other, _) => other,
    }
}
