//! `one.user.*` and `one.userpool.info`: the first replicated object family.

use sqlstore::objects::user as rows;
use sqlstore::{SqlStmt, SqlTxn, TxnErrorKind, UserRow};
use xmlrpc::{Params, Value};

use super::group::empty_quotas;
use super::method::{Auth, Method};
use super::xml::{self, Xml};
use super::{code, fail, not_authorized, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use sqlstore::objects::Table;

pub const METHODS: &[Method] = &[
    method!(
        wire::method::USER_ALLOCATE,
        Write,
        Auth::Admin("CREATE USER"),
        allocate
    ),
    method!(wire::method::USER_INFO, Read, Auth::Object, info),
    method!(wire::method::USER_PASSWD, Write, Auth::Object, passwd),
    method!(
        wire::method::USER_DELETE,
        Write,
        Auth::AdminOn("MANAGE USER"),
        delete
    ),
    method!(wire::method::USER_UPDATE, Write, Auth::Object, update),
    method!(
        wire::method::USER_CHGRP,
        Write,
        Auth::AdminOn("MANAGE USER"),
        chgrp
    ),
    method!(
        "one.user.addgroup",
        Write,
        Auth::AdminOn("MANAGE USER"),
        addgroup
    ),
    method!(
        "one.user.delgroup",
        Write,
        Auth::AdminOn("MANAGE USER"),
        delgroup
    ),
    method!(
        wire::method::USER_ENABLE,
        Write,
        Auth::AdminOn("MANAGE USER"),
        enable
    ),
    method!(wire::method::USERPOOL_INFO, Read, Auth::Object, pool_info),
];

/// A user; `with_quotas` for `one.user.info` (a pool lists quotas apart).
pub fn user_xml(u: &UserRow, with_quotas: bool, out: &mut String) {
    Xml::new(out).elem("USER", |x| {
        x.num("ID", u.oid)
            .num("GID", u.gid)
            .elem("GROUPS", |x| {
                for g in &u.groups {
                    x.num("ID", g);
                }
            })
            .text("GNAME", &u.gname)
            .text("NAME", &u.name)
            .text("PASSWORD", &u.password)
            .text("AUTH_DRIVER", &u.auth_driver)
            .num("ENABLED", u.enabled as i32)
            .empty("LOGIN_TOKEN")
            .raw(&xml::template(&u.template, "TEMPLATE"));
        if with_quotas {
            empty_quotas(x);
            x.elem("DEFAULT_USER_QUOTAS", empty_quotas);
        }
    });
}

fn no_user(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting user [{id}]."))
}

pub async fn allocate(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
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
    super::must_exist(ctx, Table::Group, gid).await?;
    let hash = password_hash(ctx, &password).await?;
    let txn = SqlTxn {
        stmts: rows::insert(&name, hash, &driver, gid),
    };
    let mut taken = false;
    let written = ctx
        .commit(txn, |r| {
            taken = r.kind == TxnErrorKind::Constraint;
            fail(
                code::INTERNAL,
                format!("Error allocating a new user. {}", r.message),
            )
        })
        .await;
    match written {
        Ok(values) => super::new_id(&values, "user"),
        Err(_) if taken => {
            let other = ctx
                .read(move |c| sqlstore::find_user_by_name(c, &name))
                .await?
                .map_or_else(|| "?".to_string(), |u| u.oid.to_string());
            Err(fail(
                code::INTERNAL,
                format!("Error allocating a new user. NAME is already taken by USER {other}."),
            ))
        }
        Err(f) => Err(f),
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
    let u = load(ctx, id).await?;
    Ok(Value::String(xml::build_with(|out| {
        user_xml(&u, true, out)
    })))
}

/// `one.userpool.info()`: every user for an administrator, else only the caller; read and
/// printed one row at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let only = (!s.is_admin()).then_some(s.uid);
    let out = ctx
        .read(move |c| {
            let mut out = String::from("<USER_POOL>");
            sqlstore::for_each_user(c, only, |u| {
                user_xml(u, false, &mut out);
                Xml::new(&mut out).elem("QUOTAS", |x| {
                    x.num("ID", u.oid);
                    empty_quotas(x);
                });
            })?;
            Xml::new(&mut out)
                .elem("DEFAULT_USER_QUOTAS", empty_quotas)
                .close("USER_POOL");
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
        stmts: vec![rows::set_password(id, hash)],
    };
    ctx.commit(txn, |r| r.missing(no_user(id))).await?;
    Ok(Value::Int(id as i32))
}

pub async fn delete(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    if id == 0 || id == 1 {
        return Err(fail(
            code::ACTION,
            "Cannot delete user. oneadmin and serveradmin cannot be deleted.",
        ));
    }
    let txn = SqlTxn {
        stmts: rows::delete(id),
    };
    ctx.commit(txn, |r| match r.kind {
        TxnErrorKind::NotFound => no_user(id),
        _ => fail(code::ACTION, format!("Cannot delete user. {}", r.message)),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.user.update(id, template, type)`: type 0 replaces the template, 1 merges into it.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    if !s.is_admin() && id != s.uid {
        return Err(not_authorized(s, &format!("MANAGE USER [{id}]")));
    }
    super::update_template(ctx, &p, rows::TABLE, "template", no_user).await
}

/// Runs a membership change; NotFound means the user is gone.
async fn membership(ctx: &Ctx, id: i64, stmts: Vec<SqlStmt>) -> MethodResult {
    ctx.commit(SqlTxn { stmts }, |r| r.missing(no_user(id)))
        .await?;
    Ok(Value::Int(id as i32))
}

/// `one.user.chgrp(uid, gid)`: a new primary group (also made a membership).
pub async fn chgrp(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    if id == 0 {
        return Err(fail(
            code::ACTION,
            "Cannot change primary group of user oneadmin",
        ));
    }
    super::must_exist(ctx, Table::Group, gid).await?;
    membership(ctx, id, rows::set_primary_group(id, gid)).await
}

/// `one.user.addgroup(uid, gid)`: a secondary group.
pub async fn addgroup(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    super::must_exist(ctx, Table::Group, gid).await?;
    membership(
        ctx,
        id,
        vec![rows::must_exist(id), rows::join_group(id, gid)],
    )
    .await
}

/// `one.user.delgroup(uid, gid)`: leaves a secondary group (never the primary one).
pub async fn delgroup(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let (id, gid) = (p.int(0)? as i64, p.int(1)? as i64);
    let user = load(ctx, id).await?;
    if user.gid == gid {
        return Err(fail(
            code::ACTION,
            "Cannot remove user from group. Cannot remove user from primary group.",
        ));
    }
    membership(ctx, id, vec![rows::leave_group(id, gid)]).await
}

/// `one.user.enable(uid, enable)`: a disabled user cannot authenticate.
pub async fn enable(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    membership(ctx, id, vec![rows::set_enabled(id, on)]).await
}
