//! A small pool of read-only connections, so API reads never queue behind the writer.

use std::sync::{Arc, Mutex};

use crate::open::{open_read, DbError};
use crate::sql::{Conn, Location, SqlError};

/// Most reads finish in microseconds; a few idle connections are plenty.
const MAX_IDLE: usize = 8;

#[derive(Clone)]
pub struct ReadPool {
    loc: Location,
    idle: Arc<Mutex<Vec<Conn>>>,
    max_idle: usize,
}

impl ReadPool {
    pub fn new(loc: &Location) -> ReadPool {
        // A MySQL server counts every connection against CONNECTIONS: the pool keeps room for
        // the writer and a snapshot.
        let max_idle = match loc {
            Location::Sqlite(_) => MAX_IDLE,
            Location::Mysql(m) => (m.connections.saturating_sub(2) as usize).clamp(1, MAX_IDLE),
        };
        ReadPool {
            loc: loc.clone(),
            idle: Arc::new(Mutex::new(Vec::new())),
            max_idle,
        }
    }

    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// Runs `f` on a read-only connection. Blocking: call it from `spawn_blocking`.
    pub fn with<T>(&self, f: impl FnOnce(&Conn) -> Result<T, SqlError>) -> Result<T, DbError> {
        let taken = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let conn = match taken {
            Some(c) => c,
            None => open_read(&self.loc)?,
        };
        let out = f(&conn);
        // A connection the server dropped is not kept for the next read.
        let broken = matches!(&out, Err(e) if e.is_connection_lost());
        if !broken {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < self.max_idle {
                    idle.push(conn);
                }
            }
        }
        out.map_err(DbError::on(&self.loc))
    }
}
