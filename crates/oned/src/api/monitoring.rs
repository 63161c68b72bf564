//! `one.vm.monitoring`, `one.vmpool.monitoring`, `one.host.monitoring`,
//! `one.hostpool.monitoring` (the records `crate::monitoring` takes) and `one.vmpool.infoset`.
//! The records are printed as OpenNebula stores their bodies (`monitoring_data.xsd`).

use sqlstore::objects::monitoring::{self as rows, HostRecord, VmRecord};
use sqlstore::sql::params_from_iter;
use xmlrpc::{Params, Value};

use super::method::{self as table, Auth, Method};
use super::perms::{self, caller, PoolFilter, Where, USE};
use super::vm::VMS;
use super::xml::Xml;
use super::{code, fail, Ctx, MethodResult};
use crate::auth::Session;
use crate::method;
use crate::monitor::numa::{HUGEPAGE_SIZES, NODES, PAGES};
use wire::acl::HOST;

pub const METHODS: &[Method] = &[
    method!("one.vm.monitoring", Read, Auth::Object, vm_monitoring),
    method!(
        "one.vmpool.monitoring",
        Read,
        Auth::Object,
        vm_pool_monitoring
    ),
    method!(
        "one.host.monitoring",
        Read,
        Auth::On(HOST, USE),
        host_monitoring
    ),
    method!(
        "one.hostpool.monitoring",
        Read,
        Auth::Object,
        host_pool_monitoring
    ),
    method!("one.vmpool.infoset", Read, Auth::Object, info_set),
];

/// A VM's record, its attributes in the order OpenNebula's template prints them (by name).
pub fn vm_record_xml(x: &mut Xml<'_>, r: &VmRecord) {
    x.elem("MONITORING", |x| {
        x.num("CPU", r.cpu)
            .num("DISKRDBYTES", r.diskrdbytes)
            .num("DISKRDIOPS", r.diskrdiops)
            .num("DISKWRBYTES", r.diskwrbytes)
            .num("DISKWRIOPS", r.diskwriops)
            .num("ID", r.vmid)
            .num("MEMORY", r.memory)
            .num("NETRX", r.netrx)
            .num("NETTX", r.nettx)
            .num("TIMESTAMP", r.timestamp);
    });
}

/// A host's record, as `HostMonitoringTemplate::to_xml` prints it.
pub fn host_record_xml(x: &mut Xml<'_>, r: &HostRecord) {
    x.elem("MONITORING", |x| {
        x.num("TIMESTAMP", r.timestamp)
            .num("ID", r.hid)
            .elem("CAPACITY", |x| {
                x.num("FREE_CPU", r.free_cpu)
                    .num("FREE_MEMORY", r.free_memory)
                    .num("USED_CPU", r.used_cpu)
                    .num("USED_MEMORY", r.used_memory);
            })
            .elem("SYSTEM", |x| {
                x.num("NETRX", r.netrx).num("NETTX", r.nettx);
            });
        // The dummy probe's topology: two NUMA nodes sharing the memory, each with 1024 free
        // pages of 2 MiB and of 1 GiB.
        for node in 0..NODES {
            x.elem("NUMA_NODE", |x| {
                for size in HUGEPAGE_SIZES {
                    x.elem("HUGEPAGE", |x| {
                        x.num("FREE", PAGES).num("SIZE", size);
                    });
                }
                x.elem("MEMORY", |x| {
                    x.num("FREE", r.free_memory / NODES)
                        .num("USED", r.used_memory / NODES);
                })
                .num("NODE_ID", node);
            });
        }
    });
}

/// The body's `MONITORING` of a VM: its newest record, or an empty element.
pub fn last_vm_xml(x: &mut Xml<'_>, r: Option<&VmRecord>) {
    match r {
        Some(r) => vm_record_xml(x, r),
        None => {
            x.empty("MONITORING");
        }
    }
}

/// The body's `MONITORING` of a host: its newest record, or an empty element.
pub fn last_host_xml(x: &mut Xml<'_>, r: Option<&HostRecord>) {
    match r {
        Some(r) => host_record_xml(x, r),
        None => {
            x.empty("MONITORING");
        }
    }
}

