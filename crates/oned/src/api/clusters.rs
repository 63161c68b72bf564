//! `one.cluster.*` and `one.clusterpool.info`: clusters of hosts (each host in one), datastores
//! and virtual networks (each in any number). Cluster 0 `default` exists from the start; new
//! ones get ids from 100. Group oneadmin sees and changes them, anyone else as ACL rules allow.

use sqlstore::objects::cluster::{self as rows, ClusterRow, Member};
use sqlstore::objects::host;
use sqlstore::objects::Table;
use sqlstore::{SqlStmt, SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::cluster_drs;
use super::family::print_rows;
use super::method::{self as table, Auth, Method, Need};
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use wire::acl::{ADMIN, CLUSTER, HOST, MANAGE, USE};

/// OpenNebula's rights: `ClusterAllocate` CREATE, `ClusterDelete` ADMIN, `ClusterUpdateTemplate`
/// and `ClusterRename` MANAGE, `ClusterInfo` USE; adding or removing a host, datastore or
/// network is ADMIN on the cluster and on the object (`RequestManagerCluster`).
pub const METHODS: &[Method] = &[
    method!(
        "one.cluster.allocate",
        Write,
        Auth::Create(CLUSTER),
        allocate
    ),
    method!(
        "one.cluster.delete",
        Write,
        Auth::On(CLUSTER, ADMIN),
        delete
    ),
    method!(
        "one.cluster.update",
        Write,
        Auth::On(CLUSTER, MANAGE),
        update
    ),
    method!(
        "one.cluster.rename",
        Write,
        Auth::Deferred(CLUSTER, MANAGE),
        rename
    ),
    method!("one.cluster.info", Read, Auth::On(CLUSTER, USE), info),
    method!(
        "one.cluster.addhost",
        Write,
        Auth::Deferred(CLUSTER, ADMIN),
        addhost
    ),
    method!(
        "one.cluster.delhost",
        Write,
        Auth::Deferred(CLUSTER, ADMIN),
        delhost
    ),
    method!(
        "one.cluster.adddatastore",
        Write,
        Auth::Deferred(CLUSTER, ADMIN),
        adddatastore
    ),
    method!(
        "one.cluster.deldatastore",
        Write,
        Auth::Deferred(CLUSTER, ADMIN),
        deldatastore
    ),
    method!(
        "one.cluster.addvnet",
        Write,
        Auth::Deferred(CLUSTER, ADMIN),
        addvnet
    ),
    method!(
        "one.cluster.delvnet",
        Write,
        Auth::Deferred(CLUSTER, ADMIN),
        delvnet
    ),
    // The clusters the caller may USE.
    method!("one.clusterpool.info", Read, Auth::Object, pool_info),
];

/// A cluster, in OpenNebula's element order; `one.cluster.info` adds its PLAN.
pub(super) fn cluster_xml(c: &ClusterRow, out: &mut String) {
    Xml::new(out).elem("CLUSTER", |x| {
        x.num("ID", c.oid)
            .text("NAME", &c.name)
            .ids("HOSTS", &c.hosts)
            .ids("DATASTORES", &c.datastores)
            .ids("VNETS", &c.vnets)
            .raw(&xml::template(&c.template, "TEMPLATE"));
    });
}

fn no_cluster(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting cluster [{id}]."))
}

/// The cluster an allocation names in parameter `at` (-1 or absent: the default cluster),
/// which must exist.
pub(super) async fn allocation_cluster(
    ctx: &Ctx,
    p: &Params<'_>,
    at: usize,
) -> Result<i64, Failure> {
    let id = if p.len() > at {
        i64::from(p.int(at)?)
    } else {
        -1
    };
    let id = if id == -1 { rows::DEFAULT } else { id };
    if !ctx.read(move |c| host::cluster_exists(c, id)).await? {
        return Err(no_cluster(id));
    }
    Ok(id)
}

pub async fn allocate(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    super::validate::object_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    super::allocate_next(
        ctx,
        rows::TABLE,
        rows::insert(&name),
        "cluster",
        "CLUSTER",
        &name,
    )
    .await
}

pub(super) async fn load(ctx: &Ctx, id: i64) -> Result<ClusterRow, Failure> {
    ctx.read(move |c| rows::load(c, id))
        .await?
        .ok_or_else(|| no_cluster(id))
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let c = load(ctx, i64::from(p.int(0)?)).await?;
    let mut body = xml::build_with(|out| cluster_xml(&c, out));
    super::cluster_plan::with_plan(&mut body, c.oid, c.plan.as_ref());
    Ok(Value::String(super::encrypted::answer(
        ctx,
        s,
        &p,
        rows::TABLE,
        body,
    )?))
}

/// `one.clusterpool.info()`: the clusters the caller may USE (every one for group oneadmin),
/// printed one row at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let order = super::list_order::for_session(ctx, s).await?;
    let out = table::read_visible(ctx, s, CLUSTER, move |c, may_use| {
        let mut out = String::from("<CLUSTER_POOL>");
        let sql = format!("{} ORDER BY oid{}", rows::SELECT, order.sql());
        let each = |cl: &ClusterRow, out: &mut String| {
            if may_use(cl.oid) {
                cluster_xml(cl, out);
            }
        };
        print_rows(c, &sql, Vec::new(), rows::read, each, &mut out)?;
        out.push_str("</CLUSTER_POOL>");
        Ok(out)
    })
    .await?;
    Ok(Value::String(out))
}

