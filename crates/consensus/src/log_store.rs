//! The Raft log in the `logdb` table, with the vote and the purge marker in `raft_meta`, both in
//! their own SQLite file (`raft.db`) so appends never wait on the state writer.
//!
//! Every write commits with `synchronous=FULL` before it returns (or before the flush callback
//! fires, but for a leader's own entries, below): an acknowledged write is on disk on a majority.
//!
//! One long-lived thread owns the writing connection and takes openraft's calls in order from a
//! channel (no hop to a fresh blocking-pool thread per call). `append` hands its entries to it
//! and returns at once, the flush callback firing when they are on disk, as openraft's storage
//! API allows; appends found queued together share one transaction and one fsync. openraft
//! 0.9.25's RaftCore waits for that callback before it goes on, replication included; so a
//! leader's own entries are reported at once and written meanwhile, the waits Raft's safety
//! needs moved to [`crate::durable`]. The entries are kept in memory (see
//! [`crate::log_cache`]), which spares committing and replicating a database read.
//!
//! The committed log id openraft reports before applying is kept in memory and written with the
//! next append's transaction, so committing costs no fsync of its own (Raft does not need it
//! durable). It goes in the appended rows' `committed` column (its index; the row at that index
//! gives the rest of the id), which SQLite writes in the same page as the entries: one WAL frame
//! per append instead of two, with a `raft_meta` row. After a power cut a server may then find a committed id older than what it had
//! applied, while its state database (written without fsync in a zone) may have lost the tail
//! too: it re-applies less than it once served. So it serves no local read until its state has
//! caught up with the log it found at start (see [`crate::read_gate`]); written with an fsync of
//! its own instead, it cost a second fsync per write on the leader.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use rusqlite::{params, Connection, OptionalExtension};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::blocking::{storage, Shared};
use crate::durable::{DurableLog, DurableSender};
use crate::error::{log_and_count, Error, Result};
use crate::log_cache::Recent;
use crate::log_format::{self, FORMAT};
use crate::read_gate::ReadGate;
use crate::types::TypeConfig;

type SErr = StorageError<u64>;

/// Purged rows deleted per transaction.
const DELETE_CHUNK: i64 = 1000;

/// Replication reads are capped by bytes so one AppendEntries finishes within a heartbeat.
const MAX_READ_BYTES: usize = 4 << 20;

/// Appends written in one transaction when the writer finds them queued together.
const MAX_APPENDS_PER_TXN: usize = 64;
/// Calls queued for the log writer. RaftCore awaits every call but `append`, whose entries
/// openraft bounds by its own in-flight limits.
const WRITER_QUEUE: usize = 1024;

const INSERT_ENTRY: &str =
    "INSERT OR REPLACE INTO logdb (log_index, term, leader_node_id, payload, format, committed)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logdb (
    log_index INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    leader_node_id INTEGER NOT NULL,
    payload BLOB NOT NULL,
    format INTEGER NOT NULL DEFAULT 0,
    committed INTEGER
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
            add_column(&c, "format", "INTEGER NOT NULL DEFAULT 0")?;
            add_column(&c, "committed", "INTEGER")?;
            c
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    })()
    .map_err(at)
}

