//! The crate's error: what failed (the log database, a file, a stored record, the state copy)
//! with its cause. Messages carry their cause inline because oned prints them with `Display`.
//!
//! Failures that nobody can be handed (a leftover file that would not go away, a background
//! deletion that will be retried) are logged at warn and counted in [`logged_errors`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::log_format::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A statement on a connection already open (the path is in the message of its opening).
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state database: {0}")]
    State(#[from] sqlstore::DbError),
    /// A statement on the state database's connection.
    #[error("state database: {0}")]
    StateSql(#[from] sqlstore::SqlError),
    #[error("corrupt {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: bincode::Error,
    },
    /// Written by a newer oned: this one cannot know what it means, so it refuses it whole.
    #[error(
        "{what} is in log format {found}, newer than the formats this server reads (up to {known}): \
         upgrade this server (see ARCHITECTURE.md, upgrades)"
    )]
    NewerFormat {
        what: &'static str,
        found: u64,
        known: u64,
    },
    /// What this code rules out happened: a bug, reported rather than panicking.
    #[error("internal error: {0}")]
    Invariant(&'static str),
    #[error("the {0} lock was poisoned by an earlier panic")]
    Poisoned(&'static str),
    /// The thread that owns a connection is gone (it panicked, or the store was dropped).
    #[error("the {0} writer thread stopped")]
    WriterStopped(&'static str),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{path} belongs to server {stored}, but oned.conf says SERVER_ID = {configured}")]
    ServerIdMismatch {
        path: PathBuf,
        stored: u64,
        configured: u64,
    },
    #[error(
        "the state database is behind the purged log (index {purged}) and there is no snapshot to recover from"
    )]
    NoSnapshotToRecover { purged: u64 },
    #[error("snapshot {id} holds state at {found}, not {expected}")]
    SnapshotMismatch {
        id: String,
        found: String,
        expected: String,
    },
}

impl Error {
    pub(crate) fn db(path: &std::path::Path) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
        move |source| Error::Db {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl Error {
    /// The state database's server went away (MySQL): the work can be retried on a new
    /// connection once it is back.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::StateSql(e) => e.is_connection_lost(),
            Error::State(e) => e.is_connection_lost(),
            _ => false,
        }
    }

    /// The state database's server cannot take the work now (MySQL: the connection lost, the
    /// server shutting down, a lock wait timed out, a full disk...): the same work is retried
    /// on a new connection until it can, as nothing in the work itself failed.
    pub fn is_server_condition(&self) -> bool {
        match self {
            Error::StateSql(e) => e.is_server_condition(),
            Error::State(e) => e.is_server_condition(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

static LOGGED: AtomicU64 = AtomicU64::new(0);

/// Errors logged (at warn) instead of returned since the process started: the ones no caller
/// could act on, e.g. a leftover snapshot file that could not be removed.
pub fn logged_errors() -> u64 {
    LOGGED.load(Ordering::Relaxed)
}

/// Counts an error already logged by its caller.
pub(crate) fn count_logged() {
    LOGGED.fetch_add(1, Ordering::Relaxed);
}

/// Logs `err` at warn with `what` was being done, and counts it.
pub(crate) fn log_and_count(what: &str, err: &dyn std::fmt::Display) {
    LOGGED.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(error = %err, "{what}");
}
