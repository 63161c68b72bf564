//! `one.market.*`, `one.marketapp.*` and their pools: OpenNebula's marketplaces and apps.
//!
//! The drivers are OpenNebula 7.0's as its `oned.conf` ships them (`MARKET_MAD_CONF`): `one`
//! and `linuxcontainers` are public and only monitored, `http` and `s3` take new apps. Their
//! work is done as the `dummy` drivers do: the leader finishes an app's import (LOCKED ->
//! READY with a SOURCE under the market's BASE_URL) in a replicated write (`crate::monitor`).

use sqlstore::objects::market::{self as rows, app_state, app_type, AppRow, MarketRow};
use sqlstore::{SqlTxn, TxnErrorKind};
use template::{Template, Value as TValue};
use xmlrpc::{Params, Value};

use super::family::Family;
use super::market_master;
use super::method::{Auth, Method};
use super::perms::MANAGE;
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::{method, owned_methods};
use wire::acl::{MARKETPLACE, MARKETPLACEAPP};

pub static MARKETS: Family<MarketRow> = Family {
    table: rows::MARKETS,
    kind: MARKETPLACE,
    acl: "MARKETPLACE",
    what: "marketplace",
    pool: "MARKETPLACE_POOL",
    template: "template",
    rows: &rows::MARKET_ROWS,
    xml: market_xml,
    quota: None,
    pool_xml: None,
};

pub static APPS: Family<AppRow> = Family {
    table: rows::APPS,
    kind: MARKETPLACEAPP,
    acl: "MARKETPLACEAPP",
    what: "marketplaceapp",
    pool: "MARKETPLACEAPP_POOL",
    template: "template",
    rows: &rows::APP_ROWS,
    xml: app_xml,
    quota: None,
    pool_xml: None,
};

pub const METHODS: &[Method] = &[
    method!("one.market.allocate", Write, Auth::Object, allocate),
    method!("one.market.delete", Write, Auth::Object, delete),
    method!(
        "one.market.info",
        Read,
        Auth::Object,
        super::owned::info,
        &MARKETS
    ),
    method!("one.market.update", Write, Auth::Object, update),
    method!("one.market.rename", Write, Auth::Object, rename),
    method!("one.market.enable", Write, Auth::Object, enable),
    method!("one.marketpool.info", Read, Auth::Object, pool_info),
    method!("one.marketapp.allocate", Write, Auth::Object, app_allocate),
    method!("one.marketapp.delete", Write, Auth::Object, app_delete),
    method!(
        "one.marketapp.info",
        Read,
        Auth::Object,
        super::owned::info,
        &APPS
    ),
    method!("one.marketapp.update", Write, Auth::Object, app_update),
    method!("one.marketapp.rename", Write, Auth::Object, app_rename),
    method!("one.marketapp.chown", Write, Auth::Object, app_chown),
    method!("one.marketapp.enable", Write, Auth::Object, app_enable),
    method!(
        "one.marketapppool.info",
        Read,
        Auth::Object,
        super::owned::pool_info,
        &APPS
    ),
    // A slave zone's markets and apps, written at the master: oneadmin only, checked by the
    // handlers.
    method!(
        "one.market.allocatedb",
        Write,
        Auth::Object,
        market_master::market_allocatedb
    ),
    method!(
        "one.market.updatedb",
        Write,
        Auth::Object,
        market_master::market_updatedb
    ),
    method!(
        "one.marketapp.allocatedb",
        Write,
        Auth::Object,
        market_master::app_allocatedb
    ),
    method!(
        "one.marketapp.updatedb",
        Write,
        Auth::Object,
        market_master::app_updatedb
    ),
    method!(
        "one.marketapp.dropdb",
        Write,
        Auth::Object,
        market_master::app_dropdb
    ),
];

/// chmod and chown of markets; chmod, lock and unlock of apps.
pub const OWNED: &[Method] = &owned();

