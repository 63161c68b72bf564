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
    /// VLAN_ID when AUTOMATIC_VLAN_ID chose it (it is then not in the template).
    pub vlan_auto: AutoVlan,
    /// OUTER_VLAN_ID when AUTOMATIC_OUTER_VLAN_ID chose it.
    pub outer_vlan_auto: AutoVlan,
}

/// A network's VLAN_ID (or OUTER_VLAN_ID) as `VirtualNetwork` keeps it beside its template:
/// given in the template, or chosen by oned (`VLAN_ID_AUTOMATIC`), which a driver without
/// VLANs asked for AUTOMATIC_VLAN_ID leaves unassigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoVlan {
    /// The template's VLAN_ID, if any.
    #[default]
    No,
    /// Automatic, and no id: the driver has no VLANs.
    Unassigned,
    /// Automatic: this id.
    Id(i64),
}

impl AutoVlan {
    /// As stored: -1 not automatic, -2 automatic without an id, else the id.
    pub fn column(self) -> i64 {
        match self {
            AutoVlan::No => -1,
            AutoVlan::Unassigned => -2,
            AutoVlan::Id(id) => id,
        }
    }

    pub fn from_column(v: i64) -> AutoVlan {
        match v {
            -1 => AutoVlan::No,
            v if v < 0 => AutoVlan::Unassigned,
            v => AutoVlan::Id(v),
        }
    }

    pub fn automatic(self) -> bool {
        self != AutoVlan::No
    }
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
        vlan_auto: AutoVlan::from_column(r.get(c + 5)?),
        outer_vlan_auto: AutoVlan::from_column(r.get(c + 6)?),
    })
}

pub static ROWS: Rows<VnetRow> = Rows {
    select: owned_select!(
        lockable "vnet_pool",
        "n",
        "n.state, n.vn_mad, n.bridge, n.template, n.parent, n.vlan_auto, n.outer_vlan_auto"
    ),
    alias: "n",
    read,
};

/// What a new network is made of.
#[derive(Debug, Clone)]
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
    pub vlan_auto: AutoVlan,
    pub outer_vlan_auto: AutoVlan,
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
        "name, uid, gid, perms, state, vn_mad, bridge, template, parent, vlan_auto, outer_vlan_auto",
        &format!(
            "?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?7 = '' THEN 'onebr' || (last_oid + 1) ELSE ?7 END, \
             {template}, ?9, ?10, ?11"
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
            SqlValue::Int(n.vlan_auto.column()),
            SqlValue::Int(n.outer_vlan_auto.column()),
        ],
    )
}

/// The VLAN ids oned chose for networks of the drivers that share `VirtualNetworkPool`'s VLAN
/// bitmap (802.1Q, ovswitch, the inner id of ovswitch_vxlan): freed when their network goes.
pub fn auto_vlans_taken(c: &Conn) -> crate::sql::Result<std::collections::BTreeSet<i64>> {
    let mut st = c.prepare_cached(
        "SELECT vlan_auto FROM vnet_pool WHERE vlan_auto >= 0
         AND vn_mad IN ('802.1Q', 'ovswitch', 'ovswitch_vxlan')",
    )?;
    let mut out = std::collections::BTreeSet::new();
    st.for_each((), |r| {
        out.insert(r.get::<i64>(0)?);
        Ok(())
    })?;
    Ok(out)
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

/// The bridge of network `oid` (`one.vn.update` naming another).
pub fn set_bridge(oid: i64, bridge: &str) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vnet_pool SET bridge = ?2 WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Text(bridge.to_string())],
    )
    .must_match()
}

/// Network `oid` moves from `from` to `to` (`one.vn.recover`), only if still in `from`.
pub fn set_state(oid: i64, from: i64, to: i64) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vnet_pool SET state = ?2 WHERE oid = ?1 AND state = ?3",
        vec![SqlValue::Int(oid), SqlValue::Int(to), SqlValue::Int(from)],
    )
    .must_match()
}

/// The state hooks' executions for network `oid` moving to state `to`, whose XML is then
/// `object` (`VirtualNetworkPool::update` sends it in the message); placed while the network
/// is still there.
pub fn state_events(oid: i64, to: &str, object: &str, now: i64) -> Vec<SqlStmt> {
    super::hook::state_events(super::hook::StateChange {
        resource: "NET",
        table: TABLE,
        state: to,
        lcm_state: "",
        which: "o.oid = ?6",
        params: vec![SqlValue::Int(oid)],
        now,
        object,
    })
}

/// Who holds the leases of network `vnet`, by (holder kind code, id): each VM's, reservation's
/// and router's owner, group and permissions (for `one.vn.info`'s visibility).
pub fn lease_holders(
    c: &Conn,
    vnet: i64,
) -> crate::sql::Result<std::collections::BTreeMap<(i64, i64), super::Owned>> {
    use super::lease::Holder;
    let mut out = std::collections::BTreeMap::new();
    for (holder, table) in [
        (Holder::Vm, "vm_pool"),
        (Holder::Net, "vnet_pool"),
        (Holder::Vrouter, "vrouter_pool"),
    ] {
        let mut st = c.prepare_cached(&format!(
            "SELECT DISTINCT o.oid, o.uid, o.gid, o.perms FROM {table} AS o
             JOIN vnet_lease AS l ON l.owner = o.oid AND l.kind = ?2 WHERE l.vnet_oid = ?1"
        ))?;
        let rows = st.query_map([SqlValue::Int(vnet), SqlValue::Int(holder.code())], |r| {
            Ok(super::Owned {
                oid: r.get(0)?,
                uid: r.get(1)?,
                gid: r.get(2)?,
                perms: r.get(3)?,
            })
        })?;
        for o in rows {
            let o = o?;
            out.insert((holder.code(), o.oid), o);
        }
    }
    Ok(out)
}
