//! Security groups (`secgroup_pool`), as OpenNebula's `SecurityGroup`, and the VMs using each
//! (`secgroup_vm`): one row per group and VM, in one of OpenNebula's four sets (updated,
//! outdated, updating, error). The sets are rows rather than lists in the group's body, so a
//! commit or a VM's release is one statement whatever the group holds.

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Rows, HEAD_COLUMNS};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "secgroup_pool";

/// OpenNebula's default security group, which every new network gets.
pub const DEFAULT_ID: i64 = 0;

/// The sets of `SecurityGroup`: `secgroup_vm.state`.
pub mod vm_state {
    /// Using the group's current rules.
    pub const UPDATED: i64 = 0;
    /// Using an older version of them; the driver is to update it.
    pub const OUTDATED: i64 = 1;
    /// Being updated by the driver.
    pub const UPDATING: i64 = 2;
    /// The driver failed to update it, or it was in a state it could not be updated in.
    pub const ERROR: i64 = 3;
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecGroupRow {
    pub head: Head,
    pub template: String,
    /// The VMs of each set, indexed by [`vm_state`], ids ascending.
    pub vms: [Vec<i64>; 4],
}

impl SecGroupRow {
    /// How many VMs use the group (`SecurityGroup::get_vms`).
    pub fn vm_count(&self) -> usize {
        self.vms.iter().map(Vec::len).sum()
    }
}

has_owner!(SecGroupRow);

fn read(c: &Conn, r: &Row) -> crate::sql::Result<SecGroupRow> {
    let head = Head::from_row(r)?;
    let oid = head.owned.oid;
    Ok(SecGroupRow {
        head,
        template: r.get(HEAD_COLUMNS)?,
        vms: vms_of(c, oid)?,
    })
}

pub static ROWS: Rows<SecGroupRow> = Rows {
    select: owned_select!("secgroup_pool", "s", "s.template"),
    alias: "s",
    read,
};

/// The VMs of group `oid`, by set.
pub fn vms_of(c: &Conn, oid: i64) -> crate::sql::Result<[Vec<i64>; 4]> {
    let mut sets: [Vec<i64>; 4] = Default::default();
    let mut st =
        c.prepare_cached("SELECT state, vid FROM secgroup_vm WHERE sgid = ?1 ORDER BY vid")?;
    let rows = st.query_map([oid], |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)))?;
    for row in rows {
        let (state, vid) = row?;
        // A state no version wrote is shown as outdated: the driver then brings it up to date.
        let set = usize::try_from(state).ok().filter(|s| *s < 4).unwrap_or(1);
        sets[set].push(vid);
    }
    Ok(sets)
}

/// The oid of `uid`'s group called `name`, if any (`SecurityGroupPool::exist`).
pub fn named(c: &Conn, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    use crate::sql::Optional;
    c.prepare_cached("SELECT oid FROM secgroup_pool WHERE name = ?1 AND uid = ?2")?
        .query_row((name, uid), |r| r.get(0))
        .optional()
}