const fn owned() -> [Method; 5] {
    let m = owned_methods!("one.market", &MARKETS);
    let a = owned_methods!(lockable "one.marketapp", &APPS);
    [m[0], m[1], a[0], a[4], a[5]]
}

/// One `MARKET_MAD_CONF` of OpenNebula 7.0's `oned.conf`.
struct Driver {
    name: &'static str,
    required: &'static [&'static str],
    create: bool,
    delete: bool,
    public: bool,
}

const DRIVERS: &[Driver] = &[
    Driver {
        name: "one",
        required: &[],
        create: false,
        delete: false,
        public: true,
    },
    Driver {
        name: "http",
        required: &["BASE_URL", "PUBLIC_DIR"],
        create: true,
        delete: true,
        public: false,
    },
    Driver {
        name: "s3",
        required: &["ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "REGION", "BUCKET"],
        create: true,
        delete: true,
        public: false,
    },
    Driver {
        name: "linuxcontainers",
        required: &[],
        create: false,
        delete: false,
        public: true,
    },
];

/// The driver called `mad`, in any case (`Nebula::get_conf_attribute` compares names with
/// `icasecmp`).
fn driver(mad: &str) -> Option<&'static Driver> {
    DRIVERS.iter().find(|d| d.name.eq_ignore_ascii_case(mad))
}

/// `MarketPlace::to_xml`.
pub(super) fn market_xml(m: &MarketRow, out: &mut String) {
    let h = &m.head;
    Xml::new(out).elem("MARKETPLACE", |x| {
        xml::owner_and_name(x, h);
        x.num("STATE", m.state);
        x.cdata("MARKET_MAD", &m.market_mad);
        x.cdata("ZONE_ID", &m.zone_id.to_string());
        x.num("TOTAL_MB", m.total_mb)
            .num("FREE_MB", m.free_mb)
            .num("USED_MB", m.used_mb)
            .elem("MARKETPLACEAPPS", |x| {
                for id in &m.apps {
                    x.num("ID", id);
                }
            });
        xml::permissions(x, h.owned.perms);
        x.raw(&xml::template(&m.template, "TEMPLATE"));
    });
}

/// `MarketPlaceApp::to_xml`.
pub(super) fn app_xml(a: &AppRow, out: &mut String) {
    let h = &a.head;
    Xml::new(out).elem("MARKETPLACEAPP", |x| {
        x.num("ID", h.owned.oid)
            .num("UID", h.owned.uid)
            .num("GID", h.owned.gid)
            .text("UNAME", &h.uname)
            .text("GNAME", &h.gname);
        xml::lock(x, &a.lock);
        x.num("REGTIME", a.regtime).text("NAME", &h.name);
        x.cdata("ZONE_ID", &a.zone_id.to_string());
        x.cdata("ORIGIN_ID", &a.origin_id.to_string());
        x.cdata("SOURCE", &a.source);
        x.cdata("MD5", &a.md5);
        x.num("SIZE", a.size);
        x.cdata("DESCRIPTION", &a.description);
        x.cdata("VERSION", &a.version);
        x.cdata("FORMAT", &a.format);
        x.cdata("APPTEMPLATE64", &a.apptemplate64);
        x.num("MARKETPLACE_ID", a.market_id)
            .text("MARKETPLACE", &a.market)
            .num("STATE", a.state)
            .num("TYPE", a.kind);
        xml::permissions(x, h.owned.perms);
        x.raw(&xml::template(&a.template, "TEMPLATE"));
    });
}

fn parse(text: &str) -> Result<Template, Failure> {
    super::validate::template(text).map_err(|e| fail(code::INTERNAL, e))
}

fn single(t: &Template, name: &str) -> String {
    t.single(name).unwrap_or_default().to_string()
}

