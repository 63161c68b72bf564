//! Marketplaces (`marketplace_pool`) and their apps (`marketplaceapp_pool`), as OpenNebula's
//! `MarketPlace` and `MarketPlaceApp`. A market's app list (`MARKETPLACEAPPS`) is read from the
//! apps' `market_id`, so it cannot disagree with them.

use crate::sql::{Conn, Row};

use super::{has_owner, owned_select, Head, Lock, Rows, HEAD_COLUMNS};
use crate::{SqlStmt, SqlValue};

pub const MARKETS: &str = "marketplace_pool";
pub const APPS: &str = "marketplaceapp_pool";

/// `MarketPlace::MarketPlaceState`.
pub const ENABLED: i64 = 0;
pub const DISABLED: i64 = 1;

/// `MarketPlaceApp::State`.
pub mod app_state {
    pub const INIT: i64 = 0;
    pub const READY: i64 = 1;
    pub const LOCKED: i64 = 2;
    pub const ERROR: i64 = 3;
    pub const DISABLED: i64 = 4;
}

/// `MarketPlaceApp::Type`.
pub mod app_type {
    pub const UNKNOWN: i64 = 0;
    pub const IMAGE: i64 = 1;
    pub const VMTEMPLATE: i64 = 2;
    pub const SERVICE_TEMPLATE: i64 = 3;
}

#[derive(Debug, Clone, PartialEq)]
pub struct MarketRow {
    pub head: Head,
    pub state: i64,
    pub market_mad: String,
    pub zone_id: i64,
    pub total_mb: i64,
    pub free_mb: i64,
    pub used_mb: i64,
    pub template: String,
    /// Its apps' ids, ascending.
    pub apps: Vec<i64>,
}

has_owner!(MarketRow);

fn read_market(c: &Conn, r: &Row) -> crate::sql::Result<MarketRow> {
    let head = Head::from_row(r)?;
    let at = HEAD_COLUMNS;
    let oid = head.owned.oid;
    Ok(MarketRow {
        head,
        state: r.get(at)?,
        market_mad: r.get(at + 1)?,
        zone_id: r.get(at + 2)?,
        total_mb: r.get(at + 3)?,
        free_mb: r.get(at + 4)?,
        used_mb: r.get(at + 5)?,
        template: r.get(at + 6)?,
        apps: apps_of(c, oid)?,
    })
}

pub static MARKET_ROWS: Rows<MarketRow> = Rows {
    select: owned_select!(
        "marketplace_pool",
        "m",
        "m.state, m.market_mad, m.zone_id, m.total_mb, m.free_mb, m.used_mb, m.template"
    ),
    alias: "m",
    read: read_market,
};

/// The ids of market `oid`'s apps, ascending.
pub fn apps_of(c: &Conn, oid: i64) -> crate::sql::Result<Vec<i64>> {
    c.prepare_cached("SELECT oid FROM marketplaceapp_pool WHERE market_id = ?1 ORDER BY oid")?
        .query_map([oid], |r| r.get(0))?
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppRow {
    pub head: Head,
    pub lock: Lock,
    pub regtime: i64,
    pub zone_id: i64,
    pub origin_id: i64,
    pub source: String,
    pub md5: String,
    pub size: i64,
    pub description: String,
    pub version: String,
    pub format: String,
    pub apptemplate64: String,
    pub market_id: i64,
    pub market: String,
    pub state: i64,
    pub kind: i64,
    pub template: String,
}

has_owner!(lockable AppRow);

fn read_app(_: &Conn, r: &Row) -> crate::sql::Result<AppRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    Ok(AppRow {
        head,
        lock,
        regtime: r.get(c)?,
        zone_id: r.get(c + 1)?,
        origin_id: r.get(c + 2)?,
        source: r.get(c + 3)?,
        md5: r.get(c + 4)?,
        size: r.get(c + 5)?,
        description: r.get(c + 6)?,
        version: r.get(c + 7)?,
        format: r.get(c + 8)?,
        apptemplate64: r.get(c + 9)?,
        market_id: r.get(c + 10)?,
        market: r.get(c + 11)?,
        state: r.get(c + 12)?,
        kind: r.get(c + 13)?,
        template: r.get(c + 14)?,
    })
}

pub static APP_ROWS: Rows<AppRow> = Rows {
    select: owned_select!(
        lockable "marketplaceapp_pool",
        "a",
        "a.regtime, a.zone_id, a.origin_id, a.source, a.md5, a.size, a.description, a.version,
         a.format, a.apptemplate64, a.market_id, COALESCE(mk.name, ''), a.state, a.type,
         a.template",
        " LEFT JOIN marketplace_pool mk ON mk.oid = a.market_id"
    ),
    alias: "a",
    read: read_app,
};

