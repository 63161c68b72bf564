//! The calls every owned object has (`RequestManagerChmod`, `Chown`, `Rename`,
//! `UpdateTemplate`, `Lock`, `Unlock`, `Delete`): written once for every [`Family`], with
//! OpenNebula's checks and messages.

use sqlstore::objects::{self, HasOwner, Lock, Table};
use sqlstore::{SqlStmt, SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::perms::{self, caller, ADMIN, MANAGE, NO_LOCK, USE};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// The table entries of the owned-object calls of a family: `owned_methods!("one.image",
/// &storage::IMAGES)` gives `one.image.chmod`, `chown`, `rename` and `update`;
/// `owned_methods!(lockable ...)` also `lock` and `unlock`.
#[macro_export]
macro_rules! owned_methods {
    ($prefix:literal, $family:expr) => {
        $crate::owned_methods!(@each $prefix, $family, [chmod, chown, rename, update])
    };
    (lockable $prefix:literal, $family:expr) => {
        $crate::owned_methods!(
            @each $prefix, $family, [chmod, chown, rename, update, lock, unlock]
        )
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

/// `one.<o>.chmod(id, ou, om, oa, gu, gm, ga, xu, xm, xa)` (-1 keeps a bit), as
/// `RequestManagerChmod`: MANAGE on the object, ADMIN when an ADMIN bit changes, and the
/// `other` bits only where `ENABLE_OTHER_PERMISSIONS` allows (always for administrators).
pub async fn chmod<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let row = f.get(ctx, id).await?;
    let old = row.owner().perms;
    let args = perms::ChmodArgs::read(&p)?;
    let changed = args.changing(old);
    let op = if changed & 0o111 != 0 { ADMIN } else { MANAGE };
    if changed & 0o007 != 0 && !s.is_admin() && !other_permissions(ctx) {
        return Err(fail(
            code::AUTHORIZATION,
            format!(
                "User [{}] : 'other' permissions is disabled in oned.conf.",
                s.uid
            ),
        ));
    }
    if let Some(why) = f.refusal(&caller(ctx, s).await?, &row, op) {
        return Err(super::unauthorized(s, &why));
    }
    let new = args.apply(old)?;
    let stmt = objects::set_perms(f.table, id, new);
    write(ctx, f, id, vec![stmt], "change permissions of").await
}

/// `ENABLE_OTHER_PERMISSIONS` of oned.conf; OpenNebula's default is YES.
pub(super) fn other_permissions(ctx: &Ctx) -> bool {
    ctx.config
        .raw
        .single("ENABLE_OTHER_PERMISSIONS")
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("yes"))
}

/// `one.<o>.chown(id, uid, gid)` (-1 keeps either), as `RequestManagerChown`: the new user and
/// group must exist, then MANAGE on the object, MANAGE on the new user and USE on the new group,
/// every refusal named.
pub async fn chown<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    chown_checked(ctx, s, p, f, |r| {
        Ok(f.quota.and_then(|q| q(r)).into_iter().collect())
    })
    .await
}

