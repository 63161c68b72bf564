//! Disk snapshots and disk resize of a VM, as OpenNebula's `VirtualMachineDiskSnapshot*`,
//! `VirtualMachineDiskResize` and `DispatchManager::disk_snapshot_*` / `disk_resize`: the
//! disk's snapshots (`super::vm_disk_snaps`) change on RUNNING (DISK_SNAPSHOT*), POWEROFF
//! (DISK_SNAPSHOT_*_POWEROFF) and SUSPENDED VMs; the leader's dummy driver finishes them
//! (`super::vm_snap_driver`). A snapshot or a bigger disk is checked against the quotas it
//! would count for: the image datastore's SIZE for a persistent disk (charged to the image's
//! owner), the VM's SYSTEM_DISK_SIZE for a disk cloned into the system datastore.

use std::sync::atomic::{AtomicI64, Ordering};

use sqlstore::objects::vm::VmRow;
use sqlstore::{SqlStmt, SqlValue};
use template::{vector_put_sorted as put, Template, Value};
use wire::LcmState as L;
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::quota::{Ask, Charge, Wording};
use super::storage::IMAGES;
use super::vm::{lcm, now, state, VMS};
use super::vm_actions::{closed_by, number};
use super::vm_disk_snaps::{DiskSnaps, Orphans};
use super::vm_nics::state_str;
use super::vm_snapshots::{stored, write_vm};
use super::vm_volatile::is_volatile;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!(
        "one.vm.disksnapshotcreate",
        Write,
        Auth::Object,
        snap_create
    ),
    method!(
        "one.vm.disksnapshotrevert",
        Write,
        Auth::Object,
        snap_revert
    ),
    method!(
        "one.vm.disksnapshotdelete",
        Write,
        Auth::Object,
        snap_delete
    ),
    method!(
        "one.vm.disksnapshotrename",
        Write,
        Auth::Object,
        snap_rename
    ),
    method!("one.vm.diskresize", Write, Auth::Object, resize),
];

/// The longest snapshot name accepted.
const NAME_MAX: usize = 1024;

type Pairs = Vec<(String, String)>;

fn get(d: &[(String, String)], k: &str) -> String {
    template::vector_get(d, k).unwrap_or("").trim().to_string()
}

/// DISK `disk_id` of `t`.
pub fn disk(t: &Template, disk_id: i64) -> Option<Pairs> {
    t.get_all("DISK")
        .filter_map(|a| a.value.as_vector())
        .find(|d| get(d, "DISK_ID").parse() == Ok(disk_id))
        .map(<[_]>::to_vec)
}

/// Applies `f` to DISK `disk_id` of `t`.
pub fn edit_disk(t: &mut Template, disk_id: i64, f: impl FnOnce(&mut Pairs)) {
    for a in t.attrs.iter_mut().filter(|a| a.name == "DISK") {
        if let Value::Vector(d) = &mut a.value {
            if get(d, "DISK_ID").parse() == Ok(disk_id) {
                f(d);
                return;
            }
        }
    }
}

fn is_persistent(d: &[(String, String)]) -> bool {
    get(d, "PERSISTENT").eq_ignore_ascii_case("YES")
}

/// `VirtualMachineDisk::resize_quotas` with the dummy TM (LN_TARGET NONE, CLONE_TARGET
/// SYSTEM): what growing disk `d` by `delta` MB asks of the quotas, and of whom (the image's
/// owner for a persistent disk, the VM's owner otherwise).
async fn disk_charge(
    ctx: &Ctx,
    s: &Session,
    v: &VmRow,
    d: &[(String, String)],
    delta: i64,
) -> Result<Option<SqlStmt>, Failure> {
    let image = match charged_image(d) {
        // Whose quotas it weighs on; the caller was authorized on it ([`vm_and_image`]).
        Some(img) => Some(IMAGES.get(ctx, img).await?),
        None => None,
    };
    let (ask, uid, gid) = disk_ask(v, d, delta, image.as_ref());
    Charge {
        asks: std::slice::from_ref(&ask),
        uid,
        gid,
        wording: Wording::Caller(s.uid),
    }
    .guard(ctx)
    .await
}

