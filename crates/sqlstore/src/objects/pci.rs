//! Host PCI devices taken by VMs (`host_pci`): a device is a host's `PCI` vector, known by its
//! SHORT_ADDRESS; the table's key makes sure no two VMs take the same device of a host, and a
//! row goes when its VM detaches the device or is DONE.

use crate::sql::Conn;
use crate::{SqlStmt, SqlValue};

use wire::state::VmState;

pub const TABLE: &str = "host_pci";

/// The SHORT_ADDRESS of host `hid`'s devices taken by a VM.
pub fn taken(c: &Conn, hid: i64) -> crate::sql::Result<Vec<String>> {
    c.prepare_cached("SELECT short_address FROM host_pci WHERE hid = ?1 ORDER BY short_address")?
        .query_map([hid], |r| r.get(0))?
        .collect()
}

/// Host `hid`'s taken devices: (SHORT_ADDRESS, VM id).
pub fn held_on(c: &Conn, hid: i64) -> crate::sql::Result<Vec<(String, i64)>> {
    c.prepare_cached(
        "SELECT short_address, vmid FROM host_pci WHERE hid = ?1 ORDER BY short_address",
    )?
    .query_map([hid], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// VM `vid` takes host `hid`'s device `short_address` (a device taken meanwhile breaks the key).
pub fn take(hid: i64, short_address: &str, vid: i64) -> SqlStmt {
    SqlStmt::new(
        "INSERT INTO host_pci (hid, short_address, vmid) VALUES (?1, ?2, ?3)",
        vec![
            SqlValue::Int(hid),
            SqlValue::Text(short_address.to_string()),
            SqlValue::Int(vid),
        ],
    )
}

/// VM `vid` gives back its device `short_address`.
pub fn free(vid: i64, short_address: &str) -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM host_pci WHERE vmid = ?1 AND short_address = ?2",
        vec![
            SqlValue::Int(vid),
            SqlValue::Text(short_address.to_string()),
        ],
    )
}

/// Whether a DONE VM still holds a device.
pub fn any_held_by_done(c: &Conn) -> crate::sql::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM host_pci p JOIN vm_pool v ON v.oid = p.vmid
         WHERE v.state = ?1)",
    )?
    .query_row([VmState::Done.as_i64()], |r| r.get(0))
}

/// The devices of DONE VMs are free again.
pub fn free_done_vms() -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM host_pci WHERE vmid IN (SELECT oid FROM vm_pool WHERE state = ?1)",
        vec![SqlValue::Int(VmState::Done.as_i64())],
    )
}

/// VM `oid`'s template becomes `new`, if it is still `old` and the VM still in (`state`,
/// `lcm_state`).
pub fn set_vm_template(oid: i64, new: String, old: String, st: (i64, i64)) -> SqlStmt {
    SqlStmt::new(
        "UPDATE vm_pool SET template = ?2
         WHERE oid = ?1 AND template = ?3 AND state = ?4 AND lcm_state = ?5",
        vec![
            SqlValue::Int(oid),
            SqlValue::Text(new),
            SqlValue::Text(old),
            SqlValue::Int(st.0),
            SqlValue::Int(st.1),
        ],
    )
    .must_match()
}
