//! The Raft log in the `logdb` table, with the vote and the purge marker in `raft_meta`, both in
//! their own SQLite file (`raft.db`) so appends never wait on the state writer.
//!
//! Every write commits with `synchronous=FULL` before it returns (or before the flush callback
//! fires): an acknowledged write is on disk on a majority.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use rusqlite::{params, Connection, OptionalExtension};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::blocking::{storage, Shared};
use crate::error::{log_and_count, Error, Result};
use crate::log_format::{self, FORMAT};
use crate::types::TypeConfig;

type SErr = StorageError<u64>;

/// Purged rows deleted per transaction.
const DELETE_CHUNK: i64 = 1000;

/// Replication reads are capped by bytes so one AppendEntries finishes within a heartbeat.
const MAX_READ_BYTES: usize = 4 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logdb (
    log_index INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    leader_node_id INTEGER NOT NULL,
    payload BLOB NOT NULL,
    format INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS raft_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
";

fn open(path: &Path, read_only: bool) -> Result<Connection> {
    let at = Error::db(path);
    (|| {
        let conn = if read_only {
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
        } else {
            let c = Connection::open(path)?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.execute_batch(SCHEMA)?;
            add_format_column(&c)?;
            c
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    })()
    .map_err(at)
}

/// A log written before formats were numbered has no `format` column: its rows are format 0.
fn add_format_column(c: &Connection) -> rusqlite::Result<()> {
    let has: bool = c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('logdb') WHERE name = 'format'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        c.execute_batch("ALTER TABLE logdb ADD COLUMN format INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

/// `raft_meta` values (the vote, log ids, flags): bincode of plain structs without enums, never
/// replicated; `tests/golden` pins their bytes.
fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    bincode::serialize(v).map_err(|source| Error::Encode {
        what: "raft_meta value",
        source,
    })
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    bincode::deserialize(b).map_err(|e| Error::Decode {
        what: "raft_meta value",
        source: e.into(),
    })
}

fn get_meta<T: serde::de::DeserializeOwned>(conn: &Connection, key: &str) -> Result<Option<T>> {
    let raw: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM raft_meta WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()?;
    raw.map(|b| decode(&b)).transpose()
}

fn put_meta<T: serde::Serialize>(conn: &Connection, key: &str, v: &T) -> Result<()> {
    conn.execute(
        "INSERT INTO raft_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, encode(v)?],
    )?;
    Ok(())
}

/// A row's entry, from its `format` and `payload` columns.
fn entry_of(format: i64, raw: &[u8]) -> Result<Entry<TypeConfig>> {
    let format = u64::try_from(format).map_err(|_| Error::NewerFormat {
        what: "log entry",
        found: u64::MAX,
        known: FORMAT,
    })?;
    log_format::decode_entry(format, raw)
}

/// Reads `[start, end)` of the log, stopping early once `MAX_READ_BYTES` is exceeded (but always
/// returning at least one entry for a non-empty range that exists).
fn read_range(
    conn: &Connection,
    start: u64,
    end: Option<u64>,
    limit_bytes: bool,
) -> Result<Vec<Entry<TypeConfig>>> {
    let end = end.map(|e| e as i64).unwrap_or(i64::MAX);
    let mut st = conn.prepare_cached(
        "SELECT format, payload FROM logdb WHERE log_index >= ?1 AND log_index < ?2
           AND log_index > COALESCE((SELECT value FROM raft_meta WHERE key = 'purged_index'), -1)
         ORDER BY log_index",
    )?;
    let mut rows = st.query(params![start as i64, end])?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let format: i64 = row.get(0)?;
        let raw = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        bytes += raw.len();
        out.push(entry_of(format, raw)?);
        if limit_bytes && bytes >= MAX_READ_BYTES {
            break;
        }
    }
    Ok(out)
}

fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(x) => Some(x + 1),
        Bound::Excluded(x) => Some(*x),
        Bound::Unbounded => None,
    };
    (start, end)
}

