//! Users (`user_pool`), their group memberships (`user_groups`) and login tokens
//! (`user_login_tokens`). Rows are read by `crate::reads` (`UserRow`), which authentication
//! shares.

use super::insert_next;
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "user_pool";

/// ACL rule selector of a user (`#uid`), as rules store it.
const ACL_INDIVIDUAL: i64 = 0x1_0000_0000;

/// A new enabled user with primary group `gid` (also made a membership): the insert returns
/// the oid; the counter moves and the membership follows in the same transaction.
pub fn insert(name: &str, password_hash: String, driver: &str, gid: i64) -> Vec<SqlStmt> {
    insert_with(name, password_hash, driver, gid, &[], "")
}

/// A new user in primary group `gid` and the `secondary` groups, with a first template.
pub fn insert_with(
    name: &str,
    password: String,
    driver: &str,
    gid: i64,
    secondary: &[i64],
    template: &str,
) -> Vec<SqlStmt> {
    let mut stmts = vec![
        insert_next(
            TABLE,
            "name, password, auth_driver, gid, enabled, template",
            "?1, ?2, ?3, ?4, 1, ?5",
            vec![
                SqlValue::Text(name.to_string()),
                SqlValue::Text(password),
                SqlValue::Text(driver.to_string()),
                SqlValue::Int(gid),
                SqlValue::Text(template.to_string()),
            ],
        ),
        super::next_oid(TABLE),
        SqlStmt::new(NEW_USER_GROUP, vec![SqlValue::Int(gid)]),
    ];
    for &g in secondary {
        stmts.push(SqlStmt::new(NEW_USER_GROUP, vec![SqlValue::Int(g)]));
    }
    stmts
}

/// The membership of the user [`insert`] just made (`crate::changes` knows it changes no
/// existing user).
pub const NEW_USER_GROUP: &str = "INSERT INTO user_groups (uid, gid)
             SELECT last_oid, ?1 FROM pool_control WHERE tablename = 'user_pool'";

/// How many login tokens a user may hold, as OpenNebula's `LoginTokenPool::MAX_TOKENS`.
pub const MAX_LOGIN_TOKENS: i64 = 10;

/// A new password (`stored`: a hash for `core`, the secret itself for other drivers, as
/// OpenNebula keeps it). A new password ends every login token, as in OpenNebula.
pub fn set_password(oid: i64, stored: String) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "UPDATE user_pool SET password = ?2 WHERE oid = ?1",
            vec![SqlValue::Int(oid), SqlValue::Text(stored)],
        )
        .must_match(),
        reset_login_tokens(oid),
    ]
}

/// A new authentication driver, with a new password when `stored` is given
/// (`one.user.chauth`).
pub fn set_auth_driver(oid: i64, driver: &str, stored: Option<String>) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "UPDATE user_pool SET auth_driver = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Text(driver.to_string())],
    )
    .must_match()];
    if let Some(stored) = stored {
        stmts.extend(set_password(oid, stored));
    }
    stmts
}

/// A login token of user `oid` (`one.user.login`): its expired tokens go first (expired at
/// `now`, the leader's clock bound into the log), and the insert matches nothing when the user
/// already holds [`MAX_LOGIN_TOKENS`], so the limit holds whatever runs concurrently.
pub fn add_login_token(
    oid: i64,
    token: String,
    expiration: i64,
    egid: i64,
    now: i64,
) -> Vec<SqlStmt> {
    vec![
        drop_expired_login_tokens(oid, now),
        // `LoginTokenPool::set`: room for one more once the expired ones are gone, even for a
        // token already there.
        SqlStmt::new(
            "SELECT 1 FROM user_pool WHERE oid = ?1
               AND (SELECT COUNT(*) FROM user_login_tokens WHERE uid = ?1) < ?2",
            vec![SqlValue::Int(oid), SqlValue::Int(MAX_LOGIN_TOKENS)],
        )
        .must_match(),
        // A live token set again stays as it was (its map keeps the key); an expired one,
        // just collected, comes back new.
        SqlStmt::new(
            "INSERT INTO user_login_tokens (uid, token, expiration, egid)
             SELECT oid, ?2, ?3, ?4 FROM user_pool WHERE oid = ?1
               AND NOT EXISTS (SELECT 1 FROM user_login_tokens WHERE uid = ?1 AND token = ?2)",
            vec![
                SqlValue::Int(oid),
                SqlValue::Text(token),
                SqlValue::Int(expiration),
                SqlValue::Int(egid),
            ],
        ),
    ]
}

