//! Quotas (`quota_limits`): the limits set on users, groups and as their defaults. What each
//! uses is not stored: it is read from the objects themselves (the VMs a user owns, the images
//! in a datastore), inside the transaction that changes them, so usage can never drift from
//! what exists, across failovers, crashes or restores.

use std::collections::BTreeMap;

use crate::sql::{Conn, Row};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "quota_limits";

/// Whose quota: a user's or a group's. Defaults are stored under id [`DEFAULTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// The metric row of a per-cluster VM entry that holds its clusters (`CLUSTER_IDS`, sorted
/// ids joined by commas). Such an entry is stored under `rid` = its smallest cluster id, as a
/// cluster is in one entry at most; the global VM entry is `rid` -1.
pub const CLUSTER_IDS: &str = "CLUSTER_IDS";

/// The filter of the VMs whose current history record is in one of `clusters` (none: every
/// VM), as `VirtualMachinePool::get_cluster_vms` finds them. The ids are numbers, written in.
fn in_clusters(clusters: &[i64]) -> String {
    if clusters.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = clusters.iter().map(i64::to_string).collect();
    format!(
        " AND EXISTS (SELECT 1 FROM history AS h WHERE h.vid = vm_pool.oid AND h.cid IN ({})
           AND h.seq = (SELECT MAX(l.seq) FROM history AS l WHERE l.vid = vm_pool.oid))",
        ids.join(", ")
    )
}

/// Whether any per-cluster VM entry is set, on any user or group.
pub fn any_per_cluster(c: &Conn) -> crate::sql::Result<bool> {
    let mut st = c.prepare_cached("SELECT 1 FROM quota_limits WHERE metric = ?1 LIMIT 1")?;
    let mut rows = st.query_map([SqlValue::Text(CLUSTER_IDS.into())], |_| Ok(()))?;
    Ok(rows.next().transpose()?.is_some())
}