/// `MarketPlace::set_market_mad`: a driver oned.conf defines, with its required attributes.
fn check_driver(mad: &str, t: &Template) -> Result<(), String> {
    let d = driver(mad)
        .ok_or_else(|| format!("MARKET_MAD_CONF named \"{mad}\" is not defined in oned.conf"))?;
    if let Some(missing) = d.required.iter().find(|a| single(t, a).trim().is_empty()) {
        return Err(format!(
            "MarketPlace template is missing the \"{missing}\" attribute or it's empty."
        ));
    }
    Ok(())
}

/// `one.market.allocate(template)`.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let mut t = parse(p.string(0)?)?;
    MARKETS.may_create(ctx, s).await?;
    let name = single(&t, "NAME");
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let taken = name.clone();
    if let Some(oid) = ctx.read(move |c| rows::market_named(c, &taken)).await? {
        return Err(fail(
            code::INTERNAL,
            format!("NAME is already taken by MARKETPLACE {oid}"),
        ));
    }
    t.remove("NAME");
    t.remove("ZONE_ID");
    let mad = single(&t, "MARKET_MAD");
    if mad.is_empty() {
        return Err(fail(
            code::INTERNAL,
            "No marketplace driver (MARKET_MAD) in template.",
        ));
    }
    check_driver(&mad, &t).map_err(|e| fail(code::INTERNAL, e))?;
    let state = match single(&t, "STATE").to_ascii_uppercase().as_str() {
        "ENABLED" => Some(rows::ENABLED),
        "DISABLED" => Some(rows::DISABLED),
        _ => None,
    };
    if state.is_some() {
        t.remove("STATE");
    }
    let new = rows::NewMarket {
        name: &name,
        uid: s.uid,
        gid: s.gid,
        perms: super::umask::new_object(ctx, s),
        state: state.unwrap_or(rows::ENABLED),
        market_mad: &mad,
        zone_id: ctx.config.zone_id,
        template: t.to_text(),
    };
    if super::zone_master::is_slave(ctx) {
        return super::market_master::allocate_market(ctx, s, new).await;
    }
    insert_market(ctx, new).await
}

/// `one.market.delete(id)`: a market with apps is kept, unless it is public (its apps are
/// only records of the remote catalog, dropped with it).
pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let m = MARKETS.authorized(ctx, s, id, MANAGE).await?;
    let public = driver(&m.market_mad).is_some_and(|d| d.public);
    if !public && !m.apps.is_empty() {
        return Err(fail(
            code::ACTION,
            format!("Cannot delete marketplace. marketplace  {id} is not empty."),
        ));
    }
    let mut stmts = rows::delete_market(id);
    stmts.push(sqlstore::objects::acl::drop_rules_on(
        wire::acl::MARKETPLACE,
        id,
    ));
    if !public {
        // An app added meanwhile keeps the market.
        stmts.insert(0, no_apps_guard(id));
    }
    ctx.commit(SqlTxn { stmts }, |r| match r.kind {
        TxnErrorKind::NotFound if r.stmt == 0 => fail(
            code::ACTION,
            format!("Cannot delete marketplace. marketplace  {id} is not empty."),
        ),
        TxnErrorKind::NotFound => fail(
            code::ACTION,
            "Cannot delete marketplace. MarketPlace no longer exists",
        ),
        _ => r.internal(),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// Matches nothing while market `id` has apps.
fn no_apps_guard(id: i64) -> sqlstore::SqlStmt {
    sqlstore::SqlStmt::new(
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM marketplaceapp_pool WHERE market_id = ?1)",
        vec![sqlstore::SqlValue::Int(id)],
    )
    .must_match()
}

/// `one.market.update(id, template, type)`: MARKET_MAD may change to another driver whose
/// required attributes the new template has; it is kept when left out.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    MARKETS.authorized(ctx, s, id, MANAGE).await?;
    let merge = super::update_type(&p)?;
    let text = &text;
    super::writes::write_computed(ctx, id, move || async move {
        let m = MARKETS.get(ctx, id).await?;
        let new = super::merged(&m.template, text, merge)?;
        let mut t = parse(&new)?;
        let given = single(&t, "MARKET_MAD");
        let mad = if given.is_empty() {
            m.market_mad.clone()
        } else {
            check_driver(&given, &t)
                .map_err(|e| fail(code::INTERNAL, format!("Cannot update template. {e}")))?;
            given
        };
        t.set("MARKET_MAD", TValue::Single(mad.clone()));
        Ok(vec![rows::set_market_template(
            id,
            &mad,
            t.to_text(),
            m.template,
        )])
    })
    .await
}

