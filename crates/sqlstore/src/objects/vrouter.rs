//! Virtual routers (`vrouter_pool`, OpenNebula's table name): NICs whose floating addresses
//! the router leases, and the VMs that run it. Names need not be unique, as in OpenNebula.
//! The router's VMs are rows of `vrouter_vms`; one that is DONE is no longer listed, as
//! OpenNebula drops it from the router when it ends, without the VM side writing anything.

use crate::sql::{Conn, Row};

use super::{has_owner, insert_next, owned_select, Head, Lock, Rows};
use crate::{SqlStmt, SqlValue};

pub const TABLE: &str = "vrouter_pool";

/// `VirtualMachine::DONE`.
const VM_DONE: i64 = 6;

#[derive(Debug, Clone, PartialEq)]
pub struct VrouterRow {
    pub head: Head,
    pub lock: Lock,
    /// Its VMs that are not DONE, ascending.
    pub vms: Vec<i64>,
    pub template: String,
}

has_owner!(lockable VrouterRow);

fn read(c: &Conn, r: &Row) -> crate::sql::Result<VrouterRow> {
    let (head, lock, col) = Lock::head_and_lock(r)?;
    let oid = head.owned.oid;
    Ok(VrouterRow {
        head,
        lock,
        vms: vms_of(c, oid)?,
        template: r.get(col)?,
    })
}

pub static ROWS: Rows<VrouterRow> = Rows {
    select: owned_select!(lockable "vrouter_pool", "r", "r.template"),
    alias: "r",
    read,
};

/// The VMs of router `oid` that are not DONE, ascending.
pub fn vms_of(c: &Conn, oid: i64) -> crate::sql::Result<Vec<i64>> {
    let mut st = c.prepare_cached(
        "SELECT r.vm_oid FROM vrouter_vms AS r JOIN vm_pool AS v ON v.oid = r.vm_oid
         WHERE r.vrouter_oid = ?1 AND v.state <> ?2 ORDER BY r.vm_oid",
    )?;
    let rows = st.query_map((oid, VM_DONE), |r| r.get(0))?;
    rows.collect()
}

/// A new router; the oid comes from the counter ([`super::next_oid`]).
pub fn insert(name: &str, uid: i64, gid: i64, perms: i64, text: String) -> SqlStmt {
    insert_next(
        TABLE,
        "name, uid, gid, perms, template",
        "?1, ?2, ?3, ?4, ?5",
        vec![
            SqlValue::Text(name.to_string()),
            SqlValue::Int(uid),
            SqlValue::Int(gid),
            SqlValue::Int(perms),
            SqlValue::Text(text),
        ],
    )
}

/// VM `vm` runs router `oid`, if the router is still there (OpenNebula adds the VMs to a
/// router only if it still exists once they are created).
pub fn add_vm(oid: i64, vm: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT INTO vrouter_vms (vrouter_oid, vm_oid)
         SELECT oid, ?2 FROM vrouter_pool WHERE oid = ?1",
        vec![SqlValue::Int(oid), SqlValue::Int(vm)],
    )
}

/// Router `oid` goes with its list of VMs (the VMs themselves are ended by the caller) and
/// its place in its networks' lists.
pub fn delete(oid: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "DELETE FROM vrouter_vms WHERE vrouter_oid = ?1",
            vec![SqlValue::Int(oid)],
        ),
        SqlStmt::new(
            "DELETE FROM vrouter_vnets WHERE vrouter_oid = ?1",
            vec![SqlValue::Int(oid)],
        ),
        super::delete(TABLE, oid),
        super::acl::drop_rules_on(wire::acl::VROUTER, oid),
    ]
}

/// The networks router `oid` has a NIC in become `vnets` (`VirtualNetwork::vrouters`);
/// `None` is the router the same transaction is creating (its id is the counter's next). A
/// router no longer there gets none.
pub fn set_networks(oid: Option<i64>, vnets: &[i64]) -> Vec<SqlStmt> {
    let mut stmts = Vec::new();
    if let Some(oid) = oid {
        stmts.push(SqlStmt::new(
            "DELETE FROM vrouter_vnets WHERE vrouter_oid = ?1",
            vec![SqlValue::Int(oid)],
        ));
    }
    let mut vnets = vnets.to_vec();
    vnets.sort_unstable();
    vnets.dedup();
    for vnet in vnets {
        stmts.push(match oid {
            Some(oid) => SqlStmt::new(
                "INSERT INTO vrouter_vnets (vrouter_oid, vnet_oid)
                 SELECT oid, ?2 FROM vrouter_pool WHERE oid = ?1",
                vec![SqlValue::Int(oid), SqlValue::Int(vnet)],
            ),
            None => SqlStmt::new(
                &format!(
                    "INSERT INTO vrouter_vnets (vrouter_oid, vnet_oid)
                     SELECT last_oid + 1, ?1 FROM pool_control WHERE tablename = '{TABLE}'"
                ),
                vec![SqlValue::Int(vnet)],
            ),
        });
    }
    stmts
}

