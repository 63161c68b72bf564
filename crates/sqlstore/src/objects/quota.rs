//! Quotas (`quota_limits`): the limits set on users, groups and as their defaults. What each
//! uses is not stored: it is read from the objects themselves (the VMs a user owns, the images
//! in a datastore), inside the transaction that changes them, so usage can never drift from
//! what exists, across failovers, crashes or restores.

use std::collections::BTreeMap;

use crate::sql::{Conn, Row};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "quota_limits";

/// Whose quota: a user's or a group's. Defaults are stored under id [`DEFAULTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    User,
    Group,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::User => "user",
            Owner::Group => "group",
        }
    }

    /// The owner column of `vm_pool` and `image_pool` usage is counted by.
    fn column(self) -> &'static str {
        match self {
            Owner::User => "uid",
            Owner::Group => "gid",
        }
    }
}

/// The id the default quotas of users or groups are stored under.
pub const DEFAULTS: i64 = -1;

/// One limit: of `owner` `oid`, in entry `kind` (`VM`, `DATASTORE`, `NETWORK`, `IMAGE`) for
/// resource `rid` (-1 for the VM entry), metric `metric`, as OpenNebula prints it (`"-1"`,
/// `"10"`, `"0.50"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub kind: String,
    pub rid: i64,
    pub metric: String,
    pub value: String,
}

/// The limits of `owner` `oid`, by entry then metric.
pub fn limits(c: &Conn, owner: Owner, oid: i64) -> crate::sql::Result<Vec<Limit>> {
    let mut st = c.prepare_cached(
        "SELECT kind, rid, metric, value FROM quota_limits WHERE owner = ?1 AND oid = ?2
         ORDER BY kind, rid, metric",
    )?;
    let rows = st.query_map(
        [SqlValue::Text(owner.as_str().into()), SqlValue::Int(oid)],
        read_limit,
    )?;
    rows.collect()
}

/// Every limit of every `owner` (for pool listings), with its owner id.
pub fn all_limits(c: &Conn, owner: Owner) -> crate::sql::Result<Vec<(i64, Limit)>> {
    let mut st = c.prepare_cached(
        "SELECT kind, rid, metric, value, oid FROM quota_limits WHERE owner = ?1
         ORDER BY oid, kind, rid, metric",
    )?;
    let rows = st.query_map([SqlValue::Text(owner.as_str().into())], |r| {
        Ok((r.get(4)?, read_limit(r)?))
    })?;
    rows.collect()
}

fn read_limit(r: &Row) -> crate::sql::Result<Limit> {
    Ok(Limit {
        kind: r.get(0)?,
        rid: r.get(1)?,
        metric: r.get(2)?,
        value: r.get(3)?,
    })
}

/// Replaces entry `kind`/`rid` of `owner` `oid` with `metrics` (none: the entry goes).
pub fn set_entry(
    owner: Owner,
    oid: i64,
    kind: &str,
    rid: i64,
    metrics: &[(&str, String)],
) -> Vec<SqlStmt> {
    let key = |sql: &str, mut extra: Vec<SqlValue>| {
        let mut p = vec![
            SqlValue::Text(owner.as_str().into()),
            SqlValue::Int(oid),
            SqlValue::Text(kind.into()),
            SqlValue::Int(rid),
        ];
        p.append(&mut extra);
        SqlStmt::new(sql, p)
    };
    let mut stmts = vec![key(
        "DELETE FROM quota_limits WHERE owner = ?1 AND oid = ?2 AND kind = ?3 AND rid = ?4",
        vec![],
    )];
    for (metric, value) in metrics {
        stmts.push(key(
            "INSERT INTO quota_limits (owner, oid, kind, rid, metric, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            vec![
                SqlValue::Text((*metric).into()),
                SqlValue::Text(value.clone()),
            ],
        ));
    }
    stmts
}

/// Drops every limit of `owner` `oid` (the user or group is deleted).
pub fn drop_all(owner: Owner, oid: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM quota_limits WHERE owner = ?1 AND oid = ?2",
        vec![SqlValue::Text(owner.as_str().into()), SqlValue::Int(oid)],
    )
}

/// VM states whose VMs count for the RUNNING_* quotas (`VirtualMachine::is_running_quota`):
/// PENDING, HOLD, ACTIVE, CLONING and CLONING_FAILURE.
pub const RUNNING_STATES: &str = "1, 2, 3, 10, 11";
const RUNNING: [i64; 5] = [1, 2, 3, 10, 11];

