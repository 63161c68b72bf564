//! Cluster optimization plans (`plan_pool`, OpenNebula's table): one row per cluster with a
//! plan, its STATE and its actions as `ACTION = [ ... ]` vectors in `body`. A cluster without
//! a row has no plan (OpenNebula's state NONE). Every change is made only from the row as it
//! was read, so the leader's plan steps and the API calls never overwrite each other.

use crate::sql::{Conn, Optional};
use crate::{SqlStmt, SqlValue};

use wire::state::{HostState, LcmState, VmState};

pub const TABLE: &str = "plan_pool";

/// A stored plan: cluster, state, body.
pub type PlanRow = (i64, i64, String);

/// Cluster `cid`'s plan.
pub fn load(c: &Conn, cid: i64) -> crate::sql::Result<Option<PlanRow>> {
    c.prepare_cached("SELECT cid, state, body FROM plan_pool WHERE cid = ?1")?
        .query_row([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
}

/// The plans in `state`, by cluster.
pub fn in_state(c: &Conn, state: i64) -> crate::sql::Result<Vec<PlanRow>> {
    c.prepare_cached("SELECT cid, state, body FROM plan_pool WHERE state = ?1 ORDER BY cid")?
        .query_map([state], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// Cluster `cid`'s plan becomes (`state`, `body`), if it is still `was` as read (`None`: no
/// plan; a concurrent insert then breaks the key).
pub fn set(cid: i64, state: i64, body: String, was: Option<(i64, String)>) -> SqlStmt {
    match was {
        None => SqlStmt::new(
            "INSERT INTO plan_pool (cid, state, body) VALUES (?1, ?2, ?3)",
            vec![SqlValue::Int(cid), SqlValue::Int(state), SqlValue::Text(body)],
        ),
        Some((old_state, old_body)) => SqlStmt::new(
            "UPDATE plan_pool SET state = ?2, body = ?3 WHERE cid = ?1 AND state = ?4 AND body = ?5",
            vec![
                SqlValue::Int(cid),
                SqlValue::Int(state),
                SqlValue::Text(body),
                SqlValue::Int(old_state),
                SqlValue::Text(old_body),
            ],
        )
        .must_match(),
    }
}

/// Drops cluster `cid`'s plan, if it is still (`state`, `body`).
pub fn delete(cid: i64, state: i64, body: String) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM plan_pool WHERE cid = ?1 AND state = ?2 AND body = ?3",
        vec![
            SqlValue::Int(cid),
            SqlValue::Int(state),
            SqlValue::Text(body),
        ],
    )
    .must_match()
}

/// A MONITORED host of a cluster as the optimizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLoad {
    pub oid: i64,
    /// Hundredths of a core.
    pub total_cpu: i64,
    pub cpu_usage: i64,
    /// KB.
    pub total_mem: i64,
    pub mem_usage: i64,
}

/// A RUNNING VM on one of those hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct VmLoad {
    pub oid: i64,
    pub hid: i64,
    /// Hundredths of a core.
    pub cpu: i64,
    /// KB.
    pub mem: i64,
    /// Its template (where its VM group is named).
    pub template: String,
}

/// Cluster `cid`'s MONITORED hosts and the RUNNING VMs on them, by id.
pub fn cluster_load(c: &Conn, cid: i64) -> crate::sql::Result<(Vec<HostLoad>, Vec<VmLoad>)> {
    let hosts = c
        .prepare_cached(
            "SELECT oid, total_cpu, cpu_usage, total_mem, mem_usage FROM host_pool
             WHERE cluster_id = ?1 AND state = ?2 ORDER BY oid",
        )?
        .query_map([cid, HostState::Monitored.as_i64()], |r| {
            Ok(HostLoad {
                oid: r.get(0)?,
                total_cpu: r.get(1)?,
                cpu_usage: r.get(2)?,
                total_mem: r.get(3)?,
                mem_usage: r.get(4)?,
            })
        })?
        .collect::<crate::sql::Result<Vec<_>>>()?;
    let vms = c
        .prepare_cached(
            "SELECT v.oid, v.hid, CAST(ROUND(v.cpu * 100) AS INTEGER), v.memory * 1024,
                    v.template
             FROM vm_pool v JOIN host_pool h ON h.oid = v.hid
             WHERE h.cluster_id = ?1 AND v.state = ?2 AND v.lcm_state = ?3 ORDER BY v.oid",
        )?
        .query_map(
            [cid, VmState::Active.as_i64(), LcmState::Running.as_i64()],
            |r| {
                Ok(VmLoad {
                    oid: r.get(0)?,
                    hid: r.get(1)?,
                    cpu: r.get(2)?,
                    mem: r.get(3)?,
                    template: r.get(4)?,
                })
            },
        )?
        .collect::<crate::sql::Result<Vec<_>>>()?;
    Ok((hosts, vms))
}

/// VM `oid`'s (state, lcm_state, hid).
pub fn vm_state(c: &Conn, oid: i64) -> crate::sql::Result<Option<(i64, i64, i64)>> {
    c.prepare_cached("SELECT state, lcm_state, hid FROM vm_pool WHERE oid = ?1")?
        .query_row([oid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
}
