//! `one.datastore.*`, `one.datastorepool.info`, `one.image.*` and `one.imagepool.info`.
//! Datastores 0 `system`, 1 `default` and 2 `files` exist from the start. A new image is
//! LOCKED until the leader's driver task (`crate::monitor`) makes it READY, as a replicated write.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::{print_rows, Family};
use super::perms::{self, caller, not_authorized, Owned, MANAGE, USE};
use super::xml::esc;
use super::{code, fail, require_admin, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

pub use wire::acl::{DATASTORE, IMAGE};
/// Image states.
pub const READY: i64 = wire::ImageState::Ready.as_i64();
pub const LOCKED: i64 = wire::ImageState::Locked.as_i64();
const TYPES: &[&str] = &["OS", "CDROM", "DATABLOCK", "KERNEL", "RAMDISK", "CONTEXT"];
/// Capacity the dummy datastores report, in MB.
const DUMMY_TOTAL_MB: i64 = 1024 * 1024;

fn tpl_xml(text: &str) -> String {
    template::Template::parse(text)
        .map(|t| t.to_xml())
        .unwrap_or_else(|_| "<TEMPLATE></TEMPLATE>".to_string())
}

struct DsRow {
    owned: Owned,
    name: String,
    uname: String,
    gname: String,
    kind: i64,
    ds_mad: String,
    tm_mad: String,
    state: i64,
    template: String,
    images: Vec<(i64, i64)>,
}

fn ds_xml(d: &DsRow) -> String {
    let used: i64 = d.images.iter().map(|(_, size)| size).sum();
    let images: String = d
        .images
        .iter()
        .map(|(id, _)| format!("<ID>{id}</ID>"))
        .collect();
    format!(
        "<DATASTORE><ID>{}</ID><UID>{}</UID><GID>{}</GID><UNAME>{}</UNAME><GNAME>{}</GNAME><NAME>{}</NAME>{}<DS_MAD>{}</DS_MAD><TM_MAD>{}</TM_MAD><BASE_PATH>/var/lib/one//datastores/{}</BASE_PATH><TYPE>{}</TYPE><DISK_TYPE>0</DISK_TYPE><STATE>{}</STATE><CLUSTERS><ID>0</ID></CLUSTERS><TOTAL_MB>{DUMMY_TOTAL_MB}</TOTAL_MB><FREE_MB>{}</FREE_MB><USED_MB>{used}</USED_MB><IMAGES>{images}</IMAGES>{}</DATASTORE>",
        d.owned.oid,
        d.owned.uid,
        d.owned.gid,
        esc(&d.uname),
        esc(&d.gname),
        esc(&d.name),
        perms::permissions_xml(d.owned.perms),
        esc(&d.ds_mad),
        esc(&d.tm_mad),
        d.owned.oid,
        d.kind,
        d.state,
        DUMMY_TOTAL_MB - used,
        tpl_xml(&d.template),
    )
}

const SELECT_DATASTORES: &str =
    "SELECT d.oid, d.uid, d.gid, d.perms, d.name, COALESCE(u.name, ''), COALESCE(g.name, ''),
            d.type, d.ds_mad, d.tm_mad, d.state, d.template
     FROM datastore_pool d LEFT JOIN user_pool u ON u.oid = d.uid
          LEFT JOIN group_pool g ON g.oid = d.gid";

fn datastore_row(
    c: &sqlstore::rusqlite::Connection,
    r: &sqlstore::rusqlite::Row<'_>,
) -> Result<DsRow, sqlstore::rusqlite::Error> {
    let oid: i64 = r.get(0)?;
    let mut imgs =
        c.prepare_cached("SELECT oid, size FROM image_pool WHERE datastore_id = ?1 ORDER BY oid")?;
    let images = imgs
        .query_map([oid], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(DsRow {
        owned: Owned::from_row(r)?,
        name: r.get(4)?,
        uname: r.get(5)?,
        gname: r.get(6)?,
        kind: r.get(7)?,
        ds_mad: r.get(8)?,
        tm_mad: r.get(9)?,
        state: r.get(10)?,
        template: r.get(11)?,
        images,
    })
}

fn load_datastores(
    c: &sqlstore::rusqlite::Connection,
    only: Option<i64>,
) -> Result<Vec<DsRow>, sqlstore::rusqlite::Error> {
    let mut st = c.prepare_cached(&format!(
        "{SELECT_DATASTORES} WHERE ?1 IS NULL OR d.oid = ?1 ORDER BY d.oid"
    ))?;
    let rows = st.query_map([only], |r| datastore_row(c, r))?.collect();
    rows
}

pub async fn ds_allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    require_admin(s, "CREATE DATASTORE")?;
    let t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let name = t
        .single("NAME")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(code::INTERNAL, "No NAME in template."))?
        .to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let kind = match t
        .single("TYPE")
        .unwrap_or("IMAGE_DS")
        .to_uppercase()
        .as_str()
    {
        "IMAGE_DS" => 0,
        "SYSTEM_DS" => 1,
        "FILE_DS" => 2,
        other => {
            return Err(fail(
                code::INTERNAL,
                format!("Error allocating a new datastore. Unknown TYPE {other}"),
            ))
        }
    };
    let tm_mad = t
        .single("TM_MAD")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            fail(
                code::INTERNAL,
                "Error allocating a new datastore. No TM_MAD in template.",
            )
        })?
        .to_string();
    let ds_mad = t
        .single("DS_MAD")
        .unwrap_or(if kind == 1 { "-" } else { "fs" })
        .to_string();
    let insert = SqlStmt::new(
        "INSERT INTO datastore_pool (oid, name, uid, gid, perms, type, ds_mad, tm_mad, template)
             SELECT last_oid + 1, ?1, ?2, ?3, 416, ?4, ?5, ?6, ?7 FROM pool_control
             WHERE tablename = 'datastore_pool' RETURNING oid",
        vec![
            SqlValue::Text(name.clone()),
            SqlValue::Int(s.uid),
            SqlValue::Int(s.gid),
            SqlValue::Int(kind),
            SqlValue::Text(ds_mad),
            SqlValue::Text(tm_mad),
            SqlValue::Text(t.to_text()),
        ],
    );
    super::allocate_next(
        ctx,
        "datastore_pool",
        insert,
        "datastore",
        "DATASTORE",
        &name,
    )
    .await
}