/// `vm_authorization` with a persistent disk's image (`img`): `right` on VM `v` and MANAGE on
/// the image asked in one request, every refusal named; a missing image is NO_EXISTS first.
async fn vm_and_image(
    ctx: &Ctx,
    s: &Session,
    v: &VmRow,
    right: u64,
    img: Option<i64>,
) -> Result<(), Failure> {
    let image = match img {
        Some(img) => Some(IMAGES.get(ctx, img).await?),
        None => None,
    };
    let c = super::perms::caller(ctx, s).await?;
    let image_refusal = image.as_ref().and_then(|i| IMAGES.refusal(&c, i, MANAGE));
    let why: Vec<String> = VMS
        .refusal(&c, v, right)
        .into_iter()
        .chain(image_refusal)
        .collect();
    super::granted_unless(s, &why)
}

fn vm_disk(t: &Template, disk_id: i64) -> Result<Pairs, Failure> {
    disk(t, disk_id).ok_or_else(|| fail(code::ACTION, "VM disk does not exist"))
}

/// Where a disk snapshot create or delete moves the VM from RUNNING, POWEROFF or SUSPENDED.
fn snap_state(v: &VmRow, running: L, poweroff: L, suspended: L) -> Option<(i64, i64)> {
    let to = match (v.state, v.lcm_state) {
        (state::ACTIVE, lcm::RUNNING) => running,
        (state::POWEROFF, lcm::INIT) => poweroff,
        (state::SUSPENDED, lcm::INIT) => suspended,
        _ => return None,
    };
    Some((state::ACTIVE, to.as_i64()))
}

/// `one.vm.disksnapshotcreate(id, disk_id, name)`: the new snapshot's id.
pub async fn snap_create(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let disk_id = p.int(1)? as i64;
    let name = p.string(2)?.to_string();
    if name.len() > NAME_MAX {
        return Err(fail(code::ACTION, "Snapshot name is too long"));
    }
    let v = VMS.get(ctx, id).await?;
    super::vm_backup::refuse_snapshots(&stored(&v)?, "disk-snapshot-create")?;
    let d = vm_disk(&stored(&v)?, disk_id)?;
    if is_volatile(&d) {
        return Err(fail(
            code::ACTION,
            "Cannot make snapshots on volatile disks",
        ));
    }
    let right = super::vm_ops::right(ctx, s, "disk-snapshot-create", MANAGE).await?;
    vm_and_image(ctx, s, &v, right, charged_image(&d)).await?;
    let size: i64 = get(&d, "SIZE").parse().unwrap_or(0);
    // Checked first, as OpenNebula does before the state; again with each attempt below.
    disk_charge(ctx, s, &v, &d, size).await?;
    let made = AtomicI64::new(-1);
    let (name, made_ref) = (&name, &made);
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "disk-snapshot-create", MANAGE).await?,
            )
            .await?;
        let mut t = stored(&v)?;
        let made = snap_create_edit(&v, &mut t, disk_id, name)?;
        made_ref.store(made.snap_id, Ordering::Relaxed);
        let mut stmts = write_vm(&v, &t, made.to);
        stmts.extend(closed_by(s, id, number::DISK_SNAPSHOT_CREATE));
        stmts.extend(disk_charge(ctx, s, &v, &made.disk, made.size).await?);
        Ok(stmts)
    })
    .await?;
    Ok(xmlrpc::Value::Int(made.load(Ordering::Relaxed) as i32))
}

/// What [`snap_create_edit`] did: the VM's move, the new snapshot, the disk and its size (what
/// the quota is asked for, see [`disk_ask`]).
pub struct SnapMade {
    pub to: (i64, i64),
    pub snap_id: i64,
    pub disk: Pairs,
    pub size: i64,
}