/// The tokens of user `oid` that expired before `now` (OpenNebula collects them when a new
/// one is set).
pub fn drop_expired_login_tokens(oid: i64, now: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM user_login_tokens WHERE uid = ?1 AND expiration <> -1 AND expiration < ?2",
        vec![SqlValue::Int(oid), SqlValue::Int(now)],
    )
}

/// Every login token of user `oid`.
pub fn reset_login_tokens(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM user_login_tokens WHERE uid = ?1",
        vec![SqlValue::Int(oid)],
    )
}

/// One login token of user `oid`; matches nothing when the user has no such token.
pub fn reset_login_token(oid: i64, token: String) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM user_login_tokens WHERE uid = ?1 AND token = ?2",
        vec![SqlValue::Int(oid), SqlValue::Text(token)],
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
        reset_login_tokens(oid),
        SqlStmt::new(
            "DELETE FROM acl WHERE user = ?1",
            vec![SqlValue::Int(ACL_INDIVIDUAL | oid)],
        ),
        super::acl::drop_rules_on(wire::acl::USER, oid),
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
        // As OpenNebula's chgrp: the old primary group is left, unless the new one was a
        // secondary group already (then both stay).
        SqlStmt::new(
            "DELETE FROM user_groups WHERE uid = ?1 AND gid <> ?2
               AND gid = (SELECT gid FROM user_pool WHERE oid = ?1)
               AND NOT EXISTS (SELECT 1 FROM (SELECT uid, gid FROM user_groups) AS mine
                               WHERE mine.uid = ?1 AND mine.gid = ?2)",
            vec![SqlValue::Int(oid), SqlValue::Int(gid)],
        ),
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

/// The id of the user called `name`.
pub fn oid_of(c: &crate::Conn, name: &str) -> crate::sql::Result<Option<i64>> {
    use crate::Optional;
    c.query_row(
        "SELECT oid FROM user_pool WHERE name = ?1",
        [SqlValue::Text(name.to_string())],
        |r| r.get::<i64>(0),
    )
    .optional()
}

/// The templates of user `uid` and of group `gid` that may set `VM_*_OPERATIONS`, in one
/// statement, as a VM operation's right is looked up in both (`None`: no such row, or its
/// template names no such list, so the caller parses nothing).
pub fn vm_operation_templates(
    c: &crate::sql::Conn,
    uid: i64,
    gid: i64,
) -> crate::sql::Result<(Option<String>, Option<String>)> {
    use crate::sql::Optional;
    let row = c
        .prepare_cached(
            "SELECT
               (SELECT template FROM user_pool
                 WHERE oid = ?1 AND template LIKE '%_OPERATIONS%'),
               (SELECT template FROM group_pool
                 WHERE oid = ?2 AND template LIKE '%_OPERATIONS%')",
        )?
        .query_row([uid, gid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.unwrap_or((None, None)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::sql::Location;

    #[test]
    fn only_templates_that_may_name_vm_operation_lists_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            assert_eq!(vm_operation_templates(&c, 0, 1).unwrap(), (None, None));
            c.execute_batch(
                "UPDATE user_pool SET template = 'VM_USE_OPERATIONS = \"rename\"' WHERE oid = 0;
                 UPDATE group_pool SET template = 'LABEL = x' WHERE oid = 0;
                 UPDATE group_pool SET template = 'VM_ADMIN_OPERATIONS = \"update\"' WHERE oid = 1;",
            )
            .unwrap();
            assert_eq!(
                vm_operation_templates(&c, 0, 0).unwrap(),
                (Some("VM_USE_OPERATIONS = \"rename\"".to_string()), None)
            );
            assert_eq!(
                vm_operation_templates(&c, 99, 1).unwrap(),
                (None, Some("VM_ADMIN_OPERATIONS = \"update\"".to_string()))
            );
        }
    }
}
