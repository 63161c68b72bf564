//! The VNC/SPICE ports of VMs' GRAPHICS (`vnc_port`), OpenNebula's per-cluster `vnc_bitmap`:
//! a VM's row says which port of which cluster it took at its last deployment, and a port is
//! held while its VM is deployed or stopped (ACTIVE, SUSPENDED, POWEROFF, STOPPED), as oned
//! releases it when a VM is undeployed, resubmitted or done. So a row outlives its hold
//! harmlessly: taking a port asks only the VMs that still hold theirs.

use crate::sql::Conn;
use crate::{SqlStmt, SqlValue};

use wire::state::VmState;

pub const TABLE: &str = "vnc_port";

/// The states whose VMs hold their port.
const HOLDING: [VmState; 4] = [
    VmState::Active,
    VmState::Suspended,
    VmState::Poweroff,
    VmState::Stopped,
];

fn holding() -> String {
    let states: Vec<String> = HOLDING.iter().map(|s| s.as_i64().to_string()).collect();
    states.join(", ")
}

/// The ports of cluster `cid` held by a VM.
pub fn taken(c: &Conn, cid: i64) -> crate::sql::Result<Vec<i64>> {
    c.prepare_cached(&format!(
        "SELECT p.port FROM vnc_port p JOIN vm_pool v ON v.oid = p.vid
         WHERE p.cid = ?1 AND v.state IN ({})",
        holding()
    ))?
    .query_map([cid], |r| r.get(0))?
    .collect()
}

/// The port VM `vid` took and the cluster, if it took one.
pub fn of(c: &Conn, vid: i64) -> crate::sql::Result<Option<(i64, i64)>> {
    use crate::Optional;
    c.prepare_cached("SELECT cid, port FROM vnc_port WHERE vid = ?1")?
        .query_row([vid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// VM `vid`, deployed on host `hid`, takes `port` of the host's cluster: matches nothing if
/// another VM holds it by then.
pub fn take(vid: i64, hid: i64, port: i64) -> Vec<SqlStmt> {
    vec![
        SqlStmt::new(
            "DELETE FROM vnc_port WHERE vid = ?1",
            vec![SqlValue::Int(vid)],
        ),
        SqlStmt::new(
            &format!(
                "INSERT INTO vnc_port (vid, cid, port)
                 SELECT ?1, h.cluster_id, ?3 FROM host_pool h
                 WHERE h.oid = ?2 AND NOT EXISTS (
                   SELECT 1 FROM vnc_port p JOIN vm_pool v ON v.oid = p.vid
                   WHERE p.cid = h.cluster_id AND p.port = ?3 AND p.vid <> ?1
                     AND v.state IN ({}))",
                holding()
            ),
            vec![SqlValue::Int(vid), SqlValue::Int(hid), SqlValue::Int(port)],
        )
        .must_match(),
    ]
}

/// Whether a DONE VM still has a row.
pub fn any_held_by_done(c: &Conn) -> crate::sql::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM vnc_port p JOIN vm_pool v ON v.oid = p.vid
         WHERE v.state = ?1)",
    )?
    .query_row([VmState::Done.as_i64()], |r| r.get(0))
}

/// The ports of DONE VMs are forgotten.
pub fn free_done_vms() -> SqlStmt {
    SqlStmt::new(
        "DELETE FROM vnc_port WHERE vid IN (SELECT oid FROM vm_pool WHERE state = ?1)",
        vec![SqlValue::Int(VmState::Done.as_i64())],
    )
}
