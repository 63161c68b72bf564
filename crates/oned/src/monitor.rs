//! The `dummy` drivers, run by the leader only: a host in INIT becomes MONITORED with a fixed
//! capacity; a new image becomes READY, a new virtual network READY. The result enters the log like any write, so every
//! server shows the same state, and after a failover the new leader carries on.

use std::convert::Infallible;
use std::time::Duration;

use consensus::WriteError;
use sqlstore::{ReadPool, SqlStmt, SqlTxn, SqlValue};
use tracing::debug;

use crate::api::host::{INIT, MONITORED};
use crate::cluster::{Cluster, Role};
use wire::{ImageState, VnetState};

use crate::tasks::TaskCtx;

/// What the dummy driver reports: 8 CPUs (OpenNebula counts 100 per CPU) and 16 GiB (in KiB).
pub const DUMMY_CPU: i64 = 800;
pub const DUMMY_MEM: i64 = 16 * 1024 * 1024;
const PERIOD: Duration = Duration::from_millis(500);

/// The monitor task: every period, on the leader (or solo), finishes what the dummy drivers
/// have pending. A failed read or write is logged, counted and tried again next period.
pub async fn run(ctx: TaskCtx, cluster: Cluster, pool: ReadPool) -> Result<(), Infallible> {
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
                    "UPDATE image_pool SET state = ?1 WHERE state = ?2",
                    vec![
                        SqlValue::Int(ImageState::Ready.as_i64()),
                        SqlValue::Int(ImageState::Locked.as_i64()),
                    ],
                ),
                SqlStmt::new(
                    "UPDATE vnet_pool SET state = ?1 WHERE state = ?2",
                    vec![
                        SqlValue::Int(VnetState::Ready.as_i64()),
                        SqlValue::Int(VnetState::LockCreate.as_i64()),
                    ],
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
                    "SELECT (SELECT count(*) FROM host_pool WHERE state = ?1 AND im_mad = 'dummy')
                          + (SELECT count(*) FROM image_pool WHERE state = ?2)
                          + (SELECT count(*) FROM vnet_pool WHERE state = ?3)",
                    [
                        INIT,
                        ImageState::Locked.as_i64(),
                        VnetState::LockCreate.as_i64(),
                    ],
                    |r| r.get::<_, i64>(0),
                )
            })
        })
        .await;
        match pending {
            Ok(Ok(n)) if n > 0 => {}
            // Nothing pending.
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => {
                ctx.warn("reading what the dummy drivers have pending failed", &e);
                continue;
            }
            Err(e) => {
                ctx.warn("reading what the dummy drivers have pending failed", &e);
                continue;
            }
        }
        match cluster.write(txn).await {
            Ok(_) => {}
            // Leadership moved since the check: the new leader carries on.
            Err(e @ WriteError::NotLeader { .. }) => {
                debug!(error = %e, "dummy monitoring write refused: not the leader any more")
            }
            Err(e) => ctx.warn("dummy monitoring write failed; retried next period", &e),
        }
    }
}
