//! `one.vdc.*` and `one.vdcpool.info`: virtual data centers, as OpenNebula's `Vdc`. A VDC
//! gives its groups clusters, hosts, datastores and networks of zones through ACL rules, made
//! and removed in the same replicated transaction as the change. VDCs belong to oneadmin: group
//! oneadmin sees and changes them, anyone else as ACL rules on VDC allow.

use sqlstore::objects::vdc::{self as rows, Kind, VdcRow, ALL};
use sqlstore::objects::Table;
use sqlstore::{SqlStmt, SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::print_rows;
use super::method::{self as table, Auth, Method, Need};
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use wire::acl::{ADMIN, GROUP, MANAGE, USE, VDC, ZONE};

macro_rules! resource_methods {
    ($($name:literal => $handler:ident),* $(,)?) => {
        [$(method!($name, Write, Auth::Deferred(VDC, ADMIN), $handler)),*]
    };
}

/// OpenNebula's rights: `VdcAllocate` CREATE, `VdcDelete` ADMIN, `VdcUpdateTemplate` and
/// `VdcRename` MANAGE, `VdcInfo` USE; a group or resource change is ADMIN on the VDC and on
/// the group, or on the zone and resource (`VdcEditGroup`, `VdcEditResource`).
pub const METHODS: &[Method] = &[
    // CREATE VDC once the template parses (`RequestManagerAllocate`).
    method!("one.vdc.allocate", Write, Auth::Object, allocate),
    method!("one.vdc.delete", Write, Auth::On(VDC, ADMIN), delete),
    method!("one.vdc.update", Write, Auth::On(VDC, MANAGE), update),
    method!("one.vdc.rename", Write, Auth::Deferred(VDC, MANAGE), rename),
    method!("one.vdc.info", Read, Auth::On(VDC, USE), info),
    // The VDCs the caller may USE.
    method!("one.vdcpool.info", Read, Auth::Object, pool_info),
    method!(
        "one.vdc.addgroup",
        Write,
        Auth::Deferred(VDC, ADMIN),
        addgroup
    ),
    method!(
        "one.vdc.delgroup",
        Write,
        Auth::Deferred(VDC, ADMIN),
        delgroup
    ),
];

pub const RESOURCE_METHODS: &[Method] = &resource_methods!(
    "one.vdc.addcluster" => addcluster,
    "one.vdc.delcluster" => delcluster,
    "one.vdc.addhost" => addhost,
    "one.vdc.delhost" => delhost,
    "one.vdc.adddatastore" => adddatastore,
    "one.vdc.deldatastore" => deldatastore,
    "one.vdc.addvnet" => addvnet,
    "one.vdc.delvnet" => delvnet,
);

/// `Vdc::to_xml`: groups, then each kind of resource as (ZONE_ID, <KIND>_ID), then the template.
pub(super) fn vdc_xml(v: &VdcRow, out: &mut String) {
    Xml::new(out).elem("VDC", |x| {
        x.num("ID", v.oid)
            .text("NAME", &v.name)
            .elem("GROUPS", |x| {
                for g in &v.groups {
                    x.num("ID", g);
                }
            });
        for kind in Kind::ALL {
            let list = format!("{}S", kind.as_str());
            x.elem(&list, |x| {
                for (zone, id) in v.of(kind) {
                    x.elem(kind.as_str(), |x| {
                        x.num("ZONE_ID", zone)
                            .num(&format!("{}_ID", kind.as_str()), id);
                    });
                }
            });
        }
        x.raw(&xml::template(&v.template, "TEMPLATE"));
    });
}

fn no_vdc(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting VDC [{id}]."))
}

async fn load(ctx: &Ctx, id: i64) -> Result<VdcRow, Failure> {
    ctx.read(move |c| rows::load(c, id))
        .await?
        .ok_or_else(|| no_vdc(id))
}

/// `one.vdc.allocate(template)`: a VDC with no groups and no resources.
pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let text = p.string(0)?.to_string();
    let mut t = super::validate::template(&text).map_err(|e| fail(code::INTERNAL, e))?;
    super::method::require(ctx, s, &[super::method::Need::kind(VDC, wire::acl::CREATE)]).await?;
    let name = t.single("NAME").unwrap_or("").to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    t.remove("NAME");
    let taken = |other: i64| {
        fail(
            code::INTERNAL,
            format!("NAME is already taken by Vdc {other}."),
        )
    };
    if let Some(other) = named(ctx, &name).await? {
        return Err(taken(other));
    }
    let values = ctx
        .commit(
            SqlTxn {
                stmts: vec![
                    rows::insert(&name, &t.to_text()).must_match(),
                    sqlstore::objects::next_oid(rows::TABLE),
                ],
            },
            |r| match r.kind {
                TxnErrorKind::Constraint => taken(-1),
                _ => fail(
                    code::INTERNAL,
                    format!("Error allocating a new VDC. {}", r.message),
                ),
            },
        )
        .await?;
    super::new_id(&values, "VDC")
}

