//! A small pool of read-only connections, so API reads never queue behind the writer.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::open::{open_read, DbError};
use crate::sql::{Conn, Location, SqlError};

/// Most reads finish in microseconds; a few idle connections are plenty.
const MAX_IDLE: usize = 8;
/// How long a read waits for a connection when a MySQL pool has all of its own in use.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ReadPool {
    loc: Location,
    state: Arc<(Mutex<Slots>, Condvar)>,
    max_idle: usize,
    /// The most connections open at once (MySQL: CONNECTIONS, less the writer's and a
    /// snapshot's); `None`: no bound (SQLite, where a connection is a file handle).
    max_open: Option<usize>,
}

#[derive(Default)]
struct Slots {
    idle: Vec<Conn>,
    /// Connections of this pool that exist now, idle or in use.
    open: usize,
}

impl ReadPool {
    pub fn new(loc: &Location) -> ReadPool {
        let (max_idle, max_open) = match loc {
            Location::Sqlite(_) => (MAX_IDLE, None),
            Location::Mysql(m) => {
                let n = (m.connections.saturating_sub(2) as usize).max(1);
                (n, Some(n))
            }
        };
        ReadPool {
            loc: loc.clone(),
            state: Arc::new((Mutex::new(Slots::default()), Condvar::new())),
            max_idle,
            max_open,
        }
    }

    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// An idle connection, or room to open one; waits while a bounded pool is full.
    fn take(&self) -> Result<Option<Conn>, DbError> {
        let (lock, freed) = &*self.state;
        let mut slots = lock
            .lock()
            .map_err(|_| DbError::Corrupt("the read pool's lock was poisoned".into()))?;
        let deadline = std::time::Instant::now() + WAIT_FOR_CONNECTION;
        loop {
            if let Some(c) = slots.idle.pop() {
                return Ok(Some(c));
            }
            if self.max_open.is_none_or(|max| slots.open < max) {
                slots.open += 1;
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(DbError::Busy(format!(
                    "{}: every one of the read pool's {} connections stayed busy for {:?}",
                    self.loc, slots.open, WAIT_FOR_CONNECTION
                )));
            }
            slots = freed
                .wait_timeout(slots, left)
                .map_err(|_| DbError::Corrupt("the read pool's lock was poisoned".into()))?
                .0;
        }
    }

    /// Gives `conn` back (or, `None`, the room of one that is gone).
    fn give_back(&self, conn: Option<Conn>) {
        let (lock, freed) = &*self.state;
        if let Ok(mut slots) = lock.lock() {
            match conn {
                Some(c) if slots.idle.len() < self.max_idle => slots.idle.push(c),
                _ => slots.open = slots.open.saturating_sub(1),
            }
        }
        freed.notify_one();
    }

    /// Runs `f` on a read-only connection. Blocking: call it from `spawn_blocking`.
    pub fn with<T>(&self, f: impl FnOnce(&Conn) -> Result<T, SqlError>) -> Result<T, DbError> {
        let conn = match self.take()? {
            Some(c) => c,
            None => match open_read(&self.loc) {
                Ok(c) => c,
                Err(e) => {
                    self.give_back(None);
                    return Err(e);
                }
            },
        };
        let out = f(&conn);
        // A connection the server dropped is not kept for the next read.
        let broken = matches!(&out, Err(e) if e.is_connection_lost());
        self.give_back((!broken).then_some(conn));
        out.map_err(DbError::on(&self.loc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_pool_never_opens_more_than_its_connections() {
        let Some(loc) = crate::testing::fresh_mysql_database() else {
            return;
        };
        let Location::Mysql(mut m) = loc else {
            return;
        };
        m.connections = 5; // 3 for reads
        let pool = ReadPool::new(&Location::Mysql(m));
        let peak = std::sync::atomic::AtomicUsize::new(0);
        let now = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    pool.with(|c| {
                        use std::sync::atomic::Ordering::SeqCst;
                        let n = now.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(n, SeqCst);
                        let one: i64 = c.query_row("SELECT SLEEP(0.05) + 1", (), |r| r.get(0))?;
                        now.fetch_sub(1, SeqCst);
                        assert_eq!(one, 1);
                        Ok(())
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(peak.into_inner(), 3);
    }
}