pub async fn ds_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let d = ctx
        .read(move |c| load_datastores(c, Some(id)))
        .await?
        .pop()
        .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting datastore [{id}].")))?;
    if !caller(ctx, s).await?.may(DATASTORE, &d.owned, USE) {
        return Err(not_authorized(s, &format!("USE DATASTORE [{id}]")));
    }
    Ok(Value::String(ds_xml(&d)))
}

/// `one.datastorepool.info()`: the datastores the caller may USE, filtered in SQL and printed
/// row by row.
pub async fn ds_pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let c = caller(ctx, s).await?;
    let mut cond = perms::Where::default();
    if let Some((sql, args)) = c.may_sql(DATASTORE, USE, "d") {
        cond.and(sql, args);
    }
    let sql = format!("{SELECT_DATASTORES}{} ORDER BY d.oid", cond.clause());
    let body = ctx
        .read(move |c| {
            let mut out = String::from("<DATASTORE_POOL>");
            print_rows(
                c,
                &sql,
                cond.args,
                datastore_row,
                |d, out| out.push_str(&ds_xml(d)),
                &mut out,
            )?;
            out.push_str("</DATASTORE_POOL>");
            Ok(out)
        })
        .await?;
    Ok(Value::String(body))
}

pub async fn ds_delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    require_admin(s, &format!("MANAGE DATASTORE [{id}]"))?;
    if id < 100 {
        return Err(fail(
            code::ACTION,
            "Cannot delete datastore. System datastores (ID < 100) cannot be deleted.",
        ));
    }
    let txn = SqlTxn {
        stmts: vec![SqlStmt::new(
            "DELETE FROM datastore_pool WHERE oid = ?1
               AND NOT EXISTS (SELECT 1 FROM image_pool WHERE datastore_id = ?1)",
            vec![SqlValue::Int(id)],
        )
        .must_match()],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(fail(
            code::ACTION,
            format!("Cannot delete datastore [{id}]: it does not exist or holds images."),
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

struct ImageRow {
    owned: Owned,
    name: String,
    uname: String,
    gname: String,
    kind: i64,
    persistent: i64,
    regtime: i64,
    path: String,
    size: i64,
    state: i64,
    ds: i64,
    ds_name: String,
    template: String,
}

fn image_xml(i: &ImageRow) -> String {
    format!(
        "<IMAGE><ID>{}</ID><UID>{}</UID><GID>{}</GID><UNAME>{}</UNAME><GNAME>{}</GNAME><NAME>{}</NAME>{}<TYPE>{}</TYPE><DISK_TYPE>0</DISK_TYPE><PERSISTENT>{}</PERSISTENT><REGTIME>{}</REGTIME><MODTIME>{}</MODTIME><SOURCE>{}</SOURCE><PATH>{}</PATH><FORMAT>raw</FORMAT><FS></FS><SIZE>{}</SIZE><STATE>{}</STATE><PREV_STATE>{}</PREV_STATE><RUNNING_VMS>0</RUNNING_VMS><CLONING_OPS>0</CLONING_OPS><CLONING_ID>-1</CLONING_ID><TARGET_SNAPSHOT>-1</TARGET_SNAPSHOT><DATASTORE_ID>{}</DATASTORE_ID><DATASTORE>{}</DATASTORE><VMS></VMS><CLONES></CLONES><APP_CLONES></APP_CLONES>{}<SNAPSHOTS><ALLOW_ORPHANS>NO</ALLOW_ORPHANS><CURRENT_BASE>-1</CURRENT_BASE><NEXT_SNAPSHOT>0</NEXT_SNAPSHOT></SNAPSHOTS><BACKUP_INCREMENTS></BACKUP_INCREMENTS></IMAGE>",
        i.owned.oid,
        i.owned.uid,
        i.owned.gid,
        esc(&i.uname),
        esc(&i.gname),
        esc(&i.name),
        perms::permissions_xml(i.owned.perms),
        i.kind,
        i.persistent,
        i.regtime,
        i.regtime,
        if i.state == READY {
            format!("/var/lib/one//datastores/{}/{}", i.ds, i.owned.oid)
        } else {
            String::new()
        },
        esc(&i.path),
        i.size,
        i.state,
        i.state,
        i.ds,
        esc(&i.ds_name),
        tpl_xml(&i.template),
    )
}

const SELECT_IMAGES: &str =
    "SELECT i.oid, i.uid, i.gid, i.perms, i.name, COALESCE(u.name, ''), COALESCE(g.name, ''),
            i.type, i.persistent, i.regtime, i.path, i.size, i.state, i.datastore_id,
            COALESCE(d.name, ''), i.template
     FROM image_pool i LEFT JOIN user_pool u ON u.oid = i.uid
          LEFT JOIN group_pool g ON g.oid = i.gid
          LEFT JOIN datastore_pool d ON d.oid = i.datastore_id";

fn image_row(
    _: &sqlstore::rusqlite::Connection,
    r: &sqlstore::rusqlite::Row<'_>,
) -> Result<ImageRow, sqlstore::rusqlite::Error> {
    Ok(ImageRow {
        owned: Owned::from_row(r)?,
        name: r.get(4)?,
        uname: r.get(5)?,
        gname: r.get(6)?,
        kind: r.get(7)?,
        persistent: r.get(8)?,
        regtime: r.get(9)?,
        path: r.get(10)?,
        size: r.get(11)?,
        state: r.get(12)?,
        ds: r.get(13)?,
        ds_name: r.get(14)?,
        template: r.get(15)?,
    })
}

fn no_image(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting image [{id}]."))
}

pub async fn image_allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let ds = p.int(1)? as i64;
    let c = caller(ctx, s).await?;
    if !c.may_create(IMAGE) {
        return Err(not_authorized(s, "CREATE IMAGE"));
    }
    let t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    let name = t
        .single("NAME")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail(code::INTERNAL, "No NAME in template."))?
        .to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let kind_name = t.single("TYPE").unwrap_or("OS").to_uppercase();
    let kind = TYPES
        .iter()
        .position(|k| *k == kind_name)
        .ok_or_else(|| fail(code::INTERNAL, format!("Unknown image TYPE {kind_name}")))?
        as i64;
    let path = t.single("PATH").unwrap_or("").to_string();
    let size = t.single("SIZE").and_then(|v| v.trim().parse::<i64>().ok());
    let size = match (kind_name.as_str(), size, path.is_empty()) {
        ("DATABLOCK", Some(sz), _) if sz > 0 => sz,
        ("DATABLOCK", _, true) => {
            return Err(fail(
                code::INTERNAL,
                "A DATABLOCK image needs a positive SIZE or a PATH.",
            ))
        }
        (_, _, true) => return Err(fail(code::INTERNAL, "No PATH in template.")),
        (_, Some(sz), _) => sz,
        // The dummy datastore driver reports every file as 1 GiB.
        (_, None, false) => 1024,
    };
    let d = ctx
        .read(move |c| load_datastores(c, Some(ds)))
        .await?
        .pop()
        .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting datastore [{ds}].")))?;
    if !c.may(DATASTORE, &d.owned, USE) {
        return Err(not_authorized(s, &format!("USE DATASTORE [{ds}]")));
    }
    if d.kind == 1 {
        return Err(fail(
            code::INTERNAL,
            "Error allocating a new image. Images cannot be created in a system datastore.",
        ));
    }
    let persistent = t
        .single("PERSISTENT")
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    let insert = SqlStmt::new(
        "INSERT INTO image_pool (oid, name, uid, gid, perms, type, persistent, regtime, path,
                                     size, state, datastore_id, template)
             SELECT last_oid + 1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
             FROM pool_control WHERE tablename = 'image_pool' RETURNING oid",
        vec![
            SqlValue::Text(name.clone()),
            SqlValue::Int(s.uid),
            SqlValue::Int(s.gid),
            SqlValue::Int(perms::DEFAULT_PERMS),
            SqlValue::Int(kind),
            SqlValue::Int(persistent as i64),
            SqlValue::Int(super::vm::now()),
            SqlValue::Text(path),
            SqlValue::Int(size),
            SqlValue::Int(LOCKED),
            SqlValue::Int(ds),
            SqlValue::Text(t.to_text()),
        ],
    );
    super::allocate_next(ctx, "image_pool", insert, "image", "IMAGE", &name).await
}

const IMAGES: Family<ImageRow> = Family {
    kind: IMAGE,
    acl: "IMAGE",
    pool: "IMAGE_POOL",
    select: SELECT_IMAGES,
    alias: "i",
    row: image_row,
    owned: |i| i.owned,
    xml: image_xml,
    missing: no_image,
};

pub async fn image_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    IMAGES.info(ctx, s, p).await
}

pub async fn image_pool_info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    IMAGES.pool_info(ctx, s, p, perms::Where::default()).await
}

pub async fn image_delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let i = IMAGES.get(ctx, id).await?;
    if !caller(ctx, s).await?.may(IMAGE, &i.owned, MANAGE) {
        return Err(not_authorized(s, &format!("MANAGE IMAGE [{id}]")));
    }
    let txn = SqlTxn {
        stmts: vec![SqlStmt::new(
            "DELETE FROM image_pool WHERE oid = ?1",
            vec![SqlValue::Int(id)],
        )
        .must_match()],
    };
    match ctx.write(txn).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(no_image(id)),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::ACTION, format!("Cannot delete image. {m}"))),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}
