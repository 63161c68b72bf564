//! Hosts (`host_pool`): not owned objects (only administrators see them), with the capacity
//! the monitor records and the usage recounted from their VMs.

use crate::sql::{Conn, Row};

use wire::state::{HostState, ImageState, VnetState};

use super::insert_next;
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "host_pool";

#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    pub oid: i64,
    pub name: String,
    pub state: i64,
    pub prev_state: i64,
    pub im_mad: String,
    pub vm_mad: String,
    pub cluster_id: i64,
    pub cluster: String,
    /// CPU in hundredths of a core, memory in KB, as OpenNebula's HOST_SHARE.
    pub total_cpu: i64,
    pub total_mem: i64,
    pub cpu_usage: i64,
    pub mem_usage: i64,
    pub running_vms: i64,
    /// TOTAL_CPU and TOTAL_MEM less what RESERVED_CPU and RESERVED_MEM keep back ([`room`]).
    pub max_cpu: i64,
    pub max_mem: i64,
    pub template: String,
    /// Its newest monitoring record (the body's MONITORING).
    pub monitoring: Option<super::monitoring::HostRecord>,
    /// Its PCI devices VMs hold: (SHORT_ADDRESS, VM id) ([`super::pci`]).
    pub pci_taken: Vec<(String, i64)>,
    /// PCI_FILTER and PCI_SHORT_ADDRESS, the host's or its cluster's (`Host::get_hostcluster_attr`):
    /// which PCI devices it offers.
    pub pci_filter: String,
    pub pci_short_address: String,
    /// The VMs that hold its capacity (OpenNebula's `vm_collection`, the body's VMS), by id.
    pub vms: Vec<i64>,
}

pub const SELECT: &str =
    "SELECT h.oid, h.name, h.state, h.prev_state, h.im_mad, h.vm_mad, h.cluster_id,
            COALESCE(c.name, ''), h.total_cpu, h.total_mem, h.cpu_usage, h.mem_usage,
            h.running_vms, h.template, COALESCE(c.template, '')
     FROM host_pool h LEFT JOIN cluster_pool c ON c.oid = h.cluster_id";

pub fn read(c: &Conn, r: &Row) -> crate::sql::Result<HostRow> {
    let oid: i64 = r.get(0)?;
    let template: String = r.get(13)?;
    let (total_cpu, total_mem) = (r.get(8)?, r.get(9)?);
    let attrs = HostAndCluster::parse(&template, &r.get::<String>(14)?);
    let (max_cpu, max_mem) = attrs.room(total_cpu, total_mem);
    Ok(HostRow {
        oid: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        prev_state: r.get(3)?,
        im_mad: r.get(4)?,
        vm_mad: r.get(5)?,
        cluster_id: r.get(6)?,
        cluster: r.get(7)?,
        total_cpu,
        total_mem,
        cpu_usage: r.get(10)?,
        mem_usage: r.get(11)?,
        running_vms: r.get(12)?,
        max_cpu,
        max_mem,
        template,
        monitoring: super::monitoring::last_host_record(c, oid)?,
        pci_taken: super::pci::held_on(c, oid)?,
        pci_filter: attrs.get("PCI_FILTER"),
        pci_short_address: attrs.get("PCI_SHORT_ADDRESS"),
        vms: super::placement::vms_on(c, oid)?,
    })
}

/// Host `oid`, if it exists.
pub fn load(c: &Conn, oid: i64) -> crate::sql::Result<Option<HostRow>> {
    use crate::sql::Optional;
    c.prepare_cached(&format!("{SELECT} WHERE h.oid = ?1"))?
        .query_row([oid], |r| read(c, r))
        .optional()
}

/// Every MONITORED host's row, by id: what the scheduler's requirement and rank expressions
/// are evaluated against.
pub fn monitored(c: &Conn) -> crate::sql::Result<Vec<HostRow>> {
    let mut st = c.prepare_cached(&format!("{SELECT} WHERE h.state = ?1 ORDER BY h.oid"))?;
    let rows = st.query_map([HostState::Monitored.as_i64()], |r| read(c, r))?;
    rows.collect()
}

/// Whether cluster `oid` exists.
pub fn cluster_exists(c: &Conn, oid: i64) -> crate::sql::Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM cluster_pool WHERE oid = ?1)")?
        .query_row([oid], |r| r.get(0))
}

