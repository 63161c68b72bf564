//! Backup jobs (`backupjob_pool`, OpenNebula's table name): a list of VMs backed up together
//! into one datastore, by priority, on a schedule. The VMs' progress through a run (OpenNebula's
//! UPDATED, OUTDATED, BACKING_UP and ERROR collections) are rows of `backupjob_vm`, so a VM's
//! backup finishing moves it with one statement that needs no read of the job.

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "backupjob_pool";

/// Which collection of its job a VM is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Updated = 0,
    Outdated = 1,
    BackingUp = 2,
    Error = 3,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackupJobRow {
    pub head: Head,
    pub lock: Lock,
    pub priority: i64,
    pub last_time: i64,
    pub last_duration: i64,
    pub template: String,
    /// (vid, list) in vid order.
    pub vms: Vec<(i64, i64)>,
}

has_owner!(lockable BackupJobRow);

impl BackupJobRow {
    /// The VMs in `list`, in id order.
    pub fn in_list(&self, list: List) -> Vec<i64> {
        self.vms
            .iter()
            .filter(|(_, l)| *l == list as i64)
            .map(|(v, _)| *v)
            .collect()
    }
}

fn read(c: &Conn, r: &Row) -> crate::sql::Result<BackupJobRow> {
    let (head, lock, at) = Lock::head_and_lock(r)?;
    let vms = c
        .prepare_cached("SELECT vid, coll FROM backupjob_vm WHERE job = ?1 ORDER BY vid")?
        .query_map([head.owned.oid], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BackupJobRow {
        head,
        lock,
        priority: r.get(at)?,
        last_time: r.get(at + 1)?,
        last_duration: r.get(at + 2)?,
        template: r.get(at + 3)?,
        vms,
    })
}

pub static ROWS: Rows<BackupJobRow> = Rows {
    select: owned_select!(
        lockable "backupjob_pool",
        "b",
        "b.priority, b.last_time, b.last_duration, b.template"
    ),
    alias: "b",
    read,
};

/// A new job; the oid comes from the counter ([`super::next_oid`]).
pub fn insert(name: &str, uid: i64, gid: i64, perms: i64, priority: i64, text: String) -> SqlStmt {
    insert_next(
        TABLE,
        "name, uid, gid, perms, priority, last_time, last_duration, template",
        "?1, ?2, ?3, ?4, ?5, 0, 0, ?6",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(uid),
            SqlValue::Int(gid),
            SqlValue::Int(perms),
            SqlValue::Int(priority),
            SqlValue::Text(text),
        ],
    )
}

/// Job `oid`'s template becomes `new` if it is still `was`.
pub fn set_template(oid: i64, new: String, was: String) -> SqlStmt {
    super::replace_template(TABLE, "template", oid, new, was)
}

/// Job `oid`'s priority.
pub fn set_priority(oid: i64, priority: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE backupjob_pool SET priority = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Int(priority)],
    )
    .must_match()
}

/// `BackupJob::execute`: matches nothing (refusing the transaction) while a VM of job `oid` is
/// OUTDATED or BACKING_UP; else records the run's start.
pub fn start_run(oid: i64, now: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE backupjob_pool SET last_time = ?2 WHERE oid = ?1 AND NOT EXISTS
           (SELECT 1 FROM backupjob_vm WHERE job = ?1 AND coll IN (1, 2))",
        vec![SqlValue::Int(oid), SqlValue::Int(now)],
    )
    .must_match()
}

/// Every VM of job `oid` leaves its collections.
pub fn clear_vms(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM backupjob_vm WHERE job = ?1",
        vec![SqlValue::Int(oid)],
    )
}

/// VMs of job `oid` in `from` leave it.
pub fn clear_list(oid: i64, from: List) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM backupjob_vm WHERE job = ?1 AND coll = ?2",
        vec![SqlValue::Int(oid), SqlValue::Int(from as i64)],
    )
}

/// VM `vid` of job `oid` is in `list` (wherever it was).
pub fn put_vm(oid: i64, vid: i64, list: List) -> Vec<SqlStmt> {
    vec![
        drop_vm(oid, vid),
        SqlStmt::new(
            "INSERT INTO backupjob_vm (job, vid, coll) VALUES (?1, ?2, ?3)",
            vec![
                SqlValue::Int(oid),
                SqlValue::Int(vid),
                SqlValue::Int(list as i64),
            ],
        ),
    ]
}

/// VM `vid` leaves job `oid`'s collections.
pub fn drop_vm(oid: i64, vid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM backupjob_vm WHERE job = ?1 AND vid = ?2",
        vec![SqlValue::Int(oid), SqlValue::Int(vid)],
    )
}

/// Every VM of job `oid` in `from` moves to `to` (`BackupJob::retry`: ERROR to OUTDATED).
pub fn move_list(oid: i64, from: List, to: List) -> SqlStmt {
    SqlStmt::new(
        "UPDATE backupjob_vm SET coll = ?3 WHERE job = ?1 AND coll = ?2",
        vec![
            SqlValue::Int(oid),
            SqlValue::Int(from as i64),
            SqlValue::Int(to as i64),
        ],
    )
}

/// VM `vid`, OUTDATED in job `oid`, starts its backup: matches nothing if it is not OUTDATED
/// any more (a cancel or another leader's start came first).
pub fn vm_started(oid: i64, vid: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE backupjob_vm SET coll = 2 WHERE job = ?1 AND vid = ?2 AND coll = 1",
        vec![SqlValue::Int(oid), SqlValue::Int(vid)],
    )
    .must_match()
}

