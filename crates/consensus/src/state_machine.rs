//! The state machine is the SQL state database itself. Each `apply` runs its entries' transactions
//! and records `last_applied` (and the membership) in the same SQLite transaction, so a crash can
//! never apply an entry twice or lose one.
//!
//! Snapshots are consistent copies of the whole state database (`VACUUM INTO`), whose
//! `raft_sm_meta` row *is* the snapshot's meta: data and meta agree by construction.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use rusqlite::{params, Connection, OptionalExtension};
use sqlstore::{apply_txn, SqlTxn, TxnOutcome};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::blocking::{s, Shared};
use crate::types::{BatchResult, ServerNode, TypeConfig};

type SErr = StorageError<u64>;
type Membership = StoredMembership<u64, ServerNode>;

const CURRENT: &str = "current.db";

pub struct StateMachine {
    state_path: PathBuf,
    snap_dir: PathBuf,
    db: Shared,
    receiving: Option<PathBuf>,
}

/// The two blobs of `raft_sm_meta`, both absent before the first apply.
type MetaRow = (Option<Vec<u8>>, Option<Vec<u8>>);

fn read_meta(conn: &Connection) -> Result<(Option<LogId<u64>>, Membership), String> {
    let row: Option<MetaRow> = conn
        .query_row(
            "SELECT last_applied, membership FROM raft_sm_meta WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(s)?;
    let (applied, membership) = row.unwrap_or((None, None));
    let applied = match applied {
        Some(b) => bincode::deserialize(&b).map_err(|e| format!("corrupt last_applied: {e}"))?,
        None => None,
    };
    let membership = match membership {
        Some(b) => bincode::deserialize(&b).map_err(|e| format!("corrupt membership: {e}"))?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

fn write_meta(
    conn: &Connection,
    applied: &Option<LogId<u64>>,
    membership: &Membership,
) -> Result<(), String> {
    conn.execute(
        "INSERT INTO raft_sm_meta (id, last_applied, membership) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET last_applied = excluded.last_applied, membership = excluded.membership",
        params![
            bincode::serialize(applied).map_err(s)?,
            bincode::serialize(membership).map_err(s)?
        ],
    )
    .map_err(s)?;
    Ok(())
}

fn snapshot_id(applied: &Option<LogId<u64>>) -> String {
    match applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
        None => "empty".to_string(),
    }
}

fn meta_of_file(path: &Path) -> Result<SnapshotMeta<u64, ServerNode>, String> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (applied, membership) = read_meta(&conn)?;
    Ok(SnapshotMeta {
        last_log_id: applied,
        last_membership: membership,
        snapshot_id: snapshot_id(&applied),
    })
}

fn fsync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("fsync {}: {e}", dir.display()))
}

