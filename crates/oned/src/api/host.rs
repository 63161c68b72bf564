//! `one.host.*` and `one.hostpool.info`, with OpenNebula's states (INIT 0, MONITORED 2,
//! DISABLED 4, OFFLINE 8). Hosts with the `dummy` information driver are monitored by the
//! leader (`crate::monitor`), which records a fixed capacity as a replicated write.

use sqlstore::objects::host::{self as rows, HostRow};
use sqlstore::objects::vdc::{self, Kind};
use sqlstore::{SqlStmt, SqlTxn, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::print_rows;
use super::method::{self as table, Auth, Method, Need};
use super::xml::{self, Xml};
use super::{code, fail, Ctx, Failure, MethodResult};
use crate::auth::Session;
use crate::method;
use wire::acl::{ADMIN, CLUSTER, HOST, USE};

/// OpenNebula's rights: `RequestManagerAllocate` (CREATE HOST, and ADMIN on its cluster),
/// `HostInfo` USE, `HostDelete`, `HostStatus`, `HostUpdateTemplate` and `HostRename` ADMIN.
pub const METHODS: &[Method] = &[
    method!(
        wire::method::HOST_ALLOCATE,
        Write,
        Auth::Deferred(HOST, wire::acl::CREATE),
        allocate
    ),
    method!(wire::method::HOST_INFO, Read, Auth::On(HOST, USE), info),
    method!(
        wire::method::HOST_DELETE,
        Write,
        Auth::On(HOST, ADMIN),
        delete
    ),
    method!(
        wire::method::HOST_STATUS,
        Write,
        Auth::On(HOST, ADMIN),
        status
    ),
    method!("one.host.update", Write, Auth::On(HOST, ADMIN), update),
    method!(
        "one.host.rename",
        Write,
        Auth::Deferred(HOST, ADMIN),
        rename
    ),
    // The hosts the caller may USE.
    method!(wire::method::HOSTPOOL_INFO, Read, Auth::Object, pool_info),
];

/// oned.conf's `VMS_THREAD` (OpenNebula's default): VMs one hardware thread may hold.
const VMS_THREAD: i64 = 1;

pub const INIT: i64 = wire::HostState::Init.as_i64();
pub const MONITORED: i64 = wire::HostState::Monitored.as_i64();
pub const DISABLED: i64 = wire::HostState::Disabled.as_i64();
pub const OFFLINE: i64 = wire::HostState::Offline.as_i64();

/// `one.host.info`'s HOST: its newest monitoring record in MONITORING (`load_monitoring`).
pub(crate) fn host_xml(h: &HostRow, out: &mut String) {
    host_xml_with(h, h.monitoring.as_ref(), out);
}

/// The HOST as `Host::to_xml` writes it without the monitoring loaded (the pool's stored
/// bodies, hook messages): an empty MONITORING.
pub(crate) fn host_xml_stored(h: &HostRow, out: &mut String) {
    host_xml_with(h, None, out);
}

fn host_xml_with(
    h: &HostRow,
    monitoring: Option<&sqlstore::objects::monitoring::HostRecord>,
    out: &mut String,
) {
    Xml::new(out).elem("HOST", |x| {
        x.num("ID", h.oid)
            .text("NAME", &h.name)
            .num("STATE", h.state)
            // `HostPool::update` sets the previous state to the state it writes.
            .num("PREV_STATE", h.state)
            .text("IM_MAD", &h.im_mad)
            .text("VM_MAD", &h.vm_mad)
            .num("CLUSTER_ID", h.cluster_id)
            .text("CLUSTER", &h.cluster)
            .elem("HOST_SHARE", |x| {
                x.num("MEM_USAGE", h.mem_usage)
                    .num("CPU_USAGE", h.cpu_usage)
                    .num("TOTAL_MEM", h.total_mem)
                    .num("TOTAL_CPU", h.total_cpu)
                    .num("MAX_MEM", h.max_mem)
                    .num("MAX_CPU", h.max_cpu)
                    .num("RUNNING_VMS", h.running_vms)
                    .num("VMS_THREAD", VMS_THREAD)
                    .elem("DATASTORES", |x| datastores_xml(x, h))
                    .raw(&super::vm_pci::devices_xml(h))
                    .elem("NUMA_NODES", |x| numa_nodes_xml(x, h));
            })
            .ids("VMS", &h.vms)
            .raw(&xml::template(&h.template, "TEMPLATE"));
        super::monitoring::last_host_xml(x, monitoring);
    });
}

/// HOST_SHARE/DATASTORES as `HostShareDatastore` prints it once read back from the database: its
/// template's four figures in name order, DISK_USAGE 0 (OpenNebula 7.0 adds no VM disk to it),
/// the others the dummy probe's once the host was monitored (the monitor sets its capacity then),
/// 0 before.
fn datastores_xml(x: &mut Xml<'_>, h: &HostRow) {
    let (max, free, used) = if h.total_mem > 0 {
        crate::monitor::DUMMY_DISK_MB
    } else {
        (0, 0, 0)
    };
    for (name, value) in [
        ("DISK_USAGE", 0),
        ("FREE_DISK", free),
        ("MAX_DISK", max),
        ("USED_DISK", used),
    ] {
        x.cdata(name, &value.to_string());
    }
}

/// HOST_SHARE/NUMA_NODES as `HostShareNUMA::to_xml` prints the topology OpenNebula 7.0's dummy
/// probe reports (`topology(2, 8, [2048, 1048576], 4, TOTALMEMORY)`), once the host was monitored
/// (none before): per node its cores (4 threads each, no VM pinned: every CPU `:-1`, FREE the
/// threads times VMS_THREAD), its two huge page sizes of 1024 pages, its half of the memory with
/// the distances, the vectors' values in name order and CDATA as a `Template` prints them.
fn numa_nodes_xml(x: &mut Xml<'_>, h: &HostRow) {
    use crate::monitor::numa::{CORES, HUGEPAGE_SIZES, NODES, PAGES, THREADS};
    if h.total_mem <= 0 {
        return;
    }
    for node in 0..NODES {
        x.elem("NODE", |x| {
            for core in 0..CORES {
                let id = core + node * CORES;
                let cpus: Vec<String> = (0..THREADS)
                    .map(|t| format!("{}:-1", id + t * CORES * NODES))
                    .collect();
                x.elem("CORE", |x| {
                    x.cdata("CPUS", &cpus.join(","));
                    x.cdata("DEDICATED", "NO");
                    x.cdata("FREE", &(THREADS * VMS_THREAD).to_string());
                    x.cdata("ID", &id.to_string());
                });
            }
            for size in HUGEPAGE_SIZES {
                x.elem("HUGEPAGE", |x| {
                    x.cdata("PAGES", &PAGES.to_string());
                    x.cdata("SIZE", &size.to_string());
                    x.cdata("USAGE", "0");
                });
            }
            // The probe lists this node first, then the others in order.
            let distance: Vec<String> = std::iter::once(node)
                .chain((0..NODES).filter(|&n| n != node))
                .map(|n| n.to_string())
                .collect();
            x.elem("MEMORY", |x| {
                x.cdata("DISTANCE", &distance.join(" "));
                x.cdata("TOTAL", &(crate::monitor::DUMMY_MEM / NODES).to_string());
                x.cdata("USAGE", "0");
            });
            x.cdata("NODE_ID", &node.to_string());
        });
    }
}

fn no_host(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting host [{id}]."))
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    let im_mad = p.string(1)?.to_string();
    let vm_mad = p.string(2)?.to_string();
    let mut cluster = p.int(3)? as i64;
    // `RequestManagerAllocate` looks the cluster up first, `HostPool::allocate` checks the rest.
    if cluster == -1 {
        cluster = 0;
    }
    if !ctx.read(move |c| rows::cluster_exists(c, cluster)).await? {
        return Err(fail(
            code::NO_EXISTS,
            format!("Error getting cluster [{cluster}]."),
        ));
    }
    // CREATE HOST and ADMIN on the cluster the host joins, in one request.
    table::require(
        ctx,
        s,
        &[
            Need::kind(HOST, wire::acl::CREATE),
            Need::on(CLUSTER, cluster, ADMIN),
        ],
    )
    .await?;
    super::validate::host_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    if im_mad.is_empty() {
        return Err(fail(code::INTERNAL, "IM_MAD_NAME cannot be empty."));
    }
    if vm_mad.is_empty() {
        return Err(fail(code::INTERNAL, "VMM_MAD_NAME cannot be empty."));
    }
    let insert = rows::insert(&name, INIT, &im_mad, &vm_mad, cluster);
    super::allocate_next(ctx, rows::TABLE, insert, "host", "HOST", &name).await
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let h = ctx
        .read(move |c| rows::load(c, id))
        .await?
        .ok_or_else(|| no_host(id))?;
    let body = xml::build_with(|out| host_xml(&h, out));
    Ok(Value::String(super::encrypted::answer(
        ctx,
        s,
        &p,
        rows::TABLE,
        body,
    )?))
}

/// `one.hostpool.info()`: the hosts the caller may USE (every one for group oneadmin),
/// printed one row at a time.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    let order = super::list_order::for_session(ctx, s).await?;
    let out = table::read_visible(ctx, s, HOST, move |c, may_use| {
        let mut out = String::from("<HOST_POOL>");
        let sql = format!("{} ORDER BY h.oid{}", rows::SELECT, order.sql());
        let each = |h: &HostRow, out: &mut String| {
            if may_use(h.oid) {
                host_xml_stored(h, out);
            }
        };
        print_rows(c, &sql, Vec::new(), rows::read, each, &mut out)?;
        out.push_str("</HOST_POOL>");
        Ok(out)
    })
    .await?;
    Ok(Value::String(out))
}

