//! The state machine is the SQL state database itself. Each `apply` runs its entries' transactions
//! and records `last_applied` (and the membership) in the same SQLite transaction, so a crash can
//! never apply an entry twice or lose one.
//!
//! Snapshots are consistent copies of the whole state database (`VACUUM INTO`), whose
//! `raft_sm_meta` row *is* the snapshot's meta: data and meta agree by construction.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use sqlstore::{params, Conn, Location, Optional, SqlTxn, TxnOutcome, Undo};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::blocking::{storage, Shared};
use crate::error::{log_and_count, Error, Result};
use crate::log_format::{self, FORMAT};
use crate::types::{BatchResult, ServerNode, TypeConfig};

type SErr = StorageError<u64>;
type Membership = StoredMembership<u64, ServerNode>;

const CURRENT: &str = "current.db";

pub struct StateMachine {
    location: Location,
    snap_dir: PathBuf,
    db: Shared<Conn>,
    receiving: Option<PathBuf>,
    health: DbHealth,
    floor: SnapshotFloor,
    /// Moved after each commit, for the caches in front of the state (`sqlstore::changes`).
    changes: sqlstore::Changes,
    /// A federation's master: writes to the federated tables are also recorded in the
    /// federated log (`sqlstore::apply_batch`).
    federated: bool,
    /// Set when the log may report a leader's appends flushed before their fsync: an entry is
    /// applied only once it is on disk (see [`crate::durable`]).
    durable: Option<crate::durable::DurableLog>,
    applied: AppliedMark,
}

/// The last log index the state database committed, moved by its thread as each apply commits.
/// Writers are answered from there (`callers::Callers`), before openraft's metrics show the
/// apply: what a server says it applied must not trail what it answered.
#[derive(Clone, Default)]
pub struct AppliedMark(Arc<AtomicU64>);

impl AppliedMark {
    /// The index, if this process applied or installed any.
    pub fn get(&self) -> Option<u64> {
        self.0.load(Ordering::Acquire).checked_sub(1)
    }

    fn advance(&self, index: u64) {
        // Stored plus one: 0 says nothing yet, and index 0 (the first membership) is an index.
        self.0.fetch_max(index.saturating_add(1), Ordering::Release);
    }
}

/// The log id of the snapshot that is on disk for good (`snapshots/current.db`, its rename
/// synced), shared with the log store, which never persists a purge beyond it.
///
/// openraft 0.9 purges the log the moment it decides to install a snapshot from the leader,
/// while the state machine installs it in the background: a crash or a power cut in between
/// left a log purged past both the state database and the local snapshot, from which the
/// server could not start (seen in CI: purged to 666, local snapshot at 524). The purge
/// marker a crash can leave is now never ahead of a snapshot that can replace what it purged.
#[derive(Clone, Default)]
pub struct SnapshotFloor(Arc<Mutex<Option<LogId<u64>>>>);

impl SnapshotFloor {
    /// The durable snapshot's log id, if there is one.
    pub fn get(&self) -> Option<LogId<u64>> {
        self.0.lock().ok().and_then(|g| *g)
    }

    fn set(&self, id: Option<LogId<u64>>) {
        if let Ok(mut g) = self.0.lock() {
            *g = id;
        }
    }

    /// Puts the snapshot of `id` in place (`put`) and makes `id` the floor, under the floor's
    /// lock, unless `only_newer` and a snapshot as new is in place already: a build that copied
    /// the state before an install landed must not move `current.db` (and the purges it
    /// allows) back below the install. Whether `put` ran.
    fn put_with(
        &self,
        id: Option<LogId<u64>>,
        only_newer: bool,
        put: impl FnOnce() -> Result<()>,
    ) -> Result<bool> {
        // Each change is one assignment: a poisoned lock still holds a consistent id.
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if only_newer && *g >= id {
            return Ok(false);
        }
        put()?;
        *g = id;
        Ok(true)
    }
}

/// Whether the state database answers, so the server can refuse writes and say why
/// (raftstatus, `oned.log`). Two marks, each cleared only by whoever set it: the apply's,
/// while it waits for a lost MySQL server to come back, and the watch's (`oned::db_watch`),
/// which finds a lost server when nothing is being applied. A database that answers the watch
/// again does not make writes welcome while the apply has not got back to it.
#[derive(Clone, Default)]
pub struct DbHealth(Arc<Mutex<Marks>>);

/// The marks of [`DbHealth`], the apply's first.
type Marks = [Option<String>; 2];

/// Who set a [`DbHealth`] mark.
#[derive(Clone, Copy)]
pub enum Mark {
    Apply = 0,
    Watch = 1,
}

impl DbHealth {
    /// Why the state database cannot be written now, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let marks = self.0.lock().ok()?;
        marks.iter().flatten().next().cloned()
    }

    /// `mark`'s problem, if set.
    pub fn marked(&self, mark: Mark) -> Option<String> {
        self.0.lock().ok().and_then(|m| m[mark as usize].clone())
    }

    pub fn set(&self, mark: Mark, problem: Option<String>) {
        if let Ok(mut m) = self.0.lock() {
            m[mark as usize] = problem;
        }
    }
}