/// The writer side of the log; openraft calls it from RaftCore only. A clone shares the same
/// connection (oned reads and sets its per-server flags through one).
#[derive(Clone)]
pub struct LogStore {
    path: PathBuf,
    db: Shared,
    /// A background deletion of purged rows is running.
    deleting: Arc<AtomicBool>,
    /// The durable snapshot, beyond which no purge is persisted (see
    /// [`crate::state_machine::SnapshotFloor`]); unset in tests of the log alone.
    floor: Option<crate::state_machine::SnapshotFloor>,
    /// A purge openraft asked for before the snapshot covering it was on disk: persisted with
    /// the first append (or purge) after that snapshot is. Shared by every clone.
    pending: Arc<Mutex<Option<LogId<u64>>>>,
}

impl LogStore {
    pub fn open(path: &Path) -> Result<LogStore> {
        // 0600 before SQLite opens it: its -wal and -shm files copy the database file's mode.
        sqlstore::files::private_file(path).map_err(Error::io(path))?;
        let conn = open(path, false)?;
        Ok(LogStore {
            path: path.to_path_buf(),
            db: Shared::new(conn, "log"),
            deleting: Arc::new(AtomicBool::new(false)),
            floor: None,
            pending: Arc::new(Mutex::new(None)),
        })
    }

    /// Whether a purge to `log_id` may be persisted now: always without a guard, else only up
    /// to the durable snapshot.
    fn covered(&self, log_id: &LogId<u64>) -> bool {
        match &self.floor {
            None => true,
            Some(f) => f.get().is_some_and(|d| d.index >= log_id.index),
        }
    }

    /// The pending purge, if the snapshot covering it is now on disk (it is then no longer
    /// pending).
    fn take_covered_pending(&self) -> Option<LogId<u64>> {
        let mut pending = self.pending.lock().ok()?;
        let p = (*pending)?;
        if self.covered(&p) {
            *pending = None;
            Some(p)
        } else {
            None
        }
    }

    /// Persists no purge beyond the state machine's durable snapshot: a crash then always
    /// finds, at or above the purge marker, a snapshot to rebuild the state from.
    pub fn guard_purges_with(&mut self, floor: crate::state_machine::SnapshotFloor) {
        self.floor = Some(floor);
    }

