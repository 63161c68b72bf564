//! `one.group.*` and `one.grouppool.info`. Groups 0 (`oneadmin`) and 1 (`users`) exist from the
//! start; new ones get ids from 100.

use sqlstore::objects::group::{self as rows, GroupRow};
use sqlstore::{SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::print_rows;
use super::method::{Auth, Method};
use super::quota::{self, Quotas};
use super::xml::{self, Xml};
use super::{code, fail, not_authorized, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use sqlstore::objects::quota::{Owner, DEFAULTS};

pub const METHODS: &[Method] = &[
    method!(
        wire::method::GROUP_ALLOCATE,
        Write,
        Auth::Admin("CREATE GROUP"),
        allocate
    ),
    method!(wire::method::GROUP_INFO, Read, Auth::Object, info),
    method!(
        wire::method::GROUP_DELETE,
        Write,
        Auth::AdminOn("MANAGE GROUP"),
        delete
    ),
    method!(
        "one.group.addadmin",
        Write,
        Auth::AdminOn("MANAGE GROUP"),
        addadmin
    ),
    method!(
        "one.group.deladmin",
        Write,
        Auth::AdminOn("MANAGE GROUP"),
        deladmin
    ),
    method!(
        "one.group.update",
        Write,
        Auth::AdminOn("MANAGE GROUP"),
        update
    ),
    method!(wire::method::GROUPPOOL_INFO, Read, Auth::Object, pool_info),
];

fn ids(x: &mut Xml<'_>, list: &[i64]) {
    for i in list {
        x.num("ID", i);
    }
}

/// A group; with its quotas and the defaults for `one.group.info` (a pool lists quotas apart).
pub(super) fn group_xml(g: &GroupRow, quotas: Option<(&Quotas, &Quotas)>, out: &mut String) {
    Xml::new(out).elem("GROUP", |x| {
        x.num("ID", g.oid)
            .text("NAME", &g.name)
            .raw(&xml::template(&g.template, "TEMPLATE"))
            .elem("USERS", |x| ids(x, &g.users))
            .elem("ADMINS", |x| ids(x, &g.admins));
        if let Some((mine, defaults)) = quotas {
            mine.write(x);
            quota::write_defaults(x, Owner::Group, defaults);
        }
    });
}

fn no_group(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting group [{id}]."))
}

/// Groups the caller belongs to.
async fn my_groups(ctx: &Ctx, uid: i64) -> Result<Vec<i64>, Failure> {
    ctx.read(move |c| rows::of_user(c, uid)).await
}

pub async fn allocate(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let insert = rows::insert(&name);
    // Every new group joins VDC 0 with the rules it grants, as OpenNebula's GroupAllocate.
    let default = ctx
        .read(|c| sqlstore::objects::vdc::load(c, sqlstore::objects::vdc::DEFAULT))
        .await?;
    let with = default.map_or_else(Vec::new, |v| {
        sqlstore::objects::vdc::new_group_joins_default(&v.resources)
    });
    super::allocate_next_with(ctx, rows::TABLE, insert, with, "group", "GROUP", &name).await
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let mut id = p.int(0)? as i64;
    if id == -1 {
        id = s.gid;
    }
    if !s.is_admin() && !my_groups(ctx, s.uid).await?.contains(&id) {
        return Err(not_authorized(s, &format!("USE GROUP [{id}]")));
    }
    let (g, mine, defaults) = ctx
        .read(move |c| {
            Ok((
                rows::load(c, id)?,
                quota::load(c, Owner::Group, id)?,
                quota::load(c, Owner::Group, DEFAULTS)?,
            ))
        })
        .await?;
    let g = g.ok_or_else(|| no_group(id))?;
    Ok(Value::String(xml::build_with(|out| {
        group_xml(&g, Some((&mine, &defaults)), out)
    })))
}

/// `one.grouppool.info()`: every group for an administrator, else the caller's groups; only
/// those rows are read, and printed one at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let mine = if s.is_admin() {
        None
    } else {
        Some(my_groups(ctx, s.uid).await?)
    };
    let out = ctx
        .read(move |c| {
            let mut out = String::from("<GROUP_POOL>");
            let (cond, args) = match mine {
                None => (String::new(), Vec::new()),
                Some(gids) => (
                    format!(" WHERE oid IN ({})", vec!["?"; gids.len()].join(", ")),
                    gids,
                ),
            };
            // `oid IN ()` is false in SQLite: a user in no group sees none.
            let sql = format!("{}{cond} ORDER BY oid", rows::SELECT);
            let all = quota::AllQuotas::load(c, Owner::Group)?;
            let each = |g: &GroupRow, out: &mut String| {
                group_xml(g, None, out);
                Xml::new(out).elem("QUOTAS", |x| {
                    x.num("ID", g.oid);
                    all.of(g.oid).write(x);
                });
            };
            print_rows(c, &sql, args, rows::read, each, &mut out)?;
            let mut x = Xml::new(&mut out);
            quota::write_defaults(&mut x, Owner::Group, &all.of(DEFAULTS));
            x.close("GROUP_POOL");
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

pub async fn delete(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    super::family::deletable_id(
        id,
        "Cannot delete group. System Groups (ID < 100) cannot be deleted.",
    )?;
    let txn = SqlTxn {
        stmts: {
            let mut stmts = rows::delete_if_empty(id);
            stmts.push(sqlstore::objects::quota::drop_all(Owner::Group, id));
            stmts
        },
    };
    let mut kept = false;
    let deleted = ctx
        .commit(txn, |r| {
            kept = r.kind == TxnErrorKind::NotFound;
            fail(code::ACTION, format!("Cannot delete group. {}", r.message))
        })
        .await;
    match deleted {
        Ok(_) => Ok(Value::Int(id as i32)),
        // Either gone, or kept for its users: the group's row says which.
        Err(_) if kept => {
            super::must_exist(ctx, sqlstore::objects::Table::Group, id).await?;
            Err(fail(code::ACTION, "Cannot delete group. Group has users."))
        }
        Err(f) => Err(f),
    }
}

/// `one.group.addadmin` / `deladmin`: `add` true adds.
async fn admin(ctx: &Ctx, p: Params<'_>, add: bool) -> MethodResult {
    let (gid, uid) = (p.int(0)? as i64, p.int(1)? as i64);
    let txn = SqlTxn {
        stmts: rows::set_admin(gid, uid, add),
    };
    ctx.commit(txn, |r| {
        r.missing(fail(
            code::ACTION,
            format!(
                "Cannot {} admin of group [{gid}]: user [{uid}] is not {}.",
                if add { "add" } else { "remove" },
                if add { "in the group" } else { "an admin" }
            ),
        ))
    })
    .await?;
    Ok(Value::Int(gid as i32))
}

pub async fn addadmin(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    admin(ctx, p, true).await
}

pub async fn deladmin(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    admin(ctx, p, false).await
}

/// `one.group.update(id, template, type)`.
pub async fn update(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    super::update_template(ctx, &p, "group_pool", "template", no_group).await
}
