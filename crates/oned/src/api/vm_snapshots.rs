//! `one.vm.snapshotcreate`, `snapshotrevert` and `snapshotdelete`, as OpenNebula's
//! `DispatchManager::snapshot_*`: a RUNNING VM's SNAPSHOT vectors (SNAPSHOT_ID, NAME, TIME,
//! HYPERVISOR_ID, SYSTEM_DISK_SIZE), the one being worked on ACTIVE with its ACTION while the
//! VM is HOTPLUG_SNAPSHOT; the leader's dummy driver finishes it (`super::vm_snap_driver`).

use std::sync::atomic::{AtomicI64, Ordering};

use sqlstore::objects::vm::{self as rows, Move, VmRow};
use sqlstore::SqlStmt;
use template::{Template, Value};
use xmlrpc::Params;

use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::quota::{Ask, Charge, Wording};
use super::vm::{lcm, now, state, VMS};
use super::vm_nics::state_str;
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;

pub const METHODS: &[Method] = &[
    method!("one.vm.snapshotcreate", Write, Auth::Object, create),
    method!("one.vm.snapshotrevert", Write, Auth::Object, revert),
    method!("one.vm.snapshotdelete", Write, Auth::Object, delete),
];

/// The longest snapshot name accepted (OpenNebula has none; a client must not grow a
/// template without bound).
const NAME_MAX: usize = 1024;

pub const HOTPLUG_SNAPSHOT: i64 = wire::LcmState::HotplugSnapshot.as_i64();

pub fn stored(v: &VmRow) -> Result<Template, Failure> {
    Template::parse(&v.template).map_err(|e| {
        fail(
            code::INTERNAL,
            format!("The stored template does not parse: {e}"),
        )
    })
}

/// The template's write, guarded by the text read, and the VM's move to `to`.
pub fn write_vm(v: &VmRow, t: &Template, to: (i64, i64)) -> Vec<SqlStmt> {
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
    // `snapshot_create/revert/delete` end any rescheduling.
    stmts.push(rows::clear_resched(v.head.owned.oid));
    stmts
}

fn running(v: &VmRow) -> bool {
    v.state == state::ACTIVE && v.lcm_state == lcm::RUNNING
}

fn snap_id(a: &template::Attribute) -> Option<i64> {
    a.vector_get("SNAPSHOT_ID")
        .and_then(|n| n.trim().parse().ok())
}

/// oned.conf's VM_SNAPSHOT_FACTOR (0 unless set).
fn snapshot_factor(ctx: &Ctx) -> f64 {
    factor_of(&ctx.config)
}

/// VM_SNAPSHOT_FACTOR of `config` (0 unless set).
pub fn factor_of(config: &crate::config::Config) -> f64 {
    config
        .raw
        .single("VM_SNAPSHOT_FACTOR")
        .and_then(|f| f.trim().parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 0.0)
        .unwrap_or(0.0)
}

/// `VirtualMachineDisks::system_ds_size(false)` with the dummy TM: the volatile disks and the
/// images cloned into the system datastore (the non-persistent ones).
fn system_ds_size(t: &Template) -> i64 {
    t.get_all("DISK")
        .filter(|d| {
            let persistent = d
                .vector_get("PERSISTENT")
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("YES"));
            !persistent
        })
        .filter_map(|d| d.vector_get("SIZE"))
        .filter_map(|s| s.trim().parse::<i64>().ok())
        .sum()
}

/// `VirtualMachine::new_snapshot`: the SNAPSHOT vector and its id (one more than the
/// highest); SYSTEM_DISK_SIZE is the memory plus the system datastore's disks times `factor`.
fn new_snapshot(t: &Template, v: &VmRow, name: &str, factor: f64) -> (i64, Vec<(String, String)>) {
    let id = t
        .get_all("SNAPSHOT")
        .filter_map(snap_id)
        .max()
        .map_or(0, |m| m + 1);
    let name = if name.is_empty() {
        format!("snapshot-{id}")
    } else {
        name.to_string()
    };
    let snap = vec![
        ("ACTION".to_string(), "CREATE".to_string()),
        ("ACTIVE".into(), "YES".into()),
        ("HYPERVISOR_ID".into(), String::new()),
        ("NAME".into(), name),
        ("SNAPSHOT_ID".into(), id.to_string()),
        (
            "SYSTEM_DISK_SIZE".into(),
            ((system_ds_size(t) as f64 * factor) as i64 + v.memory).to_string(),
        ),
        ("TIME".into(), now().to_string()),
    ];
    (id, snap)
}