/// [`chown`], the object then checked by `check` once the caller is authorized (a VM's state,
/// `get_and_quota`), which answers what it counts for in the new owner's quotas.
pub async fn chown_checked<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
    check: impl FnOnce(&R) -> Result<Vec<super::quota::Ask>, Failure>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let (uid, gid) = (p.int(1)? as i64, p.int(2)? as i64);
    // The new owner's group too: a rule on its group's users (`USER/@gid`, a group
    // administrator's) lets the caller MANAGE it.
    let mut user_gid = -1;
    if uid > -1 {
        let user = ctx
            .read(move |c| sqlstore::load_user(c, uid))
            .await?
            .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting user [{uid}].")))?;
        user_gid = user.gid;
    }
    if gid > -1 {
        super::must_exist(ctx, Table::Group, gid).await?;
    }
    let row = f.get(ctx, id).await?;
    let o = row.owner();
    // A change to the same owner or group is no change.
    let uid = if uid == o.uid { -1 } else { uid };
    let gid = if gid == o.gid { -1 } else { gid };
    let c = caller(ctx, s).await?;
    let mut why: Vec<String> = f.refusal(&c, &row, MANAGE).into_iter().collect();
    if uid > -1 && !c.may_on(wire::acl::USER, uid, user_gid, MANAGE) {
        why.push(format!("Not authorized to perform MANAGE USER [{uid}]"));
    }
    if gid > -1 && !c.groups.contains(&gid) && !c.may_on(wire::acl::GROUP, gid, gid, USE) {
        why.push(format!("Not authorized to perform USE GROUP [{gid}]"));
    }
    super::granted_unless(s, &why)?;
    // `check_name_unique`: the new owner must not hold the name already (families whose names
    // may repeat, and datastores and markets, named zone-wide, skip it).
    let repeats = [
        objects::vm::TABLE,
        objects::document::TABLE,
        objects::datastore::TABLE,
        objects::market::MARKETS,
    ];
    if uid > -1 && !repeats.contains(&f.table) {
        let (table, name) = (f.table, row.name().to_string());
        let held = ctx
            .read(move |c| objects::owned_named(c, table, &name, uid))
            .await?;
        if let Some(other) = held {
            return Err(fail(
                code::INTERNAL,
                format!(
                    "user [{uid}] already owns {} [{other}] with NAME {}",
                    f.what,
                    row.name()
                ),
            ));
        }
    }
    // Then `get_and_quota` (a VM's state) and the family's own refusal (a public market's app).
    let asks = check(&row)?;
    let (nu, ng) = (
        if uid > -1 { uid } else { o.uid },
        if gid > -1 { gid } else { o.gid },
    );
    let mut stmts = vec![objects::set_owner(f.table, id, nu, ng)];
    stmts.extend(name_guard(f.table, id));
    // The new owner's quotas take what the object counts for (OpenNebula's chown checks them
    // too, for the owner and group that change); the guard holds them where it is applied.
    let charge = (!asks.is_empty()).then(|| super::quota::Charge {
        asks: &asks,
        uid: uid.max(0),
        gid: gid.max(0),
        wording: super::quota::Wording::Caller(s.uid),
    });
    super::quota::commit_charged(ctx, stmts, charge, |r| match r.kind {
        TxnErrorKind::NotFound if r.stmt == 0 => f.missing(id),
        // The name guard: the new owner took a template of this name meanwhile.
        TxnErrorKind::Constraint | TxnErrorKind::NotFound => fail(
            code::ACTION,
            format!(
                "Cannot change the owner of {}: NAME is already taken.",
                f.what
            ),
        ),
        _ => r.internal(),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.<o>.lock(id, level, test)`, as `RequestManagerLock`: MANAGE on the object (whatever
/// its lock), level 1 USE (and 4, ALL), 2 MANAGE or 3 ADMIN. A lock held by another user is
/// only taken over by an administrator; with `test`, a locked object answers ACTION with the
/// time it was locked.
pub async fn lock<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let level = p.int(1)?;
    let test = p.opt_bool(2)?.unwrap_or(false);
    let row = f.authorized(ctx, s, id, MANAGE | NO_LOCK).await?;
    let level = match level {
        1 | 4 => 1,
        2 => 2,
        3 => 3,
        _ => return Err(fail(code::ACTION, "Wrong lock level specified")),
    };
    let was = row.lock().copied().unwrap_or_default();
    if test && was.level != 0 {
        return Err(fail(code::ACTION, was.time.to_string()));
    }
    if was.level != 0 && was.owner != s.uid && !s.is_admin() {
        return Err(fail(code::ACTION, "Error trying to lock the resource."));
    }
    let lock = Lock {
        level,
        owner: s.uid,
        time: super::vm::now(),
        req_id: -1,
    };
    let stmt = objects::set_lock(f.table, id, lock, was);
    ctx.commit(SqlTxn { stmts: vec![stmt] }, |r| {
        r.missing(fail(code::ACTION, "Error trying to lock the resource."))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.<o>.unlock(id)`, as `RequestManagerUnlock`: MANAGE on the object; the lock's owner
/// or an administrator releases it.
pub async fn unlock<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let row = f.authorized(ctx, s, id, MANAGE | NO_LOCK).await?;
    let was = row.lock().copied().unwrap_or_default();
    if !s.is_admin() && s.uid != was.owner {
        return Err(fail(
            code::ACTION,
            "Cannot unlock: Lock is owned by another user",
        ));
    }
    let free = Lock {
        level: 0,
        owner: -1,
        time: super::vm::now(),
        req_id: -1,
    };
    let stmt = objects::set_lock(f.table, id, free, was);
    ctx.commit(SqlTxn { stmts: vec![stmt] }, |r| {
        r.missing(fail(
            code::ACTION,
            "Cannot unlock: the lock changed meanwhile, try again",
        ))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

pub async fn rename<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    rename_as(ctx, s, p, f, MANAGE).await
}

/// `rename` needing `right` on the object (a VM's comes from `VM_*_OPERATIONS`).
pub async fn rename_as<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
    right: u64,
) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    // `RequestManagerRename`: the same name is a success, before any authorization.
    if f.get(ctx, id).await?.name() == name {
        return Ok(Value::Int(id as i32));
    }
    let row = f.authorized(ctx, s, id, right).await?;
    let owner = row.owner().uid;
    let collides = |other: i64| {
        fail(
            code::ACTION,
            format!(
                "{w} cannot be renamed to {name} because it collides with {w} {other}",
                w = f.what
            ),
        )
    };
    // `RequestManagerRename`: the name's holder first, then `set_name` (ACTION with
    // `name_is_valid`'s message).
    if let Some(other) = holder(ctx, f, &name, owner).await? {
        return Err(collides(other));
    }
    super::validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    let mut stmts = vec![objects::set_name(f.table, id, &name)];
    stmts.extend(name_guard(f.table, id));
    match write(ctx, f, id, stmts, "rename").await {
        // Taken meanwhile by a concurrent call.
        Err(e) => match holder(ctx, f, &name, owner).await? {
            Some(other) => Err(collides(other)),
            None => Err(e),
        },
        ok => ok,
    }
}

/// The guard a rename or chown of object `id` ends with where the database does not keep its
/// names unique per owner itself (VM templates).
fn name_guard(table: &str, id: i64) -> Option<SqlStmt> {
    (table == objects::template::TABLE).then(|| objects::template::name_still_unique(id))
}

/// The object of the family holding `name` for `owner`, as `RequestManagerRename`'s `exist`
/// looks for one: per owner for most families, zone-wide for datastores, never for VMs,
/// documents and virtual routers (their names may repeat).
async fn holder<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    f: &'static Family<R>,
    name: &str,
    owner: i64,
) -> Result<Option<i64>, Failure> {
    let (table, name) = (f.table, name.to_string());
    match table {
        objects::vm::TABLE | objects::document::TABLE | objects::vrouter::TABLE => Ok(None),
        objects::datastore::TABLE | objects::market::MARKETS => {
            ctx.read(move |c| objects::oid_named(c, table, &name)).await
        }
        _ => {
            ctx.read(move |c| objects::owned_named(c, table, &name, owner))
                .await
        }
    }
}