impl StateMachine {
    /// `conn` is the state database's read-write connection; `snap_dir` keeps the current snapshot.
    pub fn new(
        state_path: &Path,
        conn: Connection,
        snap_dir: &Path,
    ) -> Result<StateMachine, String> {
        // Snapshots are copies of the state database: as private as it is.
        sqlstore::files::private_dir(snap_dir)
            .map_err(|e| format!("{}: {e}", snap_dir.display()))?;
        // Leftovers of a transfer interrupted by a crash.
        if let Ok(dir) = std::fs::read_dir(snap_dir) {
            for f in dir.flatten() {
                if f.file_name().to_string_lossy().starts_with("recv-") {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        Ok(StateMachine {
            state_path: state_path.to_path_buf(),
            snap_dir: snap_dir.to_path_buf(),
            db: Shared::new(conn),
            receiving: None,
        })
    }

    /// A handle to apply transactions directly, for a solo server (no Raft, no log).
    pub fn solo_writer(&self) -> SoloWriter {
        SoloWriter(self.db.clone())
    }

    /// Runs `f` on the writer connection before Raft starts (bootstrap).
    pub fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> Result<T, String> {
        let mut guard = self
            .db
            .0
            .lock()
            .map_err(|_| "state mutex poisoned".to_string())?;
        Ok(f(&mut guard))
    }

    /// Makes the snapshot cover the state database when the state is ahead of the local log
    /// (`log_last`): a database restored from a backup (`onedb restore`). openraft then purges
    /// the log up to the state's last applied index, and requires a snapshot at least that far;
    /// without one it would stop on its own invariant.
    pub fn cover_restored_state(&self, log_last: Option<u64>) -> Result<bool, String> {
        let conn = self
            .db
            .0
            .lock()
            .map_err(|_| "state mutex poisoned".to_string())?;
        let (applied, _) = read_meta(&conn)?;
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
        let _ = std::fs::remove_file(&tmp);
        sqlstore::copy_into(&conn, &tmp).map_err(s)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(s)?;
        std::fs::rename(&tmp, &current).map_err(s)?;
        fsync_dir(&self.snap_dir)?;
        tracing::info!(index = applied.index, "the state database is ahead of the log (restored from a backup): took a snapshot of it");
        Ok(true)
    }

    /// After a power loss the state database can be behind what it had applied (it is written
    /// with `synchronous=NORMAL` in a zone: the fsynced log is what makes a write durable). If it
    /// is even behind the log's purge point, the records to catch up are gone locally; the local
    /// snapshot, fsynced when taken and never behind the purge point, is put back first.
    pub fn recover_from_snapshot_if_behind(&self, purged: Option<u64>) -> Result<bool, String> {
        let Some(purged) = purged else {
            return Ok(false);
        };
        let mut conn = self
            .db
            .0
            .lock()
            .map_err(|_| "state mutex poisoned".to_string())?;
        let (applied, _) = read_meta(&conn)?;
        if applied.is_some_and(|a| a.index >= purged) {
            return Ok(false);
        }
        let current = self.snap_dir.join(CURRENT);
        if !current.exists() {
            return Err(format!(
                "the state database is behind the purged log (index {purged}) and there is no snapshot to recover from"
            ));
        }
        sqlstore::restore_from(&mut conn, &current).map_err(s)?;
        tracing::warn!(
            purged,
            "the state database was behind the purged log: restored the local snapshot"
        );
        Ok(true)
    }

    fn builder(&self) -> SnapshotBuilder {
        SnapshotBuilder {
            state_path: self.state_path.clone(),
            snap_dir: self.snap_dir.clone(),
        }
    }
}

/// Applies transactions on a solo server, where the database is the only copy.
#[derive(Clone)]
pub struct SoloWriter(Shared);

impl SoloWriter {
    pub async fn apply(&self, txns: Vec<SqlTxn>) -> Result<Vec<TxnOutcome>, String> {
        self.0
            .run(StorageIOError::write_state_machine, move |c| {
                let tx = c.transaction().map_err(s)?;
                let mut out = Vec::with_capacity(txns.len());
                for t in &txns {
                    out.push(apply_txn(&tx, t).map_err(s)?);
                }
                tx.commit().map_err(s)?;
                Ok(out)
            })
            .await
            .map_err(|e| e.to_string())
    }
}

pub struct SnapshotBuilder {
    state_path: PathBuf,
    snap_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let state_path = self.state_path.clone();
        let dir = self.snap_dir.clone();
        let made = tokio::task::spawn_blocking(
            move || -> Result<(PathBuf, SnapshotMeta<u64, ServerNode>), String> {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let tmp = dir.join(format!("recv-build-{nanos}.db"));
                let conn = Connection::open_with_flags(
                    &state_path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .map_err(s)?;
                sqlstore::copy_into(&conn, &tmp).map_err(s)?;
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(s)?;
                let meta = meta_of_file(&tmp)?;
                let current = dir.join(CURRENT);
                std::fs::rename(&tmp, &current).map_err(s)?;
                fsync_dir(&dir)?;
                Ok((current, meta))
            },
        )
        .await
        .map_err(s)
        .and_then(|r| r);
        let (path, meta) = made.map_err(|e| StorageError::IO {
            source: StorageIOError::write_snapshot(None, openraft::AnyError::error(e)),
        })?;
        tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageError::IO {
                source: StorageIOError::read_snapshot(None, openraft::AnyError::new(&e)),
            })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), SErr> {
        self.db
            .run(StorageIOError::read_state_machine, |c| read_meta(c))
            .await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResult>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        self.db
            .run(StorageIOError::write_state_machine, move |c| {
                let (mut applied, mut membership) = read_meta(c)?;
                let tx = c.transaction().map_err(s)?;
                let mut results = Vec::with_capacity(entries.len());
                for entry in &entries {
                    let mut outcomes = Vec::new();
                    match &entry.payload {
                        EntryPayload::Blank => {}
                        EntryPayload::Normal(batch) => {
                            for t in &batch.txns {
                                outcomes.push(apply_txn(&tx, t).map_err(s)?);
                            }
                        }
                        EntryPayload::Membership(m) => {
                            membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        }
                    }
                    applied = Some(entry.log_id);
                    results.push(BatchResult { outcomes });
                }
                write_meta(&tx, &applied, &membership)?;
                tx.commit().map_err(s)?;
                Ok(results)
            })
            .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builder()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, SErr> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = self.snap_dir.join(format!("recv-{nanos}.db"));
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
            let _ = tokio::fs::remove_file(old).await;
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, ServerNode>,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), SErr> {
        let werr = |e: String| StorageError::IO {
            source: StorageIOError::write_snapshot(None, openraft::AnyError::error(e)),
        };
        // Copy whatever handle we were given into a file of our own, durably.
        let incoming = self.snap_dir.join("recv-incoming.db");
        {
            snapshot
                .seek(SeekFrom::Start(0))
                .await
                .map_err(|e| werr(e.to_string()))?;
            // 0600: it becomes the current snapshot, a copy of the state database.
            let mut out = tokio::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(sqlstore::files::FILE_MODE)
                .open(&incoming)
                .await
                .map_err(|e| werr(e.to_string()))?;
            tokio::io::copy(&mut *snapshot, &mut out)
                .await
                .map_err(|e| werr(e.to_string()))?;
            out.flush().await.map_err(|e| werr(e.to_string()))?;
            out.sync_all().await.map_err(|e| werr(e.to_string()))?;
        }
        if let Some(p) = self.receiving.take() {
            let _ = tokio::fs::remove_file(p).await;
        }
        let file_meta = {
            let p = incoming.clone();
            tokio::task::spawn_blocking(move || meta_of_file(&p))
                .await
                .map_err(|e| werr(e.to_string()))?
                .map_err(werr)?
        };
        if file_meta.last_log_id != meta.last_log_id {
            return Err(werr(format!(
                "snapshot {} holds state at {:?}, not {:?}",
                meta.snapshot_id, file_meta.last_log_id, meta.last_log_id
            )));
        }
        let dir = self.snap_dir.clone();
        let src = incoming.clone();
        self.db
            .run(StorageIOError::write_snapshot_none, move |c| {
                sqlstore::restore_from(c, &src).map_err(s)?;
                std::fs::rename(&src, dir.join(CURRENT)).map_err(s)?;
                fsync_dir(&dir)
            })
            .await?;
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let path = self.snap_dir.join(CURRENT);
        if !path.exists() {
            return Ok(None);
        }
        let p = path.clone();
        let meta = tokio::task::spawn_blocking(move || meta_of_file(&p))
            .await
            .map_err(s)
            .and_then(|r| r)
            .map_err(|e| StorageError::IO {
                source: StorageIOError::read_snapshot(None, openraft::AnyError::error(e)),
            })?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageError::IO {
                source: StorageIOError::read_snapshot(None, openraft::AnyError::new(&e)),
            })?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

trait WriteSnapshotNone {
    fn write_snapshot_none(e: openraft::AnyError) -> Self;
}

impl WriteSnapshotNone for StorageIOError<u64> {
    fn write_snapshot_none(e: openraft::AnyError) -> Self {
        StorageIOError::write_snapshot(None, e)
    }
}
