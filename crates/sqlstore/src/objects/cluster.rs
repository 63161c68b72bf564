//! Clusters (`cluster_pool`): groups of hosts, datastores and virtual networks. A host is in
//! exactly one cluster (`host_pool.cluster_id`); a datastore or a network in any number
//! (`cluster_datastore_relation`, `cluster_network_relation`, OpenNebula's table names).
//! Cluster 0 `default` exists from the start and cannot be deleted.

use crate::sql::{Conn, Row};

use super::insert_next;
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "cluster_pool";
pub const DATASTORES: &str = "cluster_datastore_relation";
pub const NETWORKS: &str = "cluster_network_relation";

/// The cluster new hosts, datastores and networks go to when none is named.
pub const DEFAULT: i64 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRow {
    pub oid: i64,
    pub name: String,
    pub template: String,
    pub hosts: Vec<i64>,
    pub datastores: Vec<i64>,
    pub vnets: Vec<i64>,
    /// Its optimization plan (state, body), if it has one ([`super::plan`]).
    pub plan: Option<(i64, String)>,
}

/// What a datastore or a network belongs to, as the relation tables hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Datastore,
    Network,
}

impl Member {
    fn table(self) -> &'static str {
        match self {
            Member::Datastore => DATASTORES,
            Member::Network => NETWORKS,
        }
    }

    fn pool(self) -> &'static str {
        match self {
            Member::Datastore => "datastore_pool",
            Member::Network => "vnet_pool",
        }
    }
}

pub const SELECT: &str = "SELECT oid, name, template FROM cluster_pool";

fn ids(c: &Conn, sql: &str, oid: i64) -> crate::sql::Result<Vec<i64>> {
    c.prepare_cached(sql)?
        .query_map([oid], |r| r.get(0))?
        .collect()
}

pub fn read(c: &Conn, r: &Row) -> crate::sql::Result<ClusterRow> {
    let oid: i64 = r.get(0)?;
    Ok(ClusterRow {
        oid,
        name: r.get(1)?,
        template: r.get(2)?,
        hosts: ids(
            c,
            "SELECT oid FROM host_pool WHERE cluster_id = ?1 ORDER BY oid",
            oid,
        )?,
        datastores: ids(
            c,
            "SELECT oid FROM cluster_datastore_relation WHERE cid = ?1 ORDER BY oid",
            oid,
        )?,
        vnets: ids(
            c,
            "SELECT oid FROM cluster_network_relation WHERE cid = ?1 ORDER BY oid",
            oid,
        )?,
        plan: super::plan::load(c, oid)?.map(|(_, state, body)| (state, body)),
    })
}

/// Cluster `oid`, if it exists.
pub fn load(c: &Conn, oid: i64) -> crate::sql::Result<Option<ClusterRow>> {
    use crate::sql::Optional;
    c.prepare_cached(&format!("{SELECT} WHERE oid = ?1"))?
        .query_row([oid], |r| read(c, r))
        .optional()
}

/// The clusters datastore or network `oid` belongs to, ascending.
pub fn clusters_of(c: &Conn, member: Member, oid: i64) -> crate::sql::Result<Vec<i64>> {
    ids(
        c,
        &format!(
            "SELECT cid FROM {} WHERE oid = ?1 ORDER BY cid",
            member.table()
        ),
        oid,
    )
}

/// SQL of the system datastore a deployment on cluster `cid` (an SQL expression) uses when none
/// is named, as `Cluster::get_default_system_ds`: its lowest-id datastore of type SYSTEM_DS (1);
/// NULL if it has none.
pub fn default_system_ds_sql(cid: &str) -> String {
    format!(
        "(SELECT MIN(d.oid) FROM {DATASTORES} m JOIN datastore_pool d ON d.oid = m.oid
          WHERE m.cid = {cid} AND d.type = 1)"
    )
}

/// [`default_system_ds_sql`] of cluster `cid`: `None` if the cluster does not exist,
/// `Some(None)` if it holds no system datastore.
pub fn default_system_ds(c: &Conn, cid: i64) -> crate::sql::Result<Option<Option<i64>>> {
    use crate::sql::Optional;
    c.prepare_cached(&format!(
        "SELECT {} FROM cluster_pool WHERE oid = ?1",
        default_system_ds_sql("?1")
    ))?
    .query_row([cid], |r| r.get(0))
    .optional()
}

/// The ids of every cluster.
pub fn all_ids(c: &Conn) -> crate::sql::Result<Vec<i64>> {
    let mut st = c.prepare_cached("SELECT oid FROM cluster_pool ORDER BY oid")?;
    let rows = st.query_map((), |r| r.get(0))?;
    rows.collect()
}

/// The template of a new cluster: `Cluster`'s constructor adds an empty RESERVED_CPU and
/// RESERVED_MEM to every one.
pub const NEW_TEMPLATE: &str = "RESERVED_CPU = \"\"\nRESERVED_MEM = \"\"";

pub fn insert(name: &str) -> SqlStmt {
    insert_next(
        TABLE,
        "name, template",
        "?1, ?2",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Text(NEW_TEMPLATE.to_string()),
        ],
    )
}

