//! rusqlite blocks; RaftCore must not. Every database call runs on the blocking pool.

use std::sync::{Arc, Mutex};

use openraft::{AnyError, StorageError, StorageIOError};
use rusqlite::Connection;

/// A connection owned by one logical writer. The mutex only serialises calls that openraft
/// already issues one at a time; it is never held across an await.
#[derive(Clone)]
pub(crate) struct Shared(pub Arc<Mutex<Connection>>);

impl Shared {
    pub fn new(conn: Connection) -> Shared {
        Shared(Arc::new(Mutex::new(conn)))
    }

    /// Runs `f` with the connection on the blocking pool; `mk` turns a failure into the kind of
    /// storage error openraft expects for this call.
    pub async fn run<T, F>(
        &self,
        mk: fn(AnyError) -> StorageIOError<u64>,
        f: F,
    ) -> Result<T, StorageError<u64>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, String> + Send + 'static,
    {
        let conn = self.0.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| "database mutex poisoned by an earlier panic".to_string())?;
            f(&mut guard)
        })
        .await;
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(StorageError::IO {
                source: mk(AnyError::error(msg)),
            }),
            Err(join) => Err(StorageError::IO {
                source: mk(AnyError::error(format!("database task failed: {join}"))),
            }),
        }
    }
}

pub(crate) fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}