/// `RequestManagerRename` for a family whose names `lookup` finds (among the owner's objects,
/// or all of them).
async fn rename_checked<R: sqlstore::objects::HasOwner + Send + 'static>(
    ctx: &Ctx,
    s: &Session,
    f: &'static Family<R>,
    (id, name): (i64, String),
    name_of: fn(&R) -> &str,
    lookup: fn(&sqlstore::Conn, &str, i64) -> Result<Option<i64>, sqlstore::SqlError>,
) -> MethodResult {
    let row = f.get(ctx, id).await?;
    if name_of(&row) == name {
        return Ok(Value::Int(id as i32));
    }
    f.authorized(ctx, s, id, MANAGE).await?;
    let (taken, uid) = (name.clone(), row.owner().uid);
    if let Some(other) = ctx.read(move |c| lookup(c, &taken, uid)).await? {
        let w = f.what;
        return Err(fail(
            code::ACTION,
            format!("{w} cannot be renamed to {name} because it collides with {w} {other}"),
        ));
    }
    super::validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    let stmt = sqlstore::objects::set_name(f.table, id, &name);
    ctx.commit(SqlTxn { stmts: vec![stmt] }, |r| match r.kind {
        TxnErrorKind::NotFound => f.missing(id),
        TxnErrorKind::Constraint => fail(
            code::ACTION,
            format!(
                "{} cannot be renamed to {name}: the name was taken meanwhile",
                f.what
            ),
        ),
        _ => r.internal(),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, name) = (p.int(0)? as i64, p.string(1)?.to_string());
    let name_of: fn(&MarketRow) -> &str = |m| &m.head.name;
    rename_checked(ctx, s, &MARKETS, (id, name), name_of, |c, n, _| {
        rows::market_named(c, n)
    })
    .await
}

/// `one.market.enable(id, enable)`: disabling drops the market's apps.
pub async fn enable(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    let m = MARKETS.authorized(ctx, s, id, MANAGE).await?;
    let state = if on { rows::ENABLED } else { rows::DISABLED };
    if m.state != state {
        let stmts = rows::set_market_state(id, state);
        ctx.commit(SqlTxn { stmts }, |r| r.missing(MARKETS.missing(id)))
            .await?;
    }
    Ok(Value::Int(id as i32))
}

/// `one.marketpool.info()`: every market the caller may USE (no filter, as OpenNebula's).
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    MARKETS.pool_all(ctx, s).await
}

fn app_kind(name: &str) -> i64 {
    match name.to_ascii_uppercase().as_str() {
        "IMAGE" => app_type::IMAGE,
        "VMTEMPLATE" => app_type::VMTEMPLATE,
        "SERVICE_TEMPLATE" => app_type::SERVICE_TEMPLATE,
        _ => app_type::UNKNOWN,
    }
}

