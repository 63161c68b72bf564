//! A federation slave's own marketplaces and apps are rows of the master's shared tables. As
//! OpenNebula's pools do on a slave, the slave checks a new market or app itself, then has the
//! master insert it (`one.market.allocatedb`, `one.marketapp.allocatedb`), drop it
//! (`one.marketapp.dropdb`) or take the driver's figures (`one.marketapp.updatedb`); the row
//! comes back to every zone with the federated log. The master side runs on master and
//! standalone zones, for oneadmin only: a slave holds these tables only as copies.

use sqlstore::objects::market::{self as rows, AppRow, MarketRow, NewApp, NewMarket};
use sqlstore::objects::{Head, Lock, Owned};
use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use wire::xml::Element;
use xmlrpc::{Params, Value};

use super::market::{APPS, MARKETS};
use super::master_client::{until_here, MasterClient};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;

/// Largest market or app document the master takes: an app's template is a client's template,
/// under the zone's template limit.
const MAX_DOCUMENT: usize = 512 * 1024;

// --- the slave's side ---------------------------------------------------------------------

/// Has the master insert `new` (`MarketPlacePool::allocate` on a slave); answers its id once
/// the market has come back here.
pub async fn allocate_market(ctx: &Ctx, s: &Session, new: NewMarket<'_>) -> MethodResult {
    let market = MarketRow {
        head: head(s, new.name, new.uid, new.gid, new.perms),
        state: new.state,
        market_mad: new.market_mad.to_string(),
        zone_id: new.zone_id,
        total_mb: 0,
        free_mb: 0,
        used_mb: 0,
        template: new.template,
        apps: Vec::new(),
    };
    let mut xml = String::new();
    super::market::market_xml(&market, &mut xml);
    let id = allocated(ctx, "one.market.allocatedb", "market", xml).await?;
    until_here(ctx, &format!("marketplace {id}"), move |c| {
        exists(c, rows::MARKETS, id)
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// Has the master insert `new` (`MarketPlaceAppPool::allocate` on a slave); answers its id
/// once the app has come back here.
pub async fn allocate_app(ctx: &Ctx, s: &Session, new: NewApp<'_>) -> MethodResult {
    let app = AppRow {
        head: head(s, new.name, new.uid, new.gid, new.perms),
        lock: Lock::default(),
        regtime: new.regtime,
        zone_id: new.zone_id,
        origin_id: new.origin_id,
        source: String::new(),
        md5: String::new(),
        size: 0,
        description: new.description.to_string(),
        version: new.version.to_string(),
        format: String::new(),
        apptemplate64: new.apptemplate64.to_string(),
        market_id: new.market_id,
        market: String::new(),
        state: new.state,
        kind: new.kind,
        template: new.template,
    };
    let mut xml = String::new();
    super::market::app_xml(&app, &mut xml);
    let id = allocated(ctx, "one.marketapp.allocatedb", "marketapp", xml).await?;
    until_here(ctx, &format!("marketplaceapp {id}"), move |c| {
        exists(c, rows::APPS, id)
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// Has the master drop app `id` (`MarketPlaceAppPool::drop` on a slave); answers once it is
/// gone here too.
pub async fn drop_app(ctx: &Ctx, id: i64) -> MethodResult {
    MasterClient::of(ctx)
        .call("one.marketapp.dropdb", vec![Value::Int(id as i32)])
        .await
        .map_err(|why| {
            fail(
                code::ACTION,
                format!("Cannot drop marketapp at federation master: {why}"),
            )
        })?;
    until_here(ctx, &format!("marketplaceapp {id}"), move |c| {
        exists(c, rows::APPS, id).map(|here| !here)
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// Sends app `app` as it now is to the master (`MarketPlaceAppPool::update` on a slave): how
/// a slave's driver results reach the shared tables.
pub async fn update_app(master: &MasterClient, app: &AppRow) -> Result<(), String> {
    let mut xml = String::new();
    super::market::app_xml(app, &mut xml);
    master
        .call(
            "one.marketapp.updatedb",
            vec![Value::Int(app.head.owned.oid as i32), Value::String(xml)],
        )
        .await
        .map(drop)
        .map_err(|why| format!("Cannot update marketapp at federation master: {why}"))
}

fn head(s: &Session, name: &str, uid: i64, gid: i64, perms: i64) -> Head {
    Head {
        owned: Owned {
            oid: -1,
            uid,
            gid,
            perms,
        },
        name: name.to_string(),
        uname: s.name.clone(),
        gname: String::new(),
    }
}

async fn allocated(ctx: &Ctx, method: &str, what: &str, xml: String) -> Result<i64, Failure> {
    let refused = |why: String| {
        fail(
            code::INTERNAL,
            format!("Cannot allocate {what} at federation master: {why}"),
        )
    };
    match MasterClient::of(ctx)
        .call(method, vec![Value::String(xml)])
        .await
    {
        Ok(Value::Int(id)) => Ok(i64::from(id)),
        Ok(other) => Err(refused(format!("unexpected answer {other:?}"))),
        Err(why) => Err(refused(why)),
    }
}

fn exists(c: &sqlstore::Conn, table: &str, id: i64) -> Result<bool, sqlstore::SqlError> {
    sqlstore::objects::oid_exists(c, table, id)
}

// --- the master's side --------------------------------------------------------------------

/// What every `*db` method checks first: oneadmin, a zone that holds the shared tables, and
/// a document of a sane size.
fn master_takes(ctx: &Ctx, s: &Session, what: &str, xml: Option<&str>) -> Result<(), Failure> {
    if !s.is_oneadmin() {
        return Err(fail(
            code::AUTHORIZATION,
            format!(
                "User [{}] not authorized to perform action on {what}.",
                s.uid
            ),
        ));
    }
    if super::zone_master::is_slave(ctx) {
        return Err(fail(
            code::ACTION,
            "Marketplaces and apps are written at the federation master: this zone is a slave",
        ));
    }
    if xml.is_some_and(|x| x.len() > MAX_DOCUMENT) {
        return Err(fail(code::INTERNAL, "Cannot update object from XML"));
    }
    Ok(())
}

fn unreadable(method: &str, why: &str) -> Failure {
    tracing::warn!(method, error = %why, "a slave zone's document was refused");
    fail(code::INTERNAL, "Cannot update object from XML")
}

/// `one.market.allocatedb(xml)`: a slave zone's new market, with the master's next id.
pub async fn market_allocatedb(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let xml = p.string(0)?;
    master_takes(ctx, s, "marketplace", Some(xml))?;
    let m = read_market(xml).map_err(|why| unreadable("one.market.allocatedb", &why))?;
    super::market::insert_market(
        ctx,
        NewMarket {
            name: &m.head.name,
            uid: m.head.owned.uid,
            gid: m.head.owned.gid,
            perms: m.head.owned.perms,
            state: m.state,
            market_mad: &m.market_mad,
            zone_id: m.zone_id,
            template: m.template.clone(),
        },
    )
    .await
}

/// `one.market.updatedb(id, xml)`: a slave's market state, driver, template and capacity.
pub async fn market_updatedb(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let xml = p.string(1)?;
    master_takes(ctx, s, "marketplace", Some(xml))?;
    let m = read_market(xml).map_err(|why| unreadable("one.market.updatedb", &why))?;
    if m.head.owned.oid != id {
        return Err(fail(code::INTERNAL, "Consistency check failed"));
    }
    let stmt = SqlStmt::new(
        "UPDATE marketplace_pool SET state = ?2, market_mad = ?3, template = ?4, total_mb = ?5,
           free_mb = ?6, used_mb = ?7 WHERE oid = ?1",
        vec![
            SqlValue::Int(id),
            SqlValue::Int(m.state),
            SqlValue::Text(m.market_mad),
            SqlValue::Text(m.template),
            SqlValue::Int(m.total_mb),
            SqlValue::Int(m.free_mb),
            SqlValue::Int(m.used_mb),
        ],
    )
    .must_match();
    commit_one(ctx, stmt, MARKETS.missing(id)).await?;
    Ok(Value::Int(id as i32))
}

/// `one.marketapp.allocatedb(xml)`: a slave zone's new app, with the master's next id.
pub async fn app_allocatedb(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let xml = p.string(0)?;
    master_takes(ctx, s, "marketplaceapp", Some(xml))?;
    let a = read_app(xml).map_err(|why| unreadable("one.marketapp.allocatedb", &why))?;
    super::market::insert_app(
        ctx,
        NewApp {
            name: &a.head.name,
            uid: a.head.owned.uid,
            gid: a.head.owned.gid,
            perms: a.head.owned.perms,
            regtime: a.regtime,
            zone_id: a.zone_id,
            origin_id: a.origin_id,
            description: &a.description,
            version: &a.version,
            apptemplate64: &a.apptemplate64,
            market_id: a.market_id,
            state: a.state,
            kind: a.kind,
            template: a.template.clone(),
        },
    )
    .await
}

/// `one.marketapp.updatedb(id, xml)`: what a slave's driver found (state, SOURCE, MD5, SIZE,
/// FORMAT) and the app's own fields. Owner, name and permissions are changed through the
/// proxied methods instead, so a late document cannot undo them.
pub async fn app_updatedb(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let xml = p.string(1)?;
    master_takes(ctx, s, "marketplaceapp", Some(xml))?;
    let a = read_app(xml).map_err(|why| unreadable("one.marketapp.updatedb", &why))?;
    if a.head.owned.oid != id {
        return Err(fail(code::INTERNAL, "Consistency check failed"));
    }
    let stmt = SqlStmt::new(
        "UPDATE marketplaceapp_pool SET state = ?2, source = ?3, md5 = ?4, size = ?5,
           format = ?6, description = ?7, version = ?8, apptemplate64 = ?9, template = ?10
         WHERE oid = ?1",
        vec![
            SqlValue::Int(id),
            SqlValue::Int(a.state),
            SqlValue::Text(a.source),
            SqlValue::Text(a.md5),
            SqlValue::Int(a.size),
            SqlValue::Text(a.format),
            SqlValue::Text(a.description),
            SqlValue::Text(a.version),
            SqlValue::Text(a.apptemplate64),
            SqlValue::Text(a.template),
        ],
    )
    .must_match();
    commit_one(ctx, stmt, APPS.missing(id)).await?;
    Ok(Value::Int(id as i32))
}

/// `one.marketapp.dropdb(id)`: a slave zone's app deleted there.
pub async fn app_dropdb(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    master_takes(ctx, s, "marketplaceapp", None)?;
    let stmt = sqlstore::objects::delete(rows::APPS, id).must_match();
    commit_one(ctx, stmt, APPS.missing(id)).await?;
    Ok(Value::Int(id as i32))
}

async fn commit_one(ctx: &Ctx, stmt: SqlStmt, missing: Failure) -> Result<(), Failure> {
    let mut missing = Some(missing);
    ctx.commit(SqlTxn { stmts: vec![stmt] }, |r| match r.kind {
        TxnErrorKind::NotFound => missing
            .take()
            .unwrap_or_else(|| fail(code::NO_EXISTS, "no such object")),
        _ => r.internal(),
    })
    .await
    .map(drop)
}

/// The owner, group, permissions and name every document starts with, checked.
fn read_head(root: &Element) -> Result<Head, String> {
    let bad = |e: wire::xml::XmlError| e.to_string();
    let name = root.text_of("NAME").map_err(bad)?.trim().to_string();
    super::validate::object_name(&name)?;
    let perms = super::xml::read_permissions(
        root.child("PERMISSIONS")
            .ok_or("the document has no PERMISSIONS")?,
    )?;
    Ok(Head {
        owned: Owned {
            oid: root.int_of("ID").map_err(bad)?,
            uid: root.int_of("UID").map_err(bad)?,
            gid: root.int_of("GID").map_err(bad)?,
            perms,
        },
        name,
        uname: String::new(),
        gname: String::new(),
    })
}

fn root_named(xml: &str, name: &str) -> Result<Element, String> {
    let root = Element::parse(xml).map_err(|e| e.to_string())?;
    if root.name != name {
        return Err(format!("the document is a {}, not a {name}", root.name));
    }
    Ok(root)
}

/// A market as `one.market.info` prints it (`MARKETPLACE`).
fn read_market(xml: &str) -> Result<MarketRow, String> {
    let root = root_named(xml, "MARKETPLACE")?;
    let bad = |e: wire::xml::XmlError| e.to_string();
    let int = |name: &str| root.int_of(name).map_err(bad);
    Ok(MarketRow {
        head: read_head(&root)?,
        state: int("STATE")?,
        market_mad: root.text_of("MARKET_MAD").map_err(bad)?.trim().to_string(),
        zone_id: int("ZONE_ID")?,
        total_mb: int("TOTAL_MB")?,
        free_mb: int("FREE_MB")?,
        used_mb: int("USED_MB")?,
        template: super::xml::read_template(root.child("TEMPLATE"))?.to_text(),
        apps: Vec::new(),
    })
}

/// An app as `one.marketapp.info` prints it (`MARKETPLACEAPP`).
fn read_app(xml: &str) -> Result<AppRow, String> {
    let root = root_named(xml, "MARKETPLACEAPP")?;
    let bad = |e: wire::xml::XmlError| e.to_string();
    let int = |name: &str| root.int_of(name).map_err(bad);
    let text = |name: &str| root.text_of(name).map(str::to_string).map_err(bad);
    Ok(AppRow {
        head: read_head(&root)?,
        lock: Lock::default(),
        regtime: int("REGTIME")?,
        zone_id: int("ZONE_ID")?,
        origin_id: int("ORIGIN_ID")?,
        source: text("SOURCE")?,
        md5: text("MD5")?,
        size: int("SIZE")?,
        description: text("DESCRIPTION")?,
        version: text("VERSION")?,
        format: text("FORMAT")?,
        apptemplate64: text("APPTEMPLATE64")?,
        market_id: int("MARKETPLACE_ID")?,
        market: String::new(),
        state: int("STATE")?,
        kind: int("TYPE")?,
        template: super::xml::read_template(root.child("TEMPLATE"))?.to_text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            uid: 3,
            gid: 1,
            name: "alice".into(),
            groups: vec![1],
            umask: None,
        }
    }

    #[test]
    fn a_market_reads_back_from_its_own_document() {
        let m = MarketRow {
            head: head(&session(), "east-http", 3, 1, 0o640),
            state: rows::ENABLED,
            market_mad: "http".into(),
            zone_id: 100,
            total_mb: 0,
            free_mb: 0,
            used_mb: 0,
            template: "BASE_URL=\"http://e/x\"\nPUBLIC_DIR=\"/var/x\"\n".into(),
            apps: Vec::new(),
        };
        let mut xml = String::new();
        super::super::market::market_xml(&m, &mut xml);
        let back = read_market(&xml).expect("reads back");
        assert_eq!(back.head.owned, m.head.owned);
        assert_eq!(
            (
                back.head.name.as_str(),
                back.zone_id,
                back.market_mad.as_str()
            ),
            ("east-http", 100, "http")
        );
        let t = template::Template::parse(&back.template).expect("template");
        assert_eq!(t.single("BASE_URL"), Some("http://e/x"));
    }

    #[test]
    fn an_app_reads_back_from_its_own_document() {
        let a = AppRow {
            head: head(&session(), "ubuntu", 3, 1, 0o600),
            lock: Lock::default(),
            regtime: 1_700_000_000,
            zone_id: 100,
            origin_id: 7,
            source: "http://e/x/abc".into(),
            md5: "abc".into(),
            size: 2048,
            description: "a <b> & c".into(),
            version: "1.0".into(),
            format: "qcow2".into(),
            apptemplate64: "RElTSw==".into(),
            market_id: 101,
            market: "east-http".into(),
            state: rows::app_state::READY,
            kind: rows::app_type::IMAGE,
            template: "EXTRA=\"x\"\n".into(),
        };
        let mut xml = String::new();
        super::super::market::app_xml(&a, &mut xml);
        let mut back = read_app(&xml).expect("reads back");
        back.head.uname = a.head.uname.clone();
        back.market = a.market.clone();
        assert_eq!(back, a);
    }

    #[test]
    fn broken_or_hostile_documents_are_refused() {
        for bad in [
            "",
            "<MARKETPLACE><ID>1</ID>",
            "<ZONE><ID>1</ID><NAME>x</NAME></ZONE>",
            "<MARKETPLACE><ID>x</ID><UID>0</UID><GID>0</GID><NAME>m</NAME></MARKETPLACE>",
        ] {
            assert!(read_market(bad).is_err(), "{bad:?} was taken");
            assert!(read_app(bad).is_err(), "{bad:?} was taken as an app");
        }
    }
}
