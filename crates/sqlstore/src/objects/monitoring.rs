//! Monitoring records (`vm_monitoring`, `host_monitoring`) and monthly showback records
//! (`vm_showback`), as OpenNebula keeps them. The dummy drivers' figures are computed by the
//! statement itself from the VM or host and the leader's timestamp, so one interval costs the
//! log one short statement however many VMs run, and every server computes the same rows.

use crate::sql::{Conn, Row};
use crate::{SqlStmt, SqlValue};

use wire::state::{HostState, LcmState, VmState};

/// One monitoring record of a VM (`MONITORING` in `monitoring_data.xsd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRecord {
    pub vmid: i64,
    pub timestamp: i64,
    /// Percent of one CPU.
    pub cpu: i64,
    /// KiB.
    pub memory: i64,
    pub netrx: i64,
    pub nettx: i64,
    pub diskrdbytes: i64,
    pub diskwrbytes: i64,
    pub diskrdiops: i64,
    pub diskwriops: i64,
}

/// The columns [`read_vm`] reads, over `vm_monitoring` aliased `m`.
pub const VM_COLUMNS: &str = "m.vmid, m.last_poll, m.cpu, m.memory, m.netrx, m.nettx, \
     m.diskrdbytes, m.diskwrbytes, m.diskrdiops, m.diskwriops";

pub fn read_vm(r: &Row) -> crate::sql::Result<VmRecord> {
    read_vm_at(r, 0)
}

/// A record whose [`VM_COLUMNS`] start at column `at`.
pub(crate) fn read_vm_at(r: &Row, at: usize) -> crate::sql::Result<VmRecord> {
    Ok(VmRecord {
        vmid: r.get(at)?,
        timestamp: r.get(at + 1)?,
        cpu: r.get(at + 2)?,
        memory: r.get(at + 3)?,
        netrx: r.get(at + 4)?,
        nettx: r.get(at + 5)?,
        diskrdbytes: r.get(at + 6)?,
        diskwrbytes: r.get(at + 7)?,
        diskrdiops: r.get(at + 8)?,
        diskwriops: r.get(at + 9)?,
    })
}

/// One monitoring record of a host: its CAPACITY and SYSTEM figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    pub hid: i64,
    pub timestamp: i64,
    pub free_cpu: i64,
    pub used_cpu: i64,
    /// KiB.
    pub free_memory: i64,
    pub used_memory: i64,
    pub netrx: i64,
    pub nettx: i64,
}

/// The columns [`read_host`] reads, over `host_monitoring` aliased `m`.
pub const HOST_COLUMNS: &str =
    "m.hid, m.last_mon_time, m.free_cpu, m.used_cpu, m.free_mem, m.used_mem, m.netrx, m.nettx";

pub fn read_host(r: &Row) -> crate::sql::Result<HostRecord> {
    Ok(HostRecord {
        hid: r.get(0)?,
        timestamp: r.get(1)?,
        free_cpu: r.get(2)?,
        used_cpu: r.get(3)?,
        free_memory: r.get(4)?,
        used_memory: r.get(5)?,
        netrx: r.get(6)?,
        nettx: r.get(7)?,
    })
}

/// A record of every RUNNING VM at `now`, with the figures OpenNebula's dummy probe reports:
/// CPU 5-100 % of its CPUs, MEMORY 20-100 % of its memory, network counters from the clock,
/// disk figures 1-1000. The spread is a hash of the VM id and `now`, not a random number, and
/// the arithmetic is on integers only (`(x - x % 100) / 100` is exact on both backends), so
/// every server computes the same row. A second record at the same second is ignored.
pub fn record_vms(now: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT OR IGNORE INTO vm_monitoring (vmid, last_poll, cpu, memory, netrx, nettx,
            diskrdbytes, diskwrbytes, diskrdiops, diskwriops)
         SELECT oid, ?1,
            (c - c % 100) / 100,
            (m - m % 100) / 100,
            ?1 % 10000 + 100 * (1 + (oid + ?1) % 4),
            ?1 % 10000 + 50 * (1 + (oid + ?1) % 3),
            1 + (oid * 13 + ?1 * 7) % 1000,
            1 + (oid * 17 + ?1 * 11) % 1000,
            1 + (oid * 19 + ?1 * 13) % 1000,
            1 + (oid * 23 + ?1 * 29) % 1000
         FROM (SELECT oid,
                 CAST(ROUND(cpu * 100) AS INTEGER) * (5 + (oid * 7919 + ?1 * 31) % 96) AS c,
                 memory * 1024 * (20 + (oid * 104729 + ?1 * 17) % 81) AS m
               FROM vm_pool WHERE state = ?2 AND lcm_state = ?3) AS running",
        vec![
            SqlValue::Int(now),
            SqlValue::Int(VmState::Active.as_i64()),
            SqlValue::Int(LcmState::Running.as_i64()),
        ],
    )
}

/// A record of every MONITORED host at `now`, as the dummy host probe reports it: some used
/// CPU and memory out of the host's total, fixed network counters.
pub fn record_hosts(now: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT OR IGNORE INTO host_monitoring (hid, last_mon_time, free_cpu, used_cpu,
            free_mem, used_mem, netrx, nettx)
         SELECT oid, ?1,
            total_cpu - (oid * 7919 + ?1 * 31) % (total_cpu + 1),
            (oid * 7919 + ?1 * 31) % (total_cpu + 1),
            total_mem - (oid * 104729 + ?1 * 17) % (total_mem + 1),
            (oid * 104729 + ?1 * 17) % (total_mem + 1),
            50104108822222, 1241307203246698
         FROM host_pool WHERE state = ?2",
        vec![
            SqlValue::Int(now),
            SqlValue::Int(HostState::Monitored.as_i64()),
        ],
    )
}

