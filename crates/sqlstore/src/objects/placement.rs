//! What placement reads and writes beside the VM and VM group rows: the hosts a group's VMs
//! are on, a new VM joining a role in its own insert, and the scheduler's SCHED_MESSAGE.

use crate::sql::{Conn, Optional};
use crate::{SqlStmt, SqlValue};

use wire::state::VmState;

/// The VM states that hold a host (as the host usage counts them).
pub(super) const ON_HOST: [VmState; 3] = [VmState::Active, VmState::Suspended, VmState::Poweroff];

/// The VMs that hold host `hid` (those its RUNNING_VMS counts), by id.
pub fn vms_on(c: &Conn, hid: i64) -> crate::sql::Result<Vec<i64>> {
    // `hid >= 0` lets SQLite use `vm_pool_host`, whose index holds only placed VMs.
    let mut st = c.prepare_cached(
        "SELECT oid FROM vm_pool WHERE hid = ?1 AND hid >= 0 AND state IN (?2, ?3, ?4)
         ORDER BY oid",
    )?;
    let mut params = vec![SqlValue::Int(hid)];
    params.extend(ON_HOST.iter().map(|s| SqlValue::Int(s.as_i64())));
    let rows = st.query_map(params, |r| r.get(0))?;
    rows.collect()
}

/// The last oid handed out to a VM: the next VM is this plus one.
pub fn last_vm_oid(c: &Conn) -> crate::sql::Result<i64> {
    c.prepare_cached("SELECT last_oid FROM pool_control WHERE tablename = ?1")?
        .query_row([super::vm::TABLE], |r| r.get(0))
}

/// Group `oid`'s roles become `roles`, in the insert of VM `vid`: only if the roles and
/// template are still `was` and `vid` is still the next VM oid (statements of an insert run
/// before the counter moves), so a concurrent change makes the VM's insert compute again.
pub fn join_new_vm(oid: i64, roles: String, was: (String, String), vid: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vmgroup_pool SET roles = ?2
         WHERE oid = ?1 AND roles = ?3 AND template = ?4
           AND (SELECT last_oid + 1 FROM pool_control WHERE tablename = 'vm_pool') = ?5",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(roles),
            SqlValue::Text(was.0),
            SqlValue::Text(was.1),
            SqlValue::Int(vid),
        ],
    )
    .must_match()
}

/// A group as placement reads it: oid, roles, template.
pub type GroupRules = (i64, String, String);

