//! Virtual network templates (`vn_template_pool`, OpenNebula's table name): network
//! definitions users instantiate into networks. A name is unique per owner, as OpenNebula's
//! `VNTemplatePool::allocate` checks it.

use crate::sql::{Conn, Optional, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "vn_template_pool";

#[derive(Debug, Clone, PartialEq)]
pub struct VnTemplateRow {
    pub head: Head,
    pub lock: Lock,
    pub regtime: i64,
    pub template: String,
}

has_owner!(lockable VnTemplateRow);

fn read(_: &Conn, r: &Row) -> crate::sql::Result<VnTemplateRow> {
    let (head, lock, c) = Lock::head_and_lock(r)?;
    Ok(VnTemplateRow {
        head,
        lock,
        regtime: r.get(c)?,
        template: r.get(c + 1)?,
    })
}

pub static ROWS: Rows<VnTemplateRow> = Rows {
    select: owned_select!(lockable "vn_template_pool", "t", "t.regtime, t.template"),
    alias: "t",
    read,
};

/// A new template; the oid comes from the counter ([`super::next_oid`]). A name its owner
/// already uses breaks the table's `UNIQUE (name, uid)`.
pub fn insert(name: &str, uid: i64, gid: i64, perms: i64, regtime: i64, text: String) -> SqlStmt {
    insert_next(
        TABLE,
        "name, uid, gid, perms, regtime, template",
        "?1, ?2, ?3, ?4, ?5, ?6",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(uid),
            SqlValue::Int(gid),
            SqlValue::Int(perms),
            SqlValue::Int(regtime),
            SqlValue::Text(text),
        ],
    )
}

/// The template of `uid` called `name`, if there is one (`PoolSQL::exist(name, uid)`).
pub fn named(c: &Conn, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    super::owned_named(c, "vn_template_pool", name, uid)
}

/// The network of `uid` called `name`, if there is one (`VirtualNetworkPool::allocate`'s check).
pub fn vnet_named(c: &Conn, name: &str, uid: i64) -> crate::sql::Result<Option<i64>> {
    c.prepare_cached("SELECT oid FROM vnet_pool WHERE name = ?1 AND uid = ?2")?
        .query_row((name, uid), |r| r.get(0))
        .optional()
}

/// Names the network being allocated in the same transaction (the `vnet_pool` counter not
/// moved yet) `<prefix>-<its oid>`, as OpenNebula names a network instantiated without a
/// name. Runs between the network's insert and the counter's move.
pub fn name_new_vnet(prefix: &str) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vnet_pool SET name = ?1 || '-' || oid
         WHERE oid = (SELECT last_oid + 1 FROM pool_control WHERE tablename = 'vnet_pool')",
        vec![SqlValue::Text(prefix.to_string())],
    )
    .must_match()
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

    fn allocate(c: &Conn, name: &str, uid: i64) -> Result<(), crate::sql::SqlError> {
        crate::txn::run_all(
            c,
            &[
                insert(name, uid, 1, 0o600, 5, "VN_MAD = \"bridge\"".into()),
                super::super::next_oid(TABLE),
            ],
        )
        .map(drop)
    }

    #[test]
    fn vn_templates_number_from_zero_and_names_are_unique_per_owner() {
        on_both_backends(|c| {
            allocate(c, "net", 2).unwrap();
            allocate(c, "net", 3).unwrap();
            assert!(allocate(c, "net", 2).is_err(), "same name, same owner");
            assert_eq!(named(c, "net", 3).unwrap(), Some(1));
            assert_eq!(named(c, "other", 3).unwrap(), None);
            let row = c.query_row(&ROWS.by_id(), [0], |r| read(c, r)).unwrap();
            assert_eq!(row.head.name, "net");
            assert_eq!(row.regtime, 5);
            assert_eq!((row.lock.level, row.lock.owner), (0, -1), "unlocked");
            assert_eq!(row.template, "VN_MAD = \"bridge\"");
        });
    }

    #[test]
    fn an_instantiated_network_without_a_name_is_called_after_its_template() {
        on_both_backends(|c| {
            // A network row as the allocation inserts it, under a name no client can give.
            let new = insert_next(
                "vnet_pool",
                "name, uid, gid, perms, state, vn_mad, bridge, template",
                "'#pending', 0, 0, 384, 0, 'bridge', 'br0', ''",
                vec![],
            );
            crate::txn::run_all(
                c,
                &[
                    new,
                    name_new_vnet("web"),
                    super::super::next_oid("vnet_pool"),
                ],
            )
            .unwrap();
            let name: String = c
                .query_row("SELECT name FROM vnet_pool WHERE oid = 0", (), |r| r.get(0))
                .unwrap();
            assert_eq!(name, "web-0");
        });
    }
}