/// The cluster ids of a per-cluster entry's `CLUSTER_IDS` value (unparsable ones left out).
pub fn cluster_ids(value: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = value
        .split(',')
        .filter_map(|i| i.trim().parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// SQL of one usage figure of the VM entry, for owner column `col` = `?N`, counting only the
/// VMs in `clusters` when some are given (a per-cluster entry).
fn vm_usage_sql(metric: &str, col: &str, param: usize, clusters: &[i64]) -> Option<String> {
    let (what, running) = match metric {
        "VMS" => ("COUNT(*)", false),
        "CPU" => ("SUM(cpu)", false),
        "MEMORY" => ("SUM(memory)", false),
        "RUNNING_VMS" => ("COUNT(*)", true),
        "RUNNING_CPU" => ("SUM(cpu)", true),
        "RUNNING_MEMORY" => ("SUM(memory)", true),
        "SYSTEM_DISK_SIZE" => ("SUM(disk_size)", false),
        _ => return None,
    };
    let states = if running {
        format!("state IN ({RUNNING_STATES})")
    } else {
        format!("state <> {DONE}")
    };
    Some(format!(
        "(SELECT COALESCE({what}, 0) FROM vm_pool WHERE {col} = ?{param} AND {states}{})",
        in_clusters(clusters)
    ))
}

/// SQL of one usage figure of a DATASTORE entry (`rid` the datastore, `?N` and `?N+1`).
fn datastore_usage_sql(metric: &str, col: &str, param: usize) -> Option<String> {
    let what = match metric {
        "IMAGES" => "COUNT(*)",
        "SIZE" => "SUM(size)",
        _ => return None,
    };
    // Backups in progress hold what they reserved (`backup_reserve`) until they end.
    let reserved = if metric == "IMAGES" {
        "SUM(r.images)"
    } else {
        "SUM(r.size)"
    };
    Some(format!(
        "((SELECT COALESCE({what}, 0) FROM image_pool WHERE {col} = ?{param} AND datastore_id = ?{p1})
          + (SELECT COALESCE({reserved}, 0) FROM backup_reserve AS r JOIN vm_pool AS v
             ON v.oid = r.vid WHERE r.{col} = ?{param} AND r.datastore_id = ?{p1}
             AND {in_backup}))",
        p1 = param + 1,
        in_backup = super::backup::IN_BACKUP,
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
    let mut st = c.prepare_cached(&sql)?;
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
    let mut usage = super::lease::leases_usage(c, owner.column(), only)?;
    for (key, n) in reservation_usage(c, owner, only)? {
        *usage.entry(key).or_insert(0.0) += n;
    }
    Ok(usage)
}

/// The addresses of each network that `owner`'s reservations hold: they count for the
/// reservation owner's LEASES in the parent network, as `one.vn.reserve` charges them.
fn reservation_usage(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
) -> crate::sql::Result<BTreeMap<(i64, i64), f64>> {
    let col = owner.column();
    let filter = if only.is_some() {
        format!(" AND n.{col} = ?1")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT n.{col}, l.vnet_oid, COUNT(*) FROM vnet_lease AS l
         JOIN vnet_pool AS n ON n.oid = l.owner WHERE l.kind = {net}{filter}
         GROUP BY n.{col}, l.vnet_oid",
        net = super::lease::Holder::Net.code()
    );
    let mut st = c.prepare_cached(&sql)?;
    let params: Vec<SqlValue> = only.map(SqlValue::Int).into_iter().collect();
    let rows = st.query_map(params.as_slice(), |r| {
        Ok((
            (r.get::<i64>(0)?, r.get::<i64>(1)?),
            r.get::<i64>(2)? as f64,
        ))
    })?;
    rows.collect()
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
    pub system_disk_size: f64,
}

impl VmUsage {
    /// The figure of `metric`; metrics OneHA does not track read 0.
    pub fn get(&self, metric: &str) -> f64 {
        match metric {
            "VMS" => self.vms,
            "CPU" => self.cpu,
            "MEMORY" => self.memory,
            "RUNNING_VMS" => self.running_vms,
            "RUNNING_CPU" => self.running_cpu,
            "RUNNING_MEMORY" => self.running_memory,
            "SYSTEM_DISK_SIZE" => self.system_disk_size,
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
    vm_usage_in(c, owner, only, &[])
}

/// What `owner` `oid` uses of a per-cluster VM entry: its VMs in `clusters`.
pub fn vm_cluster_usage(
    c: &Conn,
    owner: Owner,
    oid: i64,
    clusters: &[i64],
) -> crate::sql::Result<VmUsage> {
    Ok(vm_usage_in(c, owner, Some(oid), clusters)?
        .remove(&oid)
        .unwrap_or_default())
}

fn vm_usage_in(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
    clusters: &[i64],
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
                SUM({running} * memory), SUM(disk_size)
         FROM vm_pool WHERE state <> {DONE}{filter}{} GROUP BY {col}",
        in_clusters(clusters)
    );
    let mut st = c.prepare_cached(&sql)?;
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
                system_disk_size: f(7)?,
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
    let rfilter = if only.is_some() {
        format!(" AND r.{col} = ?1")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {col}, datastore_id, SUM(n), SUM(size) FROM
           (SELECT {col}, datastore_id, 1 AS n, size FROM image_pool{filter}
            UNION ALL SELECT r.{col}, r.datastore_id, r.images AS n, r.size
              FROM backup_reserve AS r JOIN vm_pool AS v ON v.oid = r.vid
              WHERE {in_backup}{rfilter})
           AS u GROUP BY {col}, datastore_id",
        in_backup = super::backup::IN_BACKUP,
    );
    let mut st = c.prepare_cached(&sql)?;
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
fn usage_sql(b: &Bound, at: usize) -> Option<(String, Vec<SqlValue>)> {
    let (owner, oid, kind, rid, metric) = (b.owner, b.oid, b.kind, b.rid, b.metric);
    let col = owner.column();
    match kind {
        "VM" => match vm_usage_sql(metric, col, at, &b.clusters) {
            Some(sql) => Some((sql, vec![SqlValue::Int(oid)])),
            None => {
                let (name, running) = generic_metric(metric);
                let states = if running {
                    format!("state IN ({RUNNING_STATES})")
                } else {
                    format!("state <> {DONE}")
                };
                let mut params = vec![SqlValue::Int(oid)];
                params.extend(attribute_params(name));
                Some((
                    format!(
                        "(SELECT COALESCE(SUM({}), 0) FROM vm_pool WHERE {col} = ?{at} AND {states}{})",
                        attribute_value_sql(at + 1, at + 2, at + 3),
                        in_clusters(&b.clusters)
                    ),
                    params,
                ))
            }
        },
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
            format!(
                "({} + (SELECT COUNT(*) FROM vnet_lease AS l JOIN vnet_pool AS n
                   ON n.oid = l.owner WHERE l.kind = {net} AND l.vnet_oid = ?{} AND n.{col} = ?{at}))",
                super::lease::leases_usage_sql(col, at, at + 1),
                at + 1,
                net = super::lease::Holder::Net.code()
            ),
            vec![SqlValue::Int(oid), SqlValue::Int(rid)],
        )),
        _ => None,
    }
}

/// What a VM's template holds in the system datastore, in MB (`VirtualMachineDisks::
/// system_ds_size(true)` plus `VirtualMachine::get_snapshots_system_size`), kept in
/// `vm_pool.disk_size` whenever the template is written so the SYSTEM_DISK_SIZE quota sums a
/// column: every volatile disk and every image disk whose transfer target is SYSTEM
/// (`get_tm_target`: CLONE_TARGET for a cloned disk, else LN_TARGET; none without CLONE), with
/// its disk snapshots, and the VM's snapshots.
pub fn system_disk_size(text: &str) -> f64 {
    template::Template::parse(text).map_or(0.0, |t| system_disk_size_of(&t))
}

/// [`system_disk_size`] of a parsed template.
pub fn system_disk_size_of(t: &template::Template) -> f64 {
    let num = |v: Option<&str>| v.and_then(|s| s.trim().parse::<i64>().ok());
    let disks: i64 = t
        .get_all("DISK")
        .filter_map(|d| {
            let size = num(d.vector_get("SIZE"))?;
            let image = d
                .vector_get("IMAGE_ID")
                .is_some_and(|i| !i.trim().is_empty());
            let target = match d.vector_get("CLONE").map(str::trim) {
                Some(c) if c.eq_ignore_ascii_case("YES") => d.vector_get("CLONE_TARGET"),
                Some(_) => d.vector_get("LN_TARGET"),
                None => None,
            };
            let in_system = target.is_some_and(|t| t.trim().eq_ignore_ascii_case("SYSTEM"));
            let snapshots = num(d.vector_get("DISK_SNAPSHOT_TOTAL_SIZE")).unwrap_or(0);
            (!image || in_system).then_some(size.saturating_add(snapshots))
        })
        .fold(0i64, i64::saturating_add);
    let snapshots: i64 = t
        .get_all("SNAPSHOT")
        .filter_map(|s| num(s.vector_get("SYSTEM_DISK_SIZE")))
        .fold(0i64, i64::saturating_add);
    disks.saturating_add(snapshots) as f64
}

/// [`super::replace_template`] of a VM's template: its system disk size goes with it.
pub(super) fn replace_vm_template(oid: i64, new: String, old: String) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vm_pool SET template = ?3, disk_size = ?2 WHERE oid = ?1 AND template = ?4",
        vec![
            SqlValue::Int(oid),
            SqlValue::Real(system_disk_size(&new)),
            SqlValue::Text(new),
            SqlValue::Text(old),
        ],
    )
    .must_match()
}