/// Group `oid`'s roles and template.
pub fn group(c: &Conn, oid: i64) -> crate::sql::Result<Option<GroupRules>> {
    c.prepare_cached("SELECT oid, roles, template FROM vmgroup_pool WHERE oid = ?1")?
        .query_row([oid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
}

/// Up to `limit` groups with a VM in a role, of oids above `after`, lowest first.
pub fn groups_with_vms(c: &Conn, after: i64, limit: usize) -> crate::sql::Result<Vec<GroupRules>> {
    c.prepare_cached(
        "SELECT oid, roles, template FROM vmgroup_pool WHERE roles LIKE '%VMS=%' AND oid > ?2
         ORDER BY oid LIMIT ?1",
    )?
    .query_map([limit as i64, after], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect()
}

/// VM `oid`'s state and the host it holds (`None` if it holds none); `None` if there is no
/// such VM.
pub fn vm_host(c: &Conn, oid: i64) -> crate::sql::Result<Option<(i64, Option<i64>)>> {
    let row: Option<(i64, i64)> = c
        .prepare_cached("SELECT state, hid FROM vm_pool WHERE oid = ?1")?
        .query_row([oid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.map(|(state, hid)| {
        let holds = hid >= 0 && ON_HOST.iter().any(|s| s.as_i64() == state);
        (state, holds.then_some(hid))
    }))
}

/// VM `oid`'s user template.
pub fn user_template(c: &Conn, oid: i64) -> crate::sql::Result<Option<String>> {
    c.prepare_cached("SELECT user_template FROM vm_pool WHERE oid = ?1")?
        .query_row([oid], |r| r.get(0))
        .optional()
}

/// VM `oid`'s user template becomes `text` (the scheduler's SCHED_MESSAGE), while it is
/// PENDING and its user template is still `was` (else it matches nothing, and the scheduler
/// reads it again next period).
pub fn set_sched_message(oid: i64, text: String, was: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vm_pool SET user_template = ?2 WHERE oid = ?1 AND user_template = ?3 AND state = ?4",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(text),
            SqlValue::Text(was),
            SqlValue::Int(VmState::Pending.as_i64()),
        ],
    )
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

    fn refused(c: &Conn, stmt: SqlStmt) -> bool {
        let txn = crate::SqlTxn { stmts: vec![stmt] };
        matches!(
            crate::txn::apply_txn(c, &txn).unwrap(),
            crate::TxnOutcome::Failed(e) if e.kind == crate::TxnErrorKind::NotFound
        )
    }

    #[test]
    fn a_vm_joins_a_role_only_as_the_next_vm_of_an_unchanged_group() {
        on_both_backends(|c| {
            let roles = "ROLE=[ ID=\"0\", NAME=\"a\" ]\n".to_string();
            crate::txn::run_all(
                c,
                &[
                    super::super::vmgroup::insert("g", 0, 0, 0o600, roles.clone(), String::new()),
                    super::super::next_oid(super::super::vmgroup::TABLE),
                ],
            )
            .unwrap();
            let next = last_vm_oid(c).unwrap() + 1;
            let was = (roles.clone(), String::new());
            assert!(refused(
                c,
                join_new_vm(0, "X".into(), was.clone(), next + 1)
            ));
            assert!(refused(
                c,
                join_new_vm(0, "X".into(), ("old".into(), String::new()), next)
            ));
            crate::txn::run_all(c, &[join_new_vm(0, "X".into(), was, next)]).unwrap();
            assert_eq!(group(c, 0).unwrap().unwrap().1, "X");
            assert_eq!(groups_with_vms(c, -1, 10).unwrap(), vec![]);
            assert_eq!(vm_host(c, 12345).unwrap(), None);
        });
    }

    #[test]
    fn a_host_device_is_taken_by_one_vm_at_a_time() {
        on_both_backends(|c| {
            use super::super::pci;
            crate::txn::run_all(c, &[pci::take(3, "00:02.0", 7)]).unwrap();
            assert!(crate::txn::run_all(c, &[pci::take(3, "00:02.0", 8)]).is_err());
            crate::txn::run_all(c, &[pci::take(4, "00:02.0", 8)]).unwrap();
            assert_eq!(pci::taken(c, 3).unwrap(), vec!["00:02.0".to_string()]);
            crate::txn::run_all(c, &[pci::free(7, "00:02.0")]).unwrap();
            assert!(pci::taken(c, 3).unwrap().is_empty());
            assert!(!pci::any_held_by_done(c).unwrap());
        });
    }

    #[test]
    fn a_plan_changes_only_from_the_state_it_was_read_in() {
        on_both_backends(|c| {
            use super::super::plan;
            crate::txn::run_all(c, &[plan::set(0, 0, "A".into(), None)]).unwrap();
            assert!(crate::txn::run_all(c, &[plan::set(0, 0, "B".into(), None)]).is_err());
            assert!(refused(
                c,
                plan::set(0, 1, "B".into(), Some((1, "A".into())))
            ));
            crate::txn::run_all(c, &[plan::set(0, 1, "B".into(), Some((0, "A".into())))]).unwrap();
            assert_eq!(plan::in_state(c, 1).unwrap(), vec![(0, 1, "B".to_string())]);
            assert!(refused(c, plan::delete(0, 0, "B".into())));
            crate::txn::run_all(c, &[plan::delete(0, 1, "B".into())]).unwrap();
            assert_eq!(plan::load(c, 0).unwrap(), None);
            let (hosts, vms) = plan::cluster_load(c, 0).unwrap();
            assert!(hosts.is_empty() && vms.is_empty());
        });
    }
}
