//! A MySQL state database can go away under a running server (its host restarts, the network
//! drops). The apply path waits it out on its own; this watch finds it even when nothing is
//! being applied, so writes are refused with the reason at once and raftstatus and `oned.log`
//! say what is wrong, and it clears its mark once the database answers again (the apply's own
//! mark stays until the apply got back to it).

use std::time::Duration;

use consensus::{DbHealth, Mark};
use sqlstore::ReadPool;

/// How often the database is asked whether it is there.
const EVERY: Duration = Duration::from_secs(1);

pub async fn run(pool: ReadPool, health: DbHealth) -> Result<(), std::convert::Infallible> {
    loop {
        tokio::time::sleep(EVERY).await;
        let probe =
            crate::db::read(&pool, |c| c.query_row("SELECT 1", (), |r| r.get::<i64>(0))).await;
        match probe {
            Err(crate::db::ReadError::Db(e)) if e.is_connection_lost() => {
                if health.marked(Mark::Watch).is_none() {
                    tracing::error!(database = %pool.location(), error = %e, "lost the state database: writes are refused until it is back");
                }
                health.set(
                    Mark::Watch,
                    Some(format!(
                        "state database {} unavailable: {e}",
                        pool.location()
                    )),
                );
            }
            Ok(_) if health.marked(Mark::Watch).is_some() => {
                tracing::warn!(database = %pool.location(), "the state database answers again");
                health.set(Mark::Watch, None);
            }
            _ => {}
        }
    }
}
