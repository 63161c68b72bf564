//! Virtual data centers (`vdc_pool`, `vdc_group`, `vdc_resource`): groups of users given
//! clusters, hosts, datastores and networks of zones. What a VDC grants is ACL rules
//! (`@group HOST/%cluster MANAGE #zone`...), made and removed with its groups and resources in
//! the same transaction, as OpenNebula's `Vdc` does. VDC 0 `default` holds group `users` and
//! every cluster of zone 0; every new group joins it.

use wire::acl::{ALL_ID, CLUSTER_ID, DATASTORE, GROUP_ID, HOST, INDIVIDUAL_ID, MANAGE, NET, USE};

use crate::sql::{Conn, Row};
use crate::{SqlStmt, SqlValue};

use super::insert_next;

pub const TABLE: &str = "vdc_pool";
/// The VDC every new group joins.
pub const DEFAULT: i64 = 0;
/// A resource id standing for every resource of its kind in its zone.
pub const ALL: i64 = -10;

/// The kinds of resources a VDC holds, as its XML and its messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cluster,
    Host,
    Datastore,
    Vnet,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Cluster, Kind::Host, Kind::Datastore, Kind::Vnet];

    /// The column value and the XML element (`VNET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "CLUSTER",
            Kind::Host => "HOST",
            Kind::Datastore => "DATASTORE",
            Kind::Vnet => "VNET",
        }
    }

    /// The name OpenNebula's messages use (`NET`, as `PoolObjectSQL::type_to_str`).
    pub fn object_name(self) -> &'static str {
        match self {
            Kind::Vnet => "NET",
            k => k.as_str(),
        }
    }

    /// The (ACL resource type, rights) each granted resource of this kind gives, in ascending
    /// type order (OpenNebula's `DEFAULT_VDC_*_ACL` defaults).
    fn grants(self) -> &'static [(u64, u64)] {
        match self {
            Kind::Cluster => &[(HOST, MANAGE), (NET, USE), (DATASTORE, USE)],
            Kind::Host => &[(HOST, MANAGE)],
            Kind::Datastore => &[(DATASTORE, USE)],
            Kind::Vnet => &[(NET, USE)],
        }
    }

    fn from_str(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

use super::acl::acl_counter_past_new_rule;
pub use super::acl::{add_rule, del_rule, Rule};

/// The rules group `gid` gets from resource `rid` of `kind` in `zone`.
pub fn rules(kind: Kind, zone: i64, rid: i64, gid: i64) -> Vec<Rule> {
    let selector = if rid == ALL {
        ALL_ID
    } else if kind == Kind::Cluster {
        CLUSTER_ID | rid as u64
    } else {
        INDIVIDUAL_ID | rid as u64
    };
    kind.grants()
        .iter()
        .map(|(t, rights)| {
            (
                GROUP_ID | gid as u64,
                t | selector,
                *rights,
                INDIVIDUAL_ID | zone as u64,
            )
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdcRow {
    pub oid: i64,
    pub name: String,
    pub template: String,
    pub groups: Vec<i64>,
    /// (kind, zone, id), ascending by kind then zone then id.
    pub resources: Vec<(Kind, i64, i64)>,
}

impl VdcRow {
    /// The (zone, id) entries of `kind`, ascending.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.resources
            .iter()
            .filter(move |(k, ..)| *k == kind)
            .map(|(_, z, r)| (*z, *r))
    }
}

pub const SELECT: &str = "SELECT oid, name, template FROM vdc_pool";

pub fn read(c: &Conn, r: &Row) -> crate::sql::Result<VdcRow> {
    let oid: i64 = r.get(0)?;
    let groups = c
        .prepare_cached("SELECT gid FROM vdc_group WHERE vdc = ?1 ORDER BY gid")?
        .query_map([oid], |r| r.get(0))?
        .collect::<crate::sql::Result<Vec<i64>>>()?;
    let mut resources = c
        .prepare_cached("SELECT kind, zone, rid FROM vdc_resource WHERE vdc = ?1")?
        .query_map([oid], |r| {
            Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?))
        })?
        .collect::<crate::sql::Result<Vec<_>>>()?
        .into_iter()
        .filter_map(|(k, z, r)| Some((Kind::from_str(&k)?, z, r)))
        .collect::<Vec<_>>();
    resources.sort_by_key(|(k, z, r)| (Kind::ALL.iter().position(|x| x == k), *z, *r));
    Ok(VdcRow {
        oid,
        name: r.get(1)?,
        template: r.get(2)?,
        groups,
        resources,
    })
}

/// VDC `oid`, if it exists.
pub fn load(c: &Conn, oid: i64) -> crate::sql::Result<Option<VdcRow>> {
    use crate::sql::Optional;
    c.prepare_cached(&format!("{SELECT} WHERE oid = ?1"))?
        .query_row([oid], |r| read(c, r))
        .optional()
}

/// The VDCs group `gid` is in.
pub fn of_group(c: &Conn, gid: i64) -> crate::sql::Result<Vec<VdcRow>> {
    let ids = c
        .prepare_cached("SELECT vdc FROM vdc_group WHERE gid = ?1 ORDER BY vdc")?
        .query_map([gid], |r| r.get(0))?
        .collect::<crate::sql::Result<Vec<i64>>>()?;
    let mut out = Vec::new();
    for id in ids {
        out.extend(load(c, id)?);
    }
    Ok(out)
}

pub fn insert(name: &str, template: &str) -> SqlStmt {
    insert_next(
        TABLE,
        "name, template",
        "?1, ?2",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Text(template.to_string()),
        ],
    )
}

