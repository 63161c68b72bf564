//! rusqlite blocks; RaftCore must not. Every database call runs off the runtime: on a thread
//! the connection owns when it is on the write path, else on the blocking pool.

use std::sync::{Arc, Mutex, MutexGuard};

use openraft::{AnyError, StorageError, StorageIOError};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Calls queued for a connection's own thread; openraft issues them one at a time.
const QUEUE: usize = 64;

type Job<C> = Box<dyn FnOnce(&mut C) + Send>;

/// A connection owned by one logical writer. The mutex only serialises calls that openraft
/// already issues one at a time; it is never held across an await.
pub(crate) struct Shared<C = Connection> {
    conn: Arc<Mutex<C>>,
    /// Named in the error when an earlier panic poisoned the mutex.
    name: &'static str,
    /// The connection's own thread, if it has one: a call then wakes a thread that is always
    /// there instead of handing off to (and growing) the blocking pool.
    thread: Option<mpsc::Sender<Job<C>>>,
}

impl<C> Clone for Shared<C> {
    fn clone(&self) -> Self {
        Shared {
            conn: self.conn.clone(),
            name: self.name,
            thread: self.thread.clone(),
        }
    }
}

impl<C: Send + 'static> Shared<C> {
    pub fn new(conn: C, name: &'static str) -> Shared<C> {
        Shared {
            conn: Arc::new(Mutex::new(conn)),
            name,
            thread: None,
        }
    }

    /// A connection whose calls run, in order, on a thread of its own; the thread ends with
    /// the last clone.
    pub fn with_thread(conn: C, name: &'static str) -> Result<Shared<C>> {
        let (tx, mut rx) = mpsc::channel::<Job<C>>(QUEUE);
        let shared = Shared {
            thread: Some(tx),
            ..Shared::new(conn, name)
        };
        let conn = shared.conn.clone();
        std::thread::Builder::new()
            .name(format!("{name}-db"))
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    let Ok(mut c) = conn.lock() else {
                        // Dropping the job drops its reply: callers hear the thread stopped.
                        return;
                    };
                    job(&mut c);
                }
            })
            .map_err(|_| Error::WriterStopped(name))?;
        Ok(shared)
    }

    /// The connection, for a short synchronous call outside the async path.
    pub fn lock(&self) -> Result<MutexGuard<'_, C>> {
        self.conn.lock().map_err(|_| Error::Poisoned(self.name))
    }

    /// Runs `f` with the connection on its thread, or on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T> + Send + 'static,
    {
        let Some(thread) = &self.thread else {
            let this = self.clone();
            return tokio::task::spawn_blocking(move || f(&mut *this.lock()?)).await?;
        };
        let (reply, answer) = oneshot::channel();
        let job: Job<C> = Box::new(move |c| {
            // A failed send means the caller is gone: nobody is left to tell.
            let _ = reply.send(f(c));
        });
        let stopped = Error::WriterStopped(self.name);
        if thread.send(job).await.is_err() {
            return Err(stopped);
        }
        answer.await.unwrap_or(Err(stopped))
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
