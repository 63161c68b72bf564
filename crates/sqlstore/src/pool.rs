//! A small pool of read-only connections, so API reads never queue behind the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::open::{open_read, DbError};

/// Most reads finish in microseconds; a few idle connections are plenty.
const MAX_IDLE: usize = 8;

#[derive(Clone)]
pub struct ReadPool {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    pub fn new(path: &Path) -> ReadPool {
        ReadPool {
            path: path.to_path_buf(),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` on a read-only connection. Blocking: call it from `spawn_blocking`.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, DbError> {
        let taken = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let conn = match taken {
            Some(c) => c,
            None => open_read(&self.path)?,
        };
        let out = f(&conn).map_err(DbError::at(&self.path));
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        out
    }
}