/// A database from before SYSTEM_DISK_SIZE gets `vm_pool.disk_size`, computed from each VM's
/// template: every server does the same to the same rows, so replicas stay alike.
pub(crate) fn upgrade_disk_size(c: &Conn) -> crate::sql::Result<()> {
    if c.columns(super::vm::TABLE)?
        .iter()
        .any(|col| col == "disk_size")
    {
        return Ok(());
    }
    let add = "ALTER TABLE vm_pool ADD COLUMN disk_size REAL NOT NULL DEFAULT 0".to_string();
    c.execute_batch(&match c.backend() {
        crate::sql::Backend::Sqlite => add,
        crate::sql::Backend::Mysql => crate::sql::mysql_schema(c, &add),
    })?;
    let vms: Vec<(i64, String)> = {
        let mut st = c.prepare(&format!(
            "SELECT oid, template FROM vm_pool WHERE state <> {DONE}"
        ))?;
        let rows = st.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<crate::sql::Result<_>>()?
    };
    for (oid, text) in vms {
        let size = system_disk_size(&text);
        if size != 0.0 {
            c.execute(
                "UPDATE vm_pool SET disk_size = ?1 WHERE oid = ?2",
                [SqlValue::Real(size), SqlValue::Int(oid)],
            )?;
        }
    }
    Ok(())
}

/// The value of top-level attribute `?{needle}` (`\nNAME="`, `?{len}` characters) of a VM,
/// read from the template text as `Template::to_text` writes it (a vector's keys are indented,
/// so only a top-level attribute matches): from its template, else its user template, else 0.
/// A generic VM quota (`QUOTA_VM_ATTRIBUTE`) sums it in SQL, so its guard reads it where the
/// change is applied, as every other quota's.
fn attribute_value_sql(needle: usize, len: usize, nl: usize) -> String {
    let value = |col: &str| {
        let text = format!("(?{nl} || {col})");
        let pos = format!("INSTR({text}, ?{needle})");
        let rest = format!("SUBSTR({text}, {pos} + ?{len})");
        (
            pos.clone(),
            format!("(SUBSTR({rest}, 1, INSTR({rest}, '\"') - 1) + 0)"),
        )
    };
    let (pos_t, val_t) = value("template");
    let (pos_u, val_u) = value("user_template");
    format!("CASE WHEN {pos_t} > 0 THEN {val_t} WHEN {pos_u} > 0 THEN {val_u} ELSE 0 END")
}