/// `one.vm.monitoring(id)`: every record of a VM the caller may USE, oldest first, locked
/// or not (`VirtualMachineMonitoring` authorizes without the lock, as the info calls do).
pub async fn vm_monitoring(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    VMS.authorized(ctx, s, id, USE | perms::NO_LOCK).await?;
    let records = ctx.read(move |c| rows::vm_records(c, id)).await?;
    let mut out = String::new();
    Xml::new(&mut out).elem("MONITORING_DATA", |x| {
        for r in &records {
            vm_record_xml(x, r);
        }
    });
    Ok(Value::String(out))
}

/// Which records of the window `seconds` selects, over `m` with its time column `col`: 0 the
/// newest of each object, -1 all, else those of the last `seconds` (none for another negative,
/// as OpenNebula's `time(nullptr) - seconds` selects).
fn window(seconds: i64, col: &str, id: &str, table: &str, w: &mut Where) {
    match seconds {
        0 => w.and(
            format!("m.{col} = (SELECT MAX(n.{col}) FROM {table} n WHERE n.{id} = m.{id})"),
            [],
        ),
        -1 => {}
        s => w.and(format!("m.{col} > ?"), [super::vm::now().saturating_sub(s)]),
    }
}

fn seconds_param(p: &Params<'_>, i: usize) -> Result<i64, super::Failure> {
    match p.0.get(i) {
        Some(_) => Ok(p.int(i)? as i64),
        None => Ok(-1),
    }
}

/// `one.vmpool.monitoring(filter, seconds)`: the records of the VMs the filter selects and the
/// caller may USE.
pub async fn vm_pool_monitoring(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let flag = p.int(0)? as i64;
    let seconds = seconds_param(&p, 1)?;
    if flag < -4 {
        return Err(fail(code::XML_RPC_API, "Incorrect filter_flag"));
    }
    let c = caller(ctx, s).await?;
    let mut w = Where::default();
    let all = PoolFilter {
        flag,
        start: -1,
        end: -1,
    };
    all.sql(&c, perms::VM, "v", &mut w);
    window(seconds, "last_poll", "vmid", "vm_monitoring", &mut w);
    let order = if seconds == 0 {
        "v.oid"
    } else {
        "m.vmid, m.last_poll"
    };
    let sql = format!(
        "SELECT {} FROM vm_monitoring m JOIN vm_pool v ON v.oid = m.vmid{} ORDER BY {order}",
        rows::VM_COLUMNS,
        w.clause()
    );
    let args = w.args;
    let out = ctx
        .read(move |c| {
            let mut out = String::new();
            let mut x = Xml::new(&mut out);
            x.open("MONITORING_DATA");
            let mut st = c.prepare(&sql)?;
            let mut it = st.query(params_from_iter(args))?;
            while let Some(r) = it.next()? {
                vm_record_xml(&mut x, &rows::read_vm(r)?);
            }
            x.close("MONITORING_DATA");
            Ok(out)
        })
        .await?;
    Ok(Value::String(out))
}

/// `one.host.monitoring(id)`: every record of the host, oldest first.
pub async fn host_monitoring(ctx: &Ctx, _: &Session, p: Params<'_>) -> MethodResult {
    let id = p.int(0)? as i64;
    // Group oneadmin passes the right check whether or not the host exists.
    super::must_exist(ctx, sqlstore::objects::Table::Host, id).await?;
    let records = ctx.read(move |c| rows::host_records(c, id)).await?;
    let mut out = String::new();
    Xml::new(&mut out).elem("MONITORING_DATA", |x| {
        for r in &records {
            host_record_xml(x, r);
        }
    });
    Ok(Value::String(out))
}

/// `one.hostpool.monitoring(seconds)`: the records of the hosts the caller may USE.
pub async fn host_pool_monitoring(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let seconds = seconds_param(&p, 0)?;
    let mut w = Where::default();
    window(seconds, "last_mon_time", "hid", "host_monitoring", &mut w);
    let order = if seconds == 0 {
        "m.hid"
    } else {
        "m.hid, m.last_mon_time"
    };
    let sql = format!(
        "SELECT {} FROM host_monitoring m JOIN host_pool h ON h.oid = m.hid{} ORDER BY {order}",
        rows::HOST_COLUMNS,
        w.clause()
    );
    let args = w.args;
    let out = table::read_visible(ctx, s, HOST, move |c, may_use| {
        let mut out = String::new();
        let mut x = Xml::new(&mut out);
        x.open("MONITORING_DATA");
        let mut st = c.prepare(&sql)?;
        let mut it = st.query(params_from_iter(args))?;
        while let Some(r) = it.next()? {
            let rec = rows::read_host(r)?;
            if may_use(rec.hid) {
                host_record_xml(&mut x, &rec);
            }
        }
        x.close("MONITORING_DATA");
        Ok(out)
    })
    .await?;
    Ok(Value::String(out))
}

