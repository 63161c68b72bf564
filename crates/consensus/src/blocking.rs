//! rusqlite blocks; RaftCore must not. Every database call runs on the blocking pool.

use std::sync::{Arc, Mutex, MutexGuard};

use openraft::{AnyError, StorageError, StorageIOError};
use rusqlite::Connection;

use crate::error::{Error, Result};

/// A connection owned by one logical writer. The mutex only serialises calls that openraft
/// already issues one at a time; it is never held across an await.
pub(crate) struct Shared<C = Connection> {
    conn: Arc<Mutex<C>>,
    /// Named in the error when an earlier panic poisoned the mutex.
    name: &'static str,
}

impl<C> Clone for Shared<C> {
    fn clone(&self) -> Self {
        Shared {
            conn: self.conn.clone(),
            name: self.name,
        }
    }
}

impl<C: Send + 'static> Shared<C> {
    pub fn new(conn: C, name: &'static str) -> Shared<C> {
        Shared {
            conn: Arc::new(Mutex::new(conn)),
            name,
        }
    }

    /// The connection, for a short synchronous call outside the async path.
    pub fn lock(&self) -> Result<MutexGuard<'_, C>> {
        self.conn.lock().map_err(|_| Error::Poisoned(self.name))
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&mut *this.lock()?)).await?
    }

    /// [`Shared::call`] for openraft: `mk` turns a failure into the kind of storage error
    /// openraft expects for this call.
    pub async fn run<T, F>(
        &self,
        mk: fn(AnyError) -> StorageIOError<u64>,
        f: F,
    ) -> Result<T, StorageError<u64>>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T> + Send + 'static,
    {
        self.call(f).await.map_err(|e| storage(mk, &e))
    }
}

/// `e` as the storage error openraft expects, `mk` saying which kind.
pub(crate) fn storage(mk: fn(AnyError) -> StorageIOError<u64>, e: &Error) -> StorageError<u64> {
    StorageError::IO {
        source: mk(AnyError::new(e)),
    }
}
