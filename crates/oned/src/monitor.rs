//! The `dummy` drivers, run by the leader only: a host in INIT becomes MONITORED with a fixed
//! capacity; a new image becomes READY, a new virtual network READY, a marketplace app being
//! imported READY (or in ERROR if its image went away). The result enters the log like any write, so every
//! server shows the same state, and after a failover the new leader carries on.

use std::convert::Infallible;
use std::time::Duration;

use consensus::WriteError;
use sqlstore::objects::host;
use sqlstore::{ReadPool, SqlTxn};
use tracing::debug;

use crate::cluster::{Cluster, LeaderTicks};
use crate::tasks::TaskCtx;

/// What the dummy driver reports: 8 CPUs (OpenNebula counts 100 per CPU) and 16 GiB (in KiB).
pub const DUMMY_CPU: i64 = 800;
pub const DUMMY_MEM: i64 = 16 * 1024 * 1024;
const PERIOD: Duration = Duration::from_millis(500);

/// The monitor task: every period, on the leader (or solo), finishes what the dummy drivers
/// have pending. A failed read or write is logged, counted and tried again next period.
pub async fn run(ctx: TaskCtx, cluster: Cluster, pool: ReadPool) -> Result<(), Infallible> {
    let mut ticks = LeaderTicks::new(PERIOD, cluster.clone());
    loop {
        ticks.next().await;
        // Nothing to monitor is the usual case; skip the write then.
        let pending = crate::db::read(&pool, |c| {
            let sgs = sqlstore::objects::secgroup::dummy_pending(c)?;
            Ok(host::dummy_pending(c)? + i64::from(sgs))
        })
        .await;
        match pending {
            Ok(n) if n > 0 => {}
            // Nothing pending.
            Ok(_) => continue,
            Err(e) => {
                ctx.warn("reading what the dummy drivers have pending failed", &e);
                continue;
            }
        }
        let now = crate::api::vm::now();
        // Images first: the host driver's catch-all READY then finds none left to move.
        let images = crate::db::read(&pool, |c| {
            sqlstore::objects::image::driver_pending(c, crate::api::images::DRIVER_BATCH)
        })
        .await;
        let mut stmts = match images {
            Ok(images) => crate::api::images::driver_results(&images, now),
            Err(e) => {
                ctx.warn(
                    "reading the images the datastore driver has work on failed",
                    &e,
                );
                Vec::new()
            }
        };
        stmts.extend(host::dummy_monitor(DUMMY_CPU, DUMMY_MEM, now));
        // The dummy network driver brings outdated VMs to their security groups' rules at once.
        stmts.push(sqlstore::objects::secgroup::dummy_update());
        match crate::db::read(&pool, sqlstore::objects::market::importing).await {
            Ok(apps) => stmts.extend(apps.iter().map(crate::api::market::import_result)),
            Err(e) => ctx.warn("reading the marketplace apps being imported failed", &e),
        }
        let txn = SqlTxn { stmts };
        match cluster.write(txn).await {
            Ok(_) => {}
            // Leadership moved since the check: the new leader carries on.
            Err(e @ WriteError::NotLeader) => {
                debug!(error = %e, "dummy monitoring write refused: not the leader any more")
            }
            Err(e) => ctx.warn("dummy monitoring write failed; retried next period", &e),
        }
    }
}