async fn change(ctx: &Ctx, id: i64, stmts: Vec<SqlStmt>, what: &str) -> MethodResult {
    ctx.commit(SqlTxn { stmts }, |r| match r.kind {
        TxnErrorKind::NotFound => no_host(id),
        _ => fail(code::ACTION, format!("Cannot {what} host. {}", r.message)),
    })
    .await?;
    Ok(Value::Int(id as i32))
}

/// `one.host.status(id, status)`: 0 enabled, 1 disabled, 2 offline.
pub async fn status(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let status = p.int(1)?;
    let state = match status {
        // `Host::enable`: a disabled host that was monitored is MONITORED again at once.
        0 => {
            let host = ctx
                .read(move |c| rows::load(c, id))
                .await?
                .ok_or_else(|| no_host(id))?;
            if host.state == DISABLED && host.total_cpu > 0 {
                MONITORED
            } else {
                INIT
            }
        }
        1 => DISABLED,
        2 => return offline(ctx, id).await,
        _ => return Err(fail(code::INTERNAL, "Wrong status code")),
    };
    change(
        ctx,
        id,
        rows::set_state(id, state, super::vm::now()),
        "change the status of",
    )
    .await
}

/// `Host::offline`: OFFLINE with no capacity, the monitoring's totals out of its template
/// (enabled again, the host is INIT until monitored).
async fn offline(ctx: &Ctx, id: i64) -> MethodResult {
    super::writes::write_computed(ctx, id, move || async move {
        let h = ctx
            .read(move |c| rows::load(c, id))
            .await?
            .ok_or_else(|| no_host(id))?;
        let mut t = template::Template::parse(&h.template)
            .map_err(|e| fail(code::INTERNAL, format!("Cannot read host template: {e}")))?;
        for name in [
            "TOTALCPU",
            "TOTALMEMORY",
            "FREECPU",
            "FREEMEMORY",
            "USEDCPU",
            "USEDMEMORY",
        ] {
            t.remove(name);
        }
        let mut stmts = vec![rows::reset_capacity(id, t.to_text(), h.template)];
        stmts.extend(rows::set_state(id, OFFLINE, super::vm::now()));
        Ok(stmts)
    })
    .await
}