/// A generic metric of the VM entry: the attribute it counts, and whether only running VMs
/// count (`RUNNING_<attribute>`).
fn generic_metric(metric: &str) -> (&str, bool) {
    match metric.strip_prefix("RUNNING_") {
        Some(base) => (base, true),
        None => (metric, false),
    }
}

/// The parameters of [`attribute_value_sql`] for attribute `name`: needle, its length, newline.
fn attribute_params(name: &str) -> Vec<SqlValue> {
    let needle = format!("\n{name}=\"");
    let len = needle.chars().count() as i64;
    vec![
        SqlValue::Text(needle),
        SqlValue::Int(len),
        SqlValue::Text("\n".into()),
    ]
}

/// What each `owner` uses of generic VM metric `metric` (`QUOTA_VM_ATTRIBUTE`: an attribute,
/// or `RUNNING_` and an attribute), by owner id (only `only`, when given).
pub fn generic_usage(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
    metric: &str,
) -> crate::sql::Result<BTreeMap<i64, f64>> {
    generic_usage_in(c, owner, only, metric, &[])
}

/// What `owner` `oid` uses of generic VM metric `metric` in a per-cluster entry's `clusters`.
pub fn generic_cluster_usage(
    c: &Conn,
    owner: Owner,
    oid: i64,
    metric: &str,
    clusters: &[i64],
) -> crate::sql::Result<f64> {
    Ok(generic_usage_in(c, owner, Some(oid), metric, clusters)?
        .remove(&oid)
        .unwrap_or(0.0))
}

fn generic_usage_in(
    c: &Conn,
    owner: Owner,
    only: Option<i64>,
    metric: &str,
    clusters: &[i64],
) -> crate::sql::Result<BTreeMap<i64, f64>> {
    let col = owner.column();
    let (name, running) = generic_metric(metric);
    let states = if running {
        format!("state IN ({RUNNING_STATES})")
    } else {
        format!("state <> {DONE}")
    };
    let filter = if only.is_some() {
        format!(" AND {col} = ?4")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {col}, SUM({}) FROM vm_pool WHERE {states}{filter}{} GROUP BY {col}",
        attribute_value_sql(1, 2, 3),
        in_clusters(clusters)
    );
    let mut params = attribute_params(name);
    params.extend(only.map(SqlValue::Int));
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params.as_slice(), |r| {
        Ok((r.get::<i64>(0)?, number(&r.get::<SqlValue>(1)?)))
    })?;
    rows.collect()
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
    /// A per-cluster VM entry's clusters: only its VMs there count (none: every VM).
    pub clusters: Vec<i64>,
}