/// `DispatchManager::disk_snapshot_create` on VM `v`'s template `t`: the state and disk checks
/// with OpenNebula's refusals, and the new snapshot marked active. Shared by the call and the
/// scheduled action.
pub fn snap_create_edit(
    v: &VmRow,
    t: &mut Template,
    disk_id: i64,
    name: &str,
) -> Result<SnapMade, Failure> {
    let id = v.head.owned.oid;
    if name.len() > NAME_MAX {
        return Err(fail(code::ACTION, "Snapshot name is too long"));
    }
    let d = vm_disk(t, disk_id)?;
    if is_volatile(&d) {
        return Err(fail(
            code::ACTION,
            "Cannot make snapshots on volatile disks",
        ));
    }
    let Some(to) = snap_state(
        v,
        L::DiskSnapshot,
        L::DiskSnapshotPoweroff,
        L::DiskSnapshotSuspended,
    ) else {
        return Err(fail(
            code::ACTION,
            format!(
                "Could not create a new snapshot for VM {id}, wrong state {}.",
                state_str(v)
            ),
        ));
    };
    let size: i64 = get(&d, "SIZE")
        .parse()
        .map_err(|_| fail(code::ACTION, "Wrong size in disk"))?;
    if get(&d, "READONLY").eq_ignore_ascii_case("YES") {
        return Err(fail(
            code::ACTION,
            "Cannot make snapshots on readonly disks",
        ));
    }
    let mut snaps = DiskSnaps::load(t, disk_id)
        .unwrap_or_else(|| DiskSnaps::new(disk_id, Orphans::of_disk(&d)));
    let snap_id = snaps.create(name, size, now());
    let total = snaps.total_size();
    snaps.store(t);
    edit_disk(t, disk_id, |d| {
        put(d, "DISK_SNAPSHOT_ACTIVE", Some("YES".into()));
        put(d, "DISK_SNAPSHOT_ID", Some(snap_id.to_string()));
        put(d, "DISK_SNAPSHOT_TOTAL_SIZE", Some(total.to_string()));
    });
    Ok(SnapMade {
        to,
        snap_id,
        disk: d,
        size,
    })
}

/// What a snapshot of `delta` MB of disk `d` of VM `v` asks of the quotas and of whom:
/// `image` is the persistent disk's image (its owner pays in its datastore), None for a disk
/// in the system datastore (the VM's owner pays SYSTEM_DISK_SIZE).
pub fn disk_ask(
    v: &VmRow,
    d: &[(String, String)],
    delta: i64,
    image: Option<&sqlstore::objects::image::ImageRow>,
) -> (Ask, i64, i64) {
    match image {
        Some(i) => {
            let ds: i64 = get(d, "DATASTORE_ID").parse().unwrap_or(i.datastore_id);
            let ask = Ask {
                kind: "DATASTORE",
                rid: ds,
                amounts: vec![("SIZE", delta as f64), ("IMAGES", 0.0)],
                scope: Default::default(),
            };
            (ask, i.head.owned.uid, i.head.owned.gid)
        }
        None => {
            let ask = Ask::vm(vec![("SYSTEM_DISK_SIZE", delta as f64)])
                .within(super::quota::cluster_of(v));
            (ask, v.head.owned.uid, v.head.owned.gid)
        }
    }
}

/// The image of disk `d` whose owner its snapshots are charged to: a persistent disk's.
pub fn charged_image(d: &[(String, String)]) -> Option<i64> {
    (!is_volatile(d) && is_persistent(d)).then(|| get(d, "IMAGE_ID").parse().unwrap_or(-1))
}