/// A new market; the oid comes from the counter ([`super::next_oid`]).
pub struct NewMarket<'a> {
    pub name: &'a str,
    pub uid: i64,
    pub gid: i64,
    pub perms: i64,
    pub state: i64,
    pub market_mad: &'a str,
    pub zone_id: i64,
    pub template: String,
}

pub fn insert_market(m: NewMarket<'_>) -> SqlStmt {
    super::insert_next(
        MARKETS,
        "name, uid, gid, perms, state, market_mad, zone_id, template",
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8",
        vec![
            SqlValue::Text(m.name.to_string()),
            SqlValue::Int(m.uid),
            SqlValue::Int(m.gid),
            SqlValue::Int(m.perms),
            SqlValue::Int(m.state),
            SqlValue::Text(m.market_mad.to_string()),
            SqlValue::Int(m.zone_id),
            SqlValue::Text(m.template),
        ],
    )
}

/// OpenNebula's two default markets (ids 0 and 1, `uma u-- u--`, oneadmin's) and the counters:
/// markets made later start at 100, apps at 0.
pub fn bootstrap_default(zone: i64) -> Vec<SqlStmt> {
    let market = |oid: i64, name: &str, state: i64, mad: &str, description: &str| {
        SqlStmt::new(
            "INSERT INTO marketplace_pool
               (oid, name, uid, gid, perms, state, market_mad, zone_id, template)
             VALUES (?1, ?2, 0, 0, ?3, ?4, ?5, ?6, ?7)",
            vec![
                SqlValue::Int(oid),
                SqlValue::Text(name.to_string()),
                SqlValue::Int(0o744),
                SqlValue::Int(state),
                SqlValue::Text(mad.to_string()),
                SqlValue::Int(zone),
                SqlValue::Text(format!(
                    "DESCRIPTION=\"{description}\"\nMARKET_MAD=\"{mad}\"\n"
                )),
            ],
        )
    };
    vec![
        market(
            0,
            "OpenNebula Public",
            ENABLED,
            "one",
            "OpenNebula Systems MarketPlace",
        ),
        market(
            1,
            "Linux Containers",
            DISABLED,
            "linuxcontainers",
            "MarketPlace for the public image server fo LXC & LXD hosted at linuxcontainers.org",
        ),
        SqlStmt::new(
            "INSERT INTO pool_control (tablename, last_oid)
             VALUES ('marketplace_pool', 99), ('marketplaceapp_pool', -1)",
            vec![],
        ),
    ]
}

/// A market's name, state, driver and template, if it still has `old` as its template.
pub fn set_market_template(oid: i64, mad: &str, new: String, old: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE marketplace_pool SET template = ?2, market_mad = ?3 WHERE oid = ?1 AND template = ?4",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(new),
            SqlValue::Text(mad.to_string()),
            SqlValue::Text(old),
        ],
    )
    .must_match()
}

/// Enables or disables market `oid`; disabling drops its apps, as OpenNebula's does.
pub fn set_market_state(oid: i64, state: i64) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "UPDATE marketplace_pool SET state = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Int(state)],
    )
    .must_match()];
    if state == DISABLED {
        stmts.push(SqlStmt::new(
            "DELETE FROM marketplaceapp_pool WHERE market_id = ?1",
            vec![SqlValue::Int(oid)],
        ));
    }
    stmts
}

/// Deletes market `oid` with its apps (a public market's, which its driver never held).
pub fn delete_market(oid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "DELETE FROM marketplaceapp_pool WHERE market_id = ?1",
            vec![SqlValue::Int(oid)],
        ),
        super::delete(MARKETS, oid),
    ]
}

/// A new app.
pub struct NewApp<'a> {
    pub name: &'a str,
    pub uid: i64,
    pub gid: i64,
    pub perms: i64,
    pub regtime: i64,
    pub zone_id: i64,
    pub origin_id: i64,
    pub description: &'a str,
    pub version: &'a str,
    pub apptemplate64: &'a str,
    pub market_id: i64,
    pub state: i64,
    pub kind: i64,
    pub template: String,
}

pub fn insert_app(a: NewApp<'_>) -> SqlStmt {
    super::insert_next(
        APPS,
        "name, uid, gid, perms, regtime, zone_id, origin_id, source, md5, size, description,
         version, format, apptemplate64, market_id, state, type, template",
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, '', '', 0, ?8, ?9, '', ?10, ?11, ?12, ?13, ?14",
        vec![
            SqlValue::Text(a.name.to_string()),
            SqlValue::Int(a.uid),
            SqlValue::Int(a.gid),
            SqlValue::Int(a.perms),
            SqlValue::Int(a.regtime),
            SqlValue::Int(a.zone_id),
            SqlValue::Int(a.origin_id),
            SqlValue::Text(a.description.to_string()),
            SqlValue::Text(a.version.to_string()),
            SqlValue::Text(a.apptemplate64.to_string()),
            SqlValue::Int(a.market_id),
            SqlValue::Int(a.state),
            SqlValue::Int(a.kind),
            SqlValue::Text(a.template),
        ],
    )
}