/// The format and the two blobs of `raft_sm_meta`, all absent before the first apply.
type MetaRow = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// `what` names the database in an error: the state database or a snapshot.
fn read_meta(conn: &Conn, what: &'static str) -> Result<(Option<LogId<u64>>, Membership)> {
    let mut st = conn.prepare_cached("SELECT * FROM raft_sm_meta WHERE id = 1")?;
    let names = st.column_names();
    let at = |name: &str| names.iter().position(|n| n == name);
    let (applied_at, membership_at) = (at("last_applied"), at("membership"));
    // A copy made before formats were numbered has no such column: format 0.
    let format_at = at("format");
    let row: Option<MetaRow> = st
        .query_row((), |r| {
            let format = match format_at {
                Some(i) => u64::try_from(r.get::<i64>(i)?).unwrap_or(u64::MAX),
                None => 0,
            };
            let blob = |i: Option<usize>| match i {
                Some(i) => r.get::<Option<Vec<u8>>>(i),
                None => Ok(None),
            };
            Ok((format, blob(applied_at)?, blob(membership_at)?))
        })
        .optional()?;
    let Some((format, applied, membership)) = row else {
        return Ok((None, Membership::default()));
    };
    if format > FORMAT {
        return Err(Error::NewerFormat {
            what,
            found: format,
            known: FORMAT,
        });
    }
    let applied = match applied {
        Some(b) => log_format::decode_applied(format, &b)?,
        None => None,
    };
    let membership = match membership {
        Some(b) => log_format::decode_membership(format, &b)?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

fn write_meta(conn: &Conn, applied: &Option<LogId<u64>>, membership: &Membership) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO raft_sm_meta (id, last_applied, membership, format) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET last_applied = excluded.last_applied,
           membership = excluded.membership, format = excluded.format",
    )?
    .execute(params![
        log_format::encode_applied(applied),
        log_format::encode_membership(membership),
        FORMAT as i64
    ])?;
    Ok(())
}

/// Moves `raft_sm_meta` to `applied`, and to `membership` when the apply changed it. Most
/// applies change no membership: then only `last_applied` is written, in place, in this
/// server's format (reading the stored membership back and writing it again was 3 % of a
/// follower's CPU under writes). The full row is read and written again the first time (no
/// row yet), after an upgrade (an older format: every blob rewritten in this one), and to
/// refuse a newer format.
fn record_applied(tx: &Conn, applied: LogId<u64>, membership: Option<Membership>) -> Result<()> {
    if membership.is_none() {
        let moved = tx
            .prepare_cached(
                "UPDATE raft_sm_meta SET last_applied = ?1 WHERE id = 1 AND format = ?2",
            )?
            .execute(params![
                log_format::encode_applied(&Some(applied)),
                FORMAT as i64
            ])?;
        if moved == 1 {
            return Ok(());
        }
    }
    let (_, stored) = read_meta(tx, "state database")?;
    write_meta(tx, &Some(applied), &membership.unwrap_or(stored))
}

fn snapshot_id(applied: &Option<LogId<u64>>) -> String {
    match applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
        None => "empty".to_string(),
    }
}

/// The meta of a snapshot file; refuses one of a format newer than this server's.
fn meta_of_file(path: &Path) -> Result<SnapshotMeta<u64, ServerNode>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(Error::db(path))?;
    let (applied, membership) = read_meta(&Conn::from(conn), "snapshot")?;
    Ok(SnapshotMeta {
        last_log_id: applied,
        last_membership: membership,
        snapshot_id: snapshot_id(&applied),
    })
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

fn fsync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(path))
}

/// Removes `path` if it is there.
fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path)(e)),
        _ => Ok(()),
    }
}

