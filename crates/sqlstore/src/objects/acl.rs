//! ACL rules (`acl`), stored as OpenNebula's bit masks.

use crate::sql::Conn;

use super::insert_next;
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "acl";

/// One rule: who (`user`), on what (`resource`), which rights, in which zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclRow {
    pub oid: i64,
    pub user: u64,
    pub resource: u64,
    pub rights: u64,
    pub zone: u64,
}

/// Every rule, in oid order.
pub fn load_all(c: &Conn) -> crate::sql::Result<Vec<AclRow>> {
    let mut st =
        c.prepare_cached("SELECT oid, user, resource, rights, zone FROM acl ORDER BY oid")?;
    st.query_map((), |r| {
        Ok(AclRow {
            oid: r.get(0)?,
            user: r.get::<i64>(1)? as u64,
            resource: r.get::<i64>(2)? as u64,
            rights: r.get::<i64>(3)? as u64,
            zone: r.get::<i64>(4)? as u64,
        })
    })?
    .collect()
}

/// Whether the rule `rule` is there.
pub fn exists(c: &Conn, rule: Rule) -> crate::sql::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM acl WHERE user = ?1 AND resource = ?2 AND rights = ?3
         AND zone = ?4)",
    )?
    .query_row(crate::sql::params_from_iter(rule_args(rule)), |r| r.get(0))
}

/// `AclManager::del_resource_rules`: the rules on exactly object `oid` of resource type `kind`
/// (`VM/#7`, not `VM+IMAGE/#7`) go with it.
pub fn drop_rules_on(kind: u64, oid: i64) -> SqlStmt {
    let resource = kind | wire::acl::INDIVIDUAL_ID | (oid as u64 & wire::acl::ID_MASK);
    SqlStmt::new(
        "DELETE FROM acl WHERE resource = ?1",
        vec![SqlValue::Int(resource as i64)],
    )
}

/// `AclManager::del_zid_rules`: the rules that grant in exactly zone `zid` (`... #zid`).
pub fn drop_rules_in_zone(zid: i64) -> SqlStmt {
    let zone = wire::acl::INDIVIDUAL_ID | (zid as u64 & wire::acl::ID_MASK);
    SqlStmt::new(
        "DELETE FROM acl WHERE zone = ?1",
        vec![SqlValue::Int(zone as i64)],
    )
}

/// `AclManager::del_gid_rules`' second half: the rules on the objects of group `gid`
/// (`.../@gid`, whatever the types).
pub fn drop_rules_on_group_objects(gid: i64) -> SqlStmt {
    drop_rules_selecting(wire::acl::GROUP_ID, gid)
}

/// `AclManager::del_cid_rules`: the rules on the objects of cluster `cid` (`.../%cid`,
/// whatever the types).
pub fn drop_rules_on_cluster_objects(cid: i64) -> SqlStmt {
    drop_rules_selecting(wire::acl::CLUSTER_ID, cid)
}

fn drop_rules_selecting(selector: u64, id: i64) -> SqlStmt {
    let resource = selector | (id as u64 & wire::acl::ID_MASK);
    let mask = selector | wire::acl::ID_MASK;
    SqlStmt::new(
        "DELETE FROM acl WHERE (resource & ?2) = ?1",
        vec![SqlValue::Int(resource as i64), SqlValue::Int(mask as i64)],
    )
}

/// A new rule; a rule equal to an existing one is a constraint failure.
pub fn insert(user: u64, resource: u64, rights: u64, zone: u64) -> Vec<SqlStmt> {
    vec![
        insert_next(
            TABLE,
            "user, resource, rights, zone",
            "?1, ?2, ?3, ?4",
            rule_args((user, resource, rights, zone)),
        ),
        super::next_oid(TABLE),
    ]
}

/// An ACL rule as its four masks: (user, resource, rights, zone).
pub type Rule = (u64, u64, u64, u64);

/// `rule`'s masks as the parameters ?1..?4 of the statements here.
fn rule_args((user, resource, rights, zone): Rule) -> Vec<SqlValue> {
    [user, resource, rights, zone]
        .into_iter()
        .map(|v| SqlValue::Int(v as i64))
        .collect()
}

/// Adds `rule` unless it is there already (OpenNebula then keeps the one it has), with the
/// next ACL id.
pub fn add_rule(rule: Rule) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "INSERT INTO acl (oid, user, resource, rights, zone)
             SELECT last_oid + 1, ?1, ?2, ?3, ?4 FROM pool_control WHERE tablename = 'acl'
               AND NOT EXISTS (SELECT 1 FROM acl WHERE user = ?1 AND resource = ?2
                               AND rights = ?3 AND zone = ?4)",
            rule_args(rule),
        ),
        acl_counter_past_new_rule(),
    ]
}

/// Moves the ACL id counter past a rule an insert above may have added (none if it was
/// there already: ids are taken only by rules made).
pub(crate) fn acl_counter_past_new_rule() -> SqlStmt {
    SqlStmt::new(
        "UPDATE pool_control SET last_oid = (SELECT MAX(oid) FROM acl)
         WHERE tablename = 'acl' AND (SELECT MAX(oid) FROM acl) > last_oid",
        vec![],
    )
}

/// Removes `rule`, if it is there.
pub fn del_rule(rule: Rule) -> SqlStmt {
    del_rule_where(rule, "", Vec::new())
}

/// Removes `rule` if it is there and `cond` holds (` AND ...`, its parameters from ?5 on).
pub fn del_rule_where(rule: Rule, cond: &str, args: Vec<SqlValue>) -> SqlStmt {
    let mut all = rule_args(rule);
    all.extend(args);
    SqlStmt::new(
        &format!(
            "DELETE FROM acl WHERE user = ?1 AND resource = ?2 AND rights = ?3 AND zone = ?4{cond}"
        ),
        all,
    )
}