/// `BackupJob::backup_finished`: VM `vid`, BACKING_UP in job `oid`, is UPDATED (or ERROR),
/// and the run's duration is now; nothing if the job was cancelled or deleted meanwhile.
pub fn vm_finished(oid: i64, vid: i64, ok: bool, now: i64) -> Vec<SqlStmt> {
    let list = if ok { List::Updated } else { List::Error };
    vec![
        SqlStmt::new(
            "UPDATE backupjob_vm SET coll = ?3 WHERE job = ?1 AND vid = ?2 AND coll = 2",
            vec![
                SqlValue::Int(oid),
                SqlValue::Int(vid),
                SqlValue::Int(list as i64),
            ],
        ),
        SqlStmt::new(
            "UPDATE backupjob_pool SET last_duration = ?2 - last_time WHERE oid = ?1",
            vec![SqlValue::Int(oid), SqlValue::Int(now)],
        ),
    ]
}

/// Jobs with OUTDATED VMs that can start a backup, highest priority first
/// (`BackupJobPool::active`): a VM never placed has none to take (OpenNebula skips it, "the VM
/// doesn't have history") and stays OUTDATED, so jobs holding only such VMs are left out, or
/// `limit` of them (any user's) would hold back every other job for good. A VM gone or DONE
/// (6) still counts: the runner takes it out of its job.
pub fn active(c: &Conn, limit: i64) -> crate::sql::Result<Vec<BackupJobRow>> {
    let sql = format!(
        "{} WHERE EXISTS (SELECT 1 FROM backupjob_vm x WHERE x.job = b.oid AND x.coll = 1
             AND (EXISTS (SELECT 1 FROM history h WHERE h.vid = x.vid)
               OR NOT EXISTS (SELECT 1 FROM vm_pool v WHERE v.oid = x.vid AND v.state <> 6)))
         ORDER BY b.priority DESC, b.oid LIMIT ?1",
        ROWS.select
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st
        .query_map([limit], |r| read(c, r))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Up to `limit` jobs with scheduled actions, of ids above `after`, lowest first.
pub fn scheduled(c: &Conn, after: i64, limit: i64) -> crate::sql::Result<Vec<BackupJobRow>> {
    let sql = format!(
        "{} WHERE b.template LIKE '%SCHED_ACTION%' AND b.oid > ?2 ORDER BY b.oid LIMIT ?1",
        ROWS.select
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st
        .query_map([limit, after], |r| read(c, r))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes job `oid` and its VMs' rows.
pub fn delete(oid: i64) -> Vec<SqlStmt> {
    vec![
        clear_vms(oid),
        super::delete(TABLE, oid),
        super::acl::drop_rules_on(wire::acl::BACKUPJOB, oid),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::sql::Location;

    fn on_both_backends(test: impl Fn(&Conn)) {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            test(&c);
        }
    }

    fn row(c: &Conn, oid: i64) -> BackupJobRow {
        c.query_row(&ROWS.by_id(), [oid], |r| read(c, r)).unwrap()
    }

    fn refused(c: &Conn, stmts: Vec<SqlStmt>) -> bool {
        matches!(
            crate::txn::apply_txn(c, &crate::SqlTxn { stmts }).unwrap(),
            crate::TxnOutcome::Failed(e) if e.kind == crate::TxnErrorKind::NotFound
        )
    }

    #[test]
    fn a_run_moves_its_vms_through_the_collections_once() {
        on_both_backends(|c| {
            let last = super::super::backup::last_oid(c, TABLE).unwrap();
            assert_eq!(last, -1);
            crate::txn::run_all(
                c,
                &[
                    super::super::backup::counter_is(TABLE, last),
                    insert("nightly", 0, 0, 0o600, 50, "BACKUP_VMS=\"3,4\"\n".into()),
                    super::super::next_oid(TABLE),
                ],
            )
            .unwrap();
            assert!(
                refused(c, vec![super::super::backup::counter_is(TABLE, last)]),
                "the counter moved"
            );
            let mut start = vec![start_run(0, 100), clear_vms(0)];
            start.extend(put_vm(0, 3, List::Outdated));
            start.extend(put_vm(0, 4, List::Outdated));
            crate::txn::run_all(c, &start).unwrap();
            assert!(refused(c, vec![start_run(0, 101)]), "a run is pending");
            crate::txn::run_all(c, &[vm_started(0, 3)]).unwrap();
            assert!(refused(c, vec![vm_started(0, 3)]), "started once");
            crate::txn::run_all(c, &vm_finished(0, 3, true, 130)).unwrap();
            let j = row(c, 0);
            assert_eq!(j.in_list(List::Updated), vec![3]);
            assert_eq!(j.in_list(List::Outdated), vec![4]);
            assert_eq!((j.last_time, j.last_duration), (100, 30));
            crate::txn::run_all(c, &[clear_list(0, List::Outdated)]).unwrap();
            crate::txn::run_all(c, &[start_run(0, 200)]).unwrap();
            crate::txn::run_all(c, &delete(0)).unwrap();
            let left: i64 = c
                .query_row("SELECT COUNT(*) FROM backupjob_vm", (), |r| r.get(0))
                .unwrap();
            assert_eq!(left, 0);
        });
    }
}