pub async fn delete(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let host = ctx.read(move |c| rows::load(c, id)).await?;
    match host {
        None => return Err(no_host(id)),
        Some(h) if h.running_vms > 0 => {
            return Err(fail(
                code::ACTION,
                "Cannot delete host. Can not remove a host with running VMs",
            ))
        }
        Some(_) => {}
    }
    let mut stmts = vec![rows::delete_if_idle(id)];
    // `delete_object`'s `del_resource_rules`.
    stmts.push(sqlstore::objects::acl::drop_rules_on(wire::acl::HOST, id));
    stmts.extend(vdc::forget_resource(Kind::Host, ctx.config.zone_id, id));
    change(ctx, id, stmts, "delete").await
}

/// `one.host.update(id, template, type)`: replace (0) or merge (1) the host's template, then
/// `Host::post_update_template`: an IM_MAD or VM_MAD in it changes the host's driver, and both
/// are written back into the template. RESERVED_CPU and RESERVED_MEM change MAX_CPU and MAX_MEM.
pub async fn update(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let text = p.string(1)?.to_string();
    let merge = super::writes::update_type(&p)?;
    let text = &text;
    super::writes::write_computed(ctx, id, move || async move {
        let h = ctx
            .read(move |c| rows::load(c, id))
            .await?
            .ok_or_else(|| no_host(id))?;
        let new = super::writes::merged(&h.template, text, merge)?;
        // `merged` wrote a template that parses.
        let mut t = template::Template::parse(&new).unwrap_or_default();
        let driver = |name: &str, old: &str| {
            t.single(name)
                .filter(|v| !v.is_empty())
                .unwrap_or(old)
                .to_string()
        };
        let (im_mad, vm_mad) = (driver("IM_MAD", &h.im_mad), driver("VM_MAD", &h.vm_mad));
        for (name, value) in [("IM_MAD", &im_mad), ("VM_MAD", &vm_mad)] {
            t.remove(name);
            t.push(name, template::Value::Single(value.clone()));
        }
        super::encrypted::seal_in(ctx, rows::TABLE, &mut t);
        Ok(vec![rows::set_template_and_drivers(
            id,
            t.to_text(),
            h.template,
            &im_mad,
            &vm_mad,
        )])
    })
    .await
}

pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    super::writes::rename_unique_with(
        ctx,
        s,
        &p,
        rows::TABLE,
        "host",
        no_host,
        (HOST, ADMIN),
        |id, name| vec![rows::rename_in_history(id, name)],
    )
    .await
}