/// The most ids `one.vmpool.infoset` takes in one call.
const INFOSET_MAX_IDS: usize = 10_000;

/// The distinct VM ids of a comma-separated list, as `one_util::split_unique` reads them:
/// tokens that are not numbers are left out.
fn id_set(list: &str) -> std::collections::BTreeSet<u32> {
    list.split(',')
        .filter_map(|t| t.trim().parse::<u32>().ok())
        .collect()
}

/// `one.vmpool.infoset(ids, extended)`: the VMs of the list the caller may USE, short as
/// `one.vmpool.info` prints them, or as `one.vmpool.infoextended` with `extended`.
pub async fn info_set(ctx: &Ctx, s: &Session, p: Params<'_>) -> MethodResult {
    let ids = id_set(p.string(0)?);
    let extended = p.opt_bool(1)?.unwrap_or(false);
    if ids.is_empty() {
        return Ok(Value::String("<VM_POOL></VM_POOL>".into()));
    }
    if ids.len() > INFOSET_MAX_IDS {
        return Err(fail(
            code::XML_RPC_API,
            format!("Too many VM ids: at most {INFOSET_MAX_IDS} in one call"),
        ));
    }
    let list = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    super::vm_body::info_set(ctx, s, &list, extended).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_list_is_read_as_split_unique_reads_it() {
        let ids: Vec<u32> = id_set("3, 1,3,,x,2").into_iter().collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(id_set("").is_empty());
    }

    #[test]
    fn a_host_record_prints_as_host_monitoring_template_does() {
        let r = HostRecord {
            hid: 2,
            timestamp: 100,
            free_cpu: 700,
            used_cpu: 100,
            free_memory: 3,
            used_memory: 4,
            netrx: 5,
            nettx: 6,
        };
        let mut out = String::new();
        host_record_xml(&mut Xml::new(&mut out), &r);
        let node = |id: i64| {
            format!(
                "<NUMA_NODE><HUGEPAGE><FREE>1024</FREE><SIZE>2048</SIZE></HUGEPAGE>\
                 <HUGEPAGE><FREE>1024</FREE><SIZE>1048576</SIZE></HUGEPAGE>\
                 <MEMORY><FREE>1</FREE><USED>2</USED></MEMORY><NODE_ID>{id}</NODE_ID></NUMA_NODE>"
            )
        };
        assert_eq!(
            out,
            format!("<MONITORING><TIMESTAMP>100</TIMESTAMP><ID>2</ID><CAPACITY><FREE_CPU>700</FREE_CPU>\
             <FREE_MEMORY>3</FREE_MEMORY><USED_CPU>100</USED_CPU><USED_MEMORY>4</USED_MEMORY>\
             </CAPACITY><SYSTEM><NETRX>5</NETRX><NETTX>6</NETTX></SYSTEM>{}{}</MONITORING>",
                node(0),
                node(1)
            )
        );
    }

    #[test]
    fn a_vm_record_prints_its_attributes_by_name() {
        let r = VmRecord {
            vmid: 4,
            timestamp: 100,
            cpu: 50,
            memory: 1024,
            netrx: 1,
            nettx: 2,
            diskrdbytes: 3,
            diskwrbytes: 4,
            diskrdiops: 5,
            diskwriops: 6,
        };
        let mut out = String::new();
        vm_record_xml(&mut Xml::new(&mut out), &r);
        assert_eq!(
            out,
            "<MONITORING><CPU>50</CPU><DISKRDBYTES>3</DISKRDBYTES><DISKRDIOPS>5</DISKRDIOPS>\
             <DISKWRBYTES>4</DISKWRBYTES><DISKWRIOPS>6</DISKWRIOPS><ID>4</ID>\
             <MEMORY>1024</MEMORY><NETRX>1</NETRX><NETTX>2</NETTX><TIMESTAMP>100</TIMESTAMP>\
             </MONITORING>"
        );
    }
}
