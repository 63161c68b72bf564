//! `one.group.*` and `one.grouppool.info`. Groups 0 (`oneadmin`) and 1 (`users`) exist from the
//! start; new ones get ids from 100.

use sqlstore::objects::group::{self as rows, GroupRow};
use sqlstore::objects::Table;
use sqlstore::{SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::print_rows;
use super::method::{self as table, Auth, Method, Need};
use super::quota::{self, Quotas};
use super::quota_cache;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use sqlstore::objects::quota::{Owner, DEFAULTS};
use wire::acl::{ADMIN, GROUP, MANAGE, USE};

/// OpenNebula's rights: `GroupAllocate` CREATE, `GroupInfo` USE (a group's members may),
/// `GroupDelete` ADMIN, `GroupEditAdmin` ADMIN on the group and on the user,
/// `GroupUpdateTemplate` MANAGE.
pub const METHODS: &[Method] = &[
    method!(
        wire::method::GROUP_ALLOCATE,
        Write,
        Auth::Create(GROUP),
        allocate
    ),
    // Group -1 is the caller's.
    method!(
        wire::method::GROUP_INFO,
        Read,
        Auth::Deferred(GROUP, USE),
        info
    ),
    method!(
        wire::method::GROUP_DELETE,
        Write,
        Auth::On(GROUP, ADMIN),
        delete
    ),
    method!(
        "one.group.addadmin",
        Write,
        Auth::Deferred(GROUP, ADMIN),
        addadmin
    ),
    method!(
        "one.group.deladmin",
        Write,
        Auth::Deferred(GROUP, ADMIN),
        deladmin
    ),
    method!("one.group.update", Write, Auth::On(GROUP, MANAGE), update),
    // The groups the caller may USE: its own, and those ACL rules grant.
    method!(wire::method::GROUPPOOL_INFO, Read, Auth::Object, pool_info),
];

/// A group; with its quotas and the defaults for `one.group.info` (a pool lists quotas apart).
pub(super) fn group_xml(g: &GroupRow, quotas: Option<(&Quotas, &Quotas)>, out: &mut String) {
    Xml::new(out).elem("GROUP", |x| {
        x.num("ID", g.oid)
            .text("NAME", &g.name)
            .raw(&xml::template(&g.template, "TEMPLATE"))
            .ids("USERS", &g.users)
            .ids("ADMINS", &g.admins);
        if let Some((mine, defaults)) = quotas {
            mine.write(x);
            quota::write_defaults(x, Owner::Group, defaults);
        }
    });
}

/// `Request::failure_response(NO_EXISTS)`: `[id]`, or ` Pool.` for -1.
fn no_group(id: i64) -> Failure {
    match id {
        -1 => fail(code::NO_EXISTS, "Error getting group Pool."),
        _ => fail(code::NO_EXISTS, format!("Error getting group [{id}].")),
    }
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
    table::require_on(ctx, s, GROUP, id, USE).await?;
    let lookup = quota_cache::Lookup::start(ctx, Owner::Group, id);
    let (g, q) = ctx
        .read(move |c| Ok((rows::load(c, id)?, lookup.read(c)?)))
        .await?;
    let g = g.ok_or_else(|| no_group(id))?;
    q.keep(ctx);
    Ok(Value::String(xml::build_with(|out| {
        group_xml(&g, Some((&q.mine, &q.defaults)), out)
    })))
}

/// `one.grouppool.info()`: the groups the caller may USE (every one for group oneadmin, else
/// its own and those ACL rules grant), printed one at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let order = super::list_order::for_session(ctx, s).await?;
    let (cache, now) = (ctx.quotas.clone(), quota_cache::pool_generation(ctx));
    let out = table::read_visible(ctx, s, GROUP, move |c, may_use| {
        let mut out = String::from("<GROUP_POOL>");
        let sql = format!("{} ORDER BY oid{}", rows::SELECT, order.sql());
        let all = quota_cache::pool(&cache, now, c, Owner::Group)?;
        let each = |g: &GroupRow, out: &mut String| {
            if !may_use(g.oid) {
                return;
            }
            group_xml(g, None, out);
            Xml::new(out).elem("QUOTAS", |x| {
                x.num("ID", g.oid);
                all.of(g.oid).write(x);
            });
        };
        print_rows(c, &sql, Vec::new(), rows::read, each, &mut out)?;
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
    // `RequestManagerDelete`: the group first (NO_EXISTS), then `GroupPool::drop`'s refusal.
    if id < 100 {
        super::must_exist(ctx, Table::Group, id).await?;
    }
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
            super::must_exist(ctx, Table::Group, id).await?;
            Err(fail(
                code::ACTION,
                format!("Cannot delete group. Group {id} is not empty."),
            ))
        }
        Err(f) => Err(f),
    }
}

/// `one.group.addadmin` / `deladmin`: `add` true adds. Anyone but group oneadmin needs ADMIN on
/// the group and on the user, once both exist (`GroupEditAdmin`).
async fn admin(ctx: &Ctx, s: &Session, p: Params<'_>, add: bool) -> MethodResult {
    let (gid, uid) = (p.int(0)? as i64, p.int(1)? as i64);
    // Both must exist, for group oneadmin too: a missing one is NO_EXISTS, not a refusal.
    super::must_exist(ctx, Table::Group, gid).await?;
    let user = table::owned(ctx, Table::User, uid).await?;
    if !s.is_admin() {
        let needs = [
            Need::on(GROUP, gid, ADMIN),
            Need::owned(wire::acl::USER, user, ADMIN),
        ];
        table::require(ctx, s, &needs).await?;
    }
    // `Group::add_admin` / `del_admin`, INTERNAL after "Cannot edit group. ".
    let refused = |why: String| fail(code::INTERNAL, format!("Cannot edit group. {why}"));
    let (member, admin) = ctx
        .read(move |c| sqlstore::objects::group::membership_of(c, gid, uid))
        .await?;
    if add && !member {
        return Err(refused(format!("User {uid} is not part of Group {gid}.")));
    }
    if add && admin {
        return Err(refused(format!(
            "User {uid} is already an administrator of Group {gid}."
        )));
    }
    if !add && !admin {
        return Err(refused(format!(
            "User {uid} is not an administrator of Group {gid}."
        )));
    }
    let txn = SqlTxn {
        stmts: rows::set_admin(gid, uid, add),
    };
    ctx.commit(txn, |r| {
        r.missing(refused(format!("User {uid} is not part of Group {gid}.")))
    })
    .await?;
    Ok(Value::Int(gid as i32))
}

pub async fn addadmin(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    admin(ctx, s, p, true).await
}

pub async fn deladmin(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    admin(ctx, s, p, false).await
}

/// `one.group.update(id, template, type)`.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let ras = if s.is_admin() {
        Vec::new()
    } else {
        super::restricted::group(ctx)
    };
    // `Group::post_update_template`: the VM operation lists name operations.
    super::writes::update_template_checked(
        ctx,
        &p,
        "group_pool",
        "template",
        no_group,
        super::writes::UpdateChecks {
            ras: &ras,
            post: Some(|_, t| super::vm_ops::check(t)),
            with: &[],
        },
    )
    .await
}