    /// Deletes the rows at or below the purge marker, a chunk per transaction, on the blocking
    /// pool: appends (and so heartbeats and writes) interleave with the chunks instead of
    /// waiting for one large DELETE (OpenNebula issue #1927).
    fn spawn_deleter(&self) {
        if self.deleting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (db, deleting) = (self.db.clone(), self.deleting.clone());
        tokio::task::spawn_blocking(move || {
            let mut total = 0usize;
            loop {
                let deleted = (|| -> Result<usize> {
                    let conn = db.lock()?;
                    let Some(marker) = get_meta::<LogId<u64>>(&conn, "last_purged")? else {
                        return Ok(0);
                    };
                    Ok(conn.execute(
                        "DELETE FROM logdb WHERE log_index IN
                           (SELECT log_index FROM logdb WHERE log_index <= ?1
                            ORDER BY log_index LIMIT ?2)",
                        params![marker.index as i64, DELETE_CHUNK],
                    )?)
                })();
                match deleted {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) => {
                        log_and_count(
                            "deleting purged log records failed; retried at the next purge",
                            &e,
                        );
                        break;
                    }
                }
                std::thread::yield_now();
            }
            deleting.store(false, Ordering::Release);
            if total > 0 {
                tracing::debug!(records = total, "purged log records deleted");
            }
        });
    }

    /// The server id this log belongs to, recorded at first start, so a copied var dir started
    /// under another SERVER_ID is refused instead of silently impersonating a peer.
    pub fn check_server_id(&self, id: u64) -> Result<()> {
        let conn = self.db.lock()?;
        match get_meta::<u64>(&conn, "server_id")? {
            Some(stored) if stored != id => Err(Error::ServerIdMismatch {
                path: self.path.clone(),
                stored,
                configured: id,
            }),
            Some(_) => Ok(()),
            None => put_meta(&conn, "server_id", &id),
        }
    }

    /// The newest index in the log, or the purge marker when nothing is above it.
    pub fn last_index(&self) -> Result<Option<u64>> {
        let conn = self.db.lock()?;
        let purged: Option<LogId<u64>> = get_meta(&conn, "last_purged")?;
        let floor = purged.map(|p| p.index as i64).unwrap_or(-1);
        let max: Option<i64> = conn.query_row(
            "SELECT max(log_index) FROM logdb WHERE log_index > ?1",
            [floor],
            |r| r.get(0),
        )?;
        Ok(max.map(|m| m as u64).or(purged.map(|p| p.index)))
    }

    /// The purge marker's index, if anything was purged.
    pub fn purged_index(&self) -> Result<Option<u64>> {
        let conn = self.db.lock()?;
        let purged: Option<LogId<u64>> = get_meta(&conn, "last_purged")?;
        Ok(purged.map(|p| p.index))
    }

    /// Whether the log has ever held anything (a vote or an entry).
    pub fn is_pristine(&self) -> Result<bool> {
        let conn = self.db.lock()?;
        let vote: Option<Vote<u64>> = get_meta(&conn, "vote")?;
        let n: i64 = conn.query_row("SELECT count(*) FROM logdb", [], |r| r.get(0))?;
        Ok(vote.is_none() && n == 0)
    }

    /// A flag kept beside the vote: per server, never replicated, never in a backup.
    pub fn flag(&self, key: &str) -> Result<bool> {
        let conn = self.db.lock()?;
        Ok(get_meta::<bool>(&conn, key)?.unwrap_or(false))
    }

    pub fn set_flag(&self, key: &str) -> Result<()> {
        let conn = self.db.lock()?;
        put_meta(&conn, key, &true)
    }

    fn reader(&self) -> LogReader {
        LogReader {
            path: self.path.clone(),
            conn: None,
        }
    }
}

/// A replication task's own read-only connection (WAL lets it read while the writer appends).
pub struct LogReader {
    path: PathBuf,
    conn: Option<Shared>,
}