/// The app of `uid` called `name`, if any (app names are unique per owner).
pub fn app_named(c: &Conn, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    use crate::sql::Optional;
    c.prepare_cached("SELECT oid FROM marketplaceapp_pool WHERE name = ?1 AND uid = ?2")?
        .query_row((name, uid), |r| r.get(0))
        .optional()
}

/// The market called `name`, if any (market names are unique).
pub fn market_named(c: &Conn, name: &str) -> crate::sql::Result<Option<i64>> {
    use crate::sql::Optional;
    c.prepare_cached("SELECT oid FROM marketplace_pool WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

/// An app's template and the fields OpenNebula keeps apart from it, if the template is still
/// `old`.
pub fn set_app_template(
    oid: i64,
    description: &str,
    version: &str,
    apptemplate64: &str,
    new: String,
    old: String,
) -> SqlStmt {
    SqlStmt::new(
        "UPDATE marketplaceapp_pool SET template = ?2, description = ?3, version = ?4,
           apptemplate64 = ?5 WHERE oid = ?1 AND template = ?6",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(new),
            SqlValue::Text(description.to_string()),
            SqlValue::Text(version.to_string()),
            SqlValue::Text(apptemplate64.to_string()),
            SqlValue::Text(old),
        ],
    )
    .must_match()
}

/// `one.marketapp.enable`: READY and DISABLED apps move between the two; others stay.
pub fn enable_app(oid: i64, enable: bool) -> SqlStmt {
    SqlStmt::new(
        "UPDATE marketplaceapp_pool SET state = CASE WHEN state IN (?2, ?3) THEN ?4 ELSE state END
         WHERE oid = ?1",
        vec![
            SqlValue::Int(oid),
            SqlValue::Int(app_state::READY),
            SqlValue::Int(app_state::DISABLED),
            SqlValue::Int(if enable {
                app_state::READY
            } else {
                app_state::DISABLED
            }),
        ],
    )
    .must_match()
}

/// An app the driver is importing (LOCKED), with what it needs to finish.
#[derive(Debug, Clone, PartialEq)]
pub struct Importing {
    pub oid: i64,
    /// The app's own template.
    pub template: String,
    pub market_template: String,
    pub origin_id: i64,
    /// The origin image's size (MB), path and format, if it still exists.
    pub image: Option<(i64, String, String)>,
}

/// Apps of zone `zone` being imported into markets whose driver can create them (`http`,
/// `s3`): each zone's driver imports from its own images.
pub fn importing(c: &Conn, zone: i64) -> crate::sql::Result<Vec<Importing>> {
    c.prepare_cached(
        "SELECT a.oid, m.template, a.origin_id, i.size, i.path, i.format, a.template
         FROM marketplaceapp_pool a JOIN marketplace_pool m ON m.oid = a.market_id
         LEFT JOIN image_pool i ON i.oid = a.origin_id
         WHERE a.state = ?1 AND a.zone_id = ?2 AND LOWER(m.market_mad) IN ('http', 's3')
         ORDER BY a.oid",
    )?
    .query_map([app_state::LOCKED, zone], |r| {
        let size: Option<i64> = r.get(3)?;
        Ok(Importing {
            oid: r.get(0)?,
            template: r.get(6)?,
            market_template: r.get(1)?,
            origin_id: r.get(2)?,
            image: match size {
                Some(s) => Some((s, r.get(4)?, r.get(5)?)),
                None => None,
            },
        })
    })?
    .collect()
}

/// The driver's answer to an import: the app READY where it now is, or in ERROR.
pub fn imported(oid: i64, result: Result<(&str, &str, i64, &str), &str>) -> SqlStmt {
    match result {
        Ok((source, md5, size, format)) => SqlStmt::new(
            "UPDATE marketplaceapp_pool SET state = ?2, source = ?3, md5 = ?4, size = ?5,
               format = ?6 WHERE oid = ?1 AND state = ?7",
            vec![
                SqlValue::Int(oid),
                SqlValue::Int(app_state::READY),
                SqlValue::Text(source.to_string()),
                SqlValue::Text(md5.to_string()),
                SqlValue::Int(size),
                SqlValue::Text(format.to_string()),
                SqlValue::Int(app_state::LOCKED),
            ],
        ),
        Err(template) => SqlStmt::new(
            "UPDATE marketplaceapp_pool SET state = ?2, template = ?3 WHERE oid = ?1 AND state = ?4",
            vec![
                SqlValue::Int(oid),
                SqlValue::Int(app_state::ERROR),
                SqlValue::Text(template.to_string()),
                SqlValue::Int(app_state::LOCKED),
            ],
        ),
    }
}