/// The routers with a NIC in network `vnet`, ascending.
pub fn routers_in(c: &Conn, vnet: i64) -> crate::sql::Result<Vec<i64>> {
    let mut st = c.prepare_cached(
        "SELECT vrouter_oid FROM vrouter_vnets WHERE vnet_oid = ?1 ORDER BY vrouter_oid",
    )?;
    let rows = st.query_map([vnet], |r| r.get(0))?;
    rows.collect()
}

/// The statement filling `vrouter_vnets` of a database from before it: the routers leasing a
/// floating address of each network, all that was known of them then.
pub(crate) fn backfill_networks() -> String {
    format!(
        "INSERT INTO vrouter_vnets (vrouter_oid, vnet_oid)
         SELECT DISTINCT owner, vnet_oid FROM vnet_lease WHERE kind = {}",
        super::lease::Holder::Vrouter.code()
    )
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

    fn row(c: &Conn, oid: i64) -> VrouterRow {
        c.query_row(&ROWS.by_id(), [oid], |r| read(c, r)).unwrap()
    }

    #[test]
    fn routers_number_from_zero_share_names_and_list_only_live_vms() {
        on_both_backends(|c| {
            for _ in 0..2 {
                crate::txn::run_all(
                    c,
                    &[
                        insert("vr", 2, 1, 0o600, "NIC=[\n  NIC_ID=\"0\" ]\n".into()),
                        super::super::next_oid(TABLE),
                    ],
                )
                .unwrap();
            }
            assert_eq!(row(c, 1).head.name, "vr", "names may repeat");
            c.execute_batch(
                "INSERT INTO vm_pool (oid, name, uid, gid, perms, state, lcm_state, prev_state,
                 prev_lcm_state, stime, cpu, memory, template)
                 VALUES (7, 'a', 2, 1, 0, 1, 0, 0, 0, 0, 1, 1, ''),
                 (8, 'b', 2, 1, 0, 6, 0, 0, 0, 0, 1, 1, '')",
            )
            .unwrap();
            crate::txn::run_all(c, &[add_vm(0, 8), add_vm(0, 7), add_vm(5, 7)]).unwrap();
            let r = row(c, 0);
            assert_eq!(
                r.vms,
                vec![7],
                "the DONE VM is gone, the missing router got none"
            );
            assert_eq!(r.template, "NIC=[\n  NIC_ID=\"0\" ]\n");
            let mut nets = set_networks(Some(0), &[3, 1, 3]);
            nets.extend(set_networks(Some(9), &[3]));
            crate::txn::run_all(c, &nets).unwrap();
            assert_eq!(routers_in(c, 3).unwrap(), vec![0], "router 9 is not there");
            crate::txn::run_all(c, &set_networks(Some(0), &[1])).unwrap();
            assert!(routers_in(c, 3).unwrap().is_empty(), "the NIC in 3 went");
            crate::txn::run_all(c, &delete(0)).unwrap();
            assert!(vms_of(c, 0).unwrap().is_empty());
            assert!(routers_in(c, 1).unwrap().is_empty());
            let mut new = vec![insert("vr", 2, 1, 0o600, String::new())];
            new.extend(set_networks(None, &[4]));
            new.push(super::super::next_oid(TABLE));
            crate::txn::run_all(c, &new).unwrap();
            assert_eq!(routers_in(c, 4).unwrap(), vec![2], "the new router's id");
            // A database from before the list: the routers leasing a floating address.
            c.execute_batch("DELETE FROM vrouter_vnets").unwrap();
            c.execute_batch(&format!(
                "INSERT INTO vnet_lease (vnet_oid, ar_id, idx, kind, owner)
                 VALUES (5, 0, 0, {vr}, 2), (5, 0, 1, {vr}, 2), (6, 0, 0, {vm}, 2)",
                vr = super::super::lease::Holder::Vrouter.code(),
                vm = super::super::lease::Holder::Vm.code(),
            ))
            .unwrap();
            c.execute_batch(&backfill_networks()).unwrap();
            assert_eq!(routers_in(c, 5).unwrap(), vec![2]);
            assert!(routers_in(c, 6).unwrap().is_empty(), "a VM's lease");
        });
    }
}