/// A new host in state `state` (INIT), in cluster `cluster`, its template as OpenNebula's `Host`
/// starts it: RESERVED_CPU and RESERVED_MEM empty (the cluster's apply), IM_MAD and VM_MAD.
pub fn insert(name: &str, state: i64, im_mad: &str, vm_mad: &str, cluster: i64) -> SqlStmt {
    let mut template = template::Template::default();
    for (attr, value) in [
        ("RESERVED_CPU", ""),
        ("RESERVED_MEM", ""),
        ("IM_MAD", im_mad),
        ("VM_MAD", vm_mad),
    ] {
        template.push(attr, template::Value::Single(value.to_string()));
    }
    insert_next(
        TABLE,
        "name, state, prev_state, im_mad, vm_mad, cluster_id, template",
        "?1, ?2, ?2, ?3, ?4, ?5, ?6",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(state),
            SqlValue::Text(im_mad.to_string()),
            SqlValue::Text(vm_mad.to_string()),
            SqlValue::Int(cluster),
            SqlValue::Text(template.to_text()),
        ],
    )
}

/// Host `oid`'s template becomes `template` and its drivers `im_mad` and `vm_mad`, if its
/// template is still `old` (an update computed from it).
pub fn set_template_and_drivers(
    oid: i64,
    template: String,
    old: String,
    im_mad: &str,
    vm_mad: &str,
) -> SqlStmt {
    SqlStmt::new(
        "UPDATE host_pool SET template = ?2, im_mad = ?4, vm_mad = ?5 WHERE oid = ?1 AND template = ?3",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(template),
            SqlValue::Text(old),
            SqlValue::Text(im_mad.to_string()),
            SqlValue::Text(vm_mad.to_string()),
        ],
    )
    .must_match()
}

/// `Host::offline`'s `reset_capacity`: no capacity, and `template` (the monitoring's totals
/// taken out), guarded on the template read (`old`).
pub fn reset_capacity(oid: i64, template: String, old: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE host_pool SET total_cpu = 0, total_mem = 0, template = ?2
         WHERE oid = ?1 AND template = ?3",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(template),
            SqlValue::Text(old),
        ],
    )
    .must_match()
}

/// (MAX_CPU, MAX_MEM): the totals less what RESERVED_CPU and RESERVED_MEM keep back, each taken
/// from the host's template, or its cluster's when the host's is empty or missing
/// (`Host::reserved_capacity`).
pub fn room(total_cpu: i64, total_mem: i64, host: &str, cluster: &str) -> (i64, i64) {
    HostAndCluster::parse(host, cluster).room(total_cpu, total_mem)
}

/// A host's template with its cluster's, for the attributes a host takes from its cluster when
/// it has none of its own.
struct HostAndCluster {
    host: template::Template,
    cluster: template::Template,
}

impl HostAndCluster {
    fn parse(host: &str, cluster: &str) -> HostAndCluster {
        HostAndCluster {
            host: template::Template::parse(host).unwrap_or_default(),
            cluster: template::Template::parse(cluster).unwrap_or_default(),
        }
    }

    /// `Host::get_hostcluster_attr`: the host's `name`, or the cluster's when the host's is
    /// empty or missing.
    fn get(&self, name: &str) -> String {
        self.host
            .single(name)
            .filter(|v| !v.is_empty())
            .or_else(|| self.cluster.single(name))
            .unwrap_or("")
            .to_string()
    }

    fn room(&self, total_cpu: i64, total_mem: i64) -> (i64, i64) {
        (
            reserved_max(total_cpu, &self.get("RESERVED_CPU")),
            reserved_max(total_mem, &self.get("RESERVED_MEM")),
        )
    }
}

/// `HostShare::set_reserved_metric`: `total` less `reserved`, an amount, or a percentage of
/// `total` when it ends in `%` ("10%"), blanks around it ignored; an empty or unreadable one
/// reserves nothing.
pub fn reserved_max(total: i64, reserved: &str) -> i64 {
    let reserved = reserved.trim();
    let (number, percent) = match reserved.strip_suffix('%') {
        Some(number) => (number, true),
        None => (reserved, false),
    };
    // `istringstream >> long long`, the whole string read: an optional sign and digits.
    let Ok(value) = number.parse::<i64>() else {
        return total;
    };
    if percent {
        (total as f64 * (1.0 - value as f64 / 100.0)) as i64
    } else {
        // A template is anyone's with ADMIN on the host: no value may overflow the read.
        total.saturating_sub(value)
    }
}

/// A new state, the old one kept as PREV_STATE.
pub fn set_state(oid: i64, state: i64, now: i64) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "UPDATE host_pool SET prev_state = state, state = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Int(state)],
    )
    .must_match()];
    let name = HostState::from_i64(state).map_or("UNKNOWN", HostState::name);
    stmts.extend(events(
        "HOST",
        "host_pool",
        name,
        "o.oid = ?6",
        vec![SqlValue::Int(oid)],
        now,
    ));
    stmts
}

/// The state hooks' executions objects of `table` that `which` chooses start by moving to
/// state `state` (a resource without LCM states).
fn events(
    resource: &str,
    table: &str,
    state: &str,
    which: &str,
    params: Vec<SqlValue>,
    now: i64,
) -> Vec<SqlStmt> {
    super::hook::state_events(super::hook::StateChange {
        resource,
        table,
        state,
        lcm_state: "",
        which,
        params,
        now,
        object: "",
    })
}