/// `one.marketapp.allocate(template, market_id)`. An app whose import cannot start (its image
/// is gone or busy, its type unknown) is kept in ERROR, and the call fails, as OpenNebula's.
pub async fn app_allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let mut t = parse(p.string(0)?)?;
    let market_id = p.int(1)? as i64;
    APPS.may_create(ctx, s).await?;
    let market = MARKETS
        .get(ctx, market_id)
        .await
        .map_err(|_| fail(code::INTERNAL, "Cannot find associated MARKETPLACE"))?;
    if !driver(&market.market_mad).is_some_and(|d| d.create) {
        return Err(fail(
            code::ACTION,
            format!("Create disabled for market: {}", market.head.name),
        ));
    }
    if market.zone_id != ctx.config.zone_id {
        return Err(fail(
            code::ACTION,
            "Marketplace is not in this OpenNebula zone",
        ));
    }
    let name = single(&t, "NAME");
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    let (taken, uid) = (name.clone(), s.uid);
    if let Some(oid) = ctx.read(move |c| rows::app_named(c, &taken, uid)).await? {
        return Err(fail(
            code::INTERNAL,
            format!("NAME is already taken by MARKETPLACEAPP {oid}"),
        ));
    }
    for attr in [
        "NAME", "ZONE_ID", "SOURCE", "SIZE", "MD5", "FORMAT", "REGTIME",
    ] {
        t.remove(attr);
    }
    // `MarketPlaceApp::parse_template`: no TYPE, or an empty one, is an image app.
    let kind = match t.single("TYPE") {
        Some(k) if !k.is_empty() => app_kind(k),
        _ => app_type::IMAGE,
    };
    let origin = single(&t, "ORIGIN_ID")
        .trim()
        .parse::<i64>()
        .map_err(|_| fail(code::INTERNAL, "Missing ORIGIN_ID for the MARKETPLACEAPP"))?;
    t.remove("ORIGIN_ID");
    let version = match single(&t, "VERSION") {
        v if v.is_empty() => "0.0".to_string(),
        v => v,
    };
    let ready = kind == app_type::VMTEMPLATE || kind == app_type::SERVICE_TEMPLATE;
    let refused = if ready {
        None
    } else {
        import_refusal(ctx, kind, origin).await?
    };
    let state = match (&refused, ready) {
        (Some(_), _) => app_state::ERROR,
        (None, true) => app_state::READY,
        (None, false) => app_state::LOCKED,
    };
    if let Some(why) = &refused {
        t.set(
            "ERROR",
            TValue::Single(format!("{} : {why}", wire::time::ctime(super::vm::now()))),
        );
    }
    let new = rows::NewApp {
        name: &name,
        uid: s.uid,
        gid: s.gid,
        perms: super::umask::new_object(ctx, s),
        regtime: super::vm::now(),
        zone_id: ctx.config.zone_id,
        origin_id: origin,
        description: &single(&t, "DESCRIPTION"),
        version: &version,
        apptemplate64: &single(&t, "APPTEMPLATE64"),
        market_id,
        state,
        kind,
        template: t.to_text(),
    };
    let id = if super::zone_master::is_slave(ctx) {
        super::market_master::allocate_app(ctx, s, new).await?
    } else {
        insert_app(ctx, new).await?
    };
    match refused {
        Some(why) => Err(fail(code::INTERNAL, why)),
        None => Ok(id),
    }
}

/// Why an app of `kind` from image `origin` cannot be imported, if it cannot
/// (`MarketPlaceManager::import_app`).
async fn import_refusal(ctx: &Ctx, kind: i64, origin: i64) -> Result<Option<String>, Failure> {
    if kind != app_type::IMAGE {
        return Ok(Some("Marketplace app type not supported.".into()));
    }
    let image = ctx
        .read(move |c| {
            use sqlstore::Optional;
            c.prepare_cached("SELECT state, type FROM image_pool WHERE oid = ?1")?
                .query_row([origin], |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)))
                .optional()
        })
        .await?;
    use wire::ImageState as I;
    if image.is_some_and(|(_, kind)| kind == super::vm_backup::BACKUP_IMAGE) {
        // `ImageManager::set_clone_state`'s words.
        return Ok(Some("Cannoe clone backup images".into()));
    }
    Ok(match image.and_then(|(state, _)| I::from_i64(state)) {
        None => Some("Image does not exist.".into()),
        // `Image::set_app_clone_state`: a persistent image in use cannot be copied.
        Some(I::Ready | I::Used | I::Clone) => None,
        Some(_) => Some("Cannot clone image in current state".into()),
    })
}