/// `one.vm.snapshotcreate(id, name)`: the new snapshot's id.
pub async fn create(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    if name.len() > NAME_MAX {
        return Err(fail(code::ACTION, "Snapshot name is too long"));
    }
    let v = VMS
        .authorized(
            ctx,
            s,
            id,
            super::vm_ops::right(ctx, s, "snapshot-create", MANAGE).await?,
        )
        .await?;
    super::vm_backup::refuse_snapshots(&stored(&v)?, "snapshot-create")?;
    // The quota asks for what the new snapshot would hold, as OpenNebula checks it first.
    let factor = snapshot_factor(ctx);
    let (_, snap) = new_snapshot(&stored(&v)?, &v, &name, factor);
    let size: f64 = template::vector_get(&snap, "SYSTEM_DISK_SIZE")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let ask = Ask::vm(vec![("SYSTEM_DISK_SIZE", size)]).within(super::quota::cluster_of(&v));
    let charge = Charge {
        asks: std::slice::from_ref(&ask),
        uid: v.head.owned.uid,
        gid: v.head.owned.gid,
        wording: Wording::Caller(s.uid),
    };
    // Checked first, as OpenNebula does before the state; again with each attempt below.
    charge.guard(ctx).await?;
    let made = AtomicI64::new(-1);
    let (name, made_ref, charge) = (&name, &made, &charge);
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "snapshot-create", MANAGE).await?,
            )
            .await?;
        let mut t = stored(&v)?;
        let (snap_id, _) = create_edit(&v, &mut t, name, factor)?;
        made_ref.store(snap_id, Ordering::Relaxed);
        let mut stmts = write_vm(&v, &t, (state::ACTIVE, HOTPLUG_SNAPSHOT));
        stmts.extend(charge.guard(ctx).await?);
        Ok(stmts)
    })
    .await?;
    Ok(xmlrpc::Value::Int(made.load(Ordering::Relaxed) as i32))
}

/// `DispatchManager::snapshot_create` on VM `v`'s template `t`: refused unless RUNNING, the new
/// SNAPSHOT added (the VM goes to HOTPLUG_SNAPSHOT). Its id and its SYSTEM_DISK_SIZE, what the
/// quota is asked for. Shared by the call and the scheduled action.
pub fn create_edit(
    v: &VmRow,
    t: &mut Template,
    name: &str,
    factor: f64,
) -> Result<(i64, f64), Failure> {
    let id = v.head.owned.oid;
    if name.len() > NAME_MAX {
        return Err(fail(code::ACTION, "Snapshot name is too long"));
    }
    if !running(v) {
        return Err(fail(
            code::ACTION,
            format!(
                "Could not create a new snapshot for VM {id}, wrong state {}.",
                state_str(v)
            ),
        ));
    }
    let (snap_id, snap) = new_snapshot(t, v, name, factor);
    let size: f64 = template::vector_get(&snap, "SYSTEM_DISK_SIZE")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    t.push("SNAPSHOT", Value::Vector(snap));
    Ok((snap_id, size))
}

/// Revert (`action` REVERT) or delete (DELETE) snapshot `snap` of VM `v` in its template `t`:
/// refused unless RUNNING or if it does not exist; the VM goes to HOTPLUG_SNAPSHOT. Shared by
/// the calls and the scheduled actions.
pub fn mark_edit(v: &VmRow, t: &mut Template, snap: i64, action: &str) -> Result<(), Failure> {
    let id = v.head.owned.oid;
    let what = if action == "REVERT" {
        format!("Could not revert VM {id} to snapshot {snap}")
    } else {
        format!("Could not delete snapshot {snap} for VM {id}")
    };
    if !running(v) {
        return Err(fail(
            code::ACTION,
            format!("{what}, wrong state {}.", state_str(v)),
        ));
    }
    if !set_active(t, snap, action) {
        return Err(fail(code::ACTION, format!("{what}, it does not exist.")));
    }
    Ok(())
}

