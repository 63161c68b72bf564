//! `one.template.*` and `one.templatepool.info`: VM templates, instantiated into VMs.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::perms::{self, caller, not_authorized, Owned, MANAGE, TEMPLATE, USE, VM};
use super::xml::esc;
use super::{code, fail, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

struct TemplateRow {
    owned: Owned,
    name: String,
    uname: String,
    gname: String,
    regtime: i64,
    template: String,
}

fn template_xml(t: &TemplateRow) -> String {
    let body = template::Template::parse(&t.template)
        .map(|t| t.to_xml())
        .unwrap_or_else(|_| "<TEMPLATE></TEMPLATE>".to_string());
    format!(
        "<VMTEMPLATE><ID>{}</ID><UID>{}</UID><GID>{}</GID><UNAME>{}</UNAME><GNAME>{}</GNAME><NAME>{}</NAME>{}<REGTIME>{}</REGTIME>{body}</VMTEMPLATE>",
        t.owned.oid,
        t.owned.uid,
        t.owned.gid,
        esc(&t.uname),
        esc(&t.gname),
        esc(&t.name),
        perms::permissions_xml(t.owned.perms),
        t.regtime,
    )
}

const SELECT_TEMPLATES: &str =
    "SELECT t.oid, t.uid, t.gid, t.perms, t.name, COALESCE(u.name, ''), COALESCE(g.name, ''),
            t.regtime, t.template
     FROM template_pool t LEFT JOIN user_pool u ON u.oid = t.uid
          LEFT JOIN group_pool g ON g.oid = t.gid";

fn template_row(
    _: &sqlstore::rusqlite::Connection,
    r: &sqlstore::rusqlite::Row<'_>,
) -> Result<TemplateRow, sqlstore::rusqlite::Error> {
    Ok(TemplateRow {
        owned: Owned::from_row(r)?,
        name: r.get(4)?,
        uname: r.get(5)?,
        gname: r.get(6)?,
        regtime: r.get(7)?,
        template: r.get(8)?,
    })
}

fn no_template(id: i64) -> Failure {
    fail(
        code::NO_EXISTS,
        format!("Error getting virtual machine template [{id}]."),
    )
}

const TEMPLATES: Family<TemplateRow> = Family {
    kind: TEMPLATE,
    acl: "TEMPLATE",
    pool: "VMTEMPLATE_POOL",
    select: SELECT_TEMPLATES,
    alias: "t",
    row: template_row,
    owned: |t| t.owned,
    xml: template_xml,
    missing: no_template,
};

async fn load(ctx: &Ctx, id: i64) -> Result<TemplateRow, Failure> {
    TEMPLATES.get(ctx, id).await
}

async fn insert(ctx: &Ctx, s: &Session, name: &str, text: String) -> MethodResult {
    let insert = SqlStmt::new(
        "INSERT INTO template_pool (oid, name, uid, gid, perms, regtime, template)
             SELECT last_oid + 1, ?1, ?2, ?3, ?4, ?5, ?6 FROM pool_control
             WHERE tablename = 'template_pool' RETURNING oid",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(s.uid),
            SqlValue::Int(s.gid),
            SqlValue::Int(perms::DEFAULT_PERMS),
            SqlValue::Int(super::vm::now()),
            SqlValue::Text(text),
        ],
    );
    super::allocate_next(
        ctx,
        "template_pool",
        insert,
        "virtual machine template",
        "TEMPLATE",
        name,
    )
    .await
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let c = caller(ctx, s).await?;
    if !c.may_create(TEMPLATE) {
        return Err(not_authorized(s, "CREATE TEMPLATE"));
    }
    let t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let name = t
        .single("NAME")
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| fail(code::INTERNAL, "No NAME in template."))?;
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    insert(ctx, s, &name, t.to_text()).await
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    TEMPLATES.info(ctx, s, p).await
}

pub async fn pool_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    TEMPLATES
        .pool_info(ctx, s, p, perms::Where::default())
        .await
}