/// `DispatchManager::disk_snapshot_revert` on VM `v`'s template `t` (POWEROFF only): the
/// VM's move. Shared by the call and the scheduled action.
pub fn snap_revert_edit(
    v: &VmRow,
    t: &mut Template,
    disk_id: i64,
    snap_id: i64,
) -> Result<(i64, i64), Failure> {
    let id = v.head.owned.oid;
    if (v.state, v.lcm_state) != (state::POWEROFF, lcm::INIT) {
        return Err(fail(
            code::ACTION,
            format!(
                "Could not revert to disk snapshot for VM {id}, wrong state {}.",
                state_str(v)
            ),
        ));
    }
    let snaps = disk_snaps(t, disk_id)?;
    if snaps.get(snap_id).is_none() {
        return Err(fail(
            code::ACTION,
            format!("Disk id ({disk_id}) or snapshot id ({snap_id}) is not valid."),
        ));
    }
    mark(t, disk_id, snap_id);
    Ok((state::ACTIVE, L::DiskSnapshotRevertPoweroff.as_i64()))
}

/// `DispatchManager::disk_snapshot_delete` on VM `v`'s template `t`: the VM's move. Shared by
/// the call and the scheduled action.
pub fn snap_delete_edit(
    v: &VmRow,
    t: &mut Template,
    disk_id: i64,
    snap_id: i64,
) -> Result<(i64, i64), Failure> {
    let id = v.head.owned.oid;
    let Some(to) = snap_state(
        v,
        L::DiskSnapshotDelete,
        L::DiskSnapshotDeletePoweroff,
        L::DiskSnapshotDeleteSuspended,
    ) else {
        return Err(fail(
            code::ACTION,
            format!(
                "Could not delete disk snapshot from VM {id}, wrong state {}.",
                state_str(v)
            ),
        ));
    };
    let snaps = disk_snaps(t, disk_id)?;
    let d = vm_disk(t, disk_id)?;
    snaps
        .test_delete(snap_id, is_persistent(&d))
        .map_err(|e| fail(code::ACTION, e))?;
    mark(t, disk_id, snap_id);
    Ok(to)
}

/// Marks the snapshot a revert or delete works on (`set_snapshot_disk`).
pub(super) fn mark(t: &mut Template, disk_id: i64, snap_id: i64) {
    edit_disk(t, disk_id, |d| {
        put(d, "DISK_SNAPSHOT_ACTIVE", Some("YES".into()));
        put(d, "DISK_SNAPSHOT_ID", Some(snap_id.to_string()));
    });
}

/// The disk's snapshots, or OpenNebula's `get_disk_snapshots` refusal.
fn disk_snaps(t: &Template, disk_id: i64) -> Result<DiskSnaps, Failure> {
    vm_disk(t, disk_id)?;
    DiskSnaps::load(t, disk_id).ok_or_else(|| fail(code::ACTION, "Snapshot does not exist"))
}

/// `one.vm.disksnapshotrevert(id, disk_id, snap_id)`: POWEROFF only.
pub async fn snap_revert(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let disk_id = p.int(1)? as i64;
    let snap_id = p.int(2)? as i64;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "disk-snapshot-revert", MANAGE).await?,
    )
    .await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "disk-snapshot-revert", MANAGE).await?,
            )
            .await?;
        let mut t = stored(&v)?;
        let to = snap_revert_edit(&v, &mut t, disk_id, snap_id)?;
        let mut stmts = write_vm(&v, &t, to);
        stmts.extend(closed_by(s, id, number::DISK_SNAPSHOT_REVERT));
        Ok(stmts)
    })
    .await
}

/// `one.vm.disksnapshotdelete(id, disk_id, snap_id)`.
pub async fn snap_delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let disk_id = p.int(1)? as i64;
    let snap_id = p.int(2)? as i64;
    let v = VMS.get(ctx, id).await?;
    let d = vm_disk(&stored(&v)?, disk_id)?;
    let image = is_persistent(&d).then(|| get(&d, "IMAGE_ID").parse().unwrap_or(-1));
    let right = super::vm_ops::right(ctx, s, "disk-snapshot-delete", MANAGE).await?;
    vm_and_image(ctx, s, &v, right, image).await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "disk-snapshot-delete", MANAGE).await?,
            )
            .await?;
        let mut t = stored(&v)?;
        let to = snap_delete_edit(&v, &mut t, disk_id, snap_id)?;
        let mut stmts = write_vm(&v, &t, to);
        stmts.extend(closed_by(s, id, number::DISK_SNAPSHOT_DELETE));
        Ok(stmts)
    })
    .await
}

