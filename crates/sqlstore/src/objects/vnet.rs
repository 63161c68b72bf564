//! Virtual networks (`vnet_pool`).

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "vnet_pool";

#[derive(Debug, Clone, PartialEq)]
pub struct VnetRow {
    pub head: Head,
    pub lock: Lock,
    pub state: i64,
    pub vn_mad: String,
    pub bridge: String,
    pub template: String,
    /// The clusters it belongs to, ascending.
    pub clusters: Vec<i64>,
    /// The network a reservation was taken from; -1 for others.
    pub parent: i64,
    /// The addresses taken from its ranges.
    pub leases: Vec<super::lease::Lease>,
    /// The virtual routers with a NIC in it, ascending.
    pub vrouters: Vec<i64>,
}

has_owner!(lockable VnetRow);

fn read(conn: &Conn, r: &Row) -> crate::sql::Result<VnetRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    let clusters =
        super::cluster::clusters_of(conn, super::cluster::Member::Network, head.owned.oid)?;
    let leases = super::lease::of_vnet(conn, head.owned.oid)?;
    let vrouters = super::vrouter::routers_in(conn, head.owned.oid)?;
    Ok(VnetRow {
        leases,
        vrouters,
        head,
        lock,
        clusters,
        state: r.get(c)?,
        vn_mad: r.get(c + 1)?,
        bridge: r.get(c + 2)?,
        template: r.get(c + 3)?,
        parent: r.get(c + 4)?,
    })
}

pub static ROWS: Rows<VnetRow> = Rows {
    select: owned_select!(
        lockable "vnet_pool",
        "n",
        "n.state, n.vn_mad, n.bridge, n.template, n.parent"
    ),
    alias: "n",
    read,
};

/// What a new network is made of.
pub struct NewVnet {
    pub name: String,
    pub uid: i64,
    pub gid: i64,
    pub perms: i64,
    pub state: i64,
    pub vn_mad: String,
    /// Empty: `onebr<oid>`.
    pub bridge: String,
    pub template: String,
    /// The network a reservation is taken from; -1 for others.
    pub parent: i64,
}

/// Stands in a new network's template for its id (its default BRIDGE, `onebr<id>`).
pub const ID_MARK: &str = "__ONEHA_VNID__";

pub fn insert(n: NewVnet) -> SqlStmt {
    let template = if n.template.contains(ID_MARK) {
        format!("REPLACE(?8, '{ID_MARK}', last_oid + 1)")
    } else {
        "?8".to_string()
    };
    insert_next(
        TABLE,
        "name, uid, gid, perms, state, vn_mad, bridge, template, parent",
        &format!(
            "?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?7 = '' THEN 'onebr' || (last_oid + 1) ELSE ?7 END, \
             {template}, ?9"
        ),
        vec![
            SqlValue::Text(n.name),
            SqlValue::Int(n.uid),
            SqlValue::Int(n.gid),
            SqlValue::Int(n.perms),
            SqlValue::Int(n.state),
            SqlValue::Text(n.vn_mad),
            SqlValue::Text(n.bridge),
            SqlValue::Text(n.template),
            SqlValue::Int(n.parent),
        ],
    )
}

/// Deletes network `oid` only while it is in `state`.
pub fn delete_in_state(oid: i64, state: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "DELETE FROM vnet_pool WHERE oid = ?1 AND state = ?2",
            vec![SqlValue::Int(oid), SqlValue::Int(state)],
        )
        .must_match(),
        super::cluster::forget(super::cluster::Member::Network, oid),
        super::lease::free_vnet(oid),
    ]
}

/// Network `oid` moves from `from` to `to` (`one.vn.recover`), only if still in `from`.
pub fn set_state(oid: i64, from: i64, to: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vnet_pool SET state = ?2 WHERE oid = ?1 AND state = ?3",
        vec![SqlValue::Int(oid), SqlValue::Int(to), SqlValue::Int(from)],
    )
    .must_match()
}