pub async fn update<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
) -> MethodResult {
    update_as(ctx, s, p, f, MANAGE).await
}

/// `update` needing `right` on the object (a VM's comes from `VM_*_OPERATIONS`).
pub async fn update_as<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
    right: u64,
) -> MethodResult {
    update_checked(ctx, s, p, f, right, None).await
}

/// [`update_as`], the new template then checked by `post` (`post_update_template`).
pub async fn update_checked<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
    right: u64,
    post: Option<super::writes::PostUpdate>,
) -> MethodResult {
    let id = p.int(0)? as i64;
    f.authorized(ctx, s, id, right).await?;
    update_with(ctx, s, p, f, post, &[]).await
}

/// The update of an object the caller was authorized on, written with `with` (a quota guard).
pub async fn update_with<R: HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    f: &'static Family<R>,
    post: Option<super::writes::PostUpdate>,
    with: &[SqlStmt],
) -> MethodResult {
    // `keep_restricted` for callers outside group oneadmin, by the template's kind.
    let ras = match f.table {
        _ if s.is_admin() => Vec::new(),
        objects::vm::TABLE | objects::template::TABLE => super::restricted::vm(ctx),
        objects::image::TABLE => super::restricted::image(ctx),
        objects::vntemplate::TABLE => super::restricted::vnet(ctx),
        _ => Vec::new(),
    };
    super::writes::update_template_checked(
        ctx,
        &p,
        f.table,
        f.template,
        |id| f.missing(id),
        super::writes::UpdateChecks {
            ras: &ras,
            post,
            with,
        },
    )
    .await
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
    let mut stmts = stmts;
    // `RequestManagerDelete::delete_object`: the rules on exactly this object go with it.
    stmts.push(objects::acl::drop_rules_on(f.kind, id));
    ctx.commit(SqlTxn { stmts }, refused).await?;
    Ok(Value::Int(id as i32))
}