/// Group `oid`'s name and template, without its VM lists (`SecurityGroup::get_rules` needs no
/// more, and group 0 lists every VM with a NIC).
pub fn rules_source(c: &Conn, oid: i64) -> crate::sql::Result<Option<(String, String)>> {
    use crate::sql::Optional;
    c.prepare_cached("SELECT name, template FROM secgroup_pool WHERE oid = ?1")?
        .query_row([oid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// A new group; the oid comes from the counter ([`super::next_oid`]). A name its owner already
/// uses is a constraint failure.
pub fn insert(name: &str, uid: i64, gid: i64, perms: i64, template: String) -> SqlStmt {
    insert_next(
        TABLE,
        "name, uid, gid, perms, template",
        "?1, ?2, ?3, ?4, ?5",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(uid),
            SqlValue::Int(gid),
            SqlValue::Int(perms),
            SqlValue::Text(template),
        ],
    )
}

/// Deletes group `oid` if no VM uses it and it is not the default one (a guard: it matches
/// nothing otherwise), with the ACL rules naming it, as `AclManager::del_resource_rules`.
pub fn delete(oid: i64) -> Vec<SqlStmt> {
    let rule = wire::acl::SECGROUP | wire::acl::INDIVIDUAL_ID | (oid as u64 & wire::acl::ID_MASK);
    vec![
        SqlStmt::new(
            "DELETE FROM secgroup_pool WHERE oid = ?1 AND oid <> ?2
             AND NOT EXISTS (SELECT 1 FROM secgroup_vm WHERE sgid = ?1)",
            vec![SqlValue::Int(oid), SqlValue::Int(DEFAULT_ID)],
        )
        .must_match(),
        SqlStmt::new(
            "DELETE FROM acl WHERE resource = ?1",
            vec![SqlValue::Int(rule as i64)],
        ),
    ]
}

/// Matches only while group `oid` exists: a guard for writes that change only its VM sets.
pub fn exists_guard(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "SELECT oid FROM secgroup_pool WHERE oid = ?1",
        vec![SqlValue::Int(oid)],
    )
    .must_match()
}

/// `SecurityGroup::commit(recover)`: the VMs in error or being updated become outdated, and
/// without `recover` the updated ones too, so the driver brings them all to the current rules.
pub fn commit(oid: i64, recover: bool) -> SqlStmt {
    use vm_state::*;
    let sql = if recover {
        "UPDATE secgroup_vm SET state = ?2 WHERE sgid = ?1 AND state IN (?3, ?4)"
    } else {
        "UPDATE secgroup_vm SET state = ?2 WHERE sgid = ?1 AND state IN (?3, ?4, ?5)"
    };
    let mut args = vec![
        SqlValue::Int(oid),
        SqlValue::Int(OUTDATED),
        SqlValue::Int(UPDATING),
        SqlValue::Int(ERROR),
    ];
    if !recover {
        args.push(SqlValue::Int(UPDATED));
    }
    SqlStmt::new(sql, args)
}

/// `SecurityGroupPool::get_security_group_rules` for a VM: VM `vid` uses group `sgid`, with
/// its current rules (`SecurityGroup::add_vm`). A VM already in one of its sets stays there.
pub fn add_vm(sgid: i64, vid: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT INTO secgroup_vm (sgid, vid, state)
         SELECT oid, ?2, ?3 FROM secgroup_pool WHERE oid = ?1
         AND NOT EXISTS (SELECT 1 FROM secgroup_vm WHERE sgid = ?1 AND vid = ?2)",
        vec![
            SqlValue::Int(sgid),
            SqlValue::Int(vid),
            SqlValue::Int(vm_state::UPDATED),
        ],
    )
}

/// VM `vid` is in group `sgid` in `state` (replacing whatever state it had there).
pub fn set_vm(sgid: i64, vid: i64, state: i64) -> Vec<SqlStmt> {
    vec![
        remove_vm(sgid, vid),
        SqlStmt::new(
            "INSERT INTO secgroup_vm (sgid, vid, state) SELECT oid, ?2, ?3 FROM secgroup_pool
             WHERE oid = ?1",
            vec![
                SqlValue::Int(sgid),
                SqlValue::Int(vid),
                SqlValue::Int(state),
            ],
        ),
    ]
}

/// VM `vid` leaves group `sgid`.
pub fn remove_vm(sgid: i64, vid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM secgroup_vm WHERE sgid = ?1 AND vid = ?2",
        vec![SqlValue::Int(sgid), SqlValue::Int(vid)],
    )
}

/// [`add_vm`] for the VM the same transaction creates (its id is the counter's next).
pub fn add_new_vm(sgid: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT INTO secgroup_vm (sgid, vid, state)
         SELECT oid, (SELECT last_oid + 1 FROM pool_control WHERE tablename = 'vm_pool'), ?2
         FROM secgroup_pool WHERE oid = ?1",
        vec![SqlValue::Int(sgid), SqlValue::Int(vm_state::UPDATED)],
    )
}

/// Every VM that is DONE leaves its groups (placed after the statements that end VMs).
pub fn release_done_vms() -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM secgroup_vm WHERE vid IN (SELECT oid FROM vm_pool WHERE state = 6)",
        vec![],
    )
}

/// `SecurityGroupPool::release_security_group` for every group of VM `vid`: it leaves them all.
pub fn release_vm(vid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM secgroup_vm WHERE vid = ?1",
        vec![SqlValue::Int(vid)],
    )
}

/// A VM outdated (or being updated) in a group, waiting for the network driver.
#[derive(Debug, Clone)]
pub struct PendingVm {
    pub sgid: i64,
    pub vid: i64,
    pub state: i64,
    pub lcm_state: i64,
    pub template: String,
}

/// At most `limit` of the VMs waiting for the network driver, by VM.
pub fn pending_vms(c: &Conn, limit: i64) -> crate::sql::Result<Vec<PendingVm>> {
    c.prepare_cached(
        "SELECT s.sgid, s.vid, v.state, v.lcm_state, v.template
         FROM secgroup_vm s JOIN vm_pool v ON v.oid = s.vid
         WHERE s.state IN (?1, ?2) ORDER BY s.vid, s.sgid LIMIT ?3",
    )?
    .query_map([vm_state::OUTDATED, vm_state::UPDATING, limit], |r| {
        Ok(PendingVm {
            sgid: r.get(0)?,
            vid: r.get(1)?,
            state: r.get(2)?,
            lcm_state: r.get(3)?,
            template: r.get(4)?,
        })
    })?
    .collect()
}