/// `one.vm.disksnapshotrename(id, disk_id, snap_id, new_name)`: in any state, at once.
pub async fn snap_rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let disk_id = p.int(1)? as i64;
    let snap_id = p.int(2)? as i64;
    let name = p.string(3)?.to_string();
    if name.len() > NAME_MAX {
        return Err(fail(code::ACTION, "Snapshot name is too long"));
    }
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "disk-snapshot-rename", MANAGE).await?,
    )
    .await?;
    let name = &name;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "disk-snapshot-rename", MANAGE).await?,
            )
            .await?;
        let mut t = stored(&v)?;
        vm_disk(&t, disk_id)?;
        let mut snaps = DiskSnaps::load(&t, disk_id)
            .ok_or_else(|| fail(code::ACTION, "The VM does not have any snapshot"))?;
        snaps
            .rename(snap_id, name)
            .map_err(|e| fail(code::ACTION, e))?;
        snaps.store(&mut t);
        Ok(vec![sqlstore::objects::replace_template(
            sqlstore::objects::vm::TABLE,
            "template",
            id,
            t.to_text(),
            v.template.clone(),
        )])
    })
    .await
}

/// `one.vm.diskresize(id, disk_id, size)`: `size` (MB, a string) bigger than the disk's;
/// answers the disk id.
pub async fn resize(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let disk_id = p.int(1)? as i64;
    let size: i64 = p
        .string(2)?
        .parse()
        .map_err(|_| fail(code::ACTION, "Disk SIZE is not a valid integer"))?;
    let v = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, "disk-resize", MANAGE).await?,
        )
        .await?;
    let d = vm_disk(&stored(&v)?, disk_id)?;
    let current: i64 = get(&d, "SIZE").parse().unwrap_or(0);
    if size <= current {
        return Err(fail(
            code::ACTION,
            "New disk size has to be greater than current one",
        ));
    }
    // The second `vm_authorization`, with a persistent disk's image.
    if let Some(img) = charged_image(&d) {
        let right = super::vm_ops::right(ctx, s, "disk-resize", MANAGE).await?;
        vm_and_image(ctx, s, &v, right, Some(img)).await?;
    }
    disk_charge(ctx, s, &v, &d, size - current).await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "disk-resize", MANAGE).await?,
            )
            .await?;
        let to = match (v.state, v.lcm_state) {
            (state::ACTIVE, lcm::RUNNING) => L::DiskResize,
            (state::POWEROFF, lcm::INIT) => L::DiskResizePoweroff,
            (state::UNDEPLOYED, lcm::INIT) => L::DiskResizeUndeployed,
            _ => {
                return Err(fail(
                    code::ACTION,
                    format!(
                        "Could not resize disk for VM {id}, wrong state {}.",
                        state_str(&v)
                    ),
                ))
            }
        };
        let mut t = stored(&v)?;
        let d = disk(&t, disk_id).ok_or_else(|| fail(code::ACTION, "Disk not found"))?;
        let prev: i64 = get(&d, "SIZE")
            .parse()
            .map_err(|_| fail(code::ACTION, "Wrong format for disk SIZE"))?;
        if size <= prev {
            return Err(fail(
                code::ACTION,
                "New size has to be bigger than current one",
            ));
        }
        edit_disk(&mut t, disk_id, |d| {
            put(d, "SIZE_PREV", Some(prev.to_string()));
            put(d, "SIZE", Some(size.to_string()));
            put(d, "RESIZE", Some("YES".into()));
        });
        let mut stmts = write_vm(&v, &t, (state::ACTIVE, to.as_i64()));
        stmts.extend(closed_by(s, id, number::DISK_RESIZE));
        stmts.extend(disk_charge(ctx, s, &v, &d, size - prev).await?);
        Ok(stmts)
    })
    .await?;
    Ok(xmlrpc::Value::Int(disk_id as i32))
}