/// A name for a temporary snapshot file, unique in this process; leftovers of earlier
/// processes (`recv-*`) are removed at start.
fn temp_name(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("recv-{kind}-{}.db", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Removes a temporary file nobody needs any more; a failure leaves only litter, removed at the
/// next start, so it is logged and counted.
async fn discard(path: PathBuf) {
    if let Err(e) = tokio::fs::remove_file(&path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            log_and_count(
                "could not remove a temporary snapshot file",
                &Error::io(&path)(e),
            );
        }
    }
}

impl StateMachine {
    /// `conn` is the state database's read-write connection (opened by `sqlstore::open_state`
    /// on `location`); `snap_dir` keeps the current snapshot.
    pub fn new(location: &Location, conn: Conn, snap_dir: &Path) -> Result<StateMachine> {
        // Snapshots are copies of the state database: as private as it is.
        sqlstore::files::private_dir(snap_dir).map_err(Error::io(snap_dir))?;
        // Leftovers of a transfer interrupted by a crash.
        let dir = std::fs::read_dir(snap_dir).map_err(Error::io(snap_dir))?;
        for f in dir {
            let f = f.map_err(Error::io(snap_dir))?;
            if f.file_name().to_string_lossy().starts_with("recv-") {
                if let Err(e) = remove_if_present(&f.path()) {
                    log_and_count("could not remove an interrupted snapshot transfer", &e);
                }
            }
        }
        let floor = SnapshotFloor::default();
        let current = snap_dir.join(CURRENT);
        if current.exists() {
            floor.set(meta_of_file(&current)?.last_log_id);
        }
        Ok(StateMachine {
            location: location.clone(),
            snap_dir: snap_dir.to_path_buf(),
            // Applies run on the state connection's own thread (see `blocking`).
            db: Shared::with_thread(conn, "state")?,
            receiving: None,
            health: DbHealth::default(),
            floor,
            changes: sqlstore::Changes::default(),
            federated: false,
            durable: None,
            applied: AppliedMark::default(),
        })
    }

    /// Applies no entry before the log holds it on disk ([`crate::LogStore::durable`]).
    pub fn applying_only_durable(mut self, log: crate::durable::DurableLog) -> StateMachine {
        self.durable = Some(log);
        self
    }

    /// On a federation's master: every server of the zone records the writes to the federated
    /// tables in the federated log as it applies them.
    pub fn with_federated_log(mut self, on: bool) -> StateMachine {
        self.federated = on;
        self
    }

    /// What the log store must not purge beyond (see [`SnapshotFloor`]).
    pub fn snapshot_floor(&self) -> SnapshotFloor {
        self.floor.clone()
    }

    /// What the state database committed last (see [`AppliedMark`]).
    pub fn applied_mark(&self) -> AppliedMark {
        self.applied.clone()
    }

    /// Whether the state database answers (see [`DbHealth`]).
    pub fn health(&self) -> DbHealth {
        self.health.clone()
    }

    /// A handle to apply transactions directly, for a solo server (no Raft, no log).
    pub fn solo_writer(&self) -> SoloWriter {
        SoloWriter(
            self.db.clone(),
            self.location.clone(),
            self.changes.clone(),
            self.federated,
        )
    }

    /// The generations this state machine moves as it applies (see `sqlstore::changes`).
    pub fn changes(&self) -> sqlstore::Changes {
        self.changes.clone()
    }

    /// Makes the snapshot cover the state database when the state is ahead of the local log
    /// (`log_last`): a database restored from a backup (`onedb restore`). openraft then purges
    /// the log up to the state's last applied index, and requires a snapshot at least that far;
    /// without one it would stop on its own invariant.
    pub fn cover_restored_state(&self, log_last: Option<u64>) -> Result<bool> {
        let conn = self.db.lock()?;
        let (applied, _) = read_meta(&conn, "state database")?;
        let Some(applied) = applied else {
            return Ok(false);
        };
        if log_last.is_some_and(|l| l >= applied.index) {
            return Ok(false);
        }
        let current = self.snap_dir.join(CURRENT);
        if current.exists() {
            let meta = meta_of_file(&current)?;
            if meta.last_log_id.is_some_and(|l| l.index >= applied.index) {
                return Ok(false);
            }
        }
        let tmp = self.snap_dir.join("recv-restored.db");
        remove_if_present(&tmp)?;
        sqlstore::copy_into(&conn, &tmp)?;
        fsync_file(&tmp)?;
        std::fs::rename(&tmp, &current).map_err(Error::io(&current))?;
        fsync_dir(&self.snap_dir)?;
        self.floor.set(Some(applied));
        tracing::info!(index = applied.index, "the state database is ahead of the log (restored from a backup): took a snapshot of it");
        Ok(true)
    }

    /// After a power loss the state database can be behind what it had applied (it is written
    /// with `synchronous=NORMAL` in a zone: the fsynced log is what makes a write durable). If it
    /// is even behind the log's purge point, the records to catch up are gone locally; the local
    /// snapshot, fsynced when taken and never behind the purge point, is put back first.
    pub fn recover_from_snapshot_if_behind(&self, purged: Option<u64>) -> Result<bool> {
        let Some(purged) = purged else {
            return Ok(false);
        };
        let mut conn = self.db.lock()?;
        let (applied, _) = read_meta(&conn, "state database")?;
        if applied.is_some_and(|a| a.index >= purged) {
            return Ok(false);
        }
        let current = self.snap_dir.join(CURRENT);
        if !current.exists() {
            return Err(Error::NoSnapshotToRecover { purged });
        }
        // Refuses a snapshot of a newer format before anything is overwritten.
        meta_of_file(&current)?;
        let replacing = self.changes.replacing();
        sqlstore::restore_from(&mut conn, &current)?;
        drop(replacing);
        tracing::warn!(
            purged,
            "the state database was behind the purged log: restored the local snapshot"
        );
        Ok(true)
    }

    /// The indexes recovery decides on: the state database's last applied entry and the
    /// local snapshot's, for the start-up log line and for an error that stops the start.
    pub fn recovery_view(&self) -> Result<(Option<u64>, Option<u64>)> {
        let applied = {
            let conn = self.db.lock()?;
            read_meta(&conn, "state database")?.0.map(|l| l.index)
        };
        let current = self.snap_dir.join(CURRENT);
        let snapshot = if current.exists() {
            meta_of_file(&current)?.last_log_id.map(|l| l.index)
        } else {
            None
        };
        Ok((applied, snapshot))
    }

    fn builder(&self) -> SnapshotBuilder {
        SnapshotBuilder {
            location: self.location.clone(),
            snap_dir: self.snap_dir.clone(),
            floor: self.floor.clone(),
        }
    }
}

/// Applies transactions on a solo server, where the database is the only copy.
#[derive(Clone)]
pub struct SoloWriter(Shared<Conn>, Location, sqlstore::Changes, bool);

impl SoloWriter {
    /// A lost MySQL connection fails the call (its outcome is unknown if the commit was under
    /// way) and is replaced for the next one.
    pub async fn apply(&self, txns: Vec<SqlTxn>) -> Result<Vec<TxnOutcome>> {
        let location = self.1.clone();
        let changes = self.2.clone();
        let federated = self.3;
        self.0
            .call(move |c| {
                let applied = (|| -> Result<Vec<TxnOutcome>> {
                    let committing = changes.applying(&txns);
                    let tx = c.transaction()?;
                    let out = sqlstore::apply_batch(&tx, &txns, federated)?;
                    tx.commit()?;
                    drop(committing);
                    Ok(out)
                })();
                if let Err(e) = &applied {
                    if e.is_connection_lost() {
                        tracing::error!(%location, error = %e, "lost the state database");
                        crate::error::count_logged();
                        if let Ok(fresh) = sqlstore::reopen_state(&location, c) {
                            *c = fresh;
                        }
                    }
                }
                applied
            })
            .await
    }
}

pub struct SnapshotBuilder {
    location: Location,
    snap_dir: PathBuf,
    floor: SnapshotFloor,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let location = self.location.clone();
        let dir = self.snap_dir.clone();
        let floor = self.floor.clone();
        let made = tokio::task::spawn_blocking(
            move || -> Result<(std::fs::File, SnapshotMeta<u64, ServerNode>)> {
                let tmp = dir.join(temp_name("build"));
                let conn = sqlstore::open_read(&location)?;
                sqlstore::copy_into(&conn, &tmp)?;
                fsync_file(&tmp)?;
                let meta = meta_of_file(&tmp)?;
                // Opened before the rename: a later snapshot renamed over `current` must not
                // swap the data under this meta.
                let file = std::fs::File::open(&tmp).map_err(Error::io(&tmp))?;
                let current = dir.join(CURRENT);
                let put = floor.put_with(meta.last_log_id, true, || {
                    std::fs::rename(&tmp, &current).map_err(Error::io(&current))?;
                    fsync_dir(&dir)
                })?;
                if !put {
                    // A newer snapshot was installed meanwhile; openraft ignores an older one.
                    remove_if_present(&tmp)?;
                }
                Ok((file, meta))
            },
        )
        .await
        .map_err(Error::from)
        .and_then(|r| r);
        let (file, meta) = made.map_err(|e| storage(StorageIOError::write_snapshot_none, &e))?;
        telemetry::m::SNAPSHOTS_BUILT.inc();
        tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), SErr> {
        self.db
            .run(StorageIOError::read_state_machine, |c| {
                read_meta(c, "state database")
            })
            .await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResult>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if let (Some(log), Some(last)) = (&self.durable, entries.last()) {
            log.reached(last.log_id.index)
                .await
                .map_err(|e| StorageError::IO {
                    source: StorageIOError::write_state_machine(openraft::AnyError::new(&e)),
                })?;
        }
        let location = self.location.clone();
        let health = self.health.clone();
        let changes = self.changes.clone();
        let federated = self.federated;
        let applied = self.applied.clone();
        let n = entries.len() as u64;
        let started = std::time::Instant::now();
        let res = self
            .db
            .run(StorageIOError::write_state_machine, move |c| {
                let committing = changes.applying(entries.iter().flat_map(|e| match &e.payload {
                    EntryPayload::Normal(batch) => &batch.txns[..],
                    _ => &[],
                }));
                let mut results = apply_until_done(c, &location, &health, &entries, federated)?;
                drop(committing);
                if let Some(last) = entries.last() {
                    applied.advance(last.log_id.index);
                }
                answer_callers(&entries, &mut results);
                Ok(results)
            })
            .await;
        telemetry::m::APPLY_SECONDS.observe(started.elapsed().as_secs_f64());
        telemetry::m::APPLIED_ENTRIES.add(n);
        res
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builder()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, SErr> {
        let path = self.snap_dir.join(temp_name("receive"));
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .mode(sqlstore::files::FILE_MODE)
            .open(&path)
            .await
            .map_err(|e| StorageError::IO {
                source: StorageIOError::write_snapshot(None, openraft::AnyError::new(&e)),
            })?;
        if let Some(old) = self.receiving.replace(path) {
            discard(old).await;
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, ServerNode>,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), SErr> {
        let werr = |e: Error| storage(StorageIOError::write_snapshot_none, &e);
        // Copy whatever handle we were given into a file of our own, durably.
        let incoming = self.snap_dir.join("recv-incoming.db");
        let ioerr = |e| werr(Error::io(&incoming)(e));
        {
            snapshot.seek(SeekFrom::Start(0)).await.map_err(ioerr)?;
            // 0600: it becomes the current snapshot, a copy of the state database.
            let mut out = tokio::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(sqlstore::files::FILE_MODE)
                .open(&incoming)
                .await
                .map_err(ioerr)?;
            tokio::io::copy(&mut *snapshot, &mut out)
                .await
                .map_err(ioerr)?;
            out.flush().await.map_err(ioerr)?;
            out.sync_all().await.map_err(ioerr)?;
        }
        if let Some(p) = self.receiving.take() {
            discard(p).await;
        }
        let file_meta = {
            let p = incoming.clone();
            tokio::task::spawn_blocking(move || meta_of_file(&p))
                .await
                .map_err(|e| werr(e.into()))?
                .map_err(werr)?
        };
        if file_meta.last_log_id != meta.last_log_id {
            return Err(werr(Error::SnapshotMismatch {
                id: meta.snapshot_id.clone(),
                found: format!("{:?}", file_meta.last_log_id),
                expected: format!("{:?}", meta.last_log_id),
            }));
        }
        let dir = self.snap_dir.clone();
        let src = incoming.clone();
        let changes = self.changes.clone();
        let floor = self.floor.clone();
        let id = meta.last_log_id;
        let applied = self.applied.clone();
        self.db
            .run(StorageIOError::write_snapshot_none, move |c| {
                let replacing = changes.replacing();
                sqlstore::restore_from(c, &src)?;
                drop(replacing);
                if let Some(id) = id {
                    applied.advance(id.index);
                }
                let current = dir.join(CURRENT);
                floor.put_with(id, false, || {
                    std::fs::rename(&src, &current).map_err(Error::io(&current))?;
                    fsync_dir(&dir)
                })?;
                Ok(())
            })
            .await?;
        telemetry::m::SNAPSHOTS_INSTALLED.inc();
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let path = self.snap_dir.join(CURRENT);
        let opened = tokio::task::spawn_blocking(move || open_current(&path))
            .await
            .map_err(Error::from)
            .and_then(|r| r)
            .map_err(|e| storage(StorageIOError::read_snapshot_none, &e))?;
        Ok(opened.map(|(file, meta)| Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

/// The current snapshot's file and its meta, read from that same file: a snapshot built
/// meanwhile is renamed over the path, so the meta is read between two checks that the path
/// still names the opened file (found by the power-cut campaign: a learner was sent the meta of
/// one snapshot with the data of the next, and refused it forever).
fn open_current(path: &Path) -> Result<Option<(std::fs::File, SnapshotMeta<u64, ServerNode>)>> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path)(e)),
        };
        let opened = file.metadata().map_err(Error::io(path))?.ino();
        let meta = meta_of_file(path)?;
        let now = std::fs::metadata(path).map_err(Error::io(path))?.ino();
        if now == opened {
            return Ok(Some((file, meta)));
        }
    }
}

/// Applies after a failed write transaction that go straight to savepoints: writes that fail
/// tend to come in runs (a script retrying a taken name), and each costs a whole apply again.
const SAVEPOINTS_AFTER_A_FAILURE: u32 = 32;

/// How many applies, from now, use a savepoint per write transaction from the start. Only a
/// matter of speed: both ways give the same outcomes.
static SAVEPOINTS_AHEAD: AtomicU32 = AtomicU32::new(0);

/// Applies `entries` and records the last one's id in one transaction. First without a
/// savepoint per write transaction; if one of them failed, that database transaction is rolled
/// back and the entries applied again with savepoints (`sqlstore::Undo`).
fn apply_entries(
    c: &mut Conn,
    entries: &[Entry<TypeConfig>],
    federated: bool,
) -> Result<Vec<BatchResult>> {
    let ahead = SAVEPOINTS_AHEAD.load(Ordering::Relaxed);
    if ahead == 0 {
        if let Some(results) = apply_entries_with(c, entries, federated, Undo::Abandon)? {
            return Ok(results);
        }
        telemetry::m::APPLIES_REDONE.inc();
        SAVEPOINTS_AHEAD.store(SAVEPOINTS_AFTER_A_FAILURE, Ordering::Relaxed);
    } else {
        SAVEPOINTS_AHEAD.store(ahead - 1, Ordering::Relaxed);
    }
    apply_entries_with(c, entries, federated, Undo::Savepoint)?
        .ok_or(Error::Invariant("an apply with savepoints was abandoned"))
}

/// [`apply_entries`] one way; `None` when `undo` is `Abandon` and a write transaction failed:
/// nothing of it was committed.
fn apply_entries_with(
    c: &mut Conn,
    entries: &[Entry<TypeConfig>],
    federated: bool,
    undo: Undo,
) -> Result<Option<Vec<BatchResult>>> {
    let tx = c.transaction()?;
    let mut applied = None;
    let mut membership = None;
    let mut results = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut outcomes = Vec::new();
        match &entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(batch) => match undo {
                Undo::Savepoint => {
                    outcomes = sqlstore::apply_batch(&tx, &batch.txns, federated)?;
                }
                Undo::Abandon => {
                    match sqlstore::apply_batch_or_abandon(&tx, &batch.txns, federated)? {
                        Some(done) => outcomes = done,
                        // Dropping `tx` rolls it back.
                        None => return Ok(None),
                    }
                }
            },
            EntryPayload::Membership(m) => {
                membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
            }
        }
        applied = Some(entry.log_id);
        results.push(BatchResult { outcomes });
    }
    if let Some(applied) = applied {
        record_applied(&tx, applied, membership)?;
    }
    tx.commit()?;
    Ok(Some(results))
}