/// Group `gid` joins VDC `vdc` (which holds `resources`), with the rules they grant it; matches
/// nothing if the VDC went or the group is in it already.
pub fn add_group(vdc: i64, gid: i64, resources: &[(Kind, i64, i64)]) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "INSERT INTO vdc_group (vdc, gid) SELECT oid, ?2 FROM vdc_pool WHERE oid = ?1
           AND NOT EXISTS (SELECT 1 FROM vdc_group WHERE vdc = ?1 AND gid = ?2)",
        vec![SqlValue::Int(vdc), SqlValue::Int(gid)],
    )
    .must_match()];
    for (k, z, r) in resources {
        for rule in rules(*k, *z, *r, gid) {
            stmts.extend(add_rule(rule));
        }
    }
    stmts
}

/// Group `gid` leaves VDC `vdc`, losing the rules its resources granted; matches nothing if
/// it was not in it.
pub fn del_group(vdc: i64, gid: i64, resources: &[(Kind, i64, i64)]) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "DELETE FROM vdc_group WHERE vdc = ?1 AND gid = ?2",
        vec![SqlValue::Int(vdc), SqlValue::Int(gid)],
    )
    .must_match()];
    for (k, z, r) in resources {
        stmts.extend(rules(*k, *z, *r, gid).into_iter().map(del_rule));
    }
    stmts
}

/// Resource `rid` of `kind` in `zone` joins VDC `vdc`, with its rules for each of `groups`;
/// matches nothing if the VDC went or holds it already.
pub fn add_resource(vdc: i64, kind: Kind, zone: i64, rid: i64, groups: &[i64]) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "INSERT INTO vdc_resource (vdc, kind, zone, rid) SELECT oid, ?2, ?3, ?4 FROM vdc_pool
         WHERE oid = ?1 AND NOT EXISTS (SELECT 1 FROM vdc_resource
           WHERE vdc = ?1 AND kind = ?2 AND zone = ?3 AND rid = ?4)",
        vec![
            SqlValue::Int(vdc),
            SqlValue::Text(kind.as_str().into()),
            SqlValue::Int(zone),
            SqlValue::Int(rid),
        ],
    )
    .must_match()];
    for g in groups {
        for rule in rules(kind, zone, rid, *g) {
            stmts.extend(add_rule(rule));
        }
    }
    stmts
}

/// Resource `rid` of `kind` in `zone` leaves VDC `vdc`, with the rules it granted `groups`;
/// matches nothing if it was not there.
pub fn del_resource(vdc: i64, kind: Kind, zone: i64, rid: i64, groups: &[i64]) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        "DELETE FROM vdc_resource WHERE vdc = ?1 AND kind = ?2 AND zone = ?3 AND rid = ?4",
        vec![
            SqlValue::Int(vdc),
            SqlValue::Text(kind.as_str().into()),
            SqlValue::Int(zone),
            SqlValue::Int(rid),
        ],
    )
    .must_match()];
    for g in groups {
        stmts.extend(rules(kind, zone, rid, *g).into_iter().map(del_rule));
    }
    stmts
}

/// Deletes VDC `v` with its entries and every rule it granted.
pub fn delete(v: &VdcRow) -> Vec<SqlStmt> {
    let mut stmts = vec![
        super::delete(TABLE, v.oid),
        super::acl::drop_rules_on(wire::acl::VDC, v.oid),
    ];
    for sql in [
        "DELETE FROM vdc_group WHERE vdc = ?1",
        "DELETE FROM vdc_resource WHERE vdc = ?1",
    ] {
        stmts.push(SqlStmt::new(sql, vec![SqlValue::Int(v.oid)]));
    }
    for g in &v.groups {
        for (k, z, r) in &v.resources {
            stmts.extend(rules(*k, *z, *r, *g).into_iter().map(del_rule));
        }
    }
    stmts
}