/// Whether a VM in `state` counts for the RUNNING_* quotas ([`RUNNING_STATES`]).
pub fn counts_as_running(state: i64) -> bool {
    RUNNING.contains(&state)
}
/// The VM state whose VMs count for nothing (DONE).
const DONE: i64 = 6;

/// SQL of one usage figure of the VM entry, for owner column `col` = `?N`.
fn vm_usage_sql(metric: &str, col: &str, param: usize) -> Option<String> {
    let (what, running) = match metric {
        "VMS" => ("COUNT(*)", false),
        "CPU" => ("SUM(cpu)", false),
        "MEMORY" => ("SUM(memory)", false),
        "RUNNING_VMS" => ("COUNT(*)", true),
        "RUNNING_CPU" => ("SUM(cpu)", true),
        "RUNNING_MEMORY" => ("SUM(memory)", true),
        _ => return None,
    };
    let states = if running {
        format!("state IN ({RUNNING_STATES})")
    } else {
        format!("state <> {DONE}")
    };
    Some(format!(
        "(SELECT COALESCE({what}, 0) FROM vm_pool WHERE {col} = ?{param} AND {states})"
    ))
}

/// SQL of one usage figure of a DATASTORE entry (`rid` the datastore, `?N` and `?N+1`).
fn datastore_usage_sql(metric: &str, col: &str, param: usize) -> Option<String> {
    let what = match metric {
        "IMAGES" => "COUNT(*)",
        "SIZE" => "SUM(size)",
        _ => return None,
    };
    Some(format!(
        "(SELECT COALESCE({what}, 0) FROM image_pool WHERE {col} = ?{param} AND datastore_id = ?{})",
        param + 1
    ))
}

/// How many of each `owner`'s VMs use each image (the IMAGE entry's RVMS): by (owner id,
/// image id).
pub fn image_usage(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
) -> crate::sql::Result<BTreeMap<(i64, i64), f64>> {
    let col = owner.column();
    let filter = if only.is_some() {
        format!(" WHERE v.{col} = ?1")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT v.{col}, i.oid, COUNT(*) FROM image_vm AS i JOIN vm_pool AS v ON v.oid = i.vid
         {filter} GROUP BY v.{col}, i.oid"
    );
    let mut st = c.prepare(&sql)?;
    let params: Vec<SqlValue> = only.map(SqlValue::Int).into_iter().collect();
    let rows = st.query_map(params.as_slice(), |r| {
        Ok((
            (r.get::<i64>(0)?, r.get::<i64>(1)?),
            r.get::<i64>(2)? as f64,
        ))
    })?;
    rows.collect()
}

/// What each `owner` holds in each network (the NETWORK entry's LEASES): leases by (owner id,
/// network id).
pub fn network_usage(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
) -> crate::sql::Result<BTreeMap<(i64, i64), f64>> {
    super::lease::leases_usage(c, owner.column(), only)
}

/// What one user or group uses of the VM entry, read from its VMs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VmUsage {
    pub vms: f64,
    pub cpu: f64,
    pub memory: f64,
    pub running_vms: f64,
    pub running_cpu: f64,
    pub running_memory: f64,
}

impl VmUsage {
    /// The figure of `metric`; metrics OneHA does not track yet (SYSTEM_DISK_SIZE) read 0.
    pub fn get(&self, metric: &str) -> f64 {
        match metric {
            "VMS" => self.vms,
            "CPU" => self.cpu,
            "MEMORY" => self.memory,
            "RUNNING_VMS" => self.running_vms,
            "RUNNING_CPU" => self.running_cpu,
            "RUNNING_MEMORY" => self.running_memory,
            _ => 0.0,
        }
    }
}

/// What each `owner` uses of the VM entry (only `only`, when given), by owner id.
pub fn vm_usage(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
) -> crate::sql::Result<BTreeMap<i64, VmUsage>> {
    let col = owner.column();
    let running = format!("CASE WHEN state IN ({RUNNING_STATES}) THEN 1 ELSE 0 END");
    let filter = if only.is_some() {
        format!(" AND {col} = ?1")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {col}, COUNT(*), SUM(cpu), SUM(memory), SUM({running}), SUM({running} * cpu),
                SUM({running} * memory)
         FROM vm_pool WHERE state <> {DONE}{filter} GROUP BY {col}"
    );
    let mut st = c.prepare(&sql)?;
    let params: Vec<SqlValue> = only.map(SqlValue::Int).into_iter().collect();
    let rows = st.query_map(params.as_slice(), |r| {
        let f = |i: usize| -> crate::sql::Result<f64> { Ok(number(&r.get::<SqlValue>(i)?)) };
        Ok((
            r.get::<i64>(0)?,
            VmUsage {
                vms: f(1)?,
                cpu: f(2)?,
                memory: f(3)?,
                running_vms: f(4)?,
                running_cpu: f(5)?,
                running_memory: f(6)?,
            },
        ))
    })?;
    rows.collect()
}

