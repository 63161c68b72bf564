//! Reads of the state database from async code: on the blocking pool, never on the runtime
//! that carries heartbeats and commits.

use std::time::Duration;

use sqlstore::rusqlite::ErrorCode;
use sqlstore::ReadPool;
use sqlstore::{Conn, SqlError};

/// Why a read did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Db(#[from] sqlstore::DbError),
    #[error("the read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs `f` on a pooled read connection, on a blocking thread.
pub async fn read<T: Send + 'static>(
    pool: &ReadPool,
    f: impl FnOnce(&Conn) -> Result<T, SqlError> + Send + 'static,
) -> Result<T, ReadError> {
    let pool = pool.clone();
    Ok(tokio::task::spawn_blocking(move || pool.with(f)).await??)
}

/// [`read`] for a short read of a few rows by key (one object by id): on SQLite it runs here,
/// on the calling runtime thread, because the hop to a blocking thread and back (two wake-ups,
/// two context switches) costs more CPU than such a read from the page cache. It never waits
/// for a lock there: with SQLite's busy wait off, a read that would wait (a snapshot being
/// installed) goes to a blocking thread instead. A MySQL read is a network round trip, and any
/// long read (pools, pages) still belongs on a blocking thread.
pub async fn read_row<T: Send + 'static>(
    pool: &ReadPool,
    f: impl FnOnce(&Conn) -> Result<T, SqlError> + Clone + Send + 'static,
) -> Result<T, ReadError> {
    if let sqlstore::Location::Sqlite(_) = pool.location() {
        let here = f.clone();
        let done = pool.with(move |c| {
            let Some(lite) = c.sqlite() else {
                return here(c).map(Some);
            };
            lite.busy_timeout(Duration::ZERO)?;
            let out = here(c);
            lite.busy_timeout(SQLITE_BUSY_WAIT)?;
            match out {
                Err(SqlError::Sqlite(e))
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) =>
                {
                    Ok(None)
                }
                other => other.map(Some),
            }
        })?;
        if let Some(v) = done {
            return Ok(v);
        }
    }
    read(pool, f).await
}

/// The busy wait of a read connection, as `sqlstore::Conn::open` sets it.
const SQLITE_BUSY_WAIT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    /// On a one-thread runtime a read that waited for the lock here would hold up everything,
    /// then fail as "database is locked": it must wait on a blocking thread instead.
    #[tokio::test]
    async fn a_short_read_that_would_wait_for_a_lock_waits_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        // A rollback journal, where a writer's exclusive lock keeps readers out.
        let w = sqlstore::rusqlite::Connection::open(&path).unwrap();
        w.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7); BEGIN EXCLUSIVE")
            .unwrap();
        let pool = ReadPool::new(&sqlstore::Location::Sqlite(path));
        let read = tokio::spawn(async move {
            read_row(&pool, |c| {
                c.query_row("SELECT x FROM t", (), |r| r.get::<i64>(0))
            })
            .await
        });
        // The read task tries here, finds the lock, and moves to a blocking thread.
        tokio::task::yield_now().await;
        w.execute_batch("COMMIT").unwrap();
        assert_eq!(read.await.unwrap().unwrap(), 7);
    }
}
