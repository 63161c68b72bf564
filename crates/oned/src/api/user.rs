//! `one.user.*` and `one.userpool.info`: the first replicated object family.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind, UserRow};
use xmlrpc::{Params, Value};

use super::xml::esc;
use super::{code, fail, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

const QUOTAS: &str =
    "<DATASTORE_QUOTA></DATASTORE_QUOTA><NETWORK_QUOTA></NETWORK_QUOTA><VM_QUOTA></VM_QUOTA><IMAGE_QUOTA></IMAGE_QUOTA>";

fn default_quotas() -> String {
    format!("<DEFAULT_USER_QUOTAS>{QUOTAS}</DEFAULT_USER_QUOTAS>")
}

fn template_xml(text: &str) -> String {
    template::Template::parse(text)
        .map(|t| t.to_xml())
        .unwrap_or_else(|_| "<TEMPLATE></TEMPLATE>".to_string())
}

pub fn user_xml(u: &UserRow, with_quotas: bool) -> String {
    format!(
        "<USER><ID>{}</ID><GID>{}</GID><GROUPS>{}</GROUPS><GNAME>{}</GNAME><NAME>{}</NAME><PASSWORD>{}</PASSWORD><AUTH_DRIVER>{}</AUTH_DRIVER><ENABLED>{}</ENABLED><LOGIN_TOKEN></LOGIN_TOKEN>{}{}</USER>",
        u.oid,
        u.gid,
        u.groups
            .iter()
            .map(|g| format!("<ID>{g}</ID>"))
            .collect::<String>(),
        esc(&u.gname),
        esc(&u.name),
        esc(&u.password),
        esc(&u.auth_driver),
        u.enabled as i32,
        template_xml(&u.template),
        if with_quotas {
            format!("{QUOTAS}{}", default_quotas())
        } else {
            String::new()
        }
    )
}

fn no_user(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting user [{id}]."))
}

fn not_authorized(s: &Session, what: &str) -> Failure {
    fail(
        code::AUTHORIZATION,
        format!("User [{}] : Not authorized to perform {what}.", s.uid),
    )
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    let password = p.string(1)?.to_string();
    let driver = match p.string(2)? {
        "" => "core".to_string(),
        d => d.to_string(),
    };
    let gids: Vec<i64> = match p.0.get(3) {
        Some(_) => p.array(3)?.iter().filter_map(Value::as_i64).collect(),
        None => Vec::new(),
    };
    if !s.is_admin() {
        return Err(not_authorized(s, "CREATE USER"));
    }
    super::validate::user_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    if password.is_empty() || password.contains(char::is_whitespace) {
        return Err(fail(
            code::INTERNAL,
            "Error allocating a new user. Invalid password",
        ));
    }
    if driver != "core" {
        return Err(fail(
            code::INTERNAL,
            format!("Error allocating a new user. Auth driver {driver} is not enabled"),
        ));
    }
    let gid = gids.first().copied().unwrap_or(1);
    let exists = ctx
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM group_pool WHERE oid = ?1",
                [gid],
                |r| r.get::<_, i64>(0),
            )
        })
        .await?;
    if exists == 0 {
        return Err(fail(
            code::NO_EXISTS,
            format!("Error getting group [{gid}]."),
        ));
    }
    let hash = password_hash(ctx, &password).await?;
    let txn = SqlTxn {
        stmts: vec![
            SqlStmt::new(
                "INSERT INTO user_pool (oid, name, password, auth_driver, gid, enabled, template)
                 SELECT last_oid + 1, ?1, ?2, ?3, ?4, 1, '' FROM pool_control WHERE tablename = 'user_pool'
                 RETURNING oid",
                vec![
                    SqlValue::Text(name.clone()),
                    SqlValue::Text(hash),
                    SqlValue::Text(driver),
                    SqlValue::Int(gid),
                ],
            )
            .must_match(),
            SqlStmt::new(
                "UPDATE pool_control SET last_oid = last_oid + 1 WHERE tablename = 'user_pool'",
                vec![],
            ),
            SqlStmt::new(
                "INSERT INTO user_groups (uid, gid)
                 SELECT last_oid, ?1 FROM pool_control WHERE tablename = 'user_pool'",
                vec![SqlValue::Int(gid)],
            ),
        ],
    };
    match ctx.write(txn).await {
        Ok(values) => {
            let id = values.first().and_then(SqlValue::as_i64).unwrap_or(-1);
            Ok(Value::Int(id as i32))
        }
        Err(TxnFailure::Txn(TxnErrorKind::Constraint, _)) => {
            let taken = name.clone();
            let other = ctx
                .read(move |c| sqlstore::find_user_by_name(c, &taken))
                .await?
                .map(|u| u.oid)
                .unwrap_or(-1);
            Err(fail(
                code::INTERNAL,
                format!("Error allocating a new user. NAME is already taken by USER {other}."),
            ))
        }
        Err(TxnFailure::Txn(_, m)) => Err(fail(
            code::INTERNAL,
            format!("Error allocating a new user. {m}"),
        )),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

/// The argon2id hash to store for `password`, computed here (this runs on the leader: writes are
/// routed before their handler runs) and bound into the transaction, so the log carries the
/// hash, never the password, and no server hashes again.
async fn password_hash(ctx: &Ctx, password: &str) -> Result<String, Failure> {
    match ctx.auth.hash(password).await {
        Some(Ok(hash)) => Ok(hash),
        Some(Err(e)) => Err(fail(
            code::INTERNAL,
            format!("Cannot hash the password: {e}"),
        )),
        None => Err(fail(
            code::INTERNAL,
            "Cannot hash the password: the server is busy, try again",
        )),
    }
}

async fn load(ctx: &Ctx, id: i64) -> Result<UserRow, Failure> {
    ctx.read(move |c| sqlstore::load_user(c, id))
        .await?
        .ok_or_else(|| no_user(id))
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let mut id = p.int(0)? as i64;
    if id == -1 {
        id = s.uid;
    }
    if !s.is_admin() && id != s.uid {
        return Err(not_authorized(s, &format!("USE USER [{id}]")));
    }
    Ok(Value::String(user_xml(&load(ctx, id).await?, true)))
}

/// `one.userpool.info()`: every user for an administrator, else only the caller; read and
/// printed one row at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let only = (!s.is_admin()).then_some(s.uid);
    let out = ctx
        .read(move |c| {
            let mut out = String::from("<USER_POOL>");
            sqlstore::for_each_user(c, only, |u| {
                out.push_str(&user_xml(u, false));
                out.push_str(&format!("<QUOTAS><ID>{}</ID>{QUOTAS}</QUOTAS>", u.oid));
            })?;
            out.push_str(&default_quotas());
            out.push_str("</USER_POOL>");
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

pub async fn passwd(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let password = p.string(1)?.to_string();
    if !s.is_admin() && id != s.uid {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    if password.is_empty() || password.contains(char::is_whitespace) {
        return Err(fail(code::INTERNAL, "Invalid password"));
    }
    let hash = password_hash(ctx, &password).await?;
    let txn = SqlTxn {
        stmts: vec![SqlStmt::new(
            "UPDATE user_pool SET password = ?2 WHERE oid = ?1 AND auth_driver = 'core'",
            vec![SqlValue::Int(id), SqlValue::Text(hash)],
        )
        .must_match()],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(no_user(id)),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    if id == 0 || id == 1 {
        return Err(fail(
            code::ACTION,
            "Cannot delete user. oneadmin and serveradmin cannot be deleted.",
        ));
    }
    let txn = SqlTxn {
        stmts: vec![
            SqlStmt::new(
                "DELETE FROM user_pool WHERE oid = ?1",
                vec![SqlValue::Int(id)],
            )
            .must_match(),
            SqlStmt::new(
                "DELETE FROM user_groups WHERE uid = ?1",
                vec![SqlValue::Int(id)],
            ),
            SqlStmt::new(
                "DELETE FROM group_admins WHERE uid = ?1",
                vec![SqlValue::Int(id)],
            ),
            // The user's own ACL rules (#uid) go with it, as in OpenNebula.
            SqlStmt::new(
                "DELETE FROM acl WHERE user = ?1",
                vec![SqlValue::Int(wire::acl::INDIVIDUAL_ID as i64 | id)],
            ),
        ],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(no_user(id)),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::ACTION, format!("Cannot delete user. {m}"))),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

/// `one.user.update(id, template, type)`: type 0 replaces the template, 1 merges into it.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    if !s.is_admin() && id != s.uid {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    super::update_template(ctx, &p, "user_pool", "template", no_user).await
}

async fn group_exists(ctx: &Ctx, gid: i64) -> Result<(), Failure> {
    let n = ctx
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM group_pool WHERE oid = ?1",
                [gid],
                |r| r.get::<_, i64>(0),
            )
        })
        .await?;
    if n == 0 {
        return Err(fail(
            code::NO_EXISTS,
            format!("Error getting group [{gid}]."),
        ));
    }
    Ok(())
}

/// Runs a membership change; NotFound means the user is gone.
async fn membership(ctx: &Ctx, id: i64, stmts: Vec<SqlStmt>) -> MethodResult {
    match ctx.write(SqlTxn { stmts }).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(no_user(id)),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

/// `one.user.chgrp(uid, gid)`: a new primary group (also made a membership).
pub async fn chgrp(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    if id == 0 {
        return Err(fail(
            code::ACTION,
            "Cannot change primary group of user oneadmin",
        ));
    }
    group_exists(ctx, gid).await?;
    membership(
        ctx,
        id,
        vec![
            SqlStmt::new(
                "UPDATE user_pool SET gid = ?2 WHERE oid = ?1",
                vec![SqlValue::Int(id), SqlValue::Int(gid)],
            )
            .must_match(),
            SqlStmt::new(
                "INSERT OR IGNORE INTO user_groups (uid, gid) VALUES (?1, ?2)",
                vec![SqlValue::Int(id), SqlValue::Int(gid)],
            ),
        ],
    )
    .await
}

/// `one.user.addgroup(uid, gid)`: a secondary group.
pub async fn addgroup(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    group_exists(ctx, gid).await?;
    membership(
        ctx,
        id,
        vec![
            SqlStmt::new(
                "SELECT oid FROM user_pool WHERE oid = ?1",
                vec![SqlValue::Int(id)],
            )
            .must_match(),
            SqlStmt::new(
                "INSERT OR IGNORE INTO user_groups (uid, gid) VALUES (?1, ?2)",
                vec![SqlValue::Int(id), SqlValue::Int(gid)],
            ),
        ],
    )
    .await
}

/// `one.user.delgroup(uid, gid)`: leaves a secondary group (never the primary one).
pub async fn delgroup(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    let user = load(ctx, id).await?;
    if user.gid == gid {
        return Err(fail(
            code::ACTION,
            "Cannot remove user from group. Cannot remove user from primary group.",
        ));
    }
    membership(
        ctx,
        id,
        vec![SqlStmt::new(
            "DELETE FROM user_groups WHERE uid = ?1 AND gid = ?2",
            vec![SqlValue::Int(id), SqlValue::Int(gid)],
        )],
    )
    .await
}

/// `one.user.enable(uid, enable)`: a disabled user cannot authenticate.
pub async fn enable(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    membership(
        ctx,
        id,
        vec![SqlStmt::new(
            "UPDATE user_pool SET enabled = ?2 WHERE oid = ?1",
            vec![SqlValue::Int(id), SqlValue::Int(on as i64)],
        )
        .must_match()],
    )
    .await
}
