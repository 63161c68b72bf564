//! The leases of virtual networks' address ranges (`vnet_lease`): which address of which range
//! is taken, and by what. OpenNebula keeps them in each network's body (`ALLOCATED`); here each
//! is a row, so taking an address is an insert that two concurrent writers cannot both make,
//! and freeing a VM's addresses is one delete in the transaction that ends it.

use crate::sql::Conn;
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "vnet_lease";

const VM: i64 = 0x10_0000_0000;
const NET: i64 = 0x40_0000_0000;
const VROUTER: i64 = 0x4_0000_0000_0000;

/// What holds a lease, stored as OpenNebula's `PoolObjectSQL::ObjectType` bits (its
/// `ALLOCATED` pairs are this code with the owner's id in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A VM's NIC; VM -1 is an address put on hold (`one.vn.hold`).
    Vm,
    /// A reservation: the network that holds the range.
    Net,
    /// A virtual router's floating address.
    Vrouter,
}

impl Holder {
    pub fn code(self) -> i64 {
        match self {
            Holder::Vm => VM,
            Holder::Net => NET,
            Holder::Vrouter => VROUTER,
        }
    }

    pub fn from_code(code: i64) -> Option<Holder> {
        match code {
            VM => Some(Holder::Vm),
            NET => Some(Holder::Net),
            VROUTER => Some(Holder::Vrouter),
            _ => None,
        }
    }

    /// The element a lease of this holder is shown with (`<VM>`, `<VNET>`, `<VROUTER>`).
    pub fn element(self) -> &'static str {
        match self {
            Holder::Vm => "VM",
            Holder::Net => "VNET",
            Holder::Vrouter => "VROUTER",
        }
    }
}

/// One taken address: index `idx` of range `ar_id`, held by `owner` of kind `holder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub ar_id: i64,
    pub idx: i64,
    pub holder: Holder,
    pub owner: i64,
}

/// The leases of network `vnet`, by range then index.
pub fn of_vnet(c: &Conn, vnet: i64) -> crate::sql::Result<Vec<Lease>> {
    let mut st = c.prepare_cached(
        "SELECT ar_id, idx, kind, owner FROM vnet_lease WHERE vnet_oid = ?1 ORDER BY ar_id, idx",
    )?;
    let rows = st.query_map([SqlValue::Int(vnet)], |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<i64>(1)?,
            r.get::<i64>(2)?,
            r.get::<i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ar_id, idx, kind, owner) = row?;
        // A kind this version does not know is left out of the figures rather than misread.
        if let Some(holder) = Holder::from_code(kind) {
            out.push(Lease {
                ar_id,
                idx,
                holder,
                owner,
            });
        }
    }
    Ok(out)
}

/// Takes address `idx` of range `ar_id` of network `vnet` for `holder` `owner`, only while it is
/// free and the network's template (where its ranges live) is still `template`: a statement
/// that matched nothing means another write came first, and the caller computes again.
/// `owner_sql` is the owner as SQL (`?5` for a known id, or a sub-select for an object being
/// created in the same transaction); `owner` is bound as `?5`.
pub fn take(
    vnet: i64,
    ar_id: i64,
    idx: i64,
    holder: Holder,
    owner: OwnerRef,
    template: &str,
) -> SqlStmt {
    SqlStmt::new(
        &format!(
            "INSERT INTO vnet_lease (vnet_oid, ar_id, idx, kind, owner)
             SELECT ?1, ?2, ?3, ?4, {} FROM vnet_pool
             WHERE oid = ?1 AND template = ?6
             AND NOT EXISTS (SELECT 1 FROM vnet_lease AS l
                             WHERE l.vnet_oid = ?1 AND l.ar_id = ?2 AND l.idx = ?3)",
            owner.sql()
        ),
        vec![
            SqlValue::Int(vnet),
            SqlValue::Int(ar_id),
            SqlValue::Int(idx),
            SqlValue::Int(holder.code()),
            SqlValue::Int(owner.id()),
            SqlValue::Text(template.to_string()),
        ],
    )
    .must_match()
}