/// Marks snapshot `snap` ACTIVE with `action` (`set_active_snapshot`); false if it is not
/// there.
fn set_active(t: &mut Template, snap: i64, action: &str) -> bool {
    let Some(a) = t
        .attrs
        .iter_mut()
        .find(|a| a.name == "SNAPSHOT" && snap_id(a) == Some(snap))
    else {
        return false;
    };
    if let Value::Vector(pairs) = &mut a.value {
        pairs.retain(|(k, _)| k != "ACTIVE" && k != "ACTION");
        pairs.push(("ACTIVE".into(), "YES".into()));
        pairs.push(("ACTION".into(), action.into()));
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
    }
    true
}

/// Revert and delete: the snapshot ACTIVE with `action` and the VM HOTPLUG_SNAPSHOT; `what`
/// words OpenNebula's refusals (`revert VM 3 to snapshot 1`, `delete snapshot 1 for VM 3`).
async fn mark(ctx: &Ctx, s: &Session, p: Params<'_>, action: &'static str) -> MethodResult {
    let id = p.int(0)? as i64;
    let snap = p.int(1)? as i64;
    VMS.authorized(
        ctx,
        s,
        id,
        super::vm_ops::right(ctx, s, "snapshot", MANAGE).await?,
    )
    .await?;
    super::writes::write_computed(ctx, id, move || async move {
        let v = VMS
            .authorized(
                ctx,
                s,
                id,
                super::vm_ops::right(ctx, s, "snapshot", MANAGE).await?,
            )
            .await?;
        let mut t = stored(&v)?;
        let vm_mad = v.history.last().map_or("", |h| h.vm_mad.as_str());
        let keeps = super::ds_conf::vm_mad_says(&ctx.config.raw, vm_mad, "KEEP_SNAPSHOTS");
        if action == "DELETE" && v.state == state::POWEROFF && keeps {
            // `DispatchManager::snapshot_delete`: a driver that keeps snapshots deletes one of
            // a powered-off VM; the dummy driver's success comes at once, the VM stays off.
            let before = t.attrs.len();
            t.attrs
                .retain(|a| !(a.name == "SNAPSHOT" && snap_id(a) == Some(snap)));
            if t.attrs.len() == before {
                return Err(fail(
                    code::ACTION,
                    format!("Could not delete snapshot {snap} for VM {id}, it does not exist."),
                ));
            }
            return Ok(write_vm(&v, &t, (v.state, v.lcm_state)));
        }
        mark_edit(&v, &mut t, snap, action)?;
        Ok(write_vm(&v, &t, (state::ACTIVE, HOTPLUG_SNAPSHOT)))
    })
    .await?;
    // OpenNebula answers its untouched `resp_id` here: -1, not the VM's id.
    Ok(xmlrpc::Value::Int(-1))
}

/// `one.vm.snapshotrevert(id, snap_id)`.
pub async fn revert(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    mark(ctx, s, p, "REVERT").await
}

/// `one.vm.snapshotdelete(id, snap_id)`.
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    mark(ctx, s, p, "DELETE").await
}

/// The dummy driver's success on a HOTPLUG_SNAPSHOT VM's template
/// (`LifeCycleManager::trigger_snapshot_*_success`): a created snapshot gets the driver's
/// HYPERVISOR_ID, a deleted one goes; the ACTIVE marker is cleared.
pub fn finish(t: &mut Template) {
    let Some(i) = t
        .attrs
        .iter()
        .position(|a| a.name == "SNAPSHOT" && a.vector_get("ACTIVE") == Some("YES"))
    else {
        return;
    };
    let action = t.attrs[i].vector_get("ACTION").unwrap_or("").to_string();
    if action == "DELETE" {
        t.attrs.remove(i);
        return;
    }
    if let Value::Vector(pairs) = &mut t.attrs[i].value {
        pairs.retain(|(k, _)| k != "ACTIVE" && k != "ACTION");
        if action == "CREATE" {
            pairs.retain(|(k, _)| k != "HYPERVISOR_ID");
            pairs.push(("HYPERVISOR_ID".into(), "dummy-snap".into()));
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
}