/// Answers the writers waiting on `entries` on this server (the leader that proposed them, see
/// `callers::Callers`): their apply has committed, and the generations it moved have settled.
fn answer_callers(entries: &[Entry<TypeConfig>], results: &mut [BatchResult]) {
    for (entry, result) in entries.iter().zip(results) {
        if let EntryPayload::Normal(batch) = &entry.payload {
            batch.callers.answer(&mut result.outcomes);
        }
    }
}

/// Longest wait between two attempts to reach a lost database server.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// [`apply_entries`], waiting out a lost connection to the database server (MySQL), or any
/// other condition of that server ([`Error::is_server_condition`]: shutting down, a lock wait
/// timed out, a full disk...): the transaction in flight was rolled back, so the entries are
/// applied again on a new connection, from the first one its `last_applied` does not cover.
/// Nothing else may stop the apply there: an entry committed on a majority must apply, and
/// the same entry applies on the other servers. Meanwhile `health` says why writes are
/// refused. Runs on the state database's own thread: its other calls wait meanwhile.
fn apply_until_done(
    c: &mut Conn,
    location: &Location,
    health: &DbHealth,
    entries: &[Entry<TypeConfig>],
    federated: bool,
) -> Result<Vec<BatchResult>> {
    let mut skipped = 0;
    let mut backoff = Duration::from_millis(100);
    loop {
        let err = match apply_entries(c, &entries[skipped..], federated) {
            Ok(mut results) => {
                if health.marked(Mark::Apply).is_some() {
                    tracing::warn!(%location, "the state database is back: applying again");
                    health.set(Mark::Apply, None);
                }
                let mut all = vec![unknown_outcome(); skipped];
                all.append(&mut results);
                return Ok(all);
            }
            Err(e) if e.is_server_condition() => e,
            Err(e) => {
                tracing::error!(%location, error = %e, "applying committed entries failed");
                return Err(e);
            }
        };
        if health.marked(Mark::Apply).is_none() {
            if err.is_connection_lost() {
                tracing::error!(%location, error = %err, "lost the state database: writes wait until it is back");
            } else {
                tracing::error!(%location, error = %err, "the state database cannot apply: writes wait until it can, on a new connection");
            }
            crate::error::count_logged();
        }
        health.set(
            Mark::Apply,
            Some(format!("state database {location} unavailable: {err}")),
        );
        *c = reconnect(location, c, &mut backoff);
        // A commit whose answer was lost with the connection may have gone through.
        let (applied, _) = match read_meta(c, "state database") {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(%location, error = %e, "reading what was applied failed after reconnecting");
                continue;
            }
        };
        let done = applied.map_or(0, |a| a.index);
        skipped = entries
            .iter()
            .take_while(|e| e.log_id.index <= done)
            .count()
            .max(skipped);
    }
}