/// Takes the `size` addresses of range `ar_id` of `vnet` from index `first` for `owner`, all or
/// none: only while the network's template is still `template` and none of them is taken. One
/// statement whatever the size, so a reservation's log entry does not grow with it. The run
/// is numbered as a binary tree (n -> 2n, 2n + 1), so its recursion is log2(size) deep:
/// MariaDB stops a recursive query at `max_recursive_iterations` (1000 by default).
pub fn take_run(
    vnet: i64,
    ar_id: i64,
    first: i64,
    size: i64,
    holder: Holder,
    owner: OwnerRef,
    template: &str,
) -> SqlStmt {
    SqlStmt::new(
        &format!(
            "INSERT INTO vnet_lease (vnet_oid, ar_id, idx, kind, owner)
             WITH RECURSIVE run (n) AS
               (SELECT 1 UNION ALL SELECT run.n * 2 + b.bit
                FROM run, (SELECT 0 AS bit UNION ALL SELECT 1) AS b
                WHERE run.n * 2 + b.bit <= ?7)
             SELECT ?1, ?2, ?3 + run.n - 1, ?4, {} FROM run
             WHERE EXISTS (SELECT 1 FROM vnet_pool WHERE oid = ?1 AND template = ?6)
             AND NOT EXISTS (SELECT 1 FROM vnet_lease AS l WHERE l.vnet_oid = ?1
                             AND l.ar_id = ?2 AND l.idx >= ?3 AND l.idx < ?3 + ?7)",
            owner.sql()
        ),
        vec![
            SqlValue::Int(vnet),
            SqlValue::Int(ar_id),
            SqlValue::Int(first),
            SqlValue::Int(holder.code()),
            SqlValue::Int(owner.id()),
            SqlValue::Text(template.to_string()),
            SqlValue::Int(size),
        ],
    )
    .must_match()
}

/// Who a lease being taken is for.
#[derive(Debug, Clone, Copy)]
pub enum OwnerRef<'a> {
    Id(i64),
    /// The object the same transaction is creating in this pool (its id is the counter's next).
    NextOf(&'a str),
}

impl OwnerRef<'_> {
    /// The owner as SQL: parameter 5, or the id the same transaction is giving a new object.
    fn sql(&self) -> String {
        match self {
            OwnerRef::Id(_) => "?5".to_string(),
            OwnerRef::NextOf(pool) => format!(
                "(SELECT last_oid + 1 FROM pool_control WHERE tablename = '{}')",
                pool.replace('\'', "")
            ),
        }
    }

    fn id(&self) -> i64 {
        match self {
            OwnerRef::Id(id) => *id,
            OwnerRef::NextOf(_) => -1,
        }
    }
}

/// Frees address `idx` of range `ar_id` of `vnet` only if `holder` `owner` holds it.
pub fn free(vnet: i64, ar_id: i64, idx: i64, holder: Holder, owner: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vnet_lease WHERE vnet_oid = ?1 AND ar_id = ?2 AND idx = ?3
         AND kind = ?4 AND owner = ?5",
        vec![
            SqlValue::Int(vnet),
            SqlValue::Int(ar_id),
            SqlValue::Int(idx),
            SqlValue::Int(holder.code()),
            SqlValue::Int(owner),
        ],
    )
    .must_match()
}

/// Frees every address `holder` `owner` holds, in every network (a VM is done).
pub fn free_all_of(holder: Holder, owner: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vnet_lease WHERE kind = ?1 AND owner = ?2",
        vec![SqlValue::Int(holder.code()), SqlValue::Int(owner)],
    )
}

/// Frees the addresses of every VM that is DONE (placed after the statements that end VMs,
/// one VM or a driver step's many).
pub fn free_done_vms() -> SqlStmt {
    SqlStmt::new(
        &format!(
            "DELETE FROM vnet_lease WHERE kind = {VM} AND owner IN
             (SELECT oid FROM vm_pool WHERE state = 6)"
        ),
        vec![],
    )
}

/// Frees every address of range `ar_id` of `vnet` (its range is removed).
pub fn free_range(vnet: i64, ar_id: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vnet_lease WHERE vnet_oid = ?1 AND ar_id = ?2",
        vec![SqlValue::Int(vnet), SqlValue::Int(ar_id)],
    )
}

/// Every lease of `vnet` goes (the network is deleted).
pub fn free_vnet(vnet: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vnet_lease WHERE vnet_oid = ?1",
        vec![SqlValue::Int(vnet)],
    )
}

/// A statement that matches only while range `ar_id` of `vnet` has no lease: placed before a
/// range's removal, it refuses it when an address was taken meanwhile.
pub fn none_in_range(vnet: i64, ar_id: i64) -> SqlStmt {
    SqlStmt::new(
        "SELECT 1 FROM (SELECT 1 AS one) AS free_range WHERE NOT EXISTS
         (SELECT 1 FROM vnet_lease WHERE vnet_oid = ?1 AND ar_id = ?2)",
        vec![SqlValue::Int(vnet), SqlValue::Int(ar_id)],
    )
    .must_match()
}

