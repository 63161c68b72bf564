//! What VM backups need beyond the image and VM rows: the image counter a backup's new image
//! id is read from, and a guard that it has not moved, so the VM's BACKUP_IDS (template text,
//! written in the same transaction) names the id the insert takes.

use crate::sql::Conn;
use crate::{SqlStmt, SqlValue};

/// `table`'s `pool_control` counter: the last oid handed out.
pub fn last_oid(c: &Conn, table: &str) -> crate::sql::Result<i64> {
    c.prepare_cached("SELECT last_oid FROM pool_control WHERE tablename = ?1")?
        .query_row([table], |r| r.get(0))
}

/// Matches nothing (so the transaction is refused) unless `table`'s counter is still `was`.
pub fn counter_is(table: &str, was: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE pool_control SET last_oid = last_oid WHERE tablename = ?1 AND last_oid = ?2",
        vec![SqlValue::Text(table.to_string()), SqlValue::Int(was)],
    )
    .must_match()
}

/// What a backup in progress holds of its owner's DATASTORE quota and of the target datastore
/// (`VirtualMachineBackup::request_execute` reserves it): one row per VM in BACKUP or
/// BACKUP_POWEROFF, inserted by the write that starts the backup and deleted by the one that
/// ends it, so usage read from `image_pool` plus these rows never counts a backup twice.
pub struct Reservation {
    pub vid: i64,
    pub uid: i64,
    pub gid: i64,
    pub datastore_id: i64,
    pub size: i64,
    pub images: i64,
}

/// Which VMs hold their reservation (alias `v`): those still in BACKUP or BACKUP_POWEROFF,
/// so a row left by a VM that left the state another way (recover) counts for nothing.
pub const IN_BACKUP: &str = "v.state = 3 AND v.lcm_state IN (69, 70)";

/// Reserves `r`, replacing what a VM that left BACKUP without ending it may have left.
pub fn reserve(r: &Reservation) -> Vec<SqlStmt> {
    vec![
        release(r.vid),
        SqlStmt::new(
            "INSERT INTO backup_reserve (vid, uid, gid, datastore_id, size, images)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            vec![
                SqlValue::Int(r.vid),
                SqlValue::Int(r.uid),
                SqlValue::Int(r.gid),
                SqlValue::Int(r.datastore_id),
                SqlValue::Int(r.size),
                SqlValue::Int(r.images),
            ],
        ),
    ]
}

/// Gives VM `vid`'s reservation back (none is fine: a backup started before reservations).
pub fn release(vid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM backup_reserve WHERE vid = ?1",
        vec![SqlValue::Int(vid)],
    )
}

/// MB reserved by backups in progress into datastore `ds`.
pub fn reserved_in(c: &Conn, ds: i64) -> crate::sql::Result<i64> {
    let sql = format!(
        "SELECT COALESCE(SUM(r.size), 0) FROM backup_reserve AS r JOIN vm_pool AS v
         ON v.oid = r.vid WHERE r.datastore_id = ?1 AND {IN_BACKUP}"
    );
    c.prepare_cached(&sql)?.query_row([ds], |r| r.get(0))
}

/// A backup image's increment chain `new` (a text template) and size, while it is still `old`.
pub fn set_increments(oid: i64, new: String, old: String, size: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE image_pool SET increments = ?2, size = ?4 WHERE oid = ?1 AND increments = ?3",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(new),
            SqlValue::Text(old),
            SqlValue::Int(size),
        ],
    )
    .must_match()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_backup_names_the_backup_states() {
        let active = wire::VmState::Active.as_i64();
        let (b, bp) = (
            wire::LcmState::Backup.as_i64(),
            wire::LcmState::BackupPoweroff.as_i64(),
        );
        assert_eq!(
            IN_BACKUP,
            format!("v.state = {active} AND v.lcm_state IN ({b}, {bp})")
        );
    }
}