/// Deletes host `oid` only while no VM runs on it.
pub fn delete_if_idle(oid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM host_pool WHERE oid = ?1 AND running_vms = 0",
        vec![SqlValue::Int(oid)],
    )
    .must_match()
}

/// A MONITORED host's free capacity and load, as the scheduler weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRoom {
    pub oid: i64,
    /// Hundredths of a core.
    pub free_cpu: i64,
    /// KB.
    pub free_mem: i64,
    pub running_vms: i64,
    pub cluster_id: i64,
    /// MAX_CPU and MAX_MEM, which a deploy's usage must stay within.
    pub max: (i64, i64),
}

/// Every MONITORED host with its room, least loaded first.
pub fn with_room(c: &Conn) -> crate::sql::Result<Vec<HostRoom>> {
    let mut st = c.prepare_cached(
        "SELECT h.oid, h.total_cpu, h.cpu_usage, h.total_mem, h.mem_usage, h.running_vms,
                h.cluster_id, h.template, COALESCE(c.template, '')
         FROM host_pool h LEFT JOIN cluster_pool c ON c.oid = h.cluster_id
         WHERE h.state = ?1 ORDER BY h.running_vms, h.oid",
    )?;
    st.query_map([HostState::Monitored.as_i64()], |r| {
        let (max_cpu, max_mem) = room(
            r.get(1)?,
            r.get(3)?,
            &r.get::<String>(7)?,
            &r.get::<String>(8)?,
        );
        Ok(HostRoom {
            oid: r.get(0)?,
            free_cpu: max_cpu.saturating_sub(r.get(2)?),
            free_mem: max_mem.saturating_sub(r.get(4)?),
            running_vms: r.get(5)?,
            cluster_id: r.get(6)?,
            max: (max_cpu, max_mem),
        })
    })?
    .collect()
}

/// What the `dummy` drivers have pending: hosts to monitor, images, networks and marketplace
/// apps to finish.
pub fn dummy_pending(c: &Conn, zone: i64) -> crate::sql::Result<i64> {
    c.prepare_cached(
        "SELECT (SELECT count(*) FROM host_pool WHERE state = ?1 AND im_mad = 'dummy')
              + (SELECT count(*) FROM image_pool WHERE state IN (?2, ?5, ?6))
              + (SELECT count(*) FROM vnet_pool WHERE state = ?3)
              + (SELECT count(*) FROM marketplaceapp_pool WHERE state = ?4 AND zone_id = ?7)",
    )?
    .query_row(
        [
            HostState::Init.as_i64(),
            ImageState::Locked.as_i64(),
            VnetState::LockCreate.as_i64(),
            super::market::app_state::LOCKED,
            // A locked image a VM took meanwhile (a persistent copy's) is still pending.
            ImageState::LockedUsed.as_i64(),
            ImageState::LockedUsedPers.as_i64(),
            // Another zone's apps are that zone's driver's.
            zone,
        ],
        |r| r.get(0),
    )
}

/// A `dummy` host waiting for its first monitoring: its id, name and template as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmonitored {
    pub oid: i64,
    pub name: String,
    pub template: String,
}

/// The `dummy` hosts still in INIT, at most `limit` of them, by id.
pub fn unmonitored(c: &Conn, limit: i64) -> crate::sql::Result<Vec<Unmonitored>> {
    let mut st = c.prepare_cached(
        "SELECT oid, name, template FROM host_pool WHERE state = ?1 AND im_mad = 'dummy'
         ORDER BY oid LIMIT ?2",
    )?;
    st.query_map([HostState::Init.as_i64(), limit], |r| {
        Ok(Unmonitored {
            oid: r.get(0)?,
            name: r.get(1)?,
            template: r.get(2)?,
        })
    })?
    .collect()
}

