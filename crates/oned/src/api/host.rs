//! `one.host.*` and `one.hostpool.info`, with OpenNebula's states (INIT 0, MONITORED 2,
//! DISABLED 4, OFFLINE 8). Hosts with the `dummy` information driver are monitored by the
//! leader (`crate::monitor`), which records a fixed capacity as a replicated write.

use sqlstore::{SqlStmt, SqlTxn, SqlValue, TxnErrorKind};
use xmlrpc::{Params, Value};

use super::family::print_rows;
use super::xml::esc;
use super::{code, fail, require_admin, Ctx, Failure, MethodResult, TxnFailure};
use crate::auth::Session;

pub const INIT: i64 = wire::HostState::Init.as_i64();
pub const MONITORED: i64 = wire::HostState::Monitored.as_i64();
pub const DISABLED: i64 = wire::HostState::Disabled.as_i64();
pub const OFFLINE: i64 = wire::HostState::Offline.as_i64();

struct HostRow {
    oid: i64,
    name: String,
    state: i64,
    prev_state: i64,
    im_mad: String,
    vm_mad: String,
    cluster_id: i64,
    cluster: String,
    total_cpu: i64,
    total_mem: i64,
    cpu_usage: i64,
    mem_usage: i64,
    running_vms: i64,
    template: String,
}

fn host_xml(h: &HostRow) -> String {
    let template = template::Template::parse(&h.template)
        .map(|t| t.to_xml())
        .unwrap_or_else(|_| "<TEMPLATE></TEMPLATE>".to_string());
    format!(
        "<HOST><ID>{}</ID><NAME>{}</NAME><STATE>{}</STATE><PREV_STATE>{}</PREV_STATE><IM_MAD>{}</IM_MAD><VM_MAD>{}</VM_MAD><CLUSTER_ID>{}</CLUSTER_ID><CLUSTER>{}</CLUSTER><HOST_SHARE><MEM_USAGE>{}</MEM_USAGE><CPU_USAGE>{}</CPU_USAGE><TOTAL_MEM>{}</TOTAL_MEM><TOTAL_CPU>{}</TOTAL_CPU><MAX_MEM>{}</MAX_MEM><MAX_CPU>{}</MAX_CPU><RUNNING_VMS>{}</RUNNING_VMS><VMS_THREAD>1</VMS_THREAD><DATASTORES></DATASTORES><PCI_DEVICES></PCI_DEVICES><NUMA_NODES></NUMA_NODES></HOST_SHARE><VMS></VMS>{template}<MONITORING></MONITORING></HOST>",
        h.oid,
        esc(&h.name),
        h.state,
        h.prev_state,
        esc(&h.im_mad),
        esc(&h.vm_mad),
        h.cluster_id,
        esc(&h.cluster),
        h.mem_usage,
        h.cpu_usage,
        h.total_mem,
        h.total_cpu,
        h.total_mem,
        h.total_cpu,
        h.running_vms,
    )
}

const SELECT_HOSTS: &str =
    "SELECT h.oid, h.name, h.state, h.prev_state, h.im_mad, h.vm_mad, h.cluster_id,
            COALESCE(c.name, ''), h.total_cpu, h.total_mem, h.cpu_usage, h.mem_usage,
            h.running_vms, h.template
     FROM host_pool h LEFT JOIN cluster_pool c ON c.oid = h.cluster_id";

fn host_row(
    _: &sqlstore::rusqlite::Connection,
    r: &sqlstore::rusqlite::Row<'_>,
) -> Result<HostRow, sqlstore::rusqlite::Error> {
    Ok(HostRow {
        oid: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        prev_state: r.get(3)?,
        im_mad: r.get(4)?,
        vm_mad: r.get(5)?,
        cluster_id: r.get(6)?,
        cluster: r.get(7)?,
        total_cpu: r.get(8)?,
        total_mem: r.get(9)?,
        cpu_usage: r.get(10)?,
        mem_usage: r.get(11)?,
        running_vms: r.get(12)?,
        template: r.get(13)?,
    })
}

fn load_hosts(
    c: &sqlstore::rusqlite::Connection,
    only: Option<i64>,
) -> Result<Vec<HostRow>, sqlstore::rusqlite::Error> {
    let mut st = c.prepare_cached(&format!(
        "{SELECT_HOSTS} WHERE ?1 IS NULL OR h.oid = ?1 ORDER BY h.oid"
    ))?;
    let rows = st.query_map([only], |r| host_row(c, r))?.collect();
    rows
}

fn no_host(id: i64) -> Failure {
    fail(code::NO_EXISTS, format!("Error getting host [{id}]."))
}

