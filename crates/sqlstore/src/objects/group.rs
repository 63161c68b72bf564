//! Groups (`group_pool`), their members (`user_groups`) and administrators (`group_admins`).

use crate::sql::{Conn, Row};

use super::insert_next;
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "group_pool";

/// ACL rule selector of a group (`@gid`), as rules store it.
const ACL_GROUP: i64 = 0x2_0000_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub oid: i64,
    pub name: String,
    pub template: String,
    pub users: Vec<i64>,
    pub admins: Vec<i64>,
}

pub const SELECT: &str = "SELECT oid, name, template FROM group_pool";

pub fn read(c: &Conn, r: &Row) -> crate::sql::Result<GroupRow> {
    let oid: i64 = r.get(0)?;
    let mut users = c.prepare_cached("SELECT uid FROM user_groups WHERE gid = ?1 ORDER BY uid")?;
    let mut admins =
        c.prepare_cached("SELECT uid FROM group_admins WHERE gid = ?1 ORDER BY uid")?;
    let users = users
        .query_map([oid], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let admins = admins
        .query_map([oid], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(GroupRow {
        oid,
        name: r.get(1)?,
        template: r.get(2)?,
        users,
        admins,
    })
}

/// Group `oid`, if it exists.
pub fn load(c: &Conn, oid: i64) -> crate::sql::Result<Option<GroupRow>> {
    use crate::sql::Optional;
    c.prepare_cached(&format!("{SELECT} WHERE oid = ?1"))?
        .query_row([oid], |r| read(c, r))
        .optional()
}

/// The groups user `uid` belongs to.
pub fn of_user(c: &Conn, uid: i64) -> crate::sql::Result<Vec<i64>> {
    let mut st = c.prepare_cached("SELECT gid FROM user_groups WHERE uid = ?1")?;
    st.query_map([uid], |r| r.get(0))?.collect()
}

pub fn insert(name: &str) -> SqlStmt {
    insert_next(
        TABLE,
        "name, template",
        "?1, ''",
        vec![SqlValue::Text(name.to_string())],
    )
}

/// Deletes group `oid` with its administrators and its own ACL rules (`@oid`), only while it
/// has no members: a group with users is kept, as in OpenNebula.
pub fn delete_if_empty(oid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "SELECT 1 FROM group_pool
             WHERE oid = ?1 AND NOT EXISTS (SELECT 1 FROM user_groups WHERE gid = ?1)",
            vec![SqlValue::Int(oid)],
        )
        .must_match(),
        SqlStmt::new(
            "DELETE FROM group_pool WHERE oid = ?1",
            vec![SqlValue::Int(oid)],
        )
        .must_match(),
        SqlStmt::new(
            "DELETE FROM group_admins WHERE gid = ?1",
            vec![SqlValue::Int(oid)],
        ),
        SqlStmt::new(
            "DELETE FROM acl WHERE user = ?1",
            vec![SqlValue::Int(ACL_GROUP | oid)],
        ),
        super::acl::drop_rules_on_group_objects(oid),
        super::acl::drop_rules_on(wire::acl::GROUP, oid),
        // Out of every VDC (its rules went with the line above).
        SqlStmt::new(
            "DELETE FROM vdc_group WHERE gid = ?1",
            vec![SqlValue::Int(oid)],
        ),
    ]
}

/// The rules that make user `uid` an administrator of group `gid`, as `Group::add_admin_rules`
/// writes them (every zone): (user, resource, rights, zone).
pub fn admin_rules(gid: i64, uid: i64) -> [super::acl::Rule; 4] {
    use wire::acl::*;
    let (gid, uid) = (gid as u64, uid as u64);
    let me = INDIVIDUAL_ID | uid;
    [
        // #<uid> USER/@<gid> USE+MANAGE+ADMIN+CREATE *
        (
            me,
            USER | GROUP_ID | gid,
            USE | MANAGE | ADMIN | CREATE,
            ALL_ID,
        ),
        // #<uid> VM+NET+IMAGE+TEMPLATE+DOCUMENT+SECGROUP+VROUTER+VMGROUP+BACKUPJOB/@<gid> USE+MANAGE *
        (
            me,
            VM | NET
                | IMAGE
                | TEMPLATE
                | DOCUMENT
                | SECGROUP
                | VROUTER
                | VMGROUP
                | BACKUPJOB
                | GROUP_ID
                | gid,
            USE | MANAGE,
            ALL_ID,
        ),
        // #<uid> VROUTER/* CREATE *
        (me, VROUTER | ALL_ID, CREATE, ALL_ID),
        // #<uid> GROUP/#<gid> MANAGE *
        (me, GROUP | INDIVIDUAL_ID | gid, MANAGE, ALL_ID),
    ]
}

/// Whether user `uid` is a member of group `gid`, and whether one of its administrators.
pub fn membership_of(c: &Conn, gid: i64, uid: i64) -> crate::sql::Result<(bool, bool)> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM user_groups WHERE uid = ?2 AND gid = ?1),
                EXISTS (SELECT 1 FROM group_admins WHERE uid = ?2 AND gid = ?1)",
    )?
    .query_row((gid, uid), |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Makes member `uid` an administrator of `gid` (`add`), or no longer one, with the ACL rules
/// that come with it ([`admin_rules`]); matches nothing when the group is gone or the user is
/// not a member (not an administrator).
pub fn set_admin(gid: i64, uid: i64, add: bool) -> Vec<SqlStmt> {
    let change = if add {
        SqlStmt::new(
            "INSERT OR IGNORE INTO group_admins (gid, uid)
             SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM user_groups WHERE uid = ?2 AND gid = ?1)
             RETURNING uid",
            vec![SqlValue::Int(gid), SqlValue::Int(uid)],
        )
    } else {
        SqlStmt::new(
            "DELETE FROM group_admins WHERE gid = ?1 AND uid = ?2 RETURNING uid",
            vec![SqlValue::Int(gid), SqlValue::Int(uid)],
        )
    };
    let mut stmts = vec![
        SqlStmt::new(
            "SELECT oid FROM group_pool WHERE oid = ?1",
            vec![SqlValue::Int(gid)],
        )
        .must_match(),
        change.must_match(),
    ];
    for rule in admin_rules(gid, uid) {
        if add {
            stmts.extend(super::acl::add_rule(rule));
        } else {
            stmts.push(super::acl::del_rule(rule));
        }
    }
    stmts
}

/// After a membership change: if user `uid` is no longer in `gid` but was one of its
/// administrators, it is not any more, and its administrator rules go (`Group::del_user`).
pub fn drop_admin_if_left(gid: i64, uid: i64) -> Vec<SqlStmt> {
    const GONE: &str = " AND NOT EXISTS (SELECT 1 FROM user_groups WHERE uid = ?6 AND gid = ?5)
         AND EXISTS (SELECT 1 FROM group_admins WHERE uid = ?6 AND gid = ?5)";
    let mut stmts: Vec<SqlStmt> = admin_rules(gid, uid)
        .into_iter()
        .map(|rule| {
            super::acl::del_rule_where(rule, GONE, vec![SqlValue::Int(gid), SqlValue::Int(uid)])
        })
        .collect();
    stmts.push(SqlStmt::new(
        "DELETE FROM group_admins WHERE gid = ?1 AND uid = ?2
         AND NOT EXISTS (SELECT 1 FROM user_groups WHERE uid = ?2 AND gid = ?1)",
        vec![SqlValue::Int(gid), SqlValue::Int(uid)],
    ));
    stmts
}