impl LogReader {
    #[allow(clippy::result_large_err)] // openraft's own error type
    fn conn(&mut self) -> Result<Shared, SErr> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let c = open(&self.path, true).map_err(|e| storage(StorageIOError::read_logs, &e))?;
        let shared = Shared::new(c, "log reader");
        self.conn = Some(shared.clone());
        Ok(shared)
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let (start, end) = bounds(&range);
        self.conn()?
            .run(StorageIOError::read_logs, move |c| {
                read_range(c, start, end, false)
            })
            .await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        self.conn()?
            .run(StorageIOError::read_logs, move |c| {
                read_range(c, start, Some(end), true)
            })
            .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let (start, end) = bounds(&range);
        self.db
            .run(StorageIOError::read_logs, move |c| {
                read_range(c, start, end, false)
            })
            .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        // Rows a crash left below the purge marker go now.
        self.spawn_deleter();
        self.db
            .run(StorageIOError::read_logs, |c| {
                let purged: Option<LogId<u64>> = get_meta(c, "last_purged")?;
                let floor = purged.map(|p| p.index as i64).unwrap_or(-1);
                let last_raw: Option<(i64, Vec<u8>)> = c
                    .query_row(
                        "SELECT format, payload FROM logdb WHERE log_index > ?1
                         ORDER BY log_index DESC LIMIT 1",
                        [floor],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let last = match last_raw {
                    Some((format, raw)) => Some(entry_of(format, &raw)?.log_id),
                    None => purged,
                };
                Ok(LogState {
                    last_purged_log_id: purged,
                    last_log_id: last,
                })
            })
            .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SErr> {
        let vote = *vote;
        self.db
            .run(StorageIOError::write_vote, move |c| {
                put_meta(c, "vote", &vote)
            })
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SErr> {
        self.db
            .run(StorageIOError::read_vote, |c| get_meta(c, "vote"))
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SErr> {
        self.db
            .run(StorageIOError::write_logs, move |c| {
                put_meta(c, "committed", &committed)
            })
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SErr> {
        self.db
            .run(StorageIOError::read_logs, |c| {
                Ok(get_meta::<Option<LogId<u64>>>(c, "committed")?.flatten())
            })
            .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        for e in entries {
            let payload = log_format::encode_entry(&e);
            rows.push((
                e.log_id.index as i64,
                e.log_id.leader_id.term as i64,
                e.log_id.leader_id.node_id as i64,
                payload,
            ));
        }
        let marker = self.take_covered_pending();
        let res = self
            .db
            .run(StorageIOError::write_logs, move |c| {
                let tx = c.transaction()?;
                if let Some(m) = &marker {
                    put_purge_marker(&tx, m)?;
                }
                {
                    let mut st = tx.prepare_cached(
                        "INSERT OR REPLACE INTO logdb (log_index, term, leader_node_id, payload, format)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?;
                    for (i, t, n, p) in &rows {
                        st.execute(params![i, t, n, p, FORMAT as i64])?;
                    }
                }
                Ok(tx.commit()?)
            })
            .await;
        match res {
            Ok(()) => {
                if marker.is_some() {
                    self.spawn_deleter();
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        let idx = log_id.index as i64;
        self.db
            .run(StorageIOError::write_logs, move |c| {
                c.execute("DELETE FROM logdb WHERE log_index >= ?1", params![idx])?;
                Ok(())
            })
            .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        // openraft asks as soon as it decides to install a snapshot from the leader, before the
        // state machine has it on disk. Persisted then, a crash would leave the log purged past
        // both the state and the local snapshot. So the marker waits for that snapshot: openraft
        // reads nothing at or below what it asked for anyway, and a restart before the marker
        // is written finds the log as it was, or (once installed) the state ahead of the log,
        // which openraft's start-up purge covers.
        if !self.covered(&log_id) {
            if let Ok(mut pending) = self.pending.lock() {
                if pending.is_none_or(|p| p.index < log_id.index) {
                    *pending = Some(log_id);
                }
            }
            tracing::debug!(
                asked = log_id.index,
                "purge waits for the snapshot covering it to be on disk"
            );
            return Ok(());
        }
        if let Ok(mut pending) = self.pending.lock() {
            if pending.is_some_and(|p| p.index <= log_id.index) {
                *pending = None;
            }
        }
        self.db
            .run(StorageIOError::write_logs, move |c| {
                let tx = c.transaction()?;
                put_purge_marker(&tx, &log_id)?;
                Ok(tx.commit()?)
            })
            .await?;
        self.spawn_deleter();
        Ok(())
    }
}

/// Writes the purge marker (only the marker, in RaftCore's path: nothing reads below it, and
/// the rows themselves go in the background, again after a restart if a crash interrupted it).
fn put_purge_marker(tx: &rusqlite::Transaction<'_>, log_id: &LogId<u64>) -> Result<()> {
    put_meta(tx, "last_purged", log_id)?;
    // The same index as a plain integer, for SQL to hide the rows not yet deleted.
    tx.execute(
        "INSERT INTO raft_meta (key, value) VALUES ('purged_index', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![log_id.index as i64],
    )?;
    Ok(())
}

/// The term of the newest log record, read on its own connection (for `one.zone.raftstatus`);
/// `None` for an empty log.
pub fn last_log_term(path: &Path) -> Result<Option<u64>> {
    let conn = open(path, true)?;
    let term = conn
        .query_row(
            "SELECT term FROM logdb ORDER BY log_index DESC LIMIT 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(Error::db(path))?;
    Ok(term.map(|t| t as u64))
}