pub async fn allocate(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let name = p.string(0)?.to_string();
    let im_mad = p.string(1)?.to_string();
    let vm_mad = p.string(2)?.to_string();
    let mut cluster = p.int(3)? as i64;
    require_admin(s, "CREATE HOST")?;
    super::validate::host_name(&name).map_err(|e| fail(code::INTERNAL, e))?;
    if im_mad.is_empty() || vm_mad.is_empty() {
        return Err(fail(
            code::INTERNAL,
            "Error allocating a new host. IM_MAD and VM_MAD are required",
        ));
    }
    if cluster == -1 {
        cluster = 0;
    }
    let exists = ctx
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM cluster_pool WHERE oid = ?1",
                [cluster],
                |r| r.get::<_, i64>(0),
            )
        })
        .await?;
    if exists == 0 {
        return Err(fail(
            code::NO_EXISTS,
            format!("Error getting cluster [{cluster}]."),
        ));
    }
    let insert = SqlStmt::new(
        &format!(
            "INSERT INTO host_pool (oid, name, state, prev_state, im_mad, vm_mad, cluster_id)
             SELECT last_oid + 1, ?1, {INIT}, {INIT}, ?2, ?3, ?4 FROM pool_control
             WHERE tablename = 'host_pool' RETURNING oid"
        ),
        vec![
            SqlValue::Text(name.clone()),
            SqlValue::Text(im_mad),
            SqlValue::Text(vm_mad),
            SqlValue::Int(cluster),
        ],
    );
    super::allocate_next(ctx, "host_pool", insert, "host", "HOST", &name).await
}

pub async fn info(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    require_admin(s, &format!("USE HOST [{id}]"))?;
    let mut hosts = ctx.read(move |c| load_hosts(c, Some(id))).await?;
    hosts
        .pop()
        .map(|h| Value::String(host_xml(&h)))
        .ok_or_else(|| no_host(id))
}

/// `one.hostpool.info()`: every host for an administrator (printed one row at a time), none
/// for anyone else.
pub async fn pool_info(ctx: &Ctx, s: &Session, _: Params<'_>) -> MethodResult {
    if !s.is_admin() {
        return Ok(Value::String("<HOST_POOL></HOST_POOL>".to_string()));
    }
    let out = ctx
        .read(|c| {
            let mut out = String::from("<HOST_POOL>");
            let sql = format!("{SELECT_HOSTS} ORDER BY h.oid");
            print_rows(
                c,
                &sql,
                Vec::new(),
                host_row,
                |h, out| out.push_str(&host_xml(h)),
                &mut out,
            )?;
            out.push_str("</HOST_POOL>");
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

async fn change(ctx: &Ctx, id: i64, stmts: Vec<SqlStmt>, what: &str) -> MethodResult {
    match ctx.write(SqlTxn { stmts }).await {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(no_host(id)),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::ACTION, format!("Cannot {what} host. {m}"))),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}

/// `one.host.status(id, status)`: 0 enabled, 1 disabled, 2 offline.
pub async fn status(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let status = p.int(1)?;
    require_admin(s, &format!("MANAGE HOST [{id}]"))?;
    let state = match status {
        0 => INIT,
        1 => DISABLED,
        2 => OFFLINE,
        other => {
            return Err(fail(
                code::XML_RPC_API,
                format!("Wrong status code {other}"),
            ))
        }
    };
    change(
        ctx,
        id,
        vec![SqlStmt::new(
            "UPDATE host_pool SET prev_state = state, state = ?2 WHERE oid = ?1",
            vec![SqlValue::Int(id), SqlValue::Int(state)],
        )
        .must_match()],
        "change the status of",
    )
    .await
}

pub async fn delete(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    require_admin(s, &format!("MANAGE HOST [{id}]"))?;
    let hosts = ctx.read(move |c| load_hosts(c, Some(id))).await?;
    match hosts.first() {
        None => return Err(no_host(id)),
        Some(h) if h.running_vms > 0 => {
            return Err(fail(
                code::ACTION,
                "Cannot delete host. Can not remove a host with running VMs",
            ))
        }
        Some(_) => {}
    }
    change(
        ctx,
        id,
        vec![SqlStmt::new(
            "DELETE FROM host_pool WHERE oid = ?1 AND running_vms = 0",
            vec![SqlValue::Int(id)],
        )
        .must_match()],
        "delete",
    )
    .await
}

/// `one.host.update(id, template, type)`: replace (0) or merge (1) the host's template.
pub async fn update(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    require_admin(s, &format!("MANAGE HOST [{id}]"))?;
    super::update_template(ctx, &p, "host_pool", "template", no_host).await
}

pub async fn rename(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    let name = p.string(1)?.to_string();
    require_admin(s, &format!("MANAGE HOST [{id}]"))?;
    // OpenNebula renames with `set_name`, which checks `name_is_valid` only.
    super::validate::object_name(&name).map_err(|e| fail(code::ACTION, e))?;
    match ctx
        .write(SqlTxn {
            stmts: vec![SqlStmt::new(
                "UPDATE host_pool SET name = ?2 WHERE oid = ?1",
                vec![SqlValue::Int(id), SqlValue::Text(name.clone())],
            )
            .must_match()],
        })
        .await
    {
        Ok(_) => Ok(Value::Int(id as i32)),
        Err(TxnFailure::Txn(TxnErrorKind::NotFound, _)) => Err(no_host(id)),
        Err(TxnFailure::Txn(TxnErrorKind::Constraint, _)) => Err(fail(
            code::ACTION,
            format!("Cannot rename host. NAME is already taken by HOST {name}."),
        )),
        Err(TxnFailure::Txn(_, m)) => Err(fail(code::INTERNAL, m)),
        Err(TxnFailure::Route(f)) => Err(f),
    }
}
