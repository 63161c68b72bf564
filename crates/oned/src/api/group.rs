//! `one.group.*` and `one.grouppool.info`. Groups 0 (`oneadmin`) and 1 (`users`) exist from the
//! start; new ones get ids from 100.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::print_rows;
use super::xml::esc;
use super::{code, fail, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

const QUOTAS: &str =
    "<DATASTORE_QUOTA></DATASTORE_QUOTA><NETWORK_QUOTA></NETWORK_QUOTA><VM_QUOTA></VM_QUOTA><IMAGE_QUOTA></IMAGE_QUOTA>";

struct GroupRow {
    oid: i64,
    name: String,
    template: String,
    users: Vec<i64>,
    admins: Vec<i64>,
}

fn ids(list: &[i64]) -> String {
    list.iter().map(|i| format!("<ID>{i}</ID>")).collect()
}

fn template_xml(text: &str) -> String {
    template::Template::parse(text)
        .map(|t| t.to_xml())
        .unwrap_or_else(|_| "<TEMPLATE></TEMPLATE>".to_string())
}

fn group_xml(g: &GroupRow, with_quotas: bool) -> String {
    format!(
        "<GROUP><ID>{}</ID><NAME>{}</NAME>{}<USERS>{}</USERS><ADMINS>{}</ADMINS>{}</GROUP>",
        g.oid,
        esc(&g.name),
        template_xml(&g.template),
        ids(&g.users),
        ids(&g.admins),
        if with_quotas {
            format!("{QUOTAS}<DEFAULT_GROUP_QUOTAS>{QUOTAS}</DEFAULT_GROUP_QUOTAS>")
        } else {
            String::new()
        }
    )
}

fn group_row(
    c: &sqlstore::rusqlite::Connection,
    r: &sqlstore::rusqlite::Row<'_>,
) -> Result<GroupRow, sqlstore::rusqlite::Error> {
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

fn load_groups(
    c: &sqlstore::rusqlite::Connection,
    only: Option<i64>,
) -> Result<Vec<GroupRow>, sqlstore::rusqlite::Error> {
    let mut st = c.prepare(
        "SELECT oid, name, template FROM group_pool WHERE ?1 IS NULL OR oid = ?1 ORDER BY oid",
    )?;
    let groups = st.query_map([only], |r| group_row(c, r))?.collect();
    groups
}

fn no_group(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting group [{id}]."))
}

fn not_authorized(s: &Session, what: &str) -> Failure {
    fail(
        code::AUTHORIZATION,
        format!("User [{}] : Not authorized to perform {what}.", s.uid),
    )
}

/// Groups the caller belongs to.
async fn my_groups(ctx: &Ctx, uid: i64) -> Result<Vec<i64>, Failure> {
    ctx.read(move |c| {
        let mut st = c.prepare("SELECT gid FROM user_groups WHERE uid = ?1")?;
        let gids = st.query_map([uid], |r| r.get(0))?.collect();
        gids
    })
    .await
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    if !s.is_admin() {
        return Err(not_authorized(s, "CREATE GROUP"));
    }
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let insert = SqlStmt::new(
        "INSERT INTO group_pool (oid, name, template)
             SELECT last_oid + 1, ?1, '' FROM pool_control WHERE tablename = 'group_pool'
             RETURNING oid",
        vec![SqlValue::Text(name.clone())],
    );
    super::allocate_next(ctx, "group_pool", insert, "group", "GROUP", &name).await
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let mut id = p.int(0)? as i64;
    if id == -1 {
        id = s.gid;
    }
    if !s.is_admin() && !my_groups(ctx, s.uid).await?.contains(&id) {
        return Err(not_authorized(s, &format!("USE GROUP [{id}]")));
    }
    let mut groups = ctx.read(move |c| load_groups(c, Some(id))).await?;
    match groups.pop() {
        Some(g) => Ok(Value::String(group_xml(&g, true))),
        None => Err(no_group(id)),
    }
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
            let sql = format!("SELECT oid, name, template FROM group_pool{cond} ORDER BY oid");
            print_rows(
                c,
                &sql,
                args,
                group_row,
                |g, out| {
                    out.push_str(&group_xml(g, false));
                    out.push_str(&format!("<QUOTAS><ID>{}</ID>{QUOTAS}</QUOTAS>", g.oid));
                },
                &mut out,
            )?;
            out.push_str(&format!(
                "<DEFAULT_GROUP_QUOTAS>{QUOTAS}</DEFAULT_GROUP_QUOTAS></GROUP_POOL>"
            ));
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE GROUP [{id}]")));
    }
    if id < 100 {
        return Err(fail(
            code::ACTION,
            "Cannot delete group. System Groups (ID < 100) cannot be deleted.",
        ));
    }
    let txn = SqlTxn {
        stmts: vec![
            // A group with users is kept, as in OpenNebula.
            SqlStmt::new(
                "SELECT 1 FROM group_pool
                 WHERE oid = ?1 AND NOT EXISTS (SELECT 1 FROM user_groups WHERE gid = ?1)",
                vec![SqlValue::Int(id)],
            )
            .must_match(),
            SqlStmt::new(
                "DELETE FROM group_pool WHERE oid = ?1",
                vec![SqlValue::Int(id)],
            )
            .must_match(),
            SqlStmt::new(
                "DELETE FROM group_admins WHERE gid = ?1",
                vec![SqlValue::Int(id)],
            ),
            SqlStmt::new(
                "DELETE FROM acl WHERE user = ?1",
                vec![SqlValue::Int(wire::acl::GROUP_ID as i64 | id)],
            ),
        ],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => {
            let exists = ctx.read(move |c| load_groups(c, Some(id))).await?;
            if exists.is_empty() {
                Err(no_group(id))
            } else {
                Err(fail(code::ACTION, "Cannot delete group. Group has users."))
            }
        }
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::ACTION, format!("Cannot delete group. {m}"))),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

/// `one.group.addadmin` / `deladmin`: `add` true adds.
async fn admin(ctx: &Ctx, s: &Session, p: Params<'_>, add: bool) -> MethodResult {
    let (gid, uid) = (p.int(0)? as i64, p.int(1)? as i64);
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE GROUP [{gid}]")));
    }
    let stmt = if add {
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
    let txn = SqlTxn {
        stmts: vec![
            SqlStmt::new(
                "SELECT oid FROM group_pool WHERE oid = ?1",
                vec![SqlValue::Int(gid)],
            )
            .must_match(),
            stmt.must_match(),
        ],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(gid as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(fail(
            code::ACTION,
            format!(
                "Cannot {} admin of group [{gid}]: user [{uid}] is not {}.",
                if add { "add" } else { "remove" },
                if add { "in the group" } else { "an admin" }
            ),
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

pub async fn addadmin(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    admin(ctx, s, p, true).await
}

pub async fn deladmin(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    admin(ctx, s, p, false).await
}

/// `one.group.update(id, template, type)`.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    if !s.is_admin() {
        return Err(not_authorized(s, &format!("MANAGE GROUP [{id}]")));
    }
    super::update_template(ctx, &p, "group_pool", "template", no_group).await
}
