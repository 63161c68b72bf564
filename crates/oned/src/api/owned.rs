//! The calls every owned object has (`RequestManagerChmod`, `Chown`, `Rename`,
//! `UpdateTemplate`): `chmod`, `chown`, `rename` and `update`, written once for every
//! [`Family`], with OpenNebula's checks: MANAGE on the object, ADMIN bits and owner changes for
//! administrators only, a new group the caller belongs to.

use sqlstore::objects::{self, HasOwner, Table};
use sqlstore::{SqlStmt, SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::perms::{self, caller, MANAGE};
use super::{code, fail, not_authorized, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// The table entries of the owned-object calls of a family: `owned_methods!("one.image",
/// &storage::IMAGES)` gives `one.image.chmod`, `chown`, `rename` and `update`.
#[macro_export]
macro_rules! owned_methods {
    ($prefix:literal, $family:expr) => {
        $crate::owned_methods!(@each $prefix, $family, [chmod, chown, rename, update])
    };
    (@each $prefix:literal, $family:expr, [$($op:ident),*]) => {
        [$(
            $crate::method!(
                concat!($prefix, ".", stringify!($op)),
                Write,
                $crate::api::method::Auth::Object,
                $crate::api::owned::$op,
                $family
            )
        ),*]
    };
}

/// `one.<o>.info(id)`: the object, if the caller may USE it.
pub async fn info<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    f.info(ctx, s, p).await
}

/// `one.<o>pool.info(filter, start, end)`: the objects the caller may USE.
pub async fn pool_info<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    f.pool_info(ctx, s, p, super::perms::Where::default()).await
}

/// Replicates `stmts` changing object `id` of `f`: NO_EXISTS if it went away meanwhile, ACTION
/// if its new name is taken.
async fn write<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    f: &'static Family<R>,
    id: i64,
    stmts: Vec<SqlStmt>,
    action: &str,
) -> MethodResult {
    ctx.commit(SqlTxn { stmts }, |r| match r.kind {
        TxnErrorKind::NotFound => f.missing(id),
        TxnErrorKind::Constraint => fail(
            code::ACTION,
            format!("Cannot {action} {}: NAME is already taken.", f.what),
        ),
        _ => r.internal(),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

pub async fn chmod<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let o = f.authorized(ctx, s, id, MANAGE).await?.owner();
    let new = perms::chmod(o.perms, &p)?;
    // The ADMIN bits (owner, group, other) are for administrators to grant.
    if !s.is_admin() && (new ^ o.perms) & 0o111 != 0 {
        return Err(not_authorized(s, &format!("ADMIN {} [{id}]", f.acl)));
    }
    let stmt = objects::set_perms(f.table, id, new);
    write(ctx, f, id, vec![stmt], "change permissions of").await
}

pub async fn chown<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let (uid, gid) = (p.int(1)? as i64, p.int(2)? as i64);
    let o = f.authorized(ctx, s, id, MANAGE).await?.owner();
    if uid >= 0 && uid != o.uid && !s.is_admin() {
        return Err(not_authorized(s, &format!("ADMIN {} [{id}]", f.acl)));
    }
    let c = caller(ctx, s).await?;
    if gid >= 0 && gid != o.gid && !s.is_admin() && !c.groups.contains(&gid) {
        return Err(not_authorized(s, &format!("USE GROUP [{gid}]")));
    }
    let (nu, ng) = (
        if uid >= 0 { uid } else { o.uid },
        if gid >= 0 { gid } else { o.gid },
    );
    super::must_exist(ctx, Table::User, nu).await?;
    super::must_exist(ctx, Table::Group, ng).await?;
    let stmt = objects::set_owner(f.table, id, nu, ng);
    write(ctx, f, id, vec![stmt], "change the owner of").await
}

pub async fn rename<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    f.authorized(ctx, s, id, MANAGE).await?;
    // OpenNebula's `set_name`: ACTION with `name_is_valid`'s message.
    super::validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    let stmt = objects::set_name(f.table, id, &name);
    write(ctx, f, id, vec![stmt], "rename").await
}

pub async fn update<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    f.authorized(ctx, s, id, MANAGE).await?;
    super::update_template(ctx, &p, f.table, f.template, |id| f.missing(id)).await
}

/// `one.<o>.delete(id)`: the caller must MANAGE the object; `stmts` delete it, and a
/// refusal (a guard that matched nothing: the object is in use, in the wrong state...) is worded
/// by `refused`.
pub async fn delete<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    f: &'static Family<R>,
    id: i64,
    stmts: Vec<SqlStmt>,
    refused: impl FnOnce(super::Refused) -> Failure,
) -> MethodResult {
    f.authorized(ctx, s, id, MANAGE).await?;
    ctx.commit(SqlTxn { stmts }, refused).await?;
    Ok(Value::Int(id as i32))
}
