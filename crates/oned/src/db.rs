//! Reads of the state database from async code: on the blocking pool, never on the runtime
//! that carries heartbeats and commits.

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