/// A statement that matches a row only while every bound holds: placed after the change in its
/// transaction, it undoes the change (a `must_match` that matched nothing) when a concurrent
/// write used up the quota since the leader checked it. Every server evaluates it on the same
/// rows, so all reach the same outcome.
pub fn guard(bounds: &[Bound]) -> Option<SqlStmt> {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    for b in bounds {
        let Some((sql, mut p)) = usage_sql(b, params.len() + 1) else {
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
    fn the_system_disk_size_counts_what_the_system_datastore_holds() {
        let text = "DISK = [ TYPE = fs, SIZE = 10 ]
DISK = [ IMAGE_ID = 1, SIZE = 20, DISK_SNAPSHOT_TOTAL_SIZE = 5, CLONE = YES, CLONE_TARGET = SYSTEM ]
DISK = [ IMAGE_ID = 2, SIZE = 40, PERSISTENT = YES, CLONE = NO, LN_TARGET = NONE ]
DISK = [ IMAGE_ID = 3, SIZE = 80, PERSISTENT = YES, CLONE = NO, LN_TARGET = SYSTEM ]
DISK = [ IMAGE_ID = 4, SIZE = 160, CLONE = YES, CLONE_TARGET = SELF ]
DISK = [ IMAGE_ID = 5, SIZE = 320 ]
DISK = [ TYPE = fs ]
SNAPSHOT = [ SNAPSHOT_ID = 0, SYSTEM_DISK_SIZE = 100 ]";
        // The volatile disk, the disks whose target is SYSTEM (a clone with its snapshots, a
        // link), the VM snapshot; not a link or clone kept in its image datastore, nor a disk
        // that says neither.
        assert_eq!(super::system_disk_size(text), 215.0);
        assert_eq!(super::system_disk_size("not a [ template"), 0.0);
    }

    #[test]
    fn the_disk_size_follows_the_template_and_is_filled_in_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![crate::sql::Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            let size = |c: &crate::sql::Conn| -> f64 {
                c.query_row("SELECT disk_size FROM vm_pool WHERE oid = 1", (), |r| {
                    r.get(0)
                })
                .unwrap()
            };
            let vm = "DISK = [ TYPE = fs, SIZE = 30 ]";
            c.execute_batch(&format!(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                   prev_lcm_state, stime, cpu, memory, template)
                 VALUES (1, 'a', 2, 1, 384, 1, 0, 1, 0, 0, 1, 64, '{vm}')"
            ))
            .unwrap();
            // A database from before the column gets it, with each VM's figure, when opened.
            c.execute_batch("ALTER TABLE vm_pool DROP COLUMN disk_size")
                .unwrap();
            drop(c);
            let c = crate::open_state(&loc).unwrap();
            assert_eq!(size(&c), 30.0);
            let grown = format!("{vm}\nDISK = [ TYPE = fs, SIZE = 12 ]");
            let stmt = super::super::replace_template("vm_pool", "template", 1, grown, vm.into());
            crate::txn::run_all(&c, &[stmt]).unwrap();
            assert_eq!(size(&c), 42.0);
            let usage = super::vm_usage(&c, super::Owner::User, Some(2)).unwrap();
            assert_eq!(usage[&2].get("SYSTEM_DISK_SIZE"), 42.0);
        }
    }

    #[test]
    fn a_generic_metric_is_read_from_the_template_or_else_the_user_template() {
        let dir = tempfile::tempdir().unwrap();
        let mut locations = vec![crate::sql::Location::Sqlite(dir.path().join("one.db"))];
        locations.extend(crate::testing::fresh_mysql_database());
        for loc in locations {
            let mut c = crate::open_state(&loc).unwrap();
            crate::testing::bootstrap(&mut c);
            // VM 1 in its template (and a vector's VCPU that does not count), VM 2 in its
            // user template, VM 3 not at all, VM 4 stopped (state 4: not running).
            c.execute_batch(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                   prev_lcm_state, stime, cpu, memory, template, user_template)
                 VALUES (1, 'a', 2, 1, 384, 1, 0, 1, 0, 0, 1, 64,
                           'CPU=\"1\"\nTOPOLOGY=[\n  VCPU=\"9\" ]\nVCPU=\"4\"\n', ''),
                        (2, 'b', 2, 1, 384, 2, 0, 2, 0, 0, 1, 64, 'CPU=\"1\"\n', 'VCPU=\"0.5\"\n'),
                        (3, 'c', 2, 1, 384, 1, 0, 1, 0, 0, 1, 64, 'CPU=\"1\"\n', ''),
                        (4, 'd', 2, 1, 384, 4, 0, 4, 0, 0, 1, 64, 'VCPU=\"2\"\n', '')",
            )
            .unwrap();
            let user = super::Owner::User;
            assert_eq!(
                super::generic_usage(&c, user, None, "VCPU").unwrap()[&2],
                6.5
            );
            let running = super::generic_usage(&c, user, Some(2), "RUNNING_VCPU").unwrap();
            assert_eq!(running[&2], 4.5);
            let bound = |limit: f64| super::Bound {
                owner: user,
                oid: 2,
                kind: "VM",
                rid: -1,
                metric: "VCPU",
                limit,
                clusters: Vec::new(),
            };
            for (limit, holds) in [(6.5, true), (6.0, false)] {
                let guard = super::guard(&[bound(limit)]).unwrap();
                let matched = c
                    .prepare(&guard.sql)
                    .unwrap()
                    .query_map(guard.params.as_slice(), |_| Ok(()))
                    .unwrap()
                    .count();
                assert_eq!(matched == 1, holds, "{limit}");
            }
        }
    }

    #[test]
    fn the_running_states_are_one_list() {
        let listed: Vec<i64> = super::RUNNING_STATES
            .split(", ")
            .map(|s| s.parse().unwrap_or(-1))
            .collect();
        assert_eq!(listed, super::RUNNING);
    }
}