/// `one.marketapp.delete(id)`: only through markets whose driver deletes apps.
pub async fn app_delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let app = APPS.authorized(ctx, s, id, MANAGE).await?;
    let refuse = |why: String| fail(code::ACTION, format!("Cannot delete marketplaceapp. {why}"));
    if app.zone_id != ctx.config.zone_id {
        return Err(refuse(format!(
            "Marketapp can only be deleted from zone {}",
            app.zone_id
        )));
    }
    let market = MARKETS
        .get(ctx, app.market_id)
        .await
        .map_err(|_| refuse("Cannot find associated MARKETPLACE".into()))?;
    if !driver(&market.market_mad).is_some_and(|d| d.delete) {
        return Err(refuse(format!(
            "Delete disabled for market: {}",
            market.head.name
        )));
    }
    if app.kind == app_type::UNKNOWN {
        return Err(refuse(String::new()));
    }
    if super::zone_master::is_slave(ctx) {
        return super::market_master::drop_app(ctx, id).await;
    }
    let stmts = vec![
        sqlstore::objects::delete(rows::APPS, id),
        sqlstore::objects::acl::drop_rules_on(wire::acl::MARKETPLACEAPP, id),
    ];
    ctx.commit(SqlTxn { stmts }, |r| r.missing(APPS.missing(id)))
        .await?;
    Ok(Value::Int(id as i32))
}

/// `one.marketapp.update(id, template, type)`: DESCRIPTION, VERSION and APPTEMPLATE64 follow
/// the template; what the driver set (SOURCE, SIZE, MD5, FORMAT...) cannot be changed.
pub async fn app_update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    APPS.authorized(ctx, s, id, MANAGE).await?;
    let merge = super::update_type(&p)?;
    let text = &text;
    super::writes::write_computed(ctx, id, move || async move {
        let app = APPS.get(ctx, id).await?;
        let new = super::merged(&app.template, text, merge)?;
        let mut t = parse(&new)?;
        for attr in ["SOURCE", "SIZE", "MD5", "FORMAT", "REGTIME", "ORIGIN_ID"] {
            t.remove(attr);
        }
        Ok(vec![rows::set_app_template(
            id,
            &single(&t, "DESCRIPTION"),
            &single(&t, "VERSION"),
            &single(&t, "APPTEMPLATE64"),
            t.to_text(),
            app.template,
        )])
    })
    .await
}

pub async fn app_rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let (id, name) = (p.int(0)? as i64, p.string(1)?.to_string());
    let name_of: fn(&AppRow) -> &str = |a| &a.head.name;
    rename_checked(ctx, s, &APPS, (id, name), name_of, rows::app_named).await
}

/// `one.marketapp.chown(id, uid, gid)`: the new owner must not have an app of that name, and
/// apps of public markets keep theirs.
pub async fn app_chown(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    // `RequestManagerChown`'s order (the new user, group, app, one authorization, the name),
    // with an app of a public market refused once the caller is authorized.
    let public = match APPS.get(ctx, id).await {
        Ok(app) => MARKETS
            .get(ctx, app.market_id)
            .await
            .ok()
            .and_then(|m| driver(&m.market_mad))
            .is_some_and(|d| d.public),
        Err(_) => false,
    };
    super::owned::chown_checked(ctx, s, Params(p.0), &APPS, |_| {
        if public {
            return Err(fail(
                code::INTERNAL,
                format!(
                    "App {id}: Changing the ownership for an App from the public Marketplace is not permitted"
                ),
            ));
        }
        Ok(Vec::new())
    })
    .await
}