/// Matches only while group `oid` has template `template`: the rules a write copied into its
/// VMs are still its rules.
pub fn template_guard(oid: i64, template: &str) -> SqlStmt {
    SqlStmt::new(
        "SELECT oid FROM secgroup_pool WHERE oid = ?1 AND template = ?2",
        vec![SqlValue::Int(oid), SqlValue::Text(template.to_string())],
    )
    .must_match()
}

/// VM `vid` is now in `state` in group `sgid`, if it is still in it.
pub fn set_vm_state(sgid: i64, vid: i64, state: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE secgroup_vm SET state = ?3 WHERE sgid = ?1 AND vid = ?2",
        vec![
            SqlValue::Int(sgid),
            SqlValue::Int(vid),
            SqlValue::Int(state),
        ],
    )
}

/// Whether some VM waits for the dummy network driver.
pub fn dummy_pending(c: &Conn) -> crate::sql::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM secgroup_vm WHERE state IN (?1, ?2))",
        [vm_state::OUTDATED, vm_state::UPDATING],
        |r| r.get(0),
    )
}

/// `SecurityGroupPool`'s first start: group 0 `default` of oneadmin (owner `uma`, group and
/// others `u`), letting all traffic out and in, and the counter that makes later groups start
/// at 100. Its template is the text OneHA's template writer gives OpenNebula's.
pub fn bootstrap_default() -> Vec<SqlStmt> {
    const TEMPLATE: &str = "DESCRIPTION=\"The default security group is added to every network. \
Use it to add default filter rules for your networks. You may remove this security group from any \
network by updating its properties.\"
RULE=[
  RULE_TYPE=\"OUTBOUND\",
  PROTOCOL=\"ALL\" ]
RULE=[
  RULE_TYPE=\"INBOUND\",
  PROTOCOL=\"ALL\" ]
";
    vec![
        SqlStmt::new(
            "INSERT INTO secgroup_pool (oid, name, uid, gid, perms, template)
             VALUES (?1, 'default', 0, 0, ?2, ?3)",
            vec![
                SqlValue::Int(DEFAULT_ID),
                SqlValue::Int(0o744),
                SqlValue::Text(TEMPLATE.to_string()),
            ],
        ),
        SqlStmt::new(
            "INSERT INTO pool_control (tablename, last_oid) VALUES ('secgroup_pool', 99)",
            vec![],
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::sql::Location;
    use crate::{SqlTxn, TxnOutcome};

    fn on_both_backends(test: impl Fn(&mut Conn)) {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            test(&mut c);
        }
    }

    /// Applies `stmts` as a replicated write is: all or nothing, guards included.
    fn apply(c: &mut Conn, stmts: Vec<SqlStmt>) -> Result<Vec<SqlValue>, crate::TxnError> {
        let tx = c.transaction().unwrap();
        let out = crate::txn::apply_txn(&tx, &SqlTxn { stmts }).unwrap();
        tx.commit().unwrap();
        match out {
            TxnOutcome::Done { values } => Ok(values),
            TxnOutcome::Failed(e) => Err(e),
        }
    }

    fn allocate(c: &mut Conn, name: &str, uid: i64) -> Result<Vec<SqlValue>, crate::TxnError> {
        apply(
            c,
            vec![
                insert(name, uid, 0, 0o600, "A=\"1\"\n".into()),
                super::super::next_oid(TABLE),
            ],
        )
    }

    fn group(c: &Conn, oid: i64) -> Option<SecGroupRow> {
        use crate::sql::Optional;
        c.query_row(&ROWS.by_id(), [oid], |r| read(c, r))
            .optional()
            .unwrap()
    }

    #[test]
    fn secgroups_start_with_opennebulas_default_group_and_counter() {
        on_both_backends(|c| {
            let d = group(c, DEFAULT_ID).unwrap();
            assert_eq!(
                (
                    d.head.name.as_str(),
                    d.head.uname.as_str(),
                    d.head.gname.as_str()
                ),
                ("default", "oneadmin", "oneadmin")
            );
            assert_eq!(d.head.owned.perms, 0o744);
            assert!(
                d.template.contains("RULE_TYPE=\"OUTBOUND\""),
                "{}",
                d.template
            );
            assert_eq!(d.vm_count(), 0);
            let values = allocate(c, "web", 0).unwrap();
            assert_eq!(values[0].as_i64(), Some(100));
            assert_eq!(named(c, "web", 0).unwrap(), Some(100));
            assert_eq!(named(c, "web", 1).unwrap(), None);
            // One name per owner.
            let taken = allocate(c, "web", 0).unwrap_err();
            assert_eq!(taken.kind, crate::TxnErrorKind::Constraint);
            assert_eq!(allocate(c, "web", 1).unwrap()[0].as_i64(), Some(101));
        });
    }

    #[test]
    fn commit_moves_vms_to_outdated_and_delete_waits_for_them_to_leave() {
        use vm_state::*;
        on_both_backends(|c| {
            allocate(c, "g", 0).unwrap();
            for vid in 1..=4 {
                apply(c, vec![add_vm(100, vid)]).unwrap();
            }
            // A VM of a group that is not there joins nothing.
            apply(c, vec![add_vm(555, 9)]).unwrap();
            let set = |vid: i64, state: i64| set_vm_state(100, vid, state);
            apply(c, vec![set(2, UPDATING), set(3, ERROR), set(4, OUTDATED)]).unwrap();
            assert_eq!(
                group(c, 100).unwrap().vms,
                [vec![1], vec![4], vec![2], vec![3]]
            );

            apply(c, vec![exists_guard(100), commit(100, true)]).unwrap();
            let vms = group(c, 100).unwrap().vms;
            assert_eq!(vms, [vec![1], vec![2, 3, 4], vec![], vec![]]);
            apply(c, vec![commit(100, false)]).unwrap();
            let vms = group(c, 100).unwrap().vms;
            assert_eq!(vms[OUTDATED as usize], vec![1, 2, 3, 4]);
            assert!(dummy_pending(c).unwrap());
            apply(c, (1..=4).map(|vid| set(vid, UPDATED)).collect()).unwrap();
            assert!(!dummy_pending(c).unwrap());
            let vms = group(c, 100).unwrap().vms;
            assert_eq!(vms[UPDATED as usize], vec![1, 2, 3, 4]);
            // Joining again changes nothing.
            apply(c, vec![add_vm(100, 1)]).unwrap();
            assert_eq!(group(c, 100).unwrap().vm_count(), 4);

            // In use: not deleted.
            assert!(apply(c, delete(100)).is_err());
            for vid in 1..=4 {
                apply(c, vec![release_vm(vid)]).unwrap();
            }
            apply(c, delete(100)).unwrap();
            assert!(group(c, 100).is_none());
            // Gone: the guard of a commit matches nothing.
            let gone = apply(c, vec![exists_guard(100), commit(100, false)]).unwrap_err();
            assert_eq!(gone.kind, crate::TxnErrorKind::NotFound);
            // The default group is never deleted.
            assert!(apply(c, delete(DEFAULT_ID)).is_err());
            assert!(group(c, DEFAULT_ID).is_some());
        });
    }

    #[test]
    fn a_database_from_before_secgroups_gets_the_default_group_once_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("old.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            {
                let mut c = crate::open_state(&loc).unwrap();
                crate::testing::bootstrap(&mut c);
                c.execute_batch(
                    "DROP TABLE secgroup_pool; DROP TABLE secgroup_vm;
                     DELETE FROM pool_control WHERE tablename = 'secgroup_pool'",
                )
                .unwrap();
            }
            // Opening again adds nothing.
            for _ in 0..2 {
                let c = crate::open_state(&loc).unwrap();
                let d = group(&c, DEFAULT_ID).unwrap();
                assert_eq!(
                    (d.head.name.as_str(), d.head.owned.perms),
                    ("default", 0o744)
                );
                let counters: (i64, i64) = c
                    .query_row(
                        "SELECT COUNT(*), MAX(last_oid) FROM pool_control
                         WHERE tablename = 'secgroup_pool'",
                        (),
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                assert_eq!(counters, (1, 99));
                let n: i64 = c
                    .query_row("SELECT COUNT(*) FROM secgroup_pool", (), |r| r.get(0))
                    .unwrap();
                assert_eq!(n, 1);
            }
        }
    }

    #[test]
    fn deleting_a_group_drops_the_acl_rules_naming_it_only() {
        use wire::acl::*;
        on_both_backends(|c| {
            allocate(c, "g", 0).unwrap();
            let rules = |c: &Conn| -> i64 {
                c.query_row("SELECT COUNT(*) FROM acl", (), |r| r.get(0))
                    .unwrap()
            };
            let before = rules(c);
            let mine = SECGROUP | INDIVIDUAL_ID | 100;
            let both = SECGROUP | NET | INDIVIDUAL_ID | 100;
            for (user, resource) in [(5, mine), (6, both)] {
                let rule = super::super::acl::insert(INDIVIDUAL_ID | user, resource, USE, ALL_ID);
                apply(c, rule).unwrap();
            }
            apply(c, delete(100)).unwrap();
            // OpenNebula drops exact matches only.
            assert_eq!(rules(c), before + 1);
        });
    }
}