/// VDC 0 `default` as OpenNebula bootstraps it: group `users` and every cluster of `zone`,
/// with their three rules (ACL ids 3, 4 and 5 on a new zone). For a database with none, the
/// same statements an upgrade runs.
pub fn bootstrap_default(zone: i64) -> Vec<SqlStmt> {
    let description = "Every new group is added to this VDC. Use it to store default access \
        rules for your groups. NOTE: You may need to remove a group from the default VDC before \
        assigning it to other VDC.";
    let template = format!("DESCRIPTION = \"{description}\"");
    let mut stmts = vec![
        SqlStmt::new(
            "INSERT INTO vdc_pool (oid, name, template) VALUES (0, 'default', ?1)",
            vec![SqlValue::Text(template)],
        ),
        SqlStmt::new(
            "INSERT INTO pool_control (tablename, last_oid) VALUES ('vdc_pool', 99)",
            vec![],
        ),
        SqlStmt::new("INSERT INTO vdc_group (vdc, gid) VALUES (0, 1)", vec![]),
    ];
    stmts.extend(add_resource(DEFAULT, Kind::Cluster, zone, ALL, &[1]));
    stmts
}

/// The group `group_pool`'s counter is about to hand out (its insert runs just before, its
/// counter moves after), as SQL.
const NEW_GID: &str = "(SELECT last_oid + 1 FROM pool_control WHERE tablename = 'group_pool')";

/// A group being created joins VDC 0 (holding `resources`) with the rules they grant it, in
/// the group's own transaction, as `one.group.allocate` does; nothing if VDC 0 is gone.
pub fn new_group_joins_default(resources: &[(Kind, i64, i64)]) -> Vec<SqlStmt> {
    let mut stmts = vec![SqlStmt::new(
        &format!(
            "INSERT INTO vdc_group (vdc, gid) SELECT oid, {NEW_GID} FROM vdc_pool WHERE oid = ?1"
        ),
        vec![SqlValue::Int(DEFAULT)],
    )];
    for (k, z, r) in resources {
        // The rules of a group 0, with the new group's id added to the user field in SQL.
        for (user, resource, rights, zone) in rules(*k, *z, *r, 0) {
            stmts.push(SqlStmt::new(
                &format!(
                    "INSERT INTO acl (oid, user, resource, rights, zone)
                     SELECT last_oid + 1, ?1 + {NEW_GID}, ?2, ?3, ?4 FROM pool_control
                     WHERE tablename = 'acl' AND EXISTS (SELECT 1 FROM vdc_pool WHERE oid = 0)
                       AND NOT EXISTS (SELECT 1 FROM acl WHERE user = ?1 + {NEW_GID}
                           AND resource = ?2 AND rights = ?3 AND zone = ?4)"
                ),
                vec![
                    SqlValue::Int(user as i64),
                    SqlValue::Int(resource as i64),
                    SqlValue::Int(rights as i64),
                    SqlValue::Int(zone as i64),
                ],
            ));
            stmts.push(acl_counter_past_new_rule());
        }
    }
    stmts
}

/// What deleting resource `rid` of `kind` (of this zone `zone`) does to VDCs, as OpenNebula's
/// deletes: out of every VDC (not a network: OpenNebula leaves those), and the ACL rules naming
/// it go (`del_resource_rules`; for a cluster every `%cluster` rule, `del_cid_rules`).
pub fn forget_resource(kind: Kind, zone: i64, rid: i64) -> Vec<SqlStmt> {
    let mut stmts = Vec::new();
    if kind != Kind::Vnet {
        stmts.push(SqlStmt::new(
            "DELETE FROM vdc_resource WHERE kind = ?1 AND zone = ?2 AND rid = ?3",
            vec![
                SqlValue::Text(kind.as_str().into()),
                SqlValue::Int(zone),
                SqlValue::Int(rid),
            ],
        ));
    }
    let (mask, value) = match kind {
        Kind::Cluster => (
            (wire::acl::SELECTORS | wire::acl::ID_MASK) as i64,
            (CLUSTER_ID | rid as u64) as i64,
        ),
        k => {
            let t = match k {
                Kind::Host => HOST,
                Kind::Datastore => DATASTORE,
                _ => NET,
            };
            (-1, (t | INDIVIDUAL_ID | rid as u64) as i64)
        }
    };
    stmts.push(SqlStmt::new(
        "DELETE FROM acl WHERE (resource & ?1) = ?2",
        vec![SqlValue::Int(mask), SqlValue::Int(value)],
    ));
    stmts
}