async fn managed(ctx: &Ctx, s: &Session, id: i64) -> Result<TemplateRow, Failure> {
    let t = load(ctx, id).await?;
    if !caller(ctx, s).await?.may(TEMPLATE, &t.owned, MANAGE) {
        return Err(not_authorized(s, &format!("MANAGE TEMPLATE [{id}]")));
    }
    Ok(t)
}

async fn change(ctx: &Ctx, id: i64, stmt: SqlStmt) -> MethodResult {
    match ctx
        .write(SqlTxn {
            stmts: vec![stmt.must_match()],
        })
        .await
    {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(no_template(id)),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    managed(ctx, s, id).await?;
    super::update_template(ctx, &p, "template_pool", "template", no_template).await
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    managed(ctx, s, id).await?;
    change(
        ctx,
        id,
        SqlStmt::new(
            "DELETE FROM template_pool WHERE oid = ?1",
            vec![SqlValue::Int(id)],
        ),
    )
    .await
}

pub async fn chmod(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let t = managed(ctx, s, id).await?;
    let perms = perms::chmod(t.owned.perms, &p)?;
    change(
        ctx,
        id,
        SqlStmt::new(
            "UPDATE template_pool SET perms = ?2 WHERE oid = ?1",
            vec![SqlValue::Int(id), SqlValue::Int(perms)],
        ),
    )
    .await
}

pub async fn clone(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    let t = load(ctx, id).await?;
    let c = caller(ctx, s).await?;
    if !c.may(TEMPLATE, &t.owned, USE) {
        return Err(not_authorized(s, &format!("USE TEMPLATE [{id}]")));
    }
    if !c.may_create(TEMPLATE) {
        return Err(not_authorized(s, "CREATE TEMPLATE"));
    }
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let mut body = template::Template::parse(&t.template).unwrap_or_default();
    body.set("NAME", template::Value::Single(name.clone()));
    insert(ctx, s, &name, body.to_text()).await
}

/// `one.template.instantiate(id, name, hold, extra, persistent)`: a VM owned by the caller.
pub async fn instantiate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = match p.0.get(1) {
        Some(_) => p.string(1)?.to_string(),
        None => String::new(),
    };
    let hold = p.opt_bool(2)?.unwrap_or(false);
    let extra = match p.0.get(3) {
        Some(_) => p.string(3)?.to_string(),
        None => String::new(),
    };
    let t = load(ctx, id).await?;
    let c = caller(ctx, s).await?;
    if !c.may(TEMPLATE, &t.owned, USE) {
        return Err(not_authorized(s, &format!("USE TEMPLATE [{id}]")));
    }
    if !c.may_create(VM) {
        return Err(not_authorized(s, "CREATE VM"));
    }
    let mut body = template::Template::parse(&t.template).unwrap_or_default();
    if !extra.trim().is_empty() {
        let more = super::validate::template(&extra).map_err(|e| fail(code::INTERNAL, e))?;
        for a in &more.attrs {
            body.remove(&a.name);
        }
        for a in more.attrs {
            body.push(&a.name, a.value);
        }
    }
    body.set("TEMPLATE_ID", template::Value::Single(id.to_string()));
    // OpenNebula checks the name when it allocates the VM, and instantiate reports that as
    // ALLOCATE for the template (`RequestManagerVMTemplate.cc`), not as vm.allocate's INTERNAL.
    if !name.is_empty() {
        super::validate::object_name(&name).map_err(|e| {
            fail(
                code::ALLOCATE,
                format!("Error allocating a new virtual machine template. {e}"),
            )
        })?;
    }
    let name = (!name.is_empty()).then_some(name);
    // Without a name, OpenNebula calls the VM after the template and the VM id.
    super::vm::create(
        ctx,
        s,
        &body.to_text(),
        name.or_else(|| Some(String::new())),
        hold,
    )
    .await
}
