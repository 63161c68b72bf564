//! VM groups (`vmgroup_pool`, OpenNebula's table name): roles of VMs with placement rules
//! between them. A name is unique per owner, as OpenNebula's `VMGroupPool::allocate` checks it.
//! The roles (with the VMs in each) are kept as `ROLE = [ ... ]` vectors in `roles`, apart
//! from the group's template, so that reading one never needs the other.

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "vmgroup_pool";

#[derive(Debug, Clone, PartialEq)]
pub struct VmGroupRow {
    pub head: Head,
    pub lock: Lock,
    /// `ROLE = [ ID, NAME, POLICY, ..., VMS ]` vectors, in id order.
    pub roles: String,
    pub template: String,
}

has_owner!(lockable VmGroupRow);

fn read(_: &Conn, r: &Row) -> crate::sql::Result<VmGroupRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    Ok(VmGroupRow {
        head,
        lock,
        roles: r.get(c)?,
        template: r.get(c + 1)?,
    })
}

pub static ROWS: Rows<VmGroupRow> = Rows {
    select: owned_select!(lockable "vmgroup_pool", "v", "v.roles, v.template"),
    alias: "v",
    read,
};

/// A new group; the oid comes from the counter ([`super::next_oid`]). A name its owner
/// already uses breaks the table's `UNIQUE (name, uid)`.
pub fn insert(name: &str, uid: i64, gid: i64, perms: i64, roles: String, text: String) -> SqlStmt {
    insert_next(
        TABLE,
        "name, uid, gid, perms, roles, template",
        "?1, ?2, ?3, ?4, ?5, ?6",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(uid),
            SqlValue::Int(gid),
            SqlValue::Int(perms),
            SqlValue::Text(roles),
            SqlValue::Text(text),
        ],
    )
}

/// The group of `uid` called `name`, if there is one (`PoolSQL::exist(name, uid)`).
pub fn named(c: &Conn, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    super::owned_named(c, "vmgroup_pool", name, uid)
}

/// The roles and template of group `oid` become `roles` and `template`, if they are still
/// `was` (roles, template) as read: the rules between roles are checked against both, so a
/// change to either meanwhile makes the caller compute again (the statement matches nothing).
pub fn set_state(oid: i64, roles: String, template: String, was: (String, String)) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vmgroup_pool SET roles = ?2, template = ?3
         WHERE oid = ?1 AND roles = ?4 AND template = ?5",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(roles),
            SqlValue::Text(template),
            SqlValue::Text(was.0),
            SqlValue::Text(was.1),
        ],
    )
    .must_match()
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

    fn allocate(c: &Conn, name: &str, uid: i64) -> Result<(), crate::sql::SqlError> {
        crate::txn::run_all(
            c,
            &[
                insert(
                    name,
                    uid,
                    1,
                    0o600,
                    "ROLE=[\n  ID=\"0\",\n  NAME=\"web\" ]\n".into(),
                    "AFFINED=\"web\"\n".into(),
                ),
                super::super::next_oid(TABLE),
            ],
        )
        .map(drop)
    }

    fn row(c: &Conn, oid: i64) -> VmGroupRow {
        c.query_row(&ROWS.by_id(), [oid], |r| read(c, r)).unwrap()
    }

    #[test]
    fn vm_groups_number_from_zero_and_names_are_unique_per_owner() {
        on_both_backends(|c| {
            allocate(c, "web", 2).unwrap();
            allocate(c, "web", 3).unwrap();
            assert!(allocate(c, "web", 2).is_err(), "same name, same owner");
            assert_eq!(named(c, "web", 3).unwrap(), Some(1));
            assert_eq!(named(c, "other", 3).unwrap(), None);
            let g = row(c, 0);
            assert_eq!(g.head.name, "web");
            assert_eq!((g.lock.level, g.lock.owner), (0, -1), "unlocked");
            assert_eq!(g.roles, "ROLE=[\n  ID=\"0\",\n  NAME=\"web\" ]\n");
            assert_eq!(g.template, "AFFINED=\"web\"\n");
        });
    }

    #[test]
    fn roles_change_only_from_the_state_they_were_computed_from() {
        on_both_backends(|c| {
            allocate(c, "g", 0).unwrap();
            let g = row(c, 0);
            let was = (g.roles.clone(), g.template.clone());
            let stale = (String::new(), g.template.clone());
            let txn = crate::SqlTxn {
                stmts: vec![set_state(0, "A".into(), "T".into(), stale)],
            };
            assert!(
                matches!(
                    crate::txn::apply_txn(c, &txn).unwrap(),
                    crate::TxnOutcome::Failed(e) if e.kind == crate::TxnErrorKind::NotFound
                ),
                "a stale read changes nothing"
            );
            crate::txn::run_all(c, &[set_state(0, "A".into(), "T".into(), was)]).unwrap();
            let g = row(c, 0);
            assert_eq!((g.roles.as_str(), g.template.as_str()), ("A", "T"));
        });
    }
}