/// The VDC called `name`, if any.
async fn named(ctx: &Ctx, name: &str) -> Result<Option<i64>, Failure> {
    let name = name.to_string();
    ctx.read(move |c| {
        use sqlstore::Optional;
        c.query_row(
            "SELECT oid FROM vdc_pool WHERE name = ?1",
            [sqlstore::SqlValue::Text(name.clone())],
            |r| r.get::<i64>(0),
        )
        .optional()
    })
    .await
}

pub async fn info(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let v = load(ctx, i64::from(p.int(0)?)).await?;
    Ok(Value::String(xml::build_with(|out| vdc_xml(&v, out))))
}

/// `one.vdcpool.info()`: the VDCs the caller may USE (every one for group oneadmin), printed
/// one row at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let order = super::list_order::for_session(ctx, s).await?;
    let out = table::read_visible(ctx, s, VDC, move |c, may_use| {
        let mut out = String::from("<VDC_POOL>");
        let sql = format!("{} ORDER BY oid{}", rows::SELECT, order.sql());
        let each = |v: &VdcRow, out: &mut String| {
            if may_use(v.oid) {
                vdc_xml(v, out);
            }
        };
        print_rows(c, &sql, Vec::new(), rows::read, each, &mut out)?;
        out.push_str("</VDC_POOL>");
        Ok(out)
    })
    .await?;
    Ok(Value::String(out))
}

pub async fn delete(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let v = load(ctx, id).await?;
    super::family::deletable_id(
        id,
        "Cannot delete VDC. System VDCs (ID < 100) cannot be deleted.",
    )?;
    // Deleted or changed meanwhile: the next call says which.
    ctx.commit(
        SqlTxn {
            stmts: rows::delete(&v),
        },
        |r| r.missing(no_vdc(id)),
    )
    .await?;
    Ok(Value::Int(id as i32))
}

pub async fn update(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    super::update_template(ctx, &p, rows::TABLE, "template", no_vdc).await
}

pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    let name = p.string(1)?.to_string();
    let v = load(ctx, id).await?;
    // `RequestManagerRename`: its own name again is a success, before the authorization.
    if v.name == name {
        return Ok(Value::Int(id as i32));
    }
    super::method::require_on(ctx, s, wire::acl::VDC, id, wire::acl::MANAGE).await?;
    super::validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    let other = named(ctx, &name).await?;
    let collides = |other: i64| {
        fail(
            code::ACTION,
            format!("VDC cannot be renamed to {name} because it collides with VDC {other}"),
        )
    };
    if let Some(other) = other {
        return Err(collides(other));
    }
    let txn = SqlTxn {
        stmts: vec![sqlstore::objects::set_name(rows::TABLE, id, &name)],
    };
    ctx.commit(txn, |r| match r.kind {
        TxnErrorKind::NotFound => no_vdc(id),
        TxnErrorKind::Constraint => collides(-1),
        _ => r.internal(),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// Runs a change of VDC `id`: `refused` words a guard that matched nothing (an entry there
/// already, or not there), unless the VDC itself went.
async fn change(ctx: &Ctx, id: i64, stmts: Vec<SqlStmt>, refused: Failure) -> MethodResult {
    ctx.commit(SqlTxn { stmts }, |r| r.missing(refused)).await?;
    Ok(Value::Int(id as i32))
}

/// `one.vdc.addgroup` / `delgroup(vdc, group)`: the VDC and (adding) the group must exist;
/// anyone but group oneadmin needs ADMIN on the VDC and on the group (`VdcEditGroup`).
async fn group_change(ctx: &Ctx, s: &Session, p: Params<'_>, add: bool) -> MethodResult {
    let (id, gid) = (i64::from(p.int(0)?), i64::from(p.int(1)?));
    let v = load(ctx, id).await?;
    if add {
        super::must_exist(ctx, Table::Group, gid).await?;
    }
    if !s.is_admin() {
        let mut needs = vec![Need::on(VDC, id, ADMIN)];
        if add || exists(ctx, Table::Group, gid).await? {
            needs.push(Need::on(GROUP, gid, ADMIN));
        }
        table::require(ctx, s, &needs).await?;
    }
    let there = v.groups.contains(&gid);
    if add == there {
        let what = if add { "already" } else { "not" };
        return Err(fail(
            code::INTERNAL,
            format!("Group {gid} is {what} assigned to the VDC {id}"),
        ));
    }
    let stmts = if add {
        rows::add_group(id, gid, &v.resources)
    } else {
        rows::del_group(id, gid, &v.resources)
    };
    change(ctx, id, stmts, no_vdc(id)).await
}

pub async fn addgroup(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    group_change(ctx, s, p, true).await
}

pub async fn delgroup(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    group_change(ctx, s, p, false).await
}

/// `one.vdc.add<kind>` / `del<kind>(vdc, zone, id)`, in OpenNebula's order of checks: the VDC,
/// the zone and the resource (both only when adding, the resource only in this zone and for a
/// real id), then, for anyone but group oneadmin, ADMIN on the VDC and on the zone and the
/// resource that exist, then the change itself.
async fn resource_change(
    ctx: &Ctx,
    s: &Session,
    p: Params<'_>,
    kind: Kind,
    add: bool,
) -> MethodResult {
    let (id, zone, rid) = (
        i64::from(p.int(0)?),
        i64::from(p.int(1)?),
        i64::from(p.int(2)?),
    );
    let v = load(ctx, id).await?;
    if add {
        let exists = ctx.read(move |c| sqlstore::load_zone(c, zone)).await?;
        if exists.is_none() {
            return Err(fail(
                code::NO_EXISTS,
                format!("Error getting zone [{zone}]."),
            ));
        }
        if rid != ALL && zone == ctx.config.zone_id {
            resource_exists(ctx, kind, rid).await?;
        }
    }
    if !s.is_admin() {
        let mut needs = vec![Need::on(VDC, id, ADMIN)];
        if ctx
            .read(move |c| sqlstore::load_zone(c, zone))
            .await?
            .is_some()
        {
            needs.push(Need::on(ZONE, zone, ADMIN));
        }
        if rid != ALL && zone == ctx.config.zone_id {
            needs.extend(resource_need(ctx, kind, rid).await?);
        }
        table::require(ctx, s, &needs).await?;
    }
    if kind == Kind::Vnet
        && rid != ALL
        && zone == ctx.config.zone_id
        && exists(ctx, Table::Vnet, rid).await?
    {
        // The network's permissions carry its lock, which refuses ADMIN to anyone, oneadmin
        // too (`NET is locked. [id]`).
        super::vnet::NETS.authorized(ctx, s, rid, ADMIN).await?;
    }
    let there = v.of(kind).any(|e| e == (zone, rid));
    let name = kind.object_name();
    if add && there {
        return Err(fail(
            code::INTERNAL,
            format!("{name} {rid} from Zone {zone} is already assigned to the VDC"),
        ));
    }
    if !add && !there {
        // OpenNebula's message ends with a space.
        return Err(fail(
            code::INTERNAL,
            format!("{name} {rid} from Zone {zone} is not assigned to the VDC "),
        ));
    }
    let mut stmts = if add {
        rows::add_resource(id, kind, zone, rid, &v.groups)
    } else {
        rows::del_resource(id, kind, zone, rid, &v.groups)
    };
    // Every resource of the kind in the zone: the ones named before go, with their rules.
    if add && rid == ALL {
        for (z, other) in v.of(kind).filter(|(z, r)| *z == zone && *r != ALL) {
            stmts.extend(rows::del_resource(id, kind, z, other, &v.groups));
        }
    }
    let refused = fail(
        code::INTERNAL,
        format!("The VDC {id} changed meanwhile, try again"),
    );
    change(ctx, id, stmts, refused).await
}

async fn resource_exists(ctx: &Ctx, kind: Kind, rid: i64) -> Result<(), Failure> {
    match kind {
        Kind::Host => super::must_exist(ctx, Table::Host, rid).await,
        Kind::Datastore => super::must_exist(ctx, Table::Datastore, rid).await,
        Kind::Vnet => super::must_exist(ctx, Table::Vnet, rid).await,
        Kind::Cluster => {
            let found = ctx
                .read(move |c| sqlstore::objects::cluster::load(c, rid))
                .await?;
            found
                .map(|_| ())
                .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting cluster [{rid}].")))
        }
    }
}

/// Whether `table` holds object `oid`.
async fn exists(ctx: &Ctx, table: Table, oid: i64) -> Result<bool, Failure> {
    ctx.read(move |c| sqlstore::objects::exists(c, table, oid))
        .await
}

/// ADMIN on resource `rid` of this zone, if it exists.
async fn resource_need(ctx: &Ctx, kind: Kind, rid: i64) -> Result<Option<Need>, Failure> {
    use wire::acl::{CLUSTER, DATASTORE, HOST, NET};
    let (acl, pool) = match kind {
        Kind::Cluster => {
            let there = ctx
                .read(move |c| sqlstore::objects::host::cluster_exists(c, rid))
                .await?;
            return Ok(there.then(|| Need::on(CLUSTER, rid, ADMIN)));
        }
        Kind::Host => (HOST, Table::Host),
        Kind::Datastore => (DATASTORE, Table::Datastore),
        Kind::Vnet => (NET, Table::Vnet),
    };
    if !exists(ctx, pool, rid).await? {
        return Ok(None);
    }
    let obj = table::owned(ctx, pool, rid).await?;
    Ok(Some(Need::owned(acl, obj, ADMIN)))
}

macro_rules! resource_handlers {
    ($($add:ident, $del:ident => $kind:expr);* $(;)?) => {$(
        pub async fn $add(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
            resource_change(ctx, s, p, $kind, true).await
        }
        pub async fn $del(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
            resource_change(ctx, s, p, $kind, false).await
        }
    )*};
}

resource_handlers!(
    addcluster, delcluster => Kind::Cluster;
    addhost, delhost => Kind::Host;
    adddatastore, deldatastore => Kind::Datastore;
    addvnet, delvnet => Kind::Vnet;
);
