//! The calls every owned object has (`RequestManagerChmod`, `Chown`, `Rename`,
//! `UpdateTemplate`): `chmod`, `chown`, `rename` and `update`, for VMs, templates, images,
//! virtual networks and datastores.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::perms::{self, caller, not_authorized, Owned, MANAGE};
use super::{code, fail, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

/// Where a family lives and how its messages name it.
pub struct Family {
    pub table: &'static str,
    /// ACL resource bit.
    pub kind: u64,
    /// `virtual machine`, `image`...
    pub what: &'static str,
    /// ACL name: `VM`, `IMAGE`...
    pub acl: &'static str,
    /// The column `update` edits.
    pub template: &'static str,
}

pub const VM: Family = Family {
    table: "vm_pool",
    kind: perms::VM,
    what: "virtual machine",
    acl: "VM",
    template: "user_template",
};
pub const TEMPLATE: Family = Family {
    table: "template_pool",
    kind: perms::TEMPLATE,
    what: "virtual machine template",
    acl: "TEMPLATE",
    template: "template",
};
pub const IMAGE: Family = Family {
    table: "image_pool",
    kind: super::storage::IMAGE,
    what: "image",
    acl: "IMAGE",
    template: "template",
};
pub const NET: Family = Family {
    table: "vnet_pool",
    kind: super::vnet::NET,
    what: "virtual network",
    acl: "NET",
    template: "template",
};
pub const DATASTORE: Family = Family {
    table: "datastore_pool",
    kind: super::storage::DATASTORE,
    what: "datastore",
    acl: "DATASTORE",
    template: "template",
};

async fn load(ctx: &Ctx, f: &'static Family, id: i64) -> Result<(Owned, String), Failure> {
    let sql = format!(
        "SELECT oid, uid, gid, perms, {} FROM {} WHERE oid = ?1",
        f.template, f.table
    );
    let row = ctx
        .read(move |c| {
            use sqlstore::rusqlite::OptionalExtension;
            c.query_row(&sql, [id], |r| {
                Ok((
                    Owned {
                        oid: r.get(0)?,
                        uid: r.get(1)?,
                        gid: r.get(2)?,
                        perms: r.get(3)?,
                    },
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()
        })
        .await?;
    row.ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting {} [{id}].", f.what)))
}

async fn managed(
    ctx: &Ctx,
    s: &Session,
    f: &'static Family,
    id: i64,
) -> Result<(Owned, String), Failure> {
    let (o, t) = load(ctx, f, id).await?;
    if !caller(ctx, s).await?.may(f.kind, &o, MANAGE) {
        return Err(not_authorized(s, &format!("MANAGE {} [{id}]", f.acl)));
    }
    Ok((o, t))
}

async fn write(ctx: &Ctx, f: &Family, id: i64, stmts: Vec<SqlStmt>, action: &str) -> MethodResult {
    match ctx.write(SqlTxn { stmts }).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(fail(
            code::NO_EXISTS,
            format!("Error getting {} [{id}].", f.what),
        )),
        Err(TxnFailure::Txn(TxnErrorKind::Constraint, _)) => Err(fail(
            code::ACTION,
            format!("Cannot {action} {}: NAME is already taken.", f.what),
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(fl)) => Err(fl),
    }
}

pub async fn chmod(ctx: &Ctx, s: &Session, p: Params<'_>, f: &'static Family) -> MethodResult {
    let id = p.int(0)? as i64;
    let (o, _) = managed(ctx, s, f, id).await?;
    let new = perms::chmod(o.perms, &p)?;
    // The ADMIN bits (owner, group, other) are for administrators to grant.
    if !s.is_admin() && (new ^ o.perms) & 0o111 != 0 {
        return Err(not_authorized(s, &format!("ADMIN {} [{id}]", f.acl)));
    }
    let sql = format!("UPDATE {} SET perms = ?2 WHERE oid = ?1", f.table);
    write(
        ctx,
        f,
        id,
        vec![SqlStmt::new(&sql, vec![SqlValue::Int(id), SqlValue::Int(new)]).must_match()],
        "change permissions of",
    )
    .await
}

pub async fn chown(ctx: &Ctx, s: &Session, p: Params<'_>, f: &'static Family) -> MethodResult {
    let id = p.int(0)? as i64;
    let (uid, gid) = (p.int(1)? as i64, p.int(2)? as i64);
    let (o, _) = managed(ctx, s, f, id).await?;
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
    let exists = ctx
        .read(move |c| {
            let u: i64 =
                c.query_row("SELECT count(*) FROM user_pool WHERE oid = ?1", [nu], |r| {
                    r.get(0)
                })?;
            let g: i64 = c.query_row(
                "SELECT count(*) FROM group_pool WHERE oid = ?1",
                [ng],
                |r| r.get(0),
            )?;
            Ok((u > 0, g > 0))
        })
        .await?;
    if !exists.0 {
        return Err(fail(code::NO_EXISTS, format!("Error getting user [{nu}].")));
    }
    if !exists.1 {
        return Err(fail(
            code::NO_EXISTS,
            format!("Error getting group [{ng}]."),
        ));
    }
    let sql = format!("UPDATE {} SET uid = ?2, gid = ?3 WHERE oid = ?1", f.table);
    write(
        ctx,
        f,
        id,
        vec![SqlStmt::new(
            &sql,
            vec![SqlValue::Int(id), SqlValue::Int(nu), SqlValue::Int(ng)],
        )
        .must_match()],
        "change the owner of",
    )
    .await
}

pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>, f: &'static Family) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    managed(ctx, s, f, id).await?;
    // OpenNebula's `set_name`: ACTION with `name_is_valid`'s message.
    super::validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    let sql = format!("UPDATE {} SET name = ?2 WHERE oid = ?1", f.table);
    write(
        ctx,
        f,
        id,
        vec![SqlStmt::new(&sql, vec![SqlValue::Int(id), SqlValue::Text(name)]).must_match()],
        "rename",
    )
    .await
}

pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>, f: &'static Family) -> MethodResult {
    let id = p.int(0)? as i64;
    managed(ctx, s, f, id).await?;
    super::update_template(ctx, &p, f.table, f.template, |id| {
        fail(code::NO_EXISTS, format!("Error getting {} [{id}].", f.what))
    })
    .await
}