/// Deletes cluster `oid` only while it holds no host, datastore or network: the guard matches
/// nothing otherwise, whatever ran since the leader looked.
pub fn delete_if_empty(oid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "SELECT 1 FROM cluster_pool WHERE oid = ?1
               AND NOT EXISTS (SELECT 1 FROM host_pool WHERE cluster_id = ?1)
               AND NOT EXISTS (SELECT 1 FROM cluster_datastore_relation WHERE cid = ?1)
               AND NOT EXISTS (SELECT 1 FROM cluster_network_relation WHERE cid = ?1)",
            vec![SqlValue::Int(oid)],
        )
        .must_match(),
        SqlStmt::new(
            "DELETE FROM cluster_pool WHERE oid = ?1",
            vec![SqlValue::Int(oid)],
        )
        .must_match(),
    ]
}

/// Moves host `hid` to cluster `cid`; matches nothing when either is gone.
pub fn move_host(cid: i64, hid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "SELECT oid FROM cluster_pool WHERE oid = ?1",
            vec![SqlValue::Int(cid)],
        )
        .must_match(),
        SqlStmt::new(
            "UPDATE host_pool SET cluster_id = ?1 WHERE oid = ?2",
            vec![SqlValue::Int(cid), SqlValue::Int(hid)],
        )
        .must_match(),
        // `RequestManagerCluster`'s host move: each VM on the host has its current record in
        // the new cluster (`set_cid`, `update_history`).
        SqlStmt::new(
            "UPDATE history SET cid = ?1
             WHERE vid IN (SELECT oid FROM vm_pool WHERE hid = ?2)
               AND seq = (SELECT MAX(hl.seq) FROM history hl WHERE hl.vid = history.vid)",
            vec![SqlValue::Int(cid), SqlValue::Int(hid)],
        ),
    ]
}

/// Puts `member` `oid` in cluster `cid` (kept if already there); matches nothing when either
/// is gone.
pub fn add(member: Member, cid: i64, oid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            &format!(
                "SELECT 1 FROM cluster_pool WHERE oid = ?1
                   AND EXISTS (SELECT 1 FROM {} WHERE oid = ?2)",
                member.pool()
            ),
            vec![SqlValue::Int(cid), SqlValue::Int(oid)],
        )
        .must_match(),
        SqlStmt::new(
            &format!(
                "INSERT OR IGNORE INTO {} (cid, oid) VALUES (?1, ?2)",
                member.table()
            ),
            vec![SqlValue::Int(cid), SqlValue::Int(oid)],
        ),
    ]
}

/// Takes `member` `oid` out of cluster `cid` (nothing to do if it was not in it).
pub fn remove(member: Member, cid: i64, oid: i64) -> SqlStmt {
    SqlStmt::new(
        &format!("DELETE FROM {} WHERE cid = ?1 AND oid = ?2", member.table()),
        vec![SqlValue::Int(cid), SqlValue::Int(oid)],
    )
}

/// Takes `member` `oid` out of every cluster (it is being deleted).
pub fn forget(member: Member, oid: i64) -> SqlStmt {
    SqlStmt::new(
        &format!("DELETE FROM {} WHERE oid = ?1", member.table()),
        vec![SqlValue::Int(oid)],
    )
}

/// Puts the `member` an allocation in the same transaction is creating (the next oid of its
/// pool) in cluster `cid`. Runs before the pool's counter moves.
pub fn add_new(member: Member, cid: i64) -> SqlStmt {
    SqlStmt::new(
        &format!(
            "INSERT INTO {} (cid, oid) SELECT ?1, last_oid + 1 FROM pool_control
             WHERE tablename = '{}'",
            member.table(),
            member.pool()
        ),
        vec![SqlValue::Int(cid)],
    )
    .must_match()
}

/// The clusters a VM may run in: those that hold the datastore of every image in `images` and
/// every network in `vnets` (OpenNebula's automatic requirements). `None` when it names none,
/// so any cluster will do. An image or network that does not exist constrains nothing.
pub fn allowed_for(
    c: &Conn,
    images: &[i64],
    vnets: &[i64],
) -> crate::sql::Result<Option<Vec<i64>>> {
    use crate::sql::Optional;
    let mut allowed: Option<Vec<i64>> = None;
    let mut narrow = |found: Vec<i64>| {
        allowed = Some(match allowed.take() {
            None => found,
            Some(now) => now.into_iter().filter(|c| found.contains(c)).collect(),
        });
    };
    for &image in images {
        let ds: Option<i64> = c
            .prepare_cached("SELECT datastore_id FROM image_pool WHERE oid = ?1")?
            .query_row([image], |r| r.get(0))
            .optional()?;
        if let Some(ds) = ds {
            narrow(clusters_of(c, Member::Datastore, ds)?);
        }
    }
    for &vnet in vnets {
        let exists: bool = c
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM vnet_pool WHERE oid = ?1)")?
            .query_row([vnet], |r| r.get(0))?;
        if exists {
            narrow(clusters_of(c, Member::Network, vnet)?);
        }
    }
    Ok(allowed)
}