/// How often a reconnect that keeps failing says so in the log.
const RECONNECT_REPORT_EVERY: Duration = Duration::from_secs(10);

/// A new writing connection to the state database, tried after `backoff` (doubled each time, up
/// to [`RECONNECT_MAX`]) until one is made. Failures are logged as they change or every
/// [`RECONNECT_REPORT_EVERY`]: an applier waiting here is why every write is refused.
fn reconnect(location: &Location, previous: &Conn, backoff: &mut Duration) -> Conn {
    let started = std::time::Instant::now();
    let mut reported: Option<(String, std::time::Instant)> = None;
    let mut attempts = 0u64;
    loop {
        std::thread::sleep(*backoff);
        *backoff = (*backoff * 2).min(RECONNECT_MAX);
        attempts += 1;
        let attempt = std::time::Instant::now();
        match sqlstore::reopen_state(location, previous) {
            Ok(fresh) => {
                tracing::info!(%location, attempts, waited = ?started.elapsed(), "reconnected to the state database");
                return fresh;
            }
            Err(e) => {
                let why = e.to_string();
                let repeat = reported.as_ref().is_some_and(|(last, at)| {
                    *last == why && at.elapsed() < RECONNECT_REPORT_EVERY
                });
                if !repeat {
                    tracing::warn!(%location, error = %why, attempts, took = ?attempt.elapsed(), "the state database is still unavailable");
                    reported = Some((why, std::time::Instant::now()));
                }
            }
        }
    }
}