/// The dummy drivers' results: new images and networks become READY; host `host` becomes
/// MONITORED with the probe's capacity and `template` (the probe merged into what was read),
/// guarded on the template read so a concurrent `one.host.update` is never overwritten (the
/// host is then monitored next period). The hook events are chosen by the same guard.
pub fn dummy_monitor(
    hosts: &[(Unmonitored, String)],
    cpu: i64,
    mem: i64,
    now: i64,
) -> Vec<SqlStmt> {
    let chosen = |state: i64| ("o.state = ?6", vec![SqlValue::Int(state)]);
    let (images, i) = chosen(ImageState::Locked.as_i64());
    let (nets, n) = chosen(VnetState::LockCreate.as_i64());
    let mut stmts = events("IMAGE", "image_pool", "READY", images, i, now);
    stmts.extend(events("NET", "vnet_pool", "READY", nets, n, now));
    stmts.extend([
        SqlStmt::new(
            // `Image::set_state` ends the lock.
            "UPDATE image_pool SET state = ?1, lock_level = 0, lock_owner = -1, lock_req = -1
             WHERE state = ?2",
            vec![
                SqlValue::Int(ImageState::Ready.as_i64()),
                SqlValue::Int(ImageState::Locked.as_i64()),
            ],
        ),
        SqlStmt::new(
            "UPDATE vnet_pool SET state = ?1 WHERE state = ?2",
            vec![
                SqlValue::Int(VnetState::Ready.as_i64()),
                SqlValue::Int(VnetState::LockCreate.as_i64()),
            ],
        ),
    ]);
    for (host, template) in hosts {
        let guard = |first: usize| {
            format!(
                "o.oid = ?{first} AND o.state = ?{} AND o.im_mad = 'dummy' AND o.template = ?{}",
                first + 1,
                first + 2
            )
        };
        let guard_params = vec![
            SqlValue::Int(host.oid),
            SqlValue::Int(HostState::Init.as_i64()),
            SqlValue::Text(host.template.clone()),
        ];
        stmts.extend(events(
            "HOST",
            "host_pool",
            "MONITORED",
            &guard(6),
            guard_params.clone(),
            now,
        ));
        let mut params = vec![
            SqlValue::Int(cpu),
            SqlValue::Int(mem),
            SqlValue::Int(HostState::Monitored.as_i64()),
            SqlValue::Text(template.clone()),
        ];
        params.extend(guard_params);
        stmts.push(SqlStmt::new(
            &format!(
                "UPDATE host_pool SET prev_state = state, state = ?3,
                   total_cpu = ?1, total_mem = ?2, template = ?4
                 WHERE {}",
                guard(5).replace("o.", "")
            ),
            params,
        ));
    }
    stmts
}

/// What host `oid` has free within its MAX_CPU and MAX_MEM: CPU in hundredths, memory in KB.
pub fn free_capacity(c: &crate::Conn, oid: i64) -> crate::sql::Result<Option<(i64, i64)>> {
    Ok(load(c, oid)?.map(|h| {
        (
            h.max_cpu.saturating_sub(h.cpu_usage),
            h.max_mem.saturating_sub(h.mem_usage),
        )
    }))
}

/// `HostRename::batch_rename`: the VMs on host `hid` whose current record is there show its new
/// name (`set_hostname`, `update_history`).
pub fn rename_in_history(hid: i64, name: &str) -> SqlStmt {
    let mut params = vec![SqlValue::Int(hid), SqlValue::Text(name.to_string())];
    params.extend(
        super::placement::ON_HOST
            .iter()
            .map(|s| SqlValue::Int(s.as_i64())),
    );
    SqlStmt::new(
        "UPDATE history SET hostname = ?2
         WHERE hid = ?1
           AND vid IN (SELECT oid FROM vm_pool WHERE hid = ?1 AND state IN (?3, ?4, ?5))
           AND seq = (SELECT MAX(hl.seq) FROM history hl WHERE hl.vid = history.vid)",
        params,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_capacity_is_an_amount_or_a_percentage_as_opennebula_reads_it() {
        assert_eq!(reserved_max(800, ""), 800);
        assert_eq!(reserved_max(800, "100"), 700);
        assert_eq!(reserved_max(800, "-100"), 900);
        assert_eq!(reserved_max(800, "10%"), 720);
        // In floating point, truncated, as OpenNebula's `long long` assignment does.
        assert_eq!(reserved_max(1000, "33%"), 669);
        assert_eq!(reserved_max(800, "a lot"), 800);
        assert_eq!(reserved_max(800, "10x"), 800);
        assert_eq!(reserved_max(800, " 10 "), 790);
        assert_eq!(reserved_max(800, "10 %"), 800);
        assert_eq!(reserved_max(800, "%"), 800);
        assert_eq!(reserved_max(800, "-9223372036854775808"), i64::MAX);
        assert_eq!(reserved_max(800, "9223372036854775807"), 800 - i64::MAX);
        assert_eq!(reserved_max(800, "-9223372036854775808%"), i64::MAX);
        // The host's own value, else its cluster's; an empty one is no value.
        let cluster = "RESERVED_CPU = \"50%\"\nRESERVED_MEM = 1024";
        assert_eq!(room(800, 4096, "RESERVED_CPU = 100", cluster), (700, 3072));
        assert_eq!(room(800, 4096, "RESERVED_CPU = \"\"", cluster), (400, 3072));
        assert_eq!(room(800, 4096, "", ""), (800, 4096));
        assert_eq!(room(800, 4096, "A = [", "B = ["), (800, 4096));
    }
}