pub async fn delete(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = i64::from(p.int(0)?);
    // `RequestManagerDelete`: the cluster first (NO_EXISTS), then `ClusterPool::drop`'s
    // refusal, then OpenNebula's check_drop in its order; the transaction's guard holds it if
    // something joined meanwhile.
    let c = load(ctx, id).await?;
    super::family::deletable_id(
        id,
        "Cannot delete cluster. System Clusters (ID < 100) cannot be deleted.",
    )?;
    let not_empty = |n: usize, what: &str| {
        fail(
            code::ACTION,
            format!("Cannot delete cluster. Cluster {id} is not empty, it contains {n} {what}."),
        )
    };
    for (list, what) in [
        (&c.hosts, "hosts"),
        (&c.datastores, "datastores"),
        (&c.vnets, "vnets"),
    ] {
        if !list.is_empty() {
            return Err(not_empty(list.len(), what));
        }
    }
    ctx.commit(
        SqlTxn {
            stmts: {
                let mut stmts = rows::delete_if_empty(id);
                stmts.push(sqlstore::objects::acl::drop_rules_on(
                    wire::acl::CLUSTER,
                    id,
                ));
                // `ClusterDelete::drop`'s `del_cid_rules`: the rules on its objects.
                stmts.push(sqlstore::objects::acl::drop_rules_on_cluster_objects(id));
                stmts.extend(sqlstore::objects::vdc::forget_resource(
                    sqlstore::objects::vdc::Kind::Cluster,
                    ctx.config.zone_id,
                    id,
                ));
                stmts
            },
        },
        |r| match r.kind {
            TxnErrorKind::NotFound => fail(
                code::ACTION,
                format!("Cannot delete cluster. Cluster {id} is not empty."),
            ),
            _ => fail(
                code::ACTION,
                format!("Cannot delete cluster. {}", r.message),
            ),
        },
    )
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.cluster.update(id, template, type)`, then `Cluster::post_update_template`: a ONE_DRS
/// vector is checked and normalized, and refused while a host of the cluster is pinned.
pub async fn update(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let merge = super::writes::update_type(&p)?;
    let text = &text;
    let refused = |why: String| fail(code::INTERNAL, format!("Cannot update template. {why}"));
    super::writes::write_computed(ctx, id, move || async move {
        let c = load(ctx, id).await?;
        let new = super::writes::merged(&c.template, text, merge)?;
        let mut t = template::Template::parse(&new).map_err(|e| refused(e.to_string()))?;
        if cluster_drs::present(&t) {
            cluster_drs::normalize(&mut t).map_err(refused)?;
            let hosts = c.hosts.clone();
            let pinned = ctx
                .read(move |conn| {
                    for h in hosts {
                        if let Some(h) = host::load(conn, h)? {
                            if cluster_drs::pinned(&h.template) {
                                return Ok(Some(h.oid));
                            }
                        }
                    }
                    Ok(None)
                })
                .await?;
            if let Some(h) = pinned {
                return Err(refused(format!("Error cluster contains pinned host {h}")));
            }
        }
        super::encrypted::seal_in(ctx, rows::TABLE, &mut t);
        Ok(vec![sqlstore::objects::replace_template(
            rows::TABLE,
            "template",
            id,
            t.to_text(),
            c.template,
        )])
    })
    .await
}

pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    super::writes::rename_unique(
        ctx,
        s,
        &p,
        rows::TABLE,
        "cluster",
        no_cluster,
        (CLUSTER, MANAGE),
    )
    .await
}

/// Runs a membership change of cluster `cid`; NotFound means the cluster or the object went.
async fn membership(
    ctx: &Ctx,
    cid: i64,
    stmts: Vec<SqlStmt>,
    gone: impl FnOnce() -> Failure,
) -> MethodResult {
    ctx.commit(SqlTxn { stmts }, |r| r.missing(gone())).await?;
    Ok(Value::Int(cid as i32))
}

/// Moves host `hid` to cluster `cid` (a host is in one cluster only), with ADMIN on both once
/// both exist (`RequestManagerClusterHost::add_generic`).
async fn move_host(ctx: &Ctx, s: &Session, cid: i64, hid: i64) -> MethodResult {
    load(ctx, cid).await?;
    let h = ctx
        .read(move |c| host::load(c, hid))
        .await?
        .ok_or_else(|| fail(code::NO_EXISTS, format!("Error getting host [{hid}].")))?;
    let needs = [Need::on(CLUSTER, cid, ADMIN), Need::on(HOST, hid, ADMIN)];
    table::require(ctx, s, &needs).await?;
    if h.cluster_id == cid {
        return Ok(Value::Int(cid as i32));
    }
    membership(ctx, cid, rows::move_host(cid, hid), || no_cluster(cid)).await
}

/// `one.cluster.addhost(cid, hid)`.
pub async fn addhost(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    move_host(ctx, s, i64::from(p.int(0)?), i64::from(p.int(1)?)).await
}

/// `one.cluster.delhost(cid, hid)`: the host goes back to the default cluster, whichever
/// cluster the call names (OpenNebula ignores it: a host is in exactly one), with ADMIN on the
/// default cluster.
pub async fn delhost(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    move_host(ctx, s, rows::DEFAULT, i64::from(p.int(1)?)).await
}

fn member_name(m: Member) -> &'static str {
    match m {
        Member::Datastore => "datastore",
        Member::Network => "virtual network",
    }
}

/// Adds (`add`) or removes datastore or network `oid` to or from cluster `cid`: both must
/// exist, and ADMIN on both (`RequestManagerCluster::action_generic`); being there already, or
/// not being there, is no error.
async fn change(ctx: &Ctx, s: &Session, p: Params<'_>, m: Member, add: bool) -> MethodResult {
    let (cid, oid) = (i64::from(p.int(0)?), i64::from(p.int(1)?));
    load(ctx, cid).await?;
    let (kind, pool) = match m {
        Member::Datastore => (wire::acl::DATASTORE, Table::Datastore),
        Member::Network => (wire::acl::NET, Table::Vnet),
    };
    super::must_exist(ctx, pool, oid).await?;
    if !s.is_admin() {
        let obj = table::owned(ctx, pool, oid).await?;
        let needs = [Need::on(CLUSTER, cid, ADMIN), Need::owned(kind, obj, ADMIN)];
        table::require(ctx, s, &needs).await?;
    }
    if m == Member::Network {
        // The network's permissions carry its lock, which refuses ADMIN to anyone, oneadmin
        // too (`NET is locked. [id]`).
        super::vnet::NETS.authorized(ctx, s, oid, ADMIN).await?;
    }
    let gone = move || {
        fail(
            code::NO_EXISTS,
            format!("Error getting {} [{oid}].", member_name(m)),
        )
    };
    let stmts = if add {
        rows::add(m, cid, oid)
    } else {
        vec![rows::remove(m, cid, oid)]
    };
    membership(ctx, cid, stmts, gone).await
}

pub async fn adddatastore(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    change(ctx, s, p, Member::Datastore, true).await
}

pub async fn deldatastore(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    change(ctx, s, p, Member::Datastore, false).await
}

pub async fn addvnet(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    change(ctx, s, p, Member::Network, true).await
}

pub async fn delvnet(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    change(ctx, s, p, Member::Network, false).await
}
