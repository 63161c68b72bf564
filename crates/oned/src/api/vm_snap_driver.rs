//! The dummy drivers' success for VM snapshots and disk operations, on the leader: a VM left
//! in HOTPLUG_SNAPSHOT, DISK_SNAPSHOT*, DISK_RESIZE* or HOTPLUG_SAVEAS* gets its template
//! finished as OpenNebula's `LifeCycleManager::trigger_*_success` does, and goes back to the
//! state it came from. Unlike the plain steps of `crate::scheduler`, each needs the template
//! rewritten, so each VM is one replicated write guarded by the template and state it read.

use sqlstore::objects::vm::{self as rows, VmRow};
use sqlstore::{ReadPool, SqlTxn};
use tracing::debug;
use wire::LcmState as L;

use super::vm::{lcm, state};
use crate::cluster::Cluster;
use crate::tasks::TaskCtx;

/// VMs finished per pass, at most.
const BATCH: i64 = 32;

/// Each transient LCM state and the (state, lcm) its success leaves.
const DONE: &[(L, (i64, i64))] = &[
    (L::HotplugSnapshot, (state::ACTIVE, lcm::RUNNING)),
    (L::DiskSnapshot, (state::ACTIVE, lcm::RUNNING)),
    (L::DiskSnapshotDelete, (state::ACTIVE, lcm::RUNNING)),
    (L::DiskSnapshotPoweroff, (state::POWEROFF, lcm::INIT)),
    (L::DiskSnapshotRevertPoweroff, (state::POWEROFF, lcm::INIT)),
    (L::DiskSnapshotDeletePoweroff, (state::POWEROFF, lcm::INIT)),
    (L::DiskSnapshotSuspended, (state::SUSPENDED, lcm::INIT)),
    (
        L::DiskSnapshotDeleteSuspended,
        (state::SUSPENDED, lcm::INIT),
    ),
    (L::DiskResize, (state::ACTIVE, lcm::RUNNING)),
    (L::DiskResizePoweroff, (state::POWEROFF, lcm::INIT)),
    (L::DiskResizeUndeployed, (state::UNDEPLOYED, lcm::INIT)),
    (L::HotplugSaveas, (state::ACTIVE, lcm::RUNNING)),
    (L::HotplugSaveasPoweroff, (state::POWEROFF, lcm::INIT)),
    (L::HotplugSaveasSuspended, (state::SUSPENDED, lcm::INIT)),
    (L::HotplugSaveasUndeployed, (state::UNDEPLOYED, lcm::INIT)),
    (L::HotplugSaveasStopped, (state::STOPPED, lcm::INIT)),
];

fn waiting(c: &sqlstore::Conn) -> Result<Vec<VmRow>, sqlstore::SqlError> {
    let states = DONE
        .iter()
        .map(|(l, _)| l.as_i64().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "{} WHERE v.state = ?1 AND v.lcm_state IN ({states}) ORDER BY v.oid LIMIT {BATCH}",
        rows::ROWS.select
    );
    let mut st = c.prepare_cached(&sql)?;
    let found = st
        .query_map([state::ACTIVE], |r| (rows::ROWS.read)(c, r))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(found)
}

/// The write that finishes VM `v`'s operation, if it is in one.
fn finish_txn(v: &VmRow) -> Option<SqlTxn> {
    let (from, to) = DONE.iter().find(|(l, _)| l.as_i64() == v.lcm_state)?;
    let mut t = template::Template::parse(&v.template).ok()?;
    let more = match from {
        L::HotplugSnapshot => {
            super::vm_snapshots::finish(&mut t);
            Vec::new()
        }
        _ => super::vm_disk_ops::finish(&mut t, *from),
    };
    let mut stmts = super::vm_snapshots::write_vm(v, &t, *to);
    stmts.extend(more);
    Some(SqlTxn { stmts })
}

/// One pass: every VM waiting for the driver (a batch) is finished. A failed read or write is
/// logged and tried again at the next pass.
pub async fn pass(ctx: &TaskCtx, cluster: &Cluster, pool: &ReadPool) {
    let vms = match crate::db::read(pool, waiting).await {
        Ok(vms) => vms,
        Err(e) => {
            ctx.warn("reading VMs in snapshot or disk operations failed", &e);
            return;
        }
    };
    for v in &vms {
        let Some(txn) = finish_txn(v) else {
            continue;
        };
        if let Err(e) = cluster.write(txn).await {
            match e {
                consensus::WriteError::NotLeader => debug!(error = %e, "not the leader any more"),
                // Changed meanwhile: read again next pass.
                _ => debug!(error = %e, vm = v.head.owned.oid, "finishing a disk operation"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use template::Template;
    use wire::LcmState as L;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    #[test]
    fn the_driver_finishes_system_snapshots_as_opennebulas_success() {
        let mut created = t(
            "SNAPSHOT = [ ACTION = CREATE, ACTIVE = YES, HYPERVISOR_ID = \"\", SNAPSHOT_ID = 0 ]",
        );
        super::super::vm_snapshots::finish(&mut created);
        let s = created.vector("SNAPSHOT").unwrap();
        assert_eq!(template::vector_get(s, "HYPERVISOR_ID"), Some("dummy-snap"));
        assert_eq!(template::vector_get(s, "ACTIVE"), None);
        let mut deleted = t("SNAPSHOT = [ SNAPSHOT_ID = 0 ]\nSNAPSHOT = [ ACTION = DELETE, ACTIVE = YES, SNAPSHOT_ID = 1 ]");
        super::super::vm_snapshots::finish(&mut deleted);
        assert_eq!(deleted.get_all("SNAPSHOT").count(), 1);
    }

    #[test]
    fn the_driver_finishes_disk_resizes_and_saves() {
        let mut resized = t("DISK = [ DISK_ID = 0, IMAGE_ID = 4, PERSISTENT = YES, RESIZE = YES, SIZE = 32, SIZE_PREV = 16 ]");
        let more = super::super::vm_disk_ops::finish(&mut resized, L::DiskResizePoweroff);
        let d = resized.vector("DISK").unwrap();
        assert_eq!(
            (
                template::vector_get(d, "RESIZE"),
                template::vector_get(d, "SIZE_PREV")
            ),
            (None, None)
        );
        assert_eq!(more.len(), 1, "the persistent image takes the new size");
        let mut saved = t("DISK = [ DISK_ID = 0, HOTPLUG_SAVE_AS_ACTIVE = YES, HOTPLUG_SAVE_AS_SNAPSHOT_ID = -1 ]");
        assert!(super::super::vm_disk_ops::finish(&mut saved, L::HotplugSaveas).is_empty());
        assert_eq!(saved.vector("DISK").unwrap().len(), 1);
    }
}