/// SQL of how many addresses of network `?N` the VMs and virtual routers of owner column
/// `col` = `?M` hold (the NETWORK quota's LEASES; a router's are its floating addresses).
pub fn leases_usage_sql(col: &str, owner_param: usize, vnet_param: usize) -> String {
    format!(
        "((SELECT COUNT(*) FROM vnet_lease AS l JOIN vm_pool AS v ON v.oid = l.owner
          WHERE l.kind = {vm} AND l.vnet_oid = ?{vnet_param} AND v.{col} = ?{owner_param})
        + (SELECT COUNT(*) FROM vnet_lease AS l JOIN vrouter_pool AS r ON r.oid = l.owner
          WHERE l.kind = {vr} AND l.vnet_oid = ?{vnet_param} AND r.{col} = ?{owner_param}))",
        vm = Holder::Vm.code(),
        vr = Holder::Vrouter.code()
    )
}

/// What each owner (`col` of `vm_pool` and `vrouter_pool`) holds in each network: leases by
/// (owner, network).
pub fn leases_usage(
    c: &Conn,
    col: &str,
    only: Option<i64>,
) -> crate::sql::Result<std::collections::BTreeMap<(i64, i64), f64>> {
    let filter = if only.is_some() {
        " WHERE u.who = ?1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT u.who, u.vnet, COUNT(*) FROM
           (SELECT v.{col} AS who, l.vnet_oid AS vnet FROM vnet_lease AS l JOIN vm_pool AS v
            ON v.oid = l.owner WHERE l.kind = {vm}
            UNION ALL
            SELECT r.{col} AS who, l.vnet_oid AS vnet FROM vnet_lease AS l
            JOIN vrouter_pool AS r ON r.oid = l.owner WHERE l.kind = {vr}) AS u
         {filter} GROUP BY u.who, u.vnet",
        vm = Holder::Vm.code(),
        vr = Holder::Vrouter.code()
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

/// Matches only while range `ar_id` of `vnet` has no lease at index `size` or above (a range
/// that shrinks to `size`).
pub fn none_from(vnet: i64, ar_id: i64, size: i64) -> SqlStmt {
    SqlStmt::new(
        "SELECT 1 FROM (SELECT 1 AS one) AS fits WHERE NOT EXISTS
         (SELECT 1 FROM vnet_lease WHERE vnet_oid = ?1 AND ar_id = ?2 AND idx >= ?3)",
        vec![
            SqlValue::Int(vnet),
            SqlValue::Int(ar_id),
            SqlValue::Int(size),
        ],
    )
    .must_match()
}

/// Matches only while network `vnet` has no lease at all (it may be deleted).
pub fn none_in_vnet(vnet: i64) -> SqlStmt {
    SqlStmt::new(
        "SELECT 1 FROM (SELECT 1 AS one) AS unused WHERE NOT EXISTS
         (SELECT 1 FROM vnet_lease WHERE vnet_oid = ?1)",
        vec![SqlValue::Int(vnet)],
    )
    .must_match()
}

/// Frees address `idx` of range `ar_id` of `vnet` if it is on hold (held by VM -1); nothing
/// otherwise, as `one.vn.release` leaves other addresses alone.
pub fn release_held(vnet: i64, ar_id: i64, idx: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vnet_lease WHERE vnet_oid = ?1 AND ar_id = ?2 AND idx = ?3
         AND kind = ?4 AND owner = -1",
        vec![
            SqlValue::Int(vnet),
            SqlValue::Int(ar_id),
            SqlValue::Int(idx),
            SqlValue::Int(VM),
        ],
    )
}

/// Gives back to range `ar_id` of network `parent` the `size` addresses from index `first`
/// that reservation `owner` held (`free_addr_by_range`).
pub fn free_reserved(parent: i64, ar_id: i64, owner: i64, first: i64, size: i64) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vnet_lease WHERE vnet_oid = ?1 AND ar_id = ?2 AND kind = ?3
         AND owner = ?4 AND idx >= ?5 AND idx < ?6",
        vec![
            SqlValue::Int(parent),
            SqlValue::Int(ar_id),
            SqlValue::Int(NET),
            SqlValue::Int(owner),
            SqlValue::Int(first),
            SqlValue::Int(first + size),
        ],
    )
}