/// The result of an entry that committed while the connection that carried it was lost: it is
/// applied, but what each transaction answered is gone.
fn unknown_outcome() -> BatchResult {
    BatchResult { outcomes: vec![] }
}

/// The snapshot kinds of `StorageIOError` as plain functions, for [`storage`].
trait SnapshotNone {
    fn write_snapshot_none(e: openraft::AnyError) -> Self;
    fn read_snapshot_none(e: openraft::AnyError) -> Self;
}

impl SnapshotNone for StorageIOError<u64> {
    fn write_snapshot_none(e: openraft::AnyError) -> Self {
        StorageIOError::write_snapshot(None, e)
    }

    fn read_snapshot_none(e: openraft::AnyError) -> Self {
        StorageIOError::read_snapshot(None, e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use openraft::CommittedLeaderId;
    use sqlstore::{SqlStmt, SqlValue};

    use super::*;
    use crate::types::Batch;

    fn snapshot_at(path: &Path, index: u64) {
        let conn = Conn::from(rusqlite::Connection::open(path).unwrap());
        conn.execute_batch(
            "CREATE TABLE raft_sm_meta (id INTEGER PRIMARY KEY, last_applied BLOB, \
             membership BLOB, format INTEGER)",
        )
        .unwrap();
        let applied = Some(LogId::new(CommittedLeaderId::new(1, 0), index));
        write_meta(&conn, &applied, &Membership::default()).unwrap();
    }

    fn state_db() -> Conn {
        let conn = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch(
            "CREATE TABLE raft_sm_meta (id INTEGER PRIMARY KEY, last_applied BLOB, \
             membership BLOB, format INTEGER);
             CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
        )
        .unwrap();
        conn
    }

    fn names(c: &Conn) -> Vec<String> {
        c.prepare("SELECT name FROM t ORDER BY id")
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn an_apply_abandoned_at_a_failed_write_ends_as_if_every_write_had_its_savepoint() {
        let insert = |name: &str| {
            SqlStmt::new(
                "INSERT INTO t (name) VALUES (?1) RETURNING id",
                vec![SqlValue::Text(name.into())],
            )
        };
        let txn = |stmts: Vec<SqlStmt>| SqlTxn { stmts };
        let entry = |index: u64, txns: Vec<SqlTxn>| Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Batch::new(txns)),
        };
        let entries = [
            entry(1, vec![txn(vec![insert("a")])]),
            // Its first insert lands before the second fails on the taken name.
            entry(
                2,
                vec![txn(vec![insert("b"), insert("a")]), txn(vec![insert("c")])],
            ),
        ];

        let mut guarded = state_db();
        let expected = apply_entries_with(&mut guarded, &entries, false, Undo::Savepoint)
            .unwrap()
            .unwrap();
        assert!(matches!(
            &expected[1].outcomes[0],
            TxnOutcome::Failed(e) if e.kind == sqlstore::TxnErrorKind::Constraint && e.stmt == 1
        ));
        assert_eq!(names(&guarded), ["a", "c"]);

        let mut c = state_db();
        assert!(
            apply_entries_with(&mut c, &entries, false, Undo::Abandon)
                .unwrap()
                .is_none(),
            "the failed write abandons the attempt"
        );
        assert!(names(&c).is_empty(), "an abandoned attempt leaves nothing");
        assert_eq!(read_meta(&c, "test").unwrap().0, None);

        // Whichever way apply_entries goes (an earlier failure may send it to savepoints).
        let results = apply_entries(&mut c, &entries, false).unwrap();
        assert_eq!(results, expected);
        assert_eq!(names(&c), ["a", "c"]);
        assert_eq!(read_meta(&c, "test").unwrap().0, Some(entries[1].log_id));

        // Without failures, the attempt is the apply.
        let more = [entry(3, vec![txn(vec![insert("d")])])];
        let done = apply_entries_with(&mut c, &more, false, Undo::Abandon)
            .unwrap()
            .unwrap();
        assert_eq!(
            done[0].outcomes,
            [TxnOutcome::Done {
                values: vec![SqlValue::Int(3)]
            }]
        );
        assert_eq!(names(&c), ["a", "c", "d"]);
    }

    #[test]
    fn writes_move_only_last_applied_and_a_newer_format_is_refused_before_anything_lands() {
        let write = |index: u64, name: &str| Entry::<TypeConfig> {
            log_id: at(index),
            payload: EntryPayload::Normal(Batch::new(vec![SqlTxn {
                stmts: vec![SqlStmt::new(
                    "INSERT INTO t (name) VALUES (?1)",
                    vec![SqlValue::Text(name.into())],
                )],
            }])),
        };
        let node = ServerNode {
            name: "s0".into(),
            rpc: "http://127.0.0.1:2633/RPC2".into(),
        };
        let config = openraft::Membership::new(
            vec![std::collections::BTreeSet::from([0])],
            std::collections::BTreeMap::from([(0, node)]),
        );
        let mut c = state_db();
        // The first apply writes the whole row; a membership change rewrites it.
        apply_entries(&mut c, &[write(1, "a")], false).unwrap();
        assert_eq!(read_meta(&c, "test").unwrap().0, Some(at(1)));
        let change = Entry::<TypeConfig> {
            log_id: at(2),
            payload: EntryPayload::Membership(config.clone()),
        };
        apply_entries(&mut c, &[change, write(3, "b")], false).unwrap();
        apply_entries(&mut c, &[write(4, "c"), write(5, "d")], false).unwrap();
        let (applied, membership) = read_meta(&c, "test").unwrap();
        assert_eq!(applied, Some(at(5)));
        assert_eq!(membership, StoredMembership::new(Some(at(2)), config));

        c.execute_batch(&format!("UPDATE raft_sm_meta SET format = {}", FORMAT + 1))
            .unwrap();
        assert!(matches!(
            apply_entries(&mut c, &[write(6, "e")], false),
            Err(Error::NewerFormat { .. })
        ));
        assert_eq!(
            names(&c),
            ["a", "b", "c", "d"],
            "nothing of the refused apply"
        );
    }

    /// Found by the power-cut campaign: a snapshot built while the current one was being
    /// handed out swapped the data under the meta.
    #[test]
    fn the_current_snapshot_meta_is_the_meta_of_the_file_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join(CURRENT);
        snapshot_at(&current, 0);
        let builder = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for index in 1..300 {
                    let tmp = dir.join(format!("build-{index}.db"));
                    snapshot_at(&tmp, index);
                    std::fs::rename(&tmp, dir.join(CURRENT)).unwrap();
                }
            })
        };
        let mut checked = 0;
        let handed = dir.path().join("handed.db");
        while !builder.is_finished() {
            let (mut file, meta) = open_current(&current).unwrap().unwrap();
            std::io::copy(&mut file, &mut std::fs::File::create(&handed).unwrap()).unwrap();
            let inside = meta_of_file(&handed).unwrap();
            assert_eq!(inside.last_log_id, meta.last_log_id);
            checked += 1;
        }
        builder.join().unwrap();
        assert!(checked > 0);
    }

    #[test]
    fn a_build_older_than_an_install_that_landed_first_moves_neither_the_snapshot_nor_the_floor() {
        let floor = SnapshotFloor::default();
        let mut put = Vec::new();
        assert!(floor
            .put_with(Some(at(1403)), false, || {
                put.push(1403);
                Ok(())
            })
            .unwrap());
        // The build that copied the state at 1395 finishes after the install.
        assert!(!floor
            .put_with(Some(at(1395)), true, || {
                put.push(1395);
                Ok(())
            })
            .unwrap());
        assert_eq!(floor.get(), Some(at(1403)));
        assert!(floor
            .put_with(Some(at(1500)), true, || {
                put.push(1500);
                Ok(())
            })
            .unwrap());
        assert_eq!(floor.get(), Some(at(1500)));
        assert_eq!(put, [1403, 1500]);
    }

    fn at(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    /// Found by CI's MySQL power round: openraft purged the log to a snapshot from the leader
    /// before the state machine had installed it; a cut in between left the log purged to 666
    /// with the local snapshot at 524, and the server could not start. A purge is now persisted
    /// only once a snapshot covering it is on disk.
    #[tokio::test]
    async fn no_purge_is_persisted_beyond_the_snapshot_on_disk() {
        use openraft::storage::RaftLogStorage;
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir(&snaps).unwrap();
        let loc = Location::Sqlite(dir.path().join("one.db"));
        let new_sm =
            || StateMachine::new(&loc, sqlstore::open_state(&loc).unwrap(), &snaps).unwrap();
        let raft_db = dir.path().join("raft.db");

        // No snapshot yet: nothing is persisted.
        let mut log = crate::LogStore::open(&raft_db).unwrap();
        log.guard_purges_with(new_sm().snapshot_floor());
        log.purge(at(10)).await.unwrap();
        assert_eq!(log.purged_index().unwrap(), None);

        // A snapshot at 524 on disk; openraft asks for 666 (a leader's snapshot being
        // installed): still nothing, as a crash now must find the log as it was.
        snapshot_at(&snaps.join(CURRENT), 524);
        let sm = new_sm();
        let mut log = crate::LogStore::open(&raft_db).unwrap();
        log.guard_purges_with(sm.snapshot_floor());
        log.purge(at(500)).await.unwrap();
        assert_eq!(log.purged_index().unwrap(), Some(500), "covered: persisted");
        log.purge(at(666)).await.unwrap();
        assert_eq!(log.purged_index().unwrap(), Some(500), "not covered: held");

        // Once the snapshot at 700 is on disk, purges go through again.
        sm.snapshot_floor().set(Some(at(700)));
        log.purge(at(690)).await.unwrap();
        assert_eq!(log.purged_index().unwrap(), Some(690));
    }
}
