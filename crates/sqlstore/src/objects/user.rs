//! Users (`user_pool`) and their group memberships (`user_groups`). Rows are read by
//! `crate::reads` (`UserRow`), which authentication shares.

use super::insert_next;
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "user_pool";

/// ACL rule selector of a user (`#uid`), as rules store it.
const ACL_INDIVIDUAL: i64 = 0x1_0000_0000;

/// A new enabled user with primary group `gid` (also made a membership): the insert returns
/// the oid; the counter moves and the membership follows in the same transaction.
pub fn insert(name: &str, password_hash: String, driver: &str, gid: i64) -> Vec<SqlStmt> {
    vec![
        insert_next(
            TABLE,
            "name, password, auth_driver, gid, enabled, template",
            "?1, ?2, ?3, ?4, 1, ''",
            vec![
                SqlValue::Text(name.to_string()),
                SqlValue::Text(password_hash),
                SqlValue::Text(driver.to_string()),
                SqlValue::Int(gid),
            ],
        ),
        super::next_oid(TABLE),
        SqlStmt::new(
            "INSERT INTO user_groups (uid, gid)
             SELECT last_oid, ?1 FROM pool_control WHERE tablename = 'user_pool'",
            vec![SqlValue::Int(gid)],
        ),
    ]
}

/// A new password hash, for users of the `core` driver only.
pub fn set_password(oid: i64, hash: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE user_pool SET password = ?2 WHERE oid = ?1 AND auth_driver = 'core'",
        vec![SqlValue::Int(oid), SqlValue::Text(hash)],
    )
    .must_match()
}

/// Replaces user `oid`'s password hash `old` (OpenNebula's SHA-256) by `new` (argon2id), only if
/// it is still `old`: a password changed meanwhile is never overwritten.
pub fn upgrade_password(oid: i64, old: String, new: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE user_pool SET password = ?3 WHERE oid = ?1 AND password = ?2",
        vec![SqlValue::Int(oid), SqlValue::Text(old), SqlValue::Text(new)],
    )
}

/// Deletes user `oid` with its memberships, group administrations and own ACL rules
/// (`#oid`), as OpenNebula does.
pub fn delete(oid: i64) -> Vec<SqlStmt> {
    vec![
        super::delete(TABLE, oid),
        SqlStmt::new(
            "DELETE FROM user_groups WHERE uid = ?1",
            vec![SqlValue::Int(oid)],
        ),
        SqlStmt::new(
            "DELETE FROM group_admins WHERE uid = ?1",
            vec![SqlValue::Int(oid)],
        ),
        SqlStmt::new(
            "DELETE FROM acl WHERE user = ?1",
            vec![SqlValue::Int(ACL_INDIVIDUAL | oid)],
        ),
    ]
}

/// Matches nothing when user `oid` does not exist: a guard for membership changes.
pub fn must_exist(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "SELECT oid FROM user_pool WHERE oid = ?1",
        vec![SqlValue::Int(oid)],
    )
    .must_match()
}

/// A new primary group, also made a membership.
pub fn set_primary_group(oid: i64, gid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "UPDATE user_pool SET gid = ?2 WHERE oid = ?1",
            vec![SqlValue::Int(oid), SqlValue::Int(gid)],
        )
        .must_match(),
        join_group(oid, gid),
    ]
}

/// Membership of `gid` (kept if already there).
pub fn join_group(oid: i64, gid: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT OR IGNORE INTO user_groups (uid, gid) VALUES (?1, ?2)",
        vec![SqlValue::Int(oid), SqlValue::Int(gid)],
    )
}

pub fn leave_group(oid: i64, gid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM user_groups WHERE uid = ?1 AND gid = ?2",
        vec![SqlValue::Int(oid), SqlValue::Int(gid)],
    )
}

pub fn set_enabled(oid: i64, on: bool) -> SqlStmt {
    SqlStmt::new(
        "UPDATE user_pool SET enabled = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Int(on as i64)],
    )
    .must_match()
}
