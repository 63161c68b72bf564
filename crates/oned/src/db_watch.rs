//! A MySQL state database can go away under a running server (its host restarts, the network
//! drops). The apply path waits it out on its own; this watch finds it even when nothing is
//! being applied, so writes are refused with the reason at once and raftstatus and `oned.log`
//! say what is wrong, and it clears the mark once the database answers again.

use std::time::Duration;

use consensus::DbHealth;
use sqlstore::ReadPool;

/// How often the database is asked whether it is there.
const EVERY: Duration = Duration::from_secs(1);

pub async fn run(pool: ReadPool, health: DbHealth) -> Result<(), std::convert::Infallible> {
    let mut marked = false;
    loop {
        tokio::time::sleep(EVERY).await;
        let probe =
            crate::db::read(&pool, |c| c.query_row("SELECT 1", (), |r| r.get::<i64>(0))).await;
        match probe {
            Err(crate::db::ReadError::Db(e)) if e.is_connection_lost() => {
                if health.problem().is_none() {
                    tracing::error!(database = %pool.location(), error = %e, "lost the state database: writes are refused until it is back");
                }
                health.set(Some(format!(
                    "state database {} unavailable: {e}",
                    pool.location()
                )));
                marked = true;
            }
            Ok(_) if marked => {
                tracing::warn!(database = %pool.location(), "the state database answers again");
                health.set(None);
                marked = false;
            }
            _ => {}
        }
    }
}