/// What each `owner` uses of each datastore (only `only`, when given): (images, size in MB)
/// by (owner id, datastore id).
pub fn datastore_usage(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
) -> crate::sql::Result<BTreeMap<(i64, i64), (f64, f64)>> {
    let col = owner.column();
    let filter = if only.is_some() {
        format!(" WHERE {col} = ?1")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {col}, datastore_id, COUNT(*), SUM(size) FROM image_pool{filter}
         GROUP BY {col}, datastore_id"
    );
    let mut st = c.prepare(&sql)?;
    let params: Vec<SqlValue> = only.map(SqlValue::Int).into_iter().collect();
    let rows = st.query_map(params.as_slice(), |r| {
        Ok((
            (r.get::<i64>(0)?, r.get::<i64>(1)?),
            (
                number(&r.get::<SqlValue>(2)?),
                number(&r.get::<SqlValue>(3)?),
            ),
        ))
    })?;
    rows.collect()
}

/// The SQL of one usage figure, its parameters numbered from `at`.
fn usage_sql(
    owner: Owner,
    oid: i64,
    kind: &str,
    rid: i64,
    metric: &str,
    at: usize,
) -> Option<(String, Vec<SqlValue>)> {
    let col = owner.column();
    match kind {
        "VM" => Some((vm_usage_sql(metric, col, at)?, vec![SqlValue::Int(oid)])),
        "DATASTORE" => Some((
            datastore_usage_sql(metric, col, at)?,
            vec![SqlValue::Int(oid), SqlValue::Int(rid)],
        )),
        "IMAGE" if metric == "RVMS" => Some((
            format!(
                "(SELECT COUNT(*) FROM image_vm AS i JOIN vm_pool AS v ON v.oid = i.vid
                  WHERE i.oid = ?{} AND v.{col} = ?{at})",
                at + 1
            ),
            vec![SqlValue::Int(oid), SqlValue::Int(rid)],
        )),
        "NETWORK" if metric == "LEASES" => Some((
            super::lease::leases_usage_sql(col, at, at + 1),
            vec![SqlValue::Int(oid), SqlValue::Int(rid)],
        )),
        _ => None,
    }
}

fn number(v: &SqlValue) -> f64 {
    match v {
        SqlValue::Int(i) => *i as f64,
        SqlValue::Real(r) => *r,
        SqlValue::Text(t) => t.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// One bound a change must keep: what `owner` `oid` uses of `metric` in entry `kind`/`rid`,
/// once the change is made, stays at or below `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub owner: Owner,
    pub oid: i64,
    pub kind: &'static str,
    pub rid: i64,
    pub metric: &'static str,
    pub limit: f64,
}

/// A statement that matches a row only while every bound holds: placed after the change in its
/// transaction, it undoes the change (a `must_match` that matched nothing) when a concurrent
/// write used up the quota since the leader checked it. Every server evaluates it on the same
/// rows, so all reach the same outcome.
pub fn guard(bounds: &[Bound]) -> Option<SqlStmt> {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    for b in bounds {
        let Some((sql, mut p)) =
            usage_sql(b.owner, b.oid, b.kind, b.rid, b.metric, params.len() + 1)
        else {
            continue;
        };
        params.append(&mut p);
        params.push(SqlValue::Real(b.limit));
        conds.push(format!("{sql} <= ?{}", params.len()));
    }
    if conds.is_empty() {
        return None;
    }
    // A one-row derived table: MySQL and SQLite both take it, unlike a FROM-less WHERE.
    Some(
        SqlStmt::new(
            &format!(
                "SELECT 1 FROM (SELECT 1 AS one) AS quota WHERE {}",
                conds.join(" AND ")
            ),
            params,
        )
        .must_match(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_running_states_are_one_list() {
        let listed: Vec<i64> = super::RUNNING_STATES
            .split(", ")
            .map(|s| s.parse().unwrap_or(-1))
            .collect();
        assert_eq!(listed, super::RUNNING);
    }
}