/// `one.marketapp.enable(id, enable)`: READY and DISABLED apps switch; others stay as they are.
pub async fn app_enable(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let on = p.bool(1)?;
    APPS.authorized(ctx, s, id, MANAGE).await?;
    let stmt = rows::enable_app(id, on);
    ctx.commit(SqlTxn { stmts: vec![stmt] }, |r| {
        r.missing(APPS.missing(id))
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// The driver's answer to an app's import, as the `http` driver gives it: the image's size
/// and format (`raw` when it names none), a SOURCE under the market's BASE_URL named after the
/// MD5.
pub fn import_result(app: &rows::Importing) -> sqlstore::SqlStmt {
    match import_outcome(app) {
        Imported::Ready {
            source,
            md5,
            size,
            format,
        } => rows::imported(app.oid, Ok((&source, &md5, size, &format))),
        Imported::Failed { template } => rows::imported(app.oid, Err(&template)),
    }
}

/// How an app's import ended.
pub enum Imported {
    Ready {
        source: String,
        md5: String,
        size: i64,
        format: String,
    },
    /// In ERROR, with this template (the old one with the driver's ERROR).
    Failed { template: String },
}

impl Imported {
    /// `app` as the import leaves it.
    pub fn apply_to(self, app: &mut AppRow) {
        match self {
            Imported::Ready {
                source,
                md5,
                size,
                format,
            } => {
                app.state = app_state::READY;
                (app.source, app.md5, app.size, app.format) = (source, md5, size, format);
            }
            Imported::Failed { template } => {
                app.state = app_state::ERROR;
                app.template = template;
            }
        }
    }
}

/// [`import_result`]'s figures.
pub fn import_outcome(app: &rows::Importing) -> Imported {
    let Some((size, path, format)) = &app.image else {
        let mut t = Template::parse(&app.template).unwrap_or_default();
        let error = format!(
            "{} : Error importing app into marketplace: Image {} does not exist",
            wire::time::ctime(super::vm::now()),
            app.origin_id
        );
        t.set("ERROR", TValue::Single(error));
        return Imported::Failed {
            template: t.to_text(),
        };
    };
    let market = Template::parse(&app.market_template).unwrap_or_default();
    let format = match format.as_str() {
        "" => "raw".to_string(),
        f => f.to_string(),
    };
    // The dummy driver has no file to read: the digest is of what names the image's file.
    use md5::Digest;
    let digest = hex::encode(md5::Md5::digest(format!("{}:{path}", app.origin_id)));
    let base = single(&market, "BASE_URL");
    let source = format!("{}/{digest}", base.trim_end_matches('/'));
    Imported::Ready {
        source,
        md5: digest,
        size: *size,
        format,
    }
}

/// Writes a new marketplace under this zone's next id (a master's or a standalone zone's).
pub(super) async fn insert_market(ctx: &Ctx, new: rows::NewMarket<'_>) -> MethodResult {
    let name = new.name.to_string();
    let insert = rows::insert_market(new);
    super::allocate_next(
        ctx,
        rows::MARKETS,
        insert,
        "marketplace",
        "MARKETPLACE",
        &name,
    )
    .await
}

/// Writes a new app under this zone's next id (a master's or a standalone zone's).
pub(super) async fn insert_app(ctx: &Ctx, new: rows::NewApp<'_>) -> MethodResult {
    let name = new.name.to_string();
    let insert = rows::insert_app(new);
    super::allocate_next(
        ctx,
        rows::APPS,
        insert,
        "marketplaceapp",
        "MARKETPLACEAPP",
        &name,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_require_their_attributes() {
        let t = Template::parse("BASE_URL = \"http://x\"").unwrap();
        assert_eq!(
            check_driver("http", &t).unwrap_err(),
            "MarketPlace template is missing the \"PUBLIC_DIR\" attribute or it's empty."
        );
        assert_eq!(
            check_driver("ftp", &t).unwrap_err(),
            "MARKET_MAD_CONF named \"ftp\" is not defined in oned.conf"
        );
        assert!(check_driver("one", &t).is_ok());
    }
}
