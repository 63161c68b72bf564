//! The `dummy` drivers, run by the leader only: a host in INIT becomes MONITORED with a fixed
//! capacity; a new image becomes READY, a new virtual network READY. The result enters the log like any write, so every
//! server shows the same state, and after a failover the new leader carries on.

use std::time::Duration;

use sqlstore::{ReadPool, SqlStmt, SqlTxn, SqlValue};
use tracing::debug;

use crate::api::host::{INIT, MONITORED};
use crate::cluster::{Cluster, Role};
use wire::{ImageState, VnetState};

/// What the dummy driver reports: 8 CPUs (OpenNebula counts 100 per CPU) and 16 GiB (in KiB).
pub const DUMMY_CPU: i64 = 800;
pub const DUMMY_MEM: i64 = 16 * 1024 * 1024;
const PERIOD: Duration = Duration::from_millis(500);

pub fn spawn(cluster: Cluster, pool: ReadPool) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !matches!(cluster.role(), Role::Leader | Role::Solo) {
                continue;
            }
            let txn = SqlTxn {
                stmts: vec![
                    // The dummy datastore and network drivers finish at once.
                    SqlStmt::new(
                        &format!(
                            "UPDATE image_pool SET state = {} WHERE state = {}",
                            ImageState::Ready.as_i64(),
                            ImageState::Locked.as_i64()
                        ),
                        vec![],
                    ),
                    SqlStmt::new(
                        &format!(
                            "UPDATE vnet_pool SET state = {} WHERE state = {}",
                            VnetState::Ready.as_i64(),
                            VnetState::LockCreate.as_i64()
                        ),
                        vec![],
                    ),
                    SqlStmt::new(
                        "UPDATE host_pool SET prev_state = state, state = ?3,
                       total_cpu = ?1, total_mem = ?2,
                       template = 'HYPERVISOR = \"dummy\"'
                     WHERE state = ?4 AND im_mad = 'dummy'",
                        vec![
                            SqlValue::Int(DUMMY_CPU),
                            SqlValue::Int(DUMMY_MEM),
                            SqlValue::Int(MONITORED),
                            SqlValue::Int(INIT),
                        ],
                    ),
                ],
            };
            // Nothing to monitor is the usual case; skip the write then.
            let reader = pool.clone();
            let pending = tokio::task::spawn_blocking(move || {
                reader.with(|c| {
                    c.query_row(
                        &format!(
                            "SELECT (SELECT count(*) FROM host_pool WHERE state = {INIT} AND im_mad = 'dummy')
                              + (SELECT count(*) FROM image_pool WHERE state = {})
                              + (SELECT count(*) FROM vnet_pool WHERE state = {})",
                            ImageState::Locked.as_i64(),
                            VnetState::LockCreate.as_i64()
                        ),
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
            })
            .await;
            if !matches!(pending, Ok(Ok(n)) if n > 0) {
                continue;
            }
            if let Err(e) = cluster.write(txn).await {
                debug!(error = %e, "dummy monitoring write failed; retried next period");
            }
        }
    });
}