/// Drops the VM records taken before `before`.
pub fn expire_vms(before: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vm_monitoring WHERE last_poll < ?1",
        vec![SqlValue::Int(before)],
    )
}

/// Drops the host records taken before `before`.
pub fn expire_hosts(before: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM host_monitoring WHERE last_mon_time < ?1",
        vec![SqlValue::Int(before)],
    )
}

/// Every record of VM `vmid`, oldest first.
pub fn vm_records(c: &Conn, vmid: i64) -> crate::sql::Result<Vec<VmRecord>> {
    let sql =
        format!("SELECT {VM_COLUMNS} FROM vm_monitoring m WHERE m.vmid = ?1 ORDER BY m.last_poll");
    c.prepare_cached(&sql)?
        .query_map([vmid], read_vm)?
        .collect()
}

/// The newest record of VM `vmid`, if any.
pub fn last_vm_record(c: &Conn, vmid: i64) -> crate::sql::Result<Option<VmRecord>> {
    use crate::sql::Optional;
    let sql = format!(
        "SELECT {VM_COLUMNS} FROM vm_monitoring m WHERE m.vmid = ?1 \
         ORDER BY m.last_poll DESC LIMIT 1"
    );
    c.prepare_cached(&sql)?
        .query_row([vmid], read_vm)
        .optional()
}

/// Every record of host `hid`, oldest first.
pub fn host_records(c: &Conn, hid: i64) -> crate::sql::Result<Vec<HostRecord>> {
    let sql = format!(
        "SELECT {HOST_COLUMNS} FROM host_monitoring m WHERE m.hid = ?1 ORDER BY m.last_mon_time"
    );
    c.prepare_cached(&sql)?
        .query_map([hid], read_host)?
        .collect()
}

/// The newest record of host `hid`, if any.
pub fn last_host_record(c: &Conn, hid: i64) -> crate::sql::Result<Option<HostRecord>> {
    use crate::sql::Optional;
    let sql = format!(
        "SELECT {HOST_COLUMNS} FROM host_monitoring m WHERE m.hid = ?1 \
         ORDER BY m.last_mon_time DESC LIMIT 1"
    );
    c.prepare_cached(&sql)?
        .query_row([hid], read_host)
        .optional()
}

/// Stores (or replaces) the showback record of VM `vmid` for a month.
pub fn put_showback(vmid: i64, year: i64, month: i64, body: String) -> SqlStmt {
    SqlStmt::new(
        "INSERT OR REPLACE INTO vm_showback (vmid, year, month, body) VALUES (?1, ?2, ?3, ?4)",
        vec![
            SqlValue::Int(vmid),
            SqlValue::Int(year),
            SqlValue::Int(month),
            SqlValue::Text(body),
        ],
    )
}

/// The earliest start of any history record (`calculate_showback` without a first month).
pub fn first_stime(c: &Conn) -> crate::sql::Result<Option<i64>> {
    c.query_row("SELECT MIN(stime) FROM history", [] as [i64; 0], |r| {
        r.get(0)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;
    use crate::sql::Location;

    fn on_both_backends(test: impl Fn(&Conn)) {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            test(&c);
        }
    }

    #[test]
    fn running_vms_and_monitored_hosts_are_recorded_alike_and_expire() {
        on_both_backends(|c| {
            // VM 1 runs, VM 2 is pending; host 0 is monitored, host 1 is not.
            c.execute_batch(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                   prev_lcm_state, stime, cpu, memory, template)
                 VALUES (1, 'a', 0, 0, 384, 3, 3, 3, 3, 0, 0.5, 64, ''),
                        (2, 'b', 0, 0, 384, 1, 0, 1, 0, 0, 1, 64, '');
                 INSERT INTO host_pool (oid, name, state, prev_state, im_mad, vm_mad, cluster_id,
                   total_cpu, total_mem)
                 VALUES (0, 'h0', 2, 0, 'dummy', 'dummy', 0, 800, 16777216),
                        (1, 'h1', 0, 0, 'dummy', 'dummy', 0, 0, 0);",
            )
            .unwrap();
            for now in [1000, 1001, 1001] {
                crate::txn::run_all(c, &[record_vms(now), record_hosts(now)]).unwrap();
            }
            let vm = vm_records(c, 1).unwrap();
            assert_eq!(vm.len(), 2, "{vm:?}");
            assert!(vm_records(c, 2).unwrap().is_empty());
            for r in &vm {
                assert!((2..=50).contains(&r.cpu), "{r:?}");
                assert!((13107..=65536).contains(&r.memory), "{r:?}");
                assert!((1..=1000).contains(&r.diskrdbytes), "{r:?}");
            }
            assert_eq!(last_vm_record(c, 1).unwrap().unwrap().timestamp, 1001);
            let host = host_records(c, 0).unwrap();
            assert_eq!(host.len(), 2);
            assert!(host.iter().all(|h| h.free_cpu + h.used_cpu == 800));
            assert!(host_records(c, 1).unwrap().is_empty());

            crate::txn::run_all(c, &[expire_vms(1001), expire_hosts(1002)]).unwrap();
            assert_eq!(vm_records(c, 1).unwrap().len(), 1);
            assert!(last_host_record(c, 0).unwrap().is_none());

            crate::txn::run_all(c, &[put_showback(1, 2026, 12, "<SHOWBACK/>".into())]).unwrap();
            crate::txn::run_all(
                c,
                &[put_showback(1, 2026, 12, "<SHOWBACK>2</SHOWBACK>".into())],
            )
            .unwrap();
            let body: String = c
                .query_row("SELECT body FROM vm_showback WHERE vmid = 1", (), |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(body, "<SHOWBACK>2</SHOWBACK>");
            assert_eq!(first_stime(c).unwrap(), None);
        });
    }
}