/// The disk a snapshot operation works on and the snapshot: (DISK_ID, DISK_SNAPSHOT_ID).
fn marked(t: &Template) -> Option<(i64, i64)> {
    t.get_all("DISK")
        .filter_map(|a| a.value.as_vector())
        .find(|d| get(d, "DISK_SNAPSHOT_ACTIVE") == "YES")
        .and_then(|d| {
            Some((
                get(d, "DISK_ID").parse().ok()?,
                get(d, "DISK_SNAPSHOT_ID").parse().ok()?,
            ))
        })
}

/// The dummy driver's success for a VM in `from` (a DISK_SNAPSHOT*, DISK_RESIZE* or
/// HOTPLUG_SAVEAS* state): `trigger_disk_snapshot_success`, `trigger_disk_resize_success`,
/// `trigger_saveas_success` on the template; and the statements beyond the VM's (a resized
/// persistent disk's image takes its new size, the dummy TM linking it in place).
pub fn finish(t: &mut Template, from: L) -> Vec<SqlStmt> {
    let mut stmts = Vec::new();
    match from {
        L::DiskResize | L::DiskResizePoweroff | L::DiskResizeUndeployed => {
            for a in t.attrs.iter_mut().filter(|a| a.name == "DISK") {
                if let Value::Vector(d) = &mut a.value {
                    if get(d, "RESIZE") == "YES" {
                        put(d, "RESIZE", None);
                        put(d, "SIZE_PREV", None);
                        let image = get(d, "IMAGE_ID").parse::<i64>().ok();
                        let size = get(d, "SIZE").parse::<i64>().ok();
                        if let (Some(image), Some(size), true) = (image, size, is_persistent(d)) {
                            stmts.push(SqlStmt::new(
                                "UPDATE image_pool SET size = ?2 WHERE oid = ?1",
                                vec![SqlValue::Int(image), SqlValue::Int(size)],
                            ));
                        }
                    }
                }
            }
        }
        L::HotplugSaveas
        | L::HotplugSaveasPoweroff
        | L::HotplugSaveasSuspended
        | L::HotplugSaveasUndeployed
        | L::HotplugSaveasStopped => {
            for a in t.attrs.iter_mut().filter(|a| a.name == "DISK") {
                if let Value::Vector(d) = &mut a.value {
                    d.retain(|(k, _)| !k.starts_with("HOTPLUG_SAVE_AS"));
                }
            }
        }
        _ => {
            let Some((disk_id, snap_id)) = marked(t) else {
                return stmts;
            };
            let Some(mut snaps) = DiskSnaps::load(t, disk_id) else {
                return stmts;
            };
            let mut size = None;
            match from {
                L::DiskSnapshotDelete
                | L::DiskSnapshotDeletePoweroff
                | L::DiskSnapshotDeleteSuspended => snaps.delete(snap_id),
                L::DiskSnapshotRevertPoweroff => size = Some(snaps.revert(snap_id).unwrap_or(0)),
                // A snapshot made is the active one (`revert_snapshot(id, false)`).
                _ => snaps.activate(snap_id, false),
            }
            let total = snaps.total_size();
            snaps.store(t);
            edit_disk(t, disk_id, |d| {
                put(d, "DISK_SNAPSHOT_ACTIVE", None);
                put(d, "DISK_SNAPSHOT_ID", None);
                put(d, "DISK_SNAPSHOT_TOTAL_SIZE", Some(total.to_string()));
                if let Some(size) = size.filter(|s| *s > 0) {
                    put(d, "SIZE", Some(size.to_string()));
                }
            });
        }
    }
    stmts
}