/// Adds a column a log written by an older build lacks: `format` (its rows are format 0, written
/// before formats were numbered) and `committed` (its committed id is in `raft_meta`).
fn add_column(c: &Connection, name: &str, decl: &str) -> rusqlite::Result<()> {
    let has: bool = c.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('logdb') WHERE name = ?1",
        [name],
        |r| r.get(0),
    )?;
    if !has {
        c.execute_batch(&format!("ALTER TABLE logdb ADD COLUMN {name} {decl}"))?;
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

/// The newest index in the log, or the purge marker's when nothing is above it.
fn last_index_of(conn: &Connection) -> Result<Option<u64>> {
    Ok(last_log_id_of(conn)?.map(|l| l.index))
}

/// The log id of a `logdb` row.
fn log_id_of_row(index: i64, term: i64, node: i64) -> LogId<u64> {
    LogId::new(
        openraft::CommittedLeaderId::new(term as u64, node as u64),
        index as u64,
    )
}

/// The newest entry's log id, or the purge marker when nothing is above it.
fn last_log_id_of(conn: &Connection) -> Result<Option<LogId<u64>>> {
    let purged: Option<LogId<u64>> = get_meta(conn, "last_purged")?;
    let floor = purged.map(|p| p.index as i64).unwrap_or(-1);
    let last = conn
        .query_row(
            "SELECT log_index, term, leader_node_id FROM logdb WHERE log_index > ?1
             ORDER BY log_index DESC LIMIT 1",
            [floor],
            |r| Ok(log_id_of_row(r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(last.or(purged))
}

/// The committed log id last written (with an append): the newest row's `committed` index with
/// the log id of the row at that index, or the purge marker once that row is purged (purged
/// entries were applied, so committed); `raft_meta`'s, written by older builds and by appends
/// without entries, if it is newer.
fn saved_committed(conn: &Connection) -> Result<Option<LogId<u64>>> {
    let meta = get_meta::<Option<LogId<u64>>>(conn, "committed")?.flatten();
    let newest: Option<i64> = conn
        .query_row(
            "SELECT committed FROM logdb WHERE committed IS NOT NULL
             ORDER BY log_index DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let Some(index) = newest else {
        return Ok(meta);
    };
    let purged: Option<LogId<u64>> = get_meta(conn, "last_purged")?;
    let in_rows = match purged {
        Some(p) if index <= p.index as i64 => Some(p),
        // A leader may commit an entry before its own copy is written: a crash then leaves the
        // newest rows naming an entry that is not there, and the newest one that is counts.
        _ => conn
            .query_row(
                "SELECT c.log_index, c.term, c.leader_node_id
                 FROM logdb l JOIN logdb c ON c.log_index = l.committed
                 ORDER BY l.log_index DESC LIMIT 1",
                [],
                |r| Ok(log_id_of_row(r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?,
    };
    Ok(meta.max(in_rows))
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
    /// The writer thread's queue; the thread ends when the last clone is dropped.
    jobs: mpsc::Sender<Job>,
    /// The newest entries, flushed or not (see [`crate::log_cache`]).
    recent: Arc<Mutex<Recent>>,
    /// Reads for RaftCore (commits) on a connection of their own, so they never wait for an
    /// fsync in progress.
    reads: LogReader,
    /// A background deletion of purged rows is running.
    deleting: Arc<AtomicBool>,
    /// The durable snapshot, beyond which no purge is persisted (see
    /// [`crate::state_machine::SnapshotFloor`]); unset in tests of the log alone.
    floor: Option<crate::state_machine::SnapshotFloor>,
    /// A purge openraft asked for before the snapshot covering it was on disk: persisted with
    /// the first append (or purge) after that snapshot is. Shared by every clone.
    pending: Arc<Mutex<Option<LogId<u64>>>>,
    /// The newest committed log id openraft reported; written with the next append.
    committed: Arc<Mutex<Option<LogId<u64>>>>,
    /// Closed until the state has applied the log found at open (see [`crate::read_gate`]).
    gate: ReadGate,
    /// How far the log is on disk (see [`crate::durable`]).
    durable: Arc<DurableSender>,
    /// This server's id once it may report its own appends as a leader flushed before their
    /// fsync ([`LogStore::flush_in_parallel_when_leading`]).
    parallel_as: Arc<OnceLock<u64>>,
    /// The vote last saved: whose leadership this server's appends are under.
    vote: Arc<Mutex<Option<Vote<u64>>>>,
}

impl LogStore {
    pub fn open(path: &Path) -> Result<LogStore> {
        // 0600 before SQLite opens it: its -wal and -shm files copy the database file's mode.
        sqlstore::files::private_file(path).map_err(Error::io(path))?;
        let conn = open(path, false)?;
        let committed: Option<LogId<u64>> = saved_committed(&conn)?;
        let last = last_log_id_of(&conn)?;
        let gate = ReadGate::at_boot(last.map(|l| l.index));
        let durable = Arc::new(DurableSender::new(last));
        let committed = Arc::new(Mutex::new(committed));
        let db = Shared::new(conn, "log");
        let deleting = Arc::new(AtomicBool::new(false));
        let recent = Arc::new(Mutex::new(Recent::default()));
        let (jobs, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = Writer {
            db: db.clone(),
            deleting: deleting.clone(),
            recent: recent.clone(),
            committed: committed.clone(),
            durable: durable.clone(),
            persisted: *committed
                .lock()
                .map_err(|_| Error::Poisoned("committed log id"))?,
        };
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(Error::io(path))?;
        Ok(LogStore {
            path: path.to_path_buf(),
            db,
            jobs,
            reads: LogReader {
                path: path.to_path_buf(),
                conn: None,
                recent: recent.clone(),
            },
            recent,
            deleting,
            floor: None,
            pending: Arc::new(Mutex::new(None)),
            committed,
            gate,
            durable,
            parallel_as: Arc::new(OnceLock::new()),
            vote: Arc::new(Mutex::new(None)),
        })
    }

    /// From now on, while server `me` leads, its own appends are reported flushed as soon as
    /// they are queued, so openraft replicates them while they are written here: a write then
    /// waits for one fsync after another's instead of two. What keeps it safe is in
    /// [`crate::durable`]; the peer network and the state machine given [`LogStore::durable`]
    /// must be the ones Raft runs with.
    pub fn flush_in_parallel_when_leading(&self, me: u64) {
        // A second call names the same server (one log is one server's).
        let _ = self.parallel_as.set(me);
    }

    /// How far the log is on disk.
    pub fn durable(&self) -> DurableLog {
        self.durable.subscribe()
    }

    /// The leadership whose entries may be reported flushed before their fsync: this server's,
    /// once a quorum granted it and it saved that vote.
    fn leading(&self) -> Option<openraft::CommittedLeaderId<u64>> {
        let me = *self.parallel_as.get()?;
        let vote = (*self.vote.lock().ok()?)?;
        let id = vote.leader_id();
        (vote.is_committed() && id.voted_for() == Some(me))
            .then(|| openraft::CommittedLeaderId::new(id.get_term(), me))
    }

    /// The gate of local reads for this process, closed until the state has applied the log
    /// found when this store was opened.
    pub fn read_gate(&self) -> ReadGate {
        self.gate.clone()
    }

    /// [`RaftLogStorage::append`] with `done` told when the entries are on disk: they are
    /// readable when this returns, durable when `done` hears `Ok`.
    async fn append_then<I>(&mut self, entries: I, done: Flushed) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>>,
    {
        let werr = |e: Error| storage(StorageIOError::write_logs, &e);
        let leading = self.leading();
        let mut ours = leading.is_some();
        let mut rows = Vec::new();
        {
            // Readable from the moment this returns, as openraft requires.
            let mut recent = self.recent().map_err(werr)?;
            for e in entries {
                ours &= Some(e.log_id.leader_id) == leading;
                let payload = log_format::encode_entry(&e);
                rows.push((
                    e.log_id.index as i64,
                    e.log_id.leader_id.term as i64,
                    e.log_id.leader_id.node_id as i64,
                    payload,
                ));
                let size = rows.last().map_or(0, |r| r.3.len());
                recent.push(e, size);
            }
        }
        let marker = self.take_covered_pending();
        // The leader's own entries: reported now, written meanwhile (see crate::durable). A
        // failed write then reaches openraft through what waits for the log to be on disk.
        let (now, later): (Option<Flushed>, Flushed) = if ours {
            (Some(done), Box::new(|_| {}))
        } else {
            (None, done)
        };
        let job = Job::Append(Append {
            rows,
            marker,
            done: later,
        });
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(job).await {
            let stopped = || Err(std::io::Error::other("the log writer stopped"));
            match (now, job) {
                (Some(done), _) => done(stopped()),
                (None, Job::Append(a)) => (a.done)(stopped()),
                (None, Job::Run(_)) => {}
            }
            return Err(werr(Error::WriterStopped("log")));
        }
        if let Some(done) = now {
            done(Ok(()));
        }
        Ok(())
    }

    /// Runs `f` on the writer thread, after every call queued before it.
    async fn call<T, F>(&self, mk: fn(AnyError) -> StorageIOError<u64>, f: F) -> Result<T, SErr>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |c| {
            // A failed send means the caller is gone: nobody is left to tell.
            let _ = tx.send(f(c));
        }));
        let stopped = Error::WriterStopped("log");
        let res = match self.jobs.send(job).await {
            Ok(()) => rx.await.unwrap_or(Err(stopped)),
            Err(_) => Err(stopped),
        };
        res.map_err(|e| storage(mk, &e))
    }

    fn recent(&self) -> Result<std::sync::MutexGuard<'_, Recent>> {
        self.recent.lock().map_err(|_| Error::Poisoned("log cache"))
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

    /// Deletes purged rows in the background (see [`spawn_deleter`]).
    fn spawn_deleter(&self) {
        spawn_deleter(&self.db, &self.deleting);
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
        last_index_of(&conn)
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
            recent: self.recent.clone(),
        }
    }
}

/// A replication task's own read-only connection (WAL lets it read while the writer appends),
/// in front of it the entries held in memory.
#[derive(Clone)]
pub struct LogReader {
    path: PathBuf,
    conn: Option<Shared>,
    recent: Arc<Mutex<Recent>>,
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

    /// `[start, end)`: what memory holds is taken first, so an entry flushed and evicted
    /// meanwhile is still found, in the database.
    async fn read(
        &mut self,
        start: u64,
        end: Option<u64>,
        limit_bytes: bool,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let split = {
            let recent = self
                .recent
                .lock()
                .map_err(|_| storage(StorageIOError::read_logs, &Error::Poisoned("log cache")))?;
            recent.split(start, end, limit_bytes.then_some(MAX_READ_BYTES))
        };
        let Some((db_start, db_end)) = split.db else {
            return Ok(split.cached);
        };
        let mut head = self
            .conn()?
            .run(StorageIOError::read_logs, move |c| {
                read_range(c, db_start, db_end, limit_bytes)
            })
            .await?;
        // The cached part follows only a database part read in full.
        let complete = match (head.last(), split.cached.first()) {
            (Some(last), Some(next)) => last.log_id.index + 1 == next.log_id.index,
            // Nothing below the cache (purged): what follows is all there is.
            (None, Some(_)) => true,
            _ => false,
        };
        if complete {
            head.extend(split.cached);
        }
        Ok(head)
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let (start, end) = bounds(&range);
        self.read(start, end, false).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        self.read(start, Some(end), true).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let (start, end) = bounds(&range);
        self.reads.read(start, end, false).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        // Rows a crash left below the purge marker go now.
        self.spawn_deleter();
        self.call(StorageIOError::read_logs, |c| {
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
        self.call(StorageIOError::write_vote, move |c| {
            put_meta(c, "vote", &vote)
        })
        .await?;
        if let Ok(mut saved) = self.vote.lock() {
            *saved = Some(vote);
        }
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SErr> {
        let vote: Option<Vote<u64>> = self
            .call(StorageIOError::read_vote, |c| get_meta(c, "vote"))
            .await?;
        // openraft restores a leader whose own committed vote it reads at start, with no
        // election. A leader that reported appends before their fsync may have lost a tail its
        // followers hold: leading the same term again, it would write other entries under the
        // same log ids, which the followers take for the ones they have. So it starts as a
        // candidate of that term would, and leads again only through an election (a new term).
        let me = self.parallel_as.get().copied();
        Ok(vote.map(|v| {
            let id = v.leader_id();
            if v.is_committed() && me.is_some() && id.voted_for() == me {
                Vote::new(id.get_term(), id.node_id)
            } else {
                v
            }
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SErr> {
        // No fsync of its own: the next append writes it (see the module's comment).
        let mut kept = self.committed.lock().map_err(|_| {
            storage(
                StorageIOError::write_logs,
                &Error::Poisoned("committed log id"),
            )
        })?;
        if committed > *kept {
            *kept = committed;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SErr> {
        let kept = self.committed.lock().map_err(|_| {
            storage(
                StorageIOError::read_logs,
                &Error::Poisoned("committed log id"),
            )
        })?;
        Ok(*kept)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_then(entries, Box::new(move |r| callback.log_io_completed(r)))
            .await
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        let idx = log_id.index;
        self.gate.truncated_from(idx);
        self.recent()
            .map_err(|e| storage(StorageIOError::write_logs, &e))?
            .truncate(idx);
        let durable = self.durable.clone();
        self.call(StorageIOError::write_logs, move |c| {
            c.execute(
                "DELETE FROM logdb WHERE log_index >= ?1",
                params![idx as i64],
            )?;
            durable.truncated(last_log_id_of(c)?);
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        // openraft reads nothing at or below a purge it asked for.
        self.recent()
            .map_err(|e| storage(StorageIOError::write_logs, &e))?
            .purge(log_id.index);
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
        self.call(StorageIOError::write_logs, move |c| {
            let tx = c.transaction()?;
            put_purge_marker(&tx, &log_id)?;
            Ok(tx.commit()?)
        })
        .await?;
        self.spawn_deleter();
        Ok(())
    }
}

/// A log record to insert: index, term, leader's node id, encoded entry.
type Row = (i64, i64, i64, Vec<u8>);

struct Append {
    rows: Vec<Row>,
    /// A purge marker held back until now (see [`LogStore::purge`]).
    marker: Option<LogId<u64>>,
    done: Flushed,
}

/// Told when an append is on disk (openraft's flush callback).
type Flushed = Box<dyn FnOnce(std::io::Result<()>) + Send>;

enum Job {
    Append(Append),
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// The thread that owns the writing connection.
struct Writer {
    db: Shared,
    deleting: Arc<AtomicBool>,
    recent: Arc<Mutex<Recent>>,
    /// The committed log id openraft reported last ([`LogStore::save_committed`]).
    committed: Arc<Mutex<Option<LogId<u64>>>>,
    durable: Arc<DurableSender>,
    /// The committed log id on disk.
    persisted: Option<LogId<u64>>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut next = None;
        loop {
            let job = match next.take() {
                Some(j) => j,
                None => match rx.blocking_recv() {
                    Some(j) => j,
                    None => return,
                },
            };
            match job {
                Job::Run(f) => match self.db.lock() {
                    Ok(mut c) => f(&mut c),
                    // Dropping `f` drops its reply: the caller hears the writer stopped.
                    Err(_) => return,
                },
                Job::Append(first) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_APPENDS_PER_TXN {
                        match rx.try_recv() {
                            Ok(Job::Append(a)) => batch.push(a),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if !self.append(batch) {
                        // A leader's appends may have been reported before this write: the
                        // log would have a hole. Every later call fails, and Raft stops.
                        return;
                    }
                }
            }
        }
    }

    /// Writes the queued appends in one transaction, then tells openraft they are on disk;
    /// whether they are.
    fn append(&mut self, batch: Vec<Append>) -> bool {
        let last = batch
            .iter()
            .filter_map(|a| a.rows.last())
            .max_by_key(|r| r.0)
            .map(|r| log_id_of_row(r.0, r.1, r.2));
        let marker = batch
            .iter()
            .filter_map(|a| a.marker)
            .max_by_key(|m| m.index);
        let committed = self.committed.lock().map_or(self.persisted, |c| *c);
        let res = (|| -> Result<()> {
            let mut c = self.db.lock()?;
            let tx = c.transaction()?;
            if let Some(m) = &marker {
                put_purge_marker(&tx, m)?;
            }
            let mut rows = batch.iter().flat_map(|a| &a.rows).peekable();
            if rows.peek().is_none() && committed != self.persisted {
                put_meta(&tx, "committed", &committed)?;
            }
            {
                let at = committed.map(|c| c.index as i64);
                let mut st = tx.prepare_cached(INSERT_ENTRY)?;
                for (i, t, n, p) in rows {
                    st.execute(params![i, t, n, p, FORMAT as i64, at])?;
                }
            }
            Ok(tx.commit()?)
        })();
        match res {
            Ok(()) => {
                self.persisted = committed;
                if let Some(last) = last {
                    if let Ok(mut recent) = self.recent.lock() {
                        recent.flushed(last.index);
                    }
                    self.durable.written(last);
                }
                if marker.is_some() {
                    spawn_deleter(&self.db, &self.deleting);
                }
                for a in batch {
                    (a.done)(Ok(()));
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "writing the log failed: this server stops");
                crate::error::count_logged();
                self.durable.failed();
                for a in batch {
                    (a.done)(Err(std::io::Error::other(e.to_string())));
                }
                false
            }
        }
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

/// Deletes the rows at or below the purge marker on a thread of its own, a chunk per
/// transaction: appends (and so heartbeats and writes) interleave with the chunks instead of
/// waiting for one large DELETE (OpenNebula issue #1927).
fn spawn_deleter(db: &Shared, deleting: &Arc<AtomicBool>) {
    if deleting.swap(true, Ordering::AcqRel) {
        return;
    }
    let (db, flag) = (db.clone(), deleting.clone());
    let spawned = std::thread::Builder::new()
        .name("raft-log-purge".into())
        .spawn(move || {
            let deleting = flag;
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
    if let Err(e) = spawned {
        deleting.store(false, Ordering::Release);
        log_and_count(
            "could not start deleting purged log records; retried at the next purge",
            &e,
        );
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn at(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    fn entries(from: u64, to: u64) -> Vec<Entry<TypeConfig>> {
        (from..=to)
            .map(|i| Entry {
                log_id: at(i),
                payload: EntryPayload::Blank,
            })
            .collect()
    }

    /// An append whose flush is awaited.
    async fn append(log: &mut LogStore, from: u64, to: u64) {
        let (tx, rx) = oneshot::channel();
        log.append_then(
            entries(from, to),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .await
        .unwrap();
        rx.await.unwrap().unwrap();
    }

    /// Once it may, a leader's log reports its own entries flushed at once and writes them
    /// meanwhile, and what waits on `durable` hears when they are on disk; entries of another
    /// leadership (this server following, or its own older term) still wait for their fsync.
    #[tokio::test]
    #[allow(clippy::await_holding_lock)]
    async fn a_leaders_own_entries_are_reported_at_once_and_are_durable_later() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(&dir.path().join("raft.db")).unwrap();
        log.flush_in_parallel_when_leading(0);
        let durable = log.durable();
        append(&mut log, 1, 2).await;
        // Term 1 led by server 0, granted: these entries are this server's own.
        log.save_vote(&Vote::new_committed(1, 0)).await.unwrap();

        let db = log.db.clone();
        let held = db.lock().unwrap();
        let (tx, rx) = oneshot::channel();
        log.append_then(
            entries(3, 4),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .await
        .unwrap();
        rx.await.unwrap().unwrap();
        let on_disk = tokio::spawn({
            let durable = durable.clone();
            async move { durable.reached(4).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!on_disk.is_finished(), "on disk before it was written");
        drop(held);
        on_disk.await.unwrap().unwrap();

        // Server 1 leads term 2: its entries wait for the fsync again.
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        let held = db.lock().unwrap();
        let (tx, mut rx) = oneshot::channel();
        let theirs = (5..=5)
            .map(|i| Entry {
                log_id: LogId::new(CommittedLeaderId::new(2, 1), i),
                payload: EntryPayload::Blank,
            })
            .collect::<Vec<_>>();
        log.append_then(
            theirs,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            rx.try_recv().is_err(),
            "a follower's entries reported before their fsync"
        );
        drop(held);
        rx.await.unwrap().unwrap();
        durable.reached(5).await.unwrap();
    }

    /// A server whose own appends as leader may have been reported before their fsync never
    /// resumes that leadership at start (openraft would, from a committed vote of its own): its
    /// lost tail may live on in the followers under the same log ids.
    #[tokio::test]
    async fn a_leader_that_reported_before_its_fsync_is_not_restored_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        let mut log = LogStore::open(&path).unwrap();
        log.save_vote(&Vote::new_committed(3, 0)).await.unwrap();
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(3, 0))
        );
        drop(log);

        let mut log = LogStore::open(&path).unwrap();
        log.flush_in_parallel_when_leading(0);
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 0)));
        // Another server's leadership is what this one follows: read as it is.
        log.save_vote(&Vote::new_committed(4, 1)).await.unwrap();
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(4, 1))
        );
    }

    /// openraft sends the entries to the followers as soon as `append` returns: they must be
    /// readable then, while their fsync is still to come; and `done` hears of them only once
    /// they are in the database.
    #[tokio::test]
    // The test holds the writer's connection on purpose, to keep the flush from happening.
    #[allow(clippy::await_holding_lock)]
    async fn appended_entries_are_readable_before_their_flush_and_durable_when_it_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        let mut log = LogStore::open(&path).unwrap();
        append(&mut log, 1, 2).await;

        // The writer waits on the connection while the test holds it.
        let db = log.db.clone();
        let held = db.lock().unwrap();
        let (tx, mut rx) = oneshot::channel();
        log.append_then(
            entries(3, 5),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .await
        .unwrap();
        let mut reader = log.get_log_reader().await;
        let got = reader.try_get_log_entries(1..6).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(
            rx.try_recv().is_err(),
            "reported flushed before it was written"
        );
        drop(held);
        rx.await.unwrap().unwrap();

        drop((log, reader, db));
        let mut reopened = LogStore::open(&path).unwrap();
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(at(5)));
    }

    /// Reads below the entries held in memory come from the database and join them without a
    /// gap.
    #[tokio::test]
    async fn a_read_spanning_the_database_and_memory_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        let mut log = LogStore::open(&path).unwrap();
        append(&mut log, 1, 10).await;
        drop(log);
        let mut log = LogStore::open(&path).unwrap();
        append(&mut log, 11, 12).await;
        let got = log.try_get_log_entries(8..).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [8, 9, 10, 11, 12]
        );
        log.truncate(at(12)).await.unwrap();
        log.purge(at(9)).await.unwrap();
        let got = log.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [10, 11]
        );
    }

    /// Committing costs no transaction of its own: the committed id reaches the disk with the
    /// next append, and until then a reopened log reports the one written before.
    #[tokio::test]
    async fn the_committed_id_is_written_with_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        let mut log = LogStore::open(&path).unwrap();
        append(&mut log, 1, 3).await;
        log.save_committed(Some(at(2))).await.unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(at(2)));
        // openraft never moves it back; a stale report does not either.
        log.save_committed(Some(at(1))).await.unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(at(2)));
        drop(log);

        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), None);
        log.save_committed(Some(at(3))).await.unwrap();
        append(&mut log, 4, 4).await;
        drop(log);
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(at(3)));
    }

    /// The committed id goes in the appended rows, not in `raft_meta`: one page written per
    /// append. A log of an older build, whose committed id is in `raft_meta` and whose rows have
    /// no `committed` column, reports that id, then the newer one its next append carries.
    #[tokio::test]
    async fn the_committed_id_rides_in_the_appended_rows_and_an_older_logs_id_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE logdb (log_index INTEGER PRIMARY KEY, term INTEGER NOT NULL,
                   leader_node_id INTEGER NOT NULL, payload BLOB NOT NULL,
                   format INTEGER NOT NULL DEFAULT 0);
                 CREATE TABLE raft_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
            )
            .unwrap();
            put_meta(&c, "committed", &Some(at(2))).unwrap();
        }
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(at(2)));
        append(&mut log, 1, 3).await;
        log.save_committed(Some(at(3))).await.unwrap();
        append(&mut log, 4, 5).await;
        drop(log);

        let c = Connection::open(&path).unwrap();
        let meta: Option<LogId<u64>> = get_meta::<Option<LogId<u64>>>(&c, "committed")
            .unwrap()
            .flatten();
        assert_eq!(meta, Some(at(2)), "the append wrote no raft_meta row");
        let carried: Vec<Option<i64>> = c
            .prepare("SELECT committed FROM logdb ORDER BY log_index")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(carried, [Some(2), Some(2), Some(2), Some(3), Some(3)]);
        drop(c);
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(at(3)));
    }

    /// A leader may count an entry committed before its own copy is written; if it stops then,
    /// the rows name an entry its log does not hold, and the newest committed id it does hold
    /// counts. Once the named entry is purged, the purge marker (applied, so committed) does.
    #[tokio::test]
    async fn a_committed_id_naming_a_missing_entry_falls_back_to_one_the_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        let mut log = LogStore::open(&path).unwrap();
        log.save_committed(Some(at(1))).await.unwrap();
        append(&mut log, 1, 2).await;
        log.save_committed(Some(at(4))).await.unwrap();
        append(&mut log, 3, 3).await;
        drop(log);
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(at(1)));

        append(&mut log, 4, 6).await;
        drop(log);
        {
            let mut c = Connection::open(&path).unwrap();
            let tx = c.transaction().unwrap();
            put_purge_marker(&tx, &at(5)).unwrap();
            tx.execute("DELETE FROM logdb WHERE log_index <= 5", [])
                .unwrap();
            // The newest row names entry 4, below the marker.
            tx.execute("UPDATE logdb SET committed = 4", []).unwrap();
            tx.commit().unwrap();
        }
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), Some(at(5)));
    }

    /// The read gate waits for the log found at open, less what a truncation removes (never
    /// committed, so never applied).
    #[tokio::test]
    async fn the_read_gate_waits_for_the_log_found_at_open_less_a_truncated_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        let mut log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_gate().waits_for(), None);
        append(&mut log, 1, 8).await;
        drop(log);
        let mut log = LogStore::open(&path).unwrap();
        let gate = log.read_gate();
        assert_eq!(gate.waits_for(), Some(8));
        log.truncate(at(6)).await.unwrap();
        assert_eq!(gate.waits_for(), Some(5));
        assert!(!gate.is_open(|| Some(4)));
        assert!(gate.is_open(|| Some(5)));
    }
}
